//! systemd integration: the `sd_notify` protocol (readiness, status, watchdog).
//!
//! Linux only; elsewhere the notifier is absent and every call is a no-op.

#[cfg(target_os = "linux")]
pub mod notify;
