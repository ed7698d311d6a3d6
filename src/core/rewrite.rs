//! Text-level reading and rewriting of `image:` lines in a compose file.
//!
//! No YAML library keeps comments, quoting or layout, so the image lines are found
//! by a small scanner over the block-style layout compose files use
//! (`services:` → `<name>:` → `image: …`), which gives each value's exact byte span
//! and its trailing comment (where the policy annotation lives). A rewrite
//! replaces only those bytes; everything else, CRLF line endings and a missing
//! final newline included, is copied unchanged. Where a value cannot be replaced
//! safely (an alias, `${VAR}`, a flow mapping, a multi-line scalar, a YAML tag…)
//! the site carries the reason and a rewrite refuses with it.

use std::borrow::Cow;

use super::reference::ImageRef;

/// How the image value is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `image: nginx`
    Plain,
    /// `image: 'nginx'`
    Single,
    /// `image: "nginx"`
    Double,
}

/// One `image:` line of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSite {
    /// The service the line belongs to.
    pub service: String,
    /// 1-based line.
    pub line: usize,
    /// Byte offset of the line in the file.
    pub line_start: usize,
    /// Byte span of the scalar's content (inside the quotes, if any); empty when
    /// there is no value on the line.
    pub span: (usize, usize),
    /// The scalar's content as written.
    pub value: String,
    /// The quoting.
    pub style: Style,
    /// Byte offset of the text after `#` of the trailing comment, and that text.
    pub comment: Option<(usize, String)>,
    /// Why the value cannot be rewritten, if it cannot.
    pub blocker: Option<String>,
}

/// What the scanner found in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The `image:` lines, in file order.
    pub sites: Vec<ImageSite>,
    /// Every service key seen under `services:`, with its 1-based line.
    pub services: Vec<(String, usize)>,
    /// Comments that look like Magos annotations but are not on an `image:` line
    /// of a service: (1-based line, byte offset of the `#`).
    pub stray_annotations: Vec<(usize, usize)>,
}

impl Scan {
    /// The image line of a service.
    pub fn site(&self, service: &str) -> Option<&ImageSite> {
        self.sites.iter().rev().find(|s| s.service == service)
    }
}

/// A rewrite that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The service has no `image:` line in this file.
    #[error("service `{service}` has no `image:` line that can be found in this file")]
    NoSite {
        /// The service.
        service: String,
    },
    /// The value cannot be replaced safely.
    #[error("the image of service `{service}` (line {line}) cannot be rewritten safely: {reason}")]
    Unsafe {
        /// The service.
        service: String,
        /// 1-based line.
        line: usize,
        /// Why.
        reason: String,
    },
    /// The file no longer holds the value the decision was made for.
    #[error(
        "the image of service `{service}` (line {line}) is `{found}`, not the expected `{expected}`"
    )]
    Changed {
        /// The service.
        service: String,
        /// 1-based line.
        line: usize,
        /// What the decision was made for.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// The new value is not a reference that can be written in this style.
    #[error("`{value}` cannot be written as the image of service `{service}`: {reason}")]
    BadValue {
        /// The service.
        service: String,
        /// The refused value.
        value: String,
        /// Why.
        reason: String,
    },
}

/// One requested change: the service, the value the decision was based on, and
/// the new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit<'a> {
    /// The service.
    pub service: &'a str,
    /// The value the file is expected to hold now.
    pub expected: &'a str,
    /// The new value, usually `name:tag@sha256:…`.
    pub new: &'a str,
}

