//! One container as a `.container` unit.

use crate::core::interpolate::is_sealed;
use crate::core::plan::pull_reference;
use crate::core::spec::{
    ContainerSpec, DependencyCondition, MountSpec, NetworkMode, PullPolicy, RestartPolicy,
    SharedNamespace, StackSpec,
};

use super::unit::{self, Unit, go_duration, raw, word, words};
use super::{Errors, Names, Options, Scope, UnitFile, header, secret_variables, service_of};

const C: &str = "Container";

/// The unit of `c`, or `None` when an error was recorded.
pub(super) fn unit(
    spec: &StackSpec,
    c: &ContainerSpec,
    names: &Names,
    options: &Options,
    errors: &mut Errors<'_>,
) -> Option<UnitFile> {
    let before = errors.list.len();
    let mut w = Writer {
        u: Unit::default(),
        c,
        errors,
    };
    header(&mut w.u, spec);
    w.u.set(
        "Unit",
        "Description",
        unit::percent(&format!(
            "Service {} ({}) of the stack {}",
            c.service, c.name, spec.project
        )),
    );
    w.u.section(C);
    w.u.section("Service");
    w.u.section("Install");

    identity(&mut w, spec, names);
    process(&mut w, options);
    network(&mut w, spec, names);
    mounts(&mut w, names);
    health(&mut w);
    limits(&mut w);
    security(&mut w);
    namespaces(&mut w, spec, names);
    dependencies(&mut w, spec, names);
    lifecycle(&mut w, spec, options);

    if w.errors.list.len() > before {
        return None;
    }
    Some(UnitFile {
        name: names.containers[&c.name].clone(),
        contents: w.u.render(),
    })
}

struct Writer<'a, 'b, 'c> {
    u: Unit,
    c: &'a ContainerSpec,
    errors: &'b mut Errors<'c>,
}

impl Writer<'_, '_, '_> {
    /// `Key=value` in `[Container]` for a key Quadlet reads as one raw
    /// string; an error at the compose key when it cannot be written.
    fn raw(&mut self, key: &str, value: &str, compose_key: &str) {
        if is_sealed(value) {
            self.sealed(compose_key);
            return;
        }
        match raw(value) {
            Some(v) => self.u.set(C, key, v),
            None => self.errors.at(
                &self.c.service,
                compose_key,
                format!(
                    "`{}` cannot be written as Quadlet's `{key}=` (a line break, a control character, a trailing backslash or white space at either end)",
                    value.escape_debug()
                ),
            ),
        }
    }

    /// `Key=word word …` in `[Container]` for a key Quadlet splits into words.
    fn words(&mut self, key: &str, items: &[String], compose_key: &str) {
        if items.iter().any(|i| is_sealed(i)) {
            self.sealed(compose_key);
            return;
        }
        self.u.set(C, key, words(items));
    }

    /// A `podman run` flag Quadlet has no key for.
    fn args(&mut self, items: &[&str]) {
        self.u.set(C, "PodmanArgs", words(items));
    }

    fn sealed(&mut self, compose_key: &str) {
        self.errors.at(
            &self.c.service,
            compose_key,
            "holds a value from a SOPS-encrypted `.env`, which a unit file cannot carry (only `environment:` values can, through the decrypted environment file)",
        );
    }

    fn service_name(&self) -> &str {
        &self.c.service
    }
}

/// Image, name, labels, annotations.
fn identity(w: &mut Writer<'_, '_, '_>, spec: &StackSpec, names: &Names) {
    let c = w.c;
    match names.builds.get(&c.service) {
        // Quadlet builds it first (the `.build` unit's service).
        Some(build) if c.build.is_some() => w.u.set(C, "Image", build),
        _ => w.raw("Image", &pull_reference(&c.image), "image"),
    }
    w.raw("ContainerName", &c.name, "container_name");
    for (k, v) in c.all_labels(spec) {
        if is_sealed(&v) {
            w.sealed("labels");
            continue;
        }
        w.u.set(C, "Label", word(&format!("{k}={v}")));
    }
    for (k, v) in &c.run.annotations {
        w.u.set(C, "Annotation", word(&format!("{k}={v}")));
    }
    if let Some(p) = &c.run.pull_policy {
        let v = match p {
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
        };
        w.u.set(C, "Pull", v);
    }
    if let Some(p) = &c.run.platform {
        w.args(&["--platform", p]);
    }
}

