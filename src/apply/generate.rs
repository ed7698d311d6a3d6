//! Specs into libpod requests: a [`ContainerSpec`] becomes a `SpecGenerator`, a
//! stack's networks and volumes become create requests, all carrying the compose
//! and Magos labels.

use crate::core::interpolate::{self, Vars};
use crate::core::plan::pull_reference;
use crate::core::spec::{
    ContainerSpec, HealthSpec, MountSpec, NetworkMode, NetworkSpec, RestartPolicy, SharedNamespace,
    StackSpec, VolumeSpec, stack_labels,
};
use crate::podman::signal;
use crate::podman::wire::{
    Device, DeviceCgroupRule, HealthConfig, IdMap, IdMappingOptions, LeaseRange, LinuxCpu,
    LinuxMemory, LinuxPids, LinuxResources, LogConfig, Mount, NamedVolume, Namespace,
    NetworkCreate, PerNetworkOptions, PortMapping, Rlimit, Route, SecretMount, SpecGenerator,
    Subnet, VolumeCreate,
};

use super::sealed::Unsealed;

/// A spec that cannot be expressed as a create request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// A sealed `${VAR}` placeholder has no decrypted value.
    #[error("service `{service}`: {message}")]
    Sealed {
        /// The service.
        service: String,
        /// Which variable.
        message: String,
    },
    /// `stop_signal` names no signal.
    #[error("service `{service}`: `{signal}` is not a signal")]
    Signal {
        /// The service.
        service: String,
        /// The value.
        signal: String,
    },
    /// `pid: service:x` or `ipc: service:x` names a service not in the stack.
    #[error("service `{service}`: {key} refers to service `{target}`, which is not in the stack")]
    NamespaceTarget {
        /// The service.
        service: String,
        /// `pid` or `ipc`.
        key: String,
        /// The missing service.
        target: String,
    },
    /// `network_mode: service:x` names a service without a container name.
    #[error(
        "service `{service}`: network_mode refers to service `{target}`, which is not in the stack"
    )]
    NetworkTarget {
        /// The service.
        service: String,
        /// The missing service.
        target: String,
    },
}

