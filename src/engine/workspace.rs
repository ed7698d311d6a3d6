//! The workspace: a repository's stacks read once and converted once, for the
//! diagnostics every command reports alike (`lint`, `plan`, `apply`, `drift`).

use std::path::{Path, PathBuf};

use crate::config::{Config, Env};
use crate::core::diag::Diagnostic;
use crate::core::stacks::Selection;
use crate::repo::RepoStacks;

/// The stacks of a repository folder that a selection picks: each file read
/// once ([`RepoStacks`], with the texts read) and, where Podman is (unix),
/// converted once into the specs `plan` and `apply` use.
#[derive(Debug)]
pub struct Workspace {
    /// The repository folder, canonical.
    pub root: PathBuf,
    /// The stacks as read and loaded.
    pub stacks: RepoStacks,
    /// The stacks converted, with every diagnostic of loading, the host's
    /// trust boundary and conversion (ports, volumes, …).
    #[cfg(unix)]
    pub repo: crate::apply::repo::Repository,
}

impl Workspace {
    /// Reads and converts the stacks of `dir` that `selection` picks, with
    /// this configuration's instance, trust boundary and profiles.
    pub fn read(
        config: &Config,
        env: &Env,
        dir: &Path,
        selection: Selection,
    ) -> anyhow::Result<Self> {
        let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let stacks = crate::repo::load(&root, &selection, env)?;
        #[cfg(unix)]
        let repo = {
            let mut options =
                crate::apply::RepoOptions::from_config(config, selection.host.clone(), env);
            options.selection = selection;
            crate::apply::repo::prepare_loaded(&root, &stacks, &options)?
        };
        #[cfg(not(unix))]
        let _ = config;
        Ok(Self {
            root,
            stacks,
            #[cfg(unix)]
            repo,
        })
    }
}

/// Sorts diagnostics by file, line and column, without duplicates.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by_cached_key(|d| (d.file.clone(), d.line, d.column, d.to_string()));
    diagnostics.dedup();
}
