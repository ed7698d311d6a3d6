//! What the two conformance tests share (`tests/podman/conformance.rs` against
//! podman-compose, `tests/docker/conformance.rs` against `docker compose`):
//! the corpus (`tests/corpus/`, its `SOURCE` notes), the route `magos plan`
//! gives a stack, the compared fields of a container's inspect (Podman's and
//! Docker's share their names), their comparison with a peer tool's, and the
//! ratchet and acceptance over the whole run.
//!
//! Each test brings its own engine side: how a stack's copy is made, how the
//! peer tool and `magos apply` run, how a project is inspected and removed, and
//! the rows of its table of listed differences ([`Peer`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

/// The variable that selects the whole corpus and the acceptance.
pub const GATE: &str = "MAGOS_CONFORMANCE";
/// The acceptance: share of compared fields that must be equal.
pub const FIELDS_EQUAL_MIN: f64 = 0.98;

/// The tool Magos is compared with, and its table of listed differences.
pub struct Peer {
    /// Its name in reports (`podman-compose`, `docker compose`).
    pub name: &'static str,
    /// The row of its table that explains why `field` of a container of a
    /// service is `peer` with the tool and `magos` with Magos, if one does
    /// exactly.
    pub listed_difference: fn(&Listed, &str, &Value, &Value) -> Option<&'static str>,
    /// The row of its table that explains why the tool made no container for
    /// a service (its output says why), if one does.
    pub listed_failure: fn(&Listed, &str) -> Option<&'static str>,
    /// Whether the acceptance asks every file without `build:` to be applied
    /// natively (Podman), or reports those the compose CLI applies
    /// (Docker, whose mapping leaves what the engine cannot express to
    /// `docker compose`).
    pub all_native: bool,
    /// Whether the tool applies podman-compose's `x-podman` extensions
    /// (`docker compose` ignores them: an `x-podman.mac_address` fixes no
    /// MAC address there).
    pub x_podman: bool,
}

/// One side of a comparison: a tool's containers of a project.
pub struct Side<'a> {
    pub project: &'a str,
    pub containers: &'a [Value],
}

/// Compares the containers the peer tool and Magos made of `stack` in
/// `folder`, pairing them by service and container number, into `out`.
pub fn compare(
    peer: &Peer,
    stack: &Stack,
    folder: &Path,
    theirs: Side<'_>,
    ours: Side<'_>,
    peer_output: &str,
    out: &mut Outcome,
) {
    let (pcs, mgs) = (by_service(theirs.containers), by_service(ours.containers));
    let keys: BTreeSet<_> = pcs.keys().chain(mgs.keys()).cloned().collect();
    let none = BTreeSet::new();
    let no_listed = Listed::default();
    let folder = folder.to_string_lossy();
    for key @ (service, number) in &keys {
        let listed = stack.listed.get(service).unwrap_or(&no_listed);
        // `xmac:<net>` (`x-podman.mac_address`) fixes the MAC address only
        // for a tool that reads the extension.
        let fixed: BTreeSet<String> = stack
            .fixed
            .get(service)
            .unwrap_or(&none)
            .iter()
            .filter_map(|f| match f.strip_prefix("xmac:") {
                Some(net) => peer.x_podman.then(|| format!("mac:{net}")),
                None => Some(f.clone()),
            })
            .collect();
        let fixed = &fixed;
        let random = stack.random_ports.get(service).unwrap_or(&none);
        let a = pcs
            .get(key)
            .map(|c| fields(c, &folder, theirs.project, fixed, random));
        let b = mgs
            .get(key)
            .map(|c| fields(c, &folder, ours.project, fixed, random));
        match (a, b) {
            (Some(a), Some(b)) => {
                for (field, va) in &a {
                    let vb = b.get(field).unwrap_or(&Value::Null);
                    if va != vb
                        && let Some(row) = (peer.listed_difference)(listed, field, va, vb)
                    {
                        out.skipped += 1;
                        out.diffs.push(format!(
                            "{service}#{number} {field}: skipped, a listed difference ({row})"
                        ));
                        continue;
                    }
                    out.compared += 1;
                    if vb == va {
                        out.equal += 1;
                    } else {
                        out.diffs.push(format!(
                            "{service}#{number} {field}: {} {} | magos {}",
                            peer.name,
                            clip(va),
                            clip(vb)
                        ));
                    }
                }
            }
            (Some(a), None) => {
                out.compared += a.len();
                out.diffs
                    .push(format!("{service}#{number}: no container from magos"));
            }
            (None, Some(b)) => match (peer.listed_failure)(listed, peer_output) {
                Some(row) => {
                    out.skipped += b.len();
                    out.diffs.push(format!(
                        "{service}#{number}: no container from {}: skipped, a listed difference ({row})",
                        peer.name
                    ));
                }
                None => {
                    out.compared += b.len();
                    out.diffs.push(format!(
                        "{service}#{number}: no container from {}",
                        peer.name
                    ));
                }
            },
            (None, None) => {}
        }
    }
}

