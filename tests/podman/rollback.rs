//! Health as part of the truth Magos reports, soak verdicts and rollbacks:
//! the real binary, the real rootless Podman of the test bed and images pinned
//! from the test registry.

use std::time::Duration;

use crate::applycli::{Cleanup, Repo, drift_json, expect_exit, pinned};
use crate::daemon::{
    OwnRepository, Remote, Running, announce_push, container_env, inspect, magos, write_config,
};
use crate::daemon_fixture::{push_pass, scenario_stack};
use crate::git_fixture::git;
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
    expect_exit(&crate::applycli::magos(tb, &repo, None, &["apply"]), 0);
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
    let table = crate::applycli::magos(tb, &repo, None, &["drift"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("2 unhealthy or restarting"),
        "{}",
        show(&table)
    );
}

/// The scenario with `magos run`: 1.0.0 runs healthy; 1.1.0, whose
/// healthcheck fails, is pinned, applied, found unhealthy, replaced by 1.0.0
/// again (the same digest) and its pin reverted on the remote with the
/// trailer; the next pass does not pin 1.1.0 again; 1.2.0 is pinned and kept.
#[test]
fn a_failing_pin_is_rolled_back_reverted_in_git_and_not_pinned_again() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgroll").replace('-', "_");
    let http_port = support::free_port();
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");
    let mut own = OwnRepository::new(tb, "mgroll");
    let v1 = own.push(&format!("{semver}:1.0.0"), "1.0.0");
    let image = own.image.clone();
    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    remote.push(&file, &scenario_stack(&image, "1.0.0", ""), "app at 1.0.0");
    let config = write_config(dir.path(), &remote, &project, http_port);
    let mut running = Running::start(tb, dir.path(), &config, &project);
    running.wait_notice("READY=1", Duration::from_secs(180));
    assert_eq!(
        running.last_status(),
        "STATUS=1/1 stacks in sync, 1 updates pinned",
        "{}",
        running.logs()
    );
    let good = remote.pull(&file);
    assert!(good.contains(&format!("{image}:1.0.0@{v1} #")), "{good}");
    let name = format!("{project}_app_1");

    // 1.1.0 is the image the healthcheck fails on.
    let v2 = own.push(&format!("{semver}:1.2.0"), "1.1.0");
    let finished = push_pass(&running, http_port);
    assert!(
        finished.ends_with("status=\"1/1 stacks in sync, 1 updates pinned, 1 rolled back\""),
        "{}",
        running.logs()
    );
    // The host runs 1.0.0 again, by the same digest.
    let inspected = inspect(tb, &name).expect("the app container exists");
    assert_eq!(inspected["State"]["Running"], true, "{inspected}");
    assert_eq!(
        inspected["ImageName"],
        format!("{image}@{v1}").as_str(),
        "{inspected}"
    );
    assert_eq!(container_env(tb, &name, "MAGOS_IMAGE_VERSION"), "1.0.0");
    // The remote: the pin, then its revert on top, the file as it was.
    let reverted = remote.pull(&file);
    assert_eq!(reverted, good, "the revert restores the file byte for byte");
    let log = git(&remote.work, &["log", "-2", "--format=%B%x00"]);
    let messages: Vec<&str> = log.split('\0').map(str::trim).collect();
    let pin_subject = git(&remote.work, &["log", "-1", "--format=%s", "HEAD~1"]);
    assert!(
        git(&remote.work, &["show", &format!("HEAD~1:{file}")])
            .contains(&format!("{image}:1.1.0@{v2} #")),
        "HEAD~1 is the pin of 1.1.0"
    );
    assert!(
        messages[0].starts_with(&format!("Revert \"{}\"", pin_subject.trim())),
        "{log}"
    );
    assert!(
        messages[0].ends_with(&format!(
            "Magos-Rollback: {image}@{v2}: its healthcheck reported unhealthy"
        )),
        "{log}"
    );
    let metrics = support::http_get(http_port, "/metrics").unwrap().text();
    assert!(
        metrics.contains(&format!(
            "magos_rollbacks_total{{stack=\"{project}\",service=\"app\",reason=\"unhealthy\"}} 1"
        )),
        "{metrics}"
    );
    let rejected = magos(tb, &config, &["rejected"]);
    assert!(
        String::from_utf8_lossy(&rejected.stdout).contains(&format!("{image}@{v2}  1.1.0")),
        "{}",
        show(&rejected)
    );

    // The next pass does not pin 1.1.0 again.
    let head = git(&remote.work, &["rev-parse", "HEAD"]);
    let finished = push_pass(&running, http_port);
    assert!(
        finished.ends_with("status=\"1/1 stacks in sync\""),
        "{}",
        running.logs()
    );
    git(&remote.work, &["fetch", "-q", "origin"]);
    assert_eq!(git(&remote.work, &["rev-parse", "origin/main"]), head);

    // 1.2.0 is healthy: pinned, applied, kept.
    let v3 = own.push(&format!("{semver}:1.2.3"), "1.2.0");
    let finished = push_pass(&running, http_port);
    assert!(
        finished.ends_with("status=\"1/1 stacks in sync, 1 updates pinned\""),
        "{}",
        running.logs()
    );
    assert!(
        running.logs().contains("passed its soak"),
        "{}",
        running.logs()
    );
    let kept = inspect(tb, &name).expect("the app container exists");
    assert_eq!(kept["ImageName"], format!("{image}@{v3}").as_str());
    assert!(
        remote
            .pull(&file)
            .contains(&format!("{image}:1.2.0@{v3} #"))
    );
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
}

