//! The daemon keeps one engine for its life: over three passes it asks the
//! registry's token endpoint once and GitHub for an installation token once,
//! and `/metrics` shows the registry's answers and rate limit. A container's
//! death re-applies its stack alone, without a git fetch or a registry request.
//!
//! The registry is the test bed's real one behind a front on 127.0.0.1 that
//! plays a public registry's token dance (a `401` with a `Bearer` challenge, a
//! token endpoint) and sends Docker Hub's rate-limit headers: the test bed's
//! registry has neither. The GitHub API is the fake of `tests/git/fake_github.rs`
//! (GitHub cannot be reached from the test machines); git is the real
//! `git http-backend`, which accepts only the first installation token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::daemon::{Running, WEBHOOK_SECRET, announce_push, id_and_running};
use crate::git_fixture::bare_remote;
use crate::pinning::{fake_github, http_backend, local_http};
use crate::support::{self, testbed};

/// The installation token the fake GitHub mints first.
const TOKEN: &str = "tok_engine_5f1c2a";

/// The token the front hands out.
const BEARER: &str = "front-bearer-7c3d";

/// A front of the test registry that wants a bearer token and counts how many
/// it handed out.
struct TokenFront {
    addr: SocketAddr,
    tokens: Arc<AtomicUsize>,
}

impl TokenFront {
    fn start(upstream: &str) -> Self {
        let tokens = Arc::new(AtomicUsize::new(0));
        let me: Arc<OnceLock<SocketAddr>> = Arc::new(OnceLock::new());
        let upstream = format!("http://{upstream}");
        magos::registry::install_crypto_provider();
        let client = reqwest::Client::new();
        let (count, realm) = (tokens.clone(), me.clone());
        let addr = local_http::serve(move |req: Request<Incoming>| {
            let (count, realm, client, upstream) = (
                count.clone(),
                realm.clone(),
                client.clone(),
                upstream.clone(),
            );
            async move { answer(req, &count, &realm, &client, &upstream).await }
        });
        me.set(addr).unwrap();
        Self { addr, tokens }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }
}

async fn answer(
    req: Request<Incoming>,
    tokens: &AtomicUsize,
    me: &OnceLock<SocketAddr>,
    client: &reqwest::Client,
    upstream: &str,
) -> Response<Full<Bytes>> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    if path.starts_with("/token") {
        tokens.fetch_add(1, Ordering::SeqCst);
        let body = format!(r#"{{"token": "{BEARER}", "expires_in": 3600}}"#);
        return Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
    }
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {BEARER}").as_str());
    if !authorized {
        let realm = format!("http://{}/token", me.get().unwrap());
        return Response::builder()
            .status(401)
            .header(
                "www-authenticate",
                format!(r#"Bearer realm="{realm}",service="front""#),
            )
            .body(Full::new(Bytes::from_static(b"{\"errors\":[]}")))
            .unwrap();
    }
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut up = client.request(method, format!("{upstream}{path}"));
    for (k, v) in req.headers() {
        if k != "host" && k != "authorization" {
            up = up.header(k.as_str(), v.as_bytes());
        }
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let got = up.body(body).send().await.unwrap();
    let mut res = Response::builder()
        .status(got.status().as_u16())
        // Docker Hub's headers: 100 pulls per 6 hours, 97 left.
        .header("ratelimit-limit", "100;w=21600")
        .header("ratelimit-remaining", "97;w=21600");
    for (k, v) in got.headers() {
        if k != "transfer-encoding" && k != "connection" {
            res = res.header(k.as_str(), v.as_bytes());
        }
    }
    let bytes = got.bytes().await.unwrap();
    res.body(Full::new(bytes)).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github-app")
        .join(name)
}

#[test]
fn three_passes_ask_for_one_registry_token_and_one_installation_token() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgeng").replace('-', "_");
    let http_port = support::free_port();
    let front = TokenFront::start(&tb.registry);

    // The remote, served over HTTP by git http-backend for `me/homelab`.
    let served = dir.path().join("served");
    let compose = format!(
        "services:\n  app:\n    image: {}/magos/semver:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"^1\"}}}}\n",
        front.host()
    );
    bare_remote(
        &served,
        "me/homelab.git",
        &[(format!("{project}/compose.yaml"), compose)],
    );
    let github = fake_github::FakeGithub::start(
        1234,
        42,
        "me",
        "homelab",
        &std::fs::read(fixture("public-key.pem")).unwrap(),
        TOKEN,
        3600,
    );
    let backend = http_backend::HttpBackend::start(served, TOKEN, TOKEN);

    // Observe mode: every pass syncs and checks the registry, changes nothing.
    let config = dir.path().join("magos.yaml");
    std::fs::write(
        &config,
        format!(
            "repo:\n  url: {}\ngithub:\n  app_id: 1234\n  private_key: {}\n  api_url: {}\nregistries:\n  insecure: [\"{}\"]\napply:\n  instance: {project}\ndaemon:\n  observe: true\n  interval: 1h\n  listen: 127.0.0.1:{http_port}\n  webhook_secret: {WEBHOOK_SECRET}\nstate_dir: {}\n",
            backend.url("me/homelab.git"),
            fixture("private-key.pem").display(),
            github.url(),
            front.host(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut running = Running::start(tb, dir.path(), &config, &project);
    running.wait_notice("READY=1", Duration::from_secs(120));
    for _ in 0..2 {
        announce_push(http_port);
        running.wait_notice("STATUS=", Duration::from_secs(60));
    }
    let logs = running.logs();
    let passes = logs.matches("pass started").count();
    assert_eq!(passes, 3, "three passes ran; logs:\n{logs}");
    assert!(
        logs.matches("update available; not pinned").count() >= 3,
        "each pass checked the registry; logs:\n{logs}"
    );

    assert_eq!(
        front.tokens.load(Ordering::SeqCst),
        1,
        "one registry token for three passes; logs:\n{logs}"
    );
    {
        let state = github.state.lock().unwrap();
        assert_eq!(
            state.tokens.len(),
            1,
            "one installation token for three passes; logs:\n{logs}"
        );
        assert!(state.refused.is_empty(), "{:?}", state.refused);
    }
    // Every pass fetched with the one installation token (the server accepts
    // no other).
    assert!(backend.seen.lock().unwrap().accepted >= 3);

    let metrics = support::http_get(http_port, "/metrics").unwrap().text();
    let host = front.host();
    let ok = metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "magos_registry_requests_total{{registry=\"{host}\",status=\"200\"}} "
            ))
        })
        .unwrap_or_else(|| panic!("no registry request metric:\n{metrics}"));
    let answered: u64 = ok.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(answered >= 3, "{ok}");
    assert!(
        metrics.contains(&format!(
            "magos_registry_requests_total{{registry=\"{host}\",status=\"401\"}} 1\n"
        )),
        "one challenge, answered once:\n{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "magos_registry_ratelimit_remaining{{registry=\"{host}\"}} 97\n"
        )),
        "{metrics}"
    );
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
    assert!(!logs.contains(TOKEN) && !logs.contains(BEARER));
}

