//! `magos check` and `magos update` end to end: the real binary, the test bed's
//! registry (directly, or through a small counting front), real git remotes
//! (bare repositories, and `git http-backend` behind token authentication), and
//! the local fake of GitHub's API for pull-request mode.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

use crate::support::{self, Testbed, show};

#[path = "../common/cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "../git/fake_github.rs"]
pub(crate) mod fake_github;
#[allow(dead_code)]
#[path = "../git/http_backend.rs"]
pub(crate) mod http_backend;
#[path = "../common/local_http.rs"]
pub(crate) mod local_http;

use crate::git_fixture::{bare_remote, git, push_other, write_files};
use cli::{magos, magos_on};

const TOKEN: &str = "tok_9d2e7c41b0a6";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A configuration file `magos.yaml` in `dir` with the given top-level YAML
/// (the test registries are plain HTTP on 127.0.0.1).
fn config(dir: &Path, registries: &[&str], extra: &str) -> PathBuf {
    let path = dir.join("magos.yaml");
    let insecure = registries
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &path,
        format!(
            "registries:\n  insecure: [{insecure}]\nstate_dir: {}\n{extra}",
            dir.join("state").display()
        ),
    )
    .unwrap();
    path
}

/// A folder `repo` of compose files, in a temporary folder that also holds
/// the configuration (trusting the given plain-HTTP registries) and the state.
struct Workspace {
    tmp: tempfile::TempDir,
    repo: PathBuf,
    cfg: PathBuf,
}

impl Workspace {
    fn new(files: &[(String, String)], registries: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        write_files(&repo, files);
        let cfg = config(tmp.path(), registries, "");
        Self { tmp, repo, cfg }
    }

    /// Runs `magos <command> --config … --repo <repo> <extra>…`.
    fn run(&self, command: &str, extra: &[&str]) -> Output {
        magos_on(self.tmp.path(), command, &self.cfg, &self.repo, extra)
    }
}

/// The stacks of the main tests, on registry `reg`: a semver service to update,
/// the same image already pinned where the policy wants it, a moving tag, a
/// multi-arch image, a digest-policy service and a service without annotation.
fn stacks(bed: &Testbed, reg: &str) -> Vec<(String, String)> {
    let pinned_125 = bed.manifest_digest(&format!("{}/magos/semver:1.2.5", bed.registry));
    let httpd = bed.manifest_digest(&format!("{}/magos/httpd:1", bed.registry));
    vec![
        (
            "apps/compose.yaml".to_owned(),
            format!(
                "# the apps\nservices:\n  app:\n    image: {reg}/magos/semver:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"^1\"}}}}\n    ports:\n      - \"127.0.0.1:8080:80\"\n  \
                 pinned:\n    image: \"{reg}/magos/semver:1.2.5@{pinned_125}\" # {{\"magos\": {{\"policy\": \"semver\", \"range\": \">=1.0.0 <1.3.0\"}}}}\n  \
                 plain:\n    image: {reg}/magos/semver:1.0.0\n"
            ),
        ),
        (
            "edge/compose.yml".to_owned(),
            format!(
                "services:\r\n  moving:\r\n    image: '{reg}/magos/moving:latest'   # {{\"magos\": {{\"policy\": \"latest\"}}}}\r\n  \
                 multi:\r\n    image: {reg}/magos/multiarch:1.0 # {{\"magos\": {{\"policy\": \"latest\", \"tag\": \"1.0\"}}}}\r\n  \
                 fixed:\r\n    image: {reg}/magos/httpd:1 # {{\"magos\": {{\"policy\": \"digest\", \"digest\": \"{httpd}\"}}}}\r\n"
            ),
        ),
        ("README.md".to_owned(), "my homelab\n".to_owned()),
    ]
}

/// A bare remote at `rel` under `root` holding the [`stacks`] on registry
/// `reg`: the remote and the commit of its `main`.
fn stacks_remote(bed: &Testbed, reg: &str, root: &Path, rel: &str) -> (PathBuf, String) {
    let (bare, _other) = bare_remote(root, rel, &stacks(bed, reg));
    let head = git(&bare, &["rev-parse", "main"]);
    (bare, head)
}

