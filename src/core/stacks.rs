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
/// paths to contents, `unreadable` the files that could not be read (too large,
/// not UTF-8, …) to why; `env` is the environment, which wins over each stack's
/// `.env`. `sealed` names, by path, the `.env` files that are SOPS-encrypted and
/// the variables each sets: those interpolate to sealed placeholders
/// ([`interpolate::sealed`]), never to values.
///
/// Besides what [`compose::load`] finds, a stack fails to load
/// ([`Loaded::error`]) when one of its files could not be read, its `.env` has an
/// invalid line, its `name:` is not a valid project name, or its project name is
/// also another stack's (then every stack of that name fails, each naming the
/// others' folders).
pub fn load_all(
    defs: Vec<StackDef>,
    texts: &BTreeMap<String, String>,
    unreadable: &BTreeMap<String, Diagnostic>,
    env: &Vars,
    sealed: &BTreeMap<String, Vec<String>>,
) -> Vec<Stack> {
    let stacks: Vec<Stack> = defs
        .into_iter()
        .map(|def| load_one(def, texts, unreadable, env, sealed))
        .collect();
    // A compose file another stack includes (or extends from, or merges) is
    // part of that stack, not a stack of its own: its services would run twice.
    let taken: BTreeMap<String, String> = stacks
        .iter()
        .flat_map(|s| {
            s.loaded
                .files
                .iter()
                .map(|f| (f.clone(), s.def.compose_file.clone()))
        })
        .collect();
    let (kept, dropped): (Vec<Stack>, Vec<Stack>) = stacks.into_iter().partition(|s| {
        // (Two stacks that take in each other both stay.)
        taken
            .get(&s.def.compose_file)
            .is_none_or(|owner| taken.contains_key(owner))
    });
    let mut stacks = kept;
    for d in dropped {
        let owner = &taken[&d.def.compose_file];
        if let Some(o) = stacks.iter_mut().find(|s| &s.def.compose_file == owner) {
            o.loaded.diagnostics.push(Diagnostic::warning(
                owner,
                Pos::START,
                format!(
                    "`{}` is part of this stack (`include`, `extends` or `x-magos.files`), so the folder `{}` is not a stack of its own",
                    d.def.compose_file, d.def.dir
                ),
            ));
        }
    }
    // Two folders with one project name would fight over its containers: both
    // fail. A stack whose files could not be read has no trusted name and takes
    // no part.
    let mut by_project: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in stacks.iter().enumerate() {
        if let Some(p) = &s.project
            && (s.loaded.name.is_some() || s.loaded.error.is_none())
        {
            by_project.entry(p.clone()).or_default().push(i);
        }
    }
    for (project, members) in by_project.into_iter().filter(|(_, m)| m.len() > 1) {
        for &i in &members {
            let others: Vec<String> = members
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| format!("`{}`", stacks[j].def.dir))
                .collect();
            let s = &mut stacks[i];
            let (file, pos) = match texts.get(&s.def.compose_file) {
                Some(text) if s.loaded.name.is_some() => {
                    (s.def.compose_file.clone(), locate_name(text))
                }
                _ => (s.def.compose_file.clone(), Pos::START),
            };
            s.loaded.fail(Diagnostic::error(
                &file,
                pos,
                format!(
                    "the project name `{project}` is also the project of the stack in {}; give each stack its own `name:`",
                    others.join(", ")
                ),
            ));
        }
    }
    stacks
}

