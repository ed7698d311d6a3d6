//! The git edge against real git: bare repositories on disk as remotes, and a
//! real `git http-backend` on 127.0.0.1 behind token authentication.

#[path = "git/fake_github.rs"]
mod fake_github;
#[path = "common/git.rs"]
mod git_fixture;
#[path = "git/http_backend.rs"]
mod http_backend;
#[path = "common/local_http.rs"]
mod local_http;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use magos::config::{Branch, RepoUrl, Secret};
use magos::git::message::{PinChange, render};
use magos::git::{
    Auth, Change, Checkout, Credentials, FileEdit, GitError, Identity, Remote, UpdateOptions,
    UpdateOutcome,
};

use fake_github::FakeGithub;
use git_fixture::{bare_remote, git, push_other};
use http_backend::HttpBackend;
use magos::git::ProposeOutcome;
use magos::git::github::{
    GithubApp, PullRequest, RepoSlug, close_superseded, ensure_pull_request, pull_request_branch,
    pull_request_prefix,
};

const COMPOSE: &str = "services:\n  app:\n    image: registry.example/app:1.0 # magos: semver ^1\n";
const TOKEN: &str = "tok_3c8e1f0a9b7d";

/// A temporary folder with a bare remote `remote.git` holding one commit, and a
/// work clone `other` that plays the humans (and other pushers) of the remote.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        bare_remote(
            tmp.path(),
            "remote.git",
            &[
                ("stacks/web/compose.yaml", COMPOSE),
                ("README.md", "stacks\n"),
            ],
        );
        Self { tmp }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn remote_dir(&self) -> PathBuf {
        self.path("remote.git")
    }

    fn remote_head(&self) -> String {
        git(&self.remote_dir(), &["rev-parse", "refs/heads/main"])
    }

    /// Commits `contents` to `file` from the other clone and pushes it.
    fn push_other(&self, file: &str, contents: &str, message: &str) -> String {
        push_other(&self.path("other"), file, contents, message)
    }

    fn checkout(&self, url: &str, auth: Auth) -> Checkout {
        let remote = Remote::new(
            &RepoUrl::parse(url).unwrap(),
            &Branch::parse("main").unwrap(),
            auth,
        );
        Checkout::new(self.path("magos-clone"), remote)
    }

    fn local_checkout(&self) -> Checkout {
        self.checkout(self.remote_dir().to_str().unwrap(), Auth::Ambient)
    }
}

fn identity() -> Identity {
    Identity {
        name: "Magos Dominus".into(),
        email: "magos@localhost".into(),
    }
}

/// The processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            if line.contains(needle) {
                found.push(format!("{name}: {line}"));
            }
        }
    }
    found
}

#[test]
fn a_push_that_never_answers_times_out_kills_its_git_and_keeps_the_commit() {
    let f = Fixture::new();
    let server = HttpBackend::hanging_pushes(f.tmp.path().to_owned(), TOKEN);
    let c = Checkout::new(
        f.path("magos-clone"),
        Remote::new(
            &RepoUrl::parse(&server.url("remote.git")).unwrap(),
            &Branch::parse("main").unwrap(),
            Auth::Basic(Credentials::token(Secret::new(TOKEN))),
        )
        .with_timeout(std::time::Duration::from_secs(2)),
    );
    let before = f.remote_head();
    let err = c.update(&options(3), pin_app).unwrap_err();
    let GitError::Push { kept, reason, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(
        reason.contains("did not finish within 2s (repo.timeout)"),
        "{reason}"
    );
    assert_eq!(
        server.seen.lock().unwrap().hung,
        1,
        "the push reached the remote"
    );
    // Killed processes may take an instant to go: wait for that, generously.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut left = processes_mentioning(&server.addr.to_string());
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        left = processes_mentioning(&server.addr.to_string());
    }
    assert!(left.is_empty(), "git children left behind: {left:?}");
    assert_eq!(f.remote_head(), before);
    assert!(
        git(
            c.workdir(),
            &["log", "-1", "--format=%s", &format!("refs/heads/{kept}")]
        )
        .starts_with("Pin 1 image update(s)")
    );
    // The clone realigns on what the remote holds, without the remote's answer.
    c.align_to_fetched().unwrap();
    assert_eq!(
        git(c.workdir(), &["rev-parse", "HEAD"]).trim(),
        before.trim()
    );
}

fn options(max_attempts: u32) -> UpdateOptions {
    UpdateOptions {
        identity: identity(),
        push: true,
        max_attempts: NonZeroU32::new(max_attempts).unwrap(),
    }
}

/// The pin computation a caller would do: rewrite the app's image line of the
/// tree it is given, or nothing when it is already pinned.
fn pin_app(dir: &Path) -> Result<Option<Change>, std::io::Error> {
    pin(dir, "1.1", '1')
}

