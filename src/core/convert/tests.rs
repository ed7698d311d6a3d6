use super::*;
use crate::core::compose::{StackSource, load};
use crate::core::interpolate::Vars;

fn conv(yaml: &str, env: &EnvInputs) -> Converted {
    conv_sealed(yaml, env, &Vars::new(), None, &BTreeMap::new())
}

fn conv_sealed(
    yaml: &str,
    env: &EnvInputs,
    vars: &Vars,
    sealed_env: Option<&str>,
    encrypted: &BTreeMap<String, EncryptedMount>,
) -> Converted {
    let loaded = load(&StackSource {
        compose: ("web/compose.yaml", yaml),
        override_file: None,
        vars,
    });
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    convert(
        &loaded,
        &input(env, sealed_env, encrypted, Some("/home/magos")),
    )
}

fn plain_digest(c: &Converted) -> Option<&str> {
    c.spec.services[1].secret_digest.as_deref()
}

/// The conversion input of the stack `web` at `/repo/web` that every
/// conversion test uses.
pub(super) fn input<'a>(
    env: &'a EnvInputs,
    sealed_env: Option<&'a str>,
    encrypted: &'a BTreeMap<String, EncryptedMount>,
    home: Option<&'a str>,
) -> ConvertInput<'a> {
    ConvertInput {
        project: "web",
        instance: "default",
        dir: "/repo/web",
        config_files: vec!["web/compose.yaml".into()],
        env,
        sealed_env,
        encrypted,
        home,
    }
}

#[test]
fn encrypted_inputs_are_sealed_and_hashed_by_ciphertext() {
    let mut env = EnvInputs::default();
    env.files.insert(
        "a.env".into(),
        EnvFile::Plain(BTreeMap::from([("TOKEN".into(), "plain".into())])),
    );
    env.files.insert(
        "secret.env".into(),
        EnvFile::Encrypted {
            names: vec!["TOKEN".into(), "KEY".into(), "PASS".into()],
            digest: "sha256:envcipher".into(),
        },
    );
    env.files.insert(
        "b.env".into(),
        EnvFile::Plain(BTreeMap::from([("KEY".into(), "later".into())])),
    );
    let vars = Vars::from([(
        "DB_PASSWORD".to_owned(),
        crate::core::interpolate::sealed("DB_PASSWORD"),
    )]);
    let encrypted = BTreeMap::from([(
        "/repo/web/pw.sops.txt".to_owned(),
        EncryptedMount {
            runtime_path: "/run/user/1/magos/secrets/web/pw.sops.txt".into(),
            digest: "sha256:filecipher".into(),
        },
    )]);
    let yaml = "services:
  app:
    image: nginx:1
    env_file: [a.env, secret.env, b.env]
    environment:
      PASS: explicit
      URL: postgres://app:${DB_PASSWORD}@db/app
    secrets: [pw]
  plain:
    image: nginx:1
    volumes: [./pw.sops.txt:/pw:ro]
  untouched:
    image: nginx:1
secrets:
  pw: {file: ./pw.sops.txt}
";
    let c = conv_sealed(yaml, &env, &vars, Some("sha256:dotenvcipher"), &encrypted);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let app = &c.spec.services[0];
    // A later plain file and `environment:` win over the encrypted file.
    assert_eq!(app.secret_environment, ["TOKEN"]);
    assert_eq!(app.environment["KEY"], "later");
    assert_eq!(app.environment["PASS"], "explicit");
    assert!(!app.environment.contains_key("TOKEN"));
    assert!(crate::core::interpolate::is_sealed(&app.environment["URL"]));
    assert!(app.mounts.contains(&MountSpec::Bind {
        source: "/run/user/1/magos/secrets/web/pw.sops.txt".into(),
        target: "/run/secrets/pw".into(),
        options: vec!["ro".into()],
        create_host_path: false,
    }));
    assert_eq!(
        app.secret_digest.as_deref(),
        Some("sha256:dotenvcipher,sha256:envcipher,sha256:filecipher")
    );
    let plain = &c.spec.services[1];
    assert_eq!(plain.secret_digest.as_deref(), Some("sha256:filecipher"));
    assert_eq!(c.spec.services[2].secret_digest, None);

    // Sealing the binds after the conversion gives the same spec.
    let mut later = conv_sealed(
        yaml,
        &env,
        &vars,
        Some("sha256:dotenvcipher"),
        &BTreeMap::new(),
    );
    assert_eq!(plain_digest(&later), None);
    seal_mounts(&mut later.spec, &encrypted);
    assert_eq!(later.spec, c.spec);

    // Another ciphertext, another hash; the placeholder never varies.
    let other = conv_sealed(yaml, &env, &vars, Some("sha256:changed"), &encrypted);
    assert_ne!(
        other.spec.services[0].config_hash(),
        app.config_hash(),
        "a changed .env ciphertext must change the hash"
    );
    assert_eq!(other.spec.services[1].config_hash(), plain.config_hash());
}

