//! The libpod API's JSON bodies, written from Podman 5.4's Go types.
//!
//! Field names follow the Go JSON tags exactly (Podman mixes `PascalCase`,
//! `camelCase` and `snake_case`). Go encodes an empty slice or map as `null`;
//! fields that are collections read `null` as empty. Unknown fields are ignored,
//! so a newer Podman that adds fields still parses. Only what Magos needs is
//! declared; these are wire types, not domain types.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Reads `null` as the type's default (Go's nil slices and maps).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Labels, environment maps and the like.
pub type StringMap = BTreeMap<String, String>;

// ---------------------------------------------------------------------------
// Errors and system

/// Podman's error body (`errorhandling.ErrorModel`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorModel {
    /// The root cause, for machines.
    #[serde(default)]
    pub cause: String,
    /// The message, for people.
    #[serde(default)]
    pub message: String,
    /// The HTTP status.
    #[serde(default)]
    pub response: u16,
}

/// `GET /libpod/version` (`types.Version`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Version {
    /// The Podman version, e.g. `5.4.2`.
    #[serde(rename = "Version", default)]
    pub version: String,
    /// The Docker-compatible API version, e.g. `1.41`.
    #[serde(rename = "ApiVersion", default)]
    pub api_version: String,
    /// The oldest Docker-compatible API version served.
    #[serde(rename = "MinAPIVersion", default)]
    pub min_api_version: String,
    /// Operating system of the server.
    #[serde(rename = "Os", default)]
    pub os: String,
    /// Architecture of the server.
    #[serde(rename = "Arch", default)]
    pub arch: String,
    /// The kernel version.
    #[serde(rename = "KernelVersion", default)]
    pub kernel_version: String,
    /// Engine, conmon and OCI runtime versions.
    #[serde(rename = "Components", default, deserialize_with = "nullable")]
    pub components: Vec<ComponentVersion>,
}

/// One component of [`Version`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ComponentVersion {
    /// `Podman Engine`, `Conmon`, `OCI Runtime (runc)`.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Its version.
    #[serde(rename = "Version", default)]
    pub version: String,
    /// For the engine: `APIVersion` (the libpod API version), `MinAPIVersion`, ….
    #[serde(rename = "Details", default, deserialize_with = "nullable")]
    pub details: StringMap,
}

impl Version {
    /// The libpod API version the engine reports (`Components[Podman Engine]
    /// .Details.APIVersion`), else the Podman version.
    pub fn libpod_api_version(&self) -> &str {
        self.components
            .iter()
            .find(|c| c.name == "Podman Engine")
            .and_then(|c| c.details.get("APIVersion"))
            .map_or(self.version.as_str(), String::as_str)
    }
}

/// `GET /libpod/info` (`define.Info`), the parts Magos reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Info {
    /// The host.
    #[serde(default, deserialize_with = "nullable")]
    pub host: HostInfo,
    /// Storage.
    #[serde(default, deserialize_with = "nullable")]
    pub store: StoreInfo,
    /// The Podman build.
    #[serde(default)]
    pub version: InfoVersion,
}

/// `define.HostInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HostInfo {
    /// `amd64`, `arm64`, ….
    #[serde(default)]
    pub arch: String,
    /// `systemd` or `cgroupfs`.
    #[serde(rename = "cgroupManager", default)]
    pub cgroup_manager: String,
    /// `v1` or `v2`.
    #[serde(rename = "cgroupVersion", default)]
    pub cgroup_version: String,
    /// `journald`, `file` or `none`.
    #[serde(rename = "eventLogger", default)]
    pub event_logger: String,
    /// The host name.
    #[serde(default)]
    pub hostname: String,
    /// The kernel version.
    #[serde(default)]
    pub kernel: String,
    /// `netavark` or `cni`.
    #[serde(rename = "networkBackend", default)]
    pub network_backend: String,
    /// The OCI runtime.
    #[serde(rename = "ociRuntime", default, deserialize_with = "nullable")]
    pub oci_runtime: OciRuntimeInfo,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// netavark's (or CNI's) program and aardvark-dns's.
    #[serde(rename = "networkBackendInfo", default, deserialize_with = "nullable")]
    pub network_backend_info: NetworkBackendInfo,
    /// The rootless network command: `pasta` or `slirp4netns`.
    #[serde(rename = "rootlessNetworkCmd", default)]
    pub rootless_network_cmd: String,
    /// pasta's executable and version.
    #[serde(default)]
    pub pasta: ToolInfo,
    /// slirp4netns's executable and version.
    #[serde(default)]
    pub slirp4netns: ToolInfo,
    /// Security facts, including whether the service runs rootless.
    #[serde(default)]
    pub security: SecurityInfo,
    /// The API socket as the server sees it.
    #[serde(rename = "remoteSocket", default)]
    pub remote_socket: Option<RemoteSocket>,
    /// Whether the service runs on another machine.
    #[serde(rename = "serviceIsRemote", default)]
    pub service_is_remote: bool,
    /// `sqlite` or `boltdb`.
    #[serde(rename = "databaseBackend", default)]
    pub database_backend: String,
    /// The default log driver.
    #[serde(rename = "logDriver", default)]
    pub log_driver: String,
}

/// `define.OCIRuntimeInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct OciRuntimeInfo {
    /// `runc`, `crun`.
    #[serde(default)]
    pub name: String,
    /// The package it came from.
    #[serde(default)]
    pub package: String,
    /// Its path.
    #[serde(default)]
    pub path: String,
    /// Its version text.
    #[serde(default)]
    pub version: String,
}

