//! The tests that need the test bed (`scripts/testbed.sh`): a rootless Podman API
//! socket and a registry on 127.0.0.1. One binary, one module per area; `support`
//! loads the test bed's description and implements the skip rule.

// Each area uses a part of the shared helpers.
#[allow(dead_code)]
mod support;

#[path = "../common/git.rs"]
mod git_fixture;

#[path = "../common/daemon.rs"]
mod daemon_fixture;
// The Docker conformance test uses a part of it too.
#[allow(dead_code)]
#[path = "../common/conformance.rs"]
mod corpus;

mod apply;
mod applycli;
mod bad_input;
mod bounded;
mod build;
mod client;
mod conformance;
mod crash;
mod cred_helper;
mod daemon;
mod daemon_engine;
mod doctor;
mod fails_alone;
mod git_ssh;
mod init;
mod notify;
mod parallel;
mod pinning;
mod pull_progress;
mod quadlet_export;
mod registry;
mod rollback;
mod runkeys;
mod runtime;
mod scan;
mod secrets_apply;
mod shape;
mod signatures;
mod sops_real;
mod storage;
mod testbed;
mod trust;
mod watchdog;
