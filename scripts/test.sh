#!/usr/bin/env bash
# The whole test suite, as the README runs it: unit, property, in-process and end-to-end
# Rust tests; the storage suite against a real S3 server (moto); the DuckDB contract with
# the real DuckDB; generated Python and TypeScript clients and schemathesis (a smoke run
# and a deeper one) against the live binary; a short cargo-fuzz run; one end-to-end API
# suite (scripts/e2e.py) against the binary and against the Cloudflare Worker under
# wrangler dev; three replicas on one bucket, under faults (scripts/replicas.py); the MCP
# endpoint through the official MCP SDKs; the app in Chromium; the deployment checks.
# Installs what it needs (a Python venv at .venv, npm packages, cargo-fuzz, the wasm
# toolchain) and starts moto itself. Needs no input.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=$ROOT/.venv

step() { printf '\n=== %s\n' "$*"; }

step "tools: Python venv with moto, DuckDB, schemathesis, client generator, deploy linters"
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-test.txt

step "S3: starting moto on a free port"
MOTO_PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"${TMPDIR:-/tmp}/mess-moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$MOTO_PORT/" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$MOTO_PORT/" >/dev/null
export MESS_TEST_S3_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export MESS_TEST_PYTHON="$VENV/bin/python"

step "Rust: every crate's tests (unit, property, snapshot, in-process, storage on memory/files/S3, DuckDB, crash, end-to-end)"
cargo test --workspace --all-targets
cargo test --workspace --doc

step "generated clients and schemathesis against the live binary"
bash scripts/test-clients.sh

step "the end-to-end API suite against the binary (the Worker runs the same one below)"
bash scripts/test-e2e.sh

step "replicas: three processes on one moto bucket, claim races, a checked history, faults (SIGKILL, SIGSTOP, S3 cut, rolling restart)"
bash scripts/test-replicas.sh

step "MCP: the official Python and TypeScript SDKs against the live binary"
bash scripts/test-mcp.sh

step "the executor's app in a real browser (Debian Chromium driven by playwright-core)"
bash scripts/test-app.sh

step "schemathesis, deeper: more examples and another seed (the hostile-input suite)"
SCHEMATHESIS_EXAMPLES=100 SCHEMATHESIS_SEEDS="7 1131" bash scripts/test-clients.sh

step "fuzzing mess-core's parsers and the event-line reader (a short run; docs/reliability.md for long ones)"
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
FUZZ_RUNS=20000 bash scripts/fuzz.sh

step "the Cloudflare Worker under wrangler dev (R2 and Durable Objects emulated)"
bash scripts/test-worker.sh

step "deployment artifacts"
bash scripts/check-deploy.sh