fn rows(out: &Output) -> BTreeMap<String, serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", show(out)));
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!(
                    "{}/{}",
                    r["stack"].as_str().unwrap(),
                    r["service"].as_str().unwrap()
                ),
                r.clone(),
            )
        })
        .collect()
}

/// The digest of an OCI index, as the bytes the registry serves hash to, and
/// the check that it is an index.
fn index_digest(bed: &Testbed, repo_tag: &str) -> String {
    let (repo, tag) = repo_tag.split_once(':').unwrap();
    let r = bed
        .registry_request(
            "GET",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("Accept", support::MANIFEST_ACCEPT)],
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["manifests"].is_array(), "{repo_tag} is not an index");
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&r.body)))
}

#[test]
fn check_reports_each_choice_and_pins_multiarch_images_to_the_index() {
    let Some(bed) = support::testbed() else {
        return;
    };
    let reg = bed.registry.as_str();
    let ws = Workspace::new(&stacks(bed, reg), &[reg]);
    let out = ws.run("check", &["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let rows = rows(&out);
    assert_eq!(rows.len(), 5, "only annotated services: {rows:?}");
    assert!(!rows.contains_key("apps/plain"));

    let app = &rows["apps/app"];
    let d1105 = bed.manifest_digest(&format!("{reg}/magos/semver:1.10.5"));
    assert_eq!(app["tag"], "1.10.5", "{app}");
    assert_eq!(app["digest"], d1105.as_str());
    assert_eq!(app["update"], true);
    assert_eq!(app["location"], "apps/compose.yaml:4");
    assert!(app["error"].is_null());

    let pinned = &rows["apps/pinned"];
    assert_eq!(pinned["tag"], "1.2.5");
    assert_eq!(pinned["update"], false, "{pinned}");

    let moving = &rows["edge/moving"];
    assert_eq!(
        moving["digest"],
        bed.manifest_digest(&format!("{reg}/magos/moving:latest"))
            .as_str()
    );
    assert_eq!(moving["update"], true, "an unpinned moving tag gets a pin");

    let multi = &rows["edge/multi"];
    let index = index_digest(bed, "magos/multiarch:1.0");
    assert_eq!(multi["digest"], index.as_str(), "{multi}");
    assert_eq!(multi["update"], true);

    let fixed = &rows["edge/fixed"];
    assert_eq!(fixed["update"], false);
    assert!(fixed["tag"].is_null());

    // The table form says the same.
    let out = ws.run("check", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let table = text(&out.stdout);
    assert!(table.starts_with("STACK"), "{table}");
    assert_eq!(table.lines().count(), 6, "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("apps ") && l.contains(" yes ") && l.contains("1.10.5")),
        "{table}"
    );
}

#[test]
fn a_check_with_an_unreachable_registry_reports_it_and_exits_2() {
    let Some(bed) = support::testbed() else {
        return;
    };
    let closed = format!("127.0.0.1:{}", support::free_port());
    let reg = bed.registry.as_str();
    let ws = Workspace::new(
        &[(
            "compose.yaml".to_owned(),
            format!(
                "services:\n  gone:\n    image: {closed}/x/app:1 # {{\"magos\": {{\"policy\": \"semver\"}}}}\n  \
                 app:\n    image: {reg}/magos/semver:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"~1.0\"}}}}\n"
            ),
        )],
        &[reg, &closed],
    );
    let out = ws.run("check", &["--output", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let rows = rows(&out);
    assert!(
        rows["repo/gone"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&closed)),
        "{rows:?}"
    );
    assert_eq!(
        rows["repo/app"]["tag"], "1.0.5",
        "the other registry is still asked"
    );
}

// ---------------------------------------------------------------------------
// A counting front of the test registry.

/// A forwarding proxy to the test registry on 127.0.0.1 that records every
/// request, and can run a hook (once) before it forwards the first tag listing:
/// the moment a check is between its fetch of the repository and its push.
struct Front {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

type Hook = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;

impl Front {
    fn start(upstream: &str, hook: Option<Box<dyn FnOnce() + Send>>) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let hook: Hook = Arc::new(Mutex::new(hook));
        let upstream = format!("http://{upstream}");
        magos::registry::install_crypto_provider();
        let client = reqwest::Client::new();
        let seen = log.clone();
        let addr = local_http::serve(move |req| {
            let (log, hook, client, upstream) =
                (seen.clone(), hook.clone(), client.clone(), upstream.clone());
            async move { forward(req, &log, &hook, &client, &upstream).await }
        });
        Self { addr, log }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn count(&self, method: &str, path_contains: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(&format!("{method} ")) && l.contains(path_contains))
            .count()
    }
}

async fn forward(
    req: Request<Incoming>,
    log: &Mutex<Vec<String>>,
    hook: &Hook,
    client: &reqwest::Client,
    upstream: &str,
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    log.lock().unwrap().push(format!("{method} {path}"));
    if path.contains("/tags/list") {
        let run = hook.lock().unwrap().take();
        if let Some(run) = run {
            tokio::task::spawn_blocking(run).await.unwrap();
        }
    }
    let mut up = client.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
        format!("{upstream}{path}"),
    );
    for (k, v) in req.headers() {
        if k != "host" {
            up = up.header(k.as_str(), v.as_bytes());
        }
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let answer = up.body(body).send().await.unwrap();
    let mut res = Response::builder().status(answer.status().as_u16());
    for (k, v) in answer.headers() {
        if k != "transfer-encoding" && k != "connection" {
            res = res.header(k.as_str(), v.as_bytes());
        }
    }
    let bytes = answer.bytes().await.unwrap();
    res.body(Full::new(bytes)).unwrap()
}

#[test]
fn one_check_lists_each_repository_once_and_heads_only_elected_tags() {
    let Some(bed) = support::testbed() else {
        return;
    };
    let front = Front::start(&bed.registry, None);
    let h = front.host();
    let d125 = bed.manifest_digest(&format!("{}/magos/semver:1.2.5", bed.registry));
    let httpd = bed.manifest_digest(&format!("{}/magos/httpd:1", bed.registry));
    let annotated = |range: &str| {
        format!("# {{\"magos\": {{\"policy\": \"semver\", \"range\": \"{range}\"}}}}")
    };
    let ws = Workspace::new(
        &[
            (
                "one/compose.yaml".to_owned(),
                format!(
                    "services:\n  a:\n    image: {h}/magos/semver:1.0.0 {}\n  b:\n    image: {h}/magos/semver:1.2.5@{d125} {}\n  c:\n    image: {h}/magos/semver:2.0.0 {}\n",
                    annotated("~1.2"),
                    annotated("~1.2"),
                    annotated("^2"),
                ),
            ),
            (
                "two/compose.yaml".to_owned(),
                format!(
                    "services:\n  d:\n    image: {h}/magos/semver:1.2.0 {}\n  e:\n    image: {h}/magos/moving:latest # {{\"magos\": {{\"policy\": \"latest\"}}}}\n  f:\n    image: {h}/magos/httpd:1 # {{\"magos\": {{\"policy\": \"digest\", \"digest\": \"{httpd}\"}}}}\n",
                    annotated(">=1.2.0 <1.3.0"),
                ),
            ),
        ],
        &[&h],
    );
    let out = ws.run("check", &["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let rows = rows(&out);
    assert_eq!(rows["one/a"]["tag"], "1.2.5");
    assert_eq!(rows["one/b"]["update"], false);
    assert_eq!(rows["one/c"]["tag"], "v2.3.1");
    assert_eq!(rows["two/d"]["tag"], "1.2.5");
    let log = front.log.lock().unwrap().clone();
    // One listing per repository (the digest policy lists too: its decision
    // comes from the policy, which sees the tags), one HEAD per elected tag
    // however many services elected it, no manifest body, nothing else.
    for r in ["semver", "moving", "httpd"] {
        assert_eq!(
            front.count("GET", &format!("/v2/magos/{r}/tags/list")),
            1,
            "{r}: {log:#?}"
        );
    }
    assert_eq!(front.count("HEAD", "/manifests/"), 3, "{log:#?}");
    for elected in [
        "semver/manifests/1.2.5",
        "semver/manifests/v2.3.1",
        "moving/manifests/latest",
    ] {
        assert_eq!(front.count("HEAD", elected), 1, "{elected}: {log:#?}");
    }
    assert_eq!(front.count("GET", "/manifests/"), 0, "{log:#?}");
    let other: Vec<&String> = log
        .iter()
        .filter(|l| !l.contains("/tags/list") && !l.contains("/manifests/"))
        .collect();
    assert!(
        other.iter().all(|l| l.ends_with(" /v2/")),
        "only the API probe besides: {other:?}"
    );
    assert_eq!(log.len(), 3 + 3 + other.len(), "{log:#?}");
}

// ---------------------------------------------------------------------------
// magos update

#[test]
fn dry_run_prints_a_diff_and_writes_nothing() {
    let Some(bed) = support::testbed() else {
        return;
    };
    let reg = bed.registry.as_str();
    let files = stacks(bed, reg);
    let ws = Workspace::new(&files, &[reg]);
    let out = ws.run("update", &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let diff = text(&out.stdout);
    let d1105 = bed.manifest_digest(&format!("{reg}/magos/semver:1.10.5"));
    assert!(
        diff.contains("--- a/apps/compose.yaml\n+++ b/apps/compose.yaml\n"),
        "{diff}"
    );
    assert!(
        diff.contains(&format!(
            "\n-    image: {reg}/magos/semver:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"^1\"}}}}\n+    image: {reg}/magos/semver:1.10.5@{d1105} # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"^1\"}}}}\n"
        )),
        "{diff}"
    );
    assert!(diff.contains("--- a/edge/compose.yml\n"), "{diff}");
    assert_eq!(diff.matches("\n+    image:").count(), 3, "{diff}");
    // Nothing written.
    for (path, contents) in &files {
        assert_eq!(
            &std::fs::read_to_string(ws.repo.join(path)).unwrap(),
            contents
        );
    }
    let names: Vec<_> = std::fs::read_dir(ws.repo.join("apps")).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file left");
}

#[test]
fn an_observed_stack_is_checked_but_never_pinned() {
    let Some(bed) = support::testbed() else {
        return;
    };
    let reg = bed.registry.as_str();
    let mut files = stacks(bed, reg);
    for (path, contents) in &mut files {
        if path == "edge/compose.yml" {
            contents.push_str("x-magos:\r\n  observe: true\r\n");
        }
    }
    let ws = Workspace::new(&files, &[reg]);
    let out = ws.run("update", &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let diff = text(&out.stdout);
    assert!(diff.contains("--- a/apps/compose.yaml\n"), "{diff}");
    assert!(
        !diff.contains("edge/compose.yml"),
        "an observed stack was pinned: {diff}"
    );
    assert_eq!(diff.matches("\n+    image:").count(), 1, "{diff}");
    // `check` still reports the observed stack's updates.
    let out = ws.run("check", &["--output", "json"]);
    let rows = rows(&out);
    assert!(
        rows.keys().any(|k| k.contains("moving")),
        "the observed stack is still checked: {rows:?}"
    );
}

#[test]
fn no_commit_rewrites_only_the_image_values_byte_for_byte() {
    let Some(bed) = support::testbed() else {
        return;
    };
    let reg = bed.registry.as_str();
    let files = stacks(bed, reg);
    let ws = Workspace::new(&files, &[reg]);
    let run = || ws.run("update", &["--no-commit"]);
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let d1105 = bed.manifest_digest(&format!("{reg}/magos/semver:1.10.5"));
    let dmoving = bed.manifest_digest(&format!("{reg}/magos/moving:latest"));
    let index = index_digest(bed, "magos/multiarch:1.0");
    let expected_apps = files[0].1.replacen(
        &format!("{reg}/magos/semver:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"^1\"}}}}"),
        &format!("{reg}/magos/semver:1.10.5@{d1105} # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"^1\"}}}}"),
        1,
    );
    assert_ne!(expected_apps, files[0].1);
    assert_eq!(
        std::fs::read_to_string(ws.repo.join("apps/compose.yaml")).unwrap(),
        expected_apps
    );
    let expected_edge = files[1]
        .1
        .replace(
            &format!("'{reg}/magos/moving:latest'"),
            &format!("'{reg}/magos/moving:latest@{dmoving}'"),
        )
        .replace(
            &format!("{reg}/magos/multiarch:1.0 "),
            &format!("{reg}/magos/multiarch:1.0@{index} "),
        );
    assert_eq!(
        std::fs::read(ws.repo.join("edge/compose.yml")).unwrap(),
        expected_edge.as_bytes(),
        "CRLF, quotes, spacing and comments are kept"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "pinned apps/app: {reg}/magos/semver:1.0.0 -> {reg}/magos/semver:1.10.5@{d1105}"
        )),
        "{stdout}"
    );
    assert!(!ws.repo.join(".git").exists());

    // Twice equals once.
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        std::fs::read_to_string(ws.repo.join("apps/compose.yaml")).unwrap(),
        expected_apps
    );
}

#[test]
fn an_update_is_one_commit_listing_every_service_pushed_to_the_remote() {
    let Some(bed) = support::testbed() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let reg = bed.registry.as_str();
    let (bare, before) = stacks_remote(bed, reg, tmp.path(), "remote.git");
    let cfg = config(
        tmp.path(),
        &[reg],
        &format!(
            "repo:\n  url: {}\n  commit:\n    author_name: Pin Bot\n    author_email: pins@example.org\n",
            bare.display()
        ),
    );
    let out = magos(tmp.path(), &["update", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let after = git(&bare, &["rev-parse", "main"]);
    assert_ne!(before, after);
    assert_eq!(git(&bare, &["rev-parse", "main~1"]), before, "one commit");
    let message = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.starts_with("Pin 3 image update(s): apps/app, edge/moving, edge/multi"),
        "{message}"
    );
    for svc in ["apps/app", "edge/moving", "edge/multi"] {
        assert!(message.contains(&format!("- {svc}: ")), "{svc}: {message}");
    }
    assert!(message.contains(&format!(
        "{reg}/magos/semver:1.0.0 -> {reg}/magos/semver:1.10.5@sha256:"
    )));
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae>", "main"]),
        "Pin Bot <pins@example.org>"
    );
    let changed = git(&bare, &["diff", "--name-only", "main~1", "main"]);
    assert_eq!(changed, "apps/compose.yaml\nedge/compose.yml");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("pushed {} to {}", &after[..12], bare.display())),
        "{stdout}"
    );

    // Nothing left to do: no new commit, exit 0.
    let out = magos(tmp.path(), &["update", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stdout).starts_with("nothing to update"),
        "{}",
        show(&out)
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), after);
}

#[test]
fn a_concurrent_push_is_recomputed_on_the_new_head_never_forced() {
    let Some(bed) = support::testbed() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    // The front pushes someone else's commit when the check asks for tags:
    // after Magos fetched, before it pushes.
    let pushed_other: Arc<Mutex<Option<String>>> = Arc::default();
    let slot = pushed_other.clone();
    let other_dir = root.join("other");
    let front = Front::start(
        &bed.registry,
        Some(Box::new(move || {
            let c = push_other(
                &other_dir,
                "apps/notes.txt",
                "racing\n",
                "someone else's change",
            );
            *slot.lock().unwrap() = Some(c);
        })),
    );
    let h = front.host();
    let (bare, other) = bare_remote(
        &root,
        "remote.git",
        &[(
            "apps/compose.yaml",
            &format!(
                "services:\n  app:\n    image: {h}/magos/semver:1.0.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"^1\"}}}}\n"
            ),
        )],
    );
    assert_eq!(other, root.join("other"));
    let cfg = config(&root, &[&h], &format!("repo:\n  url: {}\n", bare.display()));
    let out = magos(&root, &["update", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let theirs = pushed_other
        .lock()
        .unwrap()
        .clone()
        .expect("the concurrent push ran");
    let ours = git(&bare, &["rev-parse", "main"]);
    assert_ne!(ours, theirs);
    assert_eq!(
        git(&bare, &["rev-parse", "main~1"]),
        theirs,
        "our commit sits on top of theirs: both are kept"
    );
    assert_eq!(
        git(&bare, &["show", "main:apps/notes.txt"]),
        "racing",
        "their change survived"
    );
    assert!(git(&bare, &["show", "main:apps/compose.yaml"]).contains("semver:1.10.5@sha256:"));
    assert!(
        text(&out.stdout).contains("recomputed 1 time(s) because the branch moved"),
        "{}",
        show(&out)
    );
    // The recomputation asked the registry nothing new.
    assert_eq!(front.count("GET", "/tags/list"), 1);
    assert_eq!(front.count("HEAD", "/manifests/"), 1);
    // Never forced: the initial commit, theirs, ours, in one line of history.
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]), "3");
}

// ---------------------------------------------------------------------------
// Pull-request mode, over HTTPS-style token auth, with the GitHub App.

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github-app")
        .join(name)
}

