//! A whole repository at once: read every stack, convert it, plan it against what
//! Podman runs, apply it (natively or through the compose CLI), prune, and report
//! drift. One stack that fails never stops the others.
//!
//! [`apply_repo`] is the one entry point for "apply the repository at DIR"; the
//! CLI and the daemon both call it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, Env};
use crate::core::convert::{self, ConvertInput, EnvFile, EnvInputs, Route};
use crate::core::diag::{Diagnostic, Severity};
use crate::core::drift::{DriftEntry, DriftState, drift};
use crate::core::interpolate;
use crate::core::observed::Observed;
use crate::core::plan::{Hold, Plan, PlanOptions, Removal, StackPlan, plan};
use crate::core::shape;
use crate::core::spec::StackSpec;
use crate::core::stacks::Selection;
use crate::repo::{self, RepoError};

use super::backend::Backend;
use super::compose_cli;
use super::execute::error_chain;
use super::execute::{Progress, PullDisplay, Stop, apply_stack, prune};
pub use super::prepared::{PrepareError, Prepared};
use super::sealed::{self, Sealed};
use crate::secrets::keys::{IdentityCache, KeySources};
use crate::secrets::runtime::RuntimeDir;

/// Why a repository could not be handled at all (a single stack's failure is in
/// the report instead).
#[derive(Debug, thiserror::Error)]
pub enum RepoApplyError {
    /// The repository could not be read.
    #[error("cannot read the repository {}", dir.display())]
    Repo {
        /// The repository folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: RepoError,
    },
    /// The container engine could not be asked what runs.
    #[error("cannot list what the container engine runs")]
    Observe(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The unit files of the `quadlet` runtime could not be read.
    #[error("cannot read the Quadlet unit files Magos wrote: {0}")]
    Units(String),
    /// `--stack` names no stack of the repository.
    #[error("no stack `{0}` in the repository (a project name or a stack folder)")]
    NoSuchStack(String),
}

/// How to handle the repository.
#[derive(Debug, Clone)]
pub struct RepoOptions {
    /// This Magos instance (the `io.magos.instance` label).
    pub instance: String,
    /// Remove orphaned containers of managed projects.
    pub prune: bool,
    /// Only this stack (its project name or its folder).
    pub stack: Option<String>,
    /// Stacks to leave alone this time (failing stacks backing off in the daemon).
    pub skip: BTreeSet<String>,
    /// Apply every stack with the compose CLI (`runtime: podman-compose`).
    pub compose_cli: bool,
    /// Run native stacks as Quadlet units (`runtime: quadlet`).
    pub quadlet: bool,
    /// Docker Engine (`runtime: docker`): containers named as `docker compose`
    /// names them, stacks the Docker mapping cannot express go to `docker
    /// compose`.
    pub docker: bool,
    /// How pull progress is shown.
    pub pull_display: PullDisplay,
    /// Which stacks the repository holds for this host.
    pub selection: Selection,
    /// The environment for interpolation and for the compose CLI.
    pub env: Env,
    /// Where the age identities that decrypt SOPS files come from.
    pub keys: KeySources,
    /// What a stack may ask of this host (`apply.allow`).
    pub trust: repo::Trust,
    /// The active compose profiles (`apply.profiles`, `COMPOSE_PROFILES`).
    pub profiles: Vec<String>,
}

impl RepoOptions {
    /// The options the configuration gives: its instance and prune setting, the
    /// stacks of `host` (every host's when `None`), the environment `env`.
    pub fn from_config(config: &Config, host: Option<String>, env: &Env) -> Self {
        Self {
            instance: config.apply.instance.as_str().to_owned(),
            prune: config.apply.prune,
            stack: None,
            skip: BTreeSet::new(),
            compose_cli: config.runtime == crate::config::Runtime::PodmanCompose,
            quadlet: config.runtime == crate::config::Runtime::Quadlet,
            docker: config.runtime == crate::config::Runtime::Docker,
            pull_display: PullDisplay::Log,
            selection: Selection {
                host,
                ..Selection::default()
            },
            env: env.clone(),
            keys: KeySources::from_env(env, config.secrets.age_key_file.as_deref()),
            trust: repo::Trust::from_config(config, env),
            profiles: config
                .apply
                .profiles
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
        }
    }
}

impl Default for RepoOptions {
    fn default() -> Self {
        Self {
            instance: crate::core::plan::DEFAULT_INSTANCE.to_owned(),
            prune: true,
            stack: None,
            skip: BTreeSet::new(),
            compose_cli: false,
            quadlet: false,
            docker: false,
            pull_display: PullDisplay::Log,
            selection: Selection::default(),
            env: Env::new(),
            keys: KeySources::default(),
            trust: repo::Trust::default(),
            profiles: Vec::new(),
        }
    }
}

/// This machine's host name, which selects its `hosts/<name>/` stacks.
pub fn this_host() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The repository's stacks, read and converted.
#[derive(Debug, Clone, Default)]
pub struct Repository {
    /// The stacks.
    pub stacks: Vec<Prepared>,
    /// Every diagnostic (warnings included).
    pub diagnostics: Vec<Diagnostic>,
    /// Stacks that could not even be named (no project): folder and reason.
    pub unnamed: Vec<(String, String)>,
    /// The folders (absolute) of the stacks that failed, named or not: their
    /// containers are kept whatever project they carry, since a file that cannot
    /// be read cannot say which project it was.
    pub failed_dirs: BTreeSet<String>,
}

impl Repository {
    /// Projects that must not lose containers to pruning: stacks routed to the
    /// compose CLI (Magos did not create their containers), stacks that failed
    /// (a broken file must not delete what runs) and observed stacks.
    fn protected(&self) -> BTreeSet<String> {
        self.stacks
            .iter()
            .filter(|s| s.error.is_some() || s.route != Route::Native || s.observe)
            .map(|s| s.project.clone())
            .collect()
    }

