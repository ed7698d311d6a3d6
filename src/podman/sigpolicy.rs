//! `verify_policy: write`: the files through which rootless Podman enforces
//! the `verify:` keys at pull. Podman (containers/image) reads
//! `$HOME/.config/containers/policy.json` when it exists, else
//! `/etc/containers/policy.json`; and the `*.yaml` files of
//! `$HOME/.config/containers/registries.d` when that folder exists, else those
//! of `/etc/containers/registries.d`. What the files say is decided in
//! [`crate::core::sigpolicy`]; this reads and writes them, atomically, and only
//! when their text changes.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::VerifyRule;
use crate::core::sigpolicy::{self, Requirement};

/// The name of Magos's own file in `registries.d`.
pub const REGISTRIES_D_FILE: &str = "magos.yaml";

/// Where Podman reads its signature configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPaths {
    /// The user's `policy.json`.
    pub policy: PathBuf,
    /// The system's, copied when the user has none.
    pub system_policy: PathBuf,
    /// The user's `registries.d`.
    pub registries_d: PathBuf,
    /// The system's, whose files are copied when the user's is made.
    pub system_registries_d: PathBuf,
}

impl PolicyPaths {
    /// Podman's paths for a user whose home folder is `home`.
    pub fn for_home(home: &Path) -> Self {
        let user = home.join(".config/containers");
        Self {
            policy: user.join("policy.json"),
            system_policy: PathBuf::from("/etc/containers/policy.json"),
            registries_d: user.join("registries.d"),
            system_registries_d: PathBuf::from("/etc/containers/registries.d"),
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The scopes now requiring signatures.
    pub scopes: Vec<String>,
    /// Per rule that could not be written, why.
    pub unwritten: Vec<String>,
    /// The files whose text changed (none when everything was in place).
    pub changed: Vec<PathBuf>,
    /// Scopes another `registries.d` file already defines (Podman refuses a
    /// scope defined twice): left to that file.
    pub left_to_others: Vec<String>,
}

/// A file that could not be read, understood or written.
#[derive(Debug, thiserror::Error)]
pub enum SignaturePolicyError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what Podman reads there.
    #[error(
        "{}: {message}; fix the file (Podman cannot read it either) or set verify_policy: off",
        path.display()
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SignaturePolicyError + '_ {
    move |source| SignaturePolicyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes the `sigstoreSigned` requirements of `rules` into the user's
/// `policy.json` (made from the system's when missing; the user's other rules
/// are kept) and `registries.d/magos.yaml` (the folder made from the system's
/// files when missing, so Podman's other settings stay as they were).
/// Writing again with the same rules changes nothing.
pub fn write(paths: &PolicyPaths, rules: &[VerifyRule]) -> Result<Written, SignaturePolicyError> {
    let keys: Vec<(Option<&str>, Option<&str>, String)> = rules
        .iter()
        .map(|r| {
            let key = std::path::absolute(&r.key).unwrap_or_else(|_| r.key.clone());
            (
                r.name.as_deref(),
                r.pattern.as_deref(),
                key.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let borrowed: Vec<(Option<&str>, Option<&str>, &str)> =
        keys.iter().map(|(n, p, k)| (*n, *p, k.as_str())).collect();
    let (requirements, unwritten) = sigpolicy::requirements(&borrowed);
    let mut changed = Vec::new();

    let user = read_optional(&paths.policy)?;
    let (source, base) = match &user {
        Some(text) => (&paths.policy, text.clone()),
        None => (
            &paths.system_policy,
            read_optional(&paths.system_policy)?
                .unwrap_or_else(|| sigpolicy::DEFAULT_POLICY.to_owned()),
        ),
    };
    let merged = sigpolicy::merge_policy(&base, &requirements).map_err(|message| {
        SignaturePolicyError::Invalid {
            path: source.clone(),
            message,
        }
    })?;
    if user.as_deref() != Some(merged.as_str()) {
        write_atomically(&paths.policy, merged.as_bytes())?;
        changed.push(paths.policy.clone());
    }

    let left_to_others = registries_d(paths, &requirements, &mut changed)?;
    Ok(Written {
        scopes: requirements.iter().map(|r| r.scope.clone()).collect(),
        unwritten,
        changed,
        left_to_others,
    })
}

/// Makes the user's `registries.d` (from the system's files) when missing and
/// writes Magos's file in it; returns the scopes other files define.
fn registries_d(
    paths: &PolicyPaths,
    requirements: &[Requirement],
    changed: &mut Vec<PathBuf>,
) -> Result<Vec<String>, SignaturePolicyError> {
    let dir = &paths.registries_d;
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for (name, text) in yaml_files(&paths.system_registries_d)? {
            let target = dir.join(&name);
            write_atomically(&target, text.as_bytes())?;
            changed.push(target);
        }
    }
    let mut taken = BTreeSet::new();
    for (name, text) in yaml_files(dir)? {
        if name == REGISTRIES_D_FILE {
            continue;
        }
        let path = dir.join(&name);
        let defined = sigpolicy::namespaces(&text)
            .map_err(|message| SignaturePolicyError::Invalid { path, message })?;
        taken.extend(defined);
    }
    let ours = dir.join(REGISTRIES_D_FILE);
    let text = sigpolicy::registries_d(requirements, &taken);
    if read_optional(&ours)?.as_deref() != Some(text.as_str()) {
        write_atomically(&ours, text.as_bytes())?;
        changed.push(ours.clone());
    }
    Ok(requirements
        .iter()
        .filter(|r| taken.contains(&r.scope))
        .map(|r| r.scope.clone())
        .collect())
}

/// The `*.yaml` files of `dir` (none when it does not exist), by name.
fn yaml_files(dir: &Path) -> Result<Vec<(String, String)>, SignaturePolicyError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") {
            continue;
        }
        let path = entry.path();
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        out.push((name, text));
    }
    out.sort();
    Ok(out)
}

fn read_optional(path: &Path) -> Result<Option<String>, SignaturePolicyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes `contents` to a temporary file beside `target` and renames it over
/// it: Podman never reads half a file. A new file is readable by all (as
/// Podman's own configuration files); an existing one keeps its mode.
fn write_atomically(target: &Path, contents: &[u8]) -> Result<(), SignaturePolicyError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".magos-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io(target))?;
    tmp.write_all(contents).map_err(io(target))?;
    tmp.as_file().sync_all().map_err(io(target))?;
    let permissions = match std::fs::metadata(target) {
        Ok(meta) => meta.permissions(),
        Err(_) => {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::Permissions::from_mode(0o644)
        }
    };
    std::fs::set_permissions(tmp.path(), permissions).map_err(io(target))?;
    tmp.persist(target).map_err(|e| io(target)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(root: &Path) -> PolicyPaths {
        PolicyPaths {
            policy: root.join("home/.config/containers/policy.json"),
            system_policy: root.join("etc/policy.json"),
            registries_d: root.join("home/.config/containers/registries.d"),
            system_registries_d: root.join("etc/registries.d"),
        }
    }

    fn rules(root: &Path) -> Vec<VerifyRule> {
        vec![VerifyRule {
            name: None,
            pattern: Some("ghcr.io/me/*".into()),
            key: root.join("me.pub"),
        }]
    }

    #[test]
    fn the_files_are_made_from_the_systems_and_a_second_write_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        std::fs::create_dir_all(&p.system_registries_d).unwrap();
        std::fs::write(&p.system_policy, r#"{"default": [{"type": "reject"}]}"#).unwrap();
        std::fs::write(
            p.system_registries_d.join("default.yaml"),
            "docker:\n  quay.io:\n    lookaside: https://example.org/sigs\n",
        )
        .unwrap();
        let w = write(&p, &rules(tmp.path())).unwrap();
        assert_eq!(w.scopes, ["ghcr.io/me"]);
        assert_eq!(w.changed.len(), 3, "{:?}", w.changed);
        let policy: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p.policy).unwrap()).unwrap();
        assert_eq!(
            policy["default"][0]["type"], "reject",
            "the system's rules kept"
        );
        assert_eq!(
            policy["transports"]["docker"]["ghcr.io/me"][0]["keyPath"],
            tmp.path().join("me.pub").to_str().unwrap()
        );
        assert!(p.registries_d.join("default.yaml").is_file(), "copied");
        let ours = std::fs::read_to_string(p.registries_d.join(REGISTRIES_D_FILE)).unwrap();
        assert!(ours.contains("\"ghcr.io/me\":\n    use-sigstore-attachments: true"));

