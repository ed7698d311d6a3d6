//! The rootless network doctor: checks Podman's rootless networking (pasta, the
//! rootless netns, published ports, DNS, the network backend's programs) for the
//! managed containers, names each problem in plain words with its fix, and heals
//! what a restart heals.
//!
//! Three parts:
//! - judging, pure, in the core (`core::doctor`, also named `doctor::model`):
//!   facts in, checks and findings out, whose problem each is, the heal
//!   decision, and the readers of procfs tables, Podman's files and `nslookup`
//!   output;
//! - gathering: `probe.rs` on the host with the standard library and procfs
//!   (device, one process scan, pid files, namespace addresses and sockets,
//!   aardvark-dns, the Podman service's PATH, DNS and TCP probes), and this
//!   file's `examine`, which gathers the facts through the Podman client and
//!   the probes, hands them to the judges, and enters a container (exec) only
//!   to confirm a failure the host saw;
//! - healing: `heal.rs` carries out the heals the core decides, within the
//!   rate limit, and examines again until the ports answer.
//!
//! [`check_and_heal`] is the entry point: examine, then heal when asked.
//!
//! Linux only: pasta, procfs and the rootless netns exist nowhere else.

pub mod docker;
pub mod heal;
pub mod probe;
pub mod quadlet;

/// The judging, pure, in the core; named here as before.
pub use crate::core::doctor as model;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::schedule::RestartLimiter;
use crate::core::spec::{LABEL_MANAGED, LABEL_PROJECT, LABEL_SERVICE};
use crate::podman::wire::{ContainerInspect, ExecCreate};
use crate::podman::{Client, ContainerFilters, PodmanError};
use crate::server::metrics::Metrics;
use futures_util::StreamExt as _;

pub use model::{
    Cause, Check, ContainerFacts, HealAction, HealOutcome, HealRecord, PortProbe, Problem, Report,
    Status,
};

/// The name looked up to test the upstream resolver: `.invalid` never exists,
/// so any answer (NXDOMAIN) proves a resolver answered.
const UPSTREAM_PROBE_NAME: &str = "magos-doctor.invalid";

/// Errors of a heal action.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// A Podman request of a heal failed.
    #[error("heal of {target}: {source}")]
    Podman {
        /// The container or stacks being healed.
        target: String,
        /// The request's error.
        #[source]
        source: Box<PodmanError>,
    },
    /// A stack's dependencies could not be ordered.
    #[error("stack {stack}: {message}")]
    Order {
        /// The compose project.
        stack: String,
        /// What is wrong.
        message: String,
    },
}

/// How the doctor looks and heals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorOptions {
    /// The Podman user's runtime directory (holds the rootless netns); `None`:
    /// `/run/user/<uid of the socket's owner>`.
    pub runtime_dir: Option<PathBuf>,
    /// Where procfs is mounted.
    pub proc_root: PathBuf,
    /// Extra `key=value` labels every examined container must carry (the
    /// daemon's instance label, so it only looks at its own containers).
    pub scope: Vec<String>,
    /// Heal what can be healed.
    pub heal: bool,
    /// Heals allowed per container (and for the rootless netns) per hour.
    pub max_heals_per_hour: usize,
    /// Ask the host's resolver, which the containers' DNS is forwarded to, for
    /// a name that needs an upstream server.
    pub dns_upstream: bool,
    /// The PATH searched for netavark's firewall program; `None`: the Podman
    /// service's own (read from its process), else systemd's default.
    pub search_path: Option<String>,
    /// The limit of one TCP connect.
    pub connect_timeout: Duration,
    /// How long an accepted probe connection is watched for being dropped.
    pub linger: Duration,
    /// How long to wait after a heal for the ports to answer.
    pub verify_timeout: Duration,
    /// Seconds a container gets to stop during a heal.
    pub stop_timeout: u64,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        Self {
            runtime_dir: None,
            proc_root: PathBuf::from("/proc"),
            scope: Vec::new(),
            heal: false,
            max_heals_per_hour: 3,
            dns_upstream: true,
            search_path: None,
            connect_timeout: Duration::from_secs(3),
            linger: Duration::from_millis(300),
            verify_timeout: Duration::from_secs(30),
            stop_timeout: 10,
        }
    }
}

