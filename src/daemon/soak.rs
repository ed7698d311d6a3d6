//! The daemon's verify-and-undo step: which services a pass changes, their
//! soak after the apply (the engine's event stream, health status and restart
//! count, read through [`Containers`] for Podman and Docker alike: Podman's
//! healthchecks are run through the API at the service's interval, since a
//! host without a user systemd manager never runs them; Docker runs its own
//! and its health is read), and the
//! rollback of a service that fails: its last good image on the host at once,
//! then the revert of Magos's pin in git. The verdict itself is
//! [`crate::core::soak`]; the state lives in the state folder
//! ([`crate::engine::rollback`]) so a restarted daemon finishes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;

use crate::apply::RepoOptions;
use crate::apply::repo::Repository;
use crate::apply::{Progress, Stop};
use crate::config::Config;
use crate::core::convert::image_ref;
use crate::core::event::{Event, EventKind};
use crate::core::observed::{Assessment, assess};
use crate::core::rollback::{
    Held, PendingRevert, PinCommit, ProposedPin, Rejected, Soaking, State,
};
use crate::core::soak::{Fact, Failure, Rules, Soak, Verdict};
use crate::core::spec::{ContainerSpec, LABEL_CONFIG_HASH};
use crate::engine::Engine;
use crate::engine::containers::{Containers, EventFilter, Happened};
use crate::engine::pin::Written;
use crate::engine::rollback::Reverted;
use crate::pin::Update;
use crate::server::Liveness;

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What this pass's pin write-back did, as the soak needs it.
#[derive(Debug, Clone, Default)]
pub struct Pinned {
    /// The services pinned.
    pub updates: Vec<Update>,
    /// The commit that holds them (pushed or kept locally).
    pub commit: Option<String>,
    /// Pull-request mode: the pins this pass proposed.
    pub proposals: Vec<ProposedPin>,
    /// Pull-request mode: every pin still proposed (see
    /// [`remember_proposals`]); one the branch now holds was merged.
    pub proposed: Vec<ProposedPin>,
    /// The followed branch's commit this pass applies, when known.
    pub head: Option<String>,
}

impl Pinned {
    /// From a write-back (pull requests are not on the branch: they are
    /// remembered as proposals).
    pub fn of(w: &crate::engine::WriteBack) -> Self {
        let commit = match &w.written {
            Written::Pushed { commit, .. } | Written::Committed { commit, .. } => {
                Some(commit.clone())
            }
            _ => None,
        };
        let head = match &w.written {
            Written::Unchanged { head } => Some(head.clone()),
            _ => commit.clone(),
        };
        let mut proposals = Vec::new();
        if let Written::Proposed(list) = &w.written {
            for p in list {
                for u in w.pinned.iter().filter(|u| {
                    p.services
                        .iter()
                        .any(|(stack, service)| *stack == u.stack && *service == u.service)
                }) {
                    proposals.push(ProposedPin {
                        stack: u.stack.clone(),
                        service: u.service.clone(),
                        file: u.file.clone(),
                        old: u.old.clone(),
                        new: u.new.clone(),
                        commit: p.commit.clone(),
                        alone: p.services.len() == 1,
                    });
                }
            }
        }
        Self {
            updates: if commit.is_some() {
                w.pinned.clone()
            } else {
                Vec::new()
            },
            commit,
            proposals,
            proposed: Vec::new(),
            head,
        }
    }
}

/// A service the apply is about to change, to soak once it has.
#[derive(Debug, Clone)]
pub struct Candidate {
    stack: String,
    service: String,
    container: String,
    config_hash: String,
    from: Option<String>,
    to: String,
    to_digest: Option<String>,
    pin: Option<PinCommit>,
    commit: Option<String>,
    last_good: Option<ContainerSpec>,
    soak: Duration,
    rules: Rules,
}

