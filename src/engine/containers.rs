//! [`Containers`]: the container engine a long-running Magos applies through
//! and watches, Podman or Docker Engine (`runtime: docker`), chosen here once
//! so the daemon's pass, its container-event watch and the soak after a
//! change are written once for both. Each engine's events, inspect and health
//! are read into the same few facts ([`ContainerEvent`], [`Inspected`]).
//!
//! Podman runs a healthcheck on demand ([`Containers::health`] asks it to:
//! rootless Podman schedules checks with systemd timers, which a host without
//! a user manager lacks); Docker runs its checks itself, so its health is read
//! from the container's inspect.

use std::collections::BTreeMap;
use std::path::Path;
use std::pin::Pin;

use futures_util::{Stream, StreamExt as _};

use crate::apply::RepoOptions;
use crate::apply::repo::{self, ApplyReport, DriftReport, RepoApplyError, Repository};
use crate::core::observed::{Health, Observed};

use super::Engine;

/// The container engine of the configuration's runtime. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Containers {
    /// Podman's libpod API (runtimes `podman`, `podman-compose`, `quadlet`).
    Podman(crate::podman::Client),
    /// Docker Engine (`runtime: docker`).
    Docker(crate::docker::Client),
}

/// What happened to a container, as the daemon and the soak read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    /// Its main process ended.
    Died {
        /// The exit code (`-1` when the engine did not say).
        exit_code: i32,
    },
    /// It was removed.
    Removed,
    /// Its healthcheck reported a status.
    Health(Health),
}

impl Happened {
    /// The word the daemon logs and triggers a pass with (`died`, `remove`,
    /// `unhealthy`, `health_status`).
    pub fn word(self) -> &'static str {
        match self {
            Happened::Died { .. } => "died",
            Happened::Removed => "remove",
            Happened::Health(Health::Unhealthy) => "unhealthy",
            Happened::Health(_) => "health_status",
        }
    }
}

/// One container event, in either engine's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// What happened.
    pub happened: Happened,
    /// The container's name (its id when the event names none).
    pub name: String,
    /// Its labels and the engine's other attributes.
    pub attributes: BTreeMap<String, String>,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
}

/// Which container events to receive: only deaths, removals and health
/// reports ever arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// `key=value` labels the container carries (all of them).
    pub labels: Vec<String>,
    /// Container names; empty for all.
    pub containers: Vec<String>,
    /// Replay from this Unix time (seconds) on.
    pub since: Option<i64>,
}

/// A stream of container events; an `Err` item ends it.
pub type ContainerEvents = Pin<Box<dyn Stream<Item = Result<ContainerEvent, String>> + Send>>;

/// A container's state as the soak reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspected {
    /// Running.
    pub running: bool,
    /// Being restarted by its restart policy.
    pub restarting: bool,
    /// The engine's status word (`created`, `running`, `exited`, …).
    pub status: String,
    /// The last exit code.
    pub exit_code: i32,
    /// How often its restart policy restarted it since it was created.
    pub restart_count: i64,
}

