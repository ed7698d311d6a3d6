//! Plan, apply and drift against the real rootless Podman: a stack of busybox httpd
//! containers with a network, a volume, a healthcheck and a `service_healthy`
//! dependency, converged, re-applied, bumped, tampered with and pruned.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use magos::apply::sealed::Unsealed;
use magos::apply::{Progress, PullDisplay, Stop, apply_stack, observe, prune};
use magos::core::drift::{DriftState, drift};
use magos::core::observed::Observed;
use magos::core::plan::{Action, PlanOptions, plan};
use magos::core::spec::{
    ContainerImage, ContainerSpec, Dependency, DependencyCondition, HealthSpec, MountSpec,
    NetworkSpec, PortSpec, StackSpec, VolumeSpec, scoped_name,
};
use magos::podman::{Client, ClientOptions};

use crate::support::{self, Testbed, testbed};

fn client(tb: &Testbed) -> Client {
    Client::new(&tb.podman_socket, ClientOptions::default())
}

fn pinned(tb: &Testbed, image: &str) -> ContainerImage {
    let digest = tb.manifest_digest(image);
    let (name, tag) = image.rsplit_once(':').unwrap();
    ContainerImage {
        reference: format!("{name}:{tag}@{digest}"),
        qualified: image.to_owned(),
        digest: Some(magos::core::reference::Digest::parse(&digest).unwrap()),
    }
}

/// `web` (httpd on a published loopback port, healthchecked) and `front` (httpd,
/// waits for `web` to be healthy), on one network, `web` with a named volume;
/// plus `worker` running a semver image that tests bump.
fn stack(
    tb: &Testbed,
    project: &str,
    web_port: u16,
    front_port: u16,
    worker_version: &str,
) -> StackSpec {
    let httpd = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let net = scoped_name(project, "default");
    let vol = scoped_name(project, "data");
    let mut web = ContainerSpec::new(project, "web", httpd.clone());
    web.ports.push(PortSpec {
        host_ip: "127.0.0.1".into(),
        host_port: web_port,
        container_port: 8080,
        range: 1,
        protocol: "tcp".into(),
    });
    web.networks.insert(net.clone(), vec![]);
    web.mounts.push(MountSpec::Volume {
        name: vol.clone(),
        target: "/data".into(),
        read_only: false,
        options: vec![],
        subpath: None,
    });
    web.healthcheck = Some(HealthSpec {
        test: vec![
            "CMD".into(),
            "wget".into(),
            "-q".into(),
            "-O".into(),
            "/dev/null".into(),
            "http://127.0.0.1:8080/".into(),
        ],
        interval: Some(Duration::from_secs(1)),
        timeout: Some(Duration::from_secs(5)),
        start_period: None,
        retries: Some(3),
        start_interval: None,
    });
    web.stop_signal = Some("SIGKILL".into());
    let mut front = ContainerSpec::new(project, "front", httpd);
    front.ports.push(PortSpec {
        host_ip: "127.0.0.1".into(),
        host_port: front_port,
        container_port: 8080,
        range: 1,
        protocol: "tcp".into(),
    });
    front.networks.insert(net.clone(), vec!["www".into()]);
    front.depends_on.push(Dependency {
        service: "web".into(),
        condition: DependencyCondition::ServiceHealthy,
        restart: false,
    });
    front.stop_signal = Some("SIGKILL".into());
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");
    let mut worker = ContainerSpec::new(
        project,
        "worker",
        pinned(tb, &format!("{semver}:{worker_version}")),
    );
    worker.networks.insert(net.clone(), vec![]);
    worker.stop_signal = Some("SIGKILL".into());
    StackSpec {
        project: project.to_owned(),
        instance: project.to_owned(),
        working_dir: format!("/srv/{project}"),
        config_files: vec!["compose.yaml".into()],
        networks: vec![NetworkSpec {
            name: net,
            external: false,
            driver: None,
            internal: false,
            labels: BTreeMap::new(),
            ..NetworkSpec::default()
        }],
        volumes: vec![VolumeSpec {
            name: vol,
            external: false,
            driver: None,
            labels: BTreeMap::new(),
            ..VolumeSpec::default()
        }],
        services: vec![web, front, worker],
    }
}

/// Removes every object of a project, whatever the outcome.
struct Cleanup<'a> {
    tb: &'a Testbed,
    project: String,
}

