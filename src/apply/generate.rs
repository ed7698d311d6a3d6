//! Specs into libpod requests: a [`ContainerSpec`] becomes a `SpecGenerator`, a
//! stack's networks and volumes become create requests, all carrying the compose
//! and Magos labels.

use crate::core::interpolate::{self, Vars};
use crate::core::plan::pull_reference;
use crate::core::spec::{
    ContainerSpec, HealthSpec, MountSpec, NetworkMode, NetworkSpec, RestartPolicy, StackSpec,
    VolumeSpec, stack_labels,
};
use crate::podman::signal;
use crate::podman::wire::{
    Device, HealthConfig, IdMap, IdMappingOptions, LeaseRange, Mount, NamedVolume, Namespace,
    NetworkCreate, PerNetworkOptions, PortMapping, Route, SecretMount, SpecGenerator, Subnet,
    VolumeCreate,
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
    c
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
    use crate::core::spec::{AttachSpec, ImageRef, PodmanSecretSpec, SubnetSpec};

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
            ImageRef {
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
