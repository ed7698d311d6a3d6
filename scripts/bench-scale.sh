#!/usr/bin/env bash
# Benchmark of a 200-container host: 50 stacks of 4 busybox httpd services
# (each stack on its own bridge network, one port published per stack), side by
# side with `podman-compose up -d` doing the same per stack as the test user.
# Measures, for Magos: the cold `magos apply`, a no-op `magos apply`, `magos
# drift`, `magos doctor` (and the exec sessions' conmon processes before and after it), and the
# resident memory of `magos run` after its first pass over the 200 containers;
# for podman-compose: the cold and the no-op `up -d` of the 50 stacks.
# Needs the test bed (scripts/testbed.sh) and a built magos binary.
#
#   scripts/bench-scale.sh [RUNS]      (MAGOS_BIN=target/release/magos by default)
#
# Prints one line per measurement: the median wall time in milliseconds.
set -euo pipefail

RUNS=${1:-1}
# shellcheck source=scripts/bench-common.sh
. "$(dirname "$0")/bench-common.sh"
STACKS=50
PER_STACK=4
TAG=$$
INSTANCE=bench-scale-$TAG

WORK=$(mktemp -d /var/tmp/magos-bench-scale-XXXXXX)
chown "$USER_NAME" "$WORK"
PID=
# conmon processes of exec sessions in this benchmark's containers (`-c` names
# the container, `-u` the session; a container's own conmon has its id in both).
exec_conmons() {
    local ids
    ids=$(as_user podman ps -q --no-trunc --filter "label=io.magos.instance=$INSTANCE" | tr '\n' ' ')
    ps -u "$USER_NAME" -o args= | awk -v ids=" $ids" '$1 ~ /conmon$/ {c=""; u=""; for (i = 2; i < NF; i++) {if ($i == "-c") c = $(i+1); if ($i == "-u") u = $(i+1)} if (c != u && index(ids, " " c " ")) n++} END {print n+0}'
}
rm_label() { # label -> removes its containers and networks in one call each
    local ids
    ids=$(as_user podman ps -aq --filter "label=$1")
    [ -z "$ids" ] || as_user podman rm -f -t 0 $ids >/dev/null 2>&1 || true
    ids=$(as_user podman network ls -q --filter "label=$1")
    [ -z "$ids" ] || as_user podman network rm -f $ids >/dev/null 2>&1 || true
}
stop_daemon() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    PID=
}
cleanup() {
    stop_daemon
    rm_label "io.magos.instance=$INSTANCE"
    for s in $(seq 1 $STACKS); do rm_label "com.docker.compose.project=bsc${TAG}_$s"; done
}
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# Published ports: two blocks of 50 free ones on 127.0.0.1.
free_block() {
    local base
    for _ in $(seq 1 50); do
        base=$((20000 + RANDOM % 40000))
        if ! ss -Htln | awk '{print $4}' | awk -F: -v b="$base" '$NF>=b && $NF<b+50 {f=1} END {exit !f}'; then
            echo "$base"; return
        fi
    done
    echo "no free block of ports" >&2; exit 1
}
MPORT=$(free_block)
CPORT=$(free_block)
[ "$MPORT" != "$CPORT" ] || CPORT=$((MPORT + 50))

write_stack() { # dir project port rev
    local dir=$1 project=$2 port=$3 rev=$4
    mkdir -p "$dir"
    {
        echo "name: $project"
        echo "services:"
        for i in $(seq 1 $PER_STACK); do
            echo "  s$i:"
            echo "    image: $PINNED"
            echo "    stop_signal: SIGKILL"
            echo "    stop_grace_period: 1s"
            if [ "$i" = 1 ]; then
                echo "    ports: [\"127.0.0.1:$port:8080\"]"
                echo "    environment: {REV: \"$rev\"}"
            fi
        done
    } >"$dir/compose.yaml.tmp"
    mv "$dir/compose.yaml.tmp" "$dir/compose.yaml"
}
write_all() { # rev
    for s in $(seq 1 $STACKS); do
        write_stack "$WORK/repo/bsm${TAG}_$s" "bsm${TAG}_$s" $((MPORT + s - 1)) "$1"
        write_stack "$WORK/compose/$s" "bsc${TAG}_$s" $((CPORT + s - 1)) "$1"
    done
    chown -R "$USER_NAME" "$WORK/compose"
}