/// `types.NetworkInfo`: the network backend's program and its DNS server's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NetworkBackendInfo {
    /// `netavark` or `cni`.
    #[serde(default)]
    pub backend: String,
    /// The backend program's path.
    #[serde(default)]
    pub path: String,
    /// The package it came from.
    #[serde(default)]
    pub package: String,
    /// The DNS server (aardvark-dns).
    #[serde(default, deserialize_with = "nullable")]
    pub dns: NetworkDnsInfo,
}

/// `types.DNSNetworkInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NetworkDnsInfo {
    /// aardvark-dns's path; empty when Podman finds none.
    #[serde(default)]
    pub path: String,
    /// The package it came from.
    #[serde(default)]
    pub package: String,
}

/// `define.PastaInfo` / `define.SlirpInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ToolInfo {
    /// The executable's path; empty when not installed.
    #[serde(default)]
    pub executable: String,
    /// The package it came from.
    #[serde(default)]
    pub package: String,
    /// Its version text.
    #[serde(default)]
    pub version: String,
}

/// `define.SecurityInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SecurityInfo {
    /// Whether the service runs rootless.
    #[serde(default)]
    pub rootless: bool,
    /// Whether SELinux is enabled.
    #[serde(rename = "selinuxEnabled", default)]
    pub selinux_enabled: bool,
    /// Whether AppArmor is enabled.
    #[serde(rename = "apparmorEnabled", default)]
    pub apparmor_enabled: bool,
    /// Whether seccomp is enabled.
    #[serde(rename = "seccompEnabled", default)]
    pub seccomp_enabled: bool,
}

/// `define.RemoteSocket`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RemoteSocket {
    /// `unix:///run/user/1000/podman/podman.sock`.
    #[serde(default)]
    pub path: String,
    /// Whether it exists.
    #[serde(default)]
    pub exists: bool,
}

/// `define.StoreInfo`, the parts Magos reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StoreInfo {
    /// Where images and containers are stored.
    #[serde(rename = "graphRoot", default)]
    pub graph_root: String,
    /// Where runtime state lives.
    #[serde(rename = "runRoot", default)]
    pub run_root: String,
    /// Where named volumes live.
    #[serde(rename = "volumePath", default)]
    pub volume_path: String,
    /// `overlay`, `vfs`, ….
    #[serde(rename = "graphDriverName", default)]
    pub graph_driver_name: String,
}

/// `define.Version` inside [`Info`] (Go field names, no tags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InfoVersion {
    /// The libpod API version.
    #[serde(rename = "APIVersion", default)]
    pub api_version: String,
    /// The Podman version.
    #[serde(rename = "Version", default)]
    pub version: String,
    /// `linux/amd64`.
    #[serde(rename = "OsArch", default)]
    pub os_arch: String,
}

// ---------------------------------------------------------------------------
// Containers

/// One entry of `GET /libpod/containers/json` (`types.ListContainer`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ListContainer {
    /// The container ID.
    #[serde(rename = "Id", default)]
    pub id: String,
    /// Its names (one).
    #[serde(rename = "Names", default, deserialize_with = "nullable")]
    pub names: Vec<String>,
    /// The image as the user gave it.
    #[serde(rename = "Image", default)]
    pub image: String,
    /// The image ID.
    #[serde(rename = "ImageID", default)]
    pub image_id: String,
    /// The command.
    #[serde(rename = "Command", default, deserialize_with = "nullable")]
    pub command: Vec<String>,
    /// Labels.
    #[serde(rename = "Labels", default, deserialize_with = "nullable")]
    pub labels: StringMap,
    /// `created`, `running`, `exited`, ….
    #[serde(rename = "State", default)]
    pub state: String,
    /// Human status, e.g. `Up 3 minutes (healthy)`.
    #[serde(rename = "Status", default)]
    pub status: String,
    /// Whether it has exited.
    #[serde(rename = "Exited", default)]
    pub exited: bool,
    /// The exit code of the last run.
    #[serde(rename = "ExitCode", default)]
    pub exit_code: i32,
    /// Networks it is attached to.
    #[serde(rename = "Networks", default, deserialize_with = "nullable")]
    pub networks: Vec<String>,
    /// Published ports.
    #[serde(rename = "Ports", default, deserialize_with = "nullable")]
    pub ports: Vec<PortMapping>,
    /// How often it was restarted by its restart policy.
    #[serde(rename = "Restarts", default)]
    pub restarts: u64,
    /// The pod ID, if any.
    #[serde(rename = "Pod", default)]
    pub pod: String,
    /// Creation time (RFC 3339).
    #[serde(rename = "Created", default)]
    pub created: String,
    /// Start time, Unix seconds.
    #[serde(rename = "StartedAt", default)]
    pub started_at: i64,
}

impl ListContainer {
    /// The container's name (Podman gives exactly one).
    pub fn name(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }
}

/// A port mapping (`types.PortMapping`): in lists and in [`SpecGenerator`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address; empty for all.
    #[serde(default)]
    pub host_ip: String,
    /// The port inside the container.
    #[serde(default)]
    pub container_port: u16,
    /// The port on the host; 0 picks a free one.
    #[serde(default)]
    pub host_port: u16,
    /// How many consecutive ports; 0 or 1 for one.
    #[serde(default)]
    pub range: u16,
    /// `tcp`, `udp`, `sctp` (comma-separated for several); empty is `tcp`.
    #[serde(default)]
    pub protocol: String,
}

