//! Version ranges as people write them in npm, Renovate and Flux, and the lenient
//! reading of tags as versions.
//!
//! Why not `semver::VersionReq`: it reads Cargo's dialect, which differs from
//! what users of those tools write. It has no `||`, no hyphen ranges, no
//! space-separated AND (comparators must be separated by commas), refuses a
//! leading `v`, and reads a bare `1.2.3` as `^1.2.3` where npm means `=1.2.3`.
//! Its prerelease rule is Cargo's (a prerelease matches only when a comparator
//! names one with the same `major.minor.patch`), while Flux (Masterminds) lets
//! any prerelease in once the range names one. So ranges are parsed here into
//! sets of plain comparators, with npm's desugaring of `^`, `~`, x-ranges and
//! hyphens, and versions are compared with `semver::Version`'s ordering, which
//! implements the SemVer 2.0 precedence rules exactly.

use std::cmp::Ordering;
use std::fmt;

use semver::{Prerelease, Version};

/// A parsed range: an OR of AND-sets of comparators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    text: String,
    sets: Vec<Vec<Comparator>>,
    names_prerelease: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparator {
    op: Op,
    version: Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        let ord = cmp_versions(v, &self.version);
        match self.op {
            Op::Eq => ord == Ordering::Equal,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
        }
    }
}

/// SemVer precedence, build metadata ignored.
fn cmp_versions(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

impl Range {
    /// The range that accepts every release (what `semver` without a range means).
    pub fn any() -> Self {
        Self {
            text: "*".to_owned(),
            sets: vec![Vec::new()],
            names_prerelease: false,
        }
    }

    /// Parses a range: comparators separated by spaces or commas (AND), sets
    /// separated by `||` (OR); `^`, `~` (and `~>`), x-ranges (`1.x`, `1.2.*`,
    /// `1`), hyphen ranges (`1.2 - 2.3.4`); a leading `v` anywhere.
    pub fn parse(text: &str) -> Result<Self, RangeError> {
        let err = |reason: String| RangeError {
            input: text.chars().take(200).collect(),
            reason,
        };
        if text.len() > 1024 {
            return Err(err("the range is too long".to_owned()));
        }
        let mut sets = Vec::new();
        let mut names_prerelease = false;
        for part in text.split("||") {
            let spaced = part.replace(',', " ");
            let raw: Vec<&str> = spaced.split_whitespace().collect();
            // Join an operator written apart from its version (`>= 1.2`).
            let mut tokens: Vec<String> = Vec::new();
            let mut i = 0;
            while i < raw.len() {
                let t = raw[i];
                if is_operator(t) && i + 1 < raw.len() && t != "-" {
                    tokens.push(format!("{t}{}", raw[i + 1]));
                    i += 2;
                } else {
                    tokens.push(t.to_owned());
                    i += 1;
                }
            }
            let mut set = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                if i + 2 < tokens.len() && tokens[i + 1] == "-" {
                    let lo = Partial::parse(&tokens[i]).map_err(&err)?;
                    let hi = Partial::parse(&tokens[i + 2]).map_err(&err)?;
                    names_prerelease |= !lo.pre.is_empty() || !hi.pre.is_empty();
                    hyphen(&lo, &hi, &mut set);
                    i += 3;
                    continue;
                }
                let t = &tokens[i];
                if t == "-" {
                    return Err(err(
                        "a hyphen range needs a version on each side (`1.2.3 - 2.0.0`)".to_owned(),
                    ));
                }
                let (op, rest) = split_operator(t);
                if rest.is_empty() {
                    return Err(err(format!("`{t}` has no version after the operator")));
                }
                let p = Partial::parse(rest).map_err(&err)?;
                names_prerelease |= !p.pre.is_empty();
                desugar(op, &p, &mut set);
                i += 1;
            }
            sets.push(set);
        }
        Ok(Self {
            text: text.trim().to_owned(),
            sets,
            names_prerelease,
        })
    }

    /// Whether the range itself names a prerelease, which lets prereleases in.
    pub fn names_prerelease(&self) -> bool {
        self.names_prerelease
    }

    /// Whether `v` is inside the range, prerelease rule included.
    pub fn matches(&self, v: &Version) -> bool {
        if !v.pre.is_empty() && !self.names_prerelease {
            return false;
        }
        self.sets.iter().any(|set| set.iter().all(|c| c.matches(v)))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A range that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid range `{input}`: {reason}")]
pub struct RangeError {
    /// The range as given.
    pub input: String,
    /// Why it is refused.
    pub reason: String,
}

const OPERATORS: [&str; 8] = [">=", "<=", "~>", ">", "<", "=", "^", "~"];

fn is_operator(t: &str) -> bool {
    OPERATORS.contains(&t)
}

fn split_operator(t: &str) -> (&str, &str) {
    for op in OPERATORS {
        if let Some(rest) = t.strip_prefix(op) {
            return (op, rest);
        }
    }
    ("", t)
}

/// A possibly partial version: `1`, `1.2`, `1.x`, `1.2.3-rc.1`, `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Prerelease,
}

impl Partial {
    fn parse(text: &str) -> Result<Self, String> {
        let t = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let t = t.split_once('+').map_or(t, |(v, _)| v);
        let (nums, pre) = match t.split_once('-') {
            Some((n, p)) => (n, Some(p)),
            None => (t, None),
        };
        let mut parts = nums.split('.');
        let mut comps = [None; 3];
        let mut wildcard = false;
        for slot in &mut comps {
            let Some(c) = parts.next() else { break };
            if matches!(c, "x" | "X" | "*") {
                wildcard = true;
                continue;
            }
            if wildcard {
                return Err(format!("`{text}` has a number after a wildcard"));
            }
            if c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("`{text}` is not a version"));
            }
            *slot = Some(
                c.parse::<u64>()
                    .map_err(|_| format!("`{text}` has a number too large"))?,
            );
        }
        if parts.next().is_some() {
            return Err(format!("`{text}` has more than three version numbers"));
        }
        let pre = match pre {
            None => Prerelease::EMPTY,
            Some("") => return Err(format!("`{text}` has an empty prerelease after `-`")),
            Some(p) => {
                if comps.iter().any(Option::is_none) {
                    return Err(format!(
                        "`{text}`: a prerelease needs a full major.minor.patch version"
                    ));
                }
                Prerelease::new(p).map_err(|_| format!("`{text}` has an invalid prerelease"))?
            }
        };
        Ok(Self {
            major: comps[0],
            minor: comps[1],
            patch: comps[2],
            pre,
        })
    }

    /// The lowest version the partial names: missing parts are 0.
    fn floor(&self) -> Version {
        let mut v = Version::new(
            self.major.unwrap_or(0),
            self.minor.unwrap_or(0),
            self.patch.unwrap_or(0),
        );
        v.pre = self.pre.clone();
        v
    }
}

