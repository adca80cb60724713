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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
monitor=$(free_port)
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

.sluice/servers/bin/nats-server -a 127.0.0.1 -p "$port" -m "$monitor" -js -sd "$work/nats" \
    >"$work/nats.log" 2>&1 &
pids+=($!)
# Ready when JetStream's monitoring endpoint answers.
for _ in $(seq 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$monitor/jsz', timeout=1)" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
cluster="nats://127.0.0.1:$port"
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