/// A crash-looping image without a healthcheck is rolled back too (its line
/// restored by a commit of its own, since the pin commit pinned two
/// services); a service marked `x-magos: {rollback: false}` keeps the new
/// version.
#[test]
fn a_crash_loop_is_rolled_back_and_rollback_false_is_kept() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgloop").replace('-', "_");
    let http_port = support::free_port();
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");
    let mut own = OwnRepository::new(tb, "mgloop");
    let v1 = own.push(&format!("{semver}:1.0.0"), "1.0.0");
    let image = own.image.clone();
    // The image copied to 1.1.0 (MAGOS_IMAGE_VERSION=1.2.0) exits at once.
    let service = |name: &str, keys: &str| {
        format!(
            "  {name}:
    image: {image}:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \">=1.0.0 <2.0.0\"}}}}
    command: [sh, -c, \"test \\\"$$MAGOS_IMAGE_VERSION\\\" != 1.2.0 && exec sleep 2147483647\"]
    restart: always
    stop_signal: SIGKILL
    x-magos: {keys}
"
        )
    };
    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    remote.push(
        &file,
        &format!(
            "services:\n{}{}",
            service("crashy", "{soak: 3s}"),
            service("keeper", "{soak: 3s, rollback: false}")
        ),
        "two services at 1.0.0",
    );
    let config = write_config(dir.path(), &remote, &project, http_port);
    let mut running = Running::start(tb, dir.path(), &config, &project);
    running.wait_notice("READY=1", Duration::from_secs(180));
    assert_eq!(
        running.last_status(),
        "STATUS=1/1 stacks in sync, 2 updates pinned",
        "{}",
        running.logs()
    );

    let v2 = own.push(&format!("{semver}:1.2.0"), "1.1.0");
    let finished = push_pass(&running, http_port);
    assert!(
        finished.contains("2 updates pinned, 1 rolled back"),
        "{}",
        running.logs()
    );
    let crashy = inspect(tb, &format!("{project}_crashy_1")).unwrap();
    assert_eq!(crashy["ImageName"], format!("{image}@{v1}").as_str());
    let keeper = inspect(tb, &format!("{project}_keeper_1")).unwrap();
    assert_eq!(keeper["ImageName"], format!("{image}@{v2}").as_str());
    let compose = remote.pull(&file);
    assert!(
        compose.contains(&format!("image: {image}:1.0.0@{v1} #")),
        "{compose}"
    );
    assert!(
        compose.contains(&format!("image: {image}:1.1.0@{v2} #")),
        "{compose}"
    );
    let message = git(&remote.work, &["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with(&format!("Roll back {project}/crashy to {image}:1.0.0@{v1}")),
        "{message}"
    );
    let trailer = format!("Magos-Rollback: {image}@{v2}: ");
    assert!(
        message.contains(&format!("{trailer}it exited with code 1"))
            || message.contains(&format!("{trailer}its restart policy restarted it")),
        "{message}"
    );
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
}

/// `kill -9` during a soak: the restarted daemon resumes the soak from the
/// state folder, reaches the failed verdict and rolls back as the first one
/// would have (1.0.0 by its digest, the pin reverted with the trailer).
#[test]
fn a_daemon_killed_during_a_soak_finishes_it_after_a_restart() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgkill").replace('-', "_");
    let http_port = support::free_port();
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");
    let mut own = OwnRepository::new(tb, "mgkill");
    let v1 = own.push(&format!("{semver}:1.0.0"), "1.0.0");
    let image = own.image.clone();
    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    // A start period: the failing checks of 1.1.0 do not count for 8s, so the
    // soak is pending (not healthy yet) long enough to be interrupted.
    let stack = scenario_stack(&image, "1.0.0", "").replace(
        "      retries: 1\n",
        "      retries: 1\n      start_period: 8s\n",
    );
    remote.push(&file, &stack, "app at 1.0.0");
    let config = write_config(dir.path(), &remote, &project, http_port);
    let mut first = Running::start(tb, dir.path(), &config, &project);
    first.wait_notice("READY=1", Duration::from_secs(180));
    let good = remote.pull(&file);

    let v2 = own.push(&format!("{semver}:1.2.0"), "1.1.0");
    announce_push(http_port);
    // Soaking, and the soak written to the state folder (the log line comes
    // just before the write).
    let state_file = dir.path().join("state/rollback.json");
    let soaking = support::wait_until(Duration::from_secs(120), Duration::from_millis(50), || {
        first.logs().contains("changed; soaking")
            && std::fs::read_to_string(&state_file)
                .is_ok_and(|s| s.contains(&format!("{project}_app_1")))
    });
    assert!(soaking, "{}", first.logs());
    let killed = first.kill9(dir.path());
    assert!(
        !killed.contains("failed its soak"),
        "killed too late:\n{killed}"
    );

    let mut second = Running::start(tb, dir.path(), &config, &project);
    second.wait_notice("READY=1", Duration::from_secs(180));
    assert!(
        second.logs().contains("resuming the soaks of the last run"),
        "{}",
        second.logs()
    );
    assert!(
        second.last_status().contains("1 rolled back"),
        "{}",
        second.logs()
    );
    let inspected = inspect(tb, &format!("{project}_app_1")).unwrap();
    assert_eq!(inspected["ImageName"], format!("{image}@{v1}").as_str());
    assert_eq!(remote.pull(&file), good);
    let message = git(&remote.work, &["log", "-1", "--format=%B"]);
    assert!(
        message.contains(&format!(
            "Magos-Rollback: {image}@{v2}: its healthcheck reported unhealthy"
        )),
        "{message}"
    );
    let (code, logs) = second.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
}
