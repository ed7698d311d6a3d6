//! `magos secrets check` end to end: the real binary over a folder of real-sops
//! fixtures, good and tampered, with identities from the environment.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sops/age-yaml")
}

/// A repository folder with three good SOPS files, a tampered one, a plaintext
/// YAML file and an unrelated file.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("stacks/app")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    for (from, to) in [
        ("age_example.yaml", "stacks/app/secrets.yaml"),
        ("age_mac_only_encrypted.yaml", "stacks/app/mac-only.yml"),
        ("age_encrypted_regex.yaml", "regex.yaml"),
        ("age_example_plaintext.yaml", "stacks/app/plain.yaml"),
        // sops files under .git are not the repository's content.
        ("age_example.yaml", ".git/ignored.yaml"),
    ] {
        std::fs::copy(fixtures().join(from), root.join(to)).unwrap();
    }
    let good = std::fs::read_to_string(fixtures().join("age_unencrypted_suffix.yaml")).unwrap();
    let tampered = good.replacen("    a: aaa", "    a: aab", 1);
    assert_ne!(good, tampered);
    std::fs::write(root.join("stacks/app/tampered.yaml"), tampered).unwrap();
    std::fs::write(root.join("README.md"), "# notes\n").unwrap();
    dir
}

fn magos(home: &Path, envs: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const PLAINTEXT_VALUES: [&str; 4] = ["Welcome to SOPS", "example_value", "1234.56789", "xxx"];

fn assert_no_values(text: &str) {
    for v in PLAINTEXT_VALUES {
        assert!(
            !text.contains(v),
            "output holds a secret value {v:?}:\n{text}"
        );
    }
}

#[test]
fn check_reports_good_and_tampered_files_without_values() {
    let repo = repo();
    let home = tempfile::tempdir().unwrap();
    let keys = fixtures().join("keys.txt");
    let (code, stdout, stderr) = magos(
        home.path(),
        &[("SOPS_AGE_KEY_FILE", keys.to_str().unwrap())],
        &["secrets", "check", "--repo", repo.path().to_str().unwrap()],
    );
    assert_eq!(
        code, 1,
        "one file fails\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_no_values(&stdout);
    assert_no_values(&stderr);
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"))
            .to_owned()
    };
    assert!(line("regex.yaml").contains("verified"), "{stdout}");
    assert!(
        line("stacks/app/secrets.yaml").contains("verified"),
        "{stdout}"
    );
    assert!(
        line("stacks/app/mac-only.yml").contains("verified"),
        "{stdout}"
    );
    let bad = line("stacks/app/tampered.yaml");
    assert!(
        bad.contains("FAILED") && bad.contains("the MAC does not match"),
        "{bad}"
    );
    assert!(
        !stdout.contains("plain.yaml"),
        "a plaintext file is not a SOPS file"
    );
    assert!(!stdout.contains("README"), "{stdout}");
    assert!(
        !stdout.contains("ignored.yaml"),
        ".git is skipped:\n{stdout}"
    );
    assert!(
        stdout.contains("4 SOPS files: 3 good, 1 failing"),
        "{stdout}"
    );
}

#[test]
fn check_json_output_and_all_good_exit_code() {
    let repo = repo();
    std::fs::remove_file(repo.path().join("stacks/app/tampered.yaml")).unwrap();
    let home = tempfile::tempdir().unwrap();
    // SOPS_AGE_KEY alone is enough.
    let key = std::fs::read_to_string(fixtures().join("keys.txt")).unwrap();
    let (code, stdout, stderr) = magos(
        home.path(),
        &[("SOPS_AGE_KEY", key.as_str())],
        &[
            "secrets",
            "check",
            "--repo",
            repo.path().to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["ok"], 3);
    assert_eq!(v["failed"], 0);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        assert_eq!(f["decrypts"], true, "{f}");
        assert_eq!(f["mac_verified"], true, "{f}");
        assert_eq!(f["format"], "yaml", "{f}");
        assert!(f["error"].is_null(), "{f}");
    }
    assert!(!stdout.contains("AGE-SECRET-KEY"), "{stdout}");
    assert_no_values(&stdout);
}

#[test]
fn check_without_a_key_or_with_the_wrong_key_fails_every_file() {
    let repo = repo();
    let home = tempfile::tempdir().unwrap();
    let (code, stdout, _) = magos(
        home.path(),
        &[],
        &["secrets", "check", "--repo", repo.path().to_str().unwrap()],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("no age identity found"), "{stdout}");
    assert!(
        stdout.contains("4 SOPS files: 0 good, 4 failing"),
        "{stdout}"
    );

    // A key in the default location that is not the files' key.
    let dir = home.path().join(".config/sops/age");
    std::fs::create_dir_all(&dir).unwrap();
    use age::secrecy::ExposeSecret as _;
    let stranger = age::x25519::Identity::generate();
    std::fs::write(
        dir.join("keys.txt"),
        format!("{}\n", stranger.to_string().expose_secret()),
    )
    .unwrap();
    let (code, stdout, _) = magos(
        home.path(),
        &[],
        &["secrets", "check", "--repo", repo.path().to_str().unwrap()],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("none of the available age identities can decrypt the data key"),
        "{stdout}"
    );
    assert_no_values(&stdout);
}

#[test]
fn check_of_a_missing_folder_is_an_error() {
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("nope");
    let (code, _, stderr) = magos(
        home.path(),
        &[],
        &["secrets", "check", "--repo", missing.to_str().unwrap()],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("nope") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn check_of_a_folder_without_sops_files_is_fine() {
    let home = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("compose.yaml"), "services: {}\n").unwrap();
    let (code, stdout, _) = magos(
        home.path(),
        &[],
        &["secrets", "check", "--repo", empty.path().to_str().unwrap()],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("no SOPS files found"), "{stdout}");
}

#[test]
fn check_reports_a_damaged_sops_file_instead_of_skipping_it() {
    let repo = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixtures().join("age_example.yaml")).unwrap();
    // Cut in the middle of the metadata: no longer valid YAML.
    let damaged = &good[..good.find("lastmodified").unwrap() - 20];
    let damaged = format!("{damaged}\n  broken: [unclosed\n");
    std::fs::write(repo.path().join("damaged.yaml"), damaged).unwrap();
    let home = tempfile::tempdir().unwrap();
    let keys = fixtures().join("keys.txt");
    let (code, stdout, _) = magos(
        home.path(),
        &[("SOPS_AGE_KEY_FILE", keys.to_str().unwrap())],
        &["secrets", "check", "--repo", repo.path().to_str().unwrap()],
    );
    assert_eq!(code, 1, "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("damaged.yaml"))
        .unwrap();
    assert!(line.contains("not a valid yaml file"), "{line}");
}
