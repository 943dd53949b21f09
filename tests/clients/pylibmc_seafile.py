"""pylibmc (libmemcached) the way seahub uses it (Django PyLibMCCache), text or `--binary`.

Usage: /usr/bin/python3 pylibmc_seafile.py HOST PORT [--binary]
"""

import time

import pylibmc

from common import ONE_MIB, Checker, parse_args, wait_until

host, port, binary = parse_args()
mc = pylibmc.Client([f"{host}:{port}"], binary=binary, behaviors={"tcp_nodelay": True})
ck = Checker("pylibmc" + (" binary" if binary else " text"))
mc.flush_all()


def flags_and_types():
    ck.true("set str", mc.set("k:str", "hello seafile"))
    ck.eq("get str", mc.get("k:str"), "hello seafile")
    ck.true("set bytes", mc.set("k:bytes", b"\x00\x01\xffraw"))
    ck.eq("get bytes", mc.get("k:bytes"), b"\x00\x01\xffraw")
    ck.true("set int", mc.set("k:int", 42))
    ck.eq("get int", mc.get("k:int"), 42)
    ck.true("set long", mc.set("k:long", 2**62))
    ck.eq("get long", mc.get("k:long"), 2**62)
    ck.true("set bool", mc.set("k:bool", True))
    ck.eq("get bool", mc.get("k:bool"), True)
    d = {"repo_id": "0f7a", "perm": "rw", "size": 123, "tags": ["a", "b"]}
    ck.true("set pickled dict", mc.set("k:dict", d))
    ck.eq("get pickled dict", mc.get("k:dict"), d)
    ck.eq("get missing", mc.get("k:missing"), None)
    ck.eq("get missing default", mc.get("k:missing", "dflt"), "dflt")


def multi():
    items = {f"m:{i}": f"v{i}" for i in range(50)}
    items["m:dict"] = {"x": 1}
    ck.eq("set_multi failed keys", mc.set_multi(items), [])
    got = mc.get_multi(list(items) + ["m:none1", "m:none2"])
    ck.eq("get_multi", got, items)
    ck.eq("get_multi prefix", mc.get_multi(["1", "2", "nope"], key_prefix="m:"), {"1": "v1", "2": "v2"})
    ck.true("delete_multi", mc.delete_multi(["m:1", "m:2"]))
    ck.eq("get_multi after delete_multi", mc.get_multi(["m:1", "m:2", "m:3"]), {"m:3": "v3"})


def add_and_replace():
    mc.delete("a:probe")
    ck.true("add new", mc.add("a:probe", "first"))
    ck.eq("add existing", mc.add("a:probe", "second"), False)
    ck.eq("value after add", mc.get("a:probe"), "first")
    ck.true("replace existing", mc.replace("a:probe", "third"))
    if binary:
        # libmemcached maps the binary protocol's "Not found" status to an exception.
        ck.raises("replace missing", pylibmc.NotFound, lambda: mc.replace("a:none", "x"))
    else:
        ck.eq("replace missing", mc.replace("a:none", "x"), False)
    ck.eq("value after replace", mc.get("a:probe"), "third")
    ck.true("append", mc.append("a:probe", "+tail"))
    ck.true("prepend", mc.prepend("a:probe", "head+"))
    ck.eq("after append/prepend", mc.get("a:probe"), "head+third+tail")


def counters():
    ck.true("set counter", mc.set("c:n", 10))
    ck.eq("incr", mc.incr("c:n"), 11)
    ck.eq("incr 5", mc.incr("c:n", 5), 16)
    ck.eq("decr 20 floors at 0", mc.decr("c:n", 20), 0)
    ck.eq("get counter", mc.get("c:n"), 0)
    ck.raises("incr missing", pylibmc.NotFound, lambda: mc.incr("c:none"))
    ck.true("set max", mc.set("c:max", "18446744073709551615"))
    ck.eq("incr wraps at 2^64", mc.incr("c:max", 2), 1)
    mc.set("c:text", "abc")
    ck.raises("incr non-numeric", pylibmc.Error, lambda: mc.incr("c:text"))


def delete_touch_expiry():
    mc.set("d:x", "v")
    ck.true("delete existing", mc.delete("d:x"))
    ck.eq("delete missing", mc.delete("d:x"), False)
    ck.eq("get deleted", mc.get("d:x"), None)
    # Relative TTL far away, absolute time in the future (Django adds time.time() for > 30 days).
    ck.true("set ttl 100000", mc.set("e:far", "v", time=100000))
    ck.true("set absolute future", mc.set("e:abs", "v", time=int(time.time()) + 3600 * 24 * 40))
    ck.eq("far ttl present", mc.get("e:far"), "v")
    ck.eq("absolute future present", mc.get("e:abs"), "v")
    # Absolute time in the past (libmemcached's existence probe uses 2678400 = 1970): gone at once.
    ck.true("set absolute past", mc.set("e:past", "v", time=2678400))
    ck.eq("absolute past is expired", mc.get("e:past"), None)
    ck.true("set ttl 1", mc.set("e:short", "v", time=1))
    ck.true("ttl 1 expires", wait_until(lambda: mc.get("e:short") is None, timeout=4.0), "still there after 4 s")
    mc.set("t:x", "v")
    ck.true("touch existing", mc.touch("t:x", 100000))
    ck.eq("touch missing", mc.touch("t:none", 10), False)
    ck.true("touch to the past", mc.touch("t:x", 2678400))
    ck.eq("touched into the past is gone", mc.get("t:x"), None)


def large_values():
    near = b"n" * (ONE_MIB - 512)
    ck.true("set near 1 MiB", mc.set("big:near", near))
    ck.eq("get near 1 MiB", mc.get("big:near"), near)
    mc.set("big:over", "old")
    ck.raises("set over 1 MiB", pylibmc.TooBig, lambda: mc.set("big:over", b"o" * (ONE_MIB + 1)))
    ck.raises("set 2 MiB", pylibmc.TooBig, lambda: mc.set("big:two", b"o" * (2 * ONE_MIB)))
    ck.eq("get near still there", len(mc.get("big:near") or b""), len(near))
    ck.true("server still answers", mc.set("big:after", "ok") and mc.get("big:after") == "ok")


def cas():
    mc2 = pylibmc.Client([f"{host}:{port}"], binary=binary, behaviors={"cas": True})
    mc2.set("cas:k", "v1")
    v, token = mc2.gets("cas:k")
    ck.eq("gets value", v, "v1")
    ck.true("cas with gets token", mc2.cas("cas:k", "v2", token))
    ck.eq("cas with stale token", mc2.cas("cas:k", "v3", token), False)
    ck.eq("value after cas", mc2.get("cas:k"), "v2")


for name, fn in [
    ("flags and types", flags_and_types),
    ("multi", multi),
    ("add/replace", add_and_replace),
    ("counters", counters),
    ("delete/touch/expiry", delete_touch_expiry),
    ("large values", large_values),
    ("cas", cas),
]:
    ck.run(name, fn)
ck.finish()
