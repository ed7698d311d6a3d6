//! The client: one method per libpod endpoint Magos uses.
//!
//! Every request runs under a time limit (the event stream excepted) and through
//! the retry rule of [`super::retry`]. Connections are not pooled: each request
//! opens its own, so a service that exited between two requests costs a
//! refused connect (retried) rather than a write onto a dead pooled connection
//! (ambiguous for a POST).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::debug;

use super::error::PodmanError;
use super::retry::{self, Failure, RetryPolicy};
use super::stream::LineBuffer;
use super::uri::{self, Query};
use super::wire::{
    BuildReport, ContainerCreateResponse, ContainerInspect, ErrorModel, Event, ExecCreate,
    ExecInspect, HealthCheckResults, IdResponse, ImageInspect, ImagePullReport, ImageSummary, Info,
    ListContainer, Network, NetworkCreate, NetworkRmReport, SpecGenerator, Version, Volume,
    VolumeCreate,
};
use super::{MIN_PODMAN_MAJOR, socket};
use crate::config::Env;

/// The largest non-streamed answer read (a list of many containers is a few MB).
const MAX_BODY: usize = 64 << 20;

/// Time limits and retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// The limit of one request and its answer. Stopping a container adds its
    /// stop timeout to this.
    pub timeout: Duration,
    /// The limit of a whole image pull, progress included.
    pub pull_timeout: Duration,
    /// Connection-level retries.
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            pull_timeout: Duration::from_secs(30 * 60),
            retry: RetryPolicy::default(),
        }
    }
}

/// Which containers to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFilters {
    /// Include containers that are not running.
    pub all: bool,
    /// `key` or `key=value` labels that must all match.
    pub labels: Vec<String>,
    /// Names (regular expressions, as Podman reads them).
    pub names: Vec<String>,
}

impl ContainerFilters {
    /// All containers (running or not) carrying every one of `labels`.
    pub fn labelled<I, S>(labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            all: true,
            labels: labels.into_iter().map(Into::into).collect(),
            names: Vec::new(),
        }
    }

    fn to_map(&self) -> BTreeMap<String, Vec<String>> {
        let mut m = BTreeMap::new();
        if !self.labels.is_empty() {
            m.insert("label".to_owned(), self.labels.clone());
        }
        if !self.names.is_empty() {
            m.insert("name".to_owned(), self.names.clone());
        }
        m
    }
}

/// Which events to receive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilters {
    /// Object types (`container`, `image`, …); empty for all.
    pub types: Vec<String>,
    /// Actions (`start`, `died`, `health_status`, …); empty for all.
    pub actions: Vec<String>,
    /// Container names or IDs.
    pub containers: Vec<String>,
    /// `key` or `key=value` labels.
    pub labels: Vec<String>,
    /// Replay events from this time on (Unix seconds, RFC 3339 or a Go duration
    /// such as `5m`), then keep streaming. Without it, only new events arrive.
    pub since: Option<String>,
}

impl EventFilters {
    /// Container events only.
    pub fn containers() -> Self {
        Self {
            types: vec!["container".to_owned()],
            ..Self::default()
        }
    }

    fn to_map(&self) -> BTreeMap<String, Vec<String>> {
        let mut m = BTreeMap::new();
        for (key, values) in [
            ("type", &self.types),
            ("event", &self.actions),
            ("container", &self.containers),
            ("label", &self.labels),
        ] {
            if !values.is_empty() {
                m.insert(key.to_owned(), values.clone());
            }
        }
        m
    }
}

/// When Podman fetches an image (its `policy` parameter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Always ask the registry.
    Always,
    /// Only when the image is not present.
    #[default]
    Missing,
    /// When the registry has a newer image.
    Newer,
}

impl PullPolicy {
    fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::Missing => "missing",
            PullPolicy::Newer => "newer",
        }
    }
}

/// How to pull.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullOptions {
    /// When to fetch.
    pub policy: PullPolicy,
    /// `Some(false)` for a plain-HTTP or self-signed registry; `None` follows
    /// Podman's `registries.conf`.
    pub tls_verify: Option<bool>,
}

/// What a pull produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PulledImage {
    /// The ID of the image (the last one, for a pull of several).
    pub id: String,
    /// Every pulled image's ID.
    pub images: Vec<String>,
}

/// What to build and how ([`Client::build_image`]).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The Dockerfile, as a path inside the context.
    pub dockerfile: String,
    /// The names to tag the image with (the first is the one reported).
    pub tags: Vec<String>,
    /// Build arguments.
    pub args: BTreeMap<String, String>,
    /// Labels of the image.
    pub labels: BTreeMap<String, String>,
    /// The stage to build.
    pub target: Option<String>,
    /// The network mode of `RUN` steps.
    pub network: Option<String>,
    /// `host:ip` lines for `RUN` steps.
    pub extra_hosts: Vec<String>,
    /// Pull base images even when present.
    pub pull: bool,
    /// Do not use the layer cache.
    pub no_cache: bool,
}

/// JSON text of a query value (maps and lists of strings always serialize).
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Receives a pull's progress lines (`Copying blob …`, `Writing manifest …`).
pub trait PullProgress {
    /// One line of progress, without its line end.
    fn line(&mut self, text: &str);
}

impl<F: FnMut(&str)> PullProgress for F {
    fn line(&mut self, text: &str) {
        self(text)
    }
}

/// What a command run in a container printed, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code.
    pub exit_code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A stream of events.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, PodmanError>> + Send>>;

/// One request as the retry loop sees it.
struct Call {
    method: Method,
    path: String,
    object: String,
    body: Option<Bytes>,
    idempotent: bool,
    timeout: Duration,
    /// The body's media type when it is not JSON (a build context's tar).
    content_type: Option<&'static str>,
}

