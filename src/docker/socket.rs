//! Where the Docker Engine socket is: `DOCKER_HOST` when set (a `unix://` URL;
//! Magos speaks to the engine over its socket only), else the rootful
//! `/var/run/docker.sock`, else the rootless `$XDG_RUNTIME_DIR/docker.sock`.
//! [`socket_candidates`] is pure; [`locate_socket`] adds the existence check.

use std::path::{Path, PathBuf};

use crate::config::Env;

use super::DockerError;

/// The rootful socket's path.
pub const ROOTFUL_SOCKET: &str = "/var/run/docker.sock";

/// The paths to try, in order, or why `DOCKER_HOST` cannot be used. A set
/// `DOCKER_HOST` is the only candidate.
pub fn socket_candidates(env: &Env) -> Result<Vec<PathBuf>, DockerError> {
    if let Some(host) = env.get("DOCKER_HOST").filter(|h| !h.is_empty()) {
        return match host.strip_prefix("unix://") {
            Some(path) if path.starts_with('/') => Ok(vec![PathBuf::from(path)]),
            _ => Err(DockerError::UnsupportedHost { host: host.clone() }),
        };
    }
    let mut paths = vec![PathBuf::from(ROOTFUL_SOCKET)];
    if let Some(dir) = env.get("XDG_RUNTIME_DIR").filter(|d| d.starts_with('/')) {
        paths.push(Path::new(dir).join("docker.sock"));
    }
    Ok(paths)
}

/// The first candidate that is a unix socket.
pub fn locate_socket(env: &Env) -> Result<PathBuf, DockerError> {
    use std::os::unix::fs::FileTypeExt;
    let paths = socket_candidates(env)?;
    paths
        .iter()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket()))
        .cloned()
        .ok_or(DockerError::NoSocket { tried: paths })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env;

    #[test]
    fn docker_host_is_the_only_candidate() {
        let env = test_env(&[
            ("DOCKER_HOST", "unix:///run/x/docker.sock"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
        ]);
        assert_eq!(
            socket_candidates(&env).unwrap(),
            vec![PathBuf::from("/run/x/docker.sock")]
        );
    }

    #[test]
    fn rootful_then_rootless() {
        let env = test_env(&[("XDG_RUNTIME_DIR", "/run/user/1000")]);
        assert_eq!(
            socket_candidates(&env).unwrap(),
            vec![
                PathBuf::from("/var/run/docker.sock"),
                PathBuf::from("/run/user/1000/docker.sock")
            ]
        );
        assert_eq!(
            socket_candidates(&test_env(&[])).unwrap(),
            vec![PathBuf::from("/var/run/docker.sock")]
        );
    }

    #[test]
    fn a_tcp_docker_host_is_refused_with_the_reason() {
        let env = test_env(&[("DOCKER_HOST", "tcp://10.0.0.1:2375")]);
        let e = socket_candidates(&env).unwrap_err().to_string();
        assert!(
            e.contains("tcp://10.0.0.1:2375") && e.contains("unix://"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_socket_names_the_paths_tried() {
        let env = test_env(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
        let e = locate_socket(&env).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/docker.sock"), "{e}");
    }
}
