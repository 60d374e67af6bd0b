#!/usr/bin/env bash
# The benchmark suite (docs/benchmarks.md), in one non-interactive run:
#   builds release binaries; starts the hello-world fixture (mess-bench hello); for each
#   scale (1k threads / 10k events, 100k threads / 1M events) seeds a fresh data directory,
#   starts the server on it (start-up replay time, RSS), runs every scenario with wrk
#   against the server and the matching fixture route (CPU idle recorded before each run,
#   REPS runs each, medians reported); then the slow-disk create figure, at 64
#   connections and at BENCH_WIDE_CONNS (with the fast-disk figure at that width); then
#   prints the tables in markdown.
#
# Settings (environment): BENCH_DURATION (seconds per wrk run, 4), BENCH_REPS (3),
# BENCH_SCALES ("1000 100000"), BENCH_EVENTS_PER_THREAD (10), BENCH_SLOW_SYNC_MS (4),
# BENCH_WIDE_CONNS (256),
# BENCH_DIR (work directory; a fresh one under /tmp by default, removed at the end unless
# BENCH_KEEP=1), BENCH_PORT (18080), BENCH_HELLO_PORT (18081).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
T_START=$(date +%s)

DUR=${BENCH_DURATION:-4}
REPS=${BENCH_REPS:-3}
SCALES=${BENCH_SCALES:-"1000 100000"}
PER_THREAD=${BENCH_EVENTS_PER_THREAD:-10}
SLOW_MS=${BENCH_SLOW_SYNC_MS:-4}
PORT=${BENCH_PORT:-18080}
HELLO_PORT=${BENCH_HELLO_PORT:-18081}
CONNS=64
WIDE_CONNS=${BENCH_WIDE_CONNS:-256}
WRK_THREADS=2
WORK=${BENCH_DIR:-$(mktemp -d /tmp/mess-bench.XXXXXX)}
mkdir -p "$WORK/wrk"
RESULTS=$WORK/results.txt
SCALEFILE=$WORK/scales.txt
: >"$RESULTS"
: >"$SCALEFILE"
LUA=$ROOT/scripts/bench
SERVER_PID=
HELLO_PID=

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
  [[ -n $HELLO_PID ]] && kill "$HELLO_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ ${BENCH_KEEP:-0} != 1 && -z ${BENCH_DIR:-} ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- tools and binaries -------------------------------------------------------------------
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"
need_wrk
log "building release binaries"
cargo build --release -p mess-exchange -p mess-bench
BIN=$ROOT/target/release

# --- helpers -------------------------------------------------------------------------------
now_ms() { date +%s%3N; }