/// What runs and how: command, entrypoint, environment, user, folder, terminal.
fn process(w: &mut Writer<'_, '_, '_>, options: &Options) {
    let c = w.c;
    if let Some(e) = &c.entrypoint {
        let json = serde_json::to_string(e).expect("strings serialize");
        if e.iter().any(|s| is_sealed(s)) {
            w.sealed("entrypoint");
        } else {
            w.raw("Entrypoint", &json, "entrypoint");
        }
    }
    match &c.command {
        Some(cmd) if cmd.is_empty() => w.errors.at(
            &c.service,
            "command",
            "an empty command cannot be written as Quadlet's `Exec=` (it would run the image's own); remove it or give the command",
        ),
        Some(cmd) => w.words("Exec", cmd, "command"),
        None => {}
    }
    let secret = secret_variables(c);
    for (k, v) in &c.environment {
        if is_sealed(v) {
            continue;
        }
        w.u.set(C, "Environment", word(&format!("{k}={v}")));
    }
    if !secret.is_empty() {
        match options.secret_env_files.get(&c.name) {
            Some(path) => w.raw("EnvironmentFile", path, "env_file"),
            None => {
                let key = if c.secret_environment.is_empty() {
                    "environment"
                } else {
                    "env_file"
                };
                w.errors.at(
                    &c.service,
                    key,
                    format!(
                        "the variables {} come from SOPS-encrypted files, whose values are never written into a unit; `magos export quadlet` cannot carry them (with `runtime: quadlet`, `magos apply` gives them through a decrypted file in its private runtime folder)",
                        secret.join(", ")
                    ),
                );
            }
        }
    }
    if let Some(user) = &c.user {
        match user.split_once(':') {
            Some((u, g)) if !u.is_empty() => {
                w.raw("User", u, "user");
                w.raw("Group", g, "user");
            }
            Some(_) => w.args(&["--user", user]),
            None => w.raw("User", user, "user"),
        }
    }
    if let Some(d) = &c.working_dir {
        w.raw("WorkingDir", d, "working_dir");
    }
    if let Some(h) = &c.hostname {
        w.raw("HostName", h, "hostname");
    }
    match c.run.init {
        Some(true) => w.u.set(C, "RunInit", "true"),
        Some(false) => w.args(&["--init=false"]),
        None => {}
    }
    if c.run.tty {
        w.args(&["--tty"]);
    }
    if c.run.stdin_open {
        w.args(&["--interactive"]);
    }
    for s in &c.podman_secrets {
        let mut v = format!(
            "{},type={},target={}",
            s.source,
            if s.as_env { "env" } else { "mount" },
            s.target
        );
        if let Some(u) = s.uid {
            v.push_str(&format!(",uid={u}"));
        }
        if let Some(g) = s.gid {
            v.push_str(&format!(",gid={g}"));
        }
        if let Some(m) = s.mode {
            v.push_str(&format!(",mode={m:04o}"));
        }
        w.raw("Secret", &v, "secrets");
    }
    if let Some(s) = &c.stop_signal {
        w.raw("StopSignal", s, "stop_signal");
    }
    if let Some(d) = c.stop_grace_period {
        w.u.set(C, "StopTimeout", d.as_secs().max(1).to_string());
    }
    if let Some(l) = &c.run.logging {
        if let Some(d) = &l.driver {
            w.raw("LogDriver", d, "logging");
        }
        let mut opts: Vec<String> = Vec::new();
        if let Some(p) = &l.path {
            opts.push(format!("path={p}"));
        }
        if let Some(s) = l.max_size {
            opts.push(format!("max-size={s}"));
        }
        opts.extend(l.options.iter().map(|(k, v)| format!("{k}={v}")));
        for o in opts {
            w.words("LogOpt", &[o], "logging");
        }
    }
}

