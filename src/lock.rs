//! One Magos at a time per state folder and per engine instance: `magos run`
//! (for its whole life) and `magos run --once` take two OS locks, `magos apply`
//! the second (`File::try_lock`, released by the kernel when the process dies,
//! however it dies), and each writes its pid into the lock file, so a second
//! Magos is refused with an error that names the holder.
//!
//! - `<state_dir>/magos.lock`: the clone, its pins and pushes belong to one
//!   daemon.
//! - `$XDG_RUNTIME_DIR/magos/locks/podman-<hash>.lock`, where the hash covers the
//!   engine's socket path (Podman's or Docker's) and the instance
//!   (`apply.instance`): two Magos with the same instance on one engine would
//!   apply and prune the same containers. Instances with different names may
//!   share an engine, as designed. Without
//!   `XDG_RUNTIME_DIR` this lock lives in the state folder instead.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Why the locks could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds one of them.
    #[error(
        "another Magos ({holder}) {what} (lock file {}); stop it first{hint}",
        path.display()
    )]
    Held {
        /// The lock file.
        path: PathBuf,
        /// `pid 1234`, or `pid unknown` when it has not written it yet.
        holder: String,
        /// What it holds, in words.
        what: String,
        /// What else can be done.
        hint: &'static str,
    },
    /// The lock file cannot be created or written.
    #[error("cannot take the lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The locks held; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct InstanceLock {
    _files: Vec<File>,
}

/// What to lock.
#[derive(Debug, Clone, Copy)]
pub struct LockTarget<'a> {
    /// The state folder (none when neither `state_dir` nor `HOME` is set).
    pub state_dir: Option<&'a Path>,
    /// Whether to lock the state folder itself (`magos run`), or only use it
    /// for the Podman lock when `runtime_dir` is unset (`magos apply`).
    pub lock_state: bool,
    /// `$XDG_RUNTIME_DIR`, if set.
    pub runtime_dir: Option<&'a Path>,
    /// The engine's socket Magos talks to.
    pub socket: &'a Path,
    /// The engine's name for messages: `Podman` or `Docker`.
    pub engine: &'a str,
    /// `apply.instance`.
    pub instance: &'a str,
}

/// The Podman lock's file name: the socket's path and the instance, hashed.
pub fn podman_lock_name(socket: &Path, instance: &str) -> String {
    let mut h = Sha256::new();
    h.update(socket.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(instance.as_bytes());
    let hex: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("podman-{hex}.lock")
}

/// Takes both locks, or fails at once naming the process that holds one.
pub fn acquire(target: LockTarget<'_>) -> Result<InstanceLock, LockError> {
    let mut files = Vec::new();
    if let Some(state) = target.state_dir.filter(|_| target.lock_state) {
        files.push(take(
            &state.join("magos.lock"),
            format!("uses the state folder {}", state.display()),
            ", or give this one another state_dir (MD_STATE_DIR)",
        )?);
    }
    let podman_dir = match (target.runtime_dir, target.state_dir) {
        (Some(runtime), _) => Some(runtime.join("magos").join("locks")),
        (None, Some(state)) => Some(state.join("locks")),
        (None, None) => None,
    };
    if let Some(dir) = podman_dir {
        files.push(take(
            &dir.join(podman_lock_name(target.socket, target.instance)),
            format!(
                "manages instance `{}` on the {} socket {}",
                target.instance,
                target.engine,
                target.socket.display()
            ),
            ", or give this one another apply.instance",
        )?);
    }
    Ok(InstanceLock { _files: files })
}

fn take(path: &Path, what: String, hint: &'static str) -> Result<File, LockError> {
    let io = |source| LockError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        create_private_dir(parent).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "pid unknown".to_owned(),
            };
            return Err(LockError::Held {
                path: path.to_owned(),
                holder,
                what,
                hint,
            });
        }
        Err(TryLockError::Error(source)) => return Err(io(source)),
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(file)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(state: &'a Path, runtime: Option<&'a Path>, instance: &'a str) -> LockTarget<'a> {
        LockTarget {
            state_dir: Some(state),
            lock_state: true,
            runtime_dir: runtime,
            socket: Path::new("/run/user/1000/podman/podman.sock"),
            engine: "Podman",
            instance,
        }
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let held = acquire(target(tmp.path(), None, "default")).unwrap();
        let err = acquire(target(tmp.path(), None, "default")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())) && text.contains("state folder"),
            "{text}"
        );
        drop(held);
        acquire(target(tmp.path(), None, "default")).unwrap();
    }

    #[test]
    fn one_podman_instance_per_runtime_dir_whatever_the_state_folder() {
        let (a, b, run) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let _held = acquire(target(a.path(), Some(run.path()), "default")).unwrap();
        let err = acquire(target(b.path(), Some(run.path()), "default"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("instance `default` on the Podman socket") && err.contains("pid "),
            "{err}"
        );
        // Another instance on the same Podman is welcome.
        acquire(target(b.path(), Some(run.path()), "other")).unwrap();
    }
}
