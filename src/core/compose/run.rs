//! The service keys about how a container runs rather than what it runs:
//! resources (`deploy.resources`, `mem_limit`, `cpus`, …), kernel and security
//! settings (`sysctls`, `ulimits`, `security_opt`, `privileged`), namespaces
//! (`pid`, `ipc`, `userns_mode`), the terminal, logging, DNS options,
//! annotations and `links`. They are read here into [`RunKeys`], flattened into
//! [`super::Service`]; `convert::run` turns them into the spec.
//!
//! Scalars are read loosely ([`Scalar`]) because an interpolated `${VAR}` is
//! text whatever it holds: the conversion checks each value and names the key
//! when it is wrong.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{KeyValues, OneOrMany, Scalar};

/// The service keys of this module; with [`super::SERVICE_KEYS`], the ones Magos
/// applies.
pub const RUN_KEYS: &[&str] = &[
    "expose",
    "deploy",
    "mem_limit",
    "mem_reservation",
    "memswap_limit",
    "cpus",
    "cpu_shares",
    "cpuset",
    "pids_limit",
    "shm_size",
    "privileged",
    "sysctls",
    "ulimits",
    "security_opt",
    "group_add",
    "init",
    "tty",
    "stdin_open",
    "pid",
    "ipc",
    "userns_mode",
    "oom_score_adj",
    "logging",
    "platform",
    "pull_policy",
    "dns_search",
    "dns_opt",
    "domainname",
    "annotations",
    "device_cgroup_rules",
    "links",
];

/// The `deploy:` keys read here; with the shape's own (`replicas`, `mode:
/// replicated`: `super::NATIVE_DEPLOY_KEYS`) the ones Magos applies. Any other
/// is reported as `deploy.<key>` (and routes the stack to the compose CLI).
pub const DEPLOY_KEYS: &[&str] = &["resources", "restart_policy"];

/// A service's run-time keys.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct RunKeys {
    /// Ports exposed to other containers only (`"3000"`, `"8000-8010/udp"`).
    pub expose: Vec<Scalar>,
    /// `deploy:` (its `resources` and `restart_policy`).
    pub deploy: Option<Deploy>,
    /// Memory limit (`512m`, bytes).
    pub mem_limit: Option<Scalar>,
    /// Memory soft limit.
    pub mem_reservation: Option<Scalar>,
    /// Memory plus swap (`-1`: unlimited swap).
    pub memswap_limit: Option<Scalar>,
    /// CPU limit in cores (`0.5`).
    pub cpus: Option<Scalar>,
    /// Relative CPU weight.
    pub cpu_shares: Option<Scalar>,
    /// CPUs the container may use (`0-3`, `0,1`).
    pub cpuset: Option<Scalar>,
    /// Process limit (`-1`: unlimited).
    pub pids_limit: Option<Scalar>,
    /// Size of `/dev/shm`.
    pub shm_size: Option<Scalar>,
    /// Privileged mode.
    pub privileged: Option<Scalar>,
    /// Kernel parameters, map or `key=value` list.
    pub sysctls: Option<KeyValues>,
    /// Resource limits: `nofile: 65535` or `nofile: {soft: …, hard: …}`; also
    /// podman-compose's `nofile=1001` and `[nproc=1002:2002, …]` forms.
    pub ulimits: Ulimits,
    /// Security options (`seccomp=…`, `label=…`, `apparmor=…`, `no-new-privileges`).
    pub security_opt: Vec<String>,
    /// Supplementary groups.
    pub group_add: Vec<Scalar>,
    /// Run an init process as PID 1.
    pub init: Option<Scalar>,
    /// Allocate a terminal.
    pub tty: Option<Scalar>,
    /// Keep standard input open.
    pub stdin_open: Option<Scalar>,
    /// PID namespace (`host`, `service:x`, `container:x`).
    pub pid: Option<String>,
    /// IPC namespace (`host`, `shareable`, `private`, `none`, `service:x`, `container:x`).
    pub ipc: Option<String>,
    /// User namespace (`host`, `keep-id`, `auto`, `nomap`, …).
    pub userns_mode: Option<String>,
    /// OOM killer preference (-1000 to 1000).
    pub oom_score_adj: Option<Scalar>,
    /// Log driver and options.
    pub logging: Option<Logging>,
    /// `os/arch[/variant]` of the image to run.
    pub platform: Option<String>,
    /// When to pull the image.
    pub pull_policy: Option<String>,
    /// DNS search domains.
    pub dns_search: Option<OneOrMany>,
    /// Resolver options.
    pub dns_opt: Vec<String>,
    /// The NIS domain name (not applied: Podman has no such setting).
    pub domainname: Option<String>,
    /// OCI annotations, map or `key=value` list.
    pub annotations: Option<KeyValues>,
    /// Device cgroup rules (`c 1:3 mr`).
    pub device_cgroup_rules: Vec<String>,
    /// `service` or `service:alias`: a dependency, and the alias on the linked
    /// service's networks.
    pub links: Vec<String>,
}

