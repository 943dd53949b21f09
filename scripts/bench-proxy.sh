#!/usr/bin/env bash
# bench-proxy.sh: keel db-proxy against HAProxy 2.6 in front of the same three-node Galera cluster,
# in the same run (issue 4, item 8).
#
# 1. Starts a fresh three-node MariaDB Galera cluster on 127.0.0.1 (free ports from BASE_PORT, own
#    folder under /tmp, each mariadbd as the `mysql` user in its own process group, logs to files,
#    readiness polled with a deadline), creates the monitor, sysbench and HAProxy check users.
# 2. Starts `keel db-proxy` (checks every 500 ms) and HAProxy in TCP mode with one writer and the
#    two others as `backup`, `option mysql-check`, HAProxy's defaults `inter 2s rise 2 fall 3`.
# 3. sysbench oltp_read_write through each, alternating (keel, haproxy, keel, haproxy, ...), REPEAT
#    times each, DURATION seconds per run; prints TPS and p95 latency of every run and the medians.
# 4. Failover: kill -9 of the node each proxy writes to, then the time until the first commit on a
#    new connection through that proxy, next to the time a commit issued directly on a survivor
#    right after the kill took (Galera's own eviction). The killed node is brought back by IST
#    before the next measurement.
# Everything started here is stopped by PID on exit. With RECORD=1 the results are appended to
# docs/benchmarks.md.
#
# Knobs (environment): DURATION=20 REPEAT=2 THREADS=8 TABLES=4 TABLE_SIZE=10000 BASE_PORT=24000
# KEEL=target/release/keel (SKIP_BUILD=1 to use it as is) RECORD=0
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
REPEAT=${REPEAT:-2}
THREADS=${THREADS:-8}
TABLES=${TABLES:-4}
TABLE_SIZE=${TABLE_SIZE:-10000}
BASE_PORT=${BASE_PORT:-24000}
TARGET=${CARGO_TARGET_DIR:-target}
KEEL=${KEEL:-$TARGET/release/keel}
RECORD=${RECORD:-0}

for tool in mariadbd mariadb mariadb-install-db sysbench haproxy; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install mariadb-server galera-4 rsync sysbench haproxy" >&2; exit 1; }
done
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  cargo build --release -p keel >&2
fi

