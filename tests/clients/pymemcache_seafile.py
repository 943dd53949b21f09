"""pymemcache configured as Django's PyMemcacheCache does (pickle serde, default_noreply=False),
plus the noreply default of a bare client.

Usage: /usr/bin/python3 pymemcache_seafile.py HOST PORT
"""

import time

from pymemcache import serde
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheIllegalInputError, MemcacheServerError

from common import ONE_MIB, Checker, parse_args, wait_until

host, port, _ = parse_args()
mc = Client((host, port), serde=serde.pickle_serde, default_noreply=False, connect_timeout=5, timeout=10)
ck = Checker("pymemcache")
ck.true("flush_all", mc.flush_all())


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
    ck.eq("get missing default", mc.get("k:missing", default="dflt"), "dflt")
    seen = {}

    class FlagSerde:
        """Passes bytes through and records the flags the server returned."""

        def serialize(self, key, value):
            return value, 0

        def deserialize(self, key, value, flags):
            seen[key] = flags
            return value

    raw = Client((host, port), default_noreply=False, serde=FlagSerde())
    ck.true("set with explicit flags", raw.set("k:flags", b"v", flags=4294967295))
    ck.eq("get flags value", raw.get("k:flags"), b"v")
    ck.eq("flags round trip", seen.get(b"k:flags", seen.get("k:flags")), 4294967295)


def multi():
    items = {f"m:{i}": f"v{i}" for i in range(50)}
    ck.eq("set_many failed keys", mc.set_many(items), [])
    got = mc.get_many(list(items) + ["m:none"])
    ck.eq("get_many", got, items)
    ck.true("delete_many", mc.delete_many(["m:1", "m:2"]))
    ck.eq("get_many after delete_many", mc.get_many(["m:1", "m:2", "m:3"]), {"m:3": "v3"})


def add_and_replace():
    ck.true("add new", mc.add("a:probe", "first"))
    ck.eq("add existing", mc.add("a:probe", "second"), False)
    ck.eq("value after add", mc.get("a:probe"), "first")
    ck.true("replace existing", mc.replace("a:probe", "third"))
    ck.eq("replace missing", mc.replace("a:none", "x"), False)
    raw = Client((host, port), default_noreply=False)
    raw.set("a:raw", b"mid")
    ck.true("append", raw.append("a:raw", b"+tail"))
    ck.true("prepend", raw.prepend("a:raw", b"head+"))
    ck.eq("after append/prepend", raw.get("a:raw"), b"head+mid+tail")
    ck.eq("append missing", raw.append("a:none", b"x"), False)


def counters():
    raw = Client((host, port), default_noreply=False)
    ck.true("set counter", raw.set("c:n", b"10"))
    ck.eq("incr", raw.incr("c:n", 1), 11)
    ck.eq("incr 5", raw.incr("c:n", 5), 16)
    ck.eq("decr 20 floors at 0", raw.decr("c:n", 20), 0)
    ck.eq("incr missing", raw.incr("c:none", 1), None)
    raw.set("c:max", b"18446744073709551615")
    ck.eq("incr wraps at 2^64", raw.incr("c:max", 2), 1)
    raw.set("c:text", b"abc")
    ck.raises("incr non-numeric", MemcacheClientError, lambda: raw.incr("c:text", 1))


def delete_touch_expiry():
    mc.set("d:x", "v")
    ck.true("delete existing", mc.delete("d:x"))
    ck.eq("delete missing", mc.delete("d:x"), False)
    ck.true("set ttl 100000", mc.set("e:far", "v", expire=100000))
    ck.true("set absolute future", mc.set("e:abs", "v", expire=int(time.time()) + 3600 * 24 * 40))
    ck.eq("far present", mc.get("e:far"), "v")
    ck.eq("absolute future present", mc.get("e:abs"), "v")
    ck.true("set absolute past", mc.set("e:past", "v", expire=2678400))
    ck.eq("absolute past is expired", mc.get("e:past"), None)
    ck.true("set ttl 1", mc.set("e:short", "v", expire=1))
    ck.true("ttl 1 expires", wait_until(lambda: mc.get("e:short") is None, timeout=4.0), "still there after 4 s")
    mc.set("t:x", "v")
    ck.true("touch existing", mc.touch("t:x", 100000))
    ck.eq("touch missing", mc.touch("t:none", 10), False)


def large_values():
    near = b"n" * (ONE_MIB - 512)
    ck.true("set near 1 MiB", mc.set("big:near", near))
    ck.eq("get near 1 MiB", mc.get("big:near"), near)
    mc.set("big:over", "old")
    err = ck.raises("set over 1 MiB", MemcacheServerError, lambda: mc.set("big:over", b"o" * (ONE_MIB + 1)))
    ck.true("error text", err is not None and "object too large for cache" in str(err), repr(err))
    ck.eq("oversized set removed the old value", mc.get("big:over"), None)
    # A bare client defaults to noreply: the failure is silent, the old value still goes away.
    bare = Client((host, port))
    bare.set("big:quiet", b"old", noreply=False)
    ck.true("noreply oversized set returns True", bare.set("big:quiet", b"o" * (2 * ONE_MIB)))
    ck.eq("noreply oversized set removed the old value", bare.get("big:quiet"), None)
    ck.eq("connection still in sync", bare.get("big:near"), near)
    ck.raises("key too long", MemcacheIllegalInputError, lambda: mc.set("k" * 251, "v"))


def cas():
    raw = Client((host, port), default_noreply=False)
    raw.set("cas:k", b"v1")
    v, token = raw.gets("cas:k")
    ck.eq("gets value", v, b"v1")
    ck.true("cas with gets token", raw.cas("cas:k", b"v2", token))
    ck.eq("cas with stale token", raw.cas("cas:k", b"v3", token), False)
    ck.eq("cas on missing key", raw.cas("cas:none", b"v", token), None)
    ck.eq("value after cas", raw.get("cas:k"), b"v2")


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
