#!/usr/bin/env bash
# Photos at scale (docs/benchmarks.md, "Photos at scale"), in one non-interactive run:
#   builds the release binary; fills two data directories through the API on a live
#   server: BENCH_PHOTOS requests, each claimed and completed by a phone, one store with a
#   BENCH_PHOTO_KB KiB photo (random bytes, so no two are alike) as a data: URI in every
#   answer, the other with the same text and no photo (and, with BENCH_INLINE=1, a third
#   whose photos stay inline in the event log, as every photo did before blobs: their
#   base64 ends in a newline, which the exchange keeps verbatim); then REPS times,
#   alternating the stores, on a freshly started server:
#   1. start-up: the replay's time (the server's "state rebuilt" log line) and VmRSS 3 s
#      after it answers;
#   2. wrk (-t2 -c16 -d${BENCH_DURATION}s --latency) on GET of one answered thread with
#      ?attachments=links, on the same GET seed-shaped (the photo as a data: URI, from the
#      blob cache), and on the attachment route (the photo's bytes);
#   then prints the tables in markdown.
#
# Settings (environment): BENCH_PHOTOS (1000), BENCH_PHOTO_KB (1024), BENCH_REPS (3),
# BENCH_DURATION (4), BENCH_PORT (18096), BENCH_DIR (work directory; a fresh one under /tmp
# by default, removed at the end unless BENCH_KEEP=1), BENCH_NO_BUILD=1 (use the release
# binary as it is).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
T_START=$(date +%s)

PHOTOS=${BENCH_PHOTOS:-1000}
PHOTO_KB=${BENCH_PHOTO_KB:-1024}
REPS=${BENCH_REPS:-3}
DUR=${BENCH_DURATION:-4}
PORT=${BENCH_PORT:-18096}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/mess-photos.XXXXXX)}
mkdir -p "$WORK"
RESULTS=$WORK/results.txt
: >"$RESULTS"
SERVER_PID=
BASE=http://127.0.0.1:$PORT

log() { printf '[photos %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ ${BENCH_KEEP:-0} != 1 && -z ${BENCH_DIR:-} ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"
need_wrk
build_release mess-exchange
BIN=$ROOT/target/release/mess-exchange

# At info, for the replay's "state rebuilt" line.
start() {
  : >"$WORK/server.log"
  LOG_LEVEL=info start_bench_server "$BIN" "$1"
}

stop() { stop_bench_server; }

KINDS=(plain photos)
[[ ${BENCH_INLINE:-0} == 1 ]] && KINDS+=(inline)

# --- the data: through the API, as a phone would send it -----------------------------------
for kind in "${KINDS[@]}"; do
  log "filling $PHOTOS answered requests ($kind)"
  start "$WORK/$kind"
  PHOTO_BYTES=0
  [[ $kind != plain ]] && PHOTO_BYTES=$((PHOTO_KB * 1024))
  python3 - "$BASE" "$PHOTOS" "$PHOTO_BYTES" "$WORK/$kind.env" "$kind" <<'PY'
import base64, concurrent.futures, json, os, sys, urllib.request

base, count, photo_bytes, out, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
x = f"{base}/api/v1/exchanges/home"

def call(method, path, key=None, body=None):
    req = urllib.request.Request(x + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())

agent = call("POST", "/register", body={"executor_id": "agent", "display_name": "Agent"})["api_key"]
phone = call("POST", "/register", body={"executor_id": "phone", "display_name": "Phone",
                                       "capabilities": ["photo:capture"]})["api_key"]

def one(i):
    r = call("POST", "/requests", agent, {"intent": f"Photo of shelf {i}", "context": ["the left one"]})["ref"]
    call("PATCH", f"/requests/{r}", phone, {"status": "claimed"})
    content = [f"shelf {i}: all there"]
    if photo_bytes:
        uri = "data:image/jpeg;base64," + base64.b64encode(os.urandom(photo_bytes)).decode()
        if kind == "inline":
            uri += "\n"  # not canonical base64: kept inline, as before blobs
        content.append({"image": uri})
    call("PATCH", f"/requests/{r}", phone, {"status": "completed", "mess": [{"response": {"content": content}}]})
    return r

with concurrent.futures.ThreadPoolExecutor(4) as pool:
    refs = list(pool.map(one, range(count)))
with open(out, "w") as f:
    f.write(f"KEY={agent}\nSAMPLE={refs[len(refs) // 2]}\n")
PY
  stop
  du -sm "$WORK/$kind" | awk '{ print $1 }' >"$WORK/$kind.size"
done

# --- the runs ------------------------------------------------------------------------------
wrk_run() { # name url key -> "rps p50 p99"
  local out=$WORK/wrk-$1.txt
  wrk -t2 -c16 -d"${DUR}s" --latency -H "Authorization: Bearer $3" "$2" >"$out" 2>&1 || true
  printf '%s %s %s' "$(awk '/^Requests\/sec:/ { print $2 }' "$out")" \
    "$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")" \
    "$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")"
}

