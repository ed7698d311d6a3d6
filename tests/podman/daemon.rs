//! `magos run` end to end, against a real git remote, the test registry and
//! rootless Podman, with this test playing systemd's side of the notify protocol
//! on a real datagram socket: the daemon pins an image, pushes the pin, deploys
//! the stack, reports READY/STATUS, pets the watchdog, answers on its HTTP
//! endpoint, runs a pass on a signed webhook, and stops cleanly on SIGTERM; a new
//! tag plus a commit end pinned, deployed and in sync; SIGTERM in the middle of
//! an apply leaves a state the next pass converges.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::git_fixture::git;
use crate::support::{self, Testbed, testbed};

use crate::daemon_fixture::{Notified, post};
pub(crate) use crate::daemon_fixture::{Remote, WEBHOOK_SECRET, announce_push};

/// `magos run` under test on the test bed's Podman ([`Notified`]). Dropping it
/// kills the daemon and removes the stack's objects, whatever the outcome.
pub(crate) struct Running<'a> {
    tb: &'a Testbed,
    daemon: Notified,
    project: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.daemon.kill();
        self.tb.remove_project(&self.project);
    }
}

impl std::ops::Deref for Running<'_> {
    type Target = Notified;
    fn deref(&self) -> &Notified {
        &self.daemon
    }
}

impl std::ops::DerefMut for Running<'_> {
    fn deref_mut(&mut self) -> &mut Notified {
        &mut self.daemon
    }
}

impl<'a> Running<'a> {
    /// Starts `magos run` with `config`, a notify socket and a watchdog, in `dir`.
    pub(crate) fn start(tb: &'a Testbed, dir: &Path, config: &Path, project: &str) -> Self {
        Running {
            tb,
            daemon: Notified::start(magos_command(tb, config), dir),
            project: project.to_owned(),
        }
    }
}

/// The magos binary with `config` and the test bed's Podman and registries.
pub(crate) fn magos_command(tb: &Testbed, config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_magos"));
    cmd.args(["--config", config.to_str().unwrap()])
        .env("CONTAINER_HOST", &tb.container_host)
        // The test's own runtime folder (the instance locks live there).
        .env("XDG_RUNTIME_DIR", config.parent().unwrap().join("run"))
        .env(
            "CONTAINERS_REGISTRIES_CONF",
            tb.require("MAGOS_TESTBED_REGISTRIES_CONF"),
        )
        .env("NO_COLOR", "1")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("MD_REPO")
        .env_remove("MAGOS_CONFIG")
        .env_remove("MD_CONFIG");
    cmd
}

/// Runs the magos binary to its end (see [`magos_command`]).
pub(crate) fn magos(tb: &Testbed, config: &Path, args: &[&str]) -> Output {
    magos_command(tb, config)
        .args(args)
        .output()
        .expect("run magos")
}

/// A configuration for `magos run` against `remote`: this test's instance, an
/// hourly interval (only the test's triggers run passes), the HTTP endpoint on
/// `http_port` with the webhook secret, and soaks of 2 seconds (a service's own
/// `x-magos.soak` says otherwise).
pub(crate) fn write_config(dir: &Path, remote: &Remote, project: &str, http_port: u16) -> PathBuf {
    crate::daemon_fixture::write_config_with(dir, remote, project, http_port, "")
}

