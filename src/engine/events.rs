//! Where the engine's [`Event`]s go. Every operation that changes something
//! emits through [`Engine::emit`]; this is the one place that fans them out.

use crate::core::event::Event;

use super::Engine;

impl Engine {
    /// Records that `event` happened. Never blocks a pass and never fails it.
    pub fn emit(&self, event: Event) {
        tracing::info!(
            event = %event.kind,
            stack = event.stack.as_deref().unwrap_or(""),
            service = event.service.as_deref().unwrap_or(""),
            reason = event.reason.as_deref().unwrap_or(""),
            "event"
        );
    }
}
