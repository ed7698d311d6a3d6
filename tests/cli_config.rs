//! `magos config check` as a user runs it: the reference file passes; a typo, a
//! wrong type and a bad value exit 2 naming file, line and key; a secret given
//! through the environment never shows.

use std::process::Command;

fn magos(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_magos"));
    cmd.args(args)
        .env_remove("MAGOS_CONFIG")
        .env_remove("MD_CONFIG")
        .env("HOME", "/nonexistent");
    for var in [
        "MD_REPO",
        "GITHUB_APP_PRIVATE_KEY",
        "MD_WEBHOOK_SECRET",
        "CONTAINER_HOST",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run magos");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_reference_configuration_checks_clean() {
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/magos.yaml");
    let (code, out, err) = magos(&["config", "check", "--config", reference], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("branch: main"), "{out}");
}

#[test]
fn mistakes_exit_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, line, key) in [
        (
            "repo:\n  url: /srv/git/homelab\n  brnach: main\n",
            3,
            "brnach",
        ),
        (
            "daemon:\n  restart_limit: lots\n",
            2,
            "daemon.restart_limit",
        ),
        ("daemon:\n  interval: soon\n", 2, "daemon.interval"),
    ] {
        let path = dir.path().join("magos.yaml");
        std::fs::write(&path, text).unwrap();
        let (code, out, err) = magos(
            &["config", "check", "--config", path.to_str().unwrap()],
            &[],
        );
        assert_eq!(code, 2, "{text}: {out}{err}");
        assert!(
            err.contains(&format!("{}:{line}:", path.display())),
            "{err}"
        );
        assert!(err.contains(key), "{key} not in {err}");
    }
}

#[test]
fn secrets_from_the_environment_never_show() {
    let pem = "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----";
    let (code, out, err) = magos(
        &["config", "check"],
        &[
            ("GITHUB_APP_PRIVATE_KEY", pem),
            ("MD_WEBHOOK_SECRET", "hook-secret-value"),
            (
                "MD_REPO",
                "https://x-access-token:ghs_tokenvalue@github.com/me/homelab.git",
            ),
        ],
    );
    assert_eq!(code, 0, "{err}");
    for secret in [
        "TOPSECRETKEYMATERIAL",
        "hook-secret-value",
        "ghs_tokenvalue",
    ] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown:\n{out}{err}"
        );
    }
    assert!(out.contains("<redacted>"), "{out}");
    assert!(
        out.contains("from environment variable GITHUB_APP_PRIVATE_KEY"),
        "{out}"
    );
}

#[test]
fn an_unsupported_runtime_is_refused() {
    let (code, _, err) = magos(&["config", "check"], &[("MD_RUNTIME", "lxc")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("MD_RUNTIME") && err.contains("podman"),
        "{err}"
    );
}
