//! Image update policies and the decision they make among a repository's tags.
//!
//! A [`Policy`] is built from the keys of an annotation (see `annotation`) and
//! [`Policy::decide`] picks a tag from facts passed in: the tags, when each was
//! first seen, which platforms each offers, the current tag and `now`. Nothing
//! here asks a registry or reads the clock.
//!
//! Ties are broken the same way everywhere: among tags of equal rank (`1.2.3`
//! and `v1.2.3`, `007` and `7`) the current tag wins if it is one of them, so a
//! pin never flips between equivalent spellings; otherwise the byte-wise smallest
//! tag wins, so the answer never depends on the order a registry lists tags in.

use std::cmp::Ordering;
use std::fmt;
use std::time::{Duration, SystemTime};

use regex::Regex;
use semver::Version;

use super::duration;
use super::range::{self, Range};
use super::reference::{Digest, ImageRef};

/// The annotation keys, in the order they are documented.
pub const KEYS: &[&str] = &[
    "policy", "repo", "range", "tag", "digest", "order", "filter", "extract", "platform", "minAge",
    "verify",
];

/// The policy names.
pub const POLICIES: &[&str] = &["semver", "latest", "digest", "numerical", "alphabetical"];

/// Which tag a policy follows.
#[derive(Debug, Clone)]
pub enum Kind {
    /// The highest version inside a range.
    Semver(Range),
    /// A moving tag (default `latest`), re-pinned when its digest moves.
    Latest(String),
    /// A fixed digest, never changed (drift against it is reported). `None`: the
    /// digest written in the image reference.
    Digest(Option<Digest>),
    /// Tags (or the extracted part) ordered as numbers.
    Numerical,
    /// Tags (or the extracted part) ordered as text, byte by byte.
    Alphabetical,
}

/// Which end of the order wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// The highest wins (Flux's default).
    #[default]
    Asc,
    /// The lowest wins.
    Desc,
}

/// A candidate filter: a regex every tag must match, and optionally the template
/// (`$ts`, `${major}.${minor}`) whose expansion is what gets ordered.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The regex, as written.
    pub regex: Regex,
    /// The extract template, as written.
    pub extract: Option<String>,
}

/// An `os/arch[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform(String);

impl Platform {
    /// Checks `os/arch` or `os/arch/variant` (lower-case letters, digits, `_`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok = (2..=3).contains(&parts.len())
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "`{text}` is not a platform (write os/arch or os/arch/variant, e.g. linux/arm64)"
            ))
        }
    }

    /// The platform text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// What it follows.
    pub kind: Kind,
    /// The repository to watch when it is not the image's own.
    pub repo: Option<ImageRef>,
    /// For numerical and alphabetical: which end wins.
    pub order: Order,
    /// Candidate filter.
    pub filter: Option<Filter>,
    /// The platform to pin for multi-arch images.
    pub platform: Option<Platform>,
    /// How long ago a tag must have been first seen.
    pub min_age: Option<Duration>,
    /// The `verify:` rule (by name) whose key must have signed what is pinned.
    pub verify: Option<String>,
}

/// A policy key whose value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The key at fault; `None` when the problem is the whole policy.
    pub key: Option<String>,
    /// One line, naming the key and the value.
    pub message: String,
    /// Whether the value is at fault (else the key itself).
    pub on_value: bool,
}

impl FieldError {
    fn at(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: Some(key.to_owned()),
            message: message.into(),
            on_value: true,
        }
    }

    fn key(key: &str, message: impl Into<String>) -> Self {
        Self {
            on_value: false,
            ..Self::at(key, message)
        }
    }
}

