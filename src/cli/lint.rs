//! `magos lint`: report a repository's stacks, services, policies and mistakes.

use std::fmt::Write as _;
use std::path::Path;

use clap::Args;
use serde::Serialize;

use super::Exit;
use super::policy::Output;
use crate::config::{self, Env};
use crate::core::convert;
use crate::core::diag::{Diagnostic, Severity};
use crate::core::stacks::Selection;
use crate::engine::workspace::Workspace;
use crate::engine::{Engine, Location};
use crate::repo;

const LINT_EXAMPLES: &str = "Examples:
  magos lint --repo ~/gitops
  magos lint --repo . --host nas --output json
  magos lint --repo . --include 'apps/*' --exclude 'apps/old'

The stacks are also held to this host's trust boundary (apply.allow in the
configuration, when there is one): what `magos apply` would refuse is reported.

Notes (`note:`) are not mistakes: the compose keys Magos does not apply itself
(the stack goes to the compose CLI) or ignores, and where it deliberately
differs from podman-compose, each with its file and line.

Exit codes: 0 no errors or warnings (notes alone), 1 errors or warnings were
reported, 2 the repository or the configuration could not be read.";

/// `magos lint` arguments.
#[derive(Debug, Args)]
#[command(after_help = LINT_EXAMPLES)]
pub struct LintArgs {
    /// The GitOps repository: a local folder, or a git URL (read through
    /// Magos's clone, synced first)
    #[arg(long, value_name = "DIR|URL")]
    pub repo: String,

    /// Only this host's stacks under hosts/<NAME>/ (default: every host's)
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Only stack folders matching this glob (repeatable; `.` is the root)
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,

    /// Skip stack folders matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Serialize)]
struct Report {
    stacks: Vec<StackReport>,
    diagnostics: Vec<Diagnostic>,
    summary: Summary,
}

#[derive(Debug, Serialize)]
struct Summary {
    stacks: usize,
    services: usize,
    policies: usize,
    errors: usize,
    warnings: usize,
    notes: usize,
}

#[derive(Debug, Serialize)]
struct StackReport {
    dir: String,
    project: Option<String>,
    host: Option<String>,
    files: Vec<String>,
    unsupported: Vec<String>,
    services: Vec<ServiceReport>,
}

#[derive(Debug, Serialize)]
struct ServiceReport {
    name: String,
    image: Option<String>,
    normalized: Option<String>,
    repository: Option<String>,
    policy: Option<String>,
    file: Option<String>,
    line: Option<usize>,
    pinnable: bool,
    not_pinnable: Option<String>,
    unsupported: Vec<String>,
}

pub(super) fn run(args: &LintArgs, config_file: Option<&Path>, env: &Env) -> anyhow::Result<Exit> {
    let sel = Selection {
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        host: args.host.clone(),
    };
    // The host's trust boundary (`apply.allow`), from its configuration when
    // there is one: what `apply` would refuse, `lint` reports.
    let overrides = config::Overrides {
        repo: Some(args.repo.clone()),
        ..config::Overrides::default()
    };
    let config = config::load(config_file, env, &overrides)?.config;
    let dir = match Location::of(&config, env)? {
        Location::Folder(dir) => dir,
        Location::Remote(_) => Engine::new(&config, env)?.checkout()?,
    };
    let trust = repo::Trust::from_config(&config, env);
    // Every stack file read once, converted once: what is reported here is
    // what `plan` and `apply` report.
    let workspace = Workspace::read(&config, env, &dir, sel)?;
    let loaded = &workspace.stacks;
    let mut diagnostics = loaded.diagnostics.clone();
    let mut stacks = Vec::new();
    for stack in &loaded.stacks {
        diagnostics.extend(stack.loaded.diagnostics.iter().cloned());
        if stack.loaded.error.is_none() {
            diagnostics.extend(convert::coverage(&stack.loaded));
        }
        diagnostics.extend(repo::check_trust(
            &workspace.root,
            stack,
            &loaded.texts,
            &trust,
        ));
        let services = stack
            .loaded
            .services
            .iter()
            .map(|s| {
                let img = s.image.as_ref();
                let reference = img.and_then(|i| i.reference.as_ref());
                let policy = img.and_then(|i| i.policy.as_ref());
                ServiceReport {
                    name: s.name.clone(),
                    image: img.map(|i| i.value.clone()),
                    normalized: reference.map(|r| r.normalized()),
                    repository: match (policy, reference) {
                        (Some(p), Some(r)) => Some(p.repository(r)),
                        (None, Some(r)) => Some(r.repository_key()),
                        _ => None,
                    },
                    policy: policy.map(|p| p.to_string()),
                    file: img.and_then(|i| i.site.as_ref().map(|(f, _)| f.clone())),
                    line: img.and_then(|i| i.site.as_ref().map(|(_, site)| site.line)),
                    pinnable: img.is_some_and(|i| i.not_pinnable.is_none()),
                    not_pinnable: img.and_then(|i| i.not_pinnable.clone()),
                    unsupported: s
                        .service
                        .as_ref()
                        .map(|x| x.unsupported())
                        .unwrap_or_default(),
                }
            })
            .collect();
        stacks.push(StackReport {
            files: std::iter::once(stack.def.compose_file.clone())
                .chain(stack.def.override_file.clone())
                .collect(),
            dir: stack.def.dir.clone(),
            project: stack.project.clone(),
            host: stack.def.host.clone(),
            unsupported: stack.loaded.unsupported.clone(),
            services,
        });
    }
    // The conversion's diagnostics (a bad port, a bad volume, …), as `plan`
    // and `apply` report them.
    #[cfg(unix)]
    diagnostics.extend(workspace.repo.diagnostics.iter().cloned());
    crate::engine::workspace::sort(&mut diagnostics);
    let summary = Summary {
        stacks: stacks.len(),
        services: stacks.iter().map(|s| s.services.len()).sum(),
        policies: stacks
            .iter()
            .flat_map(|s| &s.services)
            .filter(|s| s.policy.is_some())
            .count(),
        errors: diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count(),
        warnings: diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count(),
        notes: diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Note)
            .count(),
    };
    let report = Report {
        stacks,
        diagnostics,
        summary,
    };
    let text = match args.output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        Output::Table => table(&report)?,
    };
    super::out(&text)?;
    Ok(if report.summary.errors + report.summary.warnings == 0 {
        Exit::Success
    } else {
        Exit::Found
    })
}

