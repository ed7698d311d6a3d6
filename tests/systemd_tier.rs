//! The real-systemd tier: Magos installed as a user would, against a real systemd 257
//! booted in `systemd-nspawn` by `scripts/systemd-tier.sh` (see that script for the
//! guest's layout). Each test boots its own guest and takes it down when it ends.
//!
//! Skip rule: the tier needs root, `systemd-nspawn`, `nsenter` and `mmdebstrap` (or the
//! cached root filesystem), which `scripts/testbed.sh` installs, and the test bed's
//! registry on 127.0.0.1 for the stack images. When something is missing and
//! `MAGOS_REQUIRE_SYSTEMD=1`, the test fails; otherwise it prints `skipped: …` and
//! returns. `scripts/test.sh` runs this tier with `MAGOS_REQUIRE_SYSTEMD=1`.
//!
//! The tests that run Magos itself need `magos run`; they fail when the binary lacks
//! it. The hang that the watchdog test provokes is a real one: Podman's API service
//! frozen with SIGSTOP, so a pass stalls past `daemon.stuck_after`.
//!
//! Network: the guest shares the host's network; everything here reaches 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const GUEST_USER: &str = "magos";
const GUEST_UID: u32 = 1000;
const UNIT: &str = "magos-dominus.service";
/// Loopback ports the guest's containers publish (the guest shares the host's network).
const QUADLET_PORT: u16 = 18431;
const STACK_PORT: u16 = 18432;
const CONTAINER_STACK_PORT: u16 = 18433;
/// Magos's HTTP endpoints (`daemon.listen`) in the two guests that run it.
const LISTEN_PORT: u16 = 18434;
const CONTAINER_LISTEN_PORT: u16 = 18435;
const ROOT_LISTEN_PORT: u16 = 18436;
/// The web service of the stack the `quadlet` runtime runs.
const QUADLET_STACK_PORT: u16 = 18437;
/// `daemon.stuck_after` in the guests: a step stalled this long stops the pings.
const STUCK_AFTER: &str = "3s";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo().join("scripts/systemd-tier.sh")
}

/// Why the tier cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if !root {
        return Some("the tier boots a container and must run as root".into());
    }
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    };
    for tool in ["systemd-nspawn", "nsenter"] {
        if !on_path(tool) {
            return Some(format!(
                "{tool} is not installed (scripts/testbed.sh installs it)"
            ));
        }
    }
    let cached = Path::new(&cache_dir()).join("guest.tar").is_file();
    if !cached && !on_path("mmdebstrap") {
        return Some("mmdebstrap is not installed (scripts/testbed.sh installs it)".into());
    }
    if registry().is_none() {
        return Some("the test bed's registry is not described (run scripts/testbed.sh)".into());
    }
    None
}

fn cache_dir() -> String {
    std::env::var("MAGOS_TIER_CACHE")
        .unwrap_or_else(|_| "/var/lib/magos-testbed/systemd-tier".into())
}

