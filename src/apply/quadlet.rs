//! The `quadlet` runtime's executor: the same plan as the API's, carried out by
//! systemd. Per stack: images are pulled (and built), networks and volumes made
//! through the API as for the `podman` runtime; the stack's unit files are
//! checked with Podman's generator (dry run, on a staged copy), written
//! atomically, the manager reloaded, containers another runtime made for the
//! stack removed, and only the units whose file changed or whose container is
//! missing or out of date restarted, dependencies first. Units of stacks that
//! left the repository (or, under another runtime, every unit Magos wrote) are
//! stopped, which removes their containers, and their files deleted.
//!
//! Only files whose header names this instance are read as Magos's
//! ([`crate::core::unitplan::instance_of`]); others are never touched.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::convert::Route;
use crate::core::drift::{DriftEntry, DriftState};
use crate::core::observed::Observed;
use crate::core::plan::{Action, Plan, StackPlan};
use crate::core::quadlet::{self as convert, secret_variables, stack_units};
use crate::core::unitplan::{self, Change, UnitPlan, container_of, service_of};
use crate::secrets::runtime::RuntimeDir;
use crate::systemd::units::{Systemctl, UnitDirs, UnitError};

use super::execute::error_chain;
use super::prepared::Prepared;
use super::sealed::{self, Unsealed};

/// Per stack, its unit files as the repository generates them (name → text,
/// headers included), or why they cannot be generated.
pub type Desired = BTreeMap<String, Result<BTreeMap<String, String>, String>>;

/// What of the repository an apply touches.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// This Magos instance.
    pub instance: &'a str,
    /// Stacks left alone this time (backing off).
    pub skip: &'a BTreeSet<String>,
    /// `--stack`: only that stack (the stacks given are then just it).
    pub only: Option<&'a str>,
    /// Stacks that could not be named (their folders).
    pub unnamed: &'a [(String, String)],
}

/// The units of every stack the runtime runs: native, loaded, not observed.
/// A container's decrypted variables are read from `<runtime>/<stack>/<container>.env`.
pub fn desired(
    stacks: &[Prepared],
    instance: &str,
    user: bool,
    runtime: Option<&RuntimeDir>,
) -> Desired {
    stacks
        .iter()
        .filter(|s| s.error.is_none() && s.route == Route::Native && !s.observe)
        .map(|s| {
            let mut options = convert::Options {
                scope: if user {
                    convert::Scope::User
                } else {
                    convert::Scope::System
                },
                ..convert::Options::default()
            };
            if let Some(dir) = runtime.and_then(|r| r.stack_dir(&s.project).ok()) {
                for c in s
                    .spec
                    .services
                    .iter()
                    .filter(|c| !secret_variables(c).is_empty())
                {
                    let path = dir.join(sealed::unit_env_name(&c.name));
                    options
                        .secret_env_files
                        .insert(c.name.clone(), path.display().to_string());
                }
            }
            let files = match stack_units(&s.spec, &s.sites, &options) {
                Ok(units) => Ok(units
                    .into_iter()
                    .map(|u| {
                        let text = unitplan::with_header(instance, &s.project, &u.contents);
                        (u.name, text)
                    })
                    .collect()),
                Err(diags) => Err(match diags.as_slice() {
                    [one] => format!("cannot be run as Quadlet units: {one}"),
                    [first, rest @ ..] => format!(
                        "cannot be run as Quadlet units: {first} (and {} more)",
                        rest.len()
                    ),
                    [] => "cannot be run as Quadlet units".to_owned(),
                }),
            };
            (s.project.clone(), files)
        })
        .collect()
}

