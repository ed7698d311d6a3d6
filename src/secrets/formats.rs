//! Reading and writing the file formats sops writes (YAML, JSON, dotenv, INI and
//! the binary envelope) as [`Node`] trees, and finding their sops metadata.
//!
//! Layouts follow sops's stores: YAML and JSON keep the metadata under a top-level
//! `sops` key, INI in a `[sops]` section of flattened keys, dotenv as flattened
//! `sops_…` keys (`sops_age__list_0__map_enc`), and the binary format is a JSON
//! object whose `data` key holds the whole file. Comments survive in dotenv and
//! INI; YAML comments are not read (they carry no data and are not part of the
//! MAC), so a decrypted YAML file is written without them. YAML is read and
//! written by [`super::yaml`].

use std::fmt::Write as _;

use serde::Deserialize;

use super::Format;
use super::SopsError;
use super::tree::{Entry, Key, Node};

/// The sops metadata key (and INI section), and the prefix of flattened keys.
const SOPS_KEY: &str = "sops";
const SOPS_PREFIX: &str = "sops_";

/// A parsed sops file: its documents (branches) without the metadata, and the
/// metadata as a (nested, unflattened) map.
pub(crate) struct Parsed {
    /// One list of entries per document (YAML may hold several).
    pub branches: Vec<Vec<Entry>>,
    /// The `sops` metadata, unflattened.
    pub metadata: Node,
}

/// Parses a file in `format` and takes its sops metadata out.
pub(crate) fn parse(text: &[u8], format: Format) -> Result<Parsed, SopsError> {
    let mut branches = parse_plain(text, format)?;
    let metadata = extract_metadata(&mut branches, format)?;
    Ok(Parsed { branches, metadata })
}

fn parse_err(format: Format, message: impl Into<String>) -> SopsError {
    SopsError::Parse {
        format,
        message: message.into(),
    }
}

fn utf8(text: &[u8], format: Format) -> Result<&str, SopsError> {
    std::str::from_utf8(text).map_err(|e| {
        parse_err(
            format,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Parses a file in `format` into its documents, metadata included.
pub(crate) fn parse_plain(text: &[u8], format: Format) -> Result<Vec<Vec<Entry>>, SopsError> {
    match format {
        Format::Yaml => super::yaml::parse(utf8(text, format)?),
        Format::Json | Format::Binary => parse_json(text, format).map(|b| vec![b]),
        Format::Dotenv => parse_dotenv(utf8(text, format)?).map(|b| vec![b]),
        Format::Ini => parse_ini(utf8(text, format)?).map(|b| vec![b]),
    }
}

fn parse_json(text: &[u8], format: Format) -> Result<Vec<Entry>, SopsError> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let node = Node::deserialize(&mut de).map_err(|e| parse_err(format, e.to_string()))?;
    de.end().map_err(|e| parse_err(format, e.to_string()))?;
    match node {
        Node::Map(entries) => Ok(entries),
        _ => Err(parse_err(
            format,
            "the top level is not an object; sops files are objects at the top level",
        )),
    }
}

/// dotenv as sops reads it: one `KEY=value` per line (split at the first `=`,
/// nothing trimmed or unquoted, `\n` in a value is a newline), `#` lines are
/// comments, empty lines are skipped.
fn parse_dotenv(text: &str) -> Result<Vec<Entry>, SopsError> {
    let mut entries = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            entries.push(Entry::comment(comment));
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(parse_err(
                Format::Dotenv,
                format!("line {}: no `=` in the line", i + 1),
            ));
        };
        entries.push(Entry::named(key, Node::Str(value.replace("\\n", "\n"))));
    }
    Ok(entries)
}

/// The name of the INI section holding keys that precede every section header.
const INI_DEFAULT: &str = "DEFAULT";

/// INI as sops reads it (through go-ini): `[section]` headers, `key = value` or
/// `key: value` lines, `;`/`#` comment lines, and values optionally quoted with
/// `"`, `` ` `` or `"""`; an unquoted value ends at an inline `#` or `;`. Keys
/// before the first header belong to the `DEFAULT` section.
fn parse_ini(text: &str) -> Result<Vec<Entry>, SopsError> {
    let mut sections: Vec<(String, Vec<Entry>)> = vec![(INI_DEFAULT.to_owned(), Vec::new())];
    let mut pending: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let lineno = i + 1;
        if line.is_empty() {
            continue;
        }
        if line.starts_with(';') || line.starts_with('#') {
            pending.push(strip_ini_comment(line).to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(parse_err(
                    Format::Ini,
                    format!("line {lineno}: a section header without `]`"),
                ));
            };
            let name = rest[..end].trim();
            if name.is_empty() {
                return Err(parse_err(
                    Format::Ini,
                    format!("line {lineno}: an empty section name"),
                ));
            }
            let entries = pending.drain(..).map(Entry::comment).collect();
            sections.push((name.to_owned(), entries));
            continue;
        }
        let (key, value) = split_ini_key(line).ok_or_else(|| {
            parse_err(
                Format::Ini,
                format!("line {lineno}: no `=` or `:` after the key"),
            )
        })?;
        let value = unquote_ini_value(value).ok_or_else(|| {
            parse_err(
                Format::Ini,
                format!("line {lineno}: key `{key}`: an unterminated quoted value"),
            )
        })?;
        if let Some((_, entries)) = sections.last_mut() {
            entries.push(Entry::named(key, Node::Str(value)));
            // go-ini attaches the comment above a key to the key; sops lists it after.
            entries.extend(pending.drain(..).map(Entry::comment));
        }
    }
    Ok(sections
        .into_iter()
        .map(|(name, entries)| Entry::named(name, Node::Map(entries)))
        .collect())
}

