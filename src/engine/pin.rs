//! The pin pass and its write-back: every annotated service pinned to its
//! policy's choice, checked against the registries, and the pins committed and
//! pushed to the followed branch or proposed as pull requests (`repo.mode`).
//! The results are typed; the front ends render them.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::{PrGrouping, RepoMode};
use crate::core::diag::{Diagnostic, Severity};
use crate::core::event::{Event, EventKind};
use crate::core::stacks::Selection;
use crate::git::github::{self, GithubApp, PullRequest, RepoSlug};
use crate::git::{Checkout, Identity, ProposeOutcome, UpdateOptions, UpdateOutcome, message};
use crate::pin::{self, Pass};
use crate::registry::Check;

use super::{Engine, Location};

/// How many times an update syncs, recomputes and pushes while the remote
/// branch keeps moving under it.
pub const MAX_ATTEMPTS: u32 = 5;

/// The branch of the grouped pull request.
pub const GROUPED_BRANCH: &str = "magos/updates";

/// What a write-back did with the pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The branch already held every pin.
    Unchanged {
        /// The remote head the pass saw.
        head: String,
    },
    /// One commit with every pin, pushed to the followed branch.
    Pushed {
        /// The commit now at the branch's head.
        commit: String,
        /// The attempt that succeeded (1 = the branch did not move meanwhile).
        attempts: u32,
    },
    /// One commit, not pushed: kept on a local branch.
    Committed {
        /// The commit.
        commit: String,
        /// The local branch holding it.
        kept: String,
    },
    /// Pull-request mode: the pins proposed on `magos/…` branches.
    Proposed(Vec<Proposed>),
}

/// One pull request of pull-request mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposed {
    /// Its branch.
    pub branch: String,
    /// Its title.
    pub title: String,
    /// The branch's head.
    pub commit: String,
    /// Whether the branch was pushed (`false`: it already held the change).
    pub pushed: bool,
    /// The pull request opened or updated (`None`: the API call failed, see
    /// the problems).
    pub pull_request: Option<PullRequest>,
    /// Superseded pull requests closed.
    pub closed: Vec<u64>,
    /// The services it pins, `(stack, service)`.
    pub services: Vec<(String, String)>,
}

/// Something a pin pass could not do; the rest is still done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A service could not be checked against its registry.
    Unchecked {
        /// Its stack.
        stack: String,
        /// The service.
        service: String,
        /// Why.
        error: pin::CheckError,
    },
    /// An update was chosen but cannot be written (`stack/service: why`).
    Refused(String),
    /// An error diagnostic of the repository (an invalid annotation, a stack
    /// that cannot be loaded), with its file and line.
    Invalid(Diagnostic),
    /// A pull request could not be proposed.
    Proposal {
        /// Its branch.
        branch: String,
        /// Why.
        error: String,
    },
}

impl Problem {
    /// The problems of a pass.
    pub fn of(pass: &Pass) -> Vec<Problem> {
        let mut out: Vec<Problem> = pass
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .cloned()
            .map(Problem::Invalid)
            .collect();
        for row in &pass.rows {
            if let Some(e) = &row.error {
                out.push(Problem::Unchecked {
                    stack: row.stack.clone(),
                    service: row.service.clone(),
                    error: e.clone(),
                });
            }
        }
        out.extend(pass.refused.iter().cloned().map(Problem::Refused));
        out
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unchecked {
                stack,
                service,
                error,
            } => write!(f, "cannot check {stack}/{service}: {error}"),
            Problem::Refused(r) => write!(f, "cannot pin {r}"),
            Problem::Invalid(d) => write!(f, "{d}"),
            Problem::Proposal { branch, error } => {
                write!(f, "cannot propose branch {branch}: {error}")
            }
        }
    }
}

/// What a write-back did.
#[derive(Debug, Clone)]
pub struct WriteBack {
    /// The remote's URL (without credentials).
    pub url: String,
    /// The followed branch.
    pub branch: String,
    /// Magos's clone, whose work tree holds the result.
    pub workdir: PathBuf,
    /// What was written.
    pub written: Written,
    /// The services pinned (or proposed).
    pub pinned: Vec<pin::Update>,
    /// What could not be done.
    pub problems: Vec<Problem>,
    /// The work tree's stack files as the pin pass read them and wrote its pins
    /// into, by path relative to the repository, when the work tree is known to
    /// hold exactly that (nothing to write, or the pins pushed): the daemon's
    /// apply reads the stacks from them instead of from disk again
    /// (`apply::repo::prepare_known`). Empty otherwise.
    pub texts: crate::repo::Texts,
}

impl WriteBack {
    /// Whether a service could not be checked or pinned, or a pull request
    /// could not be proposed (the repository's own diagnostics aside).
    pub fn failed(&self) -> bool {
        self.problems
            .iter()
            .any(|p| !matches!(p, Problem::Invalid(_)))
    }

    /// How many error diagnostics the repository has.
    pub fn invalid(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| matches!(p, Problem::Invalid(_)))
            .count()
    }
}

