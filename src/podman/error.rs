//! The one error type of the Podman client.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong talking to Podman.
#[derive(Debug, thiserror::Error)]
pub enum PodmanError {
    /// No API socket exists where Magos looked.
    #[error(
        "no podman API socket at {}{}; enable it with `systemctl --user enable --now podman.socket` (rootless) or `systemctl enable --now podman.socket` (root){}",
        join_paths(tried),
        if *configured { " (from podman.socket / CONTAINER_HOST)" } else { "" },
        if *configured { "" } else { ", or set podman.socket / CONTAINER_HOST" }
    )]
    SocketMissing {
        /// The paths that were tried, in order.
        tried: Vec<PathBuf>,
        /// Whether the path came from the configuration.
        configured: bool,
    },
    /// The configured socket path exists but is something else.
    #[error("{} is not a unix socket (podman.socket / CONTAINER_HOST)", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The socket did not accept connections, even after retrying for a while
    /// (or at once, when retrying cannot help, e.g. permission denied).
    #[error(
        "cannot connect to the podman API socket {} ({endpoint}, {attempts} attempt{}); is the podman service running and the socket yours? (`systemctl --user enable --now podman.socket`)",
        socket.display(),
        if *attempts == 1 { "" } else { "s" }
    )]
    Unreachable {
        /// The socket.
        socket: PathBuf,
        /// `METHOD /path` of the request.
        endpoint: String,
        /// How many connection attempts were made.
        attempts: u32,
        /// The last connection error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The connection failed after the request may have reached Podman.
    #[error("podman API {endpoint}: the connection failed")]
    Transport {
        /// `METHOD /path` of the request.
        endpoint: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Podman did not answer in time.
    #[error("podman API {endpoint}: no answer within {}s", after.as_secs_f64())]
    Timeout {
        /// `METHOD /path` of the request.
        endpoint: String,
        /// The time limit.
        after: Duration,
    },
    /// Podman answered with an error status; `message` is its own explanation.
    #[error(
        "podman API {endpoint} ({object}): {message} (HTTP {status}){}",
        network_backend_hint(message)
    )]
    Api {
        /// `METHOD /path` of the request.
        endpoint: String,
        /// The object concerned, e.g. `container web`.
        object: String,
        /// The HTTP status.
        status: u16,
        /// Podman's message (its `message`, else the body's text).
        message: String,
        /// Podman's `cause`, when it gave one.
        cause: Option<String>,
    },
    /// An answer was not the JSON Magos expects.
    #[error("podman API {endpoint}: unexpected answer: {source}")]
    Decode {
        /// `METHOD /path` of the request.
        endpoint: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A request body could not be written as JSON.
    #[error("podman API {endpoint}: cannot encode the request: {source}")]
    Encode {
        /// `METHOD /path` of the request.
        endpoint: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// An image pull failed; Podman reports this inside a successful answer.
    #[error("pulling image {reference} failed: {message}")]
    Pull {
        /// The reference that was pulled.
        reference: String,
        /// Podman's error text.
        message: String,
    },
    /// An image build failed; Podman reports this inside a successful answer.
    #[error("building image {image} failed: {message}")]
    Build {
        /// The name the image was to be tagged with.
        image: String,
        /// Podman's error text.
        message: String,
        /// The last step Podman started (`STEP 2/3: RUN make`), if any.
        step: Option<String>,
    },
    /// The server is older than Podman 5.
    #[error(
        "podman {version} at {} is too old; Magos needs podman 5 or newer",
        socket.display()
    )]
    UnsupportedVersion {
        /// The version the server reported.
        version: String,
        /// The socket.
        socket: PathBuf,
    },
}

impl PodmanError {
    /// The HTTP status of an API error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            PodmanError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether Podman said the object does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether Podman said the object already exists or conflicts (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }
}

/// A pointer to `magos doctor` when Podman failed because a program its
/// network backend runs is missing (netavark's `nft`/`iptables`, aardvark-dns).
fn network_backend_hint(message: &str) -> &'static str {
    let backend = message.contains("netavark") || message.contains("aardvark");
    let missing = message.contains("unable to execute")
        || message.contains("No such file or directory")
        || message.contains("executable file not found");
    if backend && missing {
        "; a program of Podman's network backend is missing: `magos doctor` names the package to install"
    } else {
        ""
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(message: &str) -> PodmanError {
        PodmanError::Api {
            endpoint: "POST /v5.0.0/libpod/containers/web_web_1/start".to_owned(),
            object: "container web_web_1".to_owned(),
            status: 500,
            message: message.to_owned(),
            cause: None,
        }
    }

    #[test]
    fn a_start_refused_for_a_missing_firewall_program_points_to_the_doctor() {
        // The text Podman 5.4 gave on Debian 13 without the nftables package.
        let err = api(
            "netavark: nftables error: unable to execute nft: No such file or directory (os error 2)",
        );
        let text = err.to_string();
        assert!(text.contains("unable to execute nft"), "{text}");
        assert!(
            text.ends_with("`magos doctor` names the package to install"),
            "{text}"
        );
        let other = api("container is already running").to_string();
        assert!(!other.contains("magos doctor"), "{other}");
        let missing_image = api("stat /no/such: No such file or directory").to_string();
        assert!(!missing_image.contains("magos doctor"), "{missing_image}");
    }
}
