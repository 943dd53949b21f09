//! The peer listener: accepts connections from the other nodes and answers their requests
//! (Raft RPCs, forwarded writes, read-index and lease requests, joins, probes).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::transport::{decode, encode, read_frame, writer_loop, Reply, Rpc, WireError};
use crate::{slot_of, ClusterError, NodeId, TypeConfig};

use super::{stopping, Inner};

pub(super) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut stop = inner.stop.subscribe();
    loop {
        let (stream, _) = tokio::select! {
            biased;
            _ = stopping(&mut stop) => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue }
            },
        };
        if inner.partition.cut_off() {
            drop(stream);
            continue;
        }
        tokio::spawn(serve_peer(inner.clone(), stream));
    }
}

/// Queue the reply to request `id` on a peer connection's writer (a connection already gone
/// drops it: the peer fails its waiters itself).
pub(super) fn send_reply(out: &mpsc::UnboundedSender<Vec<u8>>, id: u64, reply: &Reply) {
    if let Ok(f) = encode(id, reply) {
        let _ = out.send(f);
    }
}

/// Serve one peer connection. AppendEntries are handled in arrival order by one task (a
/// replication stream is ordered); everything else runs concurrently.
pub(super) async fn serve_peer(inner: Arc<Inner>, stream: TcpStream) {
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
    // `wait_for`, not `changed`: a connection accepted while the node was stopping subscribes
    // after the stop was sent, and `changed` would never fire for it. Such a connection then
    // outlived the node: the stopped incarnation kept answering at the address (Raft RPCs for
    // its successor with "wrong node"), so a node restarted at that address never caught up
    // from that peer and its join waited for the join timeout.
    let mut stop = inner.stop.subscribe();
    let mut buf = Vec::new();
    loop {
        let id = tokio::select! {
            biased;
            _ = stopping(&mut stop) => break,
            r = read_frame(&mut r, &mut buf) => match r { Ok(Some(id)) => id, _ => break },
        };
        if inner.partition.cut_off() {
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

pub(super) async fn handle(inner: &Arc<Inner>, rpc: Rpc) -> Reply {
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
        Rpc::Pubsub(q) => Reply::Pubsub(inner.redis.as_ref().and_then(|r| r.pubsub_local(&q))),
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
