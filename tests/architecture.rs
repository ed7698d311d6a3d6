//! Keeps the architecture invariant "the core does no I/O" true: no file under
//! `src/core/` names the filesystem, environment, clock, processes, network or an
//! async runtime.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::env",
    "std::process",
    "std::net",
    "std::io::stdin",
    "SystemTime::now",
    "Instant::now",
    "tokio",
    "async fn",
    ".await",
];

#[test]
fn the_core_does_no_io() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for word in FORBIDDEN {
            assert!(!text.contains(word), "{} uses `{word}`", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} core files found");
}
