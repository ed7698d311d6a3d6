//! What Magos wants to run, in domain terms: stacks of containers, networks and
//! volumes, named and labelled the way `podman-compose` names and labels them so
//! that the compose CLI and Magos see the same objects.
//!
//! podman-compose 1.3 names a stack's objects `<project>_<service>_1`,
//! `<project>_<network>` and `<project>_<volume>`, and labels each with
//! `com.docker.compose.project` and `io.podman.compose.project` (containers also
//! with `com.docker.compose.service`, the container number, working dir and config
//! files). Magos uses the same names and labels and adds its own two.
//!
//! A [`ContainerSpec`] is everything that decides how a container is created. Its
//! [`ContainerSpec::config_hash`] is a SHA-256 over a canonical JSON form of the
//! spec; a container whose hash label differs must be recreated.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Label: the compose project (podman-compose and docker compose).
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
/// Label: the compose project (podman-compose's own).
pub const LABEL_PODMAN_PROJECT: &str = "io.podman.compose.project";
/// Label: the compose service (podman-compose and docker compose).
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
/// Label: the replica number (1, or 1 to N with `scale`/`deploy.replicas`).
pub const LABEL_CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
/// Label: the stack's folder.
pub const LABEL_WORKING_DIR: &str = "com.docker.compose.project.working_dir";
/// Label: the stack's compose files.
pub const LABEL_CONFIG_FILES: &str = "com.docker.compose.project.config_files";
/// Label: set on every object Magos created; objects without it are never touched.
pub const LABEL_MANAGED: &str = "io.magos.managed";
/// Label: the Magos instance that created the object. Leftovers of a stack deleted
/// from the repository are removed only by the instance that created them, so
/// several instances (or repositories) can share one Podman.
pub const LABEL_INSTANCE: &str = "io.magos.instance";
/// Label: the config hash of the spec the container was created from.
pub const LABEL_CONFIG_HASH: &str = "io.magos.config-hash";

/// One stack as Magos wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackSpec {
    /// The compose project name.
    pub project: String,
    /// The Magos instance applying it (the `io.magos.instance` label).
    pub instance: String,
    /// The stack's folder, for the working-dir label.
    pub working_dir: String,
    /// The compose files, for the config-files label.
    pub config_files: Vec<String>,
    /// Networks the stack declares (the `default` network included when used).
    pub networks: Vec<NetworkSpec>,
    /// Named volumes the stack declares.
    pub volumes: Vec<VolumeSpec>,
    /// One container per service.
    pub services: Vec<ContainerSpec>,
}

/// A network of a stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkSpec {
    /// The name Podman knows it by (`<project>_<key>` unless `name:` is given).
    pub name: String,
    /// `external: true`: must exist, never created or removed by Magos.
    pub external: bool,
    /// Driver (`bridge` by default).
    pub driver: Option<String>,
    /// `internal: true`.
    pub internal: bool,
    /// Labels of the network (compose labels included).
    pub labels: BTreeMap<String, String>,
    /// `enable_ipv6: true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipv6: bool,
    /// `driver_opts:`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// `ipam.driver:` when not `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam_driver: Option<String>,
    /// `ipam.config:`: the subnets, empty to let Podman choose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<SubnetSpec>,
    /// `x-podman.disable_dns: true`: no name resolution on the network.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_dns: bool,
    /// `x-podman.dns:`: the network's DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `x-podman.routes:`: extra routes (`destination,gateway[,metric]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// One subnet of a network (`ipam.config` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetSpec {
    /// The CIDR.
    pub subnet: String,
    /// The gateway, when fixed.
    pub gateway: Option<String>,
    /// The range addresses are leased from.
    pub ip_range: Option<String>,
}

/// A service's fixed settings on one network (`ipv4_address`, `ipv6_address`,
/// `mac_address`, `x-podman.interface_name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AttachSpec {
    /// Fixed addresses (IPv4 and IPv6).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_ips: Vec<String>,
    /// The MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The interface name in the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// The MAC address comes from podman-compose's `x-podman.mac_address`
    /// alone, which `docker compose` ignores (so does the Docker mapping). It
    /// does not change what Podman creates, so it is not part of the hash.
    #[serde(skip)]
    pub mac_from_x_podman: bool,
}

