//! Keeps the architecture invariants of ARCHITECTURE.md true:
//!
//! - the core does no I/O: no file under `src/core/` names the filesystem,
//!   environment, clock, processes, network or an async runtime;
//! - the layers point one way: the edges import only `config` and `core`; `apply`
//!   never imports `engine`, `daemon` or `cli`; only the front ends (`cli`,
//!   `daemon`) import `engine`; nothing outside `cli` imports `cli`;
//! - no import circle between top-level modules, nor between the files of one
//!   module.
//!
//! Imports are read from the source text: every `crate::NAME` (and each name of a
//! `crate::{…}` group) outside comments is an import of the top-level module
//! `NAME`; inside a module's folder, `super::FILE` and `crate::MODULE::FILE` name
//! a sibling file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::env",
    "std::process",
    "std::net",
    "std::io::stdin",
    "SystemTime::now",
    "Instant::now",
    "tokio",
    "async fn",
    ".await",
];

#[test]
fn the_core_does_no_io() {
    let dir = src().join("core");
    let mut checked = 0;
    for path in rust_files(&dir, true) {
        // A unit test file may take an `Instant` from the clock: the type has
        // no other constructor. The code it tests takes the time passed in.
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for word in FORBIDDEN {
            assert!(!text.contains(word), "{} uses `{word}`", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} core files found");
}

/// The single-purpose edges: each talks to one thing.
const EDGES: &[&str] = &[
    "git", "registry", "podman", "docker", "secrets", "server", "systemd", "lock", "logging",
    "notify",
];

/// The front ends: the only modules that may use the engine.
const FRONT_ENDS: &[&str] = &["cli", "daemon"];

#[test]
fn the_edges_import_only_config_and_core() {
    let graph = modules();
    for edge in EDGES {
        let imports = graph
            .get(*edge)
            .unwrap_or_else(|| panic!("no module `{edge}`"));
        let others: Vec<&String> = imports
            .iter()
            .filter(|m| m.as_str() != "config" && m.as_str() != "core")
            .collect();
        assert!(
            others.is_empty(),
            "the edge `{edge}` imports {others:?}: an edge imports only `config` and `core`; \
             combining edges is the engine's work"
        );
    }
    assert!(graph["core"].is_empty(), "core imports {:?}", graph["core"]);
    let config: Vec<&String> = graph["config"].iter().filter(|m| *m != "core").collect();
    assert!(config.is_empty(), "config imports {config:?}");
}

#[test]
fn apply_never_imports_the_layers_above_it() {
    let graph = modules();
    for above in ["engine", "daemon", "cli"] {
        assert!(
            !graph["apply"].contains(above),
            "`apply` imports `{above}`: apply is used by the engine and the front ends, never the reverse"
        );
    }
}

#[test]
fn only_the_front_ends_use_the_engine_and_only_cli_uses_cli() {
    let graph = modules();
    for (module, imports) in &graph {
        if module != "cli" {
            assert!(
                !imports.contains("cli"),
                "`{module}` imports `cli`: nothing outside `cli` may (put what it needs in `engine` or `core`)"
            );
        }
        if module != "engine" && !FRONT_ENDS.contains(&module.as_str()) {
            assert!(
                !imports.contains("engine"),
                "`{module}` imports `engine`: only the front ends {FRONT_ENDS:?} may"
            );
        }
    }
}

#[test]
fn no_import_circle_between_top_level_modules() {
    let graph = modules();
    assert!(graph.len() >= 15, "only {} modules found", graph.len());
    if let Some(circle) = circle(&graph) {
        panic!("import circle between modules: {}", circle.join(" → "));
    }
}

#[test]
fn no_import_circle_between_the_files_of_a_module() {
    let mut checked = 0;
    for entry in std::fs::read_dir(src()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let module = dir.file_name().unwrap().to_string_lossy().into_owned();
        let files: BTreeMap<String, PathBuf> = rust_files(&dir, false)
            .into_iter()
            .filter_map(|p| {
                let stem = p.file_stem()?.to_string_lossy().into_owned();
                (stem != "mod" && stem != "tests").then_some((stem, p))
            })
            .collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (stem, path) in &files {
            let text = code(&std::fs::read_to_string(path).unwrap());
            let mut names = names_after(&text, "super::");
            names.extend(names_after(&text, &format!("crate::{module}::")));
            names.retain(|n| n != stem && files.contains_key(n));
            graph.insert(stem.clone(), names);
        }
        if let Some(circle) = circle(&graph) {
            panic!(
                "import circle between the files of src/{module}/: {}",
                circle.join(" → ")
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} module folders found");
}

/// A reintroduced circle is found.
#[test]
fn a_circle_is_found() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("daemon".into(), ["cli".to_owned(), "core".into()].into());
    graph.insert("cli".into(), ["daemon".to_owned()].into());
    graph.insert("core".into(), BTreeSet::new());
    let found = circle(&graph).expect("the circle is found");
    assert!(found.contains(&"cli".to_owned()) && found.contains(&"daemon".to_owned()));
    graph.get_mut("cli").unwrap().clear();
    assert_eq!(circle(&graph), None);
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every top-level module with the top-level modules it imports.
fn modules() -> BTreeMap<String, BTreeSet<String>> {
    let mut names = BTreeMap::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "main" || name == "lib" {
            continue;
        }
        if path.is_dir() || path.extension().is_some_and(|e| e == "rs") {
            names.insert(name, path);
        }
    }
    let mut graph = BTreeMap::new();
    for (name, path) in &names {
        let files = if path.is_dir() {
            rust_files(path, true)
        } else {
            vec![path.clone()]
        };
        let mut imports = BTreeSet::new();
        for f in files {
            let text = code(&std::fs::read_to_string(&f).unwrap());
            imports.extend(names_after(&text, "crate::"));
        }
        imports.retain(|m| m != name && names.contains_key(m));
        graph.insert(name.clone(), imports);
    }
    graph
}

fn rust_files(dir: &Path, recursive: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if recursive {
                out.extend(rust_files(&path, true));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The text without `//` comments (doc comments name modules in links).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers right after each `prefix`, and those at the top of a
/// `prefix{…}` group.
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        if text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let rest = &text[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start && depth == 0 => {
                        out.insert(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// One import circle of `graph`, if there is one: its nodes in order, the
/// first repeated at the end.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let from = path.iter().position(|n| n == next).unwrap_or(0);
                    let mut found = path[from..].to_vec();
                    found.push(next.clone());
                    return Some(found);
                }
                Mark::New => {
                    if let Some(found) = visit(next, graph, marks, path) {
                        return Some(found);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(found) = visit(node, graph, &mut marks, &mut Vec::new())
        {
            return Some(found);
        }
    }
    None
}
