use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::core::drift::{DriftState, drift};
use crate::core::observed::{ObservedContainer, ObservedImage, ObservedObject};
use crate::core::spec::{
    Dependency, DependencyCondition, NetworkSpec, VolumeSpec, replacement_name, scoped_name,
};

/// A valid digest per letter: `'b'` → `sha256:bbbb…`, a letter past `f` by its
/// code (`'j'` → `sha256:6a6a…`).
fn digest(c: char) -> String {
    if c.is_ascii_hexdigit() {
        format!("sha256:{}", c.to_string().repeat(64))
    } else {
        format!("sha256:{}", format!("{:02x}", c as u8).repeat(32))
    }
}

fn image(name: &str, d: Option<char>) -> ContainerImage {
    ContainerImage {
        reference: match d {
            Some(c) => format!("{name}:1@{}", digest(c)),
            None => format!("{name}:1"),
        },
        qualified: format!("127.0.0.1:5000/{name}:1"),
        digest: d.map(|c| crate::core::reference::Digest::parse(&digest(c)).unwrap()),
    }
}

fn stack(project: &str, services: Vec<ContainerSpec>) -> StackSpec {
    StackSpec {
        project: project.into(),
        instance: "default".into(),
        working_dir: format!("/repo/{project}"),
        config_files: vec!["compose.yaml".into()],
        networks: vec![NetworkSpec {
            name: scoped_name(project, "default"),
            external: false,
            driver: None,
            internal: false,
            labels: BTreeMap::new(),
            ..NetworkSpec::default()
        }],
        volumes: vec![VolumeSpec {
            name: scoped_name(project, "data"),
            external: false,
            driver: None,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
        }],
        services,
    }
}

fn svc(project: &str, name: &str, d: char) -> ContainerSpec {
    ContainerSpec::new(project, name, image(name, Some(d)))
}

fn depends(mut s: ContainerSpec, on: &str, restart: bool) -> ContainerSpec {
    s.depends_on.push(Dependency {
        service: on.into(),
        condition: DependencyCondition::ServiceHealthy,
        restart,
    });
    s
}

/// What Podman reports after Magos applied `stacks` exactly.
fn converged(stacks: &[StackSpec]) -> Observed {
    let mut o = Observed::default();
    for st in stacks {
        for n in &st.networks {
            o.networks.push(ObservedObject {
                name: n.name.clone(),
                labels: BTreeMap::new(),
                subnets: n.subnets.iter().map(|s| s.subnet.clone()).collect(),
            });
        }
        for v in &st.volumes {
            o.volumes.push(ObservedObject {
                name: v.name.clone(),
                labels: BTreeMap::new(),
                ..ObservedObject::default()
            });
        }
        for s in &st.services {
            let image_id = format!("img-{}", s.service);
            let repository = s.image.qualified.rsplit_once(':').unwrap().0;
            o.images.push(ObservedImage {
                id: image_id.clone(),
                digests: s.image.digest.iter().map(ToString::to_string).collect(),
                tags: BTreeSet::from([s.image.qualified.clone()]),
                repo_digests: s
                    .image
                    .digest
                    .iter()
                    .map(|d| format!("{repository}@{d}"))
                    .collect(),
                build_digest: None,
            });
            o.containers.push(ObservedContainer {
                id: format!("id-{}", s.name),
                name: s.name.clone(),
                labels: s.all_labels(st),
                state: RunState::Running,
                image_id,
                image_digest: s.image.digest.as_ref().map(ToString::to_string),
                vitals: Default::default(),
            });
        }
    }
    o
}

fn web() -> StackSpec {
    stack(
        "web",
        vec![
            depends(svc("web", "app", 'a'), "db", false),
            svc("web", "db", 'b'),
        ],
    )
}

fn states(stacks: &[StackSpec], o: &Observed) -> Vec<(String, DriftState)> {
    drift(stacks, o, DEFAULT_INSTANCE)
        .into_iter()
        .map(|e| (e.service.unwrap_or_default(), e.state))
        .collect()
}

#[test]
fn a_cold_start_creates_everything_in_dependency_order() {
    let stacks = [web()];
    let p = plan(&stacks, &Observed::default(), PlanOptions::default());
    let actions: Vec<String> = p.stacks[0]
        .actions
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        actions,
        [
            "create network web_default",
            "create volume web_data",
            &format!("pull 127.0.0.1:5000/db:1@{}", digest('b')),
            &format!("pull 127.0.0.1:5000/app:1@{}", digest('a')),
            "create web_db_1",
            "create web_app_1",
        ]
    );
    assert!(p.prune.is_empty());
    assert_eq!(
        states(&stacks, &Observed::default()),
        [
            ("app".into(), DriftState::Missing),
            ("db".into(), DriftState::Missing)
        ]
    );
}

