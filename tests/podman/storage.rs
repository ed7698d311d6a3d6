//! Volumes, mounts, networks, secrets and podman-compose's `x-podman` keys,
//! applied natively by `magos apply` and checked in the running containers: a
//! missing relative bind folder created, an anonymous volume named as
//! podman-compose names it, a `:Z` named volume, fixed subnets, addresses and
//! MACs, external and environment secrets, UID maps and `no_hosts`.

use std::process::{Command, Output};

use serde_json::Value;

use crate::applycli::{Cleanup, Repo, expect_exit, pinned};
use crate::support::{self, Testbed, show, testbed};

/// `magos apply` as [`crate::applycli::magos`] runs it, with `extra` in its
/// environment.
fn apply(tb: &Testbed, repo: &Repo, extra: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_magos"))
        .arg("--config")
        .arg(&repo.config)
        .args(["apply", "--output", "json"])
        .arg("--repo")
        .arg(repo.path())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", "/root")
        .env("CONTAINER_HOST", &tb.container_host)
        .env("NO_COLOR", "1")
        .envs(extra.iter().copied())
        .output()
        .expect("run magos")
}

fn inspect(tb: &Testbed, name: &str) -> Value {
    let out = tb.podman_ok(&["inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

fn exec(tb: &Testbed, name: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", name];
    args.extend_from_slice(cmd);
    tb.podman_ok(&args)
}

/// Removes a Podman secret whatever the outcome.
struct SecretCleanup<'a>(&'a Testbed, Vec<String>);

impl Drop for SecretCleanup<'_> {
    fn drop(&mut self) {
        for s in &self.1 {
            let _ = self.0.podman_cli(&["secret", "rm", s]);
        }
    }
}

#[test]
fn volumes_networks_secrets_and_x_podman_keys_reach_the_containers() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("storage");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let external = format!("{project}-ext");
    let from_env = format!("{project}_token");
    let _secrets = SecretCleanup(tb, vec![external.clone(), from_env.clone()]);
    let secret_file = tb.user_dir("magos-storage-secret");
    let ext_value = "external-secret-value";
    std::fs::write(secret_file.path().join("v"), ext_value).unwrap();
    tb.podman_ok(&[
        "secret",
        "create",
        &external,
        &secret_file.path().join("v").display().to_string(),
    ]);
    let env_value = format!("env-secret-{}", std::process::id());
    let octet = 100 + (std::process::id() % 150);
    let subnet = format!("10.251.{octet}.0/24");
    let image = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let repo = Repo::new(tb, &project);
    let yaml = format!(
        "name: {project}
services:
  web:
    image: {image}
    stop_signal: SIGKILL
    volumes:
      - ./data/sub:/app/data
      - /var/www/html
      - db:/db:Z
      - type: volume
        source: db
        target: /nocopy
        volume: {{nocopy: true}}
      - scratch:/scratch
    networks:
      front:
        ipv4_address: 10.251.{octet}.10
        mac_address: \"02:42:0a:fb:{octet:02x}:0a\"
      back:
    secrets:
      - old
      - source: token
        target: token
    x-podman.no_hosts: true
  mapped:
    image: {image}
    stop_signal: SIGKILL
    network_mode: none
    x-podman.uidmaps: [\"0:1:1\", \"999:0:1\"]
    x-podman.gidmaps: [\"0:1:1\", \"999:0:1\"]
volumes:
  db:
  scratch:
    driver_opts: {{type: tmpfs, device: tmpfs, o: size=4m}}
    labels: {{kind: scratch}}
networks:
  back:
    internal: true
    driver_opts: {{mtu: 1400}}
    x-podman.disable_dns: true
  front:
    ipam:
      config:
        - subnet: {subnet}
          gateway: 10.251.{octet}.1
          ip_range: 10.251.{octet}.128/25
    labels: [tier=front]
secrets:
  old:
    external:
      name: {external}
  token:
    environment: STORAGE_TOKEN
"
    );
    repo.write(tb, "app/compose.yaml", &yaml);
    let o = apply(tb, &repo, &[("STORAGE_TOKEN", &env_value)]);
    expect_exit(&o, 0);
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    assert_eq!(report["stacks"][0]["route"], "native", "{}", show(&o));
    let printed = format!("{}{}", show(&o), String::from_utf8_lossy(&o.stdout));
    assert!(
        !printed.contains(&env_value),
        "the secret's value was printed"
    );

    let web = format!("{project}_web_1");
    let w = inspect(tb, &web);
    // The missing relative bind folder was created, and mounted.
    let data = repo.path().join("app/data/sub");
    assert!(data.is_dir(), "{} was not created", data.display());
    let mounts = w["Mounts"].as_array().unwrap();
    let by_dest = |d: &str| {
        mounts
            .iter()
            .find(|m| m["Destination"] == d)
            .unwrap_or_else(|| panic!("no mount at {d}: {mounts:?}"))
            .clone()
    };
    assert_eq!(by_dest("/app/data")["Source"], data.display().to_string());
    // The anonymous volume: podman-compose's name, the stack's labels.
    let anon = by_dest("/var/www/html")["Name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        anon.starts_with(&format!("{project}_web_")) && anon.len() == project.len() + 5 + 64,
        "{anon}"
    );
    let v: Value = serde_json::from_str(&tb.podman_ok(&["volume", "inspect", &anon])).unwrap();
    assert_eq!(
        v[0]["Labels"]["com.docker.compose.project"],
        project.as_str()
    );
    assert_eq!(by_dest("/db")["Name"], format!("{project}_db"));
    assert_eq!(by_dest("/nocopy")["Name"], format!("{project}_db"));

    // Fixed subnet, gateway, address and MAC.
    let net = format!("{project}_front");
    let n: Value = serde_json::from_str(&tb.podman_ok(&["network", "inspect", &net])).unwrap();
    assert_eq!(n[0]["subnets"][0]["subnet"], subnet.as_str());
    assert_eq!(n[0]["subnets"][0]["gateway"], format!("10.251.{octet}.1"));
    assert_eq!(
        n[0]["subnets"][0]["lease_range"]["start_ip"],
        format!("10.251.{octet}.129")
    );
    assert_eq!(n[0]["labels"]["tier"], "front");
    // `internal`, `driver_opts` and `x-podman.disable_dns` on another network.
    let back: Value =
        serde_json::from_str(&tb.podman_ok(&["network", "inspect", &format!("{project}_back")]))
            .unwrap();
    assert_eq!(back[0]["internal"], true, "{back}");
    assert_eq!(back[0]["dns_enabled"], false, "{back}");
    assert_eq!(back[0]["options"]["mtu"], "1400", "{back}");
    // A volume with the local driver's options: a 4 MiB tmpfs.
    let scratch = format!("{project}_scratch");
    let sv: Value = serde_json::from_str(&tb.podman_ok(&["volume", "inspect", &scratch])).unwrap();
    assert_eq!(sv[0]["Options"]["type"], "tmpfs", "{sv}");
    assert_eq!(sv[0]["Options"]["o"], "size=4m", "{sv}");
    assert_eq!(sv[0]["Labels"]["kind"], "scratch", "{sv}");
    let mounts_in = exec(tb, &web, &["cat", "/proc/mounts"]);
    let line = mounts_in
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/scratch"))
        .unwrap_or_default();
    assert!(
        line.contains("tmpfs") && line.contains("size=4096k"),
        "{mounts_in}"
    );
    let attached = &w["NetworkSettings"]["Networks"][&net];
    assert_eq!(attached["IPAddress"], format!("10.251.{octet}.10"));
    assert_eq!(
        attached["MacAddress"],
        format!("02:42:0a:fb:{octet:02x}:0a")
    );

    // Secrets: the external one by its name, the other from Magos's environment.
    assert_eq!(exec(tb, &web, &["cat", "/run/secrets/old"]), ext_value);
    assert_eq!(exec(tb, &web, &["cat", "/run/secrets/token"]), env_value);
    // `x-podman.no_hosts`: Podman wrote no /etc/hosts.
    assert_eq!(w["HostsPath"], "", "{}", w["HostsPath"]);

    // `x-podman.uidmaps`: the container's user namespace has those maps.
    let mapped = format!("{project}_mapped_1");
    let uid_map: Vec<Vec<String>> = exec(tb, &mapped, &["cat", "/proc/self/uid_map"])
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(uid_map, [["0", "1", "1"], ["999", "0", "1"]]);

    // Applied again, unchanged: nothing is recreated (the new fields hash as
    // they did) and the fixed subnet matches.
    let before = tb.podman_ok(&["inspect", "--format", "{{.Id}}", &web]);
    let o = apply(tb, &repo, &[("STORAGE_TOKEN", &env_value)]);
    expect_exit(&o, 0);
    assert_eq!(
        tb.podman_ok(&["inspect", "--format", "{{.Id}}", &web]),
        before
    );

    // The file changes the subnet: the stack fails, saying how to go on, and the
    // network is kept.
    repo.write(
        tb,
        "app/compose.yaml",
        &yaml.replace(&subnet, &format!("10.252.{octet}.0/24")),
    );
    let o = apply(tb, &repo, &[("STORAGE_TOKEN", &env_value)]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("podman network rm {net}")),
        "{}",
        show(&o)
    );
    assert_eq!(
        tb.podman_ok(&["inspect", "--format", "{{.Id}}", &web]),
        before
    );
}

/// A secret whose variable is not set fails its service, naming the variable.
#[test]
fn an_environment_secret_without_its_variable_fails_its_service_by_name() {
    let Some(tb) = testbed() else { return };
    let project = support::unique_name("storage-unset");
    let _cleanup = Cleanup {
        tb,
        projects: vec![project.clone()],
        names: vec![],
    };
    let image = pinned(tb, tb.require("MAGOS_TEST_IMAGE_HTTPD"));
    let repo = Repo::new(tb, &project);
    repo.write(
        tb,
        "app/compose.yaml",
        &format!(
            "name: {project}\nservices:\n  web:\n    image: {image}\n    stop_signal: SIGKILL\n    secrets: [token]\n  other:\n    image: {image}\n    stop_signal: SIGKILL\nsecrets:\n  token:\n    environment: STORAGE_UNSET_TOKEN\n"
        ),
    );
    let o = apply(tb, &repo, &[]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("service `web`") && out.contains("`STORAGE_UNSET_TOKEN`, which is not set"),
        "{}",
        show(&o)
    );
    let running = tb.podman_ok(&[
        "inspect",
        "--format",
        "{{.State.Running}}",
        &format!("{project}_other_1"),
    ]);
    assert_eq!(running.trim(), "true");
}
