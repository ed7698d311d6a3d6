//! Conformance with `docker compose` on real compose files: every stack of the
//! corpus (`tests/corpus/`, see its README) without `build:` is applied by
//! `docker compose up -d` and by `magos apply` with `runtime: docker`, one after
//! the other, on the test bed's Docker Engine, and the containers each made are
//! compared field by field through `docker container inspect`: the fields of
//! the Podman comparison (`tests/podman/conformance.rs`), which Docker reports
//! under the same names (`tests/common/conformance.rs` holds the corpus, the
//! fields, the comparison and the ratchet for both).
//!
//! Every run holds a ratchet: the stacks of [`RATCHET`], which Magos applies
//! natively on Docker today, must still be applied natively with at least the
//! recorded number of fields equal to `docker compose`'s. With
//! `MAGOS_CONFORMANCE=1` it takes every stack without `build:` (it holds the
//! engine and the host's ports for minutes: not beside a benchmark);
//! `MAGOS_CONFORMANCE_ONLY=a,b` limits the run to those folders and
//! `MAGOS_CONFORMANCE_REPORT=FILE` writes the per-file report to FILE. The full
//! run asserts at least 98 % of the compared fields equal and none refused; a
//! stack the Docker mapping hands to `docker compose` (what a Docker Engine
//! cannot express: Podman-only modes and options, secrets other than files) is
//! reported by name, not failed: the compose CLI applies it as `docker
//! compose` would.
//!
//! Per stack: a fresh copy of its folder under a unique name; `magos plan` (the
//! route and the project); `docker compose -p <name>-dc up -d` in it (`-p` the
//! file's `name:` when it has one); inspect; `docker compose down` by project
//! (containers, networks, volumes); a fresh copy at the same path; `magos
//! apply`; inspect; down. Containers are paired by service and container number.
//!
//! Skipped: only the rows of docs/docker.md's "Differences from docker
//! compose", each where it shows exactly ([`listed_difference`]), and what
//! changes from run to run whatever the tool (as for Podman: ids, the copy's
//! folder, a host port the file leaves to the engine, addresses the file does
//! not fix).
//!
//! The corpus's `setup:` and `cleanup:` lines speak Podman (`podman volume
//! create`, `podman build`); here they run with a `podman` first on `PATH` that
//! does the same with the `docker` CLI ([`PODMAN_SHIM`]). `podman secret`
//! lines do nothing: Docker has no secrets outside Swarm, and the stack that
//! needs them goes to `docker compose`. Left out of the acceptance and printed
//! apart, as for Podman: an `invalid:` file, and a file whose `magos apply`
//! failed only because the test bed listens on a port it publishes (the
//! registry's 5000: awesome-elasticsearch-logstash-kibana).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::corpus::{
    Listed, Outcome, Peer, Side, Stack, compare, last_lines, plan_route, run_host_commands, sorted,
};
use crate::support::{Bed, bed, show};

/// The stacks Magos applies natively on Docker today, each with the number of
/// compared fields found equal to `docker compose`'s. A change that makes one
/// of them worse fails the test; one that makes another stack native adds it.
const RATCHET: &[(&str, usize)] = &[
    ("awesome-elasticsearch-logstash-kibana", 84),
    ("awesome-gitea-postgres", 56),
    ("awesome-minecraft", 28),
    ("awesome-nextcloud-postgres", 56),
    ("awesome-nextcloud-redis-mariadb", 84),
    ("awesome-pihole-cloudflared-doh", 56),
    ("awesome-plex", 28),
    ("awesome-portainer", 28),
    ("awesome-postgresql-pgadmin", 56),
    ("awesome-prometheus-grafana", 56),
    ("awesome-wireguard", 28),
    ("awesome-wordpress-mysql", 56),
    ("immich", 110),
    ("linkding", 28),
    ("n8n-caddy", 84),
    ("n8n-postgres", 84),
    ("nextcloud-mariadb-fpm", 140),
    ("nextcloud-postgres-apache", 112),
    ("paperless-ngx-postgres", 84),
    ("pihole-caddy", 56),
    ("podman-compose-deps", 84),
    ("podman-compose-env-tests", 56),
    ("podman-compose-healthcheck", 28),
    ("podman-compose-interpolation", 56),
    ("podman-compose-ipam-default", 28),
    ("podman-compose-ipc", 56),
    ("podman-compose-nethost", 28),
    ("podman-compose-nets-test-ip", 112),
    ("podman-compose-network", 56),
    ("podman-compose-network-interface-name", 28),
    ("podman-compose-network-scoped-aliases", 84),
    ("podman-compose-pid", 28),
    ("podman-compose-ports", 56),
    ("podman-compose-profile", 28),
    ("podman-compose-scale-deploy-replicas", 84),
    ("podman-compose-seccomp", 28),
    ("podman-compose-selinux", 56),
    ("podman-compose-short", 138),
    ("podman-compose-two-nets", 28),
    ("podman-compose-uidmaps", 28),
    // docker compose 2.26 stops at one service's missing bind source (the
    // containers it made before depend on timing): nothing sure to compare,
    // but Magos must keep applying it.
    ("podman-compose-vol-long-syntax", 0),
    ("podman-compose-vol-short-syntax", 84),
    ("traefik-acme-http", 56),
    ("traefik-basic", 56),
    ("uptime-kuma", 28),
];
/// How long one `docker compose up -d` or `magos apply` may take (seconds).
const STEP_TIMEOUT: &str = "300";

