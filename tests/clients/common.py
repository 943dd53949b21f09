"""Shared helpers for keel's client scripts (tests/clients/*.py).

Each script exercises one real memcached client library the way Seafile uses it, against one
server given on the command line (`HOST PORT [--binary]`), and exits non-zero if any check
failed. Run them with Debian's /usr/bin/python3 (python3-pylibmc, python3-pymemcache,
python3-memcache). They must pass against Debian's memcached too: that proves the scripts.
"""

import sys
import time
import traceback

ONE_MIB = 1024 * 1024


class Checker:
    """Collects check results; `finish()` prints a summary and exits 1 on any failure."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failures = []

    def _fail(self, what, detail):
        self.failures.append(f"{what}: {detail}")
        print(f"FAIL {self.name}: {what}: {detail}", flush=True)

    def eq(self, what, got, want):
        if got == want:
            self.passed += 1
        else:
            g, w = repr(got), repr(want)
            self._fail(what, f"got {g[:200]}, want {w[:200]}")

    def true(self, what, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self._fail(what, detail or "condition false")

    def raises(self, what, exc_types, fn):
        """`fn()` must raise one of `exc_types`; returns the exception."""
        try:
            got = fn()
        except exc_types as e:  # noqa: PERF203 - clarity over speed here
            self.passed += 1
            return e
        except Exception as e:  # wrong exception type
            self._fail(what, f"raised {type(e).__name__}: {e}, want {exc_types}")
            return e
        self._fail(what, f"returned {got!r:.200} instead of raising {exc_types}")
        return None

    def run(self, what, fn):
        """Run a group of checks; an unexpected exception is a failure, not a crash."""
        try:
            fn()
        except Exception:
            self._fail(what, "unexpected exception:\n" + traceback.format_exc())

    def finish(self):
        total = self.passed + len(self.failures)
        print(f"{self.name}: {self.passed} passed, {len(self.failures)} failed", flush=True)
        if total == 0:
            print(f"{self.name}: no checks ran", flush=True)
            sys.exit(2)
        sys.exit(1 if self.failures else 0)


def parse_args():
    """HOST PORT [--binary] -> (host, port, binary)."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        print(f"usage: {sys.argv[0]} HOST PORT [--binary]", file=sys.stderr)
        sys.exit(2)
    return args[0], int(args[1]), "--binary" in sys.argv[1:]


def wait_until(pred, timeout=5.0, step=0.05):
    """Poll `pred()` until true or `timeout` seconds pass; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        r = pred()
        if r or time.monotonic() >= deadline:
            return r
        time.sleep(step)
