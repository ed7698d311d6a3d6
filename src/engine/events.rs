//! Where the engine's [`Event`]s go. Every operation that changes something
//! emits through [`Engine::emit`]; this is the one place that fans them out:
//! the de-duplication rule ([`crate::core::notify::Dedupe`]), the log, the
//! journal in the state folder (`magos history`) and the `notify:` receivers.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::event::{Event, EventKind};

use super::Engine;

/// Now, in seconds since the Unix epoch (an event's `at`).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Engine {
    /// Records that `event` happened. Never blocks a pass and never fails it:
    /// the receivers are told in the background. A state already sent less
    /// than `notify_repeat` ago is only logged at debug level.
    pub fn emit(&self, event: Event) {
        let repeat = i64::try_from(self.config.notify_repeat.0.as_secs()).unwrap_or(i64::MAX);
        let admit = {
            let mut dedupe = self.dedupe.lock().unwrap_or_else(|e| e.into_inner());
            let admit = dedupe.admit(&event, repeat);
            if admit.sends() {
                self.save_dedupe(&dedupe);
            }
            admit
        };
        if !admit.sends() {
            tracing::debug!(event = %event.kind, stack = event.stack.as_deref().unwrap_or(""), service = event.service.as_deref().unwrap_or(""), "event already sent; not again before notify_repeat");
            return;
        }
        tracing::info!(
            event = %event.kind,
            stack = event.stack.as_deref().unwrap_or(""),
            service = event.service.as_deref().unwrap_or(""),
            reason = event.reason.as_deref().unwrap_or(""),
            reminder = admit == crate::core::notify::Admit::Reminder,
            "event"
        );
        if let Some(journal) = &self.journal
            && let Err(e) = journal.append(&event)
        {
            tracing::warn!(dir = %journal.dir().display(), error = %e, "cannot write the event journal");
        }
        self.notifier.send(&event);
    }

    /// The states of `kind` for which `over(stack, service)` holds are over:
    /// the next such event is sent at once (a pass succeeded again, a service
    /// is back in sync).
    pub fn settle(&self, kind: EventKind, over: impl Fn(Option<&str>, Option<&str>) -> bool) {
        let mut dedupe = self.dedupe.lock().unwrap_or_else(|e| e.into_inner());
        if dedupe.settle(kind, over) {
            self.save_dedupe(&dedupe);
        }
    }

    /// Counts failed deliveries in `counter` (the daemon's
    /// `magos_notifications_failed_total`).
    pub fn count_notification_failures_in(
        &mut self,
        counter: prometheus_client::metrics::counter::Counter,
    ) {
        self.notifier.count_failures_in(counter);
    }

    /// Waits for the notifications under way, at most `limit` (a process
    /// about to exit: `run --once`, the daemon stopping).
    pub async fn flush_notifications(&self, limit: std::time::Duration) {
        if tokio::time::timeout(limit, self.notifier.flush())
            .await
            .is_err()
        {
            tracing::warn!("notifications still under way are abandoned");
        }
    }

    /// The event journal, when there is a state folder.
    pub fn journal(&self) -> Option<&crate::notify::Journal> {
        self.journal.as_ref()
    }

    fn save_dedupe(&self, dedupe: &crate::core::notify::Dedupe) {
        if let Some(journal) = &self.journal
            && let Err(e) = journal.save_dedupe(dedupe)
        {
            tracing::warn!(dir = %journal.dir().display(), error = %e, "cannot write the notification state");
        }
    }
}
