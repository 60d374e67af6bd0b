#!/usr/bin/env bash
# Replicas (docs/benchmarks.md, "Replicas"), in one non-interactive run on moto, every
# process on loopback (release binary, LEASE_PERIOD=$BENCH_LEASE):
#   1. creates/s on one exchange, wrk with $BENCH_CONNS connections for $BENCH_DURATION s:
#      one process on S3 (no lease), one replica alone (under a lease), then three replicas with wrk spread over the three
#      (two requests in three reach a replica that forwards them to the owner): the cost
#      of the lease check per acknowledged batch, and of forwarding;
#   2. failover after SIGKILL of the owner: from the kill until a create sent through
#      another replica (at once, and again at once on each 503) is answered 201, the killed
#      replica restarted before the next round; $BENCH_KILLS times on a small exchange,
#      twice on the one step 1 filled (the new owner reads its whole log back);
#   3. $BENCH_EXCHANGES exchanges on a fresh bucket (LEASE_PERIOD=$BENCH_SPREAD_LEASE: every
#      lease costs a PUT each third of it), each opened by a registration through a
#      replica picked at random: how many each replica owns (/health), and its VmRSS.
# Prints the tables in markdown.
#
# Settings (environment): BENCH_DURATION (10), BENCH_CONNS (12), BENCH_KILLS (5),
# BENCH_EXCHANGES (1000), BENCH_LEASE (PT2S), BENCH_SPREAD_LEASE (PT10S), BENCH_PORT (18200: the replicas take the
# next three), BENCH_NO_BUILD=1 (use the release binary as it is), BENCH_KEEP=1 (keep the
# work directory and the servers' logs). Needs .venv (moto):
# scripts/test.sh makes it.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
DUR=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-12}
KILLS=${BENCH_KILLS:-5}
EXCHANGES=${BENCH_EXCHANGES:-1000}
LEASE=${BENCH_LEASE:-PT2S}
SPREAD_LEASE=${BENCH_SPREAD_LEASE:-PT10S}
PORT=${BENCH_PORT:-18200}
WORK=$(mktemp -d /tmp/mess-replicas-bench.XXXXXX)
MOTO_PORT=$((PORT + 10))
S3=http://127.0.0.1:$MOTO_PORT
declare -a PIDS=()

