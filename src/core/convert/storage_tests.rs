//! Conversion of volumes, mounts, networks, secrets and podman-compose's
//! `x-podman` keys.

use super::*;
use crate::core::compose::{StackSource, load};
use crate::core::diag::Severity;
use crate::core::interpolate::Vars;

fn conv_home(yaml: &str, home: Option<&str>) -> Converted {
    let loaded = load(&StackSource {
        compose: ("web/compose.yaml", yaml),
        override_file: None,
        vars: &Vars::new(),
    });
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    convert(
        &loaded,
        &super::tests::input(
            &EnvInputs::default(),
            None,
            &BTreeMap::new(),
            home.or(Some("/home/magos")),
        ),
    )
}

fn conv(yaml: &str) -> Converted {
    conv_home(yaml, None)
}

/// Converts a file that must go native without an error.
fn native(yaml: &str) -> StackSpec {
    let c = conv(yaml);
    assert_eq!(c.route, Route::Native, "{:?}", c.route);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    c.spec
}

fn errors(c: &Converted) -> Vec<String> {
    c.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.message.clone())
        .collect()
}

fn warnings(c: &Converted) -> Vec<String> {
    c.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| d.message.clone())
        .collect()
}

fn vol(name: &str, target: &str, read_only: bool, options: &[&str]) -> MountSpec {
    MountSpec::Volume {
        name: name.into(),
        target: target.into(),
        read_only,
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        subpath: None,
    }
}

fn bind(source: &str, target: &str, options: &[&str], create: bool) -> MountSpec {
    MountSpec::Bind {
        source: source.into(),
        target: target.into(),
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        create_host_path: create,
    }
}

#[test]
fn anonymous_volumes_get_podman_compose_s_name_and_are_created() {
    let spec = native(
        "services:
  web:
    image: nginx:1
    volumes:
      - /var/www/html
      - /cache:ro
      - {type: volume, target: /long}
  other:
    image: nginx:1
    volumes: [/var/www/html]
",
    );
    let name = anonymous_volume_name("web", "web", "/var/www/html");
    let web = &spec.services[0];
    assert_eq!(
        web.mounts,
        [
            vol(&name, "/var/www/html", false, &[]),
            vol(
                &anonymous_volume_name("web", "web", "/cache"),
                "/cache",
                true,
                &[]
            ),
            vol(
                &anonymous_volume_name("web", "web", "/long"),
                "/long",
                false,
                &[]
            ),
        ]
    );
    // Each anonymous volume is one of the stack's volumes (created with its
    // labels); another service's mount of the same path is another volume.
    let names: Vec<&str> = spec.volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(&anonymous_volume_name("web", "other", "/var/www/html").as_str()));
    assert!(spec.volumes.iter().all(|v| !v.external));
}

/// podman-compose 1.3 (`fix_mount_dict`): `<project>_<service>_<sha256(target)>`.
#[test]
fn the_anonymous_name_is_the_sha256_of_the_target() {
    // `printf %s /var/www/html | sha256sum`
    assert_eq!(
        anonymous_volume_name("p", "s", "/var/www/html"),
        "p_s_69dd2b02e1f3a65918182048ea4e29979a849d8942e8f53ed20a4bf10e529b36"
    );
}

#[test]
fn named_volumes_take_every_podman_mount_option() {
    let spec = native(
        "services:
  db:
    image: postgres:16
    volumes:
      - db:/var/lib/postgresql/data:Z
      - cache:/cache:ro,z
      - data:/data:U,nocopy,rw
      - logs:/logs:rshared,noexec,consistent
volumes:
  db:
  cache:
  data:
  logs:
",
    );
    assert_eq!(
        spec.services[0].mounts,
        [
            vol("web_db", "/var/lib/postgresql/data", false, &["Z"]),
            vol("web_cache", "/cache", true, &["z"]),
            vol("web_data", "/data", false, &["U", "nocopy"]),
            vol("web_logs", "/logs", false, &["rshared", "noexec"]),
        ]
    );
    let c =
        conv("services:\n  db:\n    image: postgres:16\n    volumes: [db:/d:Q]\nvolumes:\n  db:\n");
    assert!(
        errors(&c)
            .iter()
            .any(|e| e.contains("volume `db:/d:Q`: unknown option `Q`")),
        "{:?}",
        c.diagnostics
    );
}

