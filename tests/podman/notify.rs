//! Notifications end to end: `magos run` pins a new release and applies it,
//! and a receiver on 127.0.0.1 gets `pinned` then `applied`, once each, as
//! signed JSON with the configured token; a receiver that accepts the
//! connection and never answers does not hold the pass up; a receiver that
//! refuses connections is counted in `magos_notifications_failed_total` and
//! logged without its token; the journal and `magos history` show the events.
//! Real git (a bare remote), the test registry and rootless Podman.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use sha2::Sha256;

use crate::daemon::{OwnRepository, Remote, Running, WEBHOOK_SECRET, announce_push, magos};
use crate::pinning::local_http;
use crate::support::{self, testbed};

const TOKEN: &str = "tok-notify-7d2e9b";
const SECRET: &str = "hmac-notify-41c8aa";
const URL_TOKEN: &str = "urltok-5b19e0";

/// One request a receiver got: its headers and body.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A receiver that answers 200 and keeps every request.
pub(crate) fn receiver() -> (std::net::SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let keep = got.clone();
    let addr = local_http::serve(move |req: Request<Incoming>| {
        let keep = keep.clone();
        async move {
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
            keep.lock().unwrap().push(Received { headers, body });
            Response::new(Full::new(Bytes::from_static(b"ok")))
        }
    });
    (addr, got)
}

/// A receiver that accepts connections and never answers; it holds them.
fn hanging() -> (std::net::SocketAddr, Arc<Mutex<Vec<TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    (addr, held)
}

/// Whether the client still holds `stream` open: nothing more to read yet
/// (a closed connection reads as end of file).
fn still_open(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match (&*stream).read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

pub(crate) fn kinds(got: &Mutex<Vec<Received>>) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .map(|r| r.json()["kind"].as_str().unwrap_or("").to_owned())
        .filter(|kind| kind != "healed") // see `journaled`
        .collect()
}

