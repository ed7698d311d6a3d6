//! Quadlet unit files on disk and the systemd manager that runs them.
//!
//! [`UnitDirs`] is the folder Magos owns, `~/.config/containers/systemd/magos/`
//! (`$XDG_CONFIG_HOME`; as root `/etc/containers/systemd/magos/`), one folder per
//! stack; files are written to a temporary name beside the target, synced and
//! renamed, so the generator never reads half a file. [`validate`] runs Podman's
//! generator in dry-run mode on a staged copy of a stack's files (nothing the
//! manager reads), so a file Quadlet refuses never reaches a `daemon-reload`.
//! [`Systemctl`] runs `systemctl [--user]`, each call within a time limit (its
//! process group killed on expiry).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::config::Env;
use crate::core::unitplan::service_of;

/// Where Podman installs its generator, in the order looked at.
pub const GENERATORS: [&str; 2] = ["/usr/libexec/podman/quadlet", "/usr/lib/podman/quadlet"];

/// What went wrong with unit files or the manager.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    /// A file-system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The generator refused a unit file.
    #[error("Podman's Quadlet generator refuses the units of stack `{stack}`: {message}")]
    Invalid {
        /// The stack.
        stack: String,
        /// What the generator said, with the real paths.
        message: String,
    },
    /// No generator is installed.
    #[error(
        "Podman's Quadlet generator is not installed (looked for {}); install Podman 5 (package podman)",
        GENERATORS.join(", ")
    )]
    NoGenerator,
    /// A command could not run or failed.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its status and the end of its error output.
        message: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> UnitError {
    let path = path.to_owned();
    move |source| UnitError::Io {
        action,
        path,
        source,
    }
}

/// Whether this process runs as root (the system manager's units).
pub fn is_root() -> bool {
    rustix::process::getuid().is_root()
}

/// The folder of Magos's unit files, one folder per stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitDirs {
    root: PathBuf,
    user: bool,
}

impl UnitDirs {
    /// `$XDG_CONFIG_HOME/containers/systemd/magos` (`~/.config/…`) for a user,
    /// `/etc/containers/systemd/magos` for root; `None` when a user has neither
    /// variable.
    pub fn from_env(env: &Env) -> Option<Self> {
        if is_root() {
            return Some(Self::at(
                PathBuf::from("/etc/containers/systemd/magos"),
                false,
            ));
        }
        let config = env
            .get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                env.get("HOME")
                    .map(|h| Path::new(h).join(".config"))
                    .filter(|p| p.is_absolute())
            })?;
        Some(Self::at(config.join("containers/systemd/magos"), true))
    }

    /// A folder at `root`; `user` says which manager reads it.
    pub fn at(root: PathBuf, user: bool) -> Self {
        Self { root, user }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the user's manager (not the system's) reads it.
    pub fn user(&self) -> bool {
        self.user
    }

    /// A stack's folder.
    pub fn stack_dir(&self, stack: &str) -> PathBuf {
        self.root.join(stack)
    }

    /// Every stack's unit files (name → text); files Quadlet does not read are
    /// left out. A missing folder is no stack.
    pub fn read_all(&self) -> Result<BTreeMap<String, BTreeMap<String, String>>, UnitError> {
        let mut out = BTreeMap::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io("cannot read", &self.root)(e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            out.insert(name.clone(), self.read_stack(&name)?);
        }
        Ok(out)
    }

    /// One stack's unit files (name → text).
    pub fn read_stack(&self, stack: &str) -> Result<BTreeMap<String, String>, UnitError> {
        let dir = self.stack_dir(stack);
        let mut files = BTreeMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
            Err(e) => return Err(io("cannot read", &dir)(e)),
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if service_of(&file).is_none() || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.path();
            let text = std::fs::read(&path).map_err(io("cannot read", &path))?;
            files.insert(file, String::from_utf8_lossy(&text).into_owned());
        }
        Ok(files)
    }

    /// Writes a stack's unit file atomically (a temporary name beside it,
    /// synced, renamed into place).
    pub fn write(&self, stack: &str, file: &str, text: &str) -> Result<(), UnitError> {
        let dir = self.stack_dir(stack);
        std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
        write_atomic(&dir.join(file), text.as_bytes())
    }

    /// Removes a stack's unit file, then its folder once empty.
    pub fn remove(&self, stack: &str, file: &str) -> Result<(), UnitError> {
        let dir = self.stack_dir(stack);
        let path = dir.join(file);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("cannot remove", &path)(e)),
        }
        // Not empty (another file, a drop-in folder): kept.
        let _ = std::fs::remove_dir(&dir);
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary file beside it.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), UnitError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".magos-tmp-")
        .tempfile_in(dir)
        .map_err(io("cannot create a temporary file in", dir))?;
    tmp.write_all(bytes)
        .map_err(io("cannot write", tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(io("cannot sync", tmp.path()))?;
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    std::fs::set_permissions(tmp.path(), mode).map_err(io("cannot set the mode of", path))?;
    tmp.persist(path)
        .map_err(|e| io("cannot rename into place", path)(e.error))?;
    Ok(())
}

/// The installed generator, if any.
pub fn generator() -> Option<PathBuf> {
    GENERATORS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Runs Podman's generator in dry-run mode on a staged copy of `files` (name →
/// text) and returns its warnings; an error names the stack's real folder.
pub fn validate(
    dirs: &UnitDirs,
    stack: &str,
    files: &BTreeMap<String, String>,
) -> Result<Vec<String>, UnitError> {
    let generator = generator().ok_or(UnitError::NoGenerator)?;
    let staged = tempfile::Builder::new()
        .prefix("magos-quadlet-")
        .tempdir()
        .map_err(io(
            "cannot create a staging folder in",
            &std::env::temp_dir(),
        ))?;
    for (name, text) in files {
        write_atomic(&staged.path().join(name), text.as_bytes())?;
    }
    let mut cmd = Command::new(&generator);
    cmd.arg("-dryrun").arg("-no-kmsg-log");
    if dirs.user() {
        cmd.arg("-user");
    }
    cmd.env("QUADLET_UNIT_DIRS", staged.path());
    let shown = format!("{} -dryrun", generator.display());
    let out = run_bounded(cmd, Duration::from_secs(30), &shown)?;
    let staged_path = staged.path().display().to_string();
    let real = dirs.stack_dir(stack).display().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&staged_path, &real);
    let said = |l: &&str| !l.contains("Loading source unit file");
    let lines: Vec<&str> = stderr.lines().filter(said).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("converting \"") || l.contains("rror"))
        .collect();
    if !out.status.success() || !errors.is_empty() {
        let message = if errors.is_empty() {
            format!("it {}: {}", out.status, lines.join(" | "))
        } else {
            errors.join(" | ")
        };
        return Err(UnitError::Invalid {
            stack: stack.to_owned(),
            message: strip_prefix(&message),
        });
    }
    Ok(lines
        .iter()
        .filter(|l| l.contains("Warning"))
        .map(|l| strip_prefix(l))
        .collect())
}

