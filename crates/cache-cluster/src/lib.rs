//! keel's cache cluster: three (or more) `keel cache` nodes that hold the **same** data, so a
//! client may send any command to any node, hashed however it likes. Clients that hash keys
//! differently (pylibmc with ketama, libmemcached's modula, python-memcached) then still read what
//! the others wrote, and a node's death or restart loses nothing.
//!
//! # Design, and why
//! * **Consensus: [openraft] 0.9** (not tikv's raft-rs). openraft is async/tokio-native (keel is
//!   tokio throughout), ships joint-consensus membership changes (`add_learner` +
//!   `change_membership`), a read-index primitive (`get_read_log_id`), batching of log entries in
//!   replication, and leaves transport and storage to us; raft-rs would have needed a hand-written
//!   ready loop, tick driver, read-index plumbing and conf-change handling, which is exactly where
//!   consensus bugs live. 0.9.x is the stable line (0.10 is alpha).
//! * **Replicated log of write commands** ([`Command`]): every mutation the server's `Ctx` item
//!   methods perform, including reads that mutate (gat/touch, meta `N`/`R`). Expiry times are
//!   absolute before replication (resolved once by the node that took the request), and each entry
//!   carries the leader's `now`; apply uses `max(now, previous now)`, so time is monotonic and
//!   identical on every replica. The state machine is a [`cache_store::Store`] built with
//!   `reads_mutate: false`: plain reads change nothing, so replicas stay identical, and
//!   background expiry is a replicated command too ([`Command::Expire`], proposed by the leader),
//!   so memory accounting and therefore eviction are decided by the replicated history only.
//!   add/cas/incr/decr are atomic cluster-wide by construction: they are decided at apply time.
//! * **Writes** are acknowledged once committed on a majority and applied; the outcome (stored,
//!   exists, new counter value, …) is returned to the proposer. Any node accepts any command: a
//!   follower forwards writes to the leader over the inter-node transport and replies when the
//!   leader answers. Retries happen only when the write provably did not reach a leader
//!   (unreachable at connect time, or "not leader"), so an `incr` is never applied twice.
//! * **Group commit**: a node's client writes go through one proposer task (`node::write::propose_loop`)
//!   that turns everything queued since its last round into one entry, applied in order, one
//!   [`Outcome`] per command. The entry is **packed** ([`Cmd::Packed`]): the commands' encoding,
//!   made once. A connection's run of pipelined text writes is queued as one unit
//!   ([`Cluster::write_many`]) that the connection encoded where it parsed the requests
//!   ([`Packer`], from views of its input); the proposer concatenates the runs of a round. Every
//!   replica, the leader too, applies the entry as views into its bytes ([`CommandView`],
//!   [`command::unpack`]): no key or value is copied into a command of its own anywhere on the
//!   write path, a follower frees one buffer per entry instead of two per write, the leader
//!   encodes each write once instead of once per follower, and the log's memory per write is
//!   about its encoded size (fewer snapshots). Apply hints the store's table slots and items a
//!   chunk of commands at a time ([`cache_store::Store::prefetch`]): a write's store work is
//!   mostly two dependent cache misses, and the hints overlap them. On the leader, up to
//!   [`ClusterConfig::write_pipeline`] rounds (default 4) are in flight: each is handed to the
//!   Raft core in queue order (`Raft::client_write_ff`), so the log keeps the queue's order, and
//!   the next batch forms while earlier ones replicate; outcomes are delivered in log order. A
//!   round the core refused (leadership lost before it was appended: certainly not applied) is
//!   retried through the new leader only if no round behind it entered the log; otherwise it is
//!   refused to its clients, so a retry can never apply it after writes queued behind it. A
//!   follower forwards one round at a time (the leader runs forwarded batches concurrently), which
//!   keeps its queue's order. A connection that pipelines writes queues them in request order
//!   ([`Cluster::write`] queues before it returns its future), so they share entries and apply
//!   in its order; errors (no quorum, timeout) reach every write of the round. Log entries share
//!   their command (`Arc`), so openraft's clones for replication and apply copy no values.
//!   ([`Command::Batch`], the same entry unpacked, applies alike; tests build entries so.)
//! * **Reads are linearizable by default** (read index): the leader confirms its leadership with a
//!   quorum round and the reader waits until its replica has applied up to the commit index fixed
//!   by that round. Rounds are **batched** ([`batch::Coalescer`]): reads share rounds, and a
//!   read never joins a round that started before it; up to eight rounds run at once, so a read
//!   that arrives while one is in flight starts the next at once (about one round trip, not two),
//!   on the leader and on each follower without a lease (such a follower asks the leader for
//!   the index once per batch, then reads locally; the leader answers from its lease inline,
//!   and the follower asks over a connection of the asking thread's own, so a round needs no
//!   hand-off between threads). A connection's reads of one received batch of requests share
//!   one barrier ([`ReadFence`], see [`Cluster::get_fenced`]).
//!   **Read lease**: a successful round also gives the leader a lease of
//!   [`ClusterConfig::read_lease`] (100 ms; counted from before the round began). While it holds,
//!   the leader's read index is its own applied index (every acknowledged write was applied on the
//!   leader before its reply; writes of earlier terms are covered by the round's index), taken
//!   and then re-checked inside the lease, so leader reads and follower read-index requests need no
//!   heartbeat round. Why no other leader can exist meanwhile: every voter that answered the round
//!   refuses votes for `election_max_ms` (400 ms) after that heartbeat (openraft's follower-side
//!   leader lease), and the leader itself refuses votes while its lease holds (else it could vote
//!   for a candidate with an equal log and be deposed mid-lease); the lease is dropped on any term
//!   change. Clocks are monotonic and the lease is a quarter of the followers' window, so rate
//!   drift between hosts does not matter. `cluster_read_rounds` in `stats` counts the rounds.
//!   **Follower read leases** ([`lease`]; on by default, [`ClusterConfig::follower_leases`]): a
//!   follower asks the leader for a lease (granted only inside the leader's own lease, so it ends
//!   before any later leader can be elected) and then serves linearizable reads from its own
//!   replica with no round trip, once it has applied the lease's index and everything in its log.
//!   The price is paid by writes, and only while some follower holds a lease: the leader applies
//!   (and so acknowledges, or shows to a reader) an entry only once every holder has it in its
//!   log, and the commit index it sends followers is held back to the same point, so no replica
//!   shows an entry a holder lacks. A holder that stops answering delays writes by at most its
//!   lease (100 ms); a slow or far-behind follower gets none. The linearizability test fails
//!   when either rule is switched off. `cluster_lease_reads` counts the reads served so.
//!   **Waiting instead of refusing**: libmemcached and python-memcached report `SERVER_ERROR` on
//!   a `get` as a miss, so a refused read looks like a lost key to Seafile. A read therefore
//!   retries "no leader to ask" errors until [`ClusterConfig::op_timeout`], and requests on a
//!   node that is catching up wait up to [`ClusterConfig::ready_wait`] (writes stay queued in
//!   order; the proposer waits) before `SERVER_ERROR cluster node not ready`.
//!   [`ReadMode::Local`] is the opt-in
//!   mode that serves reads from the local replica without a round (may be stale by the
//!   replication lag; never older than what the node applied when it joined).
//! * **Failure**: heartbeat 50 ms, election timeout 200–400 ms, so a dead leader is replaced and
//!   writes resume well within 1 s. Every wait is bounded ([`ClusterConfig::op_timeout`]); a leader
//!   that has not heard from a majority within the election timeout refuses at once
//!   ([`ClusterError::NoQuorum`]); a cut-off follower fails fast on its unreachable leader. The
//!   executor turns every [`ClusterError`] into `SERVER_ERROR <message>`.
//! * **Restart safety without a disk**: nothing is persisted. A node always starts under a **new**
//!   Raft id (`slot << 48 | generation`), asks the leader to join, is added as a learner, catches up,
//!   and then replaces its slot's old id in the voter set (joint consensus). Until it is a voter of
//!   a settled (not joint) configuration it keeps asking whoever leads: a join that stopped
//!   half-way (the leader lost office, or the change failed, after the learner step) is completed
//!   (or a joint configuration of old and new voters, which needs majorities of both and so
//!   survives fewer failures) by the next request, instead of leaving a learner that never
//!   answers clients; the voters kept are those of the configuration being moved to. A node that
//!   dies while catching up does not hold up its successor: the leader drops the dead joiner's
//!   catch-up wait as soon as a newer node of the same slot asks, and removes learners of the
//!   slot that never finished once the new node is a voter. Because an id is never
//!   reused, a restarted node can never vote twice in a term or forget an entry it acknowledged,
//!   which is what durable vote+log would otherwise be needed for. **Ready** (it answers clients)
//!   means: it is a voter, and since it became one it has applied every entry the leader had
//!   committed when this node asked it (a read-index round through the leader, as for a
//!   linearizable read). Being a voter alone is not enough: the membership entry takes effect
//!   when it is appended, and the data before it is applied only once the node learns it is
//!   committed. Requests that arrive earlier wait up to [`ClusterConfig::ready_wait`].
//!   Bootstrap: when no peer is part of a cluster, the lowest slot among the reachable fresh nodes
//!   initializes the cluster once all configured peers answer (or a majority after
//!   [`ClusterConfig::bootstrap_grace`]).
//! * **Log compaction and catch-up by snapshot** ([`storage`]): every
//!   [`ClusterConfig::snapshot_logs`] applied entries (default 50 000) each node snapshots its
//!   replica — the store's exact image ([`cache_store::Store::export`]: items with CAS, expiry,
//!   flags, state bits, slot order and CLOCK hand, the CAS counter, flush state) plus the
//!   replicated clock — and purges its log up to [`ClusterConfig::snapshot_keep_logs`] entries
//!   before the snapshot, so the in-memory log stays bounded however many writes the cluster
//!   takes; a snapshot is also triggered early when the entries since the last one hold more
//!   memory than [`snapshot_trigger_bytes`]: twice the store's bytes, at least 32 MiB, at most
//!   [`ClusterConfig::snapshot_log_bytes`]. Bounding the log near the store's size matters for
//!   speed as well as memory: a log that grows for seconds puts every write on fresh pages the
//!   kernel has to zero (docs/benchmarks.md has the figures). The image is taken in the apply
//!   task between two entries (consistent), which is the only pause of the apply path, once per
//!   `snapshot_logs` writes and in proportion to the item count; reads are not paused. A new or restarted node whose log starts before the leader's first kept entry
//!   receives the snapshot (chunks of 8 MiB) and installs it with
//!   [`cache_store::Store::import`] (an exact rebuild, so it evicts exactly like the others
//!   afterwards), then the log tail.
//! * **The Redis keyspace** ([`redis`]; when [`ClusterConfig::redis`] is set): a second state
//!   machine beside the store, fed by the same log. Redis writes, `EXEC`, `WATCH`/`UNWATCH` and
//!   `PUBLISH` are [`Cmd::Redis`] entries (group-committed with the memcached writes), applied
//!   with the entry's millisecond clock (`Request::now_ms`, monotonic like `now`); reads run on
//!   the local replica after the same read barrier, at the replicated clock, and change nothing
//!   ([`redis_store::Keyspace::execute_readonly`]); the periodic [`Command::Expire`] entry also
//!   runs the keyspace's active expiry. What an applied entry makes happen on a node (a
//!   publish, a list that received elements) goes to the server through [`RedisEvents`].
//!   Snapshots carry the keyspace's exact image after the store's.
//! * **Transport**: persistent TCP connections with length-prefixed bincode frames, multiplexed by
//!   request id, Nagle off, writes batched per connection ([`transport`]); no HTTP. Raft traffic
//!   and forwarded writes share one connection per peer; follower read-index requests use one
//!   per peer and client thread.
//!
//! # Known limits
//! * Every node must run the same keel version: the replicated [`Command`]/[`Outcome`] encoding
//!   (bincode) has no versioning.
//! * If a majority of nodes lose their state at the same time (restart together) the cluster's
//!   data is lost and a new cluster forms; a surviving minority node stays in the old cluster and
//!   refuses service until it is restarted (documented, not detected).
//! * A node that was paused (SIGSTOP) long enough to be replaced keeps its old id when resumed;
//!   it is no longer a voter and answers `SERVER_ERROR` until restarted.
//! * Snapshot memory: each node keeps its current snapshot image (about the store's accounted
//!   bytes) next to the store, so a node needs up to ~2x `-m` plus the bounded log. The export
//!   pause grows linearly with the item count; a per-shard
//!   copy-on-write export would spread it, not implemented.

