#!/usr/bin/env bash
# Compares a driver benchmark between two builds of the repository in the same run.
#
#   scripts/compare-builds.sh OLD NEW [-- BENCH_ARGS...]
#
# OLD and NEW are git revisions (`HEAD`, a branch, a commit; `.` is the working tree as it
# is). Each is checked out into its own worktree (under $COMPARE_DIR, default
# /tmp/sockstate-compare) and built with its own target directory there (or
# $COMPARE_TARGET_OLD / $COMPARE_TARGET_NEW), then the bench programs of the two builds
# (`cargo bench -p sockstate-driver --bench $BENCH`, default `stream`) run in turn, OLD then
# NEW, $ROUNDS times (default 3) with BENCH_ARGS (default `--runs 3 driver`). At the end, for
# every row both builds report (metric and implementation), it prints the median over the
# rounds of each and NEW / OLD, with the load average before and after.
#
# Rows only one build has (e.g. an implementation the old build lacks) are left out.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
old=$1
new=$2
shift 2
if [[ ${1:-} == "--" ]]; then
    shift
fi
args=("$@")
if [[ ${#args[@]} -eq 0 ]]; then
    args=(--runs 3 driver)
fi
bench=${BENCH:-stream}
rounds=${ROUNDS:-3}
root=$(git rev-parse --show-toplevel)
dir=${COMPARE_DIR:-/tmp/sockstate-compare}
mkdir -p "$dir"

# The bench program of revision $1 (target directory $2), built if needed; prints its path.
build() {
    local rev=$1 target=$2 tree
    if [[ $rev == "." ]]; then
        tree=$root
    else
        local sha
        sha=$(git -C "$root" rev-parse --short "$rev^{commit}")
        tree=$dir/tree-$sha
        if [[ ! -d $tree ]]; then
            git -C "$root" worktree add --detach "$tree" "$sha" >&2
        fi
    fi
    (cd "$tree" && CARGO_TARGET_DIR=$target cargo bench -p sockstate-driver --bench "$bench" \
        --no-run --message-format=json 2>/dev/null) |
        python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])
' "$bench" | tail -1
}

old_bin=$(build "$old" "${COMPARE_TARGET_OLD:-$dir/target-old}")
new_bin=$(build "$new" "${COMPARE_TARGET_NEW:-$dir/target-new}")
if [[ -z $old_bin || -z $new_bin ]]; then
    echo "compare-builds: a build failed (run cargo bench --no-run in it to see why)" >&2
    exit 1
fi
echo "old: $old ($old_bin)"
echo "new: $new ($new_bin)"
echo "load before: $(uptime)"
out=$dir/runs
rm -rf "$out"
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
    for side in old new; do
        bin=${side}_bin
        "${!bin}" "${args[@]}" >"$out/$side-$round.md" 2>"$out/$side-$round.err" || {
            echo "compare-builds: the $side bench failed in round $round:" >&2
            tail -5 "$out/$side-$round.err" >&2
            exit 1
        }
    done
done
echo "load after: $(uptime)"
python3 - "$out" "$rounds" <<'EOF'
import glob, os, statistics, sys

out, rounds = sys.argv[1], int(sys.argv[2])

def rows(path):
    got = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("metric", "") or set(cells[0]) <= set("-:"):
            continue
        try:
            value = float(cells[2].replace(" ", ""))
        except ValueError:
            continue
        got[(cells[0], cells[1])] = value
    return got

runs = {side: [rows(os.path.join(out, f"{side}-{r}.md")) for r in range(1, rounds + 1)]
        for side in ("old", "new")}
keys = [k for k in runs["new"][0] if all(k in run for side in runs.values() for run in side)]
print(f"\n| metric | implementation | old (median of {rounds}) | new | new / old |")
print("|---|---|--:|--:|--:|")
for key in keys:
    old = statistics.median(run[key] for run in runs["old"])
    new = statistics.median(run[key] for run in runs["new"])
    ratio = f"{new / old:.3f}" if old else "-"
    print(f"| {key[0]} | {key[1]} | {old:.4g} | {new:.4g} | {ratio} |")
EOF
