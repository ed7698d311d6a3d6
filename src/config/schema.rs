//! The configuration schema. Every key is documented here and in
//! `configs/magos.yaml`; a test keeps the two in agreement.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The whole configuration. Unknown keys are refused at every level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The GitOps repository.
    pub repo: RepoConfig,
    /// The container runtime: `podman`, `podman-compose` or `quadlet`.
    pub runtime: Runtime,
    /// How to reach Podman.
    pub podman: PodmanConfig,
    /// How stacks are applied.
    pub apply: ApplyConfig,
    /// The rootless network doctor.
    pub doctor: DoctorConfig,
    /// Soak and rollback of changed services.
    pub rollback: RollbackConfig,
    /// Container registries.
    pub registries: RegistriesConfig,
    /// Signature verification: cosign public keys and the images they cover.
    pub verify: Vec<VerifyRule>,
    /// `write`: Podman's signature policy (`~/.config/containers/policy.json`
    /// and `registries.d`) is made to require the `verify:` keys too; `off`:
    /// only Magos checks them.
    pub verify_policy: VerifyPolicy,
    /// The vulnerability gate: a scanner run on every candidate.
    pub scan: ScanConfig,
    /// SOPS secrets.
    pub secrets: SecretsConfig,
    /// GitHub App credentials, for pushing and pull requests.
    pub github: GithubConfig,
    /// Where Magos keeps its clone and state; default `$XDG_STATE_HOME/magos`.
    pub state_dir: Option<PathBuf>,
    /// Logging.
    pub log: LogConfig,
    /// The daemon (`magos run`).
    pub daemon: DaemonConfig,
    /// Where events (pins, applies, failures) are sent: one entry per sink.
    pub notify: Vec<NotifySink>,
    /// A condition that lasts (a failing pass, a drifted service) is sent
    /// once, then again after this long while it lasts.
    pub notify_repeat: NotifyRepeat,
}

/// `notify_repeat`: how long a lasting state stays quiet before it is sent
/// again; 24 hours unless set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyRepeat(pub Duration);

impl Default for NotifyRepeat {
    fn default() -> Self {
        Self(Duration::from_secs(24 * 3600))
    }
}

impl NotifyRepeat {
    pub fn parse(s: &str) -> Result<Self, String> {
        HumanDuration::parse(s).map(|d| Self(d.0))
    }
}

impl Serialize for NotifyRepeat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HumanDuration(self.0).serialize(s)
    }
}

/// One `notify:` entry: where events go and which ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawSink")]
pub struct NotifySink {
    /// The kind of receiver, which decides the request's shape.
    pub kind: SinkKind,
    /// Where the request goes (never shown whole: it may hold a token).
    pub url: NotifyUrl,
    /// The receiver's token (ntfy and webhook: `Authorization: Bearer`;
    /// gotify: `X-Gotify-Key`; apprise: the Apprise URLs to notify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The kinds of event sent; default every kind but `applied`.
    pub events: Vec<crate::core::event::EventKind>,
    /// Webhook only: the key of the `X-Magos-Signature-256` HMAC-SHA256 of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// The time limit of one attempt (three attempts at most).
    pub timeout: HumanDuration,
}

/// A `notify:` entry as written, checked into a [`NotifySink`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    kind: SinkKind,
    url: NotifyUrl,
    #[serde(default)]
    token: Option<Secret>,
    #[serde(default = "NotifySink::default_events")]
    events: Vec<crate::core::event::EventKind>,
    #[serde(default)]
    secret: Option<Secret>,
    #[serde(default = "NotifySink::default_timeout")]
    timeout: HumanDuration,
}

impl TryFrom<RawSink> for NotifySink {
    type Error = String;

    fn try_from(raw: RawSink) -> Result<Self, String> {
        if raw.secret.is_some() && raw.kind != SinkKind::Webhook {
            return Err(format!(
                "`secret` signs `webhook` requests only; remove it from this `{}` sink (its credential goes in `token`)",
                raw.kind
            ));
        }
        if [&raw.token, &raw.secret]
            .into_iter()
            .flatten()
            .any(|s| s.expose().is_empty())
        {
            return Err("`token` and `secret` must not be empty".to_owned());
        }
        Ok(Self {
            kind: raw.kind,
            url: raw.url,
            token: raw.token,
            events: raw.events,
            secret: raw.secret,
            timeout: raw.timeout,
        })
    }
}

