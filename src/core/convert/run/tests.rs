use std::collections::BTreeMap;
use std::time::Duration;

use super::super::{Converted, EnvInputs, Route, convert};
use super::{bytes, cores, device_cgroup_rule, expose, security_opt};
use crate::core::compose::{StackSource, load};
use crate::core::diag::Severity;
use crate::core::interpolate::Vars;
use crate::core::spec::{
    ContainerImage, ContainerSpec, DependencyCondition, LogSpec, PullPolicy, RestartPolicy,
    RunSpec, SharedNamespace, UlimitSpec,
};

fn conv(yaml: &str) -> Converted {
    let loaded = load(&StackSource {
        compose: ("web/compose.yaml", yaml),
        override_file: None,
        vars: &Vars::new(),
    });
    assert!(loaded.error.is_none(), "{:?}", loaded.diagnostics);
    convert(
        &loaded,
        &super::super::tests::input(
            &EnvInputs::default(),
            None,
            &BTreeMap::new(),
            Some("/home/magos"),
        ),
    )
}

/// Converts one service that must be native and error-free.
fn run_of(service_yaml: &str) -> ContainerSpec {
    let c = conv(&format!(
        "services:\n  app:\n    image: nginx:1\n{service_yaml}  db:\n    image: nginx:1\n"
    ));
    assert_eq!(c.route, Route::Native, "{:?}", c.route);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    c.spec
        .services
        .into_iter()
        .find(|s| s.service == "app")
        .unwrap()
}

fn errors(service_yaml: &str) -> Vec<String> {
    let c = conv(&format!(
        "services:\n  app:\n    image: nginx:1\n{service_yaml}  db:\n    image: nginx:1\n"
    ));
    c.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.message.clone())
        .collect()
}

fn warnings(service_yaml: &str) -> Vec<String> {
    let c = conv(&format!(
        "services:\n  app:\n    image: nginx:1\n{service_yaml}"
    ));
    c.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| d.message.clone())
        .collect()
}

#[test]
fn expose_takes_ports_ranges_and_protocols() {
    let s = run_of("    expose: [\"3000\", 8000-8001/udp, \"3000/udp\"]\n");
    assert_eq!(
        s.run.expose,
        BTreeMap::from([
            (3000, "tcp,udp".to_owned()),
            (8000, "udp".to_owned()),
            (8001, "udp".to_owned()),
        ])
    );
    assert!(expose("0").is_err());
    assert!(expose("80/icmp").is_err());
    assert!(expose("90-80").is_err());
}

#[test]
fn sizes_and_cores_read_as_podman_reads_them() {
    assert_eq!(bytes("512m"), Ok(512 * 1024 * 1024));
    assert_eq!(bytes("1.5G"), Ok(1024 * 1024 * 1024 * 3 / 2));
    assert_eq!(bytes("128mb"), Ok(128 * 1024 * 1024));
    assert_eq!(bytes("2GiB"), Ok(2 * 1024 * 1024 * 1024));
    assert_eq!(bytes("1048576"), Ok(1_048_576));
    assert_eq!(bytes("64 k"), Ok(64 * 1024));
    assert!(bytes("lots").is_err());
    assert!(bytes("5x").is_err());
    assert!(bytes("5mbx").is_err());
    assert_eq!(cores("0.5"), Ok(500_000));
    assert_eq!(cores("2"), Ok(2_000_000));
    assert!(cores("-1").is_err());
}

