//! Checks of the test bed itself: the rootless libpod API answers, the registry
//! holds the test images, the podman CLI runs containers as the test user, and the
//! sops and age tools work.
//! Everything here uses only std and raw HTTP, so a failure points at the machine,
//! not at Magos's own clients.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use crate::support::{self, HttpResponse, Testbed, testbed};

/// The repository path of an image reference on the test registry
/// (`$MAGOS_TEST_REGISTRY/magos/semver` → `magos/semver`).
fn repository_of<'a>(tb: &Testbed, image: &'a str) -> &'a str {
    let rest = image
        .strip_prefix(tb.registry.as_str())
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or_else(|| panic!("{image} is not on the test registry {}", tb.registry));
    rest.split(':').next().unwrap_or(rest)
}

fn json(r: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", r.text()))
}

/// Every tag of a repository, following the registry's `Link` header page by
/// page; also returns how many pages were read.
fn all_tags(tb: &Testbed, repository: &str, page_size: usize) -> (Vec<String>, usize) {
    let mut path = format!("/v2/{repository}/tags/list?n={page_size}");
    let mut tags = Vec::new();
    let mut pages = 0;
    loop {
        let r = tb
            .registry_request("GET", &path, &[])
            .unwrap_or_else(|e| panic!("GET {path} from the registry: {e}"));
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        pages += 1;
        assert!(pages <= 100, "more than 100 pages: the Link header loops");
        let body = json(&r);
        let page = body["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("no tags array in {}", r.text()));
        tags.extend(page.iter().filter_map(|t| t.as_str().map(str::to_string)));
        // `Link: </v2/…/tags/list?last=…&n=…>; rel="next"`
        match r
            .header("link")
            .and_then(|l| l.split_once('<'))
            .and_then(|(_, l)| l.split_once('>'))
        {
            Some((next, _)) => path = next.to_string(),
            None => return (tags, pages),
        }
    }
}

fn digest(tb: &Testbed, repository: &str, reference: &str) -> String {
    let path = format!("/v2/{repository}/manifests/{reference}");
    let r = tb
        .registry_request("HEAD", &path, &[("Accept", support::MANIFEST_ACCEPT)])
        .unwrap_or_else(|e| panic!("HEAD {path}: {e}"));
    assert_eq!(r.status, 200, "HEAD {path}");
    r.header("docker-content-digest")
        .unwrap_or_else(|| panic!("HEAD {path} has no Docker-Content-Digest"))
        .to_string()
}

/// Removes a container when dropped, so a failing test leaves nothing running.
struct ContainerGuard<'a> {
    tb: &'a Testbed,
    name: String,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        // Never panics: a panic while unwinding would abort the whole test binary.
        let _ = self
            .tb
            .podman_command(&["rm", "--force", "--time", "0", &self.name])
            .output();
    }
}

#[test]
fn env_file_lines_parse_like_the_shell() {
    let vars = support::parse_env(
        "# comment\n\nA=1\nexport B=two words\nC=\"quoted\"\nD='single'\nE=\nF=a=b\nnot a pair\n",
    );
    let expected: BTreeMap<String, String> = [
        ("A", "1"),
        ("B", "two words"),
        ("C", "quoted"),
        ("D", "single"),
        ("E", ""),
        ("F", "a=b"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(vars, expected);
}

#[test]
fn libpod_socket_answers_ping() {
    let Some(tb) = testbed() else { return };
    assert_eq!(
        tb.container_host,
        format!("unix://{}", tb.podman_socket.display())
    );
    let r = tb.libpod("GET", "/v5.0.0/libpod/_ping").expect("GET _ping");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK");
    let api = r
        .header("libpod-api-version")
        .expect("a Libpod-Api-Version header");
    assert!(api.starts_with("5."), "Libpod-Api-Version {api}");
}

#[test]
fn libpod_reports_podman_5_or_later() {
    let Some(tb) = testbed() else { return };
    let r = tb
        .libpod("GET", "/v5.0.0/libpod/version")
        .expect("GET version");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = json(&r);
    let version = body["Version"].as_str().expect("a Version string");
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("version {version:?} has no major number"));
    assert!(major >= 5, "podman {version} is older than 5");
    if let Some(expected) = tb.var("MAGOS_TESTBED_PODMAN_VERSION") {
        assert_eq!(version, expected);
    }
}

#[test]
fn registry_lists_every_semver_tag_following_pages() {
    let Some(tb) = testbed() else { return };
    let repository = repository_of(tb, tb.require("MAGOS_TEST_IMAGE_SEMVER"));
    let (tags, pages) = all_tags(tb, repository, 50);
    eprintln!(
        "{repository}: {} tags in {pages} page(s) of at most 50",
        tags.len()
    );

    let unique: BTreeSet<&str> = tags.iter().map(String::as_str).collect();
    assert_eq!(unique.len(), tags.len(), "a tag is listed twice: {tags:?}");
    assert!(tags.len() > 100, "only {} tags", tags.len());

    let tags_file = tb.require("MAGOS_TEST_IMAGE_SEMVER_TAGS_FILE");
    let expected_text = std::fs::read_to_string(tags_file)
        .unwrap_or_else(|e| panic!("cannot read {tags_file}: {e}"));
    let expected: BTreeSet<&str> = expected_text.lines().filter(|l| !l.is_empty()).collect();
    let missing: Vec<&&str> = expected.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "tags missing from the registry: {missing:?}"
    );
    for tag in [
        "1.0.0",
        "1.10.0",
        "v2.3.0",
        "2.1.0-rc.1",
        "3.0.0-beta.2",
        "latest",
        "main-abc123-1700000000",
        "2024.01.02",
    ] {
        assert!(unique.contains(tag), "{tag} is not listed");
    }
}

