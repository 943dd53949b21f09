//! openraft's storage for the cache cluster: an in-memory log (with the vote) and the state
//! machine, which is the replica's [`cache_store::Store`].
//!
//! Nothing here is durable, on purpose: a node that restarts comes back under a **new** Raft id
//! (see the crate docs), so it never needs the vote or log it had before, and Raft's safety holds
//! without fsync.
//!
//! The state machine applies [`Request`](crate::Request)s with `now = max(entry.now, previous now)`, so replicas
//! see the same monotonic clock; it must never read the local clock.
//!
//! # Log compaction (snapshots)
//! openraft builds a snapshot every [`crate::ClusterConfig::snapshot_logs`] applied entries and
//! then purges the log up to `snapshot_keep_logs` entries before it, so the in-memory log stays
//! bounded. A snapshot is the replica's exact store image ([`cache_store::Store::export`]: items
//! with CAS, expiry, flags, state bits, slot order and CLOCK hand, the CAS counter and flush
//! state), the Redis keyspace's exact image and the table of recent pops when the node serves
//! Redis ([`redis_store::Keyspace::export_into`], [`crate::redis::pops`]) and the replicated
//! clocks (`last_now`, `last_now_ms`), at a known log index:
//! * **Consistency**: openraft asks for the builder ([`RaftStateMachine::get_snapshot_builder`])
//!   from its state-machine task, the same task that applies entries, so the store is between
//!   two entries while [`StateMachine::get_snapshot_builder`] exports it (shard by shard, under
//!   each shard lock; plain reads keep going). That export is the only pause of the apply path;
//!   wrapping it into a snapshot runs in a separate task ([`SnapBuilder::build_snapshot`]).
//! * **No copies**: the image lives in an `Arc` ([`SnapData`]) shared by the current snapshot and
//!   every replication stream that sends it; a follower receives it in chunks and installs it
//!   with [`cache_store::Store::import`], which swaps the whole store in place atomically (the
//!   server's handle to the store stays valid).
//! * Memory: the log holds at most about `snapshot_logs + snapshot_keep_logs` entries, and also
//!   about [`snapshot_trigger_bytes`](crate::snapshot_trigger_bytes) of memory since the last
//!   snapshot (twice the store's bytes, at least 32 MiB: the node triggers a snapshot early, see
//!   `node.rs`); the current snapshot image is about the size of the store's accounted bytes.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::SeekFrom;
use std::ops::RangeBounds;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use parking_lot::Mutex;

use crate::command::{apply_with, Outcome};
use crate::{NodeId, TypeConfig};

/// Counters the rest of the crate reads without going through openraft.
#[derive(Debug)]
pub struct Progress {
    /// Last committed log index + 1 (0 = nothing committed yet).
    pub committed: AtomicU64,
    /// Last applied log index + 1 (0 = nothing applied yet).
    pub applied: AtomicU64,
    /// The (monotonic) `now` of the last applied entry.
    pub last_now: AtomicU64,
    /// The replicated clock in unix milliseconds (the Redis keyspace's time).
    pub last_now_ms: AtomicU64,
    /// Publishes `applied` to readers waiting for their read index.
    pub applied_tx: tokio::sync::watch::Sender<u64>,
    /// Snapshot figures (builds, installs, the last one's pause and size).
    pub snap: Mutex<SnapshotInfo>,
}

/// Figures about this node's snapshots (see [`crate::Cluster::snapshot_info`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Snapshots this node built (completed).
    pub built: u64,
    /// Snapshots this node installed from a leader.
    pub installed: u64,
    /// Log index + 1 covered by the current snapshot (0 = none).
    pub index: u64,
    /// Size of the current snapshot image in bytes.
    pub bytes: u64,
    /// Items in the current snapshot.
    pub items: u64,
    /// How long the last build paused the apply path (the store export).
    pub last_pause: Duration,
    /// The longest such pause so far.
    pub max_pause: Duration,
    /// How long the last install took (store import, apply path paused).
    pub last_install: Duration,
}