/// The create request for one service. `env` adds variables decrypted at apply
/// time (never part of the spec, nor of its hash).
pub fn container(
    stack: &StackSpec,
    spec: &ContainerSpec,
    name: &str,
    secrets: &Unsealed,
) -> Result<SpecGenerator, GenerateError> {
    let stop_signal = match &spec.stop_signal {
        Some(s) => Some(signal::number(s).ok_or_else(|| GenerateError::Signal {
            service: spec.service.clone(),
            signal: s.clone(),
        })?),
        None => None,
    };
    let mut g = SpecGenerator {
        name: Some(name.to_owned()),
        image: pull_reference(&spec.image),
        entrypoint: spec.entrypoint.clone(),
        command: spec.command.clone(),
        labels: spec.all_labels(stack),
        stop_signal,
        stop_timeout: spec.stop_grace_period.map(|d| d.as_secs().max(1)),
        restart_policy: spec.restart.map(|r| {
            match r {
                RestartPolicy::No => "no",
                RestartPolicy::Always => "always",
                RestartPolicy::OnFailure => "on-failure",
                RestartPolicy::UnlessStopped => "unless-stopped",
            }
            .to_owned()
        }),
        hostname: spec.hostname.clone(),
        user: spec.user.clone(),
        work_dir: spec.working_dir.clone(),
        cap_add: spec.cap_add.clone(),
        cap_drop: spec.cap_drop.clone(),
        host_add: spec.extra_hosts.clone(),
        dns_server: spec.dns.clone(),
        read_only_filesystem: spec.read_only,
        devices: spec
            .devices
            .iter()
            .map(|d| Device { path: d.clone() })
            .collect(),
        health_config: spec.healthcheck.as_ref().map(health),
        ..SpecGenerator::default()
    };
    g.env = spec.environment.clone();
    if let Some(env) = secrets.env.get(&spec.service) {
        g.env.extend(
            env.iter()
                .filter(|(k, _)| spec.secret_environment.contains(k))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }

    g.netns = Some(match &spec.network_mode {
        NetworkMode::Bridge => {
            g.networks = spec
                .networks
                .iter()
                .map(|(net, aliases)| {
                    let mut aliases = aliases.clone();
                    // Compose makes every service reachable by its name on its networks.
                    if !aliases.contains(&spec.service) {
                        aliases.insert(0, spec.service.clone());
                    }
                    let fixed = spec.network_settings.get(net).cloned().unwrap_or_default();
                    (
                        net.clone(),
                        PerNetworkOptions {
                            aliases,
                            static_ips: fixed.static_ips,
                            static_mac: fixed.mac.unwrap_or_default(),
                            interface_name: fixed.interface_name.unwrap_or_default(),
                        },
                    )
                })
                .collect();
            ns("bridge", "")
        }
        NetworkMode::Host => ns("host", ""),
        NetworkMode::None => ns("none", ""),
        NetworkMode::Pasta(options) => {
            if !options.is_empty() {
                g.network_options
                    .insert("pasta".to_owned(), options.clone());
            }
            ns("pasta", "")
        }
        NetworkMode::Service(target) => {
            let target_name = stack
                .services
                .iter()
                .find(|s| &s.service == target)
                .map(|s| s.name.clone())
                .ok_or_else(|| GenerateError::NetworkTarget {
                    service: spec.service.clone(),
                    target: target.clone(),
                })?;
            ns("container", &target_name)
        }
        NetworkMode::Container(other) => ns("container", other),
    });

    g.portmappings = spec
        .ports
        .iter()
        .map(|p| PortMapping {
            host_ip: p.host_ip.clone(),
            container_port: p.container_port,
            host_port: p.host_port,
            range: p.range.max(1),
            protocol: p.protocol.clone(),
        })
        .collect();
    for m in &spec.mounts {
        match m {
            MountSpec::Volume {
                name,
                target,
                read_only,
                options,
                subpath,
            } => g.volumes.push(NamedVolume {
                name: name.clone(),
                dest: target.clone(),
                options: read_only
                    .then(|| "ro".to_owned())
                    .into_iter()
                    .chain(options.iter().cloned())
                    .collect(),
                sub_path: subpath.clone().unwrap_or_default(),
            }),
            MountSpec::Bind {
                source,
                target,
                options,
                ..
            } => g.mounts.push(Mount {
                destination: target.clone(),
                kind: "bind".to_owned(),
                source: source.clone(),
                options: options.clone(),
            }),
            MountSpec::Tmpfs { target, options } => g.mounts.push(Mount {
                destination: target.clone(),
                kind: "tmpfs".to_owned(),
                source: "tmpfs".to_owned(),
                options: options.clone(),
            }),
        }
    }
    run_settings(stack, spec, &mut g)?;
    podman_extras(spec, &mut g);
    unseal(&mut g, &secrets.vars).map_err(|message| GenerateError::Sealed {
        service: spec.service.clone(),
        message,
    })?;
    Ok(g)
}

/// Podman secrets, `x-podman.uidmaps`/`gidmaps` (a private user namespace with
/// those mappings, as `podman create --uidmap` makes it) and `x-podman.no_hosts`.
fn podman_extras(spec: &ContainerSpec, g: &mut SpecGenerator) {
    for s in &spec.podman_secrets {
        if s.as_env {
            g.secret_env.insert(s.target.clone(), s.source.clone());
        } else {
            g.secrets.push(SecretMount {
                source: s.source.clone(),
                target: s.target.clone(),
                uid: s.uid.unwrap_or(0),
                gid: s.gid.unwrap_or(0),
                // `podman run --secret`'s default.
                mode: s.mode.unwrap_or(0o444),
            });
        }
    }
    if !spec.uidmaps.is_empty() || !spec.gidmaps.is_empty() {
        let maps = |l: &[String]| -> Vec<IdMap> {
            l.iter()
                .filter_map(|m| {
                    let mut p = m
                        .split(':')
                        .map(|n| n.trim_start_matches(['@', '+', 'u', 'g']).parse::<u32>());
                    Some(IdMap {
                        container_id: p.next()?.ok()?,
                        host_id: p.next()?.ok()?,
                        size: p.next()?.ok()?,
                    })
                })
                .collect()
        };
        let uid_map = maps(&spec.uidmaps);
        let gid_map = maps(&spec.gidmaps);
        // One list given: Podman uses it for both, as the CLI does.
        let (uid_map, gid_map) = match (uid_map.is_empty(), gid_map.is_empty()) {
            (true, false) => (gid_map.clone(), gid_map),
            (false, true) => (uid_map.clone(), uid_map),
            _ => (uid_map, gid_map),
        };
        g.id_mappings = Some(IdMappingOptions {
            uid_map,
            gid_map,
            ..IdMappingOptions::default()
        });
        g.userns = Some(ns("private", ""));
    }
    if spec.no_hosts {
        g.use_image_hosts = Some(true);
    }
}

/// Puts decrypted `.env` values in place of sealed placeholders, in the string
/// values a placeholder can reach: environment, labels, command, entrypoint,
/// health check, user, working folder and host name. The config-hash label
/// keeps the placeholder's hash.
fn unseal(g: &mut SpecGenerator, vars: &Vars) -> Result<(), String> {
    let one = |s: &mut String| -> Result<(), String> {
        if interpolate::is_sealed(s) {
            *s = interpolate::unseal(s, vars)?;
        }
        Ok(())
    };
    for v in g.env.values_mut().chain(g.labels.values_mut()) {
        one(v)?;
    }
    let lists = [g.command.as_mut(), g.entrypoint.as_mut()];
    for list in lists.into_iter().flatten() {
        list.iter_mut().try_for_each(one)?;
    }
    if let Some(h) = &mut g.health_config {
        h.test.iter_mut().try_for_each(one)?;
    }
    for v in [&mut g.user, &mut g.work_dir, &mut g.hostname]
        .into_iter()
        .flatten()
    {
        one(v)?;
    }
    Ok(())
}

fn ns(mode: &str, value: &str) -> Namespace {
    Namespace {
        nsmode: mode.to_owned(),
        value: value.to_owned(),
    }
}

fn health(h: &HealthSpec) -> HealthConfig {
    let mut c = HealthConfig::new(h.test.clone());
    let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    if let Some(d) = h.interval {
        c.interval = ns(d);
    }
    if let Some(d) = h.timeout {
        c.timeout = ns(d);
    }
    if let Some(d) = h.start_period {
        c.start_period = ns(d);
    }
    if let Some(r) = h.retries {
        c.retries = i64::from(r);
    }
    if let Some(d) = h.start_interval {
        c.start_interval = ns(d);
    }
    c
}

/// Podman's annotations that `podman container inspect` reads its
/// `SecurityOpt` from (the CLI sets them beside the options themselves).
const ANNOTATION_LABEL: &str = "io.podman.annotations.label";
const ANNOTATION_SECCOMP: &str = "io.podman.annotations.seccomp";
const ANNOTATION_APPARMOR: &str = "io.podman.annotations.apparmor";
/// The CFS period `--cpus` uses (100 ms, in microseconds).
const CPU_PERIOD: u64 = 100_000;

/// The run-time settings of [`RunSpec`]: resources, security, namespaces,
/// terminal, logging, DNS options, annotations, `expose`, the MAC address.
/// Each is sent as the Podman CLI sends the matching flag, so the container
/// inspects the same as one podman-compose creates.
fn run_settings(
    stack: &StackSpec,
    spec: &ContainerSpec,
    g: &mut SpecGenerator,
) -> Result<(), GenerateError> {
    let r = &spec.run;
    g.expose = r.expose.clone();
    g.restart_tries = r.restart_tries.map(u64::from);
    let mut res = LinuxResources::default();
    if r.memory.is_some() || r.memory_reservation.is_some() || r.memory_swap.is_some() {
        // As `podman run -m` does: without a swap limit, as much swap as memory.
        let swap = match (r.memory_swap, r.memory) {
            (Some(-1), _) => None,
            (Some(s), _) => Some(s),
            (None, Some(m)) if m > 0 => Some(2 * m),
            (None, _) => None,
        };
        res.memory = Some(LinuxMemory {
            limit: r.memory,
            reservation: r.memory_reservation,
            swap,
        });
    }
    if r.cpus_micro.is_some() || r.cpu_shares.is_some() || r.cpuset.is_some() {
        let quota = r.cpus_micro.map(|c| c / 10);
        res.cpu = Some(LinuxCpu {
            shares: r.cpu_shares,
            quota,
            period: quota.map(|_| CPU_PERIOD),
            cpus: r.cpuset.clone().unwrap_or_default(),
        });
    }
    if let Some(p) = r.pids_limit {
        res.pids = Some(LinuxPids { limit: p });
    }
    if res != LinuxResources::default() {
        g.resource_limits = Some(res);
    }
    g.r_limits = r
        .ulimits
        .iter()
        .map(|(name, u)| {
            let n = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
            Rlimit {
                kind: name.clone(),
                hard: n(u.hard),
                soft: n(u.soft),
            }
        })
        .collect();
    g.shm_size = r.shm_size;
    g.privileged = r.privileged.then_some(true);
    g.sysctl = r.sysctls.clone();
    g.groups = r.group_add.clone();
    g.annotations = r.annotations.clone();
    for o in &r.security_opt {
        let (key, value) = o.split_once('=').unwrap_or((o.as_str(), ""));
        match key {
            "label" if value == "nested" => g.label_nested = Some(true),
            "label" => {
                g.selinux_opts.push(value.to_owned());
                g.annotations
                    .insert(ANNOTATION_LABEL.to_owned(), g.selinux_opts.join(",label="));
            }
            "seccomp" => {
                g.seccomp_profile_path = value.to_owned();
                g.annotations
                    .insert(ANNOTATION_SECCOMP.to_owned(), value.to_owned());
            }
            "apparmor" => {
                g.apparmor_profile = value.to_owned();
                g.annotations
                    .insert(ANNOTATION_APPARMOR.to_owned(), value.to_owned());
            }
            "no-new-privileges" => g.no_new_privileges = Some(value != "false"),
            "mask" => g.mask.extend(value.split(':').map(str::to_owned)),
            "unmask" => g.unmask.extend(value.split(':').map(str::to_owned)),
            "systempaths" => g.unmask.push("ALL".to_owned()),
            "proc-opts" => g.procfs_opts = value.split(',').map(str::to_owned).collect(),
            _ => {}
        }
    }
    g.init = r.init.or(g.init);
    g.terminal = r.tty.then_some(true);
    g.stdin = r.stdin_open.then_some(true);
    let shared = |key: &str, n: &SharedNamespace| -> Result<Namespace, GenerateError> {
        Ok(match n {
            SharedNamespace::Host => ns("host", ""),
            SharedNamespace::Mode(m) => ns(m, ""),
            SharedNamespace::Container(c) => ns("container", c),
            SharedNamespace::Service(target) => {
                let name = stack
                    .services
                    .iter()
                    .find(|s| &s.service == target)
                    .map(|s| s.name.clone())
                    .ok_or_else(|| GenerateError::NamespaceTarget {
                        service: spec.service.clone(),
                        key: key.to_owned(),
                        target: target.clone(),
                    })?;
                ns("container", &name)
            }
        })
    };
    g.pidns = r.pid.as_ref().map(|n| shared("pid", n)).transpose()?;
    g.ipcns = r.ipc.as_ref().map(|n| shared("ipc", n)).transpose()?;
    g.userns = r.userns.as_ref().map(|u| userns(u));
    g.oom_score_adj = r.oom_score_adj;
    g.log_configuration = r.logging.as_ref().map(|l| LogConfig {
        driver: l.driver.clone().unwrap_or_default(),
        path: l.path.clone().unwrap_or_default(),
        size: l.max_size.unwrap_or(0),
        options: l.options.clone(),
    });
    if let Some(p) = &r.platform {
        let mut parts = p.splitn(3, '/');
        g.image_os = parts.next().unwrap_or_default().to_owned();
        g.image_arch = parts.next().unwrap_or_default().to_owned();
        g.image_variant = parts.next().unwrap_or_default().to_owned();
    }
    g.dns_search = r.dns_search.clone();
    g.dns_option = r.dns_opt.clone();
    g.device_cgroup_rule = r
        .device_cgroup_rules
        .iter()
        .filter_map(|rule| device_cgroup_rule(rule))
        .collect();
    Ok(())
}

/// `userns_mode` as Podman parses `--userns`: `keep-id:uid=1000` is mode
/// `keep-id` with its options, `ns:/path` a path, `container:x` a container.
fn userns(u: &str) -> Namespace {
    let (mode, value) = u.split_once(':').unwrap_or((u, ""));
    match mode {
        "ns" => ns("path", value),
        _ => ns(mode, value),
    }
}

/// `c 1:3 mr` as an OCI device rule (checked when the spec was built).
fn device_cgroup_rule(rule: &str) -> Option<DeviceCgroupRule> {
    let mut parts = rule.split_whitespace();
    let (kind, numbers, access) = (parts.next()?, parts.next()?, parts.next()?);
    let (major, minor) = numbers.split_once(':')?;
    let num = |n: &str| n.parse::<i64>().ok();
    Some(DeviceCgroupRule {
        allow: true,
        kind: kind.to_owned(),
        major: num(major),
        minor: num(minor),
        access: access.to_owned(),
    })
}

/// The create request for a stack's network.
pub fn network(stack: &StackSpec, net: &NetworkSpec) -> NetworkCreate {
    let mut n = NetworkCreate::bridge(net.name.clone());
    if let Some(driver) = &net.driver {
        n.driver = driver.clone();
    }
    n.internal = net.internal;
    n.labels = net.labels.clone();
    n.labels
        .extend(stack_labels(&stack.project, &stack.instance));
    n.ipv6_enabled = net.ipv6;
    n.options = net.options.clone();
    n.dns_enabled = !net.disable_dns;
    n.network_dns_servers = net.dns.clone();
    if let Some(d) = &net.ipam_driver {
        n.ipam_options.insert("driver".to_owned(), d.clone());
    }
    n.subnets = net
        .subnets
        .iter()
        .map(|s| Subnet {
            subnet: s.subnet.clone(),
            gateway: s.gateway.clone().unwrap_or_default(),
            lease_range: s.ip_range.as_deref().map(lease_range),
        })
        .collect();
    n.routes = net
        .routes
        .iter()
        .map(|r| {
            let mut p = r.split(',');
            Route {
                destination: p.next().unwrap_or_default().to_owned(),
                gateway: p.next().unwrap_or_default().to_owned(),
                metric: p.next().and_then(|m| m.trim().parse().ok()),
            }
        })
        .collect();
    n
}

/// compose's `ip_range` (a CIDR, or `first-last` as Podman also takes it) as
/// the lease range Podman's API takes: a CIDR `10.0.0.64/26` becomes
/// `10.0.0.65`–`10.0.0.127`, as `podman network create --ip-range` computes it
/// (the range's first address is skipped, its last kept).
pub fn lease_range(range: &str) -> LeaseRange {
    if let Some((a, b)) = range.split_once('-') {
        return LeaseRange {
            start_ip: a.trim().to_owned(),
            end_ip: b.trim().to_owned(),
        };
    }
    let (addr, bits) = range.split_once('/').unwrap_or((range, ""));
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            let bits: u32 = bits.parse().unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            let first = u32::from(a) & mask;
            let last = first | !mask;
            LeaseRange {
                start_ip: std::net::Ipv4Addr::from(first.saturating_add(1).min(last)).to_string(),
                end_ip: std::net::Ipv4Addr::from(last).to_string(),
            }
        }
        Ok(std::net::IpAddr::V6(a)) => {
            let bits: u32 = bits.parse().unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            let first = u128::from(a) & mask;
            let last = first | !mask;
            LeaseRange {
                start_ip: std::net::Ipv6Addr::from(first.saturating_add(1).min(last)).to_string(),
                end_ip: std::net::Ipv6Addr::from(last).to_string(),
            }
        }
        // Podman says what is wrong with it.
        Err(_) => LeaseRange {
            start_ip: range.to_owned(),
            end_ip: String::new(),
        },
    }
}

