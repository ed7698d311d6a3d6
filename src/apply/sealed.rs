//! SOPS-encrypted inputs of a stack, from the repository to the container.
//!
//! [`find`] runs while a stack is prepared and never decrypts: it reads the
//! ciphertexts, the variable names they set (names are never encrypted) and
//! their digests, which is all `plan`, `drift` and the config hash need.
//! [`open`] runs just before a stack is applied: it decrypts every input with the
//! age identities and verifies each MAC (one bad file fails the stack, before
//! anything is changed), writes the files containers mount into the private
//! runtime folder (`$XDG_RUNTIME_DIR/magos/secrets/<stack>/`, 0700/0600, tmpfs),
//! removes the stack's decrypted files it no longer uses, and returns the values
//! for the environment and for sealed `${VAR}` placeholders ([`Unsealed`]), which
//! only [`super::generate`] puts into what is sent to Podman.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroize as _;

use crate::core::convert::{EncryptedMount, EnvFile};
use crate::core::interpolate::Vars;
use crate::core::spec::{MountSpec, StackSpec};
use crate::secrets::keys::{IdentityCache, KeySources};
use crate::secrets::runtime::RuntimeDir;
use crate::secrets::{self, Format, Plaintext};

/// One encrypted file of a stack: where it is and its ciphertext, read once so
/// what is decrypted is what was hashed.
#[derive(Clone)]
struct Cipher {
    path: PathBuf,
    format: Format,
    text: Vec<u8>,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cipher({}, {})", self.path.display(), self.format)
    }
}

/// The encrypted inputs of a stack, found without decrypting anything.
#[derive(Debug, Clone, Default)]
pub struct Sealed {
    /// Encrypted `env_file`s, by their path relative to the stack's folder.
    env_files: BTreeMap<String, Cipher>,
    /// Per service, its encrypted `env_file`s in the order it lists them.
    service_env: BTreeMap<String, Vec<String>>,
    /// The stack's encrypted `.env`.
    dotenv: Option<Cipher>,
    /// Encrypted bind sources: the ciphertext and the runtime file name.
    mounts: BTreeMap<String, (Cipher, String)>,
}

impl Sealed {
    /// Whether the stack has no encrypted input.
    pub fn is_empty(&self) -> bool {
        self.env_files.is_empty() && self.dotenv.is_none() && self.mounts.is_empty()
    }

