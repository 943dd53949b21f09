//! In-process cluster tests: real nodes on 127.0.0.1 (port 0), real TCP between them, no fixed
//! sleeps (every wait polls against a deadline).

mod common;
mod compaction;
mod linearizability;
mod redis;

use std::time::{Duration, Instant};

use cache_cluster::{Cluster, ClusterError, Command, Outcome, Packer};
use cache_store::{ArithOutcome, ArithReq, GetOpts, StoreMode, StoreOutcome, StoreReq};
use common::*;

/// Reads in a row on the leader and on a follower: with the read lease (default) the leader runs
/// a read-index round about once per lease (100 ms), not once per read; without it, one per read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_lease_saves_rounds_and_reads_stay_current() {
    for lease in [true, false] {
        let tc = if lease {
            TestCluster::start(3).await
        } else {
            TestCluster::start_with(3, |c| c.read_lease = Duration::ZERO).await
        };
        let (leader, follower) = tc.leader_and_follower().await;
        let before = leader.status().read_rounds;
        let t = Instant::now();
        let n = 400;
        for i in 0..n {
            // A write on one node, then a read on each: every read sees it.
            let (w, r) = if i % 2 == 0 {
                (&leader, &follower)
            } else {
                (&follower, &leader)
            };
            set(w, "k", &i.to_string()).await.unwrap();
            assert_eq!(
                get(r, "k").await.unwrap().as_deref(),
                Some(i.to_string().as_bytes()),
                "read {i} (lease {lease})"
            );
            assert_eq!(
                get(w, "k").await.unwrap().as_deref(),
                Some(i.to_string().as_bytes()),
                "read {i} (lease {lease})"
            );
        }
        let rounds = leader.status().read_rounds - before;
        let lease_periods = (t.elapsed().as_millis() / 100) as u64 + 2;
        eprintln!(
            "FIGURE read lease {lease}: {} reads, {rounds} read-index rounds in {:?}",
            2 * n,
            t.elapsed()
        );
        if lease {
            assert!(
                rounds <= lease_periods * 2,
                "{rounds} rounds for {} reads in {:?}",
                2 * n,
                t.elapsed()
            );
        } else {
            assert!(
                rounds >= n as u64,
                "{rounds} rounds for {} reads without a lease",
                2 * n
            );
        }
        tc.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_elect_and_replicate() {
    let tc = TestCluster::start(3).await;
    let leaders: Vec<_> = tc
        .nodes()
        .iter()
        .filter(|n| n.status().role == "leader")
        .map(|n| n.id())
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one leader: {:?}", tc.statuses());
    // Writes on any node are read on all (linearizable reads).
    for (i, n) in tc.nodes().iter().enumerate() {
        let key = format!("k{i}");
        assert!(matches!(
            set(n, &key, &format!("v{i}")).await.unwrap(),
            StoreOutcome::Stored { .. }
        ));
    }
    for n in tc.nodes() {
        for i in 0..3 {
            assert_eq!(
                get(&n, &format!("k{i}")).await.unwrap().as_deref(),
                Some(format!("v{i}").as_bytes())
            );
        }
    }
    // add is atomic cluster-wide: exactly one of three concurrent adds wins.
    let mut hs = Vec::new();
    for n in tc.nodes() {
        hs.push(tokio::spawn(async move {
            let req = StoreReq {
                mode: StoreMode::Add,
                ..plain_req(b"lock", b"me")
            };
            n.store_item(&req).await
        }));
    }
    let mut won = 0;
    for h in hs {
        if matches!(h.await.unwrap().unwrap(), StoreOutcome::Stored { .. }) {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    // incr from every node concurrently: no lost update.
    set(&tc.nodes()[0], "ctr", "0").await.unwrap();
    let mut hs = Vec::new();
    for n in tc.nodes() {
        hs.push(tokio::spawn(async move {
            for _ in 0..50 {
                let r = n
                    .arith(&ArithReq {
                        key: b"ctr",
                        incr: true,
                        delta: 1,
                        compare_cas: None,
                        vivify: None,
                        touch: None,
                        new_cas: None,
                    })
                    .await;
                assert!(matches!(r, Ok(ArithOutcome::Ok { .. })), "{r:?}");
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    for n in tc.nodes() {
        assert_eq!(get(&n, "ctr").await.unwrap().as_deref(), Some(&b"150"[..]));
    }
    // Replicas are identical: same CAS on every node for the same key.
    let cas: Vec<u64> = {
        let mut v = Vec::new();
        for n in tc.nodes() {
            n.read_barrier().await.unwrap();
            v.push(
                n.store()
                    .get(b"ctr", 0, GetOpts::default(), |it| it.cas)
                    .unwrap(),
            );
        }
        v
    };
    assert!(cas.windows(2).all(|w| w[0] == w[1]), "{cas:?}");
    let st = tc.nodes()[0].status();
    assert_eq!(st.members.iter().filter(|m| m.voter).count(), 3);
    assert!(st.commit > 0 && st.applied > 0);
    let lines = st.stats_lines();
    assert!(lines.iter().any(|(k, _)| *k == "cluster_role"));
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_death_writes_resume_quickly() {
    let mut tc = TestCluster::start(3).await;
    set(&tc.nodes()[0], "before", "1").await.unwrap();
    let leader = tc.leader_slot().await;
    let killed = Instant::now();
    tc.stop(leader).await;
    let survivor = tc.node(if leader == 1 { 2 } else { 1 });
    // Keep writing on a survivor until one is acknowledged.
    let deadline = killed + Duration::from_secs(5);
    let resumed = loop {
        match set(&survivor, "after", "2").await {
            Ok(StoreOutcome::Stored { .. }) => break killed.elapsed(),
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(5)).await,
            r => panic!("writes did not resume: {r:?} {:?}", tc.statuses()),
        }
    };
    eprintln!("FIGURE failover: leader stopped -> first acknowledged write after {resumed:?}");
    assert!(
        resumed < Duration::from_millis(1500),
        "writes resumed only after {resumed:?}"
    );
    for n in tc.nodes() {
        assert_eq!(get(&n, "before").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(get(&n, "after").await.unwrap().as_deref(), Some(&b"2"[..]));
    }
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_node_catches_up_100k_keys_before_serving() {
    let _serial = SERIAL.lock().await;
    let mut tc = TestCluster::start(3).await;
    const N: usize = 100_000;
    let writer = tc.node(1);
    let t = Instant::now();
    let mut hs = Vec::new();
    for w in 0..64usize {
        let n = writer.clone();
        hs.push(tokio::spawn(async move {
            let mut i = w;
            while i < N {
                let k = format!("key:{i:07}");
                let r = set(&n, &k, &format!("value-{i}")).await;
                assert!(matches!(r, Ok(StoreOutcome::Stored { .. })), "{k}: {r:?}");
                i += 64;
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    eprintln!(
        "FIGURE load: {N} replicated sets (64 concurrent) in {:?}",
        t.elapsed()
    );
    let (_, victim) = tc.leader_and_follower_slots().await;
    let old_id = tc.node(victim).id();
    tc.stop(victim).await;
    let t = Instant::now();
    let fresh = tc.restart(victim).await;
    assert!(!fresh.is_ready() || fresh.status().applied > N as u64);
    fresh.wait_ready(Duration::from_secs(60)).await.unwrap();
    let caught_up = t.elapsed();
    eprintln!("FIGURE catch-up: restarted node ready with {N} keys after {caught_up:?}");
    assert_ne!(
        fresh.id(),
        old_id,
        "a restarted node must come back under a new id"
    );
    // It answers every key from its own replica (no read round needed to prove it has them).
    let store = fresh.store();
    for i in 0..N {
        let k = format!("key:{i:07}");
        let v = store.get(k.as_bytes(), 0, GetOpts::default(), |it| it.value.to_vec());
        assert_eq!(v.as_deref(), Some(format!("value-{i}").as_bytes()), "{k}");
    }
    assert_eq!(
        get(&fresh, "key:0099999").await.unwrap().as_deref(),
        Some(&b"value-99999"[..])
    );
    // Membership: three voters, the old id replaced.
    let st = tc.node(1).status();
    let voters: Vec<_> = st
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.id)
        .collect();
    assert_eq!(voters.len(), 3, "{st:?}");
    assert!(voters.contains(&fresh.id()) && !voters.contains(&old_id));
    tc.shutdown().await;
}

/// Wait (up to 5 s) until `leader` lists three voters, `fresh` among them, and `gone` not at all
/// (neither voter nor learner).
async fn wait_replaced(leader: &Cluster, fresh: u64, gone: u64) {
    wait_until(Duration::from_secs(5), || {
        let st = leader.status();
        async move {
            let voters: Vec<_> = st
                .members
                .iter()
                .filter(|m| m.voter)
                .map(|m| m.id)
                .collect();
            voters.len() == 3 && voters.contains(&fresh) && !st.members.iter().any(|m| m.id == gone)
        }
    })
    .await;
}

/// A join that stops half-way (the new node was added as a learner, then the leader failed the
/// membership change, as when it loses office between the two steps) does not leave the node a
/// learner that never answers: it asks again until it is a voter, and the old id is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_stopped_after_the_learner_step_is_completed_on_retry() {
    let _serial = SERIAL.lock().await;
    let mut tc = TestCluster::start(3).await;
    let (leader_slot, victim) = tc.leader_and_follower_slots().await;
    set(&tc.node(leader_slot), "before", "1").await.unwrap();
    let old_id = tc.node(victim).id();
    tc.node(leader_slot).fail_next_promotion();
    tc.stop(victim).await;
    let fresh = tc.restart(victim).await;
    fresh
        .wait_ready(Duration::from_secs(10))
        .await
        .expect("a half-joined node must become a voter");
    assert_eq!(
        get(&fresh, "before").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    set(&fresh, "after", "2").await.unwrap();
    let st = tc.node(leader_slot).status();
    let voters: Vec<_> = st
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.id)
        .collect();
    assert_eq!(voters.len(), 3, "{st:?}");
    assert!(
        voters.contains(&fresh.id()) && !voters.contains(&old_id),
        "{st:?}"
    );
    tc.shutdown().await;
}

/// A promotion that stops half-way (the joint configuration of old and new voters is in the log,
/// the second step never proposed) is finished when the new node asks again: the cluster ends
/// with three voters, the slot's old id gone, not a joint configuration that needs majorities of
/// both and so survives fewer failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_promotion_stopped_half_way_is_finished() {
    let _serial = SERIAL.lock().await;
    let mut tc = TestCluster::start(3).await;
    let (leader_slot, victim) = tc.leader_and_follower_slots().await;
    let leader = tc.node(leader_slot);
    let old_id = tc.node(victim).id();
    leader.stop_next_promotion_half_way();
    tc.stop(victim).await;
    let fresh = tc.restart(victim).await;
    fresh.wait_ready(Duration::from_secs(10)).await.unwrap();
    wait_replaced(&leader, fresh.id(), old_id).await;
    set(&fresh, "k", "v").await.unwrap();
    tc.shutdown().await;
}

/// A node that dies while catching up does not hold up its successor: the leader gives up the
/// dead joiner's catch-up as soon as a newer node of the same slot asks (instead of after the
/// join timeout, 60 s), and drops the dead learner from the membership once the new one is a voter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_dies_while_joining_gives_way_to_its_successor() {
    let _serial = SERIAL.lock().await;
    let mut tc = TestCluster::start(3).await;
    let (leader_slot, victim) = tc.leader_and_follower_slots().await;
    let leader = tc.node(leader_slot);
    leader.stall_next_catch_up();
    tc.stop(victim).await;
    let dying = tc.restart(victim).await;
    let dying_id = dying.id();
    // The leader has added it as a learner and waits for a catch-up it will never see.
    wait_until(Duration::from_secs(5), || {
        let st = leader.status();
        async move { st.members.iter().any(|m| m.id == dying_id && !m.voter) }
    })
    .await;
    assert!(!dying.is_ready(), "{:?}", dying.status());
    tc.stop(victim).await;
    let fresh = tc.restart(victim).await;
    fresh
        .wait_ready(Duration::from_secs(10))
        .await
        .expect("the successor must not wait for the dead joiner");
    set(&fresh, "k", "v").await.unwrap();
    wait_replaced(&leader, fresh.id(), dying_id).await;
    tc.shutdown().await;
}

/// Follower read leases: a follower reads under a lease; cut off, it costs the leader's writes at
/// most its lease (100 ms), and it never answers with a value older than an acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cut_off_lease_holder_delays_writes_briefly_and_never_reads_stale() {
    let tc = TestCluster::start(3).await;
    let (leader, follower) = tc.leader_and_follower().await;
    for round in 0..5 {
        let (old, new) = (format!("old{round}"), format!("new{round}"));
        set(&leader, "k", &old).await.unwrap();
        // Healed, the follower gets a lease again within a few rounds of reads.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let before = follower.status().lease_reads;
            assert_eq!(
                get(&follower, "k").await.unwrap().as_deref(),
                Some(old.as_bytes())
            );
            if follower.status().lease_reads > before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no follower lease within 3 s (round {round})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        follower.set_isolated(true);
        let t = Instant::now();
        set(&leader, "k", &new).await.unwrap();
        let took = t.elapsed();
        eprintln!(
            "FIGURE follower lease: write with a cut-off lease holder acknowledged in {took:?}"
        );
        assert!(
            took < Duration::from_millis(400),
            "write took {took:?} with a cut-off lease holder"
        );
        // Cut off, the follower may refuse, or answer with the new value; never the old one.
        if let Ok(v) = get(&follower, "k").await {
            assert_eq!(
                v.as_deref(),
                Some(new.as_bytes()),
                "stale read on a cut-off follower"
            );
        }
        follower.set_isolated(false);
        assert_eq!(
            get(&follower, "k").await.unwrap().as_deref(),
            Some(new.as_bytes()),
            "healed"
        );
    }
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn minority_refuses_promptly_and_heals() {
    let tc = TestCluster::start(3).await;
    let leader_slot = tc.leader_slot().await;
    // 1) A cut-off follower refuses writes and linearizable reads promptly.
    let f = tc.node(if leader_slot == 1 { 2 } else { 1 });
    f.set_isolated(true);
    let t = Instant::now();
    let r = set(&f, "x", "minority").await;
    assert!(r.is_err(), "isolated follower accepted a write: {r:?}");
    let r = get(&f, "x").await;
    assert!(
        r.is_err(),
        "isolated follower served a linearizable read: {r:?}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "refusal took {:?}",
        t.elapsed()
    );
    eprintln!(
        "FIGURE minority follower refused a write and a read in {:?}",
        t.elapsed()
    );
    // The majority keeps serving.
    let maj = tc.node(leader_slot);
    set(&maj, "x", "majority").await.unwrap();
    f.set_isolated(false);
    wait_until(Duration::from_secs(5), || async {
        get(&f, "x").await.ok().flatten().as_deref() == Some(&b"majority"[..])
    })
    .await;
    // 2) A cut-off leader refuses; the others elect a new leader; no acknowledged write is lost.
    let old = tc.node(leader_slot);
    old.set_isolated(true);
    let t = Instant::now();
    let r = set(&old, "y", "old-leader").await;
    assert!(r.is_err(), "isolated leader acknowledged a write: {r:?}");
    eprintln!(
        "FIGURE isolated leader refused a write in {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_millis(2500));
    let other = tc.node(if leader_slot == 1 { 2 } else { 1 });
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while acked.len() < 20 {
        let k = format!("acked{}", acked.len());
        match set(&other, &k, "v").await {
            Ok(StoreOutcome::Stored { .. }) => acked.push(k),
            _ => assert!(
                Instant::now() < deadline,
                "majority did not resume: {:?}",
                tc.statuses()
            ),
        }
    }
    old.set_isolated(false);
    for n in tc.nodes() {
        let n2 = n.clone();
        wait_until(Duration::from_secs(5), move || {
            let n = n2.clone();
            async move { get(&n, "acked19").await.ok().flatten().is_some() }
        })
        .await;
        for k in &acked {
            assert_eq!(
                get(&n, k).await.unwrap().as_deref(),
                Some(&b"v"[..]),
                "{k} lost on {}",
                n.id()
            );
        }
        assert_eq!(
            get(&n, "y").await.unwrap(),
            None,
            "refused write must not appear"
        );
    }
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_read_mode_and_mutating_reads() {
    let tc = TestCluster::start_with(3, |c| c.read_mode = cache_cluster::ReadMode::Local).await;
    let n = tc.node(2);
    set(&n, "t", "x").await.unwrap();
    // gat-style read goes through the log and changes expiry on every replica.
    let opts = GetOpts {
        touch: Some(4_000_000_000),
        ..GetOpts::default()
    };
    let exp = n.get(b"t", opts, |it| it.expires_at).await.unwrap();
    assert_eq!(exp, Some(4_000_000_000));
    for m in tc.nodes() {
        wait_until(Duration::from_secs(5), || {
            let m = m.clone();
            async move {
                m.get(b"t", GetOpts::default(), |it| it.expires_at)
                    .await
                    .ok()
                    .flatten()
                    == Some(4_000_000_000)
            }
        })
        .await;
    }
    let r = n.write(Command::Noop).await.unwrap();
    assert_eq!(r, Outcome::Done);
    tc.shutdown().await;
}

#[test]
fn errors_are_short_server_error_messages() {
    assert_eq!(
        ClusterError::NoQuorum.to_string(),
        "cut off from the cluster majority"
    );
    let _unused: Option<Cluster> = None;
}

/// Figures for the benchmark notes: sequential replicated write latency on the leader and on a
/// follower (forwarded), and linearizable read latency. Asserts only generous bounds (CI
/// machines are shared); run with `--release --nocapture` for the real numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn latency_figures() {
    let _serial = SERIAL.lock().await;
    let tc = TestCluster::start(3).await;
    let (leader, follower) = tc.leader_and_follower().await;
    for (name, n) in [("leader", &leader), ("follower", &follower)] {
        let mut lat = Vec::new();
        for i in 0..2000 {
            let t = Instant::now();
            set(n, &format!("lat{i}"), "0123456789").await.unwrap();
            lat.push(t.elapsed());
        }
        lat.sort();
        let (p50, p99) = (lat[lat.len() / 2], lat[lat.len() * 99 / 100]);
        eprintln!("FIGURE replicated set via {name}: p50 {p50:?} p99 {p99:?}");
        assert!(p99 < Duration::from_millis(100), "{name} p99 {p99:?}");
        let mut lat = Vec::new();
        for i in 0..2000 {
            let t = Instant::now();
            get(n, &format!("lat{i}")).await.unwrap();
            lat.push(t.elapsed());
        }
        lat.sort();
        eprintln!(
            "FIGURE linearizable get via {name}: p50 {:?} p99 {:?}",
            lat[1000], lat[1980]
        );
    }
    // Throughput with 64 concurrent writers on one node.
    let t = Instant::now();
    let mut hs = Vec::new();
    for w in 0..64 {
        let n = leader.clone();
        hs.push(tokio::spawn(async move {
            for i in 0..300 {
                set(&n, &format!("tp{w}:{i}"), "0123456789").await.unwrap();
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    eprintln!(
        "FIGURE replicated set throughput, 64 writers: {:.0} ops/s",
        19200.0 / t.elapsed().as_secs_f64()
    );
    tc.shutdown().await;
}

/// Group commit: writes queued together (as a pipelining connection queues them) share log
/// entries, apply in the order they were queued, and each gets its own outcome; a cas conflict or
/// an add on an existing key inside the batch fails alone. On a follower too (forwarded batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_writes_share_entries_and_keep_their_order() {
    let tc = TestCluster::start(3).await;
    let leader = tc.leader_slot().await;
    let follower = if leader == 1 { 2 } else { 1 };
    for (slot, p) in [(leader, "L"), (follower, "F")] {
        let n = tc.node(slot);
        let k = |s: &str| format!("{p}{s}").into_bytes();
        let (a, b, c) = (k("a"), k("b"), k("c"));
        let before = n.status().applied;
        let set = |key: &[u8], v: &[u8]| Command::from_store(&plain_req(key, v));
        let arith = |key: &[u8]| {
            Command::from_arith(
                &ArithReq {
                    key,
                    incr: true,
                    delta: 5,
                    compare_cas: None,
                    vivify: None,
                    touch: None,
                    new_cas: None,
                },
                None,
                false,
            )
        };
        let cmds = vec![
            set(&a, b"1"),
            Command::from_store(&StoreReq {
                mode: StoreMode::Add,
                ..plain_req(&a, b"2")
            }),
            arith(&a),
            Command::from_store(&StoreReq {
                compare_cas: Some(u64::MAX - 1),
                ..plain_req(&a, b"x")
            }),
            set(&b, b"q"),
            arith(&b),
            Command::from_store(&StoreReq {
                mode: StoreMode::Append,
                ..plain_req(&a, b"z")
            }),
            Command::Remove { key: c.clone() },
        ];
        let n_cmds = cmds.len() as u64;
        // Queued before any is awaited (`write` and `write_many` queue when called), some one by
        // one and some as runs: [0], [1 2 3], [4], [5 6], [7] (a run of one, too).
        let mut cmds = cmds.into_iter();
        let mut futs: Vec<
            std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Outcome>> + Send>>,
        > = Vec::new();
        for (run, many) in [(1usize, false), (3, true), (1, false), (2, true), (1, true)] {
            let part: Vec<Command> = cmds.by_ref().take(run).collect();
            if !many {
                let f = n.write(part.into_iter().next().unwrap());
                futs.push(Box::pin(async move { vec![f.await.unwrap()] }));
            } else {
                let mut packer = Packer::default();
                part.iter().for_each(|c| packer.push(c));
                let f = n.write_many(packer);
                futs.push(Box::pin(async move { f.await.unwrap() }));
            }
        }
        let mut outs = Vec::new();
        for f in futs {
            outs.extend(f.await);
        }
        assert_eq!(outs.len(), 8, "{outs:?}");
        assert!(n.write_many(Packer::default()).await.unwrap().is_empty());
        assert!(matches!(outs[0], Outcome::Stored { .. }), "{outs:?}");
        assert_eq!(outs[1], Outcome::NotStored);
        assert!(
            matches!(outs[2], Outcome::Arith { value: 6, .. }),
            "{outs:?}"
        );
        assert_eq!(outs[3], Outcome::Exists);
        assert!(matches!(outs[4], Outcome::Stored { .. }));
        assert_eq!(outs[5], Outcome::NonNumeric);
        assert!(matches!(outs[6], Outcome::Stored { .. }));
        assert_eq!(outs[7], Outcome::Done);
        // Fewer entries than writes (the first goes alone, the rest queue behind it; the
        // leader's expiry entries may interleave).
        let used = n.status().applied - before;
        assert!(used < n_cmds, "{n_cmds} queued writes took {used} entries");
        for m in tc.nodes() {
            assert_eq!(
                get(&m, &format!("{p}a")).await.unwrap().as_deref(),
                Some(&b"6z"[..])
            );
        }
    }
    tc.shutdown().await;
}

/// A connection that keeps writing while earlier writes replicate: the leader pipelines the
/// rounds (several in flight), a follower forwards them one at a time; either way every write
/// is applied once and in the order it was queued (an append chain shows the order), on every
/// node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_rounds_keep_queue_order() {
    let tc = TestCluster::start(3).await;
    let leader = tc.leader_slot().await;
    let follower = if leader == 1 { 2 } else { 1 };
    for (slot, p) in [(leader, "L"), (follower, "F")] {
        let n = tc.node(slot);
        let key = format!("{p}chain").into_bytes();
        n.write(Command::from_store(&plain_req(&key, b"^")))
            .await
            .unwrap();
        let before = n.status();
        let mut futs = Vec::new();
        let mut want = b"^".to_vec();
        // Groups of 25 appends, each queued as soon as the proposer has started a round with
        // the previous one (so the next round forms while that one replicates), until the
        // leader shows an overlapping round (at least 40 groups either way).
        let mut i = 0u32;
        for group in 1.. {
            let started = n.status().write_rounds;
            for _ in 0..25 {
                let part = format!("{i},");
                i += 1;
                want.extend_from_slice(part.as_bytes());
                let req = StoreReq {
                    mode: StoreMode::Append,
                    ..plain_req(&key, part.as_bytes())
                };
                futs.push(n.write(Command::from_store(&req)));
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while n.status().write_rounds == started {
                assert!(
                    Instant::now() < deadline,
                    "group {group}: no round started within 5 s"
                );
                tokio::task::yield_now().await;
            }
            let overlapped = n.status().write_rounds_pipelined > before.write_rounds_pipelined;
            if group >= 40 && (slot != leader || overlapped) {
                break;
            }
            assert!(
                group < 2000,
                "no pipelined round on the leader in {group} groups"
            );
        }
        for f in futs {
            let o = f.await.unwrap();
            assert!(matches!(o, Outcome::Stored { .. }), "{o:?}");
        }
        let rounds = n.status().write_rounds - before.write_rounds;
        assert!(rounds >= 40, "{i} writes in {rounds} round(s)");
        for m in tc.nodes() {
            assert_eq!(
                get(&m, &format!("{p}chain")).await.unwrap(),
                Some(want.clone()),
                "node {}",
                m.id()
            );
        }
    }
    tc.shutdown().await;
}
