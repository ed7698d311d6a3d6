//! Stack discovery: which folders of a repository are compose stacks, which file
//! of each is the compose file, and each stack's project name. Works on a list
//! of relative paths given by the caller; nothing here walks a disk.
//!
//! Rules: every folder, the root included, with `compose.yaml`, `compose.yml`,
//! `docker-compose.yaml` or `docker-compose.yml` (first wins, the compose
//! specification's precedence) is a stack, with the matching
//! `compose.override.yaml`/`.yml` (or `docker-compose.override.*`) if present.
//! Folders whose name starts with `.` are never looked into. `hosts/<name>/…`
//! holds stacks for one host only. Include/exclude globs match the stack folder
//! (`.` for the root, `/` separated, `*` does not cross `/`, `**` does).

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::compose::{self, Loaded, StackSource};
use super::diag::{Diagnostic, Pos};
use super::interpolate::{self, Vars};

/// The compose file names, in precedence order.
pub const COMPOSE_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// The folder that holds per-host stacks: `hosts/<hostname>/…`.
pub const HOSTS_DIR: &str = "hosts";

/// Which stacks to take.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Globs a stack folder must match (empty: every folder).
    pub include: Vec<String>,
    /// Globs that exclude a stack folder.
    pub exclude: Vec<String>,
    /// This host's name: stacks under `hosts/<other>/` are skipped. `None`: the
    /// stacks of every host are taken (what `lint` wants).
    pub host: Option<String>,
}

/// A stack found in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackDef {
    /// The folder, relative to the repository (`.` for the root).
    pub dir: String,
    /// The compose file, relative to the repository.
    pub compose_file: String,
    /// The override file, if any.
    pub override_file: Option<String>,
    /// The `.env` file beside the compose file, if any.
    pub env_file: Option<String>,
    /// The host the stack is for, when under `hosts/<name>/`.
    pub host: Option<String>,
    /// The project name from the folder name (a `name:` in the file wins).
    pub dir_project: Option<String>,
}

/// A glob that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid stack glob `{glob}`")]
pub struct GlobError {
    /// The glob as given.
    pub glob: String,
    /// The parser's reason.
    #[source]
    pub source: globset::Error,
}

fn globset(globs: &[String]) -> Result<GlobSet, GlobError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob: Glob = GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|source| GlobError {
                glob: g.clone(),
                source,
            })?;
        b.add(glob);
    }
    b.build().map_err(|source| GlobError {
        glob: globs.join(", "),
        source,
    })
}

/// Finds the stacks among `files` (paths relative to the repository, `/`
/// separated). `root_name` is the repository folder's own name, used for the
/// root stack's project name.
pub fn discover(
    files: &[String],
    root_name: &str,
    sel: &Selection,
) -> Result<(Vec<StackDef>, Vec<Diagnostic>), GlobError> {
    let include = globset(&sel.include)?;
    let exclude = globset(&sel.exclude)?;
    let mut by_dir: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for f in files {
        let f = f.trim_start_matches("./");
        let (dir, name) = match f.rsplit_once('/') {
            Some((d, n)) => (d.to_owned(), n),
            None => (".".to_owned(), f),
        };
        if dir != "." && dir.split('/').any(|c| c.starts_with('.') || c.is_empty()) {
            continue;
        }
        by_dir.entry(dir).or_default().insert(name);
    }
    let mut stacks = Vec::new();
    let mut diags = Vec::new();
    for (dir, names) in &by_dir {
        let present: Vec<&str> = COMPOSE_FILES
            .iter()
            .copied()
            .filter(|n| names.contains(n))
            .collect();
        let Some(chosen) = present.first().copied() else {
            continue;
        };
        let path = |n: &str| {
            if dir == "." {
                n.to_owned()
            } else {
                format!("{dir}/{n}")
            }
        };
        let host = host_of(dir);
        if let (Some(want), Some(h)) = (&sel.host, &host)
            && want != h
        {
            continue;
        }
        if !sel.include.is_empty() && !include.is_match(dir) {
            continue;
        }
        if exclude.is_match(dir) {
            continue;
        }
        if present.len() > 1 {
            diags.push(Diagnostic::warning(
                &path(present[1]),
                Pos::START,
                format!(
                    "`{}` is ignored: the folder also has `{chosen}`, which takes precedence",
                    present[1..].join("`, `")
                ),
            ));
        }
        let stem = if chosen.starts_with("docker-") {
            "docker-compose"
        } else {
            "compose"
        };
        let override_file = [
            format!("{stem}.override.yaml"),
            format!("{stem}.override.yml"),
        ]
        .into_iter()
        .find(|n| names.contains(n.as_str()))
        .map(|n| path(&n));
        let folder = if dir == "." {
            root_name
        } else {
            dir.rsplit('/').next().unwrap_or(dir)
        };
        let dir_project = project_name(folder);
        if dir_project.is_none() {
            diags.push(Diagnostic::warning(
                &path(chosen),
                Pos::START,
                format!("the folder name `{folder}` gives no valid project name; set `name:` in the compose file"),
            ));
        }
        stacks.push(StackDef {
            dir: dir.clone(),
            compose_file: path(chosen),
            override_file,
            env_file: names.contains(".env").then(|| path(".env")),
            host,
            dir_project,
        });
    }
    Ok((stacks, diags))
}

