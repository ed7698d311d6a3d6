//! `magos check` and `magos update` where no registry is needed: where the
//! repository is taken from, what each mode refuses, and a repository with
//! nothing to pin, against real git (bare repositories on disk).

#[path = "common/cli.rs"]
mod cli;
#[path = "common/git.rs"]
mod git_fixture;

use std::path::{Path, PathBuf};
use std::process::Output;

use cli::{magos, magos_on};
use git_fixture::git;

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("magos.yaml");
    std::fs::write(
        &path,
        format!("state_dir: {}\n{yaml}", dir.join("state").display()),
    )
    .unwrap();
    path
}

/// A bare remote holding one stack whose only service has no annotation.
fn bare_remote(root: &Path) -> PathBuf {
    git_fixture::bare_remote(
        root,
        "remote.git",
        &[(
            "web/compose.yaml",
            "services:\n  app:\n    image: registry.example/app:1.0\n",
        )],
    )
    .0
}

#[test]
fn a_repository_with_nothing_annotated_has_nothing_to_update() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_remote(tmp.path());
    let before = git(&bare, &["rev-parse", "main"]);
    let cfg = config(tmp.path(), &format!("repo:\n  url: {}\n", bare.display()));
    let cfg = cfg.to_str().unwrap();

    let out = magos(tmp.path(), &["update", "--config", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("nothing to update"), "{stdout}");
    assert_eq!(git(&bare, &["rev-parse", "main"]), before);

    // check reads Magos's clone of the remote (a bare repository is a remote).
    let out = magos(tmp.path(), &["check", "--config", cfg, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");

    let out = magos(tmp.path(), &["update", "--config", cfg, "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "an empty diff");
}

#[test]
fn a_plain_folder_is_edited_in_place_only_never_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("gitops");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("compose.yaml"),
        "services:\n  app:\n    image: registry.example/app:1.0\n",
    )
    .unwrap();
    let cfg = config(tmp.path(), "");
    let out = magos_on(tmp.path(), "update", &cfg, &folder, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is a local folder"), "{stderr}");
    assert!(stderr.contains("--no-commit"), "{stderr}");
    assert!(!tmp.path().join("state").exists(), "nothing was cloned");

    let out = magos_on(tmp.path(), "update", &cfg, &folder, &["--no-commit"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

#[test]
fn no_commit_needs_a_folder_and_a_repository_is_required() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_remote(tmp.path());
    let cfg_file = config(tmp.path(), "");
    let cfg = cfg_file.to_str().unwrap();
    let out = magos_on(tmp.path(), "update", &cfg_file, &bare, &["--no-commit"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--no-commit rewrites a local folder") && stderr.contains("remote.git"),
        "{stderr}"
    );

    for cmd in ["check", "update"] {
        let out = magos(tmp.path(), &[cmd, "--config", cfg]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no repository: pass --repo"),
            "{}",
            show(&out)
        );
    }

    let out = magos(
        tmp.path(),
        &["update", "--config", cfg, "--dry-run", "--no-commit"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "flags that contradict: {}",
        show(&out)
    );
}

#[test]
fn pull_request_mode_needs_a_github_repository_and_api_access() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_remote(tmp.path());
    let cfg = config(
        tmp.path(),
        &format!("repo:\n  url: {}\n  mode: pull_request\n", bare.display()),
    );
    let out = magos(tmp.path(), &["update", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&bare.display().to_string()),
        "{}",
        show(&out)
    );

    let cfg = config(
        tmp.path(),
        "repo:\n  url: https://github.com/me/homelab.git\n  mode: pull_request\n  pr_grouping: grouped\n",
    );
    let out = magos(tmp.path(), &["update", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pull-request mode needs GitHub API access"),
        "{}",
        show(&out)
    );

    let cfg = config(tmp.path(), "repo:\n  mode: pull-request\n");
    let out = magos(tmp.path(), &["update", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("magos.yaml:3") && stderr.contains("repo.mode"),
        "{stderr}"
    );
}

/// Found by an adversarial run: `check` and `update` exited 0 with an invalid
/// annotation (only `lint` said it). They exit 2 and log it with its file and
/// line; the valid service beside it is still read.
#[test]
fn an_invalid_annotation_fails_check_and_update() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("gitops");
    std::fs::create_dir_all(folder.join("web")).unwrap();
    std::fs::write(
        folder.join("web/compose.yaml"),
        "services:\n  app:\n    image: registry.example/app:1.0\n  \
         bad:\n    image: registry.example/bad:1.0 # {\"magos\": {\"policy\": \"semverr\"}}\n",
    )
    .unwrap();
    let cfg = config(tmp.path(), "");
    for (cmd, extra) in [
        ("check", &[][..]),
        ("update", &["--dry-run"][..]),
        ("update", &["--no-commit"][..]),
    ] {
        let out = magos_on(tmp.path(), cmd, &cfg, &folder, extra);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{cmd} {extra:?}: {}",
            show(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("web/compose.yaml:5:") && stderr.contains("unknown policy `semverr`"),
            "{cmd} {extra:?}: {}",
            show(&out)
        );
    }
}