/// The stacks a run takes: `MAGOS_CONFORMANCE_ONLY=a,b`, else every stack with
/// [`GATE`]`=1`, else the ratchet's.
pub fn selected(ratchet: &[(&str, usize)]) -> (Vec<Stack>, bool) {
    let whole = std::env::var(GATE).as_deref() == Ok("1");
    let only = std::env::var("MAGOS_CONFORMANCE_ONLY").ok();
    let stacks: Vec<Stack> = corpus()
        .into_iter()
        .filter(|s| match only.as_deref() {
            Some(o) => o.split(',').any(|x| x == s.name),
            None => whole || ratchet.iter().any(|(name, _)| *name == s.name),
        })
        .collect();
    if !whole && only.is_none() {
        assert_eq!(
            stacks.len(),
            ratchet.len(),
            "every RATCHET stack is in tests/corpus"
        );
    }
    assert!(!stacks.is_empty(), "no corpus stack selected");
    (stacks, whole)
}

/// Runs `run` on every selected stack without `build:`, prints the per-file
/// report and the score (and writes them to `MAGOS_CONFORMANCE_REPORT`), and
/// asserts the ratchet; with [`GATE`]`=1`, the acceptance too.
pub fn check(peer: &Peer, ratchet: &[(&str, usize)], mut run: impl FnMut(&Stack) -> Outcome) {
    let (stacks, whole) = selected(ratchet);
    let registry =
        std::env::var("MAGOS_TEST_REGISTRY").expect("MAGOS_TEST_REGISTRY (the test bed's env)");
    let foreign: Vec<String> = stacks
        .iter()
        .filter(|s| !s.build)
        .flat_map(|s| {
            foreign_images(s, &registry)
                .into_iter()
                .map(move |i| format!("{}: {i}", s.name))
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "corpus images not on the test bed's registry {registry} (MAGOS_TEST_REGISTRY; tests/corpus/README.md: \
         every image is swapped for the test bed's):\n{}",
        foreign.join("\n")
    );
    let mut worse = Vec::new();
    let (mut files, mut native, mut refused, mut equal, mut compared) = (0, 0, 0, 0, 0);
    let mut skipped = 0;
    let (mut invalid, mut held) = (Vec::new(), Vec::new());
    let (mut both_failed, mut cli) = (Vec::new(), Vec::new());
    let mut built = Vec::new();
    // Files whose relative bind folders were absent at `magos apply`, with them.
    let mut absent_binds = Vec::new();
    let mut absent_failed = Vec::new();
    let mut report = String::new();
    for stack in &stacks {
        if stack.build {
            built.push(stack.name.clone());
            continue;
        }
        let o = run(stack);
        let route = match &o.route {
            Route::Native => "native".to_owned(),
            Route::ComposeCli(keys) => format!("compose-cli ({})", keys.join(", ")),
            Route::Refused(e) => format!("refused ({})", e.lines().next().unwrap_or("")),
        };
        equal += o.equal;
        compared += o.compared;
        skipped += o.skipped;
        let report_line = |report: &mut String, note: &str| {
            let line = format!(
                "{}: {route}; apply {}; {} {}; fields {}/{} equal, {} skipped{note}\n",
                stack.name,
                if o.apply_ok { "ok" } else { "FAILED" },
                peer.name,
                if o.peer_ok { "ok" } else { "failed" },
                o.equal,
                o.compared,
                o.skipped,
            );
            eprint!("{line}");
            report.push_str(&line);
            for d in &o.diffs {
                let d = format!("    {d}\n");
                eprint!("{d}");
                report.push_str(&d);
            }
        };
        // A file the compose specification rejects: Magos must refuse it; it
        // is no file of the acceptance.
        if let Some(why) = &stack.invalid {
            if !matches!(o.route, Route::Refused(_)) {
                worse.push(format!(
                    "{}: not refused, but its SOURCE says it is invalid: {why}",
                    stack.name
                ));
            }
            invalid.push(stack.name.clone());
            report_line(&mut report, &format!(" (invalid: {why})"));
            continue;
        }
        // A port the test bed itself listens on (a registry's, sshd's): the
        // host cannot give it, whatever the tool; the fields still count.
        if !o.apply_ok
            && matches!(o.route, Route::Native)
            && let Some(port) = held_port(&o.apply_output)
        {
            held.push(format!("{} (port {port})", stack.name));
            report_line(&mut report, &format!(" (port {port} is the test bed's)"));
            continue;
        }
        // A port something else on the host listens on (another test's
        // container): both tools fail on it alike; the fields still count.
        if !o.apply_ok
            && !o.peer_ok
            && matches!(o.route, Route::Native)
            && let Some(port) = busy_port(&o.apply_output)
        {
            held.push(format!("{} (port {port}, in use on the host)", stack.name));
            report_line(
                &mut report,
                &format!(" (port {port} is in use on the host)"),
            );
            continue;
        }
        files += 1;
        let is_native = matches!(o.route, Route::Native) && o.apply_ok;
        if let Some((_, min)) = ratchet.iter().find(|(name, _)| *name == stack.name)
            && (!is_native || o.equal < *min)
        {
            worse.push(format!(
                "{}: native {is_native}, {} fields equal (recorded: native, {min})",
                stack.name, o.equal
            ));
        }
        native += usize::from(is_native);
        if !o.created_binds.is_empty() {
            let binds: Vec<&str> = o.created_binds.iter().map(String::as_str).collect();
            absent_binds.push(format!("{} ({})", stack.name, binds.join(", ")));
            if !is_native {
                absent_failed.push(stack.name.clone());
            }
        }
        if matches!(o.route, Route::ComposeCli(_)) {
            cli.push(stack.name.clone());
        }
        // Refused: Magos failed where the peer made containers and succeeded.
        // Where it failed too (a missing external volume, a port already
        // taken), the file cannot run here at all.
        let magos_failed = matches!(o.route, Route::Refused(_)) || !o.apply_ok;
        if magos_failed && o.peer_made > 0 && o.peer_ok {
            refused += 1;
        } else if magos_failed {
            both_failed.push(stack.name.clone());
        }
        report_line(&mut report, "");
    }
    let share = if compared == 0 {
        0.0
    } else {
        equal as f64 / compared as f64
    };
    let score = format!(
        "conformance with {}: {native}/{files} files without build: applied natively, \
         {equal}/{compared} fields equal ({:.1} %, {skipped} more skipped as listed \
         differences), {refused} refused where {} made containers; \
         through the compose CLI: {}; both failed: {}; invalid (refused, as they \
         must be): {}; a port the test bed or the host holds: {}; not applied (build:): {}; \
         relative bind sources absent at apply, created by Magos: {} files: {}",
        peer.name,
        share * 100.0,
        peer.name,
        cli.join(", "),
        both_failed.join(", "),
        invalid.join(", "),
        held.join(", "),
        built.join(", "),
        absent_binds.len(),
        absent_binds.join("; ")
    );
    eprintln!("{score}");
    if let Ok(path) = std::env::var("MAGOS_CONFORMANCE_REPORT") {
        std::fs::write(path, format!("{report}{score}\n")).expect("write the report");
    }
    assert!(
        worse.is_empty(),
        "worse than recorded:\n{}\n{score}",
        worse.join("\n")
    );
    if whole {
        if peer.all_native {
            assert_eq!(native, files, "{score}");
        }
        assert!(share >= FIELDS_EQUAL_MIN, "{score}");
        assert_eq!(refused, 0, "{score}");
        // With their relative bind folders absent, every file still applies.
        assert!(
            !absent_binds.is_empty(),
            "no corpus file had a relative bind folder to create: {score}"
        );
        assert!(
            absent_failed.is_empty(),
            "not applied with their relative bind folders absent: {}\n{score}",
            absent_failed.join(", ")
        );
    }
}

/// One corpus stack.
pub struct Stack {
    pub name: String,
    pub dir: PathBuf,
    pub build: bool,
    /// Per service, what the file fixes of its networks: `ip:<key>` (an
    /// `ipv4_address`/`ipv6_address` on network `<key>`), `mac:<key>`,
    /// `xmac:<key>` (only an `x-podman.mac_address`), or `mac:*`
    /// (`mac_address` on the service).
    pub fixed: BTreeMap<String, BTreeSet<String>>,
    /// Per service, the container ports (`8001/tcp`) published without a host
    /// port: Podman picks a free one on each run, so it is not compared.
    pub random_ports: BTreeMap<String, BTreeSet<String>>,
    /// The `SOURCE`'s `setup:` commands, `cleanup:` commands and `environment:`
    /// variables.
    pub setup: Vec<String>,
    pub cleanup: Vec<String>,
    pub environment: Vec<(String, String)>,
    /// The `SOURCE`'s `host setup:` and `host cleanup:` commands, run as root:
    /// host paths outside anything the rootless test user may create.
    pub host_setup: Vec<String>,
    pub host_cleanup: Vec<String>,
    /// The `SOURCE`'s `invalid:` line: why the compose specification rejects
    /// the file (Magos must refuse it, and it is left out of the acceptance).
    pub invalid: Option<String>,
    /// Whether a service waits for another's `service_healthy`.
    pub waits_healthy: bool,
    /// What the listed differences need to know of the file, per service.
    pub listed: BTreeMap<String, Listed>,
    /// The services' `image:` values, as written.
    pub images: Vec<String>,
}

/// The places of a service where a listed difference can show.
#[derive(Default)]
pub struct Listed {
    /// It has neither `networks:` nor `network_mode:`.
    pub no_networks: bool,
    /// Its `environment:` variables whose value refers to another variable of
    /// the same `environment:`.
    pub env_self_refs: BTreeSet<String>,
    /// It publishes a port with an empty host address (`:2283:2283`).
    pub empty_host_ip: bool,
    /// Its `environment:` entries written without a value (`- TZ`, `TZ:`).
    pub bare_env: BTreeSet<String>,
    /// Its `environment:` variables whose value refers to
    /// `${COMPOSE_PROJECT_NAME}`.
    pub project_name_refs: BTreeSet<String>,
}

/// The `${VAR}`/`$VAR` names a text refers to.
pub fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            rest = r;
            continue;
        }
        let braced = rest.starts_with('{');
        let body = rest.trim_start_matches('{');
        let end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        if end > 0 {
            out.insert(body[..end].to_owned());
        }
        rest = if braced { body } else { &body[end..] };
    }
    out
}

