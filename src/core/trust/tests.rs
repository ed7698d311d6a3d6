use super::*;
use crate::core::compose::{StackSource, load};
use crate::core::interpolate::Vars;

const REPO: &str = "/repo";
const FILE: &str = "app/compose.yaml";

/// The uses of a one-file stack in `/repo/app`.
fn uses_of(yaml: &str) -> Vec<Use> {
    let loaded = load(&StackSource {
        compose: (FILE, yaml),
        override_file: None,
        vars: &Vars::new(),
    });
    let texts = BTreeMap::from([(FILE.to_owned(), yaml.to_owned())]);
    uses(&Subject {
        loaded: &loaded,
        repo: REPO,
        dir: "/repo/app",
        files: vec![FILE],
        texts: &texts,
        home: Some("/home/u"),
    })
}

/// The refusals for `yaml` under `allow`, with `real` as the file system's
/// answers and the Podman socket of user 1000.
fn refused(yaml: &str, allow: &Allow, real: &[(&str, &str)]) -> Vec<String> {
    let facts = Facts {
        real: real
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect(),
        sockets: engine_sockets(Some("/run/user/1000"), None),
    };
    decide(&uses_of(yaml), &facts, allow, REPO)
        .into_iter()
        .map(|d| d.to_string())
        .collect()
}

fn strict() -> Allow {
    Allow {
        privileged: false,
        host_namespaces: false,
        devices: false,
        podman_socket: false,
        bind_paths: Some(vec!["/srv/media".to_owned()]),
        symlinks_outside_repo: false,
    }
}

/// A stack that asks for everything the rules govern.
const GREEDY: &str = "services:
  app:
    image: busybox
    privileged: true
    pid: host
    network_mode: host
    devices:
      - /dev/fuse
    volumes:
      - ./data:/data
      - /var/run/docker.sock:/var/run/docker.sock
      - /etc:/host/etc:ro
      - /srv/media/films:/films
    env_file: ./app.env
";

#[test]
fn the_default_allows_everything_but_symlinks_out_of_the_repository() {
    assert!(refused(GREEDY, &Allow::default(), &[]).is_empty());
    let out = refused(
        GREEDY,
        &Allow::default(),
        &[("/repo/app/app.env", "/etc/passwd")],
    );
    assert_eq!(
        out,
        [
            "app/compose.yaml:14:5: error: services.app.env_file: `./app.env` goes through a symbolic link to /etc/passwd, outside the repository: refused by apply.allow.symlinks_outside_repo=false (host configuration)"
        ]
    );
}

#[test]
fn privileged_is_refused_with_file_line_key_and_rule() {
    let allow = Allow {
        privileged: false,
        ..Allow::default()
    };
    assert_eq!(
        refused(GREEDY, &allow, &[]),
        [
            "app/compose.yaml:4:5: error: services.app.privileged: a privileged container: refused by apply.allow.privileged=false (host configuration)"
        ]
    );
    // `false`, or an interpolated "false", is no privilege.
    let no = "services:\n  app:\n    image: busybox\n    privileged: \"false\"\n";
    assert!(refused(no, &allow, &[]).is_empty());
    let yes = "services:\n  app:\n    image: busybox\n    privileged: \"True\"\n";
    assert_eq!(refused(yes, &allow, &[]).len(), 1);
}

#[test]
fn host_namespaces_are_refused_each_at_its_key() {
    let allow = Allow {
        host_namespaces: false,
        ..Allow::default()
    };
    let out = refused(GREEDY, &allow, &[]);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].starts_with("app/compose.yaml:6:5: error: services.app.network_mode: `host` shares a host namespace: refused by apply.allow.host_namespaces=false"), "{out:?}");
    assert!(
        out[1].starts_with("app/compose.yaml:5:5: error: services.app.pid: `host`"),
        "{out:?}"
    );
    let more = "services:
  app:
    image: busybox
    ipc: host
    userns_mode: host
    uts: host
    network_mode: \"ns:/proc/1/ns/net\"
  ok:
    image: busybox
    network_mode: bridge
    ipc: shareable
    pid: \"service:app\"
";
    let out = refused(more, &allow, &[]);
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(out.iter().any(|m| m.contains("`ns:/proc/1/ns/net`")));
}

