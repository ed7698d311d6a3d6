//! Compose files: the typed model of the keys Magos understands, and the loading
//! of a stack (compose file + optional override, `.env` interpolation) into
//! services with their image, image line, policy and diagnostics.
//!
//! The YAML is read with `serde_yaml_ng` for reading only; the image lines, their
//! annotations and their rewrites are text-level (see `rewrite`). Keys of the
//! compose specification that Magos does not apply natively are not errors: they
//! are gathered per service as `unsupported`, as podlet does, so a report can
//! list them together (and the stack goes to the compose CLI).
//!
//! A stack whose files cannot be read as one compose project fails as a whole:
//! [`Loaded::error`] holds a [`LoadError`] (unreadable or invalid YAML, a file
//! too large or nested too deep, a file that is not a mapping or lists no
//! services, a service or top-level object of the wrong shape, a failed
//! `${VAR:?}` or other interpolation error, a key the compose specification does
//! not know). Mistakes that concern one image (annotations, references) stay
//! diagnostics of that service.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use super::annotation;
use super::diag::{Diagnostic, Pos};
use super::interpolate::{self, Vars};
use super::policy::Policy;
use super::reference::{Digest, ImageRef};
use super::rewrite::{self, ImageSite};

mod differences;
mod files;
pub mod run;
pub mod soak;

pub use differences::{TextDifference, TextDifferenceKind};
pub use files::{Extra, MAX_EXTRA_FILES, wanted_files};

/// The service keys Magos applies itself, with the run-time ones of
/// [`run::RUN_KEYS`]; any other service key is reported as unsupported (`x-`
/// extensions excepted).
pub const SERVICE_KEYS: &[&str] = &[
    "image",
    "container_name",
    "hostname",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "labels",
    "ports",
    "volumes",
    "networks",
    "restart",
    "healthcheck",
    "depends_on",
    "user",
    "working_dir",
    "stop_signal",
    "stop_grace_period",
    "network_mode",
    "cap_add",
    "cap_drop",
    "devices",
    "extra_hosts",
    "dns",
    "read_only",
    "tmpfs",
    "secrets",
    "configs",
    "mac_address",
];

/// The top-level keys Magos understands (`version` is obsolete and ignored).
pub const TOP_KEYS: &[&str] = &[
    "name", "services", "networks", "volumes", "secrets", "configs", "version",
];

/// Every top-level key of the compose specification (`schema/compose-spec.json`
/// of compose-spec/compose-spec at 170098ba07d9f53c383a41bfd4c5166b0a4529a6).
/// One of these that Magos does not apply routes the stack to the compose CLI;
/// any other key (`x-` extensions aside) fails the stack.
pub const SPEC_TOP_KEYS: &[&str] = &[
    "configs", "include", "models", "name", "networks", "secrets", "services", "version", "volumes",
];

/// Every service key of the compose specification (same source as
/// [`SPEC_TOP_KEYS`]).
pub const SPEC_SERVICE_KEYS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "pull_refresh_after",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

/// The largest compose, override or `.env` file read, in bytes.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

/// The deepest nesting of mappings and sequences a compose file may have. Real
/// files need a handful of levels; the YAML reader takes time quadratic in the
/// depth of flow collections (`[[[[…`), so deeper files are refused before it
/// sees them.
pub const MAX_NESTING: usize = 64;

/// A string or a list of strings (`command`, `entrypoint`, healthcheck `test`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// One string, split by a shell.
    Shell(String),
    /// Already split.
    Exec(Vec<String>),
}

/// A scalar written as a value in `environment:` or `labels:` maps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// Text.
    String(String),
    /// A number.
    Number(serde_yaml_ng::Number),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    /// The value as compose passes it on.
    pub fn as_text(&self) -> String {
        match self {
            Scalar::String(s) => s.clone(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// `KEY: value` map or `KEY=value` list (`environment`, `labels`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum KeyValues {
    /// `- KEY=value`
    List(Vec<String>),
    /// `KEY: value` (a null value: taken from the environment).
    Map(BTreeMap<String, Option<Scalar>>),
}

/// One or several strings (`env_file`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// A port: short syntax (`"127.0.0.1:8080:80/tcp"`, `80`) or long syntax.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Port {
    /// `"8080:80"`.
    Short(Scalar),
    /// `{target: 80, published: 8080, host_ip: …, protocol: tcp}`.
    Long {
        /// The container port.
        target: u16,
        /// The host port or range.
        published: Option<Scalar>,
        /// The host address.
        host_ip: Option<String>,
        /// `tcp` or `udp`.
        protocol: Option<String>,
    },
}

/// A volume: short syntax (`data:/var/lib/x:ro`) or long syntax.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Volume {
    /// `source:target[:mode]`.
    Short(String),
    /// `{type: volume|bind|tmpfs, source, target, read_only, bind, volume, tmpfs}`.
    Long {
        /// `volume`, `bind` or `tmpfs`.
        #[serde(rename = "type")]
        kind: String,
        /// The volume name or host path.
        source: Option<String>,
        /// The path in the container.
        target: String,
        /// Mounted read-only.
        #[serde(default)]
        read_only: bool,
        /// `bind:` options.
        #[serde(default)]
        bind: Option<Box<BindOptions>>,
        /// `volume:` options.
        #[serde(default)]
        volume: Option<Box<VolumeOptions>>,
        /// `tmpfs:` options.
        #[serde(default)]
        tmpfs: Option<Box<TmpfsOptions>>,
        /// `consistency:` (Docker Desktop only; ignored, as Podman has no such
        /// thing).
        #[serde(default)]
        consistency: Option<String>,
    },
}

/// The `bind:` options of a long-syntax mount.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct BindOptions {
    /// `rprivate`, `shared`, ….
    pub propagation: Option<String>,
    /// Create the host folder when nothing is there.
    pub create_host_path: Option<bool>,
    /// `z` or `Z`: relabel for SELinux.
    pub selinux: Option<String>,
}

/// The `volume:` options of a long-syntax mount.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct VolumeOptions {
    /// Do not copy the image's data into a new volume.
    pub nocopy: bool,
    /// Mount this sub-folder of the volume.
    pub subpath: Option<String>,
}

/// The `tmpfs:` options of a long-syntax mount.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct TmpfsOptions {
    /// The size (`64m` or a number of bytes).
    pub size: Option<Scalar>,
    /// The mode, octal (`1777`).
    pub mode: Option<Scalar>,
}

/// `networks:` of a service: a list of names or a map with options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ServiceNetworks {
    /// `- front`
    List(Vec<String>),
    /// `front: {aliases: [...]}`
    Map(BTreeMap<String, Option<NetworkAttachment>>),
}

