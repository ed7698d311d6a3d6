//! Carries out a stack's plan through a [`Backend`] (libpod, Docker Engine): the
//! stack-wide actions in the plan's order, then the services' containers, those
//! that do not need each other at the same time (see [`apply_stack`]).
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

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::core::plan::{Action, Removal, StackPlan, pull_reference};
use crate::core::spec::{
    ContainerSpec, DependencyCondition, LABEL_MANAGED, LABEL_PROJECT, LABEL_SERVICE, NetworkMode,
    SharedNamespace, StackSpec,
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

/// How many services' containers are created, started or replaced at once.
pub const PARALLEL_SERVICES: usize = 8;

/// Whether `action` acts on one service's containers (the second phase of
/// [`apply_stack`]), not on the stack's images, networks or volumes.
fn is_container_action(action: &Action) -> bool {
    matches!(
        action,
        Action::Create { .. }
            | Action::Start { .. }
            | Action::Recreate { .. }
            | Action::FinishReplacement { .. }
            | Action::RemoveLeftover { .. }
            | Action::Restart { .. }
    )
}

/// The services `service`'s containers need before theirs start: its
/// `depends_on`, and the services whose network, PID or IPC namespace it joins.
fn needs<'a>(stack: &'a StackSpec, service: &str) -> BTreeSet<&'a str> {
    let mut out = BTreeSet::new();
    for spec in stack.services.iter().filter(|s| s.service == service) {
        out.extend(spec.depends_on.iter().map(|d| d.service.as_str()));
        if let NetworkMode::Service(target) = &spec.network_mode {
            out.insert(target.as_str());
        }
        for ns in [&spec.run.pid, &spec.run.ipc] {
            if let Some(SharedNamespace::Service(target)) = ns {
                out.insert(target.as_str());
            }
        }
    }
    out.remove(service);
    out
}

/// The fixed host ports (`port/protocol`) `service`'s containers publish.
fn host_ports(stack: &StackSpec, service: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for spec in stack.services.iter().filter(|s| s.service == service) {
        for p in spec.ports.iter().filter(|p| p.host_port != 0) {
            for i in 0..p.range.max(1) {
                out.insert(format!(
                    "{}/{}",
                    u32::from(p.host_port) + u32::from(i),
                    p.protocol
                ));
            }
        }
    }
    out
}

/// Runs a stack's plan. `secrets` holds the values decrypted for it at apply
/// time (see [`super::sealed`]); progress is marked on `progress`, and once
/// `stop` is raised no further action starts.
///
/// First the stack-wide actions (pulls, builds, networks, volumes), one after
/// the other in the plan's order; then the services' container actions: each
/// service's in the plan's order, services that do not need each other (see
/// [`needs`]) at the same time, up to [`PARALLEL_SERVICES`], a service only once
/// every service it needs is done (so `service_healthy` and
/// `service_completed_successfully` waits still see their dependency's
/// container). What was done and what failed are reported in the plan's order,
/// whatever order the services finished in.
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
    // By the index of the action in the plan, for a report in the plan's order.
    let mut failures: Vec<(usize, String, ApplyError)> = Vec::new();
    let mut done: Vec<(usize, String)> = Vec::new();
    let mut stopped: Option<usize> = None;
    for (index, action) in plan.actions.iter().enumerate() {
        if is_container_action(action) {
            continue;
        }
        progress.mark();
        if stop.requested() {
            stopped = Some(index);
            break;
        }
        // A service whose image could not be built is not created either.
        if action.service().is_some_and(|s| failed.contains(s)) {
            continue;
        }
        let Some(outcome) =
            run_action(client, stack, action, secrets, liveness, stop, display).await
        else {
            continue;
        };
        match outcome {
            Ok(()) => {
                tracing::info!(stack = %stack.project, "{action}");
                done.push((index, action.to_string()));
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
                                index,
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
                    // A service whose image cannot be built fails alone (with
                    // its dependents).
                    Some(service) => {
                        failed.insert(service.to_owned());
                        failures.push((index, service.to_owned(), e));
                    }
                    None => {
                        result.error = Some(e);
                        break;
                    }
                }
            }
        }
    }
    if result.error.is_none() && stopped.is_none() {
        let run = ServiceRun {
            stack,
            secrets,
            progress,
            stop,
            display,
        };
        run.services(
            client,
            plan,
            &mut failed,
            &mut failures,
            &mut done,
            &mut stopped,
        )
        .await;
    }
    done.sort_by_key(|(i, _)| *i);
    result.done = done.into_iter().map(|(_, d)| d).collect();
    if let Some(i) = stopped {
        let action = plan.actions[i].to_string();
        tracing::warn!(stack = %stack.project, "stopping before {action}");
        result.error = Some(ApplyError::Stopped { action });
    }
    if !failures.is_empty() {
        // A stack-wide failure or a stop came later; the services' failures
        // still name each service.
        failures.sort_by_key(|(i, _, _)| *i);
        let mut failures: Vec<(String, ApplyError)> =
            failures.into_iter().map(|(_, s, e)| (s, e)).collect();
        if let Some(later) = result.error.take() {
            failures.push((stack.project.clone(), later));
        }
        result.error = Some(ApplyError::Services { failures });
    }
    result
}

