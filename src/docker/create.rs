//! A stack's specs as Docker Engine request bodies, named and labelled as
//! `docker compose` (v2) names and labels its objects, so `docker compose ps`
//! lists Magos's containers and `docker compose up` finds its networks and
//! volumes as its own.
//!
//! The mapping sends each key of [`ContainerSpec`] as `docker compose` sends
//! it to `POST /containers/create` (run-time settings, devices, binds with an
//! SELinux relabel as `HostConfig.Binds` strings, `file:` secrets as read-only
//! binds). [`unsupported`] names what a Docker Engine cannot express
//! (`build:`, Podman-only options and modes, secrets other than files), and a
//! stack using any of it is applied with `docker compose` instead.
//! podman-compose's `x-podman` extensions are ignored, as `docker compose`
//! ignores them ([`ignored`] names them for the plan's notes).

use std::collections::BTreeMap;

use crate::core::plan::pull_reference;
use crate::core::spec::{
    ContainerSpec, LogSpec, MountSpec, NetworkMode, NetworkSpec, RestartPolicy, SharedNamespace,
    StackSpec, VolumeSpec,
};

use super::wire::{
    BindOptions, ContainerCreate, DeviceMapping, Empty, EndpointIpam, EndpointSettings,
    HealthConfig, HostConfig, Ipam, IpamConfig, LogConfig, Mount, NetworkCreate, NetworkingConfig,
    PortBinding, Ulimit, VolumeCreate, VolumeOptions,
};

/// Label: the hash `docker compose` compares to decide a recreate (Magos writes
/// its own config hash there too).
pub const LABEL_COMPOSE_CONFIG_HASH: &str = "com.docker.compose.config-hash";
/// Label: `False` for a service's containers (`True` for `docker compose run`).
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
/// Label: the compose version that made the object.
pub const LABEL_COMPOSE_VERSION: &str = "com.docker.compose.version";
/// Label: a network's key in the compose file.
pub const LABEL_NETWORK: &str = "com.docker.compose.network";
/// Label: a volume's key in the compose file.
pub const LABEL_VOLUME: &str = "com.docker.compose.volume";
/// The version written in [`LABEL_COMPOSE_VERSION`]: the compose file format
/// Magos reads (`docker compose` checks only that the label is there).
pub const COMPOSE_VERSION: &str = "2.26.1";

/// `docker compose`'s name of a service's container number `n`.
pub fn compose_container_name(project: &str, service: &str, n: u32) -> String {
    format!("{project}-{service}-{n}")
}

/// Renames the stack's containers as `docker compose` names them
/// (`<project>-<service>-<n>`); a `container_name:` stays.
pub fn compose_names(stack: &mut StackSpec) {
    let project = stack.project.clone();
    for spec in &mut stack.services {
        if spec.name == crate::core::spec::replica_name(&project, &spec.service, spec.number) {
            spec.name = compose_container_name(&project, &spec.service, spec.number);
        }
    }
}

/// What in `spec` the Docker mapping does not apply, as compose keys; empty
/// when the container can be created natively.
pub fn unsupported(spec: &ContainerSpec) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut add = |k: String| {
        if !keys.contains(&k) {
            keys.push(k);
        }
    };
    if spec.build.is_some() {
        add("build".to_owned());
    }
    for d in &spec.devices {
        if is_cdi(d) {
            add(format!("devices: CDI device `{d}`"));
        } else if device(d).is_none() {
            add(format!("devices: `{d}`"));
        }
    }
    // Docker keeps secrets only in Swarm: a `file:` secret is a bind (in
    // `mounts`), the others are `docker compose`'s.
    for s in &spec.podman_secrets {
        add(match (&s.from_env, s.as_env) {
            (_, true) => format!("secrets: `{}` with `type: env`", s.target),
            (Some(_), false) => format!("secrets: `{}` from `environment:`", s.source),
            (None, false) => format!("secrets: external `{}`", s.source),
        });
    }
    if matches!(spec.network_mode, NetworkMode::Pasta(_)) {
        add("network_mode: pasta".to_owned());
    }
    for m in &spec.mounts {
        match m {
            MountSpec::Volume { options, .. } => {
                for o in options.iter().filter(|o| volume_option(o).is_none()) {
                    add(format!("volumes: option `{o}` of a named volume"));
                }
            }
            MountSpec::Bind { options, .. } => {
                for o in options.iter().filter(|o| bind_option(o).is_none()) {
                    add(format!("volumes: bind option `{o}`"));
                }
            }
            // `HostConfig.Tmpfs` takes the options as written, as `docker
            // compose` sends them.
            MountSpec::Tmpfs { .. } => {}
        }
    }
    let run = &spec.run;
    if let Some(u) = run.userns.as_deref().filter(|u| *u != "host") {
        add(format!("userns_mode: {u}"));
    }
    for o in &run.security_opt {
        let key = o.split('=').next().unwrap_or_default();
        if matches!(key, "mask" | "unmask" | "proc-opts") || o == "label=nested" {
            add(format!("security_opt: {o}"));
        }
    }
    keys
}

