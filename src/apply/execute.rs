//! Carries out a stack's plan through the libpod API, in the plan's order.
//!
//! A recreate first creates the replacement under a temporary name, so a spec
//! Podman refuses leaves the running container alone; only then is the old one
//! stopped and removed, the new one renamed and started. A crash at any point
//! leaves containers the next plan recognises (`core::observed::leftover`): a
//! leftover replacement that matches the spec is renamed into place (the old
//! container removed first if it is still there), one that does not is removed
//! (and the service recreated if it needs to be); a replacement renamed but not
//! started is a stopped service that is started.
//!
//! A service Podman refuses (its create, start or replacement fails) fails
//! alone: the services depending on it (`depends_on`, `network_mode:
//! service:…`) are not tried, the stack's other services are still applied, and
//! the stack's error names each failed service. An image that cannot be pulled
//! fails the services that run it (and their dependents) the same way. A
//! network or volume that fails stops the stack.
//!
//! An apply given a [`Stop`] stops at its next safe point once its flag is
//! raised (the daemon's SIGTERM/SIGINT): before an action, or while waiting for
//! a dependency. An action already under way, a replacement above all, is
//! carried out to its end. Progress is marked on the [`Progress`] it is given.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::core::plan::{Action, Removal, StackPlan, pull_reference};
use crate::core::spec::{
    ContainerSpec, DependencyCondition, LABEL_MANAGED, LABEL_PROJECT, LABEL_SERVICE, NetworkMode,
    StackSpec,
};
use crate::server::Liveness;

use super::backend::{Backend, Health};
pub use super::control::{Progress, Stop};
pub use super::error::ApplyError;
pub(crate) use super::error::error_chain;
use super::sealed::Unsealed;

/// What happened to one stack.
#[derive(Debug)]
pub struct StackResult {
    /// The stack's project.
    pub project: String,
    /// The actions carried out, as the plan prints them.
    pub done: Vec<String>,
    /// What failed: a stack-wide action (a pull, a network, a volume; later
    /// actions were not tried), or [`ApplyError::Services`], the services that
    /// failed and those depending on them, while the others were applied.
    pub error: Option<ApplyError>,
}

/// The first of `spec`'s dependencies (`depends_on`, `network_mode:
/// service:…`) that failed.
fn failed_dependency<'a>(spec: &'a ContainerSpec, failed: &BTreeSet<String>) -> Option<&'a str> {
    let network = match &spec.network_mode {
        NetworkMode::Service(target) => Some(target.as_str()),
        _ => None,
    };
    spec.depends_on
        .iter()
        .map(|d| d.service.as_str())
        .chain(network)
        .find(|d| failed.contains(*d))
}

fn fail<C: Backend>(action: &Action) -> impl FnOnce(C::Error) -> ApplyError + '_ {
    move |source| C::failed(action.to_string(), source)
}

/// The longest wait for a dependency to become healthy or complete.
const DEPENDENCY_LIMIT: Duration = Duration::from_secs(600);