    /// The stacks marked `x-magos: {observe: true}`.
    fn observed(&self) -> Vec<String> {
        self.stacks
            .iter()
            .filter(|s| s.observe)
            .map(|s| s.project.clone())
            .collect()
    }

    fn natives(&self) -> Vec<StackSpec> {
        self.stacks
            .iter()
            .filter(|s| s.error.is_none() && s.route == Route::Native)
            .map(|s| s.spec.clone())
            .collect()
    }
}

/// Reads and converts the repository's stacks. `instance` labels the specs.
pub fn prepare(dir: &Path, options: &RepoOptions) -> Result<Repository, RepoApplyError> {
    prepare_known(dir, options, &BTreeMap::new())
}

/// [`prepare`], with the stack files whose text `known` holds (by path
/// relative to `dir`) taken from it rather than read again: the daemon's pin
/// pass read the stacks and wrote its pins into them, and its apply converts
/// that text (`repo::load_known`).
pub fn prepare_known(
    dir: &Path,
    options: &RepoOptions,
    known: &repo::Texts,
) -> Result<Repository, RepoApplyError> {
    let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let loaded =
        repo::load_known(&root, &options.selection, &options.env, known).map_err(|source| {
            RepoApplyError::Repo {
                dir: dir.to_path_buf(),
                source,
            }
        })?;
    prepare_loaded(&root, &loaded, options)
}

/// Converts the stacks of the repository at `root` (canonical), as
/// `repo::load` read them with `options.selection` and `options.env`: each
/// stack file is read once, for every command that reports on it.
pub fn prepare_loaded(
    root: &Path,
    loaded: &repo::RepoStacks,
    options: &RepoOptions,
) -> Result<Repository, RepoApplyError> {
    let root = root.to_path_buf();
    let runtime = RuntimeDir::from_env(&options.env).ok();
    // `~/` in a bind is the home of the user Magos runs as.
    let home = options
        .env
        .get("HOME")
        .map(String::as_str)
        .filter(|h| h.starts_with('/'));
    let mut out = Repository {
        diagnostics: loaded.diagnostics.clone(),
        ..Repository::default()
    };
    for stack in &loaded.stacks {
        let mut stack = stack.clone();
        // Services no active profile enables are not part of the stack.
        // The compose CLI gets the active profiles by name (`*` spelled out:
        // podman-compose does not know it).
        let cli_profiles = shape::named_profiles(&stack.loaded, &options.profiles);
        let disabled = shape::select_profiles(&mut stack.loaded, &options.profiles);
        if !disabled.is_empty() {
            tracing::debug!(stack = %stack.def.dir, services = ?disabled, "not enabled by the active profiles");
        }
        let diags = stack.loaded.diagnostics.clone();
        out.diagnostics.extend(diags);
        let abs_dir = if stack.def.dir == "." {
            root.clone()
        } else {
            root.join(&stack.def.dir)
        };
        let abs = abs_dir.to_string_lossy().into_owned();
        let load_error = stack.loaded.error.clone().map(PrepareError::Load);
        let Some(project) = stack.project.clone() else {
            out.failed_dirs.insert(abs);
            out.unnamed.push((
                stack.def.dir.clone(),
                load_error.map(|e| e.to_string()).unwrap_or_else(|| {
                    "the stack has no valid project name; set `name:` in its compose file"
                        .to_owned()
                }),
            ));
            continue;
        };
        // The host owner's trust boundary: a refusal fails the stack, on every
        // route, before anything of it is applied or pruned.
        let refused = repo::check_trust(&root, &stack, &loaded.texts, &options.trust);
        let mut sealed = Sealed::default();
        let env = read_env_files(&abs_dir, &stack.loaded, &mut sealed);
        for s in &stack.loaded.services {
            if let Some(service) = &s.service {
                sealed::service_env_files(
                    &mut sealed,
                    &s.name,
                    convert::service_env_files(service),
                );
            }
        }
        let dotenv = stack
            .def
            .env_file
            .as_ref()
            .and_then(|f| loaded.sealed_env.get(f).map(|e| (f, e)));
        if let Some((f, e)) = dotenv {
            sealed.set_dotenv(root.join(f), e.text.clone());
        }
        let config_files: Vec<String> = std::iter::once(stack.def.compose_file.clone())
            .chain(stack.loaded.compose_files.iter().cloned())
            .chain(stack.def.override_file.clone())
            .collect();
        let files = config_files.iter().map(|f| root.join(f)).collect();
        let no_mounts = BTreeMap::new();
        let input = ConvertInput {
            project: &project,
            instance: &options.instance,
            dir: &abs,
            config_files: config_files.clone(),
            env: &env,
            sealed_env: dotenv.map(|(_, e)| e.digest.as_str()),
            encrypted: &no_mounts,
            home,
        };
        let mut converted = convert::convert(&stack.loaded, &input);
        let mut error = load_error;
        // The binds of SOPS-encrypted files are known once the binds are
        // resolved: sealed in the converted spec, not converted again.
        let mounts = sealed::find_mounts(&converted.spec, runtime.as_ref(), &mut sealed);
        if let Ok(found) = &mounts {
            convert::seal_mounts(&mut converted.spec, found);
        }
        if error.is_some() {
            // Loading failed: what conversion says about the rest adds nothing.
        } else if let Some(first) = refused.first() {
            error = Some(PrepareError::Refused {
                first: first.clone(),
                more: refused.len() - 1,
            });
            out.diagnostics.extend(refused);
        } else if converted.route == Route::Native
            && let Some(first) = converted
                .diagnostics
                .iter()
                .find(|d| d.severity == Severity::Error)
        {
            error = Some(PrepareError::Invalid(first.clone()));
        } else if let Err(e) = mounts {
            error = Some(PrepareError::Sealed(e));
        }
        // `build:` services: the inputs digest, read from their contexts.
        if error.is_none()
            && converted.route == Route::Native
            && !options.compose_cli
            && let Err(e) = super::build::fill_digests(&mut converted.spec, &root)
        {
            error = Some(PrepareError::Build(e));
        }
        if converted.route == Route::Native && stack.loaded.error.is_none() {
            out.diagnostics
                .extend(converted.diagnostics.iter().cloned());
        }
        if stack.loaded.error.is_none() {
            out.diagnostics.extend(converted.notes.iter().cloned());
        }
        let route = match converted.route {
            Route::Native if options.compose_cli => Route::ComposeCli {
                keys: Vec::new(),
                explicit: true,
            },
            r => r,
        };
        let mut spec = converted.spec;
        let route = if options.docker {
            super::docker::route(&mut spec, route)
        } else {
            route
        };
        if options.docker && route == Route::Native && stack.loaded.error.is_none() {
            out.diagnostics.extend(docker_notes(&stack.loaded, &spec));
        }
        if route != Route::Native && error.is_none() && !sealed.is_empty() {
            error = Some(PrepareError::SealedThroughCli {
                files: sealed.files(&abs_dir),
            });
        }
        if error.is_some() {
            out.failed_dirs
                .insert(abs_dir.to_string_lossy().into_owned());
        }
        out.stacks.push(Prepared {
            dir: stack.def.dir.clone(),
            project,
            files,
            abs_dir,
            spec,
            route,
            error,
            sealed,
            observe: stack.loaded.observe,
            profiles: cli_profiles,
            sites: crate::core::quadlet::Sites::of(&stack.loaded),
            soak: stack
                .loaded
                .services
                .iter()
                .filter_map(|s| {
                    let options = s.service.as_ref()?.soak_options().ok()?;
                    Some((s.name.clone(), options))
                })
                .collect(),
        });
    }
    if let Some(want) = &options.stack {
        out.stacks.retain(|s| &s.project == want || &s.dir == want);
        if out.stacks.is_empty() {
            return Err(RepoApplyError::NoSuchStack(want.clone()));
        }
    }
    Ok(out)
}

/// The notes of a stack applied natively on Docker: each podman-compose
/// extension it uses, which Docker ignores as `docker compose` does.
fn docker_notes(loaded: &crate::core::compose::Loaded, spec: &StackSpec) -> Vec<Diagnostic> {
    use super::docker::Place;
    let first = || {
        loaded
            .positions
            .values()
            .next()
            .cloned()
            .unwrap_or_default()
    };
    super::docker::ignored(spec)
        .into_iter()
        .map(|(place, key)| {
            let ((file, pos), what) = match &place {
                Place::Service(name) => (
                    loaded.positions.get(name).cloned().unwrap_or_else(first),
                    format!("service `{name}`"),
                ),
                Place::Network(name) => (
                    loaded
                        .key_positions
                        .get(&format!("networks.{name}.{key}"))
                        .cloned()
                        .unwrap_or_else(first),
                    format!("network `{name}`"),
                ),
            };
            Diagnostic::note(
                &file,
                pos,
                format!("{what}: `{key}` is podman-compose's extension: Docker ignores it, as docker compose does"),
            )
        })
        .collect()
}

/// Reads the `env_file:`s of a stack: plain ones into variables, SOPS-encrypted
/// ones into their names and digest (recorded in `sealed`; decrypted only when
/// the stack is applied).
fn read_env_files(
    dir: &Path,
    loaded: &crate::core::compose::Loaded,
    sealed: &mut Sealed,
) -> EnvInputs {
    let mut inputs = EnvInputs::default();
    for rel in convert::env_file_paths(loaded) {
        let file = sealed::env_file(dir, &rel, sealed, |text| match interpolate::parse_env_file(
            text,
        ) {
            Ok(vars) => EnvFile::Plain(vars),
            Err((line, why)) => EnvFile::Unreadable(format!("line {line}: {why}")),
        });
        inputs.files.insert(rel, file);
    }
    inputs
}

/// What `plan` shows.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// Natively applied stacks, with their actions.
    pub stacks: Vec<StackPlan>,
    /// Stacks applied with the compose CLI.
    pub compose_cli: Vec<CliStack>,
    /// Containers to remove.
    pub prune: Vec<Removal>,
    /// Stacks that cannot be applied: (stack, reason).
    pub errors: Vec<StackError>,
    /// Stacks marked `x-magos: {observe: true}`, which are never applied.
    pub observed: Vec<String>,
    /// Diagnostics of the repository.
    pub diagnostics: Vec<Diagnostic>,
    /// Quadlet unit files to write, change or remove and units to restart or
    /// stop (`runtime: quadlet`, or units left from it under another runtime).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<crate::core::unitplan::UnitPlan>,
}