#[test]
fn registry_semver_versions_have_the_documented_digests() {
    let Some(tb) = testbed() else { return };
    let repository = repository_of(tb, tb.require("MAGOS_TEST_IMAGE_SEMVER"));
    let distinct: Vec<&str> = tb
        .require("MAGOS_TEST_IMAGE_SEMVER_DISTINCT")
        .split(',')
        .collect();
    assert!(
        distinct.len() >= 5,
        "too few distinct versions: {distinct:?}"
    );
    let digests: BTreeMap<&str, String> = distinct
        .iter()
        .map(|t| (*t, digest(tb, repository, t)))
        .collect();
    let unique: BTreeSet<&String> = digests.values().collect();
    assert_eq!(
        unique.len(),
        distinct.len(),
        "digests are not distinct: {digests:?}"
    );

    // The bulk shares one image, different from every distinct version.
    let bulk = digest(tb, repository, "1.1.1");
    assert_eq!(bulk, digest(tb, repository, "0.1.0"));
    assert!(!unique.contains(&bulk));
    // `latest` and `stable` point at the newest release.
    let newest = tb.require("MAGOS_TEST_IMAGE_SEMVER_NEWEST");
    assert_eq!(digest(tb, repository, "latest"), digests[newest]);
    assert_eq!(digest(tb, repository, "stable"), digests[newest]);
}

#[test]
fn registry_multiarch_is_an_oci_index_with_two_platforms() {
    let Some(tb) = testbed() else { return };
    let repository = repository_of(tb, tb.require("MAGOS_TEST_IMAGE_MULTIARCH"));
    for (tag, media_type, entry_type) in [
        (
            tb.require("MAGOS_TEST_IMAGE_MULTIARCH_TAG"),
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
        ),
        (
            tb.require("MAGOS_TEST_IMAGE_MULTIARCH_DOCKER_TAG"),
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    ] {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let r = tb
            .registry_request("GET", &path, &[("Accept", support::MANIFEST_ACCEPT)])
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(media_type), "{path}");
        let index = json(&r);
        assert_eq!(index["mediaType"], media_type);
        let entries = index["manifests"].as_array().expect("a manifests array");
        let platforms: BTreeSet<String> = entries
            .iter()
            .map(|m| {
                assert_eq!(m["mediaType"], entry_type, "{path}");
                format!(
                    "{}/{}",
                    m["platform"]["os"].as_str().unwrap_or("?"),
                    m["platform"]["architecture"].as_str().unwrap_or("?")
                )
            })
            .collect();
        assert_eq!(
            platforms,
            BTreeSet::from(["linux/amd64".to_string(), "linux/arm64".to_string()]),
            "{path}"
        );
        // Each entry is itself in the registry.
        for m in entries {
            let entry = m["digest"].as_str().expect("an entry digest");
            assert_eq!(digest(tb, repository, entry), entry);
        }
    }
}

#[test]
fn registry_moving_and_httpd_tags_exist() {
    let Some(tb) = testbed() else { return };
    let moving = repository_of(tb, tb.require("MAGOS_TEST_IMAGE_MOVING"));
    assert!(digest(tb, moving, "latest").starts_with("sha256:"));
    let httpd_image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    let (_, tag) = httpd_image
        .rsplit_once(':')
        .expect("a tag on the httpd image");
    assert!(digest(tb, repository_of(tb, httpd_image), tag).starts_with("sha256:"));
}

#[test]
fn podman_cli_runs_rootless_as_the_test_user() {
    let Some(tb) = testbed() else { return };
    let info = tb.podman_ok(&[
        "info",
        "--format",
        "{{.Host.Security.Rootless}} {{.Host.OCIRuntime.Name}}",
    ]);
    assert_eq!(info.trim(), "true runc");
}

