#!/usr/bin/env bash
# keel's Redis protocol against Debian's redis-server 7.0.15, side by side in one run, with
# redis-benchmark (Debian's redis-tools): SET GET INCR LPUSH RPOP at pipeline 1 and 16, 50 clients,
# 100-byte values; ops/s, server CPU per operation (utime+stime of the server process from
# /proc/<pid>/stat before/after, divided by the requests), and RSS after 1,000,000 string keys of
# 100 bytes (loaded with redis-cli --pipe, VmRSS from /proc/<pid>/status).
#
# `cluster` mode: three keel nodes (`--cluster-id`, Raft on loopback) against one standalone keel
# with the same -t, and redis-server with one replica (`--replicaof`), in one run:
#   1. replicated writes (SET INCR LPUSH) and linearizable reads (GET), P1 and P16, 50 clients, on
#      the Raft leader and on a follower, as a ratio to standalone  [writes >= 0.5x, reads >= 0.8x];
#      redis-server: writes on the master, GET on the replica
#   2. cross-node BRPOP wake-up (consumer on one follower, LPUSH on the other; from sending the
#      LPUSH to BRPOP's reply) and pub/sub delivery (subscriber on one node, publisher on another),
#      p50/p99 [p99 <= 2 ms]; the same on standalone keel and redis-server (pub/sub also master ->
#      replica)
#   3. kill -9 of the leader -> first acknowledged SET of a client on a follower [<= 1 s], 3 times,
#      restarting the killed node (PING, `keel_cluster_ready:1`) between runs
# The probes are scripts/bench_redis_cluster.py (python3, plain sockets).
#
# Usage: scripts/bench-redis.sh [standalone|cluster|all]   (default standalone)
# Environment:
#   KEEL_BIN=path          keel binary (default target/release/keel, built if missing)
#   KEEL_THREADS=N         keel's -t (default 2: the machine's cores)
#   BENCH_N1=N BENCH_N16=N requests per test at pipeline 1 / 16 (default 200000 / 1000000)
#   BENCH_KEYS=N           keys for the RSS figure (default 1000000)
#   KEEL_CLUSTER_THREADS=N -t of each cluster node and of the standalone keel it is compared with
#                          in cluster mode (default 1)
#   BENCH_LAT_N=N          samples per latency probe in cluster mode (default 2000)
#   KEEL_READY_TIMEOUT=S   cluster mode: most seconds for a (re)started node to be ready (default 60)
#   KEEL_BENCH_SELF_CHECK=1 run redis-server on both sides (to check this script before keel
#                          speaks Redis; the "keel" column is then a second redis-server)
# Everything listens on 127.0.0.1 only; the script kills only the processes it started. Exit status
# 1 also when a restarted cluster node does not rejoin (its INFO and the nodes' logs are kept).
set -euo pipefail

MODE=${1:-standalone}
case $MODE in
standalone | cluster | all) ;;
*)
    echo "usage: $0 [standalone|cluster|all]" >&2
    exit 2
    ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEEL_BIN=${KEEL_BIN:-$ROOT/target/release/keel}
KEEL_THREADS=${KEEL_THREADS:-2}
N1=${BENCH_N1:-200000}
N16=${BENCH_N16:-1000000}
KEYS=${BENCH_KEYS:-1000000}
SELF_CHECK=${KEEL_BENCH_SELF_CHECK:-0}
CLUSTER_T=${KEEL_CLUSTER_THREADS:-1}
LAT_N=${BENCH_LAT_N:-2000}
READY_S=${KEEL_READY_TIMEOUT:-60}
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