/// Substitutes held definitions: a service whose repository definition failed
/// its soak runs its last good image instead (when Magos pinned the failed
/// one), or its stack is left alone and reported. Returns the stacks'
/// messages, to report them as failing.
pub fn apply_holds(state: &mut State, repo: &mut Repository) -> BTreeMap<String, String> {
    let mut failing = BTreeMap::new();
    for p in &mut repo.stacks {
        if p.error.is_some() || p.observe {
            continue;
        }
        let project = p.project.clone();
        let mut block = None;
        for spec in &mut p.spec.services {
            let hash = spec.config_hash();
            let Some(h) = state.holding(&project, &spec.service, &hash).cloned() else {
                continue;
            };
            let commit = h
                .commit
                .as_deref()
                .map(|c| format!(" (commit {c})"))
                .unwrap_or_default();
            let who = format!("{project}/{}", spec.service);
            if h.from.is_none()
                && let Some(last_good) = state.last_good.get(&who)
            {
                // A person's change: the definition that ran before it.
                failing.insert(
                    project.clone(),
                    format!(
                        "{who}: the repository's definition{commit} failed its soak ({}); running the last good definition",
                        h.reason
                    ),
                );
                *spec = last_good.clone();
                continue;
            }
            match h.from.as_deref().map(image_ref) {
                Some(Ok(last_good)) => {
                    failing.insert(
                        project.clone(),
                        format!(
                            "{project}/{}: the repository's definition{commit} failed its soak ({}); running the last good image {}",
                            spec.service, h.reason, last_good.reference
                        ),
                    );
                    spec.image = last_good;
                }
                _ => {
                    block = Some(format!(
                        "{project}/{}: the repository's definition{commit} failed its soak ({}); the stack is left as it runs until the repository changes it",
                        spec.service, h.reason
                    ));
                }
            }
        }
        if let Some(why) = block {
            failing.insert(project, why.clone());
            p.error = Some(crate::apply::repo::PrepareError::Held(why));
        }
    }
    failing
}

/// The services of `repo` the apply will change (a running container whose
/// image or definition differs), with what a rollback needs.
pub async fn candidates(
    containers: &Containers,
    repo: &Repository,
    options: &RepoOptions,
    config: &Config,
    pinned: &Pinned,
    previous: &BTreeMap<String, ContainerSpec>,
) -> Vec<Candidate> {
    if !config.rollback.enabled || config.daemon.observe {
        return Vec::new();
    }
    let Ok(observed) = containers.observe().await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in &repo.stacks {
        if p.error.is_some()
            || p.observe
            || p.route != crate::core::convert::Route::Native
            || options.skip.contains(&p.project)
        {
            continue;
        }
        for spec in &p.spec.services {
            let changes = match assess(&p.spec, spec, &observed) {
                Assessment::Stale { .. } => true,
                Assessment::Stopped { stale, .. } => stale.is_some(),
                _ => false,
            };
            if !changes {
                continue;
            }
            let keys = p.soak.get(&spec.service).copied().unwrap_or_default();
            if keys.rollback == Some(false) {
                tracing::info!(stack = %p.project, service = %spec.service, "changed; not soaked (x-magos rollback: false)");
                continue;
            }
            let soak = keys.soak.unwrap_or(config.rollback.soak.0);
            let update = pinned
                .updates
                .iter()
                .find(|u| u.stack == p.project && u.service == spec.service);
            // Pull-request mode: a pin Magos proposed that a person merged.
            let digest = spec.image.digest.as_ref().map(ToString::to_string);
            let proposal = match (update, digest.as_deref()) {
                (None, Some(d)) => pinned.proposed.iter().find(|q| {
                    q.stack == p.project
                        && q.service == spec.service
                        && digest_of(&q.new).as_deref() == Some(d)
                }),
                _ => None,
            };
            // A person's change: what runs now (the last pass's definition,
            // when the container was made from it) is the last good one.
            let last_good = if update.is_none() && proposal.is_none() {
                let running = observed
                    .containers_for(&p.spec, spec)
                    .into_iter()
                    .find(|c| c.name == spec.name)
                    .and_then(|c| c.labels.get(LABEL_CONFIG_HASH).cloned());
                previous
                    .get(&format!("{}/{}", p.project, spec.service))
                    .filter(|old| running.as_deref() == Some(old.config_hash().as_str()))
                    .cloned()
            } else {
                None
            };
            let pin = match (update, &pinned.commit) {
                (Some(u), Some(commit)) => Some(PinCommit {
                    commit: commit.clone(),
                    alone: pinned.updates.len() == 1,
                    file: u.file.clone(),
                }),
                _ => proposal.map(|p| PinCommit {
                    commit: p.commit.clone(),
                    alone: p.alone,
                    file: p.file.clone(),
                }),
            };
            out.push(Candidate {
                stack: p.project.clone(),
                service: spec.service.clone(),
                container: spec.name.clone(),
                config_hash: spec.config_hash(),
                from: update
                    .map(|u| u.old.clone())
                    .or_else(|| proposal.map(|q| q.old.clone())),
                to: update
                    .map(|u| u.new.clone())
                    .or_else(|| proposal.map(|q| q.new.clone()))
                    .unwrap_or_else(|| spec.image.reference.clone()),
                to_digest: spec.image.digest.as_ref().map(ToString::to_string),
                commit: if pin.is_none() {
                    pinned.head.clone()
                } else {
                    None
                },
                pin,
                last_good,
                soak,
                rules: Rules::for_spec(spec, soak),
            });
        }
    }
    out
}