#[test]
fn httpd_image_serves_a_page_on_a_published_loopback_port() {
    let Some(tb) = testbed() else { return };
    let image = tb.require("MAGOS_TEST_IMAGE_HTTPD");
    let port = support::free_port();
    let name = support::unique_name("magos-testbed-httpd");
    let guard = ContainerGuard {
        tb,
        name: name.clone(),
    };
    let publish = format!("127.0.0.1:{port}:8080");
    tb.podman_ok(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--publish",
        &publish,
        image,
    ]);

    let mut last = String::new();
    let served = support::wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        match support::http_get(port, "/") {
            Ok(r) if r.status == 200 => r.text().contains("magos test bed httpd"),
            Ok(r) => {
                last = format!("HTTP {}", r.status);
                false
            }
            Err(e) => {
                last = e.to_string();
                false
            }
        }
    });
    assert!(
        served,
        "no page on 127.0.0.1:{port} within 30 s (last: {last})"
    );
    drop(guard);
    let left = tb.podman_ok(&[
        "ps",
        "--all",
        "--quiet",
        "--filter",
        &format!("name=^{name}$"),
    ]);
    assert!(left.trim().is_empty(), "container {name} was not removed");
}

#[test]
fn containers_read_files_from_a_user_dir() {
    let Some(tb) = testbed() else { return };
    let dir = tb.user_dir("magos-testbed");
    let file = dir.path().join("greeting.txt");
    std::fs::write(&file, "hello from the host\n").expect("write greeting.txt");
    let volume = format!("{}:/data:ro", dir.path().display());
    let out = tb.podman_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--volume",
        &volume,
        tb.require("MAGOS_TEST_IMAGE_HTTPD"),
        "cat",
        "/data/greeting.txt",
    ]);
    assert_eq!(out, "hello from the host\n");
}

#[test]
fn sops_and_age_round_trip_a_file() {
    let Some(tb) = testbed() else { return };
    let sops = tb.require("MAGOS_TESTBED_SOPS");
    let age_keygen = tb.require("MAGOS_TESTBED_AGE_KEYGEN");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key = dir.path().join("key.txt");
    let keygen = Command::new(age_keygen)
        .arg("-o")
        .arg(&key)
        .output()
        .expect("run age-keygen");
    assert!(keygen.status.success(), "age-keygen: {keygen:?}");
    let key_text = std::fs::read_to_string(&key).expect("read the age key");
    let recipient = key_text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("a public key line in the age key file");

    let plain = dir.path().join("secret.yaml");
    std::fs::write(&plain, "token: not-a-real-secret\n").expect("write secret.yaml");
    let encrypt = Command::new(sops)
        .args(["--encrypt", "--age", recipient])
        .arg(&plain)
        .output()
        .expect("run sops --encrypt");
    assert!(encrypt.status.success(), "sops --encrypt: {encrypt:?}");
    let encrypted = String::from_utf8_lossy(&encrypt.stdout).into_owned();
    assert!(encrypted.contains("ENC[AES256_GCM,"), "{encrypted}");
    assert!(!encrypted.contains("not-a-real-secret"));

    let sealed = dir.path().join("secret.sops.yaml");
    std::fs::write(&sealed, &encrypted).expect("write secret.sops.yaml");
    let decrypt = Command::new(sops)
        .arg("--decrypt")
        .arg(&sealed)
        .env("SOPS_AGE_KEY_FILE", &key)
        .output()
        .expect("run sops --decrypt");
    assert!(decrypt.status.success(), "sops --decrypt: {decrypt:?}");
    assert_eq!(
        String::from_utf8_lossy(&decrypt.stdout),
        "token: not-a-real-secret\n"
    );
}

#[test]
fn registry_with_auth_serves_only_with_credentials() {
    let Some(tb) = testbed() else { return };
    let image = format!("{}:1.0.0", tb.require("MAGOS_TEST_IMAGE_PRIVATE"));
    let auth_file = tb.require("MAGOS_TEST_REGISTRY_AUTH_FILE");
    let dir = tb.user_dir("magos-testbed-auth");
    let empty = dir.path().join("auth.json");
    std::fs::write(&empty, "{\"auths\":{}}\n").expect("write an empty auth.json");
    let empty = empty.to_str().expect("a UTF-8 path");

    // The test user's podman trusts the registry's CA; without credentials it is
    // refused, with the test bed's auth.json it may read.
    let refused = tb.podman_cli(&["pull", "--quiet", "--authfile", empty, &image]);
    assert!(
        !refused.status.success(),
        "read {image} without credentials"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(
        stderr.contains("unauthorized") || stderr.contains("authentication required"),
        "{stderr}"
    );
    let id = tb.podman_ok(&["pull", "--quiet", "--authfile", auth_file, &image]);
    assert!(
        id.trim().len() == 64 && id.trim().bytes().all(|b| b.is_ascii_hexdigit()),
        "not an image id: {id}"
    );
}