fn lowest_pre(major: u64, minor: u64, patch: u64) -> Version {
    let mut v = Version::new(major, minor, patch);
    v.pre = Prerelease::new("0").expect("`0` is a valid prerelease");
    v
}

fn push(set: &mut Vec<Comparator>, op: Op, version: Version) {
    set.push(Comparator { op, version });
}

/// A comparator that nothing satisfies: no version is below `0.0.0-0`.
fn never(set: &mut Vec<Comparator>) {
    push(set, Op::Lt, lowest_pre(0, 0, 0));
}

/// The exclusive upper bound one step above the last given part (`1` → `2.0.0-0`,
/// `1.2` → `1.3.0-0`), or nothing on overflow.
fn next_up(p: &Partial) -> Option<Version> {
    match (p.major, p.minor) {
        (Some(m), None) => Some(lowest_pre(m.checked_add(1)?, 0, 0)),
        (Some(m), Some(n)) => Some(lowest_pre(m, n.checked_add(1)?, 0)),
        _ => None,
    }
}

fn desugar(op: &str, p: &Partial, set: &mut Vec<Comparator>) {
    let full = p.patch.is_some();
    let Some(major) = p.major else {
        // `*`, `>=*`, `<=*`, `^*`, `~*`: anything. `>*`, `<*`: nothing.
        if matches!(op, ">" | "<") {
            never(set);
        }
        return;
    };
    match op {
        "" | "=" => {
            if full {
                push(set, Op::Eq, p.floor());
            } else {
                push(set, Op::Ge, p.floor());
                if let Some(up) = next_up(p) {
                    push(set, Op::Lt, up);
                }
            }
        }
        ">" => {
            if full {
                push(set, Op::Gt, p.floor());
            } else {
                match next_up(p) {
                    Some(up) => push(set, Op::Ge, Version::new(up.major, up.minor, 0)),
                    None => never(set),
                }
            }
        }
        ">=" => push(set, Op::Ge, p.floor()),
        "<" => {
            if full {
                push(set, Op::Lt, p.floor());
            } else {
                push(set, Op::Lt, lowest_pre(major, p.minor.unwrap_or(0), 0));
            }
        }
        "<=" => {
            if full {
                push(set, Op::Le, p.floor());
            } else if let Some(up) = next_up(p) {
                push(set, Op::Lt, up);
            }
        }
        "~" | "~>" => {
            push(set, Op::Ge, p.floor());
            let up = match p.minor {
                None => major.checked_add(1).map(|m| lowest_pre(m, 0, 0)),
                Some(n) => n.checked_add(1).map(|n| lowest_pre(major, n, 0)),
            };
            if let Some(up) = up {
                push(set, Op::Lt, up);
            }
        }
        "^" => {
            push(set, Op::Ge, p.floor());
            let up = match (major, p.minor, p.patch) {
                (0, Some(0), Some(patch)) => patch.checked_add(1).map(|x| lowest_pre(0, 0, x)),
                (0, Some(minor), _) => minor.checked_add(1).map(|x| lowest_pre(0, x, 0)),
                (m, _, _) => m.checked_add(1).map(|x| lowest_pre(x, 0, 0)),
            };
            if let Some(up) = up {
                push(set, Op::Lt, up);
            }
        }
        // Every operator comes from `OPERATORS`; should one ever be missed, the
        // comparator matches nothing rather than everything.
        _ => never(set),
    }
}

