#!/usr/bin/env python3
"""Differential check of redis-store against a real redis-server 7.0.

Sends every line of a script (arguments separated by spaces, `\\xHH` escapes) to the
redis-server listening on the given unix socket (after FLUSHALL) and to
`target/.../examples/replay`, and prints the lines whose RESP2 replies differ byte for byte.
Usage: replay-diff.py SCRIPT REDIS_SOCKET REPLAY_BINARY
Expected differences: TTLs off by the milliseconds between the two runs, KEYS/SCAN order,
OBJECT ENCODING of strings built by APPEND/SETRANGE/INCRBYFLOAT.
"""
import io
import socket
import subprocess
import sys


def unesc(a):
    out, i, b = bytearray(), 0, a.encode()
    while i < len(b):
        if b[i:i + 2] == b'\\x' and i + 3 < len(b):
            try:
                out.append(int(b[i + 2:i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        out.append(b[i])
        i += 1
    return bytes(out)


def read_reply(f):
    line = f.readline()
    out, t = line, line[:1]
    if t == b'$':
        n = int(line[1:-2])
        if n >= 0:
            out += f.read(n + 2)
    elif t == b'*':
        for _ in range(max(int(line[1:-2]), 0)):
            out += read_reply(f)
    return out


def main():
    script, sock_path, replay = sys.argv[1:4]
    lines = [l.rstrip('\n') for l in open(script) if l.strip() and not l.startswith('#')]
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    f = s.makefile('rb')

    def send(args):
        req = b'*%d\r\n' % len(args)
        for x in args:
            req += b'$%d\r\n%s\r\n' % (len(x), x)
        s.sendall(req)
        return read_reply(f)

    send([b'flushall'])
    send([b'select', b'0'])
    theirs = [send([unesc(a) for a in l.split(' ') if a]) for l in lines]
    p = subprocess.run([replay], input=('\n'.join(lines) + '\n').encode(), capture_output=True)
    ours = io.BytesIO(p.stdout)
    bad = 0
    for line, want in zip(lines, theirs):
        got = read_reply(ours)
        if got != want:
            bad += 1
            print('DIFF:', line, '\n  redis:', want, '\n  keel: ', got)
    print('lines', len(lines), 'diffs', bad)
    if p.returncode != 0:
        print(p.stderr.decode()[-2000:])
        sys.exit(1)


if __name__ == '__main__':
    main()
