//! What the registry edge reads from disk, Podman's way: insecure registries from
//! `registries.conf`, credentials from auth files, CA certificates from `certs.d`.
//! Parsing is pure; [`Settings::load`] is the only function here that reads files,
//! and it takes an environment snapshot.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use super::RegistryError;
use crate::config::{Env, RegistriesConfig, Secret};

/// A user name and password for one registry. The password never shows.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// One `auths` entry of an auth file, with where it came from.
#[derive(Debug, Clone)]
struct AuthEntry {
    key: String,
    credentials: Credentials,
}

/// What one auth file holds: `auths` entries, `credHelpers` (registry → helper
/// name) and `credsStore` (the helper for every other registry).
#[derive(Debug, Clone, Default)]
struct AuthFile {
    entries: Vec<AuthEntry>,
    helpers: BTreeMap<String, String>,
    store: Option<String>,
}

/// Where the credentials of a repository are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    /// In an auth file's `auths`.
    Stored(&'a Credentials),
    /// With a credential helper, asked for `server`.
    Helper {
        /// The helper's name (`docker-credential-<name>` is run).
        helper: &'a str,
        /// What the helper is asked for: the registry as the auth file names it.
        server: String,
    },
}

/// The credentials of every auth file, in the order Podman consults them.
#[derive(Debug, Clone, Default)]
pub struct AuthStore {
    /// One per file, first file first.
    files: Vec<(PathBuf, AuthFile)>,
}

impl AuthStore {
    /// Adds a parsed file after those already added.
    pub fn push_file(&mut self, path: PathBuf, text: &str) -> Result<(), RegistryError> {
        let file = parse_auth_file(&path, text)?;
        self.files.push((path, file));
        Ok(())
    }

    /// Where the credentials for a repository are, as Docker and Podman look:
    /// in each file in turn, a `credHelpers` entry for the registry, then the
    /// `auths` entries ([`AuthStore::lookup`]'s order), then the file's
    /// `credsStore`.
    pub fn find(&self, registry: &str, repository: &str) -> Option<Found<'_>> {
        for (_, file) in &self.files {
            if let Some((key, helper)) = file
                .helpers
                .iter()
                .find(|(k, _)| k.as_str() == registry || normalize_legacy_key(k) == registry)
            {
                return Some(Found::Helper {
                    helper,
                    server: key.clone(),
                });
            }
            if let Some(c) = lookup_in(&file.entries, registry, repository) {
                return Some(Found::Stored(c));
            }
            if let Some(helper) = &file.store {
                let server = if registry == "docker.io" {
                    "https://index.docker.io/v1/".to_owned()
                } else {
                    registry.to_owned()
                };
                return Some(Found::Helper { helper, server });
            }
        }
        None
    }

    /// The credentials for a repository, as Podman finds them: in each file in
    /// turn, the most specific of `registry/ns/repo`, `registry/ns`, `registry`,
    /// then a legacy key (`https://registry/v1/`) naming the same host.
    pub fn lookup(&self, registry: &str, repository: &str) -> Option<&Credentials> {
        self.files
            .iter()
            .find_map(|(_, file)| lookup_in(&file.entries, registry, repository))
    }

    /// The files read, for `config check`-style reports.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }
}

/// The `auths` entry of one file for a repository: the most specific of
/// `registry/ns/repo`, `registry/ns`, `registry`, then a legacy key.
fn lookup_in<'a>(
    entries: &'a [AuthEntry],
    registry: &str,
    repository: &str,
) -> Option<&'a Credentials> {
    let mut path = format!("{registry}/{repository}");
    loop {
        if let Some(e) = entries.iter().find(|e| e.key == path) {
            return Some(&e.credentials);
        }
        match path.rfind('/') {
            Some(i) => path.truncate(i),
            None => break,
        }
    }
    entries
        .iter()
        .find(|e| e.key.contains("://") && normalize_legacy_key(&e.key) == registry)
        .map(|e| &e.credentials)
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://host:5000/x` → `host:5000`.
fn normalize_legacy_key(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    if host == "index.docker.io" || host == "registry-1.docker.io" {
        "docker.io"
    } else {
        host
    }
}