impl Engine {
    /// A pin pass over the checkout at `dir`, writing nothing.
    fn pin_pass(&self, check: &Check, dir: &Path, now: SystemTime) -> Result<Pass, pin::PinError> {
        let rejected = self.rejected();
        self.block_on(pin::pass_with(
            check,
            dir,
            &Selection::default(),
            &self.env,
            now,
            &rejected,
        ))
    }

    /// A pin pass over the folder `dir` as it is, writing nothing.
    pub fn pass(&self, dir: &Path) -> anyhow::Result<Pass> {
        let check = self.registry()?.check();
        Ok(self.pin_pass(&check, dir, SystemTime::now())?)
    }

    /// A pin pass over the repository as it is now, writing nothing: a local
    /// folder as it is, a remote once Magos's clone is synced.
    pub fn pass_at(&self, location: &Location) -> anyhow::Result<Pass> {
        let dir = match location {
            Location::Folder(dir) => dir.clone(),
            Location::Remote(checkout) => {
                let checkout = self.authed(checkout.clone())?.0;
                checkout.sync()?;
                checkout.workdir().to_owned()
            }
        };
        self.pass(&dir)
    }

    /// The updates the policies allow in the checkout at `dir`: checked
    /// against the registries, written nowhere (the daemon's `observe` mode).
    pub fn available(&self, dir: &Path) -> anyhow::Result<Vec<pin::Update>> {
        Ok(self.pass(dir)?.updates)
    }

    /// Syncs Magos's clone, runs the pin pass and commits the pins: pushed
    /// (`push`) or kept on a local branch, or proposed as pull requests in
    /// pull-request mode. Blocking. The clone's work tree holds the result.
    pub fn write_back(&self, checkout: Checkout, push: bool) -> anyhow::Result<WriteBack> {
        let (checkout, app) = self.authed(checkout)?;
        let options = UpdateOptions {
            identity: Identity::from_config(&self.config.repo.commit),
            push,
            max_attempts: NonZeroU32::new(MAX_ATTEMPTS).unwrap_or(NonZeroU32::MIN),
        };
        let check = self.registry()?.check();
        let now = SystemTime::now();
        if self.config.repo.mode == RepoMode::PullRequest && push {
            self.pull_requests(&check, now, &checkout, app.as_deref(), &options)
        } else {
            self.direct(&check, now, &checkout, &options)
        }
    }

    /// One commit with every pin, pushed to the followed branch (or kept
    /// locally).
    fn direct(
        &self,
        check: &Check,
        now: SystemTime,
        checkout: &Checkout,
        options: &UpdateOptions,
    ) -> anyhow::Result<WriteBack> {
        let mut last: Option<Pass> = None;
        let template = self.config.repo.commit.message.as_str();
        let outcome = checkout.update(options, |dir| {
            let pass = self.pin_pass(check, dir, now)?;
            let change = (!pass.files.is_empty())
                .then(|| pass.change(message::render(template, &pass.changes())));
            last = Some(pass);
            Ok::<_, pin::PinError>(change)
        })?;
        let pass = last.expect("an update computes at least once");
        let written = match outcome {
            UpdateOutcome::Unchanged { head } => Written::Unchanged { head },
            UpdateOutcome::Pushed { commit, attempts } => Written::Pushed { commit, attempts },
            UpdateOutcome::Committed { commit, kept } => Written::Committed { commit, kept },
        };
        match &written {
            Written::Pushed { commit, .. } => {
                for u in &pass.updates {
                    self.emit(update_event(EventKind::Pinned, u, commit));
                }
            }
            Written::Committed { commit, kept } => {
                for u in &pass.updates {
                    let event = update_event(EventKind::Pinned, u, commit);
                    let reason = format!(
                        "{} (not pushed: kept on the local branch {kept})",
                        event.reason.as_deref().unwrap_or_default()
                    );
                    self.emit(event.reason(reason));
                }
            }
            Written::Unchanged { .. } | Written::Proposed(_) => {}
        }
        let texts = match &written {
            Written::Unchanged { .. } if pass.files.is_empty() => pass.texts.clone(),
            Written::Pushed { .. } => pass.texts_after(),
            _ => BTreeMap::new(),
        };
        let remote = checkout.remote();
        Ok(WriteBack {
            url: remote.url().to_owned(),
            branch: remote.branch().to_owned(),
            workdir: checkout.workdir().to_owned(),
            pinned: pass.updates.clone(),
            problems: Problem::of(&pass),
            written,
            texts,
        })
    }

