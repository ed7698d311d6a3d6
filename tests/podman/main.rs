//! The tests that need the test bed (`scripts/testbed.sh`): a rootless Podman API
//! socket and a registry on 127.0.0.1. One binary, one module per area; `support`
//! loads the test bed's description and implements the skip rule.

// Each area uses a part of the shared helpers.
#[allow(dead_code)]
mod support;

#[path = "../common/git.rs"]
mod git_fixture;

mod apply;
mod applycli;
mod bad_input;
mod bounded;
mod build;
mod client;
mod conformance;
mod crash;
mod daemon;
mod doctor;
mod init;
mod pinning;
mod pull_progress;
mod registry;
mod runtime;
mod secrets_apply;
mod sops_real;
mod testbed;
mod trust;
mod watchdog;
