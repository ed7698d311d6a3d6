//! The real `magos` binary: `policy eval` and `lint`, exit codes and JSON.

use std::path::Path;
use std::process::{Command, Output};

fn magos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(args)
        .env_remove("MAGOS_CONFIG")
        .env_remove("MD_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run magos")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn policy_eval_chooses_with_exit_0() {
    let out = magos(&[
        "policy",
        "eval",
        r#"{"magos": {"policy": "semver", "range": ">=1.2.0 <2.0.0"}}"#,
        "--tags",
        "1.1.0",
        "1.2.0",
        "v1.9.1",
        "1.9.2-rc.1",
        "2.0.0",
        "latest",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["chosen"], "v1.9.1");
    assert_eq!(v["outcome"], "chosen");
    assert!(v["reason"].as_str().unwrap().contains("highest"));
}

#[test]
fn policy_eval_table_output() {
    let out = magos(&[
        "policy",
        "eval",
        r#"{"policy": "numerical", "order": "desc"}"#,
        "--tags",
        "3",
        "10",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("chosen: 2\n"), "{text}");
    assert!(text.contains("policy: numerical desc\n"), "{text}");
}

#[test]
fn policy_eval_none_qualifies_exit_1() {
    let out = magos(&[
        "policy",
        "eval",
        r#"{"policy": "semver", "range": "^3"}"#,
        "--tags",
        "1.0.0",
        "2.0.0",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert!(v["chosen"].is_null());
    assert!(
        v["reason"].as_str().unwrap().contains("none of 2 tags"),
        "{v}"
    );
}

#[test]
fn policy_eval_current_and_age() {
    let out = magos(&[
        "policy",
        "eval",
        r#"{"policy": "semver", "minAge": "72h"}"#,
        "--tags",
        "1.0.0",
        "1.1.0",
        "1.2.0",
        "--age",
        "1.0.0=10d",
        "--age",
        "1.1.0=4d",
        "--current",
        "ghcr.io/o/app:1.0.0",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["chosen"], "1.1.0");
    let out = magos(&[
        "policy",
        "eval",
        r#"{"policy": "digest"}"#,
        "--tags",
        "1",
        "--current",
        "nginx:1",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["chosen"], "1");
    assert_eq!(v["outcome"], "fixed");
}

#[test]
fn policy_eval_invalid_exit_2() {
    for bad in [
        r#"{"policy": "semver", "range": "1.2.3.4"}"#,
        r#"{"policy": "sometimes"}"#,
        r#"{"policy": "semver", "unknown": "x"}"#,
        r#"{"policy": "numerical", "filter": "(", "extract": "$x"}"#,
        r#"{"policy": "digest", "digest": "sha256:abc"}"#,
        "not json",
    ] {
        let out = magos(&["policy", "eval", bad, "--tags", "1.0.0"]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with("error: invalid policy annotation at character"),
            "{bad}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
    for [flag, bad] in [["--current", "Bad Ref"], ["--age", "2=1d"]] {
        let out = magos(&[
            "policy",
            "eval",
            r#"{"policy": "semver"}"#,
            "--tags",
            "1",
            flag,
            bad,
        ]);
        assert_eq!(out.status.code(), Some(2), "{flag} {bad}");
    }
}

#[test]
fn lint_reports_everything_with_exit_1() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/repo");
    let out = magos(&["lint", "--repo", repo.to_str().unwrap(), "--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let dirs: Vec<&str> = v["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["dir"].as_str().unwrap())
        .collect();
    assert_eq!(
        dirs,
        [
            ".",
            "apps/badyaml",
            "apps/broken",
            "apps/dupe",
            "apps/web",
            "hosts/alpha/media",
            "hosts/beta/media"
        ]
    );
    let web = &v["stacks"][4];
    assert_eq!(web["project"], "website");
    assert_eq!(web["files"][1], "apps/web/compose.override.yaml");
    assert_eq!(web["services"][0]["unsupported"], serde_json::json!([]));
    assert_eq!(web["services"][1]["image"], "redis:7.2.4");
    assert_eq!(web["services"][1]["file"], "apps/web/compose.override.yaml");
    let diags = v["diagnostics"].as_array().unwrap();
    let lines: Vec<String> = diags
        .iter()
        .map(|d| {
            format!(
                "{}:{}:{}",
                d["file"].as_str().unwrap(),
                d["line"],
                d["column"]
            )
        })
        .collect();
    for expected in [
        "apps/badyaml/compose.yaml:4:4",
        "apps/broken/compose.yaml:3:65",
        "apps/broken/compose.yaml:5:46",
        "apps/broken/compose.yaml:7:55",
        "apps/broken/compose.yaml:9:12",
        "apps/broken/compose.yaml:14:69",
        "apps/broken/compose.yaml:16:56",
        "apps/dupe/docker-compose.yml:1:1",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected} not in {lines:#?}"
        );
    }
    assert_eq!(v["summary"]["stacks"], 7);
    assert!(!lines.iter().any(|l| l.starts_with(".hidden")));
}

#[test]
fn lint_clean_repo_exit_0_and_host_selection() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "web/compose.yaml",
        "services:\n  web:\n    image: nginx:1.25 # {\"magos\": {\"policy\": \"semver\"}}\n",
    );
    write(
        "hosts/a/x/compose.yaml",
        "services:\n  x:\n    image: busybox\n",
    );
    write(
        "hosts/b/y/compose.yaml",
        "services:\n  y:\n    image: busybox\n",
    );
    let root = dir.path().to_str().unwrap();
    let out = magos(&["lint", "--repo", root, "--host", "a"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("stack web (project web)"), "{text}");
    assert!(text.contains("stack hosts/a/x"), "{text}");
    assert!(!text.contains("hosts/b/y"), "{text}");
    assert!(
        text.ends_with("2 stacks, 2 services, 1 policies, 0 errors, 0 warnings, 2 notes\n"),
        "{text}"
    );
    let out = magos(&[
        "lint",
        "--repo",
        root,
        "--exclude",
        "hosts/**",
        "--output",
        "json",
    ]);
    assert_eq!(json(&out)["summary"]["stacks"], 1);
}

#[test]
fn lint_notes_the_keys_magos_does_not_apply_and_its_differences_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app/compose.yaml");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(
        &p,
        "services:\n  web:\n    image: nginx:1.25\n    depends_on: [db]\n    deploy:\n      mode: global\n  db:\n    image: postgres:16\n",
    )
    .unwrap();
    let root = dir.path().to_str().unwrap();
    let out = magos(&["lint", "--repo", root]);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    // Notes are reported, and are not mistakes: the exit code stays 0.
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in [
        "app/compose.yaml:1:1: note: podman-compose puts the project's containers in a pod",
        "app/compose.yaml:4:5: note: service `web`: `depends_on`: podman-compose also passes `--requires`",
        "app/compose.yaml:5:5: note: service `web`: `deploy.mode` is not applied by Magos",
    ] {
        assert!(text.contains(line), "{line}\nnot in:\n{text}");
    }
    assert!(text.ends_with("0 errors, 0 warnings, 3 notes\n"), "{text}");
    let v = json(&magos(&["lint", "--repo", root, "--output", "json"]));
    assert_eq!(v["summary"]["notes"], 3, "{v}");
    assert!(
        v["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["severity"] == "note"),
        "{v}"
    );
}

#[test]
fn lint_unreadable_repo_exit_2() {
    let out = magos(&["lint", "--repo", "/nonexistent/magos-repo"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot read the folder /nonexistent/magos-repo"),
        "{err}"
    );
    let out = magos(&["lint", "--repo", ".", "--include", "a/["]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_has_examples() {
    let out = magos(&["policy", "eval", "--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Examples:") && text.contains("--tags"),
        "{text}"
    );
    let out = magos(&["lint", "--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Examples:") && text.contains("--repo"),
        "{text}"
    );
}

#[test]
fn lint_reports_what_the_hosts_trust_boundary_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("app")).unwrap();
    std::fs::write(
        repo.join("app/compose.yaml"),
        "services:\n  app:\n    image: busybox\n    env_file: app.env\n    privileged: true\n",
    )
    .unwrap();
    std::fs::write(outside.path().join("app.env"), "A=1\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("app.env"), repo.join("app/app.env")).unwrap();
    let config = dir.path().join("magos.yaml");
    let lint = |config_text: &str| {
        std::fs::write(&config, config_text).unwrap();
        let out = magos(&[
            "--config",
            config.to_str().unwrap(),
            "lint",
            "--repo",
            repo.to_str().unwrap(),
        ]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // The default: only the link out of the repository is refused.
    let (code, text) = lint("");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("app/compose.yaml:4:5: error: services.app.env_file: `app.env` goes through a symbolic link to"), "{text}");
    assert!(
        text.contains("refused by apply.allow.symlinks_outside_repo=false (host configuration)"),
        "{text}"
    );
    assert!(!text.contains("services.app.privileged"), "{text}");
    // The host allows links and refuses privileged containers.
    let (code, text) =
        lint("apply:\n  allow:\n    privileged: false\n    symlinks_outside_repo: true\n");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("app/compose.yaml:5:5: error: services.app.privileged: a privileged container: refused by apply.allow.privileged=false (host configuration)"), "{text}");
    assert!(!text.contains("symbolic link"), "{text}");
    let (code, text) = lint("apply:\n  allow:\n    symlinks_outside_repo: true\n");
    assert_eq!(code, Some(0), "{text}");
}

#[path = "common/git.rs"]
mod git_fixture;

/// `--repo` takes a folder or a git URL alike: `lint` over a bare repository
/// (read through Magos's clone) reports what it reports over the folder.
#[test]
fn lint_reads_a_git_url_as_it_reads_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let compose = "services:\n  web:\n    image: nginx:1.25 # {\"magos\": {\"policy\": \"nope\"}}\n    ports:\n      - \"80800:80\"\n";
    let (bare, work) =
        git_fixture::bare_remote(dir.path(), "homelab.git", &[("web/compose.yaml", compose)]);
    let config = dir.path().join("magos.yaml");
    std::fs::write(
        &config,
        format!("state_dir: {}\n", dir.path().join("state").display()),
    )
    .unwrap();
    let lint = |repo: &Path| {
        let out = magos(&[
            "--config",
            config.to_str().unwrap(),
            "lint",
            "--repo",
            repo.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let from_folder = lint(&work);
    let from_url = lint(&bare);
    assert_eq!(from_url, from_folder);
    assert!(from_url.contains("web/compose.yaml:"), "{from_url}");
    assert!(from_url.contains("80800"), "{from_url}");
    assert!(from_url.contains("unknown policy `nope`"), "{from_url}");
}

#[test]
fn history_prints_the_journal_filtered_by_age_and_teaches_its_flags() {
    let state = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old = now - 3 * 86_400;
    std::fs::write(
        state.path().join("events.jsonl"),
        format!(
            "{{\"kind\":\"pass_failed\",\"at\":{old},\"reason\":\"git fetch failed\"}}\n{{\"kind\":\"pinned\",\"at\":{now},\"stack\":\"web\",\"service\":\"app\",\"reason\":\"tag 1.2.0\"}}\n"
        ),
    )
    .unwrap();
    let history = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_magos"))
            .arg("history")
            .args(args)
            .env_remove("MAGOS_CONFIG")
            .env("HOME", state.path())
            .env("XDG_CONFIG_HOME", state.path())
            .env("MD_STATE_DIR", state.path())
            .output()
            .expect("run magos")
    };
    let out = history(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("pass_failed  -  git fetch failed"), "{text}");
    let out = history(&["--since", "1d", "--output", "json"]);
    let v = json(&out);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["kind"], "pinned");
    assert_eq!(v[0]["service"], "app");
    let out = history(&["--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--since yesterday"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = history(&["--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Examples:") && text.contains("--since 1d"),
        "{text}"
    );
}
