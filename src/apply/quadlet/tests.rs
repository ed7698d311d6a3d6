use std::collections::BTreeSet;
use std::path::PathBuf;

use super::*;
use crate::core::spec::StackSpec;

fn stack(project: &str, error: Option<&str>) -> Prepared {
    Prepared {
        dir: project.to_owned(),
        project: project.to_owned(),
        files: vec![],
        abs_dir: PathBuf::from("/repo").join(project),
        spec: StackSpec {
            project: project.to_owned(),
            instance: "lab".to_owned(),
            working_dir: format!("/repo/{project}"),
            config_files: vec![format!("{project}/compose.yaml")],
            networks: vec![],
            volumes: vec![],
            services: vec![],
        },
        route: Route::Native,
        error: error.map(|e| crate::apply::repo::PrepareError::Held(e.to_owned())),
        sealed: Default::default(),
        observe: false,
        profiles: vec![],
        sites: Default::default(),
        soak: Default::default(),
    }
}

fn unit(instance: Option<&str>, stack: &str) -> String {
    let body = "[Container]\nImage=x\nContainerName=c\n";
    match instance {
        Some(i) => unitplan::with_header(i, stack, body),
        None => body.to_owned(),
    }
}

/// Which stacks lose their units: only this instance's, never a failed
/// stack's, never a file without Magos's header.
#[test]
fn only_this_instances_units_of_stacks_it_no_longer_runs_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = UnitDirs::at(tmp.path().join("magos"), true);
    for (stack, instance) in [
        ("gone", Some("lab")),
        ("broken", Some("lab")),
        ("other", Some("elsewhere")),
        ("hand", None),
        ("live", Some("lab")),
    ] {
        dirs.write(
            stack,
            &format!("{stack}-c.container"),
            &unit(instance, stack),
        )
        .unwrap();
    }
    let stacks = vec![
        stack("broken", Some("cannot be loaded")),
        stack("live", None),
    ];
    let skip = BTreeSet::new();
    let scope = Scope {
        instance: "lab",
        skip: &skip,
        only: None,
        unnamed: &[],
    };
    let retired = |run: bool, desired: &Desired| -> Vec<String> {
        plans(
            &stacks,
            scope,
            &dirs,
            desired,
            &Observed::default(),
            &Plan::default(),
            run,
        )
        .unwrap()
        .into_iter()
        .filter(|p| p.files.iter().all(|f| f.change == Change::Remove))
        .map(|p| p.stack)
        .collect()
    };
    // Under another runtime every unit of this instance goes, but a failed
    // stack's.
    assert_eq!(retired(false, &Desired::new()), ["gone", "live"]);
    // Under quadlet the stacks it runs keep theirs (here: generated as none,
    // so `live`'s file is one the repository no longer generates).
    let desired = desired(&stacks, "lab", true, None);
    assert!(desired["live"].as_ref().unwrap().is_empty());
    assert!(!desired.contains_key("broken"));
    assert_eq!(retired(true, &desired), ["live", "gone"]);
    // With --stack, only that stack is touched.
    let only = Scope {
        only: Some("live"),
        ..scope
    };
    let stacks_live = vec![stack("live", None)];
    let p = plans(
        &stacks_live,
        only,
        &dirs,
        &Desired::new(),
        &Observed::default(),
        &Plan::default(),
        false,
    )
    .unwrap();
    assert_eq!(
        p.iter().map(|p| p.stack.as_str()).collect::<Vec<_>>(),
        ["live"]
    );
}
