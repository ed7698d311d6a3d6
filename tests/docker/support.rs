//! The Docker side of the test bed: the rootful `dockerd` that
//! `scripts/testbed.sh` runs on a unix socket of its own
//! (`/run/magos-testbed/docker.sock`, `DOCKER_HOST` in `/run/magos-testbed/env`),
//! and the plain-HTTP registry its images come from (`MAGOS_TEST_REGISTRY`).
//!
//! The skip rule: every test starts with `let Some(bed) = support::bed() else {
//! return };`. When the engine is not available and `MAGOS_REQUIRE_DOCKER=1`,
//! [`bed`] panics with the reason (a missing engine is a failure, never a
//! silent pass); otherwise it prints `skipped: docker not available (…)` on
//! standard error and the test returns.
//!
//! Network rule: only 127.0.0.1 and unix sockets are reached.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The test bed's env file.
const ENV_FILE: &str = "/run/magos-testbed/env";

/// The running engine and registry.
#[derive(Debug)]
pub struct Bed {
    /// `unix:///…/docker.sock`.
    pub docker_host: String,
    /// The registry's `host:port`.
    pub registry: String,
}

/// The test bed, or `None` (after printing why) when Docker is not available
/// and `MAGOS_REQUIRE_DOCKER` is not `1`.
///
/// # Panics
/// When Docker is not available and `MAGOS_REQUIRE_DOCKER=1`.
pub fn bed() -> Option<&'static Bed> {
    static BED: OnceLock<Result<Bed, String>> = OnceLock::new();
    match BED.get_or_init(load) {
        Ok(b) => Some(b),
        Err(reason) => {
            if std::env::var("MAGOS_REQUIRE_DOCKER").as_deref() == Ok("1") {
                panic!(
                    "the docker test bed is required (MAGOS_REQUIRE_DOCKER=1) but not available: {reason}; start it as root with scripts/testbed.sh"
                );
            }
            let _ = writeln!(
                std::io::stderr(),
                "\nskipped: docker not available ({reason})"
            );
            None
        }
    }
}

fn load() -> Result<Bed, String> {
    let path = std::env::var("MAGOS_TESTBED_ENV").unwrap_or_else(|_| ENV_FILE.to_owned());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut vars: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    for key in ["DOCKER_HOST", "MAGOS_TEST_REGISTRY"] {
        if let Ok(v) = std::env::var(key) {
            vars.insert(key.to_owned(), v);
        }
    }
    let docker_host = vars
        .get("DOCKER_HOST")
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| format!("DOCKER_HOST is not set in {path}"))?;
    let registry = vars
        .get("MAGOS_TEST_REGISTRY")
        .cloned()
        .ok_or_else(|| format!("MAGOS_TEST_REGISTRY is not set in {path}"))?;
    let socket = docker_host
        .strip_prefix("unix://")
        .ok_or_else(|| format!("DOCKER_HOST={docker_host} is not a unix socket"))?;
    let ping = Command::new("curl")
        .args(["-s", "-m", "10", "--unix-socket", socket, "http://d/_ping"])
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if String::from_utf8_lossy(&ping.stdout).trim() != "OK" {
        return Err(format!("dockerd does not answer on {socket}"));
    }
    Ok(Bed {
        docker_host,
        registry,
    })
}

/// A command's status and output, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Bed {
    /// Runs the `docker` CLI (Debian's, `/usr/bin/docker`) against the engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/docker")
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", "/root")
            .env("DOCKER_HOST", &self.docker_host)
            .output()
            .expect("run docker")
    }

    /// `docker …`, which must succeed; its standard output.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.status.success(), "docker {args:?}: {}", show(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The digest the registry serves for `repo:tag` (an index's for a
    /// multi-arch tag), `sha256:…`.
    pub fn digest(&self, repo: &str, tag: &str) -> String {
        let url = format!("http://{}/v2/{repo}/manifests/{tag}", self.registry);
        let o = Command::new("curl")
            .args(["-sfI", "-m", "20", "-H"])
            .arg(
                "Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            )
            .arg(&url)
            .output()
            .expect("run curl");
        assert!(o.status.success(), "HEAD {url}: {}", show(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("docker-content-digest")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no digest for {url}"))
    }

    /// `$MAGOS_TEST_REGISTRY/<repo>:<tag>@sha256:…`.
    pub fn pinned(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}@{}", self.registry, self.digest(repo, tag))
    }

    /// Name → id of every container of a compose project (by its label).
    pub fn containers(&self, project: &str) -> BTreeMap<String, String> {
        self.docker_ok(&[
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
            "--format",
            "{{.Names}} {{.ID}}",
        ])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, i)| (n.to_owned(), i.to_owned()))
        .collect()
    }
}

/// A repository of stacks in a temporary folder, a configuration naming runtime
/// docker and an instance of its own, and the projects it brought up, taken
/// down (`docker compose down -v`, by label) when it is dropped.
pub struct Repo {
    dir: tempfile::TempDir,
    config: PathBuf,
    bed: &'static Bed,
    projects: Vec<String>,
}

impl Repo {
    pub fn new(bed: &'static Bed, instance: &str, projects: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join(".magos.yaml");
        std::fs::write(
            &config,
            format!("runtime: docker\napply:\n  instance: {instance}\n"),
        )
        .unwrap();
        let repo = Self {
            dir,
            config,
            bed,
            projects: projects.iter().map(|p| (*p).to_owned()).collect(),
        };
        repo.down();
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `<rel>` (creating its folder).
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }

    /// Removes a file.
    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel)).unwrap();
    }

    /// Runs `magos ARGS --repo DIR` with runtime docker on the test bed's engine.
    pub fn magos(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_magos"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .arg("--repo")
            .arg(self.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", "/root")
            .env("DOCKER_HOST", &self.bed.docker_host)
            .env("NO_COLOR", "1")
            .output()
            .expect("run magos")
    }

    /// `magos ARGS`, which must exit with `code`; its standard output.
    pub fn magos_exit(&self, args: &[&str], code: i32) -> String {
        let o = self.magos(args);
        assert_eq!(o.status.code(), Some(code), "magos {args:?}: {}", show(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn down(&self) {
        for p in &self.projects {
            let _ = self.bed.docker(&[
                "compose",
                "-p",
                p,
                "down",
                "-v",
                "--remove-orphans",
                "-t",
                "0",
            ]);
        }
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        self.down();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl http://127.0.0.1:<port>/`, retried until it answers or `limit` runs
/// out (a published port answers once the container's server listens).
pub fn curl(port: u16, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(100);
    loop {
        let o = Command::new("curl")
            .args(["-sf", "-m", "5", &format!("http://127.0.0.1:{port}/")])
            .output()
            .expect("run curl");
        if o.status.success() {
            return Some(String::from_utf8_lossy(&o.stdout).into_owned());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