impl Progress {
    pub fn new(applied_tx: tokio::sync::watch::Sender<u64>) -> Progress {
        Progress {
            committed: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            last_now: AtomicU64::new(0),
            last_now_ms: AtomicU64::new(0),
            applied_tx,
            snap: Mutex::new(SnapshotInfo::default()),
        }
    }
}

#[derive(Debug, Default)]
struct LogInner {
    vote: Option<Vote<NodeId>>,
    log: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    committed: Option<LogId<NodeId>>,
    /// Approximate memory of the entries held (see [`entry_bytes`]).
    bytes: u64,
    /// Each held entry's [`entry_bytes`], computed once when it is appended (summing a range
    /// again walks only these, not every command of every entry).
    sizes: BTreeMap<u64, u64>,
}

impl LogInner {
    fn insert(&mut self, e: Entry<TypeConfig>) {
        let (index, size) = (e.log_id.index, entry_bytes(&e));
        self.bytes += size;
        if let Some(old) = self.sizes.insert(index, size) {
            self.bytes = self.bytes.saturating_sub(old);
        }
        self.log.insert(index, e);
    }

    /// Drop the entries from `index` on (a conflicting suffix).
    fn truncate_from(&mut self, index: u64) {
        self.log.split_off(&index);
        let removed: u64 = self.sizes.split_off(&index).values().sum();
        self.bytes = self.bytes.saturating_sub(removed);
    }

    /// Detach the entries up to and including `index` (the caller frees them outside the lock).
    fn purge_through(&mut self, index: u64) -> BTreeMap<u64, Entry<TypeConfig>> {
        let keep = self.log.split_off(&(index + 1));
        let keep_sizes = self.sizes.split_off(&(index + 1));
        let purged: u64 = std::mem::replace(&mut self.sizes, keep_sizes)
            .values()
            .sum();
        self.bytes = self.bytes.saturating_sub(purged);
        std::mem::replace(&mut self.log, keep)
    }

    /// Entries `start..end`, cut off once they hold more than `max_bytes` (at least one).
    fn limited(&self, start: u64, end: u64, max_bytes: u64) -> Vec<Entry<TypeConfig>> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for (i, e) in self.log.range(start..end) {
            let size = self.sizes.get(i).copied().unwrap_or(0);
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            out.push(e.clone());
        }
        out
    }

    /// Bytes of the entries after `index` (all of them for `None`).
    fn bytes_after(&self, index: Option<u64>) -> u64 {
        match index {
            None => self.bytes,
            Some(i) => self
                .bytes
                .saturating_sub(self.sizes.range(..=i).map(|(_, b)| b).sum()),
        }
    }
}

/// Most bytes (by [`entry_bytes`]) of entries one append to a follower carries, unless a single
/// entry is larger.
pub const APPEND_MAX_BYTES: u64 = 1 << 20;

/// Approximate memory of one entry: its commands' keys, values and per-command overhead
/// ([`Command::mem_bytes`](crate::Command::mem_bytes)) plus the entry's own.
pub fn entry_bytes(e: &Entry<TypeConfig>) -> u64 {
    let payload = match &e.payload {
        EntryPayload::Normal(req) => req.cmd.mem_bytes(),
        _ => 0,
    };
    payload as u64 + 128
}

/// The in-memory Raft log; cheap to clone (it is its own reader).
#[derive(Clone, Debug)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
    progress: Arc<Progress>,
    alert: Arc<ByteAlert>,
}

/// Wakes whoever watches the log's size when an append leaves more than `threshold` bytes.
#[derive(Debug)]
pub struct ByteAlert {
    pub threshold: AtomicU64,
    pub notify: tokio::sync::Notify,
}

impl LogStore {
    pub fn new(progress: Arc<Progress>) -> LogStore {
        let alert = Arc::new(ByteAlert {
            threshold: AtomicU64::new(u64::MAX),
            notify: tokio::sync::Notify::new(),
        });
        LogStore {
            inner: Arc::default(),
            progress,
            alert,
        }
    }