#[test]
fn a_converged_stack_plans_nothing_and_is_in_sync() {
    let stacks = [web()];
    let o = converged(&stacks);
    let p = plan(&stacks, &o, PlanOptions::default());
    assert!(p.is_empty(), "{p:#?}");
    assert!(
        drift(&stacks, &o, DEFAULT_INSTANCE)
            .iter()
            .all(|e| e.state == DriftState::InSync)
    );
}

#[test]
fn a_digest_bump_recreates_only_that_service() {
    let before = [web()];
    let o = converged(&before);
    let mut after = web();
    after.services[1].image = image("db", Some('c'));
    let after = [after];
    let p = plan(&after, &o, PlanOptions::default());
    let actions: Vec<String> = p.stacks[0]
        .actions
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        actions,
        [
            format!("pull 127.0.0.1:5000/db:1@{}", digest('c')),
            "recreate web_db_1 (runs sha256:bbbbbbbbbbbb instead of sha256:cccccccccccc)"
                .to_owned(),
        ]
    );
    assert_eq!(
        states(&after, &o),
        [
            ("app".into(), DriftState::InSync),
            ("db".into(), DriftState::ImageDrift)
        ]
    );
    let e = &drift(&after, &o, DEFAULT_INSTANCE)[1];
    assert_eq!(e.expected.as_deref(), Some(digest('c').as_str()));
    assert_eq!(e.actual.as_deref(), Some(digest('b').as_str()));
    assert_eq!(e.container.as_deref(), Some("web_db_1"));
}

#[test]
fn a_pinned_image_stored_only_under_another_repository_is_pulled() {
    let before = [web()];
    let mut o = converged(&before);
    // The manifest `db` moves to is here, but as another repository's image
    // (a mirror, a copy): Podman would not find `db@digest`, so it is pulled.
    o.images.push(ObservedImage {
        id: "img-mirror".into(),
        digests: BTreeSet::from([digest('c')]),
        tags: BTreeSet::from(["127.0.0.1:5000/mirror/db:1".to_owned()]),
        repo_digests: BTreeSet::from([format!("127.0.0.1:5000/mirror/db@{}", digest('c'))]),
        build_digest: None,
    });
    let mut after = web();
    after.services[1].image = image("db", Some('c'));
    let p = plan(&[after.clone()], &o, PlanOptions::default());
    assert_eq!(
        p.stacks[0].actions[0].to_string(),
        format!("pull 127.0.0.1:5000/db:1@{}", digest('c'))
    );
    // Once stored under its own repository, it is not pulled again.
    o.images
        .last_mut()
        .unwrap()
        .repo_digests
        .insert(format!("127.0.0.1:5000/db@{}", digest('c')));
    let p = plan(&[after], &o, PlanOptions::default());
    assert!(
        p.stacks[0]
            .actions
            .iter()
            .all(|a| !a.to_string().starts_with("pull")),
        "{:?}",
        p.stacks[0].actions
    );
}

#[test]
fn a_restart_dependency_follows_and_a_shared_namespace_is_recreated() {
    let mut sidecar = svc("web", "sidecar", 's');
    sidecar.network_mode = NetworkMode::Service("db".into());
    let before = [stack(
        "web",
        vec![
            depends(svc("web", "app", 'a'), "db", true),
            svc("web", "db", 'b'),
            sidecar,
        ],
    )];
    let o = converged(&before);
    let mut after = before[0].clone();
    after.services[1].environment.insert("X".into(), "1".into());
    let p = plan(&[after], &o, PlanOptions::default());
    let actions: Vec<String> = p.stacks[0]
        .actions
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        actions,
        [
            "recreate web_db_1 (definition changed)",
            "restart web_app_1 (dependency `db` was recreated)",
            "recreate web_sidecar_1 (shares the network namespace of recreated `db`)",
        ]
    );
}

#[test]
fn a_config_change_is_config_drift() {
    let before = [web()];
    let o = converged(&before);
    let mut after = web();
    after.services[0].command = Some(vec!["httpd".into(), "-f".into()]);
    let after = [after];
    assert_eq!(
        states(&after, &o),
        [
            ("app".into(), DriftState::ConfigDrift),
            ("db".into(), DriftState::InSync)
        ]
    );
    let p = plan(&after, &o, PlanOptions::default());
    assert_eq!(p.stacks[0].actions.len(), 1);
    assert!(
        matches!(&p.stacks[0].actions[0], Action::Recreate { service, .. } if service == "app")
    );
}