/// Runs a stack's plan. `secrets` holds the values decrypted for it at apply
/// time (see [`super::sealed`]); progress is marked on `progress`, and once
/// `stop` is raised no further action starts.
pub async fn apply_stack<C: Backend>(
    client: &C,
    stack: &StackSpec,
    plan: &StackPlan,
    secrets: &Unsealed,
    progress: &Progress,
    stop: &Stop,
    display: PullDisplay,
) -> StackResult {
    let liveness = progress.liveness();
    let mut result = StackResult {
        project: stack.project.clone(),
        done: Vec::new(),
        error: None,
    };
    // Services that failed, or depend on one that did: skipped from then on.
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let mut failures: Vec<(String, ApplyError)> = Vec::new();
    for action in &plan.actions {
        progress.mark();
        if stop.requested() {
            tracing::warn!(stack = %stack.project, "stopping before {action}");
            result.error = Some(ApplyError::Stopped {
                action: action.to_string(),
            });
            break;
        }
        // A service whose image could not be built is not created either.
        if action.service().is_some_and(|s| failed.contains(s)) {
            continue;
        }
        if let Some(service) = action.service()
            && failed.contains(service)
        {
            // Already failed (its image could not be pulled, or another of its
            // containers was refused): reported once.
            continue;
        }
        if let Some(service) = action.service()
            && let Some(spec) = stack.services.iter().find(|s| s.service == service)
            && let Some(dependency) = failed_dependency(spec, &failed)
        {
            let e = ApplyError::Dependency {
                service: service.to_owned(),
                dependency: dependency.to_owned(),
                why: "failed".to_owned(),
            };
            tracing::error!(stack = %stack.project, error = %e, "{action}: not tried");
            failed.insert(service.to_owned());
            failures.push((service.to_owned(), e));
            continue;
        }
        let outcome = match action {
            Action::Pull { image } => pull(client, image, liveness, display)
                .await
                .map_err(fail::<C>(action)),
            Action::Build { service, .. } => {
                let Some(spec) = stack.services.iter().find(|s| &s.service == service) else {
                    continue;
                };
                client.build(spec, liveness, display).await
            }
            Action::CreateNetwork { name } => {
                let Some(net) = stack.networks.iter().find(|n| &n.name == name) else {
                    continue;
                };
                match client.create_network(stack, net).await {
                    Ok(_) => Ok(()),
                    Err(e) if C::conflict(&e) => Ok(()),
                    Err(e) => Err(fail::<C>(action)(e)),
                }
            }
            Action::CreateVolume { name } => {
                let Some(vol) = stack.volumes.iter().find(|v| &v.name == name) else {
                    continue;
                };
                match client.create_volume(stack, vol).await {
                    Ok(_) => Ok(()),
                    Err(e) if C::conflict(&e) => Ok(()),
                    Err(e) => Err(fail::<C>(action)(e)),
                }
            }
            Action::Create { service, name }
            | Action::Start { service, name }
            | Action::Recreate { service, name, .. } => {
                let Some(spec) = spec_for(stack, service, name) else {
                    continue;
                };
                async {
                    wait_for_dependencies(client, stack, spec, liveness, stop).await?;
                    match action {
                        Action::Create { .. } => {
                            create_and_start(client, stack, spec, name, secrets, action).await
                        }
                        Action::Start { .. } => client.start(name).await.map_err(fail::<C>(action)),
                        _ => replace(client, stack, spec, name, secrets, action).await,
                    }
                }
                .await
            }
            Action::FinishReplacement { service, name } => {
                let Some(spec) = spec_for(stack, service, name) else {
                    continue;
                };
                async {
                    wait_for_dependencies(client, stack, spec, liveness, stop).await?;
                    finish_replacement(client, stack, spec, name, action).await
                }
                .await
            }
            Action::RemoveLeftover { service, name } => {
                remove_if_ours(client, stack, service, name, 0, action).await
            }
            Action::Restart { service, name, .. } => {
                let timeout = spec_for(stack, service, name).map_or(10, stop_timeout);
                client
                    .restart(name, timeout)
                    .await
                    .map_err(fail::<C>(action))
            }
        };
        match outcome {
            Ok(()) => {
                tracing::info!(stack = %stack.project, "{action}");
                result.done.push(action.to_string());
            }
            Err(e) => {
                tracing::error!(stack = %stack.project, error = %error_chain(&e), "apply failed");
                if let Action::Pull { image } = action {
                    // An image that cannot be pulled fails the services that
                    // run it (and, later, their dependents); the others go on.
                    let cause = match &e {
                        ApplyError::Podman { source, .. } => error_chain(source),
                        ApplyError::Docker { source, .. } => error_chain(source),
                        other => error_chain(other),
                    };
                    let users: Vec<&ContainerSpec> = stack
                        .services
                        .iter()
                        .filter(|s| &pull_reference(&s.image) == image)
                        .collect();
                    if users.is_empty() {
                        result.error = Some(e);
                        break;
                    }
                    for spec in users {
                        if failed.insert(spec.service.clone()) {
                            failures.push((
                                spec.service.clone(),
                                ApplyError::Pull {
                                    image: image.clone(),
                                    cause: cause.clone(),
                                },
                            ));
                        }
                    }
                    continue;
                }
                match action.service() {
                    // A service Podman refuses fails alone (with its dependents).
                    Some(service) => {
                        failed.insert(service.to_owned());
                        failures.push((service.to_owned(), e));
                    }
                    None => {
                        result.error = Some(e);
                        break;
                    }
                }
            }
        }
    }
    if !failures.is_empty() {
        // A stack-wide failure or a stop came later; the services' failures
        // still name each service.
        if let Some(later) = result.error.take() {
            failures.push((stack.project.clone(), later));
        }
        result.error = Some(ApplyError::Services { failures });
    }
    result
}