#[test]
fn service_level_resource_keys() {
    let s = run_of(
        "    mem_limit: 512m\n    mem_reservation: 256m\n    memswap_limit: 1g\n    cpus: 1.5\n    cpu_shares: 512\n    cpuset: 0-1\n    pids_limit: 100\n    shm_size: 128mb\n    oom_score_adj: -500\n",
    );
    let mib = 1024 * 1024;
    assert_eq!(s.run.memory, Some(512 * mib));
    assert_eq!(s.run.memory_reservation, Some(256 * mib));
    assert_eq!(s.run.memory_swap, Some(1024 * mib));
    assert_eq!(s.run.cpus_micro, Some(1_500_000));
    assert_eq!(s.run.cpu_shares, Some(512));
    assert_eq!(s.run.cpuset.as_deref(), Some("0-1"));
    assert_eq!(s.run.pids_limit, Some(100));
    assert_eq!(s.run.shm_size, Some(128 * mib));
    assert_eq!(s.run.oom_score_adj, Some(-500));
    let s = run_of("    mem_limit: 1g\n    memswap_limit: -1\n");
    assert_eq!(s.run.memory_swap, Some(-1));
    assert!(
        errors("    mem_limit: 1g\n    memswap_limit: 512m\n")[0]
            .contains("below the memory limit")
    );
    assert!(errors("    memswap_limit: 512m\n")[0].contains("needs a memory limit"));
    assert!(errors("    oom_score_adj: 2000\n")[0].contains("-1000 to 1000"));
    assert!(errors("    cpuset: all\n")[0].contains("cpuset `all`"));
    assert!(errors("    mem_limit: big\n")[0].contains("mem_limit"));
}

#[test]
fn deploy_resources_win_over_the_service_keys_and_gpus_become_cdi_devices() {
    let s = run_of(
        "    mem_limit: 1g\n    cpus: 4\n    deploy:\n      resources:\n        limits: {memory: 1.5G, cpus: '0.5', pids: 50}\n        reservations:\n          memory: 100m\n          devices:\n            - {driver: nvidia, capabilities: [gpu]}\n",
    );
    assert_eq!(s.run.memory, Some(1024 * 1024 * 1024 * 3 / 2));
    assert_eq!(s.run.memory_reservation, Some(100 * 1024 * 1024));
    assert_eq!(s.run.cpus_micro, Some(500_000));
    assert_eq!(s.run.pids_limit, Some(50));
    assert_eq!(s.devices, ["nvidia.com/gpu=all"]);
    assert_eq!(s.run.security_opt, ["label=disable"]);
    let s = run_of(
        "    deploy:\n      resources:\n        reservations:\n          devices:\n            - {capabilities: [gpu], device_ids: ['0', '3']}\n",
    );
    assert_eq!(s.devices, ["nvidia.com/gpu=0", "nvidia.com/gpu=3"]);
    let s = run_of(
        "    deploy:\n      resources:\n        reservations:\n          devices:\n            - {driver: nvidia, capabilities: [gpu, utility], count: 2}\n",
    );
    assert_eq!(s.devices, ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
    let e = errors(
        "    deploy:\n      resources:\n        reservations:\n          devices:\n            - {driver: amd, capabilities: [gpu]}\n",
    );
    assert!(e[0].contains("driver `amd`"), "{e:?}");
    let e = errors(
        "    deploy:\n      resources:\n        reservations:\n          devices:\n            - {capabilities: [tpu]}\n",
    );
    assert!(e[0].contains("only `[gpu]`"), "{e:?}");
    let w = warnings("    deploy:\n      resources:\n        reservations: {cpus: '1'}\n");
    assert!(w[0].contains("no CPU reservation"), "{w:?}");
}

#[test]
fn deploy_restart_policy_maps_condition_and_attempts() {
    let s = run_of("    deploy:\n      restart_policy: {condition: on-failure, max_attempts: 3}\n");
    assert_eq!(s.restart, Some(RestartPolicy::OnFailure));
    assert_eq!(s.run.restart_tries, Some(3));
    let s = run_of("    deploy:\n      restart_policy: {condition: any}\n");
    assert_eq!(s.restart, Some(RestartPolicy::Always));
    let s = run_of("    deploy:\n      restart_policy: {condition: none}\n");
    assert_eq!(s.restart, Some(RestartPolicy::No));
    let w =
        warnings("    deploy:\n      restart_policy: {condition: any, delay: 5s, window: 1m}\n");
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("delay is not applied"));
    let w = warnings("    restart: always\n    deploy:\n      restart_policy: {condition: none}\n");
    assert!(w[0].contains("`restart` is applied"), "{w:?}");
    let s = run_of("    restart: on-failure:5\n");
    assert_eq!(s.restart, Some(RestartPolicy::OnFailure));
    assert_eq!(s.run.restart_tries, Some(5));
    // What `deploy` holds beyond resources and restart_policy still routes.
    let c = conv("services:\n  app:\n    image: nginx:1\n    deploy: {mode: global}\n");
    assert_eq!(
        c.route,
        Route::ComposeCli {
            keys: vec!["deploy.mode".into()],
            explicit: false
        }
    );
}

