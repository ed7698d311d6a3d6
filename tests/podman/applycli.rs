//! `magos apply`, `magos plan` and `magos drift` as a user runs them: the real
//! binary against a compose repository written at test time, the real rootless
//! Podman of the test bed, images pinned by digest from the test registry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, Activated, Testbed, show, testbed};

const WAIT: Duration = Duration::from_secs(60);

/// A repository folder owned by the test user, and a config file naming a fresh
/// Magos instance.
pub(crate) struct Repo {
    dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
}

impl Repo {
    pub(crate) fn new(tb: &Testbed, instance: &str) -> Self {
        let dir = tb.user_dir("magos-applycli");
        let config = dir.path().join(".magos.yaml");
        std::fs::write(&config, format!("apply:\n  instance: {instance}\n")).unwrap();
        Self { dir, config }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating its folder), readable by the test user.
    pub(crate) fn write(&self, tb: &Testbed, rel: &str, text: &str) {
        self.write_bytes(tb, rel, text.as_bytes());
    }

    /// [`Repo::write`] for content that need not be UTF-8.
    pub(crate) fn write_bytes(&self, tb: &Testbed, rel: &str, text: &[u8]) {
        let path = self.path().join(rel);
        let parent = path.parent().unwrap();
        std::fs::create_dir_all(parent).unwrap();
        let _ = std::os::unix::fs::chown(parent, Some(tb.uid), Some(tb.gid));
        let tmp = path.with_extension("tmp-write");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
}

/// Runs the magos binary with the test bed's socket (or `socket`), no colours.
pub(crate) fn magos(tb: &Testbed, repo: &Repo, socket: Option<&str>, args: &[&str]) -> Output {
    let host = socket.map_or_else(|| tb.container_host.clone(), |s| format!("unix://{s}"));
    Command::new(env!("CARGO_BIN_EXE_magos"))
        .arg("--config")
        .arg(&repo.config)
        .args(args)
        .arg("--repo")
        .arg(repo.path())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", "/root")
        .env("CONTAINER_HOST", host)
        .env("NO_COLOR", "1")
        .output()
        .expect("run magos")
}

pub(crate) fn expect_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}", show(o));
}

pub(crate) fn pinned(tb: &Testbed, image: &str) -> String {
    let digest = tb.manifest_digest(image);
    format!("{image}@{digest}")
}

/// Name → id of every container of a project.
pub(crate) fn containers(tb: &Testbed, project: &str) -> BTreeMap<String, String> {
    let out = tb.podman_ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Names}} {{.ID}}",
    ]);
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, i)| (n.to_owned(), i.to_owned()))
        .collect()
}

/// Removes every container, network and volume of the projects, and named
/// containers, whatever the outcome.
pub(crate) struct Cleanup<'a> {
    pub(crate) tb: &'a Testbed,
    pub(crate) projects: Vec<String>,
    pub(crate) names: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for p in &self.projects {
            self.tb.remove_project(p);
            let _ = self
                .tb
                .podman_cli(&["image", "rm", "-f", &format!("{p}_app")]);
        }
        for n in &self.names {
            let _ = self.tb.podman_cli(&["rm", "-f", "-t", "0", n]);
        }
    }
}

pub(crate) fn get_ok(port: u16) {
    let ok = support::wait_until(WAIT, Duration::from_millis(100), || {
        support::http_get(port, "/").is_ok_and(|r| r.status == 200)
    });
    assert!(ok, "GET http://127.0.0.1:{port}/ never answered 200");
}

pub(crate) fn drift_json(tb: &Testbed, repo: &Repo) -> (i32, BTreeMap<(String, String), Value>) {
    let o = magos(tb, repo, None, &["drift", "--output", "json"]);
    let code = o.status.code().unwrap_or(-1);
    let entries: Vec<Value> = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("drift JSON: {e}\n{}", show(&o)));
    let map = entries
        .into_iter()
        .map(|e| {
            for key in [
                "stack",
                "service",
                "state",
                "expected",
                "actual",
                "container",
            ] {
                assert!(e.get(key).is_some(), "`{key}` missing from {e}");
            }
            let service = e["service"].as_str().unwrap_or("-").to_owned();
            let key = match e["state"].as_str() {
                Some("orphan") => format!("orphan:{}", e["container"].as_str().unwrap_or("")),
                _ => service,
            };
            ((e["stack"].as_str().unwrap().to_owned(), key), e)
        })
        .collect();
    (code, map)
}

