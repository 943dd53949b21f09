//! The write path: client writes queue for one proposer task per node, which group-commits
//! everything queued since its last round into one log entry; the leader pipelines rounds, a
//! follower forwards them to the leader. Also the leader's replicated background expiry.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot};

use crate::command::{Command, Outcome, Packer, Request};
use crate::transport::{Reply, Rpc};
use crate::{ClusterError, NodeId, TypeConfig};

use super::{raft_err, Inner};

/// One client write, or a connection's run of writes ([`Cluster::write_many`]), queued for the
/// proposer: the commands, when they were queued (the deadline is counted from there), and where
/// their outcomes go.
pub(super) struct Proposal {
    cmds: Queued,
    queued: Instant,
}

pub(super) enum Queued {
    One(Command, oneshot::Sender<Result<Outcome, ClusterError>>),
    Many(Packer, oneshot::Sender<Result<Vec<Outcome>, ClusterError>>),
}

impl Queued {
    pub(super) fn payload_bytes(&self) -> usize {
        match self {
            Queued::One(c, _) => c.payload_bytes(),
            Queued::Many(p, _) => p.bytes(),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Queued::One(..) => 1,
            Queued::Many(p, _) => p.len(),
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        match self {
            Queued::One(_, tx) => tx.is_closed(),
            Queued::Many(_, tx) => tx.is_closed(),
        }
    }

    /// Move the commands to the end of `packer` and return where their outcomes go.
    pub(super) fn split(self, packer: &mut Packer) -> Waiter {
        match self {
            Queued::One(c, tx) => {
                packer.push(&c);
                Waiter::One(tx)
            }
            Queued::Many(p, tx) => {
                let n = p.len();
                packer.append(p);
                Waiter::Many(n, tx)
            }
        }
    }

    pub(super) fn into_waiter(self) -> Waiter {
        match self {
            Queued::One(_, tx) => Waiter::One(tx),
            Queued::Many(p, tx) => Waiter::Many(p.len(), tx),
        }
    }
}

/// Where the outcomes of a round's commands go: one command's, or the next `n` commands'.
pub(super) enum Waiter {
    One(oneshot::Sender<Result<Outcome, ClusterError>>),
    Many(usize, oneshot::Sender<Result<Vec<Outcome>, ClusterError>>),
}

impl Waiter {
    pub(super) fn len(&self) -> usize {
        match self {
            Waiter::One(_) => 1,
            Waiter::Many(n, _) => *n,
        }
    }