#[test]
fn a_stopped_container_is_started_not_recreated() {
    let stacks = [web()];
    let mut o = converged(&stacks);
    o.containers[0].state = RunState::Stopped;
    assert_eq!(states(&stacks, &o)[0], ("app".into(), DriftState::Stopped));
    let p = plan(&stacks, &o, PlanOptions::default());
    assert_eq!(
        p.stacks[0].actions,
        [Action::Start {
            service: "app".into(),
            name: "web_app_1".into()
        }]
    );
}

#[test]
fn a_hand_made_container_is_config_drift_and_replaced() {
    let stacks = [web()];
    let mut o = converged(&stacks);
    o.containers[0]
        .labels
        .remove(crate::core::spec::LABEL_CONFIG_HASH);
    let e = &drift(&stacks, &o, DEFAULT_INSTANCE)[0];
    assert_eq!(e.state, DriftState::ConfigDrift);
    assert!(
        e.actual
            .as_deref()
            .unwrap()
            .contains("not created by Magos")
    );
}

#[test]
fn a_foreign_container_blocks_only_its_stack() {
    let stacks = [web(), stack("media", vec![svc("media", "jellyfin", 'j')])];
    let mut o = Observed::default();
    o.containers.push(ObservedContainer {
        id: "foreign".into(),
        name: "web_app_1".into(),
        labels: BTreeMap::new(),
        state: RunState::Running,
        image_id: "x".into(),
        image_digest: None,
        vitals: Default::default(),
    });
    let p = plan(&stacks, &o, PlanOptions::default());
    let err = p.stacks[0].error.as_ref().map(ToString::to_string).unwrap();
    assert!(
        err.contains("web_app_1") && err.contains("will not touch"),
        "{err}"
    );
    assert!(p.stacks[0].actions.is_empty());
    assert!(p.stacks[1].error.is_none());
    assert!(
        p.stacks[1]
            .actions
            .iter()
            .any(|a| matches!(a, Action::Create { service, .. } if service == "jellyfin"))
    );
    assert!(p.prune.is_empty(), "a foreign container is never pruned");
}

#[test]
fn orphans_of_managed_projects_are_pruned_and_nothing_else() {
    let old = [web(), stack("gone", vec![svc("gone", "x", 'x')])];
    let mut o = converged(&old);
    // Unmanaged containers: no labels, or another project without Magos's label.
    o.containers.push(ObservedContainer {
        id: "mine".into(),
        name: "my-own".into(),
        labels: BTreeMap::new(),
        state: RunState::Running,
        image_id: "x".into(),
        image_digest: None,
        vitals: Default::default(),
    });
    o.containers.push(ObservedContainer {
        id: "other-compose".into(),
        name: "other_svc_1".into(),
        labels: BTreeMap::from([(
            crate::core::spec::LABEL_PROJECT.to_owned(),
            "other".to_owned(),
        )]),
        state: RunState::Running,
        image_id: "x".into(),
        image_digest: None,
        vitals: Default::default(),
    });
    // Another Magos instance's stack on the same Podman.
    let theirs = stack("theirs", vec![svc("theirs", "y", 'y')]);
    let mut labels = theirs.services[0].all_labels(&theirs);
    labels.insert(
        crate::core::spec::LABEL_INSTANCE.to_owned(),
        "other-instance".to_owned(),
    );
    o.containers.push(ObservedContainer {
        id: "theirs".into(),
        name: "theirs_y_1".into(),
        labels,
        state: RunState::Running,
        image_id: "x".into(),
        image_digest: None,
        vitals: Default::default(),
    });
    // The repository now has only `web`, without `db`.
    let new = [stack("web", vec![svc("web", "app", 'a')])];
    let p = plan(&new, &o, PlanOptions::default());
    let pruned: BTreeSet<&str> = p.prune.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(pruned, BTreeSet::from(["web_db_1", "gone_x_1"]));
    let reasons: Vec<&str> = p.prune.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("no longer in stack `web`")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("stack `gone` is no longer in the repository")),
        "{reasons:?}"
    );
    assert!(
        plan(
            &new,
            &o,
            PlanOptions {
                prune: false,
                ..PlanOptions::default()
            }
        )
        .prune
        .is_empty()
    );
    let orphans: Vec<_> = drift(&new, &o, DEFAULT_INSTANCE)
        .into_iter()
        .filter(|e| e.state == DriftState::Orphan)
        .collect();
    assert_eq!(orphans.len(), 2);
}

#[test]
fn a_multi_arch_pin_matches_the_platform_image_it_resolved_to() {
    let stacks = [web()];
    let mut o = converged(&stacks);
    // Podman records the platform manifest digest on the container; the image knows
    // both the index (pinned) and the platform digest.
    o.containers[0].image_digest = Some(digest('p'));
    o.images[0].digests.insert(digest('p'));
    assert_eq!(states(&stacks, &o)[0], ("app".into(), DriftState::InSync));
}

