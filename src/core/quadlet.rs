//! A converted stack as Quadlet units: one `.container` file per container,
//! one `.network` per network and one `.volume` per named volume the stack
//! creates, one `.build` per service with `build:`, which Podman's systemd
//! generator turns into services.
//!
//! The units express the same containers the libpod route creates: same
//! names (`ContainerName=` as podman-compose names them), same compose and
//! Magos labels (config hash included), so `drift`, `doctor` and rollback see
//! no difference. Every setting is written in Quadlet's own key when it has
//! one, in `PodmanArgs=` when only the `podman run` flag exists; a setting
//! neither can carry is an error located at its compose key, never dropped.
//!
//! No `.pod`: the libpod route creates no pod (each container stands alone on
//! the project's networks), and a pod would change the containers' namespaces
//! and what `podman inspect` reports.
//!
//! Unit names: `<project>-<service>.container` (`-<n>` added for replicas
//! after the first), `<project>-<key>.network` and `<project>-<key>.volume`,
//! where `<key>` is the object's Podman name without the `<project>_` prefix,
//! and `<project>-<service>.build`. Systemd runs them as
//! `<project>-<service>.service`, `<project>-<key>-network.service`,
//! `<project>-<key>-volume.service` and `<project>-<service>-build.service`.

mod container;
mod unit;

use std::collections::{BTreeMap, BTreeSet};

use crate::core::compose::Loaded;
use crate::core::diag::{Diagnostic, Pos};
use crate::core::spec::{ContainerSpec, NetworkSpec, StackSpec, VolumeSpec, stack_labels};

use unit::{Unit, raw};

/// One unit file: its name (`web-app.container`) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    /// The file name, with its Quadlet suffix.
    pub name: String,
    /// The file's text.
    pub contents: String,
}

impl UnitFile {
    /// The systemd service Podman's generator makes of it
    /// (`web-app.container` → `web-app.service`, `web-default.network` →
    /// `web-default-network.service`).
    pub fn service(&self) -> String {
        service_of(&self.name)
    }
}

/// The systemd service of a unit file name.
pub fn service_of(unit: &str) -> String {
    match unit.rsplit_once('.') {
        Some((base, "container")) => format!("{base}.service"),
        Some((base, kind)) => format!("{base}-{kind}.service"),
        None => format!("{unit}.service"),
    }
}

/// Which systemd manager runs the units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// A user's manager (`systemctl --user`): `WantedBy=default.target`.
    #[default]
    User,
    /// The system manager (root): `WantedBy=multi-user.target`.
    System,
}

/// How the units are made.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Which manager runs them.
    pub scope: Scope,
    /// Per container name, the file (absolute) holding its decrypted
    /// variables ([`secret_variables`]), given to the unit as
    /// `EnvironmentFile=`. A container with such variables and no file here
    /// is an error: a secret value is never written into a unit.
    pub secret_env_files: BTreeMap<String, String>,
}

/// Where a stack's keys are written, for located errors, and the keys of the
/// stack Magos does not apply (which no unit can carry either). Made from the
/// loaded compose stack with [`Sites::of`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sites {
    services: BTreeMap<String, (String, Pos)>,
    keys: BTreeMap<String, (String, Pos)>,
    refused: Vec<Diagnostic>,
    first_file: String,
}

