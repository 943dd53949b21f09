//! Log compaction: the in-memory log stays bounded however many writes the cluster takes, and a
//! restarted node catches up from a snapshot plus the log tail, ending byte-identical to the
//! leader's replica.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_cluster::Cluster;
use cache_store::{GetOpts, StoreOutcome};

use crate::common::*;

/// `writers` concurrent tasks spread `n` sets of `key:{i:07}` = `value-{i}` over `targets`.
async fn load(targets: Vec<Cluster>, n: usize, writers: usize) {
    let mut hs = Vec::new();
    for w in 0..writers {
        let node = targets[w % targets.len()].clone();
        hs.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                let k = format!("key:{i:07}");
                let r = set(&node, &k, &format!("value-{i}")).await;
                assert!(matches!(r, Ok(StoreOutcome::Stored { .. })), "{k}: {r:?}");
                i += writers;
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
}

/// Every key is in this node's replica (after a read barrier, so it has applied every write).
async fn assert_has_all(n: &Cluster, count: usize) {
    n.read_barrier().await.unwrap();
    let store = n.store();
    for i in 0..count {
        let k = format!("key:{i:07}");
        let v = store.get(k.as_bytes(), 0, GetOpts::default(), |it| it.value.to_vec());
        assert_eq!(
            v.as_deref(),
            Some(format!("value-{i}").as_bytes()),
            "{k} on {}",
            n.id()
        );
    }
    let last = format!("key:{:07}", count - 1);
    assert_eq!(
        get(n, &last).await.unwrap().as_deref(),
        Some(format!("value-{}", count - 1).as_bytes())
    );
}

/// The two replicas' exact store images, taken when both have applied the same entries and
/// nothing was applied during the export (the leader's expiry commands keep coming, so retry).
async fn assert_identical(a: &Cluster, b: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (a0, b0) = (a.status().applied, b.status().applied);
        if a0 == b0 {
            let (ia, ib) = (a.store().export(), b.store().export());
            if a.status().applied == a0 && b.status().applied == b0 {
                assert!(
                    ia == ib,
                    "replicas {} and {} differ at applied index {a0}",
                    a.id(),
                    b.id()
                );
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "replicas never at the same index: {a0} vs {b0}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_stays_bounded_under_many_writes() {
    let _serial = SERIAL.lock().await;
    // Entries, not writes: concurrent writes share entries (group commit), so 30 000 writes by
    // 8 writers make at least 3 750 entries.
    const EVERY: u64 = 500;
    const KEEP: u64 = 50;
    const WRITERS: usize = 8;
    const N: usize = 30_000;
    let tc = TestCluster::start_with(3, |c| {
        c.snapshot_logs = EVERY;
        c.snapshot_keep_logs = KEEP;
    })
    .await;
    // Sample every node's log length while the load runs.
    let max_len = Arc::new(AtomicUsize::new(0));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let sampler = {
        let (nodes, max_len) = (tc.nodes(), max_len.clone());
        tokio::spawn(async move {
            loop {
                for n in &nodes {
                    max_len.fetch_max(n.log_len(), Ordering::Relaxed);
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(2)) => {}
                    _ = stop_rx.changed() => return,
                }
            }
        })
    };
    let t = Instant::now();
    load(tc.nodes(), N, WRITERS).await;
    let elapsed = t.elapsed();
    let _ = stop_tx.send(true);
    sampler.await.unwrap();
    let max_len = max_len.load(Ordering::Relaxed);
    eprintln!(
        "FIGURE compaction: {N} writes in {elapsed:?} (snapshot every {EVERY}, keep {KEEP}): max in-memory log length {max_len}, final {:?}, snapshots built {:?}",
        tc.nodes().iter().map(|n| n.log_len()).collect::<Vec<_>>(),
        tc.nodes().iter().map(|n| n.snapshot_info().built).collect::<Vec<_>>(),
    );
    // Without compaction the log would hold every entry (>= N / WRITERS). While the load runs,
    // entries keep coming during a snapshot's build, so how far the log grows then depends on
    // the machine's speed (the figure above); what compaction guarantees is that it never held
    // everything, and that once writes stop the log is cut back to at most one snapshot interval
    // plus the entries kept.
    let bound = (EVERY + KEEP) as usize;
    assert!(N / WRITERS > 2 * bound);
    let applied = tc
        .nodes()
        .iter()
        .map(|n| n.status().applied)
        .min()
        .unwrap_or(0) as usize;
    assert!(
        max_len < applied / 2,
        "the log held {max_len} of {applied} entries: compaction did not keep up at all"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while tc.nodes().iter().any(|n| n.log_len() > bound) {
        assert!(
            Instant::now() < deadline,
            "logs not cut back to {bound} entries once writes stopped: {:?}",
            tc.nodes().iter().map(|n| n.log_len()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in tc.nodes() {
        let info = n.snapshot_info();
        let entries = n.status().applied;
        assert!(
            info.built >= 1 && info.built >= (entries / EVERY) / 2,
            "node {} built only {} snapshots for {entries} entries",
            n.id(),
            info.built
        );
        assert!(info.index > 0 && info.bytes > 0, "{info:?}");
        assert!(n.log_len() <= bound);
        assert!(n.status().log_entries as usize <= bound);
        assert_has_all(&n, N).await;
    }
    let nodes = tc.nodes();
    assert_identical(&nodes[0], &nodes[1]).await;
    assert_identical(&nodes[0], &nodes[2]).await;
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_node_catches_up_100k_keys_via_snapshot() {
    let _serial = SERIAL.lock().await;
    const N: usize = 100_000;
    // Concurrent writes share log entries (group commit): 100 000 sets make a few thousand.
    let mut tc = TestCluster::start_with(3, |c| {
        c.snapshot_logs = 200;
        c.snapshot_keep_logs = 50;
    })
    .await;
    let t = Instant::now();
    load(vec![tc.node(1)], N, 64).await;
    eprintln!(
        "FIGURE load: {N} replicated sets (64 concurrent) in {:?}",
        t.elapsed()
    );
    let leader = tc.leader_slot().await;
    let victim = if leader == 3 { 2 } else { 3 };
    let pauses: Vec<_> = tc
        .nodes()
        .iter()
        .map(|n| n.snapshot_info().max_pause)
        .collect();
    eprintln!("FIGURE snapshot build pause (apply path, up to {N} items): max per node {pauses:?}");
    let old_id = tc.node(victim).id();
    tc.stop(victim).await;
    // A few more writes while it is down: the tail after the snapshot.
    for i in 0..500 {
        set(&tc.node(leader), &format!("tail:{i}"), "t")
            .await
            .unwrap();
    }
    let t = Instant::now();
    let fresh = tc.restart(victim).await;
    fresh.wait_ready(Duration::from_secs(60)).await.unwrap();
    let caught_up = t.elapsed();
    let info = fresh.snapshot_info();
    eprintln!(
        "FIGURE catch-up via snapshot: restarted node ready with {N} keys after {caught_up:?} (snapshot of {} items, {:.1} MiB, install {:?}; log entries now {})",
        info.items,
        info.bytes as f64 / (1 << 20) as f64,
        info.last_install,
        fresh.log_len()
    );
    assert_ne!(fresh.id(), old_id);
    assert!(
        info.installed >= 1,
        "the restarted node did not install a snapshot: {info:?}"
    );
    assert!(info.items as usize >= N, "{info:?}");
    // It replayed only the tail, not the whole history.
    assert!(fresh.log_len() < 20_000, "log length {}", fresh.log_len());
    assert_has_all(&fresh, N).await;
    for i in 0..500 {
        assert_eq!(
            get(&fresh, &format!("tail:{i}")).await.unwrap().as_deref(),
            Some(&b"t"[..])
        );
    }
    // The installed replica is exactly the leader's (same slots, CAS, counters, flush state).
    assert_identical(&tc.node(leader), &fresh).await;
    // And it keeps applying identically afterwards.
    load(vec![fresh.clone()], 2_000, 16).await;
    assert_identical(&tc.node(leader), &fresh).await;
    let voters = tc
        .node(leader)
        .status()
        .members
        .iter()
        .filter(|m| m.voter)
        .count();
    assert_eq!(voters, 3);
    tc.shutdown().await;
}

/// Large values: the entry-count policy alone would let the log hold far more than the store;
/// the byte trigger snapshots early and keeps the log's bytes bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_bytes_stay_bounded_with_large_values() {
    let _serial = SERIAL.lock().await;
    const LIMIT: u64 = 1 << 20;
    const N: usize = 2_000;
    let tc = TestCluster::start_with(3, |c| {
        c.snapshot_logs = 1_000_000;
        c.snapshot_keep_logs = 10;
        c.snapshot_log_bytes = LIMIT;
    })
    .await;
    let value = "x".repeat(8 << 10);
    let max_bytes = Arc::new(AtomicUsize::new(0));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let sampler = {
        let (nodes, max_bytes) = (tc.nodes(), max_bytes.clone());
        tokio::spawn(async move {
            loop {
                for n in &nodes {
                    max_bytes.fetch_max(n.log_bytes() as usize, Ordering::Relaxed);
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(2)) => {}
                    _ = stop_rx.changed() => return,
                }
            }
        })
    };
    let mut hs = Vec::new();
    for w in 0..8usize {
        let (n, value) = (tc.nodes()[w % 3].clone(), value.clone());
        hs.push(tokio::spawn(async move {
            let mut i = w;
            while i < N {
                set(&n, &format!("big:{i}"), &value).await.unwrap();
                // Pace the load so the byte check (every 100 ms) sees the log grow.
                if i % 16 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                i += 8;
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    let _ = stop_tx.send(true);
    sampler.await.unwrap();
    let max_bytes = max_bytes.load(Ordering::Relaxed) as u64;
    eprintln!(
        "FIGURE log bytes: {N} writes of 8 KiB ({:.1} MiB), byte trigger {LIMIT}: max log bytes {:.2} MiB, (role, snapshots, log bytes) per node {:?}",
        (N * value.len()) as f64 / (1 << 20) as f64,
        max_bytes as f64 / (1 << 20) as f64,
        tc.nodes().iter().map(|n| (n.status().role, n.snapshot_info().built, n.log_bytes())).collect::<Vec<_>>()
    );
    assert!(
        max_bytes < (N * value.len()) as u64 / 2,
        "log held {max_bytes} bytes"
    );
    // Every write was acknowledged: the leader's commit index covers them all. Each node then
    // holds them once it has applied that far (a node that fell behind on a busy machine may
    // still be installing a snapshot; a read barrier's wait is bounded by the op timeout, which
    // is not what this test is about).
    let commit = tc.node(tc.leader_slot().await).status().commit;
    for n in tc.nodes() {
        wait_until(Duration::from_secs(20), || {
            let applied = n.status().applied;
            async move { applied >= commit }
        })
        .await;
        // A node compacts by building snapshots, or, when it fell more than `snapshot_keep_logs`
        // entries behind, by installing the leader's.
        let info = n.snapshot_info();
        assert!(
            info.built + info.installed >= 1,
            "no snapshot built or installed on {}: {info:?}",
            n.id()
        );
        for i in 0..N {
            let len = n
                .store()
                .get(format!("big:{i}").as_bytes(), 0, GetOpts::default(), |it| {
                    it.value.len()
                });
            assert_eq!(len, Some(value.len()), "big:{i} on {}", n.id());
        }
    }
    tc.shutdown().await;
}
