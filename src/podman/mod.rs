//! A thin client of Podman's libpod REST API over its unix socket.
//!
//! - [`socket`]: where the API socket is (configuration, then the rootless and the
//!   rootful default) and the one error that says how to enable it.
//! - [`wire`]: the JSON bodies exactly as Podman 5 sends and reads them, written from
//!   its Go types. They are not domain types: planning and drift translate them.
//! - [`Client`]: one method per endpoint, every request under a timeout, the
//!   connection-level retries that make a socket-activated service that starts and
//!   exits on its own look like an always-on one.
//!
//! Requests go to the versioned base `/v5.0.0/libpod/…`, so Podman answers in its
//! version 5 format; [`Client::check_version`] refuses an older server.
//!
//! The module never prints: pull progress goes to a [`PullProgress`] the caller
//! implements.

mod client;
mod error;
mod retry;
pub mod signal;
pub mod sigpolicy;
pub mod socket;
mod stream;
mod uri;
pub mod wire;

pub use client::{
    BuildOptions, Client, ClientOptions, ContainerFilters, EventFilters, ExecOutput, PullOptions,
    PullPolicy, PullProgress, PulledImage,
};
pub use error::PodmanError;
pub use retry::RetryPolicy;
pub use socket::{locate_socket, socket_candidates};

/// The API version Magos speaks; it is the prefix of every request path.
pub const API_VERSION: &str = "5.0.0";

/// The oldest Podman major version Magos works with.
pub const MIN_PODMAN_MAJOR: u64 = 5;
