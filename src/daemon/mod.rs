//! The daemon's loop: what triggers a reconcile pass, how triggers coalesce, how
//! failing stacks back off, and how the loop reports to systemd.
//!
//! The loop owns the schedule; what a pass does is a [`Reconciler`]'s business.
//! At most one pass runs at a time; triggers that arrive during a pass wait in the
//! queue and are merged into one follow-up pass.

#[cfg(unix)]
pub mod reconcile;
pub use crate::core::schedule;
#[cfg(unix)]
pub mod service;
#[cfg(unix)]
pub mod soak;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::server::{HookTrigger, Liveness};
use schedule::{Backoff, StackBackoff, jittered};

/// Why a pass runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The daemon started.
    Startup,
    /// The interval elapsed.
    Interval,
    /// A webhook announced a push to the followed branch.
    GitPush,
    /// A registry announced a push.
    RegistryPush,
    /// A managed container died, was removed or turned unhealthy.
    Container {
        /// Its stack.
        stack: String,
        /// Its name.
        container: String,
        /// What happened (`died`, `remove`, `health_status`).
        event: String,
    },
    /// The configuration was reloaded (`SIGHUP`).
    Reload,
    /// A failing stack's backoff ran out.
    Retry,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => f.write_str("startup"),
            Reason::Interval => f.write_str("interval"),
            Reason::GitPush => f.write_str("git push"),
            Reason::RegistryPush => f.write_str("registry push"),
            Reason::Container {
                container, event, ..
            } => write!(f, "{container} {event}"),
            Reason::Reload => f.write_str("reload"),
            Reason::Retry => f.write_str("retry"),
        }
    }
}

impl From<HookTrigger> for Reason {
    fn from(t: HookTrigger) -> Self {
        match t {
            HookTrigger::GitPush { .. } => Reason::GitPush,
            HookTrigger::RegistryPush => Reason::RegistryPush,
        }
    }
}

/// The outcome of one stack in a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackOutcome {
    /// The stack's project.
    pub stack: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Services not in sync after the pass (unhealthy and restarting ones
    /// aside).
    pub drifted: usize,
    /// Services that run their definition but are unhealthy or restarting.
    pub ailing: usize,
    /// Services in the stack.
    pub services: usize,
}

impl StackOutcome {
    /// A stack with nothing reported yet.
    pub fn new(stack: String) -> Self {
        Self {
            stack,
            error: None,
            drifted: 0,
            ailing: 0,
            services: 0,
        }
    }
}

/// What a pass reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Per stack.
    pub stacks: Vec<StackOutcome>,
    /// A failure of the whole pass (e.g. the repository could not be synced).
    pub error: Option<String>,
    /// Image updates pinned in this pass.
    pub updates: usize,
    /// Services rolled back after a failed soak in this pass.
    pub rolled_back: usize,
}

impl PassReport {
    /// Whether the pass and every stack succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.stacks.iter().all(|s| s.error.is_none())
    }

    /// Whether any service drifted (or is unhealthy or restarting).
    pub fn drifted(&self) -> bool {
        self.stacks.iter().any(|s| s.drifted > 0 || s.ailing > 0)
    }

    /// One line for `STATUS=` and the log.
    pub fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return format!("pass failed: {e}");
        }
        let total = self.stacks.len();
        let failed: Vec<&str> = self
            .stacks
            .iter()
            .filter(|s| s.error.is_some())
            .map(|s| s.stack.as_str())
            .collect();
        let drifted: usize = self.stacks.iter().map(|s| s.drifted).sum();
        let ailing: usize = self.stacks.iter().map(|s| s.ailing).sum();
        let in_sync = self
            .stacks
            .iter()
            .filter(|s| s.error.is_none() && s.drifted == 0 && s.ailing == 0)
            .count();
        let mut line = format!("{in_sync}/{total} stacks in sync");
        if drifted > 0 {
            line.push_str(&format!(", {drifted} services drifted"));
        }
        if ailing > 0 {
            line.push_str(&format!(", {ailing} services unhealthy or restarting"));
        }
        if self.updates > 0 {
            line.push_str(&format!(", {} updates pinned", self.updates));
        }
        if self.rolled_back > 0 {
            line.push_str(&format!(", {} rolled back", self.rolled_back));
        }
        if !failed.is_empty() {
            let first = self
                .stacks
                .iter()
                .find_map(|s| s.error.as_deref())
                .unwrap_or_default();
            line.push_str(&format!(
                ", failing: {} (last error: {first})",
                failed.join(", ")
            ));
        }
        line
    }
}

/// What the loop asks of a pass.
#[derive(Debug, Clone)]
pub struct PassRequest {
    /// Why it runs.
    pub reasons: Vec<Reason>,
    /// Stacks to leave alone this time because they are backing off.
    pub skip: BTreeSet<String>,
}

impl PassRequest {
    /// The stacks whose containers died, were removed or turned unhealthy,
    /// when that is the only reason for the pass: such a pass re-applies those
    /// stacks from the checkout as it is (no git sync, no registry check).
    /// `None` when any other reason asks for a full pass.
    pub fn containers_only(&self) -> Option<BTreeSet<String>> {
        let mut stacks = BTreeSet::new();
        for r in &self.reasons {
            match r {
                Reason::Container { stack, .. } => {
                    stacks.insert(stack.clone());
                }
                _ => return None,
            }
        }
        (!stacks.is_empty()).then_some(stacks)
    }
}

