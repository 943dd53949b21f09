"""keel's cache demo: the operations Seafile's components perform, through pylibmc."""
import sys
import time

import pylibmc

host, port = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 10
mc = pylibmc.Client([f"{host}:{port}"], behaviors={"tcp_nodelay": True})
while True:
    try:
        mc.get_stats()
        break
    except pylibmc.Error:
        if time.time() > deadline:
            raise
        time.sleep(0.05)

mc.set("repo:decrypt-key:42", {"key": "0123abcd", "iv": "feed"}, time=3600)
print("set  repo:decrypt-key:42 ->", mc.get("repo:decrypt-key:42"))
mc.set("login-failures:alice", 0)
for _ in range(3):
    mc.incr("login-failures:alice")
print("incr login-failures:alice x3 ->", mc.get("login-failures:alice"))
print("add  existing key ->", mc.add("repo:decrypt-key:42", "other"))
print("get_multi ->", mc.get_multi(["repo:decrypt-key:42", "login-failures:alice", "missing"]))
(server, stats), = mc.get_stats()
print(f"stats from {server.decode()}: version={stats[b'version'].decode()} "
      f"curr_items={stats[b'curr_items'].decode()} get_hits={stats[b'get_hits'].decode()}")
assert mc.get("login-failures:alice") == 3
