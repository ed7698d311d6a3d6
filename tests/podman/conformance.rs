//! Conformance with podman-compose on real compose files: every stack of the
//! corpus (`tests/corpus/`, compose files of public projects with their `SOURCE`
//! notes) without `build:` is applied by `podman-compose up -d` and by
//! `magos apply`, one after the other, on the test bed's rootless Podman, and the
//! containers each made are compared field by field through
//! `podman container inspect`.
//!
//! Every run holds a ratchet: the stacks of [`RATCHET`], which Magos applies
//! natively today, must still be applied natively with at least the recorded
//! number of fields equal to podman-compose's. With `MAGOS_CONFORMANCE=1` it
//! takes every stack without `build:` instead (about 8 minutes) and asserts the
//! acceptance of the compose-coverage work:
//! `MAGOS_CONFORMANCE=1 MAGOS_REQUIRE_PODMAN=1 cargo test --test podman
//! conformance:: -- --nocapture` prints the score.
//!
//! `MAGOS_CONFORMANCE_ONLY=a,b` limits the run to those corpus folders, and
//! `MAGOS_CONFORMANCE_REPORT=FILE` also writes the per-file report to FILE.
//!
//! Per stack: a fresh copy of its folder (owned by the test user) under a unique
//! name; `magos plan` (the route; the project is the folder's name, or the file's
//! `name:`); `podman-compose -p <name>-pc up -d` in it as the test user (`-p` the
//! file's `name:` when it has one); inspect; remove that project (its pod,
//! containers, networks, volumes); a fresh copy at the same path (so bind sources
//! are the same and folders podman-compose created are gone); `magos apply`;
//! inspect; remove. Containers are paired by service and container number.
//!
//! Compared: env, cmd, entrypoint, user, workdir, ports, mounts (type, source,
//! destination, options), restart policy, healthcheck, capabilities, devices,
//! privileged, read-only, tmpfs, shm size, memory and cpu limits, ulimits, sysctls,
//! security options, extra hosts, dns, hostname, networks (with aliases, and the
//! addresses the file fixes), stop signal, user labels, log config, init, tty.
//! Skipped: only the intended differences of the table in docs/stacks.md
//! ("Differences from podman-compose"), each where it shows exactly
//! ([`listed_difference`]: the field is what that row predicts from Magos's
//! value; [`listed_failure`]: podman-compose made no container for the reason
//! that row gives, and the skipped fields are counted apart): podman-compose's
//! pod, its `--requires`,
//! values derived from the project name (each side's project name is replaced by
//! `<project>`, and a container's id by `<id>`) and the labels podman-compose and
//! Magos add (`com.docker.compose.*`, `io.podman.compose.*`, `PODMAN_SYSTEMD_UNIT`,
//! `io.magos.*`). Values that differ from run to run whatever the tool are not
//! differences either: the container's id (also in its default hostname and
//! aliases), the folder the copy lives in, a host port the file leaves to Podman
//! (`- "8001"`), and addresses and MACs the file does not fix.
//!
//! Objects a stack's project tells its user to create first (an external volume,
//! a secret) are created by the `setup:` lines of its `SOURCE`, run as the test
//! user in the copy before each tool (before `magos plan` too, which checks
//! external volumes), and removed by its `cleanup:` lines once that tool's
//! containers are gone; `environment:` lines (`KEY=VALUE`) are set for both tools
//! (tests/corpus/README.md). `host setup:` and `host cleanup:` lines run the same
//! way as root: host paths the rootless test user cannot create (a missing
//! `/var/run/docker.sock` made the empty folder Docker would make). While
//! podman-compose waits for a `service_healthy` dependency the test runs the
//! project's healthchecks once a second, standing in for the systemd timers the
//! test bed lacks (Magos runs them itself).
//!
//! Left out of the acceptance, and printed apart: a file whose `SOURCE` says it
//! is `invalid:` (Magos must refuse it), and a file whose `magos apply` failed
//! only because the test bed itself listens on a port it publishes (its
//! registries' or sshd's, from the env file; none is a port a corpus stack
//! publishes today); its fields still count.
//!
//! The images: every `image:` of a corpus file is the test bed's
//! (`$MAGOS_TEST_REGISTRY/magos/httpd:1`) or one a `setup:` line builds
//! (`localhost/…`); the test fails naming any other, rather than letting both
//! tools fail alike to pull it.
//!
//! Relative bind folders: the corpus holds only the files its projects ship,
//! so a file's data folders (`./data:/app/data`) are absent when Magos applies
//! it, as when a user first applies it. The test lists the bind sources in the
//! copy that did not exist before `magos apply` (Magos created them), and the
//! whole run asserts there are some and that every such file applied.
//!
//! Side effects outside the copies: files with `~/` binds (minecraft,
//! podman-compose-short) make podman-compose create those folders in the test
//! user's home (and the compose-CLI route in root's); they are left in place.
//!
//! Acceptance (issue "every compose file … applied natively"): every file without
//! `build:` applied natively, at least 98 % of the compared fields equal, none
//! refused (a plan or apply error where podman-compose made containers). A
//! container one tool made and the other did not counts all its fields unequal,
//! unless a listed difference explains it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::{self, Testbed, show, testbed};

