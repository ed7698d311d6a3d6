//! A stack made of several files: `include:` (top level) and `extends:` (per
//! service, from the same file or another `file:`). Pure: the edge reads the
//! files [`wanted_files`] names and hands their texts in ([`Extra`]); here they
//! are parsed, interpolated and merged with compose's rules (mappings key by
//! key, `environment`/`labels` by variable, the lists of `APPENDED` appended,
//! everything else replaced by the extending service's value).
//!
//! Paths: an included or extended file is relative to the file that names it,
//! and must stay inside the repository (an absolute path or one whose `..`
//! climbs out of it is an error). The relative paths of a service taken from a
//! file in another folder (bind sources, `env_file`, `build` contexts, the
//! included file's `secrets`/`configs` files) are rewritten relative to the
//! stack's folder, so the rest of Magos resolves them as compose does.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::{Mapping, Value};

use super::{
    FileDoc, Loaded, StackSource, interpolate_value, merge, read_file, service_key_pos, top_pos,
};
use crate::core::diag::{Diagnostic, Pos};

/// The most files one stack may take in through `include` and `extends`.
pub const MAX_EXTRA_FILES: usize = 64;

/// How deep `extends` may chain.
const MAX_EXTENDS_DEPTH: usize = 32;

/// The texts of the files a stack includes or extends from, as the edge read
/// them (paths relative to the repository).
#[derive(Debug, Clone, Copy)]
pub struct Extra<'a> {
    /// The files read.
    pub texts: &'a BTreeMap<String, String>,
    /// The files that could not be read, with why.
    pub unreadable: &'a BTreeMap<String, Diagnostic>,
}

/// The files (relative to the repository) that the stack's files name in
/// `include:` and `extends.file`, as far as the texts in `known` show, that are
/// not in `known` yet. The edge reads them and asks again until none is new.
pub fn wanted_files(src: &StackSource<'_>, known: &BTreeMap<String, String>) -> Vec<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<(String, String)> = std::iter::once(src.compose)
        .chain(src.override_file)
        .map(|(p, t)| (p.to_owned(), t.to_owned()))
        .collect();
    let mut wanted = Vec::new();
    while let Some((path, text)) = queue.pop() {
        if !seen.insert(path.clone()) || seen.len() > MAX_EXTRA_FILES + 2 {
            continue;
        }
        // Most files name no other file: no second parse for them.
        let names_files = ["include", "extends", "x-magos"]
            .iter()
            .any(|k| text.contains(k));
        if !names_files || super::prescan(&path, &text).is_err() {
            continue;
        }
        let Ok(raw) = serde_yaml_ng::from_str::<Value>(&text) else {
            continue;
        };
        for written in referenced(&raw) {
            let Ok(p) = join(dir_of(&path), &written) else {
                continue;
            };
            match known.get(&p) {
                Some(t) => queue.push((p, t.clone())),
                None if !wanted.contains(&p) => wanted.push(p),
                None => {}
            }
        }
    }
    wanted
}

