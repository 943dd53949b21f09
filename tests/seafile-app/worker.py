"""A Seafile-shaped application worker for keel's end-to-end test (crates/keel/tests/it/seafile.rs).

One worker runs per app node, configured only from what `keel seafile-config` printed for that node
(see seafile_app/settings.py), with Debian's python3-django, python3-mysqldb, python3-pylibmc and
python3-memcache. It never exits on errors: it retries with a short backoff and logs.

Usage (SEAFILE_APP_DIR and SEAFILE_APP_NODE set, see settings.py):
  worker.py setup            create the tables (Seafile's Branch DDL, a commit log, a seahub table)
                             and the library heads
  worker.py counters EPOCH   create epoch EPOCH's login-failure counters (0, never expiring)
  worker.py run OUT_DIR      the loop below, until the control file says exit

Two loops, in two threads (so a stalled database never delays the cache side):
  (a) the seaf-server side: a library head update the way seaf-server does it, on seafile.conf's
      database: BEGIN; SELECT commit_id FROM Branch WHERE name='master' AND repo_id=? FOR UPDATE;
      UPDATE Branch SET commit_id=? ...; INSERT INTO CommitLog (the new commit, its parent); COMMIT
      -> OUT_DIR/commits.log: `OK ts repo commit parent` once COMMIT returned, `AMBIG ...` when the
      error came during COMMIT (the outcome is unknown); errors before COMMIT are retried.
      Every 8th iteration also a seahub "request" on DATABASES['default'] (seahub_db).
  the cache side, one client kind per iteration (round robin):
  (b) login-failure counters incremented: `lf:EPOCH:shared` (every worker) and `lf:EPOCH:NODE`
      -> OUT_DIR/incr.log: `OK ts key value kind` (acknowledged, the value returned),
      `AMBIG ts key - kind error` (an error: maybe applied), `MISSING ts key - kind` (a definite
      NOT_FOUND: not applied).
  (c) a decrypt-key-like entry `dk:NODE:SEQ` set (`SET ts key - kind` in incr.log once
      acknowledged), then read through every kind; a successful read that is not the value just
      acknowledged -> OUT_DIR/mismatch.log.
Client kinds (all keys are Django's full keys, `:1:` + key, so every kind sees the same item):
  django-ketama   caches['default']: Django PyLibMCCache over every node's cache, ketama
  django-local    caches['local']: the printed single-LOCATION seahub cache (this node's)
  python-memcached  memcache.Client over every node's cache (dead_retry 30 s, rehashes)
  pylibmc-conf    pylibmc.Client on seafile.conf's first --SERVER= (this node's)

Control: OUT_DIR/../control is JSON {"seq", "cmd": run|pause|exit, "epoch", "phase", "read_keys"}.
On a new `pause` both loops stop (the database loop after its current transaction); then the
worker reads every key in read_keys through every client kind and writes OUT_DIR/pause.json
{"seq", "pid", "reads": {kind: {key: value}}}, and waits for the next command.
"""

import hashlib
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "seafile_app.settings")

import django  # noqa: E402

django.setup()

import memcache  # noqa: E402
import pylibmc  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.cache import caches  # noqa: E402
from django.db import close_old_connections, connections  # noqa: E402

NODE = settings.NODE
REPOS = [f"5eaf11e0-0000-4000-8000-00000000000{i}" for i in range(4)]
ROOT_COMMIT = "0" * 40
MISSING = object()


class Ambiguous(Exception):
    """The operation failed in a way that leaves its outcome unknown."""


class NotFound(Exception):
    """A definite NOT_FOUND: the increment was not applied."""


# python-memcached hides errors (a dead server, a SERVER_ERROR line) behind None/0; count them so a
# None can be told apart from a real miss.
PYMC_ERRORS = [0]
_mark_dead = memcache._Host.mark_dead


def _counting_mark_dead(self, reason):
    PYMC_ERRORS[0] += 1
    _mark_dead(self, reason)


memcache._Host.mark_dead = _counting_mark_dead
_get_server = memcache.Client._get_server


def _counting_get_server(self, key):
    server, k = _get_server(self, key)
    if server is None:
        PYMC_ERRORS[0] += 1
    return server, k


