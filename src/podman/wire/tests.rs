//! Parsing and writing the libpod JSON shapes, including Go's `null`s.

use super::*;

#[test]
fn inspect_reads_podman5_shapes() {
    let json = r#"{
        "Id": "abc", "Name": "web", "Created": "2026-01-01T00:00:00Z",
        "Path": "httpd", "Args": ["-f", "-p", "8080"],
        "State": {"Status": "running", "Running": true, "Pid": 42, "ExitCode": 0,
                  "StartedAt": "2026-01-01T00:00:01Z", "FinishedAt": "0001-01-01T00:00:00Z",
                  "Health": {"Status": "healthy", "FailingStreak": 0,
                             "Log": [{"Start": "s", "End": "e", "ExitCode": 0, "Output": ""}]}},
        "Image": "0123", "ImageDigest": "sha256:feed", "ImageName": "127.0.0.1:5000/magos/httpd:1",
        "Mounts": null, "Dependencies": null,
        "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}],
                                      "9000/tcp": null},
                            "SandboxKey": "/run/user/1000/netns/netns-1", "Networks": null},
        "Config": {"Hostname": "web", "User": "", "Env": ["A=1"], "Cmd": null, "Image": "x",
                   "WorkingDir": "/", "Entrypoint": ["httpd"], "Labels": {"k": "v"},
                   "StopSignal": "SIGTERM", "StopTimeout": 10,
                   "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000}},
        "HostConfig": {"NetworkMode": "bridge", "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0},
                       "CapAdd": null, "CapDrop": [], "Tmpfs": {}, "ReadonlyRootfs": false},
        "SomethingNew": {"ignored": true}
    }"#;
    let c: ContainerInspect = serde_json::from_str(json).unwrap();
    assert_eq!(c.image, "0123");
    assert_eq!(c.image_digest, "sha256:feed");
    assert!(c.is_running());
    assert_eq!(c.health_status(), Some("healthy"));
    assert_eq!(c.labels()["k"], "v");
    let config = c.config.as_ref().unwrap();
    assert_eq!(config.stop_signal, "SIGTERM");
    assert!(config.cmd.is_empty());
    assert_eq!(
        config.healthcheck.as_ref().unwrap().interval,
        30_000_000_000
    );
    let net = c.network_settings.as_ref().unwrap();
    assert_eq!(net.sandbox_key, "/run/user/1000/netns/netns-1");
    assert_eq!(
        net.ports["8080/tcp"].as_ref().unwrap()[0].host_port,
        "18080"
    );
    assert_eq!(net.ports["9000/tcp"], None);
    assert!(c.mounts.is_empty());
    assert_eq!(
        c.host_config.unwrap().restart_policy.unwrap().name,
        "always"
    );
}

#[test]
fn a_container_without_state_or_config_still_parses() {
    let c: ContainerInspect =
        serde_json::from_str(r#"{"Id":"x","State":null,"Config":null}"#).unwrap();
    assert!(!c.is_running());
    assert_eq!(c.health_status(), None);
    assert!(c.labels().is_empty());
}

#[test]
fn list_entries_with_nulls() {
    let json = r#"[{"Id":"a","Names":["web"],"Image":"i","ImageID":"d","Labels":null,
        "State":"exited","Status":"Exited (0)","Exited":true,"ExitCode":0,"Networks":null,
        "Ports":[{"host_ip":"127.0.0.1","container_port":8080,"host_port":18080,"range":1,"protocol":"tcp"}],
        "Restarts":0,"Created":"2026-01-01T00:00:00Z","StartedAt":0,"Command":null}]"#;
    let l: Vec<ListContainer> = serde_json::from_str(json).unwrap();
    assert_eq!(l[0].name(), "web");
    assert!(l[0].labels.is_empty());
    assert_eq!(l[0].ports[0].host_port, 18080);
}

