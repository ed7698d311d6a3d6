//! What Podman reports, in domain terms, and how one service's container compares
//! with its spec. Planning and drift both start from [`assess`], so the plan is
//! exactly the drift report seen as actions.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::spec::{
    ContainerImage, ContainerSpec, LABEL_CONFIG_HASH, LABEL_CONTAINER_NUMBER, LABEL_INSTANCE,
    LABEL_MANAGED, LABEL_PROJECT, LABEL_SERVICE, StackSpec, replacement_name,
};

/// A container's run state, reduced to what reconciling needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Running (healthy or not).
    Running,
    /// Paused.
    Paused,
    /// Created, exited, stopped or dead.
    Stopped,
}

impl RunState {
    /// Reads libpod's `State` string.
    pub fn from_libpod(state: &str) -> Self {
        match state.to_ascii_lowercase().as_str() {
            "running" => RunState::Running,
            "paused" => RunState::Paused,
            _ => RunState::Stopped,
        }
    }
}

/// A container as Podman reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedContainer {
    /// The full id.
    pub id: String,
    /// The name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Running, paused or stopped.
    pub state: RunState,
    /// The id of its image.
    pub image_id: String,
    /// The digest Podman recorded for the container's image (`ImageDigest`).
    pub image_digest: Option<String>,
    /// Its health and restarts.
    #[serde(default)]
    pub vitals: Vitals,
}

impl ObservedContainer {
    /// The compose project label.
    pub fn project(&self) -> Option<&str> {
        self.labels.get(LABEL_PROJECT).map(String::as_str)
    }

    /// The compose service label.
    pub fn service(&self) -> Option<&str> {
        self.labels.get(LABEL_SERVICE).map(String::as_str)
    }

    /// Its replica number (`com.docker.compose.container-number`; 1 without
    /// one).
    pub fn number(&self) -> u32 {
        self.labels
            .get(LABEL_CONTAINER_NUMBER)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }

    /// Whether Magos created it.
    pub fn managed(&self) -> bool {
        self.labels.get(LABEL_MANAGED).is_some_and(|v| v == "true")
    }

    /// Whether this Magos instance created it.
    pub fn owned_by(&self, instance: &str) -> bool {
        self.managed()
            && self
                .labels
                .get(LABEL_INSTANCE)
                .is_some_and(|v| v == instance)
    }
}

/// A container's health, as its healthcheck last reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No healthcheck (or none reported yet).
    #[default]
    None,
    /// In its start period, not yet healthy.
    Starting,
    /// The last checks passed.
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

impl Health {
    /// Reads libpod's health status (`healthy`, `unhealthy`, `starting`, or
    /// empty for a container without a healthcheck).
    pub fn from_libpod(status: &str) -> Self {
        match status.to_ascii_lowercase().as_str() {
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            "starting" => Health::Starting,
            _ => Health::None,
        }
    }

    /// Reads Docker's list status, which ends with the health in parentheses
    /// (`Up 3 minutes (healthy)`, `Up 2 seconds (health: starting)`).
    pub fn from_docker_status(status: &str) -> Self {
        let Some(open) = status.rfind('(') else {
            return Health::None;
        };
        let inner = status[open + 1..].trim_end_matches(')');
        Health::from_libpod(inner.strip_prefix("health: ").unwrap_or(inner))
    }
}

/// How many restarts by its restart policy make a container a crash loop
/// even while it happens to be running. Podman resets the count when the
/// container is created again (a recreate by Magos).
pub const CRASH_LOOP_RESTARTS: u64 = 3;

/// What Podman says of a container's health and of its restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Vitals {
    /// Its health.
    pub health: Health,
    /// How often its restart policy restarted it since it was created.
    pub restarts: u64,
}

/// Why a container that runs the right definition is still not well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ailment {
    /// Its healthcheck fails.
    Unhealthy,
    /// Its restart policy keeps restarting it: restarted and down right now,
    /// or restarted [`CRASH_LOOP_RESTARTS`] times.
    Restarting {
        /// Restarts so far.
        restarts: u64,
    },
}

