//! Planning: `plan(desired, observed) -> Plan`, a pure function. The plan is a
//! list of closed [`Action`]s per stack, in the order they must run, plus the
//! orphans to prune. Executing it is the apply edge's business.
//!
//! A stack whose plan cannot be made (a dependency cycle, a missing dependency, a
//! container name taken by something Magos does not manage) gets an error and no
//! actions; the other stacks are planned as usual.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt;

use serde::Serialize;

use super::observed::{
    Assessment, Observed, ObservedContainer, ObservedObject, RunState, Stale, assess, leftover,
    orphans,
};
use super::spec::{
    ContainerImage, ContainerSpec, LABEL_WORKING_DIR, NetworkMode, NetworkSpec, PullPolicy,
    SharedNamespace, StackSpec,
};

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Pull an image (by digest when pinned).
    Pull {
        /// What to pull.
        image: String,
    },
    /// Build a service's image (`build:`): none with its inputs digest is
    /// present.
    Build {
        /// The service.
        service: String,
        /// The name the image is tagged with.
        image: String,
    },
    /// Create a network the stack declares.
    CreateNetwork {
        /// Its name.
        name: String,
    },
    /// Create a named volume the stack declares.
    CreateVolume {
        /// Its name.
        name: String,
    },
    /// Create and start a service's container.
    Create {
        /// The service.
        service: String,
        /// The container's name.
        name: String,
    },
    /// Start a stopped container that matches its spec.
    Start {
        /// The service.
        service: String,
        /// The container's name.
        name: String,
    },
    /// Replace a container: stop, remove, create, start.
    Recreate {
        /// The service.
        service: String,
        /// The container's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Finish a replacement an interrupted apply left half-done: stop and
    /// remove the old container if it is still there, rename the replacement
    /// (`<name>_magos-next`, which matches the spec) into place and start it.
    FinishReplacement {
        /// The service.
        service: String,
        /// The container's name.
        name: String,
    },
    /// Remove a replacement an interrupted apply left (`<name>_magos-next`) that
    /// is not needed: the service's container runs as specified, or the
    /// replacement is out of date.
    RemoveLeftover {
        /// The service.
        service: String,
        /// The leftover's name.
        name: String,
    },
    /// Restart a container that must follow a recreated dependency.
    Restart {
        /// The service.
        service: String,
        /// The container's name.
        name: String,
        /// Why.
        reason: String,
    },
}

impl Action {
    /// The service an action is about, if any.
    pub fn service(&self) -> Option<&str> {
        match self {
            Action::Create { service, .. }
            | Action::Start { service, .. }
            | Action::Recreate { service, .. }
            | Action::FinishReplacement { service, .. }
            | Action::RemoveLeftover { service, .. }
            | Action::Restart { service, .. }
            | Action::Build { service, .. } => Some(service),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Pull { image } => write!(f, "pull {image}"),
            Action::Build { service, image } => write!(f, "build {image} (service {service})"),
            Action::CreateNetwork { name } => write!(f, "create network {name}"),
            Action::CreateVolume { name } => write!(f, "create volume {name}"),
            Action::Create { name, .. } => write!(f, "create {name}"),
            Action::Start { name, .. } => write!(f, "start {name}"),
            Action::Recreate { name, reason, .. } => write!(f, "recreate {name} ({reason})"),
            Action::FinishReplacement { name, .. } => write!(
                f,
                "finish replacing {name} (an interrupted apply left its replacement)"
            ),
            Action::RemoveLeftover { name, .. } => {
                write!(f, "remove {name} (left by an interrupted apply)")
            }
            Action::Restart { name, reason, .. } => write!(f, "restart {name} ({reason})"),
        }
    }
}

/// The plan of one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackPlan {
    /// The project.
    pub project: String,
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// Why the stack cannot be planned; then `actions` is empty.
    pub error: Option<PlanError>,
}

