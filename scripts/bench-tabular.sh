#!/usr/bin/env bash
# Tabular scoring benchmark: sluice's tabular-classifier job against the native bound (the same work
# in plain Rust, bench/src/bin/tabular_bound.rs) and, when ../shared/peers is there, against the
# peer baselines (Azure-ML-style Python pool with ONNX Runtime or sklearn, and Ray Data).
# One command that does all its own set-up, then prints a table; see BENCHMARKS.md.
#
# Usage: scripts/bench-tabular.sh [--files N] [--rows R] [--runs K] [--files-per-batch M] [--no-peers]
#   --files N            input files (default 200; env FILES)
#   --rows R             rows per file (default 5000; env ROWS)
#   --runs K             timed runs per system (default 3; env RUNS)
#   --files-per-batch M  files per mini-batch, for sluice ("M files"), the bound and the peers
#                        (default 10; env FILES_PER_BATCH)
#   --no-peers           skip the Python/Ray peers (env NO_PEERS=1)
#
# What it does:
#   1. scripts/setup.sh (wasm32-wasip2 target, ONNX Runtime) and scripts/python-env.sh (.sluice/venv);
#   2. generates the data once (scripts/bench-data.sh: bench/tabular/make_data.py --pickle) into .sluice/bench/data-N-R/
#      (model/ = MLflow folder with model.onnx and model.pkl; input/ = N CSV files of R rows);
#   3. builds sluice, sluice-bench (tabular_bound) and the tabular-classifier scorer in release mode;
#   4. writes .sluice/bench/job-N-R.yaml (mltable input, mlflow_model input, "10 files" mini-batches,
#      2 instances) and runs it once untimed (fills the compiled-component cache), the bound once too;
#   5. K paired runs, bound then sluice (B S B S ...), each a whole process under /usr/bin/time -v
#      (wall clock, max RSS), sluice with a fresh --job-dir each run;
#   6. peers (unless --no-peers): a venv .sluice/peers-venv with ../shared/peers/requirements.txt,
#      then for each peer one untimed warm-up and K pairs (bound, peer);
#   7. prints median wall (min-max), rows/s, peak RSS and the ratios, then checks every output with
#      bench/tabular/check_outputs.py against the bound's (ids, predictions, probabilities, source_file).
# Outputs, timings and job folders stay under .sluice/bench/ (out/, time/, jobs/). Exits 1 if a run
# fails or an output check fails.
set -euo pipefail

FILES=${FILES:-200}
ROWS=${ROWS:-5000}
RUNS=${RUNS:-3}
NO_PEERS=${NO_PEERS:-0}
WORKERS=2
FILES_PER_BATCH=${FILES_PER_BATCH:-10}

while [ $# -gt 0 ]; do
    case "$1" in
        --files) FILES=$2; shift 2 ;;
        --rows) ROWS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --files-per-batch) FILES_PER_BATCH=$2; shift 2 ;;
        --no-peers) NO_PEERS=1; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-tabular: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/lib/bench.sh
say() { echo "bench-tabular: $*" >&2; }

say "load before: $(uptime)"
load_before=$(uptime)

# 1. set-up
./scripts/setup.sh >&2
py=$(./scripts/python-env.sh --print-python)

# 2. data (deterministic: regenerated only when missing or when the generator changed)
bench="$root/.sluice/bench"
data=$(./scripts/bench-data.sh "$FILES" "$ROWS")
input="$data/input"
model="$data/model"
total_rows=$((FILES * ROWS))

# 3. builds
say "building sluice, sluice-bench and the tabular-classifier scorer (release)"
cargo build --release -q -p sluice-cli -p sluice-bench
cargo build --release -q --target wasm32-wasip2 -p tabular-classifier
sluice="$root/target/release/sluice"
bound="$root/target/release/tabular_bound"
wasm="$root/target/wasm32-wasip2/release/tabular_classifier.wasm"

