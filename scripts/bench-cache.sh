#!/usr/bin/env bash
# bench-cache.sh: keel's cache against Debian's memcached, same load, same machine, one run.
#
# For each case (server threads 1 and 2 x pipeline depth 1 and 16; 90/10 get/set, 100-byte values)
# it starts a fresh memcached and a fresh `keel cache` with the same flags, drives each with the
# same `keel bench cache` load, and prints ops/s, p50/p99 latency and the ratio keel/memcached.
# Then it stores 1,000,000 items of 100 bytes in a fresh server of each kind and compares VmRSS.
# The two servers of a case run back to back (memcached first in odd repetitions, keel first in
# even ones) and with REPEAT > 1 the median of each figure is reported, so that a drift of the
# machine's speed hits both servers alike.
#
# Servers listen on free loopback ports, run in their own process group with output to a log under
# $LOG_DIR, are polled for readiness (`version` -> `VERSION`) with a deadline, and are killed by
# PID (their process group) on exit.
#
# Knobs (environment): DURATION=10s WARMUP=2s CONNS=8 CLIENT_THREADS=1 KEYS=100000 VALUE_SIZE=100
# GET_RATIO=0.9 REPEAT=1 RSS_ITEMS=1000000 SERVER_THREADS="1 2" DEPTHS="1 16" MEMCACHED=memcached
# SKIP_BUILD=1 (use the existing target/release/keel) JSON_OUT=file (raw results, one JSON a line)
# TABLE_ONLY=file (print the tables of an earlier JSON_OUT and exit)
# KEEL_CACHE="target/release/keel cache" (the server command in the keel column; the flags are
# appended: setting it to "memcached -u memcache" checks the script and the client's fairness).
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-8}
CLIENT_THREADS=${CLIENT_THREADS:-1}
KEYS=${KEYS:-100000}
VALUE_SIZE=${VALUE_SIZE:-100}
GET_RATIO=${GET_RATIO:-0.9}
REPEAT=${REPEAT:-1}
RSS_ITEMS=${RSS_ITEMS:-1000000}
SERVER_THREADS=${SERVER_THREADS:-"1 2"}
DEPTHS=${DEPTHS:-"1 16"}
MEMCACHED=${MEMCACHED:-memcached}
KEEL=${KEEL:-target/release/keel}
KEEL_CACHE=${KEEL_CACHE:-"$KEEL cache"}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

RESULTS=${TABLE_ONLY:-}
if [[ -z $RESULTS ]]; then
    LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-cache.XXXXXX")
    RESULTS=${JSON_OUT:-$LOG_DIR/results.jsonl}
    : >"$RESULTS"
fi

die() { echo "bench-cache: $*" >&2; exit 1; }

