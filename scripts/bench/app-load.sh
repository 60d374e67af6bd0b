#!/usr/bin/env bash
# The app's first load on a phone over Slow 4G (docs/benchmarks.md, "The app's first
# load"), in one non-interactive run: builds the release binary, starts it on a fresh data
# directory, then:
#   1. scripts/app/load.mjs: BENCH_RUNS cold loads of / in Debian's Chromium at 390x844,
#      Slow 4G and a 4x slower CPU (CPU_SLOWDOWN): bytes transferred until the join screen
#      answers input, times to DOMContentLoaded, load and interactive;
#   2. what the service worker fetches after that first load to keep the shell offline
#      (its SHELL list, gzipped as the server sends it), measured with curl;
#   then prints both.
#
# Settings (environment): BENCH_RUNS (5), CPU_SLOWDOWN (4), BENCH_PORT (18097),
# BENCH_NO_BUILD=1 (use the release binary as it is).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${BENCH_RUNS:-5}
PORT=${BENCH_PORT:-18097}
BASE=http://127.0.0.1:$PORT
WORK=$(mktemp -d /tmp/mess-app-load.XXXXXX)
SERVER_PID=
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
  cargo build --release -p mess-exchange
fi
(cd scripts/app && npm install --no-audit --no-fund --silent)

PORT=$PORT BIND_ADDRESS=127.0.0.1 STORAGE_PATH=$WORK/data LOG_LEVEL=warn \
  "$ROOT/target/release/mess-exchange" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
until curl -sf -o /dev/null "$BASE/health"; do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.05
done

node scripts/app/load.mjs "$BASE" "$RUNS"

echo
echo "| what the service worker keeps for offline starts | bytes (gzip, as sent) | bytes (plain) |"
echo "|---|---:|---:|"
total_gz=0
total=0
for path in $(sed -n "/^const SHELL = \[/,/^\];/p" crates/mess-api/app/sw.js | grep -o "'/[^']*'" | tr -d "'"); do
  gz=$(curl -s -o /dev/null -H 'Accept-Encoding: gzip' -w '%{size_download}' "$BASE$path")
  plain=$(curl -s -o /dev/null -w '%{size_download}' "$BASE$path")
  total_gz=$((total_gz + gz))
  total=$((total + plain))
  printf '| %s | %s | %s |\n' "$path" "$gz" "$plain"
done
printf '| **all** | **%s** | **%s** |\n' "$total_gz" "$total"