fn stack_yaml(tb: &Testbed, project: &str, web: u16, front: u16, worker_version: &str) -> String {
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");
    let worker = pinned(tb, &format!("{semver}:{worker_version}"));
    format!(
        "name: {project}
services:
  web:
    image: {httpd}
    ports: [\"127.0.0.1:{web}:8080\"]
    volumes: [data:/data]
    networks: [back]
    stop_signal: SIGKILL
    healthcheck:
      test: [CMD, wget, -q, -O, /dev/null, \"http://127.0.0.1:8080/\"]
      interval: 1s
      timeout: 5s
      retries: 3
  front:
    image: {httpd}
    ports:
      - target: 8080
        published: \"{front}\"
        host_ip: 127.0.0.1
    networks:
      back:
        aliases: [www]
    depends_on:
      web: {{condition: service_healthy}}
    stop_signal: SIGKILL
  worker:
    image: {worker}
    networks: [back]
    stop_signal: SIGKILL
networks:
  back:
volumes:
  data:
"
    )
}

#[test]
fn apply_converges_is_idempotent_and_drift_names_each_state() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("applycli");
    let bystander = support::unique_name("applycli-bystander");
    let orphan = support::unique_name("applycli-orphan");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![bystander.clone(), orphan.clone()],
    };
    let repo = Repo::new(tb, &project);
    let (web, front) = (support::free_port(), support::free_port());
    repo.write(
        tb,
        "web/compose.yaml",
        &stack_yaml(tb, &project, web, front, "1.0.0"),
    );

    // Plan shows the work; apply does it.
    let plan = magos(tb, &repo, None, &["plan"]);
    expect_exit(&plan, 1);
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains(&format!("create {project}_web_1")),
        "{}",
        show(&plan)
    );
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    get_ok(web);
    get_ok(front);
    let first = containers(tb, &project);
    assert_eq!(first.len(), 3, "{first:?}");

    // Again: nothing changes.
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    assert_eq!(
        containers(tb, &project),
        first,
        "a no-op apply recreated something"
    );
    expect_exit(&magos(tb, &repo, None, &["plan"]), 0);
    let (code, d) = drift_json(tb, &repo);
    assert_eq!(code, 0, "{d:?}");
    assert!(d.values().all(|e| e["state"] == "in_sync"), "{d:?}");

    // A pin bump recreates only that service.
    repo.write(
        tb,
        "web/compose.yaml",
        &stack_yaml(tb, &project, web, front, "1.2.0"),
    );
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    let bumped = containers(tb, &project);
    let worker = format!("{project}_worker_1");
    for (name, id) in &first {
        if name == &worker {
            assert_ne!(&bumped[name], id, "the bumped worker kept its container");
        } else {
            assert_eq!(&bumped[name], id, "{name} was recreated by another's bump");
        }
    }

    // Tamper by hand: stop front, remove worker, replace web, add an orphan and a
    // bystander.
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    tb.podman_ok(&["stop", "-t", "0", &format!("{project}_front_1")]);
    tb.podman_ok(&["rm", "-f", "-t", "0", &worker]);
    tb.podman_ok(&["rm", "-f", "-t", "0", &format!("{project}_web_1")]);
    let project_label = format!("com.docker.compose.project={project}");
    tb.podman_ok(&[
        "run",
        "-d",
        "--name",
        &format!("{project}_web_1"),
        "--label",
        &project_label,
        "--label",
        "com.docker.compose.service=web",
        &httpd,
    ]);
    tb.podman_ok(&[
        "run",
        "-d",
        "--name",
        &orphan,
        "--label",
        &project_label,
        "--label",
        "com.docker.compose.service=gone",
        &httpd,
    ]);
    tb.podman_ok(&["run", "-d", "--name", &bystander, &httpd]);

    let (code, d) = drift_json(tb, &repo);
    assert_eq!(code, 1, "{d:#?}");
    let state = |key: &str| {
        d[&(project.clone(), key.to_owned())]["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(state("web"), "config_drift");
    assert_eq!(state("front"), "stopped");
    assert_eq!(state("worker"), "missing");
    assert_eq!(state(&format!("orphan:{orphan}")), "orphan");
    assert!(d.keys().all(|(_, k)| !k.contains(&bystander)), "{d:#?}");
    let table = magos(tb, &repo, None, &["drift"]);
    expect_exit(&table, 1);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("STACK"), "{text}");
    assert!(
        text.contains("config_drift") && text.contains("missing"),
        "{text}"
    );

    // Apply repairs all of it, removes the orphan and leaves the bystander.
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    let after = containers(tb, &project);
    assert!(!after.contains_key(&orphan), "{after:?}");
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(
        tb.podman_ok(&["ps", "-a", "--format", "{{.Names}}"])
            .lines()
            .any(|n| n == bystander)
    );
    get_ok(web);
    get_ok(front);
    let (code, d) = drift_json(tb, &repo);
    assert_eq!(code, 0, "{d:#?}");

    // A service removed from the file is pruned, unless pruning is off.
    let text = stack_yaml(tb, &project, web, front, "1.2.0");
    let cut = text.find("  worker:").unwrap();
    let end = text.find("networks:\n  back:").unwrap();
    let without_worker = format!("{}{}", &text[..cut], &text[end..]);
    repo.write(tb, "web/compose.yaml", &without_worker);
    expect_exit(&magos(tb, &repo, None, &["apply", "--no-prune"]), 0);
    assert!(containers(tb, &project).contains_key(&worker));
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    assert!(!containers(tb, &project).contains_key(&worker));
}