#[derive(Deserialize)]
struct AuthFileWire {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntryWire>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct AuthEntryWire {
    #[serde(default)]
    auth: Option<String>,
}

/// Reads an auth file (`{"auths": {"host": {"auth": base64("user:pass")}}}`,
/// `"credHelpers": {"host": "name"}`, `"credsStore": "name"`). `auths` entries
/// without `auth` (identity tokens, or placeholders beside a `credsStore`) are
/// skipped. Errors name the file and key, never a value.
fn parse_auth_file(path: &Path, text: &str) -> Result<AuthFile, RegistryError> {
    let err = |message: String| RegistryError::AuthFile {
        path: path.to_owned(),
        message,
    };
    if text.trim().is_empty() {
        return Ok(AuthFile::default());
    }
    // serde_json's messages quote no values for type errors, but may for others;
    // report only the position.
    let wire: AuthFileWire = serde_json::from_str(text).map_err(|e| {
        err(format!(
            "not an auth file: invalid JSON at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    let mut out = Vec::new();
    for (key, entry) in wire.auths {
        let Some(encoded) = entry.auth.filter(|a| !a.is_empty()) else {
            continue;
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| err(format!("auths.{key}.auth: not base64")))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| err(format!("auths.{key}.auth: not UTF-8 after base64")))?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| {
            err(format!(
                "auths.{key}.auth: not `user:password` after base64"
            ))
        })?;
        out.push(AuthEntry {
            key: key.clone(),
            credentials: Credentials {
                username: username.to_owned(),
                password: Secret::new(password),
            },
        });
    }
    let helper_name = |key: &str, name: &str| {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            Err(err(format!(
                "{key}: `{name}` is not a credential helper name (docker-credential-<name> is run)"
            )))
        } else {
            Ok(name.to_owned())
        }
    };
    let mut helpers = BTreeMap::new();
    for (registry, name) in wire.cred_helpers {
        let name = helper_name(&format!("credHelpers.{registry}"), &name)?;
        helpers.insert(registry, name);
    }
    let store = match wire.creds_store.filter(|s| !s.is_empty()) {
        Some(name) => Some(helper_name("credsStore", &name)?),
        None => None,
    };
    Ok(AuthFile {
        entries: out,
        helpers,
        store,
    })
}

/// One `[[registry]]` table's say on plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsecureRule {
    /// `host`, `host/namespace`, or `*.domain`.
    pub prefix: String,
    /// Whether matching references are reached over plain HTTP.
    pub insecure: bool,
}

/// Which registries are reached over plain HTTP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsecureRules {
    rules: Vec<InsecureRule>,
}

impl InsecureRules {
    /// Adds rules; later rules with the same prefix replace earlier ones (drop-in
    /// files override the main file).
    pub fn extend(&mut self, rules: impl IntoIterator<Item = InsecureRule>) {
        for rule in rules {
            self.rules.retain(|r| r.prefix != rule.prefix);
            self.rules.push(rule);
        }
    }

    /// Marks a whole host (`host` or `host:port`) insecure.
    pub fn add_host(&mut self, host: &str) {
        self.extend([InsecureRule {
            prefix: host.to_owned(),
            insecure: true,
        }]);
    }

    /// Whether `registry/repository` is reached over plain HTTP: the most specific
    /// matching rule decides (as Podman's longest-prefix match); a wildcard
    /// `*.example.com` matches hosts under that domain.
    pub fn is_insecure(&self, registry: &str, repository: &str) -> bool {
        let full = format!("{registry}/{repository}");
        let mut best: Option<(usize, bool)> = None;
        for rule in &self.rules {
            let score = if let Some(domain) = rule.prefix.strip_prefix("*.") {
                let host = registry.split(':').next().unwrap_or(registry);
                (host.len() > domain.len()
                    && host.ends_with(domain)
                    && host[..host.len() - domain.len()].ends_with('.'))
                .then_some(1)
            } else if full == rule.prefix || full.starts_with(&format!("{}/", rule.prefix)) {
                Some(rule.prefix.len() + 2)
            } else {
                None
            };
            if let Some(score) = score
                && best.is_none_or(|(b, _)| score > b)
            {
                best = Some((score, rule.insecure));
            }
        }
        best.is_some_and(|(_, insecure)| insecure)
    }
}

