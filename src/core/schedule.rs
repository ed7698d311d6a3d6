//! The daemon's timing rules, pure (the daemon and the network doctor use them): interval jitter, per-stack exponential backoff,
//! and the restart limit that turns a crash-looping service into a report instead
//! of an endless series of re-applies. Time is always passed in.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The delay until the next interval pass: `interval` moved by up to `±jitter`
/// (a fraction, e.g. 0.1) using `unit` in `[0, 1)` as the random draw. Jitter keeps
/// many hosts following one repository from hitting a registry in step.
pub fn jittered(interval: Duration, jitter: f64, unit: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 0.5);
    let factor = 1.0 + jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    interval.mul_f64(factor)
}

/// Exponential backoff for a failing stack: `base`, `2·base`, `4·base`, … capped
/// at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1 = the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }
}

/// The failure record of one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing {
    /// Consecutive failed passes.
    pub failures: u32,
    /// Not retried before this.
    pub retry_at: Instant,
}

/// Which stacks are failing and when each may be retried.
#[derive(Debug, Clone)]
pub struct StackBackoff {
    backoff: Backoff,
    failing: BTreeMap<String, Failing>,
}

impl StackBackoff {
    /// An empty record.
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            failing: BTreeMap::new(),
        }
    }

    /// Records a stack's outcome at `now`.
    pub fn record(&mut self, stack: &str, ok: bool, now: Instant) {
        if ok {
            self.failing.remove(stack);
            return;
        }
        let failures = self.failing.get(stack).map_or(1, |f| f.failures + 1);
        let retry_at = now + self.backoff.delay(failures);
        self.failing
            .insert(stack.to_owned(), Failing { failures, retry_at });
    }

    /// Whether a stack should be skipped at `now` (it failed and its backoff has
    /// not run out).
    pub fn waiting(&self, stack: &str, now: Instant) -> bool {
        self.failing.get(stack).is_some_and(|f| f.retry_at > now)
    }

    /// The stacks to skip at `now`.
    pub fn waiting_stacks(&self, now: Instant) -> std::collections::BTreeSet<String> {
        self.failing
            .iter()
            .filter(|(_, f)| f.retry_at > now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The earliest moment a failing stack may be retried.
    pub fn next_retry(&self) -> Option<Instant> {
        self.failing.values().map(|f| f.retry_at).min()
    }

    /// The failure record of a stack.
    pub fn get(&self, stack: &str) -> Option<&Failing> {
        self.failing.get(stack)
    }

    /// Forgets stacks no longer in the repository.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.failing.retain(|k, _| keep(k));
    }
}

/// At most `max` event-triggered re-applies of one container per `window`.
#[derive(Debug, Clone)]
pub struct RestartLimiter {
    max: usize,
    window: Duration,
    seen: BTreeMap<String, VecDeque<Instant>>,
}

impl RestartLimiter {
    /// A limiter allowing `max` restarts per `window` and container.
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            seen: BTreeMap::new(),
        }
    }

    /// Records a restart of `key` at `now` if allowed; `false` means the limit is
    /// reached and the container should be reported as crash-looping instead.
    pub fn allow(&mut self, key: &str, now: Instant) -> bool {
        let times = self.seen.entry(key.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.max {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests;