/// A service's attachment to a network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct NetworkAttachment {
    /// Extra names on that network.
    pub aliases: Vec<String>,
    /// A fixed IPv4 address on that network.
    pub ipv4_address: Option<String>,
    /// A fixed IPv6 address on that network.
    pub ipv6_address: Option<String>,
    /// The interface's MAC address on that network.
    pub mac_address: Option<String>,
    /// podman-compose's older spelling of `mac_address`.
    #[serde(rename = "x-podman.mac_address")]
    pub x_podman_mac_address: Option<String>,
    /// The interface name in the container (podman-compose's extension).
    #[serde(rename = "x-podman.interface_name")]
    pub interface_name: Option<String>,
    /// Every other key (`priority`, `link_local_ips`, `driver_opts`, `gw_priority`, …).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `depends_on:` as a list or with conditions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DependsOn {
    /// `- db`
    List(Vec<String>),
    /// `db: {condition: service_healthy}`
    Map(BTreeMap<String, Dependency>),
}

/// One dependency with its condition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Dependency {
    /// `service_started` (default), `service_healthy`, `service_completed_successfully`.
    pub condition: Option<String>,
    /// `restart: true`: restart this service when the dependency is recreated.
    #[serde(default)]
    pub restart: bool,
}

/// `extra_hosts:` as `- host:ip` / `- host=ip` or `host: ip` (or a list of ips).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ExtraHosts {
    /// `- host:ip`
    List(Vec<String>),
    /// `host: ip` or `host: [ip, ip]`
    Map(BTreeMap<String, OneOrManyScalar>),
}

/// One scalar or a list of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrManyScalar {
    /// One.
    One(Scalar),
    /// Several.
    Many(Vec<Scalar>),
}

/// A service's use of a top-level secret or config: its name, or the long form.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FileRef {
    /// `- name`
    Short(String),
    /// `{source: name, target: path, uid, gid, mode, type}`
    Long {
        /// The top-level secret or config.
        source: String,
        /// Where it appears in the container.
        target: Option<String>,
        /// The owner of the file in the container.
        #[serde(default)]
        uid: Option<Scalar>,
        /// Its group.
        #[serde(default)]
        gid: Option<Scalar>,
        /// Its mode (octal digits, or the number YAML read).
        #[serde(default)]
        mode: Option<Scalar>,
        /// podman-compose's `type: env`: the secret as the variable `target`
        /// instead of a file.
        #[serde(default, rename = "type")]
        kind: Option<String>,
    },
}

/// A top-level `secrets:` or `configs:` entry. Only `file:` is applied.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct TopFile {
    /// The file, relative to the stack's folder.
    pub file: Option<String>,
    /// Secrets: a Podman secret that exists already (`podman secret create`).
    pub external: bool,
    /// Secrets: the Podman secret's name, when not the key.
    pub name: Option<String>,
    /// Secrets: the variable of Magos's environment holding the value.
    pub environment: Option<String>,
    /// Secrets: `z` or `Z`, relabel the mounted file (podman-compose's
    /// extension).
    #[serde(rename = "x-podman.relabel")]
    pub relabel: Option<String>,
    /// Every other key (`content`, …).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A top-level `networks:` or `volumes:` entry.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct TopObject {
    /// Created elsewhere: never created nor removed here.
    pub external: bool,
    /// The name Podman knows it by (instead of `<project>_<key>`).
    pub name: Option<String>,
    /// The driver.
    pub driver: Option<String>,
    /// Networks only: no outside access.
    pub internal: bool,
    /// Labels.
    pub labels: Option<KeyValues>,
    /// Driver options (volumes: the local driver's `type`, `o`, `device`).
    pub driver_opts: BTreeMap<String, Scalar>,
    /// Networks only: address management.
    pub ipam: Option<Ipam>,
    /// Networks only: IPv6 on.
    pub enable_ipv6: bool,
    /// Every other key (`attachable`, `x-podman.*`, …).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A network's `ipam:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct Ipam {
    /// The IPAM driver (`default` is Podman's own).
    pub driver: Option<String>,
    /// The address ranges.
    pub config: Vec<IpamConfig>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
}

/// One `ipam.config` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct IpamConfig {
    /// The CIDR.
    pub subnet: Option<String>,
    /// The gateway address.
    pub gateway: Option<String>,
    /// The range addresses are leased from (a CIDR inside the subnet).
    pub ip_range: Option<String>,
    /// Addresses the driver must not hand out, by host name.
    pub aux_addresses: BTreeMap<String, String>,
}

/// `healthcheck:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Healthcheck {
    /// The check (`["CMD", …]`, `["CMD-SHELL", "…"]` or a string).
    pub test: Option<Command>,
    /// Between checks (`30s`).
    pub interval: Option<String>,
    /// For one check.
    pub timeout: Option<String>,
    /// Grace period after start.
    pub start_period: Option<String>,
    /// Between checks during the start period.
    pub start_interval: Option<String>,
    /// Failures before unhealthy.
    pub retries: Option<u32>,
    /// Turns an image's check off.
    #[serde(default)]
    pub disable: bool,
}

/// A service as Magos reads it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Service {
    /// The image reference (after interpolation).
    pub image: Option<String>,
    /// The container name.
    pub container_name: Option<String>,
    /// The container host name.
    pub hostname: Option<String>,
    /// Overrides the image's command.
    pub command: Option<Command>,
    /// Overrides the image's entrypoint.
    pub entrypoint: Option<Command>,
    /// Environment variables.
    pub environment: Option<KeyValues>,
    /// Files of environment variables.
    pub env_file: Option<OneOrMany>,
    /// Container labels.
    pub labels: Option<KeyValues>,
    /// Published ports.
    pub ports: Vec<Port>,
    /// Mounts.
    pub volumes: Vec<Volume>,
    /// Networks.
    pub networks: Option<ServiceNetworks>,
    /// `no`, `always`, `on-failure[:n]`, `unless-stopped`.
    pub restart: Option<String>,
    /// Health check.
    pub healthcheck: Option<Healthcheck>,
    /// Start order.
    pub depends_on: Option<DependsOn>,
    /// The user to run as.
    pub user: Option<String>,
    /// The working directory.
    pub working_dir: Option<String>,
    /// The stop signal.
    pub stop_signal: Option<String>,
    /// How long to wait after the stop signal (`10s`).
    pub stop_grace_period: Option<String>,
    /// `bridge`, `host`, `none`, `pasta[:opts]`, `service:x`, `container:x`.
    pub network_mode: Option<String>,
    /// Capabilities added.
    pub cap_add: Vec<String>,
    /// Capabilities dropped.
    pub cap_drop: Vec<String>,
    /// Devices, `host[:container[:perms]]`.
    pub devices: Vec<String>,
    /// Extra `/etc/hosts` lines.
    pub extra_hosts: Option<ExtraHosts>,
    /// DNS servers.
    pub dns: Option<OneOrMany>,
    /// A read-only root filesystem.
    pub read_only: bool,
    /// tmpfs mounts (`/run` or `/run:size=64m`).
    pub tmpfs: Option<OneOrMany>,
    /// Top-level secrets mounted in `/run/secrets`.
    pub secrets: Vec<FileRef>,
    /// Top-level configs mounted in the container.
    pub configs: Vec<FileRef>,
    /// The run-time keys (resources, security, namespaces, logging, …).
    #[serde(flatten)]
    pub run: run::RunKeys,
    /// The MAC address of the first network's interface.
    pub mac_address: Option<String>,
    /// `build:`: the image is built from a context (see [`Build`]).
    pub build: Option<Build>,
    /// Every other key, kept so it can be reported as unsupported.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl Service {
    /// The keys Magos does not apply itself, sorted (`x-` extensions excluded);
    /// options of `build:` Podman's build endpoint does not take are
    /// `build.<key>`.
    pub fn unsupported(&self) -> Vec<String> {
        let build = match &self.build {
            Some(Build::Long(b)) => b
                .other
                .keys()
                .filter(|k| !k.starts_with("x-"))
                .map(|k| format!("build.{k}"))
                .collect(),
            _ => Vec::new(),
        };
        let mut keys: Vec<String> = self
            .other
            .keys()
            .filter(|k| !k.starts_with("x-"))
            .filter(|k| !self.shape_key_native(k))
            .cloned()
            .chain(build)
            .collect();
        keys.extend(self.run.unsupported());
        keys.sort();
        keys
    }
}