    /// Pull-request mode: the pins go to `magos/…` branches, each proposed as a
    /// pull request into the followed branch.
    fn pull_requests(
        &self,
        check: &Check,
        now: SystemTime,
        checkout: &Checkout,
        app: Option<&GithubApp>,
        options: &UpdateOptions,
    ) -> anyhow::Result<WriteBack> {
        let remote = checkout.remote().clone();
        let slug = RepoSlug::from_url(remote.url())?;
        let api = self.block_on(self.api_client(app))?;
        checkout.sync()?;
        let first = self.pin_pass(check, checkout.workdir(), now)?;
        let mut problems = Problem::of(&first);
        let template = self.config.repo.commit.message.as_str();
        let mut proposals: Vec<Proposal> = Vec::new();
        match self.config.repo.pr_grouping {
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
        let mut proposed = Vec::new();
        for (branch, services, title, prefix) in proposals {
            let mut body = String::new();
            let outcome = checkout.propose(options, &branch, |dir| {
                let pass = self
                    .pin_pass(check, dir, now)?
                    .only(|u| services.contains(&(u.stack.clone(), u.service.clone())));
                body = message::render(template, &pass.changes());
                let change = (!pass.files.is_empty()).then(|| pass.change(body.clone()));
                Ok::<_, pin::PinError>(change)
            });
            let (commit, pushed) = match outcome {
                Ok(ProposeOutcome::Unchanged { .. }) => continue,
                Ok(ProposeOutcome::UpToDate { commit, .. }) => (commit, false),
                Ok(ProposeOutcome::Pushed { commit, .. }) => (commit, true),
                Err(e) => {
                    problems.push(Problem::Proposal {
                        branch,
                        error: format!("{:#}", anyhow::Error::from(e)),
                    });
                    continue;
                }
            };
            let asked = self.block_on(async {
                let pr = github::ensure_pull_request(
                    &api,
                    &slug,
                    &branch,
                    remote.branch(),
                    &title,
                    &body,
                )
                .await?;
                let closed = match &prefix {
                    Some(prefix) => github::close_superseded(&api, &slug, prefix, &branch).await?,
                    None => Vec::new(),
                };
                Ok::<_, github::GithubError>((pr, closed))
            });
            let (pull_request, closed) = match asked {
                Ok((pr, closed)) => (Some(pr), closed),
                Err(e) => {
                    problems.push(Problem::Proposal {
                        branch: branch.clone(),
                        error: format!("{:#}", anyhow::Error::from(e)),
                    });
                    (None, Vec::new())
                }
            };
            if pushed {
                let link = pull_request
                    .as_ref()
                    .map(|pr| {
                        let (PullRequest::Opened(n) | PullRequest::Updated(n)) = pr;
                        format!("pull request #{n}: {title}")
                    })
                    .unwrap_or_else(|| format!("branch {branch}: {title}"));
                for u in first
                    .updates
                    .iter()
                    .filter(|u| services.contains(&(u.stack.clone(), u.service.clone())))
                {
                    self.emit(
                        update_event(EventKind::PullRequest, u, &commit).reason(link.clone()),
                    );
                }
            }
            proposed.push(Proposed {
                branch,
                title,
                commit,
                pushed,
                pull_request,
                closed,
                services,
            });
        }
        Ok(WriteBack {
            url: remote.url().to_owned(),
            branch: remote.branch().to_owned(),
            workdir: checkout.workdir().to_owned(),
            written: Written::Proposed(proposed),
            pinned: first.updates.clone(),
            problems,
            texts: BTreeMap::new(),
        })
    }

    /// The API client of pull-request mode: the App's installation, else the
    /// token given in `repo.url`.
    pub(super) async fn api_client(
        &self,
        app: Option<&GithubApp>,
    ) -> anyhow::Result<octocrab::Octocrab> {
        if let Some(app) = app {
            return Ok(app.client().await?);
        }
        let url = self
            .config
            .repo
            .url
            .as_ref()
            .map(|u| u.expose())
            .unwrap_or("");
        let (_, creds) = crate::git::url::split_credentials(url);
        let Some(creds) = creds else {
            anyhow::bail!(
                "pull-request mode needs GitHub API access: configure the GitHub App (github.app_id, github.private_key) or put a token in repo.url"
            );
        };
        Ok(octocrab::Octocrab::builder()
            .base_uri(self.config.github.api_url.as_str())?
            .personal_token(creds.password.expose().to_owned())
            .build()?)
    }
}

/// The event of a pin (or a proposed pin) of `u` in `commit`: the image
/// without tag or digest, the digest before (when the line had one) and after.
fn update_event(kind: EventKind, u: &pin::Update, commit: &str) -> Event {
    let digest = |value: &str| value.split_once('@').map(|(_, d)| d.to_owned());
    let name = u.new.split_once('@').map_or(u.new.as_str(), |(n, _)| n);
    let image = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    };
    Event::new(kind, super::events::now())
        .stack(&u.stack)
        .service(&u.service)
        .image(image)
        .digests(digest(&u.old), digest(&u.new))
        .commit(commit)
        .reason(format!("tag {}", u.tag))
}

/// One pull request to propose: its branch, the `(stack, service)` pairs it
/// pins, its title, and the branch prefix of the requests it supersedes.
type Proposal = (String, Vec<(String, String)>, String, Option<String>);