impl Sites {
    /// The sites of a loaded stack.
    pub fn of(loaded: &Loaded) -> Self {
        let at = |path: &str| loaded.key_positions.get(path).cloned();
        let first_file = loaded
            .positions
            .values()
            .next()
            .map(|(f, _)| f.clone())
            .unwrap_or_default();
        let start = || (first_file.clone(), Pos::START);
        let mut refused = Vec::new();
        let not_applied = "Magos does not apply it, so no unit can carry it (the libpod route hands such a stack to the compose CLI)";
        for key in &loaded.unsupported {
            let (file, pos) = at(key).unwrap_or_else(start);
            refused.push(Diagnostic::error(
                &file,
                pos,
                format!("top-level `{key}`: {not_applied}"),
            ));
        }
        for (path, (file, pos)) in &loaded.key_positions {
            for kind in ["networks.", "volumes.", "secrets.", "configs."] {
                if let Some(rest) = path.strip_prefix(kind)
                    && let Some((name, key)) = rest.split_once('.')
                {
                    let kind = kind.trim_end_matches("s.");
                    refused.push(Diagnostic::error(
                        file,
                        *pos,
                        format!("{kind} `{name}`: `{key}`: {not_applied}"),
                    ));
                }
            }
        }
        for ls in &loaded.services {
            let Some(service) = &ls.service else { continue };
            let name = &ls.name;
            let service_at = || {
                loaded
                    .positions
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| (first_file.clone(), Pos::START))
            };
            let mut keys = service.unsupported();
            if service.other.contains_key("x-podman.rootfs") {
                keys.push("x-podman.rootfs".to_owned());
            }
            for key in keys {
                let top = key.split('.').next().unwrap_or(&key);
                let (file, pos) = at(&format!("services.{name}.{key}"))
                    .or_else(|| at(&format!("services.{name}.{top}")))
                    .unwrap_or_else(service_at);
                refused.push(Diagnostic::error(
                    &file,
                    pos,
                    format!("service `{name}`: `{key}`: {not_applied}"),
                ));
            }
        }
        Self {
            services: loaded.positions.clone(),
            keys: loaded.key_positions.clone(),
            refused,
            first_file,
        }
    }

    /// Where `services.<service>.<key>` is written, else the service, else
    /// the start of the compose file.
    fn at(&self, service: &str, key: &str) -> (String, Pos) {
        self.keys
            .get(&format!("services.{service}.{key}"))
            .or_else(|| self.services.get(service))
            .cloned()
            .unwrap_or_else(|| (self.first_file.clone(), Pos::START))
    }

    /// Where a top-level `networks.<key>` or `volumes.<key>` entry is written.
    fn top(&self, path: &str) -> (String, Pos) {
        self.keys
            .get(path)
            .cloned()
            .unwrap_or_else(|| (self.first_file.clone(), Pos::START))
    }
}

/// The errors of one stack's conversion, gathered.
struct Errors<'a> {
    sites: &'a Sites,
    list: Vec<Diagnostic>,
}

impl Errors<'_> {
    /// An error at a service's key.
    fn at(&mut self, service: &str, key: &str, message: impl std::fmt::Display) {
        let (file, pos) = self.sites.at(service, key);
        self.list.push(Diagnostic::error(
            &file,
            pos,
            format!("service `{service}`: `{key}`: {message}"),
        ));
    }

    /// An error at a top-level entry (`networks.front`).
    fn top(&mut self, path: &str, message: impl std::fmt::Display) {
        let (file, pos) = self.sites.top(path);
        self.list.push(Diagnostic::error(
            &file,
            pos,
            format!("`{path}`: {message}"),
        ));
    }
}

/// The unit files of a stack, sorted by name; or every reason it cannot be
/// expressed, each located at its compose key.
pub fn stack_units(
    spec: &StackSpec,
    sites: &Sites,
    options: &Options,
) -> Result<Vec<UnitFile>, Vec<Diagnostic>> {
    let mut errors = Errors {
        sites,
        list: sites.refused.clone(),
    };
    let names = Names::of(spec);
    let mut units = Vec::new();
    for net in spec.networks.iter().filter(|n| !n.external) {
        if let Some(u) = network_unit(spec, net, &names, &mut errors) {
            units.push(u);
        }
    }
    for vol in spec.volumes.iter().filter(|v| !v.external) {
        if let Some(u) = volume_unit(spec, vol, &names, &mut errors) {
            units.push(u);
        }
    }
    for c in spec.services.iter().filter(|c| c.number <= 1) {
        if let Some(u) = container::build_unit(spec, c, &names, &mut errors) {
            units.push(u);
        }
    }
    for c in &spec.services {
        if let Some(u) = container::unit(spec, c, &names, options, &mut errors) {
            units.push(u);
        }
    }
    let mut seen = BTreeSet::new();
    for u in &units {
        if !seen.insert(u.name.clone()) {
            errors.top(
                "services",
                format!(
                    "two objects of the stack would be the same unit `{}`; rename one",
                    u.name
                ),
            );
        }
    }
    if !errors.list.is_empty() {
        let mut list = errors.list;
        list.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        list.dedup();
        return Err(list);
    }
    units.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(units)
}

