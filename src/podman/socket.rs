//! Where the libpod API socket is.
//!
//! The order is: the configured `podman.socket` (which `CONTAINER_HOST` sets), then
//! the rootless default `$XDG_RUNTIME_DIR/podman/podman.sock`, then the rootful
//! `/run/podman/podman.sock`. [`socket_candidates`] is the pure part; [`locate_socket`]
//! adds the existence check.

use std::path::{Path, PathBuf};

use crate::config::Env;

use super::PodmanError;

/// The rootful socket's path.
pub const ROOTFUL_SOCKET: &str = "/run/podman/podman.sock";

/// Where to look, in order. A configured socket is the only candidate: when it is
/// set, Magos does not guess further.
pub fn socket_candidates(configured: Option<&Path>, env: &Env) -> Candidates {
    if let Some(path) = configured {
        return Candidates {
            paths: vec![path.to_path_buf()],
            configured: true,
        };
    }
    let mut paths = Vec::new();
    if let Some(dir) = env.get("XDG_RUNTIME_DIR").filter(|d| d.starts_with('/')) {
        paths.push(Path::new(dir).join("podman").join("podman.sock"));
    }
    paths.push(PathBuf::from(ROOTFUL_SOCKET));
    Candidates {
        paths,
        configured: false,
    }
}

/// The socket paths to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates {
    /// The paths, best first.
    pub paths: Vec<PathBuf>,
    /// Whether the only path is the configured one.
    pub configured: bool,
}

/// What a path turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Nothing is there.
    Missing,
    /// A unix socket.
    Socket,
    /// Something that is not a socket.
    Other,
}

/// The first candidate that is a socket. `probe` says what a path is; use
/// [`probe_path`] for the real filesystem.
pub fn choose_socket(
    candidates: &Candidates,
    probe: impl Fn(&Path) -> PathKind,
) -> Result<PathBuf, PodmanError> {
    for path in &candidates.paths {
        match probe(path) {
            PathKind::Socket => return Ok(path.clone()),
            PathKind::Other if candidates.configured => {
                return Err(PodmanError::NotASocket { path: path.clone() });
            }
            PathKind::Other | PathKind::Missing => {}
        }
    }
    Err(PodmanError::SocketMissing {
        tried: candidates.paths.clone(),
        configured: candidates.configured,
    })
}

/// What is at `path` on this machine.
pub fn probe_path(path: &Path) -> PathKind {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => PathKind::Socket,
        Ok(_) => PathKind::Other,
        Err(_) => PathKind::Missing,
    }
}

/// Finds the API socket: the configured one, else the rootless, else the rootful
/// default. A missing socket is one error that says how to enable it.
pub fn locate_socket(configured: Option<&Path>, env: &Env) -> Result<PathBuf, PodmanError> {
    choose_socket(&socket_candidates(configured, env), probe_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::test_env as env;

    #[test]
    fn configured_socket_is_the_only_candidate() {
        let c = socket_candidates(
            Some(Path::new("/srv/podman.sock")),
            &env(&[("XDG_RUNTIME_DIR", "/run/user/1000")]),
        );
        assert_eq!(c.paths, vec![PathBuf::from("/srv/podman.sock")]);
        assert!(c.configured);
    }

    #[test]
    fn rootless_then_rootful() {
        let c = socket_candidates(None, &env(&[("XDG_RUNTIME_DIR", "/run/user/1000")]));
        assert_eq!(
            c.paths,
            vec![
                PathBuf::from("/run/user/1000/podman/podman.sock"),
                PathBuf::from(ROOTFUL_SOCKET)
            ]
        );
        assert!(!c.configured);
    }

    #[test]
    fn no_or_relative_runtime_dir_leaves_the_rootful_socket() {
        for e in [env(&[]), env(&[("XDG_RUNTIME_DIR", "run/user/1")])] {
            assert_eq!(
                socket_candidates(None, &e).paths,
                vec![PathBuf::from(ROOTFUL_SOCKET)]
            );
        }
    }

    #[test]
    fn first_existing_socket_wins() {
        let c = socket_candidates(None, &env(&[("XDG_RUNTIME_DIR", "/run/user/1000")]));
        let chosen = choose_socket(&c, |p| {
            if p == Path::new(ROOTFUL_SOCKET) {
                PathKind::Socket
            } else {
                PathKind::Missing
            }
        })
        .unwrap();
        assert_eq!(chosen, PathBuf::from(ROOTFUL_SOCKET));
    }

    #[test]
    fn missing_socket_says_how_to_enable_it() {
        let c = socket_candidates(None, &env(&[("XDG_RUNTIME_DIR", "/run/user/1000")]));
        let err = choose_socket(&c, |_| PathKind::Missing).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/run/user/1000/podman/podman.sock"), "{msg}");
        assert!(msg.contains(ROOTFUL_SOCKET), "{msg}");
        assert!(
            msg.contains("systemctl --user enable --now podman.socket"),
            "{msg}"
        );
    }

    #[test]
    fn configured_path_that_is_not_a_socket_is_named() {
        let c = socket_candidates(Some(Path::new("/etc/passwd")), &env(&[]));
        let err = choose_socket(&c, |_| PathKind::Other).unwrap_err();
        assert!(err.to_string().contains("/etc/passwd is not a unix socket"));
    }

    #[test]
    fn real_probe_sees_a_socket_and_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(probe_path(&sock), PathKind::Socket);
        assert_eq!(probe_path(&file), PathKind::Other);
        assert_eq!(probe_path(&dir.path().join("none")), PathKind::Missing);
        assert_eq!(locate_socket(Some(&sock), &Env::new()).unwrap(), sock);
    }
}
