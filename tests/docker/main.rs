//! Tests against a real Docker Engine (the test bed's rootful `dockerd` on its
//! own unix socket) with `runtime: docker`: the `magos` binary applies, plans
//! and drifts stacks of a repository written at test time, images pinned by
//! digest from the test registry (`MAGOS_TEST_REGISTRY`), and `docker compose` sees
//! the result. `MAGOS_REQUIRE_DOCKER=1` turns a missing engine into a failure.

#[path = "../common/git.rs"]
mod git_fixture;

#[path = "../common/daemon.rs"]
mod daemon_fixture;

mod daemon;
// The Podman conformance test uses a part of it too.
#[allow(dead_code)]
#[path = "../common/conformance.rs"]
mod corpus;

mod conformance;
mod doctor;
mod init;
mod stack;
mod support;
