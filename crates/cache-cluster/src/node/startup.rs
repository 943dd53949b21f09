//! Startup and readiness: bootstrap a new cluster or join an existing one, then catch up with the
//! leader's commit index before answering clients; readiness follows membership afterwards.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, ServerState};
use tracing::{debug, info};

use crate::transport::{HelloInfo, Reply, Rpc};
use crate::{slot_of, ClusterError, NodeId};

use super::{settled_in, Inner};

impl Inner {
    /// Wait until this node is ready (a voter that has caught up), at most until `deadline`.
    pub(super) async fn until_ready(&self, deadline: Instant) -> Result<(), ClusterError> {
        let mut m = self.metrics.clone();
        loop {
            if self.ready.load(Relaxed) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClusterError::NotReady);
            }
            // The flag follows the metrics; poll too in case it flipped between checks.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(20)), m.changed()).await;
        }
    }

    /// The last step of startup: apply everything the leader has committed, then open for
    /// clients. Being a voter is not enough: the membership entry that made this node one takes
    /// effect when it is appended, and the entries before it (a snapshot and the log tail: all
    /// the data) are applied only once this node learns they are committed, with a later
    /// append or heartbeat. The commit index this node knows may lag far behind, so the target is
    /// the leader's, fixed by a read-index round (as for a linearizable read), asked for after
    /// this node became a voter. Retried until it succeeds or the node stops: a node that
    /// cannot reach a leader has nothing to serve.
    pub(super) async fn catch_up(self: &Arc<Self>) {
        let mut stop = self.stop.subscribe();
        loop {
            if *stop.borrow() {
                return;
            }
            let r = async {
                let target = self.clone().follower_round().await?;
                self.wait_applied(target, Instant::now() + self.cfg.join_timeout)
                    .await
                    .map(|()| target)
            };
            let r = tokio::select! {
                r = r => r,
                _ = super::stopping(&mut stop) => return,
            };
            match r {
                Ok(target) => {
                    info!(
                        node = self.id,
                        applied = target,
                        "caught up: ready for clients"
                    );
                    self.caught_up.send_replace(true);
                    return;
                }
                Err(e) => {
                    debug!(node = self.id, error = %e, "catch-up read index failed; asking again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Whether this node is a voter of a settled configuration ([`settled_in`]).
    pub(super) fn settled(&self) -> bool {
        settled_in(
            self.metrics.borrow().membership_config.membership(),
            self.id,
        )
    }

    pub(super) fn hello(&self) -> HelloInfo {
        let m = self.metrics.borrow();
        let initialized = m.membership_config.membership().nodes().next().is_some();
        let leader_addr = m.current_leader.and_then(|l| {
            m.membership_config
                .membership()
                .get_node(&l)
                .map(|n| n.addr.clone())
        });
        HelloInfo {
            id: self.id,
            initialized,
            leader: m.current_leader,
            leader_addr,
        }
    }
}

/// Keep `ready` in step with membership: ready while this id is a voter, once it has caught up
/// ([`Inner::catch_up`]).
pub(super) async fn watch_ready(inner: Arc<Inner>) {
    let mut m = inner.metrics.clone();
    let mut caught_up = inner.caught_up.subscribe();
    let mut stop = inner.stop.subscribe();
    let mut led = false;
    let mut known_leader = None;
    loop {
        let (voter, leads) = {
            let mm = m.borrow_and_update();
            if mm.current_leader != known_leader {
                known_leader = mm.current_leader;
                match known_leader {
                    Some(l) if l == inner.id => {
                        info!(node = inner.id, term = mm.current_term, "became leader")
                    }
                    Some(l) => info!(
                        node = inner.id,
                        term = mm.current_term,
                        leader = l,
                        leader_slot = slot_of(l),
                        "leader changed"
                    ),
                    None => info!(node = inner.id, term = mm.current_term, "no leader"),
                }
            }
            let voter = mm.running_state.is_ok()
                && mm
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == inner.id);
            (voter, mm.state == ServerState::Leader)
        };
        let ready = voter && *caught_up.borrow_and_update();
        if inner.ready.swap(ready, Relaxed) != ready {
            info!(node = inner.id, ready, "readiness changed");
        }
        // Leases this node granted as leader stop holding back its applies once it no longer
        // leads (their holders' own clocks still bound them; see `crate::lease`).
        if led && !leads {
            inner.gate.step_down();
        }
        led = leads;
        tokio::select! {
            r = m.changed() => if r.is_err() { break },
            r = caught_up.changed() => if r.is_err() { break },
            _ = super::stopping(&mut stop) => break,
        }
    }
    inner.ready.store(false, Relaxed);
}

/// Startup: join an existing cluster, or bootstrap a new one when no peer is part of one. Ends
/// once this node is a voter of a settled (not joint) configuration: a node that was added as a
/// learner but not promoted (the leader lost office, or the change failed, between the two
/// steps) keeps asking the current leader until it is, instead of staying a learner that never
/// answers clients.
pub(super) async fn startup(inner: Arc<Inner>) {
    let start = Instant::now();
    let others: Vec<(u16, String)> = inner
        .cfg
        .peers
        .iter()
        .filter(|(s, _)| **s != inner.cfg.slot)
        .map(|(s, a)| (*s, a.clone()))
        .collect();
    let total = inner.cfg.peers.len();
    loop {
        if *inner.stop.borrow() {
            return;
        }
        let me = inner.hello();
        if inner.settled() {
            // A voter: bootstrapped (by us or a peer), or our join went through.
            inner.catch_up().await;
            return;
        }
        let mut probes = Vec::new();
        for (_, addr) in &others {
            let p = inner.peers.get(addr);
            probes.push(tokio::spawn(async move {
                p.call(&Rpc::Hello, Duration::from_millis(300)).await
            }));
        }
        let mut infos = Vec::new();
        for p in probes {
            if let Ok(Ok(Reply::Hello(h))) = p.await {
                infos.push(h);
            }
        }
        // Whom to ask: the leader a member peer names, else (already a learner) the one we know.
        let leader_addr = infos
            .iter()
            .find(|h| h.initialized)
            .and_then(|h| h.leader_addr.clone())
            .or_else(|| me.leader_addr.clone().filter(|_| me.initialized));
        if let Some(leader_addr) = leader_addr {
            let p = inner.peers.get(&leader_addr);
            let rpc = Rpc::Join {
                id: inner.id,
                addr: inner.addr.clone(),
            };
            debug!(node = inner.id, peer = %leader_addr, "asking the leader to join");
            match p.call(&rpc, inner.cfg.join_timeout).await {
                Ok(Reply::Join(Ok(()))) => {
                    info!(node = inner.id, peer = %leader_addr, "joined the cluster");
                    // Wait for the membership entry to reach us; the loop then ends above.
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        while !inner.settled() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    })
                    .await;
                }
                r => {
                    let why = match r {
                        Ok(Reply::Join(Err(e))) => ClusterError::from(e).to_string(),
                        Ok(_) => "unexpected reply".to_string(),
                        Err(e) => e.to_string(),
                    };
                    debug!(node = inner.id, peer = %leader_addr, error = %why, "join refused; asking again");
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
            }
            continue;
        }
        if !me.initialized && !infos.iter().any(|h| h.initialized) {
            let mut fresh: BTreeMap<NodeId, BasicNode> = infos
                .iter()
                .filter_map(|h| {
                    let slot = slot_of(h.id);
                    inner
                        .cfg
                        .peers
                        .get(&slot)
                        .map(|a| (h.id, BasicNode { addr: a.clone() }))
                })
                .collect();
            fresh.insert(
                inner.id,
                BasicNode {
                    addr: inner.addr.clone(),
                },
            );
            let enough = fresh.len() == total
                || (fresh.len() * 2 > total && start.elapsed() >= inner.cfg.bootstrap_grace);
            let lowest = fresh.keys().map(|id| slot_of(*id)).min() == Some(inner.cfg.slot);
            if enough && lowest {
                info!(
                    node = inner.id,
                    voters = fresh.len(),
                    "bootstrapping a new cluster"
                );
                // Errors (e.g. already initialized by a race) are fine: the loop re-checks.
                if let Err(e) = inner.raft.initialize(fresh).await {
                    debug!(node = inner.id, error = %e, "bootstrap refused");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
