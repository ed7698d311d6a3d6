//! systemd's side of the notify protocol, played for real against `magos run`:
//! an abstract `@` datagram socket as `NOTIFY_SOCKET` and `WATCHDOG_USEC` set.
//! READY, STATUS and periodic WATCHDOG=1 arrive; when the Podman API hangs (a
//! proxy in front of the real socket stops passing bytes), the pings stop and
//! `/healthz` fails, so systemd would restart the service; when the API answers
//! again, the loop recovers and the pings come back. A pull that is slow but
//! moving (longer than `stuck_after` in all) is not a hang: the pings go on.

use std::io::{Read as _, Write as _};
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{self, Testbed, testbed};

/// A unix-socket proxy to the Podman API that can be made to hang: while
/// `hang` is set, no byte passes in either direction, on new or open
/// connections. While `slow` is set, an image pull's answer is held back
/// between its progress lines (as a pull through a slow registry proxy
/// comes), and `pulls` records when each pull's answer began and ended.
struct Proxy {
    hang: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
    pulls: Pulls,
    done: Arc<AtomicBool>,
}

/// When each slow pull's answer began and ended.
type Pulls = Arc<Mutex<Vec<(Instant, Option<Instant>)>>>;

/// The pause between two progress lines of a slow pull.
const SLOW_LINE: Duration = Duration::from_millis(1000);

