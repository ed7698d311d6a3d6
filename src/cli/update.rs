//! `magos update`: pin every annotated service to its policy's choice and
//! write the pins back: as a diff (`--dry-run`), into a folder (`--no-commit`),
//! or as one commit on Magos's own clone, pushed to the branch or proposed as
//! pull requests (`repo.mode`).

use std::num::NonZeroU32;
use std::path::Path;
use std::time::SystemTime;

use super::Exit;
use super::check::Location;
use crate::config::{Config, Env, Overrides, PrGrouping, RepoMode};
use crate::core::stacks::Selection;
use crate::git::github::{self, GithubApp, PullRequest, RepoSlug};
use crate::git::{
    Checkout, Identity, ProposeOutcome, UpdateOptions, UpdateOutcome, message, write_files,
};
use crate::pin::{self, Pass};
use crate::registry::{Check, RegistryClient, Settings};

/// How many times an update syncs, recomputes and pushes while the remote
/// branch keeps moving under it.
pub const MAX_ATTEMPTS: u32 = 5;

/// The branch of the grouped pull request.
pub const GROUPED_BRANCH: &str = "magos/updates";

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
    let ctx = Ctx::new(config, env)?;
    let location = Location::of(config, env)?;
    if args.dry_run {
        let pass = ctx.pass_at(config, &location)?;
        report_problems(&pass);
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
        let pass = ctx.pass(dir)?;
        report_problems(&pass);
        write_files(dir, &pass.change(String::new()))?;
        let mut text = summary(&pass);
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
    let (checkout, app) = with_app_auth(config, checkout, &ctx.runtime)?;
    let options = UpdateOptions {
        identity: Identity::from_config(&config.repo.commit),
        push: !args.no_push,
        max_attempts: NonZeroU32::new(MAX_ATTEMPTS).unwrap_or(NonZeroU32::MIN),
    };
    let written = if config.repo.mode == RepoMode::PullRequest && !args.no_push {
        pull_requests(&ctx, config, &checkout, app.as_ref(), &options)?
    } else {
        direct(&ctx, config, &checkout, &options)?
    };
    super::out(&written.text)?;
    Ok(with_invalid(written.exit, written.invalid))
}

/// `exit`, or an error when the repository has `invalid` error diagnostics.
fn with_invalid(exit: Exit, invalid: usize) -> Exit {
    if invalid > 0 { Exit::Error } else { exit }
}

/// What a write-back did.
#[derive(Debug, Clone)]
pub struct WriteBack {
    /// What happened, one line per pin, push or pull request.
    pub text: String,
    /// Success, or an error when a service could not be checked or pinned.
    pub exit: Exit,
    /// Services pinned.
    pub updates: usize,
    /// Error diagnostics of the repository (an invalid annotation, a stack that
    /// cannot be loaded), logged: `magos update` exits 2 for them; the daemon
    /// reports a stack that cannot be loaded through its apply instead.
    pub invalid: usize,
}

/// The daemon's write-back: syncs Magos's clone, runs the pin pass and commits
/// and pushes the pins (or proposes them as pull requests, per `repo.mode`).
/// Blocking: run it off the async workers. The clone's work tree holds the
/// result afterwards.
pub fn write_back(config: &Config, env: &Env, checkout: Checkout) -> anyhow::Result<WriteBack> {
    let ctx = Ctx::new(config, env)?;
    let (checkout, app) = with_app_auth(config, checkout, &ctx.runtime)?;
    let options = UpdateOptions {
        identity: Identity::from_config(&config.repo.commit),
        push: true,
        max_attempts: NonZeroU32::new(MAX_ATTEMPTS).unwrap_or(NonZeroU32::MIN),
    };
    if config.repo.mode == RepoMode::PullRequest {
        pull_requests(&ctx, config, &checkout, app.as_ref(), &options)
    } else {
        direct(&ctx, config, &checkout, &options)
    }
}

/// The updates the policies allow in the checkout at `dir`: checked against the
/// registries, written nowhere (the daemon's `observe` mode).
pub fn available(config: &Config, env: &Env, dir: &Path) -> anyhow::Result<Vec<pin::Update>> {
    let ctx = Ctx::new(config, env)?;
    Ok(ctx.pass(dir)?.updates)
}

/// What every pass of one run shares: one registry check (so a recompute on
/// a new head asks the registries nothing new), the environment, the clock.
pub(super) struct Ctx<'a> {
    check: Check,
    env: &'a Env,
    runtime: tokio::runtime::Runtime,
    now: SystemTime,
}

