//! The reconcile pass of `magos run`: sync the repository → check registries and
//! write the pins back → apply → heal the network → drift. The edges are
//! combined by the [`Engine`], which the daemon keeps for its life (built again
//! on reload) so registry tokens and the GitHub installation token are reused
//! across passes; the loop around the pass is [`super::run_loop`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::soak::{self, Pinned};
use crate::apply::repo::{RepoApplyError, Repository, prepare, prepare_known};
use crate::apply::{Progress, RepoOptions, Stop};
use crate::config::{Config, Env, Overrides};
use crate::core::drift::DriftState;
use crate::core::event::{Event, EventKind};
use crate::engine::containers::Containers;
use crate::engine::events::now;
use crate::engine::pin::{Problem, Written};
use crate::engine::{Engine, Location};
use crate::server::metrics::{DriftLabels, RegistryLabel, RequestLabels, ResultLabel};
use crate::server::{Liveness, Metrics};

use super::{PassReport, PassRequest, Reconciler, StackOutcome};

/// Everything a pass needs, rebuilt on reload.
pub struct RepoReconciler {
    config_file: Option<PathBuf>,
    overrides: Overrides,
    env: Env,
    engine: Arc<Engine>,
    /// Podman or Docker Engine, as `runtime:` says.
    containers: Containers,
    /// Registry responses already counted into the metrics, by host and status.
    counted: BTreeMap<(String, String), u64>,
    metrics: Arc<Metrics>,
    stopping: Arc<AtomicBool>,
    /// The loop's liveness record, where a long apply marks its progress.
    progress: Arc<Liveness>,
    #[cfg(target_os = "linux")]
    doctor: crate::doctor::Doctor,
    /// The followed branch's head as the last write-back saw it: the commit
    /// an `applied` event names.
    head: Option<String>,
    /// The definitions the last pass ran (`stack/service`): the last good
    /// one of a service a person's change replaces.
    previous: BTreeMap<String, crate::core::spec::ContainerSpec>,
    /// Soaks under way, rejected digests and held definitions (also in the
    /// state folder).
    rollback: crate::core::rollback::State,
}

impl RepoReconciler {
    /// A reconciler for a loaded configuration. `config_file` and `overrides` are
    /// kept to reload it on `SIGHUP`. Call it inside the daemon's tokio runtime:
    /// the engine runs its async work there.
    pub async fn new(
        config: Config,
        config_file: Option<PathBuf>,
        overrides: Overrides,
        env: Env,
        metrics: Arc<Metrics>,
        stopping: Arc<AtomicBool>,
        progress: Arc<Liveness>,
    ) -> anyhow::Result<Self> {
        let mut engine = Engine::on(&config, &env, tokio::runtime::Handle::current())?;
        engine.count_notification_failures_in(metrics.notifications_failed.clone());
        let containers = engine.containers().await?;
        engine.write_signature_policy()?;
        #[cfg(target_os = "linux")]
        let doctor = crate::doctor::Doctor::new(crate::doctor::DoctorOptions::for_daemon(
            &config.doctor,
            config.apply.instance.as_str(),
        ));
        // A daemon killed during a soak finishes it: the soaks are in the
        // state folder.
        let rollback = engine.rollback_state().unwrap_or_else(|e| {
            tracing::error!(error = %format!("{e:#}"), "cannot read the rollback state; starting without it");
            crate::core::rollback::State::default()
        });
        if !rollback.soaks.is_empty() {
            tracing::info!(
                soaks = rollback.soaks.len(),
                "resuming the soaks of the last run"
            );
        }
        Ok(Self {
            config_file,
            overrides,
            env,
            rollback,
            engine: Arc::new(engine),
            containers,
            counted: BTreeMap::new(),
            metrics,
            stopping,
            progress,
            #[cfg(target_os = "linux")]
            doctor,
            head: None,
            previous: BTreeMap::new(),
        })
    }

    /// Waits for the notifications under way, at most `limit` (before the
    /// process exits).
    pub async fn flush_notifications(&self, limit: std::time::Duration) {
        self.engine.flush_notifications(limit).await;
    }

    /// The container engine (for the event stream).
    pub fn containers(&self) -> &Containers {
        &self.containers
    }

    fn config(&self) -> &Config {
        self.engine.config()
    }