impl Proxy {
    fn start(listen: &Path, upstream: &Path) -> Self {
        let listener = UnixListener::bind(listen).unwrap();
        listener.set_nonblocking(true).unwrap();
        let hang = Arc::new(AtomicBool::new(false));
        let slow = Arc::new(AtomicBool::new(false));
        let pulls = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let link = Link {
            hang: hang.clone(),
            slow: slow.clone(),
            pulls: pulls.clone(),
            done: done.clone(),
        };
        let up = upstream.to_owned();
        std::thread::spawn(move || {
            while !link.done.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = UnixStream::connect(&up) else {
                            continue;
                        };
                        // Set by the request side when the request is a pull.
                        let pull = Arc::new(AtomicBool::new(false));
                        for (from, to, answer) in [
                            (
                                client.try_clone().unwrap(),
                                server.try_clone().unwrap(),
                                false,
                            ),
                            (server, client, true),
                        ] {
                            let (link, pull) = (link.clone(), pull.clone());
                            std::thread::spawn(move || pipe(from, to, &link, &pull, answer));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self {
            hang,
            slow,
            pulls,
            done,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

/// What both directions of every proxied connection share.
#[derive(Clone)]
struct Link {
    hang: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
    pulls: Pulls,
    done: Arc<AtomicBool>,
}

/// Copies `from` to `to` until either side closes, holding still while `hang`.
/// On the request side (`answer` false) it notes whether the request is an
/// image pull; on the answer side of a pull while `slow`, it passes the
/// headers at once and then one progress line per [`SLOW_LINE`].
fn pipe(mut from: UnixStream, mut to: UnixStream, link: &Link, pull: &AtomicBool, answer: bool) {
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 16 * 1024];
    let mut body = false;
    let mut record: Option<usize> = None;
    while !link.done.load(Ordering::Acquire) {
        if link.hang.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let data = &buf[..n];
                if !answer && data.windows(12).any(|w| w == b"/images/pull") {
                    pull.store(true, Ordering::Release);
                }
                let slow =
                    answer && pull.load(Ordering::Acquire) && link.slow.load(Ordering::Acquire);
                if !slow {
                    if to.write_all(data).is_err() {
                        break;
                    }
                    continue;
                }
                if record.is_none() {
                    let mut pulls = link.pulls.lock().unwrap();
                    pulls.push((Instant::now(), None));
                    record = Some(pulls.len() - 1);
                }
                // The headers pass at once; then each line of the stream
                // (`…}\n`) is followed by a pause.
                let mut rest = data;
                if !body {
                    match rest.windows(4).position(|w| w == b"\r\n\r\n") {
                        Some(end) => {
                            body = true;
                            if to.write_all(&rest[..end + 4]).is_err() {
                                return;
                            }
                            rest = &rest[end + 4..];
                        }
                        None => {
                            if to.write_all(rest).is_err() {
                                return;
                            }
                            continue;
                        }
                    }
                }
                while let Some(end) = rest.windows(2).position(|w| w == b"}\n") {
                    if to.write_all(&rest[..end + 2]).is_err() {
                        return;
                    }
                    rest = &rest[end + 2..];
                    std::thread::sleep(SLOW_LINE);
                }
                if to.write_all(rest).is_err() {
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
    if let Some(i) = record {
        link.pulls.lock().unwrap()[i].1 = Some(Instant::now());
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
    /// An abstract datagram socket `magos-test-notify-<project>`, as systemd
    /// uses for `NOTIFY_SOCKET`; its name is returned beside it.
    fn bind(project: &str) -> (String, Self) {
        let name = format!("magos-test-notify-{project}");
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        (
            name,
            Notices {
                sock,
                seen: Vec::new(),
            },
        )
    }

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

/// The daemon's configuration in `dir`: `project` as its instance, a pass a
/// second, `stuck_after: 3s`, the endpoint on `port`.
fn daemon_config(dir: &Path, project: &str, port: u16) -> PathBuf {
    let config = dir.join("magos.yaml");
    std::fs::write(
        &config,
        format!(
            "apply:\n  instance: {project}\ndaemon:\n  interval: 1s\n  jitter: 0%\n  stuck_after: 3s\n  listen: 127.0.0.1:{port}\nrollback:\n  soak: 2s\nstate_dir: {}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    config
}

/// A proxy at `<dir>/podman.sock` in front of the test bed's Podman socket.
fn proxy_podman(tb: &Testbed, dir: &Path) -> (PathBuf, Proxy) {
    let upstream = tb
        .container_host
        .strip_prefix("unix://")
        .expect("a unix CONTAINER_HOST");
    let proxied = dir.join("podman.sock");
    let proxy = Proxy::start(&proxied, Path::new(upstream));
    (proxied, proxy)
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
    let config = daemon_config(dir.path(), &project, port);
    let (proxied, proxy) = proxy_podman(tb, dir.path());

    // systemd's side: an abstract socket, as systemd itself uses.
    let (name, mut notices) = Notices::bind(&project);
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

/// A pull whose answer comes slowly (one progress line a second through the
/// proxy, for longer than `stuck_after` in all) is progress, not a hang:
/// `/healthz` stays 200 and the watchdog pings keep coming throughout.
#[test]
fn a_slow_pull_longer_than_stuck_after_keeps_health_and_pings() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgslow").replace('-', "_");
    let port = support::free_port();
    // An image no one has pulled yet: the apply must pull it.
    let mut own = crate::daemon::OwnRepository::new(tb, "magos-slow-pull");
    let httpd = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    own.push(httpd, "1");

    let repo = tb.user_dir("magos-watchdog-repo");
    let stack = repo.path().join("app");
    std::fs::create_dir(&stack).unwrap();
    let web = format!(
        "name: {project}\nservices:\n  web:\n    image: {httpd}@{}\n    stop_signal: SIGKILL\n",
        tb.manifest_digest(httpd)
    );
    std::fs::write(stack.join("compose.yaml"), &web).unwrap();
    let config = daemon_config(dir.path(), &project, port);
    let (proxied, proxy) = proxy_podman(tb, dir.path());
    let (name, mut notices) = Notices::bind(&project);
    let log = dir.path().join("magos-run.log");
    let child = Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(["--config", config.to_str().unwrap(), "run", "--repo"])
        .arg(repo.path())
        .env("CONTAINER_HOST", format!("unix://{}", proxied.display()))
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("MD_REPO")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start magos run");
    let mut running = Running {
        tb,
        child: Some(child),
        project: project.clone(),
    };
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let start = Instant::now();
    notices.wait("READY=1", start, Duration::from_secs(120));
    notices.wait("WATCHDOG=1", Instant::now(), Duration::from_secs(5));

    // A second service whose image must be pulled, slowly.
    proxy.slow.store(true, Ordering::Release);
    std::fs::write(
        stack.join("compose.yaml"),
        format!(
            "{web}  slow:\n    image: {}:1\n    stop_signal: SIGKILL\n",
            own.image
        ),
    )
    .unwrap();
    let slow = format!("{project}_slow_1");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !crate::daemon::id_and_running(tb, &slow).is_some_and(|(_, up)| up) {
        assert!(
            Instant::now() < deadline,
            "the slow service never ran; logs:\n{}",
            logs()
        );
        assert_eq!(
            healthz(port),
            200,
            "/healthz failed during a slow pull; logs:\n{}",
            logs()
        );
        notices.read_for(Duration::from_millis(200));
    }
    let pulls = proxy.pulls.lock().unwrap().clone();
    let (began, ended) = match pulls.as_slice() {
        [(began, Some(ended))] => (*began, *ended),
        other => panic!("one slow pull, finished: {other:?}; logs:\n{}", logs()),
    };
    assert!(
        ended - began > Duration::from_secs(3),
        "the pull was held open longer than stuck_after ({:?})",
        ended - began
    );
    let pings = notices
        .seen
        .iter()
        .filter(|(t, l)| *t > began && *t < ended && l == "WATCHDOG=1")
        .count();
    assert!(pings >= 2, "pings during the slow pull: {pings}");

    let mut child = running.child.take().unwrap();
    support::sigterm(&child);
    let code = child.wait().unwrap();
    assert!(code.success(), "exit {code:?}; logs:\n{}", logs());
    drop(proxy);
    drop(running);
    drop(own);
}