/// Networks, ports, host names, DNS.
fn network(w: &mut Writer<'_, '_, '_>, spec: &StackSpec, names: &Names) {
    let c = w.c;
    match &c.network_mode {
        NetworkMode::Bridge => {
            for (net, aliases) in &c.networks {
                let target = names.networks.get(net).cloned().unwrap_or(net.clone());
                let mut aliases = aliases.clone();
                // Compose makes every service reachable by its name on its networks.
                if !aliases.contains(&c.service) {
                    aliases.insert(0, c.service.clone());
                }
                let mut opts: Vec<String> = aliases.iter().map(|a| format!("alias={a}")).collect();
                if let Some(fixed) = c.network_settings.get(net) {
                    opts.extend(fixed.static_ips.iter().map(|ip| {
                        if ip.contains(':') {
                            format!("ip6={ip}")
                        } else {
                            format!("ip={ip}")
                        }
                    }));
                    opts.extend(fixed.mac.iter().map(|m| format!("mac={m}")));
                    opts.extend(
                        fixed
                            .interface_name
                            .iter()
                            .map(|i| format!("interface_name={i}")),
                    );
                }
                w.raw(
                    "Network",
                    &format!("{target}:{}", opts.join(",")),
                    "networks",
                );
            }
        }
        NetworkMode::Host => w.u.set(C, "Network", "host"),
        NetworkMode::None => w.u.set(C, "Network", "none"),
        NetworkMode::Pasta(o) if o.is_empty() => w.u.set(C, "Network", "pasta"),
        NetworkMode::Pasta(o) => {
            w.raw("Network", &format!("pasta:{}", o.join(",")), "network_mode")
        }
        NetworkMode::Service(target) => match first_of(spec, target) {
            Some(t) => {
                let unit = names.containers[&t.name].clone();
                w.raw("Network", &unit, "network_mode");
            }
            None => w.errors.at(
                &c.service,
                "network_mode",
                format!("refers to service `{target}`, which is not in the stack"),
            ),
        },
        NetworkMode::Container(other) => {
            w.raw("Network", &format!("container:{other}"), "network_mode");
        }
    }
    for p in &c.ports {
        let span = |start: u16| {
            if p.range > 1 {
                format!("{start}-{}", u32::from(start) + u32::from(p.range) - 1)
            } else {
                start.to_string()
            }
        };
        let ip = if p.host_ip.contains(':') {
            format!("[{}]", p.host_ip)
        } else {
            p.host_ip.clone()
        };
        let host = if p.host_port == 0 {
            String::new()
        } else {
            span(p.host_port)
        };
        let mut v = match (ip.is_empty(), host.is_empty()) {
            (true, true) => span(p.container_port),
            (true, false) => format!("{host}:{}", span(p.container_port)),
            (false, _) => format!("{ip}:{host}:{}", span(p.container_port)),
        };
        if p.protocol != "tcp" {
            v.push('/');
            v.push_str(&p.protocol);
        }
        w.raw("PublishPort", &v, "ports");
    }
    for (port, protocols) in &c.run.expose {
        for proto in protocols.split(',') {
            let v = if proto == "tcp" {
                port.to_string()
            } else {
                format!("{port}/{proto}")
            };
            w.raw("ExposeHostPort", &v, "expose");
        }
    }
    for h in &c.extra_hosts {
        w.raw("AddHost", h, "extra_hosts");
    }
    for d in &c.dns {
        w.raw("DNS", d, "dns");
    }
    for d in &c.run.dns_search {
        w.raw("DNSSearch", d, "dns_search");
    }
    for d in &c.run.dns_opt {
        w.raw("DNSOption", d, "dns_opt");
    }
    if c.no_hosts {
        w.args(&["--no-hosts"]);
    }
}

