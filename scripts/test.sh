#!/usr/bin/env bash
# One command, fresh machine: installs what the tests need, then runs every
# test. tests/build.rs builds the guest programs to wasm32-wasip2 first.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo test "$@"
