//! `runtime` (`MD_RUNTIME`): `podman` applies plain stacks natively, while
//! `podman-compose` hands every stack to the compose CLI.

use std::process::Command;

use crate::support::{self, testbed};

fn plan(repo: &std::path::Path, runtime: &str) -> serde_json::Value {
    let tb = testbed().expect("checked by the caller");
    let out = Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(["plan", "--repo", repo.to_str().unwrap(), "--output", "json"])
        .env("CONTAINER_HOST", &tb.container_host)
        .env("MD_RUNTIME", runtime)
        .env_remove("MAGOS_CONFIG")
        .env_remove("MD_CONFIG")
        .output()
        .expect("run magos plan");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("plan JSON")
}

#[test]
fn the_runtime_chooses_the_native_or_the_compose_cli_path() {
    let Some(tb) = testbed() else { return };
    let repo = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgruntime").replace('-', "_");
    std::fs::create_dir(repo.path().join(&project)).unwrap();
    std::fs::write(
        repo.path().join(&project).join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: {}\n",
            tb.require("MAGOS_TEST_IMAGE_HTTPD")
        ),
    )
    .unwrap();
    let native = plan(repo.path(), "podman");
    assert!(
        native["compose_cli"].as_array().unwrap().is_empty(),
        "{native}"
    );
    assert!(
        native["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["project"] == project.as_str()),
        "{native}"
    );
    let cli = plan(repo.path(), "podman-compose");
    assert!(
        cli["compose_cli"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stack"] == project.as_str()),
        "{cli}"
    );
}
