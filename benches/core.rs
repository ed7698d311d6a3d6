//! Benchmarks of the pure core (run with `cargo bench --bench core [FILTER]`):
//! choosing among 10,000 tags, loading and rewriting a 500-service repository,
//! and the start order of stacks of 1,000 and 4,000 services. Plain timing with
//! a warm-up and the median of several runs; nothing asserts on time. A FILTER
//! runs only the benchmarks whose name contains it.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use magos::core::annotation::parse_json;
use magos::core::compose::{StackSource, load};
use magos::core::interpolate::Vars;
use magos::core::plan::start_order;
use magos::core::policy::Candidate;
use magos::core::rewrite::{Edit, rewrite_all};
use magos::core::spec::{
    ContainerImage, ContainerSpec, Dependency, DependencyCondition, StackSpec,
};

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// The first argument that is not an option (`cargo bench` passes `--bench`).
fn filter() -> Option<String> {
    std::env::args().skip(1).find(|a| !a.starts_with('-'))
}

fn bench(name: &str, iterations: u32, mut f: impl FnMut()) {
    if filter().is_some_and(|f| !name.contains(&f)) {
        return;
    }
    for _ in 0..3 {
        f();
    }
    let mut runs = Vec::new();
    for _ in 0..iterations {
        let t = Instant::now();
        f();
        runs.push(t.elapsed());
    }
    println!(
        "{name:<58} median {:>10.3?} over {iterations} runs",
        median(runs)
    );
}

fn tags() -> Vec<String> {
    let mut tags = Vec::with_capacity(10_000);
    let mut i = 0u32;
    while tags.len() < 10_000 {
        let (maj, min, pat) = (i / 400, (i / 20) % 20, i % 20);
        match i % 10 {
            0 => tags.push(format!("v{maj}.{min}.{pat}")),
            1 => tags.push(format!("{maj}.{min}.{pat}-rc.{}", i % 3)),
            2 => tags.push(format!("main-{i:08x}-{}", 1_700_000_000 + i)),
            3 => tags.push(format!("sha-{:012x}", u64::from(i) * 7919)),
            _ => tags.push(format!("{maj}.{min}.{pat}")),
        }
        i += 1;
    }
    tags
}

fn repository() -> Vec<(String, String)> {
    // 50 stacks of 10 services: 500 annotated image lines.
    (0..50)
        .map(|s| {
            let mut text = format!("# stack {s}\nname: stack{s}\nservices:\n");
            for n in 0..10 {
                text.push_str(&format!(
                    "  svc{n}:\n    image: ghcr.io/org/app{n}:1.{n}.0 # {{\"magos\": {{\"policy\": \"semver\", \"range\": \"^1\"}}}}\n    restart: always\n    ports:\n      - \"127.0.0.1:{}:80\"\n    environment:\n      MODE: production\n\n",
                    10_000 + s * 10 + n
                ));
            }
            (format!("stacks/s{s}/compose.yaml"), text)
        })
        .collect()
}

/// `n` services, each waiting on the one declared after it (the order is the
/// declaration order reversed), the last tenth independent.
fn chain(n: usize) -> StackSpec {
    let image = ContainerImage {
        reference: "busybox:1".into(),
        qualified: "docker.io/library/busybox:1".into(),
        digest: None,
    };
    let services = (0..n)
        .map(|i| {
            let mut s = ContainerSpec::new("big", &format!("s{i}"), image.clone());
            if i + 1 < n * 9 / 10 {
                s.depends_on.push(Dependency {
                    service: format!("s{}", i + 1),
                    condition: DependencyCondition::ServiceStarted,
                    restart: false,
                });
            }
            s
        })
        .collect();
    StackSpec {
        project: "big".into(),
        instance: "default".into(),
        working_dir: "/srv/big".into(),
        config_files: vec!["compose.yaml".into()],
        networks: vec![],
        volumes: vec![],
        services,
    }
}

