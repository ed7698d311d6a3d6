//! The registry edge against real registries: the test bed's docker-registry
//! (`MAGOS_TEST_REGISTRY`, on 127.0.0.1), and second docker-registry instances started here with TLS and
//! htpasswd, or with token authentication. Podman and skopeo (as the test user)
//! push and pull, so digests are compared with what Podman records.
//!
//! Two small local servers stand in for what cannot run here:
//! - a *front* (a forwarding proxy to the real registry) that counts requests,
//!   answers `429` on demand, adds Docker Hub's rate-limit headers, returns
//!   garbage or oversized bodies, and can page tag lists the way GHCR and Docker
//!   Hub do (the Debian docker-registry 2.8 ignores `n` and `last`);
//! - a *token server* for docker-registry's `auth: token` mode, which signs
//!   ES256 JWTs with a certificate made at test time.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use magos::cli::check::{Choice, Output, Policies, Watched, check_services};
use magos::config::{Env, RegistriesConfig};
use magos::registry::{ImageRef, ManifestKind, Platform, RegistryClient, RegistryError, Settings};

// ---------------------------------------------------------------------------
// The test bed.

/// The test bed as far as these tests need it.
struct Bed {
    vars: BTreeMap<String, String>,
    user: String,
    runtime_dir: String,
    registry: String,
}

impl Bed {
    fn var(&self, key: &str) -> &str {
        self.vars
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} is missing from the test bed's env file"))
    }
}

/// The test bed, or `None` after printing `skipped: podman not available` (a
/// panic instead when `MAGOS_REQUIRE_PODMAN=1`).
fn bed() -> Option<&'static Bed> {
    static BED: OnceLock<Result<Bed, String>> = OnceLock::new();
    let loaded = BED.get_or_init(|| {
        let path = std::env::var("MAGOS_TESTBED_ENV")
            .unwrap_or_else(|_| "/run/magos-testbed/env".to_owned());
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let mut vars = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                vars.insert(k.trim().to_owned(), v.trim().trim_matches('"').to_owned());
            }
        }
        if vars.get("MAGOS_TESTBED_READY").map(String::as_str) != Some("1") {
            return Err(format!("{path} does not say MAGOS_TESTBED_READY=1"));
        }
        let get = |k: &str| {
            vars.get(k)
                .cloned()
                .ok_or_else(|| format!("{k} missing in {path}"))
        };
        let registry = get("MAGOS_TEST_REGISTRY")?;
        if !registry.starts_with("127.0.0.1:") {
            return Err(format!(
                "MAGOS_TEST_REGISTRY {registry} is not on 127.0.0.1"
            ));
        }
        std::net::TcpStream::connect(&registry)
            .map_err(|e| format!("the test registry {registry} does not answer: {e}"))?;
        Ok(Bed {
            user: get("MAGOS_TESTBED_USER")?,
            runtime_dir: get("XDG_RUNTIME_DIR_TESTBED")?,
            registry,
            vars,
        })
    });
    match loaded {
        Ok(bed) => Some(bed),
        Err(reason) => {
            if std::env::var("MAGOS_REQUIRE_PODMAN").as_deref() == Ok("1") {
                panic!(
                    "the podman test bed is required (MAGOS_REQUIRE_PODMAN=1) but not available: {reason}"
                );
            }
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\nskipped: podman not available ({reason})"
            );
            None
        }
    }
}