/// Volumes, binds, tmpfs.
fn mounts(w: &mut Writer<'_, '_, '_>, names: &Names) {
    let c = w.c;
    let mut folders = Vec::new();
    for m in &c.mounts {
        match m {
            MountSpec::Volume {
                name,
                target,
                read_only,
                options,
                subpath,
            } => {
                let source = names.volumes.get(name).cloned().unwrap_or(name.clone());
                let mut opts: Vec<String> =
                    read_only.then(|| "ro".to_owned()).into_iter().collect();
                opts.extend(options.iter().cloned());
                if let Some(sub) = subpath {
                    // `-v` has no sub-path: `--mount` does.
                    let mut v = format!("type=volume,source={source},destination={target}");
                    v.push_str(&format!(",subpath={sub}"));
                    for o in &opts {
                        v.push(',');
                        v.push_str(if o == "ro" { "ro=true" } else { o });
                    }
                    if has_separator(target) || has_separator(sub) {
                        bad_path(w, target);
                    } else {
                        w.raw("Mount", &v, "volumes");
                    }
                } else if target.contains(':') {
                    bad_path(w, target);
                } else {
                    let mut v = format!("{source}:{target}");
                    if !opts.is_empty() {
                        v.push(':');
                        v.push_str(&opts.join(","));
                    }
                    w.raw("Volume", &v, "volumes");
                }
            }
            MountSpec::Bind {
                source,
                target,
                options,
                create_host_path,
            } => {
                if source.contains(':') || target.contains(':') {
                    bad_path(w, if source.contains(':') { source } else { target });
                    continue;
                }
                let mut v = format!("{source}:{target}");
                if !options.is_empty() {
                    v.push(':');
                    v.push_str(&options.join(","));
                }
                w.raw("Volume", &v, "volumes");
                if *create_host_path {
                    folders.push(source.clone());
                }
            }
            MountSpec::Tmpfs { target, options } => {
                let mut v = target.clone();
                if !options.is_empty() {
                    v.push(':');
                    v.push_str(&options.join(","));
                }
                w.raw("Tmpfs", &v, "tmpfs");
            }
        }
    }
    if !folders.is_empty() {
        // As the libpod route does before it creates the container: the bind's
        // folder is made when nothing is there (`-`: a file already there is
        // not a failure; Podman mounts it).
        let mut cmd = vec!["mkdir".to_owned(), "-p".to_owned(), "--".to_owned()];
        cmd.extend(folders);
        w.u.set("Service", "ExecStartPre", format!("-{}", words(&cmd)));
    }
}

fn has_separator(s: &str) -> bool {
    s.contains([',', ':'])
}

fn bad_path(w: &mut Writer<'_, '_, '_>, path: &str) {
    let service = w.service_name().to_owned();
    w.errors.at(
        &service,
        "volumes",
        format!("the path `{path}` holds a `:` (or `,`), which Podman's `--volume` and `--mount` syntax cannot carry"),
    );
}

/// The healthcheck.
fn health(w: &mut Writer<'_, '_, '_>) {
    let c = w.c;
    let Some(h) = &c.healthcheck else { return };
    if h.test.iter().any(|t| is_sealed(t)) {
        w.sealed("healthcheck");
        return;
    }
    // `--health-cmd` reads a JSON array whose first word is `CMD-SHELL` as
    // it stands, any other array of two words or more as `CMD` + the words,
    // and `CMD word` (no JSON) as `CMD` + the words split at white space.
    let cmd = match h.test.first().map(String::as_str) {
        Some("NONE") => "none".to_owned(),
        Some("CMD-SHELL") => serde_json::to_string(&h.test).expect("strings serialize"),
        Some("CMD") if h.test.len() > 2 => {
            serde_json::to_string(&h.test[1..]).expect("strings serialize")
        }
        Some("CMD")
            if h.test.len() == 2
                && !h.test[1].is_empty()
                && !h.test[1].contains(char::is_whitespace) =>
        {
            format!("CMD {}", h.test[1])
        }
        Some("CMD") if h.test.len() == 2 => {
            w.errors.at(
                &c.service,
                "healthcheck",
                format!(
                    "a one-word `CMD` test holding white space (`{}`) cannot be written as Quadlet's `HealthCmd=`; split it into its words",
                    h.test[1]
                ),
            );
            return;
        }
        _ => {
            w.errors.at(
                &c.service,
                "healthcheck",
                "the test is not `CMD`, `CMD-SHELL` or `NONE` with a command",
            );
            return;
        }
    };
    w.raw("HealthCmd", &cmd, "healthcheck");
    if let Some(d) = h.interval {
        w.u.set(C, "HealthInterval", go_duration(d));
    }
    if let Some(d) = h.timeout {
        w.u.set(C, "HealthTimeout", go_duration(d));
    }
    if let Some(d) = h.start_period {
        w.u.set(C, "HealthStartPeriod", go_duration(d));
    }
    if let Some(r) = h.retries {
        w.u.set(C, "HealthRetries", r.to_string());
    }
    if h.start_interval.is_some() {
        w.errors.at(
            &c.service,
            "healthcheck",
            "`start_interval` has no Quadlet key nor `podman run` flag in this Podman; remove it",
        );
    }
}

