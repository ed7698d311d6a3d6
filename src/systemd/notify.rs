//! The `sd_notify` protocol, spoken directly: one datagram of `KEY=VALUE` lines to
//! `$NOTIFY_SOCKET`, a filesystem path or (leading `@`) a Linux abstract socket.
//!
//! The `sd-notify` crate maps `@name` to a filesystem path, which breaks under
//! systemd setups that hand out abstract sockets, so the protocol (a dozen lines)
//! is implemented here.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use crate::config::Env;

/// One state change reported to systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `READY=1`: start-up finished.
    Ready,
    /// `STATUS=…`: a one-line status shown by `systemctl status`.
    Status(String),
    /// `WATCHDOG=1`: the service is alive and making progress.
    Watchdog,
    /// `STOPPING=1`: shutting down.
    Stopping,
    /// `RELOADING=1`: configuration reload started (send `Ready` when done).
    Reloading,
    /// `EXTEND_TIMEOUT_USEC=…`: the current start-up/shutdown step needs this
    /// much more time.
    ExtendTimeout(Duration),
}

impl Notice {
    fn write(&self, out: &mut String) {
        match self {
            Notice::Ready => out.push_str("READY=1\n"),
            Notice::Status(s) => {
                // A status is one line; systemd would cut at the first newline.
                let line: String = s
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                out.push_str("STATUS=");
                out.push_str(&line);
                out.push('\n');
            }
            Notice::Watchdog => out.push_str("WATCHDOG=1\n"),
            Notice::Stopping => out.push_str("STOPPING=1\n"),
            Notice::Reloading => out.push_str("RELOADING=1\n"),
            Notice::ExtendTimeout(d) => {
                out.push_str(&format!("EXTEND_TIMEOUT_USEC={}\n", d.as_micros()))
            }
        }
    }
}

/// Encodes notices as one datagram payload.
pub fn encode(notices: &[Notice]) -> String {
    let mut out = String::new();
    for n in notices {
        n.write(&mut out);
    }
    out
}

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier for this process, or `None` when not started by systemd
    /// (`NOTIFY_SOCKET` unset). `pid` is this process's id: a `WATCHDOG_PID` for
    /// another process means the watchdog is not ours.
    pub fn from_env(env: &Env, pid: u32) -> io::Result<Option<Self>> {
        let Some(target) = env.get("NOTIFY_SOCKET").filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let addr = match target.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
            None => SocketAddr::from_pathname(target)?,
        };
        let watchdog_for_us = match env.get("WATCHDOG_PID") {
            Some(p) => p.trim().parse::<u32>().ok() == Some(pid),
            None => true,
        };
        let watchdog = env
            .get("WATCHDOG_USEC")
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && watchdog_for_us)
            .map(Duration::from_micros);
        Ok(Some(Self {
            socket: UnixDatagram::unbound()?,
            addr,
            watchdog,
        }))
    }

    /// The watchdog interval systemd expects (`WATCHDOG_USEC`), if enabled.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often to send `WATCHDOG=1`: half the interval, as systemd advises.
    pub fn watchdog_ping_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Sends notices in one datagram.
    pub fn notify(&self, notices: &[Notice]) -> io::Result<()> {
        self.socket
            .send_to_addr(encode(notices).as_bytes(), &self.addr)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::test_env as env;

    #[test]
    fn encodes_one_line_per_notice() {
        let text = encode(&[
            Notice::Ready,
            Notice::Status("3 stacks in sync\nsecond line".into()),
            Notice::ExtendTimeout(Duration::from_secs(90)),
        ]);
        assert_eq!(
            text,
            "READY=1\nSTATUS=3 stacks in sync second line\nEXTEND_TIMEOUT_USEC=90000000\n"
        );
    }

    #[test]
    fn absent_without_notify_socket() {
        assert!(Notifier::from_env(&Env::new(), 1).unwrap().is_none());
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_env(&env(&[("NOTIFY_SOCKET", path.to_str().unwrap())]), 1)
            .unwrap()
            .unwrap();
        n.notify(&[Notice::Ready, Notice::Status("ok".into())])
            .unwrap();
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=ok\n");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("magos-test-{}-{}", std::process::id(), line!());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let n = Notifier::from_env(&env(&[("NOTIFY_SOCKET", &format!("@{name}"))]), 1)
            .unwrap()
            .unwrap();
        n.notify(&[Notice::Watchdog]).unwrap();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1\n");
    }

    #[test]
    fn watchdog_only_for_our_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        let _server = UnixDatagram::bind(&path).unwrap();
        let p = path.to_str().unwrap();
        let ours = Notifier::from_env(
            &env(&[
                ("NOTIFY_SOCKET", p),
                ("WATCHDOG_USEC", "10000000"),
                ("WATCHDOG_PID", "42"),
            ]),
            42,
        )
        .unwrap()
        .unwrap();
        assert_eq!(ours.watchdog(), Some(Duration::from_secs(10)));
        assert_eq!(ours.watchdog_ping_interval(), Some(Duration::from_secs(5)));
        let theirs = Notifier::from_env(
            &env(&[
                ("NOTIFY_SOCKET", p),
                ("WATCHDOG_USEC", "10000000"),
                ("WATCHDOG_PID", "7"),
            ]),
            42,
        )
        .unwrap()
        .unwrap();
        assert_eq!(theirs.watchdog(), None);
    }
}