#[test]
fn version_gives_the_libpod_api_version() {
    let json = r#"{"Platform":{"Name":"linux/amd64/debian-13"},
        "Components":[{"Name":"Podman Engine","Version":"5.4.2",
            "Details":{"APIVersion":"5.4.2","MinAPIVersion":"4.0.0"}}],
        "Version":"5.4.2","ApiVersion":"1.41","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64"}"#;
    let v: Version = serde_json::from_str(json).unwrap();
    assert_eq!(v.version, "5.4.2");
    assert_eq!(v.libpod_api_version(), "5.4.2");
    let bare: Version = serde_json::from_str(r#"{"Version":"5.0.0","Components":null}"#).unwrap();
    assert_eq!(bare.libpod_api_version(), "5.0.0");
}

#[test]
fn info_reads_rootless_network_facts() {
    let json = r#"{"host":{"arch":"amd64","rootlessNetworkCmd":"pasta",
        "pasta":{"executable":"/usr/bin/pasta","package":"passt","version":"pasta 2025"},
        "security":{"rootless":true},"remoteSocket":{"path":"unix:///run/user/1000/podman/podman.sock","exists":true},
        "ociRuntime":{"name":"runc","package":"runc","path":"/usr/bin/runc","version":"1.1"},
        "idMappings":{"gidmap":null,"uidmap":null}},
        "store":{"graphRoot":"/home/u/.local/share/containers/storage"},
        "registries":{},"plugins":{},"version":{"APIVersion":"5.4.2","Version":"5.4.2","OsArch":"linux/amd64"}}"#;
    let i: Info = serde_json::from_str(json).unwrap();
    assert_eq!(i.host.rootless_network_cmd, "pasta");
    assert_eq!(i.host.pasta.executable, "/usr/bin/pasta");
    assert!(i.host.security.rootless);
    assert_eq!(i.host.oci_runtime.name, "runc");
    assert_eq!(i.version.api_version, "5.4.2");
}

#[test]
fn events_carry_labels_in_attributes() {
    let json = r#"{"status":"died","id":"abc","from":"img","Type":"container","Action":"died",
        "Actor":{"ID":"abc","Attributes":{"name":"web","image":"img","containerExitCode":"0",
        "com.docker.compose.project":"p"}},"scope":"local","time":1,"timeNano":1000000000}"#;
    let e: Event = serde_json::from_str(json).unwrap();
    assert_eq!(e.kind, "container");
    assert_eq!(e.action, "died");
    assert_eq!(e.name(), Some("web"));
    assert_eq!(e.attribute("com.docker.compose.project"), Some("p"));
    assert_eq!(e.attribute("containerExitCode"), Some("0"));
    let h: Event = serde_json::from_str(
        r#"{"Type":"container","Action":"health_status","Actor":{"ID":"a","Attributes":null},"HealthStatus":"healthy"}"#,
    )
    .unwrap();
    assert_eq!(h.health_status, "healthy");
}

