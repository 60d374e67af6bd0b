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
log() { echo "test-e2e: $*" >&2; }

[[ -x $BIN ]] || cargo build -p mess-exchange

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mess-e2e.XXXXXX")
SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT

start_server() {
    # Private addresses allowed: the scenarios register webhooks on 127.0.0.1, as they do
    # on the Worker (whose fetch refuses private addresses by itself).
    PORT=$PORT BIND_ADDRESS=127.0.0.1 STORAGE_PATH=$WORK/data NOTIFY_ALLOW_PRIVATE=true \
        "$BIN" >>"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 150); do
        curl -fsS "$BASE/health" >/dev/null 2>&1 && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

# shellcheck source=lib/tally.sh
source "$ROOT/scripts/lib/tally.sh"

if start_server; then
    tally < <("$PY" scripts/e2e.py api "$BASE" "$WORK/state.json" filesystem </dev/null || true)
else
    failed=$((failed + 1))
    echo "FAIL start: the binary did not answer /health"
fi
stop_server

if [[ -f "$WORK/state.json" ]] && start_server; then
    tally < <("$PY" scripts/e2e.py after-restart "$BASE" "$WORK/state.json" </dev/null || true)
else
    failed=$((failed + 1))
    echo "FAIL restart: the binary did not come back"
fi
stop_server

if (( failed > 0 )); then
    log "server log (last 40 lines):"
    tail -40 "$WORK/server.log" >&2 || true
fi
echo "$passed passed, $failed failed"
(( failed == 0 && passed > 0 ))