#![deny(unsafe_code)]

pub mod batch;
pub mod command;
pub mod hooks;
pub mod lease;
pub mod network;
pub mod node;
pub mod redis;
pub mod status;
pub mod storage;
pub mod transport;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use command::{Cmd, Command, CommandView, ItemCopy, Outcome, Packer, Request};
pub use node::{Cluster, ReadFence};
pub use redis::{RedisEvents, RedisOp, RedisOutcome, RedisReplica};
pub use status::{ClusterStatus, MemberStatus};
pub use storage::SnapshotInfo;

/// A Raft node id: `slot << 48 | generation` (see [`slot_of`]).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// openraft's type configuration for the cache cluster.
    pub TypeConfig:
        D = Request,
        R = Outcome,
        SnapshotData = storage::SnapData,
);

/// The configured slot (the `N` of `--cluster-id N`) a Raft id belongs to.
pub fn slot_of(id: NodeId) -> u16 {
    (id >> 48) as u16
}

/// Errors of cluster operations. Messages are short: they end up in `SERVER_ERROR <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster has no leader")]
    NoLeader,
    #[error("not the cluster leader")]
    NotLeader(Option<NodeId>),
    #[error("cut off from the cluster majority")]
    NoQuorum,
    #[error("lost the cluster majority while committing")]
    QuorumLost,
    #[error("cluster timeout ({0})")]
    Timeout(&'static str),
    #[error("cluster node not ready (catching up)")]
    NotReady,
    #[error("cluster peer unreachable: {0}")]
    Unreachable(String),
    #[error("cluster peer connection lost")]
    ConnectionLost,
    #[error("cluster frame: {0}")]
    Codec(String),
    #[error("cluster leader: {0}")]
    Remote(String),
    #[error("cluster raft: {0}")]
    Raft(String),
    #[error("cluster shutting down")]
    Shutdown,
    /// The node stopped while the write was queued or in flight: it may still be committed.
    #[error("cluster node stopped during the write (outcome unknown)")]
    StoppedMidWrite,
    #[error("cluster config: {0}")]
    Config(String),
    #[error("cluster io: {0}")]
    Io(String),
}

