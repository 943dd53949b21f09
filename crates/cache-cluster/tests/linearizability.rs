//! Linearizability check of single-key histories (set/get/cas/incr) from concurrent clients on
//! different nodes, while a nemesis stops, restarts and isolates nodes.
//!
//! The checker is [`test_harness::lin`] (shared with the real-process test in the keel crate).
//! Written values are unique multiples of 1 << 20 and counters are incremented far less than
//! that between two sets, so a value identifies the version that wrote it, and `cas` (token from
//! a `gets`) is modelled as compare-and-set on that value. Operations that failed (timeout,
//! SERVER_ERROR) may or may not have happened: they stay pending to the end; errors that prove
//! the write never reached a leader's log (`ClusterError::certainly_not_applied`) are not
//! recorded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_cluster::Cluster;
use cache_store::{ArithOutcome, ArithReq, GetOpts, StoreOutcome, StoreReq};
use parking_lot::Mutex;

use crate::common::*;
use test_harness::lin::{self, Event, Op, Ret, Verdict};

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

async fn client(
    rec: Arc<Recorder>,
    nodes: Arc<Mutex<BTreeMap<u16, Option<Cluster>>>>,
    slot: u16,
    cid: u64,
    stop: Arc<AtomicBool>,
) {
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
                let r = node
                    .store_item(&plain_req(key.as_bytes(), v.as_bytes()))
                    .await;
                match classify(&r) {
                    None => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    Some(_) => (
                        Op::Set(fresh),
                        if matches!(r, Ok(StoreOutcome::Stored { .. })) {
                            Ret::Ok
                        } else {
                            Ret::Unknown
                        },
                    ),
                }
            }
            1 => {
                let r = node
                    .get(key.as_bytes(), GetOpts::default(), |it| parse_num(it.value))
                    .await;
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
                let r = node
                    .get(key.as_bytes(), GetOpts::default(), |it| {
                        (parse_num(it.value), it.cas)
                    })
                    .await;
                let ret = rec.t();
                let got = match &r {
                    Ok(v) => Ret::Value(v.map(|x| x.0).flatten()),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                rec.events
                    .lock()
                    .entry(key.into())
                    .or_default()
                    .push(Event {
                        call,
                        ret: if got == Ret::Unknown { u64::MAX } else { ret },
                        op: Op::Get,
                        out: got,
                    });
                let Ok(Some((Some(expect), token))) = r else {
                    continue;
                };
                let call = rec.t();
                let v = fresh.to_string();
                let req = StoreReq {
                    compare_cas: Some(token),
                    ..plain_req(key.as_bytes(), v.as_bytes())
                };
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
                let ret = if out == Ret::Unknown {
                    u64::MAX
                } else {
                    rec.t()
                };
                rec.events
                    .lock()
                    .entry(key.into())
                    .or_default()
                    .push(Event {
                        call,
                        ret,
                        op: Op::Cas { expect, new: fresh },
                        out,
                    });
                continue;
            }
            _ => {
                let req = ArithReq {
                    key: key.as_bytes(),
                    incr: true,
                    delta: 1,
                    compare_cas: None,
                    vivify: None,
                    touch: None,
                    new_cas: None,
                };
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
        rec.events
            .lock()
            .entry(key.into())
            .or_default()
            .push(Event { call, ret, op, out });
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
    let rec = Arc::new(Recorder {
        start: Instant::now(),
        events: Mutex::default(),
    });
    let shared: Arc<Mutex<BTreeMap<u16, Option<Cluster>>>> = Arc::new(Mutex::new(tc.nodes.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for cid in 1..=6u64 {
        let slot = (cid % 3 + 1) as u16;
        clients.push(tokio::spawn(client(
            rec.clone(),
            shared.clone(),
            slot,
            cid,
            stop.clone(),
        )));
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
    // Followers served reads under their read leases (the path this history checks too),
    // unless this is the local-reads control.
    let lease_reads: u64 = tc.nodes().iter().map(|n| n.status().lease_reads).sum();
    eprintln!("FIGURE linearizability: {lease_reads} follower lease reads on the final nodes");
    if std::env::var_os("LIN_LOCAL_READS").is_none() {
        assert!(lease_reads > 0, "no follower read used a lease");
    }
    let events = std::mem::take(&mut *rec.events.lock());
    let mut total = 0;
    for (key, h) in &events {
        let known = h.iter().filter(|e| e.out != Ret::Unknown).count();
        total += h.len();
        eprintln!(
            "FIGURE linearizability: key {key}: {} ops ({known} with known outcome)",
            h.len()
        );
        if let Some(dir) = std::env::var_os("LIN_DUMP") {
            std::fs::write(
                std::path::Path::new(&dir).join(format!("{key}.txt")),
                lin::format_dump(h),
            )
            .unwrap();
        }
        let t = Instant::now();
        let verdict = lin::check(h, None, 20_000_000);
        eprintln!(
            "linearizability: key {key}: {} ops checked in {:.2} s: {verdict:?}",
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
            panic!(
                "history of {key}: {verdict:?} ({} ops; LIN_DUMP=dir keeps it); last events:\n  {}",
                h.len(),
                tail.join("\n  ")
            );
        }
    }
    assert!(total > 200, "too few operations to mean anything: {total}");
    tc.shutdown().await;
}
