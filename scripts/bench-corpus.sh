#!/usr/bin/env bash
# Benchmark of the conformance corpus (tests/corpus/, compose files of public
# projects): every stack without `build:` applied by one `magos apply` over the
# corpus as a repository, side by side with `podman-compose up -d` run in each
# stack's folder as the test user, on the same rootless Podman, one tool after
# the other (the stacks publish the same ports and some set `container_name:`).
# Measures the cold apply (nothing there, images present) and the no-op apply
# (everything there) of each tool, and prints the ratios.
#
# The corpus is copied twice into a scratch folder; each copied folder and
# `name:` gets the prefix `bco<pid>-` so the projects do not meet those of a
# conformance run. Each stack's `SOURCE` setup is done first, as the
# conformance test does it (tests/corpus/README.md): `host setup:` lines as
# root, `setup:` lines as the test user in each copy; their cleanup lines run at
# the end. Stacks with `build:` or a `service_healthy` dependency are left out
# (see below). Stacks that fail fail for both tools alike (two stacks of the
# corpus publish the same port or set the same `container_name:`, a port below
# 1024); the script counts them. Needs the test bed (scripts/testbed.sh) and a
# built magos binary.
#
#   scripts/bench-corpus.sh [RUNS]     (MAGOS_BIN=target/release/magos by default)
#   MAGOS_BENCH_ONLY=linkding,immich scripts/bench-corpus.sh   (only these stacks)
#
# Prints one line per measurement: the median wall time in milliseconds.
set -euo pipefail

RUNS=${1:-1}
CORPUS=$(cd "$(dirname "$0")/../tests/corpus" && pwd)
# shellcheck source=scripts/bench-common.sh
. "$(dirname "$0")/bench-common.sh"
TAG=$$
PREFIX=bco$TAG-
INSTANCE=bench-corpus-$TAG