    /// Syncs the repository and writes pins back; returns the folder to apply and
    /// the number of services pinned.
    async fn sync_and_pin(
        &mut self,
        liveness: &Liveness,
        report: &mut PassReport,
    ) -> anyhow::Result<(PathBuf, Pinned, crate::repo::Texts)> {
        let location = self.engine.location()?;
        match location {
            Location::Folder(dir) => {
                // A plain folder is applied as it is; pins are written only to a
                // git remote (`magos update --no-commit` rewrites a folder).
                Ok((dir, Pinned::default(), BTreeMap::new()))
            }
            Location::Remote(checkout) => {
                let workdir = checkout.workdir().to_owned();
                let engine = self.engine.clone();
                if self.config().daemon.observe {
                    let _step = liveness.begin("sync repository and check registries");
                    let syncing = engine.clone();
                    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                        syncing.authed(checkout)?.0.sync()?;
                        Ok(())
                    })
                    .await??;
                    let dir = workdir.clone();
                    let found = tokio::task::spawn_blocking(move || engine.available(&dir)).await?;
                    match found {
                        Ok(updates) => {
                            for u in updates {
                                tracing::info!(service = %format!("{}/{}", u.stack, u.service), to = %u.new, "update available; not pinned (observe mode)");
                            }
                        }
                        Err(e) => {
                            self.metrics.error("check");
                            report.error = Some(format!("checking registries failed: {e:#}"));
                        }
                    }
                    return Ok((workdir, Pinned::default(), BTreeMap::new()));
                }
                let _step = liveness.begin("sync, check registries and write pins back");
                let written =
                    tokio::task::spawn_blocking(move || engine.write_back(checkout, true)).await?;
                let mut written = match written {
                    Ok(w) => w,
                    Err(e) => {
                        // A pin that cannot be pushed must not keep the host from
                        // what the remote holds: report it, realign, apply.
                        self.metrics.error("pin");
                        let message = format!("{e:#}");
                        tracing::error!(error = %message, "writing pins back failed; applying the remote as it is");
                        report.error = Some(format!("writing pins back failed: {message}"));
                        if let Location::Remote(checkout) = self.engine.location()? {
                            // Realign to the remote; when it cannot be reached
                            // (the push failed for that reason), to what the
                            // last fetch saw, without the unpushed commit.
                            let engine = self.engine.clone();
                            tokio::task::spawn_blocking(move || {
                                let checkout = engine.authed(checkout.clone()).map(|a| a.0).unwrap_or(checkout);
                                checkout.sync().map(|_| ()).or_else(|e| {
                                    tracing::warn!(error = %format!("{e:#}"), "cannot sync again; applying the branch as last fetched");
                                    checkout.align_to_fetched()
                                })
                            })
                            .await??;
                        }
                        return Ok((workdir, Pinned::default(), BTreeMap::new()));
                    }
                };
                log_write_back(&written);
                match &written.written {
                    Written::Unchanged { head } => self.head = Some(head.clone()),
                    Written::Pushed { commit, .. } | Written::Committed { commit, .. } => {
                        self.head = Some(commit.clone());
                    }
                    Written::Proposed(_) => {
                        // The followed branch as synced for the proposals.
                        if let Ok(Location::Remote(checkout)) = self.engine.location() {
                            self.head = checkout.head();
                        }
                    }
                }
                if written.failed() {
                    self.metrics.error("pin");
                    report.error.get_or_insert_with(|| {
                        "some images could not be checked or pinned".to_owned()
                    });
                }
                report.updates = written.pinned.len();
                self.metrics
                    .updates_applied
                    .inc_by(written.pinned.len() as u64);
                let mut pinned = Pinned::of(&written);
                if matches!(written.written, Written::Proposed(_)) {
                    pinned.head = self.head.clone();
                }
                // The stacks as the pin pass read and rewrote them: the apply
                // converts these texts instead of reading the files again.
                let texts = std::mem::take(&mut written.texts);
                Ok((workdir, pinned, texts))
            }
        }
    }

    /// The folder a container event's pass applies: the checkout as the last
    /// pass left it. `None` when there is none yet (then a full pass runs).
    fn checked_out(&self) -> Option<PathBuf> {
        let dir = match self.engine.location().ok()? {
            Location::Folder(dir) => dir,
            Location::Remote(checkout) => checkout.workdir().to_owned(),
        };
        dir.is_dir().then_some(dir)
    }

    /// Adds the registry responses and rate limits the engine saw since the
    /// last pass to the metrics.
    fn count_registry_requests(&mut self) {
        for stats in self.engine.registry_stats() {
            for (status, n) in stats.statuses {
                let key = (stats.host.clone(), status.clone());
                let before = self.counted.insert(key, n).unwrap_or(0);
                if n > before {
                    self.metrics
                        .registry_requests
                        .get_or_create(&RequestLabels {
                            registry: stats.host.clone(),
                            status,
                        })
                        .inc_by(n - before);
                }
            }
            if let Some(remaining) = stats.rate_limit.and_then(|r| r.remaining) {
                self.metrics
                    .ratelimit_remaining
                    .get_or_create(&RegistryLabel {
                        registry: stats.host.clone(),
                    })
                    .set(i64::try_from(remaining).unwrap_or(i64::MAX));
            }
        }
    }

    fn options(&self, skip: &BTreeSet<String>) -> RepoOptions {
        let mut options = self.engine.repo_options(crate::apply::repo::this_host());
        options.skip = skip.clone();
        options
    }

    async fn apply(
        &mut self,
        repo: Result<&Repository, &RepoApplyError>,
        options: &RepoOptions,
        liveness: &Liveness,
    ) -> Applied {
        let mut outcomes = Applied::default();
        if self.config().daemon.observe || self.stopping.load(Ordering::Acquire) {
            return outcomes;
        }
        {
            let _step = liveness.begin("apply stacks");
            // SIGTERM/SIGINT stop the apply at its next safe point; each
            // action and pulled layer marks progress on the loop's liveness.
            let applied = match repo {
                Ok(repo) => self
                    .containers
                    .apply(
                        repo,
                        options,
                        &Progress::to(self.progress.clone()),
                        &Stop::on(self.stopping.clone()),
                    )
                    .await
                    .map_err(|e| format!("{e:#}")),
                Err(e) => Err(format!("{e:#}")),
            };
            match applied {
                Ok(r) => {
                    for s in r.stacks.iter().filter(|s| !s.done.is_empty()) {
                        let mut done = s.done.join("; ");
                        if done.len() > 500 {
                            done = format!("{}…", done.chars().take(500).collect::<String>());
                        }
                        let mut event = Event::new(EventKind::Applied, now())
                            .stack(&s.stack)
                            .reason(done);
                        if let Some(head) = &self.head {
                            event = event.commit(head);
                        }
                        self.engine.emit(event);
                    }
                    for s in r.stacks {
                        if let Some(e) = &s.error {
                            self.metrics.error("apply");
                            tracing::error!(stack = %s.stack, error = %e, "stack failed");
                        }
                        outcomes.stacks.insert(s.stack, s.error);
                    }
                }
                Err(e) => {
                    self.metrics.error("apply");
                    tracing::error!(error = %e, "apply failed");
                    outcomes.failed = Some(e);
                }
            }
        }
        // The network doctor heals rootless Podman's networking; Docker has
        // none of it to heal.
        #[cfg(target_os = "linux")]
        if let Some(client) = self
            .containers
            .podman()
            .filter(|_| self.engine.config().doctor.heal && !self.stopping.load(Ordering::Acquire))
        {
            let _step = liveness.begin("check rootless networking");
            let report =
                crate::doctor::check_and_heal(client, &mut self.doctor, Some(&self.metrics)).await;
            for h in &report.heals {
                tracing::info!(action = ?h.action.kind(), target = %h.action.target(), outcome = ?h.outcome, "network heal");
                if h.outcome == crate::doctor::model::HealOutcome::Healed {
                    let event = Event::new(EventKind::Healed, now()).reason(format!(
                        "{}: {}",
                        h.action.reason(),
                        h.detail
                    ));
                    self.engine.emit(match &h.action {
                        crate::doctor::model::HealAction::RestartContainer {
                            container, ..
                        } => event.service(container),
                        crate::doctor::model::HealAction::RestartStacks { .. } => {
                            event.stack(h.action.target())
                        }
                    });
                }
            }
        }
        outcomes
    }
}

