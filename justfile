# Everyday commands. The README's two commands do not need `just`.

# Run the server on the embedded default (filesystem storage in ./data, port 3000).
run:
    cargo run --release -p mess-exchange

# The whole test suite (starts moto, installs test tools).
test:
    bash scripts/test.sh

# Lints as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    bash scripts/lint-worker.sh

# Format the code.
fmt:
    cargo fmt --all

# Regenerate openapi.yaml from the handlers.
openapi:
    cargo run -q -p mess-exchange -- openapi > openapi.yaml

# The benchmark suite (docs/benchmarks.md).
bench:
    bash scripts/bench.sh