#[test]
fn flags_sysctls_and_ulimits() {
    let s = run_of(
        "    privileged: true\n    init: true\n    tty: true\n    stdin_open: true\n    sysctls:\n      net.core.somaxconn: 1024\n      net.ipv4.tcp_syncookies: 0\n    ulimits:\n      nproc: 65535\n      nofile: {soft: 20000, hard: 40000}\n",
    );
    assert!(s.run.privileged && s.run.tty && s.run.stdin_open);
    assert_eq!(s.run.init, Some(true));
    assert_eq!(
        s.run.sysctls,
        BTreeMap::from([
            ("net.core.somaxconn".to_owned(), "1024".to_owned()),
            ("net.ipv4.tcp_syncookies".to_owned(), "0".to_owned()),
        ])
    );
    assert_eq!(
        s.run.ulimits,
        BTreeMap::from([
            (
                "nofile".to_owned(),
                UlimitSpec {
                    soft: 20000,
                    hard: 40000
                }
            ),
            (
                "nproc".to_owned(),
                UlimitSpec {
                    soft: 65535,
                    hard: 65535
                }
            ),
        ])
    );
    let s = run_of("    sysctls:\n      - net.ipv4.conf.all.src_valid_mark=1\n    init: false\n");
    assert_eq!(
        s.run.sysctls,
        BTreeMap::from([(
            "net.ipv4.conf.all.src_valid_mark".to_owned(),
            "1".to_owned()
        )])
    );
    assert_eq!(s.run.init, Some(false));
    assert!(errors("    ulimits: {nofiles: 5}\n")[0].contains("not a resource limit"));
    assert!(errors("    ulimits: {nofile: {soft: 9, hard: 5}}\n")[0].contains("above the hard"));
    assert!(errors("    tty: maybe\n")[0].contains("tty `maybe`"));
    assert!(errors("    sysctls: [net.core.somaxconn]\n")[0].contains("has no value"));
}

/// podman-compose's text forms of `ulimits:` (its `ulimit` integration test):
/// one `name=value`, or a list of `name=soft[:hard]`.
#[test]
fn ulimits_in_the_podman_text_forms() {
    let one = |soft, hard| UlimitSpec { soft, hard };
    let s = run_of("    ulimits: nofile=1001\n");
    assert_eq!(
        s.run.ulimits,
        BTreeMap::from([("nofile".to_owned(), one(1001, 1001))])
    );
    let s = run_of("    ulimits:\n      - nproc=1002:2002\n      - nofile=1002\n");
    assert_eq!(
        s.run.ulimits,
        BTreeMap::from([
            ("nofile".to_owned(), one(1002, 1002)),
            ("nproc".to_owned(), one(1002, 2002)),
        ])
    );
    assert!(
        errors("    ulimits: [nofile]\n")[0].contains("ulimits `nofile` is not `name=soft[:hard]`")
    );
    assert!(errors("    ulimits: [nofiles=5]\n")[0].contains("not a resource limit"));
    assert!(errors("    ulimits: nofile=9:5\n")[0].contains("above the hard"));
    assert!(errors("    ulimits: [nofile=x]\n")[0].contains("not a number"));
}

#[test]
fn security_options_are_checked_and_normalised() {
    let s = run_of(
        "    security_opt:\n      - seccomp:./default.json\n      - label=disable\n      - no-new-privileges:true\n      - apparmor=unconfined\n",
    );
    assert_eq!(
        s.run.security_opt,
        [
            "seccomp=/repo/web/default.json",
            "label=disable",
            "no-new-privileges=true",
            "apparmor=unconfined"
        ]
    );
    assert_eq!(
        security_opt("no-new-privileges", "/d"),
        Ok("no-new-privileges=true".into())
    );
    assert_eq!(
        security_opt("seccomp=unconfined", "/d"),
        Ok("seccomp=unconfined".into())
    );
    assert_eq!(
        security_opt("label:type:spc_t", "/d"),
        Ok("label=type:spc_t".into())
    );
    assert!(security_opt("label=bogus", "/d").is_err());
    assert!(security_opt("credentialspec=file://x", "/d").is_err());
    assert!(errors("    security_opt: [foo]\n")[0].contains("security_opt `foo`"));
}

