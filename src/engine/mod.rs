//! The engine: the only layer that combines the edges (git, registry, Podman,
//! secrets, the GitHub API). An [`Engine`] is built once from the configuration
//! (and built again when the configuration is reloaded) and owns what lasts
//! between operations: the registry client with its bearer tokens and request
//! counts, the optional GitHub App with its installation token, the Podman
//! client, the age key sources and the private runtime folder.
//!
//! Its operations return typed results ([`pin::WriteBack`], [`pin::Problem`]):
//! no rendered text and no exit code. The front ends (`cli`, `daemon`) call it
//! and render.

#[cfg(unix)]
pub mod containers;
#[cfg(unix)]
pub mod converge;
pub mod events;
#[cfg(unix)]
pub mod export;
pub mod pin;
pub mod rollback;
pub mod source;
pub mod workspace;

use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::config::{Config, Env};
use crate::git::Checkout;
use crate::git::github::GithubApp;
use crate::registry::{RateLimit, RegistryClient, Settings};
use crate::secrets::keys::KeySources;

pub use pin::{Problem, WriteBack, Written};
pub use source::Location;

/// Where the engine's blocking operations run their async parts.
enum Rt {
    /// A runtime of its own (a command of the CLI).
    Owned(tokio::runtime::Runtime),
    /// The daemon's runtime: the operations are called on its blocking pool.
    Shared(tokio::runtime::Handle),
}

/// The combining layer, built once from the configuration.
pub struct Engine {
    config: Config,
    env: Env,
    /// Made on first use: commands that ask no registry never read its
    /// settings (`registries.conf`, auth files).
    registry: std::sync::OnceLock<RegistryClient>,
    rt: Rt,
    /// The GitHub App of the repository (`None` inside when none is configured),
    /// made on first use so its installation token is minted once and reused.
    app: Mutex<Option<Option<Arc<GithubApp>>>>,
    #[cfg(unix)]
    podman: std::sync::OnceLock<crate::podman::Client>,
    #[cfg(unix)]
    docker: std::sync::OnceLock<crate::docker::Client>,
    keys: KeySources,
    runtime_dir: Option<crate::secrets::runtime::RuntimeDir>,
    /// Sends events to the `notify:` receivers in the background.
    notifier: crate::notify::Notifier,
    /// The event journal in the state folder (`None` without one).
    journal: Option<crate::notify::Journal>,
    /// The states already sent, kept in the state folder between runs.
    dedupe: Mutex<crate::core::notify::Dedupe>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Drop for Engine {
    /// A command's engine waits for the notifications under way (each has
    /// its own time limit and bounded attempts) before its runtime goes.
    fn drop(&mut self) {
        // (Never from inside a runtime, where blocking on one is refused.)
        if let Rt::Owned(r) = &self.rt
            && tokio::runtime::Handle::try_current().is_err()
        {
            r.block_on(self.flush_notifications(std::time::Duration::from_secs(15)));
        }
    }
}

impl Engine {
    /// An engine with a tokio runtime of its own, for one command.
    pub fn new(config: &Config, env: &Env) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Self::build(config, env, Rt::Owned(runtime))
    }

    /// An engine whose async work runs on the runtime of `handle` (the
    /// daemon's). Its blocking operations must then be called off that
    /// runtime's async workers (`spawn_blocking`).
    pub fn on(config: &Config, env: &Env, handle: tokio::runtime::Handle) -> anyhow::Result<Self> {
        Self::build(config, env, Rt::Shared(handle))
    }