#[test]
fn binds_keep_their_options_in_order_and_folders_in_the_stack_are_created() {
    let spec = native(
        "services:
  app:
    image: nginx:1
    volumes:
      - ./data:/app/data
      - ./conf/x.conf:/etc/x.conf:z,ro
      - .:/stack
      - /srv/media:/media:ro
      - ../outside:/outside
      - ~/music:/music:ro
      - ~:/home
",
    );
    assert_eq!(
        spec.services[0].mounts,
        [
            bind("/repo/web/data", "/app/data", &[], true),
            bind("/repo/web/conf/x.conf", "/etc/x.conf", &["z", "ro"], true),
            bind("/repo/web", "/stack", &[], true),
            // Outside the stack's folder nothing is created: Podman says the
            // source is missing.
            bind("/srv/media", "/media", &["ro"], false),
            bind("/repo/web/../outside", "/outside", &[], false),
            // In the home folder, as in the stack's, a missing folder is created.
            bind("/home/magos/music", "/music", &["ro"], true),
            bind("/home/magos", "/home", &[], true),
        ]
    );
    let c = conv_home(
        "services:\n  app:\n    image: nginx:1\n    volumes: [\"~bob/x:/x\"]\n",
        None,
    );
    assert!(
        errors(&c).iter().any(|e| e.contains("`~user` paths")),
        "{:?}",
        c.diagnostics
    );
}

#[test]
fn a_home_path_without_a_known_home_is_an_error() {
    let loaded = load(&StackSource {
        compose: (
            "web/compose.yaml",
            "services:\n  app:\n    image: nginx:1\n    volumes: [\"~/x:/x\"]\n",
        ),
        override_file: None,
        vars: &Vars::new(),
    });
    let c = convert(
        &loaded,
        &super::tests::input(&EnvInputs::default(), None, &BTreeMap::new(), None),
    );
    assert!(
        errors(&c).iter().any(|e| e.contains("set HOME")),
        "{:?}",
        c.diagnostics
    );
}

#[test]
fn long_syntax_options_are_applied() {
    let spec = native(
        "services:
  app:
    image: nginx:1
    volumes:
      - type: bind
        source: ./conf
        target: /conf
        read_only: true
        bind: {propagation: rslave, selinux: Z, create_host_path: true}
      - type: bind
        source: ./implied
        target: /implied
      - type: bind
        source: ./not-created
        target: /nc
        bind: {create_host_path: false}
      - type: bind
        source: /srv/new
        target: /new
        bind: {create_host_path: true}
      - type: bind
        source: /srv/not-created
        target: /old
      - type: volume
        source: data
        target: /data
        volume: {nocopy: true, subpath: sub/dir}
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 64m, mode: 1777}
      - type: tmpfs
        target: /bytes
        tmpfs: {size: 1048576}
volumes:
  data:
",
    );
    assert_eq!(
        spec.services[0].mounts,
        [
            bind("/repo/web/conf", "/conf", &["ro", "rslave", "Z"], true),
            // As the short syntax, unless the file says.
            bind("/repo/web/implied", "/implied", &[], true),
            bind("/repo/web/not-created", "/nc", &[], false),
            bind("/srv/new", "/new", &[], true),
            bind("/srv/not-created", "/old", &[], false),
            MountSpec::Volume {
                name: "web_data".into(),
                target: "/data".into(),
                read_only: false,
                options: vec!["nocopy".into()],
                subpath: Some("sub/dir".into()),
            },
            MountSpec::Tmpfs {
                target: "/scratch".into(),
                options: vec!["size=64m".into(), "mode=1777".into()],
            },
            MountSpec::Tmpfs {
                target: "/bytes".into(),
                options: vec!["size=1048576".into()],
            },
        ]
    );
    let c = conv(
        "services:\n  app:\n    image: nginx:1\n    volumes:\n      - {type: bind, source: ., target: /x, bind: {propagation: sideways}}\n      - {type: npipe, source: x, target: /y}\n",
    );
    let e = errors(&c);
    assert!(
        e.iter().any(|m| m.contains("`bind.propagation: sideways`")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.contains("volume type `npipe`")), "{e:?}");
}