impl<'a> Cleanup<'a> {
    /// A unique project name from `prefix` (with underscores, as Compose names
    /// projects) and the guard that removes its objects.
    fn project(tb: &'a Testbed, prefix: &str) -> (String, Self) {
        let project = support::unique_name(prefix).replace('-', "_");
        let cleanup = Self {
            tb,
            project: project.clone(),
        };
        (project, cleanup)
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let ids = self.tb.podman_cli(&["ps", "-aq", "--filter", &label]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.tb.podman_cli(&["rm", "-f", "-t", "0", id]);
        }
        let _ = self.tb.podman_cli(&[
            "network",
            "rm",
            "-f",
            &scoped_name(&self.project, "default"),
        ]);
        let _ = self
            .tb
            .podman_cli(&["volume", "rm", "-f", &scoped_name(&self.project, "data")]);
    }
}

async fn converge(c: &Client, stacks: &[StackSpec]) -> Observed {
    let observed = observe(c).await.expect("observe");
    let p = plan(
        stacks,
        &observed,
        PlanOptions {
            prune: true,
            instance: &stacks[0].instance,
        },
    );
    for (stack, sp) in stacks.iter().zip(&p.stacks) {
        assert!(sp.error.is_none(), "plan error: {:?}", sp.error);
        let r = apply_stack(
            c,
            stack,
            sp,
            &Unsealed::default(),
            &Progress::none(),
            &Stop::never(),
            PullDisplay::Log,
        )
        .await;
        assert!(
            r.error.is_none(),
            "apply of {}: {}",
            stack.project,
            r.error.unwrap()
        );
    }
    for (name, r) in prune(c, &p.prune, &Stop::never()).await {
        r.unwrap_or_else(|e| panic!("prune {name}: {e}"));
    }
    observe(c).await.expect("observe")
}

fn ids(o: &Observed, project: &str) -> BTreeMap<String, String> {
    o.containers
        .iter()
        .filter(|c| c.project() == Some(project))
        .map(|c| (c.name.clone(), c.id.clone()))
        .collect()
}

fn states(stacks: &[StackSpec], o: &Observed) -> BTreeMap<String, DriftState> {
    drift(stacks, o, &stacks[0].instance)
        .into_iter()
        .filter(|e| stacks.iter().any(|s| s.project == e.stack))
        .map(|e| (e.container.or(e.service).unwrap_or_default(), e.state))
        .collect()
}