impl Vitals {
    /// Whether a container in `state` with these vitals is ailing.
    pub fn ailment(&self, state: RunState) -> Option<Ailment> {
        let looping = self.restarts >= CRASH_LOOP_RESTARTS
            || (self.restarts > 0 && state != RunState::Running);
        if looping {
            return Some(Ailment::Restarting {
                restarts: self.restarts,
            });
        }
        (state == RunState::Running && self.health == Health::Unhealthy)
            .then_some(Ailment::Unhealthy)
    }
}

/// An image present in local storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedImage {
    /// The image id.
    pub id: String,
    /// Every digest it is known by: its `Digest` and those in `RepoDigests`
    /// (a multi-arch pull records both the index and the platform manifest).
    pub digests: BTreeSet<String>,
    /// `RepoTags`, fully qualified (`docker.io/library/nginx:1.27`).
    pub tags: BTreeSet<String>,
    /// `RepoDigests`, fully qualified (`docker.io/library/nginx@sha256:…`): the
    /// names Podman finds a pinned reference under.
    pub repo_digests: BTreeSet<String>,
    /// The inputs digest of an image Magos built (its
    /// `io.magos.build-digest` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_digest: Option<String>,
}

/// A network or volume as Podman reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObservedObject {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Networks: their subnets (CIDR).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
}

/// Everything Podman reports that planning needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// All containers (running or not).
    pub containers: Vec<ObservedContainer>,
    /// Images in local storage.
    pub images: Vec<ObservedImage>,
    /// Networks.
    pub networks: Vec<ObservedObject>,
    /// Volumes.
    pub volumes: Vec<ObservedObject>,
}

impl Observed {
    /// Every digest known for an image id.
    pub fn image_digests(&self, image_id: &str) -> Option<&BTreeSet<String>> {
        self.images
            .iter()
            .find(|i| i.id == image_id)
            .map(|i| &i.digests)
    }

    /// Whether an image is present as Podman looks it up: a pinned one by its
    /// repository and digest (the same manifest stored under another repository
    /// does not count: Podman would not find it by this name), else by its
    /// qualified tag.
    pub fn has_image(&self, image: &ContainerImage) -> bool {
        match &image.digest {
            Some(d) => {
                let wanted = format!("{}@{d}", repository(&image.qualified));
                self.images.iter().any(|i| i.repo_digests.contains(&wanted))
            }
            None => self
                .images
                .iter()
                .any(|i| i.tags.contains(&image.qualified)),
        }
    }

    /// Whether an image Magos built from these inputs is present under this
    /// name: tagged `qualified` and labelled with the inputs digest.
    pub fn has_built(&self, qualified: &str, digest: &str) -> bool {
        self.images
            .iter()
            .any(|i| i.tags.contains(qualified) && i.build_digest.as_deref() == Some(digest))
    }

    /// The containers that belong to a service of a stack, by label, falling
    /// back to the container's name for containers without labels. The
    /// service's [leftover replacement](Observed::leftover_replacement) is not
    /// one of them.
    pub fn containers_for<'a>(
        &'a self,
        stack: &StackSpec,
        spec: &ContainerSpec,
    ) -> Vec<&'a ObservedContainer> {
        let by_label: Vec<_> = self
            .containers
            .iter()
            .filter(|c| {
                c.project() == Some(stack.project.as_str())
                    && c.service() == Some(spec.service.as_str())
                    && c.number() == spec.number
                    && !is_leftover_of(c, stack, spec)
            })
            .collect();
        if !by_label.is_empty() {
            return by_label;
        }
        self.containers
            .iter()
            .filter(|c| c.name == spec.name)
            .collect()
    }

    /// The replacement a recreate of this service left when it was interrupted
    /// (between creating it and renaming it into place): the container named
    /// `<name>_magos-next` that carries Magos's labels for exactly this project,
    /// service and instance.
    pub fn leftover_replacement(
        &self,
        stack: &StackSpec,
        spec: &ContainerSpec,
    ) -> Option<&ObservedContainer> {
        self.containers
            .iter()
            .find(|c| is_leftover_of(c, stack, spec))
    }

    /// A container holding the service's temporary replacement name that is not
    /// its leftover replacement (a user's, or another instance's): a recreate
    /// must not touch it.
    pub fn replacement_name_taken(
        &self,
        stack: &StackSpec,
        spec: &ContainerSpec,
    ) -> Option<&ObservedContainer> {
        let next = replacement_name(&spec.name);
        self.containers
            .iter()
            .find(|c| c.name == next && !is_leftover_of(c, stack, spec))
    }
}

