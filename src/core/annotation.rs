//! The policy annotation: a JSON object in the trailing comment of an `image:`
//! line, `# {"magos": {"policy": "semver", "range": "^1.2"}}`, read into a
//! [`Policy`] with the exact byte offset of any mistake.

use super::policy::{FieldError, Policy};

/// An annotation that could not be read, located inside the JSON text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AnnotationError {
    /// Byte offset of the mistake in the JSON text.
    pub offset: usize,
    /// One line, naming the key or value at fault.
    pub message: String,
}

impl AnnotationError {
    /// Messages quote the user's values, which may hold line breaks or other
    /// control characters: escape them so a message stays on one line.
    fn one_line(mut self) -> Self {
        if self.message.chars().any(char::is_control) {
            self.message = self
                .message
                .chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
        }
        self
    }
}

/// Reads the text of a YAML comment (after `#`). `None`: the comment is not a
/// Magos annotation (no JSON object, or one without a `magos` key, which belongs
/// to someone else). A comment that starts with `{` and mentions `magos` but is
/// not valid JSON is an error, since it was most likely meant as an annotation.
/// Offsets are relative to `comment`.
pub fn parse_comment(comment: &str) -> Option<Result<Policy, AnnotationError>> {
    comment_inner(comment).map(|r| r.map_err(AnnotationError::one_line))
}

fn comment_inner(comment: &str) -> Option<Result<Policy, AnnotationError>> {
    let lead = comment.len() - comment.trim_start().len();
    let json = comment.trim();
    if !json.starts_with('{') || !json.to_ascii_lowercase().contains("mago") {
        return None;
    }
    let value: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            return Some(Err(AnnotationError {
                offset: lead + json_offset(json, &e),
                message: format!("invalid annotation JSON: {}", strip_position(&e)),
            }));
        }
    };
    let serde_json::Value::Object(map) = &value else {
        return None;
    };
    let Some(inner) = map.get("magos") else {
        // A near miss (`Magos`, `magos_`) was surely meant as an annotation.
        let near = map
            .keys()
            .find(|k| k.to_ascii_lowercase().starts_with("mago"))?;
        return Some(Err(AnnotationError {
            offset: lead + find_key(json, near, 0).unwrap_or(0),
            message: format!("unknown key `{near}`: the annotation key is `magos`"),
        }));
    };
    let magos_at = find_key(json, "magos", 0).unwrap_or(0);
    Some(read_policy(json, inner, magos_at).map_err(|mut e| {
        e.offset += lead;
        e
    }))
}

/// Reads an annotation given on its own (as `magos policy eval` takes it): either
/// `{"magos": {…}}` or the inner object `{"policy": …}`.
pub fn parse_json(json: &str) -> Result<Policy, AnnotationError> {
    json_inner(json).map_err(AnnotationError::one_line)
}

fn json_inner(json: &str) -> Result<Policy, AnnotationError> {
    let lead = json.len() - json.trim_start().len();
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| AnnotationError {
        offset: json_offset(json, &e),
        message: format!("invalid annotation JSON: {}", strip_position(&e)),
    })?;
    match &value {
        serde_json::Value::Object(map) if map.contains_key("magos") => {
            let at = find_key(json, "magos", 0).unwrap_or(lead);
            read_policy(json, &map["magos"], at)
        }
        _ => read_policy(json, &value, lead),
    }
}

