//! A stack's specs as Docker Engine request bodies, named and labelled as
//! `docker compose` (v2) names and labels its objects, so `docker compose ps`
//! lists Magos's containers and `docker compose up` finds its networks and
//! volumes as its own.
//!
//! The mapping covers the keys of [`ContainerSpec`] a Docker Engine takes at
//! create; [`unsupported`] names the ones it does not (Podman-only settings,
//! `build:`, the run-time settings beyond `privileged`, `init`, `tty` and
//! `stdin_open`), and a stack using any of them is applied with `docker
//! compose` instead.

use std::collections::BTreeMap;

use crate::core::plan::pull_reference;
use crate::core::spec::{
    ContainerSpec, MountSpec, NetworkMode, NetworkSpec, RestartPolicy, RunSpec, StackSpec,
    VolumeSpec,
};

use super::wire::{
    BindOptions, ContainerCreate, Empty, EndpointIpam, EndpointSettings, HealthConfig, HostConfig,
    Ipam, IpamConfig, Mount, NetworkCreate, NetworkingConfig, PortBinding, VolumeCreate,
    VolumeOptions,
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
    let mut add = |k: &str| {
        if !keys.iter().any(|x| x == k) {
            keys.push(k.to_owned());
        }
    };
    if spec.build.is_some() {
        add("build");
    }
    if !spec.devices.is_empty() {
        add("devices");
    }
    if !spec.podman_secrets.is_empty() {
        add("secrets");
    }
    if !spec.uidmaps.is_empty() || !spec.gidmaps.is_empty() {
        add("x-podman.uidmaps");
    }
    if spec.no_hosts {
        add("x-podman.no_hosts");
    }
    if spec
        .network_settings
        .values()
        .any(|a| a.interface_name.is_some())
    {
        add("x-podman.interface_name");
    }
    if matches!(spec.network_mode, NetworkMode::Pasta(_)) {
        add("network_mode: pasta");
    }
    for m in &spec.mounts {
        match m {
            MountSpec::Volume { options, .. } => {
                if options
                    .iter()
                    .any(|o| !matches!(o.as_str(), "nocopy" | "ro" | "rw"))
                {
                    add("volumes (options other than ro and nocopy)");
                }
            }
            MountSpec::Bind { options, .. } => {
                if options.iter().any(|o| bind_option(o).is_none()) {
                    add("volumes (bind options other than ro and propagation)");
                }
            }
            MountSpec::Tmpfs { options, .. } => {
                if options.iter().any(|o| tmpfs_option(o).is_none()) {
                    add("tmpfs (options other than size and mode)");
                }
            }
        }
    }
    let rest = RunSpec {
        privileged: false,
        init: None,
        tty: false,
        stdin_open: false,
        expose: BTreeMap::new(),
        ..spec.run.clone()
    };
    if !rest.is_unset() {
        add("run-time settings (resources, security, namespaces, logging, …)");
    }
    keys
}

/// What a bind option sets: `Some(None)` for read-only/read-write, `Some(p)` for
/// a propagation, `None` when Docker's mount API has no such option.
fn bind_option(o: &str) -> Option<Option<&str>> {
    match o {
        "ro" | "rw" => Some(None),
        "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => Some(Some(o)),
        _ => None,
    }
}

/// A tmpfs option: `size=64m` (bytes) or `mode=1777`.
fn tmpfs_option(o: &str) -> Option<(Option<i64>, Option<u32>)> {
    if let Some(size) = o.strip_prefix("size=") {
        return parse_size(size).map(|s| (Some(s), None));
    }
    if let Some(mode) = o.strip_prefix("mode=") {
        return u32::from_str_radix(mode, 8).ok().map(|m| (None, Some(m)));
    }
    None
}

fn parse_size(s: &str) -> Option<i64> {
    let s = s.to_ascii_lowercase();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s.as_str(), ""),
    };
    let n: i64 = digits.parse().ok()?;
    let mult = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A network's or volume's key: its name without the `<project>_` prefix.
fn key_of<'a>(project: &str, name: &'a str) -> &'a str {
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
                        mac_address: fixed.mac.clone(),
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
        NetworkMode::Service(target) => {
            let name = stack
                .services
                .iter()
                .find(|s| &s.service == target)
                .map(|s| s.name.clone())
                .ok_or_else(|| {
                    format!(
                        "service `{}`: network_mode names service `{target}`, which the stack does not have",
                        spec.service
                    )
                })?;
            format!("container:{name}")
        }
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
                    no_copy: options.iter().any(|o| o == "nocopy"),
                    subpath: subpath.clone(),
                }),
                ..Mount::default()
            },
            MountSpec::Bind {
                source,
                target,
                options,
                ..
            } => Mount {
                kind: "bind".to_owned(),
                source: source.clone(),
                target: target.clone(),
                read_only: options.iter().any(|o| o == "ro"),
                bind_options: Some(BindOptions {
                    propagation: options
                        .iter()
                        .find_map(|o| bind_option(o).flatten())
                        .unwrap_or_default()
                        .to_owned(),
                    create_mountpoint: false,
                }),
                ..Mount::default()
            },
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
        ContainerImage, HealthSpec, LABEL_CONFIG_HASH, LABEL_CONTAINER_NUMBER, LABEL_PROJECT,
        LABEL_SERVICE, MountSpec, PortSpec,
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
        c.run.memory = Some(64 << 20);
        c.devices.push("/dev/fuse".into());
        let keys = unsupported(&c);
        assert!(keys.iter().any(|k| k == "devices"), "{keys:?}");
        assert!(keys.iter().any(|k| k.starts_with("run-time")), "{keys:?}");
        let s = stack(vec![c]);
        let e = container(&s, &s.services[0], &BTreeMap::new()).unwrap_err();
        assert!(e.contains("service `app`") && e.contains("devices"), "{e}");
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
