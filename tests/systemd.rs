//! The files that run Magos as a service (`quadlet/`, `scripts/install.sh`) checked
//! with the real tools: Podman's Quadlet generator in dry-run mode, `systemd-analyze
//! verify`, and the install script run as an unprivileged user.
//!
//! The tools come with the test bed's packages (`scripts/testbed.sh`). When one is
//! missing and `MAGOS_REQUIRE_PODMAN=1`, the test fails; otherwise it prints
//! `skipped: …` and returns.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const QUADLET: &str = "/usr/libexec/podman/quadlet";
const UNIT: &str = "magos-dominus.service";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn quadlet_dir() -> PathBuf {
    repo().join("quadlet")
}

/// The tool's path, or `None` after printing why the test is skipped.
fn tool(path: &str) -> Option<PathBuf> {
    let found = if path.starts_with('/') {
        Path::new(path).is_file().then(|| PathBuf::from(path))
    } else {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(path))
                .find(|f| f.is_file())
        })
    };
    if found.is_none() {
        let reason = format!("{path} is not installed (scripts/testbed.sh installs it)");
        if std::env::var("MAGOS_REQUIRE_PODMAN").as_deref() == Ok("1") {
            panic!("required by MAGOS_REQUIRE_PODMAN=1: {reason}");
        }
        let _ = writeln!(std::io::stderr(), "\nskipped: {reason}");
    }
    found
}

fn text(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The units Quadlet generates from `quadlet/`, as `(name, text)` pairs.
fn quadlet_dryrun(quadlet: &Path, dir: &Path) -> Vec<(String, String)> {
    let out = run(Command::new(quadlet)
        .args(["-dryrun", "-user"])
        .env("QUADLET_UNIT_DIRS", dir));
    assert!(
        out.status.success(),
        "quadlet -dryrun -user failed\n{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.to_lowercase().contains("unsupported") && !stderr.contains("error"),
        "quadlet complained\n{}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut units = Vec::new();
    for chunk in stdout.split("\n---").map(|c| c.trim_start_matches("---")) {
        if let Some((name, body)) = chunk.split_once("---\n") {
            units.push((name.trim().to_string(), body.to_string()));
        }
    }
    units
}

#[test]
fn quadlet_generates_the_container_unit() {
    let Some(quadlet) = tool(QUADLET) else { return };
    let units = quadlet_dryrun(&quadlet, &quadlet_dir());
    let names: Vec<&str> = units.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [UNIT], "the units Quadlet generated from quadlet/");
    let body = &units[0].1;
    let exec = body
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in the generated unit:\n{body}"));
    for want in [
        "--sdnotify=container",
        "--name magos-dominus",
        "--network host",
        "-v %t/podman/podman.sock:/run/podman/podman.sock",
        "-v %h/.local/state/magos:%h/.local/state/magos",
        "-v %t/magos:%t/magos",
        "--env XDG_RUNTIME_DIR=%t",
        "-v %h/.config/sops/age/keys.txt:/etc/magos-age/keys.txt:ro",
        "--env CONTAINER_HOST=unix:///run/podman/podman.sock",
        "--env WATCHDOG_USEC=60000000",
        "localhost/magos-dominus:latest run",
    ] {
        assert!(exec.contains(want), "ExecStart lacks {want:?}:\n{exec}");
    }
    // WATCHDOG_USEC (not passed into containers by systemd) matches WatchdogSec.
    for want in [
        "Type=notify",
        "NotifyAccess=all",
        "Requires=podman.socket",
        "WatchdogSec=60s",
    ] {
        assert!(
            body.lines().any(|l| l == want),
            "the generated unit lacks {want}:\n{body}"
        );
    }
}

/// `systemd-analyze verify` of a unit file; the output is empty when it is clean.
fn verify(analyze: &Path, args: &[&str], unit: &Path, home: &Path) {
    // A user manager's lookup needs a runtime folder, even for a dry verification.
    let runtime = tempfile::tempdir().expect("temp dir");
    let out = run(Command::new(analyze)
        .arg("verify")
        .args(args)
        .arg(unit)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env("SYSTEMD_LOG_LEVEL", "notice"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warnings about units outside ours (the host's own) are not ours to fix.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("magos") || l.contains(&unit.display().to_string()))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify {} {}\n{}",
        args.join(" "),
        unit.display(),
        text(&out)
    );
}

/// A home folder with the binary where the user unit expects it.
fn home_with_binary() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("temp dir");
    let bin = home.path().join(".local/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_magos"), bin.join("magos")).unwrap();
    home
}

#[test]
fn systemd_analyze_verifies_the_user_unit() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let home = home_with_binary();
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join(UNIT);
    std::fs::copy(quadlet_dir().join(UNIT), &unit).unwrap();
    verify(&analyze, &["--user", "--man=no"], &unit, home.path());
}

#[test]
fn systemd_analyze_verifies_the_system_unit_with_its_drop_in() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    // The system variant: the same file, ExecStart pointed at a system-wide binary
    // by the drop-in that `install.sh --system` writes (here: this build's binary).
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join(UNIT);
    std::fs::copy(quadlet_dir().join(UNIT), &unit).unwrap();
    let dropin = dir.path().join(format!("{UNIT}.d"));
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(
        dropin.join("10-system-binary.conf"),
        format!(
            "[Service]\nExecStart=\nExecStart={} run\n",
            env!("CARGO_BIN_EXE_magos")
        ),
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    verify(&analyze, &["--system", "--man=no"], &unit, home.path());
}

