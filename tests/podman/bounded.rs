//! Every wait is bounded, against real components on 127.0.0.1: a git remote
//! (the real `git http-backend`) whose push never answers, a registry that
//! paginates its tag list without end (a local HTTP server: no real registry
//! does that on purpose), and a flood of idle connections to the daemon's HTTP
//! endpoint under a 1,024 file-descriptor limit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use crate::daemon::{Running, id_and_running, magos, magos_command};
use crate::git_fixture::{bare_remote, git};
use crate::support::{self, Testbed, show, testbed};

use crate::pinning::http_backend::HttpBackend;
use crate::pinning::local_http;

const TOKEN: &str = "tok_5b1f0c93e2a7";

/// The processes whose command line mentions `needle` (the hanging remote's
/// address appears in `git push`'s helper, `git-remote-http origin <url>`).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if line.contains(needle) {
            found.push(format!("{}: {line}", name.to_string_lossy()));
        }
    }
    found
}

/// Waits (generously) until no process mentions `needle`; those still there.
fn gone(needle: &str) -> Vec<String> {
    support::wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        processes_mentioning(needle).is_empty()
    });
    processes_mentioning(needle)
}

/// A remote served by [`HttpBackend::hanging_pushes`] holding one stack whose
/// image follows the moving tag `1` (so a pass has a pin to push), and a
/// configuration for it with `repo.timeout: <timeout>`.
struct HangingRemote {
    backend: HttpBackend,
    bare: PathBuf,
    config: PathBuf,
}

impl HangingRemote {
    fn new(tb: &Testbed, dir: &Path, project: &str, timeout: &str) -> Self {
        let image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
        let (bare, _work) = bare_remote(
            &dir.join("remotes"),
            "homelab.git",
            &[(
                format!("{project}/compose.yaml"),
                format!(
                    "services:\n  web:\n    image: {image} # {{\"magos\": {{\"policy\": \"latest\", \"tag\": \"1\"}}}}\n    stop_signal: SIGKILL\n"
                ),
            )],
        );
        let backend = HttpBackend::hanging_pushes(dir.join("remotes"), TOKEN);
        let url = format!("http://x-access-token:{TOKEN}@{}/homelab.git", backend.addr);
        let config = dir.join("magos.yaml");
        std::fs::write(
            &config,
            format!(
                "repo:\n  url: {url}\n  timeout: {timeout}\napply:\n  instance: {project}\ndaemon:\n  interval: 1h\n  listen: null\nstate_dir: {}\n",
                dir.join("state").display()
            ),
        )
        .unwrap();
        Self {
            backend,
            bare,
            config,
        }
    }

    /// The `host:port` of the server, as it appears in git's command lines.
    fn address(&self) -> String {
        self.backend.addr.to_string()
    }

    fn hung(&self) -> usize {
        self.backend.seen.lock().unwrap().hung
    }
}

#[test]
fn a_push_that_never_answers_times_out_leaves_no_git_and_the_pass_still_applies() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mghang").replace('-', "_");
    let remote = HangingRemote::new(tb, dir.path(), &project, "3s");
    let before = git(&remote.bare, &["rev-parse", "main"]);

    // `magos update`: the push gets no answer; after repo.timeout it is killed
    // with its process group, and the commit is kept on a local branch.
    let out = magos(tb, &remote.config, &["update"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("did not finish within 3s (repo.timeout)"),
        "{}",
        show(&out)
    );
    assert!(stderr.contains("magos/unpushed-"), "{}", show(&out));
    assert!(!stderr.contains(TOKEN), "the token leaked: {stderr}");
    assert_eq!(remote.hung(), 1, "the push reached the remote");
    let left = gone(&remote.address());
    assert!(left.is_empty(), "git children left behind: {left:?}");
    assert_eq!(git(&remote.bare, &["rev-parse", "main"]), before);

    // `magos run --once`: the pin pass fails the same way, and the pass still
    // applies what the branch holds.
    let once = magos(tb, &remote.config, &["run", "--once"]);
    let summary = String::from_utf8_lossy(&once.stdout).into_owned();
    let logs = String::from_utf8_lossy(&once.stderr).into_owned();
    let name = format!("{project}_web_1");
    let applied = id_and_running(tb, &name);
    tb.remove_project(&project);
    assert_eq!(once.status.code(), Some(2), "{summary}\n{logs}");
    assert!(
        logs.contains("writing pins back failed") && logs.contains("repo.timeout"),
        "{logs}"
    );
    assert!(
        matches!(applied, Some((_, true))),
        "the stack was not applied: {applied:?}\n{summary}\n{logs}"
    );
    assert_eq!(remote.hung(), 2);
    let left = gone(&remote.address());
    assert!(left.is_empty(), "git children left behind: {left:?}");
    assert_eq!(git(&remote.bare, &["rev-parse", "main"]), before);
}

