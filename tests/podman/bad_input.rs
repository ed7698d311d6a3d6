//! Bad input against the real Podman: a repository with two stacks, both
//! applied; then, one row per broken input, stack `a`'s files are broken while
//! stack `b` changes in the same commit. `magos apply` must exit 2 with an error
//! naming the file (and line), keep every container of `a` as it was (ids
//! compared: nothing pruned, created or recreated) and converge `b`. Odd but
//! valid files (CRLF, a byte order mark) apply. The inputs are invented, one
//! per mistake; each row is one `plan` and one `apply`.

use std::collections::BTreeMap;

use crate::applycli::{Cleanup, Repo, containers, expect_exit, magos, pinned};
use crate::support::{self, Testbed, show, testbed};

/// A broken (or odd) version of stack `a`: files to write under the
/// repository, and what the error must say (`None`: it applies).
struct Row {
    what: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    error: Option<String>,
}

fn row(what: &'static str, files: Vec<(&'static str, Vec<u8>)>, error: &str) -> Row {
    Row {
        what,
        files,
        error: Some(error.to_owned()),
    }
}

/// The environment variables of a container.
fn env_of(tb: &Testbed, container: &str) -> String {
    tb.podman_ok(&[
        "inspect",
        "--format",
        "{{range .Config.Env}}{{println .}}{{end}}",
        container,
    ])
}

