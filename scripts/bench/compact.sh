#!/usr/bin/env bash
# Compaction on S3 (docs/benchmarks.md, "Compaction on S3"), in one non-interactive run:
#   builds release binaries; seeds BENCH_EVENTS threads of one event each (mess-bench seed:
#   one day, two days ago); splits that day's segments into one object per event, as a
#   store on S3 holds them after that many single-event writes; copies the store into a
#   bucket of a local moto server (`mess-exchange copy`, timed); then `verify` (events,
#   objects), `compact --exchange home` (timed), `verify` again, and the objects of the
#   day before and after. Needs the test venv (.venv, made by scripts/test.sh) for moto
#   and boto3.
#
# Settings (environment): BENCH_EVENTS (100000), BENCH_DIR (work directory; a fresh one
# under /tmp by default, removed at the end unless BENCH_KEEP=1), BENCH_NO_BUILD=1 (use the
# release binaries as they are).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
N=${BENCH_EVENTS:-100000}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/mess-compact.XXXXXX)}
mkdir -p "$WORK"
PY=$ROOT/.venv/bin/python
MOTO_PID=

log() { printf '[compact %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  [[ -n $MOTO_PID ]] && kill "$MOTO_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ ${BENCH_KEEP:-0} != 1 && -z ${BENCH_DIR:-} ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

[[ -x $PY ]] || { log "no .venv: run bash scripts/test.sh once (it makes it)"; exit 1; }
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
  log "building release binaries"
  cargo build --release -p mess-exchange -p mess-bench
fi
BIN=$ROOT/target/release

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
until curl -fsS "http://127.0.0.1:$PORT/" >/dev/null 2>&1; do sleep 0.2; done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
"$PY" - "$PORT" <<'EOF'
import sys, boto3
boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}").create_bucket(Bucket="compact")
EOF

log "seeding $N threads x 1 event"
"$BIN/mess-bench" seed --dir "$WORK/seeded" --threads "$N" --events-per-thread 1 --out "$WORK/seed.json" >&2
log "splitting the day into one object per event"
"$PY" - "$WORK/seeded" <<'EOF'
import os, sys, uuid
root = sys.argv[1]
for day, _, files in os.walk(os.path.join(root, "events")):
    for f in [f for f in files if f.endswith(".jsonl")]:
        path = os.path.join(day, f)
        with open(path, "rb") as src:
            lines = [l for l in src.read().split(b"\n") if l]
        os.remove(path)
        for line in lines:
            with open(os.path.join(day, f"{uuid.uuid4()}.jsonl"), "wb") as out:
                out.write(line + b"\n")
EOF

S3=(--storage-type s3 --s3-endpoint "http://127.0.0.1:$PORT" --s3-bucket compact
    --s3-access-key bench --s3-secret-key bench --s3-allow-http true)
count_objects() {
  "$PY" - "$PORT" <<'EOF'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}")
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="compact", Prefix="events/"):
    n += page.get("KeyCount", 0)
print(n)
EOF
}
timed() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }' >"$WORK/last.time"; }

log "copying the store to moto"
timed "$BIN/mess-exchange" copy --storage-path "$WORK/seeded" --to-storage-type s3 \
  --to-s3-endpoint "http://127.0.0.1:$PORT" --to-s3-bucket compact \
  --to-s3-access-key bench --to-s3-secret-key bench --to-s3-allow-http true >"$WORK/copy.txt"
copy_s=$(cat "$WORK/last.time")
before=$(count_objects)
"$BIN/mess-exchange" verify "${S3[@]}" >"$WORK/verify-before.txt" 2>&1
log "compacting $before objects"
timed "$BIN/mess-exchange" compact --exchange home "${S3[@]}" >"$WORK/compact.txt" 2>&1
compact_s=$(cat "$WORK/last.time")
after=$(count_objects)
"$BIN/mess-exchange" verify "${S3[@]}" >"$WORK/verify-after.txt" 2>&1
events() { grep -m1 -o '[0-9][0-9,]* events' "$1" | tr -d ',' | awk '{ print $1 }'; }

echo
echo "| events | objects before | objects after | copy to moto (s) | compact (s) | events before / after (verify) |"
echo "|---:|---:|---:|---:|---:|---|"
echo "| $N | $before | $after | $copy_s | $compact_s | $(events "$WORK/verify-before.txt") / $(events "$WORK/verify-after.txt") |"
echo
echo "compact said:"
sed 's/^/    /' "$WORK/compact.txt"
