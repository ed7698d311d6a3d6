//! Magos Dominus: a podman-native GitOps daemon for homelabs.
//!
//! # Layout
//! - [`core`]: the pure core (annotations, policies, rewrites, planning, drift).
//!   No I/O.
//! - [`config`]: the configuration schema and its layered loading.
//! - [`logging`]: the `tracing` subscriber.
//! - [`secrets`]: SOPS + age decryption and the private runtime folder.
//! - [`cli`]: the command-line interface; the only module that prints results.
//!
//! `ARCHITECTURE.md` has the code map and the invariants.

pub mod cli;
pub mod config;
pub mod core;
pub mod logging;
pub mod secrets;
