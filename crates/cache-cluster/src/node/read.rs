//! The read path: linearizable read barriers. A leader confirms its leadership with a batched
//! read-index round, or answers from its read lease; a follower serves reads under a read lease
//! from the leader ([`crate::lease`]) or asks the leader for the read index; either way the
//! reader then waits until its replica has applied that index.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;

use crate::network::Peers;
use crate::transport::{Reply, Rpc, WireError};
use crate::{ClusterError, NodeId, ReadMode};

use super::{raft_err, Inner};

/// A leader's read lease: a read-index round that began at `until - read_lease` confirmed with a
/// majority that this node led `term`. Every voter that answered refuses to vote for anyone else
/// for `election_max_ms` after that heartbeat (openraft's follower lease), and this node refuses
/// votes itself until `until` (see `handle`), so no other leader can exist before `until`: the
/// leader's applied index then covers every write acknowledged so far (a write is acknowledged
/// after the leader applied it; writes of earlier terms are covered by `target`, the round's own
/// read index), and may serve as the read index without another round.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lease {
    term: u64,
    until: Instant,
    target: u64,
}

/// A follower's read lease ([`crate::lease`]): granted by `leader` in `term`, usable until
/// `until` (counted from before the request, [`crate::lease::follower_lease`]) once the replica
/// has applied `index`; renewed in the background once half of `read_lease` has passed.
#[derive(Clone, Copy, Debug)]
pub(super) struct FollowerLease {
    leader: NodeId,
    term: u64,
    until: Instant,
    index: u64,
}

impl Inner {
    /// One leader read-index round: confirm leadership with a quorum; returns the number of
    /// entries the reader must have applied. Success renews the read lease.
    pub(super) async fn leader_round(self: Arc<Self>) -> Result<u64, ClusterError> {
        if !self.is_leader() {
            return Err(ClusterError::NotLeader(
                self.metrics.borrow().current_leader,
            ));
        }
        self.check_quorum()?;
        self.read_rounds.fetch_add(1, Relaxed);
        let began = Instant::now();
        let term = self.metrics.borrow().current_term;
        match tokio::time::timeout(self.cfg.op_timeout, self.raft.get_read_log_id()).await {
            Err(_) => Err(ClusterError::Timeout("read index")),
            Ok(Ok((read, _applied))) => {
                let target = read.map(|l| l.index + 1).unwrap_or(0);
                if !self.cfg.read_lease.is_zero() {
                    let lease = Lease {
                        term,
                        until: began + self.cfg.read_lease,
                        target,
                    };
                    let mut slot = self.lease.write();
                    if slot.is_none_or(|l| l.term != term || l.until < lease.until) {
                        *slot = Some(lease);
                    }
                }
                Ok(target)
            }
            Ok(Err(e)) => Err(raft_err(e)),
        }
    }

    /// The read lease, if it holds now: this node still leads the lease's term and the lease
    /// has not run out.
    pub(super) fn lease_now(&self) -> Option<Lease> {
        let l = (*self.lease.read())?;
        let m = self.metrics.borrow();
        let leads = m.state == ServerState::Leader
            && m.current_leader == Some(self.id)
            && m.current_term == l.term;
        (leads && Instant::now() < l.until).then_some(l)
    }

    /// The read index from the read lease alone, if it holds (no round trip).
    pub(super) fn lease_read_index(&self) -> Option<u64> {
        let l = self.lease_now()?;
        // Every acknowledged write is applied here (or covered by the lease's own read index).
        // A write may be visible before it is acknowledged, though: the commit index goes out
        // to followers before this node has applied it, and a follower that applied it may
        // already have answered a read with it, so the index also covers every commit index
        // sent ([`crate::lease::LeaseGate::exposed`]). Checked again after reading, so the
        // index was taken inside the lease.
        let index = l
            .target
            .max(*self.applied_rx.borrow())
            .max(self.gate.exposed());
        self.lease_now().map(|_| index)
    }

    pub(super) async fn leader_read_index(self: &Arc<Self>) -> Result<u64, ClusterError> {
        if let Some(index) = self.lease_read_index() {
            return Ok(index);
        }
        let me = self.clone();
        self.leader_reads
            .wait(move || me.clone().leader_round())
            .await
    }

