//! Registry credentials from a Docker credential helper (`credHelpers` and
//! `credsStore` in the auth file), against the test bed's TLS registry with
//! basic authentication: a helper script on `PATH` answers the `get` protocol
//! with the test bed's password, and `magos check` lists the private image's
//! tags; a helper that fails is named in a clear error, with the registry.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::git_fixture::write_files;
use crate::support::{Testbed, show, testbed};

/// A temporary home: `.config/containers/certs.d/<registry>/ca.crt` (the test
/// bed's CA), a `bin` folder for helpers, the repository and the configuration.
struct Home {
    tmp: tempfile::TempDir,
}

impl Home {
    fn new(tb: &Testbed, auth_json: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let registry = tb.require("MAGOS_TEST_REGISTRY_AUTH");
        let certs = tmp.path().join(".config/containers/certs.d").join(registry);
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(
            tb.require("MAGOS_TEST_REGISTRY_AUTH_CA"),
            certs.join("ca.crt"),
        )
        .unwrap();
        std::fs::create_dir_all(tmp.path().join("bin")).unwrap();
        std::fs::write(tmp.path().join("auth.json"), auth_json).unwrap();
        let image = tb.require("MAGOS_TEST_IMAGE_PRIVATE");
        write_files(
            &tmp.path().join("repo"),
            &[(
                "private/compose.yaml",
                format!(
                    "services:\n  app:\n    image: {image}:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"^1\"}}}}\n"
                ),
            )],
        );
        std::fs::write(
            tmp.path().join("magos.yaml"),
            format!(
                "registries:\n  auth_file: {}\n  timeout: 10s\nstate_dir: {}\n",
                tmp.path().join("auth.json").display(),
                tmp.path().join("state").display()
            ),
        )
        .unwrap();
        Self { tmp }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes `bin/docker-credential-<name>` (a shell script).
    fn helper(&self, name: &str, script: &str) {
        let path = self
            .path()
            .join("bin")
            .join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{script}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn check(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_magos"))
            .args(["check", "--output", "json", "--config"])
            .arg(self.path().join("magos.yaml"))
            .arg("--repo")
            .arg(self.path().join("repo"))
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin",
                    self.path().join("bin").display()
                ),
            )
            .env("HOME", self.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }
}

/// A helper that answers for the test bed's registry only, and records what
/// it was asked in `asked`.
fn answering_helper(tb: &Testbed, home: &Home) -> String {
    let registry = tb.require("MAGOS_TEST_REGISTRY_AUTH");
    let user = tb.require("MAGOS_TEST_REGISTRY_AUTH_USERNAME");
    let password_file = tb.require("MAGOS_TEST_REGISTRY_AUTH_PASSWORD_FILE");
    let asked = home.path().join("asked");
    home.helper(
        "magos-test",
        &format!(
            "test \"$1\" = get || exit 3\n\
             read -r server\n\
             printf '%s\\n' \"$server\" >> '{asked}'\n\
             if [ \"$server\" != '{registry}' ]; then echo 'credentials not found in native keychain'; exit 1; fi\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"%s\"}}' \"$server\" \"$(cat '{password_file}')\"\n",
            asked = asked.display()
        ),
    );
    std::fs::read_to_string(password_file)
        .unwrap()
        .trim()
        .to_owned()
}

fn row(out: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", show(out)));
    v.as_array().unwrap()[0].clone()
}

#[test]
fn a_credential_helper_named_in_cred_helpers_lets_check_list_a_private_registry() {
    let Some(tb) = testbed() else { return };
    let registry = tb.require("MAGOS_TEST_REGISTRY_AUTH");
    let home = Home::new(
        tb,
        &format!("{{\"credHelpers\": {{\"{registry}\": \"magos-test\"}}}}"),
    );
    let password = answering_helper(tb, &home);
    let out = home.check();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let app = row(&out);
    assert_eq!(app["tag"], "1.1.0", "{app}");
    assert_eq!(app["update"], true, "{app}");
    assert_eq!(
        std::fs::read_to_string(home.path().join("asked"))
            .unwrap()
            .lines()
            .next(),
        Some(registry),
        "the helper is asked for the registry as the auth file names it"
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(&password), "the secret never shows");
}

#[test]
fn a_creds_store_answers_for_every_registry_of_its_file() {
    let Some(tb) = testbed() else { return };
    let home = Home::new(tb, "{\"auths\": {}, \"credsStore\": \"magos-test\"}");
    answering_helper(tb, &home);
    let out = home.check();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(row(&out)["tag"], "1.1.0", "{}", show(&out));
}

#[test]
fn a_failing_credential_helper_is_named_with_its_registry() {
    let Some(tb) = testbed() else { return };
    let registry = tb.require("MAGOS_TEST_REGISTRY_AUTH");
    let home = Home::new(
        tb,
        &format!("{{\"credHelpers\": {{\"{registry}\": \"broken\"}}}}"),
    );
    home.helper(
        "broken",
        "echo 'gpg: decryption failed: No secret key' >&2\nexit 2\n",
    );
    let out = home.check();
    let app = row(&out);
    let error = app["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", show(&out)));
    assert!(
        error.contains("docker-credential-broken")
            && error.contains(registry)
            && error.contains("exited with 2")
            && error.contains("gpg: decryption failed"),
        "{error}"
    );

    // A helper that is not installed says so.
    let home = Home::new(
        tb,
        &format!("{{\"credHelpers\": {{\"{registry}\": \"absent\"}}}}"),
    );
    let out = home.check();
    let error = row(&out)["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("docker-credential-absent") && error.contains("not on PATH"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_credential_helper_that_hangs_is_stopped_at_the_registries_timeout() {
    let Some(tb) = testbed() else { return };
    let registry = tb.require("MAGOS_TEST_REGISTRY_AUTH");
    let home = Home::new(
        tb,
        &format!("{{\"credHelpers\": {{\"{registry}\": \"hangs\"}}}}"),
    );
    let config = home.path().join("magos.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("timeout: 10s", "timeout: 2s")).unwrap();
    // It writes its pid, then waits for a signal that never comes.
    let pid_file = home.path().join("hangs.pid");
    home.helper(
        "hangs",
        &format!("echo $$ > '{}'\nexec sleep 3600\n", pid_file.display()),
    );
    let out = home.check();
    let error = row(&out)["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("docker-credential-hangs")
            && error.contains(registry)
            && error.contains("did not answer within 2s"),
        "{}",
        show(&out)
    );
    // The helper was killed, not left behind.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let gone = crate::support::wait_until(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(50),
        || !Path::new(&format!("/proc/{}", pid.trim())).exists(),
    );
    assert!(gone, "the helper (pid {}) still runs", pid.trim());
}
