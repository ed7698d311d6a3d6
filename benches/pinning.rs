//! The pin pass of `magos check` against `podman auto-update --dry-run`: 50
//! services over 10 repositories on the test bed's registry
//! (`scripts/testbed.sh`), requests and wall time of each. `cargo bench --bench
//! pinning`; prints a Markdown table. Without the test bed it says so and exits
//! 0 (a benchmark, not a test).
//!
//! `podman auto-update` talks to the systemd user manager over D-Bus before it
//! looks at any image, even with `--dry-run`; a host without a user manager
//! fails at `lstat $XDG_RUNTIME_DIR/systemd`. The benchmark gives it a
//! stand-in: a `dbus-daemon` listening on `$XDG_RUNTIME_DIR/systemd/private`
//! (a dry run asks it nothing) and containers labelled with a made-up
//! `PODMAN_SYSTEMD_UNIT`; both are removed afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use magos::core::stacks::Selection;
use magos::registry::{RegistryClient, Settings};

const REPOS: usize = 10;
const TAGS: [&str; 5] = ["1.0.0", "1.2.0", "1.2.3", "2.0.0", "v2.3.1"];
const RUNS: usize = 7;

fn testbed() -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string("/run/magos-testbed/env").ok()?;
    let vars: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (vars.get("MAGOS_TESTBED_READY").map(String::as_str) == Some("1")).then_some(vars)
}

/// A command as the test user, with its runtime folder.
fn as_user(vars: &BTreeMap<String, String>, program: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", &vars["MAGOS_TESTBED_USER"], "--", "env", "-i"])
        .arg(format!("HOME={}", vars["MAGOS_TESTBED_HOME"]))
        .arg("PATH=/usr/local/bin:/usr/bin:/bin")
        .arg(format!(
            "XDG_RUNTIME_DIR={}",
            vars["XDG_RUNTIME_DIR_TESTBED"]
        ))
        .arg("PODMAN_IGNORE_CGROUPSV1_WARNING=1")
        .arg(program)
        .current_dir("/");
    c
}

