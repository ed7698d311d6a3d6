//! Rewrites over the compose corpus in `tests/data/compose/`: every byte other
//! than the image value stays identical, and unsafe lines are refused with a
//! reason instead of a wrong edit.

use std::path::Path;

use magos::core::rewrite::{Edit, RewriteError, rewrite, rewrite_all, scan};

const D: &str = "sha256:abababababababababababababababababababababababababababababababab";
const E: &str = "sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";

fn corpus(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/compose")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Splits into lines keeping their endings, so CRLF and a missing final newline
/// are compared too.
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// The byte-for-byte guarantee: only the value on the site's line differs, and
/// that line is the old line with the old value replaced in place.
fn assert_only_value_changed(before: &str, after: &str, line: usize, old: &str, new: &str) {
    let (b, a) = (lines(before), lines(after));
    assert_eq!(b.len(), a.len(), "line count changed");
    for (i, (x, y)) in b.iter().zip(&a).enumerate() {
        if i + 1 == line {
            assert_eq!(*y, x.replacen(old, new, 1), "line {line}");
        } else {
            assert_eq!(x, y, "line {} changed", i + 1);
        }
    }
    assert_eq!(before.ends_with('\n'), after.ends_with('\n'));
}

enum Want {
    /// Rewritten, the value was on this 1-based line.
    Ok(usize),
    /// Refused; the message contains this.
    Refused(&'static str),
}

/// (file, service, value expected in the file, new value, outcome)
const CASES: &[(&str, &str, &str, &str, Want)] = &[
    ("basic.yaml", "web", "nginx:1.25", "nginx:1.26", Want::Ok(6)),
    (
        "basic.yaml",
        "db",
        "postgres:16.3",
        "postgres:16.4",
        Want::Ok(11),
    ),
    (
        "quoted.yaml",
        "single",
        "ghcr.io/o/app:0.0.1",
        "ghcr.io/o/app:0.0.2",
        Want::Ok(3),
    ),
    (
        "quoted.yaml",
        "double",
        "ghcr.io/o/app:0.0.1",
        "ghcr.io/o/app:0.0.2",
        Want::Ok(5),
    ),
    (
        "quoted.yaml",
        "quoted-key",
        "ghcr.io/o/app:0.0.1",
        "ghcr.io/o/app:0.0.2",
        Want::Ok(7),
    ),
    ("crlf.yaml", "web", "nginx:1.25", "nginx:1.26", Want::Ok(3)),
    (
        "no-final-newline.yaml",
        "web",
        "nginx:1.25",
        "nginx:1.26",
        Want::Ok(3),
    ),
    (
        "anchors.yaml",
        "web",
        "nginx:1.25",
        "nginx:1.26",
        Want::Ok(7),
    ),
    (
        "anchors.yaml",
        "mirror",
        "*webimg",
        "nginx:1.26",
        Want::Refused("alias `*webimg`"),
    ),
    (
        "anchors.yaml",
        "other",
        "nginx",
        "nginx:1.26",
        Want::Refused("no `image:` line"),
    ),
    (
        "interpolated.yaml",
        "web",
        "nginx:${NGINX_TAG:-1.25}",
        "nginx:1.26",
        Want::Refused("interpolation"),
    ),
    (
        "interpolated.yaml",
        "app",
        "${REGISTRY}/app:1.0",
        "x/app:1.1",
        Want::Refused("interpolation"),
    ),
    (
        "flow.yaml",
        "web",
        "nginx:1.25",
        "nginx:1.26",
        Want::Refused("no `image:` line"),
    ),
    ("flow.yaml", "api", "nginx:1.25", "nginx:1.26", Want::Ok(4)),
    (
        "multiline.yaml",
        "web",
        "",
        "nginx:1.26",
        Want::Refused("not on the `image:` line"),
    ),
    (
        "multiline.yaml",
        "api",
        "nginx",
        "nginx:1.26",
        Want::Refused("continues on the next line"),
    ),
    (
        "multiline.yaml",
        "block",
        "",
        "nginx:1.26",
        Want::Refused("block scalar"),
    ),
    (
        "multiline.yaml",
        "tagged",
        "",
        "nginx:1.26",
        Want::Refused("YAML tag"),
    ),
    (
        "pinned.yaml",
        "web",
        "nginx:1.25@sha256:abababababababababababababababababababababababababababababababab",
        "nginx:1.26@sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
        Want::Ok(3),
    ),
    (
        "deep-indent.yaml",
        "web",
        "nginx:1.25",
        "nginx:1.26",
        Want::Ok(8),
    ),
    (
        "comments-everywhere.yaml",
        "web",
        "nginx:1.25",
        "nginx:1.26",
        Want::Ok(6),
    ),
    // The file must still hold the value the decision was made for.
    (
        "basic.yaml",
        "web",
        "nginx:1.24",
        "nginx:1.26",
        Want::Refused("not the expected"),
    ),
    // The new value must be a reference.
    (
        "basic.yaml",
        "web",
        "nginx:1.25",
        "nginx:1.26 # x",
        Want::Refused("cannot be written"),
    ),
    (
        "basic.yaml",
        "nope",
        "nginx:1.25",
        "nginx:1.26",
        Want::Refused("no `image:` line"),
    ),
];

#[test]
fn corpus_rewrites() {
    for (file, service, old, new, want) in CASES {
        let before = corpus(file);
        let new_pinned = format!("{new}@{D}");
        let new_value = if new.contains('@') || new.contains(' ') {
            (*new).to_owned()
        } else {
            new_pinned
        };
        let edit = Edit {
            service,
            expected: old,
            new: &new_value,
        };
        let result = rewrite(&before, &edit);
        match (want, result) {
            (Want::Ok(line), Ok(after)) => {
                assert_only_value_changed(&before, &after, *line, old, &new_value);
                // Twice equals once.
                let edit2 = Edit {
                    service,
                    expected: &new_value,
                    new: &new_value,
                };
                assert_eq!(rewrite(&after, &edit2).unwrap(), after, "{file}");
                let again = rewrite(&after, &edit).unwrap();
                assert_eq!(again, after, "{file}: rewriting twice equals once");
            }
            (Want::Refused(fragment), Err(e)) => {
                assert!(e.to_string().contains(fragment), "{file}/{service}: {e}");
            }
            (Want::Ok(_), Err(e)) => panic!("{file}/{service}: refused: {e}"),
            (Want::Refused(f), Ok(_)) => {
                panic!("{file}/{service}: rewritten, expected refusal `{f}`")
            }
        }
    }
}

#[test]
fn literal_results() {
    let before = corpus("quoted.yaml");
    let after = rewrite(
        &before,
        &Edit {
            service: "single",
            expected: "ghcr.io/o/app:0.0.1",
            new: &format!("ghcr.io/o/app:0.0.2@{D}"),
        },
    )
    .unwrap();
    assert_eq!(
        lines(&after)[2],
        format!(
            "    image: 'ghcr.io/o/app:0.0.2@{D}'   # {{\"magos\": {{\"policy\": \"semver\"}}}}\n"
        )
    );
    let before = corpus("crlf.yaml");
    let after = rewrite(
        &before,
        &Edit {
            service: "web",
            expected: "nginx:1.25",
            new: &format!("nginx:1.26@{D}"),
        },
    )
    .unwrap();
    assert_eq!(
        after,
        format!(
            "services:\r\n  web:\r\n    image: nginx:1.26@{D} # {{\"magos\": {{\"policy\": \"semver\"}}}}\r\n    restart: always\r\n"
        )
    );
    let before = corpus("no-final-newline.yaml");
    let after = rewrite(
        &before,
        &Edit {
            service: "web",
            expected: "nginx:1.25",
            new: "nginx:1.26",
        },
    )
    .unwrap();
    assert_eq!(after, "services:\n  web:\n    image: nginx:1.26");
    let before = corpus("anchors.yaml");
    let after = rewrite(
        &before,
        &Edit {
            service: "web",
            expected: "nginx:1.25",
            new: "nginx:1.26",
        },
    )
    .unwrap();
    assert!(after.contains("    image: &webimg nginx:1.26 # {\"magos\""));
    assert!(after.contains("    image: *webimg\n"));
}

#[test]
fn several_edits_in_one_pass() {
    let before = corpus("basic.yaml");
    let web = format!("nginx:1.26@{D}");
    let db = format!("postgres:16.4@{E}");
    let (after, errors) = rewrite_all(
        &before,
        &[
            Edit {
                service: "db",
                expected: "postgres:16.3",
                new: &db,
            },
            Edit {
                service: "web",
                expected: "nginx:1.25",
                new: &web,
            },
            Edit {
                service: "ghost",
                expected: "x",
                new: "y",
            },
        ],
    );
    assert!(matches!(errors.as_slice(), [RewriteError::NoSite { service }] if service == "ghost"));
    let expected = before
        .replace("nginx:1.25", &web)
        .replace("postgres:16.3", &db);
    assert_eq!(after, expected);
}

#[test]
fn scanner_ignores_look_alikes() {
    let text = corpus("deep-indent.yaml");
    let s = scan(&text);
    assert_eq!(s.sites.len(), 1, "{:?}", s.sites);
    assert_eq!(s.sites[0].value, "nginx:1.25");
    assert_eq!(s.sites[0].comment.as_ref().unwrap().1, " keep the spaces");
}

#[test]
fn stray_annotations_are_found() {
    let text = "services:\n  web: # {\"magos\": {\"policy\": \"semver\"}}\n    image: nginx\n    ports: [] # {\"magos\": {}}\n# {\"magos\": {\"policy\": \"latest\"}}\n";
    let s = scan(text);
    let lines: Vec<usize> = s.stray_annotations.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![2, 4, 5]);
}
