#!/usr/bin/env bash
# Generated clients and schemathesis against the live binary (issue 4, items 6-8):
#   1. a Python client generated from openapi.yaml by openapi-python-client runs the seed's
#      flow (register two members, create, claim, complete with a response block, get,
#      list requests, list executors): scripts/clients/python_flow.py;
#   2. a TypeScript SDK generated from openapi.yaml by @hey-api/openapi-ts (pinned with
#      scripts/clients/package-lock.json) runs the same flow: scripts/clients/ts_flow.ts;
#   3. schemathesis fuzzes the live /api/v1/openapi.json with every default check, a fixed
#      seed and a bounded number of examples: zero failures expected
#      (settings and the reasons for each: scripts/clients/schemathesis.toml).
# Starts target/debug/mess-exchange (building it when missing) on a free port with a temp
# data dir and stops it on exit. Needs .venv (scripts/test.sh installs it from
# scripts/requirements-test.txt), node and npm. No input; exits non-zero on any failure.
# Settings: SCHEMATHESIS_SEEDS (a space-separated list, default "20261123 7 424242"),
# SCHEMATHESIS_EXAMPLES (default 30).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=$ROOT/.venv
CLIENTS=$ROOT/scripts/clients
BIN=$ROOT/target/debug/mess-exchange
# Several seeds, each its own run: one seed's examples miss what another's find.
SEEDS=${SCHEMATHESIS_SEEDS:-20261123 7 424242}
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-30}
export CI=true

step() { printf '\n--- %s\n' "$*"; }
die() { printf 'test-clients: %s\n' "$*" >&2; exit 1; }

START=$SECONDS
for tool in "$VENV/bin/python" "$VENV/bin/openapi-python-client" "$VENV/bin/schemathesis"; do
  [[ -x $tool ]] || die "$tool is missing: run scripts/test.sh (or pip install -r scripts/requirements-test.txt into .venv)"
done
command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"

if [[ ! -x $BIN ]]; then
  step "building the binary"
  cargo build -p mess-exchange
fi
# The clients are generated from openapi.yaml and schemathesis reads the live spec: they
# must be the same document, or the results mean nothing.
if ! "$BIN" openapi | cmp -s - openapi.yaml; then
  die "openapi.yaml differs from \`$BIN openapi\`: rebuild (cargo build -p mess-exchange) or regenerate it (target/debug/mess-exchange openapi > openapi.yaml)"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mess-clients.XXXXXX")
SERVER_PID=
cleanup() {
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

step "starting the binary"
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
mkdir -p "$TMP/data"
PORT=$PORT BIND_ADDRESS=127.0.0.1 STORAGE_PATH=$TMP/data NOTIFY_ALLOW_PRIVATE=true \
  "$BIN" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 150); do
  curl -fsS "$BASE/health" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; die "the server exited"; }
  sleep 0.2
done
curl -fsS "$BASE/health" >/dev/null || { tail -n 50 "$TMP/server.log" >&2; die "no /health after 30 s"; }
echo "serving at $BASE (data in $TMP/data)"

RESULTS=()
PASSED=0
FAILED=0
record() { # name, exit code
  if [[ $2 -eq 0 ]]; then
    RESULTS+=("PASS  $1"); PASSED=$((PASSED + 1))
  else
    RESULTS+=("FAIL  $1 (exit $2)"); FAILED=$((FAILED + 1))
  fi
}

python_client() {
  local out=$TMP/python-client
  "$VENV/bin/openapi-python-client" generate --path openapi.yaml --output-path "$out" \
    --overwrite --config "$CLIENTS/openapi-python-client.yaml"
  [[ -d $out/mess_exchange_client ]] || { echo "no package generated in $out" >&2; return 1; }
  PYTHONPATH=$out "$VENV/bin/python" "$CLIENTS/python_flow.py" "$BASE"
}