/// The variable that selects the whole corpus and the acceptance.
const GATE: &str = "MAGOS_CONFORMANCE";
/// The stacks Magos applies natively today, each with the number of compared
/// fields found equal to podman-compose's (the rest are podman-compose's own
/// departures from the compose specification: tests/corpus/README.md). A change
/// that makes one of them worse fails the test; one that makes another stack
/// native adds it here.
const RATCHET: &[(&str, usize)] = &[
    ("awesome-elasticsearch-logstash-kibana", 83),
    ("awesome-gitea-postgres", 56),
    ("awesome-minecraft", 28),
    ("awesome-nextcloud-postgres", 56),
    ("awesome-nextcloud-redis-mariadb", 84),
    ("awesome-pihole-cloudflared-doh", 56),
    ("awesome-postgresql-pgadmin", 56),
    ("awesome-prometheus-grafana", 56),
    ("awesome-wireguard", 28),
    ("awesome-wordpress-mysql", 56),
    ("immich", 83),
    ("linkding", 28),
    ("n8n-caddy", 84),
    ("nextcloud-mariadb-fpm", 140),
    ("nextcloud-postgres-apache", 112),
    ("paperless-ngx-postgres", 84),
    ("pihole-caddy", 55),
    ("podman-compose-deps", 84),
    ("podman-compose-env-tests", 55),
    ("podman-compose-healthcheck", 27),
    ("podman-compose-extends", 84),
    ("podman-compose-interpolation", 55),
    ("podman-compose-ipam-default", 27),
    ("podman-compose-ipc", 56),
    ("podman-compose-nethost", 28),
    ("podman-compose-nets-test-ip", 112),
    ("podman-compose-network", 54),
    ("podman-compose-network-interface-name", 28),
    ("podman-compose-network-scoped-aliases", 84),
    ("podman-compose-pid", 28),
    ("podman-compose-ports", 56),
    ("podman-compose-scale-deploy-replicas", 84),
    ("podman-compose-seccomp", 27),
    ("podman-compose-profile", 28),
    // podman-compose 1.3.0 makes no container (it cannot parse an `environment:`
    // secret): nothing to compare, but Magos must keep applying it.
    ("podman-compose-secrets", 0),
    ("podman-compose-selinux", 56),
    ("podman-compose-two-nets", 27),
    ("podman-compose-uidmaps", 28),
    ("podman-compose-vol-long-syntax", 84),
    ("podman-compose-vol-short-syntax", 84),
    ("uptime-kuma", 28),
    ("awesome-plex", 28),
    ("awesome-portainer", 28),
    ("n8n-postgres", 83),
    ("podman-compose-short", 140),
    ("traefik-acme-http", 56),
    ("traefik-basic", 56),
];
/// How long one `podman-compose up -d` or `magos apply` may take (seconds).
const STEP_TIMEOUT: &str = "300";
/// The acceptance: share of compared fields that must be equal.
const FIELDS_EQUAL_MIN: f64 = 0.98;

/// One corpus stack.
struct Stack {
    name: String,
    dir: PathBuf,
    build: bool,
    /// Per service, what the file fixes of its networks: `ip:<key>` (an
    /// `ipv4_address`/`ipv6_address` on network `<key>`), `mac:<key>`, or `mac:*`
    /// (`mac_address` on the service).
    fixed: BTreeMap<String, BTreeSet<String>>,
    /// Per service, the container ports (`8001/tcp`) published without a host
    /// port: Podman picks a free one on each run, so it is not compared.
    random_ports: BTreeMap<String, BTreeSet<String>>,
    /// The `SOURCE`'s `setup:` commands, `cleanup:` commands and `environment:`
    /// variables.
    setup: Vec<String>,
    cleanup: Vec<String>,
    environment: Vec<(String, String)>,
    /// The `SOURCE`'s `host setup:` and `host cleanup:` commands, run as root:
    /// host paths outside anything the rootless test user may create.
    host_setup: Vec<String>,
    host_cleanup: Vec<String>,
    /// The `SOURCE`'s `invalid:` line: why the compose specification rejects
    /// the file (Magos must refuse it, and it is left out of the acceptance).
    invalid: Option<String>,
    /// Whether a service waits for another's `service_healthy`.
    waits_healthy: bool,
    /// What the listed differences need to know of the file, per service.
    listed: BTreeMap<String, Listed>,
    /// The services' `image:` values, as written.
    images: Vec<String>,
}

/// The places of a service where a listed difference can show.
#[derive(Default)]
struct Listed {
    /// It has neither `networks:` nor `network_mode:`.
    no_networks: bool,
    /// Its `environment:` variables whose value refers to another variable of
    /// the same `environment:`.
    env_self_refs: BTreeSet<String>,
    /// It publishes a port with an empty host address (`:2283:2283`).
    empty_host_ip: bool,
}

/// The `${VAR}`/`$VAR` names a text refers to.
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            rest = r;
            continue;
        }
        let braced = rest.starts_with('{');
        let body = rest.trim_start_matches('{');
        let end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        if end > 0 {
            out.insert(body[..end].to_owned());
        }
        rest = if braced { body } else { &body[end..] };
    }
    out
}

/// What [`Listed`] needs of one service.
fn listed_of(svc: &serde_yaml_ng::Value) -> Listed {
    let mut env = BTreeMap::new();
    match svc.get("environment") {
        Some(serde_yaml_ng::Value::Mapping(m)) => {
            for (k, v) in m {
                let v = match v {
                    serde_yaml_ng::Value::String(s) => s.clone(),
                    _ => String::new(),
                };
                env.insert(k.as_str().unwrap_or_default().to_owned(), v);
            }
        }
        Some(serde_yaml_ng::Value::Sequence(l)) => {
            for e in l.iter().filter_map(|e| e.as_str()) {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                env.insert(k.to_owned(), v.to_owned());
            }
        }
        _ => {}
    }
    let env_self_refs = env
        .iter()
        .filter(|(_, v)| references(v).iter().any(|r| env.contains_key(r)))
        .map(|(k, _)| k.clone())
        .collect();
    let empty_host_ip = svc
        .get("ports")
        .and_then(|p| p.as_sequence())
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str())
        .any(|p| p.starts_with(':') || p.contains("-:"));
    Listed {
        no_networks: svc.get("networks").is_none() && svc.get("network_mode").is_none(),
        env_self_refs,
        empty_host_ip,
    }
}

