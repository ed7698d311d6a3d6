//! `magos doctor` with `runtime: docker`: the Docker Engine's socket, its
//! version (the API version agreed) and its storage driver. The rootless
//! networking checks (pasta, the rootless netns, netavark) are Podman's and do
//! not apply; there is nothing to heal.

use crate::config::Env;
use crate::docker::{Client, ClientOptions};

use super::model::{Cause, Check, Report, Status};

/// Storage drivers that share layers between images and containers.
const LAYERED: &[&str] = &["overlay2", "fuse-overlayfs", "btrfs", "zfs", "overlayfs"];

/// Checks the engine `env` points at (`DOCKER_HOST`, else the usual sockets).
pub async fn examine(env: &Env) -> Report {
    let mut checks = Vec::new();
    let socket = match crate::docker::locate_socket(env) {
        Ok(s) => s,
        Err(e) => {
            checks.push(Check::bad(
                "socket",
                "docker",
                Status::Fail,
                Cause::Outside,
                e.to_string(),
                "start Docker, or set DOCKER_HOST=unix:///path/to/docker.sock",
            ));
            return Report {
                checks,
                heals: Vec::new(),
            };
        }
    };
    checks.push(Check::pass(
        "socket",
        "docker",
        format!("a socket at {}", socket.display()),
    ));
    let mut client = Client::new(&socket, ClientOptions::default());
    match client.negotiate().await {
        Ok(v) => checks.push(Check::pass(
            "version",
            "docker",
            format!(
                "Docker {} ({}/{}), API {} (magos speaks {})",
                v.version,
                v.os,
                v.arch,
                v.api_version,
                client.api_version()
            ),
        )),
        Err(e) => {
            checks.push(Check::bad(
                "version",
                "docker",
                Status::Fail,
                Cause::Outside,
                e.to_string(),
                "upgrade Docker Engine to 20.10 or newer, and check that the socket is readable by this user (the `docker` group)",
            ));
            return Report {
                checks,
                heals: Vec::new(),
            };
        }
    }
    match client.info().await {
        Ok(info) if LAYERED.contains(&info.driver.as_str()) => checks.push(Check::pass(
            "storage-driver",
            "docker",
            format!("{} under {}", info.driver, info.docker_root_dir),
        )),
        Ok(info) if info.driver == "vfs" => checks.push(Check::bad(
            "storage-driver",
            "docker",
            Status::Warn,
            Cause::Outside,
            format!(
                "vfs under {}: every layer is a full copy, so pulls and creates are slow and take much space",
                info.docker_root_dir
            ),
            "use overlay2 (`\"storage-driver\": \"overlay2\"` in /etc/docker/daemon.json) on a filesystem that supports overlay mounts",
        )),
        Ok(info) => checks.push(Check::pass(
            "storage-driver",
            "docker",
            format!("{} under {}", info.driver, info.docker_root_dir),
        )),
        Err(e) => checks.push(Check::bad(
            "storage-driver",
            "docker",
            Status::Fail,
            Cause::Outside,
            e.to_string(),
            "check the engine's log",
        )),
    }
    checks.push(Check::skip(
        "network",
        "docker",
        "the rootless networking checks (pasta, rootless netns) are Podman's",
    ));
    Report {
        checks,
        heals: Vec::new(),
    }
}
