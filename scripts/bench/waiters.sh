#!/usr/bin/env bash
# Waiters and the change feed (docs/benchmarks.md, "Waiters and the change feed"), in one
# non-interactive run:
#   builds release binaries; raises the open-file limit; seeds a fresh data directory
#   (mess-bench seed: BENCH_THREADS threads x 10 events); then
#   1. REPS times, each on a freshly started server: server RSS with N idle keep-alive
#      connections (each has served one GET), then with a waiting GET (?wait=60) on each of
#      them, each on its own thread; then PATCHES of the waited threads PATCHed one at a
#      time, timing each waiter's answer from the PATCH's answer (mess-bench waiters);
#      and the RSS part once against the fixture, whose GET /hello/wait only sleeps;
#   2. the change feed: SUBS subscribers, ROUNDS PATCHes one by one, the time from each
#      PATCH's answer to the last subscriber receiving its event (mess-bench fanout);
#      once alone, once with the N waiters held (mess-bench hold, ?wait=BENCH_HOLD_WAIT);
#   3. wrk's GET-one-thread and create scenarios of scripts/bench.sh (wrk -t2 -c64 -d4s,
#      the same Lua and headers), each REPS times against the fixture, the server alone,
#      and the server with N waiters held, interleaved; CPU idle read before every run;
#   then prints the tables in markdown.
#
# Settings (environment): BENCH_WAITERS (10000), BENCH_PATCHES (1000), BENCH_IN_FLIGHT (1,
# PATCHes at once), BENCH_HOLD_WAIT (20: the wait of the held GETs in 2 and 3), BENCH_SUBSCRIBERS (1000), BENCH_FANOUT_ROUNDS (20), BENCH_REPS (3),
# BENCH_DURATION (4), BENCH_THREADS (20000), BENCH_PORT (18090), BENCH_HELLO_PORT (18091),
# BENCH_DIR (work directory; a fresh one under /tmp by default, removed at the end unless
# BENCH_KEEP=1), BENCH_NO_BUILD=1 (use the release binaries as they are).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
T_START=$(date +%s)

N=${BENCH_WAITERS:-10000}
PATCHES=${BENCH_PATCHES:-1000}
IN_FLIGHT=${BENCH_IN_FLIGHT:-1}
SUBS=${BENCH_SUBSCRIBERS:-1000}
ROUNDS=${BENCH_FANOUT_ROUNDS:-20}
WARMUP=3
HOLD_WAIT=${BENCH_HOLD_WAIT:-20}
REPS=${BENCH_REPS:-3}
DUR=${BENCH_DURATION:-4}
THREADS=${BENCH_THREADS:-20000}
PORT=${BENCH_PORT:-18090}
HELLO_PORT=${BENCH_HELLO_PORT:-18091}
CONNS=64
WRK_THREADS=2
WORK=${BENCH_DIR:-$(mktemp -d /tmp/mess-waiters.XXXXXX)}
mkdir -p "$WORK/wrk"
RESULTS=$WORK/results.txt
: >"$RESULTS"
LUA=$ROOT/scripts/bench
SERVER_PID=
HELLO_PID=
HOLD_PID=

log() { printf '[waiters %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  [[ -n $HOLD_PID ]] && kill "$HOLD_PID" 2>/dev/null || true
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
  [[ -n $HELLO_PID ]] && kill "$HELLO_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ ${BENCH_KEEP:-0} != 1 && -z ${BENCH_DIR:-} ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- limits, tools and binaries ------------------------------------------------------------
# The server holds N connections (and wrk's), the client N: each process needs N + some.
need=$((N + 4096))
hard=$(ulimit -Hn)
if [[ $hard != unlimited && $hard -lt $need ]]; then
  log "the open-file hard limit is $hard; $N waiters need about $need (lower BENCH_WAITERS)"
  exit 1
fi
ulimit -n "$([[ $hard == unlimited ]] && echo "$need" || echo "$hard")"
log "open-file limit $(ulimit -n) (hard $hard)"
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"
need_wrk
build_release mess-exchange mess-bench
BIN=$ROOT/target/release

# --- helpers -------------------------------------------------------------------------------
# A `key value` line of a mess-bench output file.
val() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

start_server() { start_bench_server "$BIN/mess-exchange" "$DATA"; }
stop_server() { stop_bench_server; }

# start_hold: N waiting GETs held by mess-bench hold (re-armed when answered); returns
# once every one is sent. They wait HOLD_WAIT s, not 60: the server keeps a waiting
# request whose client has gone (and its connection, in CLOSE-WAIT) until its wait ends,
# so after the hold is killed, stop_hold waits for the server's descriptors to drop.
start_hold() {
  rm -f "$WORK/hold.ready"
  "$BIN/mess-bench" hold --addr "127.0.0.1:$PORT" --exchange "$X" --key "$RKEY" \
    --refs "$WAITED" --conns "$N" --wait-secs "$HOLD_WAIT" --ready "$WORK/hold.ready" \
    2>>"$WORK/hold.log" &
  HOLD_PID=$!
  local t=0
  until [[ -s $WORK/hold.ready ]]; do
    if ! kill -0 "$HOLD_PID" 2>/dev/null || [[ $t -gt 6000 ]]; then
      tail -5 "$WORK/hold.log" >&2
      log "mess-bench hold did not get ready"
      exit 1
    fi
    sleep 0.01
    t=$((t + 1))
  done
}

stop_hold() {
  kill "$HOLD_PID" 2>/dev/null || true
  wait "$HOLD_PID" 2>/dev/null || true
  HOLD_PID=
  local t0 fds
  t0=$(date +%s)
  while fds=$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l) && [[ $fds -gt 500 ]]; do
    if [[ $(($(date +%s) - t0)) -gt $((HOLD_WAIT + 30)) ]]; then
      log "the server still has $fds descriptors open $((HOLD_WAIT + 30)) s after the hold ended"
      exit 1
    fi
    sleep 0.2
  done
  log "hold released: the server's descriptors dropped to $fds after $(($(date +%s) - t0)) s"
  sleep 1
}

