//! The agent's state as served by `GET /state` (JSON). Peers read `report` for the bootstrap
//! decision; `keel status` reads `db`, `cache` and `proxy`. Field names are an interface: keep
//! them (fields added later carry `#[serde(default)]`, so agents of different versions still
//! read each other's state).

use db_proxy::ProxyStatus;
use galera::{GrState, MemberReport, Phase, WsrepStatus};
use serde::{Deserialize, Serialize};

/// Everything one agent knows about its node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub cluster: String,
    /// The agent's pid.
    pub agent_pid: u32,
    /// What this member tells its peers (bootstrap decision input).
    pub report: MemberReport,
    pub db: DbState,
    pub cache: CacheState,
    /// The node's db-proxy (run inside the agent).
    #[serde(default)]
    pub proxy: ProxyState,
    /// The agent's latest decision or what it is waiting for, in words.
    pub decision: Option<String>,
    /// The latest error the agent hit (it keeps trying).
    pub last_error: Option<String>,
}

/// The node's Galera side.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct DbState {
    /// Galera's state name (`Synced`, `Donor/Desynced`, `Joining`, …), or the agent's phase
    /// (`stopped`, `recovering`, `bootstrapping`, `joining`) while mariadbd is not answering.
    pub state: String,
    pub cluster_size: Option<i64>,
    /// Last committed seqno (from wsrep status while running, else the known position).
    pub seqno: Option<i64>,
    pub cluster_uuid: Option<String>,
    pub pid: Option<i32>,
    /// `host:port` for SQL.
    pub addr: String,
    pub healthy: bool,
    pub primary: bool,
    /// Times the agent restarted mariadbd after it died.
    pub restarts: u32,
    /// How the running mariadbd was started: `bootstrap` or `join`, and with which position.
    pub started_as: Option<String>,
    pub grastate: Option<GrState>,
    pub wsrep: Option<WsrepStatus>,
    /// Why the last status query of the running mariadbd failed (`None` when it answered): a
    /// mariadbd that does not answer may still be in a Primary component.
    #[serde(default)]
    pub status_error: Option<String>,
}

/// The node's cache.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct CacheState {
    pub addr: String,
    pub pid: Option<i32>,
    /// `starting` (spawned, not answering yet), `running`, `stopped`, `disabled`, or `failed: …`.
    pub state: String,
    pub restarts: u32,
    /// `cluster` or `standalone` (`cache.mode` of the description).
    #[serde(default)]
    pub mode: String,
    /// Cluster mode: the cache's Raft role (`leader`, `follower`, `learner`, `candidate`, …)
    /// from its `stats` (`cluster_role`), read about once a second.
    #[serde(default)]
    pub role: Option<String>,
    /// Cluster mode: `cluster_applied_index` from its `stats`.
    #[serde(default)]
    pub applied: Option<u64>,
    /// Cluster mode: `cluster_leader_slot` (1-based position of the leader in the description).
    #[serde(default)]
    pub leader_slot: Option<u64>,
    /// `host:port` where the cache serves Redis; `None` with `cache.redis = false`.
    #[serde(default)]
    pub redis_addr: Option<String>,
}

/// The node's db-proxy.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ProxyState {
    /// Where applications connect (`host:port`).
    pub addr: String,
    /// `running`, `starting`, `stopped`, `disabled`, or `failed: …`.
    pub state: String,
    /// The proxy's own view (writer, backends' health and connection counts), filled in when
    /// the state is served.
    pub status: Option<ProxyStatus>,
}

impl NodeState {
    pub fn new(name: &str, cluster: &str, db_addr: String, cache_addr: String) -> NodeState {
        NodeState {
            name: name.into(),
            cluster: cluster.into(),
            agent_pid: std::process::id(),
            report: MemberReport {
                phase: Phase::Stopped,
                primary: false,
                history: galera::History::Unknown,
                grastate: None,
                force_bootstrap: false,
            },
            db: DbState {
                state: "stopped".into(),
                addr: db_addr,
                ..Default::default()
            },
            cache: CacheState {
                addr: cache_addr,
                state: "stopped".into(),
                ..Default::default()
            },
            proxy: ProxyState {
                state: "stopped".into(),
                ..Default::default()
            },
            decision: None,
            last_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use galera::{History, Position};

    /// Peers and `keel status` parse what an agent serves: the round trip must keep the report
    /// (the bootstrap decision's input) intact, and the names scripts read must be there.
    #[test]
    fn state_json_round_trip_and_stable_names() {
        let mut st = NodeState::new(
            "node2",
            "demo",
            "127.0.0.1:3316".into(),
            "127.0.0.1:11212".into(),
        );
        st.report.history = History::At(Position {
            uuid: "5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f".into(),
            seqno: 41,
        });
        st.report.phase = Phase::Running;
        st.report.primary = true;
        st.db.state = "Synced".into();
        st.db.cluster_size = Some(3);
        st.db.pid = Some(1234);
        let text = serde_json::to_string(&st).unwrap();
        let back: NodeState = serde_json::from_str(&text).unwrap();
        assert_eq!(back.report, st.report);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["db"]["state"], "Synced");
        assert_eq!(v["db"]["cluster_size"], 3);
        assert_eq!(v["db"]["pid"], 1234);
        assert_eq!(v["db"]["addr"], "127.0.0.1:3316");
        assert_eq!(v["cache"]["addr"], "127.0.0.1:11212");
        assert_eq!(v["cache"]["redis_addr"], serde_json::Value::Null);
        // An agent of an older version sends no redis_addr: still parsed.
        let mut old = v.clone();
        old["cache"].as_object_mut().unwrap().remove("redis_addr");
        let back: NodeState = serde_json::from_value(old).unwrap();
        assert_eq!(back.cache.redis_addr, None);
        st.cache.redis_addr = Some("127.0.0.1:6380".into());
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(v["cache"]["redis_addr"], "127.0.0.1:6380");
        assert_eq!(v["report"]["history"]["seqno"], 41);
        assert_eq!(v["report"]["phase"], "running");
    }
}