/// Runs reconcile passes.
pub trait Reconciler: Send {
    /// One pass. Steps inside it mark progress on `liveness`.
    fn pass(
        &mut self,
        request: PassRequest,
        liveness: &Liveness,
    ) -> impl Future<Output = PassReport> + Send;

    /// Re-reads the configuration (`SIGHUP`). An error keeps the old one.
    fn reload(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// Something the loop reports to, e.g. systemd.
pub trait Reporter: Send + Sync {
    /// The first pass finished (or failed cleanly).
    fn ready(&self, status: &str);
    /// A pass finished.
    fn status(&self, status: &str);
    /// A reload started.
    fn reloading(&self);
    /// Shutting down.
    fn stopping(&self);
}

/// A control message to the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Run a pass for this reason.
    Trigger(Reason),
    /// Reload the configuration, then run a pass.
    Reload,
    /// Finish the current step and stop.
    Shutdown,
}

/// Loop settings.
#[derive(Debug, Clone, Copy)]
pub struct LoopSettings {
    /// Between interval passes.
    pub interval: Duration,
    /// Interval jitter as a fraction (0.1 = ±10%).
    pub jitter: f64,
    /// Backoff of failing stacks.
    pub backoff: Backoff,
}

/// Shared state the HTTP endpoint also reads.
pub struct Shared {
    /// The loop's progress.
    pub liveness: Arc<Liveness>,
    /// Set after the first pass.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// The last pass's status line (what `STATUS=` says; `/readyz` shows it).
    pub status: Arc<std::sync::Mutex<String>>,
}

/// Runs passes until a [`Control::Shutdown`] arrives (or every sender is gone).
/// Returns the last pass's report.
pub async fn run_loop<R: Reconciler>(
    reconciler: &mut R,
    settings: LoopSettings,
    mut control: mpsc::Receiver<Control>,
    reporter: &dyn Reporter,
    shared: &Shared,
    random: &mut dyn FnMut() -> f64,
) -> PassReport {
    let mut backoff = StackBackoff::new(settings.backoff);
    let mut reasons = vec![Reason::Startup];
    let mut first = true;
    let mut number: u64 = 0;
    loop {
        let now = tokio::time::Instant::now().into_std();
        let skip = backoff.waiting_stacks(now);
        reasons.sort();
        reasons.dedup();
        let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
        number += 1;
        // Every line a pass logs carries its number.
        let span = tracing::info_span!("pass", n = number);
        span.in_scope(|| {
            tracing::info!(reasons = %why.join(", "), skipped = skip.len(), "pass started");
        });
        let report = reconciler
            .pass(
                PassRequest {
                    reasons: std::mem::take(&mut reasons),
                    skip: skip.clone(),
                },
                &shared.liveness,
            )
            .instrument(span)
            .await;
        let done = tokio::time::Instant::now().into_std();
        for s in &report.stacks {
            if !skip.contains(&s.stack) {
                backoff.record(&s.stack, s.error.is_none(), done);
            }
        }
        // Forget stacks that left the repository; skipped ones are not in the report.
        if report.error.is_none() {
            let stacks: BTreeSet<&str> = report.stacks.iter().map(|s| s.stack.as_str()).collect();
            backoff.retain(|s| stacks.contains(s) || skip.contains(s));
        }
        let summary = report.summary();
        if let Ok(mut status) = shared.status.lock() {
            status.clone_from(&summary);
        }
        if first {
            shared.ready.store(true, Ordering::Release);
            reporter.ready(&summary);
            first = false;
        } else {
            reporter.status(&summary);
        }
        let last = report;

        let next_interval =
            tokio::time::Instant::now() + jittered(settings.interval, settings.jitter, random());
        let next_retry = backoff.next_retry().map(tokio::time::Instant::from_std);
        // Wait for the next reason, then take every other one already queued.
        let first_reason = tokio::select! {
            message = control.recv() => match message {
                Some(m) => m,
                None => Control::Shutdown,
            },
            _ = tokio::time::sleep_until(next_interval) => Control::Trigger(Reason::Interval),
            _ = sleep_until_opt(next_retry) => Control::Trigger(Reason::Retry),
        };
        let mut queued = vec![first_reason];
        while let Ok(m) = control.try_recv() {
            queued.push(m);
        }
        if queued.contains(&Control::Shutdown) {
            reporter.stopping();
            return last;
        }
        if queued.contains(&Control::Reload) {
            reporter.reloading();
            if let Err(e) = reconciler.reload().await {
                tracing::error!(error = %e, "the new configuration is invalid; keeping the old one");
            }
            reasons.push(Reason::Reload);
        }
        reasons.extend(queued.into_iter().filter_map(|m| match m {
            Control::Trigger(r) => Some(r),
            _ => None,
        }));
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Pets the systemd watchdog every `every` while the loop makes progress; stops
/// petting (so systemd restarts the service) while `liveness` reports it stuck.
pub async fn watchdog(every: Duration, liveness: Arc<Liveness>, mut pet: impl FnMut() + Send) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_stuck = false;
    loop {
        ticker.tick().await;
        match liveness.check() {
            Ok(()) => {
                if was_stuck {
                    tracing::info!("the loop is making progress again");
                    was_stuck = false;
                }
                pet();
            }
            Err(why) => {
                if !was_stuck {
                    tracing::error!(%why, "the loop is stuck: no longer petting the systemd watchdog");
                    was_stuck = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
