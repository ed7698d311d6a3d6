//! The tests that need the test bed (`scripts/testbed.sh`): a rootless Podman API
//! socket and a registry on 127.0.0.1. One binary, one module per area.

mod registry;