fn strip_ini_comment(line: &str) -> &str {
    if line.starts_with(';') {
        line.trim_start_matches([';', ' '])
    } else {
        line.trim_start_matches(['#', ' '])
    }
}

fn split_ini_key(line: &str) -> Option<(String, &str)> {
    // A key may be quoted with ` or " to contain the delimiters.
    for q in ['`', '"'] {
        if let Some(rest) = line.strip_prefix(q) {
            let end = rest.find(q)?;
            let key = rest[..end].to_owned();
            let after = rest[end + 1..].trim_start();
            let value = after.strip_prefix(['=', ':'])?;
            return Some((key, value.trim()));
        }
    }
    let pos = line.find(['=', ':'])?;
    Some((line[..pos].trim().to_owned(), line[pos + 1..].trim()))
}

fn unquote_ini_value(v: &str) -> Option<String> {
    if let Some(rest) = v.strip_prefix("\"\"\"") {
        let end = rest.find("\"\"\"")?;
        return Some(rest[..end].to_owned());
    }
    for q in ['`', '"'] {
        if let Some(rest) = v.strip_prefix(q) {
            let end = rest.find(q)?;
            return Some(rest[..end].to_owned());
        }
    }
    Some(match v.find(['#', ';']) {
        Some(pos) => v[..pos].trim_end().to_owned(),
        None => v.to_owned(),
    })
}

