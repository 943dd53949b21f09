//! wsrep status (`SHOW GLOBAL STATUS LIKE 'wsrep%'` plus the global variables `wsrep_desync` and
//! `wsrep_reject_queries`) and keel's one rule for whether a node may take traffic, shared by the
//! db-proxy (which node may be the writer) and the node agent (when a node counts as healthy).
//!
//! A node is fit to serve only when all six conditions hold:
//!
//! 1. `wsrep_ready = ON`: the provider is loaded and the node accepts queries;
//! 2. `wsrep_connected = ON`: the node is connected to the group;
//! 3. `wsrep_cluster_status = Primary`: it is in the component that has quorum (a non-Primary
//!    node answers `ERROR 1047` and must not take writes that would then be lost);
//! 4. `wsrep_local_state = 4` (Synced): not Joining (1), a Donor (2, during an rsync SST it holds
//!    `FLUSH TABLES WITH READ LOCK`) or Joined and still catching up (3);
//! 5. `wsrep_desync = OFF`: an operator did not take it out of flow control;
//! 6. `wsrep_reject_queries = NONE`: an operator did not close it to clients.
//!
//! [`WsrepStatus::unfit`] lists every condition a node fails as an [`Unfit`]; a fit node has no
//! reason. A value the server did not report reads as failing its condition, except
//! `wsrep_reject_queries`, which servers without it lack (then `NONE`).

use crate::position::Position;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The wsrep variables keel looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// `wsrep_cluster_conf_id`: the number of the primary component's membership changes, the
    /// same on every member of the current primary component (a node answering from an older
    /// view has a lower one).
    #[serde(default = "missing_number")]
    pub conf_id: i64,
    /// SQL addresses of the members of the component (`wsrep_incoming_addresses`).
    #[serde(default)]
    pub incoming_addresses: Vec<String>,
}

fn missing_number() -> i64 {
    -1
}

impl Default for WsrepStatus {
    /// Nothing reported: every number -1, every flag off, `wsrep_reject_queries` `NONE`.
    fn default() -> Self {
        WsrepStatus::from_pairs(std::iter::empty::<(&str, &str)>())
    }
}