impl NotifySink {
    /// Ten seconds.
    pub fn default_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(10))
    }

    /// Every kind of event but `applied` (which a busy repository sends often).
    pub fn default_events() -> Vec<crate::core::event::EventKind> {
        use crate::core::event::EventKind;
        EventKind::ALL
            .into_iter()
            .filter(|k| *k != EventKind::Applied)
            .collect()
    }
}

pub use crate::core::notify::SinkKind;

/// An `http://` or `https://` URL of a notification receiver. It may carry a
/// token (a Discord webhook's path, a `?token=` query, `user:password@`), so
/// only its scheme and host are ever shown.
#[derive(Clone, PartialEq, Eq)]
pub struct NotifyUrl(String);

impl NotifyUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let Some((scheme, rest)) = t.split_once("://") else {
            return Err("a notification URL starts with http:// or https://".to_owned());
        };
        if !matches!(scheme, "http" | "https") {
            return Err(format!(
                "`{scheme}://`: a notification URL starts with http:// or https://"
            ));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        if host.is_empty() || t.contains(char::is_whitespace) {
            // Never echo what might hold a token.
            return Err("the notification URL has no host or holds white space".to_owned());
        }
        Ok(Self(t.to_owned()))
    }

    /// The URL as given, credentials included: only for the request itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Scheme and host (and port), then `/…` when a path or query follows:
    /// what logs and errors may show.
    pub fn redacted(&self) -> String {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", &self.0));
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let host = rest[..end].rsplit('@').next().unwrap_or("");
        let tail = rest[end..].trim_start_matches('/');
        if tail.is_empty() {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}/…")
        }
    }
}

impl fmt::Debug for NotifyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for NotifyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for NotifyUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// One `verify:` entry: a cosign public key (PEM, ECDSA P-256) that must have
/// signed every digest Magos pins for the images it covers: those whose
/// repository matches `match` (`*` matches any run of characters), and those
/// whose annotation names it (`"verify": "NAME"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRule {
    /// The name an annotation refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The repositories covered, e.g. `ghcr.io/me/*`.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The PEM public key file (`cosign.pub`).
    pub key: PathBuf,
}

/// `verify_policy`: whether Magos writes its `verify:` rules into Podman's
/// signature policy, so that Podman refuses at pull what Magos would not pin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyPolicy {
    /// Podman's policy is left alone.
    #[default]
    Off,
    /// `sigstoreSigned` requirements for the rules' repositories are written
    /// into the user's `policy.json`, and `registries.d/magos.yaml` makes
    /// Podman read their cosign signatures.
    Write,
}

impl VerifyPolicy {
    /// `off` or `write`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "off" => Ok(VerifyPolicy::Off),
            "write" => Ok(VerifyPolicy::Write),
            _ => Err(format!("`{s}` is not `off` or `write`")),
        }
    }
}

/// `scan:`, the vulnerability gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// The scanner and its arguments; the image reference (`repo@sha256:…`)
    /// is added last. Empty: no gate.
    pub command: Vec<String>,
    /// What blocks a candidate.
    pub block: crate::core::scan::Block,
    /// When the scanner fails or runs out of time: `block` or `allow`.
    pub on_error: ScanOnError,
    /// The time limit of one scan.
    pub timeout: HumanDuration,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            block: crate::core::scan::Block::default(),
            on_error: ScanOnError::default(),
            timeout: HumanDuration(Duration::from_secs(300)),
        }
    }
}

/// `scan.on_error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanOnError {
    /// A candidate that cannot be scanned is not pinned.
    #[default]
    Block,
    /// A candidate that cannot be scanned is pinned.
    Allow,
}

/// `daemon:`, the settings of `magos run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Time between reconcile passes.
    pub interval: HumanDuration,
    /// How far each interval may move at random, as a percentage (`10%`), so that
    /// many hosts following one repository do not ask registries in step.
    pub jitter: Percent,
    /// Address of the HTTP endpoint (health, metrics, webhooks); `null` turns it
    /// off. Keep it on 127.0.0.1 unless a reverse proxy fronts it.
    pub listen: Option<std::net::SocketAddr>,
    /// Secret of git forge webhooks (`X-Hub-Signature-256`); without it forge
    /// webhooks are refused.
    pub webhook_secret: Option<Secret>,
    /// Secret of registry push notifications; without it they are refused.
    pub registry_webhook_secret: Option<Secret>,
    /// Monitor only: check and report, change nothing.
    pub observe: bool,
    /// A step that makes no progress for this long means the loop is stuck:
    /// `/healthz` fails and the systemd watchdog is no longer petted.
    pub stuck_after: HumanDuration,
    /// Re-applies a crashing container gets within `restart_window` before it is
    /// reported as crash-looping instead.
    pub restart_limit: u32,
    /// The window of `restart_limit`.
    pub restart_window: HumanDuration,
    /// The HTTP endpoint's limits.
    pub http: HttpLimits,
}

