"""What seafevents (and seafobj) do with redis-py, against one server: `HOST PORT [--password PW]
[--expect-resp 2|3] [--keel]` (`--keel`: the server is keel, which accepts seahub 13's URL form
`redis://PASSWORD@host`, where redis-server refuses it).

Run it with the redis-py under test: /opt/keel-py/redis6/bin/python (6.2.x, Seafile's pin, RESP2),
/opt/keel-py/redis8/bin/python (8.x, RESP3 by default: HELLO 3 [AUTH default pw]) or Debian's
/usr/bin/python3 (python3-redis 4.3.4). Exits non-zero if any check failed; must pass against
Debian's redis-server 7.0.15 too (that proves the script).
"""

import os
import pickle
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker  # noqa: E402

import redis  # noqa: E402


def main():
    args = sys.argv[1:]
    host, port = args[0], int(args[1])
    password = None
    expect_resp = None
    if "--password" in args:
        password = args[args.index("--password") + 1]
    if "--expect-resp" in args:
        expect_resp = int(args[args.index("--expect-resp") + 1])
    keel = "--keel" in args
    c = Checker(f"redis_seafevents (redis-py {redis.__version__})")
    # seafevents: socket_timeout 40 s around BRPOP 30; pub/sub health checks every 30 s (1 s here).
    r = redis.Redis(host=host, port=port, password=password, socket_timeout=40,
                    health_check_interval=1)
    other = redis.Redis(host=host, port=port, password=password, socket_timeout=10)

    def protocol():
        c.true("ping", r.ping() is True)
        if expect_resp is not None:
            try:
                conn = r.connection_pool.get_connection()
            except TypeError:  # redis-py < 5.3 wants a command name
                conn = r.connection_pool.get_connection("PING")
            try:
                got = int(getattr(conn, "protocol", None) or 2)
            finally:
                r.connection_pool.release(conn)
            c.eq("protocol negotiated", got, expect_resp)
        info = r.execute_command("CLIENT", "INFO")
        if isinstance(info, bytes):
            info = info.decode()
        if expect_resp is not None:
            c.true("CLIENT INFO shows resp", f"resp={expect_resp}" in info, info)

    def strings():
        r.delete("k", "sx", "obj", "cnt")
        c.true("set", r.set("k", "v") is True)
        c.eq("get", r.get("k"), b"v")
        c.eq("get missing", r.get("nokey"), None)
        c.true("setex", r.setex("sx", 100, "val") is True)
        ttl = r.ttl("sx")
        c.true("ttl after setex", 98 <= ttl <= 100, f"ttl {ttl}")
        value = pickle.dumps({"repo": "abc", "size": 12345, "bytes": bytes(range(256))})
        c.true("set pickled EX (seafobj)", r.set("obj", value, ex=86400) is True)
        c.eq("get pickled", pickle.loads(r.get("obj")), pickle.loads(value))
        c.eq("delete", r.delete("k", "sx", "nokey"), 2)
        c.eq("exists", r.exists("obj"), 1)
        r.set("cnt", 10)
        c.eq("incrby raw integer", r.incrby("cnt", 5), 15)
        c.eq("mget", r.mget(["cnt", "nokey"]), [b"15", None])

    def lock():
        r.delete("lock")
        c.true("SET NX EX takes the lock", r.set("lock", "owner1", ex=10, nx=True) is True)
        c.eq("second SET NX EX fails", r.set("lock", "owner2", ex=10, nx=True), None)
        ttl = r.ttl("lock")
        c.true("lock ttl", 8 <= ttl <= 10, f"ttl {ttl}")
        c.true("expire extends", r.expire("lock", 30) is True)
        c.true("ttl extended", 28 <= r.ttl("lock") <= 30)
        c.eq("owner kept", r.get("lock"), b"owner1")
        c.eq("release", r.delete("lock"), 1)
        c.eq("ttl of missing", r.ttl("lock"), -2)
        c.true("retake", r.set("lock", "owner2", ex=10, nx=True) is True)
        r.delete("lock")

    def queues():
        r.delete("repo_size_task", "metadata_task", "face_cluster_task")
        c.eq("lpush", r.lpush("repo_size_task", "repo1"), 1)
        c.eq("lpush more", r.lpush("repo_size_task", "repo2", "repo3"), 3)
        c.eq("brpop oldest first", r.brpop("repo_size_task", timeout=1),
             (b"repo_size_task", b"repo1"))
        c.eq("brpop several queues", r.brpop(["metadata_task", "repo_size_task"], timeout=1),
             (b"repo_size_task", b"repo2"))
        r.delete("repo_size_task")
        t0 = time.monotonic()
        c.eq("brpop times out with None", r.brpop("metadata_task", timeout=1), None)
        took = time.monotonic() - t0
        c.true("brpop timeout on time", 0.9 <= took < 3.0, f"took {took:.2f} s")

        def push_later():
            time.sleep(0.3)
            other.lpush("face_cluster_task", "job")
        th = threading.Thread(target=push_later)
        th.start()
        t0 = time.monotonic()
        got = r.brpop(["face_cluster_task"], timeout=5)
        took = time.monotonic() - t0
        th.join()
        c.eq("brpop woken by another client", got, (b"face_cluster_task", b"job"))
        c.true("woken promptly", took < 2.0, f"took {took:.2f} s")

    def pubsub():
        p = r.pubsub(ignore_subscribe_messages=True)
        p.subscribe("metric_channel", "metadata_update")
        # the subscribe confirmations are swallowed; wait until both are in place
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            p.get_message(timeout=0.1)
            if dict(other.pubsub_numsub("metric_channel", "metadata_update")) == {
                    b"metric_channel": 1, b"metadata_update": 1}:
                break
        c.eq("numsub", dict(other.pubsub_numsub("metric_channel", "metadata_update")),
             {b"metric_channel": 1, b"metadata_update": 1})
        c.eq("publish reaches one", other.publish("metric_channel", "m1"), 1)

        def next_message(what):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                m = p.get_message(timeout=0.5)
                if m is not None:
                    return m
            c.true(what, False, "no message within 5 s")
            return None
        m = next_message("first message")
        if m:
            c.eq("message", (m["type"], m["channel"], m["data"]),
                 ("message", b"metric_channel", b"m1"))
        # let the health-check interval pass: the next read sends PING inside subscribed mode
        time.sleep(1.3)
        c.eq("no message yet (health check answered and swallowed)", p.get_message(timeout=0.3),
             None)
        c.eq("publish after health check", other.publish("metadata_update", b"\x80pickled"), 1)
        m = next_message("message after health check")
        if m:
            c.eq("message 2", (m["channel"], m["data"]), (b"metadata_update", b"\x80pickled"))
        p.ping()
        m = next_message("explicit ping reply")
        if m:
            c.eq("ping in subscribed mode", m["type"], "pong")
        p.unsubscribe()
        p.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and other.publish("metric_channel", "x") != 0:
            time.sleep(0.05)
        c.eq("nobody listens after close", other.publish("metric_channel", "x"), 0)

    def pipelines():
        r.delete("pc", "pl")
        pipe = r.pipeline(transaction=True)
        pipe.set("pc", 1).incr("pc").incrby("pc", 10).get("pc").rpush("pl", "a", "b")
        c.eq("transaction", pipe.execute(), [True, 2, 12, b"12", 2])
        pipe = r.pipeline(transaction=False)
        for i in range(100):
            pipe.incr("pc")
        res = pipe.execute()
        c.eq("pipeline of 100", (res[0], res[-1], len(res)), (13, 112, 100))
        with r.pipeline() as pipe:
            pipe.watch("pc")
            cur = int(pipe.get("pc"))
            pipe.multi()
            pipe.set("pc", cur + 1)
            c.eq("watched transaction", pipe.execute(), [True])
        with r.pipeline() as pipe:
            pipe.watch("pc")
            other.set("pc", 0)
            pipe.multi()
            pipe.set("pc", 99)
            c.raises("watch conflict", redis.WatchError, pipe.execute)
        c.eq("conflicting write lost", r.get("pc"), b"0")
        pipe = r.pipeline(transaction=True)
        pipe.set("pl2", 1).lpush("pc", "x")
        c.raises("error inside EXEC", redis.ResponseError, pipe.execute)

    def wrong_password():
        if password is None:
            return
        bad = redis.Redis(host=host, port=port, password=password + "x", socket_timeout=5)
        c.raises("wrong password", (redis.AuthenticationError, redis.ResponseError), bad.ping)
        # seahub has built `redis://{password}@host:port`: redis-py reads the password as a user
        # name and sends `AUTH <password> ""`, which a password-protected redis-server refuses
        # and keel accepts (it proves the same secret).
        url = redis.Redis.from_url(f"redis://{password}@{host}:{port}/0", socket_timeout=5)
        if keel:
            c.true("password given as user name in the URL (seahub 13)", url.ping() is True)
        else:
            c.raises("password given as user name in the URL",
                     (redis.AuthenticationError, redis.ResponseError), url.ping)
        good = redis.Redis.from_url(f"redis://:{password}@{host}:{port}/0", socket_timeout=5)
        c.true("password in the URL's password field", good.ping() is True)
        none = redis.Redis(host=host, port=port, socket_timeout=5)
        c.raises("no password", (redis.AuthenticationError, redis.ResponseError), lambda: none.get("k"))

    c.run("protocol", protocol)
    c.run("strings", strings)
    c.run("lock", lock)
    c.run("queues", queues)
    c.run("pubsub", pubsub)
    c.run("pipelines", pipelines)
    c.run("wrong password", wrong_password)
    c.finish()


if __name__ == "__main__":
    main()
