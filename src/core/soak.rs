//! The soak: after Magos changes a service (a new digest or a new definition)
//! it watches the new container for a while before trusting it. This module is
//! the verdict, a pure state machine: the rules come from the service's
//! healthcheck and restart policy, the facts from Podman's event stream and
//! health status, and the time is passed in (Unix milliseconds).
//!
//! - A service with a healthcheck must turn `healthy` within
//!   `start_period + interval × retries` plus [`MARGIN`], and stay healthy to
//!   the end of the soak; `unhealthy` fails at once.
//! - Any service must keep running: a `died` event or a restart fails it,
//!   except that a `restart: "no"` service may exit 0.
//! - The soak passes when its length has passed with no failure (and, with a
//!   healthcheck, once the service was healthy).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::observed::Health;
use super::spec::{ContainerSpec, HealthSpec, RestartPolicy};

/// The slack added to a healthcheck's own deadline: a check scheduled by a
/// timer (or by Magos on hosts without one) may run a little late.
pub const MARGIN: Duration = Duration::from_secs(10);

/// Podman's defaults for a healthcheck's unset timings (as the CLI's).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;

/// When a healthcheck has to have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthTiming {
    /// Grace period after start, in milliseconds.
    pub start_period_ms: u64,
    /// Between checks, in milliseconds.
    pub interval_ms: u64,
    /// Failures before unhealthy.
    pub retries: u32,
}

impl HealthTiming {
    /// The timing of a spec's healthcheck; `None` without one (or `NONE`).
    pub fn of(health: Option<&HealthSpec>) -> Option<Self> {
        let h = health?;
        if h.test.first().is_none_or(|t| t == "NONE") {
            return None;
        }
        let ms = |d: Option<Duration>, default: Duration| {
            u64::try_from(d.unwrap_or(default).as_millis()).unwrap_or(u64::MAX)
        };
        Some(Self {
            start_period_ms: ms(h.start_period, Duration::ZERO),
            interval_ms: ms(h.interval, DEFAULT_INTERVAL).max(1),
            retries: h.retries.unwrap_or(DEFAULT_RETRIES).max(1),
        })
    }

    /// How long after the start the service must be healthy.
    pub fn deadline_ms(&self) -> u64 {
        self.start_period_ms
            .saturating_add(self.interval_ms.saturating_mul(u64::from(self.retries)))
            .saturating_add(u64::try_from(MARGIN.as_millis()).unwrap_or(0))
    }
}

/// What a soak demands of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// Its healthcheck's timing, when it has one.
    pub health: Option<HealthTiming>,
    /// `restart: "no"` (or none): the service may exit 0.
    pub may_exit: bool,
    /// How long the soak lasts, in milliseconds.
    pub soak_ms: u64,
}

impl Rules {
    /// The rules for a container spec and a soak length.
    pub fn for_spec(spec: &ContainerSpec, soak: Duration) -> Self {
        Self {
            health: HealthTiming::of(spec.healthcheck.as_ref()),
            may_exit: matches!(spec.restart, None | Some(RestartPolicy::No)),
            soak_ms: u64::try_from(soak.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Something Podman reported about the watched container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "fact")]
pub enum Fact {
    /// Its health status (an event, or a check Magos ran).
    Health {
        /// The status.
        health: Health,
    },
    /// Its main process ended.
    Died {
        /// The exit code.
        exit_code: i32,
    },
    /// Its restart policy restarted it (the restart count rose).
    Restarted,
    /// It was removed (not by Magos).
    Removed,
}

/// Why a soak failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum Failure {
    /// Its healthcheck reported unhealthy.
    Unhealthy,
    /// It was not healthy by the deadline.
    NotHealthy {
        /// The deadline after the start, in milliseconds.
        within_ms: u64,
    },
    /// It exited (with a non-zero code, or under a restart policy).
    Died {
        /// The exit code.
        exit_code: i32,
    },
    /// Its restart policy restarted it.
    Restarted,
    /// Its container was removed.
    Removed,
}

impl Failure {
    /// A short label for metrics (`magos_rollbacks_total{reason}`).
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Unhealthy => "unhealthy",
            Failure::NotHealthy { .. } => "not_healthy",
            Failure::Died { .. } => "died",
            Failure::Restarted => "restarted",
            Failure::Removed => "removed",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unhealthy => f.write_str("its healthcheck reported unhealthy"),
            Failure::NotHealthy { within_ms } => write!(
                f,
                "it did not turn healthy within {}",
                super::duration::format(Duration::from_millis(*within_ms))
            ),
            Failure::Died { exit_code } => write!(f, "it exited with code {exit_code}"),
            Failure::Restarted => f.write_str("its restart policy restarted it (crash loop)"),
            Failure::Removed => f.write_str("its container was removed"),
        }
    }
}

