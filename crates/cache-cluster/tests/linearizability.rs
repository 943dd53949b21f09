//! Linearizability check of single-key histories (set/get/cas/incr) from concurrent clients on
//! different nodes, while a nemesis stops, restarts and isolates nodes.
//!
//! The checker is a Wing–Gong/Lowe search with memoisation over (linearized set, state), like
//! Knossos/Porcupine, for a register whose value is `None` (missing) or a number. Written values
//! are unique multiples of 1 << 20 and counters are incremented far less than that between two
//! sets, so a value identifies the version that wrote it, and `cas` (token from a `gets`) is
//! modelled as compare-and-set on that value. Operations that failed (timeout, SERVER_ERROR) may
//! or may not have happened: they stay pending to the end and may be linearized anywhere after
//! their call, or dropped.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_cluster::Cluster;
use cache_store::{ArithOutcome, ArithReq, GetOpts, StoreOutcome, StoreReq};
use parking_lot::Mutex;

use crate::common::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Set(u64),
    Get,
    Cas { expect: u64, new: u64 },
    Incr(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    Ok,
    Value(Option<u64>),
    Stored,
    Exists,
    NotFound,
    Incr(Option<u64>),
    /// Failed: outcome unknown.
    Unknown,
}

#[derive(Clone, Debug)]
pub struct Event {
    pub call: u64,
    /// `u64::MAX` for unknown outcomes.
    pub ret: u64,
    pub op: Op,
    pub out: Ret,
}

type State = Option<u64>;

/// Possible next states after linearizing `e` at `s` (empty: not allowed here); for an
/// operation with an unknown outcome, including "it did not happen" (`s` itself).
fn step(s: State, e: &Event) -> Vec<State> {
    let unknown = e.out == Ret::Unknown;
    let mut v = Vec::new();
    match (&e.op, &e.out) {
        (Op::Set(x), Ret::Ok | Ret::Unknown) => v.push(Some(*x)),
        (Op::Get, Ret::Value(x)) if *x == s => v.push(s),
        (Op::Get, Ret::Unknown) => v.push(s),
        (Op::Cas { expect, new }, out) => {
            let matches = s == Some(*expect);
            match out {
                Ret::Stored if matches => v.push(Some(*new)),
                Ret::Exists if s.is_some() && !matches => v.push(s),
                Ret::NotFound if s.is_none() => v.push(s),
                Ret::Unknown if matches => v.push(Some(*new)),
                _ => {}
            }
        }
        (Op::Incr(d), out) => match (s, out) {
            (Some(x), Ret::Incr(Some(n))) if x.wrapping_add(*d) == *n => v.push(Some(*n)),
            (None, Ret::Incr(None)) => v.push(None),
            (Some(x), Ret::Unknown) => v.push(Some(x.wrapping_add(*d))),
            _ => {}
        },
        _ => {}
    }
    if unknown {
        v.push(s); // it may not have happened at all
    }
    v
}

/// [`step`] without the "did not happen" outcome of an unknown operation.
fn happened(s: State, e: &Event) -> Vec<State> {
    let mut v = step(s, e);
    if e.out == Ret::Unknown {
        v.pop();
    }
    v
}

