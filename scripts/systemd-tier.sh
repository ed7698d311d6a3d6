#!/usr/bin/env bash
# The real-systemd tier: boots systemd (Debian trixie, systemd 257) in systemd-nspawn so
# that Magos's unit files, Podman's socket activation, Quadlet and the watchdog can be
# tested against the real thing on a machine whose PID 1 is not systemd.
#
#   scripts/systemd-tier.sh up [--binary PATH]   boot the guest (prints its PID 1)
#   scripts/systemd-tier.sh root CMD...          run CMD as root in the guest, as a unit
#   scripts/systemd-tier.sh user CMD...          run CMD as the guest user, in its manager
#   scripts/systemd-tier.sh ctl ARGS...          systemctl --user (the guest user) ARGS
#   scripts/systemd-tier.sh raw CMD...           run CMD in the guest's namespaces (nsenter)
#   scripts/systemd-tier.sh down                 power the guest off and clean up
#   scripts/systemd-tier.sh rootfs               only build the cached root filesystems
#
# The guest: a fresh copy of a cached root filesystem (made with mmdebstrap on the first
# run, kept as a tarball in $MAGOS_TIER_CACHE), with a user `magos` (uid 1000, linger on,
# so its `systemd --user` starts at boot), Podman, and these read-only bind mounts:
#   /opt/magos/src        this checkout (quadlet/, scripts/install.sh, configs/)
#   /opt/magos/bin/magos  the magos binary (--binary, default target/debug/magos)
#   /opt/magos/cache      the cache folder; image-base.tar is a Debian root filesystem
#                         with git, the offline base for quadlet/Containerfile
# It shares the host's network (127.0.0.1 is the host's: the test registry is reachable).
# It is not an isolation boundary: the guest runs as host root.
#
# Environment: MAGOS_TIER_DIR (work folder, default /var/tmp/magos-systemd-tier; `down`
# removes the guest's files there unless MAGOS_TIER_KEEP=1),
# MAGOS_TIER_CACHE (default /var/lib/magos-testbed/systemd-tier), MAGOS_TIER_MIRROR
# (Debian mirror, default http://deb.debian.org/debian). Needs root, systemd-nspawn
# (systemd-container), mmdebstrap and nsenter; scripts/testbed.sh installs them.
#
# What the guest needs on a host without systemd and with hybrid cgroups (each was
# found necessary):
#  - SYSTEMD_NSPAWN_API_VFS_WRITABLE=1 and a guest unit that unmounts nspawn's overmounts
#    of /proc/kmsg and boot_id: the locked overmounts keep rootless Podman from mounting
#    a fresh procfs in its user namespace;
#  - --system-call-filter=@keyring: Podman's runtime creates a session keyring;
#  - SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1, nspawn started in its own cgroup in both the
#    name=systemd and unified hierarchies: Quadlet's --cgroups=split needs cgroup v2;
#  - pids_limit = 0 in the guest's containers.conf: the nested v2 tree has no pids
#    controller;
#  - network-online.target wanted by multi-user.target: every Quadlet unit waits for it;
#  - clients (loginctl, podman, Magos) run through systemd-run, not bare nsenter: logind
#    and the user manager find callers by cgroup.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB=${MAGOS_TIER_DIR:-/var/tmp/magos-systemd-tier}
CACHE=${MAGOS_TIER_CACHE:-/var/lib/magos-testbed/systemd-tier}
MIRROR=${MAGOS_TIER_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
STATE=$LAB/state
GUEST_USER=magos
GUEST_UID=1000
GUEST_PKGS=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,podman,crun,passt,uidmap,conmon,catatonit,netavark,aardvark-dns,nftables,busybox-static,procps,iproute2,git,ca-certificates
BASE_PKGS=git,ca-certificates

T0=$(date +%s.%N)
ts() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%5.1f", b - a }'; }
log() { echo "[systemd-tier $(ts)s] $*" >&2; }
die() { log "error: $*"; exit 2; }

# --------------------------------------------------------------------------- the cache
# A tarball per root filesystem, rebuilt when its package list changes.
cached_tar() {
    local name=$1 variant=$2 pkgs=$3 tar=$CACHE/$1.tar
    if [[ -f $tar && $(cat "$tar.pkgs" 2>/dev/null) == "$pkgs" ]]; then
        return 0
    fi
    command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (scripts/testbed.sh installs it)"
    mkdir -p "$CACHE"
    log "building the $name root filesystem with mmdebstrap ($SUITE, first run only)"
    rm -f "$CACHE/$name.part.tar"
    if ! mmdebstrap --variant="$variant" --format=tar --include="$pkgs" "$SUITE" \
        "$CACHE/$name.part.tar" "$MIRROR" >"$CACHE/$name.log" 2>&1; then
        tail -20 "$CACHE/$name.log" >&2
        die "mmdebstrap failed (log: $CACHE/$name.log)"
    fi
    mv -f "$CACHE/$name.part.tar" "$tar"
    echo "$pkgs" >"$tar.pkgs"
}

# One builder at a time: guests booted in parallel wait for the first one's build.
build_rootfs() {
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
    cached_tar guest minbase "$GUEST_PKGS"
    cached_tar image-base minbase "$BASE_PKGS"
    flock -u 9
    exec 9>&-
}

# ------------------------------------------------------------------------ in the guest
load_state() {
    [[ -f $STATE ]] || die "no guest is up ($STATE is missing; run: $0 up)"
    # shellcheck disable=SC1090
    . "$STATE"
    kill -0 "$GUEST_PID" 2>/dev/null || die "the guest (PID $GUEST_PID) is gone"
}
raw() { timeout "${TMO:-300}" nsenter -t "$GUEST_PID" -a -- "$@"; }
as_root() { raw systemd-run --pipe --wait --quiet --collect --service-type=exec -- "$@"; }
as_user() { raw systemd-run --user -M "$GUEST_USER@" --pipe --wait --quiet --collect --service-type=exec -- "$@"; }
user_ctl() { raw systemctl --user -M "$GUEST_USER@" "$@"; }

# ------------------------------------------------------------------------------- up
# The test bed's plain-HTTP registry (host:port): MAGOS_TEST_REGISTRY, else the one
# scripts/testbed.sh wrote in its env file.
test_registry() {
    local r=${MAGOS_TEST_REGISTRY:-}
    [[ -n $r ]] || r=$(sed -n 's/^MAGOS_TEST_REGISTRY=//p' /run/magos-testbed/env 2>/dev/null)
    [[ -n $r ]] || die "MAGOS_TEST_REGISTRY is not set and /run/magos-testbed/env names no registry (run scripts/testbed.sh up)"
    echo "$r"
}

customise() {
    local R=$1
    chroot "$R" useradd -m -u "$GUEST_UID" -s /bin/bash "$GUEST_USER" || die "useradd in the guest"
    echo magos-tier >"$R/etc/hostname"
    mkdir -p "$R/var/lib/systemd/linger" && touch "$R/var/lib/systemd/linger/$GUEST_USER"
    ln -sf /usr/lib/systemd/system/network-online.target "$R/etc/systemd/system/multi-user.target.wants/"
    # /proc/sys is writable: keep the guest off the host's sysctls and binfmt.
    for u in systemd-sysctl.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount; do
        ln -sf /dev/null "$R/etc/systemd/system/$u"
    done
    printf '[containers]\npids_limit = 0\n' >"$R/etc/containers/containers.conf"
    # The test registry on the host's loopback speaks plain HTTP.
    local registry
    registry=$(test_registry) || exit 2
    mkdir -p "$R/etc/containers/registries.conf.d"
    printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$registry" \
        >"$R/etc/containers/registries.conf.d/50-magos-tier.conf"
    cat >"$R/etc/systemd/system/unmask-proc.service" <<'EOF'
[Unit]
Description=Drop nspawn's /proc overmounts so nested rootless containers can mount procfs
DefaultDependencies=no
Before=sysinit.target systemd-journald.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=-/bin/umount /proc/kmsg
ExecStart=-/bin/umount /proc/sys/kernel/random/boot_id
[Install]
WantedBy=sysinit.target
EOF
    mkdir -p "$R/etc/systemd/system/sysinit.target.wants"
    ln -sf ../unmask-proc.service "$R/etc/systemd/system/sysinit.target.wants/unmask-proc.service"
    mkdir -p "$R/opt/magos/src" "$R/opt/magos/bin" "$R/opt/magos/cache"
    touch "$R/opt/magos/bin/magos"
}

up() {
    local binary=$ROOT/target/debug/magos
    while (($#)); do
        case $1 in
            --binary) binary=$2; shift ;;
            *) die "up: unknown argument $1" ;;
        esac
        shift
    done
    [[ $EUID -eq 0 ]] || die "the tier boots a container: run it as root"
    command -v systemd-nspawn >/dev/null || die "systemd-nspawn is missing (package systemd-container; scripts/testbed.sh installs it)"
    command -v nsenter >/dev/null || die "nsenter is missing (util-linux)"
    [[ -x $binary ]] || die "the magos binary $binary is missing (cargo build)"
    if [[ -f $STATE ]]; then
        log "a guest from an earlier run is recorded; taking it down first"
        down
    fi
    build_rootfs
    rm -rf "$LAB/rootfs"
    mkdir -p "$LAB/rootfs"
    log "extracting the guest root filesystem"
    tar -C "$LAB/rootfs" -xpf "$CACHE/guest.tar" || die "extracting $CACHE/guest.tar"
    customise "$LAB/rootfs"

    local cgroots=() cg=magos-tier-$$
    if [[ -d /sys/fs/cgroup/unified && -d /sys/fs/cgroup/systemd ]]; then
        cgroots=(/sys/fs/cgroup/systemd /sys/fs/cgroup/unified)
        export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
    elif [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
        cgroots=(/sys/fs/cgroup)
    else
        die "a pure cgroup v1 host is not supported"
    fi
    for h in "${cgroots[@]}"; do mkdir -p "$h/$cg"; done
    export SYSTEMD_NSPAWN_API_VFS_WRITABLE=1
    local machine=magos-tier-$$
    # The guest must outlive this script: its own session, output to a log.
    (
        for h in "${cgroots[@]}"; do echo "$BASHPID" >"$h/$cg/cgroup.procs"; done
        exec setsid systemd-nspawn -b --register=no --keep-unit -M "$machine" -D "$LAB/rootfs" \
            --console=read-only --system-call-filter=@keyring \
            --bind-ro="$ROOT:/opt/magos/src" --bind-ro="$binary:/opt/magos/bin/magos" \
            --bind-ro="$CACHE:/opt/magos/cache" </dev/null >"$LAB/boot.log" 2>&1
    ) &
    local nspawn=$! guest=
    {
        echo "NSPAWN_PID=$nspawn"
        echo "CG=$cg"
        echo "CGROOTS=(${cgroots[*]})"
        echo "MACHINE=$machine"
    } >"$STATE"
    for _ in $(seq 1 200); do
        guest=$(pgrep -P "$nspawn" -x systemd | head -1)
        [[ -n $guest ]] && break
        kill -0 "$nspawn" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $guest ]] || { tail -20 "$LAB/boot.log" >&2; down; die "the guest's systemd did not start (log: $LAB/boot.log)"; }
    echo "GUEST_PID=$guest" >>"$STATE"
    GUEST_PID=$guest
    for _ in $(seq 1 300); do
        raw test -S /run/systemd/private 2>/dev/null && break
        sleep 0.1
    done
    local state
    state=$(TMO=120 raw systemctl is-system-running --wait)
    if [[ $state != running ]]; then
        raw systemctl --failed --no-pager >&2
        log "the guest's system state is $state"
    fi
    state=$(TMO=120 user_ctl is-system-running --wait)
    [[ $state == running ]] || { log "the guest user's manager is $state"; user_ctl --failed --no-pager >&2; }
    log "guest up: PID 1 = $guest, system and user managers running"
    echo "$guest"
}