/// Rewrites one service's image. The text is returned unchanged (borrowed) when
/// it already holds the new value, so rewriting twice equals rewriting once.
pub fn rewrite<'t>(text: &'t str, edit: &Edit<'_>) -> Result<Cow<'t, str>, RewriteError> {
    let (out, errors) = rewrite_all(text, std::slice::from_ref(edit));
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Rewrites several images in one pass. Edits that are refused are returned as
/// errors; the others are applied.
pub fn rewrite_all<'t>(text: &'t str, edits: &[Edit<'_>]) -> (Cow<'t, str>, Vec<RewriteError>) {
    let scan = scan(text);
    let mut splices: Vec<(usize, usize, &str)> = Vec::new();
    let mut errors = Vec::new();
    for edit in edits {
        match plan(&scan, edit) {
            Ok(Some(s)) => splices.push(s),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    if splices.is_empty() {
        return (Cow::Borrowed(text), errors);
    }
    splices.sort_by_key(|s| s.0);
    splices.dedup_by_key(|s| s.0);
    let mut out = String::with_capacity(text.len() + splices.len() * 80);
    let mut at = 0;
    for (start, end, new) in splices {
        out.push_str(&text[at..start]);
        out.push_str(new);
        at = end;
    }
    out.push_str(&text[at..]);
    (Cow::Owned(out), errors)
}

fn plan<'e>(scan: &Scan, edit: &Edit<'e>) -> Result<Option<(usize, usize, &'e str)>, RewriteError> {
    let site = scan
        .site(edit.service)
        .ok_or_else(|| RewriteError::NoSite {
            service: edit.service.to_owned(),
        })?;
    if let Some(reason) = &site.blocker {
        return Err(RewriteError::Unsafe {
            service: edit.service.to_owned(),
            line: site.line,
            reason: reason.clone(),
        });
    }
    if site.value == edit.new {
        return Ok(None);
    }
    if site.value != edit.expected {
        return Err(RewriteError::Changed {
            service: edit.service.to_owned(),
            line: site.line,
            expected: edit.expected.to_owned(),
            found: site.value.clone(),
        });
    }
    let bad = |reason: &str| RewriteError::BadValue {
        service: edit.service.to_owned(),
        value: edit.new.to_owned(),
        reason: reason.to_owned(),
    };
    ImageRef::parse(edit.new).map_err(|e| bad(e.reason))?;
    if site.style == Style::Plain && edit.new.starts_with('[') {
        return Err(bad(
            "a plain YAML value cannot start with `[`; quote the image",
        ));
    }
    Ok(Some((site.span.0, site.span.1, edit.new)))
}

/// One line of the file, without its line break.
struct Line<'a> {
    no: usize,
    start: usize,
    text: &'a str,
}

fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    let mut start = 0;
    text.split_inclusive('\n').enumerate().map(move |(i, raw)| {
        let body = raw.strip_suffix('\n').unwrap_or(raw);
        let body = body.strip_suffix('\r').unwrap_or(body);
        let line = Line {
            no: i + 1,
            start,
            text: body,
        };
        start += raw.len();
        line
    })
}

/// Finds every service's `image:` line.
pub fn scan(text: &str) -> Scan {
    let mut out = Scan::default();
    let mut in_services = false;
    let mut service_indent: Option<usize> = None;
    let mut service: Option<String> = None;
    let mut key_indent: Option<usize> = None;
    // A plain value may continue on more-indented lines: (site index, key indent).
    let mut open_plain: Option<(usize, usize)> = None;
    for line in lines(text) {
        let indent = line.text.len() - line.text.trim_start_matches(' ').len();
        let body = &line.text[indent..];
        if body.trim().is_empty() {
            continue;
        }
        if let Some(hash) = body.strip_prefix('#') {
            if looks_like_annotation(hash) {
                out.stray_annotations.push((line.no, line.start + indent));
            }
            continue;
        }
        if let Some((idx, k)) = open_plain.take()
            && indent > k
        {
            out.sites[idx].blocker =
                Some("the image value continues on the next line (a multi-line scalar)".to_owned());
        }
        if indent == 0
            && (body.starts_with("---") || body.starts_with("...") || body.starts_with('%'))
        {
            in_services = false;
            continue;
        }
        let key = parse_key(body);
        if indent == 0 {
            in_services = key.as_ref().is_some_and(|(k, _)| k == "services");
            service_indent = None;
            service = None;
            key_indent = None;
            if let Some((_, rest)) = &key {
                note_stray(&mut out, &line, indent + rest);
            }
            continue;
        }
        let Some((name, rest_at)) = key else {
            note_stray(&mut out, &line, indent);
            continue;
        };
        if !in_services {
            note_stray(&mut out, &line, indent + rest_at);
            continue;
        }
        let s_indent = *service_indent.get_or_insert(indent);
        if indent == s_indent {
            out.services.push((name.clone(), line.no));
            service = Some(name);
            key_indent = None;
            note_stray(&mut out, &line, indent + rest_at);
            continue;
        }
        if indent < s_indent || service.is_none() {
            note_stray(&mut out, &line, indent + rest_at);
            continue;
        }
        let k_indent = *key_indent.get_or_insert(indent);
        if indent != k_indent || name != "image" {
            note_stray(&mut out, &line, indent + rest_at);
            continue;
        }
        let service_name = service.clone().unwrap_or_default();
        let mut site = read_value(&line, indent + rest_at, service_name);
        if site.style == Style::Plain && site.blocker.is_none() {
            open_plain = Some((out.sites.len(), k_indent));
        }
        if let Some(prev) = out.sites.iter_mut().find(|s| s.service == site.service) {
            let why = "the service has more than one `image:` line".to_owned();
            prev.blocker = Some(why.clone());
            site.blocker = Some(why);
        }
        out.sites.push(site);
    }
    out
}