/// What the apply step of a pass did.
#[derive(Debug, Default)]
struct Applied {
    /// Each stack applied, with its error if it failed.
    stacks: BTreeMap<String, Option<String>>,
    /// Why the whole apply failed (the repository could not be read, Podman
    /// could not be asked).
    failed: Option<String>,
}

/// Logs what a write-back did and could not do.
fn log_write_back(w: &crate::engine::WriteBack) {
    for p in &w.problems {
        match p {
            Problem::Unchecked { stack, service, .. } => tracing::error!(stack, service, "{p}"),
            _ => tracing::error!("{p}"),
        }
    }
    let pinned = || {
        for u in &w.pinned {
            tracing::info!(stack = %u.stack, service = %u.service, from = %u.old, to = %u.new, "pinned");
        }
    };
    match &w.written {
        Written::Unchanged { head } => {
            tracing::info!(branch = %w.branch, head = %head, "nothing to update: the branch holds every pin");
        }
        Written::Pushed { commit, attempts } => {
            pinned();
            tracing::info!(branch = %w.branch, commit = %commit, attempts, "pushed the pins");
        }
        Written::Committed { commit, kept } => {
            pinned();
            tracing::info!(commit = %commit, kept = %kept, "committed the pins without pushing");
        }
        Written::Proposed(proposed) => {
            for p in proposed {
                tracing::info!(branch = %p.branch, commit = %p.commit, pushed = p.pushed, pull_request = ?p.pull_request, closed = ?p.closed, title = %p.title, "proposed");
            }
        }
    }
}

