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

    // From a build (no completions/ beside the script): the binary wrote them.
    let completion = home
        .path()
        .join(".local/share/bash-completion/completions/magos");
    let page = home.path().join(".local/share/man/man1/magos-run.1");
    assert!(
        std::fs::read_to_string(&completion)
            .unwrap()
            .contains("_magos()"),
        "{first}"
    );
    assert!(page.is_file(), "{first}");

    let gone =
        String::from_utf8_lossy(&install_as_nobody(kit, home.path(), &["--uninstall"]).stdout)
            .into_owned();
    assert!(!bin.exists() && !unit.exists(), "{gone}");
    assert!(!completion.exists() && !page.exists(), "{gone}");
    assert!(config.exists(), "the configuration stays after --uninstall");
    // Uninstalling twice is fine.
    install_as_nobody(kit, home.path(), &["--uninstall"]);
}

/// A release archive made by `scripts/dist.sh` (the packaging steps the release
/// workflow runs) installs with its own `install.sh` for a user whose PATH has no
/// Rust toolchain, and the installed `magos` runs. The binary is the one this test
/// suite built (the workflow packages a release build the same way).
#[test]
fn release_archive_installs_for_a_user_without_cargo() {
    use std::os::unix::fs::PermissionsExt;
    let dist = tempfile::Builder::new()
        .prefix("magos-dist-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dist.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let out = run(Command::new("bash")
        .arg(repo().join("scripts/dist.sh"))
        .arg(&target)
        .args(["--binary", env!("CARGO_BIN_EXE_magos")])
        .args(["--version", "v0.0.0-test", "--out"])
        .arg(dist.path()));
    assert!(out.status.success(), "scripts/dist.sh\n{}", text(&out));
    let archive = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        archive,
        dist.path()
            .join(format!("magos-v0.0.0-test-{target}.tar.gz"))
            .display()
            .to_string(),
        "{}",
        text(&out)
    );

    // Unpacked where the packing left nothing behind: only the archive counts.
    let unpacked = dist.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    std::fs::set_permissions(&unpacked, PermissionsExt::from_mode(0o755)).unwrap();
    let out = run(Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked));
    assert!(out.status.success(), "tar -xzf\n{}", text(&out));
    let folder = unpacked.join(format!("magos-v0.0.0-test-{target}"));
    for file in [
        "magos",
        "install.sh",
        "magos.yaml",
        "README.md",
        "docs/configuration.md",
        "quadlet/magos-dominus.service",
        "quadlet/magos-dominus.container",
        "quadlet/Containerfile",
        "completions/magos.bash",
        "completions/_magos",
        "completions/magos.fish",
        "man/magos.1",
        "man/magos-run.1",
    ] {
        assert!(folder.join(file).is_file(), "the archive lacks {file}");
    }

    let home = tempfile::Builder::new()
        .prefix("magos-home-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(home.path(), PermissionsExt::from_mode(0o777)).unwrap();
    // As nobody, with a PATH that has no cargo (checked), the archive's own script.
    let as_nobody = |script: &str| {
        run(Command::new("runuser")
            .args(["-u", "nobody", "--", "env", "-i"])
            .arg(format!("HOME={}", home.path().display()))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin")
            .args(["bash", "-c", script]))
    };
    let out = as_nobody(&format!(
        "if command -v cargo rustc; then echo 'a Rust toolchain is in PATH' >&2; exit 3; fi; exec {}/install.sh",
        folder.display()
    ));
    assert!(out.status.success(), "install.sh\n{}", text(&out));
    let installed = String::from_utf8_lossy(&out.stdout);
    let local = home.path().join(".local");
    for file in [
        "bin/magos",
        "share/bash-completion/completions/magos",
        "share/zsh/site-functions/_magos",
        "share/man/man1/magos.1",
        "share/man/man1/magos-completions.1",
    ] {
        assert!(
            local.join(file).is_file(),
            "{file} not installed\n{installed}"
        );
    }
    assert_eq!(
        std::fs::read(local.join("share/bash-completion/completions/magos")).unwrap(),
        std::fs::read(folder.join("completions/magos.bash")).unwrap(),
        "the archive's completions are the ones installed"
    );

    let out =
        as_nobody("magos=$HOME/.local/bin/magos; $magos --version && $magos completions bash");
    assert!(out.status.success(), "the installed magos\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("magos {}\n", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    assert!(stdout.contains("_magos()"), "{stdout}");
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