        let again = write(&p, &rules(tmp.path())).unwrap();
        assert!(again.changed.is_empty(), "{:?}", again.changed);
    }

    #[test]
    fn a_broken_policy_is_an_error_naming_the_file_and_nothing_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        std::fs::create_dir_all(p.policy.parent().unwrap()).unwrap();
        std::fs::write(&p.policy, "{\"default\": [\n").unwrap();
        let e = write(&p, &rules(tmp.path())).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: line 2", p.policy.display())),
            "{e}"
        );
        assert!(e.contains("verify_policy: off"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&p.policy).unwrap(),
            "{\"default\": [\n"
        );
        assert!(!p.registries_d.exists());
    }

    #[test]
    fn a_scope_another_registries_d_file_defines_is_left_to_it() {
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        std::fs::create_dir_all(&p.registries_d).unwrap();
        std::fs::write(
            p.registries_d.join("mine.yaml"),
            "docker:\n  ghcr.io/me:\n    use-sigstore-attachments: true\n",
        )
        .unwrap();
        let w = write(&p, &rules(tmp.path())).unwrap();
        assert_eq!(w.left_to_others, ["ghcr.io/me"]);
        let ours = std::fs::read_to_string(p.registries_d.join(REGISTRIES_D_FILE)).unwrap();
        assert!(ours.ends_with("docker: {}\n"), "{ours}");

        std::fs::write(p.registries_d.join("bad.yaml"), "docker: [\n").unwrap();
        let e = write(&p, &rules(tmp.path())).unwrap_err().to_string();
        assert!(e.contains("bad.yaml"), "{e}");
    }
}
