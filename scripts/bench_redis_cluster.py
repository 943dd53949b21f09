#!/usr/bin/env python3
"""Latency probes for scripts/bench-redis.sh: what a Seafile user waits for across keel's nodes.

Plain sockets and RESP2 (no redis-py needed), time.perf_counter_ns, one thread so that nothing but
the servers sits between the two clock reads.

  brpop  HOST:A HOST:B N   consumer BRPOPs on A, producer LPUSHes on B; per item, the time from
                           sending the LPUSH to BRPOP's reply
  pubsub HOST:A HOST:B N   subscriber on A, publisher on B; per message, the time from sending
                           PUBLISH to the message arriving on A
  failover HOST:F PID      a client SETs in a loop on HOST:F; after 300 ms of acknowledged SETs,
                           kill -9 PID (the leader); the time from the kill to the first OK of a SET
                           sent after it

brpop and pubsub print `p50_us p99_us max_us samples timeouts`; failover prints `ms errors`.
Exit status 0 also when samples time out (they are counted); 1 on a protocol surprise.
"""

import os
import signal
import socket
import sys
import time


class Conn:
    """One RESP2 connection with a read buffer."""

    def __init__(self, addr, timeout=5.0):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def reply(self):
        """One reply: bytes/int/list/None; errors come back as ('ERR', text)."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return ("ERR", rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError("unexpected RESP reply %r" % line)

    def call(self, *args):
        self.send(*args)
        return self.reply()


def percentiles(samples_ns):
    s = sorted(samples_ns)
    if not s:
        return "n/a n/a n/a"

    def pick(q):
        return s[min(len(s) - 1, int(q * len(s)))] / 1000.0

    return "%.0f %.0f %.0f" % (pick(0.50), pick(0.99), s[-1] / 1000.0)


def brpop(a, b, n):
    key = "bench:brpop:%d" % os.getpid()
    cons, prod = Conn(a), Conn(b)
    prod.call("DEL", key)
    samples, timeouts = [], 0
    for i in range(n):
        cons.send("BRPOP", key, "2")
        # Give the BRPOP time to reach the server and block there, so the sample is a wake-up
        # (not a pop of an element that was already there). Not a readiness wait: if the BRPOP
        # were not blocked yet it would find the element at once and the sample would be smaller.
        time.sleep(0.002)
        t0 = time.perf_counter_ns()
        prod.send("LPUSH", key, "item%d" % i)
        got = cons.reply()
        t1 = time.perf_counter_ns()
        pushed = prod.reply()
        if isinstance(pushed, tuple):
            print("LPUSH on %s: %s" % (b, pushed[1]), file=sys.stderr)
            return 1
        if got is None:
            # woken by the timeout, not the push: take the element back so the next sample starts
            # from an empty list, and stop early if wake-ups do not work at all
            timeouts += 1
            prod.call("DEL", key)
            if timeouts >= 3 and not samples:
                break
            continue
        if isinstance(got, tuple) or got[1] != b"item%d" % i:
            print("BRPOP on %s: unexpected %r" % (a, got), file=sys.stderr)
            return 1
        samples.append(t1 - t0)
    print(percentiles(samples), len(samples), timeouts)
    return 0


def pubsub(a, b, n):
    chan = "bench:chan:%d" % os.getpid()
    sub, pub = Conn(a, timeout=2.0), Conn(b)
    ack = sub.call("SUBSCRIBE", chan)
    if not isinstance(ack, list) or ack[0] != b"subscribe":
        print("SUBSCRIBE on %s: %r" % (a, ack), file=sys.stderr)
        return 1
    # The subscription may take a moment to be known on the publisher's node: publish warm-up
    # messages until one arrives (deadline 10 s), then drain the rest of them.
    deadline = time.monotonic() + 10
    sub.sock.settimeout(0.05)
    arrived = False
    while not arrived and time.monotonic() < deadline:
        pub.call("PUBLISH", chan, "warmup")
        try:
            sub.reply()
            arrived = True
        except socket.timeout:
            pass
    if not arrived:
        print("pubsub: no message from %s reached %s in 10 s" % (b, a), file=sys.stderr)
        print("n/a n/a n/a 0", n)
        return 0
    try:
        while True:
            sub.reply()
    except socket.timeout:
        pass
    sub.sock.settimeout(2.0)
    samples, timeouts = [], 0
    for i in range(n):
        payload = "m%d" % i
        t0 = time.perf_counter_ns()
        pub.send("PUBLISH", chan, payload)
        try:
            msg = sub.reply()
        except socket.timeout:
            timeouts += 1
            pub.reply()
            continue
        t1 = time.perf_counter_ns()
        pub.reply()
        if not isinstance(msg, list) or msg[0] != b"message" or msg[2] != payload.encode():
            print("pubsub on %s: unexpected %r" % (a, msg), file=sys.stderr)
            return 1
        samples.append(t1 - t0)
        time.sleep(0.0005)
    print(percentiles(samples), len(samples), timeouts)
    return 0


def failover(f, pid):
    key = "bench:failover:%d" % os.getpid()
    conn = Conn(f, timeout=5.0)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 0.3:
        r = conn.call("SET", key, i)
        if r != b"OK":
            print("SET on %s before the kill: %r" % (f, r), file=sys.stderr)
            return 1
        i += 1
    os.kill(pid, signal.SIGKILL)
    t0 = time.perf_counter_ns()
    errors = 0
    while True:
        if time.perf_counter_ns() - t0 > 30e9:
            print("failover: no acknowledged SET within 30 s", file=sys.stderr)
            return 1
        try:
            if conn is None:
                conn = Conn(f, timeout=5.0)
            r = conn.call("SET", key, i)
        except OSError:
            errors += 1
            conn = None
            time.sleep(0.001)
            continue
        i += 1
        if r == b"OK":
            break
        errors += 1
        time.sleep(0.001)
    t1 = time.perf_counter_ns()
    print("%.0f %d" % ((t1 - t0) / 1e6, errors))
    return 0


def main(argv):
    if len(argv) == 4 and argv[0] == "brpop":
        return brpop(argv[1], argv[2], int(argv[3]))
    if len(argv) == 4 and argv[0] == "pubsub":
        return pubsub(argv[1], argv[2], int(argv[3]))
    if len(argv) == 3 and argv[0] == "failover":
        return failover(argv[1], int(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