fn pin(dir: &Path, version: &str, digit: char) -> Result<Option<Change>, std::io::Error> {
    let path = dir.join("stacks/web/compose.yaml");
    let text = std::fs::read_to_string(&path)?;
    let old = "registry.example/app:1.0 ";
    let new = format!(
        "registry.example/app:{version}@sha256:{} ",
        digit.to_string().repeat(64)
    );
    let new = new.as_str();
    if !text.contains(old) {
        return Ok(None);
    }
    let message = render(
        "Pin {count} image update(s): {services}\n\n{changes}",
        &[PinChange {
            stack: "web".into(),
            service: "app".into(),
            old: old.trim().into(),
            new: new.trim().into(),
        }],
    );
    Ok(Some(Change {
        files: vec![FileEdit {
            path: "stacks/web/compose.yaml".into(),
            contents: text.replace(old, new).into_bytes(),
        }],
        message,
    }))
}

/// An error with its whole chain of causes, as the command line prints it.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn status(dir: &Path) -> String {
    git(dir, &["status", "--porcelain", "--ignored"])
}

#[test]
fn first_sync_clones_and_later_syncs_fetch() {
    let f = Fixture::new();
    let c = f.local_checkout();
    let synced = c.sync().unwrap();
    assert_eq!(synced.head, f.remote_head());
    assert_eq!(
        std::fs::read_to_string(c.workdir().join("stacks/web/compose.yaml")).unwrap(),
        COMPOSE
    );
    assert_eq!(status(c.workdir()), "");

    let new = f.push_other("stacks/db/compose.yaml", "services: {}\n", "add db");
    let synced = c.sync().unwrap();
    assert_eq!(synced.head, new);
    assert!(c.workdir().join("stacks/db/compose.yaml").is_file());
    assert_eq!(git(c.workdir(), &["rev-parse", "HEAD"]), new);
    assert_eq!(
        git(c.workdir(), &["symbolic-ref", "HEAD"]),
        "refs/heads/main"
    );
}

