//! Stacks applied through Docker Engine: the scenarios of the Podman tests
//! (a multi-service stack with a network, a volume, a healthcheck and
//! `depends_on: service_healthy`; a second apply that changes nothing; a pin
//! bump that recreates one service; drift states; orphans pruned; a bystander
//! untouched) and `docker compose` seeing Magos's containers as its own.

use std::time::Duration;

use crate::support::{Repo, bed, curl, free_port};

const WAIT: Duration = Duration::from_secs(60);

fn line_of<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with `{needle}` in:\n{text}"))
}

#[test]
fn a_stack_with_a_network_a_volume_and_a_healthy_dependency_serves_and_a_second_apply_changes_nothing()
 {
    let Some(bed) = bed() else { return };
    let project = "magosdk-stack";
    let repo = Repo::new(bed, "dk-stack", &[project]);
    let httpd = bed.pinned("magos/httpd", "1");
    let port = free_port();
    repo.write(
        &format!("{project}/compose.yaml"),
        &format!(
            r#"services:
  db:
    image: {httpd}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 60
    volumes:
      - data:/data
    networks: [back]
  web:
    image: {httpd}
    # Fetches db's page by its service name over the stack's network first.
    command: ["sh", "-c", "wget -q -O /www/db.html http://db:8080/ && exec httpd -f -p 8080 -h /www"]
    ports:
      - "127.0.0.1:{port}:8080"
    depends_on:
      db:
        condition: service_healthy
    networks: [back]
networks:
  back: {{}}
volumes:
  data: {{}}
"#
        ),
    );
    let out = repo.magos_exit(&["apply"], 0);
    assert!(out.contains("create magosdk-stack-db-1"), "{out}");
    assert!(out.contains("create magosdk-stack-web-1"), "{out}");

    let page = curl(port, WAIT).expect("web answers on 127.0.0.1");
    assert!(page.contains("magos test bed"), "{page}");
    // web started only once db was healthy, and reached it by name.
    let from_db = std::process::Command::new("curl")
        .args([
            "-sf",
            "-m",
            "5",
            &format!("http://127.0.0.1:{port}/db.html"),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&from_db.stdout).contains("magos test bed"),
        "db.html: {}",
        crate::support::show(&from_db)
    );
    let health = bed.docker_ok(&[
        "inspect",
        "-f",
        "{{.State.Health.Status}}",
        "magosdk-stack-db-1",
    ]);
    assert_eq!(health.trim(), "healthy");

    // docker compose sees the project's containers, network and volume as its own.
    let services = bed.docker_ok(&["compose", "-p", project, "ps", "--services"]);
    let mut services: Vec<&str> = services.lines().collect();
    services.sort_unstable();
    assert_eq!(services, ["db", "web"]);
    let volume = bed.docker_ok(&[
        "volume",
        "inspect",
        "-f",
        "{{index .Labels \"com.docker.compose.volume\"}} {{index .Labels \"com.docker.compose.project\"}}",
        "magosdk-stack_data",
    ]);
    assert_eq!(volume.trim(), format!("data {project}"));
    let network = bed.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{index .Labels \"com.docker.compose.network\"}}",
        "magosdk-stack_back",
    ]);
    assert_eq!(network.trim(), "back");
    let oneoff = bed.docker_ok(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"com.docker.compose.oneoff\"}}",
        "magosdk-stack-web-1",
    ]);
    assert_eq!(oneoff.trim(), "False");

    // A second apply changes no container.
    let before = bed.containers(project);
    assert_eq!(before.len(), 2, "{before:?}");
    let again = repo.magos_exit(&["apply"], 0);
    assert!(again.contains("up to date"), "{again}");
    assert_eq!(bed.containers(project), before);
    let drift = repo.magos_exit(&["drift"], 0);
    assert_eq!(
        line_of(&drift, " web ").split_whitespace().nth(2),
        Some("in_sync"),
        "{drift}"
    );
    repo.magos_exit(&["plan"], 0);
}