/// `podman` for the corpus's `setup:`/`cleanup:` lines, done with `docker`.
const PODMAN_SHIM: &str = r#"#!/bin/sh
# The corpus's setup lines, on Docker.
sub="$1 $2"
case "$sub" in
"volume create")
    shift 2
    for a in "$@"; do
        case "$a" in -*) ;; *) docker volume create "$a" >/dev/null || exit 1 ;; esac
    done ;;
"volume rm")
    shift 2
    exec docker volume rm "$@" ;;
"secret create"|"secret rm")
    exit 0 ;;
"build "*)
    shift
    for dir in "$@"; do :; done
    exec docker build "$@" -f "$dir/Containerfile" ;;
*)
    echo "the docker conformance test has no stand-in for: podman $*" >&2
    exit 1 ;;
esac
"#;

/// `docker compose` and the rows of docs/docker.md's "Differences from docker
/// compose".
const DOCKER_COMPOSE: Peer = Peer {
    name: "docker compose",
    listed_difference,
    listed_failure,
    all_native: false,
    x_podman: false,
};

/// The row of docs/docker.md's "Differences from docker compose" that
/// explains why `field` is `dc` with `docker compose` and `mg` with Magos.
fn listed_difference(listed: &Listed, field: &str, dc: &Value, mg: &Value) -> Option<&'static str> {
    match field {
        // A `healthcheck:` block without `test:` (`disable: false`): docker
        // compose sends an empty check, Magos none (the image's applies).
        "healthcheck" => {
            let empty = dc[0].as_object().is_some_and(|h| !h.contains_key("Test"));
            (empty && mg[0].is_null() && dc[1] == mg[1])
                .then_some("a `healthcheck:` block without `test:`")
        }
        // An `environment:` entry without a value, set nowhere: docker
        // compose sends the bare name, Magos leaves it out.
        "env" if !listed.bare_env.is_empty() => {
            let bare = |e: &Value| e.as_str().is_some_and(|e| listed.bare_env.contains(e));
            let rest: Vec<Value> = dc
                .as_array()?
                .iter()
                .filter(|e| !bare(e))
                .cloned()
                .collect();
            (rest.len() < dc.as_array()?.len() && Value::Array(rest) == *mg)
                .then_some("an `environment:` entry without a value, set nowhere")
        }
        // An anonymous volume: Docker's random name with docker compose,
        // `<project>_<service>_<sha256 of the target>` with Magos.
        "mounts" => {
            let (d, m) = (dc.as_array()?, mg.as_array()?);
            let named = |s: &str| {
                let hash = s.rsplit('_').next().unwrap_or_default();
                s.starts_with("<project>_")
                    && hash.len() == 64
                    && hash.bytes().all(|b| b.is_ascii_hexdigit())
            };
            let mut anonymous = false;
            for (a, b) in d.iter().zip(m) {
                if a == b {
                    continue;
                }
                let mut b2 = b.clone();
                b2["source"] = a["source"].clone();
                if a["source"] != "<anonymous>" || !named(b["source"].as_str()?) || *a != b2 {
                    return None;
                }
                anonymous = true;
            }
            (anonymous && d.len() == m.len()).then_some("an anonymous volume")
        }
        // `no-new-privileges:true` (or bare) as written, where Magos sends
        // `key=value`.
        "security_opt" => {
            let equals = dc.as_array()?.iter().map(|o| {
                let o = o.as_str().unwrap_or_default();
                match (o.contains('='), o.split_once(':')) {
                    (false, Some((k, v))) => Value::from(format!("{k}={v}")),
                    (false, None) if o == "no-new-privileges" => Value::from(format!("{o}=true")),
                    _ => Value::from(o),
                }
            });
            (sorted(&Value::Array(equals.collect())) == *mg)
                .then_some("`security_opt` written with `:`")
        }
        _ => None,
    }
}

