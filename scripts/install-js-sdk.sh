#!/usr/bin/env bash
# Installs (once) the JavaScript SDK's pinned build toolchain into
# sdk/js/node_modules with `npm ci` (exactly sdk/js/package-lock.json:
# componentize-js 0.23.0 and what it needs). The tests build JavaScript
# scorers with it; so can you:
#   node sdk/js/bin/sluice-js.mjs build score.js -o scorer.wasm
# Safe to run again: reinstalls only when sdk/js/package.json or
# package-lock.json change.
# Usage: scripts/install-js-sdk.sh   (progress goes to stderr)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sdk="$root/sdk/js"
stamp="$sdk/node_modules/.sluice-installed.sha256"

for arg in "$@"; do
    case "$arg" in
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        *) echo "install-js-sdk: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "install-js-sdk: node and npm not found; the JavaScript SDK needs Node.js 20 or newer (https://nodejs.org)" >&2
    exit 1
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    echo "install-js-sdk: Node.js $(node --version) is too old; the JavaScript SDK needs 20 or newer" >&2
    exit 1
fi

want="$(cat "$sdk/package.json" "$sdk/package-lock.json" | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    echo "install-js-sdk: installing sdk/js/package-lock.json into sdk/js/node_modules (npm ci)" >&2
    # npm ci starts from an empty node_modules and installs exactly the lock file.
    (cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" > "$stamp"
else
    echo "install-js-sdk: sdk/js/node_modules is up to date" >&2
fi
