//! From a loaded compose stack to the [`StackSpec`] Magos applies: names as
//! `podman-compose` gives them, paths resolved against the stack's folder, every
//! compose short and long form read into one shape. Pure: the caller reads the
//! environment files and hands their content in ([`EnvInputs`]).
//!
//! A stack that uses keys Magos does not apply natively (`build`, `extends`, …), or
//! that asks for it with `x-magos: {apply: compose}`, is routed to the compose CLI
//! ([`Route::ComposeCli`]); its spec is still built, best effort, for drift.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::compose::{
    self, Command, DependsOn, ExtraHosts, FileRef, KeyValues, Loaded, OneOrMany, OneOrManyScalar,
    Port, Scalar, Service, ServiceNetworks, TextDifference, TextDifferenceKind, TopObject, Volume,
};
use super::diag::{Diagnostic, Pos};
use super::drift::{DriftEntry, DriftState};
use super::duration;
use super::observed::{Observed, RunState};
use super::reference;
use super::spec::{
    AttachSpec, BuildSpec, ContainerImage, ContainerSpec, Dependency, DependencyCondition,
    HealthSpec, MountSpec, NetworkMode, NetworkSpec, PodmanSecretSpec, PortSpec, RestartPolicy,
    StackSpec, SubnetSpec, VolumeSpec, replica_name, scoped_name,
};

/// The content of one `env_file:` as the edge read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvFile {
    /// A plain file: its variables.
    Plain(BTreeMap<String, String>),
    /// An encrypted file: the names it sets (values are injected at apply time)
    /// and a digest of its ciphertext, which enters the config hash.
    Encrypted {
        /// The variable names.
        names: Vec<String>,
        /// A digest of the ciphertext.
        digest: String,
    },
    /// The file could not be read or parsed: why.
    Unreadable(String),
}

/// The environment files of a stack, keyed by their path relative to the stack's
/// folder as [`env_file_paths`] lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvInputs {
    /// The files.
    pub files: BTreeMap<String, EnvFile>,
}

/// How a stack is applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum Route {
    /// Through the libpod API.
    Native,
    /// With `podman-compose`.
    ComposeCli {
        /// The keys that need it (empty when the stack asked for it).
        keys: Vec<String>,
        /// The stack asked for it (`x-magos: {apply: compose}`).
        explicit: bool,
    },
}

/// What to convert.
#[derive(Debug, Clone)]
pub struct ConvertInput<'a> {
    /// The compose project.
    pub project: &'a str,
    /// This Magos instance.
    pub instance: &'a str,
    /// The stack's folder, absolute.
    pub dir: &'a str,
    /// The compose files, relative to the repository (for diagnostics and labels).
    pub config_files: Vec<String>,
    /// The environment files' contents.
    pub env: &'a EnvInputs,
    /// The digest of the stack's SOPS-encrypted `.env`, when it has one: its
    /// variables interpolated to sealed placeholders, and every container whose
    /// spec holds one gets this digest in its config hash.
    pub sealed_env: Option<&'a str>,
    /// SOPS-encrypted files used as bind sources (`secrets:`, `configs:`,
    /// volumes), by their absolute path: each is mounted from its decrypted copy.
    pub encrypted: &'a BTreeMap<String, EncryptedMount>,
    /// The home folder of the user Magos runs as, for `~/` bind sources
    /// (`None`: unknown, and such a source is an error).
    pub home: Option<&'a str>,
}

/// A SOPS-encrypted file mounted into containers from its decrypted copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedMount {
    /// Where the decrypted copy is (the private runtime folder).
    pub runtime_path: String,
    /// A digest of the ciphertext.
    pub digest: String,
}

/// The result of a conversion.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The stack as Magos would apply it natively.
    pub spec: StackSpec,
    /// How the stack is applied.
    pub route: Route,
    /// What could not be expressed (errors fail the native route).
    pub diagnostics: Vec<Diagnostic>,
    /// Notes ([`coverage`]): the keys Magos does not apply itself and where it
    /// deliberately differs from podman-compose. Never a failure.
    pub notes: Vec<Diagnostic>,
}

impl Converted {
    /// Whether a diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == super::diag::Severity::Error)
    }
}

/// Keys whose presence sends a stack to the compose CLI.
pub fn cli_keys(loaded: &Loaded) -> Vec<String> {
    let mut keys: BTreeSet<String> = loaded.unsupported.iter().cloned().collect();
    for s in &loaded.services {
        if let Some(service) = &s.service {
            keys.extend(service.unsupported());
            // A container from a root file system, without an image to pin.
            if service.other.contains_key("x-podman.rootfs") {
                keys.insert("x-podman.rootfs".to_owned());
            }
        }
    }
    // Options of top-level objects Magos does not apply (`driver_opts`, `ipam`,
    // secrets from the environment, …).
    for (kind, defs) in [
        ("networks", &loaded.network_defs),
        ("volumes", &loaded.volume_defs),
    ] {
        for (name, def) in defs {
            keys.extend(
                def.other
                    .keys()
                    .filter(|k| !k.starts_with("x-"))
                    .map(|k| format!("{kind}.{name}.{k}")),
            );
        }
    }
    for (kind, defs) in [("secrets", &loaded.secrets), ("configs", &loaded.configs)] {
        for (name, def) in defs {
            keys.extend(
                def.other
                    .keys()
                    .filter(|k| !k.starts_with("x-"))
                    .map(|k| format!("{kind}.{name}.{k}")),
            );
        }
    }
    // Configs are files only: a config from the environment or an external one
    // (a Swarm object) is the compose CLI's.
    for (name, def) in &loaded.configs {
        let set = [
            ("external", def.external),
            ("name", def.name.is_some()),
            ("environment", def.environment.is_some()),
        ];
        keys.extend(
            set.iter()
                .filter(|(_, on)| *on)
                .map(|(k, _)| format!("configs.{name}.{k}")),
        );
    }
    keys.into_iter().collect()
}

/// The `env_file:` paths of every service, for the edge to read: relative ones
/// relative to the stack's folder, absolute ones as written (compose reads an
/// absolute `env_file:` where it is).
pub fn env_file_paths(loaded: &Loaded) -> BTreeSet<String> {
    loaded
        .services
        .iter()
        .filter_map(|s| s.service.as_ref())
        .flat_map(service_env_files)
        .collect()
}

/// The `env_file:` paths of one service, in its order, as [`env_file_paths`]
/// names them.
pub fn service_env_files(service: &Service) -> Vec<String> {
    match &service.env_file {
        Some(OneOrMany::One(p)) => vec![env_file_key(p)],
        Some(OneOrMany::Many(v)) => v.iter().map(|p| env_file_key(p)).collect(),
        None => vec![],
    }
}

/// An `env_file:` as [`env_file_paths`] names it: an absolute path stays
/// absolute, a relative one is normalised against the stack's folder.
fn env_file_key(p: &str) -> String {
    if p.starts_with('/') {
        format!("/{}", normalize_rel(p).trim_start_matches("../"))
    } else {
        normalize_rel(p)
    }
}

fn normalize_rel(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// A host path: absolute as written, else resolved against the stack's folder.
fn resolve(dir: &str, p: &str) -> String {
    if p.starts_with('/') {
        return p.to_owned();
    }
    let rel = normalize_rel(p);
    if rel.is_empty() {
        dir.trim_end_matches('/').to_owned()
    } else {
        format!("{}/{rel}", dir.trim_end_matches('/'))
    }
}

struct Ctx<'a> {
    input: &'a ConvertInput<'a>,
    loaded: &'a Loaded,
    diags: Vec<Diagnostic>,
    /// Volumes created for anonymous mounts (`- /var/www/html`).
    anonymous: Vec<VolumeSpec>,
}

impl Ctx<'_> {
    fn err(&mut self, service: &str, message: String) {
        let (file, pos) = self.at(service);
        self.diags.push(Diagnostic::error(
            &file,
            pos,
            format!("service `{service}`: {message}"),
        ));
    }

    /// An error in one of a service's `key:` items, located at that key.
    fn err_at_key(&mut self, service: &str, key: &str, message: String) {
        let (file, pos) = self
            .loaded
            .key_positions
            .get(&format!("services.{service}.{key}"))
            .cloned()
            .unwrap_or_else(|| self.at(service));
        self.diags.push(Diagnostic::error(
            &file,
            pos,
            format!("service `{service}`: {message}"),
        ));
    }

    fn warn(&mut self, service: &str, message: String) {
        let (file, pos) = self.at(service);
        self.diags.push(Diagnostic::warning(
            &file,
            pos,
            format!("service `{service}`: {message}"),
        ));
    }

    fn at(&self, service: &str) -> (String, Pos) {
        self.loaded
            .positions
            .get(service)
            .cloned()
            .unwrap_or_else(|| {
                (
                    self.input.config_files.first().cloned().unwrap_or_default(),
                    Pos::START,
                )
            })
    }

    fn top_warn(&mut self, message: String) {
        let file = self.input.config_files.first().cloned().unwrap_or_default();
        self.diags
            .push(Diagnostic::warning(&file, Pos::START, message));
    }

    fn top_err(&mut self, message: String) {
        let file = self.input.config_files.first().cloned().unwrap_or_default();
        self.diags
            .push(Diagnostic::error(&file, Pos::START, message));
    }
}