/// Resources.
fn limits(w: &mut Writer<'_, '_, '_>) {
    let r = &w.c.run;
    let n = |v: i64| v.to_string();
    if let Some(m) = r.memory {
        w.args(&["--memory", &n(m)]);
    }
    if let Some(m) = r.memory_reservation {
        w.args(&["--memory-reservation", &n(m)]);
    }
    if let Some(m) = r.memory_swap {
        w.args(&["--memory-swap", &n(m)]);
    }
    if let Some(c) = r.cpus_micro {
        let cpus = format!("{}.{:06}", c / 1_000_000, c % 1_000_000);
        let cpus = cpus.trim_end_matches('0').trim_end_matches('.');
        w.args(&["--cpus", cpus]);
    }
    if let Some(s) = r.cpu_shares {
        w.args(&["--cpu-shares", &s.to_string()]);
    }
    if let Some(s) = &r.cpuset {
        w.args(&["--cpuset-cpus", s]);
    }
    if let Some(p) = r.pids_limit {
        w.u.set(C, "PidsLimit", n(p));
    }
    if let Some(s) = r.shm_size {
        w.u.set(C, "ShmSize", n(s));
    }
    for (k, v) in &r.sysctls {
        w.words("Sysctl", &[format!("{k}={v}")], "sysctls");
    }
    for (k, u) in &r.ulimits {
        w.raw("Ulimit", &format!("{k}={}:{}", u.soft, u.hard), "ulimits");
    }
    if let Some(o) = r.oom_score_adj {
        w.args(&["--oom-score-adj", &o.to_string()]);
    }
    for d in &w.c.devices {
        w.raw("AddDevice", d, "devices");
    }
    for rule in &r.device_cgroup_rules {
        w.args(&["--device-cgroup-rule", rule]);
    }
}

/// Capabilities, privileges, security options, read-only root.
fn security(w: &mut Writer<'_, '_, '_>) {
    let c = w.c;
    if !c.cap_add.is_empty() {
        w.words("AddCapability", &c.cap_add, "cap_add");
    }
    if !c.cap_drop.is_empty() {
        w.words("DropCapability", &c.cap_drop, "cap_drop");
    }
    if c.run.privileged {
        w.args(&["--privileged"]);
    }
    if c.read_only {
        w.u.set(C, "ReadOnly", "true");
    }
    for g in &c.run.group_add {
        w.raw("GroupAdd", g, "group_add");
    }
    for o in &c.run.security_opt {
        let (key, value) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match (key, value) {
            ("label", "disable") => w.u.set(C, "SecurityLabelDisable", "true"),
            ("label", "nested") => w.u.set(C, "SecurityLabelNested", "true"),
            ("label", v) if v.starts_with("type:") => {
                w.raw("SecurityLabelType", &v["type:".len()..], "security_opt")
            }
            ("label", v) if v.starts_with("level:") => {
                w.raw("SecurityLabelLevel", &v["level:".len()..], "security_opt")
            }
            ("label", v) if v.starts_with("filetype:") => w.raw(
                "SecurityLabelFileType",
                &v["filetype:".len()..],
                "security_opt",
            ),
            ("seccomp", v) => w.raw("SeccompProfile", v, "security_opt"),
            ("no-new-privileges", "" | "true") => w.u.set(C, "NoNewPrivileges", "true"),
            ("mask", v) => w.raw("Mask", v, "security_opt"),
            ("unmask", v) => w.raw("Unmask", v, "security_opt"),
            _ => w.args(&["--security-opt", o]),
        }
    }
    for m in &c.uidmaps {
        w.raw("UIDMap", m, "x-podman.uidmaps");
    }
    for m in &c.gidmaps {
        w.raw("GIDMap", m, "x-podman.gidmaps");
    }
    if let Some(u) = &c.run.userns {
        w.raw("UserNS", u, "userns_mode");
    }
}