/// Why a stack cannot be planned. It renders (and serialises) as the sentence
/// the plan reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A dependency (`depends_on`, `network_mode: service:…`) names a service
    /// the stack does not have.
    #[error("service `{service}` depends on `{dependency}`, which is not in stack `{project}`")]
    UnknownDependency {
        /// The service that depends.
        service: String,
        /// The service named.
        dependency: String,
        /// The stack.
        project: String,
    },
    /// Services depend on each other in a cycle.
    #[error("services depend on each other in a cycle: {}", .services.join(", "))]
    Cycle {
        /// The services in or behind the cycle.
        services: Vec<String>,
    },
    /// An `external: true` network does not exist.
    #[error(
        "external network `{0}` does not exist; create it (`podman network create {0}`) or drop `external: true` so Magos creates it"
    )]
    MissingNetwork(String),
    /// An `external: true` volume does not exist.
    #[error(
        "external volume `{0}` does not exist; create it (`podman volume create {0}`) or drop `external: true` so Magos creates it"
    )]
    MissingVolume(String),
    /// A network exists with other subnets than the file fixes.
    #[error(
        "network `{network}` exists with subnet {have} but the compose file sets {want}; Magos does not recreate a network its containers use: stop them and remove it (`podman network rm {network}`) to have it created again, or set the file back"
    )]
    Subnets {
        /// The network.
        network: String,
        /// The subnets the file fixes.
        want: String,
        /// The subnets Podman has.
        have: String,
    },
    /// A container of the stack's name is not the stack's.
    #[error(
        "a container named `{container}` exists and is not part of stack `{project}`; Magos will not touch it (rename or remove it)"
    )]
    Foreign {
        /// The container's name.
        container: String,
        /// The stack.
        project: String,
    },
    /// The name a replacement is created under is taken by another container.
    #[error(
        "a container named `{container}` exists and is not a replacement Magos left for service `{service}` of stack `{project}`; Magos will not touch it (rename or remove it)"
    )]
    ReplacementTaken {
        /// The container holding the name.
        container: String,
        /// The service being replaced.
        service: String,
        /// The stack.
        project: String,
    },
}

impl Serialize for PlanError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A container to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its project.
    pub project: String,
    /// Its service label, if any.
    pub service: Option<String>,
    /// Why.
    pub reason: String,
}

/// A whole plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// One entry per desired stack, in the given order.
    pub stacks: Vec<StackPlan>,
    /// Orphaned containers to remove (empty when pruning is off).
    pub prune: Vec<Removal>,
}

impl Plan {
    /// Whether nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.stacks
            .iter()
            .all(|s| s.actions.is_empty() && s.error.is_none())
            && self.prune.is_empty()
    }
}

/// Planning options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions<'a> {
    /// Remove orphaned containers of managed projects.
    pub prune: bool,
    /// This Magos instance: leftovers of deleted stacks are pruned only when it
    /// created them.
    pub instance: &'a str,
}

impl Default for PlanOptions<'_> {
    fn default() -> Self {
        Self {
            prune: true,
            instance: DEFAULT_INSTANCE,
        }
    }
}

/// The instance name when none is configured.
pub const DEFAULT_INSTANCE: &str = "default";