#[test]
fn a_file_url_with_a_shallow_clone_follows_the_remote() {
    let f = Fixture::new();
    for i in 0..3 {
        f.push_other("history.txt", &format!("{i}\n"), &format!("history {i}"));
    }
    let url = format!("file://{}", f.remote_dir().display());
    let remote = Remote::new(
        &RepoUrl::parse(&url).unwrap(),
        &Branch::parse("main").unwrap(),
        Auth::Ambient,
    )
    .with_depth(NonZeroU32::new(1));
    let c = Checkout::new(f.path("shallow"), remote);
    assert_eq!(c.sync().unwrap().head, f.remote_head());
    assert!(c.workdir().join(".git/shallow").is_file(), "not shallow");
    assert_eq!(git(c.workdir(), &["rev-list", "--count", "HEAD"]), "1");

    let new = f.push_other("history.txt", "next\n", "next");
    assert_eq!(c.sync().unwrap().head, new);
    match c.update(&options(3), pin_app).unwrap() {
        UpdateOutcome::Pushed { attempts: 1, .. } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(git(&f.remote_dir(), &["rev-parse", "main~1"]), new);
}

#[test]
fn local_junk_in_the_clone_is_discarded() {
    let f = Fixture::new();
    let c = f.local_checkout();
    let head = c.sync().unwrap().head;
    let w = c.workdir();
    // Every kind of local state a person (or a crash) could leave behind.
    std::fs::write(w.join("README.md"), "edited\n").unwrap();
    std::fs::write(w.join("untracked.txt"), "junk\n").unwrap();
    std::fs::write(w.join(".gitignore"), "ignored.txt\n").unwrap();
    std::fs::write(w.join("ignored.txt"), "junk\n").unwrap();
    git(w, &["add", ".gitignore"]);
    git(w, &["commit", "-q", "-m", "local commit"]);
    std::fs::write(w.join("staged.txt"), "junk\n").unwrap();
    git(w, &["add", "staged.txt"]);
    git(w, &["checkout", "-q", "-b", "elsewhere"]);
    std::fs::remove_file(w.join("stacks/web/compose.yaml")).unwrap();

    let synced = c.sync().unwrap();
    assert_eq!(synced.head, head);
    assert_eq!(status(w), "");
    assert_eq!(git(w, &["rev-parse", "main"]), head);
    assert_eq!(git(w, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(
        std::fs::read_to_string(w.join("README.md")).unwrap(),
        "stacks\n"
    );
    assert!(w.join("stacks/web/compose.yaml").is_file());
    for gone in ["untracked.txt", "ignored.txt", ".gitignore", "staged.txt"] {
        assert!(!w.join(gone).exists(), "{gone} survived");
    }
}

#[test]
fn a_force_rewritten_remote_branch_is_followed() {
    let f = Fixture::new();
    let c = f.local_checkout();
    let before = c.sync().unwrap().head;
    // Someone replaces the branch with an unrelated history.
    let other = f.path("other");
    git(&other, &["checkout", "-q", "--orphan", "rewrite"]);
    git(&other, &["rm", "-q", "-r", "--cached", "."]);
    std::fs::remove_dir_all(other.join("stacks")).unwrap();
    std::fs::write(other.join("README.md"), "rewritten\n").unwrap();
    git(&other, &["add", "README.md"]);
    git(&other, &["commit", "-q", "-m", "rewritten"]);
    git(&other, &["push", "-q", "--force", "origin", "rewrite:main"]);
    let rewritten = f.remote_head();
    assert_ne!(rewritten, before);

    let synced = c.sync().unwrap();
    assert_eq!(synced.head, rewritten);
    assert!(!c.workdir().join("stacks").exists());
    assert_eq!(
        std::fs::read_to_string(c.workdir().join("README.md")).unwrap(),
        "rewritten\n"
    );
    assert_eq!(status(c.workdir()), "");
}

#[test]
fn a_folder_that_is_not_a_clone_is_refused_and_kept() {
    let f = Fixture::new();
    let c = f.local_checkout();
    std::fs::create_dir_all(c.workdir()).unwrap();
    std::fs::write(c.workdir().join("precious.txt"), "mine\n").unwrap();
    let err = c.sync().unwrap_err();
    assert!(matches!(err, GitError::NotAClone { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&c.workdir().display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(c.workdir().join("precious.txt")).unwrap(),
        "mine\n"
    );
}

#[test]
fn missing_remotes_and_branches_are_clear_errors() {
    let f = Fixture::new();
    let missing = f.path("nowhere.git");
    let c = f.checkout(missing.to_str().unwrap(), Auth::Ambient);
    let err = c.sync().unwrap_err();
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    assert!(chain(&err).contains("nowhere.git"), "{}", chain(&err));
    assert!(
        !c.workdir().join(".git").exists(),
        "a failed clone left a folder"
    );

    // A closed port on 127.0.0.1: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = f.checkout(
        &format!("http://127.0.0.1:{port}/remote.git"),
        Auth::Ambient,
    );
    let err = c.sync().unwrap_err();
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    assert!(
        chain(&err).contains(&format!("127.0.0.1:{port}")),
        "{}",
        chain(&err)
    );

    let remote = Remote::new(
        &RepoUrl::parse(f.remote_dir().to_str().unwrap()).unwrap(),
        &Branch::parse("no-such-branch").unwrap(),
        Auth::Ambient,
    );
    let c = Checkout::new(f.path("nobranch"), remote);
    let err = c.sync().unwrap_err();
    assert!(chain(&err).contains("no-such-branch"), "{}", chain(&err));

    // A clone whose remote later loses the branch.
    let c = f.local_checkout();
    c.sync().unwrap();
    git(&f.remote_dir(), &["branch", "-m", "main", "trunk"]);
    let err = c.sync().unwrap_err();
    assert!(
        matches!(
            err,
            GitError::NoRemoteBranch { .. } | GitError::Fetch { .. }
        ),
        "{err:?}"
    );
    assert!(chain(&err).contains("main"), "{}", chain(&err));
}

#[test]
fn an_update_is_one_commit_listing_every_service_and_is_pushed() {
    let f = Fixture::new();
    let c = f.local_checkout();
    let before = f.remote_head();
    let outcome = c.update(&options(3), pin_app).unwrap();
    let UpdateOutcome::Pushed { commit, attempts } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(attempts, 1);
    assert_eq!(f.remote_head(), commit);
    let remote = f.remote_dir();
    assert_eq!(git(&remote, &["rev-parse", "main~1"]), before);
    assert_eq!(
        git(
            &remote,
            &["log", "-1", "--format=%an <%ae>|%cn <%ce>", "main"]
        ),
        "Magos Dominus <magos@localhost>|Magos Dominus <magos@localhost>"
    );
    let message = git(&remote, &["log", "-1", "--format=%B", "main"]);
    assert!(message.starts_with("Pin 1 image update(s): web/app\n\n- web/app: registry.example/app:1.0 -> registry.example/app:1.1@sha256:"), "{message}");
    assert_eq!(
        git(&remote, &["diff", "--name-only", "main~1", "main"]),
        "stacks/web/compose.yaml"
    );
    let pinned = git(&remote, &["show", "main:stacks/web/compose.yaml"]);
    assert!(pinned.contains("app:1.1@sha256:1111"), "{pinned}");
    assert_eq!(status(c.workdir()), "");

    // Nothing left to do: no empty commit.
    let again = c.update(&options(3), pin_app).unwrap();
    assert_eq!(
        again,
        UpdateOutcome::Unchanged {
            head: commit.clone()
        }
    );
    assert_eq!(f.remote_head(), commit);
}

#[test]
fn a_concurrent_push_makes_the_update_recompute_not_force() {
    let f = Fixture::new();
    let c = f.local_checkout();
    let mut calls = 0;
    let mut competitor = None;
    let outcome = c
        .update(&options(3), |dir: &Path| {
            calls += 1;
            if calls == 1 {
                // Another pusher lands a commit between our fetch and our push,
                // touching the same file.
                competitor = Some(f.push_other(
                    "stacks/web/compose.yaml",
                    &format!("# maintained by hand\n{COMPOSE}"),
                    "a human edit",
                ));
            }
            pin_app(dir)
        })
        .unwrap();
    assert_eq!(calls, 2, "the change was not recomputed");
    let UpdateOutcome::Pushed { commit, attempts } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(attempts, 2);
    let competitor = competitor.unwrap();
    let remote = f.remote_dir();
    assert_eq!(f.remote_head(), commit);
    // Both commits are in the history, ours on top of theirs: nothing forced.
    assert_eq!(git(&remote, &["rev-parse", "main~1"]), competitor);
    let file = git(&remote, &["show", "main:stacks/web/compose.yaml"]);
    assert!(file.starts_with("# maintained by hand\n"), "{file}");
    assert!(file.contains("app:1.1@sha256:1111"), "{file}");
}

#[test]
fn a_push_that_keeps_losing_the_race_is_kept_on_a_local_branch() {
    let f = Fixture::new();
    let c = f.local_checkout();
    let mut n = 0;
    let err = c
        .update(&options(2), |dir: &Path| {
            n += 1;
            f.push_other("race.txt", &format!("{n}\n"), &format!("competitor {n}"));
            pin_app(dir)
        })
        .unwrap_err();
    let GitError::PushRaced { attempts, kept, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*attempts, 2);
    assert!(kept.starts_with("magos/unpushed-"), "{kept}");
    assert!(err.to_string().contains(kept.as_str()), "{err}");
    // The remote has only the competitors' commits; ours waits on the branch.
    assert_eq!(
        git(&f.remote_dir(), &["log", "-1", "--format=%s", "main"]),
        "competitor 2"
    );
    let kept_ref = format!("refs/heads/{kept}");
    assert!(
        git(c.workdir(), &["log", "-1", "--format=%s", &kept_ref])
            .starts_with("Pin 1 image update(s)")
    );
    // A later sync leaves it alone, and a later update succeeds.
    assert!(matches!(
        c.update(&options(2), pin_app).unwrap(),
        UpdateOutcome::Pushed { .. }
    ));
    assert!(!git(c.workdir(), &["rev-parse", "--verify", &kept_ref]).is_empty());
}

#[test]
fn a_crash_between_writing_and_committing_converges() {
    let f = Fixture::new();
    let c = f.local_checkout();
    c.sync().unwrap();
    // What a crash leaves: a half-applied rewrite and a stray temporary file,
    // no commit.
    let w = c.workdir();
    std::fs::write(
        w.join("stacks/web/compose.yaml"),
        "services:\n  app:\n    ima",
    )
    .unwrap();
    std::fs::write(w.join("stacks/web/.magos-1234.tmp"), "partial").unwrap();
    let before = f.remote_head();

    let outcome = c.update(&options(3), pin_app).unwrap();
    assert!(
        matches!(outcome, UpdateOutcome::Pushed { attempts: 1, .. }),
        "{outcome:?}"
    );
    let remote = f.remote_dir();
    assert_eq!(git(&remote, &["rev-parse", "main~1"]), before);
    let file = git(&remote, &["show", "main:stacks/web/compose.yaml"]);
    assert_eq!(
        file,
        COMPOSE
            .replace(
                "app:1.0 ",
                "app:1.1@sha256:1111111111111111111111111111111111111111111111111111111111111111 "
            )
            .trim_end()
    );
    assert_eq!(status(w), "");
}

#[test]
fn no_push_keeps_the_commit_on_a_local_branch() {
    let f = Fixture::new();
    let c = f.local_checkout();
    let before = f.remote_head();
    let mut opts = options(1);
    opts.push = false;
    let UpdateOutcome::Committed { commit, kept } = c.update(&opts, pin_app).unwrap() else {
        panic!("expected a local commit");
    };
    assert_eq!(f.remote_head(), before);
    assert_eq!(
        git(c.workdir(), &["rev-parse", &format!("refs/heads/{kept}")]),
        commit
    );
}

/// Collects every log line written while it is the thread's subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    (
        captured.clone(),
        tracing::subscriber::set_default(subscriber),
    )
}

/// Every file under `dir`, as bytes, for a leak check.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn assert_no_token_on_disk(dir: &Path, token: &str) {
    for (path, bytes) in all_bytes(dir) {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token is in {}",
            path.display()
        );
    }
}

