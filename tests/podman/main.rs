//! The tests that need the test bed (`scripts/testbed.sh`): a rootless Podman API
//! socket and a registry on 127.0.0.1. One binary, one module per area; `support`
//! loads the test bed's description and implements the skip rule.

mod support;

mod testbed;
