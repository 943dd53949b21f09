#!/usr/bin/env bash
# bench-cluster.sh: keel's cache cluster (three `keel cache --cluster-id N` nodes on loopback)
# against a standalone `keel cache`, same client (`keel bench cache`), same machine, one run.
#
# Measures (issue 5's targets in brackets):
#   1. replicated write latency, 1 connection, depth 1, on the leader and on a follower (which
#      forwards to the leader)                                              [p99 <= 1 ms]
#   2. replicated write throughput, CONNS connections x depth 1 and 16      [>= 50 % of standalone]
#   3. linearizable read throughput (the default read mode), same shapes,
#      on the leader and on a follower                                      [>= 80 % of standalone]
#   3b. mixed: CONNS/2 connections reading and CONNS/2 writing (depth 1) at once on one node: with
#      follower read leases the leader acknowledges a write only once every lease holder has it,
#      so this is where follower reads cost writes something
#   3c. ceiling: three standalone servers, each sent every write by a client of its own
#      (replication with no coordination at all), CONNS connections x each depth: the most any
#      three-replica design can reach on this machine when all replicas share it
#   4. catch-up: CATCHUP_KEYS items of VALUE_SIZE bytes stored, a follower killed -9 and restarted
#      on the same ports; time until it reports `cluster_ready 1`           [<= 2 s for 100 000]
#   5. kill -9 of the leader -> first acknowledged write on a surviving node (a client writing in
#      a loop to a follower), KILLS times
# and, for every load case, the CPU time per operation of the server processes (all three nodes
# summed for the cluster) and of the client over the measured window: what a replicated
# operation costs, whichever process pays it.
#
# Servers listen on free loopback ports, each in its own process group (setsid) with its output in
# a log under $LOG_DIR, are polled for readiness (`stats` -> `cluster_ready 1`, or `version` for the
# standalone server) with a deadline, and are killed by pid on exit.
#
# Knobs (environment): DURATION=10s WARMUP=2s CONNS=8 DEPTHS="1 16" KEYS=100000 VALUE_SIZE=100
# SERVER_THREADS=2 CATCHUP_KEYS=100000 CATCHUPS=3 KILLS=5 KINDS="write read mixed" (load cases)
# NODE_ARGS="" (extra `keel cache` arguments for the cluster's nodes, e.g.
# "--cluster-follower-leases off")
# REPEAT=1 (the load cases, standalone then a fresh cluster, this many times; the table shows the
# median and, for REPEAT > 1, the range of the per-repetition ratios)
# SKIP_BUILD=1 (use $KEEL, default target/release/keel; set KEEL=$CARGO_TARGET_DIR/release/keel for
# another target dir) JSON_OUT=file (raw results, one JSON a line)
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-8}
DEPTHS=${DEPTHS:-"1 16"}
KEYS=${KEYS:-100000}
VALUE_SIZE=${VALUE_SIZE:-100}
SERVER_THREADS=${SERVER_THREADS:-2}
CATCHUP_KEYS=${CATCHUP_KEYS:-100000}
CATCHUPS=${CATCHUPS:-3}
KILLS=${KILLS:-5}
KINDS=${KINDS:-"write read mixed ceiling"}
NODE_ARGS=${NODE_ARGS:-}
REPEAT=${REPEAT:-1}
REP=1
KEEL=${KEEL:-target/release/keel}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-cluster.XXXXXX")
RESULTS=${JSON_OUT:-$LOG_DIR/results.jsonl}
: >"$RESULTS"

die() { echo "bench-cluster: $*" >&2; exit 1; }

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    echo "== building keel (release)" >&2
    cargo build --release -p keel >&2
fi
[[ -x $KEEL ]] || die "$KEEL missing"