/// A Podman secret mounted into a container (compose's `external` secrets and
/// secrets from Magos's environment). Only names are here, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodmanSecretSpec {
    /// The Podman secret's name.
    pub source: String,
    /// The file name under `/run/secrets/` (or an absolute path).
    pub target: String,
    /// For a secret from Magos's environment: the variable holding its value
    /// (the apply step creates the Podman secret from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_env: Option<String>,
    /// The file's owner in the container (0 when not given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The file's group (0 when not given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// The file's mode (0444 when not given, as `podman run --secret`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// `type: env`: the secret is the environment variable `target`, not a
    /// file.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub as_env: bool,
}

/// A named volume of a stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VolumeSpec {
    /// The name Podman knows it by (`<project>_<key>` unless `name:` is given).
    pub name: String,
    /// `external: true`: must exist, never created or removed by Magos.
    pub external: bool,
    /// Driver (`local` by default).
    pub driver: Option<String>,
    /// Labels of the volume (compose labels included).
    pub labels: BTreeMap<String, String>,
    /// `driver_opts:` (the local driver's `type`, `o`, `device`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// The image a container runs, as its spec records it (and hashes it): the
/// reference written in the repository, its fully qualified name and its digest.
/// Made from a parsed [`crate::core::reference::ImageRef`] (`convert::image_ref`)
/// or named by a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerImage {
    /// The reference as written (e.g. `ghcr.io/o/app:1.2.3@sha256:…`).
    pub reference: String,
    /// The fully qualified `name:tag`, as Podman records it in `RepoTags`
    /// (`nginx:1.27` → `docker.io/library/nginx:1.27`).
    pub qualified: String,
    /// The pinned digest, `sha256:<hex>`, when the reference has one.
    pub digest: Option<crate::core::reference::Digest>,
}

/// When a dependency counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyCondition {
    /// The dependency's container has started.
    ServiceStarted,
    /// The dependency's healthcheck reports healthy.
    ServiceHealthy,
    /// The dependency ran and exited 0.
    ServiceCompletedSuccessfully,
}

/// A `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// The service depended on.
    pub service: String,
    /// When it counts as ready.
    pub condition: DependencyCondition,
    /// `restart: true`: recreate this service when the dependency is recreated.
    pub restart: bool,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortSpec {
    /// The host address (`127.0.0.1`), empty for all addresses.
    pub host_ip: String,
    /// The host port; 0 lets Podman choose.
    pub host_port: u16,
    /// The container port.
    pub container_port: u16,
    /// How many consecutive ports (1 for one).
    pub range: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountSpec {
    /// A named volume (full Podman name).
    Volume {
        /// The volume's name.
        name: String,
        /// Where it is mounted.
        target: String,
        /// Read-only.
        read_only: bool,
        /// Other options (`z`, `Z`, `U`, `nocopy`, propagation, …).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        options: Vec<String>,
        /// Mount only this sub-folder of the volume.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subpath: Option<String>,
    },
    /// A host path.
    Bind {
        /// The absolute host path.
        source: String,
        /// Where it is mounted.
        target: String,
        /// Options (`ro`, `z`, `Z`, …).
        options: Vec<String>,
        /// Create the host folder before the container when nothing is there
        /// (compose's short syntax inside the stack's folder, or
        /// `bind.create_host_path: true`). It does not change the container, so
        /// it is not part of the config hash.
        #[serde(skip)]
        create_host_path: bool,
    },
    /// A tmpfs.
    Tmpfs {
        /// Where it is mounted.
        target: String,
        /// Options (`size=64m`, …).
        options: Vec<String>,
    },
}

/// The network namespace mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", content = "value", rename_all = "snake_case")]
pub enum NetworkMode {
    /// Bridge networks of the stack (the default).
    Bridge,
    /// The host's network.
    Host,
    /// No network.
    None,
    /// Rootless pasta, with its options.
    Pasta(Vec<String>),
    /// Another service's namespace (`service:<name>`).
    Service(String),
    /// Another container's namespace (`container:<name>`).
    Container(String),
}

/// A healthcheck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthSpec {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Between checks.
    pub interval: Option<Duration>,
    /// A check's time limit.
    pub timeout: Option<Duration>,
    /// Grace period after start.
    pub start_period: Option<Duration>,
    /// Failures before unhealthy.
    pub retries: Option<u32>,
    /// Between checks during the start period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
}

/// The restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart.
    No,
    /// Always.
    Always,
    /// On non-zero exit.
    OnFailure,
    /// Unless stopped by hand.
    UnlessStopped,
}