#[test]
fn a_pass_notifies_pinned_then_applied_once_each_and_a_hanging_receiver_does_not_hold_it_up() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgnotify").replace('-', "_");
    let http_port = support::free_port();
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");

    // The registry has 1.0.0 and 1.1.0; the stack is written at 1.0.0.
    let mut own = OwnRepository::new(tb, "mgnotify");
    own.push(&format!("{semver}:1.0.0"), "1.0.0");
    let v2 = own.push(&format!("{semver}:1.2.0"), "1.1.0");
    let image = own.image.clone();
    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    remote.push(
        &file,
        &format!(
            "services:\n  app:\n    image: {image}:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"^1\"}}}}\n    stop_signal: SIGKILL\n"
        ),
        "a stack at 1.0.0",
    );

    let (good, got) = receiver();
    let (hang, held) = hanging();
    // A port nobody listens on: every attempt is refused.
    let refused = support::free_port();
    let state = dir.path().join("state");
    let config = dir.path().join("magos.yaml");
    std::fs::write(
        &config,
        format!(
            "repo:\n  url: file://{}\napply:\n  instance: {project}\ndaemon:\n  interval: 1h\n  listen: 127.0.0.1:{http_port}\n  webhook_secret: {WEBHOOK_SECRET}\nstate_dir: {}\nnotify:\n  - kind: webhook\n    url: http://{good}/hook\n    token: {TOKEN}\n    secret: {SECRET}\n    events: [pinned, applied, pass_failed]\n  - kind: webhook\n    url: http://{hang}/hook\n    events: [pinned, applied]\n    timeout: 1h\n  - kind: ntfy\n    url: http://127.0.0.1:{refused}/topic?token={URL_TOKEN}\n    token: {TOKEN}\n    events: [pinned]\n",
            remote.bare.display(),
            state.display()
        ),
    )
    .unwrap();
    let mut running = Running::start(tb, dir.path(), &config, &project);

    // The first pass pins 1.1.0 and applies it, and finishes while the
    // hanging receiver still holds the connection of the `pinned` event.
    running.wait_notice("READY=1", Duration::from_secs(180));
    {
        let held = held.lock().unwrap();
        assert!(
            !held.is_empty(),
            "the hanging receiver was never called; logs:\n{}",
            running.logs()
        );
        assert!(
            held.iter().any(still_open),
            "the pass ended after the hanging receiver's connection; logs:\n{}",
            running.logs()
        );
    }

    // The good receiver gets `pinned` then `applied`.
    let arrived = support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        kinds(&got).len() >= 2
    });
    assert!(arrived, "got {:?}; logs:\n{}", kinds(&got), running.logs());
    let first = got.lock().unwrap().clone();
    assert_eq!(kinds(&got), ["pinned", "applied"], "{first:?}");
    for r in &first {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&r.body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(r.header("x-magos-signature-256"), Some(want.as_str()));
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let pinned = first[0].json();
    assert_eq!(pinned["stack"], project.as_str());
    assert_eq!(pinned["service"], "app");
    assert_eq!(pinned["image"], image.as_str());
    assert_eq!(pinned["to_digest"], v2.as_str());
    let commit = pinned["commit"].as_str().unwrap().to_owned();
    assert_eq!(
        commit,
        crate::git_fixture::git(&remote.bare, &["rev-parse", "main"]).trim(),
        "the pin's commit is the remote's head"
    );
    let applied = first[1].json();
    assert_eq!(applied["stack"], project.as_str());
    assert_eq!(applied["commit"], commit.as_str());

    // The refused receiver is counted and logged, without its tokens.
    let counted = support::wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        support::http_get(http_port, "/metrics")
            .map(|r| r.text().contains("magos_notifications_failed_total 1"))
            .unwrap_or(false)
    });
    assert!(counted, "logs:\n{}", running.logs());

    // Another pass has nothing new to tell.
    announce_push(http_port);
    running.wait_notice("STATUS=1/1 stacks in sync", Duration::from_secs(120));
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
    assert_eq!(kinds(&got), ["pinned", "applied"], "logs:\n{logs}");
    assert!(
        logs.contains("notification not delivered") && logs.contains("ntfy http://127.0.0.1:"),
        "{logs}"
    );
    for secret in [TOKEN, SECRET, URL_TOKEN] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }

    // The journal and `magos history` show the events.
    let journal = std::fs::read_to_string(state.join("events.jsonl")).unwrap();
    let journaled: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        journaled
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["pinned", "applied"],
        "{journal}"
    );
    let out = magos(
        tb,
        &config,
        &["history", "--since", "1d", "--output", "json"],
    );
    assert!(out.status.success(), "{}", support::show(&out));
    let history: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(history, journaled);
    let out = magos(tb, &config, &["history"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("pinned       {project}/app  image: {image}")),
        "{text}"
    );
}

/// The `kind`s of the journal in `state`, in order (every event: the
/// receivers' `events` choose among them).
/// The kinds in the journal, but `healed`: the rootless network namespace is
/// the host's, and the doctor tests break it on purpose, so a daemon here may
/// heal it at any time.
fn journaled(state: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(state.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            e["kind"].as_str().unwrap().to_owned()
        })
        .filter(|kind| kind != "healed")
        .collect()
}

