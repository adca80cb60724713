#!/usr/bin/env bash
# Measures what the cluster adds per mini-batch: N tiny mini-batches (one
# small file each, the `echo` test scorer, no output work to speak of) run
# in process and then through a local nats-server and W `sluice worker`
# processes, each alternately, R rounds. Prints each run's wall time and
# mini-batches/s, and the medians. Figures go to BENCHMARKS.md by hand.
#   usage: scripts/bench-cluster.sh [MINI_BATCHES=10000] [WORKERS=8] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
workers=${2:-8}
rounds=${3:-3}

./scripts/setup.sh >/dev/null
cargo build --release -p sluice-cli
cargo build --release --target wasm32-wasip2 -p sluice-test-programs --bin echo
sluice=$PWD/target/release/sluice
scorer=$PWD/target/wasm32-wasip2/release/echo.wasm

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

export SLUICE_DATA_DIR="$work/data"
mkdir -p "$work/in"
python3 - "$work/in" "$n" <<'PY'
import sys, os
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"f{i:06}.txt"), "w") as f:
        f.write(f"line {i}\n")
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
monitor=$(free_port)
.sluice/servers/bin/nats-server -a 127.0.0.1 -p "$port" -m "$monitor" -js -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$monitor/jsz', timeout=1)" 2>/dev/null && break
    sleep 0.1
done
cluster="nats://127.0.0.1:$port"
for i in $(seq "$workers"); do
    SLUICE_LOG=warn "$sluice" worker --cluster "$cluster" --name "w$i" --max-concurrency 1 \
        --cache-dir "$work/cache" >"$work/w$i.log" 2>&1 &
    pids+=($!)
done
# Compile the scorer into the shared cache once, so no run pays for it.
"$sluice" compile "$scorer" --cache-dir "$work/cache" >/dev/null

run() { # $1 = local|cluster, $2 = round
    local extra=()
    [ "$1" = cluster ] && extra=(--cluster "$cluster" --set "resources.instance_count=$workers")
    local t0 t1
    t0=$(date +%s.%N)
    "$sluice" run -q --scorer "$scorer" --input "$work/in" --output "$work/out-$1-$2.csv" \
        --mini-batch-size 1 --set max_concurrency_per_instance=1 --cache-dir "$work/cache" \
        --job-dir "$work/job-$1-$2" "${extra[@]}" >/dev/null
    t1=$(date +%s.%N)
    python3 -c "w=$t1-$t0; print(f'$1 round $2: {w:.2f} s, {$n/w:.0f} mini-batches/s, {w*1000/$n:.3f} ms per mini-batch')" | tee -a "$work/times"
}
echo "bench-cluster: $n mini-batches, $workers workers x 1 instance, $rounds rounds; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
    run local "$r"
    run cluster "$r"
    cmp -s "$work/out-local-$r.csv" "$work/out-cluster-$r.csv" || { echo "round $r: outputs differ"; exit 1; }
done
python3 - "$work/times" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
for kind in ("local", "cluster"):
    w = [float(r[3]) for r in rows if r[0] == kind]
    print(f"median {kind}: {statistics.median(w):.2f} s")
PY