/// The message without the generator's `quadlet-generator[PID]: ` prefix.
fn strip_prefix(line: &str) -> String {
    line.split(" | ")
        .map(|l| match l.split_once("]: ") {
            Some((head, rest)) if head.starts_with("quadlet-generator[") => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Runs `cmd` with no input, its output captured, in a process group of its
/// own that is killed when `limit` passes.
fn run_bounded(mut cmd: Command, limit: Duration, shown: &str) -> Result<Output, UnitError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd.spawn().map_err(|e| UnitError::Command {
        command: shown.to_owned(),
        message: e.to_string(),
    })?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r.map_err(|e| UnitError::Command {
            command: shown.to_owned(),
            message: e.to_string(),
        }),
        Err(_) => {
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            Err(UnitError::Command {
                command: shown.to_owned(),
                message: format!("no answer within {}s (killed)", limit.as_secs()),
            })
        }
    }
}

/// `systemctl`, for the user's manager or the system's.
#[derive(Debug, Clone)]
pub struct Systemctl {
    user: bool,
    /// The time limit of one call that starts or stops units (a start waits
    /// for the unit to be ready: an image pull, a healthcheck).
    pub job_timeout: Duration,
}

impl Systemctl {
    /// The manager that reads `dirs`.
    pub fn for_dirs(dirs: &UnitDirs) -> Self {
        Self {
            user: dirs.user(),
            job_timeout: Duration::from_secs(600),
        }
    }

    fn run(&self, args: &[&str], limit: Duration) -> Result<String, UnitError> {
        let mut cmd = Command::new("systemctl");
        if self.user {
            cmd.arg("--user");
        }
        cmd.arg("--no-ask-password").args(args);
        let shown = format!(
            "systemctl{} {}",
            if self.user { " --user" } else { "" },
            args.join(" ")
        );
        let out = run_bounded(cmd, limit, &shown)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
        Err(UnitError::Command {
            command: shown,
            message: format!(
                "{}: {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        })
    }

    /// `daemon-reload`: the generator runs again over every unit folder.
    pub fn daemon_reload(&self) -> Result<(), UnitError> {
        self.run(&["daemon-reload"], Duration::from_secs(120))
            .map(drop)
    }

    /// `restart UNIT` (starts it when it is not running), waiting until it is
    /// ready.
    pub fn restart(&self, unit: &str) -> Result<(), UnitError> {
        self.run(&["restart", unit], self.job_timeout).map(drop)
    }

    /// `start UNIT`, waiting until it is ready.
    pub fn start(&self, unit: &str) -> Result<(), UnitError> {
        self.run(&["start", unit], self.job_timeout).map(drop)
    }

    /// `stop UNIT…`.
    pub fn stop(&self, units: &[String]) -> Result<(), UnitError> {
        if units.is_empty() {
            return Ok(());
        }
        let mut args = vec!["stop"];
        args.extend(units.iter().map(String::as_str));
        self.run(&args, self.job_timeout).map(drop)
    }

    /// One property of a unit (`ActiveState`), empty when unknown.
    pub fn property(&self, unit: &str, name: &str) -> Result<String, UnitError> {
        self.run(&["show", "-P", name, unit], Duration::from_secs(30))
            .map(|s| s.trim().to_owned())
    }

    /// Whether the manager answers (`systemctl [--user] is-system-running`
    /// says any state at all).
    pub fn reachable(&self) -> Result<String, UnitError> {
        let mut cmd = Command::new("systemctl");
        if self.user {
            cmd.arg("--user");
        }
        cmd.arg("is-system-running");
        let shown = format!(
            "systemctl{} is-system-running",
            if self.user { " --user" } else { "" }
        );
        let out = run_bounded(cmd, Duration::from_secs(30), &shown)?;
        let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        // It exits non-zero for `degraded` and the like; any known state means
        // the manager answered.
        if state.is_empty() || state == "offline" || state == "unknown" {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(UnitError::Command {
                command: shown,
                message: if stderr.is_empty() { state } else { stderr },
            });
        }
        Ok(state)
    }
}

/// `loginctl show-user USER -P Linger`: whether the user's manager runs
/// without a login session (and so starts at boot).
pub fn linger(user: &str) -> Result<bool, UnitError> {
    let mut cmd = Command::new("loginctl");
    cmd.args(["show-user", user, "-P", "Linger"]);
    let shown = format!("loginctl show-user {user} -P Linger");
    let out = run_bounded(cmd, Duration::from_secs(30), &shown)?;
    if !out.status.success() {
        return Err(UnitError::Command {
            command: shown,
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_read_and_removed_per_stack() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = UnitDirs::at(tmp.path().join("magos"), true);
        assert!(dirs.read_all().unwrap().is_empty());
        dirs.write("web", "web_a_1.container", "[Container]\n")
            .unwrap();
        std::fs::write(dirs.stack_dir("web").join("notes.txt"), "x").unwrap();
        let all = dirs.read_all().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            all["web"].keys().collect::<Vec<_>>(),
            ["web_a_1.container"],
            "only files Quadlet reads"
        );
        dirs.remove("web", "web_a_1.container").unwrap();
        assert!(dirs.read_stack("web").unwrap().is_empty());
        std::fs::remove_file(dirs.stack_dir("web").join("notes.txt")).unwrap();
        dirs.remove("web", "web_a_1.container").unwrap();
        assert!(!dirs.stack_dir("web").exists(), "an empty folder goes");
    }

    #[test]
    fn a_user_folder_is_under_the_config_home() {
        if is_root() {
            let dirs = UnitDirs::from_env(&Env::new()).unwrap();
            assert_eq!(dirs.root(), Path::new("/etc/containers/systemd/magos"));
            assert!(!dirs.user());
            return;
        }
        let env: Env = [("HOME".to_owned(), "/home/u".to_owned())].into();
        let dirs = UnitDirs::from_env(&env).unwrap();
        assert_eq!(
            dirs.root(),
            Path::new("/home/u/.config/containers/systemd/magos")
        );
    }

    /// The real generator: a good file passes, a bad key fails naming the
    /// real folder (skipped visibly where Podman is not installed).
    #[test]
    fn the_generator_judges_the_staged_files() {
        if generator().is_none() {
            eprintln!("skipped: Podman's Quadlet generator is not installed");
            return;
        }
        let dirs = UnitDirs::at(PathBuf::from("/srv/units/magos"), true);
        let good = BTreeMap::from([(
            "s_a_1.container".to_owned(),
            "[Container]\nImage=127.0.0.1:5000/x:1\nContainerName=s_a_1\n".to_owned(),
        )]);
        validate(&dirs, "s", &good).unwrap();
        let bad = BTreeMap::from([(
            "s_a_1.container".to_owned(),
            "[Container]\nImage=127.0.0.1:5000/x:1\nBogus=1\n".to_owned(),
        )]);
        let err = validate(&dirs, "s", &bad).unwrap_err().to_string();
        assert!(
            err.contains("Bogus") && err.contains("/srv/units/magos/s/s_a_1.container"),
            "{err}"
        );
    }
}