/// What [`Listed`] needs of one service.
pub fn listed_of(svc: &serde_yaml_ng::Value) -> Listed {
    let mut env = BTreeMap::new();
    let mut bare_env = BTreeSet::new();
    match svc.get("environment") {
        Some(serde_yaml_ng::Value::Mapping(m)) => {
            for (k, v) in m {
                let k = k.as_str().unwrap_or_default().to_owned();
                let v = match v {
                    serde_yaml_ng::Value::String(s) => s.clone(),
                    serde_yaml_ng::Value::Null => {
                        bare_env.insert(k.clone());
                        String::new()
                    }
                    _ => String::new(),
                };
                env.insert(k, v);
            }
        }
        Some(serde_yaml_ng::Value::Sequence(l)) => {
            for e in l.iter().filter_map(|e| e.as_str()) {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                if !e.contains('=') {
                    bare_env.insert(k.to_owned());
                }
                env.insert(k.to_owned(), v.to_owned());
            }
        }
        _ => {}
    }
    let env_self_refs = env
        .iter()
        .filter(|(_, v)| references(v).iter().any(|r| env.contains_key(r)))
        .map(|(k, _)| k.clone())
        .collect();
    let project_name_refs = env
        .iter()
        .filter(|(_, v)| references(v).contains("COMPOSE_PROJECT_NAME"))
        .map(|(k, _)| k.clone())
        .collect();
    let empty_host_ip = svc
        .get("ports")
        .and_then(|p| p.as_sequence())
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str())
        .any(|p| p.starts_with(':') || p.contains("-:"));
    Listed {
        no_networks: svc.get("networks").is_none() && svc.get("network_mode").is_none(),
        env_self_refs,
        empty_host_ip,
        bare_env,
        project_name_refs,
    }
}

