#!/usr/bin/env bash
# Fuzzes mess-core's parsers with cargo-fuzz (libFuzzer + AddressSanitizer): the request,
# MESS block and profile parsers on JSON from arbitrary bytes, and the event-line reader.
#
#   scripts/fuzz.sh                 # every target, FUZZ_RUNS inputs each (default 20000)
#   FUZZ_RUNS=2000000 scripts/fuzz.sh event_from_line     # one target, longer
#   FUZZ_SECONDS=600 scripts/fuzz.sh                      # every target, 10 minutes each
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`, about 2.5 minutes) and builds
# with the stable toolchain through RUSTC_BOOTSTRAP=1 (sanitizers are nightly flags).
# Builds go to the workspace's target/ (target/x86_64-unknown-linux-gnu/), sharing cargo's
# lock. Found crashes land in fuzz/artifacts/<target>/; the growing corpus in
# fuzz/corpus/<target>/ (both git-ignored); fuzz/seeds/ holds committed starting inputs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT/fuzz"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$ROOT/target"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
  exit 2
fi

TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
  mapfile -t TARGETS < <(cargo fuzz list)
fi

LIMIT=(-runs="${FUZZ_RUNS:-20000}")
if [[ -n ${FUZZ_SECONDS:-} ]]; then
  LIMIT=(-max_total_time="$FUZZ_SECONDS")
fi

TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
cargo fuzz build -O
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  printf '\n=== fuzz %s (%s)\n' "$t" "${LIMIT[*]}"
  log=$(mktemp)
  rc=0
  # The binary `cargo fuzz build` made, run directly: `cargo fuzz run` would take cargo's
  # lock on target/ again for every target.
  "$CARGO_TARGET_DIR/$TRIPLE/release/$t" "corpus/$t" "seeds/$t" \
    -dict=mess.dict -max_len=4096 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "${LIMIT[@]}" >"$log" 2>&1 || rc=$?
  grep -E '^(Done |stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|thread .* panicked|Test unit written)' "$log" || true
  if [[ $rc -ne 0 ]]; then
    tail -40 "$log" >&2
    echo "fuzz target $t failed: see fuzz/artifacts/$t/" >&2
    exit 1
  fi
  rm -f "$log"
done
