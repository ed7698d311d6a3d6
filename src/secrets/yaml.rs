//! Reading YAML into a [`Node`] tree the way sops's reader (go-yaml v3, decoding
//! into `interface{}`) types its scalars, so that clear values enter the MAC as
//! sops computed it.
//!
//! Quoted and block scalars are strings. A plain scalar is `null` (`~`, `null`,
//! empty), a boolean (`true`/`True`/`TRUE`, `false`/…), `.inf`/`.nan`, an integer
//! as Go's `strconv.ParseInt(s, 0, 64)` reads it after removing `_` (so `0755` is
//! octal and `1_000` is a thousand), a float when it looks like one, and otherwise
//! a string (timestamps included, as go-yaml keeps them for `interface{}`).
//! Comments are not read. Aliases are expanded (with a size limit), nesting is
//! limited, and a key given twice in a map is refused as go-yaml refuses it.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use saphyr_parser::{Event, Parser, ScalarStyle, Tag};

use super::Format;
use super::SopsError;
use super::tree::{Entry, Node};

/// Deeper nesting is refused.
const MAX_DEPTH: usize = 128;
/// Alias expansion may not make the document larger than this many nodes.
const MAX_NODES: usize = 1_000_000;

fn err(message: impl Into<String>) -> SopsError {
    SopsError::Parse {
        format: Format::Yaml,
        message: message.into(),
    }
}

fn at(line: usize, message: impl std::fmt::Display) -> SopsError {
    err(format!("line {line}: {message}"))
}

enum Frame {
    Seq {
        items: Vec<Node>,
        anchor: usize,
    },
    Map {
        entries: Vec<Entry>,
        key: Option<String>,
        seen: HashSet<String>,
        anchor: usize,
        line: usize,
    },
}

/// Parses every document of a YAML stream; each must be a map (or empty).
pub(crate) fn parse(text: &str) -> Result<Vec<Vec<Entry>>, SopsError> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut nodes = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| err(e.to_string()))?;
        let line = span.start.line();
        let done: Option<(Node, usize, usize)> = match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => None,
            Event::DocumentStart(_) => {
                root = None;
                None
            }
            Event::DocumentEnd => {
                match root.take() {
                    None | Some(Node::Null) => docs.push(Vec::new()),
                    Some(Node::Map(entries)) => docs.push(entries),
                    Some(Node::Seq(_)) => {
                        return Err(err(
                            "a document is a list; sops files are maps at the top level",
                        ));
                    }
                    Some(_) => {
                        return Err(err(
                            "a document is a single value; sops files are maps at the top level",
                        ));
                    }
                }
                None
            }
            Event::Alias(id) => {
                let (node, size) = anchors
                    .get(&id)
                    .ok_or_else(|| at(line, "an alias to an unknown anchor"))?;
                nodes += size;
                if nodes > MAX_NODES {
                    return Err(at(line, "aliases expand to too large a document"));
                }
                Some((node.clone(), 0, *size))
            }
            Event::Scalar(value, style, anchor, tag) => {
                let node = resolve(&value, style, tag.as_deref()).map_err(|m| at(line, m))?;
                nodes += 1;
                Some((node, anchor, 1))
            }
            Event::SequenceStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(at(line, "nested too deeply"));
                }
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                });
                None
            }
            Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(at(line, "nested too deeply"));
                }
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    seen: HashSet::new(),
                    anchor,
                    line,
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { items, anchor }) => {
                    nodes += 1;
                    let size = size_of(&items);
                    Some((Node::Seq(items), anchor, size))
                }
                _ => return Err(at(line, "unbalanced sequence end")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    entries,
                    key,
                    anchor,
                    line,
                    ..
                }) => {
                    if key.is_some() {
                        return Err(at(line, "a map key without a value"));
                    }
                    nodes += 1;
                    let size = entries
                        .iter()
                        .map(|e| node_size(&e.value) + 1)
                        .sum::<usize>()
                        + 1;
                    Some((Node::Map(entries), anchor, size))
                }
                _ => return Err(at(line, "unbalanced mapping end")),
            },
        };
        let Some((node, anchor, size)) = done else {
            continue;
        };
        if nodes > MAX_NODES {
            return Err(at(line, "the document is too large"));
        }
        if anchor > 0 {
            anchors.insert(anchor, (node.clone(), size));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, key, seen, ..
            }) => match key.take() {
                None => match node {
                    Node::Str(k) => *key = Some(k),
                    _ => {
                        return Err(at(
                            line,
                            "a map key is not a string; only string keys are supported",
                        ));
                    }
                },
                Some(k) => {
                    if !seen.insert(k.clone()) {
                        return Err(at(line, format!("key `{k}` appears twice in its map")));
                    }
                    entries.push(Entry::named(k, node));
                }
            },
        }
    }
    Ok(docs)
}

