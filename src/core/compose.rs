//! Compose files: the typed model of the keys Magos understands, and the loading
//! of a stack (compose file + optional override, `.env` interpolation) into
//! services with their image, image line, policy and diagnostics.
//!
//! The YAML is read with `serde_yaml_ng` for reading only; the image lines, their
//! annotations and their rewrites are text-level (see `rewrite`). Keys Magos does
//! not apply natively are not errors: they are gathered per service as
//! `unsupported`, as podlet does, so a report can list them together.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use super::annotation;
use super::diag::{Diagnostic, Pos};
use super::interpolate::{self, Vars};
use super::policy::Policy;
use super::reference::{Digest, ImageRef};
use super::rewrite::{self, ImageSite};

/// The service keys Magos applies itself; any other service key is reported as
/// unsupported (`x-` extensions excepted).
pub const SERVICE_KEYS: &[&str] = &[
    "image",
    "container_name",
    "hostname",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "labels",
    "ports",
    "volumes",
    "networks",
    "restart",
    "healthcheck",
    "depends_on",
    "user",
    "working_dir",
    "stop_signal",
    "stop_grace_period",
    "network_mode",
    "cap_add",
    "cap_drop",
    "devices",
    "extra_hosts",
    "dns",
    "read_only",
    "tmpfs",
    "secrets",
    "configs",
];

/// The top-level keys Magos understands (`version` is obsolete and ignored).
pub const TOP_KEYS: &[&str] = &[
    "name", "services", "networks", "volumes", "secrets", "configs", "version",
];

/// A string or a list of strings (`command`, `entrypoint`, healthcheck `test`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// One string, split by a shell.
    Shell(String),
    /// Already split.
    Exec(Vec<String>),
}

/// A scalar written as a value in `environment:` or `labels:` maps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// Text.
    String(String),
    /// A number.
    Number(serde_yaml_ng::Number),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    /// The value as compose passes it on.
    pub fn as_text(&self) -> String {
        match self {
            Scalar::String(s) => s.clone(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// `KEY: value` map or `KEY=value` list (`environment`, `labels`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum KeyValues {
    /// `- KEY=value`
    List(Vec<String>),
    /// `KEY: value` (a null value: taken from the environment).
    Map(BTreeMap<String, Option<Scalar>>),
}

/// One or several strings (`env_file`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// A port: short syntax (`"127.0.0.1:8080:80/tcp"`, `80`) or long syntax.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Port {
    /// `"8080:80"`.
    Short(Scalar),
    /// `{target: 80, published: 8080, host_ip: …, protocol: tcp}`.
    Long {
        /// The container port.
        target: u16,
        /// The host port or range.
        published: Option<Scalar>,
        /// The host address.
        host_ip: Option<String>,
        /// `tcp` or `udp`.
        protocol: Option<String>,
    },
}

/// A volume: short syntax (`data:/var/lib/x:ro`) or long syntax.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Volume {
    /// `source:target[:mode]`.
    Short(String),
    /// `{type: volume|bind|tmpfs, source, target, read_only}`.
    Long {
        /// `volume`, `bind` or `tmpfs`.
        #[serde(rename = "type")]
        kind: String,
        /// The volume name or host path.
        source: Option<String>,
        /// The path in the container.
        target: String,
        /// Mounted read-only.
        #[serde(default)]
        read_only: bool,
    },
}

/// `networks:` of a service: a list of names or a map with options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ServiceNetworks {
    /// `- front`
    List(Vec<String>),
    /// `front: {aliases: [...]}`
    Map(BTreeMap<String, Option<NetworkAttachment>>),
}

/// A service's attachment to a network.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkAttachment {
    /// Extra names on that network.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// `depends_on:` as a list or with conditions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DependsOn {
    /// `- db`
    List(Vec<String>),
    /// `db: {condition: service_healthy}`
    Map(BTreeMap<String, Dependency>),
}

/// One dependency with its condition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Dependency {
    /// `service_started` (default), `service_healthy`, `service_completed_successfully`.
    pub condition: Option<String>,
    /// `restart: true`: restart this service when the dependency is recreated.
    #[serde(default)]
    pub restart: bool,
}

/// `extra_hosts:` as `- host:ip` / `- host=ip` or `host: ip` (or a list of ips).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ExtraHosts {
    /// `- host:ip`
    List(Vec<String>),
    /// `host: ip` or `host: [ip, ip]`
    Map(BTreeMap<String, OneOrManyScalar>),
}