    /// The alert raised when the log holds more than its threshold (unset: never).
    pub fn alert(&self) -> &Arc<ByteAlert> {
        &self.alert
    }

    /// Number of entries held (for status).
    pub fn len(&self) -> usize {
        self.inner.lock().log.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The applied count (log index + 1) of the last entry this log holds (or compacted).
    pub fn last_count(&self) -> u64 {
        let i = self.inner.lock();
        i.log
            .keys()
            .next_back()
            .map(|k| k + 1)
            .or(i.last_purged.map(|l| l.index + 1))
            .unwrap_or(0)
    }

    /// Approximate bytes held by the log.
    pub fn bytes(&self) -> u64 {
        self.inner.lock().bytes
    }

    /// Approximate bytes of the entries after log index `index` (those a snapshot at `index`
    /// would let the log drop are the others). Walks only the entries up to `index`.
    pub fn bytes_after(&self, index: Option<u64>) -> u64 {
        self.inner.lock().bytes_after(index)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        Ok(inner.log.range(range).map(|(_, e)| e.clone()).collect())
    }

    /// The entries one append carries: from `start`, up to [`APPEND_MAX_BYTES`] (at least one
    /// entry). openraft gives an append one heartbeat interval; a follower far behind is sent
    /// many small appends that each finish in time, not one that never does.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        Ok(inner.limited(start, end, APPEND_MAX_BYTES))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        let last = inner
            .log
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.inner.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        if let Some(c) = committed {
            self.progress.committed.fetch_max(c.index + 1, Relaxed);
        }
        self.inner.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let bytes = {
            let mut inner = self.inner.lock();
            for e in entries {
                inner.insert(e);
            }
            inner.bytes
        };
        if bytes > self.alert.threshold.load(Relaxed) {
            self.alert.notify.notify_one();
        }
        // Memory is the medium: the entry is "flushed" once it is in the map.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock();
        inner.truncate_from(log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // Detach the purged prefix under the lock, free it (every entry's key and value) after.
        let purged = {
            let mut inner = self.inner.lock();
            inner.last_purged = Some(log_id);
            inner.purge_through(log_id.index)
        };
        drop(purged);
        Ok(())
    }
}

#[derive(Debug, Default)]
struct SmInner {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
}

/// A snapshot image shared without copying: the current snapshot and every stream sending it
/// read the same bytes; a snapshot being received is an owned, growing buffer. Implements the
/// tokio I/O traits openraft moves snapshots with (read, seek, write).
#[derive(Debug)]
pub struct SnapData {
    buf: SnapBuf,
    pos: u64,
}

#[derive(Debug)]
enum SnapBuf {
    Shared(Arc<Vec<u8>>),
    Owned(Vec<u8>),
}

impl SnapData {
    pub fn shared(data: Arc<Vec<u8>>) -> SnapData {
        SnapData {
            buf: SnapBuf::Shared(data),
            pos: 0,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.buf {
            SnapBuf::Shared(a) => a,
            SnapBuf::Owned(v) => v,
        }
    }

    /// The bytes, shared (no copy).
    pub fn into_shared(self) -> Arc<Vec<u8>> {
        match self.buf {
            SnapBuf::Shared(a) => a,
            SnapBuf::Owned(v) => Arc::new(v),
        }
    }
}

impl Default for SnapData {
    fn default() -> SnapData {
        SnapData {
            buf: SnapBuf::Owned(Vec::new()),
            pos: 0,
        }
    }
}

impl tokio::io::AsyncRead for SnapData {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let data = me.bytes();
        let start = usize::try_from(me.pos)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = out.remaining().min(data.len() - start);
        out.put_slice(&data[start..start + n]);
        me.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncSeek for SnapData {
    fn start_seek(self: Pin<&mut Self>, to: SeekFrom) -> std::io::Result<()> {
        let me = self.get_mut();
        let len = me.bytes().len() as i128;
        let new = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => len + d as i128,
            SeekFrom::Current(d) => me.pos as i128 + d as i128,
        };
        if !(0..=u64::MAX as i128).contains(&new) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek out of range",
            ));
        }
        me.pos = new as u64;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

impl tokio::io::AsyncWrite for SnapData {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        if let SnapBuf::Shared(a) = &mut me.buf {
            let v = std::mem::take(Arc::make_mut(a));
            me.buf = SnapBuf::Owned(v);
        }
        let SnapBuf::Owned(v) = &mut me.buf else {
            unreachable!("made owned above")
        };
        // Chunks arrive in order; a write may overlap what is there but never leave a hole
        // (a peer's offset must not make us allocate at will).
        let pos = match usize::try_from(me.pos) {
            Ok(p) if p <= v.len() => p,
            _ => {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "snapshot chunk leaves a gap",
                )))
            }
        };
        let overlap = (v.len() - pos).min(data.len());
        v[pos..pos + overlap].copy_from_slice(&data[..overlap]);
        v.extend_from_slice(&data[overlap..]);
        me.pos += data.len() as u64;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Header of a snapshot image: magic, version, the replicated clocks (seconds, milliseconds)