# start_server DATA_DIR [VAR=value...]: starts the server, waits for /health 200, sets
# SERVER_PID and REPLAY_MS (process start to the first 200).
start_server() {
  local dir=$1
  shift
  local t0
  t0=$(now_ms)
  env "$@" PORT="$PORT" BIND_ADDRESS=127.0.0.1 STORAGE_PATH="$dir" SHUTDOWN_TIMEOUT_SECS=5 \
    "$BIN/mess-exchange" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/health"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -20 "$WORK/server.log" >&2
      log "the server did not start"
      exit 1
    fi
    sleep 0.01
  done
  REPLAY_MS=$(($(now_ms) - t0))
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

# run SCALE SCENARIO TARGET REP URL [wrk args...]: one wrk run, appended to RESULTS
# (at RUN_CONNS connections if set, CONNS otherwise).
run() {
  local scale=$1 scenario=$2 target=$3 rep=$4 url=$5
  shift 5
  local idle out rps p50 p99 non2xx sockerr exhausted
  idle=$(cpu_idle)
  out=$WORK/wrk/$scale-$scenario-$target-$rep.txt
  wrk -t"$WRK_THREADS" -c"${RUN_CONNS:-$CONNS}" -d"${DUR}s" --latency "$@" "$url" >"$out" 2>&1 || true
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out")
  exhausted=$(grep -c 'POOL EXHAUSTED' "$out" || true)
  printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$scale" "$scenario" "$target" "$rep" "$idle" \
    "${rps:-0}" "${p50:-0}" "${p99:-0}" "${non2xx:-0}" "${sockerr:-0}" "$exhausted" >>"$RESULTS"
  log "$scale $scenario $target #$rep: ${rps:-?} req/s, p50 ${p50:-?} ms, p99 ${p99:-?} ms, idle before ${idle}%${non2xx:+, non-2xx $non2xx}${sockerr:+, socket errors $sockerr}"
}

# --- the fixture ---------------------------------------------------------------------------
"$BIN/mess-bench" hello --port "$HELLO_PORT" >"$WORK/hello.log" 2>&1 &
HELLO_PID=$!
until curl -sf -o /dev/null "http://127.0.0.1:$HELLO_PORT/hello"; do sleep 0.05; done
HELLO=http://127.0.0.1:$HELLO_PORT/hello
S=http://127.0.0.1:$PORT

# --- the scales ----------------------------------------------------------------------------
FAST_CREATE_DIR=
for threads in $SCALES; do
  events=$((threads * PER_THREAD))
  dir=$WORK/data-$threads
  man=$WORK/manifest-$threads.json
  log "seeding $threads threads / $events events"
  t0=$(now_ms)
  "$BIN/mess-bench" seed --dir "$dir" --threads "$threads" --events-per-thread "$PER_THREAD" --out "$man"
  seed_s=$(awk -v ms=$(($(now_ms) - t0)) 'BEGIN { printf "%.1f", ms / 1000 }')
  size_seed=$(du -sh "$dir" | cut -f1)
  x=$(manifest "$man" exchange)
  rkey=$(manifest "$man" requestor_key)
  akey=$(manifest "$man" assignee_key)
  assignee=$(manifest "$man" assignee)
  sample=$(manifest "$man" sample_ref)
  stored_events=$(manifest "$man" events)
  API=$S/api/v1/exchanges/$x

  start_server "$dir"
  replay_ms=$REPLAY_MS
  rss_replay=$(rss_mb "$SERVER_PID")
  log "replayed $stored_events events in $replay_ms ms (process start to /health 200); RSS $rss_replay MB"

  RAUTH="Authorization: Bearer $rkey"
  AAUTH="Authorization: Bearer $akey"
  # Read scenarios first, so that they run at exactly this scale.
  for rep in $(seq "$REPS"); do
    run "$threads" get_thread fixture "$rep" "$HELLO"
    run "$threads" get_thread server "$rep" "$API/requests/$sample" -H "$RAUTH"
  done
  for rep in $(seq "$REPS"); do
    run "$threads" list_50 fixture "$rep" "$HELLO"
    run "$threads" list_50 server "$rep" "$API/requests?limit=50" -H "$RAUTH"
  done
  for rep in $(seq "$REPS"); do
    run "$threads" list_status fixture "$rep" "$HELLO"
    run "$threads" list_status server "$rep" "$API/requests?status=in_progress&limit=50" -H "$RAUTH"
  done
  for rep in $(seq "$REPS"); do
    run "$threads" create fixture "$rep" "$HELLO" -s "$LUA/create.lua"
    run "$threads" create server "$rep" "$API/requests" -s "$LUA/create.lua" -H "$RAUTH"
  done
  # Claim: each request on a pending thread never claimed before (the seed's and those
  # the create runs added), listed through the API before each run.
  for rep in $(seq "$REPS"); do
    run "$threads" claim fixture "$rep" "$HELLO" -s "$LUA/create.lua"
    "$BIN/mess-bench" pool --addr "127.0.0.1:$PORT" --exchange "$x" --key "$akey" \
      --status pending --max 200000 --out "$WORK/pool.txt" 2>>"$WORK/pool.log"
    MESS_REFS=$WORK/pool.txt MESS_PREFIX=/api/v1/exchanges/$x/requests/ MESS_WRK_THREADS=$WRK_THREADS \
      MESS_BODY='{"status":"claimed"}' \
      run "$threads" claim server "$rep" "$S" -s "$LUA/patch_pool.lua" -H "$AAUTH"
  done
  # Complete: each on a thread the assignee holds (the seed's and those just claimed).
  for rep in $(seq "$REPS"); do
    run "$threads" complete fixture "$rep" "$HELLO" -s "$LUA/create.lua"
    "$BIN/mess-bench" pool --addr "127.0.0.1:$PORT" --exchange "$x" --key "$akey" \
      --status claimed --executor "$assignee" --max 200000 --out "$WORK/pool.txt" 2>>"$WORK/pool.log"
    MESS_REFS=$WORK/pool.txt MESS_PREFIX=/api/v1/exchanges/$x/requests/ MESS_WRK_THREADS=$WRK_THREADS \
      MESS_BODY='{"status":"completed","mess":[{"response":{"content":["done: the front door is locked"]}}]}' \
      run "$threads" complete server "$rep" "$S" -s "$LUA/patch_pool.lua" -H "$AAUTH"
  done
  for rep in $(seq "$REPS"); do
    MESS_GET_PATH=/hello MESS_POST_PATH=/hello \
      run "$threads" mixed fixture "$rep" "$HELLO" -s "$LUA/mixed.lua"
    MESS_GET_PATH=/api/v1/exchanges/$x/requests/$sample MESS_POST_PATH=/api/v1/exchanges/$x/requests \
      run "$threads" mixed server "$rep" "$S" -s "$LUA/mixed.lua" -H "$RAUTH"
  done
  rss_load=$(rss_mb "$SERVER_PID")
  stop_server
  size_load=$(du -sh "$dir" | cut -f1)
  printf '%s|%s|%s|%s|%s|%s|%s|%s\n' "$threads" "$stored_events" "$seed_s" "$replay_ms" \
    "$rss_replay" "$rss_load" "$size_seed" "$size_load" >>"$SCALEFILE"
  FAST_CREATE_DIR=$dir
  LAST_SCALE=$threads
  LAST_KEY=$rkey
  LAST_X=$x
done

# --- the slow disk: every fdatasync takes SLOW_MS longer ------------------------------------
log "slow disk: restarting on the $LAST_SCALE-thread directory with MESS_FS_SYNC_DELAY_MS=$SLOW_MS"
start_server "$FAST_CREATE_DIR" MESS_FS_SYNC_DELAY_MS="$SLOW_MS"
SLOW_REPLAY_MS=$REPLAY_MS
for rep in $(seq "$REPS"); do
  run "$LAST_SCALE" create_slow_disk server "$rep" "$S/api/v1/exchanges/$LAST_X/requests" \
    -s "$LUA/create.lua" -H "Authorization: Bearer $LAST_KEY"
done
# At 64 connections a durable server cannot pass 64 / sync time (Little's law): the same
# pair at WIDE_CONNS shows what group commit does where that bound is out of the way.
for rep in $(seq "$REPS"); do
  RUN_CONNS=$WIDE_CONNS run "$LAST_SCALE" create_slow_disk_wide server "$rep" \
    "$S/api/v1/exchanges/$LAST_X/requests" -s "$LUA/create.lua" -H "Authorization: Bearer $LAST_KEY"
done
stop_server
log "fast disk at $WIDE_CONNS connections: restarting without the delay"
start_server "$FAST_CREATE_DIR"
for rep in $(seq "$REPS"); do
  RUN_CONNS=$WIDE_CONNS run "$LAST_SCALE" create_wide server "$rep" \
    "$S/api/v1/exchanges/$LAST_X/requests" -s "$LUA/create.lua" -H "Authorization: Bearer $LAST_KEY"
done
stop_server
kill "$HELLO_PID" 2>/dev/null || true
wait "$HELLO_PID" 2>/dev/null || true
HELLO_PID=

# --- the tables ----------------------------------------------------------------------------
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print 0 }'; }
col() { # col SCALE SCENARIO TARGET FIELD
  awk -F'|' -v s="$1" -v c="$2" -v t="$3" -v f="$4" '$1 == s && $2 == c && $3 == t { print $f }' "$RESULTS"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

TABLE=$WORK/table.md
{
  echo "### Throughput and latency (wrk -t$WRK_THREADS -c$CONNS -d${DUR}s, median of $REPS runs)"
  echo
  echo "| threads | scenario | req/s | p50 ms | p99 ms | fixture | fixture req/s | ratio | CPU idle before (min-max %) | non-2xx | socket errors |"
  echo "|---:|---|---:|---:|---:|---|---:|---:|---|---:|---:|"
  for threads in $SCALES; do
    for sc in get_thread list_50 list_status create claim complete mixed; do
      case $sc in
        get_thread | list_50 | list_status) fx="GET /hello" ;;
        mixed) fx="80/20 GET/POST /hello" ;;
        *) fx="POST /hello" ;;
      esac
      rps=$(col "$threads" "$sc" server 6 | median)
      p50=$(col "$threads" "$sc" server 7 | median)
      p99=$(col "$threads" "$sc" server 8 | median)
      frps=$(col "$threads" "$sc" fixture 6 | median)
      idle=$( (col "$threads" "$sc" server 5; col "$threads" "$sc" fixture 5) | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }')
      n2=$(col "$threads" "$sc" server 9 | awk '{ s += $1 } END { print s + 0 }')
      se=$(col "$threads" "$sc" server 10 | awk '{ s += $1 } END { print s + 0 }')
      ex=$(col "$threads" "$sc" server 11 | awk '{ s += $1 } END { print s + 0 }')
      note=""
      [[ $ex -gt 0 ]] && note=" (pool ran out in $ex run(s))"
      printf '| %s | %s%s | %.0f | %.2f | %.2f | %s | %.0f | %s | %s | %s | %s |\n' "$threads" "$sc" "$note" \
        "$rps" "$p50" "$p99" "$fx" "$frps" "$(ratio "$rps" "$frps")" "$idle" "$n2" "$se"
    done
  done
  echo
  echo "### Scale"
  echo
  echo "| threads | events stored | seed s | start-up replay ms (start to /health 200) | RSS after replay MB | RSS after load MB | data dir after seed | data dir after load |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'|' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$SCALEFILE"
  echo
  echo "### Durability: create at $CONNS and $WIDE_CONNS connections, $LAST_SCALE threads"
  echo
  fast=$(col "$LAST_SCALE" create server 6 | median)
  slow=$(col "$LAST_SCALE" create_slow_disk server 6 | median)
  sp50=$(col "$LAST_SCALE" create_slow_disk server 7 | median)
  sp99=$(col "$LAST_SCALE" create_slow_disk server 8 | median)
  wide=$(col "$LAST_SCALE" create_wide server 6 | median)
  slow_wide=$(col "$LAST_SCALE" create_slow_disk_wide server 6 | median)
  echo "| connections | disk | creates/s | p50 ms | p99 ms | ratio to fast disk |"
  echo "|---:|---|---:|---:|---:|---:|"
  printf '| %s | fast (fdatasync as the disk does it) | %.0f | %.2f | %.2f | 1.00 |\n' "$CONNS" "$fast" \
    "$(col "$LAST_SCALE" create server 7 | median)" "$(col "$LAST_SCALE" create server 8 | median)"
  printf '| %s | slow (each fdatasync + %s ms, MESS_FS_SYNC_DELAY_MS) | %.0f | %.2f | %.2f | %s |\n' "$CONNS" \
    "$SLOW_MS" "$slow" "$sp50" "$sp99" "$(ratio "$slow" "$fast")"
  printf '| %s | fast | %.0f | %.2f | %.2f | 1.00 |\n' "$WIDE_CONNS" "$wide" \
    "$(col "$LAST_SCALE" create_wide server 7 | median)" "$(col "$LAST_SCALE" create_wide server 8 | median)"
  printf '| %s | slow (+ %s ms) | %.0f | %.2f | %.2f | %s |\n' "$WIDE_CONNS" "$SLOW_MS" "$slow_wide" \
    "$(col "$LAST_SCALE" create_slow_disk_wide server 7 | median)" \
    "$(col "$LAST_SCALE" create_slow_disk_wide server 8 | median)" "$(ratio "$slow_wide" "$wide")"
  echo
  echo "(The slow-disk restart replayed the grown $LAST_SCALE-thread directory in $SLOW_REPLAY_MS ms.)"
  echo
  echo "### Targets"
  echo
  big=$LAST_SCALE
  check() { # check NAME VALUE OP LIMIT
    local ok
    ok=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { ok = (op == ">=" && v >= l) || (op == "<=" && v <= l); if (ok) print "met"; else print "missed" }')
    printf '| %s | %s | %s %s | %s |\n' "$1" "$2" "$3" "$4" "$ok"
  }
  echo "| target ($big threads) | measured | wanted | |"
  echo "|---|---:|---:|---|"
  check "GET thread / fixture GET" "$(ratio "$(col "$big" get_thread server 6 | median)" "$(col "$big" get_thread fixture 6 | median)")" ">=" 0.8
  check "durable create / fixture POST" "$(ratio "$(col "$big" create server 6 | median)" "$(col "$big" create fixture 6 | median)")" ">=" 0.5
  check "list page of 50 / fixture GET" "$(ratio "$(col "$big" list_50 server 6 | median)" "$(col "$big" list_50 fixture 6 | median)")" ">=" 0.5
  check "start-up replay, s" "$(awk -F'|' -v s="$big" '$1 == s { printf "%.2f", $4 / 1000 }' "$SCALEFILE")" "<=" 3
  check "RSS after replay, MB" "$(awk -F'|' -v s="$big" '$1 == s { print $5 }' "$SCALEFILE")" "<=" 200
  check "slow-disk create / fast-disk create" "$(ratio "$slow" "$fast")" ">=" 0.5
  check "the same at $WIDE_CONNS connections" "$(ratio "$slow_wide" "$wide")" ">=" 0.5
} >"$TABLE"

echo
cat "$TABLE"
echo
echo "Total bench.sh time: $(($(date +%s) - T_START)) s (raw wrk output in $WORK/wrk$([[ ${BENCH_KEEP:-0} == 1 || -n ${BENCH_DIR:-} ]] || echo ', removed'))."
