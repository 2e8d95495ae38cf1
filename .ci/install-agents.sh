#!/usr/bin/env bash
# Installs the real coding-agent CLIs that the end-to-end tests drive (tests/integration/agents.rs)
# into one cache folder, idempotently, and prints the folder's bin directory on stdout (the only
# line on stdout; progress goes to stderr).
#
#   FIXCI_AGENTS_DIR   where to install (default ~/.cache/fixci-agents)
#   FIXCI_AGENTS       which CLIs (default "claude codex aider gemini opencode copilot qwen")
#
# Versions are pinned to the ones checked in shared/AGENTS.md; a version change means re-checking
# the presets (src/agent/presets.toml) against the CLI's --help. A CLI that fails to install is
# reported on stderr and skipped (its tests then skip with a message, or fail under
# FIXCI_REQUIRE_AGENTS=1); the script still exits 0 so that a registry hiccup does not fail the
# whole CI run. Set FIXCI_AGENTS_STRICT=1 to fail instead.
set -uo pipefail

CLAUDE_VERSION=2.1.197
CODEX_VERSION=0.169.0
GEMINI_VERSION=0.61.0
AIDER_VERSION=0.86.2
OPENCODE_VERSION=1.18.33
COPILOT_VERSION=1.0.102
QWEN_VERSION=0.24.4

dir="${FIXCI_AGENTS_DIR:-$HOME/.cache/fixci-agents}"
wanted="${FIXCI_AGENTS:-claude codex aider gemini opencode copilot qwen}"
bin="$dir/bin"
mkdir -p "$bin" "$dir/npm"
failed=0

log() { echo "install-agents: $*" >&2; }

# npm_cli NAME PACKAGE VERSION BIN: one npm prefix per CLI, so versions never fight.
npm_cli() {
  local name=$1 package=$2 version=$3 exe=$4 prefix="$dir/npm/$1"
  if [ -f "$prefix/.installed-$version" ] && [ -x "$prefix/bin/$exe" ]; then
    log "$name $version already installed"
  else
    log "installing $package@$version"
    rm -rf "$prefix"
    mkdir -p "$prefix"
    if ! npm install --global --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        "$package@$version" >&2; then
      log "FAILED: $package@$version"
      failed=1
      return
    fi
    touch "$prefix/.installed-$version"
  fi
  ln -sf "$prefix/bin/$exe" "$bin/$exe"
}

aider_cli() {
  local venv="$dir/aider-venv"
  if [ -f "$venv/.installed-$AIDER_VERSION" ] && [ -x "$venv/bin/aider" ]; then
    log "aider $AIDER_VERSION already installed"
  else
    log "installing aider-chat==$AIDER_VERSION"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >&2 \
      || ! "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "aider-chat==$AIDER_VERSION" >&2; then
      log "FAILED: aider-chat==$AIDER_VERSION"
      failed=1
      return
    fi
    touch "$venv/.installed-$AIDER_VERSION"
  fi
  ln -sf "$venv/bin/aider" "$bin/aider"
}

# copilot unpacks its runtime (~235 MB) on its first start under $COPILOT_PKG_CACHE_HOME (default
# $XDG_CACHE_HOME/copilot); the tests run it with a private HOME and
# COPILOT_PKG_CACHE_HOME="$dir/copilot-pkg", unpacked here once.
copilot_unpack() {
  if ! COPILOT_PKG_CACHE_HOME="$dir/copilot-pkg" COPILOT_AUTO_UPDATE=false "$bin/copilot" --version >&2; then
    log "FAILED: copilot --version"
    failed=1
  fi
}

command -v npm >/dev/null || log "npm not found: claude, codex, gemini, opencode, copilot and qwen are skipped"
for cli in $wanted; do
  case "$cli" in
    claude) command -v npm >/dev/null && npm_cli claude @anthropic-ai/claude-code "$CLAUDE_VERSION" claude ;;
    codex) command -v npm >/dev/null && npm_cli codex @openai/codex "$CODEX_VERSION" codex ;;
    gemini) command -v npm >/dev/null && npm_cli gemini @google/gemini-cli "$GEMINI_VERSION" gemini ;;
    opencode) command -v npm >/dev/null && npm_cli opencode opencode-ai "$OPENCODE_VERSION" opencode ;;
    copilot)
      command -v npm >/dev/null && npm_cli copilot @github/copilot "$COPILOT_VERSION" copilot \
        && copilot_unpack ;;
    qwen) command -v npm >/dev/null && npm_cli qwen @qwen-code/qwen-code "$QWEN_VERSION" qwen ;;
    aider) aider_cli ;;
    *) log "unknown CLI \`$cli\` (known: claude codex aider gemini opencode copilot qwen)"; failed=1 ;;
  esac
done

if [ "$failed" = 1 ] && [ "${FIXCI_AGENTS_STRICT:-0}" = 1 ]; then
  exit 1
fi
echo "$bin"
