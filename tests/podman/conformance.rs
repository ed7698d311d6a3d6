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
//! The corpus, the compared fields, their comparison and the ratchet are shared
//! with the Docker conformance test (`tests/common/conformance.rs`); this file
//! holds the Podman side and podman-compose's listed differences.
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

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::corpus::{
    Listed, Outcome, Peer, Side, Stack, compare, last_lines, plan_route, run_host_commands, sorted,
};
use crate::support::{self, Testbed, testbed};

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
    // One field fewer than before Magos set `${COMPOSE_PROJECT_NAME}`: the
    // `project-name-test` env is a listed difference since (podman-compose 1.3
    // leaves it empty; its own test, and 1.4, expect the project's name).
    ("podman-compose-env-tests", 54),
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
    // Its postgres's `environment:` entries without a value: a listed
    // difference (Magos takes them from the `.env`).
    ("n8n-postgres", 82),
    ("podman-compose-short", 140),
    ("traefik-acme-http", 56),
    ("traefik-basic", 56),
];
/// How long one `podman-compose up -d` or `magos apply` may take (seconds).
const STEP_TIMEOUT: &str = "300";

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
    crate::corpus::inspect_project_with(|args| tb.podman_ok(args), project)
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
        // Variables interpolated from the same `environment:`, entries
        // without a value that podman-compose leaves out while Magos takes
        // them from its environment and the `.env`, and
        // `${COMPOSE_PROJECT_NAME}`, which podman-compose 1.3 leaves empty.
        "env"
            if !listed.env_self_refs.is_empty()
                || !listed.bare_env.is_empty()
                || !listed.project_name_refs.is_empty() =>
        {
            let key = |e: &Value| -> String {
                let e = e.as_str().unwrap_or_default();
                e.split('=').next().unwrap_or("").to_owned()
            };
            let strip = |v: &Value| -> Vec<Value> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| {
                        let k = key(e);
                        !listed.env_self_refs.contains(&k)
                            && !listed.bare_env.contains(&k)
                            && !listed.project_name_refs.contains(&k)
                    })
                    .cloned()
                    .collect()
            };
            // podman-compose sets none of the entries without a value.
            let pc_bare = pc
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| listed.bare_env.contains(&key(e)));
            if pc_bare || strip(pc) != strip(mg) {
                return None;
            }
            let mg_bare = mg
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| listed.bare_env.contains(&key(e)));
            // podman-compose 1.3 interpolates `${COMPOSE_PROJECT_NAME}` to
            // nothing; Magos to the project's name.
            let project_name = |v: &Value, name: &str| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| listed.project_name_refs.contains(&key(e)))
                    .any(|e| e.as_str().is_some_and(|e| e.contains(name)))
            };
            Some(if mg_bare {
                "an `environment:` entry without a value"
            } else if project_name(mg, "<project>") && !project_name(pc, "<project>") {
                "`${COMPOSE_PROJECT_NAME}`"
            } else {
                "`environment:` referring to itself"
            })
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
    let before = crate::corpus::tree(&folder);
    let apply = magos(
        tb,
        &cfg,
        root.path(),
        &["apply", "--no-prune"],
        &stack.environment,
    );
    let mg_containers = inspect_project(tb, &project);
    drop(cleanup);
    let created = crate::corpus::created_binds(&mg_containers, &folder, &before);

    let apply_ok = apply.status.success();
    let pc_ok = pc.status.success();
    let mut out = Outcome {
        route,
        apply_ok,
        peer_ok: pc_ok,
        peer_made: pc_containers.len(),
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
    let pc_output = format!(
        "{}{}",
        String::from_utf8_lossy(&pc.stdout),
        String::from_utf8_lossy(&pc.stderr)
    );
    compare(
        &PODMAN_COMPOSE,
        stack,
        &folder,
        Side {
            project: &pc_project,
            containers: &pc_containers,
        },
        Side {
            project: &project,
            containers: &mg_containers,
        },
        &pc_output,
        &mut out,
    );
    out
}

/// podman-compose and the rows of docs/stacks.md's "Differences from
/// podman-compose".
const PODMAN_COMPOSE: Peer = Peer {
    name: "podman-compose",
    listed_difference,
    listed_failure,
    all_native: true,
    x_podman: true,
};

#[test]
fn corpus_matches_podman_compose() {
    let Some(tb) = testbed() else { return };
    let _netns = support::rootless_netns_lock();
    crate::corpus::check(&PODMAN_COMPOSE, RATCHET, |stack| run_stack(tb, stack));
}
