//! The git edge: Magos's own clone of the GitOps repository, kept equal to the
//! remote branch, and the commits that write pinned digests back.
//!
//! - [`Checkout::sync`] clones on first use (gitoxide), fetches on every call
//!   (gitoxide) and hard-aligns the work tree to the remote branch (the `git`
//!   binary). Magos's clone is a cache of the remote: local edits, commits and
//!   stray files in it are never a source of truth and are discarded.
//! - [`Checkout::update`] runs one update: sync, let the caller compute the
//!   change on the fresh tree, write it atomically, commit it (gitoxide), push
//!   it (the `git` binary). A push rejected because the remote moved is retried
//!   from a new sync and a new computation, a bounded number of times; there is
//!   never a force-push. A commit that could not be pushed is kept on a local
//!   branch `magos/unpushed-<unix time>` and named in the error.
//! - Credentials are handed to each network operation in memory (gitoxide's
//!   credential callback; for `git push` a credential helper that reads them from
//!   the child's environment). They are never written to `.git/config`, the
//!   remote URL on disk, logs or error messages.
//!
//! Everything here blocks; from async code, call it through `spawn_blocking`.

mod cmd;
mod commit;
pub mod github;
mod lock;
pub mod message;
mod probe;
mod push;
mod sync;
pub mod url;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cmd::stop_all;
pub use commit::{Change, FileEdit, Identity, write_files};
pub use probe::Probed;
pub use push::{ProposeOutcome, UpdateOptions, UpdateOutcome};
pub use sync::Synced;
pub use url::Credentials;

use crate::config::{Branch, RepoUrl};