#[test]
fn pull_reports() {
    let progress: ImagePullReport =
        serde_json::from_str(r#"{"stream":"Copying blob sha256:aa\n"}"#).unwrap();
    assert_eq!(progress.stream, "Copying blob sha256:aa\n");
    let done: ImagePullReport = serde_json::from_str(r#"{"images":["0123"],"id":"0123"}"#).unwrap();
    assert_eq!(done.id, "0123");
    let failed: ImagePullReport =
        serde_json::from_str(r#"{"error":"manifest unknown","images":null}"#).unwrap();
    assert_eq!(failed.error, "manifest unknown");
}

#[test]
fn spec_generator_writes_only_what_is_set() {
    let minimal = SpecGenerator {
        image: "img".into(),
        ..SpecGenerator::default()
    };
    assert_eq!(
        serde_json::to_value(&minimal).unwrap(),
        serde_json::json!({"image": "img"})
    );

    let mut networks = BTreeMap::new();
    networks.insert(
        "front".to_owned(),
        PerNetworkOptions {
            aliases: vec!["web".into()],
            ..PerNetworkOptions::default()
        },
    );
    let full = SpecGenerator {
        name: Some("p_web_1".into()),
        image: "img@sha256:aa".into(),
        command: Some(vec!["httpd".into(), "-f".into()]),
        stop_signal: Some(15),
        stop_timeout: Some(3),
        restart_policy: Some("always".into()),
        netns: Some(Namespace {
            nsmode: "bridge".into(),
            value: String::new(),
        }),
        networks,
        portmappings: vec![PortMapping {
            host_ip: "127.0.0.1".into(),
            container_port: 8080,
            host_port: 18080,
            range: 0,
            protocol: "tcp".into(),
        }],
        volumes: vec![NamedVolume {
            name: "data".into(),
            dest: "/data".into(),
            ..NamedVolume::default()
        }],
        mounts: vec![Mount {
            destination: "/tmp".into(),
            kind: "tmpfs".into(),
            source: "tmpfs".into(),
            options: vec!["size=64m".into()],
        }],
        devices: vec![Device {
            path: "/dev/null:/dev/x:rw".into(),
        }],
        health_config: Some(HealthConfig {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: 1_000_000_000,
            retries: 3,
            ..HealthConfig::default()
        }),
        host_add: vec!["db:127.0.0.1".into()],
        dns_server: vec!["1.1.1.1".into()],
        read_only_filesystem: true,
        ..SpecGenerator::default()
    };
    let v = serde_json::to_value(&full).unwrap();
    assert_eq!(v["Networks"]["front"]["aliases"][0], "web");
    assert_eq!(v["netns"]["nsmode"], "bridge");
    assert!(v["netns"].get("value").is_none());
    assert_eq!(v["stop_signal"], 15);
    assert_eq!(v["portmappings"][0]["host_port"], 18080);
    assert_eq!(v["volumes"][0]["Name"], "data");
    assert_eq!(v["volumes"][0]["Dest"], "/data");
    assert_eq!(v["mounts"][0]["type"], "tmpfs");
    assert_eq!(v["devices"][0]["path"], "/dev/null:/dev/x:rw");
    assert_eq!(v["healthconfig"]["Interval"], 1_000_000_000u64);
    assert_eq!(v["healthconfig"]["Retries"], 3);
    assert!(v["healthconfig"].get("Timeout").is_none());
    assert_eq!(v["hostadd"][0], "db:127.0.0.1");
    assert_eq!(v["dns_server"][0], "1.1.1.1");
    assert_eq!(v["read_only_filesystem"], true);
}

#[test]
fn network_and_volume_bodies() {
    let n = serde_json::to_value(NetworkCreate::bridge("front")).unwrap();
    assert_eq!(
        n,
        serde_json::json!({"name":"front","driver":"bridge","internal":false,"dns_enabled":true,"ipv6_enabled":false})
    );
    let v = serde_json::to_value(VolumeCreate {
        name: "data".into(),
        labels: [("k".to_owned(), "v".to_owned())].into(),
        ..VolumeCreate::default()
    })
    .unwrap();
    assert_eq!(v, serde_json::json!({"Name":"data","Labels":{"k":"v"}}));
    let net: Network = serde_json::from_str(
        r#"{"name":"front","id":"1","driver":"bridge","network_interface":"podman1","created":"t",
        "subnets":[{"subnet":"10.89.0.0/24","gateway":"10.89.0.1"}],"ipv6_enabled":false,
        "internal":false,"dns_enabled":true,"labels":null,"ipam_options":{"driver":"host-local"}}"#,
    )
    .unwrap();
    assert_eq!(net.subnets[0].subnet, "10.89.0.0/24");
    assert!(net.labels.is_empty());
    let rm: Vec<NetworkRmReport> =
        serde_json::from_str(r#"[{"Name":"front","Err":null},{"Name":"x","Err":{}}]"#).unwrap();
    assert!(rm[0].err.is_none());
    assert!(rm[1].err.is_some());
}

#[test]
fn error_model() {
    let e: ErrorModel = serde_json::from_str(
        r#"{"cause":"network already exists","message":"network name front already used: network already exists","response":409}"#,
    )
    .unwrap();
    assert_eq!(e.response, 409);
    assert_eq!(e.cause, "network already exists");
}

#[test]
fn health_config_defaults_are_the_clis() {
    let h = HealthConfig::new(vec!["CMD".into(), "true".into()]);
    let v = serde_json::to_value(&h).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"Test":["CMD","true"],"Interval":30_000_000_000u64,"Timeout":30_000_000_000u64,"Retries":3})
    );
}

// Answers of the real Podman 5.4.2 (rootless, pasta, netavark), captured with curl
// from a container made by `podman create --network N --network-alias web -v V:/data
// --tmpfs /scratch:size=1m -p 127.0.0.1:18099:8080 --health-cmd … --restart
// on-failure:2 --stop-signal SIGINT --label … --cap-add NET_ADMIN --read-only`.

