//! `magos init` as a user runs it: the real binary in an empty home, real bare
//! repositories as remotes (on disk, and behind a real `git http-backend` on
//! 127.0.0.1), and the file it writes read back by `magos config check`.

#![cfg(unix)]

#[path = "common/git.rs"]
mod git_fixture;
// Shared with tests/git.rs, which uses all of it.
#[allow(dead_code)]
#[path = "git/http_backend.rs"]
mod http_backend;
#[path = "common/local_http.rs"]
mod local_http;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use git_fixture::bare_remote;
use http_backend::HttpBackend;

/// A socket that does not exist, so the Podman check fails at once and the same
/// way on every machine.
const NO_PODMAN: &str = "unix:///nonexistent/magos-test/podman.sock";

struct Run {
    code: i32,
    out: String,
    err: String,
}

/// Runs `magos` with a clean environment (HOME in `home`), `stdin` as its
/// (non-terminal) standard input. `magos init` is given `--config
/// HOME/.config/magos/magos.yaml` unless the test names another file: that is
/// its default for a user, but the tests may run as root, whose default is
/// /etc/magos/magos.yaml. `magos config check` then finds the file through HOME.
fn magos(home: &Path, args: &[&str], stdin: &str) -> Run {
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    if args[0] == "init" && !args.iter().any(|a| a == "--config") {
        args.push("--config".to_owned());
        args.push(config_path(home).display().to_string());
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env("CONTAINER_HOST", NO_PODMAN)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run magos");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn config_path(home: &Path) -> PathBuf {
    home.join(".config/magos/magos.yaml")
}

/// The line of the check report about `what`.
fn check_line<'a>(out: &'a str, what: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(what))
        .unwrap_or_else(|| panic!("no `{what}` check in:\n{out}"))
}

fn empty_home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn writes_what_config_check_accepts_and_never_replaces_without_force() {
    let home = empty_home();
    let url = "https://git.example/me/homelab.git";
    let run = magos(
        home.path(),
        &["init", "--repo-url", url, "--branch", "live", "--no-check"],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.err);
    let path = config_path(home.path());
    assert!(run.out.contains(&path.display().to_string()), "{}", run.out);
    assert!(run.out.contains("magos config check"), "{}", run.out);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("configs/magos.yaml"), "{text}");
    assert!(!text.contains("interval"), "only the keys given: {text}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "no secret in it");

    let check = magos(home.path(), &["config", "check"], "");
    assert_eq!(check.code, 0, "{}", check.err);
    assert!(check.out.contains(url), "{}", check.out);
    assert!(check.out.contains("branch: live"), "{}", check.out);

    let again = magos(
        home.path(),
        &["init", "--repo-url", "/elsewhere", "--no-check"],
        "",
    );
    assert_eq!(again.code, 2, "{}", again.out);
    assert!(again.err.contains("--force"), "{}", again.err);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    let forced = magos(
        home.path(),
        &["init", "--repo-url", "/elsewhere", "--no-check", "--force"],
        "",
    );
    assert_eq!(forced.code, 0, "{}", forced.err);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("/elsewhere")
    );
}

#[test]
fn without_a_terminal_a_missing_flag_is_named_and_nothing_is_written() {
    let home = empty_home();
    let run = magos(home.path(), &["init", "--no-check"], "");
    assert_eq!(run.code, 2);
    assert!(run.err.contains("--repo-url"), "{}", run.err);
    let run = magos(
        home.path(),
        &[
            "init",
            "--repo-url",
            "https://git.example/o/r.git",
            "--auth",
            "token",
        ],
        "",
    );
    assert_eq!(run.code, 2);
    assert!(run.err.contains("--token-file"), "{}", run.err);
    assert!(!config_path(home.path()).exists());
}

#[test]
fn interactive_answers_on_standard_input() {
    let home = empty_home();
    let target = home.path().join("elsewhere/magos.yaml");
    let run = magos(
        home.path(),
        &[
            "init",
            "--interactive",
            "--no-check",
            "--config",
            target.to_str().unwrap(),
        ],
        "git@git.example:me/homelab.git\nlive\n\n",
    );
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.err.contains("Repository URL"), "{}", run.err);
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("git@git.example:me/homelab.git"), "{text}");
    assert!(text.contains("branch: \"live\""), "{text}");
    let check = magos(
        home.path(),
        &["config", "check", "--config", target.to_str().unwrap()],
        "",
    );
    assert_eq!(check.code, 0, "{}", check.err);
}