impl ClusterError {
    /// Whether the operation certainly had no effect (it never reached a leader's log). Other
    /// errors (timeouts, a lost connection or majority mid-commit) leave the outcome unknown: the
    /// write may still be applied.
    pub fn certainly_not_applied(&self) -> bool {
        matches!(
            self,
            ClusterError::NoLeader
                | ClusterError::NotLeader(_)
                | ClusterError::NoQuorum
                | ClusterError::NotReady
                | ClusterError::Unreachable(_)
                | ClusterError::Shutdown
                | ClusterError::Config(_)
        )
    }
}

/// How reads are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// Read index, batched (default).
    #[default]
    Linearizable,
    /// Serve from the local replica without a round (opt-in; may lag the leader slightly).
    Local,
}

/// Clock: unix seconds.
pub type ClockFn = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock in unix seconds, read from the kernel's coarse real-time clock: it advances
/// every scheduler tick (a few ms behind the precise clock at most, nothing at a resolution of
/// seconds) and is read without a timestamp-counter read. Reads call it once per request, so
/// its cost shows in a leader's read profile (docs/benchmarks.md).
pub fn system_clock() -> ClockFn {
    Arc::new(coarse_unix_secs)
}

#[cfg(target_os = "linux")]
fn coarse_unix_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // libc, not `nix::time::clock_gettime`: nix's wrapper measured 2-3x slower here (about 19-24
    // against 6-13 ns a call), and this runs once per request.
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME_COARSE exists since Linux 2.6.32.
    #[allow(unsafe_code)]
    let r = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if r == 0 {
        u64::try_from(ts.tv_sec).unwrap_or(0)
    } else {
        precise_unix_secs()
    }
}