/// A soak's verdict at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not decided yet.
    Pending,
    /// The service proved itself.
    Passed,
    /// The service failed, at this time (Unix milliseconds).
    Failed {
        /// Why.
        failure: Failure,
        /// When.
        at: i64,
    },
}

/// One soak under way: its rules, its start and what was seen so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Soak {
    /// What it demands.
    pub rules: Rules,
    /// When the new container started (Unix milliseconds).
    pub started_at: i64,
    /// Whether the healthcheck has reported healthy.
    #[serde(default)]
    pub healthy: bool,
    /// Whether it exited 0 under `restart: "no"`.
    #[serde(default)]
    pub exited: bool,
    /// The first failure seen, and when.
    #[serde(default)]
    pub failed: Option<(Failure, i64)>,
}

impl Soak {
    /// A soak of a container that started at `started_at`.
    pub fn new(rules: Rules, started_at: i64) -> Self {
        Self {
            rules,
            started_at,
            healthy: false,
            exited: false,
            failed: None,
        }
    }

    /// Takes in a fact seen at `at`. Facts from before the start are ignored;
    /// after a failure nothing changes the verdict.
    pub fn observe(&mut self, fact: Fact, at: i64) {
        if self.failed.is_some() || at < self.started_at {
            return;
        }
        let fail = match fact {
            Fact::Health {
                health: Health::Healthy,
            } => {
                self.healthy = true;
                None
            }
            Fact::Health {
                health: Health::Unhealthy,
            } => Some(Failure::Unhealthy),
            Fact::Health { .. } => None,
            Fact::Died { exit_code: 0 } if self.rules.may_exit => {
                self.exited = true;
                None
            }
            Fact::Died { exit_code } => Some(Failure::Died { exit_code }),
            Fact::Restarted => Some(Failure::Restarted),
            Fact::Removed => Some(Failure::Removed),
        };
        if let Some(f) = fail {
            self.failed = Some((f, at));
        }
    }

    /// The latest moment (Unix milliseconds) the verdict can stay pending:
    /// the end of the soak, or the healthcheck's deadline when later.
    pub fn decided_by(&self) -> i64 {
        let soak = self.rules.soak_ms;
        let health = self.rules.health.map_or(0, |h| h.deadline_ms());
        self.started_at
            .saturating_add(i64::try_from(soak.max(health)).unwrap_or(i64::MAX))
    }

    /// The verdict at `now` (Unix milliseconds).
    pub fn verdict(&self, now: i64) -> Verdict {
        if let Some((failure, at)) = self.failed {
            return Verdict::Failed { failure, at };
        }
        let elapsed = u64::try_from(now.saturating_sub(self.started_at)).unwrap_or(0);
        if let Some(h) = self.rules.health
            && !self.healthy
            && !self.exited
        {
            let within_ms = h.deadline_ms();
            if elapsed >= within_ms {
                return Verdict::Failed {
                    failure: Failure::NotHealthy { within_ms },
                    at: self.started_at.saturating_add(within_ms as i64),
                };
            }
            return Verdict::Pending;
        }
        if elapsed >= self.rules.soak_ms {
            Verdict::Passed
        } else {
            Verdict::Pending
        }
    }
}

#[cfg(test)]
mod tests;