// The stack's shape: which services run (`profiles`) and how many containers
// each has (`scale`, `deploy.replicas`). Read from `Service::other`, applied by
// `core::shape`.

/// The `deploy:` keys of the stack's shape Magos applies (`mode` only as
/// `replicated`), beside the run-time ones (`run::DEPLOY_KEYS`); a `deploy:`
/// with any other key is reported as unsupported.
pub const NATIVE_DEPLOY_KEYS: &[&str] = &["mode", "replicas"];

impl Service {
    /// Whether `key` (of [`Service::other`]) is a shape key Magos applies.
    fn shape_key_native(&self, key: &str) -> bool {
        matches!(key, "profiles" | "scale")
    }

    /// `profiles:`: the profiles that enable the service (empty: always on).
    pub fn profiles(&self) -> Result<Vec<String>, String> {
        match self.other.get("profiles") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(p) if valid_profile(p) => Ok(p.clone()),
                    Value::String(p) => Err(format!(
                        "`profiles`: `{p}` is not a valid profile name (letters, digits, `_`, `.` and `-`, starting with a letter or digit)"
                    )),
                    _ => Err("`profiles` must be a list of names".to_owned()),
                })
                .collect(),
            Some(_) => Err("`profiles` must be a list of names".to_owned()),
        }
    }

    /// How many containers the service runs: `scale`, else `deploy.replicas`
    /// (both given: they must agree), else `None` (one).
    pub fn replicas(&self) -> Result<Option<u32>, String> {
        let read = |key: &str, v: Option<&Value>| -> Result<Option<u32>, String> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n <= MAX_REPLICAS)
                    .map(Some)
                    .ok_or_else(|| {
                        format!("`{key}` must be a whole number from 0 to {MAX_REPLICAS}")
                    }),
                Some(Value::String(t)) => t
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= MAX_REPLICAS)
                    .map(Some)
                    .ok_or_else(|| {
                        format!(
                            "`{key}` must be a whole number from 0 to {MAX_REPLICAS}, not `{t}`"
                        )
                    }),
                Some(_) => Err(format!("`{key}` must be a whole number")),
            }
        };
        let scale = read("scale", self.other.get("scale"))?;
        let deploy = read(
            "deploy.replicas",
            self.run
                .deploy
                .as_ref()
                .and_then(|d| d.other.get("replicas")),
        )?;
        match (scale, deploy) {
            (Some(a), Some(b)) if a != b => Err(format!(
                "`scale: {a}` and `deploy.replicas: {b}` disagree; keep one"
            )),
            (Some(n), _) | (None, Some(n)) => Ok(Some(n)),
            (None, None) => Ok(None),
        }
    }
}

/// The most containers one service may ask for.
pub const MAX_REPLICAS: u32 = 1000;

/// The compose specification's profile names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_profile(p: &str) -> bool {
    p.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `build:` of a service: a context folder, or the long form.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Build {
    /// `build: ./dir`
    Short(String),
    /// `build: {context: ./dir, dockerfile: …, args: …}`
    Long(Box<BuildOptions>),
}

/// The long form of `build:`: the options Podman's build endpoint takes. Any
/// other (`ssh`, `secrets`, `cache_from`, `additional_contexts`,
/// `dockerfile_inline`, …) is kept in `other` and routes the stack to the
/// compose CLI.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct BuildOptions {
    /// The context folder, relative to the stack's folder (default `.`).
    pub context: Option<String>,
    /// The Dockerfile, relative to the context.
    pub dockerfile: Option<String>,
    /// Build arguments (`--build-arg`).
    pub args: Option<KeyValues>,
    /// The stage to build.
    pub target: Option<String>,
    /// Labels of the image.
    pub labels: Option<KeyValues>,
    /// The network of `RUN` steps.
    pub network: Option<String>,
    /// Extra `/etc/hosts` lines of `RUN` steps.
    pub extra_hosts: Option<ExtraHosts>,
    /// More names for the image.
    pub tags: Vec<String>,
    /// Pull the base images even when present.
    pub pull: bool,
    /// Build without the layer cache.
    pub no_cache: bool,
    /// Every other option.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The text of a stack's files, as the caller read them.
#[derive(Debug, Clone)]
pub struct StackSource<'a> {
    /// The compose file: (path relative to the repository, text).
    pub compose: (&'a str, &'a str),
    /// The optional override file.
    pub override_file: Option<(&'a str, &'a str)>,
    /// The interpolation variables (the environment over the stack's `.env`).
    pub vars: &'a Vars,
}