#[test]
fn systemd_analyze_verifies_the_generated_container_unit() {
    let (Some(quadlet), Some(analyze)) = (tool(QUADLET), tool("systemd-analyze")) else {
        return;
    };
    let units = quadlet_dryrun(&quadlet, &quadlet_dir());
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join(UNIT);
    std::fs::write(&unit, &units[0].1).unwrap();
    let home = tempfile::tempdir().unwrap();
    verify(&analyze, &["--user", "--man=no"], &unit, home.path());
}

/// The service unit's settings that the daemon's contract with systemd rests on.
#[test]
fn the_service_unit_says_notify_watchdog_and_socket() {
    let unit = std::fs::read_to_string(quadlet_dir().join(UNIT)).unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=60s",
        "Restart=on-failure",
        "Requires=podman.socket",
        "After=podman.socket",
        "ExecStart=%h/.local/bin/magos run",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Environment=CONTAINER_HOST=unix://%t/podman/podman.sock",
    ] {
        assert!(lines.contains(&want), "quadlet/{UNIT} lacks {want}");
    }
}

/// A copy of what the install script reads (the script, the unit, the reference
/// configuration and the binary) in a folder `nobody` can read, wherever the checkout is.
fn install_kit() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let kit = tempfile::Builder::new()
        .prefix("magos-kit-")
        .tempdir_in("/tmp")
        .unwrap();
    for (from, to) in [
        (repo().join("scripts/install.sh"), "scripts/install.sh"),
        (quadlet_dir().join(UNIT), "quadlet/magos-dominus.service"),
        (repo().join("configs/magos.yaml"), "configs/magos.yaml"),
        (PathBuf::from(env!("CARGO_BIN_EXE_magos")), "magos"),
    ] {
        let dest = kit.path().join(to);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&from, &dest).unwrap();
    }
    for dir in ["", "scripts", "quadlet", "configs"] {
        std::fs::set_permissions(kit.path().join(dir), PermissionsExt::from_mode(0o755)).unwrap();
    }
    kit
}

/// Runs the kit's `scripts/install.sh` as `nobody` with a private home; no service
/// manager answers here, so it installs files and names the systemctl steps it skipped.
fn install_as_nobody(kit: &Path, home: &Path, args: &[&str]) -> Output {
    let out = run(Command::new("runuser")
        .args(["-u", "nobody", "--", "env", "-i"])
        .arg(format!("HOME={}", home.display()))
        .arg("PATH=/usr/local/bin:/usr/bin:/bin")
        .arg(kit.join("scripts/install.sh"))
        .arg("--binary")
        .arg(kit.join("magos"))
        .args(args));
    assert!(out.status.success(), "install.sh {args:?}\n{}", text(&out));
    out
}

#[test]
fn install_script_is_idempotent_and_uninstalls() {
    let kit = install_kit();
    let kit = kit.path();
    let home = tempfile::Builder::new()
        .prefix("magos-install-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let bin = home.path().join(".local/bin/magos");
    let unit = home.path().join(".config/systemd/user").join(UNIT);
    let config = home.path().join(".config/magos/magos.yaml");

    let first =
        String::from_utf8_lossy(&install_as_nobody(kit, home.path(), &[]).stdout).into_owned();
    assert!(
        first.contains(&format!("installed  {}", bin.display())),
        "{first}"
    );
    assert!(
        first.contains("(skipped) systemctl --user enable --now podman.socket"),
        "{first}"
    );
    assert!(
        first.contains("sudo loginctl enable-linger nobody"),
        "{first}"
    );
    assert_eq!(
        std::fs::read(&unit).unwrap(),
        std::fs::read(quadlet_dir().join(UNIT)).unwrap()
    );
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_magos")).unwrap()
    );
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(repo().join("configs/magos.yaml")).unwrap()
    );

    // A second run changes nothing and keeps an edited configuration.
    std::fs::write(&config, "repo:\n  url: file:///srv/gitops.git\n").unwrap();
    let second =
        String::from_utf8_lossy(&install_as_nobody(kit, home.path(), &[]).stdout).into_owned();
    assert!(
        second.contains(&format!("unchanged  {}", bin.display())),
        "{second}"
    );
    assert!(
        second.contains(&format!("unchanged  {}", unit.display())),
        "{second}"
    );
    assert!(second.contains("kept       "), "{second}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "repo:\n  url: file:///srv/gitops.git\n"
    );

    let gone =
        String::from_utf8_lossy(&install_as_nobody(kit, home.path(), &["--uninstall"]).stdout)
            .into_owned();
    assert!(!bin.exists() && !unit.exists(), "{gone}");
    assert!(config.exists(), "the configuration stays after --uninstall");
    // Uninstalling twice is fine.
    install_as_nobody(kit, home.path(), &["--uninstall"]);
}

#[test]
fn install_script_refuses_a_user_install_as_root_and_unknown_flags() {
    let script = repo().join("scripts/install.sh");
    let out = run(Command::new("bash").arg(&script).arg("--bogus"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument: --bogus"));
    if is_root() {
        let out = run(Command::new("bash")
            .arg(&script)
            .env("HOME", "/nonexistent"));
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("use --system"));
    }
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).stdout == b"0\n"
}
