#!/usr/bin/env bash
# The tabular benchmarks' reference data: FILES CSV files of ROWS rows and the MLflow model
# (bench/tabular/make_data.py --pickle) in .sluice/bench/data-FILES-ROWS/, made only when missing or
# when the generator changed (a stamp holds its hash and arguments). Prints the folder on stdout.
# Used by scripts/bench-tabular.sh and scripts/bench-large-input.sh.
#
# Usage: scripts/bench-data.sh FILES ROWS
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: scripts/bench-data.sh FILES ROWS" >&2
    exit 2
fi
files=$1
rows=$2
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py=$(./scripts/python-env.sh --print-python)
data="$root/.sluice/bench/data-$files-$rows"
stamp="$data/.generated"
want="$(sha256sum bench/tabular/make_data.py | cut -d' ' -f1) -N $files -R $rows --pickle"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "bench-data: generating $files files x $rows rows into $data" >&2
    rm -f "$stamp"
    "$py" bench/tabular/make_data.py --out "$data" -N "$files" -R "$rows" --pickle >&2
    echo "$want" >"$stamp"
else
    echo "bench-data: data already in $data" >&2
fi
echo "$data"
