//! Health as part of the truth Magos reports, soak verdicts and rollbacks:
//! the real binary, the real rootless Podman of the test bed and images pinned
//! from the test registry.

use std::time::Duration;

use crate::applycli::{Cleanup, Repo, drift_json, expect_exit, magos, pinned};
use crate::support::{self, show, testbed};

const WAIT: Duration = Duration::from_secs(60);

/// A service whose healthcheck never passes is `unhealthy` in `magos drift`
/// (exit 1), and one whose restart policy keeps restarting it is
/// `restarting`; a healthy neighbour stays in sync.
#[test]
fn drift_reports_an_unhealthy_and_a_crash_looping_service() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("health-drift");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    repo.write(
        tb,
        "app/compose.yaml",
        &format!(
            "name: {project}
services:
  sick:
    image: {httpd}
    stop_signal: SIGKILL
    healthcheck:
      test: [CMD, \"false\"]
      interval: 1s
      timeout: 5s
      retries: 1
  looping:
    image: {httpd}
    command: [sh, -c, \"exit 3\"]
    restart: always
  fine:
    image: {httpd}
    stop_signal: SIGKILL
"
        ),
    );
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    let sick = format!("{project}_sick_1");
    // Podman runs healthchecks from systemd timers; the test bed's user has no
    // manager, so the test runs the check as the timer would, until Podman
    // records the failure.
    let turned = support::wait_until(WAIT, Duration::from_millis(200), || {
        let _ = tb.podman_cli(&["healthcheck", "run", &sick]);
        tb.podman_ok(&["inspect", "--format", "{{.State.Health.Status}}", &sick])
            .trim()
            == "unhealthy"
    });
    assert!(turned, "{sick} never turned unhealthy");
    let looping = format!("{project}_looping_1");
    let restarted = support::wait_until(WAIT, Duration::from_millis(200), || {
        tb.podman_ok(&["inspect", "--format", "{{.RestartCount}}", &looping])
            .trim()
            .parse::<u64>()
            .is_ok_and(|n| n >= 3)
    });
    assert!(restarted, "{looping} was never restarted three times");

    let (code, d) = drift_json(tb, &repo);
    let state = |s: &str| d[&(project.clone(), s.to_owned())]["state"].clone();
    assert_eq!(state("sick"), "unhealthy", "{d:?}");
    assert_eq!(state("looping"), "restarting", "{d:?}");
    assert_eq!(state("fine"), "in_sync", "{d:?}");
    assert_eq!(code, 1);
    let table = magos(tb, &repo, None, &["drift"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("2 unhealthy or restarting"),
        "{}",
        show(&table)
    );
}
