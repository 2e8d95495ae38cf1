#!/usr/bin/env bash
# Benchmark of `fixci stress` on one flaky pytest test (fails with probability 0.1, drawn from
# os.urandom), in one run:
#   1. throughput (runs/s) over N runs at J jobs: fixci stress; `seq N | xargs -P J` of the
#      plain command (the spawn-bound limit); `pytest -n J --count N` (pytest-xdist +
#      pytest-repeat, which repeat in-process and so are not spawn-bound);
#   2. time to first failure, median of R tries: fixci `--until-failures 1` (plain, and with
#      `--repeat 10`: ten in-process repetitions per run); xargs stopping on
#      the first failure (exit 255); `pytest -n J --count N -x`;
#   3. verification runs per fixed flaky test at the measured rate, vs the fixed five runs, with
#      the probability that each would have passed a non-fix.
# Prints a Markdown section for BENCHMARKS.md. Usage: bench/stress.sh [N] [J] [R]
# Needs python3 (>= 3.8) and PyPI access for the venv (cached in $FIXCI_BENCH_VENV).
set -euo pipefail

N=${1:-200}
J=${2:-$(nproc)}
R=${3:-7}
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${FIXCI_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fixci-bench/venv-stress}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Resolve the real interpreter (not a pyenv shim, whose wrapper would cost every run).
base_python=$(python3 -c 'import sys; print(sys.executable)')
if [ ! -x "$venv/bin/python" ]; then
  "$base_python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check pytest pytest-xdist pytest-repeat >&2
PY=$venv/bin/python

(cd "$root" && CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release -q)
FIXCI=$root/target/release/fixci

cat >"$work/test_flaky.py" <<'PY'
import os


def test_flaky():
    # Fails with probability exactly 0.1 (up to a 2^-32 modulo bias), independently per run.
    r = int.from_bytes(os.urandom(4), "big") % 10
    assert r != 0, "flaky: drew 0"
PY
cd "$work"
TEST=(-m pytest -q -p no:cacheprovider test_flaky.py)

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):.3f}")' "$@"; }
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

# --- 1. throughput -------------------------------------------------------------------------
# The machine is shared, so fixci and xargs alternate over four rounds of N/4 runs each (who
# goes first alternates too) and the walls are summed; pytest-xdist runs once with N.
quarter=$((N / 4))
fixci_wall=0; xargs_wall=0
run_fixci() {
  local t0 t1
  t0=$(now)
  "$FIXCI" stress --json --runs "$quarter" --jobs "$J" --keep-dir "$work/k-thr-$1" \
    -- "$PY" "${TEST[@]}" >"$work/thr-$1.json" || true
  t1=$(now)
  fixci_wall=$(python3 -c "print(f'{$fixci_wall + $t1 - $t0:.3f}')")
}
run_xargs() {
  local t0 t1
  t0=$(now)
  seq "$quarter" | xargs -P "$J" -I{} "$PY" "${TEST[@]}" >/dev/null 2>&1 || true
  t1=$(now)
  xargs_wall=$(python3 -c "print(f'{$xargs_wall + $t1 - $t0:.3f}')")
}
for round in 1 2 3 4; do
  if [ $((round % 2)) = 1 ]; then run_fixci "$round"; run_xargs; else run_xargs; run_fixci "$round"; fi
done
N=$((4 * quarter))
t0=$(now)
"$PY" "${TEST[@]}" -n "$J" --count "$N" >/dev/null 2>&1 || true
t1=$(now)
pytest_wall=$(elapsed "$t0" "$t1")

rate() { python3 -c "print(f'{$N / $1:.2f}')"; }