# --- process lifecycle ------------------------------------------------------------------------
declare -A PID=()   # name -> pid (each the leader of its own process group)
stop_one() {
    local name=$1 pid=${PID[$1]:-}
    [[ -n $pid ]] || return 0
    unset "PID[$name]"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop_all() { for n in "${!PID[@]}"; do stop_one "$n"; done; }
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# stat_of PORT NAME: one `stats` value ('' when the node does not answer within 1 s).
stat_of() {
    "$PY" - "$1" "$2" <<'EOF' 2>/dev/null || true
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.settimeout(1)
    s.sendall(b"stats\r\n")
    b = b""
    while not b.endswith(b"END\r\n"):
        c = s.recv(65536)
        if not c:
            break
        b += c
    for l in b.decode().splitlines():
        p = l.split(" ", 2)
        if len(p) == 3 and p[0] == "STAT" and p[1] == sys.argv[2]:
            print(p[2])
except OSError:
    pass
EOF
}

# wait_ready PORT NAME SECONDS: until `cluster_ready 1`; prints the log tail and dies otherwise.
wait_ready() {
    local port=$1 name=$2 deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        kill -0 "${PID[$name]}" 2>/dev/null || break
        [[ $(stat_of "$port" cluster_ready) == 1 ]] && return 0
        sleep 0.02
    done
    tail -20 "$LOG_DIR/$name.log" >&2 || true
    die "$name (port $port) not ready"
}

start_standalone() {
    SPORT=$(free_port)
    setsid "$KEEL" cache -l 127.0.0.1 -p "$SPORT" -t "$SERVER_THREADS" -m 1024 -U 0 </dev/null >"$LOG_DIR/standalone.log" 2>&1 &
    PID[standalone]=$!
    local deadline=$((SECONDS + 10))
    until [[ -n $(stat_of "$SPORT" pid) ]]; do
        ((SECONDS < deadline)) || die "standalone keel not ready"
        sleep 0.02
    done
}

# Cluster: CPORT[i] client ports, RPORT[i] peer ports, i = 1..3.
declare -a CPORT RPORT
new_cluster_ports() {
    for i in 1 2 3; do CPORT[i]=$(free_port); RPORT[i]=$(free_port); done
    PEERS="1=127.0.0.1:${RPORT[1]},2=127.0.0.1:${RPORT[2]},3=127.0.0.1:${RPORT[3]}"
}
start_node() {
    local i=$1
    setsid "$KEEL" cache -l 127.0.0.1 -p "${CPORT[i]}" -t "$SERVER_THREADS" -m 1024 -U 0 \
        --cluster-id "$i" --cluster-peers "$PEERS" $NODE_ARGS </dev/null >>"$LOG_DIR/node$i.log" 2>&1 &
    PID[node$i]=$!
}
start_cluster() {
    new_cluster_ports
    for i in 1 2 3; do start_node "$i"; done
    for i in 1 2 3; do wait_ready "${CPORT[i]}" "node$i" 30; done
}
# leader_slot: the slot every node names as leader (polled up to 10 s).
leader_slot() {
    local deadline=$((SECONDS + 10)) l
    while ((SECONDS < deadline)); do
        for i in 1 2 3; do
            if [[ $(stat_of "${CPORT[i]}" cluster_role) == leader ]]; then echo "$i"; return 0; fi
        done
        sleep 0.02
    done
    die "no leader"
}

load1() { cut -d' ' -f1 /proc/loadavg; }

# bench NAME PORT PIDS ARGS...: one `keel bench cache` run, appended to $RESULTS (PIDS: the server
# processes whose CPU time is summed, comma-separated).
bench() {
    local name=$1 port=$2 pid=$3
    shift 3
    echo "-- $name (load $(load1))" >&2
    local out
    out=$("$KEEL" bench cache --server "127.0.0.1:$port" --duration "$DURATION" --warmup "$WARMUP" \
        --value-size "$VALUE_SIZE" --keys "$KEYS" --server-pid "$pid" --json "$@") || die "bench $name failed"
    echo "{\"kind\":\"load\",\"name\":\"$name\",\"rep\":$REP,\"load1\":$(load1),\"report\":$out}" >>"$RESULTS"
}

# bench_mixed NAME PORT: CONNS/2 connections of `get` and CONNS/2 of `set` (depth 1) at once;
# two result rows, "NAME mixed read ..." and "NAME mixed write ..." (no CPU figures: the two
# clients' windows overlap).
bench_mixed() {
    local t=$1 port=$2 half=$((CONNS / 2 > 0 ? CONNS / 2 : 1)) out rpid
    echo "-- $t mixed c$half+c$half d1 (load $(load1))" >&2
    local common=(--server "127.0.0.1:$port" --duration "$DURATION" --warmup "$WARMUP" --value-size "$VALUE_SIZE"
        --keys "$KEYS" --connections "$half" --pipeline 1 --json)
    "$KEEL" bench cache "${common[@]}" --get-ratio 1 >"$LOG_DIR/mixed-read.json" &
    rpid=$!
    out=$("$KEEL" bench cache "${common[@]}" --get-ratio 0 --no-preload) || die "bench $t mixed writes failed"
    wait "$rpid" || die "bench $t mixed reads failed"
    echo "{\"kind\":\"load\",\"name\":\"$t mixed read c$half d1 (+ c$half writes)\",\"rep\":$REP,\"load1\":$(load1),\"report\":$(cat "$LOG_DIR/mixed-read.json")}" >>"$RESULTS"
    echo "{\"kind\":\"load\",\"name\":\"$t mixed write c$half d1 (+ c$half reads)\",\"rep\":$REP,\"load1\":$(load1),\"report\":$out}" >>"$RESULTS"
}

# ceiling_cases: three standalone servers; for each depth, three clients at once, one per server,
# each writing the same kind of stream; the replicated rate is the slowest server's.
ceiling_cases() {
    local i d port deadline
    local -a ports bp
    for i in 1 2 3; do
        ports[i]=$(free_port)
        setsid "$KEEL" cache -l 127.0.0.1 -p "${ports[i]}" -t "$SERVER_THREADS" -m 1024 -U 0 </dev/null >"$LOG_DIR/ceiling$i.log" 2>&1 &
        PID[ceiling$i]=$!
    done
    for i in 1 2 3; do
        deadline=$((SECONDS + 10))
        until [[ -n $(stat_of "${ports[i]}" pid) ]]; do
            ((SECONDS < deadline)) || die "ceiling server $i not ready"
            sleep 0.02
        done
    done
    for d in $DEPTHS; do
        echo "-- ceiling write c$CONNS d$d on three servers at once (load $(load1))" >&2
        for i in 1 2 3; do
            "$KEEL" bench cache --server "127.0.0.1:${ports[i]}" --duration "$DURATION" --warmup "$WARMUP" \
                --value-size "$VALUE_SIZE" --keys "$KEYS" --get-ratio 0 --no-preload --connections "$CONNS" \
                --pipeline "$d" --json >"$LOG_DIR/ceiling$i.json" &
            bp[i]=$!
        done
        for i in 1 2 3; do wait "${bp[i]}" || die "ceiling bench $i failed"; done
        echo "{\"kind\":\"ceiling\",\"name\":\"write c$CONNS d$d\",\"rep\":$REP,\"load1\":$(load1),\"servers\":[$(cat "$LOG_DIR"/ceiling{1,2,3}.json | tr '\n' ',' | sed 's/,$//')]}" >>"$RESULTS"
    done
    for i in 1 2 3; do stop_one "ceiling$i"; done
}

run_cases() { # TARGET PORT PID
    local t=$1 port=$2 pid=$3
    if [[ " $KINDS " == *" write "* ]]; then
        bench "$t write c1 d1" "$port" "$pid" --get-ratio 0 --no-preload --connections 1 --pipeline 1
        for d in $DEPTHS; do
            bench "$t write c$CONNS d$d" "$port" "$pid" --get-ratio 0 --no-preload --connections "$CONNS" --pipeline "$d"
        done
    fi
    if [[ " $KINDS " == *" read "* ]]; then
        for d in $DEPTHS; do
            bench "$t read c$CONNS d$d" "$port" "$pid" --get-ratio 1 --connections "$CONNS" --pipeline "$d"
        done
    fi
    if [[ " $KINDS " == *" mixed "* ]]; then
        bench_mixed "$t" "$port"
    fi
}

echo "== logs and raw results in $LOG_DIR" >&2

# --- 1-3: load, standalone then cluster ----------------------------------------------------------
for REP in $(seq 1 "$REPEAT"); do
((REPEAT == 1)) || echo "== repetition $REP of $REPEAT" >&2
start_standalone
run_cases standalone "$SPORT" "${PID[standalone]}"
stop_one standalone
[[ " $KINDS " != *" ceiling "* ]] || ceiling_cases

start_cluster
L=$(leader_slot)
F=$(( L % 3 + 1 ))
# CPU is summed over the three nodes (`--server-pid a,b,c`): the cost of a replicated operation.
ALL_NODES="${PID[node1]},${PID[node2]},${PID[node3]}"
run_cases leader "${CPORT[L]}" "$ALL_NODES"
[[ $(leader_slot) == "$L" ]] || echo "bench-cluster: note: the leader changed during the leader runs" >&2
run_cases follower "${CPORT[F]}" "$ALL_NODES"
[[ $(leader_slot) == "$L" ]] || echo "bench-cluster: note: the leader changed during the follower runs" >&2
for i in 1 2 3; do stop_one "node$i"; done
done

# --- 4: catch-up ---------------------------------------------------------------------------------
if ((CATCHUPS > 0)); then
start_cluster
L=$(leader_slot)
echo "-- storing $CATCHUP_KEYS items in the cluster (load $(load1))" >&2
"$KEEL" bench cache --server "127.0.0.1:${CPORT[L]}" --connections 4 --pipeline 64 \
    --value-size "$VALUE_SIZE" --rss-items "$CATCHUP_KEYS" --json >"$LOG_DIR/fill.json" || die "fill failed"
for run in $(seq 1 "$CATCHUPS"); do
    L=$(leader_slot)
    F=$(( (L + run) % 3 + 1 ))
    [[ $F != "$L" ]] || F=$(( L % 3 + 1 ))
    stop_one "node$F"
    t0=$(date +%s%N)
    start_node "$F"
    # Poll every 5 ms in one process; the time is taken when `cluster_ready 1` is seen.
    secs=$("$PY" - "${CPORT[F]}" "$t0" <<'EOF'
import socket, sys, time
port, t0 = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        s.settimeout(1)
        s.sendall(b"stats\r\n")
        b = b""
        while not b.endswith(b"END\r\n"):
            c = s.recv(65536)
            if not c:
                break
            b += c
        if b"STAT cluster_ready 1\r\n" in b:
            print("%.4f" % ((time.time_ns() - t0) / 1e9))
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.005)
sys.exit(1)
EOF
) || { tail -20 "$LOG_DIR/node$F.log" >&2; die "restarted follower $F not ready within 60 s"; }
    items=$(stat_of "${CPORT[F]}" curr_items)
    echo "-- catch-up run $run: follower $F ready after $secs s with $items items (load $(load1))" >&2
    echo "{\"kind\":\"catchup\",\"run\":$run,\"keys\":$CATCHUP_KEYS,\"seconds\":$secs,\"items\":${items:-0},\"load1\":$(load1)}" >>"$RESULTS"
