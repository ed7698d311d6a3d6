//! `magos init --runtime docker` against the test bed's Docker Engine: every
//! check passes, the Docker check names the engine and its socket, and the
//! configuration it writes says `runtime: docker`, which `magos config check`
//! shows (as it shows `MD_RUNTIME=docker` given in the environment).

use std::path::Path;
use std::process::{Command, Output};

use crate::git_fixture::bare_remote;
use crate::support::{bed, show};

fn magos(dir: &Path, docker_host: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_magos"));
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", dir)
        .env("DOCKER_HOST", docker_host)
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("run magos")
}

#[test]
fn init_with_runtime_docker_checks_the_engine_and_writes_the_runtime() {
    let Some(bed) = bed() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (remote, _other) = bare_remote(
        tmp.path(),
        "homelab.git",
        &[(
            "web/compose.yaml",
            "services:\n  web:\n    image: busybox:1\n",
        )],
    );
    let config = tmp.path().join("magos.yaml");
    let config_arg = config.to_str().unwrap();
    let url = format!("file://{}", remote.display());
    let out = magos(
        tmp.path(),
        &bed.docker_host,
        &[
            "init",
            "--config",
            config_arg,
            "--repo-url",
            &url,
            "--runtime",
            "docker",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let docker = stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("docker"))
        .unwrap_or_else(|| panic!("no docker check: {stdout}"));
    assert!(docker.trim_start().starts_with("ok"), "{docker}");
    assert!(docker.contains("Docker "), "{docker}");
    let socket = bed.docker_host.trim_start_matches("unix://");
    assert!(docker.contains(socket), "{docker}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.lines()
            .any(|l| l.trim() == "runtime: docker" || l.trim() == "runtime: \"docker\""),
        "{text}"
    );

    // `config check` shows the runtime, from the file and from MD_RUNTIME.
    let check = magos(
        tmp.path(),
        &bed.docker_host,
        &["--config", config_arg, "config", "check"],
        &[],
    );
    assert_eq!(check.status.code(), Some(0), "{}", show(&check));
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.contains("runtime") && l.contains("docker")),
        "{shown}"
    );
    let bare = tmp.path().join("bare.yaml");
    std::fs::write(&bare, "").unwrap();
    let from_env = magos(
        tmp.path(),
        &bed.docker_host,
        &["--config", bare.to_str().unwrap(), "config", "check"],
        &[("MD_RUNTIME", "docker")],
    );
    assert_eq!(from_env.status.code(), Some(0), "{}", show(&from_env));
    let shown = String::from_utf8_lossy(&from_env.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.contains("runtime") && l.contains("docker")),
        "{shown}"
    );
}
