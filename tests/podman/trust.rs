//! The host's trust boundary (`apply.allow`) as a user meets it: the real
//! `magos` binary with a host configuration that restricts what the repository
//! may ask, against the test bed's rootless Podman. A refused stack fails alone
//! (exit 2, the file, line, key and rule named, nothing of it created, changed
//! or pruned); the other stacks of the same repository converge.

use std::os::unix::fs::symlink;

use crate::applycli::{Cleanup, Repo, containers, expect_exit, get_ok, magos, pinned};
use crate::support::{self, show, testbed};

#[test]
fn a_host_that_denies_privileged_the_socket_and_other_paths_fails_those_stacks_alone() {
    let Some(tb) = testbed() else { return };
    let clean = support::unique_name("trust-clean");
    let privileged = support::unique_name("trust-priv");
    let socket = support::unique_name("trust-sock");
    let bind = support::unique_name("trust-bind");
    let _cleanup = Cleanup {
        tb,
        projects: vec![
            clean.clone(),
            privileged.clone(),
            socket.clone(),
            bind.clone(),
        ],
        names: vec![],
    };
    let repo = Repo::new(tb, &clean);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let allowed = tb.user_dir("magos-trust-allowed");
    let outside = tb.user_dir("magos-trust-outside");
    let allowed_dir = allowed.path().display().to_string();
    std::fs::create_dir(allowed.path().join("www")).unwrap();
    // A link in an allowed folder to the Podman socket Magos uses.
    symlink(&tb.podman_socket, allowed.path().join("engine.sock")).unwrap();
    let port = support::free_port();
    let clean_yaml = |rev: &str| {
        format!(
            "name: {clean}
services:
  app:
    image: {httpd}
    ports: [\"127.0.0.1:{port}:8080\"]
    environment: {{REV: \"{rev}\"}}
    volumes:
      - {allowed_dir}/www:/mnt/media:ro
      - ./conf:/mnt/conf:ro
    stop_signal: SIGKILL
"
        )
    };
    repo.write(tb, "clean/compose.yaml", &clean_yaml("1"));
    repo.write(tb, "clean/conf/app.conf", "x\n");
    repo.write(
        tb,
        "bind/compose.yaml",
        &format!(
            "name: {bind}\nservices:\n  app:\n    image: {httpd}\n    volumes:\n      - {}:/outside:ro\n    stop_signal: SIGKILL\n",
            outside.path().display()
        ),
    );

    // Under the default rules, both apply.
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    get_ok(port);
    let bind_before = containers(tb, &bind);
    let clean_before = containers(tb, &clean);
    assert_eq!(bind_before.len(), 1);

    // The host owner restricts; the repository asks for more.
    std::fs::write(
        &repo.config,
        format!(
            "apply:\n  instance: {clean}\n  allow:\n    privileged: false\n    podman_socket: false\n    bind_paths: [{allowed_dir}]\n"
        ),
    )
    .unwrap();
    // `privileged` is applied natively and held to the rule like any stack.
    repo.write(
        tb,
        "priv/compose.yaml",
        &format!("name: {privileged}\nservices:\n  app:\n    image: {httpd}\n    privileged: true\n    stop_signal: SIGKILL\n"),
    );
    repo.write(
        tb,
        "sock/compose.yaml",
        &format!(
            "name: {socket}\nservices:\n  app:\n    image: {httpd}\n    volumes:\n      - {allowed_dir}/engine.sock:/run/engine.sock\n      - /var/run/docker.sock:/var/run/docker.sock\n    stop_signal: SIGKILL\n"
        ),
    );
    repo.write(tb, "clean/compose.yaml", &clean_yaml("2"));

    let expected = [
        (
            privileged.as_str(),
            "priv/compose.yaml:5:5: error: services.app.privileged: a privileged container: refused by apply.allow.privileged=false (host configuration)".to_owned(),
        ),
        (
            socket.as_str(),
            format!("sock/compose.yaml:6:7: error: services.app.volumes: `{allowed_dir}/engine.sock` is the container engine's socket: refused by apply.allow.podman_socket=false (host configuration) (and 1 more refusals)"),
        ),
        (
            bind.as_str(),
            format!("bind/compose.yaml:6:7: error: services.app.volumes: {} is outside the repository: refused by apply.allow.bind_paths=[{allowed_dir}] (host configuration)", outside.path().display()),
        ),
    ];

    // `plan` and `lint` say so before anything is applied.
    let o = magos(tb, &repo, None, &["plan"]);
    expect_exit(&o, 2);
    let out = String::from_utf8_lossy(&o.stdout);
    for (stack, message) in &expected {
        assert!(
            out.contains(&format!("{stack}: error: {message}")),
            "plan does not refuse {stack}: {}",
            show(&o)
        );
    }
    let o = magos(tb, &repo, None, &["lint"]);
    expect_exit(&o, 1);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("services.app.privileged: a privileged container: refused by apply.allow.privileged=false")
            && out.contains("/var/run/docker.sock` is the container engine's socket"),
        "{}",
        show(&o)
    );

    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 2);
    let out = String::from_utf8_lossy(&o.stdout);
    for (stack, message) in &expected {
        assert!(
            out.contains(&format!("FAILED {stack}: {message}")),
            "apply does not refuse {stack}: {}",
            show(&o)
        );
    }
    // Nothing of the refused stacks was created, changed or pruned...
    assert!(containers(tb, &privileged).is_empty());
    assert!(containers(tb, &socket).is_empty());
    assert_eq!(containers(tb, &bind), bind_before);
    // ...and the clean stack converged: its change was applied.
    let clean_after = containers(tb, &clean);
    assert_eq!(clean_after.len(), 1);
    assert_ne!(clean_after, clean_before, "the clean stack was not updated");
    get_ok(port);
}

#[test]
fn an_env_file_linked_out_of_the_repository_is_refused_unless_the_host_allows_it() {
    let Some(tb) = testbed() else { return };
    let linked = support::unique_name("trust-linked");
    let passwd = support::unique_name("trust-passwd");
    let _cleanup = Cleanup {
        tb,
        projects: vec![linked.clone(), passwd.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &linked);
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let outside = tb.user_dir("magos-trust-envfile");
    std::fs::write(outside.path().join("app.env"), "FROM_OUTSIDE=yes\n").unwrap();
    let stack = |name: &str| {
        format!(
            "name: {name}\nservices:\n  app:\n    image: {httpd}\n    env_file: app.env\n    stop_signal: SIGKILL\n"
        )
    };
    repo.write(tb, "linked/compose.yaml", &stack(&linked));
    symlink(
        outside.path().join("app.env"),
        repo.path().join("linked/app.env"),
    )
    .unwrap();
    repo.write(tb, "passwd/compose.yaml", &stack(&passwd));
    symlink("/etc/passwd", repo.path().join("passwd/app.env")).unwrap();

    // Refused by default, each naming its link and the rule.
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 2);
    let out = String::from_utf8_lossy(&o.stdout);
    let real = std::fs::canonicalize(outside.path().join("app.env")).unwrap();
    assert!(
        out.contains(&format!(
            "FAILED {linked}: linked/compose.yaml:5:5: error: services.app.env_file: `app.env` goes through a symbolic link to {}, outside the repository: refused by apply.allow.symlinks_outside_repo=false (host configuration)",
            real.display()
        )),
        "{}",
        show(&o)
    );
    assert!(
        out.contains(&format!("FAILED {passwd}: passwd/compose.yaml:5:5: error: services.app.env_file: `app.env` goes through a symbolic link to /etc/passwd")),
        "{}",
        show(&o)
    );
    assert!(containers(tb, &linked).is_empty());
    assert!(containers(tb, &passwd).is_empty());

    // The host owner allows links out of the repository: the stack applies
    // with the file's variables.
    std::fs::remove_dir_all(repo.path().join("passwd")).unwrap();
    std::fs::write(
        &repo.config,
        format!("apply:\n  instance: {linked}\n  allow:\n    symlinks_outside_repo: true\n"),
    )
    .unwrap();
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    let env = tb.podman_ok(&[
        "inspect",
        "--format",
        "{{.Config.Env}}",
        &format!("{linked}_app_1"),
    ]);
    assert!(env.contains("FROM_OUTSIDE=yes"), "{env}");
}
