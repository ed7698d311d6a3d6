//! The vulnerability gate: reading a scanner's JSON report (Trivy's or
//! Grype's) and deciding whether a candidate may be pinned. Pure.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The severities the gate looks at; others are counted as neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// `CRITICAL` / `Critical`.
    Critical,
    /// `HIGH` / `High`.
    High,
}

/// The critical and high findings of one report, by vulnerability id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// `(severity, id)` pairs.
    pub ids: BTreeSet<(Severity, String)>,
}

impl Findings {
    /// How many findings of `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.ids.iter().filter(|(s, _)| *s == severity).count()
    }
}

/// `scan.block`: what blocks a candidate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    /// Any critical finding.
    #[default]
    Critical,
    /// Any critical or high finding.
    High,
    /// A critical or high finding the running image does not have.
    MoreThanCurrent,
}

/// What the gate decided for a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum ScanVerdict {
    /// Allowed, with its counts.
    Allowed {
        /// Critical findings.
        critical: usize,
        /// High findings.
        high: usize,
    },
    /// Blocked; why.
    Blocked {
        /// One line.
        reason: String,
    },
    /// Not scanned (the scanner failed) but allowed by `scan.on_error: allow`.
    Unscanned {
        /// Why it could not be scanned.
        reason: String,
    },
}

impl ScanVerdict {
    /// One line for the report.
    pub fn line(&self) -> String {
        match self {
            ScanVerdict::Allowed { critical, high } => {
                format!("allowed ({critical} critical, {high} high)")
            }
            ScanVerdict::Blocked { reason } => format!("blocked: {reason}"),
            ScanVerdict::Unscanned { reason } => {
                format!("not scanned, allowed by scan.on_error: {reason}")
            }
        }
    }
}

#[derive(Deserialize)]
struct Trivy {
    #[serde(rename = "Results", default)]
    results: Vec<TrivyResult>,
}

#[derive(Deserialize)]
struct TrivyResult {
    #[serde(rename = "Vulnerabilities", default)]
    vulnerabilities: Option<Vec<TrivyVuln>>,
}

#[derive(Deserialize)]
struct TrivyVuln {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    #[serde(rename = "Severity", default)]
    severity: String,
}

#[derive(Deserialize)]
struct Grype {
    matches: Vec<GrypeMatch>,
}

#[derive(Deserialize)]
struct GrypeMatch {
    vulnerability: GrypeVuln,
}

#[derive(Deserialize)]
struct GrypeVuln {
    id: String,
    #[serde(default)]
    severity: String,
}

fn severity(text: &str) -> Option<Severity> {
    match text.to_ascii_lowercase().as_str() {
        "critical" => Some(Severity::Critical),
        "high" => Some(Severity::High),
        _ => None,
    }
}

/// Reads a Trivy (`Results[].Vulnerabilities[]`) or Grype (`matches[]`) JSON
/// report. The error never quotes the report.
pub fn parse(report: &[u8]) -> Result<Findings, String> {
    let mut ids = BTreeSet::new();
    if let Ok(grype) = serde_json::from_slice::<Grype>(report) {
        for m in grype.matches {
            if let Some(s) = severity(&m.vulnerability.severity) {
                ids.insert((s, m.vulnerability.id));
            }
        }
        return Ok(Findings { ids });
    }
    let trivy: Trivy = serde_json::from_slice(report).map_err(|e| {
        format!(
            "the scanner's output is neither Trivy nor Grype JSON (line {} column {})",
            e.line(),
            e.column()
        )
    })?;
    for r in trivy.results {
        for v in r.vulnerabilities.unwrap_or_default() {
            if let Some(s) = severity(&v.severity) {
                ids.insert((s, v.id));
            }
        }
    }
    Ok(Findings { ids })
}

