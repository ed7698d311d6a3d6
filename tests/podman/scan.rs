//! The vulnerability gate (`scan:`) against the test bed's registry: a
//! scripted scanner (the real Trivy and Grype need a vulnerability database
//! download, which the tests cannot reach) answers fixture reports in Trivy's
//! and Grype's JSON shapes for the four `magos/signed` digests:
//! `1.1.0` clean, `1.2.0` one high finding, `1.3.0` that one and another,
//! `1.4.0` a critical one.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::git_fixture::write_files;
use crate::support::{Testbed, show, testbed};

const SEMVER: &str = r#"{"magos": {"policy": "semver", "range": "^1"}}"#;

/// The findings of each tag: `(severity, id)`.
fn findings(tag: &str) -> &'static [(&'static str, &'static str)] {
    match tag {
        "1.2.0" => &[("HIGH", "CVE-2026-0001")],
        "1.3.0" => &[("HIGH", "CVE-2026-0001"), ("HIGH", "CVE-2026-0002")],
        "1.4.0" => &[("CRITICAL", "CVE-2026-0003")],
        _ => &[],
    }
}

/// A scanner script answering `shape` (`trivy` or `grype`) JSON for the image
/// reference it is given last, by digest or tag.
fn scanner(tb: &Testbed, dir: &Path, shape: &str) -> String {
    let image = tb.require("MAGOS_TEST_IMAGE_SIGNED");
    let mut cases = String::new();
    for tag in ["1.1.0", "1.2.0", "1.3.0", "1.4.0"] {
        let digest = tb.manifest_digest(&format!("{image}:{tag}"));
        let report = match shape {
            "trivy" => {
                let vulns: Vec<String> = findings(tag)
                    .iter()
                    .map(|(s, id)| {
                        format!(
                            r#"{{"VulnerabilityID":"{id}","Severity":"{s}","PkgName":"busybox"}}"#
                        )
                    })
                    .collect();
                format!(
                    r#"{{"SchemaVersion":2,"ArtifactName":"x","Results":[{{"Target":"x","Vulnerabilities":[{}]}}]}}"#,
                    vulns.join(",")
                )
            }
            _ => {
                let matches: Vec<String> = findings(tag)
                    .iter()
                    .map(|(s, id)| {
                        format!(
                            r#"{{"vulnerability":{{"id":"{id}","severity":"{}"}},"artifact":{{"name":"busybox"}}}}"#,
                            s[..1].to_owned() + &s[1..].to_lowercase()
                        )
                    })
                    .collect();
                format!(
                    r#"{{"matches":[{}],"source":{{"type":"image"}}}}"#,
                    matches.join(",")
                )
            }
        };
        cases.push_str(&format!("  *@{digest}|*:{tag}) echo '{report}' ;;\n"));
    }
    let path = dir.join(format!("scan-{shape}"));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nfor last; do :; done\ncase \"$last\" in\n{cases}  *) echo \"unknown image $last\" >&2; exit 4 ;;\nesac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// `magos check --output json` with `scan` as the `scan:` section, the
/// service written at `current`.
fn check(tb: &Testbed, dir: &Path, current: &str, scan: &str) -> Output {
    let image = tb.require("MAGOS_TEST_IMAGE_SIGNED");
    write_files(
        &dir.join("repo"),
        &[(
            "scanned/compose.yaml",
            format!("services:\n  app:\n    image: {image}:{current} # {SEMVER}\n"),
        )],
    );
    std::fs::write(
        dir.join("magos.yaml"),
        format!(
            "registries:\n  insecure: [\"{}\"]\nstate_dir: {}\nscan:\n{scan}",
            tb.registry,
            dir.join("state").display()
        ),
    )
    .unwrap();
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
    assert_eq!(out.status.code(), Some(0), "{}", show(out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", show(out)));
    v.as_array().unwrap()[0].clone()
}

fn skipped(app: &serde_json::Value) -> Vec<String> {
    app["signature"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["verdict"], "blocked", "{s}");
            s["tag"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn a_trivy_report_with_a_critical_finding_blocks_the_candidate() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let trivy = scanner(tb, dir.path(), "trivy");
    let app = row(&check(
        tb,
        dir.path(),
        "1.1.0",
        &format!("  command: [{trivy}]\n  block: critical\n"),
    ));
    assert_eq!(app["tag"], "1.3.0", "{app}");
    assert_eq!(skipped(&app), ["1.4.0"]);
    let reason = app["signature"]["skipped"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("CVE-2026-0003"), "{reason}");
    assert_eq!(app["signature"]["scan"]["verdict"], "allowed", "{app}");
    assert_eq!(app["signature"]["scan"]["high"], 2, "{app}");
    // Per candidate, the scan verdict in its own field, no signature asked.
    let candidates = app["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2, "{app}");
    assert_eq!(candidates[0]["tag"], "1.4.0");
    assert_eq!(candidates[0]["chosen"], false);
    assert_eq!(candidates[0]["scan"]["verdict"], "blocked", "{app}");
    assert!(candidates[0].get("signature").is_none(), "{app}");
    assert_eq!(candidates[1]["tag"], "1.3.0");
    assert_eq!(candidates[1]["chosen"], true);
    assert_eq!(candidates[1]["scan"]["verdict"], "allowed", "{app}");
    assert_eq!(candidates[1]["scan"]["critical"], 0, "{app}");
}

#[test]
fn a_grype_report_blocks_high_findings_and_more_than_current_compares() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let grype = scanner(tb, dir.path(), "grype");
    let app = row(&check(
        tb,
        dir.path(),
        "1.1.0",
        &format!("  command: [{grype}]\n  block: high\n"),
    ));
    assert_eq!(app["tag"], "1.1.0", "{app}");
    assert_eq!(skipped(&app), ["1.4.0", "1.3.0", "1.2.0"]);

    // Running 1.2.0 (one high finding): 1.3.0 adds one, 1.4.0 a critical one.
    let app = row(&check(
        tb,
        dir.path(),
        "1.2.0",
        &format!("  command: [{grype}]\n  block: more_than_current\n"),
    ));
    assert_eq!(app["tag"], "1.2.0", "{app}");
    assert_eq!(skipped(&app), ["1.4.0", "1.3.0"]);
    let reason = app["signature"]["skipped"][1]["reason"].as_str().unwrap();
    assert!(
        reason.contains("CVE-2026-0002") && !reason.contains("CVE-2026-0001"),
        "{reason}"
    );
}

#[test]
fn a_hanging_scanner_is_cut_at_its_time_limit_and_on_error_decides() {
    let Some(tb) = testbed() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let hangs = dir.path().join("scan-hangs");
    std::fs::write(
        &hangs,
        format!(
            "#!/bin/sh\necho $$ >> '{}'\nexec sleep 3600\n",
            pids.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hangs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hangs = hangs.display();

    let app = row(&check(
        tb,
        dir.path(),
        "1.1.0",
        &format!("  command: [{hangs}]\n  on_error: allow\n  timeout: 1s\n"),
    ));
    assert_eq!(app["tag"], "1.4.0", "{app}");
    assert_eq!(app["signature"]["scan"]["verdict"], "unscanned", "{app}");
    assert!(
        app["signature"]["scan"]["reason"]
            .as_str()
            .unwrap()
            .contains("did not finish within 1s (scan.timeout)"),
        "{app}"
    );

    let app = row(&check(
        tb,
        dir.path(),
        "1.1.0",
        &format!("  command: [{hangs}]\n  on_error: block\n  timeout: 1s\n"),
    ));
    assert!(app["tag"].is_null(), "nothing pinned: {app}");
    assert_eq!(skipped(&app), ["1.4.0", "1.3.0", "1.2.0", "1.1.0"]);

    // Every scanner started was killed.
    for pid in std::fs::read_to_string(&pids).unwrap().lines() {
        let gone = crate::support::wait_until(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(50),
            || !Path::new(&format!("/proc/{pid}")).exists(),
        );
        assert!(gone, "scanner pid {pid} still runs");
    }
}
