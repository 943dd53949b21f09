//! Redis on the replicated tier (issue 17): three `keel cache --cluster-id N … --redis-port 0`
//! nodes on loopback (`test_harness::cluster` with its Redis side), every Redis command sent to
//! any node, nodes killed with SIGKILL, paused with SIGSTOP and restarted while clients go on.
//!
//! What is checked is what the tier guarantees, and no more:
//! * any node accepts any command, and a read that starts after a write's reply sees it on every
//!   node (strings, lists, hashes, sets, counters, expiry);
//! * `MULTI`/`EXEC` is one unit; a `WATCH` on one node is dirtied by a write on another;
//! * `TTL`/`PTTL` agree across nodes (one replicated clock, about 100 ms resolution) and a key
//!   expires once, for every node;
//! * `BRPOP`/`BLPOP`/`BLMOVE`/`BLMPOP` blocked on one node are woken by a push on another, every
//!   acknowledged item goes to exactly one consumer, timeouts answer a null array on time;
//! * `PUBLISH` on any node reaches subscribers on every node in publish order per publisher, and
//!   answers the number of receivers on the node that took it;
//! * after kill -9 of the leader writes resume within 1 s and no acknowledged write is lost; a
//!   restarted node rejoins and serves the data;
//! * single-key histories of `SET`/`GET`, `INCR` and `LPUSH`/`RPOP` under kill -9, SIGSTOP and
//!   restarts are linearizable (`test_harness::lin::redis`).
//!
//! The tests run one at a time (a module lock): each runs three servers on two shared cores.
//! Every wait polls against a deadline; the only sleeps are fault durations and the pacing of
//! the history clients. Figures are printed as `FIGURE redis-cluster: …` lines.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use test_harness::cluster::{CacheCluster, RedisSide};
use test_harness::lin::redis::{self as rlin, REvent, ROp, ROut, RState};
use test_harness::lin::Verdict;
use test_harness::redis::encode_command;
use test_harness::{show, Resp, RespClient, Rng};

use crate::keel_bin;

/// One test of this module at a time (see the module doc).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Three nodes with their Redis side, two worker threads each, all ready with an agreed leader.
/// `KEEL_TEST_CLUSTER_READ=local` (by hand) serves reads from the local replica: the negative
/// control of the linearizability test, which must then report violations.
fn start_cluster(password: Option<&str>) -> CacheCluster {
    let side = RedisSide {
        password: password.map(str::to_string),
    };
    let read_mode =
        std::env::var("KEEL_TEST_CLUSTER_READ").unwrap_or_else(|_| "linearizable".into());
    let args = ["-t", "2", "--cluster-read", &read_mode];
    CacheCluster::start_redis(keel_bin(), 3, &args, side, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("cannot start the keel cluster with Redis: {e}"))
}