done
fi

# --- 5: kill the leader -> first acknowledged write ------------------------------------------------
# (reuses the catch-up cluster; started here when there was no catch-up)
((CATCHUPS > 0 || KILLS == 0)) || start_cluster
for run in $(seq 1 "$KILLS"); do
    L=$(leader_slot)
    F=$(( L % 3 + 1 ))
    # The probe writes in a loop on follower F, kills the leader's pid itself (right after an
    # acknowledged write) and reports the time from the kill to the next acknowledged write.
    out=$("$PY" - "${CPORT[F]}" "${PID[node$L]}" <<'EOF'
import os, signal, socket, sys, time
port, victim = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")
def write(i):
    s.sendall(b"set failover:%d 0 0 1\r\nx\r\n" % i)
    return f.readline()
assert write(0) == b"STORED\r\n"
os.kill(victim, signal.SIGKILL)
t0 = time.monotonic()
errors, i = 0, 1
while True:
    r = write(i)
    i += 1
    if r == b"STORED\r\n":
        break
    errors += 1
print('{"seconds": %.4f, "refused": %d}' % (time.monotonic() - t0, errors))
EOF
) || die "failover probe failed"
    wait "${PID[node$L]}" 2>/dev/null || true
    unset "PID[node$L]"
    echo "-- kill run $run: leader $L killed, first acknowledged write on $F after $out (load $(load1))" >&2
    echo "{\"kind\":\"failover\",\"run\":$run,\"report\":$out,\"load1\":$(load1)}" >>"$RESULTS"
    start_node "$L"
    wait_ready "${CPORT[L]}" "node$L" 60
