use super::*;
use std::io::Write;

use crate::config::test_env as env;

fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("magos.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    (dir, path)
}

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/magos.yaml")
}

#[test]
fn the_reference_file_is_the_default() {
    let loaded = load(Some(&reference()), &Env::new(), &Overrides::default()).unwrap();
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn the_reference_file_documents_every_key() {
    let text = std::fs::read_to_string(reference()).unwrap();
    let keys = keys_in_file(&text);
    for key in Config::KEYS {
        assert!(
            keys.contains(key),
            "configs/magos.yaml does not show `{key}`"
        );
    }
    for var in ENV_VARS {
        assert!(
            Config::KEYS.contains(&var.key),
            "{} sets unknown key {}",
            var.name,
            var.key
        );
        assert!(
            text.contains(var.name),
            "configs/magos.yaml does not name {}",
            var.name
        );
    }
}

#[test]
fn a_typo_names_file_line_and_key() {
    let (_d, path) = file_with("repo:\n  url: /srv/repo\n  brnach: main\n");
    let err = load(Some(&path), &Env::new(), &Overrides::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("{}:3:3: ", path.display())),
        "{msg}"
    );
    assert!(msg.contains("unknown field `brnach`"), "{msg}");
    assert!(msg.contains("repo"), "{msg}");
}

