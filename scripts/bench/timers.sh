#!/usr/bin/env bash
# Timers at scale (docs/benchmarks.md, "Timers at scale"), in one non-interactive run:
#   builds release binaries; seeds two data directories of BENCH_THREADS threads x
#   BENCH_EVENTS_PER_THREAD events (mess-bench seed: 40% pending, 30% claimed, 15% in
#   progress, 15% completed), one plain and one with timers on every request (`--timers`:
#   `needed_by` in 30 days and `claim_timeout` P7D, so every pending, claimed and active
#   thread has a deadline, a claim limit or an offer step pending, none due); then REPS
#   times, alternating the two stores, on a freshly started server:
#   1. start-up: the replay's time (the server's "state rebuilt" log line) and VmRSS 3 s
#      after it answers;
#   2. wrk's GET-one-thread scenario of scripts/bench.sh (wrk -t2 -c64 -d4s --latency),
#      CPU idle read before;
#   3. the once-a-second timer sweep: after BENCH_SWEEP_SECS s, the server's own
#      `mess_timer_sweep_seconds` histogram (count, mean, the bucket under which 99% fall),
#      and the events appended meanwhile (0: nothing was due, nothing fired);
#   then prints the tables in markdown.
#
# Both stores run with OFFER_REMIND_AFTER=P7D, so that the plain store's pending requests
# (seeded two days in the past) are not due for their second offer either: a pending
# request always has that timer, derived from its creation, so "plain" means no deadline
# and no claim limit, not no timer at all.
#
# Settings (environment): BENCH_THREADS (100000), BENCH_EVENTS_PER_THREAD (10), BENCH_REPS
# (3), BENCH_DURATION (4), BENCH_SWEEP_SECS (20), BENCH_PORT (18095), BENCH_DIR (work
# directory; a fresh one under /tmp by default, removed at the end unless BENCH_KEEP=1),
# BENCH_NO_BUILD=1 (use the release binaries as they are).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
T_START=$(date +%s)

THREADS=${BENCH_THREADS:-100000}
PER_THREAD=${BENCH_EVENTS_PER_THREAD:-10}
REPS=${BENCH_REPS:-3}
DUR=${BENCH_DURATION:-4}
SWEEP_SECS=${BENCH_SWEEP_SECS:-20}
PORT=${BENCH_PORT:-18095}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/mess-timers.XXXXXX)}
mkdir -p "$WORK"
RESULTS=$WORK/results.txt
: >"$RESULTS"
SERVER_PID=