/// Starts the soaks of the candidates whose stack applied without error.
pub fn start(
    state: &mut State,
    candidates: Vec<Candidate>,
    applied: &BTreeMap<String, Option<String>>,
) -> usize {
    let now = now_ms();
    let mut n = 0;
    for c in candidates {
        if !matches!(applied.get(&c.stack), Some(None)) {
            continue;
        }
        tracing::info!(stack = %c.stack, service = %c.service, soak = %crate::core::duration::format(c.soak), "changed; soaking");
        // A merged proposal is now this soak's pin.
        if let Some(d) = &c.to_digest {
            state.take_proposal(&c.stack, &c.service, d);
        }
        let who = format!("{}/{}", c.stack, c.service);
        match c.last_good {
            Some(spec) => state.last_good.insert(who, spec),
            None => state.last_good.remove(&who),
        };
        state.start(Soaking {
            stack: c.stack,
            service: c.service,
            container: c.container,
            config_hash: c.config_hash,
            from: c.from,
            to: c.to,
            to_digest: c.to_digest,
            pin: c.pin,
            commit: c.commit,
            soak: Soak::new(c.rules, now),
        });
        n += 1;
    }
    n
}

/// What one watched container had at the start of the watch.
struct Watch {
    restarts: Option<i64>,
    next_check: i64,
}

