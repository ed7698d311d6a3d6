//! Drift: the plan seen as a report. Every service of every stack gets exactly one
//! state, and containers of managed projects that no service claims are orphans.

use std::fmt;

use serde::Serialize;

use super::observed::{Ailment, Assessment, Observed, RunState, Stale, assess, leftover, orphans};
use super::spec::StackSpec;

/// A service's drift state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftState {
    /// Runs what the repository pins.
    InSync,
    /// No container.
    Missing,
    /// The container exists but is not running.
    Stopped,
    /// The container runs another image than the pinned digest.
    ImageDrift,
    /// The container's definition differs from the repository's.
    ConfigDrift,
    /// Runs as defined, but the repository pins no digest, so what runs is not
    /// fixed.
    Unpinned,
    /// A recreate was interrupted and left the service's replacement under its
    /// temporary name; the next apply finishes or redoes it.
    Interrupted,
    /// A container of a managed project that no service claims.
    Orphan,
    /// Runs the repository's definition, but its healthcheck fails.
    Unhealthy,
    /// Runs the repository's definition, but its restart policy keeps
    /// restarting it (a crash loop).
    Restarting,
}

impl DriftState {
    /// The name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftState::InSync => "in_sync",
            DriftState::Missing => "missing",
            DriftState::Stopped => "stopped",
            DriftState::ImageDrift => "image_drift",
            DriftState::ConfigDrift => "config_drift",
            DriftState::Unpinned => "unpinned",
            DriftState::Interrupted => "interrupted",
            DriftState::Orphan => "orphan",
            DriftState::Unhealthy => "unhealthy",
            DriftState::Restarting => "restarting",
        }
    }

    /// Whether this state counts as drift (exit code 1 of `magos drift`).
    pub fn is_drift(self) -> bool {
        self != DriftState::InSync
    }

    /// Whether this state says the service runs as defined but is not well
    /// (`unhealthy`, `restarting`).
    pub fn is_ailing(self) -> bool {
        matches!(self, DriftState::Unhealthy | DriftState::Restarting)
    }
}

impl fmt::Display for DriftState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the drift report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftEntry {
    /// The stack's project.
    pub stack: String,
    /// The service (for orphans: their service label, if any).
    pub service: Option<String>,
    /// The state.
    pub state: DriftState,
    /// What the repository says (a digest, a config hash, a container name).
    pub expected: Option<String>,
    /// What runs.
    pub actual: Option<String>,
    /// The container's name, when there is one.
    pub container: Option<String>,
}

