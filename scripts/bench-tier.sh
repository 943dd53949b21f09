#!/usr/bin/env bash
# bench-tier.sh: how long the Galera tier's life-cycle steps take, with real mariadbd + Galera.
#
# Per repetition, in a fresh temp dir on free loopback ports:
#   up        `keel up` from nothing to 3 x Synced (target <= 15 s)
#   kill1     kill -9 of one mariadbd -> the agent recovers, restarts, IST -> 3 x Synced again
#   crash3    kill -9 of all three mariadbd (agents alive) -> back to 3 x Synced automatically
#             (target <= 30 s)
#   outage    kill -9 of all agents and mariadbd, then `keel up` -> 3 x Synced (the agents
#             compare recovered positions and the most advanced node bootstraps)
#   down      `keel down` (clean stop, one node at a time)
#   restart   `keel up` after the clean stop (the last node out bootstraps)
# Prints a markdown table (median, min, max over REPEAT runs) for docs/benchmarks.md.
#
# Processes are stopped by pid (keel down, then SIGKILL of the pids in the tier's pid files) when
# the script exits, even on failure. Knobs: REPEAT=3, KEEL=path/to/keel (default: build release),
# BASE_PORT=16100.
set -euo pipefail

REPEAT=${REPEAT:-3}
BASE_PORT=${BASE_PORT:-16100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${KEEL:-}" ]]; then
  (cd "$ROOT" && cargo build --release -p keel >&2)
  KEEL="${CARGO_TARGET_DIR:-$ROOT/target}/release/keel"
fi

DIR=""
cleanup() {
  if [[ -n "$DIR" && -d "$DIR" ]]; then
    "$KEEL" down --dir "$DIR" --timeout 60 >/dev/null 2>&1 || true
    for f in "$DIR"/node*.agent.pid "$DIR"/node*/mysqld.pid; do
      [[ -f "$f" ]] || continue
      pid=$(cat "$f")
      comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
      if [[ "$comm" == keel || "$comm" == mariadbd ]]; then kill -9 "$pid" 2>/dev/null || true; fi
    done
  fi
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

status_json() { "$KEEL" status --dir "$DIR" --json 2>/dev/null || echo '{"nodes":[]}'; }

# all_synced [OLD_PIDS...]: true when the three nodes are Synced in a cluster of 3 and none of
# them still has one of the given (killed) pids.
all_synced() {
  status_json | python3 -c '
import json, sys
old = set(int(p) for p in sys.argv[1:])
n = json.load(sys.stdin)["nodes"]
ok = len(n) == 3 and all(x["db"]["state"] == "Synced" and x["db"]["cluster_size"] == 3 and x["db"]["pid"] not in old for x in n)
sys.exit(0 if ok else 1)' "$@"
}

wait_synced() {
  local deadline=$(( $(date +%s) + 180 ))
  until all_synced "$@"; do
    if (( $(date +%s) > deadline )); then echo "not Synced within 180 s" >&2; "$KEEL" status --dir "$DIR" >&2; exit 1; fi
    sleep 0.1
  done
}

db_pids() { status_json | python3 -c 'import json,sys; print(" ".join(str(x["db"]["pid"]) for x in json.load(sys.stdin)["nodes"]))'; }

free_base() {
  local b=$1
  while python3 - "$b" <<'EOF'
import socket, sys
b = int(sys.argv[1])
for p in range(b, b + 30):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        sys.exit(0)   # busy: try the next base
    finally:
        s.close()
sys.exit(1)
EOF
  do b=$((b + 40)); done
  echo "$b"
}

declare -A R
for ((r = 1; r <= REPEAT; r++)); do
  DIR=$(mktemp -d /tmp/keel-bench-tier.XXXXXX)
  chmod 755 "$DIR"   # mariadbd runs as mysql and must reach its node folders
  base=$(free_base "$BASE_PORT")
  echo "run $r/$REPEAT in $DIR (ports $base..$((base + 29)))" >&2

  t=$(now); "$KEEL" up --dir "$DIR" --base-port "$base" --no-cache >/dev/null; R[up]+="$(since "$t") "

  pids=($(db_pids)); t=$(now); kill -9 "${pids[1]}"; wait_synced "${pids[1]}"; R[kill1]+="$(since "$t") "

  pids=($(db_pids)); t=$(now); kill -9 "${pids[@]}"; wait_synced "${pids[@]}"; R[crash3]+="$(since "$t") "

  pids=($(db_pids)); agents=$(cat "$DIR"/node*.agent.pid)
  t=$(now); kill -9 $agents "${pids[@]}"
  # SIGKILL is asynchronous: wait until every killed process is gone (or a zombie).
  for p in $agents "${pids[@]}"; do
    while s=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) && [[ -n "$s" && "$s" != Z ]]; do sleep 0.05; done
  done
  "$KEEL" up --dir "$DIR" >/dev/null; R[outage]+="$(since "$t") "

  t=$(now); "$KEEL" down --dir "$DIR" >/dev/null; R[down]+="$(since "$t") "
  t=$(now); "$KEEL" up --dir "$DIR" >/dev/null; R[restart]+="$(since "$t") "
  "$KEEL" down --dir "$DIR" >/dev/null
  rm -rf "$DIR"   # this script's own temp dir
  DIR=""
done

stats() { python3 -c 'import sys, statistics as s; v=[float(x) for x in sys.argv[1:]]; print(f"{s.median(v):.1f} | {min(v):.1f} | {max(v):.1f}")' $1; }
echo
echo "| step | median s | min s | max s |"
echo "| --- | --- | --- | --- |"
echo "| \`keel up\` from nothing to 3 x Synced | $(stats "${R[up]}") |"
echo "| kill -9 of one mariadbd to 3 x Synced (recover, IST) | $(stats "${R[kill1]}") |"
echo "| kill -9 of all three mariadbd to 3 x Synced, automatic | $(stats "${R[crash3]}") |"
echo "| kill -9 of all agents and mariadbd, \`keel up\` to 3 x Synced | $(stats "${R[outage]}") |"
echo "| \`keel down\` (clean, one node at a time) | $(stats "${R[down]}") |"
echo "| \`keel up\` after a clean stop (last node out bootstraps) | $(stats "${R[restart]}") |"
echo
echo "REPEAT=$REPEAT, $(nproc) cores, $(date -u +%Y-%m-%d), $(mariadbd --version | awk '{print $3}')"