/// Two daemons on one state folder, two on one Podman instance with different
/// state folders, `magos run --once` and `magos apply` beside a daemon: the second
/// is refused (exit 2) with an error naming the first one's pid; once the first
/// stops, the locks are free.
#[test]
fn a_second_magos_is_refused_naming_the_first_ones_pid() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mglock").replace('-', "_");
    let remote = Remote::new(dir.path());
    remote.push(
        &format!("{project}/compose.yaml"),
        &waiting_stack(tb, "1.0.0", true),
        "a stack",
    );
    let config = write_config(dir.path(), &remote, &project, support::free_port());
    let mut running = Running::start(tb, dir.path(), &config, &project);
    running.wait_notice("READY=1", Duration::from_secs(180));
    let pid = running.child.as_ref().unwrap().id();

    // A second daemon that is not refused would run on: it gets a minute.
    let refused = |args: &[&str], config: &Path, what: &str| {
        let mut child = magos_command(tb, config)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start magos");
        let exited =
            support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
                child.try_wait().unwrap().is_some()
            });
        if !exited {
            let _ = child.kill();
        }
        let o = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(exited, "magos {args:?} was not refused: {stderr}");
        assert_eq!(o.status.code(), Some(2), "magos {args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("another Magos (pid {pid})")) && stderr.contains(what),
            "magos {args:?}: {stderr}"
        );
    };
    let state = "uses the state folder";
    refused(&["run"], &config, state);
    refused(&["run", "--once"], &config, state);
    let podman = format!("manages instance `{project}` on the Podman socket");
    let work = remote.work.to_str().unwrap();
    refused(&["apply", "--repo", work], &config, &podman);
    // Another state folder, the same instance on the same Podman.
    let other = dir.path().join("other.yaml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &dir.path().join("state").display().to_string(),
        &dir.path().join("state-other").display().to_string(),
    );
    std::fs::write(&other, text).unwrap();
    refused(&["run"], &other, &podman);

    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
    let once = magos(tb, &other, &["run", "--once"]);
    assert!(
        once.status.success(),
        "after the first stopped: {}",
        String::from_utf8_lossy(&once.stderr)
    );
}

/// A container's libpod inspect, or `None` when it does not exist.
pub(crate) fn inspect(tb: &Testbed, name: &str) -> Option<serde_json::Value> {
    let r = tb
        .libpod("GET", &format!("/v5.0.0/libpod/containers/{name}/json"))
        .expect("ask libpod");
    match r.status {
        200 => Some(serde_json::from_slice(&r.body).expect("inspect JSON")),
        404 => None,
        // Podman resolves the name first and reads the container second: one
        // removed in between (the daemon is replacing it) is reported as a 500
        // whose cause is "no such container". It is gone all the same.
        500 if r.text().contains(r#""cause":"no such container""#) => None,
        s => panic!("inspect {name}: HTTP {s}: {}", r.text()),
    }
}

/// The container's id and whether it runs.
pub(crate) fn id_and_running(tb: &Testbed, name: &str) -> Option<(String, bool)> {
    inspect(tb, name).map(|i| {
        (
            i["Id"].as_str().unwrap_or_default().to_owned(),
            i["State"]["Running"].as_bool().unwrap_or(false),
        )
    })
}

/// A variable as the running container sees it.
pub(crate) fn container_env(tb: &Testbed, name: &str, var: &str) -> String {
    tb.podman_ok(&["exec", name, "sh", "-c", &format!("echo ${var}")])
        .trim()
        .to_owned()
}

/// A repository of the test registry that only this test uses; its manifests
/// and the local copies of its images are removed on drop.
pub(crate) struct OwnRepository<'a> {
    tb: &'a Testbed,
    /// `127.0.0.1:5000/<unique name>`.
    pub(crate) image: String,
    /// The tags pushed, with their digests.
    tags: Vec<(String, String)>,
}

impl<'a> OwnRepository<'a> {
    pub(crate) fn new(tb: &'a Testbed, prefix: &str) -> Self {
        OwnRepository {
            tb,
            image: format!("{}/{}", tb.registry, support::unique_name(prefix)),
            tags: Vec::new(),
        }
    }

    /// Copies `source` (an image of the test registry) to `tag` of this
    /// repository; returns the digest the registry gives it.
    pub(crate) fn push(&mut self, source: &str, tag: &str) -> String {
        let target = format!("{}:{tag}", self.image);
        let out = Command::new("skopeo")
            .args([
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                &format!("docker://{source}"),
                &format!("docker://{target}"),
            ])
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy {source} {target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let digest = self.tb.manifest_digest(&target);
        self.tags.push((tag.to_owned(), digest.clone()));
        digest
    }
}

impl Drop for OwnRepository<'_> {
    fn drop(&mut self) {
        let path = self
            .image
            .strip_prefix(&format!("{}/", self.tb.registry))
            .unwrap_or_default()
            .to_owned();
        for (tag, digest) in &self.tags {
            let _ = self
                .tb
                .podman_cli(&["rmi", "-f", &format!("{}@{digest}", self.image)]);
            let _ = self
                .tb
                .podman_cli(&["rmi", "-f", &format!("{}:{tag}", self.image)]);
            let _ =
                self.tb
                    .registry_request("DELETE", &format!("/v2/{path}/manifests/{digest}"), &[]);
        }
    }
}

