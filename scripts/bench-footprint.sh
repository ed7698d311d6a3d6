#!/usr/bin/env bash
# Footprint of `magos run` idle: resident memory and CPU of the daemon while it
# keeps 20 busybox httpd services (4 stacks of 5) in sync. Every service is pinned
# `tag@sha256:` with a policy annotation, so each pass syncs the git remote, asks
# the registry for the tag's digest, applies (nothing to change) and compares
# with what runs. Needs the test bed (scripts/testbed.sh) and a built magos.
#
#   scripts/bench-footprint.sh [WINDOW_SECONDS] [INTERVAL]
#       WINDOW_SECONDS  the idle window sampled after the first pass (default 120)
#       INTERVAL        daemon.interval, so the window holds several passes (default 30s)
#   MAGOS_BIN=...       the binary (default target/release/magos, built if missing)
#   MAGOS_FOOTPRINT_LOG=FILE  keep the daemon's log there
#
# Prints one line per measurement. Memory from /proc/<pid>/status (VmRSS, VmHWM,
# RssAnon, RssFile), CPU from /proc/<pid>/stat (utime + stime). Short-lived `git`
# children of a pass are not counted in the daemon's RSS; Podman's service is
# printed apart, for context: it is Podman's memory, not Magos's.
set -euo pipefail

WINDOW=${1:-120}
INTERVAL=${2:-30s}
# shellcheck source=scripts/bench-common.sh
. "$(dirname "$0")/bench-common.sh"
STACKS=4
PER_STACK=5
INSTANCE=footprint-$$
TICK=$(getconf CLK_TCK)

if [ ! -x "$BIN" ]; then
    cargo build --release --bin magos >&2
fi

git_() { git -c user.name=Bench -c user.email=bench@example.org "$@"; }
status_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }
cpu_ticks() { # utime + stime; the command name may hold spaces, so cut after ')'
    sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
metric_sum() { # name-and-labels prefix -> sum of the matching samples
    curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v p="$1" 'index($0, p)==1 {s+=$NF} END {print s+0}'
}
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
    echo "no free port found" >&2
    exit 1
}

WORK=$(mktemp -d /var/tmp/magos-footprint-XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    for id in $(as_user podman ps -aq --filter "label=io.magos.instance=$INSTANCE"); do
        as_user podman rm -f -t 0 "$id" >/dev/null 2>&1 || true
    done
    for id in $(as_user podman network ls -q --filter "label=io.magos.instance=$INSTANCE"); do
        as_user podman network rm -f "$id" >/dev/null 2>&1 || true
    done
    if [ -n "${MAGOS_FOOTPRINT_LOG:-}" ] && [ -f "$WORK/magos.log" ]; then
        cp "$WORK/magos.log" "$MAGOS_FOOTPRINT_LOG"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The remote: 4 stacks of 5 services, every image pinned and annotated.
git_ init -q --bare -b main "$WORK/remote.git"
git_ clone -q "$WORK/remote.git" "$WORK/work" 2>/dev/null
for s in $(seq 1 $STACKS); do
    mkdir -p "$WORK/work/fp$$_$s"
    {
        echo "services:"
        for i in $(seq 1 $PER_STACK); do
            echo "  s$i:"
            echo "    image: $PINNED # {\"magos\": {\"policy\": \"latest\", \"tag\": \"1\"}}"
            echo "    stop_signal: SIGKILL"
        done
    } >"$WORK/work/fp$$_$s/compose.yaml"
done
git_ -C "$WORK/work" add -A
git_ -C "$WORK/work" commit -q -m "20 services"
git_ -C "$WORK/work" push -q origin HEAD:main

PORT=$(free_port)
cat >"$WORK/magos.yaml" <<EOF
repo:
  url: file://$WORK/remote.git
apply:
  instance: $INSTANCE
daemon:
  interval: $INTERVAL
  jitter: 0%
  listen: 127.0.0.1:$PORT
state_dir: $WORK/state
EOF

CONTAINER_HOST="unix://$SOCK" CONTAINERS_REGISTRIES_CONF="$MAGOS_TESTBED_REGISTRIES_CONF" \
    "$BIN" --config "$WORK/magos.yaml" run >"$WORK/magos.log" 2>&1 &
PID=$!

# Ready = the first pass has finished.
deadline=$((SECONDS + 300))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)" = 200 ]; do
    if ! kill -0 "$PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        echo "magos run did not become ready; its log:" >&2
        tail -n 30 "$WORK/magos.log" >&2
        exit 1
    fi
    sleep 0.2
