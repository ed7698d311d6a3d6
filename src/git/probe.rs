//! `Remote::probe`: is the remote reachable and readable, and does it have the
//! branch? The first step of a fetch (connect, authenticate, list the remote's
//! branches, as `git ls-remote` does), without downloading any object, within a
//! time limit. `magos init` uses it to check what it configured.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use gix::remote::Direction;

use super::sync::{branches_of, credential_fn};
use super::{GitError, Remote, install_crypto_provider};

/// What a probe found on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// The head of the followed branch, in hex.
    pub head: String,
    /// Every branch the remote advertised, with its commit.
    pub branches: BTreeMap<String, String>,
}

impl Remote {
    /// Connects to the remote with its authentication, lists its branches and
    /// finds the followed one; nothing is downloaded or written but a scratch
    /// repository in a temporary folder (removed again). A remote that has not
    /// answered after `timeout` is reported as such (the attempt is abandoned on
    /// a thread of its own).
    pub fn probe(&self, timeout: Duration) -> Result<Probed, GitError> {
        install_crypto_provider();
        let scratch = tempfile::tempdir().map_err(|source| GitError::Write {
            path: std::env::temp_dir(),
            source,
        })?;
        let (tx, rx) = mpsc::channel();
        let remote = self.clone();
        let dir = scratch.path().to_owned();
        std::thread::spawn(move || {
            let _ = tx.send(remote.list_branches(&dir));
        });
        let branches = match rx.recv_timeout(timeout) {
            Ok(Ok(branches)) => branches,
            Ok(Err(source)) => {
                return Err(GitError::Probe {
                    url: self.url.clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(GitError::ProbeTimeout {
                    url: self.url.clone(),
                    after: timeout,
                });
            }
        };
        let head = branches
            .get(&self.branch)
            .cloned()
            .ok_or_else(|| GitError::NoRemoteBranch {
                url: self.url.clone(),
                branch: self.branch.clone(),
            })?;
        Ok(Probed { head, branches })
    }

    /// The handshake and ref advertisement of a fetch of every branch, from a
    /// scratch bare repository in `scratch`. Credentials come from the remote's
    /// authentication or the user's git configuration, never from a prompt on
    /// the terminal (the daemon has none to ask on either).
    fn list_branches(&self, scratch: &Path) -> Result<BTreeMap<String, String>, gix::Error> {
        drop(gix::init_bare(scratch)?);
        let mut overrides = vec!["gitoxide.credentials.terminalPrompt=false".to_owned()];
        overrides.extend(self.ssh_overrides(None));
        let options = gix::open::Options::default().config_overrides(overrides);
        let repo = gix::open_opts(scratch, options)?;
        let remote = repo
            .remote_at(self.url.as_str())?
            .with_refspecs(["+refs/heads/*:refs/remotes/origin/*"], Direction::Fetch)?;
        let mut conn = remote.connect(Direction::Fetch)?;
        if let Some(f) = credential_fn(&self.auth) {
            conn.set_credentials(f);
        }
        let (ref_map, _) = conn.ref_map(gix::progress::Discard, Default::default())?;
        Ok(branches_of(&ref_map))
    }
}