/// The test bed's values: the process environment first, then its env file.
fn testbed_var(key: &str) -> Option<String> {
    if let Ok(v) = std::env::var(key) {
        return Some(v);
    }
    let path =
        std::env::var("MAGOS_TESTBED_ENV").unwrap_or_else(|_| "/run/magos-testbed/env".into());
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// The httpd image of the test bed's registry, which must be on 127.0.0.1.
fn registry() -> Option<String> {
    testbed_var("MAGOS_TEST_IMAGE_HTTPD").filter(|i| i.starts_with("127.0.0.1:"))
}

/// `true` when the tier can run; otherwise prints why it is skipped, or panics under
/// `MAGOS_REQUIRE_SYSTEMD=1`.
fn tier_available() -> bool {
    let Some(reason) = missing_prerequisite() else {
        return true;
    };
    if std::env::var("MAGOS_REQUIRE_SYSTEMD").as_deref() == Ok("1") {
        panic!("the systemd tier is required (MAGOS_REQUIRE_SYSTEMD=1) but cannot run: {reason}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\nskipped: systemd tier not available ({reason})"
    );
    false
}

/// Fails the test when this build of Magos has no `magos run`.
fn require_magos_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(["run", "--help"])
        .output()
        .expect("run the magos binary");
    assert!(
        out.status.success(),
        "this magos binary has no working `magos run` (magos run --help: {}); \
         the magos-dominus service tier needs it\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn show(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The standard output of a command that must have succeeded; otherwise the
/// test fails with `what` and the whole output.
fn stdout_ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}\n{}", show(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A booted guest; taken down when dropped.
struct Guest {
    dir: PathBuf,
}

impl Guest {
    fn up(name: &str) -> Guest {
        let dir = PathBuf::from("/var/tmp/magos-systemd-tier").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let guest = Guest { dir };
        let out = guest.script(&["up", "--binary", env!("CARGO_BIN_EXE_magos")]);
        assert!(out.status.success(), "systemd-tier.sh up\n{}", show(&out));
        guest
    }

    fn script(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(script())
            .args(args)
            .env("MAGOS_TIER_DIR", &self.dir)
            .output()
            .expect("run scripts/systemd-tier.sh")
    }

    /// The guest's root filesystem, as seen from the host.
    fn path(&self, guest_path: &str) -> PathBuf {
        self.dir
            .join("rootfs")
            .join(guest_path.trim_start_matches('/'))
    }

    /// Writes a file into the guest user's home, owned by the user.
    fn write_home(&self, rel: &str, text: &str) {
        let home = self.path(&format!("/home/{GUEST_USER}"));
        let path = home.join(rel);
        let mut dir = path.parent().unwrap().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, text).unwrap();
        std::os::unix::fs::chown(&path, Some(GUEST_UID), Some(GUEST_UID)).unwrap();
        while dir != home {
            std::os::unix::fs::chown(&dir, Some(GUEST_UID), Some(GUEST_UID)).unwrap();
            dir = dir.parent().unwrap().to_path_buf();
        }
    }

    /// `scripts/systemd-tier.sh <verb> <args>…`.
    fn verb(&self, verb: &str, args: &[&str]) -> Output {
        let mut all = vec![verb];
        all.extend_from_slice(args);
        self.script(&all)
    }

    /// Runs a command as the guest user, inside its `systemd --user` manager.
    fn user(&self, cmd: &[&str]) -> Output {
        self.verb("user", cmd)
    }

    /// Like [`Guest::user`], failing the test unless the command succeeds; its stdout.
    fn user_ok(&self, cmd: &[&str]) -> String {
        stdout_ok(
            &self.user(cmd),
            &format!("as {GUEST_USER} in the guest: {cmd:?}"),
        )
    }

    /// `systemctl --user` of the guest user.
    fn ctl(&self, args: &[&str]) -> Output {
        self.verb("ctl", args)
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        stdout_ok(&self.ctl(args), &format!("systemctl --user {args:?}"))
    }

    /// `systemctl --user start`, failing the test with the unit's diagnostics
    /// unless it succeeds.
    fn start(&self, unit: &str) {
        let start = self.ctl(&["start", unit]);
        assert!(
            start.status.success(),
            "{}\n{}",
            show(&start),
            self.diagnostics(unit)
        );
    }

    fn active(&self, unit: &str) -> bool {
        self.ctl(&["is-active", "--quiet", unit]).status.success()
    }

    /// One property of a user unit.
    fn prop(&self, unit: &str, name: &str) -> String {
        self.ctl_ok(&["show", "-P", name, unit]).trim().to_string()
    }

    /// The journal of one of the guest user's units: the manager's messages about it
    /// and its own output.
    fn journal(&self, unit: &str) -> String {
        let about = format!("USER_UNIT={unit}");
        let own = format!("_SYSTEMD_USER_UNIT={unit}");
        let out = self.script(&[
            "raw",
            "journalctl",
            "--no-pager",
            "-q",
            "-o",
            "cat",
            &about,
            "+",
            &own,
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the unit's journal holds `text`.
    fn wait_journal(&self, unit: &str, text: &str) {
        wait_for(
            &format!("{text:?} in the journal of {unit}"),
            Duration::from_secs(30),
            || self.journal(unit).contains(text),
            || self.diagnostics(unit),
        );
    }

    fn diagnostics(&self, unit: &str) -> String {
        let status = self.ctl(&["status", "--no-pager", "-l", unit]);
        format!("{}\njournal:\n{}", show(&status), self.journal(unit))
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let out = self.script(&["down"]);
        if !out.status.success() {
            let _ = writeln!(
                std::io::stderr(),
                "systemd-tier.sh down failed\n{}",
                show(&out)
            );
        }
    }
}

/// Polls `cond` until it holds or `limit` passes; then fails with `what` and `detail`.
fn wait_for(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
    detail: impl FnOnce() -> String,
) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out after {limit:?} waiting for {what}\n{}", detail());
}

/// An HTTP answer from a port on the host's loopback, if any.
fn http_get(port: u16) -> Option<String> {
    http_get_path(port, "/")
}

fn http_get_path(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.starts_with("HTTP/1.").then_some(buf)
}

/// The guest user's `podman.socket`, enabled and listening, with no Podman service.
fn enable_podman_socket(g: &Guest) {
    g.ctl_ok(&["enable", "--now", "podman.socket"]);
    assert!(g.active("podman.socket"), "podman.socket is not listening");
    assert!(
        !g.active("podman.service"),
        "a Podman service runs before anything used the socket"
    );
}

/// The tier itself, with no Magos: a user manager with linger, Podman's socket
/// activation, a Quadlet unit running a container from the test registry, and a
/// `Type=notify` service restarted by the watchdog when it stops pinging.
#[test]
fn systemd_tier_podman_quadlet_and_watchdog() {
    if !tier_available() {
        return;
    }
    let image = registry().unwrap();
    let g = Guest::up("tier");

    assert_eq!(
        g.script(&["raw", "loginctl", "show-user", GUEST_USER, "-P", "Linger"])
            .stdout,
        b"yes\n"
    );
    enable_podman_socket(&g);
    let remote = g.user_ok(&[
        "podman",
        "--remote",
        "info",
        "--format",
        "{{.Host.ServiceIsRemote}}",
    ]);
    assert_eq!(remote.trim(), "true");
    assert!(
        g.active("podman.service"),
        "podman.service was not socket-activated"
    );

    // Quadlet: a .container in the user's folder becomes a unit that runs the image.
    g.write_home(
        ".config/containers/systemd/tier-httpd.container",
        &format!(
            "[Container]\nImage={image}\nPublishPort=127.0.0.1:{QUADLET_PORT}:8080\n\
             [Service]\nTimeoutStartSec=120\n"
        ),
    );
    g.ctl_ok(&["daemon-reload"]);
    assert_eq!(
        g.prop("tier-httpd.service", "FragmentPath"),
        format!("/run/user/{GUEST_UID}/systemd/generator/tier-httpd.service")
    );
    g.start("tier-httpd.service");
    wait_for(
        "the Quadlet container to serve HTTP on 127.0.0.1",
        Duration::from_secs(60),
        || http_get(QUADLET_PORT).is_some(),
        || g.diagnostics("tier-httpd.service"),
    );
    g.ctl_ok(&["stop", "tier-httpd.service"]);
    assert!(
        http_get(QUADLET_PORT).is_none(),
        "the container still serves after stop"
    );

    // Type=notify: READY and STATUS pass, and missed WATCHDOG=1 pings restart it.
    g.write_home(
        ".config/systemd/user/tier-notify.service",
        "[Service]\nType=notify\nNotifyAccess=all\nWatchdogSec=3s\nRestart=on-watchdog\nRestartSec=1s\n\
         ExecStart=/bin/sh -c 'systemd-notify --ready --status=serving; \
         for i in 1 2 3; do sleep 1; systemd-notify WATCHDOG=1; done; \
         systemd-notify --status=hung; exec sleep 3600'\n",
    );
    g.ctl_ok(&["daemon-reload"]);
    g.ctl_ok(&["start", "tier-notify.service"]);
    assert_eq!(g.prop("tier-notify.service", "ActiveState"), "active");
    let first = g.prop("tier-notify.service", "MainPID");
    wait_for(
        "the watchdog to restart tier-notify.service",
        Duration::from_secs(60),
        || {
            g.prop("tier-notify.service", "NRestarts")
                .parse::<u32>()
                .unwrap_or(0)
                >= 1
        },
        || g.diagnostics("tier-notify.service"),
    );
    wait_for(
        "tier-notify.service to come back",
        Duration::from_secs(30),
        || g.prop("tier-notify.service", "ActiveState") == "active",
        || g.diagnostics("tier-notify.service"),
    );
    assert_ne!(g.prop("tier-notify.service", "MainPID"), first);
    g.wait_journal("tier-notify.service", "Watchdog timeout");
    g.wait_journal("tier-notify.service", "Failed with result 'watchdog'");
    g.ctl_ok(&["stop", "tier-notify.service"]);
}

/// A GitOps repository in the guest user's home with one stack whose image
/// follows the moving tag `1` (so Magos pins it and pushes the pin), and Magos's
/// configuration pointing at it.
fn seed_repository_and_config(g: &Guest, image: &str, port: u16, listen: u16) {
    g.write_home(
        "seed/web/compose.yaml",
        &format!(
            "services:\n  httpd:\n    image: {image} # {{\"magos\": {{\"policy\": \"latest\", \"tag\": \"1\"}}}}\n    ports:\n      - \"127.0.0.1:{port}:8080\"\n"
        ),
    );
    g.user_ok(&[
        "sh",
        "-ec",
        "cd ~/seed && git init -q -b main && git add -A && \
         git -c user.name=tier -c user.email=tier@localhost commit -q -m stack && \
         git clone -q --bare ~/seed ~/gitops.git",
    ]);
    let registry = image.split('/').next().unwrap();
    g.write_home(
        ".config/magos/magos.yaml",
        &format!(
            "repo:\n  url: file:///home/{GUEST_USER}/gitops.git\n  branch: main\n\
             registries:\n  insecure: [\"{registry}\"]\n\
             daemon:\n  listen: 127.0.0.1:{listen}\n  stuck_after: {STUCK_AFTER}\n"
        ),
    );
}

/// `magos-dominus.service` installed with `scripts/install.sh`: it socket-activates
/// Podman, reaches READY with a status, converges a stack, and systemd's watchdog
/// restarts it when its loop hangs.
#[test]
fn systemd_tier_magos_dominus_service() {
    if !tier_available() {
        return;
    }
    require_magos_run();
    let image = registry().unwrap();
    let g = Guest::up("service");
    seed_repository_and_config(&g, &image, STACK_PORT, LISTEN_PORT);

    let install = g.user_ok(&[
        "/opt/magos/src/scripts/install.sh",
        "--binary",
        "/opt/magos/bin/magos",
    ]);
    assert!(
        install.contains(&format!("installed  /home/{GUEST_USER}/.local/bin/magos")),
        "{install}"
    );
    assert!(
        install.contains("kept       "),
        "the install replaced the configuration\n{install}"
    );
    assert!(
        !install.contains("enable-linger"),
        "linger is on, yet install.sh asks for it\n{install}"
    );
    assert_eq!(g.prop(UNIT, "UnitFileState"), "enabled");
    assert_eq!(g.prop("podman.socket", "UnitFileState"), "enabled");
    assert!(g.active("podman.socket"), "podman.socket is not listening");
    assert!(
        !g.active("podman.service"),
        "a Podman service runs before Magos started"
    );

    // Type=notify: `start` returns once Magos said READY=1.
    g.start(UNIT);
    assert_eq!(
        g.prop(UNIT, "ActiveState"),
        "active",
        "{}",
        g.diagnostics(UNIT)
    );
    let status = g.prop(UNIT, "StatusText");
    assert!(
        !status.is_empty(),
        "no STATUS= after READY\n{}",
        g.diagnostics(UNIT)
    );
    // The API service may already have exited when idle; that it ever started shows
    // the activation.
    assert_ne!(
        g.prop("podman.service", "ActiveEnterTimestampMonotonic"),
        "0",
        "Magos did not socket-activate Podman\n{}",
        g.diagnostics(UNIT)
    );

    wait_for(
        "the stack from the repository to serve on 127.0.0.1",
        Duration::from_secs(120),
        || http_get(STACK_PORT).is_some(),
        || g.diagnostics(UNIT),
    );
    let ps = g.user_ok(&[
        "podman",
        "ps",
        "--filter",
        "label=io.magos.managed",
        "--format",
        "{{.Names}}",
    ]);
    assert!(
        ps.lines().any(|n| n.starts_with("web_httpd")),
        "managed containers: {ps}"
    );
    wait_for(
        "a status that says the stack is in sync",
        Duration::from_secs(60),
        || g.prop(UNIT, "StatusText").contains("1/1 stacks in sync"),
        || g.diagnostics(UNIT),
    );

    // The HTTP endpoint answers on the loopback (the guest shares the host's).
    let ready = http_get_path(LISTEN_PORT, "/readyz").unwrap_or_default();
    assert!(
        ready.starts_with("HTTP/1.1 200") || ready.starts_with("HTTP/1.0 200"),
        "GET /readyz: {ready}"
    );

    // A reload is a SIGHUP; the service stays up.
    g.ctl_ok(&["reload", UNIT]);
    assert_eq!(
        g.prop(UNIT, "ActiveState"),
        "active",
        "{}",
        g.diagnostics(UNIT)
    );

    // The watchdog. A real hang: Podman's API service frozen (SIGSTOP) accepts
    // connections and never answers; the pass that SIGHUP starts stalls on it past
    // daemon.stuck_after, Magos stops petting the watchdog, and systemd restarts it.
    g.write_home(
        &format!(".config/systemd/user/{UNIT}.d/50-short-watchdog.conf"),
        "[Service]\nWatchdogSec=5s\nRestartSec=1s\n",
    );
    g.ctl_ok(&["daemon-reload"]);
    g.ctl_ok(&["restart", UNIT]);
    assert_eq!(g.prop(UNIT, "WatchdogUSec"), "5s");
    let before = g.prop(UNIT, "MainPID");
    let restarts = g.prop(UNIT, "NRestarts").parse::<u32>().unwrap_or(0);
    // Wake the API service (it exits when idle), then freeze every process of it
    // (rootless Podman serves from a re-executed child); retried if it exited first.
    let frozen = (0..5).any(|_| {
        g.user_ok(&[
            "podman",
            "--remote",
            "info",
            "--format",
            "{{.Host.ServiceIsRemote}}",
        ]);
        g.ctl(&["kill", "-s", "SIGSTOP", "podman.service"])
            .status
            .success()
            && g.active("podman.service")
    });
    assert!(
        frozen,
        "could not freeze a running podman.service\n{}",
        g.diagnostics("podman.service")
    );
    // --no-block: a reload job lasts until READY=1, which a hung pass never sends.
    g.ctl_ok(&["reload", "--no-block", UNIT]);
    wait_for(
        "the watchdog to restart magos-dominus.service, hung on a frozen Podman",
        Duration::from_secs(90),
        || g.prop(UNIT, "NRestarts").parse::<u32>().unwrap_or(0) > restarts,
        || g.diagnostics(UNIT),
    );
    g.wait_journal(UNIT, "Watchdog timeout");
    g.wait_journal(UNIT, "Failed with result 'watchdog'");
    assert_ne!(g.prop(UNIT, "MainPID"), before);
    // Podman thawed, the restarted Magos finishes its first pass and is ready again.
    g.ctl_ok(&["kill", "-s", "SIGCONT", "podman.service"]);
    wait_for(
        "the restarted magos-dominus.service to be ready",
        Duration::from_secs(120),
        || g.prop(UNIT, "ActiveState") == "active" && g.prop(UNIT, "SubState") == "running",
        || g.diagnostics(UNIT),
    );
    g.ctl_ok(&["stop", UNIT]);

    // Uninstall removes the unit; the configuration stays.
    g.user_ok(&["/opt/magos/src/scripts/install.sh", "--uninstall"]);
    assert!(
        !g.path(&format!("/home/{GUEST_USER}/.config/systemd/user/{UNIT}"))
            .exists()
    );
    assert!(
        g.path(&format!("/home/{GUEST_USER}/.config/magos/magos.yaml"))
            .exists()
    );
}

/// `magos-dominus.container`: the image built from `quadlet/Containerfile` with the
/// binary under test, generated into a unit by Quadlet, started, READY passed through.
#[test]
fn systemd_tier_magos_dominus_container() {
    if !tier_available() {
        return;
    }
    require_magos_run();
    let image = registry().unwrap();
    let g = Guest::up("container");
    seed_repository_and_config(&g, &image, CONTAINER_STACK_PORT, CONTAINER_LISTEN_PORT);
    enable_podman_socket(&g);

    g.user_ok(&[
        "podman",
        "import",
        "/opt/magos/cache/image-base.tar",
        "localhost/magos-base:trixie",
    ]);
    g.user_ok(&[
        "podman",
        "build",
        "--pull=never",
        "--build-arg",
        "BASE=localhost/magos-base:trixie",
        "-f",
        "/opt/magos/src/quadlet/Containerfile",
        "-t",
        "localhost/magos-dominus:latest",
        "/opt/magos/bin",
    ]);
    // What the unit mounts: the state folder, the age key, and (a drop-in, as a user
    // would add for a repository on this machine) the git remote at the same path.
    g.user_ok(&[
        "mkdir",
        "-p",
        &format!("/home/{GUEST_USER}/.local/state/magos"),
    ]);
    g.write_home(
        ".config/sops/age/keys.txt",
        "# age identities for SOPS files (none used by this stack)\n",
    );
    g.write_home(
        ".config/containers/systemd/magos-dominus.container.d/10-repo.conf",
        &format!("[Container]\nVolume=%h/gitops.git:/home/{GUEST_USER}/gitops.git:ro\n"),
    );
    std::fs::copy(
        repo().join("quadlet/magos-dominus.container"),
        g.path(&format!(
            "/home/{GUEST_USER}/.config/containers/systemd/magos-dominus.container"
        )),
    )
    .unwrap();
    g.ctl_ok(&["daemon-reload"]);
    assert_eq!(
        g.prop(UNIT, "FragmentPath"),
        format!("/run/user/{GUEST_UID}/systemd/generator/{UNIT}")
    );

    g.start(UNIT);
    assert_eq!(
        g.prop(UNIT, "ActiveState"),
        "active",
        "{}",
        g.diagnostics(UNIT)
    );
    assert!(
        !g.prop(UNIT, "StatusText").is_empty(),
        "no STATUS= through Notify=true\n{}",
        g.diagnostics(UNIT)
    );
    let ps = g.user_ok(&[
        "podman",
        "ps",
        "--filter",
        "name=^magos-dominus$",
        "--format",
        "{{.Image}}",
    ]);
    assert_eq!(ps.trim(), "localhost/magos-dominus:latest");
    wait_for(
        "the containerised Magos to converge the stack",
        Duration::from_secs(120),
        || http_get(CONTAINER_STACK_PORT).is_some(),
        || g.diagnostics(UNIT),
    );
    g.ctl_ok(&["stop", UNIT]);
}

/// The same unit as a root system service (`install.sh --system`): it talks to the
/// system's socket-activated Podman at /run/podman/podman.sock and reaches READY.
#[test]
fn systemd_tier_magos_dominus_root_service() {
    if !tier_available() {
        return;
    }
    require_magos_run();
    let g = Guest::up("root");
    // An empty repository: rootful containers would need a firewall in the guest,
    // and this test is about the unit, the socket and readiness.
    let seed = g.path("/root/seed");
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(seed.join("README"), "no stacks yet\n").unwrap();
    root_ok(
        &g,
        &[
            "sh",
            "-ec",
            "cd /root/seed && git init -q -b main && git add -A && \
             git -c user.name=tier -c user.email=tier@localhost commit -q -m empty && \
             git clone -q --bare /root/seed /root/gitops.git",
        ],
    );
    std::fs::create_dir_all(g.path("/etc/magos")).unwrap();
    std::fs::write(
        g.path("/etc/magos/magos.yaml"),
        format!(
            "repo:\n  url: file:///root/gitops.git\n  branch: main\n\
             daemon:\n  listen: 127.0.0.1:{ROOT_LISTEN_PORT}\n"
        ),
    )
    .unwrap();

    let install = root_ok(
        &g,
        &[
            "/opt/magos/src/scripts/install.sh",
            "--system",
            "--binary",
            "/opt/magos/bin/magos",
        ],
    );
    assert!(
        install.contains("installed  /usr/local/bin/magos"),
        "{install}"
    );
    assert!(
        install.contains("kept       /etc/magos/magos.yaml"),
        "{install}"
    );
    let sys = |args: &[&str]| {
        let mut all = vec!["raw", "systemctl"];
        all.extend_from_slice(args);
        g.script(&all)
    };
    let prop = |name: &str, unit: &str| {
        String::from_utf8_lossy(&sys(&["show", "-P", name, unit]).stdout)
            .trim()
            .to_string()
    };
    let listen = prop("Listen", "podman.socket");
    assert!(
        listen.contains("/run/podman/podman.sock"),
        "podman.socket listens on {listen}"
    );
    // As a system service the unit's %t is /run: Podman's root socket, and the
    // private folder of decrypted secrets under /run/magos.
    assert_eq!(
        prop("Environment", UNIT),
        "CONTAINER_HOST=unix:///run/podman/podman.sock XDG_RUNTIME_DIR=/run"
    );
    assert_eq!(prop("ActiveState", "podman.socket"), "active");
    assert_ne!(prop("ActiveState", "podman.service"), "active");
    let exec = prop("ExecStart", UNIT);
    assert!(
        exec.contains("path=/usr/local/bin/magos"),
        "ExecStart: {exec}"
    );

    let start = sys(&["start", UNIT]);
    let status =
        || String::from_utf8_lossy(&sys(&["status", "--no-pager", "-l", UNIT]).stdout).into_owned();
    assert!(start.status.success(), "{}\n{}", show(&start), status());
    assert_eq!(prop("ActiveState", UNIT), "active", "{}", status());
    assert!(!prop("StatusText", UNIT).is_empty(), "{}", status());
    assert_ne!(
        prop("ActiveEnterTimestampMonotonic", "podman.service"),
        "0",
        "Magos did not socket-activate the system's Podman\n{}",
        status()
    );
    let stop = sys(&["stop", UNIT]);
    assert!(stop.status.success(), "{}", show(&stop));
    root_ok(
        &g,
        &[
            "/opt/magos/src/scripts/install.sh",
            "--system",
            "--uninstall",
        ],
    );
    assert!(!g.path("/etc/systemd/system/magos-dominus.service").exists());
    assert!(!g.path("/usr/local/bin/magos").exists());
}

/// Runs a command as root in the guest (a transient system unit); its stdout.
fn root_ok(g: &Guest, cmd: &[&str]) -> String {
    stdout_ok(
        &g.verb("root", cmd),
        &format!("as root in the guest: {cmd:?}"),
    )
}

/// `magos` as the guest user, with `runtime` (`MD_RUNTIME`), in its folder of
/// stacks `~/gitops`.
fn magos(g: &Guest, runtime: &str, args: &[&str]) -> Output {
    let md = format!("MD_RUNTIME={runtime}");
    let mut cmd = vec!["env", md.as_str(), "/opt/magos/bin/magos"];
    cmd.extend_from_slice(args);
    cmd.extend_from_slice(&["--repo", "/home/magos/gitops"]);
    g.user(&cmd)
}

fn magos_ok(g: &Guest, runtime: &str, args: &[&str]) -> String {
    stdout_ok(
        &magos(g, runtime, args),
        &format!("magos {args:?} (runtime {runtime})"),
    )
}

/// The stack `app`: `web` waits for `db` to be healthy; `web_image` is web's
/// image reference.
fn write_app(g: &Guest, db_image: &str, web_image: &str) {
    g.write_home(
        "gitops/app/compose.yaml",
        &format!(
            "services:\n  db:\n    image: {db_image}\n    healthcheck:\n      test: [\"CMD-SHELL\", \"test -d /www\"]\n      interval: 1s\n      retries: 30\n\
             \x20 web:\n    image: {web_image}\n    ports:\n      - \"127.0.0.1:{QUADLET_STACK_PORT}:8080\"\n    depends_on:\n      db:\n        condition: service_healthy\n"
        ),
    );
}

/// Builds `repo:tag` in the guest from `image` with a label of its own (so each
/// tag has its own digest), pushes it to the test registry and returns
/// `repo:tag@digest`, pinned as Magos pins.
fn push_variant(g: &Guest, image: &str, repo: &str, tag: &str) -> String {
    let script = format!(
        "cd ~ && podman pull -q {image} >/dev/null && \
         printf 'FROM {image}\\nLABEL io.magos.tier.variant={tag}\\n' >Containerfile.{tag} && \
         podman build -q --pull=never -f Containerfile.{tag} -t {repo}:{tag} . >/dev/null && \
         podman push -q --digestfile digest.{tag} {repo}:{tag} && cat digest.{tag}"
    );
    let digest = g.user_ok(&["sh", "-ec", &script]);
    format!("{repo}:{tag}@{}", digest.trim())
}

/// The containers of the stack `app` (any state): name and the unit that
/// started it (empty when the API made it).
fn app_containers(g: &Guest) -> Vec<(String, String)> {
    g.user_ok(&[
        "podman",
        "ps",
        "-a",
        "--filter",
        "label=com.docker.compose.project=app",
        "--format",
        "{{.Names}} {{index .Labels \"PODMAN_SYSTEMD_UNIT\"}}",
    ])
    .lines()
    .map(|l| {
        let (n, u) = l.split_once(' ').unwrap_or((l, ""));
        (n.to_owned(), u.trim().replace("<no value>", ""))
    })
    .collect()
}

/// `runtime: quadlet`: a stack that ran through the API moves to units with no
/// duplicate container, starts in dependency order (`service_healthy`), is in
/// sync for `drift`, a second apply changes nothing, a pin bump restarts only
/// that unit, a unit file edited by hand is drift, the user's manager
/// restarted (linger) brings the stack back with no Magos pass, and a stack
/// removed from the repository loses its units and containers.
#[test]
fn systemd_tier_quadlet_runtime() {
    if !tier_available() {
        return;
    }
    let image = registry().unwrap();
    let g = Guest::up("quadlet");
    enable_podman_socket(&g);
    let host = image.split('/').next().unwrap();
    let repo = format!("{host}/magos/quadlet-tier-{}", std::process::id());
    let v1 = push_variant(&g, &image, &repo, "1");
    let v2 = push_variant(&g, &image, &repo, "2");
    let image = v1;
    let db = "app-db.service";
    let web = "app-web.service";
    let units = format!("/home/{GUEST_USER}/.config/containers/systemd/magos/app");
    write_app(&g, &image, &image);

    // First through the API.
    magos_ok(&g, "podman", &["apply"]);
    let api = app_containers(&g);
    assert_eq!(api.len(), 2, "{api:?}");
    assert!(api.iter().all(|(_, u)| u.is_empty()), "{api:?}");

    // Then as units: the API's containers make way, none is left twice.
    let doctor = g.user(&[
        "env",
        "MD_RUNTIME=quadlet",
        "/opt/magos/bin/magos",
        "doctor",
    ]);
    let doctor_out = String::from_utf8_lossy(&doctor.stdout).into_owned();
    for id in ["systemd_manager", "quadlet_linger", "quadlet_generator"] {
        assert!(
            doctor_out
                .lines()
                .any(|l| l.starts_with("PASS") && l.contains(id)),
            "magos doctor under quadlet: {id}\n{}",
            show(&doctor)
        );
    }
    let plan = magos(&g, "quadlet", &["plan"]);
    let plan_out = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        plan_out.contains("write unit file app-web.container")
            && plan_out.contains("remove container app_web_1 (made by another runtime)"),
        "{}",
        show(&plan)
    );
    let applied = magos_ok(&g, "quadlet", &["apply"]);
    assert!(applied.contains(&format!("restart {web}")), "{applied}");
    assert!(g.active(db), "{}", g.diagnostics(db));
    assert!(g.active(web), "{}", g.diagnostics(web));
    let running = app_containers(&g);
    assert_eq!(
        running,
        [
            ("app_db_1".to_owned(), db.to_owned()),
            ("app_web_1".to_owned(), web.to_owned())
        ],
        "one container per service, each started by its unit"
    );
    // In order: web started only once db was active, i.e. healthy
    // (Notify=healthy).
    let db_ready: u64 = g.prop(db, "ActiveEnterTimestampMonotonic").parse().unwrap();
    let web_started: u64 = g
        .prop(web, "InactiveExitTimestampMonotonic")
        .parse()
        .unwrap();
    assert!(
        db_ready > 0 && db_ready <= web_started,
        "web started at {web_started}, before db was healthy at {db_ready}"
    );
    wait_for(
        "the web unit to serve on 127.0.0.1",
        Duration::from_secs(60),
        || http_get(QUADLET_STACK_PORT).is_some(),
        || g.diagnostics(web),
    );
    let drift = magos(&g, "quadlet", &["drift"]);
    assert_eq!(drift.status.code(), Some(0), "{}", show(&drift));

    // Idempotent: nothing written, nothing restarted.
    let web_file = g.path(&format!("{units}/app-web.container"));
    let mtime = || std::fs::metadata(&web_file).unwrap().modified().unwrap();
    let before = (
        mtime(),
        g.prop(db, "InvocationID"),
        g.prop(web, "InvocationID"),
    );
    let again = magos_ok(&g, "quadlet", &["apply"]);
    assert!(again.contains("app: up to date"), "{again}");
    assert_eq!(
        (
            mtime(),
            g.prop(db, "InvocationID"),
            g.prop(web, "InvocationID")
        ),
        before
    );

    // A pin bump of web restarts web alone.
    write_app(&g, &image, &v2);
    let bumped = magos_ok(&g, "quadlet", &["apply"]);
    assert!(
        bumped.contains("change unit file app-web.container")
            && bumped.contains(&format!("restart {web}"))
            && !bumped.contains(&format!("restart {db}")),
        "{bumped}"
    );
    assert_eq!(g.prop(db, "InvocationID"), before.1, "db was restarted");
    assert_ne!(
        g.prop(web, "InvocationID"),
        before.2,
        "web was not restarted"
    );
    assert!(g.active(web), "{}", g.diagnostics(web));
    let drift = magos(&g, "quadlet", &["drift"]);
    assert_eq!(drift.status.code(), Some(0), "{}", show(&drift));

    // A unit file edited by hand is config drift.
    let mut text = std::fs::read_to_string(&web_file).unwrap();
    text.push_str("# edited by hand\n");
    std::fs::write(&web_file, text).unwrap();
    let drift = magos(&g, "quadlet", &["drift"]);
    let drift_out = String::from_utf8_lossy(&drift.stdout).into_owned();
    assert_eq!(drift.status.code(), Some(1), "{}", show(&drift));
    assert!(
        drift_out
            .lines()
            .any(|l| l.contains("web") && l.contains("config_drift")),
        "{drift_out}"
    );
    magos_ok(&g, "quadlet", &["apply"]);
    let drift = magos(&g, "quadlet", &["drift"]);
    assert_eq!(drift.status.code(), Some(0), "{}", show(&drift));

    // The user's manager restarted (as at boot, with linger): the units come
    // back with no Magos pass.
    let web_before = g.prop(web, "InvocationID");
    let restart = g.script(&[
        "raw",
        "systemctl",
        "restart",
        &format!("user@{GUEST_UID}.service"),
    ]);
    assert!(restart.status.success(), "{}", show(&restart));
    wait_for(
        "the stack's units to be active again after the manager's restart",
        Duration::from_secs(120),
        || g.active(db) && g.active(web) && g.prop(web, "InvocationID") != web_before,
        || g.diagnostics(web),
    );
    wait_for(
        "the web unit to serve again",
        Duration::from_secs(60),
        || http_get(QUADLET_STACK_PORT).is_some(),
        || g.diagnostics(web),
    );

    // Back to the API: the units stop (their containers go with them) and their
    // files go before the API creates the containers; one container per
    // service. Then to units again.
    let back = magos_ok(&g, "podman", &["apply"]);
    assert!(back.contains(&format!("stop {web}")), "{back}");
    assert!(
        !g.path(&units).exists(),
        "units left under the podman runtime"
    );
    let api = app_containers(&g);
    assert_eq!(api.len(), 2, "{api:?}");
    assert!(api.iter().all(|(_, u)| u.is_empty()), "{api:?}");
    let drift = magos(&g, "podman", &["drift"]);
    assert_eq!(drift.status.code(), Some(0), "{}", show(&drift));
    magos_ok(&g, "quadlet", &["apply"]);
    assert_eq!(
        app_containers(&g),
        [
            ("app_db_1".to_owned(), db.to_owned()),
            ("app_web_1".to_owned(), web.to_owned())
        ]
    );

    // The stack leaves the repository: its units stop, their files and its
    // containers go.
    std::fs::remove_dir_all(g.path("/home/magos/gitops/app")).unwrap();
    g.write_home("gitops/README", "no stacks\n");
    let removed = magos_ok(&g, "quadlet", &["apply"]);
    assert!(removed.contains(&format!("stop {web}")), "{removed}");
    assert!(!g.path(&units).exists(), "the stack's unit folder is left");
    assert!(!g.active(web) && !g.active(db));
    assert_eq!(app_containers(&g), []);
    assert!(http_get(QUADLET_STACK_PORT).is_none());
    let drift = magos(&g, "quadlet", &["drift"]);
    assert_eq!(drift.status.code(), Some(0), "{}", show(&drift));
}