/// `ulimits:`: the compose specification's map, or the `name=soft[:hard]`
/// text podman-compose also reads (one, or a list of them), as `podman run
/// --ulimit` writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Ulimits {
    /// `nofile: 65535`, `nofile: {soft: …, hard: …}`.
    Map(BTreeMap<String, Ulimit>),
    /// `[nproc=1002:2002, nofile=1002]`.
    List(Vec<String>),
    /// `nofile=1001`.
    One(String),
}

impl Default for Ulimits {
    fn default() -> Self {
        Ulimits::Map(BTreeMap::new())
    }
}

impl Ulimits {
    /// Each entry as `(resource, limit)`, in the file's order (the map's: by
    /// name); a text entry that is not `name=soft[:hard]` is an error naming it.
    pub fn entries(&self) -> Vec<Result<(String, Ulimit), String>> {
        let text = |t: &String| {
            let (name, value) = t
                .split_once('=')
                .ok_or_else(|| format!("ulimits `{t}` is not `name=soft[:hard]`"))?;
            let s = |v: &str| Scalar::String(v.trim().to_owned());
            let limit = match value.split_once(':') {
                Some((soft, hard)) => Ulimit::Pair {
                    soft: s(soft),
                    hard: s(hard),
                },
                None => Ulimit::Single(s(value)),
            };
            Ok((name.trim().to_owned(), limit))
        };
        match self {
            Ulimits::Map(m) => m.iter().map(|(k, v)| Ok((k.clone(), v.clone()))).collect(),
            Ulimits::List(l) => l.iter().map(text).collect(),
            Ulimits::One(t) => vec![text(t)],
        }
    }
}

/// One `ulimits:` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Ulimit {
    /// `nproc: 65535`: soft and hard.
    Single(Scalar),
    /// `nofile: {soft: 20000, hard: 40000}`.
    Pair {
        /// The soft limit.
        soft: Scalar,
        /// The hard limit.
        hard: Scalar,
    },
}

/// `logging:`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Logging {
    /// The driver (`journald`, `k8s-file`, `json-file`, `none`, `passthrough`).
    pub driver: Option<String>,
    /// Driver options (`max-size`, `tag`, `path`, …).
    pub options: BTreeMap<String, Option<Scalar>>,
}

/// `deploy:`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Deploy {
    /// `resources:`.
    pub resources: Option<Resources>,
    /// `restart_policy:`.
    pub restart_policy: Option<RestartPolicy>,
    /// The other keys (`replicas`, `mode`, `placement`, …).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `deploy.resources:`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Hard limits.
    pub limits: Option<ResourceSet>,
    /// Reservations.
    pub reservations: Option<ResourceSet>,
}

/// `limits:` or `reservations:`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ResourceSet {
    /// Cores.
    pub cpus: Option<Scalar>,
    /// Bytes.
    pub memory: Option<Scalar>,
    /// Processes.
    pub pids: Option<Scalar>,
    /// Devices (`reservations` only): GPUs.
    pub devices: Vec<DeviceRequest>,
}

/// `deploy.resources.reservations.devices[]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct DeviceRequest {
    /// `[gpu]`, possibly with driver-specific ones (`compute`, `utility`).
    pub capabilities: Vec<String>,
    /// `nvidia`.
    pub driver: Option<String>,
    /// How many (`all` or a number).
    pub count: Option<Scalar>,
    /// Which ones.
    pub device_ids: Vec<String>,
    /// Driver options (not applied).
    pub options: BTreeMap<String, Value>,
}

/// `deploy.restart_policy:`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    /// `none`, `on-failure`, `any`.
    pub condition: Option<String>,
    /// Restarts before giving up.
    pub max_attempts: Option<Scalar>,
    /// Wait between restarts (not expressible in Podman).
    pub delay: Option<String>,
    /// Window deciding if a restart succeeded (not expressible in Podman).
    pub window: Option<String>,
}

impl RunKeys {
    /// The `deploy.<key>` keys Magos does not apply.
    pub fn unsupported(&self) -> Vec<String> {
        self.deploy
            .iter()
            .flat_map(|d| d.other.iter())
            .filter(|(k, v)| {
                !k.starts_with("x-")
                    && !match k.as_str() {
                        // `global` (one per node) has no meaning on one host.
                        "mode" => v.as_str() == Some("replicated"),
                        k => super::NATIVE_DEPLOY_KEYS.contains(&k),
                    }
            })
            .map(|(k, _)| format!("deploy.{k}"))
            .collect()
    }
}
