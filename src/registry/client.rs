//! The HTTP side of the registry edge: one client, concurrency bound, token cache
//! and counters per registry host; authentication on a `401`, backoff on a `429`,
//! a timeout and a size limit on every request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LINK, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::RegistryError;
use super::auth::{self, Challenge, TokenCache};
use super::helper;
use super::manifest::{Manifest, ManifestKind, parse_manifest};
use super::reference::{Digest, ImageRef, Platform, api_host};
use super::settings::{Credentials, Found, ListBudget, Settings};
use super::wire::{self, RateLimit};

/// Largest manifest or index accepted (as containers/image).
const MANIFEST_LIMIT: usize = 4 << 20;
/// Largest image config accepted.
const CONFIG_LIMIT: usize = 4 << 20;
/// Largest page of a tag listing accepted.
const TAG_PAGE_LIMIT: usize = 8 << 20;
/// Largest token response accepted.
const TOKEN_LIMIT: usize = 1 << 20;
/// How much of an error body is read for its message.
const ERROR_BODY_LIMIT: usize = 16 << 10;
/// Pages followed at most in one tag listing.
const MAX_TAG_PAGES: usize = 10_000;

/// Every manifest media type Magos reads, for `Accept`: index types first, so
/// a registry with a choice answers with what `podman pull` resolves.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// How many requests of each kind went to one registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    /// `GET …/tags/list` pages.
    pub tag_pages: u64,
    /// `HEAD …/manifests/…`.
    pub manifest_heads: u64,
    /// `GET …/manifests/…`.
    pub manifest_gets: u64,
    /// `GET …/blobs/…` (image configs).
    pub blob_gets: u64,
    /// Requests to the token endpoint.
    pub token_gets: u64,
    /// Requests answered `429` (and retried or given up).
    pub rate_limited: u64,
    /// `GET …/referrers/…` (OCI 1.1 referrers API, for cosign signatures).
    pub referrers: u64,
}