/// Records a trailing annotation-like comment on a line that is not an image line.
fn note_stray(out: &mut Scan, line: &Line<'_>, value_at: usize) {
    if let Some(hash) = comment_start(line.text, value_at)
        && looks_like_annotation(&line.text[hash + 1..])
    {
        out.stray_annotations.push((line.no, line.start + hash));
    }
}

fn looks_like_annotation(comment: &str) -> bool {
    let c = comment.trim_start();
    c.starts_with('{') && c.contains("\"magos\"")
}

/// The start of a trailing comment: a `#` at `from` or later, preceded by white
/// space, outside quotes.
fn comment_start(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = from.min(bytes.len());
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' && q == b'"' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => {
                if b == b'#' && (i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
                    return Some(i);
                }
                if (b == b'"' || b == b'\'')
                    && (i == from || matches!(bytes[i - 1], b' ' | b'\t' | b'[' | b'{' | b','))
                {
                    quote = Some(b);
                }
            }
        }
        i += 1;
    }
    None
}

/// Reads a mapping key at the start of `body`: `key:` followed by a space or the
/// end of the line. Returns the key and the byte offset just past the `:`.
fn parse_key(body: &str) -> Option<(String, usize)> {
    let first = *body.as_bytes().first()?;
    if first == b'"' || first == b'\'' {
        let close = body[1..].find(first as char)? + 1;
        let key = &body[1..close];
        if key.contains('\\') || (first == b'\'' && body[close + 1..].starts_with('\'')) {
            return None;
        }
        let after = &body[close + 1..];
        let trimmed = after.trim_start_matches(' ');
        let colon = close + 1 + (after.len() - trimmed.len());
        if !trimmed.starts_with(':') {
            return None;
        }
        let next = body.as_bytes().get(colon + 1);
        if next.is_some_and(|b| *b != b' ' && *b != b'\t') {
            return None;
        }
        return Some((key.to_owned(), colon + 1));
    }
    if matches!(
        first,
        b'-' | b'?'
            | b'{'
            | b'['
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'#'
            | b'%'
            | b'@'
            | b'`'
            | b','
    ) {
        return None;
    }
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b':' if i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t' => {
                let key = body[..i].trim_end();
                return Some((key.to_owned(), i + 1));
            }
            b'#' if i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') => return None,
            _ => i += 1,
        }
    }
    None
}

