#!/usr/bin/env bash
# Creates (once) the Python venv .sluice/venv with bench/tabular/requirements.txt installed.
# Safe to run again: reinstalls only when requirements.txt changes.
# Usage: scripts/python-env.sh [--print-python]   (progress goes to stderr; stdout gets
# nothing, or with --print-python the venv's python path)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.sluice/venv"
req="$root/bench/tabular/requirements.txt"
stamp="$venv/.requirements.sha256"
py="$venv/bin/python"

print=0
for arg in "$@"; do
    case "$arg" in
        --print-python) print=1 ;;
        -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        *) echo "python-env: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

if [ ! -x "$py" ]; then
    echo "python-env: creating $venv" >&2
    mkdir -p "$root/.sluice"
    python3 -m venv "$venv" >&2
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    echo "python-env: installing $req" >&2
    rm -f "$stamp"
    "$py" -m pip install --disable-pip-version-check -q -r "$req" >&2
    echo "$want" > "$stamp"
else
    echo "python-env: $venv is up to date" >&2
fi

if [ "$print" = 1 ]; then
    echo "$py"
fi
