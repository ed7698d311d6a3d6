# The header the benchmarks share (sourced, not run): the test bed's
# description, the magos binary, running as the test user, the libpod API,
# timing, the busybox httpd image pinned by digest and pulled, and the
# N-service stack the apply benchmarks write.
#
#   MAGOS_TESTBED_ENV=...  the test bed's description (default /run/magos-testbed/env)
#   MAGOS_BIN=...          the binary (default target/release/magos)

ENV_FILE=${MAGOS_TESTBED_ENV:-/run/magos-testbed/env}
# shellcheck disable=SC1090
. "$ENV_FILE"
BIN=${MAGOS_BIN:-$(pwd)/target/release/magos}
SOCK=${MAGOS_TESTBED_PODMAN_SOCKET}
USER_NAME=${MAGOS_TESTBED_USER}
RUNTIME_DIR=${XDG_RUNTIME_DIR_TESTBED}
IMAGE=${MAGOS_TEST_IMAGE_HTTPD}

as_user() {
    runuser -u "$USER_NAME" -- env -i HOME="${MAGOS_TESTBED_HOME}" PATH=/usr/local/bin:/usr/bin:/bin \
        XDG_RUNTIME_DIR="$RUNTIME_DIR" PODMAN_IGNORE_CGROUPSV1_WARNING=1 TMPDIR=/var/tmp "$@"
}
api() { curl -sf --unix-socket "$SOCK" -X "$1" "http://d/v5.0.0/libpod$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f\n", m/1000000}'; }
measure() { # name command... -> nanoseconds
    local name=$1; shift
    local t0; t0=$(now); "$@"; echo $(( $(now) - t0 ))
}

digest=$(curl -sfI -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://${MAGOS_TEST_REGISTRY}/v2/magos/httpd/manifests/1" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
PINNED="${IMAGE}@${digest}"
as_user podman pull -q "$PINNED" >/dev/null

# Writes an N-service busybox httpd stack (service s1 carries REV, so a new rev
# changes one service) to DIR/compose.yaml, atomically; owned by OWNER if given.
write_stack() { # dir project rev [owner]
    local dir=$1 project=$2 rev=$3 owner=${4:-}
    mkdir -p "$dir"
    {
        echo "name: $project"
        echo "services:"
        for i in $(seq 1 "$N"); do
            echo "  s$i:"
            echo "    image: $PINNED"
            echo "    stop_signal: SIGKILL"
            echo "    stop_grace_period: 1s"
            [ "$i" = 1 ] && echo "    environment: {REV: \"$rev\"}"
        done
    } >"$dir/compose.yaml.tmp"
    mv "$dir/compose.yaml.tmp" "$dir/compose.yaml"
    if [ -n "$owner" ]; then chown -R "$owner" "$dir"; fi
}