log() { printf '[timers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ ${BENCH_KEEP:-0} != 1 && -z ${BENCH_DIR:-} ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"
need_wrk
build_release mess-exchange mess-bench
BIN=$ROOT/target/release

# A sample of /metrics: the value of the series whose line starts with $1.
metric() { awk -v k="$1" 'index($0, k) == 1 { print $NF; exit }' "$2"; }

# --- the data ------------------------------------------------------------------------------
for kind in plain timers; do
  flag=()
  [[ $kind == timers ]] && flag=(--timers)
  log "seeding $THREADS threads x $PER_THREAD events ($kind)"
  "$BIN/mess-bench" seed --dir "$WORK/$kind" --threads "$THREADS" \
    --events-per-thread "$PER_THREAD" --out "$WORK/$kind.json" "${flag[@]}"
done

# --- the runs ------------------------------------------------------------------------------
for rep in $(seq 1 "$REPS"); do
  for kind in plain timers; do
    log "$kind #$rep: starting"
    : >"$WORK/server.log"
    PORT="$PORT" BIND_ADDRESS=127.0.0.1 STORAGE_PATH="$WORK/$kind" SHUTDOWN_TIMEOUT_SECS=2 \
      RATE_LIMIT_REGISTER_PER_MIN=0 RATE_LIMIT_AUTH_FAILURES_PER_MIN=0 LOG_LEVEL=info \
      ACCESS_LOG=false OFFER_REMIND_AFTER=P7D \
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
    started=$(date +%s.%N)
    replay_ms=$(sed -n 's/.*elapsed_ms=\([0-9]*\).*state rebuilt.*/\1/p; s/.*state rebuilt.*elapsed_ms=\([0-9]*\).*/\1/p' "$WORK/server.log" | head -1)
    sleep 3
    rss=$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status")
    X=$(manifest "$WORK/$kind.json" exchange)
    KEY=$(manifest "$WORK/$kind.json" requestor_key)
    SAMPLE=$(manifest "$WORK/$kind.json" sample_ref)
    idle=$(cpu_idle)
    out=$WORK/wrk-$kind-$rep.txt
    wrk -t2 -c64 -d"${DUR}s" --latency -H "Authorization: Bearer $KEY" \
      "http://127.0.0.1:$PORT/api/v1/exchanges/$X/requests/$SAMPLE" >"$out" 2>&1 || true
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    rest=$(awk -v s="$started" -v d="$SWEEP_SECS" -v now="$(date +%s.%N)" 'BEGIN { r = s + d - now; if (r < 0) r = 0; print r }')
    sleep "$rest"
    curl -sf "http://127.0.0.1:$PORT/metrics" >"$WORK/metrics-$kind-$rep.txt"
    m=$WORK/metrics-$kind-$rep.txt
    count=$(metric "mess_timer_sweep_seconds_count" "$m")
    sum=$(metric "mess_timer_sweep_seconds_sum" "$m")
    appended=$(metric "mess_storage_append_events_sum" "$m")
    # The smallest bucket holding 99% of the sweeps.
    p99b=$(awk -v c="${count:-0}" '/^mess_timer_sweep_seconds_bucket/ {
        le = $0; sub(/.*le="/, "", le); sub(/".*/, "", le);
        if ($NF >= 0.99 * c) { print le; exit } }' "$m")
    mean=$(awk -v s="${sum:-0}" -v c="${count:-0}" 'BEGIN { if (c > 0) printf "%.2f", 1000 * s / c; else print "-" }')
    printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$kind" "$rep" "${replay_ms:-?}" "${rss:-?}" \
      "$idle" "${rps:-0}" "${p50:-0}" "${p99:-0}" "${count:-0}" "$mean" "${p99b:-?}" >>"$RESULTS"
    printf '%s\n' "${appended:-0}" >"$WORK/appended-$kind-$rep.txt"
    log "$kind #$rep: replay ${replay_ms:-?} ms, RSS ${rss:-?} MiB, GET ${rps:-?} req/s p50 ${p50:-?} p99 ${p99:-?} ms (idle ${idle}%), $count sweeps mean $mean ms (99% <= ${p99b:-?} s), ${appended:-0} events appended"
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  done
done

# --- the tables ----------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'|' -v k="$1" -v c="$2" '$1 == k { print $c }' "$RESULTS" | median; }

echo
echo "$THREADS threads x $PER_THREAD events, medians of $REPS runs"
echo
echo "| store | replay (ms) | RSS (MiB) | GET req/s | GET p50 (ms) | GET p99 (ms) | sweeps | sweep mean (ms) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for kind in plain timers; do
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$kind" "$(col "$kind" 3)" "$(col "$kind" 4)" \
    "$(col "$kind" 6)" "$(col "$kind" 7)" "$(col "$kind" 8)" "$(col "$kind" 9)" "$(col "$kind" 10)"
done
echo
echo "Every run (store | rep | replay ms | RSS MiB | CPU idle % | GET req/s | p50 | p99 | sweeps | sweep mean ms | 99% of sweeps <= s):"
echo
sed 's/^/    /' "$RESULTS"
echo
echo "Events appended while the sweeps ran (0: nothing was due): $(cat "$WORK"/appended-*.txt | tr '\n' ' ')"
log "done in $(($(date +%s) - T_START)) s"
