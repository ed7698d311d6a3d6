//! The run-time keys of a service ([`RunKeys`]) into its [`RunSpec`]: sizes and
//! CPU counts read as Podman reads them (`512m`, `1.5G` in binary units; `0.5`
//! cores), namespaces, security options, limits, logging, `links`.

use std::collections::{BTreeMap, BTreeSet};

use super::super::compose::run::{Deploy, Ulimit};
use super::super::compose::{KeyValues, Scalar, Service};
use super::super::spec::{
    ContainerSpec, Dependency, DependencyCondition, LogSpec, PullPolicy, RestartPolicy,
    SharedNamespace, UlimitSpec,
};
use super::{Ctx, key_values, one_or_many, resolve};

/// The resource names `ulimits:` may use (Podman's, from go-units).
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Fills `spec.run` (and the restart policy, devices and dependencies that
/// `deploy` and `links` imply) from the service's run-time keys.
pub(super) fn apply(
    cx: &mut Ctx<'_>,
    name: &str,
    s: &Service,
    names: &BTreeSet<&str>,
    spec: &mut ContainerSpec,
) {
    let k = &s.run;
    let e = |cx: &mut Ctx<'_>, msg: String| cx.err(name, msg);

    for p in &k.expose {
        match expose(&p.as_text()) {
            Ok(ports) => {
                for (port, proto) in ports {
                    let entry = spec.run.expose.entry(port).or_default();
                    if !entry.split(',').any(|p| p == proto) {
                        if !entry.is_empty() {
                            entry.push(',');
                        }
                        entry.push_str(&proto);
                    }
                }
            }
            Err(m) => e(cx, m),
        }
    }

    // Memory and CPU: `deploy.resources` wins over the older service keys.
    let limits = k
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    let reservations = k
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.reservations.clone())
        .unwrap_or_default();
    let size = |cx: &mut Ctx<'_>, key: &str, v: Option<&Scalar>| {
        v.and_then(|v| match bytes(&v.as_text()) {
            Ok(b) => Some(b),
            Err(m) => {
                cx.err(name, format!("{key}: {m}"));
                None
            }
        })
    };
    spec.run.memory = match limits.memory.as_ref() {
        Some(v) => size(cx, "deploy.resources.limits.memory", Some(v)),
        None => size(cx, "mem_limit", k.mem_limit.as_ref()),
    };
    spec.run.memory_reservation = match reservations.memory.as_ref() {
        Some(v) => size(cx, "deploy.resources.reservations.memory", Some(v)),
        None => size(cx, "mem_reservation", k.mem_reservation.as_ref()),
    };
    spec.run.memory_swap = match k.memswap_limit.as_ref().map(Scalar::as_text) {
        None => None,
        Some(t) if t.trim() == "-1" => Some(-1),
        Some(t) => size(cx, "memswap_limit", Some(&Scalar::String(t))),
    };
    if let (Some(swap), Some(mem)) = (spec.run.memory_swap, spec.run.memory)
        && swap != -1
        && swap < mem
    {
        e(
            cx,
            format!(
                "memswap_limit ({swap} bytes) is below the memory limit ({mem} bytes); it counts memory and swap together"
            ),
        );
    }
    if spec.run.memory_swap.is_some() && spec.run.memory.is_none() {
        e(
            cx,
            "memswap_limit needs a memory limit (`mem_limit` or `deploy.resources.limits.memory`)"
                .to_owned(),
        );
    }
    let cpus = match limits.cpus.as_ref() {
        Some(v) => Some(("deploy.resources.limits.cpus", v)),
        None => k.cpus.as_ref().map(|v| ("cpus", v)),
    };
    if let Some((key, v)) = cpus {
        match cores(&v.as_text()) {
            Ok(0) => {}
            Ok(c) => spec.run.cpus_micro = Some(c),
            Err(m) => e(cx, format!("{key}: {m}")),
        }
    }
    if reservations.cpus.is_some() {
        cx.warn(
            name,
            "deploy.resources.reservations.cpus is not applied: Podman has no CPU reservation (use `cpu_shares` for a relative weight)".to_owned(),
        );
    }
    if let Some(v) = &k.cpu_shares {
        match v.as_text().trim().parse::<u64>() {
            Ok(0) => {}
            Ok(n) => spec.run.cpu_shares = Some(n),
            Err(_) => e(
                cx,
                format!("cpu_shares `{}` is not a whole number", v.as_text()),
            ),
        }
    }
    if let Some(v) = &k.cpuset {
        let t = v.as_text();
        if t.is_empty()
            || !t
                .chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
        {
            e(
                cx,
                format!("cpuset `{t}` is not a list of CPUs like `0-3` or `0,2`"),
            );
        } else {
            spec.run.cpuset = Some(t);
        }
    }
    let pids = match limits.pids.as_ref() {
        Some(v) => Some(("deploy.resources.limits.pids", v)),
        None => k.pids_limit.as_ref().map(|v| ("pids_limit", v)),
    };
    if let Some((key, v)) = pids {
        match v.as_text().trim().parse::<i64>() {
            Ok(n) if n >= -1 => spec.run.pids_limit = Some(n),
            _ => e(
                cx,
                format!(
                    "{key} `{}` is not a number of processes (or -1)",
                    v.as_text()
                ),
            ),
        }
    }
    spec.run.shm_size = size(cx, "shm_size", k.shm_size.as_ref());
    for d in &reservations.devices {
        match gpu_devices(d) {
            Ok(devs) => {
                for dev in devs {
                    if !spec.devices.contains(&dev) {
                        spec.devices.push(dev);
                    }
                }
                // As podman-compose does: a CDI device is not readable under an
                // SELinux container label.
                let opt = "label=disable".to_owned();
                if !spec.run.security_opt.contains(&opt) {
                    spec.run.security_opt.push(opt);
                }
            }
            Err(m) => e(cx, m),
        }
    }
    if let Some(d) = &k.deploy {
        restart_policy(cx, name, s, d, spec);
    }

    let flag = |cx: &mut Ctx<'_>, key: &str, v: Option<&Scalar>| match v {
        None => None,
        Some(Scalar::Bool(b)) => Some(*b),
        Some(other) => match other.as_text().trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" | "" => Some(false),
            t => {
                cx.err(name, format!("{key} `{t}` is not true or false"));
                None
            }
        },
    };
    spec.run.privileged = flag(cx, "privileged", k.privileged.as_ref()).unwrap_or(false);
    spec.run.init = flag(cx, "init", k.init.as_ref());
    spec.run.tty = flag(cx, "tty", k.tty.as_ref()).unwrap_or(false);
    spec.run.stdin_open = flag(cx, "stdin_open", k.stdin_open.as_ref()).unwrap_or(false);
    if spec.run.privileged && (!spec.cap_add.is_empty() || !spec.cap_drop.is_empty()) {
        cx.warn(
            name,
            "`privileged` grants every capability; `cap_add`/`cap_drop` are passed on as written"
                .to_owned(),
        );
    }

    for (key, value) in key_values(k.sysctls.as_ref()) {
        if key.is_empty() || value.is_empty() {
            e(cx, format!("sysctls `{key}` has no value (`name=value`)"));
        } else {
            spec.run.sysctls.insert(key, value);
        }
    }
    for entry in k.ulimits.entries() {
        let (res, u) = match entry {
            Ok(entry) => entry,
            Err(why) => {
                e(cx, why);
                continue;
            }
        };
        let (res, u) = (&res, &u);
        if !ULIMITS.contains(&res.as_str()) {
            e(
                cx,
                format!(
                    "ulimits `{res}` is not a resource limit ({})",
                    ULIMITS.join(", ")
                ),
            );
            continue;
        }
        let num = |v: &Scalar| v.as_text().trim().parse::<i64>().ok().filter(|n| *n >= -1);
        let (soft, hard) = match u {
            Ulimit::Single(v) => (num(v), num(v)),
            Ulimit::Pair { soft, hard } => (num(soft), num(hard)),
        };
        match (soft, hard) {
            (Some(soft), Some(hard)) if hard == -1 || (soft != -1 && soft <= hard) => {
                spec.run
                    .ulimits
                    .insert(res.clone(), UlimitSpec { soft, hard });
            }
            (Some(_), Some(_)) => e(
                cx,
                format!("ulimits `{res}`: the soft limit is above the hard one"),
            ),
            _ => e(
                cx,
                format!("ulimits `{res}` is not a number (or -1), nor `{{soft: …, hard: …}}`"),
            ),
        }
    }
    for o in &k.security_opt {
        match security_opt(o, cx.input.dir) {
            Ok(o) => {
                if !spec.run.security_opt.contains(&o) {
                    spec.run.security_opt.push(o);
                }
            }
            Err(m) => e(cx, m),
        }
    }
    spec.run.group_add = k.group_add.iter().map(Scalar::as_text).collect();

    let names_ok = |cx: &mut Ctx<'_>, key: &str, target: &str| {
        if !names.contains(target) {
            cx.err(
                name,
                format!("{key} refers to service `{target}`, which is not in the stack"),
            );
        }
    };
    if let Some(p) = &k.pid {
        let p = p.trim();
        spec.run.pid = match p {
            "host" => Some(SharedNamespace::Host),
            "private" | "" => Some(SharedNamespace::Mode("private".to_owned())),
            _ if p.starts_with("service:") => {
                names_ok(cx, "pid", &p[8..]);
                Some(SharedNamespace::Service(p[8..].to_owned()))
            }
            _ if p.starts_with("container:") => {
                Some(SharedNamespace::Container(p[10..].to_owned()))
            }
            _ => {
                e(
                    cx,
                    format!("pid `{p}` is not `host`, `service:<name>` or `container:<name>`"),
                );
                None
            }
        };
    }
    if let Some(i) = &k.ipc {
        let i = i.trim();
        spec.run.ipc = match i {
            "host" => Some(SharedNamespace::Host),
            "private" | "shareable" | "none" => Some(SharedNamespace::Mode(i.to_owned())),
            _ if i.starts_with("service:") => {
                names_ok(cx, "ipc", &i[8..]);
                Some(SharedNamespace::Service(i[8..].to_owned()))
            }
            _ if i.starts_with("container:") => {
                Some(SharedNamespace::Container(i[10..].to_owned()))
            }
            _ => {
                e(
                    cx,
                    format!(
                        "ipc `{i}` is not `host`, `private`, `shareable`, `none`, `service:<name>` or `container:<name>`"
                    ),
                );
                None
            }
        };
    }
    if let Some(u) = &k.userns_mode {
        let u = u.trim();
        let mode = u.split(':').next().unwrap_or_default();
        if matches!(
            mode,
            "host" | "private" | "keep-id" | "auto" | "nomap" | "ns" | "container"
        ) {
            spec.run.userns = Some(u.to_owned());
        } else {
            e(
                cx,
                format!(
                    "userns_mode `{u}` is not one Podman knows (`host`, `keep-id`, `auto`, `nomap`, `ns:<path>`, `container:<name>`)"
                ),
            );
        }
    }
    if let Some(v) = &k.oom_score_adj {
        match v.as_text().trim().parse::<i32>() {
            Ok(n) if (-1000..=1000).contains(&n) => spec.run.oom_score_adj = Some(n),
            _ => e(
                cx,
                format!(
                    "oom_score_adj `{}` is not a number from -1000 to 1000",
                    v.as_text()
                ),
            ),
        }
    }
    if let Some(l) = &k.logging {
        let mut log = LogSpec {
            driver: l.driver.clone().filter(|d| !d.is_empty()),
            path: None,
            max_size: None,
            options: BTreeMap::new(),
        };
        for (key, v) in &l.options {
            let v = v.as_ref().map(Scalar::as_text).unwrap_or_default();
            match key.to_ascii_lowercase().as_str() {
                "path" => log.path = Some(v),
                "max-size" => match size_in(&v, 1000.0) {
                    Ok(b) => log.max_size = Some(b),
                    Err(m) => e(cx, format!("logging option max-size: {m}")),
                },
                _ => {
                    log.options.insert(key.clone(), v);
                }
            }
        }
        spec.run.logging = Some(log);
    }
    if let Some(p) = &k.platform {
        let parts: Vec<&str> = p.trim().split('/').collect();
        if (2..=3).contains(&parts.len()) && parts.iter().all(|x| !x.is_empty()) {
            spec.run.platform = Some(p.trim().to_owned());
        } else {
            e(cx, format!("platform `{p}` is not `os/arch[/variant]`"));
        }
    }
    if let Some(p) = &k.pull_policy {
        spec.run.pull_policy = match p.trim() {
            "always" => Some(PullPolicy::Always),
            "never" => Some(PullPolicy::Never),
            "missing" | "if_not_present" => None,
            "build" => {
                if !s.other.contains_key("build") {
                    e(
                        cx,
                        "pull_policy `build` but the service has no `build:`".to_owned(),
                    );
                }
                None
            }
            other if other == "daily" || other == "weekly" || other.starts_with("every_") => {
                cx.warn(
                    name,
                    format!("pull_policy `{other}` is applied as `missing`: Magos follows the image's tag on its own update schedule (policy annotations)"),
                );
                None
            }
            other => {
                e(
                    cx,
                    format!(
                        "pull_policy `{other}` is not always, never, missing, if_not_present or build"
                    ),
                );
                None
            }
        };
    }
    spec.run.dns_search = one_or_many(k.dns_search.as_ref());
    spec.run.dns_opt = k.dns_opt.clone();
    if let Some(d) = &k.domainname {
        cx.warn(
            name,
            format!("domainname `{d}` is not applied: Podman has no domain name setting (give `hostname` a full name instead)"),
        );
    }
    spec.run.annotations = match &k.annotations {
        Some(KeyValues::List(_)) | Some(KeyValues::Map(_)) => key_values(k.annotations.as_ref()),
        None => BTreeMap::new(),
    };
    for r in &k.device_cgroup_rules {
        match device_cgroup_rule(r) {
            Ok(()) => spec.run.device_cgroup_rules.push(r.trim().to_owned()),
            Err(m) => e(cx, m),
        }
    }
    // Sharing another service's PID or IPC namespace needs its container
    // first: a dependency, as `network_mode: service:…` is.
    let shared: Vec<String> = [&spec.run.pid, &spec.run.ipc]
        .into_iter()
        .filter_map(|n| match n {
            Some(SharedNamespace::Service(t)) if names.contains(t.as_str()) => Some(t.clone()),
            _ => None,
        })
        .collect();
    for target in shared {
        if !spec.depends_on.iter().any(|d| d.service == target) {
            spec.depends_on.push(Dependency {
                service: target,
                condition: DependencyCondition::ServiceStarted,
                restart: false,
            });
        }
    }
    for l in &k.links {
        let target = l.split(':').next().unwrap_or_default().trim();
        if !names.contains(target) {
            e(
                cx,
                format!("links `{l}`: service `{target}` is not in the stack"),
            );
            continue;
        }
        if !spec.depends_on.iter().any(|d| d.service == target) {
            spec.depends_on.push(Dependency {
                service: target.to_owned(),
                condition: DependencyCondition::ServiceStarted,
                restart: false,
            });
        }
    }
}

