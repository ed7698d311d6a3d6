//! The compose-CLI path: stacks that use keys Magos does not apply natively (or
//! that ask for it) are brought up with `podman-compose` (or `podman compose`),
//! pointed at the same Podman service Magos uses through `CONTAINER_HOST`.
//!
//! `podman-compose` carries on when a pull, a create or a start fails and may
//! still exit 0, so its exit status is not believed alone: after it returns,
//! [`verify`] asks Podman whether every service of the stack has a container
//! that runs (or ran to completion, exit 0), and fails the stack naming each
//! service that has not.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::Env;
use crate::core::spec::{LABEL_PROJECT, LABEL_SERVICE};
use crate::podman::wire::ListContainer;
use crate::podman::{Client, ContainerFilters, PodmanError};

use super::prepared::Prepared;

/// Why the compose CLI failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// Neither `podman-compose` nor `podman` is on `PATH`.
    #[error(
        "the stack needs the compose CLI, but neither `podman-compose` nor `podman` is on PATH"
    )]
    NotFound,
    /// Neither `docker-compose` nor `docker` (with its compose plugin) is on
    /// `PATH` (runtime `docker`).
    #[error(
        "the stack needs the compose CLI, but neither `docker-compose` nor `docker` (with the compose plugin) is on PATH"
    )]
    DockerNotFound,
    /// The command could not be run.
    #[error("cannot run `{command}`")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command exited 0 but services are not up.
    #[error("the compose CLI exited 0, but {}", services.join("; "))]
    NotUp {
        /// One phrase per service that is not up.
        services: Vec<String>,
    },
    /// Podman could not be asked what the compose CLI did.
    #[error("cannot list the containers of stack `{project}`")]
    Verify {
        /// The stack.
        project: String,
        /// Why.
        #[source]
        source: PodmanError,
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
        Self::find_on_path(env, "podman-compose", "podman")
    }

    /// `docker-compose` (v1, or v2 as Debian packages it), else `docker
    /// compose` (the v2 plugin), on `PATH` as `env` gives it.
    pub fn find_docker(env: &Env) -> Option<Self> {
        Self::find_on_path(env, "docker-compose", "docker")
    }

    /// The program `standalone` on `env`'s `PATH`, else `engine compose`.
    fn find_on_path(env: &Env, standalone: &str, engine: &str) -> Option<Self> {
        let path = env
            .get("PATH")
            .cloned()
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_owned());
        let lookup = |name: &str| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        };
        if let Some(p) = lookup(standalone) {
            return Some(Self {
                program: p,
                prefix: vec![],
            });
        }
        lookup(engine).map(|p| Self {
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
        // The active profiles (podman-compose does not read `COMPOSE_PROFILES`).
        for p in &stack.profiles {
            out.push("--profile".to_owned());
            out.push(p.clone());
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
    run(cmd, "CONTAINER_HOST", socket, stack, env, &["up", "-d"]).await
}

/// [`up`] for `docker compose`, pointed at the engine through `DOCKER_HOST`.
pub async fn up_docker(
    cmd: &ComposeCommand,
    socket: &Path,
    stack: &Prepared,
    env: &Env,
) -> Result<(), ComposeError> {
    run(cmd, "DOCKER_HOST", socket, stack, env, &["up", "-d"]).await
}

/// Checks what the compose CLI did: every service of `stack` must have a
/// container that runs, or that exited with code 0 (a one-shot service).
pub async fn verify(client: &Client, stack: &Prepared) -> Result<(), ComposeError> {
    let containers = client
        .list_containers(&ContainerFilters::labelled([format!(
            "{LABEL_PROJECT}={}",
            stack.project
        )]))
        .await
        .map_err(|source| ComposeError::Verify {
            project: stack.project.clone(),
            source,
        })?;
    let services: Vec<&str> = stack
        .spec
        .services
        .iter()
        .map(|s| s.service.as_str())
        .collect();
    let services = not_up(&services, &containers);
    if services.is_empty() {
        Ok(())
    } else {
        Err(ComposeError::NotUp { services })
    }
}

/// One phrase per service without a container that runs or completed.
fn not_up(services: &[&str], containers: &[ListContainer]) -> Vec<String> {
    services
        .iter()
        .filter_map(|service| {
            let mine: Vec<&ListContainer> = containers
                .iter()
                .filter(|c| c.labels.get(LABEL_SERVICE).map(String::as_str) == Some(*service))
                .collect();
            let up = |c: &&ListContainer| {
                c.state == "running" || (c.state == "exited" && c.exit_code == 0)
            };
            if mine.iter().any(up) {
                return None;
            }
            Some(match mine.first() {
                None => format!("service `{service}` has no container"),
                Some(c) if c.state == "exited" => format!(
                    "service `{service}`: container `{}` exited with code {}",
                    c.names.first().map_or("", String::as_str),
                    c.exit_code
                ),
                Some(c) => format!(
                    "service `{service}`: container `{}` is {}",
                    c.names.first().map_or("", String::as_str),
                    c.state
                ),
            })
        })
        .collect()
}

async fn run(
    cmd: &ComposeCommand,
    host_var: &str,
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
        .envs(env.iter().filter(|(k, _)| k.as_str() != host_var))
        .env(host_var, format!("unix://{}", socket.display()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn container(service: &str, state: &str, exit_code: i32) -> ListContainer {
        ListContainer {
            names: vec![format!("p_{service}_1")],
            labels: [(LABEL_SERVICE.to_owned(), service.to_owned())].into(),
            state: state.to_owned(),
            exit_code,
            ..ListContainer::default()
        }
    }

    #[test]
    fn a_service_is_up_when_it_runs_or_completed() {
        let containers = [
            container("web", "running", 0),
            container("migrate", "exited", 0),
            container("broken", "exited", 3),
            container("stuck", "created", 0),
        ];
        assert_eq!(
            not_up(
                &["web", "migrate", "broken", "stuck", "absent"],
                &containers
            ),
            [
                "service `broken`: container `p_broken_1` exited with code 3",
                "service `stuck`: container `p_stuck_1` is created",
                "service `absent` has no container",
            ]
        );
    }
}