/// This instance's unit files on disk, per stack.
fn ours(
    dirs: &UnitDirs,
    instance: &str,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, UnitError> {
    let mut all = dirs.read_all()?;
    for files in all.values_mut() {
        files.retain(|_, text| unitplan::instance_of(text) == Some(instance));
    }
    all.retain(|_, files| !files.is_empty());
    Ok(all)
}

/// Stacks whose units are left as they are: failed or observed stacks (a
/// broken file must not stop what runs), stacks backing off, and with
/// `--stack` every other stack.
fn held(stacks: &[Prepared], scope: Scope<'_>) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = stacks
        .iter()
        .filter(|s| s.error.is_some() || s.observe || scope.skip.contains(&s.project))
        .map(|s| s.project.clone())
        .collect();
    out.extend(scope.unnamed.iter().map(|(dir, _)| dir.clone()));
    out
}

/// The containers of a stack the container plan would create, start or
/// replace.
fn stale(sp: Option<&StackPlan>) -> BTreeSet<String> {
    sp.into_iter()
        .flat_map(|sp| &sp.actions)
        .filter_map(|a| match a {
            Action::Create { name, .. }
            | Action::Start { name, .. }
            | Action::Recreate { name, .. }
            | Action::FinishReplacement { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// The unit plans: under `quadlet` (`run`), one per stack the repository
/// generates units for plus one per stack whose units must go; under another
/// runtime, one per stack whose units must go. Stacks whose units cannot be
/// generated are in `desired` as errors and get no plan.
pub fn plans(
    stacks: &[Prepared],
    scope: Scope<'_>,
    dirs: &UnitDirs,
    desired: &Desired,
    observed: &Observed,
    plan: &Plan,
    run: bool,
) -> Result<Vec<UnitPlan>, UnitError> {
    let disk = ours(dirs, scope.instance)?;
    let held = held(stacks, scope);
    let in_repo: BTreeSet<&str> = stacks.iter().map(|s| s.project.as_str()).collect();
    let selected = |stack: &str| match scope.only {
        // With --stack only that stack is touched; `repo.stacks` holds just it.
        Some(_) => in_repo.contains(stack),
        None => true,
    };
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    if run {
        for (stack, files) in desired {
            let Ok(files) = files else { continue };
            if held.contains(stack) {
                continue;
            }
            let have = disk.get(stack).unwrap_or(&empty);
            let sp = plan.stacks.iter().find(|s| &s.project == stack);
            let elsewhere = unitplan::made_elsewhere(stack, files, observed);
            let p = unitplan::plan_stack(stack, files, have, &stale(sp), elsewhere);
            if !p.is_empty() {
                out.push(p);
            }
        }
    }
    for (stack, files) in &disk {
        let wanted = run && desired.get(stack).is_some_and(Result::is_ok);
        let failed = run && desired.get(stack).is_some_and(Result::is_err);
        if wanted || failed || held.contains(stack) || !selected(stack) {
            continue;
        }
        out.push(unitplan::retire_stack(stack, files));
    }
    Ok(out)
}

/// The container-plan actions the API still carries out under `quadlet`:
/// pulls and builds, so a restart finds its image present (networks and
/// volumes are the units' own).
pub fn api_part(sp: &StackPlan) -> StackPlan {
    StackPlan {
        project: sp.project.clone(),
        actions: sp
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Pull { .. } | Action::Build { .. }))
            .cloned()
            .collect(),
        error: sp.error.clone(),
    }
}

/// The runtime files a stack's units read (their environment files), kept when
/// the stack's decrypted files are tidied.
pub fn env_files(stack: &crate::core::spec::StackSpec) -> BTreeSet<String> {
    stack
        .services
        .iter()
        .filter(|c| !secret_variables(c).is_empty())
        .map(|c| sealed::unit_env_name(&c.name))
        .collect()
}

/// Writes each container's decrypted variables where its unit reads them.
pub fn write_env_files(
    runtime: Option<&RuntimeDir>,
    stack: &crate::core::spec::StackSpec,
    unsealed: &Unsealed,
) -> Result<(), String> {
    for c in &stack.services {
        let names = secret_variables(c);
        if names.is_empty() {
            continue;
        }
        let Some(runtime) = runtime else {
            return Err("the stack has SOPS-encrypted variables, which its units read from the private runtime folder, but XDG_RUNTIME_DIR is not set".to_owned());
        };
        let mut vars = BTreeMap::new();
        for name in names {
            let value = match unsealed.env.get(&c.service).and_then(|e| e.get(&name)) {
                Some(v) => v.clone(),
                None => {
                    let text = c.environment.get(&name).cloned().unwrap_or_default();
                    crate::core::interpolate::unseal(&text, &unsealed.vars)
                        .map_err(|e| format!("service `{}`: {e}", c.service))?
                }
            };
            vars.insert(name, value);
        }
        let written = sealed::write_unit_env(runtime, &stack.project, &c.name, &vars);
        for v in vars.values_mut() {
            zeroize::Zeroize::zeroize(v);
        }
        written?;
    }
    Ok(())
}

/// Carries out one stack's unit plan: validate, stop what goes, write, reload,
/// remove containers another runtime made, restart in order. Returns what was
/// done, and the first failure (later steps of the stack are not tried,
/// except that a failed unit does not keep the next ones from restarting).
pub async fn run_plan<C: super::backend::Backend>(
    client: &C,
    dirs: &UnitDirs,
    plan: &UnitPlan,
    desired: Option<&BTreeMap<String, String>>,
) -> (Vec<String>, Option<String>) {
    let ctl = Systemctl::for_dirs(dirs);
    let mut done = Vec::new();
    let writes = plan.files.iter().any(|f| f.change != Change::Remove);
    if writes && let Some(files) = desired {
        let (d, s, f) = (dirs.clone(), plan.stack.clone(), files.clone());
        match blocking(move || crate::systemd::units::validate(&d, &s, &f)).await {
            Ok(warnings) => {
                for w in warnings {
                    tracing::warn!(stack = %plan.stack, "{w}");
                }
            }
            Err(e) => return (done, Some(e)),
        }
    }
    if !plan.stop.is_empty() {
        let (c, units) = (ctl.clone(), plan.stop.clone());
        if let Err(e) = blocking(move || c.stop(&units)).await {
            return (done, Some(e));
        }
        done.extend(plan.stop.iter().map(|u| format!("stop {u}")));
    }
    for f in &plan.files {
        let result = match (f.change, desired.and_then(|d| d.get(&f.file))) {
            (Change::Remove, _) => dirs.remove(&plan.stack, &f.file),
            (_, Some(text)) => dirs.write(&plan.stack, &f.file, text),
            (_, None) => continue,
        };
        if let Err(e) = result {
            return (done, Some(error_chain(&e)));
        }
        done.push(f.to_string());
    }
    // Reloaded when files changed, and before any (re)start: a pass that wrote
    // the files and failed before its reload leaves units the manager does
    // not know yet.
    if !plan.files.is_empty() || !plan.start.is_empty() || !plan.restart.is_empty() {
        let c = ctl.clone();
        if let Err(e) = blocking(move || c.daemon_reload()).await {
            return (done, Some(e));
        }
    }
    for name in &plan.replace {
        match client.remove(name, 10).await {
            Ok(()) => done.push(format!("remove container {name} (made by another runtime)")),
            Err(e) => return (done, Some(error_chain(&e))),
        }
    }
    for unit in &plan.start {
        let (c, u) = (ctl.clone(), unit.clone());
        match blocking(move || c.start(&u)).await {
            Ok(()) => done.push(format!("start {unit}")),
            Err(e) => return (done, Some(e)),
        }
    }
    let mut failed = Vec::new();
    for unit in &plan.restart {
        let (c, u) = (ctl.clone(), unit.clone());
        match blocking(move || c.restart(&u)).await {
            Ok(()) => done.push(format!("restart {unit}")),
            Err(e) => failed.push(e),
        }
    }
    let error = (!failed.is_empty()).then(|| failed.join("; "));
    (done, error)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, UnitError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| error_chain(&e)),
        Err(e) => Err(e.to_string()),
    }
}

/// The unit plans as drift: a unit file the repository would write or change
/// is `config_drift` of its service (or a line of its own for a file that runs
/// no container), one to remove an orphan, a container another runtime made
/// `config_drift`. A service already reported as drifted keeps its state.
pub fn drift_entries(
    dirs: &UnitDirs,
    plans: &[UnitPlan],
    desired: &Desired,
    stacks: &[Prepared],
    entries: &mut Vec<DriftEntry>,
) {
    let mut orphans = Vec::new();
    let mut mark = |stack: &str, container: Option<&str>, expected: String, actual: String| {
        let service = container.and_then(|c| {
            stacks
                .iter()
                .find(|s| s.project == stack)
                .and_then(|s| s.spec.services.iter().find(|x| x.name == c))
                .map(|x| x.service.clone())
        });
        if let Some(e) = entries.iter_mut().find(|e| {
            e.stack == stack
                && service.is_some()
                && e.service == service
                && e.container.as_deref() == container
        }) {
            if !e.state.is_drift() || e.state == DriftState::Unpinned {
                e.state = DriftState::ConfigDrift;
                e.expected = Some(expected);
                e.actual = Some(actual);
            }
            return;
        }
        entries.push(DriftEntry {
            stack: stack.to_owned(),
            service,
            state: DriftState::ConfigDrift,
            expected: Some(expected),
            actual: Some(actual),
            container: container.map(str::to_owned),
        });
    };
    for p in plans {
        let files = desired.get(&p.stack).and_then(|r| r.as_ref().ok());
        for f in &p.files {
            let path = dirs.stack_dir(&p.stack).join(&f.file).display().to_string();
            match f.change {
                Change::Remove => orphans.push(DriftEntry {
                    stack: p.stack.clone(),
                    service: None,
                    state: DriftState::Orphan,
                    expected: None,
                    actual: Some(path),
                    container: None,
                }),
                change => {
                    let container = files
                        .and_then(|d| d.get(&f.file))
                        .and_then(|t| container_of(t));
                    let actual = if change == Change::Write {
                        format!("{path} is missing")
                    } else {
                        format!("{path} differs")
                    };
                    mark(
                        &p.stack,
                        container,
                        format!("unit file {} as the repository generates it", f.file),
                        actual,
                    );
                }
            }
        }
        for c in &p.replace {
            mark(
                &p.stack,
                Some(c),
                format!(
                    "started by {}",
                    service_of(&format!("{c}.container")).unwrap_or_default()
                ),
                "created by another runtime".to_owned(),
            );
        }
    }
    entries.extend(orphans);
}

#[cfg(test)]
mod tests;
