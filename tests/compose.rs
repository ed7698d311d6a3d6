//! Loading stacks: typed model, merge keys, override files, interpolation,
//! unsupported keys, and located diagnostics, table-driven over inline files.

use magos::core::compose::{Command, KeyValues, Port, StackSource, load};
use magos::core::interpolate::Vars;

fn vars(pairs: &[(&str, &str)]) -> Vars {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// (compose text, expected diagnostics as `line:column: fragment`)
const DIAGNOSTICS: &[(&str, &[&str])] = &[
    ("services:\n  web:\n    image: nginx\n", &[]),
    (
        "services:\n  web:\n    image: nginx\n   bad: x\n",
        &["4:4: invalid YAML"],
    ),
    ("services: [1]\n", &["1:1: `services` must be a mapping"]),
    ("- a\n", &["1:1: a compose file must be a mapping"]),
    ("name: x\n", &["1:1: the file has no services"]),
    (
        "services:\n  web:\n    image: nginx\nx-magos:\n  observe: yes\n",
        &["4:1: `x-magos.observe` must be `true` or `false`"],
    ),
    (
        "services:\n  web:\n    image: 42\n",
        &["2:1: service `web`: invalid type"],
    ),
    (
        "services:\n  web:\n    image: Nginx\n",
        &["3:12: service `web`: invalid image reference `Nginx`"],
    ),
    (
        "services:\n  web:\n    image: nginx:1 # {\"magos\": {\"policy\": \"semver\", \"range\": \"~>x.1\"}}\n",
        &["3:62: service `web`: invalid range"],
    ),
    (
        "services:\n  web:\n    image: nginx:1 # {\"magos\": {\"policy\": \"semver\", \"colour\": \"x\"}}\n",
        &["3:53: service `web`: unknown key `colour`"],
    ),
    (
        "services:\n  web:\n    image: nginx:1 # {\"magos\": {\"policy\": \"digest\"}}\n",
        &["3:12: service `web`: the digest policy needs a digest"],
    ),
    (
        "services:\n  web:\n    image: nginx:1@sha256:1111111111111111111111111111111111111111111111111111111111111111 # {\"magos\": {\"policy\": \"digest\", \"digest\": \"sha256:2222222222222222222222222222222222222222222222222222222222222222\"}}\n",
        &["3:12: service `web`: the annotation's digest"],
    ),
    (
        "x-img: &img nginx:1\nservices:\n  web:\n    image: *img # {\"magos\": {\"policy\": \"semver\"}}\n",
        &[
            "4:12: service `web` has a policy but its image cannot be pinned: the image comes from the alias `*img`",
        ],
    ),
    (
        "services:\n  web:\n    image: ${MISSING}nginx\n",
        &["3:12: variable `MISSING` is not set"],
    ),
    (
        "services:\n  web:\n    image: nginx\n    environment:\n      A: ${NEED:?please set NEED}\n",
        &["5:10: required variable `NEED` is not set: please set NEED"],
    ),
    (
        "services:\n  web: # {\"magos\": {\"policy\": \"semver\"}}\n    image: nginx\n",
        &["2:8: this Magos annotation is not on the `image:` line"],
    ),
    // Columns count characters, not bytes.
    (
        "services:\n  wéb:\n    image: nginx:1 # {\"magos\": {\"repo\": \"é\", \"policy\": \"nope\"}}\n",
        &["3:56: service `wéb`: unknown policy `nope`"],
    ),
];

#[test]
fn diagnostics_are_located() {
    for (text, expected) in DIAGNOSTICS {
        let v = vars(&[]);
        let loaded = load(&StackSource {
            compose: ("s/compose.yaml", text),
            override_file: None,
            vars: &v,
        });
        let got: Vec<String> = loaded
            .diagnostics
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect();
        assert_eq!(got.len(), expected.len(), "{text}\n{got:#?}");
        for (g, e) in got.iter().zip(expected.iter()) {
            assert!(g.starts_with(e), "{text}\ngot      {g}\nexpected {e}");
        }
        for d in &loaded.diagnostics {
            assert_eq!(d.file, "s/compose.yaml");
        }
    }
}

#[test]
fn other_services_still_load() {
    let text = "services:\n  bad:\n    image: 42\n  good:\n    image: nginx:1.25 # {\"magos\": {\"policy\": \"semver\"}}\n  worse:\n    image: nginx # {\"magos\": {\"policy\": 1}}\n";
    let v = vars(&[]);
    let loaded = load(&StackSource {
        compose: ("c.yaml", text),
        override_file: None,
        vars: &v,
    });
    assert_eq!(loaded.services.len(), 3);
    assert!(loaded.services[0].service.is_none());
    let good = loaded.services[1].image.as_ref().unwrap();
    assert_eq!(good.policy.as_ref().unwrap().name(), "semver");
    assert!(good.not_pinnable.is_none());
    assert!(loaded.services[2].image.as_ref().unwrap().policy.is_none());
    assert_eq!(loaded.diagnostics.len(), 2, "{:?}", loaded.diagnostics);
}

#[test]
fn typed_model_and_unsupported_keys() {
    let text = r#"
name: demo
version: "3.8"
x-common: &common
  restart: unless-stopped
  labels:
    app: demo
services:
  web:
    <<: *common
    image: nginx:1.25
    command: ["nginx", "-g", "daemon off;"]
    environment:
      - A=1
    ports:
      - "127.0.0.1:8080:80"
      - 9000
      - target: 443
        published: "8443"
        host_ip: 127.0.0.1
    volumes:
      - data:/data:ro
      - type: bind
        source: ./conf
        target: /etc/conf
    healthcheck:
      test: ["CMD", "true"]
      interval: 10s
      retries: 3
    depends_on:
      db:
        condition: service_healthy
    build: .
    deploy: {}
    x-private: ignored
  db:
    image: postgres:16
    command: postgres -c fsync=off
volumes:
  data: {}
configs:
  c: {file: ./c}
include:
  - other/compose.yaml
"#;
    let v = vars(&[]);
    let loaded = load(&StackSource {
        compose: ("c.yaml", text),
        override_file: None,
        vars: &v,
    });
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.name.as_deref(), Some("demo"));
    assert_eq!(loaded.unsupported, ["include"]);
    assert_eq!(loaded.configs["c"].file.as_deref(), Some("./c"));
    assert_eq!(loaded.volumes, ["data"]);
    let web = loaded.services[0].service.as_ref().unwrap();
    assert_eq!(
        web.restart.as_deref(),
        Some("unless-stopped"),
        "merge key applied"
    );
    assert!(matches!(&web.labels, Some(KeyValues::Map(m)) if m.contains_key("app")));
    assert!(matches!(&web.command, Some(Command::Exec(v)) if v.len() == 3));
    assert_eq!(web.ports.len(), 3);
    assert!(matches!(&web.ports[2], Port::Long { target: 443, .. }));
    assert_eq!(web.volumes.len(), 2);
    assert_eq!(web.healthcheck.as_ref().unwrap().retries, Some(3));
    assert_eq!(web.unsupported(), ["build", "deploy"]);
    let db = loaded.services[1].service.as_ref().unwrap();
    assert!(matches!(&db.command, Some(Command::Shell(_))));
    // The merge key makes the web image line still pinnable (it is written there).
    assert!(
        loaded.services[0]
            .image
            .as_ref()
            .unwrap()
            .not_pinnable
            .is_none()
    );
}