out="$bench/out"
tdir="$bench/time"
jobs="$bench/jobs"
mkdir -p "$out" "$tdir" "$jobs"
# nothing from an earlier run may be timed or checked again
rm -rf "$tdir"/*.txt "$tdir"/*.log "$jobs"/sluice-* "$out"/*.csv

# 4. the sluice job
job="$bench/job-$FILES-$ROWS-$FILES_PER_BATCH.yaml"
tabular_job "$job" "bench-tabular-$FILES-$ROWS" "$input" "$model" "$out/sluice.csv" "$FILES_PER_BATCH files" "$WORKERS" "$wasm"

bound_cmd=("$bound" "$input" "$model" "$out/bound.csv" --workers "$WORKERS" --files-per-batch "$FILES_PER_BATCH")

# run NAME I CMD...: runs CMD under /usr/bin/time -v; its output goes to $tdir/NAME-I.log
run() {
    local name=$1 i=$2
    shift 2
    if ! /usr/bin/time -v -o "$tdir/$name-$i.txt" "$@" >"$tdir/$name-$i.log" 2>&1; then
        say "$name run $i failed (exit status in $tdir/$name-$i.txt); its output:"
        tail -20 "$tdir/$name-$i.log" >&2
        exit 1
    fi
}
sluice_run() {
    local i=$1
    rm -rf "$jobs/sluice-$i"
    run sluice "$i" "$sluice" run "$job" -q --job-dir "$jobs/sluice-$i"
}
# stats NAME: "median min max medianRSS_KiB maxRSS_KiB medianCPU_s" over $tdir/NAME-[1-9]*.txt (the timed runs)
stats() {
    local walls=() rss=() cpu=() f
    for f in "$tdir/$1"-[1-9]*.txt; do
        walls+=("$(wall_of "$f")")
        rss+=("$(rss_of "$f")")
        cpu+=("$(cpu_of "$f")")
    done
    local w r c
    w=$(printf "%s\n" "${walls[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)], a[1], a[NR]}')
    r=$(printf "%s\n" "${rss[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)], a[NR]}')
    c=$(printf "%s\n" "${cpu[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    echo "$w $r $c"
}

say "warm-up: bound and sluice once, untimed (page cache, compiled-component cache)"
run bound w "${bound_cmd[@]}"
sluice_run w

# 5. paired runs
for i in $(seq "$RUNS"); do
    say "pair $i/$RUNS: bound, sluice"
    run bound "$i" "${bound_cmd[@]}"
    sluice_run "$i"
done

# 6. peers
peers_dir="$root/../shared/peers"
peers=()
if [ "$NO_PEERS" != 1 ] && [ -d "$peers_dir" ]; then
    pvenv="$root/.sluice/peers-venv"
    ppy="$pvenv/bin/python"
    pstamp="$pvenv/.requirements.sha256"
    if [ ! -x "$ppy" ]; then
        say "creating $pvenv"
        python3 -m venv "$pvenv" >&2
    fi
    pwant="$(sha256sum "$peers_dir/requirements.txt" | cut -d' ' -f1)"
    if [ "$(cat "$pstamp" 2>/dev/null || true)" != "$pwant" ]; then
        say "installing $peers_dir/requirements.txt into $pvenv (a minute or two)"
        rm -f "$pstamp"
        "$ppy" -m pip install --disable-pip-version-check -q -r "$peers_dir/requirements.txt" >&2
        echo "$pwant" >"$pstamp"
    fi
    export RAY_USAGE_STATS_ENABLED=0
    peer_cmd() {
        case "$1" in
            az_onnx) echo "$ppy $peers_dir/peer_azureml_style.py $input $model $out/az_onnx.csv --model onnx --workers $WORKERS --mini-batch-size $FILES_PER_BATCH" ;;
            az_sklearn) echo "$ppy $peers_dir/peer_azureml_style.py $input $model $out/az_sklearn.csv --model sklearn --workers $WORKERS --mini-batch-size $FILES_PER_BATCH" ;;
            ray) echo "$ppy $peers_dir/peer_ray_data.py $input $model $out/ray.csv --workers $WORKERS --mini-batch-size $FILES_PER_BATCH" ;;
        esac
    }
    for p in az_onnx az_sklearn ray; do
        read -r -a cmd <<<"$(peer_cmd "$p")"
        say "peer $p: warm-up, untimed"
        run "$p" w "${cmd[@]}"
        for i in $(seq "$RUNS"); do
            say "peer $p pair $i/$RUNS: bound, $p"
            run "bound_$p" "$i" "${bound_cmd[@]}"
            run "$p" "$i" "${cmd[@]}"
        done
        peers+=("$p")
    done
elif [ "$NO_PEERS" != 1 ]; then
    say "no peers at $peers_dir: skipping them"
fi

load_after=$(uptime)
say "load after: $load_after"

# 7. the table
rate() { awk -v n="$total_rows" -v w="$1" 'BEGIN{printf "%.0f", n / w}'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }
read -r b_med b_min b_max b_rss b_rss_max b_cpu <<<"$(stats bound)"
read -r s_med s_min s_max s_rss s_rss_max s_cpu <<<"$(stats sluice)"
s_rate=$(rate "$s_med")
# the median over pairs of bound wall / sluice wall (sluice's rows/s as a fraction of the bound's)
pair_ratio=$(for i in $(seq "$RUNS"); do
    awk -v b="$(wall_of "$tdir/bound-$i.txt")" -v s="$(wall_of "$tdir/sluice-$i.txt")" 'BEGIN{print b / s}'
done | sort -g | awk '{a[NR]=$1} END{printf "%.2f", a[int((NR+1)/2)]}')

echo
echo "Tabular scoring: $FILES files x $ROWS rows = $total_rows rows, $WORKERS workers, $FILES_PER_BATCH files per mini-batch, $RUNS paired runs, medians"
echo "load before: $load_before"
echo "load after:  $load_after"
row() { printf "%-22s %-24s %9s %7s %13s %12s %17s %11s\n" "$@"; }
walls() { awk -v m="$1" -v a="$2" -v b="$3" 'BEGIN{printf "%.2f (%.2f-%.2f)", m, a, b}'; }
row system "wall s: median (min-max)" "rows/s" "CPU s" "peak RSS MiB" "sluice/this" "paired bound r/s" "adj. ratio"
row "native bound (Rust)" "$(walls "$b_med" "$b_min" "$b_max")" "$(rate "$b_med")" "$b_cpu" "$(mib "$b_rss_max")" \
    "$(awk -v b="$b_med" -v s="$s_med" 'BEGIN{printf "%.2fx", b / s}')" "-" "${pair_ratio}x"
row "sluice (wasm scorer)" "$(walls "$s_med" "$s_min" "$s_max")" "$s_rate" "$s_cpu" "$(mib "$s_rss_max")" "1.00x" "-" "-"
for p in "${peers[@]}"; do
    read -r p_med p_min p_max p_rss p_rss_max p_cpu <<<"$(stats "$p")"
    read -r pb_med _ _ _ _ _ <<<"$(stats "bound_$p")"
    case $p in
        az_onnx) label="Azure-style, ONNX" ;;
        az_sklearn) label="Azure-style, sklearn" ;;
        ray) label="Ray Data" ;;
    esac
    row "$label" "$(walls "$p_med" "$p_min" "$p_max")" "$(rate "$p_med")" "$p_cpu" "$(mib "$p_rss_max")" \
        "$(awk -v p="$p_med" -v s="$s_med" 'BEGIN{printf "%.2fx", p / s}')" "$(rate "$pb_med")" \
        "$(awk -v r="$pair_ratio" -v pb="$pb_med" -v p="$p_med" 'BEGIN{printf "%.2fx", r * p / pb}')"
done
echo "sluice/this = sluice's median rows/s over this system's. Each system's runs were paired with bound runs"
echo "(B S B S..., B P B P...); the load can change between blocks, so 'adj. ratio' puts sluice and the peer on"
echo "the same footing: sluice/bound (median of per-pair ratios, target >= 0.85x) x bound/peer from the peer's pairs."
echo "peak RSS = max over the timed runs of /usr/bin/time -v's maximum resident set size (largest single process);"
echo "CPU s = median user+sys of the process and the children it waited for (Ray's daemons are not counted)"
sluice_timings=$("$py" - "$jobs"/sluice-[1-9]*/job_result.json <<'EOF'
import json, sys
rows = [json.load(open(p))["timings"] for p in sys.argv[1:]]
rows.sort(key=lambda t: t["total_s"])
t = rows[len(rows) // 2]
print(" ".join(f"{k}={t[k]:.3f}s" for k in ("plan_s", "compile_s", "run_s", "total_s")))
EOF
)
echo "sluice job_result.json timings (median run): $sluice_timings"

# output checks: the bound is the reference
echo
status=0
check=("$py" bench/tabular/check_outputs.py --input "$input" bound="$out/bound.csv" sluice="$out/sluice.csv")
for p in "${peers[@]}"; do
    check+=("$p=$out/$p.csv")
done
if "${check[@]}" >"$bench/check.json"; then
    echo "output check: ok ($bench/check.json)"
else
    echo "output check: FAILED ($bench/check.json)"
    status=1
fi
"$py" - "$bench/check.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
for name, o in r["outputs"].items():
    print(f"  {name:11s} rows {o['rows']:>9,}  every input id once: {o['every_input_id_once']}"
          f"  source_file right: {o.get('source_file_matches_input', '-')}  input order: {o['in_input_order']}")
for pair, c in r["against_reference"].items():
    if isinstance(c, str):
        print(f"  {pair}: {c}")
    else:
        print(f"  {pair}: predictions equal {c['predictions_equal']} ({c['differing_predictions']} differ),"
              f" max |prob diff| {c['max_abs_prob_diff']:.3g}, source_file equal {c['source_file_equal']}")
for f in r["failures"]:
    print(f"  FAILURE: {f}")
EOF
exit $status