/// The values of the `SOURCE` lines starting with `key: `, in order.
pub fn source_lines(source: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}: ");
    source
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_owned())
        .collect()
}

/// The container ports of a `ports:` list that have no host port.
pub fn ports_without_host_port(ports: Option<&serde_yaml_ng::Value>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in ports.and_then(|p| p.as_sequence()).into_iter().flatten() {
        if let Some(m) = p.as_mapping() {
            let field = |k: &str| {
                m.get(k).map(|v| match v {
                    serde_yaml_ng::Value::Number(n) => n.to_string(),
                    other => other.as_str().unwrap_or_default().to_owned(),
                })
            };
            if field("published").is_none_or(|p| p.is_empty()) {
                let proto = field("protocol").unwrap_or_else(|| "tcp".to_owned());
                out.insert(format!("{}/{proto}", field("target").unwrap_or_default()));
            }
            continue;
        }
        let text = match p {
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            other => other.as_str().unwrap_or_default().to_owned(),
        };
        let (spec, proto) = text.split_once('/').unwrap_or((&text, "tcp"));
        let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        if parts.len() == 1 || parts.get(1) == Some(&"") {
            out.insert(format!("{}/{proto}", parts[0]));
        }
    }
    out
}

pub const COMPOSE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

pub fn corpus() -> Vec<Stack> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut stacks = Vec::new();
    for entry in std::fs::read_dir(&root).expect("read tests/corpus") {
        let dir = entry.unwrap().path();
        let Some(file) = COMPOSE_NAMES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
        else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut build = false;
        let mut listed = BTreeMap::new();
        let mut fixed = BTreeMap::new();
        let mut random_ports = BTreeMap::new();
        let mut images = Vec::new();
        if let Some(services) = doc.get("services").and_then(|s| s.as_mapping()) {
            for (name, svc) in services {
                let name = name.as_str().unwrap_or_default().to_owned();
                build |= svc.get("build").is_some();
                images.extend(svc.get("image").and_then(|i| i.as_str()).map(str::to_owned));
                listed.insert(name.clone(), listed_of(svc));
                let mut nets = BTreeSet::new();
                if svc.get("mac_address").is_some() {
                    nets.insert("mac:*".to_owned());
                }
                if let Some(m) = svc.get("networks").and_then(|n| n.as_mapping()) {
                    for (net, cfg) in m {
                        let net = net.as_str().unwrap_or_default();
                        if ["ipv4_address", "ipv6_address"]
                            .iter()
                            .any(|k| cfg.get(k).is_some())
                        {
                            nets.insert(format!("ip:{net}"));
                        }
                        if cfg.get("mac_address").is_some() {
                            nets.insert(format!("mac:{net}"));
                        } else if cfg.get("x-podman.mac_address").is_some() {
                            nets.insert(format!("xmac:{net}"));
                        }
                    }
                }
                random_ports.insert(name.clone(), ports_without_host_port(svc.get("ports")));
                fixed.insert(name, nets);
            }
        }
        let source = std::fs::read_to_string(dir.join("SOURCE")).unwrap_or_default();
        let environment = source_lines(&source, "environment")
            .into_iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or_else(|| {
                    panic!("{}/SOURCE: environment: {kv}: not KEY=VALUE", dir.display())
                });
                (k.to_owned(), v.to_owned())
            })
            .collect();
        stacks.push(Stack {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            setup: source_lines(&source, "setup"),
            cleanup: source_lines(&source, "cleanup"),
            host_setup: source_lines(&source, "host setup"),
            host_cleanup: source_lines(&source, "host cleanup"),
            invalid: source_lines(&source, "invalid").into_iter().next(),
            waits_healthy: text.contains("service_healthy"),
            listed,
            images,
            environment,
            dir,
            build,
            fixed,
            random_ports,
        });
    }
    stacks.sort_by(|a, b| a.name.cmp(&b.name));
    stacks
}