memcache.Client._get_server = _counting_get_server
_expectvalue = memcache.Client._expectvalue


def _counting_expectvalue(self, server, line=None, raise_exception=False):
    if not line:
        line = server.readline(raise_exception)
    if line and line[:5] != b"VALUE" and line != b"END":
        PYMC_ERRORS[0] += 1  # SERVER_ERROR ...: python-memcached would call it a miss
    return _expectvalue(self, server, line, raise_exception)


memcache.Client._expectvalue = _counting_expectvalue


class DjangoKind:
    def __init__(self, name, alias):
        self.name, self.c = name, caches[alias]

    def incr(self, key):
        try:
            return self.c.incr(key)
        except ValueError as e:  # Django's "Key ... not found" (pylibmc.NotFound)
            raise NotFound(str(e))
        except pylibmc.Error as e:
            raise Ambiguous(f"{type(e).__name__}: {e}")

    def set(self, key, value):
        try:
            self.c.set(key, value, 3600)
        except pylibmc.Error as e:
            raise Ambiguous(f"{type(e).__name__}: {e}")

    def get(self, key):
        try:
            return self.c.get(key, MISSING)
        except pylibmc.Error as e:
            raise Ambiguous(f"{type(e).__name__}: {e}")


class RawKind:
    """A client used directly, on Django's full key."""

    def __init__(self, name, client):
        self.name, self.c = name, client
        self.mk = caches["default"].make_key

    def _call(self, f, *a):
        before = PYMC_ERRORS[0]
        try:
            r = f(*a)
        except pylibmc.NotFound as e:
            raise NotFound(str(e))
        except (pylibmc.Error, memcache.Client.MemcachedKeyError, ValueError, OSError) as e:
            raise Ambiguous(f"{type(e).__name__}: {e}")
        return r, PYMC_ERRORS[0] != before

    def incr(self, key):
        r, err = self._call(self.c.incr, self.mk(key))
        if r is None:
            if err:
                raise Ambiguous("python-memcached: server error")
            raise NotFound(key)
        return r

    def set(self, key, value):
        r, err = self._call(self.c.set, self.mk(key), value, 3600)
        if not r or err:
            raise Ambiguous("set not stored")

    def get(self, key):
        r, err = self._call(self.c.get, self.mk(key))
        if err:
            raise Ambiguous("python-memcached: server error")
        return MISSING if r is None else r


def kinds():
    servers = list(settings.LOCATIONS)
    return [
        DjangoKind("django-ketama", "default"),
        DjangoKind("django-local", "local"),
        RawKind("python-memcached", memcache.Client(servers)),
        RawKind("pylibmc-conf", pylibmc.Client([settings.MEMCACHED_SERVER], behaviors={"tcp_nodelay": True})),
    ]


def counter_keys(epoch):
    return [f"lf:{epoch}:shared"] + [f"lf:{epoch}:{n}" for n in settings.NODES]


def setup():
    cur = connections["seafile"].cursor()
    # Seafile's own DDL for Branch (seafile_db), plus the commit log the test checks against.
    cur.execute(
        "CREATE TABLE IF NOT EXISTS Branch (id BIGINT NOT NULL PRIMARY KEY AUTO_INCREMENT, "
        "name VARCHAR(10), repo_id CHAR(41), commit_id CHAR(41), UNIQUE INDEX(repo_id, name)) ENGINE=INNODB"
    )
    cur.execute(
        "CREATE TABLE IF NOT EXISTS CommitLog (id BIGINT NOT NULL PRIMARY KEY AUTO_INCREMENT, "
        "repo_id CHAR(41) NOT NULL, commit_id CHAR(41) NOT NULL UNIQUE, parent_id CHAR(41) NOT NULL, "
        "worker VARCHAR(16) NOT NULL, ts DOUBLE NOT NULL) ENGINE=INNODB"
    )
    for r in REPOS:
        cur.execute(
            "INSERT IGNORE INTO Branch (name, repo_id, commit_id) VALUES ('master', %s, %s)", [r, ROOT_COMMIT]
        )
    cur = connections["default"].cursor()
    cur.execute(
        "CREATE TABLE IF NOT EXISTS base_userlastlogin (id INT NOT NULL PRIMARY KEY AUTO_INCREMENT, "
        "username VARCHAR(255) NOT NULL UNIQUE, last_login DATETIME NOT NULL) ENGINE=INNODB"
    )
    print(f"setup done through {NODE}'s proxy: {len(REPOS)} libraries")