/// `daemon.http:`: what one client may hold of the HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// A request's headers must arrive within this time.
    pub header_timeout: HumanDuration,
    /// A connection with no request under way is closed after this time.
    pub idle_timeout: HumanDuration,
    /// Connections open at once; a new one beyond it closes the oldest idle
    /// connection (or is refused when every one is busy).
    pub max_connections: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: HumanDuration(Duration::from_secs(10)),
            idle_timeout: HumanDuration(Duration::from_secs(60)),
            max_connections: 256,
        }
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            interval: HumanDuration(Duration::from_secs(300)),
            jitter: Percent(10),
            listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9380))),
            webhook_secret: None,
            registry_webhook_secret: None,
            observe: false,
            stuck_after: HumanDuration(Duration::from_secs(600)),
            restart_limit: 3,
            restart_window: HumanDuration(Duration::from_secs(600)),
            http: HttpLimits::default(),
        }
    }
}

/// A percentage from 0 to 50, written `10%` (or `10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percent(pub u8);

impl Percent {
    /// Reads `10%` or `10`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.trim().trim_end_matches('%').trim();
        match n.parse::<u8>() {
            Ok(v) if v <= 50 => Ok(Percent(v)),
            _ => Err(format!("`{s}` is not a percentage from 0% to 50%")),
        }
    }

    /// As a fraction (`10%` → 0.1).
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}%", self.0))
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        Percent::parse(&text).map_err(D::Error::custom)
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{s}` is not true or false")),
    }
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    if s.is_empty() {
        Err("the secret is empty".to_owned())
    } else {
        Ok(Secret::new(s))
    }
}

/// `repo:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoConfig {
    /// Git URL (`https://…`, `ssh://…`, `git@host:path`, `file://…`) or local path.
    pub url: Option<RepoUrl>,
    /// The branch Magos follows and writes to.
    pub branch: Branch,
    /// The commits Magos makes.
    pub commit: CommitConfig,
    /// Where `magos update` puts its commit: on the branch, or in pull requests.
    pub mode: RepoMode,
    /// In pull-request mode: one pull request per service, or one for all.
    pub pr_grouping: PrGrouping,
    /// The time limit of every git operation (clone, fetch, push, each `git`
    /// command); on expiry the `git` process group is killed.
    pub timeout: HumanDuration,
    /// For ssh remotes: the private key to log in with (the only one offered).
    pub ssh_key: Option<PathBuf>,
    /// For ssh remotes: the known hosts file the server's key must be in.
    pub known_hosts: Option<PathBuf>,
}

impl Default for RepoConfig {
    fn default() -> Self {
        Self {
            url: None,
            branch: Branch("main".to_owned()),
            commit: CommitConfig::default(),
            mode: RepoMode::default(),
            pr_grouping: PrGrouping::default(),
            timeout: HumanDuration(Duration::from_secs(300)),
            ssh_key: None,
            known_hosts: None,
        }
    }
}

/// `repo.mode`: how updates reach the repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepoMode {
    /// One commit pushed to the followed branch.
    #[default]
    Direct,
    /// Commits pushed to `magos/…` branches, each proposed as a GitHub pull
    /// request into the followed branch.
    PullRequest,
}

impl RepoMode {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "direct" => Ok(RepoMode::Direct),
            "pull_request" => Ok(RepoMode::PullRequest),
            _ => Err(format!(
                "unknown repo mode `{s}`; use `direct` or `pull_request`"
            )),
        }
    }
}

/// `repo.pr_grouping`: how pull-request mode groups updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrGrouping {
    /// One branch and pull request per service and version
    /// (`magos/<stack>-<service>-<version>`); a newer version closes the older
    /// one's pull request.
    #[default]
    PerService,
    /// One branch (`magos/updates`) and pull request for every update.
    Grouped,
}

impl PrGrouping {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "per_service" => Ok(PrGrouping::PerService),
            "grouped" => Ok(PrGrouping::Grouped),
            _ => Err(format!(
                "unknown pull-request grouping `{s}`; use `per_service` or `grouped`"
            )),
        }
    }
}

/// `repo.commit:`: the commit of an update run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommitConfig {
    /// The message template.
    pub message: CommitMessage,
    /// Author and committer name.
    pub author_name: SignatureText,
    /// Author and committer e-mail.
    pub author_email: SignatureText,
}

