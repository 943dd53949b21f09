"""The Seafile-13-shaped Redis side of keel's end-to-end test (crates/keel/tests/it/seafile.rs).

Configured only from what `keel seafile-config` printed for this node, in NODE_DIR:
seahub_settings.py (Django's CACHES, `RedisCache` with LOCATION redis://:PW@host:port/0) and
seafevents.conf ([REDIS] server, port, password). Never exits on errors: retries and logs.

Usage: redis_app.py seahub|seafevents NODE_DIR OUT_DIR CONTROL
  seahub      (Django 5 + redis-py 8 venv) what seahub does with its cache: per iteration
              cache.incr('rc:EPOCH:shared') (EXISTS + INCRBY) -> OUT_DIR/seahub.log
              `OK ts key value`, `AMBIG ts key - error` (maybe applied), `MISSING ts key -`
              (the key was absent: not applied); then cache.set('sess:NODE', n, 300),
              cache.get of it (a read that is not n -> `MISMATCH ts key want got`), cache.add
              (SET NX EX). On a new epoch it creates the counter with cache.add(key, 0) and reads
              the previous epoch's counter; on a new control seq it writes OUT_DIR/seahub.ack
              {"seq", "pid", "reads": {key: value or null}} once nothing is in flight.
  seafevents  (redis-py 6.2 venv, as Seafile 13 pins it) two threads like seafevents':
              a consumer `BRPOP repo_size_task 1` in a loop -> OUT_DIR/consumer.log `GOT ts item`,
              `ERR ts error` (a pop whose outcome is unknown: no silent retries); a subscriber on metric_channel (pubsub, health_check_interval=30,
              get_message polling, resubscribe on errors) -> OUT_DIR/subscriber.log `SUB ts` on
              every subscribe confirmation (a new connection interval), `MSG ts payload`,
              `ERR ts error`.
CONTROL is a text file `seq pause epoch exit` (written by the test, atomically).
Both write `START ts pid NODE` first.
"""

import configparser
import json
import os
import sys
import threading
import time


def log_line(f, line):
    f.write(line + "\n")
    f.flush()


def read_control(path):
    try:
        with open(path) as f:
            seq, pause, epoch, exit_ = f.read().split()[:4]
        return int(seq), pause == "1", int(epoch), exit_ == "1"
    except (OSError, ValueError):
        return None


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, path)


def seahub(node_dir, out, control):
    # seahub's settings as printed; only CACHES matters here (DATABASES is the MySQL side).
    ns = {}
    with open(os.path.join(node_dir, "seahub_settings.py")) as f:
        exec(f.read(), ns)
    import django
    from django.conf import settings

    settings.configure(CACHES=ns["CACHES"], USE_TZ=True)
    django.setup()
    from django.core.cache import cache

    node = os.path.basename(node_dir.rstrip("/"))
    log = open(os.path.join(out, "seahub.log"), "a")
    log_line(log, f"START {time.time():.3f} {os.getpid()} {node}")
    seen_seq, paused, epoch, n = -1, False, 0, 0
    created = set()
    while True:
        c = read_control(control)
        if c and c[0] != seen_seq:
            seq, paused, new_epoch, exit_ = c
            reads = {}
            for e in range(0, new_epoch + 1):
                key = f"rc:{e}:shared"
                for _ in range(50):
                    try:
                        reads[key] = cache.get(key)
                        break
                    except Exception:
                        time.sleep(0.2)
                else:
                    reads[key] = "error"
            epoch = new_epoch
            write_json(os.path.join(out, "seahub.ack"), {"seq": seq, "pid": os.getpid(), "reads": reads})
            seen_seq = seq
            if exit_:
                return 0
        if paused:
            time.sleep(0.05)
            continue
        key = f"rc:{epoch}:shared"
        try:
            if key not in created:
                cache.add(key, 0, None)  # no expiry, like a counter that must last
                created.add(key)
            v = cache.incr(key)
            log_line(log, f"OK {time.time():.3f} {key} {v}")
        except ValueError:
            log_line(log, f"MISSING {time.time():.3f} {key} -")
            time.sleep(0.1)
        except Exception as e:
            log_line(log, f"AMBIG {time.time():.3f} {key} - {type(e).__name__}:{str(e)[:80]!r}")
            time.sleep(0.1)
        n += 1
        skey = f"sess:{node}"
        try:
            cache.set(skey, n, 300)
            got = cache.get(skey)
            if got != n:
                log_line(log, f"MISMATCH {time.time():.3f} {skey} {n} {got}")
            cache.add(f"lock:{node}:{n % 50}", 1, 5)
        except Exception:
            time.sleep(0.1)
        time.sleep(0.02)


