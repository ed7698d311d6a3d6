//! Compose → Quadlet units, against literal expected files: each folder of
//! `tests/fixtures/quadlet/` holds a `compose.yaml` and, under `expected/`,
//! every unit file its stack must export to, byte for byte.
//!
//! After a deliberate change of the units, `MAGOS_BLESS=1 cargo test --test
//! quadlet` rewrites the expected files; read the diff before committing it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use magos::core::compose::{StackSource, load};
use magos::core::convert::{ConvertInput, EnvInputs, convert};
use magos::core::interpolate::Vars;
use magos::core::quadlet::{Options, Scope, Sites, UnitFile, stack_units};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quadlet")
}

/// The units of the fixture `case`, converted as the stack `<case>` in
/// `/repo/<case>`.
fn export(case: &str) -> Vec<UnitFile> {
    let compose = format!("{case}/compose.yaml");
    let text = std::fs::read_to_string(fixtures().join(&compose)).unwrap();
    let vars = Vars::new();
    let loaded = load(&StackSource {
        compose: (&compose, &text),
        override_file: None,
        vars: &vars,
    });
    assert!(loaded.error.is_none(), "{:?}", loaded.diagnostics);
    let env = EnvInputs::default();
    let encrypted = BTreeMap::new();
    let dir = format!("/repo/{case}");
    let converted = convert(
        &loaded,
        &ConvertInput {
            project: case,
            instance: "default",
            dir: &dir,
            config_files: vec![compose.clone()],
            env: &env,
            sealed_env: None,
            encrypted: &encrypted,
            home: Some("/home/magos"),
        },
    );
    assert!(!converted.has_errors(), "{:?}", converted.diagnostics);
    let mut spec = converted.spec;
    // What the edge that reads a build context fills in.
    for c in &mut spec.services {
        if let Some(b) = &mut c.build {
            b.digest = format!("sha256:{}", "b".repeat(64));
        }
    }
    let options = Options {
        scope: Scope::User,
        ..Options::default()
    };
    stack_units(&spec, &Sites::of(&loaded), &options).unwrap_or_else(|e| panic!("{case}: {e:#?}"))
}