/// Whether the history is linearizable from `init`.
///
/// Sound reductions keep long histories with failed operations tractable:
/// * an operation with an unknown outcome is only ever linearized as having **happened**; the
///   search succeeds once every known operation is linearized (the unknown ones left did not
///   happen). This is the same as placing "did not happen" anywhere, without `2^k` places;
/// * **no unobserved maybe-writes**: right after unknown operations happened, an unconditional
///   overwrite (a `set`) may not follow before some known operation has looked at the value.
///   Removing unknown operations that are directly overwritten leaves every observation as it
///   was, so if any linearization exists, one without that pattern does;
/// * **symmetry**: identical unknown operations (the same `incr`, all timed out) are
///   interchangeable, so among those that may go next only the earliest-called one is tried
///   (swapping two in a linearization gives another valid one: neither constrains real time by
///   a return, and an operation allowed at a point stays allowed later);
/// * known outcomes are tried before unknown ones, earliest return first (order only).
///
/// Cost per search state is the concurrency window, not the history length: known operations
/// are sorted by call time and scanned from the first one not yet linearized only while they
/// could go next, and the memo key is a 128-bit Zobrist hash of the linearized set.
pub fn check(events: &[Event], init: State) -> bool {
    struct Ctx<'a> {
        ev: &'a [Event],
        /// Known operations by call time.
        known: Vec<usize>,
        unknown: Vec<usize>,
        /// For each unknown op, the earlier-called identical unknown ops.
        twins: Vec<Vec<usize>>,
        zobrist: Vec<u128>,
        done: Vec<bool>,
        memo: HashSet<(u128, State, bool)>,
    }
    fn overwrites(e: &Event) -> bool {
        matches!(e.op, Op::Set(_))
    }
    impl Ctx<'_> {
        /// `first`: position in `known` of the first known op not linearized; `left`: known ops
        /// not linearized; `hash`: Zobrist hash of the linearized set; `fresh`: unknown ops
        /// happened since the last known one.
        fn go(&mut self, first: usize, left: usize, hash: u128, s: State, fresh: bool) -> bool {
            if left == 0 {
                return true;
            }
            if !self.memo.insert((hash, s, fresh)) {
                return false;
            }
            let ev = self.ev;
            // An op can go next if it was called before every pending known op returned (an
            // unknown op never returned). Known ops called after the smallest such return
            // cannot lower it (they return even later): the scan stops there.
            let mut min_ret = u64::MAX;
            let mut end = first;
            while end < self.known.len() {
                let i = self.known[end];
                if ev[i].call > min_ret {
                    break;
                }
                if !self.done[i] {
                    min_ret = min_ret.min(ev[i].ret);
                }
                end += 1;
            }
            // Earliest return first: the most constrained operation is the likeliest next one
            // (trying a long-running one early only leads to distant dead ends).
            let mut cand: Vec<usize> = self.known[first..end]
                .iter()
                .copied()
                .filter(|&i| !self.done[i] && ev[i].call <= min_ret && !(fresh && overwrites(&ev[i])))
                .collect();
            cand.sort_by_key(|&i| (ev[i].ret, i));
            for i in cand {
                for s2 in step(s, &ev[i]) {
                    self.done[i] = true;
                    let mut next = first;
                    while next < self.known.len() && self.done[self.known[next]] {
                        next += 1;
                    }
                    let ok = self.go(next, left - 1, hash ^ self.zobrist[i], s2, false);
                    self.done[i] = false;
                    if ok {
                        return true;
                    }
                }
            }
            for k in 0..self.unknown.len() {
                let i = self.unknown[k];
                if self.done[i] || ev[i].call > min_ret || (fresh && overwrites(&ev[i])) {
                    continue;
                }
                if self.twins[i].iter().any(|&j| !self.done[j] && ev[j].call <= min_ret) {
                    continue;
                }
                for s2 in happened(s, &ev[i]) {
                    self.done[i] = true;
                    let ok = self.go(first, left, hash ^ self.zobrist[i], s2, true);
                    self.done[i] = false;
                    if ok {
                        return true;
                    }
                }
            }
            false
        }
    }
    let n = events.len();
    let mut known: Vec<usize> = (0..n).filter(|&i| events[i].out != Ret::Unknown).collect();
    known.sort_by_key(|&i| (events[i].call, i));
    let unknown: Vec<usize> = (0..n).filter(|&i| events[i].out == Ret::Unknown).collect();
    let mut twins = vec![Vec::new(); n];
    for &i in &unknown {
        twins[i] = unknown
            .iter()
            .copied()
            .filter(|&j| j != i && events[j].op == events[i].op && (events[j].call, j) < (events[i].call, i))
            .collect();
    }
    // Deterministic pseudo-random keys (splitmix64).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let zobrist = (0..n).map(|_| (u128::from(next()) << 64) | u128::from(next())).collect();
    let left = known.len();
    let mut c = Ctx { ev: events, known, unknown, twins, zobrist, done: vec![false; n], memo: HashSet::new() };
    c.go(0, left, 0, init, false)
}