/// Takes the metadata out of the documents, as sops does for each format.
fn extract_metadata(branches: &mut [Vec<Entry>], format: Format) -> Result<Node, SopsError> {
    match format {
        Format::Yaml | Format::Json | Format::Binary | Format::Ini => {
            let mut found: Option<Node> = None;
            for (bi, branch) in branches.iter_mut().enumerate() {
                let (sops, rest): (Vec<Entry>, Vec<Entry>) = std::mem::take(branch)
                    .into_iter()
                    .partition(|e| e.name() == Some(SOPS_KEY));
                *branch = rest;
                if bi != 0 {
                    continue;
                }
                let mut sops = sops.into_iter();
                if let Some(entry) = sops.next() {
                    if sops.next().is_some() {
                        return Err(SopsError::Metadata {
                            message: "the `sops` key appears twice".into(),
                        });
                    }
                    if !matches!(entry.value, Node::Map(_)) {
                        return Err(SopsError::Metadata {
                            message: "the `sops` entry is not a map".into(),
                        });
                    }
                    found = Some(entry.value);
                }
            }
            let md = found.ok_or(SopsError::NoMetadata)?;
            if format == Format::Ini {
                let entries = match md {
                    Node::Map(entries) => entries,
                    _ => Vec::new(),
                };
                let flat: Vec<(String, Node)> = entries
                    .into_iter()
                    .filter_map(|e| match e.key {
                        Key::Name(n) => Some((
                            n,
                            match e.value {
                                Node::Str(s) => Node::Str(s.replace("\\n", "\n")),
                                other => other,
                            },
                        )),
                        Key::Comment(_) => None,
                    })
                    .collect();
                unflatten(flat)
            } else {
                Ok(md)
            }
        }
        Format::Dotenv => {
            let Some(branch) = branches.first_mut() else {
                return Err(SopsError::NoMetadata);
            };
            let (sops, rest): (Vec<Entry>, Vec<Entry>) = std::mem::take(branch)
                .into_iter()
                .partition(|e| e.name().is_some_and(|n| n.starts_with(SOPS_PREFIX)));
            *branch = rest;
            let flat: Vec<(String, Node)> = sops
                .into_iter()
                .filter_map(|e| match e.key {
                    Key::Name(n) => Some((n[SOPS_PREFIX.len()..].to_owned(), e.value)),
                    Key::Comment(_) => None,
                })
                .collect();
            if flat.is_empty() {
                return Err(SopsError::NoMetadata);
            }
            unflatten(flat)
        }
    }
}

const MAP_SEP: &str = "__map_";
/// sops metadata is a few levels deep; deeper flattened keys are refused.
const MAX_FLAT_DEPTH: usize = 16;
const LIST_SEP: &str = "__list_";

enum Token {
    Map(String),
    List(usize),
}

/// Splits a flattened key (`age__list_0__map_enc`) into its path; `None` when it
/// is nested more than [`MAX_FLAT_DEPTH`] levels.
fn tokenize(path: &str) -> Result<Option<Vec<Token>>, SopsError> {
    let mut tokens = Vec::new();
    let mut kind_list = false;
    let mut start = 0;
    let mut i = 0;
    let bytes = path.as_bytes();
    loop {
        // The next separator at or after `i`, if any.
        let mut next = None;
        while i + 1 < bytes.len() {
            if bytes[i] == b'_' && bytes[i + 1] == b'_' {
                let rest = &path[i..];
                if rest.starts_with(MAP_SEP) {
                    next = Some((i, false));
                    break;
                }
                if rest.starts_with(LIST_SEP) {
                    next = Some((i, true));
                    break;
                }
            }
            i += 1;
        }
        let end = next.map_or(path.len(), |(pos, _)| pos);
        let part = &path[start..end];
        if kind_list {
            let n = part.parse::<usize>().map_err(|_| SopsError::Metadata {
                message: format!("flattened key `{}` has a bad list index", short(path)),
            })?;
            tokens.push(Token::List(n));
        } else {
            tokens.push(Token::Map(part.to_owned()));
        }
        if tokens.len() > MAX_FLAT_DEPTH {
            return Ok(None);
        }
        match next {
            None => return Ok(Some(tokens)),
            Some((pos, list)) => {
                kind_list = list;
                start = pos + if list { LIST_SEP.len() } else { MAP_SEP.len() };
                i = start;
            }
        }
    }
}

