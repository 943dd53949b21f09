"""keel's tier demo: SQL through one node's db-proxy read back through another's, a cache write
on one node read on another (pylibmc, the client seahub uses), and the same with Redis (redis-py,
what Seafile 13's seafevents and seahub use): a key, a task queue and a pub/sub channel shared by
the three nodes.

Usage: demo_tier.py KEEL_BINARY TIER_DIR   (after `keel up --dir TIER_DIR`)
"""
import json
import os
import subprocess
import sys

import pylibmc
import redis

keel, tier = sys.argv[1], sys.argv[2]
status = json.loads(subprocess.check_output([keel, "status", "--dir", tier, "--json"]))
nodes = status["nodes"]
first, last = nodes[0], nodes[-1]


def sql(node, query):
    host, port = node["proxy"]["addr"].rsplit(":", 1)
    out = subprocess.run(
        ["mariadb", f"--defaults-file={tier}/app.cnf", f"--host={host}", f"--port={port}",
         "--connect-timeout=20", "-N", "-B", "-e", query],
        check=True, capture_output=True, text=True)
    return out.stdout.strip()


print(f"the writer (every proxy names it): {status['writer']}")
sql(first, "CREATE TABLE IF NOT EXISTS seafile_db.demo (id INT PRIMARY KEY, msg VARCHAR(64)); "
           "REPLACE INTO seafile_db.demo VALUES (1, 'hello from keel')")
print(f"SQL  write through {first['name']}'s db-proxy {first['proxy']['addr']}: "
      "REPLACE INTO seafile_db.demo VALUES (1, 'hello from keel')")
got = sql(last, "SELECT msg FROM seafile_db.demo WHERE id = 1")
served_by = sql(last, "SELECT @@wsrep_node_name")
print(f"SQL  read  through {last['name']}'s db-proxy {last['proxy']['addr']}: {got!r} "
      f"(served by {served_by}, the writer)")
assert got == "hello from keel", got

mc1 = pylibmc.Client([first["cache"]["addr"]], behaviors={"tcp_nodelay": True})
mc3 = pylibmc.Client([last["cache"]["addr"]], behaviors={"tcp_nodelay": True})
mc1.set("repo:decrypt-key:42", {"key": "0123abcd", "iv": "feed"}, time=3600)
mc1.set("login-failures:alice", 0)
for _ in range(3):
    mc1.incr("login-failures:alice")
print(f"cache set on {first['name']} {first['cache']['addr']}: repo:decrypt-key:42, "
      "login-failures:alice (incr x3)")
got = mc3.get_multi(["repo:decrypt-key:42", "login-failures:alice"])
print(f"cache get on {last['name']} {last['cache']['addr']}: {got}")
assert got == {"repo:decrypt-key:42": {"key": "0123abcd", "iv": "feed"}, "login-failures:alice": 3}, got
print(f"cache add of an existing key on {last['name']}: {mc3.add('repo:decrypt-key:42', 'other')} "
      "(the key is the same everywhere)")

pw_file = os.path.join(tier, "secrets", "redis.password")
password = open(pw_file).read().strip() if os.path.exists(pw_file) else None


def rconn(node):
    host, port = node["cache"]["redis_addr"].rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), password=password, socket_timeout=10)


r1, r2, r3 = rconn(nodes[0]), rconn(nodes[1]), rconn(nodes[-1])
sub = r3.pubsub()
sub.subscribe("metric_channel")
assert sub.get_message(timeout=5)["type"] == "subscribe"
r1.set("seafile13:demo", "hello from keel's Redis", ex=3600)
r1.lpush("repo_size_task", "repo-42")
got_receivers = r1.publish("metric_channel", "files_uploaded 1")
print(f"redis on {first['name']} {first['cache']['redis_addr']}: SET seafile13:demo, "
      "LPUSH repo_size_task repo-42, PUBLISH metric_channel")
got = r3.get("seafile13:demo")
print(f"redis GET on {last['name']} {last['cache']['redis_addr']}: {got!r}")
assert got == b"hello from keel's Redis", got
task = r2.brpop("repo_size_task", 5)
print(f"redis BRPOP repo_size_task on {nodes[1]['name']}: {task!r} (each task goes to one consumer)")
assert task == (b"repo_size_task", b"repo-42"), task
msg = sub.get_message(timeout=5)
print(f"redis subscriber on {last['name']} got: {msg['data']!r}")
assert msg["data"] == b"files_uploaded 1", msg
sub.close()
role = {n["name"]: rconn(n).info("replication")["role"] for n in nodes}
print(f"redis INFO replication roles (the Raft leader is the master; every node takes writes): {role}")

print()
print("where to connect:")
for n in nodes:
    print(f"  {n['name']}: MySQL clients -> db-proxy {n['proxy']['addr']}   memcached clients -> {n['cache']['addr']}"
          f"   Redis clients -> {n['cache']['redis_addr']}")
print(f"  mariadb --defaults-file={tier}/app.cnf   (node1's db-proxy, app user)")
print(f"stop:     {keel} down --dir {tier}")
