//! Finding age identities the way sops does.
//!
//! sops reads every source it finds and combines their identities:
//! `SOPS_AGE_KEY` (identities separated by white space or lines),
//! `SOPS_AGE_KEY_FILE` (here the `secrets.age_key_file` setting, which that
//! variable sets), the output of `SOPS_AGE_KEY_CMD` (run with
//! `SOPS_AGE_RECIPIENT` set to the file's recipient), and
//! `<user config dir>/sops/age/keys.txt` when it exists. A source that fails is
//! reported, and decryption goes on with the others; only when no identity is
//! found at all is that an error. Identity files are one identity per line, with
//! `#` comments and blank lines skipped. Only native X25519 identities
//! (`AGE-SECRET-KEY-1…`) are supported: plugin and post-quantum identities and
//! passphrase-protected identity files are refused with a message, and SSH keys
//! (`SOPS_AGE_SSH_PRIVATE_KEY_FILE`, `~/.ssh/id_ed25519`) are not used.
//!
//! [`KeySources::from_env`] takes the environment snapshot; [`KeySources::load`]
//! is the edge that reads files and runs the command. [`parse_identities`] is pure.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::{Env, Secret};

use super::Identities;

/// The variables sops reads.
pub const SOPS_AGE_KEY: &str = "SOPS_AGE_KEY";
/// See [`SOPS_AGE_KEY`].
pub const SOPS_AGE_KEY_FILE: &str = "SOPS_AGE_KEY_FILE";
/// See [`SOPS_AGE_KEY`].
pub const SOPS_AGE_KEY_CMD: &str = "SOPS_AGE_KEY_CMD";
/// Set for `SOPS_AGE_KEY_CMD`: the recipient whose identity is wanted.
pub const SOPS_AGE_RECIPIENT: &str = "SOPS_AGE_RECIPIENT";

/// Why an age identity source could not be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An identity file could not be read.
    #[error("cannot read age identity file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a source is not a supported identity.
    #[error("{location}: line {line}: {message}")]
    BadIdentity {
        /// The source (file path or variable).
        location: String,
        /// 1-based line.
        line: usize,
        /// What is wrong (never the line's text).
        message: String,
    },
    /// `SOPS_AGE_KEY_CMD` could not be split into words.
    #[error("{SOPS_AGE_KEY_CMD}: cannot split the command into words")]
    BadCommand,
    /// `SOPS_AGE_KEY_CMD` could not be run.
    #[error("{SOPS_AGE_KEY_CMD}: cannot run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `SOPS_AGE_KEY_CMD` failed.
    #[error("{SOPS_AGE_KEY_CMD}: `{program}` exited with {status}")]
    CommandFailed {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
    },
    /// No source gave an identity.
    #[error("no age identity found (looked in {looked}){}", if errors.is_empty() { String::new() } else { format!("; {errors}") })]
    NoneFound {
        /// The sources that were looked at.
        looked: String,
        /// The errors met, joined.
        errors: String,
    },
}

/// Where age identities may come from, resolved from an environment snapshot.
#[derive(Clone, Default)]
pub struct KeySources {
    /// `SOPS_AGE_KEY`.
    pub age_key: Option<Secret>,
    /// `SOPS_AGE_KEY_FILE` / `secrets.age_key_file`.
    pub age_key_file: Option<PathBuf>,
    /// `SOPS_AGE_KEY_CMD`.
    pub age_key_cmd: Option<String>,
    /// `<user config dir>/sops/age/keys.txt`, read when it exists.
    pub user_keys_file: Option<PathBuf>,
}

impl fmt::Debug for KeySources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySources")
            .field("age_key", &self.age_key.as_ref().map(|_| "<redacted>"))
            .field("age_key_file", &self.age_key_file)
            .field("age_key_cmd", &self.age_key_cmd.as_ref().map(|_| "<set>"))
            .field("user_keys_file", &self.user_keys_file)
            .finish()
    }
}

/// Go's `os.UserConfigDir` (with sops's `XDG_CONFIG_HOME` preference on macOS).
pub fn user_config_dir(env: &Env) -> Option<PathBuf> {
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if cfg!(windows) {
        return get("APPDATA");
    }
    if let Some(x) = get("XDG_CONFIG_HOME").filter(|p| cfg!(target_os = "macos") || p.is_absolute())
    {
        return Some(x);
    }
    let home = get("HOME")?;
    if cfg!(target_os = "macos") {
        Some(home.join("Library/Application Support"))
    } else {
        Some(home.join(".config"))
    }
}

impl KeySources {
    /// The sources named by `env`; `age_key_file` is the `secrets.age_key_file`
    /// setting (which `SOPS_AGE_KEY_FILE` sets through the configuration).
    pub fn from_env(env: &Env, age_key_file: Option<&Path>) -> Self {
        Self {
            age_key: env.get(SOPS_AGE_KEY).map(|v| Secret::new(v.clone())),
            age_key_file: age_key_file
                .map(Path::to_owned)
                .or_else(|| env.get(SOPS_AGE_KEY_FILE).map(PathBuf::from)),
            age_key_cmd: env.get(SOPS_AGE_KEY_CMD).cloned(),
            user_keys_file: user_config_dir(env)
                .map(|d| d.join("sops").join("age").join("keys.txt")),
        }
    }

