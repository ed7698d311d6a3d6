//! Sync: clone on first use and fetch with gitoxide, then hard-align the work
//! tree to the remote branch with the `git` binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gix::remote::Direction;
use gix::remote::fetch::Shallow;
use gix::sec::trust::DefaultForLevel;

use super::{Auth, Checkout, GitError, install_crypto_provider};

/// What a sync found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The commit the work tree now holds (the remote branch's head), in hex.
    pub head: String,
    /// Every branch the remote advertised, with its commit.
    pub branches: std::collections::BTreeMap<String, String>,
}

type CredentialFn = Box<
    dyn FnMut(
        gix::credentials::helper::Action,
    ) -> gix::Result<Option<gix::credentials::protocol::Outcome>>,
>;

/// gitoxide's credential callback for `auth`: answers every request with the
/// configured credentials; `None` leaves gitoxide to the user's git configuration.
pub(super) fn credential_fn(auth: &Auth) -> Option<CredentialFn> {
    let Auth::Basic(creds) = auth else {
        return None;
    };
    let creds = creds.clone();
    Some(Box::new(move |action| match action {
        gix::credentials::helper::Action::Get(ctx) => {
            Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: creds.username.clone(),
                    password: creds.password.expose().to_owned(),
                    oauth_refresh_token: None,
                },
                next: ctx.into(),
            }))
        }
        _ => Ok(None),
    }))
}

impl Checkout {
    /// Brings the clone to the remote branch's head: clones it on first use,
    /// fetches otherwise, then discards every local difference (other branch
    /// checked out, local commits, edits, staged changes, untracked and ignored
    /// files). A folder that exists but is not a clone is an error, never deleted.
    pub fn sync(&self) -> Result<Synced, GitError> {
        let _lock = self.lock()?;
        self.sync_locked()
    }

    pub(super) fn sync_locked(&self) -> Result<Synced, GitError> {
        install_crypto_provider();
        let (fresh, outcome) = if self.dir.join(".git").exists() {
            let fetched = self.bounded("fetch", |me, stop| me.fetch(stop));
            (false, self.with_ssh_said(fetched)?)
        } else {
            let occupied = std::fs::read_dir(&self.dir)
                .map(|mut entries| entries.next().is_some())
                .unwrap_or(false);
            if occupied {
                return Err(GitError::NotAClone {
                    dir: self.dir.clone(),
                });
            }
            (
                true,
                self.with_ssh_said(self.bounded("clone", |me, stop| me.clone_fresh(stop)))?,
            )
        };
        let branches = branches_of(&outcome.ref_map);
        let head =
            branches
                .get(&self.remote.branch)
                .cloned()
                .ok_or_else(|| GitError::NoRemoteBranch {
                    url: self.remote.url.clone(),
                    branch: self.remote.branch.clone(),
                })?;
        self.hard_align(&head)?;
        tracing::debug!(dir = %self.dir.display(), url = %self.remote.url, head, fresh, "synced");
        Ok(Synced { head, branches })
    }

    /// The subject line of a commit of the clone.
    pub fn subject(&self, commit: &str) -> Result<String, GitError> {
        let _lock = self.lock()?;
        let out = self.run_git(&["log", "-1", "--format=%s", commit, "--"])?;
        Ok(out.trim_end().to_owned())
    }

    /// The work tree's head commit, if it has one.
    pub fn head(&self) -> Option<String> {
        let _lock = self.lock().ok()?;
        self.run_git(&["rev-parse", "--verify", "--quiet", "HEAD"])
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
    }

    /// Whether `commit` is in the history of the work tree's head (a pull
    /// request merged by a merge commit or a fast-forward is; a squashed or
    /// rebased one is not). An unknown commit is not.
    pub fn contains(&self, commit: &str) -> bool {
        let Ok(_lock) = self.lock() else {
            return false;
        };
        self.run_git(&["merge-base", "--is-ancestor", commit, "HEAD"])
            .is_ok()
    }

