#!/usr/bin/env bash
# Replicas on one S3 bucket, proved black-box (scripts/replicas.py says what it proves):
# three processes of the binary, each exchange owned by one at a time through a lease, any
# of them answering any request; a claim race, a load whose every acknowledged write is
# checked, and faults under it (SIGKILL, SIGSTOP, the S3 link cut, a rolling restart).
# Uses moto: the one at $MESS_TEST_S3_ENDPOINT when set (scripts/test.sh starts one), else
# its own on a free port, stopped at exit. Builds nothing: the binary ($MESS_BIN, default
# target/debug/mess-exchange) must be there. $MESS_TEST_PYTHON is the venv's python (with
# moto). MESS_REPLICAS=1 runs the same scenarios against one process, no replica mode.
# Prints `N passed, M failed` and the measurements; exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${MESS_TEST_PYTHON:-$ROOT/.venv/bin/python}
export MESS_BIN=${MESS_BIN:-$ROOT/target/debug/mess-exchange}

if [[ ! -x $MESS_BIN ]]; then
    echo "FAIL the binary $MESS_BIN is missing: build it first (cargo build -p mess-exchange)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mess-replicas.XXXXXX")
MOTO_PID=
cleanup() {
    # replicas.py stops its replicas; if it was killed, end the ones it left, by their pids.
    local f pid
    for f in "$WORK"/replica-*.pid; do
        [[ -f $f ]] || continue
        pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill -CONT "$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [[ -n $MOTO_PID ]]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -n ${MESS_TEST_S3_ENDPOINT:-} ]]; then
    ENDPOINT=$MESS_TEST_S3_ENDPOINT
else
    MOTO=$(dirname "$PY")/moto_server
    [[ -x $MOTO ]] || { echo "FAIL no moto_server beside $PY (scripts/test.sh installs it)"; exit 1; }
    MOTO_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$MOTO" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
    MOTO_PID=$!
    ENDPOINT=http://127.0.0.1:$MOTO_PORT
    for _ in $(seq 1 100); do
        curl -fsS "$ENDPOINT/" >/dev/null 2>&1 && break
        sleep 0.2
    done
    curl -fsS "$ENDPOINT/" >/dev/null || { echo "FAIL moto did not start"; exit 1; }
fi

# shellcheck source=lib/tally.sh
source "$ROOT/scripts/lib/tally.sh"

# A whole run takes about four minutes; past seven something hangs: replicas.py is stopped
# (it stops its replicas on SIGTERM) and the run fails.
tally < <(timeout 420 "$PY" scripts/replicas.py "$ENDPOINT" "$WORK" </dev/null 2>&1
          echo "exit status $?" >"$WORK/status")
status=$(cat "$WORK/status" 2>/dev/null || echo "exit status unknown")
if [[ $status != "exit status 0" ]] && (( failed == 0 )); then
    failed=$((failed + 1))
    echo "FAIL replicas.py ended with $status"
fi
if (( failed > 0 )); then
    for log in "$WORK"/replica-*.log; do
        [[ -f $log ]] || continue
        echo "$(basename "$log") (last 30 lines):" >&2
        tail -30 "$log" >&2
    done
fi
echo "$passed passed, $failed failed"
(( failed == 0 && passed > 0 ))
