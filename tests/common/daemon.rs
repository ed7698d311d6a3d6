//! `magos run` under test, whatever the container engine: the daemon started
//! with a real notify socket (this test plays systemd's side of the
//! protocol), a bare git remote with a clone that pushes to it, the signed
//! push webhook that asks for a pass, the pass it runs, and the rollback
//! scenario's stack. The engine's side (the `magos` command's environment,
//! what to remove afterwards) stays with each test binary.

// Each test binary that includes this file uses a different part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::git_fixture::git;

/// The webhook secret of every configuration here.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

/// A running `magos run` and the notify socket it reports to. Dropping it
/// kills the daemon.
///
/// A thread reads the socket all along, as systemd does: the socket's queue
/// holds only `net.unix.max_dgram_qlen` datagrams (10 by default), and the
/// daemon's watchdog pings would fill it while the test looks elsewhere.
/// [`Notified::wait_notice`] takes the datagrams in the order they came.
pub struct Notified {
    /// The daemon (`None` once stopped or killed).
    pub child: Option<Child>,
    /// Datagrams read and not yet taken by `wait_notice`.
    received: Arc<(Mutex<VecDeque<String>>, Condvar)>,
    /// Tells the reader thread to end.
    done: Arc<AtomicBool>,
    /// Every notify line taken so far.
    pub seen: Vec<String>,
    /// The daemon's standard error (a file: a pipe nobody reads could fill up).
    log: PathBuf,
}

impl Drop for Notified {
    fn drop(&mut self) {
        self.kill();
        self.done.store(true, Ordering::Release);
    }
}

impl Notified {
    /// Starts `magos` (a command with its configuration and engine set) with
    /// `run`, a notify socket and a watchdog, its files in `dir`.
    pub fn start(mut magos: Command, dir: &Path) -> Self {
        let notify_path = dir.join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let received = Arc::new((Mutex::new(VecDeque::new()), Condvar::new()));
        let done = Arc::new(AtomicBool::new(false));
        {
            let (received, done) = (received.clone(), done.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !done.load(Ordering::Acquire) {
                    if let Ok(n) = notify.recv(&mut buf) {
                        let (queue, arrived) = &*received;
                        queue
                            .lock()
                            .unwrap()
                            .push_back(String::from_utf8_lossy(&buf[..n]).into_owned());
                        arrived.notify_all();
                    }
                }
            });
        }
        let log = dir.join("magos-run.log");
        let child = magos
            .arg("run")
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "1000000")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start magos run");
        Notified {
            child: Some(child),
            received,
            done,
            seen: Vec::new(),
            log,
        }
    }

    /// Kills the daemon now (if it still runs) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Reads notify datagrams until a line starts with `want`; returns that line.
    pub fn wait_notice(&mut self, want: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let (queue, arrived) = &*self.received;
        let mut pending = queue.lock().unwrap();
        loop {
            while let Some(text) = pending.pop_front() {
                self.seen.extend(text.lines().map(str::to_owned));
                if let Some(hit) = text.lines().find(|l| l.starts_with(want)) {
                    return hit.to_owned();
                }
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            pending = arrived.wait_timeout(pending, deadline - now).unwrap().0;
        }
        drop(pending);
        panic!(
            "no `{want}` from magos run within {}s; saw {:?}; logs:\n{}",
            limit.as_secs(),
            self.seen,
            self.logs()
        );
    }

    /// The last `STATUS=` line received.
    pub fn last_status(&self) -> String {
        self.seen
            .iter()
            .rev()
            .find(|l| l.starts_with("STATUS="))
            .cloned()
            .unwrap_or_default()
    }

    /// Kills the daemon with SIGKILL (nothing of it runs after this), leaving
    /// its containers, and frees the notify socket's path for the next one;
    /// returns its logs.
    pub fn kill9(&mut self, dir: &Path) -> String {
        self.kill();
        let _ = std::fs::remove_file(dir.join("notify.sock"));
        let logs = self.logs();
        let _ = std::fs::rename(&self.log, dir.join("magos-run-killed.log"));
        logs
    }

    /// The daemon's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, waits for `STOPPING=1` and the exit; returns the exit
    /// status and the daemon's logs.
    pub fn stop(&mut self) -> (ExitStatus, String) {
        let pid = self.child.as_ref().expect("the daemon runs").id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        self.wait_notice("STOPPING=1", Duration::from_secs(30));
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "magos run did not exit within 60s of SIGTERM; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = self.child.take().unwrap().wait().unwrap();
        (status, self.logs())
    }
}