# print_tables: the tables of $RESULTS (medians over repetitions).
print_tables() {
"$PY" - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = statistics.median
load = [r for r in rows if r["kind"] == "load"]
cases = sorted({(r["threads"], r["depth"]) for r in load})
def pick(server, t, d, f):
    return med([f(r["report"]) for r in load if (r["server"], r["threads"], r["depth"]) == (server, t, d)])
if load:
    r0 = load[0]["report"]
    print(f"Load: {r0['connections']} connections x depth D, {r0['threads']} client thread(s), "
          f"{r0['get_ratio']*100:.0f}% gets, {r0['keys']} keys pre-loaded, {r0['value_size']}-byte values, "
          f"{r0['duration_s']:.0f} s measured; median of {max(r['rep'] for r in load)} run(s); "
          f"1-min load average during the runs {min(r['load1'] for r in load):.2f}..{max(r['load1'] for r in load):.2f}")
    print()
    print("| server threads | depth | memcached ops/s | keel ops/s | keel/memcached ops/s | memcached p50 / p99 / p99.9 µs | keel p50 / p99 / p99.9 µs | server CPU µs/op m / k | keel/memcached CPU/op | client CPU m / k | hit ratio m / k | errors m / k |")
    print("|---:|---:|---:|---:|---:|---|---|---|---:|---|---|---|")
    for t, d in cases:
        m = pick("memcached", t, d, lambda r: r["ops_per_sec"])
        k = pick("keel", t, d, lambda r: r["ops_per_sec"])
        lat = lambda s: " / ".join(f"{pick(s, t, d, lambda r, q=q: r['latency_us'][q]):.0f}" for q in ("p50", "p99", "p999"))
        hr = lambda s: f"{pick(s, t, d, lambda r: r['hit_ratio']):.3f}"
        er = lambda s: f"{pick(s, t, d, lambda r: r['errors']):.0f}"
        cpu = lambda s: f"{pick(s, t, d, lambda r: r['server_cpu_us_per_op'] or 0):.2f}"
        ccpu = lambda s: f"{pick(s, t, d, lambda r: 100 * (r['client_cpu_s'] or 0) / r['duration_s']):.0f}%"
        # Ratios are taken pair by pair (the two servers of one repetition ran back to back), then
        # the median: a burst of other load hits one pair, not the whole column.
        def pair_ratio(f):
            rs = []
            for rep in sorted({r["rep"] for r in load}):
                by = {r["server"]: f(r["report"]) for r in load if (r["threads"], r["depth"], r["rep"]) == (t, d, rep)}
                if by.get("memcached") and by.get("keel") is not None:
                    rs.append(by["keel"] / by["memcached"])
            return med(rs) if rs else float("nan")
        ops_ratio = pair_ratio(lambda r: r["ops_per_sec"])
        cpu_ratio = pair_ratio(lambda r: r["server_cpu_us_per_op"] or 0)
        print(f"| {t} | {d} | {m:,.0f} | {k:,.0f} | {ops_ratio:.2f} | {lat('memcached')} | {lat('keel')} | {cpu('memcached')} / {cpu('keel')} | {cpu_ratio:.2f} | {ccpu('memcached')} / {ccpu('keel')} | {hr('memcached')} / {hr('keel')} | {er('memcached')} / {er('keel')} |")
rss = [r for r in rows if r["kind"] == "rss"]
if rss:
    print()
    n = rss[0]["report"]["items"]; vs = rss[0]["report"]["value_size"]
    print(f"Memory: VmRSS after storing {n:,} items of {vs} bytes (server threads {rss[0]['threads']}, -m 1024); median of {max(r['rep'] for r in rss)} run(s)")
    print()
    print("| server | RSS idle MiB | RSS after fill MiB | growth MiB | stored | fill items/s |")
    print("|---|---:|---:|---:|---:|---:|")
    vals = {}
    for s in ("memcached", "keel"):
        rs = [r for r in rss if r["server"] == s]
        if not rs:
            continue
        b = med([r["rss_before_kib"] for r in rs]) / 1024
        a = med([r["rss_after_kib"] for r in rs]) / 1024
        st = med([r["report"]["stored"] for r in rs])
        ips = med([r["report"]["items_per_sec"] for r in rs])
        vals[s] = (a, a - b)
        print(f"| {s} | {b:.1f} | {a:.1f} | {a-b:.1f} | {st:,.0f} | {ips:,.0f} |")
    if len(vals) == 2:
        print(f"| keel/memcached | | {vals['keel'][0]/vals['memcached'][0]:.2f} | {vals['keel'][1]/vals['memcached'][1]:.2f} | | |")
EOF
}
[[ -z ${TABLE_ONLY:-} ]] || { print_tables; exit 0; }

command -v "$MEMCACHED" >/dev/null || die "memcached not found (apt-get install memcached)"
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    echo "== building keel (release)" >&2
    cargo build --release -p keel >&2
fi
[[ -x $KEEL ]] || die "$KEEL missing"