# run SCENARIO TARGET REP URL [wrk args...]: one wrk run, appended to RESULTS.
run() {
  local scenario=$1 target=$2 rep=$3 url=$4
  shift 4
  local idle out rps p50 p99 non2xx sockerr
  idle=$(cpu_idle)
  out=$WORK/wrk/$scenario-$target-$rep.txt
  wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DUR}s" --latency "$@" "$url" >"$out" 2>&1 || true
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out")
  printf '%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$scenario" "$target" "$rep" "$idle" \
    "${rps:-0}" "${p50:-0}" "${p99:-0}" "${non2xx:-0}" "${sockerr:-0}" >>"$RESULTS"
  log "$scenario $target #$rep: ${rps:-?} req/s, p50 ${p50:-?} ms, p99 ${p99:-?} ms, idle before ${idle}%${non2xx:+, non-2xx $non2xx}${sockerr:+, socket errors $sockerr}"
}

# --- the data ------------------------------------------------------------------------------
DATA=$WORK/data
MAN=$WORK/manifest.json
log "seeding $THREADS threads x 10 events"
"$BIN/mess-bench" seed --dir "$DATA" --threads "$THREADS" --events-per-thread 10 --out "$MAN"
X=$(manifest "$MAN" exchange)
RKEY=$(manifest "$MAN" requestor_key)
AKEY=$(manifest "$MAN" assignee_key)
SAMPLE=$(manifest "$MAN" sample_ref)
PENDING=$(manifest "$MAN" pending_refs)
CLAIMED=$(manifest "$MAN" claimed_refs)
# The waited threads: the pending ones first (the assignee claims them), then claimed ones.
WAITED=$WORK/waited.txt
cat "$PENDING" "$CLAIMED" | head -n "$N" >"$WAITED"
npending=$(wc -l <"$PENDING")
fan=$((WARMUP + ROUNDS))
if [[ $(wc -l <"$WAITED") -lt $N || $npending -lt $((REPS * PATCHES + 2 * fan)) ]]; then
  log "$THREADS threads leave $npending pending: too few for $N waiters, $REPS x $PATCHES PATCHes and the feed rounds (raise BENCH_THREADS)"
  exit 1
fi
# The feed's rounds PATCH pending threads after those the waiter runs claim.
sed -n "$((REPS * PATCHES + 1)),$((REPS * PATCHES + fan))p" "$PENDING" >"$WORK/fan1.txt"
sed -n "$((REPS * PATCHES + fan + 1)),$((REPS * PATCHES + 2 * fan))p" "$PENDING" >"$WORK/fan2.txt"
API=http://127.0.0.1:$PORT/api/v1/exchanges/$X

# --- 1. waiters: RSS and wake-up time ------------------------------------------------------
for rep in $(seq "$REPS"); do
  start_server
  sleep 1
  idle=$(cpu_idle)
  log "waiters #$rep: $N connections, then $N waiting GETs; $PATCHES PATCHes ($IN_FLIGHT at a time); idle before ${idle}%"
  "$BIN/mess-bench" waiters --addr "127.0.0.1:$PORT" --exchange "$X" --key "$RKEY" \
    --refs "$WAITED" --conns "$N" --pid "$SERVER_PID" --patch-key "$AKEY" \
    --patches "$PATCHES" --patch-from $(((rep - 1) * PATCHES)) --in-flight "$IN_FLIGHT" \
    >"$WORK/waiters-$rep.txt" 2>>"$WORK/waiters.log"
  echo "cpu_idle_before $idle" >>"$WORK/waiters-$rep.txt"
  stop_server