#[test]
fn sigterm_during_a_hanging_push_ends_the_daemon_and_its_git_children() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mghangterm").replace('-', "_");
    // A limit far beyond the test: only SIGTERM can end the push.
    let remote = HangingRemote::new(tb, dir.path(), &project, "1h");
    let mut running = Running::start(tb, dir.path(), &remote.config, &project);
    let address = remote.address();
    let pushing = support::wait_until(Duration::from_secs(120), Duration::from_millis(100), || {
        remote.hung() == 1 && !processes_mentioning(&address).is_empty()
    });
    assert!(pushing, "the push never started; logs:\n{}", running.logs());

    let (_status, logs) = running.stop();
    let left = gone(&address);
    assert!(
        left.is_empty(),
        "git children outlived the daemon: {left:?}\n{logs}"
    );
    assert!(logs.contains("stopping"), "{logs}");
}

#[test]
fn sigterm_during_a_hanging_push_of_magos_update_ends_its_git_children() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mghangupd").replace('-', "_");
    let remote = HangingRemote::new(tb, dir.path(), &project, "1h");
    let mut update = support::KillOnDrop(
        magos_command(tb, &remote.config)
            .arg("update")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let address = remote.address();
    let pushing = support::wait_until(Duration::from_secs(120), Duration::from_millis(100), || {
        remote.hung() == 1 && !processes_mentioning(&address).is_empty()
    });
    assert!(pushing, "the push never started");
    support::sigterm(&update.0);
    let status = update.0.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let left = gone(&address);
    assert!(
        left.is_empty(),
        "git children outlived magos update: {left:?}"
    );
}

