#!/usr/bin/env bash
# One command, fresh machine: builds sluice and the csv-validate example
# scorer, then runs the bundled demo job (examples/demo) end to end.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
echo "demo: building sluice (release; the first build takes a few minutes)"
cargo build --release -p sluice-cli
echo "demo: building the csv-validate scorer for wasm32-wasip2"
cargo build --release --target wasm32-wasip2 -p csv-validate

rm -rf examples/out
status=0
./target/release/sluice run examples/demo/job.yaml --job-dir examples/out/job || status=$?

echo
echo "demo: output rows      examples/out/report.csv"
echo "demo: job result       examples/out/job/job_result.json"
echo "demo: per mini-batch   examples/out/job/processed_mini_batches.csv"
echo "demo: guest logs       examples/out/job/logs/"
exit "$status"
