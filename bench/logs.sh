#!/usr/bin/env bash
# Benchmark of `fixci logs` against the raw-scan floor (`grep -E -c` with the same literal
# pattern set as fixci's prefilter) and a Treeherder-style Python `re` line extractor, on a
# generated GitHub Actions style log (timestamps, groups, ANSI, failures scattered).
#
# usage: bench/logs.sh [SIZE_MB] [RUNS]     (defaults: 200 MB, best of 3)
# env:   BENCH_DIR (default /tmp/fixci-bench), FIXCI (default target/release/fixci)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-200}
RUNS=${2:-3}
DIR=${BENCH_DIR:-/tmp/fixci-bench}
FIXCI=${FIXCI:-target/release/fixci}
LOG="$DIR/github-${SIZE_MB}mb.log"
mkdir -p "$DIR"

if [ "${FIXCI}" = target/release/fixci ]; then
  CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet
fi
[ -s "$LOG" ] && [ -s "$LOG.failures" ] || python3 bench/gen_log.py "$LOG" "$SIZE_MB" 60
BYTES=$(stat -c %s "$LOG")

# The prefilter's literals, as one ERE (same set fixci scans for: every pack's triggers, the
# GitHub group and GitLab section markers, less the literals that contain another one, as
# `rule_pack::compile` does).
PATTERN=$(python3 - <<'PY'
import glob, tomllib
lits = {"group]", "section_"}
for p in glob.glob("src/logs/rules/*.toml"):
    with open(p, "rb") as f:
        lits.update(tomllib.load(f)["triggers"])
lits = {l for l in lits if not any(o != l and o in l for o in lits)}
def ere(s):
    return "".join("\\" + c if c in ".[]()*+?{}|^$\\" else c for c in s)
print("|".join(ere(l) for l in sorted(lits)))
PY
)

PIN=()
command -v taskset >/dev/null && PIN=(taskset -c 0)

# best wall time (s) and peak RSS (KB) over $RUNS runs of "$@"
measure() {
  local best="" rss=0 out t m
  for _ in $(seq "$RUNS"); do
    # Not >/dev/null: GNU grep notices it and stops at the first match.
    out=$( { /usr/bin/time -f "%e %M" "${PIN[@]}" "$@" >"$DIR/stdout"; } 2>&1 | tail -1)
    t=${out% *}; m=${out#* }
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
    [ "$m" -gt "$rss" ] && rss=$m
  done
  echo "$best $rss"
}

cat "$LOG" >/dev/null  # warm the page cache
read -r T_FIXCI M_FIXCI < <(measure "$FIXCI" logs --json "$LOG")
read -r T_GREP M_GREP < <(LC_ALL=C measure grep -E -c "$PATTERN" "$LOG")
read -r T_PY M_PY < <(RUNS=1 measure python3 bench/logs_treeherder.py "$LOG")

mbs() { awk "BEGIN{ t=$1; if (t < 0.01) t = 0.01; printf \"%.0f\", $BYTES / 1e6 / t }"; }
echo "log: $LOG ($((BYTES / 1000000)) MB, $(wc -l <"$LOG") lines); best of $RUNS, pinned: ${PIN[*]:-no}"
printf "%-28s %8s %10s %12s\n" tool seconds MB/s "peak RSS MB"
printf "%-28s %8s %10s %12s\n" "fixci logs --json" "$T_FIXCI" "$(mbs "$T_FIXCI")" "$((M_FIXCI / 1024))"
printf "%-28s %8s %10s %12s\n" "grep -E -c (same literals)" "$T_GREP" "$(mbs "$T_GREP")" "$((M_GREP / 1024))"
printf "%-28s %8s %10s %12s\n" "python re (Treeherder-style)" "$T_PY" "$(mbs "$T_PY")" "$((M_PY / 1024))"
awk "BEGIN{ f=$T_FIXCI; if (f < 0.01) f = 0.01; printf \"fixci time / grep time: %.2f   python time / fixci time: %.1f\n\", f / $T_GREP, $T_PY / f }"
# Recall: every injected failure (template, k) must be reported, its k in the test id.
"$FIXCI" logs --json "$LOG" | python3 -c '
import json, re, sys
d = json.load(sys.stdin)
injected = {tuple(l.split()) for l in open(sys.argv[1]) if l.strip()}
ids = [f["test"] for f in d["failures"]]
found = {i for i in injected if any(re.search(r"(?<!\d)" + i[1] + r"(?!\d)", t) for t in ids)}
print(f"failures reported: {len(ids)}; injected (distinct): {len(injected)}; recall: {len(found)}/{len(injected)}")
missed = sorted(injected - found)
if missed:
    print("missed:", missed)
    sys.exit(1)
' "$LOG.failures"