impl DoctorOptions {
    /// The daemon's options: healing and its limit from the `doctor:`
    /// configuration, examining only the containers of `instance`.
    pub fn for_daemon(config: &crate::config::DoctorConfig, instance: &str) -> Self {
        Self {
            heal: config.heal,
            max_heals_per_hour: config.max_heals_per_hour as usize,
            scope: vec![format!("{}={instance}", crate::core::spec::LABEL_INSTANCE)],
            ..Self::default()
        }
    }
}

/// The doctor: its options and the heal rate limit, kept across passes.
#[derive(Debug, Clone)]
pub struct Doctor {
    options: DoctorOptions,
    limiter: RestartLimiter,
}

impl Doctor {
    /// A doctor with `options`.
    pub fn new(options: DoctorOptions) -> Self {
        let limiter = RestartLimiter::new(options.max_heals_per_hour, Duration::from_secs(3600));
        Self { options, limiter }
    }

    /// Its options.
    pub fn options(&self) -> &DoctorOptions {
        &self.options
    }
}

/// One examined container.
#[derive(Debug, Clone)]
struct Examined {
    facts: ContainerFacts,
    inspect: ContainerInspect,
    service: Option<String>,
    networks: Vec<String>,
}

/// What [`examine`] found: the checks and the containers behind them.
#[derive(Debug, Clone)]
struct Examination {
    checks: Vec<Check>,
    containers: Vec<Examined>,
}

/// The check pass of the daemon and of `magos doctor`: examines, then (when
/// `heal` is on) heals what the findings call for, within the rate limit, each
/// action logged and counted in `metrics`' heals, and checks again until the
/// healed problems are gone or the verify time runs out (`heal.rs`).
pub async fn check_and_heal(
    client: &Client,
    doctor: &mut Doctor,
    metrics: Option<&Metrics>,
) -> Report {
    let first = examine(client, &doctor.options).await;
    let mut report = Report {
        checks: first.checks.clone(),
        heals: Vec::new(),
    };
    if doctor.options.heal {
        report.heals = heal::heal(client, doctor, metrics, &first).await;
    }
    report
}

/// How many containers are inspected, and checked, at once.
const CONCURRENCY: usize = 64;

/// How many port probes (open sockets) are in flight at once.
const PROBES_AT_ONCE: usize = 256;
/// How many exec sessions confirm failures at once.
const EXECS_AT_ONCE: usize = 8;

/// The bounds shared by every container's checks.
struct Limits {
    probes: tokio::sync::Semaphore,
    execs: tokio::sync::Semaphore,
}

impl Limits {
    fn new() -> Self {
        Limits {
            probes: tokio::sync::Semaphore::new(PROBES_AT_ONCE),
            execs: tokio::sync::Semaphore::new(EXECS_AT_ONCE),
        }
    }
}

/// What the host shows once per pass, shared by every container's checks.
struct HostView {
    /// Live pasta processes by the network namespace they serve.
    pasta: BTreeMap<String, u32>,
    /// The host's own addresses.
    addrs: Result<BTreeSet<IpAddr>, String>,
    /// aardvark-dns: live pid, port, addresses bound on that port.
    aardvark: (Option<u32>, u16, Option<BTreeSet<IpAddr>>),
    /// Podman's networks: name → (DNS on, gateways, names aardvark serves there).
    networks: BTreeMap<String, NetworkView>,
}

/// One of Podman's networks as the doctor sees it.
struct NetworkView {
    dns_enabled: bool,
    gateway: Option<IpAddr>,
    names: Option<BTreeSet<String>>,
}

