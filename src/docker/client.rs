//! The client: one method per Docker Engine endpoint Magos uses.
//!
//! Every request runs under a time limit (a pull under its own, longer one).
//! Connections are not pooled: each request opens its own, so an engine that
//! restarted between two requests costs a refused connect, not a write onto a
//! dead pooled connection.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::DockerError;
use super::wire::{
    ContainerCreate, ContainerInspect, ContainerSummary, CreateResponse, ErrorBody, ImageSummary,
    Info, Network, NetworkCreate, PullStatus, Version, Volume, VolumeCreate, VolumeList,
};
use super::{MAX_API, MIN_API, socket};
use crate::config::Env;

/// The largest non-streamed answer read.
const MAX_BODY: usize = 64 << 20;

/// Time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// The limit of one request and its answer; stopping a container adds its
    /// stop timeout.
    pub timeout: Duration,
    /// The limit of a whole image pull, progress included.
    pub pull_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            pull_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// A Docker Engine API client bound to one socket. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    socket: PathBuf,
    http: HttpClient<UnixConnector, Full<Bytes>>,
    options: ClientOptions,
    /// `/v1.45`: the agreed API version's prefix.
    api: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.socket)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// `1.45` → `(1, 45)`.
pub fn parse_api(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The API version to speak with an engine whose newest is `server`: the
/// lower of it and [`MAX_API`]; `None` below [`MIN_API`].
pub fn negotiate(server: &str) -> Option<(u32, u32)> {
    let server = parse_api(server)?;
    (server >= MIN_API).then(|| server.min(MAX_API))
}

/// Percent-encodes a query value or path segment.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || "-._~".contains(c) {
            out.push(c);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `path?k=v&…`, values encoded.
pub(super) fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{path}?{}", q.join("&"))
}

/// The `filters=` JSON of label filters.
fn label_filters(labels: &[String]) -> Vec<(&'static str, String)> {
    if labels.is_empty() {
        return Vec::new();
    }
    let map = BTreeMap::from([("label", labels)]);
    vec![("filters", serde_json::to_string(&map).unwrap_or_default())]
}

/// `repo[:tag]@digest` → (`repo`, `digest`); `repo:tag` → (`repo`, `tag`);
/// `repo` → (`repo`, `latest`): the `fromImage` and `tag` of a pull.
pub fn pull_parts(reference: &str) -> (String, String) {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], Some(&name[slash + i + 1..])),
        None => (name, None),
    };
    let tag = digest.or(tag).unwrap_or("latest");
    (repo.to_owned(), tag.to_owned())
}

impl Client {
    /// A client of the socket at `socket`, speaking [`MAX_API`] until
    /// [`Client::connect`] agrees on a version. Nothing is connected yet.
    pub fn new(socket: impl Into<PathBuf>, options: ClientOptions) -> Self {
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(UnixConnector);
        Self {
            socket: socket.into(),
            http,
            options,
            api: format!("/v{}.{}", MAX_API.0, MAX_API.1),
        }
    }

    /// Locates the socket ([`socket::locate_socket`]), asks the engine's
    /// version and agrees on the API version: the first step of every command
    /// that talks to Docker.
    pub async fn connect(
        env: &Env,
        options: ClientOptions,
    ) -> Result<(Self, Version), DockerError> {
        let mut client = Self::new(socket::locate_socket(env)?, options);
        let version = client.negotiate().await?;
        Ok((client, version))
    }

