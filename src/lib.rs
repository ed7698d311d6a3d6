//! Magos Dominus: a podman-native GitOps daemon for homelabs.
//!
//! # Layout
//! - [`core`]: the pure core (annotations, policies, rewrites, planning, drift).
//!   No I/O.
//! - [`config`]: the configuration schema and its layered loading.
//! - [`logging`]: the `tracing` subscriber.
//! - [`repo`]: reads a repository checkout's stack files for the core.
//! - [`cli`]: the command-line interface; the only module that prints results.
//!
//! `ARCHITECTURE.md` has the code map and the invariants.

pub mod cli;
pub mod config;
pub mod core;
pub mod logging;
pub mod repo;