/// `links: [db:database]` makes `database` a name of `db` on its networks (as
/// podman-compose does): the aliases each linked service gets.
pub(super) fn link_aliases(loaded: &super::Loaded) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ls in &loaded.services {
        let Some(s) = &ls.service else { continue };
        for l in &s.run.links {
            if let Some((target, alias)) = l.split_once(':') {
                let (target, alias) = (target.trim(), alias.trim());
                let list = out.entry(target.to_owned()).or_default();
                if !alias.is_empty() && !list.iter().any(|a| a == alias) {
                    list.push(alias.to_owned());
                }
            }
        }
    }
    out
}

fn restart_policy(cx: &mut Ctx<'_>, name: &str, s: &Service, d: &Deploy, spec: &mut ContainerSpec) {
    let Some(rp) = &d.restart_policy else { return };
    if s.restart.is_some() {
        cx.warn(
            name,
            "both `restart` and `deploy.restart_policy` are set; `restart` is applied".to_owned(),
        );
        return;
    }
    spec.restart = match rp.condition.as_deref().map(str::trim) {
        None | Some("any") => Some(RestartPolicy::Always),
        Some("on-failure") => Some(RestartPolicy::OnFailure),
        Some("none") => Some(RestartPolicy::No),
        Some(c) => {
            cx.err(
                name,
                format!("deploy.restart_policy.condition `{c}` is not none, on-failure or any"),
            );
            None
        }
    };
    if let Some(m) = &rp.max_attempts {
        match m.as_text().trim().parse::<u32>() {
            Ok(n) if spec.restart == Some(RestartPolicy::OnFailure) => {
                spec.run.restart_tries = Some(n);
            }
            Ok(_) => cx.warn(
                name,
                "deploy.restart_policy.max_attempts is applied only with `condition: on-failure` (Podman retries only that policy)".to_owned(),
            ),
            Err(_) => cx.err(
                name,
                format!("deploy.restart_policy.max_attempts `{}` is not a whole number", m.as_text()),
            ),
        }
    }
    for (key, v) in [("delay", &rp.delay), ("window", &rp.window)] {
        if v.is_some() {
            cx.warn(
                name,
                format!("deploy.restart_policy.{key} is not applied: Podman restarts at once, with no delay or window"),
            );
        }
    }
}