/// The values of the `SOURCE` lines starting with `key: `, in order.
fn source_lines(source: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}: ");
    source
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_owned())
        .collect()
}

/// The container ports of a `ports:` list that have no host port.
fn ports_without_host_port(ports: Option<&serde_yaml_ng::Value>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in ports.and_then(|p| p.as_sequence()).into_iter().flatten() {
        if let Some(m) = p.as_mapping() {
            let field = |k: &str| {
                m.get(k).map(|v| match v {
                    serde_yaml_ng::Value::Number(n) => n.to_string(),
                    other => other.as_str().unwrap_or_default().to_owned(),
                })
            };
            if field("published").is_none_or(|p| p.is_empty()) {
                let proto = field("protocol").unwrap_or_else(|| "tcp".to_owned());
                out.insert(format!("{}/{proto}", field("target").unwrap_or_default()));
            }
            continue;
        }
        let text = match p {
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            other => other.as_str().unwrap_or_default().to_owned(),
        };
        let (spec, proto) = text.split_once('/').unwrap_or((&text, "tcp"));
        let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        if parts.len() == 1 || parts.get(1) == Some(&"") {
            out.insert(format!("{}/{proto}", parts[0]));
        }
    }
    out
}

const COMPOSE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

fn corpus() -> Vec<Stack> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut stacks = Vec::new();
    for entry in std::fs::read_dir(&root).expect("read tests/corpus") {
        let dir = entry.unwrap().path();
        let Some(file) = COMPOSE_NAMES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
        else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut build = false;
        let mut listed = BTreeMap::new();
        let mut fixed = BTreeMap::new();
        let mut random_ports = BTreeMap::new();
        let mut images = Vec::new();
        if let Some(services) = doc.get("services").and_then(|s| s.as_mapping()) {
            for (name, svc) in services {
                let name = name.as_str().unwrap_or_default().to_owned();
                build |= svc.get("build").is_some();
                images.extend(svc.get("image").and_then(|i| i.as_str()).map(str::to_owned));
                listed.insert(name.clone(), listed_of(svc));
                let mut nets = BTreeSet::new();
                if svc.get("mac_address").is_some() {
                    nets.insert("mac:*".to_owned());
                }
                if let Some(m) = svc.get("networks").and_then(|n| n.as_mapping()) {
                    for (net, cfg) in m {
                        let net = net.as_str().unwrap_or_default();
                        if ["ipv4_address", "ipv6_address"]
                            .iter()
                            .any(|k| cfg.get(k).is_some())
                        {
                            nets.insert(format!("ip:{net}"));
                        }
                        if ["mac_address", "x-podman.mac_address"]
                            .iter()
                            .any(|k| cfg.get(k).is_some())
                        {
                            nets.insert(format!("mac:{net}"));
                        }
                    }
                }
                random_ports.insert(name.clone(), ports_without_host_port(svc.get("ports")));
                fixed.insert(name, nets);
            }
        }
        let source = std::fs::read_to_string(dir.join("SOURCE")).unwrap_or_default();
        let environment = source_lines(&source, "environment")
            .into_iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or_else(|| {
                    panic!("{}/SOURCE: environment: {kv}: not KEY=VALUE", dir.display())
                });
                (k.to_owned(), v.to_owned())
            })
            .collect();
        stacks.push(Stack {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            setup: source_lines(&source, "setup"),
            cleanup: source_lines(&source, "cleanup"),
            host_setup: source_lines(&source, "host setup"),
            host_cleanup: source_lines(&source, "host cleanup"),
            invalid: source_lines(&source, "invalid").into_iter().next(),
            waits_healthy: text.contains("service_healthy"),
            listed,
            images,
            environment,
            dir,
            build,
            fixed,
            random_ports,
        });
    }
    stacks.sort_by(|a, b| a.name.cmp(&b.name));
    stacks
}

/// The images of a stack that are neither the test bed's registry's nor built
/// by its `setup:` lines (`localhost/…`).
fn foreign_images<'a>(stack: &'a Stack, registry: &str) -> Vec<&'a str> {
    let ours = format!("{registry}/");
    stack
        .images
        .iter()
        .map(String::as_str)
        .filter(|i| !i.starts_with(&ours) && !i.starts_with("localhost/"))
        .collect()
}

/// Every path under a folder, the folder included.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::from([dir.to_path_buf()]);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(tree(&path));
        } else {
            out.insert(path);
        }
    }
    out
}

/// The bind sources of the containers that lie in `folder` and are not among
/// the paths that existed there before (`before`), relative to `folder`.
fn created_binds(
    containers: &[Value],
    folder: &Path,
    before: &BTreeSet<PathBuf>,
) -> BTreeSet<String> {
    containers
        .iter()
        .filter_map(|c| c["Mounts"].as_array())
        .flatten()
        .filter(|m| m["Type"] == "bind")
        .filter_map(|m| m["Source"].as_str().map(Path::new))
        .filter(|src| !before.contains(*src))
        .filter_map(|src| src.strip_prefix(folder).ok())
        .map(|rel| rel.display().to_string())
        .collect()
}

/// Copies a folder, giving every file and folder to the test user.
fn copy_tree(tb: &Testbed, from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::os::unix::fs::chown(to, Some(tb.uid), Some(tb.gid)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(tb, &src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
            std::os::unix::fs::chown(&dst, Some(tb.uid), Some(tb.gid)).unwrap();
        }
    }
}