done

# The yardstick: the same with the fixture, whose GET /hello/wait handler only sleeps (a
# minimal actix app; glibc's allocator, where the server has mimalloc).
"$BIN/mess-bench" hello --port "$HELLO_PORT" >"$WORK/hello.log" 2>&1 &
HELLO_PID=$!
until curl -sf -o /dev/null "http://127.0.0.1:$HELLO_PORT/hello"; do sleep 0.05; done
sleep 1
idle=$(cpu_idle)
log "fixture: $N connections, then $N sleeping GETs; idle before ${idle}%"
"$BIN/mess-bench" waiters --fixture --addr "127.0.0.1:$HELLO_PORT" --key none --refs "$WAITED" \
  --conns "$N" --pid "$HELLO_PID" --patch-key none --patches 0 \
  >"$WORK/waiters-fixture.txt" 2>>"$WORK/waiters.log"
echo "cpu_idle_before $idle" >>"$WORK/waiters-fixture.txt"
# Not TERM: actix would wait 30 s for the sleeping handlers.
kill -KILL "$HELLO_PID" 2>/dev/null || true
wait "$HELLO_PID" 2>/dev/null || true
HELLO_PID=

# --- 2. the change feed --------------------------------------------------------------------
start_server
sleep 1
idle=$(cpu_idle)
log "feed: $SUBS subscribers, $ROUNDS rounds (+$WARMUP warm-up); idle before ${idle}%"
"$BIN/mess-bench" fanout --addr "127.0.0.1:$PORT" --exchange "$X" --key "$RKEY" \
  --subscribers "$SUBS" --patch-key "$AKEY" --refs "$WORK/fan1.txt" --rounds "$ROUNDS" \
  --warmup "$WARMUP" >"$WORK/fanout-alone.txt" 2>>"$WORK/fanout.log"
echo "cpu_idle_before $idle" >>"$WORK/fanout-alone.txt"
start_hold
idle=$(cpu_idle)
log "feed with $N waiters held; idle before ${idle}%"
"$BIN/mess-bench" fanout --addr "127.0.0.1:$PORT" --exchange "$X" --key "$RKEY" \
  --subscribers "$SUBS" --patch-key "$AKEY" --refs "$WORK/fan2.txt" --rounds "$ROUNDS" \
  --warmup "$WARMUP" >"$WORK/fanout-held.txt" 2>>"$WORK/fanout.log"
echo "cpu_idle_before $idle" >>"$WORK/fanout-held.txt"
stop_hold

# --- 3. wrk: GET one thread and create, without and with the waiters -----------------------
"$BIN/mess-bench" hello --port "$HELLO_PORT" >"$WORK/hello.log" 2>&1 &
HELLO_PID=$!
until curl -sf -o /dev/null "http://127.0.0.1:$HELLO_PORT/hello"; do sleep 0.05; done
HELLO=http://127.0.0.1:$HELLO_PORT/hello
RAUTH="Authorization: Bearer $RKEY"
for rep in $(seq "$REPS"); do
  run get_thread fixture "$rep" "$HELLO"
  run get_thread server "$rep" "$API/requests/$SAMPLE" -H "$RAUTH"
  start_hold
  run get_thread server_held "$rep" "$API/requests/$SAMPLE" -H "$RAUTH"
  stop_hold
done
for rep in $(seq "$REPS"); do
  run create fixture "$rep" "$HELLO" -s "$LUA/create.lua"
  run create server "$rep" "$API/requests" -s "$LUA/create.lua" -H "$RAUTH"
  start_hold
  run create server_held "$rep" "$API/requests" -s "$LUA/create.lua" -H "$RAUTH"
  stop_hold
done
stop_server
kill "$HELLO_PID" 2>/dev/null || true
wait "$HELLO_PID" 2>/dev/null || true
HELLO_PID=