/// Runs every check once. Gathers host facts (procfs, Podman's files) and API
/// answers, judges them with `model`, and enters a container only to confirm
/// a failure the host saw.
async fn examine(client: &Client, options: &DoctorOptions) -> Examination {
    let mut checks = Vec::new();
    let mut containers = Vec::new();
    let socket = client.socket().display().to_string();
    // `podman info` is Podman's slowest answer (it runs its helpers) and holds
    // the version too: one request, and `/version` only when it fails.
    // The slow answers are asked at once: `podman info`, and the managed
    // containers with their inspections, and the networks.
    let no_filters = BTreeMap::new();
    let (info, listed, nets) = tokio::join!(
        client.info(),
        inspect_managed(client, &options.scope),
        client.list_networks(&no_filters),
    );
    let version = match &info {
        Ok(i) => client
            .supported(&i.version.version)
            .map(|()| i.version.version.clone()),
        Err(_) => client.check_version().await.map(|v| v.version),
    };
    let version = version.map_err(|err| err.to_string());
    checks.push(model::judge_socket(
        &socket,
        version.as_deref().map_err(String::as_str),
    ));
    if version.is_err() {
        return Examination { checks, containers };
    }
    let info = match info {
        Ok(info) => Some(info),
        Err(err) => {
            checks.push(model::podman_failed(
                "network_cmd",
                "podman",
                format!("podman info failed: {err}"),
            ));
            None
        }
    };
    let rootless = info.as_ref().is_none_or(|i| i.host.security.rootless);
    let uid = std::fs::metadata(client.socket()).map(|m| m.uid()).ok();
    let user = uid.and_then(|u| probe::user_name(Path::new("/etc/passwd"), u));
    let procs = probe::processes(&options.proc_root);
    if let Some(info) = &info {
        checks.push(network_cmd_check(info));
        if !info.host.service_is_remote {
            let facts = backend_facts(options, info, uid, user.as_deref(), &procs);
            checks.push(model::judge_backend(&facts));
        }
    }
    let runtime_dir = options
        .runtime_dir
        .clone()
        .or_else(|| uid.map(|u| PathBuf::from(format!("/run/user/{u}"))));
    if rootless {
        checks.push(tun_check());
        checks.extend(subid_checks(user.as_deref(), uid));
        checks.push(linger_check(user.as_deref()));
        checks.push(keys_check(user.as_deref(), uid));
    } else {
        for id in ["tun", "subuid", "subgid", "linger", "keys"] {
            checks.push(Check::skip(
                id,
                "host",
                "Podman runs rootful: rootless networking does not apply",
            ));
        }
    }
    if options.dns_upstream {
        checks.push(upstream_check().await);
    } else {
        checks.push(Check::skip(
            "dns_upstream",
            "host",
            "the upstream probe is turned off",
        ));
    }

    match listed {
        Ok(inspected) => {
            for (name, r) in inspected {
                match r {
                    Ok(inspect) => containers.push(examined(inspect)),
                    Err(err) => checks.push(model::podman_failed(
                        "inspect",
                        name,
                        format!("cannot inspect the container: {err}"),
                    )),
                }
            }
        }
        Err(err) => checks.push(model::podman_failed(
            "containers",
            "podman",
            format!("cannot list the managed containers: {err}"),
        )),
    }

    let nets = nets.unwrap_or_default();
    // The rootless netns also holds the gateways of Podman's bridge networks.
    let subnets: Vec<String> = nets
        .iter()
        .flat_map(|n| n.subnets.iter().map(|s| s.subnet.clone()))
        .collect();
    let aardvark_dir = runtime_dir.as_deref().map(probe::aardvark_dir);
    let networks = nets
        .iter()
        .map(|n| {
            let names = aardvark_dir
                .as_ref()
                .and_then(|d| std::fs::read_to_string(d.join(&n.name)).ok())
                .map(|t| model::aardvark_names(&t));
            let view = NetworkView {
                dns_enabled: n.dns_enabled,
                gateway: n.subnets.iter().find_map(|s| s.gateway.parse().ok()),
                names,
            };
            (n.name.clone(), view)
        })
        .collect();
    let view = HostView {
        pasta: probe::pasta_by_netns(&procs),
        addrs: probe::namespace_addresses(&options.proc_root.join("net")),
        aardvark: aardvark_dir
            .as_deref()
            .map(|d| probe::aardvark_process(&options.proc_root, d))
            .unwrap_or((None, 53, None)),
        networks,
    };
    let bridge_running = containers.iter().any(|c| c.facts.running && c.facts.bridge);
    if rootless {
        match &runtime_dir {
            Some(dir) => checks.extend(netns_checks(
                options,
                dir,
                bridge_running,
                view.addrs.as_ref(),
                &subnets,
            )),
            None => checks.push(Check::skip(
                "netns",
                "rootless-netns",
                "the Podman user's runtime directory is unknown",
            )),
        }
    }

    let all = &containers;
    let view = &view;
    let limits = &Limits::new();
    let per_container: Vec<Vec<Check>> = futures_util::future::join_all(
        all.iter()
            .map(|c| container_checks(client, options, limits, c, all, view)),
    )
    .await;
    checks.extend(per_container.into_iter().flatten());
    Examination { checks, containers }
}