#[test]
fn a_failing_pass_is_notified_once_and_again_once_it_recovered_and_failed_anew() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgnotfail").replace('-', "_");
    let http_port = support::free_port();
    let image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    let remote = Remote::new(dir.path());
    remote.push(
        &format!("{project}/compose.yaml"),
        &format!(
            "services:\n  web:\n    image: {image}@{}\n    stop_signal: SIGKILL\n",
            tb.manifest_digest(image)
        ),
        "a stack",
    );
    let (good, got) = receiver();
    let state = dir.path().join("state");
    let config = dir.path().join("magos.yaml");
    std::fs::write(
        &config,
        format!(
            "repo:\n  url: file://{}\napply:\n  instance: {project}\ndaemon:\n  interval: 1h\n  listen: 127.0.0.1:{http_port}\n  webhook_secret: {WEBHOOK_SECRET}\nstate_dir: {}\nnotify:\n  - kind: webhook\n    url: http://{good}/hook\n",
            remote.bare.display(),
            state.display()
        ),
    )
    .unwrap();
    let mut running = Running::start(tb, dir.path(), &config, &project);
    running.wait_notice("READY=1", Duration::from_secs(180));
    assert_eq!(journaled(&state), ["applied"], "nothing failed");

    // The remote disappears: two passes fail the same way, one event.
    let away = dir.path().join("away.git");
    std::fs::rename(&remote.bare, &away).unwrap();
    for _ in 0..2 {
        announce_push(http_port);
        running.wait_notice("STATUS=pass failed", Duration::from_secs(120));
    }
    assert_eq!(
        journaled(&state),
        ["applied", "pass_failed"],
        "logs:\n{}",
        running.logs()
    );

    // It comes back: a good pass ends the failure; the next one is new again.
    std::fs::rename(&away, &remote.bare).unwrap();
    announce_push(http_port);
    running.wait_notice("STATUS=1/1 stacks in sync", Duration::from_secs(120));
    std::fs::rename(&remote.bare, &away).unwrap();
    announce_push(http_port);
    running.wait_notice("STATUS=pass failed", Duration::from_secs(120));
    assert_eq!(
        journaled(&state),
        ["applied", "pass_failed", "pass_failed"],
        "logs:\n{}",
        running.logs()
    );

    // The receiver got the two, not one per failing pass.
    let arrived = support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        kinds(&got).len() >= 2
    });
    assert!(arrived, "got {:?}", kinds(&got));
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
    assert_eq!(kinds(&got), ["pass_failed", "pass_failed"], "logs:\n{logs}");
    let first = got.lock().unwrap()[0].json();
    assert!(
        first["reason"]
            .as_str()
            .unwrap_or("")
            .contains("writing pins back failed"),
        "{first}"
    );
}

#[test]
fn a_drifted_service_is_notified_once_until_it_is_back_in_line() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgnotdrift").replace('-', "_");
    let http_port = support::free_port();
    let image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    let stack = format!(
        "services:\n  web:\n    image: {image}@{}\n    stop_signal: SIGKILL\n",
        tb.manifest_digest(image)
    );
    remote.push(&file, &stack, "a stack");
    let (good, got) = receiver();
    let state = dir.path().join("state");
    let config = dir.path().join("magos.yaml");
    // Observe mode: nothing is applied, so the service stays missing.
    std::fs::write(
        &config,
        format!(
            "repo:\n  url: file://{}\napply:\n  instance: {project}\ndaemon:\n  observe: true\n  interval: 1h\n  listen: 127.0.0.1:{http_port}\n  webhook_secret: {WEBHOOK_SECRET}\nstate_dir: {}\nnotify:\n  - kind: webhook\n    url: http://{good}/hook\n    events: [drift]\n",
            remote.bare.display(),
            state.display()
        ),
    )
    .unwrap();
    let mut running = Running::start(tb, dir.path(), &config, &project);
    running.wait_notice("READY=1", Duration::from_secs(180));
    announce_push(http_port);
    running.wait_notice("STATUS=", Duration::from_secs(120));
    assert_eq!(journaled(&state), ["drift"], "logs:\n{}", running.logs());

    // The stack leaves the repository: its drift is over. It comes back: new.
    crate::git_fixture::git(&remote.work, &["rm", "-q", &file]);
    crate::git_fixture::git(&remote.work, &["commit", "-q", "-m", "no stack"]);
    crate::git_fixture::git(&remote.work, &["push", "-q", "origin", "HEAD:main"]);
    announce_push(http_port);
    running.wait_notice("STATUS=0/0 stacks in sync", Duration::from_secs(120));
    remote.push(&file, &stack, "the stack again");
    announce_push(http_port);
    running.wait_notice("STATUS=0/1 stacks in sync", Duration::from_secs(120));
    assert_eq!(
        journaled(&state),
        ["drift", "drift"],
        "logs:\n{}",
        running.logs()
    );

    let arrived = support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        kinds(&got).len() >= 2
    });
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
    assert!(arrived, "got {:?}; logs:\n{logs}", kinds(&got));
    assert_eq!(kinds(&got), ["drift", "drift"], "logs:\n{logs}");
    let first = got.lock().unwrap()[0].json();
    assert_eq!(first["stack"], project.as_str());
    assert_eq!(first["service"], "web");
    assert!(
        first["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("missing"),
        "{first}"
    );
}
