#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and prints, per
# target, the executions and findings; the import fuzzer first builds the
# guest programs (as tests/build.rs does). Findings are saved under
# fuzz/crashes/TARGET/. Exit status 1 when any target found something.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: spec tabular result imports
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(spec tabular result imports)
fi

./scripts/setup.sh >/dev/null
# The dev profile: dependencies are optimised there already (Cargo.toml),
# and it shares the test build instead of building wasmtime a second time.
cargo build -q -p sluice-fuzz
for t in "${targets[@]}"; do
    if [[ "$t" == imports ]]; then
        cargo build --release -q --target wasm32-wasip2 --target-dir target/guests -p sluice-test-programs
        break
    fi
done

status=0
summary=()
for t in "${targets[@]}"; do
    log="$(mktemp)"
    rc=0
    target/debug/sluice-fuzz "$t" --seconds "$seconds" 2>&1 | tee "$log" || rc=$?
    summary+=("$(grep -E "^$t: [0-9]+ (executions|jobs)" "$log" | tail -1 || echo "$t: exited $rc (see above)")")
    [[ $rc -eq 0 ]] || status=1
    rm -f "$log"
done
echo
echo "== fuzz summary (${seconds}s per target) =="
printf '%s\n' "${summary[@]}"
exit "$status"
