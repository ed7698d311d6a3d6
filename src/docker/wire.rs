//! serde structs for the Docker Engine API's JSON bodies (API 1.41 to 1.45, as
//! moby's `api/types` spell the fields). Wire types only: the core's plan and
//! drift types are separate and translate from them. Go's `null` for an empty
//! slice or map reads as empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Go writes an empty slice or map as `null`.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `GET /version`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    /// The engine's version (`26.1.5`).
    #[serde(default)]
    pub version: String,
    /// The newest API version it speaks (`1.45`).
    #[serde(default)]
    pub api_version: String,
    /// The oldest API version it speaks.
    #[serde(default, rename = "MinAPIVersion")]
    pub min_api_version: String,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// `amd64`.
    #[serde(default)]
    pub arch: String,
}

/// `GET /info` (the fields Magos reads).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Info {
    /// The storage driver (`overlay2`, `vfs`, …).
    #[serde(default)]
    pub driver: String,
    /// The engine's version.
    #[serde(default)]
    pub server_version: String,
    /// The data root.
    #[serde(default)]
    pub docker_root_dir: String,
    /// The cgroup driver (`cgroupfs`, `systemd`).
    #[serde(default)]
    pub cgroup_driver: String,
    /// `rootless` among them for a rootless engine.
    #[serde(default, deserialize_with = "nullable")]
    pub security_options: Vec<String>,
    /// Warnings the engine gives about itself.
    #[serde(default, deserialize_with = "nullable")]
    pub warnings: Vec<String>,
}

/// An error body: `{"message": "…"}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    /// The engine's message.
    #[serde(default)]
    pub message: String,
}

/// `GET /containers/json` entries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    /// The full id.
    pub id: String,
    /// Names, each with a leading `/`.
    #[serde(default, deserialize_with = "nullable")]
    pub names: Vec<String>,
    /// The image as given at create.
    #[serde(default)]
    pub image: String,
    /// The image's id (`sha256:…`).
    #[serde(default, rename = "ImageID")]
    pub image_id: String,
    /// Labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    #[serde(default)]
    pub state: String,
    /// `Up 3 minutes (healthy)`, `Exited (0) 2 seconds ago`.
    #[serde(default)]
    pub status: String,
}

impl ContainerSummary {
    /// The first name without its leading `/`.
    pub fn name(&self) -> &str {
        self.names
            .first()
            .map_or(self.id.as_str(), |n| n.trim_start_matches('/'))
    }
}

/// `GET /containers/{id}/json` (the fields Magos reads).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    /// The full id.
    #[serde(default)]
    pub id: String,
    /// The name, with a leading `/`.
    #[serde(default)]
    pub name: String,
    /// The image's id.
    #[serde(default)]
    pub image: String,
    /// The run state.
    #[serde(default)]
    pub state: ContainerState,
    /// How often its restart policy restarted it since it was created.
    #[serde(default)]
    pub restart_count: i64,
    /// The configuration it was created with.
    #[serde(default)]
    pub config: InspectConfig,
}

/// A container's state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// `created`, `running`, `exited`, …
    #[serde(default)]
    pub status: String,
    /// Running (paused or not).
    #[serde(default)]
    pub running: bool,
    /// Restarting.
    #[serde(default)]
    pub restarting: bool,
    /// The last exit code.
    #[serde(default)]
    pub exit_code: i64,
    /// The healthcheck's state, when it has one.
    #[serde(default)]
    pub health: Option<Health>,
}

/// `State.Health`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy`, `unhealthy`.
    #[serde(default)]
    pub status: String,
    /// Consecutive failures.
    #[serde(default)]
    pub failing_streak: i64,
}

/// `Config` of an inspected container.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    /// Labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// The image as given at create.
    #[serde(default)]
    pub image: String,
}

/// `GET /images/json` entries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    /// `sha256:…`.
    pub id: String,
    /// `name:tag`, as Docker shortens them (`nginx:1.27`).
    #[serde(default, deserialize_with = "nullable")]
    pub repo_tags: Vec<String>,
    /// `name@sha256:…`: the digests the image was pulled by (an index's for a
    /// multi-arch pull by digest).
    #[serde(default, deserialize_with = "nullable")]
    pub repo_digests: Vec<String>,
    /// Labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

/// One line of `POST /images/create`'s progress stream.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PullStatus {
    /// `Pulling fs layer`, `Downloading`, `Digest: sha256:…`, …
    #[serde(default)]
    pub status: String,
    /// The layer.
    #[serde(default)]
    pub id: String,
    /// The progress bar, as the CLI draws it.
    #[serde(default)]
    pub progress: String,
    /// Set when the pull failed after the answer's head.
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /networks` entries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    /// The name.
    pub name: String,
    /// The id.
    #[serde(default)]
    pub id: String,
    /// The driver.
    #[serde(default)]
    pub driver: String,
    /// Labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Address management.
    #[serde(default, rename = "IPAM")]
    pub ipam: Ipam,
}

/// A network's address management.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    /// The driver (`default`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// The subnets.
    #[serde(default, deserialize_with = "nullable")]
    pub config: Vec<IpamConfig>,
}

/// One subnet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    /// The CIDR.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    /// The gateway.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// The range leased from.
    #[serde(default, rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
}

/// `POST /networks/create`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreate {
    /// The name.
    pub name: String,
    /// The driver.
    pub driver: String,
    /// No route out.
    pub internal: bool,
    /// IPv6.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// `driver_opts:`.
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Address management.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// Refuse a second network of the same name (API < 1.44 allowed it).
    pub check_duplicate: bool,
}

/// `GET /volumes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeList {
    /// The volumes.
    #[serde(default, deserialize_with = "nullable")]
    pub volumes: Vec<Volume>,
}

