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
    let options = Options {
        scope: Scope::User,
        ..Options::default()
    };
    stack_units(&converted.spec, &Sites::of(&loaded), &options)
        .unwrap_or_else(|e| panic!("{case}: {e:#?}"))
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
