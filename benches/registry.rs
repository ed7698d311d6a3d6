//! Registry traffic and wall time of one check of 50 services over 10
//! repositories against the test bed's registry (`scripts/testbed.sh`).
//! `cargo bench --bench registry`; prints a Markdown table. Without the test bed
//! it says so and exits 0 (a benchmark, not a test).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use magos::cli::check::{Choice, Policies, Watched, check_services};
use magos::registry::{RegistryClient, Settings};

const REPOS: usize = 10;
const TAGS: [&str; 5] = ["1.0.0", "1.2.0", "1.2.3", "2.0.0", "v2.3.1"];
const RUNS: usize = 7;

/// Elects `1.2.3` for services on 1.x and `v2.3.1` for the others: two
/// candidates per repository, as two semver ranges would.
struct TwoRanges;

impl Policies for TwoRanges {
    fn watched(&self, _dir: &Path) -> anyhow::Result<Vec<Watched>> {
        Ok(Vec::new())
    }

    fn decide(&self, service: &Watched, _tags: &[String], _now: SystemTime) -> Choice {
        let tag = if service
            .image
            .rsplit(':')
            .next()
            .is_some_and(|t| t.starts_with('1'))
        {
            "1.2.3"
        } else {
            "v2.3.1"
        };
        Choice::Tag {
            tag: tag.to_owned(),
            reason: String::new(),
        }
    }
}

fn testbed() -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string("/run/magos-testbed/env").ok()?;
    let vars: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (vars.get("MAGOS_TESTBED_READY").map(String::as_str) == Some("1")).then_some(vars)
}

fn main() {
    let Some(vars) = testbed() else {
        println!("registry benchmark skipped: the test bed is not available");
        return;
    };
    let registry = vars["MAGOS_TEST_REGISTRY"].clone();
    let semver = vars["MAGOS_TEST_IMAGE_SEMVER"].clone();
    let user = vars["MAGOS_TESTBED_USER"].clone();
    let runtime_dir = vars["XDG_RUNTIME_DIR_TESTBED"].clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut settings = Settings::default();
    settings.insecure.add_host(&registry);
    let setup = RegistryClient::new(settings.clone());

    // Ten repositories with five tags each, copied from the semver image once.
    for r in 0..REPOS {
        let repo = format!("{registry}/magos/bench-{r}");
        let have = rt
            .block_on(setup.tags(&magos::registry::parse_image(&repo).unwrap()))
            .unwrap_or_default();
        for tag in TAGS.iter().filter(|t| !have.iter().any(|h| h == *t)) {
            let status = std::process::Command::new("runuser")
                .args(["-u", &user, "--", "env"])
                .arg(format!("XDG_RUNTIME_DIR={runtime_dir}"))
                .args([
                    "skopeo",
                    "copy",
                    "-q",
                    "--src-tls-verify=false",
                    "--dest-tls-verify=false",
                ])
                .arg(format!("docker://{semver}:{tag}"))
                .arg(format!("docker://{repo}:{tag}"))
                .current_dir("/")
                .status()
                .unwrap();
            assert!(status.success(), "skopeo copy to {repo}:{tag}");
        }
    }

    let services: Vec<Watched> = (0..REPOS * TAGS.len())
        .map(|i| {
            let repo = format!("{registry}/magos/bench-{}", i / TAGS.len());
            Watched {
                id: i,
                stack: "bench".to_owned(),
                service: format!("svc{i}"),
                location: String::new(),
                image: format!("{repo}:{}", TAGS[i % TAGS.len()]),
                watch: repo,
                platform: None,
            }
        })
        .collect();

    let mut times = Vec::new();
    let mut requests = None;
    for _ in 0..RUNS {
        // A new client each run: no token, connection or answer is reused.
        let client = RegistryClient::new(settings.clone());
        let start = Instant::now();
        let rows = rt.block_on(check_services(
            &client,
            &TwoRanges,
            &services,
            SystemTime::now(),
        ));
        times.push(start.elapsed());
        assert!(rows.iter().all(|r| r.error.is_none()), "{rows:?}");
        requests = Some(client.request_counts(&registry));
    }
    times.sort();
    let median: Duration = times[RUNS / 2];
    let counts = requests.unwrap();
    println!(
        "| services | repositories | tag lists | HEAD | GET manifest | total requests | wall time (median of {RUNS}) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {} | {REPOS} | {} | {} | {} | {} | {:.0} ms |",
        services.len(),
        counts.tag_pages,
        counts.manifest_heads,
        counts.manifest_gets,
        counts.registry_requests() + counts.token_gets,
        median.as_secs_f64() * 1000.0
    );
}