/// `GET /libpod/containers/{name}/json` (`define.InspectContainerData`), the parts
/// Magos reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ContainerInspect {
    /// The container ID.
    #[serde(rename = "Id", default)]
    pub id: String,
    /// The name.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Creation time (RFC 3339).
    #[serde(rename = "Created", default)]
    pub created: String,
    /// The entry point's path.
    #[serde(rename = "Path", default)]
    pub path: String,
    /// The entry point's arguments.
    #[serde(rename = "Args", default, deserialize_with = "nullable")]
    pub args: Vec<String>,
    /// Run state.
    #[serde(rename = "State", default)]
    pub state: Option<ContainerState>,
    /// The image **ID**.
    #[serde(rename = "Image", default)]
    pub image: String,
    /// The image's main manifest digest **at inspect time**. An image known under
    /// several manifest digests (pushed elsewhere, pulled again by another digest)
    /// may show another of them than the one the container was created from;
    /// [`Self::image_name`] keeps the reference as given, and the image's
    /// `RepoDigests` list all its digests.
    #[serde(rename = "ImageDigest", default)]
    pub image_digest: String,
    /// The image as the user gave it.
    #[serde(rename = "ImageName", default)]
    pub image_name: String,
    /// How often it was restarted.
    #[serde(rename = "RestartCount", default)]
    pub restart_count: i32,
    /// Mounts.
    #[serde(rename = "Mounts", default, deserialize_with = "nullable")]
    pub mounts: Vec<InspectMount>,
    /// Containers it depends on.
    #[serde(rename = "Dependencies", default, deserialize_with = "nullable")]
    pub dependencies: Vec<String>,
    /// Network state.
    #[serde(rename = "NetworkSettings", default)]
    pub network_settings: Option<NetworkSettings>,
    /// Configuration.
    #[serde(rename = "Config", default)]
    pub config: Option<ContainerConfig>,
    /// Host configuration.
    #[serde(rename = "HostConfig", default)]
    pub host_config: Option<HostConfig>,
    /// The pod ID, if any.
    #[serde(rename = "Pod", default)]
    pub pod: String,
}

impl ContainerInspect {
    /// The labels (empty when there is no config).
    pub fn labels(&self) -> &StringMap {
        static EMPTY: StringMap = BTreeMap::new();
        self.config.as_ref().map_or(&EMPTY, |c| &c.labels)
    }

    /// Whether the container is running.
    pub fn is_running(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.running)
    }

    /// The health status (`healthy`, `unhealthy`, `starting`), if it has a check.
    pub fn health_status(&self) -> Option<&str> {
        self.state
            .as_ref()?
            .health
            .as_ref()
            .map(|h| h.status.as_str())
            .filter(|s| !s.is_empty())
    }
}

/// `define.InspectContainerState`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ContainerState {
    /// `created`, `running`, `exited`, `stopped`, `paused`, ….
    #[serde(rename = "Status", default)]
    pub status: String,
    /// Whether it runs.
    #[serde(rename = "Running", default)]
    pub running: bool,
    /// Whether it is paused.
    #[serde(rename = "Paused", default)]
    pub paused: bool,
    /// Whether it is restarting.
    #[serde(rename = "Restarting", default)]
    pub restarting: bool,
    /// Whether the OOM killer ended it.
    #[serde(rename = "OOMKilled", default)]
    pub oom_killed: bool,
    /// Whether it is dead.
    #[serde(rename = "Dead", default)]
    pub dead: bool,
    /// Its main process.
    #[serde(rename = "Pid", default)]
    pub pid: i64,
    /// The exit code of the last run.
    #[serde(rename = "ExitCode", default)]
    pub exit_code: i32,
    /// The runtime's error, if any.
    #[serde(rename = "Error", default)]
    pub error: String,
    /// Start time (RFC 3339).
    #[serde(rename = "StartedAt", default)]
    pub started_at: String,
    /// End time (RFC 3339).
    #[serde(rename = "FinishedAt", default)]
    pub finished_at: String,
    /// Health, when the container has a healthcheck.
    #[serde(rename = "Health", default)]
    pub health: Option<HealthCheckResults>,
    /// Whether a user stopped it.
    #[serde(rename = "StoppedByUser", default)]
    pub stopped_by_user: bool,
}

/// `define.HealthCheckResults`: also the answer of a healthcheck run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HealthCheckResults {
    /// `healthy`, `unhealthy` or `starting`.
    #[serde(rename = "Status", default)]
    pub status: String,
    /// Consecutive failures.
    #[serde(rename = "FailingStreak", default)]
    pub failing_streak: i64,
    /// The last checks.
    #[serde(rename = "Log", default, deserialize_with = "nullable")]
    pub log: Vec<HealthCheckLog>,
}

/// `define.HealthCheckLog`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HealthCheckLog {
    /// Start time.
    #[serde(rename = "Start", default)]
    pub start: String,
    /// End time.
    #[serde(rename = "End", default)]
    pub end: String,
    /// The check's exit code.
    #[serde(rename = "ExitCode", default)]
    pub exit_code: i32,
    /// Its output.
    #[serde(rename = "Output", default)]
    pub output: String,
}

