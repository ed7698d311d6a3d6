//! One stack of the repository, read and converted: what [`super::repo`]
//! plans, applies and compares, and what [`super::compose_cli`] hands to the
//! compose CLI.

use std::path::PathBuf;

use crate::core::compose::LoadError;
use crate::core::convert::Route;
use crate::core::diag::Diagnostic;
use crate::core::spec::StackSpec;

use super::sealed::Sealed;

/// One stack, read and converted.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The stack's folder, relative to the repository.
    pub dir: String,
    /// The project.
    pub project: String,
    /// The compose files, absolute.
    pub files: Vec<PathBuf>,
    /// The stack's folder, absolute.
    pub abs_dir: PathBuf,
    /// The spec (best effort for compose-CLI stacks).
    pub spec: StackSpec,
    /// How it is applied.
    pub route: Route,
    /// Why it cannot be applied, if so.
    pub error: Option<PrepareError>,
    /// Its SOPS-encrypted inputs.
    pub sealed: Sealed,
    /// `x-magos: {observe: true}`: reported, never changed.
    pub observe: bool,
    /// The active compose profiles (for the compose CLI's `--profile`).
    pub profiles: Vec<String>,
    /// Where its compose keys are written, for the located errors of its
    /// Quadlet units ([`crate::core::quadlet::stack_units`]).
    pub sites: crate::core::quadlet::Sites,
    /// Each service's `x-magos` soak keys (`soak`, `rollback`).
    pub soak: std::collections::BTreeMap<String, crate::core::compose::soak::SoakOptions>,
}

/// Why a stack read from the repository cannot be applied. It renders as the
/// sentence `plan`, `apply` and the daemon report for the stack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    /// Its files cannot be read as one compose project.
    #[error("the stack cannot be loaded: {0}")]
    Load(LoadError),
    /// It asks what the host owner's trust boundary (`apply.allow`) refuses:
    /// the first refusal, and how many more there are.
    #[error("{first}{}", more_refusals(*.more))]
    Refused {
        /// The first refused use, at its file and line.
        first: Diagnostic,
        /// How many other uses are refused.
        more: usize,
    },
    /// Its conversion found an error (the first one, located).
    #[error("{0}")]
    Invalid(Diagnostic),
    /// A SOPS-encrypted file it mounts cannot be prepared.
    #[error("{0}")]
    Sealed(String),
    /// A `build:` context cannot be read.
    #[error("{0}")]
    Build(super::build::ServiceContextError),
    /// A definition of it failed its soak and is held back, with no last good
    /// image to run instead: the stack is left as it runs.
    #[error("{0}")]
    Held(String),
    /// It uses SOPS-encrypted files but goes to the compose CLI, which cannot be
    /// given them.
    #[error(
        "the stack uses SOPS-encrypted files ({}), which Magos injects only when it applies a stack itself, not through the compose CLI",
        .files.join(", ")
    )]
    SealedThroughCli {
        /// The encrypted files, relative to the stack's folder.
        files: Vec<String>,
    },
}

fn more_refusals(more: usize) -> String {
    match more {
        0 => String::new(),
        n => format!(" (and {n} more refusals)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diag::Pos;

    #[test]
    fn prepare_errors_render_as_the_reported_sentences() {
        let first = Diagnostic::error("web/compose.yaml", Pos::START, "privileged: refused");
        let one = PrepareError::Refused {
            first: first.clone(),
            more: 0,
        };
        assert_eq!(one.to_string(), first.to_string());
        let three = PrepareError::Refused {
            first: first.clone(),
            more: 2,
        };
        assert_eq!(three.to_string(), format!("{first} (and 2 more refusals)"));
        assert_eq!(
            PrepareError::SealedThroughCli {
                files: vec!["a.env".into(), "b.yaml".into()]
            }
            .to_string(),
            "the stack uses SOPS-encrypted files (a.env, b.yaml), which Magos injects only when it applies a stack itself, not through the compose CLI"
        );
    }
}