impl<'a> Ctx<'a> {
    /// A registry client for `config`, on a runtime of its own, now.
    pub(super) fn new(config: &Config, env: &'a Env) -> anyhow::Result<Self> {
        let client = RegistryClient::new(
            Settings::load(&config.registries, env)?
                .with_verify(&config.verify)?
                .with_scan(&config.scan),
        );
        Ok(Self {
            check: client.check(),
            env,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            now: SystemTime::now(),
        })
    }

    /// A pin pass over the repository as it is now, writing nothing: a local
    /// folder as it is, a remote once Magos's clone is synced.
    pub(super) fn pass_at(&self, config: &Config, location: &Location) -> anyhow::Result<Pass> {
        let dir = match location {
            Location::Folder(dir) => dir.clone(),
            Location::Remote(checkout) => {
                let checkout = with_app_auth(config, checkout.clone(), &self.runtime)?.0;
                checkout.sync()?;
                checkout.workdir().to_owned()
            }
        };
        Ok(self.pass(&dir)?)
    }

    fn pass(&self, dir: &Path) -> Result<Pass, pin::PinError> {
        self.runtime.block_on(pin::pass(
            &self.check,
            dir,
            &Selection::default(),
            self.env,
            self.now,
        ))
    }
}

/// The clone with the GitHub App's installation token as its credentials,
/// when an App is configured under `github:`.
pub(super) fn with_app_auth(
    config: &Config,
    mut checkout: Checkout,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(Checkout, Option<GithubApp>)> {
    let url = checkout.remote().url().to_owned();
    let app = runtime.block_on(async { GithubApp::from_config(&config.github, &url) })?;
    if let Some(app) = &app {
        checkout.set_auth(runtime.block_on(app.git_auth())?);
    }
    Ok((checkout, app))
}

/// One commit with every pin, pushed to the followed branch (or kept locally
/// with `--no-push`).
fn direct(
    ctx: &Ctx<'_>,
    config: &Config,
    checkout: &Checkout,
    options: &UpdateOptions,
) -> anyhow::Result<WriteBack> {
    let mut last: Option<Pass> = None;
    let template = config.repo.commit.message.as_str();
    let outcome = checkout.update(options, |dir| {
        let pass = ctx.pass(dir)?;
        let change = (!pass.files.is_empty())
            .then(|| pass.change(message::render(template, &pass.changes())));
        last = Some(pass);
        Ok::<_, pin::PinError>(change)
    })?;
    let pass = last.expect("an update computes at least once");
    report_problems(&pass);
    let remote = checkout.remote();
    let mut text = String::new();
    match outcome {
        UpdateOutcome::Unchanged { head } => {
            text.push_str(&format!(
                "nothing to update: {} (branch {}) at {} already holds every pin\n",
                remote.url(),
                remote.branch(),
                short(&head)
            ));
        }
        UpdateOutcome::Pushed { commit, attempts } => {
            text.push_str(&summary(&pass));
            text.push_str(&format!(
                "pushed {} to {} (branch {}){}\n",
                short(&commit),
                remote.url(),
                remote.branch(),
                if attempts > 1 {
                    format!(
                        ", recomputed {} time(s) because the branch moved",
                        attempts - 1
                    )
                } else {
                    String::new()
                }
            ));
        }
        UpdateOutcome::Committed { commit, kept } => {
            text.push_str(&summary(&pass));
            text.push_str(&format!(
                "committed {} without pushing; it is kept on local branch {kept} in {}\n",
                short(&commit),
                checkout.workdir().display()
            ));
        }
    }
    Ok(WriteBack {
        text,
        exit: exit(&pass),
        updates: pass.updates.len(),
        invalid: pass.invalid(),
    })
}

/// Pull-request mode: the pins go to `magos/…` branches, each proposed as a
/// pull request into the followed branch.
fn pull_requests(
    ctx: &Ctx<'_>,
    config: &Config,
    checkout: &Checkout,
    app: Option<&GithubApp>,
    options: &UpdateOptions,
) -> anyhow::Result<WriteBack> {
    let remote = checkout.remote().clone();
    let slug = RepoSlug::from_url(remote.url())?;
    let api = ctx.runtime.block_on(api_client(config, app))?;
    checkout.sync()?;
    let first = ctx.pass(checkout.workdir())?;
    report_problems(&first);
    let template = config.repo.commit.message.as_str();
    let mut proposals: Vec<Proposal> = Vec::new();
    match config.repo.pr_grouping {
        PrGrouping::PerService => {
            for u in &first.updates {
                proposals.push((
                    github::pull_request_branch(&u.stack, &u.service, &u.tag),
                    vec![(u.stack.clone(), u.service.clone())],
                    format!("Pin {}/{} to {}", u.stack, u.service, u.tag),
                    Some(github::pull_request_prefix(&u.stack, &u.service)),
                ));
            }
        }
        PrGrouping::Grouped if !first.updates.is_empty() => {
            let all = first
                .updates
                .iter()
                .map(|u| (u.stack.clone(), u.service.clone()))
                .collect();
            let title = message::render(template, &first.changes())
                .lines()
                .next()
                .unwrap_or("Pin image updates")
                .to_owned();
            proposals.push((GROUPED_BRANCH.to_owned(), all, title, None));
        }
        PrGrouping::Grouped => {}
    }
    let mut text = String::new();
    if proposals.is_empty() {
        text.push_str(&format!(
            "nothing to update: {} (branch {}) already holds every pin\n",
            remote.url(),
            remote.branch()
        ));
    }
    let mut failed = false;
    for (branch, services, title, prefix) in proposals {
        let mut body = String::new();
        let outcome = checkout.propose(options, &branch, |dir| {
            let pass = ctx
                .pass(dir)?
                .only(|u| services.contains(&(u.stack.clone(), u.service.clone())));
            body = message::render(template, &pass.changes());
            let change = (!pass.files.is_empty()).then(|| pass.change(body.clone()));
            Ok::<_, pin::PinError>(change)
        });
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(branch, "{:#}", anyhow::Error::from(e));
                failed = true;
                continue;
            }
        };
        match &outcome {
            ProposeOutcome::Unchanged { .. } => continue,
            ProposeOutcome::UpToDate { commit, .. } => text.push_str(&format!(
                "branch {branch} already holds the update ({})\n",
                short(commit)
            )),
            ProposeOutcome::Pushed { commit, .. } => text.push_str(&format!(
                "pushed {} to branch {branch} of {}\n",
                short(commit),
                remote.url()
            )),
        }
        let asked = ctx.runtime.block_on(async {
            let pr =
                github::ensure_pull_request(&api, &slug, &branch, remote.branch(), &title, &body)
                    .await?;
            let closed = match &prefix {
                Some(prefix) => github::close_superseded(&api, &slug, prefix, &branch).await?,
                None => Vec::new(),
            };
            Ok::<_, github::GithubError>((pr, closed))
        });
        match asked {
            Ok((pr, closed)) => {
                text.push_str(&match pr {
                    PullRequest::Opened(n) => format!("opened pull request #{n}: {title}\n"),
                    PullRequest::Updated(n) => format!("updated pull request #{n}: {title}\n"),
                });
                for n in closed {
                    text.push_str(&format!("closed superseded pull request #{n}\n"));
                }
            }
            Err(e) => {
                tracing::error!(branch, "{:#}", anyhow::Error::from(e));
                failed = true;
            }
        }
    }
    Ok(WriteBack {
        text,
        exit: if failed { Exit::Error } else { exit(&first) },
        updates: first.updates.len(),
        invalid: first.invalid(),
    })
}

