//! The engine's side of rollback: the state file (`rollback.json` in the state
//! folder: soaks under way, rejected digests, held definitions), written
//! atomically so a Magos killed during a soak finishes the verdict after a
//! restart; and the git half of a rollback, the revert of a pin Magos
//! committed, pushed with the same never-force loop as the pins (or, in
//! pull-request mode, proposed as a pull request).

use std::io::Write as _;
use std::num::NonZeroU32;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::config::RepoMode;
use crate::core::rewrite;
use crate::core::rollback::{Soaking, State, revert_message};
use crate::core::soak::Failure;
use crate::git::github::{self, GithubApp, PullRequest, RepoSlug};
use crate::git::{
    Change, Checkout, FileEdit, Identity, ProposeOutcome, UpdateOptions, UpdateOutcome,
};

use super::Engine;
use super::pin::MAX_ATTEMPTS;

/// The state file's name in the state folder.
pub const STATE_FILE: &str = "rollback.json";

/// What the git half of a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reverted {
    /// The revert is on the remote branch.
    Pushed {
        /// Its commit.
        commit: String,
    },
    /// Committed, not pushed: kept on a local branch.
    Committed {
        /// Its commit.
        commit: String,
        /// The branch holding it.
        kept: String,
    },
    /// Pull-request mode: the revert is on its own branch, proposed as a
    /// pull request.
    Proposed {
        /// The branch.
        branch: String,
        /// Its head (the revert).
        commit: String,
        /// The pull request's number.
        pull_request: u64,
    },
    /// The branch no longer holds the failed pin (someone changed the line):
    /// nothing to revert.
    Unchanged,
}

impl Engine {
    /// Where the state file is, when there is a state folder.
    pub fn rollback_state_path(&self) -> Option<PathBuf> {
        crate::config::state_dir(&self.config, &self.env).map(|d| d.join(STATE_FILE))
    }

