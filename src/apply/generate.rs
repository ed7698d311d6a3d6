//! Specs into libpod requests: a [`ContainerSpec`] becomes a `SpecGenerator`, a
//! stack's networks and volumes become create requests, all carrying the compose
//! and Magos labels.

use std::collections::BTreeMap;

use crate::core::interpolate::{self, Vars};
use crate::core::plan::pull_reference;
use crate::core::spec::{
    ContainerSpec, HealthSpec, MountSpec, NetworkMode, NetworkSpec, RestartPolicy, SharedNamespace,
    StackSpec, VolumeSpec, stack_labels,
};
use crate::podman::signal;
use crate::podman::wire::{
    Device, DeviceCgroupRule, HealthConfig, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources,
    LogConfig, Mount, NamedVolume, Namespace, NetworkCreate, PerNetworkOptions, PortMapping,
    Rlimit, SpecGenerator, VolumeCreate,
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
                    (
                        net.clone(),
                        PerNetworkOptions {
                            aliases,
                            ..PerNetworkOptions::default()
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
            } => g.volumes.push(NamedVolume {
                name: name.clone(),
                dest: target.clone(),
                options: if *read_only {
                    vec!["ro".to_owned()]
                } else {
                    Vec::new()
                },
                ..NamedVolume::default()
            }),
            MountSpec::Bind {
                source,
                target,
                options,
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
    unseal(&mut g, &secrets.vars).map_err(|message| GenerateError::Sealed {
        service: spec.service.clone(),
        message,
    })?;
    Ok(g)
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
    if let Some(mac) = &r.mac_address
        && let Some(first) = g.networks.values_mut().next()
    {
        first.static_mac = mac.clone();
    }
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
    n
}

/// The create request for a stack's named volume.
pub fn volume(stack: &StackSpec, vol: &VolumeSpec) -> VolumeCreate {
    let mut labels = vol.labels.clone();
    labels.extend(stack_labels(&stack.project, &stack.instance));
    VolumeCreate {
        name: vol.name.clone(),
        driver: vol.driver.clone().unwrap_or_default(),
        labels,
        options: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::core::spec::{ImageRef, LogSpec, UlimitSpec};

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
            ImageRef {
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
        r.mac_address = Some("02:42:ac:11:00:02".into());
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
            b["Networks"]["web_default"]["static_mac"],
            json!("02:42:ac:11:00:02")
        );
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