fn load_one(
    def: StackDef,
    texts: &BTreeMap<String, String>,
    unreadable: &BTreeMap<String, Diagnostic>,
    env: &Vars,
    sealed: &BTreeMap<String, Vec<String>>,
) -> Stack {
    let mut early = Vec::new();
    let mut vars = Vars::new();
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
                early.push(Diagnostic::error(env_file, Pos { line, column: 1 }, reason));
            }
        }
    }
    vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let files = std::iter::once(&def.compose_file)
        .chain(def.override_file.as_ref())
        .chain(def.env_file.as_ref());
    for f in files {
        if let Some(d) = unreadable.get(f) {
            early.push(d.clone());
        } else if !texts.contains_key(f) && !sealed.contains_key(f) {
            early.push(Diagnostic::error(
                f,
                Pos::START,
                "the file could not be read",
            ));
        }
    }
    let load = |vars: &Vars| match texts.get(&def.compose_file) {
        Some(compose_text) => {
            let override_file = def
                .override_file
                .as_deref()
                .and_then(|p| texts.get(p).map(|t| (p, t.as_str())));
            compose::load_with(
                &StackSource {
                    compose: (&def.compose_file, compose_text),
                    override_file,
                    vars,
                },
                compose::Extra { texts, unreadable },
            )
        }
        None => Loaded::default(),
    };
    let mut loaded = load(&vars);
    // `${COMPOSE_PROJECT_NAME}` is the project's name, as compose sets it once
    // the name is known (from `name:`, else the folder), unless the
    // environment or the `.env` sets it: the files are read again with it.
    if !vars.contains_key(PROJECT_NAME_VAR)
        && refers_to_project_name(&def, &loaded, texts)
        && let Some(project) = loaded
            .name
            .clone()
            .filter(|n| check_project_name(n).is_ok())
            .or_else(|| def.dir_project.clone())
    {
        vars.insert(PROJECT_NAME_VAR.to_owned(), project);
        let name = loaded.name.take();
        loaded = load(&vars);
        // The project's name stays the one it was read with.
        loaded.name = name;
    }
    let found = std::mem::take(&mut loaded.diagnostics);
    let error = loaded.error.take();
    for d in early {
        loaded.fail(d);
    }
    loaded.diagnostics.extend(found);
    if let Some(e) = error {
        loaded.error.get_or_insert_default().errors.extend(e.errors);
    }
    let project = match &loaded.name {
        Some(name) => match check_project_name(name) {
            Ok(()) => Some(name.clone()),
            Err(reason) => {
                let pos = texts
                    .get(&def.compose_file)
                    .map_or(Pos::START, |t| locate_name(t));
                loaded.fail(Diagnostic::error(&def.compose_file, pos, reason));
                def.dir_project.clone()
            }
        },
        None => def.dir_project.clone(),
    };
    Stack {
        def,
        project,
        loaded,
    }
}

/// The variable compose sets to the project's name.
pub const PROJECT_NAME_VAR: &str = "COMPOSE_PROJECT_NAME";

