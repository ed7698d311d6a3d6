use std::collections::BTreeMap;

use crate::core::compose::{
    Command, Extra, KeyValues, Loaded, Port, Scalar, StackSource, Volume, load_with, wanted_files,
};
use crate::core::diag::Diagnostic;
use crate::core::interpolate::Vars;

fn load_files(files: &[(&str, &str)]) -> Loaded {
    let texts: BTreeMap<String, String> = files
        .iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect();
    let (main, text) = files[0];
    let src = StackSource {
        compose: (main, text),
        override_file: None,
        vars: &Vars::new(),
    };
    // The edge's loop: read what is wanted until nothing is new.
    let mut known = BTreeMap::from([(main.to_owned(), text.to_owned())]);
    let mut unreadable: BTreeMap<String, Diagnostic> = BTreeMap::new();
    loop {
        let wanted: Vec<String> = wanted_files(&src, &known)
            .into_iter()
            .filter(|w| !unreadable.contains_key(w))
            .collect();
        if wanted.is_empty() {
            break;
        }
        for w in wanted {
            match texts.get(&w) {
                Some(t) => {
                    known.insert(w, t.clone());
                }
                None => {
                    unreadable.insert(
                        w.clone(),
                        Diagnostic::error(&w, crate::core::diag::Pos::START, "no such file"),
                    );
                }
            }
        }
    }
    load_with(
        &src,
        Extra {
            texts: &known,
            unreadable: &unreadable,
        },
    )
}

fn service<'a>(l: &'a Loaded, name: &str) -> &'a crate::core::compose::Service {
    l.services
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.service.as_ref())
        .unwrap_or_else(|| panic!("no service {name}: {:?}", l.diagnostics))
}

fn env(l: &Loaded, name: &str) -> BTreeMap<String, String> {
    match &service(l, name).environment {
        Some(KeyValues::Map(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_ref().map(Scalar::as_text).unwrap_or_default(),
                )
            })
            .collect(),
        Some(KeyValues::List(l)) => l
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        None => BTreeMap::new(),
    }
}

/// podman-compose's `tests/integration/extends` file.
const EXTENDS: &str = r#"services:
    echo:
      image: busybox
      command: ["/bin/busybox", "echo", "Zero"]
      ports:
        - '1234:1234'
      environment:
          - FOO=original
          - BAR=original
    echo1:
      extends:
        service: echo
      command: ["/bin/busybox", "echo", "One"]
      ports:
        - '12345:12345'
    env1:
      extends:
        service: echo
      command: ["/bin/busybox", "env"]
      environment:
        - BAR=local
        - BAZ=local
"#;

#[test]
fn extends_in_the_same_file_merges_with_compose_rules() {
    let l = load_files(&[("s/compose.yaml", EXTENDS)]);
    assert!(l.error.is_none(), "{:?}", l.diagnostics);
    let echo1 = service(&l, "echo1");
    assert_eq!(echo1.image.as_deref(), Some("busybox"));
    assert_eq!(
        echo1.command,
        Some(Command::Exec(vec![
            "/bin/busybox".into(),
            "echo".into(),
            "One".into()
        ]))
    );
    let ports: Vec<String> = echo1
        .ports
        .iter()
        .map(|p| match p {
            Port::Short(s) => s.as_text(),
            Port::Long { .. } => "long".into(),
        })
        .collect();
    assert_eq!(ports, ["1234:1234", "12345:12345"]);
    assert!(echo1.unsupported().is_empty(), "{:?}", echo1.unsupported());
    assert_eq!(
        env(&l, "env1"),
        BTreeMap::from([
            ("FOO".into(), "original".into()),
            ("BAR".into(), "local".into()),
            ("BAZ".into(), "local".into())
        ])
    );
    // The base is untouched.
    assert_eq!(env(&l, "echo")["BAR"], "original");
}

