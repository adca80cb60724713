#!/usr/bin/env bash
# Installs ONNX Runtime's shared library project-locally, for the host's native
# ONNX inference (crate sluice-onnx loads it at run time; nothing links to it).
#
# Source: the PyPI wheel onnxruntime==$ORT_VERSION (pip can reach PyPI where
# ONNX Runtime's own download host may not be reachable). Only the shared
# library is taken out of the wheel; no Python package is installed.
#
# Result: .sluice/onnxruntime/lib/libonnxruntime.so.$ORT_VERSION and a symlink
# libonnxruntime.so next to it. Safe to run again: it does nothing when the
# library is already there. Linux only (the wheel's library name is Linux's).
set -euo pipefail

ORT_VERSION=1.32.0
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="$repo/.sluice/onnxruntime/lib"
lib="libonnxruntime.so.$ORT_VERSION"

if [[ -f "$dest/$lib" ]]; then
    ln -sfn "$lib" "$dest/libonnxruntime.so"
    echo "install-onnxruntime: ONNX Runtime $ORT_VERSION already installed at $dest/$lib"
    exit 0
fi

if [[ "$(uname -s)" != Linux ]]; then
    echo "install-onnxruntime: only Linux is supported; install ONNX Runtime $ORT_VERSION yourself" \
        "and set SLUICE_ONNXRUNTIME=/path/to/libonnxruntime" >&2
    exit 1
fi
if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
    echo "install-onnxruntime: python3 with pip is needed to fetch the onnxruntime wheel from PyPI" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# pip picks the wheel that matches this machine (Python version, architecture, glibc).
python3 -m pip download --quiet --disable-pip-version-check "onnxruntime==$ORT_VERSION" \
    --no-deps --only-binary=:all: -d "$tmp" >&2
wheel="$(ls "$tmp"/onnxruntime-"$ORT_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$wheel" ]]; then
    echo "install-onnxruntime: pip downloaded no onnxruntime $ORT_VERSION wheel for this machine" >&2
    exit 1
fi

mkdir -p "$dest"
python3 - "$wheel" "onnxruntime/capi/$lib" "$dest/$lib.partial" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
chmod 0755 "$dest/$lib.partial"
mv -f "$dest/$lib.partial" "$dest/$lib"
ln -sfn "$lib" "$dest/libonnxruntime.so"
echo "install-onnxruntime: installed ONNX Runtime $ORT_VERSION from $(basename "$wheel") into $dest"