#[derive(Deserialize)]
struct RegistriesConfWire {
    #[serde(default)]
    registry: Vec<RegistryTableWire>,
    #[serde(default)]
    registries: Option<V1Wire>,
}

#[derive(Deserialize)]
struct RegistryTableWire {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    insecure: Option<bool>,
}

#[derive(Deserialize)]
struct V1Wire {
    #[serde(default)]
    insecure: Option<V1List>,
}

#[derive(Deserialize)]
struct V1List {
    #[serde(default)]
    registries: Vec<String>,
}

/// Reads the insecure-registry rules of a `registries.conf` (version 2
/// `[[registry]]` tables, and version 1 `[registries.insecure]`). Other keys are
/// Podman's business and are ignored.
pub fn parse_registries_conf(path: &Path, text: &str) -> Result<Vec<InsecureRule>, RegistryError> {
    let wire: RegistriesConfWire = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(0);
        RegistryError::RegistriesConf {
            path: path.to_owned(),
            line,
            message: e.message().to_owned(),
        }
    })?;
    let mut rules = Vec::new();
    for (i, table) in wire.registry.iter().enumerate() {
        let Some(insecure) = table.insecure else {
            continue;
        };
        let prefix = table
            .prefix
            .as_deref()
            .or(table.location.as_deref())
            .map(|p| p.trim().trim_end_matches('/'))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| RegistryError::RegistriesConf {
                path: path.to_owned(),
                line: 0,
                message: format!("registry[{i}]: `insecure` set without `location` or `prefix`"),
            })?;
        rules.push(InsecureRule {
            prefix: prefix.to_owned(),
            insecure,
        });
    }
    if let Some(list) = wire.registries.and_then(|r| r.insecure) {
        rules.extend(list.registries.into_iter().map(|r| InsecureRule {
            prefix: r,
            insecure: true,
        }));
    }
    Ok(rules)
}

/// Everything the registry client is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Timeout of every request (connect to last body byte).
    pub timeout: Duration,
    /// Plain-HTTP registries.
    pub insecure: InsecureRules,
    /// Credentials.
    pub auth: AuthStore,
    /// Directories holding `<host[:port]>/*.crt` CA certificates, as Podman's
    /// `certs.d`, first first.
    pub certs_dirs: Vec<PathBuf>,
    /// Requests in flight to one registry at most.
    pub max_concurrent_per_registry: usize,
    /// Tags asked for per page of a tag listing (`n`); `None` lets the registry
    /// choose, as Podman does.
    pub tag_page_size: Option<usize>,
    /// How many times a `429 Too Many Requests` is retried.
    pub max_retries: u32,
    /// The longest wait for a `Retry-After`; a registry asking for longer fails
    /// this check instead.
    pub max_retry_wait: Duration,
    /// The budget of one repository's tag listing, all pages together.
    pub list_budget: ListBudget,
    /// The `verify:` rules with their keys read.
    pub verify: Vec<super::keys::VerifyKey>,
    /// The vulnerability gate (`scan:`), run by the pin pass.
    pub scan: crate::config::ScanConfig,
}

/// The budget of one tag listing (`registries.list_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListBudget {
    /// Tags at most.
    pub max_tags: u64,
    /// Bytes of tag-list bodies at most.
    pub max_bytes: u64,
    /// From the first request to the last page.
    pub timeout: Duration,
}

impl Default for ListBudget {
    fn default() -> Self {
        Self {
            max_tags: 100_000,
            max_bytes: 64 << 20,
            timeout: Duration::from_secs(60),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            insecure: InsecureRules::default(),
            auth: AuthStore::default(),
            certs_dirs: Vec::new(),
            max_concurrent_per_registry: 4,
            tag_page_size: None,
            max_retries: 3,
            max_retry_wait: Duration::from_secs(60),
            list_budget: ListBudget::default(),
            verify: Vec::new(),
            scan: crate::config::ScanConfig::default(),
        }
    }
}

impl Settings {
    /// Adds the `verify:` rules, reading their public keys.
    pub fn with_verify(
        mut self,
        rules: &[crate::config::VerifyRule],
    ) -> Result<Self, RegistryError> {
        self.verify = super::keys::load_keys(rules)?;
        Ok(self)
    }

