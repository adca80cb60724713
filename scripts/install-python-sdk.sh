#!/usr/bin/env bash
# Creates (once) the project-local venv .sluice/py-sdk/venv with the Python
# SDK (sdk/python, installed editable: edits need no reinstall), its pinned
# build toolchain (sdk/python/requirements.txt: componentize-py) and the
# pinned model conversion tools (sdk/python/requirements-convert.txt:
# scikit-learn, skl2onnx, onnxmltools, onnxruntime...; ~450 MB).
# The tests build Python scorers and convert models with it; so can you:
#   .sluice/py-sdk/venv/bin/sluice-py build score.py -o scorer.wasm
#   .sluice/py-sdk/venv/bin/sluice-py convert-model ./my-mlflow-model
# Safe to run again: reinstalls only when the requirements or
# sdk/python/pyproject.toml change.
# Usage: scripts/install-python-sdk.sh [--print-python]   (progress goes to
# stderr; with --print-python stdout gets the venv's python path)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.sluice/py-sdk/venv"
req="$root/sdk/python/requirements.txt"
convert_req="$root/sdk/python/requirements-convert.txt"
project="$root/sdk/python/pyproject.toml"
stamp="$venv/.installed.sha256"
py="$venv/bin/python"

print=0
for arg in "$@"; do
    case "$arg" in
        --print-python) print=1 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        *) echo "install-python-sdk: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

if ! command -v python3 >/dev/null; then
    echo "install-python-sdk: python3 not found; the Python SDK needs Python 3.10 or newer" >&2
    exit 1
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "install-python-sdk: $(python3 --version) is too old; the Python SDK needs 3.10 or newer" >&2
    exit 1
fi

if [ ! -x "$py" ]; then
    echo "install-python-sdk: creating $venv" >&2
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" >&2
fi

want="$(cat "$req" "$convert_req" "$project" | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    echo "install-python-sdk: installing $req, $convert_req and sdk/python" >&2
    rm -f "$stamp"
    "$py" -m pip install --disable-pip-version-check -q -r "$req" -r "$convert_req" >&2
    # flit_core is pinned in requirements.txt, so no build isolation (and no
    # unpinned download) is needed for the editable install.
    "$py" -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps -e "$root/sdk/python" >&2
    echo "$want" > "$stamp"
else
    echo "install-python-sdk: $venv is up to date" >&2
fi

if [ "$print" = 1 ]; then
    echo "$py"
fi