for rep in $(seq 1 "$REPS"); do
  for kind in "${KINDS[@]}"; do
    # shellcheck disable=SC1090
    source "$WORK/$kind.env"
    start "$WORK/$kind"
    replay_ms=$(sed -n 's/.*elapsed_ms=\([0-9]*\).*state rebuilt.*/\1/p; s/.*state rebuilt.*elapsed_ms=\([0-9]*\).*/\1/p' "$WORK/server.log" | head -1)
    sleep 3
    rss=$(rss_mb "$SERVER_PID")
    thread=$BASE/api/v1/exchanges/home/requests/$SAMPLE
    read -r l_rps l_p50 l_p99 <<<"$(wrk_run "links-$kind-$rep" "$thread?attachments=links" "$KEY")"
    read -r i_rps i_p50 i_p99 <<<"$(wrk_run "inline-$kind-$rep" "$thread" "$KEY")"
    a_rps=- a_p50=- a_p99=-
    if [[ $kind != plain ]]; then
      read -r a_rps a_p50 a_p99 <<<"$(wrk_run "att-$rep" "$thread/attachments/1" "$KEY")"
    fi
    links_bytes=$(curl -sf -H "Authorization: Bearer $KEY" "$thread?attachments=links" | wc -c)
    inline_bytes=$(curl -sf -H "Authorization: Bearer $KEY" "$thread" | wc -c)
    rss_after=$(rss_mb "$SERVER_PID")
    printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$kind" "$rep" "${replay_ms:-?}" \
      "$rss" "$l_rps" "$l_p50" "$l_p99" "$i_rps" "$i_p50" "$i_p99" "$a_rps" "$a_p50" "$a_p99" \
      "$links_bytes" "$inline_bytes" "$rss_after" >>"$RESULTS"
    log "$kind #$rep: replay ${replay_ms:-?} ms, RSS $rss MiB ($rss_after after the reads); links GET $l_rps req/s p99 $l_p99 ms; inline GET $i_rps req/s p99 $i_p99 ms"
    stop
  done
done

# --- the tables ----------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'|' -v k="$1" -v c="$2" '$1 == k { print $c }' "$RESULTS" | median; }

echo
echo "$PHOTOS answered requests, each with a ${PHOTO_KB} KiB photo or none; medians of $REPS runs"
echo
echo "| store | on disk (MiB) | replay (ms) | RSS after replay (MiB) | RSS after the reads (MiB) |"
echo "|---|---:|---:|---:|---:|"
for kind in "${KINDS[@]}"; do
  printf '| %s | %s | %s | %s | %s |\n' "$kind" "$(cat "$WORK/$kind.size")" "$(col "$kind" 3)" \
    "$(col "$kind" 4)" "$(col "$kind" 16)"
done
echo
echo "| GET of one answered thread | store | body (bytes) | req/s | p50 (ms) | p99 (ms) |"
echo "|---|---|---:|---:|---:|---:|"
for kind in "${KINDS[@]}"; do
  printf '| ?attachments=links | %s | %s | %s | %s | %s |\n' "$kind" "$(col "$kind" 14)" \
    "$(col "$kind" 5)" "$(col "$kind" 6)" "$(col "$kind" 7)"
  printf '| seed-shaped (data: URI) | %s | %s | %s | %s | %s |\n' "$kind" "$(col "$kind" 15)" \
    "$(col "$kind" 8)" "$(col "$kind" 9)" "$(col "$kind" 10)"
done
printf '| attachments/1 (the bytes) | photos | %s | %s | %s | %s |\n' "$((PHOTO_KB * 1024))" \
  "$(col photos 11)" "$(col photos 12)" "$(col photos 13)"
log "done in $(($(date +%s) - T_START)) s"
