//! The real `magos` binary run as a user runs it, with a clean environment,
//! for the tests of its commands.

// Each test binary that includes this file uses a different part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the real `magos` binary with a clean environment (HOME in `home`).
pub fn magos(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_magos"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .output()
        .expect("run magos")
}

/// Runs `magos <command> --config <cfg> --repo <repo> <extra>…`.
pub fn magos_on(home: &Path, command: &str, cfg: &Path, repo: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        command,
        "--config",
        cfg.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    magos(home, &args)
}