/// A loaded stack.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// `name:` from the files, if any (after interpolation).
    pub name: Option<String>,
    /// Services in file order.
    pub services: Vec<LoadedService>,
    /// Top-level keys Magos does not apply.
    pub unsupported: Vec<String>,
    /// Top-level network names.
    pub networks: Vec<String>,
    /// Top-level volume names.
    pub volumes: Vec<String>,
    /// Top-level networks with their options, where they could be read.
    pub network_defs: BTreeMap<String, TopObject>,
    /// Top-level volumes with their options, where they could be read.
    pub volume_defs: BTreeMap<String, TopObject>,
    /// Top-level `secrets:`.
    pub secrets: BTreeMap<String, TopFile>,
    /// Top-level `configs:`.
    pub configs: BTreeMap<String, TopFile>,
    /// The top-level `x-podman:` block (podman-compose's settings), when given.
    pub x_podman: Option<Value>,
    /// `x-magos: {apply: …}`: how the stack asks to be applied (`native`,
    /// `compose`), when it says.
    pub apply_mode: Option<String>,
    /// `x-magos: {observe: true}`: the stack is checked and reported, never
    /// changed (no pins written, nothing applied).
    pub observe: bool,
    /// The file and position of each service's key, by service name.
    pub positions: BTreeMap<String, (String, Pos)>,
    /// The files taken in through `include:`, `extends.file` and
    /// `x-magos.files`, relative to the repository.
    pub files: Vec<String>,
    /// `x-magos: {files: […]}`: the files merged over the compose file, in
    /// order, relative to the repository.
    pub compose_files: Vec<String>,
    /// Everything wrong, located.
    pub diagnostics: Vec<Diagnostic>,
    /// The values of the variables that `environment:` entries name without
    /// one (`- TZ`, `TZ:`), from the interpolation variables (Magos's
    /// environment over the stack's `.env`), as compose resolves them; a name
    /// set in neither is absent.
    pub bare_env: Vars,
    /// Why the stack cannot be loaded at all, when it cannot: then nothing of it
    /// may be applied, and nothing of what runs for it may be removed.
    pub error: Option<LoadError>,
    /// Where the keys conversion reports on are written, by dotted path
    /// (`version`, `services.web.deploy`, `networks.front.ipam`): the keys Magos
    /// does not apply and those where it differs from podman-compose
    /// ([`NOTED_SERVICE_KEYS`]).
    pub key_positions: BTreeMap<String, (String, Pos)>,
    /// Where podman-compose reads an `environment:` or a label otherwise than
    /// Magos, as only the text before interpolation shows (`differences`).
    pub text_differences: Vec<TextDifference>,
}

/// Service keys whose place is recorded in [`Loaded::key_positions`] even when
/// Magos applies them: where Magos deliberately differs from podman-compose.
pub const NOTED_SERVICE_KEYS: &[&str] = &["depends_on", "build", "healthcheck"];

/// Service keys whose place is recorded in [`Loaded::key_positions`] so that a
/// mistake in one of their items is reported at the key, not at the service
/// (the keys after `volumes` for what a Quadlet unit cannot carry).
pub const LOCATED_SERVICE_KEYS: &[&str] = &[
    "ports",
    "volumes",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "healthcheck",
    "restart",
    "labels",
    "network_mode",
    "user",
    "tmpfs",
    "pid",
    "ipc",
];

impl Loaded {
    /// Records a mistake that fails the whole stack: a diagnostic, and part of
    /// [`Loaded::error`].
    pub fn fail(&mut self, d: Diagnostic) {
        self.diagnostics.push(d.clone());
        self.error
            .get_or_insert_with(LoadError::default)
            .errors
            .push(d);
    }
}

/// Why a stack's files cannot be read as one compose project. The stack fails
/// alone: nothing of it is created, recreated or pruned, the other stacks go on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadError {
    /// Every such mistake found, located (each is also among the diagnostics).
    pub errors: Vec<Diagnostic>,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(first) = self.errors.first() else {
            return f.write_str("the stack cannot be loaded");
        };
        write!(
            f,
            "{}:{}:{}: {}",
            first.file, first.line, first.column, first.message
        )?;
        match self.errors.len() {
            1 => Ok(()),
            2 => f.write_str(" (and 1 more error)"),
            n => write!(f, " (and {} more errors)", n - 1),
        }
    }
}

/// A service with its image facts.
#[derive(Debug, Clone)]
pub struct LoadedService {
    /// The service name.
    pub name: String,
    /// The typed service, `None` when it could not be read (see the diagnostics).
    pub service: Option<Service>,
    /// The image, when the service has one.
    pub image: Option<ServiceImage>,
}

/// Everything known about a service's image.
#[derive(Debug, Clone)]
pub struct ServiceImage {
    /// The value after interpolation.
    pub value: String,
    /// The parsed reference, when valid.
    pub reference: Option<ImageRef>,
    /// The file whose `image:` line sets it, and the line's site.
    pub site: Option<(String, ImageSite)>,
    /// The policy from the annotation, if any and valid.
    pub policy: Option<Policy>,
    /// Why the line cannot be rewritten (`None`: it can).
    pub not_pinnable: Option<String>,
}

/// A pin to write: which file, which service, the value now and the new one.
/// `rewrite::rewrite` applies it to the file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The file holding the image line, relative to the repository.
    pub file: String,
    /// The service.
    pub service: String,
    /// The value the line holds now.
    pub expected: String,
    /// `name:tag@sha256:…`, the name spelled as the user wrote it.
    pub new: String,
}

impl Pin {
    /// The edit for `rewrite::rewrite`.
    pub fn edit(&self) -> rewrite::Edit<'_> {
        rewrite::Edit {
            service: &self.service,
            expected: &self.expected,
            new: &self.new,
        }
    }
}

impl LoadedService {
    /// The pin that moves this service to `tag` at `digest`, or why it cannot be
    /// written.
    pub fn pin(&self, tag: &str, digest: &Digest) -> Result<Pin, String> {
        let image = self
            .image
            .as_ref()
            .ok_or_else(|| format!("service `{}` has no image", self.name))?;
        if let Some(why) = &image.not_pinnable {
            return Err(format!(
                "the image of service `{}` cannot be pinned: {why}",
                self.name
            ));
        }
        let (reference, (file, site)) = match (&image.reference, &image.site) {
            (Some(r), Some(s)) => (r, s),
            _ => {
                return Err(format!(
                    "the image of service `{}` is not a valid reference",
                    self.name
                ));
            }
        };
        super::reference::check_tag(tag).map_err(|e| format!("invalid tag `{tag}`: {e}"))?;
        Ok(Pin {
            file: file.clone(),
            service: self.name.clone(),
            expected: site.value.clone(),
            new: reference.pinned(tag, digest),
        })
    }
}

/// One parsed file.
struct FileDoc<'a> {
    path: &'a str,
    text: &'a str,
    raw: Value,
    scan: rewrite::Scan,
}

/// Loads a stack from its texts. Never panics: a mistake that concerns one
/// image is a diagnostic; one that keeps the files from being read as a compose
/// project also sets [`Loaded::error`], and the services that can be read are
/// still returned (for `lint`).
pub fn load(src: &StackSource<'_>) -> Loaded {
    let (texts, unreadable) = (BTreeMap::new(), BTreeMap::new());
    load_with(
        src,
        Extra {
            texts: &texts,
            unreadable: &unreadable,
        },
    )
}