#[test]
fn run_pins_deploys_notifies_and_stops_cleanly() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgrun").replace('-', "_");
    let web_port = support::free_port();
    let http_port = support::free_port();

    // The remote: one stack whose image follows the moving tag `1`.
    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    let image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    remote.push(
        &file,
        &format!(
            "services:\n  web:\n    image: {image} # {{\"magos\": {{\"policy\": \"latest\", \"tag\": \"1\"}}}}\n    ports:\n      - \"127.0.0.1:{web_port}:8080\"\n    stop_signal: SIGKILL\n"
        ),
        "a stack",
    );
    let config = write_config(dir.path(), &remote, &project, http_port);
    let mut running = Running::start(tb, dir.path(), &config, &project);

    // READY once the first pass finished, with its summary as STATUS.
    running.wait_notice("READY=1", Duration::from_secs(180));
    assert_eq!(
        running.last_status(),
        "STATUS=1/1 stacks in sync, 1 updates pinned",
        "{:?}",
        running.seen
    );

    // The pin is in the remote, and the pinned image serves the page.
    let compose = remote.pull(&file);
    let digest = tb.manifest_digest(image);
    assert!(
        compose.contains(&format!("{image}@{digest} # {{\"magos\"")),
        "{compose}"
    );
    assert!(git(&remote.work, &["log", "-1", "--format=%s"]).contains(&format!("{project}/web")));
    assert_eq!(support::http_get(web_port, "/").unwrap().status, 200);

    // The endpoint: ready, metrics, and the watchdog is petted.
    assert_eq!(support::http_get(http_port, "/readyz").unwrap().status, 200);
    assert_eq!(
        support::http_get(http_port, "/healthz").unwrap().status,
        200
    );
    let metrics = support::http_get(http_port, "/metrics").unwrap().text();
    assert!(
        metrics.contains("magos_passes_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "magos_stack_services{{stack=\"{project}\",state=\"in_sync\"}} 1"
        )),
        "{metrics}"
    );
    running.wait_notice("WATCHDOG=1", Duration::from_secs(5));

    // A signed push webhook runs a pass at once (the interval is an hour).
    announce_push(http_port);
    running.wait_notice("STATUS=1/1 stacks in sync", Duration::from_secs(60));
    let body = br#"{"ref":"refs/heads/main"}"#;
    let unsigned = post(http_port, "/hooks/github", "sha256=00", body);
    assert_eq!(unsigned, 401);

    // SIGTERM: STOPPING=1, exit 0.
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
    assert!(
        !logs.contains(WEBHOOK_SECRET),
        "the webhook secret leaked into the logs"
    );
}