/// The spec of the service's container `name` (one of its replicas), else the
/// service's first.
fn spec_for<'a>(stack: &'a StackSpec, service: &str, name: &str) -> Option<&'a ContainerSpec> {
    let mut mine = stack.services.iter().filter(|s| s.service == service);
    let first = mine.clone().next();
    mine.find(|s| s.name == name).or(first)
}

fn stop_timeout(spec: &ContainerSpec) -> u64 {
    spec.stop_grace_period.map_or(10, |d| d.as_secs())
}

pub use super::display::PullDisplay;

async fn pull<C: Backend>(
    client: &C,
    image: &str,
    liveness: Option<&Liveness>,
    display: PullDisplay,
) -> Result<(), C::Error> {
    tracing::info!(image, "pulling");
    let mut progress = |line: &str| {
        if let Some(l) = liveness {
            l.progress();
        }
        match display {
            PullDisplay::Log => tracing::info!(image, "{line}"),
            PullDisplay::Terminal => PullDisplay::rewrite(image, line),
        }
    };
    let result = client.pull(image, &mut progress).await;
    display.end();
    result.map(|_| ())
}

async fn create_and_start<C: Backend>(
    client: &C,
    stack: &StackSpec,
    spec: &ContainerSpec,
    name: &str,
    secrets: &Unsealed,
    action: &Action,
) -> Result<(), ApplyError> {
    prepare(client, stack, spec).await?;
    client.create(stack, spec, name, secrets, action).await?;
    client.start(name).await.map_err(fail::<C>(action))?;
    Ok(())
}

pub use crate::core::spec::replacement_name;

/// The host folders and environment secrets a container needs (see
/// [`super::prepare`]).
async fn prepare<C: Backend>(
    client: &C,
    stack: &StackSpec,
    spec: &ContainerSpec,
) -> Result<(), ApplyError> {
    for path in super::prepare::bind_sources(spec)? {
        tracing::info!(stack = %stack.project, service = %spec.service, "created the missing bind folder {path}");
    }
    client.prepare(stack, spec).await
}

async fn replace<C: Backend>(
    client: &C,
    stack: &StackSpec,
    spec: &ContainerSpec,
    name: &str,
    secrets: &Unsealed,
    action: &Action,
) -> Result<(), ApplyError> {
    let next = replacement_name(name);
    // A replacement left by an interrupted apply goes first.
    remove_if_ours(client, stack, &spec.service, &next, 0, action).await?;
    prepare(client, stack, spec).await?;
    client.create(stack, spec, &next, secrets, action).await?;
    let timeout = stop_timeout(spec);
    if let Err(e) = remove_if_ours(client, stack, &spec.service, name, timeout, action).await {
        // Leave the old container serving; drop the unused replacement.
        let _ = client.remove(&next, 0).await;
        return Err(e);
    }
    client
        .rename(&next, name)
        .await
        .map_err(fail::<C>(action))?;
    client.start(name).await.map_err(fail::<C>(action))?;
    Ok(())
}

/// The end of [`replace`], after an interrupted apply: the replacement exists
/// under its temporary name (the plan checked it matches the spec); the old
/// container may still be there.
async fn finish_replacement<C: Backend>(
    client: &C,
    stack: &StackSpec,
    spec: &ContainerSpec,
    name: &str,
    action: &Action,
) -> Result<(), ApplyError> {
    remove_if_ours(
        client,
        stack,
        &spec.service,
        name,
        stop_timeout(spec),
        action,
    )
    .await?;
    client
        .rename(&replacement_name(name), name)
        .await
        .map_err(fail::<C>(action))?;
    client.start(name).await.map_err(fail::<C>(action))?;
    Ok(())
}

