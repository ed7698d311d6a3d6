//! What Magos tells its owner: one [`Event`] per change of state (a pin, an
//! apply, a failed soak, a rollback, a drift, a heal, a failed pass). The
//! engine emits them; the journal (`magos history`) and the notification sinks
//! read them. Time is passed in, as everywhere in `core`.

use serde::{Deserialize, Serialize};

/// The kinds of event, named as in the configuration's `notify[].events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new digest was pinned and committed (or pushed).
    Pinned,
    /// A pin was proposed as a pull request.
    PullRequest,
    /// A stack's services were changed on the host.
    Applied,
    /// A changed service failed its soak (unhealthy, crash loop, died).
    Unhealthy,
    /// A failed change was undone on the host (and in git when Magos made it).
    RolledBack,
    /// A service newly differs from the repository.
    Drift,
    /// Magos repaired something on the host (pasta networking).
    Healed,
    /// A pass failed as a whole (git, registry, configuration).
    PassFailed,
}

impl EventKind {
    /// Every kind, in the order above.
    pub const ALL: [EventKind; 8] = [
        EventKind::Pinned,
        EventKind::PullRequest,
        EventKind::Applied,
        EventKind::Unhealthy,
        EventKind::RolledBack,
        EventKind::Drift,
        EventKind::Healed,
        EventKind::PassFailed,
    ];

    /// The name used in configuration, JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Pinned => "pinned",
            EventKind::PullRequest => "pull_request",
            EventKind::Applied => "applied",
            EventKind::Unhealthy => "unhealthy",
            EventKind::RolledBack => "rolled_back",
            EventKind::Drift => "drift",
            EventKind::Healed => "healed",
            EventKind::PassFailed => "pass_failed",
        }
    }

    /// The kind named `s`, if any.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that happened. Fields that do not apply stay `None`; none of
/// them ever holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// Seconds since the Unix epoch.
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The image reference without tag or digest, e.g. `ghcr.io/me/app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The digest that ran before (for a pin or a rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_digest: Option<String>,
    /// The digest that runs (or was pinned) now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_digest: Option<String>,
    /// The commit that carries the change (a pin, a revert).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Why: the failed check, the error, the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Event {
    /// An event of `kind` at `at`, every other field empty.
    pub fn new(kind: EventKind, at: i64) -> Self {
        Self {
            kind,
            at,
            stack: None,
            service: None,
            image: None,
            from_digest: None,
            to_digest: None,
            commit: None,
            reason: None,
        }
    }

    pub fn stack(mut self, stack: impl Into<String>) -> Self {
        self.stack = Some(stack.into());
        self
    }

    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    pub fn digests(mut self, from: Option<String>, to: Option<String>) -> Self {
        self.from_digest = from;
        self.to_digest = to;
        self
    }

    pub fn commit(mut self, commit: impl Into<String>) -> Self {
        self.commit = Some(commit.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }

    #[test]
    fn empty_fields_are_left_out_of_json() {
        let e = Event::new(EventKind::Applied, 1).stack("web");
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"kind":"applied","at":1,"stack":"web"}"#);
    }
}