/// `define.InspectMount`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InspectMount {
    /// `bind`, `volume`, `tmpfs`, ….
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// The volume's name, for volumes.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// The host path.
    #[serde(rename = "Source", default)]
    pub source: String,
    /// The path in the container.
    #[serde(rename = "Destination", default)]
    pub destination: String,
    /// Mount options.
    #[serde(rename = "Options", default, deserialize_with = "nullable")]
    pub options: Vec<String>,
    /// Whether it is writable.
    #[serde(rename = "RW", default)]
    pub rw: bool,
}

/// `define.InspectNetworkSettings` (with the embedded basic config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NetworkSettings {
    /// Published ports: `"8080/tcp"` → bindings (`null` when exposed only).
    #[serde(rename = "Ports", default, deserialize_with = "nullable")]
    pub ports: BTreeMap<String, Option<Vec<InspectHostPort>>>,
    /// The network namespace path (for `pasta` containers: what their pasta
    /// process serves).
    #[serde(rename = "SandboxKey", default)]
    pub sandbox_key: String,
    /// The address on the default network.
    #[serde(rename = "IPAddress", default)]
    pub ip_address: String,
    /// Networks joined: name → details.
    #[serde(rename = "Networks", default, deserialize_with = "nullable")]
    pub networks: BTreeMap<String, InspectNetwork>,
}

/// `define.InspectHostPort`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InspectHostPort {
    /// The host address.
    #[serde(rename = "HostIp", default)]
    pub host_ip: String,
    /// The host port, as text.
    #[serde(rename = "HostPort", default)]
    pub host_port: String,
}

/// `define.InspectAdditionalNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InspectNetwork {
    /// The network's ID.
    #[serde(rename = "NetworkID", default)]
    pub network_id: String,
    /// DNS aliases on this network.
    #[serde(rename = "Aliases", default, deserialize_with = "nullable")]
    pub aliases: Vec<String>,
    /// The address.
    #[serde(rename = "IPAddress", default)]
    pub ip_address: String,
    /// The gateway.
    #[serde(rename = "Gateway", default)]
    pub gateway: String,
    /// The MAC address.
    #[serde(rename = "MacAddress", default)]
    pub mac_address: String,
}

/// `define.InspectContainerConfig`, the parts Magos reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ContainerConfig {
    /// The host name.
    #[serde(rename = "Hostname", default)]
    pub hostname: String,
    /// The user.
    #[serde(rename = "User", default)]
    pub user: String,
    /// `KEY=value` entries.
    #[serde(rename = "Env", default, deserialize_with = "nullable")]
    pub env: Vec<String>,
    /// The command.
    #[serde(rename = "Cmd", default, deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    /// The image as given.
    #[serde(rename = "Image", default)]
    pub image: String,
    /// The working directory.
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: String,
    /// The entry point (a list in Podman 5).
    #[serde(rename = "Entrypoint", default, deserialize_with = "nullable")]
    pub entrypoint: Vec<String>,
    /// Labels.
    #[serde(rename = "Labels", default, deserialize_with = "nullable")]
    pub labels: StringMap,
    /// The stop signal by name, e.g. `SIGTERM` (a string in Podman 5).
    #[serde(rename = "StopSignal", default)]
    pub stop_signal: String,
    /// Seconds to wait after the stop signal.
    #[serde(rename = "StopTimeout", default)]
    pub stop_timeout: u64,
    /// The healthcheck.
    #[serde(rename = "Healthcheck", default)]
    pub healthcheck: Option<HealthConfig>,
}

/// `define.InspectContainerHostConfig`, the parts Magos reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HostConfig {
    /// `bridge`, `pasta`, `host`, `none`, `container:<id>`, ….
    #[serde(rename = "NetworkMode", default)]
    pub network_mode: String,
    /// Requested port bindings.
    #[serde(rename = "PortBindings", default, deserialize_with = "nullable")]
    pub port_bindings: BTreeMap<String, Option<Vec<InspectHostPort>>>,
    /// The restart policy.
    #[serde(rename = "RestartPolicy", default)]
    pub restart_policy: Option<RestartPolicy>,
    /// Added capabilities.
    #[serde(rename = "CapAdd", default, deserialize_with = "nullable")]
    pub cap_add: Vec<String>,
    /// Dropped capabilities.
    #[serde(rename = "CapDrop", default, deserialize_with = "nullable")]
    pub cap_drop: Vec<String>,
    /// DNS servers.
    #[serde(rename = "Dns", default, deserialize_with = "nullable")]
    pub dns: Vec<String>,
    /// DNS search domains.
    #[serde(rename = "DnsSearch", default, deserialize_with = "nullable")]
    pub dns_search: Vec<String>,
    /// DNS resolver options.
    #[serde(rename = "DnsOptions", default, deserialize_with = "nullable")]
    pub dns_options: Vec<String>,
    /// Devices added to the container (rootful; rootless, devices are bound in
    /// and not listed here).
    #[serde(rename = "Devices", default, deserialize_with = "nullable")]
    pub devices: Vec<InspectDevice>,
    /// Extra `/etc/hosts` entries.
    #[serde(rename = "ExtraHosts", default, deserialize_with = "nullable")]
    pub extra_hosts: Vec<String>,
    /// Whether the root file system is read-only.
    #[serde(rename = "ReadonlyRootfs", default)]
    pub readonly_rootfs: bool,
    /// tmpfs mounts: path → options.
    #[serde(rename = "Tmpfs", default, deserialize_with = "nullable")]
    pub tmpfs: StringMap,
}