fn is_leftover_of(c: &ObservedContainer, stack: &StackSpec, spec: &ContainerSpec) -> bool {
    c.name == replacement_name(&spec.name)
        && c.owned_by(&stack.instance)
        && c.project() == Some(stack.project.as_str())
        && c.service() == Some(spec.service.as_str())
}

/// A service's leftover replacement, compared with the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Its id.
    pub id: String,
    /// Its (temporary) name.
    pub name: String,
    /// How it differs from the spec (`None`: it is what the spec asks for, and
    /// the interrupted replacement can be finished with it).
    pub stale: Option<Stale>,
}

/// The service's leftover replacement, if an interrupted recreate left one.
pub fn leftover(stack: &StackSpec, spec: &ContainerSpec, observed: &Observed) -> Option<Leftover> {
    observed
        .leftover_replacement(stack, spec)
        .map(|c| Leftover {
            id: c.id.clone(),
            name: c.name.clone(),
            stale: staleness(spec, c, observed),
        })
}

/// How one service's container compares with its spec. Exactly one applies, in
/// this order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// No container.
    Missing,
    /// A container with the service's name exists but is not Magos's nor the
    /// stack's: it must not be touched.
    Foreign {
        /// Its id.
        container: String,
    },
    /// The container exists but is not running.
    Stopped {
        /// Its id.
        container: String,
        /// Its state.
        state: RunState,
        /// It also differs from the spec and needs recreating.
        stale: Option<Stale>,
    },
    /// The container runs but differs from the spec.
    Stale {
        /// Its id.
        container: String,
        /// How.
        stale: Stale,
    },
    /// Runs as specified, but the repository pins no digest.
    Unpinned {
        /// Its id.
        container: String,
        /// The digest it runs.
        actual: Option<String>,
    },
    /// Runs as specified.
    InSync {
        /// Its id.
        container: String,
    },
}

/// How a container differs from its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// It runs another image than the pinned digest.
    Image {
        /// The pinned digest.
        expected: String,
        /// What it runs.
        actual: Option<String>,
    },
    /// Its config hash differs (or it has none).
    Config {
        /// The spec's hash.
        expected: String,
        /// The container's label, if any.
        actual: Option<String>,
    },
}

/// Compares a service's container with its spec.
pub fn assess(stack: &StackSpec, spec: &ContainerSpec, observed: &Observed) -> Assessment {
    let candidates = observed.containers_for(stack, spec);
    // Prefer the one Magos created, then a running one.
    let Some(container) = candidates.iter().copied().max_by_key(|c| {
        (
            c.managed(),
            c.state == RunState::Running,
            c.name == spec.name,
        )
    }) else {
        return Assessment::Missing;
    };
    if container.project() != Some(stack.project.as_str()) {
        return Assessment::Foreign {
            container: container.id.clone(),
        };
    }
    let stale = staleness(spec, container, observed);
    if container.state != RunState::Running {
        return Assessment::Stopped {
            container: container.id.clone(),
            state: container.state,
            stale,
        };
    }
    if let Some(stale) = stale {
        return Assessment::Stale {
            container: container.id.clone(),
            stale,
        };
    }
    // A built image is what its inputs digest (in the config hash) says.
    if spec.image.digest.is_none() && spec.build.is_none() {
        return Assessment::Unpinned {
            container: container.id.clone(),
            actual: container.image_digest.clone(),
        };
    }
    Assessment::InSync {
        container: container.id.clone(),
    }
}

