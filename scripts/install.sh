#!/usr/bin/env bash
# Installs Magos Dominus as a systemd service (`magos run`), for the user running it.
#
#   scripts/install.sh [--binary PATH] [--now]        rootless, for `systemctl --user`
#   scripts/install.sh --uninstall                     remove what the install put in place
#   sudo scripts/install.sh --system [--binary PATH] [--now]   root, the system's Podman
#   sudo scripts/install.sh --system --uninstall
#
# Rootless (the usual way) it puts:
#   the binary          ~/.local/bin/magos
#   the unit            ~/.config/systemd/user/magos-dominus.service   (quadlet/)
#   a configuration     ~/.config/magos/magos.yaml (configs/magos.yaml; only if absent)
# then enables podman.socket (Podman's socket-activated API: no Podman service keeps
# running) and the unit, and starts the unit with --now. Run it again to upgrade: it
# is idempotent, and never overwrites an existing configuration.
#
# With --system (as root) the same unit goes to /etc/systemd/system/, with a drop-in that
# runs /usr/local/bin/magos, the configuration to /etc/magos/magos.yaml, and the unit
# talks to the system's Podman socket (/run/podman/podman.sock).
#
# --uninstall stops and disables the unit and removes the binary and the unit; the
# configuration and Magos's state (clone, history) stay.
#
# The binary: --binary PATH, else the first of target/release/magos, target/debug/magos
# (this checkout) and magos beside this script (an unpacked release).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
UNIT=magos-dominus.service

die() { echo "install.sh: $*" >&2; exit 2; }
say() { echo "$*"; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

MODE=user ACTION=install NOW=0 BINARY=
while (($#)); do
    case $1 in
        --binary) (($# >= 2)) || die "--binary needs a path"; BINARY=$2; shift ;;
        --binary=*) BINARY=${1#--binary=} ;;
        --system) MODE=system ;;
        --user) MODE=user ;;
        --now) NOW=1 ;;
        --uninstall) ACTION=uninstall ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

if [[ $MODE == system ]]; then
    [[ $EUID -eq 0 ]] || die "--system installs into /etc and /usr/local: run it as root"
    BIN_DIR=/usr/local/bin
    UNIT_DIR=/etc/systemd/system
    CONFIG_DIR=/etc/magos
    SYSTEMCTL=(systemctl)
else
    [[ $EUID -ne 0 ]] || die "as root this would install a user unit for root; use --system for a root service, or run it as the user that owns the stacks"
    : "${HOME:?HOME is not set}"
    BIN_DIR=$HOME/.local/bin
    UNIT_DIR=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
    CONFIG_DIR=${XDG_CONFIG_HOME:-$HOME/.config}/magos
    SYSTEMCTL=(systemctl --user)
fi
DROPIN_DIR=$UNIT_DIR/$UNIT.d
DROPIN=$DROPIN_DIR/10-system-binary.conf

# systemctl, when a service manager answers; otherwise say what to run later.
MANAGER=1
if ! "${SYSTEMCTL[@]}" show-environment >/dev/null 2>&1; then
    MANAGER=0
    say "note: no systemd $MODE manager answers here; run the systemctl commands below yourself"
fi
ctl() {
    if ((MANAGER)); then
        "${SYSTEMCTL[@]}" "$@"
    else
        say "  (skipped) ${SYSTEMCTL[*]} $*"
    fi
}

# Writes $2 to $1 only when it differs, through a temporary file renamed into place.
put() {
    local dest=$1 src=$2 mode=$3
    if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
        say "  unchanged  $dest"
        return
    fi
    mkdir -p "$(dirname "$dest")"
    local tmp
    tmp=$(mktemp "$(dirname "$dest")/.install.XXXXXX")
    cat "$src" >"$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$dest"
    say "  installed  $dest"
}

if [[ $ACTION == uninstall ]]; then
    say "uninstalling Magos Dominus ($MODE)"
    if [[ -f $UNIT_DIR/$UNIT ]]; then
        ctl disable --now "$UNIT" || true
    fi
    for f in "$UNIT_DIR/$UNIT" "$DROPIN" "$BIN_DIR/magos"; do
        if [[ -e $f ]]; then rm -f "$f" && say "  removed    $f"; fi
    done
    rmdir "$DROPIN_DIR" 2>/dev/null || true
    ctl daemon-reload
    say "kept: the configuration ($CONFIG_DIR) and Magos's state"
    exit 0
fi

if [[ -z $BINARY ]]; then
    for candidate in "$ROOT/target/release/magos" "$ROOT/target/debug/magos" "$HERE/magos"; do
        if [[ -x $candidate ]]; then BINARY=$candidate; break; fi
    done
    [[ -n $BINARY ]] || die "no magos binary found (build it with cargo build --release, or pass --binary PATH)"
fi
[[ -f $BINARY && -x $BINARY ]] || die "$BINARY is not an executable file"
# From a checkout (scripts/../quadlet) or an unpacked release (install.sh beside
# magos, magos.yaml and quadlet/).
UNIT_SRC=
for candidate in "$ROOT/quadlet/$UNIT" "$HERE/quadlet/$UNIT"; do
    if [[ -f $candidate ]]; then UNIT_SRC=$candidate; break; fi
done
[[ -n $UNIT_SRC ]] || die "the unit file $UNIT was found neither in $ROOT/quadlet nor in $HERE/quadlet"

say "installing Magos Dominus ($MODE)"
put "$BIN_DIR/magos" "$BINARY" 0755
put "$UNIT_DIR/$UNIT" "$UNIT_SRC" 0644
if [[ $MODE == system ]]; then
    DROPIN_SRC=$(mktemp)
    trap 'rm -f "$DROPIN_SRC"' EXIT
    printf '# Written by scripts/install.sh --system: the root service runs the system-wide binary.\n[Service]\nExecStart=\nExecStart=%s/magos run\n' \
        "$BIN_DIR" >"$DROPIN_SRC"
    put "$DROPIN" "$DROPIN_SRC" 0644
fi
CONFIG_SRC=$ROOT/configs/magos.yaml
[[ -f $CONFIG_SRC ]] || CONFIG_SRC=$HERE/magos.yaml
if [[ -e $CONFIG_DIR/magos.yaml ]]; then
    say "  kept       $CONFIG_DIR/magos.yaml (existing configuration)"
elif [[ -f $CONFIG_SRC ]]; then
    mkdir -p "$CONFIG_DIR"
    put "$CONFIG_DIR/magos.yaml" "$CONFIG_SRC" 0600
    say "             set repo.url in it before starting the service"
fi

ctl daemon-reload
ctl enable --now podman.socket
ctl enable "$UNIT"
if ((NOW)); then
    ctl restart "$UNIT"
fi

if [[ $MODE == user ]]; then
    LINGER=$(loginctl show-user "$(id -un)" -P Linger 2>/dev/null || true)
    if [[ $LINGER != yes ]]; then
        cat <<EOF

Linger is off for $(id -un): systemd stops your user services when your last session
ends, and starts them only when you log in. For a service that runs from boot:
    sudo loginctl enable-linger $(id -un)
EOF
    fi
fi
cat <<EOF

next:
    ${SYSTEMCTL[*]} start $UNIT     (or run this script again with --now)
    ${SYSTEMCTL[*]} status $UNIT
    journalctl $([[ $MODE == user ]] && echo "--user ")-fu magos-dominus
EOF
