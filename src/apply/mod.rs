//! The apply edge: reads what Podman runs into the core's terms ([`observe`]), turns
//! specs into libpod create requests ([`generate`]) and carries out a plan
//! ([`execute`]). Unix only: it talks to the local Podman socket.
//!
//! Apply never touches an object without Magos's or a managed project's labels;
//! the plan already refuses such stacks, and removals here check labels again.

pub mod execute;
pub mod generate;
pub mod observe;

pub use execute::{ApplyError, StackResult, apply_stack, prune};
pub use observe::observe;