DIR=$(mktemp -d /tmp/keel-bench-proxy.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -CONT -- "-$pid" 2>/dev/null || true
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

port() { echo $((BASE_PORT + 10 * $1 + $2)); }   # node 1..3, offset 0 sql 1 galera 2 ist 3 sst
for p in $(seq $((BASE_PORT + 10)) $((BASE_PORT + 40))) $((BASE_PORT + 100)) $((BASE_PORT + 101)) $((BASE_PORT + 102)); do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "port $p is in use: set BASE_PORT" >&2; exit 1; fi
done
GCOMM="gcomm://127.0.0.1:$(port 1 1),127.0.0.1:$(port 2 1),127.0.0.1:$(port 3 1)"
declare -A PID_OF

write_cnf() {
  local i=$1 d=$DIR/n$1
  mkdir -p "$d/data" "$d/tmp"
  cat > "$d/my.cnf" <<EOF
[client]
socket = $d/mysqld.sock
[mariadbd]
user = mysql
datadir = $d/data
tmpdir = $d/tmp
socket = $d/mysqld.sock
pid-file = $d/mysqld.pid
log-error = $d/error.log
bind-address = 127.0.0.1
port = $(port "$i" 0)
skip-name-resolve
performance_schema = OFF
max_connections = 500
innodb_buffer_pool_size = 128M
innodb_log_file_size = 48M
innodb_flush_log_at_trx_commit = 1
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = /usr/lib/galera/libgalera_smm.so
wsrep_cluster_name = keelbench
wsrep_cluster_address = $GCOMM
wsrep_node_name = n$i
wsrep_node_address = 127.0.0.1
wsrep_node_incoming_address = 127.0.0.1:$(port "$i" 0)
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:$(port "$i" 1);ist.recv_addr=127.0.0.1:$(port "$i" 2);gcache.size=64M"
wsrep_sst_method = rsync
wsrep_sst_receive_address = 127.0.0.1:$(port "$i" 3)
wsrep_slave_threads = 2
EOF
}

start_node() { # i [extra args]
  local i=$1; shift
  setsid /usr/sbin/mariadbd --defaults-file="$DIR/n$i/my.cnf" "$@" >>"$DIR/n$i/mariadbd.out" 2>&1 < /dev/null &
  PID_OF[$i]=$!
  PIDS+=("$!")
}
sql() { mariadb --defaults-file="$DIR/n$1/my.cnf" -N -B -e "SET SESSION wsrep_sync_wait=0; $2"; }
wait_synced() {
  local i=$1 start=$SECONDS
  until [[ $(sql "$i" "SHOW STATUS LIKE 'wsrep_local_state'" 2>/dev/null | awk '{print $2}') == 4 ]]; do
    if (( SECONDS - start > 120 )); then echo "n$i not Synced; log:" >&2; tail -20 "$DIR/n$i/error.log" >&2; exit 1; fi
    sleep 0.2
  done
}
kill9() { kill -KILL -- "-${PID_OF[$1]}" 2>/dev/null || true; wait "${PID_OF[$1]}" 2>/dev/null || true; }
restart_after_crash() {
  local i=$1 before pos
  before=$(wc -c < "$DIR/n$i/error.log")
  /usr/sbin/mariadbd --defaults-file="$DIR/n$i/my.cnf" --wsrep-recover >/dev/null 2>&1 || true
  pos=$(tail -c +"$((before + 1))" "$DIR/n$i/error.log" | sed -n 's/.*Recovered position: //p' | tail -1)
  start_node "$i" "--wsrep-start-position=$pos"
  wait_synced "$i"
}

echo "# starting a three-node Galera cluster in $DIR" >&2
for i in 1 2 3; do write_cnf "$i"; done
chown -R mysql:mysql "$DIR"
mariadb-install-db --defaults-file="$DIR/n1/my.cnf" --user=mysql --skip-test-db >"$DIR/install.log" 2>&1
start_node 1 --wsrep-new-cluster
wait_synced 1
sql 1 "CREATE USER 'keel_monitor'@'%' IDENTIFIED BY 'monpw'; GRANT PROCESS ON *.* TO 'keel_monitor'@'%';
  GRANT ALL ON keel_meta.* TO 'keel_monitor'@'%';
  CREATE USER 'sbtest'@'%' IDENTIFIED BY 'sbpw'; GRANT ALL ON *.* TO 'sbtest'@'%';
  CREATE USER 'haproxy_check'@'%'; CREATE DATABASE sbtest;
  CREATE TABLE sbtest.probe (id INT PRIMARY KEY AUTO_INCREMENT, at TIMESTAMP(6));"
for i in 2 3; do start_node "$i"; wait_synced "$i"; done

KEEL_PORT=$((BASE_PORT + 100)); HAP_PORT=$((BASE_PORT + 101)); KEEL_METRICS=$((BASE_PORT + 102))
echo monpw > "$DIR/monitor.pw"
setsid "$KEEL" db-proxy --listen 127.0.0.1:$KEEL_PORT --metrics-listen 127.0.0.1:$KEEL_METRICS \
  --monitor-user keel_monitor --monitor-password-file "$DIR/monitor.pw" \
  --backend n1=127.0.0.1:$(port 1 0) --backend n2=127.0.0.1:$(port 2 0) --backend n3=127.0.0.1:$(port 3 0) \
  >"$DIR/keel.log" 2>&1 < /dev/null &
PIDS+=("$!")
cat > "$DIR/haproxy.cfg" <<EOF
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
listen galera
  bind 127.0.0.1:$HAP_PORT
  option mysql-check user haproxy_check
  server n1 127.0.0.1:$(port 1 0) check
  server n2 127.0.0.1:$(port 2 0) check backup
  server n3 127.0.0.1:$(port 3 0) check backup
EOF
setsid haproxy -db -f "$DIR/haproxy.cfg" >"$DIR/haproxy.log" 2>&1 < /dev/null &
PIDS+=("$!")

keel_writer() { { exec 3<>/dev/tcp/127.0.0.1/$KEEL_METRICS && printf 'GET /status HTTP/1.0\r\n\r\n' >&3 && cat <&3; } 2>/dev/null | sed -n 's/^  "writer": "\(.*\)",/\1/p'; }
through() { mariadb --no-defaults -h 127.0.0.1 -P "$1" -u sbtest -psbpw --connect-timeout=2 -N -B sbtest -e "$2"; }
start=$SECONDS
until [[ -n $(keel_writer) ]] && through $HAP_PORT "SELECT 1" >/dev/null 2>&1; do
  (( SECONDS - start > 30 )) && { echo "proxies not ready; keel log:" >&2; tail "$DIR/keel.log" >&2; exit 1; }
  sleep 0.2
done

SB=(sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-user=sbtest --mysql-password=sbpw
    --mysql-db=sbtest --tables="$TABLES" --table-size="$TABLE_SIZE")
echo "# sysbench prepare ($TABLES tables x $TABLE_SIZE rows)" >&2
"${SB[@]}" --mysql-port="$(port 1 0)" prepare >"$DIR/prepare.log" 2>&1

declare -A TPS P95
run_one() { # name port
  local out
  out=$("${SB[@]}" --mysql-port="$2" --threads="$THREADS" --time="$DURATION" --report-interval=0 --mysql-ignore-errors=1213,1205 run 2>&1)
  local tps p95 errs
  tps=$(sed -n 's/.*transactions: *[0-9]* *(\([0-9.]*\) per sec.)/\1/p' <<<"$out")
  p95=$(sed -n 's/.*95th percentile: *\([0-9.]*\)/\1/p' <<<"$out")
  errs=$(sed -n 's/.*ignored errors: *\([0-9]*\).*/\1/p' <<<"$out")
  echo "$1 tps=$tps p95_ms=$p95 ignored_errors=$errs" >&2
  TPS[$1]+="$tps "; P95[$1]+="$p95 "
}
for r in $(seq "$REPEAT"); do
  run_one keel "$KEEL_PORT"
  run_one haproxy "$HAP_PORT"
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
KT=$(median <<<"${TPS[keel]}"); HT=$(median <<<"${TPS[haproxy]}")
KP=$(median <<<"${P95[keel]}"); HP=$(median <<<"${P95[haproxy]}")
RATIO=$(awk -v k="$KT" -v h="$HT" 'BEGIN {printf "%.2f", k/h}')

now() { date +%s.%N; }
failover() { # name port node-to-kill; sets FO_PROXY and FO_GALERA (seconds)
  local name=$1 p=$2 victim=$3 survivor t0 t1 probe gal_file=$DIR/galera.$1
  survivor=$(( victim % 3 + 1 ))
  through "$p" "INSERT INTO probe (at) VALUES (NOW(6))" >/dev/null
  kill9 "$victim"
  t0=$(now)
  ( mariadb --defaults-file="$DIR/n$survivor/my.cnf" -e "INSERT INTO sbtest.probe (at) VALUES (NOW(6))" >/dev/null 2>&1; now > "$gal_file" ) &
  probe=$!
  until through "$p" "INSERT INTO probe (at) VALUES (NOW(6))" >/dev/null 2>&1; do
    if awk -v a="$(now)" -v b="$t0" 'BEGIN {exit !(a - b > 60)}'; then echo "$name: no commit within 60 s" >&2; break; fi
    sleep 0.02
  done
  t1=$(now)
  wait "$probe" 2>/dev/null || true
  FO_PROXY=$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
  FO_GALERA=$(awk -v g="$(cat "$gal_file")" -v b="$t0" 'BEGIN {printf "%.2f", g - b}')
  restart_after_crash "$victim"
}
KW=$(keel_writer); KW=${KW#n}
failover keel "$KEEL_PORT" "$KW"; KF=$FO_PROXY; KG=$FO_GALERA
echo "keel: kill -9 of writer n$KW -> first commit through keel after ${KF} s (Galera alone: ${KG} s)" >&2
sleep 5   # let HAProxy see the restarted node up again (rise 2 x inter 2 s)
failover haproxy "$HAP_PORT" 1; HF=$FO_PROXY; HG=$FO_GALERA
echo "haproxy: kill -9 of n1 -> first commit through HAProxy after ${HF} s (Galera alone: ${HG} s)" >&2

REPORT=$(cat <<EOF

## DB proxy (issue 4): keel db-proxy vs HAProxy $(haproxy -v | head -1 | awk '{print $3}')

\`scripts/bench-proxy.sh\` on $(nproc) cores, $(date -u +%Y-%m-%d): one three-node Galera cluster on loopback (MariaDB
$(mariadbd --version | awk '{print $3}'), rsync SST), sysbench $(sysbench --version | awk '{print $2}') \`oltp_read_write\`, $TABLES tables x $TABLE_SIZE rows,
$THREADS threads, ${DURATION} s per run, runs alternating keel/HAProxy, $REPEAT each, median shown. HAProxy: TCP mode,
\`option mysql-check\`, n1 writer, n2/n3 \`backup\`, default \`inter 2s rise 2 fall 3\`. keel: checks every 500 ms,
rise 2 / fall 2, writer kept in \`keel_meta.writer\`.

| proxy | TPS (median) | p95 latency ms (median) | runs (TPS) |
| --- | --- | --- | --- |
| keel db-proxy | $KT | $KP | ${TPS[keel]}|
| HAProxy | $HT | $HP | ${TPS[haproxy]}|

keel/HAProxy TPS ratio: **$RATIO**.

| failover: kill -9 of the writer | first commit through the proxy (new connection) | commit directly on a survivor (Galera's eviction) |
| --- | --- | --- |
| keel db-proxy | $KF s | $KG s |
| HAProxy | $HF s | $HG s |

The machine is shared (other builds and tests ran at the same time), so absolute figures are noisy;
both proxies ran in the same window against the same cluster.
EOF
)
echo "$REPORT"
if [[ $RECORD == 1 ]]; then
  mkdir -p docs
  printf '%s\n' "$REPORT" >> docs/benchmarks.md
  echo "# appended to docs/benchmarks.md" >&2
fi
