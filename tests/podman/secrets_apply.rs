//! SOPS-encrypted inputs applied for real: files encrypted at test time by the
//! real `sops`, applied by the magos binary running as the Podman user (as the
//! service does), checked inside the container, and looked for everywhere they
//! must not be: the logs, `plan` and `drift` output, labels, the repository.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::sops_real::Sops;
use crate::support::{self, Testbed, show, testbed};

/// The magos binary, copied where the test user can run it, and what it needs.
struct AsUser<'a> {
    tb: &'a Testbed,
    bin: PathBuf,
    config: PathBuf,
    runtime: PathBuf,
    key_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl<'a> AsUser<'a> {
    fn new(tb: &'a Testbed, instance: &str, key: &Path) -> Self {
        let dir = tb.user_dir("magos-sealed-home");
        let bin = dir.path().join("magos");
        std::fs::copy(env!("CARGO_BIN_EXE_magos"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("magos.yaml");
        std::fs::write(&config, format!("apply:\n  instance: {instance}\n")).unwrap();
        let key_file = dir.path().join("keys.txt");
        std::fs::copy(key, &key_file).unwrap();
        give(tb, &key_file, 0o600);
        // The runtime folder of this test alone, as private as systemd makes it.
        let runtime = dir.path().join("xdg-runtime");
        std::fs::create_dir(&runtime).unwrap();
        give(tb, &runtime, 0o700);
        Self {
            tb,
            bin,
            config,
            runtime,
            key_file,
            _dir: dir,
        }
    }

    /// `magos <args> --repo <repo>` as the test user, logging at debug level.
    fn magos(&self, repo: &Path, args: &[&str], with_key: bool) -> Output {
        let mut cmd = self.tb.as_user();
        cmd.arg("PATH=/usr/local/bin:/usr/bin:/bin")
            .arg("HOME=/nonexistent")
            .arg("NO_COLOR=1")
            .arg(format!("XDG_RUNTIME_DIR={}", self.runtime.display()))
            .arg(format!("CONTAINER_HOST={}", self.tb.container_host));
        if with_key {
            cmd.arg(format!("SOPS_AGE_KEY_FILE={}", self.key_file.display()));
        }
        cmd.arg(&self.bin)
            .arg("-vv")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .arg("--repo")
            .arg(repo)
            .current_dir("/")
            .output()
            .expect("run magos as the test user")
    }

    fn secrets_dir(&self, project: &str) -> PathBuf {
        self.runtime.join("magos/secrets").join(project)
    }
}

/// Hands a path to the test user with `mode`.
fn give(tb: &Testbed, path: &Path, mode: u32) {
    std::os::unix::fs::chown(path, Some(tb.uid), Some(tb.gid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn write(tb: &Testbed, path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    give(tb, path.parent().unwrap(), 0o755);
    std::fs::write(path, bytes).unwrap();
    give(tb, path, 0o644);
}

/// Every byte of every file below `dir`.
fn tree_text(dir: &Path, out: &mut Vec<u8>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            tree_text(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.extend(b);
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

struct Cleanup<'a> {
    tb: &'a Testbed,
    projects: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for p in &self.projects {
            self.tb.remove_project(p);
        }
    }
}

fn container_id(tb: &Testbed, name: &str) -> String {
    tb.podman_ok(&["inspect", "--format", "{{.Id}}", name])
        .trim()
        .to_owned()
}

#[test]
fn encrypted_env_file_dotenv_and_secret_reach_the_container_and_nowhere_else() {
    let Some(tb) = testbed() else { return };
    let sops = Sops::new(tb);
    let project = support::unique_name("sealed").replace('-', "_");
    let plain_project = format!("{project}_plain");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone(), plain_project.clone()],
    };
    let user = AsUser::new(tb, &project, &sops.key_file);
    let repo_dir = tb.user_dir("magos-sealed-repo");
    let repo = repo_dir.path();
    let app = repo.join(&project);

    // Values that exist only here and inside the container.
    let salt = std::process::id();
    let db_password = format!("db-pw-{salt}-Zq8");
    let api_token = format!("api-tok-{salt}-Xw3");
    let file_secret = format!("file-secret-{salt}-Kv5");
    let db_password_2 = format!("db-pw2-{salt}-Lm1");

    write(
        tb,
        &app.join("secret.env"),
        &sops.encrypt(
            "secret.env",
            format!("DB_PASSWORD={db_password}\nSHARED=from-secret\n").as_bytes(),
            &[],
        ),
    );
    write(
        tb,
        &app.join(".env"),
        &sops.encrypt(".env", format!("API_TOKEN={api_token}\n").as_bytes(), &[]),
    );
    write(
        tb,
        &app.join("pw.txt"),
        &sops.encrypt("pw.txt", format!("{file_secret}\n").as_bytes(), &[]),
    );
    let image = format!(
        "{}@{}",
        tb.require("MAGOS_TEST_IMAGE_HTTPD"),
        tb.manifest_digest(tb.require("MAGOS_TEST_IMAGE_HTTPD"))
    );
    let compose = format!(
        "name: {project}
services:
  app:
    image: {image}
    env_file: [secret.env]
    environment:
      SHARED: from-compose
      TOKEN_URL: https://bot:${{API_TOKEN}}@example.invalid/
    secrets: [pw]
    stop_signal: SIGKILL
secrets:
  pw:
    file: ./pw.txt
"
    );
    write(tb, &app.join("compose.yaml"), compose.as_bytes());
    let plain_compose = |rev: &str| {
        format!(
            "name: {plain_project}\nservices:\n  web:\n    image: {image}\n    environment: {{REV: \"{rev}\"}}\n    stop_signal: SIGKILL\n"
        )
    };
    write(
        tb,
        &repo.join("plain/compose.yaml"),
        plain_compose("1").as_bytes(),
    );

    let mut logs = Vec::new();
    let mut run = |args: &[&str], with_key: bool| {
        let o = user.magos(repo, args, with_key);
        logs.extend_from_slice(&o.stdout);
        logs.extend_from_slice(&o.stderr);
        o
    };

    // Plan without a key: names only, nothing decrypted, nothing to hide.
    let plan = run(&["plan"], false);
    assert_eq!(plan.status.code(), Some(1), "{}", show(&plan));

    let applied = run(&["apply"], true);
    assert_eq!(applied.status.code(), Some(0), "{}", show(&applied));
    let name = format!("{project}_app_1");
    let env = tb.podman_ok(&["exec", &name, "env"]);
    assert!(
        env.lines()
            .any(|l| l == format!("DB_PASSWORD={db_password}")),
        "{env}"
    );
    assert!(
        env.lines()
            .any(|l| l == format!("TOKEN_URL=https://bot:{api_token}@example.invalid/")),
        "{env}"
    );
    assert!(env.lines().any(|l| l == "SHARED=from-compose"), "{env}");
    let mounted = tb.podman_ok(&["exec", &name, "cat", "/run/secrets/pw"]);
    assert_eq!(mounted, format!("{file_secret}\n"));

    // The decrypted copy: a private folder, a private file.
    let secrets_dir = user.secrets_dir(&project);
    let meta = std::fs::metadata(&secrets_dir).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), tb.uid);
    let files: Vec<_> = std::fs::read_dir(&secrets_dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].metadata().unwrap().mode() & 0o777, 0o600);

    // In sync, and nothing to do.
    let drift = run(&["drift", "--output", "json"], false);
    assert_eq!(drift.status.code(), Some(0), "{}", show(&drift));
    let again = run(&["plan"], false);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    let labels = tb.podman_ok(&["inspect", "--format", "{{json .Config.Labels}}", &name]);

    // A new ciphertext replaces the container; the old value is gone.
    let before = container_id(tb, &name);
    write(
        tb,
        &app.join("secret.env"),
        &sops.encrypt(
            "secret.env",
            format!("DB_PASSWORD={db_password_2}\nSHARED=from-secret\n").as_bytes(),
            &[],
        ),
    );
    let changed = run(&["apply"], true);
    assert_eq!(changed.status.code(), Some(0), "{}", show(&changed));
    assert_ne!(container_id(tb, &name), before, "a new secret recreates");
    let env = tb.podman_ok(&["exec", &name, "env"]);
    assert!(
        env.lines()
            .any(|l| l == format!("DB_PASSWORD={db_password_2}")),
        "{env}"
    );

    // A tampered file fails its stack alone, before anything is changed.
    let dotenv = std::fs::read_to_string(app.join(".env")).unwrap();
    let at = dotenv.find("ENC[AES256_GCM,data:").unwrap() + "ENC[AES256_GCM,data:".len();
    let mut tampered = dotenv.into_bytes();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    write(tb, &app.join(".env"), &tampered);
    write(
        tb,
        &repo.join("plain/compose.yaml"),
        plain_compose("2").as_bytes(),
    );
    let kept = container_id(tb, &name);
    let broken = run(&["apply"], true);
    assert_eq!(broken.status.code(), Some(2), "{}", show(&broken));
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains(".env"), "the error names the file: {err}");
    assert_eq!(container_id(tb, &name), kept, "nothing deployed from it");
    let plain_env = tb.podman_ok(&["exec", &format!("{plain_project}_web_1"), "env"]);
    assert!(plain_env.lines().any(|l| l == "REV=2"), "{plain_env}");

    // The stack leaves the repository: its containers and decrypted files go.
    std::fs::remove_dir_all(&app).unwrap();
    let removed = run(&["apply"], true);
    assert_eq!(removed.status.code(), Some(0), "{}", show(&removed));
    assert!(
        !secrets_dir.exists(),
        "decrypted files outlived their stack"
    );
    assert!(
        tb.podman_cli(&["inspect", &name]).status.code() != Some(0),
        "the stack's container is pruned"
    );

    // No value anywhere it must not be.
    let mut repo_bytes = Vec::new();
    tree_text(repo, &mut repo_bytes);
    for value in [&db_password, &api_token, &file_secret, &db_password_2] {
        assert!(!contains(&logs, value), "a secret value is in the logs");
        assert!(
            !contains(&repo_bytes, value),
            "a secret value is in the repository"
        );
        assert!(
            !labels.contains(value.as_str()),
            "a secret value is in a label"
        );
    }
}

