#!/usr/bin/env bash
# Replay benchmark: N small deterministic cases (real git repository, real unittest test, an
# instant scripted agent) replayed at -j 1 and -j 2 with the release binary. Reports total wall
# time, throughput, and fixci's own overhead per item (wall time minus agent and test time, as
# each record states it), next to a baseline of what the item costs with no fixci at all:
# clone + checkout + the same test commands run by a shell loop.
#
#   bench/replay.sh [N]        (default N = 100)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
cargo build --release --quiet
BIN=$PWD/target/release/fixci
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 tests/replay/make_corpus.py "$W/corpus" --bench "$N" >/dev/null
stats() {
  python3 - "$1" "$2" <<'PY'
import json, sys, glob, statistics
out, wall = sys.argv[1], float(sys.argv[2])
rs = [json.load(open(f)) for f in glob.glob(out + "/records/*.json")]
ov = sorted(r["wall_s"] - r["agent_and_tests_s"] for r in rs)
res = sum(r["verdict"] == "resolved" for r in rs)
print(f"  items {len(rs)} (resolved {res}), wall {wall:.1f} s, {len(rs)/wall:.2f} items/s")
print(f"  overhead per item: mean {statistics.mean(ov)*1000:.0f} ms, median {statistics.median(ov)*1000:.0f} ms, p90 {ov[int(len(ov)*0.9)]*1000:.0f} ms")
print(f"  agent+tests per item: mean {statistics.mean(r['agent_and_tests_s'] for r in rs)*1000:.0f} ms")
PY
}
for j in 1 2; do
  start=$(date +%s.%N)
  "$BIN" replay run "$W/corpus/cases" --variant "$W/corpus/variants/a" -j "$j" --out "$W/out-j$j" 2>/dev/null >/dev/null
  end=$(date +%s.%N)
  echo "fixci replay -j $j:"
  stats "$W/out-j$j" "$(python3 -c "print(round($end - $start, 1))")"
done
# Baseline: the bare work of one item without fixci (clone, checkout, confirm 3 runs, verify 5
# runs, fail-to-pass and pass-to-pass once), in a shell loop, sequentially.
start=$(date +%s.%N)
for c in "$W"/corpus/cases/*/; do
  commit=$(sed -n 's/^commit = "\(.*\)"/\1/p' "$c/case.toml")
  d=$(mktemp -d)
  git clone -q --no-checkout "$W/corpus/repos/calc" "$d/r" && git -C "$d/r" checkout -q --detach "$commit"
  (cd "$d/r" && for i in 1 2 3; do python3 -m unittest -q tests.test_add 2>/dev/null && exit 1; done; true)
  (cd "$d/r" && sed -i 's/return a - b  # add.*/return a + b/' calc.py && for i in 1 2 3 4 5 6; do python3 -m unittest -q tests.test_add 2>/dev/null; done; python3 -m unittest -q tests.test_sub 2>/dev/null)
  rm -rf "$d"
done
end=$(date +%s.%N)
echo "shell baseline (clone + the same 10 test runs, no agent, sequential): $(python3 -c "print(round($end - $start, 1))") s for $N items"