    /// Adds the vulnerability gate's configuration (`scan:`).
    pub fn with_scan(mut self, scan: &crate::config::ScanConfig) -> Self {
        self.scan = scan.clone();
        self
    }

    /// Reads the configured (or Podman's default) `registries.conf`, auth files and
    /// `certs.d` locations. A named `registries.conf` that is missing is an error;
    /// a named auth file that is missing means no credentials (as Podman, before
    /// the first `podman login`); default locations that are missing are skipped.
    pub fn load(config: &RegistriesConfig, env: &Env) -> Result<Self, RegistryError> {
        let mut settings = Settings {
            timeout: config.timeout.0,
            list_budget: ListBudget {
                max_tags: config.list_max_tags,
                max_bytes: config.list_max_bytes,
                timeout: config.list_timeout.0,
            },
            ..Settings::default()
        };
        let home = env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let config_home = env
            .get("XDG_CONFIG_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")));

        // registries.conf
        let conf_files: Vec<PathBuf> = match &config.registries_conf {
            Some(path) => vec![path.clone()],
            None => {
                let user = config_home
                    .as_ref()
                    .map(|c| c.join("containers/registries.conf"))
                    .filter(|p| p.is_file());
                let main = user.unwrap_or_else(|| PathBuf::from("/etc/containers/registries.conf"));
                let mut files = Vec::new();
                if main.is_file() {
                    files.push(main);
                }
                let mut dropin_dirs = vec![PathBuf::from("/etc/containers/registries.conf.d")];
                if let Some(c) = &config_home {
                    dropin_dirs.push(c.join("containers/registries.conf.d"));
                }
                for dir in dropin_dirs {
                    files.extend(conf_files_in(&dir));
                }
                files
            }
        };
        for path in conf_files {
            let text = read(&path)?;
            settings
                .insecure
                .extend(parse_registries_conf(&path, &text)?);
        }
        for host in &config.insecure {
            settings.insecure.add_host(host.as_str());
        }

        // auth files
        match &config.auth_file {
            // As Podman: a named auth file that does not exist yet (no `podman
            // login` so far) means no credentials.
            Some(path) if !path.exists() => {
                tracing::debug!(path = %path.display(), "auth file does not exist; no credentials");
            }
            Some(path) => {
                let text = read(path)?;
                settings.auth.push_file(path.clone(), &text)?;
            }
            None => {
                let mut candidates = Vec::new();
                if let Some(run) = env.get("XDG_RUNTIME_DIR").filter(|r| !r.is_empty()) {
                    candidates.push(Path::new(run).join("containers/auth.json"));
                }
                if let Some(c) = &config_home {
                    candidates.push(c.join("containers/auth.json"));
                }
                if let Some(h) = &home {
                    candidates.push(h.join(".docker/config.json"));
                }
                for path in candidates.into_iter().filter(|p| p.is_file()) {
                    let text = read(&path)?;
                    settings.auth.push_file(path, &text)?;
                }
            }
        }

        // certs.d
        if let Some(c) = &config_home {
            settings.certs_dirs.push(c.join("containers/certs.d"));
        }
        settings
            .certs_dirs
            .push(PathBuf::from("/etc/containers/certs.d"));
        settings
            .certs_dirs
            .push(PathBuf::from("/etc/docker/certs.d"));
        Ok(settings)
    }

    /// The PEM CA certificates trusted for `host` (`*.crt` in its `certs.d`
    /// folders), with the file each came from.
    pub fn ca_certificates(&self, host: &str) -> Result<Vec<(PathBuf, Vec<u8>)>, RegistryError> {
        let mut out = Vec::new();
        for dir in &self.certs_dirs {
            let dir = dir.join(host);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "crt"))
                .collect();
            files.sort();
            for path in files {
                let bytes = std::fs::read(&path).map_err(|source| RegistryError::Read {
                    path: path.clone(),
                    source: source.into(),
                })?;
                out.push((path, bytes));
            }
        }
        Ok(out)
    }
}