/// `pid:` and `ipc:`.
fn namespaces(w: &mut Writer<'_, '_, '_>, spec: &StackSpec, names: &Names) {
    let c = w.c;
    for (key, flag, ns) in [("pid", "--pid", &c.run.pid), ("ipc", "--ipc", &c.run.ipc)] {
        let Some(ns) = ns else { continue };
        let value = match ns {
            SharedNamespace::Host => "host".to_owned(),
            SharedNamespace::Mode(m) => m.clone(),
            SharedNamespace::Container(other) => format!("container:{other}"),
            SharedNamespace::Service(target) => match first_of(spec, target) {
                Some(t) => {
                    let service = service_of(&names.containers[&t.name]);
                    w.u.set("Unit", "Requires", &service);
                    w.u.set("Unit", "After", &service);
                    format!("container:{}", t.name)
                }
                None => {
                    w.errors.at(
                        &c.service,
                        key,
                        format!("refers to service `{target}`, which is not in the stack"),
                    );
                    continue;
                }
            },
        };
        w.args(&[flag, &value]);
    }
}

/// `depends_on`: `Requires=` and `After=` on every container of the service
/// depended on; what the dependency itself needs (`Notify=healthy`, a
/// one-shot service) is set on its own unit by [`lifecycle`].
fn dependencies(w: &mut Writer<'_, '_, '_>, spec: &StackSpec, names: &Names) {
    let c = w.c;
    for d in &c.depends_on {
        let targets: Vec<&ContainerSpec> = spec
            .services
            .iter()
            .filter(|s| s.service == d.service)
            .collect();
        if targets.is_empty() {
            w.errors.at(
                &c.service,
                "depends_on",
                format!(
                    "refers to service `{}`, which is not in the stack",
                    d.service
                ),
            );
            continue;
        }
        if d.condition == DependencyCondition::ServiceHealthy
            && targets.iter().any(|t| !has_healthcheck(t))
        {
            w.errors.at(
                &c.service,
                "depends_on",
                format!(
                    "waits for service `{}` to be healthy, but it has no healthcheck",
                    d.service
                ),
            );
        }
        for t in targets {
            let service = service_of(&names.containers[&t.name]);
            w.u.set("Unit", "Requires", &service);
            w.u.set("Unit", "After", &service);
        }
    }
}

fn has_healthcheck(c: &ContainerSpec) -> bool {
    c.healthcheck
        .as_ref()
        .is_some_and(|h| h.test.first().is_some_and(|t| t != "NONE"))
}

/// How the others wait for it, its restart policy and its target.
fn lifecycle(w: &mut Writer<'_, '_, '_>, spec: &StackSpec, options: &Options) {
    let c = w.c;
    let waited: Vec<DependencyCondition> = spec
        .services
        .iter()
        .flat_map(|s| &s.depends_on)
        .filter(|d| d.service == c.service)
        .map(|d| d.condition)
        .collect();
    let healthy = waited.contains(&DependencyCondition::ServiceHealthy);
    let completes = waited.contains(&DependencyCondition::ServiceCompletedSuccessfully);
    if healthy && completes {
        w.errors.at(
            &c.service,
            "depends_on",
            "other services wait for it both to be healthy and to complete; a unit can say only one",
        );
    }
    if healthy {
        w.u.set(C, "Notify", "healthy");
    }
    let restart = match (c.restart, c.run.restart_tries) {
        (None, _) => None,
        (Some(RestartPolicy::No), _) => Some("no"),
        // A unit stopped with `systemctl stop` stays stopped either way.
        (Some(RestartPolicy::Always | RestartPolicy::UnlessStopped), _) => Some("always"),
        (Some(RestartPolicy::OnFailure), _) => Some("on-failure"),
    };
    if completes {
        // The dependents start once it has run to completion, and fail with it.
        if restart == Some("always") {
            w.errors.at(
                &c.service,
                "restart",
                "other services wait for it to complete, but it restarts always; a unit that runs to completion can only restart `on-failure`",
            );
        }
        w.u.set("Service", "Type", "oneshot");
        w.u.set("Service", "RemainAfterExit", "yes");
    }
    if let Some(r) = restart {
        w.u.set("Service", "Restart", r);
    }
    if let (Some(RestartPolicy::OnFailure), Some(n)) = (c.restart, c.run.restart_tries) {
        // At most `n` restarts after the first start.
        w.u.set("Unit", "StartLimitIntervalSec", "infinity");
        w.u.set("Unit", "StartLimitBurst", (u64::from(n) + 1).to_string());
    }
    // Pulling the image may take longer than systemd's 90 seconds.
    if !completes {
        w.u.set("Service", "TimeoutStartSec", "900");
    }
    if let Some(d) = c.stop_grace_period
        && d.as_secs() > 60
    {
        w.u.set("Service", "TimeoutStopSec", (d.as_secs() + 30).to_string());
    }
    let target = match options.scope {
        Scope::User => "default.target",
        Scope::System => "multi-user.target",
    };
    w.u.set("Install", "WantedBy", target);
}