fn run_ok(mut c: Command, what: &str) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Podman's requests for the bench repositories in the registry's access log after
/// line `from`, once a marker request made now has been logged.
fn logged_requests(log: &Path, registry: &str, from: usize, marker: &str) -> Vec<String> {
    let _ = Command::new("curl")
        .args(["-s", "-o", "/dev/null"])
        .arg(format!("http://{registry}/v2/_catalog?n=1&last={marker}"))
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<String> = text.lines().skip(from).map(str::to_owned).collect();
        if let Some(end) = lines.iter().position(|l| l.contains(marker)) {
            // The bench repositories, and the API probes Podman's image
            // library makes before each of them (`GET /v2/`).
            return lines[..end]
                .iter()
                .filter(|l| {
                    l.contains("/v2/magos/bench-")
                        || (l.contains("\"GET /v2/ ") && l.contains("containers/"))
                })
                .cloned()
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "the marker never reached {log:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn line_count(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .count()
}

fn main() {
    let Some(vars) = testbed() else {
        println!("pinning benchmark skipped: the test bed is not available");
        return;
    };
    let registry = vars["MAGOS_TEST_REGISTRY"].clone();
    let semver = vars["MAGOS_TEST_IMAGE_SEMVER"].clone();
    let access_log = PathBuf::from(&vars["MAGOS_TEST_REGISTRY_ACCESS_LOG"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut settings = Settings::default();
    settings.insecure.add_host(&registry);

    // Ten repositories with five tags each, copied from the semver image once.
    let have = |repo: &str| -> Vec<String> {
        let out = Command::new("curl")
            .args(["-s", &format!("http://{registry}/v2/{repo}/tags/list")])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["tags"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect()
    };
    for r in 0..REPOS {
        let repo = format!("magos/bench-{r}");
        let tags = have(&repo);
        for tag in TAGS.iter().filter(|t| !tags.iter().any(|h| h == *t)) {
            let mut c = as_user(&vars, "skopeo");
            c.args([
                "copy",
                "-q",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .arg(format!("docker://{semver}:{tag}"))
            .arg(format!("docker://{registry}/{repo}:{tag}"));
            run_ok(c, "skopeo copy");
        }
    }

    // The repository: ten stacks of five services, semver ^1 or ^2.
    let dir = tempfile::tempdir().unwrap();
    for r in 0..REPOS {
        let mut text = String::from("services:\n");
        for (i, tag) in TAGS.iter().enumerate() {
            let range = if tag.starts_with('1') { "^1" } else { "^2" };
            text.push_str(&format!(
                "  s{i}:\n    image: {registry}/magos/bench-{r}:{tag} # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"{range}\"}}}}\n"
            ));
        }
        let stack = dir.path().join(format!("stack-{r}"));
        std::fs::create_dir_all(&stack).unwrap();
        std::fs::write(stack.join("compose.yaml"), text).unwrap();
    }

    let mut times = Vec::new();
    let mut counts = None;
    let mut updates = 0;
    for _ in 0..RUNS {
        // A new client each run: no token, connection or answer is reused.
        let client = RegistryClient::new(settings.clone());
        let start = Instant::now();
        let pass = rt
            .block_on(magos::pin::pass(
                &client.check(),
                dir.path(),
                &Selection::default(),
                &BTreeMap::new(),
                SystemTime::now(),
            ))
            .unwrap();
        times.push(start.elapsed());
        assert!(!pass.has_errors(), "{:?}", pass.rows);
        assert_eq!(pass.rows.len(), REPOS * TAGS.len());
        updates = pass.updates.len();
        counts = Some(client.request_counts(&registry));
    }
    let counts = counts.unwrap();
    let magos_time = median(times);

    // podman auto-update --dry-run on 50 equivalent containers.
    let podman = podman_side(&vars, &registry, &access_log);

    println!(
        "| tool | services | repositories | requests | tag lists / HEAD / GET manifest / other | wall time (median of {RUNS}) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| `magos check` (pin pass: repository + policies + registry) | {} | {REPOS} | {} | {} / {} / {} / {} | {:.0} ms |",
        REPOS * TAGS.len(),
        counts.registry_requests() + counts.token_gets,
        counts.tag_pages,
        counts.manifest_heads,
        counts.manifest_gets,
        counts.registry_requests() + counts.token_gets
            - counts.tag_pages
            - counts.manifest_heads
            - counts.manifest_gets,
        magos_time.as_secs_f64() * 1000.0
    );
    match podman {
        Ok((requests, lists, heads, gets, time)) => println!(
            "| `podman auto-update --dry-run` | {} | {REPOS} | {requests} | {lists} / {heads} / {gets} / {} | {:.0} ms |",
            REPOS * TAGS.len(),
            requests - lists - heads - gets,
            time.as_secs_f64() * 1000.0
        ),
        Err(why) => {
            println!("| `podman auto-update --dry-run` | - | - | - | - | could not run: {why} |")
        }
    }
    println!("\n(magos: {updates} of the services have an update to pin)");
}

type PodmanNumbers = (usize, usize, usize, usize, Duration);

fn podman_side(
    vars: &BTreeMap<String, String>,
    registry: &str,
    access_log: &Path,
) -> Result<PodmanNumbers, String> {
    let runtime_dir = PathBuf::from(&vars["XDG_RUNTIME_DIR_TESTBED"]);
    let systemd_dir = runtime_dir.join("systemd");
    if systemd_dir.exists() {
        return Err(format!(
            "{} exists; not replacing a real user manager",
            systemd_dir.display()
        ));
    }
    std::fs::create_dir_all(&systemd_dir).map_err(|e| e.to_string())?;
    let uid: u32 = vars["MAGOS_TESTBED_UID"].parse().unwrap();
    let gid: u32 = vars["MAGOS_TESTBED_GID"].parse().unwrap();
    std::os::unix::fs::chown(&systemd_dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        conf.path(),
        format!(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \
             \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig><type>session</type>\
             <listen>unix:path={}/private</listen><auth>EXTERNAL</auth>\
             <policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>\
             <allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>\n",
            systemd_dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        conf.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    // Forked, so it does not hold this process's output open; stopped by pid.
    let mut daemon = as_user(vars, "dbus-daemon");
    daemon
        .arg(format!("--config-file={}", conf.path().display()))
        .args(["--fork", "--print-pid"]);
    let pid = run_ok(daemon, "dbus-daemon").trim().to_owned();
    if pid.parse::<u32>().is_err() {
        let _ = std::fs::remove_dir_all(&systemd_dir);
        return Err(format!("dbus-daemon printed no pid: {pid:?}"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !systemd_dir.join("private").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }

    let names: Vec<String> = (0..REPOS * TAGS.len())
        .map(|i| format!("magos-bench-autoupdate-{i}"))
        .collect();
    let result = run_podman(vars, registry, access_log, &names);

    let mut rm = as_user(vars, "podman");
    rm.args(["rm", "-f", "-t", "0"]).args(&names);
    let _ = rm.output();
    let _ = Command::new("kill").arg(&pid).status();
    let _ = std::fs::remove_dir_all(&systemd_dir);
    result
}

fn run_podman(
    vars: &BTreeMap<String, String>,
    registry: &str,
    access_log: &Path,
    names: &[String],
) -> Result<PodmanNumbers, String> {
    for (i, name) in names.iter().enumerate() {
        let mut c = as_user(vars, "podman");
        c.args([
            "run",
            "-d",
            "--replace",
            "--tls-verify=false",
            "--name",
            name,
        ])
        .args(["--label", "io.containers.autoupdate=registry"])
        .args([
            "--label",
            &format!("PODMAN_SYSTEMD_UNIT=magos-bench-{i}.service"),
        ])
        .arg(format!(
            "{registry}/magos/bench-{}:{}",
            i / TAGS.len(),
            TAGS[i % TAGS.len()]
        ))
        .args(["sleep", "3600"]);
        run_ok(c, "podman run");
    }
    let mut times = Vec::new();
    let mut logged = Vec::new();
    for run in 0..RUNS {
        let from = line_count(access_log);
        let mut c = as_user(vars, "podman");
        c.args(["auto-update", "--dry-run", "--tls-verify=false"]);
        let start = Instant::now();
        let out = run_ok(c, "podman auto-update --dry-run");
        times.push(start.elapsed());
        assert_eq!(
            out.lines().filter(|l| l.contains("magos-bench-")).count(),
            REPOS * TAGS.len(),
            "{out}"
        );
        logged = logged_requests(access_log, registry, from, &format!("pinning-marker-{run}"));
    }
    let lists = logged.iter().filter(|l| l.contains("/tags/list")).count();
    let heads = logged
        .iter()
        .filter(|l| l.contains("\"HEAD ") && l.contains("/manifests/"))
        .count();
    let gets = logged
        .iter()
        .filter(|l| l.contains("\"GET ") && l.contains("/manifests/"))
        .count();
    Ok((logged.len(), lists, heads, gets, median(times)))
}
