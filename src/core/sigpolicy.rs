//! Podman's side of the `verify:` rules (`verify_policy: write`): the
//! `sigstoreSigned` requirements that make Podman refuse at pull what Magos
//! would not pin, merged into the user's `containers-policy.json`, and the
//! `registries.d` file that makes Podman read cosign signatures (sigstore
//! attachments, the `sha256-<digest>.sig` tags) from those repositories.
//!
//! Pure: the Podman edge reads and writes the files.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// One scope of Podman's policy and the keys any of which must have signed
/// what is pulled from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// A repository (`ghcr.io/me/app`) or a namespace (`ghcr.io/me`), as
    /// `containers-policy.json(5)` scopes the `docker` transport.
    pub scope: String,
    /// Absolute paths of PEM public keys.
    pub keys: Vec<String>,
}

/// The Podman scope of a `match` pattern: the pattern itself when it has no
/// `*`, the namespace before a final `/*`; `None` for any other pattern (a
/// Podman scope cannot say it).
pub fn scope_of(pattern: &str) -> Option<&str> {
    let scope = pattern.strip_suffix("/*").unwrap_or(pattern);
    let plausible = !scope.is_empty()
        && !scope.contains('*')
        && !scope.starts_with('/')
        && !scope.ends_with('/')
        && !scope.contains(char::is_whitespace);
    plausible.then_some(scope)
}

/// The requirements of `rules` (`(name, match, absolute key path)`), one per
/// scope in the order of the rules, each with the keys of every rule naming
/// it; and, per rule that cannot be written, why (for a warning).
pub fn requirements(
    rules: &[(Option<&str>, Option<&str>, &str)],
) -> (Vec<Requirement>, Vec<String>) {
    let mut out: Vec<Requirement> = Vec::new();
    let mut unwritten = Vec::new();
    for (i, (name, pattern, key)) in rules.iter().enumerate() {
        let rule = match name {
            Some(n) => format!("verify rule {} (\"{n}\")", i + 1),
            None => format!("verify rule {}", i + 1),
        };
        let Some(pattern) = pattern else {
            unwritten.push(format!(
                "{rule} has no `match`: Podman is not told which images it covers"
            ));
            continue;
        };
        let Some(scope) = scope_of(pattern) else {
            unwritten.push(format!(
                "{rule}: `match: \"{pattern}\"` is not a repository nor `namespace/*`, which is all a Podman scope can say"
            ));
            continue;
        };
        match out.iter_mut().find(|r| r.scope == scope) {
            Some(r) if r.keys.iter().any(|k| k == key) => {}
            Some(r) => r.keys.push((*key).to_owned()),
            None => out.push(Requirement {
                scope: scope.to_owned(),
                keys: vec![(*key).to_owned()],
            }),
        }
    }
    (out, unwritten)
}

/// The policy used when the user has none and the system none either:
/// Podman's packaged default.
pub const DEFAULT_POLICY: &str = r#"{"default": [{"type": "insecureAcceptAnything"}]}"#;

/// `existing` (the text of a `policy.json`) with each requirement's scope of
/// the `docker` transport set to a `sigstoreSigned` requirement of its keys,
/// the signature's identity matching the repository (cosign signs
/// `repo@digest`, naming the repository without a tag). Every other rule is
/// kept. The same input gives the same text, and applying it twice changes
/// nothing the second time. A text that is not such JSON is an error saying
/// where.
pub fn merge_policy(existing: &str, requirements: &[Requirement]) -> Result<String, String> {
    let mut policy: Value = serde_json::from_str(existing)
        .map_err(|e| format!("line {} column {}: {e}", e.line(), e.column()))?;
    let Value::Object(root) = &mut policy else {
        return Err("the policy is not a JSON object".to_owned());
    };
    let transports = object_at(root, "transports", "`transports`")?;
    let docker = object_at(transports, "docker", "`transports.docker`")?;
    for r in requirements {
        let mut requirement = Map::new();
        requirement.insert("type".into(), json!("sigstoreSigned"));
        match r.keys.as_slice() {
            [one] => requirement.insert("keyPath".into(), json!(one)),
            many => requirement.insert("keyPaths".into(), json!(many)),
        };
        requirement.insert("signedIdentity".into(), json!({"type": "matchRepository"}));
        docker.insert(r.scope.clone(), json!([Value::Object(requirement)]));
    }
    let mut text = serde_json::to_string_pretty(&policy).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

/// The object under `key` of `map`, made when missing.
fn object_at<'m>(
    map: &'m mut Map<String, Value>,
    key: &str,
    shown: &str,
) -> Result<&'m mut Map<String, Value>, String> {
    match map.entry(key).or_insert_with(|| json!({})) {
        Value::Object(o) => Ok(o),
        _ => Err(format!("{shown} is not a JSON object")),
    }
}