/// Runs a command as the test user (rootless podman, skopeo); panics with its
/// output when it fails.
async fn as_user(bed: &Bed, args: &[&str]) -> String {
    let out = tokio::process::Command::new("runuser")
        .args(["-u", &bed.user, "--", "env"])
        .arg(format!("XDG_RUNTIME_DIR={}", bed.runtime_dir))
        .arg("PODMAN_IGNORE_CGROUPSV1_WARNING=1")
        .args(args)
        .current_dir("/")
        .output()
        .await
        .expect("runuser runs");
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs skopeo as root (for the registries this file starts).
async fn skopeo(args: &[&str]) {
    let out = tokio::process::Command::new("skopeo")
        .args(args)
        .output()
        .await
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `condition` until it holds or `limit` passes.
async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

/// A client for the test bed's registry, plain HTTP from the test user's
/// `registries.conf` (read through `Settings::load`, as in production).
fn bed_client(bed: &Bed) -> RegistryClient {
    let config = RegistriesConfig {
        registries_conf: Some(PathBuf::from(bed.var("MAGOS_TESTBED_REGISTRIES_CONF"))),
        ..RegistriesConfig::default()
    };
    let settings = Settings::load(&config, &Env::new()).expect("settings load");
    assert!(settings.insecure.is_insecure(&bed.registry, "magos/semver"));
    RegistryClient::new(settings)
}

/// A client reaching `hosts` over plain HTTP.
fn plain_client(hosts: &[&str]) -> RegistryClient {
    let mut settings = Settings {
        timeout: Duration::from_secs(20),
        ..Settings::default()
    };
    for h in hosts {
        settings.insecure.add_host(h);
    }
    RegistryClient::new(settings)
}

fn image(s: &str) -> ImageRef {
    magos::registry::parse_image(s).unwrap()
}

/// The registry's own complete tag list, asked without pagination.
async fn registry_tags(host: &str, repo: &str) -> BTreeSet<String> {
    #[derive(serde::Deserialize)]
    struct List {
        tags: Vec<String>,
    }
    let body = http()
        .get(format!("http://{host}/v2/{repo}/tags/list"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice::<List>(&body)
        .unwrap()
        .tags
        .into_iter()
        .collect()
}

/// A plain reqwest client for the test's own requests.
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Local servers.

/// A local HTTP server; stopped when dropped.
struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { addr, task }
}

/// How the front answers tag lists.
#[derive(Clone, Copy)]
enum Paging {
    /// Forward as is.
    Forward,
    /// At most `cap` tags a page (whatever `n` asks), with a `Link` to the next.
    LinkCapped(usize),
    /// Pages of exactly `n`, continued only through `last`, without `Link`.
    LastOnly,
}

/// What the front does besides forwarding.
struct FrontState {
    upstream: String,
    log: Mutex<Vec<String>>,
    fail_429: AtomicU32,
    retry_after: Mutex<String>,
    paging: Mutex<Paging>,
    rate_headers: bool,
    served: AtomicU64,
    garbage_tags: bool,
    huge_manifests: bool,
    /// How long each request is held before it is answered (a slow registry).
    hold: Duration,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
    http: reqwest::Client,
}

/// A forwarding proxy in front of a real registry. It stands in for what a
/// public registry does and the local docker-registry cannot (rate limits with
/// `429`, rate-limit headers, capped tag pages) and for a misbehaving registry.
struct Front {
    state: Arc<FrontState>,
    server: Server,
}

impl Front {
    async fn start(upstream: &str, configure: impl FnOnce(&mut FrontState)) -> Self {
        let mut state = FrontState {
            upstream: upstream.to_owned(),
            log: Mutex::new(Vec::new()),
            fail_429: AtomicU32::new(0),
            retry_after: Mutex::new("1".to_owned()),
            paging: Mutex::new(Paging::Forward),
            rate_headers: false,
            served: AtomicU64::new(0),
            garbage_tags: false,
            huge_manifests: false,
            hold: Duration::ZERO,
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(0),
            http: http(),
        };
        configure(&mut state);
        let state = Arc::new(state);
        let s = state.clone();
        let server = serve(move |req| front_handle(req, s.clone())).await;
        Front { state, server }
    }

    fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// `METHOD /path?query` of every request, in order.
    fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    fn count(&self, method: &str, path_contains: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.starts_with(&format!("{method} ")) && l.contains(path_contains))
            .count()
    }
}

async fn front_handle(req: Request<Incoming>, state: Arc<FrontState>) -> Response<Full<Bytes>> {
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if !state.hold.is_zero() {
        tokio::time::sleep(state.hold).await;
    }
    let response = front_answer(req, &state).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn front_answer(req: Request<Incoming>, state: &FrontState) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    state
        .log
        .lock()
        .unwrap()
        .push(format!("{method} {path_and_query}"));
    let path = req.uri().path().to_owned();
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();

    if state
        .fail_429
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header("retry-after", state.retry_after.lock().unwrap().clone())
            .body(Full::new(Bytes::from_static(
                br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
            )))
            .unwrap();
    }
    let mut builder = Response::builder();
    if state.rate_headers {
        let n = state.served.fetch_add(1, Ordering::SeqCst) + 1;
        builder = builder.header("ratelimit-limit", "100;w=21600").header(
            "ratelimit-remaining",
            format!("{};w=21600", 100u64.saturating_sub(n)),
        );
    }
    if path.ends_with("/tags/list") && state.garbage_tags {
        return builder
            .status(200)
            .body(Full::new(Bytes::from_static(b"<html>not a tag list")))
            .unwrap();
    }
    if path.contains("/manifests/") && state.huge_manifests && method == hyper::Method::GET {
        return builder
            .status(200)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(Full::new(Bytes::from(vec![b' '; 5 << 20])))
            .unwrap();
    }
    let paging = *state.paging.lock().unwrap();
    if path.ends_with("/tags/list") && !matches!(paging, Paging::Forward) {
        #[derive(serde::Deserialize)]
        struct List {
            tags: Vec<String>,
        }
        let body = state
            .http
            .get(format!("http://{}{path}", state.upstream))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let mut all = serde_json::from_slice::<List>(&body).unwrap().tags;
        all.sort();
        let last = query.get("last").cloned();
        let rest: Vec<String> = all
            .into_iter()
            .filter(|t| last.as_ref().is_none_or(|l| t > l))
            .collect();
        let n: usize = query
            .get("n")
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        let take = match paging {
            Paging::LinkCapped(cap) => n.min(cap),
            _ => n,
        };
        let page: Vec<String> = rest.iter().take(take).cloned().collect();
        if let (Paging::LinkCapped(_), true) = (paging, rest.len() > page.len()) {
            builder = builder.header(
                "link",
                format!(
                    "<{path}?n={take}&last={}>; rel=\"next\"",
                    page.last().unwrap()
                ),
            );
        }
        let json = serde_json::json!({"name": path, "tags": page});
        return builder
            .status(200)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json.to_string())))
            .unwrap();
    }

    let mut upstream = state.http.request(
        method.clone(),
        format!("http://{}{path_and_query}", state.upstream),
    );
    for (name, value) in req.headers() {
        if matches!(name.as_str(), "accept" | "authorization") {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(a) => a,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(e.to_string())))
                .unwrap();
        }
    };
    builder = builder.status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        let keep = !matches!(
            name.as_str(),
            "transfer-encoding" | "connection" | "content-length"
        ) || (name.as_str() == "content-length" && method == hyper::Method::HEAD);
        if keep {
            builder = builder.header(name, value);
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    builder.body(Full::new(body)).unwrap()
}

