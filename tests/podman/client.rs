//! The libpod client against the test bed's rootless Podman 5: system calls,
//! pulls from the test registry, a container's whole life with a published port,
//! networks, volumes, the event stream, and a socket-activated service that exits
//! between calls.
//!
//! Every object a test creates has a unique name and is removed by a guard, even
//! when the test fails. Nothing else is touched.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use magos::podman::wire::{
    Device, ExecCreate, HealthConfig, Mount, NamedVolume, Namespace, NetworkCreate,
    PerNetworkOptions, PortMapping, SpecGenerator, VolumeCreate,
};
use magos::podman::{
    Client, ClientOptions, ContainerFilters, EventFilters, PodmanError, PullOptions, PullPolicy,
};

use crate::support::{self, Activated, Testbed, testbed};

/// The label every object made here carries.
const TEST_LABEL: &str = "io.magos.test";

/// How long a test waits for a state before it fails.
const WAIT: Duration = Duration::from_secs(60);

fn client(tb: &Testbed) -> Client {
    Client::new(&tb.podman_socket, ClientOptions::default())
}

/// Removes what a test created, through the podman CLI, whatever the outcome.
struct Cleanup<'a> {
    tb: &'a Testbed,
    containers: Vec<String>,
    networks: Vec<String>,
    volumes: Vec<String>,
}