done
in_sync=$(curl -sf "http://127.0.0.1:$PORT/metrics" | grep -F "stack=\"fp$$_" | grep -cF 'state="in_sync"} 5' || true)
if [ "$in_sync" != "$STACKS" ]; then
    echo "the first pass did not bring the 20 services in sync; metrics and log:" >&2
    curl -sf "http://127.0.0.1:$PORT/metrics" | grep -E '^magos_(stack_services|errors|passes)' >&2 || true
    tail -n 30 "$WORK/magos.log" >&2
    exit 1
fi

first_rss=$(status_kb "$PID" VmRSS)
first_hwm=$(status_kb "$PID" VmHWM)
first_cpu=$(cpu_ticks "$PID")
passes0=$(metric_sum 'magos_passes_total{')

# The idle window: the loop's passes, nothing to change. Sampled once a second.
min_rss=$first_rss max_rss=$first_rss
end=$((SECONDS + WINDOW))
while [ $SECONDS -lt $end ]; do
    sleep 1
    kill -0 "$PID" 2>/dev/null || { echo "magos run exited during the window" >&2; tail -n 30 "$WORK/magos.log" >&2; exit 1; }
    r=$(status_kb "$PID" VmRSS)
    [ "$r" -lt "$min_rss" ] && min_rss=$r
    [ "$r" -gt "$max_rss" ] && max_rss=$r
done
end_cpu=$(cpu_ticks "$PID")
passes=$(( $(metric_sum 'magos_passes_total{') - passes0 ))
errors=$(metric_sum 'magos_passes_total{result="error"}')
rss=$(status_kb "$PID" VmRSS)
hwm=$(status_kb "$PID" VmHWM)
anon=$(status_kb "$PID" RssAnon)
file=$(status_kb "$PID" RssFile)
threads=$(status_kb "$PID" Threads)

line() { printf '%-40s %s\n' "$1" "$2"; }
secs() { awk -v t="$1" -v h="$TICK" 'BEGIN {printf "%.2f", t/h}'; }
line "services in sync" "20 ($STACKS stacks of $PER_STACK), instance $INSTANCE"
line "idle window" "${WINDOW} s, daemon.interval $INTERVAL, $passes passes in it ($errors failed passes in all)"
line "rss after the first pass" "$(mb "$first_rss") MB (peak so far $(mb "$first_hwm") MB)"
line "rss after $((passes + 1)) passes (steady)" "$(mb "$rss") MB (anon $(mb "$anon") MB, file-backed $(mb "$file") MB)"
line "rss range over the window" "$(mb "$min_rss")-$(mb "$max_rss") MB"
line "peak rss (VmHWM)" "$(mb "$hwm") MB"
line "threads" "$threads"
line "cpu, start-up and first pass" "$(secs "$first_cpu") s"
line "cpu over the idle window" "$(secs $((end_cpu - first_cpu))) s"
if [ "$passes" -gt 0 ]; then
    line "cpu per pass (idle between included)" "$(awk -v t=$((end_cpu - first_cpu)) -v h="$TICK" -v n="$passes" 'BEGIN {printf "%.0f", t/h*1000/n}') ms"
fi
line "cpu per idle hour at $INTERVAL" "$(awk -v t=$((end_cpu - first_cpu)) -v h="$TICK" -v w="$WINDOW" 'BEGIN {printf "%.1f", t/h*3600/w}') s"
if [ "$passes" -gt 0 ]; then
    line "cpu per idle hour at 5m (12 passes)" "$(awk -v t=$((end_cpu - first_cpu)) -v h="$TICK" -v n="$passes" 'BEGIN {printf "%.1f", t/h/n*12}') s (from the per-pass cost)"
fi
if [ -n "${MAGOS_TESTBED_PODMAN_PID:-}" ] && [ -r "/proc/$MAGOS_TESTBED_PODMAN_PID/status" ]; then
    line "context: Podman's service rss" "$(mb "$(status_kb "$MAGOS_TESTBED_PODMAN_PID" VmRSS)") MB (Podman's memory, not Magos's)"
fi