log() { printf '[replicas %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  for p in "${PIDS[@]}" ${MOTO_PID:-}; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"
need_wrk
build_release mess-exchange
BIN=$ROOT/target/release/mess-exchange

"$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
until curl -sf -o /dev/null "$S3/"; do sleep 0.1; done

# start N PORT BUCKET [ADVERTISE]: a server on S3; its pid in PIDS[N].
start() {
  local advertise=()
  [[ -n ${4:-} ]] && advertise=(ADVERTISE_URL="http://127.0.0.1:$2" LEASE_PERIOD="$LEASE")
  env PORT="$2" BIND_ADDRESS=127.0.0.1 STORAGE_TYPE=s3 S3_ENDPOINT="$S3" S3_BUCKET="$3" \
    S3_ACCESS_KEY=test S3_SECRET_KEY=test SHUTDOWN_TIMEOUT_SECS=2 \
    RATE_LIMIT_REGISTER_PER_MIN=0 RATE_LIMIT_AUTH_FAILURES_PER_MIN=0 LOG_LEVEL=warn \
    ACCESS_LOG=false "${advertise[@]}" "$BIN" >>"$WORK/server-$1.log" 2>&1 &
  PIDS[$1]=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$2/readyz"; do sleep 0.05; done
}

# key BASE EXCHANGE MEMBER: registers a member and prints its key (a 503 while the
# exchange changes hands is retried, as any client would).
key() {
  local answer
  for _ in $(seq 1 20); do
    if answer=$(curl -sf -X POST "$1/api/v1/exchanges/$2/register" \
      -H 'Content-Type: application/json' \
      -d "{\"executor_id\":\"$3\",\"capabilities\":[\"x\"]}"); then
      sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p' <<<"$answer"
      return
    fi
    sleep 0.5
  done
  echo "could not register $3 in $2 through $1" >&2
  return 1
}

# creates PORT... : wrk on POST /requests through each port at once; prints the sum of req/s.
creates() {
  local n=$# i=0 port wrks=()
  for port in "$@"; do
    wrk -t1 -c$((CONNS / n)) -d"${DUR}s" -s scripts/bench/create.lua \
      -H "Authorization: Bearer $KEY" \
      "http://127.0.0.1:$port/api/v1/exchanges/bench/requests" >"$WORK/wrk-$i.txt" &
    wrks+=($!)
    i=$((i + 1))
  done
  wait "${wrks[@]}"
  cat "$WORK"/wrk-*.txt | awk '/^Requests\/sec/ { s += $2 } END { printf "%.0f", s }'
  rm -f "$WORK"/wrk-*.txt
}

curl -sf -X PUT "$S3/single" >/dev/null
curl -sf -X PUT "$S3/replicas" >/dev/null

log "1. creates/s: one process on S3"
start 0 "$PORT" single
KEY=$(key "http://127.0.0.1:$PORT" bench agent)
ONE=$(creates "$PORT")
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true

log "1. creates/s: one replica (leases, nobody to forward to)"
curl -sf -X PUT "$S3/alone" >/dev/null
start 0 "$PORT" alone yes
KEY=$(key "http://127.0.0.1:$PORT" bench agent)
ALONE=$(creates "$PORT")
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true

log "1. creates/s: three replicas"
P1=$((PORT + 1)) P2=$((PORT + 2)) P3=$((PORT + 3))
start 1 "$P1" replicas yes
start 2 "$P2" replicas yes
start 3 "$P3" replicas yes
KEY=$(key "http://127.0.0.1:$P1" bench agent)
THREE=$(creates "$P1" "$P2" "$P3")

# failover EXCHANGE ROUNDS: SIGKILL the owner of EXCHANGE, time until a create through
# another replica is answered 201, restart the killed one; ROUNDS times, into FAILOVERS.
failover() {
  local owner n other t0
  for _ in $(seq 1 "$2"); do
    owner=$(curl -sfi "http://127.0.0.1:$P1/api/v1/exchanges/$1/executors" \
      -H "Authorization: Bearer $KEY" | tr -d '\r' | sed -n 's/^x-mess-replica: .*:\([0-9]*\)$/\1/p')
    n=$((owner - PORT))
    other=$((PORT + n % 3 + 1))
    sleep 1
    kill -9 "${PIDS[$n]}"
    t0=$(date +%s.%N)
    until [[ $(curl -s -o /dev/null -w '%{http_code}' -X POST \
      "http://127.0.0.1:$other/api/v1/exchanges/$1/requests" \
      -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
      -d '{"intent":"after the kill"}') == 201 ]]; do :; done
    FAILOVERS+=("| $1 | $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') |")
    start "$n" "$owner" replicas yes
  done
}

log "2. failover after SIGKILL of the owner: a small exchange $KILLS times, the loaded one twice"
FAILOVERS=()
BATCHES=$(curl -sf "http://127.0.0.1:$P1/api/v1/exchanges/bench/requests?limit=1" \
  -H "Authorization: Bearer $KEY" | sed -n 's/.*"pos":\([0-9]*\).*/\1/p')
KEY=$(key "http://127.0.0.1:$P1" small agent)
for i in $(seq 1 10); do
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$P1/api/v1/exchanges/small/requests" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{"intent":"warm"}'
done
failover small "$KILLS"
KEY=$(key "http://127.0.0.1:$P1" bench agent2)
failover bench 2

log "3. $EXCHANGES exchanges over three replicas (LEASE_PERIOD=$SPREAD_LEASE)"
for n in 1 2 3; do kill "${PIDS[$n]}"; wait "${PIDS[$n]}" 2>/dev/null || true; done
curl -sf -X PUT "$S3/spread" >/dev/null
LEASE=$SPREAD_LEASE
start 1 "$P1" spread yes
start 2 "$P2" spread yes
start 3 "$P3" spread yes
for i in $(seq 1 "$EXCHANGES"); do
  port=$((PORT + 1 + RANDOM % 3))
  key "http://127.0.0.1:$port" "x$i" member >/dev/null
done
sleep 2
SPREAD=()
for n in 1 2 3; do
  owned=$(curl -sf "http://127.0.0.1:$((PORT + n))/health" | sed -n 's/.*"owned":\([0-9]*\).*/\1/p')
  SPREAD+=("| replica $n | $owned | $(rss_mb "${PIDS[$n]}") MiB |")
done

echo
echo "| creates/s on one exchange (moto, wrk -c$CONNS, ${DUR} s) | req/s |"
echo "|---|---|"
echo "| one process on S3, no lease | $ONE |"
echo "| one replica: the same, under a lease | $ALONE |"
echo "| three replicas, wrk spread over the three | $THREE |"
echo
echo "| failover after SIGKILL of the owner (LEASE_PERIOD=${BENCH_LEASE:-PT2S}; bench: $BATCHES events) | seconds |"
echo "|---|---|"
printf '%s\n' "${FAILOVERS[@]}"
echo
echo "| $EXCHANGES exchanges, first request at a random replica | exchanges owned | VmRSS |"
echo "|---|---|---|"
printf '%s\n' "${SPREAD[@]}"
