#!/usr/bin/env bash
# Measures what the cluster adds per mini-batch: N tiny mini-batches (one
# small file each, the `echo` test scorer, no output work to speak of) run
# in process and then through a local nats-server and W `sluice worker`
# processes, each alternately, R rounds. Prints each run's wall time and
# mini-batches/s, the CPU seconds the coordinator (`sluice run`), nats-server
# and the workers spent, and the medians: the coordinator's CPU per
# mini-batch is what bounds its commit rate on a box where it has a core of
# its own. Figures go to BENCHMARKS.md by hand.
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

source scripts/lib/servers.sh
servers_init
export SLUICE_DATA_DIR="$work/data"
mkdir -p "$work/in"
python3 - "$work/in" "$n" <<'PY'
import sys, os
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"f{i:06}.txt"), "w") as f:
        f.write(f"line {i}\n")
PY

start_nats
start_workers "$workers"
# Compile the scorer into the shared cache once, so no run pays for it.
"$sluice" compile "$scorer" --cache-dir "$work/cache" >/dev/null

run() { # $1 = local|cluster, $2 = round
    local extra=() before=() spent="" p
    [ "$1" = cluster ] && extra=(--cluster "$cluster" --set "resources.instance_count=$workers")
    for p in "${pids[@]}"; do before+=("$(proc_cpu "$p")"); done
    /usr/bin/time -f "%e %U %S" -o "$work/time" \
        "$sluice" run -q --scorer "$scorer" --input "$work/in" --output "$work/out-$1-$2.csv" \
        --mini-batch-size 1 --set max_concurrency_per_instance=1 --cache-dir "$work/cache" \
        --job-dir "$work/job-$1-$2" "${extra[@]}" >/dev/null
    if [ "$1" = cluster ]; then
        # What nats-server and the workers spent meanwhile.
        spent=$(python3 -c "b=[$(IFS=,; echo "${before[*]}")]; a=[$(for p in "${pids[@]}"; do printf '%s,' "$(proc_cpu "$p")"; done)]; print(f'; nats CPU {a[0]-b[0]:.2f} s, workers CPU {sum(a[1:])-sum(b[1:]):.2f} s')")
    fi
    read -r wall user sys <"$work/time"
    python3 -c "w=$wall; c=$user+$sys; print(f'$1 round $2: {w:.2f} s, {$n/w:.0f} mini-batches/s, {w*1000/$n:.3f} ms per mini-batch; coordinator CPU {c:.2f} s ({$n/c:.0f} mini-batches per CPU second)$spent')" | tee -a "$work/times"
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
    c = [float(r[r.index("CPU") + 1]) for r in rows if r[0] == kind]
    print(f"median {kind}: {statistics.median(w):.2f} s, coordinator CPU {statistics.median(c):.2f} s")
PY
