"""python-memcached (the `memcache` module) the way seafevents uses it.

Usage: /usr/bin/python3 python_memcache_seafile.py HOST PORT
"""

import time

import memcache

from common import ONE_MIB, Checker, parse_args, wait_until

host, port, _ = parse_args()
mc = memcache.Client([f"{host}:{port}"], socket_timeout=10)
ck = Checker("python-memcache")
ck.true("flush_all", mc.flush_all() is None)


def flags_and_types():
    ck.true("set str", mc.set("k:str", "hello seafile"))
    ck.eq("get str", mc.get("k:str"), "hello seafile")
    ck.true("set bytes", mc.set("k:bytes", b"\x00\xffraw"))
    ck.eq("get bytes", mc.get("k:bytes"), b"\x00\xffraw")
    ck.true("set int", mc.set("k:int", 42))
    ck.eq("get int", mc.get("k:int"), 42)
    d = {"repo_id": "0f7a", "perm": "rw", "size": 123, "tags": ["a", "b"]}
    ck.true("set pickled dict", mc.set("k:dict", d))
    ck.eq("get pickled dict", mc.get("k:dict"), d)
    ck.eq("get missing", mc.get("k:missing"), None)


def multi():
    items = {f"m:{i}": f"v{i}" for i in range(50)}
    ck.eq("set_multi failed keys", mc.set_multi(items), [])
    ck.eq("get_multi", mc.get_multi(list(items) + ["m:none"]), items)
    ck.eq("get_multi prefix", mc.get_multi(["1", "2"], key_prefix="m:"), {"1": "v1", "2": "v2"})
    ck.true("delete_multi", mc.delete_multi(["m:1", "m:2"]))
    ck.eq("after delete_multi", mc.get_multi(["m:1", "m:2", "m:3"]), {"m:3": "v3"})


def add_and_replace():
    ck.true("add new", mc.add("a:probe", "first"))
    ck.eq("add existing", bool(mc.add("a:probe", "second")), False)
    ck.eq("value after add", mc.get("a:probe"), "first")
    ck.true("replace existing", mc.replace("a:probe", "third"))
    ck.eq("replace missing", bool(mc.replace("a:none", "x")), False)
    ck.true("append", mc.append("a:probe", "+tail"))
    ck.true("prepend", mc.prepend("a:probe", "head+"))
    ck.eq("after append/prepend", mc.get("a:probe"), "head+third+tail")


def counters():
    ck.true("set counter", mc.set("c:n", "10"))
    ck.eq("incr", mc.incr("c:n"), 11)
    ck.eq("incr 5", mc.incr("c:n", 5), 16)
    ck.eq("decr 20 floors at 0", mc.decr("c:n", 20), 0)
    ck.eq("incr missing", mc.incr("c:none"), None)
    mc.set("c:max", "18446744073709551615")
    ck.eq("incr wraps at 2^64", mc.incr("c:max", 2), 1)


def delete_touch_expiry():
    mc.set("d:x", "v")
    ck.true("delete existing", mc.delete("d:x"))
    ck.eq("get deleted", mc.get("d:x"), None)
    ck.true("set ttl 100000", mc.set("e:far", "v", time=100000))
    ck.true("set absolute future", mc.set("e:abs", "v", time=int(time.time()) + 3600 * 24 * 40))
    ck.eq("far present", mc.get("e:far"), "v")
    ck.eq("absolute future present", mc.get("e:abs"), "v")
    ck.true("set absolute past", mc.set("e:past", "v", time=2678400))
    ck.eq("absolute past is expired", mc.get("e:past"), None)
    ck.true("set ttl 1", mc.set("e:short", "v", time=1))
    ck.true("ttl 1 expires", wait_until(lambda: mc.get("e:short") is None, timeout=4.0), "still there after 4 s")
    mc.set("t:x", "v")
    ck.true("touch existing", mc.touch("t:x", 100000))
    ck.eq("touch missing", bool(mc.touch("t:none", 10)), False)


def large_values():
    near = b"n" * (ONE_MIB - 512)
    ck.true("set near 1 MiB", mc.set("big:near", near))
    ck.eq("get near 1 MiB", mc.get("big:near"), near)
    # python-memcached refuses values over its own 1 MiB limit client-side (returns 0) ...
    ck.eq("set 2 MiB refused by the client", mc.set("big:two", b"o" * (2 * ONE_MIB)), 0)
    # ... and within its limit the server rejects an item whose overhead pushes it over 1 MiB.
    mc.set("big:edge", "old")
    ck.eq("set exactly 1 MiB rejected by the server", bool(mc.set("big:edge", b"e" * ONE_MIB)), False)
    ck.eq("rejected set removed the old value", mc.get("big:edge"), None)
    ck.true("still in sync", mc.get("big:near") == near)


for name, fn in [
    ("flags and types", flags_and_types),
    ("multi", multi),
    ("add/replace", add_and_replace),
    ("counters", counters),
    ("delete/touch/expiry", delete_touch_expiry),
    ("large values", large_values),
]:
    ck.run(name, fn)
ck.finish()