/// The first container of a service of the stack.
fn first_of<'a>(spec: &'a StackSpec, service: &str) -> Option<&'a ContainerSpec> {
    spec.services
        .iter()
        .filter(|s| s.service == service)
        .min_by_key(|s| s.number)
}

/// The `.build` unit of a service with `build:` (one for all its replicas):
/// the image Magos would build through the API, tagged with the same name
/// and labelled with the same inputs digest.
pub(super) fn build_unit(
    spec: &StackSpec,
    c: &ContainerSpec,
    names: &Names,
    errors: &mut Errors<'_>,
) -> Option<UnitFile> {
    let b = c.build.as_ref()?;
    let before = errors.list.len();
    let mut w = Writer {
        u: Unit::default(),
        c,
        errors,
    };
    header(&mut w.u, spec);
    w.u.set(
        "Unit",
        "Description",
        unit::percent(&format!(
            "Image of service {} of the stack {}",
            c.service, spec.project
        )),
    );
    const B: &str = "Build";
    let raw_b = |w: &mut Writer<'_, '_, '_>, key: &str, value: &str| {
        match raw(value) {
        Some(v) => w.u.set(B, key, v),
        None => w.errors.at(
            &c.service,
            "build",
            format!(
                "`{}` cannot be written as Quadlet's `{key}=` (a line break, a control character, a trailing backslash or white space at either end)",
                value.escape_debug()
            ),
        ),
    }
    };
    raw_b(&mut w, "ImageTag", &c.image.qualified);
    for t in &b.tags {
        raw_b(&mut w, "ImageTag", t);
    }
    raw_b(&mut w, "SetWorkingDirectory", &b.context);
    if let Some(f) = &b.dockerfile {
        let file = if f.starts_with('/') {
            f.clone()
        } else {
            format!("{}/{f}", b.context.trim_end_matches('/'))
        };
        raw_b(&mut w, "File", &file);
    }
    if let Some(t) = &b.target {
        raw_b(&mut w, "Target", t);
    }
    if let Some(n) = &b.network {
        raw_b(&mut w, "Network", n);
    }
    if b.pull {
        w.u.set(B, "Pull", "always");
    }
    let mut labels = b.labels.clone();
    labels.insert(
        crate::core::build::LABEL_BUILD_DIGEST.to_owned(),
        b.digest.clone(),
    );
    for (k, v) in &labels {
        w.u.set(B, "Label", word(&format!("{k}={v}")));
    }
    for (k, v) in &b.args {
        w.u.set(
            B,
            "PodmanArgs",
            words(&["--build-arg".to_owned(), format!("{k}={v}")]),
        );
    }
    for h in &b.extra_hosts {
        w.u.set(B, "PodmanArgs", words(&["--add-host", h.as_str()]));
    }
    if b.no_cache {
        w.u.set(B, "PodmanArgs", "--no-cache");
    }
    // A build may take longer than systemd's 90 seconds.
    w.u.set("Service", "TimeoutStartSec", "3600");
    if w.errors.list.len() > before {
        return None;
    }
    Some(UnitFile {
        name: names.builds[&c.service].clone(),
        contents: w.u.render(),
    })
}
