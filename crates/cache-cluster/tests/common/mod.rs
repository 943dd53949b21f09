//! Test harness: a cluster of in-process nodes on 127.0.0.1 with ports chosen by the kernel.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use cache_cluster::{Cluster, ClusterConfig, ClusterError, ClusterStatus};
use cache_store::{GetOpts, StoreConfig, StoreOutcome, StoreReq};

/// Load-heavy and timing-sensitive tests hold this so they never run at the same time on a small
/// CI box: 100 000-write loads would starve the linearizability test, whose operations then time
/// out, and every unknown outcome multiplies the checker's search. Not poisoned by a panic.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct TestCluster {
    pub peers: BTreeMap<u16, String>,
    pub nodes: BTreeMap<u16, Option<Cluster>>,
    tweak: fn(&mut ClusterConfig),
}

/// The nodes' log events, filtered by `RUST_LOG` (none by default), captured per test.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn store_config() -> StoreConfig {
    StoreConfig {
        mem_limit: 256 << 20,
        item_size_max: 1 << 20,
        shards: 16,
        reads_mutate: false,
    }
}

impl TestCluster {
    pub async fn start(n: u16) -> TestCluster {
        Self::start_with(n, |_| {}).await
    }

    pub async fn start_with(n: u16, tweak: fn(&mut ClusterConfig)) -> TestCluster {
        init_logs();
        let mut listeners = BTreeMap::new();
        for slot in 1..=n {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listeners.insert(slot, l);
        }
        let peers: BTreeMap<u16, String> = listeners
            .iter()
            .map(|(s, l)| (*s, l.local_addr().unwrap().to_string()))
            .collect();
        let mut tc = TestCluster {
            peers,
            nodes: BTreeMap::new(),
            tweak,
        };
        for (slot, l) in listeners {
            let c = Cluster::start_with_listener(tc.config(slot), l)
                .await
                .unwrap();
            tc.nodes.insert(slot, Some(c));
        }
        for n in tc.nodes() {
            n.wait_ready(Duration::from_secs(20))
                .await
                .unwrap_or_else(|e| panic!("not ready: {e} {:?}", n.status()));
        }
        tc
    }

    pub fn config(&self, slot: u16) -> ClusterConfig {
        let mut c = ClusterConfig::new(slot, self.peers.clone(), store_config());
        (self.tweak)(&mut c);
        c
    }

    pub fn nodes(&self) -> Vec<Cluster> {
        self.nodes.values().flatten().cloned().collect()
    }

    pub fn node(&self, slot: u16) -> Cluster {
        self.nodes[&slot].clone().expect("node is stopped")
    }

    pub fn statuses(&self) -> Vec<ClusterStatus> {
        self.nodes().iter().map(|n| n.status()).collect()
    }

    /// The current leader and one follower (waits for a leader).
    pub async fn leader_and_follower(&self) -> (Cluster, Cluster) {
        let leader = self.node(self.leader_slot().await);
        let follower = self
            .nodes()
            .into_iter()
            .find(|n| n.id() != leader.id())
            .expect("a follower");
        (leader, follower)
    }

    /// The slots of the current leader and of one follower (waits for a leader).
    pub async fn leader_and_follower_slots(&self) -> (u16, u16) {
        let leader = self.leader_slot().await;
        let follower = self
            .nodes
            .keys()
            .copied()
            .find(|s| *s != leader)
            .expect("a follower slot");
        (leader, follower)
    }

    /// The slot of the current leader (waits for one).
    pub async fn leader_slot(&self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for (slot, n) in &self.nodes {
                if let Some(n) = n {
                    if n.status().role == "leader" {
                        return *slot;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader: {:?}",
                self.statuses()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn stop(&mut self, slot: u16) {
        if let Some(Some(n)) = self.nodes.insert(slot, None) {
            n.shutdown().await;
        }
    }

    /// Start a fresh process-equivalent for `slot` at the same address (new Raft id).
    pub async fn restart(&mut self, slot: u16) -> Cluster {
        let mut cfg = self.config(slot);
        cfg.listen = Some(self.peers[&slot].parse().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        let c = loop {
            match Cluster::start(cfg.clone()).await {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "restart: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        self.nodes.insert(slot, Some(c.clone()));
        c
    }

    pub async fn shutdown(self) {
        for n in self.nodes.into_values().flatten() {
            n.shutdown().await;
        }
    }
}

pub fn plain_req<'a>(key: &'a [u8], value: &'a [u8]) -> StoreReq<'a> {
    StoreReq::set(key, value)
}

pub async fn set(n: &Cluster, key: &str, value: &str) -> Result<StoreOutcome, ClusterError> {
    n.store_item(&plain_req(key.as_bytes(), value.as_bytes()))
        .await
}

pub async fn get(n: &Cluster, key: &str) -> Result<Option<Vec<u8>>, ClusterError> {
    n.get(key.as_bytes(), GetOpts::default(), |it| it.value.to_vec())
        .await
}

/// Poll `f` until it returns true (panics after `limit`).
pub async fn wait_until<F, Fut>(limit: Duration, f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
