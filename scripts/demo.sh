#!/usr/bin/env bash
# keel's demo on a fresh Debian 12 machine: install the packages, build keel, start a cache
# server and talk to it with a real memcached client (pylibmc, the client seahub uses).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then scripts/install-deps.sh >/tmp/keel-install.log 2>&1 || { cat /tmp/keel-install.log; exit 1; }; fi
cargo build --release -p keel
dir=$(mktemp -d /tmp/keel-demo.XXXXXX)
target/release/keel cache -l 127.0.0.1 -p 0 --port-file "$dir/port" -m 64 >"$dir/cache.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.05; done
port=$(cat "$dir/port")
echo "keel cache is listening on 127.0.0.1:$port (pid $pid, log $dir/cache.log)"
/usr/bin/python3 scripts/demo_cache.py 127.0.0.1 "$port"
echo "stopping keel cache (SIGTERM)"
