//! Magos Dominus: a podman-native GitOps daemon for homelabs.
//!
//! # Layout
//! - [`core`]: the pure core (annotations, policies, rewrites, planning, drift).
//!   No I/O.
//! - [`config`]: the configuration schema and its layered loading.
//! - [`git`]: Magos's clone of the repository: sync, commit, push.
//! - [`logging`]: the `tracing` subscriber.
//! - [`cli`]: the command-line interface; the only module that prints results.
//!
//! `ARCHITECTURE.md` has the code map and the invariants.

pub mod cli;
pub mod config;
pub mod core;
pub mod git;
pub mod logging;