/// One pull request to propose: its branch, the `(stack, service)` pairs it
/// pins, its title, and the branch prefix of the requests it supersedes.
type Proposal = (String, Vec<(String, String)>, String, Option<String>);

/// The API client of pull-request mode: the App's installation, else the
/// token given in `repo.url`.
async fn api_client(
    config: &Config,
    app: Option<&GithubApp>,
) -> anyhow::Result<octocrab::Octocrab> {
    if let Some(app) = app {
        return Ok(app.client().await?);
    }
    let url = config.repo.url.as_ref().map(|u| u.expose()).unwrap_or("");
    let (_, creds) = crate::git::url::split_credentials(url);
    let Some(creds) = creds else {
        anyhow::bail!(
            "pull-request mode needs GitHub API access: configure the GitHub App (github.app_id, github.private_key) or put a token in repo.url"
        );
    };
    Ok(octocrab::Octocrab::builder()
        .base_uri(config.github.api_url.as_str())?
        .personal_token(creds.password.expose().to_owned())
        .build()?)
}

/// Logs the repository's error diagnostics (an invalid annotation, a stack that
/// cannot be loaded), each with its file, line and column.
pub(super) fn report_diagnostics(pass: &Pass) {
    for d in pass
        .diagnostics
        .iter()
        .filter(|d| d.severity == crate::core::diag::Severity::Error)
    {
        tracing::error!("{d}");
    }
}

/// Logs every service that could not be checked or pinned, and the
/// repository's error diagnostics.
fn report_problems(pass: &Pass) {
    report_diagnostics(pass);
    for row in &pass.rows {
        if let Some(e) = &row.error {
            tracing::error!(
                stack = row.stack,
                service = row.service,
                "cannot check {}/{}: {e}",
                row.stack,
                row.service
            );
        }
    }
    for r in &pass.refused {
        tracing::error!("cannot pin {r}");
    }
}

/// One line per pinned service.
fn summary(pass: &Pass) -> String {
    pass.updates
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