impl<'a> Cleanup<'a> {
    fn new(tb: &'a Testbed) -> Self {
        Self {
            tb,
            containers: Vec::new(),
            networks: Vec::new(),
            volumes: Vec::new(),
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let tb = self.tb;
        for c in &self.containers {
            tb.podman_cli(&["rm", "--force", "--time", "0", "--ignore", c]);
        }
        for n in &self.networks {
            tb.podman_cli(&["network", "rm", "--force", n]);
        }
        for v in &self.volumes {
            tb.podman_cli(&["volume", "rm", "--force", v]);
        }
    }
}

/// The httpd test image as `repo@sha256:…`, from the registry's manifest digest.
fn httpd_by_digest(tb: &Testbed) -> (String, String) {
    let image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    let digest = tb.manifest_digest(image);
    let (repo, _) = image.rsplit_once(':').expect("the httpd image has a tag");
    (format!("{repo}@{digest}"), digest)
}

/// Pulls the httpd image by digest (insecure: the test registry is plain HTTP).
async fn pull_httpd(tb: &Testbed, c: &Client) -> (String, String, Vec<String>) {
    let (reference, digest) = httpd_by_digest(tb);
    let mut lines = Vec::new();
    let options = PullOptions {
        policy: PullPolicy::Always,
        tls_verify: Some(false),
    };
    let pulled = c
        .pull_image(&reference, &options, &mut |l: &str| {
            lines.push(l.to_owned())
        })
        .await
        .unwrap_or_else(|e| panic!("pull {reference}: {e}"));
    assert!(!pulled.id.is_empty());
    (reference, digest, lines)
}

fn httpd_spec(name: &str, image: &str, port: Option<u16>, label: &str) -> SpecGenerator {
    SpecGenerator {
        name: Some(name.to_owned()),
        image: image.to_owned(),
        labels: [
            (TEST_LABEL.to_owned(), label.to_owned()),
            ("com.docker.compose.project".to_owned(), label.to_owned()),
        ]
        .into(),
        portmappings: port
            .map(|port| PortMapping {
                host_ip: "127.0.0.1".to_owned(),
                container_port: 8080,
                host_port: port,
                protocol: "tcp".to_owned(),
                ..PortMapping::default()
            })
            .into_iter()
            .collect(),
        stop_timeout: Some(1),
        ..SpecGenerator::default()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[tokio::test]
async fn ping_version_and_info_through_the_client() {
    let Some(tb) = testbed() else { return };
    // Found the way Magos finds it: CONTAINER_HOST → podman.socket.
    let socket = magos::config::SocketPath::parse(&tb.container_host).unwrap();
    let (c, version) = Client::connect(
        Some(socket.path()),
        &magos::config::Env::new(),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(c.socket(), tb.podman_socket);
    assert_eq!(c.ping().await.unwrap(), "OK");
    let major: u64 = version.version.split('.').next().unwrap().parse().unwrap();
    assert!(major >= 5, "podman {}", version.version);
    assert!(
        version
            .libpod_api_version()
            .starts_with(&format!("{major}.")),
        "{version:?}"
    );
    let info = c.info().await.unwrap();
    assert!(
        info.host.security.rootless,
        "the test bed's podman is rootless"
    );
    assert_eq!(info.host.rootless_network_cmd, "pasta");
    assert!(
        !info.host.pasta.executable.is_empty(),
        "{:?}",
        info.host.pasta
    );
}

#[tokio::test]
async fn pull_by_digest_and_a_pull_that_fails_inside_its_200_answer() {
    let Some(tb) = testbed() else { return };
    let c = client(tb);
    let (reference, digest, lines) = pull_httpd(tb, &c).await;
    assert!(!lines.is_empty(), "no progress lines from the pull");
    assert!(c.image_exists(&reference).await.unwrap());
    let image = c.inspect_image(&reference).await.unwrap();
    assert_eq!(image.digest, digest);
    assert!(
        image.repo_digests.iter().any(|d| d.ends_with(&digest)),
        "{:?}",
        image.repo_digests
    );

    let missing = format!(
        "{}/magos/httpd:{}",
        tb.registry,
        support::unique_name("no-such-tag")
    );
    let options = PullOptions {
        policy: PullPolicy::Always,
        tls_verify: Some(false),
    };
    let err = c
        .pull_image(&missing, &options, &mut |_: &str| {})
        .await
        .unwrap_err();
    match &err {
        PodmanError::Pull { reference, message } => {
            assert_eq!(reference, &missing);
            assert!(!message.is_empty());
        }
        other => panic!("expected a pull error, got {other:?}"),
    }
    assert!(err.to_string().contains(&missing), "{err}");
    assert!(!c.image_exists(&missing).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_is_created_published_inspected_listed_and_removed() {
    let Some(tb) = testbed() else { return };
    let c = client(tb);
    let mut cleanup = Cleanup::new(tb);
    let (reference, digest, _) = pull_httpd(tb, &c).await;
    let name = support::unique_name("magos-client-web");
    let label = support::unique_name("lifecycle");
    cleanup.containers.push(name.clone());
    let port = support::free_port();

    let mut spec = httpd_spec(&name, &reference, Some(port), &label);
    spec.health_config = Some(HealthConfig {
        interval: 3_600_000_000_000,
        ..HealthConfig::new(vec!["CMD-SHELL".to_owned(), "true".to_owned()])
    });
    let created = c.create_container(&spec).await.unwrap();
    assert!(!created.id.is_empty());
    let clash = c.create_container(&spec).await.unwrap_err();
    assert!(
        clash.to_string().contains(&format!("container {name}")),
        "{clash}"
    );
    assert!(c.container_exists(&name).await.unwrap());

    assert!(c.start_container(&name).await.unwrap(), "it started");
    assert!(!c.start_container(&name).await.unwrap(), "already running");
    let page = tokio::task::spawn_blocking(move || {
        let mut page = String::new();
        let served =
            support::wait_until(
                WAIT,
                Duration::from_millis(100),
                || match support::http_get(port, "/") {
                    Ok(r) if r.status == 200 => {
                        page = r.text();
                        true
                    }
                    _ => false,
                },
            );
        assert!(served, "nothing served on 127.0.0.1:{port}");
        page
    })
    .await
    .unwrap();
    assert!(page.contains("magos test bed httpd"), "{page}");

    let inspect = c.inspect_container(&name).await.unwrap();
    assert_eq!(inspect.id, created.id);
    assert_eq!(inspect.image_name, reference);
    // `ImageDigest` is the image's main digest at inspect time; an image known
    // under several manifest digests (the test bed pushes and pulls it) may show
    // another of them. The pinned digest is among the image's repo digests.
    let image = c.inspect_image(&inspect.image).await.unwrap();
    assert_eq!(image.id, inspect.image);
    assert!(inspect.image_digest.starts_with("sha256:"));
    for d in [&digest, &inspect.image_digest] {
        assert!(
            image
                .repo_digests
                .iter()
                .any(|r| r.ends_with(&format!("@{d}"))),
            "{d} not in {:?}",
            image.repo_digests
        );
    }
    assert!(inspect.is_running());
    assert_eq!(inspect.labels()[TEST_LABEL], label);
    let config = inspect.config.as_ref().unwrap();
    assert_eq!(config.stop_signal, "SIGTERM");
    assert_eq!(config.stop_timeout, 1);
    let net = inspect.network_settings.as_ref().unwrap();
    assert!(!net.sandbox_key.is_empty());
    let bindings = net.ports["8080/tcp"].as_ref().expect("8080 is published");
    assert_eq!(bindings[0].host_ip, "127.0.0.1");
    assert_eq!(bindings[0].host_port, port.to_string());

    let health = c.run_healthcheck(&name).await.unwrap();
    assert_eq!(health.status, "healthy");

    let out = c
        .exec(
            &name,
            &ExecCreate {
                cmd: vec!["cat".into(), "/www/index.html".into()],
                attach_stdout: true,
                attach_stderr: true,
                ..ExecCreate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(out.stdout.contains("magos test bed httpd"), "{out:?}");
    let failed = c
        .exec(
            &name,
            &ExecCreate {
                cmd: vec!["sh".into(), "-c".into(), "echo oops >&2; exit 3".into()],
                attach_stdout: true,
                attach_stderr: true,
                ..ExecCreate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.exit_code, 3, "{failed:?}");
    assert_eq!(failed.stderr.trim(), "oops");

    let listed = c
        .list_containers(&ContainerFilters::labelled([format!(
            "{TEST_LABEL}={label}"
        )]))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name(), name);
    assert_eq!(listed[0].state, "running");
    assert_eq!(listed[0].ports[0].host_port, port);
    let none = c
        .list_containers(&ContainerFilters::labelled([format!(
            "{TEST_LABEL}={}",
            support::unique_name("nobody")
        )]))
        .await
        .unwrap();
    assert!(none.is_empty());

    assert!(c.stop_container(&name, Some(1)).await.unwrap());
    assert!(
        !c.stop_container(&name, Some(1)).await.unwrap(),
        "already stopped"
    );
    assert!(!c.inspect_container(&name).await.unwrap().is_running());
    c.remove_container(&name, false, true, None).await.unwrap();
    assert!(!c.container_exists(&name).await.unwrap());
    let gone = c.inspect_container(&name).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
    assert!(
        gone.to_string().contains(&format!("container {name}")),
        "{gone}"
    );
}

#[tokio::test]
async fn networks_are_created_listed_and_removed() {
    let Some(tb) = testbed() else { return };
    let c = client(tb);
    let mut cleanup = Cleanup::new(tb);
    let name = support::unique_name("magos-client-net");
    let label = support::unique_name("net");
    cleanup.networks.push(name.clone());

    let mut create = NetworkCreate::bridge(&name);
    create.labels.insert(TEST_LABEL.to_owned(), label.clone());
    let made = c.create_network(&create).await.unwrap();
    assert_eq!(made.name, name);
    assert!(made.dns_enabled);
    assert!(!made.subnets.is_empty());
    let again = c.create_network(&create).await.unwrap_err();
    assert!(again.is_conflict(), "{again:?}");

    let filters: BTreeMap<String, Vec<String>> =
        [("label".to_owned(), vec![format!("{TEST_LABEL}={label}")])].into();
    let listed = c.list_networks(&filters).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].labels[TEST_LABEL], label);
    assert_eq!(c.inspect_network(&name).await.unwrap().id, made.id);

    c.remove_network(&name, false).await.unwrap();
    assert!(c.list_networks(&filters).await.unwrap().is_empty());
    let gone = c.remove_network(&name, false).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
}

#[tokio::test]
async fn volumes_are_created_listed_and_removed() {
    let Some(tb) = testbed() else { return };
    let c = client(tb);
    let mut cleanup = Cleanup::new(tb);
    let name = support::unique_name("magos-client-vol");
    let label = support::unique_name("vol");
    cleanup.volumes.push(name.clone());

    let made = c
        .create_volume(&VolumeCreate {
            name: name.clone(),
            labels: [(TEST_LABEL.to_owned(), label.clone())].into(),
            ..VolumeCreate::default()
        })
        .await
        .unwrap();
    assert_eq!(made.name, name);
    assert_eq!(made.driver, "local");
    let filters: BTreeMap<String, Vec<String>> =
        [("label".to_owned(), vec![format!("{TEST_LABEL}={label}")])].into();
    let listed = c.list_volumes(&filters).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        c.inspect_volume(&name).await.unwrap().labels[TEST_LABEL],
        label
    );

    c.remove_volume(&name, false).await.unwrap();
    let gone = c.inspect_volume(&name).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
}

#[tokio::test]
async fn start_and_died_events_arrive_on_the_stream() {
    let Some(tb) = testbed() else { return };
    let c = client(tb);
    let mut cleanup = Cleanup::new(tb);
    let (reference, _, _) = pull_httpd(tb, &c).await;
    let name = support::unique_name("magos-client-events");
    let label = support::unique_name("events");
    cleanup.containers.push(name.clone());

    // `since` replays from just before the container exists, so no event can slip
    // between opening the stream and the server starting to follow the log.
    let filters = EventFilters {
        containers: vec![name.clone()],
        actions: vec!["start".to_owned(), "died".to_owned()],
        since: Some((unix_now() - 2).to_string()),
        ..EventFilters::containers()
    };
    // No published port: restarting a container whose pasta forwards a port can
    // race with the old pasta still holding it.
    c.create_container(&httpd_spec(&name, &reference, None, &label))
        .await
        .unwrap();
    let mut events = c.events(&filters).await.unwrap();
    c.start_container(&name).await.unwrap();

    let start = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("a start event in time")
        .expect("the stream is open")
        .unwrap();
    assert_eq!(start.kind, "container");
    assert_eq!(start.action, "start");
    assert_eq!(start.name(), Some(name.as_str()));
    assert_eq!(start.attribute(TEST_LABEL), Some(label.as_str()));

    let mut next = async || {
        tokio::time::timeout(WAIT, events.next())
            .await
            .expect("an event in time")
            .expect("the stream is open")
            .unwrap()
    };
    // A restart is a death and a start.
    c.restart_container(&name, 1).await.unwrap();
    assert!(c.inspect_container(&name).await.unwrap().is_running());
    let actions = [next().await.action, next().await.action];
    assert_eq!(actions, ["died", "start"]);

    c.stop_container(&name, Some(1)).await.unwrap();
    let died = next().await;
    assert_eq!(died.action, "died");
    assert_eq!(died.actor.id, start.actor.id);
    assert!(died.attribute("containerExitCode").is_some(), "{died:?}");
    drop(events);
    c.remove_container(&name, true, true, Some(0))
        .await
        .unwrap();
}

#[tokio::test]
async fn errors_name_the_endpoint_and_the_object() {
    let Some(tb) = testbed() else { return };
    let c = client(tb);
    let name = support::unique_name("magos-client-missing");
    let err = c.start_container(&name).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("/libpod/containers/"), "{text}");
    assert!(text.contains(&format!("container {name}")), "{text}");
    assert!(text.contains("HTTP 404"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_survives_a_socket_activated_service_exiting_between_calls() {
    let Some(tb) = testbed() else { return };
    let dir = tb.user_dir("magos-activation");
    let socket = dir.path().join("api.sock");
    let mut service = tokio::task::block_in_place(|| Activated::start(tb, &socket));
    let c = Client::new(&socket, ClientOptions::default());

    // The first call starts the service through the socket.
    assert_eq!(c.ping().await.unwrap(), "OK");
    c.check_version().await.unwrap();
    let first = c.list_containers(&ContainerFilters::default()).await;
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(c.retried(), 0);

    // Idle for a second, the service exits and nobody listens any more.
    tokio::task::block_in_place(|| service.wait_exit());

    // The next call is refused and retried; a new activator takes the socket, as
    // systemd would, and the call succeeds.
    let call = {
        let c = c.clone();
        tokio::spawn(async move { c.info().await })
    };
    let retried = {
        let c = c.clone();
        tokio::task::spawn_blocking(move || {
            support::wait_until(WAIT, Duration::from_millis(10), || c.retried() > 0)
        })
        .await
        .unwrap()
    };
    assert!(retried, "the client did not retry the refused connection");
    tokio::task::block_in_place(|| service.spawn());
    let info = call.await.unwrap().unwrap();
    assert!(info.host.security.rootless);

    // And once more after the second service exited too.
    tokio::task::block_in_place(|| {
        service.wait_exit();
        service.spawn();
    });
    assert_eq!(c.ping().await.unwrap(), "OK");
}

/// Every field Magos sets in a create body reaches Podman: Go's decoder ignores
/// unknown keys, so a misspelt one would silently do nothing. Inspect shows each.
#[tokio::test]
async fn every_create_field_reaches_podman() {
    let Some(tb) = testbed() else { return };
    let c = client(tb);
    let mut cleanup = Cleanup::new(tb);
    let (reference, _, _) = pull_httpd(tb, &c).await;
    let name = support::unique_name("magos-client-spec");
    let label = support::unique_name("spec");
    let network = support::unique_name("magos-client-specnet");
    let volume = support::unique_name("magos-client-specvol");
    cleanup.containers.push(name.clone());
    cleanup.networks.push(network.clone());
    cleanup.volumes.push(volume.clone());
    c.create_network(&NetworkCreate::bridge(&network))
        .await
        .unwrap();
    c.create_volume(&VolumeCreate {
        name: volume.clone(),
        ..VolumeCreate::default()
    })
    .await
    .unwrap();
    let bind = tb.user_dir("magos-client-bind");
    let bind_path = bind.path().to_str().unwrap().to_owned();

    let spec = SpecGenerator {
        name: Some(name.clone()),
        image: reference.clone(),
        entrypoint: Some(vec!["httpd".into()]),
        command: Some(vec![
            "-f".into(),
            "-p".into(),
            "8080".into(),
            "-h".into(),
            "/www".into(),
        ]),
        env: [("MAGOS_A".to_owned(), "1 2".to_owned())].into(),
        labels: [(TEST_LABEL.to_owned(), label.clone())].into(),
        stop_signal: Some(magos::podman::signal::number("SIGINT").unwrap()),
        stop_timeout: Some(3),
        restart_policy: Some("on-failure".into()),
        restart_tries: Some(2),
        hostname: Some("magos-host".into()),
        user: Some("1000:1000".into()),
        work_dir: Some("/www".into()),
        netns: Some(Namespace {
            nsmode: "bridge".into(),
            value: String::new(),
        }),
        networks: [(
            network.clone(),
            PerNetworkOptions {
                aliases: vec!["web-alias".into()],
                ..PerNetworkOptions::default()
            },
        )]
        .into(),
        volumes: vec![NamedVolume {
            name: volume.clone(),
            dest: "/data".into(),
            ..NamedVolume::default()
        }],
        mounts: vec![
            Mount {
                destination: "/mnt/bind".into(),
                kind: "bind".into(),
                source: bind_path.clone(),
                options: vec!["ro".into()],
            },
            Mount {
                destination: "/scratch".into(),
                kind: "tmpfs".into(),
                source: "tmpfs".into(),
                options: vec!["size=1m".into()],
            },
        ],
        devices: vec![Device {
            path: "/dev/null:/dev/magos-null:rw".into(),
        }],
        health_config: Some(HealthConfig::new(vec![
            "CMD-SHELL".into(),
            "test -d /www".into(),
        ])),
        cap_add: vec!["NET_ADMIN".into()],
        cap_drop: vec!["CHOWN".into()],
        host_add: vec!["db.magos:127.0.0.2".into()],
        dns_server: vec!["127.0.0.53".into()],
        dns_search: vec!["magos.test".into()],
        dns_option: vec!["ndots:2".into()],
        read_only_filesystem: true,
        ..SpecGenerator::default()
    };
    c.create_container(&spec).await.unwrap();
    assert!(c.start_container(&name).await.unwrap());

    let i = c.inspect_container(&name).await.unwrap();
    assert!(i.is_running(), "{:?}", i.state);
    assert_eq!(i.path, "httpd");
    assert_eq!(i.args, ["-f", "-p", "8080", "-h", "/www"]);
    let config = i.config.as_ref().unwrap();
    assert_eq!(config.entrypoint, ["httpd"]);
    assert!(
        config.env.contains(&"MAGOS_A=1 2".to_owned()),
        "{:?}",
        config.env
    );
    assert_eq!(config.labels[TEST_LABEL], label);
    assert_eq!(config.stop_signal, "SIGINT");
    assert_eq!(config.stop_timeout, 3);
    assert_eq!(config.hostname, "magos-host");
    assert_eq!(config.user, "1000:1000");
    assert_eq!(config.working_dir, "/www");
    let health = config.healthcheck.as_ref().unwrap();
    assert_eq!(health.test, ["CMD-SHELL", "test -d /www"]);
    assert_eq!(health.timeout, 30_000_000_000);

    let host = i.host_config.as_ref().unwrap();
    let restart = host.restart_policy.as_ref().unwrap();
    assert_eq!(
        (restart.name.as_str(), restart.maximum_retry_count),
        ("on-failure", 2)
    );
    assert!(
        host.cap_add.contains(&"CAP_NET_ADMIN".to_owned()),
        "{:?}",
        host.cap_add
    );
    assert!(
        host.cap_drop.contains(&"CAP_CHOWN".to_owned()),
        "{:?}",
        host.cap_drop
    );
    assert!(
        host.extra_hosts.contains(&"db.magos:127.0.0.2".to_owned()),
        "{:?}",
        host.extra_hosts
    );
    assert_eq!(host.dns, ["127.0.0.53"]);
    assert_eq!(host.dns_search, ["magos.test"]);
    assert_eq!(host.dns_options, ["ndots:2"]);
    assert!(host.readonly_rootfs);

    let mount = |dest: &str| i.mounts.iter().find(|m| m.destination == dest);
    let data = mount("/data").unwrap_or_else(|| panic!("no /data in {:?}", i.mounts));
    assert_eq!(
        (data.kind.as_str(), data.name.as_str()),
        ("volume", volume.as_str())
    );
    let bound = mount("/mnt/bind").unwrap_or_else(|| panic!("no bind in {:?}", i.mounts));
    assert_eq!(bound.kind, "bind");
    assert_eq!(bound.source, bind_path);
    assert!(!bound.rw);
    assert!(
        mount("/scratch").is_some() || host.tmpfs.contains_key("/scratch"),
        "no tmpfs: {:?} {:?}",
        i.mounts,
        host.tmpfs
    );

    let net = i.network_settings.as_ref().unwrap();
    let joined = net
        .networks
        .get(&network)
        .unwrap_or_else(|| panic!("not on {network}: {:?}", net.networks));
    assert!(
        joined.aliases.contains(&"web-alias".to_owned()),
        "{:?}",
        joined.aliases
    );
    assert_eq!(host.network_mode, "bridge");

    let env_out = c
        .exec(
            &name,
            &ExecCreate {
                // Rootless, a device is bound in rather than created, and inspect
                // does not list it: look for it inside.
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "id -u; hostname; test -c /dev/magos-null && echo device; cat /etc/hosts"
                        .into(),
                ],
                attach_stdout: true,
                attach_stderr: true,
                ..ExecCreate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(env_out.exit_code, 0, "{env_out:?}");
    assert!(
        env_out.stdout.starts_with("1000\nmagos-host\ndevice\n"),
        "{env_out:?}"
    );
    assert!(env_out.stdout.contains("db.magos"), "{env_out:?}");

    c.remove_container(&name, true, false, Some(0))
        .await
        .unwrap();
}

/// A container on its own pasta network namespace, the rootless default for
/// containers without networks.
#[tokio::test]
async fn a_pasta_container_reports_its_mode() {
    let Some(tb) = testbed() else { return };
    let c = client(tb);
    let mut cleanup = Cleanup::new(tb);
    let (reference, _, _) = pull_httpd(tb, &c).await;
    let name = support::unique_name("magos-client-pasta");
    cleanup.containers.push(name.clone());
    let mut spec = httpd_spec(&name, &reference, None, "pasta");
    spec.netns = Some(Namespace {
        nsmode: "pasta".into(),
        value: String::new(),
    });
    c.create_container(&spec).await.unwrap();
    c.start_container(&name).await.unwrap();
    let i = c.inspect_container(&name).await.unwrap();
    assert_eq!(i.host_config.as_ref().unwrap().network_mode, "pasta");
    assert!(!i.network_settings.as_ref().unwrap().sandbox_key.is_empty());
    c.remove_container(&name, true, false, Some(0))
        .await
        .unwrap();
}