/// [`load`], with the texts of the files the stack includes or extends from
/// (see [`wanted_files`]).
pub fn load_with<'a>(src: &StackSource<'a>, extra: Extra<'a>) -> Loaded {
    let mut out = Loaded::default();
    let mut docs = Vec::new();
    match read_file(src.compose.0, src.compose.1) {
        Ok(doc) => docs.push(doc),
        Err(d) => out.fail(d),
    }
    // `x-magos: {files: […]}`: more files merged over the compose file, in
    // order, before the override (as `-f` after `-f`).
    for path in files::compose_files(&docs, extra, &mut out) {
        if let Some((p, t)) = extra.texts.get_key_value(path.as_str()) {
            match read_file(p, t) {
                Ok(doc) => docs.push(doc),
                Err(d) => out.fail(d),
            }
        }
    }
    if let Some((path, text)) = src.override_file {
        match read_file(path, text) {
            Ok(doc) => docs.push(doc),
            Err(d) => out.fail(d),
        }
    }
    // Interpolate each file, then merge the override over the compose file.
    let mut merged = Value::Mapping(Mapping::new());
    for doc in &docs {
        let mut v = doc.raw.clone();
        interpolate_value(&mut v, doc, src.vars, &mut out);
        merge(&mut merged, v, None);
    }
    let Value::Mapping(mut top) = merged else {
        return out;
    };
    // Without the compose file itself there is nothing to look at.
    if docs.first().is_none_or(|d| d.path != src.compose.0) {
        return out;
    }
    let stack_dir = src.compose.0.rsplit_once('/').map_or("", |(d, _)| d);
    let included = top.contains_key("include");
    files::resolve_include(&mut top, &docs, stack_dir, src, extra, &mut out);
    out.bare_env = bare_environment(&top, src.vars);
    for (k, v) in &top {
        let Some(key) = k.as_str() else {
            let (file, pos) = (src.compose.0, Pos::START);
            out.fail(Diagnostic::error(
                file,
                pos,
                "a top-level key is not a string",
            ));
            continue;
        };
        match key {
            "name" => out.name = v.as_str().map(str::to_owned),
            "networks" => {
                out.networks = names(v);
                out.network_defs = top_objects(key, v, &docs, &mut out);
            }
            "volumes" => {
                out.volumes = names(v);
                out.volume_defs = top_objects(key, v, &docs, &mut out);
            }
            "secrets" => out.secrets = top_objects(key, v, &docs, &mut out),
            "configs" => out.configs = top_objects(key, v, &docs, &mut out),
            "x-magos" => {
                out.apply_mode = v.get("apply").and_then(Value::as_str).map(str::to_owned);
                match v.get("observe") {
                    None => {}
                    Some(Value::Bool(b)) => out.observe = *b,
                    Some(_) => {
                        let (file, pos) = top_pos(&docs, key);
                        out.fail(Diagnostic::error(
                            &file,
                            pos,
                            "`x-magos.observe` must be `true` or `false`",
                        ));
                    }
                }
            }
            "x-podman" => out.x_podman = Some(v.clone()),
            "version" | "services" => {
                out.key_positions
                    .insert(key.to_owned(), top_pos(&docs, key));
            }
            k if TOP_KEYS.contains(&k) || k.starts_with("x-") => {}
            k if SPEC_TOP_KEYS.contains(&k) => {
                out.unsupported.push(k.to_owned());
                out.key_positions.insert(k.to_owned(), top_pos(&docs, k));
            }
            k => {
                let (file, pos) = top_pos(&docs, k);
                out.fail(Diagnostic::error(
                    &file,
                    pos,
                    unknown_key("top-level key", k, SPEC_TOP_KEYS),
                ));
            }
        }
    }
    // `x-podman: {in_pod: false}`: podman-compose makes no pod (noted by
    // conversion only when it does).
    if let Some(v) = top.get("x-podman").and_then(|x| x.get("in_pod"))
        && matches!(v, Value::Bool(false)) | v.as_str().is_some_and(|t| matches!(t, "false" | "0"))
    {
        out.key_positions
            .insert("x-podman.in_pod".to_owned(), top_pos(&docs, "x-podman"));
    }
    let services = match top.get("services") {
        Some(Value::Mapping(m)) => m.clone(),
        Some(Value::Null) => {
            let (file, pos) = top_pos(&docs, "services");
            out.fail(Diagnostic::error(
                &file,
                pos,
                "`services:` has no value; list the services (write `services: {}` to run none)",
            ));
            Mapping::new()
        }
        // `include:` may bring every service.
        None if included => Mapping::new(),
        None => {
            out.fail(Diagnostic::error(
                src.compose.0,
                Pos::START,
                "the file has no `services:`; list the services (write `services: {}` to run none)",
            ));
            Mapping::new()
        }
        Some(_) => {
            let (file, pos) = top_pos(&docs, "services");
            out.fail(Diagnostic::error(
                &file,
                pos,
                "`services` must be a mapping of service names",
            ));
            Mapping::new()
        }
    };
    let mut services = services;
    files::resolve_extends(
        &mut services,
        src.compose.0,
        &docs,
        stack_dir,
        src,
        extra,
        &mut out,
    );
    for (k, v) in services {
        let name = match &k {
            Value::String(s) => s.clone(),
            other => serde_yaml_ng::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        };
        out.positions
            .entry(name.clone())
            .or_insert_with(|| service_pos(&docs, &name));
        let service = match serde_yaml_ng::from_value::<Service>(v.clone()) {
            // `app:` with nothing under it reads as an empty service.
            Ok(_) if !v.is_mapping() => {
                let (file, pos) = service_pos(&docs, &name);
                out.fail(Diagnostic::error(
                    &file,
                    pos,
                    format!(
                        "service `{name}`: a service must be a mapping of its keys (`image:` …)"
                    ),
                ));
                None
            }
            Ok(s) => Some(s),
            Err(e) => {
                let (file, pos) = service_pos(&docs, &name);
                out.fail(Diagnostic::error(
                    &file,
                    pos,
                    format!("service `{name}`: {}", strip_location(&e.to_string())),
                ));
                None
            }
        };
        if let Some(s) = &service {
            record_key_positions(&docs, &name, s, &v, &mut out.key_positions);
            if let Err(e) = s.soak_options() {
                let (file, pos) = service_key_pos(&docs, &name, "x-magos");
                out.fail(Diagnostic::error(
                    &file,
                    pos,
                    format!("service `{name}`: {e}"),
                ));
            }
            for key in s.other.keys() {
                if key.starts_with("x-") || SPEC_SERVICE_KEYS.contains(&key.as_str()) {
                    continue;
                }
                let (file, pos) = service_key_pos(&docs, &name, key);
                out.fail(Diagnostic::error(
                    &file,
                    pos,
                    format!(
                        "service `{name}`: {}",
                        unknown_key("key", key, SPEC_SERVICE_KEYS)
                    ),
                ));
            }
        }
        // A service an included file defines has its image line there.
        let included = out
            .positions
            .get(&name)
            .map(|(f, _)| f.as_str())
            .filter(|f| out.files.iter().any(|x| x == f))
            .filter(|f| !out.compose_files.iter().any(|x| x == f))
            .and_then(|f| extra.texts.get_key_value(f))
            .and_then(|(f, t)| read_file(f, t).ok());
        let image = service.as_ref().and_then(|s| s.image.clone()).map(|value| {
            let docs = match &included {
                Some(doc) => std::slice::from_ref(doc),
                None => &docs[..],
            };
            image_facts(&name, value, docs, &mut out.diagnostics)
        });
        out.services.push(LoadedService {
            name,
            service,
            image,
        });
    }
    out.text_differences = differences::find(&docs, src.vars);
    for (kind, defs) in [
        ("networks", out.network_defs.clone()),
        ("volumes", out.volume_defs.clone()),
    ] {
        let at = top_pos(&docs, kind);
        for (name, def) in defs {
            for k in def.other.keys() {
                out.key_positions
                    .insert(format!("{kind}.{name}.{k}"), at.clone());
            }
        }
    }
    for (kind, defs) in [
        ("secrets", out.secrets.clone()),
        ("configs", out.configs.clone()),
    ] {
        let at = top_pos(&docs, kind);
        for (name, def) in defs {
            for k in def.other.keys() {
                out.key_positions
                    .insert(format!("{kind}.{name}.{k}"), at.clone());
            }
        }
    }
    // Annotations that are not on an image line do nothing: say so.
    for doc in &docs {
        for (line, hash) in &doc.scan.stray_annotations {
            out.diagnostics.push(Diagnostic::warning(
                doc.path,
                Pos::of_offset(doc.text, *hash),
                format!("this Magos annotation is not on the `image:` line of a service (line {line}), so it does nothing"),
            ));
        }
    }
    out
}