/// Converts a loaded stack.
/// The warning for an `environment:` entry without a value whose variable is
/// set neither in Magos's environment nor in the stack's `.env`.
fn unset_environment(k: &str) -> String {
    format!(
        "environment `{k}` has no value and is set neither in Magos's environment nor in the stack's `.env`; it is left out"
    )
}

pub fn convert(loaded: &Loaded, input: &ConvertInput<'_>) -> Converted {
    let mut cx = Ctx {
        input,
        loaded,
        diags: Vec::new(),
        anonymous: Vec::new(),
    };
    let project = input.project;
    let keys = cli_keys(loaded);
    let route = match loaded.apply_mode.as_deref() {
        Some("compose") => Route::ComposeCli {
            keys,
            explicit: true,
        },
        Some("native") | None if keys.is_empty() => Route::Native,
        Some("native") => {
            cx.top_err(format!(
                "`x-magos: {{apply: native}}` but the stack uses keys Magos does not apply: {}",
                keys.join(", ")
            ));
            Route::Native
        }
        None => Route::ComposeCli {
            keys,
            explicit: false,
        },
        Some(other) => {
            cx.top_err(format!(
                "`x-magos: {{apply: {other}}}` is not `native` or `compose`"
            ));
            Route::Native
        }
    };

    // Declared networks and volumes.
    let net_name = |key: &str, def: &TopObject| match (&def.name, def.external) {
        (Some(n), _) => n.clone(),
        (None, true) => key.to_owned(),
        (None, false) => scoped_name(project, key),
    };
    let mut used_networks: BTreeSet<String> = BTreeSet::new();
    let mut services = Vec::new();
    let names: BTreeSet<&str> = loaded.services.iter().map(|s| s.name.as_str()).collect();
    for ls in &loaded.services {
        let Some(service) = &ls.service else { continue };
        if let Some(spec) = convert_service(&mut cx, &ls.name, service, &names, &mut used_networks)
        {
            services.extend(replicas(&mut cx, service, spec));
        }
    }
    // A service scaled to 0 runs nothing another could wait for.
    let zero: Vec<&str> = loaded
        .services
        .iter()
        .filter(|ls| {
            ls.service
                .as_ref()
                .and_then(|s| s.replicas().ok().flatten())
                == Some(0)
        })
        .map(|ls| ls.name.as_str())
        .collect();
    let mut reported = BTreeSet::new();
    for spec in &services {
        for dep in spec
            .depends_on
            .iter()
            .filter(|d| zero.contains(&d.service.as_str()))
        {
            if reported.insert((spec.service.clone(), dep.service.clone())) {
                cx.err(
                    &spec.service,
                    format!(
                        "depends on `{}`, which is scaled to 0 and runs no container",
                        dep.service
                    ),
                );
            }
        }
    }
    // `links: [db:database]`: `database` is a name of `db` on its networks.
    let link_aliases = run::link_aliases(loaded);
    for spec in &mut services {
        if let Some(extra) = link_aliases.get(&spec.service) {
            for aliases in spec.networks.values_mut() {
                for a in extra {
                    if !aliases.contains(a) {
                        aliases.push(a.clone());
                    }
                }
            }
        }
    }
    top_level_x_podman(&mut cx);
    let mut networks = Vec::new();
    for key in &used_networks {
        let def = loaded.network_defs.get(key).cloned().unwrap_or_default();
        networks.push(network_spec(&mut cx, key, net_name(key, &def), &def));
    }
    let mut volumes = Vec::new();
    for (key, def) in &loaded.volume_defs {
        volumes.push(VolumeSpec {
            name: net_name(key, def),
            external: def.external,
            driver: def.driver.clone(),
            labels: key_values(def.labels.as_ref()),
            options: driver_opts(def),
        });
        top_x_podman(&mut cx, "volumes", key, def);
    }
    for anon in std::mem::take(&mut cx.anonymous) {
        if !volumes.iter().any(|v| v.name == anon.name) {
            volumes.push(anon);
        }
    }
    let spec = StackSpec {
        project: project.to_owned(),
        instance: input.instance.to_owned(),
        working_dir: input.dir.to_owned(),
        config_files: input.config_files.clone(),
        networks,
        volumes,
        services,
    };
    Converted {
        spec,
        route,
        diagnostics: cx.diags,
        notes: coverage(loaded),
    }
}

/// A service's containers: one, or `scale`/`deploy.replicas` of them named
/// `<project>_<service>_1` … `_N` (none for 0), as podman-compose names them.
fn replicas(cx: &mut Ctx<'_>, s: &Service, spec: ContainerSpec) -> Vec<ContainerSpec> {
    let name = spec.service.clone();
    let count = match s.replicas() {
        Ok(n) => n.unwrap_or(1),
        Err(e) => {
            cx.err(&name, e);
            return Vec::new();
        }
    };
    if count > 1 && s.container_name.is_some() {
        cx.err(
            &name,
            format!(
                "`container_name` names one container, but the service asks for {count}; remove one of them"
            ),
        );
        return Vec::new();
    }
    (1..=count)
        .map(|n| {
            let mut replica = spec.clone();
            replica.number = n;
            if n > 1 {
                replica.name = replica_name(cx.input.project, &name, n);
            }
            replica
        })
        .collect()
}

/// Where Magos deliberately differs from podman-compose, by the service key
/// that shows it (the "Differences from podman-compose" table of
/// docs/stacks.md, where the difference has a place in the file).
pub const DIFFERENCES: &[(&str, &str)] = &[
    (
        "depends_on",
        "podman-compose also passes `--requires`, so Podman starts a container's dependencies with it; Magos orders creation and start by `depends_on` itself and sets no Podman dependency",
    ),
    (
        "build",
        "podman-compose `up` builds only when the image is absent; Magos also rebuilds when the build inputs changed (context files, Dockerfile, args, target, labels)",
    ),
    (
        "healthcheck",
        "podman-compose runs a `test:` through `/bin/sh -c` (a `CMD-SHELL` one in a second shell, a `CMD` one in a shell at all); Magos passes it as written, as the compose specification says",
    ),
];

/// The notes `magos lint` and `magos plan` show for a loaded stack, located
/// at the key (file and line): every compose key Magos does not apply itself
/// (the stack then goes to the compose CLI) or ignores, and every place where
/// it deliberately differs from podman-compose ([`DIFFERENCES`], the pod
/// podman-compose puts a project's containers in, a port with an empty host
/// address, a service without `networks:` where the file declares others, and
/// the places only the text before interpolation shows:
/// [`Loaded::text_differences`]). Pure; needs no
/// conversion input, so a command that does not convert can call it too.
pub fn coverage(loaded: &Loaded) -> Vec<Diagnostic> {
    let at = |path: &str| loaded.key_positions.get(path).cloned();
    let mut notes = Vec::new();
    let mut note = |(file, pos): (String, Pos), message: String| {
        notes.push(Diagnostic::note(&file, pos, message));
    };
    let cli =
        "the stack is applied with the compose CLI (podman-compose) instead of the libpod API";
    if let Some(p) = at("version") {
        note(
            p,
            "`version` is obsolete and ignored (as compose ignores it)".to_owned(),
        );
    }
    for key in &loaded.unsupported {
        if let Some(p) = at(key) {
            note(
                p,
                format!("top-level `{key}` is not applied by Magos: {cli}"),
            );
        }
    }
    for (path, p) in &loaded.key_positions {
        for kind in ["networks.", "volumes.", "secrets.", "configs."] {
            if let Some(rest) = path.strip_prefix(kind)
                && let Some((name, key)) = rest.split_once('.')
            {
                let kind = kind.trim_end_matches("s.");
                note(
                    p.clone(),
                    format!("{kind} `{name}`: `{key}` is not applied by Magos: {cli}"),
                );
            }
        }
    }
    if !loaded.services.is_empty()
        && at("x-podman.in_pod").is_none()
        && let Some(p) = at("services")
    {
        note(
            p,
            "podman-compose puts the project's containers in a pod `pod_<project>`; Magos creates no pod, each container stands alone on the project's networks".to_owned(),
        );
    }
    for ls in &loaded.services {
        let Some(service) = &ls.service else { continue };
        let name = &ls.name;
        for key in service.unsupported() {
            // `build.ssh` is located at `build:`.
            let top = key.split('.').next().unwrap_or(&key);
            if let Some(p) = at(&format!("services.{name}.{key}"))
                .or_else(|| at(&format!("services.{name}.{top}")))
            {
                note(
                    p,
                    format!("service `{name}`: `{key}` is not applied by Magos: {cli}"),
                );
            }
        }
        for (key, why) in DIFFERENCES {
            if let Some(p) = at(&format!("services.{name}.{key}")) {
                note(p, format!("service `{name}`: `{key}`: {why}"));
            }
        }
        if let Some(port) = empty_host_address(service)
            && let Some(p) = at(&format!("services.{name}.ports"))
        {
            note(
                p,
                format!(
                    "service `{name}`: port `{port}` has an empty host address: podman-compose passes it to Podman, which refuses it; Magos publishes it on every address, as docker compose does"
                ),
            );
        }
        if let Some(why) = without_networks(loaded, service)
            && let Some(p) = loaded.positions.get(name)
        {
            note(
                p.clone(),
                format!("service `{name}` has no `networks:`: {why}"),
            );
        }
    }
    for d in &loaded.text_differences {
        note((d.file.clone(), d.pos), text_difference(d));
    }
    notes.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    notes
}