const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[test]
fn names_networks_volumes_as_podman_compose() {
    let c = conv(
        &format!(
            "services:
  app:
    image: nginx:1.27@{DIGEST}
    volumes: [data:/data, ./conf:/etc/conf:ro, /abs:/abs]
    networks:
      front:
        aliases: [www]
  db:
    image: ghcr.io/o/db:2
    container_name: the-db
volumes:
  data:
networks:
  front:
    internal: true
    labels: {{a: b}}
"
        ),
        &EnvInputs::default(),
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(c.route, Route::Native);
    let app = &c.spec.services[0];
    assert_eq!(app.name, "web_app_1");
    assert_eq!(app.image.qualified, "docker.io/library/nginx:1.27");
    assert_eq!(app.image.digest.as_ref().map(|d| d.as_str()), Some(DIGEST));
    assert_eq!(app.networks["web_front"], vec!["www".to_owned()]);
    assert_eq!(
        app.mounts,
        vec![
            MountSpec::Volume {
                name: "web_data".into(),
                target: "/data".into(),
                read_only: false,
                options: vec![],
                subpath: None,
            },
            MountSpec::Bind {
                source: "/repo/web/conf".into(),
                target: "/etc/conf".into(),
                options: vec!["ro".into()],
                create_host_path: true,
            },
            MountSpec::Bind {
                source: "/abs".into(),
                target: "/abs".into(),
                options: vec![],
                create_host_path: false,
            },
        ]
    );
    let db = &c.spec.services[1];
    assert_eq!(db.name, "the-db");
    assert!(db.networks.contains_key("web_default"));
    let nets: Vec<&str> = c.spec.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(nets, ["web_default", "web_front"]);
    assert!(c.spec.networks[1].internal);
    assert_eq!(c.spec.networks[1].labels["a"], "b");
    assert_eq!(c.spec.volumes[0].name, "web_data");
}

#[test]
fn ports_in_every_form() {
    let p = |s: &str| port(&Port::Short(Scalar::String(s.into())));
    let short = |ip: &str, h: u16, c: u16, r: u16, proto: &str| PortSpec {
        host_ip: ip.into(),
        host_port: h,
        container_port: c,
        range: r,
        protocol: proto.into(),
    };
    assert_eq!(p("80").unwrap(), short("", 0, 80, 1, "tcp"));
    assert_eq!(p("8080:80").unwrap(), short("", 8080, 80, 1, "tcp"));
    assert_eq!(
        p("127.0.0.1:8080:80/udp").unwrap(),
        short("127.0.0.1", 8080, 80, 1, "udp")
    );
    assert_eq!(
        p("127.0.0.1::80").unwrap(),
        short("127.0.0.1", 0, 80, 1, "tcp")
    );
    assert_eq!(
        p("[::1]:8080:80").unwrap(),
        short("::1", 8080, 80, 1, "tcp")
    );
    assert_eq!(
        p("9000-9002:9000-9002").unwrap(),
        short("", 9000, 9000, 3, "tcp")
    );
    assert!(p("9000-9001:80").is_err());
    assert!(p("70000:80").is_err());
    assert!(p("80/icmp").is_err());
    assert_eq!(
        port(&Port::Short(Scalar::Number(80.into()))).unwrap(),
        short("", 0, 80, 1, "tcp")
    );
    let long = port(&Port::Long {
        target: 80,
        published: Some(Scalar::String("8080".into())),
        host_ip: Some("127.0.0.1".into()),
        protocol: None,
    })
    .unwrap();
    assert_eq!(long, short("127.0.0.1", 8080, 80, 1, "tcp"));
}

#[test]
fn every_native_key_is_read() {
    let mut env = EnvInputs::default();
    env.files.insert(
        "app.env".into(),
        EnvFile::Plain(BTreeMap::from([
            ("A".into(), "from-file".into()),
            ("B".into(), "b".into()),
        ])),
    );
    env.files.insert(
        "secret.env".into(),
        EnvFile::Encrypted {
            names: vec!["TOKEN".into()],
            digest: "sha256:cipher".into(),
        },
    );
    let c = conv(
        "services:
  app:
    image: nginx:1
    command: sh -c 'echo \"hi there\"'
    entrypoint: [/bin/sh]
    env_file: [./app.env, secret.env]
    environment: {A: override, N: 3}
    network_mode: pasta:-T,8080
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    devices: [/dev/fuse]
    extra_hosts: [\"db:10.0.0.2\", \"v6=::1\"]
    dns: 1.1.1.1
    read_only: true
    tmpfs: [/run:size=64m]
    secrets: [pw, {source: pw, target: other}]
    configs: [{source: cfg, target: /etc/app.conf}]
    restart: unless-stopped
    stop_grace_period: 1m30s
    stop_signal: SIGKILL
    healthcheck:
      test: wget -q -O- localhost
      interval: 2s
      retries: 3
  side:
    image: nginx:1
    network_mode: service:app
    extra_hosts: {a: 1.2.3.4}
    depends_on:
      app: {condition: service_healthy, restart: true}
secrets:
  pw: {file: ./pw.txt}
configs:
  cfg: {file: /etc/x.conf}
",
        &env,
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let app = &c.spec.services[0];
    assert_eq!(
        app.command.as_deref().unwrap(),
        ["sh", "-c", "echo \"hi there\""]
    );
    assert_eq!(app.environment["A"], "override");
    assert_eq!(app.environment["B"], "b");
    assert_eq!(app.environment["N"], "3");
    assert_eq!(app.secret_environment, ["TOKEN"]);
    assert_eq!(app.secret_digest.as_deref(), Some("sha256:cipher"));
    assert_eq!(
        app.network_mode,
        NetworkMode::Pasta(vec!["-T".into(), "8080".into()])
    );
    assert!(app.networks.is_empty());
    assert_eq!(app.extra_hosts, ["db:10.0.0.2", "v6:::1"]);
    assert_eq!(app.dns, ["1.1.1.1"]);
    assert!(app.read_only);
    assert_eq!(app.restart, Some(RestartPolicy::UnlessStopped));
    assert_eq!(app.stop_grace_period, Some(Duration::from_secs(90)));
    let h = app.healthcheck.as_ref().unwrap();
    assert_eq!(h.test, ["CMD-SHELL", "wget -q -O- localhost"]);
    assert_eq!(h.interval, Some(Duration::from_secs(2)));
    assert!(app.mounts.contains(&MountSpec::Bind {
        source: "/repo/web/pw.txt".into(),
        target: "/run/secrets/pw".into(),
        options: vec!["ro".into()],
        create_host_path: false,
    }));
    assert!(app.mounts.contains(&MountSpec::Bind {
        source: "/repo/web/pw.txt".into(),
        target: "/run/secrets/other".into(),
        options: vec!["ro".into()],
        create_host_path: false,
    }));
    assert!(app.mounts.contains(&MountSpec::Bind {
        source: "/etc/x.conf".into(),
        target: "/etc/app.conf".into(),
        options: vec!["ro".into()],
        create_host_path: false,
    }));
    assert!(app.mounts.contains(&MountSpec::Tmpfs {
        target: "/run".into(),
        options: vec!["size=64m".into()]
    }));
    let side = &c.spec.services[1];
    assert_eq!(side.network_mode, NetworkMode::Service("app".into()));
    assert_eq!(side.extra_hosts, ["a:1.2.3.4"]);
    assert_eq!(
        side.depends_on,
        [Dependency {
            service: "app".into(),
            condition: DependencyCondition::ServiceHealthy,
            restart: true
        }]
    );
    // No service uses a bridge network, so none is declared.
    assert!(c.spec.networks.is_empty());
}

#[test]
fn unsupported_keys_route_to_the_compose_cli() {
    let c = conv(
        "services:\n  app:\n    build: .\n    deploy: {mode: global}\n",
        &EnvInputs::default(),
    );
    assert_eq!(
        c.route,
        Route::ComposeCli {
            keys: vec!["deploy.mode".into()],
            explicit: false
        }
    );
    assert_eq!(
        c.spec.services[0].image.qualified,
        "localhost/web_app:latest"
    );
    let c = conv(
        "services:\n  app: {image: nginx:1}\nnetworks:\n  default:\n    attachable: true\n",
        &EnvInputs::default(),
    );
    assert_eq!(
        c.route,
        Route::ComposeCli {
            keys: vec!["networks.default.attachable".into()],
            explicit: false
        }
    );
    let c = conv(
        "x-magos: {apply: native}\nservices:\n  app: {image: nginx:1, cgroup_parent: /x}\n",
        &EnvInputs::default(),
    );
    assert!(c.has_errors());
    assert!(
        c.diagnostics[0].message.contains("cgroup_parent"),
        "{:?}",
        c.diagnostics
    );
    let c = conv(
        "x-magos: {apply: compose}\nservices:\n  app: {image: nginx:1}\n",
        &EnvInputs::default(),
    );
    assert_eq!(
        c.route,
        Route::ComposeCli {
            keys: vec![],
            explicit: true
        }
    );
}

#[test]
fn what_cannot_be_expressed_is_a_located_error() {
    let c = conv(
        "services:
  app:
    image: nginx:1
    ports: [\"99999:80\"]
    volumes: [undeclared:/x, \"/anon:bogus\"]
    networks: [nope]
    depends_on: [ghost]
    restart: sometimes
    stop_grace_period: soon
    env_file: missing.env
",
        &EnvInputs::default(),
    );
    let msgs: Vec<String> = c.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(c.has_errors());
    for needle in [
        "99999",
        "volume `undeclared` is not declared",
        "volume `/anon:bogus`: unknown option `bogus`",
        "network `nope` is not declared",
        "depends on `ghost`",
        "restart `sometimes`",
        "stop_grace_period `soon`",
        "env_file `missing.env` was not read",
    ] {
        assert!(
            msgs.iter().any(|m| m.contains(needle)),
            "{needle} not in {msgs:#?}"
        );
    }
    // At the service, or at the key whose item is wrong.
    let at = |needle: &str| -> &str {
        let m = msgs.iter().find(|m| m.contains(needle)).unwrap();
        m.split(": ").next().unwrap()
    };
    assert_eq!(at("99999"), "web/compose.yaml:4:5", "{msgs:#?}");
    assert_eq!(at("`undeclared`"), "web/compose.yaml:5:5", "{msgs:#?}");
    assert_eq!(at("`/anon:bogus`"), "web/compose.yaml:5:5", "{msgs:#?}");
    assert_eq!(at("`nope`"), "web/compose.yaml:2:1", "{msgs:#?}");
    assert_eq!(at("`ghost`"), "web/compose.yaml:2:1", "{msgs:#?}");
}

#[test]
fn shell_words() {
    assert_eq!(
        shell_split(r#"a 'b c' "d \"e\"" f\ g"#).unwrap(),
        ["a", "b c", "d \"e\"", "f g"]
    );
    assert!(shell_split("a 'b").is_err());
    assert_eq!(shell_split("  ").unwrap(), Vec::<String>::new());
}

#[test]
fn env_file_paths_are_stack_relative() {
    let vars = Vars::new();
    let loaded = load(&StackSource {
        compose: (
            "compose.yaml",
            "services:\n  a: {image: x, env_file: ./a.env}\n  b: {image: x, env_file: [sub/../a.env, b.env]}\n",
        ),
        override_file: None,
        vars: &vars,
    });
    let paths: Vec<String> = env_file_paths(&loaded).into_iter().collect();
    assert_eq!(paths, ["a.env", "b.env"]);
}

/// Found by an adversarial run: `env_file: /abs/path` was read under the stack's
/// folder; compose reads the absolute path.
#[test]
fn an_absolute_env_file_stays_absolute() {
    let vars = Vars::new();
    let loaded = load(&StackSource {
        compose: (
            "compose.yaml",
            "services:\n  a: {image: x, env_file: [/etc/app/a.env, /etc/../srv/b.env, c.env]}\n",
        ),
        override_file: None,
        vars: &vars,
    });
    let paths: Vec<String> = env_file_paths(&loaded).into_iter().collect();
    assert_eq!(paths, ["/etc/app/a.env", "/srv/b.env", "c.env"]);
    let env = EnvInputs {
        files: paths
            .iter()
            .map(|p| {
                let vars = BTreeMap::from([(format!("FROM_{}", p.len()), p.clone())]);
                (p.clone(), EnvFile::Plain(vars))
            })
            .collect(),
    };
    let c = conv(
        "services:\n  a: {image: x, env_file: [/etc/app/a.env, /etc/../srv/b.env, c.env]}\n",
        &env,
    );
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let environment = &c.spec.services[0].environment;
    assert_eq!(environment["FROM_14"], "/etc/app/a.env");
    assert_eq!(environment["FROM_10"], "/srv/b.env");
}

#[test]
fn scale_and_deploy_replicas_give_numbered_containers() {
    let env = EnvInputs::default();
    for yaml in [
        "services:\n  app:\n    image: nginx:1\n    scale: 3\n",
        "services:\n  app:\n    image: nginx:1\n    deploy:\n      mode: replicated\n      replicas: 3\n",
        "services:\n  app:\n    image: nginx:1\n    scale: 3\n    deploy: {replicas: 3}\n",
    ] {
        let c = conv(yaml, &env);
        assert_eq!(c.route, Route::Native, "{yaml}");
        assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
        let got: Vec<(&str, &str, u32)> = c
            .spec
            .services
            .iter()
            .map(|s| (s.service.as_str(), s.name.as_str(), s.number))
            .collect();
        assert_eq!(
            got,
            [
                ("app", "web_app_1", 1),
                ("app", "web_app_2", 2),
                ("app", "web_app_3", 3)
            ]
        );
    }
    let c = conv(
        "services:\n  app:\n    image: nginx:1\n    scale: 0\n",
        &env,
    );
    assert!(c.spec.services.is_empty());
}

#[test]
fn replicas_that_cannot_be_applied_are_errors_at_the_service() {
    let env = EnvInputs::default();
    for (extra, says) in [
        (
            "scale: 2\n    container_name: one",
            "`container_name` names one container",
        ),
        ("scale: 2\n    deploy: {replicas: 3}", "disagree"),
        ("scale: -1", "whole number"),
        ("scale: many", "not `many`"),
    ] {
        let c = conv(
            &format!("services:\n  app:\n    image: nginx:1\n    {extra}\n"),
            &env,
        );
        assert!(c.has_errors(), "{extra}");
        assert!(
            c.diagnostics[0].message.contains(says) && c.diagnostics[0].line == 2,
            "{extra}: {:?}",
            c.diagnostics
        );
        assert!(c.spec.services.is_empty());
    }
    // Other `deploy` keys (or `mode: global`) still route the stack to the CLI.
    let c = conv(
        "services:\n  app:\n    image: nginx:1\n    deploy: {mode: global}\n",
        &env,
    );
    assert!(matches!(c.route, Route::ComposeCli { .. }), "{:?}", c.route);
}

#[test]
fn depending_on_a_service_scaled_to_zero_is_an_error() {
    let c = conv(
        "services:\n  db:\n    image: pg:1\n    scale: 0\n  app:\n    image: a:1\n    depends_on: [db]\n",
        &EnvInputs::default(),
    );
    assert!(c.has_errors());
    assert!(
        c.diagnostics[0]
            .message
            .contains("service `app`: depends on `db`, which is scaled to 0")
            && c.diagnostics[0].line == 5,
        "{:?}",
        c.diagnostics
    );
}

/// immich's `${EXPOSE_PORT-:2283:2283}` with `EXPOSE_PORT` unset: a port with
/// an empty host address, which podman-compose cannot publish and Magos
/// publishes on every address; `lint` and `plan` say so at `ports:`.
#[test]
fn a_port_with_an_empty_host_address_is_noted() {
    let c = conv(
        "services:\n  app:\n    image: nginx:1\n    ports:\n      - ${EXPOSE_PORT-:2283:2283}\n      - 8080:80\n",
        &EnvInputs::default(),
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let notes: Vec<String> = c.notes.iter().map(ToString::to_string).collect();
    assert!(
        notes.iter().any(|n| n.starts_with(
            "web/compose.yaml:4:5: note: service `app`: port `:2283:2283` has an empty host address"
        )),
        "{notes:#?}"
    );
    let c = conv(
        "services:\n  app:\n    image: nginx:1\n    ports: [\"8080:80\"]\n",
        &EnvInputs::default(),
    );
    assert_eq!(c.notes.len(), 1, "only the pod note: {:?}", c.notes);
}

#[test]
fn coverage_notes_name_each_key_magos_does_not_apply_and_each_difference() {
    let yaml = "version: \"3.8\"
services:
  app:
    image: nginx:1
    depends_on: [db]
    deploy:
      mode: global
  db:
    image: postgres:16
    healthcheck:
      test: pg_isready
networks:
  front:
    attachable: true
";
    let c = conv(yaml, &EnvInputs::default());
    let notes: Vec<String> = c.notes.iter().map(ToString::to_string).collect();
    let has = |prefix: &str, words: &str| {
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with(prefix) && n.contains(words)),
            "{prefix} … {words} not in {notes:#?}"
        );
    };
    has(
        "web/compose.yaml:1:1: note:",
        "`version` is obsolete and ignored",
    );
    has("web/compose.yaml:2:1: note:", "pod `pod_<project>`");
    has(
        "web/compose.yaml:5:5: note:",
        "service `app`: `depends_on`: podman-compose also passes `--requires`",
    );
    has(
        "web/compose.yaml:6:5: note:",
        "service `app`: `deploy.mode` is not applied by Magos",
    );
    has(
        "web/compose.yaml:10:5: note:",
        "service `db`: `healthcheck`: podman-compose runs a `test:` through `/bin/sh -c`",
    );
    has(
        "web/compose.yaml:12:1: note:",
        "network `front`: `attachable` is not applied by Magos",
    );
    // Neither service says `networks:` in a file that declares `front` only.
    has(
        "web/compose.yaml:3:1: note:",
        "service `app` has no `networks:`: podman-compose puts it on the file's only network, `front`",
    );
    has(
        "web/compose.yaml:8:1: note:",
        "service `db` has no `networks:`",
    );
    assert_eq!(notes.len(), 8, "{notes:#?}");
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    // A stack that uses only what Magos applies, the same way, gets the pod note
    // alone.
    let c = conv(
        "services:\n  a:\n    image: nginx:1\n",
        &EnvInputs::default(),
    );
    assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
    // Without podman-compose's pod there is nothing to note.
    let c = conv(
        "x-podman:\n  in_pod: false\nservices:\n  a:\n    image: nginx:1\n",
        &EnvInputs::default(),
    );
    assert!(c.notes.is_empty(), "{:?}", c.notes);
}

#[test]
fn build_is_native_tagged_as_podman_compose_tags_it() {
    let c = conv(
        "services:
  short:
    build: ./app
  long:
    image: me/long:2
    build:
      context: app
      dockerfile: Containerfile.prod
      args: {VERSION: \"1\"}
      target: run
      labels: [a=b]
      network: host
      extra_hosts: [\"db:10.0.0.2\"]
      pull: true
  ssh:
    build:
      context: .
      ssh: [default]
",
        &EnvInputs::default(),
    );
    // `ssh` is not taken by Podman's build endpoint: that stack goes to the
    // compose CLI, and the key is named.
    assert_eq!(
        c.route,
        Route::ComposeCli {
            keys: vec!["build.ssh".into()],
            explicit: false
        }
    );
    let short = &c.spec.services[0];
    assert_eq!(short.image.qualified, "localhost/web_short:latest");
    let b = short.build.as_ref().unwrap();
    assert_eq!(b.context, "/repo/web/app");
    assert_eq!(b.dockerfile, None);
    let long = &c.spec.services[1];
    assert_eq!(long.image.reference, "localhost/me/long:2");
    let b = long.build.as_ref().unwrap();
    assert_eq!(b.dockerfile.as_deref(), Some("Containerfile.prod"));
    assert_eq!(b.args["VERSION"], "1");
    assert_eq!(b.target.as_deref(), Some("run"));
    assert_eq!(b.labels["a"], "b");
    assert_eq!(b.network.as_deref(), Some("host"));
    assert_eq!(b.extra_hosts, ["db:10.0.0.2"]);
    assert!(b.pull && !b.no_cache);
    // Without `ssh:` the stack is native.
    let c = conv("services:\n  a:\n    build: .\n", &EnvInputs::default());
    assert_eq!(c.route, Route::Native);
    // A spec without `build:` hashes as it did before the field existed.
    let plain = ContainerSpec::new("p", "s", c.spec.services[0].image.clone());
    let json = serde_json::to_string(&plain).unwrap();
    assert!(!json.contains("\"build\""), "{json}");
}

/// The three differences from podman-compose that the loaded (interpolated)
/// services no longer show: a service without `networks:` in a file that
/// declares others, an `environment:` value naming a variable of the same
/// `environment:` that Magos's variables lack, and a list-form label whose key
/// has a variable. Each is a note at its line; what reads alike is not noted.
#[test]
fn podman_compose_reading_differences_are_noted_at_their_lines() {
    let yaml = "services:
  app:
    image: nginx:1
    environment:
      ZZVAR1: myval1
      ZZVAR2: 2-$ZZVAR1
      SAME: ${SAME}
      OUTSIDE: ${FROM_ENV}-$ZZVAR1x-$$ZZVAR1
      KNOWN: $FROM_ENV
    labels:
      - \"$TEST_LABELS=x\"
      - plain=${TEST_LABELS}
  db:
    image: postgres:16
    networks: [back]
  worker:
    image: nginx:1
    environment:
      - A=1
      - B=${A}
      - P=${COMPOSE_PROJECT_NAME}
networks:
  back: {}
";
    let vars = Vars::from([
        ("FROM_ENV".to_owned(), "e".to_owned()),
        ("TEST_LABELS".to_owned(), "T".to_owned()),
        ("ZZVAR1x".to_owned(), "z".to_owned()),
    ]);
    let loaded = load(&StackSource {
        compose: ("web/compose.yaml", yaml),
        override_file: None,
        vars: &vars,
    });
    let notes: Vec<String> = coverage(&loaded).iter().map(ToString::to_string).collect();
    let expected = [
        "web/compose.yaml:1:1: note: podman-compose puts the project's containers in a pod",
        "web/compose.yaml:2:1: note: service `app` has no `networks:`: podman-compose puts it on the file's only network, `back`; Magos puts it on the project's `default` network",
        "web/compose.yaml:6:7: note: service `app`: `environment:` `ZZVAR2` refers to `ZZVAR1` of the same `environment:`: podman-compose takes the value from there",
        "web/compose.yaml:7:7: note: service `app`: `environment:` `SAME` refers to `SAME` of the same",
        "web/compose.yaml:11:7: note: service `app`: label `$TEST_LABELS=x` has a variable in its key: podman-compose interpolates only the value",
        "web/compose.yaml:16:1: note: service `worker` has no `networks:`",
        "web/compose.yaml:20:7: note: service `worker`: `environment:` `B` refers to `A` of the same",
        "web/compose.yaml:21:7: note: service `worker`: `environment:` `P` refers to `${COMPOSE_PROJECT_NAME}`: podman-compose 1.3 leaves it empty",
    ];
    assert_eq!(notes.len(), expected.len(), "{notes:#?}");
    for (n, e) in notes.iter().zip(expected) {
        assert!(n.starts_with(e), "{n}\n  does not start with\n{e}");
    }
    // A file that declares `default`, or none, places such a service alike;
    // with `ZZVAR1` among Magos's variables both read `2-$ZZVAR1` alike.
    for yaml in [
        "services:\n  app:\n    image: nginx:1\nnetworks:\n  default: {}\n  back: {}\n",
        "services:\n  app:\n    image: nginx:1\n    environment:\n      ZZVAR1: a\n      ZZVAR2: 2-$ZZVAR1\n",
    ] {
        let vars = Vars::from([("ZZVAR1".to_owned(), "x".to_owned())]);
        let loaded = load(&StackSource {
            compose: ("web/compose.yaml", yaml),
            override_file: None,
            vars: &vars,
        });
        let notes: Vec<String> = coverage(&loaded).iter().map(ToString::to_string).collect();
        assert_eq!(notes.len(), 1, "only the pod note: {notes:#?}");
    }
    // Several networks: Podman's `podman` network.
    let loaded = load(&StackSource {
        compose: (
            "web/compose.yaml",
            "services:\n  app:\n    image: nginx:1\nnetworks:\n  a: {}\n  b: {}\n",
        ),
        override_file: None,
        vars: &Vars::new(),
    });
    let notes: Vec<String> = coverage(&loaded).iter().map(ToString::to_string).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("Podman's `podman` network")),
        "{notes:#?}"
    );
}

#[test]
fn an_environment_entry_without_a_value_takes_the_variable_as_compose_does() {
    let yaml = "services:\n  db:\n    image: postgres:16\n    environment:\n      - POSTGRES_USER\n      - UNSET_HERE\n  app:\n    image: postgres:16\n    environment:\n      POSTGRES_DB:\n      LEFT:\n";
    let vars = Vars::from([
        ("POSTGRES_USER".to_owned(), "user".to_owned()),
        ("POSTGRES_DB".to_owned(), "n8n".to_owned()),
    ]);
    let loaded = load(&StackSource {
        compose: ("web/compose.yaml", yaml),
        override_file: None,
        vars: &vars,
    });
    let c = convert(
        &loaded,
        &input(
            &EnvInputs::default(),
            None,
            &BTreeMap::new(),
            Some("/home/magos"),
        ),
    );
    let env = |s: &str| {
        c.spec
            .services
            .iter()
            .find(|x| x.service == s)
            .unwrap()
            .environment
            .clone()
    };
    assert_eq!(
        env("db"),
        BTreeMap::from([("POSTGRES_USER".to_owned(), "user".to_owned())])
    );
    assert_eq!(
        env("app"),
        BTreeMap::from([("POSTGRES_DB".to_owned(), "n8n".to_owned())])
    );
    // Set nowhere: left out, with a warning naming it.
    let warned: Vec<&str> = c.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert!(
        warned.iter().any(|m| m.contains("`UNSET_HERE`"))
            && warned.iter().any(|m| m.contains("`LEFT`")),
        "{warned:?}"
    );
}