/// One scalar or a list of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrManyScalar {
    /// One.
    One(Scalar),
    /// Several.
    Many(Vec<Scalar>),
}

/// A service's use of a top-level secret or config: its name, or the long form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FileRef {
    /// `- name`
    Short(String),
    /// `{source: name, target: path}`
    Long {
        /// The top-level secret or config.
        source: String,
        /// Where it appears in the container.
        target: Option<String>,
    },
}

/// A top-level `secrets:` or `configs:` entry. Only `file:` is applied.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct TopFile {
    /// The file, relative to the stack's folder.
    pub file: Option<String>,
    /// Every other key (`environment`, `external`, `content`, …).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A top-level `networks:` or `volumes:` entry.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct TopObject {
    /// Created elsewhere: never created nor removed here.
    pub external: bool,
    /// The name Podman knows it by (instead of `<project>_<key>`).
    pub name: Option<String>,
    /// The driver.
    pub driver: Option<String>,
    /// Networks only: no outside access.
    pub internal: bool,
    /// Labels.
    pub labels: Option<KeyValues>,
    /// Every other key (`driver_opts`, `ipam`, …).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `healthcheck:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Healthcheck {
    /// The check (`["CMD", …]`, `["CMD-SHELL", "…"]` or a string).
    pub test: Option<Command>,
    /// Between checks (`30s`).
    pub interval: Option<String>,
    /// For one check.
    pub timeout: Option<String>,
    /// Grace period after start.
    pub start_period: Option<String>,
    /// Failures before unhealthy.
    pub retries: Option<u32>,
    /// Turns an image's check off.
    #[serde(default)]
    pub disable: bool,
}

/// A service as Magos reads it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Service {
    /// The image reference (after interpolation).
    pub image: Option<String>,
    /// The container name.
    pub container_name: Option<String>,
    /// The container host name.
    pub hostname: Option<String>,
    /// Overrides the image's command.
    pub command: Option<Command>,
    /// Overrides the image's entrypoint.
    pub entrypoint: Option<Command>,
    /// Environment variables.
    pub environment: Option<KeyValues>,
    /// Files of environment variables.
    pub env_file: Option<OneOrMany>,
    /// Container labels.
    pub labels: Option<KeyValues>,
    /// Published ports.
    pub ports: Vec<Port>,
    /// Mounts.
    pub volumes: Vec<Volume>,
    /// Networks.
    pub networks: Option<ServiceNetworks>,
    /// `no`, `always`, `on-failure[:n]`, `unless-stopped`.
    pub restart: Option<String>,
    /// Health check.
    pub healthcheck: Option<Healthcheck>,
    /// Start order.
    pub depends_on: Option<DependsOn>,
    /// The user to run as.
    pub user: Option<String>,
    /// The working directory.
    pub working_dir: Option<String>,
    /// The stop signal.
    pub stop_signal: Option<String>,
    /// How long to wait after the stop signal (`10s`).
    pub stop_grace_period: Option<String>,
    /// `bridge`, `host`, `none`, `pasta[:opts]`, `service:x`, `container:x`.
    pub network_mode: Option<String>,
    /// Capabilities added.
    pub cap_add: Vec<String>,
    /// Capabilities dropped.
    pub cap_drop: Vec<String>,
    /// Devices, `host[:container[:perms]]`.
    pub devices: Vec<String>,
    /// Extra `/etc/hosts` lines.
    pub extra_hosts: Option<ExtraHosts>,
    /// DNS servers.
    pub dns: Option<OneOrMany>,
    /// A read-only root filesystem.
    pub read_only: bool,
    /// tmpfs mounts (`/run` or `/run:size=64m`).
    pub tmpfs: Option<OneOrMany>,
    /// Top-level secrets mounted in `/run/secrets`.
    pub secrets: Vec<FileRef>,
    /// Top-level configs mounted in the container.
    pub configs: Vec<FileRef>,
    /// Every other key, kept so it can be reported as unsupported.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl Service {
    /// The keys Magos does not apply itself, sorted (`x-` extensions excluded).
    pub fn unsupported(&self) -> Vec<String> {
        self.other
            .keys()
            .filter(|k| !k.starts_with("x-"))
            .cloned()
            .collect()
    }
}

/// The text of a stack's files, as the caller read them.
#[derive(Debug, Clone)]
pub struct StackSource<'a> {
    /// The compose file: (path relative to the repository, text).
    pub compose: (&'a str, &'a str),
    /// The optional override file.
    pub override_file: Option<(&'a str, &'a str)>,
    /// The interpolation variables (the environment over the stack's `.env`).
    pub vars: &'a Vars,
}