    /// Brings the work tree to the remote branch as the last fetch saw it
    /// (`refs/remotes/origin/<branch>`), without asking the remote: after a
    /// failed update, the commit that could not be pushed leaves the followed
    /// branch (it is kept on its `magos/unpushed-…` branch).
    pub fn align_to_fetched(&self) -> Result<(), GitError> {
        let _lock = self.lock()?;
        let tracking = format!("refs/remotes/origin/{}", self.remote.branch);
        let head = self.run_git(&["rev-parse", "--verify", "--quiet", &tracking])?;
        self.hard_align(head.trim())
    }

    /// Runs a gitoxide network operation within `repo.timeout`. gitoxide has
    /// no overall time limit (its HTTP transport bounds each request; ssh and
    /// local transports have nothing), so the operation runs on a thread of its
    /// own: when the limit runs out or Magos stops, its interrupt flag is raised
    /// (gitoxide checks it while receiving a pack) and the thread is left to
    /// end on its own, while the caller gets [`GitError::Timeout`] at once.
    fn bounded<T: Send + 'static>(
        &self,
        what: &str,
        op: impl FnOnce(&Checkout, &AtomicBool) -> Result<T, GitError> + Send + 'static,
    ) -> Result<T, GitError> {
        if super::cmd::stopping() {
            return Err(GitError::Stopped {
                command: what.to_owned(),
            });
        }
        let me = self.clone();
        let interrupt = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        {
            let interrupt = interrupt.clone();
            std::thread::Builder::new()
                .name(format!("git-{what}"))
                .spawn(move || {
                    let _ = tx.send(op(&me, &interrupt));
                })
                .map_err(|source| GitError::Spawn { source })?;
        }
        let deadline = Instant::now() + self.remote.timeout;
        // Short waits, so that `stop_all` is noticed without its own channel.
        const SLICE: Duration = Duration::from_millis(200);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(SLICE)) {
                Ok(result) => return result,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(GitError::Spawn {
                        source: std::io::Error::other(format!(
                            "the git {what} thread ended without an answer"
                        )),
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if super::cmd::stopping() {
                        interrupt.store(true, Ordering::Release);
                        return Err(GitError::Stopped {
                            command: what.to_owned(),
                        });
                    }
                    if left.is_zero() {
                        interrupt.store(true, Ordering::Release);
                        tracing::warn!(operation = what, url = %self.remote.url, limit = ?self.remote.timeout, "git did not finish in time; abandoned");
                        return Err(GitError::Timeout {
                            command: format!("{what} {}", self.remote.url),
                            dir: self.dir.clone(),
                            after: self.remote.timeout,
                        });
                    }
                }
            }
        }
    }

    fn shallow(&self) -> Shallow {
        match self.remote.depth {
            Some(depth) => Shallow::DepthAtRemote(depth),
            None => Shallow::NoChange,
        }
    }

    /// Clones into a sibling folder `<clone>.partial` and renames it into
    /// place once the fetch is complete, so an interrupted clone never leaves a
    /// half-made repository where the clone belongs. A `.partial` folder left by
    /// an earlier interruption is removed first (the clone's lock is held).
    fn clone_fresh(&self, interrupt: &AtomicBool) -> Result<gix::remote::fetch::Outcome, GitError> {
        let err = |source| GitError::Clone {
            url: self.remote.url.clone(),
            branch: self.remote.branch.clone(),
            dir: self.dir.clone(),
            source,
        };
        let write_err = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| GitError::Write { path, source }
        };
        let mut name = self.dir.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        let partial = self.dir.with_file_name(name);
        if partial.exists() {
            tracing::warn!(path = %partial.display(), "removing an interrupted clone");
            std::fs::remove_dir_all(&partial).map_err(write_err(&partial))?;
        }
        if let Some(parent) = self.dir.parent() {
            std::fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        let auth = self.remote.auth.clone();
        // As `gix::prepare_clone`, plus the ssh command when one is configured.
        let mut open_opts = gix::open::Options::default_for_level(gix::sec::Trust::Full)
            .config_overrides(self.remote.ssh_overrides(self.ssh_log().as_deref()));
        open_opts.permissions.config.git_binary = true;
        let mut prepare = gix::clone::PrepareFetch::new(
            self.remote.url.as_str(),
            &partial,
            gix::create::Kind::WithWorktree,
            gix::create::Options::default(),
            open_opts,
        )
        .map_err(err)?
        .with_ref_name(Some(self.remote.branch.as_str()))
        .map_err(err)?
        .with_shallow(self.shallow())
        .configure_connection(move |conn| {
            if let Some(f) = credential_fn(&auth) {
                conn.set_credentials(f);
            }
            Ok(())
        });
        let (repo, outcome) = prepare
            .fetch_only(gix::progress::Discard, interrupt)
            .map_err(err)?;
        drop(repo);
        drop(prepare);
        if self.dir.exists() {
            // Only an empty folder gets here (sync refuses any other).
            std::fs::remove_dir(&self.dir).map_err(write_err(&self.dir))?;
        }
        std::fs::rename(&partial, &self.dir).map_err(write_err(&self.dir))?;
        Ok(outcome)
    }

    /// Opens the clone. A fetch that moves a remote-tracking ref writes a
    /// reflog entry, which gitoxide refuses without a committer; a service
    /// account often has no git identity, so one is given in memory (the
    /// user's own git configuration, when it has one, still wins).
    pub(super) fn open(&self) -> Result<gix::Repository, GitError> {
        let mut overrides = vec![
            "committer.name=Magos Dominus".to_owned(),
            "committer.email=magos@localhost".to_owned(),
        ];
        overrides.extend(self.remote.ssh_overrides(self.ssh_log().as_deref()));
        let options = gix::open::Options::default().config_overrides(overrides);
        gix::open_opts(&self.dir, options).map_err(|source| GitError::Open {
            dir: self.dir.clone(),
            source,
        })
    }

    fn fetch(&self, interrupt: &AtomicBool) -> Result<gix::remote::fetch::Outcome, GitError> {
        let err = |source| GitError::Fetch {
            url: self.remote.url.clone(),
            dir: self.dir.clone(),
            source,
        };
        let mut repo = self.open()?;
        let on_disk = repo
            .find_remote("origin")
            .ok()
            .and_then(|r| r.url(Direction::Fetch).map(|u| u.to_bstring().to_string()));
        if on_disk.as_deref() != Some(self.remote.url.as_str()) {
            // The configured remote changed: follow it (the clone is only a cache).
            tracing::info!(dir = %self.dir.display(), url = %self.remote.url, "the clone follows a new remote URL");
            if on_disk.is_some() {
                self.run_git(&["remote", "set-url", "origin", &self.remote.url])?;
            } else {
                self.run_git(&["remote", "add", "origin", &self.remote.url])?;
            }
            repo = self.open()?;
        }
        let remote = repo.find_remote("origin").map_err(err)?;
        let mut conn = remote.connect(Direction::Fetch).map_err(err)?;
        if let Some(f) = credential_fn(&self.remote.auth) {
            conn.set_credentials(f);
        }
        conn.prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(err)?
            .with_shallow(self.shallow())
            .receive(gix::progress::Discard, interrupt)
            .map_err(err)
    }

    /// Points the local branch at `commit`, checks it out over whatever is in
    /// the work tree and index, and removes every untracked and ignored file.
    /// gitoxide has no checkout of an existing work tree (only the first checkout
    /// of a clone), so this step uses the `git` binary.
    pub(super) fn hard_align(&self, commit: &str) -> Result<(), GitError> {
        let git_dir = self.dir.join(".git");
        if git_dir.join("rebase-merge").exists() || git_dir.join("rebase-apply").exists() {
            self.run_git(&["rebase", "--quit"])?;
        }
        self.run_git(&["reset", "-q", "--hard"]).ok();
        self.run_git(&[
            "checkout",
            "-q",
            "-f",
            "-B",
            &self.remote.branch,
            commit,
            "--",
        ])?;
        self.run_git(&["clean", "-q", "-ffdx"])?;
        Ok(())
    }
}

/// The branches the remote advertised in this fetch, with their commits. (A
/// branch deleted on the remote keeps its stale remote-tracking ref, so local
/// refs are no proof a branch exists.)
pub(super) fn branches_of(
    ref_map: &gix::remote::fetch::RefMap,
) -> std::collections::BTreeMap<String, String> {
    ref_map
        .mappings
        .iter()
        .filter_map(|m| {
            let local = m.local.as_ref()?.to_string();
            let name = local.strip_prefix("refs/remotes/origin/")?.to_owned();
            Some((name, m.remote.as_id()?.to_string()))
        })
        .collect()
}
