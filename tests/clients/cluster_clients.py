"""Seafile's four memcached clients against a three-node keel cache cluster, across a kill -9 and a
restart of one node (issue 5): whatever one client writes, the others read.

Usage (driven by crates/keel/tests/it/cluster.rs, which owns the cluster):
    /usr/bin/python3 cluster_clients.py PORT1 PORT2 PORT3 --single N [--only-before]
(`--only-before` runs the first phase only: the negative control against three independent
memcached servers, where it must fail.)

Clients, each configured as Seafile's components configure them:
  pylibmc-ketama   seahub's old multi-server Django PyLibMCCache OPTIONS: ketama, remove_failed=1,
                   retry_timeout=3600, dead_timeout=3600 (libmemcached keeps a failed server
                   disabled for retry_timeout seconds on that handle)
  pylibmc-modula   libmemcached's defaults (modula distribution, retry_timeout 2 s), as seaf-server's
                   `--SERVER=… --SERVER=…` option string gives
  python-memcached memcache.Client([...]) as seafevents builds it (dead_retry 30 s, rehashes a
                   dead server's keys to another server)
  pymemcache-hash  pymemcache's HashClient as Django's PyMemcacheCache builds it (pickle serde,
                   default_noreply=False, allow_unicode_keys)
  pylibmc-single   today's seahub: one LOCATION, node N only (the node the test kills)
The pylibmc handles get the `cas` behaviour in addition (Seafile never uses cas; the test does).

Protocol with the driver (stdout lines / stdin lines):
  prints `STEP before-done`  and waits for `killed`     (the driver kill -9s node N)
  prints `STEP outage-done`  and waits for `restarted`  (node N is back on the same port, ready)
  then prints `cluster-clients: P passed, F failed` and exits 0 iff F == 0.

Phases:
  before   every client writes (set, incr a shared counter, add, delete, gets+cas), every client
           reads it back; strict: every operation must succeed with the exact expected answer, and
           a gets from any client returns the same CAS token (replicas are identical).
  outage   the same without pylibmc-single (its only node is dead: it must raise, never answer
           wrongly); client errors are tolerated and counted (the dead node's share of keys on
           libmemcached handles, the first request on a reset connection, ...), but a successful
           answer must be right: a miss or an old value after an acknowledged write is a failure.
  after    first each client is given time to use the node again on its own (libmemcached's
           retry_timeout, HashClient's retry_timeout), then the strict matrix again. End state
           asserted for pylibmc-ketama with Seafile's retry_timeout=3600: its handle keeps node N
           disabled (libmemcached's per-handle state: `SERVER HAS FAILED AND IS DISABLED UNTIL
           TIMED RETRY` for that share of keys, never a wrong answer); a new handle with the same
           options (a newly started seahub worker) is strict. Finally every key of every phase is
           read by every client, pylibmc-single included: the restarted node caught up the writes
           it missed while it was dead.
"""

import sys
import time

import memcache
import pylibmc
from pymemcache import serde
from pymemcache.client.hash import HashClient

from common import Checker

MISSING = object()
KEYS = 6  # keys per operation kind and writer (spread over the nodes by every hash scheme)


def show(v):
    return "<missing>" if v is MISSING else repr(v)


class Err(Exception):
    """A client-side failure (connection refused, server disabled, silent failure)."""


class Client:
    """Uniform API over the four libraries: every method returns a value or raises Err."""

    # Libraries that report failures as a miss / False instead of raising.
    silent = False

    def __init__(self, name, mc):
        self.name = name
        self.mc = mc

    def __repr__(self):
        return self.name


