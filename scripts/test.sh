#!/usr/bin/env bash
# One command, fresh machine: installs what the tests need, builds the guest
# test programs (tests/build.rs does that) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo test --workspace --exclude sluice-sdk --exclude sluice-test-programs --exclude file-stats --exclude csv-validate "$@"