/// Compares every service with what runs. `instance` is this Magos instance, whose
/// leftovers of deleted stacks are orphans.
pub fn drift(stacks: &[StackSpec], observed: &Observed, instance: &str) -> Vec<DriftEntry> {
    let name_of = |id: &str| {
        observed
            .containers
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.clone())
    };
    let mut entries = Vec::new();
    for stack in stacks {
        for spec in &stack.services {
            let entry = |state,
                         expected: Option<String>,
                         actual: Option<String>,
                         container: Option<String>| DriftEntry {
                stack: stack.project.clone(),
                service: Some(spec.service.clone()),
                state,
                expected,
                actual,
                container,
            };
            let pinned = spec.image.digest.as_ref().map(ToString::to_string);
            let assessment = assess(stack, spec, observed);
            if !matches!(assessment, Assessment::Foreign { .. })
                && leftover(stack, spec, observed).is_some()
            {
                // The replacement's temporary name is Magos's business, not a
                // service's container: the report names the service's own.
                let (actual, container) = match &assessment {
                    Assessment::Missing => (
                        "replacement not yet renamed into place; the old container is removed",
                        None,
                    ),
                    Assessment::InSync { container } | Assessment::Unpinned { container, .. } => (
                        "an unneeded replacement is left beside the running container",
                        name_of(container),
                    ),
                    Assessment::Stopped { container, .. }
                    | Assessment::Stale { container, .. }
                    | Assessment::Foreign { container } => (
                        "replacement created; the old container is not yet removed",
                        name_of(container),
                    ),
                };
                entries.push(entry(
                    DriftState::Interrupted,
                    Some("running".to_owned()),
                    Some(actual.to_owned()),
                    container,
                ));
                continue;
            }
            // A container that runs (or should run) the repository's
            // definition but is not well: its health and restarts decide.
            let ailing = match &assessment {
                Assessment::InSync { container } | Assessment::Unpinned { container, .. } => {
                    Some(container)
                }
                Assessment::Stopped {
                    container,
                    stale: None,
                    ..
                } => Some(container),
                _ => None,
            }
            .and_then(|id| observed.containers.iter().find(|c| &c.id == id))
            .and_then(|c| Some((c, c.vitals.ailment(c.state)?)));
            if let Some((c, ailment)) = ailing {
                entries.push(match ailment {
                    Ailment::Unhealthy => entry(
                        DriftState::Unhealthy,
                        Some("healthy".to_owned()),
                        Some("unhealthy: its healthcheck fails".to_owned()),
                        Some(c.name.clone()),
                    ),
                    Ailment::Restarting { restarts } => entry(
                        DriftState::Restarting,
                        Some("running".to_owned()),
                        Some(format!("restarted {restarts} times (crash loop)")),
                        Some(c.name.clone()),
                    ),
                });
                continue;
            }
            entries.push(match assessment {
                Assessment::Missing => {
                    entry(DriftState::Missing, Some(spec.name.clone()), None, None)
                }
                Assessment::Foreign { container } => entry(
                    DriftState::Missing,
                    Some(spec.name.clone()),
                    Some("the name is taken by a container outside the stack".to_owned()),
                    name_of(&container),
                ),
                Assessment::Stopped {
                    container, state, ..
                } => {
                    let actual = match state {
                        RunState::Paused => "paused",
                        _ => "stopped",
                    };
                    entry(
                        DriftState::Stopped,
                        Some("running".to_owned()),
                        Some(actual.to_owned()),
                        name_of(&container),
                    )
                }
                Assessment::Stale {
                    container,
                    stale: Stale::Image { expected, actual },
                } => entry(
                    DriftState::ImageDrift,
                    Some(expected),
                    actual,
                    name_of(&container),
                ),
                Assessment::Stale {
                    container,
                    stale: Stale::Config { expected, actual },
                } => entry(
                    DriftState::ConfigDrift,
                    Some(expected),
                    Some(
                        actual
                            .unwrap_or_else(|| "no config hash (not created by Magos)".to_owned()),
                    ),
                    name_of(&container),
                ),
                Assessment::Unpinned { container, actual } => entry(
                    DriftState::Unpinned,
                    Some(spec.image.reference.clone()),
                    actual,
                    name_of(&container),
                ),
                Assessment::InSync { container } => {
                    let actual = observed
                        .containers
                        .iter()
                        .find(|c| c.id == container)
                        .and_then(|c| c.image_digest.clone());
                    entry(
                        DriftState::InSync,
                        pinned.clone(),
                        actual.or(pinned),
                        name_of(&container),
                    )
                }
            });
        }
    }
    // A network whose fixed subnets (`ipam.config`) differ from Podman's: the
    // stack's plan fails on it (see `plan`), and drift names it.
    for stack in stacks {
        for net in &stack.networks {
            let Some(found) = observed.networks.iter().find(|n| n.name == net.name) else {
                continue;
            };
            if let Some((want, have)) = super::plan::subnet_difference(net, found) {
                entries.push(DriftEntry {
                    stack: stack.project.clone(),
                    service: None,
                    state: DriftState::ConfigDrift,
                    expected: Some(format!("network {} subnet {want}", net.name)),
                    actual: Some(format!("subnet {have}")),
                    container: None,
                });
            }
        }
    }
    for c in orphans(stacks, observed, instance) {
        entries.push(DriftEntry {
            stack: c.project().unwrap_or_default().to_owned(),
            service: c.service().map(str::to_owned),
            state: DriftState::Orphan,
            expected: None,
            actual: Some(format!("{:?}", c.state).to_lowercase()),
            container: Some(c.name.clone()),
        });
    }
    entries
}