/// Watches every soak of `state` until each is decided (or Magos stops),
/// saving the state after every fact. Returns the decided soaks with their
/// verdicts; they are removed from `state`.
pub async fn watch(
    containers: &Containers,
    engine: &Engine,
    state: &mut State,
    liveness: &Liveness,
    stopping: &std::sync::atomic::AtomicBool,
) -> Vec<(Soaking, Verdict)> {
    let mut decided = Vec::new();
    if state.soaks.is_empty() {
        return decided;
    }
    let since = state
        .soaks
        .iter()
        .map(|s| s.soak.started_at / 1000)
        .min()
        .unwrap_or(0);
    let filter = EventFilter {
        containers: state.soaks.iter().map(|s| s.container.clone()).collect(),
        since: Some(since),
        ..EventFilter::default()
    };
    let engine_name = containers.name();
    let mut events = match containers.events(&filter).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot read {engine_name}'s events; the soak polls instead");
            None
        }
    };
    let mut watches: BTreeMap<String, Watch> = BTreeMap::new();
    loop {
        let now = now_ms();
        // Inspect (and run the healthcheck of) the containers whose check is
        // due: the restart count and the health status are facts too.
        for s in &mut state.soaks {
            let w = watches.entry(s.container.clone()).or_insert(Watch {
                restarts: None,
                next_check: now,
            });
            if now < w.next_check {
                continue;
            }
            let interval = s
                .soak
                .rules
                .health
                .map_or(1000, |h| h.interval_ms.min(5000));
            w.next_check = now + i64::try_from(interval.max(200)).unwrap_or(1000);
            let st = match containers.inspect(&s.container).await {
                Ok(Some(i)) => i,
                Ok(None) => {
                    s.soak.observe(Fact::Removed, now);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(container = %s.container, error = %e, "cannot inspect a soaked container");
                    continue;
                }
            };
            match w.restarts {
                None => w.restarts = Some(st.restart_count),
                Some(r) if st.restart_count > r => s.soak.observe(Fact::Restarted, now),
                Some(_) => {}
            }
            if !st.running && !st.restarting && st.status != "created" && st.status != "running" {
                s.soak.observe(
                    Fact::Died {
                        exit_code: st.exit_code,
                    },
                    now,
                );
            } else if st.running && s.soak.rules.health.is_some() {
                match containers.health(&s.container).await {
                    Ok(health) => s.soak.observe(Fact::Health { health }, now),
                    Err(e) => {
                        tracing::debug!(container = %s.container, error = %e, "healthcheck not run")
                    }
                }
            }
        }
        // Decided soaks leave the state.
        let now = now_ms();
        let mut keep = Vec::new();
        for s in std::mem::take(&mut state.soaks) {
            match s.soak.verdict(now) {
                Verdict::Pending => keep.push(s),
                v => decided.push((s, v)),
            }
        }
        state.soaks = keep;
        if let Err(e) = engine.save_rollback_state(state) {
            tracing::warn!(error = %format!("{e:#}"), "cannot save the soak state");
        }
        if state.soaks.is_empty() || stopping.load(std::sync::atomic::Ordering::Acquire) {
            return decided;
        }
        liveness.progress();
        // Wait for an event, the next due check, or the first deadline.
        let next_check = watches
            .values()
            .map(|w| w.next_check)
            .min()
            .unwrap_or(now + 1000);
        let deadline = state
            .soaks
            .iter()
            .map(|s| s.soak.decided_by())
            .min()
            .unwrap_or(next_check)
            .min(next_check);
        // At most a second, so the loop's liveness sees progress.
        let wait =
            Duration::from_millis(u64::try_from((deadline - now).clamp(10, 1000)).unwrap_or(10));
        let event = async {
            match events.as_mut() {
                Some(stream) => stream.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            e = event => match e {
                Some(Ok(e)) => {
                    let fact = match e.happened {
                        Happened::Died { exit_code } => Fact::Died { exit_code },
                        Happened::Health(health) => Fact::Health { health },
                        Happened::Removed => Fact::Removed,
                    };
                    for s in state.soaks.iter_mut().filter(|s| s.container == e.name) {
                        s.soak.observe(fact, e.at_ms);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "{engine_name}'s event stream failed; the soak polls instead");
                    events = None;
                }
                None => events = None,
            },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The image without tag or digest, and `image@digest`, of a soaked service.
fn image_of(s: &Soaking) -> (String, Option<String>) {
    let repo = crate::registry::parse_image(&s.to)
        .map(|r| r.repository_key())
        .unwrap_or_else(|_| s.to.clone());
    let at = s.to_digest.as_ref().map(|d| format!("{repo}@{d}"));
    (repo, at)
}

/// What the rollback of failed soaks did, for the pass report.
#[derive(Debug, Default)]
pub struct RolledBack {
    /// Per stack, the error to report (a rollback that failed on the host).
    pub failing: BTreeMap<String, String>,
    /// How many services were rolled back.
    pub services: usize,
    /// How many failed their soak (rolled back or not).
    pub failed: usize,
    /// Whether a revert changed the checkout (the stacks must be read again).
    pub reverted: bool,
}

/// Rolls back the services whose soak failed: records the rejected digest and
/// the hold, applies the last good image at once (the service and those that
/// must follow it), then reverts Magos's pin in git.
#[allow(clippy::too_many_arguments)] // each is a separate input of the rollback
pub async fn roll_back(
    engine: &Arc<Engine>,
    containers: &Containers,
    state: &mut State,
    repo: &Repository,
    options: &RepoOptions,
    progress: &Progress,
    failed: Vec<(Soaking, Failure)>,
    metrics: &crate::server::Metrics,
) -> RolledBack {
    let mut out = RolledBack::default();
    let at_s = now_ms() / 1000;
    let mut stacks: BTreeSet<String> = BTreeSet::new();
    let mut reverts = Vec::new();
    for (s, failure) in failed {
        let (image, image_at) = image_of(&s);
        tracing::error!(stack = %s.stack, service = %s.service, to = %s.to, reason = %failure, "failed its soak; rolling back");
        let mut unhealthy = Event::new(EventKind::Unhealthy, at_s)
            .stack(&s.stack)
            .service(&s.service)
            .image(&image)
            .digests(s.from.as_deref().and_then(digest_of), s.to_digest.clone())
            .reason(failure.to_string());
        if let Some(c) = s.pin.as_ref().map(|p| &p.commit).or(s.commit.as_ref()) {
            unhealthy = unhealthy.commit(c);
        }
        engine.emit(unhealthy);
        metrics
            .rollbacks
            .get_or_create(&crate::server::metrics::RollbackLabels {
                stack: s.stack.clone(),
                service: s.service.clone(),
                reason: failure.label().to_owned(),
            })
            .inc();
        // A person's change that kept the image (a new environment, say)
        // does not make the image bad.
        let same_image = state
            .last_good
            .get(&s.who())
            .is_some_and(|old| old.image.digest.as_ref().map(ToString::to_string) == s.to_digest);
        if let Some(d) = s.to_digest.as_ref().filter(|_| !same_image) {
            state.reject(Rejected {
                image: image.clone(),
                digest: d.clone(),
                tag: crate::registry::parse_image(&s.to).ok().and_then(|r| r.tag),
                reason: failure.to_string(),
                at: at_s,
            });
        }
        state.hold(Held {
            stack: s.stack.clone(),
            service: s.service.clone(),
            config_hash: s.config_hash.clone(),
            reason: failure.to_string(),
            commit: s
                .pin
                .as_ref()
                .map(|p| p.commit.clone())
                .or_else(|| s.commit.clone()),
            from: s.from.clone(),
        });
        stacks.insert(s.stack.clone());
        reverts.push((s, failure, image_at));
    }
    if let Err(e) = engine.save_rollback_state(state) {
        tracing::error!(error = %format!("{e:#}"), "cannot save the rejected digests");
    }
    // The host first: the held definitions run the last good image.
    let mut held = Repository {
        stacks: repo
            .stacks
            .iter()
            .filter(|p| stacks.contains(&p.project))
            .cloned()
            .collect(),
        diagnostics: Vec::new(),
        unnamed: Vec::new(),
        failed_dirs: BTreeSet::new(),
    };
    out.failed = reverts.len();
    out.services = reverts
        .iter()
        .filter(|(s, ..)| s.from.is_some() || state.last_good.contains_key(&s.who()))
        .count();
    let _ = apply_holds(state, &mut held);
    let mut only = options.clone();
    only.prune = false;
    // A rollback runs to its end: it is what makes the host good again.
    match containers
        .apply(&held, &only, progress, &Stop::never())
        .await
    {
        Ok(r) => {
            for st in r.stacks {
                if let Some(e) = st.error {
                    tracing::error!(stack = %st.stack, error = %e, "rolling back failed");
                    out.failing
                        .insert(st.stack.clone(), format!("rolling back failed: {e}"));
                }
            }
        }
        Err(e) => tracing::error!(error = %format!("{e:#}"), "rolling back failed"),
    }
    // Then git: Magos's own pins are reverted (a revert that cannot be
    // pushed or proposed now is tried again on the next passes); a person's
    // change never is.
    for (s, failure, image_at) in reverts {
        let at = image_at.clone().unwrap_or_else(|| s.to.clone());
        let reverted = if s.pin.is_some() {
            revert(engine, &s, failure, &at).await
        } else {
            None
        };
        let mut reason = failure.to_string();
        let commit = match reverted {
            Some(Ok(Reverted::Pushed { commit })) => {
                tracing::info!(stack = %s.stack, service = %s.service, commit = %commit, "pushed the revert of the failed pin");
                out.reverted = true;
                Some(commit)
            }
            Some(Ok(Reverted::Committed { commit, kept })) => {
                tracing::warn!(stack = %s.stack, service = %s.service, commit = %commit, kept = %kept, "the revert could not be pushed; kept on a local branch");
                Some(commit)
            }
            Some(Ok(Reverted::Proposed {
                branch,
                commit,
                pull_request,
            })) => {
                tracing::info!(stack = %s.stack, service = %s.service, branch = %branch, commit = %commit, pull_request, "proposed the revert of the failed pin");
                reason = format!("{reason}; revert proposed in pull request #{pull_request}");
                Some(commit)
            }
            Some(Ok(Reverted::Unchanged)) | None => None,
            Some(Err(error)) => {
                tracing::error!(stack = %s.stack, service = %s.service, error = %error, "cannot revert the failed pin now; holding the last good image, trying again on the next pass");
                state.pend(PendingRevert {
                    soaking: s.clone(),
                    failure,
                    image_at: at,
                    attempts: 1,
                    error,
                });
                if let Err(e) = engine.save_rollback_state(state) {
                    tracing::error!(error = %format!("{e:#}"), "cannot save the revert to try again");
                }
                None
            }
        };
        // Undone on the host: the last good image, or a person's change
        // replaced by the definition that ran before it.
        let undone = s.from.is_some() || state.last_good.contains_key(&s.who());
        if !undone {
            tracing::warn!(stack = %s.stack, service = %s.service, "no last good definition known (Magos restarted since it ran); the stack is left as it runs");
            continue;
        }
        let mut event = Event::new(EventKind::RolledBack, now_ms() / 1000)
            .stack(&s.stack)
            .service(&s.service)
            .image(image_of(&s).0)
            .digests(s.to_digest.clone(), s.from.as_deref().and_then(digest_of))
            .reason(reason);
        if let Some(c) = commit.or_else(|| s.commit.clone()) {
            event = event.commit(c);
        }
        engine.emit(event);
    }
    out
}

/// The git half of one rollback, off the async workers: `None` when the
/// repository is a local folder (nothing to write to), else what
/// [`Engine::revert_pin`] did or its error.
async fn revert(
    engine: &Arc<Engine>,
    s: &Soaking,
    failure: Failure,
    image_at: &str,
) -> Option<Result<Reverted, String>> {
    let Ok(crate::engine::Location::Remote(checkout)) = engine.location() else {
        return None;
    };
    let (e, s, at) = (engine.clone(), s.clone(), image_at.to_owned());
    Some(
        match tokio::task::spawn_blocking(move || e.revert_pin(checkout, &s, &failure, &at)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(e) => Err(format!("the revert task failed: {e}")),
        },
    )
}

/// Tries again the reverts an earlier pass could not push or propose.
/// Returns whether one landed on the followed branch (the checkout changed).
pub async fn retry_reverts(engine: &Arc<Engine>, state: &mut State) -> bool {
    if state.reverts.is_empty() {
        return false;
    }
    let mut changed = false;
    for mut r in std::mem::take(&mut state.reverts) {
        let who = r.soaking.who();
        match revert(engine, &r.soaking, r.failure, &r.image_at).await {
            Some(Ok(Reverted::Pushed { commit })) => {
                tracing::info!(service = %who, commit = %commit, attempts = r.attempts + 1, "pushed the revert of the failed pin");
                changed = true;
            }
            Some(Ok(Reverted::Committed { commit, kept })) => {
                tracing::warn!(service = %who, commit = %commit, kept = %kept, "the revert could not be pushed; kept on a local branch");
            }
            Some(Ok(Reverted::Proposed {
                branch,
                commit,
                pull_request,
            })) => {
                tracing::info!(service = %who, branch = %branch, commit = %commit, pull_request, attempts = r.attempts + 1, "proposed the revert of the failed pin");
            }
            Some(Ok(Reverted::Unchanged)) => {
                tracing::info!(service = %who, "the failed pin is no longer on the branch; nothing to revert");
            }
            Some(Err(error)) => {
                r.attempts += 1;
                tracing::error!(service = %who, attempts = r.attempts, error = %error, "cannot revert the failed pin yet; trying again on the next pass");
                r.error = error;
                state.reverts.push(r);
            }
            None => {}
        }
    }
    if let Err(e) = engine.save_rollback_state(state) {
        tracing::error!(error = %format!("{e:#}"), "cannot save the reverts to try again");
    }
    changed
}

/// Remembers the pins this pass proposed in pull requests (pull-request
/// mode), and gives the pass every pin still proposed: one a person merged
/// is Magos's to undo if it fails. Returns whether the state changed.
pub fn remember_proposals(state: &mut State, pinned: &mut Pinned) -> bool {
    let changed = !pinned.proposals.is_empty();
    for p in std::mem::take(&mut pinned.proposals) {
        state.propose(p);
    }
    pinned.proposed = state.proposed.clone();
    changed
}

/// The digest of an image line's value, if pinned.
fn digest_of(value: &str) -> Option<String> {
    value.split_once('@').map(|(_, d)| d.to_owned())
}