impl PlanReport {
    /// Whether nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.stacks
            .iter()
            .all(|s| s.actions.is_empty() && s.error.is_none())
            && self.units.is_empty()
            && self.compose_cli.is_empty()
            && self.prune.is_empty()
            && self.errors.is_empty()
    }
}

/// A stack handed to the compose CLI.
#[derive(Debug, Clone, Serialize)]
pub struct CliStack {
    /// The project.
    pub stack: String,
    /// The keys that need the CLI (empty when the stack asked for it).
    pub keys: Vec<String>,
}

/// A stack that failed.
#[derive(Debug, Clone, Serialize)]
pub struct StackError {
    /// The project (or folder, when it has no project).
    pub stack: String,
    /// Why.
    pub error: String,
}

fn errors_of(repo: &Repository) -> Vec<StackError> {
    repo.stacks
        .iter()
        .filter_map(|s| {
            s.error.as_ref().map(|e| StackError {
                stack: s.project.clone(),
                error: e.to_string(),
            })
        })
        .chain(repo.unnamed.iter().map(|(dir, e)| StackError {
            stack: dir.clone(),
            error: e.clone(),
        }))
        .collect()
}

fn make_plan(repo: &Repository, observed: &Observed, options: &RepoOptions) -> Plan {
    let natives = repo.natives();
    let mut p = plan(
        &natives,
        observed,
        PlanOptions {
            prune: options.prune,
            instance: &options.instance,
        },
    );
    let protected = repo.protected();
    let observed_stacks = repo.observed();
    let projects: BTreeSet<&str> = repo.stacks.iter().map(|s| s.project.as_str()).collect();
    let hold = Hold {
        protected: &protected,
        failed_dirs: &repo.failed_dirs,
        observed: &observed_stacks,
        only: options.stack.as_deref().map(|only| (only, &projects)),
    };
    hold.apply_to(&mut p, observed);
    p
}

