//! Inter-node transport: persistent TCP connections carrying length-prefixed bincode frames.
//!
//! Frame: `u32` big-endian length, then `u64` request id, then the bincode body. One connection per
//! (sender, receiver address) carries every RPC kind (Raft traffic, forwarded writes, read-index
//! requests, join/probe), multiplexed by request id, so many requests can be in flight at once
//! and a reply never waits behind a slower one. Nagle is off and writes are batched by a writer
//! task that flushes whenever its queue runs empty: low latency for one request, few syscalls
//! under load.
//!
//! A request whose caller gave up (its timeout passed) before its frame was written is not
//! written at all: a peer that answers slowly, while Raft sends the same append again after
//! every timeout, would otherwise see a backlog of stale copies grow ahead of every new request,
//! and every request on the connection would time out from then on.
//!
//! Never panics on network input: frames are size-checked before allocation and decoded with a
//! byte limit; a bad frame closes that connection only. Every wait is bounded by the caller's
//! timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bincode::Options;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::command::{Command, Outcome};
use crate::hooks::Partition;
use crate::{ClusterError, NodeId, TypeConfig};

/// Largest frame accepted (a batch of log entries with large items).
pub const MAX_FRAME: usize = 1 << 30;

/// What a node asks another.
#[derive(Debug, Serialize, Deserialize)]
pub enum Rpc {
    /// Raft RPCs name their target id: after a restart a new node (new id) listens at the address
    /// of an old one, and must refuse traffic meant for its predecessor.
    AppendEntries(NodeId, AppendEntriesRequest<TypeConfig>),
    Vote(NodeId, VoteRequest<NodeId>),
    InstallSnapshot(NodeId, InstallSnapshotRequest<TypeConfig>),
    /// A client write forwarded by a follower to the leader.
    Write(Arc<Command>),
    /// A follower asks the leader for a linearizable read index.
    ReadIndex,
    /// Startup probe: who are you, are you part of a cluster, who leads?
    Hello,
    /// A (re)started node asks the leader to make it a voter, replacing older ids of its slot.
    Join {
        id: NodeId,
        addr: String,
    },
    /// A follower asks the leader for a read lease ([`crate::lease`]), naming itself and the
    /// term it knows.
    Lease {
        id: NodeId,
        term: u64,
    },
    /// `PUBSUB CHANNELS|NUMSUB|NUMPAT` for the whole tier: this node's own subscribers.
    Pubsub(crate::redis::PubsubQuery),
}

/// Errors carried back over the wire.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum WireError {
    NotLeader(Option<NodeId>),
    NoQuorum,
    Timeout,
    NotReady,
    Other(String),
}

impl From<ClusterError> for WireError {
    fn from(e: ClusterError) -> WireError {
        match e {
            ClusterError::NotLeader(l) => WireError::NotLeader(l),
            ClusterError::NoQuorum => WireError::NoQuorum,
            ClusterError::Timeout(_) => WireError::Timeout,
            ClusterError::NotReady => WireError::NotReady,
            other => WireError::Other(other.to_string()),
        }
    }
}

impl From<WireError> for ClusterError {
    fn from(e: WireError) -> ClusterError {
        match e {
            WireError::NotLeader(l) => ClusterError::NotLeader(l),
            WireError::NoQuorum => ClusterError::NoQuorum,
            WireError::Timeout => ClusterError::Timeout("leader"),
            WireError::NotReady => ClusterError::NotReady,
            WireError::Other(s) => ClusterError::Remote(s),
        }
    }
}

/// A node's answer to [`Rpc::Hello`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HelloInfo {
    pub id: NodeId,
    /// Whether this node holds a membership (is part of a cluster).
    pub initialized: bool,
    pub leader: Option<NodeId>,
    pub leader_addr: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, String>),
    Vote(Result<VoteResponse<NodeId>, String>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, String>),
    Write(Result<Outcome, WireError>),
    ReadIndex(Result<u64, WireError>),
    Hello(HelloInfo),
    Join(Result<(), WireError>),
    /// A granted lease: the applied count the holder must reach before it serves reads.
    Lease(Result<u64, WireError>),
    /// A Raft RPC addressed to an id that is not this node's.
    WrongNode,
    /// This node's answer to [`Rpc::Pubsub`] (`None`: it serves no Redis).
    Pubsub(Option<crate::redis::PubsubAnswer>),
}

fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_FRAME as u64)
}

pub fn encode<T: Serialize>(id: u64, msg: &T) -> Result<Vec<u8>, ClusterError> {
    let body = codec()
        .serialize(msg)
        .map_err(|e| ClusterError::Codec(e.to_string()))?;
    if body.len() + 8 > MAX_FRAME {
        return Err(ClusterError::Codec("frame too large".into()));
    }
    let mut buf = Vec::with_capacity(12 + body.len());
    buf.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    buf.extend_from_slice(&id.to_be_bytes());
    buf.extend_from_slice(&body);
    Ok(buf)
}

/// Read one frame: `(request id, body)`. `Ok(None)` on clean EOF.
pub async fn read_frame(r: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> std::io::Result<Option<u64>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(8..=MAX_FRAME).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "bad frame length",
        ));
    }
    let mut id = [0u8; 8];
    r.read_exact(&mut id).await?;
    buf.clear();
    buf.resize(len - 8, 0);
    r.read_exact(buf).await?;
    Ok(Some(u64::from_be_bytes(id)))
}

/// Decode a frame body. The size limit is the body's own length: a length prefix inside it that
/// claims more than the body holds fails at once instead of reserving memory for it.
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ClusterError> {
    codec()
        .with_limit(body.len() as u64)
        .deserialize(body)
        .map_err(|e| ClusterError::Codec(e.to_string()))
}

/// Writes queued frames, flushing when the queue runs dry.
pub async fn writer_loop(w: OwnedWriteHalf, rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    write_frames(w, rx, |f| Some(f)).await
}

/// A client connection's writer: like [`writer_loop`], but a request whose waiter is gone from
/// `pending` (its caller timed out) is dropped instead of written.
async fn request_writer_loop(
    w: OwnedWriteHalf,
    rx: mpsc::UnboundedReceiver<(u64, Vec<u8>)>,
    pending: Pending,
) {
    write_frames(w, rx, |(id, f)| {
        pending.lock().contains_key(id).then_some(f)
    })
    .await
}

