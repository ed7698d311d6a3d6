#!/usr/bin/env bash
# The test command: sets up the test bed (scripts/testbed.sh) and runs the whole
# suite, the podman tests included, then checks that the crate builds for Windows.
#
#   scripts/test.sh        as root (the test bed installs packages and starts services)
#
# Steps, each timed: test bed; cargo fmt --check; cargo clippy --all-targets
# -D warnings; cargo test --all-targets and --doc with MAGOS_REQUIRE_PODMAN=1 and
# MAGOS_REQUIRE_DOCKER=1 (a missing test bed fails the podman and docker tests); the real-systemd tier
# (tests/systemd_tier.rs); the main job end to end (scripts/quickstart.sh --once --yes,
# then clean; again with --runtime docker); cargo check for x86_64-pc-windows-gnu.
# Exits non-zero on the first failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

T0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
STEP_NAME=""
STEP_T0=$T0
TIMINGS=()
step() {
    finish_step
    STEP_NAME=$1
    STEP_T0=$(date +%s.%N)
    printf '\n==> %s\n' "$STEP_NAME"
}
finish_step() {
    [[ -n $STEP_NAME ]] && TIMINGS+=("$(printf '%7.1fs  %s' "$(elapsed "$STEP_T0")" "$STEP_NAME")")
    STEP_NAME=""
}
# On a failed test step: each failed test with the first line of its panic, and
# the test bed's state, printed last so that the end of the output explains it.
failure_digest() {
    [[ -n ${TEST_LOG:-} && -s $TEST_LOG ]] || return 0
    printf '\n==> why the tests failed (first 25: the test, where it panicked, the message)\n' >&2
    awk '/^---- .* stdout ----$/ { name = $2; next }
         /^thread .* panicked at / && name != "" {
             where = $0; sub(/.* panicked at /, "", where); sub(/:$/, "", where)
             getline msg; print "  " name " (" where "): " substr(msg, 1, 220); name = "" }' \
        "$TEST_LOG" | head -25 >&2
    printf '\n==> test bed now\n' >&2
    scripts/testbed.sh status 2>&1 | sed 's/^/  /' >&2 || true
    printf '  podman service log, last lines:\n' >&2
    tail -n 8 "${MAGOS_TESTBED_PODMAN_LOG:-/var/log/magos-testbed/podman-service.log}" 2>/dev/null | cut -c1-220 | sed 's/^/    /' >&2 || true
}
on_exit() {
    local rc=$?
    if ((rc != 0)); then
        failure_digest || true
        printf '\n==> FAILED (exit %d) in step: %s\n' "$rc" "${STEP_NAME:-?}" >&2
    fi
}
trap on_exit EXIT

if [[ $EUID -ne 0 ]]; then
    echo "scripts/test.sh sets up the test bed (packages, a test user, services): run it as root," >&2
    echo "e.g. sudo env PATH=\"\$PATH\" scripts/test.sh" >&2
    exit 2
fi
command -v cargo >/dev/null || { echo "cargo not found (looked in PATH=$PATH)" >&2; exit 2; }

step "test bed (scripts/testbed.sh)"
scripts/testbed.sh up </dev/null
set -a
# shellcheck disable=SC1091
. /run/magos-testbed/env
set +a
export MAGOS_REQUIRE_PODMAN=1 MAGOS_REQUIRE_DOCKER=1

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --all-targets (MAGOS_REQUIRE_PODMAN=1, MAGOS_REQUIRE_DOCKER=1)"
TEST_LOG=$(mktemp)
# The real-systemd tier has its own step below.
cargo test --all-targets --no-fail-fast -- --skip systemd_tier_ 2>&1 | tee "$TEST_LOG"
step "cargo test --doc"
cargo test --doc 2>&1 | tee -a "$TEST_LOG"

# ---- the real-systemd tier (tests/systemd_tier.rs, scripts/systemd-tier.sh) ----
# systemd 257 booted in systemd-nspawn from a Debian trixie root filesystem (built
# with mmdebstrap on the first run, then cached in /var/lib/magos-testbed/systemd-tier):
# magos-dominus.service and the magos-dominus.container Quadlet installed as a user
# would, socket-activated Podman, READY/STATUS and the watchdog. A guest that cannot
# boot fails the step (MAGOS_REQUIRE_SYSTEMD=1).
step "systemd tier: cargo test --test systemd_tier (MAGOS_REQUIRE_SYSTEMD=1)"
MAGOS_REQUIRE_SYSTEMD=1 cargo test --test systemd_tier 2>&1 | tee -a "$TEST_LOG"

# Counts from libtest's summary lines; the podman binary's own count is shown apart.
read -r PASSED FAILED IGNORED < <(awk '/^test result:/ {
    for (i = 1; i <= NF; i++) {
        if ($(i) ~ /^passed/) p += $(i - 1)
        if ($(i) ~ /^failed/) f += $(i - 1)
        if ($(i) ~ /^ignored/) g += $(i - 1)
    } } END { print p + 0, f + 0, g + 0 }' "$TEST_LOG")
PODMAN_LINE=$(awk '/Running tests\/podman\/main.rs/ { want = 1 } want && /^test result:/ { print; exit }' "$TEST_LOG")
PODMAN_PASSED=$(sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p' <<<"$PODMAN_LINE")
rm -f "$TEST_LOG"
if [[ -z $PODMAN_PASSED || $PODMAN_PASSED -eq 0 ]]; then
    echo "no podman test ran (tests/podman/main.rs): the podman tests must run here" >&2
    exit 1
fi
printf '\npodman tests (tests/podman, against the rootless socket and the registry): %s passed\n' "$PODMAN_PASSED"

# ---- the main job, end to end: the README's quick start with one pass ----
# Both example stacks pinned (a commit in the remote), pushed, running, in sync
# (magos drift exits 0) and the page answering on 127.0.0.1:8088; then everything
# the quick start made is removed.
step "the main job: scripts/quickstart.sh --once --yes, then clean"
if ! scripts/quickstart.sh --once --yes </dev/null; then
    scripts/quickstart.sh clean </dev/null || true
    echo "the quick start's main job failed (above)" >&2
    exit 1
fi
scripts/quickstart.sh clean </dev/null
# The same through the test bed's Docker Engine (`runtime: docker`; magos doctor
# must pass too).
step "the main job on Docker: scripts/quickstart.sh --runtime docker --once --yes, then clean"
if ! scripts/quickstart.sh --runtime docker --once --yes </dev/null; then
    scripts/quickstart.sh clean </dev/null || true
    echo "the quick start's main job on Docker failed (above)" >&2
    exit 1
fi
scripts/quickstart.sh clean </dev/null

step "cargo check --target x86_64-pc-windows-gnu --lib --bins"
if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
    rustup target add x86_64-pc-windows-gnu
fi
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc
export AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
cargo check --target x86_64-pc-windows-gnu --lib --bins

finish_step
printf '\n==> timings\n'
printf '%s\n' "${TIMINGS[@]}"
printf '%7.1fs  total\n' "$(elapsed "$T0")"
printf '\n'
# The closing line: every libtest binary's counts added up.
printf 'tests: %d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$IGNORED"