fn table(r: &Report) -> anyhow::Result<String> {
    let mut t = String::new();
    for s in &r.stacks {
        write!(
            t,
            "stack {} (project {})",
            s.dir,
            s.project.as_deref().unwrap_or("?")
        )?;
        if let Some(h) = &s.host {
            write!(t, " host {h}")?;
        }
        writeln!(t, ": {}", s.files.join(" + "))?;
        if !s.unsupported.is_empty() {
            writeln!(
                t,
                "  unsupported top-level keys: {}",
                s.unsupported.join(", ")
            )?;
        }
        for svc in &s.services {
            write!(
                t,
                "  {}: {}",
                svc.name,
                svc.image.as_deref().unwrap_or("(no image)")
            )?;
            if let Some(n) = &svc.normalized {
                write!(t, " ({n})")?;
            }
            match &svc.policy {
                Some(p) => write!(t, "; policy {p}")?,
                None => write!(t, "; no policy")?,
            }
            if let Some(why) = &svc.not_pinnable
                && svc.image.is_some()
            {
                write!(t, "; not pinnable: {why}")?;
            }
            if !svc.unsupported.is_empty() {
                write!(t, "; unsupported: {}", svc.unsupported.join(", "))?;
            }
            writeln!(t)?;
        }
    }
    if !r.diagnostics.is_empty() {
        writeln!(t, "diagnostics:")?;
        for d in &r.diagnostics {
            writeln!(t, "  {d}")?;
        }
    }
    let m = &r.summary;
    write!(
        t,
        "{} stacks, {} services, {} policies, {} errors, {} warnings",
        m.stacks, m.services, m.policies, m.errors, m.warnings
    )?;
    if m.notes > 0 {
        write!(t, ", {} notes", m.notes)?;
    }
    writeln!(t)?;
    Ok(t)
}