impl Policy {
    /// Builds a policy from its string-valued keys. Unknown keys, keys that do
    /// not apply to the policy, and invalid values are refused.
    pub fn from_fields(fields: &[(&str, &str)]) -> Result<Self, FieldError> {
        for (key, _) in fields {
            if !KEYS.contains(key) {
                return Err(FieldError::key(
                    key,
                    format!("unknown key `{key}` (known: {})", KEYS.join(", ")),
                ));
            }
        }
        let get = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let Some(name) = get("policy") else {
            return Err(FieldError {
                key: None,
                message: format!(
                    "the `policy` key is missing (one of {})",
                    POLICIES.join(", ")
                ),
                on_value: false,
            });
        };
        let applicable: &[&str] = match name {
            "semver" => &["range", "filter", "extract", "platform", "minAge"],
            "latest" => &["tag", "platform"],
            "digest" => &["digest", "platform"],
            "numerical" | "alphabetical" => &["order", "filter", "extract", "platform", "minAge"],
            other => {
                return Err(FieldError::at(
                    "policy",
                    format!("unknown policy `{other}` (one of {})", POLICIES.join(", ")),
                ));
            }
        };
        for (key, _) in fields {
            if !matches!(*key, "policy" | "repo" | "verify") && !applicable.contains(key) {
                return Err(FieldError::key(
                    key,
                    format!("`{key}` does not apply to the {name} policy"),
                ));
            }
        }
        let kind = match name {
            "semver" => Kind::Semver(match get("range") {
                Some(r) => Range::parse(r).map_err(|e| FieldError::at("range", e.to_string()))?,
                None => Range::any(),
            }),
            "latest" => {
                let tag = get("tag").unwrap_or("latest");
                super::reference::check_tag(tag)
                    .map_err(|e| FieldError::at("tag", format!("invalid tag `{tag}`: {e}")))?;
                Kind::Latest(tag.to_owned())
            }
            "digest" => Kind::Digest(
                get("digest")
                    .map(|d| Digest::parse(d).map_err(|e| FieldError::at("digest", e.to_string())))
                    .transpose()?,
            ),
            "numerical" => Kind::Numerical,
            _ => Kind::Alphabetical,
        };
        let repo = get("repo")
            .map(|r| {
                let image =
                    ImageRef::parse(r).map_err(|e| FieldError::at("repo", e.to_string()))?;
                if image.tag.is_some() || image.digest.is_some() {
                    return Err(FieldError::at(
                        "repo",
                        format!("`{r}`: a repo is a name without tag or digest"),
                    ));
                }
                Ok(image)
            })
            .transpose()?;
        let order = match get("order") {
            None | Some("asc") => Order::Asc,
            Some("desc") => Order::Desc,
            Some(o) => {
                return Err(FieldError::at(
                    "order",
                    format!("invalid order `{o}` (asc or desc)"),
                ));
            }
        };
        let filter = match (get("filter"), get("extract")) {
            (None, Some(_)) => {
                return Err(FieldError::at(
                    "extract",
                    "`extract` needs a `filter` regex with the named group it refers to",
                ));
            }
            (None, None) => None,
            (Some(f), extract) => {
                let regex = regex::RegexBuilder::new(f)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        let first = e.to_string();
                        let last = first.lines().last().unwrap_or("").trim();
                        let last = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                        FieldError::at("filter", format!("invalid filter regex `{f}`: {last}"))
                    })?;
                if let Some(x) = extract {
                    check_extract(&regex, x)?;
                }
                Some(Filter {
                    regex,
                    extract: extract.map(str::to_owned),
                })
            }
        };
        let platform = get("platform")
            .map(|p| Platform::parse(p).map_err(|e| FieldError::at("platform", e)))
            .transpose()?;
        let min_age = get("minAge")
            .map(|d| duration::parse(d).map_err(|e| FieldError::at("minAge", e.to_string())))
            .transpose()?;
        let verify = match get("verify") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
            {
                Some(name.to_owned())
            }
            Some(name) => {
                return Err(FieldError::at(
                    "verify",
                    format!("`{name}` is not a verify rule name (letters, digits, -, _, .)"),
                ));
            }
            None => None,
        };
        Ok(Self {
            kind,
            repo,
            order,
            filter,
            platform,
            min_age,
            verify,
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Semver(_) => "semver",
            Kind::Latest(_) => "latest",
            Kind::Digest(_) => "digest",
            Kind::Numerical => "numerical",
            Kind::Alphabetical => "alphabetical",
        }
    }

    /// The repository whose tags are watched: `repo` if given, else the image's.
    pub fn repository(&self, image: &ImageRef) -> String {
        self.repo.as_ref().unwrap_or(image).repository_key()
    }

    /// Picks a tag among the candidates.
    pub fn decide(
        &self,
        candidates: &[Candidate<'_>],
        current: Option<&str>,
        now: SystemTime,
    ) -> Decision {
        match &self.kind {
            Kind::Digest(d) => Decision::Fixed {
                tag: current.map(str::to_owned),
                reason: match d {
                    Some(d) => format!("the digest policy keeps {d}; it is never updated, only checked for drift"),
                    None => "the digest policy keeps the digest written in the image; it is never updated, only checked for drift".to_owned(),
                },
            },
            Kind::Latest(tag) => {
                let found = candidates.iter().find(|c| c.tag == tag.as_str());
                match found {
                    Some(c) if !self.platform_ok(c) => Decision::None {
                        reason: format!(
                            "tag `{tag}` has no image for {}",
                            self.platform.as_ref().map_or("", Platform::as_str)
                        ),
                    },
                    Some(_) => Decision::Chosen {
                        tag: tag.clone(),
                        reason: format!("follows the moving tag `{tag}`; its digest is re-pinned when it moves"),
                    },
                    None => Decision::None {
                        reason: format!("tag `{tag}` is not among the {} tags", candidates.len()),
                    },
                }
            }
            Kind::Semver(range) => self.choose(candidates, current, now, Rank::Semver(range)),
            Kind::Numerical => self.choose(candidates, current, now, Rank::Numerical),
            Kind::Alphabetical => self.choose(candidates, current, now, Rank::Alphabetical),
        }
    }

    fn platform_ok(&self, c: &Candidate<'_>) -> bool {
        match (&self.platform, c.platforms) {
            (Some(p), Some(list)) => list.iter().any(|x| x == p.as_str()),
            _ => true,
        }
    }

    /// The value a tag is ranked by: the tag, or the extract template's expansion.
    /// `None`: the filter does not match.
    fn value<'t>(&self, tag: &'t str) -> Option<std::borrow::Cow<'t, str>> {
        match &self.filter {
            None => Some(tag.into()),
            Some(f) => {
                let caps = f.regex.captures(tag)?;
                match &f.extract {
                    None => Some(tag.into()),
                    Some(x) => {
                        let mut out = String::new();
                        caps.expand(x, &mut out);
                        Some(out.into())
                    }
                }
            }
        }
    }

    fn choose(
        &self,
        candidates: &[Candidate<'_>],
        current: Option<&str>,
        now: SystemTime,
        rank: Rank<'_>,
    ) -> Decision {
        let mut counts = Counts::default();
        let mut best: Option<(Key, &str)> = None;
        let highest_wins = self.order == Order::Asc || matches!(rank, Rank::Semver(_));
        for c in candidates {
            let Some(value) = self.value(c.tag) else {
                counts.filtered += 1;
                continue;
            };
            let key = match rank.key(&value) {
                Ok(k) => k,
                Err(skip) => {
                    counts.add(skip);
                    continue;
                }
            };
            if !self.platform_ok(c) {
                counts.wrong_platform += 1;
                continue;
            }
            if let Some(min) = self.min_age {
                let old_enough = c
                    .first_seen
                    .and_then(|seen| now.duration_since(seen).ok())
                    .is_some_and(|age| age >= min);
                if !old_enough {
                    counts.too_young += 1;
                    continue;
                }
            }
            counts.qualified += 1;
            let better = match &best {
                None => true,
                Some((bk, bt)) => {
                    let ord = if highest_wins {
                        key.cmp(bk)
                    } else {
                        bk.cmp(&key)
                    };
                    match ord {
                        Ordering::Greater => true,
                        Ordering::Less => false,
                        Ordering::Equal => tie_wins(c.tag, bt, current),
                    }
                }
            };
            if better {
                best = Some((key, c.tag));
            }
        }
        let total = candidates.len();
        let what = rank.describe(self);
        let Some((key, tag)) = best else {
            return Decision::None {
                reason: format!(
                    "none of {total} tags qualifies for {what}{}",
                    counts.explain()
                ),
            };
        };
        // Semver never downgrades below a current version that is still allowed.
        if let (Rank::Semver(range), Key::Version(best_v), Some(cur)) = (&rank, &key, current)
            && let Some(cur_v) = self.value(cur).and_then(|v| range::parse_tag_version(&v))
            && range.matches(&cur_v)
            && cur_v > *best_v
        {
            return Decision::Chosen {
                tag: cur.to_owned(),
                reason: format!(
                    "the current tag {cur} is newer than every qualifying tag (best {tag}) and still satisfies {what}; no downgrade"
                ),
            };
        }
        let end = if highest_wins { "highest" } else { "lowest" };
        Decision::Chosen {
            tag: tag.to_owned(),
            reason: format!(
                "{tag} is the {end} of {} out of {total} for {what}{}",
                if counts.qualified == 1 {
                    "1 qualifying tag".to_owned()
                } else {
                    format!("{} qualifying tags", counts.qualified)
                },
                counts.explain()
            ),
        }
    }
}

