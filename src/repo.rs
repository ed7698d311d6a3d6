//! The repository edge: walks a checked-out GitOps repository on disk, reads the
//! stack files the core asks for, and hands their text to the core. The only
//! module that touches the repository's files for stack discovery.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::core::diag::{Diagnostic, Pos};
use crate::core::interpolate::Vars;
use crate::core::stacks::{self, Selection, Stack};
use crate::secrets;

/// How deep the walk goes; deeper folders are not looked into.
const MAX_DEPTH: usize = 24;

/// Files larger than this are not read as compose files.
const MAX_FILE: u64 = 8 * 1024 * 1024;

/// A repository that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A folder could not be listed.
    #[error("cannot read the folder {}", path.display())]
    ReadDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An include or exclude glob is invalid.
    #[error(transparent)]
    Glob(#[from] stacks::GlobError),
}

/// The stacks of a repository, and the problems met while reading it.
#[derive(Debug)]
pub struct RepoStacks {
    /// The stacks, loaded.
    pub stacks: Vec<Stack>,
    /// Problems not tied to one stack (files that could not be read, ignored
    /// compose files).
    pub diagnostics: Vec<Diagnostic>,
    /// The stacks' `.env` files that are SOPS-encrypted, by path.
    pub sealed_env: BTreeMap<String, SealedEnv>,
}

/// A SOPS-encrypted `.env`: the variables it sets (names only) and the digest of
/// its ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEnv {
    /// The variable names.
    pub names: Vec<String>,
    /// [`secrets::ciphertext_digest`] of the file.
    pub digest: String,
    /// The ciphertext, as read.
    pub text: Vec<u8>,
}

/// Finds and loads the stacks of the repository at `root`.
pub fn load(root: &Path, sel: &Selection, env: &Vars) -> Result<RepoStacks, RepoError> {
    let mut files = Vec::new();
    walk(root, "", 0, &mut files)?;
    let root_name = std::fs::canonicalize(root)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let (defs, mut diagnostics) = stacks::discover(&files, &root_name, sel)?;
    let mut texts = BTreeMap::new();
    for def in &defs {
        let wanted = std::iter::once(&def.compose_file)
            .chain(def.override_file.as_ref())
            .chain(def.env_file.as_ref());
        for rel in wanted {
            let path = root.join(rel);
            let read = std::fs::metadata(&path).and_then(|m| {
                if m.len() > MAX_FILE {
                    Err(std::io::Error::other(format!(
                        "larger than {} MiB",
                        MAX_FILE / 1024 / 1024
                    )))
                } else {
                    std::fs::read(&path)
                }
            });
            match read.map(String::from_utf8) {
                Ok(Ok(text)) => {
                    texts.insert(rel.clone(), text);
                }
                Ok(Err(_)) => diagnostics.push(Diagnostic::error(
                    rel,
                    Pos::START,
                    "the file is not UTF-8 text",
                )),
                Err(e) => diagnostics.push(Diagnostic::error(
                    rel,
                    Pos::START,
                    format!("cannot read the file: {e}"),
                )),
            }
        }
    }
    // A SOPS-encrypted `.env` is never parsed as text: its variables interpolate
    // to sealed placeholders, filled in with the decrypted values at apply time.
    let mut sealed_env = BTreeMap::new();
    for rel in defs.iter().filter_map(|d| d.env_file.as_ref()) {
        let Some(text) = texts.get(rel) else { continue };
        if !secrets::has_sops_marker(text.as_bytes(), secrets::Format::Dotenv) {
            continue;
        }
        let text = texts.remove(rel).unwrap_or_default();
        match secrets::variable_names(text.as_bytes(), secrets::Format::Dotenv) {
            Ok(names) => {
                sealed_env.insert(
                    rel.clone(),
                    SealedEnv {
                        names,
                        digest: secrets::ciphertext_digest(text.as_bytes()),
                        text: text.into_bytes(),
                    },
                );
            }
            Err(e) => diagnostics.push(Diagnostic::error(
                rel,
                Pos::START,
                format!("the SOPS-encrypted file cannot be read: {e}"),
            )),
        }
    }
    let names = sealed_env
        .iter()
        .map(|(k, v)| (k.clone(), v.names.clone()))
        .collect();
    let stacks = stacks::load_all(defs, &texts, env, &names);
    Ok(RepoStacks {
        stacks,
        diagnostics,
        sealed_env,
    })
}

/// Lists files below `dir` as `/`-separated relative paths, skipping hidden
/// folders and not following symbolic links to folders.
fn walk(dir: &Path, rel: &str, depth: usize, out: &mut Vec<String>) -> Result<(), RepoError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| RepoError::ReadDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RepoError::ReadDir {
            path: dir.to_owned(),
            source,
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        names.push((name, kind));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, kind) in names {
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if kind.is_dir() {
            if name.starts_with('.') {
                continue;
            }
            walk(&dir.join(&name), &child, depth + 1, out)?;
        } else if kind.is_file() || (kind.is_symlink() && dir.join(&name).is_file()) {
            out.push(child);
        }
    }
    Ok(())
}
