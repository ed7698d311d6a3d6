use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::core::observed::{ObservedContainer, RunState};

fn unit(container: &str, deps: &[&str]) -> String {
    let mut s = String::from("[Unit]\n");
    for d in deps {
        s.push_str(&format!("Requires={d}\nAfter={d}\n"));
    }
    s + &format!("[Container]\nImage=x\nContainerName={container}\n")
}

fn files(list: &[(&str, String)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(n, t)| ((*n).to_owned(), t.clone()))
        .collect()
}

#[test]
fn the_header_names_the_instance() {
    let text = with_header("lab", "web", "[Container]\n");
    assert_eq!(instance_of(&text), Some("lab"));
    assert_eq!(instance_of("[Container]\n"), None);
    assert!(text.ends_with("\n[Container]\n"));
}

#[test]
fn quadlet_names_the_units_it_generates() {
    assert_eq!(
        service_of("web_app_1.container").unwrap(),
        "web_app_1.service"
    );
    assert_eq!(
        service_of("web_default.network").unwrap(),
        "web_default-network.service"
    );
    assert_eq!(
        service_of("web_data.volume").unwrap(),
        "web_data-volume.service"
    );
    assert_eq!(service_of("notes.txt"), None);
    assert_eq!(container_of(&unit("web_app_1", &[])), Some("web_app_1"));
    assert_eq!(container_of("[Unit]\nContainerName=no\n"), None);
}

#[test]
fn dependencies_start_first_whatever_their_names() {
    let f = files(&[
        ("a_web_1.container", unit("a_web_1", &["z_db_1.service"])),
        (
            "z_db_1.container",
            unit("z_db_1", &[]) + "Network=a_net.network\nVolume=a_data.volume:/data:Z\n",
        ),
        ("a_data.volume", "[Volume]\n".to_owned()),
        ("a_net.network", "[Network]\n".to_owned()),
        (
            "m_solo_1.container",
            unit("m_solo_1", &[]) + "Image=m_app.build\n",
        ),
        ("m_app.build", "[Build]\n".to_owned()),
    ]);
    assert_eq!(
        start_order(&f),
        [
            "a_data-volume.service",
            "a_net-network.service",
            "m_app-build.service",
            "m_solo_1.service",
            "z_db_1.service",
            "a_web_1.service"
        ]
    );
}

#[test]
fn an_unchanged_stack_in_sync_has_nothing_to_do() {
    let f = files(&[("s_a_1.container", unit("s_a_1", &[]))]);
    let p = plan_stack("s", &f, &f, &BTreeSet::new(), vec![]);
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn only_changed_units_and_stale_containers_restart_in_order() {
    let disk = files(&[
        ("s_db_1.container", unit("s_db_1", &[])),
        ("s_web_1.container", unit("s_web_1", &["s_db_1.service"])),
        ("s_old_1.container", unit("s_old_1", &[])),
    ]);
    let mut desired = disk.clone();
    desired.remove("s_old_1.container");
    desired.insert(
        "s_web_1.container".into(),
        unit("s_web_1", &["s_db_1.service"]) + "Label=x=y\n",
    );
    desired.insert("s_new_1.container".into(), unit("s_new_1", &[]));
    desired.insert("s_net.network".into(), "[Network]\n".into());
    let p = plan_stack("s", &desired, &disk, &BTreeSet::new(), vec![]);
    assert_eq!(
        p.steps(),
        [
            "stop s_old_1.service",
            "write unit file s_net.network",
            "write unit file s_new_1.container",
            "change unit file s_web_1.container",
            "remove unit file s_old_1.container",
            "start s_net-network.service",
            "restart s_new_1.service",
            "restart s_web_1.service",
        ]
    );
    // A stopped container restarts its unit though its file is unchanged.
    let stale = BTreeSet::from(["s_db_1".to_owned()]);
    let p = plan_stack("s", &desired, &disk, &stale, vec![]);
    assert_eq!(
        p.restart,
        ["s_db_1.service", "s_new_1.service", "s_web_1.service"]
    );
}

#[test]
fn containers_another_runtime_made_are_replaced_by_their_units() {
    let f = files(&[("s_a_1.container", unit("s_a_1", &[]))]);
    let container = |name: &str, labels: &[(&str, &str)]| ObservedContainer {
        id: format!("id-{name}"),
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        state: RunState::Running,
        image_id: String::new(),
        image_digest: None,
        vitals: Default::default(),
    };
    let observed = Observed {
        containers: vec![
            container("s_a_1", &[(LABEL_PROJECT, "s")]),
            container("s_b_1", &[(LABEL_PROJECT, "s")]),
        ],
        ..Observed::default()
    };
    let moved = made_elsewhere("s", &f, &observed);
    assert_eq!(moved, ["s_a_1"]);
    let p = plan_stack("s", &f, &f, &BTreeSet::new(), moved);
    assert_eq!(
        p.steps(),
        [
            "remove container s_a_1 (made by another runtime)",
            "restart s_a_1.service"
        ]
    );
    let by_unit = Observed {
        containers: vec![container(
            "s_a_1",
            &[(LABEL_PROJECT, "s"), (LABEL_SYSTEMD_UNIT, "s_a_1.service")],
        )],
        ..Observed::default()
    };
    assert!(made_elsewhere("s", &f, &by_unit).is_empty());
}

#[test]
fn a_retired_stack_stops_dependents_first_and_removes_every_file() {
    let disk = files(&[
        ("s_db_1.container", unit("s_db_1", &[])),
        ("s_web_1.container", unit("s_web_1", &["s_db_1.service"])),
    ]);
    let p = retire_stack("s", &disk);
    assert_eq!(p.stop, ["s_web_1.service", "s_db_1.service"]);
    assert!(p.restart.is_empty());
    assert!(p.files.iter().all(|f| f.change == Change::Remove));
}
