//! The signature screen of one service's check: under a `verify:` rule, each
//! candidate the policy elects is verified (registry edge) and judged (core,
//! [`crate::core::signature::next`]); a failing one is dropped from the tags so
//! the policy chooses again among the rest.

use std::borrow::Cow;

use serde::Serialize;

use super::{Policies, Row, Update, Watched};
use crate::config::{ScanConfig, ScanOnError};
use crate::core::scan::{self as gate, Findings, ScanVerdict};
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
    /// The chosen digest's vulnerability scan, when `scan:` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanVerdict>,
}

/// One candidate the screen judged, with its signature and scan verdicts kept
/// apart (`candidates` of a report row), best first; the last one is the
/// pinned one when `chosen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The tag.
    pub tag: String,
    /// Its digest.
    pub digest: String,
    /// Whether it is the one pinned.
    pub chosen: bool,
    /// Its signature check, under a `verify:` rule (`verified`, `unsigned`,
    /// `bad_signature`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Verdict>,
    /// Its vulnerability scan, when `scan:` is on and it was scanned
    /// (`allowed`, `blocked`, `unscanned`); a candidate whose signature
    /// failed is not scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanVerdict>,
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
    scan: Option<&'a ScanConfig>,
    watch: ImageRef,
    current: String,
    current_findings: Option<Result<Findings, String>>,
    chosen: Option<Verdict>,
    chosen_scan: Option<ScanVerdict>,
    skipped: Vec<Skipped>,
    candidates: Vec<Candidate>,
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
        let scan = Some(check.client().scan_config()).filter(|c| !c.command.is_empty());
        Ok(Self {
            keys,
            scan,
            watch: watch.clone(),
            current: s.image.clone(),
            current_findings: None,
            chosen: None,
            chosen_scan: None,
            skipped: Vec::new(),
            candidates: Vec::new(),
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

    /// Verifies the elected candidate under the rules, then runs the
    /// vulnerability gate on it (nothing to do without either).
    pub async fn judge(
        &mut self,
        check: &Check,
        tag: &str,
        digest: &Digest,
    ) -> Result<Next, super::CheckError> {
        let verdict = if self.keys.is_empty() {
            None
        } else {
            Some(
                check
                    .verify(&self.watch, digest, &self.keys)
                    .await
                    .map_err(|source| super::CheckError::Signature {
                        tag: tag.to_owned(),
                        source,
                    })?,
            )
        };
        let verdict = match verdict {
            Some(v @ (Verdict::Unsigned { .. } | Verdict::BadSignature { .. })) => {
                self.candidates.push(Candidate {
                    tag: tag.to_owned(),
                    digest: digest.to_string(),
                    chosen: false,
                    signature: Some(v.clone()),
                    scan: None,
                });
                v
            }
            signed => {
                let scanned = self.gate(digest).await;
                let blocked = matches!(scanned, Some(ScanVerdict::Blocked { .. }));
                self.candidates.push(Candidate {
                    tag: tag.to_owned(),
                    digest: digest.to_string(),
                    chosen: !blocked,
                    signature: signed.clone(),
                    scan: scanned.clone(),
                });
                match scanned {
                    Some(ScanVerdict::Blocked { reason }) => Verdict::Blocked { reason },
                    scanned => {
                        self.chosen_scan = scanned;
                        self.chosen = signed;
                        return Ok(Next::Pin);
                    }
                }
            }
        };
        let tried = self.skipped.len() + 1;
        Ok(match signature::next(&verdict, tried, MAX_CANDIDATES) {
            signature::Next::Pin => Next::Pin,
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

    /// The vulnerability gate's verdict on `digest`, `None` when it is off.
    async fn gate(&mut self, digest: &Digest) -> Option<ScanVerdict> {
        let config = self.scan?;
        let image = format!("{}@{digest}", self.watch.repository_key());
        let candidate = scan(config, image).await;
        let current = if config.block == gate::Block::MoreThanCurrent {
            if self.current_findings.is_none() {
                self.current_findings = Some(scan(config, self.current.clone()).await);
            }
            match self.current_findings.as_ref() {
                Some(Ok(f)) => Some(f),
                Some(Err(e)) => {
                    return Some(on_error(
                        config,
                        format!("cannot scan the running image: {e}"),
                    ));
                }
                None => None,
            }
        } else {
            None
        };
        Some(match candidate {
            Ok(findings) => gate::judge(config.block, &findings, current),
            Err(e) => on_error(config, e),
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

    /// The row's `signature` (`None` without a rule or gate) and its
    /// `candidates`; the skipped candidates and the chosen one's verdicts are
    /// added to `reason` for the table.
    pub fn report(self, reason: &mut String) -> (Option<Report>, Vec<Candidate>) {
        if self.keys.is_empty() && self.scan.is_none() {
            return (None, Vec::new());
        }
        for s in &self.skipped {
            reason.push_str(&format!("; skipped {}: {}", s.tag, s.verdict.line()));
        }
        if let Some(v) = &self.chosen {
            reason.push_str(&format!("; signature {}", v.line()));
        }
        if let Some(v) = &self.chosen_scan {
            reason.push_str(&format!("; scan {}", v.line()));
        }
        let report = Report {
            chosen: self.chosen,
            skipped: self.skipped,
            scan: self.chosen_scan,
        };
        (Some(report), self.candidates)
    }
}

/// Runs the scanner on `image` (on a blocking thread) and reads its report.
async fn scan(config: &ScanConfig, image: String) -> Result<Findings, String> {
    let command = config.command.clone();
    let timeout = config.timeout.0;
    let shown = image.clone();
    let output = tokio::task::spawn_blocking(move || crate::scan::run(&command, &image, timeout))
        .await
        .map_err(|e| format!("the scan task failed: {e}"))??;
    gate::parse(&output).map_err(|e| format!("{e} (scanning {shown})"))
}

/// What `scan.on_error` makes of a scan that failed.
fn on_error(config: &ScanConfig, error: String) -> ScanVerdict {
    match config.on_error {
        ScanOnError::Block => ScanVerdict::Blocked {
            reason: format!("cannot scan: {error}"),
        },
        ScanOnError::Allow => ScanVerdict::Unscanned { reason: error },
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
            candidates: Vec::new(),
            rejected: None,
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
            scan: None,
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
