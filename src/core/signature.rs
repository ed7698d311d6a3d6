//! Signature policy: which `verify:` rules cover an image, what a candidate's
//! signature check found, and what the pin pass does next — pin it, or skip
//! it and let the policy choose again among the tags left. Pure: the registry
//! edge fetches and checks signatures, this decides.

use serde::Serialize;

/// What the registry edge found for one candidate digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// A signature by a rule's key, whose payload names this digest and repository.
    Verified {
        /// The key's fingerprint (`sha256:` of its public key, shortened).
        key: String,
    },
    /// No signature at all.
    Unsigned {
        /// What was looked for.
        reason: String,
    },
    /// Signatures, but none valid for this digest with the rules' keys.
    BadSignature {
        /// Why each failed, in one line.
        reason: String,
    },
    /// Blocked by the vulnerability gate (reported like an unsigned one).
    Blocked {
        /// The gate's reason.
        reason: String,
    },
}

impl Verdict {
    /// `verified`, `unsigned` or `bad signature`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Verified { .. } => "verified",
            Verdict::Unsigned { .. } => "unsigned",
            Verdict::BadSignature { .. } => "bad signature",
            Verdict::Blocked { .. } => "blocked by scan",
        }
    }

    /// One line: the word and, for a failure, its reason.
    pub fn line(&self) -> String {
        match self {
            Verdict::Verified { key } => format!("verified (key {key})"),
            Verdict::Unsigned { reason }
            | Verdict::BadSignature { reason }
            | Verdict::Blocked { reason } => {
                format!("{}: {reason}", self.word())
            }
        }
    }
}

/// What the pin pass does after a candidate's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Pin this candidate.
    Pin,
    /// Never pin it: drop its tag and let the policy choose again.
    Skip,
    /// Stop: `tried` candidates failed; pin nothing this time.
    GiveUp {
        /// Why, in one line.
        reason: String,
    },
}

/// After `verdict` for the `tried`-th candidate (1 for the first): pin a
/// verified one; skip a failing one while fewer than `max` were tried; else
/// give up.
pub fn next(verdict: &Verdict, tried: usize, max: usize) -> Next {
    match verdict {
        Verdict::Verified { .. } => Next::Pin,
        _ if tried < max => Next::Skip,
        _ => Next::GiveUp {
            reason: format!(
                "none of the {tried} newest allowed candidates has a valid signature; not looking further this time"
            ),
        },
    }
}

/// The rules (indexes into `rules`) covering `repository` (`registry/path`):
/// those whose pattern matches it, and the one `named` by the annotation.
/// Each rule is `(name, pattern)`. An annotation naming no rule is an error.
pub fn rules_for(
    rules: &[(Option<&str>, Option<&str>)],
    repository: &str,
    named: Option<&str>,
) -> Result<Vec<usize>, String> {
    let mut out: Vec<usize> = rules
        .iter()
        .enumerate()
        .filter(|(_, (_, pattern))| pattern.is_some_and(|p| glob(p, repository)))
        .map(|(i, _)| i)
        .collect();
    if let Some(name) = named {
        let Some(i) = rules.iter().position(|(n, _)| *n == Some(name)) else {
            let known: Vec<&str> = rules.iter().filter_map(|(n, _)| *n).collect();
            return Err(format!(
                "the annotation's \"verify\": \"{name}\" names no verify rule (named rules: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        };
        if !out.contains(&i) {
            out.push(i);
        }
    }
    Ok(out)
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters
/// (`/` included) and everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_candidate_is_pinned_a_failing_one_skipped_until_the_limit() {
        let ok = Verdict::Verified { key: "k".into() };
        let unsigned = Verdict::Unsigned { reason: "r".into() };
        let bad = Verdict::BadSignature { reason: "r".into() };
        assert_eq!(next(&ok, 1, 3), Next::Pin);
        assert_eq!(next(&ok, 3, 3), Next::Pin);
        assert_eq!(next(&unsigned, 1, 3), Next::Skip);
        assert_eq!(next(&bad, 2, 3), Next::Skip);
        assert!(matches!(next(&bad, 3, 3), Next::GiveUp { .. }));
        assert_eq!(bad.line(), "bad signature: r");
        assert_eq!(ok.line(), "verified (key k)");
    }

    #[test]
    fn rules_cover_by_pattern_and_by_name() {
        let rules = [
            (None, Some("ghcr.io/me/*")),
            (Some("lab"), None),
            (Some("all"), Some("*")),
        ];
        assert_eq!(rules_for(&rules, "ghcr.io/me/app", None), Ok(vec![0, 2]));
        assert_eq!(
            rules_for(&rules[..2], "docker.io/library/nginx", None),
            Ok(vec![])
        );
        assert_eq!(rules_for(&rules[..2], "x/y", Some("lab")), Ok(vec![1]));
        let err = rules_for(&rules[..1], "x/y", Some("nope")).unwrap_err();
        assert!(err.contains("\"nope\"") && err.contains("none"), "{err}");
    }

    #[test]
    fn globs() {
        assert!(glob("ghcr.io/me/*", "ghcr.io/me/app"));
        assert!(glob("ghcr.io/me/*", "ghcr.io/me/a/b"));
        assert!(!glob("ghcr.io/me/*", "ghcr.io/mex"));
        assert!(glob("*/magos/*", "127.0.0.1:5000/magos/signed"));
        assert!(glob("exact/x", "exact/x"));
        assert!(!glob("exact/x", "exact/xy"));
        assert!(glob("a*b*c", "abc"));
        assert!(!glob("a*b*c", "acb"));
    }
}