/// podman-compose's extensions `spec` uses, which `docker compose` ignores and
/// so does the Docker mapping: their keys, for the plan's notes.
pub fn ignored(spec: &ContainerSpec) -> Vec<String> {
    let mut out = Vec::new();
    if !spec.uidmaps.is_empty() {
        out.push("x-podman.uidmaps".to_owned());
    }
    if !spec.gidmaps.is_empty() {
        out.push("x-podman.gidmaps".to_owned());
    }
    if spec.no_hosts {
        out.push("x-podman.no_hosts".to_owned());
    }
    for (net, a) in &spec.network_settings {
        if a.interface_name.is_some() {
            out.push(format!("networks.{net}.x-podman.interface_name"));
        }
        if a.mac_from_x_podman {
            out.push(format!("networks.{net}.x-podman.mac_address"));
        }
    }
    out
}

/// The propagation modes Docker's mount API takes.
const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// What a named volume's option does on Docker: `Some(true)` for `nocopy`,
/// `Some(false)` for what `docker compose` accepts and drops on a volume (an
/// SELinux relabel, a propagation, `copy`, Docker's default), `None` for what
/// Docker cannot express (`U`, `O`, `idmap`, mount flags).
fn volume_option(o: &str) -> Option<bool> {
    match o {
        "nocopy" => Some(true),
        "ro" | "rw" | "z" | "Z" | "copy" | "rbind" => Some(false),
        _ if PROPAGATIONS.contains(&o) => Some(false),
        _ => None,
    }
}

/// A bind option as Docker takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BindOption<'a> {
    /// `ro`, `rw`, `rbind` (the recursive bind, Docker's default).
    Access,
    /// A propagation mode.
    Propagation(&'a str),
    /// `z` or `Z`: only a `HostConfig.Binds` string carries it.
    Relabel(&'a str),
}

/// What a bind option sets; `None` when Docker has no such option.
fn bind_option(o: &str) -> Option<BindOption<'_>> {
    match o {
        "ro" | "rw" | "rbind" => Some(BindOption::Access),
        "z" | "Z" => Some(BindOption::Relabel(o)),
        _ if PROPAGATIONS.contains(&o) => Some(BindOption::Propagation(o)),
        _ => None,
    }
}

/// A CDI device name (`nvidia.com/gpu=all`), as GPU reservations become:
/// `docker compose` asks for those through device requests instead.
fn is_cdi(d: &str) -> bool {
    !d.starts_with('/') && d.contains('=')
}

/// A `devices:` entry as the Docker CLI reads it: `host`, `host:container`,
/// `host:perms`, `host:container:perms`; permissions `rwm` unless given.
fn device(d: &str) -> Option<DeviceMapping> {
    let mode = |p: &str| !p.is_empty() && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let parts: Vec<&str> = d.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if mode(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if mode(p) => (*h, *c, *p),
        _ => return None,
    };
    (!host.is_empty() && !container.is_empty()).then(|| DeviceMapping {
        path_on_host: host.to_owned(),
        path_in_container: container.to_owned(),
        cgroup_permissions: perms.to_owned(),
    })
}

/// A size in bytes as a log driver's `max-size` is written (decimal units,
/// `10m` for 10 000 000, as Docker's drivers read it).
fn decimal_size(bytes: i64) -> String {
    for (unit, n) in [("g", 1_000_000_000), ("m", 1_000_000), ("k", 1_000)] {
        if bytes != 0 && bytes % n == 0 {
            return format!("{}{unit}", bytes / n);
        }
    }
    bytes.to_string()
}

/// The `LogConfig` of a `logging:` block: the driver and its options as
/// written (`path` and `max-size` back among them).
fn log_config(l: &LogSpec) -> LogConfig {
    let mut config = l.options.clone();
    if let Some(p) = &l.path {
        config.insert("path".to_owned(), p.clone());
    }
    if let Some(m) = l.max_size {
        config.insert("max-size".to_owned(), decimal_size(m));
    }
    LogConfig {
        kind: l.driver.clone().unwrap_or_default(),
        config,
    }
}

/// Another service's container, as a namespace mode joins it
/// (`container:<name>`).
fn service_container(
    stack: &StackSpec,
    spec: &ContainerSpec,
    key: &str,
    target: &str,
) -> Result<String, String> {
    stack
        .services
        .iter()
        .find(|s| s.service == target)
        .map(|s| format!("container:{}", s.name))
        .ok_or_else(|| {
            format!(
                "service `{}`: {key} names service `{target}`, which the stack does not have",
                spec.service
            )
        })
}

/// A `pid:` or `ipc:` namespace as Docker names it (`pid: private` is
/// Docker's default, which it has no word for).
fn namespace(
    stack: &StackSpec,
    spec: &ContainerSpec,
    key: &str,
    ns: Option<&SharedNamespace>,
) -> Result<String, String> {
    Ok(match ns {
        None => String::new(),
        Some(SharedNamespace::Host) => "host".to_owned(),
        Some(SharedNamespace::Mode(m)) if key == "pid" && m == "private" => String::new(),
        Some(SharedNamespace::Mode(m)) => m.clone(),
        Some(SharedNamespace::Service(t)) => service_container(stack, spec, key, t)?,
        Some(SharedNamespace::Container(c)) => format!("container:{c}"),
    })
}

/// Compacts a JSON text as Go's `json.Compact` does (what `docker compose`
/// sends of a seccomp profile): the whitespace between tokens removed,
/// everything else kept in order.
pub fn compact_json(text: &str) -> Result<String, String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    Ok(out)
}