/// A volume.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    /// The name.
    pub name: String,
    /// The driver.
    #[serde(default)]
    pub driver: String,
    /// Labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

/// `POST /volumes/create`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeCreate {
    /// The name.
    pub name: String,
    /// The driver.
    pub driver: String,
    /// `driver_opts:`.
    pub driver_opts: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// `POST /containers/create`'s answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateResponse {
    /// The new container's id.
    pub id: String,
    /// Warnings.
    #[serde(default, deserialize_with = "nullable")]
    pub warnings: Vec<String>,
}

/// `POST /containers/create`'s body: the container's `Config` with
/// `HostConfig` and `NetworkingConfig` beside it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCreate {
    /// The image.
    pub image: String,
    /// Replaces the image's command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Replaces the image's entrypoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=value`.
    pub env: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `port/proto` → `{}`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// `user:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `working_dir:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `hostname:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `stop_signal:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `stop_grace_period:`, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    /// The healthcheck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `tty:`.
    pub tty: bool,
    /// `stdin_open:`.
    pub open_stdin: bool,
    /// Host-side settings.
    pub host_config: HostConfig,
    /// The networks joined at create (API 1.44+ takes several).
    pub networking_config: NetworkingConfig,
}

/// `{}`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Empty {}

/// A healthcheck, durations in nanoseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]`, `["NONE"]`.
    pub test: Vec<String>,
    /// Between checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// A check's time limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Grace period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<u64>,
    /// Between checks in the grace period (API 1.44+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<u64>,
    /// Failures before unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// `HostConfig`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// `bridge`, `host`, `none`, `container:<id>`, or a network's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network_mode: String,
    /// `port/proto` → bindings; sent empty too, as `docker compose` sends
    /// it (the container then reports `{}`, not `null`).
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// Mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// tmpfs mounts: target → options (`size=64m,mode=1777`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tmpfs: BTreeMap<String, String>,
    /// The restart policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// `cap_add:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// `cap_drop:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// `dns:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `extra_hosts:` as `host:ip`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// `read_only:`.
    pub readonly_rootfs: bool,
    /// `init:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// `privileged:`.
    pub privileged: bool,
    /// Binds as `docker compose` writes a short-syntax bind
    /// (`source:target:ro,z`): the form that carries an SELinux relabel, which
    /// the mount API has no field for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<String>,
    /// `devices:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMapping>,
    /// `device_cgroup_rules:` (`c 1:3 mr`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// The memory limit, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// The memory reservation, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap, bytes; -1: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    /// The CPU limit in billionths of a core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    /// The CPU weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// The CPUs allowed (`0-3`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<String>,
    /// The process limit; -1: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// The size of `/dev/shm`, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    /// Kernel parameters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Resource limits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    /// Security options (`seccomp=<the profile's JSON>`, `label=…`, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Paths masked in the container; sent empty for
    /// `security_opt: systempaths=unconfined`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    /// Paths read-only in the container; sent empty for
    /// `security_opt: systempaths=unconfined`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,
    /// Supplementary groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// `host`, `container:<name>`, or empty (the container's own).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pid_mode: String,
    /// `host`, `private`, `shareable`, `none`, `container:<name>`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ipc_mode: String,
    /// `host`, or empty (the engine's).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub userns_mode: String,
    /// `oom_score_adj:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The log driver and its options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_config: Option<LogConfig>,
    /// `dns_search:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `dns_opt:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// OCI annotations (API 1.43+).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A device made available in the container.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    /// The device on the host.
    pub path_on_host: String,
    /// Its path in the container.
    pub path_in_container: String,
    /// `r`, `w`, `m` or a combination.
    pub cgroup_permissions: String,
}

/// A resource limit.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    /// The resource (`nofile`).
    pub name: String,
    /// The soft limit.
    pub soft: i64,
    /// The hard limit.
    pub hard: i64,
}

/// `HostConfig.LogConfig`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    /// The driver; empty for the engine's default.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The driver's options.
    pub config: BTreeMap<String, String>,
}

/// One host binding of a port.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// The host address, empty for all.
    pub host_ip: String,
    /// The host port, empty to let Docker choose.
    pub host_port: String,
}

/// A mount (`HostConfig.Mounts`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The host path or volume name (empty for tmpfs).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// The path in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
    /// `volume` options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    /// `bind` options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    /// `tmpfs` options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

/// A volume mount's options.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    /// Do not copy the image's files into an empty volume.
    pub no_copy: bool,
    /// Mount only this sub-folder (API 1.45+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// A bind mount's options.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct BindOptions {
    /// `rprivate`, `shared`, …
    #[serde(skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    /// Fail rather than create a missing source (compose creates it first).
    pub create_mountpoint: bool,
}

/// A tmpfs mount's options.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TmpfsOptions {
    /// Bytes; 0 for the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// The folder's mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// `no`, `always`, `on-failure`, `unless-stopped`.
    pub name: String,
    /// For `on-failure`.
    pub maximum_retry_count: u32,
}

/// `NetworkingConfig`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkingConfig {
    /// Network name → settings.
    pub endpoints_config: BTreeMap<String, EndpointSettings>,
}

/// One network's settings for the container.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    /// Names it is found by on the network.
    pub aliases: Vec<String>,
    /// Fixed addresses.
    #[serde(rename = "IPAMConfig", skip_serializing_if = "Option::is_none")]
    pub ipam_config: Option<EndpointIpam>,
    /// The MAC address (API 1.44+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

/// Fixed addresses on one network.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EndpointIpam {
    /// IPv4.
    #[serde(rename = "IPv4Address", skip_serializing_if = "String::is_empty")]
    pub ipv4: String,
    /// IPv6.
    #[serde(rename = "IPv6Address", skip_serializing_if = "String::is_empty")]
    pub ipv6: String,
}
