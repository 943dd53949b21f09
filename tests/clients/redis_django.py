"""Django 5's django.core.cache.backends.redis.RedisCache (what seahub uses with
CACHE_PROVIDER=redis) against one server: `HOST PORT [--password PW]`.

Run with /opt/keel-py/redis8/bin/python (Django 5.x and redis-py 8.x from PyPI, made by
scripts/install-deps.sh; Debian's python3-django is 3.2, which has no RedisCache). Exits non-zero
if any check failed; must pass against Debian's redis-server 7.0.15 too.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker  # noqa: E402

import django  # noqa: E402
from django.conf import settings  # noqa: E402


def main():
    args = sys.argv[1:]
    host, port = args[0], int(args[1])
    password = args[args.index("--password") + 1] if "--password" in args else None
    auth = f":{password}@" if password else ""
    settings.configure(CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://{auth}{host}:{port}/0",
            "KEY_PREFIX": "seahub",
            "TIMEOUT": 300,
        }
    })
    django.setup()
    from django.core.cache import cache

    c = Checker(f"redis_django (Django {django.get_version()})")

    def basics():
        cache.clear()
        cache.set("k", {"user": "a@b.c", "n": 1})
        c.eq("set/get object", cache.get("k"), {"user": "a@b.c", "n": 1})
        c.eq("get default", cache.get("missing", "dflt"), "dflt")
        c.true("add new", cache.add("new", "v1") is True)
        c.true("add existing refused", cache.add("new", "v2") is False)
        c.eq("add kept first", cache.get("new"), "v1")
        cache.set("int", 5)
        c.eq("incr", cache.incr("int"), 6)
        c.eq("incr by 10", cache.incr("int", 10), 16)
        c.eq("decr", cache.decr("int", 6), 10)
        c.raises("incr missing", ValueError, lambda: cache.incr("nokey"))
        c.true("has_key", cache.has_key("int"))
        c.true("has_key missing", not cache.has_key("nokey"))
        cache.set_many({"m1": 1, "m2": [1, 2], "m3": "three"}, timeout=60)
        c.eq("get_many", cache.get_many(["m1", "m2", "m3", "nokey"]),
             {"m1": 1, "m2": [1, 2], "m3": "three"})
        cache.delete_many(["m1", "m2"])
        c.eq("delete_many", cache.get_many(["m1", "m2", "m3"]), {"m3": "three"})
        c.true("delete", cache.delete("m3") is True)
        c.true("delete missing", cache.delete("m3") is False)
        c.eq("get_or_set", cache.get_or_set("gos", lambda: "computed"), "computed")
        c.eq("get_or_set existing", cache.get_or_set("gos", "other"), "computed")
        cache.set("big", b"\x00" * 200000)
        c.eq("200 kB value", len(cache.get("big")), 200000)

    def timeouts():
        cache.set("short", "v", timeout=1)
        c.eq("before expiry", cache.get("short"), "v")
        cache.set("forever", "v", timeout=None)
        cache.set("touched", "v", timeout=1)
        c.true("touch", cache.touch("touched", 30) is True)
        c.true("touch missing", cache.touch("nokey", 30) is False)
        time.sleep(1.3)
        c.eq("expired", cache.get("short"), None)
        c.eq("touched survives", cache.get("touched"), "v")
        c.eq("no timeout survives", cache.get("forever"), "v")
        cache.set("zero", "v", timeout=0)
        c.eq("timeout 0 is not stored", cache.get("zero"), None)
        c.eq("raw ttl of no-timeout key", cache._cache.get_client("forever").ttl(
            cache.make_and_validate_key("forever")), -1)

    def clear():
        cache.set("x", 1)
        cache.clear()
        c.eq("clear", cache.get("x"), None)

    c.run("basics", basics)
    c.run("timeouts", timeouts)
    c.run("clear", clear)
    c.finish()


if __name__ == "__main__":
    main()