#[test]
fn override_and_interpolation() {
    let base = "services:\n  web:\n    image: nginx:${TAG:-1.0}\n    ports: [\"80:80\"]\n  db:\n    image: postgres:16 # {\"magos\": {\"policy\": \"semver\", \"range\": \"16\"}}\n";
    let over = "services:\n  web:\n    image: nginx:1.27 # {\"magos\": {\"policy\": \"semver\"}}\n    ports: [\"443:443\"]\n  db:\n    environment:\n      X: $${NOT_A_VAR}\n";
    let v = vars(&[("TAG", "1.5")]);
    let loaded = load(&StackSource {
        compose: ("a/compose.yaml", base),
        override_file: Some(("a/compose.override.yaml", over)),
        vars: &v,
    });
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let web = &loaded.services[0];
    let img = web.image.as_ref().unwrap();
    assert_eq!(img.value, "nginx:1.27");
    let (file, site) = img.site.as_ref().unwrap();
    assert_eq!(file, "a/compose.override.yaml");
    assert_eq!(site.line, 3);
    assert!(img.policy.is_some() && img.not_pinnable.is_none());
    assert_eq!(
        web.service.as_ref().unwrap().ports.len(),
        2,
        "ports are appended"
    );
    let db = &loaded.services[1];
    let dbimg = db.image.as_ref().unwrap();
    assert_eq!(dbimg.site.as_ref().unwrap().0, "a/compose.yaml");
    assert!(matches!(
        &db.service.as_ref().unwrap().environment,
        Some(KeyValues::Map(m)) if m["X"].as_ref().unwrap().as_text() == "${NOT_A_VAR}"
    ));

    // Without the override, the interpolated base image is read but cannot be pinned.
    let loaded = load(&StackSource {
        compose: ("a/compose.yaml", base),
        override_file: None,
        vars: &v,
    });
    let img = loaded.services[0].image.as_ref().unwrap();
    assert_eq!(img.value, "nginx:1.5");
    assert!(img.not_pinnable.as_ref().unwrap().contains("interpolation"));
}