#[test]
fn a_pin_bump_recreates_one_service_and_drift_reports_each_state() {
    let Some(bed) = bed() else { return };
    let project = "magosdk-pin";
    let repo = Repo::new(bed, "dk-pin", &[project]);
    let old = bed.pinned("magos/semver", "1.0.0");
    let new = bed.pinned("magos/semver", "1.2.0");
    // A multi-arch index: Docker pulls the host's manifest and records the
    // index digest among the image's RepoDigests.
    let multiarch = bed.pinned("magos/multiarch", "1.0");
    let compose = |app: &str| {
        format!("services:\n  app:\n    image: {app}\n  other:\n    image: {multiarch}\n")
    };
    let file = format!("{project}/compose.yaml");
    repo.write(&file, &compose(&old));
    repo.magos_exit(&["apply"], 0);
    let drift = repo.magos_exit(&["drift"], 0);
    assert!(line_of(&drift, " other ").contains("in_sync"), "{drift}");
    let before = bed.containers(project);

    repo.write(&file, &compose(&new));
    let drift = repo.magos_exit(&["drift"], 1);
    assert!(line_of(&drift, " app ").contains("image_drift"), "{drift}");
    assert!(line_of(&drift, " other ").contains("in_sync"), "{drift}");
    let plan = repo.magos_exit(&["plan"], 1);
    assert!(plan.contains("magosdk-pin-app-1"), "{plan}");
    assert!(!plan.contains("magosdk-pin-other-1"), "{plan}");

    repo.magos_exit(&["apply"], 0);
    let after = bed.containers(project);
    assert_ne!(after["magosdk-pin-app-1"], before["magosdk-pin-app-1"]);
    assert_eq!(after["magosdk-pin-other-1"], before["magosdk-pin-other-1"]);
    assert_eq!(after.len(), 2, "{after:?}");
    let image = bed.docker_ok(&["inspect", "-f", "{{.Config.Image}}", "magosdk-pin-app-1"]);
    assert!(
        new.ends_with(image.trim().rsplit('@').next().unwrap()),
        "{image}"
    );
    repo.magos_exit(&["drift"], 0);

    // A stopped container is drift; apply starts it again, as it was.
    bed.docker_ok(&["stop", "-t", "0", "magosdk-pin-other-1"]);
    let drift = repo.magos_exit(&["drift"], 1);
    assert!(line_of(&drift, " other ").contains("stopped"), "{drift}");
    repo.magos_exit(&["apply"], 0);
    assert_eq!(bed.containers(project), after);
    repo.magos_exit(&["drift"], 0);
}

#[test]
fn orphans_are_pruned_and_a_container_without_labels_is_never_touched() {
    let Some(bed) = bed() else { return };
    let project = "magosdk-prune";
    let bystander = "magosdk-bystander";
    let _ = bed.docker(&["rm", "-f", bystander]);
    let repo = Repo::new(bed, "dk-prune", &[project]);
    let image = bed.pinned("magos/semver", "1.0.0");
    bed.docker_ok(&["run", "-d", "--name", bystander, &image]);
    let file = format!("{project}/compose.yaml");
    repo.write(
        &file,
        &format!("services:\n  a:\n    image: {image}\n  b:\n    image: {image}\n"),
    );
    repo.magos_exit(&["apply"], 0);
    let both = bed.containers(project);
    assert_eq!(both.len(), 2, "{both:?}");

    // b leaves the repository: its container is an orphan, then removed.
    repo.write(&file, &format!("services:\n  a:\n    image: {image}\n"));
    let drift = repo.magos_exit(&["drift"], 1);
    assert!(
        line_of(&drift, "magosdk-prune-b-1").contains("orphan"),
        "{drift}"
    );
    let out = repo.magos_exit(&["apply"], 0);
    assert!(out.contains("magosdk-prune-b-1"), "{out}");
    let left = bed.containers(project);
    assert_eq!(left.keys().collect::<Vec<_>>(), ["magosdk-prune-a-1"]);
    assert_eq!(left["magosdk-prune-a-1"], both["magosdk-prune-a-1"]);

    // The whole stack leaves: this instance's containers of it go too.
    repo.remove(&file);
    repo.magos_exit(&["apply"], 0);
    assert!(bed.containers(project).is_empty());

    // The container without a managed project's labels still runs.
    let state = bed.docker_ok(&["inspect", "-f", "{{.State.Status}}", bystander]);
    assert_eq!(state.trim(), "running");
    bed.docker_ok(&["rm", "-f", bystander]);
}