    pub(super) fn fail(self, e: ClusterError) {
        match self {
            Waiter::One(tx) => drop(tx.send(Err(e))),
            Waiter::Many(_, tx) => drop(tx.send(Err(e))),
        }
    }
}

/// Most commands one group-commit entry carries.
pub(super) const GROUP_MAX_CMDS: usize = 4096;

/// Most payload bytes (keys and values) one group-commit entry carries (a single larger command
/// still goes alone).
pub(super) const GROUP_MAX_BYTES: usize = 4 << 20;

impl Inner {
    pub(super) async fn leader_write(
        &self,
        cmd: Arc<Command>,
        deadline: Instant,
    ) -> Result<Outcome, ClusterError> {
        if !self.is_leader() {
            return Err(ClusterError::NotLeader(
                self.metrics.borrow().current_leader,
            ));
        }
        self.check_quorum()?;
        let req = Request {
            now: (self.cfg.clock)(),
            now_ms: crate::unix_ms(),
            cmd,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        // While waiting for the commit, keep checking that a majority is still in contact: a
        // leader cut off mid-request answers within the election timeout, not the op timeout.
        let quorum_lost = async {
            loop {
                tokio::time::sleep(Duration::from_millis(25)).await;
                if self.check_quorum().is_err() {
                    return;
                }
            }
        };
        let commit = async {
            tokio::select! {
                r = self.raft.client_write(req) => Some(r),
                _ = quorum_lost => None,
            }
        };
        match tokio::time::timeout(left, commit).await {
            Err(_) => Err(ClusterError::Timeout("commit")),
            Ok(None) => Err(ClusterError::QuorumLost),
            Ok(Some(r)) => match r {
                Ok(resp) => Ok(resp.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    Err(ClusterError::NotLeader(f.leader_id))
                }
                Err(e) => Err(raft_err(e)),
            },
        }
    }

    /// Queue a client write for the proposer and wait for its outcome. The command is queued
    /// before this returns its future (so a connection's writes enter the log in the order it
    /// issued them, even when it awaits them concurrently).
    pub(super) fn write(
        &self,
        cmd: Command,
    ) -> impl std::future::Future<Output = Result<Outcome, ClusterError>> {
        // Queued even while this node catches up: the proposer waits (bounded) until it is
        // ready, so a restarted node holds writes instead of refusing them, in their order.
        let (tx, rx) = oneshot::channel();
        let rx = match self.proposals.send(Proposal {
            cmds: Queued::One(cmd, tx),
            queued: Instant::now(),
        }) {
            Ok(()) => Ok(rx),
            Err(_) => Err(ClusterError::Shutdown),
        };
        // The proposer gone with the write taken: it may have reached the leader's log.
        async move { rx?.await.map_err(|_| ClusterError::StoppedMidWrite)? }
    }

    pub(super) fn write_many(
        &self,
        cmds: Packer,
    ) -> impl std::future::Future<Output = Result<Vec<Outcome>, ClusterError>> {
        let rx = if cmds.is_empty() {
            None
        } else {
            let (tx, rx) = oneshot::channel();
            Some(
                match self.proposals.send(Proposal {
                    cmds: Queued::Many(cmds, tx),
                    queued: Instant::now(),
                }) {
                    Ok(()) => Ok(rx),
                    Err(_) => Err(ClusterError::Shutdown),
                },
            )
        };
        async move {
            match rx {
                None => Ok(Vec::new()),
                Some(rx) => rx?.await.map_err(|_| ClusterError::StoppedMidWrite)?,
            }
        }
    }

    /// Replicate `cmd` now (the proposer's round): on the leader directly, else forwarded to it;
    /// retried while it provably did not reach a leader.
    pub(super) async fn replicate(
        &self,
        cmd: Arc<Command>,
        deadline: Instant,
    ) -> Result<Outcome, ClusterError> {
        loop {
            let leader = self.wait_leader(deadline).await?;
            let r = if leader == self.id {
                self.leader_write(cmd.clone(), deadline).await
            } else {
                match self.node_addr(leader) {
                    None => Err(ClusterError::NoLeader),
                    Some(addr) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match self
                            .peers
                            .get(&addr)
                            .call(&Rpc::Write(Arc::clone(&cmd)), left)
                            .await
                        {
                            Ok(Reply::Write(r)) => r.map_err(ClusterError::from),
                            Ok(_) => Err(ClusterError::Codec("unexpected reply".into())),
                            Err(e) => Err(e),
                        }
                    }
                }
            };
            match r {
                // Provably not applied: try again (a new leader may be taking over).
                Err(
                    ClusterError::NotLeader(_)
                    | ClusterError::Unreachable(_)
                    | ClusterError::NoLeader,
                ) if Instant::now() + Duration::from_millis(10) < deadline
                    && !self.partition.cut_off() =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(
                    ClusterError::NotLeader(_)
                    | ClusterError::Unreachable(_)
                    | ClusterError::NoLeader,
                ) => {
                    return Err(if self.partition.cut_off() {
                        ClusterError::NoQuorum
                    } else {
                        ClusterError::NoLeader
                    })
                }
                other => return other,
            }
        }
    }
}

/// A round the leader's proposer appended and has not seen applied yet.
pub(super) struct InFlight {
    rx: <<TypeConfig as openraft::RaftTypeConfig>::Responder as openraft::raft::responder::Responder<TypeConfig>>::Receiver,
    cmd: Arc<Command>,
    txs: Vec<Waiter>,
    deadline: Instant,
}

/// How an in-flight round ended.
pub(super) enum RoundEnd {
    Done(Result<Outcome, ClusterError>),
    /// The Raft core was no longer leader when the round reached it: certainly not applied.
    Refused(Option<NodeId>),
}

impl Inner {
    /// Wait for the outcome of a round the leader appended, bounded by its deadline; a leader
    /// that loses contact with its majority meanwhile answers within the election timeout.
    /// Cancel-safe (the receiver is polled by reference).
    pub(super) async fn round_end(&self, f: &mut InFlight) -> RoundEnd {
        let quorum_lost = async {
            loop {
                if self.check_quorum().is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        };
        let left = f.deadline.saturating_duration_since(Instant::now());
        let r = tokio::time::timeout(left, async {
            tokio::select! {
                r = &mut f.rx => Some(r),
                _ = quorum_lost => None,
            }
        })
        .await;
        RoundEnd::Done(match r {
            Err(_) => Err(ClusterError::Timeout("commit")),
            Ok(None) => Err(ClusterError::QuorumLost),
            Ok(Some(Err(_))) => Err(ClusterError::Raft("raft core stopped".into())),
            Ok(Some(Ok(Ok(resp)))) => Ok(resp.data),
            Ok(Some(Ok(Err(ClientWriteError::ForwardToLeader(f))))) => {
                return RoundEnd::Refused(f.leader_id)
            }
            Ok(Some(Ok(Err(e)))) => Err(raft_err(e)),
        })
    }

    /// Settle every round in flight, in log order (`first`: the front round, already ended). A
    /// refused round (it never entered the log) is retried through [`Inner::replicate`] only if
    /// no later round was applied (or may have been): otherwise retrying would apply it after
    /// writes queued behind it, so it is refused to its clients instead (certainly not applied,
    /// `SERVER_ERROR`).
    pub(super) async fn settle(
        &self,
        first: Option<(InFlight, RoundEnd)>,
        inflight: &mut VecDeque<InFlight>,
    ) {
        let mut ends: Vec<(InFlight, RoundEnd)> = first.into_iter().collect();
        while let Some(mut f) = inflight.pop_front() {
            let end = self.round_end(&mut f).await;
            ends.push((f, end));
        }
        let last_entered = ends
            .iter()
            .rposition(|(_, e)| matches!(e, RoundEnd::Done(_)));
        for (i, (f, end)) in ends.into_iter().enumerate() {
            match end {
                RoundEnd::Done(r) => deliver(f.txs, r),
                RoundEnd::Refused(l) if last_entered.is_some_and(|k| i < k) => {
                    deliver(f.txs, Err(ClusterError::NotLeader(l)))
                }
                RoundEnd::Refused(_) => {
                    let r = self.replicate(f.cmd, f.deadline).await;
                    deliver(f.txs, r);
                }
            }
        }
    }

    /// The front round ended: deliver it, or settle everything if it was refused.
    pub(super) async fn front_ended(
        &self,
        f: InFlight,
        end: RoundEnd,
        inflight: &mut VecDeque<InFlight>,
    ) {
        match end {
            RoundEnd::Done(r) => deliver(f.txs, r),
            refused => self.settle(Some((f, refused)), inflight).await,
        }
    }
}

/// The proposer: takes every client write queued on this node (up to [`GROUP_MAX_CMDS`] /
/// [`GROUP_MAX_BYTES`]) and replicates them as one entry ([`Command::Batch`], applied in order).
/// On the leader, up to [`ClusterConfig::write_pipeline`] rounds are in flight: each is handed to the Raft
/// core in queue order (so the log keeps it) and the next batch forms while earlier ones
/// replicate; outcomes are delivered in log order. A follower forwards one round at a time,
/// which keeps its queue's order through the leader. Either way a connection's writes are
/// applied in the order it issued them.
pub(super) async fn propose_loop(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Proposal>) {
    let mut stop = inner.stop.subscribe();
    let mut carry: Option<Proposal> = None;
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None if inflight.len() >= inner.cfg.write_pipeline.max(1) => {
                let mut f = inflight.pop_front().expect("rounds in flight");
                let end = inner.round_end(&mut f).await;
                inner.front_ended(f, end, &mut inflight).await;
                continue;
            }
            None if !inflight.is_empty() => {
                let front = inflight.front_mut().expect("rounds in flight");
                tokio::select! {
                    biased;
                    p = rx.recv() => match p { Some(p) => p, None => { inner.settle(None, &mut inflight).await; return } },
                    end = inner.round_end(front) => {
                        let f = inflight.pop_front().expect("rounds in flight");
                        inner.front_ended(f, end, &mut inflight).await;
                        continue;
                    }
                    _ = super::stopping(&mut stop) => return,
                }
            }
            None => tokio::select! {
                p = rx.recv() => match p { Some(p) => p, None => return },
                _ = super::stopping(&mut stop) => return,
            },
        };
        let oldest = first.queued;
        let mut bytes = first.cmds.payload_bytes();
        let mut n = first.cmds.len();
        let mut batch = vec![first];
        while n < GROUP_MAX_CMDS && bytes < GROUP_MAX_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.cmds.payload_bytes();
                    n += p.cmds.len();
                    if bytes > GROUP_MAX_BYTES {
                        carry = Some(p);
                        break;
                    }
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        // Waiters whose client left need no round.
        batch.retain(|p| !p.cmds.is_closed());
        if batch.is_empty() {
            continue;
        }
        // The deadline counts from the oldest write's arrival (a round stuck on an unreachable
        // leader must not push the next one's refusal further out), or from readiness when the
        // node had to catch up first.
        let mut deadline = oldest + inner.cfg.op_timeout;
        if !inner.ready.load(Relaxed) {
            if inner
                .until_ready(oldest + inner.cfg.ready_wait)
                .await
                .is_err()
            {
                deliver(
                    batch.into_iter().map(|p| p.cmds.into_waiter()).collect(),
                    Err(ClusterError::NotReady),
                );
                continue;
            }
            deadline = Instant::now() + inner.cfg.op_timeout;
        }
        // One plain write goes as itself; anything more as one packed entry.
        let (cmd, txs) = match batch.pop() {
            Some(Proposal {
                cmds: Queued::One(c, tx),
                ..
            }) if batch.is_empty() => (c, vec![Waiter::One(tx)]),
            last => {
                let mut packer = Packer::default();
                let mut txs: Vec<Waiter> = batch
                    .into_iter()
                    .map(|p| p.cmds.split(&mut packer))
                    .collect();
                txs.extend(last.map(|p| p.cmds.split(&mut packer)));
                (packer.finish(), txs)
            }
        };
        let cmd = Arc::new(cmd);
        if inner.is_leader() {
            if let Err(e) = inner.check_quorum() {
                deliver(txs, Err(e));
                continue;
            }
            let req = Request {
                now: (inner.cfg.clock)(),
                now_ms: crate::unix_ms(),
                cmd: Arc::clone(&cmd),
            };
            match inner.raft.client_write_ff(req).await {
                Ok(rx) => {
                    inner.write_rounds.fetch_add(1, Relaxed);
                    if !inflight.is_empty() {
                        inner.write_rounds_pipelined.fetch_add(1, Relaxed);
                    }
                    inflight.push_back(InFlight {
                        rx,
                        cmd,
                        txs,
                        deadline,
                    })
                }
                Err(e) => deliver(txs, Err(raft_err(e))),
            }
            continue;
        }
        // Not the leader: earlier rounds first (they were appended while this node led), then
        // this one forwarded, alone.
        inner.settle(None, &mut inflight).await;
        inner.write_rounds.fetch_add(1, Relaxed);
        deliver(txs, inner.replicate(cmd, deadline).await);
    }
}

