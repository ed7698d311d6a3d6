//! systemd integration: the `sd_notify` protocol (readiness, status, watchdog)
//! and the Quadlet unit files of the `quadlet` runtime with the manager that runs them.
//!
//! Linux only; elsewhere the notifier is absent and every call is a no-op.

#[cfg(target_os = "linux")]
pub mod notify;
#[cfg(target_os = "linux")]
pub mod units;