impl Default for CommitConfig {
    fn default() -> Self {
        Self {
            message: CommitMessage::default(),
            author_name: SignatureText("Magos Dominus".to_owned()),
            author_email: SignatureText("magos@localhost".to_owned()),
        }
    }
}

/// A commit message template with the placeholders in
/// [`CommitMessage::PLACEHOLDERS`]; `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitMessage(String);

impl Default for CommitMessage {
    fn default() -> Self {
        Self("Pin {count} image update(s): {services}\n\n{changes}".to_owned())
    }
}

impl CommitMessage {
    /// The placeholders a template may use.
    pub const PLACEHOLDERS: &'static [&'static str] = &["count", "services", "changes"];

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("the commit message template is empty".to_owned());
        }
        let mut rest = s;
        while let Some(i) = rest.find(['{', '}']) {
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                rest = &tail[2..];
            } else if tail.starts_with('}') {
                return Err("unmatched `}` in the commit message template (write `}}`)".to_owned());
            } else {
                let Some(end) = tail.find('}') else {
                    return Err(
                        "unclosed `{` in the commit message template (write `{{`)".to_owned()
                    );
                };
                let name = &tail[1..end];
                if !Self::PLACEHOLDERS.contains(&name) {
                    return Err(format!(
                        "unknown placeholder `{{{name}}}` in the commit message template; use {}",
                        Self::PLACEHOLDERS
                            .iter()
                            .map(|p| format!("{{{p}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                rest = &tail[end + 1..];
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A commit author's name or e-mail: one non-empty line without `<` or `>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureText(String);

impl SignatureText {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("the value is empty".to_owned());
        }
        if t.chars().any(|c| c == '<' || c == '>' || c.is_control()) {
            return Err(format!(
                "`{t}` cannot be used in a commit signature (no `<`, `>` or control characters)"
            ));
        }
        Ok(Self(t.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `podman:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PodmanConfig {
    /// The libpod API socket; default `$XDG_RUNTIME_DIR/podman/podman.sock`, then
    /// `/run/podman/podman.sock`.
    pub socket: Option<SocketPath>,
}

/// `apply:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApplyConfig {
    /// Remove containers of managed projects whose service or stack left the
    /// repository.
    pub prune: bool,
    /// This Magos's name, put on everything it creates (`io.magos.instance`), so
    /// several instances can share one Podman.
    pub instance: InstanceName,
    /// What the repository may ask of this host (the trust boundary).
    pub allow: AllowConfig,
    /// The compose profiles active on this host: a service with `profiles:`
    /// runs only when one of them is listed (`*`: every profile).
    pub profiles: Vec<ProfileName>,
}

impl Default for ApplyConfig {
    fn default() -> Self {
        Self {
            prune: true,
            instance: InstanceName("default".to_owned()),
            allow: AllowConfig::default(),
            profiles: Vec::new(),
        }
    }
}

/// `apply.allow:`: what a stack may ask of this host. Set by the host's owner,
/// never by the repository; a stack that asks for more fails alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllowConfig {
    /// `privileged: true`.
    pub privileged: bool,
    /// `network_mode`, `pid`, `ipc`, `userns_mode`, `uts`, `cgroup` set to
    /// `host` (or an `ns:` path).
    pub host_namespaces: bool,
    /// `devices`, `device_cgroup_rules`, `gpus`.
    pub devices: bool,
    /// Mounting the Podman or Docker socket (or a folder holding it).
    pub podman_socket: bool,
    /// Host path prefixes that binds (and `env_file`s, secret and config files,
    /// build contexts) may use outside the repository; `None`: any path.
    pub bind_paths: Option<Vec<BindPath>>,
    /// Stack files and relative paths that lead out of the repository through a
    /// symbolic link.
    pub symlinks_outside_repo: bool,
}

impl Default for AllowConfig {
    fn default() -> Self {
        let rules = crate::core::trust::Allow::default();
        Self {
            privileged: rules.privileged,
            host_namespaces: rules.host_namespaces,
            devices: rules.devices,
            podman_socket: rules.podman_socket,
            bind_paths: None,
            symlinks_outside_repo: rules.symlinks_outside_repo,
        }
    }
}

impl AllowConfig {
    /// The rules, for the core's decision.
    pub fn rules(&self) -> crate::core::trust::Allow {
        crate::core::trust::Allow {
            privileged: self.privileged,
            host_namespaces: self.host_namespaces,
            devices: self.devices,
            podman_socket: self.podman_socket,
            bind_paths: self
                .bind_paths
                .as_ref()
                .map(|v| v.iter().map(|p| p.0.clone()).collect()),
            symlinks_outside_repo: self.symlinks_outside_repo,
        }
    }

    /// Reads `MD_ALLOW_BIND_PATHS`: `any`, `none`, or absolute paths separated
    /// by `:`.
    fn parse_bind_paths(s: &str) -> Result<Option<Vec<BindPath>>, String> {
        match s.trim() {
            "any" => Ok(None),
            "none" => Ok(Some(Vec::new())),
            list => list
                .split(':')
                .filter(|p| !p.is_empty())
                .map(BindPath::parse)
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
        }
    }
}

/// A host path prefix for `apply.allow.bind_paths`: absolute, kept without a
/// trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BindPath(String);

impl BindPath {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') {
            return Err(format!(
                "`{s}` is not an absolute path (bind_paths are host path prefixes like /srv/media)"
            ));
        }
        if s.split('/').any(|c| c == "..") {
            return Err(format!("`{s}` contains `..`"));
        }
        let trimmed = s.trim_end_matches('/');
        Ok(Self(if trimmed.is_empty() {
            "/".to_owned()
        } else {
            trimmed.to_owned()
        }))
    }
}

/// `doctor:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoctorConfig {
    /// The daemon heals rootless network problems (dead pasta, dead forwards, a
    /// stale rootless netns) by restarting the containers or stacks concerned.
    pub heal: bool,
    /// Heals allowed per container, and for the rootless netns, per hour.
    pub max_heals_per_hour: u32,
}

impl Default for DoctorConfig {
    fn default() -> Self {
        Self {
            heal: true,
            max_heals_per_hour: 3,
        }
    }
}

/// `rollback:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollbackConfig {
    /// After the daemon changes a service (a new digest or a new definition)
    /// it watches it for `soak`; a service that fails (unhealthy, a crash
    /// loop, an exit) is rolled back on the host and its pin reverted in git.
    pub enabled: bool,
    /// How long a changed service is watched (`x-magos: {soak: …}` per
    /// service).
    pub soak: HumanDuration,
}

impl Default for RollbackConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            soak: HumanDuration(Duration::from_secs(120)),
        }
    }
}