#[test]
fn devices_are_refused() {
    let allow = Allow {
        devices: false,
        ..Allow::default()
    };
    assert_eq!(
        refused(GREEDY, &allow, &[]),
        [
            "app/compose.yaml:8:7: error: services.app.devices: `/dev/fuse` gives a host device: refused by apply.allow.devices=false (host configuration)"
        ]
    );
    let gpus = "services:\n  app:\n    image: busybox\n    gpus: all\n    device_cgroup_rules: ['c 1:3 mr']\n";
    assert_eq!(refused(gpus, &allow, &[]).len(), 2);
    let deploy = "services:\n  app:\n    image: busybox\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - {driver: nvidia, count: 1, capabilities: [gpu]}\n";
    let out = refused(deploy, &allow, &[]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].contains("services.app.deploy: `GPUs (gpu)` gives a host device"),
        "{out:?}"
    );
    assert!(refused(deploy, &Allow::default(), &[]).is_empty());
}

#[test]
fn the_engine_socket_is_refused_however_it_is_reached() {
    let allow = Allow {
        podman_socket: false,
        ..Allow::default()
    };
    assert_eq!(
        refused(GREEDY, &allow, &[]),
        [
            "app/compose.yaml:11:7: error: services.app.volumes: `/var/run/docker.sock` is the container engine's socket: refused by apply.allow.podman_socket=false (host configuration)"
        ]
    );
    let ways = "services:
  app:
    image: busybox
    volumes:
      - /run/user/1000/podman/podman.sock:/sock
      - /run/user/1000:/xdg
      - type: bind
        source: /opt/link.sock
        target: /sock2
      - /var/run:/vr
      - /srv/data:/data
";
    let out = refused(
        ways,
        &allow,
        &[
            ("/opt/link.sock", "/run/podman/podman.sock"),
            ("/var/run", "/run"),
        ],
    );
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(out[0].contains(":5:7:") && out[0].contains("is the container engine's socket"));
    assert!(out[1].contains("holds the container engine's socket /run/user/1000/"));
    assert!(out[2].contains("`/opt/link.sock` is the container engine's socket"));
    assert!(out[3].contains("`/var/run` holds"));
    // The socket Magos is configured with counts too.
    let sockets = engine_sockets(None, Some("unix:///var/lib/podman/api.sock"));
    assert!(sockets.contains(&"/var/lib/podman/api.sock".to_owned()));
}

#[test]
fn bind_paths_restrict_host_paths_outside_the_repository_only() {
    let allow = Allow {
        bind_paths: Some(vec!["/srv/media".to_owned()]),
        ..Allow::default()
    };
    let out = refused(GREEDY, &allow, &[]);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].contains(":11:7:") && out[0].contains("/var/run/docker.sock is outside the repository: refused by apply.allow.bind_paths=[/srv/media] (host configuration)"), "{out:?}");
    assert!(out[1].contains(":12:7:") && out[1].contains("/etc is outside"));
    // `..` out of the repository, a `~` path, a prefix that is only a name
    // prefix, a secret file and a build context outside, an allowed path whose
    // real location is elsewhere; while paths in the repository are fine.
    let out_of = "services:
  app:
    image: busybox
    build: ../..
    volumes:
      - ../../outside:/o
      - ~/.ssh:/ssh
      - /srv/media-private:/p
      - /srv/media/link:/l
      - ../other-stack/data:/d
secrets:
  key:
    file: /etc/ssl/private/key.pem
configs:
  local:
    file: ./conf.ini
";
    let out = refused(out_of, &allow, &[("/srv/media/link", "/etc")]);
    let keys: Vec<&str> = out
        .iter()
        .map(|m| m.split(": ").nth(2).unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        [
            "services.app.volumes",
            "services.app.volumes",
            "services.app.volumes",
            "services.app.volumes",
            "services.app.build",
            "secrets.key.file",
        ],
        "{out:#?}"
    );
    assert!(out[0].contains("/outside is outside"));
    assert!(out[1].contains("/home/u/.ssh is outside"));
    assert!(out[3].contains("/srv/media/link (really /etc) is outside"));
    assert!(out[5].starts_with("app/compose.yaml:13:5:"), "{out:?}");
    // An empty list: nothing outside the repository.
    let none = Allow {
        bind_paths: Some(vec![]),
        ..Allow::default()
    };
    assert_eq!(refused(GREEDY, &none, &[]).len(), 3);
}