/// Whether `tag` beats `best` at equal rank: the current tag, else the byte-wise
/// smallest.
fn tie_wins(tag: &str, best: &str, current: Option<&str>) -> bool {
    match current {
        Some(c) if c == best => false,
        Some(c) if c == tag => true,
        _ => tag < best,
    }
}

fn check_extract(regex: &Regex, template: &str) -> Result<(), FieldError> {
    let names: Vec<&str> = regex.capture_names().flatten().collect();
    let bytes = template.as_bytes();
    let mut refs = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
            match template[i + 2..].find('}') {
                Some(end) => (&template[i + 2..i + 2 + end], i + 3 + end),
                None => {
                    return Err(FieldError::at(
                        "extract",
                        format!("`{template}`: `${{` is never closed"),
                    ));
                }
            }
        } else {
            let len = template[i + 1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(template.len() - i - 1);
            (&template[i + 1..i + 1 + len], i + 1 + len)
        };
        let known = match name.parse::<usize>() {
            Ok(n) => n < regex.captures_len(),
            Err(_) => names.contains(&name),
        };
        if name.is_empty() || !known {
            return Err(FieldError::at(
                "extract",
                format!(
                    "`{template}` refers to `{name}`, which is not a group of the filter (groups: {})",
                    if names.is_empty() {
                        "none named".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        }
        refs += 1;
        i = next;
    }
    if refs == 0 {
        return Err(FieldError::at(
            "extract",
            format!("`{template}` refers to no group (write `$name` for the group `(?P<name>…)`)"),
        ));
    }
    Ok(())
}

/// One tag offered to a policy, with the facts known about it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The tag.
    pub tag: &'a str,
    /// When Magos first saw the tag; unknown counts as "just now" for `minAge`.
    pub first_seen: Option<SystemTime>,
    /// The platforms the tag's image offers (`linux/amd64`, …), when known.
    pub platforms: Option<&'a [String]>,
}

impl<'a> Candidate<'a> {
    /// A tag with no further facts.
    pub fn tag(tag: &'a str) -> Self {
        Self {
            tag,
            first_seen: None,
            platforms: None,
        }
    }
}

/// One step of a decision under `minAge`: the decision, or the tag whose
/// creation time must be known first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgedStep {
    /// The decision.
    Decided(Decision),
    /// Ask when this tag's image was created, then decide again.
    NeedCreated(String),
}

impl Policy {
    /// [`Policy::decide`] among `tags` when creation times matter (`minAge`):
    /// `created` holds those known so far (`None`: the registry gives none).
    /// The winner among the tags not known to be too young is found without
    /// the age rule; its creation time is asked for when unknown; once it is
    /// known to be old enough (or nothing is left), the policy decides with
    /// every known creation time (an unknown one counts as "just now"), so only
    /// the tags that would otherwise win are looked up. Without `minAge` it is
    /// the plain decision.
    pub fn decide_aged(
        &self,
        tags: &[String],
        current: Option<&str>,
        created: &std::collections::BTreeMap<String, Option<SystemTime>>,
        now: SystemTime,
    ) -> AgedStep {
        let Some(min) = self.min_age else {
            let all: Vec<Candidate<'_>> = tags.iter().map(|t| Candidate::tag(t)).collect();
            return AgedStep::Decided(self.decide(&all, current, now));
        };
        let old_enough = |t: &str| match created.get(t) {
            Some(Some(at)) => now.duration_since(*at).is_ok_and(|age| age >= min),
            Some(None) => false,
            None => true,
        };
        let open: Vec<Candidate<'_>> = tags
            .iter()
            .filter(|t| old_enough(t))
            .map(|t| Candidate::tag(t))
            .collect();
        let relaxed = Policy {
            min_age: None,
            ..self.clone()
        };
        if let Decision::Chosen { tag, .. } = relaxed.decide(&open, current, now)
            && !created.contains_key(&tag)
        {
            return AgedStep::NeedCreated(tag);
        }
        let all: Vec<Candidate<'_>> = tags
            .iter()
            .map(|t| Candidate {
                tag: t,
                first_seen: created.get(t.as_str()).copied().flatten(),
                platforms: None,
            })
            .collect();
        AgedStep::Decided(self.decide(&all, current, now))
    }
}

/// What a policy decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// This tag should run.
    Chosen {
        /// The tag.
        tag: String,
        /// Why, in one line.
        reason: String,
    },
    /// The digest policy: nothing is chosen, the pinned digest stays.
    Fixed {
        /// The current tag, if any.
        tag: Option<String>,
        /// Why, in one line.
        reason: String,
    },
    /// No tag qualifies.
    None {
        /// Why, in one line.
        reason: String,
    },
}

