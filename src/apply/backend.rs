//! [`Backend`]: the operations the executor ([`super::execute`]) and the
//! repository pass ([`super::repo`]) need from a container engine, so one
//! executor carries out the core's plan on Podman (the libpod API, here) and on
//! Docker Engine ([`super::docker`]).
//!
//! Each engine keeps its own wire mapping (`generate` for libpod, the docker
//! edge's `create` for Docker); what is shared is the order of actions, the
//! handling of failures, replacements, dependencies and pruning.

use std::collections::BTreeMap;
use std::path::Path;

use crate::core::observed::Observed;
use crate::core::plan::Action;
use crate::core::spec::{ContainerSpec, NetworkSpec, StackSpec, VolumeSpec};
use crate::podman::{Client, PodmanError, PullOptions, PullPolicy};
use crate::server::Liveness;

use crate::config::Env;

use super::compose_cli::{self, ComposeCommand, ComposeError};
use super::display::PullDisplay;
use super::error::ApplyError;
use super::generate;
use super::prepared::Prepared;
use super::sealed::Unsealed;

/// A container's run state, as waiting for a dependency needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Running.
    pub running: bool,
    /// Restarting.
    pub restarting: bool,
    /// The engine's status word (`created`, `running`, `exited`, …).
    pub status: String,
    /// The last exit code.
    pub exit_code: i64,
}

/// What a container's healthcheck says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Healthy.
    Healthy,
    /// Starting or unhealthy: ask again.
    NotYet,
    /// It has no healthcheck.
    NoCheck,
}

/// A container engine the executor applies plans through.
#[allow(async_fn_in_trait)]
pub trait Backend: Sync {
    /// The engine client's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The error of `action` that failed with `e`.
    fn failed(action: String, e: Self::Error) -> ApplyError;
    /// Whether `e` says the object does not exist.
    fn not_found(e: &Self::Error) -> bool;
    /// Whether `e` says the name is taken.
    fn conflict(e: &Self::Error) -> bool;
    /// The engine's socket (the compose CLI is pointed at it).
    fn socket(&self) -> &Path;

    /// Every container, image, network and volume, in the core's terms.
    async fn observe(&self) -> Result<Observed, Self::Error>;
    /// Pulls `image` (by digest when pinned; of `platform`, `os/arch`, when a
    /// service asks for one and the engine takes it), each progress line to
    /// `progress`.
    async fn pull(
        &self,
        image: &str,
        platform: Option<&str>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), Self::Error>;
    /// Builds a service's image.
    async fn build(
        &self,
        spec: &ContainerSpec,
        liveness: Option<&Liveness>,
        display: PullDisplay,
    ) -> Result<(), ApplyError>;
    /// Creates a stack's network.
    async fn create_network(&self, stack: &StackSpec, net: &NetworkSpec)
    -> Result<(), Self::Error>;
    /// Creates a stack's volume.
    async fn create_volume(&self, stack: &StackSpec, vol: &VolumeSpec) -> Result<(), Self::Error>;
    /// What a container needs in the engine before it is created (secrets
    /// from Magos's environment).
    async fn prepare(&self, stack: &StackSpec, spec: &ContainerSpec) -> Result<(), ApplyError>;
    /// Creates the container `name` of `spec` (not started).
    async fn create(
        &self,
        stack: &StackSpec,
        spec: &ContainerSpec,
        name: &str,
        secrets: &Unsealed,
        action: &Action,
    ) -> Result<(), ApplyError>;
    /// Starts a container (one already running is fine).
    async fn start(&self, name: &str) -> Result<(), Self::Error>;
    /// Renames a container.
    async fn rename(&self, name: &str, new_name: &str) -> Result<(), Self::Error>;
    /// Restarts a container, `timeout` seconds after the stop signal.
    async fn restart(&self, name: &str, timeout: u64) -> Result<(), Self::Error>;
    /// A container's labels.
    async fn labels(&self, name: &str) -> Result<BTreeMap<String, String>, Self::Error>;
    /// Stops a container (one not running is fine).
    async fn stop(&self, name: &str, timeout: u64) -> Result<(), Self::Error>;
    /// Removes a container, killing it if it still runs after `timeout`.
    async fn remove(&self, name: &str, timeout: u64) -> Result<(), Self::Error>;
    /// A container's run state.
    async fn state(&self, name: &str) -> Result<State, Self::Error>;
    /// A running container's health (Podman runs the check on demand: rootless
    /// Podman schedules checks with systemd timers, which a host without a user
    /// manager lacks; Docker runs its checks itself).
    async fn health(&self, name: &str) -> Result<Health, Self::Error>;