#[test]
fn a_token_is_kept_private_and_never_shown() {
    let home = empty_home();
    let token_file = home.path().join("token");
    let token = "ghp_s3cr3tT0ken4magos";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let run = magos(
        home.path(),
        &[
            "init",
            "--repo-url",
            "https://git.example/me/homelab.git",
            "--auth",
            "token",
            "--token-file",
            token_file.to_str().unwrap(),
            "--no-check",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(!run.out.contains(token) && !run.err.contains(token));
    let path = config_path(home.path());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(std::fs::read_to_string(&path).unwrap().contains(token));
    let check = magos(home.path(), &["config", "check"], "");
    assert_eq!(check.code, 0, "{}", check.err);
    assert!(!check.out.contains(token), "{}", check.out);
    assert!(
        check.out.contains("<redacted>@git.example"),
        "{}",
        check.out
    );
}

#[test]
fn checks_a_readable_repository_the_age_key_and_the_webhook_secret() {
    let home = empty_home();
    let (remote, _other) = bare_remote(
        home.path(),
        "srv/homelab.git",
        &[(
            "web/compose.yaml",
            "services:\n  web:\n    image: busybox:1\n",
        )],
    );
    let url = format!("file://{}", remote.display());
    let keys = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sops/age-yaml/keys.txt"
    );
    let secret_file = home.path().join("webhook");
    std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef\n").unwrap();
    let run = magos(
        home.path(),
        &[
            "init",
            "--repo-url",
            &url,
            "--age-key-file",
            keys,
            "--webhook-secret-file",
            secret_file.to_str().unwrap(),
        ],
        "",
    );
    // The Podman socket does not exist here: that check fails, the others pass.
    assert_eq!(run.code, 1, "{}\n{}", run.out, run.err);
    let repo = check_line(&run.out, "repository");
    assert!(repo.trim_start().starts_with("ok"), "{repo}");
    assert!(repo.contains("branch `main`"), "{repo}");
    let age = check_line(&run.out, "age");
    assert!(
        age.trim_start().starts_with("ok") && age.contains("1 identity"),
        "{age}"
    );
    let hook = check_line(&run.out, "webhook");
    assert!(hook.trim_start().starts_with("ok"), "{hook}");
    assert!(!run.out.contains("0123456789abcdef"), "{}", run.out);
    let podman = check_line(&run.out, "podman");
    assert!(podman.trim_start().starts_with("FAIL"), "{podman}");
    assert!(
        podman.contains("/nonexistent/magos-test/podman.sock"),
        "{podman}"
    );
    let mode = std::fs::metadata(config_path(home.path()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the webhook secret is in it");
}

#[test]
fn bad_pieces_are_reported_by_their_checks_with_the_reason() {
    let home = empty_home();
    let bad_keys = home.path().join("keys.txt");
    std::fs::write(&bad_keys, "not a key\n").unwrap();
    let short = home.path().join("short");
    std::fs::write(&short, "hunter2\n").unwrap();
    let missing = home.path().join("nothing/here.git");
    let run = magos(
        home.path(),
        &[
            "init",
            "--repo-url",
            &format!("file://{}", missing.display()),
            "--age-key-file",
            bad_keys.to_str().unwrap(),
            "--webhook-secret-file",
            short.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(run.code, 1, "{}\n{}", run.out, run.err);
    let repo = check_line(&run.out, "repository");
    assert!(repo.trim_start().starts_with("FAIL"), "{repo}");
    assert!(repo.contains("nothing/here.git"), "{repo}");
    let age = check_line(&run.out, "age");
    assert!(
        age.trim_start().starts_with("FAIL") && age.contains("not an age identity"),
        "{age}"
    );
    assert!(
        !age.contains("not a key"),
        "the line's text is never quoted: {age}"
    );
    let hook = check_line(&run.out, "webhook");
    assert!(
        hook.trim_start().starts_with("FAIL") && hook.contains("7 characters"),
        "{hook}"
    );
    assert!(!run.out.contains("hunter2"));
    assert!(
        config_path(home.path()).exists(),
        "written before the checks"
    );
}

#[test]
fn an_unreachable_or_refusing_server_is_reported_with_the_reason() {
    // A port that was just free: nothing listens on it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = empty_home();
    let run = magos(
        home.path(),
        &[
            "init",
            "--repo-url",
            &format!("http://127.0.0.1:{closed}/x.git"),
        ],
        "",
    );
    assert_eq!(run.code, 1, "{}\n{}", run.out, run.err);
    let repo = check_line(&run.out, "repository");
    assert!(repo.trim_start().starts_with("FAIL"), "{repo}");
    assert!(repo.to_lowercase().contains("refused"), "{repo}");

    // A real git http-backend that wants a token nobody gave.
    let root = empty_home();
    bare_remote(
        root.path(),
        "remote.git",
        &[(
            "web/compose.yaml",
            "services:\n  web:\n    image: busybox:1\n",
        )],
    );
    let server = HttpBackend::start(root.path().to_owned(), "read-token", "write-token");
    let home = empty_home();
    let run = magos(
        home.path(),
        &["init", "--repo-url", &server.url("remote.git")],
        "",
    );
    assert_eq!(run.code, 1, "{}\n{}", run.out, run.err);
    let repo = check_line(&run.out, "repository");
    assert!(repo.trim_start().starts_with("FAIL"), "{repo}");
    assert!(repo.contains("credentials"), "{repo}");
    assert!(repo.contains("--auth token"), "{repo}");
    assert!(server.seen.lock().unwrap().refused > 0);
}

#[test]
fn the_untouched_reference_that_install_puts_there_is_replaced() {
    let home = empty_home();
    let path = config_path(home.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/magos.yaml");
    std::fs::copy(reference, &path).unwrap();
    let run = magos(
        home.path(),
        &["init", "--repo-url", "/srv/git/homelab.git", "--no-check"],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.contains("untouched reference"), "{}", run.out);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("/srv/git/homelab.git")
    );

    // One changed byte makes it the user's: kept.
    let edited = std::fs::read_to_string(reference)
        .unwrap()
        .replace("branch: main", "branch: live");
    std::fs::write(&path, &edited).unwrap();
    let run = magos(
        home.path(),
        &["init", "--repo-url", "/srv/git/homelab.git", "--no-check"],
        "",
    );
    assert_eq!(run.code, 2, "{}", run.out);
    assert!(run.err.contains("--force"), "{}", run.err);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
}
