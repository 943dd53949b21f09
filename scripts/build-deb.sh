#!/usr/bin/env bash
# Build keel's Debian package (Debian 12, amd64) with cargo-deb:
#   /usr/bin/keel, keel-node.service, keel-db-proxy.service, /etc/default/keel{,-db-proxy},
#   bash/zsh/fish completions, docs.
# Usage: scripts/build-deb.sh [OUTPUT_DIR]      (default: target/debian)
# Prints the path of the .deb. Installs cargo-deb with `cargo install --locked` when missing.
# It never installs the package; check it with dpkg-deb -c / -I, or `dpkg -x FILE DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-}

if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb: installing cargo-deb" >&2
    cargo install cargo-deb --locked
fi

target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

cargo build --release -p keel
keel="$target_dir/release/keel"

# Completions from the binary itself (hidden `keel completions SHELL`), so they match it.
mkdir -p packaging/completions
"$keel" completions bash > packaging/completions/keel.bash
"$keel" completions zsh > packaging/completions/_keel
"$keel" completions fish > packaging/completions/keel.fish
[ -f docs/deploy.md ] || { echo "build-deb: docs/deploy.md is missing" >&2; exit 1; }

args=(-p keel --no-build)
if [ -n "$out" ]; then
    mkdir -p "$out"
    args+=(--output "$out")
fi
deb=$(cargo deb "${args[@]}" | tail -n 1)
echo "$deb"
