//! The shape of a stack on the real Podman: `scale`/`deploy.replicas` give
//! numbered containers labelled as podman-compose labels them, scaling down
//! removes the highest numbers; `profiles` decide which services run.

use serde_json::Value;

use crate::applycli::{Cleanup, Repo, containers, drift_json, expect_exit, magos, pinned};
use crate::support::{self, Testbed, show, testbed};

fn label(tb: &Testbed, name: &str, key: &str) -> String {
    tb.podman_ok(&[
        "inspect",
        "--format",
        &format!("{{{{index .Config.Labels \"{key}\"}}}}"),
        name,
    ])
    .trim()
    .to_owned()
}

fn replicated(project: &str, image: &str, replicas: &str) -> String {
    format!(
        "name: {project}\nservices:\n  app:\n    image: {image}\n    stop_signal: SIGKILL\n{replicas}  front:\n    image: {image}\n    stop_signal: SIGKILL\n    depends_on: [app]\n"
    )
}

#[test]
fn replicas_are_numbered_containers_and_scaling_down_removes_the_highest() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("shape-replicas");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let image = pinned(
        tb,
        &format!("{}:1.0.0", tb.require("MAGOS_TEST_IMAGE_SEMVER")),
    );
    repo.write(
        tb,
        "app/compose.yaml",
        &replicated(
            &project,
            &image,
            "    deploy:\n      mode: replicated\n      replicas: 3\n",
        ),
    );
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    let made = containers(tb, &project);
    let mut names: Vec<&String> = made.keys().collect();
    names.sort();
    let want: Vec<String> = ["app_1", "app_2", "app_3", "front_1"]
        .iter()
        .map(|n| format!("{project}_{n}"))
        .collect();
    assert_eq!(names, want.iter().collect::<Vec<_>>(), "{}", show(&o));
    for n in 1..=3 {
        let name = format!("{project}_app_{n}");
        assert_eq!(
            label(tb, &name, "com.docker.compose.container-number"),
            n.to_string()
        );
        assert_eq!(label(tb, &name, "com.docker.compose.service"), "app");
    }
    let (code, d) = drift_json(tb, &repo);
    assert_eq!(code, 0, "{d:#?}");
    // Converged: a second apply does nothing.
    let o = magos(tb, &repo, None, &["plan", "--output", "json"]);
    expect_exit(&o, 0);

    // A replica removed by hand is reported and brought back alone.
    tb.podman_ok(&["rm", "-f", "-t", "0", &format!("{project}_app_2")]);
    let o = magos(tb, &repo, None, &["drift", "--output", "json"]);
    expect_exit(&o, 1);
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let missing: Vec<&Value> = rows.iter().filter(|r| r["state"] == "missing").collect();
    assert_eq!(missing.len(), 1, "{}", show(&o));
    assert_eq!(missing[0]["expected"], format!("{project}_app_2"));
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    let again = containers(tb, &project);
    assert_eq!(again.len(), 4);
    assert_eq!(
        again[&format!("{project}_app_1")],
        made[&format!("{project}_app_1")]
    );

    // Scaled down to one (`scale:`): 2 and 3 go, 1 and the dependent stay.
    repo.write(
        tb,
        "app/compose.yaml",
        &replicated(&project, &image, "    scale: 1\n"),
    );
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    let after = containers(tb, &project);
    let mut names: Vec<&String> = after.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [&format!("{project}_app_1"), &format!("{project}_front_1")],
        "{}",
        show(&o)
    );
    assert_eq!(
        after[&format!("{project}_app_1")],
        made[&format!("{project}_app_1")]
    );
    assert_eq!(
        after[&format!("{project}_front_1")],
        made[&format!("{project}_front_1")]
    );
}

#[test]
fn profiles_decide_which_services_run() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("shape-profiles");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let image = pinned(
        tb,
        &format!("{}:1.0.0", tb.require("MAGOS_TEST_IMAGE_SEMVER")),
    );
    let service = |name: &str, extra: &str| {
        format!("  {name}:\n    image: {image}\n    stop_signal: SIGKILL\n{extra}")
    };
    repo.write(
        tb,
        "app/compose.yaml",
        &format!(
            "name: {project}\nservices:\n{}{}{}",
            service("app", ""),
            service("debug", "    profiles: [debug]\n"),
            service("tools", "    profiles: [tools, debug]\n"),
        ),
    );
    let names = |tb: &Testbed| {
        let mut n: Vec<String> = containers(tb, &project).into_keys().collect();
        n.sort();
        n
    };
    let set_profiles = |profiles: &str| {
        std::fs::write(
            &repo.config,
            format!("apply:\n  instance: {project}\n  profiles: [{profiles}]\n"),
        )
        .unwrap();
    };
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    assert_eq!(names(tb), [format!("{project}_app_1")]);

    set_profiles("tools");
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    assert_eq!(
        names(tb),
        [format!("{project}_app_1"), format!("{project}_tools_1")]
    );
    let (code, _) = drift_json(tb, &repo);
    assert_eq!(code, 0);

    // The profile turned off again: its service's container goes.
    set_profiles("");
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    assert_eq!(names(tb), [format!("{project}_app_1")]);
}