/// What can go wrong in the git edge. Messages name the remote (without
/// credentials) and the local folder involved, and never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The clone's folder exists but is not a git repository (it is never deleted).
    #[error(
        "{} exists but is not a git clone; move it away or choose another state_dir",
        dir.display()
    )]
    NotAClone {
        /// The folder.
        dir: PathBuf,
    },
    /// Another process (another Magos) is working in the clone.
    #[error(
        "another process is using the git clone at {} (its lock file is held); run one Magos per state_dir",
        dir.display()
    )]
    Busy {
        /// The clone's folder.
        dir: PathBuf,
    },
    /// The first clone failed.
    #[error("cannot clone {url} (branch `{branch}`) into {}", dir.display())]
    Clone {
        /// The remote, without credentials.
        url: String,
        /// The branch.
        branch: String,
        /// The clone's folder.
        dir: PathBuf,
        /// gitoxide's error.
        #[source]
        source: gix::Error,
    },
    /// A fetch failed: the remote is unreachable, refuses the credentials, or
    /// is not a repository.
    #[error("cannot fetch {url} into {}", dir.display())]
    Fetch {
        /// The remote, without credentials.
        url: String,
        /// The clone's folder.
        dir: PathBuf,
        /// gitoxide's error.
        #[source]
        source: gix::Error,
    },
    /// A probe of the remote failed: it is unreachable, refuses the
    /// credentials, or is not a repository.
    #[error("cannot read {url}")]
    Probe {
        /// The remote, without credentials.
        url: String,
        /// gitoxide's error.
        #[source]
        source: gix::Error,
    },
    /// The remote did not answer a probe in time.
    #[error("{url} did not answer within {}s", after.as_secs())]
    ProbeTimeout {
        /// The remote, without credentials.
        url: String,
        /// The time limit.
        after: std::time::Duration,
    },
    /// `ssh` (run with `repo.ssh_key`/`repo.known_hosts`) failed: the host key
    /// is unknown or changed, or the server refused the key.
    #[error(
        "ssh to {url} failed: {said}; check repo.ssh_key and repo.known_hosts \
         (the server's host key must be listed there, and it must accept the key)"
    )]
    Ssh {
        /// The remote, without credentials.
        url: String,
        /// The last lines ssh wrote (never a secret: ssh prints no key material).
        said: String,
    },
    /// The remote has no such branch.
    #[error("the remote {url} has no branch `{branch}`")]
    NoRemoteBranch {
        /// The remote, without credentials.
        url: String,
        /// The branch.
        branch: String,
    },
    /// The clone could not be opened or read.
    #[error("cannot read the git clone at {}", dir.display())]
    Open {
        /// The clone's folder.
        dir: PathBuf,
        /// gitoxide's error.
        #[source]
        source: gix::Error,
    },
    /// The `git` program could not be started.
    #[error("cannot run `git` (is git installed and on PATH?)")]
    Spawn {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A network or `git` operation did not finish within `repo.timeout`; the
    /// `git` process group was killed (a gitoxide fetch was told to stop and
    /// left to end on its own).
    #[error(
        "`git {command}` in {} did not finish within {}s (repo.timeout) and was stopped; \
         check that the remote answers, or raise repo.timeout (MD_REPO_TIMEOUT)",
        dir.display(),
        after.as_secs()
    )]
    Timeout {
        /// The operation (never a secret).
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// The limit that ran out.
        after: Duration,
    },
    /// Magos is stopping (SIGTERM/SIGINT): the `git` command was not started,
    /// or was killed.
    #[error("Magos is stopping: `git {command}` was not started or was ended")]
    Stopped {
        /// The operation (never a secret).
        command: String,
    },
    /// A `git` command failed.
    #[error("`git {command}` failed in {}: {stderr}", dir.display())]
    Command {
        /// The subcommand and its arguments (never a secret).
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// Its error output, with any secret replaced by `<redacted>`.
        stderr: String,
    },
    /// A file of the change is not a relative path inside the repository.
    #[error("refusing to write {}: not a relative path inside the repository", path.display())]
    UnsafePath {
        /// The path as given.
        path: PathBuf,
    },
    /// A file of the change could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Creating the commit failed.
    #[error("cannot commit in {}", dir.display())]
    Commit {
        /// The clone's folder.
        dir: PathBuf,
        /// gitoxide's error.
        #[source]
        source: gix::Error,
    },
    /// The caller's computation of the change failed.
    #[error("cannot compute the update in {}", dir.display())]
    Recompute {
        /// The clone's folder.
        dir: PathBuf,
        /// The caller's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Every push attempt was rejected because the remote branch kept moving.
    #[error(
        "the push to {url} (branch `{branch}`) was rejected {attempts} times because the remote moved; \
         the commit is kept on local branch `{kept}` in {}",
        dir.display()
    )]
    PushRaced {
        /// The remote, without credentials.
        url: String,
        /// The branch pushed to.
        branch: String,
        /// How many attempts were made.
        attempts: u32,
        /// The local branch holding the last commit.
        kept: String,
        /// The clone's folder.
        dir: PathBuf,
    },
    /// The push failed for another reason (unreachable remote, bad credentials,
    /// refused by the server).
    #[error(
        "cannot push to {url} (branch `{branch}`): {reason}; the commit is kept on local branch `{kept}` in {}",
        dir.display()
    )]
    Push {
        /// The remote, without credentials.
        url: String,
        /// The branch pushed to.
        branch: String,
        /// What git said, with any secret replaced by `<redacted>`.
        reason: String,
        /// The local branch holding the commit.
        kept: String,
        /// The clone's folder.
        dir: PathBuf,
    },
}

/// How Magos authenticates to the remote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// The user's own git and ssh setup (ssh keys and agent, configured
    /// credential helpers), or nothing for local paths.
    #[default]
    Ambient,
    /// A user name and password or token for HTTPS, handed over in memory.
    Basic(Credentials),
}

/// The ssh key and known hosts Magos gives `ssh` for `ssh://` and
/// `user@host:path` remotes (`repo.ssh_key`, `repo.known_hosts`). Either one
/// makes Magos run `ssh` itself (gitoxide's `core.sshCommand`, `git`'s
/// `GIT_SSH_COMMAND`) with `BatchMode=yes` and `StrictHostKeyChecking=yes`: a
/// host whose key is not in the known hosts, or has changed, is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshOptions {
    /// The private key: the only identity offered (`IdentitiesOnly=yes`).
    pub key: Option<PathBuf>,
    /// The known hosts file, instead of `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
}

