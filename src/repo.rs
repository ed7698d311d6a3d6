//! The repository edge: walks a checked-out GitOps repository on disk, reads the
//! stack files the core asks for, and hands their text to the core. The only
//! module that touches the repository's files for stack discovery.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{Config, Env};
use crate::core::compose;
use crate::core::diag::{Diagnostic, Pos};
use crate::core::interpolate::Vars;
use crate::core::stacks::{self, Selection, Stack};
use crate::core::trust::{self, Allow};
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
    /// The texts read (compose files, overrides, plain `.env` files), by path
    /// relative to the repository.
    pub texts: BTreeMap<String, String>,
}

/// Stack files' texts, by path relative to the repository (`/` separated).
pub type Texts = BTreeMap<String, String>;

impl RepoStacks {
    /// Every text read, by path relative to the repository: the plain ones and
    /// the SOPS-encrypted `.env` files (read as UTF-8 text like the others), for
    /// [`load_known`].
    pub fn all_texts(&self) -> Texts {
        let mut all = self.texts.clone();
        for (path, sealed) in &self.sealed_env {
            if let Ok(text) = String::from_utf8(sealed.text.clone()) {
                all.insert(path.clone(), text);
            }
        }
        all
    }
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
    load_known(root, sel, env, &BTreeMap::new())
}

/// [`load`], taking the texts in `known` (by path relative to the repository:
/// what an earlier read of the same work tree gave, with the rewrites written
/// since) as those files' content instead of reading them again. The folders
/// are still walked; a file `known` lacks is read from disk.
pub fn load_known(
    root: &Path,
    sel: &Selection,
    env: &Vars,
    known: &Texts,
) -> Result<RepoStacks, RepoError> {
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
            match read_known(root, rel, known) {
                Ok(text) => {
                    texts.insert(rel.clone(), text);
                }
                Err(d) => {
                    unreadable.insert(rel.clone(), d);
                }
            }
        }
    }
    // The files the stacks include or extend from (`include:`,
    // `extends.file`), as the core names them, until none is new.
    for def in &defs {
        read_referenced(root, def, known, &mut texts, &mut unreadable);
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
        texts,
    })
}

/// Reads the files a stack's compose files name in `include:` and
/// `extends.file` (and those these name), at most
/// [`compose::MAX_EXTRA_FILES`] per stack.
fn read_referenced(
    root: &Path,
    def: &stacks::StackDef,
    known: &BTreeMap<String, String>,
    texts: &mut BTreeMap<String, String>,
    unreadable: &mut BTreeMap<String, Diagnostic>,
) {
    let (Some(compose_text), vars) = (texts.get(&def.compose_file).cloned(), Vars::new()) else {
        return;
    };
    let override_text = def
        .override_file
        .as_ref()
        .and_then(|p| texts.get(p).cloned());
    let mut read = 0;
    loop {
        let src = compose::StackSource {
            compose: (&def.compose_file, &compose_text),
            override_file: def.override_file.as_deref().zip(override_text.as_deref()),
            vars: &vars,
        };
        let wanted: Vec<String> = compose::wanted_files(&src, texts)
            .into_iter()
            .filter(|w| !unreadable.contains_key(w))
            .collect();
        if wanted.is_empty() || read >= compose::MAX_EXTRA_FILES {
            return;
        }
        for rel in wanted {
            read += 1;
            match read_known(root, &rel, known) {
                Ok(text) => {
                    texts.insert(rel, text);
                }
                Err(d) => {
                    unreadable.insert(rel, d);
                }
            }
        }
    }
}

/// A stack file's text: the one `known` holds, else read from disk.
fn read_known(
    root: &Path,
    rel: &str,
    known: &BTreeMap<String, String>,
) -> Result<String, Diagnostic> {
    match known.get(rel) {
        Some(text) => Ok(text.clone()),
        None => read_text(&root.join(rel), rel),
    }
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

/// The host's trust boundary (`apply.allow`) and what it needs to know of the
/// host besides the file system.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The rules.
    pub allow: Allow,
    /// The container engine sockets a stack must not mount.
    pub sockets: Vec<String>,
    /// The home folder, for `~` paths.
    pub home: Option<String>,
}

impl Trust {
    /// The configuration's rules; the sockets are the well-known ones, the
    /// user's and the configured one.
    pub fn from_config(config: &Config, env: &Env) -> Self {
        let configured = config
            .podman
            .socket
            .as_ref()
            .map(|s| s.path().display().to_string());
        Self {
            allow: config.apply.allow.rules(),
            sockets: trust::engine_sockets(
                env.get("XDG_RUNTIME_DIR").map(String::as_str),
                configured.as_deref(),
            ),
            home: env.get("HOME").filter(|h| h.starts_with('/')).cloned(),
        }
    }
}