/// A registry front on 127.0.0.1 whose tag list never ends: every page holds
/// 1,000 new tags and a `Link` to the next page.
fn endless_registry() -> String {
    let addr = local_http::serve(|req| async move {
        let path = req.uri().path().to_owned();
        let page: u64 = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("page=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if path == "/v2/" {
            return Response::new(Full::new(Bytes::from_static(b"{}")));
        }
        let Some(repo) = path
            .strip_prefix("/v2/")
            .and_then(|p| p.strip_suffix("/tags/list"))
        else {
            let mut r = Response::new(Full::new(Bytes::from_static(b"{}")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        };
        let tags: Vec<String> = (0..1000).map(|i| format!("1.{page}.{i}")).collect();
        let body = serde_json::json!({ "name": repo, "tags": tags }).to_string();
        Response::builder()
            .header("Content-Type", "application/json")
            .header(
                "Link",
                format!("</v2/{repo}/tags/list?page={}>; rel=\"next\"", page + 1),
            )
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    });
    addr.to_string()
}

#[test]
fn a_registry_that_paginates_forever_fails_its_repository_within_budget() {
    let Some(tb) = testbed() else { return };
    let endless = endless_registry();
    let reg = tb.registry.as_str();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("compose.yaml"),
        format!(
            "services:\n  endless:\n    image: {endless}/tarpit/app:1.0.0 # {{\"magos\": {{\"policy\": \"semver\"}}}}\n  \
             app:\n    image: {reg}/magos/semver:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"~1.0\"}}}}\n"
        ),
    )
    .unwrap();
    // Each budget in turn: tags, bytes, time (the others out of reach).
    for (budget, key) in [
        ("", "list_max_tags"),
        (
            "  list_max_tags: 100000000\n  list_max_bytes: 200000\n",
            "list_max_bytes",
        ),
        (
            "  list_max_tags: 100000000\n  list_max_bytes: 100000000000\n  list_timeout: 2s\n",
            "list_timeout",
        ),
    ] {
        let config = dir.path().join("magos.yaml");
        std::fs::write(
            &config,
            format!(
                "registries:\n  insecure: [\"{endless}\", \"{reg}\"]\n{budget}state_dir: {}\n",
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        let child = magos_command(tb, &config)
            .args([
                "check",
                "--repo",
                repo.to_str().unwrap(),
                "--output",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The high-water mark of its resident memory, read until it exits.
        let status = format!("/proc/{}/status", child.id());
        let reader = std::thread::spawn(move || child.wait_with_output().unwrap());
        let mut peak_kib = 0u64;
        while !reader.is_finished() {
            if let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            }) {
                peak_kib = peak_kib.max(kib);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = reader.join().unwrap();
        eprintln!("{key}: magos check peak RSS {} MiB", peak_kib / 1024);
        // A budget keeps memory bounded: far below what an endless listing
        // would take (gigabytes), whatever the machine.
        assert!(peak_kib < 512 * 1024, "{key}: peak RSS {peak_kib} KiB");
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let row = |service: &str| {
            rows.as_array()
                .unwrap()
                .iter()
                .find(|r| r["service"] == service)
                .cloned()
                .unwrap_or_else(|| panic!("no row for {service}: {rows}"))
        };
        let error = row("endless")["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            error.contains("tarpit/app")
                && error.contains(&endless)
                && error.contains("went over its budget")
                && error.contains(&format!("registries.{key}")),
            "{key}: {error}"
        );
        assert_eq!(
            row("app")["tag"],
            "1.0.5",
            "the other registry is still checked"
        );
    }
}

/// Reads from a connection until the server closes it; false when it is still
/// open after the client's (generous) read timeout.
fn closed_by_server(mut s: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// `magos run` on an empty folder under `prlimit --nofile=1024:1024` (the
/// descriptors a default user session has), its endpoint on `port` with
/// `idle_timeout`; killed when the guard drops. Waits until `/healthz` answers.
fn limited_daemon(tb: &Testbed, dir: &Path, port: u16, idle_timeout: &str) -> support::KillOnDrop {
    let project = support::unique_name("mgflood").replace('-', "_");
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let config = dir.join("magos.yaml");
    // A header timeout longer than the test, so only the idle timeout closes.
    std::fs::write(
        &config,
        format!(
            "apply:\n  instance: {project}\ndaemon:\n  interval: 1h\n  listen: 127.0.0.1:{port}\n  http:\n    header_timeout: 1h\n    idle_timeout: {idle_timeout}\nstate_dir: {}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let magos = magos_command(tb, &config);
    let mut daemon = Command::new("prlimit");
    daemon
        .arg("--nofile=1024:1024")
        .arg("--")
        .arg(magos.get_program())
        .args(magos.get_args())
        .args(["run", "--repo", repo.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("magos.log")).unwrap());
    for (k, v) in magos.get_envs() {
        match v {
            Some(v) => daemon.env(k, v),
            None => daemon.env_remove(k),
        };
    }
    let guard = support::KillOnDrop(daemon.spawn().expect("start prlimit magos run"));
    let up = support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        support::http_get(port, "/healthz").is_ok_and(|r| r.status == 200)
    });
    assert!(up, "the endpoint never answered; logs:\n{}", log_of(dir));
    guard
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("magos.log")).unwrap_or_default()
}

#[test]
fn a_flood_of_idle_connections_never_keeps_healthz_from_answering() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    // Idle connections are not closed for the time of the test: only the
    // connection cap can make room for a new client.
    let _daemon = limited_daemon(tb, dir.path(), port, "1h");

    // 1,100 idle connections: more than the daemon's descriptors.
    let flood: Vec<TcpStream> = (0..1100)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    // A new client still gets its answer.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "/healthz during the flood: {answer:?}; logs:\n{}",
        log_of(dir.path())
    );
    // The oldest idle connections were closed to make room (256 stay open).
    for (i, c) in flood.iter().take(1100 - 257).enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        assert!(
            closed_by_server(c),
            "connection {i} is still open; logs:\n{}",
            log_of(dir.path())
        );
    }
    assert_eq!(support::http_get(port, "/healthz").unwrap().status, 200);
    assert!(
        !log_of(dir.path()).contains("Too many open files"),
        "{}",
        log_of(dir.path())
    );
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let _daemon = limited_daemon(tb, dir.path(), port, "2s");
    // One connection that never sends, one that made a request and keeps the
    // connection alive: both are closed by the daemon.
    let silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut kept = TcpStream::connect(("127.0.0.1", port)).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    for (name, c) in [("silent", &silent), ("kept alive", &kept)] {
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        assert!(
            closed_by_server(c),
            "the {name} connection is still open; logs:\n{}",
            log_of(dir.path())
        );
    }
}

#[test]
fn healthz_answers_while_a_pass_reads_the_stacks() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgread").replace('-', "_");
    let stack = dir.path().join("repo").join(&project);
    std::fs::create_dir_all(&stack).unwrap();
    let image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    std::fs::write(
        stack.join("compose.yaml"),
        format!("services:\n  web:\n    image: {image}\n    env_file: app.env\n"),
    )
    .unwrap();
    // The env_file is a named pipe nobody writes to: reading the stacks blocks
    // for as long as the test wants.
    let fifo = stack.join("app.env");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let port = support::free_port();
    let config = dir.path().join("magos.yaml");
    std::fs::write(
        &config,
        format!(
            "apply:\n  instance: {project}\ndaemon:\n  interval: 1h\n  listen: 127.0.0.1:{port}\n  stuck_after: 1s\nstate_dir: {}\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let _daemon = support::KillOnDrop(
        magos_command(tb, &config)
            .args(["run", "--repo", dir.path().join("repo").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The endpoint answers during the read, and says the read is under way
    // (for longer than stuck_after).
    let mut last = String::new();
    let seen = support::wait_until(Duration::from_secs(120), Duration::from_millis(100), || {
        if let Ok(r) = support::http_get(port, "/healthz") {
            last = format!("{} {}", r.status, r.text());
        }
        last.starts_with("503") && last.contains("read the stacks")
    });
    assert!(seen, "/healthz never answered during the read: {last:?}");
}

/// systemd's notification socket holds few datagrams (`net.unix.max_dgram_qlen`,
/// 10 by default); a supervisor that stops reading it fills it within a second
/// of watchdog pings every 50 ms. The daemon's endpoint still answers, and it
/// says once that notices are being dropped.
#[test]
fn a_notify_socket_nobody_reads_never_stalls_the_daemon() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgnotify").replace('-', "_");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let socket_path = dir.path().join("notify.sock");
    // Bound and never read.
    let _socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    let port = support::free_port();
    let config = dir.path().join("magos.yaml");
    std::fs::write(
        &config,
        format!(
            "apply:\n  instance: {project}\ndaemon:\n  interval: 1h\n  listen: 127.0.0.1:{port}\nstate_dir: {}\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let _daemon = support::KillOnDrop(
        magos_command(tb, &config)
            .args(["run", "--repo", repo.to_str().unwrap()])
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "100000")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("magos.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let full = support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        log_of(dir.path()).contains("systemd is not reading its notification socket")
    });
    assert!(
        full,
        "the daemon never saw the socket full; logs:\n{}",
        log_of(dir.path())
    );
    // Past the point where a blocking send would have stopped it.
    let r = support::http_get(port, "/healthz");
    assert!(
        r.as_ref().is_ok_and(|r| r.status == 200),
        "/healthz with the notify socket full: {:?}; logs:\n{}",
        r.map(|r| r.status),
        log_of(dir.path())
    );
    assert_eq!(
        log_of(dir.path())
            .matches("systemd is not reading its notification socket")
            .count(),
        1,
        "{}",
        log_of(dir.path())
    );
}
