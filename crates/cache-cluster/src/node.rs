//! One running cluster node: the Raft instance, the peer listener, the startup (bootstrap or
//! join) driver, the write path (local or forwarded to the leader), the batched read barrier and
//! the typed item operations the cache server's `Ctx` calls.
//!
//! Every client-facing wait is bounded by [`ClusterConfig::op_timeout`]; nothing here may hang a
//! connection or panic on a peer's input.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_store::{
    ArithOutcome, ArithReq, DeleteOpts, DeleteOutcome, Expiry, GetOpts, ItemRef, MetaInfo,
    MetaOrder, Store, StoreOutcome, StoreReq,
};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::batch::Coalescer;
use crate::command::{Command, Outcome, Packer, Request};
use crate::lease::LeaseGate;
use crate::network::{NetworkFactory, Peers};
use crate::status::{ClusterStatus, MemberStatus};
use crate::storage::{LogStore, Progress, StateMachine};
use crate::transport::{decode, encode, read_frame, writer_loop, HelloInfo, Reply, Rpc, WireError};
use crate::{slot_of, ClusterConfig, ClusterError, NodeId, ReadMode, TypeConfig};

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
    progress: Arc<Progress>,
    applied_rx: watch::Receiver<u64>,
    log: LogStore,
    peers: Peers,
    /// Connections for follower read-index requests, one set per thread ([`Inner::read_peer`]).
    read_peers: Mutex<HashMap<std::thread::ThreadId, Peers>>,
    isolated: Arc<AtomicBool>,
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
    /// Client writes waiting for the proposer ([`propose_loop`]).
    proposals: mpsc::UnboundedSender<Proposal>,
    join_lock: tokio::sync::Mutex<()>,
    /// Test hook ([`Cluster::fail_next_promotion`]): as leader, fail the next join after it
    /// added the learner and before the membership change.
    fail_promotion: AtomicBool,
    /// Test hook ([`Cluster::stall_next_catch_up`]): as leader, never see the next joiner as
    /// caught up.
    stall_catch_up: AtomicBool,
    /// Test hook ([`Cluster::stop_next_promotion_half_way`]): as leader, abandon the next
    /// membership change once its joint configuration is in the log.
    half_promotion: AtomicBool,
    /// As leader, the id that most recently asked to join, per slot: an older joiner of the same
    /// slot (its process died mid-join and was restarted) gives way at once instead of holding
    /// the join lock until its catch-up times out.
    joiners: Mutex<HashMap<u16, NodeId>>,
    /// Last successful reply from each peer address (leader's quorum check).
    contact: Arc<Mutex<HashMap<String, Instant>>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A leader's read lease: a read-index round that began at `until - read_lease` confirmed with a
/// majority that this node led `term`. Every voter that answered refuses to vote for anyone else
/// for `election_max_ms` after that heartbeat (openraft's follower lease), and this node refuses
/// votes itself until `until` (see `handle`), so no other leader can exist before `until`: the
/// leader's applied index then covers every write acknowledged so far (a write is acknowledged
/// after the leader applied it; writes of earlier terms are covered by `target`, the round's own
/// read index), and may serve as the read index without another round.
#[derive(Clone, Copy, Debug)]
struct Lease {
    term: u64,
    until: Instant,
    target: u64,
}

/// A follower's read lease ([`crate::lease`]): granted by `leader` in `term`, usable until
/// `until` (counted from before the request, [`crate::lease::follower_lease`]) once the replica
/// has applied `index`; renewed in the background once half of `read_lease` has passed.
#[derive(Clone, Copy, Debug)]
struct FollowerLease {
    leader: NodeId,
    term: u64,
    until: Instant,
    index: u64,
}

/// One client write, or a connection's run of writes ([`Cluster::write_many`]), queued for the
/// proposer: the commands, when they were queued (the deadline is counted from there), and where
/// their outcomes go.
struct Proposal {
    cmds: Queued,
    queued: Instant,
}

enum Queued {
    One(Command, oneshot::Sender<Result<Outcome, ClusterError>>),
    Many(Packer, oneshot::Sender<Result<Vec<Outcome>, ClusterError>>),
}