fn cli_stacks(repo: &Repository) -> Vec<CliStack> {
    repo.stacks
        .iter()
        .filter(|s| s.error.is_none() && !s.observe)
        .filter_map(|s| match &s.route {
            Route::ComposeCli { keys, .. } => Some(CliStack {
                stack: s.project.clone(),
                keys: keys.clone(),
            }),
            Route::Native => None,
        })
        .collect()
}

/// Plans the repository at `dir` without changing anything.
pub async fn plan_repo<C: Backend>(
    client: &C,
    dir: &Path,
    options: &RepoOptions,
) -> Result<PlanReport, RepoApplyError> {
    let repo = prepare(dir, options)?;
    let observed = client
        .observe()
        .await
        .map_err(|e| RepoApplyError::Observe(Box::new(e)))?;
    let mut p = make_plan(&repo, &observed, options);
    let mut errors = errors_of(&repo);
    let units = units_of(&repo, options, &observed, &mut p, &mut errors)?;
    Ok(PlanReport {
        stacks: p.stacks,
        compose_cli: cli_stacks(&repo),
        prune: p.prune,
        errors,
        observed: repo.observed(),
        diagnostics: repo.diagnostics,
        units: units.plans,
    })
}

/// The `quadlet` runtime's side of a plan.
#[derive(Debug, Default)]
struct Units {
    /// The unit plans.
    plans: Vec<crate::core::unitplan::UnitPlan>,
    /// The units the repository generates (`runtime: quadlet` only).
    #[cfg(target_os = "linux")]
    desired: super::quadlet::Desired,
    /// Where they go.
    #[cfg(target_os = "linux")]
    dirs: Option<crate::systemd::units::UnitDirs>,
}

