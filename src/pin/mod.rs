//! The pin pass: for a repository folder, every annotated service's current
//! reference, its policy's choice among the registry's tags, the digest of that
//! choice, whether it is an update, and the file edits that pin it as
//! `name:tag@sha256:…`. `magos check`, `magos update` and the daemon share it.
//!
//! It combines three parts: the repository edge ([`crate::repo`]) reads the
//! stacks, the pure core decides (policies) and rewrites (image lines), the
//! registry edge answers (tags, digests, creation times) through one
//! [`Check`], whose memo makes a second pass over a new head of the same
//! repository cost no further requests.
//!
//! The registry questions are asked frugally: each watched repository's tags
//! once, then a `HEAD` only for the tag a policy elected (the platform manifest
//! only when the policy names a platform; creation times only for policies
//! with `minAge`, and only for the tags that would otherwise win). One
//! service's error never stops the others.

pub mod diff;
mod signed;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::core::compose::{LoadedService, Pin};
use crate::core::diag::Diagnostic;
use crate::core::interpolate::Vars;
use crate::core::policy::{AgedStep, Candidate, Decision, Policy};
use crate::core::rewrite;
use crate::core::stacks::Selection;
use crate::git::message::PinChange;
use crate::git::{Change, FileEdit};
use crate::registry::{Check, Digest, Platform, RegistryClient, RegistryError};
use crate::repo::{self, RepoStacks};

/// How many creation times a `minAge` policy may ask for one service before
/// giving up (each is a manifest and a config read).
pub const MAX_AGE_LOOKUPS: usize = 8;

/// What can stop a pin pass as a whole (a service's own problems are in its
/// [`Row`] instead).
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The repository folder could not be read.
    #[error("cannot read the repository at {}", path.display())]
    Repo {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: repo::RepoError,
    },
    /// A compose file to rewrite could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One annotated service, as the stacks and their annotations describe it.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The implementor's handle for this service (e.g. an index into its list).
    pub id: usize,
    /// The stack (compose project).
    pub stack: String,
    /// The service name.
    pub service: String,
    /// Where the `image:` line is, `file:line`.
    pub location: String,
    /// The image reference as written, possibly pinned (`app:1.2@sha256:…`).
    pub image: String,
    /// The repository whose tags the policy picks from, as a reference (the
    /// image's own, or the policy's `repo`).
    pub watch: String,
    /// The platform the policy pins, if it names one.
    pub platform: Option<String>,
}

/// What a policy decided for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Run this tag.
    Tag {
        /// The tag.
        tag: String,
        /// Why, in one line.
        reason: String,
    },
    /// Keep what is written (the digest policy).
    Keep {
        /// Why, in one line.
        reason: String,
    },
    /// No tag qualifies.
    Nothing {
        /// Why, in one line.
        reason: String,
    },
}

/// A decision that may first need a tag's creation time (`minAge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The decision.
    Done(Choice),
    /// Ask the registry when this tag's image was created, then decide again.
    NeedCreated(String),
}

/// The stacks-and-policies side of a pin pass.
pub trait Policies: Sync {
    /// The annotated services of the repository checked out at `dir`.
    fn watched(&self, dir: &Path) -> anyhow::Result<Vec<Watched>>;
    /// The policy's decision for `service` among every tag of its watched
    /// repository, at `now`.
    fn decide(&self, service: &Watched, tags: &[String], now: SystemTime) -> Choice;
    /// The decision when creation times matter (`minAge`): `created` holds the
    /// creation times asked so far (`None`: the registry gives none). The
    /// default ignores them.
    fn decide_aged(
        &self,
        service: &Watched,
        tags: &[String],
        created: &BTreeMap<String, Option<SystemTime>>,
        now: SystemTime,
    ) -> Step {
        let _ = created;
        Step::Done(self.decide(service, tags, now))
    }
    /// The `verify:` rule the service's annotation names (`"verify": "NAME"`).
    fn verify_rule(&self, service: &Watched) -> Option<String> {
        let _ = service;
        None
    }
}