/// "unknown key `enviroment` (did you mean `environment`?)", with the hint
/// when a known key is close.
fn unknown_key(what: &str, key: &str, known: &[&str]) -> String {
    let hint = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len().min(key.len()).max(2))
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    format!(
        "unknown {what} `{key}`{hint}; the compose specification has no such key (extensions start with `x-`)"
    )
}

/// The optimal-string-alignment distance: insertions, deletions, substitutions
/// and swaps of two neighbours each cost one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// Records where a service's keys that conversion reports on are written: the
/// ones Magos does not apply ([`Service::unsupported`]) and [`NOTED_SERVICE_KEYS`].
fn record_key_positions(
    docs: &[FileDoc<'_>],
    name: &str,
    s: &Service,
    raw: &Value,
    positions: &mut BTreeMap<String, (String, Pos)>,
) {
    let noted = NOTED_SERVICE_KEYS
        .iter()
        .chain(LOCATED_SERVICE_KEYS)
        .filter(|k| raw.get(**k).is_some())
        .map(|k| (*k).to_owned());
    // `deploy.mode` is written at `deploy:`.
    let unsupported: std::collections::BTreeSet<String> = s
        .unsupported()
        .iter()
        .map(|k| k.split('.').next().unwrap_or(k).to_owned())
        .collect();
    for key in unsupported.into_iter().chain(noted) {
        let at = service_key_pos(docs, name, &key);
        positions.insert(format!("services.{name}.{key}"), at);
    }
}

/// Where a service is written (the last file that has it).
fn service_pos(docs: &[FileDoc<'_>], name: &str) -> (String, Pos) {
    for doc in docs.iter().rev() {
        if let Some((_, line)) = doc.scan.services.iter().find(|(n, _)| n == name) {
            return (
                doc.path.to_owned(),
                Pos {
                    line: *line,
                    column: 1,
                },
            );
        }
    }
    (
        docs.first().map_or(String::new(), |d| d.path.to_owned()),
        Pos::START,
    )
}

/// Where a service's key is written: the first line below the service's own
/// line, and before the next service, that starts with `key:` (the last file
/// that has one); else the service's position.
fn service_key_pos(docs: &[FileDoc<'_>], service: &str, key: &str) -> (String, Pos) {
    for doc in docs.iter().rev() {
        let Some(start) = doc
            .scan
            .services
            .iter()
            .find(|(n, _)| n == service)
            .map(|(_, l)| *l)
        else {
            continue;
        };
        let end = doc
            .scan
            .services
            .iter()
            .map(|(_, l)| *l)
            .filter(|l| *l > start)
            .min()
            .unwrap_or(usize::MAX);
        let mut offset = 0;
        for (i, line) in doc.text.split_inclusive('\n').enumerate() {
            let n = i + 1;
            if n > start && n < end {
                let body = line.trim_start();
                let quoted = [
                    format!("{key}:"),
                    format!("\"{key}\":"),
                    format!("'{key}':"),
                ];
                if quoted.iter().any(|q| body.starts_with(q.as_str())) {
                    let indent = line.len() - body.len();
                    return (
                        doc.path.to_owned(),
                        Pos::of_offset(doc.text, offset + indent),
                    );
                }
            }
            offset += line.len();
        }
    }
    service_pos(docs, service)
}

/// Reads one file: the cheap checks first ([`prescan`]), then the YAML. A
/// UTF-8 byte order mark is skipped (the YAML reader takes a file that starts
/// with one and has two top-level keys for two documents); the rewrite scanner
/// still sees, and keeps, every byte.
fn read_file<'a>(path: &'a str, text: &'a str) -> Result<FileDoc<'a>, Diagnostic> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    prescan(path, body)?;
    let mut raw: Value = match serde_yaml_ng::from_str(body) {
        Ok(v) => v,
        Err(e) => {
            // The parser may point just past the end of the text (at a line
            // break it assumed there): clamp to the text's real end.
            let end = Pos::of_offset(body, body.len());
            let pos = e
                .location()
                .map(|l| Pos {
                    line: l.line(),
                    column: l.column(),
                })
                .map_or(Pos::START, |p| if p.line > end.line { end } else { p });
            return Err(Diagnostic::error(
                path,
                pos,
                format!("invalid YAML: {}", strip_location(&e.to_string())),
            ));
        }
    };
    if let Err(e) = raw.apply_merge() {
        return Err(Diagnostic::error(
            path,
            Pos::START,
            format!("invalid merge key `<<`: {}", strip_location(&e.to_string())),
        ));
    }
    match &raw {
        Value::Mapping(_) => {}
        Value::Null => {
            return Err(Diagnostic::error(
                path,
                Pos::START,
                "the file is empty (or only comments); a compose file is a mapping with `services:`",
            ));
        }
        _ => {
            return Err(Diagnostic::error(
                path,
                Pos::START,
                "a compose file must be a mapping (`services:` …)",
            ));
        }
    }
    Ok(FileDoc {
        path,
        text,
        raw,
        scan: rewrite::scan(text),
    })
}

/// The checks made before a file is parsed, because the YAML reader's time grows
/// with them: its size ([`MAX_FILE_BYTES`]) and how deeply it nests
/// ([`MAX_NESTING`]). The depth is counted without parsing: block levels by
/// indentation and `- ` items, flow levels by the `[`/`{` that open a flow
/// collection (outside quotes, comments and block scalars).
pub fn prescan(path: &str, text: &str) -> Result<(), Diagnostic> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            path,
            Pos::START,
            format!(
                "the file is larger than {} MiB",
                MAX_FILE_BYTES / 1024 / 1024
            ),
        ));
    }
    match nesting_beyond(text, MAX_NESTING) {
        Some(offset) => Err(Diagnostic::error(
            path,
            Pos::of_offset(text, offset),
            format!(
                "the file nests deeper than {MAX_NESTING} levels here (is a bracket left open?)"
            ),
        )),
        None => Ok(()),
    }
}