ts_client() {
  if [[ -f $CLIENTS/package-lock.json ]]; then
    npm ci --prefix "$CLIENTS" --no-audit --no-fund --loglevel=error
  else
    npm install --prefix "$CLIENTS" --no-audit --no-fund --loglevel=error
  fi
  rm -rf "$CLIENTS/generated-ts" "$CLIENTS/dist"
  (cd "$CLIENTS" && ./node_modules/.bin/openapi-ts --input ../../openapi.yaml \
    --output generated-ts --no-log-file --silent)
  [[ -f $CLIENTS/generated-ts/sdk.gen.ts ]] || { echo "openapi-ts generated no SDK" >&2; return 1; }
  (cd "$CLIENTS" && ./node_modules/.bin/tsc -p tsconfig.json)
  node "$CLIENTS/dist/ts_flow.js" "$BASE"
}

schemathesis_run() { # seed
  # Each seed fuzzes an exchange of its own, so runs do not see each other's members.
  local exchange=fuzz-$1 key cursor attachment_ref
  key=$(curl -fsS -X POST "$BASE/api/v1/exchanges/$exchange/register" \
    -H 'Content-Type: application/json' -d '{"executor_id": "schemathesis"}' |
    "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')
  # Another member, for the operations that may only act on yourself (schemathesis.toml).
  curl -fsS -X POST "$BASE/api/v1/exchanges/$exchange/register" \
    -H 'Content-Type: application/json' -d '{"executor_id": "bystander"}' >/dev/null
  # Two threads, so a page of one has a real `next_cursor` (see schemathesis.toml).
  for i in 1 2; do
    curl -fsS -X POST "$BASE/api/v1/exchanges/$exchange/requests" -H "Authorization: Bearer $key" \
      -H 'Content-Type: application/json' -d "{\"intent\": \"seed thread $i\"}" >/dev/null
  done
  cursor=$(curl -fsS "$BASE/api/v1/exchanges/$exchange/requests?limit=1" -H "Authorization: Bearer $key" |
    "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["next_cursor"])')
  # A thread with an inline attachment (a 1x1 PNG), for GET .../attachments/{name}.
  attachment_ref=$(curl -fsS -X POST "$BASE/api/v1/exchanges/$exchange/requests" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"intent": "with an attachment", "context": [{"image": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}]}' |
    "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["ref"])')
  # Hypothesis' own caches go to the temp dir, not the repository.
  HYPOTHESIS_STORAGE_DIRECTORY=$TMP/hypothesis \
    MESS_EXCHANGE=$exchange MESS_CURSOR=$cursor MESS_ATTACHMENT_REF=$attachment_ref "$VENV/bin/schemathesis" --config-file "$CLIENTS/schemathesis.toml" \
    run "$BASE/api/v1/openapi.json" \
    -H "Authorization: Bearer $key" --checks all \
    --seed "$1" --max-examples "$EXAMPLES" --no-color
  # Had the run revoked its own key, everything after would only have tested the 401 path.
  curl -fsS -o /dev/null "$BASE/api/v1/exchanges/$exchange/executors" -H "Authorization: Bearer $key" ||
    { echo "the fuzzing member's key stopped working during the run" >&2; return 1; }
}

step "1/3 Python client (openapi-python-client)"
set +e; (set -e; python_client); rc=$?; set -e
record "python client: generated from openapi.yaml, seed flow against the binary" $rc

step "2/3 TypeScript client (@hey-api/openapi-ts)"
set +e; (set -e; ts_client); rc=$?; set -e
record "typescript client: generated from openapi.yaml, seed flow against the binary" $rc

for seed in $SEEDS; do
  step "3/3 schemathesis (seed $seed, at most $EXAMPLES examples per operation, every check)"
  set +e; (set -e; schemathesis_run "$seed"); rc=$?; set -e
  record "schemathesis: live spec, --checks all, seed $seed" $rc
done

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  RESULTS+=("FAIL  the server died during the run"); FAILED=$((FAILED + 1))
fi
if grep -qE 'panicked|"level":"ERROR"| ERROR ' "$TMP/server.log"; then
  echo "server log errors:" >&2
  grep -E 'panicked|"level":"ERROR"| ERROR ' "$TMP/server.log" | head -n 20 >&2
fi

printf '\n=== clients and schemathesis summary (%ss)\n' $((SECONDS - START))
printf '%s\n' "${RESULTS[@]}"
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