/// What every service's actions share in the second phase of [`apply_stack`].
struct ServiceRun<'a> {
    stack: &'a StackSpec,
    secrets: &'a Unsealed,
    progress: &'a Progress,
    stop: &'a Stop,
    display: PullDisplay,
}

/// What one service's actions gave: per action (by its index in the plan)
/// its outcome, and the index of the first action a stop kept from starting.
type ServiceOutcome = (Vec<(usize, Result<(), ApplyError>)>, Option<usize>);

impl ServiceRun<'_> {
    /// Runs the container actions of the plan, service by service, services
    /// that do not need each other concurrently.
    async fn services<C: Backend>(
        &self,
        client: &C,
        plan: &StackPlan,
        failed: &mut BTreeSet<String>,
        failures: &mut Vec<(usize, String, ApplyError)>,
        done: &mut Vec<(usize, String)>,
        stopped: &mut Option<usize>,
    ) {
        use futures_util::StreamExt as _;

        // Each service's actions, services in the order of their first action.
        let mut pending: Vec<(&str, Vec<(usize, &Action)>)> = Vec::new();
        for (index, action) in plan.actions.iter().enumerate() {
            let Some(service) = action.service().filter(|_| is_container_action(action)) else {
                continue;
            };
            match pending.iter_mut().find(|(s, _)| *s == service) {
                Some((_, list)) => list.push((index, action)),
                None => pending.push((service, vec![(index, action)])),
            }
        }
        // A service waits only for the services of this plan it needs: the
        // others are as the plan left them. Services publishing the same host
        // port take turns in the plan's order (one-shot containers that exit
        // at once can share it that way, as they do one after the other).
        let in_plan: BTreeSet<&str> = pending.iter().map(|(s, _)| *s).collect();
        let mut waits_for: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (i, (s, _)) in pending.iter().enumerate() {
            let mut n = needs(self.stack, s);
            n.retain(|d| in_plan.contains(d));
            let mine = host_ports(self.stack, s);
            for (earlier, _) in &pending[..i] {
                if !mine.is_disjoint(&host_ports(self.stack, earlier)) {
                    n.insert(earlier);
                }
            }
            waits_for.insert(s, n);
        }
        let mut running = futures_util::stream::FuturesUnordered::new();
        loop {
            // Start every service whose needs are done, in the plan's order.
            let mut i = 0;
            while i < pending.len() && running.len() < PARALLEL_SERVICES {
                let ready = waits_for[pending[i].0].is_empty()
                    // Needs in a cycle (the plan refuses them): in order.
                    || (running.is_empty() && i == 0 && !pending.iter().any(|(s, _)| waits_for[s].is_empty()));
                if !ready {
                    i += 1;
                    continue;
                }
                let (service, actions) = pending.remove(i);
                if stopped.is_some() || self.stop.requested() {
                    let first = actions[0].0;
                    *stopped = Some(stopped.map_or(first, |s| s.min(first)));
                    continue;
                }
                if failed.contains(service) {
                    // Its image could not be pulled or built: reported once.
                    for w in waits_for.values_mut() {
                        w.remove(service);
                    }
                    i = 0;
                    continue;
                }
                let dependency = self
                    .stack
                    .services
                    .iter()
                    .filter(|s| s.service == service)
                    .find_map(|spec| failed_dependency(spec, failed));
                if let Some(dependency) = dependency {
                    let e = ApplyError::Dependency {
                        service: service.to_owned(),
                        dependency: dependency.to_owned(),
                        why: "failed".to_owned(),
                    };
                    tracing::error!(stack = %self.stack.project, error = %e, "{}: not tried", actions[0].1);
                    failed.insert(service.to_owned());
                    failures.push((actions[0].0, service.to_owned(), e));
                    for w in waits_for.values_mut() {
                        w.remove(service);
                    }
                    // A service it unblocked may come before it: look again.
                    i = 0;
                    continue;
                }
                running.push(self.service(client, service, actions));
            }
            let Some((service, (outcomes, stop))) = running.next().await else {
                if pending.is_empty() {
                    break;
                }
                continue;
            };
            if let Some(s) = stop {
                *stopped = Some(stopped.map_or(s, |x| x.min(s)));
            }
            for (index, outcome) in outcomes {
                let action = &plan.actions[index];
                match outcome {
                    Ok(()) => {
                        tracing::info!(stack = %self.stack.project, "{action}");
                        done.push((index, action.to_string()));
                    }
                    Err(e) => {
                        tracing::error!(stack = %self.stack.project, error = %error_chain(&e), "apply failed");
                        // A service the engine refuses fails alone (with its
                        // dependents).
                        failed.insert(service.to_owned());
                        failures.push((index, service.to_owned(), e));
                    }
                }
            }
            for w in waits_for.values_mut() {
                w.remove(service);
            }
        }
    }

    /// One service's actions, in the plan's order, until one fails or a stop
    /// is asked for.
    async fn service<'s, C: Backend>(
        &self,
        client: &C,
        service: &'s str,
        actions: Vec<(usize, &Action)>,
    ) -> (&'s str, ServiceOutcome) {
        let mut outcomes = Vec::new();
        for (index, action) in actions {
            self.progress.mark();
            if self.stop.requested() {
                return (service, (outcomes, Some(index)));
            }
            let Some(outcome) = run_action(
                client,
                self.stack,
                action,
                self.secrets,
                self.progress.liveness(),
                self.stop,
                self.display,
            )
            .await
            else {
                continue;
            };
            let failed = outcome.is_err();
            outcomes.push((index, outcome));
            if failed {
                break;
            }
        }
        (service, (outcomes, None))
    }
}