/// How podman-compose and Magos place a service with neither `networks:` nor
/// `network_mode:` differently, when they do: in a file that declares networks
/// but not `default`.
fn without_networks(loaded: &Loaded, service: &Service) -> Option<String> {
    if service.networks.is_some()
        || service.network_mode.is_some()
        || loaded.networks.is_empty()
        || loaded.networks.iter().any(|n| n == "default")
    {
        return None;
    }
    let theirs = match loaded.networks.as_slice() {
        [only] => format!("the file's only network, `{only}`"),
        _ => "Podman's `podman` network, as the file declares several".to_owned(),
    };
    Some(format!(
        "podman-compose puts it on {theirs}; Magos puts it on the project's `default` network (`<project>_default`), as the compose specification says"
    ))
}

/// The note of a [`TextDifference`].
fn text_difference(d: &TextDifference) -> String {
    let service = &d.service;
    match &d.kind {
        TextDifferenceKind::EnvSelfReference { var, refers } => {
            let refers: Vec<String> = refers.iter().map(|r| format!("`{r}`")).collect();
            format!(
                "service `{service}`: `environment:` `{var}` refers to {} of the same `environment:`: podman-compose takes the value from there; Magos interpolates from its environment and the stack's `.env` only, as the compose specification says (set the variable there for the same value)",
                refers.join(", ")
            )
        }
        TextDifferenceKind::ProjectName { var } => format!(
            "service `{service}`: `environment:` `{var}` refers to `${{COMPOSE_PROJECT_NAME}}`: podman-compose 1.3 leaves it empty; Magos sets it to the project's name (unless the environment or the `.env` sets it), as docker compose and later podman-compose do"
        ),
        TextDifferenceKind::LabelKeyVariable { entry } => format!(
            "service `{service}`: label `{entry}` has a variable in its key: podman-compose interpolates only the value and names the label as written; Magos interpolates the whole entry, as compose does with any string"
        ),
    }
}

/// The first short-syntax port of `service` written with an empty host address
/// (`:2283:2283`), which podman-compose and Magos read differently.
fn empty_host_address(service: &Service) -> Option<String> {
    service.ports.iter().find_map(|p| match p {
        Port::Short(text) => Some(text.as_text()).filter(|t| t.starts_with(':')),
        Port::Long { .. } => None,
    })
}

fn key_values(kv: Option<&KeyValues>) -> BTreeMap<String, String> {
    match kv {
        None => BTreeMap::new(),
        Some(KeyValues::List(l)) => l
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (e.clone(), String::new()),
            })
            .collect(),
        Some(KeyValues::Map(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_ref().map(Scalar::as_text).unwrap_or_default(),
                )
            })
            .collect(),
    }
}