/// A docker-registry started by a test, killed when dropped.
struct LocalRegistry {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl LocalRegistry {
    /// Starts `docker-registry serve` on 127.0.0.1:<free port> with `extra`
    /// appended to its configuration (TLS, auth), and waits until it accepts
    /// connections.
    async fn start(dir: tempfile::TempDir, extra: &str) -> Self {
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
            dir.path().join("storage").display()
        );
        let config_path = dir.path().join("registry.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let addr = format!("127.0.0.1:{port}");
        let up = wait_for(Duration::from_secs(30), || {
            std::net::TcpStream::connect(&addr).is_ok()
        })
        .await;
        let mut registry = LocalRegistry { child, port, dir };
        assert!(
            up,
            "docker-registry did not listen on {addr}: {}",
            std::fs::read_to_string(registry.dir.path().join("registry.log")).unwrap_or_default()
        );
        assert!(registry.child.try_wait().unwrap().is_none());
        registry
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn auth_file(dir: &Path, host: &str, user: &str, password: &str) -> PathBuf {
    let path = dir.join("auth.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"auths": {{"{host}": {{"auth": "{}"}}}}}}"#,
            b64(&format!("{user}:{password}"))
        ),
    )
    .unwrap();
    path
}

/// Fails the test unless `err` is a refusal of the registry, made with
/// credentials or without them as `with_credentials` says.
fn assert_unauthorized(err: &RegistryError, with_credentials: bool) {
    assert!(
        matches!(
            err,
            RegistryError::Unauthorized { with_credentials: sent, .. } if *sent == with_credentials
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Tags.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_listing_is_complete_past_100_tags() {
    let Some(bed) = bed() else { return };
    let client = bed_client(bed);
    let semver = image(bed.var("MAGOS_TEST_IMAGE_SEMVER"));
    let tags = client.tags(&semver).await.unwrap();
    let ours: BTreeSet<String> = tags.iter().cloned().collect();
    assert_eq!(ours.len(), tags.len(), "no duplicates");
    assert!(tags.len() > 100, "{} tags", tags.len());
    let expected: usize = bed
        .var("MAGOS_TEST_IMAGE_SEMVER_TAG_COUNT")
        .parse()
        .unwrap();
    assert!(tags.len() >= expected);
    assert_eq!(ours, registry_tags(&bed.registry, &semver.path).await);
    for tag in bed.var("MAGOS_TEST_IMAGE_SEMVER_DISTINCT").split(',') {
        assert!(ours.contains(tag), "{tag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_listing_follows_link_headers_and_last() {
    let Some(bed) = bed() else { return };
    let repo = "magos/semver";
    let expected = registry_tags(&bed.registry, repo).await;
    assert!(expected.len() > 100);

    // Capped pages with `Link`, as GHCR and Docker Hub serve them.
    let front = Front::start(&bed.registry, |s| {
        *s.paging.get_mut().unwrap() = Paging::LinkCapped(40);
    })
    .await;
    let client = plain_client(&[&front.host()]);
    let tags = client
        .tags(&image(&format!("{}/{repo}", front.host())))
        .await
        .unwrap();
    assert_eq!(tags.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(tags.len(), expected.len());
    let pages = expected.len().div_ceil(40);
    assert_eq!(front.count("GET", "/tags/list"), pages, "{:?}", front.log());
    assert_eq!(client.request_counts(&front.host()).tag_pages, pages as u64);

    // Full pages without `Link`: continue with `last`.
    let front = Front::start(&bed.registry, |s| {
        *s.paging.get_mut().unwrap() = Paging::LastOnly;
    })
    .await;
    let settings = Settings {
        tag_page_size: Some(25),
        ..Settings::default()
    };
    let mut settings = settings;
    settings.insecure.add_host(&front.host());
    let client = RegistryClient::new(settings);
    let tags = client
        .tags(&image(&format!("{}/{repo}", front.host())))
        .await
        .unwrap();
    assert_eq!(tags.iter().cloned().collect::<BTreeSet<_>>(), expected);
    let log = front.log();
    assert!(log.iter().any(|l| l.contains("last=")), "{log:?}");
    assert!(log.len() >= expected.len().div_ceil(25), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_tags_disappear() {
    let Some(bed) = bed() else { return };
    let repo = format!("magos/{}", unique("deleted"));
    let semver = bed.var("MAGOS_TEST_IMAGE_SEMVER");
    for (from, to) in [("1.0.0", "keep"), ("1.2.0", "gone")] {
        as_user(
            bed,
            &[
                "skopeo",
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                &format!("docker://{semver}:{from}"),
                &format!("docker://{}/{repo}:{to}", bed.registry),
            ],
        )
        .await;
    }
    let client = bed_client(bed);
    let keep = image(&format!("{}/{repo}:keep", bed.registry));
    let gone = image(&format!("{}/{repo}:gone", bed.registry));
    let mut tags = client.tags(&keep).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["gone", "keep"]);

    let digest = client.digest(&gone).await.unwrap();
    assert_ne!(digest, client.digest(&keep).await.unwrap());
    let deleted = http()
        .delete(format!(
            "http://{}/v2/{repo}/manifests/{digest}",
            bed.registry
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);

    let check = client.check();
    assert_eq!(*check.tags(&keep).await.unwrap(), ["keep"]);
    assert!(matches!(
        check.digest(&gone).await,
        Err(RegistryError::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moving_latest_is_seen_to_move_by_the_next_check() {
    let Some(bed) = bed() else { return };
    let repo = format!("magos/{}", unique("moving"));
    let semver = bed.var("MAGOS_TEST_IMAGE_SEMVER");
    let push = |from: &'static str| {
        let repo = repo.clone();
        async move {
            as_user(
                bed,
                &[
                    "skopeo",
                    "copy",
                    "--src-tls-verify=false",
                    "--dest-tls-verify=false",
                    &format!("docker://{semver}:{from}"),
                    &format!("docker://{}/{repo}:latest", bed.registry),
                ],
            )
            .await
        }
    };
    let client = bed_client(bed);
    let latest = image(&format!("{}/{repo}", bed.registry));
    push("1.0.0").await;
    let first = client.check();
    let d1 = first.digest(&latest).await.unwrap();
    assert_eq!(
        d1,
        client
            .digest(&image(&format!("{semver}:1.0.0")))
            .await
            .unwrap()
    );

    push("1.2.0").await;
    // The pass that already asked keeps its answer; the next pass sees the move.
    assert_eq!(first.digest(&latest).await.unwrap(), d1);
    let d2 = client.check().digest(&latest).await.unwrap();
    assert_ne!(d1, d2);
    assert_eq!(
        d2,
        client
            .digest(&image(&format!("{semver}:1.2.0")))
            .await
            .unwrap()
    );

    // The test bed's own moving image answers too.
    let moving = image(&format!("{}:latest", bed.var("MAGOS_TEST_IMAGE_MOVING")));
    client.digest(&moving).await.unwrap();
}

// ---------------------------------------------------------------------------
// Digests and manifests.

/// `podman pull` as the test user; returns the repo digests Podman records.
async fn podman_pull_digests(bed: &Bed, reference: &str) -> Vec<String> {
    as_user(
        bed,
        &["podman", "pull", "-q", "--tls-verify=false", reference],
    )
    .await;
    let out = as_user(
        bed,
        &[
            "podman",
            "image",
            "inspect",
            "--format",
            "{{.Digest}} {{range .RepoDigests}}{{.}} {{end}}",
            reference,
        ],
    )
    .await;
    out.split_whitespace().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_digest_is_the_pin_podman_pull_records() {
    let Some(bed) = bed() else { return };
    let client = bed_client(bed);
    let multi = format!(
        "{}:{}",
        bed.var("MAGOS_TEST_IMAGE_MULTIARCH"),
        bed.var("MAGOS_TEST_IMAGE_MULTIARCH_TAG")
    );
    let multi_ref = image(&multi);
    let check = client.check();
    let head = check.digest(&multi_ref).await.unwrap();
    let manifest = check.manifest(&multi_ref).await.unwrap();
    assert_eq!(manifest.digest, head, "HEAD and GET agree");
    assert_eq!(
        manifest.media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    let ManifestKind::Index { entries } = &manifest.kind else {
        panic!("{multi} is not an index: {manifest:?}");
    };
    assert!(entries.len() >= 2);

    // Podman records the index digest among the image's repo digests (the pin
    // that pulls this image), and the host platform's manifest as its `.Digest`.
    let recorded = podman_pull_digests(bed, &multi).await;
    let repo = multi.rsplit_once(':').unwrap().0;
    assert!(
        recorded.iter().any(|d| d == &format!("{repo}@{head}")),
        "{recorded:?}"
    );
    let host_platform = check
        .platform_digest(&multi_ref, &Platform::host())
        .await
        .unwrap();
    assert_eq!(
        recorded[0],
        host_platform.as_str(),
        "podman's .Digest: {recorded:?}"
    );
    assert_ne!(host_platform, head);

    // A platform manifest only when a platform is named.
    let arm = Platform::parse("linux/arm64").unwrap();
    let arm_digest = check.platform_digest(&multi_ref, &arm).await.unwrap();
    assert_ne!(arm_digest, head);
    assert!(entries.iter().any(|e| e.digest == arm_digest));
    let amd = Platform::parse("linux/amd64").unwrap();
    assert_ne!(
        check.platform_digest(&multi_ref, &amd).await.unwrap(),
        arm_digest
    );
    assert!(matches!(
        check
            .platform_digest(&multi_ref, &Platform::parse("linux/s390x").unwrap())
            .await,
        Err(RegistryError::NoPlatform { .. })
    ));
    assert!(
        check
            .created(&multi_ref, Some(&arm))
            .await
            .unwrap()
            .is_some()
    );

    // The same index as a Docker manifest list.
    let docker_list = image(&format!(
        "{}:{}",
        bed.var("MAGOS_TEST_IMAGE_MULTIARCH"),
        bed.var("MAGOS_TEST_IMAGE_MULTIARCH_DOCKER_TAG")
    ));
    let list = check.manifest(&docker_list).await.unwrap();
    assert_eq!(
        list.media_type,
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(check.digest(&docker_list).await.unwrap(), list.digest);

    // A single-platform image: its manifest digest, as Podman records it.
    let single = format!("{}:1.2.3", bed.var("MAGOS_TEST_IMAGE_SEMVER"));
    let single_ref = image(&single);
    let digest = check.digest(&single_ref).await.unwrap();
    let m = check.manifest(&single_ref).await.unwrap();
    assert!(matches!(m.kind, ManifestKind::Image { .. }));
    assert_eq!(m.digest, digest);
    assert_eq!(
        check.platform_digest(&single_ref, &arm).await.unwrap(),
        digest,
        "a single image is its own platform manifest"
    );
    let recorded = podman_pull_digests(bed, &single).await;
    assert_eq!(recorded[0], digest.as_str(), "{recorded:?}");
    let created = check
        .created(&single_ref, None)
        .await
        .unwrap()
        .expect("a creation time");
    assert!(created > UNIX_EPOCH + Duration::from_secs(1_600_000_000));

    // Pinned references are checked against what the registry serves.
    let pinned = single_ref.with_digest(digest.clone());
    assert_eq!(client.digest(&pinned).await.unwrap(), digest);
}

// ---------------------------------------------------------------------------
// Authentication.

struct Tls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// A CA and a certificate for 127.0.0.1 signed by it.
fn make_tls() -> Tls {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "magos test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &ca).unwrap();
    Tls {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_tls_with_podman_files() {
    let Some(bed) = bed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tls = make_tls();
    std::fs::write(dir.path().join("cert.pem"), &tls.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &tls.key_pem).unwrap();
    let password = "s3cret-pass-word";
    let hash = bcrypt::hash(password, 5).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("magos:{hash}\n")).unwrap();
    let extra = format!(
        "  tls:\n    certificate: {0}/cert.pem\n    key: {0}/key.pem\nauth:\n  htpasswd:\n    realm: magos-test\n    path: {0}/htpasswd\n",
        dir.path().display()
    );
    let dir_path = dir.path().to_owned();
    let registry = LocalRegistry::start(dir, &extra).await;
    let host = registry.host();

    // The CA, trusted the way Podman trusts it: certs.d/<host:port>/ca.crt under
    // the user's configuration folder.
    let home = dir_path.join("home");
    let certs = home.join(".config/containers/certs.d").join(&host);
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), &tls.ca_pem).unwrap();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-cert-dir",
        &certs.display().to_string(),
        "--dest-creds",
        &format!("magos:{password}"),
        &format!("docker://{}:1.2.3", bed.var("MAGOS_TEST_IMAGE_SEMVER")),
        &format!("docker://{host}/private/app:1.2.3"),
    ])
    .await;
    let app = image(&format!("{host}/private/app:1.2.3"));
    let env: Env = [("HOME".to_owned(), home.display().to_string())].into();
    let load = |auth: Option<PathBuf>| {
        let config = RegistriesConfig {
            auth_file: auth,
            registries_conf: Some(dir_path.join("no-registries.conf")),
            ..RegistriesConfig::default()
        };
        std::fs::write(dir_path.join("no-registries.conf"), "").unwrap();
        RegistryClient::new(Settings::load(&config, &env).unwrap())
    };

    // Right credentials, from an auth file: TLS with the ring provider, Basic auth.
    let good = auth_file(&dir_path, &host, "magos", password);
    let client = load(Some(good));
    assert_eq!(*client.tags(&app).await.unwrap(), ["1.2.3"]);
    let digest = client.digest(&app).await.unwrap();
    assert_eq!(
        digest,
        bed_client(bed)
            .digest(&image(&format!(
                "{}:1.2.3",
                bed.var("MAGOS_TEST_IMAGE_SEMVER")
            )))
            .await
            .unwrap()
    );
    assert!(client.created(&app, None).await.unwrap().is_some());

    // No credentials.
    let err = load(None).tags(&app).await.unwrap_err();
    assert_unauthorized(&err, false);

    // Wrong credentials: refused, and the error never shows the password.
    let wrong_dir = tempfile::tempdir().unwrap();
    let wrong = auth_file(wrong_dir.path(), &host, "magos", "not-the-password");
    let err = load(Some(wrong)).digest(&app).await.unwrap_err();
    assert_unauthorized(&err, true);
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("not-the-password") && !shown.contains(password),
        "{shown}"
    );

    // Without the CA the certificate is refused.
    let stranger: Env = [("HOME".to_owned(), "/nonexistent".to_owned())].into();
    let config = RegistriesConfig {
        auth_file: Some(auth_file(&dir_path, &host, "magos", password)),
        registries_conf: Some(dir_path.join("no-registries.conf")),
        ..RegistriesConfig::default()
    };
    let untrusting = RegistryClient::new(Settings::load(&config, &stranger).unwrap());
    let err = untrusting.tags(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    drop(registry);
}

/// An ES256 JWT for docker-registry's token authentication.
fn sign_token(
    key: &ring::signature::EcdsaKeyPair,
    cert_der: &[u8],
    sub: &str,
    access: serde_json::Value,
) -> String {
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(cert_der)],
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "magos-test-issuer",
        "sub": sub,
        "aud": "magos-test-service",
        "exp": now + 300,
        "nbf": now - 30,
        "iat": now - 30,
        "jti": unique("jti"),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        url.encode(header.to_string()),
        url.encode(claims.to_string())
    );
    let rng = ring::rand::SystemRandom::new();
    let signature = key.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", url.encode(signature.as_ref()))
}

/// What the token server saw.
#[derive(Default)]
struct TokenLog {
    /// `user scope` of every granted request.
    granted: Vec<String>,
    refused: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_from_a_token_server_are_cached() {
    let Some(bed) = bed() else { return };
    let dir = tempfile::tempdir().unwrap();

    // The token server's signing certificate, trusted by the registry.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["magos-token".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "magos-token");
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("token.crt"), cert.pem()).unwrap();
    let signer = Arc::new(
        ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &ring::rand::SystemRandom::new(),
        )
        .unwrap(),
    );
    let cert_der = Arc::new(cert.der().to_vec());
    let log = Arc::new(Mutex::new(TokenLog::default()));
    let expected_auth = format!("Basic {}", b64("tok:tok-pass"));
    let server = {
        let log = log.clone();
        serve(move |req: Request<Incoming>| {
            let log = log.clone();
            let signer = signer.clone();
            let cert_der = cert_der.clone();
            let expected_auth = expected_auth.clone();
            async move {
                let authorized = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    == Some(expected_auth.as_str());
                if !authorized {
                    log.lock().unwrap().refused += 1;
                    return Response::builder()
                        .status(401)
                        .body(Full::new(Bytes::from_static(
                            b"{\"details\":\"bad credentials\"}",
                        )))
                        .unwrap();
                }
                let query: Vec<(String, String)> = req
                    .uri()
                    .query()
                    .map(|q| {
                        url::form_urlencoded::parse(q.as_bytes())
                            .into_owned()
                            .collect()
                    })
                    .unwrap_or_default();
                let mut access = Vec::new();
                for (k, scope) in &query {
                    if k != "scope" {
                        continue;
                    }
                    let parts: Vec<&str> = scope.split(':').collect();
                    if let [kind, name, actions] = parts.as_slice() {
                        access.push(serde_json::json!({
                            "type": kind, "name": name,
                            "actions": actions.split(',').collect::<Vec<_>>(),
                        }));
                    }
                    log.lock().unwrap().granted.push(format!("tok {scope}"));
                }
                let token = sign_token(&signer, &cert_der, "tok", serde_json::Value::Array(access));
                let body = serde_json::json!({"token": token, "expires_in": 300});
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap()
            }
        })
        .await
    };
    let extra = format!(
        "auth:\n  token:\n    realm: http://{}/token\n    service: magos-test-service\n    issuer: magos-test-issuer\n    rootcertbundle: {}\n",
        server.addr,
        dir.path().join("token.crt").display()
    );
    let registry = LocalRegistry::start(tempfile::tempdir().unwrap(), &extra).await;
    let host = registry.host();
    let semver = bed.var("MAGOS_TEST_IMAGE_SEMVER");
    for repo in ["team/one", "team/two"] {
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            "tok:tok-pass",
            &format!("docker://{semver}:1.2.0"),
            &format!("docker://{host}/{repo}:1.2.0"),
        ])
        .await;
    }
    log.lock().unwrap().granted.clear();

    let mut settings = Settings::default();
    settings.insecure.add_host(&host);
    settings
        .auth
        .push_file(
            dir.path().join("auth.json"),
            &format!(
                r#"{{"auths": {{"{host}": {{"auth": "{}"}}}}}}"#,
                b64("tok:tok-pass")
            ),
        )
        .unwrap();
    let client = RegistryClient::new(settings);
    let one = image(&format!("{host}/team/one:1.2.0"));
    let two = image(&format!("{host}/team/two:1.2.0"));
    assert_eq!(*client.tags(&one).await.unwrap(), ["1.2.0"]);
    let d1 = client.digest(&one).await.unwrap();
    client.manifest(&one).await.unwrap();
    client.tags(&one).await.unwrap();
    assert_eq!(
        log.lock().unwrap().granted,
        ["tok repository:team/one:pull"],
        "one token for one repository, reused"
    );
    assert_eq!(client.digest(&two).await.unwrap(), d1);
    assert_eq!(
        log.lock().unwrap().granted,
        [
            "tok repository:team/one:pull",
            "tok repository:team/two:pull"
        ]
    );
    assert_eq!(client.request_counts(&host).token_gets, 2);

    // Anonymous: the token server refuses, and so does the check.
    let anonymous = plain_client(&[&host]);
    let err = anonymous.tags(&one).await.unwrap_err();
    assert_unauthorized(&err, false);
    assert!(log.lock().unwrap().refused >= 1);
}

// ---------------------------------------------------------------------------
// Frugality and resilience.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_is_retried_after_the_asked_wait() {
    let Some(bed) = bed() else { return };
    let semver = bed.var("MAGOS_TEST_IMAGE_SEMVER");
    let repo = semver.split_once('/').unwrap().1;

    let front = Front::start(&bed.registry, |s| {
        s.fail_429 = AtomicU32::new(1);
        s.rate_headers = true;
    })
    .await;
    let client = plain_client(&[&front.host()]);
    let via_front = image(&format!("{}/{repo}:1.2.3", front.host()));
    let started = Instant::now();
    let digest = client.digest(&via_front).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as asked"
    );
    assert_eq!(
        digest,
        bed_client(bed)
            .digest(&image(&format!("{semver}:1.2.3")))
            .await
            .unwrap()
    );
    assert_eq!(
        front.count("HEAD", "/manifests/1.2.3"),
        2,
        "{:?}",
        front.log()
    );
    let counts = client.request_counts(&front.host());
    assert_eq!((counts.rate_limited, counts.manifest_heads), (1, 2));
    let limit = client
        .rate_limit(&front.host())
        .expect("rate-limit headers read");
    assert_eq!(limit.limit, Some(100));
    assert_eq!(limit.remaining, Some(99));
    assert_eq!(limit.window, Some(Duration::from_secs(21600)));

    // A registry asking for an hour fails this check at once.
    let front = Front::start(&bed.registry, |s| {
        s.fail_429 = AtomicU32::new(100);
        *s.retry_after.get_mut().unwrap() = "3600".to_owned();
    })
    .await;
    let client = plain_client(&[&front.host()]);
    let err = client
        .digest(&image(&format!("{}/{repo}:1.2.3", front.host())))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3600)),
        "{err}"
    );
    assert_eq!(front.log().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tag_listing_per_repository_and_heads_only_for_elected_candidates() {
    let Some(bed) = bed() else { return };
    let front = Front::start(&bed.registry, |_| {}).await;
    let h = front.host();
    let client = plain_client(&[&h]);
    let check = client.check();
    // Six services: four on one repository, two on another.
    let services: Vec<ImageRef> = [
        "magos/semver:1.0.0",
        "magos/semver:1.2.0",
        "magos/semver:1.2.3",
        "magos/semver:latest",
        "magos/moving:latest",
        "magos/moving",
    ]
    .iter()
    .map(|s| image(&format!("{h}/{s}")))
    .collect();
    let listed = futures_util::future::join_all(services.iter().map(|s| check.tags(s))).await;
    for tags in &listed {
        assert!(!tags.as_ref().unwrap().is_empty());
    }
    // The policy elected two candidates; only they are resolved.
    let elected = [
        image(&format!("{h}/magos/semver:v2.3.1")),
        image(&format!("{h}/magos/moving:latest")),
    ];
    for candidate in &elected {
        check.digest(candidate).await.unwrap();
        check.digest(candidate).await.unwrap();
    }
    let log = front.log();
    assert_eq!(
        front.count("GET", "/v2/magos/semver/tags/list"),
        1,
        "{log:?}"
    );
    assert_eq!(
        front.count("GET", "/v2/magos/moving/tags/list"),
        1,
        "{log:?}"
    );
    assert_eq!(front.count("HEAD", "/manifests/"), 2, "{log:?}");
    assert_eq!(front.count("HEAD", "/v2/magos/semver/manifests/v2.3.1"), 1);
    assert_eq!(
        front.count("GET", "/manifests/"),
        0,
        "no manifest bodies: {log:?}"
    );
    assert_eq!(log.len(), 4, "nothing else: {log:?}");
    let counts = client.request_counts(&h);
    assert_eq!(counts.registry_requests(), 4);
    assert_eq!((counts.tag_pages, counts.manifest_heads), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_bounded_per_registry() {
    let Some(bed) = bed() else { return };
    let slow = Front::start(&bed.registry, |s| s.hold = Duration::from_millis(600)).await;
    let client = plain_client(&[&slow.host()]);
    let check = client.check();
    let tags = registry_tags(&bed.registry, "magos/semver").await;
    let images: Vec<ImageRef> = tags
        .iter()
        .take(12)
        .map(|t| image(&format!("{}/magos/semver:{t}", slow.host())))
        .collect();
    let digests = futures_util::future::join_all(images.iter().map(|i| check.digest(i))).await;
    assert!(digests.iter().all(Result::is_ok), "{digests:?}");
    assert_eq!(slow.count("HEAD", "/manifests/"), 12);
    let max = slow.state.max_in_flight.load(Ordering::SeqCst) as usize;
    let bound = client.settings().max_concurrent_per_registry;
    assert!(max <= bound, "{max} requests at once, bound {bound}");
    assert!(max >= 2, "requests to one registry still overlap: {max}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_stopped_mid_check_fails_only_its_images() {
    let Some(bed) = bed() else { return };
    let mut second = LocalRegistry::start(tempfile::tempdir().unwrap(), "").await;
    let host = second.host();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}:1.0.0", bed.var("MAGOS_TEST_IMAGE_SEMVER")),
        &format!("docker://{host}/other/app:1.0.0"),
    ])
    .await;
    let client = plain_client(&[&host, &bed.registry]);
    let check = client.check();
    let app = image(&format!("{host}/other/app:1.0.0"));
    assert_eq!(*check.tags(&app).await.unwrap(), ["1.0.0"]);

    second.stop();
    let err = check.digest(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&host), "{err}");
    let asked = client.request_counts(&host);

    // The other registry is still checked in the same pass.
    let semver = image(&format!("{}:1.2.3", bed.var("MAGOS_TEST_IMAGE_SEMVER")));
    assert!(check.tags(&semver).await.unwrap().len() > 100);
    check.digest(&semver).await.unwrap();

    // The stopped registry is not asked again in this pass.
    let again = check
        .tags(&image(&format!("{host}/other/else:1")))
        .await
        .unwrap_err();
    assert!(
        matches!(again, RegistryError::Unreachable { .. }),
        "{again}"
    );
    assert_eq!(client.request_counts(&host), asked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_answers_are_errors_for_that_registry_only() {
    let Some(bed) = bed() else { return };
    let garbage = Front::start(&bed.registry, |s| s.garbage_tags = true).await;
    let huge = Front::start(&bed.registry, |s| s.huge_manifests = true).await;
    let client = plain_client(&[&garbage.host(), &huge.host(), &bed.registry]);
    let check = client.check();

    let err = check
        .tags(&image(&format!("{}/magos/semver:1.0.0", garbage.host())))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Malformed { .. }), "{err}");
    let err = check
        .manifest(&image(&format!("{}/magos/semver:1.0.0", huge.host())))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::TooLarge { .. }), "{err}");
    let err = check
        .manifest(&image(&format!(
            "{}/magos/semver:no-such-tag",
            bed.registry
        )))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");

    let semver = image(&format!("{}:1.0.0", bed.var("MAGOS_TEST_IMAGE_SEMVER")));
    assert!(!check.tags(&semver).await.unwrap().is_empty());
    check.manifest(&semver).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_registry_times_out() {
    let Some(_bed) = bed() else { return };
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut settings = Settings {
        timeout: Duration::from_secs(1),
        ..Settings::default()
    };
    settings.insecure.add_host(&host);
    let client = RegistryClient::new(settings);
    let err = client
        .tags(&image(&format!("{host}/a/b:1")))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Timeout { .. }), "{err}");
    task.abort();
}

// ---------------------------------------------------------------------------
// The check command's registry side.

/// Decisions read from a table: the test's stand-in for the policy core, which
/// is tested on its own. It records the tags it was offered.
struct Scripted {
    choices: Vec<Choice>,
    offered: Mutex<BTreeMap<usize, usize>>,
}

impl Policies for Scripted {
    fn watched(&self, _dir: &Path) -> anyhow::Result<Vec<Watched>> {
        unreachable!("the test passes the services itself")
    }