/// `podman container inspect` of every container of a project.
fn inspect_project(tb: &Testbed, project: &str) -> Vec<Value> {
    let ids = tb.podman_ok(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["container", "inspect"];
    args.extend(&ids);
    serde_json::from_str(&tb.podman_ok(&args)).expect("inspect JSON")
}

/// Removes what a project made: the pod podman-compose makes first (with its
/// containers), then the rest by label, twice (a container another one requires
/// is only removed once that one is gone).
fn remove(tb: &Testbed, project: &str) {
    let _ = tb.podman_cli(&["pod", "rm", "-f", "-t", "0", &format!("pod_{project}")]);
    tb.remove_project(project);
    tb.remove_project(project);
}

/// Runs a stack's `setup:` (or `cleanup:`) commands with `sh -c` as the test
/// user in its copy; the failures, as lines for the report.
fn run_commands(tb: &Testbed, folder: &Path, commands: &[String]) -> Vec<String> {
    let mut failed = Vec::new();
    for c in commands {
        let out = tb
            .user_program("sh", &["-c", c])
            .current_dir(folder)
            .output()
            .expect("run sh");
        if !out.status.success() {
            failed.push(format!("`{c}` failed: {}", last_lines(&out)));
        }
    }
    failed
}

/// Runs a stack's `host setup:` (or `host cleanup:`) commands with `sh -c` as
/// root in `/`; the failures, as lines for the report.
fn run_host_commands(commands: &[String]) -> Vec<String> {
    let mut failed = Vec::new();
    for c in commands {
        let out = Command::new("sh")
            .args(["-c", c])
            .current_dir("/")
            .output()
            .expect("run sh");
        if !out.status.success() {
            failed.push(format!("`{c}` failed: {}", last_lines(&out)));
        }
    }
    failed
}

/// The stack's `host setup:`, then its `setup:` commands.
fn set_up(tb: &Testbed, folder: &Path, stack: &Stack) -> Vec<String> {
    let mut failed = run_host_commands(&stack.host_setup);
    failed.extend(run_commands(tb, folder, &stack.setup));
    failed
}

/// The stack's `cleanup:`, then its `host cleanup:` commands.
fn clean_up(tb: &Testbed, folder: &Path, stack: &Stack) -> Vec<String> {
    let mut failed = run_commands(tb, folder, &stack.cleanup);
    failed.extend(run_host_commands(&stack.host_cleanup));
    failed
}

/// Removes the projects, then runs the stack's cleanup commands, when dropped,
/// whatever the outcome.
struct Cleanup<'a> {
    tb: &'a Testbed,
    projects: Vec<String>,
    folder: &'a Path,
    stack: &'a Stack,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for p in &self.projects {
            remove(self.tb, p);
        }
        clean_up(self.tb, self.folder, self.stack);
    }
}

/// `podman-compose` run to its end, the test user's Podman running the
/// healthchecks of the project's containers meanwhile when the file waits for
/// one (`service_healthy`): rootless Podman times healthchecks with systemd
/// timers, which the test bed (no user manager) lacks, so `podman wait
/// --condition=healthy` would never return. Magos runs them itself while it
/// waits; here the test stands in for the timers, once a second.
fn run_podman_compose(tb: &Testbed, mut cmd: Command, project: &str, health: bool) -> Output {
    if !health {
        return cmd.output().expect("run podman-compose");
    }
    let log = tempfile::tempdir().expect("a folder for podman-compose's output");
    let (out, err) = (log.path().join("out"), log.path().join("err"));
    let mut child = cmd
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run podman-compose");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for podman-compose") {
            break status;
        }
        let ids = tb.podman_ok(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
            "--filter",
            "health=starting",
        ]);
        for id in ids.split_whitespace() {
            let _ = tb.podman_cli(&["healthcheck", "run", id]);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap_or_default(),
        stderr: std::fs::read(&err).unwrap_or_default(),
    }
}

