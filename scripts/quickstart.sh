#!/usr/bin/env bash
# The quick start: Magos's main job on the bundled example, in one command.
#
#   sudo scripts/quickstart.sh
#
# Brings up rootless Podman and a local registry with the example's images
# (scripts/testbed.sh: offline, from Debian packages), serves examples/homelab as
# a local git remote, builds Magos and runs `magos run` against it. Watch the
# stacks get pinned (a commit in the remote), deployed and reported in sync; open
# http://127.0.0.1:8088; press Ctrl-C to stop Magos (the stacks keep running).
# `scripts/quickstart.sh clean` removes the example's containers and remote.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
DEMO=/var/lib/magos-quickstart

[[ $EUID -eq 0 ]] || { echo "run as root: it installs Podman and starts a registry (sudo $0)" >&2; exit 2; }

as_user() {
    runuser -u "$MAGOS_TESTBED_USER" -- env XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR_TESTBED" \
        PODMAN_IGNORE_CGROUPSV1_WARNING=1 HOME="$MAGOS_TESTBED_HOME" "$@"
}

echo "==> rootless Podman and a local registry with the example's images (scripts/testbed.sh; log in $DEMO.testbed.log)"
if ! (cd / && "$ROOT/scripts/testbed.sh" up) >"$DEMO.testbed.log" 2>&1; then
    tail -20 "$DEMO.testbed.log" >&2
    echo "the test bed did not come up; the whole log: $DEMO.testbed.log" >&2
    exit 1
fi
set -a
# shellcheck disable=SC1091
. /run/magos-testbed/env
set +a

if [[ ${1:-} == clean ]]; then
    (cd / && as_user podman rm -f -t 0 web_web_1 worker_worker_1 >/dev/null 2>&1) || true
    (cd / && as_user podman network rm web_default worker_default >/dev/null 2>&1) || true
    rm -rf "$DEMO"
    echo "removed the example's containers and $DEMO"
    exit 0
fi

echo "==> building magos"
cargo build --quiet --manifest-path "$ROOT/Cargo.toml" --bin magos
MAGOS="$ROOT/target/debug/magos"

if [[ ! -d $DEMO/homelab.git ]]; then
    echo "==> serving examples/homelab as the git remote $DEMO/homelab.git"
    mkdir -p "$DEMO"
    git init -q --bare -b main "$DEMO/homelab.git"
    work=$(mktemp -d)
    git clone -q "$DEMO/homelab.git" "$work/homelab" 2>/dev/null
    cp -r "$ROOT/examples/homelab/." "$work/homelab/"
    git -C "$work/homelab" add -A
    git -C "$work/homelab" -c user.name=You -c user.email=you@example.org commit -q -m "My homelab"
    git -C "$work/homelab" push -q origin HEAD:main
    rm -rf "$work"
fi

cat >"$DEMO/magos.yaml" <<YAML
repo:
  url: file://$DEMO/homelab.git
podman:
  socket: $CONTAINER_HOST
registries:
  registries_conf: $MAGOS_TESTBED_REGISTRIES_CONF
daemon:
  interval: 1m
  listen: 127.0.0.1:9380
state_dir: $DEMO/state
YAML

cat <<TEXT
==> running: $MAGOS --config $DEMO/magos.yaml run
    the page:     http://127.0.0.1:8088
    drift:        $MAGOS --config $DEMO/magos.yaml drift --repo $DEMO/state/repos/homelab-*
    the pins:     git -C $DEMO/homelab.git log -p -1
    metrics:      curl -s http://127.0.0.1:9380/metrics
    stop Magos:   Ctrl-C        remove the example: $0 clean
TEXT
exec "$MAGOS" --config "$DEMO/magos.yaml" run