/// Reads the policy object `inner`, which starts searching keys at `from`.
fn read_policy(
    json: &str,
    inner: &serde_json::Value,
    from: usize,
) -> Result<Policy, AnnotationError> {
    let serde_json::Value::Object(obj) = inner else {
        return Err(AnnotationError {
            offset: from,
            message: "the annotation must be an object: {\"magos\": {\"policy\": …}}".to_owned(),
        });
    };
    // Check types first, reporting the earliest key in the text.
    let mut located: Vec<(usize, &str, &serde_json::Value)> = obj
        .iter()
        .map(|(k, v)| (find_key(json, k, from).unwrap_or(from), k.as_str(), v))
        .collect();
    located.sort_by_key(|(at, _, _)| *at);
    let mut fields = Vec::with_capacity(located.len());
    for (at, key, value) in &located {
        if !super::policy::KEYS.contains(key) {
            return Err(AnnotationError {
                offset: *at,
                message: format!(
                    "unknown key `{key}` (known: {})",
                    super::policy::KEYS.join(", ")
                ),
            });
        }
        match value {
            serde_json::Value::String(s) => fields.push((*key, s.as_str())),
            other => {
                return Err(AnnotationError {
                    offset: *at,
                    message: format!("`{key}` must be a string, not {}", kind(other)),
                });
            }
        }
    }
    Policy::from_fields(&fields).map_err(
        |FieldError {
             key,
             message,
             on_value,
         }| {
            let offset = key
                .as_deref()
                .and_then(|k| located.iter().find(|(_, name, _)| *name == k))
                .map(|(at, _, _)| {
                    if on_value {
                        value_offset(json, *at)
                    } else {
                        *at
                    }
                })
                .unwrap_or(from);
            AnnotationError { offset, message }
        },
    )
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The byte offset of `"key"` (followed by `:`) at or after `from`.
fn find_key(json: &str, key: &str, from: usize) -> Option<usize> {
    let needle = format!("\"{key}\"");
    let mut start = from.min(json.len());
    while let Some(i) = json.get(start..)?.find(&needle) {
        let at = start + i;
        let after = json[at + needle.len()..].trim_start();
        if after.starts_with(':') {
            return Some(at);
        }
        start = at + needle.len();
    }
    None
}

/// The offset of the value after the key at `key_at` (past `"key"`, `:` and
/// spaces); the key itself when that cannot be found.
fn value_offset(json: &str, key_at: usize) -> usize {
    let Some(colon) = json[key_at..].find(':') else {
        return key_at;
    };
    let after = key_at + colon + 1;
    after + (json[after..].len() - json[after..].trim_start().len())
}

/// serde_json reports a 1-based line and column; turn them into a byte offset.
fn json_offset(json: &str, e: &serde_json::Error) -> usize {
    let line_start: usize = json
        .split_inclusive('\n')
        .take(e.line().saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + e.column().saturating_sub(1)).min(json.len())
}

/// serde_json's message without its ` at line 1 column 9` tail (the position is
/// reported separately).
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_seed_form() {
        let c = r#" {"magos": {"policy": "semver", "repo": "ghcr.io/jpvargasdev/lexcodex"}}"#;
        let p = parse_comment(c).unwrap().unwrap();
        assert_eq!(p.name(), "semver");
        assert_eq!(
            p.repo.unwrap().repository_key(),
            "ghcr.io/jpvargasdev/lexcodex"
        );
    }

    #[test]
    fn other_comments_are_not_annotations() {
        for c in [
            " plain comment",
            " magos rocks",
            r#" {"renovate": true, "note": "magos"}"#,
            "",
            " [1]",
        ] {
            assert!(parse_comment(c).is_none(), "{c}");
        }
    }

    /// (comment, offset of the mistake, message fragment)
    const BAD: &[(&str, usize, &str)] = &[
        (
            r#"{"magos": {"policy": "semver",}}"#,
            30,
            "invalid annotation JSON",
        ),
        (
            r#"{"magos": {"policy": "nope"}}"#,
            21,
            "unknown policy `nope`",
        ),
        (
            r#"{"magos": {"policy": "semver", "rnage": "1"}}"#,
            31,
            "unknown key `rnage`",
        ),
        (
            r#"{"magos": {"policy": "semver", "range": ">=abc"}}"#,
            40,
            "invalid range",
        ),
        (
            r#"{"magos": {"policy": "numerical", "filter": "(", "extract": "$a"}}"#,
            44,
            "invalid filter regex",
        ),
        (
            r#"{"magos": {"policy": "numerical", "filter": "(?P<b>x)", "extract": "$a"}}"#,
            67,
            "refers to `a`",
        ),
        (
            r#"{"magos": {"policy": "digest", "digest": "sha256:abc"}}"#,
            41,
            "sha256",
        ),
        (
            r#"{"magos": {"policy": "semver", "order": "desc"}}"#,
            31,
            "does not apply to the semver policy",
        ),
        (
            r#"{"magos": {"policy": "semver", "minAge": "3 days"}}"#,
            41,
            "invalid duration",
        ),
        (
            r#"{"magos": {"policy": "semver", "minAge": 3}}"#,
            31,
            "must be a string",
        ),
        (r#"{"magos": {"range": "1"}}"#, 1, "`policy` key is missing"),
        (r#"{"magos": "semver"}"#, 1, "must be an object"),
        (
            r#"{"magos": {"policy": "latest", "platform": "linux"}}"#,
            43,
            "not a platform",
        ),
        (
            r#"{"magos": {"policy": "latest", "tag": "a b"}}"#,
            38,
            "invalid tag",
        ),
        (
            r#"{"magos": {"policy": "semver", "repo": "nginx:1"}}"#,
            39,
            "without tag",
        ),
        (
            r#"{"magos": {"policy": "semver", "extract": "$a"}}"#,
            42,
            "needs a `filter`",
        ),
        (
            r#"{"Magos": {"policy": "semver"}}"#,
            1,
            "the annotation key is `magos`",
        ),
    ];

    #[test]
    fn mistakes_are_located() {
        for (comment, offset, fragment) in BAD {
            let err = parse_comment(comment)
                .unwrap_or_else(|| panic!("{comment} is an annotation"))
                .expect_err(comment);
            assert!(err.message.contains(fragment), "{comment}: {}", err.message);
            assert_eq!(err.offset, *offset, "{comment}: {}", err.message);
        }
    }

    #[test]
    fn messages_stay_on_one_line() {
        let e = parse_json("{\"policy\": \"a\\nb\"}").unwrap_err();
        assert_eq!(e.message.lines().count(), 1, "{}", e.message);
        assert!(e.message.contains("`a\\nb`"), "{}", e.message);
    }

    #[test]
    fn eval_form_accepts_inner_object() {
        let p = parse_json(r#"{"policy": "numerical", "order": "desc"}"#).unwrap();
        assert_eq!(p.to_string(), "numerical desc");
        let p = parse_json(r#"{"magos": {"policy": "alphabetical"}}"#).unwrap();
        assert_eq!(p.name(), "alphabetical");
    }
}