fn size_of(items: &[Node]) -> usize {
    items.iter().map(node_size).sum::<usize>() + 1
}

fn node_size(node: &Node) -> usize {
    match node {
        Node::Seq(items) => size_of(items),
        Node::Map(entries) => {
            entries
                .iter()
                .map(|e| node_size(&e.value) + 1)
                .sum::<usize>()
                + 1
        }
        _ => 1,
    }
}

/// The YAML core schema's tag prefix.
const CORE: &str = "tag:yaml.org,2002:";

/// Types a scalar as go-yaml v3 does when decoding into `interface{}`. The error
/// names the problem, never the value.
fn resolve(value: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Node, String> {
    if let Some(tag) = tag {
        let core = if tag.handle == CORE || tag.handle == "!!" {
            Some(tag.suffix.as_str())
        } else {
            None
        };
        return match core {
            Some("str") => Ok(Node::Str(value.to_owned())),
            Some("binary") => {
                let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|_| "a !!binary value is not valid base64".to_owned())?;
                Ok(match String::from_utf8(bytes) {
                    Ok(s) => Node::Str(s),
                    Err(e) => Node::Bytes(e.into_bytes()),
                })
            }
            Some(kind @ ("int" | "float" | "bool" | "null")) => {
                let node = resolve_plain(value);
                let ok = matches!(
                    (kind, &node),
                    ("int", Node::Int(_))
                        | ("float", Node::Float(_))
                        | ("float", Node::Int(_))
                        | ("bool", Node::Bool(_))
                        | ("null", Node::Null)
                );
                if !ok {
                    return Err(format!("a value tagged !!{kind} is not a {kind}"));
                }
                Ok(match (kind, node) {
                    ("float", Node::Int(i)) => Node::Float(i as f64),
                    (_, n) => n,
                })
            }
            Some("timestamp") => Ok(Node::Time(value.to_owned())),
            // Other tags: the text as it is.
            _ => Ok(Node::Str(value.to_owned())),
        };
    }
    match style {
        ScalarStyle::Plain => Ok(resolve_plain(value)),
        _ => Ok(Node::Str(value.to_owned())),
    }
}

/// go-yaml v3's resolution of an untagged plain scalar.
fn resolve_plain(s: &str) -> Node {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Node::Null,
        "true" | "True" | "TRUE" => return Node::Bool(true),
        "false" | "False" | "FALSE" => return Node::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Node::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Node::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Node::Float(f64::NEG_INFINITY),
        _ => {}
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return Node::Str(s.to_owned());
    }
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    if first != b'.' {
        if let Some(i) = go_parse_int(&plain) {
            return Node::Int(i);
        }
        if go_parse_uint(&plain).is_some() {
            // go-yaml gives a uint64, which sops cannot handle either; keep the text.
            return Node::Str(s.to_owned());
        }
    }
    if is_yaml_float(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return Node::Float(f);
    }
    Node::Str(s.to_owned())
}