fn main() {
    let tags = tags();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let candidates: Vec<Candidate<'_>> = tags.iter().map(|t| Candidate::tag(t)).collect();
    let semver = parse_json(r#"{"policy": "semver", "range": ">=3.0.0 <20.0.0 || ^22"}"#).unwrap();
    let numerical = parse_json(
        r#"{"policy": "numerical", "filter": "^main-[a-f0-9]+-(?P<ts>[0-9]+)$", "extract": "$ts"}"#,
    )
    .unwrap();
    let alphabetical = parse_json(r#"{"policy": "alphabetical"}"#).unwrap();
    println!("choosing among {} tags:", tags.len());
    bench(
        "  semver range (prereleases, v prefixes, noise)",
        50,
        || {
            black_box(semver.decide(black_box(&candidates), Some("3.0.0"), now));
        },
    );
    bench("  numerical with filter + extract", 50, || {
        black_box(numerical.decide(black_box(&candidates), None, now));
    });
    bench("  alphabetical", 50, || {
        black_box(alphabetical.decide(black_box(&candidates), None, now));
    });

    let repo = repository();
    let vars = Vars::new();
    let pins: BTreeMap<String, String> = (0..10)
        .map(|n| {
            (
                format!("svc{n}"),
                format!("ghcr.io/org/app{n}:1.{n}.1@sha256:{}", "ab".repeat(32)),
            )
        })
        .collect();
    println!(
        "a repository of {} stacks, {} services:",
        repo.len(),
        repo.len() * 10
    );
    bench(
        "  load every stack (YAML, model, annotations, policies)",
        20,
        || {
            for (path, text) in &repo {
                black_box(load(&StackSource {
                    compose: (path, text),
                    override_file: None,
                    vars: &vars,
                }));
            }
        },
    );
    let current: Vec<String> = (0..10)
        .map(|n| format!("ghcr.io/org/app{n}:1.{n}.0"))
        .collect();
    let services: Vec<String> = (0..10).map(|n| format!("svc{n}")).collect();
    bench(
        "  rewrite all 500 image lines (50 files, one pass each)",
        20,
        || {
            for (_, text) in &repo {
                let edits: Vec<Edit<'_>> = (0..10)
                    .map(|n| Edit {
                        service: &services[n],
                        expected: &current[n],
                        new: &pins[&services[n]],
                    })
                    .collect();
                let (out, errors) = rewrite_all(text, &edits);
                assert!(errors.is_empty(), "{errors:?}");
                black_box(out);
            }
        },
    );
    let mut big = String::from("services:\n");
    for n in 0..500 {
        big.push_str(&format!("  svc{n}:\n    image: nginx:1.{n} # {{\"magos\": {{\"policy\": \"semver\"}}}}\n    restart: always\n"));
    }
    let new: Vec<String> = (0..500)
        .map(|n| format!("nginx:1.{n}.1@sha256:{}", "cd".repeat(32)))
        .collect();
    let names: Vec<String> = (0..500).map(|n| format!("svc{n}")).collect();
    let expected: Vec<String> = (0..500).map(|n| format!("nginx:1.{n}")).collect();
    bench(
        "  one 500-service file: rewrite every image in one pass",
        20,
        || {
            let edits: Vec<Edit<'_>> = (0..500)
                .map(|n| Edit {
                    service: &names[n],
                    expected: &expected[n],
                    new: &new[n],
                })
                .collect();
            let (out, errors) = rewrite_all(&big, &edits);
            assert!(errors.is_empty());
            black_box(out);
        },
    );
    println!("the start order of one stack:");
    for (n, iterations) in [(1_000, 5), (4_000, 5)] {
        let stack = chain(n);
        bench(
            &format!("  start order, {n} services (a chain declared backwards)"),
            iterations,
            || {
                black_box(start_order(black_box(&stack)).unwrap());
            },
        );
    }
}
