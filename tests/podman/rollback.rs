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
    // A receiver on 127.0.0.1 of the four events the issue follows.
    let (receiver, got) = crate::notify::receiver();
    with_notify(
        &config,
        receiver,
        "[pinned, applied, unhealthy, rolled_back]",
    );
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
    // The receiver: 1.0.0 pinned and applied, then 1.1.0 pinned, applied,
    // found unhealthy and rolled back, in that order, once each.
    let events = wait_events(&got, 6, &running);
    assert_eq!(
        crate::notify::kinds(&got),
        [
            "pinned",
            "applied",
            "pinned",
            "applied",
            "unhealthy",
            "rolled_back"
        ],
        "{events:#?}"
    );
    let revert = git(&remote.work, &["rev-parse", "HEAD"]);
    let pin = git(&remote.work, &["rev-parse", "HEAD~1"]);
    let who = |e: &serde_json::Value| {
        assert_eq!(e["stack"], project.as_str(), "{e}");
    };
    for e in [&events[2], &events[3], &events[4], &events[5]] {
        who(e);
    }
    assert_eq!(events[2]["service"], "app");
    assert_eq!(events[2]["to_digest"], v2.as_str(), "{}", events[2]);
    assert_eq!(events[2]["commit"], pin.as_str(), "{}", events[2]);
    assert_eq!(events[3]["commit"], pin.as_str(), "{}", events[3]);
    assert_eq!(events[4]["service"], "app");
    assert_eq!(events[4]["to_digest"], v2.as_str(), "{}", events[4]);
    assert_eq!(
        events[4]["reason"], "its healthcheck reported unhealthy",
        "{}",
        events[4]
    );
    assert_eq!(events[5]["service"], "app");
    assert_eq!(events[5]["from_digest"], v2.as_str(), "{}", events[5]);
    assert_eq!(events[5]["to_digest"], v1.as_str(), "{}", events[5]);
    assert_eq!(events[5]["commit"], revert.as_str(), "{}", events[5]);

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
    let events = wait_events(&got, 8, &running);
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
    assert_eq!(
        crate::notify::kinds(&got),
        [
            "pinned",
            "applied",
            "pinned",
            "applied",
            "unhealthy",
            "rolled_back",
            "pinned",
            "applied"
        ],
        "nothing more about 1.1.0, and 1.2.0 kept: {events:#?}"
    );
    assert_eq!(events[6]["to_digest"], v3.as_str(), "{}", events[6]);
}

/// Adds a webhook receiver at `addr` for `events` to the configuration file.
fn with_notify(config: &std::path::Path, addr: std::net::SocketAddr, events: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!(
        "notify:\n  - kind: webhook\n    url: http://{addr}/hook\n    events: {events}\n"
    ));
    std::fs::write(config, text).unwrap();
}

/// Waits until the receiver has `n` events (they are sent in the
/// background); their JSON documents, in the order they arrived.
fn wait_events(
    got: &std::sync::Mutex<Vec<crate::notify::Received>>,
    n: usize,
    running: &Running<'_>,
) -> Vec<serde_json::Value> {
    let arrived = support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        crate::notify::kinds(got).len() >= n
    });
    assert!(
        arrived,
        "got {:?}; logs:\n{}",
        crate::notify::kinds(got),
        running.logs()
    );
    got.lock().unwrap().iter().map(|r| r.json()).collect()
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

/// The test App's key files (see tests/fixtures/github-app).
fn github_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github-app")
        .join(name)
}