/// The unit plans (see [`super::quadlet::plans`]); under `quadlet`, the
/// container plan of a stack run by units keeps only what the API still does,
/// and a stack whose units cannot be generated is an error.
#[cfg(target_os = "linux")]
fn units_of(
    repo: &Repository,
    options: &RepoOptions,
    observed: &Observed,
    p: &mut Plan,
    errors: &mut Vec<StackError>,
) -> Result<Units, RepoApplyError> {
    use super::quadlet;
    // Quadlet units are Podman's: a Docker host has none to plan or retire.
    if options.docker {
        return Ok(Units::default());
    }
    let Some(dirs) = crate::systemd::units::UnitDirs::from_env(&options.env) else {
        if options.quadlet {
            return Err(RepoApplyError::Units(
                "neither XDG_CONFIG_HOME nor HOME is set, so there is no ~/.config/containers/systemd".to_owned(),
            ));
        }
        return Ok(Units::default());
    };
    let desired = if options.quadlet {
        let runtime = RuntimeDir::from_env(&options.env).ok();
        quadlet::desired(
            &repo.stacks,
            &options.instance,
            dirs.user(),
            runtime.as_ref(),
        )
    } else {
        quadlet::Desired::new()
    };
    let scope = quadlet::Scope {
        instance: &options.instance,
        skip: &options.skip,
        only: options.stack.as_deref(),
        unnamed: &repo.unnamed,
    };
    let plans = quadlet::plans(
        &repo.stacks,
        scope,
        &dirs,
        &desired,
        observed,
        p,
        options.quadlet,
    )
    .map_err(|e| RepoApplyError::Units(error_chain(&e)))?;
    for (stack, files) in &desired {
        if let Err(e) = files {
            errors.push(StackError {
                stack: stack.clone(),
                error: e.clone(),
            });
        }
    }
    if options.quadlet {
        for sp in &mut p.stacks {
            if desired.contains_key(&sp.project) {
                *sp = quadlet::api_part(sp);
            }
        }
        p.stacks
            .retain(|sp| desired.get(&sp.project).is_none_or(Result::is_ok));
    }
    Ok(Units {
        plans,
        desired,
        dirs: Some(dirs),
    })
}

#[cfg(not(target_os = "linux"))]
fn units_of(
    _repo: &Repository,
    options: &RepoOptions,
    _observed: &Observed,
    _p: &mut Plan,
    _errors: &mut Vec<StackError>,
) -> Result<Units, RepoApplyError> {
    if options.quadlet {
        return Err(RepoApplyError::Units(
            "the quadlet runtime needs systemd (Linux)".to_owned(),
        ));
    }
    Ok(Units::default())
}

/// What happened to one stack.
#[derive(Debug, Clone, Serialize)]
pub struct StackOutcome {
    /// The project.
    pub stack: String,
    /// `native` or `compose_cli`.
    pub route: &'static str,
    /// What was done.
    pub done: Vec<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// One orphan removal.
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    /// The container's name.
    pub container: String,
    /// Why the removal failed, if it did.
    pub error: Option<String>,
}