#[test]
fn https_with_a_token_clones_fetches_and_pushes_without_storing_it() {
    let f = Fixture::new();
    let server = HttpBackend::start(f.tmp.path().to_owned(), TOKEN, TOKEN);
    let (logs, _guard) = capture_logs();
    let c = f.checkout(
        &server.url("remote.git"),
        Auth::Basic(Credentials::token(Secret::new(TOKEN))),
    );
    assert_eq!(c.sync().unwrap().head, f.remote_head());
    let new = f.push_other("stacks/db/compose.yaml", "services: {}\n", "add db");
    assert_eq!(c.sync().unwrap().head, new);
    let outcome = c.update(&options(3), pin_app).unwrap();
    let UpdateOutcome::Pushed { commit, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(f.remote_head(), commit);

    let seen = server.seen.lock().unwrap().clone();
    assert!(seen.refused > 0, "the server never asked for credentials");
    assert!(seen.accepted > 0);
    assert!(
        seen.requests.iter().any(|r| r.contains("git-receive-pack")),
        "{seen:?}"
    );
    assert!(seen.requests.iter().all(|r| !r.contains(TOKEN)));
    assert_eq!(
        git(c.workdir(), &["remote", "get-url", "origin"]),
        server.url("remote.git")
    );
    assert_no_token_on_disk(c.workdir(), TOKEN);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("pushed"), "no logs were captured: {logs}");
    assert!(!logs.contains(TOKEN), "the token is in the logs");
}

