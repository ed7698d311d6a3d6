//! The network doctor against real rootless Podman 5 and pasta: a killed
//! container pasta and a killed rootless-netns pasta are found and healed, a
//! port with no service behind it is a service problem that is not restarted,
//! heals are rate-limited, and `magos doctor --output json` keeps its keys.
//!
//! Every container carries a label unique to its test, and the doctor is scoped
//! to it, so no other container is examined or touched. Ports are probed on
//! 127.0.0.1 only.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use magos::doctor::{self, Cause, Doctor, DoctorOptions, HealOutcome, Report, Status, probe};
use magos::podman::{Client, ClientOptions};

use crate::support::{self, Testbed, testbed};

/// A test's containers: removed (with the network) when dropped.
struct Scope<'a> {
    tb: &'a Testbed,
    label: String,
    network: Option<String>,
}

impl<'a> Scope<'a> {
    fn new(tb: &'a Testbed, prefix: &str) -> Self {
        Self {
            tb,
            label: format!("io.magos.instance={}", support::unique_name(prefix)),
            network: None,
        }
    }

    /// Runs a managed container of `project`/`service`; `extra` goes before the
    /// image, `cmd` after it.
    fn run(&self, name: &str, project: &str, service: &str, extra: &[&str], cmd: &[&str]) {
        let image = self.tb.require("MAGOS_TEST_IMAGE_HTTPD");
        let project_label = format!("com.docker.compose.project={project}");
        let service_label = format!("com.docker.compose.service={service}");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--label",
            &self.label,
            "--label",
            "io.magos.managed=true",
            "--label",
            &project_label,
            "--label",
            &service_label,
            "--stop-signal",
            "SIGKILL",
        ];
        args.extend_from_slice(extra);
        args.push(image);
        args.extend_from_slice(cmd);
        self.tb.podman_ok(&args);
    }

    /// Runs a managed container named `<prefix>-…` as `service` of a project
    /// of the same name, on pasta with a free port of 127.0.0.1 published to
    /// its 8080: the name and the port.
    fn run_on_pasta(&self, prefix: &str, service: &str, cmd: &[&str]) -> (String, u16) {
        let name = support::unique_name(prefix);
        let port = support::free_port();
        let publish = format!("127.0.0.1:{port}:8080");
        self.run(
            &name,
            &name,
            service,
            &["--network", "pasta", "-p", &publish],
            cmd,
        );
        (name, port)
    }

    fn network(&mut self, name: &str) {
        self.tb
            .podman_ok(&["network", "create", "--label", &self.label, name]);
        self.network = Some(name.to_owned());
    }

    fn doctor(&self, heal: bool, max: usize) -> Doctor {
        Doctor::new(DoctorOptions {
            runtime_dir: Some(self.tb.runtime_dir.clone()),
            scope: vec![self.label.clone()],
            heal,
            max_heals_per_hour: max,
            dns_upstream: false,
            verify_timeout: Duration::from_secs(60),
            ..DoctorOptions::default()
        })
    }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        let ids = self
            .tb
            .podman_cli(&["ps", "-aq", "--filter", &format!("label={}", self.label)]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.tb.podman_cli(&["rm", "-f", "-t", "0", id]);
        }
        if let Some(net) = &self.network {
            let _ = self.tb.podman_cli(&["network", "rm", "-f", net]);
        }
    }
}

fn client(tb: &Testbed) -> Client {
    Client::new(&tb.podman_socket, ClientOptions::default())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn check_and_heal(tb: &Testbed, doc: &mut Doctor) -> Report {
    runtime().block_on(doctor::check_and_heal(&client(tb), doc, None))
}

fn sandbox_key(tb: &Testbed, name: &str) -> String {
    tb.podman_ok(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.SandboxKey}}",
        name,
    ])
    .trim()
    .to_owned()
}

fn started_at(tb: &Testbed, name: &str) -> String {
    tb.podman_ok(&["inspect", "--format", "{{.State.StartedAt}}", name])
        .trim()
        .to_owned()
}

fn kill(pid: u32) {
    let st = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -9 {pid}");
}

fn answers(port: u16) -> bool {
    support::http_get(port, "/").is_ok_and(|r| r.status == 200)
}

fn wait_answers(port: u16) -> bool {
    support::wait_until(Duration::from_secs(60), Duration::from_millis(250), || {
        answers(port)
    })
}