#[test]
fn unpinned_images_are_reported() {
    let stacks = [stack(
        "web",
        vec![ContainerSpec::new("web", "app", image("app", None))],
    )];
    let o = converged(&stacks);
    assert_eq!(states(&stacks, &o), [("app".into(), DriftState::Unpinned)]);
    assert!(plan(&stacks, &o, PlanOptions::default()).is_empty());
}

#[test]
fn cycles_and_missing_dependencies_are_errors_for_their_stack() {
    let cyc = stack(
        "cyc",
        vec![
            depends(svc("cyc", "a", 'a'), "b", false),
            depends(svc("cyc", "b", 'b'), "a", false),
        ],
    );
    let err = start_order(&cyc).unwrap_err().to_string();
    assert!(
        err.contains("cycle") && err.contains('a') && err.contains('b'),
        "{err}"
    );
    let missing = stack("m", vec![depends(svc("m", "a", 'a'), "nope", false)]);
    let err = start_order(&missing).unwrap_err().to_string();
    assert!(err.contains("`nope`"), "{err}");
    let p = plan(&[cyc, web()], &Observed::default(), PlanOptions::default());
    assert!(p.stacks[0].error.is_some());
    assert!(!p.stacks[1].actions.is_empty());
}

#[test]
fn external_networks_must_exist() {
    let mut st = web();
    st.networks[0].external = true;
    let p = plan(&[st], &Observed::default(), PlanOptions::default());
    assert!(
        p.stacks[0]
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap()
            .contains("external network `web_default`")
    );
}

/// 4,000 services: the first 2,000 a chain declared backwards (`s0` waits on
/// `s1`, … `s1998` on `s1999`), the last 2,000 independent. Dependencies come
/// first and ties go to the service declared first, so the chain unwinds from
/// `s1999` down to `s0` before `s2000` (declared later) gets its turn.
#[test]
fn start_order_of_4000_services_is_dependencies_first_then_declaration_order() {
    let services: Vec<ContainerSpec> = (0..4000)
        .map(|i| {
            let s = svc("big", &format!("s{i}"), 'a');
            if i < 1999 {
                depends(s, &format!("s{}", i + 1), false)
            } else {
                s
            }
        })
        .collect();
    let st = stack("big", services);
    let expected: Vec<String> = (0..2000)
        .rev()
        .chain(2000..4000)
        .map(|i| format!("s{i}"))
        .collect();
    assert_eq!(start_order(&st).unwrap(), expected);
}

#[test]
fn a_cycle_names_every_service_it_holds_back_in_declaration_order() {
    let st = stack(
        "cyc",
        vec![
            svc("cyc", "free", 'a'),
            depends(svc("cyc", "after", 'b'), "a", false),
            depends(svc("cyc", "a", 'c'), "b", false),
            depends(svc("cyc", "b", 'd'), "a", false),
        ],
    );
    assert_eq!(
        start_order(&st).unwrap_err().to_string(),
        "services depend on each other in a cycle: after, a, b"
    );
    let mut one = svc("one", "x", 'a');
    one.network_mode = NetworkMode::Service("x".into());
    assert!(
        start_order(&stack("one", vec![one]))
            .unwrap_err()
            .to_string()
            .contains("cycle: x")
    );
}

