#!/usr/bin/env bash
# One command: the demo job (examples/tabular) on a local cluster. It starts
# a nats-server with JetStream (the pinned one scripts/setup.sh installs) on
# free loopback ports, three `sluice worker` nodes, and runs the job across
# them with `sluice run --cluster`. Everything it started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
echo "cluster-demo: building sluice (release; the first build takes a few minutes)"
cargo build --release -p sluice-cli
echo "cluster-demo: building the example scorer for wasm32-wasip2"
cargo build --release --target wasm32-wasip2 -p tabular-classifier

source scripts/lib/servers.sh
servers_init
start_nats
echo "cluster-demo: nats-server with JetStream on $cluster"

mkdir -p examples/out
for n in node1 node2 node3; do
    SLUICE_LOG=warn ./target/release/sluice worker --cluster "$cluster" --name "$n" --max-concurrency 2 \
        >"examples/out/$n.log" 2>&1 &
    pids+=($!)
done
echo "cluster-demo: 3 workers (node1..node3, 2 instances each), logs in examples/out/node*.log"

rm -rf examples/out/cluster-job examples/out/cluster-predictions.csv
status=0
./target/release/sluice run examples/tabular/job.yaml --cluster "$cluster" \
    --set resources.instance_count=3 --set "mini_batch_size=100 rows" \
    --set "task.append_row_to=$PWD/examples/out/cluster-predictions.csv" \
    --job-dir examples/out/cluster-job || status=$?

echo
echo "cluster-demo: predictions   examples/out/cluster-predictions.csv"
echo "cluster-demo: job           examples/out/cluster-job/  (sluice jobs show examples/out/cluster-job)"
exit "$status"