# ----------------------------------------------------------------------------- down
down() {
    [[ -f $STATE ]] || return 0
    # shellcheck disable=SC1090
    . "$STATE"
    if [[ -n ${NSPAWN_PID:-} ]] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        if [[ -n ${GUEST_PID:-} ]]; then TMO=20 raw systemctl poweroff >/dev/null 2>&1; fi
        for _ in $(seq 1 150); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$NSPAWN_PID" 2>/dev/null; then
            kill -TERM "$NSPAWN_PID"
            for _ in $(seq 1 50); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
            kill -KILL "$NSPAWN_PID" 2>/dev/null
        fi
    fi
    for h in "${CGROOTS[@]}"; do
        [[ -n ${CG:-} && -d $h/$CG ]] && find "$h/$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    rm -rf "/run/systemd/nspawn/propagate/${MACHINE:-none}" "/run/systemd/nspawn/unix-export/${MACHINE:-none}"
    rm -f "$STATE"
    # The guest's files (about 1 GB) go too, unless kept to look at.
    if [[ ${MAGOS_TIER_KEEP:-0} != 1 ]]; then rm -rf "$LAB/rootfs"; fi
    log "guest down"
}

cmd=${1:-}
shift || true
case $cmd in
    up) up "$@" ;;
    down) down ;;
    rootfs) [[ $EUID -eq 0 ]] || die "run it as root"; build_rootfs ;;
    root) load_state; as_root "$@" ;;
    user) load_state; as_user "$@" ;;
    ctl) load_state; user_ctl "$@" ;;
    raw) load_state; raw "$@" ;;
    *) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