/// The states a recreate of `db` (digest `b` → `c`) leaves when it is
/// interrupted, and what the next plan does with each: finish with the
/// replacement when it matches the spec, else drop it (and recreate if needed).
/// Drift names the service's own container, never the temporary one.
#[test]
fn every_crash_point_of_a_recreate_is_planned_to_converge() {
    let before = [web()];
    let mut after = web();
    after.services[1].image = image("db", Some('c'));
    let after = [after];
    let next = replacement_name("web_db_1");
    let old = converged(&before);
    let new = converged(&after);
    let db = |o: &Observed| {
        o.containers
            .iter()
            .find(|c| c.name == "web_db_1")
            .unwrap()
            .clone()
    };
    // The replacement as the interrupted apply created it (not started), and
    // an out-of-date one (an apply of the previous version).
    let fresh = ObservedContainer {
        name: next.clone(),
        state: RunState::Stopped,
        ..db(&new)
    };
    let stale = ObservedContainer {
        id: "id-stale-next".into(),
        name: next.clone(),
        state: RunState::Stopped,
        ..db(&old)
    };
    let with = |base: &Observed, edit: &dyn Fn(&mut Vec<ObservedContainer>)| {
        let mut o = base.clone();
        // Both images are stored.
        o.images.extend(new.images.iter().cloned());
        edit(&mut o.containers);
        o
    };
    let drop_db = |cs: &mut Vec<ObservedContainer>| cs.retain(|c| c.name != "web_db_1");
    let finish = Action::FinishReplacement {
        service: "db".into(),
        name: "web_db_1".into(),
    };
    let remove = Action::RemoveLeftover {
        service: "db".into(),
        name: next.clone(),
    };
    let cases: Vec<(&str, Observed, Vec<Action>, DriftState)> = vec![
        (
            "replacement created, old still running",
            with(&old, &|cs| cs.push(fresh.clone())),
            vec![finish.clone()],
            DriftState::Interrupted,
        ),
        (
            "old stopped",
            with(&old, &|cs| {
                cs.iter_mut().find(|c| c.name == "web_db_1").unwrap().state = RunState::Stopped;
                cs.push(fresh.clone());
            }),
            vec![finish.clone()],
            DriftState::Interrupted,
        ),
        (
            "old removed",
            with(&old, &|cs| {
                drop_db(cs);
                cs.push(fresh.clone());
            }),
            vec![finish.clone()],
            DriftState::Interrupted,
        ),
        (
            "renamed, not started",
            with(&new, &|cs| {
                cs.iter_mut().find(|c| c.name == "web_db_1").unwrap().state = RunState::Stopped;
            }),
            vec![Action::Start {
                service: "db".into(),
                name: "web_db_1".into(),
            }],
            DriftState::Stopped,
        ),
        (
            "old removed, the replacement out of date",
            with(&old, &|cs| {
                drop_db(cs);
                cs.push(stale.clone());
            }),
            vec![Action::Recreate {
                service: "db".into(),
                name: "web_db_1".into(),
                reason: "an interrupted apply left an out-of-date replacement: runs sha256:bbbbbbbbbbbb instead of sha256:cccccccccccc".into(),
            }],
            DriftState::Interrupted,
        ),
        (
            "a replacement left beside a container in sync",
            with(&new, &|cs| cs.push(stale.clone())),
            vec![remove.clone()],
            DriftState::Interrupted,
        ),
        (
            "an out-of-date replacement beside a stale running container",
            with(&old, &|cs| cs.push(stale.clone())),
            vec![Action::Recreate {
                service: "db".into(),
                name: "web_db_1".into(),
                reason: "runs sha256:bbbbbbbbbbbb instead of sha256:cccccccccccc".into(),
            }],
            DriftState::Interrupted,
        ),
    ];
    for (case, observed, actions, state) in cases {
        let p = plan(&after, &observed, PlanOptions::default());
        assert_eq!(p.stacks[0].error, None, "{case}");
        assert_eq!(p.stacks[0].actions, actions, "{case}");
        assert!(p.prune.is_empty(), "{case}: {:?}", p.prune);
        let report = drift(&after, &observed, DEFAULT_INSTANCE);
        let db = report
            .iter()
            .find(|e| e.service.as_deref() == Some("db"))
            .unwrap();
        assert_eq!(db.state, state, "{case}");
        assert!(
            report.iter().all(
                |e| !e.container.as_deref().unwrap_or("").contains("_magos-next")
                    && e.state != DriftState::Orphan
            ),
            "{case}: {report:?}"
        );
    }
}

#[test]
fn a_foreign_container_under_the_replacement_name_is_never_touched() {
    let before = [web()];
    let mut after = web();
    after.services[1].image = image("db", Some('c'));
    let mut o = converged(&before);
    o.containers.push(ObservedContainer {
        id: "id-user".into(),
        name: replacement_name("web_db_1"),
        labels: BTreeMap::new(),
        state: RunState::Running,
        image_id: "img-user".into(),
        image_digest: None,
        vitals: Default::default(),
    });
    let p = plan(&[after], &o, PlanOptions::default());
    let err = p.stacks[0].error.as_ref().map(ToString::to_string).unwrap();
    assert!(err.contains("`web_db_1_magos-next`"), "{err}");
    // Another instance's replacement is not this one's to finish either.
    let mut theirs = converged(&[web()]);
    let mut labels = theirs.containers[1].labels.clone();
    labels.insert(crate::core::spec::LABEL_INSTANCE.into(), "other".into());
    theirs.containers.push(ObservedContainer {
        id: "id-theirs".into(),
        name: replacement_name("web_db_1"),
        labels,
        ..theirs.containers[1].clone()
    });
    assert!(observed_leftover_is_none(&theirs));
}

fn observed_leftover_is_none(o: &Observed) -> bool {
    let st = web();
    o.leftover_replacement(&st, &st.services[1]).is_none()
}