/// Why a service could not be checked. It renders (and serialises) as the
/// sentence `check` reports in the row.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CheckError {
    /// The registry could not be asked, or its answer or the reference could
    /// not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The service's `verify` annotation names no rule of the configuration.
    #[error("{0}")]
    Rule(String),
    /// A candidate's signature could not be checked.
    #[error("cannot check the signature of {tag}: {source}")]
    Signature {
        /// The candidate tag.
        tag: String,
        /// What the registry answered.
        source: RegistryError,
    },
}

/// Two errors are the same when they say the same.
impl PartialEq for CheckError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for CheckError {}

impl Serialize for CheckError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The stack.
    pub stack: String,
    /// The service.
    pub service: String,
    /// `file:line` of the image line.
    pub location: String,
    /// The reference as written.
    pub current: String,
    /// `repo:tag@digest` the policy chose, when it chose one.
    pub chosen: Option<String>,
    /// The chosen tag.
    pub tag: Option<String>,
    /// The chosen tag's digest (the index digest of a multi-arch image, unless
    /// the policy names a platform).
    pub digest: Option<Digest>,
    /// Whether the chosen pin differs from the written one; `None` when nothing
    /// was chosen or an error stopped the check.
    pub update: Option<bool>,
    /// The policy's reason.
    pub reason: String,
    /// What went wrong, for this service only.
    pub error: Option<CheckError>,
    /// Under a `verify:` rule: the chosen digest's signature and the
    /// candidates skipped for theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<signed::Report>,
    /// Under a `verify:` rule or the `scan:` gate: every candidate judged,
    /// best first, each with its `signature` and `scan` verdicts apart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<signed::Candidate>,
    /// The chosen digest failed a soak and is rejected: why and when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<crate::core::rollback::Rejected>,
}

/// Checks every service against the registries, in a check pass of its own;
/// one service's error never stops the others.
pub async fn check_services(
    client: &RegistryClient,
    policies: &dyn Policies,
    services: &[Watched],
    now: SystemTime,
) -> Vec<Row> {
    check_with(&client.check(), policies, services, now).await
}

/// Checks every service within the check pass `check` (whose memo answers
/// what was already asked in it).
pub async fn check_with(
    check: &Check,
    policies: &dyn Policies,
    services: &[Watched],
    now: SystemTime,
) -> Vec<Row> {
    let rows = services.iter().map(|s| check_one(check, policies, s, now));
    futures_util::future::join_all(rows).await
}