/// An instance name: letters, digits, `.`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceName(String);

impl InstanceName {
    /// Checks a name.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` is not a valid instance name (letters, digits, `.`, `_`, `-`; at most 63)"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for InstanceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        InstanceName::parse(&s).map_err(D::Error::custom)
    }
}

/// `registries:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistriesConfig {
    /// Credentials file; default as Podman: `$REGISTRY_AUTH_FILE`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`,
    /// `~/.docker/config.json`.
    pub auth_file: Option<PathBuf>,
    /// `registries.conf` to read insecure registries from; default as Podman.
    pub registries_conf: Option<PathBuf>,
    /// Registries (`host` or `host:port`) reached over plain HTTP.
    pub insecure: Vec<RegistryHost>,
    /// Timeout of every registry request.
    pub timeout: HumanDuration,
    /// The budget of one repository's tag listing (all its pages): at most this
    /// many tags,
    pub list_max_tags: u64,
    /// this many bytes of tag-list bodies,
    pub list_max_bytes: u64,
    /// and this long from the first page to the last.
    pub list_timeout: HumanDuration,
}

impl Default for RegistriesConfig {
    fn default() -> Self {
        Self {
            auth_file: None,
            registries_conf: None,
            insecure: Vec::new(),
            timeout: HumanDuration(Duration::from_secs(30)),
            list_max_tags: 100_000,
            list_max_bytes: 64 * 1024 * 1024,
            list_timeout: HumanDuration(Duration::from_secs(60)),
        }
    }
}

/// `secrets:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// age identities file (sops's `SOPS_AGE_KEY_FILE`). As with sops, identities
    /// from `SOPS_AGE_KEY`, `SOPS_AGE_KEY_CMD` and `<config dir>/sops/age/keys.txt`
    /// (when it exists) are used as well.
    pub age_key_file: Option<PathBuf>,
}

/// `github:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GithubConfig {
    /// The App's id.
    pub app_id: Option<u64>,
    /// The App's private key: PEM text or a path to a PEM file.
    pub private_key: Option<PrivateKey>,
    /// The installation id; discovered from the repository when unset.
    pub installation_id: Option<u64>,
    /// The REST API's base URL (GitHub Enterprise Server: `https://HOST/api/v3`).
    pub api_url: ApiUrl,
}

impl Default for GithubConfig {
    fn default() -> Self {
        Self {
            app_id: None,
            private_key: None,
            installation_id: None,
            api_url: ApiUrl("https://api.github.com".to_owned()),
        }
    }
}

