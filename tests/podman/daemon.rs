//! `magos run` end to end, against a real git remote, the test registry and
//! rootless Podman, with this test playing systemd's side of the notify protocol
//! on a real datagram socket: the daemon pins an image, pushes the pin, deploys
//! the stack, reports READY/STATUS, pets the watchdog, answers on its HTTP
//! endpoint, runs a pass on a signed webhook, and stops cleanly on SIGTERM.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, Testbed, testbed};

/// Kills the daemon and removes the stack's objects, whatever the outcome.
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
        let label = format!("label=com.docker.compose.project={}", self.project);
        let ids = self.tb.podman_cli(&["ps", "-aq", "--filter", &label]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.tb.podman_cli(&["rm", "-f", "-t", "0", id]);
        }
        let _ = self
            .tb
            .podman_cli(&["network", "rm", "-f", &format!("{}_default", self.project)]);
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads notify datagrams until one contains `want`; returns every line seen.
fn wait_notice(sock: &UnixDatagram, want: &str, limit: Duration, seen: &mut Vec<String>) {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = text.lines().any(|l| l.starts_with(want));
            seen.extend(text.lines().map(str::to_owned));
            if hit {
                return;
            }
        }
    }
    panic!(
        "no `{want}` from magos run within {}s; saw {seen:?}",
        limit.as_secs()
    );
}

#[test]
fn run_pins_deploys_notifies_and_stops_cleanly() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgrun").replace('-', "_");
    let web_port = support::free_port();
    let http_port = support::free_port();

    // The remote: one stack whose image follows the moving tag `1`.
    let bare = dir.path().join("homelab.git");
    std::fs::create_dir(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    let work = dir.path().join("work");
    git(dir.path(), &["clone", "-q", bare.to_str().unwrap(), "work"]);
    std::fs::create_dir(work.join(&project)).unwrap();
    let image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    std::fs::write(
        work.join(&project).join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: {image} # {{\"magos\": {{\"policy\": \"latest\", \"tag\": \"1\"}}}}\n    ports:\n      - \"127.0.0.1:{web_port}:8080\"\n    stop_signal: SIGKILL\n"
        ),
    )
    .unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "a stack"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);

    let config = dir.path().join("magos.yaml");
    std::fs::write(
        &config,
        format!(
            "repo:\n  url: file://{}\napply:\n  instance: {project}\ndaemon:\n  interval: 1h\n  listen: 127.0.0.1:{http_port}\n  webhook_secret: test-webhook-secret\nstate_dir: {}\n",
            bare.display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();

    let child = Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .env("CONTAINER_HOST", &tb.container_host)
        .env(
            "CONTAINERS_REGISTRIES_CONF",
            tb.require("MAGOS_TESTBED_REGISTRIES_CONF"),
        )
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("MD_REPO")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start magos run");
    let mut running = Running {
        tb,
        child: Some(child),
        project: project.clone(),
    };

    // READY once the first pass finished, with its summary as STATUS.
    let mut seen = Vec::new();
    wait_notice(&sock, "READY=1", Duration::from_secs(180), &mut seen);
    let status = seen
        .iter()
        .rev()
        .find(|l| l.starts_with("STATUS="))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        status, "STATUS=1/1 stacks in sync, 1 updates pinned",
        "{seen:?}"
    );

    // The pin is in the remote, and the pinned image serves the page.
    git(&work, &["pull", "-q", "origin", "main"]);
    let compose = std::fs::read_to_string(work.join(&project).join("compose.yaml")).unwrap();
    let digest = tb.manifest_digest(image);
    assert!(
        compose.contains(&format!("{image}@{digest} # {{\"magos\"")),
        "{compose}"
    );
    assert!(git(&work, &["log", "-1", "--format=%s"]).contains(&format!("{project}/web")));
    assert_eq!(support::http_get(web_port, "/").unwrap().status, 200);

    // The endpoint: ready, metrics, and the watchdog is petted.
    assert_eq!(support::http_get(http_port, "/readyz").unwrap().status, 200);
    assert_eq!(
        support::http_get(http_port, "/healthz").unwrap().status,
        200
    );
    let metrics = support::http_get(http_port, "/metrics").unwrap().text();
    assert!(
        metrics.contains("magos_passes_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "magos_stack_services{{stack=\"{project}\",state=\"in_sync\"}} 1"
        )),
        "{metrics}"
    );
    wait_notice(&sock, "WATCHDOG=1", Duration::from_secs(5), &mut seen);

    // A signed push webhook runs a pass at once (the interval is an hour).
    let body = br#"{"ref":"refs/heads/main"}"#;
    let sig = magos::server::webhook::sign(b"test-webhook-secret", body);
    let status = post(http_port, "/hooks/github", &sig, body);
    assert_eq!(status, 202);
    seen.clear();
    wait_notice(
        &sock,
        "STATUS=1/1 stacks in sync",
        Duration::from_secs(60),
        &mut seen,
    );
    let unsigned = post(http_port, "/hooks/github", "sha256=00", body);
    assert_eq!(unsigned, 401);

    // SIGTERM: STOPPING=1, exit 0.
    let mut child = running.child.take().unwrap();
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_notice(&sock, "STOPPING=1", Duration::from_secs(30), &mut seen);
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "magos run did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
    assert!(
        !logs.contains("test-webhook-secret"),
        "the webhook secret leaked into the logs"
    );
}

/// A POST with a body and a signature; returns the status.
fn post(port: u16, path: &str, signature: &str, body: &[u8]) -> u16 {
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