# --- the tables ----------------------------------------------------------------------------
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print 0 }'; }
col() { awk -F'|' -v c="$1" -v t="$2" -v f="$3" '$1 == c && $2 == t { print $f }' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
kb_mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

TABLE=$WORK/table.md
{
  echo "### $N waiters: server RSS and wake-up ($THREADS threads; a fresh server per run)"
  echo
  echo "| run | RSS, no connections MB | RSS, $N idle keep-alive MB | RSS, $N waiting MB | per idle connection bytes | per waiter beyond idle bytes | wake after PATCH answer p50 / p99 / max ms | wake after PATCH sent p50 / p99 ms | PATCH p50 / p99 ms | waiter answered first | CPU idle before % |"
  echo "|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|"
  for rep in $(seq "$REPS"); do
    f=$WORK/waiters-$rep.txt
    printf '| %s | %s | %s | %s | %s | %s | %s / %s / %s | %s / %s | %s / %s | %s of %s | %s |\n' "$rep" \
      "$(kb_mb "$(val "$f" rss_base_kb)")" "$(kb_mb "$(val "$f" rss_idle_kb)")" \
      "$(kb_mb "$(val "$f" rss_waiting_kb)")" "$(val "$f" per_conn_idle_bytes)" \
      "$(val "$f" per_waiter_bytes)" \
      "$(val "$f" wake_after_patch_answer_p50_ms)" "$(val "$f" wake_after_patch_answer_p99_ms)" \
      "$(val "$f" wake_after_patch_answer_max_ms)" \
      "$(val "$f" wake_after_patch_send_p50_ms)" "$(val "$f" wake_after_patch_send_p99_ms)" \
      "$(val "$f" patch_rtt_p50_ms)" "$(val "$f" patch_rtt_p99_ms)" \
      "$(val "$f" waiter_before_patch_answer)" "$(val "$f" patches)" "$(val "$f" cpu_idle_before)"
  done
  f=$WORK/waiters-fixture.txt
  printf '| fixture (GET /hello/wait sleeps) | %s | %s | %s | %s | %s | - | - | - | - | %s |\n' \
    "$(kb_mb "$(val "$f" rss_base_kb)")" "$(kb_mb "$(val "$f" rss_idle_kb)")" \
    "$(kb_mb "$(val "$f" rss_waiting_kb)")" "$(val "$f" per_conn_idle_bytes)" \
    "$(val "$f" per_waiter_bytes)" "$(val "$f" cpu_idle_before)"
  echo
  echo "### Change feed: $SUBS subscribers, one PATCH at a time ($ROUNDS rounds after $WARMUP warm-up)"
  echo
  echo "| load | last subscriber after PATCH answer: median / max ms | last subscriber after PATCH sent: median / max ms | PATCH round trip: median / max ms | first to last subscriber: median / max ms | median subscriber after answer (median) ms | CPU idle before % |"
  echo "|---|---|---|---|---|---:|---:|"
  for w in alone held; do
    f=$WORK/fanout-$w.txt
    label="feed alone"
    [[ $w == held ]] && label="with $N waiters held"
    printf '| %s | %s / %s | %s / %s | %s / %s | %s / %s | %s | %s |\n' "$label" \
      "$(val "$f" last_subscriber_median_ms)" "$(val "$f" last_subscriber_max_ms)" \
      "$(val "$f" last_subscriber_after_send_median_ms)" "$(val "$f" last_subscriber_after_send_max_ms)" \
      "$(val "$f" patch_rtt_median_ms)" "$(val "$f" patch_rtt_max_ms)" \
      "$(val "$f" first_to_last_median_ms)" "$(val "$f" first_to_last_max_ms)" \
      "$(val "$f" median_subscriber_median_ms)" "$(val "$f" cpu_idle_before)"
  done
  echo
  echo "### bench.sh scenarios without and with $N waiters held (wrk -t$WRK_THREADS -c$CONNS -d${DUR}s, median of $REPS)"
  echo
  echo "| scenario | fixture req/s | server req/s | ratio | p99 ms | with waiters req/s | ratio | p99 ms | CPU idle before (min-max %) | non-2xx | socket errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
  for sc in get_thread create; do
    f=$(col "$sc" fixture 5 | median)
    s=$(col "$sc" server 5 | median)
    h=$(col "$sc" server_held 5 | median)
    idle=$( (col "$sc" fixture 4; col "$sc" server 4; col "$sc" server_held 4) | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }')
    n2=$( (col "$sc" server 8; col "$sc" server_held 8) | awk '{ s += $1 } END { print s + 0 }')
    se=$( (col "$sc" server 9; col "$sc" server_held 9) | awk '{ s += $1 } END { print s + 0 }')
    printf '| %s | %.0f | %.0f | %s | %.2f | %.0f | %s | %.2f | %s | %s | %s |\n' "$sc" "$f" "$s" \
      "$(ratio "$s" "$f")" "$(col "$sc" server 7 | median)" "$h" "$(ratio "$h" "$f")" \
      "$(col "$sc" server_held 7 | median)" "$idle" "$n2" "$se"
  done
} >"$TABLE"

echo
cat "$TABLE"
echo
echo "Total waiters.sh time: $(($(date +%s) - T_START)) s (raw output in $WORK$([[ ${BENCH_KEEP:-0} == 1 || -n ${BENCH_DIR:-} ]] || echo ', removed'))."
