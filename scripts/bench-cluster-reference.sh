#!/usr/bin/env bash
# The reference tabular job (scripts/bench-tabular.sh's: 200 CSV files x
# 5,000 rows, the tabular-classifier scorer, "10 files" mini-batches) on
# one node with local files against the same job on a local cluster: a
# nats-server, W `sluice worker` processes x 1 instance, input and output
# on a local S3 server (SeaweedFS). Paired rounds (local, cluster, ...);
# prints each run's wall time, rows/s and the CPU seconds of every process
# that took part, then the medians and the cluster/local rows/s ratio. The
# cluster's output is downloaded and compared byte for byte with the local
# one every round. Figures go to BENCHMARKS.md by hand.
#   usage: scripts/bench-cluster-reference.sh [ROUNDS=3] [WORKERS=2] [FILES=200] [ROWS=5000]
#   CLUSTER_INPUT=local / CLUSTER_OUTPUT=local: the cluster job reads / writes
#   the local folder instead of S3 (a path every node mounts), to tell the
#   storage's share from the cluster's.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
workers=${2:-2}
files=${3:-200}
rows=${4:-5000}

./scripts/setup.sh >/dev/null
data=$(./scripts/bench-data.sh "$files" "$rows")
cargo build --release -q -p sluice-cli
cargo build --release -q --target wasm32-wasip2 -p tabular-classifier
sluice=$PWD/target/release/sluice
wasm=$PWD/target/wasm32-wasip2/release/tabular_classifier.wasm

source scripts/lib/servers.sh
source scripts/lib/bench.sh
servers_init
export SLUICE_DATA_DIR="$work/data"
start_nats
start_s3 bench
echo "bench-cluster-reference: uploading $files files to s3://bench/input/"
for f in "$data"/input/*.csv; do s3_put "$f" "input/$(basename "$f")"; done

# job NAME INPUT OUTPUT CONCURRENCY: the job file, as bench-tabular.sh writes it.
job() {
    tabular_job "$work/$1.yaml" "bench-reference-$1" "$2" "$data/model" "$3" "10 files" "$4" "$wasm" "$5"
}
job local "$data/input" "$work/local.csv" 2 1
cluster_in=s3://bench/input
cluster_out=s3://bench/out/cluster.csv
[ "${CLUSTER_INPUT:-s3}" = local ] && cluster_in=$data/input
[ "${CLUSTER_OUTPUT:-s3}" = local ] && cluster_out=$work/cluster.csv
job cluster "$cluster_in" "$cluster_out" 1 "$workers"

start_workers "$workers"
# Compile the scorer into the shared cache once, so no run pays for it.
"$sluice" compile "$wasm" --cache-dir "$work/cache" >/dev/null



others() { # the pids of the servers and workers, with their names
    echo "nats ${pids[0]}"
    echo "s3 ${kill_pids[0]}"
    for i in $(seq "$workers"); do echo "w$i ${pids[$i]}"; done
}
run() { # $1 = local|cluster, $2 = round (w = warm-up, untimed)
    local extra=() before=() n p
    [ "$1" = cluster ] && extra=(--cluster "$cluster")
    while read -r n p; do before+=("$n=$(proc_cpu "$p")"); done < <(others)
    rm -rf "$work/job-$1-$2"
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
        "$sluice" run -q "$work/$1.yaml" --cache-dir "$work/cache" --job-dir "$work/job-$1-$2" "${extra[@]}" \
        >"$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
    local spent=""
    if [ "$1" = cluster ]; then
        for b in "${before[@]}"; do
            n=${b%%=*}
            p=$(others | awk -v n="$n" '$1 == n {print $2}')
            spent+=" $n $(python3 -c "print(f'{$(proc_cpu "$p") - ${b#*=}:.2f}')")"
        done
        [ "$cluster_out" = "$work/cluster.csv" ] || s3_get out/cluster.csv "$work/cluster.csv"
        cmp -s "$work/local.csv" "$work/cluster.csv" || { echo "round $2: the cluster's output differs"; exit 1; }
    fi
    [ "$2" = w ] && return
    read -r wall user sys rss <"$work/time"
    python3 -c "w=$wall; print(f'$1 round $2: {w:.2f} s, {$files*$rows/w:,.0f} rows/s, coordinator CPU {$user+$sys:.2f} s, RSS {$rss/1024:.0f} MiB;$spent')" |
        tee -a "$work/times"
}
echo "bench-cluster-reference: $((files * rows)) rows, $workers workers x 1 instance over nats, from $cluster_in to $cluster_out;" \
    "local: 1 process x 2 instances, local files; $rounds rounds; load: $(cut -d' ' -f1-3 /proc/loadavg)"
run local w
run cluster w
for r in $(seq "$rounds"); do
    run local "$r"
    run cluster "$r"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/times" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
m = {k: statistics.median(float(r[3]) for r in rows if r[0] == k) for k in ("local", "cluster")}
ratios = [float(a[3]) / float(b[3]) for a, b in zip(
    [r for r in rows if r[0] == "local"], [r for r in rows if r[0] == "cluster"])]
print(f"median local: {m['local']:.2f} s, median cluster: {m['cluster']:.2f} s; "
      f"cluster rows/s = {m['local'] / m['cluster']:.2f}x local (per-pair median {statistics.median(ratios):.2f}x)")
PY