/// The fake GitHub API for `me/homelab`: app 1234, installation 42, first
/// installation token `TOKEN`, valid for an hour.
fn start_github() -> fake_github::FakeGithub {
    fake_github::FakeGithub::start(
        1234,
        42,
        "me",
        "homelab",
        &std::fs::read(fixture("public-key.pem")).unwrap(),
        TOKEN,
        3600,
    )
}

/// Every file under `dir`, for a search of the token.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                stack.push(p);
            } else if kind.is_file()
                && std::fs::read(&p)
                    .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn pull_request_mode_opens_one_request_per_service_and_closes_superseded_ones() {
    let Some(bed) = support::testbed() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    let reg = bed.registry.as_str();
    let annotated = |range: &str| {
        format!("# {{\"magos\": {{\"policy\": \"semver\", \"range\": \"{range}\"}}}}")
    };
    let compose = |range: &str| {
        format!(
            "services:\n  app:\n    image: {reg}/magos/semver:1.0.0 {}\n  moving:\n    image: {reg}/magos/moving:latest # {{\"magos\": {{\"policy\": \"latest\"}}}}\n",
            annotated(range)
        )
    };
    let served = root.join("served");
    let (bare, other) = bare_remote(
        &served,
        "me/homelab.git",
        &[("web/compose.yaml", &compose("^1"))],
    );
    let main_before = git(&bare, &["rev-parse", "main"]);
    let github = start_github();
    // Each run is a new process that mints a new installation token (the
    // fake's n-th is `TOKEN_n`); the git server of each run accepts that one.
    let update = |run: usize| {
        let token = if run == 0 {
            TOKEN.to_owned()
        } else {
            format!("{TOKEN}_{run}")
        };
        let backend = http_backend::HttpBackend::start(served.clone(), &token, &token);
        let cfg = config(
            &root,
            &[reg],
            &format!(
                "repo:\n  url: {}\n  mode: pull_request\ngithub:\n  app_id: 1234\n  private_key: {}\n  api_url: {}\n",
                backend.url("me/homelab.git"),
                fixture("private-key.pem").display(),
                github.url()
            ),
        );
        let out = magos(&root, &["update", "--config", cfg.to_str().unwrap()]);
        (out, backend)
    };

    let (out, _backend) = update(0);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("opened pull request #1: Pin web/app to 1.10.5"),
        "{stdout}"
    );
    assert!(
        stdout.contains("opened pull request #2: Pin web/moving to latest"),
        "{stdout}"
    );
    assert_eq!(
        git(&bare, &["rev-parse", "main"]),
        main_before,
        "main is never written"
    );
    let app_branch = "magos/web-app-1.10.5";
    assert_eq!(
        git(&bare, &["rev-parse", &format!("{app_branch}~1")]),
        main_before
    );
    let on_branch = git(&bare, &["show", &format!("{app_branch}:web/compose.yaml")]);
    assert!(on_branch.contains("semver:1.10.5@sha256:"), "{on_branch}");
    assert!(
        on_branch.contains("moving:latest #"),
        "a per-service branch pins only its service: {on_branch}"
    );
    {
        let state = github.state.lock().unwrap();
        assert_eq!(state.pulls.len(), 2);
        assert_eq!(state.pulls[0].head, app_branch);
        assert_eq!(state.pulls[0].base, "main");
        assert!(
            state.pulls[0].body.contains("- web/app: "),
            "{}",
            state.pulls[0].body
        );
        assert!(state.refused.is_empty(), "{:?}", state.refused);
    }

    // Again: the branches hold the updates, the requests are updated, no duplicate.
    let (out, _backend) = update(1);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stdout).contains("updated pull request #1"),
        "{}",
        show(&out)
    );
    assert_eq!(github.state.lock().unwrap().pulls.len(), 2);

    // A newer version is allowed: its request supersedes the older one.
    push_other(&other, "web/compose.yaml", &compose(">=1 <3"), "allow 2.x");
    let (out, backend) = update(2);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("opened pull request #3: Pin web/app to v2.3.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("closed superseded pull request #1"),
        "{stdout}"
    );
    {
        let state = github.state.lock().unwrap();
        assert!(!state.pulls[0].open);
        assert!(state.pulls[1].open, "the moving tag's request stays");
        assert_eq!(state.pulls[2].head, "magos/web-app-v2.3.1");
        assert!(state.pulls[2].open);
        assert!(state.refused.is_empty(), "{:?}", state.refused);
    }

    // The token is nowhere: output, clone, state folder, remote URL on disk.
    assert!(!text(&out.stdout).contains(TOKEN) && !text(&out.stderr).contains(TOKEN));
    assert_eq!(
        files_containing(&root.join("state"), TOKEN),
        Vec::<PathBuf>::new()
    );
    let clones: Vec<_> = std::fs::read_dir(root.join("state/repos"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join(".git").is_dir())
        .collect();
    assert_eq!(
        clones.len(),
        3,
        "one clone per URL (each run had its own port)"
    );
    let url = backend.url("me/homelab.git");
    assert!(
        clones.iter().any(|c| {
            std::fs::read_to_string(c.path().join(".git/config"))
                .unwrap()
                .contains(&url)
        }),
        "the last run's clone names {url}"
    );
}