#[test]
fn a_new_tag_and_a_commit_end_pinned_deployed_and_in_sync() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mge2e").replace('-', "_");
    let http_port = support::free_port();
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");

    // A repository of its own on the registry, at 1.0.0, and a stack following
    // its 1.x releases.
    let mut own = OwnRepository::new(tb, "mge2e");
    let v1 = own.push(&format!("{semver}:1.0.0"), "1.0.0");
    let image = own.image.clone();
    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    remote.push(
        &file,
        &format!(
            "services:\n  app:\n    image: {image}:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \">=1.0.0 <2.0.0\"}}}}\n    stop_signal: SIGKILL\n"
        ),
        "a stack at 1.0.0",
    );
    let config = write_config(dir.path(), &remote, &project, http_port);
    let mut running = Running::start(tb, dir.path(), &config, &project);
    running.wait_notice("READY=1", Duration::from_secs(180));
    assert_eq!(
        running.last_status(),
        "STATUS=1/1 stacks in sync, 1 updates pinned",
        "{:?}",
        running.seen
    );
    let compose = remote.pull(&file);
    assert!(
        compose.contains(&format!("image: {image}:1.0.0@{v1} # {{\"magos\"")),
        "{compose}"
    );

    // Someone's commit changing the stack, and a new release on the registry
    // (in this order, so no pass can pin before the commit is pushed).
    let changed = compose.replace(
        "    stop_signal: SIGKILL\n",
        "    environment:\n      STAGE: two\n    stop_signal: SIGKILL\n",
    );
    let theirs = remote.push(&file, &changed, "app: set STAGE");
    let v2 = own.push(&format!("{semver}:1.2.0"), "1.1.0");
    assert_ne!(v1, v2, "the new tag is a new image");

    // The push announcement runs a pass that pins 1.1.0, pushes the pin and
    // deploys it.
    announce_push(http_port);
    running.wait_notice(
        "STATUS=1/1 stacks in sync, 1 updates pinned",
        Duration::from_secs(120),
    );

    // The remote: the pin sits on top of that commit, which is kept as it was.
    let compose = remote.pull(&file);
    assert!(
        compose.contains(&format!("image: {image}:1.1.0@{v2} # {{\"magos\"")),
        "{compose}"
    );
    assert!(compose.contains("      STAGE: two\n"), "{compose}");
    assert_eq!(
        git(&remote.work, &["rev-parse", "HEAD~1"]).trim(),
        theirs,
        "the pin is one commit on top of the pushed one"
    );
    assert!(git(&remote.work, &["log", "-1", "--format=%s"]).contains(&format!("{project}/app")));

    // The container runs the new image, with the new commit's environment.
    let name = format!("{project}_app_1");
    let inspected = inspect(tb, &name).expect("the app container exists");
    assert_eq!(inspected["State"]["Running"], true, "{inspected}");
    let pinned = format!("{image}@{v2}");
    assert_eq!(inspected["ImageName"], pinned.as_str(), "{inspected}");
    let image_id = inspected["Image"].as_str().unwrap();
    let repo_digests = tb.podman_ok(&[
        "image",
        "inspect",
        "--format",
        "{{range .RepoDigests}}{{.}} {{end}}",
        image_id,
    ]);
    assert!(
        repo_digests.split_whitespace().any(|d| d == pinned),
        "{pinned} not among {repo_digests}"
    );
    assert_eq!(container_env(tb, &name, "MAGOS_IMAGE_VERSION"), "1.2.0");
    assert_eq!(container_env(tb, &name, "STAGE"), "two");

    // In sync: as the daemon's metrics say (a pass the recreation's container
    // events trigger may be rewriting them), and as `magos drift` finds.
    let in_sync = format!("magos_stack_services{{stack=\"{project}\",state=\"in_sync\"}} 1");
    let mut metrics = String::new();
    let reported = support::wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        metrics = support::http_get(http_port, "/metrics").unwrap().text();
        metrics.contains(&in_sync)
    });
    assert!(reported, "{metrics}");
    assert_in_sync(tb, &config, &remote, &project, &["app"]);

    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
}