/// and the store image's length; the store image follows, then the replicated Redis state's
/// image ([`crate::RedisReplica`]'s: the keyspace and the pop table; empty when the node serves
/// no Redis).
const SNAP_MAGIC: &[u8; 8] = b"KEELRSNP";
const SNAP_VERSION: u32 = 3;
const SNAP_HEADER: usize = 8 + 4 + 8 + 8 + 8;

/// A snapshot image's parts.
struct SnapParts<'a> {
    last_now: u64,
    last_now_ms: u64,
    store: &'a [u8],
    redis: &'a [u8],
}

fn le_u64(b: &[u8]) -> u64 {
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[..8]);
    u64::from_le_bytes(n)
}

fn parse_snapshot(data: &[u8]) -> Result<SnapParts<'_>, String> {
    if data.len() < SNAP_HEADER || &data[..8] != SNAP_MAGIC {
        return Err("not a keel cache snapshot".into());
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&data[8..12]);
    let version = u32::from_le_bytes(v);
    if version != SNAP_VERSION {
        return Err(format!("unsupported snapshot version {version}"));
    }
    let store_len = le_u64(&data[28..36]);
    let rest = &data[SNAP_HEADER..];
    let store_len = usize::try_from(store_len)
        .ok()
        .filter(|l| *l <= rest.len())
        .ok_or("snapshot store image is truncated")?;
    let (store, redis) = rest.split_at(store_len);
    Ok(SnapParts {
        last_now: le_u64(&data[12..20]),
        last_now_ms: le_u64(&data[20..28]),
        store,
        redis,
    })
}

#[derive(Clone)]
struct Current {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    data: Arc<Vec<u8>>,
}

/// The replicated state machine: applies committed entries to the replica's store.
#[derive(Clone)]
pub struct StateMachine {
    store: Arc<cache_store::Store>,
    /// The Redis keyspace, when the node serves Redis.
    redis: Option<Arc<crate::redis::RedisReplica>>,
    inner: Arc<Mutex<SmInner>>,
    progress: Arc<Progress>,
    current: Arc<Mutex<Option<Current>>>,
    /// Follower read leases: on the leader, an entry is applied (made visible) only once every
    /// lease holder has it ([`crate::lease`]).
    gate: Arc<crate::lease::LeaseGate>,
}

impl StateMachine {
    pub fn new(
        store: Arc<cache_store::Store>,
        redis: Option<Arc<crate::redis::RedisReplica>>,
        progress: Arc<Progress>,
        gate: Arc<crate::lease::LeaseGate>,
    ) -> StateMachine {
        StateMachine {
            store,
            redis,
            inner: Arc::default(),
            progress,
            current: Arc::default(),
            gate,
        }
    }
}

