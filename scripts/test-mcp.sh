#!/usr/bin/env bash
# The MCP endpoint through the official SDKs, against the live binary (issue 18): the MCP
# Python SDK (`mcp` 2.x, MCP 2026-07-28, with and without the Tasks extension) drives an
# agent while a human answers on plain REST; the TypeScript SDK (2025-11-25, sessions)
# lists the tools and calls one; then the binary restarts and a new client resumes the
# task by its id. Installs the Python SDK into .venv-mcp and the TypeScript SDK under
# scripts/mcp/node_modules. No input; exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=$ROOT/target/debug/mess-exchange
VENV=$ROOT/.venv-mcp

[[ -x $BIN ]] || cargo build -p mess-exchange
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/mcp/requirements.txt
(cd scripts/mcp && npm install --no-audit --no-fund --silent)
PY=$VENV/bin/python

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mess-mcp.XXXXXX")
# shellcheck source=lib/server.sh
source "$ROOT/scripts/lib/server.sh"
trap 'stop_server; rm -rf "$WORK"' EXIT
# shellcheck source=lib/tally.sh
source "$ROOT/scripts/lib/tally.sh"

phase start "$PY" scripts/mcp/mcp_test.py agent "$BASE" "$WORK/state.json"
if [[ -f "$WORK/state.json" ]]; then
    phase restart "$PY" scripts/mcp/mcp_test.py resume "$BASE" "$WORK/state.json"
else
    failed=$((failed + 1))
    echo "FAIL restart: the first phase saved no state"
fi
summary
