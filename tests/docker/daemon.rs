//! `magos run` with `runtime: docker`: the daemon against a bare git remote,
//! the test registry and the test bed's Docker Engine, with this test
//! playing systemd's side of the notify protocol. It pins and applies a
//! stack, re-applies it when Docker reports its container dead, applies a
//! pin bump pushed to the registry; and it rolls back an image whose
//! healthcheck fails (Docker runs the check; Magos reads its events and the
//! health in the container's inspect), reverting the pin with the
//! `Magos-Rollback:` trailer. The git remote, the notify protocol and the
//! rollback scenario are the Podman tests' own (`tests/common/daemon.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon_fixture::{Notified, Remote, push_pass, scenario_stack, write_config_with};
use crate::git_fixture::git;
use crate::support::{Bed, bed, show};

/// A name no other test (nor an earlier run) uses, in the characters compose
/// projects, containers and image repositories allow.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or(0);
    format!("{prefix}{}x{nanos:x}", std::process::id())
}

/// Polls `condition` every 100 ms until it holds or `limit` passed; whether
/// it held. For waiting on a state, never as a fixed delay.
fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `magos run` under test on the test bed's Docker Engine; dropping it kills
/// the daemon and takes the project down.
struct Running {
    bed: &'static Bed,
    daemon: Notified,
    project: String,
}