def retried(f, what):
    """f() until it succeeds (a tier that just came back may refuse for a moment), at most 15 s."""
    deadline = time.time() + 15
    while True:
        try:
            return f()
        except (Ambiguous, pylibmc.Error) as e:
            if time.time() > deadline:
                raise AssertionError(f"{what}: {e}")
            time.sleep(0.2)


def init_counters(epoch):
    c = caches["default"]
    for k in counter_keys(epoch):
        retried(lambda: c.set(k, 0, None), f"set {k}")
    for kind in kinds():
        for k in counter_keys(epoch):
            v = retried(lambda: kind.get(k), f"{kind.name} get {k}")
            assert v == 0, (kind.name, k, v)
    print(f"counters of epoch {epoch} created and read back as 0 through every client kind")


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def __call__(self, line):
        with self.lock:
            self.f.write(line + "\n")


class Worker:
    def __init__(self, out):
        self.out = out
        os.makedirs(out, exist_ok=True)
        self.control_path = os.path.join(out, "..", "control")
        self.commits = Log(os.path.join(out, "commits.log"))
        self.incrs = Log(os.path.join(out, "incr.log"))
        self.mismatch = Log(os.path.join(out, "mismatch.log"))
        self.events = Log(os.path.join(out, "events.log"))
        self.kinds = kinds()
        self.seq = 0
        self.db_backoff = 0.0
        self.db_retry_at = 0.0
        self.last_event = {}
        self.last_control = {"seq": 0, "cmd": "run", "epoch": 0, "phase": "start", "read_keys": []}
        self.control = self.last_control
        self.answered_pause = None
        self.db_paused = None

    def event(self, what, detail, control=None):
        # At most one line per second and kind of event (they repeat while a fault lasts).
        now = time.time()
        if now - self.last_event.get(what, 0) >= 1.0:
            self.last_event[what] = now
            self.events(f"{now:.3f} {(control or self.control)['phase']} {what}: {detail}")

    def read_control(self):
        try:
            with open(self.control_path) as f:
                self.last_control = json.load(f)
        except (OSError, ValueError):
            pass  # not there yet: keep the last one (it is replaced by a rename, never rewritten)
        return self.last_control

    def head_update(self, seq, control):
        now = time.time()
        if now < self.db_retry_at:
            return
        repo = REPOS[seq % len(REPOS)]
        new = hashlib.sha1(f"{NODE}:{os.getpid()}:{seq}".encode()).hexdigest()
        conn = connections["seafile"]
        stage = "connect"
        try:
            cur = conn.cursor()
            stage = "begin"
            cur.execute("BEGIN")
            cur.execute("SELECT commit_id FROM Branch WHERE name = %s AND repo_id = %s FOR UPDATE", ["master", repo])
            parent = cur.fetchone()[0]
            cur.execute("UPDATE Branch SET commit_id = %s WHERE name = %s AND repo_id = %s", [new, "master", repo])
            cur.execute(
                "INSERT INTO CommitLog (repo_id, commit_id, parent_id, worker, ts) VALUES (%s, %s, %s, %s, %s)",
                [repo, new, parent, NODE, now],
            )
            stage = "commit"
            cur.execute("COMMIT")
            self.commits(f"OK {time.time():.3f} {repo} {new} {parent}")
            self.db_backoff = 0.0
        except Exception as e:  # deadlock, lost connection, proxy error, ...: retry
            if stage == "commit":
                self.commits(f"AMBIG {time.time():.3f} {repo} {new} - {type(e).__name__}: {e}")
            self.event(f"db-{stage}", f"{type(e).__name__}: {e}", control)
            try:
                conn.close()
            except Exception:
                pass
            self.db_backoff = min(max(self.db_backoff * 2, 0.05), 0.5)
            self.db_retry_at = time.time() + self.db_backoff

    def seahub_request(self, control):
        try:
            cur = connections["default"].cursor()
            cur.execute(
                "INSERT INTO base_userlastlogin (username, last_login) VALUES (%s, UTC_TIMESTAMP()) "
                "ON DUPLICATE KEY UPDATE last_login = UTC_TIMESTAMP()",
                [f"{NODE}@example.com"],
            )
        except Exception as e:
            self.event("seahub-db", f"{type(e).__name__}: {e}", control)
            try:
                connections["default"].close()
            except Exception:
                pass
        close_old_connections()  # end of the request (CONN_MAX_AGE = 0: closes it)

    def cache_ops(self):
        epoch = self.control.get("epoch", 0)
        kind = self.kinds[self.seq % len(self.kinds)]
        for key in (f"lf:{epoch}:shared", f"lf:{epoch}:{NODE}"):
            try:
                v = kind.incr(key)
                self.incrs(f"OK {time.time():.3f} {key} {v} {kind.name}")
            except NotFound:
                self.incrs(f"MISSING {time.time():.3f} {key} - {kind.name}")
            except Ambiguous as e:
                self.incrs(f"AMBIG {time.time():.3f} {key} - {kind.name} {e}")
                self.event(f"incr-{kind.name}", str(e))
        key = f"dk:{NODE}:{self.seq}"
        value = {"repo": REPOS[self.seq % len(REPOS)], "key": hashlib.sha256(key.encode()).hexdigest()}
        try:
            kind.set(key, value)
            self.incrs(f"SET {time.time():.3f} {key} - {kind.name}")
        except Ambiguous as e:
            self.event(f"set-{kind.name}", str(e))
            return
        for other in self.kinds:
            try:
                got = other.get(key)
            except Ambiguous as e:
                self.event(f"get-{other.name}", str(e))
                continue
            if got != value:
                self.mismatch(
                    f"{time.time():.3f} {self.control['phase']} {key}: set through {kind.name}, "
                    f"{other.name} read {'<missing>' if got is MISSING else repr(got)}"
                )

    def pause(self):
        reads = {}
        for kind in self.kinds:
            reads[kind.name] = {}
            for key in self.control.get("read_keys", []):
                deadline = time.time() + 15
                while True:
                    try:
                        v = kind.get(key)
                        reads[kind.name][key] = None if v is MISSING else int(v)
                        break
                    except Ambiguous as e:
                        if time.time() > deadline:
                            reads[kind.name][key] = f"error: {e}"
                            break
                        time.sleep(0.2)
        report = {"seq": self.control["seq"], "pid": os.getpid(), "reads": reads}
        tmp = os.path.join(self.out, "pause.json.tmp")
        with open(tmp, "w") as f:
            json.dump(report, f)
        os.rename(tmp, os.path.join(self.out, "pause.json"))

    def db_loop(self):
        """The seaf-server side, in its own thread (its own Django connections), so a stalled
        database never delays the cache side and the two gaps are measured apart."""
        seq = 0
        while True:
            control = self.read_control()
            if control.get("cmd") == "exit":
                return
            if control.get("cmd") == "pause":
                self.db_paused = control["seq"]
                time.sleep(0.05)
                continue
            seq += 1
            self.head_update(seq, control)
            if seq % 8 == 0:
                self.seahub_request(control)
            time.sleep(0.04)

    def run(self):
        self.events(f"{time.time():.3f} start pid {os.getpid()} node {NODE}")
        db = threading.Thread(target=self.db_loop, name="db", daemon=True)
        db.start()
        while True:
            self.control = self.read_control()
            cmd = self.control.get("cmd")
            if cmd == "exit":
                db.join()
                self.events(f"{time.time():.3f} exit after {self.seq} cache iterations")
                return
            if cmd == "pause":
                if self.answered_pause != self.control["seq"] and self.db_paused == self.control["seq"]:
                    self.pause()
                    self.answered_pause = self.control["seq"]
                time.sleep(0.05)
                continue
            self.seq += 1
            self.cache_ops()
            time.sleep(0.04)


def main():
    cmd = sys.argv[1]
    if cmd == "setup":
        setup()
    elif cmd == "counters":
        init_counters(int(sys.argv[2]))
    elif cmd == "run":
        Worker(sys.argv[2]).run()
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
