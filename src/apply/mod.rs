//! The apply edge: reads what Podman runs into the core's terms ([`observe`]), turns
//! specs into libpod create requests ([`generate`]) and carries out a plan
//! ([`execute`]), hands stacks the native path cannot apply to the compose CLI
//! ([`compose_cli`]), creates missing bind folders and secrets from the
//! environment before a container ([`prepare`]), decrypts a stack's SOPS-encrypted inputs just before it is
//! applied ([`sealed`]) and does all of it for a whole repository ([`repo`]). Unix only: it talks to the local Podman socket.
//!
//! Apply never touches an object without Magos's or a managed project's labels;
//! the plan already refuses such stacks, and removals here check labels again.

pub mod backend;
pub mod build;
pub mod compose_cli;
mod control;
mod display;
pub mod docker;
mod error;
pub mod execute;
pub mod generate;
pub mod observe;
pub mod prepare;
pub mod prepared;
#[cfg(target_os = "linux")]
pub mod quadlet;
pub mod repo;
pub mod sealed;

pub use control::{Progress, Stop};
pub use execute::{ApplyError, PullDisplay, StackResult, apply_stack, prune};
pub use observe::observe;
pub use repo::{ApplyReport, RepoOptions, apply_repo, drift_repo, plan_repo};