/// `define.InspectDevice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InspectDevice {
    /// The device on the host.
    #[serde(rename = "PathOnHost", default)]
    pub path_on_host: String,
    /// Its path in the container.
    #[serde(rename = "PathInContainer", default)]
    pub path_in_container: String,
    /// Cgroup permissions (`rwm`).
    #[serde(rename = "CgroupPermissions", default)]
    pub cgroup_permissions: String,
}

/// `define.InspectRestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RestartPolicy {
    /// `no`, `always`, `on-failure`, `unless-stopped` (empty for none).
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Retries for `on-failure`.
    #[serde(rename = "MaximumRetryCount", default)]
    pub maximum_retry_count: u64,
}

/// A healthcheck (`manifest.Schema2HealthConfig`): durations are integer
/// nanoseconds. Through the API a zero is taken as it is, not as the CLI's
/// default (a zero `Timeout` fails every check at once): start from
/// [`HealthConfig::new`], which fills Podman's CLI defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `["CMD", args…]`, `["CMD-SHELL", command]` or `["NONE"]`.
    #[serde(
        rename = "Test",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    /// Time before the first check counts, in nanoseconds.
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    /// Interval during the start period, in nanoseconds.
    #[serde(rename = "StartInterval", default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    /// Interval between checks, in nanoseconds.
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    /// Time limit of one check, in nanoseconds.
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// Consecutive failures that make the container unhealthy.
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero_i")]
    pub retries: i64,
}

impl HealthConfig {
    /// A check running `test` with Podman's CLI defaults
    /// (`libpod/define/healthchecks.go`): every 30 s, 30 s time limit, unhealthy
    /// after 3 failures, no start period.
    pub fn new(test: Vec<String>) -> Self {
        const SECOND: u64 = 1_000_000_000;
        Self {
            test,
            start_period: 0,
            start_interval: 0,
            interval: 30 * SECOND,
            timeout: 30 * SECOND,
            retries: 3,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_i(n: &i64) -> bool {
    *n == 0
}

/// `POST /libpod/containers/create` answer (`entities.ContainerCreateResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ContainerCreateResponse {
    /// The new container's ID.
    #[serde(rename = "Id", default)]
    pub id: String,
    /// Warnings Podman gave.
    #[serde(rename = "Warnings", default, deserialize_with = "nullable")]
    pub warnings: Vec<String>,
}

/// The body of `POST /libpod/containers/create` (`specgen.SpecGenerator`), the
/// fields Magos sets. Everything left empty is omitted, so Podman applies its own
/// defaults (image config, containers.conf).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpecGenerator {
    /// The container name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The image (a reference or ID). Required.
    pub image: String,
    /// Replaces the image's entry point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Environment variables.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: StringMap,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: StringMap,
    /// The stop signal's number (see [`super::signal::number`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<i32>,
    /// Seconds between the stop signal and `SIGKILL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    /// `no`, `always`, `on-failure`, `unless-stopped`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    /// Retries for `on-failure`.
    #[serde(rename = "restart_tries", skip_serializing_if = "Option::is_none")]
    pub restart_tries: Option<u64>,
    /// The host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The user (`uid`, `uid:gid`, a name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    /// The network namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<Namespace>,
    /// Networks to join, with per-network options (the Go field has no JSON tag,
    /// hence the capital).
    #[serde(rename = "Networks", skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, PerNetworkOptions>,
    /// Published ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub portmappings: Vec<PortMapping>,
    /// Named volumes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<NamedVolume>,
    /// Bind and tmpfs mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Devices, each `{"path": "/dev/src[:/dev/dst[:rwm]]"}` as the CLI sends them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// The healthcheck.
    #[serde(rename = "healthconfig", skip_serializing_if = "Option::is_none")]
    pub health_config: Option<HealthConfig>,
    /// Capabilities to add.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Extra `/etc/hosts` entries, `host:ip`.
    #[serde(rename = "hostadd", skip_serializing_if = "Vec::is_empty")]
    pub host_add: Vec<String>,
    /// DNS servers (IP addresses).
    #[serde(rename = "dns_server", skip_serializing_if = "Vec::is_empty")]
    pub dns_server: Vec<String>,
    /// DNS search domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// DNS resolver options.
    #[serde(rename = "dns_option", skip_serializing_if = "Vec::is_empty")]
    pub dns_option: Vec<String>,
    /// A read-only root file system.
    #[serde(skip_serializing_if = "is_false")]
    pub read_only_filesystem: bool,
    /// Run the image's init (`--init`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// Containers that must run first (IDs or names).
    #[serde(rename = "dependencyContainers", skip_serializing_if = "Vec::is_empty")]
    pub dependency_containers: Vec<String>,
    /// Options of the network mode, e.g. `{"pasta": ["-T", "8080"]}`.
    #[serde(rename = "network_options", skip_serializing_if = "BTreeMap::is_empty")]
    pub network_options: BTreeMap<String, Vec<String>>,
    /// The user namespace (`userns_mode`, or `private` with ID mappings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns: Option<Namespace>,
    /// UID and GID mappings (`--uidmap`, `--gidmap`).
    #[serde(rename = "idmappings", skip_serializing_if = "Option::is_none")]
    pub id_mappings: Option<IdMappingOptions>,
    /// Keep the image's `/etc/hosts` instead of writing one (`--no-hosts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_image_hosts: Option<bool>,
    /// Podman secrets mounted in `/run/secrets`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretMount>,
    /// Podman secrets as environment variables: variable → secret.
    #[serde(rename = "secret_env", skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: StringMap,
    // -- run-time settings (compose `expose`, resources, security, namespaces,
    // logging, …)
    /// Ports exposed without publishing: port → `tcp`, `udp`, `tcp,udp`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub expose: BTreeMap<u16, String>,
    /// Memory, CPU and process limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_limits: Option<LinuxResources>,
    /// Resource limits (`ulimit`); `type` without the `RLIMIT_` prefix.
    #[serde(rename = "r_limits", skip_serializing_if = "Vec::is_empty")]
    pub r_limits: Vec<Rlimit>,
    /// `/dev/shm` size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    /// Privileged mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Kernel parameters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: StringMap,
    /// Supplementary groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// SELinux options (`disable`, `type:…`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub selinux_opts: Vec<String>,
    /// Nested SELinux labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_nested: Option<bool>,
    /// The AppArmor profile.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub apparmor_profile: String,
    /// A seccomp profile file, or `unconfined`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub seccomp_profile_path: String,
    /// The no-new-privileges flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_new_privileges: Option<bool>,
    /// Paths masked in the container.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mask: Vec<String>,
    /// Paths unmasked (`ALL`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmask: Vec<String>,
    /// Options of the `/proc` mount.
    #[serde(rename = "procfs_opts", skip_serializing_if = "Vec::is_empty")]
    pub procfs_opts: Vec<String>,
    /// A terminal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal: Option<bool>,
    /// Standard input kept open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<bool>,
    /// The PID namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pidns: Option<Namespace>,
    /// The IPC namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipcns: Option<Namespace>,
    /// The OOM score adjustment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The log driver and options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfig>,
    /// The image's platform: OS.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_os: String,
    /// The image's platform: architecture.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_arch: String,
    /// The image's platform: variant.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_variant: String,
    /// OCI annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: StringMap,
    /// Device cgroup rules.
    #[serde(rename = "device_cgroup_rule", skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rule: Vec<DeviceCgroupRule>,
}

/// `specs.LinuxResources`, the parts Magos sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinuxResources {
    /// Memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<LinuxMemory>,
    /// CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<LinuxCpu>,
    /// Processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<LinuxPids>,
}

