#!/usr/bin/env bash
# The same scorer in Rust, Python and JavaScript, side by side: the reference tabular job
# (bench-tabular.sh's: FILES CSV files x ROWS rows, "10 files" mini-batches, 2 instances) with
# plugins/tabular-classifier, plugins/tabular-classifier-py/score.py and plugins/tabular-classifier-js/score.js,
# one process each per round (R P J R P J ...), then
#   - the first mini-batch: a 10-row job (1 instance), its run_s from job_result.json, which is
#     instantiate + init + one 10-row run();
#   - the Python edit loop: append a line to score.py, `sluice-py build`, `sluice run` of the
#     10-row job, with the compile cache (its per-function entries from the earlier compile) and
#     with --no-cache (a full compile, what every edit cost before the incremental cache).
# Prints medians; every output of the big job is compared byte for byte with Rust's.
# Figures go to BENCHMARKS.md by hand.
#   usage: scripts/bench-languages.sh [ROUNDS=3] [FILES=200] [ROWS=5000]
set -euo pipefail

ROUNDS=${1:-3}
FILES=${2:-200}
ROWS=${3:-5000}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/lib/bench.sh
say() { echo "bench-languages: $*" >&2; }
load_before=$(uptime)

./scripts/setup.sh >&2
data=$(./scripts/bench-data.sh "$FILES" "$ROWS")
say "building sluice and the Rust scorer (release)"
cargo build --release -q -p sluice-cli
cargo build --release -q --target wasm32-wasip2 -p tabular-classifier
sluice="$root/target/release/sluice"
work="$root/.sluice/bench/languages"
rm -rf "$work"
mkdir -p "$work/time" "$work/out" "$work/small"
export SLUICE_CACHE_DIR="$work/cache" SLUICE_DATA_DIR="$work/data"
py_build() { .sluice/py-sdk/venv/bin/sluice-py build "$1" -o "$2" --no-validate >&2; }
js_build() { node sdk/js/bin/sluice-js.mjs build "$1" -o "$2" --no-validate >&2; }
cp target/wasm32-wasip2/release/tabular_classifier.wasm "$work/rust.wasm"
say "building the Python and JavaScript scorers"
py_build plugins/tabular-classifier-py/score.py "$work/python.wasm"
js_build plugins/tabular-classifier-js/score.js "$work/js.wasm"
# 10 rows of the first file: the first-mini-batch job's input.
head -11 "$(ls "$data"/input/*.csv | head -1)" >"$work/small/part.csv"

langs=(rust python js)
for l in "${langs[@]}"; do
    tabular_job "$work/$l.yaml" "bench-lang-$l" "$data/input" "$data/model" "$work/out/$l.csv" "10 files" 2 "$work/$l.wasm"
    tabular_job "$work/$l-small.yaml" "bench-lang-$l-small" "$work/small" "$data/model" "$work/out/$l-small.csv" "10 rows" 1 "$work/$l.wasm"
    say "$l: compiling into the cache (untimed)"
    /usr/bin/time -f "%e s wall, %M KiB" "$sluice" compile "$work/$l.wasm" >&2
done

run() { # NAME I SPEC: one timed job
    rm -rf "$work/jobs/$1-$2"
    /usr/bin/time -v -o "$work/time/$1-$2.txt" "$sluice" run "$3" -q --job-dir "$work/jobs/$1-$2" >/dev/null
}
for i in $(seq "$ROUNDS"); do
    for l in "${langs[@]}"; do
        say "round $i/$ROUNDS: $l"
        run "$l" "$i" "$work/$l.yaml"
        cmp -s "$work/out/rust.csv" "$work/out/$l.csv" || { say "$l's output differs from Rust's"; exit 1; }
        run "$l-small" "$i" "$work/$l-small.yaml"
    done
done

