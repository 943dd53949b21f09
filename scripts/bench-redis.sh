#!/usr/bin/env bash
# keel's Redis protocol against Debian's redis-server 7.0.15, side by side in one run, with
# redis-benchmark (Debian's redis-tools): SET GET INCR LPUSH RPOP at pipeline 1 and 16, 50 clients,
# 100-byte values; ops/s, server CPU per operation (utime+stime of the server process from
# /proc/<pid>/stat before/after, divided by the requests), and RSS after 1,000,000 string keys of
# 100 bytes (loaded with redis-cli --pipe, VmRSS from /proc/<pid>/status).
#
# Usage: scripts/bench-redis.sh
# Environment:
#   KEEL_BIN=path          keel binary (default target/release/keel, built if missing)
#   KEEL_THREADS=N         keel's -t (default 2: the machine's cores)
#   BENCH_N1=N BENCH_N16=N requests per test at pipeline 1 / 16 (default 200000 / 1000000)
#   BENCH_KEYS=N           keys for the RSS figure (default 1000000)
#   KEEL_BENCH_SELF_CHECK=1 run redis-server on both sides (to check this script before keel
#                          speaks Redis; the "keel" column is then a second redis-server)
# Everything listens on 127.0.0.1 only; the script kills only the processes it started.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEEL_BIN=${KEEL_BIN:-$ROOT/target/release/keel}
KEEL_THREADS=${KEEL_THREADS:-2}
N1=${BENCH_N1:-200000}
N16=${BENCH_N16:-1000000}
KEYS=${BENCH_KEYS:-1000000}
SELF_CHECK=${KEEL_BENCH_SELF_CHECK:-0}
TESTS="SET GET INCR LPUSH RPOP"
PY=/usr/bin/python3

for tool in redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "bench-redis: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ "$SELF_CHECK" != 1 ] && [ ! -x "$KEEL_BIN" ]; then
    echo "bench-redis: building keel (release)" >&2
    (cd "$ROOT" && cargo build --release -p keel)
fi

