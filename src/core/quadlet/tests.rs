//! The parts of the conversion the fixtures of `tests/quadlet.rs` do not
//! reach: naming, scope, escaping, secrets, and the located errors of what a
//! unit cannot carry.

use std::collections::BTreeMap;

use super::*;
use crate::core::compose::{StackSource, load};
use crate::core::convert::{ConvertInput, EnvInputs, convert};
use crate::core::interpolate::Vars;

/// The spec and sites of `yaml` as the stack `web` in `/repo/web`.
fn spec(yaml: &str) -> (StackSpec, Sites) {
    let vars = Vars::new();
    let loaded = load(&StackSource {
        compose: ("web/compose.yaml", yaml),
        override_file: None,
        vars: &vars,
    });
    assert!(loaded.error.is_none(), "{:?}", loaded.diagnostics);
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
    (converted.spec, Sites::of(&loaded))
}

fn units(yaml: &str) -> Result<Vec<UnitFile>, Vec<Diagnostic>> {
    let (spec, sites) = spec(yaml);
    stack_units(&spec, &sites, &Options::default())
}

/// The text of the unit `name`.
fn unit(units: &[UnitFile], name: &str) -> String {
    units
        .iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("no {name} in {units:#?}"))
        .contents
        .clone()
}

/// The errors, as `file:line:column: error: message`.
fn errors(yaml: &str) -> Vec<String> {
    units(yaml)
        .expect_err("the stack must not export")
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn units_are_named_by_project_and_service_and_run_as_their_services() {
    let u = units("services:\n  app:\n    image: nginx:1.27\n    scale: 2\n").unwrap();
    let names: Vec<&str> = u.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "web-app-2.container",
            "web-app.container",
            "web-default.network"
        ]
    );
    assert_eq!(u[1].service(), "web-app.service");
    assert_eq!(u[2].service(), "web-default-network.service");
    assert_eq!(service_of("web-data.volume"), "web-data-volume.service");
    assert!(unit(&u, "web-app-2.container").contains("\nContainerName=web_app_2\n"));
}

#[test]
fn the_scope_chooses_the_target() {
    let (spec, sites) = spec("services:\n  app:\n    image: nginx:1.27\n");
    let user = stack_units(&spec, &sites, &Options::default()).unwrap();
    assert!(unit(&user, "web-app.container").ends_with("[Install]\nWantedBy=default.target\n"));
    let system = Options {
        scope: Scope::System,
        ..Options::default()
    };
    let root = stack_units(&spec, &sites, &system).unwrap();
    assert!(unit(&root, "web-app.container").ends_with("[Install]\nWantedBy=multi-user.target\n"));
}

#[test]
fn values_are_escaped_for_quadlet_and_systemd() {
    let u = units(
        r#"
services:
  app:
    image: nginx:1.27
    command: ["sh", "-c", "echo \"$$HOME\" 100%\nexit 0", ""]
    environment:
      PLAIN: a-b
      SPACED: "a b"
      SPECIAL: "%n $$X \\ \"q\""
"#,
    )
    .unwrap();
    let text = unit(&u, "web-app.container");
    for line in [
        r#"Exec=sh -c "echo \"$$HOME\" 100%%\nexit 0" """#,
        "Environment=PLAIN=a-b",
        r#"Environment="SPACED=a b""#,
        r#"Environment="SPECIAL=%%n $$X \\ \"q\"""#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
}

#[test]
fn a_value_that_cannot_be_one_line_is_an_error_at_its_key() {
    let e = errors("services:\n  app:\n    image: nginx:1.27\n    user: \"1000\\n\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("web/compose.yaml:4:5: error: service `app`: `user`: `1000\\n` cannot be written as Quadlet's `User=`"),
        "{e:?}"
    );
}

#[test]
fn keys_magos_does_not_apply_are_errors_at_their_line() {
    // `credential_spec` is Windows-only: Magos will not apply it.
    let e = errors("services:\n  app:\n    image: nginx:1.27\n    credential_spec: {file: x}\n");
    assert_eq!(
        e,
        [
            "web/compose.yaml:4:5: error: service `app`: `credential_spec`: Magos does not apply it, so no unit can carry it (the libpod route hands such a stack to the compose CLI)"
        ]
    );
}

#[test]
fn a_built_image_comes_from_the_build_unit() {
    let u = units("services:\n  app:\n    image: app:1\n    build: .\n").unwrap();
    let names: Vec<&str> = u.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["web-app.build", "web-app.container", "web-default.network"]
    );
    assert_eq!(u[0].service(), "web-app-build.service");
    assert!(unit(&u, "web-app.container").contains("\nImage=web-app.build\n"));
    let b = unit(&u, "web-app.build");
    assert!(b.contains("\nSetWorkingDirectory=/repo/web\n"), "{b}");
    assert!(
        b.lines()
            .any(|l| l.starts_with("ImageTag=") && l.ends_with("app:1")),
        "{b}"
    );
    assert!(b.contains("\nLabel=io.magos.build-digest="), "{b}");
}