    fn decide(&self, service: &Watched, tags: &[String], _now: SystemTime) -> Choice {
        self.offered.lock().unwrap().insert(service.id, tags.len());
        self.choices[service.id].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_lists_each_repository_once_and_heads_only_elected_tags() {
    let Some(bed) = bed() else { return };
    let front = Front::start(&bed.registry, |_| {}).await;
    let h = front.host();
    let closed = format!("127.0.0.1:{}", free_port());
    let client = plain_client(&[&h, &closed]);
    let direct = bed_client(bed);
    let semver_123 = direct
        .digest(&image(&format!(
            "{}:1.2.3",
            bed.var("MAGOS_TEST_IMAGE_SEMVER")
        )))
        .await
        .unwrap();

    let tag = |t: &str| Choice::Tag {
        tag: t.to_owned(),
        reason: format!("scripted {t}"),
    };
    // (image as written, watched repository, platform, decision)
    let table: Vec<(String, String, Option<&str>, Choice)> = vec![
        (
            format!("{h}/magos/semver:1.0.0"),
            format!("{h}/magos/semver"),
            None,
            tag("1.2.3"),
        ),
        (
            format!("{h}/magos/semver:1.2.3@{semver_123}"),
            format!("{h}/magos/semver"),
            None,
            tag("1.2.3"),
        ),
        (
            format!("{h}/magos/semver:1.2.0"),
            format!("{h}/magos/semver"),
            None,
            tag("v2.3.1"),
        ),
        (
            format!("{h}/magos/semver:2.0.0"),
            format!("{h}/magos/semver"),
            None,
            Choice::Nothing {
                reason: "none".into(),
            },
        ),
        (
            format!("{h}/magos/moving:latest"),
            format!("{h}/magos/moving"),
            None,
            tag("latest"),
        ),
        (
            format!("{h}/magos/moving:latest"),
            format!("{h}/magos/moving"),
            None,
            tag("latest"),
        ),
        (
            format!("{h}/magos/multiarch:1.0"),
            format!("{h}/magos/multiarch"),
            None,
            tag("1.0"),
        ),
        (
            format!("{h}/magos/multiarch:1.0"),
            format!("{h}/magos/multiarch"),
            Some("linux/arm64"),
            tag("1.0"),
        ),
        (
            format!("{h}/magos/httpd:1"),
            format!("{h}/magos/httpd"),
            None,
            Choice::Keep {
                reason: "digest policy".into(),
            },
        ),
        (
            format!("{closed}/gone/app:1"),
            format!("{closed}/gone/app"),
            None,
            tag("2"),
        ),
        (
            format!("{closed}/gone/other:1"),
            format!("{closed}/gone/other"),
            None,
            tag("2"),
        ),
    ];
    let services: Vec<Watched> = table
        .iter()
        .enumerate()
        .map(|(id, (image, watch, platform, _))| Watched {
            id,
            stack: "s".into(),
            service: format!("svc{id}"),
            location: format!("s/compose.yaml:{}", id + 1),
            image: image.clone(),
            watch: watch.clone(),
            platform: platform.map(str::to_owned),
        })
        .collect();
    let policies = Scripted {
        choices: table.iter().map(|t| t.3.clone()).collect(),
        offered: Mutex::new(BTreeMap::new()),
    };
    let rows = check_services(&client, &policies, &services, SystemTime::now()).await;

    // One tag listing per repository, a HEAD per elected tag, a manifest body
    // only where a platform is named; nothing else.
    let log = front.log();
    for repo in ["semver", "moving", "multiarch", "httpd"] {
        assert_eq!(
            front.count("GET", &format!("/v2/magos/{repo}/tags/list")),
            1,
            "{repo}: {log:?}"
        );
    }
    assert_eq!(front.count("HEAD", "/manifests/"), 4, "{log:?}");
    for elected in [
        "semver/manifests/1.2.3",
        "semver/manifests/v2.3.1",
        "moving/manifests/latest",
        "multiarch/manifests/1.0",
    ] {
        assert_eq!(front.count("HEAD", elected), 1, "{elected}: {log:?}");
    }
    assert_eq!(front.count("GET", "/manifests/"), 1, "{log:?}");
    assert_eq!(front.count("GET", "/v2/magos/multiarch/manifests/1.0"), 1);
    assert_eq!(log.len(), 4 + 4 + 1, "{log:?}");
    assert!(
        policies
            .offered
            .lock()
            .unwrap()
            .get(&0)
            .is_some_and(|n| *n > 100)
    );

    let by = |i: usize| &rows[i];
    assert_eq!(by(0).update, Some(true));
    assert_eq!(
        by(0).chosen.as_deref(),
        Some(format!("{h}/magos/semver:1.2.3@{semver_123}").as_str())
    );
    assert_eq!(by(1).update, Some(false), "already pinned: {:?}", by(1));
    assert_eq!(by(2).update, Some(true));
    assert_eq!((by(3).update, by(3).chosen.as_deref()), (None, None));
    assert_eq!(
        by(4).update,
        Some(true),
        "an unpinned moving tag gets a pin"
    );
    let index = by(6).chosen.clone().unwrap();
    let arm = by(7).chosen.clone().unwrap();
    assert_ne!(index, arm, "the platform pin is the platform manifest");
    assert_eq!(by(8).update, Some(false));
    for i in [9, 10] {
        assert!(
            by(i)
                .error
                .as_ref()
                .is_some_and(|e| e.to_string().contains(&closed)),
            "{:?}",
            by(i)
        );
    }
    for i in 0..9 {
        assert_eq!(by(i).error, None, "{:?}", by(i));
    }
    assert_eq!(
        magos::cli::check::exit_for(&rows, &[]),
        magos::cli::Exit::Error
    );
    assert_eq!(
        magos::cli::check::exit_for(&rows[..9], &[]),
        magos::cli::Exit::Success
    );
    let table = magos::cli::check::render(&rows, Output::Table).unwrap();
    assert_eq!(table.lines().count(), 12, "{table}");
}