/// An HTTP(S) base URL without credentials, query or trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiUrl(String);

impl ApiUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_end_matches('/');
        let rest = t
            .strip_prefix("https://")
            .or_else(|| t.strip_prefix("http://"))
            .ok_or_else(|| format!("`{t}` is not an http(s) URL"))?;
        let host = rest.split('/').next().unwrap_or("");
        if host.contains('@') {
            // Never echo what might be a password.
            return Err("the API URL must not contain credentials".to_owned());
        }
        if host.is_empty() || t.contains(['?', '#']) || t.contains(char::is_whitespace) {
            return Err(format!(
                "`{t}` is not a base URL (write scheme, host and path only)"
            ));
        }
        Ok(Self(t.to_owned()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `log:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// The least severe level shown.
    pub level: LogLevel,
}

/// The container runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Runtime {
    /// Podman, through its libpod API (stacks with keys Magos does not apply
    /// natively go through podman-compose).
    #[default]
    Podman,
    /// Every stack through the compose CLI (`podman-compose`, or `podman
    /// compose`), on the same Podman socket.
    PodmanCompose,
    /// Every native stack as Quadlet units under
    /// `~/.config/containers/systemd/magos/<stack>/`, run by systemd.
    Quadlet,
    /// Docker Engine, through its API on `DOCKER_HOST` (stacks with keys Magos
    /// does not apply natively go through `docker compose`).
    Docker,
}

impl Runtime {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "podman" => Ok(Runtime::Podman),
            "podman-compose" | "compose" => Ok(Runtime::PodmanCompose),
            "quadlet" => Ok(Runtime::Quadlet),
            "docker" => Ok(Runtime::Docker),
            _ => Err(format!(
                "unknown runtime `{s}`; use `podman` (the libpod API), `podman-compose` (the compose CLI on Podman), `quadlet` (systemd units) or `docker` (the Docker Engine API)"
            )),
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Podman => "podman",
            Runtime::PodmanCompose => "podman-compose",
            Runtime::Quadlet => "quadlet",
            Runtime::Docker => "docker",
        })
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format `{s}`; use `text` or `json`")),
        }
    }
}

/// Log level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default.
    #[default]
    Info,
    /// Detail for troubleshooting.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "error" => Ok(LogLevel::Error),
            "warn" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(format!(
                "unknown log level `{s}`; use error, warn, info, debug or trace"
            )),
        }
    }

    /// The level as a `tracing` filter directive.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// A value that must never be shown: `Debug`, `Display` and `Serialize` print
/// `<redacted>`. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// A repository URL or path. Credentials embedded in a URL are kept but never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoUrl(String);

impl RepoUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the repository URL is empty".to_owned());
        }
        if s.chars().any(char::is_whitespace) {
            return Err("the repository URL contains white space".to_owned());
        }
        if let Some((scheme, _)) = s.split_once("://")
            && !matches!(scheme, "https" | "http" | "ssh" | "git" | "file")
        {
            return Err(format!(
                "unsupported URL scheme `{scheme}`; use https, http, ssh, git, file or a local path"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The URL as given, credentials included: only for the git edge.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password (or token) in it replaced by `<redacted>`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let shown = match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:<redacted>"),
                    // A lone userinfo over https is a token (`https://TOKEN@host`).
                    None if scheme.starts_with("http") => "<redacted>".to_owned(),
                    None => userinfo.to_owned(),
                };
                format!("{scheme}://{shown}@{}", &rest[at + 1..])
            }
            None => self.0.clone(),
        }
    }
}

impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for RepoUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// A git branch name, checked against git's rules for ref names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Branch(String);