/// Found by fuzzing: the YAML parser may point one line past the end of the
/// text; the diagnostic is clamped to the text's last position.
#[test]
fn yaml_error_past_the_end_is_clamped() {
    let text = "services:\n  web:\n\n  age:image: nginx\n  ng";
    let v = vars(&[]);
    let loaded = load(&StackSource {
        compose: ("c.yaml", text),
        override_file: None,
        vars: &v,
    });
    let d = &loaded.diagnostics[0];
    assert!(d.message.starts_with("invalid YAML"), "{d}");
    assert_eq!((d.line, d.column), (5, 5), "{d}");
}

/// From a loaded service to a rewritten file: the pin keeps the user's spelling
/// of the name, and lands in the file that holds the image line.
#[test]
fn pins_rewrite_the_right_file() {
    use magos::core::reference::Digest;
    use magos::core::rewrite::rewrite;
    let digest = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
    let base = "services:\n  web:\n    image: nginx:1.25 # {\"magos\": {\"policy\": \"semver\"}}\r\n  db:\n    image: ${DB_IMAGE}\n";
    let v = vars(&[("DB_IMAGE", "postgres:16")]);
    let loaded = load(&StackSource {
        compose: ("s/compose.yaml", base),
        override_file: None,
        vars: &v,
    });
    let web = &loaded.services[0];
    let decision = web.image.as_ref().unwrap().policy.as_ref().unwrap().decide(
        &[
            magos::core::policy::Candidate::tag("1.25"),
            magos::core::policy::Candidate::tag("1.27.1"),
        ],
        Some("1.25"),
        std::time::SystemTime::UNIX_EPOCH,
    );
    let pin = web.pin(decision.tag().unwrap(), &digest).unwrap();
    assert_eq!(pin.file, "s/compose.yaml");
    assert_eq!(pin.new, format!("nginx:1.27.1@{digest}"));
    let after = rewrite(base, &pin.edit()).unwrap();
    assert_eq!(after, base.replace("nginx:1.25", &pin.new));
    let err = loaded.services[1].pin("17", &digest).unwrap_err();
    assert!(err.contains("interpolation"), "{err}");
    assert!(web.pin("bad tag", &digest).is_err());
}

#[test]
fn x_magos_observe_marks_a_stack_monitor_only() {
    let load_text = |text: &str| {
        load(&StackSource {
            compose: ("compose.yaml", text),
            override_file: None,
            vars: &Vars::new(),
        })
    };
    let on = load_text("services:\n  web:\n    image: nginx\nx-magos:\n  observe: true\n");
    assert!(on.diagnostics.is_empty(), "{:?}", on.diagnostics);
    assert!(on.observe);
    let off = load_text("services:\n  web:\n    image: nginx\nx-magos: {apply: native}\n");
    assert!(!off.observe);
    assert_eq!(off.apply_mode.as_deref(), Some("native"));
}