/// What bridge networks need, gathered: `podman info`'s programs, the firewall
/// driver (containers.conf, else netavark's default) and its program on the
/// Podman service's PATH.
fn backend_facts(
    options: &DoctorOptions,
    info: &crate::podman::wire::Info,
    uid: Option<u32>,
    user: Option<&str>,
    procs: &[(u32, Vec<String>)],
) -> model::BackendFacts {
    let backend = &info.host.network_backend_info;
    let name = if backend.backend.is_empty() {
        info.host.network_backend.clone()
    } else {
        backend.backend.clone()
    };
    let exists = |p: &str| !p.is_empty() && Path::new(p).exists();
    let home = user.and_then(|u| probe::user_home(Path::new("/etc/passwd"), u));
    let mut firewall = None;
    for file in probe::containers_conf_files(home.as_deref()) {
        if let Some(driver) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| model::conf_firewall_driver(&t))
        {
            firewall = Some(model::FirewallDriver {
                name: driver,
                source: file.display().to_string(),
            });
        }
    }
    if firewall.is_none() && exists(&backend.path) {
        firewall = probe::netavark_default_driver(Path::new(&backend.path)).map(|name| {
            model::FirewallDriver {
                name,
                source: "netavark's default".to_owned(),
            }
        });
    }
    let search_path = options
        .search_path
        .clone()
        .or_else(|| uid.and_then(|u| probe::podman_service_path(&options.proc_root, procs, u)))
        .unwrap_or_else(|| SYSTEMD_DEFAULT_PATH.to_owned());
    let firewall_program = firewall
        .as_ref()
        .and_then(|f| model::firewall_program(&f.name))
        .map(|(program, _)| {
            (
                program,
                probe::find_program(program, &search_path).map(|p| p.display().to_string()),
            )
        });
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    model::BackendFacts {
        backend: name,
        netavark: (backend.path.clone(), exists(&backend.path)),
        aardvark: (backend.dns.path.clone(), exists(&backend.dns.path)),
        firewall,
        firewall_program,
        search_path,
        installer: model::installer(&os_release).to_owned(),
    }
}

