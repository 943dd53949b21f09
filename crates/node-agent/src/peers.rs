//! What this agent knows of the other nodes: their agents' `GET /state`, read for every
//! cluster-wide decision (bootstrap, join, eviction, writer).

use crate::{adopt, http, NodeState, Shared};
use cluster_config::{ClusterConfig, Node};
use galera::MemberView;
use std::time::Duration;

/// The views of all members in config order: this node's own report, the peers' over HTTP.
pub(crate) fn gather(sh: &Shared, cfg: &ClusterConfig, me: &str) -> Vec<(String, MemberView)> {
    cfg.nodes
        .iter()
        .map(|n| {
            let view = if n.name == me {
                MemberView::Reported(sh.st().report.clone())
            } else {
                peer_view(n)
            };
            (n.name.clone(), view)
        })
        .collect()
}

/// Why a peer agent's state could not be had ([`peer_state`]).
pub(crate) enum PeerStateError {
    /// No answer (connection refused, timeout).
    Down(String),
    /// An answer other than 200.
    Status(u16),
    /// A 200 whose body is not a [`NodeState`].
    Bad(String),
}

/// A peer agent's `GET /state` (800 ms budget): what every cluster-wide decision of this
/// agent reads about the other nodes.
pub(crate) fn peer_state(n: &Node) -> Result<NodeState, PeerStateError> {
    match http::request(
        &n.control_addr(),
        "GET",
        "/state",
        Duration::from_millis(800),
    ) {
        Ok((200, body)) => {
            serde_json::from_str(&body).map_err(|e| PeerStateError::Bad(e.to_string()))
        }
        Ok((code, _)) => Err(PeerStateError::Status(code)),
        Err(e) => Err(PeerStateError::Down(e.to_string())),
    }
}

pub(crate) fn peer_view(n: &Node) -> MemberView {
    match peer_state(n) {
        Ok(st) => MemberView::Reported(st.report),
        Err(PeerStateError::Bad(e)) => MemberView::Unreachable {
            why: format!("bad state from {}: {e}", n.control_addr()),
        },
        Err(PeerStateError::Status(code)) => MemberView::Unreachable {
            why: format!("agent at {} answered {code}", n.control_addr()),
        },
        // While adopting, a hand-built node may still run there ([`adopt::foreign_peer`]).
        Err(PeerStateError::Down(e)) => adopt::foreign_peer(n).unwrap_or(MemberView::Unreachable {
            why: format!("its agent does not answer: {e}"),
        }),
    }
}