impl SshOptions {
    /// The `ssh` command line (for a shell: paths are quoted), or `None` when
    /// nothing is configured and the user's own ssh setup applies. With `log`,
    /// ssh writes its messages to that file (`-E`) instead of standard error,
    /// where gitoxide would only pass them on. It holds paths only, never a
    /// key's contents.
    pub fn command(&self, log: Option<&Path>) -> Option<String> {
        if self.key.is_none() && self.known_hosts.is_none() {
            return None;
        }
        let mut cmd = String::from("ssh -o BatchMode=yes -o StrictHostKeyChecking=yes");
        if let Some(log) = log {
            cmd.push_str(" -E ");
            cmd.push_str(&shell_quote(&log.to_string_lossy()));
        }
        if let Some(key) = &self.key {
            cmd.push_str(" -o IdentitiesOnly=yes -i ");
            cmd.push_str(&shell_quote(&key.to_string_lossy()));
        }
        if let Some(known) = &self.known_hosts {
            cmd.push_str(" -o UserKnownHostsFile=");
            cmd.push_str(&shell_quote(&known.to_string_lossy()));
        }
        Some(cmd)
    }
}

/// `text` as one word for `sh`: in single quotes, each `'` written as `'\''`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The remote branch Magos follows and writes to.
#[derive(Debug, Clone)]
pub struct Remote {
    url: String,
    branch: String,
    auth: Auth,
    depth: Option<NonZeroU32>,
    timeout: Duration,
    ssh: SshOptions,
}

/// The time limit of one git operation unless [`Remote::with_timeout`] says
/// otherwise (`repo.timeout`'s default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

impl Remote {
    /// A remote from the configured URL and branch. Credentials embedded in an
    /// HTTPS URL are taken out of it (the clone stores the URL without them) and
    /// used unless `auth` gives others.
    pub fn new(url: &RepoUrl, branch: &Branch, auth: Auth) -> Self {
        let (clean, embedded) = url::split_credentials(url.expose());
        let auth = match (auth, embedded) {
            (Auth::Ambient, Some(creds)) => Auth::Basic(creds),
            (auth, _) => auth,
        };
        Self {
            url: clean,
            branch: branch.as_str().to_owned(),
            auth,
            depth: None,
            timeout: DEFAULT_TIMEOUT,
            ssh: SshOptions::default(),
        }
    }

    /// The ssh key and known hosts for an ssh remote (`repo.ssh_key`,
    /// `repo.known_hosts`); ignored by other transports.
    pub fn with_ssh(mut self, ssh: SshOptions) -> Self {
        self.ssh = ssh;
        self
    }

    /// gitoxide configuration that makes it run `ssh` as configured (nothing
    /// when no ssh option is set).
    fn ssh_overrides(&self, log: Option<&Path>) -> Vec<String> {
        match self.ssh.command(log) {
            Some(cmd) => vec![
                format!("core.sshCommand={cmd}"),
                "ssh.variant=ssh".to_owned(),
            ],
            None => Vec::new(),
        }
    }

    /// The time limit of each network operation and `git` command (`repo.timeout`).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Keeps only the last `depth` commits of the branch (a shallow clone).
    pub fn with_depth(mut self, depth: Option<NonZeroU32>) -> Self {
        self.depth = depth;
        self
    }

    /// Replaces the authentication (e.g. with a freshly minted installation token).
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// The URL, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The branch.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The secret parts of the authentication, to scrub from any text shown.
    fn secrets(&self) -> Vec<&str> {
        match &self.auth {
            Auth::Basic(c) if !c.password.expose().is_empty() => vec![c.password.expose()],
            _ => Vec::new(),
        }
    }
}

/// Magos's own clone of a remote branch, in a folder it owns.
#[derive(Debug, Clone)]
pub struct Checkout {
    dir: PathBuf,
    remote: Remote,
}

impl Checkout {
    /// The clone of `remote` in `dir` (created by the first [`Checkout::sync`]).
    pub fn new(dir: impl Into<PathBuf>, remote: Remote) -> Self {
        Self {
            dir: dir.into(),
            remote,
        }
    }