/// Pull-request mode: Magos proposes 1.1.0, a person merges the pull
/// request, the daemon applies it, finds it unhealthy, runs 1.0.0 again and
/// proposes the revert as a pull request of its own (the revert commit with
/// the trailer on a branch on top of the followed branch, which Magos never
/// writes); the stack stays on 1.0.0 until a person merges the revert.
///
/// Git is the real `git http-backend`; the GitHub API is the local fake of
/// `tests/git/fake_github.rs` (GitHub cannot be reached from the test
/// machines).
#[test]
fn in_pull_request_mode_the_revert_of_a_merged_pin_arrives_as_a_pull_request() {
    use crate::git_fixture::bare_remote;
    use crate::pinning::{fake_github, http_backend};
    const TOKEN: &str = "tok_rollback_3b8e1d";

    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgrollpr").replace('-', "_");
    let http_port = support::free_port();
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");
    let mut own = OwnRepository::new(tb, "mgrollpr");
    let v1 = own.push(&format!("{semver}:1.0.0"), "1.0.0");
    let image = own.image.clone();
    let file = format!("{project}/compose.yaml");
    let good = scenario_stack(&image, &format!("1.0.0@{v1}"), "");
    let served = dir.path().join("served");
    let (bare, other) = bare_remote(&served, "me/homelab.git", &[(file.clone(), good.clone())]);
    let github = fake_github::FakeGithub::start(
        1234,
        42,
        "me",
        "homelab",
        &std::fs::read(github_fixture("public-key.pem")).unwrap(),
        TOKEN,
        3600,
    );
    let backend = http_backend::HttpBackend::start(served.clone(), TOKEN, TOKEN);
    let config = dir.path().join("magos.yaml");
    std::fs::write(
        &config,
        format!(
            "repo:\n  url: {}\n  mode: pull_request\ngithub:\n  app_id: 1234\n  private_key: {}\n  api_url: {}\napply:\n  instance: {project}\ndaemon:\n  interval: 1h\n  listen: 127.0.0.1:{http_port}\n  webhook_secret: {}\nrollback:\n  soak: 2s\nstate_dir: {}\n",
            backend.url("me/homelab.git"),
            github_fixture("private-key.pem").display(),
            github.url(),
            crate::daemon::WEBHOOK_SECRET,
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut running = Running::start(tb, dir.path(), &config, &project);
    running.wait_notice("READY=1", Duration::from_secs(180));
    assert_eq!(
        running.last_status(),
        "STATUS=1/1 stacks in sync",
        "{}",
        running.logs()
    );
    let name = format!("{project}_app_1");

    // 1.1.0 (the image the healthcheck fails on) is proposed, not pinned.
    let v2 = own.push(&format!("{semver}:1.2.0"), "1.1.0");
    let before = git(&bare, &["rev-parse", "main"]);
    push_pass(&running, http_port);
    assert_eq!(
        git(&bare, &["rev-parse", "main"]),
        before,
        "{}",
        running.logs()
    );
    let pin_branch = {
        let state = github.state.lock().unwrap();
        assert_eq!(
            state.pulls.len(),
            1,
            "{:?}; logs:\n{}",
            state.pulls,
            running.logs()
        );
        state.pulls[0].head.clone()
    };
    assert_eq!(
        inspect(tb, &name).unwrap()["ImageName"],
        format!("{image}@{v1}").as_str(),
        "a proposed pin is not applied"
    );

    // A person merges it (a fast-forward), as GitHub would, closing it.
    git(&other, &["fetch", "-q", "origin"]);
    git(
        &other,
        &["merge", "-q", "--ff-only", &format!("origin/{pin_branch}")],
    );
    git(&other, &["push", "-q", "origin", "main"]);
    github.state.lock().unwrap().pulls[0].open = false;
    let merged = git(&bare, &["rev-parse", "main"]);
    let pin_commit = git(&bare, &["rev-parse", &pin_branch]);
    assert_eq!(merged, pin_commit);

    let finished = push_pass(&running, http_port);
    assert!(finished.contains("1 rolled back"), "{}", running.logs());
    // The host runs 1.0.0 again, by its digest.
    let inspected = inspect(tb, &name).expect("the app container exists");
    assert_eq!(inspected["State"]["Running"], true, "{inspected}");
    assert_eq!(inspected["ImageName"], format!("{image}@{v1}").as_str());
    // The followed branch is untouched: no revert pushed there, no force-push.
    assert_eq!(
        git(&bare, &["rev-parse", "main"]),
        merged,
        "{}",
        running.logs()
    );
    // The revert: a pull request of its own, its branch one commit on top of
    // the merged pin, the file as it was before the pin, with the trailer.
    let revert_pull = {
        let state = github.state.lock().unwrap();
        assert_eq!(
            state.pulls.len(),
            2,
            "{:?}; logs:\n{}",
            state.pulls,
            running.logs()
        );
        assert!(state.refused.is_empty(), "{:?}", state.refused);
        state.pulls[1].clone()
    };
    assert!(revert_pull.open);
    assert_eq!(revert_pull.base, "main");
    assert!(
        revert_pull.head.starts_with("magos/") && revert_pull.head.contains("rollback-1.1.0"),
        "{revert_pull:?}"
    );
    let branch = revert_pull.head.clone();
    assert_eq!(git(&bare, &["rev-parse", &format!("{branch}~1")]), merged);
    assert_eq!(
        git(&bare, &["show", &format!("{branch}:{file}")]),
        good.trim_end()
    );
    let message = git(&bare, &["log", "-1", "--format=%B", &branch]);
    let pin_subject = git(&bare, &["log", "-1", "--format=%s", &pin_commit]);
    assert!(
        message.starts_with(&format!("Revert \"{pin_subject}\"")),
        "{message}"
    );
    assert!(
        message.contains(&format!("This reverts commit {pin_commit}.")),
        "{message}"
    );
    let trailer = format!("Magos-Rollback: {image}@{v2}: its healthcheck reported unhealthy");
    assert!(message.ends_with(&trailer), "{message}");
    assert_eq!(revert_pull.title, format!("Revert \"{pin_subject}\""));
    assert!(revert_pull.body.contains(&trailer), "{}", revert_pull.body);
    let rejected = magos(tb, &config, &["rejected"]);
    assert!(
        String::from_utf8_lossy(&rejected.stdout).contains(&format!("{image}@{v2}  1.1.0")),
        "{}",
        show(&rejected)
    );

    // Until the revert is merged the stack is held on 1.0.0 and reported;
    // 1.1.0 is not proposed again, nor the revert twice.
    let finished = push_pass(&running, http_port);
    assert!(
        finished.contains("0/1 stacks in sync"),
        "{finished}; logs:\n{}",
        running.logs()
    );
    assert!(
        running.logs().contains(
            "failed its soak (its healthcheck reported unhealthy); running the last good image"
        ),
        "{}",
        running.logs()
    );
    assert_eq!(github.state.lock().unwrap().pulls.len(), 2);
    assert_eq!(git(&bare, &["rev-parse", "main"]), merged);
    assert_eq!(
        inspect(tb, &name).unwrap()["ImageName"],
        format!("{image}@{v1}").as_str()
    );

    // A person merges the revert: in sync again, nothing pinned.
    git(&other, &["fetch", "-q", "origin"]);
    git(
        &other,
        &["merge", "-q", "--ff-only", &format!("origin/{branch}")],
    );
    git(&other, &["push", "-q", "origin", "main"]);
    let finished = push_pass(&running, http_port);
    assert!(
        finished.ends_with("status=\"1/1 stacks in sync\""),
        "{finished}; logs:\n{}",
        running.logs()
    );
    assert_eq!(github.state.lock().unwrap().pulls.len(), 2);
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
    assert!(!logs.contains(TOKEN), "the token is in the logs");
}

/// A revert the remote refuses (a pre-receive hook that declines the first
/// two pushes carrying a `Magos-Rollback` trailer) is kept in the state
/// folder and tried again on each pass until it lands; meanwhile the host
/// runs the last good image, never the failed pin again.
#[test]
fn a_revert_whose_push_fails_is_pushed_on_a_later_pass() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgretry").replace('-', "_");
    let http_port = support::free_port();
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");
    let mut own = OwnRepository::new(tb, "mgretry");
    let v1 = own.push(&format!("{semver}:1.0.0"), "1.0.0");
    let image = own.image.clone();
    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    remote.push(&file, &scenario_stack(&image, "1.0.0", ""), "app at 1.0.0");
    // How many more rollback pushes the remote declines.
    let refusals = remote.bare.join("refusals");
    let hook = remote.bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nn=$(cat '{r}')\nwhile read old new ref; do\n  if [ \"$n\" -gt 0 ] && git log -1 --format=%B \"$new\" | grep -q '^Magos-Rollback: '; then\n    echo $((n - 1)) > '{r}'\n    echo 'declined by the test' >&2\n    exit 1\n  fi\ndone\nexit 0\n",
            r = refusals.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(&refusals, "2\n").unwrap();
    let config = write_config(dir.path(), &remote, &project, http_port);
    let mut running = Running::start(tb, dir.path(), &config, &project);
    running.wait_notice("READY=1", Duration::from_secs(180));
    let good = remote.pull(&file);
    let name = format!("{project}_app_1");

    let v2 = own.push(&format!("{semver}:1.2.0"), "1.1.0");
    let finished = push_pass(&running, http_port);
    assert!(finished.contains("1 rolled back"), "{}", running.logs());
    assert_eq!(std::fs::read_to_string(&refusals).unwrap().trim(), "1");
    assert!(
        running
            .logs()
            .contains("cannot revert the failed pin now; holding the last good image"),
        "{}",
        running.logs()
    );
    // The remote has the pin and no revert; the host runs 1.0.0.
    let pinned_head = git(&remote.bare, &["rev-parse", "main"]);
    assert!(
        git(&remote.bare, &["show", &format!("main:{file}")])
            .contains(&format!("{image}:1.1.0@{v2} #"))
    );
    let on_v1 = || {
        assert_eq!(
            inspect(tb, &name).unwrap()["ImageName"],
            format!("{image}@{v1}").as_str(),
            "{}",
            running.logs()
        );
    };
    on_v1();
    let pending = || -> serde_json::Value {
        let state = std::fs::read_to_string(dir.path().join("state/rollback.json")).unwrap();
        serde_json::from_str(&state).unwrap()
    };
    let state = pending();
    assert_eq!(
        state["reverts"].as_array().map(Vec::len),
        Some(1),
        "{state}"
    );
    assert_eq!(state["reverts"][0]["attempts"], 1, "{state}");

    // Declined again: the host stays on 1.0.0, the stack is reported.
    let finished = push_pass(&running, http_port);
    assert_eq!(std::fs::read_to_string(&refusals).unwrap().trim(), "0");
    assert!(
        finished.contains("running the last good image") && !finished.contains("rolled back"),
        "{finished}; logs:\n{}",
        running.logs()
    );
    on_v1();
    assert_eq!(git(&remote.bare, &["rev-parse", "main"]), pinned_head);
    let state = pending();
    assert_eq!(state["reverts"][0]["attempts"], 2, "{state}");

    // The next pass pushes it, on top of the pin.
    let finished = push_pass(&running, http_port);
    assert!(
        finished.ends_with("status=\"1/1 stacks in sync\""),
        "{finished}; logs:\n{}",
        running.logs()
    );
    assert_eq!(remote.pull(&file), good);
    assert_eq!(git(&remote.work, &["rev-parse", "HEAD~1"]), pinned_head);
    let message = git(&remote.work, &["log", "-1", "--format=%B"]);
    assert!(
        message.ends_with(&format!(
            "Magos-Rollback: {image}@{v2}: its healthcheck reported unhealthy"
        )),
        "{message}"
    );
    assert!(pending().get("reverts").is_none(), "{}", pending());
    on_v1();
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
}

/// A change a person committed is never reverted: a new environment that
/// makes the healthcheck fail is soaked, found unhealthy, and the service
/// runs its last good definition again while git keeps the person's commit;
/// the stack is reported failing with that commit and the receiver is told
/// once, until the person changes the definition again. The image is not
/// rejected: it did not change.
#[test]
fn a_failing_change_a_person_committed_runs_the_last_good_definition_and_stays_in_git() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgperson").replace('-', "_");
    let http_port = support::free_port();
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");
    let mut own = OwnRepository::new(tb, "mgperson");
    let v1 = own.push(&format!("{semver}:1.0.0"), "1.0.0");
    let image = own.image.clone();
    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    let good = scenario_stack(&image, &format!("1.0.0@{v1}"), "");
    remote.push(&file, &good, "app at 1.0.0");
    let config = write_config(dir.path(), &remote, &project, http_port);
    let (receiver, got) = crate::notify::receiver();
    with_notify(&config, receiver, "[unhealthy, rolled_back, pass_failed]");
    let mut running = Running::start(tb, dir.path(), &config, &project);
    running.wait_notice("READY=1", Duration::from_secs(180));
    assert_eq!(
        running.last_status(),
        "STATUS=1/1 stacks in sync",
        "{}",
        running.logs()
    );
    let name = format!("{project}_app_1");

    // A person's commit: the healthcheck fails under this environment.
    let bad = scenario_stack(
        &image,
        &format!("1.0.0@{v1}"),
        "    environment:\n      MAGOS_IMAGE_VERSION: \"1.2.0\"\n",
    );
    let theirs = remote.push(&file, &bad, "app: announce 1.2.0");
    let finished = push_pass(&running, http_port);
    assert!(
        finished.contains("1 rolled back")
            && finished.contains(&format!(
                "the repository's definition (commit {theirs}) failed its soak (its healthcheck reported unhealthy); running the last good definition"
            )),
        "{finished}; logs:\n{}",
        running.logs()
    );
    // The last good definition runs; git keeps the person's commit.
    let inspected = inspect(tb, &name).expect("the app container exists");
    assert_eq!(inspected["State"]["Running"], true, "{inspected}");
    assert_eq!(container_env(tb, &name, "MAGOS_IMAGE_VERSION"), "1.0.0");
    let id = inspected["Id"].as_str().unwrap().to_owned();
    assert_eq!(git(&remote.bare, &["rev-parse", "main"]), theirs);
    assert_eq!(remote.pull(&file), bad);
    let rejected = magos(tb, &config, &["rejected"]);
    assert!(
        !String::from_utf8_lossy(&rejected.stdout).contains(&v1),
        "the unchanged image is not rejected: {}",
        show(&rejected)
    );
    let events = wait_events(&got, 3, &running);
    assert_eq!(
        crate::notify::kinds(&got),
        ["unhealthy", "rolled_back", "pass_failed"],
        "{events:#?}"
    );
    for e in &events {
        assert_eq!(e["stack"], project.as_str(), "{e}");
    }
    assert_eq!(events[0]["commit"], theirs.as_str(), "{}", events[0]);
    assert_eq!(events[1]["commit"], theirs.as_str(), "{}", events[1]);
    assert!(
        events[2]["reason"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("(commit {theirs})")),
        "{}",
        events[2]
    );

    // The next pass keeps the hold: the container is left alone, nothing
    // new is sent.
    let finished = push_pass(&running, http_port);
    assert!(
        finished.contains("running the last good definition") && !finished.contains("rolled back"),
        "{finished}"
    );
    assert_eq!(inspect(tb, &name).unwrap()["Id"], id.as_str());

    // The person changes the definition again: applied, in sync.
    remote.push(&file, &good, "app: back to 1.0.0's environment");
    let finished = push_pass(&running, http_port);
    assert!(
        finished.ends_with("status=\"1/1 stacks in sync\""),
        "{finished}; logs:\n{}",
        running.logs()
    );
    // Nothing more was sent (a pass that SIGTERM interrupts may fail: the
    // receiver is read before the daemon stops).
    assert_eq!(
        crate::notify::kinds(&got),
        ["unhealthy", "rolled_back", "pass_failed"],
        "logs:\n{}",
        running.logs()
    );
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
}