impl Reconciler for RepoReconciler {
    async fn pass(&mut self, request: PassRequest, liveness: &Liveness) -> PassReport {
        let started = Instant::now();
        let mut report = PassReport::default();
        // A container event alone re-applies its stacks from the checkout as it
        // is: no git sync, no registry check.
        let only = request
            .containers_only()
            .and_then(|stacks| Some((stacks, self.checked_out()?)));
        let (only, dir, pinned, known) = match only {
            Some((stacks, dir)) => {
                tracing::info!(stacks = %stacks.iter().cloned().collect::<Vec<_>>().join(", "), "re-applying the stacks of the container events");
                (Some(stacks), dir, Pinned::default(), BTreeMap::new())
            }
            None => match self.sync_and_pin(liveness, &mut report).await {
                Ok((dir, mut pinned, known)) => {
                    // Pull-request mode: the pins proposed, to undo one that
                    // a person merged and that fails.
                    if soak::remember_proposals(&mut self.rollback, &mut pinned)
                        && let Err(e) = self.engine.save_rollback_state(&self.rollback)
                    {
                        tracing::error!(error = %format!("{e:#}"), "cannot save the proposed pins");
                    }
                    // The reverts an earlier pass could not push or propose.
                    // A revert tried moves the work tree: the stacks are then
                    // read from it, not taken from the pin pass.
                    let mut known = known;
                    if !self.config().daemon.observe && !self.rollback.reverts.is_empty() {
                        let _step = liveness.begin("retry the reverts of failed pins");
                        soak::retry_reverts(&self.engine, &mut self.rollback).await;
                        known.clear();
                    }
                    (None, dir, pinned, known)
                }
                Err(e) => {
                    self.metrics.error("sync");
                    report.error = Some(format!("{e:#}"));
                    self.finish(&report, started);
                    return report;
                }
            },
        };
        // The stacks are read once a pass: the pin pass's texts (with its pins)
        // are converted for apply and drift, only files it did not read are
        // read here.
        let options = self.options(&request.skip);
        let mut repo = {
            let _step = liveness.begin("read the stacks");
            // Reading and converting the stacks is file I/O and parsing: off the
            // one async thread, so `/healthz` and the webhooks answer meanwhile.
            let (dir, read_options) = (dir.clone(), options.clone());
            match tokio::task::spawn_blocking(move || prepare_known(&dir, &read_options, &known))
                .await
            {
                Ok(repo) => repo,
                Err(e) => {
                    self.metrics.error("sync");
                    report.error = Some(format!("reading the stacks failed: {e}"));
                    self.finish(&report, started);
                    return report;
                }
            }
        };
        let mut apply_options = options.clone();
        if let (Some(only), Ok(repo)) = (&only, &repo) {
            apply_options.skip.extend(
                repo.stacks
                    .iter()
                    .filter(|s| !only.contains(&s.project))
                    .map(|s| s.project.clone()),
            );
        }
        // A definition that failed its soak is held back: its last good image
        // runs instead, or its stack is left alone and reported.
        let unheld = repo.as_ref().ok().map(|r| r.stacks.clone());
        let mut held = match &mut repo {
            Ok(repo) => soak::apply_holds(&mut self.rollback, repo),
            Err(_) => BTreeMap::new(),
        };
        let candidates = match &repo {
            Ok(repo) if !self.stopping.load(Ordering::Acquire) => {
                soak::candidates(
                    &self.containers,
                    repo,
                    &apply_options,
                    self.config(),
                    &pinned,
                    &self.previous,
                )
                .await
            }
            _ => Vec::new(),
        };
        let outcomes = self.apply(repo.as_ref(), &apply_options, liveness).await;
        if let (Ok(repo_now), Some(unheld)) = (&mut repo, unheld) {
            // The rollback starts from the repository's own definitions.
            let mut unheld = Repository {
                stacks: unheld,
                diagnostics: Vec::new(),
                unnamed: Vec::new(),
                failed_dirs: BTreeSet::new(),
            };
            let rolled = self
                .soak(&unheld, &apply_options, candidates, &outcomes, liveness)
                .await;
            report.rolled_back = rolled.services;
            if rolled.failed > 0 {
                // Drift compares with what runs now: the new holds too, on the
                // checkout a revert changed, else on the definitions read.
                let (dir, read_options) = (dir.clone(), options.clone());
                let again = if rolled.reverted {
                    tokio::task::spawn_blocking(move || prepare(&dir, &read_options))
                        .await
                        .ok()
                } else {
                    None
                };
                match again {
                    Some(again) => repo = again,
                    None => std::mem::swap(&mut repo_now.stacks, &mut unheld.stacks),
                }
                held = match &mut repo {
                    Ok(repo) => soak::apply_holds(&mut self.rollback, repo),
                    Err(_) => BTreeMap::new(),
                };
            }
            held.extend(rolled.failing);
        }
        if let Some(e) = &outcomes.failed {
            report.error = Some(e.clone());
        }
        if let Ok(repo) = &repo {
            self.previous = repo
                .stacks
                .iter()
                .filter(|p| p.error.is_none())
                .flat_map(|p| {
                    p.spec
                        .services
                        .iter()
                        .map(|spec| (format!("{}/{}", p.project, spec.service), spec.clone()))
                })
                .collect();
        }
        let drift = match &repo {
            Ok(repo) => {
                let _step = liveness.begin("compare with what runs");
                self.containers
                    .drift(repo, &options)
                    .await
                    .map_err(|e| format!("{e:#}"))
            }
            Err(e) => Err(format!("{e:#}")),
        };
        let mut stacks: BTreeMap<String, StackOutcome> = BTreeMap::new();
        match drift {
            Ok(d) => {
                let mut drifted = Vec::new();
                for e in d.entries.iter().filter(|e| e.state.is_drift()) {
                    let service = e
                        .service
                        .clone()
                        .or_else(|| e.container.clone())
                        .unwrap_or_default();
                    let mut event = Event::new(EventKind::Drift, now())
                        .stack(&e.stack)
                        .service(&service)
                        .reason(e.state.as_str());
                    if let Some(expected) = &e.expected {
                        event = event.reason(format!("{}: expected {expected}", e.state));
                    }
                    self.engine.emit(event);
                    drifted.push((e.stack.clone(), service));
                }
                self.engine.settle(EventKind::Drift, |stack, service| {
                    !drifted
                        .iter()
                        .any(|(st, sv)| (Some(st.as_str()), Some(sv.as_str())) == (stack, service))
                });
                self.metrics.drift.clear();
                let mut counts: BTreeMap<(String, DriftState), i64> = BTreeMap::new();
                for e in &d.entries {
                    let s = stacks
                        .entry(e.stack.clone())
                        .or_insert_with(|| StackOutcome::new(e.stack.clone()));
                    if e.state != DriftState::Orphan {
                        s.services += 1;
                    }
                    if e.state.is_ailing() {
                        s.ailing += 1;
                    } else if e.state.is_drift() {
                        s.drifted += 1;
                    }
                    if e.state.is_drift() {
                        tracing::warn!(
                            stack = %e.stack,
                            service = e.service.as_deref().unwrap_or(""),
                            state = %e.state,
                            "drift"
                        );
                    }
                    *counts.entry((e.stack.clone(), e.state)).or_default() += 1;
                }
                for ((stack, state), n) in counts {
                    self.metrics
                        .drift
                        .get_or_create(&DriftLabels {
                            stack,
                            state: state.as_str().to_owned(),
                        })
                        .set(n);
                }
                for e in d.errors {
                    stacks
                        .entry(e.stack.clone())
                        .or_insert_with(|| StackOutcome::new(e.stack.clone()))
                        .error = Some(e.error);
                }
            }
            Err(e) => {
                self.metrics.error("drift");
                report.error.get_or_insert(e);
            }
        }
        for (stack, error) in outcomes.stacks {
            let s = stacks
                .entry(stack.clone())
                .or_insert_with(|| StackOutcome::new(stack));
            if error.is_some() {
                s.error = error;
            }
        }
        for (stack, why) in held {
            stacks
                .entry(stack.clone())
                .or_insert_with(|| StackOutcome::new(stack))
                .error
                .get_or_insert(why);
        }
        report.stacks = stacks.into_values().collect();
        self.finish(&report, started);
        report
    }

