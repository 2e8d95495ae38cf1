#!/usr/bin/env bash
# Builds the Python 3.11 venv that the real-history replay cases in ../shared/fixtures/realbugs
# need (their README, "The venv"), into ${FIXCI_TOOLS_DIR:-$HOME/.cache/fixci-tools}/realbugs-venv.
# tests/integration/replay_realbugs.rs puts its `bin` first on PATH through each case's `path`.
# Idempotent: a stamp file holds the hash of the requirements it was built from; a venv whose
# stamp matches is kept. Does nothing (exit 0) when the corpus folder is absent.
# Prints how long the build took (PyICU compiles against the system ICU: about 45 s).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="../shared/fixtures/realbugs"
[ -d "$corpus" ] || { echo "no $corpus: realbugs venv not built"; exit 0; }
tools="${FIXCI_TOOLS_DIR:-$HOME/.cache/fixci-tools}"
venv="$tools/realbugs-venv"
stamp="$venv/.fixci-requirements.sha256"
want=$(cat "$corpus"/*/requirements.txt | sha256sum | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
start=$(date +%s)
command -v python3.11 >/dev/null || { echo "python3.11 is required for $corpus" >&2; exit 1; }
# PyICU (slob) builds from its sdist against the system ICU.
dpkg -s libicu-dev pkg-config g++ >/dev/null 2>&1 || {
    command -v apt-get >/dev/null && { apt-get update -qq && apt-get install -y -qq libicu-dev pkg-config g++; }
}
rm -rf "$venv"
mkdir -p "$tools"
python3.11 -m venv "$venv"
reqs=()
for f in "$corpus"/*/requirements.txt; do reqs+=(-r "$f"); done
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${reqs[@]}"
echo "$want" > "$stamp"
echo "realbugs venv built in $venv in $(( $(date +%s) - start )) s"