#[test]
fn symlinks_out_of_the_repository_are_refused_unless_allowed() {
    let yaml = "services:
  app:
    image: busybox
    volumes:
      - ./conf:/conf
      - ./data/db:/db
";
    let real = [
        ("/repo/app/compose.yaml", "/home/u/elsewhere/compose.yaml"),
        ("/repo/app/conf", "/repo/shared/conf"),
        ("/repo/app/data/db", "/home/u/.config/systemd/user/db"),
    ];
    let out = refused(yaml, &Allow::default(), &real);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].starts_with("app/compose.yaml:1:1: error: compose.yaml: `app/compose.yaml` goes through a symbolic link to /home/u/elsewhere/compose.yaml"), "{out:?}");
    assert!(out[1].contains(":6:7: error: services.app.volumes: `./data/db` goes through a symbolic link to /home/u/.config/systemd/user/db"));
    let allow = Allow {
        symlinks_outside_repo: true,
        ..Allow::default()
    };
    assert!(refused(yaml, &allow, &real).is_empty());
    // Allowed symlinks still meet bind_paths and the socket rule at their target.
    let allow = Allow {
        symlinks_outside_repo: true,
        podman_socket: false,
        bind_paths: Some(vec!["/home/u/elsewhere".to_owned()]),
        ..Allow::default()
    };
    let out = refused(yaml, &allow, &real);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].contains("/repo/app/data/db (really /home/u/.config/systemd/user/db) is outside the repository: refused by apply.allow.bind_paths"));
}

#[test]
fn files_magos_does_not_read_are_refused_only_under_restrictions() {
    // Here the extended file was not read (the stack fails to load as well);
    // an included or extended file that was read joins the stack's own files.
    let yaml = "services:
  app:
    image: busybox
    extends:
      file: base.yaml
      service: app
";
    assert!(refused(yaml, &Allow::default(), &[]).is_empty());
    let out = refused(yaml, &strict(), &[]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].starts_with(
            "app/compose.yaml:4:5: error: services.app.extends: Magos does not read base.yaml"
        ),
        "{out:?}"
    );
    assert!(out[0].contains("privileged=false, host_namespaces=false"));
}

#[test]
fn the_override_file_is_located_and_checked_too() {
    let base = "services:\n  app:\n    image: busybox\n";
    let over = "services:\n  app:\n    cap_add: [NET_ADMIN]\n    privileged: true\n";
    let loaded = load(&StackSource {
        compose: (FILE, base),
        override_file: Some(("app/compose.override.yaml", over)),
        vars: &Vars::new(),
    });
    let texts = BTreeMap::from([
        (FILE.to_owned(), base.to_owned()),
        ("app/compose.override.yaml".to_owned(), over.to_owned()),
    ]);
    let u = uses(&Subject {
        loaded: &loaded,
        repo: REPO,
        dir: "/repo/app",
        files: vec![FILE, "app/compose.override.yaml"],
        texts: &texts,
        home: None,
    });
    let out = decide(&u, &Facts::default(), &strict(), REPO);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].file.as_str(), out[0].line),
        ("app/compose.override.yaml", 4)
    );
    // The stack's files themselves are checked for the symlink rule.
    assert_eq!(
        paths(&u)[..2],
        ["/repo/app/compose.yaml", "/repo/app/compose.override.yaml"]
    );
}

#[test]
fn paths_are_normalised_lexically() {
    assert_eq!(normalize_abs("/a/./b/../c/"), "/a/c");
    assert_eq!(normalize_abs("/../.."), "/");
    assert_eq!(resolve("/repo/app", None, "../../x"), "/x");
    assert_eq!(resolve("/repo/app", Some("/h"), "~"), "/h");
    assert_eq!(resolve("/repo/app", None, "~bob/x"), "~bob/x");
    assert!(within("/repo/a", "/repo"));
    assert!(within("/repo", "/repo/"));
    assert!(!within("/repository", "/repo"));
    assert!(within("/anything", "/"));
}

/// A volume whose local driver binds a host folder (`driver_opts.device`) is a
/// mount of that folder: held to the same rules as a bind.
#[test]
fn a_volume_device_is_a_host_path() {
    let yaml = "services:
  app:
    image: busybox
    volumes: [data:/data]
volumes:
  data:
    driver_opts: {type: none, o: bind, device: /etc}
";
    let out = refused(yaml, &strict(), &[]);
    assert!(
        out.iter()
            .any(|r| r.contains("volumes.data.driver_opts.device") && r.contains("/etc")),
        "{out:#?}"
    );
    assert!(refused(yaml, &Allow::default(), &[]).is_empty());
}