#[test]
fn namespaces_name_services_and_are_checked() {
    let s = run_of("    pid: host\n    ipc: service:db\n    userns_mode: keep-id:uid=1000\n");
    assert_eq!(s.run.pid, Some(SharedNamespace::Host));
    assert_eq!(s.run.ipc, Some(SharedNamespace::Service("db".into())));
    assert_eq!(s.run.userns.as_deref(), Some("keep-id:uid=1000"));
    let s = run_of("    pid: service:db\n    ipc: shareable\n");
    assert_eq!(s.run.pid, Some(SharedNamespace::Service("db".into())));
    assert_eq!(s.run.ipc, Some(SharedNamespace::Mode("shareable".into())));
    let s = run_of("    pid: container:other\n    ipc: host\n");
    assert_eq!(s.run.pid, Some(SharedNamespace::Container("other".into())));
    assert_eq!(s.run.ipc, Some(SharedNamespace::Host));
    assert!(errors("    pid: service:nope\n")[0].contains("`nope`, which is not in the stack"));
    assert!(errors("    ipc: weird\n")[0].contains("ipc `weird`"));
    assert!(errors("    userns_mode: mine\n")[0].contains("userns_mode `mine`"));
}

#[test]
fn logging_platform_pull_policy_dns_and_annotations() {
    let s = run_of(
        "    logging:\n      driver: k8s-file\n      options: {max-size: 10m, path: /tmp/x.log, tag: web}\n    platform: linux/arm64/v8\n    pull_policy: always\n    dns_search: [a.lan, b.lan]\n    dns_opt: [ndots:2]\n    annotations: {run.oci.keep_original_groups: '1'}\n    group_add: [wheel, 1000]\n    device_cgroup_rules: ['c 1:3 mr', 'a *:* rwm']\n",
    );
    assert_eq!(
        s.run.logging,
        Some(LogSpec {
            driver: Some("k8s-file".into()),
            path: Some("/tmp/x.log".into()),
            max_size: Some(10_000_000),
            options: BTreeMap::from([("tag".to_owned(), "web".to_owned())]),
        })
    );
    assert_eq!(s.run.platform.as_deref(), Some("linux/arm64/v8"));
    assert_eq!(s.run.pull_policy, Some(PullPolicy::Always));
    assert_eq!(s.run.dns_search, ["a.lan", "b.lan"]);
    assert_eq!(s.run.dns_opt, ["ndots:2"]);
    assert_eq!(
        s.run.annotations,
        BTreeMap::from([("run.oci.keep_original_groups".to_owned(), "1".to_owned())])
    );
    assert_eq!(s.run.group_add, ["wheel", "1000"]);
    assert_eq!(s.run.device_cgroup_rules, ["c 1:3 mr", "a *:* rwm"]);
    // freshrss: options without a driver keep Podman's default driver.
    let s = run_of("    logging:\n      options:\n        max-size: 10m\n");
    assert_eq!(s.run.logging.as_ref().unwrap().driver, None);
    for (policy, expected) in [
        ("never", Some(PullPolicy::Never)),
        ("missing", None),
        ("if_not_present", None),
    ] {
        let s = run_of(&format!("    pull_policy: {policy}\n"));
        assert_eq!(s.run.pull_policy, expected, "{policy}");
    }
    assert!(warnings("    pull_policy: daily\n")[0].contains("applied as `missing`"));
    assert!(errors("    pull_policy: build\n")[0].contains("has no `build:`"));
    assert!(errors("    pull_policy: sometimes\n")[0].contains("`sometimes`"));
    assert!(errors("    platform: amd64\n")[0].contains("os/arch"));
    assert!(device_cgroup_rule("c 1:3").is_err());
    assert!(device_cgroup_rule("x 1:3 r").is_err());
    assert!(device_cgroup_rule("c 1:3 rx").is_err());
}