class Pylibmc(Client):
    def _call(self, fn, *a):
        try:
            return fn(*a)
        except pylibmc.NotFound:
            raise
        except pylibmc.Error as e:
            raise Err(f"{type(e).__name__}: {e}") from None

    def get(self, k):
        v = self._call(self.mc.get, k)
        return MISSING if v is None else v

    def set(self, k, v):
        if not self._call(self.mc.set, k, v):
            raise Err("set returned False")

    def add(self, k, v):
        return bool(self._call(self.mc.add, k, v))

    def delete(self, k):
        return bool(self._call(self.mc.delete, k))

    def incr(self, k):
        try:
            return self._call(self.mc.incr, k, 1)
        except pylibmc.NotFound:
            return MISSING

    def gets(self, k):
        v, token = self._call(self.mc.gets, k)
        return (MISSING if v is None else v), token

    def cas(self, k, v, token):
        return bool(self._call(self.mc.cas, k, v, token))


class PythonMemcached(Client):
    silent = True

    def get(self, k):
        v = self.mc.get(k)
        return MISSING if v is None else v

    def set(self, k, v):
        if not self.mc.set(k, v):
            raise Err("set returned 0")

    def add(self, k, v):
        return bool(self.mc.add(k, v))

    def delete(self, k):
        # python-memcached answers 1 for DELETED and for NOT_FOUND: the result says nothing.
        self.mc.delete(k)
        return None

    def incr(self, k):
        v = self.mc.incr(k, 1)
        return MISSING if v is None else v

    # python-memcached caches gets tokens by the encoded key, as the server echoed it.
    def gets(self, k):
        self.mc.cas_ids.pop(k.encode(), None)
        v = self.mc.gets(k)
        if v is None:
            return MISSING, None
        return v, self.mc.cas_ids.get(k.encode())

    def cas(self, k, v, token):
        # cas() uses the token cached by gets(); without one it would do a plain set.
        self.mc.cas_ids[k.encode()] = token
        return bool(self.mc.cas(k, v))


class PyMemcacheHash(Client):
    silent = True

    def _call(self, fn, *a, **kw):
        try:
            return fn(*a, **kw)
        except Exception as e:  # socket errors, MemcacheUnexpectedCloseError, "all servers down"
            raise Err(f"{type(e).__name__}: {e}") from None

    def get(self, k):
        v = self._call(self.mc.get, k)
        return MISSING if v is None else v

    def set(self, k, v):
        if not self._call(self.mc.set, k, v):
            raise Err("set returned False")

    def add(self, k, v):
        return bool(self._call(self.mc.add, k, v))

    def delete(self, k):
        return bool(self._call(self.mc.delete, k))

    def incr(self, k):
        v = self._call(self.mc.incr, k, 1)
        if v is False:  # HashClient's default when the server is in its retry window
            raise Err("incr returned False")
        return MISSING if v is None else v

    def gets(self, k):
        r = self._call(self.mc.gets, k)
        if r is None:  # HashClient's default when the server is in its retry window
            raise Err("gets returned nothing")
        v, token = r
        if v is None:
            return MISSING, None
        return v, int(token)

    def cas(self, k, v, token):
        return bool(self._call(self.mc.cas, k, v, str(token).encode()))


SEAHUB_MULTI = {"ketama": True, "remove_failed": 1, "retry_timeout": 3600, "dead_timeout": 3600}


def build(ports, single):
    servers = [f"127.0.0.1:{p}" for p in ports]
    return {
        "ketama": Pylibmc("pylibmc-ketama", pylibmc.Client(servers, behaviors={**SEAHUB_MULTI, "cas": True})),
        "modula": Pylibmc("pylibmc-modula", pylibmc.Client(servers, behaviors={"cas": True})),
        "pymc": PythonMemcached("python-memcached", memcache.Client(servers, cache_cas=True)),
        "hash": PyMemcacheHash(
            "pymemcache-hash",
            HashClient(
                [("127.0.0.1", p) for p in ports],
                serde=serde.pickle_serde,
                default_noreply=False,
                allow_unicode_keys=True,
                connect_timeout=5,
                timeout=5,
            ),
        ),
        "single": Pylibmc("pylibmc-single", pylibmc.Client([servers[single - 1]], behaviors={"cas": True})),
    }


