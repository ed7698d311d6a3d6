//! The daemon's Prometheus metrics, rendered in the text exposition format.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels `result="ok|error"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// Labels `stack`, `state`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabels {
    /// The stack's project name.
    pub stack: String,
    /// A drift state (`in_sync`, `missing`, …).
    pub state: String,
}

/// Labels `registry`, `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The registry host.
    pub registry: String,
    /// The HTTP status, or `error` when no response came.
    pub status: String,
}

/// Label `registry`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabel {
    /// The registry host.
    pub registry: String,
}

/// Label `kind`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// What failed or what was done.
    pub kind: String,
}

/// Labels `stack`, `service`, `reason` of a rollback.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RollbackLabels {
    /// The stack's project name.
    pub stack: String,
    /// The service.
    pub service: String,
    /// Why its soak failed (`unhealthy`, `not_healthy`, `died`, `restarted`,
    /// `removed`).
    pub reason: String,
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    /// Reconcile passes by result.
    pub passes: Family<ResultLabel, Counter>,
    /// Duration of reconcile passes.
    pub pass_duration: Histogram,
    /// Unix time of the last pass that succeeded.
    pub last_success: Gauge<f64, AtomicU64>,
    /// Services per stack and drift state (the count of services in that state).
    pub drift: Family<DriftLabels, Gauge>,
    /// Image updates pinned and applied.
    pub updates_applied: Counter,
    /// Registry requests by registry and status.
    pub registry_requests: Family<RequestLabels, Counter>,
    /// The last `ratelimit-remaining` a registry reported.
    pub ratelimit_remaining: Family<RegistryLabel, Gauge>,
    /// Errors by kind.
    pub errors: Family<KindLabel, Counter>,
    /// Network healing actions by kind.
    pub heals: Family<KindLabel, Counter>,
    /// Notifications a receiver never accepted (after every attempt).
    pub notifications_failed: Counter,
    /// Services rolled back after a failed soak.
    pub rollbacks: Family<RollbackLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `magos_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("magos");
        let passes = Family::<ResultLabel, Counter>::default();
        registry.register("passes", "Reconcile passes by result", passes.clone());
        let pass_duration =
            Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]);
        registry.register(
            "pass_duration_seconds",
            "Duration of reconcile passes",
            pass_duration.clone(),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful pass",
            last_success.clone(),
        );
        let drift = Family::<DriftLabels, Gauge>::default();
        registry.register(
            "stack_services",
            "Services per stack and drift state",
            drift.clone(),
        );
        let updates_applied = Counter::default();
        registry.register(
            "updates_applied",
            "Image updates pinned and applied",
            updates_applied.clone(),
        );
        let registry_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "registry_requests",
            "Registry requests by registry and status",
            registry_requests.clone(),
        );
        let ratelimit_remaining = Family::<RegistryLabel, Gauge>::default();
        registry.register(
            "registry_ratelimit_remaining",
            "The last ratelimit-remaining a registry reported",
            ratelimit_remaining.clone(),
        );
        let errors = Family::<KindLabel, Counter>::default();
        registry.register("errors", "Errors by kind", errors.clone());
        let heals = Family::<KindLabel, Counter>::default();
        registry.register("heals", "Network healing actions by kind", heals.clone());
        let notifications_failed = Counter::default();
        registry.register(
            "notifications_failed",
            "Notifications a receiver never accepted, after every attempt",
            notifications_failed.clone(),
        );
        let rollbacks = Family::<RollbackLabels, Counter>::default();
        registry.register(
            "rollbacks",
            "Services rolled back after a failed soak, by stack, service and reason",
            rollbacks.clone(),
        );
        Self {
            registry,
            passes,
            pass_duration,
            last_success,
            drift,
            updates_applied,
            registry_requests,
            ratelimit_remaining,
            errors,
            heals,
            notifications_failed,
            rollbacks,
        }
    }

    /// Counts one error of `kind`.
    pub fn error(&self, kind: &str) {
        self.errors
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.passes
            .get_or_create(&ResultLabel {
                result: "ok".into(),
            })
            .inc();
        m.pass_duration.observe(0.3);
        m.drift
            .get_or_create(&DriftLabels {
                stack: "web".into(),
                state: "in_sync".into(),
            })
            .set(2);
        m.error("registry");
        let text = m.render();
        assert!(text.contains("# TYPE magos_passes counter"), "{text}");
        assert!(
            text.contains("magos_passes_total{result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("magos_pass_duration_seconds_bucket{le=\"0.5\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("magos_stack_services{stack=\"web\",state=\"in_sync\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("magos_errors_total{kind=\"registry\"} 1"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
        assert_parses(&text);
    }

    /// Every line is a comment (`# HELP`, `# TYPE`, `# UNIT`, `# EOF`) or a sample
    /// `name{label="value",…} number`, as the exposition format requires.
    fn assert_parses(text: &str) {
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                assert!(
                    ["HELP ", "TYPE ", "UNIT "]
                        .iter()
                        .any(|p| comment.starts_with(p))
                        || comment == "EOF",
                    "bad comment line: {line}"
                );
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no value: {line}"));
            assert!(value.parse::<f64>().is_ok(), "bad value in: {line}");
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in: {line}"
            );
            if name_end < series.len() {
                let labels = &series[name_end + 1..series.len() - 1];
                assert!(series.ends_with('}'), "unclosed labels: {line}");
                for pair in labels.split("\",") {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label in: {line}"));
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "bad label name in: {line}"
                    );
                    assert!(v.starts_with('"'), "unquoted label value in: {line}");
                }
            }
        }
    }
}
