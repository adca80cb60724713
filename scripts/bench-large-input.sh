#!/usr/bin/env bash
# Large-input benchmark: peak memory of a tabular job must not grow with its input. Runs sluice's
# tabular-classifier job on the 1M-row reference data as ONE CSV file and on 10x the rows (10M rows,
# ~2.7 GB) in one CSV file, the same two as one Parquet file each, and plans a 1M-row and a 100M-row
# Parquet file; prints wall time and peak RSS side by side. One command that does its own set-up;
# figures in BENCHMARKS.md ("Inputs larger than memory"). Needs ~6 GB of free disk under .sluice/.
#
# Usage: scripts/bench-large-input.sh [--runs K] [--mini-batch-size SIZE] [--copies C]
#   --runs K               timed runs per input (default 1; env RUNS)
#   --mini-batch-size SIZE the job's mini_batch_size in rows (default 50000; env MINI_BATCH_SIZE)
#   --copies C             the large input holds C times the reference rows (default 10; env COPIES)
#
# What it does:
#   1. scripts/setup.sh, scripts/python-env.sh, and the reference data (scripts/bench-data.sh:
#      200 files x 5,000 rows, as scripts/bench-tabular.sh makes it) in .sluice/bench/data-200-5000/;
#   2. builds sluice, sluice-bench (large_input) and the tabular-classifier scorer (release);
#   3. with `large_input`: .sluice/bench/large/{1x,Cx}.csv (one header, ids renumbered), the same
#      rows as {1x,Cx}.parquet (row groups of 131,072 rows), and narrow-{1m,100m}.parquet (one int
#      column, 1M and 100M rows, row groups of 1M rows);
#   4. each input: one untimed warm-up at 1x, then K runs of `sluice run` (2 instances) under
#      /usr/bin/time -v, fresh job directory each; checks that the output has one row per input row;
#   5. `large_input plan` on every input (planning alone: mini-batches, seconds, peak RSS), and on
#      the 100M-row file with 100x larger mini-batches (as many mini-batches as the 1M-row plan);
#   6. prints the table and whether the Cx runs stayed within 10% of the 1x runs' peak RSS and the
#      100M-row plan (same mini-batch count) within 10% of the 1M-row plan's (exit status 1 if not).
set -euo pipefail

RUNS=${RUNS:-1}
MINI_BATCH_SIZE=${MINI_BATCH_SIZE:-50000}
COPIES=${COPIES:-10}
WORKERS=2

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --mini-batch-size) MINI_BATCH_SIZE=$2; shift 2 ;;
        --copies) COPIES=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-large-input: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/lib/bench.sh
say() { echo "bench-large-input: $*" >&2; }
load_before=$(uptime)
say "load before: $load_before"

# 1. set-up and the reference data (scripts/bench-data.sh, as scripts/bench-tabular.sh makes it)
./scripts/setup.sh >&2
py=$(./scripts/python-env.sh --print-python)
bench="$root/.sluice/bench"
data=$(./scripts/bench-data.sh 200 5000)
model="$data/model"

# 2. builds
say "building sluice, sluice-bench and the tabular-classifier scorer (release)"
cargo build --release -q -p sluice-cli -p sluice-bench
cargo build --release -q --target wasm32-wasip2 -p tabular-classifier
sluice="$root/target/release/sluice"
tool="$root/target/release/large_input"
wasm="$root/target/wasm32-wasip2/release/tabular_classifier.wasm"

# 3. inputs (made once; `large_input` is deterministic)
big="$bench/large"
mkdir -p "$big"
make_input() { # make FILE CMD...: runs CMD unless FILE is there (written under a temporary name first)
    local file=$1
    shift
    if [ ! -s "$file" ]; then
        say "making $file"
        "$@" "$file.tmp"
        mv "$file.tmp" "$file"
    fi
}
make_input "$big/1x.csv" "$tool" csv "$data/input" --copies 1
make_input "$big/${COPIES}x.csv" "$tool" csv "$data/input" --copies "$COPIES"
make_input "$big/1x.parquet" "$tool" parquet "$big/1x.csv"
make_input "$big/${COPIES}x.parquet" "$tool" parquet "$big/${COPIES}x.csv"
make_input "$big/narrow-1m.parquet" "$tool" narrow-parquet --rows 1000000
make_input "$big/narrow-100m.parquet" "$tool" narrow-parquet --rows 100000000

