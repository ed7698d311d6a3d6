//! One Magos at a time per clone: an exclusive lock on `<clone>.lock` beside
//! the clone, and, once it is held, the removal of the lock files a killed git
//! process left in the clone (which would otherwise block every later run).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Checkout, GitError};

/// How long the lock must stay taken before the clone counts as busy.
const BUSY_AFTER: Duration = Duration::from_secs(2);

/// Held while Magos works in the clone; released when dropped (or when the
/// process dies, since it is an OS lock).
#[derive(Debug)]
pub(super) struct CloneLock {
    _file: File,
}

/// `<clone>.lock`, beside the clone so that cleaning the work tree never touches it.
fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    dir.with_file_name(name)
}

impl Checkout {
    /// Takes the clone's lock, or fails at once if another process holds it.
    pub(super) fn lock(&self) -> Result<CloneLock, GitError> {
        let path = lock_path(&self.dir);
        let write_err = |source| GitError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(write_err)?;
        // A process forked by another thread of this program holds a copy of
        // a just-closed lock until it execs, for an instant: so "busy" is only
        // believed after it lasts.
        let deadline = Instant::now() + BUSY_AFTER;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(GitError::Busy {
                        dir: self.dir.clone(),
                    });
                }
                Err(TryLockError::Error(source)) => return Err(write_err(source)),
            }
        }
        self.remove_stale_git_locks()?;
        Ok(CloneLock { _file: file })
    }

    /// With the clone's lock held nobody else is using the clone, so any git
    /// lock file in it was left by a process that died.
    fn remove_stale_git_locks(&self) -> Result<(), GitError> {
        let git_dir = self.dir.join(".git");
        let mut stack = vec![git_dir.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir {
                    // Lock files live at the top and under refs/.
                    if path.starts_with(git_dir.join("refs")) || path == git_dir.join("refs") {
                        stack.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "lock") {
                    std::fs::remove_file(&path).map_err(|source| GitError::Write {
                        path: path.clone(),
                        source,
                    })?;
                    tracing::warn!(path = %path.display(), "removed a lock file left by an interrupted git process");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_clone() {
        assert_eq!(
            lock_path(Path::new("/s/repos/homelab-1234")),
            PathBuf::from("/s/repos/homelab-1234.lock")
        );
    }
}
