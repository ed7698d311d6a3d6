//! The `.env` format: `KEY=VALUE` lines, `#` comments, an optional `export `
//! prefix, and single- or double-quoted values (double quotes understand `\n`,
//! `\"` and `\\`, so a PEM key fits on one line).

/// One assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line of the assignment.
    pub line: usize,
    /// The variable.
    pub key: String,
    /// The value, unquoted.
    pub value: String,
}

/// Parses a `.env` text. On error: the 1-based line and a message that names the
/// variable but never its value.
pub fn parse(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut entries = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(trimmed);
        let Some((key, rest)) = body.split_once('=') else {
            return Err((line, "expected `KEY=VALUE`".to_owned()));
        };
        let key = key.trim();
        if key.is_empty()
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || key.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err((line, format!("`{key}` is not a valid variable name")));
        }
        let rest = rest.trim_start();
        let value = if let Some(inner) = rest.strip_prefix('"') {
            // A double-quoted value may continue over several lines.
            let mut buf = inner.to_owned();
            loop {
                if let Some(end) = closing_quote(&buf) {
                    let tail = buf[end + 1..].trim();
                    if !tail.is_empty() && !tail.starts_with('#') {
                        return Err((
                            line,
                            format!("{key}: unexpected text after the closing quote"),
                        ));
                    }
                    break unescape(&buf[..end]);
                }
                match lines.next() {
                    Some((_, next)) => {
                        buf.push('\n');
                        buf.push_str(next);
                    }
                    None => return Err((line, format!("{key}: the double quote is never closed"))),
                }
            }
        } else if let Some(inner) = rest.strip_prefix('\'') {
            let Some(end) = inner.find('\'') else {
                return Err((line, format!("{key}: the single quote is never closed")));
            };
            let tail = inner[end + 1..].trim();
            if !tail.is_empty() && !tail.starts_with('#') {
                return Err((
                    line,
                    format!("{key}: unexpected text after the closing quote"),
                ));
            }
            inner[..end].to_owned()
        } else {
            // Unquoted: a ` #` starts a comment.
            let v = match rest.find(" #") {
                Some(i) => &rest[..i],
                None => rest,
            };
            v.trim().to_owned()
        };
        entries.push(Entry {
            line,
            key: key.to_owned(),
            value,
        });
    }
    Ok(entries)
}

fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usual_forms() {
        let text = "# comment\n\nMD_REPO=https://example.org/x.git\nexport MD_BRANCH = prod # trailing\nA='single # kept'\nB=\"line1\\nline2\"\nC=\"multi\nline\"\n";
        let got: Vec<_> = parse(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.line, e.key, e.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, "MD_REPO".into(), "https://example.org/x.git".into()),
                (4, "MD_BRANCH".into(), "prod".into()),
                (5, "A".into(), "single # kept".into()),
                (6, "B".into(), "line1\nline2".into()),
                (7, "C".into(), "multi\nline".into()),
            ]
        );
    }

    #[test]
    fn errors_name_the_line_not_the_value() {
        let err = parse("OK=1\nSECRET=\"hunter2\n").unwrap_err();
        assert_eq!(err.0, 2);
        assert!(!err.1.contains("hunter2"));
        assert_eq!(parse("OK=1\njust words\n").unwrap_err().0, 2);
        assert_eq!(parse("1BAD=x\n").unwrap_err().0, 1);
        assert_eq!(parse("K='x' y\n").unwrap_err().0, 1);
    }
}