#[test]
fn a_token_in_the_configured_url_is_used_but_not_stored() {
    let f = Fixture::new();
    let server = HttpBackend::start(f.tmp.path().to_owned(), TOKEN, TOKEN);
    let url = format!("http://x-access-token:{TOKEN}@{}/remote.git", server.addr);
    let c = f.checkout(&url, Auth::Ambient);
    assert!(!format!("{c:?}").contains(TOKEN));
    c.update(&options(3), pin_app).unwrap();
    assert_eq!(
        git(c.workdir(), &["remote", "get-url", "origin"]),
        server.url("remote.git")
    );
    assert_no_token_on_disk(c.workdir(), TOKEN);
}

#[test]
fn a_bad_token_is_a_clear_error_without_the_token() {
    let f = Fixture::new();
    let server = HttpBackend::start(f.tmp.path().to_owned(), TOKEN, TOKEN);
    let bad = "tok_wrong_5f2d9e";
    let (logs, _guard) = capture_logs();
    let c = f.checkout(
        &server.url("remote.git"),
        Auth::Basic(Credentials::token(Secret::new(bad))),
    );
    let err = c.sync().unwrap_err();
    let text = chain(&err);
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    assert!(text.contains("not accepted"), "{text}");
    assert!(text.contains(&server.url("remote.git")), "{text}");
    assert!(!text.contains(bad), "the token is in the error: {text}");
    assert!(
        !format!("{err:?}").contains(bad),
        "the token is in the debug form"
    );
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.contains(bad), "the token is in the logs");
}

#[test]
fn a_push_refused_for_credentials_is_reported_and_kept() {
    let f = Fixture::new();
    // This token may read but not write.
    let server = HttpBackend::start(f.tmp.path().to_owned(), TOKEN, "tok_writer_only");
    let (logs, _guard) = capture_logs();
    let c = f.checkout(
        &server.url("remote.git"),
        Auth::Basic(Credentials::token(Secret::new(TOKEN))),
    );
    let before = f.remote_head();
    let err = c.update(&options(3), pin_app).unwrap_err();
    let GitError::Push { kept, reason, .. } = &err else {
        panic!("{err:?}");
    };
    let text = chain(&err);
    assert!(
        reason.contains("Authentication failed") || reason.contains("401"),
        "{reason}"
    );
    assert!(!text.contains(TOKEN), "the token is in the error: {text}");
    assert_eq!(f.remote_head(), before);
    assert!(
        git(
            c.workdir(),
            &["log", "-1", "--format=%s", &format!("refs/heads/{kept}")]
        )
        .starts_with("Pin 1 image update(s)")
    );
    assert_no_token_on_disk(c.workdir(), TOKEN);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.contains(TOKEN), "the token is in the logs");
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/github-app")
            .join(name),
    )
    .unwrap()
}

const APP_ID: u64 = 1234;
const INSTALLATION: u64 = 42;

fn slug() -> RepoSlug {
    RepoSlug {
        owner: "me".into(),
        name: "homelab".into(),
    }
}

fn fake_github(lifetime_secs: i64) -> FakeGithub {
    FakeGithub::start(
        APP_ID,
        INSTALLATION,
        "me",
        "homelab",
        &fixture("public-key.pem"),
        TOKEN,
        lifetime_secs,
    )
}