/// The gate's decision for `candidate` under `block`; `current` is the
/// running image's findings (needed by `more_than_current`; without them
/// every critical or high finding counts as new).
pub fn judge(block: Block, candidate: &Findings, current: Option<&Findings>) -> ScanVerdict {
    let critical = candidate.count(Severity::Critical);
    let high = candidate.count(Severity::High);
    let first = |wanted: &[Severity]| -> Vec<&str> {
        candidate
            .ids
            .iter()
            .filter(|(s, _)| wanted.contains(s))
            .map(|(_, id)| id.as_str())
            .take(5)
            .collect()
    };
    match block {
        Block::Critical if critical > 0 => ScanVerdict::Blocked {
            reason: format!(
                "{critical} critical finding(s): {}",
                first(&[Severity::Critical]).join(", ")
            ),
        },
        Block::High if critical + high > 0 => ScanVerdict::Blocked {
            reason: format!(
                "{critical} critical and {high} high finding(s): {}",
                first(&[Severity::Critical, Severity::High]).join(", ")
            ),
        },
        Block::MoreThanCurrent => {
            let new: Vec<&str> = candidate
                .ids
                .iter()
                .filter(|f| current.is_none_or(|c| !c.ids.contains(*f)))
                .map(|(_, id)| id.as_str())
                .collect();
            if new.is_empty() {
                ScanVerdict::Allowed { critical, high }
            } else {
                ScanVerdict::Blocked {
                    reason: format!(
                        "{} critical or high finding(s) the running image does not have: {}",
                        new.len(),
                        new.iter().take(5).copied().collect::<Vec<_>>().join(", ")
                    ),
                }
            }
        }
        _ => ScanVerdict::Allowed { critical, high },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIVY: &str = r#"{"SchemaVersion":2,"Results":[
        {"Target":"alpine","Vulnerabilities":[
            {"VulnerabilityID":"CVE-1","Severity":"CRITICAL"},
            {"VulnerabilityID":"CVE-2","Severity":"HIGH"},
            {"VulnerabilityID":"CVE-3","Severity":"LOW"}]},
        {"Target":"app","Vulnerabilities":null}]}"#;
    const GRYPE: &str = r#"{"matches":[
        {"vulnerability":{"id":"GHSA-x","severity":"High"},"artifact":{"name":"a"}},
        {"vulnerability":{"id":"CVE-9","severity":"Medium"}}],"source":{}}"#;

    #[test]
    fn trivy_and_grype_reports_are_read() {
        let t = parse(TRIVY.as_bytes()).unwrap();
        assert_eq!(
            (t.count(Severity::Critical), t.count(Severity::High)),
            (1, 1)
        );
        let g = parse(GRYPE.as_bytes()).unwrap();
        assert_eq!(
            (g.count(Severity::Critical), g.count(Severity::High)),
            (0, 1)
        );
        assert!(parse(br#"{"Results":[]}"#).unwrap().ids.is_empty());
        let e = parse(b"secret-ish text").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn thresholds_block_what_they_name() {
        let t = parse(TRIVY.as_bytes()).unwrap();
        let g = parse(GRYPE.as_bytes()).unwrap();
        assert!(
            matches!(judge(Block::Critical, &t, None), ScanVerdict::Blocked { reason } if reason.contains("CVE-1"))
        );
        assert_eq!(
            judge(Block::Critical, &g, None),
            ScanVerdict::Allowed {
                critical: 0,
                high: 1
            }
        );
        assert!(matches!(
            judge(Block::High, &g, None),
            ScanVerdict::Blocked { .. }
        ));
        // The same findings as the running image: allowed; one more: blocked.
        assert!(matches!(
            judge(Block::MoreThanCurrent, &t, Some(&t)),
            ScanVerdict::Allowed { .. }
        ));
        let blocked = judge(Block::MoreThanCurrent, &t, Some(&g));
        assert!(
            matches!(&blocked, ScanVerdict::Blocked { reason } if reason.contains("2 critical or high") && reason.contains("CVE-1")),
            "{blocked:?}"
        );
    }
}