/// `specs.LinuxMemory` (bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinuxMemory {
    /// The limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// The soft limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<i64>,
    /// Memory plus swap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<i64>,
}

/// `specs.LinuxCPU`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinuxCpu {
    /// Relative weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    /// CFS quota, microseconds per period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    /// CFS period, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    /// CPUs allowed (`0-3`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cpus: String,
}

/// `specs.LinuxPids`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinuxPids {
    /// The limit (0 or -1: none).
    pub limit: i64,
}

/// `specs.POSIXRlimit`; libpod takes the name without `RLIMIT_` (`nofile`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rlimit {
    /// `nofile`, `nproc`, ….
    #[serde(rename = "type")]
    pub kind: String,
    /// The hard limit.
    pub hard: u64,
    /// The soft limit.
    pub soft: u64,
}

/// `specgen.LogConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogConfig {
    /// The driver (empty: the configured default).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// The log file.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The largest log file, bytes.
    #[serde(skip_serializing_if = "is_zero_i")]
    pub size: i64,
    /// Driver options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: StringMap,
}

/// `specs.LinuxDeviceCgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceCgroupRule {
    /// Allow (always true from compose).
    pub allow: bool,
    /// `a`, `b` or `c`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The major number; `None`: any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    /// The minor number; `None`: any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    /// `r`, `w`, `m`.
    pub access: String,
}

/// `types.IDMappingOptions` (containers/storage; Go field names, no tags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdMappingOptions {
    /// Use the host's UIDs (no mapping).
    #[serde(rename = "HostUIDMapping")]
    pub host_uid_mapping: bool,
    /// Use the host's GIDs (no mapping).
    #[serde(rename = "HostGIDMapping")]
    pub host_gid_mapping: bool,
    /// UID ranges.
    #[serde(rename = "UIDMap", skip_serializing_if = "Vec::is_empty")]
    pub uid_map: Vec<IdMap>,
    /// GID ranges.
    #[serde(rename = "GIDMap", skip_serializing_if = "Vec::is_empty")]
    pub gid_map: Vec<IdMap>,
}

/// `idtools.IDMap`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdMap {
    /// The first ID in the container.
    pub container_id: u32,
    /// The first ID outside (in a rootless user namespace: of the user's range).
    pub host_id: u32,
    /// How many.
    pub size: u32,
}

/// `specgen.Secret` (Go field names, no tags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecretMount {
    /// The Podman secret's name.
    #[serde(rename = "Source")]
    pub source: String,
    /// The file name under `/run/secrets` or an absolute path.
    #[serde(rename = "Target", skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// The file's owner.
    #[serde(rename = "UID")]
    pub uid: u32,
    /// The file's group.
    #[serde(rename = "GID")]
    pub gid: u32,
    /// The file's mode.
    #[serde(rename = "Mode")]
    pub mode: u32,
}

/// `specgen.Namespace`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// `bridge`, `pasta`, `host`, `none`, `private`, `container`, `path`, ….
    pub nsmode: String,
    /// The mode's argument (e.g. pasta options, a container ID, a path).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// `types.PerNetworkOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PerNetworkOptions {
    /// DNS aliases on this network.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Static addresses (rootful only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_ips: Vec<String>,
    /// The interface name in the container; empty lets Podman choose.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub interface_name: String,
    /// A fixed MAC address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub static_mac: String,
}