impl Decision {
    /// The tag that should run, if any.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Decision::Chosen { tag, .. } => Some(tag),
            Decision::Fixed { tag, .. } => tag.as_deref(),
            Decision::None { .. } => None,
        }
    }

    /// The one-line reason.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Chosen { reason, .. }
            | Decision::Fixed { reason, .. }
            | Decision::None { reason } => reason,
        }
    }
}

enum Rank<'r> {
    Semver(&'r Range),
    Numerical,
    Alphabetical,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Version(Version),
    Number(Number),
    Text(String),
}

enum Skip {
    NotVersion,
    Prerelease,
    OutOfRange(Version),
    NotNumber,
}

impl Rank<'_> {
    fn key(&self, value: &str) -> Result<Key, Skip> {
        match self {
            Rank::Semver(range) => {
                let v = range::parse_tag_version(value).ok_or(Skip::NotVersion)?;
                if !v.pre.is_empty() && !range.names_prerelease() {
                    return Err(Skip::Prerelease);
                }
                if !range.matches(&v) {
                    return Err(Skip::OutOfRange(v));
                }
                Ok(Key::Version(v))
            }
            Rank::Numerical => Number::parse(value).map(Key::Number).ok_or(Skip::NotNumber),
            Rank::Alphabetical => Ok(Key::Text(value.to_owned())),
        }
    }

    fn describe(&self, policy: &Policy) -> String {
        let mut s = match self {
            Rank::Semver(r) => format!("semver `{r}`"),
            Rank::Numerical => "numerical order".to_owned(),
            Rank::Alphabetical => "alphabetical order".to_owned(),
        };
        if !matches!(self, Rank::Semver(_)) && policy.order == Order::Desc {
            s.push_str(" (desc)");
        }
        if let Some(f) = &policy.filter {
            s.push_str(&format!(" with filter `{}`", f.regex.as_str()));
        }
        if let Some(m) = policy.min_age {
            s.push_str(&format!(" and minAge {}", duration::format(m)));
        }
        if let Some(p) = &policy.platform {
            s.push_str(&format!(" on {}", p.as_str()));
        }
        s
    }
}