fn convert_service(
    cx: &mut Ctx<'_>,
    name: &str,
    s: &Service,
    names: &BTreeSet<&str>,
    used_networks: &mut BTreeSet<String>,
) -> Option<ContainerSpec> {
    let project = cx.input.project;
    let image = match (&s.image, s.build.is_some()) {
        (image, true) => {
            // Built here, tagged as podman-compose tags it: `image:` when given,
            // else `<project>_<service>`.
            if image.as_deref().is_some_and(|i| i.contains('@')) {
                cx.err(
                    name,
                    "`image:` with `build:` names the image the build makes; it cannot be pinned by digest (remove the `@sha256:…`)".to_owned(),
                );
                return None;
            }
            let built = super::build::image_name(project, name, image.as_deref());
            ContainerImage {
                reference: built.clone(),
                qualified: built,
                digest: None,
            }
        }
        (Some(value), false) => match image_ref(value) {
            Ok(r) => r,
            Err(e) => {
                cx.err(name, format!("invalid image `{value}`: {e}"));
                return None;
            }
        },
        (None, false) => {
            cx.err(name, "has no `image`".to_owned());
            return None;
        }
    };
    let mut spec = ContainerSpec::new(project, name, image);
    if let Some(n) = &s.container_name {
        spec.name = n.clone();
    }
    spec.hostname = s.hostname.clone();
    spec.user = s.user.clone();
    spec.working_dir = s.working_dir.clone();
    spec.command = s
        .command
        .as_ref()
        .and_then(|c| argv(cx, name, "command", c));
    spec.entrypoint = s
        .entrypoint
        .as_ref()
        .and_then(|c| argv(cx, name, "entrypoint", c));

    // Environment: env files in order, then `environment:`.
    let files = match &s.env_file {
        Some(OneOrMany::One(p)) => vec![p.clone()],
        Some(OneOrMany::Many(v)) => v.clone(),
        None => vec![],
    };
    // A later file, and then `environment:`, wins over an encrypted file's
    // variable, as compose gives precedence.
    let mut secret_digests = Vec::new();
    let mut secret_names: BTreeSet<String> = BTreeSet::new();
    for f in files {
        let key = env_file_key(&f);
        match cx.input.env.files.get(&key) {
            Some(EnvFile::Plain(vars)) => {
                for (k, v) in vars {
                    secret_names.remove(k);
                    spec.environment.insert(k.clone(), v.clone());
                }
            }
            Some(EnvFile::Encrypted { names, digest }) => {
                for k in names {
                    spec.environment.remove(k);
                    secret_names.insert(k.clone());
                }
                secret_digests.push(digest.clone());
            }
            Some(EnvFile::Unreadable(why)) => cx.err(name, format!("env_file `{f}`: {why}")),
            None => cx.err(name, format!("env_file `{f}` was not read")),
        }
    }
    match &s.environment {
        Some(KeyValues::Map(m)) => {
            for (k, v) in m {
                match v {
                    Some(v) => {
                        spec.environment.insert(k.clone(), v.as_text());
                    }
                    // Compose takes it from the environment and the `.env`.
                    None => match cx.loaded.bare_env.get(k) {
                        Some(v) => {
                            spec.environment.insert(k.clone(), v.clone());
                        }
                        None => cx.warn(name, unset_environment(k)),
                    },
                }
            }
        }
        Some(KeyValues::List(l)) => {
            for e in l {
                match e.split_once('=') {
                    Some((k, v)) => {
                        spec.environment.insert(k.to_owned(), v.to_owned());
                    }
                    None => match cx.loaded.bare_env.get(e) {
                        Some(v) => {
                            spec.environment.insert(e.clone(), v.clone());
                        }
                        None => cx.warn(name, unset_environment(e)),
                    },
                }
            }
        }
        None => {}
    }
    secret_names.retain(|k| !spec.environment.contains_key(k));
    spec.secret_environment = secret_names.into_iter().collect();
    spec.labels = key_values(s.labels.as_ref());

    for p in &s.ports {
        match port(p) {
            Ok(ps) => spec.ports.push(ps),
            Err(e) => cx.err_at_key(name, "ports", e),
        }
    }
    for v in &s.volumes {
        match volume(cx.input, cx.loaded, name, v) {
            Ok((m, anonymous)) => {
                spec.mounts.push(m);
                cx.anonymous.extend(anonymous);
            }
            Err(e) => cx.err_at_key(name, "volumes", e),
        }
    }
    for t in one_or_many(s.tmpfs.as_ref()) {
        let (target, opts) = t.split_once(':').unwrap_or((&t, ""));
        spec.mounts.push(MountSpec::Tmpfs {
            target: target.to_owned(),
            options: split_opts(opts),
        });
    }
    for (kind, refs, tops, base) in [
        ("secret", &s.secrets, &cx.loaded.secrets, "/run/secrets/"),
        ("config", &s.configs, &cx.loaded.configs, "/"),
    ] {
        for r in refs {
            let (source, target) = match r {
                FileRef::Short(n) => (n.clone(), None),
                FileRef::Long { source, target, .. } => (source.clone(), target.clone()),
            };
            let owner = match file_ref_owner(r) {
                Ok(o) => o,
                Err(e) => {
                    cx.err(name, format!("{kind} `{source}`: {e}"));
                    continue;
                }
            };
            let Some(top) = tops.get(&source) else {
                cx.err(
                    name,
                    format!("{kind} `{source}` is not declared at the top level"),
                );
                continue;
            };
            let Some(file) = &top.file else {
                if kind == "secret"
                    && let Some(mut secret) = podman_secret(cx.input.project, &source, target, top)
                {
                    (secret.uid, secret.gid, secret.mode, secret.as_env) = owner;
                    spec.podman_secrets.push(secret);
                    continue;
                }
                cx.err(
                    name,
                    format!("{kind} `{source}`: only `file:` {kind}s are applied by Magos"),
                );
                continue;
            };
            if owner != (None, None, None, false) {
                cx.warn(
                    name,
                    format!("{kind} `{source}`: `uid`, `gid`, `mode` and `type` are not applied to a `file:` {kind} (it is mounted read-only as it is on the host)"),
                );
            }
            let target = match target {
                Some(t) if t.starts_with('/') => t,
                Some(t) => format!("{base}{t}"),
                None => format!("{base}{source}"),
            };
            let mut options = vec!["ro".to_owned()];
            match top.relabel.as_deref() {
                None => {}
                Some(l @ ("z" | "Z")) => options.push(l.to_owned()),
                Some(other) => cx.err(
                    name,
                    format!("{kind} `{source}`: `x-podman.relabel: {other}` is not `z` or `Z`"),
                ),
            }
            spec.mounts.push(MountSpec::Bind {
                source: resolve(cx.input.dir, file),
                target,
                options,
                create_host_path: false,
            });
        }
    }

    // Networks.
    let mode = s.network_mode.as_deref().map(str::trim);
    spec.network_mode = match mode {
        None | Some("bridge") => NetworkMode::Bridge,
        Some("host") => NetworkMode::Host,
        Some("none") => NetworkMode::None,
        Some("pasta") => NetworkMode::Pasta(Vec::new()),
        Some(m) if m.starts_with("pasta:") => NetworkMode::Pasta(split_opts(&m[6..])),
        Some(m) if m.starts_with("service:") => {
            let target = &m[8..];
            if !names.contains(target) {
                cx.err(
                    name,
                    format!("network_mode refers to service `{target}`, which is not in the stack"),
                );
            }
            NetworkMode::Service(target.to_owned())
        }
        Some(m) if m.starts_with("container:") => NetworkMode::Container(m[10..].to_owned()),
        Some(m) => {
            cx.err(name, format!("network_mode `{m}` is not supported"));
            NetworkMode::Bridge
        }
    };
    let attachments: Vec<(String, Vec<String>)> = match &s.networks {
        None => Vec::new(),
        Some(ServiceNetworks::List(l)) => l.iter().map(|n| (n.clone(), vec![])).collect(),
        Some(ServiceNetworks::Map(m)) => m
            .iter()
            .map(|(n, a)| {
                (
                    n.clone(),
                    a.as_ref().map(|a| a.aliases.clone()).unwrap_or_default(),
                )
            })
            .collect(),
    };
    let settings = attach_settings(cx, name, s);
    if mode.is_some() && mode != Some("bridge") && !attachments.is_empty() {
        cx.err(
            name,
            "`network_mode` and `networks` cannot be used together".to_owned(),
        );
    }
    if mode.is_none() {
        let attachments = if attachments.is_empty() {
            vec![("default".to_owned(), vec![])]
        } else {
            attachments
        };
        for (key, aliases) in attachments {
            let def = cx.loaded.network_defs.get(&key);
            if def.is_none() && key != "default" {
                cx.err(
                    name,
                    format!("network `{key}` is not declared at the top level"),
                );
                continue;
            }
            let full = match def {
                Some(d) => match (&d.name, d.external) {
                    (Some(n), _) => n.clone(),
                    (None, true) => key.clone(),
                    (None, false) => scoped_name(project, &key),
                },
                None => scoped_name(project, &key),
            };
            used_networks.insert(key.clone());
            if let Some(a) = settings.get(&key) {
                spec.network_settings.insert(full.clone(), a.clone());
            }
            spec.networks.insert(full, aliases);
        }
    } else if mode == Some("bridge") {
        for (key, aliases) in attachments {
            let full = scoped_name(project, &key);
            used_networks.insert(key);
            spec.networks.insert(full, aliases);
        }
    }

    spec.restart = match s.restart.as_deref() {
        None => None,
        Some("no") => Some(RestartPolicy::No),
        Some("always") => Some(RestartPolicy::Always),
        Some("unless-stopped") => Some(RestartPolicy::UnlessStopped),
        Some(r) if r == "on-failure" || r.starts_with("on-failure:") => {
            if let Some(n) = r.strip_prefix("on-failure:") {
                match n.trim().parse::<u32>() {
                    Ok(n) => spec.run.restart_tries = Some(n),
                    Err(_) => cx.err(
                        name,
                        format!("restart `{r}`: the retry count is not a whole number"),
                    ),
                }
            }
            Some(RestartPolicy::OnFailure)
        }
        Some(r) => {
            cx.err(name, format!("restart `{r}` is not a restart policy"));
            None
        }
    };
    if let Some(h) = &s.healthcheck {
        spec.healthcheck = healthcheck(cx, name, h);
    }
    match &s.depends_on {
        None => {}
        Some(DependsOn::List(l)) => {
            for d in l {
                spec.depends_on.push(Dependency {
                    service: d.clone(),
                    condition: DependencyCondition::ServiceStarted,
                    restart: false,
                });
            }
        }
        Some(DependsOn::Map(m)) => {
            for (d, dep) in m {
                let condition = match dep.condition.as_deref() {
                    None | Some("service_started") => DependencyCondition::ServiceStarted,
                    Some("service_healthy") => DependencyCondition::ServiceHealthy,
                    Some("service_completed_successfully") => {
                        DependencyCondition::ServiceCompletedSuccessfully
                    }
                    Some(c) => {
                        cx.err(name, format!("depends_on `{d}`: unknown condition `{c}`"));
                        continue;
                    }
                };
                spec.depends_on.push(Dependency {
                    service: d.clone(),
                    condition,
                    restart: dep.restart,
                });
            }
        }
    }
    for d in &spec.depends_on {
        if !names.contains(d.service.as_str()) {
            let msg = format!("depends on `{}`, which is not in the stack", d.service);
            cx.err(name, msg);
        }
    }
    spec.stop_signal = s.stop_signal.clone();
    if let Some(g) = &s.stop_grace_period {
        spec.stop_grace_period = dur(cx, name, "stop_grace_period", g);
    }
    spec.cap_add = s.cap_add.clone();
    spec.cap_drop = s.cap_drop.clone();
    spec.devices = s.devices.clone();
    spec.dns = one_or_many(s.dns.as_ref());
    spec.read_only = s.read_only;
    match &s.extra_hosts {
        None => {}
        Some(ExtraHosts::List(l)) => {
            for e in l {
                // `host:ip` or `host=ip`; an IPv6 address has colons of its own.
                let pair = e.split_once('=').or_else(|| e.split_once(':'));
                match pair {
                    Some((h, ip)) => spec.extra_hosts.push(format!("{h}:{ip}")),
                    None => cx.err(name, format!("extra_hosts `{e}` is not `host:ip`")),
                }
            }
        }
        Some(ExtraHosts::Map(m)) => {
            for (h, ips) in m {
                match ips {
                    OneOrManyScalar::One(ip) => {
                        spec.extra_hosts.push(format!("{h}:{}", ip.as_text()))
                    }
                    OneOrManyScalar::Many(v) => {
                        for ip in v {
                            spec.extra_hosts.push(format!("{h}:{}", ip.as_text()));
                        }
                    }
                }
            }
        }
    }
    run::apply(cx, name, s, names, &mut spec);
    service_x_podman(cx, name, s, &mut spec);
    if let Some(b) = &s.build {
        spec.build = build_spec(cx, name, b);
    }
    seal(cx.input, &mut spec, secret_digests);
    Some(spec)
}