    /// The encrypted files, relative to `dir` where they are inside it.
    pub fn files(&self, dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = self
            .env_files
            .values()
            .chain(self.dotenv.as_ref())
            .chain(self.mounts.values().map(|(c, _)| c))
            .map(|c| {
                c.path
                    .strip_prefix(dir)
                    .unwrap_or(&c.path)
                    .display()
                    .to_string()
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Records the stack's encrypted `.env` (read by the repository edge).
    pub fn set_dotenv(&mut self, path: PathBuf, text: Vec<u8>) {
        self.dotenv = Some(Cipher {
            path,
            format: Format::Dotenv,
            text,
        });
    }
}

/// Reads an `env_file`: plain variables, or the names and digest of an encrypted
/// one (recorded in `sealed` for [`open`]).
pub fn env_file(
    dir: &Path,
    rel: &str,
    sealed: &mut Sealed,
    parse_plain: impl FnOnce(&str) -> EnvFile,
) -> EnvFile {
    let path = dir.join(rel);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => return EnvFile::Unreadable(format!("cannot read {}: {e}", path.display())),
    };
    let format = Format::for_path(&path);
    if !secrets::has_sops_marker(&bytes, format) {
        return match String::from_utf8(bytes) {
            Ok(text) => parse_plain(&text),
            Err(_) => EnvFile::Unreadable(format!("{} is not UTF-8 text", path.display())),
        };
    }
    match secrets::variable_names(&bytes, format) {
        Ok(names) => {
            let digest = secrets::ciphertext_digest(&bytes);
            sealed.env_files.insert(
                rel.to_owned(),
                Cipher {
                    path,
                    format,
                    text: bytes,
                },
            );
            EnvFile::Encrypted { names, digest }
        }
        Err(e) => EnvFile::Unreadable(format!("the SOPS-encrypted file cannot be read: {e}")),
    }
}

/// Records, per service, the encrypted `env_file`s it lists, in order.
pub fn service_env_files(sealed: &mut Sealed, service: &str, files: Vec<String>) {
    let files: Vec<String> = files
        .into_iter()
        .filter(|f| sealed.env_files.contains_key(f))
        .collect();
    if !files.is_empty() {
        sealed.service_env.insert(service.to_owned(), files);
    }
}

/// Bind sources larger than this are not looked at as SOPS files.
const MAX_SOPS_FILE: u64 = 4 * 1024 * 1024;

/// Finds the bind sources of `spec` that are SOPS-encrypted files and says where
/// their decrypted copies go. `runtime` is `None` when there is no runtime
/// folder, which is an error only if an encrypted file is mounted.
pub fn find_mounts(
    spec: &StackSpec,
    runtime: Option<&RuntimeDir>,
    sealed: &mut Sealed,
) -> Result<BTreeMap<String, EncryptedMount>, String> {
    let sources: BTreeSet<&str> = spec
        .services
        .iter()
        .flat_map(|s| &s.mounts)
        .filter_map(|m| match m {
            MountSpec::Bind { source, .. } => Some(source.as_str()),
            _ => None,
        })
        .collect();
    let mut out = BTreeMap::new();
    for source in sources {
        let path = Path::new(source);
        // A SOPS file is small; a large bind source (a database, media) is not
        // read every pass to find out.
        let small_file =
            std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= MAX_SOPS_FILE);
        if !small_file {
            continue;
        }
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let format = Format::for_path(path);
        if !secrets::has_sops_marker(&bytes, format) {
            continue;
        }
        let Some(runtime) = runtime else {
            return Err(format!(
                "{source} is SOPS-encrypted and is mounted, but there is no private runtime folder for its decrypted copy: XDG_RUNTIME_DIR is not set"
            ));
        };
        let name = runtime_name(source);
        let dir = runtime
            .stack_dir(&spec.project)
            .map_err(|e| e.to_string())?;
        out.insert(
            source.to_owned(),
            EncryptedMount {
                runtime_path: dir.join(&name).display().to_string(),
                digest: secrets::ciphertext_digest(&bytes),
            },
        );
        sealed.mounts.insert(
            source.to_owned(),
            (
                Cipher {
                    path: path.to_owned(),
                    format,
                    text: bytes,
                },
                name,
            ),
        );
    }
    Ok(out)
}

/// The decrypted copy's file name: the source's name, prefixed by a short digest
/// of its path so two files of the same name do not meet.
fn runtime_name(source: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let hash = hex::encode(Sha256::digest(source.as_bytes()));
    let base = Path::new(source)
        .file_name()
        .map_or_else(|| "file".to_owned(), |n| n.to_string_lossy().into_owned());
    format!("{}-{base}", &hash[..12])
}

/// Decrypted values for one stack: per service, the variables of its encrypted
/// env files, and the variables of its encrypted `.env` for sealed placeholders.
/// Prints `<redacted>`; wiped on drop.
#[derive(Default)]
pub struct Unsealed {
    /// Per service, the variables its encrypted `env_file`s set.
    pub env: BTreeMap<String, BTreeMap<String, String>>,
    /// The variables of the encrypted `.env`.
    pub vars: Vars,
}

impl fmt::Debug for Unsealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Unsealed({} services, {} variables, <redacted>)",
            self.env.len(),
            self.vars.len()
        )
    }
}

impl Drop for Unsealed {
    fn drop(&mut self) {
        for vars in self.env.values_mut().chain(std::iter::once(&mut self.vars)) {
            for v in vars.values_mut() {
                v.zeroize();
            }
        }
    }
}

/// Decrypts every encrypted input of `project` and writes its mounted files.
/// Errors name the file and never a value.
pub fn open(
    project: &str,
    sealed: &Sealed,
    runtime: Option<&RuntimeDir>,
    sources: &KeySources,
    cache: &mut IdentityCache,
) -> Result<Unsealed, String> {
    open_keeping(project, sealed, runtime, sources, cache, &BTreeSet::new())
}