fn seed() -> u64 {
    std::env::var("KEEL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// A Redis connection to `slot` (authenticated when the cluster has a password).
fn conn(c: &CacheCluster, slot: u16) -> RespClient {
    c.redis_connect(slot)
        .unwrap_or_else(|e| panic!("connect to node {slot}'s Redis port: {e}"))
}

/// One command, its parsed reply.
fn call<A: AsRef<[u8]>>(r: &mut RespClient, args: &[A]) -> io::Result<Resp> {
    r.send(&encode_command(args))?;
    Ok(r.read_resp()?.0)
}

/// One command that must succeed at the protocol level; panics with the command otherwise.
fn must<A: AsRef<[u8]>>(r: &mut RespClient, args: &[A]) -> Resp {
    call(r, args).unwrap_or_else(|e| panic!("{}: {e}", show_cmd(args)))
}

fn show_cmd<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.iter()
        .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn bulk(s: &str) -> Resp {
    Resp::Blob(b'$', Some(s.as_bytes().to_vec()))
}
fn int(n: i64) -> Resp {
    Resp::Line(b':', n.to_string().into_bytes())
}
fn ok() -> Resp {
    Resp::Line(b'+', b"OK".to_vec())
}
fn arr(items: Vec<Resp>) -> Resp {
    Resp::Agg(b'*', Some(items))
}
const NIL: Resp = Resp::Blob(b'$', None);
const NIL_ARRAY: Resp = Resp::Agg(b'*', None);

fn as_int(r: &Resp) -> Option<i64> {
    match r {
        Resp::Line(b':', n) => std::str::from_utf8(n).ok()?.parse().ok(),
        _ => None,
    }
}

fn is_error(r: &Resp) -> bool {
    matches!(r, Resp::Line(b'-', _))
}

fn text(r: &Resp) -> String {
    show(&r.encode())
}

/// Messages of errors that certainly had no effect (the write never reached a leader's log:
/// `ClusterError::certainly_not_applied`). Any other error leaves a write's outcome unknown.
fn certainly_not_applied(err: &Resp) -> bool {
    let Resp::Line(b'-', m) = err else {
        return false;
    };
    let m = String::from_utf8_lossy(m);
    [
        "cluster has no leader",
        "not the cluster leader",
        "cut off from the cluster majority",
        "cluster node not ready",
        "cluster peer unreachable",
        "cluster config",
        "cluster shutting down",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// Send `args` without reading the reply (a blocking command), on `slot`.
fn send_blocking(c: &CacheCluster, slot: u16, args: &[&str]) -> RespClient {
    let mut r = conn(c, slot);
    r.send(&encode_command(args))
        .unwrap_or_else(|e| panic!("{}: {e}", show_cmd(args)));
    r
}

/// Poll `INFO clients` on `slot` until it reports `blocked_clients:n` (the blocked command is
/// registered), with a deadline.
fn wait_blocked(c: &CacheCluster, slot: u16, n: usize) {
    let mut r = conn(c, slot);
    let want = format!("blocked_clients:{n}\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = must(&mut r, &["INFO", "clients"]);
        let s = match &info {
            Resp::Blob(_, Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => text(other),
        };
        if s.contains(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {slot} never reported {want:?}: {s}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ------------------------------------------------------------------------------------------
// 1. Any node, any command; reads see every acknowledged write.
// ------------------------------------------------------------------------------------------

#[test]
fn a_write_on_one_node_is_read_on_every_node_at_once() {
    let _serial = serial();
    let c = start_cluster(Some("tier-secret"));
    let mut rs: Vec<RespClient> = c.slots().iter().map(|&s| conn(&c, s)).collect();
    for w in 0..3usize {
        let others: Vec<usize> = (0..3).filter(|&i| i != w).collect();
        let k = |name: &str| format!("{name}:{w}");
        let writes: Vec<(Vec<String>, Resp)> = vec![
            (vec!["SET".into(), k("s"), "v".into()], ok()),
            (vec!["LPUSH".into(), k("l"), "a".into(), "b".into()], int(2)),
            (vec!["HSET".into(), k("h"), "f".into(), "x".into()], int(1)),
            (vec!["SADD".into(), k("set"), "m".into()], int(1)),
            (vec!["INCR".into(), k("n")], int(1)),
            (vec!["INCR".into(), k("n")], int(2)),
            (vec!["EXPIRE".into(), k("s"), "1000".into()], int(1)),
        ];
        let reads: Vec<(Vec<String>, Resp)> = vec![
            (vec!["GET".into(), k("s")], bulk("v")),
            (
                vec!["LRANGE".into(), k("l"), "0".into(), "-1".into()],
                arr(vec![bulk("b"), bulk("a")]),
            ),
            (vec!["HGET".into(), k("h"), "f".into()], bulk("x")),
            (vec!["SISMEMBER".into(), k("set"), "m".into()], int(1)),
            (vec!["GET".into(), k("n")], bulk("2")),
        ];
        for (cmd, want) in &writes {
            let got = must(&mut rs[w], cmd);
            assert_eq!(
                got,
                *want,
                "{} on node {}: {}",
                show_cmd(cmd),
                w + 1,
                text(&got)
            );
            // A read that starts after the reply sees the write, on every node.
            if cmd[0] == "INCR" {
                for &o in &others {
                    let g = must(&mut rs[o], &["GET", &k("n")]);
                    assert_eq!(
                        g,
                        bulk(&as_int(want).unwrap_or(0).to_string()),
                        "GET {} on node {} right after {} on node {} answered {}",
                        k("n"),
                        o + 1,
                        show_cmd(cmd),
                        w + 1,
                        text(&g)
                    );
                }
            }
        }
        for &o in &others {
            for (cmd, want) in &reads {
                let got = must(&mut rs[o], cmd);
                assert_eq!(
                    got,
                    *want,
                    "{} on node {} after the writes on node {}: {}",
                    show_cmd(cmd),
                    o + 1,
                    w + 1,
                    text(&got)
                );
            }
            let ttl = as_int(&must(&mut rs[o], &["TTL", &k("s")]));
            assert!(
                matches!(ttl, Some(t) if t > 0 && t <= 1000),
                "TTL {} on node {} after EXPIRE 1000 on node {}: {ttl:?}",
                k("s"),
                o + 1,
                w + 1
            );
        }
    }
    // DEL on one node, gone everywhere.
    assert_eq!(must(&mut rs[2], &["DEL", "s:0", "l:1", "h:2"]), int(3));
    for r in rs.iter_mut() {
        assert_eq!(must(r, &["EXISTS", "s:0", "l:1", "h:2"]), int(0));
    }
}

// ------------------------------------------------------------------------------------------
// 2. MULTI/EXEC and WATCH across nodes.
// ------------------------------------------------------------------------------------------

#[test]
fn multi_exec_is_one_unit_and_watch_sees_writes_on_other_nodes() {
    let _serial = serial();
    let c = start_cluster(None);
    // A transaction's writes appear together: readers on the other nodes never see half of one.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for slot in [2u16, 3] {
        let mut r = conn(&c, slot);
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Relaxed) {
                let got = must(&mut r, &["MGET", "ta", "tb"]);
                if let Resp::Agg(_, Some(v)) = &got {
                    assert_eq!(
                        v.first(),
                        v.get(1),
                        "node {slot} saw half of a MULTI/EXEC: {}",
                        text(&got)
                    );
                }
                reads += 1;
            }
            reads
        }));
    }
    let mut w = conn(&c, 1);
    for i in 0..200 {
        let v = i.to_string();
        assert_eq!(must(&mut w, &["MULTI"]), ok());
        for k in ["ta", "tb"] {
            assert_eq!(
                must(&mut w, &["SET", k, &v]),
                Resp::Line(b'+', b"QUEUED".to_vec())
            );
        }
        assert_eq!(must(&mut w, &["EXEC"]), arr(vec![ok(), ok()]));
    }
    stop.store(true, Relaxed);
    let reads: u64 = readers
        .into_iter()
        .map(|h| h.join().expect("reader panicked"))
        .sum();
    assert!(reads > 0, "the readers never read");
    // The queued replies come back in order, and the last transaction is visible everywhere.
    assert_eq!(must(&mut w, &["MULTI"]), ok());
    for cmd in [
        vec!["INCR", "tc"],
        vec!["LPUSH", "tl", "x"],
        vec!["GET", "ta"],
    ] {
        must(&mut w, &cmd);
    }
    assert_eq!(
        must(&mut w, &["EXEC"]),
        arr(vec![int(1), int(1), bulk("199")])
    );
    for slot in c.slots() {
        let mut r = conn(&c, slot);
        assert_eq!(
            must(&mut r, &["MGET", "ta", "tb", "tc"]),
            arr(vec![bulk("199"), bulk("199"), bulk("1")]),
            "node {slot}"
        );
    }

    // WATCH on node 1, a write on node 2: EXEC answers a null array and does nothing.
    let mut a = conn(&c, 1);
    let mut b = conn(&c, 2);
    assert_eq!(must(&mut a, &["WATCH", "wk"]), ok());
    assert_eq!(must(&mut b, &["SET", "wk", "from-b"]), ok());
    assert_eq!(must(&mut a, &["MULTI"]), ok());
    must(&mut a, &["SET", "wk", "from-a"]);
    must(&mut a, &["SET", "wk2", "from-a"]);
    assert_eq!(
        must(&mut a, &["EXEC"]),
        NIL_ARRAY,
        "WATCH on node 1 not dirtied by SET on node 2"
    );
    for slot in c.slots() {
        let mut r = conn(&c, slot);
        assert_eq!(
            must(&mut r, &["MGET", "wk", "wk2"]),
            arr(vec![bulk("from-b"), NIL]),
            "node {slot} after the aborted EXEC"
        );
    }
    // Control: without a write in between, the same transaction runs.
    assert_eq!(must(&mut a, &["WATCH", "wk"]), ok());
    assert_eq!(must(&mut a, &["MULTI"]), ok());
    must(&mut a, &["SET", "wk", "from-a"]);
    assert_eq!(must(&mut a, &["EXEC"]), arr(vec![ok()]));
    assert_eq!(must(&mut b, &["GET", "wk"]), bulk("from-a"));
}

// ------------------------------------------------------------------------------------------
// 3. One clock: TTLs agree, keys expire once.
// ------------------------------------------------------------------------------------------

#[test]
fn ttls_agree_on_every_node_and_keys_expire_for_all_at_once() {
    let _serial = serial();
    let c = start_cluster(None);
    let mut rs: Vec<RespClient> = c.slots().iter().map(|&s| conn(&c, s)).collect();
    // Resolution of the replicated clock, plus what a loaded machine adds between two reads.
    const SLACK_MS: i64 = 250;
    for (w, px) in [(0usize, 60_000i64), (1, 30_000), (2, 5_000)] {
        let key = format!("ttl{w}");
        let set_at = Instant::now();
        assert_eq!(
            must(&mut rs[w], &["SET", &key, "v", "PX", &px.to_string()]),
            ok()
        );
        let mut last: Option<(i64, Instant)> = None;
        for o in [(w + 1) % 3, (w + 2) % 3, w] {
            let t = Instant::now();
            let p = as_int(&must(&mut rs[o], &["PTTL", &key]))
                .unwrap_or_else(|| panic!("PTTL {key} on node {}", o + 1));
            let since_set = set_at.elapsed().as_millis() as i64;
            assert!(
                p > 0 && p <= px + SLACK_MS && p >= px - since_set - SLACK_MS,
                "PTTL {key} on node {} = {p}, {since_set} ms after SET PX {px} on node {}",
                o + 1,
                w + 1
            );
            if let Some((prev, at)) = last {
                let between = at.elapsed().as_millis() as i64;
                assert!(
                    (p - prev).abs() <= between + SLACK_MS,
                    "PTTL {key}: {prev} then {p} on node {} ({between} ms apart): the nodes' clocks disagree",
                    o + 1
                );
            }
            last = Some((p, t));
            let ttl = as_int(&must(&mut rs[o], &["TTL", &key])).unwrap_or(-3);
            assert!(
                ttl > 0 && ttl <= px / 1000 + 1,
                "TTL {key} on node {}: {ttl}",
                o + 1
            );
        }
    }
    // A key expires through the log: once one node answers nil, every node does.
    assert_eq!(must(&mut rs[0], &["SET", "short", "v", "PX", "300"]), ok());
    assert_eq!(must(&mut rs[1], &["RPUSH", "shortl", "a"]), int(1));
    assert_eq!(must(&mut rs[1], &["PEXPIRE", "shortl", "300"]), int(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut gone_on = None;
    while gone_on.is_none() {
        for (i, r) in rs.iter_mut().enumerate() {
            if must(r, &["EXISTS", "short", "shortl"]) == int(0) {
                gone_on = Some(i);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "keys with PX 300 still exist after 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let first = gone_on.unwrap_or(0);
    for (i, r) in rs.iter_mut().enumerate() {
        assert_eq!(
            must(r, &["EXISTS", "short", "shortl"]),
            int(0),
            "node {} still has the keys after node {} found them expired",
            i + 1,
            first + 1
        );
        assert_eq!(must(r, &["GET", "short"]), NIL);
    }
}

/// The keys line of `INFO keyspace` for db0 on `slot` (this node's own replica, no barrier).
fn db0_line(c: &CacheCluster, slot: u16) -> String {
    let mut r = conn(c, slot);
    match must(&mut r, &["INFO", "keyspace"]) {
        Resp::Blob(_, Some(b)) => String::from_utf8_lossy(&b)
            .lines()
            .find(|l| l.starts_with("db0:"))
            .unwrap_or("db0:none")
            .to_string(),
        other => panic!("INFO keyspace on node {slot}: {other:?}"),
    }
}

#[test]
fn a_replica_expires_keys_only_through_the_log() {
    let _serial = serial();
    let mut c = start_cluster(None);
    let leader = c
        .leader(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut w = conn(&c, leader);
    for i in 0..200 {
        assert_eq!(
            must(&mut w, &["SET", &format!("k{i}"), "v", "PX", "300"]),
            ok()
        );
    }
    let others: Vec<u16> = c.slots().into_iter().filter(|s| *s != leader).collect();
    let (paused, watched) = (others[0], others[1]);
    // The watched follower has applied every SET (a linearizable read on it sees the last).
    assert_eq!(must(&mut conn(&c, watched), &["EXISTS", "k199"]), int(1));
    // With the leader and one follower stopped, no entry is appended: the replicated clock
    // stands still on the watched follower, so its keys must outlive their wall-clock expiry.
    c.pause(leader).unwrap_or_else(|e| panic!("{e}"));
    c.pause(paused).unwrap_or_else(|e| panic!("{e}"));
    // Waiting for wall-clock time to pass is the point here (not a readiness wait).
    std::thread::sleep(Duration::from_millis(900));
    let during = db0_line(&c, watched);
    c.resume(paused).unwrap_or_else(|e| panic!("{e}"));
    c.resume(leader).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        during.starts_with("db0:keys=200,expires=200"),
        "node {watched} removed keys outside the log while the log stood still: {during}"
    );
    // Once the log moves again, the keys go on every node.
    let deadline = Instant::now() + Duration::from_secs(15);
    for slot in c.slots() {
        loop {
            let line = db0_line(&c, slot);
            if line == "db0:none" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {slot} still holds expired keys 15 s after the leader resumed: {line}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    c.wait_all_ready(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
}

// ------------------------------------------------------------------------------------------
// 4. Blocking pops across nodes.
// ------------------------------------------------------------------------------------------

#[test]
fn blocked_pops_on_one_node_are_woken_by_a_push_on_another() {
    let _serial = serial();
    let c = start_cluster(None);
    let cases: [(&[&str], &[&str], Resp); 4] = [
        (
            &["BRPOP", "q1", "0"],
            &["LPUSH", "q1", "x"],
            arr(vec![bulk("q1"), bulk("x")]),
        ),
        (
            &["BLPOP", "q2", "q2b", "0"],
            &["RPUSH", "q2b", "y"],
            arr(vec![bulk("q2b"), bulk("y")]),
        ),
        (
            &["BLMOVE", "q3", "dst3", "RIGHT", "LEFT", "0"],
            &["LPUSH", "q3", "z"],
            bulk("z"),
        ),
        (
            &["BLMPOP", "0", "1", "q4", "LEFT"],
            &["RPUSH", "q4", "w"],
            arr(vec![bulk("q4"), arr(vec![bulk("w")])]),
        ),
    ];
    for (i, (pop, push, want)) in cases.iter().enumerate() {
        let (bslot, pslot) = ((i % 3) as u16 + 1, ((i + 1) % 3) as u16 + 1);
        let mut blocked = send_blocking(&c, bslot, pop);
        wait_blocked(&c, bslot, 1);
        let mut p = conn(&c, pslot);
        let t = Instant::now();
        must(&mut p, push);
        let (got, _) = blocked.read_resp().unwrap_or_else(|e| {
            panic!(
                "{} on node {bslot} after {} on node {pslot}: {e}",
                show_cmd(pop),
                show_cmd(push)
            )
        });
        eprintln!(
            "FIGURE redis-cluster: {} on node {bslot} woken {:.2} ms after {} on node {pslot} was sent",
            pop[0],
            t.elapsed().as_secs_f64() * 1e3,
            push[0]
        );
        assert_eq!(
            got,
            *want,
            "{} on node {bslot} woken by {} on node {pslot}: {}",
            show_cmd(pop),
            show_cmd(push),
            text(&got)
        );
    }
    // BLMOVE's destination got the element, on every node; the sources are empty.
    for slot in c.slots() {
        let mut r = conn(&c, slot);
        assert_eq!(
            must(&mut r, &["LRANGE", "dst3", "0", "-1"]),
            arr(vec![bulk("z")]),
            "node {slot}"
        );
        assert_eq!(must(&mut r, &["EXISTS", "q1", "q2b", "q3", "q4"]), int(0));
    }
}

#[test]
fn blocking_timeouts_answer_a_null_array_on_time_and_zero_waits_forever() {
    let _serial = serial();
    let c = start_cluster(None);
    for (slot, cmd) in [
        (1u16, vec!["BRPOP", "none1", "0.5"]),
        (2, vec!["BLPOP", "none2", "0.5"]),
        (3, vec!["BLMPOP", "0.5", "1", "none3", "RIGHT"]),
    ] {
        let mut r = conn(&c, slot);
        let t = Instant::now();
        let got = must(&mut r, &cmd);
        let took = t.elapsed();
        assert_eq!(got, NIL_ARRAY, "{} on node {slot}", show_cmd(&cmd));
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(3),
            "{} on node {slot} timed out after {took:?}",
            show_cmd(&cmd)
        );
    }
    let mut r = conn(&c, 2);
    let t = Instant::now();
    assert_eq!(
        must(&mut r, &["BLMOVE", "none4", "d4", "LEFT", "LEFT", "0.3"]),
        NIL_ARRAY
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    // 0 = forever: still waiting 2 s later, then served by a push on another node.
    let mut forever = send_blocking(&c, 3, &["BRPOP", "later", "0"]);
    wait_blocked(&c, 3, 1);
    forever
        .set_read_timeout(Duration::from_secs(2))
        .expect("timeout");
    let early = forever.read_resp();
    assert!(
        early.is_err(),
        "BRPOP later 0 answered before any push: {early:?}"
    );
    forever
        .set_read_timeout(Duration::from_secs(10))
        .expect("timeout");
    // The read timeout left the client blocked on the server (nothing was read).
    assert_eq!(must(&mut conn(&c, 1), &["LPUSH", "later", "v"]), int(1));
    assert_eq!(
        forever.read_resp().expect("BRPOP later 0").0,
        arr(vec![bulk("later"), bulk("v")])
    );
}

#[test]
fn every_acknowledged_item_is_delivered_exactly_once_to_consumers_on_all_nodes() {
    let _serial = serial();
    let c = start_cluster(None);
    const PER_PRODUCER: usize = 300;
    let addrs: Vec<SocketAddr> = c
        .slots()
        .iter()
        .map(|&s| c.redis_addr(s).expect("redis address"))
        .collect();
    let delivered: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut consumers = Vec::new();
    for (i, &addr) in addrs.iter().cycle().take(6).enumerate() {
        let (delivered, stop) = (delivered.clone(), stop.clone());
        consumers.push(std::thread::spawn(move || {
            let mut r = RespClient::connect(addr).expect("consumer connect");
            while !stop.load(Relaxed) {
                let got = call(&mut r, &["BRPOP", "jobs", "0.2"]).expect("BRPOP jobs 0.2");
                match got {
                    r if r == NIL_ARRAY => {}
                    Resp::Agg(b'*', Some(v)) if v.len() == 2 => {
                        let Resp::Blob(_, Some(item)) = &v[1] else {
                            panic!("BRPOP answered {v:?}");
                        };
                        delivered
                            .lock()
                            .unwrap()
                            .push((i, String::from_utf8_lossy(item).into_owned()));
                    }
                    other => panic!("consumer {i}: BRPOP jobs answered {}", text(&other)),
                }
            }
        }));
    }
    // Wait until every consumer is blocked (2 per node) so pushes wake blocked clients.
    for slot in c.slots() {
        wait_blocked(&c, slot, 2);
    }
    let producers: Vec<_> = addrs
        .iter()
        .enumerate()
        .map(|(p, &addr)| {
            std::thread::spawn(move || {
                let mut r = RespClient::connect(addr).expect("producer connect");
                let mut acked = Vec::new();
                for i in 0..PER_PRODUCER {
                    let item = format!("p{p}-{i}");
                    let got = call(&mut r, &["LPUSH", "jobs", &item]).expect("LPUSH");
                    assert!(as_int(&got).is_some(), "LPUSH jobs {item}: {}", text(&got));
                    acked.push(item);
                }
                acked
            })
        })
        .collect();
    let acked: Vec<String> = producers
        .into_iter()
        .flat_map(|h| h.join().expect("producer panicked"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered.lock().unwrap().len() < acked.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Relaxed);
    for h in consumers {
        h.join().expect("consumer panicked");
    }
    let delivered = std::mem::take(&mut *delivered.lock().unwrap());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (_, item) in &delivered {
        *seen.entry(item.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|i| !seen.contains_key(i.as_str()))
        .collect();
    let acked_set: HashSet<&str> = acked.iter().map(String::as_str).collect();
    let unknown: Vec<_> = seen.keys().filter(|k| !acked_set.contains(*k)).collect();
    let per_node: BTreeMap<usize, usize> = delivered.iter().fold(BTreeMap::new(), |mut m, d| {
        *m.entry(d.0 % 3 + 1).or_default() += 1;
        m
    });
    eprintln!(
        "FIGURE redis-cluster: {} items pushed on 3 nodes, {} delivered; per consumer node {per_node:?}",
        acked.len(),
        delivered.len()
    );
    assert!(dups.is_empty(), "delivered more than once: {dups:?}");
    assert!(
        missing.is_empty(),
        "{} acknowledged items never delivered, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        unknown.is_empty(),
        "delivered but never pushed: {unknown:?}"
    );
    assert_eq!(must(&mut conn(&c, 1), &["LLEN", "jobs"]), int(0));
}

// ------------------------------------------------------------------------------------------
// 5. Pub/sub across nodes.
// ------------------------------------------------------------------------------------------

#[test]
fn publish_on_any_node_reaches_subscribers_on_every_node_in_order() {
    let _serial = serial();
    let c = start_cluster(None);
    const M: usize = 100;
    let mut subs: Vec<RespClient> = Vec::new();
    for slot in c.slots() {
        let mut s = conn(&c, slot);
        assert_eq!(
            must(&mut s, &["SUBSCRIBE", "metrics"]),
            arr(vec![bulk("subscribe"), bulk("metrics"), int(1)]),
            "node {slot}"
        );
        subs.push(s);
    }
    // A node without local subscribers on the channel counts none.
    assert_eq!(must(&mut conn(&c, 2), &["PUBLISH", "nobody", "x"]), int(0));
    let publishers: Vec<_> = c
        .slots()
        .iter()
        .map(|&slot| {
            let mut r = conn(&c, slot);
            std::thread::spawn(move || {
                for i in 0..M {
                    let got = call(&mut r, &["PUBLISH", "metrics", &format!("n{slot}:{i}")])
                        .expect("PUBLISH");
                    // The subscriber on the node that took the PUBLISH; other nodes' are not
                    // counted.
                    assert_eq!(got, int(1), "PUBLISH #{i} on node {slot}: {}", text(&got));
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().expect("publisher panicked");
    }
    for (si, s) in subs.iter_mut().enumerate() {
        let mut next: BTreeMap<u16, usize> = BTreeMap::new();
        for _ in 0..3 * M {
            let (m, _) = s.read_resp().unwrap_or_else(|e| {
                panic!(
                    "subscriber on node {}: got {next:?} (next index per publisher node): {e}",
                    si + 1
                )
            });
            let Resp::Agg(_, Some(v)) = &m else {
                panic!("subscriber on node {}: {}", si + 1, text(&m));
            };
            assert_eq!(v.len(), 3, "{}", text(&m));
            assert_eq!(v[0], bulk("message"));
            assert_eq!(v[1], bulk("metrics"));
            let Resp::Blob(_, Some(body)) = &v[2] else {
                panic!("{}", text(&m));
            };
            let body = String::from_utf8_lossy(body).into_owned();
            let (n, i) = body
                .strip_prefix('n')
                .and_then(|b| b.split_once(':'))
                .and_then(|(n, i)| Some((n.parse::<u16>().ok()?, i.parse::<usize>().ok()?)))
                .unwrap_or_else(|| panic!("unexpected message {body:?}"));
            let want = next.entry(n).or_insert(0);
            assert_eq!(
                i,
                *want,
                "subscriber on node {}: message {body:?} out of order or missing (expected n{n}:{want})",
                si + 1
            );
            *want += 1;
        }
        assert_eq!(next.values().copied().collect::<Vec<_>>(), vec![M; 3]);
    }
}

// ------------------------------------------------------------------------------------------
// 6. kill -9 of the leader; a restarted node rejoins.
// ------------------------------------------------------------------------------------------

#[test]
fn writes_resume_within_a_second_of_a_leader_kill_and_nothing_acknowledged_is_lost() {
    let _serial = serial();
    let mut c = start_cluster(Some("pw"));
    let leader = c
        .leader(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let survivors: Vec<u16> = c.slots().into_iter().filter(|s| *s != leader).collect();
    let password = c.redis_password().map(str::to_string);
    // Acknowledged writes before the kill, through every node.
    let mut acked: Vec<(String, String)> = Vec::new();
    for slot in c.slots() {
        let mut r = conn(&c, slot);
        for i in 0..100 {
            let (k, v) = (format!("pre{slot}:{i}"), format!("v{slot}.{i}"));
            assert_eq!(must(&mut r, &["SET", &k, &v]), ok());
            acked.push((k, v));
        }
        assert!(as_int(&must(&mut r, &["RPUSH", "prelist", &slot.to_string()])).is_some());
    }
    let survivor_addrs: Vec<SocketAddr> = survivors
        .iter()
        .map(|&s| c.redis_addr(s).expect("survivor address"))
        .collect();
    c.kill(leader);
    let killed_at = Instant::now();
    // Writers on both survivors until each has an acknowledged write.
    let resumed: Vec<_> = survivor_addrs
        .iter()
        .enumerate()
        .map(|(n, &addr)| {
            let pw = password.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut seq = 0;
                let mut conn: Option<RespClient> = None;
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    assert!(Instant::now() < deadline, "no write acknowledged in 10 s");
                    let r = match conn.as_mut() {
                        Some(r) => r,
                        None => match RespClient::connect_auth(addr, pw.as_deref()) {
                            Ok(r) => conn.insert(r),
                            Err(_) => continue,
                        },
                    };
                    let _ = r.set_read_timeout(Duration::from_secs(2));
                    seq += 1;
                    let (k, v) = (format!("post{n}:{seq}"), format!("w{seq}"));
                    match call(r, &["SET", &k, &v]) {
                        Ok(got) if got == ok() => {
                            acked.push((k, v));
                            return (Instant::now(), acked);
                        }
                        Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                        Err(_) => conn = None,
                    }
                }
            })
        })
        .collect();
    for h in resumed {
        let (at, more) = h.join().expect("writer panicked");
        let took = at.duration_since(killed_at);
        eprintln!(
            "FIGURE redis-cluster: leader kill -9 to the first acknowledged SET on a survivor: {:.0} ms",
            took.as_secs_f64() * 1e3
        );
        assert!(
            took <= Duration::from_secs(1),
            "writes resumed {took:?} after the leader's kill -9\n{}",
            c.all_logs(3000)
        );
        acked.extend(more);
    }
    let check_all = |c: &CacheCluster, slot: u16, acked: &[(String, String)]| {
        let mut r = conn(c, slot);
        for (k, v) in acked {
            assert_eq!(
                must(&mut r, &["GET", k]),
                bulk(v),
                "acknowledged {k}={v} on node {slot}"
            );
        }
        let list = must(&mut r, &["LRANGE", "prelist", "0", "-1"]);
        assert_eq!(
            list,
            arr(vec![bulk("1"), bulk("2"), bulk("3")]),
            "node {slot}"
        );
    };
    for &s in &survivors {
        check_all(&c, s, &acked);
    }
    // The killed node restarts, rejoins and serves everything (on its new Redis port).
    let took = c
        .restart(leader, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("restart of node {leader}: {e}"));
    eprintln!(
        "FIGURE redis-cluster: killed leader {leader} ready again {:.2} s after its restart",
        took.as_secs_f64()
    );
    check_all(&c, leader, &acked);
    let mut r = conn(&c, leader);
    assert_eq!(must(&mut r, &["SET", "after-restart", "1"]), ok());
    assert_eq!(
        must(&mut conn(&c, survivors[0]), &["GET", "after-restart"]),
        bulk("1")
    );
}

// ------------------------------------------------------------------------------------------
// 7. Linearizability under kill -9, SIGSTOP and restart.
// ------------------------------------------------------------------------------------------

type Histories = Arc<Mutex<BTreeMap<String, Vec<REvent>>>>;

/// A history client on one node: random `SET`/`GET` on `reg`, `INCR`/`GET` on `ctr`,
/// `LPUSH`/`RPOP`/`LLEN` on `list`, every operation recorded with its call and return times. It
/// reconnects to the node's current Redis address (which changes when the node restarts).
#[allow(clippy::too_many_arguments)] // the shared state of one test, spelled out
fn history_client(
    addrs: Arc<Mutex<Vec<Option<SocketAddr>>>>,
    slot: u16,
    cid: u64,
    seed: u64,
    start: Instant,
    stop: Arc<AtomicBool>,
    hist: Histories,
    counts: Arc<[AtomicU64; 3]>,
) {
    let mut rng = Rng::new(seed ^ cid.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let t = || start.elapsed().as_nanos() as u64;
    let mut conn: Option<RespClient> = None;
    let mut seq = 0u64;
    let record = |key: &str, e: REvent| {
        hist.lock()
            .unwrap()
            .entry(key.to_string())
            .or_default()
            .push(e)
    };
    while !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_micros(rng.range(500, 3000)));
        let r = match conn.as_mut() {
            Some(r) => r,
            None => {
                let addr = addrs.lock().unwrap()[slot as usize - 1];
                match addr.map(RespClient::connect) {
                    Some(Ok(r)) => {
                        // Longer than the server's own op timeout, shorter than a long pause.
                        let _ = r.set_read_timeout(Duration::from_millis(2500));
                        conn.insert(r)
                    }
                    _ => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
            }
        };
        seq += 1;
        let fresh = (cid << 32) | seq;
        let (key, op, args): (&str, ROp, Vec<String>) = match rng.below(8) {
            0 => (
                "reg",
                ROp::Set(fresh as i64),
                vec!["SET".into(), "reg".into(), fresh.to_string()],
            ),
            1 => ("reg", ROp::Get, vec!["GET".into(), "reg".into()]),
            2 => ("ctr", ROp::Incr, vec!["INCR".into(), "ctr".into()]),
            3 => ("ctr", ROp::Get, vec!["GET".into(), "ctr".into()]),
            // Pops outnumber pushes: the list stays short, and so do the checker's states.
            4 => (
                "list",
                ROp::LPush(fresh),
                vec!["LPUSH".into(), "list".into(), fresh.to_string()],
            ),
            5 | 6 => ("list", ROp::RPop, vec!["RPOP".into(), "list".into()]),
            _ => ("list", ROp::LLen, vec!["LLEN".into(), "list".into()]),
        };
        let call_t = t();
        let answer = call(r, &args);
        let ret_t = t();
        let num = |b: &[u8]| -> Option<i64> { std::str::from_utf8(b).ok()?.parse().ok() };
        let out = match &answer {
            Err(_) => {
                conn = None;
                ROut::Unknown
            }
            Ok(e) if is_error(e) => {
                if certainly_not_applied(e) || op == ROp::Get || op == ROp::LLen {
                    counts[2].fetch_add(1, Relaxed);
                    continue;
                }
                ROut::Unknown
            }
            Ok(reply) => match (&op, reply) {
                (ROp::Set(_), r) if *r == ok() => ROut::Ok,
                (ROp::Get, Resp::Blob(b'$', None)) => ROut::Str(None),
                (ROp::Get, Resp::Blob(b'$', Some(v))) => ROut::Str(Some(
                    num(v).unwrap_or_else(|| panic!("GET {key}: non-numeric {v:?}")),
                )),
                (ROp::Incr | ROp::LPush(_) | ROp::LLen, r) if as_int(r).is_some() => {
                    ROut::Int(as_int(r).unwrap_or(0))
                }
                (ROp::RPop, Resp::Blob(b'$', None)) => ROut::Elem(None),
                (ROp::RPop, Resp::Blob(b'$', Some(v))) => ROut::Elem(Some(
                    num(v)
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or_else(|| panic!("RPOP {key}: non-numeric {v:?}")),
                )),
                (_, other) => panic!("{} answered {}", args.join(" "), text(other)),
            },
        };
        if out == ROut::Unknown {
            counts[1].fetch_add(1, Relaxed);
        } else {
            counts[0].fetch_add(1, Relaxed);
        }
        let ret = if out == ROut::Unknown {
            u64::MAX
        } else {
            ret_t
        };
        record(
            key,
            REvent {
                call: call_t,
                ret,
                op,
                out,
            },
        );
    }
}

#[test]
fn redis_histories_are_linearizable_under_kill_pause_restart() {
    let _serial = serial();
    let seed = seed();
    eprintln!("redis linearizability: seed {seed} (KEEL_TEST_SEED={seed} reproduces the nemesis)");
    let mut c = start_cluster(None);
    let addrs: Arc<Mutex<Vec<Option<SocketAddr>>>> = Arc::new(Mutex::new(
        c.slots().iter().map(|&s| c.redis_addr(s)).collect(),
    ));
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let hist: Histories = Arc::default();
    let counts: Arc<[AtomicU64; 3]> =
        Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let clients: Vec<_> = (1..=6u64)
        .map(|cid| {
            let slot = (cid % 3 + 1) as u16;
            let (addrs, stop, hist, counts) =
                (addrs.clone(), stop.clone(), hist.clone(), counts.clone());
            std::thread::spawn(move || {
                history_client(addrs, slot, cid, seed, start, stop, hist, counts)
            })
        })
        .collect();

    // Nemesis: one fault at a time on a random node (half the time the leader), then wait until
    // every node is ready again with an agreed leader.
    let mut rng = Rng::new(seed);
    let run_for = Duration::from_secs(20);
    let mut faults = Vec::new();
    while start.elapsed() < run_for {
        std::thread::sleep(Duration::from_millis(rng.range(300, 900)));
        let slot = if rng.chance(1, 2) {
            c.leader(Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{e}"))
        } else {
            rng.range(1, 3) as u16
        };
        let t = start.elapsed().as_secs_f64();
        if rng.chance(1, 2) {
            c.kill(slot);
            addrs.lock().unwrap()[slot as usize - 1] = None;
            std::thread::sleep(Duration::from_millis(rng.range(50, 500)));
            let took = c
                .restart(slot, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("restart of {slot}: {e}"));
            addrs.lock().unwrap()[slot as usize - 1] = c.redis_addr(slot);
            faults.push(format!(
                "{t:.1}s kill+restart {slot} (ready after {:.2}s)",
                took.as_secs_f64()
            ));
        } else {
            let ms = rng.range(300, 1500);
            c.pause(slot).unwrap_or_else(|e| panic!("{e}"));
            std::thread::sleep(Duration::from_millis(ms));
            c.resume(slot).unwrap_or_else(|e| panic!("{e}"));
            faults.push(format!("{t:.1}s pause {slot} {ms}ms"));
        }
        c.wait_all_ready(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("after {faults:?}: {e}"));
    }
    std::thread::sleep(Duration::from_millis(300)); // a last quiet stretch of history
    stop.store(true, Relaxed);
    for h in clients {
        h.join().expect("history client panicked");
    }
    let events = std::mem::take(&mut *hist.lock().unwrap());
    let [known, unknown, refused] = [0, 1, 2].map(|i| counts[i].load(Relaxed));
    eprintln!(
        "FIGURE redis-cluster: linearizability: {} faults in {:.0} s, {known} operations with known outcome, {unknown} unknown, {refused} refused; faults: {faults:?}",
        faults.len(),
        start.elapsed().as_secs_f64()
    );
    let mut violations = Vec::new();
    for (key, h) in &events {
        let t = Instant::now();
        let verdict = rlin::check(h, &RState::Missing, 20_000_000);
        eprintln!(
            "redis linearizability: key {key}: {} ops checked in {:.2} s: {verdict:?}",
            h.len(),
            t.elapsed().as_secs_f64()
        );
        if verdict != Verdict::Linearizable {
            let mut sorted = h.clone();
            sorted.sort_by_key(|e| e.call);
            let tail: Vec<String> = sorted
                .iter()
                .rev()
                .take(60)
                .rev()
                .map(|e| format!("{e:?}"))
                .collect();
            violations.push(format!(
                "key {key}: {verdict:?} ({} ops); last events:\n  {}",
                h.len(),
                tail.join("\n  ")
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "{} of {} keys not linearizable (seed {seed}; faults {faults:?}):\n{}\ncluster logs:\n{}",
        violations.len(),
        events.len(),
        violations.join("\n"),
        c.all_logs(3000)
    );
    assert_eq!(events.len(), 3, "histories of reg, ctr and list");
    assert!(
        faults.len() >= 6,
        "too few faults to mean anything: {faults:?}"
    );
    assert!(
        known >= 1000,
        "too few operations with a known outcome to mean anything: {known}"
    );
}
