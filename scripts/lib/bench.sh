# Sourced by the benchmark scripts (bench-tabular.sh, bench-large-input.sh,
# bench-cluster-reference.sh, bench-languages.sh): the reference job's spec
# and reading /usr/bin/time -v reports.
#
#   tabular_job FILE NAME INPUT MODEL OUTPUT SIZE CONCURRENCY WASM [INSTANCES]
#       writes the tabular-classifier job (mltable INPUT, mlflow_model MODEL,
#       uri_file OUTPUT, mini_batch_size SIZE, max_concurrency_per_instance
#       CONCURRENCY, task.code WASM; resources.instance_count INSTANCES when
#       given) to FILE
#   wall_of REPORT / rss_of REPORT / cpu_of REPORT
#       wall seconds / peak RSS KiB / user+sys seconds of a `time -v` report
#   median      the median of the numbers on stdin

tabular_job() {
    local file=$1 name=$2 input=$3 model=$4 output=$5 size=$6 concurrency=$7 wasm=$8 instances=${9:-}
    {
        echo "# Written by scripts/$(basename "$0"): the tabular-classifier job."
        echo "type: parallel"
        echo "name: $name"
        echo "inputs:"
        echo "  measurements:"
        echo "    type: mltable"
        echo "    path: $input"
        echo "  model:"
        echo "    type: mlflow_model"
        echo "    path: $model"
        echo "outputs:"
        echo "  predictions:"
        echo "    type: uri_file"
        echo "    path: $output"
        echo 'input_data: ${{inputs.measurements}}'
        echo "mini_batch_size: \"$size\""
        echo "max_concurrency_per_instance: $concurrency"
        if [ -n "$instances" ]; then
            echo "resources:"
            echo "  instance_count: $instances"
        fi
        echo "task:"
        echo "  type: run_function"
        echo "  code: $wasm"
        echo '  append_row_to: ${{outputs.predictions}}'
        echo "  config:"
        echo "    model: model"
    } >"$file"
}

wall_of() { awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$1"; }
rss_of() { awk -F': ' '/Maximum resident set size/{print $2}' "$1"; }
cpu_of() { awk -F': ' '/User time|System time/{s+=$2} END{print s}' "$1"; }
median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