#[cfg(not(target_os = "linux"))]
fn coarse_unix_secs() -> u64 {
    precise_unix_secs()
}

/// The system clock in unix milliseconds (the Redis keyspace's entries carry it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn precise_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Configuration of one cluster node.
#[derive(Clone)]
pub struct ClusterConfig {
    /// This node's slot (`--cluster-id`).
    pub slot: u16,
    /// Every node's inter-node address by slot, this node's included (`--cluster-peers`).
    pub peers: BTreeMap<u16, String>,
    /// Where to listen for peers; `None` = this slot's address in `peers`. Port 0 is allowed
    /// (tests); the bound address is then advertised.
    pub listen: Option<SocketAddr>,
    pub read_mode: ReadMode,
    /// Bound on every client-facing wait (commit, read index, leader election).
    pub op_timeout: Duration,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Leader read lease (`Duration::ZERO`: off): after a read-index round confirmed the
    /// leadership with a majority, the leader answers read-index requests from its own applied
    /// index for this long, counted from before the round began. Must stay well below
    /// `election_min_ms` (followers refuse to vote for `election_max_ms` after a heartbeat, and
    /// the leader refuses votes while its lease holds); the default is half of it.
    pub read_lease: Duration,
    /// How long a request waits for this node to become ready (a restarted node catching up)
    /// before it is refused with `SERVER_ERROR cluster node not ready`.
    pub ready_wait: Duration,
    /// How long to wait for every peer before bootstrapping with a majority.
    pub bootstrap_grace: Duration,
    /// Bound on a join (learner catch-up + membership change).
    pub join_timeout: Duration,
    /// Build a snapshot (and compact the log) every this many applied entries.
    pub snapshot_logs: u64,
    /// Also build a snapshot when the entries since the last one hold more than
    /// [`snapshot_trigger_bytes`] (twice the store's bytes, at least 32 MiB) of memory; this is
    /// its upper bound (large values or a big store would otherwise let the log grow far beyond
    /// the store).
    pub snapshot_log_bytes: u64,
    /// Entries already in a snapshot that stay in the log (a follower lagging by less than this
    /// behind the snapshot catches up from the log instead of receiving the snapshot).
    pub snapshot_keep_logs: u64,
    /// Followers serve linearizable reads under a read lease from the leader ([`lease`]): no
    /// round trip per read; the leader then applies (acknowledges) a write only once every
    /// lease holder has it. Off: every follower read asks the leader for the read index.
    pub follower_leases: bool,
    /// Most group-commit rounds of client writes the leader's proposer has in flight at once
    /// (appended, not yet applied); 1 = one round at a time. A follower forwards one at a time.
    pub write_pipeline: usize,
    /// The replica's store (`reads_mutate` is forced to `false`).
    pub store: cache_store::StoreConfig,
    /// The Redis keyspace's settings, when the node serves Redis (`None`: it does not).
    pub redis: Option<redis_store::Config>,
    pub clock: ClockFn,
}