/// Fails the test unless every container of `stacks` is in sync in `o`.
fn assert_in_sync(stacks: &[StackSpec], o: &Observed) {
    let states = states(stacks, o);
    assert!(
        states.values().all(|s| *s == DriftState::InSync),
        "{states:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_converges_stays_put_and_changes_only_what_changed() {
    let Some(tb) = testbed() else { return };
    let (project, _cleanup) = Cleanup::project(tb, "mgapply");
    let c = client(tb);
    let (web_port, front_port) = (support::free_port(), support::free_port());
    let stacks = [stack(tb, &project, web_port, front_port, "1.0.0")];

    // Cold apply: everything created, both httpd answer on loopback.
    let o = converge(&c, &stacks).await;
    for port in [web_port, front_port] {
        let r = support::http_get(port, "/").expect("GET the published port");
        assert_eq!(r.status, 200, "port {port}");
    }
    assert_in_sync(&stacks, &o);
    let first = ids(&o, &project);
    assert_eq!(first.len(), 3, "{first:?}");

    // Apply again: nothing to do, no container replaced.
    let p = plan(
        &stacks,
        &o,
        PlanOptions {
            prune: true,
            instance: &project,
        },
    );
    assert!(p.is_empty(), "{p:#?}");
    let o = converge(&c, &stacks).await;
    assert_eq!(ids(&o, &project), first);

    // Bump the worker's pin: only the worker is recreated.
    let bumped = [stack(tb, &project, web_port, front_port, "1.2.0")];
    assert_eq!(
        states(&bumped, &o)[&format!("{project}_worker_1")],
        DriftState::ImageDrift
    );
    let p = plan(
        &bumped,
        &o,
        PlanOptions {
            prune: true,
            instance: &project,
        },
    );
    let actions: Vec<&Action> = p.stacks[0]
        .actions
        .iter()
        .filter(|a| a.service().is_some())
        .collect();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(matches!(actions[0], Action::Recreate { service, .. } if service == "worker"));
    let o = converge(&c, &bumped).await;
    let after = ids(&o, &project);
    let worker = format!("{project}_worker_1");
    for (name, id) in &first {
        if *name == worker {
            assert_ne!(&after[name], id, "the worker must be new");
        } else {
            assert_eq!(&after[name], id, "{name} must not be touched");
        }
    }
    assert_in_sync(&bumped, &o);
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_names_what_was_changed_by_hand_and_orphans_are_pruned() {
    let Some(tb) = testbed() else { return };
    let (project, _cleanup) = Cleanup::project(tb, "mgdrift");
    let c = client(tb);
    let stacks = [stack(
        tb,
        &project,
        support::free_port(),
        support::free_port(),
        "1.0.0",
    )];
    converge(&c, &stacks).await;
    let (web, front, worker) = (
        format!("{project}_web_1"),
        format!("{project}_front_1"),
        format!("{project}_worker_1"),
    );

    // Stop one, remove another, replace the third by hand with another image.
    tb.podman_ok(&["stop", "-t", "0", &front]);
    tb.podman_ok(&["rm", "-f", "-t", "0", &web]);
    tb.podman_ok(&["rm", "-f", "-t", "0", &worker]);
    let other = format!("{}:1.2.0", tb.require("MAGOS_TEST_IMAGE_SEMVER"));
    tb.podman_ok(&[
        "run",
        "-d",
        "--name",
        &worker,
        "--label",
        &format!("com.docker.compose.project={project}"),
        "--label",
        "com.docker.compose.service=worker",
        &other,
    ]);
    let o = observe(&c).await.unwrap();
    let s = states(&stacks, &o);
    assert_eq!(s[&front], DriftState::Stopped, "{s:?}");
    assert_eq!(s["web"], DriftState::Missing, "{s:?}");
    assert_eq!(s[&worker], DriftState::ImageDrift, "{s:?}");

    // Converge heals all three.
    let o = converge(&c, &stacks).await;
    assert_in_sync(&stacks, &o);

    // A service removed from the repository leaves an orphan that apply prunes; a
    // container outside every managed project is never touched.
    let bystander = support::unique_name("bystander");
    tb.podman_ok(&["run", "-d", "--name", &bystander, &other]);
    let mut smaller = stacks[0].clone();
    smaller.services.retain(|s| s.service != "worker");
    let smaller = [smaller];
    let o = observe(&c).await.unwrap();
    let orphans: BTreeSet<String> = drift(&smaller, &o, &project)
        .into_iter()
        .filter(|e| e.state == DriftState::Orphan)
        .filter_map(|e| e.container)
        .collect();
    assert_eq!(orphans, BTreeSet::from([worker.clone()]));
    let o = converge(&c, &smaller).await;
    assert!(!ids(&o, &project).contains_key(&worker));
    assert!(
        o.containers.iter().any(|c| c.name == bystander),
        "the bystander must survive"
    );
    tb.podman_ok(&["rm", "-f", "-t", "0", &bystander]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_spec_leaves_the_running_container_alone() {
    let Some(tb) = testbed() else { return };
    let (project, _cleanup) = Cleanup::project(tb, "mgrefuse");
    let c = client(tb);
    let stacks = [stack(
        tb,
        &project,
        support::free_port(),
        support::free_port(),
        "1.0.0",
    )];
    let o = converge(&c, &stacks).await;
    let before = ids(&o, &project);

    // A device that does not exist: Podman refuses the create.
    let mut broken = stacks[0].clone();
    broken.services[2]
        .devices
        .push("/dev/magos-does-not-exist".into());
    let broken = [broken];
    let p = plan(
        &broken,
        &o,
        PlanOptions {
            prune: true,
            instance: &project,
        },
    );
    let r = apply_stack(
        &c,
        &broken[0],
        &p.stacks[0],
        &Unsealed::default(),
        &Progress::none(),
        &Stop::never(),
        PullDisplay::Log,
    )
    .await;
    let err = r.error.expect("the create must fail").to_string();
    assert!(err.contains("worker"), "{err}");
    let o = observe(&c).await.unwrap();
    assert_eq!(ids(&o, &project), before, "the old worker keeps running");
    assert_in_sync(&stacks, &o);
}