async fn check_one(check: &Check, policies: &dyn Policies, s: &Watched, now: SystemTime) -> Row {
    let mut row = Row {
        stack: s.stack.clone(),
        service: s.service.clone(),
        location: s.location.clone(),
        current: s.image.clone(),
        chosen: None,
        tag: None,
        digest: None,
        update: None,
        reason: String::new(),
        error: None,
        signature: None,
        candidates: Vec::new(),
        rejected: None,
    };
    let result: Result<(), CheckError> = async {
        let current = crate::registry::parse_image(&s.image)?;
        let watch = crate::registry::parse_image(&s.watch)?;
        let platform = s.platform.as_deref().map(Platform::parse).transpose()?;
        let all_tags = check.tags(&watch).await?;
        // Under a `verify:` rule, a candidate whose signature fails is dropped
        // from the tags and the policy chooses again.
        let mut screen =
            signed::Screen::new(check, policies, s, &watch).map_err(CheckError::Rule)?;
        'screen: loop {
        let tags = screen.tags(&all_tags);
        let mut created = BTreeMap::new();
        let choice = loop {
            match policies.decide_aged(s, &tags, &created, now) {
                Step::Done(choice) => break choice,
                Step::NeedCreated(tag) if created.len() >= MAX_AGE_LOOKUPS => {
                    break Choice::Nothing {
                        reason: format!(
                            "the {MAX_AGE_LOOKUPS} newest candidates are younger than minAge (next: {tag}); not looking further this time"
                        ),
                    };
                }
                Step::NeedCreated(tag) => {
                    let at = check
                        .created(&watch.with_tag(&tag), platform.as_ref())
                        .await?;
                    created.insert(tag, at);
                }
            }
        };
        match choice {
            Choice::Tag { tag, reason } => {
                row.reason = reason;
                let candidate = watch.with_tag(&tag);
                let digest: Digest = match &platform {
                    Some(p) => check.platform_digest(&candidate, p).await,
                    None => check.digest(&candidate).await,
                }
                ?;
                match screen.judge(check, &tag, &digest).await? {
                    signed::Next::Pin => {}
                    signed::Next::Skip => continue 'screen,
                    signed::Next::GiveUp(why) => {
                        row.reason = why;
                        break 'screen;
                    }
                }
                // The pin written back is the image's own line with the chosen
                // tag and digest (the watched repository may be a mirror).
                row.update =
                    Some(current.tag.as_deref() != Some(tag.as_str()) || current.digest.as_ref() != Some(&digest));
                row.chosen = Some(format!("{}:{tag}@{digest}", watch.repository_key()));
                row.digest = Some(digest);
                row.tag = Some(tag);
            }
            Choice::Keep { reason } => {
                row.reason = reason;
                row.update = Some(false);
            }
            Choice::Nothing { reason } => row.reason = reason,
        }
        break;
        }
        (row.signature, row.candidates) = screen.report(&mut row.reason);
        Ok(())
    }
    .await;
    if let Err(e) = result {
        row.error = Some(e);
    }
    row
}

/// [`Policies`] over the core: the annotated services of a loaded repository,
/// decided by their annotations' policies.
pub struct CorePolicies<'a> {
    services: Vec<(&'a LoadedService, &'a Policy, Watched)>,
}

impl<'a> CorePolicies<'a> {
    /// The annotated services of `stacks`, in repository order.
    pub fn new(stacks: &'a RepoStacks) -> Self {
        let mut services = Vec::new();
        for stack in &stacks.stacks {
            let name = stack
                .project
                .clone()
                .unwrap_or_else(|| stack.def.dir.clone());
            for svc in &stack.loaded.services {
                let Some(image) = &svc.image else { continue };
                let Some(policy) = &image.policy else {
                    continue;
                };
                let location = match &image.site {
                    Some((file, site)) => format!("{file}:{}", site.line),
                    None => stack.def.compose_file.clone(),
                };
                let watch = match &image.reference {
                    Some(r) => policy.repository(r),
                    None => policy
                        .repo
                        .as_ref()
                        .map_or_else(|| image.value.clone(), |r| r.repository_key()),
                };
                let id = services.len();
                services.push((
                    svc,
                    policy,
                    Watched {
                        id,
                        stack: name.clone(),
                        service: svc.name.clone(),
                        location,
                        image: image.value.clone(),
                        watch,
                        platform: policy.platform.as_ref().map(|p| p.as_str().to_owned()),
                    },
                ));
            }
        }
        Self { services }
    }

    /// The services, with the handles [`Policies`] uses.
    pub fn list(&self) -> Vec<Watched> {
        self.services.iter().map(|(_, _, w)| w.clone()).collect()
    }

    /// The loaded service behind a handle.
    pub fn service(&self, id: usize) -> Option<&'a LoadedService> {
        self.services.get(id).map(|(s, _, _)| *s)
    }

    fn current_tag(&self, id: usize) -> Option<&str> {
        let (svc, _, _) = self.services.get(id)?;
        svc.image.as_ref()?.reference.as_ref()?.tag.as_deref()
    }
}

