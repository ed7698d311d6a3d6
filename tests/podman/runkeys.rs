//! The run-time service keys applied natively (`magos apply`, the real binary,
//! the test bed's rootless Podman): each running container has what its key
//! asks, seen from inside (`/proc`, `/etc/resolv.conf`, `/dev/shm`) and in
//! `podman container inspect`; applying again changes nothing, `magos drift`
//! reports a changed key as `config_drift` (the config hash), and applying it
//! recreates that container only.
//!
//! Memory, CPU and process limits are seen only where Podman applies them: a
//! rootless Podman on cgroups v1 drops them (with a warning), so there the
//! test says so and checks them in the create request instead
//! (`apply::generate` unit tests).

use serde_json::Value;

use crate::applycli::{Cleanup, Repo, containers, drift_json, expect_exit, magos, pinned};
use crate::support::{self, Testbed, testbed};

fn inspect(tb: &Testbed, name: &str) -> Value {
    let out = tb.podman_ok(&["container", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

fn exec(tb: &Testbed, name: &str, script: &str) -> String {
    tb.podman_ok(&["exec", name, "sh", "-c", script])
        .trim()
        .to_owned()
}

#[test]
fn run_time_keys_reach_the_running_container() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("runkeys");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let yaml = |side_nofile: u32| {
        format!(
            "name: {project}
services:
  app:
    image: {httpd}
    stop_signal: SIGKILL
    expose: [\"3000\", \"4000/udp\"]
    shm_size: 32m
    sysctls:
      - net.core.somaxconn=1024
    ulimits:
      nofile: {{soft: 1000, hard: 2000}}
    security_opt: [\"no-new-privileges:true\"]
    group_add: [\"1234\"]
    init: true
    tty: true
    stdin_open: true
    ipc: shareable
    oom_score_adj: 500
    logging:
      driver: k8s-file
      options: {{max-size: 1m}}
    dns_search: [magos.test]
    dns_opt: [\"ndots:3\"]
    annotations: {{io.magos.test/annotation: \"yes\"}}
    mem_limit: 64m
    healthcheck:
      disable: false
  side:
    image: {httpd}
    stop_signal: SIGKILL
    privileged: true
    pid: \"service:app\"
    ipc: \"service:app\"
    links: [\"app:appalias\"]
    ulimits:
      nofile: {side_nofile}
    deploy:
      resources:
        limits: {{cpus: '0.5', pids: 64}}
      restart_policy: {{condition: on-failure, max_attempts: 2}}
"
        )
    };
    repo.write(tb, "stack/compose.yaml", &yaml(1000));
    let plan = magos(tb, &repo, None, &["plan", "--output", "json"]);
    // 1: there is work to do.
    expect_exit(&plan, 1);
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("\"compose_cli\": []"),
        "the stack must be native: {}",
        support::show(&plan)
    );
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    let app = format!("{project}_app_1");
    let side = format!("{project}_side_1");

    // From inside.
    assert_eq!(exec(tb, &app, "cat /proc/sys/net/core/somaxconn"), "1024");
    let limits = exec(tb, &app, "grep 'Max open files' /proc/1/limits");
    let words: Vec<&str> = limits.split_whitespace().collect();
    assert_eq!(&words[3..5], ["1000", "2000"], "{limits}");
    let shm = exec(tb, &app, "df -k /dev/shm | tail -1");
    assert_eq!(shm.split_whitespace().nth(1), Some("32768"), "{shm}");
    assert_eq!(exec(tb, &app, "cat /proc/1/comm"), "podman-init");
    assert_eq!(
        exec(tb, &app, "grep NoNewPrivs /proc/1/status | cut -f2"),
        "1"
    );
    assert_eq!(exec(tb, &app, "cat /proc/1/oom_score_adj"), "500");
    let groups = exec(tb, &app, "grep Groups /proc/1/status");
    assert!(groups.split_whitespace().any(|g| g == "1234"), "{groups}");
    let resolv = exec(tb, &app, "cat /etc/resolv.conf");
    assert!(resolv.contains("search magos.test"), "{resolv}");
    assert!(resolv.contains("ndots:3"), "{resolv}");
    assert!(
        exec(tb, &app, "readlink /proc/1/fd/0").starts_with("/dev/pts/"),
        "no terminal"
    );
    // `pid: service:app`: the side container sees app's processes.
    let ps = exec(tb, &side, "cat /proc/1/comm");
    assert_eq!(ps, "podman-init", "side does not share app's PID namespace");

    // As Podman reports it.
    let a = inspect(tb, &app);
    let s = inspect(tb, &side);
    let exposed = a["Config"]["ExposedPorts"].as_object().unwrap();
    assert!(
        exposed.contains_key("3000/tcp") && exposed.contains_key("4000/udp"),
        "{exposed:?}"
    );
    assert_eq!(a["Config"]["Tty"], true);
    assert_eq!(a["Config"]["OpenStdin"], true);
    assert_eq!(a["HostConfig"]["LogConfig"]["Type"], "k8s-file");
    assert_eq!(
        a["Config"]["Annotations"]["io.magos.test/annotation"],
        "yes"
    );
    assert!(
        a["HostConfig"]["SecurityOpt"]
            .as_array()
            .unwrap()
            .contains(&Value::from("no-new-privileges")),
        "{}",
        a["HostConfig"]["SecurityOpt"]
    );
    assert_eq!(s["HostConfig"]["Privileged"], true);
    let app_id = a["Id"].as_str().unwrap();
    assert_eq!(s["HostConfig"]["PidMode"], format!("container:{app_id}"));
    assert_eq!(s["HostConfig"]["IpcMode"], format!("container:{app_id}"));
    assert_eq!(s["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(s["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    let aliases = a["NetworkSettings"]["Networks"][format!("{project}_default")]["Aliases"]
        .as_array()
        .unwrap()
        .clone();
    assert!(aliases.contains(&Value::from("appalias")), "{aliases:?}");
    let cgroups = tb.podman_ok(&["info", "--format", "{{.Host.CgroupsVersion}}"]);
    if cgroups.trim() == "v2" {
        assert_eq!(a["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(s["HostConfig"]["NanoCpus"], 500_000_000);
        assert_eq!(s["HostConfig"]["PidsLimit"], 64);
    } else {
        eprintln!(
            "note: rootless Podman on cgroups {} drops memory, CPU and process limits; they are checked in the create request only",
            cgroups.trim()
        );
    }

    // Applying again changes nothing; changing a run-time key recreates.
    let before = containers(tb, &project);
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    assert_eq!(containers(tb, &project), before);
    let (_, states) = drift_json(tb, &repo);
    for service in ["app", "side"] {
        assert_eq!(
            states[&(project.clone(), service.to_owned())]["state"],
            "in_sync",
            "{service}"
        );
    }
    repo.write(tb, "stack/compose.yaml", &yaml(1500));
    // Drift sees the changed key before it is applied.
    let (_, states) = drift_json(tb, &repo);
    assert_eq!(
        states[&(project.clone(), "side".to_owned())]["state"],
        "config_drift"
    );
    assert_eq!(
        states[&(project.clone(), "app".to_owned())]["state"],
        "in_sync"
    );
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    let after = containers(tb, &project);
    assert_ne!(
        after[&side], before[&side],
        "a changed ulimit must recreate"
    );
    assert_eq!(after[&app], before[&app]);
    let ulimits = &inspect(tb, &side)["HostConfig"]["Ulimits"];
    assert!(
        ulimits
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["Name"] == "RLIMIT_NOFILE" && u["Soft"] == 1500 && u["Hard"] == 1500),
        "{ulimits}"
    );
}

/// `ulimits:` in podman-compose's text forms (its `ulimit` integration test:
/// `nofile=1001`, and a list of `name=soft[:hard]`) reach the containers, as
/// `ulimit -n` and `/proc/1/limits` show.
#[test]
fn ulimits_in_the_podman_text_forms_reach_the_container() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("ulimitstext");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    repo.write(
        tb,
        "stack/compose.yaml",
        &format!(
            "name: {project}
services:
  one:
    image: {httpd}
    ulimits: nofile=1001
  many:
    image: {httpd}
    ulimits:
      - nproc=1002:2002
      - nofile=1002
"
        ),
    );
    let plan = magos(tb, &repo, None, &["plan", "--output", "json"]);
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("\"compose_cli\": []"),
        "the stack must be native: {}",
        support::show(&plan)
    );
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    let one = format!("{project}_one_1");
    let many = format!("{project}_many_1");
    assert_eq!(exec(tb, &one, "ulimit -n"), "1001");
    assert_eq!(exec(tb, &many, "ulimit -n"), "1002");
    let limits = exec(tb, &many, "grep 'Max processes' /proc/1/limits");
    let words: Vec<&str> = limits.split_whitespace().collect();
    assert_eq!(&words[2..4], ["1002", "2002"], "{limits}");
}