/// podman-compose's service extensions (docs/Extensions.md of
/// containers/podman-compose): `x-podman.uidmaps`, `x-podman.gidmaps` and
/// `x-podman.no_hosts` are applied; `x-podman.rootfs` (a container without an
/// image) routes the stack to the compose CLI; `x-podman.passwd` and any other
/// is reported, never dropped silently.
fn service_x_podman(cx: &mut Ctx<'_>, name: &str, s: &Service, spec: &mut ContainerSpec) {
    for (k, v) in s.other.iter().filter(|(k, _)| k.starts_with("x-podman")) {
        let list = || -> Option<Vec<String>> {
            match v {
                serde_yaml_ng::Value::Sequence(l) => {
                    l.iter().map(|e| e.as_str().map(str::to_owned)).collect()
                }
                serde_yaml_ng::Value::String(one) => Some(vec![one.clone()]),
                _ => None,
            }
        };
        match k.as_str() {
            "x-podman.uidmaps" | "x-podman.gidmaps" => match list() {
                Some(l) if l.iter().all(|m| id_map_ok(m)) => {
                    if k == "x-podman.uidmaps" {
                        spec.uidmaps = l;
                    } else {
                        spec.gidmaps = l;
                    }
                }
                _ => cx.err(
                    name,
                    format!("`{k}` must be a list of `container_id:host_id:count` mappings"),
                ),
            },
            "x-podman.no_hosts" => match v.as_bool() {
                Some(b) => spec.no_hosts = b,
                None => cx.err(name, format!("`{k}` must be `true` or `false`")),
            },
            "x-podman" => cx.err(
                name,
                "`x-podman:` under a service is podman-compose's old form; write `x-podman.uidmaps` and `x-podman.gidmaps`".to_owned(),
            ),
            // Routes the stack to the compose CLI (see `cli_keys`).
            "x-podman.rootfs" => {}
            other => cx.warn(name, format!("`{other}` is not applied by Magos")),
        }
    }
}

/// `container_id:host_id:count`, each part a number (a leading `@`, `+` or `u`/`g`
/// flag as Podman takes them allowed on the first).
fn id_map_ok(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    parts.len() == 3
        && parts.iter().enumerate().all(|(i, p)| {
            let p = if i == 0 {
                p.trim_start_matches(['@', '+', 'u', 'g'])
            } else {
                p.trim_start_matches('@')
            };
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
        })
}

/// podman-compose's top-level `x-podman:` settings: Magos makes no pods and keeps
/// compose's names, so the ones that would change that are reported.
fn top_level_x_podman(cx: &mut Ctx<'_>) {
    let Some(serde_yaml_ng::Value::Mapping(m)) = &cx.loaded.x_podman else {
        return;
    };
    for (k, v) in m {
        let key = k.as_str().unwrap_or_default().to_owned();
        let on = v.as_bool().unwrap_or(true);
        match key.as_str() {
            // Magos always joins `<project>_default` as docker-compose does.
            "default_net_behavior_compat" => {}
            "in_pod" | "pod_args" => cx.top_warn(format!(
                "`x-podman.{key}`: Magos creates no pod; each container runs on its own, as with `in_pod: false`"
            )),
            _ if !on => {}
            _ => cx.top_warn(format!(
                "`x-podman.{key}` is not applied by Magos; names follow podman-compose's defaults (`<project>_<service>_1`, `<project>_<network>`)"
            )),
        }
    }
}

/// A service's fixed settings per network key (`ipv4_address`, `ipv6_address`,
/// `mac_address`, `x-podman.mac_address`, `x-podman.interface_name`), with the
/// service's own `mac_address` on its network (one network only: with several,
/// which one it means is not written down).
fn attach_settings(cx: &mut Ctx<'_>, name: &str, s: &Service) -> BTreeMap<String, AttachSpec> {
    let mut out = BTreeMap::new();
    let mut keys: Vec<String> = Vec::new();
    match &s.networks {
        None => keys.push("default".to_owned()),
        Some(ServiceNetworks::List(l)) => keys.extend(l.iter().cloned()),
        Some(ServiceNetworks::Map(m)) => {
            for (key, a) in m {
                keys.push(key.clone());
                let Some(a) = a else { continue };
                for other in a.other.keys() {
                    cx.warn(
                        name,
                        format!("networks.{key}.{other} is not applied by Magos"),
                    );
                }
                let mac = match (&a.mac_address, &a.x_podman_mac_address) {
                    (Some(m), Some(x)) if m != x => {
                        cx.err(
                            name,
                            format!("network `{key}`: `mac_address` {m} and `x-podman.mac_address` {x} differ"),
                        );
                        None
                    }
                    (m, x) => m.clone().or_else(|| x.clone()),
                };
                let spec = AttachSpec {
                    static_ips: a
                        .ipv4_address
                        .iter()
                        .chain(&a.ipv6_address)
                        .cloned()
                        .collect(),
                    mac_from_x_podman: a.mac_address.is_none() && mac.is_some(),
                    mac,
                    interface_name: a.interface_name.clone(),
                };
                if spec != AttachSpec::default() {
                    out.insert(key.clone(), spec);
                }
            }
        }
    }
    if let Some(mac) = &s.mac_address {
        if s.network_mode.is_some() {
            cx.warn(
                name,
                "`mac_address` with `network_mode` is not applied".to_owned(),
            );
        } else if keys.len() > 1 {
            cx.err(
                name,
                format!(
                    "`mac_address` with {} networks: set `mac_address` under the network it is for",
                    keys.len()
                ),
            );
        } else if let Some(key) = keys.first() {
            let a: &mut AttachSpec = out.entry(key.clone()).or_default();
            match &a.mac {
                Some(m) if m != mac => cx.err(
                    name,
                    format!("`mac_address` {mac} and the network's `mac_address` {m} differ"),
                ),
                _ => {
                    a.mac = Some(mac.clone());
                    a.mac_from_x_podman = false;
                }
            }
        }
    }
    out
}

/// A top-level network as Magos creates it: driver, `internal`, labels,
/// `driver_opts`, `enable_ipv6`, `ipam` and podman-compose's `x-podman.dns`,
/// `x-podman.disable_dns` and `x-podman.routes`.
fn network_spec(cx: &mut Ctx<'_>, key: &str, name: String, def: &TopObject) -> NetworkSpec {
    let mut spec = NetworkSpec {
        name,
        external: def.external,
        driver: def.driver.clone(),
        internal: def.internal,
        labels: key_values(def.labels.as_ref()),
        ipv6: def.enable_ipv6,
        options: driver_opts(def),
        ipam_driver: None,
        subnets: Vec::new(),
        disable_dns: false,
        dns: Vec::new(),
        routes: Vec::new(),
    };
    if let Some(ipam) = &def.ipam {
        spec.ipam_driver = ipam.driver.clone().filter(|d| d != "default");
        if !ipam.options.is_empty() {
            cx.top_warn(format!(
                "network `{key}`: `ipam.options` is not applied by Magos (Podman takes no IPAM driver options)"
            ));
        }
        for c in &ipam.config {
            if !c.aux_addresses.is_empty() {
                cx.top_warn(format!(
                    "network `{key}`: `ipam.config.aux_addresses` is not applied by Magos (Podman cannot reserve addresses); leave them out of `ip_range`"
                ));
            }
            match &c.subnet {
                Some(subnet) => spec.subnets.push(SubnetSpec {
                    subnet: subnet.clone(),
                    gateway: c.gateway.clone(),
                    ip_range: c.ip_range.clone(),
                }),
                None if c.gateway.is_some() || c.ip_range.is_some() => cx.top_err(format!(
                    "network `{key}`: an `ipam.config` entry with `gateway` or `ip_range` needs its `subnet`"
                )),
                None => {}
            }
        }
    }
    for (k, v) in &def.other {
        match k.as_str() {
            "x-podman.disable_dns" => match v.as_bool() {
                Some(b) => spec.disable_dns = b,
                None => cx.top_err(format!(
                    "network `{key}`: `x-podman.disable_dns` must be `true` or `false`"
                )),
            },
            "x-podman.dns" | "x-podman.routes" => {
                let list: Option<Vec<String>> = match v {
                    serde_yaml_ng::Value::Sequence(s) => {
                        s.iter().map(|e| e.as_str().map(str::to_owned)).collect()
                    }
                    serde_yaml_ng::Value::String(s) => Some(vec![s.clone()]),
                    _ => None,
                };
                match (list, k.as_str()) {
                    (Some(l), "x-podman.dns") => spec.dns = l,
                    (Some(l), _) => spec.routes = l,
                    (None, _) => {
                        cx.top_err(format!("network `{key}`: `{k}` must be a list of strings"))
                    }
                }
            }
            k if k.starts_with("x-podman") => {
                cx.top_warn(format!("network `{key}`: `{k}` is not applied by Magos"))
            }
            _ => {}
        }
    }
    if spec.disable_dns && !spec.dns.is_empty() {
        cx.top_err(format!(
            "network `{key}`: `x-podman.dns` cannot be used with `x-podman.disable_dns: true`"
        ));
    }
    spec
}