fn to_choice(d: Decision) -> Choice {
    match d {
        Decision::Chosen { tag, reason } => Choice::Tag { tag, reason },
        Decision::Fixed { reason, .. } => Choice::Keep { reason },
        Decision::None { reason } => Choice::Nothing { reason },
    }
}

impl Policies for CorePolicies<'_> {
    /// The services the value was built from (`dir` is that repository).
    fn watched(&self, _dir: &Path) -> anyhow::Result<Vec<Watched>> {
        Ok(self.list())
    }

    fn verify_rule(&self, service: &Watched) -> Option<String> {
        self.services.get(service.id)?.1.verify.clone()
    }

    fn decide(&self, service: &Watched, tags: &[String], now: SystemTime) -> Choice {
        let Some((_, policy, _)) = self.services.get(service.id) else {
            return Choice::Nothing {
                reason: format!("unknown service `{}`", service.service),
            };
        };
        let candidates: Vec<Candidate<'_>> = tags.iter().map(|t| Candidate::tag(t)).collect();
        to_choice(policy.decide(&candidates, self.current_tag(service.id), now))
    }

    /// With `minAge`: the core's step ([`Policy::decide_aged`]).
    fn decide_aged(
        &self,
        service: &Watched,
        tags: &[String],
        created: &BTreeMap<String, Option<SystemTime>>,
        now: SystemTime,
    ) -> Step {
        let Some((_, policy, _)) = self.services.get(service.id) else {
            return Step::Done(self.decide(service, tags, now));
        };
        match policy.decide_aged(tags, self.current_tag(service.id), created, now) {
            AgedStep::Decided(d) => Step::Done(to_choice(d)),
            AgedStep::NeedCreated(tag) => Step::NeedCreated(tag),
        }
    }
}

/// One service to pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Update {
    /// The stack.
    pub stack: String,
    /// The service.
    pub service: String,
    /// The file holding its image line, relative to the repository.
    pub file: String,
    /// The image value now.
    pub old: String,
    /// The pinned value, `name:tag@sha256:…`.
    pub new: String,
    /// The chosen tag.
    pub tag: String,
}

/// One file the pass rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The path relative to the repository, `/` separated.
    pub path: String,
    /// The text now.
    pub before: String,
    /// The text with the pins.
    pub after: String,
}

/// What one pin pass found for a repository folder.
#[derive(Debug, Clone)]
pub struct Pass {
    /// Every annotated service, checked.
    pub rows: Vec<Row>,
    /// The services whose pin changes, with their edits applied in `files`.
    pub updates: Vec<Update>,
    /// The rewritten files.
    pub files: Vec<FileChange>,
    /// Updates that were chosen but cannot be written (the line cannot be
    /// rewritten safely, or the file changed): `stack/service: why`.
    pub refused: Vec<String>,
    /// The repository's own diagnostics (errors and warnings of its stacks).
    pub diagnostics: Vec<Diagnostic>,
    /// The stack files the pass read, by path relative to the repository, as
    /// they were before its rewrites (see [`Pass::texts_after`]).
    pub texts: repo::Texts,
}

impl Pass {
    /// The stack files as they are once `files` are written: what a later
    /// read of the same work tree would find ([`crate::repo::load_known`]).
    pub fn texts_after(&self) -> repo::Texts {
        let mut texts = self.texts.clone();
        for f in &self.files {
            texts.insert(f.path.clone(), f.after.clone());
        }
        texts
    }