/// Splits Go's base-0 integer syntax: sign, then `0x`/`0o`/`0b`/leading `0`.
fn go_int_parts(s: &str) -> Option<(bool, u32, &str)> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.get(..2).map(str::to_ascii_lowercase);
    let (base, digits) = match lower.as_deref() {
        Some("0x") => (16, &body[2..]),
        Some("0o") => (8, &body[2..]),
        Some("0b") => (2, &body[2..]),
        _ if body.len() > 1 && body.starts_with('0') => (8, &body[1..]),
        _ => (10, body),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return None;
    }
    Some((neg, base, digits))
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, base, digits) = go_int_parts(s)?;
    let magnitude = u64::from_str_radix(digits, base).ok()?;
    if neg {
        if magnitude <= i64::MAX as u64 + 1 {
            Some((magnitude as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`.
fn go_parse_uint(s: &str) -> Option<u64> {
    if s.starts_with(['+', '-']) {
        return None;
    }
    let (_, base, digits) = go_int_parts(s)?;
    u64::from_str_radix(digits, base).ok()
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Writes documents as sops writes decrypted YAML, in the layout of the real-sops
/// fixtures: two-space indentation, list items at their key's indentation, plain
/// scalars where they read back as the same string (by go-yaml's typing and for
/// YAML 1.1 readers), single quotes where that suffices, double quotes with
/// escapes otherwise, and literal blocks for multi-line text.
pub(crate) fn emit(branches: &[Vec<Entry>]) -> String {
    let mut out = String::new();
    for (i, branch) in branches.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let named: Vec<(&str, &Node)> = named(branch);
        if named.is_empty() {
            out.push_str("{}\n");
        } else {
            map_entries(&named, 0, false, &mut out);
        }
    }
    out
}

fn named(entries: &[Entry]) -> Vec<(&str, &Node)> {
    entries
        .iter()
        .filter_map(|e| e.name().map(|n| (n, &e.value)))
        .collect()
}

fn items(items: &[Node]) -> Vec<&Node> {
    items
        .iter()
        .filter(|n| !matches!(n, Node::Comment(_)))
        .collect()
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn map_entries(entries: &[(&str, &Node)], indent: usize, inline_first: bool, out: &mut String) {
    for (i, (key, value)) in entries.iter().enumerate() {
        if !(i == 0 && inline_first) {
            pad(out, indent);
        }
        write_str_scalar(key, indent + 2, false, out);
        out.push(':');
        match value {
            Node::Map(entries) if !named(entries).is_empty() => {
                out.push('\n');
                map_entries(&named(entries), indent + 2, false, out);
            }
            Node::Seq(list) if !items(list).is_empty() => {
                out.push('\n');
                seq_items(&items(list), indent, false, out);
            }
            other => {
                out.push(' ');
                write_scalar(other, indent + 2, out);
            }
        }
    }
}

fn seq_items(list: &[&Node], indent: usize, inline_first: bool, out: &mut String) {
    for (i, item) in list.iter().enumerate() {
        if !(i == 0 && inline_first) {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Node::Map(entries) if !named(entries).is_empty() => {
                map_entries(&named(entries), indent + 2, true, out);
            }
            Node::Seq(inner) if !items(inner).is_empty() => {
                seq_items(&items(inner), indent + 2, true, out);
            }
            other => write_scalar(other, indent + 2, out),
        }
    }
}

/// Writes a scalar (or an empty collection) and the end of its line.
fn write_scalar(node: &Node, indent: usize, out: &mut String) {
    match node {
        Node::Null | Node::Comment(_) => out.push_str("null"),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Int(i) => out.push_str(&i.to_string()),
        Node::Float(f) => out.push_str(&yaml_float(*f)),
        Node::Str(s) | Node::Time(s) => {
            write_str_scalar(s, indent, true, out);
        }
        Node::Bytes(b) => write_str_scalar(&String::from_utf8_lossy(b), indent, true, out),
        Node::Seq(_) => out.push_str("[]"),
        Node::Map(_) => out.push_str("{}"),
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
}

fn yaml_float(f: f64) -> String {
    if f.is_nan() {
        ".nan".to_owned()
    } else if f == f64::INFINITY {
        ".inf".to_owned()
    } else if f == f64::NEG_INFINITY {
        "-.inf".to_owned()
    } else {
        format!("{f:?}")
    }
}

/// Strings YAML 1.1 readers take as booleans; go-yaml quotes them too.
const OLD_BOOLS: [&str; 18] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF", "=", "<<",
];

fn printable(c: char) -> bool {
    !(c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}'))
}

fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if OLD_BOOLS.contains(&s) || resolve_plain(s) != Node::Str(s.to_owned()) {
        return false;
    }
    if !s.chars().all(|c| c == ' ' || (printable(c) && c != '\t')) {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.contains(": ") || s.contains(" #") {
        return false;
    }
    // Base-60 numbers (`1:20`) are numbers to YAML 1.1 readers.
    if s.contains(':')
        && s.split(':')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
    {
        return false;
    }
    match first {
        '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%'
        | '@' | '`' => false,
        '-' | '?' | ':' => s.chars().nth(1).is_some_and(|c| c != ' '),
        _ => true,
    }
}

/// Writes a string scalar; `block` allows a literal block for multi-line text.
fn write_str_scalar(s: &str, indent: usize, block: bool, out: &mut String) {
    if plain_ok(s) {
        out.push_str(s);
    } else if block && literal_ok(s) {
        let body = s.trim_end_matches('\n');
        let trailing = s.len() - body.len();
        out.push_str(match trailing {
            0 => "|-",
            1 => "|",
            _ => "|+",
        });
        out.push('\n');
        for line in s[..s.len() - trailing.min(1)].split('\n') {
            if !line.is_empty() {
                pad(out, indent);
                out.push_str(line);
            }
            out.push('\n');
        }
    } else if !s.contains('\n') && s.chars().all(|c| c == ' ' || (printable(c) && c != '\t')) {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    } else {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\0' => out.push_str("\\0"),
                c if !printable(c) => {
                    let n = c as u32;
                    if n <= 0xff {
                        out.push_str(&format!("\\x{n:02X}"));
                    } else {
                        out.push_str(&format!("\\u{n:04X}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Multi-line text that a literal block holds exactly.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\n'])
        && s.chars()
            .all(|c| c == '\n' || c == ' ' || (printable(c) && c != '\t'))
        && !s.split('\n').any(|l| l.ends_with(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &str) -> Node {
        let docs = parse(&format!("k: {v}\n")).unwrap();
        docs[0][0].value.clone()
    }

    #[test]
    fn plain_scalars_are_typed_as_go_yaml_types_them() {
        let cases: &[(&str, Node)] = &[
            ("014", Node::Int(12)),
            ("0755", Node::Int(493)),
            ("0o14", Node::Int(12)),
            ("0x1F", Node::Int(31)),
            ("0b101", Node::Int(5)),
            ("1_000", Node::Int(1000)),
            ("+12", Node::Int(12)),
            ("-0", Node::Int(0)),
            ("08", Node::Float(8.0)),
            (".5", Node::Float(0.5)),
            ("1e3", Node::Float(1000.0)),
            ("1.0", Node::Float(1.0)),
            ("-1.5e-3", Node::Float(-0.0015)),
            ("9223372036854775807", Node::Int(i64::MAX)),
            ("-9223372036854775808", Node::Int(i64::MIN)),
            ("true", Node::Bool(true)),
            ("False", Node::Bool(false)),
            ("yes", Node::Str("yes".into())),
            ("~", Node::Null),
            ("null", Node::Null),
            ("2001-12-14", Node::Str("2001-12-14".into())),
            ("1:20", Node::Str("1:20".into())),
            ("'0755'", Node::Str("0755".into())),
            ("\"true\"", Node::Str("true".into())),
            ("!!str 12", Node::Str("12".into())),
            ("!!float 12", Node::Float(12.0)),
            ("!!binary aGVsbG8=", Node::Str("hello".into())),
            ("0x", Node::Str("0x".into())),
            ("1.2.3", Node::Str("1.2.3".into())),
        ];
        for (text, want) in cases {
            assert!(one(text) == *want, "{text}");
        }
        assert!(matches!(one(".inf"), Node::Float(f) if f == f64::INFINITY));
        assert!(matches!(one(".NaN"), Node::Float(f) if f.is_nan()));
    }

    #[test]
    fn aliases_are_expanded_and_bombs_refused() {
        let docs = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        assert!(docs[0][1].value == Node::Seq(vec![Node::Int(1), Node::Int(2)]));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&bomb).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn structure_errors_name_the_line() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert!(e.to_string().contains("key `a` appears twice"), "{e}");
        let e = parse("a: 1\n? [x]\n: 2\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = parse("- a\n").unwrap_err();
        assert!(e.to_string().contains("list"), "{e}");
        let e = parse("a: [\n").unwrap_err();
        assert!(e.to_string().contains("line"), "{e}");
        let deep = "[".repeat(1000);
        assert!(parse(&deep).is_err());
    }
}
