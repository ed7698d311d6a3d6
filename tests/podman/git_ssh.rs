//! Git over ssh against the test bed's real sshd (Debian's openssh-server on
//! 127.0.0.1, a host key of its own, one client key authorized for the test
//! user): Magos clones, fetches and pushes through `ssh://` with the
//! `repo.ssh_key` and `repo.known_hosts` it is given, and refuses a server
//! whose host key is not the one in its known hosts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use magos::config::{Branch, RepoUrl};
use magos::git::message::{PinChange, render};
use magos::git::{
    Auth, Change, Checkout, FileEdit, GitError, Identity, Remote, SshOptions, UpdateOptions,
    UpdateOutcome,
};

use crate::git_fixture::{git, write_files};
use crate::support::{Testbed, show, testbed};

const COMPOSE: &str = "services:\n  app:\n    image: registry.example/app:1.0 # magos: semver ^1\n";

/// The test bed's sshd: where it listens, the key it accepts, its known hosts.
struct Sshd {
    port: String,
    user: String,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Sshd {
    fn of(tb: &Testbed) -> Self {
        Self {
            port: tb.require("MAGOS_TESTBED_SSH_PORT").to_owned(),
            user: tb.require("MAGOS_TESTBED_SSH_USER").to_owned(),
            key: tb.require("MAGOS_TESTBED_SSH_KEY").into(),
            known_hosts: tb.require("MAGOS_TESTBED_SSH_KNOWN_HOSTS").into(),
        }
    }

    fn url(&self, path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }

    fn options(&self) -> SshOptions {
        SshOptions {
            key: Some(self.key.clone()),
            known_hosts: Some(self.known_hosts.clone()),
        }
    }

    /// `git` (the test's own, as root) with this sshd's key and known hosts.
    fn git(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Someone Else")
            .env("GIT_AUTHOR_EMAIL", "someone@example.org")
            .env("GIT_COMMITTER_NAME", "Someone Else")
            .env("GIT_COMMITTER_EMAIL", "someone@example.org")
            .env("GIT_SSH_COMMAND", self.options().command(None).unwrap())
            .output()
            .unwrap()
    }

    fn git_ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git(dir, args);
        assert!(out.status.success(), "git {args:?}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// A bare repository owned by the test user (made by that user, so the sshd
/// session can write to it), holding one commit pushed over ssh from a work
/// clone `other` that plays the people using the repository.
struct SshRemote {
    sshd: Sshd,
    _user_dir: tempfile::TempDir,
    bare: PathBuf,
    root: tempfile::TempDir,
}

impl SshRemote {
    fn new(tb: &Testbed) -> Self {
        let sshd = Sshd::of(tb);
        let user_dir = tb.user_dir("magos-ssh");
        let bare = user_dir.path().join("remote.git");
        let out = tb
            .user_program(
                "git",
                &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
        let root = tempfile::tempdir().unwrap();
        git(root.path(), &["init", "-q", "-b", "main", "other"]);
        let other = root.path().join("other");
        write_files(&other, &[("stacks/web/compose.yaml", COMPOSE)]);
        git(&other, &["add", "-A"]);
        git(&other, &["commit", "-q", "-m", "initial"]);
        git(&other, &["remote", "add", "origin", &sshd.url(&bare)]);
        sshd.git_ok(&other, &["push", "-q", "origin", "main"]);
        Self {
            sshd,
            _user_dir: user_dir,
            bare,
            root,
        }
    }

    fn url(&self) -> String {
        self.sshd.url(&self.bare)
    }

    fn other(&self) -> PathBuf {
        self.root.path().join("other")
    }

    /// The remote's `main`, asked over ssh.
    fn head(&self) -> String {
        let listed = self.sshd.git_ok(
            self.root.path(),
            &["ls-remote", &self.url(), "refs/heads/main"],
        );
        listed.split_whitespace().next().unwrap().to_owned()
    }

    fn checkout(&self, ssh: SshOptions) -> Checkout {
        let remote = Remote::new(
            &RepoUrl::parse(&self.url()).unwrap(),
            &Branch::parse("main").unwrap(),
            Auth::Ambient,
        )
        .with_ssh(ssh);
        Checkout::new(self.root.path().join("magos-clone"), remote)
    }
}

fn pin(dir: &Path) -> Result<Option<Change>, std::io::Error> {
    let path = dir.join("stacks/web/compose.yaml");
    let text = std::fs::read_to_string(&path)?;
    let old = "registry.example/app:1.0";
    let new = format!("registry.example/app:1.1@sha256:{}", "1".repeat(64));
    if !text.contains(old) {
        return Ok(None);
    }
    let message = render(
        "Pin {count} image update(s): {services}\n\n{changes}",
        &[PinChange {
            stack: "web".into(),
            service: "app".into(),
            old: old.into(),
            new: new.clone(),
        }],
    );
    Ok(Some(Change {
        files: vec![FileEdit {
            path: "stacks/web/compose.yaml".into(),
            contents: text.replace(old, &new).into_bytes(),
        }],
        message,
    }))
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[test]
fn an_ssh_remote_is_cloned_fetched_and_pushed_with_the_configured_key() {
    let Some(tb) = testbed() else { return };
    let remote = SshRemote::new(tb);
    let c = remote.checkout(remote.sshd.options());

    // Clone.
    let synced = c.sync().unwrap();
    assert_eq!(synced.head, remote.head());
    assert_eq!(
        std::fs::read_to_string(c.workdir().join("stacks/web/compose.yaml")).unwrap(),
        COMPOSE
    );

    // Fetch what someone else pushed.
    write_files(&remote.other(), &[("README.md", "stacks\n")]);
    git(&remote.other(), &["add", "-A"]);
    git(&remote.other(), &["commit", "-q", "-m", "readme"]);
    remote
        .sshd
        .git_ok(&remote.other(), &["push", "-q", "origin", "main"]);
    let synced = c.sync().unwrap();
    assert_eq!(synced.head, remote.head());
    assert!(c.workdir().join("README.md").is_file());

    // Push a pin commit on top (the `git` program, through GIT_SSH_COMMAND).
    let options = UpdateOptions {
        identity: Identity {
            name: "Magos Dominus".into(),
            email: "magos@localhost".into(),
        },
        push: true,
        max_attempts: std::num::NonZeroU32::new(3).unwrap(),
    };
    let before = remote.head();
    let outcome = c.update(&options, pin).unwrap();
    let UpdateOutcome::Pushed { commit, attempts } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(attempts, 1);
    assert_eq!(remote.head(), commit);
    remote
        .sshd
        .git_ok(&remote.other(), &["fetch", "-q", "origin", "main"]);
    assert_eq!(
        git(&remote.other(), &["rev-parse", "FETCH_HEAD~1"]),
        before,
        "the pin lands on top of what was there, never in its place"
    );
    let pinned = git(
        &remote.other(),
        &["show", "FETCH_HEAD:stacks/web/compose.yaml"],
    );
    assert!(pinned.contains("app:1.1@sha256:1111"), "{pinned}");
}

#[test]
fn a_changed_host_key_is_refused_and_nothing_is_cloned() {
    let Some(tb) = testbed() else { return };
    let remote = SshRemote::new(tb);
    // The same address with another server's key in the known hosts.
    let keys = tempfile::tempdir().unwrap();
    let other_key = keys.path().join("other_host_key");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let public = std::fs::read_to_string(other_key.with_extension("pub")).unwrap();
    let public: Vec<&str> = public.split_whitespace().take(2).collect();
    let known = keys.path().join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", remote.sshd.port, public.join(" ")),
    )
    .unwrap();
    let c = remote.checkout(SshOptions {
        key: Some(remote.sshd.key.clone()),
        known_hosts: Some(known.clone()),
    });
    let err = c.sync().unwrap_err();
    let text = chain(&err);
    assert!(matches!(err, GitError::Ssh { .. }), "{err:?}");
    assert!(text.contains(&remote.url()), "{text}");
    assert!(text.contains("Host key verification failed"), "{text}");
    assert!(text.contains("repo.known_hosts"), "{text}");
    assert!(!c.workdir().exists(), "nothing is cloned: {text}");

    // With the right known hosts the same checkout clones.
    let c = remote.checkout(remote.sshd.options());
    c.sync().unwrap();
}

#[test]
fn magos_check_reads_an_ssh_remote_with_the_configured_key_and_known_hosts() {
    let Some(tb) = testbed() else { return };
    let remote = SshRemote::new(tb);
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("magos.yaml");
    let write = |known_hosts: &Path| {
        std::fs::write(
            &config,
            format!(
                "repo:\n  url: {}\n  ssh_key: {}\n  known_hosts: {}\nstate_dir: {}\n",
                remote.url(),
                remote.sshd.key.display(),
                known_hosts.display(),
                home.path().join("state").display()
            ),
        )
        .unwrap();
    };
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_magos"))
            .args(["check", "--output", "json", "--config"])
            .arg(&config)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            // An empty home: no ~/.ssh, no agent; only the configured key works.
            .env("HOME", home.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    write(&remote.sshd.known_hosts);
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // Magos's clone holds the repository, read over ssh.
    let repos = home.path().join("state/repos");
    let clones: Vec<_> = std::fs::read_dir(&repos)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("stacks/web/compose.yaml").is_file())
        .collect();
    assert_eq!(clones.len(), 1, "{}", show(&out));

    // An empty known hosts file: the server is refused, and the error says why.
    let empty = home.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    std::fs::remove_dir_all(home.path().join("state")).unwrap();
    write(&empty);
    let out = check();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Host key verification failed") && stderr.contains("repo.known_hosts"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("BEGIN OPENSSH PRIVATE KEY"),
        "the key never shows: {stderr}"
    );
}
