//! Magos Dominus: a podman-native GitOps daemon for homelabs.
//!
//! # Layout
//! - [`apply`]: observe Podman and carry out plans through its API (unix only).
//! - [`core`]: the pure core (annotations, policies, rewrites, planning, drift).
//!   No I/O.
//! - [`daemon`]: the reconcile loop's schedule (triggers, coalescing, backoff,
//!   watchdog).
//! - [`config`]: the configuration schema and its layered loading.
//! - [`engine`]: the one layer that combines the edges: source, pin and
//!   write-back, with the clients that last between operations.
//! - [`doctor`]: the rootless network doctor: pasta, the rootless netns,
//!   published ports and DNS checked, and healed by restarts (Linux).
//! - [`git`]: Magos's clone of the repository: sync, commit, push.
//! - [`logging`]: the `tracing` subscriber.
//! - [`pin`]: the pin pass: repository + policies + registries → each
//!   service's choice, digest and the file edits that pin it.
//! - [`podman`]: the libpod REST API client (unix only).
//! - [`registry`]: the registry edge: tags, digests and manifests from OCI
//!   registries, with Podman's credentials and insecure-registry settings.
//! - [`repo`]: reads a repository checkout's stack files for the core.
//! - [`secrets`]: SOPS + age decryption and the private runtime folder.
//! - [`cli`]: the command-line interface; the only module that prints results.
//! - [`server`]: the daemon's HTTP endpoint (health, metrics, webhooks).
//! - [`systemd`]: the `sd_notify` protocol (Linux).
//!
//! `ARCHITECTURE.md` has the code map and the invariants.

#[cfg(unix)]
pub mod apply;
pub mod cli;
pub mod config;
pub mod core;
pub mod daemon;
#[cfg(unix)]
pub mod docker;
#[cfg(target_os = "linux")]
pub mod doctor;
pub mod engine;
pub mod git;
pub mod lock;
pub mod logging;
pub mod notify;
pub mod pin;
#[cfg(unix)]
pub mod podman;
pub mod registry;
pub mod repo;
pub mod scan;
pub mod secrets;
pub mod server;
pub mod systemd;
