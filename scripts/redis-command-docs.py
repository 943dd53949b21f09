#!/usr/bin/env python3
"""Record redis-server's `COMMAND INFO` and `COMMAND DOCS` for the commands keel implements.

keel answers `COMMAND INFO` (tips, key specifications) and `COMMAND DOCS` (summaries,
arguments, history: what redis-cli builds its hints from) with the replies of Redis 7.0.15,
recorded by this script into crates/cache-server/src/redis/commands/docs.resp, which
crates/cache-server/src/redis/commands/docs.rs embeds and serves.

Usage (both servers running; keel's `COMMAND LIST` says which commands to record):

    redis-server --port 0 --unixsocket /tmp/r.sock &      # Debian's 7.0.15
    keel cache --redis-port 6400 ... &
    scripts/redis-command-docs.py --redis /tmp/r.sock --keel 127.0.0.1:6400

`--redis` and `--keel` take a unix socket path or HOST:PORT. The output file holds two RESP3
replies, verbatim: redis-server's reply to `COMMAND INFO n1 n2 ...` then to
`COMMAND DOCS n1 n2 ...`, for keel's top-level command names in sorted order (a container's
entries carry all of Redis's subcommands; keel serves only the ones it implements).
"""

import argparse
import os
import socket
import sys

DEFAULT_OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "crates",
    "cache-server",
    "src",
    "redis",
    "commands",
    "docs.resp",
)


def connect(addr):
    if "/" in addr:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr)
    else:
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    s.settimeout(10)
    return s


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Reader:
    """Reads whole RESP2/RESP3 replies, keeping their raw bytes."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def _line(self, pos):
        while True:
            end = self.buf.find(b"\r\n", pos)
            if end >= 0:
                return self.buf[pos:end], end + 2
            self._fill()

    def _skip(self, pos):
        """Position after the reply starting at pos; also returns its decoded value."""
        line, pos = self._line(pos)
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-", b":", b"_", b",", b"#", b"("):
            return pos, rest
        if kind in (b"$", b"=", b"!"):
            n = int(rest)
            if n < 0:
                return pos, None
            while len(self.buf) < pos + n + 2:
                self._fill()
            return pos + n + 2, self.buf[pos : pos + n]
        if kind in (b"*", b"~", b">", b"%", b"|"):
            n = int(rest)
            if kind in (b"%", b"|"):
                n *= 2
            items = []
            for _ in range(max(n, 0)):
                pos, v = self._skip(pos)
                items.append(v)
            return pos, items
        raise ValueError("unexpected reply type %r" % line)

    def reply(self):
        """The next reply: (raw bytes, decoded value)."""
        end, value = self._skip(0)
        raw, self.buf = self.buf[:end], self.buf[end:]
        return raw, value


def call(sock, reader, *args):
    sock.sendall(encode(list(args)))
    raw, value = reader.reply()
    if raw.startswith(b"-"):
        sys.exit("%s: %s" % (" ".join(args[:2]), raw.decode(errors="replace").strip()))
    return raw, value


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--redis", required=True, help="redis-server 7.0.x: socket path or HOST:PORT")
    p.add_argument("--keel", required=True, help="keel's Redis port: socket path or HOST:PORT")
    p.add_argument("--out", default=DEFAULT_OUT, help="output file (default: %(default)s)")
    a = p.parse_args()

    keel = connect(a.keel)
    _, names = call(keel, Reader(keel), "COMMAND", "LIST")
    top = sorted({n.decode().lower() for n in names if b"|" not in n})
    if not top:
        sys.exit("keel listed no commands")

    redis = connect(a.redis)
    reader = Reader(redis)
    _, hello = call(redis, reader, "HELLO", "3")
    fields = dict(zip(hello[::2], hello[1::2]))
    version = fields.get(b"version", b"?").decode()
    if not version.startswith("7.0."):
        print("warning: recording redis-server %s, keel targets 7.0" % version, file=sys.stderr)
    info, _ = call(redis, reader, "COMMAND", "INFO", *top)
    docs, _ = call(redis, reader, "COMMAND", "DOCS", *top)
    with open(a.out, "wb") as f:
        f.write(info)
        f.write(docs)
    print("recorded %d commands from redis-server %s into %s" % (len(top), version, a.out))


if __name__ == "__main__":
    main()
