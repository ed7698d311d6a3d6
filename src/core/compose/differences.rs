//! Places where podman-compose reads a file otherwise than the compose
//! specification, which only the text before interpolation shows (the loaded
//! services are interpolated already): an `environment:` value naming a
//! variable of the same `environment:` that the interpolation variables lack,
//! one naming `${COMPOSE_PROJECT_NAME}` (which podman-compose 1.3 sets only
//! after it interpolated), and a list-form label whose key has a `$`.
//! podman-compose turns both lists into mappings before it interpolates, and
//! interpolates only the values, with the service's own `environment:` among
//! the variables it reads.
//! `convert::coverage` makes them notes (docs/stacks.md, "Differences from
//! podman-compose").

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

use super::{FileDoc, service_key_pos};
use crate::core::diag::Pos;
use crate::core::interpolate::{self, Vars};

/// One such place, located at its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextDifference {
    /// The service.
    pub service: String,
    /// The file and position of the entry (of the key, when the entry's own
    /// line cannot be told: a flow sequence or mapping).
    pub file: String,
    /// See `file`.
    pub pos: Pos,
    /// What differs.
    pub kind: TextDifferenceKind,
}

/// What a [`TextDifference`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextDifferenceKind {
    /// `environment:` variable `var` refers to `refers`, variables of the same
    /// `environment:` that the interpolation variables do not set.
    EnvSelfReference {
        /// The variable whose value refers to the others.
        var: String,
        /// The variables it refers to.
        refers: Vec<String>,
    },
    /// `environment:` variable `var` refers to `${COMPOSE_PROJECT_NAME}`,
    /// which podman-compose 1.3 interpolates before it sets it (to nothing).
    ProjectName {
        /// The variable.
        var: String,
    },
    /// A list-form `labels:` entry whose key has a `$` (`"$TEST_LABELS=x"`).
    LabelKeyVariable {
        /// The entry as written.
        entry: String,
    },
}

/// The entries of an `environment:` or `labels:` value as (key, value, text as
/// written for the list form); mapping values that are not strings count as
/// having no variables.
fn entries(v: &Value) -> Vec<(String, String, Option<String>)> {
    match v {
        Value::Mapping(m) => m
            .iter()
            .filter_map(|(k, v)| {
                let k = k.as_str()?.to_owned();
                Some((k, v.as_str().unwrap_or_default().to_owned(), None))
            })
            .collect(),
        Value::Sequence(l) => l
            .iter()
            .filter_map(Value::as_str)
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_owned(), v.to_owned(), Some(e.to_owned()))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The variables a text refers to (`$A`, `${A}`, `${A:-$B}` …; not `$$A`).
fn references(text: &str) -> BTreeSet<String> {
    interpolate::interpolate(text, &Vars::new())
        .map(|i| i.missing.into_iter().collect())
        .unwrap_or_default()
}

/// Every place of the files' services (before interpolation) where
/// podman-compose reads an `environment:` or a label otherwise; `vars` are the
/// interpolation variables.
pub(super) fn find(docs: &[FileDoc<'_>], vars: &Vars) -> Vec<TextDifference> {
    let mut out = Vec::new();
    for doc in docs {
        let Some(services) = doc.raw.get("services").and_then(Value::as_mapping) else {
            continue;
        };
        for (name, svc) in services {
            let Some(name) = name.as_str() else { continue };
            if let Some(env) = svc.get("environment") {
                let entries = entries(env);
                let keys: BTreeSet<&str> = entries.iter().map(|(k, _, _)| k.as_str()).collect();
                for (var, value, _) in &entries {
                    let named = references(value);
                    if named.contains(crate::core::stacks::PROJECT_NAME_VAR) {
                        let (file, pos) = entry_pos(docs, doc, name, "environment", var);
                        out.push(TextDifference {
                            service: name.to_owned(),
                            file,
                            pos,
                            kind: TextDifferenceKind::ProjectName { var: var.clone() },
                        });
                    }
                    let refers: Vec<String> = named
                        .into_iter()
                        .filter(|r| keys.contains(r.as_str()) && !vars.contains_key(r))
                        .collect();
                    if refers.is_empty() {
                        continue;
                    }
                    let (file, pos) = entry_pos(docs, doc, name, "environment", var);
                    out.push(TextDifference {
                        service: name.to_owned(),
                        file,
                        pos,
                        kind: TextDifferenceKind::EnvSelfReference {
                            var: var.clone(),
                            refers,
                        },
                    });
                }
            }
            if let Some(labels) = svc.get("labels") {
                for (key, _, written) in entries(labels) {
                    let Some(entry) = written.filter(|_| key.contains('$')) else {
                        continue;
                    };
                    let (file, pos) = entry_pos(docs, doc, name, "labels", &key);
                    out.push(TextDifference {
                        service: name.to_owned(),
                        file,
                        pos,
                        kind: TextDifferenceKind::LabelKeyVariable { entry },
                    });
                }
            }
        }
    }
    out
}

/// Where entry `entry_key` of a service's `key:` block is written in `doc`:
/// the first line after `key:` within the service whose text, past a `- ` and
/// a quote, starts with the entry's key and then `:` or `=`; else at `key:`.
fn entry_pos(
    docs: &[FileDoc<'_>],
    doc: &FileDoc<'_>,
    service: &str,
    key: &str,
    entry_key: &str,
) -> (String, Pos) {
    let at_key = service_key_pos(std::slice::from_ref(doc), service, key);
    let fallback = || {
        if at_key.0 == doc.path {
            at_key.clone()
        } else {
            service_key_pos(docs, service, key)
        }
    };
    if at_key.0 != doc.path {
        return fallback();
    }
    let end = doc
        .scan
        .services
        .iter()
        .map(|(_, l)| *l)
        .filter(|l| *l > at_key.1.line)
        .min()
        .unwrap_or(usize::MAX);
    // The block ends at a line indented no deeper than the key that is not
    // an item of its sequence (`labels:` and `- a` may share a column).
    let key_indent = at_key.1.column.saturating_sub(1);
    let mut offset = 0;
    for (i, line) in doc.text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        if n > at_key.1.line && n < end {
            let body = line.trim_start();
            let indent = line.len() - body.len();
            if !body.trim().is_empty()
                && !body.starts_with('#')
                && indent <= key_indent
                && !body.starts_with('-')
            {
                break;
            }
            let item = body.strip_prefix('-').map_or(body, str::trim_start);
            let item = item.trim_start_matches(['"', '\'']);
            if let Some(rest) = item.strip_prefix(entry_key)
                && (rest.starts_with('=') || rest.trim_start_matches(['"', '\'']).starts_with(':'))
            {
                return (
                    doc.path.to_owned(),
                    Pos::of_offset(doc.text, offset + indent),
                );
            }
        }
        offset += line.len();
    }
    fallback()
}