/// What `apply` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// One entry per stack.
    pub stacks: Vec<StackOutcome>,
    /// Orphans removed, or whose removal failed.
    pub pruned: Vec<Pruned>,
    /// Stacks marked `x-magos: {observe: true}`, left as they are.
    pub observed: Vec<String>,
    /// Diagnostics of the repository.
    pub diagnostics: Vec<Diagnostic>,
}

impl ApplyReport {
    /// Whether any stack or removal failed.
    pub fn failed(&self) -> bool {
        self.stacks.iter().any(|s| s.error.is_some())
            || self.pruned.iter().any(|p| p.error.is_some())
    }

    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.stacks.iter().any(|s| !s.done.is_empty()) || !self.pruned.is_empty()
    }
}

/// The outcome of a stack that could not be applied at all, logged.
fn not_applied(project: &str, error: &str) -> StackOutcome {
    tracing::error!(stack = %project, error = %error, "stack not applied");
    StackOutcome {
        stack: project.to_owned(),
        route: "native",
        done: vec![],
        error: Some(error.to_owned()),
    }
}

/// Applies the repository at `dir`: every stack converges (natively, or with the
/// compose CLI when it needs it), then orphans are pruned. A failing stack fails
/// alone; the report says which. Progress is marked on `progress` (each action,
/// each pulled layer); once `stop` is raised, no further action or orphan
/// removal starts.
pub async fn apply_repo<C: Backend>(
    client: &C,
    dir: &Path,
    options: &RepoOptions,
    progress: &Progress,
    stop: &Stop,
) -> Result<ApplyReport, RepoApplyError> {
    apply_prepared(client, &prepare(dir, options)?, options, progress, stop).await
}

