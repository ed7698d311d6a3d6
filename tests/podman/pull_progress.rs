//! Pull progress: off a terminal (as here, and under systemd), each progress line
//! Podman streams is a log line of `magos apply`.

use std::process::Command;

use crate::support::{self, testbed};

#[test]
fn a_pull_shows_its_progress_as_log_lines() {
    let Some(tb) = testbed() else { return };
    // A copy of the httpd image under a name nothing has pulled yet.
    let name = support::unique_name("mgpull");
    let source = format!("docker://{}", tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let copy = format!("{}/{name}:1", tb.registry);
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &source,
            &format!("docker://{copy}"),
        ])
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let repo = tempfile::tempdir().unwrap();
    let project = name.replace('-', "_");
    std::fs::create_dir(repo.path().join(&project)).unwrap();
    std::fs::write(
        repo.path().join(&project).join("compose.yaml"),
        format!("services:\n  web:\n    image: {copy}\n    stop_signal: SIGKILL\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_magos"))
        .args([
            "apply",
            "--repo",
            repo.path().to_str().unwrap(),
            "--no-prune",
        ])
        .env("CONTAINER_HOST", &tb.container_host)
        .env("NO_COLOR", "1")
        .env_remove("MAGOS_CONFIG")
        .env_remove("MD_CONFIG")
        .output()
        .expect("run magos apply");
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = tb.podman_cli(&["rm", "-f", "-t", "0", &format!("{project}_web_1")]);
    let _ = tb.podman_cli(&["network", "rm", "-f", &format!("{project}_default")]);
    let _ = tb.podman_cli(&["rmi", "-f", &copy]);
    assert!(out.status.success(), "{logs}");
    let progress: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&format!("image=\"{copy}\"")) && !l.contains("pulling"))
        .collect();
    assert!(
        !progress.is_empty(),
        "no progress lines for the pull:\n{logs}"
    );
    assert!(
        !logs.contains('\r'),
        "no terminal rewriting off a terminal:\n{logs}"
    );
}