/// Replaces each `seccomp=<file>` security option of `body` with the profile
/// itself (`seccomp=<compacted JSON>`), as `docker compose` does: the engine
/// takes a profile, not a path. `read` reads a file.
pub fn inline_seccomp(
    service: &str,
    body: &mut ContainerCreate,
    read: impl Fn(&str) -> std::io::Result<String>,
) -> Result<(), String> {
    for o in &mut body.host_config.security_opt {
        let Some(path) = o.strip_prefix("seccomp=").filter(|p| p.starts_with('/')) else {
            continue;
        };
        let text =
            read(path).map_err(|e| format!("service `{service}`: seccomp profile {path}: {e}"))?;
        let profile = compact_json(&text)
            .map_err(|e| format!("service `{service}`: seccomp profile {path} is not JSON: {e}"))?;
        *o = format!("seccomp={profile}");
    }
    Ok(())
}

/// The host paths of the binds `body` sends as `HostConfig.Binds` strings:
/// Docker would create such a source when it is missing, where the mount API
/// refuses it.
pub fn bind_string_sources(body: &ContainerCreate) -> Vec<&str> {
    body.host_config
        .binds
        .iter()
        .filter_map(|b| b.rsplitn(3, ':').nth(2))
        .collect()
}

/// A network's or volume's key: its name without the `<project>_` prefix.
pub fn key_of<'a>(project: &str, name: &'a str) -> &'a str {
    name.strip_prefix(project)
        .and_then(|r| r.strip_prefix('_'))
        .unwrap_or(name)
}

/// Every label of a service's container: Magos's (with compose's project,
/// service, number, working dir and files) and the rest of `docker compose`'s.
pub fn container_labels(stack: &StackSpec, spec: &ContainerSpec) -> BTreeMap<String, String> {
    let mut labels = spec.all_labels(stack);
    labels.insert(LABEL_COMPOSE_CONFIG_HASH.to_owned(), spec.config_hash());
    labels.insert(LABEL_ONEOFF.to_owned(), "False".to_owned());
    labels.insert(LABEL_COMPOSE_VERSION.to_owned(), COMPOSE_VERSION.to_owned());
    labels
}

/// The `POST /networks/create` body.
pub fn network(stack: &StackSpec, net: &NetworkSpec) -> NetworkCreate {
    let mut labels = net.labels.clone();
    labels.extend(crate::core::spec::stack_labels(
        &stack.project,
        &stack.instance,
    ));
    labels.insert(
        LABEL_NETWORK.to_owned(),
        key_of(&stack.project, &net.name).to_owned(),
    );
    labels.insert(LABEL_COMPOSE_VERSION.to_owned(), COMPOSE_VERSION.to_owned());
    NetworkCreate {
        name: net.name.clone(),
        driver: net.driver.clone().unwrap_or_else(|| "bridge".to_owned()),
        internal: net.internal,
        enable_ipv6: net.ipv6,
        options: net.options.clone(),
        labels,
        ipam: Ipam {
            driver: net.ipam_driver.clone().unwrap_or_default(),
            config: net
                .subnets
                .iter()
                .map(|s| IpamConfig {
                    subnet: s.subnet.clone(),
                    gateway: s.gateway.clone().unwrap_or_default(),
                    ip_range: s.ip_range.clone().unwrap_or_default(),
                })
                .collect(),
        },
        check_duplicate: true,
    }
}

/// The `POST /volumes/create` body.
pub fn volume(stack: &StackSpec, vol: &VolumeSpec) -> VolumeCreate {
    let mut labels = vol.labels.clone();
    labels.extend(crate::core::spec::stack_labels(
        &stack.project,
        &stack.instance,
    ));
    labels.insert(
        LABEL_VOLUME.to_owned(),
        key_of(&stack.project, &vol.name).to_owned(),
    );
    labels.insert(LABEL_COMPOSE_VERSION.to_owned(), COMPOSE_VERSION.to_owned());
    VolumeCreate {
        name: vol.name.clone(),
        driver: vol.driver.clone().unwrap_or_else(|| "local".to_owned()),
        driver_opts: vol.options.clone(),
        labels,
    }
}

/// The run-time settings (`RunSpec`) and devices, as `docker compose` sends
/// them in `HostConfig`.
fn run_settings(
    stack: &StackSpec,
    spec: &ContainerSpec,
    host: &mut HostConfig,
) -> Result<(), String> {
    let r = &spec.run;
    host.memory = r.memory;
    host.memory_reservation = r.memory_reservation;
    host.memory_swap = r.memory_swap;
    host.nano_cpus = r.cpus_micro.map(|c| c.saturating_mul(1000));
    host.cpu_shares = r.cpu_shares;
    host.cpuset_cpus = r.cpuset.clone();
    // As `docker compose`: a limit of 0 (none) is not sent.
    host.pids_limit = r.pids_limit.filter(|n| *n != 0);
    host.shm_size = r.shm_size;
    host.sysctls = r.sysctls.clone();
    host.ulimits = r
        .ulimits
        .iter()
        .map(|(name, u)| Ulimit {
            name: name.clone(),
            soft: u.soft,
            hard: u.hard,
        })
        .collect();
    for o in &r.security_opt {
        // The Docker CLI's own option, not the engine's: no masked and no
        // read-only paths.
        if o == "systempaths=unconfined" {
            host.masked_paths = Some(Vec::new());
            host.readonly_paths = Some(Vec::new());
        } else {
            host.security_opt.push(o.clone());
        }
    }
    host.group_add = r.group_add.clone();
    host.pid_mode = namespace(stack, spec, "pid", r.pid.as_ref())?;
    host.ipc_mode = namespace(stack, spec, "ipc", r.ipc.as_ref())?;
    host.userns_mode = r.userns.clone().unwrap_or_default();
    host.oom_score_adj = r.oom_score_adj;
    host.log_config = r.logging.as_ref().map(log_config);
    host.dns_search = r.dns_search.clone();
    host.dns_options = r.dns_opt.clone();
    host.annotations = r.annotations.clone();
    host.device_cgroup_rules = r.device_cgroup_rules.clone();
    host.devices = spec.devices.iter().filter_map(|d| device(d)).collect();
    Ok(())
}