start_redis_server() { # name [redis-server args...] -> sets PORT, PID
    local name=$1
    shift
    mkdir -p "$TMP/$name"
    for _ in 1 2 3 4; do
        PORT=$(free_port)
        redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
            --logfile "$TMP/$name.log" --dir "$TMP/$name" "$@" &
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

start_keel() { # name redis-port threads [keel cache args...] -> sets PORT, PID
    local name=$1 rport=$2 threads=$3
    shift 3
    rm -f "$TMP/$name.redis.port"
    "$KEEL_BIN" cache -l 127.0.0.1 -U 0 -p 0 --port-file "$TMP/$name.mc.port" \
        --redis-port "$rport" --redis-port-file "$TMP/$name.redis.port" -m 2048 -t "$threads" "$@" \
        </dev/null >>"$TMP/$name.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    local deadline=$((SECONDS + 20))
    while [ ! -s "$TMP/$name.redis.port" ]; do
        kill -0 "$PID" 2>/dev/null || { echo "bench-redis: $name exited:" >&2; tail -20 "$TMP/$name.log" >&2; exit 1; }
        [ "$SECONDS" -lt "$deadline" ] || { echo "bench-redis: $name wrote no Redis port; log:" >&2; tail -20 "$TMP/$name.log" >&2; exit 1; }
        sleep 0.05
    done
    PORT=$(cat "$TMP/$name.redis.port")
    wait_ping "$PORT"
}

stop_pid() { # pid: SIGTERM, reap, drop from the cleanup list
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget_pid "$1"
}

cpu_ticks() { # pid -> utime+stime in clock ticks
    # fields after the ")" of comm: state is field 3, utime 14, stime 15
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

declare -A OPS CPU
bench() { # side port pid test pipeline requests [flush: 1 (default) or 0 to keep the keys]
    local side=$1 port=$2 pid=$3 t=$4 p=$5 n=$6 flush=${7:-1} before after line rps
    if [ "$flush" = 1 ]; then
        redis-cli -h 127.0.0.1 -p "$port" FLUSHALL >/dev/null
    fi
    before=$(cpu_ticks "$pid")
    # redis-benchmark stops at the first error reply (a cluster may answer CLUSTERDOWN during a
    # leader change): the figure is then "error" and the run goes on
    if ! line=$(redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$n" -d 100 -P "$p" -r 100000 \
        -t "$t" --csv 2>&1 | grep -v '^"test"' | tail -1) || ! rps=$(echo "$line" | cut -d, -f2 | tr -d '"') ||
        ! [[ $rps =~ ^[0-9.]+$ ]]; then
        echo "bench-redis: $side $t -P $p failed: $line" >&2
        OPS[$side,$t,$p]=error CPU[$side,$t,$p]=error
        return 0
    fi
    after=$(cpu_ticks "$pid")
    OPS[$side,$t,$p]=$(printf '%.0f' "$rps")
    # microseconds of server CPU per request
    CPU[$side,$t,$p]=$(awk -v d=$((after - before)) -v hz="$HZ" -v n="$n" 'BEGIN{printf "%.2f", d / hz * 1e6 / n}')
}

standalone_main() {
    start_redis_server redis
    R_PORT=$PORT R_PID=$PID
    if [ "$SELF_CHECK" = 1 ]; then
        start_redis_server redis-b
        K_NAME="redis-server (self-check)"
    else
        start_keel keel 0 "$KEEL_THREADS"
        K_NAME="keel"
    fi
    K_PORT=$PORT K_PID=$PID

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
    # Memory held after the throughput runs: what freed list and string memory each allocator
    # keeps (keel's mimalloc keeps freed pages for reuse; Redis's jemalloc returns them).
    rss_around_load() { # -> "redis-before redis-after keel-before keel-after" (KiB)
        local r0 k0
        r0=$(rss_kib "$R_PID")
        k0=$(rss_kib "$K_PID")
        load_keys "$R_PORT"
        load_keys "$K_PORT"
        echo "$r0 $(rss_kib "$R_PID") $k0 $(rss_kib "$K_PID")"
    }
    echo "bench-redis: loading $KEYS keys of 100 bytes into the servers the throughput runs used..." >&2
    rss=$(rss_around_load) || exit 1
    read -r R_USED0 R_USED K_USED0 K_USED <<<"$rss"
    # The key-memory figure: both servers restarted, so it measures the keys and nothing the
    # earlier runs left behind.
    stop_pid "$R_PID"
    stop_pid "$K_PID"
    start_redis_server redis-mem
    R_PID=$PID R_PORT=$PORT
    if [ "$SELF_CHECK" = 1 ]; then
        start_redis_server redis-b-mem
    else
        start_keel keel-mem 0 "$KEEL_THREADS"
    fi
    K_PID=$PID K_PORT=$PORT
    echo "bench-redis: loading $KEYS keys of 100 bytes into freshly started servers..." >&2
    rss=$(rss_around_load) || exit 1
    read -r R_RSS0 R_RSS K_RSS0 K_RSS <<<"$rss"

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
    printf '\nRSS after %s keys of 100 bytes, fresh servers (KiB): redis-server %s (before loading %s), keel %s (before loading %s), ratio %s\n' \
        "$KEYS" "$R_RSS" "$R_RSS0" "$K_RSS" "$K_RSS0" "$(ratio "$K_RSS" "$R_RSS")"
    printf 'RSS after the same keys in the servers the throughput runs used (KiB): redis-server %s (before loading %s), keel %s (before loading %s), ratio %s\n' \
        "$R_USED" "$R_USED0" "$K_USED" "$K_USED0" "$(ratio "$K_USED" "$R_USED")"
    echo "50 clients, 100-byte values, -r 100000; redis-benchmark $(redis-benchmark --version 2>/dev/null | awk '{print $2}'); $(nproc) cores"
}

info_field() { # port field -> value from INFO replication (empty if unreachable)
    redis-cli -h 127.0.0.1 -p "$1" INFO replication 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}

declare -A NODE_PORT NODE_PID
PEERS=""
CLUSTER_RC=0

start_node() { # slot redis-port (0 on the first start)
    local i=$1
    start_keel "node$i" "$2" "$CLUSTER_T" --cluster-id "$i" --cluster-peers "$PEERS"
    NODE_PORT[$i]=$PORT NODE_PID[$i]=$PID
}

wait_node_ready() { # slot: PING answered and keel_cluster_ready:1, within $READY_S seconds
    # (returns 1 after printing what the node says, and keeps the nodes' logs, if it is not)
    local i=$1 deadline=$((SECONDS + READY_S)) keep
    wait_ping "${NODE_PORT[$i]}"
    until [ "$(info_field "${NODE_PORT[$i]}" keel_cluster_ready)" = 1 ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            keep=$(mktemp -d /tmp/keel-bench-redis-logs.XXXXXX)
            cp "$TMP"/node*.log "$keep/" 2>/dev/null || true
            echo "bench-redis: node$i not ready in $READY_S s (nodes' logs kept in $keep); INFO replication:" >&2
            redis-cli -h 127.0.0.1 -p "${NODE_PORT[$i]}" INFO replication >&2 || true
            return 1
        fi
        sleep 0.05
    done
}

leader_slot() { # -> the slot every live node names as leader (polled up to 10 s)
    local deadline=$((SECONDS + 10)) i l agree
    while [ "$SECONDS" -lt "$deadline" ]; do
        l="" agree=1
        for i in 1 2 3; do
            kill -0 "${NODE_PID[$i]}" 2>/dev/null || continue
            local s
            s=$(info_field "${NODE_PORT[$i]}" keel_cluster_leader_slot)
            if [ -z "$s" ] || [ "$s" = 0 ] || { [ -n "$l" ] && [ "$s" != "$l" ]; }; then agree=0; fi
            l=${l:-$s}
        done
        if [ "$agree" = 1 ] && [ -n "$l" ] && [ "$(info_field "${NODE_PORT[$l]}" keel_cluster_role)" = leader ]; then
            echo "$l"
            return 0
        fi
        sleep 0.05
    done
    echo "bench-redis: the nodes agree on no leader" >&2
    exit 1
}

forget_pid() { # pid: drop it from the cleanup list (it was killed and reaped)
    local p keep=()
    for p in "${PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

wait_replica_synced() { # master-port replica-port: until the replica has the master's offset
    local deadline=$((SECONDS + 60)) m r
    while [ "$SECONDS" -lt "$deadline" ]; do
        m=$(info_field "$1" master_repl_offset)
        r=$(info_field "$2" master_repl_offset)
        if [ -n "$m" ] && [ "$m" = "$r" ] && [ "$(info_field "$2" master_link_status)" = up ]; then
            return 0
        fi
        sleep 0.05
    done
    echo "bench-redis: the redis replica did not catch up" >&2
    exit 1
}

# at_least value min -> "met" or "MISSED" (non-numbers miss)
at_least() { awk -v v="$1" -v m="$2" 'BEGIN{print (v ~ /^[0-9.]+$/ && v + 0 >= m + 0) ? "met" : "MISSED"}'; }

# at_most value max -> "met" or "MISSED"
at_most() { awk -v v="$1" -v m="$2" 'BEGIN{print (v ~ /^[0-9.]+$/ && v + 0 <= m + 0) ? "met" : "MISSED"}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "n/a"}'; }

probe() { # kind a-port b-port -> "p50 p99 max samples timeouts"
    "$PY" "$ROOT/scripts/bench_redis_cluster.py" "$1" "127.0.0.1:$2" "127.0.0.1:$3" "$LAT_N" ||
        echo "error - - 0 0"
}

cluster_main() {
    [ "$SELF_CHECK" != 1 ] || { echo "bench-redis: cluster mode needs keel (no self-check)" >&2; exit 1; }
    local i p t n
    # Raft ports; taken from the kernel's free ports, so retried by nobody: a clash fails loudly
    local r1 r2 r3
    r1=$(free_port) r2=$(free_port) r3=$(free_port)
    PEERS="1=127.0.0.1:$r1,2=127.0.0.1:$r2,3=127.0.0.1:$r3"
    for i in 1 2 3; do start_node "$i" 0; done
    for i in 1 2 3; do wait_node_ready "$i" || exit 1; done
    local L F F2
    L=$(leader_slot)
    F=$((L % 3 + 1)) F2=$(((L + 1) % 3 + 1))
    start_keel standalone 0 "$CLUSTER_T"
    local S_PORT=$PORT S_PID=$PID
    start_redis_server redis-master
    local RM_PORT=$PORT RM_PID=$PID
    start_redis_server redis-replica --replicaof 127.0.0.1 "$RM_PORT"
    local RR_PORT=$PORT RR_PID=$PID
    wait_replica_synced "$RM_PORT" "$RR_PORT"
    echo "bench-redis: cluster node$L (leader) port ${NODE_PORT[$L]}, node$F port ${NODE_PORT[$F]}, node$F2 port ${NODE_PORT[$F2]} (-t $CLUSTER_T each); standalone keel port $S_PORT; redis-server master $RM_PORT, replica $RR_PORT" >&2

    local TERM0
    TERM0=$(info_field "${NODE_PORT[$L]}" keel_cluster_term)
    # 1. + 4. throughput: SET first (after FLUSHALL), then GET reads the keys SET wrote
    local CTESTS="SET GET INCR LPUSH"
    for p in 1 16; do
        n=$N1
        [ "$p" = 16 ] && n=$N16
        for t in $CTESTS; do
            echo "bench-redis: cluster $t -P $p ($n requests)..." >&2
            local fl=1
            [ "$t" = GET ] && fl=0
            # the leader may have changed (a loaded machine can miss heartbeats): measure the
            # node that leads now
            L=$(leader_slot)
            F=$((L % 3 + 1))
            bench sa "$S_PORT" "$S_PID" "$t" "$p" "$n" "$fl"
            bench leader "${NODE_PORT[$L]}" "${NODE_PID[$L]}" "$t" "$p" "$n" "$fl"
            bench follower "${NODE_PORT[$F]}" "${NODE_PID[$F]}" "$t" "$p" "$n" "$fl"
            if [ "$t" = GET ]; then
                wait_replica_synced "$RM_PORT" "$RR_PORT"
                bench redis "$RR_PORT" "$RR_PID" "$t" "$p" "$n" 0
            else
                bench redis "$RM_PORT" "$RM_PID" "$t" "$p" "$n" "$fl"
            fi
        done
    done

    local TERM1
    TERM1=$(info_field "${NODE_PORT[$L]}" keel_cluster_term)
    [ "$TERM1" = "$TERM0" ] || echo "bench-redis: leader elections during the throughput runs (Raft term $TERM0 -> $TERM1)" >&2

    printf '\nkeel cluster: 3 nodes on loopback, -t %s each, linearizable reads; standalone keel -t %s; redis-server %s with one replica\n' \
        "$CLUSTER_T" "$CLUSTER_T" "$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
    printf '%-6s %-3s | %11s | %11s %6s | %11s %6s | %13s %9s | %s\n' test -P "standalone" "leader" "/sa" "follower" "/sa" "redis+replica" "leader/r" "target /sa (leader/follower)"
    printf -- '-----------------------------------------------------------------------------------------------------------\n'
    local sa ld fo rr tgt
    for p in 1 16; do
        for t in $CTESTS; do
            sa=${OPS[sa,$t,$p]} ld=${OPS[leader,$t,$p]} fo=${OPS[follower,$t,$p]} rr=${OPS[redis,$t,$p]}
            local min=0.5
            [ "$t" = GET ] && min=0.8
            local rl rf
            rl=$(ratio "$ld" "$sa") rf=$(ratio "$fo" "$sa")
            printf '%-6s %-3s | %11s | %11s %6s | %11s %6s | %13s %9s | >= %s: %s\n' "$t" "$p" "$sa" \
                "$ld" "$rl" "$fo" "$rf" "$rr" "$(ratio "$ld" "$rr")" "$min" \
                "$(at_least "$rl" "$min")/$(at_least "$rf" "$min")"
        done
    done
    echo "ops/s; 50 clients, 100-byte values, -r 100000; /sa: keel cluster node / standalone keel;"
    if [ "$TERM0" = "$TERM1" ]; then
        echo "no leader election during the throughput runs (Raft term $TERM0)"
    else
        echo "the leader was re-elected during the throughput runs (Raft term $TERM0 -> $TERM1)"
    fi
    echo "leader/r: keel leader / redis-server (writes on its master, GET on its replica)"


    # 2. latency probes
    L=$(leader_slot)
    F=$((L % 3 + 1)) F2=$(((L + 1) % 3 + 1))
    echo "bench-redis: latency probes ($LAT_N samples each)..." >&2
    declare -A LAT
    LAT[brpop,sa]=$(probe brpop "$S_PORT" "$S_PORT")
    LAT[brpop,cluster]=$(probe brpop "${NODE_PORT[$F]}" "${NODE_PORT[$F2]}")
    LAT[brpop,redis]=$(probe brpop "$RM_PORT" "$RM_PORT")
    LAT[pubsub,sa]=$(probe pubsub "$S_PORT" "$S_PORT")
    LAT[pubsub,cluster]=$(probe pubsub "${NODE_PORT[$F]}" "${NODE_PORT[$F2]}")
    LAT[pubsub,redis]=$(probe pubsub "$RM_PORT" "$RM_PORT")
    LAT[pubsub,replica]=$(probe pubsub "$RR_PORT" "$RM_PORT")

    printf '\n%-40s | %8s %8s %8s | %7s %8s | %s\n' "latency (microseconds)" p50 p99 max samples timeouts target
    printf -- '-----------------------------------------------------------------------------------------------\n'
    local row name key
    for row in "brpop,sa|BRPOP wake-up, standalone keel" \
        "brpop,cluster|BRPOP wake-up, keel node A <- LPUSH B" \
        "brpop,redis|BRPOP wake-up, redis-server" \
        "pubsub,sa|pub/sub, standalone keel" \
        "pubsub,cluster|pub/sub, keel node A <- PUBLISH B" \
        "pubsub,redis|pub/sub, redis-server" \
        "pubsub,replica|pub/sub, redis replica <- PUBLISH master"; do
        key=${row%%|*} name=${row#*|}
        # shellcheck disable=SC2086 # the probe's fields
        set -- ${LAT[$key]}
        case $key in
        *,cluster) tgt="p99 <= 2000: $(at_most "$2" 2000)" ;;
        *) tgt="" ;;
        esac
        # shellcheck disable=SC2086 # the probe's fields
        printf '%-40s | %8s %8s %8s | %7s %8s | %s\n' "$name" ${LAT[$key]} "$tgt"
    done
    echo "A and B: two followers; BRPOP timeout 2 s (a timeout means the push did not wake it)"


    # 3. leader kill -9 -> first acknowledged SET on a follower, 3 times
    # a restarted node then catches up on an empty keyspace: the figure is the election's, not the snapshot's
    L=$(leader_slot)
    redis-cli -h 127.0.0.1 -p "${NODE_PORT[$L]}" FLUSHALL >/dev/null || true
    printf '\n%-8s %-8s | %20s %14s %14s | %s\n' failover killed "kill -> first OK (ms)" "refused SETs" "restart (s)" "target"
    printf -- '-----------------------------------------------------------------------------------\n'
    local run k f out
    for run in 1 2 3; do
        k=$(leader_slot)
        f=$((k % 3 + 1))
        echo "bench-redis: failover $run: kill -9 node$k (pid ${NODE_PID[$k]}), client on node$f..." >&2
        out=$("$PY" "$ROOT/scripts/bench_redis_cluster.py" failover "127.0.0.1:${NODE_PORT[$f]}" "${NODE_PID[$k]}") ||
            out="error -"
        # the probe kills it; if the probe failed before that, the run still restarts the node
        kill -9 "${NODE_PID[$k]}" 2>/dev/null || true
        wait "${NODE_PID[$k]}" 2>/dev/null || true
        forget_pid "${NODE_PID[$k]}"
        local t0=$SECONDS
        start_node "$k" "${NODE_PORT[$k]}"
        local ready=1
        wait_node_ready "$k" || ready=0
        # shellcheck disable=SC2086 # ms, errors
        set -- $out
        if [ "$ready" = 0 ]; then
            printf '%-8s %-8s | %20s %14s %14s | <= 1000: %s\n' "$run" "node$k" "$1" "${2:-}" "NOT READY" "$(at_most "$1" 1000)"
            echo "bench-redis: node$k did not rejoin: no further failover runs" >&2
            CLUSTER_RC=1
            break
        fi
        printf '%-8s %-8s | %20s %14s %14s | <= 1000: %s\n' "$run" "node$k" "$1" "${2:-}" "$((SECONDS - t0))" "$(at_most "$1" 1000)"
        leader_slot >/dev/null
    done
    echo "a client on a follower SETs in a loop; kill -9 of the leader's pid; refused SETs: errors (CLUSTERDOWN,"
    echo "reconnects) before the first OK; restart: the killed node restarted until PING and keel_cluster_ready:1"

}

case $MODE in
standalone) standalone_main ;;
cluster) cluster_main ;;
all)
    standalone_main
    cluster_main
    ;;
esac
exit "$CLUSTER_RC"