/// A loaded stack.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// `name:` from the files, if any (after interpolation).
    pub name: Option<String>,
    /// Services in file order.
    pub services: Vec<LoadedService>,
    /// Top-level keys Magos does not apply.
    pub unsupported: Vec<String>,
    /// Top-level network names.
    pub networks: Vec<String>,
    /// Top-level volume names.
    pub volumes: Vec<String>,
    /// Top-level networks with their options, where they could be read.
    pub network_defs: BTreeMap<String, TopObject>,
    /// Top-level volumes with their options, where they could be read.
    pub volume_defs: BTreeMap<String, TopObject>,
    /// Top-level `secrets:`.
    pub secrets: BTreeMap<String, TopFile>,
    /// Top-level `configs:`.
    pub configs: BTreeMap<String, TopFile>,
    /// `x-magos: {apply: …}`: how the stack asks to be applied (`native`,
    /// `compose`), when it says.
    pub apply_mode: Option<String>,
    /// `x-magos: {observe: true}`: the stack is checked and reported, never
    /// changed (no pins written, nothing applied).
    pub observe: bool,
    /// The file and position of each service's key, by service name.
    pub positions: BTreeMap<String, (String, Pos)>,
    /// Everything wrong, located.
    pub diagnostics: Vec<Diagnostic>,
}

/// A service with its image facts.
#[derive(Debug, Clone)]
pub struct LoadedService {
    /// The service name.
    pub name: String,
    /// The typed service, `None` when it could not be read (see the diagnostics).
    pub service: Option<Service>,
    /// The image, when the service has one.
    pub image: Option<ServiceImage>,
}

/// Everything known about a service's image.
#[derive(Debug, Clone)]
pub struct ServiceImage {
    /// The value after interpolation.
    pub value: String,
    /// The parsed reference, when valid.
    pub reference: Option<ImageRef>,
    /// The file whose `image:` line sets it, and the line's site.
    pub site: Option<(String, ImageSite)>,
    /// The policy from the annotation, if any and valid.
    pub policy: Option<Policy>,
    /// Why the line cannot be rewritten (`None`: it can).
    pub not_pinnable: Option<String>,
}

/// A pin to write: which file, which service, the value now and the new one.
/// `rewrite::rewrite` applies it to the file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The file holding the image line, relative to the repository.
    pub file: String,
    /// The service.
    pub service: String,
    /// The value the line holds now.
    pub expected: String,
    /// `name:tag@sha256:…`, the name spelled as the user wrote it.
    pub new: String,
}

impl Pin {
    /// The edit for `rewrite::rewrite`.
    pub fn edit(&self) -> rewrite::Edit<'_> {
        rewrite::Edit {
            service: &self.service,
            expected: &self.expected,
            new: &self.new,
        }
    }
}

impl LoadedService {
    /// The pin that moves this service to `tag` at `digest`, or why it cannot be
    /// written.
    pub fn pin(&self, tag: &str, digest: &Digest) -> Result<Pin, String> {
        let image = self
            .image
            .as_ref()
            .ok_or_else(|| format!("service `{}` has no image", self.name))?;
        if let Some(why) = &image.not_pinnable {
            return Err(format!(
                "the image of service `{}` cannot be pinned: {why}",
                self.name
            ));
        }
        let (reference, (file, site)) = match (&image.reference, &image.site) {
            (Some(r), Some(s)) => (r, s),
            _ => {
                return Err(format!(
                    "the image of service `{}` is not a valid reference",
                    self.name
                ));
            }
        };
        super::reference::check_tag(tag).map_err(|e| format!("invalid tag `{tag}`: {e}"))?;
        Ok(Pin {
            file: file.clone(),
            service: self.name.clone(),
            expected: site.value.clone(),
            new: reference.pinned(tag, digest),
        })
    }
}

/// One parsed file.
struct FileDoc<'a> {
    path: &'a str,
    text: &'a str,
    raw: Value,
    scan: rewrite::Scan,
}

