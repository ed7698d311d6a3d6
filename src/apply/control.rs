//! What a caller hands an apply besides the plan: where it marks progress and
//! when it should stop. Both are explicit parameters, passed down from the
//! front end (the daemon's liveness record and its SIGTERM/SIGINT flag; a
//! command passes neither).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::server::Liveness;

/// Where a long apply marks progress (each action, each pulled or built layer,
/// each poll of a dependency), so that a busy apply is not taken for a stuck
/// one: the daemon's [`Liveness`], or nowhere.
#[derive(Debug, Clone, Default)]
pub struct Progress(Option<Arc<Liveness>>);

impl Progress {
    /// Progress marked nowhere (a command run by hand).
    pub fn none() -> Self {
        Self(None)
    }

    /// Progress marked on the daemon's liveness record.
    pub fn to(liveness: Arc<Liveness>) -> Self {
        Self(Some(liveness))
    }

    /// Marks progress.
    pub fn mark(&self) {
        if let Some(l) = &self.0 {
            l.progress();
        }
    }

    /// The liveness record, for the steps that mark it themselves.
    pub fn liveness(&self) -> Option<&Liveness> {
        self.0.as_deref()
    }
}

/// Whether an apply under way should stop at its next safe point: no further
/// action or orphan removal starts and a dependency is no longer awaited, while
/// an action already started (a replacement above all) is finished.
#[derive(Debug, Clone, Default)]
pub struct Stop(Option<Arc<AtomicBool>>);

impl Stop {
    /// An apply that runs to its end (a command run by hand).
    pub fn never() -> Self {
        Self(None)
    }

    /// An apply that stops once `flag` is raised.
    pub fn on(flag: Arc<AtomicBool>) -> Self {
        Self(Some(flag))
    }

    /// Whether the flag is raised.
    pub fn requested(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_is_requested_only_once_its_flag_is_raised() {
        assert!(!Stop::never().requested());
        let flag = Arc::new(AtomicBool::new(false));
        let stop = Stop::on(flag.clone());
        assert!(!stop.requested());
        flag.store(true, Ordering::Release);
        assert!(stop.requested());
        Progress::none().mark();
    }
}