fn wait_dead(port: u16) -> bool {
    support::wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        !answers(port)
    })
}

fn show(report: &Report) -> String {
    magos::cli::doctor::render_table(report)
}

/// Kills the pasta serving a `--network pasta` container and waits until its
/// port stops answering.
fn kill_container_pasta(tb: &Testbed, name: &str, port: u16) {
    let key = sandbox_key(tb, name);
    let pid = probe::pasta_for_netns(Path::new("/proc"), &key)
        .unwrap_or_else(|| panic!("no pasta process with --netns {key}"));
    kill(pid);
    assert!(
        wait_dead(port),
        "port {port} still answers after pasta died"
    );
}

#[test]
fn a_dead_container_pasta_is_reported_and_healed() {
    let Some(tb) = testbed() else { return };
    let scope = Scope::new(tb, "doctor-pasta");
    let (name, port) = scope.run_on_pasta("doctor-pasta", "web", &[]);
    assert!(wait_answers(port), "the httpd never answered on {port}");

    let clean = check_and_heal(tb, &mut scope.doctor(false, 3));
    assert!(clean.ok(), "{}", show(&clean));
    assert!(
        clean
            .checks
            .iter()
            .any(|c| c.id == "pasta" && c.status == Status::Pass),
        "{}",
        show(&clean)
    );

    kill_container_pasta(tb, &name, port);
    let found = check_and_heal(tb, &mut scope.doctor(false, 3));
    let pasta = found
        .checks
        .iter()
        .find(|c| c.id == "pasta")
        .expect("a pasta check");
    assert_eq!(pasta.status, Status::Fail, "{}", show(&found));
    assert_eq!(pasta.cause, Some(Cause::Network));
    let port_check = found
        .checks
        .iter()
        .find(|c| c.id == "port")
        .expect("a port check");
    assert_eq!(port_check.status, Status::Fail, "{}", show(&found));
    assert_eq!(port_check.cause, Some(Cause::Network), "{}", show(&found));
    assert!(found.heals.is_empty(), "no heal without --heal");

    let healed = check_and_heal(tb, &mut scope.doctor(true, 3));
    assert_eq!(healed.heals.len(), 1, "{}", show(&healed));
    assert_eq!(healed.heals[0].action.kind(), "restart_container");
    assert_eq!(healed.heals[0].action.target(), name);
    assert_eq!(
        healed.heals[0].outcome,
        HealOutcome::Healed,
        "{}",
        show(&healed)
    );
    let r = support::http_get(port, "/").expect("GET after the heal");
    assert_eq!(r.status, 200);
}