impl Branch {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = s.is_empty()
            || s.starts_with('-')
            || s.starts_with('/')
            || s.ends_with('/')
            || s.ends_with('.')
            || s.ends_with(".lock")
            || s.contains("..")
            || s.contains("//")
            || s.contains("@{")
            || s.chars()
                .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c));
        if bad {
            return Err(format!("`{s}` is not a valid git branch name"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The branch name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The Podman socket: `unix:///path` or an absolute path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketPath(PathBuf);

impl SocketPath {
    /// Reads `unix:///path`, `unix:/path` or `/path`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let path = if let Some(rest) = s.strip_prefix("unix://") {
            rest
        } else if let Some(rest) = s.strip_prefix("unix:") {
            rest
        } else if let Some((scheme, _)) = s.split_once("://") {
            return Err(format!(
                "`{scheme}://` sockets are not supported; Magos talks to the local Podman socket (unix:///path)"
            ));
        } else {
            s
        };
        if !path.starts_with('/') {
            return Err(format!("`{s}` is not an absolute socket path"));
        }
        Ok(Self(PathBuf::from(path)))
    }

    /// The socket's path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

/// A compose profile name (`apply.profiles`): letters, digits, `_`, `.` and
/// `-`, starting with a letter or digit; or `*`, every profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileName(String);

impl ProfileName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "*" || crate::core::compose::valid_profile(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` is not a profile name (letters, digits, `_`, `.` and `-`, starting with a letter or digit; or `*`)"
            ))
        }
    }

    /// A list as `COMPOSE_PROFILES` writes it: names separated by commas
    /// (spaces around them ignored; empty: none).
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Self::parse)
            .collect()
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A registry `host` or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryHost(String);

impl RegistryHost {
    pub fn parse(s: &str) -> Result<Self, String> {
        let valid = !s.is_empty()
            && !s.contains("://")
            && !s.contains('/')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !valid {
            return Err(format!(
                "`{s}` is not a registry host (write `host` or `host:port`, no scheme or path)"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// `host` or `host:port`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A duration written as `30s`, `5m`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::core::duration::format(self.0))
    }
}

/// The GitHub App private key: PEM text (secret) or the path of a PEM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateKey {
    /// The key itself.
    Pem(Secret),
    /// A file holding the key.
    Path(PathBuf),
}

impl PrivateKey {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.starts_with("-----BEGIN") {
            if !t.contains("PRIVATE KEY-----") {
                return Err("the PEM text is not a private key".to_owned());
            }
            Ok(PrivateKey::Pem(Secret::new(t)))
        } else if t.is_empty() {
            Err("the private key is empty".to_owned())
        } else if t.contains('\n') {
            // Never echo what might be key material.
            Err("expected PEM text starting with `-----BEGIN` or a path to a PEM file".to_owned())
        } else {
            Ok(PrivateKey::Path(PathBuf::from(t)))
        }
    }
}

impl Serialize for PrivateKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PrivateKey::Pem(secret) => secret.serialize(s),
            PrivateKey::Path(p) => p.serialize(s),
        }
    }
}

impl Serialize for Runtime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Deserialize through a string parser, so a bad value reports its key and line.
macro_rules! deserialize_via_parse {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$ty>::parse(&s).map_err(D::Error::custom)
            }
        }
    )*};
}

deserialize_via_parse!(
    ApiUrl,
    NotifyUrl,
    NotifyRepeat,
    Runtime,
    RepoUrl,
    Branch,
    CommitMessage,
    SignatureText,
    SocketPath,
    BindPath,
    ProfileName,
    RegistryHost,
    PrivateKey
);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl HumanDuration {
    /// Reads `30s`, `5m`, `1h30m`.
    pub fn parse(s: &str) -> Result<Self, String> {
        crate::core::duration::parse(s)
            .map(HumanDuration)
            .map_err(|e| e.to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::core::duration::parse(&s)
            .map(HumanDuration)
            .map_err(D::Error::custom)
    }
}

fn parse_id(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("`{s}` is not a numeric id"))
}

fn non_empty_path(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        Err("the path is empty".to_owned())
    } else {
        Ok(PathBuf::from(s))
    }
}

impl Config {
    /// Every leaf key, in the order of the reference file.
    pub const KEYS: &'static [&'static str] = &[
        "repo.url",
        "repo.branch",
        "repo.commit.message",
        "repo.commit.author_name",
        "repo.commit.author_email",
        "repo.mode",
        "repo.pr_grouping",
        "repo.timeout",
        "repo.ssh_key",
        "repo.known_hosts",
        "runtime",
        "podman.socket",
        "apply.prune",
        "apply.instance",
        "apply.allow.privileged",
        "apply.allow.host_namespaces",
        "apply.allow.devices",
        "apply.allow.podman_socket",
        "apply.allow.bind_paths",
        "apply.allow.symlinks_outside_repo",
        "apply.profiles",
        "doctor.heal",
        "doctor.max_heals_per_hour",
        "rollback.enabled",
        "rollback.soak",
        "registries.auth_file",
        "registries.registries_conf",
        "registries.insecure",
        "registries.timeout",
        "registries.list_max_tags",
        "registries.list_max_bytes",
        "registries.list_timeout",
        "verify",
        "verify_policy",
        "scan.command",
        "scan.block",
        "scan.on_error",
        "scan.timeout",
        "secrets.age_key_file",
        "github.app_id",
        "github.private_key",
        "github.installation_id",
        "github.api_url",
        "state_dir",
        "log.format",
        "log.level",
        "daemon.interval",
        "daemon.jitter",
        "daemon.listen",
        "daemon.webhook_secret",
        "daemon.registry_webhook_secret",
        "daemon.observe",
        "daemon.stuck_after",
        "daemon.restart_limit",
        "daemon.restart_window",
        "daemon.http.header_timeout",
        "daemon.http.idle_timeout",
        "daemon.http.max_connections",
        "notify",
        "notify_repeat",
    ];

    /// Sets one key from a string (an environment variable, a `.env` line or a flag).
    /// The error never contains the value of a secret key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "repo.url" => self.repo.url = Some(RepoUrl::parse(value)?),
            "repo.branch" => self.repo.branch = Branch::parse(value)?,
            "repo.commit.message" => self.repo.commit.message = CommitMessage::parse(value)?,
            "repo.commit.author_name" => {
                self.repo.commit.author_name = SignatureText::parse(value)?
            }
            "repo.commit.author_email" => {
                self.repo.commit.author_email = SignatureText::parse(value)?
            }
            "repo.mode" => self.repo.mode = RepoMode::parse(value)?,
            "repo.pr_grouping" => self.repo.pr_grouping = PrGrouping::parse(value)?,
            "repo.timeout" => self.repo.timeout = HumanDuration::parse(value)?,
            "repo.ssh_key" => self.repo.ssh_key = Some(non_empty_path(value)?),
            "repo.known_hosts" => self.repo.known_hosts = Some(non_empty_path(value)?),
            "scan.timeout" => self.scan.timeout = HumanDuration::parse(value)?,
            "verify_policy" => self.verify_policy = VerifyPolicy::parse(value)?,
            "runtime" => self.runtime = Runtime::parse(value)?,
            "podman.socket" => self.podman.socket = Some(SocketPath::parse(value)?),
            "apply.prune" => {
                self.apply.prune = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("`{value}` is not `true` or `false`")),
                }
            }
            "apply.instance" => self.apply.instance = InstanceName::parse(value)?,
            "apply.allow.privileged" => self.apply.allow.privileged = parse_bool(value)?,
            "apply.allow.host_namespaces" => self.apply.allow.host_namespaces = parse_bool(value)?,
            "apply.allow.devices" => self.apply.allow.devices = parse_bool(value)?,
            "apply.allow.podman_socket" => self.apply.allow.podman_socket = parse_bool(value)?,
            "apply.allow.bind_paths" => {
                self.apply.allow.bind_paths = AllowConfig::parse_bind_paths(value)?
            }
            "apply.allow.symlinks_outside_repo" => {
                self.apply.allow.symlinks_outside_repo = parse_bool(value)?
            }
            "apply.profiles" => self.apply.profiles = ProfileName::parse_list(value)?,
            "registries.auth_file" => self.registries.auth_file = Some(non_empty_path(value)?),
            "registries.registries_conf" => {
                self.registries.registries_conf = Some(non_empty_path(value)?)
            }
            "secrets.age_key_file" => self.secrets.age_key_file = Some(non_empty_path(value)?),
            "github.app_id" => self.github.app_id = Some(parse_id(value)?),
            "github.private_key" => self.github.private_key = Some(PrivateKey::parse(value)?),
            "github.installation_id" => self.github.installation_id = Some(parse_id(value)?),
            "github.api_url" => self.github.api_url = ApiUrl::parse(value)?,
            "state_dir" => self.state_dir = Some(non_empty_path(value)?),
            "log.format" => self.log.format = LogFormat::parse(value)?,
            "log.level" => self.log.level = LogLevel::parse(value)?,
            "daemon.interval" => self.daemon.interval = HumanDuration::parse(value)?,
            "daemon.listen" => {
                self.daemon.listen = match value.trim() {
                    "off" | "none" | "null" => None,
                    v => Some(
                        v.parse()
                            .map_err(|_| format!("`{v}` is not an address like 127.0.0.1:9380"))?,
                    ),
                }
            }
            "daemon.webhook_secret" => self.daemon.webhook_secret = Some(parse_secret(value)?),
            "daemon.registry_webhook_secret" => {
                self.daemon.registry_webhook_secret = Some(parse_secret(value)?)
            }
            "daemon.observe" => self.daemon.observe = parse_bool(value)?,
            "notify_repeat" => self.notify_repeat = NotifyRepeat::parse(value)?,
            "rollback.enabled" => self.rollback.enabled = parse_bool(value)?,
            "rollback.soak" => self.rollback.soak = HumanDuration::parse(value)?,
            _ => return Err(format!("`{key}` cannot be set from a variable")),
        }
        Ok(())
    }
}