fn hyphen(lo: &Partial, hi: &Partial, set: &mut Vec<Comparator>) {
    if lo.major.is_some() {
        push(set, Op::Ge, lo.floor());
    }
    if hi.major.is_some() {
        if hi.patch.is_some() {
            push(set, Op::Le, hi.floor());
        } else if let Some(up) = next_up(hi) {
            push(set, Op::Lt, up);
        }
    }
}

/// Reads a tag as a version, leniently as Flux and Renovate do: an optional `v`,
/// one to three numbers (missing ones are 0, so `16.4` is 16.4.0), and an
/// optional `-prerelease`. Anything else (`latest`, `1.2.3.4`, `main-abc`) is not
/// a version.
pub fn parse_tag_version(tag: &str) -> Option<Version> {
    let t = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    let (nums, pre) = match t.split_once('-') {
        Some((n, p)) => (n, Some(p)),
        None => (t, None),
    };
    let mut comps = [0u64; 3];
    for (count, c) in nums.split('.').enumerate() {
        if count == 3 || c.is_empty() || c.len() > 19 || !c.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        comps[count] = c.parse().ok()?;
    }
    let mut v = Version::new(comps[0], comps[1], comps[2]);
    if let Some(p) = pre {
        v.pre = Prerelease::new(p).ok()?;
        if v.pre.is_empty() {
            return None;
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        parse_tag_version(s).unwrap_or_else(|| panic!("{s} is a version"))
    }

    /// (range, versions inside, versions outside)
    const TABLE: &[(&str, &[&str], &[&str])] = &[
        (
            ">=1.2.0 <2.0.0",
            &["1.2.0", "1.9.9"],
            &["1.1.9", "2.0.0", "2.0.0-rc.1", "1.5.0-beta"],
        ),
        (">=1.2.0, <2.0.0", &["1.2.0", "1.9.9"], &["2.0.0"]),
        (">= 1.2.0 < 2.0.0", &["1.2.0"], &["2.0.0"]),
        ("v1.2.3", &["1.2.3"], &["1.2.4"]),
        ("=1.2.3", &["1.2.3"], &["1.2.4"]),
        ("1.2.x", &["1.2.0", "1.2.99"], &["1.3.0", "1.1.9"]),
        ("1.x", &["1.0.0", "1.99.0"], &["2.0.0", "0.9.0"]),
        ("1.2.*", &["1.2.5"], &["1.3.0"]),
        ("1", &["1.5.0"], &["2.0.0"]),
        ("*", &["0.0.1", "99.0.0"], &["1.0.0-rc.1"]),
        ("", &["1.0.0"], &[]),
        ("x", &["1.0.0"], &[]),
        ("^1.2.3", &["1.2.3", "1.9.0"], &["2.0.0", "1.2.2"]),
        ("^0.2.3", &["0.2.3", "0.2.9"], &["0.3.0"]),
        ("^0.0.3", &["0.0.3"], &["0.0.4"]),
        ("^0.0", &["0.0.9"], &["0.1.0"]),
        ("^1.2", &["1.2.0", "1.9.0"], &["2.0.0"]),
        ("^v2", &["2.0.0", "2.5.0"], &["3.0.0"]),
        ("~1.2.3", &["1.2.3", "1.2.9"], &["1.3.0"]),
        ("~1.2", &["1.2.0"], &["1.3.0"]),
        ("~1", &["1.9.0"], &["2.0.0"]),
        ("~>1.2", &["1.2.5"], &["1.3.0"]),
        ("1.2.3 - 2.3.4", &["1.2.3", "2.3.4"], &["2.3.5", "1.2.2"]),
        ("1.2 - 2.3", &["1.2.0", "2.3.9"], &["2.4.0"]),
        ("1.2.3 - 2", &["2.9.0"], &["3.0.0"]),
        ("<1.2 || >=3", &["1.1.9", "3.0.0"], &["1.2.0", "2.0.0"]),
        ("^1 || ^3", &["1.1.0", "3.1.0"], &["2.0.0"]),
        (">1.2", &["1.3.0"], &["1.2.9"]),
        (">1", &["2.0.0"], &["1.9.9"]),
        ("<=1.2", &["1.2.9"], &["1.3.0"]),
        ("<1.2", &["1.1.9"], &["1.2.0"]),
        (">1.2.3", &["1.2.4"], &["1.2.3"]),
        (
            ">=1.0.0-0",
            &["1.0.0-rc.1", "1.1.0-beta", "2.0.0"],
            &["0.9.0-rc.1"],
        ),
        // Once a prerelease is named, precedence decides: 2.0.0-rc.1 < 2.0.0 (Flux).
        (
            ">=1.0.0-rc.1 <2.0.0",
            &["1.0.0-rc.2", "1.5.0", "2.0.0-rc.1"],
            &["1.0.0-beta", "2.0.0"],
        ),
        ("^1.0.0-rc.1", &["1.0.0-rc.2", "1.5.0"], &["2.0.0-rc.1"]),
        ("<*", &[], &["1.0.0"]),
    ];

    #[test]
    fn ranges() {
        for (range, inside, outside) in TABLE {
            let r = Range::parse(range).unwrap_or_else(|e| panic!("{range}: {e}"));
            for s in *inside {
                assert!(r.matches(&v(s)), "{s} should be in `{range}`");
            }
            for s in *outside {
                assert!(!r.matches(&v(s)), "{s} should not be in `{range}`");
            }
        }
    }

    #[test]
    fn bad_ranges() {
        for range in [
            ">=",
            "1.2.3.4",
            "abc",
            "1.x.3",
            ">=1.2.0 -",
            "1.2-rc",
            "1.2.3-",
            "99999999999999999999999",
        ] {
            assert!(Range::parse(range).is_err(), "`{range}` should be refused");
        }
    }

    #[test]
    fn tags_as_versions() {
        assert_eq!(parse_tag_version("v1.2.3"), Some(Version::new(1, 2, 3)));
        assert_eq!(parse_tag_version("16.4"), Some(Version::new(16, 4, 0)));
        assert_eq!(parse_tag_version("16"), Some(Version::new(16, 0, 0)));
        assert_eq!(parse_tag_version("1.02.3"), Some(Version::new(1, 2, 3)));
        assert_eq!(
            parse_tag_version("1.2.3-rc.1").unwrap().pre.as_str(),
            "rc.1"
        );
        for t in [
            "latest",
            "1.2.3.4",
            "main-abc",
            "",
            "v",
            "1..2",
            "1.2.3-",
            "1.2.3-rc.01",
            "1.2.3_x",
        ] {
            assert_eq!(parse_tag_version(t), None, "{t}");
        }
    }
}