#[test]
fn pull_policy_always_pulls_a_present_image_and_never_pulls_none() {
    use crate::core::spec::PullPolicy;
    let before = [web()];
    let o = converged(&before);
    let pulls = |after: StackSpec, o: &Observed| -> Vec<String> {
        plan(&[after], o, PlanOptions::default()).stacks[0]
            .actions
            .iter()
            .map(ToString::to_string)
            .filter(|a| a.starts_with("pull"))
            .collect()
    };
    // A changed definition with the image present: no pull by default…
    let mut after = web();
    after.services[1].environment.insert("X".into(), "1".into());
    assert!(pulls(after.clone(), &o).is_empty());
    // …one with `always`.
    after.services[1].run.pull_policy = Some(PullPolicy::Always);
    assert_eq!(
        pulls(after, &o),
        [format!("pull 127.0.0.1:5000/db:1@{}", digest('b'))]
    );
    // `never`: a missing image is not pulled (the create says it is missing).
    let mut fresh = web();
    fresh.services[1].run.pull_policy = Some(PullPolicy::Never);
    let only_app = pulls(fresh, &Observed::default());
    assert_eq!(
        only_app,
        [format!("pull 127.0.0.1:5000/app:1@{}", digest('a'))]
    );
}

#[test]
fn a_service_sharing_a_pid_or_ipc_namespace_is_recreated_with_its_owner() {
    use crate::core::spec::SharedNamespace;
    let mut pid = svc("web", "pidside", 'p');
    pid.run.pid = Some(SharedNamespace::Service("db".into()));
    let mut ipc = svc("web", "ipcside", 'i');
    ipc.run.ipc = Some(SharedNamespace::Service("db".into()));
    let before = [stack("web", vec![svc("web", "db", 'b'), pid, ipc])];
    let o = converged(&before);
    let mut after = before[0].clone();
    after.services[0].environment.insert("X".into(), "1".into());
    let actions: Vec<String> = plan(&[after], &o, PlanOptions::default()).stacks[0]
        .actions
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        actions,
        [
            "recreate web_db_1 (definition changed)",
            "recreate web_pidside_1 (shares the PID namespace of recreated `db`)",
            "recreate web_ipcside_1 (shares the IPC namespace of recreated `db`)",
        ]
    );
}

#[test]
fn a_network_whose_fixed_subnet_changed_fails_its_stack_and_is_kept() {
    let mut st = web();
    st.networks[0].subnets = vec![crate::core::spec::SubnetSpec {
        subnet: "172.19.1.0/24".into(),
        gateway: None,
        ip_range: None,
    }];
    let mut o = converged(std::slice::from_ref(&st));
    // As created: nothing to do.
    let p = plan(std::slice::from_ref(&st), &o, PlanOptions::default());
    assert_eq!(p.stacks[0].error, None);
    assert!(p.stacks[0].actions.is_empty());
    // The file now asks for another subnet: the stack fails with the way out,
    // and the network is neither removed nor recreated.
    o.networks[0].subnets = vec!["10.89.3.0/24".into()];
    let p = plan(std::slice::from_ref(&st), &o, PlanOptions::default());
    let e = p.stacks[0]
        .error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        e.contains("network `web_default` exists with subnet 10.89.3.0/24")
            && e.contains("sets 172.19.1.0/24")
            && e.contains("podman network rm web_default"),
        "{e}"
    );
    assert!(p.stacks[0].actions.is_empty());
    // Drift names it.
    let d = drift(std::slice::from_ref(&st), &o, DEFAULT_INSTANCE);
    let net = d
        .iter()
        .find(|e| e.service.is_none())
        .expect("a drift entry for the network");
    assert_eq!(net.state, DriftState::ConfigDrift);
    assert_eq!(
        net.expected.as_deref(),
        Some("network web_default subnet 172.19.1.0/24")
    );
    assert_eq!(net.actual.as_deref(), Some("subnet 10.89.3.0/24"));
    // A network without fixed subnets keeps whatever Podman chose.
    st.networks[0].subnets.clear();
    let p = plan(std::slice::from_ref(&st), &o, PlanOptions::default());
    assert_eq!(p.stacks[0].error, None);
    assert!(
        drift(std::slice::from_ref(&st), &o, DEFAULT_INSTANCE)
            .iter()
            .all(|e| e.service.is_some())
    );
}

#[test]
fn a_missing_external_volume_says_how_to_create_it() {
    let mut st = web();
    st.volumes[0].external = true;
    st.volumes[0].name = "caddy_data".into();
    let p = plan(&[st], &Observed::default(), PlanOptions::default());
    let e = p.stacks[0]
        .error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        e.contains("external volume `caddy_data` does not exist")
            && e.contains("podman volume create caddy_data"),
        "{e}"
    );
}