fn fixture<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_str(text).unwrap()
}

fn ndjson<T: serde::de::DeserializeOwned>(text: &str) -> Vec<T> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn real_container_inspect() {
    let c: ContainerInspect = fixture(include_str!("fixtures/container_inspect.json"));
    assert_eq!(c.name, "fixture-web");
    assert_eq!(c.image_name, "127.0.0.1:5000/magos/httpd:1");
    assert!(c.image_digest.starts_with("sha256:"));
    assert_eq!(c.image.len(), 64);
    assert_eq!(c.health_status(), Some("starting"));
    assert_eq!(c.labels()["com.docker.compose.project"], "fixture");
    let config = c.config.as_ref().unwrap();
    assert_eq!(config.stop_signal, "SIGINT");
    assert_eq!(config.healthcheck.as_ref().unwrap().test[0], "CMD-SHELL");
    let host = c.host_config.as_ref().unwrap();
    let restart = host.restart_policy.as_ref().unwrap();
    assert_eq!(
        (restart.name.as_str(), restart.maximum_retry_count),
        ("on-failure", 2)
    );
    assert!(host.tmpfs.contains_key("/scratch"));
    assert!(host.readonly_rootfs);
    assert!(host.cap_add.contains(&"CAP_NET_ADMIN".to_owned()));
    assert_eq!(c.mounts[0].kind, "volume");
    assert_eq!(c.mounts[0].destination, "/data");
    let net = c.network_settings.as_ref().unwrap();
    assert!(
        net.networks["fixture-net"]
            .aliases
            .contains(&"web".to_owned())
    );
    assert_eq!(
        net.ports["8080/tcp"].as_ref().unwrap()[0].host_port,
        "18099"
    );
    assert!(!net.sandbox_key.is_empty());
}

#[test]
fn real_list_info_version_network_volume_image() {
    let l: Vec<ListContainer> = fixture(include_str!("fixtures/containers_list.json"));
    assert_eq!(l[0].name(), "fixture-web");
    assert_eq!(l[0].ports[0].host_port, 18099);
    assert_eq!(l[0].networks, ["fixture-net"]);

    let i: Info = fixture(include_str!("fixtures/info.json"));
    assert_eq!(i.host.rootless_network_cmd, "pasta");
    assert!(i.host.security.rootless);
    assert_eq!(i.version.version, "5.4.2");

    let v: Version = fixture(include_str!("fixtures/version.json"));
    assert_eq!(v.version, "5.4.2");
    assert_eq!(v.libpod_api_version(), "5.4.2");

    let n: Network = fixture(include_str!("fixtures/network_inspect.json"));
    assert_eq!(n.name, "fixture-net");
    assert!(n.dns_enabled);
    assert!(!n.subnets.is_empty());

    let vol: Volume = fixture(include_str!("fixtures/volume_inspect.json"));
    assert_eq!(vol.name, "fixture-vol");

    let img: ImageInspect = fixture(include_str!("fixtures/image_inspect.json"));
    assert!(img.digest.starts_with("sha256:"));
    assert!(!img.repo_digests.is_empty());
}

#[test]
fn real_pull_streams_and_events() {
    let ok: Vec<ImagePullReport> = ndjson(include_str!("fixtures/pull_ok.ndjson"));
    let last = ok.last().unwrap();
    assert!(last.error.is_empty());
    assert_eq!(last.images.len(), 1);
    assert_eq!(last.images[0], last.id);
    assert!(ok.iter().any(|r| r.stream.contains("Writing manifest")));

    let failed: Vec<ImagePullReport> = ndjson(include_str!("fixtures/pull_failed.ndjson"));
    assert!(failed.last().unwrap().error.contains("manifest unknown"));

    let events: Vec<Event> = ndjson(include_str!("fixtures/events.ndjson"));
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.starts_with(&["create"]), "{actions:?}");
    assert!(actions.contains(&"start"), "{actions:?}");
    assert!(events.iter().all(|e| e.name() == Some("fixture-web")
        && e.attribute("com.docker.compose.project") == Some("fixture")));
}