class Reg:
    """What a key may hold: after an acknowledged write exactly one value; after a write whose
    outcome is unknown (client error), the old values or the new one."""

    def __init__(self):
        self.acc = [MISSING]

    def wrote(self, v, known):
        self.acc = [v] if known else self.acc + [v]

    def only(self):
        return self.acc[0] if len(self.acc) == 1 else None

    def __repr__(self):
        return "{" + ", ".join(show(v) for v in self.acc) + "}"


class Phase:
    """Runs the write/read matrix of one phase under a per-client policy:
    `strict` (any client error fails), `tolerant` (client errors counted; a silent client's miss
    counts as an error), `disabled-ok` (strict, but libmemcached's `SERVER HAS FAILED AND IS
    DISABLED UNTIL TIMED RETRY`, pylibmc.ServerDown, is tolerated and counted)."""

    def __init__(self, ck, name, clients, policy, regs):
        self.ck = ck
        self.name = name
        self.clients = clients
        self.policy = policy
        self.regs = regs
        self.tolerated = {c.name: 0 for c in clients}
        self.ops = 0

    def fail(self, what, detail):
        self.ck.true(f"{self.name}: {what}", False, detail)

    def ok(self):
        self.ck.passed += 1

    def op(self, c, what, fn):
        """Run one client operation: (True, result) or (False, None) after a tolerated error."""
        self.ops += 1
        try:
            return True, fn()
        except Err as e:
            pol = self.policy[c.name]
            if pol == "tolerant" or (pol == "disabled-ok" and str(e).startswith("ServerDown")):
                self.tolerated[c.name] += 1
                return False, None
            self.fail(f"{c} {what}", f"client error: {e}")
            return False, None

    def reg(self, k):
        return self.regs.setdefault(k, Reg())

    def read(self, c, k):
        """c reads k; the answer must be one the register allows."""
        r = self.reg(k)
        done, v = self.op(c, f"get {k}", lambda: c.get(k))
        if not done:
            return
        if any(v == a if (v is not MISSING and a is not MISSING) else v is a for a in r.acc):
            self.ok()
        elif v is MISSING and c.silent and self.policy[c.name] == "tolerant":
            self.tolerated[c.name] += 1  # python-memcached / HashClient report failures as misses
        else:
            self.fail(f"{c} get {k}", f"read {show(v)}, allowed {r}")

    def read_all(self, k, readers=None):
        for c in readers or self.clients:
            self.read(c, k)

    def write(self, c, k, v):
        done, _ = self.op(c, f"set {k}", lambda: c.set(k, v))
        self.reg(k).wrote(v, done)
        return done

    def run(self):
        p = self.name
        first = self.clients[0]
        ctrs = [f"{p}:ctr:{i}" for i in range(KEYS)]
        for k in ctrs:
            self.write(first, k, 0)
        for w in self.clients:
            others = [c for c in self.clients if c is not w]
            # set: everyone reads it.
            for i in range(KEYS):
                k = f"{p}:{w}:set:{i}"
                self.write(w, k, f"{w}/{p}/{i}")
                self.read_all(k)
            # incr of shared counters: atomic, cluster-wide.
            for k in ctrs:
                r = self.reg(k)
                done, v = self.op(w, f"incr {k}", lambda: w.incr(k))
                nxt = [a + 1 for a in r.acc if a is not MISSING]
                allowed = nxt + ([MISSING] if MISSING in r.acc else [])  # NOT_FOUND on a missing key
                if done:
                    if any(v is a or (v is not MISSING and a is not MISSING and v == a) for a in allowed):
                        self.ok()
                        r.wrote(v, True)
                    elif v is MISSING and w.silent and self.policy[w.name] == "tolerant":
                        self.tolerated[w.name] += 1
                        r.acc = r.acc + nxt
                    else:
                        self.fail(f"{w} incr {k}", f"returned {show(v)}, allowed {[show(a) for a in allowed]}")
                        r.acc = r.acc + ([v] if v is not MISSING else [])
                else:
                    r.acc = r.acc + nxt
                self.read_all(k)
            # add: the first wins, everyone else is refused and reads the winner's value.
            for i in range(KEYS):
                k = f"{p}:{w}:add:{i}"
                r = self.reg(k)
                done, won = self.op(w, f"add {k}", lambda: w.add(k, f"{w} was first"))
                if done and won:
                    self.ok()
                    r.wrote(f"{w} was first", True)
                elif done and w.silent and self.policy[w.name] == "tolerant":
                    self.tolerated[w.name] += 1
                    r.wrote(f"{w} was first", False)
                elif done:
                    self.fail(f"{w} add {k}", "refused on a fresh key")
                    r.wrote(f"{w} was first", False)
                else:
                    r.wrote(f"{w} was first", False)
                for o in others:
                    done, won = self.op(o, f"add {k}", lambda: o.add(k, f"{o} was second"))
                    if done and won and MISSING in r.acc:
                        r.wrote(f"{o} was second", True)  # the first add may have failed
                    elif done and won:
                        self.fail(f"{o} add {k}", f"stored over {r} (add must be atomic cluster-wide)")
                        r.wrote(f"{o} was second", True)
                    elif done:
                        self.ok()
                self.read_all(k)
            # delete: everyone then misses.
            for i in range(KEYS):
                k = f"{p}:{w}:set:{i}"
                r = self.reg(k)
                had = any(a is not MISSING for a in r.acc)
                done, gone = self.op(w, f"delete {k}", lambda: w.delete(k))
                if done and gone is not None and had and r.only() is not None:
                    if gone or (w.silent and self.policy[w.name] == "tolerant"):
                        self.ok()
                    else:
                        self.fail(f"{w} delete {k}", f"NOT_FOUND, but the key held {r}")
                if done and not (w.silent and self.policy[w.name] == "tolerant"):
                    r.acc = [MISSING]
                else:
                    r.acc = r.acc + [MISSING]  # may not have happened
                self.read_all(k)
            # cas via gets: same token on every node; the first cas wins, stale tokens lose.
            for i in range(KEYS):
                k = f"{p}:{w}:cas:{i}"
                if not self.write(w, k, "v0"):
                    continue
                done, got = self.op(w, f"gets {k}", lambda: w.gets(k))
                if not done:
                    continue
                v, token = got
                if v != "v0" or token is None:
                    if v is MISSING and w.silent and self.policy[w.name] == "tolerant":
                        self.tolerated[w.name] += 1
                    else:
                        self.fail(f"{w} gets {k}", f"got {show(v)} token {token!r}, want 'v0' and a token")
                    continue
                for o in others:
                    done, got = self.op(o, f"gets {k}", lambda: o.gets(k))
                    if not done:
                        continue
                    if got == ("v0", token):
                        self.ok()
                    elif got[0] is MISSING and o.silent and self.policy[o.name] == "tolerant":
                        self.tolerated[o.name] += 1
                    else:
                        self.fail(f"{o} gets {k}", f"got {show(got[0])} token {got[1]!r}, want 'v0' token {token} (as {w} saw it)")
                done, stored = self.op(w, f"cas {k}", lambda: w.cas(k, f"{w} cas", token))
                if done and stored:
                    self.ok()
                    self.reg(k).wrote(f"{w} cas", True)
                elif done and not (w.silent and self.policy[w.name] == "tolerant"):
                    self.fail(f"{w} cas {k}", "refused with a fresh token")
                    continue
                else:
                    self.reg(k).wrote(f"{w} cas", False)
                for o in others:
                    done, stored = self.op(o, f"cas {k}", lambda: o.cas(k, f"{o} stale cas", token))
                    if done and stored:
                        self.fail(f"{o} cas {k}", "stored with a stale token")
                        self.reg(k).wrote(f"{o} stale cas", True)
                    elif done:
                        self.ok()
                self.read_all(k)
        notes = ", ".join(f"{n} {t}" for n, t in self.tolerated.items() if self.policy[n] != "strict")
        print(f"NOTE {p}: {self.ops} operations; tolerated client errors: {notes or 'none (all strict)'}", flush=True)