    /// The clone of `remote` in the state folder: `<state_dir>/repos/<name>-<hash>`.
    pub fn in_state_dir(state_dir: &Path, remote: Remote) -> Self {
        let dir = state_dir
            .join("repos")
            .join(url::clone_dir_name(remote.url()));
        Self::new(dir, remote)
    }

    /// The work tree.
    pub fn workdir(&self) -> &Path {
        &self.dir
    }

    /// The remote.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Replaces the authentication (e.g. after refreshing a token).
    pub fn set_auth(&mut self, auth: Auth) {
        self.remote.auth = auth;
    }

    /// Where ssh writes its messages during a clone or fetch (beside the
    /// clone), when Magos runs ssh itself.
    fn ssh_log(&self) -> Option<PathBuf> {
        self.remote.ssh.command(None)?;
        let mut name = self.dir.file_name().unwrap_or_default().to_os_string();
        name.push(".ssh.log");
        Some(self.dir.with_file_name(name))
    }

    /// A clone's or fetch's result; a failure is told by what ssh said when it
    /// said anything (a refused host key, a refused login). The ssh log is
    /// removed either way.
    fn with_ssh_said<T>(&self, result: Result<T, GitError>) -> Result<T, GitError> {
        let Some(log) = self.ssh_log() else {
            return result;
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        match result {
            Err(GitError::Clone { .. } | GitError::Fetch { .. }) if ssh_said(&text).is_some() => {
                Err(GitError::Ssh {
                    url: self.remote.url.clone(),
                    said: ssh_said(&text).unwrap_or_default(),
                })
            }
            other => other,
        }
    }

    /// Replaces every secret of the remote's authentication in `text`.
    fn scrub(&self, text: &str) -> String {
        let mut out = text.trim().to_owned();
        for secret in self.remote.secrets() {
            out = out.replace(secret, "<redacted>");
        }
        out
    }
}

/// The lines of an ssh log that say what went wrong (its banners of `@` and
/// advice dropped), the last three, at most 600 characters; `None` when it is empty.
fn ssh_said(log: &str) -> Option<String> {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('@'))
        .collect();
    let last = lines[lines.len().saturating_sub(3)..].join(" ");
    if last.is_empty() {
        return None;
    }
    Some(last.chars().take(600).collect())
}

/// Installs rustls's ring provider as the process default, once, so the HTTPS
/// transport (reqwest with rustls and no provider of its own) can start TLS.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means another provider was installed first; that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod ssh_tests {
    use super::*;

    #[test]
    fn no_ssh_option_leaves_the_users_own_ssh_setup() {
        assert_eq!(SshOptions::default().command(None), None);
    }

    #[test]
    fn the_ssh_command_offers_only_the_key_and_trusts_only_the_known_hosts() {
        let ssh = SshOptions {
            key: Some("/keys/it's key".into()),
            known_hosts: Some("/etc/magos/known_hosts".into()),
        };
        assert_eq!(
            ssh.command(Some(Path::new("/state/repos/r.ssh.log")))
                .unwrap(),
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -E '/state/repos/r.ssh.log' \
             -o IdentitiesOnly=yes -i '/keys/it'\\''s key' \
             -o UserKnownHostsFile='/etc/magos/known_hosts'"
        );
        let key_only = SshOptions {
            key: Some("/k".into()),
            known_hosts: None,
        };
        assert_eq!(
            key_only.command(None).unwrap(),
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -i '/k'"
        );
    }

    #[test]
    fn what_ssh_said_is_its_last_lines_without_banners() {
        let log = "@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
                   IT IS POSSIBLE\nOffending key in /k:1\n\
                   Host key for [127.0.0.1]:5022 has changed and you have requested strict checking.\n\
                   Host key verification failed.\n";
        assert_eq!(
            ssh_said(log).unwrap(),
            "Offending key in /k:1 Host key for [127.0.0.1]:5022 has changed and you have \
             requested strict checking. Host key verification failed."
        );
        assert_eq!(ssh_said("\n \n"), None);
    }
}