#[test]
fn domainname_is_reported() {
    let w = warnings("    domainname: example.lan\n");
    assert!(
        w[0].contains("domainname `example.lan` is not applied"),
        "{w:?}"
    );
}

#[test]
fn links_are_dependencies_and_aliases_of_the_linked_service() {
    let c = conv(
        "services:\n  app:\n    image: nginx:1\n    links: [db:database, cache]\n  db:\n    image: nginx:1\n  cache:\n    image: nginx:1\n",
    );
    assert_eq!(c.route, Route::Native);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let by = |n: &str| c.spec.services.iter().find(|s| s.service == n).unwrap();
    let deps: Vec<(&str, DependencyCondition)> = by("app")
        .depends_on
        .iter()
        .map(|d| (d.service.as_str(), d.condition))
        .collect();
    assert_eq!(
        deps,
        [
            ("db", DependencyCondition::ServiceStarted),
            ("cache", DependencyCondition::ServiceStarted)
        ]
    );
    assert_eq!(by("db").networks["web_default"], ["database"]);
    assert!(by("cache").networks["web_default"].is_empty());
    assert!(by("app").networks["web_default"].is_empty());
    assert!(errors("    links: [nope]\n")[0].contains("service `nope` is not in the stack"));
}

#[test]
fn healthcheck_disable_false_without_test_keeps_the_image_check() {
    // immich's `healthcheck: {disable: false}`.
    let s = run_of("    healthcheck:\n      disable: false\n");
    assert_eq!(s.healthcheck, None);
    let w = warnings("    healthcheck: {interval: 5s}\n");
    assert!(w[0].contains("no `test`"), "{w:?}");
    let s = run_of(
        "    healthcheck:\n      test: [CMD, 'true']\n      start_period: 30s\n      start_interval: 2s\n",
    );
    let h = s.healthcheck.unwrap();
    assert_eq!(h.start_interval, Some(Duration::from_secs(2)));
    assert_eq!(h.start_period, Some(Duration::from_secs(30)));
}

#[test]
fn a_spec_without_run_settings_hashes_as_before() {
    // The hash of a spec that uses none of these keys, as Magos computed it
    // before they existed: upgrading must not recreate running containers.
    let image = ContainerImage {
        reference: "nginx:1.27".into(),
        qualified: "docker.io/library/nginx:1.27".into(),
        digest: None,
    };
    let mut spec = ContainerSpec::new("web", "app", image);
    let before = spec.config_hash();
    let json = serde_json::to_string(&spec).unwrap();
    assert!(!json.contains("\"run\""), "{json}");
    assert_eq!(
        before,
        "ca23f588b6c16d1b6b797787096ae5119efd3c0a6dece1bf1aa588ea21b5bf6a"
    );
    spec.run = RunSpec::default();
    assert_eq!(spec.config_hash(), before);
    spec.run.tty = true;
    assert_ne!(spec.config_hash(), before);
}

#[test]
fn the_run_keys_are_native() {
    let c = conv(
        "services:\n  app:\n    image: nginx:1\n    expose: ['80']\n    shm_size: 64m\n    sysctls: {net.core.somaxconn: 1024}\n    ulimits: {nofile: 1024}\n    privileged: false\n    logging: {driver: journald}\n    links: [db]\n    deploy: {resources: {limits: {memory: 1g}}, restart_policy: {condition: any}}\n  db:\n    image: nginx:1\n",
    );
    assert_eq!(c.route, Route::Native);
}

#[test]
fn the_run_keys_are_listed_as_applied_and_belong_to_the_specification() {
    use crate::core::compose::run::RUN_KEYS;
    use crate::core::compose::{SERVICE_KEYS, SPEC_SERVICE_KEYS};
    for k in RUN_KEYS {
        assert!(!SERVICE_KEYS.contains(k), "{k} is listed twice");
        assert!(SPEC_SERVICE_KEYS.contains(k), "{k} is not a compose key");
    }
}
