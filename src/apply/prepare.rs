//! What a container needs on the host and in Podman before it is created: the
//! bind folders compose creates when they are missing, and the Podman secrets
//! whose values come from Magos's environment.
//!
//! The core decides which bind sources may be created (`create_host_path`: a
//! short-syntax bind inside the stack's folder, or `bind.create_host_path: true`);
//! this step creates the missing ones as folders, as compose does. A secret's
//! value is read from the environment here, sent to Podman in the request body
//! and never logged nor put in an error.

use std::collections::BTreeMap;
use std::path::Path;

use crate::core::spec::{ContainerSpec, MountSpec, StackSpec, stack_labels};
use crate::podman::{Client, PodmanError};

/// Why a container's host-side inputs could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A missing bind folder could not be created.
    #[error("bind source `{path}` does not exist and could not be created: {source}")]
    BindSource {
        /// The folder.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The variable holding a secret's value is not set.
    #[error(
        "secret `{secret}` takes its value from the environment variable `{var}`, which is not set in Magos's environment"
    )]
    SecretUnset {
        /// The Podman secret.
        secret: String,
        /// The variable.
        var: String,
    },
    /// Podman refused to store a secret.
    #[error("secret `{secret}` could not be stored in Podman")]
    SecretStore {
        /// The Podman secret.
        secret: String,
        /// Podman's error (it never holds the value).
        #[source]
        source: Box<PodmanError>,
    },
}

/// Creates the missing bind folders of `spec` that compose would create. A path
/// that exists (a file, a folder, a socket, a dangling link) is left alone.
pub fn bind_sources(spec: &ContainerSpec) -> Result<Vec<String>, PrepareError> {
    let mut created = Vec::new();
    for m in &spec.mounts {
        let MountSpec::Bind {
            source,
            create_host_path: true,
            ..
        } = m
        else {
            continue;
        };
        let path = Path::new(source);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        std::fs::create_dir_all(path).map_err(|e| PrepareError::BindSource {
            path: source.clone(),
            source: e,
        })?;
        created.push(source.clone());
    }
    Ok(created)
}

/// Stores the secrets of `spec` that come from Magos's environment as Podman
/// secrets (replacing an older value), labelled as the stack's. `lookup` reads a
/// variable (the process environment in the daemon).
pub async fn env_secrets(
    client: &Client,
    stack: &StackSpec,
    spec: &ContainerSpec,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), PrepareError> {
    for s in &spec.podman_secrets {
        let Some(var) = &s.from_env else { continue };
        let value = lookup(var).ok_or_else(|| PrepareError::SecretUnset {
            secret: s.source.clone(),
            var: var.clone(),
        })?;
        let labels: BTreeMap<String, String> = stack_labels(&stack.project, &stack.instance);
        client
            .create_secret(&s.source, value.into_bytes(), &labels)
            .await
            .map_err(|source| PrepareError::SecretStore {
                secret: s.source.clone(),
                source: Box::new(source),
            })?;
    }
    Ok(())
}