/// `magos <args> --config <cfg> --repo <repo>` (as root on the test user's
/// socket, as the other CLI tests run it, with the test user's home so `~/`
/// binds resolve where podman-compose resolves them), within the step timeout.
fn magos(
    tb: &Testbed,
    cfg: &Path,
    repo: &Path,
    args: &[&str],
    environment: &[(String, String)],
) -> Output {
    Command::new("timeout")
        .arg(STEP_TIMEOUT)
        .arg(env!("CARGO_BIN_EXE_magos"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .arg("--repo")
        .arg(repo)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", tb.home())
        .env("CONTAINER_HOST", &tb.container_host)
        .env("NO_COLOR", "1")
        .envs(environment.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run magos")
}

/// The route `magos plan` gives the stack, with its project name and the keys
/// (compose CLI) or error (refused) that explain it.
#[derive(Debug)]
enum Route {
    Native,
    ComposeCli(Vec<String>),
    Refused(String),
}

fn plan_route(plan: &Output) -> (Route, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(&plan.stdout) else {
        return (Route::Refused(show(plan)), None);
    };
    let name = |x: &Value, k: &str| x[k].as_str().map(str::to_owned);
    if let Some(c) = v["compose_cli"].as_array().and_then(|a| a.first()) {
        let keys = c["keys"]
            .as_array()
            .map(|k| {
                k.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        return (Route::ComposeCli(keys), name(c, "stack"));
    }
    if let Some(e) = v["errors"].as_array().and_then(|a| a.first()) {
        return (
            Route::Refused(e["error"].as_str().unwrap_or("?").to_owned()),
            name(e, "stack"),
        );
    }
    if let Some(s) = v["stacks"].as_array().and_then(|a| a.first()) {
        if let Some(e) = s["error"].as_str() {
            return (Route::Refused(e.to_owned()), name(s, "project"));
        }
        return (Route::Native, name(s, "project"));
    }
    (Route::Refused("not in the plan".to_owned()), None)
}

/// Replaces the stack's folder, the project name and the container's id in every
/// string.
fn normalize(v: &Value, folder: &str, project: &str, id: &str) -> Value {
    match v {
        Value::String(s) => {
            let mut s = s.replace(folder, "<folder>").replace(project, "<project>");
            if id.len() >= 12 {
                s = s.replace(id, "<id>").replace(&id[..12], "<id>");
            }
            Value::String(s)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| normalize(x, folder, project, id))
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    let k = k.replace(project, "<project>");
                    (k, normalize(x, folder, project, id))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Array(a) => {
            let mut a = a.clone();
            a.sort_by_key(|x| x.to_string());
            Value::Array(a)
        }
        Value::Null => json!([]),
        other => other.clone(),
    }
}

/// Labels a user wrote (not the ones the tools add).
fn user_labels(labels: &Value) -> Value {
    let added = |k: &str| {
        k.starts_with("com.docker.compose.")
            || k.starts_with("io.podman.compose.")
            || k.starts_with("io.magos.")
            || k == "PODMAN_SYSTEMD_UNIT"
    };
    match labels.as_object() {
        Some(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !added(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => json!({}),
    }
}

/// The compared fields of one container, normalized.
fn fields(
    c: &Value,
    folder: &str,
    project: &str,
    fixed: &BTreeSet<String>,
    random_ports: &BTreeSet<String>,
) -> BTreeMap<&'static str, Value> {
    let id = c["Id"].as_str().unwrap_or_default();
    let mut n = normalize(c, folder, project, id);
    if let Some(bindings) = n["HostConfig"]["PortBindings"].as_object_mut() {
        for (port, list) in bindings.iter_mut() {
            if random_ports.contains(port) {
                for b in list.as_array_mut().into_iter().flatten() {
                    b["HostPort"] = json!("<random>");
                }
            }
        }
    }
    let (cfg, host) = (&n["Config"], &n["HostConfig"]);
    let mut mounts: Vec<Value> = n["Mounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let source = if m["Type"] == "volume" {
                &m["Name"]
            } else {
                &m["Source"]
            };
            json!({
                "type": m["Type"], "source": source, "destination": m["Destination"],
                "options": sorted(&m["Options"]), "rw": m["RW"], "propagation": m["Propagation"],
            })
        })
        .collect();
    mounts.sort_by_key(|m| m["destination"].to_string());
    let mut networks = serde_json::Map::new();
    if let Some(nets) = n["NetworkSettings"]["Networks"].as_object() {
        for (name, net) in nets {
            let key = name.strip_prefix("<project>_").unwrap_or(name);
            let mut e = json!({ "aliases": sorted(&net["Aliases"]) });
            if fixed.contains(&format!("ip:{key}")) {
                e["ip"] = net["IPAddress"].clone();
                e["ipv6"] = net["GlobalIPv6Address"].clone();
            }
            if fixed.contains(&format!("mac:{key}")) || fixed.contains("mac:*") {
                e["mac"] = net["MacAddress"].clone();
            }
            networks.insert(name.clone(), e);
        }
    }
    let log = &host["LogConfig"];
    BTreeMap::from([
        ("env", sorted(&cfg["Env"])),
        ("cmd", cfg["Cmd"].clone()),
        ("entrypoint", cfg["Entrypoint"].clone()),
        ("user", cfg["User"].clone()),
        ("workdir", cfg["WorkingDir"].clone()),
        ("ports", host["PortBindings"].clone()),
        ("mounts", Value::Array(mounts)),
        ("restart", host["RestartPolicy"].clone()),
        (
            "healthcheck",
            json!([cfg["Healthcheck"], cfg["HealthcheckOnFailureAction"]]),
        ),
        (
            "capabilities",
            json!([sorted(&host["CapAdd"]), sorted(&host["CapDrop"])]),
        ),
        ("devices", sorted(&host["Devices"])),
        ("privileged", host["Privileged"].clone()),
        ("read_only", host["ReadonlyRootfs"].clone()),
        ("tmpfs", host["Tmpfs"].clone()),
        ("shm_size", host["ShmSize"].clone()),
        (
            "memory_cpu",
            json!([
                host["Memory"],
                host["MemoryReservation"],
                host["MemorySwap"],
                host["NanoCpus"],
                host["CpuShares"],
                host["CpuQuota"],
                host["CpuPeriod"],
                host["CpusetCpus"],
                host["PidsLimit"],
            ]),
        ),
        ("ulimits", sorted(&host["Ulimits"])),
        ("sysctls", host["Sysctls"].clone()),
        ("security_opt", sorted(&host["SecurityOpt"])),
        ("extra_hosts", sorted(&host["ExtraHosts"])),
        (
            "dns",
            json!([
                sorted(&host["Dns"]),
                sorted(&host["DnsOptions"]),
                sorted(&host["DnsSearch"])
            ]),
        ),
        ("hostname", json!([cfg["Hostname"], cfg["Domainname"]])),
        (
            "networks",
            json!([host["NetworkMode"], Value::Object(networks)]),
        ),
        (
            "stop_signal",
            json!([cfg["StopSignal"], cfg["StopTimeout"]]),
        ),
        ("labels", user_labels(&cfg["Labels"])),
        (
            "log_config",
            json!([log["Type"], log["Config"], log["Tag"], log["Size"]]),
        ),
        ("init", host["Init"].as_bool().unwrap_or(false).into()),
        ("tty", json!([cfg["Tty"], cfg["OpenStdin"]])),
    ])
}

/// Containers by (service, container number).
fn by_service(containers: &[Value]) -> BTreeMap<(String, String), &Value> {
    containers
        .iter()
        .map(|c| {
            let l = &c["Config"]["Labels"];
            let s = l["com.docker.compose.service"].as_str().unwrap_or("?");
            let n = l["com.docker.compose.container-number"]
                .as_str()
                .unwrap_or("1");
            ((s.to_owned(), n.to_owned()), c)
        })
        .collect()
}

/// What one stack gave.
struct Outcome {
    route: Route,
    apply_ok: bool,
    pc_ok: bool,
    /// How many containers podman-compose made.
    pc_made: usize,
    equal: usize,
    compared: usize,
    /// Fields (or whole containers' fields) not compared because they show a
    /// listed difference.
    skipped: usize,
    diffs: Vec<String>,
    /// What `magos apply` printed.
    apply_output: String,
    /// The bind sources in the stack's copy that were absent before `magos
    /// apply` (relative to the copy).
    created_binds: BTreeSet<String>,
}

/// The port of the test bed's own listeners (the registries, sshd) that a
/// failed `magos apply` could not publish, if that is why it failed.
fn held_port(apply_output: &str) -> Option<String> {
    if !apply_output.contains("address already in use") {
        return None;
    }
    let port = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|v| v.rsplit(':').next().unwrap_or_default().to_owned())
    };
    [
        port("MAGOS_TEST_REGISTRY"),
        port("MAGOS_TEST_REGISTRY_AUTH"),
        port("MAGOS_TESTBED_SSH_PORT"),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        !p.is_empty() && apply_output.contains(&format!(":{p}: bind: address already in use"))
    })
}

/// Python's `shlex.quote`, as podman-compose quotes a healthcheck's words.
fn sh_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if s.is_empty() {
        "''".to_owned()
    } else if s.chars().all(safe) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }
}