#[test]
fn include_and_extends_take_in_other_files() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("shape-files");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let image = pinned(
        tb,
        &format!("{}:1.0.0", tb.require("MAGOS_TEST_IMAGE_SEMVER")),
    );
    repo.write(
        tb,
        "app/compose.yaml",
        &format!(
            "name: {project}\nx-magos:\n  files: [extra.yaml]\ninclude:\n  - db/db.yaml\nservices:\n  web:\n    extends: {{file: ../common/base.yaml, service: base}}\n    environment: [ROLE=web]\n    depends_on: [db]\n"
        ),
    );
    repo.write(
        tb,
        "app/db/db.yaml",
        &format!(
            "services:\n  db:\n    image: {image}\n    stop_signal: SIGKILL\n    volumes: [./init:/init:ro]\n"
        ),
    );
    repo.write(tb, "app/db/init/schema.sql", "-- empty\n");
    repo.write(
        tb,
        "app/extra.yaml",
        "services:\n  web:\n    environment: {EXTRA: \"1\"}\n",
    );
    repo.write(
        tb,
        "common/base.yaml",
        &format!(
            "services:\n  base:\n    image: {image}\n    stop_signal: SIGKILL\n    environment: [FROM=base, ROLE=base]\n"
        ),
    );
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    let env = tb.podman_ok(&[
        "inspect",
        "--format",
        "{{join .Config.Env \" \"}}",
        &format!("{project}_web_1"),
    ]);
    assert!(
        env.contains("FROM=base")
            && env.contains("ROLE=web")
            && env.contains("EXTRA=1")
            && !env.contains("ROLE=base"),
        "{env}\n{}",
        show(&o)
    );
    let source = tb.podman_ok(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Source}}{{end}}",
        &format!("{project}_db_1"),
    ]);
    let real = std::fs::canonicalize(repo.path().join("app/db/init")).unwrap();
    assert_eq!(source.trim(), real.to_string_lossy(), "{}", show(&o));
    let (code, d) = drift_json(tb, &repo);
    assert_eq!(code, 0, "{d:#?}");
}

/// An included file that is a symbolic link out of the repository is refused
/// like the stack's own files (`apply.allow.symlinks_outside_repo`), naming it.
#[test]
fn an_included_file_linked_from_outside_the_repository_is_refused() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("shape-link");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let outside = tb.user_dir("magos-shape-outside");
    std::fs::write(
        outside.path().join("ext.yaml"),
        "services:\n  ext:\n    image: busybox\n",
    )
    .unwrap();
    repo.write(
        tb,
        "app/compose.yaml",
        &format!("name: {project}\ninclude: [ext.yaml]\nservices: {{}}\n"),
    );
    std::os::unix::fs::symlink(
        outside.path().join("ext.yaml"),
        repo.path().join("app/ext.yaml"),
    )
    .unwrap();
    let o = magos(tb, &repo, None, &["plan"]);
    expect_exit(&o, 2);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("app/ext.yaml") && out.contains("symbolic link"),
        "{}",
        show(&o)
    );
    assert!(containers(tb, &project).is_empty());
}

/// A stack applied by the compose CLI gets the active profiles too.
#[test]
fn the_compose_cli_gets_the_active_profiles() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("shape-cliprof");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let image = pinned(
        tb,
        &format!("{}:1.0.0", tb.require("MAGOS_TEST_IMAGE_SEMVER")),
    );
    let service = |name: &str, extra: &str| {
        format!("  {name}:\n    image: {image}\n    stop_signal: SIGKILL\n{extra}")
    };
    repo.write(
        tb,
        "app/compose.yaml",
        &format!(
            "name: {project}\nx-magos:\n  apply: compose\nservices:\n{}{}{}",
            service("app", ""),
            service("debug", "    profiles: [debug]\n"),
            service("tools", "    profiles: [tools]\n"),
        ),
    );
    std::fs::write(
        &repo.config,
        format!("apply:\n  instance: {project}\n  profiles: [tools]\n"),
    )
    .unwrap();
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    let mut names: Vec<String> = containers(tb, &project).into_keys().collect();
    names.sort();
    assert_eq!(
        names,
        [format!("{project}_app_1"), format!("{project}_tools_1")],
        "{}",
        show(&o)
    );
}