/// Hand a round's outcome to its waiters: for a batch, one outcome per command, in order.
pub(super) fn deliver(txs: Vec<Waiter>, r: Result<Outcome, ClusterError>) {
    let n: usize = txs.iter().map(Waiter::len).sum();
    let outs = match r {
        Ok(Outcome::Batch(outs)) if outs.len() == n => outs,
        Ok(o) if n == 1 => vec![o],
        Ok(_) => {
            txs.into_iter()
                .for_each(|w| w.fail(ClusterError::Codec("batch outcome mismatch".into())));
            return;
        }
        Err(e) => {
            txs.into_iter().for_each(|w| w.fail(e.clone()));
            return;
        }
    };
    let mut outs = outs.into_iter();
    for w in txs {
        match w {
            Waiter::One(tx) => {
                if let Some(o) = outs.next() {
                    let _ = tx.send(Ok(o));
                }
            }
            Waiter::Many(k, tx) => {
                let _ = tx.send(Ok(outs.by_ref().take(k).collect()));
            }
        }
    }
}

/// The leader proposes background expiry, a few store shards at a time (every shard about once
/// every 2 s), so replicas reclaim expired items at the same point of the history.
pub(super) async fn expiry_loop(inner: Arc<Inner>) {
    let shards = inner.store.config().shards.max(1) as u32;
    let per_tick = shards.div_ceil(20).max(1);
    let mut next = 0u32;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = inner.stop.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = super::stopping(&mut stop) => return,
        }
        if inner.is_leader() && inner.ready.load(Relaxed) {
            let cmd = Arc::new(Command::Expire {
                first_shard: next,
                count: per_tick,
            });
            if inner.leader_write(cmd, inner.op_deadline()).await.is_ok() {
                next = (next + per_tick) % shards;
            }
        }
    }
}