/// The row of the table of differences (docs/stacks.md, "Differences from
/// podman-compose") that explains why `field` of a container of `service` is
/// `pc` with podman-compose and `mg` with Magos, if one does exactly.
fn listed_difference(listed: &Listed, field: &str, pc: &Value, mg: &Value) -> Option<&'static str> {
    match field {
        // `/bin/sh -c '<test>'` for a `CMD-SHELL` test (or a string), and the
        // words joined with `' '` behind `/bin/sh -c` for a `CMD` test.
        "healthcheck" => {
            let test = mg[0]["Test"].as_array()?;
            let words: Vec<&str> = test.iter().filter_map(Value::as_str).collect();
            let wrapped = match words.split_first()? {
                (&"CMD-SHELL", [cmd]) => format!("/bin/sh -c {}", sh_quote(cmd)),
                (&"CMD", args) if !args.is_empty() => format!(
                    "/bin/sh -c {}",
                    args.iter()
                        .map(|a| sh_quote(a))
                        .collect::<Vec<_>>()
                        .join("' '")
                ),
                _ => return None,
            };
            let mut expect = mg.clone();
            expect[0]["Test"] = json!(["CMD-SHELL", wrapped]);
            (&expect == pc).then_some("healthcheck `test:`")
        }
        // `seccomp=./x.json` as written against the absolute path.
        "security_opt" => {
            let rel = pc.as_array()?.iter().map(|o| {
                let o = o.as_str().unwrap_or_default();
                match o.strip_prefix("seccomp=./") {
                    Some(rest) => json!(format!("seccomp=<folder>/{rest}")),
                    None => json!(o),
                }
            });
            (sorted(&Value::Array(rel.collect())) == *mg).then_some("a relative `seccomp=` profile")
        }
        // A service without `networks:` on a file's only network (or
        // `podman`), where Magos puts it on `default`.
        "networks" if listed.no_networks => {
            let (p, m) = (pc[1].as_object()?, mg[1].as_object()?);
            let same = pc[0] == mg[0]
                && p.len() == 1
                && m.len() == 1
                && m.contains_key("<project>_default")
                && p.values().next() == m.values().next();
            same.then_some("a service without `networks:`")
        }
        // Variables interpolated from the same `environment:`.
        "env" if !listed.env_self_refs.is_empty() => {
            let strip = |v: &Value| -> Vec<Value> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| {
                        let k = e
                            .as_str()
                            .unwrap_or_default()
                            .split('=')
                            .next()
                            .unwrap_or("");
                        !listed.env_self_refs.contains(k)
                    })
                    .cloned()
                    .collect()
            };
            (strip(pc) == strip(mg)).then_some("`environment:` referring to itself")
        }
        // List-form label keys left as written (`$VAR=…`).
        "labels" => {
            let (p, m) = (pc.as_object()?, mg.as_object()?);
            let written: Vec<&String> = p.keys().filter(|k| k.contains('$')).collect();
            let rest_equal = p
                .iter()
                .filter(|(k, _)| !k.contains('$'))
                .all(|(k, v)| m.get(k) == Some(v));
            (!written.is_empty() && rest_equal && p.len() == m.len())
                .then_some("list-form `labels:` keys")
        }
        _ => None,
    }
}

/// The row of the table of differences that explains why podman-compose made
/// no container for `service` (its output says why), if one does.
fn listed_failure(listed: &Listed, pc_output: &str) -> Option<&'static str> {
    if listed.empty_host_ip && pc_output.contains("must provide a non-empty container host IP") {
        return Some("a port with an empty host address");
    }
    if pc_output.contains("unparsable secret") {
        return Some("`secrets: {x: {environment: VAR}}`");
    }
    None
}

fn clip(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

/// The last lines a command printed (standard output, then error), on one line.
fn last_lines(o: &Output) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("cgroups-v1"))
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    format!("{} (exit {:?})", tail, o.status.code())
}

