#!/usr/bin/env bash
# Installs cargo-deny project-locally (.sluice/tools/bin/cargo-deny), built
# from crates.io with its locked dependencies, for `cargo deny check
# licenses bans sources` in scripts/test.sh. Safe to run again: it does
# nothing when the pinned version is already there.
#
# Built from source because only package registries are reachable (no
# prebuilt release binaries): 141 crates, 6 min measured with one build job
# on a 2-core machine shared with other builds; once per machine.
set -euo pipefail

DENY_VERSION=0.20.2
repo="$(cd "$(dirname "$0")/.." && pwd)"
root="$repo/.sluice/tools"
bin="$root/bin/cargo-deny"

if [[ -x "$bin" ]] && [[ "$("$bin" --version 2>/dev/null)" == "cargo-deny $DENY_VERSION" ]]; then
    echo "install-cargo-deny: cargo-deny $DENY_VERSION already installed at $bin"
    exit 0
fi

echo "install-cargo-deny: building cargo-deny $DENY_VERSION (once; a few minutes)"
# A target folder of its own, outside the workspace's, removed afterwards:
# the tool's build artefacts are not the project's.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
CARGO_TARGET_DIR="$build" cargo install --locked --root "$root" "cargo-deny@$DENY_VERSION"
"$bin" --version