/// Reads the value of an `image:` key, which starts at byte `at` of the line.
fn read_value(line: &Line<'_>, at: usize, service: String) -> ImageSite {
    let text = line.text;
    let mut site = ImageSite {
        service,
        line: line.no,
        line_start: line.start,
        span: (line.start + at, line.start + at),
        value: String::new(),
        style: Style::Plain,
        comment: None,
        blocker: None,
    };
    let mut i = at + (text[at..].len() - text[at..].trim_start_matches([' ', '\t']).len());
    // An anchor stays where it is; the value after it is what changes.
    if text[i..].starts_with('&') {
        let end = text[i..].find([' ', '\t']).map_or(text.len(), |e| i + e);
        i = end + (text[end..].len() - text[end..].trim_start_matches([' ', '\t']).len());
    }
    site.span = (line.start + i, line.start + i);
    let rest = &text[i..];
    let blocked = |site: &mut ImageSite, why: &str| site.blocker = Some(why.to_owned());
    let value_end;
    match rest.as_bytes().first() {
        None | Some(b'#') => {
            blocked(&mut site, "the image value is not on the `image:` line");
            value_end = i;
        }
        Some(b'*') => {
            let alias = rest.split([' ', '\t']).next().unwrap_or(rest);
            site.value = alias.to_owned();
            site.span = (line.start + i, line.start + i + alias.len());
            blocked(
                &mut site,
                &format!(
                    "the image comes from the alias `{alias}`; pin it where the anchor is defined"
                ),
            );
            value_end = i + alias.len();
        }
        Some(b'!') => {
            blocked(&mut site, "the image value has a YAML tag");
            value_end = text.len();
        }
        Some(b'|' | b'>') => {
            blocked(
                &mut site,
                "the image value is a block scalar over several lines",
            );
            value_end = text.len();
        }
        Some(b'{' | b'[') => {
            blocked(&mut site, "the image value is a flow collection");
            value_end = text.len();
        }
        Some(&q @ (b'"' | b'\'')) => {
            let inner = &rest[1..];
            match inner.find(q as char) {
                None => {
                    blocked(
                        &mut site,
                        "the quoted image value continues on the next line",
                    );
                    value_end = text.len();
                }
                Some(close) => {
                    let content = &inner[..close];
                    site.style = if q == b'"' {
                        Style::Double
                    } else {
                        Style::Single
                    };
                    site.span = (line.start + i + 1, line.start + i + 1 + close);
                    site.value = content.to_owned();
                    if q == b'"' && content.contains('\\') {
                        blocked(&mut site, "the image value uses escape sequences");
                    }
                    if q == b'\'' && inner[close + 1..].starts_with('\'') {
                        blocked(&mut site, "the image value contains a quote");
                    }
                    value_end = i + close + 2;
                }
            }
        }
        Some(_) => {
            let end = comment_start(text, i).unwrap_or(text.len());
            let value = text[i..end].trim_end_matches([' ', '\t']);
            site.span = (line.start + i, line.start + i + value.len());
            site.value = value.to_owned();
            value_end = i + value.len();
        }
    }
    let tail = &text[value_end.min(text.len())..];
    let tail_trim = tail.trim_start_matches([' ', '\t']);
    if let Some(after_hash) = tail_trim.strip_prefix('#') {
        let hash = text.len() - tail_trim.len();
        if tail_trim.len() == tail.len() && site.blocker.is_none() && site.style != Style::Plain {
            blocked(
                &mut site,
                "a comment must be separated from the value by a space",
            );
        }
        site.comment = Some((line.start + hash + 1, after_hash.to_owned()));
    } else if !tail_trim.is_empty() && site.blocker.is_none() {
        blocked(&mut site, "unexpected text after the image value");
    }
    if site.blocker.is_none() && site.value.contains('$') {
        blocked(
            &mut site,
            "the image uses variable interpolation (`${…}`); pin it where the variable is set",
        );
    }
    site
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_image_lines_and_comments() {
        let text = "services:\n  web:\n    image: nginx:1.25 # {\"magos\": {\"policy\": \"semver\"}}\n    ports: [\"80:80\"]\n  db:\n    image: \"postgres:16\"\n";
        let s = scan(text);
        assert_eq!(
            s.services,
            vec![("web".to_owned(), 2), ("db".to_owned(), 5)]
        );
        let web = s.site("web").unwrap();
        assert_eq!(web.value, "nginx:1.25");
        assert_eq!(&text[web.span.0..web.span.1], "nginx:1.25");
        assert_eq!(
            web.comment.as_ref().unwrap().1.trim(),
            "{\"magos\": {\"policy\": \"semver\"}}"
        );
        let db = s.site("db").unwrap();
        assert_eq!(db.style, Style::Double);
        assert_eq!(db.value, "postgres:16");
    }
}