#[test]
fn healthchecks_podman_cannot_take_from_a_unit_are_errors() {
    let e = errors(
        "services:\n  app:\n    image: nginx:1.27\n    healthcheck:\n      test: [\"CMD\", \"/ok now\"]\n  db:\n    image: postgres:16\n    healthcheck:\n      test: [\"CMD\", \"pg_isready\", \"-q\"]\n      start_interval: 2s\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("web/compose.yaml:4:5: error: service `app`: `healthcheck`: a one-word `CMD` test holding white space (`/ok now`)"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("web/compose.yaml:8:5: error: service `db`: `healthcheck`: `start_interval` has no Quadlet key"),
        "{e:?}"
    );
}

#[test]
fn a_one_word_cmd_test_stays_a_cmd_test() {
    let u = units("services:\n  app:\n    image: nginx:1.27\n    healthcheck:\n      test: [\"CMD\", \"/ok\"]\n")
        .unwrap();
    assert!(unit(&u, "web-app.container").contains("\nHealthCmd=CMD /ok\n"));
}

#[test]
fn a_healthcheck_none_disables_the_images() {
    let u =
        units("services:\n  app:\n    image: nginx:1.27\n    healthcheck:\n      disable: true\n")
            .unwrap();
    assert!(unit(&u, "web-app.container").contains("\nHealthCmd=none\n"));
}

#[test]
fn waiting_on_a_dependency_needs_what_the_unit_can_say() {
    let e = errors(
        "services:\n  db:\n    image: postgres:16\n    restart: always\n  app:\n    image: nginx:1.27\n    depends_on:\n      db:\n        condition: service_healthy\n  init:\n    image: nginx:1.27\n    depends_on:\n      db:\n        condition: service_completed_successfully\n",
    );
    assert!(
        e.iter().any(|e| e.starts_with("web/compose.yaml:7:5: error: service `app`: `depends_on`: waits for service `db` to be healthy, but it has no healthcheck")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|e| e.contains("service `db`: `restart`: other services wait for it to complete, but it restarts always")),
        "{e:?}"
    );
}

#[test]
fn an_empty_command_and_a_colon_in_a_bind_are_errors() {
    let e = errors(
        "services:\n  app:\n    image: nginx:1.27\n    command: []\n    volumes:\n      - type: bind\n        source: /srv/a:b\n        target: /data\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("web/compose.yaml:4:5: error: service `app`: `command`: an empty command"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with(
            "web/compose.yaml:5:5: error: service `app`: `volumes`: the path `/srv/a:b`"
        ),
        "{e:?}"
    );
}

#[test]
fn two_objects_with_one_unit_name_are_an_error() {
    let e = errors(
        "services:\n  x:\n    image: nginx:1.27\n    scale: 2\n  x-2:\n    image: nginx:1.27\n",
    );
    assert!(
        e.iter()
            .any(|e| e.contains("would be the same unit `web-x-2.container`")),
        "{e:?}"
    );
}