    /// The rollback state (empty when there is no file yet).
    pub fn rollback_state(&self) -> anyhow::Result<State> {
        let Some(path) = self.rollback_state_path() else {
            return Ok(State::default());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a rollback state Magos wrote; move it away to start afresh",
                path.display()
            )
        })
    }

    /// Writes the rollback state: a temporary file beside it, synced, renamed
    /// over it.
    pub fn save_rollback_state(&self, state: &State) -> anyhow::Result<()> {
        let Some(path) = self.rollback_state_path() else {
            anyhow::bail!("no state folder: set state_dir (or HOME) to keep soaks and rejections");
        };
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("writing in {}", dir.display()))?;
        tmp.write_all(&serde_json::to_vec_pretty(state)?)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The rejected digests, for the pin pass (none when the state cannot be
    /// read: logged, so a broken file never stops pinning).
    pub(super) fn rejected(&self) -> Vec<crate::core::rollback::Rejected> {
        match self.rollback_state() {
            Ok(s) => s.rejected,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the rejected digests");
                Vec::new()
            }
        }
    }

    /// Reverts the failed pin of `soaking`: on the fresh head, the service's
    /// image line is given back its previous value byte for byte (when it
    /// still holds the failed pin), committed with the `Magos-Rollback`
    /// trailer and pushed to the followed branch, recomputed when the remote
    /// moved; in pull-request mode, pushed to a `magos/…-rollback-…` branch
    /// and proposed as a pull request instead. Blocking.
    pub fn revert_pin(
        &self,
        checkout: Checkout,
        soaking: &Soaking,
        failure: &Failure,
        image_at_digest: &str,
    ) -> anyhow::Result<Reverted> {
        let (Some(pin), Some(from)) = (&soaking.pin, &soaking.from) else {
            anyhow::bail!(
                "{} was not pinned by Magos: nothing to revert",
                soaking.who()
            );
        };
        let (checkout, app) = self.authed(checkout)?;
        let options = UpdateOptions {
            identity: Identity::from_config(&self.config.repo.commit),
            push: true,
            max_attempts: NonZeroU32::new(MAX_ATTEMPTS).unwrap_or(NonZeroU32::MIN),
        };
        // `git revert`'s form names the pin commit: only when the branch has
        // it (a pull request squashed on merge left another commit there).
        let subject = if checkout.contains(&pin.commit) {
            checkout.subject(&pin.commit).ok()
        } else {
            None
        };
        let message = revert_message(
            subject.as_deref(),
            pin,
            &soaking.who(),
            from,
            image_at_digest,
            failure,
        );
        let compute = |dir: &std::path::Path| {
            let path = dir.join(&pin.file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let edit = rewrite::Edit {
                service: &soaking.service,
                expected: &soaking.to,
                new: from,
            };
            // A line that no longer holds the failed pin was changed by
            // someone else since: leave it.
            let Ok(after) = rewrite::rewrite(&text, &edit) else {
                return Ok::<_, anyhow::Error>(None);
            };
            if after == text {
                return Ok(None);
            }
            Ok(Some(Change {
                files: vec![FileEdit {
                    path: PathBuf::from(&pin.file),
                    contents: after.into_owned().into_bytes(),
                }],
                message: message.clone(),
            }))
        };
        if self.config.repo.mode == RepoMode::PullRequest {
            return self.propose_revert(
                &checkout,
                app.as_deref(),
                &options,
                soaking,
                &message,
                compute,
            );
        }
        let outcome = match checkout.update(&options, compute) {
            Ok(outcome) => outcome,
            Err(e) => {
                // The revert that could not be pushed is kept on its
                // `magos/unpushed-…` branch; the work tree goes back to what
                // the remote holds, so the hold still sees the failed pin.
                if let Err(a) = checkout.align_to_fetched() {
                    tracing::warn!(error = %a, "cannot realign the clone after a failed revert");
                }
                return Err(e.into());
            }
        };
        Ok(match outcome {
            UpdateOutcome::Unchanged { .. } => Reverted::Unchanged,
            UpdateOutcome::Pushed { commit, .. } => Reverted::Pushed { commit },
            UpdateOutcome::Committed { commit, kept } => Reverted::Committed { commit, kept },
        })
    }

    /// Pull-request mode: the revert goes to the branch
    /// `magos/<stack>-<service>-rollback-<tag>` and is proposed as a pull
    /// request into the followed branch, which is never written. A newer pin
    /// of the service supersedes it (its pull request closes this one).
    fn propose_revert(
        &self,
        checkout: &Checkout,
        app: Option<&GithubApp>,
        options: &UpdateOptions,
        soaking: &Soaking,
        message: &str,
        compute: impl FnMut(&std::path::Path) -> anyhow::Result<Option<Change>>,
    ) -> anyhow::Result<Reverted> {
        let slug = RepoSlug::from_url(checkout.remote().url())?;
        let api = self.block_on(self.api_client(app))?;
        let tag = crate::registry::ImageRef::parse(&soaking.to)
            .ok()
            .and_then(|r| r.tag().map(str::to_owned))
            .or_else(|| {
                soaking
                    .to_digest
                    .as_ref()
                    .map(|d| d.chars().skip(7).take(12).collect())
            })
            .unwrap_or_default();
        let branch = github::pull_request_branch(
            &soaking.stack,
            &soaking.service,
            &format!("rollback-{tag}"),
        );
        let commit = match checkout.propose(options, &branch, compute)? {
            ProposeOutcome::Unchanged { .. } => return Ok(Reverted::Unchanged),
            ProposeOutcome::UpToDate { commit, .. } | ProposeOutcome::Pushed { commit, .. } => {
                commit
            }
        };
        let title = message.lines().next().unwrap_or("Roll back a failed pin");
        let pr = self.block_on(github::ensure_pull_request(
            &api,
            &slug,
            &branch,
            checkout.remote().branch(),
            title,
            message,
        ))?;
        let (PullRequest::Opened(number) | PullRequest::Updated(number)) = pr;
        Ok(Reverted::Proposed {
            branch,
            commit,
            pull_request: number,
        })
    }
}
