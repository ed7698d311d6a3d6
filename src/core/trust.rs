//! The trust boundary the host owner sets (`apply.allow` in the host's
//! configuration, never in the repository): which compose keys a stack may use
//! to reach past its containers into the host.
//!
//! Two pure steps with the file system in between: [`uses`] lists what a stack
//! asks of the host (privileged mode, host namespaces, devices, and every host
//! path it mounts or reads, its own files included), located by file, line and
//! key; the edge resolves those paths ([`paths`] → [`Facts`]: where each really
//! is once symbolic links are followed, and where the container engine's
//! sockets are); [`decide`] judges the uses against the [`Allow`] rules and
//! returns the refused ones as located [`Diagnostic`]s. Any refusal fails the
//! whole stack.
//!
//! The check reads the compose model ([`Loaded`]), not the native spec, so a
//! stack routed to the compose CLI is held to the same rules.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use super::compose::{Build, Loaded, OneOrMany, Scalar, Volume};
use super::diag::{Diagnostic, Pos};
use super::rewrite;

/// What a repository may ask of the host. The default allows everything
/// except symbolic links that leave the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// `privileged: true`.
    pub privileged: bool,
    /// `network_mode`, `pid`, `ipc`, `userns_mode`, `uts`, `cgroup`: `host` (or
    /// an `ns:<path>` namespace).
    pub host_namespaces: bool,
    /// `devices`, `device_cgroup_rules`, `gpus`.
    pub devices: bool,
    /// Mounting the Podman or Docker socket, or a folder that holds it.
    pub podman_socket: bool,
    /// Host path prefixes a bind mount (or an `env_file`, a `secrets`/`configs`
    /// file, a build context) may use outside the repository; `None`: any.
    pub bind_paths: Option<Vec<String>>,
    /// Stack files and relative paths that are (or go through) a symbolic link
    /// leading out of the repository.
    pub symlinks_outside_repo: bool,
}

impl Default for Allow {
    fn default() -> Self {
        Self {
            privileged: true,
            host_namespaces: true,
            devices: true,
            podman_socket: true,
            bind_paths: None,
            symlinks_outside_repo: false,
        }
    }
}

impl Allow {
    /// The restrictions in force beyond the symlink rule, as `key=value` for
    /// messages (empty: the repository may ask anything of the host).
    fn restrictions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (on, name) in [
            (self.privileged, "privileged"),
            (self.host_namespaces, "host_namespaces"),
            (self.devices, "devices"),
            (self.podman_socket, "podman_socket"),
        ] {
            if !on {
                out.push(format!("{name}=false"));
            }
        }
        if let Some(p) = &self.bind_paths {
            out.push(format!("bind_paths=[{}]", p.join(", ")));
        }
        out
    }
}

/// How a stack uses a host path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRole {
    /// One of the stack's own files (compose file, override, `.env`): only the
    /// symlink rule applies.
    StackFile,
    /// Read by Magos or the compose CLI (`env_file`, a build context).
    Read,
    /// Mounted into a container (a bind, a `secrets`/`configs` file, a volume's
    /// `driver_opts.device`).
    Mount,
}

/// One thing a stack asks of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// `privileged`.
    Privileged,
    /// A host namespace (`host` or `ns:<path>`).
    HostNamespace(String),
    /// A device (or device rule, or GPUs).
    Device(String),
    /// A host path: as written, absolute and normalised, and its role.
    Path {
        /// As the stack writes it.
        written: String,
        /// Absolute, `.`/`..` resolved lexically (`~` expanded when the home is
        /// known).
        path: String,
        /// How it is used.
        role: PathRole,
    },
    /// A file Magos did not read, so cannot check (an `extends: {file: …}`
    /// left unresolved because the stack failed to load).
    Unchecked(String),
}

/// A use, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// The file (relative to the repository).
    pub file: String,
    /// Where in it.
    pub pos: Pos,
    /// The key path (`services.app.privileged`).
    pub key: String,
    /// What it asks.
    pub ask: Ask,
}

