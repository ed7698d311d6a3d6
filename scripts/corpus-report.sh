#!/usr/bin/env bash
# How Magos routes the conformance corpus (tests/corpus/): for each stack,
# `magos lint` and `magos plan --output json`, then one line per compose file:
#
#   STACK  BUILD  ROUTE  WHY
#
# ROUTE is `native` (Magos applies it through the libpod API), `compose-cli`
# (handed to podman-compose; WHY lists the keys that route it), `refused` (the
# stack does not load; WHY is the error) or `plan-error` (native, but the plan
# fails; WHY is the error). The totals follow: files per route, the share of
# files without `build:` applied natively, and the keys that route files to the
# compose CLI or the errors that refuse them, by number of files.
#
#   scripts/corpus-report.sh [--markdown] [CORPUS_DIR]
#
# --markdown prints the same as Markdown tables (for tests/corpus/README.md).
# `magos plan` asks Podman what exists, so it needs a socket: CONTAINER_HOST, else
# the test bed's (/run/magos-testbed/env). MAGOS_BIN names the binary to use;
# without it the script runs `cargo build` once and uses target/debug/magos.
# A measurement, not a test: it always exits 0 when it could measure.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
markdown=0
if [[ ${1:-} == --markdown ]]; then
    markdown=1
    shift
fi
corpus=$(cd "${1:-$here/tests/corpus}" && pwd)

if [[ -z ${CONTAINER_HOST:-} && -f /run/magos-testbed/env ]]; then
    CONTAINER_HOST=$(sed -n 's/^CONTAINER_HOST=//p' /run/magos-testbed/env)
fi
[[ -n ${CONTAINER_HOST:-} ]] ||
    { echo "corpus-report: no Podman socket: set CONTAINER_HOST or start scripts/testbed.sh" >&2; exit 2; }
export CONTAINER_HOST

if [[ -z ${MAGOS_BIN:-} ]]; then
    (cd "$here" && cargo build --quiet --bin magos) >&2
    MAGOS_BIN="${CARGO_TARGET_DIR:-$here/target}/debug/magos"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# An empty configuration: the built-in defaults, whatever the caller's files say.
: >"$work/magos.yaml"

# One lint of the whole corpus gives each stack's folder and project name.
"$MAGOS_BIN" lint --config "$work/magos.yaml" --repo "$corpus" --output json \
    >"$work/all-lint.json" 2>"$work/all-lint.err" || true
python3 -c '
import json, sys
for s in json.load(open(sys.argv[1]))["stacks"]:
    print(s["dir"], s["project"])
' "$work/all-lint.json" >"$work/stacks"
[[ -s $work/stacks ]] || { cat "$work/all-lint.err" >&2; echo "corpus-report: lint found no stack in $corpus" >&2; exit 2; }

# Per stack: lint (only its folder) and plan (only its project).
while read -r dir project; do
    safe=${dir//\//_}
    "$MAGOS_BIN" lint --config "$work/magos.yaml" --repo "$corpus" --include "$dir" --output json \
        >"$work/$safe.lint.json" 2>"$work/$safe.lint.err" || true
    # A plan that printed nothing (the shared Podman did not answer in time) is
    # asked once more.
    for _ in 1 2; do
        "$MAGOS_BIN" plan --config "$work/magos.yaml" --repo "$corpus" --stack "$project" --no-prune \
            --output json >"$work/$safe.plan.json" 2>"$work/$safe.plan.err" || true
        [[ -s $work/$safe.plan.json ]] && break
    done
done <"$work/stacks"

python3 - "$corpus" "$work" "$markdown" <<'PY'
import json, os, re, sys
from collections import Counter

corpus, work, markdown = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def generic(key):
    # `networks.dns-net.ipam` and `networks.net0.ipam` count as one reason.
    return re.sub(r"^(networks|volumes|secrets|configs)\.[^.]+\.", r"\1.*.", key)

def short_error(text):
    # `dir/compose.yaml:5:1: error: service `db`: volume `…`: reason` -> the reason's gist.
    text = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return re.sub(r"^\S+:\d+:\d+: error: ", "", text)

rows, reasons, counts = [], Counter(), Counter()
for line in open(os.path.join(work, "stacks")):
    d, project = line.split()
    safe = d.replace("/", "_")
    source = os.path.join(corpus, d, "SOURCE")
    build = "?"
    if os.path.exists(source):
        m = re.search(r"^build: (\w+)", open(source).read(), re.M)
        build = m.group(1) if m else "?"
    plan = load(os.path.join(work, safe + ".plan.json"))
    lint = load(os.path.join(work, safe + ".lint.json"))
    route, why = "refused", ""
    if plan is None:
        err = open(os.path.join(work, safe + ".plan.err")).read()
        why = short_error(err.split("error:", 1)[-1]) if err else "plan printed nothing"
    else:
        cli = [c for c in plan.get("compose_cli", []) if c["stack"] == project]
        errs = [e for e in plan.get("errors", []) if e["stack"] in (project, d)]
        native = [s for s in plan.get("stacks", []) if s["project"] == project]
        if cli:
            route, keys = "compose-cli", cli[0]["keys"]
            why = ", ".join(keys)
            for k in sorted({generic(k) for k in keys}):
                reasons[("compose-cli", k)] += 1
        elif errs:
            route, why = "refused", short_error(errs[0]["error"])
            # One reason per kind of error: names and values left out.
            reasons[("refused", re.sub(r"`[^`]*`", "`…`", re.sub(r"^service `[^`]*`: ", "", why)))] += 1
        elif native and native[0].get("error"):
            route, why = "plan-error", native[0]["error"]
            reasons[("plan-error", why)] += 1
        elif native:
            route = "native"
            unsupported = sorted({k for s in (lint or {}).get("stacks", []) for k in s.get("unsupported", [])})
            if unsupported:
                why = "lint lists " + ", ".join(unsupported)
        else:
            why = "not in the plan"
    counts[route] += 1
    rows.append((d, build, route, why))

total = len(rows)
nonbuild = [r for r in rows if r[1] == "no"]
nb_native = sum(1 for r in nonbuild if r[2] == "native")

def pct(a, b):
    return f"{100 * a / b:.0f} %" if b else "n/a"

if markdown:
    print("| stack | build | route | why |")
    print("| --- | --- | --- | --- |")
    for d, b, r, w in rows:
        w = w.replace("|", "\\|")
        print(f"| {d} | {b} | {r} | {w} |")
    print()
    print(f"{total} files: " + ", ".join(f"{counts[k]} {k}" for k in ("native", "compose-cli", "refused", "plan-error") if counts[k])
          + f"; {len(nonbuild)} without `build:`, of which {nb_native} native ({pct(nb_native, len(nonbuild))}).")
    print()
    print("| route | key or error | files |")
    print("| --- | --- | --- |")
    for (route, k), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        k = k.replace("|", "\\|")
        print(f"| {route} | {k} | {n} |")
else:
    w1 = max(len(r[0]) for r in rows)
    print(f"{'STACK':<{w1}}  BUILD  {'ROUTE':<11}  WHY")
    for d, b, r, w in rows:
        print(f"{d:<{w1}}  {b:<5}  {r:<11}  {w}")
    print()
    print(f"{total} files: " + ", ".join(f"{counts[k]} {k}" for k in ("native", "compose-cli", "refused", "plan-error") if counts[k]))
    print(f"without build: {len(nonbuild)} files, {nb_native} native ({pct(nb_native, len(nonbuild))})")
    print("reasons (files):")
    for (route, k), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:>3}  {route:<11}  {k}")
PY