#[test]
fn compose_cli_fallback_and_podman_compose_sees_native_containers() {
    let Some(tb) = testbed() else { return };
    let native = support::unique_name("applycli-native");
    let built = support::unique_name("applycli-built");
    let _cleanup = Cleanup {
        tb,
        projects: vec![native.clone(), built.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &native);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let (p1, p2) = (support::free_port(), support::free_port());
    repo.write(
        tb,
        "native/compose.yaml",
        &format!(
            "name: {native}\nservices:\n  app:\n    image: {httpd}\n    ports: [\"127.0.0.1:{p1}:8080\"]\n    stop_signal: SIGKILL\n"
        ),
    );
    repo.write(tb, "built/Containerfile", &format!("FROM {httpd}\n"));
    repo.write(
        tb,
        "built/compose.yaml",
        &format!(
            "name: {built}\nx-magos:\n  apply: compose\nservices:\n  app:\n    build: .\n    ports: [\"127.0.0.1:{p2}:8080\"]\n    stop_signal: SIGKILL\n"
        ),
    );
    let plan = magos(tb, &repo, None, &["plan"]);
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains(&format!(
            "{built}: podman-compose up -d (the stack asks for it)"
        )),
        "{}",
        show(&plan)
    );
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.contains("applying with the compose CLI, as the stack asks"),
        "the log does not say why: {}",
        show(&o)
    );
    get_ok(p1);
    get_ok(p2);

    // podman-compose sees the natively created container as its own.
    let ps = Command::new("podman-compose")
        .args(["-p", &native, "ps"])
        .current_dir(repo.path().join("native"))
        .env("CONTAINER_HOST", &tb.container_host)
        .output()
        .expect("run podman-compose");
    assert!(ps.status.success(), "{}", show(&ps));
    assert!(
        String::from_utf8_lossy(&ps.stdout).contains(&format!("{native}_app_1")),
        "{}",
        show(&ps)
    );

    // Drift of the CLI stack: running and present.
    let (code, d) = drift_json(tb, &repo);
    assert_eq!(code, 0, "{d:#?}");
    assert_eq!(d[&(built.clone(), "app".to_owned())]["state"], "in_sync");
    tb.podman_ok(&["stop", "-t", "0", &format!("{built}_app_1")]);
    let (code, d) = drift_json(tb, &repo);
    assert_eq!(code, 1);
    assert_eq!(d[&(built.clone(), "app".to_owned())]["state"], "stopped");
    // A second apply brings it back and leaves the native stack alone.
    let before = containers(tb, &native);
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    assert_eq!(containers(tb, &native), before);
    get_ok(p2);

    // A stack folder deleted from the repository: its containers go, the
    // compose-CLI stack's stay.
    let built_before = containers(tb, &built);
    std::fs::remove_dir_all(repo.path().join("native")).unwrap();
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    assert!(containers(tb, &native).is_empty());
    assert_eq!(containers(tb, &built), built_before);
}

