//! The parts of the conversion the fixtures of `tests/quadlet.rs` do not
//! reach: naming, escaping, located errors.

use std::collections::BTreeMap;

use super::*;
use crate::core::compose::{StackSource, load};
use crate::core::convert::{ConvertInput, EnvInputs, convert};
use crate::core::interpolate::Vars;

fn units(yaml: &str) -> Result<Vec<UnitFile>, Vec<Diagnostic>> {
    let vars = Vars::new();
    let loaded = load(&StackSource {
        compose: ("web/compose.yaml", yaml),
        override_file: None,
        vars: &vars,
    });
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let env = EnvInputs::default();
    let encrypted = BTreeMap::new();
    let converted = convert(
        &loaded,
        &ConvertInput {
            project: "web",
            instance: "default",
            dir: "/repo/web",
            config_files: vec!["web/compose.yaml".into()],
            env: &env,
            sealed_env: None,
            encrypted: &encrypted,
            home: Some("/home/magos"),
        },
    );
    stack_units(&converted.spec, &Sites::of(&loaded), &Options::default())
}

#[test]
fn a_service_becomes_a_container_unit_on_the_default_network() {
    let u = units("services:\n  app:\n    image: nginx:1.27\n").unwrap();
    let names: Vec<&str> = u.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["web-app.container", "web-default.network"]);
    assert_eq!(u[0].service(), "web-app.service");
    assert_eq!(u[1].service(), "web-default-network.service");
    for x in &u {
        eprintln!("--- {}\n{}", x.name, x.contents);
    }
}