/// The paths written in a file's `include:`, `extends.file` and
/// `x-magos.files` values.
fn referenced(raw: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::Sequence(files)) = raw.get("x-magos").and_then(|x| x.get("files")) {
        out.extend(files.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if let Some(Value::Sequence(items)) = raw.get("include") {
        for item in items {
            match item {
                Value::String(p) => out.push(p.clone()),
                Value::Mapping(m) => match m.get("path") {
                    Some(Value::String(p)) => out.push(p.clone()),
                    Some(Value::Sequence(ps)) => {
                        out.extend(ps.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    if let Some(Value::Mapping(services)) = raw.get("services") {
        for (_, s) in services {
            if let Some(f) = s
                .get("extends")
                .and_then(|e| e.get("file"))
                .and_then(Value::as_str)
            {
                out.push(f.to_owned());
            }
        }
    }
    out
}

/// The folder of a repository-relative file (`""` for the root).
fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// `written` relative to the folder `dir` (both inside the repository), as a
/// normalised repository-relative path; an error when it is absolute or
/// climbs out of the repository.
pub fn join(dir: &str, written: &str) -> Result<String, String> {
    if written.starts_with('/') || written.starts_with('~') {
        return Err(format!(
            "`{written}` is not inside the repository; write it relative to this file"
        ));
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    for c in written.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("`{written}` leads out of the repository"));
                }
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(format!("`{written}` is not a file"));
    }
    Ok(parts.join("/"))
}

/// The path from folder `from` to folder `to` (both repository-relative), `""`
/// when they are the same.
fn relative(from: &str, to: &str) -> String {
    let a: Vec<&str> = from.split('/').filter(|c| !c.is_empty()).collect();
    let b: Vec<&str> = to.split('/').filter(|c| !c.is_empty()).collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<&str> = vec![".."; a.len() - common];
    parts.extend(&b[common..]);
    parts.join("/")
}

/// A relative host path as written in a file of folder `prefix` (relative to
/// the stack's folder), rewritten relative to the stack's folder.
fn rebase_path(prefix: &str, p: &str) -> Option<String> {
    let relative = p == "." || p == ".." || p.starts_with("./") || p.starts_with("../");
    (relative && !prefix.is_empty()).then(|| clean(prefix, p))
}

/// `prefix/p` with `.` and inner `..` taken out, starting with `./` or `../`
/// so that compose reads it as a path.
fn clean(prefix: &str, p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in prefix.split('/').chain(p.split('/')) {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    match parts.first() {
        None => ".".to_owned(),
        Some(&"..") => parts.join("/"),
        Some(_) => format!("./{}", parts.join("/")),
    }
}

fn rebase_str(prefix: &str, v: &mut Value) {
    if let Value::String(s) = v
        && let Some(n) = rebase_path(prefix, s)
    {
        *s = n;
    }
}

/// Rewrites a service's relative host paths (taken from a file whose folder is
/// `prefix` from the stack's folder) relative to the stack's folder.
fn rebase_service(prefix: &str, s: &mut Value) {
    if prefix.is_empty() {
        return;
    }
    let Value::Mapping(m) = s else { return };
    if let Some(Value::Sequence(vols)) = m.get_mut("volumes") {
        for v in vols {
            match v {
                Value::String(short) => {
                    if let Some((src, rest)) = short.split_once(':')
                        && let Some(n) = rebase_path(prefix, src)
                    {
                        *short = format!("{n}:{rest}");
                    }
                }
                Value::Mapping(long) => {
                    if long.get("type").and_then(Value::as_str) == Some("bind")
                        && let Some(src) = long.get_mut("source")
                    {
                        rebase_str(prefix, src);
                    }
                }
                _ => {}
            }
        }
    }
    match m.get_mut("env_file") {
        Some(Value::Sequence(items)) => {
            for item in items {
                match item {
                    Value::Mapping(long) => {
                        if let Some(p) = long.get_mut("path") {
                            rebase_file(prefix, p);
                        }
                    }
                    other => rebase_file(prefix, other),
                }
            }
        }
        Some(one) => rebase_file(prefix, one),
        None => {}
    }
    match m.get_mut("build") {
        Some(Value::Mapping(b)) => {
            if let Some(c) = b.get_mut("context") {
                rebase_file(prefix, c);
            }
        }
        Some(ctx) => rebase_file(prefix, ctx),
        None => {}
    }
}

/// A path compose reads relative to its file even without `./` (`env_file`,
/// `build` contexts, `file:`).
fn rebase_file(prefix: &str, v: &mut Value) {
    if let Value::String(s) = v
        && !s.starts_with('/')
        && !s.starts_with('~')
        && !s.contains("://")
        && !prefix.is_empty()
    {
        *s = clean(prefix, s);
    }
}

/// The files `x-magos: {files: […]}` of the compose file (`docs[0]`) lists,
/// relative to the repository, in order; each is recorded in `out`. A wrong
/// shape, a path leaving the repository or a file that cannot be read fails the
/// stack at the key.
pub(super) fn compose_files(
    docs: &[FileDoc<'_>],
    extra: Extra<'_>,
    out: &mut Loaded,
) -> Vec<String> {
    let Some(doc) = docs.first() else {
        return Vec::new();
    };
    let Some(files) = doc.raw.get("x-magos").and_then(|x| x.get("files")) else {
        return Vec::new();
    };
    let (file, pos) = top_pos(docs, "x-magos");
    let fail = |out: &mut Loaded, m: String| {
        out.fail(Diagnostic::error(
            &file,
            pos,
            format!("`x-magos.files`: {m}"),
        ));
    };
    let Some(items) = files
        .as_sequence()
        .filter(|s| s.iter().all(Value::is_string))
    else {
        fail(out, "must be a list of files".to_owned());
        return Vec::new();
    };
    let mut paths = Vec::new();
    for written in items.iter().filter_map(Value::as_str) {
        let path = match join(dir_of(doc.path), written) {
            Ok(p) => p,
            Err(e) => {
                fail(out, e);
                continue;
            }
        };
        if path == doc.path || paths.contains(&path) {
            fail(out, format!("`{path}` is listed twice"));
            continue;
        }
        if !extra.texts.contains_key(&path) {
            let why = extra
                .unreadable
                .get(&path)
                .map_or_else(|| "it could not be read".to_owned(), |d| d.message.clone());
            fail(out, format!("`{path}` cannot be used: {why}"));
            continue;
        }
        out.files.push(path.clone());
        out.compose_files.push(path.clone());
        paths.push(path);
    }
    paths
}

/// One file taking part: its path, parsed text and interpolated content.
struct Part<'a> {
    doc: FileDoc<'a>,
    value: Mapping,
}

/// Reads, parses and interpolates one extra file; an error names `at` (the
/// `include`/`extends` that asked for it).
fn part<'a>(
    path: &'a str,
    extra: Extra<'a>,
    src: &StackSource<'_>,
    out: &mut Loaded,
    at: &(String, Pos),
) -> Option<Part<'a>> {
    let Some(text) = extra.texts.get(path) else {
        let why = extra
            .unreadable
            .get(path)
            .map_or_else(|| "it could not be read".to_owned(), |d| d.message.clone());
        out.fail(Diagnostic::error(
            &at.0,
            at.1,
            format!("`{path}` cannot be used: {why}"),
        ));
        return None;
    };
    let doc = match read_file(path, text) {
        Ok(d) => d,
        Err(d) => {
            out.fail(d);
            return None;
        }
    };
    let mut v = doc.raw.clone();
    interpolate_value(&mut v, &doc, src.vars, out);
    if !out.files.iter().any(|f| f == path) {
        out.files.push(path.to_owned());
    }
    let Value::Mapping(value) = v else {
        return None;
    };
    Some(Part { doc, value })
}

/// Where a file's services are, for `extends`.
struct Scope<'s, 'a> {
    /// The file's path, relative to the repository.
    path: &'s str,
    /// Its services (already merged with the override, for the stack's own).
    services: &'s Mapping,
    /// The parsed files, for positions.
    docs: &'s [FileDoc<'a>],
}

/// Resolves `extends:` of every service in `services` (from the files `docs`
/// at `path`), in place.
pub(super) fn resolve_extends(
    services: &mut Mapping,
    path: &str,
    docs: &[FileDoc<'_>],
    stack_dir: &str,
    src: &StackSource<'_>,
    extra: Extra<'_>,
    out: &mut Loaded,
) {
    let names: Vec<Value> = services
        .iter()
        .filter(|(_, s)| s.get("extends").is_some())
        .map(|(k, _)| k.clone())
        .collect();
    if names.is_empty() {
        return;
    }
    let snapshot = services.clone();
    let scope = Scope {
        path,
        services: &snapshot,
        docs,
    };
    for key in names {
        let Some(name) = key.as_str() else { continue };
        let mut chain = Vec::new();
        if let Some(v) = resolve(&scope, name, stack_dir, src, extra, out, &mut chain) {
            services.insert(key.clone(), v);
        }
    }
}

/// The service `name` of `scope` with its `extends` resolved, its relative
/// paths relative to the stack's folder; `None` after an error.
fn resolve(
    scope: &Scope<'_, '_>,
    name: &str,
    stack_dir: &str,
    src: &StackSource<'_>,
    extra: Extra<'_>,
    out: &mut Loaded,
    chain: &mut Vec<(String, String)>,
) -> Option<Value> {
    let here = service_key_pos(scope.docs, name, "extends");
    let mut own = scope.services.get(name)?.clone();
    let prefix = relative(stack_dir, dir_of(scope.path));
    let Some(ext) = own.as_mapping_mut().and_then(|m| m.remove("extends")) else {
        rebase_service(&prefix, &mut own);
        return Some(own);
    };
    let (base, file) = match &ext {
        Value::String(s) => (s.clone(), None),
        Value::Mapping(m) => match (m.get("service"), m.get("file")) {
            (Some(Value::String(s)), None | Some(Value::Null)) => (s.clone(), None),
            (Some(Value::String(s)), Some(Value::String(f))) => (s.clone(), Some(f.clone())),
            _ => {
                out.fail(Diagnostic::error(
                    &here.0,
                    here.1,
                    format!(
                        "service `{name}`: `extends` must name a `service` (and may name a `file`)"
                    ),
                ));
                return None;
            }
        },
        _ => {
            out.fail(Diagnostic::error(
                &here.0,
                here.1,
                format!(
                    "service `{name}`: `extends` must be a service name or `{{service, file}}`"
                ),
            ));
            return None;
        }
    };
    chain.push((scope.path.to_owned(), name.to_owned()));
    if chain.len() > MAX_EXTENDS_DEPTH {
        out.fail(Diagnostic::error(
            &here.0,
            here.1,
            format!("service `{name}`: `extends` chains more than {MAX_EXTENDS_DEPTH} services"),
        ));
        return None;
    }
    let resolved = match file {
        None => {
            if chain.iter().any(|(f, n)| f == scope.path && *n == base) {
                out.fail(Diagnostic::error(
                    &here.0,
                    here.1,
                    format!(
                        "service `{name}`: `extends` goes round in a circle ({})",
                        chain
                            .iter()
                            .map(|(_, n)| format!("`{n}`"))
                            .chain(std::iter::once(format!("`{base}`")))
                            .collect::<Vec<_>>()
                            .join(" → ")
                    ),
                ));
                return None;
            }
            if scope.services.get(base.as_str()).is_none() {
                out.fail(Diagnostic::error(
                    &here.0,
                    here.1,
                    format!(
                        "service `{name}` extends `{base}`, which `{}` does not define",
                        scope.path
                    ),
                ));
                return None;
            }
            resolve(scope, &base, stack_dir, src, extra, out, chain)
        }
        Some(f) => {
            let path = match join(dir_of(scope.path), &f) {
                Ok(p) => p,
                Err(e) => {
                    out.fail(Diagnostic::error(
                        &here.0,
                        here.1,
                        format!("service `{name}`: `extends.file`: {e}"),
                    ));
                    return None;
                }
            };
            if chain.iter().any(|(p, n)| *p == path && *n == base) {
                out.fail(Diagnostic::error(
                    &here.0,
                    here.1,
                    format!("service `{name}`: `extends` goes round in a circle through `{path}`"),
                ));
                return None;
            }
            let p = part(&path, extra, src, out, &here)?;
            let services = match p.value.get("services") {
                Some(Value::Mapping(m)) => m.clone(),
                _ => Mapping::new(),
            };
            if services.get(base.as_str()).is_none() {
                out.fail(Diagnostic::error(
                    &here.0,
                    here.1,
                    format!("service `{name}` extends `{base}`, which `{path}` does not define"),
                ));
                return None;
            }
            let docs = [p.doc];
            let scope = Scope {
                path: &path,
                services: &services,
                docs: &docs,
            };
            resolve(&scope, &base, stack_dir, src, extra, out, chain)
        }
    };
    chain.pop();
    let mut merged = resolved?;
    rebase_service(&prefix, &mut own);
    merge(&mut merged, own, None);
    Some(merged)
}

/// Takes in the top-level `include:` of `top` (the stack's own files, merged):
/// each included file's services, networks, volumes, secrets and configs join
/// the stack; a name both define is an error. Nested includes are followed.
pub(super) fn resolve_include(
    top: &mut Mapping,
    docs: &[FileDoc<'_>],
    stack_dir: &str,
    src: &StackSource<'_>,
    extra: Extra<'_>,
    out: &mut Loaded,
) {
    let Some(include) = top.remove("include") else {
        return;
    };
    let at = top_pos(docs, "include");
    let from = docs.first().map_or("", |d| d.path);
    let mut seen = BTreeSet::from([from.to_owned()]);
    include_into(
        top, &include, from, &at, stack_dir, src, extra, out, &mut seen, 0,
    );
}

#[allow(clippy::too_many_arguments)]
fn include_into(
    top: &mut Mapping,
    include: &Value,
    from: &str,
    at: &(String, Pos),
    stack_dir: &str,
    src: &StackSource<'_>,
    extra: Extra<'_>,
    out: &mut Loaded,
    seen: &mut BTreeSet<String>,
    depth: usize,
) {
    let fail = |out: &mut Loaded, msg: String| {
        out.fail(Diagnostic::error(&at.0, at.1, format!("`include`: {msg}")));
    };
    let Value::Sequence(items) = include else {
        fail(out, "must be a list of files".to_owned());
        return;
    };
    for item in items {
        let paths: Vec<String> = match item {
            Value::String(p) => vec![p.clone()],
            Value::Mapping(m) => {
                for k in m.keys().filter_map(Value::as_str) {
                    if k != "path" {
                        out.unsupported.push(format!("include.{k}"));
                    }
                }
                match m.get("path") {
                    Some(Value::String(p)) => vec![p.clone()],
                    Some(Value::Sequence(ps)) if ps.iter().all(Value::is_string) => ps
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                    _ => {
                        fail(
                            out,
                            "an entry's `path` must be a file or a list of files".to_owned(),
                        );
                        continue;
                    }
                }
            }
            _ => {
                fail(out, "an entry must be a file or `{path: …}`".to_owned());
                continue;
            }
        };
        // Several paths in one entry are one project: merged like an override.
        let mut merged = Value::Mapping(Mapping::new());
        let mut first = None;
        for written in paths {
            let path = match join(dir_of(from), &written) {
                Ok(p) => p,
                Err(e) => {
                    fail(out, e);
                    continue;
                }
            };
            if !seen.insert(path.clone()) || depth > MAX_EXTRA_FILES {
                fail(
                    out,
                    format!("`{path}` is included twice (or includes itself)"),
                );
                continue;
            }
            let Some(mut p) = part(&path, extra, src, out, at) else {
                continue;
            };
            // Its own includes first, then its own `extends`.
            if let Some(inner) = p.value.remove("include") {
                let inner_at = top_pos(std::slice::from_ref(&p.doc), "include");
                include_into(
                    &mut p.value,
                    &inner,
                    &path,
                    &inner_at,
                    stack_dir,
                    src,
                    extra,
                    out,
                    seen,
                    depth + 1,
                );
            }
            let prefix = relative(stack_dir, dir_of(&path));
            if let Some(Value::Mapping(services)) = p.value.get_mut("services") {
                // `extends` rebases what it resolves; the others are rebased here.
                let plain: Vec<Value> = services
                    .iter()
                    .filter(|(_, s)| s.get("extends").is_none())
                    .map(|(k, _)| k.clone())
                    .collect();
                let docs = std::slice::from_ref(&p.doc);
                resolve_extends(services, &path, docs, stack_dir, src, extra, out);
                for k in plain {
                    if let Some(s) = services.get_mut(&k) {
                        rebase_service(&prefix, s);
                    }
                    if let Some(name) = k.as_str() {
                        out.positions
                            .entry(name.to_owned())
                            .or_insert_with(|| super::service_pos(docs, name));
                    }
                }
            }
            for kind in ["secrets", "configs"] {
                if let Some(Value::Mapping(defs)) = p.value.get_mut(kind) {
                    for (_, d) in defs.iter_mut() {
                        if let Some(f) = d.get_mut("file") {
                            rebase_file(&prefix, f);
                        }
                    }
                }
            }
            first.get_or_insert_with(|| path.clone());
            merge(&mut merged, Value::Mapping(p.value), None);
        }
        let Some(path) = first else { continue };
        let Value::Mapping(merged) = merged else {
            continue;
        };
        for kind in ["services", "networks", "volumes", "secrets", "configs"] {
            let Some(Value::Mapping(theirs)) = merged.get(kind) else {
                continue;
            };
            let ours = top
                .entry(Value::String(kind.to_owned()))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if ours.is_null() {
                *ours = Value::Mapping(Mapping::new());
            }
            let Value::Mapping(ours) = ours else { continue };
            for (k, v) in theirs {
                if ours.contains_key(k) {
                    fail(
                        out,
                        format!(
                            "`{path}` defines {kind} `{}`, which the stack defines as well; rename one",
                            k.as_str().unwrap_or("?")
                        ),
                    );
                    continue;
                }
                ours.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
