#!/usr/bin/env bash
# User-space instructions per request (docs/benchmarks.md), counted by valgrind's callgrind:
#   bash scripts/bench/instructions.sh [BIN...]
# For each server binary (default: target/release/mess-exchange) it starts the server under
# callgrind on a fresh copy of a small seeded store (2k threads, 20k events), warms it up,
# then counts the instructions of 5 s of GET one thread, 5 s of create and a claim of each
# of the seed's 800 pending threads (8 connections), and divides by the requests wrk made.
# Then the same for the hello-world fixture (`mess-bench hello`: GET and POST /hello), the
# yardstick of scripts/bench.sh. Unlike requests/s or CPU time, the count does not move
# with the load of a shared machine, so two binaries' figures compare to a fraction of a
# percent; kernel time (TCP, syscalls, fdatasync) is not in it. Under valgrind, SHA-256
# runs its portable code and memset its AVX2 one (actix-http zeroes its header index with
# it): those two weigh more than they do natively.
# Needs valgrind and wrk (apt) and a release build of mess-bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PORT=${BENCH_PORT:-18090}
WORK=$(mktemp -d /tmp/mess-instructions.XXXXXX)
SERVER_PID=
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in valgrind wrk; do
  command -v $tool >/dev/null || apt-get install -y $tool >/dev/null 2>&1
done
[[ $# -gt 0 ]] || set -- "$ROOT/target/release/mess-exchange"

"$ROOT/target/release/mess-bench" seed --dir "$WORK/seed" --threads 2000 \
  --events-per-thread 10 --out "$WORK/seed.json" >/dev/null 2>&1
field() { sed -n "s/.*\"$1\": \"\\(.*\\)\".*/\\1/p" "$WORK/seed.json"; }
KEY=$(field requestor_key)
REF=$(field sample_ref)
ASSIGNEE_KEY=$(field assignee_key)
PENDING=$(field pending_refs)
API=http://127.0.0.1:$PORT/api/v1/exchanges/home/requests
AUTH="Authorization: Bearer $KEY"
CREATE=$ROOT/scripts/bench/create.lua

# Instructions per request of one wrk run against the server under callgrind (pid $1).
count() {
  local pid=$1 name=$2
  shift 2
  callgrind_control -d before "$pid" >/dev/null 2>&1
  callgrind_control -i on "$pid" >/dev/null 2>&1
  local n
  n=$(wrk -t1 -c8 -d5s "$@" | awk '/requests in/ { print $1 }')
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$name" "$pid" >/dev/null 2>&1
  local file
  file=$(grep -l "^desc: Trigger: dump $name\$" "$WORK"/cg.out.*)
  # The sum of every function's own count (callgrind's total line can wrap when threads
  # started before instrumentation was switched on).
  callgrind_annotate --threshold=100 "$file" 2>/dev/null |
    awk -v n="$n" '/\(.*%\)  [^P]/ { gsub(",", "", $1); if ($1 + 0 < 1e13) s += $1 }
      END { printf "%.0f", s / n }'
}

# start URL LOG CMD...: starts CMD under callgrind (counting off) and waits until URL answers.
start() {
  local url=$1 log=$2
  shift 2
  rm -f "$WORK"/cg.out*
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.out" \
    "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null "$url" && break
    sleep 0.2
  done
}

# warm_up [wrk args...]: 2 s of these requests, counted by nobody (first uses out of the way).
warm_up() {
  callgrind_control -i on "$SERVER_PID" >/dev/null 2>&1
  wrk -t1 -c8 -d2s "$@" >/dev/null
  callgrind_control -i off "$SERVER_PID" >/dev/null 2>&1
}

stop() {
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

for bin in "$@"; do
  rm -rf "$WORK/data"
  cp -a "$WORK/seed" "$WORK/data"
  PORT=$PORT BIND_ADDRESS=127.0.0.1 STORAGE_PATH=$WORK/data \
    start "http://127.0.0.1:$PORT/health" "$WORK/server.log" "$bin"
  warm_up -H "$AUTH" "$API/$REF"
  warm_up -s "$CREATE" -H "$AUTH" "$API"
  get=$(count "$SERVER_PID" get -H "$AUTH" "$API/$REF")
  create=$(count "$SERVER_PID" create -s "$CREATE" -H "$AUTH" "$API")
  claim=$(MESS_REFS=$PENDING MESS_PREFIX=/api/v1/exchanges/home/requests/ MESS_WRK_THREADS=1 \
    MESS_BODY='{"status":"claimed"}' count "$SERVER_PID" claim \
    -s "$ROOT/scripts/bench/patch_pool.lua" -H "Authorization: Bearer $ASSIGNEE_KEY" \
    "http://127.0.0.1:$PORT")
  echo "$bin: GET one thread $get, create $create, claim $claim instructions per request"
  stop
done

# The fixture, measured the same way.
HELLO=http://127.0.0.1:$PORT/hello
start "$HELLO" "$WORK/fixture.log" "$ROOT/target/release/mess-bench" hello --port "$PORT"
warm_up "$HELLO"
warm_up -s "$CREATE" "$HELLO"
get=$(count "$SERVER_PID" get "$HELLO")
post=$(count "$SERVER_PID" post -s "$CREATE" "$HELLO")
echo "fixture (mess-bench hello): GET /hello $get, POST /hello $post instructions per request"
stop
