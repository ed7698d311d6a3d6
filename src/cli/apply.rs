//! `magos plan`, `magos apply` and `magos drift`: a repository's stacks against
//! what Podman runs.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use clap::Args;

use super::Exit;
use super::policy::Output;
use crate::apply::repo::{ApplyReport, DriftReport, PlanReport, RepoOptions};
use crate::config::{Env, Overrides};
use crate::core::drift::DriftState;
use crate::engine::Engine;

const PLAN_EXAMPLES: &str = "Examples:
  magos plan --repo ~/gitops
  magos plan --repo . --output json

Exit codes: 0 nothing to do, 1 there is something to do, 2 error.";

const APPLY_EXAMPLES: &str = "Examples:
  magos apply --repo ~/gitops
  magos apply --repo . --stack media --no-prune

Stacks that use compose keys Magos does not apply natively (build, deploy, …),
or that say `x-magos: {apply: compose}`, are applied with podman-compose (with
runtime docker: docker compose).
Exit codes: 0 applied, 2 a stack failed (the others were still applied).";

const DRIFT_EXAMPLES: &str = "Examples:
  magos drift --repo ~/gitops
  magos drift --repo . --output json

States: in_sync, missing, stopped, image_drift, config_drift, unpinned, orphan.
Exit codes: 0 in sync, 1 drift, 2 error.";

/// Arguments shared by the three commands.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// The GitOps repository: a local folder, or a git URL (read through
    /// Magos's clone, synced first) [default: .]
    #[arg(long, value_name = "DIR|URL")]
    pub repo: Option<String>,

    /// This host's name, for stacks under hosts/<NAME>/ [default: the hostname]
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Only this stack (its project name or folder)
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
}

/// `magos plan` arguments.
#[derive(Debug, Args)]
#[command(after_help = PLAN_EXAMPLES)]
pub struct PlanArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Do not plan the removal of orphans
    #[arg(long)]
    no_prune: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// `magos apply` arguments.
#[derive(Debug, Args)]
#[command(after_help = APPLY_EXAMPLES)]
pub struct ApplyArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Do not remove orphans (overrides apply.prune)
    #[arg(long)]
    no_prune: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// `magos drift` arguments.