/// At most the first 60 characters of `s`, for messages.
fn short(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Rebuilds nested metadata from flattened keys.
fn unflatten(flat: Vec<(String, Node)>) -> Result<Node, SopsError> {
    let mut root = Node::Map(Vec::new());
    for (key, value) in flat {
        let Some(tokens) = tokenize(&key)? else {
            return Err(SopsError::Metadata {
                message: format!("flattened key `{}` is nested too deeply", short(&key)),
            });
        };
        place(&mut root, &tokens, value, &key)?;
    }
    Ok(root)
}

fn place(node: &mut Node, tokens: &[Token], value: Node, key: &str) -> Result<(), SopsError> {
    let mismatch = || SopsError::Metadata {
        message: format!(
            "flattened key `{}` does not fit the other metadata keys",
            short(key)
        ),
    };
    let Some((first, rest)) = tokens.split_first() else {
        *node = value;
        return Ok(());
    };
    match first {
        Token::Map(name) => {
            if matches!(node, Node::Null) {
                *node = Node::Map(Vec::new());
            }
            let Node::Map(entries) = node else {
                return Err(mismatch());
            };
            let idx = match entries.iter().position(|e| e.name() == Some(name)) {
                Some(i) => i,
                None => {
                    entries.push(Entry::named(name.clone(), Node::Null));
                    entries.len() - 1
                }
            };
            if rest.is_empty() && !matches!(entries[idx].value, Node::Null) {
                return Err(mismatch());
            }
            place(&mut entries[idx].value, rest, value, key)
        }
        Token::List(n) => {
            if matches!(node, Node::Null) {
                *node = Node::Seq(Vec::new());
            }
            let Node::Seq(items) = node else {
                return Err(mismatch());
            };
            if *n > 10_000 {
                return Err(mismatch());
            }
            while items.len() <= *n {
                items.push(Node::Null);
            }
            place(&mut items[*n], rest, value, key)
        }
    }
}

/// Writes documents back in `format`, the way sops writes a decrypted file.
pub(crate) fn emit(branches: &[Vec<Entry>], format: Format) -> Result<Vec<u8>, SopsError> {
    match format {
        Format::Yaml => Ok(super::yaml::emit(branches).into_bytes()),
        Format::Json => {
            let mut out = String::new();
            json_map(first(branches), 0, &mut out)?;
            out.push('\n');
            Ok(out.into_bytes())
        }
        Format::Binary => {
            let data = first(branches)
                .iter()
                .find(|e| e.name() == Some("data"))
                .ok_or_else(|| emit_err("binary file has no `data` value"))?;
            match &data.value {
                Node::Str(s) => Ok(s.clone().into_bytes()),
                Node::Bytes(b) => Ok(b.clone()),
                _ => Err(emit_err("binary file's `data` is not a string")),
            }
        }
        Format::Dotenv => emit_dotenv(first(branches)).map(String::into_bytes),
        Format::Ini => emit_ini(first(branches)).map(String::into_bytes),
    }
}

fn first(branches: &[Vec<Entry>]) -> &[Entry] {
    branches.first().map(Vec::as_slice).unwrap_or(&[])
}

fn emit_err(message: impl Into<String>) -> SopsError {
    SopsError::Emit {
        message: message.into(),
    }
}

fn tabs(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n('\t', n));
}

/// JSON as sops writes it: Go's encoding with tab indentation.
fn json_map(entries: &[Entry], depth: usize, out: &mut String) -> Result<(), SopsError> {
    let named: Vec<_> = entries.iter().filter(|e| e.name().is_some()).collect();
    if named.is_empty() {
        out.push_str("{}");
        return Ok(());
    }
    out.push_str("{\n");
    for (i, e) in named.iter().enumerate() {
        tabs(out, depth + 1);
        json_string(e.name().unwrap_or_default(), out);
        out.push_str(": ");
        json_value(&e.value, depth + 1, out)?;
        if i + 1 < named.len() {
            out.push(',');
        }
        out.push('\n');
    }
    tabs(out, depth);
    out.push('}');
    Ok(())
}

fn json_value(node: &Node, depth: usize, out: &mut String) -> Result<(), SopsError> {
    match node {
        Node::Null | Node::Comment(_) => out.push_str("null"),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Node::Float(f) => out.push_str(&go_json_float(*f)?),
        Node::Str(s) | Node::Time(s) => json_string(s, out),
        Node::Bytes(b) => json_string(&String::from_utf8_lossy(b), out),
        Node::Seq(items) => {
            let items: Vec<_> = items
                .iter()
                .filter(|n| !matches!(n, Node::Comment(_)))
                .collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                tabs(out, depth + 1);
                json_value(item, depth + 1, out)?;
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            tabs(out, depth);
            out.push(']');
        }
        Node::Map(entries) => json_map(entries, depth, out)?,
    }
    Ok(())
}