#[test]
fn run_time_settings_devices_and_relabelled_binds_are_applied_natively() {
    let Some(bed) = bed() else { return };
    let project = "magosdk-run";
    let repo = Repo::new(bed, "dk-run", &[project]);
    let image = bed.pinned("magos/semver", "1.0.0");
    repo.write(
        &format!("{project}/compose.yaml"),
        &format!(
            r#"services:
  app:
    image: {image}
    mem_limit: 64m
    pids_limit: 100
    ulimits:
      nofile: {{soft: 1001, hard: 2002}}
    security_opt: ["no-new-privileges:true"]
    devices: ["/dev/null:/dev/magos-null:rw"]
    volumes:
      - ./conf:/conf:ro,z
    x-podman.uidmaps: ["0:1:1"]
"#
        ),
    );
    let plan = repo.magos_exit(&["plan"], 1);
    assert!(!plan.contains("docker compose up -d"), "{plan}");
    assert!(
        plan.contains("`x-podman.uidmaps` is podman-compose's extension: Docker ignores it"),
        "{plan}"
    );
    let out = repo.magos_exit(&["apply"], 0);
    assert!(out.contains("create magosdk-run-app-1"), "{out}");
    let host = bed.docker_ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{json .HostConfig.Ulimits}} {{json .HostConfig.SecurityOpt}} {{json .HostConfig.Devices}} {{json .HostConfig.Binds}}",
        "magosdk-run-app-1",
    ]);
    let conf = repo.path().join(format!("{project}/conf"));
    assert_eq!(
        host.trim(),
        format!(
            r#"{} 100 [{{"Name":"nofile","Hard":2002,"Soft":1001}}] ["no-new-privileges=true"] [{{"PathOnHost":"/dev/null","PathInContainer":"/dev/magos-null","CgroupPermissions":"rw"}}] ["{}:/conf:ro,z"]"#,
            64 << 20,
            conf.display()
        )
    );
    let drift = repo.magos_exit(&["drift"], 0);
    assert!(line_of(&drift, " app ").contains("in_sync"), "{drift}");
    let again = repo.magos_exit(&["apply"], 0);
    assert!(again.contains("up to date"), "{again}");
}

#[test]
fn a_stack_the_docker_mapping_cannot_express_is_applied_with_docker_compose() {
    let Some(bed) = bed() else { return };
    let project = "magosdk-cli";
    let repo = Repo::new(bed, "dk-cli", &[project]);
    let image = bed.pinned("magos/semver", "1.0.0");
    // `U` (chown the volume to the user) is Podman's: docker compose ignores it.
    repo.write(
        &format!("{project}/compose.yaml"),
        &format!(
            "services:\n  app:\n    image: {image}\n    volumes: [\"data:/data:U\"]\nvolumes:\n  data: {{}}\n"
        ),
    );
    let plan = repo.magos_exit(&["plan"], 1);
    assert!(
        plan.contains(&format!("{project}: docker compose up -d")),
        "{plan}"
    );
    assert!(
        plan.contains("volumes: option `U` of a named volume"),
        "{plan}"
    );
    let out = repo.magos_exit(&["apply"], 0);
    assert!(out.contains("docker compose up -d"), "{out}");
    let mounts = bed.docker_ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}}{{end}}",
        "magosdk-cli-app-1",
    ]);
    assert_eq!(mounts.trim(), format!("{project}_data"));
    let drift = repo.magos_exit(&["drift"], 0);
    assert!(line_of(&drift, " app ").contains("in_sync"), "{drift}");
}