/// `expose:` entries: `3000`, `3000/udp`, `8000-8010[/proto]`.
pub fn expose(text: &str) -> Result<Vec<(u16, String)>, String> {
    let (ports, proto) = match text.trim().split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (text.trim(), "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("expose `{text}`: unknown protocol `{proto}`"));
    }
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("expose `{text}`: `{p}` is not a port number"))
    };
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    if last < first {
        return Err(format!("expose `{text}`: the range is reversed"));
    }
    Ok((first..=last).map(|p| (p, proto.clone())).collect())
}

/// A size as Podman reads it (go-units `RAMInBytes`): a number, then
/// optionally `b`, `k`, `m`, `g`, `t` or `p` (powers of 1024), with an optional
/// `i` and `b` (`512m`, `1.5G`, `128mb`, `2GiB`, `1048576`).
pub fn bytes(text: &str) -> Result<i64, String> {
    size_in(text, 1024.0)
}

/// A size with units that are powers of `base` (1000 for a log's `max-size`).
fn size_in(text: &str, base: f64) -> Result<i64, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim_start();
    let value: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && !num.is_empty())
        .ok_or_else(|| format!("`{text}` is not a size like `512m` or `1.5g`"))?;
    let mut chars = unit.chars();
    let mult: f64 = match chars.next() {
        None | Some('b') if unit.len() <= 1 => 1.0,
        Some('k') => base,
        Some('m') => base.powi(2),
        Some('g') => base.powi(3),
        Some('t') => base.powi(4),
        Some('p') => base.powi(5),
        _ => return Err(format!("`{text}` has an unknown unit (b, k, m, g, t, p)")),
    };
    let rest: String = chars.collect();
    if unit.len() > 1 && !matches!(rest.as_str(), "" | "b" | "i" | "ib") {
        return Err(format!("`{text}` has an unknown unit (b, k, m, g, t, p)"));
    }
    let b = value * mult;
    if b > i64::MAX as f64 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(b as i64)
}