/// Offline check of a dumped history (`LIN_DUMP=dir` writes them):
/// `LIN_CHECK_FILE=dir/r0.txt cargo test … -- --ignored check_dumped_history`.
#[test]
#[ignore]
fn check_dumped_history() {
    let Some(path) = std::env::var_os("LIN_CHECK_FILE") else { return };
    let text = std::fs::read_to_string(path).unwrap();
    let num = |s: &str| -> u64 { s.trim_matches(|c: char| !c.is_ascii_digit()).parse().unwrap() };
    let events: Vec<Event> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let op = if f[2] == "Get" {
                Op::Get
            } else if let Some(x) = f[2].strip_prefix("Set(") {
                Op::Set(num(x))
            } else if let Some(x) = f[2].strip_prefix("Incr(") {
                Op::Incr(num(x))
            } else {
                let nums: Vec<u64> = f[2].split(|c: char| !c.is_ascii_digit()).filter(|x| !x.is_empty()).map(|x| x.parse().unwrap()).collect();
                Op::Cas { expect: nums[0], new: nums[1] }
            };
            let out = match f[3] {
                "Ok" => Ret::Ok,
                "Unknown" => Ret::Unknown,
                "Stored" => Ret::Stored,
                "Exists" => Ret::Exists,
                "NotFound" => Ret::NotFound,
                "Value(None)" => Ret::Value(None),
                "Incr(None)" => Ret::Incr(None),
                o if o.starts_with("Value") => Ret::Value(Some(num(o))),
                o => Ret::Incr(Some(num(o))),
            };
            Event { call: f[0].parse().unwrap(), ret: f[1].parse().unwrap(), op, out }
        })
        .collect();
    let t = Instant::now();
    let ok = std::thread::Builder::new().stack_size(512 << 20).spawn(move || check(&events, None)).unwrap().join().unwrap();
    eprintln!("dumped history: linearizable = {ok} ({:?})", t.elapsed());
    assert!(ok);
}

#[test]
fn checker_accepts_and_rejects() {
    let e = |call, ret, op, out| Event { call, ret, op, out };
    // Sequential history.
    let h = vec![
        e(0, 1, Op::Set(5), Ret::Ok),
        e(2, 3, Op::Get, Ret::Value(Some(5))),
        e(4, 5, Op::Incr(1), Ret::Incr(Some(6))),
        e(6, 7, Op::Cas { expect: 6, new: 9 }, Ret::Stored),
        e(8, 9, Op::Get, Ret::Value(Some(9))),
    ];
    assert!(check(&h, None));
    // Stale read after a completed write: not linearizable.
    let h = vec![e(0, 1, Op::Set(5), Ret::Ok), e(2, 3, Op::Set(7), Ret::Ok), e(4, 5, Op::Get, Ret::Value(Some(5)))];
    assert!(!check(&h, None));
    // Concurrent write and read: either value is fine.
    let h = vec![e(0, 10, Op::Set(5), Ret::Ok), e(2, 3, Op::Get, Ret::Value(None))];
    assert!(check(&h, None));
    // Lost increment: two incrs both returning 6.
    let h = vec![
        e(0, 1, Op::Set(5), Ret::Ok),
        e(2, 5, Op::Incr(1), Ret::Incr(Some(6))),
        e(3, 6, Op::Incr(1), Ret::Incr(Some(6))),
    ];
    assert!(!check(&h, None));
    // An unknown write may or may not have happened.
    let h = vec![e(0, u64::MAX, Op::Set(5), Ret::Unknown), e(2, 3, Op::Get, Ret::Value(None)), e(4, 5, Op::Get, Ret::Value(Some(5)))];
    assert!(check(&h, None));
    // ... but it cannot un-happen.
    let h = vec![
        e(0, u64::MAX, Op::Set(5), Ret::Unknown),
        e(2, 3, Op::Get, Ret::Value(Some(5))),
        e(4, 5, Op::Get, Ret::Value(None)),
    ];
    assert!(!check(&h, None));
}

