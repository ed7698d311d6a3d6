//! Git fixtures for the tests: the git program run for a test's own set-up,
//! isolated from any user configuration, and bare remotes with a work clone
//! that plays the people pushing to them.

// Each test binary that includes this file uses a different part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs git in `dir` as "Someone Else", isolated from any user configuration;
/// its trimmed standard output. A failure fails the test.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Someone Else")
        .env("GIT_AUTHOR_EMAIL", "someone@example.org")
        .env("GIT_COMMITTER_NAME", "Someone Else")
        .env("GIT_COMMITTER_EMAIL", "someone@example.org")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes each `(path, contents)` of `files` under `dir`, making folders.
pub fn write_files(dir: &Path, files: &[(impl AsRef<str>, impl AsRef<str>)]) {
    for (path, contents) in files {
        let p = dir.join(path.as_ref());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents.as_ref()).unwrap();
    }
}

/// A bare remote at `rel` under `root` holding `files` on `main` in one
/// commit, and a work clone `root/other` (its `origin` is the remote) that
/// plays the people pushing to it: `(remote, other)`.
pub fn bare_remote(
    root: &Path,
    rel: &str,
    files: &[(impl AsRef<str>, impl AsRef<str>)],
) -> (PathBuf, PathBuf) {
    let bare = root.join(rel);
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    let other = root.join("other");
    git(root, &["init", "-q", "-b", "main", "other"]);
    write_files(&other, files);
    git(&other, &["add", "-A"]);
    git(&other, &["commit", "-q", "-m", "initial"]);
    git(&other, &["remote", "add", "origin", bare.to_str().unwrap()]);
    git(&other, &["push", "-q", "origin", "main"]);
    (bare, other)
}

/// From the work clone `other`: pulls, commits `contents` to `file` and pushes
/// it; the new commit.
pub fn push_other(other: &Path, file: &str, contents: &str, message: &str) -> String {
    git(other, &["pull", "-q", "--rebase", "origin", "main"]);
    write_files(other, &[(file, contents)]);
    git(other, &["add", "-A"]);
    git(other, &["commit", "-q", "-m", message]);
    git(other, &["push", "-q", "origin", "main"]);
    git(other, &["rev-parse", "HEAD"])
}