/// The plan filters: what is kept is never pruned, observed stacks get no
/// actions, `--stack` prunes only its own and the repository's orphans.
#[test]
fn hold_keeps_protected_failed_and_observed_stacks_and_narrows_to_one_stack() {
    use super::{Hold, Plan, Removal, StackPlan};
    let removal = |id: &str, project: &str| Removal {
        id: id.into(),
        name: format!("{project}_x_1"),
        project: project.into(),
        service: Some("x".into()),
        reason: "orphan".into(),
    };
    let mut plan = Plan {
        stacks: vec![
            StackPlan {
                project: "web".into(),
                actions: Vec::new(),
                error: None,
            },
            StackPlan {
                project: "watched".into(),
                actions: Vec::new(),
                error: None,
            },
        ],
        prune: vec![
            removal("1", "cli"),
            removal("2", "broken"),
            removal("3", "web"),
            removal("4", "gone"),
        ],
    };
    let mut observed = converged(&[web()]);
    let mut broken = observed.containers[0].clone();
    broken.id = "2".into();
    broken.labels.insert(
        crate::core::spec::LABEL_WORKING_DIR.into(),
        "/repo/broken".into(),
    );
    observed.containers = vec![broken];
    let protected = ["cli".to_owned()].into();
    let failed_dirs = ["/repo/broken".to_owned()].into();
    let watched = ["watched".to_owned()];
    let projects = ["web", "watched"].into();
    let mut all = plan.clone();
    Hold {
        protected: &protected,
        failed_dirs: &failed_dirs,
        observed: &watched,
        only: None,
    }
    .apply_to(&mut all, &observed);
    let ids: Vec<&str> = all.prune.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["3", "4"]);
    assert_eq!(all.stacks.len(), 1);
    assert_eq!(all.stacks[0].project, "web");
    Hold {
        protected: &protected,
        failed_dirs: &failed_dirs,
        observed: &watched,
        only: Some(("web", &projects)),
    }
    .apply_to(&mut plan, &observed);
    let ids: Vec<&str> = plan.prune.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["3"],
        "a stack gone from the repository is left to a full apply"
    );
}

/// `replicas` containers of one service, numbered as convert numbers them.
fn replicated(project: &str, name: &str, d: char, replicas: u32) -> Vec<ContainerSpec> {
    (1..=replicas)
        .map(|n| {
            let mut s = svc(project, name, d);
            s.number = n;
            s.name = crate::core::spec::replica_name(project, name, n);
            s
        })
        .collect()
}