/// The unit names of a stack's objects.
pub(crate) struct Names {
    /// Container name → unit file name.
    containers: BTreeMap<String, String>,
    /// Network Podman name → unit file name (created networks only).
    networks: BTreeMap<String, String>,
    /// Volume Podman name → unit file name (created volumes only).
    volumes: BTreeMap<String, String>,
    /// Service with `build:` → its `.build` unit file name.
    builds: BTreeMap<String, String>,
}

impl Names {
    fn of(spec: &StackSpec) -> Self {
        Self {
            containers: spec
                .services
                .iter()
                .map(|c| (c.name.clone(), container_unit_name(spec, c)))
                .collect(),
            networks: spec
                .networks
                .iter()
                .filter(|n| !n.external)
                .map(|n| (n.name.clone(), object_unit_name(spec, &n.name, "network")))
                .collect(),
            volumes: spec
                .volumes
                .iter()
                .filter(|v| !v.external)
                .map(|v| (v.name.clone(), object_unit_name(spec, &v.name, "volume")))
                .collect(),
            builds: spec
                .services
                .iter()
                .filter(|c| c.build.is_some())
                .map(|c| {
                    let base = unit_safe(&format!("{}-{}", spec.project, c.service));
                    (c.service.clone(), format!("{base}.build"))
                })
                .collect(),
        }
    }
}

/// The `.container` file name of a stack's container:
/// `<project>-<service>.container`, `-<n>` added for replicas after the first.
pub fn container_unit_name(spec: &StackSpec, c: &ContainerSpec) -> String {
    let base = unit_safe(&format!("{}-{}", spec.project, c.service));
    if c.number > 1 {
        format!("{base}-{}.container", c.number)
    } else {
        format!("{base}.container")
    }
}

/// The file name of a created network or volume: `<project>-<key>.<kind>`.
fn object_unit_name(spec: &StackSpec, podman_name: &str, kind: &str) -> String {
    let key = podman_name
        .strip_prefix(&format!("{}_", spec.project))
        .unwrap_or(podman_name);
    format!("{}.{kind}", unit_safe(&format!("{}-{key}", spec.project)))
}

/// A unit name keeps only the characters systemd allows (`[A-Za-z0-9:_.-]`);
/// any other becomes `_`.
fn unit_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The comment every unit starts with.
fn header(u: &mut Unit, spec: &StackSpec) {
    u.comment(&format!(
        "Made by Magos from the stack `{}` ({}); edits are replaced on the next apply or export.",
        spec.project,
        spec.config_files.join(", ")
    ));
}

/// A network or volume unit being written: its header and description set,
/// and the values a unit cannot carry collected as errors at the object's
/// compose path (`networks.<key>`, `volumes.<key>`).
struct ObjectUnit {
    /// The unit's own section (`Network`, `Volume`).
    section: &'static str,
    path: String,
    unit: Unit,
    bad: Vec<String>,
}

impl ObjectUnit {
    fn new(spec: &StackSpec, section: &'static str, top: &str, name: &str) -> Self {
        let key = name
            .strip_prefix(&format!("{}_", spec.project))
            .unwrap_or(name);
        let mut unit = Unit::default();
        header(&mut unit, spec);
        unit.set(
            "Unit",
            "Description",
            unit::percent(&format!("{section} {name} of the stack {}", spec.project)),
        );
        Self {
            section,
            path: format!("{top}.{key}"),
            unit,
            bad: Vec::new(),
        }
    }

    /// `key=value` in the object's section, the value written as it is.
    fn set(&mut self, key: &str, value: impl AsRef<str>) {
        self.unit.set(self.section, key, value);
    }

    /// `key=value` where the value must fit a unit line unquoted; `what`
    /// names it in the error when it does not.
    fn put(&mut self, key: &str, value: &str, what: &str) {
        match raw(value) {
            Some(v) => self.unit.set(self.section, key, v),
            None => self.bad.push(format!(
                "the {what} `{}` cannot be written in a unit (a line break, a control character, a trailing backslash or white space at either end)",
                value.escape_debug()
            )),
        }
    }

    /// The unit named `name`, or `None` with each problem reported.
    fn finish(self, name: &str, errors: &mut Errors<'_>) -> Option<UnitFile> {
        if !self.bad.is_empty() {
            for b in self.bad {
                errors.top(&self.path, b);
            }
            return None;
        }
        Some(UnitFile {
            name: name.to_owned(),
            contents: self.unit.render(),
        })
    }
}

