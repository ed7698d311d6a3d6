//! Push with the `git` binary, and the update loop around it: sync, compute,
//! commit, push; on a rejection because the remote moved, start over from a
//! fresh sync. Never a force-push.

use std::num::NonZeroU32;
use std::path::Path;

use super::{Change, Checkout, GitError, Identity};

/// How an update run commits and pushes.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// Author and committer.
    pub identity: Identity,
    /// Push the commit (otherwise it is only kept on a local branch).
    pub push: bool,
    /// How many times to sync, compute, commit and push before giving up while
    /// the remote keeps moving.
    pub max_attempts: NonZeroU32,
}

/// What an update run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Nothing to change: the computation returned no change, or one that the
    /// files already hold.
    Unchanged {
        /// The remote head the computation saw.
        head: String,
    },
    /// Committed without pushing (`push: false`); the commit is kept on a
    /// local branch, since the next sync discards it from the followed branch.
    Committed {
        /// The commit.
        commit: String,
        /// The local branch holding it.
        kept: String,
    },
    /// Committed and pushed.
    Pushed {
        /// The commit now at the remote branch's head.
        commit: String,
        /// The attempt that succeeded (1 = no race).
        attempts: u32,
    },
}

/// What a pull-request update run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeOutcome {
    /// The computation returned no change.
    Unchanged {
        /// The followed branch's head the computation saw.
        head: String,
    },
    /// The pull-request branch already holds the change.
    UpToDate {
        /// The pull-request branch.
        branch: String,
        /// Its head.
        commit: String,
    },
    /// The change was pushed to the pull-request branch.
    Pushed {
        /// The pull-request branch.
        branch: String,
        /// The commit now at its head.
        commit: String,
        /// The attempt that succeeded.
        attempts: u32,
    },
}

/// What one attempt of an update run made.
enum Attempt<T> {
    /// Nothing to push: the run ends with this outcome.
    Done(T),
    /// This commit, to push.
    Push(String),
}

/// The answer of one push.
enum PushResult {
    /// The remote branch now points at the commit.
    Pushed,
    /// The remote branch moved (non-fast-forward): sync and recompute.
    Moved,
    /// Any other failure, with git's words.
    Failed(String),
}

impl Checkout {
    /// One update run. `compute` is called with the work tree after each sync and
    /// returns the change to make on that tree, or `None`; after a rejected push
    /// it runs again on the new remote head, so a change is always computed from
    /// what it is committed on top of (never a rebase of an old computation).
    pub fn update<F, E>(
        &self,
        options: &UpdateOptions,
        mut compute: F,
    ) -> Result<UpdateOutcome, GitError>
    where
        F: FnMut(&Path) -> Result<Option<Change>, E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let _lock = self.lock()?;
        let branch = self.remote.branch.clone();
        self.push_until_it_lands(
            options,
            &branch,
            || {
                let synced = self.sync_locked()?;
                let Some(change) = self.recompute(&mut compute)? else {
                    return Ok(Attempt::Done(UpdateOutcome::Unchanged {
                        head: synced.head,
                    }));
                };
                let Some(commit) = self.commit_locked(&change, &options.identity)? else {
                    return Ok(Attempt::Done(UpdateOutcome::Unchanged {
                        head: synced.head,
                    }));
                };
                if !options.push {
                    let kept = self.keep(&commit)?;
                    return Ok(Attempt::Done(UpdateOutcome::Committed { commit, kept }));
                }
                Ok(Attempt::Push(commit))
            },
            |commit, attempts| UpdateOutcome::Pushed { commit, attempts },
        )
    }

    /// One update run in pull-request mode: like [`Checkout::update`], but the
    /// commit goes to the remote branch `branch` (see
    /// [`super::github::pull_request_branch`]) instead of the followed branch.
    /// If `branch` exists on the remote, the commit is made on top of it (a
    /// fast-forward, never a force-push); otherwise on top of the followed
    /// branch's head.
    pub fn propose<F, E>(
        &self,
        options: &UpdateOptions,
        branch: &str,
        mut compute: F,
    ) -> Result<ProposeOutcome, GitError>
    where
        F: FnMut(&Path) -> Result<Option<Change>, E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let _lock = self.lock()?;
        self.push_until_it_lands(
            options,
            branch,
            || {
                let synced = self.sync_locked()?;
                let Some(change) = self.recompute(&mut compute)? else {
                    return Ok(Attempt::Done(ProposeOutcome::Unchanged {
                        head: synced.head,
                    }));
                };
                let parent = synced.branches.get(branch).unwrap_or(&synced.head);
                let Some(commit) = self.commit_detached(parent, &change, &options.identity)? else {
                    return Ok(Attempt::Done(ProposeOutcome::UpToDate {
                        branch: branch.to_owned(),
                        commit: parent.clone(),
                    }));
                };
                Ok(Attempt::Push(commit))
            },
            |commit, attempts| ProposeOutcome::Pushed {
                branch: branch.to_owned(),
                commit,
                attempts,
            },
        )
    }

    /// Runs `compute` on the work tree, naming the clone in its error.
    fn recompute<F, E>(&self, compute: &mut F) -> Result<Option<Change>, GitError>
    where
        F: FnMut(&Path) -> Result<Option<Change>, E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        compute(&self.dir).map_err(|e| GitError::Recompute {
            dir: self.dir.clone(),
            source: e.into(),
        })
    }

    /// The retry loop both update modes share: each attempt syncs, recomputes
    /// and commits (`attempt`), then pushes the commit to `branch`. A push the
    /// remote refuses because the branch moved starts a new attempt on the new
    /// head; any other failure, or running out of attempts, keeps the last
    /// commit on a local branch ([`Checkout::keep`]) and says so in the error.
    fn push_until_it_lands<T>(
        &self,
        options: &UpdateOptions,
        branch: &str,
        mut attempt: impl FnMut() -> Result<Attempt<T>, GitError>,
        pushed: impl Fn(String, u32) -> T,
    ) -> Result<T, GitError> {
        let max = options.max_attempts.get();
        let mut last_commit = None;
        for n in 1..=max {
            let commit = match attempt()? {
                Attempt::Done(outcome) => return Ok(outcome),
                Attempt::Push(commit) => commit,
            };
            match self.push(&commit, branch)? {
                PushResult::Pushed => {
                    tracing::info!(url = %self.remote.url, branch, commit, attempt = n, "pushed");
                    return Ok(pushed(commit, n));
                }
                PushResult::Moved => {
                    tracing::warn!(
                        url = %self.remote.url,
                        branch,
                        attempt = n,
                        "the remote branch moved during the update; recomputing on its new head"
                    );
                    last_commit = Some(commit);
                }
                PushResult::Failed(reason) => {
                    let kept = self.keep(&commit)?;
                    return Err(GitError::Push {
                        url: self.remote.url.clone(),
                        branch: branch.to_owned(),
                        reason,
                        kept,
                        dir: self.dir.clone(),
                    });
                }
            }
        }
        let commit = last_commit.expect("every attempt that does not return sets a commit");
        let kept = self.keep(&commit)?;
        Err(GitError::PushRaced {
            url: self.remote.url.clone(),
            branch: branch.to_owned(),
            attempts: max,
            kept,
            dir: self.dir.clone(),
        })
    }

    /// Pushes `commit` to the remote branch `branch`, fast-forward only.
    /// gitoxide cannot push, so this runs `git push`.
    fn push(&self, commit: &str, branch: &str) -> Result<PushResult, GitError> {
        let refspec = format!("{commit}:refs/heads/{branch}");
        let out = match self
            .output(self.git(["push", "--porcelain", "origin", refspec.as_str()], true))
        {
            Ok(out) => out,
            // No answer in time: the commit is kept like any failed push's.
            Err(e @ GitError::Timeout { .. }) => return Ok(PushResult::Failed(e.to_string())),
            Err(e) => return Err(e),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = self.scrub(&String::from_utf8_lossy(&out.stderr));
        Ok(classify_push(out.status.success(), &stdout, &stderr))
    }

    /// Keeps `commit` on a new local branch `magos/unpushed-<unix time>[-n]`,
    /// which syncs never touch, and returns the branch's name.
    fn keep(&self, commit: &str) -> Result<String, GitError> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut n = 0;
        loop {
            let name = if n == 0 {
                format!("magos/unpushed-{secs}")
            } else {
                format!("magos/unpushed-{secs}-{n}")
            };
            let exists = self
                .output(self.git(
                    [
                        "rev-parse",
                        "--verify",
                        "--quiet",
                        &format!("refs/heads/{name}"),
                    ],
                    false,
                ))?
                .status
                .success();
            if !exists {
                self.run_git(&["branch", &name, commit])?;
                tracing::warn!(dir = %self.dir.display(), branch = name, commit, "kept an unpushed commit");
                return Ok(name);
            }
            n += 1;
        }
    }
}

