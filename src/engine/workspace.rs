//! The repository's stacks read and converted as `plan`, `apply` and `drift`
//! read them, for the diagnostics every command reports alike.

#[cfg(unix)]
use std::path::Path;

#[cfg(unix)]
use crate::config::{Config, Env};
use crate::core::diag::Diagnostic;
#[cfg(unix)]
use crate::core::stacks::Selection;

/// Every diagnostic of the stacks of `dir` that `selection` picks: loading
/// (YAML, keys, annotations, `.env`), the host's trust boundary, and the
/// conversion into container specs (ports, volumes, …), as `magos plan` and
/// `magos apply` report them. Sorted by file, line and column.
#[cfg(unix)]
pub fn diagnostics(
    config: &Config,
    env: &Env,
    dir: &Path,
    selection: Selection,
) -> anyhow::Result<Vec<Diagnostic>> {
    let mut options = crate::apply::RepoOptions::from_config(config, selection.host.clone(), env);
    options.selection = selection;
    let repo = crate::apply::repo::prepare(dir, &options)?;
    let mut diagnostics = repo.diagnostics;
    sort(&mut diagnostics);
    Ok(diagnostics)
}

/// Sorts diagnostics by file, line and column, without duplicates.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by_cached_key(|d| (d.file.clone(), d.line, d.column, d.to_string()));
    diagnostics.dedup();
}