/// Removes a project's objects when the test ends, whatever the outcome.
struct RemoveProject<'a>(&'a support::Testbed, String);

impl Drop for RemoveProject<'_> {
    fn drop(&mut self) {
        self.0.remove_project(&self.1);
    }
}

/// The `magos_registry_requests_total` lines of `/metrics`.
fn registry_requests(http_port: u16) -> Vec<String> {
    let metrics = support::http_get(http_port, "/metrics").unwrap().text();
    metrics
        .lines()
        .filter(|l| l.starts_with("magos_registry_requests_total{"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_container_death_reapplies_only_its_stack_without_git_or_registries() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let instance = support::unique_name("mgdie").replace('-', "_");
    let (a, b) = (format!("{instance}_a"), format!("{instance}_b"));
    let _b = RemoveProject(tb, b.clone());
    let http_port = support::free_port();
    let image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    let stack = |name: &str| {
        format!(
            "name: {name}\nservices:\n  web:\n    image: {image} # {{\"magos\": {{\"policy\": \"latest\", \"tag\": \"1\"}}}}\n    stop_signal: SIGKILL\n"
        )
    };
    let served = dir.path().join("served");
    bare_remote(
        &served,
        "me/homelab.git",
        &[("a/compose.yaml", stack(&a)), ("b/compose.yaml", stack(&b))],
    );
    let backend = http_backend::HttpBackend::start(served, TOKEN, TOKEN);
    let config = dir.path().join("magos.yaml");
    std::fs::write(
        &config,
        format!(
            "repo:\n  url: http://x-access-token:{TOKEN}@{}/me/homelab.git\napply:\n  instance: {instance}\ndaemon:\n  interval: 1h\n  listen: 127.0.0.1:{http_port}\n  webhook_secret: {WEBHOOK_SECRET}\nrollback:\n  soak: 2s\nstate_dir: {}\n",
            backend.addr,
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut running = Running::start(tb, dir.path(), &config, &a);
    running.wait_notice("READY=1", Duration::from_secs(180));
    let (web_a, web_b) = (format!("{a}_web_1"), format!("{b}_web_1"));
    let b_before = id_and_running(tb, &web_b).expect("stack b runs");
    assert!(b_before.1);
    // Quiet: every pass started has finished (the first one reports `ready`).
    let quiet = support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        let logs = running.logs();
        logs.matches("pass started").count() == 1 + logs.matches("pass finished").count()
    });
    assert!(quiet, "logs:\n{}", running.logs());
    let fetches = backend.seen.lock().unwrap().requests.len();
    let asked = registry_requests(http_port);
    assert!(!asked.is_empty(), "the first pass asked the registry");
    let finished = running.logs().matches("pass finished").count();

    // Stack a's container dies: a pass re-applies stack a alone.
    tb.podman_ok(&["kill", &web_a]);
    let done = support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        let logs = running.logs();
        logs.contains("re-applying the stacks of the container events")
            && logs.matches("pass finished").count() > finished
    });
    let logs = running.logs();
    assert!(done, "logs:\n{logs}");
    assert!(
        id_and_running(tb, &web_a).is_some_and(|(_, up)| up),
        "stack a runs again; logs:\n{logs}"
    );
    assert_eq!(
        id_and_running(tb, &web_b),
        Some(b_before),
        "stack b is left alone"
    );
    assert_eq!(
        backend.seen.lock().unwrap().requests.len(),
        fetches,
        "no git fetch in that pass; logs:\n{logs}"
    );
    assert_eq!(
        registry_requests(http_port),
        asked,
        "no registry request in that pass"
    );
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
}
