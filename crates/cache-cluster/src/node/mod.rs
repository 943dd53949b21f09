//! One running cluster node ([`Cluster`]): the Raft instance, its tasks, and the typed item
//! operations the cache server's `Ctx` calls. By job:
//! * `startup`: bootstrap or join, catch-up, readiness;
//! * `join`: the leader's side of a join (learner, then voter in place of the slot's old id);
//! * `write`: the write path (group commit, pipelined rounds, forwarding to the leader, expiry);
//! * `read`: the read path (read-index rounds, the leader's and followers' read leases);
//! * `peer`: the listener that answers the other nodes;
//! * `snapshot`: snapshots triggered by the log's size.
//!
//! Every client-facing wait is bounded by [`ClusterConfig::op_timeout`]; nothing here may hang a
//! connection or panic on a peer's input.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_store::{
    ArithOutcome, ArithReq, DeleteOpts, DeleteOutcome, Expiry, GetOpts, ItemRef, MetaInfo,
    MetaOrder, Store, StoreOutcome, StoreReq,
};
use openraft::{BasicNode, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::batch::Coalescer;
use crate::command::{Command, Outcome, Packer};
use crate::hooks::{JoinHooks, Partition};
use crate::lease::LeaseGate;
use crate::network::{NetworkFactory, Peers};
use crate::redis::{RedisOp, RedisOutcome, RedisReplica};
use crate::status::{ClusterStatus, MemberStatus};
use crate::storage::{LogStore, Progress, StateMachine};
use crate::{slot_of, ClusterConfig, ClusterError, NodeId, ReadMode, TypeConfig};

mod join;
mod peer;
mod read;
mod snapshot;
mod startup;
mod write;

use read::{FollowerLease, Lease};

/// Resolves once the node is stopping, at once if it already is. Every task's select arm on the
/// stop signal goes through this: a receiver subscribed after the stop was sent has already seen
/// the value, so `changed()` alone would wait for ever (a peer connection accepted while the node
/// stopped outlived it that way).
pub(super) async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
use write::Proposal;

/// A running cluster node; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ClusterConfig,
    id: NodeId,
    addr: String,
    local_addr: SocketAddr,
    raft: Raft<TypeConfig>,
    metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    store: Arc<Store>,
    /// The Redis keyspace's replica, when the node serves Redis.
    redis: Option<Arc<RedisReplica>>,
    progress: Arc<Progress>,
    applied_rx: watch::Receiver<u64>,
    log: LogStore,
    peers: Peers,
    /// Connections for follower read-index requests, one set per thread ([`Inner::read_peer`]).
    read_peers: Mutex<HashMap<std::thread::ThreadId, Peers>>,
    partition: Partition,
    /// Whether this node answers clients: a voter ([`watch_ready`]) that has caught up
    /// ([`Inner::caught_up`]).
    ready: AtomicBool,
    /// Set once by [`startup`]: after this node became a voter, it applied everything the leader
    /// had committed when asked (a read-index round through the leader).
    caught_up: watch::Sender<bool>,
    leader_reads: Coalescer,
    follower_reads: Coalescer,
    /// The leader's read lease, if it has one ([`Lease`]).
    lease: parking_lot::RwLock<Option<Lease>>,
    /// Follower read leases: as leader, the table of holders ([`crate::lease`]).
    gate: Arc<LeaseGate>,
    /// As follower, the read lease this node holds from the leader, if any.
    follower_lease: Mutex<Option<FollowerLease>>,
    /// One lease request at a time; `lease_renewing` marks a renewal in the background.
    lease_lock: tokio::sync::Mutex<()>,
    lease_renewing: AtomicBool,
    /// After a refused or failed lease request, reads use read-index rounds until then.
    lease_retry_at: Mutex<Option<Instant>>,
    lease_reads: AtomicU64,
    read_rounds: AtomicU64,
    write_rounds: AtomicU64,
    write_rounds_pipelined: AtomicU64,
    /// Redis pops sent again after an unknown outcome.
    pops_resent: AtomicU64,
    /// Client writes waiting for the proposer ([`propose_loop`]).
    proposals: mpsc::UnboundedSender<Proposal>,
    join_lock: tokio::sync::Mutex<()>,
    /// Test hooks (cargo feature `test-hooks`; an empty struct without it).
    hooks: JoinHooks,
    /// As leader, the id that most recently asked to join, per slot: an older joiner of the same
    /// slot (its process died mid-join and was restarted) gives way at once instead of holding
    /// the join lock until its catch-up times out.
    joiners: Mutex<HashMap<u16, NodeId>>,
    /// Last successful reply from each peer address (leader's quorum check).
    contact: Arc<Mutex<HashMap<String, Instant>>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A connection's read fence: whether a read barrier that began after every request the
/// connection currently holds was received has completed. Reads of one received batch share it
/// (the connection invalidates it when it receives more input and after each of its writes).
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadFence {
    valid: bool,
}

impl ReadFence {
    /// Require a new barrier for the next read.
    pub fn invalidate(&mut self) {
        self.valid = false;
    }

    pub fn is_valid(&self) -> bool {
        self.valid
    }
}

fn new_id(slot: u16) -> NodeId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut g = nanos
        ^ (u64::from(std::process::id()) << 29)
        ^ COUNTER
            .fetch_add(1, Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    g &= (1 << 48) - 1;
    if g == 0 {
        g = 1;
    }
    (u64::from(slot) << 48) | g
}

/// Whether `id` is a voter of `mem` and `mem` is uniform, not a joint configuration half-way
/// through a membership change.
fn settled_in(mem: &openraft::Membership<NodeId, BasicNode>, id: NodeId) -> bool {
    mem.get_joint_config().len() == 1 && mem.voter_ids().any(|v| v == id)
}

fn raft_err<E: std::fmt::Display>(e: E) -> ClusterError {
    ClusterError::Raft(e.to_string())
}

impl Cluster {
    /// Bind the peer listener, start Raft and the startup driver (bootstrap or join). Returns at
    /// once; the node answers clients when [`Cluster::is_ready`] (see [`Cluster::wait_ready`]).
    pub async fn start(cfg: ClusterConfig) -> Result<Cluster, ClusterError> {
        let listen: SocketAddr = match cfg.listen {
            Some(a) => a,
            None => {
                let a = cfg.peers.get(&cfg.slot).ok_or_else(|| {
                    ClusterError::Config(format!("slot {} is not in the peer list", cfg.slot))
                })?;
                tokio::net::lookup_host(a.as_str())
                    .await
                    .map_err(|e| ClusterError::Config(format!("{a}: {e}")))?
                    .next()
                    .ok_or_else(|| ClusterError::Config(format!("{a}: no address")))?
            }
        };
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| ClusterError::Io(format!("bind {listen}: {e}")))?;
        Self::start_on(cfg, listener).await
    }

    /// Like [`Cluster::start`], on an already bound listener (tests bind port 0 first, so that
    /// every node knows every address before any starts). The listener's address is advertised.
    pub async fn start_with_listener(
        mut cfg: ClusterConfig,
        listener: std::net::TcpListener,
    ) -> Result<Cluster, ClusterError> {
        let a = listener
            .local_addr()
            .map_err(|e| ClusterError::Io(e.to_string()))?;
        cfg.peers.insert(cfg.slot, a.to_string());
        listener
            .set_nonblocking(true)
            .map_err(|e| ClusterError::Io(e.to_string()))?;
        let listener =
            TcpListener::from_std(listener).map_err(|e| ClusterError::Io(e.to_string()))?;
        Self::start_on(cfg, listener).await
    }

    async fn start_on(
        mut cfg: ClusterConfig,
        listener: TcpListener,
    ) -> Result<Cluster, ClusterError> {
        cfg.store.reads_mutate = false;
        let local_addr = listener
            .local_addr()
            .map_err(|e| ClusterError::Io(e.to_string()))?;
        let addr = match cfg.peers.get(&cfg.slot) {
            Some(a) if !a.ends_with(":0") => a.clone(),
            _ => local_addr.to_string(),
        };
        cfg.peers.insert(cfg.slot, addr.clone());
        let id = new_id(cfg.slot);

        let rcfg = openraft::Config {
            cluster_name: "keel-cache".into(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: cfg.election_min_ms,
            election_timeout_max: cfg.election_max_ms,
            max_payload_entries: 2048,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_logs.max(1)),
            max_in_snapshot_log_to_keep: cfg.snapshot_keep_logs,
            // Big chunks: a snapshot of 100 000 keys (~14 MiB) goes in two round trips.
            snapshot_max_chunk_size: 8 << 20,
            // A learner counts as caught up (add_learner returns) within this many entries.
            replication_lag_threshold: 5_000,
            install_snapshot_timeout: 10_000,
            ..Default::default()
        };
        let rcfg = Arc::new(
            rcfg.validate()
                .map_err(|e| ClusterError::Config(e.to_string()))?,
        );

        let store = Arc::new(Store::new(cfg.store.clone()));
        let (applied_tx, applied_rx) = watch::channel(0u64);
        let progress = Arc::new(Progress::new(applied_tx));
        let log = LogStore::new(progress.clone());
        let gate = Arc::new(LeaseGate::default());
        let redis = cfg.redis.clone().map(|c| Arc::new(RedisReplica::new(c)));
        let sm = StateMachine::new(store.clone(), redis.clone(), progress.clone(), gate.clone());
        let partition = Partition::default();
        let contact: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let peers = Peers::new(partition.clone(), contact.clone());
        let net = NetworkFactory {
            peers: peers.clone(),
            gate: gate.clone(),
        };
        let raft = Raft::new(id, rcfg, net, log.clone(), sm)
            .await
            .map_err(raft_err)?;
        let metrics = raft.metrics();
        let (stop, _) = watch::channel(false);
        let (proposals, proposals_rx) = mpsc::unbounded_channel();

        let inner = Arc::new(Inner {
            cfg,
            id,
            addr,
            local_addr,
            raft,
            metrics,
            store,
            redis,
            progress,
            applied_rx,
            log,
            peers,
            read_peers: Mutex::default(),
            partition,
            ready: AtomicBool::new(false),
            caught_up: watch::channel(false).0,
            leader_reads: Coalescer::default(),
            follower_reads: Coalescer::default(),
            lease: parking_lot::RwLock::new(None),
            gate,
            follower_lease: Mutex::new(None),
            lease_lock: tokio::sync::Mutex::new(()),
            lease_renewing: AtomicBool::new(false),
            lease_retry_at: Mutex::new(None),
            lease_reads: AtomicU64::new(0),
            read_rounds: AtomicU64::new(0),
            write_rounds: AtomicU64::new(0),
            write_rounds_pipelined: AtomicU64::new(0),
            pops_resent: AtomicU64::new(0),
            proposals,
            join_lock: tokio::sync::Mutex::new(()),
            hooks: JoinHooks::default(),
            joiners: Mutex::new(HashMap::new()),
            contact,
            stop,
            tasks: Mutex::new(Vec::new()),
        });
        let tasks = vec![
            tokio::spawn(peer::accept_loop(inner.clone(), listener)),
            tokio::spawn(startup::startup(inner.clone())),
            tokio::spawn(startup::watch_ready(inner.clone())),
            tokio::spawn(write::expiry_loop(inner.clone())),
            tokio::spawn(snapshot::log_bytes_loop(inner.clone())),
            tokio::spawn(write::propose_loop(inner.clone(), proposals_rx)),
            tokio::spawn(read::heartbeat_loop(inner.clone())),
        ];
        inner.tasks.lock().extend(tasks);
        Ok(Cluster { inner })
    }

    /// The replica's store (reads go here after the read barrier; stats read it directly).
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The address peers reach this node at.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    pub fn read_mode(&self) -> ReadMode {
        self.inner.cfg.read_mode
    }

    /// Whether this node answers clients: it is a voter of the cluster and, since it became one,
    /// has applied every entry the leader had committed when this node asked it (a read-index
    /// round through the leader, so a restarted node holds every write acknowledged before it
    /// finished joining).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Relaxed)
    }

    /// Wait until ready, at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        let mut m = self.inner.metrics.clone();
        loop {
            if self.is_ready() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClusterError::Timeout("ready"));
            }
            // The ready flag follows metrics; poll too in case the flag flipped between checks.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(20)), m.changed()).await;
        }
    }

    /// Replicate one write and return its outcome (applied on a majority, and on the leader).
    /// Writes queued while the node's previous round is in flight share one log entry.
    pub fn write(
        &self,
        cmd: Command,
    ) -> impl std::future::Future<Output = Result<Outcome, ClusterError>> {
        self.inner.write(cmd)
    }

    /// Replicate a run of writes (a connection's pipelined requests, encoded where they were
    /// parsed) as one queued unit: they enter the log together, in this order, and the outcomes
    /// come back in the same order (or one error for all). The same as [`Cluster::write`] for
    /// each, queued back to back, but one hand-off to the proposer instead of one per write.
    pub fn write_many(
        &self,
        cmds: Packer,
    ) -> impl std::future::Future<Output = Result<Vec<Outcome>, ClusterError>> {
        self.inner.write_many(cmds)
    }

    /// Linearizable read barrier: after `Ok`, the local store reflects every write acknowledged
    /// before this call began. In [`ReadMode::Local`] only checks readiness.
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        self.inner.read_barrier().await
    }

    /// The read barrier, skipped while `fence` is valid (then only readiness is checked);
    /// validates the fence after taking one.
    async fn fenced_barrier(&self, fence: &mut ReadFence) -> Result<(), ClusterError> {
        if fence.valid {
            if !self.is_ready() {
                return Err(ClusterError::NotReady);
            }
        } else {
            self.read_barrier().await?;
            fence.valid = true;
        }
        Ok(())
    }

    /// The Redis keyspace's replica, when the node serves Redis.
    pub fn redis(&self) -> Option<&Arc<RedisReplica>> {
        self.inner.redis.as_ref()
    }

    /// Replicate a Redis entry ([`RedisOp`] with its argument vectors, see
    /// [`crate::redis::pack_argvs`]) and return its outcome. Queued like [`Cluster::write`]:
    /// a connection's entries enter the log in the order it called this.
    pub fn redis_write(
        &self,
        op: RedisOp,
        args: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<RedisOutcome, ClusterError>> {
        let w = self.write(Command::Redis { op, args });
        async move {
            match w.await? {
                Outcome::Redis(o) => Ok(o),
                o => Err(ClusterError::Remote(format!("unexpected outcome {o:?}"))),
            }
        }
    }

    /// Replicate a [`RedisOp::Pop`] and return its outcome. While the outcome is unknown (the
    /// entry may be in the log: see [`ClusterError::certainly_not_applied`]), the same entry is
    /// sent again, every 20-200 ms for up to [`crate::redis::pops::RESEND_FOR`], and the log
    /// applies it at most once, so the answer is the pop's real outcome. The error is returned
    /// if the outcome stays unknown that long or the node is stopping.
    pub async fn redis_pop(
        &self,
        op: RedisOp,
        args: Vec<u8>,
    ) -> Result<RedisOutcome, ClusterError> {
        let mut unknown_since: Option<Instant> = None;
        let mut pause = Duration::from_millis(20);
        let stop = self.inner.stop.subscribe();
        loop {
            let e = match self.redis_write(op.clone(), args.clone()).await {
                Ok(o) => return Ok(o),
                Err(e) => e,
            };
            if unknown_since.is_none() && e.certainly_not_applied() {
                return Err(e);
            }
            let since = *unknown_since.get_or_insert_with(Instant::now);
            if *stop.borrow() || since.elapsed() >= crate::redis::pops::RESEND_FOR {
                return Err(e);
            }
            tracing::debug!(error = %e, "pop outcome unknown: sending it again");
            self.inner.pops_resent.fetch_add(1, Relaxed);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// A `PUBSUB` question answered by every member that answers within 300 ms (this node
    /// included): the answers, one per node.
    pub async fn pubsub_everywhere(
        &self,
        q: crate::redis::PubsubQuery,
    ) -> Vec<crate::redis::PubsubAnswer> {
        let mut out: Vec<crate::redis::PubsubAnswer> = self
            .inner
            .redis
            .as_ref()
            .and_then(|r| r.pubsub_local(&q))
            .into_iter()
            .collect();
        let addrs: Vec<String> = {
            let m = self.inner.metrics.borrow();
            m.membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != self.inner.id)
                .map(|(_, n)| n.addr.clone())
                .collect()
        };
        let mut calls = tokio::task::JoinSet::new();
        for a in addrs {
            let peer = self.inner.peers.get(&a);
            let rpc = crate::transport::Rpc::Pubsub(q.clone());
            calls.spawn(async move { peer.call(&rpc, Duration::from_millis(300)).await });
        }
        while let Some(r) = calls.join_next().await {
            if let Ok(Ok(crate::transport::Reply::Pubsub(Some(a)))) = r {
                out.push(a);
            }
        }
        out
    }

    /// A linearizable Redis read: after the read barrier (skipped while `fence` is valid),
    /// `f` runs on the local keyspace under its lock, with the replicated clock.
    pub async fn redis_read<R>(
        &self,
        fence: &mut ReadFence,
        f: impl FnOnce(&mut redis_store::Keyspace, u64) -> R,
    ) -> Result<R, ClusterError> {
        let Some(redis) = self.inner.redis.as_ref() else {
            return Err(ClusterError::Config(
                "this node does not serve Redis".into(),
            ));
        };
        self.fenced_barrier(fence).await?;
        let mut ks = redis.keyspace().lock();
        // Read under the lock: the time of the entries the keyspace shows.
        let now_ms = redis.now_ms();
        Ok(f(&mut ks, now_ms))
    }

    /// A read (`f` sees the item while locked). Mutating options go through the log.
    pub async fn get<R>(
        &self,
        key: &[u8],
        opts: GetOpts,
        f: impl FnOnce(ItemRef<'_>) -> R,
    ) -> Result<Option<R>, ClusterError> {
        self.get_fenced(&mut ReadFence::default(), key, opts, None, |it, _| f(it))
            .await
    }

    /// A read that reuses `fence` (skips the barrier while it is valid, and validates it after
    /// taking one). `order`: a meta get (`mg`), applied with [`Store::get_meta`] in the request's
    /// flag order; `f` also gets what the store reported ([`MetaInfo`]). Mutating options go
    /// through the log (and invalidate the fence).
    pub async fn get_fenced<R>(
        &self,
        fence: &mut ReadFence,
        key: &[u8],
        opts: GetOpts,
        order: Option<MetaOrder>,
        f: impl FnOnce(ItemRef<'_>, MetaInfo) -> R,
    ) -> Result<Option<R>, ClusterError> {
        if Command::get_mutates(&opts) {
            fence.invalidate();
            let info = |item: &crate::ItemCopy| {
                if order.is_some() {
                    item.info()
                } else {
                    MetaInfo {
                        created: false,
                        prior_expires_at: item.expires_at,
                    }
                }
            };
            return match self.write(Command::get_mut(key, &opts, order)).await? {
                Outcome::Item(Some(item)) => Ok(Some(f(item.as_ref(), info(&item)))),
                _ => Ok(None),
            };
        }
        self.fenced_barrier(fence).await?;
        let now = self.inner.read_now();
        let store = &self.inner.store;
        Ok(match order {
            Some(order) => store.get_meta(key, now, opts, order, f),
            None => store.get(key, now, opts, |it| {
                let prior = it.expires_at;
                f(
                    it,
                    MetaInfo {
                        created: false,
                        prior_expires_at: prior,
                    },
                )
            }),
        })
    }

    pub async fn store_item(&self, req: &StoreReq<'_>) -> Result<StoreOutcome, ClusterError> {
        Ok(self.write(Command::from_store(req)).await?.to_store())
    }

    pub async fn remove(&self, key: &[u8]) -> Result<(), ClusterError> {
        self.write(Command::Remove { key: key.to_vec() })
            .await
            .map(|_| ())
    }

    pub async fn delete(
        &self,
        key: &[u8],
        opts: DeleteOpts,
    ) -> Result<DeleteOutcome, ClusterError> {
        Ok(self
            .write(Command::from_delete(key, &opts))
            .await?
            .to_delete())
    }

    pub async fn arith(&self, req: &ArithReq<'_>) -> Result<ArithOutcome, ClusterError> {
        Ok(self
            .write(Command::from_arith(req, None, false))
            .await?
            .to_arith()
            .0)
    }

    /// incr/decr/`ma` with memcached's exact semantics ([`Store::arith_meta`]): `order` for a meta
    /// `ma` (`None`: the order of [`Store::arith`]), `referenced` when an unwritten reply of the
    /// connection still holds the item.
    pub async fn arith_meta(
        &self,
        req: &ArithReq<'_>,
        order: Option<MetaOrder>,
        referenced: bool,
    ) -> Result<(ArithOutcome, MetaInfo), ClusterError> {
        Ok(self
            .write(Command::from_arith(req, order, referenced))
            .await?
            .to_arith())
    }

    pub async fn touch(&self, key: &[u8], expires_at: Expiry) -> Result<bool, ClusterError> {
        Ok(matches!(
            self.write(Command::Touch {
                key: key.to_vec(),
                expires_at
            })
            .await?,
            Outcome::Touched(true)
        ))
    }

    pub async fn flush_all(&self, delay: u64) -> Result<(), ClusterError> {
        self.write(Command::FlushAll { delay }).await.map(|_| ())
    }

    /// This node's view of the cluster (for `keel status` and `stats`).
    pub fn status(&self) -> ClusterStatus {
        self.inner.status()
    }

    /// Test hook: cut this node off from every peer (both directions) or heal it.
    #[cfg(feature = "test-hooks")]
    pub fn set_isolated(&self, on: bool) {
        self.inner.partition.set(on);
    }

    /// Test hook: as leader, let the next join fail after the new node was added as a learner
    /// and before it was made a voter (as when leadership moves between the two steps).
    #[cfg(feature = "test-hooks")]
    pub fn fail_next_promotion(&self) {
        self.inner.hooks.arm_fail_promotion();
    }

    /// Test hook: as leader, never consider the next joining node caught up (as when it died
    /// while it was catching up), so its join waits until it times out or is superseded.
    #[cfg(feature = "test-hooks")]
    pub fn stall_next_catch_up(&self) {
        self.inner.hooks.arm_stall_catch_up();
    }

    /// Test hook: as leader, abandon the next membership change of a join half-way, once its
    /// joint configuration is in the log (as when the leader loses office between the steps).
    #[cfg(feature = "test-hooks")]
    pub fn stop_next_promotion_half_way(&self) {
        self.inner.hooks.arm_half_promotion();
    }

    /// Number of log entries held in memory.
    pub fn log_len(&self) -> usize {
        self.inner.log.len()
    }

    /// Approximate bytes (keys, values, per-entry overhead) of the log entries held in memory.
    pub fn log_bytes(&self) -> u64 {
        self.inner.log.bytes()
    }

    /// This node's snapshot figures: builds, installs, the current snapshot's index and size,
    /// the apply pause of the last build.
    pub fn snapshot_info(&self) -> crate::SnapshotInfo {
        self.inner.progress.snap.lock().clone()
    }

    /// Build a snapshot now and purge the log up to it (operators, tests); returns once the
    /// snapshot is built (bounded by `timeout`).
    pub async fn snapshot_now(
        &self,
        timeout: Duration,
    ) -> Result<crate::SnapshotInfo, ClusterError> {
        let before = self.inner.progress.snap.lock().built;
        self.inner
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(raft_err)?;
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.snapshot_info();
            if info.built > before {
                return Ok(info);
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout("snapshot"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stop Raft, the listener and every task. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.inner.raft.shutdown()).await;
        let tasks: Vec<_> = std::mem::take(&mut *self.inner.tasks.lock());
        for t in tasks {
            t.abort();
        }
        self.inner.ready.store(false, Relaxed);
    }
}

impl Inner {
    fn op_deadline(&self) -> Instant {
        Instant::now() + self.cfg.op_timeout
    }

    /// `now` for local reads: the local clock, but never behind the replicated clock.
    fn read_now(&self) -> u64 {
        (self.cfg.clock)().max(self.progress.last_now.load(Relaxed))
    }

    fn is_leader(&self) -> bool {
        let m = self.metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    fn node_addr(&self, id: NodeId) -> Option<String> {
        self.metrics
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// The leader, waiting (bounded) for an election to finish.
    async fn wait_leader(&self, deadline: Instant) -> Result<NodeId, ClusterError> {
        let mut m = self.metrics.clone();
        loop {
            if let Some(l) = m.borrow().current_leader {
                return Ok(l);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClusterError::NoLeader);
            }
            if tokio::time::timeout(left, m.changed())
                .await
                .is_ok_and(|r| r.is_err())
            {
                return Err(ClusterError::Shutdown);
            }
        }
    }

    /// A leader that has not heard from a majority of voters within the election timeout may
    /// have been deposed: refuse at once instead of waiting for a commit that will not come.
    fn check_quorum(&self) -> Result<(), ClusterError> {
        let voters: Vec<(NodeId, String)> = {
            let m = self.metrics.borrow();
            let mem = m.membership_config.membership();
            mem.voter_ids()
                .filter_map(|v| mem.get_node(&v).map(|n| (v, n.addr.clone())))
                .collect()
        };
        let window = Duration::from_millis(self.cfg.election_max_ms);
        let contact = self.contact.lock();
        let fresh = voters
            .iter()
            .filter(|(v, addr)| {
                *v == self.id || contact.get(addr).is_some_and(|t| t.elapsed() < window)
            })
            .count();
        if fresh * 2 > voters.len() {
            Ok(())
        } else {
            Err(ClusterError::NoQuorum)
        }
    }

    fn status(&self) -> ClusterStatus {
        let m = self.metrics.borrow();
        let mem = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = mem.voter_ids().collect();
        let is_voter = voters.contains(&self.id);
        let role = match m.state {
            _ if m.running_state.is_err() => "shutdown",
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Shutdown => "shutdown",
            _ if !is_voter => "learner",
            _ => "follower",
        };
        let commit = self.progress.committed.load(Relaxed);
        let members = mem
            .nodes()
            .map(|(id, n)| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned())
                    .map(|l| l.map(|l| l.index + 1).unwrap_or(0))
                    .or(if *id == self.id && m.state == ServerState::Leader {
                        m.last_log_index.map(|i| i + 1)
                    } else {
                        None
                    });
                MemberStatus {
                    id: *id,
                    slot: slot_of(*id),
                    addr: n.addr.clone(),
                    voter: voters.contains(id),
                    matched,
                    lag: matched.map(|x| commit.saturating_sub(x)),
                }
            })
            .collect();
        ClusterStatus {
            id: self.id,
            slot: self.cfg.slot,
            role: role.to_string(),
            ready: self.ready.load(Relaxed),
            leader: m.current_leader,
            leader_slot: m.current_leader.map(slot_of),
            term: m.current_term,
            commit,
            applied: self.progress.applied.load(Relaxed),
            last_log: m.last_log_index.map(|i| i + 1).unwrap_or(0),
            members,
            log_entries: self.log.len() as u64,
            snapshot_index: self.progress.snap.lock().index,
            read_rounds: self.read_rounds.load(Relaxed),
            lease_reads: self.lease_reads.load(Relaxed),
            write_rounds: self.write_rounds.load(Relaxed),
            write_rounds_pipelined: self.write_rounds_pipelined.load(Relaxed),
            pops_resent: self.pops_resent.load(Relaxed),
        }
    }
}