/// Whether a file of the stack (its compose file, override and the files it
/// takes in) names [`PROJECT_NAME_VAR`].
fn refers_to_project_name(
    def: &StackDef,
    loaded: &Loaded,
    texts: &BTreeMap<String, String>,
) -> bool {
    std::iter::once(&def.compose_file)
        .chain(def.override_file.as_ref())
        .chain(&loaded.files)
        .filter_map(|f| texts.get(f))
        .any(|t| t.contains(PROJECT_NAME_VAR))
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

    /// Loads `files` (path, text) as a repository whose folder is `repo`.
    fn load(files: &[(&str, &str)], unreadable: &[(&str, &str)]) -> Vec<Stack> {
        let mut paths: Vec<String> = files.iter().map(|(p, _)| (*p).to_owned()).collect();
        paths.extend(unreadable.iter().map(|(p, _)| (*p).to_owned()));
        let (defs, _) = discover(&paths, "repo", &Selection::default()).unwrap();
        let texts = files
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect();
        let unreadable = unreadable
            .iter()
            .map(|(p, why)| ((*p).to_owned(), Diagnostic::error(p, Pos::START, *why)))
            .collect();
        load_all(defs, &texts, &unreadable, &Vars::new(), &BTreeMap::new())
    }

    fn error_of(stack: &Stack) -> String {
        stack
            .loaded
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    const APP: &str = "services:\n  app:\n    image: busybox\n";

    #[test]
    fn a_compose_file_another_stack_includes_is_not_a_stack_of_its_own() {
        let stacks = load(
            &[
                (
                    "web/compose.yaml",
                    "include: [../db/compose.yaml]\nservices:\n  web:\n    image: busybox\n",
                ),
                ("db/compose.yaml", "services:\n  db:\n    image: busybox\n"),
                ("other/compose.yaml", APP),
            ],
            &[],
        );
        let dirs: Vec<&str> = stacks.iter().map(|s| s.def.dir.as_str()).collect();
        assert_eq!(dirs, ["other", "web"]);
        let web = &stacks[1];
        assert!(web.loaded.error.is_none(), "{:?}", web.loaded.diagnostics);
        assert_eq!(web.loaded.services.len(), 2);
        assert!(
            web.loaded.diagnostics.iter().any(|d| d
                .message
                .contains("`db/compose.yaml` is part of this stack")
                && d.message.contains("folder `db` is not a stack of its own")),
            "{:?}",
            web.loaded.diagnostics
        );
    }

    #[test]
    fn an_invalid_env_line_fails_the_stack() {
        let stacks = load(
            &[
                (
                    "a/compose.yaml",
                    "services:\n  app:\n    image: busybox:${TAG}\n",
                ),
                ("a/.env", "TAG=1\nnot a line\n"),
            ],
            &[],
        );
        assert!(
            error_of(&stacks[0]).starts_with("a/.env:2:1: "),
            "{}",
            error_of(&stacks[0])
        );
    }

    #[test]
    fn unreadable_files_fail_their_stack_alone() {
        let stacks = load(
            &[
                ("a/compose.yaml", APP),
                ("b/compose.yaml", APP),
                ("c/compose.yaml", APP),
            ],
            &[
                ("a/compose.override.yaml", "the file is not UTF-8 text"),
                ("b/.env", "cannot read the file: larger than 8 MiB"),
            ],
        );
        assert_eq!(
            error_of(&stacks[0]),
            "a/compose.override.yaml:1:1: the file is not UTF-8 text"
        );
        assert!(error_of(&stacks[1]).starts_with("b/.env:1:1: cannot read the file"));
        assert!(stacks[2].loaded.error.is_none());
    }

    #[test]
    fn an_invalid_name_fails_the_stack_at_its_line() {
        let stacks = load(&[("a/compose.yaml", &format!("{APP}name: My App\n"))], &[]);
        assert!(
            error_of(&stacks[0])
                .starts_with("a/compose.yaml:4:1: `My App` is not a valid project name"),
            "{}",
            error_of(&stacks[0])
        );
    }

    /// The `container_name:` of a stack's first service.
    fn container_name(stack: &Stack) -> Option<String> {
        stack.loaded.services[0]
            .service
            .as_ref()
            .and_then(|s| s.container_name.clone())
    }

    #[test]
    fn compose_project_name_is_the_project_s_name_unless_the_environment_sets_it() {
        let file = "services:\n  app:\n    image: busybox\n    container_name: ${COMPOSE_PROJECT_NAME}-app\n";
        // From the folder, else from `name:`, which keeps its first reading.
        let stacks = load(
            &[
                ("web/compose.yaml", file),
                (
                    "db/compose.yaml",
                    &format!("name: x${{COMPOSE_PROJECT_NAME:-db}}\n{file}"),
                ),
            ],
            &[],
        );
        let by = |p: &str| stacks.iter().find(|s| s.project.as_deref() == Some(p));
        assert_eq!(
            container_name(by("web").unwrap()).as_deref(),
            Some("web-app")
        );
        assert_eq!(
            container_name(by("xdb").unwrap()).as_deref(),
            Some("xdb-app")
        );
        // Set in the environment (or the `.env`): that value.
        let (defs, _) = discover(
            &["web/compose.yaml".to_owned()],
            "repo",
            &Selection::default(),
        )
        .unwrap();
        let texts = BTreeMap::from([("web/compose.yaml".to_owned(), file.to_owned())]);
        let env = Vars::from([(PROJECT_NAME_VAR.to_owned(), "mine".to_owned())]);
        let stacks = load_all(defs, &texts, &BTreeMap::new(), &env, &BTreeMap::new());
        assert_eq!(container_name(&stacks[0]).as_deref(), Some("mine-app"));
        assert_eq!(stacks[0].project.as_deref(), Some("web"));
    }

    #[test]
    fn one_project_name_in_two_folders_fails_both() {
        let named = format!("name: media\n{APP}");
        let stacks = load(
            &[
                ("a/compose.yaml", &named),
                ("b/compose.yaml", &named),
                ("media/compose.yaml", "services:\n  app: [\n"),
                ("c/compose.yaml", APP),
            ],
            &[],
        );
        assert_eq!(
            error_of(&stacks[0]),
            "a/compose.yaml:1:1: the project name `media` is also the project of the stack in `b`; give each stack its own `name:`"
        );
        assert!(error_of(&stacks[1]).contains("the stack in `a`"));
        // The folder `media` has no readable name: its own error, no part in the
        // clash (its folder name gives `media` too).
        assert!(
            error_of(&stacks[3]).contains("invalid YAML"),
            "{}",
            error_of(&stacks[3])
        );
        assert!(stacks[2].loaded.error.is_none(), "{}", error_of(&stacks[2]));
    }
}
