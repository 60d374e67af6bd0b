#!/usr/bin/env bash
# Lints the Cloudflare Worker (crates/mess-worker), which the workspace's `cargo fmt --all`
# and `cargo clippy --workspace` do not reach (it builds only for wasm32, apart): rustfmt,
# then clippy for wasm32-unknown-unknown with warnings as errors; first, that mess-core,
# mess-api and mess-notify's pure part build for wasm32 by themselves. Installs the target
# when missing. Used by `just lint` and .ci/run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
# The shared crates build for wasm32 on their own, with no OS entropy or getrandom backend
# (randomness and time come in through mess-core's ports).
cd "$ROOT"
cargo check -p mess-core -p mess-api -p mess-notify --no-default-features --target wasm32-unknown-unknown
cd "$ROOT/crates/mess-worker"
cargo fmt --check
cargo clippy --target wasm32-unknown-unknown -- -D warnings
