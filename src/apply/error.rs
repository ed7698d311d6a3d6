//! [`ApplyError`]: why an action of a plan failed, whichever engine carried it
//! out.

use crate::docker::DockerError;
use crate::podman::PodmanError;

use super::generate::GenerateError;

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Podman refused or failed a request (the cause follows in the chain).
    #[error("{action}")]
    Podman {
        /// The action, as the plan prints it.
        action: String,
        /// Podman's error.
        #[source]
        source: PodmanError,
    },
    /// Docker Engine refused or failed a request (the cause follows in the chain).
    #[error("{action}")]
    Docker {
        /// The action, as the plan prints it.
        action: String,
        /// Docker's error.
        #[source]
        source: DockerError,
    },
    /// A spec the Docker mapping cannot express.
    #[error("{0}")]
    DockerSpec(String),
    /// A service's image could not be built (names the service and the
    /// Dockerfile line).
    #[error(transparent)]
    Build(super::build::BuildError),
    /// The spec cannot be expressed as a request.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// A bind folder or a secret from the environment could not be prepared.
    #[error(transparent)]
    Prepare(#[from] super::prepare::PrepareError),
    /// A dependency did not become ready.
    #[error("service `{service}`: dependency `{dependency}` {why}")]
    Dependency {
        /// The waiting service.
        service: String,
        /// The dependency.
        dependency: String,
        /// What happened.
        why: String,
    },
    /// A container to remove is not Magos's.
    #[error("refusing to remove `{name}`: it carries no label of a managed project")]
    NotManaged {
        /// The container.
        name: String,
    },
    /// A container Magos was about to stop and remove is not the service's.
    #[error(
        "refusing to remove `{name}`: it is not service `{service}` of stack `{project}` (rename or remove it)"
    )]
    NotTheService {
        /// The container.
        name: String,
        /// The service.
        service: String,
        /// The stack.
        project: String,
    },
    /// Services failed (each with its own error); the stack's other services
    /// were still applied.
    #[error("{}", describe_failures(failures))]
    Services {
        /// The failed services, in the order they were tried, with why.
        failures: Vec<(String, ApplyError)>,
    },
    /// The service's image could not be pulled (the cause as text: several
    /// services may share one pull).
    #[error("pull {image}: {cause}")]
    Pull {
        /// What was pulled.
        image: String,
        /// Why it failed.
        cause: String,
    },
    /// Magos is stopping: the action was not started.
    #[error("{action}: not started, magos is stopping")]
    Stopped {
        /// The action, as the plan prints it.
        action: String,
    },
}

fn describe_failures(failures: &[(String, ApplyError)]) -> String {
    let each: Vec<String> = failures
        .iter()
        .map(|(service, e)| match e {
            // Already names the service.
            ApplyError::Dependency { .. } => error_chain(e),
            _ => format!("service `{service}`: {}", error_chain(e)),
        })
        .collect();
    format!(
        "{} service(s) failed, the others were applied: {}",
        failures.len(),
        each.join("; ")
    )
}

/// An error and its causes, `: `-separated.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