impl RequestCounts {
    /// Every request made to the registry itself (token endpoint excluded).
    pub fn registry_requests(&self) -> u64 {
        self.tag_pages + self.manifest_heads + self.manifest_gets + self.blob_gets + self.referrers
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    TagPage,
    ManifestHead,
    ManifestGet,
    BlobGet,
    Referrers,
}

/// The answer to a successful request.
struct Fetched {
    headers: HeaderMap,
    body: bytes::Bytes,
    url: String,
}

/// The state kept for one registry host.
struct Host {
    /// `registry-1.docker.io`, `127.0.0.1:5000`.
    name: String,
    http: reqwest::Client,
    permits: Semaphore,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<TokenCache>,
    rate_limit: Mutex<Option<RateLimit>>,
    counts: Mutex<RequestCounts>,
    /// Responses of the registry itself by status (`error`: none came).
    statuses: Mutex<BTreeMap<String, u64>>,
    /// Credential helpers' answers by helper and server, with when they came.
    helped: Mutex<HashMap<String, (Option<Credentials>, Instant)>>,
    /// Held while a credential helper runs, so concurrent requests ask it once.
    helping: tokio::sync::Mutex<()>,
}

/// How long a credential helper's answer is used before it is asked again.
const HELPER_TTL: Duration = Duration::from_secs(300);

impl Host {
    fn count(&self, f: impl FnOnce(&mut RequestCounts)) {
        f(&mut self.counts.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// A client for every registry Magos asks. Cheap to clone; keep one for the
/// life of the program so tokens and counters last across checks.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

static CRYPTO: Once = Once::new();

/// Makes rustls use the ring provider (the only one compiled in) as the process
/// default. [`RegistryClient::new`] calls it; call it at start-up when other code
/// builds TLS clients first. Idempotent.
pub fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        // An error means a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl RegistryClient {
    /// A client with these settings. Nothing is contacted yet.
    pub fn new(settings: Settings) -> Self {
        install_crypto_provider();
        Self {
            inner: Arc::new(Inner {
                settings,
                hosts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The last rate-limit headers seen from a registry (by name or API host).
    pub fn rate_limit(&self, registry: &str) -> Option<RateLimit> {
        let host = self.known_host(registry)?;
        *host.rate_limit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The requests made so far to a registry (by name or API host).
    pub fn request_counts(&self, registry: &str) -> RequestCounts {
        self.known_host(registry)
            .map(|h| *h.counts.lock().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or_default()
    }

    /// The API hosts asked so far, sorted.
    pub fn hosts(&self) -> Vec<String> {
        let hosts = self.inner.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = hosts.keys().cloned().collect();
        names.sort();
        names
    }

    /// The responses a registry (by name or API host) gave so far, by status:
    /// `200`, `401`, `429`, …, or `error` when no response came. The token
    /// endpoint is not counted.
    pub fn responses(&self, registry: &str) -> Vec<(String, u64)> {
        self.known_host(registry)
            .map(|h| {
                let statuses = h.statuses.lock().unwrap_or_else(|e| e.into_inner());
                statuses.iter().map(|(s, n)| (s.clone(), *n)).collect()
            })
            .unwrap_or_default()
    }

    fn known_host(&self, registry: &str) -> Option<Arc<Host>> {
        let hosts = self.inner.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.get(super::api_host(registry)).cloned()
    }

    fn host(&self, image: &ImageRef) -> Result<Arc<Host>, RegistryError> {
        let name = api_host(&image.registry);
        let mut hosts = self.inner.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = hosts.get(name) {
            return Ok(h.clone());
        }
        let settings = &self.inner.settings;
        let mut roots = Vec::new();
        for (path, pem) in settings.ca_certificates(name)? {
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                RegistryError::Certificate {
                    path: path.clone(),
                    source: source.into(),
                }
            })?;
            roots.extend(certs);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("magos/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .tls_certs_merge(roots)
            .build()
            .map_err(|source| RegistryError::Client {
                host: name.to_owned(),
                source: source.into(),
            })?;
        let host = Arc::new(Host {
            name: name.to_owned(),
            http,
            permits: Semaphore::new(settings.max_concurrent_per_registry.max(1)),
            challenge: Mutex::new(None),
            tokens: Mutex::new(TokenCache::default()),
            rate_limit: Mutex::new(None),
            counts: Mutex::new(RequestCounts::default()),
            statuses: Mutex::new(BTreeMap::new()),
            helped: Mutex::new(HashMap::new()),
            helping: tokio::sync::Mutex::new(()),
        });
        hosts.insert(name.to_owned(), host.clone());
        Ok(host)
    }

    /// `http://host` or `https://host` for a reference.
    fn base(&self, image: &ImageRef) -> String {
        let insecure = self
            .inner
            .settings
            .insecure
            .is_insecure(image.registry.as_str(), image.path.as_str());
        let scheme = if insecure { "http" } else { "https" };
        format!("{scheme}://{}", api_host(&image.registry))
    }

    /// Every tag of the image's repository, following pagination until the list
    /// is exhausted: the `Link` header, as Podman does (the registry picks the
    /// page size unless `tag_page_size` is set), and with a page size set, `last`
    /// when a full page comes without a `Link`.
    /// Duplicates across pages are dropped; the registry's order is kept.
    ///
    /// The whole listing has a budget (`registries.list_max_tags`,
    /// `list_max_bytes`, `list_timeout`): a registry that paginates without
    /// end fails this repository with [`RegistryError::ListBudget`] instead of
    /// growing Magos's memory.
    pub async fn tags(&self, image: &ImageRef) -> Result<Vec<String>, RegistryError> {
        let host = self.host(image)?;
        let budget = self.inner.settings.list_budget;
        let over = |what: String, key| RegistryError::ListBudget {
            host: host.name.clone(),
            repository: image.path.as_str().to_owned(),
            what,
            key,
        };
        match tokio::time::timeout(budget.timeout, self.list_tags(&host, image, budget)).await {
            Ok(Err(ListOver::Tags(n))) => Err(over(
                format!("more than {} tags (got {n})", budget.max_tags),
                "list_max_tags",
            )),
            Ok(Err(ListOver::Bytes(n))) => Err(over(
                format!(
                    "more than {} bytes of tag lists (got {n})",
                    budget.max_bytes
                ),
                "list_max_bytes",
            )),
            Ok(Err(ListOver::Error(e))) => Err(e),
            Ok(Ok(tags)) => Ok(tags),
            Err(_) => Err(over(
                format!("not finished within {}s", budget.timeout.as_secs_f32()),
                "list_timeout",
            )),
        }
    }

    /// The listing loop of [`RegistryClient::tags`], counting against `budget`
    /// (all but its time, which the caller bounds).
    async fn list_tags(
        &self,
        host: &Arc<Host>,
        image: &ImageRef,
        budget: ListBudget,
    ) -> Result<Vec<String>, ListOver> {
        let host = host.clone();
        let base = self.base(image);
        let page_size = self.inner.settings.tag_page_size.map(|n| n.max(1));
        let first = format!("{base}/v2/{}/tags/list", image.path.as_str());
        let mut url = page_url(&first, page_size, None);
        let mut tags = Vec::new();
        let mut seen = HashSet::new();
        let mut bytes: u64 = 0;
        for _ in 0..MAX_TAG_PAGES {
            let fetched = self
                .fetch(
                    &host,
                    image,
                    Kind::TagPage,
                    Method::GET,
                    &url,
                    None,
                    TAG_PAGE_LIMIT,
                )
                .await?;
            bytes += fetched.body.len() as u64;
            if bytes > budget.max_bytes {
                return Err(ListOver::Bytes(bytes));
            }
            let list: wire::TagList =
                serde_json::from_slice(&fetched.body).map_err(|e| RegistryError::Malformed {
                    host: host.name.clone(),
                    url: fetched.url.clone(),
                    message: format!("not a tag list: {e}"),
                })?;
            let page = list.tags.unwrap_or_default();
            let full = page_size.is_some_and(|n| page.len() >= n);
            let last = page.last().cloned();
            let mut new = 0;
            for tag in page {
                if seen.insert(tag.clone()) {
                    tags.push(tag);
                    new += 1;
                }
            }
            if tags.len() as u64 > budget.max_tags {
                return Err(ListOver::Tags(tags.len() as u64));
            }
            if new == 0 {
                break;
            }
            let link = fetched
                .headers
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(wire::next_link);
            url = match (link, last) {
                (Some(next), _) => {
                    resolve_link(&base, &next).ok_or_else(|| RegistryError::Malformed {
                        host: host.name.clone(),
                        url: fetched.url.clone(),
                        message: format!("`Link` leads outside the registry: {next}"),
                    })?
                }
                (None, Some(last)) if full => page_url(&first, page_size, Some(&last)),
                _ => break,
            };
        }
        Ok(tags)
    }

    /// The digest the reference points to, from a `HEAD` with every manifest media
    /// type accepted (`Docker-Content-Digest`). For a multi-arch image this is the
    /// index digest. Falls back to a `GET` only when the header is missing.
    pub async fn digest(&self, image: &ImageRef) -> Result<Digest, RegistryError> {
        let host = self.host(image)?;
        let url = self.manifest_url(image, image.manifest_reference());
        let fetched = self
            .fetch(
                &host,
                image,
                Kind::ManifestHead,
                Method::HEAD,
                &url,
                Some(MANIFEST_ACCEPT),
                0,
            )
            .await?;
        match header_digest(&host, &fetched)? {
            Some(digest) => {
                if let Some(want) = image.digest.as_ref()
                    && want != &digest
                {
                    return Err(RegistryError::Malformed {
                        host: host.name.clone(),
                        url,
                        message: format!("digest {digest} does not match the requested {want}"),
                    });
                }
                Ok(digest)
            }
            None => Ok(self.manifest(image).await?.digest),
        }
    }

    /// The manifest the reference points to (an index for a multi-arch image), its
    /// content checked against its digest.
    pub async fn manifest(&self, image: &ImageRef) -> Result<Manifest, RegistryError> {
        let host = self.host(image)?;
        self.get_manifest(&host, image, image.manifest_reference())
            .await
    }

    /// When the image was built (its config's `created`). For a multi-arch image
    /// the platform manifest is read: `platform` when given, else this host's
    /// platform (what `podman pull` would run). `None` when the config has no time.
    pub async fn created(
        &self,
        image: &ImageRef,
        platform: Option<&Platform>,
    ) -> Result<Option<SystemTime>, RegistryError> {
        let host = self.host(image)?;
        let top = self
            .get_manifest(&host, image, image.manifest_reference())
            .await?;
        let config = match &top.kind {
            ManifestKind::Image { config } => config.clone(),
            ManifestKind::Index { .. } => {
                let wanted = platform.cloned().unwrap_or_else(Platform::host);
                let entry =
                    top.platform_entry(&wanted)
                        .ok_or_else(|| RegistryError::NoPlatform {
                            reference: image.to_string(),
                            platform: wanted.to_string(),
                            available: top.platforms(),
                        })?;
                let inner = self
                    .get_manifest(&host, image, entry.digest.as_str())
                    .await?;
                match inner.kind {
                    ManifestKind::Image { config } => config,
                    ManifestKind::Index { .. } => {
                        return Err(RegistryError::Malformed {
                            host: host.name.clone(),
                            url: self.manifest_url(image, entry.digest.as_str()),
                            message: "an index entry is itself an index".to_owned(),
                        });
                    }
                }
            }
        };
        let url = format!(
            "{}/v2/{}/blobs/{config}",
            self.base(image),
            image.path.as_str()
        );
        let fetched = self
            .fetch(
                &host,
                image,
                Kind::BlobGet,
                Method::GET,
                &url,
                None,
                CONFIG_LIMIT,
            )
            .await?;
        if config.recompute(&fetched.body) != config {
            return Err(RegistryError::Malformed {
                host: host.name.clone(),
                url,
                message: format!("the config does not match its digest {config}"),
            });
        }
        let parsed: wire::ImageConfig =
            serde_json::from_slice(&fetched.body).map_err(|e| RegistryError::Malformed {
                host: host.name.clone(),
                url: url.clone(),
                message: format!("not an image config: {e}"),
            })?;
        match parsed.created {
            None => Ok(None),
            Some(text) => {
                wire::parse_time(&text)
                    .map(Some)
                    .ok_or_else(|| RegistryError::Malformed {
                        host: host.name.clone(),
                        url,
                        message: format!("`created` is not an RFC 3339 time: {text}"),
                    })
            }
        }
    }

    /// The digest of the platform manifest for `platform` when the reference is an
    /// index; the reference's own digest when it is a single image.
    pub async fn platform_digest(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<Digest, RegistryError> {
        self.manifest(image).await?.platform_digest(image, platform)
    }

    /// The raw bytes of a manifest (`reference` a tag or digest) or, with
    /// `blob`, of a blob, at most `limit` bytes; `None` when the registry has
    /// no such thing. For the signature checks, which read what they need
    /// themselves.
    pub(super) async fn raw(
        &self,
        image: &ImageRef,
        reference: &str,
        blob: bool,
        limit: usize,
    ) -> Result<Option<bytes::Bytes>, RegistryError> {
        let host = self.host(image)?;
        let (kind, url, accept) = if blob {
            let url = format!(
                "{}/v2/{}/blobs/{reference}",
                self.base(image),
                image.path.as_str()
            );
            (Kind::BlobGet, url, None)
        } else {
            let url = self.manifest_url(image, reference);
            (Kind::ManifestGet, url, Some(MANIFEST_ACCEPT))
        };
        match self
            .fetch(&host, image, kind, Method::GET, &url, accept, limit)
            .await
        {
            Ok(fetched) => Ok(Some(fetched.body)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The OCI 1.1 referrers of `digest` whose artifact type is
    /// `artifact_type` (an image index), or `None` when the registry has no
    /// referrers API (it answers `404`, `400`, `405` or `501` there).
    pub(super) async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
        artifact_type: &str,
        limit: usize,
    ) -> Result<Option<bytes::Bytes>, RegistryError> {
        let host = self.host(image)?;
        let mut url = format!(
            "{}/v2/{}/referrers/{digest}",
            self.base(image),
            image.path.as_str()
        );
        // A media type's `/` and `+` are the only characters it has that a
        // query value must escape.
        url.push_str("?artifactType=");
        url.push_str(&artifact_type.replace('/', "%2F").replace('+', "%2B"));
        match self
            .fetch(
                &host,
                image,
                Kind::Referrers,
                Method::GET,
                &url,
                Some("application/vnd.oci.image.index.v1+json"),
                limit,
            )
            .await
        {
            Ok(fetched) => Ok(Some(fetched.body)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(RegistryError::Status {
                status: 400 | 405 | 501,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn manifest_url(&self, image: &ImageRef, reference: &str) -> String {
        format!(
            "{}/v2/{}/manifests/{reference}",
            self.base(image),
            image.path.as_str()
        )
    }

    async fn get_manifest(
        &self,
        host: &Host,
        image: &ImageRef,
        reference: &str,
    ) -> Result<Manifest, RegistryError> {
        let url = self.manifest_url(image, reference);
        let fetched = self
            .fetch(
                host,
                image,
                Kind::ManifestGet,
                Method::GET,
                &url,
                Some(MANIFEST_ACCEPT),
                MANIFEST_LIMIT,
            )
            .await?;
        let requested = Digest::parse_any(reference).ok();
        let claimed = header_digest(host, &fetched)?;
        let content_type = fetched
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        parse_manifest(
            &fetched.body,
            content_type,
            requested.as_ref(),
            claimed.as_ref(),
        )
        .map_err(|message| RegistryError::Malformed {
            host: host.name.clone(),
            url,
            message,
        })
    }

    /// The vulnerability gate's configuration.
    pub fn scan_config(&self) -> &crate::config::ScanConfig {
        &self.inner.settings.scan
    }

    /// The `verify:` rules with their keys.
    pub fn verify_keys(&self) -> &[super::keys::VerifyKey] {
        &self.inner.settings.verify
    }

    /// The credentials for a repository: from an auth file's `auths`, or asked
    /// of its credential helper (whose answer is kept for [`HELPER_TTL`]).
    async fn credentials(
        &self,
        host: &Host,
        image: &ImageRef,
    ) -> Result<Option<Credentials>, RegistryError> {
        let settings = &self.inner.settings;
        let (helper, server) = match settings
            .auth
            .find(image.registry.as_str(), image.path.as_str())
        {
            None => return Ok(None),
            Some(Found::Stored(c)) => return Ok(Some(c.clone())),
            Some(Found::Helper { helper, server }) => (helper.to_owned(), server),
        };
        let key = format!("{helper}\n{server}");
        let cached = || {
            host.helped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .filter(|(_, at)| at.elapsed() < HELPER_TTL)
                .map(|(c, _)| c.clone())
        };
        if let Some(c) = cached() {
            return Ok(c);
        }
        let _helping = host.helping.lock().await;
        if let Some(c) = cached() {
            return Ok(c);
        }
        let registry = image.registry.as_str().to_owned();
        let timeout = settings.timeout;
        let program = helper::program(&helper);
        let got =
            tokio::task::spawn_blocking(move || helper::get(&helper, &registry, &server, timeout))
                .await
                .map_err(|e| RegistryError::CredentialHelper {
                    registry: image.registry.as_str().to_owned(),
                    helper: program,
                    message: format!("the task running it failed: {e}"),
                })??;
        host.helped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (got.clone(), Instant::now()));
        Ok(got)
    }

    /// One request, authenticated as needed, with `429` retries, the timeout and
    /// the size limit. Only a `200` is a success.
    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        &self,
        host: &Host,
        image: &ImageRef,
        kind: Kind,
        method: Method,
        url: &str,
        accept: Option<&str>,
        limit: usize,
    ) -> Result<Fetched, RegistryError> {
        let settings = &self.inner.settings;
        let _permit = host
            .permits
            .acquire()
            .await
            .map_err(|_| RegistryError::Status {
                host: host.name.clone(),
                url: url.to_owned(),
                status: 0,
                message: "the client is shutting down".to_owned(),
            })?;
        let scope = auth::pull_scope(image.path.as_str());
        let credentials = self.credentials(host, image).await?;
        let credentials = credentials.as_ref();
        let secure = url.starts_with("https://");
        let mut authenticated_once = false;
        let mut retries = 0u32;
        loop {
            let mut request = host.http.request(method.clone(), url);
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            let challenge = host
                .challenge
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            match challenge {
                Some(Challenge::Bearer { .. }) => {
                    let token = host
                        .tokens
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&scope, Instant::now());
                    match token {
                        Some(token) => request = request.bearer_auth(token.expose()),
                        None if !authenticated_once => {
                            // The registry wants tokens: get one for this scope
                            // first instead of collecting another 401.
                            self.obtain_token(
                                host,
                                &challenge_of(host),
                                &scope,
                                credentials,
                                secure,
                            )
                            .await?;
                            authenticated_once = true;
                            continue;
                        }
                        None => {}
                    }
                }
                Some(Challenge::Basic) => {
                    if let Some(c) = credentials {
                        request = request.basic_auth(&c.username, Some(c.password.expose()));
                    }
                }
                None => {}
            }
            host.count(|c| match kind {
                Kind::TagPage => c.tag_pages += 1,
                Kind::ManifestHead => c.manifest_heads += 1,
                Kind::ManifestGet => c.manifest_gets += 1,
                Kind::BlobGet => c.blob_gets += 1,
                Kind::Referrers => c.referrers += 1,
            });
            let sent = request.send().await;
            {
                let status = match &sent {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(_) => "error".to_owned(),
                };
                let mut statuses = host.statuses.lock().unwrap_or_else(|e| e.into_inner());
                *statuses.entry(status).or_default() += 1;
            }
            let mut response = sent.map_err(|e| transport_error(host, url, settings.timeout, e))?;
            record_rate_limit(host, response.headers());
            let status = response.status();
            match status {
                StatusCode::OK => {
                    let headers = response.headers().clone();
                    let body = if method == Method::HEAD {
                        bytes::Bytes::new()
                    } else {
                        read_limited(host, url, settings.timeout, &mut response, limit).await?
                    };
                    return Ok(Fetched {
                        headers,
                        body,
                        url: url.to_owned(),
                    });
                }
                StatusCode::UNAUTHORIZED if !authenticated_once => {
                    authenticated_once = true;
                    let parsed = response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(auth::parse_challenge);
                    let Some(parsed) = parsed else {
                        return Err(unauthorized(host, image, credentials));
                    };
                    *host.challenge.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(parsed.clone());
                    match parsed {
                        Challenge::Bearer { .. } => {
                            self.obtain_token(host, &parsed, &scope, credentials, secure)
                                .await?;
                        }
                        Challenge::Basic if credentials.is_none() => {
                            return Err(unauthorized(host, image, credentials));
                        }
                        Challenge::Basic => {}
                    }
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    host.tokens
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&scope);
                    return Err(unauthorized(host, image, credentials));
                }
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound {
                        host: host.name.clone(),
                        url: url.to_owned(),
                    });
                }
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    if status == StatusCode::TOO_MANY_REQUESTS
                        || response.headers().contains_key(RETRY_AFTER) =>
                {
                    host.count(|c| c.rate_limited += 1);
                    let asked = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| wire::retry_after(v, SystemTime::now()));
                    let wait = asked.unwrap_or_else(|| backoff(retries));
                    if retries >= settings.max_retries || wait > settings.max_retry_wait {
                        return Err(RegistryError::RateLimited {
                            host: host.name.clone(),
                            url: url.to_owned(),
                            retry_after: asked,
                        });
                    }
                    retries += 1;
                    tracing::warn!(
                        registry = %host.name,
                        wait_s = wait.as_secs_f32(),
                        "registry is rate limiting; waiting as asked"
                    );
                    drop(response);
                    tokio::time::sleep(wait).await;
                }
                other => {
                    let body =
                        read_limited(host, url, settings.timeout, &mut response, ERROR_BODY_LIMIT)
                            .await
                            .unwrap_or_default();
                    return Err(RegistryError::Status {
                        host: host.name.clone(),
                        url: url.to_owned(),
                        status: other.as_u16(),
                        message: error_message(&body),
                    });
                }
            }
        }
    }

    /// Gets a bearer token for `scope` from the challenge's realm (with the
    /// credentials, if any) and caches it for its lifetime. The credentials of a
    /// registry reached over HTTPS never go to a plain-HTTP realm.
    async fn obtain_token(
        &self,
        host: &Host,
        challenge: &Challenge,
        scope: &str,
        credentials: Option<&Credentials>,
        secure: bool,
    ) -> Result<(), RegistryError> {
        let Challenge::Bearer { realm, service } = challenge else {
            return Ok(());
        };
        let settings = &self.inner.settings;
        let token_error = |message: String| RegistryError::Token {
            host: host.name.clone(),
            realm: realm.clone(),
            message,
        };
        let mut url = Url::parse(realm).map_err(|e| token_error(format!("invalid realm: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(token_error("the realm is not an http(s) URL".to_owned()));
        }
        if secure && credentials.is_some() && url.scheme() == "http" {
            return Err(token_error(
                "refusing to send the credentials of an HTTPS registry over plain HTTP".to_owned(),
            ));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let mut request = host.http.get(url.clone());
        if let Some(c) = credentials {
            request = request.basic_auth(&c.username, Some(c.password.expose()));
        }
        host.count(|c| c.token_gets += 1);
        let shown = realm.clone();
        let mut response = request
            .send()
            .await
            .map_err(|e| transport_error(host, &shown, settings.timeout, e))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(RegistryError::Unauthorized {
                    host: host.name.clone(),
                    repository: scope
                        .trim_start_matches("repository:")
                        .trim_end_matches(":pull")
                        .to_owned(),
                    with_credentials: credentials.is_some(),
                });
            }
            other => return Err(token_error(format!("status {}", other.as_u16()))),
        }
        let body = read_limited(host, &shown, settings.timeout, &mut response, TOKEN_LIMIT).await?;
        let token = auth::parse_token(&body)
            .ok_or_else(|| token_error("the answer holds no token".to_owned()))?;
        host.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope, token, Instant::now());
        Ok(())
    }
}

/// Why a tag listing stopped early.
enum ListOver {
    /// More tags than the budget allows.
    Tags(u64),
    /// More bytes than the budget allows.
    Bytes(u64),
    /// A request failed.
    Error(RegistryError),
}

impl From<RegistryError> for ListOver {
    fn from(e: RegistryError) -> Self {
        ListOver::Error(e)
    }
}

fn challenge_of(host: &Host) -> Challenge {
    host.challenge
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or(Challenge::Basic)
}

fn page_url(first: &str, n: Option<usize>, last: Option<&str>) -> String {
    let (Some(n), Ok(mut url)) = (n, Url::parse(first)) else {
        return first.to_owned();
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("n", &n.to_string());
        if let Some(last) = last {
            q.append_pair("last", last);
        }
    }
    url.to_string()
}

/// A `Link` target resolved against the registry, refused when it leaves it.
fn resolve_link(base: &str, link: &str) -> Option<String> {
    let base = Url::parse(base).ok()?;
    let next = base.join(link).ok()?;
    (next.origin() == base.origin()).then(|| next.to_string())
}

/// Exponential backoff when a `429` says nothing: 1 s, 2 s, 4 s, … capped at 30 s.
fn backoff(retries: u32) -> Duration {
    Duration::from_secs(1u64 << retries.min(5)).min(Duration::from_secs(30))
}

fn header_digest(host: &Host, fetched: &Fetched) -> Result<Option<Digest>, RegistryError> {
    match fetched.headers.get("docker-content-digest") {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().map_err(|_| RegistryError::Malformed {
                host: host.name.clone(),
                url: fetched.url.clone(),
                message: "`Docker-Content-Digest` is not text".to_owned(),
            })?;
            Digest::parse_any(text.trim())
                .map(Some)
                .map_err(|e| RegistryError::Malformed {
                    host: host.name.clone(),
                    url: fetched.url.clone(),
                    message: format!("`Docker-Content-Digest`: {e}"),
                })
        }
    }
}

fn record_rate_limit(host: &Host, headers: &HeaderMap) {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let limit = get("ratelimit-limit").or_else(|| get("x-ratelimit-limit"));
    let remaining = get("ratelimit-remaining").or_else(|| get("x-ratelimit-remaining"));
    if let Some(rl) = RateLimit::from_headers(limit, remaining) {
        if let Some(left) = rl.remaining {
            tracing::debug!(registry = %host.name, remaining = left, "registry rate limit");
        }
        *host.rate_limit.lock().unwrap_or_else(|e| e.into_inner()) = Some(rl);
    }
}

fn transport_error(host: &Host, url: &str, timeout: Duration, e: reqwest::Error) -> RegistryError {
    if e.is_timeout() {
        RegistryError::Timeout {
            host: host.name.clone(),
            url: url.to_owned(),
            timeout,
        }
    } else {
        RegistryError::Unreachable {
            host: host.name.clone(),
            url: url.to_owned(),
            source: Arc::new(e.without_url()),
        }
    }
}

fn unauthorized(host: &Host, image: &ImageRef, credentials: Option<&Credentials>) -> RegistryError {
    RegistryError::Unauthorized {
        host: host.name.clone(),
        repository: image.path.as_str().to_owned(),
        with_credentials: credentials.is_some(),
    }
}

/// Reads a body, failing as soon as it passes `limit` bytes.
async fn read_limited(
    host: &Host,
    url: &str,
    timeout: Duration,
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<bytes::Bytes, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        host: host.name.clone(),
        url: url.to_owned(),
        limit,
    };
    if response.content_length().is_some_and(|l| l > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(host, url, timeout, e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// The first message of a distribution error body (`{"errors":[{"message":…}]}`),
/// or the start of a text body; control characters removed.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let text = match serde_json::from_slice::<Errors>(body) {
        Ok(e) => e
            .errors
            .first()
            .map(|e| {
                if e.message.is_empty() {
                    e.code.clone()
                } else {
                    e.message.clone()
                }
            })
            .unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    text.chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_lists_every_manifest_type() {
        use oci_client::manifest::{
            IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
            OCI_IMAGE_MEDIA_TYPE,
        };
        for t in [
            OCI_IMAGE_INDEX_MEDIA_TYPE,
            IMAGE_MANIFEST_LIST_MEDIA_TYPE,
            OCI_IMAGE_MEDIA_TYPE,
            IMAGE_MANIFEST_MEDIA_TYPE,
        ] {
            assert!(MANIFEST_ACCEPT.contains(t), "{t}");
        }
    }

    #[test]
    fn links_stay_on_the_registry() {
        assert_eq!(
            resolve_link("http://127.0.0.1:5000", "/v2/a/tags/list?n=2&last=b").as_deref(),
            Some("http://127.0.0.1:5000/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            resolve_link("https://ghcr.io", "https://ghcr.io/v2/a/tags/list?last=x").as_deref(),
            Some("https://ghcr.io/v2/a/tags/list?last=x")
        );
        assert_eq!(
            resolve_link("https://ghcr.io", "https://evil.example/v2/"),
            None
        );
        assert_eq!(resolve_link("https://ghcr.io", "http://ghcr.io/v2/"), None);
    }

    #[test]
    fn page_urls() {
        assert_eq!(
            page_url("http://h/v2/a/b/tags/list", Some(100), Some("1.0")),
            "http://h/v2/a/b/tags/list?n=100&last=1.0"
        );
        assert_eq!(
            page_url("http://h/v2/a/tags/list", Some(5), None),
            "http://h/v2/a/tags/list?n=5"
        );
        assert_eq!(
            page_url("http://h/v2/a/tags/list", None, Some("x")),
            "http://h/v2/a/tags/list"
        );
    }

    #[test]
    fn backoff_is_bounded() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }

    #[test]
    fn error_messages_are_short_and_clean() {
        assert_eq!(
            error_message(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            "manifest unknown"
        );
        assert_eq!(
            error_message(br#"{"errors":[{"code":"DENIED"}]}"#),
            "DENIED"
        );
        assert_eq!(error_message(b"bad\x1b[31m gateway\n"), "bad[31m gateway");
        assert_eq!(error_message(&[b'x'; 1000]).len(), 200);
    }
}