/// A service Podman refuses (a bind of a host path that does not exist) fails
/// with the service depending on it; the stack's other services, declared
/// before and after it, are still applied, and the error names both.
#[test]
fn a_service_podman_refuses_fails_alone() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("applycli-refused");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let image = pinned(
        tb,
        &format!("{}:1.0.0", tb.require("MAGOS_TEST_IMAGE_SEMVER")),
    );
    let service = |name: &str, extra: &str| {
        format!("  {name}:\n    image: {image}\n    stop_signal: SIGKILL\n{extra}")
    };
    let yaml = format!(
        "name: {project}\nservices:\n{}{}{}{}",
        service("first", ""),
        service(
            "bad",
            &format!("    volumes: [\"/nonexistent-{project}:/data\"]\n")
        ),
        service("follower", "    depends_on: [bad]\n"),
        service("last", ""),
    );
    repo.write(tb, "app/compose.yaml", &yaml);
    let o = magos(tb, &repo, None, &["apply", "--output", "json"]);
    expect_exit(&o, 2);
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    let error = report["stacks"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("service `bad`: create ")
            && error.contains("; service `follower`: dependency `bad` failed")
            && !error.contains("`first`")
            && !error.contains("`last`"),
        "{}",
        show(&o)
    );
    for name in ["first", "last"] {
        let running = tb.podman_ok(&[
            "inspect",
            "--format",
            "{{.State.Running}}",
            &format!("{project}_{name}_1"),
        ]);
        assert_eq!(running.trim(), "true", "{name}: {}", show(&o));
    }
    assert!(!containers(tb, &project).contains_key(&format!("{project}_follower_1")));
}

/// podman-compose exits 0 when the image of a service cannot be pulled: the
/// stack is still reported failed, naming the service, and a good compose-CLI
/// stack beside it is applied.
#[test]
fn a_compose_cli_stack_whose_service_never_came_up_fails() {
    let Some(tb) = testbed() else { return };
    let broken = support::unique_name("applycli-nocompose");
    let good = support::unique_name("applycli-compose");
    let _cleanup = Cleanup {
        tb,
        projects: vec![broken.clone(), good.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &broken);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let missing = format!("{}/magos/{broken}:1", tb.registry);
    repo.write(
        tb,
        "broken/compose.yaml",
        &format!(
            "name: {broken}\nx-magos:\n  apply: compose\nservices:\n  web:\n    image: {httpd}\n    stop_signal: SIGKILL\n  ghost:\n    image: {missing}\n"
        ),
    );
    repo.write(
        tb,
        "good/compose.yaml",
        &format!(
            "name: {good}\nx-magos:\n  apply: compose\nservices:\n  web:\n    image: {httpd}\n    stop_signal: SIGKILL\n"
        ),
    );
    let o = magos(tb, &repo, None, &["apply", "--output", "json"]);
    expect_exit(&o, 2);
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    let stack = |name: &str| {
        report["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stack"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report}"))
            .clone()
    };
    let error = stack(&broken)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("service `ghost` has no container") && !error.contains("`web`"),
        "{}",
        show(&o)
    );
    assert!(stack(&good)["error"].is_null(), "{}", show(&o));
    assert_eq!(containers(tb, &good).len(), 1);
}