/// Reads `git push --porcelain`: a line `!\t<src>:<dst>\t[rejected] (fetch first)`
/// or `(non-fast-forward)` means the remote moved; any other failure is
/// reported with git's error output.
fn classify_push(success: bool, stdout: &str, stderr: &str) -> PushResult {
    let mut moved = false;
    let mut refused = None;
    for line in stdout.lines() {
        let mut fields = line.split('\t');
        let (Some(flag), Some(_refs), Some(summary)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if flag == "!" {
            if summary.contains("non-fast-forward") || summary.contains("fetch first") {
                moved = true;
            } else {
                refused = Some(summary.to_owned());
            }
        }
    }
    if moved {
        return PushResult::Moved;
    }
    if success && refused.is_none() {
        return PushResult::Pushed;
    }
    let mut reason = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(summary) = refused {
        reason = if reason.is_empty() {
            summary
        } else {
            format!("{summary}: {reason}")
        };
    }
    if reason.is_empty() {
        reason = "git push failed without a message".to_owned();
    }
    PushResult::Failed(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_output_is_classified() {
        let ok = "To /srv/r.git\n \tabc:refs/heads/main\t1111..2222\nDone\n";
        assert!(matches!(classify_push(true, ok, ""), PushResult::Pushed));
        let ff = "To /srv/r.git\n!\tabc:refs/heads/main\t[rejected] (fetch first)\nDone\n";
        assert!(matches!(
            classify_push(false, ff, "error: failed"),
            PushResult::Moved
        ));
        let nff = "To /srv/r.git\n!\tabc:refs/heads/main\t[rejected] (non-fast-forward)\nDone\n";
        assert!(matches!(classify_push(false, nff, ""), PushResult::Moved));
        let hook = "To /srv/r.git\n!\tabc:refs/heads/main\t[remote rejected] (pre-receive hook declined)\nDone\n";
        match classify_push(false, hook, "error: failed to push some refs") {
            PushResult::Failed(r) => assert!(r.contains("pre-receive hook declined"), "{r}"),
            _ => panic!("a declined push is a failure"),
        }
        match classify_push(
            false,
            "",
            "fatal: Authentication failed for 'https://h/r.git/'\n",
        ) {
            PushResult::Failed(r) => {
                assert_eq!(r, "fatal: Authentication failed for 'https://h/r.git/'")
            }
            _ => panic!("an auth failure is a failure"),
        }
    }
}