/// The row that explains why `docker compose` made no container.
fn listed_failure(_listed: &Listed, output: &str) -> Option<&'static str> {
    // One service's missing bind source stops the whole `up`: docker compose
    // creates the project's containers together and gives up on the first
    // error, so the other services get none either.
    output
        .contains("bind source path does not exist")
        .then_some("a missing bind source")
}

/// A plain copy of a folder (the engine runs as root).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The environment every command of the test runs with: the engine's socket,
/// root's home (`~/` binds), `shim` (holding `podman`) first on `PATH`.
fn base_env(cmd: &mut Command, bed: &Bed, shim: &Path) {
    cmd.env_clear()
        .env(
            "PATH",
            format!(
                "{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                shim.display()
            ),
        )
        .env("HOME", "/root")
        .env("DOCKER_HOST", &bed.docker_host)
        .env("NO_COLOR", "1");
}

/// Runs a stack's `setup:` (or `cleanup:`) lines with `sh -c` in its copy;
/// the failures, as lines for the report.
fn run_commands(bed: &Bed, shim: &Path, folder: &Path, commands: &[String]) -> Vec<String> {
    let mut failed = Vec::new();
    for c in commands {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", c]).current_dir(folder);
        base_env(&mut cmd, bed, shim);
        let out = cmd.output().expect("run sh");
        if !out.status.success() {
            failed.push(format!("`{c}` failed: {}", last_lines(&out)));
        }
    }
    failed
}

/// `docker container inspect` of every container of a project.
fn inspect_project(bed: &Bed, project: &str) -> Vec<Value> {
    crate::corpus::inspect_project_with(|args| bed.docker_ok(args), project)
}

/// Removes what a project made: `docker compose down` by its labels, then
/// any volume left with them.
fn remove(bed: &Bed, project: &str) {
    let _ = bed.docker(&[
        "compose",
        "-p",
        project,
        "down",
        "-v",
        "--remove-orphans",
        "-t",
        "0",
    ]);
    let label = format!("label=com.docker.compose.project={project}");
    let volumes = bed.docker(&["volume", "ls", "-q", "--filter", &label]);
    for v in String::from_utf8_lossy(&volumes.stdout).split_whitespace() {
        let _ = bed.docker(&["volume", "rm", "-f", v]);
    }
}

/// Removes the projects, then runs the stack's cleanup lines, when dropped.
struct Cleanup<'a> {
    bed: &'a Bed,
    shim: &'a Path,
    projects: Vec<String>,
    folder: &'a Path,
    stack: &'a Stack,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for p in &self.projects {
            remove(self.bed, p);
        }
        run_commands(self.bed, self.shim, self.folder, &self.stack.cleanup);
        run_host_commands(&self.stack.host_cleanup);
    }
}

fn set_up(bed: &Bed, shim: &Path, folder: &Path, stack: &Stack) -> Vec<String> {
    let mut failed = run_host_commands(&stack.host_setup);
    failed.extend(run_commands(bed, shim, folder, &stack.setup));
    failed
}

fn clean_up(bed: &Bed, shim: &Path, folder: &Path, stack: &Stack) -> Vec<String> {
    let mut failed = run_commands(bed, shim, folder, &stack.cleanup);
    failed.extend(run_host_commands(&stack.host_cleanup));
    failed
}