/// Everything that decides how one service's container is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSpec {
    /// The compose service.
    pub service: String,
    /// The container's name (`<project>_<service>_1` unless `container_name:`;
    /// `_2` … `_N` for the other replicas).
    pub name: String,
    /// Its replica number, from 1 (`com.docker.compose.container-number`). Left
    /// out of the hash for the first, so specs written before replicas hash as
    /// they did.
    #[serde(skip_serializing_if = "is_first")]
    pub number: u32,
    /// The image, as pinned.
    pub image: ContainerImage,
    /// Replaces the image's command.
    pub command: Option<Vec<String>>,
    /// Replaces the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Environment, from `environment:` and plain `env_file:`s.
    pub environment: BTreeMap<String, String>,
    /// Names of variables whose values come from encrypted files: their values are
    /// injected at apply time and enter the hash only as the hash of the ciphertext
    /// given in [`ContainerSpec::secret_digest`].
    pub secret_environment: Vec<String>,
    /// A digest of every encrypted input (ciphertexts), never of plaintext.
    pub secret_digest: Option<String>,
    /// Published ports.
    pub ports: Vec<PortSpec>,
    /// Mounts.
    pub mounts: Vec<MountSpec>,
    /// Bridge networks joined, with aliases (full Podman names).
    pub networks: BTreeMap<String, Vec<String>>,
    /// The network namespace mode.
    pub network_mode: NetworkMode,
    /// The restart policy.
    pub restart: Option<RestartPolicy>,
    /// The healthcheck.
    pub healthcheck: Option<HealthSpec>,
    /// Labels from the compose file (Magos's and compose's are added on create).
    pub labels: BTreeMap<String, String>,
    /// Services this one depends on.
    pub depends_on: Vec<Dependency>,
    /// `user:`.
    pub user: Option<String>,
    /// `working_dir:`.
    pub working_dir: Option<String>,
    /// `hostname:`.
    pub hostname: Option<String>,
    /// `cap_add:`.
    pub cap_add: Vec<String>,
    /// `cap_drop:`.
    pub cap_drop: Vec<String>,
    /// `devices:` (`host[:container[:perms]]`).
    pub devices: Vec<String>,
    /// `extra_hosts:` as `host:ip`.
    pub extra_hosts: Vec<String>,
    /// `dns:`.
    pub dns: Vec<String>,
    /// `stop_signal:`.
    pub stop_signal: Option<String>,
    /// `stop_grace_period:`.
    pub stop_grace_period: Option<Duration>,
    /// `read_only:`.
    pub read_only: bool,
    /// `build:`: the image is built, not pulled (absent from the hash when
    /// unused, so specs without it hash as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSpec>,
    /// Fixed addresses, MAC and interface names per network (full Podman
    /// names), for the networks that set any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub network_settings: BTreeMap<String, AttachSpec>,
    /// Podman secrets mounted in `/run/secrets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub podman_secrets: Vec<PodmanSecretSpec>,
    /// `x-podman.uidmaps:` (`container:host:count`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uidmaps: Vec<String>,
    /// `x-podman.gidmaps:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gidmaps: Vec<String>,
    /// `x-podman.no_hosts: true`: no `/etc/hosts` written by Podman.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_hosts: bool,
    /// The run-time settings (resources, security, namespaces, logging, …);
    /// left out of the hash while all unset, so older specs hash as before.
    #[serde(skip_serializing_if = "RunSpec::is_unset")]
    pub run: RunSpec,
}

/// A namespace another service or container may share, or the host's
/// (`pid:`, `ipc:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", content = "value", rename_all = "snake_case")]
pub enum SharedNamespace {
    /// The host's.
    Host,
    /// Podman's own mode by name (`private`, `shareable`, `none`).
    Mode(String),
    /// Another service's (`service:<name>`).
    Service(String),
    /// Another container's (`container:<name>`).
    Container(String),
}

/// A resource limit (`ulimits:`); `-1` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UlimitSpec {
    /// The soft limit.
    pub soft: i64,
    /// The hard limit.
    pub hard: i64,
}

/// The log driver and its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogSpec {
    /// The driver; `None`: Podman's default.
    pub driver: Option<String>,
    /// `path` option: the log file (`k8s-file`).
    pub path: Option<String>,
    /// `max-size` option, bytes (decimal units, as Podman reads it).
    pub max_size: Option<i64>,
    /// The other options (`tag`, `max-file`, …).
    pub options: BTreeMap<String, String>,
}

/// When the image is pulled (`pull_policy:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// Before every create, even when the image is present.
    Always,
    /// Never: the image must be present.
    Never,
}

