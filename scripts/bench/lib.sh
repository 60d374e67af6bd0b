# Helpers the benchmark scripts share (scripts/bench.sh, scripts/bench/*.sh): source it.

# Installs wrk when it is missing (Debian's package).
need_wrk() {
  if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  fi
}

# Builds the release binaries of the packages named (cargo -p), unless BENCH_NO_BUILD=1.
build_release() {
  [[ ${BENCH_NO_BUILD:-0} == 1 ]] && return 0
  echo "building the release binaries of $*" >&2
  local args=() p
  for p in "$@"; do args+=(-p "$p"); done
  cargo build --release "${args[@]}"
}

# CPU idle (%) over about one second, from /proc/stat.
cpu_idle() {
  local a b
  a=$(head -1 /proc/stat)
  sleep 1
  b=$(head -1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ");
    for (i = 2; i <= n; i++) { t += y[i] - x[i] }
    idle = (y[5] - x[5]) + (y[6] - x[6]);
    pct = 0; if (t > 0) pct = 100 * idle / t; printf "%.0f", pct }'
}

# VmRSS of process $1, in MiB.
rss_mb() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# A field of a `mess-bench seed` manifest: manifest FILE KEY.
manifest() { sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1"; }

# Milliseconds from a wrk latency figure (850.00us, 1.20ms, 2.01s).
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "%s", v }'
}

# Starts a release server: start_bench_server BIN DATA_DIR. Listens on $PORT, logs to
# $WORK/server.log at $LOG_LEVEL (warn), rate limits off; waits for /health (exits with
# the log's tail if the server dies first) and sets SERVER_PID.
start_bench_server() {
  PORT="$PORT" BIND_ADDRESS=127.0.0.1 STORAGE_PATH="$2" SHUTDOWN_TIMEOUT_SECS=2 \
    RATE_LIMIT_REGISTER_PER_MIN=0 RATE_LIMIT_AUTH_FAILURES_PER_MIN=0 \
    LOG_LEVEL="${LOG_LEVEL:-warn}" ACCESS_LOG=false "$1" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/health"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -20 "$WORK/server.log" >&2
      echo "the server did not start" >&2
      exit 1
    fi
    sleep 0.01
  done
}

# Stops the server start_bench_server started.
stop_bench_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
