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
if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo not found: install Rust (https://rustup.rs) and re-run" >&2
    exit 1
fi