/// Compares the units of `case` with its `expected/` folder, file by file.
fn check(case: &str) {
    let units = export(case);
    let expected = fixtures().join(case).join("expected");
    if std::env::var_os("MAGOS_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&expected);
        std::fs::create_dir_all(&expected).unwrap();
        for u in &units {
            std::fs::write(expected.join(&u.name), &u.contents).unwrap();
        }
    }
    let mut want: Vec<String> = std::fs::read_dir(&expected)
        .unwrap_or_else(|e| panic!("{}: {e}", expected.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    want.sort();
    let got: Vec<String> = units.iter().map(|u| u.name.clone()).collect();
    assert_eq!(got, want, "{case}: the unit files");
    for u in &units {
        let text = std::fs::read_to_string(expected.join(&u.name)).unwrap();
        assert_eq!(u.contents, text, "{case}: {}", u.name);
    }
}

#[test]
fn run_time_keys_become_container_keys() {
    check("run");
}

#[test]
fn networks_become_network_units_and_attachments() {
    check("net");
}

#[test]
fn volumes_become_volume_units_and_mounts() {
    check("vol");
}

#[test]
fn dependencies_restarts_replicas_and_secrets() {
    check("deps");
}

#[test]
fn builds_become_build_units() {
    check("build");
}

/// Podman's Quadlet generator: the test bed's (`MAGOS_TESTBED_QUADLET`), else
/// where Podman installs it. Missing, the test fails: it is part of the test
/// bed's `podman` package (`scripts/testbed.sh`).
fn generator() -> PathBuf {
    let path = std::env::var_os("MAGOS_TESTBED_QUADLET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/libexec/podman/quadlet"));
    assert!(
        path.is_file(),
        "Podman's Quadlet generator {} is missing: install podman (scripts/testbed.sh up)",
        path.display()
    );
    path
}

/// The corpus stacks that cannot be exported, and a word of why: `build:`
/// contexts the corpus does not hold, and the file the compose loader refuses
/// (an invalid `network:` key).
const NOT_EXPORTED: &[(&str, &str)] = &[
    ("awesome-flask-redis", "build"),
    ("awesome-nginx-golang-postgres", "build"),
    ("awesome-react-express-mongodb", "build"),
    ("freshrss", "build"),
    ("mealie", "build"),
    ("nextcloud-proxy-mariadb-fpm", "build"),
    ("podman-compose-yamlmagic", "cannot be loaded"),
];

/// Every stack of the conformance corpus (`tests/corpus/`) goes through
/// `magos export quadlet`, and Podman's generator (`quadlet -dryrun -user`)
/// turns each stack's units into services with no warning; the stacks of
/// [`NOT_EXPORTED`] fail with a located error instead, and no others.
#[test]
fn the_corpus_exports_to_units_the_generator_accepts() {
    let quadlet = generator();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut stacks: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("SOURCE").is_file())
        .collect();
    stacks.sort();
    assert!(stacks.len() >= 50, "the corpus has {} stacks", stacks.len());
    let mut exported = 0;
    for stack in &stacks {
        let name = stack.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(stack.join("SOURCE")).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_magos"));
        cmd.args(["export", "quadlet", "--scope", "user", "--repo"])
            .arg(stack)
            .arg("--out")
            .arg(out.path())
            .env_remove("MAGOS_CONFIG")
            .env("HOME", home.path())
            .env("NO_COLOR", "1");
        for line in source.lines() {
            if let Some((k, v)) = line
                .strip_prefix("environment: ")
                .and_then(|kv| kv.split_once('='))
            {
                cmd.env(k, v);
            }
        }
        let run = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        let stderr = String::from_utf8_lossy(&run.stderr);
        if let Some((_, why)) = NOT_EXPORTED.iter().find(|(n, _)| *n == name) {
            assert_eq!(
                run.status.code(),
                Some(2),
                "{name} must not export\n{stdout}{stderr}"
            );
            assert!(
                stdout.contains("not exported") && stdout.contains(why),
                "{name}: the reason must say `{why}`\n{stdout}{stderr}"
            );
            continue;
        }
        assert!(
            run.status.success(),
            "{name}: magos export quadlet failed\n{stdout}{stderr}"
        );
        let dirs: Vec<PathBuf> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("wrote "))
            .map(|p| Path::new(p).parent().unwrap().to_owned())
            .collect();
        let dir = dirs
            .first()
            .unwrap_or_else(|| panic!("{name}: nothing written\n{stdout}"));
        let units = std::fs::read_dir(dir).unwrap().count();
        let generated = std::process::Command::new(&quadlet)
            .args(["-dryrun", "-user"])
            .env("QUADLET_UNIT_DIRS", dir)
            .output()
            .unwrap();
        let gen_out = String::from_utf8_lossy(&generated.stdout);
        let gen_err = String::from_utf8_lossy(&generated.stderr);
        assert!(
            generated.status.success(),
            "{name}: the generator refused the units\n{gen_err}"
        );
        let complaints: Vec<&str> = gen_err
            .lines()
            .filter(|l| !l.contains("Loading source unit file"))
            .collect();
        assert!(
            complaints.is_empty(),
            "{name}: the generator warned\n{}",
            complaints.join("\n")
        );
        let services = gen_out.lines().filter(|l| l.starts_with("---")).count();
        assert_eq!(services, units, "{name}: one service per unit\n{gen_out}");
        exported += 1;
    }
    assert_eq!(exported, stacks.len() - NOT_EXPORTED.len());
}

/// `magos export quadlet` in a folder of its own: the files it writes, then
/// nothing rewritten on a second run, then the unit of a service taken out
/// of the stack removed (and a file it did not write kept).
#[test]
fn export_writes_leaves_unchanged_and_removes_its_own_units() {
    let repo = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let stack = repo.path().join("web");
    std::fs::create_dir(&stack).unwrap();
    let two = "services:\n  app:\n    image: docker.io/library/nginx:1.27\n  cache:\n    image: docker.io/library/redis:7\n";
    std::fs::write(stack.join("compose.yaml"), two).unwrap();
    let export = || {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_magos"))
            .args(["export", "quadlet", "--scope", "user", "--repo"])
            .arg(repo.path())
            .arg("--out")
            .arg(out.path())
            .env_remove("MAGOS_CONFIG")
            .env("HOME", home.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        assert!(
            run.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        stdout.replace(&format!("{}/", out.path().display()), "")
    };
    assert_eq!(
        export(),
        "wrote web/web-app.container\nwrote web/web-cache.container\nwrote web/web-default.network\n"
    );
    assert_eq!(
        export(),
        "unchanged web/web-app.container\nunchanged web/web-cache.container\nunchanged web/web-default.network\n"
    );
    std::fs::write(
        out.path().join("web/mine.container"),
        "[Container]\nImage=x\n",
    )
    .unwrap();
    std::fs::write(
        stack.join("compose.yaml"),
        "services:\n  app:\n    image: docker.io/library/nginx:1.27\n",
    )
    .unwrap();
    assert_eq!(
        export(),
        "unchanged web/web-app.container\nunchanged web/web-default.network\nremoved web/web-cache.container\n"
    );
    assert!(out.path().join("web/mine.container").is_file());
    assert!(!out.path().join("web/web-cache.container").exists());
}
