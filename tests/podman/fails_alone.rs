//! A service Podman refuses fails alone: it and the services depending on it
//! (transitively) fail, the stack's other services converge, the error names
//! each failed service and why, and the next apply after the file is fixed
//! converges. Real `magos` binary, real rootless Podman, the test registry.

use std::path::Path;

use serde_json::Value;

use crate::applycli::{Cleanup, Repo, containers, drift_json, expect_exit, magos, pinned};
use crate::support::{self, Testbed, show, testbed};

/// `a` (refused by `extra`), `b` depending on `a`, `d` depending on `b`, and
/// `c` on its own.
fn stack(project: &str, image_a: &str, image: &str, extra_a: &str) -> String {
    let service = |name: &str, image: &str, extra: &str| {
        format!("  {name}:\n    image: {image}\n    stop_signal: SIGKILL\n{extra}")
    };
    format!(
        "name: {project}\nservices:\n{}{}{}{}",
        service("a", image_a, extra_a),
        service("b", image, "    depends_on: [a]\n"),
        service("d", image, "    depends_on: [b]\n"),
        service("c", image, ""),
    )
}

fn running(tb: &Testbed, name: &str) -> bool {
    let o = tb.podman_cli(&["inspect", "--format", "{{.State.Running}}", name]);
    o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "true"
}

/// Applies the broken stack, checks that only `c` runs and that the error names
/// `a` (with `why`), `b` and `d`; then applies `fixed` and checks convergence.
fn fails_alone_then_converges(
    tb: &Testbed,
    repo: &Repo,
    project: &str,
    broken: &str,
    fixed: &str,
    why: &str,
) {
    repo.write(tb, "app/compose.yaml", broken);
    let o = magos(tb, repo, None, &["apply", "--output", "json"]);
    expect_exit(&o, 2);
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    let error = report["stacks"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("3 service(s) failed")
            && error.contains("service `a`: ")
            && error.contains(why)
            && error.contains("service `b`: dependency `a` failed")
            && error.contains("service `d`: dependency `b` failed")
            && !error.contains("`c`"),
        "{}",
        show(&o)
    );
    assert!(running(tb, &format!("{project}_c_1")), "{}", show(&o));
    let made = containers(tb, project);
    for name in ["a", "b", "d"] {
        assert!(
            !made.contains_key(&format!("{project}_{name}_1")),
            "{name} exists: {made:?}\n{}",
            show(&o)
        );
    }
    // Drift says the same: c in sync, the others missing.
    let (code, d) = drift_json(tb, repo);
    assert_eq!(code, 1);
    assert_eq!(d[&(project.to_owned(), "c".to_owned())]["state"], "in_sync");
    assert_eq!(d[&(project.to_owned(), "a".to_owned())]["state"], "missing");

    // Fixed: the next apply converges and leaves c alone.
    let c_id = made[&format!("{project}_c_1")].clone();
    repo.write(tb, "app/compose.yaml", fixed);
    let o = magos(tb, repo, None, &["apply", "--output", "json"]);
    expect_exit(&o, 0);
    for name in ["a", "b", "c", "d"] {
        assert!(
            running(tb, &format!("{project}_{name}_1")),
            "{name}: {}",
            show(&o)
        );
    }
    assert_eq!(containers(tb, project)[&format!("{project}_c_1")], c_id);
    let (code, _) = drift_json(tb, repo);
    assert_eq!(code, 0);
}

/// Podman refuses to bind a host path that does not exist (one Magos does not
/// create: outside the stack's folder and the home folder, like a missing
/// `/var/run/docker.sock`): `a` fails at create. The path is the test's own,
/// so no other test's host setup can make it exist.
#[test]
fn a_service_podman_refuses_fails_alone_with_its_dependents() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("alone-refused");
    let missing = format!("/run/magos-absent-{project}.sock");
    assert!(!Path::new(&missing).exists(), "{missing} must not exist");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let image = pinned(
        tb,
        &format!("{}:1.0.0", tb.require("MAGOS_TEST_IMAGE_SEMVER")),
    );
    let sock = format!("    volumes: [\"{missing}:/var/run/docker.sock\"]\n");
    fails_alone_then_converges(
        tb,
        &repo,
        &project,
        &stack(&project, &image, &image, &sock),
        &stack(&project, &image, &image, ""),
        &missing,
    );
}

/// An image the registry does not have fails the services that run it (and
/// their dependents); the pull of the other image still happens.
#[test]
fn an_image_that_cannot_be_pulled_fails_its_services_alone() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("alone-pull");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let image = pinned(
        tb,
        &format!("{}:1.0.0", tb.require("MAGOS_TEST_IMAGE_SEMVER")),
    );
    let missing = format!("{}/magos/{project}:1", tb.registry);
    fails_alone_then_converges(
        tb,
        &repo,
        &project,
        &stack(&project, &missing, &image, ""),
        &stack(&project, &image, &image, ""),
        &format!("pull {missing}"),
    );
}
