#!/usr/bin/env bash
# keel's demo on a fresh Debian 12 machine: install the packages, build keel, start a complete
# three-node tier on this machine with `keel up` (on every node: a MariaDB Galera node, keel's
# db-proxy, and a keel cache; the three caches form one replicated cluster), then
#   - write a row through node1's db-proxy and read it back through node3's,
#   - set cache keys on node1's cache (pylibmc, the client seahub uses) and read them on node3's,
# print where to connect, and stop the tier with `keel down`. KEEP=1 scripts/demo.sh leaves it
# running (stop it later with the `keel down --dir …` line it prints).
# Environment: KEEL_DEMO_DIR (default: a new /tmp/keel-demo.XXXXXX), BASE_PORT (default 17000).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then scripts/install-deps.sh >/tmp/keel-install.log 2>&1 || { cat /tmp/keel-install.log; exit 1; }; fi
cargo build --release -p keel
keel=$PWD/target/release/keel
dir=${KEEL_DEMO_DIR:-$(mktemp -d /tmp/keel-demo.XXXXXX)}
stop() {
    echo
    echo "== stopping the tier: keel down --dir $dir"
    "$keel" down --dir "$dir"
}
if [ "${KEEP:-0}" = 1 ]; then
    trap 'echo; echo "the tier keeps running (KEEP=1); stop it with: $keel down --dir $dir"' EXIT
else
    trap stop EXIT
fi
echo "== keel up --dir $dir"
"$keel" up --dir "$dir" --base-port "${BASE_PORT:-17000}"
echo
echo "== demo"
/usr/bin/python3 scripts/demo_tier.py "$keel" "$dir"
echo
echo "== keel status --dir $dir"
"$keel" status --dir "$dir"