impl Running {
    fn start(bed: &'static Bed, dir: &Path, config: &Path, project: &str) -> Self {
        Running {
            bed,
            daemon: Notified::start(magos_command(bed, config), dir),
            project: project.to_owned(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.daemon.kill();
        let _ = self.bed.docker(&[
            "compose",
            "-p",
            &self.project,
            "down",
            "-v",
            "--remove-orphans",
            "-t",
            "0",
        ]);
    }
}

/// The magos binary with `config`, runtime docker (in the configuration) and
/// the test bed's engine.
fn magos_command(bed: &Bed, config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_magos"));
    cmd.args(["--config", config.to_str().unwrap()])
        .env_clear()
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", config.parent().unwrap())
        // The test's own runtime folder (the instance locks live there).
        .env("XDG_RUNTIME_DIR", config.parent().unwrap().join("run"))
        .env("DOCKER_HOST", &bed.docker_host)
        .env("NO_COLOR", "1");
    cmd
}

/// The daemon's configuration ([`write_config_with`]) with runtime docker and
/// the plain-HTTP test registry (Docker's own `insecure-registries` lists it
/// for the engine's pulls; Magos's registry checks are told here).
fn docker_config(bed: &Bed, dir: &Path, remote: &Remote, project: &str, port: u16) -> PathBuf {
    write_config_with(
        dir,
        remote,
        project,
        port,
        &format!(
            "runtime: docker\nregistries:\n  insecure: [\"{}\"]\n",
            bed.registry
        ),
    )
}

/// A repository of the test registry only this test uses, copied from the
/// test bed's semver image; its manifests and Docker's copies of its images
/// are removed on drop.
struct OwnImage {
    bed: &'static Bed,
    /// `<registry>/<unique name>`.
    image: String,
    digests: Vec<String>,
}

impl OwnImage {
    fn new(bed: &'static Bed, prefix: &str) -> Self {
        OwnImage {
            bed,
            image: format!("{}/{}", bed.registry, unique(prefix)),
            digests: Vec::new(),
        }
    }

    /// Copies the test bed's `magos/semver:<source>` (whose
    /// `MAGOS_IMAGE_VERSION` is `source`) to `tag`; the digest.
    fn push(&mut self, source: &str, tag: &str) -> String {
        let from = format!("docker://{}/magos/semver:{source}", self.bed.registry);
        let to = format!("docker://{}:{tag}", self.image);
        let out = Command::new("skopeo")
            .args([
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                &from,
                &to,
            ])
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy {from} {to}: {}",
            show(&out)
        );
        let repo = self.image.split_once('/').unwrap().1;
        let digest = self.bed.digest(repo, tag);
        self.digests.push(digest.clone());
        digest
    }
}

impl Drop for OwnImage {
    fn drop(&mut self) {
        let repo = self.image.split_once('/').unwrap().1.to_owned();
        for d in &self.digests {
            let _ = self
                .bed
                .docker(&["rmi", "-f", &format!("{}@{d}", self.image)]);
            let _ = Command::new("curl")
                .args(["-s", "-m", "10", "-X", "DELETE"])
                .arg(format!(
                    "http://{}/v2/{repo}/manifests/{d}",
                    self.bed.registry
                ))
                .output();
        }
    }
}

/// `docker inspect -f FORMAT NAME`, or `None` when it does not exist.
fn inspect(bed: &Bed, name: &str, format: &str) -> Option<String> {
    let o = bed.docker(&["inspect", "-f", format, name]);
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// A variable as the running container sees it.
fn container_env(bed: &Bed, name: &str, var: &str) -> String {
    bed.docker_ok(&["exec", name, "sh", "-c", &format!("echo ${var}")])
        .trim()
        .to_owned()
}

/// `GET http://127.0.0.1:<port><path>`: status and body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let o = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Waits until `/metrics` holds `want` (the figures follow a pass's events a
/// moment later, and a loaded machine can keep one request waiting); fails
/// with the last answer and the daemon's logs.
fn metrics_holding(port: u16, want: &str, daemon: &Notified) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = http_get(port, "/metrics");
        if code == 200 && body.contains(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics never held {want}; last answer {code}:\n{body}\nlogs:\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The daemon pins and applies a stack on Docker and reports it through
/// STATUS, `/readyz` and the metrics; a container Docker reports dead is
/// re-applied by a pass of its stack alone; a new tag pushed to the registry
/// is pinned, pushed to the remote and applied, with no drift left.
#[test]
fn run_applies_a_stack_on_docker_heals_a_killed_container_and_applies_a_pin_bump() {
    let Some(bed) = bed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = unique("mgdkrun");
    let http_port = crate::support::free_port();
    let mut own = OwnImage::new(bed, "mgdkrun");
    let v1 = own.push("1.0.0", "1.0.0");
    let image = own.image.clone();
    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    remote.push(
        &file,
        &format!(
            "services:\n  app:\n    image: {image}:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \">=1.0.0 <2.0.0\"}}}}\n    stop_signal: SIGKILL\n"
        ),
        "app at 1.0.0",
    );
    let config = docker_config(bed, dir.path(), &remote, &project, http_port);
    let mut running = Running::start(bed, dir.path(), &config, &project);
    running
        .daemon
        .wait_notice("READY=1", Duration::from_secs(180));
    assert_eq!(
        running.daemon.last_status(),
        "STATUS=1/1 stacks in sync, 1 updates pinned",
        "{}",
        running.daemon.logs()
    );
    assert!(
        remote
            .pull(&file)
            .contains(&format!("{image}:1.0.0@{v1} #"))
    );
    // Named and labelled as `docker compose` names them, by the pinned digest.
    let name = format!("{project}-app-1");
    assert_eq!(
        inspect(bed, &name, "{{.State.Running}} {{.Config.Image}}").as_deref(),
        Some(format!("true {image}@{v1}").as_str()),
        "{}",
        running.daemon.logs()
    );
    assert_eq!(container_env(bed, &name, "MAGOS_IMAGE_VERSION"), "1.0.0");
    // A second Magos on the same instance and engine is refused, naming the
    // Docker socket it would share.
    let second = magos_command(bed, &config)
        .args(["apply", "--repo", remote.work.to_str().unwrap()])
        .output()
        .expect("run magos apply");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "manages instance `{project}` on the Docker socket"
        )),
        "{stderr}"
    );
    let (ready, body) = http_get(http_port, "/readyz");
    assert_eq!(ready, 200, "{body}");
    metrics_holding(
        http_port,
        "magos_passes_total{result=\"ok\"} 1",
        &running.daemon,
    );
    metrics_holding(
        http_port,
        &format!("magos_stack_services{{stack=\"{project}\",state=\"in_sync\"}} 1"),
        &running.daemon,
    );

    // Docker reports the container dead: a pass of its stack alone starts it
    // again (no restart policy would).
    let started = inspect(bed, &name, "{{.State.StartedAt}}").unwrap();
    bed.docker_ok(&["kill", &name]);
    let healed = wait_until(Duration::from_secs(60), || {
        inspect(bed, &name, "{{.State.Running}} {{.State.StartedAt}}")
            .is_some_and(|s| s.starts_with("true ") && !s.ends_with(&started))
    });
    let logs = running.daemon.logs();
    assert!(
        healed,
        "the killed container was not re-applied; logs:\n{logs}"
    );
    assert!(
        logs.contains(&format!("container={name}"))
            && logs.contains("managed container event: re-applying")
            && logs.contains("re-applying the stacks of the container events"),
        "{logs}"
    );

