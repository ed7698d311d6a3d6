//! Loading stacks: typed model, merge keys, override files, interpolation,
//! unsupported keys, and located diagnostics, table-driven over inline files.

use magos::core::compose::{
    Command, KeyValues, MAX_FILE_BYTES, MAX_NESTING, Port, StackSource, load,
};
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
    ("name: x\n", &["1:1: the file has no `services:`"]),
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

/// Mistakes that fail the whole stack: (what, compose text, override text,
/// expected error as `file:line:column: fragment`). Each must set
/// `Loaded::error`, located; the stack is then never applied or pruned.
const LOAD_ERRORS: &[(&str, &str, Option<&str>, &str)] = &[
    (
        "a missing quote",
        "services:\n  app:\n    image: \"busybox\n    command: x\n",
        None,
        "c.yaml:5:1: invalid YAML",
    ),
    (
        "tab indentation",
        "services:\n\tapp:\n\t\timage: busybox\n",
        None,
        "c.yaml:2:1: invalid YAML",
    ),
    (
        "a duplicate key",
        "services:\n  app:\n    image: a\n  app:\n    image: b\n",
        None,
        "c.yaml:2:3: invalid YAML: services: duplicate entry with key \"app\"",
    ),
    (
        "two documents",
        "services:\n  app:\n    image: a\n---\nservices: {}\n",
        None,
        "c.yaml:1:1: invalid YAML: deserializing from YAML containing more than one document",
    ),
    (
        "a scalar document",
        "just words\n",
        None,
        "c.yaml:1:1: a compose file must be a mapping",
    ),
    (
        "a list document",
        "- services\n",
        None,
        "c.yaml:1:1: a compose file must be a mapping",
    ),
    ("an empty file", "", None, "c.yaml:1:1: the file is empty"),
    (
        "only comments",
        "# services:\n#   app: {}\n",
        None,
        "c.yaml:1:1: the file is empty",
    ),
    (
        "`services` as a list",
        "name: x\nservices:\n  - app\n",
        None,
        "c.yaml:2:1: `services` must be a mapping",
    ),
    (
        "`services:` without a value",
        "name: x\nservices:\n",
        None,
        "c.yaml:2:1: `services:` has no value",
    ),
    (
        "no `services:`",
        "networks:\n  a: {}\n",
        None,
        "c.yaml:1:1: the file has no `services:`",
    ),
    (
        "a service of the wrong shape",
        "services:\n  app:\n    image: busybox\n    ports: 80\n",
        None,
        "c.yaml:2:1: service `app`: invalid type",
    ),
    (
        "a service without a body",
        "services:\n  app:\n",
        None,
        "c.yaml:2:1: service `app`: a service must be a mapping",
    ),
    (
        "networks as a list",
        "services: {}\nnetworks: [a]\n",
        None,
        "c.yaml:2:1: `networks` must be a mapping of names",
    ),
    (
        "an invalid `x-magos.observe`",
        "services: {}\nx-magos:\n  observe: maybe\n",
        None,
        "c.yaml:2:1: `x-magos.observe` must be `true` or `false`",
    ),
    (
        "a required variable unset",
        "services:\n  app:\n    image: busybox\n    environment:\n      X: \"${MUST:?must be set}\"\n",
        None,
        "c.yaml:5:11: required variable `MUST` is not set: must be set",
    ),
    (
        "an unclosed `${`",
        "services:\n  app:\n    image: busybox\n    command: echo ${OOPS\n",
        None,
        "c.yaml:4:19:",
    ),
    (
        "a typo in a service key",
        "services:\n  app:\n    image: busybox\n    enviroment:\n      A: 1\n",
        None,
        "c.yaml:4:5: service `app`: unknown key `enviroment` (did you mean `environment`?)",
    ),
    (
        "a swapped pair of letters",
        "services:\n  app:\n    imgae: busybox\n",
        None,
        "c.yaml:3:5: service `app`: unknown key `imgae` (did you mean `image`?)",
    ),
    (
        "an unknown key with no near match",
        "services:\n  app:\n    image: busybox\n    colour: blue\n",
        None,
        "c.yaml:4:5: service `app`: unknown key `colour`; the compose specification",
    ),
    (
        "a typo in a top-level key",
        "services: {}\nvolume:\n  data: {}\n",
        None,
        "c.yaml:2:1: unknown top-level key `volume` (did you mean `volumes`?)",
    ),
    (
        "a broken override",
        "services:\n  app:\n    image: busybox\n",
        Some("services:\n  app:\n    environment: [A=1\n"),
        "o.yaml:4:1: invalid YAML",
    ),
    (
        "an empty override",
        "services:\n  app:\n    image: busybox\n",
        Some(""),
        "o.yaml:1:1: the file is empty",
    ),
    (
        "a typo in the override",
        "services:\n  app:\n    image: busybox\n",
        Some("services:\n  app:\n    port: [\"80:80\"]\n"),
        "o.yaml:3:5: service `app`: unknown key `port` (did you mean `ports`?)",
    ),
];

#[test]
fn load_errors_fail_the_stack_and_are_located() {
    for (what, text, over, expected) in LOAD_ERRORS {
        let loaded = load(&StackSource {
            compose: ("c.yaml", text),
            override_file: over.map(|o| ("o.yaml", o)),
            vars: &vars(&[]),
        });
        let error = loaded
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no load error; {:?}", loaded.diagnostics));
        let got = error.to_string();
        assert!(
            got.starts_with(expected),
            "{what}\ngot      {got}\nexpected {expected}"
        );
        // Each error is also a diagnostic, for `lint`.
        for e in &error.errors {
            assert!(loaded.diagnostics.contains(e), "{what}: {e}");
        }
    }
}