fn run_stack(tb: &Testbed, stack: &Stack) -> Outcome {
    let root = tb.user_dir("magos-conformance");
    let uniq = crate::support::unique_name("cf");
    let folder = root.path().join(&uniq);
    let cfg = root.path().join(".magos.yaml");
    std::fs::write(&cfg, format!("apply:\n  instance: {uniq}\n")).unwrap();
    copy_tree(tb, &stack.dir, &folder);
    let mut notes = set_up(tb, &folder, stack);

    // Magos's route and project name: the folder's name (unique), or the file's
    // `name:`. podman-compose gets another unique name, or the file's too (a
    // name the file fixes is then replaced on both sides alike).
    let plan = magos(
        tb,
        &cfg,
        root.path(),
        &["plan", "--output", "json"],
        &stack.environment,
    );
    let (route, project) = plan_route(&plan);
    let project = project.unwrap_or_else(|| uniq.clone());
    let pc_project = if project == uniq {
        format!("{uniq}-pc")
    } else {
        project.clone()
    };
    let cleanup = Cleanup {
        tb,
        projects: vec![pc_project.clone(), project.clone()],
        folder: &folder,
        stack,
    };

    // podman-compose, as the test user (through `env` for the stack's variables).
    let vars: Vec<String> = stack
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut pc_args: Vec<&str> = vars.iter().map(String::as_str).collect();
    pc_args.extend([
        "timeout",
        STEP_TIMEOUT,
        "podman-compose",
        "-p",
        &pc_project,
        "up",
        "-d",
    ]);
    let mut pc_cmd = tb.user_program("env", &pc_args);
    pc_cmd.current_dir(&folder);
    let pc = run_podman_compose(tb, pc_cmd, &pc_project, stack.waits_healthy);
    let pc_containers = inspect_project(tb, &pc_project);
    remove(tb, &pc_project);
    notes.extend(clean_up(tb, &folder, stack));
    std::fs::remove_dir_all(&folder).unwrap();

    // Magos, in a fresh copy at the same path, after the setup again.
    copy_tree(tb, &stack.dir, &folder);
    notes.extend(set_up(tb, &folder, stack));
    let before = tree(&folder);
    let apply = magos(
        tb,
        &cfg,
        root.path(),
        &["apply", "--no-prune"],
        &stack.environment,
    );
    let mg_containers = inspect_project(tb, &project);
    drop(cleanup);
    let created = created_binds(&mg_containers, &folder, &before);

    let apply_ok = apply.status.success();
    let pc_ok = pc.status.success();
    let mut out = Outcome {
        route,
        apply_ok,
        pc_ok,
        pc_made: pc_containers.len(),
        equal: 0,
        compared: 0,
        skipped: 0,
        apply_output: format!(
            "{}{}",
            String::from_utf8_lossy(&apply.stdout),
            String::from_utf8_lossy(&apply.stderr)
        ),
        diffs: notes.into_iter().map(|n| format!("setup: {n}")).collect(),
        created_binds: created,
    };
    if !pc_ok {
        out.diffs
            .push(format!("podman-compose failed: {}", last_lines(&pc)));
    }
    if !apply_ok {
        out.diffs
            .push(format!("magos apply failed: {}", last_lines(&apply)));
    }
    let (pcs, mgs) = (by_service(&pc_containers), by_service(&mg_containers));
    let keys: BTreeSet<_> = pcs.keys().chain(mgs.keys()).cloned().collect();
    let none = BTreeSet::new();
    let no_listed = Listed::default();
    let pc_output = format!(
        "{}{}",
        String::from_utf8_lossy(&pc.stdout),
        String::from_utf8_lossy(&pc.stderr)
    );
    for key @ (service, number) in &keys {
        let listed = stack.listed.get(service).unwrap_or(&no_listed);
        let fixed = stack.fixed.get(service).unwrap_or(&none);
        let random = stack.random_ports.get(service).unwrap_or(&none);
        let folder = folder.to_string_lossy();
        let a = pcs
            .get(key)
            .map(|c| fields(c, &folder, &pc_project, fixed, random));
        let b = mgs
            .get(key)
            .map(|c| fields(c, &folder, &project, fixed, random));
        match (a, b) {
            (Some(a), Some(b)) => {
                for (field, va) in &a {
                    let vb = b.get(field).unwrap_or(&Value::Null);
                    if va != vb
                        && let Some(row) = listed_difference(listed, field, va, vb)
                    {
                        out.skipped += 1;
                        out.diffs.push(format!(
                            "{service}#{number} {field}: skipped, a listed difference ({row})"
                        ));
                        continue;
                    }
                    out.compared += 1;
                    if b.get(field) == Some(va) {
                        out.equal += 1;
                    } else {
                        out.diffs.push(format!(
                            "{service}#{number} {field}: podman-compose {} | magos {}",
                            clip(va),
                            clip(b.get(field).unwrap_or(&Value::Null))
                        ));
                    }
                }
            }
            (Some(a), None) => {
                out.compared += a.len();
                out.diffs
                    .push(format!("{service}#{number}: no container from magos"));
            }
            (None, Some(b)) if listed_failure(listed, &pc_output).is_some() => {
                out.skipped += b.len();
                out.diffs.push(format!(
                    "{service}#{number}: no container from podman-compose: skipped, a listed difference ({})",
                    listed_failure(listed, &pc_output).unwrap_or_default()
                ));
            }
            (None, Some(b)) => {
                out.compared += b.len();
                out.diffs.push(format!(
                    "{service}#{number}: no container from podman-compose"
                ));
            }
            (None, None) => {}
        }
    }
    out
}

