#!/usr/bin/env bash
# Packages Magos for one target: the steps the release workflow runs
# (.github/workflows/release.yml), runnable on any machine that can build the target.
#
#   scripts/dist.sh [TARGET] [--binary PATH] [--version V] [--out DIR] [--runner PATH]
#
# TARGET     a Rust target triple (default: this machine's, from rustc -vV)
# --binary   package this binary instead of building one with
#            cargo build --release --locked --target TARGET
# --version  the version in the archive's name (default: v + Cargo.toml's version)
# --out      where the archive goes (default: dist/)
# --runner   a magos binary that runs here, to write the completions and man pages
#            when the target's own binary cannot run on this machine (cross builds)
#
# Makes dist/magos-VERSION-TARGET.tar.gz (.zip for Windows) holding one folder:
#   magos (magos.exe)   the binary
#   magos.yaml          the commented reference configuration (configs/magos.yaml)
#   completions/        magos.bash, _magos (zsh), magos.fish (and _magos.ps1 on Windows)
#   man/                magos.1 and a page per subcommand (magos-run.1, ...)
#   README.md, docs/    the documentation
# and on Linux also
#   install.sh          scripts/install.sh: installs from this folder (see its --help)
#   quadlet/            the systemd unit, the Quadlet container unit and the Containerfile
# The Linux folder is also a build context for quadlet/Containerfile (magos at its top).
# Prints the archive's path on the last line. Written for bash 3.2 (macOS) as well.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "dist.sh: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

TARGET='' BINARY='' VERSION='' OUT="$ROOT/dist" RUNNER=''
while (($#)); do
    case $1 in
        --binary) (($# >= 2)) || die "--binary needs a path"; BINARY=$2; shift ;;
        --version) (($# >= 2)) || die "--version needs a value"; VERSION=$2; shift ;;
        --out) (($# >= 2)) || die "--out needs a folder"; OUT=$2; shift ;;
        --runner) (($# >= 2)) || die "--runner needs a path"; RUNNER=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) die "unknown argument: $1 (see --help)" ;;
        *) [[ -z $TARGET ]] || die "one target at a time (got $TARGET and $1)"; TARGET=$1 ;;
    esac
    shift
done

if [[ -z $TARGET ]]; then
    TARGET=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p') ||
        true
    [[ -n $TARGET ]] || die "no TARGET given and rustc cannot tell this machine's"
fi
if [[ -z $VERSION ]]; then
    VERSION=v$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -1)
fi
EXE=''
case $TARGET in
    *windows*) EXE=.exe ;;
esac

if [[ -z $BINARY ]]; then
    echo "==> cargo build --release --locked --target $TARGET" >&2
    cargo build --release --locked --target "$TARGET" --manifest-path "$ROOT/Cargo.toml" >&2
    BINARY=${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/magos$EXE
fi
[[ -f $BINARY ]] || die "$BINARY is not a file"
[[ -n $RUNNER ]] || RUNNER=$BINARY
"$RUNNER" --version >/dev/null 2>&1 ||
    die "$RUNNER does not run on this machine: pass --runner with a magos binary that does (it writes the completions and man pages)"

NAME=magos-$VERSION-$TARGET
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STAGE=$OUT/$NAME
rm -rf "$STAGE"
mkdir -p "$STAGE/completions" "$STAGE/man"

cp "$BINARY" "$STAGE/magos$EXE"
chmod 0755 "$STAGE/magos$EXE"
cp "$ROOT/configs/magos.yaml" "$STAGE/magos.yaml"
cp "$ROOT/README.md" "$STAGE/"
cp -R "$ROOT/docs" "$STAGE/docs"
"$RUNNER" completions bash >"$STAGE/completions/magos.bash"
"$RUNNER" completions zsh >"$STAGE/completions/_magos"
"$RUNNER" completions fish >"$STAGE/completions/magos.fish"
case $TARGET in
    *windows*) "$RUNNER" completions powershell >"$STAGE/completions/_magos.ps1" ;;
esac
"$RUNNER" man --out "$STAGE/man" >/dev/null
case $TARGET in
    *linux*)
        cp "$ROOT/scripts/install.sh" "$STAGE/install.sh"
        chmod 0755 "$STAGE/install.sh"
        mkdir -p "$STAGE/quadlet"
        cp "$ROOT/quadlet/magos-dominus.service" "$ROOT/quadlet/magos-dominus.container" \
            "$ROOT/quadlet/Containerfile" "$STAGE/quadlet/"
        ;;
esac

case $TARGET in
    *windows*)
        ARCHIVE=$OUT/$NAME.zip
        rm -f "$ARCHIVE"
        if command -v 7z >/dev/null; then
            (cd "$OUT" && 7z a -tzip "$NAME.zip" "$NAME" >/dev/null)
        else
            (cd "$OUT" && zip -qr "$NAME.zip" "$NAME")
        fi
        ;;
    *)
        ARCHIVE=$OUT/$NAME.tar.gz
        # Owned by root in the archive, whoever packs it.
        if tar --version 2>/dev/null | grep -q 'GNU tar'; then
            tar -C "$OUT" --owner=0 --group=0 --numeric-owner -czf "$ARCHIVE" "$NAME"
        else
            tar -C "$OUT" --uid 0 --gid 0 -czf "$ARCHIVE" "$NAME"
        fi
        ;;
esac
echo "$ARCHIVE"