/// Runs a stack's `host setup:` (or `host cleanup:`) commands with `sh -c` as
/// root in `/`; the failures, as lines for the report.
pub fn run_host_commands(commands: &[String]) -> Vec<String> {
    let mut failed = Vec::new();
    for c in commands {
        let out = Command::new("sh")
            .args(["-c", c])
            .current_dir("/")
            .output()
            .expect("run sh");
        if !out.status.success() {
            failed.push(format!("`{c}` failed: {}", last_lines(&out)));
        }
    }
    failed
}

/// The route `magos plan` gives the stack, with its project name and the keys
/// (compose CLI) or error (refused) that explain it.
#[derive(Debug)]
pub enum Route {
    Native,
    ComposeCli(Vec<String>),
    Refused(String),
}

pub fn plan_route(plan: &Output) -> (Route, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(&plan.stdout) else {
        return (Route::Refused(last_lines(plan)), None);
    };
    let name = |x: &Value, k: &str| x[k].as_str().map(str::to_owned);
    if let Some(c) = v["compose_cli"].as_array().and_then(|a| a.first()) {
        let keys = c["keys"]
            .as_array()
            .map(|k| {
                k.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        return (Route::ComposeCli(keys), name(c, "stack"));
    }
    if let Some(e) = v["errors"].as_array().and_then(|a| a.first()) {
        return (
            Route::Refused(e["error"].as_str().unwrap_or("?").to_owned()),
            name(e, "stack"),
        );
    }
    if let Some(s) = v["stacks"].as_array().and_then(|a| a.first()) {
        if let Some(e) = s["error"].as_str() {
            return (Route::Refused(e.to_owned()), name(s, "project"));
        }
        return (Route::Native, name(s, "project"));
    }
    (Route::Refused("not in the plan".to_owned()), None)
}

/// Replaces the stack's folder, the project name and the container's id in every
/// string.
pub fn normalize(v: &Value, folder: &str, project: &str, id: &str) -> Value {
    match v {
        Value::String(s) => {
            let mut s = s.replace(folder, "<folder>").replace(project, "<project>");
            if id.len() >= 12 {
                s = s.replace(id, "<id>").replace(&id[..12], "<id>");
            }
            Value::String(s)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| normalize(x, folder, project, id))
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    let k = k.replace(project, "<project>");
                    (k, normalize(x, folder, project, id))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Array(a) => {
            let mut a = a.clone();
            a.sort_by_key(|x| x.to_string());
            Value::Array(a)
        }
        Value::Null => json!([]),
        other => other.clone(),
    }
}

/// Labels a user wrote (not the ones the tools add).
pub fn user_labels(labels: &Value) -> Value {
    let added = |k: &str| {
        k.starts_with("com.docker.compose.")
            || k.starts_with("io.podman.compose.")
            || k.starts_with("io.magos.")
            || k == "PODMAN_SYSTEMD_UNIT"
    };
    match labels.as_object() {
        Some(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !added(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => json!({}),
    }
}

/// The compared fields of one container, normalized.
pub fn fields(
    c: &Value,
    folder: &str,
    project: &str,
    fixed: &BTreeSet<String>,
    random_ports: &BTreeSet<String>,
) -> BTreeMap<&'static str, Value> {
    let id = c["Id"].as_str().unwrap_or_default();
    let mut n = normalize(c, folder, project, id);
    if let Some(bindings) = n["HostConfig"]["PortBindings"].as_object_mut() {
        for (port, list) in bindings.iter_mut() {
            if random_ports.contains(port) {
                for b in list.as_array_mut().into_iter().flatten() {
                    b["HostPort"] = json!("<random>");
                }
            }
        }
    }
    let (cfg, host) = (&n["Config"], &n["HostConfig"]);
    let mut mounts: Vec<Value> = n["Mounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let source = if m["Type"] == "volume" {
                &m["Name"]
            } else {
                &m["Source"]
            };
            // An anonymous volume's name is new on each run, whatever the tool.
            let anonymous = json!("<anonymous>");
            let source = match source.as_str() {
                Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => &anonymous,
                _ => source,
            };
            json!({
                "type": m["Type"], "source": source, "destination": m["Destination"],
                "options": sorted(&m["Options"]), "rw": m["RW"], "propagation": m["Propagation"],
            })
        })
        .collect();
    mounts.sort_by_key(|m| m["destination"].to_string());
    let mut networks = serde_json::Map::new();
    if let Some(nets) = n["NetworkSettings"]["Networks"].as_object() {
        for (name, net) in nets {
            let key = name.strip_prefix("<project>_").unwrap_or(name);
            let mut e = json!({ "aliases": sorted(&net["Aliases"]) });
            if fixed.contains(&format!("ip:{key}")) {
                e["ip"] = net["IPAddress"].clone();
                e["ipv6"] = net["GlobalIPv6Address"].clone();
            }
            if fixed.contains(&format!("mac:{key}")) || fixed.contains("mac:*") {
                e["mac"] = net["MacAddress"].clone();
            }
            networks.insert(name.clone(), e);
        }
    }
    let log = &host["LogConfig"];
    BTreeMap::from([
        ("env", sorted(&cfg["Env"])),
        ("cmd", cfg["Cmd"].clone()),
        ("entrypoint", cfg["Entrypoint"].clone()),
        ("user", cfg["User"].clone()),
        ("workdir", cfg["WorkingDir"].clone()),
        ("ports", host["PortBindings"].clone()),
        ("mounts", Value::Array(mounts)),
        ("restart", host["RestartPolicy"].clone()),
        (
            "healthcheck",
            json!([cfg["Healthcheck"], cfg["HealthcheckOnFailureAction"]]),
        ),
        (
            "capabilities",
            json!([sorted(&host["CapAdd"]), sorted(&host["CapDrop"])]),
        ),
        ("devices", sorted(&host["Devices"])),
        ("privileged", host["Privileged"].clone()),
        ("read_only", host["ReadonlyRootfs"].clone()),
        ("tmpfs", host["Tmpfs"].clone()),
        ("shm_size", host["ShmSize"].clone()),
        (
            "memory_cpu",
            json!([
                host["Memory"],
                host["MemoryReservation"],
                host["MemorySwap"],
                host["NanoCpus"],
                host["CpuShares"],
                host["CpuQuota"],
                host["CpuPeriod"],
                host["CpusetCpus"],
                host["PidsLimit"],
            ]),
        ),
        ("ulimits", sorted(&host["Ulimits"])),
        ("sysctls", host["Sysctls"].clone()),
        ("security_opt", sorted(&host["SecurityOpt"])),
        ("extra_hosts", sorted(&host["ExtraHosts"])),
        (
            "dns",
            json!([
                sorted(&host["Dns"]),
                sorted(&host["DnsOptions"]),
                sorted(&host["DnsSearch"])
            ]),
        ),
        ("hostname", json!([cfg["Hostname"], cfg["Domainname"]])),
        (
            "networks",
            json!([host["NetworkMode"], Value::Object(networks)]),
        ),
        (
            "stop_signal",
            json!([cfg["StopSignal"], cfg["StopTimeout"]]),
        ),
        ("labels", user_labels(&cfg["Labels"])),
        (
            "log_config",
            json!([log["Type"], log["Config"], log["Tag"], log["Size"]]),
        ),
        ("init", host["Init"].as_bool().unwrap_or(false).into()),
        ("tty", json!([cfg["Tty"], cfg["OpenStdin"]])),
    ])
}

/// Containers by (service, container number).
pub fn by_service(containers: &[Value]) -> BTreeMap<(String, String), &Value> {
    containers
        .iter()
        .map(|c| {
            let l = &c["Config"]["Labels"];
            let s = l["com.docker.compose.service"].as_str().unwrap_or("?");
            let n = l["com.docker.compose.container-number"]
                .as_str()
                .unwrap_or("1");
            ((s.to_owned(), n.to_owned()), c)
        })
        .collect()
}

/// What one stack gave.
pub struct Outcome {
    pub route: Route,
    pub apply_ok: bool,
    pub peer_ok: bool,
    /// How many containers the peer tool made.
    pub peer_made: usize,
    pub equal: usize,
    pub compared: usize,
    /// Fields (or whole containers' fields) not compared because they show a
    /// listed difference.
    pub skipped: usize,
    pub diffs: Vec<String>,
    /// What `magos apply` printed.
    pub apply_output: String,
    /// The bind sources in the stack's copy that were absent before `magos
    /// apply` (relative to the copy).
    pub created_binds: BTreeSet<String>,
}

/// The images of a stack that are neither the test bed's registry's nor built
/// by its `setup:` lines (`localhost/…`).
pub fn foreign_images<'a>(stack: &'a Stack, registry: &str) -> Vec<&'a str> {
    let ours = format!("{registry}/");
    stack
        .images
        .iter()
        .map(String::as_str)
        .filter(|i| !i.starts_with(&ours) && !i.starts_with("localhost/"))
        .collect()
}