/// `specgen.NamedVolume` (Go field names, no tags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NamedVolume {
    /// The volume's name (created if missing).
    #[serde(rename = "Name")]
    pub name: String,
    /// The path in the container.
    #[serde(rename = "Dest")]
    pub dest: String,
    /// Mount options (`ro`, `z`, …).
    #[serde(rename = "Options", skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// A sub-directory of the volume to mount.
    #[serde(rename = "SubPath", skip_serializing_if = "String::is_empty")]
    pub sub_path: String,
}

/// An OCI mount (`specs.Mount`): binds and tmpfs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// The path in the container.
    pub destination: String,
    /// `bind` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The host path (for tmpfs: `tmpfs`).
    pub source: String,
    /// Options (`ro`, `rbind`, `size=64m`, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A device (`specs.LinuxDevice`): the CLI puts its whole `--device` argument in
/// `path`, and so does Magos.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Device {
    /// `/dev/src[:/dev/dst[:permissions]]`.
    pub path: String,
}

// ---------------------------------------------------------------------------
// Images

/// One object of the `POST /libpod/images/pull` stream (`types.ImagePullReport`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ImagePullReport {
    /// A progress line from the image library.
    #[serde(default)]
    pub stream: String,
    /// The error that ended the pull (the answer's status is still 200).
    #[serde(default)]
    pub error: String,
    /// IDs of the pulled images (last object).
    #[serde(default, deserialize_with = "nullable")]
    pub images: Vec<String>,
    /// The last pulled image's ID (last object).
    #[serde(default)]
    pub id: String,
}

/// `GET /libpod/images/{name}/json` (`inspect.ImageData`), the parts Magos reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ImageInspect {
    /// The image ID.
    #[serde(rename = "Id", default)]
    pub id: String,
    /// The manifest digest the image was pulled by.
    #[serde(rename = "Digest", default)]
    pub digest: String,
    /// `repo:tag` names.
    #[serde(rename = "RepoTags", default, deserialize_with = "nullable")]
    pub repo_tags: Vec<String>,
    /// `repo@sha256:…` names.
    #[serde(rename = "RepoDigests", default, deserialize_with = "nullable")]
    pub repo_digests: Vec<String>,
    /// Creation time (RFC 3339).
    #[serde(rename = "Created", default)]
    pub created: Option<String>,
    /// `amd64`, `arm64`, ….
    #[serde(rename = "Architecture", default)]
    pub architecture: String,
    /// `linux`.
    #[serde(rename = "Os", default)]
    pub os: String,
    /// Labels.
    #[serde(rename = "Labels", default, deserialize_with = "nullable")]
    pub labels: StringMap,
    /// The image's own healthcheck.
    #[serde(rename = "Healthcheck", default)]
    pub healthcheck: Option<HealthConfig>,
}

/// One entry of `GET /libpod/images/json` (`entities.ImageSummary`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ImageSummary {
    /// The image ID.
    #[serde(rename = "Id", default)]
    pub id: String,
    /// The digest it was pulled by.
    #[serde(rename = "Digest", default)]
    pub digest: String,
    /// `name:tag` references.
    #[serde(rename = "RepoTags", default, deserialize_with = "nullable")]
    pub repo_tags: Vec<String>,
    /// `name@sha256:…` references: every manifest (index or platform) it is known by.
    #[serde(rename = "RepoDigests", default, deserialize_with = "nullable")]
    pub repo_digests: Vec<String>,
    /// The image's labels.
    #[serde(rename = "Labels", default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

/// One object of the `POST /libpod/build` stream (Docker's `JSONMessage`, as
/// libpod writes it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BuildReport {
    /// Output of the build (`STEP 1/3: FROM …`, a `RUN` step's output).
    #[serde(default)]
    pub stream: String,
    /// The error that ended the build (the answer's status is still 200).
    #[serde(default)]
    pub error: String,
    /// The built image, in the last object.
    #[serde(default)]
    pub aux: Option<BuildAux>,
}

/// `aux` of a build's last object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BuildAux {
    /// The built image's ID.
    #[serde(rename = "ID", default)]
    pub id: String,
}

// ---------------------------------------------------------------------------
// Networks

/// A network (`types.Network`): list, inspect and create answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Network {
    /// The name.
    #[serde(default)]
    pub name: String,
    /// The ID.
    #[serde(default)]
    pub id: String,
    /// `bridge`, `macvlan`, `ipvlan`.
    #[serde(default)]
    pub driver: String,
    /// The host interface (e.g. `podman1`).
    #[serde(default)]
    pub network_interface: String,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created: String,
    /// Subnets.
    #[serde(default, deserialize_with = "nullable")]
    pub subnets: Vec<Subnet>,
    /// Whether IPv6 is on.
    #[serde(default)]
    pub ipv6_enabled: bool,
    /// Whether it has no outside access.
    #[serde(default)]
    pub internal: bool,
    /// Whether aardvark-dns serves names on it.
    #[serde(default)]
    pub dns_enabled: bool,
    /// Labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: StringMap,
    /// Driver options.
    #[serde(default, deserialize_with = "nullable")]
    pub options: StringMap,
}

/// `types.Subnet`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// CIDR, e.g. `10.89.0.0/24`.
    pub subnet: String,
    /// The gateway address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// The addresses leased to containers, when not the whole subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_range: Option<LeaseRange>,
}

/// `types.LeaseRange`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRange {
    /// The first address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start_ip: String,
    /// The last address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end_ip: String,
}