impl WsrepStatus {
    /// Builds the status from `(name, value)` rows of `SHOW GLOBAL STATUS` / `SHOW GLOBAL
    /// VARIABLES` (names case-insensitive, the last occurrence wins).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> WsrepStatus {
        let mut s = WsrepStatus {
            state: String::new(),
            local_state: -1,
            cluster_status: String::new(),
            cluster_size: -1,
            ready: false,
            connected: false,
            desync: false,
            reject_queries: "NONE".into(),
            last_committed: -1,
            cluster_state_uuid: String::new(),
            local_index: -1,
            conf_id: -1,
            incoming_addresses: Vec::new(),
        };
        for (k, v) in pairs {
            let v = v.as_ref().trim();
            let on = v.eq_ignore_ascii_case("ON");
            let n = v.parse::<i64>().unwrap_or(-1);
            match k.as_ref().trim().to_ascii_lowercase().as_str() {
                "wsrep_ready" => s.ready = on,
                "wsrep_connected" => s.connected = on,
                "wsrep_cluster_status" => s.cluster_status = v.into(),
                "wsrep_local_state" => s.local_state = n,
                "wsrep_local_state_comment" => s.state = v.into(),
                "wsrep_desync" => s.desync = on,
                "wsrep_reject_queries" => s.reject_queries = v.into(),
                "wsrep_cluster_size" => s.cluster_size = n,
                "wsrep_local_index" => s.local_index = n,
                "wsrep_cluster_conf_id" => s.conf_id = n,
                "wsrep_last_committed" => s.last_committed = n,
                "wsrep_cluster_state_uuid" => s.cluster_state_uuid = v.into(),
                "wsrep_incoming_addresses" => {
                    s.incoming_addresses = v
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(String::from)
                        .collect()
                }
                _ => {}
            }
        }
        s
    }

    /// Parses tab-separated `name\tvalue` lines (what `mariadb -N -B` prints for the status
    /// queries); other lines are ignored.
    pub fn parse(text: &str) -> WsrepStatus {
        WsrepStatus::from_pairs(text.lines().filter_map(|l| l.split_once('\t')))
    }

    /// The node's place in the cluster's history (`wsrep_cluster_state_uuid` and
    /// `wsrep_last_committed`), when both are known.
    pub fn position(&self) -> Option<Position> {
        let p = Position::parse(&format!(
            "{}:{}",
            self.cluster_state_uuid, self.last_committed
        ))?;
        p.is_known().then_some(p)
    }

    /// In the primary component (has quorum).
    pub fn is_primary(&self) -> bool {
        self.cluster_status == "Primary" && self.connected
    }

    /// Every one of the six conditions (module doc) this node fails, in their order; empty when
    /// it may take traffic.
    pub fn unfit(&self) -> Vec<Unfit> {
        let mut why = Vec::new();
        if !self.ready {
            why.push(Unfit::NotReady);
        }
        if !self.connected {
            why.push(Unfit::Disconnected);
        }
        if self.cluster_status != "Primary" {
            why.push(Unfit::NotPrimary {
                cluster_status: self.cluster_status.clone(),
            });
        }
        if self.local_state != 4 {
            why.push(Unfit::NotSynced {
                local_state: self.local_state,
                state: self.state.clone(),
            });
        }
        if self.desync {
            why.push(Unfit::Desynced);
        }
        if !self.reject_queries.eq_ignore_ascii_case("NONE") {
            why.push(Unfit::RejectsQueries {
                reject_queries: self.reject_queries.clone(),
            });
        }
        why
    }

    /// All six conditions hold.
    pub fn is_healthy(&self) -> bool {
        self.unfit().is_empty()
    }

    /// The reasons of [`WsrepStatus::unfit`] as one line (`"wsrep_ready=OFF, wsrep_local_state=2
    /// (Donor/Desynced)"`), `None` when the node is fit.
    pub fn unfit_reason(&self) -> Option<String> {
        let why = self.unfit();
        (!why.is_empty()).then(|| {
            why.iter()
                .map(Unfit::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

/// One condition of the health rule a node fails; shown as the variable and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// `wsrep_ready=OFF`
    NotReady,
    /// `wsrep_connected=OFF`
    Disconnected,
    /// `wsrep_cluster_status` other than `Primary` (empty: not reported).
    NotPrimary { cluster_status: String },
    /// `wsrep_local_state` other than 4, with Galera's name for the state.
    NotSynced { local_state: i64, state: String },
    /// `wsrep_desync=ON`
    Desynced,
    /// `wsrep_reject_queries` other than `NONE`.
    RejectsQueries { reject_queries: String },
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::NotReady => f.write_str("wsrep_ready=OFF"),
            Unfit::Disconnected => f.write_str("wsrep_connected=OFF"),
            Unfit::NotPrimary { cluster_status } => {
                write!(f, "wsrep_cluster_status={}", or_missing(cluster_status))
            }
            Unfit::NotSynced { local_state, state } => {
                write!(f, "wsrep_local_state={local_state} ({})", or_missing(state))
            }
            Unfit::Desynced => f.write_str("wsrep_desync=ON"),
            Unfit::RejectsQueries { reject_queries } => {
                write!(f, "wsrep_reject_queries={reject_queries}")
            }
        }
    }
}

fn or_missing(s: &str) -> &str {
    if s.is_empty() {
        "missing"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SYNCED: &str = "wsrep_local_state_comment\tSynced\nwsrep_local_state\t4\nwsrep_cluster_status\tPrimary\n\
        wsrep_cluster_size\t3\nwsrep_ready\tON\nwsrep_connected\tON\nwsrep_last_committed\t17\n\
        wsrep_cluster_state_uuid\t5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f\nwsrep_local_index\t1\nwsrep_desync\tOFF\nwsrep_incoming_addresses\t127.0.0.1:3306, 127.0.0.1:3316\n\
        wsrep_cluster_conf_id\t5\n";

    fn synced() -> WsrepStatus {
        WsrepStatus::from_pairs([
            ("wsrep_ready", "ON"),
            ("wsrep_connected", "ON"),
            ("wsrep_cluster_status", "Primary"),
            ("wsrep_local_state", "4"),
            ("wsrep_local_state_comment", "Synced"),
            ("WSREP_DESYNC", "OFF"),
            ("wsrep_reject_queries", "NONE"),
            ("wsrep_cluster_size", "3"),
        ])
    }

    #[test]
    fn synced_primary_is_healthy() {
        let s = WsrepStatus::parse(SYNCED);
        assert_eq!(s.state, "Synced");
        assert_eq!(
            (s.cluster_size, s.last_committed, s.local_index, s.conf_id),
            (3, 17, 1, 5)
        );
        assert_eq!(s.incoming_addresses, ["127.0.0.1:3306", "127.0.0.1:3316"]);
        assert!(s.is_healthy());
        assert_eq!(s.unfit(), []);
        assert_eq!(s.unfit_reason(), None);
        assert_eq!(synced().unfit_reason(), None);
        assert_eq!(synced().cluster_size, 3);
    }

    #[test]
    fn position_needs_a_real_uuid_and_seqno() {
        assert_eq!(
            WsrepStatus::parse(SYNCED).position(),
            Some(Position {
                uuid: "5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f".into(),
                seqno: 17
            })
        );
        let mut s = WsrepStatus::parse(SYNCED);
        s.last_committed = -1;
        assert_eq!(s.position(), None, "seqno -1 is no position");
        let mut s = WsrepStatus::parse(SYNCED);
        s.cluster_state_uuid = crate::position::ZERO_UUID.into();
        assert_eq!(s.position(), None, "the zero UUID is no cluster");
        assert_eq!(synced().position(), None, "nothing reported");
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

    #[test]
    fn each_of_the_six_conditions_fails_alone_and_says_so() {
        type Case = (fn(&mut WsrepStatus), Unfit, &'static str);
        let cases: Vec<Case> = vec![
            (|s| s.ready = false, Unfit::NotReady, "wsrep_ready=OFF"),
            (
                |s| s.connected = false,
                Unfit::Disconnected,
                "wsrep_connected=OFF",
            ),
            (
                |s| s.cluster_status = "non-Primary".into(),
                Unfit::NotPrimary {
                    cluster_status: "non-Primary".into(),
                },
                "wsrep_cluster_status=non-Primary",
            ),
            (
                |s| {
                    s.local_state = 2;
                    s.state = "Donor/Desynced".into()
                },
                Unfit::NotSynced {
                    local_state: 2,
                    state: "Donor/Desynced".into(),
                },
                "wsrep_local_state=2 (Donor/Desynced)",
            ),
            (|s| s.desync = true, Unfit::Desynced, "wsrep_desync=ON"),
            (
                |s| s.reject_queries = "ALL".into(),
                Unfit::RejectsQueries {
                    reject_queries: "ALL".into(),
                },
                "wsrep_reject_queries=ALL",
            ),
        ];
        for (f, reason, text) in cases {
            let mut s = synced();
            f(&mut s);
            assert_eq!(s.unfit(), std::slice::from_ref(&reason));
            assert_eq!(reason.to_string(), text);
            assert_eq!(s.unfit_reason().as_deref(), Some(text));
        }
        for state in [1, 3] {
            let mut s = synced();
            s.local_state = state;
            assert!(s.unfit_reason().is_some());
        }
    }

    #[test]
    fn nothing_reported_fails_and_names_what_is_missing() {
        let s = WsrepStatus::from_pairs(std::iter::empty::<(&str, &str)>());
        assert_eq!(s, WsrepStatus::default());
        assert_eq!(s.reject_queries, "NONE");
        assert_eq!((s.local_state, s.conf_id, s.cluster_size), (-1, -1, -1));
        assert_eq!(
            s.unfit_reason().as_deref(),
            Some(
                "wsrep_ready=OFF, wsrep_connected=OFF, wsrep_cluster_status=missing, \
                 wsrep_local_state=-1 (missing)"
            )
        );
    }

    #[test]
    fn status_without_conf_id_deserialises() {
        let mut v = serde_json::to_value(synced()).unwrap();
        v.as_object_mut().unwrap().remove("conf_id");
        v.as_object_mut().unwrap().remove("incoming_addresses");
        let s: WsrepStatus = serde_json::from_value(v).unwrap();
        assert_eq!(s.conf_id, -1);
        assert!(s.incoming_addresses.is_empty());
    }

    proptest! {
        /// The text parser and the pair parser agree, and a node is healthy exactly when it has
        /// no reason to be unfit.
        #[test]
        fn parsers_agree_and_healthy_is_no_reason(
            ready in any::<bool>(), connected in any::<bool>(), primary in any::<bool>(),
            state in -1i64..6, desync in any::<bool>(), reject in prop_oneof!["NONE", "none", "ALL", "ALL_KILL"],
        ) {
            let on = |b: bool| if b { "ON" } else { "OFF" };
            let pairs = [
                ("wsrep_ready", on(ready).to_string()),
                ("wsrep_connected", on(connected).to_string()),
                ("wsrep_cluster_status", if primary { "Primary" } else { "non-Primary" }.to_string()),
                ("wsrep_local_state", state.to_string()),
                ("wsrep_desync", on(desync).to_string()),
                ("wsrep_reject_queries", reject.to_string()),
            ];
            let a = WsrepStatus::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
            let text: String = pairs.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect();
            prop_assert_eq!(&a, &WsrepStatus::parse(&text));
            let expect = ready && connected && primary && state == 4 && !desync
                && reject.eq_ignore_ascii_case("NONE");
            prop_assert_eq!(a.is_healthy(), expect);
            prop_assert_eq!(a.unfit_reason().is_none(), expect);
        }

        /// Never panics on any input.
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = WsrepStatus::parse(&s).unfit_reason();
        }
    }
}