/// Cores (`0.5`, `2`) in millionths.
pub fn cores(text: &str) -> Result<i64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0 && *v < 1e9)
        .ok_or_else(|| format!("`{text}` is not a number of cores like `0.5`"))?;
    Ok((v * 1e6).round() as i64)
}

/// A `reservations.devices` entry as CDI GPU devices: `nvidia.com/gpu=all`,
/// or one per `device_ids` entry, or the first `count`.
fn gpu_devices(d: &super::super::compose::run::DeviceRequest) -> Result<Vec<String>, String> {
    if !d.capabilities.iter().any(|c| c == "gpu") {
        return Err(format!(
            "deploy.resources.reservations.devices: capabilities {:?} are not applied; only `[gpu]` (NVIDIA GPUs through CDI)",
            d.capabilities
        ));
    }
    if let Some(driver) = d.driver.as_deref()
        && driver != "nvidia"
    {
        return Err(format!(
            "deploy.resources.reservations.devices: driver `{driver}` is not applied; only `nvidia` (through CDI)"
        ));
    }
    if !d.device_ids.is_empty() {
        if d.count.is_some() {
            return Err(
                "deploy.resources.reservations.devices: `count` and `device_ids` exclude each other"
                    .to_owned(),
            );
        }
        return Ok(d
            .device_ids
            .iter()
            .map(|id| format!("nvidia.com/gpu={id}"))
            .collect());
    }
    match d.count.as_ref().map(Scalar::as_text) {
        None => Ok(vec!["nvidia.com/gpu=all".to_owned()]),
        Some(c) if c.trim() == "all" || c.trim() == "-1" => {
            Ok(vec!["nvidia.com/gpu=all".to_owned()])
        }
        Some(c) => match c.trim().parse::<u32>() {
            Ok(n) => Ok((0..n).map(|i| format!("nvidia.com/gpu={i}")).collect()),
            Err(_) => Err(format!(
                "deploy.resources.reservations.devices: count `{c}` is not a number or `all`"
            )),
        },
    }
}

