//! The replicated Redis keyspace across in-process nodes: writes through any node, reads on
//! every node, the replicated clock, WATCH across nodes, a restarted node catching up by
//! snapshot. (The server's side, connections and blocking pops, is tested with real clients in
//! the `keel` integration tests.)

use std::time::Duration;

use bytes::Bytes;
use cache_cluster::redis::pack_argvs;
use cache_cluster::{Cluster, ClusterConfig, ReadFence, RedisOp};

use crate::common::*;

fn with_redis(c: &mut ClusterConfig) {
    c.redis = Some(redis_store::Config::default());
}

fn argv(parts: &[&str]) -> Vec<Bytes> {
    parts.iter().map(|p| Bytes::from(p.to_string())).collect()
}

async fn run(n: &Cluster, parts: &[&str]) -> Vec<u8> {
    let a = argv(parts);
    let op = RedisOp::Run {
        client: 1,
        db: 0,
        resp3: false,
        noblock: true,
    };
    n.redis_write(op, pack_argvs(&[&a[..]]))
        .await
        .unwrap_or_else(|e| panic!("{parts:?}: {e}"))
        .reply
}

async fn read(n: &Cluster, parts: &[&str]) -> Vec<u8> {
    let a = argv(parts);
    let cmd = redis_store::lookup(&a[0]).expect("a data command");
    n.redis_read(&mut ReadFence::default(), |ks, now| {
        let mut c = redis_store::Client::default();
        match ks.execute_readonly(&mut c, cmd, &a, now) {
            redis_store::Exec::Reply(r) => {
                redis_proto::encode_to_vec(&r, redis_proto::Protocol::Resp2)
            }
            redis_store::Exec::Blocked { .. } => b"blocked".to_vec(),
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_any_node_are_read_on_every_node() {
    let tc = TestCluster::start_with(3, with_redis).await;
    let nodes = tc.nodes();
    run(&nodes[1], &["SET", "k", "v"]).await;
    assert_eq!(run(&nodes[2], &["INCR", "n"]).await, b":1\r\n");
    assert_eq!(run(&nodes[0], &["INCR", "n"]).await, b":2\r\n");
    run(&nodes[0], &["RPUSH", "q", "a", "b"]).await;
    for n in &nodes {
        assert_eq!(read(n, &["GET", "k"]).await, b"$1\r\nv\r\n");
        assert_eq!(read(n, &["GET", "n"]).await, b"$1\r\n2\r\n");
        assert_eq!(read(n, &["LLEN", "q"]).await, b":2\r\n");
    }
    // A pop is decided once for the whole tier.
    assert_eq!(run(&nodes[1], &["LPOP", "q"]).await, b"$1\r\na\r\n");
    assert_eq!(run(&nodes[2], &["LPOP", "q"]).await, b"$1\r\nb\r\n");
    let empty = nodes[0]
        .redis_write(
            RedisOp::Run {
                client: 1,
                db: 0,
                resp3: false,
                noblock: true,
            },
            pack_argvs(&[&argv(&["BRPOP", "q", "0"])[..]]),
        )
        .await
        .unwrap();
    assert!(empty.empty, "{empty:?}");
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ttl_agrees_on_every_node_and_keys_expire_through_the_log() {
    let tc = TestCluster::start_with(3, with_redis).await;
    let nodes = tc.nodes();
    run(&nodes[0], &["SET", "t", "v", "PX", "300"]).await;
    // Every node reads the same PTTL at the same point of the history: compare them at one
    // applied index (no write in between: the leader's expiry entries may run, so retry until
    // two rounds of reads agree).
    wait_until(Duration::from_secs(5), || async {
        let mut seen = Vec::new();
        for n in &nodes {
            let (pttl, now) = n
                .redis_read(&mut ReadFence::default(), |ks, now| {
                    let mut c = redis_store::Client::default();
                    let cmd = redis_store::lookup(b"PTTL").unwrap();
                    (
                        ks.execute_readonly(&mut c, cmd, &argv(&["PTTL", "t"]), now),
                        now,
                    )
                })
                .await
                .unwrap();
            seen.push((pttl, now));
        }
        seen.windows(2).all(|w| w[0] == w[1])
    })
    .await;
    // Gone everywhere once the replicated clock passes the expiry (the leader's periodic entry
    // advances it), and removed, not only hidden.
    wait_until(Duration::from_secs(5), || async {
        let mut all = true;
        for n in &nodes {
            all &= read(n, &["EXISTS", "t"]).await == b":0\r\n"
                && n.redis().unwrap().keyspace().lock().dbsize(0) == 0;
        }
        all
    })
    .await;
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_on_one_node_sees_a_write_through_another() {
    let tc = TestCluster::start_with(3, with_redis).await;
    let nodes = tc.nodes();
    let key = argv(&["k"]);
    let watch = RedisOp::Watch { client: 77, db: 0 };
    nodes[0]
        .redis_write(watch.clone(), pack_argvs(&[&key[..]]))
        .await
        .unwrap();
    run(&nodes[1], &["SET", "k", "theirs"]).await;
    let exec = RedisOp::Exec {
        client: 77,
        db: 0,
        resp3: false,
    };
    let set = argv(&["SET", "k", "mine"]);
    let o = nodes[0]
        .redis_write(exec.clone(), pack_argvs(&[&set[..]]))
        .await
        .unwrap();
    assert_eq!(
        o.reply, b"*-1\r\n",
        "the watched key changed: EXEC must fail"
    );
    nodes[0]
        .redis_write(watch, pack_argvs(&[&key[..]]))
        .await
        .unwrap();
    let o = nodes[2]
        .redis_write(exec, pack_argvs(&[&set[..]]))
        .await
        .unwrap();
    assert_eq!(o.reply, b"*1\r\n+OK\r\n");
    for n in &nodes {
        assert_eq!(read(n, &["GET", "k"]).await, b"$4\r\nmine\r\n");
    }
    tc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_node_catches_up_the_keyspace_by_snapshot() {
    let _serial = SERIAL.lock().await;
    fn small_snapshots(c: &mut ClusterConfig) {
        with_redis(c);
        c.snapshot_logs = 200;
        c.snapshot_keep_logs = 10;
    }
    let mut tc = TestCluster::start_with(3, small_snapshots).await;
    let (_, victim) = tc.leader_and_follower_slots().await;
    let writer = tc.node(if victim == 1 { 2 } else { 1 });
    for i in 0..1000 {
        run(&writer, &["RPUSH", "list", &format!("e{i}")]).await;
        run(&writer, &["HSET", "h", &format!("f{i}"), "x"]).await;
    }
    run(&writer, &["SET", "str", "value", "EX", "1000"]).await;
    tc.stop(victim).await;
    let fresh = tc.restart(victim).await;
    fresh.wait_ready(Duration::from_secs(30)).await.unwrap();
    assert!(
        fresh.snapshot_info().installed >= 1,
        "caught up by snapshot: {:?}",
        fresh.snapshot_info()
    );
    assert_eq!(read(&fresh, &["LLEN", "list"]).await, b":1000\r\n");
    assert_eq!(read(&fresh, &["HLEN", "h"]).await, b":1000\r\n");
    assert_eq!(
        read(&fresh, &["LINDEX", "list", "-1"]).await,
        b"$4\r\ne999\r\n"
    );
    assert_eq!(read(&fresh, &["GET", "str"]).await, b"$5\r\nvalue\r\n");
    tc.shutdown().await;
}

/// Pops through every node while the leader is cut off again and again: pops whose outcome was
/// unknown are sent again under their id, so every element is answered to exactly one pop.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pops_with_unknown_outcomes_lose_no_element_when_the_leader_is_cut_off() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::Arc;
    let _serial = SERIAL.lock().await;
    let tc = TestCluster::start_with(3, with_redis).await;
    let nodes = tc.nodes();
    const N: usize = 6000;
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let mut push = vec!["RPUSH".to_string(), "q".into()];
        push.extend(chunk.iter().map(|i| format!("e{i}")));
        let parts: Vec<&str> = push.iter().map(String::as_str).collect();
        run(&nodes[0], &parts).await;
    }
    let faults_done = Arc::new(AtomicBool::new(false));
    let mut poppers = Vec::new();
    for (p, node) in nodes.iter().enumerate() {
        let (node, done) = (node.clone(), faults_done.clone());
        poppers.push(tokio::spawn(async move {
            let (mut got, mut refused, mut unknown) = (Vec::new(), 0usize, Vec::new());
            let a = argv(&["LPOP", "q"]);
            for seq in 0u64.. {
                let op = RedisOp::Pop {
                    client: 100 + p as u64,
                    db: 0,
                    resp3: false,
                    block: false,
                    id: cache_cluster::RedisReplica::pop_id(100 + p as u64, seq),
                };
                match node.redis_pop(op, pack_argvs(&[&a[..]])).await {
                    Ok(o) if o.reply == b"$-1\r\n" => {
                        if done.load(Relaxed) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Ok(o) => {
                        got.push(o.reply);
                        // Paced, so the pops last through several cut-offs.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err(e) if e.certainly_not_applied() => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(e) => {
                        unknown.push(e.to_string());
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            (got, refused, unknown)
        }));
    }
    // Cut the leader off while the pops run, until some pop had to be sent again (at least 3
    // times; each cut-off lasts well under the resend budget).
    let resent = || nodes.iter().map(|n| n.status().pops_resent).sum::<u64>();
    let mut cuts = 0;
    while cuts < 3 || (resent() == 0 && cuts < 30) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let leader = tc.node(tc.leader_slot().await);
        leader.set_isolated(true);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        leader.set_isolated(false);
        cuts += 1;
    }
    faults_done.store(true, Relaxed);
    let mut count: HashMap<Vec<u8>, usize> = HashMap::new();
    let (mut refused, mut unknown) = (0, Vec::new());
    for p in poppers {
        let (got, r, u) = p.await.expect("popper");
        for g in got {
            *count.entry(g).or_default() += 1;
        }
        refused += r;
        unknown.extend(u);
    }
    let resent = resent();
    eprintln!(
        "FIGURE {cuts} leader cut-offs: {} elements popped, {resent} pops sent again, {refused} \
         refused, {} unknown",
        count.len(),
        unknown.len()
    );
    assert!(
        resent > 0,
        "no pop had an unknown outcome in {cuts} cut-offs"
    );
    assert!(
        unknown.is_empty(),
        "pops left with an unknown outcome: {unknown:?}"
    );
    let twice: Vec<_> = count.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "elements popped twice: {twice:?}");
    for n in &nodes {
        assert_eq!(read(n, &["LLEN", "q"]).await, b":0\r\n");
    }
    assert_eq!(count.len(), N, "elements lost");
    tc.shutdown().await;
}