    /// Asks `/version` (unversioned) and speaks the agreed API from then on.
    pub async fn negotiate(&mut self) -> Result<Version, DockerError> {
        let version: Version = self.get_json("/version", "engine").await?;
        let (major, minor) =
            negotiate(&version.api_version).ok_or_else(|| DockerError::UnsupportedVersion {
                version: version.api_version.clone(),
                engine: version.version.clone(),
                socket: self.socket.clone(),
            })?;
        self.api = format!("/v{major}.{minor}");
        Ok(version)
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The agreed API version (`1.45`).
    pub fn api_version(&self) -> &str {
        self.api.trim_start_matches("/v")
    }

    // -- transport -------------------------------------------------------------

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), DockerError> {
        let endpoint = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let uri: hyper::Uri = hyperlocal::Uri::new(&self.socket, path).into();
        let mut builder = Request::builder().method(method).uri(uri);
        if body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| DockerError::Request(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(source)) => Err(DockerError::Unreachable {
                socket: self.socket.clone(),
                endpoint,
                source,
            }),
            Err(_) => Err(DockerError::Timeout {
                endpoint,
                after: timeout,
            }),
        }
    }

    /// An exchange whose answer must have one of `ok` statuses.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        object: &str,
        body: Option<Vec<u8>>,
        ok: &[u16],
        extra: Duration,
    ) -> Result<(StatusCode, Bytes), DockerError> {
        let (status, bytes) = self
            .send(method.clone(), path, body, self.options.timeout + extra)
            .await?;
        if ok.contains(&status.as_u16()) {
            return Ok((status, bytes));
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
        Err(DockerError::Api {
            endpoint: format!("{method} {}", path.split('?').next().unwrap_or(path)),
            object: object.to_owned(),
            status: status.as_u16(),
            message,
        })
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        object: &str,
    ) -> Result<T, DockerError> {
        let (_, body) = self
            .expect(Method::GET, path, object, None, &[200], Duration::ZERO)
            .await?;
        decode(path, &body)
    }

    async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        object: &str,
        body: &B,
        ok: &[u16],
    ) -> Result<T, DockerError> {
        let bytes = serde_json::to_vec(body).map_err(|e| DockerError::Request(e.to_string()))?;
        let (_, answer) = self
            .expect(Method::POST, path, object, Some(bytes), ok, Duration::ZERO)
            .await?;
        decode(path, &answer)
    }

    /// `GET path` whose answer is a stream: the response's body once the
    /// engine answered 200 (the answer's head has the usual time limit, the
    /// body none), else the engine's error.
    pub(super) async fn open_stream(
        &self,
        path: &str,
        object: &str,
    ) -> Result<hyper::body::Incoming, DockerError> {
        let endpoint = format!("GET {}", path.split('?').next().unwrap_or(path));
        let uri: hyper::Uri = hyperlocal::Uri::new(&self.socket, path).into();
        let request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| DockerError::Request(e.to_string()))?;
        let response =
            match tokio::time::timeout(self.options.timeout, self.http.request(request)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    return Err(DockerError::Unreachable {
                        socket: self.socket.clone(),
                        endpoint,
                        source: Box::new(e),
                    });
                }
                Err(_) => {
                    return Err(DockerError::Timeout {
                        endpoint,
                        after: self.options.timeout,
                    });
                }
            };
        if response.status() == StatusCode::OK {
            return Ok(response.into_body());
        }
        let status = response.status().as_u16();
        let bytes = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
        Err(DockerError::Api {
            endpoint,
            object: object.to_owned(),
            status,
            message,
        })
    }

    /// The agreed API's path of `endpoint` (`/v1.45/events`).
    pub(super) fn versioned(&self, endpoint: &str) -> String {
        self.url(endpoint)
    }

    // -- system ----------------------------------------------------------------

    /// `GET /_ping`: `OK` when the engine answers.
    pub async fn ping(&self) -> Result<String, DockerError> {
        let (_, body) = self
            .expect(
                Method::GET,
                "/_ping",
                "engine",
                None,
                &[200],
                Duration::ZERO,
            )
            .await?;
        Ok(String::from_utf8_lossy(&body).trim().to_owned())
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<Version, DockerError> {
        self.get_json(&self.url("/version"), "engine").await
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<Info, DockerError> {
        self.get_json(&self.url("/info"), "engine").await
    }

    // -- containers ------------------------------------------------------------

    /// `GET /containers/json?all=true`, with every one of `labels` (`key` or
    /// `key=value`).
    pub async fn list_containers(
        &self,
        labels: &[String],
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let mut q = vec![("all", "true".to_owned())];
        q.extend(label_filters(labels));
        self.get_json(&with_query(&self.url("/containers/json"), &q), "containers")
            .await
    }

    /// `GET /containers/{name}/json`.
    pub async fn inspect_container(&self, name: &str) -> Result<ContainerInspect, DockerError> {
        let path = self.url(&format!("/containers/{}/json", encode(name)));
        self.get_json(&path, &format!("container {name}")).await
    }

    /// `POST /containers/create?name=…[&platform=…]`: `platform`
    /// (`linux/arm64`) picks the image of that platform. Not retried: a second
    /// create would clash with the first.
    pub async fn create_container(
        &self,
        name: &str,
        platform: Option<&str>,
        body: &ContainerCreate,
    ) -> Result<CreateResponse, DockerError> {
        let mut query = vec![("name", name.to_owned())];
        query.extend(platform.map(|p| ("platform", p.to_owned())));
        let path = with_query(&self.url("/containers/create"), &query);
        self.post_json(&path, &format!("container {name}"), body, &[201])
            .await
    }

    /// `POST /containers/{name}/start`: `true` when it started, `false` when it
    /// was running.
    pub async fn start_container(&self, name: &str) -> Result<bool, DockerError> {
        let path = self.url(&format!("/containers/{}/start", encode(name)));
        let (status, _) = self
            .expect(
                Method::POST,
                &path,
                &format!("container {name}"),
                None,
                &[204, 304],
                Duration::ZERO,
            )
            .await?;
        Ok(status == StatusCode::NO_CONTENT)
    }

    /// `POST /containers/{name}/stop?t=…`: `true` when it stopped, `false` when
    /// it was not running.
    pub async fn stop_container(&self, name: &str, timeout: u64) -> Result<bool, DockerError> {
        let path = with_query(
            &self.url(&format!("/containers/{}/stop", encode(name))),
            &[("t", timeout.to_string())],
        );
        let (status, _) = self
            .expect(
                Method::POST,
                &path,
                &format!("container {name}"),
                None,
                &[204, 304],
                Duration::from_secs(timeout),
            )
            .await?;
        Ok(status == StatusCode::NO_CONTENT)
    }

    /// `POST /containers/{name}/restart?t=…`.
    pub async fn restart_container(&self, name: &str, timeout: u64) -> Result<(), DockerError> {
        let path = with_query(
            &self.url(&format!("/containers/{}/restart", encode(name))),
            &[("t", timeout.to_string())],
        );
        self.expect(
            Method::POST,
            &path,
            &format!("container {name}"),
            None,
            &[204],
            Duration::from_secs(timeout),
        )
        .await
        .map(drop)
    }

    /// `POST /containers/{name}/rename?name=…`.
    pub async fn rename_container(&self, name: &str, new_name: &str) -> Result<(), DockerError> {
        let path = with_query(
            &self.url(&format!("/containers/{}/rename", encode(name))),
            &[("name", new_name.to_owned())],
        );
        self.expect(
            Method::POST,
            &path,
            &format!("container {name}"),
            None,
            &[204],
            Duration::ZERO,
        )
        .await
        .map(drop)
    }

    /// `DELETE /containers/{name}?force=…&v=…`: `force` kills it first, `volumes`
    /// also removes its anonymous volumes.
    pub async fn remove_container(
        &self,
        name: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), DockerError> {
        let path = with_query(
            &self.url(&format!("/containers/{}", encode(name))),
            &[("force", force.to_string()), ("v", volumes.to_string())],
        );
        self.expect(
            Method::DELETE,
            &path,
            &format!("container {name}"),
            None,
            &[204],
            Duration::ZERO,
        )
        .await
        .map(drop)
    }

    // -- images ----------------------------------------------------------------

    /// `GET /images/json`.
    pub async fn list_images(&self) -> Result<Vec<ImageSummary>, DockerError> {
        self.get_json(&self.url("/images/json"), "images").await
    }

    /// `POST /images/create?fromImage=…&tag=…[&platform=…]`: pulls `reference`
    /// (by digest when it has one; of `platform` when given, else the
    /// engine's), each line of progress to `progress`. A pull that fails after
    /// the engine answered 200 is an error too.
    pub async fn pull_image(
        &self,
        reference: &str,
        platform: Option<&str>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), DockerError> {
        let (repo, tag) = pull_parts(reference);
        let mut query = vec![("fromImage", repo), ("tag", tag)];
        query.extend(platform.map(|p| ("platform", p.to_owned())));
        let path = with_query(&self.url("/images/create"), &query);
        let endpoint = "POST /images/create".to_owned();
        let uri: hyper::Uri = hyperlocal::Uri::new(&self.socket, &path).into();
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| DockerError::Request(e.to_string()))?;
        let socket = self.socket.clone();
        let unreachable =
            |source: Box<dyn std::error::Error + Send + Sync>| DockerError::Unreachable {
                socket: socket.clone(),
                endpoint: endpoint.clone(),
                source,
            };
        let pull = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| unreachable(Box::new(e)))?;
            let status = response.status();
            let mut body = response.into_body();
            if status != StatusCode::OK {
                let bytes = Limited::new(body, MAX_BODY)
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let message = serde_json::from_slice::<ErrorBody>(&bytes)
                    .map(|b| b.message)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
                return Err(DockerError::Api {
                    endpoint: endpoint.clone(),
                    object: format!("image {reference}"),
                    status: status.as_u16(),
                    message,
                });
            }
            let mut pending: Vec<u8> = Vec::new();
            loop {
                let frame = match body.frame().await {
                    None => break,
                    Some(f) => f.map_err(|e| unreachable(Box::new(e)))?,
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                pending.extend_from_slice(&data);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    report(reference, &line, progress)?;
                }
            }
            report(reference, &pending, progress)
        };
        match tokio::time::timeout(self.options.pull_timeout, pull).await {
            Ok(r) => r,
            Err(_) => Err(DockerError::Timeout {
                endpoint: "POST /images/create".to_owned(),
                after: self.options.pull_timeout,
            }),
        }
    }

    // -- networks and volumes --------------------------------------------------

    /// `GET /networks`.
    pub async fn list_networks(&self) -> Result<Vec<Network>, DockerError> {
        self.get_json(&self.url("/networks"), "networks").await
    }

    /// `POST /networks/create`.
    pub async fn create_network(&self, network: &NetworkCreate) -> Result<(), DockerError> {
        let path = self.url("/networks/create");
        let _: serde_json::Value = self
            .post_json(&path, &format!("network {}", network.name), network, &[201])
            .await?;
        Ok(())
    }

    /// `DELETE /networks/{name}`.
    pub async fn remove_network(&self, name: &str) -> Result<(), DockerError> {
        let path = self.url(&format!("/networks/{}", encode(name)));
        self.expect(
            Method::DELETE,
            &path,
            &format!("network {name}"),
            None,
            &[204],
            Duration::ZERO,
        )
        .await
        .map(drop)
    }

    /// `GET /volumes`.
    pub async fn list_volumes(&self) -> Result<Vec<Volume>, DockerError> {
        let list: VolumeList = self.get_json(&self.url("/volumes"), "volumes").await?;
        Ok(list.volumes)
    }

    /// `POST /volumes/create`.
    pub async fn create_volume(&self, volume: &VolumeCreate) -> Result<(), DockerError> {
        let path = self.url("/volumes/create");
        let _: serde_json::Value = self
            .post_json(&path, &format!("volume {}", volume.name), volume, &[201])
            .await?;
        Ok(())
    }

    /// `DELETE /volumes/{name}`.
    pub async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        let path = self.url(&format!("/volumes/{}", encode(name)));
        self.expect(
            Method::DELETE,
            &path,
            &format!("volume {name}"),
            None,
            &[204],
            Duration::ZERO,
        )
        .await
        .map(drop)
    }
}