#[derive(Debug, Args)]
#[command(after_help = DRIFT_EXAMPLES)]
pub struct DriftArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// Which of the three.
#[derive(Debug)]
pub enum Which<'a> {
    /// `plan`.
    Plan(&'a PlanArgs),
    /// `apply`.
    Apply(&'a ApplyArgs),
    /// `drift`.
    Drift(&'a DriftArgs),
}

fn options(engine: &Engine, args: &RepoArgs, no_prune: bool) -> RepoOptions {
    let mut o = engine.repo_options(args.host.clone().or_else(crate::apply::repo::this_host));
    o.prune &= !no_prune;
    o.stack = args.stack.clone();
    if crate::logging::stderr_is_terminal() {
        o.pull_display = crate::apply::PullDisplay::Terminal;
    }
    o
}

/// Runs one of the commands.
pub(super) fn run(
    which: Which<'_>,
    file: Option<&Path>,
    env: &Env,
    overrides: &Overrides,
    verbosity: i8,
) -> anyhow::Result<Exit> {
    let args = match &which {
        Which::Plan(a) => &a.repo,
        Which::Apply(a) => &a.repo,
        Which::Drift(a) => &a.repo,
    };
    // The repository is --repo, else the current folder (never repo.url).
    let overrides = Overrides {
        repo: Some(args.repo.clone().unwrap_or_else(|| ".".to_owned())),
        ..overrides.clone()
    };
    let loaded = super::load_config(file, env, &overrides, verbosity)?;
    let config = &loaded.config;
    let color = std::io::stdout().is_terminal() && env.get("NO_COLOR").is_none_or(|v| v.is_empty());
    let engine = Engine::new(config, env)?;
    // The socket must exist; its version is not asked here (`/version` costs
    // the server most of a second, more than a whole no-op apply).
    let (socket, engine_name) = if engine.is_docker() {
        (engine.docker()?.socket().to_owned(), "Docker")
    } else {
        (engine.podman()?.socket().to_owned(), "Podman")
    };
    let dir = engine.checkout()?;
    match which {
        Which::Plan(a) => {
            let o = options(&engine, &a.repo, a.no_prune);
            let report = engine.plan(&dir, &o)?;
            let text = match a.output {
                Output::Json => serde_json::to_string_pretty(&report)? + "\n",
                Output::Table => plan_table(&report, engine.is_docker()),
            };
            super::out(&text)?;
            Ok(if !report.errors.is_empty() {
                Exit::Error
            } else if report.is_empty() {
                Exit::Success
            } else {
                Exit::Found
            })
        }
        Which::Apply(a) => {
            let _lock = super::lock_instance(config, env, &socket, engine_name, false)?;
            if !engine.is_docker() {
                engine.write_signature_policy()?;
            }
            let o = options(&engine, &a.repo, a.no_prune);
            let report = engine.apply(
                &dir,
                &o,
                &crate::apply::Progress::none(),
                &crate::apply::Stop::never(),
            )?;
            let text = match a.output {
                Output::Json => serde_json::to_string_pretty(&report)? + "\n",
                Output::Table => apply_table(&report, color),
            };
            super::out(&text)?;
            Ok(if report.failed() {
                Exit::Error
            } else {
                Exit::Success
            })
        }
        Which::Drift(a) => {
            let o = options(&engine, &a.repo, false);
            let report = engine.drift(&dir, &o)?;
            let text = match a.output {
                Output::Json => drift_json(&report)?,
                Output::Table => drift_table(&report, color),
            };
            super::out(&text)?;
            Ok(if !report.errors.is_empty() {
                Exit::Error
            } else if report.drifted() {
                Exit::Found
            } else {
                Exit::Success
            })
        }
    }
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn plan_table(r: &PlanReport, docker: bool) -> String {
    let mut s = String::new();
    for d in &r.diagnostics {
        let _ = writeln!(s, "{d}");
    }
    for st in &r.stacks {
        if let Some(e) = &st.error {
            let _ = writeln!(s, "{}: cannot plan: {e}", st.project);
        } else if st.actions.is_empty() {
            let _ = writeln!(s, "{}: up to date", st.project);
        } else {
            let _ = writeln!(s, "{}:", st.project);
            for a in &st.actions {
                let _ = writeln!(s, "  {a}");
            }
        }
    }
    for c in &r.compose_cli {
        let why = if c.keys.is_empty() {
            "the stack asks for it".to_owned()
        } else {
            format!("uses {}", c.keys.join(", "))
        };
        let cli = if docker {
            "docker compose"
        } else {
            "podman-compose"
        };
        let _ = writeln!(s, "{}: {cli} up -d ({why})", c.stack);
    }
    for u in &r.units {
        let _ = writeln!(s, "{} (quadlet units):", u.stack);
        for step in u.steps() {
            let _ = writeln!(s, "  {step}");
        }
    }
    for p in &r.prune {
        let _ = writeln!(s, "remove {} ({})", p.name, p.reason);
    }
    for e in &r.errors {
        let _ = writeln!(s, "{}: error: {}", e.stack, e.error);
    }
    for o in &r.observed {
        let _ = writeln!(s, "{o}: observed (x-magos: {{observe: true}}), not applied");
    }
    if r.is_empty() {
        s.push_str("nothing to do\n");
    }
    s
}

fn apply_table(r: &ApplyReport, color: bool) -> String {
    let mut s = String::new();
    for d in &r.diagnostics {
        let _ = writeln!(s, "{d}");
    }
    for st in &r.stacks {
        match &st.error {
            Some(e) => {
                let _ = writeln!(s, "{} {}: {e}", paint("FAILED", "31", color), st.stack);
            }
            None if st.done.is_empty() => {
                let _ = writeln!(s, "{} {}: up to date", paint("ok", "32", color), st.stack);
            }
            None => {
                let _ = writeln!(
                    s,
                    "{} {} ({}):",
                    paint("applied", "33", color),
                    st.stack,
                    st.route
                );
                for d in &st.done {
                    let _ = writeln!(s, "  {d}");
                }
            }
        }
    }
    for p in &r.pruned {
        let name = &p.container;
        match &p.error {
            None => {
                let _ = writeln!(s, "{} {name}", paint("removed", "33", color));
            }
            Some(e) => {
                let _ = writeln!(s, "{} {name}: {e}", paint("FAILED", "31", color));
            }
        }
    }
    for o in &r.observed {
        let _ = writeln!(s, "{} {o}: not applied", paint("observed", "36", color));
    }
    s
}

fn drift_json(r: &DriftReport) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(&r.entries)? + "\n")
}

fn drift_table(r: &DriftReport, color: bool) -> String {
    let rows: Vec<[String; 6]> = r
        .entries
        .iter()
        .map(|e| {
            [
                e.stack.clone(),
                e.service.clone().unwrap_or_else(|| "-".to_owned()),
                e.state.to_string(),
                e.container.clone().unwrap_or_else(|| "-".to_owned()),
                short(e.expected.as_deref()),
                short(e.actual.as_deref()),
            ]
        })
        .collect();
    let head = [
        "STACK",
        "SERVICE",
        "STATE",
        "CONTAINER",
        "EXPECTED",
        "ACTUAL",
    ];
    let mut w = head.map(str::len);
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    let line = |cells: &[String; 6], state_code: Option<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            let cell = match (i, state_code) {
                (2, Some(code)) => paint(c, code, color),
                _ => c.clone(),
            };
            if i + 1 == cells.len() {
                l.push_str(&cell);
            } else {
                l.push_str(&cell);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    s.push_str(&line(&head.map(str::to_owned), None));
    for (row, e) in rows.iter().zip(&r.entries) {
        let code = match e.state {
            DriftState::InSync => "32",
            DriftState::Unpinned => "33",
            _ => "31",
        };
        s.push_str(&line(row, Some(code)));
    }
    for e in &r.errors {
        let _ = writeln!(s, "{}: error: {}", e.stack, e.error);
    }
    let drifted = r
        .entries
        .iter()
        .filter(|e| e.state.is_drift() && !e.state.is_ailing())
        .count();
    let ailing = r.entries.iter().filter(|e| e.state.is_ailing()).count();
    let _ = write!(s, "{} service(s), {drifted} drifted", r.entries.len());
    if ailing > 0 {
        let _ = write!(s, ", {ailing} unhealthy or restarting");
    }
    s.push('\n');
    s
}

/// Digests shortened to 12 hex digits for the table.
fn short(v: Option<&str>) -> String {
    match v {
        None => "-".to_owned(),
        Some(d) if d.starts_with("sha256:") && d.len() > 19 => d[..19].to_owned(),
        Some(d) => d.to_owned(),
    }
}