/// A diagnostic for `x-podman…` keys of a top-level volume, which Magos does not
/// apply (podman-compose documents none).
fn top_x_podman(cx: &mut Ctx<'_>, kind: &str, key: &str, def: &TopObject) {
    for k in def.other.keys().filter(|k| k.starts_with("x-podman")) {
        cx.top_warn(format!("{kind} `{key}`: `{k}` is not applied by Magos"));
    }
}

/// The `uid`, `gid`, `mode` and `type: env` of a long-form secret reference.
type Owner = (Option<u32>, Option<u32>, Option<u32>, bool);

fn file_ref_owner(r: &FileRef) -> Result<Owner, String> {
    let FileRef::Long {
        uid,
        gid,
        mode,
        kind,
        ..
    } = r
    else {
        return Ok((None, None, None, false));
    };
    let id = |what: &str, v: &Option<Scalar>| -> Result<Option<u32>, String> {
        v.as_ref()
            .map(|v| {
                v.as_text()
                    .parse::<u32>()
                    .map_err(|_| format!("`{what}: {}` is not a number", v.as_text()))
            })
            .transpose()
    };
    let mode = match mode {
        None => None,
        // Written as text, the digits are octal (`"0440"`); YAML reads a bare
        // `0440` as octal and `440` as decimal, which compose takes as given.
        Some(Scalar::String(t)) => Some(
            u32::from_str_radix(t.trim_start_matches("0o"), 8)
                .map_err(|_| format!("`mode: {t}` is not an octal mode"))?,
        ),
        Some(other) => id("mode", &Some(other.clone()))?,
    };
    let as_env = match kind.as_deref() {
        None | Some("mount") => false,
        Some("env") => true,
        Some(other) => return Err(format!("`type: {other}` is not `mount` or `env`")),
    };
    Ok((id("uid", uid)?, id("gid", gid)?, mode, as_env))
}

/// A secret that is not a file: an `external` Podman secret (by `name:`, else
/// its key), or one whose value is in Magos's environment (`environment:`),
/// which the apply step stores as the Podman secret `<project>_<key>`.
fn podman_secret(
    project: &str,
    key: &str,
    target: Option<String>,
    top: &compose::TopFile,
) -> Option<PodmanSecretSpec> {
    let target = target.unwrap_or_else(|| key.to_owned());
    if top.external || (top.name.is_some() && top.environment.is_none()) {
        return Some(PodmanSecretSpec {
            source: top.name.clone().unwrap_or_else(|| key.to_owned()),
            target,
            from_env: None,
            uid: None,
            gid: None,
            mode: None,
            as_env: false,
        });
    }
    let var = top.environment.as_ref()?;
    Some(PodmanSecretSpec {
        source: top
            .name
            .clone()
            .unwrap_or_else(|| scoped_name(project, key)),
        target,
        from_env: Some(var.clone()),
        uid: None,
        gid: None,
        mode: None,
        as_env: false,
    })
}

/// `build:` as Magos builds it. The inputs digest is left empty: the edge that
/// reads the context fills it in.
fn build_spec(cx: &mut Ctx<'_>, name: &str, b: &compose::Build) -> Option<BuildSpec> {
    let long = match b {
        compose::Build::Short(c) => compose::BuildOptions {
            context: Some(c.clone()),
            ..Default::default()
        },
        compose::Build::Long(l) => (**l).clone(),
    };
    let context = long.context.as_deref().unwrap_or(".");
    if context.contains("://") || context.starts_with("git@") {
        cx.err(
            name,
            format!("`build.context` `{context}` is a remote context; Magos builds from a folder of the repository"),
        );
        return None;
    }
    let mut extra_hosts = Vec::new();
    match &long.extra_hosts {
        None => {}
        Some(ExtraHosts::List(l)) => {
            for e in l {
                match e.split_once('=').or_else(|| e.split_once(':')) {
                    Some((h, ip)) => extra_hosts.push(format!("{h}:{ip}")),
                    None => cx.err(name, format!("build.extra_hosts `{e}` is not `host:ip`")),
                }
            }
        }
        Some(ExtraHosts::Map(m)) => {
            for (h, ips) in m {
                let ips = match ips {
                    OneOrManyScalar::One(ip) => vec![ip.clone()],
                    OneOrManyScalar::Many(v) => v.clone(),
                };
                extra_hosts.extend(ips.iter().map(|ip| format!("{h}:{}", ip.as_text())));
            }
        }
    }
    Some(BuildSpec {
        context: resolve(cx.input.dir, context),
        dockerfile: long.dockerfile.clone(),
        args: key_values(long.args.as_ref()),
        target: long.target.clone(),
        labels: key_values(long.labels.as_ref()),
        network: long.network.clone(),
        extra_hosts,
        tags: long.tags.clone(),
        pull: long.pull,
        no_cache: long.no_cache,
        digest: String::new(),
        repository: String::new(),
    })
}

/// Points binds of encrypted files at their decrypted copies and records the
/// digest of every encrypted input the container depends on.
fn seal(input: &ConvertInput<'_>, spec: &mut ContainerSpec, mut digests: Vec<String>) {
    seal_binds(spec, input.encrypted, &mut digests);
    if let Some(d) = input.sealed_env {
        let holds_placeholder =
            serde_json::to_string(&*spec).is_ok_and(|json| super::interpolate::is_sealed(&json));
        if holds_placeholder {
            digests.push(d.to_owned());
        }
    }
    set_secret_digest(spec, digests);
}

/// Points the binds of `encrypted` files in `spec` at their decrypted copies,
/// adding each file's digest to `digests`.
fn seal_binds(
    spec: &mut ContainerSpec,
    encrypted: &BTreeMap<String, EncryptedMount>,
    digests: &mut Vec<String>,
) {
    for m in &mut spec.mounts {
        if let MountSpec::Bind { source, .. } = m
            && let Some(e) = encrypted.get(source.as_str())
        {
            *source = e.runtime_path.clone();
            digests.push(e.digest.clone());
        }
    }
}

fn set_secret_digest(spec: &mut ContainerSpec, mut digests: Vec<String>) {
    digests.sort();
    digests.dedup();
    if !digests.is_empty() {
        spec.secret_digest = Some(digests.join(","));
    }
}