/// `magos drift` on the remote's contents (the clone, pulled) exits 0 and
/// reports exactly `services` of `project`, each in sync.
fn assert_in_sync(tb: &Testbed, config: &Path, remote: &Remote, project: &str, services: &[&str]) {
    let repo = remote.work.to_str().unwrap();
    let drift = magos(tb, config, &["drift", "--repo", repo, "--output", "json"]);
    let stdout = String::from_utf8_lossy(&drift.stdout).into_owned();
    assert!(
        drift.status.success(),
        "magos drift: {stdout}\n{}",
        String::from_utf8_lossy(&drift.stderr)
    );
    let entries: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("drift JSON");
    let mut ours: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["stack"] == project)
        .map(|e| {
            (
                e["service"].as_str().unwrap_or("-"),
                e["state"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    ours.sort_unstable();
    let want: Vec<(&str, &str)> = services.iter().map(|s| (*s, "in_sync")).collect();
    assert_eq!(ours, want, "{stdout}");
}

/// Two services, `b` waiting for `a` to be healthy; `a` is healthy once
/// `/tmp/ready` exists in it, which its command writes only when `ready_at_start`.
/// Both run the semver test image `version`, pinned by digest.
fn waiting_stack(tb: &Testbed, version: &str, ready_at_start: bool) -> String {
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");
    let image = format!("{semver}:{version}");
    let image = format!("{image}@{}", tb.manifest_digest(&image));
    let command = if ready_at_start {
        r#"["sh", "-c", ": > /tmp/ready; exec sleep 2147483647"]"#
    } else {
        r#"["sleep", "2147483647"]"#
    };
    format!(
        "services:\n  a:\n    image: {image}\n    command: {command}\n    healthcheck:\n      test: [\"CMD\", \"cat\", \"/tmp/ready\"]\n      interval: 1h\n    stop_signal: SIGKILL\n  b:\n    image: {image}\n    depends_on:\n      a:\n        condition: service_healthy\n    stop_signal: SIGKILL\n"
    )
}

#[test]
fn sigterm_during_an_apply_leaves_a_state_the_next_pass_converges() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = support::unique_name("mgterm").replace('-', "_");
    let http_port = support::free_port();
    let (a, b) = (format!("{project}_a_1"), format!("{project}_b_1"));

    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    remote.push(&file, &waiting_stack(tb, "1.0.0", true), "a stack");
    let config = write_config(dir.path(), &remote, &project, http_port);
    let mut running = Running::start(tb, dir.path(), &config, &project);
    running.wait_notice("READY=1", Duration::from_secs(180));
    assert_eq!(
        running.last_status(),
        "STATUS=1/1 stacks in sync",
        "{:?}",
        running.seen
    );
    let (a_before, _) = id_and_running(tb, &a).expect("a runs");
    let (b_before, _) = id_and_running(tb, &b).expect("b runs");

    // Both services move to 1.2.0; the new `a` never turns healthy by itself, so
    // the apply replaces `a`, then waits before replacing `b`.
    remote.push(
        &file,
        &waiting_stack(tb, "1.2.0", false),
        "both services to 1.2.0",
    );
    announce_push(http_port);
    let replaced =
        support::wait_until(Duration::from_secs(120), Duration::from_millis(100), || {
            id_and_running(tb, &a).is_some_and(|(id, up)| id != a_before && up)
        });
    assert!(replaced, "a was not replaced; logs:\n{}", running.logs());
    assert_eq!(
        id_and_running(tb, &b).map(|(id, _)| id),
        Some(b_before.clone()),
        "b must still be the old container while a is not healthy"
    );

    // SIGTERM in the middle of the apply: STOPPING=1, a prompt exit 0.
    let (code, logs) = running.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");

    // Nothing half-replaced: the two services under their own names, no
    // replacement under its temporary name, `b` still the old one, running.
    let marker = magos::apply::execute::replacement_name("");
    let label = format!("label=com.docker.compose.project={project}");
    let names = tb.podman_ok(&["ps", "-a", "--filter", &label, "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = names.split_whitespace().collect();
    names.sort_unstable();
    assert_eq!(names, [a.as_str(), b.as_str()], "containers: {names:?}");
    assert!(names.iter().all(|n| !n.contains(&marker)));
    assert_eq!(
        id_and_running(tb, &b),
        Some((b_before, true)),
        "b was left as it was"
    );
    assert_eq!(container_env(tb, &b, "MAGOS_IMAGE_VERSION"), "1.0.0");

    // Once `a` is healthy, one more pass converges: in sync, exit 0.
    tb.podman_ok(&["exec", &a, "sh", "-c", ": > /tmp/ready"]);
    let once = magos(tb, &config, &["run", "--once"]);
    let summary = String::from_utf8_lossy(&once.stdout).into_owned();
    assert!(
        once.status.success(),
        "magos run --once: {summary}\n{}",
        String::from_utf8_lossy(&once.stderr)
    );
    assert_eq!(summary.trim(), "1/1 stacks in sync");
    assert_eq!(container_env(tb, &b, "MAGOS_IMAGE_VERSION"), "1.2.0");
    assert_in_sync(tb, &config, &remote, &project, &["a", "b"]);
}