#[test]
fn a_stack_that_cannot_be_loaded_fails_alone_and_keeps_its_containers() {
    let Some(tb) = testbed() else { return };
    let a = support::unique_name("badinput-a");
    let b = support::unique_name("badinput-b");
    let _cleanup = Cleanup {
        tb,
        projects: vec![a.clone(), b.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &a);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    // `a`: two services, a `.env` variable; its project comes from `name:`, so
    // a file that cannot be parsed also hides the project name.
    let a_yaml = |services: &str| format!("name: {a}\nservices:\n{services}");
    let app = format!(
        "  app:\n    image: {httpd}\n    environment:\n      REV: \"${{REV}}\"\n    stop_signal: SIGKILL\n"
    );
    let extra = format!("  extra:\n    image: {httpd}\n    stop_signal: SIGKILL\n");
    let base = a_yaml(&format!("{app}{extra}"));
    let b_yaml = |rev: usize| {
        format!(
            "name: {b}\nservices:\n  app:\n    image: {httpd}\n    environment: {{REV: \"{rev}\"}}\n    stop_signal: SIGKILL\n"
        )
    };
    let restore = || {
        repo.write(tb, "a/compose.yaml", &base);
        repo.write(tb, "a/.env", "REV=1\n");
        let _ = std::fs::remove_file(repo.path().join("a/compose.override.yaml"));
        let _ = std::fs::remove_dir_all(repo.path().join("c"));
    };
    restore();
    repo.write(tb, "b/compose.yaml", &b_yaml(0));
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    let a_ids = containers(tb, &a);
    assert_eq!(a_ids.len(), 2, "{}", show(&o));
    assert_eq!(containers(tb, &b).len(), 1);

    let bytes = |s: &str| s.as_bytes().to_vec();
    let compose = |s: &str| vec![("a/compose.yaml", bytes(s))];
    let bomb = {
        let mut s = format!("name: {a}\nx-a: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = if i == 1 {
                "*a".to_owned()
            } else {
                format!("*a{}", i - 1)
            };
            s.push_str(&format!("x-a{i}: &a{i} [{}]\n", vec![prev; 9].join(", ")));
        }
        s + &format!("services:\n{app}{extra}")
    };
    let mut invalid_utf8 = base.clone().into_bytes();
    let at = base.find("SIGKILL").unwrap();
    invalid_utf8[at] = 0xff;
    let utf8_line = base[..at].lines().count();
    let mut big = base.clone().into_bytes();
    big.resize(8 * 1024 * 1024 + 1, b'#');
    let rows = vec![
        row(
            "a missing quote",
            compose(&base.replacen("\"${REV}\"", "\"${REV}", 1)),
            "a/compose.yaml:",
        ),
        row(
            "tab indentation",
            compose(&base.replace("    stop_signal", "\tstop_signal")),
            "a/compose.yaml:",
        ),
        row(
            "a duplicate key",
            compose(&format!("{base}{app}")),
            "a/compose.yaml:3:3: invalid YAML: services: duplicate entry with key \"app\"",
        ),
        row(
            "several documents",
            compose(&format!("{base}---\n{base}")),
            "a/compose.yaml:",
        ),
        row("an alias bomb", compose(&bomb), "a/compose.yaml:"),
        row(
            "over-deep nesting",
            compose(&format!("{base}x-deep: {}\n", "[".repeat(20_000))),
            &format!("a/compose.yaml:{}:", base.lines().count() + 1),
        ),
        Row {
            what: "invalid UTF-8",
            files: vec![("a/compose.yaml", invalid_utf8)],
            error: Some(format!("a/compose.yaml:{utf8_line}:")),
        },
        Row {
            what: "a file over the size limit",
            files: vec![("a/compose.yaml", big)],
            error: Some("a/compose.yaml:1:1: cannot read the file: it is larger than 8 MiB".into()),
        },
        row(
            "a scalar document",
            compose("just words\n"),
            "a/compose.yaml:1:1:",
        ),
        row(
            "`services` as a list",
            compose(&a_yaml("  - app\n")),
            "a/compose.yaml:2:1: `services` must be a mapping",
        ),
        row(
            "an empty file",
            compose(""),
            "a/compose.yaml:1:1: the file is empty",
        ),
        row(
            "`services:` without a value",
            compose(&a_yaml("")),
            "a/compose.yaml:2:1: `services:` has no value",
        ),
        row(
            "a broken override",
            vec![(
                "a/compose.override.yaml",
                bytes("services:\n  app:\n    environment: [A=1\n"),
            )],
            "a/compose.override.yaml:",
        ),
        row(
            "an invalid .env line",
            vec![("a/.env", bytes("REV=1\nthis is not a variable\n"))],
            "a/.env:2:1:",
        ),
        row(
            "a required variable unset",
            compose(&base.replace("\"${REV}\"", "\"${MUST:?must be set}\"")),
            "a/compose.yaml:6:13: required variable `MUST` is not set: must be set",
        ),
        row(
            "an invalid project name",
            compose(&base.replacen(&format!("name: {a}"), "name: Not Valid", 1)),
            "a/compose.yaml:1:1: `Not Valid` is not a valid project name",
        ),
        row(
            "a project name two folders share",
            vec![("c/compose.yaml", bytes(&base))],
            &format!(
                "a/compose.yaml:1:1: the project name `{a}` is also the project of the stack in `c`"
            ),
        ),
        row(
            "a typo in a service key",
            compose(&base.replace("    environment:", "    enviroment:")),
            "a/compose.yaml:5:5: service `app`: unknown key `enviroment` (did you mean `environment`?)",
        ),
        row(
            "a typo in a top-level key",
            compose(&format!("{base}volume:\n  data: {{}}\n")),
            &format!(
                "a/compose.yaml:{}:1: unknown top-level key `volume` (did you mean `volumes`?)",
                base.lines().count() + 1
            ),
        ),
        Row {
            what: "CRLF line endings",
            files: compose(&base.replace('\n', "\r\n")),
            error: None,
        },
        Row {
            what: "a byte order mark",
            files: compose(&format!("\u{feff}{base}")),
            error: None,
        },
    ];

    let mut b_before = containers(tb, &b);
    for (i, r) in rows.iter().enumerate() {
        let rev = i + 1;
        for (rel, text) in &r.files {
            repo.write_bytes(tb, rel, text);
        }
        repo.write(tb, "b/compose.yaml", &b_yaml(rev));
        let what = r.what;
        let plan = magos(tb, &repo, None, &["plan"]);
        let o = magos(tb, &repo, None, &["apply"]);
        for out in [&plan, &o] {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{what}: {}", show(out));
        }
        let stdout = String::from_utf8_lossy(&o.stdout);
        match &r.error {
            Some(error) => {
                assert_eq!(plan.status.code(), Some(2), "{what}: plan\n{}", show(&plan));
                assert!(
                    String::from_utf8_lossy(&plan.stdout).contains(error.as_str()),
                    "{what}: plan must say `{error}`\n{}",
                    show(&plan)
                );
                assert_eq!(o.status.code(), Some(2), "{what}: apply\n{}", show(&o));
                let failed = format!("the stack cannot be loaded: {error}");
                assert!(
                    stdout.contains(&failed),
                    "{what}: apply must say `{failed}`\n{}",
                    show(&o)
                );
            }
            None => expect_exit(&o, 0),
        }
        assert!(!stdout.contains("removed"), "{what}: {}", show(&o));
        assert_eq!(
            containers(tb, &a),
            a_ids,
            "{what}: the containers of `a` changed\n{}",
            show(&o)
        );
        let b_now = containers(tb, &b);
        assert_eq!(b_now.len(), 1, "{what}");
        assert_ne!(b_now, b_before, "{what}: `b` was not applied\n{}", show(&o));
        let name = b_now.keys().next().unwrap();
        assert!(
            env_of(tb, name).lines().any(|l| l == format!("REV={rev}")),
            "{what}: `b` does not run its new definition"
        );
        b_before = b_now;

        // The daemon's one pass says the same, and counts the stack as failing.
        if i == 0 {
            let once = magos(tb, &repo, None, &["run", "--once"]);
            expect_exit(&once, 2);
            let out = String::from_utf8_lossy(&once.stdout);
            assert!(
                out.contains("1/2 stacks in sync") && out.contains("failing: a "),
                "{}",
                show(&once)
            );
            let err = String::from_utf8_lossy(&once.stderr);
            assert!(
                err.lines()
                    .any(|l| l.contains("ERROR") && l.contains("a/compose.yaml:")),
                "{}",
                show(&once)
            );
            assert_eq!(containers(tb, &a), a_ids, "run --once changed `a`");
        }
        restore();
    }

    // A valid file that no longer lists a service: only then is its container
    // removed.
    repo.write(tb, "a/compose.yaml", &a_yaml(&app));
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    let after: BTreeMap<String, String> = containers(tb, &a);
    let kept: BTreeMap<String, String> = a_ids
        .into_iter()
        .filter(|(name, _)| !name.contains("extra"))
        .collect();
    assert_eq!(after, kept, "{}", show(&o));
}