/// Loads a stack from its texts. Never fails: every problem is a diagnostic and
/// the services that can be read are still returned.
pub fn load(src: &StackSource<'_>) -> Loaded {
    let mut out = Loaded::default();
    let mut docs = Vec::new();
    for (path, text) in std::iter::once(src.compose).chain(src.override_file) {
        if let Some(doc) = read_file(path, text, &mut out.diagnostics) {
            docs.push(doc);
        }
    }
    // Interpolate each file, then merge the override over the compose file.
    let mut merged = Value::Mapping(Mapping::new());
    for doc in &docs {
        let mut v = doc.raw.clone();
        interpolate_value(&mut v, doc, src.vars, &mut out.diagnostics);
        merge(&mut merged, v, None);
    }
    let Value::Mapping(top) = merged else {
        return out;
    };
    for (k, v) in &top {
        let Some(key) = k.as_str() else { continue };
        match key {
            "name" => out.name = v.as_str().map(str::to_owned),
            "networks" => {
                out.networks = names(v);
                out.network_defs = top_objects(key, v, &docs, &mut out.diagnostics);
            }
            "volumes" => {
                out.volumes = names(v);
                out.volume_defs = top_objects(key, v, &docs, &mut out.diagnostics);
            }
            "secrets" => out.secrets = top_objects(key, v, &docs, &mut out.diagnostics),
            "configs" => out.configs = top_objects(key, v, &docs, &mut out.diagnostics),
            "x-magos" => {
                out.apply_mode = v.get("apply").and_then(Value::as_str).map(str::to_owned);
                match v.get("observe") {
                    None => {}
                    Some(Value::Bool(b)) => out.observe = *b,
                    Some(_) => {
                        let (file, pos) = top_pos(&docs, key);
                        out.diagnostics.push(Diagnostic::error(
                            &file,
                            pos,
                            "`x-magos.observe` must be `true` or `false`",
                        ));
                    }
                }
            }
            k if TOP_KEYS.contains(&k) || k.starts_with("x-") => {}
            k => out.unsupported.push(k.to_owned()),
        }
    }
    let services = match top.get("services") {
        Some(Value::Mapping(m)) => m.clone(),
        Some(Value::Null) | None => {
            if let Some(doc) = docs.first() {
                out.diagnostics.push(Diagnostic::warning(
                    doc.path,
                    Pos::START,
                    "the file has no services",
                ));
            }
            Mapping::new()
        }
        Some(_) => {
            if let Some(doc) = docs.first() {
                out.diagnostics.push(Diagnostic::error(
                    doc.path,
                    Pos::START,
                    "`services` must be a mapping of service names",
                ));
            }
            Mapping::new()
        }
    };
    for (k, v) in services {
        let name = match &k {
            Value::String(s) => s.clone(),
            other => serde_yaml_ng::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        };
        let service_pos = |docs: &[FileDoc<'_>]| -> (String, Pos) {
            for doc in docs.iter().rev() {
                if let Some((_, line)) = doc.scan.services.iter().find(|(n, _)| *n == name) {
                    return (
                        doc.path.to_owned(),
                        Pos {
                            line: *line,
                            column: 1,
                        },
                    );
                }
            }
            (
                docs.first().map_or(String::new(), |d| d.path.to_owned()),
                Pos::START,
            )
        };
        out.positions.insert(name.clone(), service_pos(&docs));
        let service = match serde_yaml_ng::from_value::<Service>(v) {
            Ok(s) => Some(s),
            Err(e) => {
                let (file, pos) = service_pos(&docs);
                out.diagnostics.push(Diagnostic::error(
                    &file,
                    pos,
                    format!("service `{name}`: {}", strip_location(&e.to_string())),
                ));
                None
            }
        };
        let image = service
            .as_ref()
            .and_then(|s| s.image.clone())
            .map(|value| image_facts(&name, value, &docs, &mut out.diagnostics));
        out.services.push(LoadedService {
            name,
            service,
            image,
        });
    }
    // Annotations that are not on an image line do nothing: say so.
    for doc in &docs {
        for (line, hash) in &doc.scan.stray_annotations {
            out.diagnostics.push(Diagnostic::warning(
                doc.path,
                Pos::of_offset(doc.text, *hash),
                format!("this Magos annotation is not on the `image:` line of a service (line {line}), so it does nothing"),
            ));
        }
    }
    out
}