#[test]
fn extends_from_another_file_rebases_its_relative_paths() {
    let l = load_files(&[
        (
            "apps/web/compose.yaml",
            "services:\n  web:\n    extends: {file: ../common/base.yaml, service: base}\n    environment: {B: web}\n",
        ),
        (
            "apps/common/base.yaml",
            "services:\n  base:\n    extends: root\n    volumes: [./conf:/conf:ro, data:/data]\n    env_file: base.env\n  root:\n    image: nginx:1\n    environment: {A: root, B: root}\n",
        ),
    ]);
    assert!(l.error.is_none(), "{:?}", l.diagnostics);
    assert_eq!(l.files, ["apps/common/base.yaml"]);
    let web = service(&l, "web");
    assert_eq!(web.image.as_deref(), Some("nginx:1"));
    assert_eq!(
        web.volumes,
        [
            Volume::Short("../common/conf:/conf:ro".into()),
            Volume::Short("data:/data".into())
        ]
    );
    assert_eq!(
        web.env_file,
        Some(crate::core::compose::OneOrMany::One(
            "../common/base.env".into()
        ))
    );
    assert_eq!(
        env(&l, "web"),
        BTreeMap::from([("A".into(), "root".into()), ("B".into(), "web".into())])
    );
}

#[test]
fn extends_errors_name_the_file_line_and_key() {
    for (yaml, says) in [
        (
            "services:\n  a:\n    image: x\n    extends: nothere\n",
            "service `a` extends `nothere`, which `s/compose.yaml` does not define",
        ),
        (
            "services:\n  a:\n    image: x\n    extends: b\n  b:\n    image: x\n    extends: a\n",
            "goes round in a circle",
        ),
        (
            "services:\n  a:\n    image: x\n    extends: {file: ../../outside.yaml, service: b}\n",
            "leads out of the repository",
        ),
        (
            "services:\n  a:\n    image: x\n    extends: {file: /etc/base.yaml, service: b}\n",
            "is not inside the repository",
        ),
        (
            "services:\n  a:\n    image: x\n    extends: {file: missing.yaml, service: b}\n",
            "`s/missing.yaml` cannot be used: no such file",
        ),
        (
            "services:\n  a:\n    image: x\n    extends: [b]\n",
            "must be a service name",
        ),
    ] {
        let l = load_files(&[("s/compose.yaml", yaml)]);
        let e = l.error.unwrap_or_else(|| panic!("no error for {yaml}"));
        let first = &e.errors[0];
        assert!(first.message.contains(says), "{yaml}: {}", first.message);
        // A circle is reported where it closes (`b` extends `a` again).
        let line = if says.contains("circle") { 7 } else { 4 };
        assert_eq!(
            (first.file.as_str(), first.line),
            ("s/compose.yaml", line),
            "{yaml}"
        );
        assert_eq!(first.column, 5, "{yaml}");
    }
}

#[test]
fn include_brings_services_networks_and_volumes_from_other_files() {
    let l = load_files(&[
        (
            "stack/compose.yaml",
            "include:\n  - db/compose.yaml\n  - path: [cache.yaml]\nservices:\n  app:\n    image: app:1\n    depends_on: [db]\n",
        ),
        (
            "stack/db/compose.yaml",
            "services:\n  db:\n    image: postgres:16\n    volumes: [data:/var/lib/postgresql/data, ./init:/docker-entrypoint-initdb.d]\n    networks: [back]\nnetworks:\n  back: {}\nvolumes:\n  data: {}\n",
        ),
        (
            "stack/cache.yaml",
            "services:\n  cache:\n    image: redis:7\n",
        ),
    ]);
    assert!(l.error.is_none(), "{:?}", l.diagnostics);
    let mut names: Vec<&str> = l.services.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["app", "cache", "db"]);
    assert_eq!(l.networks, ["back"]);
    assert_eq!(l.volumes, ["data"]);
    assert!(l.unsupported.is_empty(), "{:?}", l.unsupported);
    assert_eq!(
        service(&l, "db").volumes[1],
        Volume::Short("./db/init:/docker-entrypoint-initdb.d".into())
    );
    assert_eq!(l.positions["db"].0, "stack/db/compose.yaml");
}

