//! The reconcile pass of `magos run`: sync the repository → check registries and
//! write the pins back → apply → heal the network → drift. It combines the edges
//! (git, registry, Podman, doctor); the loop around it is [`super::run_loop`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::apply::repo::{RepoApplyError, Repository, apply_prepared, drift_prepared, prepare};
use crate::apply::{RepoOptions, stoppable};
use crate::cli::check::Location;
use crate::config::{Config, Env, Overrides};
use crate::core::drift::DriftState;
use crate::podman::{Client, ClientOptions};
use crate::server::metrics::{DriftLabels, ResultLabel};
use crate::server::{Liveness, Metrics};

use super::{PassReport, PassRequest, Reconciler, StackOutcome};

/// Everything a pass needs, rebuilt on reload.
pub struct RepoReconciler {
    config_file: Option<PathBuf>,
    overrides: Overrides,
    env: Env,
    config: Config,
    client: Client,
    metrics: Arc<Metrics>,
    stopping: Arc<AtomicBool>,
    #[cfg(target_os = "linux")]
    doctor: crate::doctor::Doctor,
}

impl RepoReconciler {
    /// A reconciler for a loaded configuration. `config_file` and `overrides` are
    /// kept to reload it on `SIGHUP`.
    pub fn new(
        config: Config,
        config_file: Option<PathBuf>,
        overrides: Overrides,
        env: Env,
        metrics: Arc<Metrics>,
        stopping: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let client = client_for(&config, &env)?;
        #[cfg(target_os = "linux")]
        let doctor = crate::doctor::Doctor::new(crate::doctor::DoctorOptions::for_daemon(
            &config.doctor,
            config.apply.instance.as_str(),
        ));
        Ok(Self {
            config_file,
            overrides,
            env,
            config,
            client,
            metrics,
            stopping,
            #[cfg(target_os = "linux")]
            doctor,
        })
    }

    /// The Podman client (for the event stream).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Syncs the repository and writes pins back; returns the folder to apply and
    /// the number of services pinned.
    async fn sync_and_pin(
        &self,
        liveness: &Liveness,
        report: &mut PassReport,
    ) -> anyhow::Result<PathBuf> {
        let location = Location::of(&self.config, &self.env)?;
        match location {
            Location::Folder(dir) => {
                // A plain folder is applied as it is; pins are written only to a
                // git remote (`magos update --no-commit` rewrites a folder).
                Ok(dir)
            }
            Location::Remote(checkout) => {
                let workdir = checkout.workdir().to_owned();
                if self.config.daemon.observe {
                    let _step = liveness.begin("sync repository and check registries");
                    tokio::task::spawn_blocking(move || checkout.sync()).await??;
                    let (config, env, dir) =
                        (self.config.clone(), self.env.clone(), workdir.clone());
                    let found = tokio::task::spawn_blocking(move || {
                        crate::cli::update::available(&config, &env, &dir)
                    })
                    .await?;
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
                    return Ok(workdir);
                }
                let _step = liveness.begin("sync, check registries and write pins back");
                let (config, env) = (self.config.clone(), self.env.clone());
                let written = tokio::task::spawn_blocking(move || {
                    crate::cli::update::write_back(&config, &env, checkout)
                })
                .await?;
                let written = match written {
                    Ok(w) => w,
                    Err(e) => {
                        // A pin that cannot be pushed must not keep the host from
                        // what the remote holds: report it, realign, apply.
                        self.metrics.error("pin");
                        let message = format!("{e:#}");
                        tracing::error!(error = %message, "writing pins back failed; applying the remote as it is");
                        report.error = Some(format!("writing pins back failed: {message}"));
                        if let Location::Remote(checkout) = Location::of(&self.config, &self.env)? {
                            // Realign to the remote; when it cannot be reached
                            // (the push failed for that reason), to what the
                            // last fetch saw, without the unpushed commit.
                            tokio::task::spawn_blocking(move || {
                                checkout.sync().map(|_| ()).or_else(|e| {
                                    tracing::warn!(error = %format!("{e:#}"), "cannot sync again; applying the branch as last fetched");
                                    checkout.align_to_fetched()
                                })
                            })
                            .await??;
                        }
                        return Ok(workdir);
                    }
                };
                for line in written.text.lines() {
                    tracing::info!("{line}");
                }
                if written.exit != crate::cli::Exit::Success {
                    self.metrics.error("pin");
                    report.error.get_or_insert_with(|| {
                        "some images could not be checked or pinned".to_owned()
                    });
                }
                report.updates = written.updates;
                self.metrics.updates_applied.inc_by(written.updates as u64);
                Ok(workdir)
            }
        }
    }

    fn options(&self, skip: &BTreeSet<String>) -> RepoOptions {
        let mut options =
            RepoOptions::from_config(&self.config, crate::apply::repo::this_host(), &self.env);
        options.skip = skip.clone();
        options
    }