    pub(super) async fn follower_round(self: Arc<Self>) -> Result<u64, ClusterError> {
        let deadline = self.op_deadline();
        let leader = self.wait_leader(deadline).await?;
        if leader == self.id {
            return self.leader_read_index().await;
        }
        let addr = self.node_addr(leader).ok_or(ClusterError::NoLeader)?;
        let left = deadline.saturating_duration_since(Instant::now());
        match self.read_peer(&addr).call(&Rpc::ReadIndex, left).await? {
            Reply::ReadIndex(r) => r.map_err(ClusterError::from),
            _ => Err(ClusterError::Codec("unexpected reply".into())),
        }
    }

    /// The connection a follower read round on this thread uses to ask `addr` for the read
    /// index. One per thread: a round runs on the thread of the client connection that started
    /// it (a `keel cache` worker), and a connection made there is served there too, so the
    /// request and its answer need no hand-off to the Raft runtime's thread and back (two
    /// cross-thread wake-ups per round on a busy machine).
    pub(super) fn read_peer(&self, addr: &str) -> Arc<crate::transport::Peer> {
        let thread = std::thread::current().id();
        let mut map = self.read_peers.lock();
        map.entry(thread)
            .or_insert_with(|| Peers::new(self.partition.clone(), self.contact.clone()))
            .get(addr)
    }