    fn build(config: &Config, env: &Env, rt: Rt) -> anyhow::Result<Self> {
        let handle = match &rt {
            Rt::Owned(r) => r.handle().clone(),
            Rt::Shared(h) => h.clone(),
        };
        let notifier = crate::notify::Notifier::new(
            &config.notify,
            handle,
            crate::notify::Delivery::default(),
        );
        let journal = crate::config::state_dir(config, env)
            .map(|dir| crate::notify::Journal::new(&dir, crate::notify::journal::MAX_BYTES));
        let dedupe = journal
            .as_ref()
            .map(|j| j.load_dedupe())
            .unwrap_or_default();
        Ok(Self {
            notifier,
            journal,
            dedupe: Mutex::new(dedupe),
            config: config.clone(),
            env: env.clone(),
            registry: std::sync::OnceLock::new(),
            rt,
            app: Mutex::new(None),
            #[cfg(unix)]
            podman: std::sync::OnceLock::new(),
            #[cfg(unix)]
            docker: std::sync::OnceLock::new(),
            keys: KeySources::from_env(env, config.secrets.age_key_file.as_deref()),
            runtime_dir: crate::secrets::runtime::RuntimeDir::from_env(env).ok(),
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The environment it was built with.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// The registry client (tokens and counters last as long as the engine),
    /// made on first use from Podman's registry settings.
    pub fn registry(&self) -> anyhow::Result<&RegistryClient> {
        if let Some(r) = self.registry.get() {
            return Ok(r);
        }
        let client = RegistryClient::new(
            Settings::load(&self.config.registries, &self.env)?
                .with_verify(&self.config.verify)?
                .with_scan(&self.config.scan),
        );
        Ok(self.registry.get_or_init(|| client))
    }

    /// Where the age identities that decrypt SOPS files come from.
    pub fn keys(&self) -> &KeySources {
        &self.keys
    }

    /// The private runtime folder for decrypted files, when there is one.
    pub fn runtime_dir(&self) -> Option<&crate::secrets::runtime::RuntimeDir> {
        self.runtime_dir.as_ref()
    }

    /// The Podman client: the socket is located on first use.
    #[cfg(unix)]
    pub fn podman(&self) -> anyhow::Result<&crate::podman::Client> {
        if let Some(c) = self.podman.get() {
            return Ok(c);
        }
        let socket = crate::podman::locate_socket(
            self.config.podman.socket.as_ref().map(|s| s.path()),
            &self.env,
        )?;
        let client = crate::podman::Client::new(socket, crate::podman::ClientOptions::default());
        Ok(self.podman.get_or_init(|| client))
    }

    /// The Docker Engine client (`runtime: docker`): the socket is located and
    /// the API version agreed on first use.
    #[cfg(unix)]
    pub fn docker(&self) -> anyhow::Result<&crate::docker::Client> {
        if let Some(c) = self.docker.get() {
            return Ok(c);
        }
        let (client, _) = self.block_on(crate::docker::Client::connect(
            &self.env,
            crate::docker::ClientOptions::default(),
        ))?;
        Ok(self.docker.get_or_init(|| client))
    }

    /// Whether stacks are applied through Docker Engine (`runtime: docker`).
    pub fn is_docker(&self) -> bool {
        self.config.runtime == crate::config::Runtime::Docker
    }

    /// With `verify_policy: write`, makes this user's Podman signature policy
    /// require the `verify:` keys at pull (`podman::sigpolicy`); without it,
    /// nothing. Rules Podman cannot express are warned about.
    #[cfg(unix)]
    pub fn write_signature_policy(&self) -> anyhow::Result<()> {
        use crate::podman::sigpolicy;
        if self.config.verify_policy != crate::config::VerifyPolicy::Write {
            return Ok(());
        }
        let Some(home) = self.env.get("HOME").filter(|h| !h.is_empty()) else {
            anyhow::bail!(
                "verify_policy: write needs HOME: Podman reads its signature policy under ~/.config/containers"
            );
        };
        let written = sigpolicy::write(
            &sigpolicy::PolicyPaths::for_home(std::path::Path::new(home)),
            &self.config.verify,
        )?;
        for why in &written.unwritten {
            tracing::warn!("{why}; Podman does not enforce it at pull (Magos still checks it)");
        }
        for scope in &written.left_to_others {
            tracing::warn!(
                scope,
                "another registries.d file defines this scope: it must set use-sigstore-attachments: true for Podman to find the signatures"
            );
        }
        if !written.changed.is_empty() {
            let files: Vec<String> = written
                .changed
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            tracing::info!(
                files = %files.join(", "),
                scopes = %written.scopes.join(", "),
                "Podman's signature policy now requires the verify: keys"
            );
        }
        Ok(())
    }

    /// The options of a repository apply, plan or drift for this configuration
    /// and the stacks of `host` (every host's when `None`).
    #[cfg(unix)]
    pub fn repo_options(&self, host: Option<String>) -> crate::apply::RepoOptions {
        let mut options = crate::apply::RepoOptions::from_config(&self.config, host, &self.env);
        options.keys = self.keys.clone();
        options
    }

    /// The registries asked so far: per registry, the responses by status (an
    /// HTTP status, or `error` when none came) and the last rate limit seen.
    pub fn registry_stats(&self) -> Vec<RegistryStats> {
        let Some(registry) = self.registry.get() else {
            return Vec::new();
        };
        registry
            .hosts()
            .into_iter()
            .map(|host| RegistryStats {
                statuses: registry.responses(&host),
                rate_limit: registry.rate_limit(&host),
                host,
            })
            .collect()
    }

    /// Runs `f` to completion on the engine's runtime.
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        match &self.rt {
            Rt::Owned(r) => r.block_on(f),
            Rt::Shared(h) => h.block_on(f),
        }
    }

    /// The GitHub App configured for the repository at `url`, made once.
    fn app(&self, url: &str) -> anyhow::Result<Option<Arc<GithubApp>>> {
        let mut app = self.app.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = &*app {
            return Ok(known.clone());
        }
        let made = {
            // The App's HTTP client starts a worker task on the current runtime.
            let _entered = match &self.rt {
                Rt::Owned(r) => r.enter(),
                Rt::Shared(h) => h.enter(),
            };
            GithubApp::from_config(&self.config.github, url)?.map(Arc::new)
        };
        *app = Some(made.clone());
        Ok(made)
    }

    /// The clone with the GitHub App's installation token as its credentials,
    /// when an App is configured under `github:`; and the App.
    pub fn authed(
        &self,
        mut checkout: Checkout,
    ) -> anyhow::Result<(Checkout, Option<Arc<GithubApp>>)> {
        let app = self.app(checkout.remote().url())?;
        if let Some(app) = &app {
            checkout.set_auth(self.block_on(app.git_auth())?);
        }
        Ok((checkout, app))
    }
}

/// What one registry has answered so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryStats {
    /// The registry's API host.
    pub host: String,
    /// Responses by status (`200`, `401`, …, or `error`), counted since the
    /// engine was built.
    pub statuses: Vec<(String, u64)>,
    /// The last rate-limit headers it sent.
    pub rate_limit: Option<RateLimit>,
}