TMP=$(mktemp -d /tmp/keel-bench-redis.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ping() { # port
    for _ in $(seq 1 200); do
        if [ "$(redis-cli -h 127.0.0.1 -p "$1" PING 2>/dev/null)" = PONG ]; then
            return 0
        fi
        sleep 0.05
    done
    echo "bench-redis: nothing answers PING on port $1" >&2
    return 1
}

start_redis_server() { # name -> sets PORT, PID
    local name=$1
    for _ in 1 2 3 4; do
        PORT=$(free_port)
        redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
            --logfile "$TMP/$name.log" --dir "$TMP" &
        PID=$!
        PIDS+=("$PID")
        if wait_ping "$PORT"; then
            return 0
        fi
        kill "$PID" 2>/dev/null || true
    done
    echo "bench-redis: redis-server did not start; log:" >&2
    tail -20 "$TMP/$name.log" >&2
    exit 1
}

start_keel() { # -> sets PORT, PID
    "$KEEL_BIN" cache -l 127.0.0.1 -U 0 -p 0 --port-file "$TMP/keel-mc.port" \
        --redis-port 0 --redis-port-file "$TMP/keel-redis.port" -m 2048 -t "$KEEL_THREADS" \
        >"$TMP/keel.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 200); do
        [ -s "$TMP/keel-redis.port" ] && break
        kill -0 "$PID" 2>/dev/null || { echo "bench-redis: keel exited:" >&2; tail -20 "$TMP/keel.log" >&2; exit 1; }
        sleep 0.05
    done
    PORT=$(cat "$TMP/keel-redis.port" 2>/dev/null || true)
    [ -n "$PORT" ] || { echo "bench-redis: keel wrote no Redis port; log:" >&2; tail -20 "$TMP/keel.log" >&2; exit 1; }
    wait_ping "$PORT"
}

cpu_ticks() { # pid -> utime+stime in clock ticks
    # fields after the ")" of comm: state is field 3, utime 14, stime 15
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

start_redis_server redis
R_PORT=$PORT R_PID=$PID
if [ "$SELF_CHECK" = 1 ]; then
    start_redis_server redis-b
    K_NAME="redis-server (self-check)"
else
    start_keel
    K_NAME="keel"
fi
K_PORT=$PORT K_PID=$PID

declare -A OPS CPU
bench() { # side port pid test pipeline requests
    local side=$1 port=$2 pid=$3 t=$4 p=$5 n=$6 before after line rps
    redis-cli -h 127.0.0.1 -p "$port" FLUSHALL >/dev/null
    before=$(cpu_ticks "$pid")
    line=$(redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$n" -d 100 -P "$p" -r 100000 \
        -t "$t" --csv | grep -v '^"test"' | tail -1)
    after=$(cpu_ticks "$pid")
    rps=$(echo "$line" | cut -d, -f2 | tr -d '"')
    OPS[$side,$t,$p]=$(printf '%.0f' "$rps")
    # microseconds of server CPU per request
    CPU[$side,$t,$p]=$(awk -v d=$((after - before)) -v hz="$HZ" -v n="$n" 'BEGIN{printf "%.2f", d / hz * 1e6 / n}')
}

echo "bench-redis: redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on port $R_PORT (pid $R_PID), $K_NAME on port $K_PORT (pid $K_PID, -t $KEEL_THREADS)" >&2
for p in 1 16; do
    n=$N1
    [ "$p" = 16 ] && n=$N16
    for t in $TESTS; do
        echo "bench-redis: $t -P $p ($n requests)..." >&2
        bench redis "$R_PORT" "$R_PID" "$t" "$p" "$n"
        bench keel "$K_PORT" "$K_PID" "$t" "$p" "$n"
    done
done

load_keys() { # port
    redis-cli -h 127.0.0.1 -p "$1" FLUSHALL >/dev/null
    "$PY" - "$KEYS" <<'EOF' | redis-cli -h 127.0.0.1 -p "$1" --pipe >"$TMP/load.out" 2>&1
import sys
n = int(sys.argv[1])
value = b"v" * 100
out = sys.stdout.buffer
chunk = []
for i in range(n):
    key = b"key:%012d" % i
    chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(key), key, value))
    if len(chunk) == 10000:
        out.write(b"".join(chunk))
        chunk = []
out.write(b"".join(chunk))
EOF
    grep -q "errors: 0, replies: $KEYS" "$TMP/load.out" || { echo "bench-redis: load failed:" >&2; cat "$TMP/load.out" >&2; exit 1; }
    local dbsize
    dbsize=$(redis-cli -h 127.0.0.1 -p "$1" DBSIZE)
    [ "$dbsize" = "$KEYS" ] || { echo "bench-redis: DBSIZE $dbsize after loading $KEYS keys" >&2; exit 1; }
}
echo "bench-redis: loading $KEYS keys of 100 bytes into each..." >&2
R_RSS0=$(rss_kib "$R_PID")
K_RSS0=$(rss_kib "$K_PID")
load_keys "$R_PORT"
load_keys "$K_PORT"
sleep 1
R_RSS=$(rss_kib "$R_PID")
K_RSS=$(rss_kib "$K_PID")

printf '\nkeel column: %s\n' "$K_NAME"
printf '%-6s %-3s | %14s %14s %7s | %12s %12s\n' test -P "redis ops/s" "keel ops/s" ratio "redis us/op" "keel us/op"
printf -- '-------------------------------------------------------------------------------------\n'
for p in 1 16; do
    for t in $TESTS; do
        r=${OPS[redis,$t,$p]} k=${OPS[keel,$t,$p]}
        printf '%-6s %-3s | %14s %14s %7s | %12s %12s\n' "$t" "$p" "$r" "$k" \
            "$(awk -v a="$k" -v b="$r" 'BEGIN{printf "%.2f", b ? a / b : 0}')" \
            "${CPU[redis,$t,$p]}" "${CPU[keel,$t,$p]}"
    done
done
printf '\nRSS after %s keys of 100 bytes (KiB): redis-server %s (before loading %s), keel %s (before loading %s), ratio %s\n' \
    "$KEYS" "$R_RSS" "$R_RSS0" "$K_RSS" "$K_RSS0" \
    "$(awk -v a="$K_RSS" -v b="$R_RSS" 'BEGIN{printf "%.2f", a / b}')"
echo "50 clients, 100-byte values, -r 100000; redis-benchmark $(redis-benchmark --version 2>/dev/null | awk '{print $2}'); $(nproc) cores"