/// One line of a pull's progress: to `progress`, or the pull's error.
fn report(
    reference: &str,
    line: &[u8],
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), DockerError> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    let Ok(status) = serde_json::from_str::<PullStatus>(text) else {
        progress(text);
        return Ok(());
    };
    if let Some(message) = status.error {
        return Err(DockerError::Pull {
            image: reference.to_owned(),
            message,
        });
    }
    let mut shown = String::new();
    if !status.id.is_empty() {
        let _ = write!(shown, "{}: ", status.id);
    }
    shown.push_str(&status.status);
    if !status.progress.is_empty() {
        let _ = write!(shown, " {}", status.progress);
    }
    progress(&shown);
    Ok(())
}

fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, DockerError> {
    serde_json::from_slice(body).map_err(|source| DockerError::Decode {
        endpoint: path.split('?').next().unwrap_or(path).to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_are_agreed_down_to_magos_s_newest() {
        assert_eq!(negotiate("1.45"), Some((1, 45)));
        assert_eq!(negotiate("1.47"), Some((1, 45)));
        assert_eq!(negotiate("1.41"), Some((1, 41)));
        assert_eq!(negotiate("1.40"), None);
        assert_eq!(negotiate("x"), None);
    }

    #[test]
    fn a_pull_by_digest_asks_for_the_digest_not_the_tag() {
        assert_eq!(
            pull_parts("127.0.0.1:5000/magos/httpd:1@sha256:abc"),
            (
                "127.0.0.1:5000/magos/httpd".to_owned(),
                "sha256:abc".to_owned()
            )
        );
        assert_eq!(
            pull_parts("127.0.0.1:5000/magos/httpd:1"),
            ("127.0.0.1:5000/magos/httpd".to_owned(), "1".to_owned())
        );
        assert_eq!(
            pull_parts("nginx"),
            ("nginx".to_owned(), "latest".to_owned())
        );
    }

    #[test]
    fn a_pull_error_line_fails_the_pull_and_progress_lines_are_shown() {
        let mut lines = Vec::new();
        let mut p = |l: &str| lines.push(l.to_owned());
        report(
            "x",
            br#"{"status":"Downloading","id":"abc","progress":"[=> ] 1MB"}"#,
            &mut p,
        )
        .unwrap();
        let e = report(
            "x",
            br#"{"error":"manifest unknown","errorDetail":{"message":"manifest unknown"}}"#,
            &mut p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("manifest unknown"));
        assert_eq!(lines, vec!["abc: Downloading [=> ] 1MB"]);
    }

    #[test]
    fn label_filters_are_docker_s_json() {
        let f = label_filters(&["a=b".to_owned()]);
        assert_eq!(f[0].1, r#"{"label":["a=b"]}"#);
        assert_eq!(with_query("/x", &[("t", "a b".to_owned())]), "/x?t=a%20b");
    }
}
