#!/usr/bin/env bash
# Benchmark of `magos apply` and `magos drift` on a 10-service busybox httpd
# stack with its image present, side by side with `podman-compose up -d` (as the
# test user) and with raw `curl --unix-socket` calls doing the same work (the
# floor). Needs the test bed (scripts/testbed.sh) and a built magos binary.
#
#   scripts/bench-apply.sh [RUNS]      (MAGOS_BIN=target/release/magos by default)
#
# Prints one line per measurement: the median wall time in milliseconds.
set -euo pipefail

RUNS=${1:-5}
# shellcheck source=scripts/bench-common.sh
. "$(dirname "$0")/bench-common.sh"
N=10

WORK=$(mktemp -d /var/tmp/magos-bench-XXXXXX)
chown "$USER_NAME" "$WORK"
trap 'cleanup; rm -rf "$WORK"' EXIT

P=benchmagos
C=benchcompose
F=benchfloor
printf 'apply:\n  instance: bench\n' >"$WORK/magos.yaml"
write_stack "$WORK/repo/$P" "$P" 0 "$USER_NAME"
write_stack "$WORK/compose" "$C" 0 "$USER_NAME"

magos() { CONTAINER_HOST="unix://$SOCK" "$BIN" --config "$WORK/magos.yaml" -q "$@" --repo "$WORK/repo" >/dev/null; }
pc() { (cd "$WORK/compose" && as_user podman-compose -p "$C" "$@" >/dev/null 2>&1); }
rm_project() {
    for id in $(as_user podman ps -aq --filter "label=com.docker.compose.project=$1"); do
        as_user podman rm -f -t 0 "$id" >/dev/null
    done
}
cleanup() {
    rm_project "$P"; rm_project "$C"; rm_project "$F"
    as_user podman network rm -f "${P}_default" "${C}_default" "${F}_default" >/dev/null 2>&1 || true
}

floor_cold() {
    api POST /networks/create "{\"name\":\"${F}_default\",\"driver\":\"bridge\",\"labels\":{\"com.docker.compose.project\":\"$F\"}}" >/dev/null || true
    for i in $(seq 1 $N); do
        api POST /containers/create "{\"name\":\"${F}_s${i}_1\",\"image\":\"$PINNED\",\"labels\":{\"com.docker.compose.project\":\"$F\"},\"netns\":{\"nsmode\":\"bridge\"},\"Networks\":{\"${F}_default\":{}}}" >/dev/null
        api POST "/containers/${F}_s${i}_1/start" >/dev/null
    done
}
floor_list() { api GET '/containers/json?all=true' >/dev/null; api GET /images/json >/dev/null; }
floor_change() {
    api DELETE "/containers/${F}_s1_1?force=true&timeout=0" >/dev/null
    api POST /containers/create "{\"name\":\"${F}_s1_1\",\"image\":\"$PINNED\",\"env\":{\"REV\":\"x\"},\"labels\":{\"com.docker.compose.project\":\"$F\"},\"netns\":{\"nsmode\":\"bridge\"},\"Networks\":{\"${F}_default\":{}}}" >/dev/null
    api POST "/containers/${F}_s1_1/start" >/dev/null
}

declare -A R
for run in $(seq 1 "$RUNS"); do
    cleanup
    R[magos_cold]+="$(measure cold magos apply) "
    R[magos_noop]+="$(measure noop magos apply) "
    write_stack "$WORK/repo/$P" "$P" "$run" "$USER_NAME"
    R[magos_change]+="$(measure change magos apply) "
    R[magos_drift]+="$(measure drift magos drift) "
    R[compose_cold]+="$(measure cold pc up -d) "
    R[compose_noop]+="$(measure noop pc up -d) "
    write_stack "$WORK/compose" "$C" "$run" "$USER_NAME"
    R[compose_change]+="$(measure change pc up -d) "
    R[floor_cold]+="$(measure cold floor_cold) "
    R[floor_noop]+="$(measure noop floor_list) "
    R[floor_change]+="$(measure change floor_change) "
done

printf '%-16s %8s\n' measurement median_ms
for k in magos_cold compose_cold floor_cold magos_noop compose_noop floor_noop magos_change compose_change floor_change magos_drift; do
    printf '%-16s %8s\n' "$k" "$(tr ' ' '\n' <<<"${R[$k]}" | grep . | median)"
done