def seafevents(node_dir, out, control):
    import redis

    cp = configparser.ConfigParser()
    cp.read(os.path.join(node_dir, "seafevents.conf"))
    host = cp.get("REDIS", "server")
    port = cp.getint("REDIS", "port")
    password = cp.get("REDIS", "password", fallback=None)
    node = os.path.basename(node_dir.rstrip("/"))
    stop = threading.Event()

    from redis.backoff import NoBackoff
    from redis.retry import Retry

    def client(**kw):
        # No silent retries (redis-py 6's default retries a command 3 times on a connection
        # error): a BRPOP whose outcome is unknown must show up in the log as an ERR line, so
        # the test can tell an item lost with it from an item lost by the tier.
        return redis.Redis(
            host=host,
            port=port,
            password=password,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
            **kw,
        )

    def consumer():
        log = open(os.path.join(out, "consumer.log"), "a")
        log_line(log, f"START {time.time():.3f} {os.getpid()} {node}")
        r = client(socket_timeout=10)
        while not stop.is_set():
            try:
                got = r.brpop("repo_size_task", 1)
                if got:
                    log_line(log, f"GOT {time.time():.3f} {got[1].decode()}")
            except Exception as e:
                log_line(log, f"ERR {time.time():.3f} {type(e).__name__}:{str(e)[:80]!r}")
                time.sleep(0.2)

    def subscriber():
        log = open(os.path.join(out, "subscriber.log"), "a")
        log_line(log, f"START {time.time():.3f} {os.getpid()} {node}")
        r = client(health_check_interval=30, socket_timeout=40)
        p = None
        while not stop.is_set():
            try:
                if p is None:
                    p = r.pubsub()
                    p.subscribe("metric_channel")
                m = p.get_message(timeout=1.0)
                if m is None:
                    continue
                if m["type"] == "subscribe":
                    log_line(log, f"SUB {time.time():.3f}")
                elif m["type"] == "message":
                    log_line(log, f"MSG {time.time():.3f} {m['data'].decode()}")
            except Exception as e:
                log_line(log, f"ERR {time.time():.3f} {type(e).__name__}:{str(e)[:80]!r}")
                try:
                    if p is not None:
                        p.close()
                except Exception:
                    pass
                p = None
                time.sleep(0.2)
        if p is not None:
            p.close()

    threads = [threading.Thread(target=t, daemon=True) for t in (consumer, subscriber)]
    for t in threads:
        t.start()
    seen_seq = -1
    while True:
        c = read_control(control)
        if c and c[0] != seen_seq:
            seen_seq = c[0]
            write_json(os.path.join(out, "seafevents.ack"), {"seq": seen_seq, "pid": os.getpid()})
            if c[3]:
                stop.set()
                for t in threads:
                    t.join(30)
                return 0 if not any(t.is_alive() for t in threads) else 1
        if not all(t.is_alive() for t in threads):
            return 3
        time.sleep(0.1)


if __name__ == "__main__":
    role, node_dir, out, control = sys.argv[1:5]
    os.makedirs(out, exist_ok=True)
    sys.exit(seahub(node_dir, out, control) if role == "seahub" else seafevents(node_dir, out, control))
