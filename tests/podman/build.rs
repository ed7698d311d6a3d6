//! `build:` applied natively: the context sent to Podman's build endpoint as a
//! tar (`.dockerignore` respected), the image tagged as podman-compose tags it,
//! built again only when the build's inputs change, and a failed step named
//! with its service and Dockerfile line.

use crate::applycli::{Cleanup, Repo, containers, drift_json, expect_exit, magos};
use crate::support::{self, Testbed, show, testbed};

fn exec(tb: &Testbed, name: &str, script: &str) -> String {
    tb.podman_ok(&["exec", name, "sh", "-c", script])
        .trim()
        .to_owned()
}

#[test]
fn build_is_applied_natively_and_rebuilt_only_when_its_inputs_change() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("build");
    // Removes the project's containers and the image `<project>_app`.
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let repo = Repo::new(tb, &project);
    let base = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    repo.write(
        tb,
        "web/app/Dockerfile",
        &format!(
            "FROM {base}\nARG GREETING\nCOPY hello.txt /hello.txt\nCOPY . /ctx\nRUN echo \"$GREETING\" > /greeting\n"
        ),
    );
    repo.write(tb, "web/app/hello.txt", "one\n");
    repo.write(tb, "web/app/private.txt", "not sent\n");
    repo.write(tb, "web/app/.dockerignore", "private.txt\n");
    repo.write(
        tb,
        "web/compose.yaml",
        &format!(
            "name: {project}\nservices:\n  app:\n    build:\n      context: ./app\n      args: {{GREETING: hi}}\n    stop_signal: SIGKILL\n"
        ),
    );
    let image = format!("localhost/{project}_app:latest");
    let name = format!("{project}_app_1");

    let plan = magos(tb, &repo, None, &["plan"]);
    expect_exit(&plan, 1);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains(&format!("build {image} (service app)"))
            && !text.contains("podman-compose up"),
        "{}",
        show(&plan)
    );
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("STEP"),
        "the build's progress is not logged: {}",
        show(&o)
    );
    // The container runs the built image, built from the context as written.
    assert_eq!(
        tb.podman_ok(&["inspect", "--format", "{{.ImageName}}", &name])
            .trim(),
        image
    );
    assert_eq!(exec(tb, &name, "cat /hello.txt"), "one");
    assert_eq!(exec(tb, &name, "cat /greeting"), "hi");
    assert_eq!(
        exec(
            tb,
            &name,
            "test -e /ctx/private.txt && echo sent || echo left out"
        ),
        "left out"
    );
    let digest = tb.podman_ok(&[
        "image",
        "inspect",
        "--format",
        "{{index .Labels \"io.magos.build-digest\"}}",
        &image,
    ]);
    assert!(digest.trim().starts_with("sha256:"), "{digest}");
    let image_id = tb.podman_ok(&["image", "inspect", "--format", "{{.Id}}", &image]);
    let (code, d) = drift_json(tb, &repo);
    assert_eq!(code, 0, "{d:#?}");
    assert_eq!(d[&(project.clone(), "app".to_owned())]["state"], "in_sync");
    let first = containers(tb, &project);

    // Nothing changed: no build, no recreate.
    expect_exit(&magos(tb, &repo, None, &["plan"]), 0);
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 0);
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("building"),
        "a no-op apply built: {}",
        show(&o)
    );
    assert_eq!(containers(tb, &project), first, "a no-op apply recreated");
    assert_eq!(
        tb.podman_ok(&["image", "inspect", "--format", "{{.Id}}", &image]),
        image_id
    );

    // A file of the context changed: built again, and the container recreated.
    repo.write(tb, "web/app/hello.txt", "two\n");
    let plan = magos(tb, &repo, None, &["plan"]);
    expect_exit(&plan, 1);
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains(&format!("build {image}")),
        "{}",
        show(&plan)
    );
    expect_exit(&magos(tb, &repo, None, &["apply"]), 0);
    assert_eq!(exec(tb, &name, "cat /hello.txt"), "two");
    assert_ne!(containers(tb, &project), first);

    // A step that fails: the error names the service and the Dockerfile line,
    // and the running container stays.
    repo.write(
        tb,
        "web/app/Dockerfile",
        &format!("FROM {base}\nCOPY hello.txt /hello.txt\nRUN exit 3\n"),
    );
    let running = containers(tb, &project);
    let o = magos(tb, &repo, None, &["apply"]);
    expect_exit(&o, 2);
    let all = show(&o);
    assert!(
        all.contains("service `app`: building") && all.contains("web/app/Dockerfile:3"),
        "{all}"
    );
    assert_eq!(containers(tb, &project), running);
}
