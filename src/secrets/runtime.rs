//! The private runtime folder for decrypted files:
//! `$XDG_RUNTIME_DIR/magos/secrets/<stack>/<name>`.
//!
//! `$XDG_RUNTIME_DIR` is a per-user tmpfs, so plaintext never reaches a disk.
//! Every folder on the way (`magos`, `secrets`, the stack's) is mode 0700 and
//! every file 0600; a file is written to a temporary name beside it and renamed
//! into place, so a reader never sees half a file. A stack's folder is removed
//! when the stack goes, and [`RuntimeDir::wipe_all`] removes whatever a crash left
//! behind, at start-up.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Env;

use super::Plaintext;

/// Why the runtime folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `XDG_RUNTIME_DIR` is not set (or not absolute).
    #[error(
        "XDG_RUNTIME_DIR is not set to an absolute path; decrypted files need a private runtime folder"
    )]
    NoRuntimeDir,
    /// A stack or file name cannot be used as a single path component.
    #[error("invalid {what} name `{name}`: it must be a single path component")]
    BadName {
        /// `stack` or `file`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A file-system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let path = path.to_owned();
    move |source| RuntimeError::Io {
        action,
        path,
        source,
    }
}

/// The `…/magos/secrets` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDir {
    root: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn check_name(what: &'static str, name: &str) -> Result<(), RuntimeError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.starts_with(".magos-tmp-");
    if bad {
        return Err(RuntimeError::BadName {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

impl RuntimeDir {
    /// `$XDG_RUNTIME_DIR/magos/secrets` from an environment snapshot.
    pub fn from_env(env: &Env) -> Result<Self, RuntimeError> {
        let base = env
            .get("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .ok_or(RuntimeError::NoRuntimeDir)?;
        Ok(Self::at(base.join("magos").join("secrets")))
    }

    /// A runtime folder at `root` (tests, or an explicit location).
    pub fn at(root: PathBuf) -> Self {
        Self { root }
    }

    /// The `…/magos/secrets` folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of `stack`.
    pub fn stack_dir(&self, stack: &str) -> Result<PathBuf, RuntimeError> {
        check_name("stack", stack)?;
        Ok(self.root.join(stack))
    }

    /// Writes `content` as `<stack>/<name>` (0600, atomically) and returns its
    /// path. Folders are created 0700 as needed.
    pub fn write(
        &self,
        stack: &str,
        name: &str,
        content: &Plaintext,
    ) -> Result<PathBuf, RuntimeError> {
        check_name("file", name)?;
        let dir = self.stack_dir(stack)?;
        if let Some(parent) = self.root.parent() {
            private_dir(parent)?;
        }
        private_dir(&self.root)?;
        private_dir(&dir)?;
        let target = dir.join(name);
        let tmp = dir.join(format!(
            ".magos-tmp-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = private_file(&tmp)?;
            f.write_all(content.expose())
                .map_err(io("cannot write", &tmp))?;
            f.sync_all().map_err(io("cannot sync", &tmp))?;
            std::fs::rename(&tmp, &target).map_err(io("cannot rename into place", &target))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| target)
    }

    /// Removes the folder of `stack` and everything in it; a missing folder is
    /// not an error.
    pub fn remove_stack(&self, stack: &str) -> Result<(), RuntimeError> {
        let dir = self.stack_dir(stack)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove", &dir)(e)),
        }
    }

    /// Removes every stack folder (leftovers of a crash), keeping the private
    /// `secrets` folder itself. Returns how many stack folders were removed.
    pub fn wipe_all(&self) -> Result<usize, RuntimeError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io("cannot list", &self.root)(e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(io("cannot list", &self.root))?;
            let path = entry.path();
            let ft = entry.file_type().map_err(io("cannot inspect", &path))?;
            if ft.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io("cannot remove", &path))?;
                removed += 1;
            } else {
                std::fs::remove_file(&path).map_err(io("cannot remove", &path))?;
            }
        }
        Ok(removed)
    }
}

/// Creates `dir` (0700) if needed and makes sure it is 0700.
fn private_dir(dir: &Path) -> Result<(), RuntimeError> {
    #[cfg(unix)]
    let builder = {
        use std::os::unix::fs::DirBuilderExt as _;
        let mut b = std::fs::DirBuilder::new();
        b.mode(0o700);
        b
    };
    #[cfg(not(unix))]
    let builder = std::fs::DirBuilder::new();
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("cannot create", dir)(e)),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::symlink_metadata(dir).map_err(io("cannot inspect", dir))?;
        if !meta.is_dir() {
            return Err(io("not a folder:", dir)(std::io::Error::other(
                "a non-folder is in the way",
            )));
        }
        if meta.permissions().mode() & 0o777 != 0o700 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io("cannot make private", dir))?;
        }
    }
    Ok(())
}