# --- server lifecycle -------------------------------------------------------------------------
SERVER_PID=
stop_server() {
    local pid=$SERVER_PID
    [[ -n $pid ]] || return 0
    SERVER_PID=
    # Its own process group (setsid): signal the group, then the pid itself, TERM then KILL.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 5))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ready PORT PID: `version` answered with `VERSION` within 10 s, while PID lives.
ready() {
    local port=$1 pid=$2 line deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
            printf 'version\r\n' >&3
            if read -r -t 2 line <&3 && [[ $line == VERSION* ]]; then
                exec 3>&- 3<&-
                return 0
            fi
            exec 3>&- 3<&-
        fi
        sleep 0.05
    done
    return 1
}

# start_server KIND THREADS LOGNAME: sets SERVER_PID and PORT.
start_server() {
    local kind=$1 threads=$2 log=$LOG_DIR/$3.log
    PORT=$(free_port)
    local -a cmd
    case $kind in
        memcached) cmd=("$MEMCACHED" -u memcache -l 127.0.0.1 -p "$PORT" -t "$threads" -m 1024 -U 0) ;;
        keel) read -r -a cmd <<<"$KEEL_CACHE"; cmd+=(-l 127.0.0.1 -p "$PORT" -t "$threads" -m 1024 -U 0) ;;
        *) die "unknown server $kind" ;;
    esac
    # A background job of a non-interactive shell is not a group leader, so setsid execs in place:
    # $! is the server itself, leader of its own process group.
    setsid "${cmd[@]}" </dev/null >"$log" 2>&1 &
    SERVER_PID=$!
    if ! ready "$PORT" "$SERVER_PID"; then
        echo "--- $log" >&2
        tail -20 "$log" >&2 || true
        stop_server
        die "$kind (-t $threads) did not become ready on port $PORT"
    fi
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

load1() { cut -d' ' -f1 /proc/loadavg; }

# --- throughput and latency -------------------------------------------------------------------
echo "== logs and raw results in $LOG_DIR" >&2
for rep in $(seq 1 "$REPEAT"); do
    for t in $SERVER_THREADS; do
        for d in $DEPTHS; do
            order="memcached keel"
            ((rep % 2 == 0)) && order="keel memcached"
            for kind in $order; do
                start_server "$kind" "$t" "$kind-t$t-d$d-r$rep"
                echo "-- run $rep: $kind -t $t, depth $d (load $(load1))" >&2
                out=$("$KEEL" bench cache --server "127.0.0.1:$PORT" --connections "$CONNS" \
                    --pipeline "$d" --threads "$CLIENT_THREADS" --get-ratio "$GET_RATIO" --keys "$KEYS" \
                    --value-size "$VALUE_SIZE" --duration "$DURATION" --warmup "$WARMUP" \
                    --server-pid "$SERVER_PID" --json) ||
                    { stop_server; die "bench against $kind -t $t failed"; }
                echo "{\"kind\":\"load\",\"server\":\"$kind\",\"threads\":$t,\"depth\":$d,\"rep\":$rep,\"load1\":$(load1),\"report\":$out}" >>"$RESULTS"
                stop_server
            done
        done
    done
done

# --- memory -----------------------------------------------------------------------------------
RSS_THREADS=${RSS_THREADS:-2}
for rep in $(seq 1 "$REPEAT"); do
    for kind in memcached keel; do
        start_server "$kind" "$RSS_THREADS" "$kind-rss-r$rep"
        before=$(rss_kib "$SERVER_PID")
        echo "-- rss run $rep: $kind, storing $RSS_ITEMS items of $VALUE_SIZE bytes (load $(load1))" >&2
        out=$("$KEEL" bench cache --server "127.0.0.1:$PORT" --connections 4 --pipeline 64 \
            --value-size "$VALUE_SIZE" --rss-items "$RSS_ITEMS" --json) ||
            { stop_server; die "fill of $kind failed"; }
        sleep 1 # let background work (hash table growth, LRU maintenance) settle
        after=$(rss_kib "$SERVER_PID")
        echo "{\"kind\":\"rss\",\"server\":\"$kind\",\"threads\":$RSS_THREADS,\"rep\":$rep,\"rss_before_kib\":$before,\"rss_after_kib\":$after,\"report\":$out}" >>"$RESULTS"
        stop_server
    done
done

# --- table ------------------------------------------------------------------------------------
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
echo "Servers: memcached $("$MEMCACHED" -V | awk '{print $2}'), keel $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes')"
print_tables
