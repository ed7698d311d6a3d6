//! Writing the files of a change atomically and committing exactly them.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use super::{Checkout, GitError};

/// A set of file contents to write and commit together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The files, relative to the repository's root.
    pub files: Vec<FileEdit>,
    /// The commit message (see [`super::message::render`]).
    pub message: String,
}

/// One file's new contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    /// The path relative to the repository's root, with `/` or the platform's separator.
    pub path: PathBuf,
    /// The whole new contents.
    pub contents: Vec<u8>,
}

/// The author and committer of Magos's commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The name.
    pub name: String,
    /// The e-mail address.
    pub email: String,
}

impl Identity {
    /// The identity configured under `repo.commit`.
    pub fn from_config(c: &crate::config::CommitConfig) -> Self {
        Self {
            name: c.author_name.as_str().to_owned(),
            email: c.author_email.as_str().to_owned(),
        }
    }
}

/// The path's components, refusing absolute paths, `..`, `.git` and empty paths.
fn checked_components(path: &Path) -> Result<Vec<String>, GitError> {
    let unsafe_path = || GitError::UnsafePath {
        path: path.to_owned(),
    };
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => {
                let s = s.to_str().ok_or_else(unsafe_path)?;
                if s.eq_ignore_ascii_case(".git") {
                    return Err(unsafe_path());
                }
                out.push(s.to_owned());
            }
            Component::CurDir => {}
            _ => return Err(unsafe_path()),
        }
    }
    if out.is_empty() {
        return Err(unsafe_path());
    }
    Ok(out)
}

/// Writes every file of `change` under `root`, each atomically: the contents
/// go to a temporary file in the same folder, which is flushed and renamed
/// over the target. A crash leaves each file either old or new, never half
/// written. An existing file keeps its permissions.
pub fn write_files(root: &Path, change: &Change) -> Result<(), GitError> {
    for edit in &change.files {
        let parts = checked_components(&edit.path)?;
        let target = parts.iter().fold(root.to_owned(), |p, c| p.join(c));
        write_atomically(&target, &edit.contents)?;
    }
    Ok(())
}

fn write_atomically(target: &Path, contents: &[u8]) -> Result<(), GitError> {
    let err = |source| GitError::Write {
        path: target.to_owned(),
        source,
    };
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".magos-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(contents).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    if let Ok(meta) = std::fs::metadata(target) {
        std::fs::set_permissions(tmp.path(), meta.permissions()).map_err(err)?;
    }
    tmp.persist(target).map_err(|e| err(e.error))?;
    Ok(())
}

impl Checkout {
    /// Writes `change` into the work tree and commits exactly those files on
    /// top of the local branch, as `identity`. Returns the new commit, or `None`
    /// when the files already hold these contents. Index and work tree are
    /// aligned to the new commit afterwards.
    pub fn commit(&self, change: &Change, identity: &Identity) -> Result<Option<String>, GitError> {
        let _lock = self.lock()?;
        self.commit_locked(change, identity)
    }

    pub(super) fn commit_locked(
        &self,
        change: &Change,
        identity: &Identity,
    ) -> Result<Option<String>, GitError> {
        write_files(&self.dir, change)?;
        let repo = self.open()?;
        let branch = format!("refs/heads/{}", self.remote.branch);
        let parent = repo
            .find_reference(branch.as_str())
            .and_then(|mut r| r.peel_to_id())
            .map_err(|source| GitError::Commit {
                dir: self.dir.clone(),
                source,
            })?
            .detach();
        let Some(tree) = self.tree_with(&repo, parent, change)? else {
            return Ok(None);
        };
        let mut time_buf = gix::date::parse::TimeBuf::default();
        let signature = signature(identity);
        let sig = signature.to_ref(&mut time_buf);
        let commit = repo
            .commit_as(sig, sig, branch.as_str(), &change.message, tree, [parent])
            .map_err(|source| GitError::Commit {
                dir: self.dir.clone(),
                source,
            })?
            .to_string();
        // The index still describes the parent; make it (and the files' stat
        // data) match the new commit.
        self.run_git(&["reset", "-q", "--hard", &commit])?;
        tracing::info!(dir = %self.dir.display(), commit, files = change.files.len(), "committed");
        Ok(Some(commit))
    }
}

fn signature(identity: &Identity) -> gix::actor::Signature {
    gix::actor::Signature {
        name: identity.name.as_str().into(),
        email: identity.email.as_str().into(),
        time: gix::date::Time::now_local_or_utc(),
    }
}

impl Checkout {
    /// The tree of `parent` with the files of `change`, or `None` when that is
    /// `parent`'s own tree (nothing to commit).
    fn tree_with(
        &self,
        repo: &gix::Repository,
        parent: gix::ObjectId,
        change: &Change,
    ) -> Result<Option<gix::ObjectId>, GitError> {
        let err = |source| GitError::Commit {
            dir: self.dir.clone(),
            source,
        };
        let parent_tree = repo
            .find_commit(parent)
            .and_then(|c| c.tree_id())
            .map_err(err)?
            .detach();
        let tree = repo.find_tree(parent_tree).map_err(err)?;
        let mut editor = tree.edit().map_err(err)?;
        for edit in &change.files {
            let parts = checked_components(&edit.path)?;
            let rela = parts.join("/");
            let existing = tree.lookup_entry_by_path(&rela).map_err(err)?;
            let kind = match existing.map(|e| e.mode()) {
                Some(mode) if mode.is_executable() => gix::object::tree::EntryKind::BlobExecutable,
                _ => gix::object::tree::EntryKind::Blob,
            };
            let blob = repo.write_blob(&edit.contents).map_err(err)?.detach();
            editor.upsert(rela.as_str(), kind, blob).map_err(err)?;
        }
        let new_tree = editor.write().map_err(err)?.detach();
        Ok((new_tree != parent_tree).then_some(new_tree))
    }

    /// A commit of `change` on top of `parent` that no local branch points to
    /// (for pull-request branches, which are pushed by commit id). The work tree
    /// is not touched. `None` when `parent` already holds these contents.
    pub(super) fn commit_detached(
        &self,
        parent: &str,
        change: &Change,
        identity: &Identity,
    ) -> Result<Option<String>, GitError> {
        let err = |source| GitError::Commit {
            dir: self.dir.clone(),
            source,
        };
        let repo = self.open()?;
        let parent = gix::ObjectId::from_hex(parent.as_bytes())
            .map_err(|e| err(gix::Error::from_error(e)))?;
        let Some(tree) = self.tree_with(&repo, parent, change)? else {
            return Ok(None);
        };
        let signature = signature(identity);
        let commit = gix::objs::Commit {
            message: change.message.as_str().into(),
            tree,
            author: signature.clone(),
            committer: signature,
            encoding: None,
            parents: vec![parent].into(),
            extra_headers: Vec::new(),
        };
        let id = repo.write_object(&commit).map_err(err)?;
        Ok(Some(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_repository_are_refused() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            ".git/config",
            "",
            ".",
            "a/.GIT/x",
        ] {
            assert!(
                checked_components(Path::new(bad)).is_err(),
                "{bad} was accepted"
            );
        }
        assert_eq!(
            checked_components(Path::new("./stacks/web/compose.yaml")).unwrap(),
            ["stacks", "web", "compose.yaml"]
        );
    }

    #[test]
    fn files_are_replaced_whole_and_keep_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s/compose.yaml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        let change = Change {
            files: vec![FileEdit {
                path: "s/compose.yaml".into(),
                contents: b"new".to_vec(),
            }],
            message: "m".into(),
        };
        write_files(dir.path(), &change).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }
}