    /// How many error diagnostics the repository has (an invalid annotation, a
    /// stack that cannot be loaded).
    pub fn invalid(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == crate::core::diag::Severity::Error)
            .count()
    }

    /// Whether any service could not be checked or pinned.
    pub fn has_errors(&self) -> bool {
        !self.refused.is_empty() || self.rows.iter().any(|r| r.error.is_some())
    }

    /// The updates as the commit message lists them.
    pub fn changes(&self) -> Vec<PinChange> {
        self.updates
            .iter()
            .map(|u| PinChange {
                stack: u.stack.clone(),
                service: u.service.clone(),
                old: u.old.clone(),
                new: u.new.clone(),
            })
            .collect()
    }

    /// The rewritten files as a git change with `message`.
    pub fn change(&self, message: String) -> Change {
        let message = signed::with_trailers(message, &self.rows, &self.updates);
        Change {
            files: self
                .files
                .iter()
                .map(|f| FileEdit {
                    path: PathBuf::from(&f.path),
                    contents: f.after.clone().into_bytes(),
                })
                .collect(),
            message,
        }
    }

    /// The part of this pass that pins the services `keep` accepts (e.g. one
    /// service, for a pull request of its own), its files rewritten anew.
    pub fn only(&self, keep: impl Fn(&Update) -> bool) -> Pass {
        let updates: Vec<Update> = self.updates.iter().filter(|u| keep(u)).cloned().collect();
        let mut files = Vec::new();
        for f in &self.files {
            let edits: Vec<rewrite::Edit<'_>> = updates
                .iter()
                .filter(|u| u.file == f.path)
                .map(|u| rewrite::Edit {
                    service: &u.service,
                    expected: &u.old,
                    new: &u.new,
                })
                .collect();
            if edits.is_empty() {
                continue;
            }
            let (after, _) = rewrite::rewrite_all(&f.before, &edits);
            files.push(FileChange {
                path: f.path.clone(),
                before: f.before.clone(),
                after: after.into_owned(),
            });
        }
        Pass {
            rows: self.rows.clone(),
            updates,
            files,
            refused: Vec::new(),
            diagnostics: Vec::new(),
            texts: self.texts.clone(),
        }
    }

    /// The unified diff of every rewritten file.
    pub fn diff(&self) -> String {
        self.files
            .iter()
            .map(|f| diff::unified(&f.path, &f.before, &f.after))
            .collect()
    }
}

/// Runs a pin pass over the repository folder `dir`: loads its stacks (those
/// `sel` takes, interpolated with `env`), checks every annotated service in
/// `check`, and computes the rewritten files. Nothing is written.
pub async fn pass(
    check: &Check,
    dir: &Path,
    sel: &Selection,
    env: &Vars,
    now: SystemTime,
) -> Result<Pass, PinError> {
    pass_with(check, dir, sel, env, now, &[]).await
}