/// `magos <args>` with runtime docker on the test bed's engine, within the
/// step timeout.
fn magos(bed: &Bed, shim: &Path, cfg: &Path, repo: &Path, args: &[&str], stack: &Stack) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(STEP_TIMEOUT)
        .arg(env!("CARGO_BIN_EXE_magos"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .arg("--repo")
        .arg(repo);
    base_env(&mut cmd, bed, shim);
    cmd.envs(stack.environment.iter().map(|(k, v)| (k, v)));
    cmd.output().expect("run magos")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_stack(bed: &Bed, stack: &Stack) -> Outcome {
    let root = tempfile::tempdir().unwrap();
    let shim = root.path().join(".shim");
    std::fs::create_dir_all(&shim).unwrap();
    let podman = shim.join("podman");
    std::fs::write(&podman, PODMAN_SHIM).unwrap();
    let exec = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&podman, exec).unwrap();
    let uniq = format!("dkcf{}", std::process::id() ^ rand_suffix());
    let folder = root.path().join(&uniq);
    let cfg = root.path().join(".magos.yaml");
    std::fs::write(
        &cfg,
        format!("runtime: docker\napply:\n  instance: {uniq}\n"),
    )
    .unwrap();
    copy_tree(&stack.dir, &folder);
    let mut notes = set_up(bed, &shim, &folder, stack);

    let plan = magos(
        bed,
        &shim,
        &cfg,
        root.path(),
        &["plan", "--output", "json"],
        stack,
    );
    let (route, project) = plan_route(&plan);
    let project = project.unwrap_or_else(|| uniq.clone());
    let dc_project = if project == uniq {
        format!("{uniq}-dc")
    } else {
        project.clone()
    };
    let cleanup = Cleanup {
        bed,
        shim: &shim,
        projects: vec![dc_project.clone(), project.clone()],
        folder: &folder,
        stack,
    };

    let mut dc_cmd = Command::new("timeout");
    dc_cmd
        .args([
            STEP_TIMEOUT,
            "docker",
            "compose",
            "-p",
            &dc_project,
            "up",
            "-d",
        ])
        .current_dir(&folder);
    base_env(&mut dc_cmd, bed, &shim);
    dc_cmd.envs(stack.environment.iter().map(|(k, v)| (k, v)));
    let dc = dc_cmd.output().expect("run docker compose");
    let dc_containers = inspect_project(bed, &dc_project);
    remove(bed, &dc_project);
    notes.extend(clean_up(bed, &shim, &folder, stack));
    std::fs::remove_dir_all(&folder).unwrap();

    copy_tree(&stack.dir, &folder);
    notes.extend(set_up(bed, &shim, &folder, stack));
    let before = crate::corpus::tree(&folder);
    let apply = magos(
        bed,
        &shim,
        &cfg,
        root.path(),
        &["apply", "--no-prune"],
        stack,
    );
    let mg_containers = inspect_project(bed, &project);
    drop(cleanup);
    let created = crate::corpus::created_binds(&mg_containers, &folder, &before);

    let (apply_ok, dc_ok) = (apply.status.success(), dc.status.success());
    let mut out = Outcome {
        route,
        apply_ok,
        peer_ok: dc_ok,
        peer_made: dc_containers.len(),
        equal: 0,
        compared: 0,
        skipped: 0,
        apply_output: text(&apply),
        diffs: notes.into_iter().map(|n| format!("setup: {n}")).collect(),
        created_binds: created,
    };
    if !dc_ok {
        out.diffs
            .push(format!("docker compose failed: {}", last_lines(&dc)));
    }
    if !apply_ok {
        out.diffs
            .push(format!("magos apply failed: {}", last_lines(&apply)));
    }
    compare(
        &DOCKER_COMPOSE,
        stack,
        &folder,
        Side {
            project: &dc_project,
            containers: &dc_containers,
        },
        Side {
            project: &project,
            containers: &mg_containers,
        },
        &text(&dc),
        &mut out,
    );
    out
}

/// A few bits that differ between runs of the same process.
fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

#[test]
fn corpus_matches_docker_compose() {
    let Some(bed) = bed() else { return };
    let compose = bed.docker(&["compose", "version"]);
    assert!(
        compose.status.success(),
        "docker compose is required (scripts/testbed.sh installs it): {}",
        show(&compose)
    );
    crate::corpus::check(&DOCKER_COMPOSE, RATCHET, |stack| run_stack(bed, stack));
}