struct Recorder {
    start: Instant,
    events: Mutex<BTreeMap<String, Vec<Event>>>,
}

impl Recorder {
    fn t(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// How an operation ended: known, unknown (may have happened), or certainly not applied.
fn classify<T>(r: &Result<T, cache_cluster::ClusterError>) -> Option<bool> {
    match r {
        Ok(_) => Some(true),
        Err(e) if e.certainly_not_applied() => None,
        Err(_) => Some(false),
    }
}

fn parse_num(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// Operations per client (6 clients, 3 keys): enough to span every nemesis round at the
/// clients' pace (each op waits a little after a failure), small enough to check exhaustively.
const MAX_OPS_PER_CLIENT: u64 = 3000;

async fn client(rec: Arc<Recorder>, nodes: Arc<Mutex<BTreeMap<u16, Option<Cluster>>>>, slot: u16, cid: u64, stop: Arc<AtomicBool>) {
    let keys = ["r0", "r1", "r2"];
    let mut seq = 0u64;
    let mut rng = cid.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // A bounded history per client: the checker's work grows with the ops per key, and group
    // commit made the cluster fast enough to produce ~14 000 per key in the nemesis' 3 s.
    while !stop.load(Relaxed) && seq < MAX_OPS_PER_CLIENT {
        let Some(node) = nodes.lock().get(&slot).cloned().flatten() else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let key = keys[(next() % 3) as usize];
        seq += 1;
        let fresh = ((cid << 32) | seq) << 20;
        let call = rec.t();
        let (op, out) = match next() % 4 {
            0 => {
                let v = fresh.to_string();
                let r = node.store_item(&plain_req(key.as_bytes(), v.as_bytes())).await;
                match classify(&r) {
                    None => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    Some(_) => (Op::Set(fresh), if matches!(r, Ok(StoreOutcome::Stored { .. })) { Ret::Ok } else { Ret::Unknown }),
                }
            }
            1 => {
                let r = node.get(key.as_bytes(), GetOpts::default(), |it| parse_num(it.value)).await;
                match r {
                    Ok(v) => (Op::Get, Ret::Value(v.flatten())),
                    Err(_) => {
                        // A failed read has no effect: nothing to record.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
            2 => {
                // gets, then cas with its token: two operations in the history.
                let r = node.get(key.as_bytes(), GetOpts::default(), |it| (parse_num(it.value), it.cas)).await;
                let ret = rec.t();
                let got = match &r {
                    Ok(v) => Ret::Value(v.map(|x| x.0).flatten()),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                rec.events.lock().entry(key.into()).or_default().push(Event {
                    call,
                    ret: if got == Ret::Unknown { u64::MAX } else { ret },
                    op: Op::Get,
                    out: got,
                });
                let Ok(Some((Some(expect), token))) = r else { continue };
                let call = rec.t();
                let v = fresh.to_string();
                let req = StoreReq { compare_cas: Some(token), ..plain_req(key.as_bytes(), v.as_bytes()) };
                let r = node.store_item(&req).await;
                if classify(&r).is_none() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                let out = match r {
                    Ok(StoreOutcome::Stored { .. }) => Ret::Stored,
                    Ok(StoreOutcome::Exists) => Ret::Exists,
                    Ok(StoreOutcome::NotFound) => Ret::NotFound,
                    _ => Ret::Unknown,
                };
                let ret = if out == Ret::Unknown { u64::MAX } else { rec.t() };
                rec.events.lock().entry(key.into()).or_default().push(Event { call, ret, op: Op::Cas { expect, new: fresh }, out });
                continue;
            }
            _ => {
                let req = ArithReq { key: key.as_bytes(), incr: true, delta: 1, compare_cas: None, vivify: None, touch: None, new_cas: None };
                let r = node.arith(&req).await;
                if classify(&r).is_none() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                match r {
                    Ok(ArithOutcome::Ok { value, .. }) => (Op::Incr(1), Ret::Incr(Some(value))),
                    Ok(ArithOutcome::NotFound) => (Op::Incr(1), Ret::Incr(None)),
                    _ => (Op::Incr(1), Ret::Unknown),
                }
            }
        };
        let unknown = out == Ret::Unknown;
        let ret = if unknown { u64::MAX } else { rec.t() };
        rec.events.lock().entry(key.into()).or_default().push(Event { call, ret, op, out });
        if unknown {
            tokio::time::sleep(Duration::from_millis(10)).await;
        } else {
            // Paced, so the history spans the whole nemesis without growing past what the
            // checker can search (concurrency, not volume, is what finds violations).
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linearizable_under_stops_restarts_and_partitions() {
    let _serial = SERIAL.lock().await;
    let mut tc = if std::env::var_os("LIN_LOCAL_READS").is_some() {
        // Negative control: local reads are not linearizable; the checker should say so.
        TestCluster::start_with(3, |c| c.read_mode = cache_cluster::ReadMode::Local).await
    } else {
        TestCluster::start(3).await
    };
    let rec = Arc::new(Recorder { start: Instant::now(), events: Mutex::default() });
    let shared: Arc<Mutex<BTreeMap<u16, Option<Cluster>>>> = Arc::new(Mutex::new(tc.nodes.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for cid in 1..=6u64 {
        let slot = (cid % 3 + 1) as u16;
        clients.push(tokio::spawn(client(rec.clone(), shared.clone(), slot, cid, stop.clone())));
    }
    // Nemesis: stop+restart a node, isolate a node (the leader or a follower), heal.
    let ops = AtomicU64::new(0);
    for round in 0..4u16 {
        let slot = round % 3 + 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if round % 2 == 0 {
            shared.lock().insert(slot, None);
            tc.stop(slot).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let c = tc.restart(slot).await;
            c.wait_ready(Duration::from_secs(20)).await.unwrap();
            shared.lock().insert(slot, Some(c));
        } else {
            let leader = tc.leader_slot().await;
            let n = tc.node(leader);
            n.set_isolated(true);
            tokio::time::sleep(Duration::from_millis(600)).await;
            n.set_isolated(false);
        }
        ops.fetch_add(1, Relaxed);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let events = std::mem::take(&mut *rec.events.lock());
    let mut total = 0;
    for (key, h) in &events {
        let known = h.iter().filter(|e| e.out != Ret::Unknown).count();
        total += h.len();
        eprintln!("FIGURE linearizability: key {key}: {} ops ({known} with known outcome)", h.len());
        if let Some(dir) = std::env::var_os("LIN_DUMP") {
            let text: String = h.iter().map(|e| format!("{}\t{}\t{:?}\t{:?}\n", e.call, e.ret, e.op, e.out)).collect();
            std::fs::write(std::path::Path::new(&dir).join(format!("{key}.txt")), text).unwrap();
        }
        // Deep recursion on long histories: check on a thread with a big stack.
        let h2 = h.clone();
        let ok = std::thread::Builder::new().stack_size(512 << 20).spawn(move || check(&h2, None)).unwrap().join().unwrap();
        assert!(ok, "history of {key} is not linearizable: {h:?}");
    }
    assert!(total > 200, "too few operations to mean anything: {total}");
    tc.shutdown().await;
}
