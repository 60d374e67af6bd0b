# Sourced by the scripts that test the live binary (test-e2e.sh, test-mcp.sh): a fresh
# filesystem store in $WORK, a free port, and start_server/stop_server (the binary is
# stopped with SIGTERM, as an orchestrator stops it). Needs $ROOT, $WORK, $PY and $BIN.
SERVER_PID=
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

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

# Runs one phase against a fresh start of the server: `phase NAME CMD...` starts it, tallies
# CMD's output (scripts/lib/tally.sh), stops it; a server that does not answer counts as a
# failure named NAME.
phase() {
    local name=$1
    shift
    if start_server; then
        tally < <("$@" </dev/null 2>&1 || true)
    else
        failed=$((failed + 1))
        echo "FAIL $name: the binary did not answer /health"
    fi
    stop_server
}

# A suite's last lines: the server's log after a failure, the tally, the exit status.
summary() {
    if (( failed > 0 )); then
        echo "server log (last 40 lines):" >&2
        tail -40 "$WORK/server.log" >&2 || true
    fi
    echo "$passed passed, $failed failed"
    (( failed == 0 && passed > 0 ))
}