WORK=$(mktemp -d /var/tmp/magos-bench-corpus-XXXXXX)
chown "$USER_NAME" "$WORK"
STACKS=()
for source in "$CORPUS"/*/SOURCE; do
    grep -q '^build: yes' "$source" && continue
    # podman-compose waits for `service_healthy` with `podman wait
    # --condition=healthy`, which never returns where rootless healthchecks do
    # not run (no systemd user manager to time them): such stacks are left out.
    grep -qs 'condition: *service_healthy' "$(dirname "$source")"/*.y*ml && continue
    name=$(basename "$(dirname "$source")")
    [ -z "${MAGOS_BENCH_ONLY:-}" ] || [[ ",$MAGOS_BENCH_ONLY," == *",$name,"* ]] || continue
    STACKS+=("$name")
done

# Every project either tool made from the copies: by the prefix of the compose
# project label (containers, pods, networks, volumes).
projects() {
    as_user podman ps -a --format '{{index .Labels "com.docker.compose.project"}}' | grep "^$PREFIX" | sort -u || true
}
remove_all() {
    local p ids
    for p in $(projects); do
        as_user podman pod rm -f -t 0 "pod_$p" >/dev/null 2>&1 || true
        ids=$(as_user podman ps -aq --filter "label=com.docker.compose.project=$p")
        [ -z "$ids" ] || as_user podman rm -f -t 0 $ids >/dev/null 2>&1 || true
    done
    # A project whose containers are all gone (a failed stack) can leave its pod.
    ids=$(as_user podman pod ls --format '{{.Name}}' | grep "^pod_$PREFIX" || true)
    [ -z "$ids" ] || as_user podman pod rm -f -t 0 $ids >/dev/null 2>&1 || true
    for kind in network volume; do
        ids=$(as_user podman $kind ls --format '{{.Name}}' | grep "^$PREFIX" || true)
        [ -z "$ids" ] || as_user podman $kind rm -f $ids >/dev/null 2>&1 || true
    done
}
# The values of a stack's `SOURCE` lines `KEY: value`, one a line.
source_lines() { sed -n "s/^$2: //p" "$CORPUS/$1/SOURCE"; }
# Runs each line of stdin with `sh -c` (as the test user if $1 is `user`), in
# folder $2; a failed line is reported, not fatal (the stack then fails alike
# for both tools).
run_lines() {
    local line
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        if [ "$1" = user ]; then
            (cd "$2" && as_user sh -c "$line") >>"$WORK/setup.log" 2>&1 || echo "setup failed: $line" >&2
        else
            (cd "$2" && sh -c "$line") >>"$WORK/setup.log" 2>&1 || echo "setup failed: $line" >&2
        fi
    done
}
set_up_all() {
    local s
    for s in "${STACKS[@]}"; do
        source_lines "$s" "host setup" | run_lines root /
        source_lines "$s" setup | run_lines user "$WORK/repo/$PREFIX$s"
        source_lines "$s" setup | run_lines user "$WORK/compose/$PREFIX$s"
    done
}
clean_up_all() {
    local s
    for s in "${STACKS[@]}"; do
        source_lines "$s" cleanup | run_lines user "$WORK/repo/$PREFIX$s"
        source_lines "$s" "host cleanup" | run_lines root /
    done
}
trap 'remove_all; clean_up_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

copy_corpus() { # destination
    local s
    mkdir -p "$1"
    for s in "${STACKS[@]}"; do
        cp -a "$CORPUS/$s" "$1/$PREFIX$s"
        # A `name:` of its own would meet a conformance run's project.
        find "$1/$PREFIX$s" -maxdepth 1 -name '*.y*ml' -exec sed -i -E "s/^name: *['\"]?/name: $PREFIX/" {} +
    done
    chown -R "$USER_NAME" "$1"
}
copy_corpus "$WORK/repo"
copy_corpus "$WORK/compose"
set_up_all

printf 'apply:\n  instance: %s\nlog:\n  level: error\n' "$INSTANCE" >"$WORK/magos.yaml"
magos() { CONTAINER_HOST="unix://$SOCK" "$BIN" --config "$WORK/magos.yaml" -q "$@" >>"$WORK/magos.log" 2>&1 || true; }
pc_all() {
    local s
    for s in "${STACKS[@]}"; do
        (cd "$WORK/compose/$PREFIX$s" && as_user timeout 300 podman-compose "$@" >>"$WORK/compose.log" 2>&1) || true
    done
}
running() { as_user podman ps --format '{{index .Labels "com.docker.compose.project"}}' | grep -c "^$PREFIX" || true; }

# The images every stack uses are the test bed's, pulled above; the routes.
CONTAINER_HOST="unix://$SOCK" "$BIN" --config "$WORK/magos.yaml" plan --repo "$WORK/repo" --output json \
    >"$WORK/plan.json" 2>/dev/null || true
ROUTES=$(python3 -c 'import json, sys
p = json.load(open(sys.argv[1]))
native = sum(1 for s in p.get("stacks", []) if not s.get("error"))
cli = len(p.get("compose_cli", []))
err = len(p.get("errors", [])) + sum(1 for s in p.get("stacks", []) if s.get("error"))
print("native=%d compose_cli=%d not_applied=%d" % (native, cli, err))' "$WORK/plan.json" 2>/dev/null || echo unknown)

declare -A R
M_RUNNING=0 C_RUNNING=0
for run in $(seq 1 "$RUNS"); do
    remove_all
    R[magos_cold]+="$(measure cold magos apply --repo "$WORK/repo") "
    R[magos_noop]+="$(measure noop magos apply --repo "$WORK/repo") "
    M_RUNNING=$(running)
    remove_all
    R[compose_cold]+="$(measure cold pc_all up -d) "
    R[compose_noop]+="$(measure noop pc_all up -d) "
    C_RUNNING=$(running)
    remove_all
done

printf '%-34s %10s\n' measurement median_ms
for k in magos_cold compose_cold magos_noop compose_noop; do
    printf '%-34s %10s\n' "$k" "$(tr ' ' '\n' <<<"${R[$k]}" | grep . | median)"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a > 0) printf "%.1f\n", b / a; else print "-"}'; }
mc=$(tr ' ' '\n' <<<"${R[magos_cold]}" | grep . | median)
cc=$(tr ' ' '\n' <<<"${R[compose_cold]}" | grep . | median)
mn=$(tr ' ' '\n' <<<"${R[magos_noop]}" | grep . | median)
cn=$(tr ' ' '\n' <<<"${R[compose_noop]}" | grep . | median)
printf '%-34s %10s\n' "ratio_cold_compose_over_magos" "$(ratio "$mc" "$cc")"
printf '%-34s %10s\n' "ratio_noop_compose_over_magos" "$(ratio "$mn" "$cn")"
printf '%-34s %10s\n' "stacks" "${#STACKS[@]}"
printf '%-34s %s\n' "magos_routes" "$ROUTES"
printf '%-34s %10s\n' "containers_running_magos" "$M_RUNNING"
printf '%-34s %10s\n' "containers_running_compose" "$C_RUNNING"
# What failed under magos (the first apply's report), for the record.
grep -h '^FAILED' "$WORK/magos.log" | sort -u | cut -c1-160 | sed 's/^/magos: /' || true