/// Carries out one action; `None` when the stack has nothing it names.
async fn run_action<C: Backend>(
    client: &C,
    stack: &StackSpec,
    action: &Action,
    secrets: &Unsealed,
    liveness: Option<&Liveness>,
    stop: &Stop,
    display: PullDisplay,
) -> Option<Result<(), ApplyError>> {
    Some(match action {
        Action::Pull { image } => {
            // The platform a service running the image asks for (`platform:`).
            let platform = stack
                .services
                .iter()
                .filter(|s| &pull_reference(&s.image) == image)
                .find_map(|s| s.run.platform.as_deref());
            pull(client, image, platform, liveness, display)
                .await
                .map_err(fail::<C>(action))
        }
        Action::Build { service, .. } => {
            let spec = stack.services.iter().find(|s| &s.service == service)?;
            client.build(spec, liveness, display).await
        }
        Action::CreateNetwork { name } => {
            let net = stack.networks.iter().find(|n| &n.name == name)?;
            match client.create_network(stack, net).await {
                Ok(_) => Ok(()),
                Err(e) if C::conflict(&e) => Ok(()),
                Err(e) => Err(fail::<C>(action)(e)),
            }
        }
        Action::CreateVolume { name } => {
            let vol = stack.volumes.iter().find(|v| &v.name == name)?;
            match client.create_volume(stack, vol).await {
                Ok(_) => Ok(()),
                Err(e) if C::conflict(&e) => Ok(()),
                Err(e) => Err(fail::<C>(action)(e)),
            }
        }
        Action::Create { service, name }
        | Action::Start { service, name }
        | Action::Recreate { service, name, .. } => {
            let spec = spec_for(stack, service, name)?;
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
            let spec = spec_for(stack, service, name)?;
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
    })
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
    platform: Option<&str>,
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
    let result = client.pull(image, platform, &mut progress).await;
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
