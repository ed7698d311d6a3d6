#!/usr/bin/env bash
# The quick start: Magos's main job on the bundled example, in one command.
#
#   sudo scripts/quickstart.sh [--yes]          run Magos against the example (Ctrl-C stops it)
#   sudo scripts/quickstart.sh --once [--yes]   one pass, then check the result; exit 0 only
#                                               when it is right (CI runs this)
#   sudo scripts/quickstart.sh clean            remove what the quick start started and made
#
#   --runtime docker    apply through Docker Engine instead of Podman: the test bed's
#                       dockerd on /run/magos-testbed/docker.sock (DOCKER_HOST), with
#                       `runtime: docker` in Magos's configuration
#   --use-testbed       use the test bed that is already up (/run/magos-testbed/env) as it
#                       is, without running scripts/testbed.sh up
#
# What it does, said before it changes anything:
#   1. Rootless Podman 5 and a local registry holding the example's images
#      (scripts/testbed.sh: a user magos-test with its Podman API socket, registries
#      on 127.0.0.1:5010 and :5443, busybox-based images, sops in /usr/local/bin).
#      Where the distribution packages Podman 5 (Debian 13 and later, Ubuntu 24.10 and
#      later) every package comes from it. On Debian 12 Podman 5 comes from Debian 13
#      "trixie", pinned low: that moves installed packages (libc6, systemd, python3, apt,
#      base-files, ...) to trixie's versions. It lists them (from apt-get -s) and goes on
#      only with --yes (or a "y" on a terminal).
#      The test bed also runs a Docker Engine of its own (Debian's docker.io), listening
#      only on /run/magos-testbed/docker.sock: --runtime docker applies through it.
#   2. examples/homelab served as a git remote in /var/lib/magos-quickstart, Magos built
#      with cargo (or MAGOS_BIN), and `magos run` against it with the instance name
#      "quickstart": the stacks get pinned (a commit pushed to the remote), deployed,
#      and reported in sync; the page answers on http://127.0.0.1:8088.
#
# --once runs `magos run --once` instead and exits 0 only when both stacks are pinned
# (a commit in the remote with tag@sha256 image lines), running, in sync (`magos drift`
# exits 0) and the page answers; with --runtime docker, `magos doctor` must pass too.
#
# clean stops a running quick-start Magos and removes the containers, networks and
# volumes it made (label io.magos.instance=quickstart, on Podman and on the test bed's
# Docker Engine), the remote and Magos's state;
# if the quick start brought the test bed up, it stops its services too. Installed
# packages and the user magos-test stay (it says how to remove them).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
DEMO=/var/lib/magos-quickstart
ENV_FILE=/run/magos-testbed/env
INSTANCE=quickstart
PAGE=http://127.0.0.1:8088/

say() { printf '==> %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

YES=0 ONCE=0 ACTION=run RUNTIME=podman USE_TESTBED=0
while (($#)); do
    case $1 in
        --yes | -y) YES=1 ;;
        --once) ONCE=1 ;;
        --runtime) (($# > 1)) || die "--runtime needs a value: podman or docker"; RUNTIME=$2; shift ;;
        --runtime=*) RUNTIME=${1#--runtime=} ;;
        --use-testbed) USE_TESTBED=1 ;;
        clean) ACTION=clean ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

[[ $RUNTIME == podman || $RUNTIME == docker ]] || die "--runtime $RUNTIME: use podman or docker"
[[ $EUID -eq 0 ]] || die "run as root: it installs Podman and starts a registry (sudo $0)"

load_env() {
    set -a
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    set +a
}