    async fn apply(
        &mut self,
        repo: Result<&Repository, &RepoApplyError>,
        options: &RepoOptions,
        liveness: &Liveness,
    ) -> BTreeMap<String, Option<String>> {
        let mut outcomes = BTreeMap::new();
        if self.config.daemon.observe || self.stopping.load(Ordering::Acquire) {
            return outcomes;
        }
        {
            let _step = liveness.begin("apply stacks");
            // SIGTERM/SIGINT stop the apply at its next safe point.
            let applied = match repo {
                Ok(repo) => stoppable(
                    self.stopping.clone(),
                    apply_prepared(&self.client, repo, options),
                )
                .await
                .map_err(|e| format!("{e:#}")),
                Err(e) => Err(format!("{e:#}")),
            };
            match applied {
                Ok(r) => {
                    for s in r.stacks {
                        if let Some(e) = &s.error {
                            self.metrics.error("apply");
                            tracing::error!(stack = %s.stack, error = %e, "stack failed");
                        }
                        outcomes.insert(s.stack, s.error);
                    }
                }
                Err(e) => {
                    self.metrics.error("apply");
                    tracing::error!(error = %e, "apply failed");
                    outcomes.insert(String::new(), Some(e));
                }
            }
        }
        #[cfg(target_os = "linux")]
        if self.config.doctor.heal && !self.stopping.load(Ordering::Acquire) {
            let _step = liveness.begin("check rootless networking");
            let report =
                crate::doctor::check_and_heal(&self.client, &mut self.doctor, Some(&self.metrics))
                    .await;
            for h in &report.heals {
                tracing::info!(action = ?h.action.kind(), target = %h.action.target(), outcome = ?h.outcome, "network heal");
            }
        }
        outcomes
    }
}

fn client_for(config: &Config, env: &Env) -> anyhow::Result<Client> {
    let socket =
        crate::podman::locate_socket(config.podman.socket.as_ref().map(|s| s.path()), env)?;
    Ok(Client::new(socket, ClientOptions::default()))
}

impl Reconciler for RepoReconciler {
    async fn pass(&mut self, request: PassRequest, liveness: &Liveness) -> PassReport {
        let started = Instant::now();
        let mut report = PassReport::default();
        let dir = match self.sync_and_pin(liveness, &mut report).await {
            Ok(dir) => dir,
            Err(e) => {
                self.metrics.error("sync");
                report.error = Some(format!("{e:#}"));
                self.finish(&report, started);
                return report;
            }
        };
        // The stacks are read once for apply and drift.
        let options = self.options(&request.skip);
        let repo = {
            let _step = liveness.begin("read the stacks");
            // Reading and converting the stacks is file I/O and parsing: off the
            // one async thread, so `/healthz` and the webhooks answer meanwhile.
            let (dir, read_options) = (dir.clone(), options.clone());
            match tokio::task::spawn_blocking(move || prepare(&dir, &read_options)).await {
                Ok(repo) => repo,
                Err(e) => {
                    self.metrics.error("sync");
                    report.error = Some(format!("reading the stacks failed: {e}"));
                    self.finish(&report, started);
                    return report;
                }
            }
        };
        let outcomes = self.apply(repo.as_ref(), &options, liveness).await;
        if let Some(Some(e)) = outcomes.get("") {
            report.error = Some(e.clone());
        }
        let drift = match &repo {
            Ok(repo) => {
                let _step = liveness.begin("compare with what runs");
                drift_prepared(&self.client, repo, &options)
                    .await
                    .map_err(|e| format!("{e:#}"))
            }
            Err(e) => Err(format!("{e:#}")),
        };
        let mut stacks: BTreeMap<String, StackOutcome> = BTreeMap::new();
        match drift {
            Ok(d) => {
                self.metrics.drift.clear();
                let mut counts: BTreeMap<(String, DriftState), i64> = BTreeMap::new();
                for e in &d.entries {
                    let s = stacks
                        .entry(e.stack.clone())
                        .or_insert_with(|| StackOutcome::new(e.stack.clone()));
                    if e.state != DriftState::Orphan {
                        s.services += 1;
                    }
                    if e.state.is_drift() {
                        s.drifted += 1;
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
        for (stack, error) in outcomes {
            if stack.is_empty() {
                continue;
            }
            let s = stacks
                .entry(stack.clone())
                .or_insert_with(|| StackOutcome::new(stack));
            if error.is_some() {
                s.error = error;
            }
        }
        report.stacks = stacks.into_values().collect();
        self.finish(&report, started);
        report
    }

    async fn reload(&mut self) -> Result<(), String> {
        let loaded = crate::config::load(self.config_file.as_deref(), &self.env, &self.overrides)
            .map_err(|e| e.to_string())?;
        let client = client_for(&loaded.config, &self.env).map_err(|e| format!("{e:#}"))?;
        #[cfg(target_os = "linux")]
        {
            self.doctor = crate::doctor::Doctor::new(crate::doctor::DoctorOptions::for_daemon(
                &loaded.config.doctor,
                loaded.config.apply.instance.as_str(),
            ));
        }
        self.config = loaded.config;
        self.client = client;
        Ok(())
    }
}

impl RepoReconciler {
    fn finish(&self, report: &PassReport, started: Instant) {
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