/// Run a CPU-bound step that the caller must not leave (it holds the state machine still):
/// on a multi-threaded runtime, let the runtime move this worker's other tasks elsewhere.
fn blocking_step<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn io_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::read_snapshot(None, AnyError::error(e.to_string())).into()
}

/// A consistent copy of the state machine, taken between two applied entries; turned into a
/// snapshot off the apply path.
pub struct SnapBuilder {
    image: Option<Vec<u8>>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
    current: Arc<Mutex<Option<Current>>>,
    progress: Arc<Progress>,
    items: u64,
}

static SNAPSHOT_SEQ: AtomicU64 = AtomicU64::new(0);

impl RaftSnapshotBuilder<TypeConfig> for SnapBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let data = Arc::new(
            self.image
                .take()
                .ok_or_else(|| io_err("snapshot builder used twice"))?,
        );
        let seq = SNAPSHOT_SEQ.fetch_add(1, Relaxed);
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, seq),
            None => format!("none-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        {
            let mut cur = self.current.lock();
            // Never replace a newer snapshot (an install may have raced this build).
            let newer = match cur.as_ref() {
                None => true,
                Some(c) => c.meta.last_log_id <= meta.last_log_id,
            };
            if newer {
                *cur = Some(Current {
                    meta: meta.clone(),
                    data: data.clone(),
                });
                let mut info = self.progress.snap.lock();
                info.index = meta.last_log_id.map(|l| l.index + 1).unwrap_or(0);
                info.bytes = data.len() as u64;
                info.items = self.items;
            }
        }
        self.progress.snap.lock().built += 1;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapData::shared(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<NodeId>>,
            StoredMembership<NodeId, openraft::BasicNode>,
        ),
        StorageError<NodeId>,
    > {
        let inner = self.inner.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        if let Some(last) = entries.last() {
            self.gate.wait_release(last.log_id.index + 1).await;
        }
        let mut out = Vec::with_capacity(entries.len());
        let mut inner = self.inner.lock();
        let mut now = self.progress.last_now.load(Relaxed);
        let mut now_ms = self.progress.last_now_ms.load(Relaxed);
        for e in entries {
            inner.last_applied = Some(e.log_id);
            let r = match &e.payload {
                EntryPayload::Blank => Outcome::Done,
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(e.log_id), m.clone());
                    Outcome::Done
                }
                EntryPayload::Normal(req) => {
                    now = now.max(req.now);
                    now_ms = now_ms.max(req.now_ms);
                    apply_with(&self.store, self.redis.as_deref(), &req.cmd, now, now_ms)
                }
            };
            out.push(r);
            self.progress.applied.store(e.log_id.index + 1, Relaxed);
        }
        self.progress.last_now.store(now, Relaxed);
        self.progress.last_now_ms.store(now_ms, Relaxed);
        drop(inner);
        let applied = self.progress.applied.load(Relaxed);
        self.progress.applied_tx.send_replace(applied);
        Ok(out)
    }

    /// Called by openraft's state-machine task between two applies: the export here is the
    /// consistent copy, and the only time the apply path waits for a snapshot.
    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let (last_applied, membership) = {
            let inner = self.inner.lock();
            (inner.last_applied, inner.membership.clone())
        };
        let t = Instant::now();
        let last_now = self.progress.last_now.load(Relaxed);
        let last_now_ms = self.progress.last_now_ms.load(Relaxed);
        let image = blocking_step(|| {
            let mut image = Vec::new();
            image.extend_from_slice(SNAP_MAGIC);
            image.extend_from_slice(&SNAP_VERSION.to_le_bytes());
            image.extend_from_slice(&last_now.to_le_bytes());
            image.extend_from_slice(&last_now_ms.to_le_bytes());
            image.extend_from_slice(&0u64.to_le_bytes());
            let start = image.len();
            self.store.export_into(&mut image);
            let store_len = (image.len() - start) as u64;
            image[28..36].copy_from_slice(&store_len.to_le_bytes());
            if let Some(r) = &self.redis {
                r.export_into(&mut image);
            }
            image
        });
        let pause = t.elapsed();
        let items = self.store.stats().curr_items;
        tracing::debug!(
            applied = last_applied.map(|l| l.index + 1).unwrap_or(0),
            items,
            pause_us = pause.as_micros() as u64,
            "snapshot image taken"
        );
        {
            let mut info = self.progress.snap.lock();
            info.last_pause = pause;
            info.max_pause = info.max_pause.max(pause);
        }
        SnapBuilder {
            image: Some(image),
            last_applied,
            membership,
            current: self.current.clone(),
            progress: self.progress.clone(),
            items,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapData>, StorageError<NodeId>> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<SnapData>,
    ) -> Result<(), StorageError<NodeId>> {
        let t = Instant::now();
        let data = snapshot.into_shared();
        let parts = parse_snapshot(&data).map_err(io_err)?;
        let imported = blocking_step(|| self.store.import(parts.store)).map_err(io_err)?;
        if let Some(r) = &self.redis {
            blocking_step(|| r.import(parts.redis, parts.last_now_ms)).map_err(io_err)?;
        }
        let last_now = parts.last_now;
        self.progress
            .last_now_ms
            .fetch_max(parts.last_now_ms, Relaxed);
        {
            let mut inner = self.inner.lock();
            inner.last_applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
        }
        // The replicated clock never runs backwards, even if the snapshot's is older.
        self.progress.last_now.fetch_max(last_now, Relaxed);
        let applied = meta.last_log_id.map(|l| l.index + 1).unwrap_or(0);
        self.progress.applied.store(applied, Relaxed);
        self.progress.applied_tx.send_replace(applied);
        {
            let mut info = self.progress.snap.lock();
            info.installed += 1;
            info.last_install = t.elapsed();
            info.index = applied;
            info.bytes = data.len() as u64;
            info.items = imported.items;
        }
        tracing::info!(
            applied,
            items = imported.items,
            bytes = data.len() as u64,
            took_ms = t.elapsed().as_millis() as u64,
            "snapshot installed"
        );
        *self.current.lock() = Some(Current {
            meta: meta.clone(),
            data,
        });
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.current.lock().as_ref().map(|c| Snapshot {
            meta: c.meta.clone(),
            snapshot: Box::new(SnapData::shared(c.data.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    #[tokio::test]
    async fn snap_data_reads_seeks_and_writes_without_gaps() {
        let shared = Arc::new(b"0123456789".to_vec());
        let mut d = SnapData::shared(shared.clone());
        assert_eq!(d.seek(SeekFrom::End(0)).await.unwrap(), 10);
        d.seek(SeekFrom::Start(4)).await.unwrap();
        let mut buf = vec![0u8; 3];
        d.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, b"456");
        let mut rest = Vec::new();
        d.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"789");
        assert!(d.seek(SeekFrom::Current(-100)).await.is_err());
        // Writing copies on write: the shared image is untouched.
        d.seek(SeekFrom::Start(8)).await.unwrap();
        d.write_all(b"ABCD").await.unwrap();
        assert_eq!(d.bytes(), b"01234567ABCD");
        assert_eq!(&shared[..], b"0123456789");
        // A write past the end would leave a gap: refused.
        d.seek(SeekFrom::Start(100)).await.unwrap();
        assert!(d.write_all(b"x").await.is_err());
        assert_eq!(d.into_shared().len(), 12);
    }

    /// A log entry at `index` (term 1) carrying `cmd`.
    fn entry_of(index: u64, cmd: crate::Command) -> Entry<TypeConfig> {
        use openraft::{CommittedLeaderId, LogId};
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(crate::command::Request {
                now: 0,
                now_ms: 0,
                cmd: Arc::new(cmd),
            }),
        }
    }

    /// An append carries entries up to the byte budget, at least one, in order from `start`.
    #[test]
    fn appends_are_cut_at_the_byte_budget() {
        let entry = |index: u64, key_len: usize| {
            entry_of(
                index,
                crate::Command::Remove {
                    key: vec![b'k'; key_len],
                },
            )
        };
        let mut inner = LogInner::default();
        for i in 1..=10 {
            inner.insert(entry(i, 1000));
        }
        let one = inner.sizes[&1];
        let indexes =
            |v: Vec<Entry<TypeConfig>>| v.iter().map(|e| e.log_id.index).collect::<Vec<_>>();
        assert_eq!(indexes(inner.limited(1, 11, 3 * one)), [1, 2, 3]);
        assert_eq!(indexes(inner.limited(4, 11, 3 * one + 1)), [4, 5, 6]);
        assert_eq!(indexes(inner.limited(9, 11, 100 * one)), [9, 10]);
        // A single entry over the budget still goes alone.
        assert_eq!(indexes(inner.limited(2, 11, 1)), [2]);
        assert!(inner.limited(11, 20, 1).is_empty());
    }

    /// The byte count follows appends, overwrites, truncation and purges, and `bytes_after`
    /// agrees with summing the entries themselves.
    #[test]
    fn log_bytes_follow_appends_truncates_and_purges() {
        let entry = |index: u64, value_len: usize| {
            entry_of(
                index,
                crate::Command::Batch(vec![
                    crate::Command::Remove {
                        key: vec![b'k'; value_len]
                    };
                    3
                ]),
            )
        };
        let direct = |inner: &LogInner, after: u64| -> u64 {
            inner
                .log
                .range(after + 1..)
                .map(|(_, e)| entry_bytes(e))
                .sum()
        };
        let mut inner = LogInner::default();
        for i in 1..=10 {
            inner.insert(entry(i, i as usize * 10));
        }
        assert_eq!(inner.bytes, direct(&inner, 0));
        // Overwriting an index replaces its size.
        inner.insert(entry(5, 1000));
        assert_eq!(inner.bytes, direct(&inner, 0));
        for after in [0, 3, 5, 10] {
            assert_eq!(
                inner.bytes_after(Some(after)),
                direct(&inner, after),
                "after {after}"
            );
        }
        inner.truncate_from(8);
        assert_eq!(inner.log.len(), 7);
        assert_eq!(inner.bytes, direct(&inner, 0));
        let purged = inner.purge_through(3);
        assert_eq!(purged.len(), 3);
        assert_eq!(
            inner.log.keys().copied().collect::<Vec<_>>(),
            vec![4, 5, 6, 7]
        );
        assert_eq!(inner.bytes, direct(&inner, 0));
        assert_eq!(inner.bytes_after(Some(5)), direct(&inner, 5));
        assert_eq!(inner.bytes_after(None), inner.bytes);
        inner.purge_through(7);
        assert_eq!((inner.bytes, inner.sizes.len()), (0, 0));
    }

    #[test]
    fn snapshot_header_is_checked() {
        assert!(parse_snapshot(b"").is_err());
        assert!(parse_snapshot(b"KEELRSNPxxxxxxxxxxxxxxxx").is_err());
        let mut ok = SNAP_MAGIC.to_vec();
        ok.extend_from_slice(&SNAP_VERSION.to_le_bytes());
        ok.extend_from_slice(&77u64.to_le_bytes());
        ok.extend_from_slice(&77_123u64.to_le_bytes());
        ok.extend_from_slice(&5u64.to_le_bytes());
        ok.extend_from_slice(b"storeredis");
        let p = parse_snapshot(&ok).unwrap();
        assert_eq!((p.last_now, p.last_now_ms), (77, 77_123));
        assert_eq!((p.store, p.redis), (&b"store"[..], &b"redis"[..]));
        // A store length past the end is refused, not sliced.
        let mut bad = ok.clone();
        bad[28..36].copy_from_slice(&11u64.to_le_bytes());
        assert!(parse_snapshot(&bad).is_err());
        let mut old = ok;
        old[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert!(parse_snapshot(&old).is_err());
    }
}