as_user() {
    (cd / && runuser -u "$MAGOS_TESTBED_USER" -- env XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR_TESTBED" \
        PODMAN_IGNORE_CGROUPSV1_WARNING=1 HOME="$MAGOS_TESTBED_HOME" "$@")
}

# ------------------------------------------------------------------------------ clean
if [[ $ACTION == clean ]]; then
    if [[ -f $DEMO/magos.pid ]]; then
        pid=$(cat "$DEMO/magos.pid")
        if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$DEMO/magos.yaml"; then
            kill -TERM "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            say "stopped Magos (pid $pid)"
        fi
    fi
    if [[ -f $ENV_FILE ]]; then
        load_env
        filter=label=io.magos.instance=$INSTANCE
        ids=$(as_user podman ps -aq --filter "$filter")
        [[ -z $ids ]] || { as_user podman rm -f -t 0 $ids >/dev/null; say "removed containers: $(echo $ids)"; }
        nets=$(as_user podman network ls -q --filter "$filter")
        [[ -z $nets ]] || { as_user podman network rm $nets >/dev/null; say "removed networks: $(echo $nets)"; }
        vols=$(as_user podman volume ls -q --filter "$filter")
        [[ -z $vols ]] || { as_user podman volume rm $vols >/dev/null; say "removed volumes: $(echo $vols)"; }
        # What --runtime docker made, on the test bed's Docker Engine.
        if [[ -n ${DOCKER_HOST:-} ]] && docker version >/dev/null 2>&1; then
            ids=$(docker ps -aq --filter "$filter")
            [[ -z $ids ]] || { docker rm -f $ids >/dev/null; say "removed Docker containers: $(echo $ids)"; }
            nets=$(docker network ls -q --filter "$filter")
            [[ -z $nets ]] || { docker network rm $nets >/dev/null; say "removed Docker networks: $(echo $nets)"; }
            vols=$(docker volume ls -q --filter "$filter")
            [[ -z $vols ]] || { docker volume rm $vols >/dev/null; say "removed Docker volumes: $(echo $vols)"; }
        fi
    fi
    started_testbed=0
    [[ -f $DEMO/started-testbed ]] && started_testbed=1
    rm -rf "$DEMO" "$DEMO.testbed.log"
    say "removed $DEMO (the git remote, Magos's configuration and state)"
    if ((started_testbed)); then
        "$ROOT/scripts/testbed.sh" stop
        say "stopped the test bed the quick start started"
    fi
    cat <<TEXT
kept: the packages and the user ${MAGOS_TESTBED_USER:-magos-test}. To remove the user and the
test bed's files: userdel -r ${MAGOS_TESTBED_USER:-magos-test}; rm -rf /var/lib/magos-testbed /opt/magos-testbed
TEXT
    exit 0
fi

# ------------------------------------------------------------------------------ plan and test bed
if ((USE_TESTBED)); then
    [[ -f $ENV_FILE ]] || die "--use-testbed: no test bed is up ($ENV_FILE is missing); run without it to bring one up"
    say "using the test bed that is up ($ENV_FILE), as it is"
else
    say "what this changes on this machine"
    plan=$("$ROOT/scripts/testbed.sh" plan) || die "cannot set up the test bed here (see above)"
    printf '%s\n' "$plan" | sed 's/^/    /'
    cat <<TEXT
    a user magos-test (subordinate ids, a rootless Podman API socket), registries on
    127.0.0.1:5010 and 127.0.0.1:5443 (data in /var/lib/magos-testbed), sops in
    /opt/magos-testbed and /usr/local/bin, /etc/containers/containers.conf.d/50-magos-testbed.conf
    (runc, cgroupfs, events to a file), and $DEMO (the git remote, Magos's state)
TEXT
    # On Debian 12 with packages still to install: trixie's packages come in, and with
    # them the moves listed above. Only with --yes (or a "y" on a terminal).
    if grep -q 'from Debian 13 (trixie)' <<<"$plan" && ! grep -q 'not installed yet: none' <<<"$plan"; then
        if ((!YES)); then
            if [[ -t 0 ]]; then
                read -r -p "Add Debian 13's packages as listed (and move those packages) and go on? [y/N] " answer
                [[ $answer == [yY]* ]] || die "nothing changed"
            else
                die "nothing changed: this adds Debian 13 packages and moves the installed packages listed above; run again with --yes to accept"
            fi
        fi
    fi

    say "rootless Podman, Docker Engine and a local registry with the example's images (scripts/testbed.sh; log in $DEMO.testbed.log)"
    [[ -f $ENV_FILE ]] || { mkdir -p "$DEMO" && touch "$DEMO/started-testbed"; }
    if ! (cd / && "$ROOT/scripts/testbed.sh" up) >"$DEMO.testbed.log" 2>&1 </dev/null; then
        tail -20 "$DEMO.testbed.log" >&2
        die "the test bed did not come up; the whole log: $DEMO.testbed.log"
    fi
fi
load_env
if [[ $RUNTIME == docker ]]; then
    [[ -n ${DOCKER_HOST:-} ]] || die "the test bed names no Docker Engine (no DOCKER_HOST in $ENV_FILE)"
    docker version >/dev/null 2>&1 || die "the Docker Engine does not answer on $DOCKER_HOST"
fi

# ------------------------------------------------------------------------------ magos
if [[ -n ${MAGOS_BIN:-} ]]; then
    MAGOS=$MAGOS_BIN
else
    command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs), or set MAGOS_BIN to a magos binary"
    say "building magos"
    cargo build --quiet --manifest-path "$ROOT/Cargo.toml" --bin magos
    MAGOS=${CARGO_TARGET_DIR:-$ROOT/target}/debug/magos
fi
[[ -x $MAGOS ]] || die "$MAGOS is not an executable"

mkdir -p "$DEMO"
if [[ ! -d $DEMO/homelab.git ]]; then
    say "serving examples/homelab as the git remote $DEMO/homelab.git"
    git init -q --bare -b main "$DEMO/homelab.git"
    work=$(mktemp -d)
    git clone -q "$DEMO/homelab.git" "$work/homelab" 2>/dev/null
    cp -r "$ROOT/examples/homelab/." "$work/homelab/"
    # The example names the test bed's registry at its usual address; a test bed
    # whose registry listens elsewhere gets the example's images from there.
    if [[ $MAGOS_TEST_REGISTRY != 127.0.0.1:5010 ]]; then
        find "$work/homelab" -name compose.yaml -exec sed -i "s|127\.0\.0\.1:5010/|$MAGOS_TEST_REGISTRY/|" {} +
    fi
    git -C "$work/homelab" add -A
    git -C "$work/homelab" -c user.name=You -c user.email=you@example.org commit -q -m "My homelab"
    git -C "$work/homelab" push -q origin HEAD:main
    rm -rf "$work"
fi

# The engine: Podman's socket in the configuration, or runtime docker (Magos finds
# the Docker Engine through DOCKER_HOST, which the test bed's env file sets).
if [[ $RUNTIME == docker ]]; then
    engine="runtime: docker"
    ENGINE_ENV="DOCKER_HOST=$DOCKER_HOST "
    export DOCKER_HOST
else
    engine=$(printf 'podman:\n  socket: %s' "$CONTAINER_HOST")
    ENGINE_ENV=""
fi
cat >"$DEMO/magos.yaml.tmp" <<YAML
repo:
  url: file://$DEMO/homelab.git
$engine
registries:
  registries_conf: $MAGOS_TESTBED_REGISTRIES_CONF
apply:
  instance: $INSTANCE
daemon:
  interval: 1m
  listen: 127.0.0.1:9380
state_dir: $DEMO/state
YAML
mv "$DEMO/magos.yaml.tmp" "$DEMO/magos.yaml"
M=("$MAGOS" --config "$DEMO/magos.yaml")

if ((!ONCE)); then
    cat <<TEXT
==> running: $ENGINE_ENV${M[*]} run
    the page:     $PAGE
    drift:        $ENGINE_ENV${M[*]} drift --repo $DEMO/state/repos/homelab-*
    the pins:     git -C $DEMO/homelab.git log -p -1
    metrics:      curl -s http://127.0.0.1:9380/metrics
    stop Magos:   Ctrl-C        remove the example: $0 clean
TEXT
    echo $$ >"$DEMO/magos.pid"
    exec "${M[@]}" run
fi

# ------------------------------------------------------------------------------ --once
say "one pass: $ENGINE_ENV${M[*]} run --once"
rc=0
"${M[@]}" run --once || rc=$?
failures=()
((rc == 0)) || failures+=("magos run --once exited $rc (0: all in sync, 1: drift, 2: an error)")

# Pinned and pushed: the remote's main holds tag@sha256 image lines for both stacks,
# in a commit after the example's own.
for stack in web worker; do
    line=$(git -C "$DEMO/homelab.git" show "main:$stack/compose.yaml" | grep -m1 'image:' || true)
    if [[ $line == *@sha256:* ]]; then
        say "pinned in the remote: $stack: $(sed 's/^ *image: *//; s/ *#.*//' <<<"$line")"
    else
        failures+=("$stack is not pinned in the remote: $line")
    fi
done
commits=$(git -C "$DEMO/homelab.git" rev-list --count main)
((commits >= 2)) || failures+=("the remote has no commit of Magos's ($commits commit)")

# Running: every container of the example runs (named as podman-compose names
# them on Podman, as docker compose does on Docker).
if [[ $RUNTIME == docker ]]; then
    names=(web-web-1 worker-worker-1)
    inspect() { docker inspect --format '{{.State.Status}}' "$1"; }
else
    names=(web_web_1 worker_worker_1)
    inspect() { as_user podman inspect --format '{{.State.Status}}' "$1"; }
fi
for name in "${names[@]}"; do
    state=$(inspect "$name" 2>/dev/null || echo missing)
    [[ $state == running ]] && say "running: $name" || failures+=("$name is $state")
done

# In sync: magos drift on Magos's clone.
clone=$(find "$DEMO/state/repos" -mindepth 1 -maxdepth 1 -type d -name 'homelab*' | head -1)
if [[ -z $clone ]]; then
    failures+=("no clone of the remote in $DEMO/state/repos")
elif "${M[@]}" drift --repo "$clone" >"$DEMO/drift.txt" 2>&1; then
    say "in sync: magos drift exits 0"
else
    failures+=("magos drift reports drift or fails: $(tr '\n' ' ' <"$DEMO/drift.txt")")
fi

# Docker: the doctor passes (the engine's socket, version and storage driver).
if [[ $RUNTIME == docker ]]; then
    if "${M[@]}" doctor >"$DEMO/doctor.txt" 2>&1; then
        say "doctor: $(tail -1 "$DEMO/doctor.txt")"
    else
        failures+=("magos doctor fails: $(tr '\n' ' ' <"$DEMO/doctor.txt")")
    fi
fi

# The page answers (httpd may still be starting: up to 30 s).
page=''
for _ in $(seq 150); do
    page=$(curl -sf -m 2 "$PAGE" 2>/dev/null) && break
    sleep 0.2
done
if [[ $page == *"magos test bed"* ]]; then
    say "the page answers on $PAGE"
else
    failures+=("$PAGE does not answer with the example's page")
fi

if ((${#failures[@]})); then
    printf 'quickstart --once FAILED:\n' >&2
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
say "the main job works: both stacks pinned, pushed, running, in sync; remove it all with $0 clean"