/// [`pass`], never pinning a digest of `rejected` (one that failed a soak):
/// its row says so and keeps the current pin; a newer digest is pinned as
/// usual.
pub async fn pass_with(
    check: &Check,
    dir: &Path,
    sel: &Selection,
    env: &Vars,
    now: SystemTime,
    rejected: &[crate::core::rollback::Rejected],
) -> Result<Pass, PinError> {
    let stacks = repo::load(dir, sel, env).map_err(|source| PinError::Repo {
        path: dir.to_owned(),
        source,
    })?;
    let mut diagnostics = stacks.diagnostics.clone();
    for s in &stacks.stacks {
        diagnostics.extend(s.loaded.diagnostics.iter().cloned());
    }
    let policies = CorePolicies::new(&stacks);
    let watched = policies.list();
    let mut rows = check_with(check, &policies, &watched, now).await;
    for (w, row) in watched.iter().zip(rows.iter_mut()) {
        let Some(digest) = &row.digest else { continue };
        let Ok(watch) = crate::registry::parse_image(&w.watch) else {
            continue;
        };
        let image = watch.repository_key();
        if let Some(r) = rejected
            .iter()
            .find(|r| r.image == image && r.digest == digest.as_str())
        {
            row.rejected = Some(r.clone());
            if row.update == Some(true) {
                row.update = Some(false);
                row.reason = format!(
                    "{} is rejected (it failed a soak: {}); keeping the current pin",
                    row.tag.as_deref().unwrap_or(digest.as_str()),
                    r.reason
                );
            }
        }
    }
    // Stacks marked `x-magos: {observe: true}` are checked, never pinned.
    let observed: BTreeSet<String> = stacks
        .stacks
        .iter()
        .filter(|s| s.loaded.observe)
        .map(|s| s.project.clone().unwrap_or_else(|| s.def.dir.clone()))
        .collect();

    let mut pins: Vec<(usize, Pin)> = Vec::new();
    let mut refused = Vec::new();
    for (w, row) in watched.iter().zip(&rows) {
        let (Some(true), Some(tag), Some(digest)) = (row.update, &row.tag, &row.digest) else {
            continue;
        };
        let who = format!("{}/{}", w.stack, w.service);
        if observed.contains(&w.stack) {
            tracing::info!(service = %who, tag = %tag, "update available; not pinned: the stack is observed");
            continue;
        }
        let pin = digest.pinnable().map_err(|e| e.to_string()).and_then(|d| {
            policies
                .service(w.id)
                .ok_or_else(|| "unknown service".to_owned())?
                .pin(tag, d)
        });
        match pin {
            Ok(p) => pins.push((w.id, p)),
            Err(why) => refused.push(format!("{who}: {why}")),
        }
    }

    let mut by_file: BTreeMap<&str, Vec<&(usize, Pin)>> = BTreeMap::new();
    for p in &pins {
        by_file.entry(p.1.file.as_str()).or_default().push(p);
    }
    let mut files = Vec::new();
    let mut updates = Vec::new();
    let stack_of: HashMap<usize, &Watched> = watched.iter().map(|w| (w.id, w)).collect();
    for (file, file_pins) in by_file {
        // The text the stacks were loaded from, not read again.
        let before = match stacks.texts.get(file) {
            Some(text) => text.clone(),
            None => {
                let path = dir.join(file);
                std::fs::read_to_string(&path).map_err(|source| PinError::Read {
                    path: path.clone(),
                    source,
                })?
            }
        };
        let mut text = before.clone();
        for (id, pin) in file_pins {
            let w = stack_of[id];
            match rewrite::rewrite(&text, &pin.edit()) {
                Ok(new) => {
                    text = new.into_owned();
                    updates.push(Update {
                        stack: w.stack.clone(),
                        service: w.service.clone(),
                        file: pin.file.clone(),
                        old: pin.expected.clone(),
                        new: pin.new.clone(),
                        tag: rows[*id].tag.clone().unwrap_or_default(),
                    });
                }
                Err(e) => refused.push(format!("{}/{}: {file}: {e}", w.stack, w.service)),
            }
        }
        if text != before {
            files.push(FileChange {
                path: file.to_owned(),
                before,
                after: text,
            });
        }
    }
    Ok(Pass {
        rows,
        updates,
        files,
        refused,
        diagnostics,
        texts: stacks.all_texts(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::core::stacks;

    fn stacks_of(compose: &str) -> RepoStacks {
        let files = vec!["compose.yaml".to_owned()];
        let (defs, diagnostics) = stacks::discover(&files, "repo", &Selection::default()).unwrap();
        let texts = BTreeMap::from([("compose.yaml".to_owned(), compose.to_owned())]);
        RepoStacks {
            stacks: stacks::load_all(
                defs,
                &texts,
                &BTreeMap::new(),
                &Vars::new(),
                &BTreeMap::new(),
            ),
            diagnostics,
            sealed_env: BTreeMap::new(),
            texts,
        }
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn only_annotated_services_are_watched_with_their_repository_and_platform() {
        let s = stacks_of(
            "services:\n  a:\n    image: nginx:1.25 # {\"magos\": {\"policy\": \"semver\", \"platform\": \"linux/arm64\"}}\n  \
             b:\n    image: ghcr.io/o/app:1\n  \
             c:\n    image: ghcr.io/o/app:1 # {\"magos\": {\"policy\": \"semver\", \"repo\": \"mirror.example/o/app\"}}\n",
        );
        let p = CorePolicies::new(&s);
        let w = p.list();
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].service.as_str(), w[0].watch.as_str()),
            ("a", "docker.io/library/nginx")
        );
        assert_eq!(w[0].platform.as_deref(), Some("linux/arm64"));
        assert_eq!(w[0].location, "compose.yaml:3");
        assert_eq!(w[0].stack, "repo");
        assert_eq!(
            (w[1].service.as_str(), w[1].watch.as_str()),
            ("c", "mirror.example/o/app")
        );
        assert!(matches!(
            p.decide(&w[0], &tags(&["1.25", "1.26.1", "latest"]), SystemTime::now()),
            Choice::Tag { ref tag, .. } if tag == "1.26.1"
        ));
    }

    #[test]
    fn min_age_asks_creation_times_only_of_the_tags_that_would_win() {
        let s = stacks_of(
            "services:\n  app:\n    image: r.example/app:1.0.0 # {\"magos\": {\"policy\": \"semver\", \"range\": \"^1\", \"minAge\": \"72h\"}}\n",
        );
        let p = CorePolicies::new(&s);
        let w = p.list().remove(0);
        let all = tags(&["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0", "latest"]);
        let now = UNIX_EPOCH + Duration::from_secs(10_000_000);
        let hours = |h: u64| Some(now - Duration::from_secs(h * 3600));
        let mut created = BTreeMap::new();
        assert_eq!(
            p.decide_aged(&w, &all, &created, now),
            Step::NeedCreated("1.3.0".into())
        );
        created.insert("1.3.0".to_owned(), hours(1));
        assert_eq!(
            p.decide_aged(&w, &all, &created, now),
            Step::NeedCreated("1.2.0".into())
        );
        // A registry that gives no creation time: unknown counts as "just now".
        created.insert("1.2.0".to_owned(), None);
        assert_eq!(
            p.decide_aged(&w, &all, &created, now),
            Step::NeedCreated("1.1.0".into())
        );
        created.insert("1.1.0".to_owned(), hours(100));
        match p.decide_aged(&w, &all, &created, now) {
            Step::Done(Choice::Tag { tag, reason }) => {
                assert_eq!(tag, "1.1.0");
                assert!(reason.contains("minAge"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Every candidate too young: nothing, and no further question.
        created.insert("1.1.0".to_owned(), hours(2));
        created.insert("1.0.0".to_owned(), hours(3));
        assert!(matches!(
            p.decide_aged(&w, &all, &created, now),
            Step::Done(Choice::Nothing { .. })
        ));
    }

    #[test]
    fn without_min_age_no_creation_time_is_asked() {
        let s = stacks_of(
            "services:\n  app:\n    image: r.example/app:1.0.0 # {\"magos\": {\"policy\": \"semver\", \"range\": \"^1\"}}\n",
        );
        let p = CorePolicies::new(&s);
        let w = p.list().remove(0);
        assert!(matches!(
            p.decide_aged(&w, &tags(&["1.0.0", "1.4.0"]), &BTreeMap::new(), SystemTime::now()),
            Step::Done(Choice::Tag { ref tag, .. }) if tag == "1.4.0"
        ));
    }

    /// A row's error is typed, and renders and serialises as the sentence
    /// `check` has always shown.
    #[test]
    fn check_errors_render_and_serialise_as_their_sentence() {
        let registry = crate::registry::parse_image("UPPER/x").unwrap_err();
        let e = CheckError::from(registry.clone());
        assert_eq!(e.to_string(), registry.to_string());
        let s = CheckError::Signature {
            tag: "1.2".into(),
            source: registry.clone(),
        };
        assert_eq!(
            s.to_string(),
            format!("cannot check the signature of 1.2: {registry}")
        );
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::Value::String(s.to_string())
        );
        assert_eq!(CheckError::Rule("x".into()), CheckError::Rule("x".into()));
    }
}