#[test]
fn include_errors_name_the_file_line_and_key() {
    for (files, says) in [
        (
            vec![
                (
                    "s/compose.yaml",
                    "include: [other.yaml]\nservices:\n  a:\n    image: x\n",
                ),
                ("s/other.yaml", "services:\n  a:\n    image: y\n"),
            ],
            "`s/other.yaml` defines services `a`, which the stack defines as well",
        ),
        (
            vec![("s/compose.yaml", "include: [../../x.yaml]\nservices: {}\n")],
            "leads out of the repository",
        ),
        (
            vec![("s/compose.yaml", "include: [gone.yaml]\nservices: {}\n")],
            "`s/gone.yaml` cannot be used",
        ),
        (
            vec![
                ("s/compose.yaml", "include: [a.yaml]\nservices: {}\n"),
                ("s/a.yaml", "include: [compose.yaml]\nservices: {}\n"),
            ],
            "includes itself",
        ),
    ] {
        let l = load_files(&files);
        let e = l.error.unwrap_or_else(|| panic!("no error for {files:?}"));
        assert!(
            e.errors[0].message.contains(says),
            "{}",
            e.errors[0].message
        );
        assert_eq!(e.errors[0].line, 1, "{files:?}");
    }
    // Options Magos does not apply route the stack to the compose CLI.
    let l = load_files(&[
        (
            "s/compose.yaml",
            "include:\n  - path: o.yaml\n    project_directory: ..\nservices: {}\n",
        ),
        ("s/o.yaml", "services:\n  o:\n    image: x\n"),
    ]);
    assert_eq!(l.unsupported, ["include.project_directory"]);
}

#[test]
fn an_override_merges_environment_lists_by_variable() {
    let l = crate::core::compose::load(&StackSource {
        compose: (
            "s/compose.yaml",
            "services:\n  a:\n    image: x\n    environment: [A=1, B=1]\n    labels: {l: 1}\n",
        ),
        override_file: Some((
            "s/compose.override.yaml",
            "services:\n  a:\n    environment: [B=2]\n    labels: [m=2]\n",
        )),
        vars: &Vars::new(),
    });
    assert!(l.error.is_none(), "{:?}", l.diagnostics);
    assert_eq!(
        env(&l, "a"),
        BTreeMap::from([("A".into(), "1".into()), ("B".into(), "2".into())])
    );
}

#[test]
fn an_included_service_is_pinned_in_its_own_file() {
    let l = load_files(&[
        ("s/compose.yaml", "include: [db.yaml]\nservices: {}\n"),
        (
            "s/db.yaml",
            "services:\n  db:\n    image: postgres:16.1 # {\"magos\": {\"policy\": \"semver\"}}\n",
        ),
    ]);
    assert!(l.error.is_none(), "{:?}", l.diagnostics);
    let db = &l.services[0];
    assert!(db.image.as_ref().unwrap().policy.is_some());
    let digest =
        crate::core::reference::Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
    let pin = db.pin("16.2", &digest).unwrap();
    assert_eq!(pin.file, "s/db.yaml");
    assert_eq!(pin.expected, "postgres:16.1");
}

#[test]
fn x_magos_files_are_merged_over_the_compose_file_in_order() {
    let l = load_files(&[
        (
            "s/compose.yaml",
            "x-magos:\n  files: [gpu.yaml, ../shared/late.yaml]\nservices:\n  app:\n    image: app:1\n    environment: [A=1]\n",
        ),
        (
            "s/gpu.yaml",
            "services:\n  app:\n    image: app:2\n    environment: [B=gpu]\n",
        ),
        (
            "shared/late.yaml",
            "services:\n  app:\n    environment: {B: late}\n",
        ),
    ]);
    assert!(l.error.is_none(), "{:?}", l.diagnostics);
    assert_eq!(l.compose_files, ["s/gpu.yaml", "shared/late.yaml"]);
    assert_eq!(service(&l, "app").image.as_deref(), Some("app:2"));
    assert_eq!(
        env(&l, "app"),
        BTreeMap::from([("A".into(), "1".into()), ("B".into(), "late".into())])
    );
    // The image line is pinned where it is written last.
    let site = l.services[0].image.as_ref().unwrap().site.as_ref().unwrap();
    assert_eq!(site.0, "s/gpu.yaml");
    for (files, says) in [
        ("[gone.yaml]", "`s/gone.yaml` cannot be used"),
        ("[/etc/x.yaml]", "not inside the repository"),
        ("gpu.yaml", "must be a list of files"),
    ] {
        let l = load_files(&[(
            "s/compose.yaml",
            &format!("x-magos:\n  files: {files}\nservices: {{}}\n"),
        )]);
        let e = l.error.unwrap_or_else(|| panic!("no error for {files}"));
        assert!(
            e.errors[0].message.contains(says),
            "{}",
            e.errors[0].message
        );
        assert_eq!(e.errors[0].line, 1);
    }
}