#[test]
fn a_dead_rootless_netns_pasta_is_reported_and_healed() {
    let Some(tb) = testbed() else { return };
    let _netns = support::rootless_netns_lock();
    let mut scope = Scope::new(tb, "doctor-netns");
    let project = support::unique_name("doctor-netns");
    let net = format!("{project}_default");
    scope.network(&net);
    let (web, front) = (format!("{project}-web-1"), format!("{project}-front-1"));
    let (web_port, front_port) = (support::free_port(), support::free_port());
    let web_publish = format!("127.0.0.1:{web_port}:8080");
    let front_publish = format!("127.0.0.1:{front_port}:8080");
    scope.run(
        &web,
        &project,
        "web",
        &[
            "--network",
            &net,
            "--network-alias",
            "web",
            "-p",
            &web_publish,
        ],
        &[],
    );
    scope.run(
        &front,
        &project,
        "front",
        &[
            "--network",
            &net,
            "--network-alias",
            "front",
            "-p",
            &front_publish,
            "--requires",
            &web,
        ],
        &[],
    );
    assert!(wait_answers(web_port) && wait_answers(front_port));

    let clean = check_and_heal(tb, &mut scope.doctor(false, 3));
    assert!(clean.ok(), "{}", show(&clean));
    let dns: Vec<_> = clean.checks.iter().filter(|c| c.id == "dns").collect();
    assert_eq!(dns.len(), 2, "{}", show(&clean));
    assert!(
        dns.iter().all(|c| c.status == Status::Pass),
        "{}",
        show(&clean)
    );

    let pid_file = tb
        .runtime_dir
        .join("containers/networks/rootless-netns/rootless-netns-conn.pid");
    // Another bridge container starting elsewhere on the test bed revives the
    // netns's pasta; kill it again when that happened before the doctor looked.
    let mut healed = None;
    for _ in 0..3 {
        let pid = probe::read_pid(&pid_file).expect("the rootless netns has a pid file");
        kill(pid);
        assert!(support::wait_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || probe::process_cmdline(Path::new("/proc"), pid).is_none()
        ));
        let before = (started_at(tb, &web), started_at(tb, &front));
        let report = check_and_heal(tb, &mut scope.doctor(true, 3));
        let netns = report
            .checks
            .iter()
            .find(|c| c.id == "netns")
            .expect("a netns check");
        if netns.status == Status::Pass {
            continue;
        }
        assert_eq!(netns.status, Status::Fail, "{}", show(&report));
        assert_eq!(netns.cause, Some(Cause::Network));
        healed = Some((report, before));
        break;
    }
    let (report, before) = healed.expect("the dead netns pasta was seen");
    eprintln!("{}", show(&report));
    assert_eq!(report.heals.len(), 1, "{}", show(&report));
    assert_eq!(report.heals[0].action.kind(), "restart_stacks");
    assert_eq!(report.heals[0].action.target(), project);
    assert_eq!(
        report.heals[0].outcome,
        HealOutcome::Healed,
        "{}",
        show(&report)
    );
    assert_ne!(started_at(tb, &web), before.0, "web was restarted");
    assert_ne!(started_at(tb, &front), before.1, "front was restarted");
    let pid = probe::read_pid(&pid_file).expect("a pid file after the heal");
    assert!(
        probe::process_cmdline(Path::new("/proc"), pid).is_some_and(|c| probe::is_pasta(&c)),
        "the rootless netns has a live pasta again"
    );
    assert_eq!(support::http_get(web_port, "/").unwrap().status, 200);
    assert_eq!(support::http_get(front_port, "/").unwrap().status, 200);
}

#[test]
fn a_port_without_a_listening_service_is_a_service_problem_and_not_restarted() {
    let Some(tb) = testbed() else { return };
    let scope = Scope::new(tb, "doctor-svc");
    let (name, _port) = scope.run_on_pasta("doctor-svc", "idle", &["sleep", "3600"]);
    let before = started_at(tb, &name);
    let report = check_and_heal(tb, &mut scope.doctor(true, 3));
    let port_check = report
        .checks
        .iter()
        .find(|c| c.id == "port")
        .expect("a port check");
    assert_eq!(port_check.status, Status::Fail, "{}", show(&report));
    assert_eq!(port_check.cause, Some(Cause::Service), "{}", show(&report));
    assert!(port_check.finding.contains("service problem"));
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.id == "pasta" && c.status == Status::Pass),
        "pasta itself is fine: {}",
        show(&report)
    );
    assert!(report.heals.is_empty(), "{}", show(&report));
    assert_eq!(started_at(tb, &name), before, "not restarted");
}

#[test]
fn heals_are_rate_limited() {
    let Some(tb) = testbed() else { return };
    let scope = Scope::new(tb, "doctor-limit");
    let (name, port) = scope.run_on_pasta("doctor-limit", "web", &[]);
    assert!(wait_answers(port));
    let mut doc = scope.doctor(true, 1);

    kill_container_pasta(tb, &name, port);
    let first = check_and_heal(tb, &mut doc);
    assert_eq!(first.heals.len(), 1, "{}", show(&first));
    assert_eq!(
        first.heals[0].outcome,
        HealOutcome::Healed,
        "{}",
        show(&first)
    );
    assert!(answers(port));

    kill_container_pasta(tb, &name, port);
    let before = started_at(tb, &name);
    let second = check_and_heal(tb, &mut doc);
    assert_eq!(second.heals.len(), 1, "{}", show(&second));
    assert_eq!(
        second.heals[0].outcome,
        HealOutcome::RateLimited,
        "{}",
        show(&second)
    );
    assert!(!second.ok());
    assert_eq!(
        started_at(tb, &name),
        before,
        "not restarted past the limit"
    );
    assert!(!answers(port), "still broken, as reported");
}