fn nanos(d: Option<std::time::Duration>) -> Option<u64> {
    d.map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
}

/// The `POST /containers/create` body of `spec`, with `env` (variables decrypted
/// at apply time, never in the spec) added. Fails naming what cannot be
/// expressed; [`unsupported`] lists the keys beforehand.
pub fn container(
    stack: &StackSpec,
    spec: &ContainerSpec,
    env: &BTreeMap<String, String>,
) -> Result<ContainerCreate, String> {
    let missing = unsupported(spec);
    if !missing.is_empty() {
        return Err(format!(
            "service `{}`: not applied natively with Docker: {}",
            spec.service,
            missing.join(", ")
        ));
    }
    let mut environment = spec.environment.clone();
    environment.extend(
        env.iter()
            .filter(|(k, _)| spec.secret_environment.contains(k))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let mut body = ContainerCreate {
        image: pull_reference(&spec.image),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        labels: container_labels(stack, spec),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        hostname: spec.hostname.clone(),
        stop_signal: spec.stop_signal.clone(),
        stop_timeout: spec.stop_grace_period.map(|d| d.as_secs()),
        healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: h.test.clone(),
            interval: nanos(h.interval),
            timeout: nanos(h.timeout),
            start_period: nanos(h.start_period),
            start_interval: nanos(h.start_interval),
            retries: h.retries,
        }),
        tty: spec.run.tty,
        open_stdin: spec.run.stdin_open,
        ..ContainerCreate::default()
    };
    // A pinned image is created by its digest: Docker keeps no tag for it.
    if let Some(d) = &spec.image.digest {
        let repo = super::client::pull_parts(&body.image).0;
        body.image = format!("{repo}@{d}");
    }
    let mut host = HostConfig {
        cap_add: spec.cap_add.clone(),
        cap_drop: spec.cap_drop.clone(),
        dns: spec.dns.clone(),
        extra_hosts: spec.extra_hosts.clone(),
        readonly_rootfs: spec.read_only,
        init: spec.run.init,
        privileged: spec.run.privileged,
        restart_policy: spec.restart.map(|r| super::wire::RestartPolicy {
            name: match r {
                RestartPolicy::No => "no",
                RestartPolicy::Always => "always",
                RestartPolicy::OnFailure => "on-failure",
                RestartPolicy::UnlessStopped => "unless-stopped",
            }
            .to_owned(),
            maximum_retry_count: if r == RestartPolicy::OnFailure {
                spec.run.restart_tries.unwrap_or(0)
            } else {
                0
            },
        }),
        ..HostConfig::default()
    };
    run_settings(stack, spec, &mut host)?;
    let mut endpoints = BTreeMap::new();
    host.network_mode = match &spec.network_mode {
        NetworkMode::Bridge => {
            for (net, aliases) in &spec.networks {
                // As `docker compose` gives them: the container's name, the
                // service's, then the file's aliases (a repeated name too).
                let aliases: Vec<String> = [spec.name.clone(), spec.service.clone()]
                    .into_iter()
                    .chain(aliases.iter().cloned())
                    .collect();
                let fixed = spec.network_settings.get(net).cloned().unwrap_or_default();
                // `x-podman.mac_address` is podman-compose's: ignored, as
                // `docker compose` ignores it.
                let mac = fixed.mac.clone().filter(|_| !fixed.mac_from_x_podman);
                let ipv4 = fixed.static_ips.iter().find(|ip| !ip.contains(':'));
                let ipv6 = fixed.static_ips.iter().find(|ip| ip.contains(':'));
                endpoints.insert(
                    net.clone(),
                    EndpointSettings {
                        aliases,
                        ipam_config: (ipv4.is_some() || ipv6.is_some()).then(|| EndpointIpam {
                            ipv4: ipv4.cloned().unwrap_or_default(),
                            ipv6: ipv6.cloned().unwrap_or_default(),
                        }),
                        mac_address: mac,
                    },
                );
            }
            spec.networks
                .keys()
                .next()
                .cloned()
                .unwrap_or_else(|| "bridge".to_owned())
        }
        NetworkMode::Host => "host".to_owned(),
        NetworkMode::None => "none".to_owned(),
        NetworkMode::Service(target) => service_container(stack, spec, "network_mode", target)?,
        NetworkMode::Container(other) => format!("container:{other}"),
        NetworkMode::Pasta(_) => unreachable!("refused by unsupported()"),
    };
    body.networking_config = NetworkingConfig {
        endpoints_config: endpoints,
    };
    for p in &spec.ports {
        for i in 0..p.range.max(1) {
            let key = format!("{}/{}", p.container_port + i, p.protocol);
            let host_port = if p.host_port == 0 {
                String::new()
            } else {
                (p.host_port + i).to_string()
            };
            body.exposed_ports.insert(key.clone(), Empty {});
            host.port_bindings
                .entry(key)
                .or_default()
                .push(PortBinding {
                    host_ip: p.host_ip.clone(),
                    host_port,
                });
        }
    }
    for (port, protocols) in &spec.run.expose {
        for proto in protocols.split(',') {
            body.exposed_ports
                .insert(format!("{port}/{proto}"), Empty {});
        }
    }
    for m in &spec.mounts {
        host.mounts.push(match m {
            MountSpec::Volume {
                name,
                target,
                read_only,
                options,
                subpath,
            } => Mount {
                kind: "volume".to_owned(),
                source: name.clone(),
                target: target.clone(),
                read_only: *read_only || options.iter().any(|o| o == "ro"),
                volume_options: Some(VolumeOptions {
                    no_copy: options.iter().any(|o| volume_option(o) == Some(true)),
                    subpath: subpath.clone(),
                }),
                ..Mount::default()
            },
            MountSpec::Bind {
                source,
                target,
                options,
                ..
            } => {
                let read_only = options.iter().any(|o| o == "ro");
                let propagation = options.iter().find_map(|o| match bind_option(o) {
                    Some(BindOption::Propagation(p)) => Some(p),
                    _ => None,
                });
                let relabel = options.iter().find_map(|o| match bind_option(o) {
                    Some(BindOption::Relabel(l)) => Some(l),
                    _ => None,
                });
                // An SELinux relabel only a bind string carries, as `docker
                // compose` sends a short-syntax bind:
                // `source:target:ro|rw,z[,propagation]`.
                if let Some(label) = relabel {
                    let mut mode = vec![if read_only { "ro" } else { "rw" }, label];
                    mode.extend(propagation);
                    host.binds
                        .push(format!("{source}:{target}:{}", mode.join(",")));
                    continue;
                }
                Mount {
                    kind: "bind".to_owned(),
                    source: source.clone(),
                    target: target.clone(),
                    read_only,
                    bind_options: Some(BindOptions {
                        propagation: propagation.unwrap_or_default().to_owned(),
                        create_mountpoint: false,
                    }),
                    ..Mount::default()
                }
            }
            // As `docker compose` makes a `tmpfs:` entry: `HostConfig.Tmpfs`,
            // its options as written (`size=64m,mode=1777`).
            MountSpec::Tmpfs { target, options } => {
                host.tmpfs.insert(target.clone(), options.join(","));
                continue;
            }
        });
    }
    body.host_config = host;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::{
        AttachSpec, ContainerImage, HealthSpec, LABEL_CONFIG_HASH, LABEL_CONTAINER_NUMBER,
        LABEL_PROJECT, LABEL_SERVICE, LogSpec, MountSpec, PodmanSecretSpec, PortSpec,
        SharedNamespace, UlimitSpec,
    };
    use std::time::Duration;

    fn stack(services: Vec<ContainerSpec>) -> StackSpec {
        StackSpec {
            project: "web".into(),
            instance: "default".into(),
            working_dir: "/repo/web".into(),
            config_files: vec!["compose.yaml".into()],
            networks: vec![],
            volumes: vec![],
            services,
        }
    }

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn spec(service: &str) -> ContainerSpec {
        let mut s = ContainerSpec::new(
            "web",
            service,
            ContainerImage {
                reference: format!("127.0.0.1:5000/magos/httpd:1@{D}"),
                qualified: "127.0.0.1:5000/magos/httpd:1".into(),
                digest: Some(crate::core::reference::Digest::parse(D).unwrap()),
            },
        );
        s.networks.insert("web_default".into(), vec![]);
        s
    }

    #[test]
    fn containers_are_named_as_docker_compose_names_them_and_container_name_stays() {
        let mut own = spec("db");
        own.name = "my-db".into();
        let mut s = stack(vec![spec("app"), own]);
        s.services[0].number = 1;
        compose_names(&mut s);
        assert_eq!(s.services[0].name, "web-app-1");
        assert_eq!(s.services[1].name, "my-db");
    }

    #[test]
    fn a_container_carries_docker_compose_s_labels_and_is_created_by_digest() {
        let mut s = stack(vec![spec("app")]);
        compose_names(&mut s);
        let body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        assert_eq!(body.image, format!("127.0.0.1:5000/magos/httpd@{D}"));
        let l = &body.labels;
        assert_eq!(l[LABEL_PROJECT], "web");
        assert_eq!(l[LABEL_SERVICE], "app");
        assert_eq!(l[LABEL_CONTAINER_NUMBER], "1");
        assert_eq!(l[LABEL_ONEOFF], "False");
        assert_eq!(l[LABEL_COMPOSE_CONFIG_HASH], l[LABEL_CONFIG_HASH]);
        assert!(l.contains_key(LABEL_COMPOSE_VERSION));
        assert_eq!(body.host_config.network_mode, "web_default");
        assert_eq!(
            body.networking_config.endpoints_config["web_default"].aliases,
            ["web-app-1", "app"]
        );
        // No ports: an empty map, as `docker compose` sends, not none.
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["HostConfig"]["PortBindings"], serde_json::json!({}));
    }

    #[test]
    fn ports_mounts_and_healthchecks_become_docker_fields() {
        let mut c = spec("app");
        c.ports.push(PortSpec {
            host_ip: "127.0.0.1".into(),
            host_port: 8080,
            container_port: 80,
            range: 2,
            protocol: "tcp".into(),
        });
        c.mounts.push(MountSpec::Volume {
            name: "web_data".into(),
            target: "/data".into(),
            read_only: true,
            options: vec!["nocopy".into()],
            subpath: None,
        });
        c.mounts.push(MountSpec::Tmpfs {
            target: "/tmp".into(),
            options: vec!["size=64m".into()],
        });
        c.healthcheck = Some(HealthSpec {
            test: vec!["CMD".into(), "true".into()],
            interval: Some(Duration::from_secs(2)),
            timeout: None,
            start_period: None,
            retries: Some(3),
            start_interval: None,
        });
        let s = stack(vec![c]);
        let body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        let b = &body.host_config.port_bindings;
        assert_eq!(b["80/tcp"][0].host_port, "8080");
        assert_eq!(b["81/tcp"][0].host_port, "8081");
        assert_eq!(b["81/tcp"][0].host_ip, "127.0.0.1");
        let m = &body.host_config.mounts;
        assert_eq!((m[0].kind.as_str(), m[0].read_only), ("volume", true));
        assert!(m[0].volume_options.as_ref().unwrap().no_copy);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(body.host_config.tmpfs["/tmp"], "size=64m");
        let h = body.healthcheck.unwrap();
        assert_eq!((h.interval, h.retries), (Some(2_000_000_000), Some(3)));
    }

    #[test]
    fn what_the_mapping_cannot_express_is_named_and_refused() {
        let mut c = spec("app");
        assert!(unsupported(&c).is_empty());
        c.run.userns = Some("keep-id".into());
        c.devices.push("nvidia.com/gpu=all".into());
        c.run.security_opt.push("mask=/proc/acpi".into());
        c.mounts.push(MountSpec::Volume {
            name: "web_data".into(),
            target: "/data".into(),
            read_only: false,
            options: vec!["U".into()],
            subpath: None,
        });
        c.mounts.push(MountSpec::Bind {
            source: "/srv".into(),
            target: "/srv".into(),
            options: vec!["noexec".into()],
            create_host_path: false,
        });
        c.network_mode = NetworkMode::Pasta(vec![]);
        let keys = unsupported(&c);
        assert_eq!(
            keys,
            [
                "devices: CDI device `nvidia.com/gpu=all`",
                "network_mode: pasta",
                "volumes: option `U` of a named volume",
                "volumes: bind option `noexec`",
                "userns_mode: keep-id",
                "security_opt: mask=/proc/acpi",
            ]
        );
        let s = stack(vec![c]);
        let e = container(&s, &s.services[0], &BTreeMap::new()).unwrap_err();
        assert!(
            e.contains("service `app`") && e.contains("userns_mode"),
            "{e}"
        );
    }

    #[test]
    fn secrets_other_than_files_go_to_docker_compose_each_named() {
        let mut c = spec("app");
        let secret = |source: &str, from_env: Option<&str>, as_env: bool| PodmanSecretSpec {
            source: source.into(),
            target: "t".into(),
            from_env: from_env.map(Into::into),
            uid: None,
            gid: None,
            mode: None,
            as_env,
        };
        c.podman_secrets = vec![
            secret("token", None, false),
            secret("web_key", Some("KEY"), false),
            secret("token", None, true),
        ];
        assert_eq!(
            unsupported(&c),
            [
                "secrets: external `token`",
                "secrets: `web_key` from `environment:`",
                "secrets: `t` with `type: env`",
            ]
        );
    }

    #[test]
    fn resources_become_host_config_fields_as_docker_compose_sends_them() {
        let mut c = spec("app");
        c.run.memory = Some(1_610_612_736);
        c.run.memory_reservation = Some(64 << 20);
        c.run.memory_swap = Some(-1);
        c.run.cpus_micro = Some(500_000);
        c.run.cpu_shares = Some(512);
        c.run.cpuset = Some("0-1".into());
        c.run.pids_limit = Some(100);
        c.run.shm_size = Some(128 << 20);
        c.run.oom_score_adj = Some(-500);
        let s = stack(vec![c]);
        let body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        let h = serde_json::to_value(&body).unwrap()["HostConfig"].clone();
        assert_eq!(h["Memory"], 1_610_612_736);
        assert_eq!(h["MemoryReservation"], 64 << 20);
        assert_eq!(h["MemorySwap"], -1);
        assert_eq!(h["NanoCpus"], 500_000_000);
        assert_eq!(h["CpuShares"], 512);
        assert_eq!(h["CpusetCpus"], "0-1");
        assert_eq!(h["PidsLimit"], 100);
        assert_eq!(h["ShmSize"], 128 << 20);
        assert_eq!(h["OomScoreAdj"], -500);
        // Unset: not sent, so the engine's defaults apply.
        let plain = stack(vec![spec("app")]);
        let body = container(&plain, &plain.services[0], &BTreeMap::new()).unwrap();
        let h = serde_json::to_value(&body).unwrap()["HostConfig"].clone();
        for key in [
            "Memory",
            "NanoCpus",
            "PidsLimit",
            "ShmSize",
            "LogConfig",
            "PidMode",
        ] {
            assert!(h.get(key).is_none(), "{key}: {h}");
        }
    }

    #[test]
    fn a_pids_limit_of_zero_is_not_sent() {
        let mut c = spec("app");
        c.run.pids_limit = Some(0);
        let s = stack(vec![c]);
        let body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        assert_eq!(body.host_config.pids_limit, None);
    }

    #[test]
    fn sysctls_ulimits_and_security_options_are_sent_as_written() {
        let mut c = spec("app");
        c.run
            .sysctls
            .insert("net.ipv4.conf.all.src_valid_mark".into(), "1".into());
        c.run.ulimits.insert(
            "nofile".into(),
            UlimitSpec {
                soft: 1001,
                hard: 2002,
            },
        );
        c.run.security_opt = vec![
            "no-new-privileges=true".into(),
            "label=disable".into(),
            "systempaths=unconfined".into(),
        ];
        c.run.group_add = vec!["wheel".into(), "1000".into()];
        let s = stack(vec![c]);
        let body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        let h = serde_json::to_value(&body).unwrap()["HostConfig"].clone();
        assert_eq!(h["Sysctls"]["net.ipv4.conf.all.src_valid_mark"], "1");
        assert_eq!(
            h["Ulimits"],
            serde_json::json!([{"Name": "nofile", "Soft": 1001, "Hard": 2002}])
        );
        // `systempaths=unconfined` is the Docker CLI's: no masked, no
        // read-only paths, and not an engine option.
        assert_eq!(
            h["SecurityOpt"],
            serde_json::json!(["no-new-privileges=true", "label=disable"])
        );
        assert_eq!(h["MaskedPaths"], serde_json::json!([]));
        assert_eq!(h["ReadonlyPaths"], serde_json::json!([]));
        assert_eq!(h["GroupAdd"], serde_json::json!(["wheel", "1000"]));
    }

    #[test]
    fn a_seccomp_profile_is_sent_as_its_compacted_json() {
        let mut c = spec("app");
        c.run.security_opt = vec![
            "seccomp=/repo/web/default.json".into(),
            "seccomp=unconfined".into(),
        ];
        let s = stack(vec![c]);
        let mut body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        let profile = "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"names\": [ \"a b\", \"c\\\" d\" ]\n}\n";
        inline_seccomp("app", &mut body, |p| {
            assert_eq!(p, "/repo/web/default.json");
            Ok(profile.to_owned())
        })
        .unwrap();
        assert_eq!(
            body.host_config.security_opt,
            [
                r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","names":["a b","c\" d"]}"#,
                "seccomp=unconfined",
            ]
        );
        let e = inline_seccomp("app", &mut body.clone(), |_| {
            Err(std::io::Error::from(std::io::ErrorKind::NotFound))
        });
        assert!(e.is_ok(), "the profile was inlined already: {e:?}");
        let mut again = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        let e = inline_seccomp("app", &mut again, |_| Ok("{not json".into())).unwrap_err();
        assert!(e.contains("service `app`") && e.contains("not JSON"), "{e}");
    }

    #[test]
    fn namespaces_name_the_other_service_s_container_or_the_host() {
        let mut a = spec("a");
        a.run.ipc = Some(SharedNamespace::Mode("shareable".into()));
        a.run.pid = Some(SharedNamespace::Mode("private".into()));
        a.run.userns = Some("host".into());
        let mut b = spec("b");
        b.run.ipc = Some(SharedNamespace::Service("a".into()));
        b.run.pid = Some(SharedNamespace::Host);
        let mut s = stack(vec![a, b]);
        compose_names(&mut s);
        let a = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        assert_eq!(a.host_config.ipc_mode, "shareable");
        // `private` is Docker's default, which it has no word for.
        assert_eq!(a.host_config.pid_mode, "");
        assert_eq!(a.host_config.userns_mode, "host");
        let b = container(&s, &s.services[1], &BTreeMap::new()).unwrap();
        assert_eq!(b.host_config.ipc_mode, "container:web-a-1");
        assert_eq!(b.host_config.pid_mode, "host");
        let mut lone = stack(vec![s.services[1].clone()]);
        lone.services[0].run.ipc = Some(SharedNamespace::Service("gone".into()));
        let e = container(&lone, &lone.services[0], &BTreeMap::new()).unwrap_err();
        assert!(e.contains("ipc names service `gone`"), "{e}");
    }

    #[test]
    fn logging_dns_annotations_and_cgroup_rules_are_host_config_fields() {
        let mut c = spec("app");
        c.run.logging = Some(LogSpec {
            driver: Some("json-file".into()),
            path: None,
            max_size: Some(10_000_000),
            options: BTreeMap::from([("max-file".into(), "3".into())]),
        });
        c.run.dns_search = vec!["lan".into()];
        c.run.dns_opt = vec!["ndots:2".into()];
        c.run
            .annotations
            .insert("io.example.note".into(), "x".into());
        c.run.device_cgroup_rules = vec!["c 1:3 mr".into()];
        let s = stack(vec![c]);
        let body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        let h = serde_json::to_value(&body).unwrap()["HostConfig"].clone();
        assert_eq!(
            h["LogConfig"],
            serde_json::json!({"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}})
        );
        assert_eq!(h["DnsSearch"], serde_json::json!(["lan"]));
        assert_eq!(h["DnsOptions"], serde_json::json!(["ndots:2"]));
        assert_eq!(h["Annotations"]["io.example.note"], "x");
        assert_eq!(h["DeviceCgroupRules"], serde_json::json!(["c 1:3 mr"]));
    }

    #[test]
    fn a_log_size_is_written_back_in_decimal_units() {
        assert_eq!(decimal_size(10_000_000), "10m");
        assert_eq!(decimal_size(2_000_000_000), "2g");
        assert_eq!(decimal_size(1_500_000), "1500k");
        assert_eq!(decimal_size(1234), "1234");
        assert_eq!(decimal_size(0), "0");
    }

    #[test]
    fn devices_are_read_as_the_docker_cli_reads_them() {
        let mut c = spec("app");
        c.devices = vec![
            "/dev/fuse".into(),
            "/dev/sda:/dev/xvda".into(),
            "/dev/snd:r".into(),
            "/dev/ttyUSB0:/dev/ttyUSB0:rw".into(),
        ];
        assert!(unsupported(&c).is_empty());
        let s = stack(vec![c]);
        let body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        let h = serde_json::to_value(&body).unwrap()["HostConfig"].clone();
        assert_eq!(
            h["Devices"],
            serde_json::json!([
                {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
                {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "rwm"},
                {"PathOnHost": "/dev/snd", "PathInContainer": "/dev/snd", "CgroupPermissions": "r"},
                {"PathOnHost": "/dev/ttyUSB0", "PathInContainer": "/dev/ttyUSB0", "CgroupPermissions": "rw"},
            ])
        );
        let mut bad = spec("app");
        bad.devices = vec!["/a:/b:rw:x".into()];
        assert_eq!(unsupported(&bad), ["devices: `/a:/b:rw:x`"]);
    }

    #[test]
    fn a_relabelled_bind_is_a_bind_string_as_docker_compose_sends_it() {
        let mut c = spec("app");
        let bind = |source: &str, options: &[&str]| MountSpec::Bind {
            source: source.into(),
            target: format!("/in{source}"),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
            create_host_path: false,
        };
        c.mounts = vec![
            bind("/a", &["ro", "z"]),
            bind("/b", &["Z"]),
            bind("/c", &["rshared", "z"]),
            bind("/d", &["ro", "rslave"]),
        ];
        // A relabelled volume: dropped, as `docker compose` drops it.
        c.mounts.push(MountSpec::Volume {
            name: "web_db".into(),
            target: "/db".into(),
            read_only: false,
            options: vec!["Z".into()],
            subpath: None,
        });
        assert!(unsupported(&c).is_empty(), "{:?}", unsupported(&c));
        let s = stack(vec![c]);
        let body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        let h = &body.host_config;
        assert_eq!(
            h.binds,
            ["/a:/in/a:ro,z", "/b:/in/b:rw,Z", "/c:/in/c:rw,z,rshared"]
        );
        assert_eq!(bind_string_sources(&body), ["/a", "/b", "/c"]);
        assert_eq!(h.mounts.len(), 2, "{:?}", h.mounts);
        assert_eq!(
            (h.mounts[0].source.as_str(), h.mounts[0].read_only),
            ("/d", true)
        );
        assert_eq!(
            h.mounts[0].bind_options.as_ref().unwrap().propagation,
            "rslave"
        );
        assert_eq!(h.mounts[1].kind, "volume");
        assert!(!h.mounts[1].volume_options.as_ref().unwrap().no_copy);
    }

    #[test]
    fn tmpfs_options_are_sent_as_written() {
        let mut c = spec("app");
        c.mounts.push(MountSpec::Tmpfs {
            target: "/run".into(),
            options: vec!["size=64m".into(), "noexec".into(), "uid=1000".into()],
        });
        assert!(unsupported(&c).is_empty());
        let s = stack(vec![c]);
        let body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        assert_eq!(body.host_config.tmpfs["/run"], "size=64m,noexec,uid=1000");
    }

    #[test]
    fn podman_compose_extensions_are_ignored_and_named() {
        let mut c = spec("app");
        c.uidmaps = vec!["0:1:1".into()];
        c.gidmaps = vec!["0:1:1".into()];
        c.no_hosts = true;
        c.network_settings.insert(
            "web_default".into(),
            AttachSpec {
                static_ips: vec![],
                mac: Some("02:00:00:00:00:01".into()),
                interface_name: Some("eth7".into()),
                mac_from_x_podman: true,
            },
        );
        assert!(unsupported(&c).is_empty());
        assert_eq!(
            ignored(&c),
            [
                "x-podman.uidmaps",
                "x-podman.gidmaps",
                "x-podman.no_hosts",
                "networks.web_default.x-podman.interface_name",
                "networks.web_default.x-podman.mac_address",
            ]
        );
        let s = stack(vec![c.clone()]);
        let body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        // `x-podman.mac_address` is not a MAC address for Docker.
        assert_eq!(
            body.networking_config.endpoints_config["web_default"].mac_address,
            None
        );
        c.network_settings
            .get_mut("web_default")
            .unwrap()
            .mac_from_x_podman = false;
        let s = stack(vec![c]);
        let body = container(&s, &s.services[0], &BTreeMap::new()).unwrap();
        assert_eq!(
            body.networking_config.endpoints_config["web_default"]
                .mac_address
                .as_deref(),
            Some("02:00:00:00:00:01")
        );
    }

    #[test]
    fn json_is_compacted_outside_strings_only() {
        assert_eq!(
            compact_json("{ \"a b\" : [1, 2],\n\t\"c\":\"\\\\\" }").unwrap(),
            "{\"a b\":[1,2],\"c\":\"\\\\\"}"
        );
        assert!(compact_json("[1,").is_err());
    }

    #[test]
    fn networks_and_volumes_carry_their_compose_keys() {
        let s = stack(vec![]);
        let n = network(
            &s,
            &NetworkSpec {
                name: "web_back".into(),
                ..NetworkSpec::default()
            },
        );
        assert_eq!(n.labels[LABEL_NETWORK], "back");
        assert_eq!(n.labels[LABEL_PROJECT], "web");
        assert_eq!(n.driver, "bridge");
        let v = volume(
            &s,
            &VolumeSpec {
                name: "web_data".into(),
                ..VolumeSpec::default()
            },
        );
        assert_eq!(v.labels[LABEL_VOLUME], "data");
        assert_eq!(v.driver, "local");
    }
}