/// [`apply_repo`] for a repository already read with [`prepare`] (with the same
/// `options`).
pub async fn apply_prepared<C: Backend>(
    client: &C,
    repo: &Repository,
    options: &RepoOptions,
    progress: &Progress,
    stop: &Stop,
) -> Result<ApplyReport, RepoApplyError> {
    let mut report = ApplyReport::default();
    // Under another runtime, the units Magos wrote go first (their containers
    // with them), so the API never meets a unit's container.
    #[cfg(target_os = "linux")]
    if !options.quadlet {
        let mut none = Plan::default();
        let units = units_of(
            repo,
            options,
            &Observed::default(),
            &mut none,
            &mut Vec::new(),
        )?;
        run_units(client, &units, &units.plans, &mut report).await;
    }
    let observed = client
        .observe()
        .await
        .map_err(|e| RepoApplyError::Observe(Box::new(e)))?;
    let mut p = make_plan(repo, &observed, options);
    let mut unit_errors = Vec::new();
    let units = units_of(repo, options, &observed, &mut p, &mut unit_errors)?;
    // Units of stacks the runtime no longer runs go before anything starts.
    #[cfg(target_os = "linux")]
    if options.quadlet {
        let retired: Vec<_> = units
            .plans
            .iter()
            .filter(|u| !units.desired.get(&u.stack).is_some_and(Result::is_ok))
            .cloned()
            .collect();
        run_units(client, &units, &retired, &mut report).await;
    }
    let mut report = ApplyReport {
        stacks: std::mem::take(&mut report.stacks),
        // Notes are for `lint` and `plan`; an apply reports what it did.
        diagnostics: repo
            .diagnostics
            .iter()
            .filter(|d| d.severity != Severity::Note)
            .cloned()
            .collect(),
        ..ApplyReport::default()
    };
    let runtime = RuntimeDir::from_env(&options.env).ok();
    let mut identities = IdentityCache::new();
    for stack in &repo.stacks {
        if options.skip.contains(&stack.project) {
            tracing::info!(stack = %stack.project, "stack skipped this pass (backing off after a failure, or not the stack a container event concerns)");
            continue;
        }
        if let Some(e) = &stack.error {
            report
                .stacks
                .push(not_applied(&stack.project, &e.to_string()));
            continue;
        }
        if stack.observe {
            tracing::info!(stack = %stack.project, "stack observed: reported, not applied");
            report.observed.push(stack.project.clone());
            continue;
        }
        match &stack.route {
            Route::Native => {
                let Some(sp) = p.stacks.iter().find(|s| s.project == stack.project) else {
                    if let Some(e) = unit_errors.iter().find(|e| e.stack == stack.project) {
                        report.stacks.push(not_applied(&stack.project, &e.error));
                    }
                    continue;
                };
                if let Some(e) = &sp.error {
                    report
                        .stacks
                        .push(not_applied(&stack.project, &e.to_string()));
                    continue;
                }
                #[cfg(target_os = "linux")]
                if options.quadlet {
                    let outcome = apply_units(
                        client,
                        stack,
                        sp,
                        &units,
                        runtime.as_ref(),
                        options,
                        progress,
                        stop,
                        &mut identities,
                    )
                    .await;
                    report.stacks.push(outcome);
                    continue;
                }
                // Decrypted just before use; one bad file fails its stack alone,
                // before anything is changed.
                let unsealed = match sealed::open(
                    &stack.project,
                    &stack.sealed,
                    runtime.as_ref(),
                    &options.keys,
                    &mut identities,
                ) {
                    Ok(u) => u,
                    Err(e) => {
                        report.stacks.push(not_applied(&stack.project, &e));
                        continue;
                    }
                };
                let r = apply_stack(
                    client,
                    &stack.spec,
                    sp,
                    &unsealed,
                    progress,
                    stop,
                    options.pull_display,
                )
                .await;
                report.stacks.push(StackOutcome {
                    stack: stack.project.clone(),
                    route: "native",
                    done: r.done,
                    error: r.error.map(|e| error_chain(&e)),
                });
            }
            Route::ComposeCli { keys, explicit } => {
                if *explicit {
                    tracing::info!(stack = %stack.project, "applying with the compose CLI, as the stack asks");
                } else {
                    tracing::info!(stack = %stack.project, keys = %keys.join(", "), "applying with the compose CLI: these keys are not applied natively");
                }
                let outcome = match C::compose_command(&options.env) {
                    Some(cmd) => client.compose_up(&cmd, stack, &options.env).await,
                    None if options.docker => Err(compose_cli::ComposeError::DockerNotFound),
                    None => Err(compose_cli::ComposeError::NotFound),
                };
                report.stacks.push(StackOutcome {
                    stack: stack.project.clone(),
                    route: "compose_cli",
                    done: if outcome.is_ok() {
                        vec![format!("{} up -d ({})", C::compose_name(), stack.project)]
                    } else {
                        vec![]
                    },
                    error: outcome.err().map(|e| error_chain(&e)),
                });
            }
        }
    }
    // A stopped unit removed its container already.
    let gone: BTreeSet<&str> = units
        .plans
        .iter()
        .flat_map(|u| &u.gone)
        .map(String::as_str)
        .collect();
    p.prune.retain(|r| !gone.contains(r.name.as_str()));
    for (name, outcome) in prune(client, &p.prune, stop).await {
        report.pruned.push(Pruned {
            container: name,
            error: outcome.err().map(|e| error_chain(&e)),
        });
    }
    // Decrypted files of stacks that left the repository go with them.
    if let Some(runtime) = &runtime
        && options.stack.is_none()
    {
        let keep = repo.stacks.iter().map(|s| s.project.clone()).collect();
        for gone in sealed::remove_gone(runtime, &keep) {
            tracing::info!(stack = %gone, "removed the decrypted files of a stack that left the repository");
        }
    }
    Ok(report)
}

/// Runs unit plans that stop and remove units (of stacks the runtime no longer
/// runs), each stack's outcome in the report.
#[cfg(target_os = "linux")]
async fn run_units<C: Backend>(
    client: &C,
    units: &Units,
    plans: &[crate::core::unitplan::UnitPlan],
    report: &mut ApplyReport,
) {
    let Some(dirs) = &units.dirs else { return };
    for plan in plans {
        let (done, error) = super::quadlet::run_plan(client, dirs, plan, None).await;
        if let Some(e) = &error {
            tracing::error!(stack = %plan.stack, error = %e, "could not remove the stack's units");
        } else {
            tracing::info!(stack = %plan.stack, "removed the stack's units");
        }
        report.stacks.push(StackOutcome {
            stack: plan.stack.clone(),
            route: "quadlet",
            done,
            error,
        });
    }
}