    /// Reads every source; `recipient` is passed to `SOPS_AGE_KEY_CMD`. Returns
    /// the identities and the errors of sources that failed, or an error when no
    /// identity was found at all.
    pub fn load(&self, recipient: Option<&str>) -> Result<(Identities, Vec<KeyError>), KeyError> {
        let mut ids = Identities::new();
        let mut errors = Vec::new();
        let mut looked = Vec::new();
        if let Some(key) = &self.age_key {
            looked.push(SOPS_AGE_KEY.to_owned());
            match parse_identities(key.expose(), SOPS_AGE_KEY, true) {
                Ok(found) => ids.extend(found),
                Err(e) => errors.push(e),
            }
        }
        if let Some(path) = &self.age_key_file {
            looked.push(path.display().to_string());
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let text = zeroize::Zeroizing::new(text);
                    match parse_identities(&text, &path.display().to_string(), false) {
                        Ok(found) => ids.extend(found),
                        Err(e) => errors.push(e),
                    }
                }
                Err(source) => errors.push(KeyError::Read {
                    path: path.clone(),
                    source,
                }),
            }
        }
        if let Some(cmd) = &self.age_key_cmd {
            looked.push(SOPS_AGE_KEY_CMD.to_owned());
            match run_key_cmd(cmd, recipient) {
                Ok(out) => match parse_identities(&out, SOPS_AGE_KEY_CMD, false) {
                    Ok(found) => ids.extend(found),
                    Err(e) => errors.push(e),
                },
                Err(e) => errors.push(e),
            }
        }
        if let Some(path) = &self.user_keys_file {
            looked.push(path.display().to_string());
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let text = zeroize::Zeroizing::new(text);
                    match parse_identities(&text, &path.display().to_string(), false) {
                        Ok(found) => ids.extend(found),
                        Err(e) => errors.push(e),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => errors.push(KeyError::Read {
                    path: path.clone(),
                    source,
                }),
            }
        }
        if ids.is_empty() {
            return Err(KeyError::NoneFound {
                looked: if looked.is_empty() {
                    format!(
                        "{SOPS_AGE_KEY}, {SOPS_AGE_KEY_FILE}, {SOPS_AGE_KEY_CMD}, <config dir>/sops/age/keys.txt: none set"
                    )
                } else {
                    looked.join(", ")
                },
                errors: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        Ok((ids, errors))
    }
}

fn run_key_cmd(cmd: &str, recipient: Option<&str>) -> Result<zeroize::Zeroizing<String>, KeyError> {
    let words = shlex::split(cmd)
        .filter(|w| !w.is_empty())
        .ok_or(KeyError::BadCommand)?;
    let program = words[0].clone();
    let mut command = Command::new(&program);
    command
        .args(&words[1..])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(r) = recipient {
        command.env(SOPS_AGE_RECIPIENT, r);
    }
    let output = command.output().map_err(|source| KeyError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stdout = zeroize::Zeroizing::new(output.stdout);
    if !output.status.success() {
        return Err(KeyError::CommandFailed {
            program,
            status: output.status.to_string(),
        });
    }
    Ok(zeroize::Zeroizing::new(
        String::from_utf8_lossy(&stdout).into_owned(),
    ))
}

/// Parses identities: one a line (or, with `several_per_line`, separated by any
/// white space), skipping blank lines and `#` comments. `location` names the
/// source in errors; a line's text is never quoted.
pub fn parse_identities(
    text: &str,
    location: &str,
    several_per_line: bool,
) -> Result<Identities, KeyError> {
    let mut ids = Identities::new();
    if text
        .trim_start()
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
        || text.starts_with("age-encryption.org/")
    {
        return Err(KeyError::BadIdentity {
            location: location.to_owned(),
            line: 1,
            message: "passphrase-protected identity files are not supported".into(),
        });
    }
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = if several_per_line {
            line.split_whitespace().collect()
        } else {
            vec![line.trim()]
        };
        for word in words {
            let bad = |message: &str| KeyError::BadIdentity {
                location: location.to_owned(),
                line: i + 1,
                message: message.to_owned(),
            };
            if word.starts_with("AGE-PLUGIN-") {
                return Err(bad("age plugin identities are not supported"));
            }
            if word.starts_with("AGE-SECRET-KEY-PQ-1") {
                return Err(bad("post-quantum age identities are not supported"));
            }
            if !word.starts_with("AGE-SECRET-KEY-1") {
                return Err(bad("not an age identity (AGE-SECRET-KEY-1…)"));
            }
            let id = word
                .parse::<age::x25519::Identity>()
                .map_err(|_| bad("malformed age identity"))?;
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Loads identities once per recipient set and remembers them, for commands that
/// decrypt many files.
#[derive(Debug, Default)]
pub struct IdentityCache {
    by_recipient: BTreeMap<Option<String>, Result<std::sync::Arc<Identities>, String>>,
}

impl IdentityCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The identities for a file whose first age recipient is `recipient`
    /// (`SOPS_AGE_KEY_CMD` is run once per recipient). Warnings about sources
    /// that failed are logged once; an error is returned as text.
    pub fn get(
        &mut self,
        sources: &KeySources,
        recipient: Option<&str>,
    ) -> Result<std::sync::Arc<Identities>, String> {
        // Without a command, identities do not depend on the recipient.
        let k = if sources.age_key_cmd.is_some() {
            recipient.map(str::to_owned)
        } else {
            None
        };
        self.by_recipient
            .entry(k)
            .or_insert_with(|| match sources.load(recipient) {
                Ok((ids, errors)) => {
                    for e in errors {
                        tracing::warn!("age identity source skipped: {e}");
                    }
                    Ok(std::sync::Arc::new(ids))
                }
                Err(e) => Err(e.to_string()),
            })
            .clone()
    }
}