#[test]
fn grouped_pull_request_mode_opens_one_request_for_every_update() {
    let Some(bed) = support::testbed() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    let reg = bed.registry.as_str();
    let served = root.join("served");
    let (bare, main_before) = stacks_remote(bed, reg, &served, "me/homelab.git");
    let github = start_github();
    let backend = http_backend::HttpBackend::start(served.clone(), TOKEN, TOKEN);
    let cfg = config(
        &root,
        &[reg],
        &format!(
            "repo:\n  url: {}\n  mode: pull_request\n  pr_grouping: grouped\ngithub:\n  app_id: 1234\n  private_key: {}\n  installation_id: 42\n  api_url: {}\n",
            backend.url("me/homelab.git"),
            fixture("private-key.pem").display(),
            github.url()
        ),
    );
    let out = magos(&root, &["update", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "opened pull request #1: Pin 3 image update(s): apps/app, edge/moving, edge/multi"
        ),
        "{stdout}"
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), main_before);
    assert_eq!(git(&bare, &["rev-parse", "magos/updates~1"]), main_before);
    let changed = git(&bare, &["diff", "--name-only", "main", "magos/updates"]);
    assert_eq!(changed, "apps/compose.yaml\nedge/compose.yml");
    let state = github.state.lock().unwrap();
    assert_eq!(state.pulls.len(), 1);
    assert_eq!(state.pulls[0].head, "magos/updates");
    for svc in ["apps/app", "edge/moving", "edge/multi"] {
        assert!(
            state.pulls[0].body.contains(&format!("- {svc}: ")),
            "{}",
            state.pulls[0].body
        );
    }
    assert_eq!(state.lookups, 0, "the configured installation is used");
    assert!(state.refused.is_empty(), "{:?}", state.refused);
}

#[test]
fn no_push_keeps_the_commit_on_a_local_branch_and_leaves_the_remote_alone() {
    let Some(bed) = support::testbed() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let reg = bed.registry.as_str();
    let (bare, before) = stacks_remote(bed, reg, tmp.path(), "remote.git");
    let cfg = config(
        tmp.path(),
        &[reg],
        &format!("repo:\n  url: {}\n", bare.display()),
    );
    let out = magos(
        tmp.path(),
        &["update", "--config", cfg.to_str().unwrap(), "--no-push"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("without pushing"), "{stdout}");
    assert_eq!(git(&bare, &["rev-parse", "main"]), before, "nothing pushed");
    let kept = stdout
        .split("local branch ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the branch is named");
    assert!(kept.starts_with("magos/unpushed-"), "{kept}");
    let clone = std::fs::read_dir(tmp.path().join("state/repos"))
        .unwrap()
        .flatten()
        .find(|e| e.path().join(".git").is_dir())
        .unwrap()
        .path();
    let message = git(&clone, &["log", "-1", "--format=%B", kept]);
    assert!(message.starts_with("Pin 3 image update(s)"), "{message}");
}