/// A `security_opt:` entry, checked and written `key=value` (a relative
/// seccomp profile made absolute against the stack's folder).
pub fn security_opt(o: &str, dir: &str) -> Result<String, String> {
    let o = o.trim();
    let (key, value) = match o.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => match o.split_once(':') {
            Some((k, v)) => (k, Some(v)),
            None => (o, None),
        },
    };
    match (key, value) {
        ("no-new-privileges", None) => Ok("no-new-privileges=true".to_owned()),
        ("no-new-privileges", Some(v)) => match v {
            "true" | "false" => Ok(format!("no-new-privileges={v}")),
            _ => Err(format!(
                "security_opt `{o}`: no-new-privileges is true or false"
            )),
        },
        ("seccomp", Some(v)) if v == "unconfined" || v.starts_with('/') => {
            Ok(format!("seccomp={v}"))
        }
        ("seccomp", Some(v)) if !v.is_empty() => Ok(format!("seccomp={}", resolve(dir, v))),
        ("label", Some(v))
            if v == "disable"
                || v == "nested"
                || ["user:", "role:", "type:", "level:", "filetype:"]
                    .iter()
                    .any(|p| v.starts_with(p)) =>
        {
            Ok(format!("label={v}"))
        }
        ("apparmor" | "mask" | "unmask", Some(v)) if !v.is_empty() => Ok(format!("{key}={v}")),
        ("systempaths", Some("unconfined")) => Ok("systempaths=unconfined".to_owned()),
        ("proc-opts", Some(v)) if !v.is_empty() => Ok(format!("proc-opts={v}")),
        _ => Err(format!(
            "security_opt `{o}` is not one Podman applies (seccomp=…, label=…, apparmor=…, no-new-privileges, mask=…, unmask=…, systempaths=unconfined, proc-opts=…)"
        )),
    }
}

/// `type major:minor access`: `c 1:3 mr`, `a *:* rwm`.
pub fn device_cgroup_rule(r: &str) -> Result<(), String> {
    let parts: Vec<&str> = r.split_whitespace().collect();
    let bad = || format!("device_cgroup_rules `{r}` is not `<a|b|c> <major|*>:<minor|*> <r|w|m…>`");
    let [kind, numbers, access] = parts.as_slice() else {
        return Err(bad());
    };
    let num_ok = |n: &str| n == "*" || n.parse::<u32>().is_ok();
    let numbers_ok = numbers
        .split_once(':')
        .is_some_and(|(a, b)| num_ok(a) && num_ok(b));
    if !matches!(*kind, "a" | "b" | "c")
        || !numbers_ok
        || access.is_empty()
        || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
