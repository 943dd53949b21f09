"""Django settings of the Seafile-shaped test application, built from what `keel seafile-config`
printed for this app node (nothing here names a host, a port or a password).

Environment:
  SEAFILE_APP_DIR   folder with one subfolder per node (node1/, node2/, ...), each holding the
                    `seafile.conf` and `seahub_settings.py` that
                    `keel seafile-config --node NODE --only seafile.conf|seahub_settings.py` printed
  SEAFILE_APP_NODE  the node this app server is (its local keel proxy and cache)

What is taken from where, as Seafile's components take it:
  DATABASES['default']  seahub_settings.py's DATABASES verbatim (seahub: seahub_db through the
                        node's keel db-proxy, django.db.backends.mysql = python3-mysqldb)
  DATABASES['seafile']  seafile.conf's [database] section (seaf-server: seafile_db; REPEATABLE READ,
                        seaf-server's isolation level; persistent connections, recycled after 2 s
                        like a pool's connection lifetime)
  CACHES['default']     the old multi-server seahub form: Django's PyLibMCCache listing the cache
                        LOCATION of every node's seahub_settings.py, OPTIONS {'behaviors':
                        {'ketama': True}} (Django 3.2 passes OPTIONS to pylibmc.Client as keyword
                        arguments, so libmemcached behaviours go under 'behaviors')
  CACHES['local']       the printed single-LOCATION CACHES['default']; its backend
                        django_pylibmc.memcached.PyLibMCCache is not packaged by Debian, so
                        Django's own PyLibMCCache (the same pylibmc client) stands in for it
  MEMCACHED_SERVER      the first `--SERVER=` of seafile.conf's memcached_options, read the way
                        Seafile's Python components read it (only when the string starts with it)
"""

import configparser
import os
import re
import runpy

APP_DIR = os.environ["SEAFILE_APP_DIR"]
NODE = os.environ["SEAFILE_APP_NODE"]
NODES = sorted(
    d for d in os.listdir(APP_DIR) if os.path.isfile(os.path.join(APP_DIR, d, "seahub_settings.py"))
)
assert NODE in NODES, f"{NODE} has no seahub_settings.py in {APP_DIR} (nodes: {NODES})"


def printed_seahub(node):
    """The names that node's printed seahub_settings.py defines (it is Python: run it)."""
    return runpy.run_path(os.path.join(APP_DIR, node, "seahub_settings.py"))


def printed_seafile_conf(node):
    conf = configparser.ConfigParser(interpolation=None)  # GKeyFile has no interpolation
    with open(os.path.join(APP_DIR, node, "seafile.conf")) as f:
        conf.read_file(f)
    return conf


mine = printed_seahub(NODE)
seafile_conf = printed_seafile_conf(NODE)

SECRET_KEY = "keel-seafile-e2e"
USE_TZ = True
INSTALLED_APPS = []
TIMEOUTS = {"connect_timeout": 20, "read_timeout": 20, "write_timeout": 20}

DATABASES = mine["DATABASES"]
assert DATABASES["default"]["ENGINE"] == "django.db.backends.mysql", DATABASES
DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), **TIMEOUTS}
DATABASES["default"]["CONN_MAX_AGE"] = 0  # seahub's default: a connection per request

db = seafile_conf["database"]
assert db["type"] == "mysql", dict(db)
DATABASES["seafile"] = {
    "ENGINE": "django.db.backends.mysql",
    "HOST": db["host"],
    "PORT": db["port"],
    "USER": db["user"],
    "PASSWORD": db["password"],
    "NAME": db["db_name"],
    "CONN_MAX_AGE": 2,
    "OPTIONS": {
        "charset": db.get("connection_charset", "utf8"),
        "isolation_level": "repeatable read",
        **TIMEOUTS,
    },
}

printed_cache = mine["CACHES"]["default"]
assert printed_cache["BACKEND"] == "django_pylibmc.memcached.PyLibMCCache", printed_cache
LOCATIONS = [printed_seahub(n)["CACHES"]["default"]["LOCATION"] for n in NODES]
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.memcached.PyLibMCCache",
        "LOCATION": LOCATIONS,
        "OPTIONS": {"behaviors": {"ketama": True}},
    },
    "local": {
        "BACKEND": "django.core.cache.backends.memcached.PyLibMCCache",
        "LOCATION": printed_cache["LOCATION"],
    },
    "locmem": mine["CACHES"]["locmem"],
}
COMPRESS_CACHE_BACKEND = mine["COMPRESS_CACHE_BACKEND"]

# seafevents: `re.match('--SERVER\\s*=\\s*(\\S+)', memcached_options)`: the first server only.
_m = re.match(r"--SERVER\s*=\s*(\S+)", seafile_conf["memcached"]["memcached_options"])
assert _m, seafile_conf["memcached"]["memcached_options"]
MEMCACHED_SERVER = _m.group(1)
assert MEMCACHED_SERVER == printed_cache["LOCATION"], (MEMCACHED_SERVER, printed_cache)
