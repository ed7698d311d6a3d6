//! Cosign signature verification against the test bed's registry, whose
//! `magos/signed` images were signed by Debian's cosign (offline, with two
//! generated keys): `1.1.0` signed with the trusted key, `1.2.0` unsigned,
//! `1.3.0` signed with another key, `1.4.0` carrying `1.1.0`'s signature. Under
//! a `verify:` rule Magos pins `1.1.0` and reports why the newer ones were
//! skipped; without one it takes `1.4.0`.

use std::path::Path;
use std::process::{Command, Output};

use crate::git_fixture::{bare_remote, git, write_files};
use crate::support::{Testbed, show, testbed};

/// `magos check --output json` over a repository with one service on
/// `magos/signed` (annotation `annotation`), with `verify` as the
/// configuration's `verify:` list.
fn check(tb: &Testbed, annotation: &str, verify: &str) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let image = tb.require("MAGOS_TEST_IMAGE_SIGNED");
    write_files(
        &tmp.path().join("repo"),
        &[(
            "signed/compose.yaml",
            format!("services:\n  app:\n    image: {image}:1.1.0 # {annotation}\n"),
        )],
    );
    std::fs::write(
        tmp.path().join("magos.yaml"),
        format!(
            "registries:\n  insecure: [\"{}\"]\nstate_dir: {}\nverify:{verify}\n",
            tb.registry,
            tmp.path().join("state").display()
        ),
    )
    .unwrap();
    run(tmp.path())
}

