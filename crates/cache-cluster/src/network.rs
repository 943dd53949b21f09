//! openraft's network: Raft RPCs to one target, carried by the crate's [`Peer`] connections.
//!
//! Remote Raft errors travel as strings and come back as `NetworkError`s: openraft then retries,
//! which is the right reaction to the only errors a remote Raft returns here (it is shutting
//! down, or a snapshot chunk did not match).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use parking_lot::Mutex;

use crate::hooks::Partition;
use crate::lease::LeaseGate;
use crate::transport::{Peer, Reply, Rpc};
use crate::{ClusterError, NodeId, TypeConfig};

/// Every [`Peer`] of this node, by address (shared by Raft and by forwarding).
#[derive(Clone)]
pub struct Peers {
    map: Arc<Mutex<HashMap<String, Arc<Peer>>>>,
    partition: Partition,
    /// When each address last answered a Raft RPC (the leader's quorum check reads it).
    pub contact: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Peers {
    pub fn new(partition: Partition, contact: Arc<Mutex<HashMap<String, Instant>>>) -> Peers {
        Peers {
            map: Arc::default(),
            partition,
            contact,
        }
    }

    pub fn get(&self, addr: &str) -> Arc<Peer> {
        self.map
            .lock()
            .entry(addr.to_string())
            .or_insert_with(|| Arc::new(Peer::new(addr.to_string(), self.partition.clone())))
            .clone()
    }
}

/// Creates one [`Network`] per replication target.
pub struct NetworkFactory {
    pub peers: Peers,
    /// Follower read leases: appends hold back the commit index and report matches.
    pub gate: Arc<LeaseGate>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, _target: NodeId, node: &BasicNode) -> Network {
        Network {
            target: _target,
            peer: self.peers.get(&node.addr),
            contact: self.peers.contact.clone(),
            gate: self.gate.clone(),
        }
    }
}

pub struct Network {
    target: NodeId,
    peer: Arc<Peer>,
    contact: Arc<Mutex<HashMap<String, Instant>>>,
    gate: Arc<LeaseGate>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

fn net_err<E: std::error::Error>(e: ClusterError) -> RPCError<NodeId, BasicNode, E> {
    match e {
        ClusterError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

fn remote_err<E: std::error::Error>(s: String) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&AnyError::error(s)))
}

/// The address now belongs to another incarnation: the target is gone.
fn wrong_node<E: std::error::Error>() -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&AnyError::error(
        "target id no longer lives at this address",
    )))
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&AnyError::error("unexpected reply kind")))
}

impl Network {
    async fn call<E: std::error::Error>(
        &self,
        rpc: &Rpc,
        ttl: Duration,
    ) -> Result<Reply, RPCError<NodeId, BasicNode, E>> {
        let r = self.peer.call(rpc, ttl).await.map_err(net_err)?;
        if !matches!(r, Reply::WrongNode) {
            self.contact
                .lock()
                .insert(self.peer.addr().to_string(), Instant::now());
        }
        Ok(r)
    }
}

impl RaftNetwork<TypeConfig> for Network {
    /// Follower read leases ([`crate::lease`]): the commit index sent is held back to what every
    /// lease holder has, and the answer tells the lease table what the target now holds.
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let term = rpc.vote.leader_id().term;
        let last = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
        {
            let now = Instant::now();
            let mut t = self.gate.table.lock();
            rpc.leader_commit = t.clamp(term, rpc.leader_commit, now);
            t.sending(self.target, term, now);
        }
        let r = self
            .call(&Rpc::AppendEntries(self.target, rpc), option.hard_ttl())
            .await;
        let matched = match &r {
            Ok(Reply::AppendEntries(Ok(AppendEntriesResponse::Success))) => last,
            Ok(Reply::AppendEntries(Ok(AppendEntriesResponse::PartialSuccess(m)))) => *m,
            _ => None,
        };
        self.gate.answered(self.target, term, matched);
        match r? {
            Reply::AppendEntries(Ok(r)) => Ok(r),
            Reply::AppendEntries(Err(s)) => Err(remote_err(s)),
            Reply::WrongNode => Err(wrong_node()),
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self
            .call(&Rpc::InstallSnapshot(self.target, rpc), option.hard_ttl())
            .await?
        {
            Reply::InstallSnapshot(Ok(r)) => Ok(r),
            Reply::InstallSnapshot(Err(s)) => Err(remote_err(s)),
            Reply::WrongNode => Err(wrong_node()),
            _ => Err(unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self
            .call(&Rpc::Vote(self.target, rpc), option.hard_ttl())
            .await?
        {
            Reply::Vote(Ok(r)) => Ok(r),
            Reply::Vote(Err(s)) => Err(remote_err(s)),
            Reply::WrongNode => Err(wrong_node()),
            _ => Err(unexpected()),
        }
    }

    fn backoff(&self) -> Backoff {
        // A dead peer on a LAN: retry soon, so a restarted node is reached quickly.
        Backoff::new(std::iter::repeat(Duration::from_millis(100)))
    }
}