fn conf_files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "conf") && p.is_file())
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> Result<String, RegistryError> {
    std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
        path: path.to_owned(),
        source: source.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn credential_helpers_come_before_auths_and_the_store_after() {
        let mut store = AuthStore::default();
        let first = format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}, "quay.io": {{"auth": "{}"}}}},
                "credHelpers": {{"ghcr.io": "gh", "https://index.docker.io/v1/": "hub"}}}}"#,
            b64("ghcr:g"),
            b64("quay:q")
        );
        store.push_file("/a.json".into(), &first).unwrap();
        let docker = r#"{"auths": {"reg.example": {}}, "credsStore": "pass"}"#;
        store.push_file("/b.json".into(), docker).unwrap();

        let helper = |helper: &'static str, server: &str| {
            Some(Found::Helper {
                helper,
                server: server.to_owned(),
            })
        };
        assert_eq!(store.find("ghcr.io", "o/a"), helper("gh", "ghcr.io"));
        assert_eq!(
            store.find("docker.io", "library/nginx"),
            helper("hub", "https://index.docker.io/v1/")
        );
        assert!(matches!(
            store.find("quay.io", "a/b"),
            Some(Found::Stored(c)) if c.username == "quay"
        ));
        assert_eq!(
            store.find("reg.example", "x"),
            helper("pass", "reg.example")
        );

        let bad = r#"{"credHelpers": {"h": "../../bin/sh"}}"#;
        let err = AuthStore::default()
            .push_file("/c.json".into(), bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/c.json") && err.contains("credHelpers.h"),
            "{err}"
        );
    }

    #[test]
    fn auth_file_lookup_follows_podman_rules() {
        let mut store = AuthStore::default();
        let first = format!(
            r#"{{"auths": {{
                "ghcr.io/org/app": {{"auth": "{}"}},
                "ghcr.io/org": {{"auth": "{}"}},
                "quay.io": {{"auth": "{}"}},
                "helper.example": {{}}
            }}}}"#,
            b64("repo:r"),
            b64("ns:n"),
            b64("quay:q")
        );
        store.push_file("/a.json".into(), &first).unwrap();
        let docker = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}},
                 "ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64("hub:h:with:colons"),
            b64("ghcr:g")
        );
        store.push_file("/b.json".into(), &docker).unwrap();

        let user = |reg, repo| store.lookup(reg, repo).map(|c| c.username.clone());
        assert_eq!(user("ghcr.io", "org/app").as_deref(), Some("repo"));
        assert_eq!(user("ghcr.io", "org/other").as_deref(), Some("ns"));
        assert_eq!(user("ghcr.io", "else/x").as_deref(), Some("ghcr"));
        assert_eq!(user("quay.io", "a/b").as_deref(), Some("quay"));
        let hub = store.lookup("docker.io", "library/nginx").unwrap();
        assert_eq!(hub.username, "hub");
        assert_eq!(hub.password.expose(), "h:with:colons");
        assert_eq!(user("helper.example", "x"), None);
        assert_eq!(user("example.org", "x"), None);
    }

    #[test]
    fn auth_file_errors_never_show_values() {
        let bad = r#"{"auths": {"h": {"auth": "c2VjcmV0"}}}"#; // "secret", no colon
        let e = parse_auth_file(Path::new("/x/auth.json"), bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/x/auth.json") && e.contains("auths.h.auth"),
            "{e}"
        );
        assert!(!e.contains("secret") && !e.contains("c2VjcmV0"), "{e}");
        let e = parse_auth_file(
            Path::new("/x/auth.json"),
            r#"{"auths": {"h": {"auth": "!!"}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not base64") && !e.contains("!!"), "{e}");
        let e = parse_auth_file(Path::new("/x/a.json"), "{\"auths\": [\"hunter2\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && !e.contains("hunter2"), "{e}");
        assert!(
            parse_auth_file(Path::new("/x"), "")
                .unwrap()
                .entries
                .is_empty()
        );
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let c = Credentials {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn registries_conf_v2_and_v1() {
        let text = r#"
unqualified-search-registries = ["docker.io"]

[[registry]]
location = "127.0.0.1:5000"
insecure = true

[[registry]]
prefix = "example.com/secure"
location = "example.com/secure"
insecure = false

[[registry]]
location = "example.com"
insecure = true

[[registry]]
location = "*.lan"
insecure = true

[[registry]]
location = "ghcr.io"
blocked = false

[registries.insecure]
registries = ["old:5000"]
"#;
        let mut rules = InsecureRules::default();
        rules.extend(parse_registries_conf(Path::new("/r.conf"), text).unwrap());
        assert!(rules.is_insecure("127.0.0.1:5000", "magos/semver"));
        assert!(!rules.is_insecure("127.0.0.1:5001", "magos/semver"));
        assert!(rules.is_insecure("example.com", "other/app"));
        assert!(!rules.is_insecure("example.com", "secure/app"));
        assert!(!rules.is_insecure("example.community", "x/app"));
        assert!(rules.is_insecure("box.lan", "a"));
        assert!(rules.is_insecure("box.lan:8080", "a"));
        assert!(!rules.is_insecure("lan", "a"));
        assert!(!rules.is_insecure("ghcr.io", "a/b"));
        assert!(rules.is_insecure("old:5000", "a"));
        rules.add_host("ghcr.io");
        assert!(rules.is_insecure("ghcr.io", "a/b"));
    }

    #[test]
    fn registries_conf_errors_name_file_and_line() {
        let e = parse_registries_conf(Path::new("/etc/r.conf"), "[[registry]]\nlocation = \n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/r.conf:2:"), "{e}");
        let e = parse_registries_conf(Path::new("/etc/r.conf"), "[[registry]]\ninsecure = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("registry[0]"), "{e}");
        let e = parse_registries_conf(Path::new("/r"), "[[registry]]\ninsecure = \"yes\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/r:"), "{e}");
    }

    #[test]
    fn load_reads_podman_default_locations_from_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let run = dir.path().join("run");
        std::fs::create_dir_all(home.join(".config/containers/certs.d/h:1")).unwrap();
        std::fs::create_dir_all(run.join("containers")).unwrap();
        std::fs::create_dir_all(home.join(".docker")).unwrap();
        std::fs::write(
            home.join(".config/containers/registries.conf"),
            "[[registry]]\nlocation = \"h:1\"\ninsecure = true\n",
        )
        .unwrap();
        std::fs::write(
            run.join("containers/auth.json"),
            format!(r#"{{"auths": {{"h:1": {{"auth": "{}"}}}}}}"#, b64("run:1")),
        )
        .unwrap();
        std::fs::write(
            home.join(".docker/config.json"),
            format!(
                r#"{{"auths": {{"h:1": {{"auth": "{}"}}, "d:2": {{"auth": "{}"}}}}}}"#,
                b64("docker:1"),
                b64("docker:2")
            ),
        )
        .unwrap();
        std::fs::write(home.join(".config/containers/certs.d/h:1/ca.crt"), "PEM").unwrap();
        let env: Env = [
            ("HOME".to_owned(), home.display().to_string()),
            ("XDG_RUNTIME_DIR".to_owned(), run.display().to_string()),
        ]
        .into();
        let s = Settings::load(&RegistriesConfig::default(), &env).unwrap();
        assert!(s.insecure.is_insecure("h:1", "x"));
        assert_eq!(s.auth.lookup("h:1", "x").unwrap().username, "run");
        assert_eq!(s.auth.lookup("d:2", "x").unwrap().username, "docker");
        assert_eq!(s.ca_certificates("h:1").unwrap().len(), 1);
        assert_eq!(s.timeout, Duration::from_secs(30));

        let config = RegistriesConfig {
            auth_file: Some(dir.path().join("missing.json")),
            ..RegistriesConfig::default()
        };
        let s = Settings::load(&config, &env).unwrap();
        assert!(
            s.auth.lookup("h:1", "x").is_none(),
            "only the named file counts"
        );
        let config = RegistriesConfig {
            registries_conf: Some(dir.path().join("missing.conf")),
            ..RegistriesConfig::default()
        };
        let e = Settings::load(&config, &env).unwrap_err().to_string();
        assert!(e.contains("missing.conf"), "{e}");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{").unwrap();
        let config = RegistriesConfig {
            auth_file: Some(bad),
            ..RegistriesConfig::default()
        };
        let e = Settings::load(&config, &env).unwrap_err().to_string();
        assert!(e.contains("bad.json") && e.contains("line 1"), "{e}");
    }
}