/// Stops and removes a container if it exists and carries the labels of this
/// stack's `service`; a container under that name without them is refused.
async fn remove_if_ours<C: Backend>(
    client: &C,
    stack: &StackSpec,
    service: &str,
    name: &str,
    timeout: u64,
    action: &Action,
) -> Result<(), ApplyError> {
    let labels = match client.labels(name).await {
        Ok(labels) => labels,
        Err(e) if C::not_found(&e) => return Ok(()),
        Err(e) => return Err(fail::<C>(action)(e)),
    };
    let label = |key: &str| labels.get(key).map(String::as_str);
    if label(LABEL_PROJECT) != Some(stack.project.as_str())
        || label(LABEL_SERVICE).is_some_and(|s| s != service)
    {
        return Err(ApplyError::NotTheService {
            name: name.to_owned(),
            service: service.to_owned(),
            project: stack.project.clone(),
        });
    }
    let _ = client.stop(name, timeout).await;
    match client.remove(name, timeout).await {
        Ok(_) => Ok(()),
        Err(e) if C::not_found(&e) => Ok(()),
        Err(e) => Err(fail::<C>(action)(e)),
    }
}

async fn wait_for_dependencies<C: Backend>(
    client: &C,
    stack: &StackSpec,
    spec: &ContainerSpec,
    liveness: Option<&Liveness>,
    stop: &Stop,
) -> Result<(), ApplyError> {
    // Every container of the dependency (each of its replicas) must be ready.
    let mut targets: Vec<(&crate::core::spec::Dependency, &ContainerSpec)> = Vec::new();
    for dep in &spec.depends_on {
        for t in &stack.services {
            if t.service == dep.service {
                targets.push((dep, t));
            }
        }
    }
    for (dep, target) in targets {
        let fail = |why: String| ApplyError::Dependency {
            service: spec.service.clone(),
            dependency: dep.service.clone(),
            why,
        };
        let deadline = Instant::now() + DEPENDENCY_LIMIT;
        match dep.condition {
            DependencyCondition::ServiceStarted => {}
            DependencyCondition::ServiceHealthy => {
                if target.healthcheck.is_none() {
                    return Err(fail(
                        "has no healthcheck, so it can never be healthy".to_owned(),
                    ));
                }
                wait_healthy(client, &target.name, deadline, liveness, stop)
                    .await
                    .map_err(fail)?;
            }
            DependencyCondition::ServiceCompletedSuccessfully => {
                wait_completed(client, &target.name, deadline, liveness, stop)
                    .await
                    .map_err(fail)?;
            }
        }
    }
    Ok(())
}

/// Waits until a container reports healthy, running its healthcheck on demand:
/// rootless Podman schedules checks with systemd timers, which a host without a
/// user manager lacks.
/// The wait between polls of a dependency: 200 ms doubling to 2 s, until
/// `deadline`; each wait marks progress, since the loop is waiting on purpose.
struct Poll {
    pause: Duration,
    deadline: Instant,
}

impl Poll {
    fn until(deadline: Instant) -> Self {
        Self {
            pause: Duration::from_millis(200),
            deadline,
        }
    }

    /// Waits before the next poll, or fails once the deadline passed.
    async fn wait(
        &mut self,
        what: &str,
        liveness: Option<&Liveness>,
        stop: &Stop,
    ) -> Result<(), String> {
        if stop.requested() {
            return Err("is no longer awaited: magos is stopping".to_owned());
        }
        if Instant::now() >= self.deadline {
            return Err(format!(
                "did not {what} within {}s",
                DEPENDENCY_LIMIT.as_secs()
            ));
        }
        if let Some(l) = liveness {
            l.progress();
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_secs(2));
        Ok(())
    }
}

async fn wait_healthy<C: Backend>(
    client: &C,
    name: &str,
    deadline: Instant,
    liveness: Option<&Liveness>,
    stop: &Stop,
) -> Result<(), String> {
    let mut poll = Poll::until(deadline);
    loop {
        let state = client.state(name).await.map_err(|e| e.to_string())?;
        if !state.running {
            return Err(format!("is not running (exit code {})", state.exit_code));
        }
        match client.health(name).await {
            Ok(Health::Healthy) => return Ok(()),
            Ok(Health::NotYet) => {}
            Ok(Health::NoCheck) => return Err("has no healthcheck".to_owned()),
            Err(e) => return Err(e.to_string()),
        }
        poll.wait("become healthy", liveness, stop).await?;
    }
}