#[test]
fn doctor_json_output_has_stable_keys() {
    let Some(tb) = testbed() else { return };
    let scope = Scope::new(tb, "doctor-json");
    let (name, port) = scope.run_on_pasta("doctor-json", "web", &[]);
    assert!(wait_answers(port));
    let cfg = tempfile::tempdir().unwrap();
    let cfg_file = cfg.path().join("magos.yaml");
    std::fs::write(&cfg_file, "log:\n  level: warn\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(["--config"])
        .arg(&cfg_file)
        .args([
            "doctor",
            "--output",
            "json",
            "--no-upstream-dns",
            "--label",
            &scope.label,
        ])
        .env("CONTAINER_HOST", &tb.container_host)
        .output()
        .expect("run magos doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object().expect("an object").keys().cloned().collect()
    };
    let set = |k: &[&str]| -> BTreeSet<String> { k.iter().map(|s| s.to_string()).collect() };
    assert_eq!(
        keys(&doc),
        set(&["version", "ok", "summary", "checks", "heals"])
    );
    assert_eq!(doc["version"], 1);
    assert_eq!(
        keys(&doc["summary"]),
        set(&["pass", "warn", "fail", "skip"])
    );
    let checks = doc["checks"].as_array().unwrap();
    let statuses = set(&["pass", "warn", "fail", "skip"]);
    for c in checks {
        assert_eq!(
            keys(c),
            set(&["id", "subject", "status", "finding", "fix", "cause"]),
            "{c}"
        );
        assert!(statuses.contains(c["status"].as_str().unwrap()), "{c}");
    }
    let ids: BTreeSet<&str> = checks.iter().filter_map(|c| c["id"].as_str()).collect();
    for id in [
        "socket",
        "network_cmd",
        "tun",
        "subuid",
        "subgid",
        "linger",
        "network_mode",
        "pasta",
        "port",
    ] {
        assert!(ids.contains(id), "no `{id}` check: {text}");
    }
    let port_check = checks.iter().find(|c| c["id"] == "port").unwrap();
    assert_eq!(
        port_check["subject"],
        format!("{name} 127.0.0.1:{port}/tcp")
    );
    assert_eq!(port_check["status"], "pass");
    assert_eq!(doc["heals"], serde_json::json!([]));
    let fails = doc["summary"]["fail"].as_u64().unwrap();
    assert_eq!(doc["ok"], fails == 0);
    assert_eq!(
        out.status.code(),
        Some(if fails == 0 { 0 } else { 1 }),
        "{text}"
    );
}

/// The conmon processes of exec sessions in the containers `ids`: their `-c`
/// names the container and their `-u` the session (a container's own conmon has
/// the container's id in both). Podman keeps each for `exit_command_delay`
/// (300 s) after its command ends.
fn exec_conmons(ids: &BTreeSet<String>) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| probe::process_cmdline(Path::new("/proc"), pid))
        .filter(|cmd| cmd.first().is_some_and(|p| p.ends_with("conmon")))
        .filter(|cmd| {
            let arg = |flag: &str| cmd.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
            matches!((arg("-c"), arg("-u")), (Some(c), Some(u)) if c != u && ids.contains(&c))
        })
        .count()
}

/// Removes every container and network of an instance, in one CLI call each.
struct Instance<'a> {
    tb: &'a Testbed,
    label: String,
}

impl Drop for Instance<'_> {
    fn drop(&mut self) {
        let filter = format!("label={}", self.label);
        let ids = |args: &[&str]| -> Vec<String> {
            let out = self.tb.podman_cli(args);
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        let containers = ids(&["ps", "-aq", "--filter", &filter]);
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f", "-t", "0"];
            args.extend(containers.iter().map(String::as_str));
            let _ = self.tb.podman_cli(&args);
        }
        let networks = ids(&["network", "ls", "-q", "--filter", &filter]);
        if !networks.is_empty() {
            let mut args = vec!["network", "rm", "-f"];
            args.extend(networks.iter().map(String::as_str));
            let _ = self.tb.podman_cli(&args);
        }
    }
}

fn magos_cli(tb: &Testbed, config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_magos"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", "/root")
        .env("CONTAINER_HOST", &tb.container_host)
        .env("NO_COLOR", "1")
        .output()
        .expect("run magos")
}

