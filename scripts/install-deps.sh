#!/usr/bin/env bash
# Install what keel's build, demo and tests need on Debian 12 (run as root).
# Used by scripts/demo.sh and .ci/run, so both stay true on a fresh machine.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    build-essential pkg-config ca-certificates curl \
    memcached libmemcached-tools python3 python3-pylibmc python3-pymemcache python3-memcache \
    python3-django python3-mysqldb \
    mariadb-server mariadb-client mariadb-backup galera-4 rsync socat haproxy sysbench \
    redis-server redis-tools python3-redis python3-hiredis libhiredis-dev python3-venv python3-pip
# Package installs may start the stock services; keel's tests use their own instances on free
# ports, so stop the stock ones (through their init scripts, never by process name).
service memcached stop >/dev/null 2>&1 || true
service mariadb stop >/dev/null 2>&1 || true
service haproxy stop >/dev/null 2>&1 || true
service redis-server stop >/dev/null 2>&1 || true
# redis-py as Seafile 13 pins it (6.2.x, RESP2) and the newest 8.x (RESP3 by default) with Django 5
# (seahub's RedisCache; Debian's python3-django 3.2 has none), for the Redis client tests. Each
# virtualenv is made once; a re-run only checks the installed versions.
keel_venv() { # dir, pip requirement(s)...
    local dir=$1
    shift
    if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import sys; from importlib.metadata import version; v = version('redis'); sys.exit(0 if v.startswith('$KEEL_VENV_REDIS') else 1)" 2>/dev/null; then
        return 0
    fi
    /usr/bin/python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@"
}
mkdir -p /opt/keel-py
KEEL_VENV_REDIS=6.2. keel_venv /opt/keel-py/redis6 'redis>=6.2,<6.3'
KEEL_VENV_REDIS=8. keel_venv /opt/keel-py/redis8 'redis>=8,<9' 'django>=5,<6'
if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo not found: install Rust (https://rustup.rs) and re-run" >&2
    exit 1
fi
