//! wsrep status (`SHOW GLOBAL STATUS LIKE 'wsrep%'`) and the rule that decides whether a node
//! may take traffic (galera.md, "Health").

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The wsrep variables keel looks at, parsed from the raw name → value map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WsrepStatus {
    /// Galera's state name: `Synced`, `Donor/Desynced`, `Joining`, `Joined`, `Initialized`, …
    pub state: String,
    /// `wsrep_local_state` (4 = Synced).
    pub local_state: i64,
    pub cluster_status: String,
    pub cluster_size: i64,
    pub ready: bool,
    pub connected: bool,
    pub desync: bool,
    pub reject_queries: String,
    pub last_committed: i64,
    pub cluster_state_uuid: String,
    pub local_index: i64,
    /// SQL addresses of the members of the component (`wsrep_incoming_addresses`).
    #[serde(default)]
    pub incoming_addresses: Vec<String>,
}

impl WsrepStatus {
    /// Parses tab-separated `name\tvalue` lines (the `mariadb -N -B` output of
    /// `SHOW GLOBAL STATUS LIKE 'wsrep%'` and `SHOW GLOBAL VARIABLES LIKE 'wsrep_desync'` etc.).
    pub fn parse(text: &str) -> WsrepStatus {
        let map: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let s = |k: &str| map.get(k).cloned().unwrap_or_default();
        let n = |k: &str| map.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(-1);
        let on = |k: &str| map.get(k).is_some_and(|v| v.eq_ignore_ascii_case("ON"));
        WsrepStatus {
            state: s("wsrep_local_state_comment"),
            local_state: n("wsrep_local_state"),
            cluster_status: s("wsrep_cluster_status"),
            cluster_size: n("wsrep_cluster_size"),
            ready: on("wsrep_ready"),
            connected: on("wsrep_connected"),
            desync: on("wsrep_desync"),
            reject_queries: map
                .get("wsrep_reject_queries")
                .cloned()
                .unwrap_or_else(|| "NONE".into()),
            last_committed: n("wsrep_last_committed"),
            cluster_state_uuid: s("wsrep_cluster_state_uuid"),
            local_index: n("wsrep_local_index"),
            incoming_addresses: s("wsrep_incoming_addresses")
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
        }
    }

    /// In the primary component (has quorum).
    pub fn is_primary(&self) -> bool {
        self.cluster_status == "Primary" && self.connected
    }

    /// May take traffic: ready, connected, Primary, Synced, not desynced, not rejecting queries.
    pub fn is_healthy(&self) -> bool {
        self.ready
            && self.is_primary()
            && self.local_state == 4
            && !self.desync
            && self.reject_queries.eq_ignore_ascii_case("NONE")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNCED: &str = "wsrep_local_state_comment\tSynced\nwsrep_local_state\t4\nwsrep_cluster_status\tPrimary\n\
        wsrep_cluster_size\t3\nwsrep_ready\tON\nwsrep_connected\tON\nwsrep_last_committed\t17\n\
        wsrep_cluster_state_uuid\t5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f\nwsrep_local_index\t1\nwsrep_desync\tOFF\nwsrep_incoming_addresses\t127.0.0.1:3306, 127.0.0.1:3316\n";

    #[test]
    fn synced_primary_is_healthy() {
        let s = WsrepStatus::parse(SYNCED);
        assert_eq!(s.state, "Synced");
        assert_eq!(
            (s.cluster_size, s.last_committed, s.local_index),
            (3, 17, 1)
        );
        assert_eq!(s.incoming_addresses, ["127.0.0.1:3306", "127.0.0.1:3316"]);
        assert!(s.is_healthy());
    }

    #[test]
    fn each_condition_makes_it_unhealthy() {
        for (from, to) in [
            ("Primary", "non-Primary"),
            ("wsrep_local_state\t4", "wsrep_local_state\t2"),
            ("wsrep_ready\tON", "wsrep_ready\tOFF"),
            ("wsrep_connected\tON", "wsrep_connected\tOFF"),
            ("wsrep_desync\tOFF", "wsrep_desync\tON"),
        ] {
            let s = WsrepStatus::parse(&SYNCED.replace(from, to));
            assert!(!s.is_healthy(), "{to}");
        }
        let s = WsrepStatus::parse(&format!("{SYNCED}wsrep_reject_queries\tALL\n"));
        assert!(!s.is_healthy());
        assert!(!WsrepStatus::parse("").is_healthy());
    }
}