# --- 2. time to first failure --------------------------------------------------------------
fixci_t=(); fixci_inner=(); rep_t=(); xargs_t=(); pytest_t=()
for i in $(seq "$R"); do
  t0=$(now)
  "$FIXCI" stress --json --runs 100000 --until-failures 1 --jobs "$J" --keep-dir "$work/k-ttff-$i" \
    -- "$PY" "${TEST[@]}" >"$work/ttff-$i.json" || true
  t1=$(now)
  fixci_t+=("$(elapsed "$t0" "$t1")")
  fixci_inner+=("$(json "$work/ttff-$i.json" 'd["time_to_first_failure_s"]')")

  t0=$(now)
  "$FIXCI" stress --json --runs 100000 --until-failures 1 --jobs "$J" --repeat 10 \
    --keep-dir "$work/k-rep-$i" -- "$PY" "${TEST[@]}" >/dev/null || true
  t1=$(now)
  rep_t+=("$(elapsed "$t0" "$t1")")

  t0=$(now)
  seq 100000 | xargs -P "$J" -I{} sh -c '"$@" >/dev/null 2>&1 || exit 255' sh "$PY" "${TEST[@]}" 2>/dev/null || true
  t1=$(now)
  xargs_t+=("$(elapsed "$t0" "$t1")")

  t0=$(now)
  "$PY" "${TEST[@]}" -n "$J" --count "$N" -x >/dev/null 2>&1 || true
  t1=$(now)
  pytest_t+=("$(elapsed "$t0" "$t1")")
done

# --- 3. verification runs ------------------------------------------------------------------
# One more fixci run of N, whose own report (stats::clopper_pearson, stats::runs_needed) gives
# the measured rate and the runs a fix verification needs.
"$FIXCI" stress --json --runs "$N" --jobs "$J" --keep-dir "$work/k-ver" \
  -- "$PY" "${TEST[@]}" >"$work/ver.json" || true
p=$(json "$work/ver.json" 'round(d["failure_rate"], 4)')
lo=$(json "$work/ver.json" 'round(d["interval"][0], 4)')
hi=$(json "$work/ver.json" 'round(d["interval"][1], 4)')
fails=$(json "$work/ver.json" 'd["failures"]')
runs_pooled=$(json "$work/ver.json" 'd["runs"]')
nver=$(json "$work/ver.json" 'd["runs_to_verify"]')
p5=$(json "$work/ver.json" 'round(d["five_runs_pass_probability"], 3)')
if [ "$nver" = None ]; then
  nver="(no failure observed: rerun with a larger N)"; pn=n/a; pntrue=n/a
else
  pn=$(python3 -c "print(round((1 - $p) ** $nver, 3))")
  pntrue=$(python3 -c "print(round(0.9 ** $nver, 4))")
fi
p5true=$(python3 -c "print(round(0.9 ** 5, 3))")

cat <<MD
### Run of $(date -u +%Y-%m-%d) ($(nproc) CPUs, $("$PY" --version), pytest $("$PY" -c 'import pytest; print(pytest.__version__)'))

Command: \`bench/stress.sh $N $J $R\` (N = $N runs, J = $J jobs, R = $R tries for time to first failure)

| method | wall for $N runs (s) | runs/s | vs xargs | time to first failure, median of $R (s) |
|---|---|---|---|---|
| \`fixci stress --jobs $J\` | $fixci_wall | $(rate "$fixci_wall") | $(python3 -c "print(f'{$xargs_wall / $fixci_wall:.2f}x')") | $(median "${fixci_t[@]}") (first failure seen at $(median "${fixci_inner[@]}")) |
| \`fixci stress --jobs $J --repeat 10\` | | | | $(median "${rep_t[@]}") |
| \`seq N \| xargs -P $J\` | $xargs_wall | $(rate "$xargs_wall") | 1.00x | $(median "${xargs_t[@]}") |
| \`pytest -n $J --count N\` (in-process repeats) | $pytest_wall | $(rate "$pytest_wall") | $(python3 -c "print(f'{$xargs_wall / $pytest_wall:.2f}x')") | $(median "${pytest_t[@]}") (\`-x\`, collecting $N items) |

Time-to-first-failure samples (s): fixci ${fixci_t[*]}; fixci --repeat 10 ${rep_t[*]};
xargs ${xargs_t[*]}; pytest ${pytest_t[*]}. Walls are measured outside each tool and include its
start-up and shut-down (for fixci, stopping the runs still going after the first failure).

Verification: fixci measured $fails failures in $runs_pooled runs, rate $p (95% Clopper-Pearson [$lo, $hi]).
A fix verification then needs $nver clean runs (\`runs_needed($p, 0.05)\`). A non-fix failing at
that rate passes those $nver runs with probability $pn, and passes the fixed five runs with
probability $p5 (at the true rate 0.1: $pntrue vs $p5true).
MD
