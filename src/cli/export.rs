//! `magos export quadlet`: the repository's stacks written as Quadlet units.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use super::Exit;
use crate::config::{Env, Overrides};
use crate::core::quadlet::Scope;
use crate::engine::Engine;
use crate::engine::export::Outcome;

const QUADLET_EXAMPLES: &str = "Examples:
  magos export quadlet --repo ~/gitops --out ./units
  magos export quadlet --repo . --stack media --out ~/.config/containers/systemd/magos
  systemctl --user daemon-reload && systemctl --user start media-app.service

Each stack's units go to OUT/<project>/: <project>-<service>.container per
container, <project>-<net>.network and <project>-<vol>.volume per network and
volume the stack creates, <project>-<service>.build per service with build:. A unit file of an earlier export (it starts with
\"# Made by Magos\") that the stack no longer makes is removed; other files are
left alone. A compose setting a unit cannot carry is an error naming its file,
line and key; the other stacks are still written. docs/quadlet.md has the
key mapping.

Exit codes: 0 every stack written, 2 a stack could not be exported (the others
were written).";

/// `magos export` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write the stacks as Quadlet units (.container, .network, .volume, .build)
    ///
    /// Reads the stacks as `magos plan` does (profiles, hosts/<NAME>/, the
    /// trust boundary apply.allow) and writes, per stack, the units Podman's
    /// systemd generator turns into services: the containers keep the names
    /// and labels Magos gives them through the API, so `magos drift` reads them
    /// the same. depends_on becomes Requires=/After= (service_healthy:
    /// Notify=healthy on the dependency), restart: the unit's Restart=.
    Quadlet(QuadletArgs),
}

/// Which systemd manager the units are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// A user's manager (rootless): WantedBy=default.target
    User,
    /// The system manager (root): WantedBy=multi-user.target
    System,
}

/// `magos export quadlet` arguments.
#[derive(Debug, Args)]
#[command(after_help = QUADLET_EXAMPLES)]
pub struct QuadletArgs {
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

    /// The folder the units are written to, one sub-folder per stack
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Which systemd manager runs the units [default: system when run as
    /// root, else user]
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
}

pub(super) fn run(
    cmd: &ExportCommand,
    file: Option<&Path>,
    env: &Env,
    overrides: &Overrides,
    verbosity: i8,
) -> anyhow::Result<Exit> {
    let ExportCommand::Quadlet(args) = cmd;
    let overrides = Overrides {
        repo: Some(args.repo.clone().unwrap_or_else(|| ".".to_owned())),
        ..overrides.clone()
    };
    let loaded = super::load_config(file, env, &overrides, verbosity)?;
    let engine = Engine::new(&loaded.config, env)?;
    let dir = engine.checkout()?;
    let mut options = engine.repo_options(args.host.clone().or_else(crate::apply::repo::this_host));
    options.stack = args.stack.clone();
    let scope = match args.scope {
        Some(ScopeArg::User) => Scope::User,
        Some(ScopeArg::System) => Scope::System,
        None if is_root() => Scope::System,
        None => Scope::User,
    };
    let export = engine.export_quadlet(&dir, &options, scope)?;
    let mut text = String::new();
    for d in &export.warnings {
        let _ = writeln!(text, "{d}");
    }
    let mut failed = export.failed();
    for (folder, reason) in &export.unnamed {
        let _ = writeln!(text, "{folder}: not exported: {reason}");
    }
    for stack in &export.stacks {
        match &stack.outcome {
            Outcome::Observed => {
                let _ = writeln!(
                    text,
                    "{}: not exported: the stack is observed only (x-magos: {{observe: true}})",
                    stack.project
                );
            }
            Outcome::Failed { reason, errors } => {
                let _ = writeln!(text, "{}: not exported: {reason}", stack.project);
                for e in errors {
                    let _ = writeln!(text, "  {e}");
                }
            }
            Outcome::Units(units) => {
                let folder = args.out.join(&stack.project);
                match write_stack(&folder, units) {
                    Ok(lines) => {
                        for l in lines {
                            let _ = writeln!(text, "{l}");
                        }
                    }
                    Err(e) => {
                        failed = true;
                        let _ = writeln!(text, "{}: not written: {e:#}", stack.project);
                    }
                }
            }
        }
    }
    super::out(&text)?;
    Ok(if failed { Exit::Error } else { Exit::Success })
}

/// The first line of every unit Magos makes: what may be removed when the
/// stack no longer makes it.
const MARK: &str = "# Made by Magos";

/// Writes a stack's units into `folder` (each atomically; an unchanged file
/// is not rewritten) and removes the units of an earlier export the stack no
/// longer makes. Returns one line per file: `wrote`, `unchanged`, `removed`.
fn write_stack(
    folder: &Path,
    units: &[crate::core::quadlet::UnitFile],
) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let wanted: BTreeSet<&str> = units.iter().map(|u| u.name.as_str()).collect();
    for u in units {
        let path = folder.join(&u.name);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == u.contents) {
            lines.push(format!("unchanged {}", path.display()));
            continue;
        }
        crate::config::render::write_file(&path, &u.contents, false, true)?;
        lines.push(format!("wrote {}", path.display()));
    }
    if let Ok(entries) = std::fs::read_dir(folder) {
        let mut stale = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let unit = [".container", ".network", ".volume"]
                .iter()
                .any(|s| name.ends_with(s));
            if unit
                && !wanted.contains(name.as_str())
                && std::fs::read_to_string(entry.path()).is_ok_and(|t| t.starts_with(MARK))
            {
                stale.push(entry.path());
            }
        }
        stale.sort();
        for path in stale {
            std::fs::remove_file(&path)
                .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", path.display()))?;
            lines.push(format!("removed {}", path.display()));
        }
    }
    Ok(lines)
}

/// Whether Magos runs as root (the owner of `/proc/self`).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