/// Plans every stack against what Podman reports.
pub fn plan(stacks: &[StackSpec], observed: &Observed, options: PlanOptions<'_>) -> Plan {
    let stack_plans = stacks.iter().map(|s| plan_stack(s, observed)).collect();
    let prune = if options.prune {
        let desired: BTreeSet<&str> = stacks.iter().map(|s| s.project.as_str()).collect();
        orphans(stacks, observed, options.instance)
            .into_iter()
            .map(|c| {
                let project = c.project().unwrap_or_default().to_owned();
                let reason = match c.service() {
                    _ if !desired.contains(project.as_str()) => {
                        format!("stack `{project}` is no longer in the repository")
                    }
                    Some(service)
                        if stacks.iter().any(|s| {
                            s.project == project && s.services.iter().any(|x| x.service == service)
                        }) =>
                    {
                        let count = stacks
                            .iter()
                            .filter(|s| s.project == project)
                            .flat_map(|s| &s.services)
                            .filter(|x| x.service == service)
                            .count();
                        if usize::try_from(c.number()).is_ok_and(|n| n > count) {
                            format!("service `{service}` runs {count} container(s) now")
                        } else {
                            format!("a second container for service `{service}`")
                        }
                    }
                    Some(service) => {
                        format!("service `{service}` is no longer in stack `{project}`")
                    }
                    None => format!("a container of stack `{project}` without a service"),
                };
                Removal {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    project,
                    service: c.service().map(str::to_owned),
                    reason,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    Plan {
        stacks: stack_plans,
        prune,
    }
}

/// A network the file gives fixed subnets (`ipam.config`) must have them: Podman
/// cannot change a network's subnets, and recreating it would cut off every
/// container on it, so a difference fails the stack's plan, naming both and
/// the way out. Networks without fixed subnets keep whatever Podman chose.
fn subnets_match(net: &NetworkSpec, found: &ObservedObject) -> Result<(), PlanError> {
    match subnet_difference(net, found) {
        None => Ok(()),
        Some((want, have)) => Err(PlanError::Subnets {
            network: net.name.clone(),
            want,
            have,
        }),
    }
}

/// The subnets a network's file fixes and the ones Podman has (each a sorted,
/// comma-separated list), when they differ; `None` when they are equal or the
/// file fixes none.
pub fn subnet_difference(net: &NetworkSpec, found: &ObservedObject) -> Option<(String, String)> {
    if net.subnets.is_empty() || net.external {
        return None;
    }
    let want: BTreeSet<&str> = net.subnets.iter().map(|s| s.subnet.as_str()).collect();
    let have: BTreeSet<&str> = found.subnets.iter().map(String::as_str).collect();
    let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");
    (want != have).then(|| (list(&want), list(&have)))
}

/// The image reference to pull: by digest when pinned.
pub fn pull_reference(image: &ContainerImage) -> String {
    match &image.digest {
        Some(d) => format!("{}@{d}", image.qualified),
        None => image.qualified.clone(),
    }
}

fn plan_stack(stack: &StackSpec, observed: &Observed) -> StackPlan {
    match try_plan_stack(stack, observed) {
        Ok(actions) => StackPlan {
            project: stack.project.clone(),
            actions,
            error: None,
        },
        Err(error) => StackPlan {
            project: stack.project.clone(),
            actions: Vec::new(),
            error: Some(error),
        },
    }
}

fn try_plan_stack(stack: &StackSpec, observed: &Observed) -> Result<Vec<Action>, PlanError> {
    let order = start_order(stack)?;
    let mut actions = Vec::new();

    for net in &stack.networks {
        let found = observed.networks.iter().find(|n| n.name == net.name);
        match (found, net.external) {
            (None, true) => {
                return Err(PlanError::MissingNetwork(net.name.clone()));
            }
            (None, false) => actions.push(Action::CreateNetwork {
                name: net.name.clone(),
            }),
            (Some(found), false) => subnets_match(net, found)?,
            (Some(_), true) => {}
        }
    }
    for vol in &stack.volumes {
        let exists = observed.volumes.iter().any(|v| v.name == vol.name);
        match (exists, vol.external) {
            (false, true) => {
                return Err(PlanError::MissingVolume(vol.name.clone()));
            }
            (false, false) => actions.push(Action::CreateVolume {
                name: vol.name.clone(),
            }),
            (true, _) => {}
        }
    }

    // A service's containers (several with `scale`/`deploy.replicas`), in
    // number order.
    let mut by_name: BTreeMap<&str, Vec<&ContainerSpec>> = BTreeMap::new();
    for s in &stack.services {
        by_name.entry(s.service.as_str()).or_default().push(s);
    }
    let mut service_actions = Vec::new();
    let mut replaced: BTreeSet<&str> = BTreeSet::new();
    let mut pulls: Vec<String> = Vec::new();
    let mut builds: Vec<(String, String)> = Vec::new();
    for (name, spec) in order
        .into_iter()
        .flat_map(|name| by_name[name].iter().map(move |spec| (name, *spec)))
    {
        let assessment = assess(stack, spec, observed);
        let base = match &assessment {
            Assessment::Foreign { .. } => {
                return Err(PlanError::Foreign {
                    container: spec.name.clone(),
                    project: stack.project.clone(),
                });
            }
            Assessment::Missing => Some(Action::Create {
                service: name.to_owned(),
                name: spec.name.clone(),
            }),
            Assessment::Stopped {
                stale: Some(stale), ..
            }
            | Assessment::Stale { stale, .. } => Some(Action::Recreate {
                service: name.to_owned(),
                name: spec.name.clone(),
                reason: describe(stale),
            }),
            Assessment::Stopped {
                stale: None, state, ..
            } => {
                let reason_is_paused = *state == RunState::Paused;
                if reason_is_paused {
                    Some(Action::Recreate {
                        service: name.to_owned(),
                        name: spec.name.clone(),
                        reason: "paused".to_owned(),
                    })
                } else {
                    Some(Action::Start {
                        service: name.to_owned(),
                        name: spec.name.clone(),
                    })
                }
            }
            Assessment::Unpinned { .. } | Assessment::InSync { .. } => None,
        };
        // An interrupted recreate left a replacement under its temporary name:
        // finish with it when it is what the spec asks for, else drop it.
        let (cleanup, action) = match leftover(stack, spec, observed) {
            None => (None, base),
            Some(left) => {
                let remove = Some(Action::RemoveLeftover {
                    service: name.to_owned(),
                    name: left.name.clone(),
                });
                match (&assessment, &left.stale, base) {
                    (Assessment::InSync { .. } | Assessment::Unpinned { .. }, _, base) => {
                        (remove, base)
                    }
                    (_, None, _) => (
                        None,
                        Some(Action::FinishReplacement {
                            service: name.to_owned(),
                            name: spec.name.clone(),
                        }),
                    ),
                    // A recreate removes the leftover before creating anew.
                    (_, Some(_), Some(recreate @ Action::Recreate { .. })) => {
                        (None, Some(recreate))
                    }
                    (Assessment::Missing, Some(stale), _) => (
                        None,
                        Some(Action::Recreate {
                            service: name.to_owned(),
                            name: spec.name.clone(),
                            reason: format!(
                                "an interrupted apply left an out-of-date replacement: {}",
                                describe(stale)
                            ),
                        }),
                    ),
                    (_, Some(_), base) => (remove, base),
                }
            }
        };
        if matches!(action, Some(Action::Recreate { .. }))
            && let Some(taken) = observed.replacement_name_taken(stack, spec)
        {
            return Err(PlanError::ReplacementTaken {
                container: taken.name.clone(),
                service: name.to_owned(),
                project: stack.project.clone(),
            });
        }
        service_actions.extend(cleanup);
        // A service sharing a recreated service's network namespace loses it; one
        // that asked to restart with its dependency restarts.
        let action = action.or_else(|| follow_dependencies(spec, &replaced));
        if let Some(action) = action {
            if matches!(
                action,
                Action::Create { .. } | Action::Recreate { .. } | Action::FinishReplacement { .. }
            ) {
                replaced.insert(name);
                if let Some(b) = &spec.build {
                    if !matches!(action, Action::FinishReplacement { .. })
                        && !observed.has_built(&spec.image.qualified, &b.digest)
                        && !builds.iter().any(|(_, i)| *i == spec.image.qualified)
                    {
                        builds.push((spec.service.clone(), spec.image.qualified.clone()));
                    }
                } else if !matches!(action, Action::FinishReplacement { .. })
                    && wants_pull(spec, observed)
                {
                    let image = pull_reference(&spec.image);
                    if !pulls.contains(&image) {
                        pulls.push(image);
                    }
                }
            }
            service_actions.push(action);
        }
    }
    actions.extend(pulls.into_iter().map(|image| Action::Pull { image }));
    actions.extend(
        builds
            .into_iter()
            .map(|(service, image)| Action::Build { service, image }),
    );
    actions.extend(service_actions);
    Ok(actions)
}

fn follow_dependencies(spec: &ContainerSpec, replaced: &BTreeSet<&str>) -> Option<Action> {
    if let NetworkMode::Service(target) = &spec.network_mode
        && replaced.contains(target.as_str())
    {
        return Some(Action::Recreate {
            service: spec.service.clone(),
            name: spec.name.clone(),
            reason: format!("shares the network namespace of recreated `{target}`"),
        });
    }
    for (what, ns) in [("PID", &spec.run.pid), ("IPC", &spec.run.ipc)] {
        if let Some(SharedNamespace::Service(target)) = ns
            && replaced.contains(target.as_str())
        {
            return Some(Action::Recreate {
                service: spec.service.clone(),
                name: spec.name.clone(),
                reason: format!("shares the {what} namespace of recreated `{target}`"),
            });
        }
    }
    spec.depends_on
        .iter()
        .find(|d| d.restart && replaced.contains(d.service.as_str()))
        .map(|d| Action::Restart {
            service: spec.service.clone(),
            name: spec.name.clone(),
            reason: format!("dependency `{}` was recreated", d.service),
        })
}

fn describe(stale: &Stale) -> String {
    match stale {
        Stale::Image { expected, actual } => {
            format!(
                "runs {} instead of {}",
                actual.as_deref().map(short).unwrap_or("an unknown image"),
                short(expected)
            )
        }
        Stale::Config { actual: None, .. } => "not created by Magos".to_owned(),
        Stale::Config { .. } => "definition changed".to_owned(),
    }
}

/// `sha256:0123456789ab…` for messages.
pub fn short(digest: &str) -> &str {
    let end = digest
        .find(':')
        .map(|i| i + 13)
        .unwrap_or(12)
        .min(digest.len());
    &digest[..end]
}

/// The order services must start in: dependencies first (`depends_on` and
/// `network_mode: service:…`), ties broken by declaration order (of the services
/// whose dependencies have all started, the one declared first goes next). Errors
/// name a missing dependency or the services in a cycle.
///
/// Kahn's algorithm with the ready services in a min-heap of declaration
/// indices: O((V + E) log V) for V services and E dependencies.
pub fn start_order(stack: &StackSpec) -> Result<Vec<&str>, PlanError> {
    // One node per service: its replicas share its dependencies.
    let mut seen = BTreeSet::new();
    let services: Vec<&ContainerSpec> = stack
        .services
        .iter()
        .filter(|s| seen.insert(s.service.as_str()))
        .collect();
    let index: BTreeMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.service.as_str(), i))
        .collect();
    // For each service, the services waiting on it; and how many of its own
    // dependencies have not started yet (a dependency named twice counts twice).
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); services.len()];
    let mut waiting: Vec<usize> = vec![0; services.len()];
    for (i, spec) in services.iter().enumerate() {
        let network = match &spec.network_mode {
            NetworkMode::Service(target) => Some(target.as_str()),
            _ => None,
        };
        for d in spec
            .depends_on
            .iter()
            .map(|d| d.service.as_str())
            .chain(network)
        {
            let Some(&j) = index.get(d) else {
                return Err(PlanError::UnknownDependency {
                    service: spec.service.clone(),
                    dependency: d.to_owned(),
                    project: stack.project.clone(),
                });
            };
            dependents[j].push(i);
            waiting[i] += 1;
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = waiting
        .iter()
        .enumerate()
        .filter(|(_, w)| **w == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut order: Vec<&str> = Vec::with_capacity(services.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(&services[i].service);
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    if order.len() < services.len() {
        let services = services
            .iter()
            .zip(&waiting)
            .filter(|(_, w)| **w > 0)
            .map(|(s, _)| s.service.clone())
            .collect();
        return Err(PlanError::Cycle { services });
    }
    Ok(order)
}

/// Whether a service's image is pulled before its container is created:
/// when it is missing (compose's `pull_policy: missing`, the default), always
/// with `pull_policy: always`, never with `pull_policy: never` (creating the
/// container then fails if the image is missing, and says so).
fn wants_pull(spec: &ContainerSpec, observed: &Observed) -> bool {
    match spec.run.pull_policy {
        Some(PullPolicy::Always) => true,
        Some(PullPolicy::Never) => false,
        None => !observed.has_image(&spec.image),
    }
}

/// What a repository's plan must leave alone, from what reading the
/// repository found.
#[derive(Debug, Clone, Copy)]
pub struct Hold<'a> {
    /// Projects never pruned: stacks that failed, that go to the compose CLI
    /// or that are observed.
    pub protected: &'a BTreeSet<String>,
    /// Folders of stacks that failed: containers created from them (their
    /// working-folder label) are never pruned, even when a broken file hid
    /// the project's name.
    pub failed_dirs: &'a BTreeSet<String>,
    /// Observed stacks (`x-magos: {observe: true}`): compared, never applied.
    pub observed: &'a [String],
    /// `--stack`: the one stack asked for, and every project of the
    /// repository; only their orphans are pruned.
    pub only: Option<(&'a str, &'a BTreeSet<&'a str>)>,
}

impl Hold<'_> {
    /// Whether a container of `project` (`container` when it is known) must
    /// not be pruned.
    pub fn keeps(&self, container: Option<&ObservedContainer>, project: &str) -> bool {
        self.protected.contains(project)
            || container
                .and_then(|c| c.labels.get(LABEL_WORKING_DIR))
                .is_some_and(|dir| self.failed_dirs.contains(dir))
    }

    /// Narrows `plan` to what may be done: no pruning of what is kept, no
    /// actions for observed stacks, and with `--stack` no pruning of other
    /// stacks' orphans.
    pub fn apply_to(&self, plan: &mut Plan, observed: &Observed) {
        plan.prune.retain(|r| {
            let container = observed.containers.iter().find(|c| c.id == r.id);
            !self.keeps(container, &r.project)
        });
        plan.stacks.retain(|s| !self.observed.contains(&s.project));
        if let Some((only, projects)) = self.only {
            plan.prune
                .retain(|r| projects.contains(r.project.as_str()) || r.project == only);
        }
    }
}

#[cfg(test)]
mod tests;