/// A stack with its compose content loaded.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Where it was found.
    pub def: StackDef,
    /// The project name: `name:` in the files, else from the folder.
    pub project: Option<String>,
    /// The services, images, policies and diagnostics.
    pub loaded: Loaded,
}

/// Loads every stack from texts the caller read: `texts` maps repository-relative
/// paths to contents, `env` is the environment, which wins over each stack's
/// `.env`. `sealed` names, by path, the `.env` files that are SOPS-encrypted and
/// the variables each sets: those interpolate to sealed placeholders
/// ([`interpolate::sealed`]), never to values. Also checks that project names are
/// valid and distinct.
pub fn load_all(
    defs: Vec<StackDef>,
    texts: &BTreeMap<String, String>,
    env: &Vars,
    sealed: &BTreeMap<String, Vec<String>>,
) -> Vec<Stack> {
    let mut stacks = Vec::with_capacity(defs.len());
    let mut projects: BTreeMap<String, String> = BTreeMap::new();
    for def in defs {
        let mut vars = Vars::new();
        let mut early = Vec::new();
        if let Some(names) = def.env_file.as_ref().and_then(|f| sealed.get(f)) {
            vars = names
                .iter()
                .map(|n| (n.clone(), interpolate::sealed(n)))
                .collect();
        } else if let Some(env_file) = &def.env_file
            && let Some(text) = texts.get(env_file)
        {
            match interpolate::parse_env_file(text) {
                Ok(v) => vars = v,
                Err((line, reason)) => {
                    early.push(Diagnostic::error(env_file, Pos { line, column: 1 }, reason))
                }
            }
        }
        vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let Some(compose_text) = texts.get(&def.compose_file) else {
            early.push(Diagnostic::error(
                &def.compose_file,
                Pos::START,
                "the compose file could not be read",
            ));
            stacks.push(Stack {
                project: def.dir_project.clone(),
                def,
                loaded: Loaded {
                    diagnostics: early,
                    ..Loaded::default()
                },
            });
            continue;
        };
        let override_file = def
            .override_file
            .as_deref()
            .and_then(|p| texts.get(p).map(|t| (p, t.as_str())));
        let mut loaded = compose::load(&StackSource {
            compose: (&def.compose_file, compose_text),
            override_file,
            vars: &vars,
        });
        early.append(&mut loaded.diagnostics);
        loaded.diagnostics = early;
        let project = match &loaded.name {
            Some(name) => match check_project_name(name) {
                Ok(()) => Some(name.clone()),
                Err(reason) => {
                    loaded.diagnostics.push(Diagnostic::error(
                        &def.compose_file,
                        locate_name(compose_text),
                        reason,
                    ));
                    def.dir_project.clone()
                }
            },
            None => def.dir_project.clone(),
        };
        if let Some(p) = &project
            && let Some(other) = projects.insert(p.clone(), def.dir.clone())
        {
            loaded.diagnostics.push(Diagnostic::error(
                &def.compose_file,
                Pos::START,
                format!("the project name `{p}` is also the project of the stack in `{other}`; set a distinct `name:`"),
            ));
        }
        stacks.push(Stack {
            def,
            project,
            loaded,
        });
    }
    stacks
}

