#!/usr/bin/env bash
# Runs the benchmark binary (release build) after building its guests.
# Figures go to BENCHMARKS.md by hand; nothing here is a timed test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --target wasm32-wasip2 -p file-stats -p sluice-test-programs
cargo run --release -p sluice-bench --bin sluice-bench -- "$@"