    pub(super) async fn read_barrier(self: &Arc<Self>) -> Result<(), ClusterError> {
        // A node catching up holds reads rather than refusing them: libmemcached (pylibmc,
        // Seafile's C clients) and python-memcached report a `SERVER_ERROR` answer to `get` as a
        // miss, so a refusal would look like a lost key.
        self.until_ready(Instant::now() + self.cfg.ready_wait)
            .await?;
        if self.cfg.read_mode == ReadMode::Local {
            return Ok(());
        }
        // For the same reason a read rides out a change of leader: errors that only say "no
        // leader to ask right now" are retried until the deadline (a read has no effect, so a
        // retry is always safe); a leader that knows it is cut off still refuses at once.
        let deadline = self.op_deadline();
        if self.cfg.follower_leases && !self.is_leader() {
            let lease = match self.follower_lease_target() {
                Some(l) => Some(l),
                None => self.acquire_lease().await,
            };
            // The target was fixed inside the lease, so waiting past its end would still be
            // safe; but entries that do not commit by then suggest this node is cut off, and
            // the read-index path below then fails fast instead of at the deadline.
            if let Some((target, until)) = lease {
                match self.wait_applied(target, deadline.min(until)).await {
                    Err(ClusterError::Timeout(_)) if until < deadline => {}
                    r => {
                        self.lease_reads.fetch_add(u64::from(r.is_ok()), Relaxed);
                        return r;
                    }
                }
            }
        }
        loop {
            let r = if self.is_leader() {
                self.leader_read_index().await
            } else {
                let me = self.clone();
                self.follower_reads
                    .wait(move || me.clone().follower_round())
                    .await
            };
            match r {
                Ok(target) => return self.wait_applied(target, deadline).await,
                Err(
                    ClusterError::NotLeader(_)
                    | ClusterError::NoLeader
                    | ClusterError::Unreachable(_)
                    | ClusterError::ConnectionLost
                    | ClusterError::Raft(_)
                    | ClusterError::Remote(_),
                ) if Instant::now() + Duration::from_millis(10) < deadline
                    && !self.partition.cut_off() =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Under this follower's read lease, the applied count a read that starts now must wait for:
    /// the lease's index and everything in the log (every entry any node made visible is in a
    /// holder's log, [`crate::lease`]), and when the lease ends. None without a lease that holds
    /// now. Half-way through the lease a renewal starts in the background.
    pub(super) fn follower_lease_target(self: &Arc<Self>) -> Option<(u64, Instant)> {
        let l = (*self.follower_lease.lock())?;
        let now = Instant::now();
        {
            let m = self.metrics.borrow();
            if now >= l.until || m.current_term != l.term || m.current_leader != Some(l.leader) {
                return None;
            }
        }
        // Granted at `until - follower_lease(read_lease)`: renew from half the lease on.
        let renew_at =
            l.until - (crate::lease::follower_lease(self.cfg.read_lease) - self.cfg.read_lease / 2);
        if now >= renew_at && !self.lease_renewing.swap(true, Relaxed) {
            let me = self.clone();
            tokio::spawn(async move {
                let _one = me.lease_lock.lock().await;
                let _ = me.request_lease().await;
                me.lease_renewing.store(false, Relaxed);
            });
        }
        Some((l.index.max(self.log.last_count()), l.until))
    }

    /// Get a read lease now (readers without one share the request); None if the leader
    /// refused or could not be asked (reads then use read-index rounds for a while).
    pub(super) async fn acquire_lease(self: &Arc<Self>) -> Option<(u64, Instant)> {
        let backing_off = || {
            self.lease_retry_at
                .lock()
                .is_some_and(|t| Instant::now() < t)
        };
        if backing_off() {
            return None;
        }
        let _one = self.lease_lock.lock().await;
        if let Some(t) = self.follower_lease_target() {
            return Some(t);
        }
        if backing_off() {
            return None;
        }
        if self.request_lease().await.is_err() {
            *self.lease_retry_at.lock() = Some(Instant::now() + self.cfg.read_lease / 4);
            return None;
        }
        self.follower_lease_target()
    }

    /// Ask the leader for a read lease (or its renewal).
    pub(super) async fn request_lease(&self) -> Result<(), ClusterError> {
        let (leader, term) = {
            let m = self.metrics.borrow();
            (m.current_leader, m.current_term)
        };
        let leader = leader
            .filter(|&l| l != self.id)
            .ok_or(ClusterError::NoLeader)?;
        let addr = self.node_addr(leader).ok_or(ClusterError::NoLeader)?;
        let asked = Instant::now();
        match self
            .read_peer(&addr)
            .call(&Rpc::Lease { id: self.id, term }, self.cfg.read_lease)
            .await?
        {
            Reply::Lease(Ok(index)) => {
                let until = asked + crate::lease::follower_lease(self.cfg.read_lease);
                let mut slot = self.follower_lease.lock();
                match &mut *slot {
                    Some(l) if l.leader == leader && l.term == term => {
                        l.until = l.until.max(until);
                        l.index = l.index.max(index);
                    }
                    other => {
                        *other = Some(FollowerLease {
                            leader,
                            term,
                            until,
                            index,
                        })
                    }
                }
                Ok(())
            }
            Reply::Lease(Err(e)) => Err(e.into()),
            _ => Err(ClusterError::Codec("unexpected reply".into())),
        }
    }

    /// As leader, grant follower `id` (which knows `term`) a read lease, inside this node's own
    /// read lease only ([`crate::lease`], rule 3). None when that does not hold now (a round
    /// renews it first).
    pub(super) fn try_grant(&self, id: NodeId, term: u64) -> Option<Result<u64, WireError>> {
        if !self.cfg.follower_leases {
            return Some(Err(WireError::Other("follower leases are off".into())));
        }
        let l = self.lease_now()?;
        if l.term != term {
            return Some(Err(WireError::Other(
                crate::lease::Refusal::Term.to_string(),
            )));
        }
        let read_index = l.target.max(*self.applied_rx.borrow());
        let r =
            self.gate
                .table
                .lock()
                .grant(id, term, Instant::now(), self.cfg.read_lease, read_index);
        self.lease_now()?;
        Some(r.map_err(|e| WireError::Other(e.to_string())))
    }

    pub(super) async fn wait_applied(
        &self,
        target: u64,
        deadline: Instant,
    ) -> Result<(), ClusterError> {
        if *self.applied_rx.borrow() >= target {
            return Ok(());
        }
        let mut rx = self.applied_rx.clone();
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, async move {
            rx.wait_for(|a| *a >= target).await.map(|_| ())
        })
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ClusterError::Shutdown),
            Err(_) => Err(ClusterError::Timeout("apply")),
        }
    }
}

/// Send a heartbeat when a commit index held back for a lease holder may now go out (else
/// followers would learn it only with the next append or heartbeat).
pub(super) async fn heartbeat_loop(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    loop {
        tokio::select! {
            _ = inner.gate.heartbeat_wanted() => {}
            _ = super::stopping(&mut stop) => break,
        }
        if inner.is_leader() {
            let _ = inner.raft.trigger().heartbeat().await;
        }
    }
}