/// Seals a converted stack's binds of SOPS-encrypted files, found only once
/// the binds were resolved: each is mounted from its decrypted copy and its
/// digest joins its container's `secret_digest`. The same spec as converting
/// with `encrypted` in the [`ConvertInput`], without converting twice.
pub fn seal_mounts(spec: &mut StackSpec, encrypted: &BTreeMap<String, EncryptedMount>) {
    if encrypted.is_empty() {
        return;
    }
    for container in &mut spec.services {
        let mut digests: Vec<String> = container
            .secret_digest
            .take()
            .map(|d| d.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        seal_binds(container, encrypted, &mut digests);
        set_secret_digest(container, digests);
    }
}

fn one_or_many(v: Option<&OneOrMany>) -> Vec<String> {
    match v {
        None => vec![],
        Some(OneOrMany::One(s)) => vec![s.clone()],
        Some(OneOrMany::Many(v)) => v.clone(),
    }
}

fn split_opts(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect()
}

fn dur(cx: &mut Ctx<'_>, service: &str, key: &str, text: &str) -> Option<Duration> {
    match duration::parse(text) {
        Ok(d) => Some(d),
        Err(e) => {
            cx.err(service, format!("{key} `{text}`: {e}"));
            None
        }
    }
}

fn argv(cx: &mut Ctx<'_>, service: &str, key: &str, c: &Command) -> Option<Vec<String>> {
    match c {
        Command::Exec(v) => Some(v.clone()),
        Command::Shell(s) => match shell_split(s) {
            Ok(v) => Some(v),
            Err(e) => {
                cx.err(service, format!("{key}: {e}"));
                None
            }
        },
    }
}

/// Splits a command line as a POSIX shell would split words (quotes and
/// backslashes; no expansion), as compose does for string commands.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unclosed single quote in `{s}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unclosed double quote in `{s}`")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unclosed double quote in `{s}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn healthcheck(cx: &mut Ctx<'_>, service: &str, h: &compose::Healthcheck) -> Option<HealthSpec> {
    let test = if h.disable {
        vec!["NONE".to_owned()]
    } else {
        match &h.test {
            Some(Command::Shell(s)) => vec!["CMD-SHELL".to_owned(), s.clone()],
            Some(Command::Exec(v)) => match v.first().map(String::as_str) {
                Some("CMD" | "CMD-SHELL" | "NONE") => v.clone(),
                _ => {
                    cx.err(
                        service,
                        "healthcheck `test` must start with CMD, CMD-SHELL or NONE".to_owned(),
                    );
                    return None;
                }
            },
            None => {
                // `healthcheck: {disable: false}` and timings without a `test`:
                // the image's check stays as it is.
                if h.interval.is_some()
                    || h.timeout.is_some()
                    || h.start_period.is_some()
                    || h.start_interval.is_some()
                    || h.retries.is_some()
                {
                    cx.warn(
                        service,
                        "healthcheck has timings but no `test`; the image's check is kept as it is"
                            .to_owned(),
                    );
                }
                return None;
            }
        }
    };
    let mut d = |key: &str, v: &Option<String>| v.as_deref().and_then(|t| dur(cx, service, key, t));
    Some(HealthSpec {
        test,
        interval: d("healthcheck interval", &h.interval),
        timeout: d("healthcheck timeout", &h.timeout),
        start_period: d("healthcheck start_period", &h.start_period),
        retries: h.retries,
        start_interval: d("healthcheck start_interval", &h.start_interval),
    })
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let one = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port number"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if b < a {
                return Err(format!("the port range `{s}` is reversed"));
            }
            Ok((a, b - a + 1))
        }
        None => Ok((one(s)?, 1)),
    }
}

/// One port in any compose form.
pub fn port(p: &Port) -> Result<PortSpec, String> {
    match p {
        Port::Short(s) => {
            let text = s.as_text();
            let (rest, protocol) = match text.rsplit_once('/') {
                Some((r, proto)) => (r.to_owned(), proto.to_owned()),
                None => (text.clone(), "tcp".to_owned()),
            };
            check_protocol(&protocol, &text)?;
            // An IPv6 host address is bracketed: `[::1]:8080:80`.
            let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
                let (ip, after) = r
                    .split_once(']')
                    .ok_or_else(|| format!("port `{text}`: unclosed `[`"))?;
                let after = after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("port `{text}` has no container port"))?;
                (ip.to_owned(), after.to_owned())
            } else {
                (String::new(), rest)
            };
            let parts: Vec<&str> = rest.split(':').collect();
            let (ip, host, container) = match (host_ip.is_empty(), parts.as_slice()) {
                (true, [c]) => (String::new(), "", *c),
                (true, [h, c]) => (String::new(), *h, *c),
                (true, [ip, h, c]) => ((*ip).to_owned(), *h, *c),
                (false, [h, c]) => (host_ip, *h, *c),
                _ => {
                    return Err(format!(
                        "port `{text}` is not `[ip:][host:]container[/proto]`"
                    ));
                }
            };
            let (cport, crange) =
                parse_range(container).map_err(|e| format!("port `{text}`: {e}"))?;
            let (hport, hrange) = if host.is_empty() {
                (0, crange)
            } else {
                parse_range(host).map_err(|e| format!("port `{text}`: {e}"))?
            };
            if hrange != crange {
                return Err(format!(
                    "port `{text}`: the host and container ranges differ in length"
                ));
            }
            Ok(PortSpec {
                host_ip: ip,
                host_port: hport,
                container_port: cport,
                range: crange,
                protocol,
            })
        }
        Port::Long {
            target,
            published,
            host_ip,
            protocol,
        } => {
            let protocol = protocol.clone().unwrap_or_else(|| "tcp".to_owned());
            check_protocol(&protocol, &target.to_string())?;
            let (hport, range) = match published {
                None => (0, 1),
                Some(p) => {
                    let text = p.as_text();
                    if text.is_empty() {
                        (0, 1)
                    } else {
                        let (h, r) =
                            parse_range(&text).map_err(|e| format!("port {target}: {e}"))?;
                        (h, r)
                    }
                }
            };
            if u32::from(*target) + u32::from(range) - 1 > u32::from(u16::MAX) {
                return Err(format!("port {target}: the range passes 65535"));
            }
            Ok(PortSpec {
                host_ip: host_ip.clone().unwrap_or_default(),
                host_port: hport,
                container_port: *target,
                range,
                protocol,
            })
        }
    }
}

fn check_protocol(p: &str, text: &str) -> Result<(), String> {
    match p {
        "tcp" | "udp" | "sctp" => Ok(()),
        _ => Err(format!("port `{text}`: unknown protocol `{p}`")),
    }
}

/// The mount options Podman's `--volume` takes besides `ro`/`rw`, as compose
/// files write them after the second colon.
const MOUNT_OPTIONS: &[&str] = &[
    "z",
    "Z",
    "U",
    "O",
    "nocopy",
    "copy",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "unbindable",
    "runbindable",
    "bind",
    "rbind",
    "exec",
    "noexec",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "idmap",
];

/// Propagation modes (`bind.propagation`).
const PROPAGATIONS: &[&str] = &[
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "unbindable",
    "runbindable",
];

/// The name podman-compose gives the volume of an anonymous mount:
/// `<project>_<service>_<sha256 of the target>`, so the same volume is mounted
/// again when the container is recreated.
pub fn anonymous_volume_name(project: &str, service: &str, target: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "{project}_{service}_{}",
        hex::encode(Sha256::digest(target.as_bytes()))
    )
}

/// A host path as written in a bind: `~` and `~/…` in the home of the user Magos
/// runs as, absolute as written, else relative to the stack's folder.
fn bind_source(input: &ConvertInput<'_>, source: &str) -> Result<String, String> {
    if source == "~" || source.starts_with("~/") {
        let home = input.home.ok_or_else(|| {
            format!("`{source}`: the home folder of the user Magos runs as is not known (set HOME)")
        })?;
        return Ok(resolve(
            home,
            source.trim_start_matches('~').trim_start_matches('/'),
        ));
    }
    if source.starts_with('~') {
        return Err(format!(
            "`{source}`: `~user` paths are not applied; write the absolute path"
        ));
    }
    Ok(resolve(input.dir, source))
}

