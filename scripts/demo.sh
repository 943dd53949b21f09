#!/usr/bin/env bash
# keel's demo on a fresh Debian 12 machine: install the packages, build keel, start a complete
# three-node tier on this machine with `keel up` (on every node: a MariaDB Galera node, keel's
# db-proxy, and a keel cache; the three caches form one replicated cluster), then
#   - write a row through node1's db-proxy and read it back through node3's,
#   - set cache keys on node1's cache (pylibmc, the client seahub uses) and read them on node3's,
#   - Redis (Seafile 13): a key set on node1 read on node3, a task pushed on node1 popped on
#     node2, a message published on node1 received by a subscriber on node3,
# print where to connect, create Seafile's databases (`keel db init-seafile`), stop the tier with
# `keel down`, and END with the Seafile configuration for that tier (`keel seafile-config`: the
# seafile.conf / seafevents.conf / seahub_settings.py parts for node1, then Seafile 13's .env;
# the tier starts again with `keel up --dir …` and the same settings). KEEP=1 scripts/demo.sh leaves it running (stop it later
# with the `keel down --dir …` line it prints).
# Environment: KEEL_DEMO_DIR (default: a new /tmp/keel-demo.XXXXXX), BASE_PORT (default 17000),
# CARGO_TARGET_DIR (where cargo builds keel; default target/).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then scripts/install-deps.sh >/tmp/keel-install.log 2>&1 || { cat /tmp/keel-install.log; exit 1; }; fi
cargo build --release -p keel
keel=${CARGO_TARGET_DIR:-$PWD/target}/release/keel
if [ -n "${KEEL_DEMO_DIR:-}" ]; then
    dir=$KEEL_DEMO_DIR
else
    dir=$(mktemp -d /tmp/keel-demo.XXXXXX)
    chmod 755 "$dir" # mariadbd runs as mysql and must reach its node folder inside
fi
done=0
seafile_config() {
    echo
    echo "== Seafile's settings for node1 of this tier: keel seafile-config --dir $dir --node node1 --redact"
    "$keel" seafile-config --dir "$dir" --node node1 --redact
    echo
    echo "(node2 and node3: --node node2|node3, each pointing at its own proxy and cache; Seafile 11/12's"
    echo " memcached settings: add --cache memcached; without --redact the passwords are printed)"
    echo
    echo "== Seafile 13's .env for node1: keel seafile-config --dir $dir --node node1 --format env --redact"
    "$keel" seafile-config --dir "$dir" --node node1 --format env --redact
}
finish() {
    echo
    if [ "${KEEP:-0}" = 1 ]; then
        if [ "$done" = 1 ]; then seafile_config; fi
        echo "the tier keeps running (KEEP=1); stop it with: $keel down --dir $dir"
    else
        echo "== stopping the tier: keel down --dir $dir"
        "$keel" down --dir "$dir"
        if [ "$done" = 1 ]; then
            seafile_config
            echo "the tier is stopped; \`$keel up --dir $dir\` starts it again with these settings"
        fi
    fi
}
trap finish EXIT
echo "== keel up --dir $dir"
"$keel" up --dir "$dir" --base-port "${BASE_PORT:-17000}"
echo
echo "== demo"
/usr/bin/python3 scripts/demo_tier.py "$keel" "$dir"
echo
echo "== keel status --dir $dir"
"$keel" status --dir "$dir"
echo
echo "== keel db init-seafile --dir $dir   (Seafile's three databases, its user with exactly its grants)"
"$keel" db init-seafile --dir "$dir"
done=1