/// The PATH systemd gives services, which a Podman service started by socket
/// activation has when no process of it is found.
const SYSTEMD_DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";
/// The managed containers in scope, each with its inspection (or why it failed),
/// `CONCURRENCY` inspections at once.
async fn inspect_managed(
    client: &Client,
    scope: &[String],
) -> Result<Vec<(String, Result<ContainerInspect, PodmanError>)>, PodmanError> {
    let list = list_managed(client, scope).await?;
    Ok(futures_util::stream::iter(list)
        .map(|name| async move {
            let r = client.inspect_container(&name).await;
            (name, r)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await)
}

async fn list_managed(client: &Client, scope: &[String]) -> Result<Vec<String>, PodmanError> {
    let mut names = BTreeSet::new();
    for label in [format!("{LABEL_MANAGED}=true"), LABEL_PROJECT.to_owned()] {
        let mut labels = scope.to_vec();
        labels.push(label);
        for c in client
            .list_containers(&ContainerFilters::labelled(labels))
            .await?
        {
            if let Some(n) = c.names.first() {
                names.insert(n.clone());
            }
        }
    }
    Ok(names.into_iter().collect())
}

fn examined(inspect: ContainerInspect) -> Examined {
    let labels = inspect
        .config
        .as_ref()
        .map(|c| c.labels.clone())
        .unwrap_or_default();
    let mode = network_mode(&inspect);
    let networks: Vec<String> = inspect
        .network_settings
        .as_ref()
        .map(|n| n.networks.keys().cloned().collect())
        .unwrap_or_default();
    let bridge = mode == "bridge" || (!networks.is_empty() && mode != "pasta" && mode != "host");
    Examined {
        facts: ContainerFacts {
            name: inspect.name.clone(),
            project: labels.get(LABEL_PROJECT).cloned(),
            running: inspect.state.as_ref().is_some_and(|s| s.running),
            bridge,
        },
        service: labels.get(LABEL_SERVICE).cloned(),
        networks,
        inspect,
    }
}

fn network_mode(inspect: &ContainerInspect) -> String {
    inspect
        .host_config
        .as_ref()
        .map(|h| h.network_mode.clone())
        .unwrap_or_default()
}

fn network_cmd_check(info: &crate::podman::wire::Info) -> Check {
    let host = &info.host;
    model::judge_network_cmd(&model::NetworkCmdFacts {
        rootless: host.security.rootless,
        command: host.rootless_network_cmd.clone(),
        pasta_executable: host.pasta.executable.clone(),
        pasta_version: host.pasta.version.clone(),
    })
}

fn tun_check() -> Check {
    let opened = probe::tun_usable(Path::new("/dev/net/tun"));
    model::judge_tun(opened.as_ref().copied().map_err(String::as_str))
}

fn subid_checks(user: Option<&str>, uid: Option<u32>) -> Vec<Check> {
    let (Some(user), Some(uid)) = (user, uid) else {
        return ["subuid", "subgid"]
            .into_iter()
            .map(model::unknown_user)
            .collect();
    };
    ["subuid", "subgid"]
        .into_iter()
        .map(|id| {
            let path = format!("/etc/{id}");
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            model::judge_subid(id, user, &path, model::subid_count(&text, user, uid))
        })
        .collect()
}

fn keys_check(user: Option<&str>, uid: Option<u32>) -> Check {
    let (Some(user), Some(uid)) = (user, uid) else {
        return model::unknown_user("keys");
    };
    let text = std::fs::read_to_string("/proc/key-users").unwrap_or_default();
    model::judge_key_users(user, model::key_quota(&text, uid))
}

fn linger_check(user: Option<&str>) -> Check {
    let Some(user) = user else {
        return model::unknown_user("linger");
    };
    model::judge_linger(
        user,
        Path::new("/var/lib/systemd/linger").join(user).exists(),
    )
}

fn netns_checks(
    options: &DoctorOptions,
    runtime_dir: &Path,
    bridge_running: bool,
    host_addrs: Result<&BTreeSet<IpAddr>, &String>,
    subnets: &[String],
) -> Vec<Check> {
    let dir = probe::rootless_netns_dir(runtime_dir);
    let pid_file = dir.join("rootless-netns-conn.pid");
    let subject = "rootless-netns";
    let pid = probe::read_pid(&pid_file);
    let alive = pid.is_some_and(|pid| {
        probe::process_cmdline(&options.proc_root, pid).is_some_and(|c| probe::is_pasta(&c))
    });
    let netns = model::judge_netns(&model::NetnsFacts {
        pid_file: pid_file.display().to_string(),
        pid,
        alive,
        bridge_running,
    });
    if pid.is_none() {
        return vec![netns];
    }
    let mut checks = vec![netns];
    match (probe::rootless_netns_addresses(&dir), host_addrs) {
        (Ok(ns), Ok(host)) => checks.push(model::judge_addresses(
            "netns_addresses",
            subject,
            &model::without_pool_gateways(&model::without_subnets(&ns, subnets)),
            host,
            "the rootless netns",
            Problem::NetnsStale,
        )),
        (Err(e), _) => checks.push(Check::skip(
            "netns_addresses",
            subject,
            format!("the addresses pasta copied cannot be read: {e}"),
        )),
        (_, Err(e)) => checks.push(Check::skip(
            "netns_addresses",
            subject,
            format!("the host's addresses cannot be read: {e}"),
        )),
    }
    checks
}

async fn container_checks(
    client: &Client,
    options: &DoctorOptions,
    limits: &Limits,
    c: &Examined,
    all: &[Examined],
    view: &HostView,
) -> Vec<Check> {
    let name = &c.facts.name;
    let mode = network_mode(&c.inspect);
    let mut checks = Vec::new();
    let mode_text = if c.facts.bridge {
        format!("bridge networks: {}", c.networks.join(", "))
    } else if mode.is_empty() {
        "unknown".to_owned()
    } else {
        mode.clone()
    };
    if !c.facts.running {
        checks.push(Check::skip(
            "network_mode",
            name.clone(),
            format!("{mode_text}; not running, nothing else checked"),
        ));
        return checks;
    }
    checks.push(Check::pass("network_mode", name.clone(), mode_text));
    let pid = c.inspect.state.as_ref().map_or(0, |s| s.pid);
    let net_dir = (pid > 0).then(|| options.proc_root.join(pid.to_string()).join("net"));
    let sandbox = c
        .inspect
        .network_settings
        .as_ref()
        .map(|n| n.sandbox_key.clone())
        .unwrap_or_default();

    if mode == "pasta" {
        checks.push(model::judge_container_pasta(
            name,
            &sandbox,
            view.pasta.get(&sandbox).copied(),
        ));
        match (&net_dir, view.addrs.as_ref()) {
            (Some(dir), Ok(host)) => match probe::namespace_addresses(dir) {
                Ok(ns) => checks.push(model::judge_addresses(
                    "addresses",
                    name,
                    &ns,
                    host,
                    "the container",
                    Problem::ContainerAddressesStale {
                        container: name.clone(),
                    },
                )),
                Err(e) => checks.push(Check::skip(
                    "addresses",
                    name.clone(),
                    format!("the container's addresses cannot be read: {e}"),
                )),
            },
            (None, _) => checks.push(Check::skip(
                "addresses",
                name.clone(),
                "Podman reports no process for the container",
            )),
            (_, Err(e)) => checks.push(Check::skip(
                "addresses",
                name.clone(),
                format!("the host's addresses cannot be read: {e}"),
            )),
        }
    }

    let mut ports: Vec<(u16, String, String, u16)> = Vec::new();
    if let Some(settings) = &c.inspect.network_settings {
        for (key, bindings) in &settings.ports {
            let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            for b in bindings.iter().flatten() {
                if let Ok(host_port) = b.host_port.parse::<u16>() {
                    ports.push((port, proto.to_owned(), b.host_ip.clone(), host_port));
                }
            }
        }
    }
    // A port's probe waits up to `linger` to see a relay close at once, so a
    // container's ports are probed together, and every container's at once
    // (bounded by `limits`).
    let port_checks = ports
        .into_iter()
        .map(|(container_port, proto, host_ip, host_port)| {
            let net_dir = net_dir.as_deref();
            async move {
                let host_ip = host_ip.as_str();
                let shown_ip = if host_ip.is_empty() {
                    "0.0.0.0"
                } else {
                    host_ip
                };
                let subject = format!("{name} {shown_ip}:{host_port}/{proto}");
                if proto != "tcp" {
                    return Check::skip("port", subject, format!("{proto} ports are not probed"));
                }
                let Some(addr) = probe::probe_address(host_ip, host_port) else {
                    return Check::skip("port", subject, format!("`{host_ip}` is not an address"));
                };
                let result = {
                    let _permit = limits.probes.acquire().await;
                    probe::probe_tcp_async(addr, options.connect_timeout, options.linger).await
                };
                // Whether the service listens matters only when the port fails:
                // read from the container's procfs, entering it only when that
                // is closed.
                let inside = if result == PortProbe::Open {
                    None
                } else {
                    match net_dir.and_then(|d| probe::listens(d, container_port)) {
                        Some(l) => Some(l),
                        None => {
                            let _permit = limits.execs.acquire().await;
                            listens_by_exec(client, name, container_port).await
                        }
                    }
                };
                model::judge_port(name, &subject, host_port, result, inside)
            }
        });
    checks.extend(futures_util::future::join_all(port_checks).await);

    if c.facts.bridge {
        let peer = all.iter().find(|o| {
            o.facts.name != *name
                && o.facts.running
                && o.networks.iter().any(|n| c.networks.contains(n))
        });
        let peer = peer.map(|p| p.service.clone().unwrap_or_else(|| p.facts.name.clone()));
        let facts = model::DnsFacts {
            aardvark_pid: view.aardvark.0,
            aardvark_port: view.aardvark.1,
            aardvark_bound: view.aardvark.2.clone(),
            networks: c
                .networks
                .iter()
                .map(|n| {
                    let v = view.networks.get(n);
                    model::DnsNetwork {
                        name: n.clone(),
                        dns_enabled: v.is_some_and(|v| v.dns_enabled),
                        gateway: v.and_then(|v| v.gateway),
                        names: v.and_then(|v| v.names.clone()),
                    }
                })
                .collect(),
            peer: peer.clone(),
        };
        let check = model::judge_dns(name, &facts);
        if check.status == Status::Fail {
            let target = peer.as_deref().unwrap_or(UPSTREAM_PROBE_NAME);
            let inside = {
                let _permit = limits.execs.acquire().await;
                nslookup_inside(client, name, target).await
            };
            checks.push(model::confirm_dns(check, peer.as_deref(), &inside));
        } else {
            checks.push(check);
        }
    }
    checks
}

fn exec_of(cmd: &[&str]) -> ExecCreate {
    ExecCreate {
        cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        attach_stdout: true,
        attach_stderr: true,
        ..ExecCreate::default()
    }
}

/// Whether the container listens on `port`, read from its own `/proc/net/tcp*`
/// through exec (its session removed afterwards); `None` when that cannot be
/// read.
async fn listens_by_exec(client: &Client, container: &str, port: u16) -> Option<bool> {
    let out = client
        .exec(
            container,
            &exec_of(&["cat", "/proc/net/tcp", "/proc/net/tcp6"]),
        )
        .await
        .ok()?;
    if out.stdout.trim().is_empty() {
        return None;
    }
    // Each table has a header line; joined, the second header reads as junk.
    Some(model::tcp_table_listens(
        &format!("header\n{}", out.stdout),
        port,
    ))
}

/// `nslookup name` inside the container, to confirm a DNS failure the host saw.
async fn nslookup_inside(client: &Client, container: &str, name: &str) -> model::Confirmation {
    match client.exec(container, &exec_of(&["nslookup", name])).await {
        Ok(out) if out.exit_code == 126 || out.exit_code == 127 => model::Confirmation::NoTool,
        Ok(out) => model::Confirmation::Ran(out.exit_code, format!("{}{}", out.stdout, out.stderr)),
        Err(err) => model::Confirmation::Failed(err.to_string()),
    }
}

/// The host's resolver, which pasta forwards the containers' DNS to (directly
/// for `--network pasta`, through aardvark-dns for bridge networks): asked for
/// a name only an upstream server can answer.
async fn upstream_check() -> Check {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let servers = model::resolv_nameservers(&text);
    let result = tokio::task::spawn_blocking(move || {
        probe::resolver_answers(&servers, UPSTREAM_PROBE_NAME, Duration::from_secs(2))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    model::judge_upstream(result.as_ref().map(|s| *s).map_err(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::heal::count;
    use super::*;

    #[test]
    fn the_daemon_options_follow_the_configuration_and_its_instance() {
        let config = crate::config::DoctorConfig {
            heal: false,
            max_heals_per_hour: 7,
        };
        let o = DoctorOptions::for_daemon(&config, "nas");
        assert!(!o.heal);
        assert_eq!(o.max_heals_per_hour, 7);
        assert_eq!(o.scope, vec!["io.magos.instance=nas".to_owned()]);
        assert!(DoctorOptions::for_daemon(&Default::default(), "nas").heal);
    }

    #[test]
    fn heals_are_counted_by_kind() {
        let metrics = Metrics::new();
        count(Some(&metrics), "restart_container");
        count(Some(&metrics), "restart_container");
        count(Some(&metrics), "rate_limited");
        count(None, "restart_container");
        let text = metrics.render();
        assert!(
            text.contains("magos_heals_total{kind=\"restart_container\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("magos_heals_total{kind=\"rate_limited\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn the_daemon_can_run_a_pass_on_any_thread() {
        fn is_send<T: Send>(_: &T) {}
        let client = Client::new("/nonexistent.sock", Default::default());
        let mut doctor = Doctor::new(DoctorOptions::default());
        let pass = check_and_heal(&client, &mut doctor, None);
        is_send(&pass);
    }
}
