//! The cluster's status as `keel status` and `stats` show it: a serde struct, plus memcached-style
//! `STAT` lines. Pure data; computing it lives in [`crate::node`].

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// One member of the current membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: NodeId,
    /// The configured slot (`--cluster-id`) of this member.
    pub slot: u16,
    pub addr: String,
    pub voter: bool,
    /// Highest log index known to be replicated to it (leader only; `None` elsewhere).
    pub matched: Option<u64>,
    /// `commit - matched` (leader only).
    pub lag: Option<u64>,
}

/// This node's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub id: NodeId,
    pub slot: u16,
    /// `leader`, `follower`, `candidate`, `learner` (not yet a voter) or `shutdown`.
    pub role: String,
    /// Whether this node answers clients (it is a voter and has caught up).
    pub ready: bool,
    pub leader: Option<NodeId>,
    pub leader_slot: Option<u16>,
    pub term: u64,
    /// Number of committed entries (last committed index + 1).
    pub commit: u64,
    /// Number of applied entries (last applied index + 1).
    pub applied: u64,
    pub last_log: u64,
    pub members: Vec<MemberStatus>,
    /// Log entries held in memory (bounded by log compaction).
    #[serde(default)]
    pub log_entries: u64,
    /// Log index + 1 covered by this node's current snapshot (0 = none yet).
    #[serde(default)]
    pub snapshot_index: u64,
    /// Read-index rounds this node ran as leader (a heartbeat round to a majority each); with
    /// the read lease most leader and follower reads need none.
    #[serde(default)]
    pub read_rounds: u64,
    /// Linearizable reads this node served as a follower under a read lease (no round trip).
    #[serde(default)]
    pub lease_reads: u64,
    /// Group-commit rounds of client writes this node's proposer started (appended as leader, or
    /// forwarded to the leader).
    #[serde(default)]
    pub write_rounds: u64,
    /// Of those, rounds the leader appended while an earlier one was still in flight (pipelined).
    #[serde(default)]
    pub write_rounds_pipelined: u64,
    /// Redis pops this node sent again because their first outcome was unknown (see
    /// [`crate::Cluster::redis_pop`]).
    #[serde(default)]
    pub pops_resent: u64,
}

impl ClusterStatus {
    /// Extra `stats` lines (name, value), appended after memcached's own.
    pub fn stats_lines(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "none".into());
        vec![
            ("cluster_role", self.role.clone()),
            ("cluster_id", self.id.to_string()),
            ("cluster_slot", self.slot.to_string()),
            ("cluster_ready", u8::from(self.ready).to_string()),
            ("cluster_leader", opt(self.leader)),
            ("cluster_leader_slot", opt(self.leader_slot.map(u64::from))),
            ("cluster_term", self.term.to_string()),
            ("cluster_commit_index", self.commit.to_string()),
            ("cluster_applied_index", self.applied.to_string()),
            (
                "cluster_members",
                self.members.iter().filter(|m| m.voter).count().to_string(),
            ),
            ("cluster_log_entries", self.log_entries.to_string()),
            ("cluster_snapshot_index", self.snapshot_index.to_string()),
            ("cluster_read_rounds", self.read_rounds.to_string()),
            ("cluster_lease_reads", self.lease_reads.to_string()),
            ("cluster_write_rounds", self.write_rounds.to_string()),
            (
                "cluster_write_rounds_pipelined",
                self.write_rounds_pipelined.to_string(),
            ),
            ("cluster_pops_resent", self.pops_resent.to_string()),
        ]
    }
}