#[test]
fn decrypted_variables_come_only_from_the_file_the_caller_names() {
    let (mut spec, sites) =
        spec("services:\n  app:\n    image: nginx:1.27\n    environment:\n      PLAIN: yes\n");
    spec.services[0].secret_environment = vec!["TOKEN".into()];
    assert_eq!(secret_variables(&spec.services[0]), ["TOKEN"]);
    let e = stack_units(&spec, &sites, &Options::default()).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].message
            .contains("the variables TOKEN come from SOPS-encrypted files"),
        "{e:?}"
    );
    let options = Options {
        secret_env_files: BTreeMap::from([(
            "web_app_1".to_owned(),
            "/run/user/1000/magos/env/web_app_1.env".to_owned(),
        )]),
        ..Options::default()
    };
    let u = stack_units(&spec, &sites, &options).unwrap();
    let text = unit(&u, "web-app.container");
    assert!(
        text.contains(
            "\nEnvironment=PLAIN=yes\nEnvironmentFile=/run/user/1000/magos/env/web_app_1.env\n"
        ),
        "{text}"
    );
    assert!(!text.contains("TOKEN"), "{text}");
}

#[test]
fn a_sealed_value_outside_the_environment_is_an_error() {
    let (mut spec, sites) =
        spec("services:\n  app:\n    image: nginx:1.27\n    labels:\n      a: b\n");
    spec.services[0]
        .labels
        .insert("key".into(), crate::core::interpolate::sealed("KEY"));
    let e = stack_units(&spec, &sites, &Options::default()).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].to_string().starts_with("web/compose.yaml:4:5: error: service `app`: `labels`: holds a value from a SOPS-encrypted `.env`"), "{e:?}");
}

/// Every field of the specs, named: a field added to `ContainerSpec`,
/// `RunSpec`, `NetworkSpec`, `VolumeSpec` or `BuildSpec` stops this test from compiling
/// until `quadlet/` writes it (or refuses it with a located error) and the
/// field is added here, so no setting is dropped from the units unseen.
#[test]
fn every_spec_field_is_mapped() {
    use crate::core::spec::{ContainerSpec, NetworkSpec, RunSpec, VolumeSpec};
    let (spec, _) = spec("services:\n  app:\n    image: nginx:1.27\n");
    let ContainerSpec {
        service: _,
        name: _,
        number: _,
        image: _,
        command: _,
        entrypoint: _,
        environment: _,
        secret_environment: _,
        secret_digest: _, // in the config hash label only
        ports: _,
        mounts: _,
        networks: _,
        network_mode: _,
        restart: _,
        healthcheck: _,
        labels: _,
        depends_on: _,
        user: _,
        working_dir: _,
        hostname: _,
        cap_add: _,
        cap_drop: _,
        devices: _,
        extra_hosts: _,
        dns: _,
        stop_signal: _,
        stop_grace_period: _,
        read_only: _,
        build: _, // the `.build` unit
        network_settings: _,
        podman_secrets: _,
        uidmaps: _,
        gidmaps: _,
        no_hosts: _,
        run,
    } = spec.services[0].clone();
    let RunSpec {
        expose: _,
        memory: _,
        memory_reservation: _,
        memory_swap: _,
        cpus_micro: _,
        cpu_shares: _,
        cpuset: _,
        pids_limit: _,
        shm_size: _,
        privileged: _,
        sysctls: _,
        ulimits: _,
        security_opt: _,
        group_add: _,
        init: _,
        tty: _,
        stdin_open: _,
        pid: _,
        ipc: _,
        userns: _,
        oom_score_adj: _,
        logging: _,
        platform: _,
        pull_policy: _,
        dns_search: _,
        dns_opt: _,
        annotations: _,
        device_cgroup_rules: _,
        restart_tries: _,
    } = run;
    let NetworkSpec {
        name: _,
        external: _,
        driver: _,
        internal: _,
        labels: _,
        ipv6: _,
        options: _,
        ipam_driver: _,
        subnets: _,
        disable_dns: _,
        dns: _,
        routes: _,
    } = spec.networks[0].clone();
    let VolumeSpec {
        name: _,
        external: _,
        driver: _,
        labels: _,
        options: _,
    } = VolumeSpec::default();
    let crate::core::spec::BuildSpec {
        context: _,
        repository: _, // checked by the edge that reads the context
        dockerfile: _,
        args: _,
        target: _,
        labels: _,
        network: _,
        extra_hosts: _,
        tags: _,
        pull: _,
        no_cache: _,
        digest: _,
    } = crate::core::spec::BuildSpec::default();
}