/// The create request for a stack's named volume.
pub fn volume(stack: &StackSpec, vol: &VolumeSpec) -> VolumeCreate {
    let mut labels = vol.labels.clone();
    labels.extend(stack_labels(&stack.project, &stack.instance));
    VolumeCreate {
        name: vol.name.clone(),
        driver: vol.driver.clone().unwrap_or_default(),
        labels,
        options: vol.options.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::{AttachSpec, ContainerImage, PodmanSecretSpec, SubnetSpec};

    fn stack() -> StackSpec {
        StackSpec {
            project: "web".into(),
            instance: "default".into(),
            working_dir: "/repo/web".into(),
            config_files: vec!["compose.yaml".into()],
            networks: vec![],
            volumes: vec![],
            services: vec![],
        }
    }

    #[test]
    fn ip_ranges_become_lease_ranges_as_the_cli_computes_them() {
        let r = lease_range("10.123.0.64/26");
        assert_eq!(
            (r.start_ip.as_str(), r.end_ip.as_str()),
            ("10.123.0.65", "10.123.0.127")
        );
        let r = lease_range("10.123.0.0/25");
        assert_eq!(
            (r.start_ip.as_str(), r.end_ip.as_str()),
            ("10.123.0.1", "10.123.0.127")
        );
        let r = lease_range("10.0.0.5-10.0.0.9");
        assert_eq!(
            (r.start_ip.as_str(), r.end_ip.as_str()),
            ("10.0.0.5", "10.0.0.9")
        );
        let r = lease_range("fd00::/120");
        assert_eq!(
            (r.start_ip.as_str(), r.end_ip.as_str()),
            ("fd00::1", "fd00::ff")
        );
    }

    #[test]
    fn a_network_request_carries_ipam_options_and_extensions() {
        let net = NetworkSpec {
            name: "web_front".into(),
            internal: true,
            ipv6: true,
            options: [("mtu".to_owned(), "1400".to_owned())].into(),
            ipam_driver: Some("host-local".into()),
            subnets: vec![SubnetSpec {
                subnet: "172.19.1.0/24".into(),
                gateway: Some("172.19.1.1".into()),
                ip_range: Some("172.19.1.64/26".into()),
            }],
            disable_dns: true,
            routes: vec!["10.2.3.0/24,172.19.1.1,5".into()],
            ..NetworkSpec::default()
        };
        let body = serde_json::to_value(network(&stack(), &net)).unwrap();
        assert_eq!(body["internal"], true);
        assert_eq!(body["ipv6_enabled"], true);
        assert_eq!(body["dns_enabled"], false);
        assert_eq!(body["options"]["mtu"], "1400");
        assert_eq!(body["ipam_options"]["driver"], "host-local");
        assert_eq!(
            body["subnets"][0],
            serde_json::json!({"subnet": "172.19.1.0/24", "gateway": "172.19.1.1",
                "lease_range": {"start_ip": "172.19.1.65", "end_ip": "172.19.1.127"}})
        );
        assert_eq!(
            body["routes"][0],
            serde_json::json!({"destination": "10.2.3.0/24", "gateway": "172.19.1.1", "metric": 5})
        );
        // A plain network's request is as before.
        let plain = serde_json::to_value(network(&stack(), &NetworkSpec::default())).unwrap();
        for key in [
            "subnets",
            "options",
            "ipam_options",
            "routes",
            "network_dns_servers",
        ] {
            assert!(plain.get(key).is_none(), "{key}: {plain}");
        }
        assert_eq!(plain["dns_enabled"], true);
    }

    #[test]
    fn a_container_request_carries_mount_network_secret_and_idmap_settings() {
        let mut spec = ContainerSpec::new(
            "web",
            "app",
            ContainerImage {
                reference: "nginx:1".into(),
                qualified: "docker.io/library/nginx:1".into(),
                digest: None,
            },
        );
        spec.mounts.push(MountSpec::Volume {
            name: "web_db".into(),
            target: "/data".into(),
            read_only: true,
            options: vec!["Z".into(), "nocopy".into()],
            subpath: Some("sub".into()),
        });
        spec.networks.insert("web_front".into(), vec![]);
        spec.network_settings.insert(
            "web_front".into(),
            AttachSpec {
                static_ips: vec!["172.19.1.10".into()],
                mac: Some("02:00:00:00:00:01".into()),
                interface_name: Some("eth7".into()),
                mac_from_x_podman: false,
            },
        );
        spec.podman_secrets.push(PodmanSecretSpec {
            source: "web_token".into(),
            target: "token".into(),
            from_env: Some("APP_TOKEN".into()),
            uid: None,
            gid: None,
            mode: None,
            as_env: false,
        });
        spec.podman_secrets.push(PodmanSecretSpec {
            source: "shared".into(),
            target: "API_KEY".into(),
            from_env: None,
            uid: None,
            gid: None,
            mode: None,
            as_env: true,
        });
        spec.uidmaps = vec!["0:1:1".into(), "999:0:1".into()];
        spec.no_hosts = true;
        let g = container(&stack(), &spec, "web_app_1", &Unsealed::default()).unwrap();
        let body = serde_json::to_value(&g).unwrap();
        assert_eq!(
            body["volumes"][0],
            serde_json::json!({"Name": "web_db", "Dest": "/data", "Options": ["ro", "Z", "nocopy"], "SubPath": "sub"})
        );
        assert_eq!(
            body["Networks"]["web_front"],
            serde_json::json!({"aliases": ["app"], "static_ips": ["172.19.1.10"],
                "interface_name": "eth7", "static_mac": "02:00:00:00:00:01"})
        );
        assert_eq!(
            body["secrets"],
            serde_json::json!([{"Source": "web_token", "Target": "token", "UID": 0, "GID": 0, "Mode": 0o444}])
        );
        assert_eq!(body["secret_env"], serde_json::json!({"API_KEY": "shared"}));
        // One list given: it maps both, as `podman create --uidmap` alone does.
        let maps = serde_json::json!([{"container_id": 0, "host_id": 1, "size": 1},
            {"container_id": 999, "host_id": 0, "size": 1}]);
        assert_eq!(body["idmappings"]["UIDMap"], maps);
        assert_eq!(body["idmappings"]["GIDMap"], maps);
        assert_eq!(body["userns"]["nsmode"], "private");
        assert_eq!(body["use_image_hosts"], true);
        // The environment variable's name is not sent; its value never is.
        assert!(!body.to_string().contains("APP_TOKEN"));
    }
}

#[cfg(test)]
mod run_tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;
    use crate::core::spec::{ContainerImage, LogSpec, UlimitSpec};

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

    fn spec(service: &str) -> ContainerSpec {
        let mut s = ContainerSpec::new(
            "web",
            service,
            ContainerImage {
                reference: "nginx:1".into(),
                qualified: "docker.io/library/nginx:1".into(),
                digest: None,
            },
        );
        s.networks.insert("web_default".into(), vec![]);
        s
    }

    fn body(stack: &StackSpec, s: &ContainerSpec) -> Value {
        let g = container(stack, s, &s.name, &Unsealed::default()).unwrap();
        serde_json::to_value(g).unwrap()
    }

    #[test]
    fn run_settings_are_sent_as_the_podman_cli_sends_its_flags() {
        let mut s = spec("app");
        let r = &mut s.run;
        r.expose.insert(3000, "tcp,udp".into());
        r.memory = Some(512 << 20);
        r.memory_reservation = Some(256 << 20);
        r.cpus_micro = Some(1_500_000);
        r.cpu_shares = Some(512);
        r.cpuset = Some("0-1".into());
        r.pids_limit = Some(100);
        r.shm_size = Some(64 << 20);
        r.privileged = true;
        r.sysctls.insert("net.core.somaxconn".into(), "1024".into());
        r.ulimits.insert(
            "nofile".into(),
            UlimitSpec {
                soft: 1000,
                hard: -1,
            },
        );
        r.security_opt = vec![
            "seccomp=/repo/web/default.json".into(),
            "label=disable".into(),
            "no-new-privileges=true".into(),
            "apparmor=unconfined".into(),
        ];
        r.group_add = vec!["wheel".into()];
        r.init = Some(true);
        r.tty = true;
        r.stdin_open = true;
        r.pid = Some(SharedNamespace::Host);
        r.ipc = Some(SharedNamespace::Service("db".into()));
        r.userns = Some("keep-id:uid=1000".into());
        r.oom_score_adj = Some(500);
        r.logging = Some(LogSpec {
            driver: Some("k8s-file".into()),
            path: None,
            max_size: Some(10_000_000),
            options: BTreeMap::from([("tag".into(), "web".into())]),
        });
        r.platform = Some("linux/arm64/v8".into());
        r.dns_search = vec!["lan".into()];
        r.dns_opt = vec!["ndots:2".into()];
        r.annotations.insert("a".into(), "b".into());
        r.device_cgroup_rules = vec!["c 1:3 mr".into(), "a *:* rwm".into()];
        r.restart_tries = Some(3);
        let db = spec("db");
        let st = stack(vec![s.clone(), db]);
        let b = body(&st, &s);
        assert_eq!(b["expose"], json!({"3000": "tcp,udp"}));
        assert_eq!(
            b["resource_limits"],
            json!({
                "memory": {"limit": 536870912, "reservation": 268435456, "swap": 1073741824},
                "cpu": {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0-1"},
                "pids": {"limit": 100},
            })
        );
        assert_eq!(
            b["r_limits"],
            json!([{"type": "nofile", "hard": u64::MAX, "soft": 1000}])
        );
        assert_eq!(b["shm_size"], json!(67108864));
        assert_eq!(b["privileged"], json!(true));
        assert_eq!(b["sysctl"], json!({"net.core.somaxconn": "1024"}));
        assert_eq!(b["seccomp_profile_path"], json!("/repo/web/default.json"));
        assert_eq!(b["selinux_opts"], json!(["disable"]));
        assert_eq!(b["apparmor_profile"], json!("unconfined"));
        assert_eq!(b["no_new_privileges"], json!(true));
        assert_eq!(
            b["annotations"],
            json!({
                "a": "b",
                "io.podman.annotations.apparmor": "unconfined",
                "io.podman.annotations.label": "disable",
                "io.podman.annotations.seccomp": "/repo/web/default.json",
            })
        );
        assert_eq!(b["groups"], json!(["wheel"]));
        assert_eq!(b["init"], json!(true));
        assert_eq!(b["terminal"], json!(true));
        assert_eq!(b["stdin"], json!(true));
        assert_eq!(b["pidns"], json!({"nsmode": "host"}));
        assert_eq!(
            b["ipcns"],
            json!({"nsmode": "container", "value": "web_db_1"})
        );
        assert_eq!(
            b["userns"],
            json!({"nsmode": "keep-id", "value": "uid=1000"})
        );
        assert_eq!(b["oom_score_adj"], json!(500));
        assert_eq!(
            b["log_configuration"],
            json!({"driver": "k8s-file", "size": 10000000, "options": {"tag": "web"}})
        );
        assert_eq!(
            (&b["image_os"], &b["image_arch"], &b["image_variant"]),
            (&json!("linux"), &json!("arm64"), &json!("v8"))
        );
        assert_eq!(b["dns_search"], json!(["lan"]));
        assert_eq!(b["dns_option"], json!(["ndots:2"]));
        assert_eq!(
            b["device_cgroup_rule"],
            json!([
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "mr"},
                {"allow": true, "type": "a", "access": "rwm"},
            ])
        );
        assert_eq!(b["restart_tries"], json!(3));
    }

    #[test]
    fn memory_without_swap_gets_as_much_swap_and_unset_settings_are_not_sent() {
        let mut s = spec("app");
        s.run.memory = Some(100);
        let b = body(&stack(vec![s.clone()]), &s);
        assert_eq!(
            b["resource_limits"],
            json!({"memory": {"limit": 100, "swap": 200}})
        );
        s.run.memory_swap = Some(-1);
        let b = body(&stack(vec![s.clone()]), &s);
        assert_eq!(b["resource_limits"], json!({"memory": {"limit": 100}}));
        let plain = spec("app");
        let b = body(&stack(vec![plain.clone()]), &plain);
        for key in [
            "expose",
            "resource_limits",
            "r_limits",
            "privileged",
            "terminal",
            "stdin",
            "pidns",
            "ipcns",
            "userns",
            "log_configuration",
            "annotations",
            "sysctl",
        ] {
            assert!(b.get(key).is_none(), "{key} sent for a spec without it");
        }
    }

    #[test]
    fn a_namespace_of_a_service_not_in_the_stack_is_an_error() {
        let mut s = spec("app");
        s.run.pid = Some(SharedNamespace::Service("gone".into()));
        let err = container(&stack(vec![s.clone()]), &s, &s.name, &Unsealed::default());
        assert_eq!(
            err.unwrap_err().to_string(),
            "service `app`: pid refers to service `gone`, which is not in the stack"
        );
    }
}
