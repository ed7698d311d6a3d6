//! Plan, apply and drift of a repository folder against the engine's Podman
//! (or Docker Engine, with `runtime: docker`).

use std::path::Path;

use crate::apply::repo::{self, ApplyReport, DriftReport, PlanReport};
use crate::apply::{Progress, RepoOptions, Stop};

use super::Engine;

impl Engine {
    /// What `apply` would do to the stacks of `dir`, changing nothing.
    pub fn plan(&self, dir: &Path, options: &RepoOptions) -> anyhow::Result<PlanReport> {
        if self.is_docker() {
            let client = self.docker()?;
            return Ok(self.block_on(repo::plan_repo(client, dir, options))?);
        }
        let client = self.podman()?;
        Ok(self.block_on(repo::plan_repo(client, dir, options))?)
    }

    /// Converges the stacks of `dir`: each applied on its own, a failing one
    /// reported while the others go on. Each action and pulled layer marks
    /// `progress`; once `stop` is raised, the apply stops at its next safe point.
    pub fn apply(
        &self,
        dir: &Path,
        options: &RepoOptions,
        progress: &Progress,
        stop: &Stop,
    ) -> anyhow::Result<ApplyReport> {
        if self.is_docker() {
            let client = self.docker()?;
            return Ok(self.block_on(repo::apply_repo(client, dir, options, progress, stop))?);
        }
        let client = self.podman()?;
        Ok(self.block_on(repo::apply_repo(client, dir, options, progress, stop))?)
    }

    /// How what runs differs from the stacks of `dir`.
    pub fn drift(&self, dir: &Path, options: &RepoOptions) -> anyhow::Result<DriftReport> {
        if self.is_docker() {
            let client = self.docker()?;
            return Ok(self.block_on(repo::drift_repo(client, dir, options))?);
        }
        let client = self.podman()?;
        Ok(self.block_on(repo::drift_repo(client, dir, options))?)
    }
}