fn run(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(["check", "--output", "json", "--config"])
        .arg(dir.join("magos.yaml"))
        .arg("--repo")
        .arg(dir.join("repo"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn row(out: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", show(out)));
    v.as_array().unwrap()[0].clone()
}

const SEMVER: &str = r#"{"magos": {"policy": "semver", "range": "^1"}}"#;

/// The row of a check under the trusted key: `1.1.0`, verified, after
/// skipping the three newer candidates for the right reasons.
fn assert_pins_the_signed_one(tb: &Testbed, out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", show(out));
    let app = row(out);
    let image = tb.require("MAGOS_TEST_IMAGE_SIGNED");
    let d11 = tb.manifest_digest(&format!("{image}:1.1.0"));
    assert_eq!(app["tag"], "1.1.0", "{app}");
    assert_eq!(app["digest"], d11.as_str(), "{app}");
    let sig = &app["signature"];
    assert_eq!(sig["chosen"]["verdict"], "verified", "{app}");
    assert!(
        sig["chosen"]["key"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{app}"
    );
    let skipped = sig["skipped"].as_array().unwrap();
    let tags: Vec<&str> = skipped.iter().map(|s| s["tag"].as_str().unwrap()).collect();
    assert_eq!(tags, ["1.4.0", "1.3.0", "1.2.0"], "{app}");
    let reason = |i: usize| skipped[i]["reason"].as_str().unwrap().to_owned();
    assert_eq!(skipped[0]["verdict"], "bad_signature");
    assert!(
        reason(0).contains(&format!("the signature is for {d11}")),
        "the copied signature names 1.1.0's digest: {}",
        reason(0)
    );
    assert_eq!(skipped[1]["verdict"], "bad_signature");
    assert!(reason(1).contains("not by the key"), "{}", reason(1));
    assert_eq!(skipped[2]["verdict"], "unsigned");
    assert!(reason(2).contains("no cosign signature"), "{}", reason(2));
    let text = app["reason"].as_str().unwrap();
    assert!(
        text.contains("skipped 1.2.0: unsigned") && text.contains("skipped 1.3.0: bad signature"),
        "{text}"
    );
    // The same, per candidate, the signature verdict in its own field.
    let candidates = app["candidates"].as_array().unwrap();
    let verdicts: Vec<(&str, &str, bool)> = candidates
        .iter()
        .map(|c| {
            assert!(c.get("scan").is_none(), "no scan: gate: {c}");
            (
                c["tag"].as_str().unwrap(),
                c["signature"]["verdict"].as_str().unwrap(),
                c["chosen"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("1.4.0", "bad_signature", false),
            ("1.3.0", "bad_signature", false),
            ("1.2.0", "unsigned", false),
            ("1.1.0", "verified", true),
        ],
        "{app}"
    );
    assert_eq!(candidates[3]["digest"], d11.as_str(), "{app}");
}

#[test]
fn under_a_verify_rule_only_a_digest_signed_by_its_key_is_pinned() {
    let Some(tb) = testbed() else { return };
    let key = tb.require("MAGOS_TESTBED_COSIGN_KEY");
    let out = check(
        tb,
        SEMVER,
        &format!("\n  - match: \"{}/magos/*\"\n    key: {key}", tb.registry),
    );
    assert_pins_the_signed_one(tb, &out);
}

#[test]
fn an_annotation_names_the_rule_that_applies() {
    let Some(tb) = testbed() else { return };
    let key = tb.require("MAGOS_TESTBED_COSIGN_KEY");
    let other = tb.require("MAGOS_TESTBED_COSIGN_OTHER_KEY");
    let rules = format!(
        "\n  - name: lab\n    key: {key}\n  - name: vendor\n    match: \"example.org/*\"\n    key: {other}"
    );
    let named = r#"{"magos": {"policy": "semver", "range": "^1", "verify": "lab"}}"#;
    assert_pins_the_signed_one(tb, &check(tb, named, &rules));

    // No rule covers the image: the newest allowed tag, no signature asked.
    let out = check(tb, SEMVER, &rules);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let app = row(&out);
    assert_eq!(app["tag"], "1.4.0", "{app}");
    assert!(app.get("signature").is_none(), "{app}");

    // A name no rule has is the service's error.
    let typo = r#"{"magos": {"policy": "semver", "range": "^1", "verify": "labb"}}"#;
    let out = check(tb, typo, &rules);
    let app = row(&out);
    let error = app["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", show(&out)));
    assert!(
        error.contains("\"labb\"") && error.contains("lab, vendor"),
        "{error}"
    );
}

#[test]
fn with_the_other_key_the_other_signed_digest_is_pinned() {
    let Some(tb) = testbed() else { return };
    let other = tb.require("MAGOS_TESTBED_COSIGN_OTHER_KEY");
    let out = check(tb, SEMVER, &format!("\n  - match: \"*\"\n    key: {other}"));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let app = row(&out);
    assert_eq!(app["tag"], "1.3.0", "{app}");
    assert_eq!(app["signature"]["skipped"][0]["tag"], "1.4.0", "{app}");
}

#[test]
fn the_update_pins_the_signed_digest_and_records_the_key_in_a_trailer() {
    let Some(tb) = testbed() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let image = tb.require("MAGOS_TEST_IMAGE_SIGNED");
    let key = tb.require("MAGOS_TESTBED_COSIGN_KEY");
    let (bare, _other) = bare_remote(
        tmp.path(),
        "remote.git",
        &[(
            "signed/compose.yaml",
            format!("services:\n  app:\n    image: {image}:1.1.0 # {SEMVER}\n"),
        )],
    );
    let before = git(&bare, &["rev-parse", "main"]);
    std::fs::write(
        tmp.path().join("magos.yaml"),
        format!(
            "repo:\n  url: {}\nregistries:\n  insecure: [\"{}\"]\nstate_dir: {}\nverify:\n  - match: \"*\"\n    key: {key}\n",
            bare.display(),
            tb.registry,
            tmp.path().join("state").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(["update", "--config"])
        .arg(tmp.path().join("magos.yaml"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", tmp.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(git(&bare, &["rev-parse", "main~1"]), before, "one commit");
    let d11 = tb.manifest_digest(&format!("{image}:1.1.0"));
    let pinned = git(&bare, &["show", "main:signed/compose.yaml"]);
    assert!(pinned.contains(&format!("{image}:1.1.0@{d11}")), "{pinned}");
    let message = git(&bare, &["log", "-1", "--format=%B", "main"]);
    let trailers = git(
        &bare,
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Magos-Verified-Key,valueonly)",
            "main",
        ],
    );
    assert!(
        trailers.starts_with("sha256:") && trailers.ends_with("(signed/app)"),
        "{message}"
    );
}

/// A rootless Podman of the test user that reads its configuration from
/// `home`: `HOME` is the only way to point Podman at another `policy.json` and
/// `registries.d` (containers/image reads both from `$HOME/.config/containers`;
/// no variable or flag names `registries.d`), so the test user's own
/// configuration, read by the shared Podman service every other test uses, is
/// never touched. Its own `XDG_RUNTIME_DIR` under `home` gives it its own
/// storage, runtime state and pause process (killed on drop); the registry
/// settings are the test bed's `registries.conf` (plain HTTP to the registry).
struct OwnPodman<'a> {
    tb: &'a Testbed,
    home: tempfile::TempDir,
}

impl<'a> OwnPodman<'a> {
    fn new(tb: &'a Testbed) -> Self {
        let home = tb.user_dir("magos-sigpolicy");
        let run = home.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::os::unix::fs::chown(&run, Some(tb.uid), Some(tb.gid)).unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        OwnPodman { tb, home }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn pull(&self, image: &str) -> Output {
        let home = self.home().display().to_string();
        self.tb
            .as_user()
            .arg(format!("HOME={home}"))
            .arg(format!("USER={}", self.tb.user))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(format!("XDG_RUNTIME_DIR={home}/run"))
            .arg(format!(
                "CONTAINERS_REGISTRIES_CONF={}",
                self.tb.require("MAGOS_TESTBED_REGISTRIES_CONF")
            ))
            .arg("PODMAN_IGNORE_CGROUPSV1_WARNING=1")
            .arg("TMPDIR=/var/tmp")
            .args(["podman", "pull", "-q", image])
            .current_dir("/")
            .output()
            .unwrap()
    }
}

impl Drop for OwnPodman<'_> {
    fn drop(&mut self) {
        let pid_file = self.home().join("run/libpod/tmp/pause.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

#[test]
fn podman_pulls_under_the_written_policy_take_the_signed_image_only() {
    let Some(tb) = testbed() else { return };
    let image = tb.require("MAGOS_TEST_IMAGE_SIGNED");
    let key = tb.require("MAGOS_TESTBED_COSIGN_KEY");
    let podman = OwnPodman::new(tb);
    let containers = podman.home().join(".config/containers");
    std::fs::create_dir_all(&containers).unwrap();
    // The user's own rules, which must survive: one refuses magos/moving.
    let moving = format!("{}/magos/moving", tb.registry);
    std::fs::write(
        containers.join("policy.json"),
        format!(
            r#"{{"default": [{{"type": "insecureAcceptAnything"}}],
"transports": {{"docker": {{"{moving}": [{{"type": "reject"}}]}}}}}}"#
        ),
    )
    .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("repo")).unwrap();
    std::fs::write(
        tmp.path().join("magos.yaml"),
        format!(
            "registries:\n  insecure: [\"{}\"]\nstate_dir: {}\napply:\n  instance: sigpolicy-test\nverify:\n  - match: \"{image}\"\n    key: {key}\n  - name: lab\n    key: {key}\nverify_policy: write\n",
            tb.registry,
            tmp.path().join("state").display()
        ),
    )
    .unwrap();
    let apply = || {
        Command::new(env!("CARGO_BIN_EXE_magos"))
            .args(["apply", "--no-prune", "--config"])
            .arg(tmp.path().join("magos.yaml"))
            .arg("--repo")
            .arg(tmp.path().join("repo"))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", podman.home())
            .env("CONTAINER_HOST", &tb.container_host)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = apply();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Podman's signature policy now requires the verify: keys"),
        "{stderr}"
    );
    assert!(
        stderr.contains("verify rule 2 (\"lab\") has no `match`"),
        "the rule Podman cannot say is named: {stderr}"
    );
    let policy = std::fs::read_to_string(containers.join("policy.json")).unwrap();
    let registries_d = std::fs::read_to_string(containers.join("registries.d/magos.yaml")).unwrap();
    assert!(policy.contains("sigstoreSigned"), "{policy}");

    // A second run finds everything in place and writes nothing.
    let out = apply();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("now requires"),
        "{}",
        show(&out)
    );
    assert_eq!(
        std::fs::read_to_string(containers.join("policy.json")).unwrap(),
        policy
    );
    assert_eq!(
        std::fs::read_to_string(containers.join("registries.d/magos.yaml")).unwrap(),
        registries_d
    );

    // Magos ran as root here, as the test user in real use: the files go to
    // that user, as rootless Podman wants its own configuration folder.
    let owner = format!("{}:{}", tb.uid, tb.gid);
    let chown = Command::new("chown")
        .args(["-R", &owner])
        .arg(podman.home().join(".config"))
        .status()
        .unwrap();
    assert!(chown.success());

    // Podman, under the written files: the signed digest passes; the unsigned
    // one, the one signed by another key and the one carrying a signature of
    // another digest are refused; the user's own rule still holds.
    let out = podman.pull(&format!("{image}:1.1.0"));
    assert!(out.status.success(), "1.1.0 is signed: {}", show(&out));
    let refused = |tag: &str, why: &str| {
        let out = podman.pull(&format!("{image}:{tag}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(why),
            "{tag} must be refused ({why}): {}",
            show(&out)
        );
    };
    refused("1.2.0", "A signature was required, but no signature exists");
    refused("1.3.0", "cryptographic signature verification failed");
    refused("1.4.0", "does not match");
    let out = podman.pull(&format!("{moving}:latest"));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("rejected"),
        "the user's reject rule is kept: {}",
        show(&out)
    );

    // A policy.json that is not JSON: the apply fails, naming the file.
    std::fs::write(containers.join("policy.json"), "{\"default\": [\n").unwrap();
    let out = apply();
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: line 2",
            containers.join("policy.json").display()
        )),
        "{stderr}"
    );
}

/// A signature stored as an OCI 1.1 referrer (`cosign sign
/// --registry-referrers-mode=oci-1-1`, with a key generated here) of an image
/// pushed to a repository of its own. The test bed's registry (Debian's
/// docker-registry, distribution 2.8) has no referrers API: it answers `404`
/// there, so cosign keeps the referrers in the index tagged `sha256-<hex>` (the
/// referrers tag schema), which Magos reads after asking the API.
#[test]
fn a_signature_stored_as_a_referrer_is_found() {
    let Some(tb) = testbed() else { return };
    let cosign = tb.require("MAGOS_TESTBED_COSIGN");
    let source = format!("{}:1.2.0", tb.require("MAGOS_TEST_IMAGE_SIGNED"));
    let name = crate::support::unique_name("referrers");
    let repo = format!("{}/magos/{name}", tb.registry);
    tb.podman_ok(&["pull", "-q", &source]);
    tb.podman_ok(&["push", "-q", &source, &format!("{repo}:1.0.0")]);
    let digest = tb.manifest_digest(&format!("{repo}:1.0.0"));

    let tmp = tempfile::tempdir().unwrap();
    let cosign_run = |args: &[&str]| {
        let out = Command::new(cosign)
            .args(args)
            .current_dir(tmp.path())
            .env("COSIGN_PASSWORD", "")
            .env("COSIGN_EXPERIMENTAL", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "cosign {args:?}: {}", show(&out));
    };
    cosign_run(&["generate-key-pair", "--output-key-prefix", "referrer"]);
    cosign_run(&[
        "sign",
        "--yes",
        "--key",
        "referrer.key",
        "--tlog-upload=false",
        "--allow-insecure-registry",
        "--allow-http-registry",
        "--registry-referrers-mode=oci-1-1",
        &format!("{repo}@{digest}"),
    ]);
    let hex = digest.trim_start_matches("sha256:");
    let status = |method: &str, path: String| {
        tb.registry_request(
            method,
            &path,
            &[("Accept", crate::support::MANIFEST_ACCEPT)],
        )
        .unwrap()
        .status
    };
    assert_eq!(
        status("GET", format!("/v2/magos/{name}/referrers/{digest}")),
        404,
        "the registry has no referrers API"
    );
    assert_eq!(
        status(
            "HEAD",
            format!("/v2/magos/{name}/manifests/sha256-{hex}.sig")
        ),
        404,
        "no .sig tag: the signature is only a referrer"
    );
    assert_eq!(
        status("HEAD", format!("/v2/magos/{name}/manifests/sha256-{hex}")),
        200,
        "the referrers tag"
    );

    let check_with = |key: &Path| {
        write_files(
            &tmp.path().join("repo"),
            &[(
                "referrers/compose.yaml",
                format!("services:\n  app:\n    image: {repo}:1.0.0 # {SEMVER}\n"),
            )],
        );
        std::fs::write(
            tmp.path().join("magos.yaml"),
            format!(
                "registries:\n  insecure: [\"{}\"]\nstate_dir: {}\nverify:\n  - match: \"{repo}\"\n    key: {}\n",
                tb.registry,
                tmp.path().join("state").display(),
                key.display()
            ),
        )
        .unwrap();
        let out = run(tmp.path());
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        row(&out)
    };
    let app = check_with(&tmp.path().join("referrer.pub"));
    assert_eq!(app["tag"], "1.0.0", "{app}");
    assert_eq!(app["signature"]["chosen"]["verdict"], "verified", "{app}");
    assert_eq!(app["candidates"][0]["signature"]["verdict"], "verified");

    // Under another key the referrer is read and refused for its key.
    let app = check_with(Path::new(tb.require("MAGOS_TESTBED_COSIGN_KEY")));
    let skipped = &app["signature"]["skipped"][0];
    assert_eq!(skipped["verdict"], "bad_signature", "{app}");
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .contains("not by the key"),
        "{app}"
    );
}