/// Write each queued item's frame (`frame` gives it, or `None` to skip the item), flushing when
/// the queue runs dry; stops at the first write error or when the queue closes.
async fn write_frames<T>(
    w: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<T>,
    frame: impl Fn(&T) -> Option<&Vec<u8>>,
) {
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(item) = next {
            if let Some(f) = frame(&item) {
                if w.write_all(f).await.is_err() {
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        if w.flush().await.is_err() {
            return;
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

/// Removes a request's waiter when the call ends, however it ends (a timeout drops the call's
/// future): its frame, if not yet written, is then skipped.
struct Waiting {
    pending: Pending,
    id: u64,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.id);
    }
}

struct Conn {
    tx: mpsc::UnboundedSender<(u64, Vec<u8>)>,
    pending: Pending,
    alive: Arc<AtomicBool>,
}

/// A client for one remote address: connects lazily, reconnects after failures.
pub struct Peer {
    addr: String,
    conn: tokio::sync::Mutex<Option<Conn>>,
    next_id: AtomicU64,
    /// Shared "this node is cut off" switch (tests simulate partitions with it).
    partition: Partition,
}

impl Peer {
    pub fn new(addr: String, partition: Partition) -> Peer {
        Peer {
            addr,
            conn: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
            partition,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Send `rpc` and wait for its reply, at most `timeout` (connecting included).
    pub async fn call(&self, rpc: &Rpc, timeout: Duration) -> Result<Reply, ClusterError> {
        if self.partition.cut_off() {
            return Err(ClusterError::Unreachable(self.addr.clone()));
        }
        match tokio::time::timeout(timeout, self.call_inner(rpc)).await {
            Ok(r) => r,
            Err(_) => Err(ClusterError::Timeout("peer rpc")),
        }
    }

    async fn call_inner(&self, rpc: &Rpc) -> Result<Reply, ClusterError> {
        let id = self.next_id.fetch_add(1, Relaxed);
        let frame = encode(id, rpc)?;
        let (tx, rx) = oneshot::channel();
        let _waiting;
        {
            let mut guard = self.conn.lock().await;
            let stale = match &*guard {
                Some(c) => !c.alive.load(Relaxed),
                None => true,
            };
            if stale {
                *guard = Some(self.connect().await?);
            }
            let Some(c) = guard.as_ref() else {
                return Err(ClusterError::Unreachable(self.addr.clone()));
            };
            c.pending.lock().insert(id, tx);
            _waiting = Waiting {
                pending: c.pending.clone(),
                id,
            };
            if c.tx.send((id, frame)).is_err() {
                c.pending.lock().remove(&id);
                c.alive.store(false, Relaxed);
                return Err(ClusterError::Unreachable(self.addr.clone()));
            }
        }
        rx.await.map_err(|_| ClusterError::ConnectionLost)
    }

    async fn connect(&self) -> Result<Conn, ClusterError> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| ClusterError::Unreachable(format!("{}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        let (mut r, w) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        tokio::spawn(request_writer_loop(w, rx, pending.clone()));
        let (p2, a2) = (pending.clone(), alive.clone());
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Ok(Some(id)) = read_frame(&mut r, &mut buf).await {
                let Ok(reply) = decode::<Reply>(&buf) else {
                    break;
                };
                if let Some(tx) = p2.lock().remove(&id) {
                    let _ = tx.send(reply);
                }
            }
            a2.store(false, Relaxed);
            // Dropping the senders fails every waiter at once instead of letting them time out.
            p2.lock().clear();
        });
        Ok(Conn { tx, pending, alive })
    }

    /// Drop the connection (next call reconnects).
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A peer that stops reading (busy, or starved of CPU) while callers time out and send
    /// again: only the frame already on its way is written, not the stale copies queued behind
    /// it, so the next request after the peer recovers goes out at once.
    #[tokio::test]
    async fn requests_whose_callers_gave_up_are_not_written() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            // Not reading until told: the socket buffers fill and the writer stalls.
            let _ = go_rx.await;
            let (mut r, mut w) = stream.into_split();
            let (mut buf, mut big) = (Vec::new(), 0usize);
            while let Ok(Some(id)) = read_frame(&mut r, &mut buf).await {
                match decode::<Rpc>(&buf).expect("a request") {
                    Rpc::Write(_) => big += 1,
                    Rpc::Hello => {
                        let info = HelloInfo {
                            id: 1,
                            initialized: true,
                            leader: None,
                            leader_addr: None,
                        };
                        let frame = encode(id, &Reply::Hello(info)).expect("encode");
                        w.write_all(&frame).await.expect("reply");
                        return big;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            big
        });
        let peer = Peer::new(addr, Partition::default());
        let big = Rpc::Write(Arc::new(Command::Remove {
            key: vec![7; 16 << 20],
        }));
        const SENT: usize = 6;
        for _ in 0..SENT {
            let r = peer.call(&big, Duration::from_millis(50)).await;
            assert!(
                matches!(r, Err(ClusterError::Timeout(_))),
                "a peer that does not read cannot answer: {r:?}"
            );
        }
        let _ = go_tx.send(());
        let r = peer.call(&Rpc::Hello, Duration::from_secs(20)).await;
        assert!(matches!(r, Ok(Reply::Hello(_))), "{r:?}");
        let written = server.await.expect("server");
        assert!(
            written < SENT,
            "all {SENT} timed-out requests were written ahead of the new one"
        );
    }
}