#[derive(Default)]
struct Counts {
    qualified: usize,
    filtered: usize,
    not_version: usize,
    not_number: usize,
    prerelease: usize,
    out_of_range: usize,
    highest_out: Option<Version>,
    wrong_platform: usize,
    too_young: usize,
}

impl Counts {
    fn add(&mut self, skip: Skip) {
        match skip {
            Skip::NotVersion => self.not_version += 1,
            Skip::NotNumber => self.not_number += 1,
            Skip::Prerelease => self.prerelease += 1,
            Skip::OutOfRange(v) => {
                self.out_of_range += 1;
                if self.highest_out.as_ref().is_none_or(|h| v > *h) {
                    self.highest_out = Some(v);
                }
            }
        }
    }

    fn explain(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |n: usize, one: &str, many: &str| {
            if n > 0 {
                parts.push(format!("{n} {}", if n == 1 { one } else { many }));
            }
        };
        add(
            self.filtered,
            "not matching the filter",
            "not matching the filter",
        );
        add(self.not_version, "not a version", "not versions");
        add(self.not_number, "not a number", "not numbers");
        add(
            self.prerelease,
            "prerelease excluded",
            "prereleases excluded",
        );
        let hi = self
            .highest_out
            .as_ref()
            .map(|v| format!(", highest {v}"))
            .unwrap_or_default();
        add(
            self.out_of_range,
            &format!("outside the range{hi}"),
            &format!("outside the range{hi}"),
        );
        add(
            self.wrong_platform,
            "without the platform",
            "without the platform",
        );
        add(self.too_young, "younger than minAge", "younger than minAge");
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join("; "))
        }
    }
}

