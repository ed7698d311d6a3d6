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
const MAX_FILE: u64 = crate::core::compose::MAX_FILE_BYTES as u64;

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
    /// Problems not tied to one stack (ignored compose files, folder names that
    /// give no project name). A stack's own files that cannot be read fail that
    /// stack (its `loaded.error`).
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
    let (defs, diagnostics) = stacks::discover(&files, &root_name, sel)?;
    let mut texts = BTreeMap::new();
    let mut unreadable = BTreeMap::new();
    for def in &defs {
        let wanted = std::iter::once(&def.compose_file)
            .chain(def.override_file.as_ref())
            .chain(def.env_file.as_ref());
        for rel in wanted {
            match read_text(&root.join(rel), rel) {
                Ok(text) => {
                    texts.insert(rel.clone(), text);
                }
                Err(d) => {
                    unreadable.insert(rel.clone(), d);
                }
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
            Err(e) => {
                unreadable.insert(
                    rel.clone(),
                    Diagnostic::error(
                        rel,
                        Pos::START,
                        format!("the SOPS-encrypted file cannot be read: {e}"),
                    ),
                );
            }
        }
    }
    let names = sealed_env
        .iter()
        .map(|(k, v)| (k.clone(), v.names.clone()))
        .collect();
    let stacks = stacks::load_all(defs, &texts, &unreadable, env, &names);
    Ok(RepoStacks {
        stacks,
        diagnostics,
        sealed_env,
    })
}

/// Reads one stack file as text: at most [`MAX_FILE`] bytes of UTF-8. The
/// error names the file (`rel`) and, for invalid UTF-8, the line of the first
/// bad byte.
fn read_text(path: &Path, rel: &str) -> Result<String, Diagnostic> {
    let read = std::fs::metadata(path).and_then(|m| {
        if m.len() > MAX_FILE {
            Err(std::io::Error::other(format!(
                "it is larger than {} MiB",
                MAX_FILE / 1024 / 1024
            )))
        } else {
            std::fs::read(path)
        }
    });
    let bytes =
        read.map_err(|e| Diagnostic::error(rel, Pos::START, format!("cannot read the file: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..valid]);
        Diagnostic::error(
            rel,
            Pos::of_offset(&text, valid),
            "the file is not UTF-8 text (an invalid byte here)",
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A stack file that cannot be read fails its own stack, named with the line
    /// of the first bad byte; the other stack loads.
    #[test]
    fn unreadable_files_fail_their_stack() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["bad", "big", "good"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        std::fs::write(
            root.join("bad/compose.yaml"),
            b"services:\n  app:\n    image: busy\xffbox\n",
        )
        .unwrap();
        let big = std::fs::File::create(root.join("big/compose.yaml")).unwrap();
        big.set_len(MAX_FILE + 1).unwrap();
        std::fs::write(
            root.join("good/compose.yaml"),
            "services:\n  app:\n    image: busybox\n",
        )
        .unwrap();
        let loaded = load(root, &Selection::default(), &Vars::new()).unwrap();
        let errors: Vec<String> = loaded
            .stacks
            .iter()
            .map(|s| {
                s.loaded
                    .error
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            errors[0],
            "bad/compose.yaml:3:16: the file is not UTF-8 text (an invalid byte here)"
        );
        assert!(
            errors[1]
                .starts_with("big/compose.yaml:1:1: cannot read the file: it is larger than 8 MiB"),
            "{}",
            errors[1]
        );
        assert_eq!(errors[2], "");
        assert_eq!(loaded.stacks[2].loaded.services.len(), 1);
    }
}
