#!/usr/bin/env bash
# Builds the Cloudflare Worker (crates/mess-worker) into crates/mess-worker/build/
# (index.js + index_bg.wasm), installing what a fresh machine lacks:
#   - the wasm32-unknown-unknown target (rustup);
#   - wasm-bindgen-cli at exactly the wasm-bindgen version of crates/mess-worker/Cargo.lock
#     (worker-build would download it from the internet; here it comes from crates.io);
#   - worker-build at the worker crate's version.
# wasm-opt is off (worker-build would download binaryen); esbuild comes from node_modules
# (wrangler's own) when present.
#
# Used by wrangler as the custom build command (deploy/cloudflare/wrangler.toml), by
# `npm run worker:build` and by scripts/test-worker.sh. The target dir is the
# repository's target/ (shared with the workspace; the worker's artifacts live under
# target/wasm32-unknown-unknown/).
#
# Env: MESS_WORKER_PROFILE=dev for an unoptimised build (default: release).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CRATE="$ROOT/crates/mess-worker"
LOCK="$CRATE/Cargo.lock"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"

log() { echo "build-worker: $*" >&2; }

# The version of a package in the worker's Cargo.lock.
locked_version() {
    awk -v name="$1" '
        $0 == "name = \"" name "\"" { found = 1; next }
        found && /^version = / { gsub(/version = |"/, ""); print; exit }
    ' "$LOCK"
}

cd "$CRATE"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    log "installing the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi

BINDGEN_VERSION="$(locked_version wasm-bindgen)"
WORKER_VERSION="$(locked_version worker)"
[[ -n "$BINDGEN_VERSION" && -n "$WORKER_VERSION" ]] || {
    log "cannot read the wasm-bindgen and worker versions from $LOCK"
    exit 1
}

if [[ "$("$CARGO_BIN/wasm-bindgen" --version 2>/dev/null || true)" != "wasm-bindgen $BINDGEN_VERSION" ]]; then
    log "installing wasm-bindgen-cli $BINDGEN_VERSION (cargo install --locked)"
    start=$SECONDS
    cargo install wasm-bindgen-cli --version "$BINDGEN_VERSION" --locked --force
    log "wasm-bindgen-cli installed in $((SECONDS - start)) s"
fi

if [[ "$("$CARGO_BIN/worker-build" --version 2>/dev/null || true)" != "$WORKER_VERSION" ]]; then
    log "installing worker-build $WORKER_VERSION (cargo install --locked)"
    start=$SECONDS
    cargo install worker-build --version "$WORKER_VERSION" --locked --force
    log "worker-build installed in $((SECONDS - start)) s"
fi

export WASM_BINDGEN_BIN="$CARGO_BIN/wasm-bindgen"
if [[ -z "${ESBUILD_BIN:-}" && -x "$ROOT/node_modules/.bin/esbuild" ]]; then
    export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
fi

profile=(--release)
if [[ "${MESS_WORKER_PROFILE:-release}" == dev ]]; then
    profile=(--dev)
fi

log "building (worker $WORKER_VERSION, wasm-bindgen $BINDGEN_VERSION, ${profile[*]}, wasm-opt off)"
start=$SECONDS
worker-build "${profile[@]}" --no-opt
log "built $CRATE/build in $((SECONDS - start)) s"
