//! Policy decisions over tag lists: prereleases, `v` prefixes, noise, thousands of
//! tags, ties, filters, minAge and platforms.

use std::time::{Duration, SystemTime};

use magos::core::annotation::parse_json;
use magos::core::policy::{Candidate, Decision};

fn decide(policy: &str, tags: &[&str], current: Option<&str>) -> Decision {
    let p = parse_json(policy).unwrap_or_else(|e| panic!("{policy}: {}", e.message));
    let c: Vec<Candidate<'_>> = tags.iter().map(|t| Candidate::tag(t)).collect();
    p.decide(
        &c,
        current,
        SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000),
    )
}

const NOISE: &[&str] = &[
    "latest",
    "stable",
    "main",
    "sha-1a2b3c",
    "1.2.3.4",
    "edge",
    "v",
    "2024-01-05",
    "nightly",
];

/// (policy, tags, current, expected choice)
#[allow(clippy::type_complexity)]
const TABLE: &[(&str, &[&str], Option<&str>, Option<&str>)] = &[
    // Without a range: the highest release; noise and prereleases ignored.
    (
        r#"{"policy":"semver"}"#,
        &["1.0.0", "1.10.0", "1.9.0", "2.0.0-rc.1", "latest"],
        None,
        Some("1.10.0"),
    ),
    (
        r#"{"policy":"semver","range":">=1.2.0 <2.0.0"}"#,
        &["1.1.0", "1.2.0", "1.9.9", "2.0.0"],
        None,
        Some("1.9.9"),
    ),
    (
        r#"{"policy":"semver","range":">=1.2.0, <2.0.0"}"#,
        &["1.2.0", "2.0.0"],
        None,
        Some("1.2.0"),
    ),
    (
        r#"{"policy":"semver","range":"^1 || ^3"}"#,
        &["1.5.0", "2.9.0", "3.1.0", "4.0.0"],
        None,
        Some("3.1.0"),
    ),
    (
        r#"{"policy":"semver","range":"~1.2"}"#,
        &["1.2.9", "1.3.0"],
        None,
        Some("1.2.9"),
    ),
    (
        r#"{"policy":"semver","range":"1.x"}"#,
        &["1.2.9", "2.0.0"],
        None,
        Some("1.2.9"),
    ),
    (
        r#"{"policy":"semver","range":"1.2 - 1.4"}"#,
        &["1.4.7", "1.5.0"],
        None,
        Some("1.4.7"),
    ),
    // `v` prefixes on tags and on the range.
    (
        r#"{"policy":"semver","range":"^v1.2"}"#,
        &["v1.2.0", "v1.3.0", "v2.0.0"],
        None,
        Some("v1.3.0"),
    ),
    (
        r#"{"policy":"semver"}"#,
        &["v1.2.0", "1.3.0"],
        None,
        Some("1.3.0"),
    ),
    // Prereleases: excluded unless the range names one.
    (
        r#"{"policy":"semver","range":">=1.0.0"}"#,
        &["1.0.0", "1.1.0-rc.1"],
        None,
        Some("1.0.0"),
    ),
    (
        r#"{"policy":"semver","range":">=1.0.0-0"}"#,
        &["1.0.0", "1.1.0-rc.1"],
        None,
        Some("1.1.0-rc.1"),
    ),
    (
        r#"{"policy":"semver","range":">=1.1.0-rc.1"}"#,
        &["1.1.0-rc.1", "1.1.0-rc.2", "1.1.0"],
        None,
        Some("1.1.0"),
    ),
    (
        r#"{"policy":"semver"}"#,
        &["1.0.0-alpha", "1.0.0-beta"],
        None,
        None,
    ),
    // Two-part tags read as versions (postgres style).
    (
        r#"{"policy":"semver","range":"16"}"#,
        &["15.7", "16.3", "16.4", "16"],
        None,
        Some("16.4"),
    ),
    // Ties: `1.2.3` and `v1.2.3` are the same version: the byte-wise smallest
    // wins, whatever the order; the current tag wins if it is one of them.
    (
        r#"{"policy":"semver"}"#,
        &["v1.2.3", "1.2.3"],
        None,
        Some("1.2.3"),
    ),
    (
        r#"{"policy":"semver"}"#,
        &["1.2.3", "v1.2.3"],
        None,
        Some("1.2.3"),
    ),
    (
        r#"{"policy":"semver"}"#,
        &["1.2.3", "v1.2.3"],
        Some("v1.2.3"),
        Some("v1.2.3"),
    ),
    // No downgrade below a current version that still satisfies the range…
    (
        r#"{"policy":"semver"}"#,
        &["1.0.0", "1.1.0"],
        Some("1.2.0"),
        Some("1.2.0"),
    ),
    // …but a range that excludes it moves it.
    (
        r#"{"policy":"semver","range":"<1.2"}"#,
        &["1.0.0", "1.1.0"],
        Some("1.2.0"),
        Some("1.1.0"),
    ),
    // Numerical and alphabetical, asc (highest) and desc (lowest).
    (
        r#"{"policy":"numerical"}"#,
        &["9", "10", "100", "x"],
        None,
        Some("100"),
    ),
    (
        r#"{"policy":"numerical","order":"desc"}"#,
        &["9", "10", "100"],
        None,
        Some("9"),
    ),
    (
        r#"{"policy":"numerical"}"#,
        &["1.5", "1.25", "1.3"],
        None,
        Some("1.5"),
    ),
    (
        r#"{"policy":"numerical"}"#,
        &["007", "7"],
        None,
        Some("007"),
    ),
    (
        r#"{"policy":"numerical"}"#,
        &["99999999999999999999999998", "99999999999999999999999999"],
        None,
        Some("99999999999999999999999999"),
    ),
    (
        r#"{"policy":"alphabetical"}"#,
        &["a", "c", "b"],
        None,
        Some("c"),
    ),
    (
        r#"{"policy":"alphabetical","order":"desc"}"#,
        &["b", "a", "c"],
        None,
        Some("a"),
    ),
    (
        r#"{"policy":"alphabetical"}"#,
        &["RELEASE.2024-01-01", "RELEASE.2024-03-01"],
        None,
        Some("RELEASE.2024-03-01"),
    ),
    // Filter and extract.
    (
        r#"{"policy":"numerical","filter":"^main-[a-f0-9]+-(?P<ts>[0-9]+)$","extract":"$ts"}"#,
        &[
            "main-abc123-1700000000",
            "main-def456-1700000500",
            "pr-9-1800000000",
            "main-zzz-1",
        ],
        None,
        Some("main-def456-1700000500"),
    ),
    (
        r#"{"policy":"semver","filter":"^(?P<v>[0-9.]+)-alpine$","extract":"$v","range":"^1"}"#,
        &["1.2.0-alpine", "1.3.0-alpine", "1.4.0", "2.0.0-alpine"],
        None,
        Some("1.3.0-alpine"),
    ),
    (
        r#"{"policy":"alphabetical","filter":"^stable-"}"#,
        &["stable-a", "stable-b", "zzz"],
        None,
        Some("stable-b"),
    ),
    (
        r#"{"policy":"semver","filter":"^(?P<maj>\\d+)\\.(?P<min>\\d+)$","extract":"${maj}.${min}.0"}"#,
        &["1.2", "1.10", "1.3.0"],
        None,
        Some("1.10"),
    ),
    // latest follows its tag when present; digest keeps the current tag.
    (
        r#"{"policy":"latest"}"#,
        &["1.0", "latest"],
        None,
        Some("latest"),
    ),
    (
        r#"{"policy":"latest","tag":"stable"}"#,
        &["stable", "latest"],
        None,
        Some("stable"),
    ),
    (r#"{"policy":"latest"}"#, &["1.0"], None, None),
    (
        r#"{"policy":"digest"}"#,
        &["1.0", "2.0"],
        Some("1.0"),
        Some("1.0"),
    ),
];

#[test]
fn decisions() {
    for (policy, tags, current, expected) in TABLE {
        let d = decide(policy, tags, *current);
        assert_eq!(d.tag(), *expected, "{policy} over {tags:?}: {}", d.reason());
        assert!(!d.reason().is_empty());
        assert!(!d.reason().contains('\n'));
    }
}

#[test]
fn noise_is_ignored_never_an_error() {
    let mut tags: Vec<&str> = NOISE.to_vec();
    tags.push("3.1.4");
    let d = decide(r#"{"policy":"semver"}"#, &tags, None);
    assert_eq!(d.tag(), Some("3.1.4"));
    assert!(d.reason().contains("not versions"), "{}", d.reason());
    let d = decide(r#"{"policy":"semver"}"#, NOISE, None);
    assert_eq!(d.tag(), None);
    assert!(d.reason().starts_with("none of 9 tags"), "{}", d.reason());
}

#[test]
fn none_says_why() {
    let d = decide(
        r#"{"policy":"semver","range":">=3"}"#,
        &["1.0.0", "2.9.1", "3.0.0-rc.1", "x"],
        None,
    );
    let Decision::None { reason } = d else {
        panic!("{d:?}")
    };
    assert!(
        reason.contains("2 outside the range, highest 2.9.1"),
        "{reason}"
    );
    assert!(reason.contains("1 prerelease excluded"), "{reason}");
    assert!(reason.contains("1 not a version"), "{reason}");
}

/// Thousands of tags, in a scrambled order, with the answer known.
#[test]
fn thousands_of_tags() {
    let mut tags = Vec::new();
    for major in 0..10 {
        for minor in 0..30 {
            for patch in 0..20 {
                tags.push(format!("{major}.{minor}.{patch}"));
                if patch % 5 == 0 {
                    tags.push(format!("v{major}.{minor}.{patch}-rc.1"));
                }
            }
        }
    }
    tags.push("latest".to_owned());
    // Deterministic scramble.
    let n = tags.len();
    let mut scrambled = Vec::with_capacity(n);
    let mut i = 0usize;
    for _ in 0..n {
        i = (i + 7919) % n;
        scrambled.push(tags[i].as_str());
    }
    assert!(scrambled.len() > 7000);
    let d = decide(r#"{"policy":"semver","range":"^4.3"}"#, &scrambled, None);
    assert_eq!(d.tag(), Some("4.29.19"), "{}", d.reason());
    let mut reversed = scrambled.clone();
    reversed.reverse();
    let d2 = decide(r#"{"policy":"semver","range":"^4.3"}"#, &reversed, None);
    assert_eq!(d, d2, "the order of the tags does not matter");
}

#[test]
fn min_age_uses_first_seen_times() {
    let p = parse_json(r#"{"policy":"semver","minAge":"72h"}"#).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let old = now - Duration::from_secs(4 * 86_400);
    let young = now - Duration::from_secs(3600);
    let c = [
        Candidate {
            tag: "1.0.0",
            first_seen: Some(old),
            platforms: None,
        },
        Candidate {
            tag: "1.1.0",
            first_seen: Some(young),
            platforms: None,
        },
        Candidate {
            tag: "1.2.0",
            first_seen: None,
            platforms: None,
        },
    ];
    let d = p.decide(&c, None, now);
    assert_eq!(d.tag(), Some("1.0.0"));
    assert!(
        d.reason().contains("2 younger than minAge"),
        "{}",
        d.reason()
    );
    // Exactly the minimum age qualifies.
    let edge = [Candidate {
        tag: "2.0.0",
        first_seen: Some(now - Duration::from_secs(72 * 3600)),
        platforms: None,
    }];
    assert_eq!(p.decide(&edge, None, now).tag(), Some("2.0.0"));
}

#[test]
fn platform_filters_when_known() {
    let p = parse_json(r#"{"policy":"semver","platform":"linux/arm64"}"#).unwrap();
    let both = vec!["linux/amd64".to_owned(), "linux/arm64".to_owned()];
    let amd = vec!["linux/amd64".to_owned()];
    let c = [
        Candidate {
            tag: "1.0.0",
            first_seen: None,
            platforms: Some(&both),
        },
        Candidate {
            tag: "1.1.0",
            first_seen: None,
            platforms: Some(&amd),
        },
    ];
    let d = p.decide(&c, None, SystemTime::UNIX_EPOCH);
    assert_eq!(d.tag(), Some("1.0.0"), "{}", d.reason());
    // Unknown platforms do not exclude.
    assert_eq!(
        p.decide(&[Candidate::tag("1.1.0")], None, SystemTime::UNIX_EPOCH)
            .tag(),
        Some("1.1.0")
    );
}

#[test]
fn invalid_policies() {
    for bad in [
        r#"{"policy":"semver","range":"1.2.3.4"}"#,
        r#"{"policy":"semverr"}"#,
        r#"{"policy":"numerical","filter":"[","extract":"$x"}"#,
        r#"{"policy":"numerical","filter":"(?P<a>x)","extract":"nothing"}"#,
        r#"{"policy":"digest","digest":"sha256:XYZ"}"#,
        r#"{"policy":"latest","range":"1"}"#,
        r#"{"policy":"numerical","order":"up"}"#,
        r#"{"policy":"semver","platform":"linux/ARM64"}"#,
        r#"{"policy":"semver","minAge":"soon"}"#,
        r#"{"policy":"semver","repo":"ghcr.io/Upper"}"#,
        r#"{"policy":1}"#,
        r#"[]"#,
        r#"{"magos":{"policy":"semver"},"#,
    ] {
        assert!(parse_json(bad).is_err(), "{bad} should be refused");
    }
}

/// The policy reference (docs/policies.md) names every policy and every key the parser knows.
#[test]
fn readme_reference_is_complete() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/policies.md")).unwrap();
    for name in magos::core::policy::POLICIES {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "docs/policies.md lacks policy `{name}`"
        );
    }
    for key in magos::core::policy::KEYS {
        assert!(
            readme.contains(&format!("`{key}`")),
            "docs/policies.md lacks key `{key}`"
        );
    }
}