/// How a container runs, beyond what it runs: every field empty by default,
/// and only the set ones enter the config hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSpec {
    /// `expose:`: port → protocols (`tcp`, `udp`, `tcp,udp`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub expose: BTreeMap<u16, String>,
    /// Memory limit, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Memory reservation, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap, bytes; -1: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    /// CPU limit in millionths of a core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_micro: Option<i64>,
    /// CPU weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// CPUs allowed (`0-3`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// Process limit; -1 or 0: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// `/dev/shm` size, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    /// Privileged mode.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Kernel parameters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Resource limits by name (`nofile`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, UlimitSpec>,
    /// Security options as written, a relative seccomp profile made absolute.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Supplementary groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// `init:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// `tty:`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// `stdin_open:`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    /// `pid:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<SharedNamespace>,
    /// `ipc:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<SharedNamespace>,
    /// `userns_mode:` (`host`, `keep-id[:…]`, `auto[:…]`, `nomap`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns: Option<String>,
    /// `oom_score_adj:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// `logging:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<LogSpec>,
    /// `platform:` as `os/arch[/variant]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// `pull_policy:` when it is not the default (pull when missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// `dns_search:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `dns_opt:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    /// `annotations:`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `device_cgroup_rules:` (`c 1:3 mr`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// Retries of `on-failure` (`restart: on-failure:N`,
    /// `deploy.restart_policy.max_attempts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_tries: Option<u32>,
}

impl RunSpec {
    /// Whether nothing is set (the spec hashes as before these settings existed).
    pub fn is_unset(&self) -> bool {
        *self == Self::default()
    }
}

/// How a service's image is built (`build:`), through Podman's build endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct BuildSpec {
    /// The context folder, absolute. Not in the inputs digest (which covers
    /// the files in it), so a moved repository does not rebuild.
    #[serde(skip)]
    pub context: String,
    /// The repository's folder, which the context must stay inside (set by the
    /// edge that reads the context; not hashed).
    #[serde(skip)]
    pub repository: String,
    /// The Dockerfile, relative to the context (`None`: `Containerfile`,
    /// `Dockerfile`, … as podman-compose looks for them).
    pub dockerfile: Option<String>,
    /// `args:`.
    pub args: BTreeMap<String, String>,
    /// `target:`.
    pub target: Option<String>,
    /// `labels:` of the image.
    pub labels: BTreeMap<String, String>,
    /// `network:` of `RUN` steps.
    pub network: Option<String>,
    /// `extra_hosts:` of `RUN` steps, `host:ip`.
    pub extra_hosts: Vec<String>,
    /// `tags:`: more names for the image.
    pub tags: Vec<String>,
    /// `pull: true`.
    pub pull: bool,
    /// `no_cache: true`.
    pub no_cache: bool,
    /// The digest of the build's inputs (files sent and the fields above),
    /// filled in by the edge that reads the context; the built image carries it
    /// as `io.magos.build-digest`.
    pub digest: String,
}

impl ContainerSpec {
    /// A spec with only the required parts set.
    pub fn new(project: &str, service: &str, image: ContainerImage) -> Self {
        Self {
            service: service.to_owned(),
            name: default_container_name(project, service),
            number: 1,
            image,
            command: None,
            entrypoint: None,
            environment: BTreeMap::new(),
            secret_environment: Vec::new(),
            secret_digest: None,
            ports: Vec::new(),
            mounts: Vec::new(),
            networks: BTreeMap::new(),
            network_mode: NetworkMode::Bridge,
            restart: None,
            healthcheck: None,
            labels: BTreeMap::new(),
            depends_on: Vec::new(),
            user: None,
            working_dir: None,
            hostname: None,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            devices: Vec::new(),
            extra_hosts: Vec::new(),
            dns: Vec::new(),
            stop_signal: None,
            stop_grace_period: None,
            read_only: false,
            run: RunSpec::default(),
            network_settings: BTreeMap::new(),
            podman_secrets: Vec::new(),
            uidmaps: Vec::new(),
            gidmaps: Vec::new(),
            no_hosts: false,
            build: None,
        }
    }

    /// SHA-256 (hex) of the spec's canonical JSON. Maps are ordered and every field
    /// is present, so equal specs hash equally; secret values are not in the spec.
    pub fn config_hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("a spec always serializes");
        hex::encode(Sha256::digest(&json))
    }

    /// Every label the container is created with: the compose file's, then
    /// compose's and Magos's own (which win).
    pub fn all_labels(&self, stack: &StackSpec) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.extend(stack_labels(&stack.project, &stack.instance));
        labels.insert(LABEL_SERVICE.to_owned(), self.service.clone());
        labels.insert(LABEL_CONTAINER_NUMBER.to_owned(), self.number.to_string());
        labels.insert(LABEL_WORKING_DIR.to_owned(), stack.working_dir.clone());
        labels.insert(LABEL_CONFIG_FILES.to_owned(), stack.config_files.join(","));
        labels.insert(LABEL_CONFIG_HASH.to_owned(), self.config_hash());
        labels
    }
}