impl ClusterConfig {
    pub fn new(
        slot: u16,
        peers: BTreeMap<u16, String>,
        store: cache_store::StoreConfig,
    ) -> ClusterConfig {
        ClusterConfig {
            slot,
            peers,
            listen: None,
            read_mode: ReadMode::Linearizable,
            op_timeout: Duration::from_millis(1000),
            heartbeat_ms: 50,
            election_min_ms: 200,
            election_max_ms: 400,
            read_lease: Duration::from_millis(100),
            ready_wait: Duration::from_secs(2),
            bootstrap_grace: Duration::from_secs(3),
            join_timeout: Duration::from_secs(60),
            snapshot_logs: 50_000,
            snapshot_keep_logs: 200,
            snapshot_log_bytes: (store.mem_limit as u64 / 2).clamp(16 << 20, 512 << 20),
            write_pipeline: 4,
            follower_leases: true,
            store,
            redis: None,
            clock: system_clock(),
        }
    }
}

/// Smallest log size that triggers a snapshot by bytes (unless `snapshot_log_bytes` is smaller).
pub const SNAPSHOT_LOG_BYTES_FLOOR: u64 = 32 << 20;

/// How many bytes of log ([`storage::entry_bytes`]) past the last snapshot trigger the next
/// one: twice the store's accounted bytes, at least [`SNAPSHOT_LOG_BYTES_FLOOR`], at most `cap`
/// ([`ClusterConfig::snapshot_log_bytes`]). A snapshot costs time in proportion to the store,
/// so tying the trigger to the store's size keeps that cost per write constant (about half an
/// export of an item per write) while the log stays near the store's size instead of growing to
/// the cap: a log that keeps growing makes every write land on fresh pages the kernel must zero,
/// which costs the leader much of its CPU (docs/benchmarks.md).
pub fn snapshot_trigger_bytes(store_bytes: u64, cap: u64) -> u64 {
    store_bytes
        .saturating_mul(2)
        .max(SNAPSHOT_LOG_BYTES_FLOOR)
        .min(cap)
}