impl Call {
    fn new(method: Method, path: String, object: impl Into<String>) -> Self {
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::DELETE);
        Self {
            method,
            path,
            object: object.into(),
            body: None,
            idempotent,
            timeout: Duration::ZERO,
            content_type: None,
        }
    }

    /// `METHOD /path` without the query, for messages.
    fn endpoint(&self) -> String {
        let path = self.path.split('?').next().unwrap_or(&self.path);
        format!("{} {path}", self.method)
    }

    fn json<T: Serialize>(mut self, body: &T) -> Result<Self, PodmanError> {
        let bytes = serde_json::to_vec(body).map_err(|source| PodmanError::Encode {
            endpoint: self.endpoint(),
            source,
        })?;
        self.body = Some(Bytes::from(bytes));
        Ok(self)
    }

    /// Marks a POST whose repetition is harmless (start, stop, restart, pull).
    fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
}

/// A libpod API client bound to one socket. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    socket: PathBuf,
    http: HttpClient<UnixConnector, Full<Bytes>>,
    options: ClientOptions,
    retries: Arc<AtomicU64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.socket)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the socket at `socket`. Nothing is connected yet.
    pub fn new(socket: impl Into<PathBuf>, options: ClientOptions) -> Self {
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(UnixConnector);
        Self {
            socket: socket.into(),
            http,
            options,
            retries: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A client of the socket found by [`socket::locate_socket`].
    pub fn locate(
        configured: Option<&Path>,
        env: &Env,
        options: ClientOptions,
    ) -> Result<Self, PodmanError> {
        Ok(Self::new(socket::locate_socket(configured, env)?, options))
    }

    /// Locates the socket and checks that Podman 5 or newer answers on it: the
    /// first step of every command that talks to Podman.
    pub async fn connect(
        configured: Option<&Path>,
        env: &Env,
        options: ClientOptions,
    ) -> Result<(Self, Version), PodmanError> {
        let client = Self::locate(configured, env, options)?;
        let version = client.check_version().await?;
        Ok((client, version))
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// How many times a request was tried again after a connection failure, over
    /// the life of this client and its clones.
    pub fn retried(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    // -- transport -------------------------------------------------------------

    fn request(&self, call: &Call) -> Result<Request<Full<Bytes>>, PodmanError> {
        let uri = uri::unix_uri(&self.socket, &call.path).map_err(|e| PodmanError::Transport {
            endpoint: call.endpoint(),
            source: Box::new(e),
        })?;
        let mut builder = Request::builder().method(call.method.clone()).uri(uri);
        if call.body.is_some() {
            let media = call.content_type.unwrap_or("application/json");
            builder = builder.header(hyper::header::CONTENT_TYPE, media);
        }
        builder
            .body(Full::new(call.body.clone().unwrap_or_default()))
            .map_err(|e| PodmanError::Transport {
                endpoint: call.endpoint(),
                source: Box::new(e),
            })
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry budget is
    /// spent. `attempt` returns the failure class with its error.
    async fn with_retries<T, F, Fut>(&self, call: &Call, mut attempt: F) -> Result<T, PodmanError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let policy = self.options.retry;
        let mut waited = Duration::ZERO;
        let mut retry = 0u32;
        loop {
            let failure = match tokio::time::timeout(call.timeout, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(AttemptError::Final(e))) => return Err(e),
                Ok(Err(AttemptError::Connection(failure, source))) => (failure, source),
                Err(_) => {
                    return Err(PodmanError::Timeout {
                        endpoint: call.endpoint(),
                        after: call.timeout,
                    });
                }
            };
            let (kind, source) = failure;
            let delay = retry::should_retry(kind, call.idempotent)
                .then(|| policy.delay(retry, waited))
                .flatten();
            let Some(delay) = delay else {
                return Err(
                    if matches!(kind, Failure::Connect | Failure::ConnectDenied) {
                        PodmanError::Unreachable {
                            socket: self.socket.clone(),
                            endpoint: call.endpoint(),
                            attempts: retry + 1,
                            source,
                        }
                    } else {
                        PodmanError::Transport {
                            endpoint: call.endpoint(),
                            source,
                        }
                    },
                );
            };
            debug!(
                endpoint = %call.endpoint(),
                error = %source,
                delay_ms = delay.as_millis() as u64,
                "podman API connection failed; retrying"
            );
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            waited += delay;
            retry += 1;
        }
    }

    /// Sends the request and waits for the answer's head.
    async fn send_once(&self, call: &Call) -> Result<Response<Incoming>, AttemptError> {
        let request = self.request(call).map_err(AttemptError::Final)?;
        self.http.request(request).await.map_err(|e| {
            let failure = retry::classify(&e);
            AttemptError::Connection(failure, Box::new(e))
        })
    }

    /// A whole exchange: status and body.
    async fn exchange(&self, call: &Call) -> Result<(StatusCode, Bytes), PodmanError> {
        self.with_retries(call, || async {
            let response = self.send_once(call).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    let failure = match e.downcast_ref::<hyper::Error>() {
                        Some(h) if h.is_incomplete_message() || h.is_closed() => Failure::Broken,
                        _ => Failure::Other,
                    };
                    AttemptError::Connection(failure, e)
                })?
                .to_bytes();
            Ok((status, body))
        })
        .await
    }

    /// An exchange whose answer must have one of `ok` statuses.
    async fn expect(&self, call: Call, ok: &[u16]) -> Result<(StatusCode, Bytes), PodmanError> {
        let (status, body) = self.exchange(&call).await?;
        if ok.contains(&status.as_u16()) {
            Ok((status, body))
        } else {
            Err(api_error(&call, status, &body))
        }
    }

    /// An exchange with a JSON answer.
    async fn json<T: DeserializeOwned>(&self, call: Call, ok: &[u16]) -> Result<T, PodmanError> {
        let endpoint = call.endpoint();
        let (_, body) = self.expect(call, ok).await?;
        decode(&endpoint, &body)
    }

    /// Sends a request whose answer is a stream; returns once the head arrived.
    async fn open_stream(&self, call: &Call) -> Result<Response<Incoming>, PodmanError> {
        let response = self.with_retries(call, || self.send_once(call)).await?;
        if response.status() == StatusCode::OK {
            return Ok(response);
        }
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Err(api_error(call, status, &body))
    }

    fn call(&self, method: Method, path: String, object: impl Into<String>) -> Call {
        let mut call = Call::new(method, path, object);
        call.timeout = self.options.timeout;
        call
    }

    // -- system ----------------------------------------------------------------

    /// `GET /libpod/_ping`: `OK` when the service answers.
    pub async fn ping(&self) -> Result<String, PodmanError> {
        let call = self.call(Method::GET, uri::libpod("_ping"), "service");
        let (_, body) = self.expect(call, &[200]).await?;
        Ok(String::from_utf8_lossy(&body).trim().to_owned())
    }

    /// `GET /libpod/version`.
    pub async fn version(&self) -> Result<Version, PodmanError> {
        self.json(
            self.call(Method::GET, uri::libpod("version"), "service"),
            &[200],
        )
        .await
    }

    /// The server's version, refused when it is older than Podman 5.
    pub async fn check_version(&self) -> Result<Version, PodmanError> {
        let version = self.version().await?;
        self.supported(&version.version)?;
        Ok(version)
    }

    /// Refuses a server `version` (as `/version` or `/info` reports it) older
    /// than Podman 5.
    pub fn supported(&self, version: &str) -> Result<(), PodmanError> {
        match major_version(version) {
            Some(major) if major >= MIN_PODMAN_MAJOR => Ok(()),
            _ => Err(PodmanError::UnsupportedVersion {
                version: version.to_owned(),
                socket: self.socket.clone(),
            }),
        }
    }

    /// `GET /libpod/info`.
    pub async fn info(&self) -> Result<Info, PodmanError> {
        self.json(
            self.call(Method::GET, uri::libpod("info"), "service"),
            &[200],
        )
        .await
    }

    // -- containers ------------------------------------------------------------

    /// `GET /libpod/containers/json`.
    pub async fn list_containers(
        &self,
        filters: &ContainerFilters,
    ) -> Result<Vec<ListContainer>, PodmanError> {
        let path = Query::new()
            .push("all", if filters.all { "true" } else { "false" })
            .filters(&filters.to_map())
            .apply(&uri::libpod("containers/json"));
        self.json(self.call(Method::GET, path, "containers"), &[200])
            .await
    }

    /// `GET /libpod/containers/{name}/json`.
    pub async fn inspect_container(&self, name: &str) -> Result<ContainerInspect, PodmanError> {
        let path = uri::libpod(&format!("containers/{}/json", uri::segment(name)));
        self.json(
            self.call(Method::GET, path, format!("container {name}")),
            &[200],
        )
        .await
    }

    /// `GET /libpod/containers/{name}/exists`.
    pub async fn container_exists(&self, name: &str) -> Result<bool, PodmanError> {
        let path = uri::libpod(&format!("containers/{}/exists", uri::segment(name)));
        let call = self.call(Method::GET, path, format!("container {name}"));
        let (status, _) = self.expect(call, &[204, 404]).await?;
        Ok(status == StatusCode::NO_CONTENT)
    }

    /// `POST /libpod/containers/create`. Not retried once the request may have
    /// reached Podman: a second create would clash with the first.
    pub async fn create_container(
        &self,
        spec: &SpecGenerator,
    ) -> Result<ContainerCreateResponse, PodmanError> {
        let object = match &spec.name {
            Some(name) => format!("container {name}"),
            None => format!("container from {}", spec.image),
        };
        let call = self
            .call(Method::POST, uri::libpod("containers/create"), object)
            .json(spec)?;
        self.json(call, &[201]).await
    }

    /// `POST /libpod/containers/{name}/start`: `true` when it started, `false`
    /// when it was already running.
    pub async fn start_container(&self, name: &str) -> Result<bool, PodmanError> {
        let path = uri::libpod(&format!("containers/{}/start", uri::segment(name)));
        let call = self
            .call(Method::POST, path, format!("container {name}"))
            .idempotent();
        let (status, _) = self.expect(call, &[204, 304]).await?;
        Ok(status == StatusCode::NO_CONTENT)
    }

    /// `POST /libpod/containers/{name}/rename`. Not retried once sent: a rename
    /// that may have happened is checked by the caller, by name.
    pub async fn rename_container(&self, name: &str, new_name: &str) -> Result<(), PodmanError> {
        let path = Query::new()
            .push("name", new_name)
            .apply(&uri::libpod(&format!(
                "containers/{}/rename",
                uri::segment(name)
            )));
        let call = self.call(Method::POST, path, format!("container {name}"));
        self.expect(call, &[200, 204]).await?;
        Ok(())
    }

    /// `POST /libpod/containers/{name}/stop`: `true` when it stopped, `false` when
    /// it was not running. `timeout` (seconds) overrides the container's own.
    pub async fn stop_container(
        &self,
        name: &str,
        timeout: Option<u64>,
    ) -> Result<bool, PodmanError> {
        let path = Query::new()
            .push_opt("timeout", timeout.map(|t| t.to_string()))
            .apply(&uri::libpod(&format!(
                "containers/{}/stop",
                uri::segment(name)
            )));
        let mut call = self
            .call(Method::POST, path, format!("container {name}"))
            .idempotent();
        call.timeout += Duration::from_secs(timeout.unwrap_or(DEFAULT_STOP_WAIT));
        let (status, _) = self.expect(call, &[204, 304]).await?;
        Ok(status == StatusCode::NO_CONTENT)
    }

    /// `POST /libpod/containers/{name}/restart`, waiting `timeout` seconds after
    /// the stop signal (Podman's default for this endpoint is zero).
    pub async fn restart_container(&self, name: &str, timeout: u64) -> Result<(), PodmanError> {
        let path = Query::new()
            .push("timeout", timeout.to_string())
            .apply(&uri::libpod(&format!(
                "containers/{}/restart",
                uri::segment(name)
            )));
        let mut call = self
            .call(Method::POST, path, format!("container {name}"))
            .idempotent();
        call.timeout += Duration::from_secs(timeout);
        self.expect(call, &[204]).await.map(drop)
    }

    /// `DELETE /libpod/containers/{name}`. `force` stops it first (waiting
    /// `timeout` seconds, else its own stop timeout); `volumes` also removes its
    /// anonymous volumes.
    pub async fn remove_container(
        &self,
        name: &str,
        force: bool,
        volumes: bool,
        timeout: Option<u64>,
    ) -> Result<(), PodmanError> {
        let path = Query::new()
            .push("force", bool_str(force))
            .push("volumes", bool_str(volumes))
            .push_opt("timeout", timeout.map(|t| t.to_string()))
            .apply(&uri::libpod(&format!("containers/{}", uri::segment(name))));
        let mut call = self.call(Method::DELETE, path, format!("container {name}"));
        if force {
            call.timeout += Duration::from_secs(timeout.unwrap_or(DEFAULT_STOP_WAIT));
        }
        self.expect(call, &[200, 204]).await.map(drop)
    }

    /// `GET /libpod/containers/{name}/healthcheck`: runs the check now. A
    /// container without a check, or not running, is an error with status 409.
    pub async fn run_healthcheck(&self, name: &str) -> Result<HealthCheckResults, PodmanError> {
        let path = uri::libpod(&format!("containers/{}/healthcheck", uri::segment(name)));
        self.json(
            self.call(Method::GET, path, format!("container {name}")),
            &[200],
        )
        .await
    }

    // -- images ----------------------------------------------------------------

    /// `POST /libpod/images/pull`, streaming progress lines to `progress`. A pull
    /// that fails after Podman answered 200 is an error too.
    pub async fn pull_image(
        &self,
        reference: &str,
        options: &PullOptions,
        progress: &mut (dyn PullProgress + Send),
    ) -> Result<PulledImage, PodmanError> {
        let path = Query::new()
            .push("reference", reference)
            .push("policy", options.policy.as_str())
            .push_opt("tlsVerify", options.tls_verify.map(bool_str))
            .apply(&uri::libpod("images/pull"));
        let call = self
            .call(Method::POST, path, format!("image {reference}"))
            .idempotent();
        let mut last: Option<ImagePullReport> = None;
        let pull_failed = |message: String| PodmanError::Pull {
            reference: reference.to_owned(),
            message,
        };
        self.each_report(&call, |report: ImagePullReport| {
            for text in report.stream.lines().filter(|l| !l.trim().is_empty()) {
                progress.line(text.trim_end());
            }
            if !report.error.is_empty() {
                return Err(pull_failed(report.error));
            }
            if !report.images.is_empty() || !report.id.is_empty() {
                last = Some(report);
            }
            Ok(())
        })
        .await?;
        match last {
            Some(report) => Ok(PulledImage {
                id: if report.id.is_empty() {
                    report.images.last().cloned().unwrap_or_default()
                } else {
                    report.id
                },
                images: report.images,
            }),
            None => Err(pull_failed(
                "podman ended the pull without naming an image".to_owned(),
            )),
        }
    }

    /// Reads the streamed answer of `call` (a pull or a build: one JSON report
    /// per line) to its end, within the pull time limit, handing each report
    /// to `each`; an error of `each` ends the reading.
    async fn each_report<T: DeserializeOwned>(
        &self,
        call: &Call,
        mut each: impl FnMut(T) -> Result<(), PodmanError>,
    ) -> Result<(), PodmanError> {
        let deadline = tokio::time::Instant::now() + self.options.pull_timeout;
        let response = self.open_stream(call).await?;
        let mut body = response.into_body();
        let mut lines = LineBuffer::new();
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    return Err(PodmanError::Timeout {
                        endpoint: call.endpoint(),
                        after: self.options.pull_timeout,
                    });
                }
                Ok(None) => None,
                Ok(Some(Err(e))) => {
                    return Err(PodmanError::Transport {
                        endpoint: call.endpoint(),
                        source: Box::new(e),
                    });
                }
                Ok(Some(Ok(frame))) => Some(frame),
            };
            let done = frame.is_none();
            if let Some(data) = frame.and_then(|f| f.into_data().ok()) {
                lines.extend(&data);
            }
            let mut pending: Vec<String> = std::iter::from_fn(|| lines.next_line()).collect();
            if done {
                pending.extend(lines.finish());
            }
            for line in pending {
                each(decode(&call.endpoint(), line.as_bytes())?)?;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// `POST /libpod/build`: builds an image from a context sent as a tar,
    /// streaming the build's output lines to `progress`. A build that fails
    /// after Podman answered 200 is [`PodmanError::Build`], with the last step
    /// Podman started.
    pub async fn build_image(
        &self,
        context_tar: Vec<u8>,
        options: &BuildOptions,
        progress: &mut (dyn PullProgress + Send),
    ) -> Result<String, PodmanError> {
        let mut query = Query::new()
            .push("dockerfile", &options.dockerfile)
            .push("buildargs", json(&options.args))
            .push("labels", json(&options.labels))
            .push_opt("target", options.target.as_deref())
            .push_opt("networkmode", options.network.as_deref())
            .push("pull", bool_str(options.pull))
            .push("nocache", bool_str(options.no_cache))
            .push("layers", "true")
            .push("rm", "true");
        if !options.extra_hosts.is_empty() {
            query = query.push("extrahosts", json(&options.extra_hosts));
        }
        for t in &options.tags {
            query = query.push("t", t);
        }
        let path = query.apply(&uri::libpod("build"));
        let image = options.tags.first().cloned().unwrap_or_default();
        let mut call = self
            .call(Method::POST, path, format!("image {image}"))
            .idempotent();
        call.body = Some(Bytes::from(context_tar));
        call.content_type = Some("application/x-tar");
        let mut id = None;
        let mut step: Option<String> = None;
        self.each_report(&call, |report: BuildReport| {
            for text in report.stream.lines().filter(|l| !l.trim().is_empty()) {
                if text.starts_with("STEP ") {
                    step = Some(text.trim().to_owned());
                }
                // libpod ends a build with the image's ID on a line of its own.
                let t = text.trim();
                if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                    id = Some(t.to_owned());
                }
                progress.line(text.trim_end());
            }
            if !report.error.is_empty() {
                return Err(PodmanError::Build {
                    image: image.clone(),
                    message: report.error.trim().to_owned(),
                    step: step.clone(),
                });
            }
            if let Some(aux) = report.aux.filter(|a| !a.id.is_empty()) {
                id = Some(aux.id);
            }
            Ok(())
        })
        .await?;
        id.ok_or_else(|| PodmanError::Build {
            image,
            message: "podman ended the build without naming an image".to_owned(),
            step,
        })
    }

    /// `GET /libpod/images/json`: every image in local storage.
    pub async fn list_images(&self) -> Result<Vec<ImageSummary>, PodmanError> {
        let path = uri::libpod("images/json");
        self.json(self.call(Method::GET, path, "images"), &[200])
            .await
    }

    /// `GET /libpod/images/{name}/json`.
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInspect, PodmanError> {
        let path = uri::libpod(&format!("images/{}/json", uri::image_ref(name)));
        self.json(
            self.call(Method::GET, path, format!("image {name}")),
            &[200],
        )
        .await
    }

    /// `GET /libpod/images/{name}/exists`.
    pub async fn image_exists(&self, name: &str) -> Result<bool, PodmanError> {
        let path = uri::libpod(&format!("images/{}/exists", uri::image_ref(name)));
        let call = self.call(Method::GET, path, format!("image {name}"));
        let (status, _) = self.expect(call, &[204, 404]).await?;
        Ok(status == StatusCode::NO_CONTENT)
    }

    // -- networks --------------------------------------------------------------

    /// `GET /libpod/networks/json` with `filters` (e.g. `label` → `["k=v"]`).
    pub async fn list_networks(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<Network>, PodmanError> {
        let path = Query::new()
            .filters(filters)
            .apply(&uri::libpod("networks/json"));
        self.json(self.call(Method::GET, path, "networks"), &[200])
            .await
    }

    /// `GET /libpod/networks/{name}/json`.
    pub async fn inspect_network(&self, name: &str) -> Result<Network, PodmanError> {
        let path = uri::libpod(&format!("networks/{}/json", uri::segment(name)));
        self.json(
            self.call(Method::GET, path, format!("network {name}")),
            &[200],
        )
        .await
    }

    /// `POST /libpod/networks/create`. An existing network is an error with
    /// status 409.
    pub async fn create_network(&self, network: &NetworkCreate) -> Result<Network, PodmanError> {
        let call = self
            .call(
                Method::POST,
                uri::libpod("networks/create"),
                format!("network {}", network.name),
            )
            .json(network)?;
        self.json(call, &[200, 201]).await
    }

    /// `DELETE /libpod/networks/{name}`. `force` also removes the containers
    /// using it.
    pub async fn remove_network(&self, name: &str, force: bool) -> Result<(), PodmanError> {
        let path = Query::new()
            .push("force", bool_str(force))
            .apply(&uri::libpod(&format!("networks/{}", uri::segment(name))));
        let call = self.call(Method::DELETE, path, format!("network {name}"));
        let endpoint = call.endpoint();
        let (_, body) = self.expect(call, &[200]).await?;
        let reports: Vec<NetworkRmReport> = decode(&endpoint, &body)?;
        match reports.iter().find(|r| r.err.is_some()) {
            Some(_) => Err(PodmanError::Api {
                endpoint,
                object: format!("network {name}"),
                status: 200,
                message: "podman reported that the network was not removed".to_owned(),
                cause: None,
            }),
            None => Ok(()),
        }
    }

    // -- volumes ---------------------------------------------------------------

    /// `GET /libpod/volumes/json` with `filters` (e.g. `label` → `["k=v"]`).
    pub async fn list_volumes(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<Volume>, PodmanError> {
        let path = Query::new()
            .filters(filters)
            .apply(&uri::libpod("volumes/json"));
        self.json(self.call(Method::GET, path, "volumes"), &[200])
            .await
    }

    /// `GET /libpod/volumes/{name}/json`.
    pub async fn inspect_volume(&self, name: &str) -> Result<Volume, PodmanError> {
        let path = uri::libpod(&format!("volumes/{}/json", uri::segment(name)));
        self.json(
            self.call(Method::GET, path, format!("volume {name}")),
            &[200],
        )
        .await
    }

    /// `POST /libpod/volumes/create`. An existing volume is an error.
    pub async fn create_volume(&self, volume: &VolumeCreate) -> Result<Volume, PodmanError> {
        let call = self
            .call(
                Method::POST,
                uri::libpod("volumes/create"),
                format!("volume {}", volume.name),
            )
            .json(volume)?;
        self.json(call, &[201]).await
    }

    /// `DELETE /libpod/volumes/{name}`. `force` also removes containers using it.
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<(), PodmanError> {
        let path = Query::new()
            .push("force", bool_str(force))
            .apply(&uri::libpod(&format!("volumes/{}", uri::segment(name))));
        let call = self.call(Method::DELETE, path, format!("volume {name}"));
        self.expect(call, &[204]).await.map(drop)
    }

    // -- secrets ---------------------------------------------------------------

    /// `POST /libpod/secrets/create?name=…&replace=true`: stores `value` as the
    /// Podman secret `name`, replacing the value of one that exists. The value
    /// travels only in the request body; no error holds it.
    pub async fn create_secret(
        &self,
        name: &str,
        value: Vec<u8>,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), PodmanError> {
        let labels = serde_json::to_string(labels).unwrap_or_default();
        let path = Query::new()
            .push("name", name)
            .push("replace", "true")
            .push("labels", &labels)
            .apply(&uri::libpod("secrets/create"));
        let mut call = self.call(Method::POST, path, format!("secret {name}"));
        call.body = Some(Bytes::from(value));
        self.expect(call, &[200, 201]).await.map(drop)
    }

    /// `GET /libpod/secrets/{name}/exists`.
    pub async fn secret_exists(&self, name: &str) -> Result<bool, PodmanError> {
        let path = uri::libpod(&format!("secrets/{}/exists", uri::segment(name)));
        let (status, _) = self
            .expect(
                self.call(Method::GET, path, format!("secret {name}")),
                &[204, 404],
            )
            .await?;
        Ok(status.as_u16() == 204)
    }

    /// `DELETE /libpod/secrets/{name}`.
    pub async fn remove_secret(&self, name: &str) -> Result<(), PodmanError> {
        let path = uri::libpod(&format!("secrets/{}", uri::segment(name)));
        let call = self.call(Method::DELETE, path, format!("secret {name}"));
        self.expect(call, &[204]).await.map(drop)
    }

    // -- events ----------------------------------------------------------------

    /// `GET /libpod/events?stream=true`: the events matching `filters`, one parsed
    /// object per line, until the connection ends. Opening the stream has the
    /// usual time limit; the stream itself has none. An open stream keeps a
    /// socket-activated service alive; when the service goes away anyway, the
    /// stream ends, and the caller reopens it with `since` to miss nothing.
    pub async fn events(&self, filters: &EventFilters) -> Result<EventStream, PodmanError> {
        let path = Query::new()
            .push("stream", "true")
            .push_opt("since", filters.since.as_deref())
            .filters(&filters.to_map())
            .apply(&uri::libpod("events"));
        let call = self.call(Method::GET, path, "events");
        let endpoint = call.endpoint();
        let body = self.open_stream(&call).await?.into_body();
        let state = (body, LineBuffer::new(), endpoint, false);
        let stream = futures_util::stream::unfold(
            state,
            |(mut body, mut lines, endpoint, ended)| async move {
                loop {
                    if let Some(line) = lines.next_line() {
                        let item = decode::<Event>(&endpoint, line.as_bytes());
                        return Some((item, (body, lines, endpoint, ended)));
                    }
                    if ended {
                        let line = lines.finish()?;
                        let item = decode::<Event>(&endpoint, line.as_bytes());
                        return Some((item, (body, lines, endpoint, true)));
                    }
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                lines.extend(&data);
                            }
                        }
                        Some(Err(e)) => {
                            let err = PodmanError::Transport {
                                endpoint: endpoint.clone(),
                                source: Box::new(e),
                            };
                            return Some((Err(err), (body, LineBuffer::new(), endpoint, true)));
                        }
                        None => {
                            let line = lines.finish()?;
                            let item = decode::<Event>(&endpoint, line.as_bytes());
                            return Some((item, (body, lines, endpoint, true)));
                        }
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }

    // -- exec ------------------------------------------------------------------

    /// Runs a command in a running container and collects its output:
    /// `POST /libpod/containers/{name}/exec`, `POST /libpod/exec/{id}/start`,
    /// `GET /libpod/exec/{id}/json`, then `POST /libpod/exec/{id}/remove` (the
    /// session is removed whatever happened; Podman 4.8 or newer).
    pub async fn exec(
        &self,
        container: &str,
        exec: &ExecCreate,
    ) -> Result<ExecOutput, PodmanError> {
        let object = format!("container {container}");
        let create = self
            .call(
                Method::POST,
                uri::libpod(&format!("containers/{}/exec", uri::segment(container))),
                object.clone(),
            )
            .json(exec)?;
        let session: IdResponse = self.json(create, &[201]).await?;
        let result = self.run_exec(&session.id, &object).await;
        // Podman keeps a finished session (and its conmon) until
        // `exit_command_delay` passes unless it is removed; a failed removal
        // only leaves that delay to clean up.
        let remove = self
            .call(
                Method::POST,
                uri::libpod(&format!("exec/{}/remove", uri::segment(&session.id))),
                object,
            )
            .json(&serde_json::json!({ "Force": true }));
        if let Ok(remove) = remove
            && let Err(err) = self.expect(remove, &[200, 204]).await
        {
            tracing::debug!(session = %session.id, error = %err, "exec session not removed");
        }
        result
    }

    /// Starts the exec session `id` attached and reads its output and exit code.
    async fn run_exec(&self, id: &str, object: &str) -> Result<ExecOutput, PodmanError> {
        let object = object.to_owned();
        let session = IdResponse { id: id.to_owned() };
        let start = self
            .call(
                Method::POST,
                uri::libpod(&format!("exec/{}/start", uri::segment(&session.id))),
                object.clone(),
            )
            .json(&serde_json::json!({ "Detach": false, "Tty": false }))?;
        let (_, raw) = self.expect(start, &[200]).await?;
        let (stdout, stderr) = demux(&raw);
        let inspect: ExecInspect = self
            .json(
                self.call(
                    Method::GET,
                    uri::libpod(&format!("exec/{}/json", uri::segment(&session.id))),
                    object,
                ),
                &[200],
            )
            .await?;
        Ok(ExecOutput {
            exit_code: inspect.exit_code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

/// The wait added to a stop's time limit when the container's own stop timeout
/// applies (Podman's default is 10 s).
const DEFAULT_STOP_WAIT: u64 = 10;

/// A failed attempt: final, or a connection failure that may be retried.
enum AttemptError {
    Final(PodmanError),
    Connection(Failure, Box<dyn std::error::Error + Send + Sync>),
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Parses a JSON answer.
fn decode<T: DeserializeOwned>(endpoint: &str, body: &[u8]) -> Result<T, PodmanError> {
    serde_json::from_slice(body).map_err(|source| PodmanError::Decode {
        endpoint: endpoint.to_owned(),
        source,
    })
}

/// The error for an answer with an unexpected status: Podman's own message when
/// the body is its error JSON, else the body's text.
fn api_error(call: &Call, status: StatusCode, body: &[u8]) -> PodmanError {
    let (message, cause) = match serde_json::from_slice::<ErrorModel>(body) {
        Ok(model) if !model.message.is_empty() => {
            (model.message, Some(model.cause).filter(|c| !c.is_empty()))
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(500).collect();
            let text = if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("no message")
                    .to_lowercase()
            } else {
                text
            };
            (text, None)
        }
    };
    PodmanError::Api {
        endpoint: call.endpoint(),
        object: call.object.clone(),
        status: status.as_u16(),
        message,
        cause,
    }
}

/// The major number of a version such as `5.4.2` or `v5.0.0-dev`.
fn major_version(version: &str) -> Option<u64> {
    version
        .trim()
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .next()?
        .parse()
        .ok()
}

/// Splits Docker's multiplexed stream (8-byte headers: stream, 3 zero bytes,
/// big-endian length) into standard output and standard error. A body that is not
/// multiplexed is taken as standard output.
fn demux(raw: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut rest = raw;
    while rest.len() >= 8 {
        let kind = rest[0];
        if kind > 2 || rest[1..4] != [0, 0, 0] {
            return (raw.to_vec(), Vec::new());
        }
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let Some(payload) = rest.get(8..8 + len) else {
            return (raw.to_vec(), Vec::new());
        };
        match kind {
            2 => err.extend_from_slice(payload),
            _ => out.extend_from_slice(payload),
        }
        rest = &rest[8 + len..];
    }
    if !rest.is_empty() {
        return (raw.to_vec(), Vec::new());
    }
    (out, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: Method, path: &str, object: &str) -> Call {
        Call::new(method, path.to_owned(), object)
    }

    #[test]
    fn libpod_error_bodies_become_api_errors_naming_endpoint_and_object() {
        let body = br#"{"cause":"no such container","message":"no container with name or ID \"web\" found: no such container","response":404}"#;
        let c = call(
            Method::POST,
            "/v5.0.0/libpod/containers/web/start?x=1",
            "container web",
        );
        let err = api_error(&c, StatusCode::NOT_FOUND, body);
        assert!(err.is_not_found());
        assert_eq!(
            err.to_string(),
            "podman API POST /v5.0.0/libpod/containers/web/start (container web): no container with name or ID \"web\" found: no such container (HTTP 404)"
        );
        match err {
            PodmanError::Api { cause, .. } => {
                assert_eq!(cause.as_deref(), Some("no such container"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_json_error_bodies_keep_their_text() {
        let c = call(Method::GET, "/v5.0.0/libpod/x", "service");
        let err = api_error(&c, StatusCode::BAD_GATEWAY, b"  upstream broke \n");
        assert!(err.to_string().contains(": upstream broke (HTTP 502)"));
        let err = api_error(&c, StatusCode::CONFLICT, b"");
        assert!(err.is_conflict());
        assert!(err.to_string().contains(": conflict (HTTP 409)"), "{err}");
    }

    #[test]
    fn idempotence_by_method_and_marking() {
        assert!(call(Method::GET, "/", "").idempotent);
        assert!(call(Method::DELETE, "/", "").idempotent);
        assert!(!call(Method::POST, "/", "").idempotent);
        assert!(call(Method::POST, "/", "").idempotent().idempotent);
    }

    #[test]
    fn major_versions() {
        assert_eq!(major_version("5.4.2"), Some(5));
        assert_eq!(major_version("v5.0.0-dev"), Some(5));
        assert_eq!(major_version("4.3.1"), Some(4));
        assert_eq!(major_version(""), None);
        assert_eq!(major_version("x.y"), None);
    }

    #[test]
    fn multiplexed_exec_output_is_split() {
        let mut raw = vec![1, 0, 0, 0, 0, 0, 0, 3];
        raw.extend_from_slice(b"out");
        raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        raw.extend_from_slice(b"err!");
        raw.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 1]);
        raw.extend_from_slice(b"\n");
        assert_eq!(demux(&raw), (b"out\n".to_vec(), b"err!".to_vec()));
        assert_eq!(demux(b"plain text"), (b"plain text".to_vec(), Vec::new()));
        assert_eq!(demux(&[1, 0, 0, 0, 0, 0, 0, 9, b'x']).0.len(), 9);
    }

    #[test]
    fn filters_become_libpod_maps() {
        let f = ContainerFilters::labelled(["a=b", "c"]);
        assert!(f.all);
        assert_eq!(f.to_map()["label"], vec!["a=b", "c"]);
        let mut e = EventFilters::containers();
        e.actions = vec!["start".into(), "died".into()];
        let m = e.to_map();
        assert_eq!(m["type"], vec!["container"]);
        assert_eq!(m["event"], vec!["start", "died"]);
        assert!(!m.contains_key("label"));
    }

    #[tokio::test]
    async fn a_missing_socket_is_unreachable_after_bounded_retries() {
        let dir = tempfile::tempdir().unwrap();
        let options = ClientOptions {
            retry: RetryPolicy {
                initial: Duration::from_millis(1),
                max_delay: Duration::from_millis(4),
                budget: Duration::from_millis(20),
            },
            ..ClientOptions::default()
        };
        let client = Client::new(dir.path().join("none.sock"), options);
        let err = client.ping().await.unwrap_err();
        assert!(matches!(err, PodmanError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("none.sock"), "{err}");
        assert!(client.retried() >= 3);
    }

    #[tokio::test]
    async fn a_refused_non_idempotent_post_is_retried_until_a_server_appears() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let client = Client::new(&sock, ClientOptions::default());
        let task = {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .create_volume(&VolumeCreate {
                        name: "v".into(),
                        ..VolumeCreate::default()
                    })
                    .await
            })
        };
        // Wait until the client has been refused at least once, then listen.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while client.retried() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no retry seen");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("\"Name\":\"v\"") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "request ended early");
            got.extend_from_slice(&buf[..n]);
        }
        let request = String::from_utf8_lossy(&got);
        assert!(
            request.starts_with("POST /v5.0.0/libpod/volumes/create HTTP/1.1"),
            "{request}"
        );
        let body = r#"{"Name":"v","Driver":"local","Labels":null,"Options":null,"MountCount":0}"#;
        let answer = format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(answer.as_bytes()).await.unwrap();
        let volume = task.await.unwrap().unwrap();
        assert_eq!(volume.name, "v");
        assert!(volume.labels.is_empty());
    }

    #[tokio::test]
    async fn a_non_idempotent_post_cut_after_sending_is_not_retried() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let client = Client::new(&sock, ClientOptions::default());
        let server = tokio::spawn(async move {
            let mut accepted = 0;
            // Read the request, then hang up without answering; count connections.
            while let Ok(Ok((mut conn, _))) =
                tokio::time::timeout(Duration::from_millis(500), listener.accept()).await
            {
                accepted += 1;
                let mut buf = vec![0u8; 4096];
                let _ = conn.read(&mut buf).await;
                drop(conn);
            }
            accepted
        });
        let err = client
            .create_network(&NetworkCreate::bridge("n"))
            .await
            .unwrap_err();
        assert!(matches!(err, PodmanError::Transport { .. }), "{err:?}");
        assert_eq!(server.await.unwrap(), 1);
        assert_eq!(client.retried(), 0);
    }

    #[tokio::test]
    async fn an_idempotent_get_cut_after_sending_is_retried() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let client = Client::new(&sock, ClientOptions::default());
        tokio::spawn(async move {
            // First connection: hang up after the request. Second: answer.
            let (mut first, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = first.read(&mut buf).await;
            drop(first);
            let (mut second, _) = listener.accept().await.unwrap();
            let _ = second.read(&mut buf).await;
            let _ = second
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                .await;
        });
        assert_eq!(client.ping().await.unwrap(), "OK");
        assert_eq!(client.retried(), 1);
    }

    /// A Podman 4 server cannot run beside the test bed's Podman 5, so a scripted
    /// one answers the version request as Podman 4.3.1 does.
    #[tokio::test]
    async fn podman_4_is_refused_with_a_clear_message() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let body = r#"{"Platform":{"Name":"linux/amd64/debian-12"},"Components":[{"Name":"Podman Engine","Version":"4.3.1","Details":{"APIVersion":"4.3.1"}}],"Version":"4.3.1","ApiVersion":"1.41","Os":"linux","Arch":"amd64"}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(answer.as_bytes()).await;
        });
        let client = Client::new(&sock, ClientOptions::default());
        let err = client.check_version().await.unwrap_err();
        assert!(
            matches!(err, PodmanError::UnsupportedVersion { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("podman 4.3.1"), "{msg}");
        assert!(msg.contains("needs podman 5 or newer"), "{msg}");
    }

    #[tokio::test]
    async fn a_silent_server_hits_the_time_limit() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let options = ClientOptions {
            timeout: Duration::from_millis(200),
            ..ClientOptions::default()
        };
        let client = Client::new(&sock, options);
        let _server = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(conn);
        });
        let err = client.info().await.unwrap_err();
        assert!(matches!(err, PodmanError::Timeout { .. }), "{err:?}");
        assert!(err.to_string().contains("GET /v5.0.0/libpod/info"), "{err}");
    }
}
