//! `magos export quadlet` against the real Podman: the containers the units
//! describe, started with the `podman` commands Podman's generator makes of
//! them, are what Magos would have created through the API, so `magos drift`
//! finds the stack in sync.
//!
//! The commands are run as the test user without systemd (the real-systemd
//! tier runs the units themselves): the generator's `ExecStart=` lines, less
//! the flags that only make sense under systemd (`--cidfile=%t/…`,
//! `--sdnotify=…`, `--cgroups=split`).

use std::path::Path;
use std::process::Command;

use crate::applycli::{Cleanup, Repo, expect_exit, magos, pinned};
use crate::support::{free_port, show, testbed, unique_name};

/// The services Podman's generator makes of the units in `dir`, as `(name,
/// ExecStart words)`, in the order the generator prints them.
fn generated(dir: &Path) -> Vec<(String, Vec<String>)> {
    let quadlet = std::env::var("MAGOS_TESTBED_QUADLET")
        .unwrap_or_else(|_| "/usr/libexec/podman/quadlet".to_owned());
    let out = Command::new(&quadlet)
        .args(["-dryrun", "-user"])
        .env("QUADLET_UNIT_DIRS", dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {quadlet}: {e}"));
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut services = Vec::new();
    for chunk in text.split("\n---").map(|c| c.trim_start_matches("---")) {
        let Some((name, body)) = chunk.split_once("---\n") else {
            continue;
        };
        let exec = body
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{name} has no ExecStart:\n{body}"));
        services.push((name.trim().to_owned(), systemd_words(exec)));
    }
    services
}

/// A command line as systemd splits it: words, double quotes with C escapes,
/// `%%` and `$$` for literal `%` and `$`.
fn systemd_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut w = String::new();
        if first == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => w.push('\n'),
                        Some('t') => w.push('\t'),
                        Some(o) => w.push(o),
                        None => {}
                    },
                    c => w.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                w.push(c);
                chars.next();
            }
        }
        words.push(w.replace("%%", "%").replace("$$", "$"));
    }
    words
}

#[test]
fn containers_started_from_exported_units_are_in_sync() {
    let Some(tb) = testbed() else { return };
    let project = unique_name("qx");
    let repo = Repo::new(tb, &format!("{project}-magos"));
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: Vec::new(),
    };
    let image = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let port = free_port();
    repo.write(
        tb,
        &format!("{project}/compose.yaml"),
        &format!(
            r#"
services:
  db:
    image: {image}
    healthcheck:
      test: ["CMD", "test", "-d", "/"]
      interval: 2s
    volumes:
      - data:/data
    labels:
      role: "db 100% ready"
  app:
    image: {image}
    depends_on:
      db:
        condition: service_healthy
    restart: always
    environment:
      GREETING: 'say "hi" $$HOME 50%'
    ports:
      - "127.0.0.1:{port}:8080"
    networks:
      default:
        aliases: [web]
    volumes:
      - ./conf:/etc/app:ro
    tmpfs:
      - /scratch
    cap_drop: [NET_RAW]
    ulimits:
      nofile: 4096
    init: true
    stop_signal: SIGTERM
    healthcheck:
      test: ["CMD", "true"]
volumes:
  data: {{}}
"#
        ),
    );
    let out = tb.user_dir("magos-quadlet-out");
    let o = magos(
        tb,
        &repo,
        None,
        &[
            "export",
            "quadlet",
            "--scope",
            "user",
            "--out",
            out.path().to_str().unwrap(),
        ],
    );
    expect_exit(&o, 0);
    let services = generated(&out.path().join(&project));
    let names: Vec<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(services.len(), 4, "{names:?}");
    // Networks and volumes first, then the containers in dependency order.
    let rank = |n: &str| {
        if n.ends_with("-network.service") || n.ends_with("-volume.service") {
            0
        } else if n.ends_with("-db.service") {
            1
        } else {
            2
        }
    };
    let mut ordered: Vec<&(String, Vec<String>)> = services.iter().collect();
    ordered.sort_by_key(|(n, _)| rank(n));
    let conf = repo.path().join(&project).join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    for (name, words) in ordered {
        assert_eq!(words[0], "/usr/bin/podman", "{name}: {words:?}");
        let args: Vec<&str> = words[1..]
            .iter()
            .map(String::as_str)
            .filter(|w| {
                !w.starts_with("--cidfile=")
                    && !w.starts_with("--sdnotify=")
                    && *w != "--cgroups=split"
            })
            .collect();
        let run = tb.podman_cli(&args);
        assert!(
            run.status.success(),
            "{name}: podman {args:?}\n{}",
            show(&run)
        );
    }
    let inspect = tb.podman_ok(&[
        "container",
        "inspect",
        &format!("{project}_app_1"),
        "--format",
        "{{range .Config.Env}}{{println .}}{{end}}",
    ]);
    assert!(
        inspect
            .lines()
            .any(|l| l == r#"GREETING=say "hi" $HOME 50%"#),
        "{inspect}"
    );
    // The healthchecks as compose wrote them (Podman reads `HealthCmd=`).
    for (service, want) in [
        ("db", r#"["CMD","test","-d","/"]"#),
        ("app", r#"["CMD","true"]"#),
    ] {
        let test = tb.podman_ok(&[
            "container",
            "inspect",
            &format!("{project}_{service}_1"),
            "--format",
            "{{json .Config.Healthcheck.Test}}",
        ]);
        assert_eq!(test.trim(), want, "{service}");
    }
    let o = magos(tb, &repo, None, &["drift", "--stack", &project]);
    expect_exit(&o, 0);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.matches("in_sync").count() >= 2,
        "both services in sync:\n{text}"
    );
}