out="$bench/large-out"
tdir="$bench/large-time"
jobs="$bench/large-jobs"
mkdir -p "$out" "$tdir" "$jobs"
rm -rf "$tdir"/* "$jobs"/* "$out"/*

# job NAME INPUT: the tabular-classifier job over one input file
job() {
    tabular_job "$bench/large-$1.yaml" "bench-large-$1" "$2" "$model" "$out/$1.csv" "$MINI_BATCH_SIZE" "$WORKERS" "$wasm"
    echo "$bench/large-$1.yaml"
}


# 4. runs
names=("csv-1x" "csv-${COPIES}x" "parquet-1x" "parquet-${COPIES}x")
inputs=("$big/1x.csv" "$big/${COPIES}x.csv" "$big/1x.parquet" "$big/${COPIES}x.parquet")
ref_rows=$(($(wc -l <"$big/1x.csv") - 1))
say "warm-up run (compiled-component cache, page cache of the 1x input)"
"$sluice" run "$(job warm "${inputs[0]}")" -q --job-dir "$jobs/warm" >/dev/null
for k in 0 1 2 3; do
    name=${names[$k]}
    spec=$(job "$name" "${inputs[$k]}")
    for i in $(seq "$RUNS"); do
        say "$name run $i/$RUNS"
        rm -rf "$jobs/$name-$i" "$out/$name.csv"
        if ! /usr/bin/time -v -o "$tdir/$name-$i.txt" "$sluice" run "$spec" -q --job-dir "$jobs/$name-$i" \
            >"$tdir/$name-$i.log" 2>&1; then
            say "$name run $i failed; its output:"
            tail -20 "$tdir/$name-$i.log" >&2
            exit 1
        fi
    done
    want_rows=$ref_rows
    case "$name" in *"${COPIES}x") want_rows=$((ref_rows * COPIES)) ;; esac
    got_rows=$(($(wc -l <"$out/$name.csv") - 1))
    if [ "$got_rows" != "$want_rows" ]; then
        say "$name: the output has $got_rows rows, the input $want_rows"
        exit 1
    fi
done

# 5. planning alone
# narrow-100m-same: the 100M-row file cut into as many mini-batches as the 1M-row one (mini-batches
# 100x larger), so what is compared is memory per row, not per mini-batch (planning keeps one entry per
# mini-batch by design).
plan_names=("csv-1x" "csv-${COPIES}x" "parquet-1x" "parquet-${COPIES}x" "narrow-1m" "narrow-100m" "narrow-100m-same")
plan_inputs=("${inputs[@]}" "$big/narrow-1m.parquet" "$big/narrow-100m.parquet" "$big/narrow-100m.parquet")
plan_sizes=("$MINI_BATCH_SIZE" "$MINI_BATCH_SIZE" "$MINI_BATCH_SIZE" "$MINI_BATCH_SIZE" "$MINI_BATCH_SIZE" \
    "$MINI_BATCH_SIZE" "$((MINI_BATCH_SIZE * 100))")
for k in "${!plan_names[@]}"; do
    "$tool" plan "${plan_inputs[$k]}" --mini-batch-size "${plan_sizes[$k]}" >"$tdir/plan-${plan_names[$k]}.json"
done
json_of() { "$py" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }

# 6. report
ok=1
echo
echo "load before: $load_before"
echo "load after:  $(uptime)"
echo "mini_batch_size \"$MINI_BATCH_SIZE\", $WORKERS instances, $RUNS run(s) each (medians)"
echo
printf "%-14s %12s %14s %10s %14s %12s\n" input rows "input MiB" "wall s" "peak RSS MiB" "vs 1x RSS"
for k in 0 1 2 3; do
    name=${names[$k]}
    wall=$(for f in "$tdir/$name"-*.txt; do wall_of "$f"; done | median)
    rss=$(for f in "$tdir/$name"-*.txt; do rss_of "$f"; done | median)
    size=$(($(stat -c %s "${inputs[$k]}") >> 20))
    rows=$ref_rows
    case "$name" in *"${COPIES}x") rows=$((ref_rows * COPIES)) ;; esac
    base=${names[$((k - k % 2))]}
    base_rss=$(for f in "$tdir/$base"-*.txt; do rss_of "$f"; done | median)
    ratio=$(awk -v a="$rss" -v b="$base_rss" 'BEGIN{printf "%.2f", a/b}')
    printf "%-14s %12s %14s %10s %14.1f %12s\n" "$name" "$rows" "$size" "$wall" "$(awk -v r="$rss" 'BEGIN{print r/1024}')" "${ratio}x"
    if awk -v r="$ratio" 'BEGIN{exit !(r > 1.10)}'; then ok=0; fi
done
echo
printf "%-14s %12s %14s %10s %14s\n" "plan only" rows "mini-batches" "seconds" "peak RSS MiB"
for k in "${!plan_names[@]}"; do
    f="$tdir/plan-${plan_names[$k]}.json"
    printf "%-14s %12s %14s %10s %14.1f\n" "${plan_names[$k]}" "$(json_of "$f" rows)" "$(json_of "$f" mini_batches)" \
        "$(json_of "$f" seconds)" "$(awk -v r="$(json_of "$f" peak_rss_kib)" 'BEGIN{print r/1024}')"
done
small=$(json_of "$tdir/plan-narrow-1m.json" peak_rss_kib)
large=$(json_of "$tdir/plan-narrow-100m-same.json" peak_rss_kib)
if awk -v a="$large" -v b="$small" 'BEGIN{exit !(a > 1.10 * b)}'; then ok=0; fi
echo
if [ "$ok" = 1 ]; then
    echo "peak RSS stays within 10% of the 1x input's (runs) and of the 1M-row plan's (planning)"
else
    echo "FAIL: peak RSS grows with the input (over 10% above the 1x input's or the 1M-row plan's)"
    exit 1
fi
