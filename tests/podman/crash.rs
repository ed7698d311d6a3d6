//! Every point where a recreate can be interrupted converges on the next
//! `magos apply`. A recreate creates `<name>_magos-next`, stops and removes the
//! old container, renames the replacement and starts it; each test case puts
//! real Podman containers in the state a kill at one of those points leaves
//! (by hand, as the test user: clone, stop, remove, rename), then checks that
//! `magos drift` reports the service (never the temporary name) as drifted,
//! `magos apply` succeeds and `magos drift` exits 0.

use std::collections::BTreeMap;

use crate::applycli::{Cleanup, Repo, containers, drift_json, expect_exit, magos, pinned};
use crate::support::{self, Testbed, show, testbed};

fn stack(tb: &Testbed, project: &str, version: &str) -> String {
    let semver = tb.require("MAGOS_TEST_IMAGE_SEMVER");
    let image = pinned(tb, &format!("{semver}:{version}"));
    format!("name: {project}\nservices:\n  app:\n    image: {image}\n    stop_signal: SIGKILL\n")
}

fn id(tb: &Testbed, name: &str) -> String {
    tb.podman_ok(&["inspect", "--format", "{{.Id}}", name])
        .trim()
        .to_owned()
}

/// Which container the service runs once the next apply is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// The replacement the interrupted apply created (the replacement was finished).
    WithReplacement,
    /// A new one (the leftover was out of date).
    WithNew,
}

/// One crash point: the podman commands that turn "old container `{name}`
/// running 1.0.0, replacement `{next}` created for 1.2.0" into the state the
/// crash leaves, the drift state reported for `app` before the apply, and how
/// the apply ends.
struct Case {
    what: &'static str,
    commands: &'static [&'static [&'static str]],
    drift: &'static str,
    ends: Ends,
}

const CASES: &[Case] = &[
    Case {
        what: "killed after creating the replacement",
        commands: &[],
        drift: "interrupted",
        ends: Ends::WithReplacement,
    },
    Case {
        what: "killed after stopping the old container",
        commands: &[&["stop", "-t", "0", "{name}"]],
        drift: "interrupted",
        ends: Ends::WithReplacement,
    },
    Case {
        what: "killed after removing the old container",
        commands: &[&["rm", "-f", "-t", "0", "{name}"]],
        drift: "interrupted",
        ends: Ends::WithReplacement,
    },
    Case {
        what: "killed after renaming the replacement, before starting it",
        commands: &[
            &["rm", "-f", "-t", "0", "{name}"],
            &["rename", "{next}", "{name}"],
        ],
        drift: "stopped",
        ends: Ends::WithReplacement,
    },
    Case {
        what: "an out-of-date replacement, the old container removed",
        commands: &[
            &["rm", "-f", "-t", "0", "{next}"],
            &["stop", "-t", "0", "{name}"],
            &["rename", "{name}", "{next}"],
        ],
        drift: "interrupted",
        ends: Ends::WithNew,
    },
    Case {
        what: "an out-of-date replacement beside a container in sync",
        commands: &[
            &["stop", "-t", "0", "{name}"],
            &["rename", "{name}", "{name}-old"],
            &["rename", "{next}", "{name}"],
            &["start", "{name}"],
            &["rename", "{name}-old", "{next}"],
        ],
        drift: "interrupted",
        ends: Ends::WithReplacement,
    },
];

#[test]
fn every_crash_point_of_a_recreate_converges_on_the_next_apply() {
    let Some(tb) = testbed() else { return };
    for case in CASES {
        crash_point(tb, case);
    }
}

fn crash_point(tb: &Testbed, case: &Case) {
    let what = case.what;
    let project = support::unique_name("crash");
    let name = format!("{project}_app_1");
    let next = magos::core::spec::replacement_name(&name);
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);

    // The old container (1.0.0), and a 1.2.0 one Magos created for the bump,
    // kept aside under another name (without pruning) while it is made.
    repo.write(tb, "app/compose.yaml", &stack(tb, &project, "1.0.0"));
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    let aside = format!("{name}-aside");
    tb.podman_ok(&["rename", &name, &aside]);
    repo.write(tb, "app/compose.yaml", &stack(tb, &project, "1.2.0"));
    expect_exit(&magos(tb, &repo, None, &["apply", "--no-prune"]), 0);
    // The replacement as a recreate creates it: the same definition, created,
    // not started, under the temporary name.
    tb.podman_ok(&["container", "clone", &name, &next]);
    tb.podman_ok(&["rm", "-f", "-t", "0", &name]);
    tb.podman_ok(&["rename", &aside, &name]);
    let (old_id, next_id) = (id(tb, &name), id(tb, &next));

    for command in case.commands {
        let args: Vec<String> = command
            .iter()
            .map(|a| a.replace("{name}", &name).replace("{next}", &next))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tb.podman_ok(&args);
    }

    // Drift names the service, never the temporary container, and no orphan.
    let (code, entries) = drift_json(tb, &repo);
    assert_eq!(code, 1, "{what}: {entries:?}");
    let app = &entries[&(project.clone(), "app".to_owned())];
    assert_eq!(app["state"], case.drift, "{what}: {app}");
    assert!(
        entries.values().all(|e| e["state"] != "orphan"
            && !e["container"]
                .as_str()
                .unwrap_or("")
                .contains("_magos-next")),
        "{what}: {entries:?}"
    );

    let applied = magos(tb, &repo, None, &["apply"]);
    assert_eq!(applied.status.code(), Some(0), "{what}: {}", show(&applied));
    let (code, entries) = drift_json(tb, &repo);
    assert_eq!(code, 0, "{what}: {entries:?}");

    let now: BTreeMap<String, String> = containers(tb, &project);
    assert_eq!(
        now.keys().collect::<Vec<_>>(),
        [&name],
        "{what}: one container, under the service's name"
    );
    let running = tb.podman_ok(&["inspect", "--format", "{{.State.Running}}", &name]);
    assert_eq!(running.trim(), "true", "{what}");
    let final_id = id(tb, &name);
    match case.ends {
        Ends::WithReplacement => assert_eq!(
            final_id, next_id,
            "{what}: not finished with the replacement"
        ),
        Ends::WithNew => assert!(
            final_id != next_id && final_id != old_id,
            "{what}: the out-of-date container was kept"
        ),
    }
}
