#!/usr/bin/env bash
# Benchmark of `magos apply` and `magos drift` with runtime docker on a
# 10-service busybox httpd stack with its image present, side by side with
# `docker compose up -d` on the same engine (the test bed's dockerd). Needs the
# test bed (scripts/testbed.sh) and a built magos binary.
#
#   scripts/bench-docker.sh [RUNS]     (MAGOS_BIN=target/release/magos by default)
#
# Prints one line per measurement: the median wall time in milliseconds, and
# the ratio magos / docker compose.
set -euo pipefail

RUNS=${1:-5}
# shellcheck source=scripts/bench-common.sh
. "$(dirname "$0")/bench-common.sh"
N=10
DOCKER=(/usr/bin/docker)
export DOCKER_HOST

WORK=$(mktemp -d /var/tmp/magos-bench-docker-XXXXXX)
trap 'cleanup; rm -rf "$WORK"' EXIT

P=benchdockermagos
C=benchdockercompose
printf 'runtime: docker\napply:\n  instance: bench-docker\n' >"$WORK/magos.yaml"
write_stack "$WORK/repo/$P" "$P" 0
write_stack "$WORK/compose" "$C" 0

magos() { "$BIN" --config "$WORK/magos.yaml" -q "$@" --repo "$WORK/repo" >/dev/null; }
dc() { (cd "$WORK/compose" && "${DOCKER[@]}" compose -p "$C" "$@" >/dev/null 2>&1); }
cleanup() {
    for p in "$P" "$C"; do
        "${DOCKER[@]}" compose -p "$p" down -v -t 0 >/dev/null 2>&1 || true
    done
}

"${DOCKER[@]}" pull -q "$PINNED" >/dev/null
declare -A R
for run in $(seq 1 "$RUNS"); do
    cleanup
    R[magos_cold]+="$(measure cold magos apply) "
    R[magos_noop]+="$(measure noop magos apply) "
    write_stack "$WORK/repo/$P" "$P" "$run"
    R[magos_change]+="$(measure change magos apply) "
    R[magos_drift]+="$(measure drift magos drift) "
    R[compose_cold]+="$(measure cold dc up -d) "
    R[compose_noop]+="$(measure noop dc up -d) "
    write_stack "$WORK/compose" "$C" "$run"
    R[compose_change]+="$(measure change dc up -d) "
    R[compose_ps]+="$(measure ps dc ps) "
done

declare -A M
printf '%-16s %8s\n' measurement median_ms
for k in magos_cold compose_cold magos_noop compose_noop magos_change compose_change magos_drift compose_ps; do
    M[$k]=$(tr ' ' '\n' <<<"${R[$k]}" | grep . | median)
    printf '%-16s %8s\n' "$k" "${M[$k]}"
done
for k in cold noop change; do
    awk -v a="${M[magos_$k]}" -v b="${M[compose_$k]}" -v k="$k" \
        'BEGIN { printf "ratio %-10s %6.2f (magos / docker compose up -d)\n", k, (b > 0 ? a / b : 0) }'
done
awk -v a="${M[magos_drift]}" -v b="${M[compose_ps]}" \
    'BEGIN { printf "ratio %-10s %6.2f (magos drift / docker compose ps)\n", "drift", (b > 0 ? a / b : 0) }'
