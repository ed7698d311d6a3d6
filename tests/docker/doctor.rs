//! `magos doctor` with `runtime: docker`: the engine's socket, version and
//! storage driver; a missing engine fails with the fix.

use std::process::Command;

use crate::support::{bed, show};

fn doctor(docker_host: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("magos.yaml");
    std::fs::write(&config, "runtime: docker\n").unwrap();
    Command::new(env!("CARGO_BIN_EXE_magos"))
        .arg("--config")
        .arg(&config)
        .arg("doctor")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/root")
        .env("DOCKER_HOST", docker_host)
        .env("NO_COLOR", "1")
        .output()
        .expect("run magos")
}

#[test]
fn doctor_checks_the_engine_socket_version_and_storage_driver() {
    let Some(bed) = bed() else { return };
    let o = doctor(&bed.docker_host);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    for id in ["socket", "version", "storage-driver"] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(id))
            .unwrap_or_else(|| panic!("no {id} check: {out}"));
        assert!(line.starts_with("PASS"), "{line}");
    }
    assert!(out.contains("API 1."), "{out}");

    let missing = doctor("unix:///nonexistent/docker.sock");
    let text = String::from_utf8_lossy(&missing.stdout);
    assert_eq!(missing.status.code(), Some(1), "{}", show(&missing));
    assert!(
        text.contains("FAIL") && text.contains("/nonexistent/docker.sock"),
        "{text}"
    );
}