#[test]
fn external_objects_in_the_old_and_new_forms() {
    let spec = native(
        "services:
  app:
    image: nginx:1
    volumes: [old:/old, new:/new, plain:/plain]
    networks: [oldnet, newnet]
volumes:
  old:
    external: {name: caddy_data}
  new:
    external: true
    name: shared_data
  plain:
    external: true
networks:
  oldnet:
    external:
      name: proxy
  newnet:
    external: true
    name: front
",
    );
    let app = &spec.services[0];
    assert_eq!(
        app.mounts,
        [
            vol("caddy_data", "/old", false, &[]),
            vol("shared_data", "/new", false, &[]),
            vol("plain", "/plain", false, &[]),
        ]
    );
    assert!(app.networks.contains_key("proxy") && app.networks.contains_key("front"));
    assert!(spec.volumes.iter().all(|v| v.external));
    assert!(spec.networks.iter().all(|n| n.external));
}

#[test]
fn top_level_volumes_keep_driver_opts_and_labels() {
    let spec = native(
        "services:
  app:
    image: nginx:1
    volumes: [media:/media]
volumes:
  media:
    driver: local
    driver_opts:
      type: nfs
      o: addr=192.168.1.10,nfsvers=4,rw
      device: \":/export/media\"
    labels:
      backup: nightly
",
    );
    let v = &spec.volumes[0];
    assert_eq!(v.name, "web_media");
    assert_eq!(v.driver.as_deref(), Some("local"));
    assert_eq!(v.options["type"], "nfs");
    assert_eq!(v.options["o"], "addr=192.168.1.10,nfsvers=4,rw");
    assert_eq!(v.options["device"], ":/export/media");
    assert_eq!(v.labels["backup"], "nightly");
}

#[test]
fn networks_take_ipam_fixed_addresses_and_macs() {
    let spec = native(
        "services:
  web1:
    image: nginx:1
    networks:
      shared:
        ipv4_address: 172.19.1.10
        x-podman.mac_address: \"02:01:01:00:01:01\"
      internal:
        ipv4_address: 172.19.2.10
        ipv6_address: fd00:2::10
        mac_address: \"02:01:01:00:02:01\"
        x-podman.interface_name: eth9
  web2:
    image: nginx:1
    mac_address: \"02:01:01:00:02:02\"
    networks:
      internal:
        ipv4_address: 172.19.2.11
  web3:
    image: nginx:1
    networks: [internal]
networks:
  shared:
    driver: bridge
    ipam:
      driver: default
      config:
        - subnet: 172.19.1.0/24
          gateway: 172.19.1.1
          ip_range: 172.19.1.64/26
  internal:
    internal: true
    enable_ipv6: true
    driver_opts: {mtu: 1400, com.docker.network.bridge.name: br-int}
    labels: [tier=back]
    ipam:
      config:
        - subnet: 172.19.2.0/24
        - subnet: fd00:2::/64
",
    );
    let shared = spec
        .networks
        .iter()
        .find(|n| n.name == "web_shared")
        .unwrap();
    assert_eq!(shared.driver.as_deref(), Some("bridge"));
    assert_eq!(shared.ipam_driver, None);
    assert_eq!(
        shared.subnets,
        [SubnetSpec {
            subnet: "172.19.1.0/24".into(),
            gateway: Some("172.19.1.1".into()),
            ip_range: Some("172.19.1.64/26".into()),
        }]
    );
    let internal = spec
        .networks
        .iter()
        .find(|n| n.name == "web_internal")
        .unwrap();
    assert!(internal.internal && internal.ipv6);
    assert_eq!(internal.options["mtu"], "1400");
    assert_eq!(internal.options["com.docker.network.bridge.name"], "br-int");
    assert_eq!(internal.labels["tier"], "back");
    assert_eq!(internal.subnets.len(), 2);

    let web1 = &spec.services[0];
    assert_eq!(
        web1.network_settings["web_shared"],
        AttachSpec {
            static_ips: vec!["172.19.1.10".into()],
            mac: Some("02:01:01:00:01:01".into()),
            interface_name: None,
            // Written as `x-podman.mac_address`, which Docker ignores.
            mac_from_x_podman: true,
        }
    );
    assert_eq!(
        web1.network_settings["web_internal"],
        AttachSpec {
            static_ips: vec!["172.19.2.10".into(), "fd00:2::10".into()],
            mac: Some("02:01:01:00:02:01".into()),
            interface_name: Some("eth9".into()),
            mac_from_x_podman: false,
        }
    );
    // The service's own `mac_address` goes to its one network.
    assert_eq!(
        spec.services[1].network_settings["web_internal"]
            .mac
            .as_deref(),
        Some("02:01:01:00:02:02")
    );
    // Nothing fixed: nothing recorded (and the hash is as before).
    assert!(spec.services[2].network_settings.is_empty());
}