/// The byte offset where `text` first nests deeper than `limit` levels, if it
/// does. Errs towards counting less (a bracket inside a plain scalar of a block
/// value is not counted), never more, so a valid compose file is never refused.
fn nesting_beyond(text: &str, limit: usize) -> Option<usize> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote = Quote::None;
    // The indentation of the line that opened a block scalar (`|`, `>`).
    let mut block_scalar: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        let blank = line[indent..].trim().is_empty();
        if let Some(parent) = block_scalar {
            if blank || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut i = 0;
        let mut block_depth = 0;
        if flow == 0 && quote == Quote::None {
            if blank || line[indent..].starts_with('#') {
                continue;
            }
            while indents.last().is_some_and(|l| *l >= indent) {
                indents.pop();
            }
            indents.push(indent);
            i = indent;
            // `- - x`: each compact item is a level.
            let mut items = 0;
            while bytes.get(i) == Some(&b'-')
                && matches!(bytes.get(i + 1), Some(b' ' | b'\t' | b'\n' | b'\r') | None)
            {
                items += 1;
                i += 1;
                while matches!(bytes.get(i), Some(b' ' | b'\t')) {
                    i += 1;
                }
            }
            block_depth = indents.len() + items;
            if block_depth > limit {
                return Some(start + indent);
            }
        }
        // Whether the next character starts a value (a flow collection, a
        // quoted scalar or a block scalar may start there): true at the start
        // of a line's content, after `: `, `- `, `? `, and inside flow
        // collections after `[`, `{` and `,`.
        let mut at_value = true;
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Quote::Double => {
                    match b {
                        b'\\' => i += 1,
                        b'"' => quote = Quote::None,
                        _ => {}
                    }
                    i += 1;
                    continue;
                }
                Quote::Single => {
                    if b == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            quote = Quote::None;
                        }
                    }
                    i += 1;
                    continue;
                }
                Quote::None => {}
            }
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'#' if i == 0 || matches!(bytes[i - 1], b' ' | b'\t') => break,
                b'"' if at_value => quote = Quote::Double,
                b'\'' if at_value => quote = Quote::Single,
                b'[' | b'{' if at_value || flow > 0 => {
                    flow += 1;
                    if block_depth + flow > limit {
                        return Some(start + i);
                    }
                }
                b']' | b'}' if flow > 0 => flow -= 1,
                b'|' | b'>' if at_value && flow == 0 => {
                    block_scalar = Some(indent);
                    break;
                }
                _ => {}
            }
            at_value = match b {
                b' ' | b'\t' => at_value,
                b'[' | b'{' | b',' => flow > 0,
                b':' | b'?' | b'-' => {
                    matches!(bytes.get(i + 1), Some(b' ' | b'\t' | b'\n' | b'\r') | None)
                        || flow > 0
                }
                _ => false,
            };
            i += 1;
        }
    }
    None
}

fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Reads a top-level mapping of named objects (`networks`, `volumes`, `secrets`,
/// `configs`); an entry that cannot be read fails the stack, located at the key.
fn top_objects<T: serde::de::DeserializeOwned + Default>(
    key: &str,
    v: &Value,
    docs: &[FileDoc<'_>],
    out: &mut Loaded,
) -> BTreeMap<String, T> {
    let mut objects = BTreeMap::new();
    let Value::Mapping(m) = v else {
        if !v.is_null() {
            let (file, pos) = top_pos(docs, key);
            out.fail(Diagnostic::error(
                &file,
                pos,
                format!("`{key}` must be a mapping of names"),
            ));
        }
        return objects;
    };
    for (k, item) in m {
        let Some(name) = k.as_str() else { continue };
        let parsed = if item.is_null() {
            Ok(T::default())
        } else {
            serde_yaml_ng::from_value::<T>(external_name_form(item))
        };
        match parsed {
            Ok(t) => {
                objects.insert(name.to_owned(), t);
            }
            Err(e) => {
                let (file, pos) = top_pos(docs, key);
                out.fail(Diagnostic::error(
                    &file,
                    pos,
                    format!("{key} `{name}`: {}", strip_location(&e.to_string())),
                ));
            }
        }
    }
    objects
}

/// The old form of an external object, `external: {name: x}`, read as the new
/// one, `external: true` with `name: x` (a `name:` beside it wins, as compose
/// reads it).
fn external_name_form(item: &Value) -> Value {
    let mut item = item.clone();
    if let Value::Mapping(m) = &mut item
        && let Some(Value::Mapping(ext)) = m.get("external")
    {
        let name = ext.get("name").cloned();
        m.insert(Value::from("external"), Value::Bool(true));
        if let Some(name) = name
            && !m.contains_key("name")
        {
            m.insert(Value::from("name"), name);
        }
    }
    item
}

/// Where a top-level key is written (the last file that has it).
fn top_pos(docs: &[FileDoc<'_>], key: &str) -> (String, Pos) {
    for doc in docs.iter().rev() {
        let mut offset = 0;
        for line in doc.text.split_inclusive('\n') {
            if line.starts_with(&format!("{key}:")) {
                return (doc.path.to_owned(), Pos::of_offset(doc.text, offset));
            }
            offset += line.len();
        }
    }
    (
        docs.first().map_or(String::new(), |d| d.path.to_owned()),
        Pos::START,
    )
}

fn names(v: &Value) -> Vec<String> {
    match v {
        Value::Mapping(m) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Interpolates every string value (keys are left alone, as the spec says). A
/// failed substitution (`${VAR:?…}` with VAR unset, a malformed `${…}`) fails the
/// stack: the text is never used literally.
/// The variables of `vars` that the services' `environment:` entries name
/// without a value (`- TZ`, or `TZ:` with nothing after it).
fn bare_environment(top: &Mapping, vars: &Vars) -> Vars {
    let mut out = Vars::new();
    let Some(Value::Mapping(services)) = top.get("services") else {
        return out;
    };
    let mut take = |k: &str| {
        if let Some(v) = vars.get(k) {
            out.insert(k.to_owned(), v.clone());
        }
    };
    for svc in services.values() {
        match svc.get("environment") {
            Some(Value::Sequence(list)) => {
                for k in list.iter().filter_map(Value::as_str) {
                    if !k.contains('=') {
                        take(k);
                    }
                }
            }
            Some(Value::Mapping(map)) => {
                for (k, v) in map {
                    if v.is_null()
                        && let Some(k) = k.as_str()
                    {
                        take(k);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn interpolate_value(v: &mut Value, doc: &FileDoc<'_>, vars: &Vars, out: &mut Loaded) {
    match v {
        Value::String(s) if interpolate::has_variables(s) => {
            match interpolate::interpolate(s, vars) {
                Ok(r) => {
                    for name in &r.missing {
                        out.diagnostics.push(Diagnostic::warning(
                            doc.path,
                            locate(doc.text, s),
                            format!(
                                "variable `{name}` is not set; it is replaced by an empty string"
                            ),
                        ));
                    }
                    *s = r.value;
                }
                Err(e) => {
                    let at = locate(doc.text, &s[e.offset..]);
                    out.fail(Diagnostic::error(doc.path, at, e.message));
                }
            }
        }
        Value::Sequence(seq) => {
            for item in seq {
                interpolate_value(item, doc, vars, out);
            }
        }
        Value::Mapping(m) => {
            for (_, item) in m.iter_mut() {
                interpolate_value(item, doc, vars, out);
            }
        }
        Value::Tagged(t) => interpolate_value(&mut t.value, doc, vars, out),
        _ => {}
    }
}

/// Where a value's text appears in the file (the first occurrence), for errors
/// found after YAML parsing lost the positions.
fn locate(text: &str, needle: &str) -> Pos {
    let probe: String = needle.chars().take(60).collect();
    match text.find(&probe) {
        Some(i) => Pos::of_offset(text, i),
        None => Pos::START,
    }
}

/// Sequences that the compose spec merges by appending instead of replacing.
const APPENDED: &[&str] = &[
    "ports",
    "expose",
    "volumes",
    "env_file",
    "dns",
    "dns_search",
    "extra_hosts",
    "cap_add",
    "cap_drop",
    "devices",
    "security_opt",
    "tmpfs",
];

/// Values compose merges by variable name, whether written as `KEY=value`
/// lists or `KEY: value` mappings.
const KEYED: &[&str] = &["environment", "labels", "annotations", "sysctls"];

/// A `KEY=value` list as a mapping (`KEY` alone: null); a mapping as it is.
fn keyed_map(v: Value) -> Value {
    match v {
        Value::Sequence(items) => Value::Mapping(
            items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => match s.split_once('=') {
                        Some((k, v)) => (Value::String(k.to_owned()), Value::String(v.to_owned())),
                        None => (Value::String(s), Value::Null),
                    },
                    other => (other, Value::Null),
                })
                .collect(),
        ),
        other => other,
    }
}

/// Merges `over` into `base`: mappings key by key, the sequences in [`APPENDED`]
/// appended (without duplicates), the values of [`KEYED`] by variable,
/// everything else replaced.
fn merge(base: &mut Value, over: Value, key: Option<&str>) {
    if key.is_some_and(|k| KEYED.contains(&k))
        && (base.is_sequence() || over.is_sequence())
        && (base.is_sequence() || base.is_mapping())
        && (over.is_sequence() || over.is_mapping())
    {
        *base = keyed_map(std::mem::take(base));
        return merge(base, keyed_map(over), None);
    }
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                let name = k.as_str().map(str::to_owned);
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v, name.as_deref()),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Sequence(b), Value::Sequence(o)) if key.is_some_and(|k| APPENDED.contains(&k)) => {
            for item in o {
                if !b.contains(&item) {
                    b.push(item);
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn image_facts(
    service: &str,
    value: String,
    docs: &[FileDoc<'_>],
    diags: &mut Vec<Diagnostic>,
) -> ServiceImage {
    // The last file that writes an image line for the service sets it.
    let site = docs
        .iter()
        .rev()
        .find_map(|d| d.scan.site(service).map(|s| (d, s.clone())));
    let raw_value = docs.iter().rev().find_map(|d| {
        d.raw
            .get("services")
            .and_then(|s| s.get(service))
            .and_then(|s| s.get("image"))
            .map(|v| (d.path, v.as_str().map(str::to_owned)))
    });
    let mut facts = ServiceImage {
        value: value.clone(),
        reference: None,
        site: None,
        policy: None,
        not_pinnable: None,
    };
    let (file, pos) = match &site {
        Some((d, s)) => (d.path.to_owned(), Pos::of_offset(d.text, s.span.0)),
        None => (
            docs.last().map_or(String::new(), |d| d.path.to_owned()),
            docs.iter()
                .rev()
                .find_map(|d| {
                    d.scan
                        .services
                        .iter()
                        .find(|(n, _)| n == service)
                        .map(|(_, l)| Pos {
                            line: *l,
                            column: 1,
                        })
                })
                .unwrap_or(Pos::START),
        ),
    };
    match ImageRef::parse(&value) {
        Ok(r) => facts.reference = Some(r),
        // A value still holding `${` failed interpolation, which is reported already.
        Err(_) if value.contains("${") => {}
        Err(e) => diags.push(Diagnostic::error(
            &file,
            pos,
            format!("service `{service}`: {e}"),
        )),
    }
    match &site {
        None => {
            facts.not_pinnable = Some(
                "the image is not written as `image: …` on one line under the service (flow style, a merge key `<<`, `extends`, or another layout)".to_owned(),
            );
        }
        Some((doc, s)) => {
            // The scanner and the YAML parser must agree on the value.
            let agrees = raw_value
                .as_ref()
                .is_some_and(|(p, v)| *p == doc.path && v.as_deref() == Some(s.value.as_str()));
            facts.not_pinnable = match (&s.blocker, agrees) {
                (Some(b), _) => Some(b.clone()),
                (None, false) => Some(
                    "the image line could not be matched with the parsed YAML value".to_owned(),
                ),
                (None, true) => None,
            };
            if let Some((at, comment)) = &s.comment
                && let Some(result) = annotation::parse_comment(comment)
            {
                match result {
                    Ok(p) => facts.policy = Some(p),
                    Err(e) => diags.push(Diagnostic::error(
                        doc.path,
                        Pos::of_offset(doc.text, at + e.offset),
                        format!("service `{service}`: {}", e.message),
                    )),
                }
            }
            facts.site = Some((doc.path.to_owned(), s.clone()));
        }
    }
    // A policy on an image that cannot be pinned is a mistake worth reporting.
    if let (Some(_), Some(why)) = (&facts.policy, &facts.not_pinnable) {
        diags.push(Diagnostic::error(
            &file,
            pos,
            format!("service `{service}` has a policy but its image cannot be pinned: {why}"),
        ));
    }
    if let (Some(p), Some(r)) = (&facts.policy, &facts.reference) {
        if let (super::policy::Kind::Digest(Some(d)), Some(rd)) = (&p.kind, &r.digest)
            && d != rd
        {
            diags.push(Diagnostic::error(
                &file,
                pos,
                format!(
                    "service `{service}`: the annotation's digest {d} differs from the image's {rd}"
                ),
            ));
        }
        if matches!(p.kind, super::policy::Kind::Digest(None)) && r.digest.is_none() {
            diags.push(Diagnostic::error(
                &file,
                pos,
                format!("service `{service}`: the digest policy needs a digest, in the image (`@sha256:…`) or as `\"digest\"`"),
            ));
        }
    }
    facts
}
