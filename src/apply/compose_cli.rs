//! The compose-CLI path: stacks that use keys Magos does not apply natively (or
//! that ask for it) are brought up with `podman-compose` (or `podman compose`),
//! pointed at the same Podman service Magos uses through `CONTAINER_HOST`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::Env;

use super::repo::Prepared;

/// Why the compose CLI failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// Neither `podman-compose` nor `podman` is on `PATH`.
    #[error(
        "the stack needs the compose CLI, but neither `podman-compose` nor `podman` is on PATH"
    )]
    NotFound,
    /// The command could not be run.
    #[error("cannot run `{command}`")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its error output.
        stderr: String,
    },
}

/// The compose command: a program and the arguments before the compose ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeCommand {
    /// The program.
    pub program: PathBuf,
    /// Leading arguments (`compose` for `podman compose`).
    pub prefix: Vec<String>,
}

impl ComposeCommand {
    /// `podman-compose` from `PATH`, else `podman compose`.
    pub fn find(env: &Env) -> Option<Self> {
        let path = env
            .get("PATH")
            .cloned()
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_owned());
        let lookup = |name: &str| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        };
        if let Some(p) = lookup("podman-compose") {
            return Some(Self {
                program: p,
                prefix: vec![],
            });
        }
        lookup("podman").map(|p| Self {
            program: p,
            prefix: vec!["compose".to_owned()],
        })
    }

    /// The full argument list for `args` on a stack.
    pub fn args(&self, stack: &Prepared, args: &[&str]) -> Vec<String> {
        let mut out = self.prefix.clone();
        out.push("-p".to_owned());
        out.push(stack.project.clone());
        for f in &stack.files {
            out.push("-f".to_owned());
            out.push(f.to_string_lossy().into_owned());
        }
        out.extend(args.iter().map(|a| (*a).to_owned()));
        out
    }
}

/// `up -d` for a stack, with `CONTAINER_HOST` set to `socket`.
pub async fn up(
    cmd: &ComposeCommand,
    socket: &Path,
    stack: &Prepared,
    env: &Env,
) -> Result<(), ComposeError> {
    run(cmd, socket, stack, env, &["up", "-d"]).await
}

async fn run(
    cmd: &ComposeCommand,
    socket: &Path,
    stack: &Prepared,
    env: &Env,
    args: &[&str],
) -> Result<(), ComposeError> {
    let argv = cmd.args(stack, args);
    let shown = format!("{} {}", cmd.program.display(), argv.join(" "));
    let mut c = Command::new(&cmd.program);
    c.args(&argv)
        .current_dir(&stack.abs_dir)
        .env_clear()
        .envs(env.iter().filter(|(k, _)| k.as_str() != "CONTAINER_HOST"))
        .env("CONTAINER_HOST", format!("unix://{}", socket.display()));
    tracing::info!(stack = %stack.project, command = %shown, "running the compose CLI");
    let output = tokio::task::spawn_blocking(move || c.output())
        .await
        .map_err(|e| ComposeError::Spawn {
            command: shown.clone(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(|source| ComposeError::Spawn {
            command: shown.clone(),
            source,
        })?;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        tracing::debug!(stack = %stack.project, "{line}");
    }
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(ComposeError::Failed {
        command: shown,
        status: output.status.to_string(),
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
    })
}