async fn wait_completed<C: Backend>(
    client: &C,
    name: &str,
    deadline: Instant,
    liveness: Option<&Liveness>,
    stop: &Stop,
) -> Result<(), String> {
    let mut poll = Poll::until(deadline);
    loop {
        let state = client.state(name).await.map_err(|e| e.to_string())?;
        if !state.running && !state.restarting && state.status != "created" {
            return if state.exit_code == 0 {
                Ok(())
            } else {
                Err(format!("exited with code {}", state.exit_code))
            };
        }
        poll.wait("complete", liveness, stop).await?;
    }
}

/// Removes orphaned containers. Each is checked again for a managed label first;
/// once `stop` is raised, no further one is removed.
pub async fn prune<C: Backend>(
    client: &C,
    removals: &[Removal],
    stop: &Stop,
) -> Vec<(String, Result<(), ApplyError>)> {
    let mut results = Vec::new();
    for r in removals {
        if stop.requested() {
            tracing::warn!(container = %r.name, "stopping: orphan left for the next apply");
            break;
        }
        let outcome = async {
            let labels = match client.labels(&r.id).await {
                Ok(l) => l,
                Err(e) if C::not_found(&e) => return Ok(()),
                Err(e) => return Err(C::failed(format!("remove {}", r.name), e)),
            };
            let ours = labels.contains_key(LABEL_PROJECT)
                || labels.get(LABEL_MANAGED).is_some_and(|v| v == "true");
            if !ours {
                return Err(ApplyError::NotManaged {
                    name: r.name.clone(),
                });
            }
            let _ = client.stop(&r.id, 10).await;
            match client.remove(&r.id, 10).await {
                Ok(_) => Ok(()),
                Err(e) if C::not_found(&e) => Ok(()),
                Err(e) => Err(C::failed(format!("remove {}", r.name), e)),
            }
        }
        .await;
        match &outcome {
            Ok(()) => tracing::info!(container = %r.name, reason = %r.reason, "removed orphan"),
            Err(e) => {
                tracing::error!(container = %r.name, error = %error_chain(e), "could not remove orphan")
            }
        }
        results.push((r.name.clone(), outcome));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podman::{Client, ClientOptions, RetryPolicy};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// A client with no socket behind it that gives up at once: any request
    /// fails with a Podman error.
    fn nowhere() -> Client {
        let options = ClientOptions {
            retry: RetryPolicy {
                initial: Duration::from_millis(1),
                max_delay: Duration::from_millis(1),
                budget: Duration::ZERO,
            },
            ..ClientOptions::default()
        };
        Client::new("/nonexistent/podman.sock", options)
    }

    fn stack() -> (StackSpec, StackPlan) {
        let spec = StackSpec {
            project: "p".into(),
            instance: "i".into(),
            working_dir: "/nowhere".into(),
            config_files: vec![],
            networks: vec![],
            volumes: vec![],
            services: vec![],
        };
        let plan = StackPlan {
            project: "p".into(),
            actions: vec![Action::Pull {
                image: "127.0.0.1:1/none:1".into(),
            }],
            error: None,
        };
        (spec, plan)
    }

    #[tokio::test]
    async fn a_raised_stop_starts_no_action() {
        let client = nowhere();
        let (spec, plan) = stack();
        let stop = Stop::on(Arc::new(AtomicBool::new(true)));
        let r = apply_stack(
            &client,
            &spec,
            &plan,
            &Unsealed::default(),
            &Progress::none(),
            &stop,
            PullDisplay::Log,
        )
        .await;
        assert!(r.done.is_empty());
        assert!(
            matches!(&r.error, Some(ApplyError::Stopped { action }) if action.contains("none:1")),
            "{:?}",
            r.error
        );
    }

    #[tokio::test]
    async fn without_a_raised_stop_the_action_runs() {
        let client = nowhere();
        let (spec, plan) = stack();
        let lowered = apply_stack(
            &client,
            &spec,
            &plan,
            &Unsealed::default(),
            &Progress::none(),
            &Stop::on(Arc::new(AtomicBool::new(false))),
            PullDisplay::Log,
        )
        .await;
        assert!(matches!(lowered.error, Some(ApplyError::Podman { .. })));
        let outside = apply_stack(
            &client,
            &spec,
            &plan,
            &Unsealed::default(),
            &Progress::none(),
            &Stop::never(),
            PullDisplay::Log,
        )
        .await;
        assert!(matches!(outside.error, Some(ApplyError::Podman { .. })));
    }
}