#[test]
fn a_wrong_type_names_file_line_and_key() {
    let (_d, path) = file_with("github:\n  app_id: twelve\n");
    let msg = load(Some(&path), &Env::new(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with(&format!("{}:2:11: github.app_id: ", path.display())),
        "{msg}"
    );
}

#[test]
fn a_bad_value_names_file_line_and_key() {
    for (text, line, key) in [
        ("runtime: lxc\n", 1, "runtime"),
        (
            "registries:\n  timeout: 5 minutes\n",
            2,
            "registries.timeout",
        ),
        ("repo:\n  branch: 'bad..name'\n", 2, "repo.branch"),
        (
            "podman:\n  socket: tcp://10.0.0.1:8080\n",
            2,
            "podman.socket",
        ),
        (
            "registries:\n  insecure:\n    - ok:5000\n    - http://bad\n",
            4,
            "registries.insecure",
        ),
        ("log:\n  format: xml\n", 2, "log.format"),
    ] {
        let (_d, path) = file_with(text);
        let msg = load(Some(&path), &Env::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(&format!("{}:{line}:", path.display())),
            "{msg}"
        );
        assert!(msg.contains(&format!("{key}: ")), "{key} not in {msg}");
    }
}

#[test]
fn invalid_yaml_is_an_error_with_a_line() {
    let (_d, path) = file_with("repo:\n  url: [unclosed\n");
    let err = load(Some(&path), &Env::new(), &Overrides::default()).unwrap_err();
    assert!(
        matches!(err, ConfigError::File { line, .. } if line > 0),
        "{err}"
    );
}

#[test]
fn precedence_is_flag_env_dotenv_file_default() {
    let (dir, path) =
        file_with("repo:\n  url: /from/file\n  branch: file-branch\nlog:\n  level: warn\n");
    std::fs::write(
        dir.path().join(".env"),
        "MD_REPO=/from/dotenv\nMD_BRANCH=dotenv-branch\n",
    )
    .unwrap();
    let e = env(&[("MD_REPO", "/from/env")]);
    let flags = Overrides {
        repo: Some("/from/flag".into()),
        ..Default::default()
    };

    let l = load(Some(&path), &e, &flags).unwrap();
    assert_eq!(l.config.repo.url.unwrap().expose(), "/from/flag");
    assert_eq!(l.sources["repo.url"], Source::Flag("--repo"));
    assert_eq!(l.config.repo.branch.as_str(), "dotenv-branch");
    assert_eq!(
        l.sources["repo.branch"],
        Source::DotEnv(dir.path().join(".env"), 2)
    );
    assert_eq!(l.config.log.level, LogLevel::Warn);
    assert_eq!(l.sources["log.level"], Source::File(path.clone()));
    assert!(!l.sources.contains_key("log.format"));

    let l = load(Some(&path), &e, &Overrides::default()).unwrap();
    assert_eq!(l.config.repo.url.unwrap().expose(), "/from/env");
    let l = load(Some(&path), &Env::new(), &Overrides::default()).unwrap();
    assert_eq!(l.config.repo.url.unwrap().expose(), "/from/dotenv");
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    let l = load(Some(&path), &Env::new(), &Overrides::default()).unwrap();
    assert_eq!(l.config.repo.url.unwrap().expose(), "/from/file");
}

#[test]
fn md_runtime_accepts_podman_podman_compose_and_docker() {
    for (value, runtime) in [
        ("podman", Runtime::Podman),
        ("podman-compose", Runtime::PodmanCompose),
        ("docker", Runtime::Docker),
    ] {
        let config = load(None, &env(&[("MD_RUNTIME", value)]), &Overrides::default()).unwrap();
        assert_eq!(config.config.runtime, runtime);
        assert_eq!(config.config.runtime.to_string(), value);
    }
    let err = load(
        None,
        &env(&[("MD_RUNTIME", "containerd")]),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("MD_RUNTIME") && err.contains("unknown runtime") && err.contains("docker"),
        "{err}"
    );
}

#[test]
fn md_runtime_quadlet_selects_the_unit_runtime() {
    let l = load(
        None,
        &env(&[("MD_RUNTIME", "quadlet")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(l.config.runtime, crate::config::Runtime::Quadlet);
    assert_eq!(l.config.runtime.to_string(), "quadlet");
}

#[test]
fn an_unknown_dotenv_variable_is_refused_with_its_line() {
    let (dir, path) = file_with("");
    std::fs::write(dir.path().join(".env"), "# x\nMD_REPOO=/x\n").unwrap();
    let msg = load(Some(&path), &Env::new(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:2: unknown variable `MD_REPOO`",
            dir.path().join(".env").display()
        )),
        "{msg}"
    );
}

#[test]
fn secrets_never_show() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecretmaterial\n-----END RSA PRIVATE KEY-----";
    let e = env(&[
        ("GITHUB_APP_PRIVATE_KEY", pem),
        (
            "MD_REPO",
            "https://x-access-token:ghs_TOKEN@github.com/o/r.git",
        ),
    ]);
    let l = load(None, &e, &Overrides::default()).unwrap();
    let shown = format!(
        "{:?}\n{}",
        l.config,
        serde_yaml_ng::to_string(&l.config).unwrap()
    );
    assert!(!shown.contains("secretmaterial"), "{shown}");
    assert!(!shown.contains("ghs_TOKEN"), "{shown}");
    assert!(
        shown.contains("x-access-token:<redacted>@github.com"),
        "{shown}"
    );
    // A bad secret value is not echoed in the error either.
    let err = load(
        None,
        &env(&[(
            "GITHUB_APP_PRIVATE_KEY",
            "-----BEGIN CERTIFICATE-----\nsecretmaterial",
        )]),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("secretmaterial"), "{err}");
}

#[test]
fn token_only_urls_are_redacted() {
    let u = RepoUrl::parse("https://ghp_abc@github.com/o/r").unwrap();
    assert_eq!(u.redacted(), "https://<redacted>@github.com/o/r");
    let u = RepoUrl::parse("ssh://git@host/o/r").unwrap();
    assert_eq!(u.redacted(), "ssh://git@host/o/r");
}

#[test]
fn default_config_path_prefers_magos_config_then_xdg() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("magos/magos.yaml");
    std::fs::create_dir_all(xdg.parent().unwrap()).unwrap();
    std::fs::write(&xdg, "").unwrap();
    let e = env(&[("XDG_CONFIG_HOME", dir.path().to_str().unwrap())]);
    assert_eq!(default_config_path(&e), Some(xdg));
    let e = env(&[
        ("MAGOS_CONFIG", "/elsewhere.yaml"),
        ("XDG_CONFIG_HOME", dir.path().to_str().unwrap()),
    ]);
    assert_eq!(
        default_config_path(&e),
        Some(PathBuf::from("/elsewhere.yaml"))
    );
}

#[test]
fn magos_own_variables_have_the_md_prefix_and_their_magos_aliases() {
    // Magos's own variables have one prefix; the others are other tools'
    // (CONTAINER_HOST, SOPS_AGE_KEY_FILE, GITHUB_APP_ID, …).
    for var in ENV_VARS {
        assert!(!var.name.starts_with("MAGOS_"), "{}", var.name);
    }
    for (name, alias, _) in OWN_VARS {
        assert!(name.starts_with(ENV_PREFIX), "{name}");
        assert_eq!(alias.strip_prefix("MAGOS_"), name.strip_prefix(ENV_PREFIX));
    }
    let path = |vars: &[(&str, &str)]| default_config_path(&env(vars));
    let md = Some(PathBuf::from("/md.yaml"));
    assert_eq!(path(&[("MD_CONFIG", "/md.yaml")]), md);
    assert_eq!(
        path(&[("MAGOS_CONFIG", "/alias.yaml")]),
        Some(PathBuf::from("/alias.yaml"))
    );
    // Both set, differently: the MD_ one wins; an empty one counts as unset.
    assert_eq!(
        path(&[("MD_CONFIG", "/md.yaml"), ("MAGOS_CONFIG", "/alias.yaml")]),
        md
    );
    assert_eq!(
        path(&[("MD_CONFIG", ""), ("MAGOS_CONFIG", "/alias.yaml")]),
        Some(PathBuf::from("/alias.yaml"))
    );
    let e = env(&[("MD_LOG", "magos=debug"), ("MAGOS_LOG", "magos=trace")]);
    assert_eq!(
        own_var(&e, "MD_LOG").map(String::as_str),
        Some("magos=debug")
    );
    let e = env(&[("MAGOS_LOG", "magos=trace")]);
    assert_eq!(
        own_var(&e, "MD_LOG").map(String::as_str),
        Some("magos=trace")
    );
    // The init path follows the same rule.
    let e = env(&[("MD_CONFIG", "/md.yaml"), ("MAGOS_CONFIG", "/alias.yaml")]);
    assert_eq!(render::init_path(&e, false), md);
}

#[test]
fn the_commit_settings_are_read_and_checked() {
    let (_d, path) = file_with(
        "repo:\n  commit:\n    message: \"bump {services}\\n\\n{changes}\"\n    author_name: Bot\n    author_email: bot@example.org\n",
    );
    let c = load(Some(&path), &Env::new(), &Overrides::default())
        .unwrap()
        .config;
    assert_eq!(
        c.repo.commit.message.as_str(),
        "bump {services}\n\n{changes}"
    );
    assert_eq!(c.repo.commit.author_name.as_str(), "Bot");
    assert_eq!(c.repo.commit.author_email.as_str(), "bot@example.org");

    for (text, line, key, what) in [
        (
            "repo:\n  commit:\n    message: \"bump {image}\"\n",
            3,
            "repo.commit.message",
            "unknown placeholder `{image}`",
        ),
        (
            "repo:\n  commit:\n    message: \"bump {count\"\n",
            3,
            "repo.commit.message",
            "unclosed",
        ),
        (
            "repo:\n  commit:\n    author_email: \"<bot@x>\"\n",
            3,
            "repo.commit.author_email",
            "cannot be used",
        ),
        (
            "repo:\n  commit:\n    author_name: \"\"\n",
            3,
            "repo.commit.author_name",
            "empty",
        ),
    ] {
        let (_d, path) = file_with(text);
        let msg = load(Some(&path), &Env::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(&format!("{}:{line}:", path.display())),
            "{msg}"
        );
        assert!(msg.contains(&format!("{key}: ")), "{key} not in {msg}");
        assert!(msg.contains(what), "{what} not in {msg}");
    }
}

#[test]
fn the_state_dir_defaults_to_xdg_state_home() {
    let c = Config::default();
    assert_eq!(
        state_dir(&c, &env(&[("XDG_STATE_HOME", "/s"), ("HOME", "/h")])),
        Some(PathBuf::from("/s/magos"))
    );
    assert_eq!(
        state_dir(&c, &env(&[("HOME", "/h")])),
        Some(PathBuf::from("/h/.local/state/magos"))
    );
    let c = Config {
        state_dir: Some(PathBuf::from("/var/lib/magos")),
        ..Config::default()
    };
    assert_eq!(
        state_dir(&c, &env(&[("XDG_STATE_HOME", "/s")])),
        Some(PathBuf::from("/var/lib/magos"))
    );
}

#[test]
fn the_github_api_url_is_checked() {
    let (_d, path) = file_with("github:\n  api_url: https://ghe.example/api/v3/\n");
    let c = load(Some(&path), &Env::new(), &Overrides::default())
        .unwrap()
        .config;
    assert_eq!(c.github.api_url.as_str(), "https://ghe.example/api/v3");
    for bad in [
        "github:\n  api_url: ftp://x\n",
        "github:\n  api_url: https://user:pw@ghe.example\n",
    ] {
        let (_d, path) = file_with(bad);
        let msg = load(Some(&path), &Env::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("github.api_url: "), "{msg}");
        assert!(!msg.contains("pw@"), "{msg}");
    }
}

#[test]
fn apply_keys_are_checked() {
    let (_d, path) = file_with("apply:\n  prune: false\n  instance: nas-1\n");
    let loaded = load(Some(&path), &Env::new(), &Overrides::default()).unwrap();
    assert!(!loaded.config.apply.prune);
    assert_eq!(loaded.config.apply.instance.as_str(), "nas-1");
    let (_d, path) = file_with("apply:\n  instance: \"a b\"\n");
    let err = load(Some(&path), &Env::new(), &Overrides::default()).unwrap_err();
    assert!(
        err.to_string().contains("apply.instance") || format!("{err:#}").contains("instance"),
        "{err:#}"
    );
    let mut c = Config::default();
    assert!(c.set("apply.prune", "maybe").is_err());
    c.set("apply.prune", "false").unwrap();
    assert!(!c.apply.prune);
}

#[test]
fn the_update_mode_and_pull_request_grouping_are_read_and_checked() {
    let c = Config::default();
    assert_eq!(c.repo.mode, RepoMode::Direct);
    assert_eq!(c.repo.pr_grouping, PrGrouping::PerService);
    let (_d, path) = file_with("repo:\n  mode: pull_request\n  pr_grouping: grouped\n");
    let c = load(Some(&path), &Env::new(), &Overrides::default())
        .unwrap()
        .config;
    assert_eq!(c.repo.mode, RepoMode::PullRequest);
    assert_eq!(c.repo.pr_grouping, PrGrouping::Grouped);
    for (text, key) in [
        ("repo:\n  mode: pr\n", "repo.mode"),
        ("repo:\n  pr_grouping: each\n", "repo.pr_grouping"),
    ] {
        let (_d, path) = file_with(text);
        let msg = load(Some(&path), &Env::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with(&format!("{}:2:", path.display())), "{msg}");
        assert!(msg.contains(&format!("{key}: ")), "{key} not in {msg}");
    }
    let mut c = Config::default();
    c.set("repo.mode", "pull_request").unwrap();
    c.set("repo.pr_grouping", "grouped").unwrap();
    assert_eq!(c.repo.mode, RepoMode::PullRequest);
    assert!(
        c.set("repo.mode", "sideways")
            .unwrap_err()
            .contains("direct")
    );
}

#[test]
fn the_trust_boundary_reads_from_the_file_and_the_environment() {
    let (_d, path) = file_with(
        "apply:\n  allow:\n    privileged: false\n    bind_paths: [/srv/media/, /home/me/data]\n",
    );
    let c = load(Some(&path), &Env::new(), &Overrides::default())
        .unwrap()
        .config;
    let rules = c.apply.allow.rules();
    assert!(!rules.privileged && rules.podman_socket && !rules.symlinks_outside_repo);
    assert_eq!(
        rules.bind_paths,
        Some(vec!["/srv/media".to_owned(), "/home/me/data".to_owned()])
    );
    let e = env(&[
        ("MD_ALLOW_PODMAN_SOCKET", "false"),
        ("MD_ALLOW_BIND_PATHS", "none"),
        ("MD_ALLOW_SYMLINKS_OUTSIDE_REPO", "true"),
    ]);
    let rules = load(Some(&path), &e, &Overrides::default())
        .unwrap()
        .config
        .apply
        .allow
        .rules();
    assert!(!rules.podman_socket && rules.symlinks_outside_repo && !rules.privileged);
    assert_eq!(rules.bind_paths, Some(vec![]));
    let any = env(&[("MD_ALLOW_BIND_PATHS", "any")]);
    let c = load(Some(&path), &any, &Overrides::default())
        .unwrap()
        .config;
    assert_eq!(c.apply.allow.rules().bind_paths, None);
    let colon = env(&[("MD_ALLOW_BIND_PATHS", "/a:/b/")]);
    let c = load(None, &colon, &Overrides::default()).unwrap().config;
    assert_eq!(
        c.apply.allow.rules().bind_paths,
        Some(vec!["/a".to_owned(), "/b".to_owned()])
    );
    // A relative prefix is refused with its line and key.
    let (_d, bad) = file_with("apply:\n  allow:\n    bind_paths: [data]\n");
    let msg = load(Some(&bad), &Env::new(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(":3:") && msg.contains("apply.allow.bind_paths"),
        "{msg}"
    );
    assert!(msg.contains("not an absolute path"), "{msg}");
}

#[test]
fn active_profiles_come_from_the_file_or_compose_profiles() {
    let names = |c: &Config| -> Vec<String> {
        c.apply
            .profiles
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect()
    };
    let (_d, path) = file_with("apply:\n  profiles: [tools, \"*\"]\n");
    let c = load(Some(&path), &Env::new(), &Overrides::default())
        .unwrap()
        .config;
    assert_eq!(names(&c), ["tools", "*"]);
    let e = env(&[("COMPOSE_PROFILES", " debug , tools,")]);
    let c = load(Some(&path), &e, &Overrides::default()).unwrap().config;
    assert_eq!(names(&c), ["debug", "tools"]);
    let c = load(None, &Env::new(), &Overrides::default())
        .unwrap()
        .config;
    assert!(c.apply.profiles.is_empty());
    let (_d, bad) = file_with("apply:\n  profiles: [\"-x\"]\n");
    let msg = load(Some(&bad), &Env::new(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(":2:") && msg.contains("apply.profiles") && msg.contains("not a profile name"),
        "{msg}"
    );
    let msg = load(
        None,
        &env(&[("COMPOSE_PROFILES", "a b")]),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("COMPOSE_PROFILES"), "{msg}");
}

#[test]
fn notification_sinks_are_read_with_their_defaults_and_never_show_secrets() {
    let (_d, path) = file_with(
        "notify:\n  - kind: ntfy\n    url: https://ntfy.example.org/magos-topic\n    token: tk_SECRETTOKEN\n  - kind: webhook\n    url: https://hooks.example.org/in?key=QUERYSECRET\n    secret: HMACSECRET\n    events: [pinned, pass_failed]\n  - kind: discord\n    url: https://discord.com/api/webhooks/1/PATHSECRET\nnotify_repeat: 6h\n",
    );
    let l = load(Some(&path), &Env::new(), &Overrides::default()).unwrap();
    let n = &l.config.notify;
    assert_eq!(n.len(), 3);
    assert_eq!(n[0].kind, SinkKind::Ntfy);
    assert_eq!(n[0].token.as_ref().unwrap().expose(), "tk_SECRETTOKEN");
    assert_eq!(n[0].events, NotifySink::default_events());
    assert!(
        !n[0]
            .events
            .contains(&crate::core::event::EventKind::Applied)
    );
    use crate::core::event::EventKind;
    assert_eq!(n[1].events, vec![EventKind::Pinned, EventKind::PassFailed]);
    assert_eq!(n[1].secret.as_ref().unwrap().expose(), "HMACSECRET");
    assert_eq!(
        l.config.notify_repeat,
        NotifyRepeat(std::time::Duration::from_secs(6 * 3600))
    );
    let shown = format!(
        "{:?}\n{}",
        l.config,
        serde_yaml_ng::to_string(&l.config).unwrap()
    );
    for secret in [
        "SECRETTOKEN",
        "QUERYSECRET",
        "HMACSECRET",
        "PATHSECRET",
        "magos-topic",
    ] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
    assert!(shown.contains("https://discord.com/…"), "{shown}");
    // The environment sets the repeat.
    let l = load(
        Some(&path),
        &env(&[("MD_NOTIFY_REPEAT", "30m")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        l.config.notify_repeat,
        NotifyRepeat(std::time::Duration::from_secs(1800))
    );
}

#[test]
fn a_bad_notification_sink_names_file_line_and_key() {
    let cases = [
        (
            "notify:\n  - kind: slack\n    url: https://x.example\n",
            2,
            "unknown variant `slack`",
        ),
        (
            "notify:\n  - kind: ntfy\n    url: ftp://x.example/t\n",
            3,
            "notify[0].url: `ftp://`: a notification URL starts with http:// or https://",
        ),
        (
            "notify:\n  - kind: ntfy\n    url: https://x.example/t\n    events: [pinned, deployed]\n",
            4,
            "unknown variant `deployed`",
        ),
        (
            "notify:\n  - kind: ntfy\n    url: https://x.example/t\n    secret: NOTSHOWN\n",
            4,
            "`secret` signs `webhook` requests only",
        ),
        (
            "notify:\n  - kind: ntfy\n    url: https://x.example/t\n    tokn: NOTSHOWN\n",
            4,
            "unknown field `tokn`",
        ),
    ];
    for (text, line, want) in cases {
        let (_d, path) = file_with(text);
        let msg = load(Some(&path), &Env::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(&format!("{}:{line}:", path.display())),
            "{text}: {msg}"
        );
        assert!(msg.contains(want), "{text}: {msg}");
        assert!(msg.contains("notify"), "{text}: {msg}");
        assert!(!msg.contains("NOTSHOWN"), "{text}: {msg}");
    }
}
