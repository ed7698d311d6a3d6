//! Whether the reconcile loop is making progress: the loop marks the step it is in,
//! and a step that has run longer than its allowance means the loop is stuck (a hung
//! socket or registry). `/healthz` and the systemd watchdog both ask this.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The current instant on tokio's clock (the system's, except in tests that
/// pause time).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[derive(Debug)]
enum Step {
    Idle,
    Busy { what: String, since: Instant },
}

/// The loop's progress record.
#[derive(Debug)]
pub struct Liveness {
    stuck_after: Duration,
    step: Mutex<Step>,
}

/// Marks a step as running until dropped.
#[must_use = "the step ends when the guard is dropped"]
pub struct StepGuard<'a>(&'a Liveness);

impl Drop for StepGuard<'_> {
    fn drop(&mut self) {
        *self.0.lock() = Step::Idle;
    }
}

impl Liveness {
    /// A loop is stuck when one step runs longer than `stuck_after`.
    pub fn new(stuck_after: Duration) -> Self {
        Self {
            stuck_after,
            step: Mutex::new(Step::Idle),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Step> {
        self.step
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a step; it ends when the guard is dropped.
    pub fn begin(&self, what: &str) -> StepGuard<'_> {
        *self.lock() = Step::Busy {
            what: what.to_owned(),
            since: Instant::now(),
        };
        StepGuard(self)
    }

    /// Marks progress inside a long step (e.g. each pulled layer), restarting its
    /// allowance.
    pub fn progress(&self) {
        if let Step::Busy { since, .. } = &mut *self.lock() {
            *since = now();
        }
    }

    /// `Ok` while idle or while the current step is within its allowance.
    pub fn check(&self) -> Result<(), String> {
        self.check_at(now())
    }

    /// [`Liveness::check`] at a given instant.
    pub fn check_at(&self, now: Instant) -> Result<(), String> {
        match &*self.lock() {
            Step::Idle => Ok(()),
            Step::Busy { what, since } => {
                let elapsed = now.saturating_duration_since(*since);
                if elapsed > self.stuck_after {
                    Err(format!(
                        "stuck: `{what}` has made no progress for {}s",
                        elapsed.as_secs()
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_step_is_stuck_and_progress_revives_it() {
        let l = Liveness::new(Duration::from_secs(60));
        let now = Instant::now();
        assert!(
            l.check_at(now + Duration::from_secs(3600)).is_ok(),
            "idle is healthy"
        );
        let guard = l.begin("sync repository");
        assert!(l.check_at(Instant::now() + Duration::from_secs(30)).is_ok());
        let err = l
            .check_at(Instant::now() + Duration::from_secs(61))
            .unwrap_err();
        assert!(err.contains("sync repository"), "{err}");
        l.progress();
        assert!(l.check_at(Instant::now() + Duration::from_secs(30)).is_ok());
        drop(guard);
        assert!(
            l.check_at(Instant::now() + Duration::from_secs(3600))
                .is_ok()
        );
    }
}