fn network_unit(
    spec: &StackSpec,
    net: &NetworkSpec,
    names: &Names,
    errors: &mut Errors<'_>,
) -> Option<UnitFile> {
    let mut o = ObjectUnit::new(spec, "Network", "networks", &net.name);
    o.put("NetworkName", &net.name, "name");
    if let Some(d) = &net.driver {
        o.put("Driver", d, "driver");
    }
    if net.internal {
        o.set("Internal", "true");
    }
    if net.ipv6 {
        o.set("IPv6", "true");
    }
    if let Some(d) = &net.ipam_driver {
        o.put("IPAMDriver", d, "IPAM driver");
    }
    for s in &net.subnets {
        o.put("Subnet", &s.subnet, "subnet");
    }
    for s in &net.subnets {
        if let Some(g) = &s.gateway {
            o.put("Gateway", g, "gateway");
        }
    }
    for s in &net.subnets {
        if let Some(r) = &s.ip_range {
            o.put("IPRange", r, "range");
        }
    }
    for (k, v) in &net.options {
        o.put("Options", &format!("{k}={v}"), "driver option");
    }
    if net.disable_dns {
        o.set("DisableDNS", "true");
    }
    for d in &net.dns {
        o.put("DNS", d, "DNS server");
    }
    let mut labels = net.labels.clone();
    labels.extend(stack_labels(&spec.project, &spec.instance));
    for (k, v) in &labels {
        o.set("Label", unit::word(&format!("{k}={v}")));
    }
    for r in &net.routes {
        o.set("PodmanArgs", unit::words(&["--route", r.as_str()]));
    }
    // Podman pairs `--gateway` and `--ip-range` with the subnets by position,
    // so a subnet without one may only come after every subnet with one.
    let gateways = net.subnets.iter().filter(|s| s.gateway.is_some()).count();
    let ranges = net.subnets.iter().filter(|s| s.ip_range.is_some()).count();
    if net
        .subnets
        .iter()
        .skip(gateways)
        .any(|s| s.gateway.is_some())
        || net
            .subnets
            .iter()
            .skip(ranges)
            .any(|s| s.ip_range.is_some())
    {
        o.bad.push(
            "a subnet with a `gateway` or `ip_range` after one without cannot be written in a unit (Podman pairs them by position); list the subnets that set them first"
                .to_owned(),
        );
    }
    o.finish(&names.networks[&net.name], errors)
}

fn volume_unit(
    spec: &StackSpec,
    vol: &VolumeSpec,
    names: &Names,
    errors: &mut Errors<'_>,
) -> Option<UnitFile> {
    let mut o = ObjectUnit::new(spec, "Volume", "volumes", &vol.name);
    o.put("VolumeName", &vol.name, "name");
    if let Some(d) = &vol.driver {
        o.put("Driver", d, "driver");
    }
    for (k, v) in &vol.options {
        match k.as_str() {
            "type" => o.put("Type", v, "type"),
            "o" => o.put("Options", v, "mount options"),
            "device" => o.put("Device", v, "device"),
            _ => o.set(
                "PodmanArgs",
                unit::words(&["--opt".to_owned(), format!("{k}={v}")]),
            ),
        }
    }
    let mut labels = vol.labels.clone();
    labels.extend(stack_labels(&spec.project, &spec.instance));
    for (k, v) in &labels {
        o.set("Label", unit::word(&format!("{k}={v}")));
    }
    o.finish(&names.volumes[&vol.name], errors)
}

/// The variables of a container whose values Magos decrypts at apply time
/// (from SOPS-encrypted `env_file:`s, and `environment:` values from an
/// encrypted `.env`): what the file in [`Options::secret_env_files`] must
/// hold. Empty when the container has none.
pub fn secret_variables(c: &ContainerSpec) -> Vec<String> {
    let mut vars: BTreeSet<String> = c.secret_environment.iter().cloned().collect();
    vars.extend(
        c.environment
            .iter()
            .filter(|(_, v)| crate::core::interpolate::is_sealed(v))
            .map(|(k, _)| k.clone()),
    );
    vars.into_iter().collect()
}

#[cfg(test)]
mod tests;