/// The App client; made inside the runtime, which drives its HTTP worker.
fn app(
    rt: &tokio::runtime::Runtime,
    fake: &FakeGithub,
    key: &str,
    installation: Option<u64>,
) -> GithubApp {
    let pem = Secret::new(String::from_utf8(fixture(key)).unwrap());
    rt.block_on(async { GithubApp::new(APP_ID, &pem, installation, slug(), &fake.url()) })
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_github_app_token_serves_git_over_https_and_is_cached() {
    let f = Fixture::new();
    let server = HttpBackend::start(f.tmp.path().to_owned(), TOKEN, TOKEN);
    let fake = fake_github(3600);
    let rt = runtime();
    let app = app(&rt, &fake, "private-key.pem", None);
    let auth = rt.block_on(app.git_auth()).unwrap();
    let c = f.checkout(&server.url("remote.git"), auth);
    let UpdateOutcome::Pushed { commit, .. } = c.update(&options(3), pin_app).unwrap() else {
        panic!("not pushed");
    };
    assert_eq!(f.remote_head(), commit);
    // Still valid for an hour: the same token, no new look-up.
    assert_eq!(rt.block_on(app.token()).unwrap().expose(), TOKEN);
    assert_eq!(fake.state.lock().unwrap().tokens.len(), 1);
    // Refused somewhere: forgotten, and the next one is new.
    rt.block_on(app.forget_token());
    assert_ne!(rt.block_on(app.token()).unwrap().expose(), TOKEN);
    let state = fake.state.lock().unwrap();
    assert_eq!(state.tokens.len(), 2);
    assert_eq!(state.lookups, 1, "the installation was not discovered once");
    assert!(state.refused.is_empty(), "{:?}", state.refused);
    assert_no_token_on_disk(c.workdir(), TOKEN);
}

#[test]
fn a_token_near_its_expiry_is_minted_again() {
    // Tokens that live two minutes are inside the five-minute refresh margin.
    let fake = fake_github(120);
    let rt = runtime();
    let app = app(&rt, &fake, "private-key.pem", Some(INSTALLATION));
    let first = rt.block_on(app.token()).unwrap();
    let second = rt.block_on(app.token()).unwrap();
    assert_ne!(first.expose(), second.expose());
    let state = fake.state.lock().unwrap();
    assert_eq!(state.tokens.len(), 2);
    assert_eq!(state.lookups, 0, "a given installation id needs no look-up");
}

#[test]
fn a_jwt_signed_with_another_key_is_refused_clearly() {
    let fake = fake_github(3600);
    let rt = runtime();
    let app = app(&rt, &fake, "other-private-key.pem", None);
    let err = rt.block_on(app.token()).unwrap_err();
    let text = chain(&err);
    assert!(text.contains("installation on me/homelab"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let state = fake.state.lock().unwrap();
    assert!(state.tokens.is_empty());
    assert!(
        state.refused.iter().any(|r| r.contains("bad JWT")),
        "{:?}",
        state.refused
    );

    let pem = Secret::new("-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----");
    let bad = rt
        .block_on(async { GithubApp::new(APP_ID, &pem, None, slug(), &fake.url()) })
        .unwrap_err();
    assert!(
        chain(&bad).contains("not a valid RSA PEM key"),
        "{}",
        chain(&bad)
    );
    assert!(!chain(&bad).contains("nope"), "{}", chain(&bad));
}

#[test]
fn pull_request_mode_keeps_one_request_per_branch_and_closes_superseded_ones() {
    let f = Fixture::new();
    let c = f.local_checkout();
    let fake = fake_github(3600);
    let rt = runtime();
    let app = app(&rt, &fake, "private-key.pem", None);
    let client = rt.block_on(app.client()).unwrap();
    let main_before = f.remote_head();
    // Opens or updates the request of `branch` against main.
    let ensure = |branch: &str, title: &str, body: &str| {
        rt.block_on(ensure_pull_request(
            &client,
            &slug(),
            branch,
            "main",
            title,
            body,
        ))
        .unwrap()
    };

    let branch = pull_request_branch("web", "app", "1.1");
    let outcome = c.propose(&options(3), &branch, pin_app).unwrap();
    let ProposeOutcome::Pushed { commit, .. } = &outcome else {
        panic!("{outcome:?}");
    };
    let remote = f.remote_dir();
    assert_eq!(
        git(&remote, &["rev-parse", &format!("refs/heads/{branch}")]),
        *commit
    );
    assert_eq!(
        git(&remote, &["rev-parse", &format!("{branch}~1")]),
        main_before
    );
    assert_eq!(
        f.remote_head(),
        main_before,
        "the followed branch was written to"
    );
    let opened = ensure(&branch, "Pin web/app 1.1", "body");
    assert_eq!(opened, PullRequest::Opened(1));

    // The same update again: the branch already holds it, the request is updated.
    let again = c.propose(&options(3), &branch, pin_app).unwrap();
    assert_eq!(
        again,
        ProposeOutcome::UpToDate {
            branch: branch.clone(),
            commit: commit.clone()
        }
    );
    let updated = ensure(&branch, "Pin web/app 1.1", "body 2");
    assert_eq!(updated, PullRequest::Updated(1));
    assert_eq!(
        fake.state.lock().unwrap().pulls.len(),
        1,
        "a duplicate was opened"
    );

    // A newer version supersedes it.
    let newer = pull_request_branch("web", "app", "1.2");
    let outcome = c
        .propose(&options(3), &newer, |d: &Path| pin(d, "1.2", '2'))
        .unwrap();
    assert!(
        matches!(outcome, ProposeOutcome::Pushed { .. }),
        "{outcome:?}"
    );
    let opened = ensure(&newer, "Pin web/app 1.2", "body");
    assert_eq!(opened, PullRequest::Opened(2));
    let closed = rt
        .block_on(close_superseded(
            &client,
            &slug(),
            &pull_request_prefix("web", "app"),
            &newer,
        ))
        .unwrap();
    assert_eq!(closed, vec![1]);
    let state = fake.state.lock().unwrap();
    assert!(!state.pulls[0].open);
    assert!(state.pulls[1].open);
    assert_eq!(state.pulls[1].head, newer);
    assert_eq!(state.pulls[0].body, "body 2");
    assert!(state.refused.is_empty(), "{:?}", state.refused);
}

/// Accepts one connection on 127.0.0.1 and reports whether its first bytes are
/// a TLS handshake record (a ClientHello), then hangs up.
fn tls_probe() -> (u16, std::sync::mpsc::Receiver<bool>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = [0u8; 3];
        let ok = stream.read_exact(&mut head).is_ok() && head[0] == 0x16 && head[1] == 0x03;
        let _ = tx.send(ok);
    });
    (port, rx)
}

#[test]
fn https_remotes_start_tls_with_the_ring_provider() {
    let f = Fixture::new();
    let (port, hello) = tls_probe();
    let c = f.checkout(
        &format!("https://127.0.0.1:{port}/remote.git"),
        Auth::Basic(Credentials::token(Secret::new(TOKEN))),
    );
    let err = c.sync().unwrap_err();
    assert!(
        hello
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap(),
        "git did not start a TLS handshake"
    );
    let text = chain(&err);
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    assert!(!text.contains(TOKEN), "{text}");
}

#[test]
fn the_github_api_client_starts_tls_with_the_ring_provider() {
    let (port, hello) = tls_probe();
    let rt = runtime();
    let pem = Secret::new(String::from_utf8(fixture("private-key.pem")).unwrap());
    let app = rt
        .block_on(async {
            GithubApp::new(
                APP_ID,
                &pem,
                None,
                slug(),
                &format!("https://127.0.0.1:{port}"),
            )
        })
        .unwrap();
    let err = rt.block_on(app.token()).unwrap_err();
    assert!(
        hello
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap(),
        "the API client did not start a TLS handshake"
    );
    assert!(
        chain(&err).contains("installation on me/homelab"),
        "{}",
        chain(&err)
    );
}

#[test]
fn the_app_comes_from_the_configuration() {
    use magos::config::{Config, GithubConfig};
    let fake = fake_github(3600);
    let rt = runtime();
    let key_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github-app/private-key.pem");
    let mut config = Config::default();
    for (key, value) in [
        ("github.app_id", APP_ID.to_string()),
        ("github.private_key", key_path.display().to_string()),
        ("github.api_url", fake.url()),
    ] {
        config.set(key, &value).unwrap();
    }
    let app = rt
        .block_on(async {
            GithubApp::from_config(&config.github, "https://github.com/me/homelab.git")
        })
        .unwrap()
        .expect("an App is configured");
    assert_eq!(app.repo(), &slug());
    assert_eq!(rt.block_on(app.token()).unwrap().expose(), TOKEN);

    let none = rt
        .block_on(async {
            GithubApp::from_config(&GithubConfig::default(), "https://github.com/me/homelab")
        })
        .unwrap();
    assert!(none.is_none());

    let mut no_key = config.github.clone();
    no_key.private_key = None;
    let err = rt
        .block_on(async { GithubApp::from_config(&no_key, "https://github.com/me/homelab") })
        .unwrap_err();
    assert!(err.to_string().contains("github.private_key"), "{err}");

    let err = rt
        .block_on(async { GithubApp::from_config(&config.github, "/srv/git/homelab.git") })
        .unwrap_err();
    assert!(err.to_string().contains("/srv/git/homelab.git"), "{err}");
}

#[test]
fn lock_files_left_by_a_killed_git_do_not_block_the_next_run() {
    let f = Fixture::new();
    let c = f.local_checkout();
    c.sync().unwrap();
    // What a git process killed mid-operation leaves behind.
    let git_dir = c.workdir().join(".git");
    std::fs::write(git_dir.join("index.lock"), "").unwrap();
    std::fs::write(git_dir.join("refs/heads/main.lock"), "").unwrap();
    std::fs::write(c.workdir().join("stacks/web/compose.yaml"), "half").unwrap();
    let outcome = c.update(&options(3), pin_app).unwrap();
    assert!(
        matches!(outcome, UpdateOutcome::Pushed { .. }),
        "{outcome:?}"
    );
    assert!(!git_dir.join("index.lock").exists());
    assert!(!git_dir.join("refs/heads/main.lock").exists());
    assert_eq!(status(c.workdir()), "");
}

#[test]
fn a_second_magos_on_the_same_clone_is_refused() {
    let f = Fixture::new();
    let c = f.local_checkout();
    c.sync().unwrap();
    let lock_path = f.path("magos-clone.lock");
    let held = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_path)
        .unwrap();
    // Blocking: a process forked by another test may hold a copy for an instant.
    held.lock().unwrap();
    let err = c.update(&options(3), pin_app).unwrap_err();
    assert!(matches!(err, GitError::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains("magos-clone"), "{err}");
    assert_eq!(
        f.remote_head(),
        git(&f.path("other"), &["rev-parse", "HEAD"])
    );
    drop(held);
    assert!(matches!(
        c.update(&options(3), pin_app).unwrap(),
        UpdateOutcome::Pushed { .. }
    ));
}

/// Set in the child process of the kill test: the fixture's folder.
const CRASH_CHILD: &str = "MAGOS_TEST_GIT_CRASH_CHILD";

/// The child's part: an update whose computation writes the rewritten files and
/// then never returns, so the process dies between rewrite and commit.
fn crash_child(root: &Path) -> ! {
    let remote = Remote::new(
        &RepoUrl::parse(root.join("remote.git").to_str().unwrap()).unwrap(),
        &Branch::parse("main").unwrap(),
        Auth::Ambient,
    );
    let c = Checkout::new(root.join("magos-clone"), remote);
    let _ = c.update(
        &options(1),
        |dir: &Path| -> Result<Option<Change>, std::io::Error> {
            let change = pin_app(dir)?.expect("a change to make");
            magos::git::write_files(dir, &change).unwrap();
            println!("rewritten");
            let mut line = String::new();
            loop {
                // Blocks until the parent kills this process.
                std::io::stdin().read_line(&mut line)?;
            }
        },
    );
    unreachable!("the computation never returns");
}

#[test]
fn a_process_killed_between_rewrite_and_commit_converges_on_the_next_run() {
    if let Some(root) = std::env::var_os(CRASH_CHILD) {
        crash_child(Path::new(&root));
    }
    use std::io::BufRead;
    let f = Fixture::new();
    let c = f.local_checkout();
    c.sync().unwrap();
    let before = f.remote_head();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_process_killed_between_rewrite_and_commit_converges_on_the_next_run",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD, f.tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may print the test's name on the same line.
            if line.trim_end().ends_with("rewritten") {
                let _ = tx.send(());
                break;
            }
        }
    });
    let reached = rx.recv_timeout(std::time::Duration::from_secs(120));
    child.kill().unwrap();
    child.wait().unwrap();
    reached.expect("the child never rewrote the files");

    // The child died with the files rewritten, uncommitted, and the clone's lock held.
    assert!(status(c.workdir()).contains("stacks/web/compose.yaml"));
    assert_eq!(f.remote_head(), before);

    let outcome = c.update(&options(3), pin_app).unwrap();
    assert!(
        matches!(outcome, UpdateOutcome::Pushed { attempts: 1, .. }),
        "{outcome:?}"
    );
    assert_eq!(git(&f.remote_dir(), &["rev-parse", "main~1"]), before);
    let file = git(&f.remote_dir(), &["show", "main:stacks/web/compose.yaml"]);
    assert!(file.contains("app:1.1@sha256:1111"), "{file}");
    assert_eq!(status(c.workdir()), "");
}

#[test]
fn an_interrupted_first_clone_is_started_again() {
    let f = Fixture::new();
    let c = f.local_checkout();
    // What a clone killed mid-fetch leaves: a half-made repository beside the clone.
    let partial = f.path("magos-clone.partial");
    std::fs::create_dir_all(partial.join(".git/objects/pack")).unwrap();
    std::fs::write(partial.join(".git/HEAD"), "ref: refs/heads/ma").unwrap();
    // An empty folder where the clone goes is fine too.
    std::fs::create_dir_all(c.workdir()).unwrap();
    assert_eq!(c.sync().unwrap().head, f.remote_head());
    assert!(!partial.exists());
    assert_eq!(status(c.workdir()), "");
}
