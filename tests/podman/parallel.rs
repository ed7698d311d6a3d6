//! Services that do not need each other are created and started at the same
//! time, while a service that needs another still waits for it: `a` becomes
//! healthy only once `c` answers, `b` waits for `a` to be healthy, and `c`
//! needs nothing. The plan's order is `a`, `b`, `c`; an executor that took the
//! services one at a time would wait on `b` forever (until its limit: the
//! test's `timeout` fails it first), since `c` would come after it. The report
//! keeps the plan's order. Real `magos` binary, real rootless Podman.

use std::process::Command;

use crate::applycli::{Cleanup, Repo, containers, pinned};
use crate::support::{self, show, testbed};

#[test]
fn a_service_waiting_for_a_dependency_does_not_hold_back_one_that_needs_nothing() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("parallel");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let port = tb.require("MAGOS_TEST_IMAGE_HTTPD_PORT");
    repo.write(
        tb,
        "app/compose.yaml",
        &format!(
            r#"name: {project}
services:
  a:
    image: {httpd}
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://c:{port}/"]
      interval: 1s
      retries: 1000
  b:
    image: {httpd}
    stop_signal: SIGKILL
    depends_on:
      a:
        condition: service_healthy
  c:
    image: {httpd}
    stop_signal: SIGKILL
"#
        ),
    );
    let plan = Command::new(env!("CARGO_BIN_EXE_magos"))
        .arg("--config")
        .arg(&repo.config)
        .args(["plan", "--repo"])
        .arg(repo.path())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", "/root")
        .env("CONTAINER_HOST", &tb.container_host)
        .env("NO_COLOR", "1")
        .output()
        .expect("run magos plan");
    let text = String::from_utf8_lossy(&plan.stdout);
    let at = |s: &str| {
        text.find(&format!("create {project}_{s}_1"))
            .unwrap_or_else(|| panic!("no create of {s}: {}", show(&plan)))
    };
    assert!(at("a") < at("b") && at("b") < at("c"), "{}", show(&plan));

    let apply = Command::new("timeout")
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_magos"))
        .arg("--config")
        .arg(&repo.config)
        .args(["apply", "--repo"])
        .arg(repo.path())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", "/root")
        .env("CONTAINER_HOST", &tb.container_host)
        .env("NO_COLOR", "1")
        .output()
        .expect("run magos apply");
    assert_eq!(apply.status.code(), Some(0), "{}", show(&apply));
    let made = containers(tb, &project);
    for s in ["a", "b", "c"] {
        assert!(
            made.contains_key(&format!("{project}_{s}_1")),
            "{s}: {made:?}"
        );
    }
    // The report lists the actions in the plan's order.
    let out = String::from_utf8_lossy(&apply.stdout);
    let done = |s: &str| {
        out.find(&format!("create {project}_{s}_1"))
            .unwrap_or_else(|| panic!("{s} not reported: {}", show(&apply)))
    };
    assert!(
        done("a") < done("b") && done("b") < done("c"),
        "{}",
        show(&apply)
    );
}
