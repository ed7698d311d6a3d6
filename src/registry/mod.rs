//! The registry edge: tag lists, manifest digests and image creation times from
//! any OCI registry (Docker Hub, GHCR, Quay, self-hosted), with Podman's
//! credentials and insecure-registry settings, gently on rate limits.
//!
//! - [`RegistryClient`] lives as long as the program: per-registry HTTP clients,
//!   concurrency bounds, bearer tokens (kept for their lifetime), rate-limit and
//!   request counters.
//! - [`Check`] is one check pass: it memoises tag lists, digests and manifests, so
//!   a repository's tags are listed once however many services use it, and a
//!   registry that failed is not asked again in the same pass.
//! - [`Settings`] is what is read from disk (`registries.conf`, auth files,
//!   `certs.d`); [`Settings::load`] is the only file access.
//!
//! Errors are per registry: one registry failing never stops the others.

mod auth;
mod check;
mod client;
mod cosign;
mod helper;
mod keys;
mod manifest;
mod reference;
mod settings;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use check::Check;
pub use client::{RegistryClient, RequestCounts, install_crypto_provider};
pub use keys::VerifyKey;
pub use manifest::{IndexEntry, Manifest, ManifestKind};
pub use reference::{Digest, DigestError, ImageRef, Platform, api_host, parse_image};
pub use settings::{AuthStore, Credentials, InsecureRule, InsecureRules, ListBudget, Settings};
pub use wire::RateLimit;

/// Something went wrong talking to a registry or reading its settings. Cheap to
/// clone, so one failure can answer every image of the same registry. Never
/// holds a credential or token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// An image reference that cannot be parsed.
    #[error("invalid image reference `{input}`: {message}")]
    Reference {
        /// The reference as given.
        input: String,
        /// What is wrong.
        message: String,
    },
    /// A platform that is not `os/arch[/variant]`.
    #[error("invalid platform `{input}`: write os/architecture[/variant], e.g. linux/arm64")]
    Platform {
        /// The platform as given.
        input: String,
    },
    /// A settings file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// An auth file that cannot be used. The message names keys, never values.
    #[error("{}: {message}", path.display())]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A credential helper (`credHelpers`/`credsStore`) failed. The message
    /// never holds a secret.
    #[error("the credential helper {helper} for registry {registry} failed: {message}")]
    CredentialHelper {
        /// The registry.
        registry: String,
        /// The program (`docker-credential-<name>`).
        helper: String,
        /// What went wrong: its exit status and first line of error output, a
        /// time limit, a missing program or an unreadable answer.
        message: String,
    },
    /// A `verify:` key that cannot be used.
    #[error("{} (verify key): {message}", path.display())]
    VerifyKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A `registries.conf` that cannot be used.
    #[error("{}:{line}: {message}", path.display())]
    RegistriesConf {
        /// The file.
        path: PathBuf,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A CA certificate from `certs.d` that cannot be used.
    #[error("{}: not a usable PEM certificate: {source}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The HTTP client for a registry could not be built.
    #[error("cannot set up a client for registry {host}: {source}")]
    Client {
        /// The registry host.
        host: String,
        /// Why.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The registry could not be reached, or the connection broke.
    #[error("registry {host} unreachable ({url}): {source}")]
    Unreachable {
        /// The registry host.
        host: String,
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// A request took longer than the configured timeout.
    #[error("registry {host} did not answer {url} within {}s", timeout.as_secs_f32())]
    Timeout {
        /// The registry host.
        host: String,
        /// The request URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The registry refused the credentials (or has none for anonymous users).
    #[error("registry {host} refused access to {repository}{}", if *with_credentials { " with the configured credentials" } else { " without credentials (add them with `podman login`)" })]
    Unauthorized {
        /// The registry host.
        host: String,
        /// The repository.
        repository: String,
        /// Whether credentials were sent.
        with_credentials: bool,
    },
    /// The token endpoint did not give a token.
    #[error("token endpoint {realm} of registry {host} failed: {message}")]
    Token {
        /// The registry host.
        host: String,
        /// The token endpoint.
        realm: String,
        /// Why (a status or a description, never the body).
        message: String,
    },
    /// The manifest or repository does not exist.
    #[error("{url}: not found on registry {host}")]
    NotFound {
        /// The registry host.
        host: String,
        /// The request URL.
        url: String,
    },
    /// The registry kept answering `429 Too Many Requests`.
    #[error("registry {host} is rate limiting ({url}){}", retry_after.map(|d| format!("; it asks to wait {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The registry host.
        host: String,
        /// The request URL.
        url: String,
        /// What the last `Retry-After` asked for.
        retry_after: Option<Duration>,
    },
    /// Any other unexpected status.
    #[error("registry {host} answered {status} to {url}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        /// The registry host.
        host: String,
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error message, shortened.
        message: String,
    },
    /// A tag listing that went over its budget (`registries.list_max_tags`,
    /// `list_max_bytes`, `list_timeout`): a registry that paginates without
    /// end. Only this repository's services fail; the registry stays usable.
    #[error(
        "the tag listing of {repository} on registry {host} went over its budget: {what} \
         (registries.{key}); the registry keeps paginating, or raise registries.{key}"
    )]
    ListBudget {
        /// The registry host.
        host: String,
        /// The repository.
        repository: String,
        /// What ran out, in words.
        what: String,
        /// The configuration key of the limit.
        key: &'static str,
    },
    /// A body over the size limit.
    #[error("{url}: the answer of registry {host} is larger than {limit} bytes")]
    TooLarge {
        /// The registry host.
        host: String,
        /// The request URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// A body or header that does not mean what it must (bad JSON, a digest that
    /// does not match the content, an unknown media type).
    #[error("{url}: malformed answer from registry {host}: {message}")]
    Malformed {
        /// The registry host.
        host: String,
        /// The request URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// An index without the requested platform.
    #[error("{reference} has no image for platform {platform} (it has: {available})")]
    NoPlatform {
        /// The reference.
        reference: String,
        /// The requested platform.
        platform: String,
        /// The platforms the index lists.
        available: String,
    },
}

impl RegistryError {
    /// Whether the error says the registry as a whole is unusable right now
    /// (unreachable, too slow, rate limiting), so that further requests to it in
    /// the same check are pointless.
    pub fn registry_down(&self) -> bool {
        matches!(
            self,
            RegistryError::Unreachable { .. }
                | RegistryError::Timeout { .. }
                | RegistryError::RateLimited { .. }
                | RegistryError::Client { .. }
                | RegistryError::Certificate { .. }
        )
    }
}