/// Every path under a folder, the folder included.
pub fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::from([dir.to_path_buf()]);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(tree(&path));
        } else {
            out.insert(path);
        }
    }
    out
}

/// The bind sources of the containers that lie in `folder` and are not among
/// the paths that existed there before (`before`), relative to `folder`.
pub fn created_binds(
    containers: &[Value],
    folder: &Path,
    before: &BTreeSet<PathBuf>,
) -> BTreeSet<String> {
    containers
        .iter()
        .filter_map(|c| c["Mounts"].as_array())
        .flatten()
        .filter(|m| m["Type"] == "bind")
        .filter_map(|m| m["Source"].as_str().map(Path::new))
        .filter(|src| !before.contains(*src))
        .filter_map(|src| src.strip_prefix(folder).ok())
        .map(|rel| rel.display().to_string())
        .collect()
}

/// The port a failed `magos apply` could not publish because something on the
/// host already listens on it, if that is why it failed.
pub fn busy_port(apply_output: &str) -> Option<String> {
    let end = apply_output.find(": bind: address already in use")?;
    let port: String = apply_output[..end]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    (!port.is_empty()).then(|| port.chars().rev().collect())
}

/// The port of the test bed's own listeners (the registries, sshd) that a
/// failed `magos apply` could not publish, if that is why it failed.
pub fn held_port(apply_output: &str) -> Option<String> {
    if !apply_output.contains("address already in use") {
        return None;
    }
    let port = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|v| v.rsplit(':').next().unwrap_or_default().to_owned())
    };
    [
        port("MAGOS_TEST_REGISTRY"),
        port("MAGOS_TEST_REGISTRY_AUTH"),
        port("MAGOS_TESTBED_SSH_PORT"),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        !p.is_empty() && apply_output.contains(&format!(":{p}: bind: address already in use"))
    })
}

pub fn clip(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

/// The last lines a command printed (standard output, then error), on one line.
pub fn last_lines(o: &Output) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("cgroups-v1"))
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    format!("{} (exit {:?})", tail, o.status.code())
}

/// `<engine> container inspect` of every container of a compose project, the
/// engine's CLI run by `cli` (its standard output).
pub fn inspect_project_with(cli: impl Fn(&[&str]) -> String, project: &str) -> Vec<Value> {
    let ids = cli(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["container", "inspect"];
    args.extend(&ids);
    serde_json::from_str(&cli(&args)).expect("inspect JSON")
}