/// One native stack under `quadlet`: decrypt (the units' environment files
/// into the runtime folder), pull and create through the API what the units
/// need, then the stack's unit plan.
#[cfg(target_os = "linux")]
#[allow(clippy::too_many_arguments)] // each is a separate input of the stack's apply
async fn apply_units<C: Backend>(
    client: &C,
    stack: &Prepared,
    sp: &StackPlan,
    units: &Units,
    runtime: Option<&RuntimeDir>,
    options: &RepoOptions,
    progress: &Progress,
    stop: &Stop,
    identities: &mut IdentityCache,
) -> StackOutcome {
    use super::quadlet;
    let files = match units.desired.get(&stack.project) {
        Some(Ok(files)) => files,
        Some(Err(e)) => return not_applied(&stack.project, e),
        None => return not_applied(&stack.project, "no unit files were generated"),
    };
    let Some(dirs) = &units.dirs else {
        return not_applied(&stack.project, "there is no unit folder");
    };
    let keep = quadlet::env_files(&stack.spec);
    let unsealed = match sealed::open_keeping(
        &stack.project,
        &stack.sealed,
        runtime,
        &options.keys,
        identities,
        &keep,
    ) {
        Ok(u) => u,
        Err(e) => return not_applied(&stack.project, &e),
    };
    if let Err(e) = quadlet::write_env_files(runtime, &stack.spec, &unsealed) {
        return not_applied(&stack.project, &e);
    }
    let mut done = Vec::new();
    if !sp.actions.is_empty() {
        let r = apply_stack(
            client,
            &stack.spec,
            sp,
            &unsealed,
            progress,
            stop,
            options.pull_display,
        )
        .await;
        done = r.done;
        if let Some(e) = r.error {
            return StackOutcome {
                stack: stack.project.clone(),
                route: "quadlet",
                done,
                error: Some(error_chain(&e)),
            };
        }
    }
    let mut error = None;
    if let Some(plan) = units.plans.iter().find(|u| u.stack == stack.project) {
        let (d, e) = quadlet::run_plan(client, dirs, plan, Some(files)).await;
        done.extend(d);
        error = e;
    }
    if let Some(e) = &error {
        tracing::error!(stack = %stack.project, error = %e, "stack not fully applied");
    }
    StackOutcome {
        stack: stack.project.clone(),
        route: "quadlet",
        done,
        error,
    }
}

/// What `drift` found.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    /// One entry per service, plus orphans.
    pub entries: Vec<DriftEntry>,
    /// Stacks that could not be compared.
    pub errors: Vec<StackError>,
}

impl DriftReport {
    /// Whether anything drifted.
    pub fn drifted(&self) -> bool {
        self.entries.iter().any(|e| e.state.is_drift())
    }
}

/// Compares every stack of the repository at `dir` with what runs.
pub async fn drift_repo<C: Backend>(
    client: &C,
    dir: &Path,
    options: &RepoOptions,
) -> Result<DriftReport, RepoApplyError> {
    drift_prepared(client, &prepare(dir, options)?, options).await
}

/// [`drift_repo`] for a repository already read with [`prepare`] (with the same
/// `options`).
pub async fn drift_prepared<C: Backend>(
    client: &C,
    repo: &Repository,
    options: &RepoOptions,
) -> Result<DriftReport, RepoApplyError> {
    let observed = client
        .observe()
        .await
        .map_err(|e| RepoApplyError::Observe(Box::new(e)))?;
    let natives = repo.natives();
    let protected = repo.protected();
    let hold = Hold {
        protected: &protected,
        failed_dirs: &repo.failed_dirs,
        observed: &[],
        only: None,
    };
    let mut entries: Vec<DriftEntry> = drift(&natives, &observed, &options.instance)
        .into_iter()
        .filter(|e| {
            let container = e
                .container
                .as_deref()
                .and_then(|name| observed.containers.iter().find(|c| c.name == name));
            !(e.state == DriftState::Orphan && hold.keeps(container, &e.stack))
        })
        .map(|mut e| {
            // In sync means the container's image has the pinned digest among its
            // digests (an index's and its manifest's): show the pinned one.
            if e.state == DriftState::InSync && e.expected.is_some() {
                e.actual = e.expected.clone();
            }
            e
        })
        .collect();
    if options.stack.is_some() {
        let projects: BTreeSet<&str> = repo.stacks.iter().map(|s| s.project.as_str()).collect();
        entries.retain(|e| projects.contains(e.stack.as_str()));
    }
    for stack in &repo.stacks {
        if stack.error.is_none() && stack.route != Route::Native {
            entries.extend(convert::compose_cli_drift(&stack.spec, &observed));
        }
    }
    let mut errors = errors_of(repo);
    // Unit files that differ from what the repository generates.
    let mut p = make_plan(repo, &observed, options);
    let units = units_of(repo, options, &observed, &mut p, &mut errors)?;
    #[cfg(target_os = "linux")]
    if let Some(dirs) = &units.dirs {
        super::quadlet::drift_entries(
            dirs,
            &units.plans,
            &units.desired,
            &repo.stacks,
            &mut entries,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = units;
    Ok(DriftReport { entries, errors })
}