def wait_line(want):
    line = sys.stdin.readline()
    if line.strip() != want:
        print(f"FAIL driver: expected {want!r} on stdin, got {line!r}", flush=True)
        sys.exit(3)


def recover(ck, c, timeout):
    """Poll until `c` answers a round of sets and gets (its own failure state expired)."""
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < timeout:
        try:
            for i in range(12):
                k = f"probe:{c}:{i}"
                c.set(k, i)
                if c.get(k) != i:
                    raise Err(f"probe {k} read back wrong")
            print(f"NOTE {c} answers every key again {time.monotonic() - t0:.1f} s after the restart", flush=True)
            ck.passed += 1
            return
        except Err as e:
            last = str(e)
        time.sleep(0.1)
    ck.true(f"{c} recovers", False, f"still failing after {timeout} s: {last}")


def main():
    argv = sys.argv[1:]
    only_before = argv[5:] == ["--only-before"]
    if len(argv) not in (5, 6) or argv[3] != "--single" or argv[4] not in ("1", "2", "3") or (len(argv) == 6 and not only_before):
        print(f"usage: {sys.argv[0]} PORT1 PORT2 PORT3 --single N [--only-before]", file=sys.stderr)
        sys.exit(2)
    ports = [int(p) for p in argv[:3]]
    single = int(argv[4])
    cl = build(ports, single)
    ck = Checker("cluster-clients")
    regs = {}
    every = list(cl.values())

    Phase(ck, "before", every, {c.name: "strict" for c in every}, regs).run()
    if only_before:  # negative control: against independent servers this phase must fail
        ck.finish()
    print("STEP before-done", flush=True)
    wait_line("killed")

    # The single-node client's only server is dead: it must fail loudly, never answer wrongly.
    def dead_get():
        return cl["single"].get("before:ctr:0")

    try:
        v = dead_get()
        ck.true("pylibmc-single raises while its node is dead", False, f"answered {show(v)}")
    except Err:
        ck.passed += 1
    survivors = [c for c in every if c is not cl["single"]]
    Phase(ck, "outage", survivors, {c.name: "tolerant" for c in survivors}, regs).run()
    print("STEP outage-done", flush=True)
    wait_line("restarted")

    # Each client's own failure state: libmemcached retry_timeout 2 s (modula, single), HashClient
    # retry_timeout 1 s; python-memcached keeps the node dead for 30 s but rehashes meanwhile.
    for key in ("modula", "single", "hash", "pymc"):
        recover(ck, cl[key], 15)
    fresh = Pylibmc(
        "pylibmc-ketama-new-handle",
        pylibmc.Client([f"127.0.0.1:{p}" for p in ports], behaviors={**SEAHUB_MULTI, "cas": True}),
    )
    after = every + [fresh]
    policy = {c.name: "strict" for c in after}
    policy["pylibmc-ketama"] = "disabled-ok"
    ph = Phase(ck, "after", after, policy, regs)
    ph.run()
    print(
        f"NOTE pylibmc-ketama (retry_timeout=3600) still has the restarted node disabled: "
        f"{ph.tolerated['pylibmc-ketama']} operations refused by the client itself",
        flush=True,
    )

    # Every key of every phase, read by every client: the restarted node holds what it missed.
    final = Phase(ck, "final", after, policy, regs)
    for k in sorted(regs):
        final.read_all(k)
    print(f"NOTE final: {len(regs)} keys read by {len(after)} clients", flush=True)
    ck.finish()


if __name__ == "__main__":
    main()
