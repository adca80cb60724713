#!/usr/bin/env bash
# One command, fresh machine: builds sluice and the example scorers, then
# runs the bundled demo jobs end to end:
#   1. examples/tabular: the tabular-classifier scorer over CSV rows with a
#      bundled ONNX gradient-boosted classifier (run natively by the host);
#   2. examples/demo: csv-validate over a folder of CSV files, with item
#      errors for the bad ones.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
echo "demo: building sluice (release; the first build takes a few minutes)"
cargo build --release -p sluice-cli
echo "demo: building the example scorers for wasm32-wasip2"
cargo build --release --target wasm32-wasip2 -p tabular-classifier -p csv-validate

rm -rf examples/out
status=0
echo
echo "demo 1/2: tabular-classifier (examples/tabular/job.yaml)"
./target/release/sluice run examples/tabular/job.yaml --job-dir examples/out/tabular-job || status=$?
echo
echo "demo 2/2: csv-validate (examples/demo/job.yaml)"
./target/release/sluice run examples/demo/job.yaml --job-dir examples/out/job || status=$?

echo
echo "demo: predictions      examples/out/predictions.csv   (job: examples/out/tabular-job/)"
echo "demo: report           examples/out/report.csv        (job: examples/out/job/)"
echo "demo: each job dir has job_result.json, processed_mini_batches.csv and logs/"
exit "$status"
