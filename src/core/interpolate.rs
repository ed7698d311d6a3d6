//! Variable interpolation in compose values, as the compose specification
//! defines it: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?error}`, `${VAR?error}`, `${VAR:+replacement}`, `${VAR+replacement}`,
//! nested defaults, and `$$` for a literal `$`. Also the stack's `.env` file
//! format. The values are passed in; nothing here reads the environment.

use std::collections::BTreeMap;

/// Variables by name.
pub type Vars = BTreeMap<String, String>;

/// The result of interpolating one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolated {
    /// The value with every variable substituted.
    pub value: String,
    /// Variables that were used without being set (they became empty strings).
    pub missing: Vec<String>,
}

/// A string that cannot be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InterpolateError {
    /// Byte offset in the string of the `$` that starts the bad expression.
    pub offset: usize,
    /// One line naming the expression.
    pub message: String,
}

/// Interpolates `text` with `vars`.
pub fn interpolate(text: &str, vars: &Vars) -> Result<Interpolated, InterpolateError> {
    let mut missing = Vec::new();
    let value = expand(text, vars, &mut missing, 0)?;
    Ok(Interpolated { value, missing })
}

/// Whether a string contains anything interpolation would change.
pub fn has_variables(text: &str) -> bool {
    text.contains('$')
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn expand(
    text: &str,
    vars: &Vars,
    missing: &mut Vec<String>,
    depth: usize,
) -> Result<String, InterpolateError> {
    if depth > 16 {
        return Err(InterpolateError {
            offset: 0,
            message: "variables are nested too deeply".to_owned(),
        });
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut literal_from = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        out.push_str(&text[literal_from..i]);
        let start = i;
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(&b) if is_name_start(b) => {
                let mut end = i + 1;
                while end < bytes.len() && is_name(bytes[end]) {
                    end += 1;
                }
                let name = &text[i + 1..end];
                out.push_str(&lookup(name, vars, missing));
                i = end;
            }
            Some(b'{') => {
                let close = matching_brace(bytes, i + 1).ok_or_else(|| InterpolateError {
                    offset: start,
                    message: format!("`{}` is never closed with `}}`", excerpt(&text[start..])),
                })?;
                let inner = &text[i + 2..close];
                let value =
                    braced(inner, vars, missing, depth).map_err(|message| InterpolateError {
                        offset: start,
                        message,
                    })?;
                out.push_str(&value);
                i = close + 1;
            }
            _ => {
                return Err(InterpolateError {
                    offset: start,
                    message: format!(
                        "invalid interpolation `{}` (write `$$` for a literal `$`)",
                        excerpt(&text[start..])
                    ),
                });
            }
        }
        literal_from = i;
    }
    out.push_str(&text[literal_from..]);
    Ok(out)
}

