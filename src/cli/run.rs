//! `magos run`: the daemon.

use std::collections::BTreeSet;
use std::path::Path;

use clap::Args;

use super::Exit;
use crate::config::{Env, Overrides};
use crate::daemon::reconcile::RepoReconciler;
use crate::daemon::service::{self, Daemon};
use crate::daemon::{PassRequest, Reason, Reconciler};
use crate::systemd::notify::Notifier;

/// `magos run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run one pass (sync, pin, apply, drift), print its summary and exit: 0 all
    /// in sync, 1 drift remains, 2 a stack or the pass failed
    #[arg(long)]
    pub once: bool,
    /// The repository: a git URL or a local path (overrides repo.url / MD_REPO)
    #[arg(long, value_name = "URL|DIR")]
    pub repo: Option<String>,
}

/// Runs `magos run`.
pub fn run(
    args: &RunArgs,
    file: Option<&Path>,
    env: &Env,
    overrides: &Overrides,
    verbosity: i8,
) -> anyhow::Result<Exit> {
    let overrides = Overrides {
        repo: args.repo.clone().or_else(|| overrides.repo.clone()),
        ..overrides.clone()
    };
    let loaded = super::load_config(file, env, &overrides, verbosity)?;
    let config = loaded.config;
    if config.repo.url.is_none() {
        anyhow::bail!("no repository: set repo.url (MD_REPO) or pass --repo URL|DIR");
    }
    crate::registry::install_crypto_provider();
    // One thread runs the loop, the endpoint and the event watch: a daemon that
    // idles between passes needs no worker pool (git and the registry check run
    // on the blocking pool, which keeps no thread while idle).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let daemon = Daemon::new(config.daemon.stuck_after.0);
        let mut reconciler = RepoReconciler::new(
            config.clone(),
            loaded.file.clone(),
            overrides.clone(),
            env.clone(),
            daemon.metrics.clone(),
            daemon.stopping.clone(),
            daemon.shared.liveness.clone(),
        )
        .await?;
        // Held until the process ends: one Magos per state folder and instance.
        let _lock = super::lock_instance(
            &config,
            env,
            reconciler.containers().socket(),
            reconciler.containers().name(),
            true,
        )?;
        if args.once {
            let request = PassRequest {
                reasons: vec![Reason::Startup],
                skip: BTreeSet::new(),
            };
            let report = reconciler.pass(request, &daemon.shared.liveness).await;
            reconciler
                .flush_notifications(std::time::Duration::from_secs(15))
                .await;
            super::out(&format!("{}\n", report.summary()))?;
            return Ok(if !report.ok() {
                Exit::Error
            } else if report.drifted() {
                Exit::Found
            } else {
                Exit::Success
            });
        }
        wipe_leftover_plaintext(env);
        let notifier = Notifier::from_env(env, std::process::id())?;
        if notifier.is_some() {
            tracing::info!("started by systemd: reporting readiness and status");
        }
        let containers = reconciler.containers().clone();
        service::serve(
            &mut reconciler,
            &config,
            &daemon,
            notifier,
            Some(containers),
        )
        .await?;
        reconciler
            .flush_notifications(std::time::Duration::from_secs(5))
            .await;
        Ok(Exit::Success)
    })
}

/// Removes decrypted files a previous run left in the private runtime folder (a
/// crash, a kill): the first pass writes back those that are still used.
fn wipe_leftover_plaintext(env: &Env) {
    let Ok(runtime) = crate::secrets::runtime::RuntimeDir::from_env(env) else {
        return;
    };
    match runtime.wipe_all() {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            folder = %runtime.root().display(),
            "removed the decrypted files of {n} stack(s) left by a previous run"
        ),
        Err(e) => tracing::warn!("cannot remove leftover decrypted files: {e}"),
    }
}