printf 'apply:\n  instance: %s\nlog:\n  level: warn\n' "$INSTANCE" >"$WORK/magos.yaml"
magos() { CONTAINER_HOST="unix://$SOCK" "$BIN" --config "$WORK/magos.yaml" -q "$@" >/dev/null; }
pc_all() {
    for s in $(seq 1 $STACKS); do
        (cd "$WORK/compose/$s" && as_user podman-compose "$@" >/dev/null 2>&1)
    done
}

declare -A R
C_BEFORE=0 C_AFTER=0 DOCTOR=
for run in $(seq 1 "$RUNS"); do
    cleanup
    write_all 0
    R[magos_cold]+="$(measure cold magos apply --repo "$WORK/repo") "
    R[magos_noop]+="$(measure noop magos apply --repo "$WORK/repo") "
    R[magos_drift]+="$(measure drift magos drift --repo "$WORK/repo") "
    C_BEFORE=$(exec_conmons)
    R[magos_doctor]+="$(measure doctor magos doctor --label "io.magos.instance=$INSTANCE") "
    C_AFTER=$(exec_conmons)
    DOCTOR=$(CONTAINER_HOST="unix://$SOCK" "$BIN" --config "$WORK/magos.yaml" doctor --output json \
        --label "io.magos.instance=$INSTANCE" | python3 -c 'import json, sys
d = json.load(sys.stdin); s = d["summary"]
print("ok=%s pass=%d warn=%d fail=%d skip=%d" % (d["ok"], s["pass"], s["warn"], s["fail"], s["skip"]))' || true)
    R[compose_cold]+="$(measure cold pc_all up -d) "
    R[compose_noop]+="$(measure noop pc_all up -d) "
done

# The daemon over the same 200 containers: its memory after the first pass.
git -c init.defaultBranch=main init -q --bare "$WORK/remote.git"
git -C "$WORK/repo" init -q -b main
git -C "$WORK/repo" -c user.name=Bench -c user.email=bench@example.org add -A
git -C "$WORK/repo" -c user.name=Bench -c user.email=bench@example.org commit -q -m "200 services"
git -C "$WORK/repo" push -q "$WORK/remote.git" HEAD:main
LPORT=$((MPORT + 100))
cat >"$WORK/daemon.yaml" <<YAML
repo:
  url: file://$WORK/remote.git
apply:
  instance: $INSTANCE
daemon:
  interval: 1h
  jitter: 0%
  listen: 127.0.0.1:$LPORT
state_dir: $WORK/state
log:
  level: warn
YAML
t0=$(now)
CONTAINER_HOST="unix://$SOCK" "$BIN" --config "$WORK/daemon.yaml" run >"$WORK/daemon.log" 2>&1 &
PID=$!
deadline=$((SECONDS + 600))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LPORT/readyz" || true)" = 200 ]; do
    if ! kill -0 "$PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        echo "magos run did not become ready; its log:" >&2
        tail -n 30 "$WORK/daemon.log" >&2
        exit 1
    fi
    sleep 0.1
done
first_pass=$(( ($(now) - t0) / 1000000 ))
rss=$(awk '$1=="VmRSS:" {print $2}' "/proc/$PID/status")
hwm=$(awk '$1=="VmHWM:" {print $2}' "/proc/$PID/status")
stop_daemon

printf '%-34s %10s\n' measurement median_ms
for k in magos_cold compose_cold magos_noop compose_noop magos_drift magos_doctor; do
    printf '%-34s %10s\n' "$k" "$(tr ' ' '\n' <<<"${R[$k]}" | grep . | median)"
done
printf '%-34s %10s\n' "daemon_start_to_ready_ms" "$first_pass"
printf '%-34s %10s\n' "daemon_rss_after_first_pass_kb" "$rss"
printf '%-34s %10s\n' "daemon_peak_rss_kb" "$hwm"
printf '%-34s %10s\n' "exec_conmons_before_doctor" "$C_BEFORE"
printf '%-34s %10s\n' "exec_conmons_after_doctor" "$C_AFTER"
printf '%-34s %s\n' "doctor_report" "$DOCTOR"