#[test]
fn an_observed_stack_is_reported_and_never_changed() {
    let Some(tb) = testbed() else { return };
    let live = support::unique_name("applycli-live");
    let watched = support::unique_name("applycli-observed");
    let _cleanup = Cleanup {
        tb,
        projects: vec![live.clone(), watched.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &live);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let stack = |rev: &str, observe: bool| {
        format!(
            "name: {watched}\nservices:\n  app:\n    image: {httpd}\n    environment: {{REV: \"{rev}\"}}\n    stop_signal: SIGKILL\nx-magos:\n  observe: {observe}\n"
        )
    };
    repo.write(
        tb,
        "live/compose.yaml",
        &format!("name: {live}\nservices:\n  app:\n    image: {httpd}\n    stop_signal: SIGKILL\n"),
    );
    repo.write(tb, "watched/compose.yaml", &stack("1", true));

    // Observed from the start: nothing is created for it, drift says so.
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("observed {watched}: not applied")),
        "{}",
        show(&o)
    );
    assert_eq!(containers(tb, &live).len(), 1);
    assert!(containers(tb, &watched).is_empty());
    let o = magos(tb, &repo, None, &["plan"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("{watched}: observed")),
        "{}",
        show(&o)
    );
    let o = magos(tb, &repo, None, &["drift", "--output", "json"]);
    expect_exit(&o, 1);
    let entries: Value = serde_json::from_slice(&o.stdout).unwrap();
    let state = |entries: &Value| {
        entries
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["stack"] == watched.as_str())
            .map(|e| e["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state(&entries).as_deref(), Some("missing"), "{entries}");

    // Applied once, then observed again: a change is reported, not applied,
    // and its container is never pruned.
    repo.write(tb, "watched/compose.yaml", &stack("1", false));
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    let before = containers(tb, &watched);
    assert_eq!(before.len(), 1);
    repo.write(tb, "watched/compose.yaml", &stack("2", true));
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    assert_eq!(
        containers(tb, &watched),
        before,
        "an observed stack was changed"
    );
    let o = magos(tb, &repo, None, &["drift", "--output", "json"]);
    expect_exit(&o, 1);
    let entries: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(state(&entries).as_deref(), Some("in_sync"), "{entries}");
}

#[test]
fn a_failing_stack_fails_alone() {
    let Some(tb) = testbed() else { return };
    let good = support::unique_name("applycli-good");
    let bad = support::unique_name("applycli-bad");
    let _cleanup = Cleanup {
        tb,
        projects: vec![good.clone(), bad.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &good);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let port = support::free_port();
    repo.write(
        tb,
        "a-bad/compose.yaml",
        &format!("name: {bad}\nservices:\n  app:\n    image: {httpd}\n    ports: [\"127.0.0.1:99999:8080\"]\n"),
    );
    repo.write(
        tb,
        "b-good/compose.yaml",
        &format!("name: {good}\nservices:\n  app:\n    image: {httpd}\n    ports: [\"127.0.0.1:{port}:8080\"]\n    stop_signal: SIGKILL\n"),
    );
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 2);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("FAILED {bad}")) && out.contains("99999"),
        "{}",
        show(&o)
    );
    get_ok(port);
    assert!(containers(tb, &bad).is_empty());
}

#[test]
fn a_missing_socket_says_how_to_enable_it() {
    let Some(tb) = testbed() else { return };
    let repo = Repo::new(tb, "nosocket");
    let o = magos(tb, &repo, Some("/nonexistent/podman.sock"), &["drift"]);
    expect_exit(&o, 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("systemctl --user enable --now podman.socket"),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "{err}");
}

