//! openraft's storage for the cache cluster: an in-memory log (with the vote) and the state
//! machine, which is the replica's [`cache_store::Store`].
//!
//! Nothing here is durable, on purpose: a node that restarts comes back under a **new** Raft id
//! (see the crate docs), so it never needs the vote or log it had before, and Raft's safety holds
//! without fsync. The log is never compacted yet, so a joining node catches up by log
//! replication from index 0 (see the crate docs for why, and what compaction needs).
//!
//! The state machine applies [`Request`]s with `now = max(entry.now, previous now)`, so replicas
//! see the same monotonic clock; it must never read the local clock.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use parking_lot::Mutex;

use crate::command::{apply, Outcome};
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
    /// Publishes `applied` to readers waiting for their read index.
    pub applied_tx: tokio::sync::watch::Sender<u64>,
}

impl Progress {
    pub fn new(applied_tx: tokio::sync::watch::Sender<u64>) -> Progress {
        Progress { committed: AtomicU64::new(0), applied: AtomicU64::new(0), last_now: AtomicU64::new(0), applied_tx }
    }
}

#[derive(Debug, Default)]
struct LogInner {
    vote: Option<Vote<NodeId>>,
    log: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// The in-memory Raft log; cheap to clone (it is its own reader).
#[derive(Clone, Debug)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
    progress: Arc<Progress>,
}

impl LogStore {
    pub fn new(progress: Arc<Progress>) -> LogStore {
        LogStore { inner: Arc::default(), progress }
    }

    /// Number of entries held (for status).
    pub fn len(&self) -> usize {
        self.inner.lock().log.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        let last = inner.log.values().next_back().map(|e| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
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

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        if let Some(c) = committed {
            self.progress.committed.fetch_max(c.index + 1, Relaxed);
        }
        self.inner.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut inner = self.inner.lock();
            for e in entries {
                inner.log.insert(e.log_id.index, e);
            }
        }
        // Memory is the medium: the entry is "flushed" once it is in the map.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock();
        let _ = inner.log.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock();
        let keep = inner.log.split_off(&(log_id.index + 1));
        inner.log = keep;
        inner.last_purged = Some(log_id);
        Ok(())
    }
}

#[derive(Debug, Default)]
struct SmInner {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
}

/// The replicated state machine: applies committed entries to the replica's store.
#[derive(Clone)]
pub struct StateMachine {
    store: Arc<cache_store::Store>,
    inner: Arc<Mutex<SmInner>>,
    progress: Arc<Progress>,
}

impl StateMachine {
    pub fn new(store: Arc<cache_store::Store>, progress: Arc<Progress>) -> StateMachine {
        StateMachine { store, inner: Arc::default(), progress }
    }
}

fn no_snapshot() -> StorageError<NodeId> {
    StorageIOError::read_snapshot(None, AnyError::error("log compaction is disabled: no snapshots")).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        // SnapshotPolicy::Never: openraft only builds one when asked to, which keel never does.
        Err(no_snapshot())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, openraft::BasicNode>), StorageError<NodeId>> {
        let inner = self.inner.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut inner = self.inner.lock();
        let mut now = self.progress.last_now.load(Relaxed);
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
                    apply(&self.store, &req.cmd, now)
                }
            };
            out.push(r);
            self.progress.applied.store(e.log_id.index + 1, Relaxed);
        }
        self.progress.last_now.store(now, Relaxed);
        drop(inner);
        let applied = self.progress.applied.load(Relaxed);
        self.progress.applied_tx.send_replace(applied);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Never happens: the log is never purged, so a leader always replicates entries instead.
        Err(no_snapshot())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(None)
    }
}
