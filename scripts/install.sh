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
#   completions         ~/.local/share/bash-completion/completions/magos,
#                       ~/.local/share/zsh/site-functions/_magos,
#                       ~/.config/fish/completions/magos.fish
#   man pages           ~/.local/share/man/man1/magos.1, magos-*.1
# then enables podman.socket (Podman's socket-activated API: no Podman service keeps
# running) and the unit, and starts the unit with --now. Run it again to upgrade: it
# is idempotent, and never overwrites an existing configuration.
#
# With --system (as root) the same unit goes to /etc/systemd/system/, with a drop-in that
# runs /usr/local/bin/magos, the configuration to /etc/magos/magos.yaml, completions and
# man pages under /usr/local/share, and the unit talks to the system's Podman socket
# (/run/podman/podman.sock).
#
# --uninstall stops and disables the unit and removes the binary, the unit, the
# completions and the man pages; the configuration and Magos's state (clone, history) stay.
#
# It runs from an unpacked release (install.sh beside magos, magos.yaml, quadlet/,
# completions/ and man/: scripts/dist.sh makes it) or from a checkout (scripts/install.sh).
# The binary: --binary PATH, else magos beside this script in a release, else the first
# of target/release/magos and target/debug/magos in a checkout. Without completions/ and
# man/ beside it, the installed binary writes them (magos completions, magos man).
# Needs no Rust toolchain; without a systemd manager (a container, a CI job) it installs
# the files and prints the systemctl steps it skipped.
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
if [[ $MODE == system ]]; then
    DATA_DIR=/usr/local/share
    FISH_DIR=$DATA_DIR/fish/vendor_completions.d
else
    DATA_DIR=${XDG_DATA_HOME:-$HOME/.local/share}
    FISH_DIR=${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions
fi
BASH_COMPLETION=$DATA_DIR/bash-completion/completions/magos
ZSH_COMPLETION=$DATA_DIR/zsh/site-functions/_magos
FISH_COMPLETION=$FISH_DIR/magos.fish
MAN_DIR=$DATA_DIR/man/man1
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
    for f in "$UNIT_DIR/$UNIT" "$DROPIN" "$BIN_DIR/magos" "$BASH_COMPLETION" "$ZSH_COMPLETION" \
        "$FISH_COMPLETION" "$MAN_DIR"/magos.1 "$MAN_DIR"/magos-*.1; do
        if [[ -e $f ]]; then rm -f "$f" && say "  removed    $f"; fi
    done
    rmdir "$DROPIN_DIR" 2>/dev/null || true
    ctl daemon-reload
    say "kept: the configuration ($CONFIG_DIR) and Magos's state"
    exit 0
fi

# An unpacked release has install.sh beside quadlet/ and magos.yaml; a checkout has
# scripts/install.sh with quadlet/ and configs/ one level up.
if [[ -f $HERE/quadlet/$UNIT && -f $HERE/magos.yaml ]]; then
    SRC=$HERE
    CONFIG_SRC=$HERE/magos.yaml
    CANDIDATES=("$HERE/magos")
else
    SRC=$ROOT
    CONFIG_SRC=$ROOT/configs/magos.yaml
    CANDIDATES=("$ROOT/target/release/magos" "$ROOT/target/debug/magos" "$HERE/magos")
fi
if [[ -z $BINARY ]]; then
    for candidate in "${CANDIDATES[@]}"; do
        if [[ -x $candidate ]]; then BINARY=$candidate; break; fi
    done
    [[ -n $BINARY ]] || die "no magos binary found in ${CANDIDATES[*]} (build it with cargo build --release, or pass --binary PATH)"
fi
[[ -f $BINARY && -x $BINARY ]] || die "$BINARY is not an executable file"
UNIT_SRC=$SRC/quadlet/$UNIT
[[ -f $UNIT_SRC ]] || die "the unit file $UNIT is missing from $SRC/quadlet"

GENERATED=$(mktemp -d)
DROPIN_SRC=
trap 'rm -rf "$GENERATED" ${DROPIN_SRC:+"$DROPIN_SRC"}' EXIT

say "installing Magos Dominus ($MODE)"
put "$BIN_DIR/magos" "$BINARY" 0755
put "$UNIT_DIR/$UNIT" "$UNIT_SRC" 0644
if [[ $MODE == system ]]; then
    DROPIN_SRC=$(mktemp)
    printf '# Written by scripts/install.sh --system: the root service runs the system-wide binary.\n[Service]\nExecStart=\nExecStart=%s/magos run\n' \
        "$BIN_DIR" >"$DROPIN_SRC"
    put "$DROPIN" "$DROPIN_SRC" 0644
fi
# Completions and man pages: the release's files, else written by the binary.
if [[ -d $SRC/completions && -d $SRC/man ]]; then
    COMPLETIONS=$SRC/completions MAN_SRC=$SRC/man
else
    COMPLETIONS=$GENERATED/completions MAN_SRC=$GENERATED/man
    mkdir -p "$COMPLETIONS" "$MAN_SRC"
    "$BIN_DIR/magos" completions bash >"$COMPLETIONS/magos.bash" &&
        "$BIN_DIR/magos" completions zsh >"$COMPLETIONS/_magos" &&
        "$BIN_DIR/magos" completions fish >"$COMPLETIONS/magos.fish" &&
        "$BIN_DIR/magos" man --out "$MAN_SRC" >/dev/null ||
        die "$BIN_DIR/magos could not write its completions and man pages"
fi
put "$BASH_COMPLETION" "$COMPLETIONS/magos.bash" 0644
put "$ZSH_COMPLETION" "$COMPLETIONS/_magos" 0644
put "$FISH_COMPLETION" "$COMPLETIONS/magos.fish" 0644
for page in "$MAN_SRC"/*.1; do
    put "$MAN_DIR/${page##*/}" "$page" 0644
done
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
    case ":${PATH:-}:" in
        *":$BIN_DIR:"*) ;;
        *) printf '\n%s is not in your PATH: add it (e.g. in ~/.profile) to run magos by name.\n' "$BIN_DIR" ;;
    esac
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