impl Queued {
    fn payload_bytes(&self) -> usize {
        match self {
            Queued::One(c, _) => c.payload_bytes(),
            Queued::Many(p, _) => p.bytes(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Queued::One(..) => 1,
            Queued::Many(p, _) => p.len(),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Queued::One(_, tx) => tx.is_closed(),
            Queued::Many(_, tx) => tx.is_closed(),
        }
    }

    /// Move the commands to the end of `packer` and return where their outcomes go.
    fn split(self, packer: &mut Packer) -> Waiter {
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

    fn into_waiter(self) -> Waiter {
        match self {
            Queued::One(_, tx) => Waiter::One(tx),
            Queued::Many(p, tx) => Waiter::Many(p.len(), tx),
        }
    }
}

/// Where the outcomes of a round's commands go: one command's, or the next `n` commands'.
enum Waiter {
    One(oneshot::Sender<Result<Outcome, ClusterError>>),
    Many(usize, oneshot::Sender<Result<Vec<Outcome>, ClusterError>>),
}

impl Waiter {
    fn len(&self) -> usize {
        match self {
            Waiter::One(_) => 1,
            Waiter::Many(n, _) => *n,
        }
    }

    fn fail(self, e: ClusterError) {
        match self {
            Waiter::One(tx) => drop(tx.send(Err(e))),
            Waiter::Many(_, tx) => drop(tx.send(Err(e))),
        }
    }
}

/// Most commands one group-commit entry carries.
const GROUP_MAX_CMDS: usize = 4096;
/// Most payload bytes (keys and values) one group-commit entry carries (a single larger command
/// still goes alone).
const GROUP_MAX_BYTES: usize = 4 << 20;

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
        let sm = StateMachine::new(store.clone(), progress.clone(), gate.clone());
        let isolated = Arc::new(AtomicBool::new(false));
        let contact: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let peers = Peers::new(isolated.clone(), contact.clone());
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
            progress,
            applied_rx,
            log,
            peers,
            read_peers: Mutex::default(),
            isolated,
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
            proposals,
            join_lock: tokio::sync::Mutex::new(()),
            fail_promotion: AtomicBool::new(false),
            stall_catch_up: AtomicBool::new(false),
            half_promotion: AtomicBool::new(false),
            joiners: Mutex::new(HashMap::new()),
            contact,
            stop,
            tasks: Mutex::new(Vec::new()),
        });
        let tasks = vec![
            tokio::spawn(accept_loop(inner.clone(), listener)),
            tokio::spawn(startup(inner.clone())),
            tokio::spawn(watch_ready(inner.clone())),
            tokio::spawn(expiry_loop(inner.clone())),
            tokio::spawn(log_bytes_loop(inner.clone())),
            tokio::spawn(propose_loop(inner.clone(), proposals_rx)),
            tokio::spawn(heartbeat_loop(inner.clone())),
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
        if fence.valid {
            if !self.is_ready() {
                return Err(ClusterError::NotReady);
            }
        } else {
            self.read_barrier().await?;
            fence.valid = true;
        }
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
    #[doc(hidden)]
    pub fn set_isolated(&self, on: bool) {
        self.inner.isolated.store(on, Relaxed);
    }

    /// Test hook: as leader, let the next join fail after the new node was added as a learner
    /// and before it was made a voter (as when leadership moves between the two steps).
    #[doc(hidden)]
    pub fn fail_next_promotion(&self) {
        self.inner.fail_promotion.store(true, Relaxed);
    }

    /// Test hook: as leader, never consider the next joining node caught up (as when it died
    /// while it was catching up), so its join waits until it times out or is superseded.
    #[doc(hidden)]
    pub fn stall_next_catch_up(&self) {
        self.inner.stall_catch_up.store(true, Relaxed);
    }

    /// Test hook: as leader, abandon the next membership change of a join half-way, once its
    /// joint configuration is in the log (as when the leader loses office between the steps).
    #[doc(hidden)]
    pub fn stop_next_promotion_half_way(&self) {
        self.inner.half_promotion.store(true, Relaxed);
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

    async fn leader_write(
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
    fn write(
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

    fn write_many(
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
    async fn replicate(
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
                    && !self.isolated.load(Relaxed) =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(
                    ClusterError::NotLeader(_)
                    | ClusterError::Unreachable(_)
                    | ClusterError::NoLeader,
                ) => {
                    return Err(if self.isolated.load(Relaxed) {
                        ClusterError::NoQuorum
                    } else {
                        ClusterError::NoLeader
                    })
                }
                other => return other,
            }
        }
    }

    /// One leader read-index round: confirm leadership with a quorum; returns the number of
    /// entries the reader must have applied. Success renews the read lease.
    async fn leader_round(self: Arc<Self>) -> Result<u64, ClusterError> {
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
    fn lease_now(&self) -> Option<Lease> {
        let l = (*self.lease.read())?;
        let m = self.metrics.borrow();
        let leads = m.state == ServerState::Leader
            && m.current_leader == Some(self.id)
            && m.current_term == l.term;
        (leads && Instant::now() < l.until).then_some(l)
    }

    /// The read index from the read lease alone, if it holds (no round trip).
    fn lease_read_index(&self) -> Option<u64> {
        let l = self.lease_now()?;
        // Everything acknowledged so far is applied here (or covered by the lease's own read
        // index); checked again after reading, so the index was taken inside the lease.
        let index = l.target.max(*self.applied_rx.borrow());
        self.lease_now().map(|_| index)
    }

    async fn leader_read_index(self: &Arc<Self>) -> Result<u64, ClusterError> {
        if let Some(index) = self.lease_read_index() {
            return Ok(index);
        }
        let me = self.clone();
        self.leader_reads
            .wait(move || me.clone().leader_round())
            .await
    }

    async fn follower_round(self: Arc<Self>) -> Result<u64, ClusterError> {
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
    fn read_peer(&self, addr: &str) -> Arc<crate::transport::Peer> {
        let thread = std::thread::current().id();
        let mut map = self.read_peers.lock();
        map.entry(thread)
            .or_insert_with(|| Peers::new(self.isolated.clone(), self.contact.clone()))
            .get(addr)
    }

    async fn read_barrier(self: &Arc<Self>) -> Result<(), ClusterError> {
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
                    && !self.isolated.load(Relaxed) =>
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
    fn follower_lease_target(self: &Arc<Self>) -> Option<(u64, Instant)> {
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
    async fn acquire_lease(self: &Arc<Self>) -> Option<(u64, Instant)> {
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
    async fn request_lease(&self) -> Result<(), ClusterError> {
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
    fn try_grant(&self, id: NodeId, term: u64) -> Option<Result<u64, WireError>> {
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

    /// Wait until this node is ready (a voter that has caught up), at most until `deadline`.
    async fn until_ready(&self, deadline: Instant) -> Result<(), ClusterError> {
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

    async fn wait_applied(&self, target: u64, deadline: Instant) -> Result<(), ClusterError> {
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

    /// The last step of startup: apply everything the leader has committed, then open for
    /// clients. Being a voter is not enough: the membership entry that made this node one takes
    /// effect when it is appended, and the entries before it (a snapshot and the log tail: all
    /// the data) are applied only once this node learns they are committed, with a later
    /// append or heartbeat. The commit index this node knows may lag far behind, so the target is
    /// the leader's, fixed by a read-index round (as for a linearizable read), asked for after
    /// this node became a voter. Retried until it succeeds or the node stops: a node that
    /// cannot reach a leader has nothing to serve.
    async fn catch_up(self: &Arc<Self>) {
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
                _ = stop.changed() => return,
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
    fn settled(&self) -> bool {
        settled_in(
            self.metrics.borrow().membership_config.membership(),
            self.id,
        )
    }

    fn hello(&self) -> HelloInfo {
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

    /// Leader side of a join: add the new id as a learner (it catches up), then make it a voter
    /// in place of every older id of the same slot.
    async fn handle_join(self: &Arc<Self>, id: NodeId, addr: String) -> Result<(), ClusterError> {
        if !self.is_leader() {
            return Err(ClusterError::NotLeader(
                self.metrics.borrow().current_leader,
            ));
        }
        let slot = slot_of(id);
        self.joiners.lock().insert(slot, id);
        let superseded = || self.joiners.lock().get(&slot) != Some(&id);
        let gave_way =
            || ClusterError::Remote("join: a newer node of the same slot is joining".into());
        let _g = self.join_lock.lock().await;
        if superseded() {
            return Err(gave_way());
        }
        // The voters to keep: the configuration being moved to (the last one of a joint
        // configuration, so a voter that a stopped change was replacing is not kept).
        let (voters, settled) = {
            let m = self.metrics.borrow();
            let mem = m.membership_config.membership();
            (
                mem.get_joint_config().last().cloned().unwrap_or_default(),
                settled_in(mem, id),
            )
        };
        if settled {
            return Ok(());
        }
        // A node asks again while it is a learner or its promotion stopped half-way (a joint
        // configuration left when a leader lost office between the two steps): adding an
        // existing learner changes nothing, and the membership change below completes either.
        info!(
            node = self.id,
            joiner = id,
            slot,
            "adding a joining node as a learner"
        );
        let t = self.cfg.join_timeout;
        let deadline = Instant::now() + t;
        let added =
            match tokio::time::timeout(t, self.raft.add_learner(id, BasicNode { addr }, false))
                .await
            {
                Err(_) => return Err(ClusterError::Timeout("join: adding the learner")),
                Ok(Err(e)) => return Err(raft_err(e)),
                Ok(Ok(r)) => r.log_id.index,
            };
        // Catch-up: the learner has everything up to the entry that added it. Given up at once
        // when a newer node of the same slot asks to join (this one died meanwhile).
        let stall = self.stall_catch_up.swap(false, Relaxed);
        let mut m = self.metrics.clone();
        loop {
            let caught_up = {
                let mm = m.borrow_and_update();
                let matched = mm
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned())
                    .flatten();
                matched.is_some_and(|l| l.index >= added)
            };
            if caught_up && !stall {
                break;
            }
            if superseded() {
                return Err(gave_way());
            }
            if !self.is_leader() {
                return Err(ClusterError::NotLeader(
                    self.metrics.borrow().current_leader,
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClusterError::Timeout("join: learner catch-up"));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), m.changed()).await;
        }
        if self.fail_promotion.swap(false, Relaxed) {
            return Err(ClusterError::Timeout("join: membership change (test hook)"));
        }
        let new: BTreeSet<NodeId> = voters
            .into_iter()
            .filter(|v| slot_of(*v) != slot)
            .chain([id])
            .collect();
        info!(node = self.id, joiner = id, slot, voters = ?new, "learner caught up; making it a voter");
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let change = tokio::time::timeout(
            left,
            self.raft
                .change_membership(ChangeMembers::ReplaceAllVoters(new), false),
        );
        // Test hook: drop the change once its joint configuration is in the log.
        let abandon = self.half_promotion.swap(false, Relaxed);
        let mut m = self.metrics.clone();
        let joint_logged = async move {
            while m.changed().await.is_ok() {
                if m.borrow_and_update()
                    .membership_config
                    .membership()
                    .get_joint_config()
                    .len()
                    > 1
                {
                    return;
                }
            }
            std::future::pending().await
        };
        let r = tokio::select! {
            biased;
            _ = joint_logged, if abandon => return Err(ClusterError::Timeout("join: membership change (test hook: half-way)")),
            r = change => r,
        };
        match r {
            Err(_) => return Err(ClusterError::Timeout("join: membership change")),
            Ok(Err(e)) => return Err(raft_err(e)),
            Ok(Ok(_)) => {}
        }
        // Learners of this slot left by joins that never finished (their processes are gone):
        // drop them, so the leader stops replicating to them and `keel status` lists members only.
        let stale: BTreeSet<NodeId> = {
            let m = self.metrics.borrow();
            let mem = m.membership_config.membership();
            let voters: BTreeSet<NodeId> = mem.voter_ids().collect();
            mem.nodes()
                .map(|(n, _)| *n)
                .filter(|n| slot_of(*n) == slot && *n != id && !voters.contains(n))
                .collect()
        };
        if !stale.is_empty() {
            info!(node = self.id, stale = ?stale, "removing learners of joins that never finished");
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                self.raft
                    .change_membership(ChangeMembers::RemoveNodes(stale), false),
            )
            .await;
        }
        Ok(())
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
        }
    }
}

/// Keep `ready` in step with membership: ready while this id is a voter, once it has caught up
/// ([`Inner::catch_up`]).
async fn watch_ready(inner: Arc<Inner>) {
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
            _ = stop.changed() => break,
        }
    }
    inner.ready.store(false, Relaxed);
}

/// Send a heartbeat when a commit index held back for a lease holder may now go out (else
/// followers would learn it only with the next append or heartbeat).
async fn heartbeat_loop(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    loop {
        tokio::select! {
            _ = inner.gate.heartbeat_wanted() => {}
            _ = stop.changed() => break,
        }
        if inner.is_leader() {
            let _ = inner.raft.trigger().heartbeat().await;
        }
    }
}

/// Startup: join an existing cluster, or bootstrap a new one when no peer is part of one. Ends
/// once this node is a voter of a settled (not joint) configuration: a node that was added as a
/// learner but not promoted (the leader lost office, or the change failed, between the two
/// steps) keeps asking the current leader until it is, instead of staying a learner that never
/// answers clients.
async fn startup(inner: Arc<Inner>) {
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

/// A round the leader's proposer appended and has not seen applied yet.
struct InFlight {
    rx: <<TypeConfig as openraft::RaftTypeConfig>::Responder as openraft::raft::responder::Responder<TypeConfig>>::Receiver,
    cmd: Arc<Command>,
    txs: Vec<Waiter>,
    deadline: Instant,
}

/// How an in-flight round ended.
enum RoundEnd {
    Done(Result<Outcome, ClusterError>),
    /// The Raft core was no longer leader when the round reached it: certainly not applied.
    Refused(Option<NodeId>),
}

impl Inner {
    /// Wait for the outcome of a round the leader appended, bounded by its deadline; a leader
    /// that loses contact with its majority meanwhile answers within the election timeout.
    /// Cancel-safe (the receiver is polled by reference).
    async fn round_end(&self, f: &mut InFlight) -> RoundEnd {
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
    async fn settle(&self, first: Option<(InFlight, RoundEnd)>, inflight: &mut VecDeque<InFlight>) {
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
    async fn front_ended(&self, f: InFlight, end: RoundEnd, inflight: &mut VecDeque<InFlight>) {
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
async fn propose_loop(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Proposal>) {
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
                    _ = stop.changed() => return,
                }
            }
            None => tokio::select! {
                p = rx.recv() => match p { Some(p) => p, None => return },
                _ = stop.changed() => return,
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
fn deliver(txs: Vec<Waiter>, r: Result<Outcome, ClusterError>) {
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
async fn expiry_loop(inner: Arc<Inner>) {
    let shards = inner.store.config().shards.max(1) as u32;
    let per_tick = shards.div_ceil(20).max(1);
    let mut next = 0u32;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = inner.stop.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
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

/// openraft triggers snapshots by entry count only; with large values the log could hold far
/// more than the store. Trigger one early when the entries since the last snapshot hold more than
/// [`ClusterConfig::snapshot_log_bytes`]. Woken by the log store when an append leaves the log
/// above the threshold (checks at most every 20 ms), and every 100 ms anyway.
async fn log_bytes_loop(inner: Arc<Inner>) {
    let alert = inner.log.alert().clone();
    let threshold =
        || crate::snapshot_trigger_bytes(inner.store.used_bytes(), inner.cfg.snapshot_log_bytes);
    alert.threshold.store(threshold(), Relaxed);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = inner.stop.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = alert.notify.notified() => {}
            _ = stop.changed() => return,
        }
        // Triggering while a build runs is harmless (openraft ignores it), and retrying covers
        // a trigger openraft dropped (e.g. while it was installing a snapshot).
        let snap = inner.metrics.borrow().snapshot;
        let limit = threshold();
        alert.threshold.store(limit, Relaxed);
        if inner.log.bytes_after(snap.map(|l| l.index)) > limit {
            let _ = inner.raft.trigger().snapshot().await;
        }
        // Rate limit: appends may keep signalling while the log stays above the threshold.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut stop = inner.stop.subscribe();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue }
            },
            _ = stop.changed() => return,
        };
        if inner.isolated.load(Relaxed) {
            drop(stream);
            continue;
        }
        tokio::spawn(serve_peer(inner.clone(), stream));
    }
}

/// Queue the reply to request `id` on a peer connection's writer (a connection already gone
/// drops it: the peer fails its waiters itself).
fn send_reply(out: &mpsc::UnboundedSender<Vec<u8>>, id: u64, reply: &Reply) {
    if let Ok(f) = encode(id, reply) {
        let _ = out.send(f);
    }
}

/// Serve one peer connection. AppendEntries are handled in arrival order by one task (a
/// replication stream is ordered); everything else runs concurrently.
async fn serve_peer(inner: Arc<Inner>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (mut r, w) = stream.into_split();
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(writer_loop(w, out_rx));
    let (ae_tx, mut ae_rx) = mpsc::unbounded_channel::<(
        u64,
        NodeId,
        openraft::raft::AppendEntriesRequest<TypeConfig>,
    )>();
    let (inner2, out2) = (inner.clone(), out_tx.clone());
    let appender = tokio::spawn(async move {
        while let Some((id, to, req)) = ae_rx.recv().await {
            let reply = if to != inner2.id {
                Reply::WrongNode
            } else {
                Reply::AppendEntries(
                    inner2
                        .raft
                        .append_entries(req)
                        .await
                        .map_err(|e| e.to_string()),
                )
            };
            send_reply(&out2, id, &reply);
        }
    });
    let mut stop = inner.stop.subscribe();
    let mut buf = Vec::new();
    loop {
        let id = tokio::select! {
            r = read_frame(&mut r, &mut buf) => match r { Ok(Some(id)) => id, _ => break },
            _ = stop.changed() => break,
        };
        if inner.isolated.load(Relaxed) {
            break;
        }
        let Ok(rpc) = decode::<Rpc>(&buf) else { break };
        match rpc {
            Rpc::AppendEntries(to, req) => {
                let _ = ae_tx.send((id, to, req));
            }
            // A follower's read index, answered at once while the read lease holds (a task of
            // its own would add a hop to every follower read).
            Rpc::ReadIndex if let Some(index) = inner.lease_read_index() => {
                send_reply(&out_tx, id, &Reply::ReadIndex(Ok(index)));
            }
            // Likewise a follower's read lease, granted inside the leader's own lease.
            Rpc::Lease { id: who, term } if let Some(r) = inner.try_grant(who, term) => {
                send_reply(&out_tx, id, &Reply::Lease(r));
            }
            rpc => {
                let (inner, out) = (inner.clone(), out_tx.clone());
                tokio::spawn(async move {
                    send_reply(&out, id, &handle(&inner, rpc).await);
                });
            }
        }
    }
    drop(ae_tx);
    drop(out_tx);
    let _ = appender.await;
    let _ = writer.await;
}

async fn handle(inner: &Arc<Inner>, rpc: Rpc) -> Reply {
    match rpc {
        Rpc::AppendEntries(to, _) | Rpc::Vote(to, _) | Rpc::InstallSnapshot(to, _)
            if to != inner.id =>
        {
            Reply::WrongNode
        }
        Rpc::AppendEntries(_, req) => Reply::AppendEntries(
            inner
                .raft
                .append_entries(req)
                .await
                .map_err(|e| e.to_string()),
        ),
        // While its read lease holds, a leader gives no vote: no other leader may exist before
        // the lease runs out (the followers that confirmed it refuse votes on their own).
        Rpc::Vote(..) if inner.lease_now().is_some() => {
            Reply::Vote(Err("leader lease holds".into()))
        }
        Rpc::Vote(_, req) => Reply::Vote(inner.raft.vote(req).await.map_err(|e| e.to_string())),
        Rpc::InstallSnapshot(_, req) => Reply::InstallSnapshot(
            inner
                .raft
                .install_snapshot(req)
                .await
                .map_err(|e| e.to_string()),
        ),
        Rpc::Write(cmd) => {
            // Only the leader executes forwarded writes; never forward again (no loops).
            Reply::Write(
                inner
                    .leader_write(cmd, inner.op_deadline())
                    .await
                    .map_err(WireError::from),
            )
        }
        Rpc::ReadIndex => {
            let r = if inner.is_leader() {
                inner.leader_read_index().await
            } else {
                Err(ClusterError::NotLeader(
                    inner.metrics.borrow().current_leader,
                ))
            };
            Reply::ReadIndex(r.map_err(WireError::from))
        }
        // No lease of its own right now: a read-index round renews it (and refuses if this node
        // does not lead), then grant.
        Rpc::Lease { id, term } => Reply::Lease(match inner.leader_read_index().await {
            Ok(_) => inner
                .try_grant(id, term)
                .unwrap_or(Err(WireError::Other("no leader lease".into()))),
            Err(e) => Err(WireError::from(e)),
        }),
        Rpc::Hello => Reply::Hello(inner.hello()),
        Rpc::Join { id, addr } => {
            let r = inner.handle_join(id, addr).await;
            match &r {
                Ok(()) => {}
                Err(e @ ClusterError::NotLeader(_)) => {
                    debug!(node = inner.id, joiner = id, error = %e, "join refused")
                }
                Err(e) => {
                    warn!(node = inner.id, joiner = id, slot = slot_of(id), error = %e, "join failed")
                }
            }
            Reply::Join(r.map_err(WireError::from))
        }
    }
}
