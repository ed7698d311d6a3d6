//! The repository's stacks as Quadlet units (`magos export quadlet`): read
//! and converted as `plan` and `apply` read them, made into units by the
//! core. Nothing is written here; the caller writes the files.

use std::path::Path;

use crate::apply::RepoOptions;
use crate::apply::repo;
use crate::core::diag::{Diagnostic, Severity};
use crate::core::quadlet::{self, Scope, UnitFile};

use super::Engine;

/// The units of every stack, or why a stack has none.
#[derive(Debug, Clone, Default)]
pub struct QuadletExport {
    /// One entry per stack, in the repository's order.
    pub stacks: Vec<StackUnits>,
    /// Folders that hold no nameable stack, with the reason.
    pub unnamed: Vec<(String, String)>,
    /// The warnings of reading the repository (errors are in the stacks).
    pub warnings: Vec<Diagnostic>,
}

impl QuadletExport {
    /// Whether a stack could not be exported.
    pub fn failed(&self) -> bool {
        !self.unnamed.is_empty()
            || self
                .stacks
                .iter()
                .any(|s| matches!(s.outcome, Outcome::Failed { .. }))
    }
}

/// One stack's units.
#[derive(Debug, Clone)]
pub struct StackUnits {
    /// The compose project.
    pub project: String,
    /// Its folder, relative to the repository.
    pub dir: String,
    /// Its units, or why it has none.
    pub outcome: Outcome,
}

/// What became of a stack.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Its units, sorted by name.
    Units(Vec<UnitFile>),
    /// `x-magos: {observe: true}`: Magos never changes it, so it makes no
    /// units.
    Observed,
    /// It cannot be exported: why, and the located errors.
    Failed {
        /// One line.
        reason: String,
        /// The errors, by file and line.
        errors: Vec<Diagnostic>,
    },
}

impl Engine {
    /// The Quadlet units of the stacks of `dir` (one stack with
    /// `options.stack`), for the systemd manager of `scope`.
    pub fn export_quadlet(
        &self,
        dir: &Path,
        options: &RepoOptions,
        scope: Scope,
    ) -> anyhow::Result<QuadletExport> {
        let repo = repo::prepare(dir, options)?;
        let mut out = QuadletExport {
            unnamed: repo.unnamed.clone(),
            warnings: repo
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Warning)
                .cloned()
                .collect(),
            ..QuadletExport::default()
        };
        super::workspace::sort(&mut out.warnings);
        let options = quadlet::Options {
            scope,
            ..quadlet::Options::default()
        };
        for stack in &repo.stacks {
            let outcome = if stack.observe {
                Outcome::Observed
            } else if let Some(reason) = &stack.error {
                let mut errors: Vec<Diagnostic> = repo
                    .diagnostics
                    .iter()
                    .filter(|d| {
                        d.severity == Severity::Error
                            && stack.files.iter().any(|f| f.ends_with(&d.file))
                    })
                    .cloned()
                    .collect();
                super::workspace::sort(&mut errors);
                Outcome::Failed {
                    reason: reason.to_string(),
                    errors,
                }
            } else {
                match quadlet::stack_units(&stack.spec, &stack.sites, &options) {
                    Ok(units) => Outcome::Units(units),
                    Err(errors) => Outcome::Failed {
                        reason: format!(
                            "{} compose setting(s) cannot be expressed as Quadlet units",
                            errors.len()
                        ),
                        errors,
                    },
                }
            };
            out.stacks.push(StackUnits {
                project: stack.project.clone(),
                dir: stack.dir.clone(),
                outcome,
            });
        }
        Ok(out)
    }
}
