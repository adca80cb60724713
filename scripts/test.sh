#!/usr/bin/env bash
# One command, fresh machine: installs what the tests need, checks the
# dependency policy, then runs every test (the fuzz corpus replay
# included). tests/build.rs builds the guest programs to wasm32-wasip2
# first.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
# The dependency policy (deny.toml). `advisories` is left out: it needs the
# RustSec database from GitHub, which these machines cannot reach.
.sluice/tools/bin/cargo-deny check --hide-inclusion-graph licenses bans sources
cargo test "$@"