fn read_file<'a>(path: &'a str, text: &'a str, diags: &mut Vec<Diagnostic>) -> Option<FileDoc<'a>> {
    let mut raw: Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            // The parser may point just past the end of the text (at a line
            // break it assumed there): clamp to the text's real end.
            let end = Pos::of_offset(text, text.len());
            let pos = e
                .location()
                .map(|l| Pos {
                    line: l.line(),
                    column: l.column(),
                })
                .map_or(Pos::START, |p| if p.line > end.line { end } else { p });
            diags.push(Diagnostic::error(
                path,
                pos,
                format!("invalid YAML: {}", strip_location(&e.to_string())),
            ));
            return None;
        }
    };
    if let Err(e) = raw.apply_merge() {
        diags.push(Diagnostic::error(
            path,
            Pos::START,
            format!("invalid merge key `<<`: {}", strip_location(&e.to_string())),
        ));
        return None;
    }
    match &raw {
        Value::Mapping(_) => {}
        Value::Null => raw = Value::Mapping(Mapping::new()),
        _ => {
            diags.push(Diagnostic::error(
                path,
                Pos::START,
                "a compose file must be a mapping (`services:` …)",
            ));
            return None;
        }
    }
    Some(FileDoc {
        path,
        text,
        raw,
        scan: rewrite::scan(text),
    })
}

fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Reads a top-level mapping of named objects (`networks`, `volumes`, `secrets`,
/// `configs`); an entry that cannot be read is a diagnostic at the key.
fn top_objects<T: serde::de::DeserializeOwned + Default>(
    key: &str,
    v: &Value,
    docs: &[FileDoc<'_>],
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    let Value::Mapping(m) = v else {
        if !v.is_null() {
            let (file, pos) = top_pos(docs, key);
            diags.push(Diagnostic::error(
                &file,
                pos,
                format!("`{key}` must be a mapping of names"),
            ));
        }
        return out;
    };
    for (k, item) in m {
        let Some(name) = k.as_str() else { continue };
        let parsed = if item.is_null() {
            Ok(T::default())
        } else {
            serde_yaml_ng::from_value::<T>(item.clone())
        };
        match parsed {
            Ok(t) => {
                out.insert(name.to_owned(), t);
            }
            Err(e) => {
                let (file, pos) = top_pos(docs, key);
                diags.push(Diagnostic::error(
                    &file,
                    pos,
                    format!("{key} `{name}`: {}", strip_location(&e.to_string())),
                ));
            }
        }
    }
    out
}

/// Where a top-level key is written (the last file that has it).
fn top_pos(docs: &[FileDoc<'_>], key: &str) -> (String, Pos) {
    for doc in docs.iter().rev() {
        let mut offset = 0;
        for line in doc.text.split_inclusive('\n') {
            if line.starts_with(&format!("{key}:")) {
                return (doc.path.to_owned(), Pos::of_offset(doc.text, offset));
            }
            offset += line.len();
        }
    }
    (
        docs.first().map_or(String::new(), |d| d.path.to_owned()),
        Pos::START,
    )
}

fn names(v: &Value) -> Vec<String> {
    match v {
        Value::Mapping(m) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Interpolates every string value (keys are left alone, as the spec says).
fn interpolate_value(v: &mut Value, doc: &FileDoc<'_>, vars: &Vars, diags: &mut Vec<Diagnostic>) {
    match v {
        Value::String(s) if interpolate::has_variables(s) => {
            match interpolate::interpolate(s, vars) {
                Ok(r) => {
                    for name in &r.missing {
                        diags.push(Diagnostic::warning(
                            doc.path,
                            locate(doc.text, s),
                            format!(
                                "variable `{name}` is not set; it is replaced by an empty string"
                            ),
                        ));
                    }
                    *s = r.value;
                }
                Err(e) => {
                    let at = locate(doc.text, &s[e.offset..]);
                    diags.push(Diagnostic::error(doc.path, at, e.message));
                }
            }
        }
        Value::Sequence(seq) => {
            for item in seq {
                interpolate_value(item, doc, vars, diags);
            }
        }
        Value::Mapping(m) => {
            for (_, item) in m.iter_mut() {
                interpolate_value(item, doc, vars, diags);
            }
        }
        Value::Tagged(t) => interpolate_value(&mut t.value, doc, vars, diags),
        _ => {}
    }
}

/// Where a value's text appears in the file (the first occurrence), for errors
/// found after YAML parsing lost the positions.
fn locate(text: &str, needle: &str) -> Pos {
    let probe: String = needle.chars().take(60).collect();
    match text.find(&probe) {
        Some(i) => Pos::of_offset(text, i),
        None => Pos::START,
    }
}

/// Sequences that the compose spec merges by appending instead of replacing.
const APPENDED: &[&str] = &[
    "ports",
    "expose",
    "volumes",
    "env_file",
    "dns",
    "dns_search",
    "extra_hosts",
    "cap_add",
    "cap_drop",
    "devices",
    "security_opt",
    "tmpfs",
];

/// Merges `over` into `base`: mappings key by key, the sequences in [`APPENDED`]
/// appended (without duplicates), everything else replaced.
fn merge(base: &mut Value, over: Value, key: Option<&str>) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                let name = k.as_str().map(str::to_owned);
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v, name.as_deref()),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Sequence(b), Value::Sequence(o)) if key.is_some_and(|k| APPENDED.contains(&k)) => {
            for item in o {
                if !b.contains(&item) {
                    b.push(item);
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn image_facts(
    service: &str,
    value: String,
    docs: &[FileDoc<'_>],
    diags: &mut Vec<Diagnostic>,
) -> ServiceImage {
    // The last file that writes an image line for the service sets it.
    let site = docs
        .iter()
        .rev()
        .find_map(|d| d.scan.site(service).map(|s| (d, s.clone())));
    let raw_value = docs.iter().rev().find_map(|d| {
        d.raw
            .get("services")
            .and_then(|s| s.get(service))
            .and_then(|s| s.get("image"))
            .map(|v| (d.path, v.as_str().map(str::to_owned)))
    });
    let mut facts = ServiceImage {
        value: value.clone(),
        reference: None,
        site: None,
        policy: None,
        not_pinnable: None,
    };
    let (file, pos) = match &site {
        Some((d, s)) => (d.path.to_owned(), Pos::of_offset(d.text, s.span.0)),
        None => (
            docs.last().map_or(String::new(), |d| d.path.to_owned()),
            docs.iter()
                .rev()
                .find_map(|d| {
                    d.scan
                        .services
                        .iter()
                        .find(|(n, _)| n == service)
                        .map(|(_, l)| Pos {
                            line: *l,
                            column: 1,
                        })
                })
                .unwrap_or(Pos::START),
        ),
    };
    match ImageRef::parse(&value) {
        Ok(r) => facts.reference = Some(r),
        // A value still holding `${` failed interpolation, which is reported already.
        Err(_) if value.contains("${") => {}
        Err(e) => diags.push(Diagnostic::error(
            &file,
            pos,
            format!("service `{service}`: {e}"),
        )),
    }
    match &site {
        None => {
            facts.not_pinnable = Some(
                "the image is not written as `image: …` on one line under the service (flow style, a merge key `<<`, or another layout)".to_owned(),
            );
        }
        Some((doc, s)) => {
            // The scanner and the YAML parser must agree on the value.
            let agrees = raw_value
                .as_ref()
                .is_some_and(|(p, v)| *p == doc.path && v.as_deref() == Some(s.value.as_str()));
            facts.not_pinnable = match (&s.blocker, agrees) {
                (Some(b), _) => Some(b.clone()),
                (None, false) => Some(
                    "the image line could not be matched with the parsed YAML value".to_owned(),
                ),
                (None, true) => None,
            };
            if let Some((at, comment)) = &s.comment
                && let Some(result) = annotation::parse_comment(comment)
            {
                match result {
                    Ok(p) => facts.policy = Some(p),
                    Err(e) => diags.push(Diagnostic::error(
                        doc.path,
                        Pos::of_offset(doc.text, at + e.offset),
                        format!("service `{service}`: {}", e.message),
                    )),
                }
            }
            facts.site = Some((doc.path.to_owned(), s.clone()));
        }
    }
    // A policy on an image that cannot be pinned is a mistake worth reporting.
    if let (Some(_), Some(why)) = (&facts.policy, &facts.not_pinnable) {
        diags.push(Diagnostic::error(
            &file,
            pos,
            format!("service `{service}` has a policy but its image cannot be pinned: {why}"),
        ));
    }
    if let (Some(p), Some(r)) = (&facts.policy, &facts.reference) {
        if let (super::policy::Kind::Digest(Some(d)), Some(rd)) = (&p.kind, &r.digest)
            && d != rd
        {
            diags.push(Diagnostic::error(
                &file,
                pos,
                format!(
                    "service `{service}`: the annotation's digest {d} differs from the image's {rd}"
                ),
            ));
        }
        if matches!(p.kind, super::policy::Kind::Digest(None)) && r.digest.is_none() {
            diags.push(Diagnostic::error(
                &file,
                pos,
                format!("service `{service}`: the digest policy needs a digest, in the image (`@sha256:…`) or as `\"digest\"`"),
            ));
        }
    }
    facts
}
