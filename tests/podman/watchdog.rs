//! systemd's side of the notify protocol, played for real against `magos run`:
//! an abstract `@` datagram socket as `NOTIFY_SOCKET` and `WATCHDOG_USEC` set.
//! READY, STATUS and periodic WATCHDOG=1 arrive; when the Podman API hangs (a
//! proxy in front of the real socket stops passing bytes), the pings stop and
//! `/healthz` fails, so systemd would restart the service; when the API answers
//! again, the loop recovers and the pings come back.

use std::io::{Read as _, Write as _};
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::{self, Testbed, testbed};

/// A unix-socket proxy to the Podman API that can be made to hang: while
/// `hang` is set, no byte passes in either direction, on new or open
/// connections.
struct Proxy {
    hang: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
}

impl Proxy {
    fn start(listen: &Path, upstream: &Path) -> Self {
        let listener = UnixListener::bind(listen).unwrap();
        listener.set_nonblocking(true).unwrap();
        let hang = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (h, d, up) = (hang.clone(), done.clone(), upstream.to_owned());
        std::thread::spawn(move || {
            while !d.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = UnixStream::connect(&up) else {
                            continue;
                        };
                        for (from, to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            let (h, d) = (h.clone(), d.clone());
                            std::thread::spawn(move || pipe(from, to, &h, &d));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self { hang, done }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

/// Copies `from` to `to` until either side closes, holding still while `hang`.
fn pipe(mut from: UnixStream, mut to: UnixStream, hang: &AtomicBool, done: &AtomicBool) {
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 16 * 1024];
    while !done.load(Ordering::Acquire) {
        if hang.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

struct Running<'a> {
    tb: &'a Testbed,
    child: Option<Child>,
    project: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.tb.remove_project(&self.project);
    }
}

/// Notices received, with when they came.
struct Notices {
    sock: UnixDatagram,
    seen: Vec<(Instant, String)>,
}

impl Notices {
    /// Reads until a notice starting with `want` arrives after `since`.
    fn wait(&mut self, want: &str, since: Instant, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self
                .seen
                .iter()
                .any(|(t, l)| *t >= since && l.starts_with(want))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no `{want}` within {}s; saw {:?}",
                limit.as_secs(),
                self.seen.iter().map(|(_, l)| l).collect::<Vec<_>>()
            );
            self.read_for(Duration::from_millis(100));
        }
    }

    /// Reads whatever arrives for `span`.
    fn read_for(&mut self, span: Duration) {
        let end = Instant::now() + span;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let now = Instant::now();
                self.seen.extend(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .map(|l| (now, l.to_owned())),
                );
            }
        }
    }
}

fn healthz(port: u16) -> u16 {
    support::http_get(port, "/healthz").map_or(0, |r| r.status)
}

#[test]
fn watchdog_pings_stop_while_podman_hangs_and_resume_after() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgwd").replace('-', "_");
    let port = support::free_port();

    let repo = tb.user_dir("magos-watchdog-repo");
    let stack = repo.path().join("app");
    std::fs::create_dir(&stack).unwrap();
    let image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    std::fs::write(
        stack.join("compose.yaml"),
        format!(
            "name: {project}\nservices:\n  web:\n    image: {image}@{}\n    stop_signal: SIGKILL\n",
            tb.manifest_digest(image)
        ),
    )
    .unwrap();
    let config = dir.path().join("magos.yaml");
    std::fs::write(
        &config,
        format!(
            "apply:\n  instance: {project}\ndaemon:\n  interval: 1s\n  jitter: 0%\n  stuck_after: 3s\n  listen: 127.0.0.1:{port}\nstate_dir: {}\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let upstream = tb
        .container_host
        .strip_prefix("unix://")
        .expect("a unix CONTAINER_HOST");
    let proxied = dir.path().join("podman.sock");
    let proxy = Proxy::start(&proxied, Path::new(upstream));

    // systemd's side: an abstract socket, as systemd itself uses.
    let name = format!("magos-test-notify-{project}");
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut notices = Notices {
        sock,
        seen: Vec::new(),
    };
    let child = Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(["--config", config.to_str().unwrap(), "run", "--repo"])
        .arg(repo.path())
        .env("CONTAINER_HOST", format!("unix://{}", proxied.display()))
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("MD_REPO")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start magos run");
    let mut running = Running {
        tb,
        child: Some(child),
        project,
    };

    let start = Instant::now();
    notices.wait("READY=1", start, Duration::from_secs(120));
    notices.wait("STATUS=1/1 stacks in sync", start, Duration::from_secs(10));
    // Periodic: two pings, one after the other.
    let ready = Instant::now();
    notices.wait("WATCHDOG=1", ready, Duration::from_secs(5));
    let first = Instant::now();
    notices.wait("WATCHDOG=1", first, Duration::from_secs(5));
    assert_eq!(healthz(port), 200);

    // The API hangs: the next pass makes no progress, /healthz fails after
    // `stuck_after`, and from then on no ping is sent.
    proxy.hang.store(true, Ordering::Release);
    let deadline = Instant::now() + Duration::from_secs(60);
    while healthz(port) == 200 {
        assert!(
            Instant::now() < deadline,
            "/healthz never reported the hung loop"
        );
        notices.read_for(Duration::from_millis(200));
    }
    let stuck = Instant::now();
    // Six ping periods of silence.
    notices.read_for(Duration::from_secs(3));
    let late: Vec<_> = notices
        .seen
        .iter()
        .filter(|(t, l)| *t >= stuck && l == "WATCHDOG=1")
        .collect();
    assert!(late.is_empty(), "pinged while stuck: {late:?}");

    // The API answers again: the pass finishes and the pings come back.
    proxy.hang.store(false, Ordering::Release);
    let released = Instant::now();
    notices.wait("WATCHDOG=1", released, Duration::from_secs(30));
    assert_eq!(healthz(port), 200);

    let mut child = running.child.take().unwrap();
    support::sigterm(&child);
    let code = child.wait().unwrap();
    let mut logs = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut logs);
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
    drop(proxy);
}