/// `types.Route`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination CIDR.
    pub destination: String,
    /// The gateway.
    pub gateway: String,
    /// The metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// The body of `POST /libpod/networks/create` (`types.Network`, lower-case keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkCreate {
    /// The name.
    pub name: String,
    /// `bridge` (default), `macvlan`, `ipvlan`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// Subnets; empty lets Podman choose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<Subnet>,
    /// No outside access.
    pub internal: bool,
    /// Name resolution between containers (on for compose networks).
    pub dns_enabled: bool,
    /// IPv6.
    pub ipv6_enabled: bool,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: StringMap,
    /// Driver options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: StringMap,
    /// `{"driver": "host-local" | "dhcp" | "none"}`; empty for Podman's own.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ipam_options: StringMap,
    /// DNS servers of the network.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_dns_servers: Vec<String>,
    /// Extra routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

impl NetworkCreate {
    /// A bridge network with DNS, as `podman network create NAME` makes it.
    pub fn bridge(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            driver: "bridge".to_owned(),
            subnets: Vec::new(),
            internal: false,
            dns_enabled: true,
            ipv6_enabled: false,
            labels: StringMap::new(),
            options: StringMap::new(),
            ipam_options: StringMap::new(),
            network_dns_servers: Vec::new(),
            routes: Vec::new(),
        }
    }
}

/// One entry of the `DELETE /libpod/networks/{name}` answer (`NetworkRmReport`):
/// Go encodes the error value as an object with no fields, so only its presence
/// tells.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct NetworkRmReport {
    /// The network.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Present when the removal failed.
    #[serde(rename = "Err", default)]
    pub err: Option<serde_json::Value>,
}

// ---------------------------------------------------------------------------
// Volumes

/// A volume (`define.InspectVolumeData`): list, inspect and create answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Volume {
    /// The name.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// `local` or a plugin.
    #[serde(rename = "Driver", default)]
    pub driver: String,
    /// Where its data lives on the host.
    #[serde(rename = "Mountpoint", default)]
    pub mountpoint: String,
    /// Creation time (RFC 3339).
    #[serde(rename = "CreatedAt", default)]
    pub created_at: String,
    /// Labels.
    #[serde(rename = "Labels", default, deserialize_with = "nullable")]
    pub labels: StringMap,
    /// Driver options.
    #[serde(rename = "Options", default, deserialize_with = "nullable")]
    pub options: StringMap,
    /// How many containers mount it now.
    #[serde(rename = "MountCount", default)]
    pub mount_count: u64,
}

/// The body of `POST /libpod/volumes/create` (`types.VolumeCreateOptions`, Go
/// field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VolumeCreate {
    /// The name.
    #[serde(rename = "Name")]
    pub name: String,
    /// The driver; empty for `local`.
    #[serde(rename = "Driver", skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// Labels.
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: StringMap,
    /// Driver options (`type`, `device`, `o`, …).
    #[serde(rename = "Options", skip_serializing_if = "BTreeMap::is_empty")]
    pub options: StringMap,
}

// ---------------------------------------------------------------------------
// Events

/// One event of `GET /libpod/events` (`types.Event`: a Docker event message plus
/// the health status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Event {
    /// `container`, `image`, `network`, `volume`, `pod`, `system`.
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// `create`, `start`, `died`, `stop`, `remove`, `health_status`, ….
    #[serde(rename = "Action", default)]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor", default)]
    pub actor: Actor,
    /// Unix seconds.
    #[serde(default)]
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano", default)]
    pub time_nano: i64,
    /// For `health_status` events: `healthy`, `unhealthy`, `starting`.
    #[serde(rename = "HealthStatus", default)]
    pub health_status: String,
}

impl Event {
    /// The object's name (`Actor.Attributes.name`).
    pub fn name(&self) -> Option<&str> {
        self.actor.attributes.get("name").map(String::as_str)
    }

    /// An attribute, e.g. a container label, `image` or `containerExitCode`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.actor.attributes.get(key).map(String::as_str)
    }
}

/// `events.Actor`: for containers, `Attributes` holds `name`, `image`,
/// `containerExitCode` and the container's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Actor {
    /// The object's ID.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Attributes and labels.
    #[serde(rename = "Attributes", default, deserialize_with = "nullable")]
    pub attributes: StringMap,
}

// ---------------------------------------------------------------------------
// Exec

/// The body of `POST /libpod/containers/{name}/exec` (Docker's `ExecConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExecCreate {
    /// The command and its arguments.
    #[serde(rename = "Cmd")]
    pub cmd: Vec<String>,
    /// Capture standard output.
    #[serde(rename = "AttachStdout")]
    pub attach_stdout: bool,
    /// Capture standard error.
    #[serde(rename = "AttachStderr")]
    pub attach_stderr: bool,
    /// `KEY=value` entries.
    #[serde(rename = "Env", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// The user.
    #[serde(rename = "User", skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The working directory.
    #[serde(rename = "WorkingDir", skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
}

/// The answer of an exec create: `{"Id": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IdResponse {
    /// The ID.
    #[serde(rename = "Id", default)]
    pub id: String,
}

/// `GET /libpod/exec/{id}/json` (`define.InspectExecSession`), the parts Magos
/// reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ExecInspect {
    /// The session ID.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Whether it still runs.
    #[serde(rename = "Running", default)]
    pub running: bool,
    /// The exit code, once it ended.
    #[serde(rename = "ExitCode", default)]
    pub exit_code: i32,
}

#[cfg(test)]
mod tests;