done
for i in 1 2 3; do stop_one "node$i"; done

# --- table ---------------------------------------------------------------------------------------
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
echo "keel $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes'); uptime: $(uptime)"
"$PY" - "$RESULTS" "$DURATION" "$SERVER_THREADS" "$VALUE_SIZE" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
dur, threads, vs = sys.argv[2], sys.argv[3], sys.argv[4]
runs = {}
for r in rows:
    if r["kind"] == "load":
        runs.setdefault(r["name"], []).append(r)
reps = max(len(v) for v in runs.values())
def median_run(rs):
    # The repetition with the median throughput (its latency and CPU figures are shown).
    rs = sorted(rs, key=lambda r: r["report"]["ops_per_sec"])
    return rs[(len(rs) - 1) // 2]
load = {n: median_run(rs) for n, rs in runs.items()}
loads = [r["load1"] for rs in runs.values() for r in rs]
print(f"Load: `keel bench cache`, {dur} measured per case, {vs}-byte values, server threads {threads}; "
      f"1-min load average during the runs {min(loads):.2f}..{max(loads):.2f}"
      + (f"; {reps} repetitions (fresh servers each): median run shown, ratio ranges over the repetitions in brackets" if reps > 1 else ""))
print()
print("| case | standalone ops/s | leader ops/s | leader/standalone | follower ops/s | follower/standalone | p50 / p99 / p99.9 µs standalone | leader | follower | CPU µs/op server(s) + client: standalone / leader / follower | errors s / l / f |")
print("|---|---:|---:|---:|---:|---:|---|---|---|---|---|")
cases = [n.split(" ", 1)[1] for n in load if n.startswith("standalone ")]
for c in cases:
    s, l, f = (load.get(f"{t} {c}") for t in ("standalone", "leader", "follower"))
    ops = lambda r: r["report"]["ops_per_sec"] if r else float("nan")
    lat = lambda r: " / ".join(f"{r['report']['latency_us'][q]:.0f}" for q in ("p50", "p99", "p999")) if r else "-"
    err = lambda r: str(r["report"]["errors"]) if r else "-"
    def cpu(r):
        rep = r["report"] if r else {}
        if not rep.get("server_cpu_s") or not rep.get("ops"):
            return "-"
        return f"{rep['server_cpu_s'] * 1e6 / rep['ops']:.2f} + {(rep.get('client_cpu_s') or 0) * 1e6 / rep['ops']:.2f}"
    def ratio(t):
        r = load.get(f"{t} {c}")
        text = f"{ops(r)/ops(s):.2f}"
        if reps > 1:
            by_rep = {x["rep"]: x["report"]["ops_per_sec"] for x in runs.get(f"standalone {c}", [])}
            rs = [x["report"]["ops_per_sec"] / by_rep[x["rep"]] for x in runs.get(f"{t} {c}", []) if x["rep"] in by_rep]
            if rs:
                text += f" ({min(rs):.2f}-{max(rs):.2f})"
        return text
    print(f"| {c} | {ops(s):,.0f} | {ops(l):,.0f} | {ratio('leader')} | {ops(f):,.0f} | {ratio('follower')} | {lat(s)} | {lat(l)} | {lat(f)} | {cpu(s)} / {cpu(l)} / {cpu(f)} | {err(s)} / {err(l)} / {err(f)} |")
ce = {}
for r in rows:
    if r["kind"] == "ceiling":
        ce.setdefault(r["name"], []).append(r)
if ce:
    parts = []
    for name, rs in ce.items():
        by_rep = {x["rep"]: x["report"]["ops_per_sec"] for x in runs.get(f"standalone {name}", [])}
        ratios = sorted(min(s["ops_per_sec"] for s in r["servers"]) / by_rep[r["rep"]] for r in rs if r["rep"] in by_rep)
        if ratios:
            med = ratios[(len(ratios) - 1) // 2]
            parts.append(f"{name} {med:.2f}" + (f" ({ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else ""))
    print()
    print("Ceiling for any three-replica design on this machine (three standalone servers, each sent every write "
          "by a client of its own, no coordination; the slowest server's rate / one standalone server's): " + ", ".join(parts))
cu = [r for r in rows if r["kind"] == "catchup"]
if cu:
    secs = [r["seconds"] for r in cu]
    print()
    print(f"Catch-up of {cu[0]['keys']:,} items ({vs} bytes) by a restarted follower (spawn -> `cluster_ready 1`): "
          + ", ".join(f"{s:.3f} s" for s in secs) + f" (median {statistics.median(secs):.3f} s); items on the node afterwards: "
          + ", ".join(str(r["items"]) for r in cu))
fo = [r for r in rows if r["kind"] == "failover"]
if fo:
    secs = [r["report"]["seconds"] for r in fo]
    print()
    print("Leader kill -9 -> first acknowledged write on a follower: " + ", ".join(f"{s:.3f} s" for s in secs)
          + f" (median {statistics.median(secs):.3f} s, max {max(secs):.3f} s); requests refused meanwhile: "
          + ", ".join(str(r["report"]["refused"]) for r in fo))
EOF