fn excerpt(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The index of the `}` closing the `{` at `open`, counting nested `${`.
fn matching_brace(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn lookup(name: &str, vars: &Vars, missing: &mut Vec<String>) -> String {
    match vars.get(name) {
        Some(v) => v.clone(),
        None => {
            if !missing.iter().any(|m| m == name) {
                missing.push(name.to_owned());
            }
            String::new()
        }
    }
}

/// The inside of `${…}`.
fn braced(
    inner: &str,
    vars: &Vars,
    missing: &mut Vec<String>,
    depth: usize,
) -> Result<String, String> {
    let bytes = inner.as_bytes();
    if bytes.first().is_none_or(|b| !is_name_start(*b)) {
        return Err(format!(
            "`${{{}}}` does not start with a variable name",
            excerpt(inner)
        ));
    }
    let mut end = 1;
    while end < bytes.len() && is_name(bytes[end]) {
        end += 1;
    }
    let name = &inner[..end];
    let rest = &inner[end..];
    if rest.is_empty() {
        return Ok(lookup(name, vars, missing));
    }
    let value = vars.get(name);
    let (colon, op, arg) = if let Some(r) = rest.strip_prefix(':') {
        (
            true,
            r.as_bytes().first().copied(),
            r.get(1..).unwrap_or(""),
        )
    } else {
        let first = rest.chars().next().map_or(1, char::len_utf8);
        (false, Some(bytes[end]), &rest[first..])
    };
    // With `:`, an empty value counts as unset.
    let set = match value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    let nested = |arg: &str, missing: &mut Vec<String>| {
        expand(arg, vars, missing, depth + 1).map_err(|e| e.message)
    };
    match op {
        Some(b'-') => {
            if set {
                Ok(value.cloned().unwrap_or_default())
            } else {
                nested(arg, missing)
            }
        }
        Some(b'+') => {
            if set {
                nested(arg, missing)
            } else {
                Ok(String::new())
            }
        }
        Some(b'?') => {
            if set {
                Ok(value.cloned().unwrap_or_default())
            } else {
                let msg = nested(arg, missing)?;
                Err(if msg.is_empty() {
                    format!("required variable `{name}` is not set")
                } else {
                    format!("required variable `{name}` is not set: {msg}")
                })
            }
        }
        _ => Err(format!(
            "`${{{}}}` is not a valid substitution (use `:-`, `-`, `:?`, `?`, `:+` or `+`)",
            excerpt(inner)
        )),
    }
}

/// The text a variable of a SOPS-encrypted `.env` interpolates to: a sealed
/// placeholder naming it. The stack's spec, its config hash, `plan` and `drift`
/// only ever hold the placeholder; [`unseal`] puts the decrypted value in at the
/// last moment, in what is sent to Podman.
pub fn sealed(name: &str) -> String {
    format!("{SEALED_OPEN}{name}{SEALED_CLOSE}")
}

const SEALED_OPEN: &str = "\u{27e6}magos-secret:";
const SEALED_CLOSE: &str = "\u{27e7}";

/// Whether `text` holds a sealed placeholder.
pub fn is_sealed(text: &str) -> bool {
    text.contains(SEALED_OPEN)
}

/// Replaces every sealed placeholder in `text` by its value from `values`. A
/// placeholder without a value is an error naming the variable.
pub fn unseal(text: &str, values: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(SEALED_OPEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at + SEALED_OPEN.len()..];
        let Some(end) = after.find(SEALED_CLOSE) else {
            out.push_str(&rest[at..]);
            return Ok(out);
        };
        let name = &after[..end];
        match values.get(name) {
            Some(v) => out.push_str(v),
            None => return Err(format!("no decrypted value for the variable `{name}`")),
        }
        rest = &after[end + SEALED_CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a stack's `.env` file: `KEY=VALUE` lines, `#` comments, an optional
/// `export ` prefix, single quotes (literal) and double quotes (`\n`, `\"`,
/// `\\`). On error: the 1-based line and a reason naming the variable, never
/// its value.
pub fn parse_env_file(text: &str) -> Result<Vars, (usize, String)> {
    let mut vars = Vars::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("export ").map_or(t, str::trim_start);
        let Some((key, rest)) = t.split_once('=') else {
            return Err((line, "expected `KEY=VALUE`".to_owned()));
        };
        let key = key.trim();
        if key.is_empty() || !is_name_start(key.as_bytes()[0]) || !key.bytes().all(is_name) {
            return Err((line, format!("`{key}` is not a valid variable name")));
        }
        let rest = rest.trim_start();
        let value = if let Some(inner) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = inner.chars();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('n') => v.push('\n'),
                        Some('t') => v.push('\t'),
                        Some(other) => v.push(other),
                        None => break,
                    },
                    c => v.push(c),
                }
            }
            if !closed {
                return Err((line, format!("{key}: the double quote is never closed")));
            }
            v
        } else if let Some(inner) = rest.strip_prefix('\'') {
            match inner.find('\'') {
                Some(end) => inner[..end].to_owned(),
                None => return Err((line, format!("{key}: the single quote is never closed"))),
            }
        } else {
            let v = match rest.find(" #") {
                Some(i) => &rest[..i],
                None => rest,
            };
            v.trim_end().to_owned()
        };
        vars.insert(key.to_owned(), value);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_placeholders_interpolate_and_unseal() {
        let mut vars = Vars::new();
        vars.insert("DB_PASSWORD".into(), sealed("DB_PASSWORD"));
        let i = interpolate("postgres://app:${DB_PASSWORD}@db/app", &vars).unwrap();
        assert!(is_sealed(&i.value));
        assert!(!i.value.contains("hunter2"));
        let mut values = Vars::new();
        values.insert("DB_PASSWORD".into(), "hunter2$x".into());
        assert_eq!(
            unseal(&i.value, &values).unwrap(),
            "postgres://app:hunter2$x@db/app"
        );
        assert_eq!(unseal("plain", &values).unwrap(), "plain");
        let err = unseal(&sealed("OTHER"), &values).unwrap_err();
        assert!(err.contains("`OTHER`"), "{err}");
        assert!(!is_sealed("plain ${X}"));
    }

    fn vars() -> Vars {
        [("TAG", "1.25"), ("EMPTY", ""), ("REG", "ghcr.io")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn spec_forms() {
        let cases = [
            ("nginx:${TAG}", "nginx:1.25"),
            ("nginx:$TAG", "nginx:1.25"),
            ("$REG/app", "ghcr.io/app"),
            ("${MISSING:-1.0}", "1.0"),
            ("${MISSING-1.0}", "1.0"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${TAG:+set}", "set"),
            ("${EMPTY:+set}", ""),
            ("${EMPTY+set}", "set"),
            ("${MISSING+set}", ""),
            ("${MISSING:-${TAG}}", "1.25"),
            ("${MISSING:-${ALSO:-x}-y}", "x-y"),
            ("$$TAG", "$TAG"),
            ("a$$b", "a$b"),
            ("no vars", "no vars"),
            ("${TAG:?need it}", "1.25"),
            ("é${TAG}é", "é1.25é"),
        ];
        for (input, want) in cases {
            let got = interpolate(input, &vars()).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.value, want, "{input}");
        }
    }

    #[test]
    fn missing_variables_are_reported() {
        let got = interpolate("${A}-$B-${A}", &vars()).unwrap();
        assert_eq!(got.value, "--");
        assert_eq!(got.missing, vec!["A".to_owned(), "B".to_owned()]);
    }

    #[test]
    fn errors() {
        let cases = [
            (
                "x ${MISSING:?set MISSING first}",
                2,
                "required variable `MISSING` is not set: set MISSING first",
            ),
            ("${EMPTY:?}", 0, "required variable `EMPTY` is not set"),
            ("${TAG", 0, "never closed"),
            ("$1", 0, "invalid interpolation"),
            ("a $", 2, "invalid interpolation"),
            ("${}", 0, "does not start with a variable name"),
            ("${TAG:x}", 0, "not a valid substitution"),
            ("${TAGé}", 0, "not a valid substitution"),
        ];
        for (input, offset, fragment) in cases {
            let e = interpolate(input, &vars()).expect_err(input);
            assert_eq!(e.offset, offset, "{input}");
            assert!(e.message.contains(fragment), "{input}: {}", e.message);
        }
    }

    #[test]
    fn env_files() {
        let text = "# c\nTAG=1.26\nexport REG = ghcr.io \nQ=\"a\\nb\" # c\nS='x # y'\nP=v # c\n";
        let v = parse_env_file(text).unwrap();
        assert_eq!(v["TAG"], "1.26");
        assert_eq!(v["REG"], "ghcr.io");
        assert_eq!(v["Q"], "a\nb");
        assert_eq!(v["S"], "x # y");
        assert_eq!(v["P"], "v");
        assert_eq!(parse_env_file("X\n").unwrap_err().0, 1);
        assert_eq!(parse_env_file("\n1X=a").unwrap_err().0, 2);
        assert!(parse_env_file("A=\"open").is_err());
    }
}