/// The labels every object of a managed stack carries.
pub fn stack_labels(project: &str, instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_PROJECT.to_owned(), project.to_owned()),
        (LABEL_PODMAN_PROJECT.to_owned(), project.to_owned()),
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_INSTANCE.to_owned(), instance.to_owned()),
    ])
}

/// podman-compose's default container name.
pub fn default_container_name(project: &str, service: &str) -> String {
    replica_name(project, service, 1)
}

/// podman-compose's name of a service's container number `n`.
pub fn replica_name(project: &str, service: &str, n: u32) -> String {
    format!("{project}_{service}_{n}")
}

fn is_first(n: &u32) -> bool {
    *n == 1
}

/// The temporary name of a service's replacement while a recreate is under way
/// (`<name>_magos-next`): created beside the running container, renamed into
/// place once the old one is removed.
pub fn replacement_name(name: &str) -> String {
    format!("{name}_magos-next")
}

/// podman-compose's name for a stack's network or volume declared under `key`.
pub fn scoped_name(project: &str, key: &str) -> String {
    format!("{project}_{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ContainerImage {
        ContainerImage {
            reference: "nginx:1.27".into(),
            qualified: "docker.io/library/nginx:1.27".into(),
            digest: None,
        }
    }

    #[test]
    fn names_follow_podman_compose() {
        let s = ContainerSpec::new("web", "app", image());
        assert_eq!(s.name, "web_app_1");
        assert_eq!(scoped_name("web", "default"), "web_default");
    }

    #[test]
    fn the_hash_changes_with_any_field_and_only_then() {
        let a = ContainerSpec::new("web", "app", image());
        let mut b = a.clone();
        assert_eq!(a.config_hash(), b.config_hash());
        b.environment.insert("A".into(), "1".into());
        assert_ne!(a.config_hash(), b.config_hash());
        let mut c = a.clone();
        c.image.digest = Some(
            crate::core::reference::Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
        );
        assert_ne!(a.config_hash(), c.config_hash());
        assert_eq!(a.config_hash().len(), 64);
    }

    /// The hash of a spec written before the volume, network, secret and
    /// `x-podman` fields existed: a spec that uses none of them keeps it, so an
    /// upgrade recreates nothing.
    #[test]
    fn new_fields_left_empty_keep_an_old_spec_hash() {
        let mut s = ContainerSpec::new("web", "app", image());
        s.mounts.push(MountSpec::Volume {
            name: "web_data".into(),
            target: "/data".into(),
            read_only: false,
            options: vec![],
            subpath: None,
        });
        s.mounts.push(MountSpec::Bind {
            source: "/repo/web/conf".into(),
            target: "/conf".into(),
            options: vec!["ro".into()],
            create_host_path: true,
        });
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            json.ends_with(r#""stop_signal":null,"stop_grace_period":null,"read_only":false}"#),
            "{json}"
        );
        assert!(
            json.contains(
                r#"{"type":"volume","name":"web_data","target":"/data","read_only":false}"#
            ),
            "{json}"
        );
        assert!(
            json.contains(
                r#"{"type":"bind","source":"/repo/web/conf","target":"/conf","options":["ro"]}"#
            ),
            "{json}"
        );
        let mut t = s.clone();
        t.uidmaps.push("0:1:1".into());
        assert_ne!(s.config_hash(), t.config_hash());
    }

    #[test]
    fn labels_are_compose_compatible_and_ours_win() {
        let stack = StackSpec {
            project: "web".into(),
            instance: "default".into(),
            working_dir: "/repo/web".into(),
            config_files: vec!["compose.yaml".into()],
            networks: vec![],
            volumes: vec![],
            services: vec![],
        };
        let mut s = ContainerSpec::new("web", "app", image());
        s.labels.insert(LABEL_PROJECT.into(), "spoofed".into());
        s.labels.insert("traefik.enable".into(), "true".into());
        let labels = s.all_labels(&stack);
        assert_eq!(labels[LABEL_PROJECT], "web");
        assert_eq!(labels[LABEL_PODMAN_PROJECT], "web");
        assert_eq!(labels[LABEL_SERVICE], "app");
        assert_eq!(labels[LABEL_MANAGED], "true");
        assert_eq!(labels["traefik.enable"], "true");
        assert_eq!(labels[LABEL_CONFIG_HASH], s.config_hash());
    }
}