/// A stack to examine.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The compose model.
    pub loaded: &'a Loaded,
    /// The repository, absolute (symbolic links resolved).
    pub repo: &'a str,
    /// The stack's folder, absolute.
    pub dir: &'a str,
    /// The stack's files (compose file, override, `.env`), relative to the
    /// repository.
    pub files: Vec<&'a str>,
    /// The texts of the compose files, by path relative to the repository
    /// (for line numbers; a missing text gives the service's line).
    pub texts: &'a BTreeMap<String, String>,
    /// The home folder, for `~` paths.
    pub home: Option<&'a str>,
}

/// What the edge found on the file system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Real location of the paths of [`paths`] and of the `bind_paths`
    /// prefixes (symbolic links followed; for a path that does not exist, its
    /// deepest existing parent's, with the rest appended). A path missing here
    /// is taken as it is written.
    pub real: BTreeMap<String, String>,
    /// The container engine's sockets, absolute, as written and resolved.
    pub sockets: Vec<String>,
}

/// The sockets through which a container could drive Podman or Docker: the
/// well-known paths, the user's (`$XDG_RUNTIME_DIR`), and the one Magos is
/// configured with.
pub fn engine_sockets(xdg_runtime_dir: Option<&str>, configured: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = [
        "/run/podman/podman.sock",
        "/var/run/podman/podman.sock",
        "/run/docker.sock",
        "/var/run/docker.sock",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if let Some(x) = xdg_runtime_dir.filter(|x| x.starts_with('/')) {
        let x = x.trim_end_matches('/');
        out.push(format!("{x}/podman/podman.sock"));
        out.push(format!("{x}/docker.sock"));
    }
    if let Some(c) = configured {
        let c = c.strip_prefix("unix://").unwrap_or(c);
        if c.starts_with('/') {
            out.push(normalize_abs(c));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The paths of `uses` the edge must resolve.
pub fn paths(uses: &[Use]) -> Vec<&str> {
    uses.iter()
        .filter_map(|u| match &u.ask {
            Ask::Path { path, .. } if path.starts_with('/') => Some(path.as_str()),
            _ => None,
        })
        .collect()
}

/// What the stack asks of the host, located.
pub fn uses(s: &Subject<'_>) -> Vec<Use> {
    let mut out = Vec::new();
    let at = Locator {
        texts: s
            .files
            .iter()
            .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
            .filter_map(|f| s.texts.get(*f).map(|t| Text::new(f, t)))
            .collect(),
        loaded: s.loaded,
        first: s.files.first().copied().unwrap_or_default(),
    };
    // The stack's own files.
    for f in &s.files {
        out.push(Use {
            file: (*f).to_owned(),
            pos: Pos::START,
            key: (*f).rsplit('/').next().unwrap_or(f).to_owned(),
            ask: Ask::Path {
                written: (*f).to_owned(),
                path: join(s.repo, f),
                role: PathRole::StackFile,
            },
        });
    }
    let path = |written: &str| resolve(s.dir, s.home, written);
    for ls in &s.loaded.services {
        let Some(svc) = &ls.service else { continue };
        let name = ls.name.as_str();
        let mut push = |key: &str, needle: Option<&str>, ask: Ask| {
            let (file, pos) = at.service_key(name, key, needle);
            out.push(Use {
                file,
                pos,
                key: format!("services.{name}.{key}"),
                ask,
            });
        };
        let privileged = svc.run.privileged.as_ref().map(|v| match v {
            Scalar::Bool(b) => Value::Bool(*b),
            other => Value::String(other.as_text()),
        });
        if privileged.as_ref().is_some_and(truthy) {
            push("privileged", None, Ask::Privileged);
        }
        let mut namespaces: Vec<(&str, String)> = Vec::new();
        if let Some(m) = &svc.network_mode {
            namespaces.push(("network_mode", m.trim().to_owned()));
        }
        for key in ["net", "uts", "cgroup"] {
            if let Some(v) = svc.other.get(key).and_then(Value::as_str) {
                namespaces.push((key, v.trim().to_owned()));
            }
        }
        for (key, v) in [
            ("pid", &svc.run.pid),
            ("ipc", &svc.run.ipc),
            ("userns_mode", &svc.run.userns_mode),
        ] {
            if let Some(v) = v {
                namespaces.push((key, v.trim().to_owned()));
            }
        }
        for (key, v) in namespaces {
            if v == "host" || v.starts_with("ns:") {
                push(key, None, Ask::HostNamespace(v));
            }
        }
        for d in &svc.devices {
            push("devices", Some(d), Ask::Device(d.clone()));
        }
        for r in &svc.run.device_cgroup_rules {
            push("device_cgroup_rules", Some(r), Ask::Device(r.clone()));
        }
        let gpus = svc
            .run
            .deploy
            .iter()
            .filter_map(|d| d.resources.as_ref())
            .filter_map(|r| r.reservations.as_ref())
            .flat_map(|r| &r.devices);
        for d in gpus {
            push(
                "deploy",
                Some("devices"),
                Ask::Device(format!("GPUs ({})", d.capabilities.join(", "))),
            );
        }
        match svc.other.get("gpus") {
            None | Some(Value::Null) => {}
            Some(Value::Sequence(v)) if v.is_empty() => {}
            Some(v) => push("gpus", None, Ask::Device(scalar_text(v))),
        }
        for v in &svc.volumes {
            let source = match v {
                Volume::Short(text) => {
                    let parts: Vec<&str> = text.splitn(3, ':').collect();
                    match parts.as_slice() {
                        [src, _, ..] if is_host_path(src) => Some(((*src).to_owned(), text)),
                        _ => None,
                    }
                }
                Volume::Long {
                    kind,
                    source: Some(src),
                    ..
                } if kind == "bind" => Some((src.clone(), src)),
                Volume::Long { .. } => None,
            };
            if let Some((src, needle)) = source {
                push(
                    "volumes",
                    Some(needle),
                    Ask::Path {
                        path: path(&src),
                        written: src,
                        role: PathRole::Mount,
                    },
                );
            }
        }
        let env_files = match &svc.env_file {
            Some(OneOrMany::One(p)) => vec![p.clone()],
            Some(OneOrMany::Many(v)) => v.clone(),
            None => vec![],
        };
        for f in env_files {
            push(
                "env_file",
                Some(&f),
                Ask::Path {
                    path: path(&f),
                    written: f.clone(),
                    role: PathRole::Read,
                },
            );
        }
        let context = match &svc.build {
            Some(Build::Short(c)) => Some(c.clone()),
            Some(Build::Long(b)) => Some(b.context.clone().unwrap_or_else(|| ".".to_owned())),
            None => None,
        };
        // A remote build context (a git URL) reads nothing of the host.
        if let Some(c) = context.filter(|c| !c.contains("://") && !c.starts_with("git@")) {
            push(
                "build",
                None,
                Ask::Path {
                    path: path(&c),
                    written: c,
                    role: PathRole::Read,
                },
            );
        }
        if let Some(Value::Mapping(m)) = svc.other.get("extends")
            && let Some(file) = m.get("file").and_then(Value::as_str)
        {
            push("extends", None, Ask::Unchecked(file.to_owned()));
        }
    }
    // Top-level secrets and configs are checked where they are declared, used
    // or not.
    for (kind, defs) in [
        ("secrets", &s.loaded.secrets),
        ("configs", &s.loaded.configs),
    ] {
        for (name, def) in defs {
            if let Some(f) = &def.file {
                let (file, pos) = at.top_key(kind, Some(f));
                out.push(Use {
                    file,
                    pos,
                    key: format!("{kind}.{name}.file"),
                    ask: Ask::Path {
                        path: path(f),
                        written: f.clone(),
                        role: PathRole::Mount,
                    },
                });
            }
        }
    }
    for (name, def) in &s.loaded.volume_defs {
        if let Some(device) = def
            .driver_opts
            .get("device")
            .map(|d| d.as_text())
            .filter(|d| is_host_path(d))
        {
            let device = device.as_str();
            let (file, pos) = at.top_key("volumes", Some(device));
            out.push(Use {
                file,
                pos,
                key: format!("volumes.{name}.driver_opts.device"),
                ask: Ask::Path {
                    path: path(device),
                    written: device.to_owned(),
                    role: PathRole::Mount,
                },
            });
        }
    }
    // Included files are read and merged into `loaded` (and listed among the
    // stack's files by the edge), so what they define was examined above.
    out
}

/// The uses `allow` refuses, as located errors that name the rule to change.
pub fn decide(uses: &[Use], facts: &Facts, allow: &Allow, repo: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let refuse = |u: &Use, what: String, rule: String| {
        Diagnostic::error(
            &u.file,
            u.pos,
            format!(
                "{}: {what}: refused by apply.allow.{rule} (host configuration)",
                u.key
            ),
        )
    };
    for u in uses {
        match &u.ask {
            Ask::Privileged if !allow.privileged => out.push(refuse(
                u,
                "a privileged container".to_owned(),
                "privileged=false".to_owned(),
            )),
            Ask::HostNamespace(v) if !allow.host_namespaces => out.push(refuse(
                u,
                format!("`{v}` shares a host namespace"),
                "host_namespaces=false".to_owned(),
            )),
            Ask::Device(d) if !allow.devices => out.push(refuse(
                u,
                format!("`{d}` gives a host device"),
                "devices=false".to_owned(),
            )),
            Ask::Unchecked(what) => {
                let r = allow.restrictions();
                if !r.is_empty() {
                    out.push(Diagnostic::error(
                        &u.file,
                        u.pos,
                        format!(
                            "{}: Magos does not read {what}, so it cannot hold it to apply.allow ({}): refused by apply.allow (host configuration); write the services out in this stack's files",
                            u.key,
                            r.join(", ")
                        ),
                    ));
                }
            }
            Ask::Path {
                written,
                path,
                role,
            } => {
                let real = facts.real.get(path).unwrap_or(path);
                let inside_lexically = within(path, repo);
                let inside = within(real, repo);
                if inside_lexically && !inside && !allow.symlinks_outside_repo {
                    out.push(refuse(
                        u,
                        format!(
                            "`{written}` goes through a symbolic link to {real}, outside the repository"
                        ),
                        "symlinks_outside_repo=false".to_owned(),
                    ));
                    continue;
                }
                if *role == PathRole::StackFile {
                    continue;
                }
                if *role == PathRole::Mount
                    && !allow.podman_socket
                    && let Some(sock) = facts
                        .sockets
                        .iter()
                        .find(|s| within(s, path) || within(s, real))
                {
                    let what = if sock == path || sock == real {
                        format!("`{written}` is the container engine's socket")
                    } else {
                        format!("`{written}` holds the container engine's socket {sock}")
                    };
                    out.push(refuse(u, what, "podman_socket=false".to_owned()));
                    continue;
                }
                if let Some(prefixes) = &allow.bind_paths
                    && !inside
                    && !prefixes.iter().any(|p| {
                        within(real, p) || facts.real.get(p).is_some_and(|r| within(real, r))
                    })
                {
                    let shown = if real == path {
                        real.clone()
                    } else {
                        format!("{path} (really {real})")
                    };
                    out.push(refuse(
                        u,
                        format!("{shown} is outside the repository"),
                        format!("bind_paths=[{}]", prefixes.join(", ")),
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether `path` is `base` or below it (both absolute and normalised).
fn within(path: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    base.is_empty()
        || path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Compose's test for a host path in a short volume: absolute, relative or `~`.
fn is_host_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with('.') || s.starts_with('~')
}

/// A value YAML or an interpolation could give `privileged:`; anything but a
/// clear "no" counts as yes.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "no" | "off" | "0"
        ),
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .replace('\n', " "),
    }
}

/// `p` made absolute against `dir` (or the home for `~`), `.` and `..`
/// resolved lexically.
fn resolve(dir: &str, home: Option<&str>, p: &str) -> String {
    if p == "~" || p.starts_with("~/") {
        return match home {
            Some(h) => normalize_abs(&format!("{h}/{}", &p[1..])),
            None => p.to_owned(),
        };
    }
    if p.starts_with('~') {
        // `~user/…`: another user's home, somewhere outside the repository.
        return p.to_owned();
    }
    if p.starts_with('/') {
        normalize_abs(p)
    } else {
        join(dir, p)
    }
}

fn join(dir: &str, rel: &str) -> String {
    normalize_abs(&format!("{}/{rel}", dir.trim_end_matches('/')))
}

/// `/a/./b/../c` → `/a/c` (never above `/`).
pub fn normalize_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Finds the line of a key in the stack's compose files.
struct Locator<'a> {
    texts: Vec<Text<'a>>,
    loaded: &'a Loaded,
    first: &'a str,
}

/// A compose file, split into lines, with the line of each service (scanned
/// once per stack, however many uses are located).
struct Text<'a> {
    file: &'a str,
    lines: Vec<&'a str>,
    services: BTreeMap<String, usize>,
}

impl<'a> Text<'a> {
    fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            lines: text.lines().collect(),
            services: rewrite::scan(text).services.into_iter().collect(),
        }
    }
}

impl Locator<'_> {
    /// The line of `services.<service>.<key>` (of the item holding `needle`
    /// when given), in the last file that writes it; else the service's line.
    fn service_key(&self, service: &str, key: &str, needle: Option<&str>) -> (String, Pos) {
        for Text {
            file,
            lines,
            services,
        } in self.texts.iter().rev()
        {
            let Some(&line) = services.get(service) else {
                continue;
            };
            let indent = |l: &str| l.len() - l.trim_start().len();
            let Some(service_line) = lines.get(line - 1) else {
                continue;
            };
            let base = indent(service_line);
            let mut key_indent = None;
            for (i, l) in lines.iter().enumerate().skip(line) {
                let t = l.trim_start();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                if indent(l) <= base {
                    break;
                }
                match key_indent {
                    None if t.starts_with(&format!("{key}:")) => {
                        let pos = Pos {
                            line: i + 1,
                            column: indent(l) + 1,
                        };
                        match needle {
                            None => return ((*file).to_owned(), pos),
                            Some(n) if t.contains(n) => return ((*file).to_owned(), pos),
                            Some(_) => key_indent = Some((indent(l), pos)),
                        }
                    }
                    Some((k, pos)) if indent(l) <= k => return ((*file).to_owned(), pos),
                    Some(_) if needle.is_some_and(|n| t.contains(n)) => {
                        return (
                            (*file).to_owned(),
                            Pos {
                                line: i + 1,
                                column: indent(l) + 1,
                            },
                        );
                    }
                    _ => {}
                }
            }
            if let Some((_, pos)) = key_indent {
                return ((*file).to_owned(), pos);
            }
        }
        self.loaded
            .positions
            .get(service)
            .cloned()
            .unwrap_or_else(|| (self.first.to_owned(), Pos::START))
    }

    /// The line of a top-level key (of the line holding `needle` below it when
    /// given), in the last file that writes it.
    fn top_key(&self, key: &str, needle: Option<&str>) -> (String, Pos) {
        for Text { file, lines, .. } in self.texts.iter().rev() {
            let mut found = None;
            for (i, l) in lines.iter().enumerate() {
                match found {
                    None if l.starts_with(&format!("{key}:")) => {
                        found = Some(Pos {
                            line: i + 1,
                            column: 1,
                        });
                        if needle.is_none() {
                            break;
                        }
                    }
                    Some(_) if !l.is_empty() && !l.starts_with([' ', '\t', '#']) => break,
                    Some(_) if needle.is_some_and(|n| l.contains(n)) => {
                        let column = l.len() - l.trim_start().len() + 1;
                        return (
                            (*file).to_owned(),
                            Pos {
                                line: i + 1,
                                column,
                            },
                        );
                    }
                    _ => {}
                }
            }
            if let Some(pos) = found {
                return ((*file).to_owned(), pos);
            }
        }
        (self.first.to_owned(), Pos::START)
    }
}

#[cfg(test)]
mod tests;