impl Containers {
    /// The engine's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Containers::Podman(_) => "Podman",
            Containers::Docker(_) => "Docker",
        }
    }

    /// The engine's socket.
    pub fn socket(&self) -> &Path {
        match self {
            Containers::Podman(c) => c.socket(),
            Containers::Docker(c) => c.socket(),
        }
    }

    /// The Podman client, when the engine is Podman (the network doctor is
    /// Podman's).
    pub fn podman(&self) -> Option<&crate::podman::Client> {
        match self {
            Containers::Podman(c) => Some(c),
            Containers::Docker(_) => None,
        }
    }

    /// Every container, image, network and volume, in the core's terms.
    pub async fn observe(&self) -> anyhow::Result<Observed> {
        Ok(match self {
            Containers::Podman(c) => crate::apply::observe(c).await?,
            Containers::Docker(c) => crate::apply::docker::observe(c).await?,
        })
    }

    /// [`repo::apply_prepared`] through this engine.
    pub async fn apply(
        &self,
        repo: &Repository,
        options: &RepoOptions,
    ) -> Result<ApplyReport, RepoApplyError> {
        match self {
            Containers::Podman(c) => repo::apply_prepared(c, repo, options).await,
            Containers::Docker(c) => repo::apply_prepared(c, repo, options).await,
        }
    }

    /// [`repo::drift_prepared`] through this engine.
    pub async fn drift(
        &self,
        repo: &Repository,
        options: &RepoOptions,
    ) -> Result<DriftReport, RepoApplyError> {
        match self {
            Containers::Podman(c) => repo::drift_prepared(c, repo, options).await,
            Containers::Docker(c) => repo::drift_prepared(c, repo, options).await,
        }
    }

    /// The deaths, removals and health reports of the containers `filter`
    /// names, as they happen (from `filter.since` on).
    pub async fn events(&self, filter: &EventFilter) -> anyhow::Result<ContainerEvents> {
        match self {
            Containers::Podman(c) => {
                let filters = crate::podman::EventFilters {
                    types: vec!["container".to_owned()],
                    actions: vec!["died".into(), "remove".into(), "health_status".into()],
                    containers: filter.containers.clone(),
                    labels: filter.labels.clone(),
                    since: filter.since.map(|s| s.to_string()),
                };
                let stream = c.events(&filters).await?;
                Ok(Box::pin(stream.filter_map(|e| async move {
                    match e {
                        Ok(e) => from_podman(&e).map(Ok),
                        Err(e) => Some(Err(e.to_string())),
                    }
                })))
            }
            Containers::Docker(c) => {
                let filters = crate::docker::EventFilters {
                    types: vec!["container".to_owned()],
                    actions: vec!["die".into(), "destroy".into(), "health_status".into()],
                    containers: filter.containers.clone(),
                    labels: filter.labels.clone(),
                    since: filter.since,
                };
                let stream = c.events(&filters).await?;
                Ok(Box::pin(stream.filter_map(|e| async move {
                    match e {
                        Ok(e) => from_docker(&e).map(Ok),
                        Err(e) => Some(Err(e.to_string())),
                    }
                })))
            }
        }
    }

    /// A container's state; `None` when it does not exist.
    pub async fn inspect(&self, name: &str) -> Result<Option<Inspected>, String> {
        match self {
            Containers::Podman(c) => match c.inspect_container(name).await {
                Ok(i) => {
                    let st = i.state.unwrap_or_default();
                    Ok(Some(Inspected {
                        running: st.running,
                        restarting: st.restarting,
                        status: st.status,
                        exit_code: st.exit_code,
                        restart_count: i64::from(i.restart_count),
                    }))
                }
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e.to_string()),
            },
            Containers::Docker(c) => match c.inspect_container(name).await {
                Ok(i) => Ok(Some(Inspected {
                    running: i.state.running,
                    restarting: i.state.restarting,
                    status: i.state.status,
                    exit_code: i32::try_from(i.state.exit_code).unwrap_or(-1),
                    restart_count: i.restart_count,
                })),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    /// A running container's health: Podman runs its healthcheck now; Docker's
    /// last status is read.
    pub async fn health(&self, name: &str) -> Result<Health, String> {
        match self {
            Containers::Podman(c) => c
                .run_healthcheck(name)
                .await
                .map(|h| Health::from_libpod(&h.status))
                .map_err(|e| e.to_string()),
            Containers::Docker(c) => c
                .inspect_container(name)
                .await
                .map(|i| {
                    i.state
                        .health
                        .map_or(Health::None, |h| Health::from_libpod(&h.status))
                })
                .map_err(|e| e.to_string()),
        }
    }
}

/// A libpod event in the daemon's terms (`None` for other actions).
fn from_podman(e: &crate::podman::wire::Event) -> Option<ContainerEvent> {
    let attrs = &e.actor.attributes;
    let happened = match e.action.as_str() {
        "died" => Happened::Died {
            exit_code: e
                .attribute("containerExitCode")
                .and_then(|c| c.parse().ok())
                .unwrap_or(-1),
        },
        "remove" => Happened::Removed,
        "health_status" => {
            let status = if e.health_status.is_empty() {
                attrs.get("health_status").map_or("", String::as_str)
            } else {
                e.health_status.as_str()
            };
            Happened::Health(Health::from_libpod(status))
        }
        _ => return None,
    };
    Some(ContainerEvent {
        happened,
        name: e.name().unwrap_or(&e.actor.id).to_owned(),
        attributes: attrs.clone(),
        at_ms: if e.time_nano > 0 {
            e.time_nano / 1_000_000
        } else {
            e.time * 1000
        },
    })
}

/// A Docker event in the daemon's terms (`None` for other actions).
fn from_docker(e: &crate::docker::Event) -> Option<ContainerEvent> {
    let happened = match e.verb() {
        "die" => Happened::Died {
            exit_code: e
                .attribute("exitCode")
                .and_then(|c| c.parse().ok())
                .unwrap_or(-1),
        },
        "destroy" => Happened::Removed,
        "health_status" => Happened::Health(Health::from_libpod(e.health_status().unwrap_or(""))),
        _ => return None,
    };
    Some(ContainerEvent {
        happened,
        name: e.name().unwrap_or(&e.actor.id).to_owned(),
        attributes: e.actor.attributes.clone(),
        at_ms: e.at_ms(),
    })
}

impl Engine {
    /// The container engine of the configuration's runtime: Docker Engine
    /// with `runtime: docker` (the socket located and the API version agreed
    /// on first use), else Podman.
    #[cfg(unix)]
    pub async fn containers(&self) -> anyhow::Result<Containers> {
        if !self.is_docker() {
            return Ok(Containers::Podman(self.podman()?.clone()));
        }
        if let Some(c) = self.docker.get() {
            return Ok(Containers::Docker(c.clone()));
        }
        let (client, _) =
            crate::docker::Client::connect(&self.env, crate::docker::ClientOptions::default())
                .await?;
        Ok(Containers::Docker(
            self.docker.get_or_init(|| client).clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_engines_events_read_as_the_same_facts() {
        let podman: crate::podman::wire::Event = serde_json::from_str(
            r#"{"Type":"container","Action":"health_status","HealthStatus":"unhealthy","Actor":{"ID":"abc","Attributes":{"name":"web_app_1"}},"time":1700000000}"#,
        )
        .unwrap();
        let docker: crate::docker::Event = serde_json::from_str(
            r#"{"Type":"container","Action":"health_status: unhealthy","Actor":{"ID":"abc","Attributes":{"name":"web-app-1"}},"time":1700000000}"#,
        )
        .unwrap();
        let p = from_podman(&podman).unwrap();
        let d = from_docker(&docker).unwrap();
        assert_eq!(p.happened, Happened::Health(Health::Unhealthy));
        assert_eq!(d.happened, p.happened);
        assert_eq!((p.at_ms, d.at_ms), (1_700_000_000_000, 1_700_000_000_000));
        assert_eq!(d.name, "web-app-1");

        let died: crate::docker::Event = serde_json::from_str(
            r#"{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"137"}},"time":1}"#,
        )
        .unwrap();
        let died = from_docker(&died).unwrap();
        assert_eq!(died.happened, Happened::Died { exit_code: 137 });
        assert_eq!(died.name, "abc", "the id stands in for a missing name");
        assert_eq!(died.happened.word(), "died");
        let gone: crate::docker::Event =
            serde_json::from_str(r#"{"Type":"container","Action":"destroy","Actor":{"ID":"x"}}"#)
                .unwrap();
        assert_eq!(from_docker(&gone).unwrap().happened, Happened::Removed);
        let started: crate::docker::Event =
            serde_json::from_str(r#"{"Type":"container","Action":"start","Actor":{"ID":"x"}}"#)
                .unwrap();
        assert_eq!(from_docker(&started), None);
    }
}