/// Holds one stack read by [`load`] from the repository at `root` to the trust
/// boundary: what it asks of the host (`core::trust::uses`), the real location
/// of every path it names (symbolic links followed, here at the edge), and the
/// core's decision. Returns the refusals, located; any fails the stack.
pub fn check_trust(
    root: &Path,
    stack: &Stack,
    texts: &BTreeMap<String, String>,
    t: &Trust,
) -> Vec<Diagnostic> {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let repo = root.display().to_string();
    let dir = if stack.def.dir == "." {
        repo.clone()
    } else {
        root.join(&stack.def.dir).display().to_string()
    };
    let files: Vec<&str> = std::iter::once(stack.def.compose_file.as_str())
        .chain(stack.def.override_file.as_deref())
        .chain(stack.loaded.files.iter().map(String::as_str))
        .chain(stack.def.env_file.as_deref())
        .collect();
    let uses = trust::uses(&trust::Subject {
        loaded: &stack.loaded,
        repo: &repo,
        dir: &dir,
        files,
        texts,
        home: t.home.as_deref(),
    });
    let prefixes = t.allow.bind_paths.iter().flatten().map(String::as_str);
    let mut facts = trust::Facts::default();
    for p in trust::paths(&uses).into_iter().chain(prefixes) {
        let real = real_path(Path::new(p), 0);
        let real = trust::normalize_abs(&real.to_string_lossy());
        if real != p {
            facts.real.insert(p.to_owned(), real);
        }
    }
    for s in &t.sockets {
        facts.sockets.push(s.clone());
        let real = trust::normalize_abs(&real_path(Path::new(s), 0).to_string_lossy());
        if &real != s {
            facts.sockets.push(real);
        }
    }
    trust::decide(&uses, &facts, &t.allow, &repo)
}

/// Where `p` really is: symbolic links followed. For a path that does not
/// exist (or a dangling link), the link's target or the real location of its
/// deepest existing parent, with the rest appended: where a compose tool that
/// creates a missing bind source would create it.
fn real_path(p: &Path, depth: u32) -> PathBuf {
    if let Ok(r) = std::fs::canonicalize(p) {
        return r;
    }
    if depth > 40 {
        return p.to_path_buf();
    }
    let parent = p.parent().unwrap_or(Path::new("/"));
    if let Ok(target) = std::fs::read_link(p) {
        return real_path(&parent.join(target), depth + 1);
    }
    match p.file_name() {
        Some(name) => real_path(parent, depth + 1).join(name),
        None => p.to_path_buf(),
    }
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

    /// Known texts stand for the files they name: a stack whose file is known
    /// is loaded from that text (a pin pass's rewrite), without reading it;
    /// a file not known is read from disk. The result is what `load` gives once
    /// the known text is on disk.
    #[test]
    fn known_texts_are_used_instead_of_reading_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["a", "b"] {
            std::fs::create_dir(root.join(d)).unwrap();
            std::fs::write(
                root.join(d).join("compose.yaml"),
                "services:\n  app:\n    image: busybox:1\n",
            )
            .unwrap();
        }
        let first = load(root, &Selection::default(), &Vars::new()).unwrap();
        let mut known = first.all_texts();
        assert_eq!(known.len(), 2);
        let pinned = "services:\n  app:\n    image: busybox:2\n";
        known.insert("a/compose.yaml".to_owned(), pinned.to_owned());
        // Unreadable on disk now: only the known text can give the stack.
        std::fs::write(root.join("a/compose.yaml"), b"\xff").unwrap();
        let again = load_known(root, &Selection::default(), &Vars::new(), &known).unwrap();
        let image = |r: &RepoStacks, i: usize| {
            r.stacks[i].loaded.services[0]
                .image
                .as_ref()
                .map(|i| i.value.clone())
        };
        assert_eq!(image(&again, 0).as_deref(), Some("busybox:2"));
        assert_eq!(image(&again, 1).as_deref(), Some("busybox:1"));
        // Once the rewrite is on disk, a plain read agrees.
        std::fs::write(root.join("a/compose.yaml"), pinned).unwrap();
        let plain = load(root, &Selection::default(), &Vars::new()).unwrap();
        assert_eq!(format!("{:?}", plain.stacks), format!("{:?}", again.stacks));
        assert_eq!(plain.texts, again.texts);
        // A file not known is read from disk.
        known.remove("b/compose.yaml");
        std::fs::write(
            root.join("b/compose.yaml"),
            "services:\n  app:\n    image: busybox:3\n",
        )
        .unwrap();
        let read = load_known(root, &Selection::default(), &Vars::new(), &known).unwrap();
        assert_eq!(image(&read, 1).as_deref(), Some("busybox:3"));
    }
}