/// A non-negative decimal number of any length (`42`, `20240105120000`, `1.5`),
/// compared exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Number {
    int: String,
    frac: String,
}

impl Number {
    fn parse(s: &str) -> Option<Self> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if s.contains('.') && (frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        Some(Self {
            int: int.to_owned(),
            frac: frac.to_owned(),
        })
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        })
    }
}

impl fmt::Display for Policy {
    /// A one-line summary: `semver >=1.2 <2 filter … minAge 72h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match &self.kind {
            Kind::Semver(r) if r.to_string() != "*" => write!(f, " {r}")?,
            Kind::Latest(t) if t != "latest" => write!(f, " tag={t}")?,
            Kind::Digest(Some(d)) => write!(f, " {d}")?,
            Kind::Numerical | Kind::Alphabetical if self.order == Order::Desc => {
                f.write_str(" desc")?
            }
            _ => {}
        }
        if let Some(r) = &self.repo {
            write!(f, " repo={r}")?;
        }
        if let Some(flt) = &self.filter {
            write!(f, " filter={}", flt.regex.as_str())?;
            if let Some(x) = &flt.extract {
                write!(f, " extract={x}")?;
            }
        }
        if let Some(p) = &self.platform {
            write!(f, " platform={}", p.as_str())?;
        }
        if let Some(m) = self.min_age {
            write!(f, " minAge={}", duration::format(m))?;
        }
        Ok(())
    }
}
