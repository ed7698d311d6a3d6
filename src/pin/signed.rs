//! The signature screen of one service's check: under a `verify:` rule, each
//! candidate the policy elects is verified (registry edge) and judged (core,
//! [`crate::core::signature::next`]); a failing one is dropped from the tags so
//! the policy chooses again among the rest.

use std::borrow::Cow;

use serde::Serialize;

use super::{Policies, Row, Update, Watched};
use crate::core::signature::{self, Verdict};
use crate::registry::{Check, Digest, ImageRef, VerifyKey};

/// Candidates tried per service and check, at most.
pub const MAX_CANDIDATES: usize = 8;

/// A candidate skipped for its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The tag.
    pub tag: String,
    /// Its digest.
    pub digest: String,
    /// What its signature check found.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The `signature` of a report row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The chosen digest's verdict (`None` when nothing was chosen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<Verdict>,
    /// The candidates skipped, best first.
    pub skipped: Vec<Skipped>,
}

/// What the check does after a candidate's verification.
pub enum Next {
    /// Pin it.
    Pin,
    /// Drop it; decide again.
    Skip,
    /// Pin nothing; why.
    GiveUp(String),
}

/// The screen of one service: its rules' keys and what it found so far.
pub struct Screen<'a> {
    keys: Vec<&'a VerifyKey>,
    watch: ImageRef,
    chosen: Option<Verdict>,
    skipped: Vec<Skipped>,
}

impl<'a> Screen<'a> {
    /// The keys of the rules covering the service's watched repository, or
    /// named by its annotation. An annotation naming no rule is an error.
    pub fn new(
        check: &'a Check,
        policies: &dyn Policies,
        s: &Watched,
        watch: &ImageRef,
    ) -> Result<Self, String> {
        let all = check.client().verify_keys();
        let rules: Vec<(Option<&str>, Option<&str>)> = all
            .iter()
            .map(|k| (k.name.as_deref(), k.pattern.as_deref()))
            .collect();
        let named = policies.verify_rule(s);
        let keys = signature::rules_for(&rules, &watch.repository_key(), named.as_deref())?
            .into_iter()
            .map(|i| &all[i])
            .collect();
        Ok(Self {
            keys,
            watch: watch.clone(),
            chosen: None,
            skipped: Vec::new(),
        })
    }

    /// The tags the policy may still choose from.
    pub fn tags<'t>(&self, all: &'t [String]) -> Cow<'t, [String]> {
        if self.skipped.is_empty() {
            Cow::Borrowed(all)
        } else {
            Cow::Owned(
                all.iter()
                    .filter(|t| !self.skipped.iter().any(|s| &s.tag == *t))
                    .cloned()
                    .collect(),
            )
        }
    }

    /// Verifies the elected candidate (nothing to do without a rule).
    pub async fn judge(
        &mut self,
        check: &Check,
        tag: &str,
        digest: &Digest,
    ) -> Result<Next, String> {
        if self.keys.is_empty() {
            return Ok(Next::Pin);
        }
        let verdict = check
            .verify(&self.watch, digest, &self.keys)
            .await
            .map_err(|e| format!("cannot check the signature of {tag}: {e}"))?;
        let tried = self.skipped.len() + 1;
        Ok(match signature::next(&verdict, tried, MAX_CANDIDATES) {
            signature::Next::Pin => {
                self.chosen = Some(verdict);
                Next::Pin
            }
            signature::Next::Skip => {
                self.skip(tag, digest, verdict);
                Next::Skip
            }
            signature::Next::GiveUp { reason } => {
                self.skip(tag, digest, verdict);
                Next::GiveUp(reason)
            }
        })
    }

    fn skip(&mut self, tag: &str, digest: &Digest, verdict: Verdict) {
        tracing::info!(image = %self.watch, tag, verdict = %verdict.line(), "candidate not pinned: its signature does not verify");
        self.skipped.push(Skipped {
            tag: tag.to_owned(),
            digest: digest.to_string(),
            verdict,
        });
    }

    /// The row's `signature` (`None` without a rule); the skipped candidates
    /// and the chosen one's verdict are added to `reason` for the table.
    pub fn report(self, reason: &mut String) -> Option<Report> {
        if self.keys.is_empty() {
            return None;
        }
        for s in &self.skipped {
            reason.push_str(&format!("; skipped {}: {}", s.tag, s.verdict.line()));
        }
        if let Some(v) = &self.chosen {
            reason.push_str(&format!("; signature {}", v.line()));
        }
        Some(Report {
            chosen: self.chosen,
            skipped: self.skipped,
        })
    }
}

/// A commit message with one `Magos-Verified-Key: <fingerprint> (<stack>/<service>)`
/// trailer per updated service whose digest was verified; unchanged without
/// any (an empty message, for writes without a commit, stays empty).
pub fn with_trailers(message: String, rows: &[Row], updates: &[Update]) -> String {
    let trailers: Vec<String> = updates
        .iter()
        .filter_map(|u| {
            let row = rows
                .iter()
                .find(|r| r.stack == u.stack && r.service == u.service)?;
            match row.signature.as_ref()?.chosen.as_ref()? {
                Verdict::Verified { key } => Some(format!(
                    "Magos-Verified-Key: {key} ({}/{})",
                    u.stack, u.service
                )),
                _ => None,
            }
        })
        .collect();
    if trailers.is_empty() || message.is_empty() {
        return message;
    }
    format!("{}\n\n{}\n", message.trim_end(), trailers.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(service: &str, signature: Option<Report>) -> Row {
        Row {
            stack: "web".into(),
            service: service.into(),
            location: "web/compose.yaml:3".into(),
            current: "ghcr.io/me/app:1.0".into(),
            chosen: None,
            tag: Some("1.1".into()),
            digest: None,
            update: Some(true),
            reason: String::new(),
            error: None,
            signature,
        }
    }

    fn update(service: &str) -> Update {
        Update {
            stack: "web".into(),
            service: service.into(),
            file: "web/compose.yaml".into(),
            old: "ghcr.io/me/app:1.0".into(),
            new: "ghcr.io/me/app:1.1@sha256:…".into(),
            tag: "1.1".into(),
        }
    }

    #[test]
    fn a_verified_pin_leaves_its_key_in_a_trailer() {
        let verified = Report {
            chosen: Some(Verdict::Verified {
                key: "sha256:0123456789abcdef".into(),
            }),
            skipped: Vec::new(),
        };
        let rows = [row("app", Some(verified)), row("db", None)];
        let updates = [update("app"), update("db")];
        assert_eq!(
            with_trailers("Pin 2 image update(s)\n\n- …\n".into(), &rows, &updates),
            "Pin 2 image update(s)\n\n- …\n\nMagos-Verified-Key: sha256:0123456789abcdef (web/app)\n"
        );
        assert_eq!(with_trailers("Pin\n".into(), &rows[1..], &updates), "Pin\n");
        assert_eq!(with_trailers(String::new(), &rows, &updates), "");
    }
}
