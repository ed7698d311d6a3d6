//! `podman system service --time=1` behind `systemd-socket-activate`, as
//! `podman.socket` runs it: the activator listens and hands the socket to the
//! service on the first connection; the service exits after a second without
//! clients, and (as systemd would) a new activator takes the socket again.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use super::{Testbed, wait_until};

/// How long the activator may take to listen, and the service to exit.
const WAIT: Duration = Duration::from_secs(60);

/// A socket-activated API service of the test user on `socket`; the activator
/// is killed when dropped.
pub struct Activated<'a> {
    tb: &'a Testbed,
    socket: PathBuf,
    child: Option<Child>,
}

impl<'a> Activated<'a> {
    /// Starts an activator listening on `socket`, and waits until it listens.
    pub fn start(tb: &'a Testbed, socket: &Path) -> Self {
        let mut a = Self {
            tb,
            socket: socket.to_path_buf(),
            child: None,
        };
        a.spawn();
        a
    }

    /// The socket the activator listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Starts a new activator on the socket (after the last one exited), and
    /// waits until it listens.
    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let child = self
            .tb
            .as_user()
            .arg(format!("HOME={}", self.tb.home()))
            .arg(format!("USER={}", self.tb.user))
            .arg(format!("LOGNAME={}", self.tb.user))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(format!("XDG_RUNTIME_DIR={}", self.tb.runtime_dir.display()))
            .arg("PODMAN_IGNORE_CGROUPSV1_WARNING=1")
            .arg("TMPDIR=/var/tmp")
            .arg("systemd-socket-activate")
            .arg("--listen")
            .arg(&self.socket)
            .args(["podman", "system", "service", "--time=1"])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run systemd-socket-activate as the test user");
        self.child = Some(child);
        let socket = self.socket.clone();
        assert!(
            wait_until(WAIT, Duration::from_millis(20), || {
                magos::podman::socket::probe_path(&socket)
                    == magos::podman::socket::PathKind::Socket
            }),
            "systemd-socket-activate did not create {}",
            self.socket.display()
        );
    }

    /// Waits until the service (and so the activator) has exited.
    pub fn wait_exit(&mut self) {
        let child = self.child.as_mut().expect("an activator runs");
        let exited = wait_until(WAIT, Duration::from_millis(50), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        assert!(exited, "the idle service did not exit");
        self.child = None;
    }
}

impl Drop for Activated<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