/// Creates a new file readable and writable by its owner only.
fn private_file(path: &Path) -> Result<std::fs::File, RuntimeError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts.open(path).map_err(io("cannot create", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        }
        #[cfg(not(unix))]
        {
            let _ = p;
            0
        }
    }

    #[test]
    fn from_env_needs_an_absolute_runtime_dir() {
        let mut env = Env::new();
        assert!(matches!(
            RuntimeDir::from_env(&env),
            Err(RuntimeError::NoRuntimeDir)
        ));
        env.insert("XDG_RUNTIME_DIR".into(), "relative".into());
        assert!(RuntimeDir::from_env(&env).is_err());
        env.insert("XDG_RUNTIME_DIR".into(), "/run/user/1000".into());
        assert_eq!(
            RuntimeDir::from_env(&env).unwrap().root(),
            Path::new("/run/user/1000/magos/secrets")
        );
    }

    #[test]
    fn write_creates_private_folders_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = RuntimeDir::at(tmp.path().join("magos").join("secrets"));
        let p = rt
            .write("web", "db_password", &Plaintext::new(b"s3cret".to_vec()))
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"s3cret");
        assert_eq!(p, tmp.path().join("magos/secrets/web/db_password"));
        if cfg!(unix) {
            assert_eq!(mode(&p), 0o600);
            assert_eq!(mode(&tmp.path().join("magos/secrets/web")), 0o700);
            assert_eq!(mode(&tmp.path().join("magos/secrets")), 0o700);
            assert_eq!(mode(&tmp.path().join("magos")), 0o700);
        }
        // Overwriting replaces the content; no temporary file stays behind.
        rt.write("web", "db_password", &Plaintext::new(b"new".to_vec()))
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("magos/secrets/web"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("db_password")]);
    }

    #[cfg(unix)]
    #[test]
    fn write_tightens_a_too_open_existing_folder() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("magos").join("secrets");
        std::fs::create_dir_all(root.join("web")).unwrap();
        std::fs::set_permissions(root.join("web"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let rt = RuntimeDir::at(root.clone());
        rt.write("web", "k", &Plaintext::new(b"v".to_vec()))
            .unwrap();
        assert_eq!(mode(&root.join("web")), 0o700);
    }

    #[test]
    fn names_must_be_single_components() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = RuntimeDir::at(tmp.path().join("s"));
        let v = Plaintext::new(b"x".to_vec());
        for bad in ["", ".", "..", "a/b", "../x", "a\\b", ".magos-tmp-1"] {
            assert!(
                matches!(rt.write("web", bad, &v), Err(RuntimeError::BadName { .. })),
                "{bad:?}"
            );
            assert!(
                matches!(rt.write(bad, "k", &v), Err(RuntimeError::BadName { .. })),
                "{bad:?}"
            );
        }
        assert!(!tmp.path().join("x").exists());
    }

    #[test]
    fn remove_stack_removes_only_that_stack() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = RuntimeDir::at(tmp.path().join("s"));
        let v = Plaintext::new(b"x".to_vec());
        rt.write("a", "k", &v).unwrap();
        rt.write("b", "k", &v).unwrap();
        rt.remove_stack("a").unwrap();
        assert!(!tmp.path().join("s/a").exists());
        assert!(tmp.path().join("s/b/k").exists());
        // Removing again, or a stack that never existed, is fine.
        rt.remove_stack("a").unwrap();
        rt.remove_stack("never").unwrap();
    }

    #[test]
    fn wipe_all_removes_leftovers_and_keeps_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = RuntimeDir::at(tmp.path().join("s"));
        assert_eq!(rt.wipe_all().unwrap(), 0, "a missing folder is fine");
        let v = Plaintext::new(b"x".to_vec());
        rt.write("a", "k", &v).unwrap();
        rt.write("b", "k", &v).unwrap();
        std::fs::create_dir_all(tmp.path().join("s/c/deep")).unwrap();
        std::fs::write(tmp.path().join("s/c/deep/f"), "x").unwrap();
        std::fs::write(tmp.path().join("s/stray"), "x").unwrap();
        assert_eq!(rt.wipe_all().unwrap(), 3);
        assert!(tmp.path().join("s").is_dir());
        assert_eq!(std::fs::read_dir(tmp.path().join("s")).unwrap().count(), 0);
    }
}