#[test]
fn apply_succeeds_across_a_restarted_api_service() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("applycli-restart");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let port = support::free_port();
    repo.write(
        tb,
        "s/compose.yaml",
        &format!("name: {project}\nservices:\n  app:\n    image: {httpd}\n    ports: [\"127.0.0.1:{port}:8080\"]\n    stop_signal: SIGKILL\n"),
    );
    let mut service = Activated::start(tb, &repo.path().join("api.sock"));
    let socket = service.socket().to_string_lossy().into_owned();
    expect_exit(&magos(tb, &repo, Some(&socket), &["apply"]), 0);
    get_ok(port);
    let ids = containers(tb, &project);
    service.wait_exit();
    service.spawn();
    expect_exit(&magos(tb, &repo, Some(&socket), &["apply"]), 0);
    assert_eq!(containers(tb, &project), ids);
    service.wait_exit();
    service.spawn();
    expect_exit(&magos(tb, &repo, Some(&socket), &["drift"]), 0);
}

/// `magos lint` runs the conversion `plan` runs: a bad port, a bad volume and a
/// bad annotation are reported by both, the same, each on its own line with its
/// file, line and column.
#[test]
fn lint_and_plan_print_the_same_diagnostics() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("applycli-lint");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let httpd = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    repo.write(
        tb,
        "web/compose.yaml",
        &format!(
            "name: {project}\nservices:\n  app:\n    image: {httpd} # {{\"magos\": {{\"policy\": \"nope\"}}}}\n    ports:\n      - \"127.0.0.1:80800:8080\"\n    volumes:\n      - \"data:relative/path\"\nvolumes:\n  data: {{}}\n"
        ),
    );
    let diagnostics = |out: &str| -> BTreeSet<String> {
        out.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("web/compose.yaml:") && !l.contains(": note: "))
            .map(str::to_owned)
            .collect()
    };
    let lint = magos(tb, &repo, None, &["lint"]);
    expect_exit(&lint, 1);
    let linted = diagnostics(&String::from_utf8_lossy(&lint.stdout));
    let plan = magos(tb, &repo, None, &["plan"]);
    let planned = diagnostics(&String::from_utf8_lossy(&plan.stdout));
    assert_eq!(
        linted,
        planned,
        "lint:\n{}\nplan:\n{}",
        show(&lint),
        show(&plan)
    );
    // Each on its own line, with its file, line and column: the annotation at
    // its `image:` line, a port at `ports:`, a volume at `volumes:`.
    let line_of = |needle: &str| -> String {
        let found: Vec<&String> = linted.iter().filter(|d| d.contains(needle)).collect();
        assert_eq!(
            found.len(),
            1,
            "one diagnostic with `{needle}`: {linted:#?}"
        );
        found[0].split(':').nth(1).unwrap().to_owned()
    };
    assert_eq!(line_of("unknown policy `nope`"), "4", "{linted:#?}");
    assert_eq!(line_of("`80800` is not a port number"), "5", "{linted:#?}");
    assert_eq!(
        line_of("the target must be an absolute path"),
        "7",
        "{linted:#?}"
    );
    assert_eq!(linted.len(), 3, "{linted:#?}");
}

/// `magos plan` shows, with file and line, the keys Magos leaves to the compose
/// CLI and where it deliberately differs from podman-compose; `apply` does not
/// repeat them.
#[test]
fn plan_notes_the_keys_magos_does_not_apply_with_file_and_line() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("applycli-notes");
    let repo = Repo::new(tb, &project);
    repo.write(
        tb,
        "notes/compose.yaml",
        &format!(
            "name: {project}\nservices:\n  web:\n    image: {image}\n    depends_on: [db]\n    deploy: {{mode: global}}\n  db:\n    image: {image}\n",
            image = format!("{}/magos/httpd:1", tb.registry)
        ),
    );
    let plan = magos(tb, &repo, None, &["plan"]);
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    for line in [
        "notes/compose.yaml:2:1: note: podman-compose puts the project's containers in a pod",
        "notes/compose.yaml:5:5: note: service `web`: `depends_on`: podman-compose also passes `--requires`",
        "notes/compose.yaml:6:5: note: service `web`: `deploy.mode` is not applied by Magos",
    ] {
        assert!(text.contains(line), "{line}\nnot in:\n{}", show(&plan));
    }
    let plan = magos(tb, &repo, None, &["plan", "--output", "json"]);
    let v: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let notes = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "note")
        .count();
    assert_eq!(notes, 3, "{}", show(&plan));
}
