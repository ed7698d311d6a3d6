//! `magos init` against the test bed's Podman: with a readable repository every
//! check passes and it exits 0, the socket written with `--podman-socket`.

use std::process::Command;

use crate::git_fixture::bare_remote;
use crate::support::{show, testbed};

#[test]
fn every_check_passes_against_the_test_bed() {
    let Some(tb) = testbed() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (remote, _other) = bare_remote(
        tmp.path(),
        "homelab.git",
        &[(
            "web/compose.yaml",
            "services:\n  web:\n    image: busybox:1\n",
        )],
    );
    let config = tmp.path().join("magos.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(["init", "--config"])
        .arg(&config)
        .arg("--repo-url")
        .arg(format!("file://{}", remote.display()))
        .arg("--podman-socket")
        .arg(&tb.container_host)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", tmp.path())
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run magos");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let podman = stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("podman"))
        .unwrap_or_else(|| panic!("no podman check: {stdout}"));
    assert!(podman.trim_start().starts_with("ok"), "{podman}");
    assert!(podman.contains("Podman 5."), "{podman}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&tb.container_host), "{text}");
}
