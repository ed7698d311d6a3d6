//! Finding the SOPS files of a repository: every regular file (symbolic links and
//! `.git` are skipped) that is a SOPS file in the format its name gives, plus
//! files that look like damaged SOPS files (they carry a sops metadata marker and
//! `ENC[` values but do not parse), so that a check reports them.

use std::path::{Path, PathBuf};

use super::{Format, has_sops_marker, is_sops};

/// Files larger than this are not looked into.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a repository could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A folder could not be listed.
    #[error("cannot list {}: {source}", path.display())]
    List {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A SOPS file found in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The path, relative to the repository root.
    pub relative: PathBuf,
    /// The full path.
    pub path: PathBuf,
    /// The format, from the file name.
    pub format: Format,
    /// The file's bytes.
    pub text: Vec<u8>,
}

/// Every SOPS file under `root`, sorted by path.
pub fn find(root: &Path) -> Result<Vec<Found>, ScanError> {
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Found>) -> Result<(), ScanError> {
    let list = |source| ScanError::List {
        path: dir.to_owned(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(list)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(list)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            if entry.file_name() == ".git" {
                continue;
            }
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.len() > MAX_FILE_BYTES {
                continue;
            }
            let Ok(text) = std::fs::read(&path) else {
                tracing::debug!(file = %path.display(), "unreadable file skipped");
                continue;
            };
            let format = Format::for_path(&path);
            if is_sops(&text, format) || has_sops_marker(&text, format) {
                out.push(Found {
                    relative: path.strip_prefix(root).unwrap_or(&path).to_owned(),
                    path,
                    format,
                    text,
                });
            }
        }
    }
    Ok(())
}