/// [`open`], keeping the stack's runtime files named in `keep` besides the
/// decrypted mounts (the environment files of the `quadlet` runtime's units,
/// [`write_unit_env`]).
pub fn open_keeping(
    project: &str,
    sealed: &Sealed,
    runtime: Option<&RuntimeDir>,
    sources: &KeySources,
    cache: &mut IdentityCache,
    keep_also: &BTreeSet<String>,
) -> Result<Unsealed, String> {
    let mut out = Unsealed::default();
    let mut decrypt = |c: &Cipher| -> Result<secrets::Decrypted, String> {
        let recipient = secrets::recipients(&c.text, c.format)
            .ok()
            .and_then(|r| r.into_iter().next());
        let ids = cache
            .get(sources, recipient.as_deref())
            .map_err(|e| format!("cannot decrypt {}: {e}", c.path.display()))?;
        secrets::decrypt(&c.text, c.format, &ids)
            .map_err(|e| format!("cannot decrypt {}: {e}", c.path.display()))
    };
    let pairs = |c: &Cipher, d: &secrets::Decrypted| -> Result<Vars, String> {
        let mut vars = Vars::new();
        for (k, v) in d
            .env_pairs()
            .map_err(|e| format!("{}: {e}", c.path.display()))?
        {
            let Some(text) = v.expose_str() else {
                return Err(format!(
                    "{}: the variable {k} is not UTF-8 text",
                    c.path.display()
                ));
            };
            vars.insert(k, text.to_owned());
        }
        Ok(vars)
    };
    let mut files = BTreeMap::new();
    for (rel, c) in &sealed.env_files {
        let d = decrypt(c)?;
        files.insert(rel.as_str(), pairs(c, &d)?);
    }
    for (service, list) in &sealed.service_env {
        let env = out.env.entry(service.clone()).or_default();
        for rel in list {
            if let Some(vars) = files.get(rel.as_str()) {
                env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
    for vars in files.values_mut() {
        for v in vars.values_mut() {
            v.zeroize();
        }
    }
    if let Some(c) = &sealed.dotenv {
        let d = decrypt(c)?;
        out.vars = pairs(c, &d)?;
    }
    let mut written: Vec<(String, Plaintext)> = Vec::new();
    for (c, name) in sealed.mounts.values() {
        let d = decrypt(c)?;
        let plain = d
            .to_plaintext()
            .map_err(|e| format!("{}: {e}", c.path.display()))?;
        written.push((name.clone(), plain));
    }
    if let Some(runtime) = runtime {
        if written.is_empty() && keep_also.is_empty() {
            runtime.remove_stack(project).map_err(|e| e.to_string())?;
        } else {
            let keep: BTreeSet<&str> = written
                .iter()
                .map(|(n, _)| n.as_str())
                .chain(keep_also.iter().map(String::as_str))
                .collect();
            for (name, plain) in &written {
                write_if_changed(runtime, project, name, plain)?;
            }
            remove_others(runtime, project, &keep)?;
        }
    }
    Ok(out)
}

/// The name of a unit's environment file in the stack's runtime folder.
pub fn unit_env_name(container: &str) -> String {
    format!("{container}.env")
}

/// Writes the decrypted variables of one container as `KEY=value` lines (the
/// `--env-file` format a unit's `EnvironmentFile=` is read with) into the
/// stack's runtime folder, unless the same text is there already. A value with
/// a line break cannot be written that way and is an error naming the variable.
pub fn write_unit_env(
    runtime: &RuntimeDir,
    project: &str,
    container: &str,
    vars: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut text = String::new();
    for (k, v) in vars {
        if v.contains(['\n', '\r']) {
            text.zeroize();
            return Err(format!(
                "the encrypted variable {k} holds a line break, which a unit's environment file cannot carry"
            ));
        }
        text.push_str(k);
        text.push('=');
        text.push_str(v);
        text.push('\n');
    }
    let plain = Plaintext::new(text.into_bytes());
    write_if_changed(runtime, project, &unit_env_name(container), &plain)
}

/// Writes a decrypted file unless the same content is already there (a running
/// container keeps its file, and nothing is rewritten every pass).
fn write_if_changed(
    runtime: &RuntimeDir,
    project: &str,
    name: &str,
    plain: &Plaintext,
) -> Result<(), String> {
    let dir = runtime.stack_dir(project).map_err(|e| e.to_string())?;
    if let Ok(existing) = std::fs::read(dir.join(name)) {
        let same = existing == plain.expose();
        drop(Plaintext::new(existing));
        if same {
            return Ok(());
        }
    }
    runtime
        .write(project, name, plain)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Removes the stack's decrypted files that are no longer used.
fn remove_others(runtime: &RuntimeDir, project: &str, keep: &BTreeSet<&str>) -> Result<(), String> {
    let dir = runtime.stack_dir(project).map_err(|e| e.to_string())?;
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(name.as_str()) {
            std::fs::remove_file(entry.path())
                .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Removes the decrypted files of stacks that are no longer in the repository:
/// every stack folder of `runtime` not named in `keep`.
pub fn remove_gone(runtime: &RuntimeDir, keep: &BTreeSet<String>) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(runtime.root()) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        match runtime.remove_stack(&name) {
            Ok(()) => removed.push(name),
            Err(e) => tracing::warn!(stack = %name, "cannot remove decrypted files: {e}"),
        }
    }
    removed
}