    async fn reload(&mut self) -> Result<(), String> {
        let loaded = crate::config::load(self.config_file.as_deref(), &self.env, &self.overrides)
            .map_err(|e| e.to_string())?;
        let mut engine = Engine::on(&loaded.config, &self.env, tokio::runtime::Handle::current())
            .map_err(|e| format!("{e:#}"))?;
        engine.count_notification_failures_in(self.metrics.notifications_failed.clone());
        let containers = engine.containers().await.map_err(|e| format!("{e:#}"))?;
        engine
            .write_signature_policy()
            .map_err(|e| format!("{e:#}"))?;
        #[cfg(target_os = "linux")]
        {
            self.doctor = crate::doctor::Doctor::new(crate::doctor::DoctorOptions::for_daemon(
                &loaded.config.doctor,
                loaded.config.apply.instance.as_str(),
            ));
        }
        self.engine = Arc::new(engine);
        self.containers = containers;
        self.counted.clear();
        Ok(())
    }
}

impl RepoReconciler {
    /// Soaks the services this pass changed (and those a killed daemon left),
    /// and rolls back the ones that fail. Returns the stacks to report failing.
    async fn soak(
        &mut self,
        repo: &Repository,
        options: &RepoOptions,
        candidates: Vec<soak::Candidate>,
        outcomes: &Applied,
        liveness: &Liveness,
    ) -> soak::RolledBack {
        let started = soak::start(&mut self.rollback, candidates, &outcomes.stacks);
        if started > 0
            && let Err(e) = self.engine.save_rollback_state(&self.rollback)
        {
            tracing::error!(error = %format!("{e:#}"), "cannot save the soak state");
        }
        if self.rollback.soaks.is_empty() || self.stopping.load(Ordering::Acquire) {
            return soak::RolledBack::default();
        }
        let decided = {
            let _step = liveness.begin("soak changed services");
            soak::watch(
                &self.containers,
                &self.engine,
                &mut self.rollback,
                liveness,
                &self.stopping,
            )
            .await
        };
        let mut failed = Vec::new();
        for (s, verdict) in decided {
            match verdict {
                crate::core::soak::Verdict::Failed { failure, .. } => failed.push((s, failure)),
                _ => {
                    self.rollback.last_good.remove(&s.who());
                    tracing::info!(stack = %s.stack, service = %s.service, image = %s.to, "passed its soak")
                }
            }
        }
        if failed.is_empty() {
            return soak::RolledBack::default();
        }
        let _step = liveness.begin("roll back failed services");
        soak::roll_back(
            &self.engine,
            &self.containers,
            &mut self.rollback,
            repo,
            options,
            &Progress::to(self.progress.clone()),
            failed,
            &self.metrics,
        )
        .await
    }

    fn finish(&mut self, report: &PassReport, started: Instant) {
        self.count_registry_requests();
        // A pass that failed as a whole, and each stack that failed in it.
        match &report.error {
            Some(e) => self
                .engine
                .emit(Event::new(EventKind::PassFailed, now()).reason(e)),
            None => self
                .engine
                .settle(EventKind::PassFailed, |stack, _| stack.is_none()),
        }
        for s in &report.stacks {
            match &s.error {
                Some(e) => self.engine.emit(
                    Event::new(EventKind::PassFailed, now())
                        .stack(&s.stack)
                        .reason(e),
                ),
                None => self.engine.settle(EventKind::PassFailed, |stack, _| {
                    stack == Some(s.stack.as_str())
                }),
            }
        }
        let ok = report.ok();
        self.metrics
            .passes
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc();
        self.metrics
            .pass_duration
            .observe(started.elapsed().as_secs_f64());
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.metrics.last_success.set(now);
        }
    }
}