#[test]
fn magos_run_wipes_leftover_plaintext_and_writes_back_what_is_in_use() {
    use std::os::unix::net::UnixDatagram;
    use std::os::unix::process::CommandExt as _;
    use std::time::{Duration, Instant};

    let Some(tb) = testbed() else { return };
    let sops = Sops::new(tb);
    let project = support::unique_name("sealedrun").replace('-', "_");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
    };
    let user = AsUser::new(tb, &project, &sops.key_file);
    let repo_dir = tb.user_dir("magos-sealedrun-repo");
    let app = repo_dir.path().join("app");
    let secret = format!("run-secret-{}-Qp2", std::process::id());
    write(
        tb,
        &app.join("pw.txt"),
        &sops.encrypt("pw.txt", secret.as_bytes(), &[]),
    );
    let image = format!(
        "{}@{}",
        tb.require("MAGOS_TEST_IMAGE_HTTPD"),
        tb.manifest_digest(tb.require("MAGOS_TEST_IMAGE_HTTPD"))
    );
    write(
        tb,
        &app.join("compose.yaml"),
        format!(
            "name: {project}\nservices:\n  app:\n    image: {image}\n    secrets: [pw]\n    stop_signal: SIGKILL\nsecrets:\n  pw:\n    file: ./pw.txt\n"
        )
        .as_bytes(),
    );

    // An observed stack: applying never touches its folder, only the start-up
    // wipe does.
    let watched = format!("{project}_watch");
    write(
        tb,
        &repo_dir.path().join("watch/compose.yaml"),
        format!(
            "name: {watched}\nservices:\n  app:\n    image: {image}\nx-magos:\n  observe: true\n"
        )
        .as_bytes(),
    );

    // What a killed run left: the observed stack's folder, and a file of this one.
    let root = user.runtime.join("magos/secrets");
    for dir in [root.join(&watched), user.secrets_dir(&project)] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("leftover"), "stale plaintext").unwrap();
    }
    for p in [
        user.runtime.join("magos"),
        root.clone(),
        root.join(&watched),
        root.join(&watched).join("leftover"),
        user.secrets_dir(&project),
        user.secrets_dir(&project).join("leftover"),
    ] {
        give(tb, &p, 0o700);
    }

    let home = tb.user_dir("magos-sealedrun-home");
    let config = home.path().join("magos.yaml");
    let port = support::free_port();
    std::fs::write(
        &config,
        format!(
            "apply:\n  instance: {project}\ndaemon:\n  interval: 1h\n  listen: 127.0.0.1:{port}\nstate_dir: {}\n",
            home.path().join("state").display()
        ),
    )
    .unwrap();
    let notify = home.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    give(tb, &notify, 0o600);
    sock.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let child = Command::new(&user.bin)
        .uid(tb.uid)
        .gid(tb.gid)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("XDG_RUNTIME_DIR", &user.runtime)
        .env("CONTAINER_HOST", &tb.container_host)
        .env("SOPS_AGE_KEY_FILE", &user.key_file)
        .env("NOTIFY_SOCKET", &notify)
        .args(["--config", config.to_str().unwrap(), "run", "--repo"])
        .arg(repo_dir.path())
        .current_dir("/")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start magos run as the test user");
    let mut daemon = support::KillOnDrop(child);

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "READY=1") {
        assert!(
            Instant::now() < deadline,
            "no READY=1 from magos run: {seen:?}"
        );
        if let Ok(n) = sock.recv(&mut buf) {
            seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned),
            );
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.starts_with("STATUS=1/2 stacks in sync")),
        "{seen:?}"
    );
    assert!(!root.join(&watched).exists(), "a leftover folder survived");
    let files: Vec<String> = std::fs::read_dir(user.secrets_dir(&project))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "only the file in use: {files:?}");
    assert_ne!(files[0], "leftover");
    let mounted = tb.podman_ok(&[
        "exec",
        &format!("{project}_app_1"),
        "cat",
        "/run/secrets/pw",
    ]);
    assert_eq!(mounted, secret);

    support::sigterm(&daemon.0);
    let status = daemon.0.wait().unwrap();
    let mut logs = String::new();
    use std::io::Read as _;
    daemon
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(status.success(), "exit {status:?}: {logs}");
    assert!(!logs.contains(&secret), "the secret is in the logs");
}
