//! Running the `git` program for the steps gitoxide does not do (work-tree
//! alignment, push), with a clean, non-interactive environment.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use super::{Auth, Checkout, GitError};

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
        cmd
    }

    /// Runs `cmd` to its end.
    pub(super) fn output(&self, mut cmd: Command) -> Result<Output, GitError> {
        cmd.output().map_err(|source| GitError::Spawn { source })
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
