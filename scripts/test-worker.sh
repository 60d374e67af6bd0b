#!/usr/bin/env bash
# End-to-end test of the Cloudflare Worker (crates/mess-worker) under `wrangler dev`, which
# emulates R2 and Durable Objects locally on 127.0.0.1:
#   1. builds it (scripts/build-worker.sh; installs what is missing) and `npm ci` if needed;
#   2. starts `wrangler dev` on a free port with a fresh local state directory;
#   3. runs the API scenarios (scripts/e2e.py api: the same suite scripts/test-e2e.sh runs
#      against the binary);
#   4. restarts `wrangler dev` on the same state (every Durable Object rebuilds from R2) and
#      checks the same answers, then the R2 objects' keys and lines in wrangler's local state
#      (and one object through `wrangler r2 object get --local`);
# and prints `N passed, M failed`. Exits non-zero on any failure.
#
# Non-interactive: CI=true, no stdin, WRANGLER_SEND_METRICS=false.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONFIG="$ROOT/deploy/cloudflare/wrangler.toml"
export CI=true WRANGLER_SEND_METRICS=false NO_COLOR=1 FORCE_COLOR=0
export WRANGLER_LOG_PATH="$ROOT/target/wrangler-logs"

started=$SECONDS
log() { echo "test-worker: $*" >&2; }

if [[ ! -x node_modules/.bin/wrangler ]]; then
    log "npm ci"
    npm ci --no-audit --no-fund </dev/null
fi

bash scripts/build-worker.sh </dev/null

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mess-worker-test.XXXXXX")"
PERSIST="$WORK/state"
WRANGLER_PID=""

stop_wrangler() {
    if [[ -n "$WRANGLER_PID" ]] && kill -0 "$WRANGLER_PID" 2>/dev/null; then
        # wrangler runs in its own process group (setsid): end the group it leads.
        kill -TERM -- "-$WRANGLER_PID" 2>/dev/null || kill -TERM "$WRANGLER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$WRANGLER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$WRANGLER_PID" 2>/dev/null || true
    fi
    WRANGLER_PID=""
}
cleanup() {
    stop_wrangler
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The key the Worker signs claim links with (the ACTION_LINK_KEY secret in production):
# e2e.py signs its own with it.
ACTION_LINK_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
printf '%s' "$ACTION_LINK_KEY" >"$WORK/action-link.key"
export MESS_ACTION_LINK_KEY_FILE=$WORK/action-link.key

# Starts wrangler dev on a free port (its custom build finds everything built: seconds) and waits
# for /health.
start_wrangler() {
    local attempt
    for attempt in 1 2 3; do
        PORT="$(free_port)"
        BASE="http://127.0.0.1:$PORT"
        local inspector
        inspector="$(free_port)"
        setsid node_modules/.bin/wrangler dev --config "$CONFIG" --ip 127.0.0.1 --port "$PORT" \
            --inspector-port "$inspector" --persist-to "$PERSIST" --log-level warn \
            --var "ACTION_LINK_KEY:$ACTION_LINK_KEY" \
            --show-interactive-dev-session=false </dev/null >>"$WORK/wrangler.log" 2>&1 &
        WRANGLER_PID=$!
        local t0=$SECONDS
        while (( SECONDS - t0 < 120 )); do
            if curl -fsS "$BASE/health" >/dev/null 2>&1; then
                log "wrangler dev up on $BASE in $((SECONDS - t0)) s"
                return 0
            fi
            kill -0 "$WRANGLER_PID" 2>/dev/null || break
            sleep 0.5
        done
        log "wrangler dev did not answer (attempt $attempt); its log:"
        tail -30 "$WORK/wrangler.log" >&2 || true
        stop_wrangler
    done
    return 1
}

# shellcheck source=lib/tally.sh
source "$ROOT/scripts/lib/tally.sh"

if ! start_wrangler; then
    echo "test-worker: wrangler dev did not start"
    echo "0 passed, 1 failed"
    exit 1
fi
tally < <(python3 scripts/e2e.py api "$BASE" "$WORK/state.json" r2 </dev/null || true)
# Let notifications finish (their outcomes are written after the responses).
sleep 3
stop_wrangler

if [[ -f "$WORK/state.json" ]] && start_wrangler; then
    tally < <(python3 scripts/e2e.py after-restart "$BASE" "$WORK/state.json" </dev/null || true)
    tally < <(python3 scripts/e2e.py r2 "$WORK/state.json" "$PERSIST" "$CONFIG" </dev/null || true)
else
    failed=$((failed + 1))
    echo "FAIL restart: wrangler dev did not come back"
fi
stop_wrangler

if (( failed > 0 )); then
    log "wrangler log (last 40 lines):"
    tail -40 "$WORK/wrangler.log" >&2 || true
fi
log "took $((SECONDS - started)) s"
echo "$passed passed, $failed failed"
(( failed == 0 && passed > 0 ))