/// Parse `1=127.0.0.1:7101,2=127.0.0.1:7102,3=…` (the `--cluster-peers` syntax).
pub fn parse_peers(s: &str) -> Result<BTreeMap<u16, String>, ClusterError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| ClusterError::Config(format!("peer {part:?}: expected ID=HOST:PORT")))?;
        let id: u16 = id
            .trim()
            .parse()
            .map_err(|_| ClusterError::Config(format!("peer {part:?}: bad id")))?;
        let addr = addr.trim();
        if addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(ClusterError::Config(format!(
                "peer {part:?}: expected HOST:PORT"
            )));
        }
        if out.insert(id, addr.to_string()).is_some() {
            return Err(ClusterError::Config(format!("peer id {id} given twice")));
        }
    }
    if out.is_empty() {
        return Err(ClusterError::Config("no peers".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_agrees_with_the_precise_clock() {
        for _ in 0..3 {
            let before = precise_unix_secs();
            let coarse = system_clock()();
            let after = precise_unix_secs();
            // The coarse clock lags by at most a tick, so at a second boundary it may still
            // show the previous second.
            assert!(
                coarse + 1 >= before && coarse <= after,
                "{before} <= {coarse} <= {after}"
            );
            assert!(coarse > 1_700_000_000, "not unix seconds: {coarse}");
        }
    }

    #[test]
    fn peers_parse() {
        let p = parse_peers("1=127.0.0.1:7101, 2=127.0.0.1:7102,3=localhost:7103").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[&3], "localhost:7103");
        assert!(parse_peers("1=127.0.0.1").is_err());
        assert!(parse_peers("x=127.0.0.1:1").is_err());
        assert!(parse_peers("1=a:1,1=b:2").is_err());
        assert!(parse_peers("").is_err());
    }

    #[test]
    fn snapshot_trigger_follows_the_store() {
        const MB: u64 = 1 << 20;
        // Small or empty store: the floor.
        assert_eq!(
            snapshot_trigger_bytes(0, 512 * MB),
            SNAPSHOT_LOG_BYTES_FLOOR
        );
        assert_eq!(
            snapshot_trigger_bytes(10 * MB, 512 * MB),
            SNAPSHOT_LOG_BYTES_FLOOR
        );
        // Twice the store, up to the cap.
        assert_eq!(snapshot_trigger_bytes(100 * MB, 512 * MB), 200 * MB);
        assert_eq!(snapshot_trigger_bytes(400 * MB, 512 * MB), 512 * MB);
        assert_eq!(snapshot_trigger_bytes(u64::MAX, 512 * MB), 512 * MB);
        // A cap below the floor wins.
        assert_eq!(snapshot_trigger_bytes(100 * MB, MB), MB);
    }

    #[test]
    fn slots() {
        assert_eq!(slot_of((3u64 << 48) | 12345), 3);
    }
}
