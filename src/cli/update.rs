//! `magos update`: pin every annotated service to its policy's choice and
//! write the pins back: as a diff (`--dry-run`), into a folder (`--no-commit`),
//! or as one commit on Magos's own clone, pushed to the branch or proposed as
//! pull requests (`repo.mode`).

use std::path::Path;

use super::Exit;
use crate::config::{Env, Overrides};
use crate::engine::pin::{Problem, WriteBack, Written};
use crate::engine::{Engine, Location};
use crate::git::github::PullRequest;
use crate::git::write_files;
use crate::pin::Pass;

pub use crate::engine::pin::{GROUPED_BRANCH, MAX_ATTEMPTS};

const UPDATE_EXAMPLES: &str = "Examples:
  magos update --dry-run                  # show the diff, write nothing
  magos update --repo ~/gitops --no-commit  # rewrite the files of a folder
  magos update                            # commit on Magos's clone of repo.url, push
  magos update --no-push                  # commit, keep it on a local branch

Without --dry-run or --no-commit the update is made on Magos's own clone of
repo.url (in state_dir), as one commit listing every service, and pushed; a push
rejected because the branch moved is recomputed on the new head (never forced).
With repo.mode: pull_request the commits go to magos/... branches and GitHub pull
requests are opened or updated instead.

Exit codes: 0 done (or nothing to update), 2 an error (services that could not be
checked or pinned are reported; the others are still updated; an invalid
annotation or a stack that cannot be loaded is logged with its file and line).";

/// `magos update` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = UPDATE_EXAMPLES)]
pub struct UpdateArgs {
    /// The GitOps repository: a local folder, or a git URL [default: repo.url]
    #[arg(long, value_name = "DIR|URL")]
    pub repo: Option<String>,
    /// Print the unified diff of the pins and write nothing
    #[arg(long, conflicts_with_all = ["no_commit", "no_push"])]
    pub dry_run: bool,
    /// Rewrite the files of the local folder in place; no git
    #[arg(long, conflicts_with = "no_push")]
    pub no_commit: bool,
    /// Commit on Magos's clone but do not push (the commit is kept on a local
    /// branch `magos/unpushed-…`)
    #[arg(long)]
    pub no_push: bool,
}

/// Runs `magos update`.
pub fn run(
    args: &UpdateArgs,
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
    let config = &loaded.config;
    let engine = Engine::new(config, env)?;
    let location = engine.location()?;
    if args.dry_run {
        let pass = engine.pass_at(&location)?;
        log_problems(&Problem::of(&pass));
        super::out(&pass.diff())?;
        return Ok(with_invalid(exit(&pass), pass.invalid()));
    }
    if args.no_commit {
        let Location::Folder(dir) = &location else {
            anyhow::bail!(
                "--no-commit rewrites a local folder, and {} is not one; pass --repo DIR",
                config
                    .repo
                    .url
                    .as_ref()
                    .map(|u| u.to_string())
                    .unwrap_or_default()
            );
        };
        let pass = engine.pass(dir)?;
        log_problems(&Problem::of(&pass));
        write_files(dir, &pass.change(String::new()))?;
        let mut text = summary(&pass.updates);
        for f in &pass.files {
            text.push_str(&format!("wrote {}\n", dir.join(&f.path).display()));
        }
        super::out(&text)?;
        return Ok(with_invalid(exit(&pass), pass.invalid()));
    }
    let Location::Remote(checkout) = location else {
        anyhow::bail!(
            "{} is a local folder: `magos update` commits on Magos's own clone of a git remote. \
             Use --no-commit to rewrite the folder in place, --dry-run to see the diff, or set \
             repo.url to the remote (e.g. the folder's bare repository or its https URL)",
            config
                .repo
                .url
                .as_ref()
                .map(|u| u.to_string())
                .unwrap_or_default()
        );
    };
    let written = engine.write_back(checkout, !args.no_push)?;
    log_problems(&written.problems);
    super::out(&render(&written))?;
    let exit = if written.failed() {
        Exit::Error
    } else {
        Exit::Success
    };
    Ok(with_invalid(exit, written.invalid()))
}

/// `exit`, or an error when the repository has `invalid` error diagnostics.
fn with_invalid(exit: Exit, invalid: usize) -> Exit {
    if invalid > 0 { Exit::Error } else { exit }
}

/// Logs what a pin pass could not do: a service that could not be checked or
/// pinned, an error diagnostic of the repository (with its file and line), a
/// pull request that could not be proposed.
pub(super) fn log_problems(problems: &[Problem]) {
    for p in problems {
        match p {
            Problem::Unchecked { stack, service, .. } => {
                tracing::error!(stack, service, "{p}");
            }
            Problem::Proposal { branch, error } => tracing::error!(branch, "{error}"),
            _ => tracing::error!("{p}"),
        }
    }
}

/// What a write-back did, one line per pin, push or pull request.
pub fn render(w: &WriteBack) -> String {
    let mut text = String::new();
    match &w.written {
        Written::Unchanged { head } => {
            text.push_str(&format!(
                "nothing to update: {} (branch {}) at {} already holds every pin\n",
                w.url,
                w.branch,
                short(head)
            ));
        }
        Written::Pushed { commit, attempts } => {
            text.push_str(&summary(&w.pinned));
            text.push_str(&format!(
                "pushed {} to {} (branch {}){}\n",
                short(commit),
                w.url,
                w.branch,
                if *attempts > 1 {
                    format!(
                        ", recomputed {} time(s) because the branch moved",
                        attempts - 1
                    )
                } else {
                    String::new()
                }
            ));
        }
        Written::Committed { commit, kept } => {
            text.push_str(&summary(&w.pinned));
            text.push_str(&format!(
                "committed {} without pushing; it is kept on local branch {kept} in {}\n",
                short(commit),
                w.workdir.display()
            ));
        }
        Written::Proposed(proposed) => {
            if w.pinned.is_empty() {
                text.push_str(&format!(
                    "nothing to update: {} (branch {}) already holds every pin\n",
                    w.url, w.branch
                ));
            }
            for p in proposed {
                let branch = &p.branch;
                if p.pushed {
                    text.push_str(&format!(
                        "pushed {} to branch {branch} of {}\n",
                        short(&p.commit),
                        w.url
                    ));
                } else {
                    text.push_str(&format!(
                        "branch {branch} already holds the update ({})\n",
                        short(&p.commit)
                    ));
                }
                match p.pull_request {
                    Some(PullRequest::Opened(n)) => {
                        text.push_str(&format!("opened pull request #{n}: {}\n", p.title));
                    }
                    Some(PullRequest::Updated(n)) => {
                        text.push_str(&format!("updated pull request #{n}: {}\n", p.title));
                    }
                    None => {}
                }
                for n in &p.closed {
                    text.push_str(&format!("closed superseded pull request #{n}\n"));
                }
            }
        }
    }
    text
}

/// One line per pinned service.
fn summary(updates: &[crate::pin::Update]) -> String {
    updates
        .iter()
        .map(|u| format!("pinned {}/{}: {} -> {}\n", u.stack, u.service, u.old, u.new))
        .collect()
}

fn exit(pass: &Pass) -> Exit {
    if pass.has_errors() {
        Exit::Error
    } else {
        Exit::Success
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
