//! The daemon's verify-and-undo step: which services a pass changes, their
//! soak after the apply (Podman's event stream, health status and restart
//! count, with healthchecks run through the API at the service's interval,
//! since a host without a user systemd manager never runs them), and the
//! rollback of a service that fails: its last good image on the host at once,
//! then the revert of Magos's pin in git. The verdict itself is
//! [`crate::core::soak`]; the state lives in the state folder
//! ([`crate::engine::rollback`]) so a restarted daemon finishes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;

use crate::apply::RepoOptions;
use crate::apply::repo::{Repository, apply_prepared};
use crate::apply::{Progress, Stop};
use crate::config::Config;
use crate::core::convert::image_ref;
use crate::core::event::{Event, EventKind};
use crate::core::observed::{Assessment, Health, assess};
use crate::core::rollback::{Held, PinCommit, Rejected, Soaking, State};
use crate::core::soak::{Fact, Failure, Rules, Soak, Verdict};
use crate::engine::Engine;
use crate::engine::pin::Written;
use crate::pin::Update;
use crate::podman::{Client, EventFilters};
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
}

impl Pinned {
    /// From a write-back (pull requests are not on the branch: nothing).
    pub fn of(w: &crate::engine::WriteBack) -> Self {
        let commit = match &w.written {
            Written::Pushed { commit, .. } | Written::Committed { commit, .. } => {
                Some(commit.clone())
            }
            _ => None,
        };
        Self {
            updates: if commit.is_some() {
                w.pinned.clone()
            } else {
                Vec::new()
            },
            commit,
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
            let Some(h) = state.holding(&project, &spec.service, &hash) else {
                continue;
            };
            let commit = h
                .commit
                .as_deref()
                .map(|c| format!(" (commit {c})"))
                .unwrap_or_default();
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
    client: &Client,
    repo: &Repository,
    options: &RepoOptions,
    config: &Config,
    pinned: &Pinned,
) -> Vec<Candidate> {
    if !config.rollback.enabled || config.daemon.observe {
        return Vec::new();
    }
    let Ok(observed) = crate::apply::observe(client).await else {
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
            let pin = match (update, &pinned.commit) {
                (Some(u), Some(commit)) => Some(PinCommit {
                    commit: commit.clone(),
                    alone: pinned.updates.len() == 1,
                    file: u.file.clone(),
                }),
                _ => None,
            };
            out.push(Candidate {
                stack: p.project.clone(),
                service: spec.service.clone(),
                container: spec.name.clone(),
                config_hash: spec.config_hash(),
                from: update.map(|u| u.old.clone()),
                to: update.map_or_else(|| spec.image.reference.clone(), |u| u.new.clone()),
                to_digest: spec.image.digest.as_ref().map(ToString::to_string),
                pin,
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
        state.start(Soaking {
            stack: c.stack,
            service: c.service,
            container: c.container,
            config_hash: c.config_hash,
            from: c.from,
            to: c.to,
            to_digest: c.to_digest,
            pin: c.pin,
            soak: Soak::new(c.rules, now),
        });
        n += 1;
    }
    n
}

/// What one watched container had at the start of the watch.
struct Watch {
    restarts: Option<i32>,
    next_check: i64,
}

/// Watches every soak of `state` until each is decided (or Magos stops),
/// saving the state after every fact. Returns the decided soaks with their
/// verdicts; they are removed from `state`.
pub async fn watch(
    client: &Client,
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
    let filters = EventFilters {
        types: vec!["container".to_owned()],
        actions: vec![
            "died".to_owned(),
            "health_status".to_owned(),
            "remove".to_owned(),
        ],
        containers: state.soaks.iter().map(|s| s.container.clone()).collect(),
        since: Some(since.to_string()),
        ..EventFilters::default()
    };
    let mut events = match client.events(&filters).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read Podman's events; the soak polls instead");
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
            let inspect = match client.inspect_container(&s.container).await {
                Ok(i) => i,
                Err(e) if e.is_not_found() => {
                    s.soak.observe(Fact::Removed, now);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(container = %s.container, error = %e, "cannot inspect a soaked container");
                    continue;
                }
            };
            match w.restarts {
                None => w.restarts = Some(inspect.restart_count),
                Some(r) if inspect.restart_count > r => s.soak.observe(Fact::Restarted, now),
                Some(_) => {}
            }
            let st = inspect.state.unwrap_or_default();
            if !st.running && !st.restarting && st.status != "created" && st.status != "running" {
                s.soak.observe(
                    Fact::Died {
                        exit_code: st.exit_code,
                    },
                    now,
                );
            } else if st.running && s.soak.rules.health.is_some() {
                match client.run_healthcheck(&s.container).await {
                    Ok(h) => s.soak.observe(
                        Fact::Health {
                            health: Health::from_libpod(&h.status),
                        },
                        now,
                    ),
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
                    let at = if e.time_nano > 0 { e.time_nano / 1_000_000 } else { e.time * 1000 };
                    let fact = match e.action.as_str() {
                        "died" => Some(Fact::Died {
                            exit_code: e.attribute("containerExitCode").and_then(|c| c.parse().ok()).unwrap_or(-1),
                        }),
                        "health_status" => Some(Fact::Health { health: Health::from_libpod(&e.health_status) }),
                        "remove" => Some(Fact::Removed),
                        _ => None,
                    };
                    if let (Some(fact), Some(name)) = (fact, e.name()) {
                        for s in state.soaks.iter_mut().filter(|s| s.container == name) {
                            s.soak.observe(fact, at);
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Podman's event stream failed; the soak polls instead");
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
    /// Whether a revert changed the checkout (the stacks must be read again).
    pub reverted: bool,
}

/// Rolls back the services whose soak failed: records the rejected digest and
/// the hold, applies the last good image at once (the service and those that
/// must follow it), then reverts Magos's pin in git.
#[allow(clippy::too_many_arguments)]
pub async fn roll_back(
    engine: &Arc<Engine>,
    client: &Client,
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
        engine.emit(
            Event::new(EventKind::Unhealthy, at_s)
                .stack(&s.stack)
                .service(&s.service)
                .image(&image)
                .digests(s.from.as_deref().and_then(digest_of), s.to_digest.clone())
                .reason(failure.to_string()),
        );
        metrics
            .rollbacks
            .get_or_create(&crate::server::metrics::RollbackLabels {
                stack: s.stack.clone(),
                service: s.service.clone(),
                reason: failure.label().to_owned(),
            })
            .inc();
        if let Some(d) = &s.to_digest {
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
            commit: s.pin.as_ref().map(|p| p.commit.clone()),
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
    out.services = reverts.len();
    let _ = apply_holds(state, &mut held);
    let mut only = options.clone();
    only.prune = false;
    // A rollback runs to its end: it is what makes the host good again.
    match apply_prepared(client, &held, &only, progress, &Stop::never()).await {
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
    // Then git: Magos's own pins are reverted; a person's change never is.
    for (s, failure, image_at) in reverts {
        let commit = match (&s.pin, engine.location()) {
            (Some(_), Ok(crate::engine::Location::Remote(checkout)))
                if engine.config().repo.mode != crate::config::RepoMode::PullRequest =>
            {
                let (e, s2, f) = (engine.clone(), s.clone(), failure);
                let at = image_at.clone().unwrap_or_else(|| s.to.clone());
                match tokio::task::spawn_blocking(move || e.revert_pin(checkout, &s2, &f, &at))
                    .await
                {
                    Ok(Ok(crate::engine::rollback::Reverted::Pushed { commit })) => {
                        tracing::info!(stack = %s.stack, service = %s.service, commit = %commit, "pushed the revert of the failed pin");
                        out.reverted = true;
                        Some(commit)
                    }
                    Ok(Ok(crate::engine::rollback::Reverted::Committed { commit, kept })) => {
                        tracing::warn!(stack = %s.stack, service = %s.service, commit = %commit, kept = %kept, "the revert could not be pushed; kept on a local branch");
                        Some(commit)
                    }
                    Ok(Ok(crate::engine::rollback::Reverted::Unchanged)) => None,
                    Ok(Err(e)) => {
                        tracing::error!(stack = %s.stack, service = %s.service, error = %format!("{e:#}"), "cannot revert the failed pin; holding the last good image");
                        None
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the revert task failed");
                        None
                    }
                }
            }
            _ => None,
        };
        let mut event = Event::new(EventKind::RolledBack, now_ms() / 1000)
            .stack(&s.stack)
            .service(&s.service)
            .image(image_of(&s).0)
            .digests(s.to_digest.clone(), s.from.as_deref().and_then(digest_of))
            .reason(failure.to_string());
        if let Some(c) = commit {
            event = event.commit(c);
        }
        engine.emit(event);
    }
    out
}

/// The digest of an image line's value, if pinned.
fn digest_of(value: &str) -> Option<String> {
    value.split_once('@').map(|(_, d)| d.to_owned())
}