fn locate_name(text: &str) -> Pos {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with("name:") {
            return Pos::of_offset(text, offset);
        }
        offset += line.len();
    }
    Pos::START
}

/// `hosts/<name>/…` → `name`.
fn host_of(dir: &str) -> Option<String> {
    let mut parts = dir.split('/');
    (parts.next() == Some(HOSTS_DIR))
        .then(|| parts.next().map(str::to_owned))
        .flatten()
}

/// The compose specification's project name from a folder name: lower-cased,
/// only `[a-z0-9_-]` kept, and it must start with a letter or digit.
pub fn project_name(folder: &str) -> Option<String> {
    let s: String = folder
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    let s = s.trim_start_matches(['_', '-']);
    (!s.is_empty()).then(|| s.to_owned())
}

/// Checks a `name:` written in a compose file: `^[a-z0-9][a-z0-9_-]*$`.
pub fn check_project_name(name: &str) -> Result<(), String> {
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid project name (lower-case letters, digits, `_` and `-`, starting with a letter or digit)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn discovers_with_precedence_and_overrides() {
        let f = files(&[
            "compose.yaml",
            "README.md",
            "apps/web/docker-compose.yml",
            "apps/web/compose.yml",
            "apps/web/compose.override.yaml",
            "apps/web/.env",
            "apps/db/docker-compose.yaml",
            "apps/db/docker-compose.override.yml",
            ".github/compose.yaml",
            "apps/.hidden/compose.yaml",
            "apps/notes/readme.txt",
            "hosts/alpha/media/compose.yaml",
            "hosts/beta/media/compose.yaml",
        ]);
        let (stacks, diags) = discover(&f, "Home Lab!", &Selection::default()).unwrap();
        let dirs: Vec<&str> = stacks.iter().map(|s| s.dir.as_str()).collect();
        assert_eq!(
            dirs,
            [
                ".",
                "apps/db",
                "apps/web",
                "hosts/alpha/media",
                "hosts/beta/media"
            ]
        );
        assert_eq!(stacks[0].dir_project.as_deref(), Some("homelab"));
        assert_eq!(
            stacks[1].override_file.as_deref(),
            Some("apps/db/docker-compose.override.yml")
        );
        assert_eq!(stacks[2].compose_file, "apps/web/compose.yml");
        assert_eq!(
            stacks[2].override_file.as_deref(),
            Some("apps/web/compose.override.yaml")
        );
        assert_eq!(stacks[2].env_file.as_deref(), Some("apps/web/.env"));
        assert_eq!(stacks[3].host.as_deref(), Some("alpha"));
        // The ignored docker-compose.yml.
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].message.contains("`docker-compose.yml` is ignored"));
    }

    #[test]
    fn selection() {
        let f = files(&[
            "a/compose.yaml",
            "b/compose.yaml",
            "b/c/compose.yaml",
            "hosts/alpha/x/compose.yaml",
            "hosts/beta/y/compose.yaml",
        ]);
        let pick = |include: &[&str], exclude: &[&str], host: Option<&str>| {
            let sel = Selection {
                include: files(include),
                exclude: files(exclude),
                host: host.map(str::to_owned),
            };
            discover(&f, "r", &sel)
                .unwrap()
                .0
                .into_iter()
                .map(|s| s.dir)
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(&["b/*"], &[], None), ["b/c"]);
        assert_eq!(pick(&["b", "b/**"], &["b/c"], None), ["b"]);
        assert_eq!(pick(&[], &["hosts/**"], None), ["a", "b", "b/c"]);
        assert_eq!(
            pick(&[], &[], Some("alpha")),
            ["a", "b", "b/c", "hosts/alpha/x"]
        );
        assert!(
            discover(
                &f,
                "r",
                &Selection {
                    include: files(&["a/["]),
                    ..Selection::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn project_names() {
        assert_eq!(project_name("My.App_1"), Some("myapp_1".to_owned()));
        assert_eq!(project_name("-_x"), Some("x".to_owned()));
        assert_eq!(project_name("..."), None);
        assert!(check_project_name("web-1").is_ok());
        assert!(check_project_name("Web").is_err());
        assert!(check_project_name("_web").is_err());
        assert!(check_project_name("").is_err());
    }
}