/// A bare git remote on disk (branch `main`) and a clone that pushes to it.
pub struct Remote {
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Remote {
    pub fn new(dir: &Path) -> Self {
        let bare = dir.join("homelab.git");
        std::fs::create_dir(&bare).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        git(dir, &["clone", "-q", bare.to_str().unwrap(), "work"]);
        Remote {
            bare,
            work: dir.join("work"),
        }
    }

    /// Writes `file` (relative to the repository), commits it and pushes it to
    /// `main`; returns the commit.
    pub fn push(&self, file: &str, contents: &str, message: &str) -> String {
        let path = self.work.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// Pulls `main` and returns `file` as it is there.
    pub fn pull(&self, file: &str) -> String {
        git(&self.work, &["pull", "-q", "--ff-only", "origin", "main"]);
        std::fs::read_to_string(self.work.join(file)).unwrap()
    }
}

/// A configuration for `magos run` against `remote`: the instance `project`,
/// an hourly interval (only the test's triggers run passes), the HTTP
/// endpoint on `http_port` with the webhook secret, soaks of 2 seconds (a
/// service's own `x-magos.soak` says otherwise), the state in `dir/state`;
/// `extra` is appended (top-level keys).
pub fn write_config_with(
    dir: &Path,
    remote: &Remote,
    project: &str,
    http_port: u16,
    extra: &str,
) -> PathBuf {
    let config = dir.join("magos.yaml");
    std::fs::write(
        &config,
        format!(
            "repo:\n  url: file://{}\napply:\n  instance: {project}\ndaemon:\n  interval: 1h\n  listen: 127.0.0.1:{http_port}\n  webhook_secret: {WEBHOOK_SECRET}\nrollback:\n  soak: 2s\nstate_dir: {}\n{extra}",
            remote.bare.display(),
            dir.join("state").display()
        ),
    )
    .unwrap();
    config
}

/// A signed push webhook for `main`; asserts it is accepted.
pub fn announce_push(http_port: u16) {
    let body = br#"{"ref":"refs/heads/main"}"#;
    let sig = magos::server::webhook::sign(WEBHOOK_SECRET.as_bytes(), body);
    assert_eq!(post(http_port, "/hooks/github", &sig, body), 202);
}

/// A GitHub push webhook to `path` on 127.0.0.1:`port`; the answer's status.
pub fn post(port: u16, path: &str, signature: &str, body: &[u8]) -> u16 {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: {signature}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    response
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Announces a push and waits for the pass it runs (a pass the push's reason
/// is part of, not one of the container events' passes) to finish; returns
/// that pass's `pass finished` log line.
pub fn push_pass(running: &Notified, http_port: u16) -> String {
    let passes = |logs: &str| -> Vec<u64> {
        logs.lines()
            .filter(|l| l.contains("pass started reasons=git push"))
            .filter_map(|l| l.split("pass{n=").nth(1)?.split('}').next()?.parse().ok())
            .collect()
    };
    let before = passes(&running.logs()).into_iter().max().unwrap_or(0);
    announce_push(http_port);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let logs = running.logs();
        if let Some(n) = passes(&logs).into_iter().find(|n| *n > before) {
            // Passes run one at a time: the first `pass finished` after it is its.
            let started = format!("pass{{n={n}}}: pass started");
            let after = logs.lines().skip_while(|l| !l.contains(&started));
            if let Some(l) = after.into_iter().find(|l| l.contains("pass finished")) {
                return l.to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the push's pass never finished; logs:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The stack of the rollback scenario: `app` follows the 1.x releases of
/// `image`, soaked 3 seconds. Its healthcheck fails on the image whose
/// `MAGOS_IMAGE_VERSION` is 1.2.0 (the test bed's semver image copied to the
/// bad tag); `extra` goes under `app`'s keys.
pub fn scenario_stack(image: &str, tag_and_digest: &str, extra: &str) -> String {
    format!(
        "services:
  app:
    image: {image}:{tag_and_digest} # {{\"magos\": {{\"policy\": \"semver\", \"range\": \">=1.0.0 <2.0.0\"}}}}
    stop_signal: SIGKILL
    healthcheck:
      test: [CMD-SHELL, \"test \\\"$$MAGOS_IMAGE_VERSION\\\" != 1.2.0\"]
      interval: 1s
      timeout: 5s
      retries: 1
    x-magos: {{soak: 3s}}
{extra}"
    )
}
