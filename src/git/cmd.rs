//! Running the `git` program for the steps gitoxide does not do (work-tree
//! alignment, push), with a clean, non-interactive environment, a time limit
//! (`repo.timeout`) and in a process group of its own, so that the whole group
//! (`git` and the helpers it starts, such as `git-remote-https`) is killed when
//! the limit runs out or when Magos stops ([`stop_all`]).

use std::collections::BTreeSet;
use std::ffi::OsStr;
#[cfg(unix)]
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};

use super::{Auth, Checkout, GitError};

/// The process groups of the `git` children running now (each child leads its
/// own group, so its id is the group's id).
static RUNNING: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Set by [`stop_all`]: no `git` child starts any more.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Ends every `git` child of this process (SIGKILL to each one's process
/// group) and refuses to start new ones: the daemon calls it on SIGTERM/SIGINT,
/// so a push that never answers cannot hold the shutdown and no `git` outlives
/// Magos. The operations under way fail with [`GitError::Stopped`] or with the
/// killed command's error; gitoxide fetches are told to stop as well.
pub fn stop_all() {
    let running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    STOPPING.store(true, Ordering::Release);
    for &pgid in running.iter() {
        kill_group(pgid);
    }
}

/// Whether [`stop_all`] was called.
pub(super) fn stopping() -> bool {
    STOPPING.load(Ordering::Acquire)
}

/// SIGKILL to the process group `pgid`. An error means the group is already
/// gone, which is what is wanted.
#[cfg(unix)]
fn kill_group(pgid: u32) {
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
        tracing::debug!(pgid, error = %e, "cannot kill a git process group (already gone?)");
    }
}

/// Variables that would point `git` at another repository or make it prompt.
const CLEARED_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_COMMON_DIR",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
];

/// The environment variables the push credential helper reads.
const USER_VAR: &str = "MAGOS_GIT_USERNAME";
const PASSWORD_VAR: &str = "MAGOS_GIT_PASSWORD";

/// A credential helper that answers `get` from the two variables above and
/// ignores `store`/`erase`, so nothing is ever saved. The helper text holds
/// only variable names, never a value.
const HELPER: &str = "!f() { test \"$1\" = get || exit 0; \
     printf 'username=%s\\npassword=%s\\n' \"$MAGOS_GIT_USERNAME\" \"$MAGOS_GIT_PASSWORD\"; }; f";

/// Elsewhere a child is not in a group of its own: it is left to end.
#[cfg(not(unix))]
fn kill_group(_pgid: u32) {}

impl Checkout {
    /// A `git` command in the clone, non-interactive, with messages in English
    /// (their wording is matched), and the remote's credentials (if any) given to
    /// this one process through a credential helper that reads its environment.
    pub(super) fn git<I, S>(&self, args: I, with_auth: bool) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        for var in CLEARED_VARS {
            cmd.env_remove(var);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "")
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C")
            .arg("-C")
            .arg(&self.dir);
        if let Some(ssh) = self.remote.ssh.command(None) {
            // Paths only (the key's file, the known hosts); read by git's ssh transport.
            cmd.env("GIT_SSH_COMMAND", ssh);
        }
        if with_auth && let Auth::Basic(creds) = &self.remote.auth {
            // The empty value first drops every configured helper.
            cmd.args(["-c", "credential.helper=", "-c"])
                .arg(format!("credential.helper={HELPER}"))
                .env(USER_VAR, &creds.username)
                .env(PASSWORD_VAR, creds.password.expose());
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A group of its own: killing it ends the helpers git started too.
        #[cfg(unix)]
        cmd.process_group(0);
        cmd
    }

    /// Runs `cmd` to its end, or until `repo.timeout` runs out: then its whole
    /// process group is killed and the answer is [`GitError::Timeout`].
    pub(super) fn output(&self, mut cmd: Command) -> Result<Output, GitError> {
        let command = cmd
            .get_args()
            .skip_while(|a| *a != OsStr::new("-C"))
            .skip(2)
            .filter(|a| !a.to_string_lossy().starts_with("credential.helper"))
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let child = {
            // Spawned and recorded under the lock, so `stop_all` sees every child.
            let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
            if stopping() {
                return Err(GitError::Stopped { command });
            }
            let child = cmd.spawn().map_err(|source| GitError::Spawn { source })?;
            running.insert(child.id());
            child
        };
        let pgid = child.id();
        let (tx, rx) = mpsc::channel();
        // The waiter reads both pipes to their end and reaps the child; the pipes
        // close when the whole group is gone.
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let limit = self.remote.timeout;
        let answer = match rx.recv_timeout(limit) {
            Ok(done) => done.map_err(|source| GitError::Spawn { source }),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // The leader is not reaped yet, so the group id is still its own.
                kill_group(pgid);
                #[cfg(unix)]
                let _ = rx.recv();
                tracing::warn!(command, dir = %self.dir.display(), limit = ?limit, "git did not finish in time; killed");
                Err(GitError::Timeout {
                    command: command.clone(),
                    dir: self.dir.clone(),
                    after: limit,
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(GitError::Spawn {
                source: std::io::Error::other("the git waiter thread ended without an answer"),
            }),
        };
        RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&pgid);
        match answer {
            Ok(out) if stopping() && !out.status.success() => Err(GitError::Stopped { command }),
            other => other,
        }
    }

    /// Runs a `git` command that must succeed.
    pub(super) fn run_git(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.output(self.git(args, false))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(GitError::Command {
                command: args.join(" "),
                dir: self.dir.clone(),
                stderr: self.scrub(&String::from_utf8_lossy(&out.stderr)),
            })
        }
    }
}