fn staleness(
    spec: &ContainerSpec,
    container: &ObservedContainer,
    observed: &Observed,
) -> Option<Stale> {
    if let Some(pinned) = &spec.image.digest {
        let runs_pinned = container.image_digest.as_deref() == Some(pinned.as_str())
            || observed
                .image_digests(&container.image_id)
                .is_some_and(|d| d.contains(pinned.as_str()));
        if !runs_pinned {
            return Some(Stale::Image {
                expected: pinned.to_string(),
                actual: container.image_digest.clone(),
            });
        }
    }
    let expected = spec.config_hash();
    let actual = container.labels.get(LABEL_CONFIG_HASH).cloned();
    if actual.as_deref() != Some(expected.as_str()) {
        return Some(Stale::Config { expected, actual });
    }
    None
}

/// Containers that belong to a managed project but to no service of it: services
/// removed from the repository, stacks whose folder was deleted, and duplicates.
/// A service's leftover replacement is the service's (its plan finishes or
/// removes it), not an orphan.
/// A project is managed when the repository has it or when this `instance` of
/// Magos created containers for it; containers of any other project are never
/// listed.
pub fn orphans<'a>(
    stacks: &[StackSpec],
    observed: &'a Observed,
    instance: &str,
) -> Vec<&'a ObservedContainer> {
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    for stack in stacks {
        for spec in &stack.services {
            if let Some(leftover) = observed.leftover_replacement(stack, spec) {
                claimed.insert(leftover.id.as_str());
            }
            let candidates = observed.containers_for(stack, spec);
            if let Some(keep) = candidates.iter().copied().max_by_key(|c| {
                (
                    c.managed(),
                    c.state == RunState::Running,
                    c.name == spec.name,
                )
            }) {
                claimed.insert(keep.id.as_str());
            }
        }
    }
    let desired: BTreeSet<&str> = stacks.iter().map(|s| s.project.as_str()).collect();
    observed
        .containers
        .iter()
        .filter(|c| !claimed.contains(c.id.as_str()))
        .filter(|c| match c.project() {
            Some(project) => desired.contains(project) || c.owned_by(instance),
            None => false,
        })
        .collect()
}

/// `name:tag` without its tag (`127.0.0.1:5000/app:1` → `127.0.0.1:5000/app`); a
/// registry's port is not a tag.
fn repository(qualified: &str) -> &str {
    let last = qualified.rfind('/').map_or(0, |i| i + 1);
    match qualified[last..].find(':') {
        Some(colon) => &qualified[..last + colon],
        None => qualified,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn docker_list_status_carries_the_health() {
        use super::Health;
        assert_eq!(
            Health::from_docker_status("Up 3 minutes (healthy)"),
            Health::Healthy
        );
        assert_eq!(
            Health::from_docker_status("Up 1 second (health: starting)"),
            Health::Starting
        );
        assert_eq!(
            Health::from_docker_status("Up 9 minutes (unhealthy)"),
            Health::Unhealthy
        );
        assert_eq!(
            Health::from_docker_status("Exited (0) 2 seconds ago"),
            Health::None
        );
        assert_eq!(Health::from_docker_status("Up 2 hours"), Health::None);
    }

    use super::repository;

    #[test]
    fn repository_drops_the_tag_but_not_a_port() {
        assert_eq!(repository("127.0.0.1:5000/app:1.0"), "127.0.0.1:5000/app");
        assert_eq!(repository("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
        assert_eq!(
            repository("docker.io/library/nginx:1.27"),
            "docker.io/library/nginx"
        );
        assert_eq!(repository("nginx"), "nginx");
    }
}