/// The `docker` namespaces a `registries.d` file defines (`taken`: those
/// other files already define, which Podman refuses to see twice).
pub fn namespaces(registries_d_yaml: &str) -> Result<BTreeSet<String>, String> {
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(registries_d_yaml).map_err(|e| e.to_string())?;
    Ok(value
        .get("docker")
        .and_then(|d| d.as_mapping())
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Magos's own `registries.d` file: `use-sigstore-attachments: true` for every
/// requirement's scope that no other file of the folder (`taken`) defines.
pub fn registries_d(requirements: &[Requirement], taken: &BTreeSet<String>) -> String {
    let mut text = String::from(
        "# Written by Magos (verify_policy: write): Podman reads the cosign signatures\n\
         # of the repositories its verify: rules cover. Rewritten whole; do not edit.\n",
    );
    let scopes: Vec<&str> = requirements
        .iter()
        .map(|r| r.scope.as_str())
        .filter(|s| !taken.contains(*s))
        .collect();
    if scopes.is_empty() {
        text.push_str("docker: {}\n");
        return text;
    }
    text.push_str("docker:\n");
    for scope in scopes {
        // A JSON string is a YAML double-quoted scalar.
        let key = serde_json::to_string(scope).unwrap_or_default();
        text.push_str(&format!("  {key}:\n    use-sigstore-attachments: true\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_a_scope_when_podman_can_say_it() {
        assert_eq!(scope_of("ghcr.io/me/*"), Some("ghcr.io/me"));
        assert_eq!(
            scope_of("127.0.0.1:5000/magos/signed"),
            Some("127.0.0.1:5000/magos/signed")
        );
        assert_eq!(scope_of("*"), None);
        assert_eq!(scope_of("*/magos/*"), None);
        assert_eq!(scope_of("ghcr.io/me/app-*"), None);
        assert_eq!(scope_of("/*"), None);
    }

    #[test]
    fn rules_group_by_scope_and_the_unwritable_ones_are_named() {
        let rules = [
            (None, Some("ghcr.io/me/*"), "/k/a.pub"),
            (Some("lab"), None, "/k/b.pub"),
            (None, Some("ghcr.io/me/*"), "/k/c.pub"),
            (None, Some("ghcr.io/me/*"), "/k/a.pub"),
            (Some("all"), Some("*"), "/k/d.pub"),
        ];
        let (reqs, unwritten) = requirements(&rules);
        assert_eq!(
            reqs,
            [Requirement {
                scope: "ghcr.io/me".into(),
                keys: vec!["/k/a.pub".into(), "/k/c.pub".into()],
            }]
        );
        assert_eq!(unwritten.len(), 2, "{unwritten:?}");
        assert!(unwritten[0].starts_with("verify rule 2 (\"lab\") has no `match`"));
        assert!(unwritten[1].contains("`match: \"*\"`"), "{}", unwritten[1]);
    }

    fn reqs() -> Vec<Requirement> {
        vec![
            Requirement {
                scope: "127.0.0.1:5000/magos/signed".into(),
                keys: vec!["/k/trusted.pub".into()],
            },
            Requirement {
                scope: "ghcr.io/me".into(),
                keys: vec!["/k/a.pub".into(), "/k/b.pub".into()],
            },
        ]
    }

    #[test]
    fn the_policy_keeps_other_rules_and_writing_twice_changes_nothing() {
        let user = r#"{
            "default": [{"type": "reject"}],
            "transports": {
                "docker": {"docker.io/library": [{"type": "insecureAcceptAnything"}],
                           "ghcr.io/me": [{"type": "reject"}]},
                "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}
            }
        }"#;
        let once = merge_policy(user, &reqs()).unwrap();
        assert_eq!(merge_policy(&once, &reqs()).unwrap(), once, "idempotent");
        let v: Value = serde_json::from_str(&once).unwrap();
        assert_eq!(v["default"], json!([{"type": "reject"}]));
        assert_eq!(
            v["transports"]["docker-daemon"],
            json!({"": [{"type": "insecureAcceptAnything"}]})
        );
        let docker = &v["transports"]["docker"];
        assert_eq!(
            docker["docker.io/library"],
            json!([{"type": "insecureAcceptAnything"}])
        );
        assert_eq!(
            docker["127.0.0.1:5000/magos/signed"],
            json!([{"type": "sigstoreSigned", "keyPath": "/k/trusted.pub",
                    "signedIdentity": {"type": "matchRepository"}}])
        );
        // The rule's scope replaces what the file said for it.
        assert_eq!(
            docker["ghcr.io/me"],
            json!([{"type": "sigstoreSigned", "keyPaths": ["/k/a.pub", "/k/b.pub"],
                    "signedIdentity": {"type": "matchRepository"}}])
        );
        // From the default policy, `transports` is made.
        let fresh: Value =
            serde_json::from_str(&merge_policy(DEFAULT_POLICY, &reqs()[..1]).unwrap()).unwrap();
        assert_eq!(
            fresh["default"],
            json!([{"type": "insecureAcceptAnything"}])
        );
        assert_eq!(fresh["transports"]["docker"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn a_policy_that_is_not_json_or_not_shaped_so_is_an_error_saying_where() {
        let e = merge_policy("{\n  \"default\": [\n", &reqs()).unwrap_err();
        assert!(e.starts_with("line 3 column 0"), "{e}");
        let e = merge_policy("[]", &reqs()).unwrap_err();
        assert!(e.contains("not a JSON object"), "{e}");
        let e = merge_policy(r#"{"transports": {"docker": []}}"#, &reqs()).unwrap_err();
        assert!(e.contains("`transports.docker`"), "{e}");
    }

    #[test]
    fn registries_d_turns_on_sigstore_attachments_except_where_another_file_does() {
        let text = registries_d(&reqs(), &BTreeSet::new());
        assert!(text.starts_with("# Written by Magos"));
        let ours = namespaces(&text).unwrap();
        assert_eq!(
            ours.into_iter().collect::<Vec<_>>(),
            ["127.0.0.1:5000/magos/signed", "ghcr.io/me"]
        );
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            v["docker"]["ghcr.io/me"]["use-sigstore-attachments"],
            serde_yaml_ng::Value::Bool(true)
        );
        let taken: BTreeSet<String> = ["ghcr.io/me".to_owned()].into();
        let text = registries_d(&reqs(), &taken);
        assert_eq!(namespaces(&text).unwrap().len(), 1, "{text}");
        let none = registries_d(&[], &BTreeSet::new());
        assert!(namespaces(&none).unwrap().is_empty(), "{none}");
    }
}