    /// The compose CLI that applies what this engine cannot apply natively.
    fn compose_command(env: &Env) -> Option<ComposeCommand>;
    /// Brings a stack up with the compose CLI, then checks each service runs.
    async fn compose_up(
        &self,
        cmd: &ComposeCommand,
        stack: &Prepared,
        env: &Env,
    ) -> Result<(), ComposeError>;
    /// The compose CLI's name, for reports (`podman-compose`, `docker compose`).
    fn compose_name() -> &'static str;
}

impl Backend for Client {
    type Error = PodmanError;

    fn failed(action: String, source: PodmanError) -> ApplyError {
        ApplyError::Podman { action, source }
    }

    fn not_found(e: &PodmanError) -> bool {
        e.is_not_found()
    }

    fn conflict(e: &PodmanError) -> bool {
        e.is_conflict()
    }

    fn socket(&self) -> &Path {
        Client::socket(self)
    }

    async fn observe(&self) -> Result<Observed, PodmanError> {
        super::observe::observe(self).await
    }

    async fn pull(
        &self,
        image: &str,
        // Podman takes the platform at create (`generate`).
        _platform: Option<&str>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), PodmanError> {
        let options = PullOptions {
            policy: PullPolicy::Missing,
            tls_verify: None,
        };
        let mut progress = |line: &str| progress(line);
        self.pull_image(image, &options, &mut progress)
            .await
            .map(|_| ())
    }

    async fn build(
        &self,
        spec: &ContainerSpec,
        liveness: Option<&Liveness>,
        display: PullDisplay,
    ) -> Result<(), ApplyError> {
        super::build::build(self, spec, liveness, display)
            .await
            .map_err(ApplyError::Build)
    }

    async fn create_network(
        &self,
        stack: &StackSpec,
        net: &NetworkSpec,
    ) -> Result<(), PodmanError> {
        self.create_network(&generate::network(stack, net))
            .await
            .map(|_| ())
    }

    async fn create_volume(&self, stack: &StackSpec, vol: &VolumeSpec) -> Result<(), PodmanError> {
        self.create_volume(&generate::volume(stack, vol))
            .await
            .map(|_| ())
    }

    async fn prepare(&self, stack: &StackSpec, spec: &ContainerSpec) -> Result<(), ApplyError> {
        super::prepare::env_secrets(self, stack, spec, |v| std::env::var(v).ok()).await?;
        Ok(())
    }

    async fn create(
        &self,
        stack: &StackSpec,
        spec: &ContainerSpec,
        name: &str,
        secrets: &Unsealed,
        action: &Action,
    ) -> Result<(), ApplyError> {
        let request = generate::container(stack, spec, name, secrets)?;
        self.create_container(&request)
            .await
            .map(|_| ())
            .map_err(|e| Self::failed(action.to_string(), e))
    }

    async fn start(&self, name: &str) -> Result<(), PodmanError> {
        self.start_container(name).await.map(|_| ())
    }

    async fn rename(&self, name: &str, new_name: &str) -> Result<(), PodmanError> {
        self.rename_container(name, new_name).await
    }

    async fn restart(&self, name: &str, timeout: u64) -> Result<(), PodmanError> {
        self.restart_container(name, timeout).await
    }

    async fn labels(&self, name: &str) -> Result<BTreeMap<String, String>, PodmanError> {
        let inspect = self.inspect_container(name).await?;
        Ok(inspect.config.map(|c| c.labels).unwrap_or_default())
    }

    async fn stop(&self, name: &str, timeout: u64) -> Result<(), PodmanError> {
        self.stop_container(name, Some(timeout)).await.map(|_| ())
    }

    async fn remove(&self, name: &str, timeout: u64) -> Result<(), PodmanError> {
        self.remove_container(name, true, false, Some(timeout))
            .await
    }

    async fn state(&self, name: &str) -> Result<State, PodmanError> {
        let state = self
            .inspect_container(name)
            .await?
            .state
            .unwrap_or_default();
        Ok(State {
            running: state.running,
            restarting: state.restarting,
            status: state.status,
            exit_code: i64::from(state.exit_code),
        })
    }

    async fn health(&self, name: &str) -> Result<Health, PodmanError> {
        match self.run_healthcheck(name).await {
            Ok(h) if h.status == "healthy" => Ok(Health::Healthy),
            Ok(_) => Ok(Health::NotYet),
            Err(e) if e.status() == Some(409) => Ok(Health::NoCheck),
            Err(e) => Err(e),
        }
    }

    fn compose_command(env: &Env) -> Option<ComposeCommand> {
        ComposeCommand::find(env)
    }

    async fn compose_up(
        &self,
        cmd: &ComposeCommand,
        stack: &Prepared,
        env: &Env,
    ) -> Result<(), ComposeError> {
        compose_cli::up(cmd, self.socket(), stack, env).await?;
        compose_cli::verify(self, stack).await
    }

    fn compose_name() -> &'static str {
        "podman-compose"
    }
}