/// 200 containers (50 stacks of 4 on their bridge networks, one published port
/// each) applied by `magos apply`: `magos doctor` reports them green without
/// entering any of them, so no conmon process is left behind.
#[test]
fn doctor_at_200_containers_is_green_and_leaves_no_process() {
    let Some(tb) = testbed() else { return };
    let _netns = support::rootless_netns_lock();
    let instance = support::unique_name("doctor-scale");
    let guard = Instance {
        tb,
        label: format!("io.magos.instance={instance}"),
    };
    let dir = tb.user_dir("magos-doctor-scale");
    let config = dir.path().join(".magos.yaml");
    std::fs::write(&config, format!("apply:\n  instance: {instance}\n")).unwrap();
    let repo = dir.path().join("repo");
    let image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    let pinned = format!("{image}@{}", tb.manifest_digest(image));
    let tag = instance.rsplit('-').nth(1).unwrap_or("x").to_owned();
    let ports = support::free_ports_below_ephemeral(50);
    assert_eq!(ports.len(), 50, "50 free ports below 32768");
    for (i, port) in ports.iter().enumerate() {
        let stack = repo.join(format!("ds{tag}_{i}"));
        std::fs::create_dir_all(&stack).unwrap();
        let mut text = String::from("services:\n");
        for s in 1..=4 {
            text.push_str(&format!(
                "  s{s}:\n    image: {pinned}\n    stop_signal: SIGKILL\n"
            ));
            if s == 1 {
                text.push_str(&format!("    ports: [\"127.0.0.1:{port}:8080\"]\n"));
            }
        }
        std::fs::write(stack.join("compose.yaml"), text).unwrap();
    }
    let repo_arg = repo.to_str().unwrap();
    let applied = magos_cli(tb, &config, &["apply", "--repo", repo_arg]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}",
        support::show(&applied)
    );

    let ids: BTreeSet<String> = tb
        .podman_ok(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label={}", guard.label),
        ])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 200, "200 containers run");
    assert_eq!(exec_conmons(&ids), 0, "no exec session before the doctor");
    let out = magos_cli(
        tb,
        &config,
        &[
            "doctor",
            "--output",
            "json",
            "--no-upstream-dns",
            "--label",
            &guard.label,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", support::show(&out)));
    let checks = doc["checks"].as_array().unwrap();
    let failing: Vec<&serde_json::Value> =
        checks.iter().filter(|c| c["status"] == "fail").collect();
    assert!(failing.is_empty(), "{failing:#?}");
    assert_eq!(doc["ok"], true, "{text}");
    assert_eq!(out.status.code(), Some(0), "{}", support::show(&out));
    let passed = |id: &str| {
        checks
            .iter()
            .filter(|c| c["id"] == id && c["status"] == "pass")
            .count()
    };
    assert_eq!(passed("network_mode"), 200, "{text}");
    assert_eq!(passed("port"), 50, "{text}");
    assert_eq!(passed("dns"), 200, "{text}");
    assert_eq!(passed("network_backend"), 1, "{text}");
    assert_eq!(
        exec_conmons(&ids),
        0,
        "the doctor left exec processes behind"
    );
    drop(guard);
}

/// netavark's firewall program missing from the PATH Podman runs it with: the
/// `network_backend` check fails and names the package; with it, it passes.
#[test]
fn a_missing_firewall_program_fails_the_backend_check_and_names_its_package() {
    let Some(tb) = testbed() else { return };
    let scope = Scope::new(tb, "doctor-backend");
    let run = |path: &str| {
        let mut doc = Doctor::new(DoctorOptions {
            search_path: Some(path.to_owned()),
            ..scope.doctor(false, 3).options().clone()
        });
        let report = check_and_heal(tb, &mut doc);
        report
            .checks
            .into_iter()
            .find(|c| c.id == "network_backend")
            .expect("a network_backend check")
    };
    // The test bed's netavark (Debian 13) uses nftables by default.
    let bare = tempfile::tempdir().unwrap();
    let missing = run(bare.path().to_str().unwrap());
    assert_eq!(missing.status, Status::Fail, "{missing:?}");
    assert_eq!(missing.cause, Some(Cause::Outside));
    assert!(missing.finding.contains("no `nft`"), "{}", missing.finding);
    assert_eq!(
        missing.fix.as_deref(),
        Some("as root: apt install nftables"),
        "{missing:?}"
    );
    let found = run("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin");
    assert_eq!(found.status, Status::Pass, "{found:?}");
    assert!(found.finding.contains("nft"), "{}", found.finding);
}