#[test]
fn corpus_matches_podman_compose() {
    let Some(tb) = testbed() else { return };
    let _netns = support::rootless_netns_lock();
    let whole = std::env::var(GATE).as_deref() == Ok("1");
    let only = std::env::var("MAGOS_CONFORMANCE_ONLY").ok();
    let stacks: Vec<Stack> = corpus()
        .into_iter()
        .filter(|s| match only.as_deref() {
            Some(o) => o.split(',').any(|x| x == s.name),
            None => whole || RATCHET.iter().any(|(name, _)| *name == s.name),
        })
        .collect();
    if !whole && only.is_none() {
        assert_eq!(
            stacks.len(),
            RATCHET.len(),
            "every RATCHET stack is in tests/corpus"
        );
    }
    let mut worse = Vec::new();
    assert!(!stacks.is_empty(), "no corpus stack selected");
    let foreign: Vec<String> = stacks
        .iter()
        .filter(|s| !s.build)
        .flat_map(|s| {
            foreign_images(s, &tb.registry)
                .into_iter()
                .map(move |i| format!("{}: {i}", s.name))
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "corpus images not on the test bed's registry {} (MAGOS_TEST_REGISTRY; tests/corpus/README.md: \
         every image is swapped for the test bed's):\n{}",
        tb.registry,
        foreign.join("\n")
    );

    let (mut files, mut native, mut refused, mut equal, mut compared) = (0, 0, 0, 0, 0);
    let mut skipped = 0;
    let (mut invalid, mut held) = (Vec::new(), Vec::new());
    let mut both_failed = Vec::new();
    let mut built = Vec::new();
    // Files whose relative bind folders were absent at `magos apply`, with them.
    let mut absent_binds = Vec::new();
    let mut absent_failed = Vec::new();
    let mut report = String::new();
    for stack in &stacks {
        if stack.build {
            built.push(stack.name.clone());
            continue;
        }
        let o = run_stack(tb, stack);
        let route = match &o.route {
            Route::Native => "native".to_owned(),
            Route::ComposeCli(keys) => format!("compose-cli ({})", keys.join(", ")),
            Route::Refused(e) => format!("refused ({})", e.lines().next().unwrap_or("")),
        };
        equal += o.equal;
        compared += o.compared;
        skipped += o.skipped;
        let report_line = |report: &mut String, note: &str| {
            let line = format!(
                "{}: {route}; apply {}; podman-compose {}; fields {}/{} equal, {} skipped{note}\n",
                stack.name,
                if o.apply_ok { "ok" } else { "FAILED" },
                if o.pc_ok { "ok" } else { "failed" },
                o.equal,
                o.compared,
                o.skipped,
            );
            eprint!("{line}");
            report.push_str(&line);
            for d in &o.diffs {
                let d = format!("    {d}\n");
                eprint!("{d}");
                report.push_str(&d);
            }
        };
        // A file the compose specification rejects: Magos must refuse it; it
        // is no file of the acceptance.
        if let Some(why) = &stack.invalid {
            if !matches!(o.route, Route::Refused(_)) {
                worse.push(format!(
                    "{}: not refused, but its SOURCE says it is invalid: {why}",
                    stack.name
                ));
            }
            invalid.push(stack.name.clone());
            report_line(&mut report, &format!(" (invalid: {why})"));
            continue;
        }
        // A port the test bed itself listens on (a registry's, sshd's): the
        // host cannot give it, whatever the tool; the fields still count.
        if !o.apply_ok
            && matches!(o.route, Route::Native)
            && let Some(port) = held_port(&o.apply_output)
        {
            held.push(format!("{} (port {port})", stack.name));
            report_line(&mut report, &format!(" (port {port} is the test bed's)"));
            continue;
        }
        files += 1;
        let is_native = matches!(o.route, Route::Native) && o.apply_ok;
        if let Some((_, min)) = RATCHET.iter().find(|(name, _)| *name == stack.name)
            && (!is_native || o.equal < *min)
        {
            worse.push(format!(
                "{}: native {is_native}, {} fields equal (recorded: native, {min})",
                stack.name, o.equal
            ));
        }
        native += usize::from(is_native);
        if !o.created_binds.is_empty() {
            let binds: Vec<&str> = o.created_binds.iter().map(String::as_str).collect();
            absent_binds.push(format!("{} ({})", stack.name, binds.join(", ")));
            if !is_native {
                absent_failed.push(stack.name.clone());
            }
        }
        // Refused: Magos failed where podman-compose made containers. Where
        // podman-compose made none either (a missing external volume, a
        // privileged port), the file cannot run here at all.
        let magos_failed = matches!(o.route, Route::Refused(_)) || !o.apply_ok;
        if magos_failed && o.pc_made > 0 {
            refused += 1;
        } else if magos_failed {
            both_failed.push(stack.name.clone());
        }
        report_line(&mut report, "");
    }
    let share = if compared == 0 {
        0.0
    } else {
        equal as f64 / compared as f64
    };
    let score = format!(
        "conformance: {native}/{files} files without build: applied natively, \
         {equal}/{compared} fields equal ({:.1} %, {skipped} more skipped as listed \
         differences), {refused} refused where podman-compose made containers; \
         both failed: {}; invalid (refused, as they must be): {}; a port the test \
         bed holds: {}; not applied (build:): {}; relative bind sources absent at \
         apply, created by Magos: {} files: {}",
        share * 100.0,
        both_failed.join(", "),
        invalid.join(", "),
        held.join(", "),
        built.join(", "),
        absent_binds.len(),
        absent_binds.join("; ")
    );
    eprintln!("{score}");
    if let Ok(path) = std::env::var("MAGOS_CONFORMANCE_REPORT") {
        std::fs::write(path, format!("{report}{score}\n")).expect("write the report");
    }
    assert!(
        worse.is_empty(),
        "worse than recorded:\n{}\n{score}",
        worse.join("\n")
    );
    if whole {
        assert_eq!(native, files, "{score}");
        assert!(share >= FIELDS_EQUAL_MIN, "{score}");
        assert_eq!(refused, 0, "{score}");
        // With their relative bind folders absent, every file still applies.
        assert!(
            !absent_binds.is_empty(),
            "no corpus file had a relative bind folder to create: {score}"
        );
        assert!(
            absent_failed.is_empty(),
            "not applied with their relative bind folders absent: {}\n{score}",
            absent_failed.join(", ")
        );
    }
}
