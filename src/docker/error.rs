//! [`DockerError`]: what can go wrong talking to the Docker Engine.

use std::path::PathBuf;
use std::time::Duration;

/// A failed exchange with the Docker Engine.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// `DOCKER_HOST` is not a `unix://` socket.
    #[error(
        "DOCKER_HOST={host}: magos talks to Docker over its unix socket only; set DOCKER_HOST=unix:///path/to/docker.sock or unset it"
    )]
    UnsupportedHost {
        /// The value.
        host: String,
    },
    /// No socket at any of the usual places.
    #[error(
        "no Docker Engine socket at {}; start Docker (`systemctl enable --now docker`, or `dockerd-rootless-setuptool.sh install` for rootless) or set DOCKER_HOST=unix:///path/to/docker.sock",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoSocket {
        /// The paths looked at.
        tried: Vec<PathBuf>,
    },
    /// The socket could not be connected to, or the exchange broke.
    #[error("{endpoint}: cannot talk to the Docker Engine at {}", socket.display())]
    Unreachable {
        /// The socket.
        socket: PathBuf,
        /// `METHOD /path`.
        endpoint: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No answer in time.
    #[error("{endpoint}: no answer from the Docker Engine within {}s", after.as_secs())]
    Timeout {
        /// `METHOD /path`.
        endpoint: String,
        /// The limit.
        after: Duration,
    },
    /// The engine answered with an error status.
    #[error("{endpoint} ({object}): {status}: {message}")]
    Api {
        /// `METHOD /path`.
        endpoint: String,
        /// What it was about.
        object: String,
        /// The HTTP status.
        status: u16,
        /// The engine's message.
        message: String,
    },
    /// A pull failed after the engine accepted it.
    #[error("pull {image}: {message}")]
    Pull {
        /// What was pulled.
        image: String,
        /// The engine's message.
        message: String,
    },
    /// An answer that is not the JSON expected.
    #[error("{endpoint}: unexpected answer")]
    Decode {
        /// `METHOD /path`.
        endpoint: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The engine speaks an API older than Magos needs.
    #[error(
        "the Docker Engine at {} speaks API {version} (Docker {engine}); magos needs API 1.41 (Docker 20.10) or newer",
        socket.display()
    )]
    UnsupportedVersion {
        /// Its API version.
        version: String,
        /// Its engine version.
        engine: String,
        /// The socket.
        socket: PathBuf,
    },
    /// The request could not be expressed.
    #[error("{0}")]
    Request(String),
}

impl DockerError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            DockerError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// `404`: no such object.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// `409`: the name is taken (or the object is in use).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }
}