/// A JSON string as Go's encoder writes it (HTML-safe escapes included).
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as Go's JSON encoder writes it.
fn go_json_float(f: f64) -> Result<String, SopsError> {
    if !f.is_finite() {
        return Err(emit_err(
            "a float value is not finite and cannot be written as JSON",
        ));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Go writes `1e+21` and `1e-07`→`1e-7`; Rust writes `1e21` and `1e-7`.
        Ok(match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        })
    } else {
        Ok(format!("{f}"))
    }
}

/// A value as sops writes it in dotenv and INI files.
fn flat_value(node: &Node, key: &str) -> Result<String, SopsError> {
    Ok(match node {
        Node::Null | Node::Comment(_) => String::new(),
        Node::Bool(b) => b.to_string(),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => super::go_float(*f),
        Node::Str(s) | Node::Time(s) => s.clone(),
        Node::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Node::Seq(_) | Node::Map(_) => {
            return Err(emit_err(format!(
                "key `{key}` holds a list or map, which this format cannot hold"
            )));
        }
    })
}

fn emit_dotenv(entries: &[Entry]) -> Result<String, SopsError> {
    let mut out = String::new();
    for e in entries {
        match &e.key {
            Key::Comment(c) => {
                let _ = writeln!(out, "#{c}");
            }
            Key::Name(name) => {
                let value = flat_value(&e.value, name)?.replace('\n', "\\n");
                let _ = writeln!(out, "{name}={value}");
            }
        }
    }
    Ok(out)
}

fn emit_ini(sections: &[Entry]) -> Result<String, SopsError> {
    let mut out = String::new();
    for section in sections {
        let Key::Name(name) = &section.key else {
            continue;
        };
        let Node::Map(entries) = &section.value else {
            return Err(emit_err(format!("INI section `{name}` is not a map")));
        };
        if name == INI_DEFAULT && entries.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        // Comments before the first key belong to the section header.
        let lead = entries
            .iter()
            .take_while(|e| matches!(e.key, Key::Comment(_)))
            .count();
        for e in &entries[..lead] {
            if let Key::Comment(c) = &e.key {
                let _ = writeln!(out, "; {c}");
            }
        }
        if name != INI_DEFAULT {
            let _ = writeln!(out, "[{name}]");
        }
        // Like the INI library sops uses (pretty format), keys are padded to the
        // longest key of their section, so the `=` signs line up.
        let align = entries
            .iter()
            .filter_map(|e| match &e.key {
                Key::Name(k) => Some(ini_key(k).len()),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        // A comment listed after a key was written above that key.
        let rest = &entries[lead..];
        let mut i = 0;
        while i < rest.len() {
            let e = &rest[i];
            let mut j = i + 1;
            while j < rest.len() && matches!(rest[j].key, Key::Comment(_)) {
                if let Key::Comment(c) = &rest[j].key {
                    let _ = writeln!(out, "; {c}");
                }
                j += 1;
            }
            if let Key::Name(key) = &e.key {
                let value = flat_value(&e.value, key)?;
                let _ = writeln!(out, "{:<align$} = {}", ini_key(key), ini_value(&value));
            }
            i = j;
        }
    }
    Ok(out)
}

fn ini_key(key: &str) -> String {
    if key.contains(['=', ':']) {
        if key.contains('`') {
            format!("\"{key}\"")
        } else {
            format!("`{key}`")
        }
    } else {
        key.to_owned()
    }
}

fn ini_value(value: &str) -> String {
    if value.contains(['\n', '`']) {
        format!("\"\"\"{value}\"\"\"")
    } else if value.contains(['#', ';']) {
        format!("`{value}`")
    } else if value.trim() != value {
        format!("\"{value}\"")
    } else {
        value.to_owned()
    }
}
