//! One stack of the repository, read and converted: what [`super::repo`]
//! plans, applies and compares, and what [`super::compose_cli`] hands to the
//! compose CLI.

use std::path::PathBuf;

use crate::core::convert::Route;
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
    pub error: Option<String>,
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
