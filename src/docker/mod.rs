//! A thin client of the Docker Engine API over its unix socket, on the same
//! hyper/hyperlocal stack as the Podman client (and sharing no code with it: the
//! edges do not import each other). Planning, apply and drift are built on it,
//! in `apply::docker`, not in it.
//!
//! - [`socket`]: where the socket is: `DOCKER_HOST` (`unix://` only), else
//!   `/var/run/docker.sock`, else the rootless `$XDG_RUNTIME_DIR/docker.sock`.
//! - [`Client`]: one method per endpoint (ping, version, info; containers
//!   list/inspect/create/start/stop/restart/rename/remove; images list and pull
//!   by digest with progress; networks and volumes list/create/remove). Requests
//!   go to `/v<API>/…`, the API version agreed with the engine by
//!   [`Client::connect`] (the engine's own, at most [`MAX_API`]); an engine older
//!   than [`MIN_API`] (Docker 20.10) is refused.
//! - [`events`]: `GET /events`, the engine's event stream (filtered by type,
//!   action, container and label), one parsed event per line.
//! - [`wire`]: serde structs of the JSON bodies; [`create`]: a service's
//!   [`crate::core::spec::ContainerSpec`] as a `POST /containers/create` body,
//!   labelled as `docker compose` labels its containers.

mod client;
pub mod create;
mod error;
pub mod events;
pub mod socket;
pub mod wire;

pub use client::{Client, ClientOptions};
pub use error::DockerError;
pub use events::{Event, EventFilters, EventStream};
pub use socket::{locate_socket, socket_candidates};

/// The newest API version Magos speaks (Docker 26).
pub const MAX_API: (u32, u32) = (1, 45);
/// The oldest API version Magos accepts (Docker 20.10).
pub const MIN_API: (u32, u32) = (1, 41);