#[test]
fn replicas_are_planned_per_container_and_scaling_down_removes_the_highest() {
    let mut services = replicated("web", "app", 'a', 3);
    services.push(depends(svc("web", "front", 'b'), "app", false));
    let three = stack("web", services);
    assert_eq!(start_order(&three).unwrap(), ["app", "front"]);
    let observed = converged(std::slice::from_ref(&three));
    assert!(
        plan(
            std::slice::from_ref(&three),
            &observed,
            PlanOptions::default()
        )
        .is_empty()
    );
    // One replica removed by hand: only it is created again.
    let mut missing = observed.clone();
    missing.containers.retain(|c| c.name != "web_app_2");
    let p = plan(
        std::slice::from_ref(&three),
        &missing,
        PlanOptions::default(),
    );
    assert_eq!(
        p.stacks[0].actions,
        [Action::Create {
            service: "app".into(),
            name: "web_app_2".into()
        }]
    );
    // Scaled down to one: containers 2 and 3 go, 1 stays as it is.
    let mut services = replicated("web", "app", 'a', 1);
    services.push(depends(svc("web", "front", 'b'), "app", false));
    let one = stack("web", services);
    let p = plan(
        std::slice::from_ref(&one),
        &observed,
        PlanOptions::default(),
    );
    assert!(p.stacks[0].actions.is_empty(), "{p:?}");
    let removed: Vec<(&str, &str)> = p
        .prune
        .iter()
        .map(|r| (r.name.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        removed,
        [
            ("web_app_2", "service `app` runs 1 container(s) now"),
            ("web_app_3", "service `app` runs 1 container(s) now")
        ]
    );
    // Drift: one entry per container.
    let entries = drift(std::slice::from_ref(&three), &missing, "default");
    let app: Vec<_> = entries
        .iter()
        .filter(|e| e.service.as_deref() == Some("app"))
        .map(|e| (e.expected.clone(), e.state))
        .collect();
    assert_eq!(app.len(), 3, "{app:?}");
    assert!(
        app.contains(&(Some("web_app_2".into()), DriftState::Missing)),
        "{app:?}"
    );
}

#[test]
fn the_first_replica_hashes_as_a_spec_without_replicas() {
    let old = svc("web", "app", 'a');
    let first = &replicated("web", "app", 'a', 2)[0];
    assert_eq!(old.config_hash(), first.config_hash());
    assert_eq!(
        first.all_labels(&stack("web", vec![]))[crate::core::spec::LABEL_CONTAINER_NUMBER],
        "1"
    );
    let second = &replicated("web", "app", 'a', 2)[1];
    assert_eq!(
        second.all_labels(&stack("web", vec![]))[crate::core::spec::LABEL_CONTAINER_NUMBER],
        "2"
    );
}

#[test]
fn a_built_image_is_built_when_no_image_carries_its_inputs_digest() {
    let built = ContainerImage {
        reference: "localhost/web_app:latest".into(),
        qualified: "localhost/web_app:latest".into(),
        digest: None,
    };
    let mut app = ContainerSpec::new("web", "app", built);
    app.build = Some(crate::core::spec::BuildSpec {
        digest: digest('b'),
        ..Default::default()
    });
    let st = stack("web", vec![app.clone()]);
    // Nothing there: build, then create; never a pull.
    let p = plan(
        std::slice::from_ref(&st),
        &Observed::default(),
        PlanOptions::default(),
    );
    let actions: Vec<String> = p.stacks[0]
        .actions
        .iter()
        .map(ToString::to_string)
        .collect();
    let build = actions
        .iter()
        .position(|a| a == "build localhost/web_app:latest (service app)")
        .unwrap_or_else(|| panic!("{actions:?}"));
    let create = actions
        .iter()
        .position(|a| a == "create web_app_1")
        .unwrap();
    assert!(build < create, "{actions:?}");
    assert!(
        !actions.iter().any(|a| a.starts_with("pull")),
        "{actions:?}"
    );
    // Converged, with the image labelled with the digest: nothing to do.
    let mut o = converged(std::slice::from_ref(&st));
    for i in &mut o.images {
        i.build_digest = Some(digest('b'));
    }
    let p = plan(std::slice::from_ref(&st), &o, PlanOptions::default());
    assert!(p.stacks[0].actions.is_empty(), "{:?}", p.stacks[0].actions);
    // The inputs changed: the image is built again and the container recreated.
    let mut changed = app;
    changed.build.as_mut().unwrap().digest = digest('c');
    let p = plan(&[stack("web", vec![changed])], &o, PlanOptions::default());
    let actions: Vec<String> = p.stacks[0]
        .actions
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(actions[0].starts_with("build "), "{actions:?}");
    assert!(actions[1].starts_with("recreate web_app_1"), "{actions:?}");
}

#[test]
fn a_failing_healthcheck_or_a_crash_loop_is_reported_but_not_planned() {
    use crate::core::observed::{CRASH_LOOP_RESTARTS, Health, Vitals};
    let stacks = [web()];
    let mut o = converged(&stacks);
    o.containers[0].vitals.health = Health::Unhealthy;
    o.containers[1].vitals = Vitals {
        health: Health::None,
        restarts: 1,
    };
    o.containers[1].state = RunState::Stopped;
    assert_eq!(
        states(&stacks, &o),
        [
            ("app".to_owned(), DriftState::Unhealthy),
            ("db".to_owned(), DriftState::Restarting)
        ]
    );
    // Running again after a restart is not yet a loop; often is.
    o.containers[1].state = RunState::Running;
    assert_eq!(states(&stacks, &o)[1].1, DriftState::InSync);
    o.containers[1].vitals.restarts = CRASH_LOOP_RESTARTS;
    assert_eq!(states(&stacks, &o)[1].1, DriftState::Restarting);
    // Starting and healthy are in sync; an unhealthy container that runs an
    // old definition is image drift first (the apply replaces it).
    o.containers[0].vitals.health = Health::Starting;
    assert_eq!(states(&stacks, &o)[0].1, DriftState::InSync);
    o.containers[0].vitals.health = Health::Unhealthy;
    let mut moved = web();
    moved.services[0].image = image("app", Some('c'));
    assert_eq!(
        states(&[moved], &o)[0].1,
        DriftState::ImageDrift,
        "a stale container is stale before it is unhealthy"
    );
    assert!(DriftState::Unhealthy.is_drift() && DriftState::Unhealthy.is_ailing());
}

/// A plan error is typed, and renders and serialises as the sentence the
/// plan reports (`magos plan --json` keeps its `error` string).
#[test]
fn a_plan_error_serialises_as_its_sentence() {
    let sp = StackPlan {
        project: "web".into(),
        actions: Vec::new(),
        error: Some(PlanError::MissingVolume("data".into())),
    };
    let text = "external volume `data` does not exist; create it (`podman volume create data`) or drop `external: true` so Magos creates it";
    assert_eq!(sp.error.as_ref().unwrap().to_string(), text);
    assert_eq!(
        serde_json::to_value(&sp).unwrap()["error"],
        serde_json::Value::String(text.to_owned())
    );
}