#[test]
fn what_podman_cannot_take_on_a_network_is_reported() {
    let c = conv(
        "services:
  app:
    image: nginx:1
    mac_address: \"02:00:00:00:00:01\"
    networks:
      a: {priority: 10}
      b:
networks:
  a:
    ipam:
      config:
        - subnet: 10.1.0.0/24
          aux_addresses: {router: 10.1.0.2}
  b:
    ipam:
      options: {foo: bar}
      config:
        - gateway: 10.2.0.1
",
    );
    let e = errors(&c);
    for needle in ["`mac_address` with 2 networks", "needs its `subnet`"] {
        assert!(
            e.iter().any(|m| m.contains(needle)),
            "{needle} not in {e:#?}"
        );
    }
    let w = warnings(&c);
    for needle in [
        "networks.a.priority is not applied",
        "aux_addresses",
        "`ipam.options`",
    ] {
        assert!(
            w.iter().any(|m| m.contains(needle)),
            "{needle} not in {w:#?}"
        );
    }
}

#[test]
fn podman_compose_network_extensions() {
    let spec = native(
        "services:
  app:
    image: nginx:1
    networks: [a, b]
networks:
  a:
    x-podman.dns: [10.1.2.3, 10.1.2.4]
    x-podman.routes: [\"10.2.3.0/24,10.1.0.1,5\"]
  b:
    x-podman.disable_dns: true
",
    );
    let a = &spec.networks[0];
    assert_eq!(a.dns, ["10.1.2.3", "10.1.2.4"]);
    assert_eq!(a.routes, ["10.2.3.0/24,10.1.0.1,5"]);
    assert!(spec.networks[1].disable_dns);
}

#[test]
fn secrets_external_by_name_and_from_the_environment() {
    let spec = native(
        "services:
  app:
    image: nginx:1
    secrets:
      - ext
      - source: old
        target: renamed
      - named
      - token
secrets:
  ext:
    external: true
  old:
    external: {name: podman_old}
  named:
    name: podman_named
  token:
    environment: APP_TOKEN
",
    );
    let app = &spec.services[0];
    let got: Vec<(&str, &str, Option<&str>)> = app
        .podman_secrets
        .iter()
        .map(|s| (s.source.as_str(), s.target.as_str(), s.from_env.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("ext", "ext", None),
            ("podman_old", "renamed", None),
            ("podman_named", "named", None),
            ("web_token", "token", Some("APP_TOKEN")),
        ]
    );
    // No bind mount stands in for them.
    assert!(app.mounts.is_empty());
}

#[test]
fn secret_references_take_owner_mode_and_type_env() {
    let c = conv(
        "services:
  app:
    image: nginx:1
    secrets:
      - source: ext
        target: ext
        uid: '103'
        gid: 104
        mode: 0400
      - source: ext
        target: text_mode
        mode: \"0440\"
      - source: ext
        target: ENV_SECRET
        type: env
      - source: pw
        target: pw
        uid: '103'
secrets:
  ext:
    external: true
  pw:
    file: ./pw.txt
",
    );
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let app = &c.spec.services[0];
    let got: Vec<(&str, Owner)> = app
        .podman_secrets
        .iter()
        .map(|s| (s.target.as_str(), (s.uid, s.gid, s.mode, s.as_env)))
        .collect();
    assert_eq!(
        got,
        [
            ("ext", (Some(103), Some(104), Some(0o400), false)),
            ("text_mode", (None, None, Some(0o440), false)),
            ("ENV_SECRET", (None, None, None, true)),
        ]
    );
    // A file secret is a bind: its owner cannot be changed, and that is said.
    assert!(
        warnings(&c)
            .iter()
            .any(|w| w.contains("secret `pw`: `uid`, `gid`, `mode` and `type` are not applied")),
        "{:?}",
        c.diagnostics
    );
    let c = conv(
        "services:\n  app:\n    image: nginx:1\n    secrets: [{source: ext, type: file}]\nsecrets:\n  ext: {external: true}\n",
    );
    assert!(
        errors(&c)
            .iter()
            .any(|e| e.contains("`type: file` is not `mount` or `env`")),
        "{:?}",
        c.diagnostics
    );
}

#[test]
fn configs_from_the_environment_still_go_to_the_compose_cli() {
    let c = conv(
        "services:\n  app:\n    image: nginx:1\n    configs: [c]\nconfigs:\n  c:\n    environment: CONF\n",
    );
    assert_eq!(
        c.route,
        Route::ComposeCli {
            keys: vec!["configs.c.environment".into()],
            explicit: false
        }
    );
}

#[test]
fn a_file_secret_takes_x_podman_relabel() {
    let spec = native(
        "services:\n  app:\n    image: nginx:1\n    secrets: [pw]\nsecrets:\n  pw:\n    file: ./pw.txt\n    x-podman.relabel: Z\n",
    );
    assert_eq!(
        spec.services[0].mounts,
        [bind(
            "/repo/web/pw.txt",
            "/run/secrets/pw",
            &["ro", "Z"],
            false
        )]
    );
}

#[test]
fn x_podman_service_keys() {
    let spec = native(
        "services:
  touch:
    image: nginx:1
    user: 999:999
    x-podman.uidmaps: [\"0:1:1\", \"999:0:1\"]
    x-podman.gidmaps: [\"0:1:1\", \"999:0:1\"]
    x-podman.no_hosts: true
",
    );
    let s = &spec.services[0];
    assert_eq!(s.uidmaps, ["0:1:1", "999:0:1"]);
    assert_eq!(s.gidmaps, ["0:1:1", "999:0:1"]);
    assert!(s.no_hosts);

    let c = conv(
        "x-podman:
  in_pod: false
  name_separator_compat: true
services:
  b:
    image: nginx:1
    x-podman.uidmaps: [\"zero:1:1\"]
    x-podman.passwd: false
",
    );
    let e = errors(&c);
    assert!(
        e.iter().any(|m| m.contains("`x-podman.uidmaps` must be")),
        "{e:?}"
    );
    let w = warnings(&c);
    for needle in [
        "`x-podman.passwd` is not applied",
        "`x-podman.in_pod`: Magos creates no pod",
        "`x-podman.name_separator_compat` is not applied",
    ] {
        assert!(
            w.iter().any(|m| m.contains(needle)),
            "{needle} not in {w:#?}"
        );
    }

    // A container from a root file system has no image to pin: the compose
    // CLI's.
    let c = conv("services:\n  a:\n    image: nginx:1\n    x-podman.rootfs: /srv/rootfs\n");
    assert_eq!(
        c.route,
        Route::ComposeCli {
            keys: vec!["x-podman.rootfs".into()],
            explicit: false
        }
    );
}