    // A new release in the registry: pinned, pushed, applied, in sync.
    let v2 = own.push("1.2.3", "1.1.0");
    let finished = push_pass(&running.daemon, http_port);
    assert!(
        finished.ends_with("status=\"1/1 stacks in sync, 1 updates pinned\""),
        "{}",
        running.daemon.logs()
    );
    assert!(
        remote
            .pull(&file)
            .contains(&format!("{image}:1.1.0@{v2} #"))
    );
    assert_eq!(
        inspect(bed, &name, "{{.Config.Image}}").as_deref(),
        Some(format!("{image}@{v2}").as_str())
    );
    assert_eq!(container_env(bed, &name, "MAGOS_IMAGE_VERSION"), "1.2.3");
    metrics_holding(
        http_port,
        &format!("magos_stack_services{{stack=\"{project}\",state=\"in_sync\"}} 1"),
        &running.daemon,
    );
    let (code, logs) = running.daemon.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
}

/// The rollback scenario on Docker: 1.0.0 runs healthy; 1.1.0, whose
/// healthcheck fails, is pinned, applied, found unhealthy by Docker's own
/// check, replaced by 1.0.0 again (the same digest) and its pin reverted on
/// the remote with the `Magos-Rollback:` trailer.
#[test]
fn run_on_docker_rolls_back_an_unhealthy_pin_and_reverts_it_in_git() {
    let Some(bed) = bed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let project = unique("mgdkroll");
    let http_port = crate::support::free_port();
    let mut own = OwnImage::new(bed, "mgdkroll");
    let v1 = own.push("1.0.0", "1.0.0");
    let image = own.image.clone();
    let remote = Remote::new(dir.path());
    let file = format!("{project}/compose.yaml");
    remote.push(&file, &scenario_stack(&image, "1.0.0", ""), "app at 1.0.0");
    let config = docker_config(bed, dir.path(), &remote, &project, http_port);
    let mut running = Running::start(bed, dir.path(), &config, &project);
    running
        .daemon
        .wait_notice("READY=1", Duration::from_secs(180));
    assert_eq!(
        running.daemon.last_status(),
        "STATUS=1/1 stacks in sync, 1 updates pinned",
        "{}",
        running.daemon.logs()
    );
    let good = remote.pull(&file);
    assert!(good.contains(&format!("{image}:1.0.0@{v1} #")), "{good}");
    let name = format!("{project}-app-1");

    // 1.1.0 is the image the healthcheck fails on.
    let v2 = own.push("1.2.0", "1.1.0");
    let finished = push_pass(&running.daemon, http_port);
    assert!(
        finished.ends_with("status=\"1/1 stacks in sync, 1 updates pinned, 1 rolled back\""),
        "{}",
        running.daemon.logs()
    );
    // The host runs 1.0.0 again, by the same digest.
    assert_eq!(
        inspect(bed, &name, "{{.State.Running}} {{.Config.Image}}").as_deref(),
        Some(format!("true {image}@{v1}").as_str()),
        "{}",
        running.daemon.logs()
    );
    assert_eq!(container_env(bed, &name, "MAGOS_IMAGE_VERSION"), "1.0.0");
    // The remote: the pin, then its revert on top, the file as it was.
    assert_eq!(remote.pull(&file), good, "the revert restores the file");
    assert!(
        git(&remote.work, &["show", &format!("HEAD~1:{file}")])
            .contains(&format!("{image}:1.1.0@{v2} #")),
        "HEAD~1 is the pin of 1.1.0"
    );
    let message = git(&remote.work, &["log", "-1", "--format=%B"]);
    assert!(
        message.trim_end().ends_with(&format!(
            "Magos-Rollback: {image}@{v2}: its healthcheck reported unhealthy"
        )),
        "{message}"
    );
    metrics_holding(
        http_port,
        &format!(
            "magos_rollbacks_total{{stack=\"{project}\",service=\"app\",reason=\"unhealthy\"}} 1"
        ),
        &running.daemon,
    );
    let (code, logs) = running.daemon.stop();
    assert!(code.success(), "exit {code:?}; logs:\n{logs}");
}