# The Python edit loop: each round appends one line, builds, runs the small job.
edit="$work/edit"
mkdir -p "$edit"
cp plugins/tabular-classifier-py/score.py "$edit/score.py"
tabular_job "$edit/job.yaml" bench-lang-edit "$work/small" "$data/model" "$edit/out.csv" "10 rows" 1 "$edit/scorer.wasm"
loop() { # MODE I: build + run once; MODE is cache or no-cache
    echo "EDIT_${1/-/_}_$2 = $2" >>"$edit/score.py"
    local t0 t1 t2 flag=()
    [ "$1" = no-cache ] && flag=(--no-cache)
    t0=$(date +%s.%N)
    py_build "$edit/score.py" "$edit/scorer.wasm"
    t1=$(date +%s.%N)
    "$sluice" run "$edit/job.yaml" -q --job-dir "$work/jobs/edit-$1-$2" "${flag[@]}" >/dev/null
    t2=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN{printf "%.2f %.2f %.2f\n", b - a, c - b, c - a}' >>"$work/time/edit-$1.txt"
}
for i in $(seq "$ROUNDS"); do
    say "edit round $i/$ROUNDS"
    loop cache "$i"
    loop no-cache "$i"
done
load_after=$(uptime)

total=$((FILES * ROWS))
echo
echo "Rust, Python and JavaScript tabular-classifier: $FILES files x $ROWS rows, \"10 files\" mini-batches, 2 instances,"
echo "$ROUNDS rounds (R P J ...), medians. load before: $load_before"
echo "                                        load after:  $load_after"
printf "%-11s %9s %11s %9s %13s %8s %13s %13s\n" scorer "wall s" "rows/s" "vs Rust" "peak RSS MiB" "CPU s" "load+start" "10-row batch"
r_wall=$(for i in $(seq "$ROUNDS"); do wall_of "$work/time/rust-$i.txt"; done | median)
for l in "${langs[@]}"; do
    w=$(for i in $(seq "$ROUNDS"); do wall_of "$work/time/$l-$i.txt"; done | median)
    rss=$(for i in $(seq "$ROUNDS"); do rss_of "$work/time/$l-$i.txt"; done | median)
    cpu=$(for i in $(seq "$ROUNDS"); do cpu_of "$work/time/$l-$i.txt"; done | median)
    # load+start: compile_s (the compiled component from the cache) + run_s (instantiate, init and
    # the one 10-row mini-batch) of the 10-row job; 10-row batch: that mini-batch's own duration.
    start=$(for i in $(seq "$ROUNDS"); do
        python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["timings"]; print(t["compile_s"] + t["run_s"])' \
            "$work/jobs/$l-small-$i/job_result.json"
    done | median)
    batch=$(for i in $(seq "$ROUNDS"); do
        tail -1 "$work/jobs/$l-small-$i/processed_mini_batches.csv" | awk -F, '{print $NF}'
    done | median)
    printf "%-11s %9.2f %11.0f %8.2fx %13.1f %8.2f %10.0f ms %10.0f ms\n" "$l" "$w" "$(awk -v n=$total -v w="$w" 'BEGIN{print n / w}')" \
        "$(awk -v r="$r_wall" -v w="$w" 'BEGIN{print r / w}')" "$(awk -v k="$rss" 'BEGIN{print k / 1024}')" "$cpu" \
        "$(awk -v s="$start" 'BEGIN{print s * 1000}')" "$(awk -v s="$batch" 'BEGIN{print s * 1000}')"
done
echo "vs Rust = Rust's median wall / this one's (rows/s ratio). load+start = compile_s + run_s of a 10-row job"
echo "(the compiled component read from the cache, then instantiate, init and the one mini-batch); 10-row batch ="
echo "that mini-batch's duration (processed_mini_batches.csv). Outputs identical to Rust's."
echo
echo "Python edit loop (append a line to score.py, sluice-py build, sluice run of a 10-row job), medians of $ROUNDS:"
printf "%-28s %9s %9s %9s\n" "" "build s" "run s" "total s"
for m in cache no-cache; do
    b=$(awk '{print $1}' "$work/time/edit-$m.txt" | median)
    r=$(awk '{print $2}' "$work/time/edit-$m.txt" | median)
    t=$(awk '{print $3}' "$work/time/edit-$m.txt" | median)
    label="with the incremental cache"
    [ "$m" = no-cache ] && label="without (--no-cache)"
    printf "%-28s %9.2f %9.2f %9.2f\n" "$label" "$b" "$r" "$t"
done