/// Whether a bind source lies in the stack's folder (where a missing folder is
/// created, as compose creates it).
fn inside(dir: &str, path: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    // `resolve` keeps a leading `..` (`/repo/web/../x`): that is outside.
    let climbs = path.split('/').any(|c| c == "..");
    !climbs && (path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
}

/// Whether a missing bind source is created without being asked: inside the
/// stack's folder or the home folder of the user Magos runs as, never elsewhere
/// (a missing `/var/run/docker.sock` must not become a folder).
fn may_create(input: &ConvertInput<'_>, path: &str) -> bool {
    inside(input.dir, path) || input.home.is_some_and(|h| h != "/" && inside(h, path))
}

/// One mount in any compose form, with the volume an anonymous mount needs.
fn volume(
    input: &ConvertInput<'_>,
    loaded: &Loaded,
    service: &str,
    v: &Volume,
) -> Result<(MountSpec, Option<VolumeSpec>), String> {
    let named = |key: &str| -> Result<String, String> {
        let Some(def) = loaded.volume_defs.get(key) else {
            return Err(format!(
                "volume `{key}` is not declared at the top level `volumes:`"
            ));
        };
        Ok(match (&def.name, def.external) {
            (Some(n), _) => n.clone(),
            (None, true) => key.to_owned(),
            (None, false) => scoped_name(input.project, key),
        })
    };
    let anonymous = |target: &str| {
        let name = anonymous_volume_name(input.project, service, target);
        let spec = VolumeSpec {
            name: name.clone(),
            external: false,
            driver: None,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
        };
        (name, spec)
    };
    let is_path = |s: &str| s.starts_with('/') || s.starts_with('.') || s.starts_with('~');
    match v {
        Volume::Short(s) => {
            let parts: Vec<&str> = s.splitn(3, ':').collect();
            let (source, target, mode) = match parts.as_slice() {
                [t] => ("", *t, ""),
                // `/data:ro`: an anonymous volume with options.
                [t, m] if !m.starts_with('/') => ("", *t, *m),
                [s, t] => (*s, *t, ""),
                [s, t, m] => (*s, *t, *m),
                _ => return Err(format!("volume `{s}` is not `source:target[:mode]`")),
            };
            if !target.starts_with('/') {
                return Err(format!("volume `{s}`: the target must be an absolute path"));
            }
            // In the order written (a bind's options enter its hash as they are).
            let mut opts = Vec::new();
            for o in split_opts(mode) {
                match o.as_str() {
                    "rw" => {}
                    // Docker Desktop's file-sharing hints: nothing to do on Linux.
                    "consistent" | "cached" | "delegated" => {}
                    o if o == "ro" || MOUNT_OPTIONS.contains(&o) => opts.push(o.to_owned()),
                    other => {
                        return Err(format!(
                            "volume `{s}`: unknown option `{other}` (Podman takes ro, rw, {})",
                            MOUNT_OPTIONS.join(", ")
                        ));
                    }
                }
            }
            if is_path(source) {
                let path = bind_source(input, source).map_err(|e| format!("volume `{s}`: {e}"))?;
                Ok((
                    MountSpec::Bind {
                        create_host_path: may_create(input, &path),
                        source: path,
                        target: target.to_owned(),
                        options: opts,
                    },
                    None,
                ))
            } else {
                let read_only = opts.iter().any(|o| o == "ro");
                opts.retain(|o| o != "ro");
                let (name, anon) = if source.is_empty() {
                    let (n, spec) = anonymous(target);
                    (n, Some(spec))
                } else {
                    (named(source)?, None)
                };
                Ok((
                    MountSpec::Volume {
                        name,
                        target: target.to_owned(),
                        read_only,
                        options: opts,
                        subpath: None,
                    },
                    anon,
                ))
            }
        }
        Volume::Long {
            kind,
            source,
            target,
            read_only,
            bind,
            volume,
            tmpfs,
            consistency: _,
        } => {
            if !target.starts_with('/') {
                return Err(format!(
                    "volume `{target}`: the target must be an absolute path"
                ));
            }
            match kind.as_str() {
                "volume" => {
                    let v = volume.as_deref().cloned().unwrap_or_default();
                    let mut options = Vec::new();
                    if v.nocopy {
                        options.push("nocopy".to_owned());
                    }
                    if let Some(b) = bind {
                        options.extend(bind_options(target, b)?);
                    }
                    let (name, anon) = match source.as_deref().filter(|s| !s.is_empty()) {
                        Some(src) => (named(src)?, None),
                        None => {
                            let (n, spec) = anonymous(target);
                            (n, Some(spec))
                        }
                    };
                    Ok((
                        MountSpec::Volume {
                            name,
                            target: target.clone(),
                            read_only: *read_only,
                            options,
                            subpath: v.subpath.clone(),
                        },
                        anon,
                    ))
                }
                "bind" => {
                    let src = source
                        .as_ref()
                        .ok_or_else(|| format!("bind mount `{target}` has no source"))?;
                    let path = bind_source(input, src)
                        .map_err(|e| format!("bind mount `{target}`: {e}"))?;
                    let mut options = if *read_only {
                        vec!["ro".to_owned()]
                    } else {
                        vec![]
                    };
                    let b = bind.as_deref().cloned().unwrap_or_default();
                    options.extend(bind_options(target, &b)?);
                    Ok((
                        MountSpec::Bind {
                            // As the short syntax unless the file says:
                            // `create_host_path: true` anywhere Magos may write,
                            // `false` never.
                            create_host_path: match b.create_host_path {
                                Some(explicit) => explicit,
                                None => may_create(input, &path),
                            },
                            source: path,
                            target: target.clone(),
                            options,
                        },
                        None,
                    ))
                }
                "tmpfs" => {
                    let mut options = Vec::new();
                    if let Some(t) = tmpfs {
                        if let Some(size) = &t.size {
                            options.push(format!("size={}", size.as_text()));
                        }
                        if let Some(mode) = &t.mode {
                            options.push(format!("mode={}", tmpfs_mode(mode)));
                        }
                    }
                    if *read_only {
                        options.push("ro".to_owned());
                    }
                    Ok((
                        MountSpec::Tmpfs {
                            target: target.clone(),
                            options,
                        },
                        None,
                    ))
                }
                other => Err(format!(
                    "volume type `{other}` is not applied by Magos (it applies volume, bind and tmpfs)"
                )),
            }
        }
    }
}

/// The options of a long-syntax `bind:` block (`propagation`, `selinux`).
fn bind_options(target: &str, b: &compose::BindOptions) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    if let Some(p) = &b.propagation {
        if !PROPAGATIONS.contains(&p.as_str()) {
            return Err(format!(
                "volume `{target}`: `bind.propagation: {p}` is not one of {}",
                PROPAGATIONS.join(", ")
            ));
        }
        out.push(p.clone());
    }
    match b.selinux.as_deref() {
        None => {}
        Some(l @ ("z" | "Z")) => out.push(l.to_owned()),
        Some(other) => {
            return Err(format!(
                "volume `{target}`: `bind.selinux: {other}` is not `z` or `Z`"
            ));
        }
    }
    Ok(out)
}

/// A tmpfs mode as Podman takes it: octal digits. YAML reads `01777` or `1777`
/// as a number, written back here in octal when it was one (`0o1777` = 1023).
fn tmpfs_mode(mode: &Scalar) -> String {
    match mode {
        Scalar::Number(n) => match n.as_u64() {
            // A decimal number whose digits are all octal is what the user
            // meant as octal (`mode: 1777`).
            Some(v) if v.to_string().chars().all(|c| ('0'..='7').contains(&c)) => v.to_string(),
            Some(v) => format!("{v:o}"),
            None => n.to_string(),
        },
        other => other.as_text().trim_start_matches("0o").to_owned(),
    }
}

/// `driver_opts:` of a top-level network or volume, as text.
fn driver_opts(def: &TopObject) -> BTreeMap<String, String> {
    def.driver_opts
        .iter()
        .map(|(k, v)| (k.clone(), v.as_text()))
        .collect()
}

/// Drift of a stack applied by the compose CLI: no config hash exists there, so
/// only presence, the running state and the image digest are compared.
pub fn compose_cli_drift(stack: &StackSpec, observed: &Observed) -> Vec<DriftEntry> {
    let mut out = Vec::new();
    for spec in &stack.services {
        let found = observed
            .containers
            .iter()
            .filter(|c| {
                c.project() == Some(stack.project.as_str()) && c.service() == Some(&spec.service)
            })
            .max_by_key(|c| c.state == RunState::Running);
        let entry = |state, expected: Option<String>, actual: Option<String>| DriftEntry {
            stack: stack.project.clone(),
            service: Some(spec.service.clone()),
            state,
            expected,
            actual,
            container: found.map(|c| c.name.clone()),
        };
        out.push(match found {
            None => entry(DriftState::Missing, Some(spec.name.clone()), None),
            Some(c) if c.state != RunState::Running => entry(
                DriftState::Stopped,
                Some("running".to_owned()),
                Some(format!("{:?}", c.state).to_lowercase()),
            ),
            // An image the compose CLI builds has no digest to pin.
            Some(_) if spec.build.is_some() => entry(
                DriftState::InSync,
                Some("built".to_owned()),
                Some("built".to_owned()),
            ),
            Some(c) => match &spec.image.digest {
                None => entry(
                    DriftState::Unpinned,
                    Some(spec.image.reference.clone()),
                    c.image_digest.clone(),
                ),
                Some(pinned) => {
                    let runs = c.image_digest.as_deref() == Some(pinned.as_str())
                        || observed
                            .image_digests(&c.image_id)
                            .is_some_and(|d| d.contains(pinned.as_str()));
                    if runs {
                        entry(
                            DriftState::InSync,
                            Some(pinned.to_string()),
                            Some(pinned.to_string()),
                        )
                    } else {
                        entry(
                            DriftState::ImageDrift,
                            Some(pinned.to_string()),
                            c.image_digest.clone(),
                        )
                    }
                }
            },
        });
    }
    out
}

mod run;

/// The spec's image for an `image:` value as written (`repo:1.0@sha256:…`):
/// the same reading conversion gives it, so a value restored by a rollback
/// hashes as it did.
pub fn image_ref(value: &str) -> Result<ContainerImage, String> {
    let r = reference::ImageRef::parse(value).map_err(|e| e.to_string())?;
    let mut qualified = r.repository_key();
    if let Some(t) = r.effective_tag() {
        qualified.push(':');
        qualified.push_str(t);
    }
    Ok(ContainerImage {
        reference: value.to_owned(),
        qualified,
        digest: r.digest,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod storage_tests;