/// Hostile inputs: refused quickly, before the YAML reader sees them (it takes
/// time quadratic in the depth of flow collections), located, without a panic.
#[test]
fn hostile_inputs_are_refused_before_parsing() {
    let deep_flow = format!("services:\n  app:\n    command: {}\n", "[".repeat(20_000));
    let deep_map = format!("services:\n  app:\n    labels: {}\n", "{a: ".repeat(20_000));
    let deep_block: String = (0..200)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let deep_items = format!("services:\n  app:\n    command:\n{}x\n", "- ".repeat(500));
    let big = format!("services: {{}}\n#{}\n", "x".repeat(MAX_FILE_BYTES));
    let bomb = {
        let mut s = String::from("x-a: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1).replace("*a0", "*a");
            let list = vec![prev; 9].join(", ");
            s.push_str(&format!("x-a{i}: &a{i} [{list}]\n"));
        }
        s + "services: {}\n"
    };
    let cases: [(&str, &str, &str); 6] = [
        ("deep flow sequences", &deep_flow, "c.yaml:3:"),
        ("deep flow mappings", &deep_map, "c.yaml:3:"),
        ("deep block mappings", &deep_block, "c.yaml:"),
        ("deep compact items", &deep_items, "c.yaml:4:"),
        (
            "a file over the size limit",
            &big,
            "c.yaml:1:1: the file is larger than",
        ),
        ("an alias bomb", &bomb, "c.yaml:"),
    ];
    for (what, text, expected) in cases {
        let loaded = load(&StackSource {
            compose: ("c.yaml", text),
            override_file: None,
            vars: &vars(&[]),
        });
        let got = loaded
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no load error"))
            .to_string();
        assert!(got.starts_with(expected), "{what}: {got}");
        if what.starts_with("deep") {
            assert!(
                got.contains(&format!("nests deeper than {MAX_NESTING} levels")),
                "{what}: {got}"
            );
        }
    }
}

/// Odd but valid files load without an error: CRLF line endings, a UTF-8 byte
/// order mark, `services: {}` (a stack that runs nothing), extensions, spec
/// keys Magos leaves to the compose CLI, brackets and quotes inside scalars and
/// block scalars (which the nesting pre-scan must not count).
#[test]
fn odd_valid_files_load() {
    let nested_ok = format!(
        "services:\n  app:\n    image: busybox\nx-deep: {}x{}\n",
        "[".repeat(MAX_NESTING - 1),
        "]".repeat(MAX_NESTING - 1)
    );
    let valid: [(&str, &str, usize); 9] = [
        ("crlf", "services:\r\n  app:\r\n    image: busybox\r\n", 1),
        (
            "bom",
            "\u{feff}name: x\nservices:\n  app:\n    image: busybox\n",
            1,
        ),
        ("no services", "services: {}\n", 0),
        ("only `include:` (of no file)", "include: []\n", 0),
        (
            "extensions and spec keys",
            "x-any: 1\nservices:\n  app:\n    image: busybox\n    x-note: hi\n    build: .\ninclude: []\n",
            1,
        ),
        (
            "brackets in scalars",
            "services:\n  app:\n    image: busybox\n    command: echo [[[[ {{{{ \"[[[[\" '{{'\n    labels:\n      a: \"it's [\"\n",
            1,
        ),
        (
            "a block scalar",
            &format!(
                "services:\n  app:\n    image: busybox\n    command: |\n      {}\n",
                "[".repeat(500)
            ),
            1,
        ),
        ("nesting within the limit", &nested_ok, 1),
        (
            "a JSON file",
            "{\"services\": {\"app\": {\"image\": \"busybox\"}}}\n",
            1,
        ),
    ];
    for (what, text, services) in valid {
        let loaded = load(&StackSource {
            compose: ("c.yaml", text),
            override_file: None,
            vars: &vars(&[]),
        });
        assert!(loaded.error.is_none(), "{what}: {:?}", loaded.error);
        assert_eq!(loaded.services.len(), services, "{what}");
    }
}

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
    deploy: {mode: global}
    x-private: ignored
  db:
    image: postgres:16
    command: postgres -c fsync=off
volumes:
  data: {}
configs:
  c: {file: ./c}
include:
  - path: other/compose.yaml
    env_file: other.env
"#;
    let other = std::collections::BTreeMap::from([(
        "other/compose.yaml".to_owned(),
        "services:\n  other:\n    image: busybox\n".to_owned(),
    )]);
    let none = std::collections::BTreeMap::new();
    let v = vars(&[]);
    let loaded = magos::core::compose::load_with(
        &StackSource {
            compose: ("c.yaml", text),
            override_file: None,
            vars: &v,
        },
        magos::core::compose::Extra {
            texts: &other,
            unreadable: &none,
        },
    );
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.name.as_deref(), Some("demo"));
    assert_eq!(loaded.unsupported, ["include.env_file"]);
    assert_eq!(loaded.files, ["other/compose.yaml"]);
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
    assert_eq!(web.unsupported(), ["deploy.mode"]);
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
