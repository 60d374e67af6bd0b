#!/usr/bin/env bash
# The end-to-end API suite (scripts/e2e.py) against the binary: the same scenarios
# scripts/test-worker.sh runs against the Worker, unchanged, so both hosts are held to one
# black-box contract. Starts target/debug/mess-exchange (building it when missing) on a free
# port with a fresh filesystem store, runs `e2e.py api`, restarts the binary on the same
# store (it replays its log) and runs `e2e.py after-restart`; prints `N passed, M failed`.
# The only answer the suite lets differ by host is /health's `storage` (docs/deployment.md,
# "One suite, two hosts"). No input; exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=$ROOT/target/debug/mess-exchange
PY=${MESS_TEST_PYTHON:-python3}

[[ -x $BIN ]] || cargo build -p mess-exchange

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mess-e2e.XXXXXX")
# shellcheck source=lib/server.sh
source "$ROOT/scripts/lib/server.sh"
trap 'stop_server; rm -rf "$WORK"' EXIT

# shellcheck source=lib/tally.sh
source "$ROOT/scripts/lib/tally.sh"

# The key the binary signs claim links with (made at its first start): e2e.py signs its own.
export MESS_ACTION_LINK_KEY_FILE=$WORK/data/secrets/action-links.key
phase start "$PY" scripts/e2e.py api "$BASE" "$WORK/state.json" filesystem
if [[ -f "$WORK/state.json" ]]; then
    phase restart "$PY" scripts/e2e.py after-restart "$BASE" "$WORK/state.json"
else
    failed=$((failed + 1))
    echo "FAIL restart: the first phase saved no state"
fi
summary
