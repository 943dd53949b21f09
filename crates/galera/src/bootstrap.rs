//! The bootstrap decision: given what every member of the cluster reports (through the control
//! API), may the cluster be (re)started, by whom, and if not, whom are we waiting for and why.
//!
//! Every agent runs [`decide`] on its own view; an agent bootstraps only when the decision names
//! itself. The rules, in order:
//! 1. a member already in a Primary component (or starting a bootstrap) exists: join it;
//! 2. an operator forced a member (`keel db bootstrap --force`): that member;
//! 3. a member has `safe_to_bootstrap: 1` (the last one out after clean stops): that member;
//! 4. otherwise every member must have reported a known history:
//!    - nobody has ever been part of a cluster: the first member in config order (new cluster);
//!    - all have positions of the same cluster: the most advanced seqno, ties by config order;
//!    - any member unreachable, not yet recovered, or with no data while others have data: wait,
//!      naming each one and why. keel does not guess.
//!
//! Why agents cannot disagree: rules 3 and 4 depend only on facts every agent reads alike, and
//! rule 4 needs *all* members' reports, so an agent whose view lacks a member waits instead of
//! choosing differently (see the `partial_view_never_disagrees` property test). Galera keeps at
//! most one `safe_to_bootstrap: 1` per cluster, so rule 3 is unambiguous as well.
//! A member whose mariadbd still runs without quorum reports the running server's position as
//! its history, so the same rules serve a cluster that lost quorum with servers still up.
//! This module does no I/O.

use crate::grastate::GrState;
use crate::position::Position;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What an agent is doing with its mariadbd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// mariadbd is not running; the agent is deciding or waiting.
    Stopped,
    /// Recovering the position (`--wsrep-recover`).
    Recovering,
    /// Starting with `--wsrep-new-cluster`.
    Bootstrapping,
    /// Starting and joining a running cluster.
    Joining,
    /// mariadbd runs (see the wsrep status for its state).
    Running,
    /// Stopping cleanly.
    Stopping,
}

/// What a member's datadir says about its past.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum History {
    /// Not known yet (recovery not done).
    Unknown,
    /// Never part of a cluster: empty or missing datadir, or initialised but never started.
    Empty,
    /// Last committed position.
    At(Position),
}

/// One member's report, as served by its control API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberReport {
    pub phase: Phase,
    /// Its mariadbd is in a Primary component.
    pub primary: bool,
    pub history: History,
    /// `grastate.dat` as it was when the agent last read it (before starting mariadbd).
    pub grastate: Option<GrState>,
    /// The operator forced this member to bootstrap.
    pub force_bootstrap: bool,
}

/// A member as seen by the deciding agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberView {
    Unreachable { why: String },
    Reported(MemberReport),
}

/// Why a member bootstraps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BootstrapReason {
    /// Nobody has any data: a brand-new cluster.
    NewCluster,
    /// It has `safe_to_bootstrap: 1`: it was the last one out after clean stops.
    SafeToBootstrap,
    /// All members crashed; it has the highest recovered seqno.
    MostAdvanced { seqno: i64 },
    /// The operator forced it.
    Forced,
    /// It is already starting a bootstrap.
    InProgress,
}

/// A member the decision is waiting for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub node: String,
    pub why: String,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Decision {
    /// These members are in a Primary component: start and join them.
    Join { primary: Vec<String> },
    /// `node` bootstraps; every other member waits until it is Primary and then joins.
    Bootstrap {
        node: String,
        reason: BootstrapReason,
    },
    /// `node` bootstraps once the members in `running` have stopped their mariadbd: they run
    /// without quorum, and a running non-Primary member would merge into the new cluster with
    /// its own, older idea of the primary component (Galera then declares the new cluster's
    /// members inconsistent). Their agents stop them; they join after the bootstrap.
    StopFirst {
        node: String,
        reason: BootstrapReason,
        running: Vec<String>,
    },
    /// Nobody may bootstrap yet.
    Wait { waiting_for: Vec<Waiting> },
    /// The members' data cannot belong to one cluster; an operator must look.
    Conflict { problem: String },
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Join { primary } => {
                write!(f, "join the running cluster ({})", primary.join(", "))
            }
            Decision::Bootstrap { node, reason } => write!(f, "{node} bootstraps: {reason}"),
            Decision::StopFirst {
                node,
                reason,
                running,
            } => write!(
                f,
                "{node} bootstraps ({reason}) once {} stopped the mariadbd that runs without quorum",
                running.join(", ")
            ),
            Decision::Wait { waiting_for } => {
                write!(f, "waiting for ")?;
                for (i, w) in waiting_for.iter().enumerate() {
                    if i > 0 {
                        write!(f, "; ")?;
                    }
                    write!(f, "{}: {}", w.node, w.why)?;
                }
                write!(f, " (to override: keel db bootstrap --force NODE)")
            }
            Decision::Conflict { problem } => write!(f, "cannot decide: {problem}"),
        }
    }
}

impl fmt::Display for BootstrapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootstrapReason::NewCluster => write!(f, "brand-new cluster"),
            BootstrapReason::SafeToBootstrap => {
                write!(f, "it has safe_to_bootstrap: 1 (last one out)")
            }
            BootstrapReason::MostAdvanced { seqno } => {
                write!(f, "most advanced after a crash, seqno {seqno}")
            }
            BootstrapReason::Forced => write!(f, "forced by the operator"),
            BootstrapReason::InProgress => write!(f, "its bootstrap is in progress"),
        }
    }
}

/// Decides, from the members in config order (`members[i]` = `(name, view)`).
pub fn decide(members: &[(String, MemberView)]) -> Decision {
    let reports = || {
        members.iter().filter_map(|(n, v)| match v {
            MemberView::Reported(r) => Some((n, r)),
            MemberView::Unreachable { .. } => None,
        })
    };

    // 1. A running primary component, or a bootstrap under way.
    let primary: Vec<String> = reports()
        .filter(|(_, r)| r.primary)
        .map(|(n, _)| n.clone())
        .collect();
    if !primary.is_empty() {
        return Decision::Join { primary };
    }
    if let Some((n, _)) = reports().find(|(_, r)| r.phase == Phase::Bootstrapping) {
        return Decision::Bootstrap {
            node: n.clone(),
            reason: BootstrapReason::InProgress,
        };
    }
    // 2. The operator's explicit choice.
    if let Some((n, _)) = reports().find(|(_, r)| r.force_bootstrap) {
        return Decision::Bootstrap {
            node: n.clone(),
            reason: BootstrapReason::Forced,
        };
    }
    // Members whose mariadbd still runs, without quorum (nobody is Primary past rule 1): once
    // Synced, or still joining a cluster that is gone.
    let running: Vec<&String> = reports()
        .filter(|(_, r)| matches!(r.phase, Phase::Running | Phase::Joining))
        .map(|(n, _)| n)
        .collect();
    // A running member is made primary in place (`pc.bootstrap`), and the others running merge
    // into it; a stopped one starts a new primary component, which running members must not
    // meet.
    let start = |node: &String, reason: BootstrapReason| {
        let others: Vec<String> = running
            .iter()
            .filter(|n| **n != node)
            .map(|n| (*n).clone())
            .collect();
        if others.is_empty() || running.contains(&node) {
            Decision::Bootstrap {
                node: node.clone(),
                reason,
            }
        } else {
            Decision::StopFirst {
                node: node.clone(),
                reason,
                running: others,
            }
        }
    };
    // 3. The last one out after clean stops.
    if let Some((n, _)) = reports().find(|(_, r)| {
        // safe_to_bootstrap counts only after a clean stop (seqno saved); a crashed node's flag
        // may be stale.
        r.grastate
            .as_ref()
            .is_some_and(|g| g.safe_to_bootstrap && g.seqno >= 0)
            && matches!(r.history, History::At(_))
    }) {
        return start(n, BootstrapReason::SafeToBootstrap);
    }

    // 4. Everyone's history is needed.
    let anyone_has_data = reports().any(|(_, r)| matches!(r.history, History::At(_)));
    let mut waiting = Vec::new();
    for (name, view) in members {
        match view {
            MemberView::Unreachable { why } => waiting.push(Waiting {
                node: name.clone(),
                why: format!("unreachable ({why}); it may hold the most recent commits"),
            }),
            MemberView::Reported(r) => match r.history {
                History::Unknown => waiting.push(Waiting {
                    node: name.clone(),
                    why: "its position is not known yet (recovering)".into(),
                }),
                History::Empty if anyone_has_data => waiting.push(Waiting {
                    node: name.clone(),
                    why: "its data is missing (empty datadir); it may have held the most recent commits".into(),
                }),
                _ => {}
            },
        }
    }
    if !waiting.is_empty() {
        return Decision::Wait {
            waiting_for: waiting,
        };
    }
    if !anyone_has_data {
        return match members.first() {
            Some((n, _)) => Decision::Bootstrap {
                node: n.clone(),
                reason: BootstrapReason::NewCluster,
            },
            None => Decision::Conflict {
                problem: "the cluster has no members".into(),
            },
        };
    }
    let positions: Vec<(&String, &Position)> = reports()
        .filter_map(|(n, r)| match &r.history {
            History::At(p) => Some((n, p)),
            _ => None,
        })
        .collect();
    let uuid = &positions[0].1.uuid;
    if let Some((n, p)) = positions.iter().find(|(_, p)| &p.uuid != uuid) {
        return Decision::Conflict {
            problem: format!(
                "{} is at cluster {} but {} is at cluster {}: their data belongs to different clusters",
                positions[0].0, uuid, n, p.uuid
            ),
        };
    }
    // Highest seqno; a tie goes to a member whose mariadbd runs (made primary in place, the way
    // Galera documents for a cluster without quorum), then to the first in config order
    // (max_by keeps the last max, so compare with the index reversed).
    let (best, pos) = positions
        .iter()
        .enumerate()
        .max_by_key(|(i, (n, p))| (p.seqno, running.contains(n), std::cmp::Reverse(*i)))
        .map(|(_, x)| *x)
        .expect("someone has data");
    start(best, BootstrapReason::MostAdvanced { seqno: pos.seqno })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const U: &str = "5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f";

    fn stopped(history: History, safe: bool) -> MemberView {
        let grastate = match &history {
            History::At(p) => Some(GrState {
                uuid: p.uuid.clone(),
                seqno: p.seqno,
                safe_to_bootstrap: safe,
            }),
            _ => None,
        };
        MemberView::Reported(MemberReport {
            phase: Phase::Stopped,
            primary: false,
            history,
            grastate,
            force_bootstrap: false,
        })
    }
    fn at(seqno: i64) -> History {
        History::At(Position {
            uuid: U.into(),
            seqno,
        })
    }
    fn crashed(seqno: i64) -> MemberView {
        // after a crash grastate says -1 and the position comes from --wsrep-recover
        MemberView::Reported(MemberReport {
            phase: Phase::Stopped,
            primary: false,
            history: at(seqno),
            grastate: Some(GrState {
                uuid: U.into(),
                seqno: -1,
                safe_to_bootstrap: false,
            }),
            force_bootstrap: false,
        })
    }
    fn named(v: Vec<MemberView>) -> Vec<(String, MemberView)> {
        v.into_iter()
            .enumerate()
            .map(|(i, v)| (format!("node{}", i + 1), v))
            .collect()
    }
    fn bootstraps(d: &Decision) -> Option<&str> {
        match d {
            Decision::Bootstrap { node, .. } => Some(node),
            _ => None,
        }
    }

    #[test]
    fn brand_new_cluster_first_node() {
        let d = decide(&named(vec![stopped(History::Empty, false); 3]));
        assert_eq!(
            d,
            Decision::Bootstrap {
                node: "node1".into(),
                reason: BootstrapReason::NewCluster
            }
        );
    }

    #[test]
    fn brand_new_waits_for_unreachable() {
        let mut m = named(vec![stopped(History::Empty, false); 3]);
        m[2].1 = MemberView::Unreachable {
            why: "connection refused".into(),
        };
        let d = decide(&m);
        match &d {
            Decision::Wait { waiting_for } => {
                assert_eq!(waiting_for.len(), 1);
                assert_eq!(waiting_for[0].node, "node3");
                assert!(waiting_for[0].why.contains("connection refused"));
            }
            other => panic!("{other:?}"),
        }
        assert!(d.to_string().contains("--force"));
    }

    #[test]
    fn clean_stop_last_out_bootstraps_even_with_others_unreachable() {
        let m = named(vec![
            MemberView::Unreachable {
                why: "timeout".into(),
            },
            stopped(at(10), false),
            stopped(at(12), true),
        ]);
        assert_eq!(
            decide(&m),
            Decision::Bootstrap {
                node: "node3".into(),
                reason: BootstrapReason::SafeToBootstrap
            }
        );
    }

    #[test]
    fn stale_safe_flag_after_a_crash_is_ignored() {
        let mut m = named(vec![crashed(5), crashed(9), crashed(7)]);
        if let MemberView::Reported(r) = &mut m[0].1 {
            r.grastate.as_mut().unwrap().safe_to_bootstrap = true; // seqno still -1
        }
        assert_eq!(bootstraps(&decide(&m)), Some("node2"));
    }

    #[test]
    fn crash_most_advanced_with_ties_by_order() {
        let d = decide(&named(vec![crashed(5), crashed(9), crashed(9)]));
        assert_eq!(
            d,
            Decision::Bootstrap {
                node: "node2".into(),
                reason: BootstrapReason::MostAdvanced { seqno: 9 }
            }
        );
        let d = decide(&named(vec![crashed(7), crashed(7), crashed(7)]));
        assert_eq!(bootstraps(&d), Some("node1"));
    }

    /// A member whose mariadbd runs without quorum, at `seqno` (its running position).
    fn running(phase: Phase, seqno: i64) -> MemberView {
        MemberView::Reported(MemberReport {
            phase,
            primary: false,
            history: at(seqno),
            grastate: Some(GrState {
                uuid: U.into(),
                seqno: -1,
                safe_to_bootstrap: false,
            }),
            force_bootstrap: false,
        })
    }

    #[test]
    fn running_member_without_quorum_wins_a_tie_and_is_made_primary_in_place() {
        let d = decide(&named(vec![
            crashed(7),
            crashed(7),
            running(Phase::Running, 7),
        ]));
        assert_eq!(
            d,
            Decision::Bootstrap {
                node: "node3".into(),
                reason: BootstrapReason::MostAdvanced { seqno: 7 }
            }
        );
        // Strictly more advanced wins over running; two running members tie in config order.
        let d = decide(&named(vec![
            running(Phase::Running, 6),
            running(Phase::Running, 6),
            crashed(5),
        ]));
        assert_eq!(bootstraps(&d), Some("node1"));
    }

    #[test]
    fn a_stopped_member_bootstraps_only_after_running_ones_stop() {
        let d = decide(&named(vec![
            crashed(9),
            running(Phase::Running, 8),
            running(Phase::Joining, 8),
        ]));
        assert_eq!(
            d,
            Decision::StopFirst {
                node: "node1".into(),
                reason: BootstrapReason::MostAdvanced { seqno: 9 },
                running: vec!["node2".into(), "node3".into()],
            }
        );
        assert_eq!(bootstraps(&d), None, "nobody starts yet");
        assert!(d.to_string().contains("once node2, node3 stopped"), "{d}");
        // The last one out too waits for a running member to stop.
        let d = decide(&named(vec![
            stopped(at(4), false),
            stopped(at(9), true),
            running(Phase::Running, 4),
        ]));
        assert_eq!(
            d,
            Decision::StopFirst {
                node: "node2".into(),
                reason: BootstrapReason::SafeToBootstrap,
                running: vec!["node3".into()],
            }
        );
    }

    #[test]
    fn crash_with_missing_data_or_unreachable_waits() {
        let d = decide(&named(vec![
            crashed(5),
            stopped(History::Empty, false),
            crashed(3),
        ]));
        match d {
            Decision::Wait { waiting_for } => {
                assert_eq!(
                    waiting_for
                        .iter()
                        .map(|w| w.node.as_str())
                        .collect::<Vec<_>>(),
                    ["node2"]
                );
                assert!(waiting_for[0].why.contains("missing"));
            }
            other => panic!("{other:?}"),
        }
        let d = decide(&named(vec![
            crashed(5),
            MemberView::Unreachable { why: "x".into() },
            stopped(History::Unknown, false),
        ]));
        match d {
            Decision::Wait { waiting_for } => {
                assert_eq!(
                    waiting_for
                        .iter()
                        .map(|w| w.node.as_str())
                        .collect::<Vec<_>>(),
                    ["node2", "node3"]
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn force_overrides_waiting_and_running_primary_wins() {
        let mut m = named(vec![
            crashed(5),
            MemberView::Unreachable { why: "x".into() },
            crashed(3),
        ]);
        if let MemberView::Reported(r) = &mut m[2].1 {
            r.force_bootstrap = true;
        }
        assert_eq!(
            decide(&m),
            Decision::Bootstrap {
                node: "node3".into(),
                reason: BootstrapReason::Forced
            }
        );
        if let MemberView::Reported(r) = &mut m[0].1 {
            r.primary = true;
            r.phase = Phase::Running;
        }
        assert_eq!(
            decide(&m),
            Decision::Join {
                primary: vec!["node1".into()]
            }
        );
    }

    #[test]
    fn bootstrap_in_progress_is_not_repeated() {
        // While node2 bootstraps its grastate changes; the others must keep waiting for it.
        let mut m = named(vec![crashed(5), crashed(9), crashed(3)]);
        if let MemberView::Reported(r) = &mut m[1].1 {
            r.phase = Phase::Bootstrapping;
            r.history = History::Unknown;
        }
        assert_eq!(
            decide(&m),
            Decision::Bootstrap {
                node: "node2".into(),
                reason: BootstrapReason::InProgress
            }
        );
    }

    #[test]
    fn different_clusters_conflict() {
        let other = History::At(Position {
            uuid: "11111111-0b3f-11ef-9c6a-2a3b1c0d9e8f".into(),
            seqno: 50,
        });
        let d = decide(&named(vec![crashed(5), stopped(other, false), crashed(3)]));
        assert!(
            matches!(d, Decision::Conflict { ref problem } if problem.contains("different clusters")),
            "{d:?}"
        );
    }

    /// A full view of 1-5 members: each crashed (some seqno), cleanly stopped, running without
    /// quorum or empty; at most one `safe_to_bootstrap`, as Galera guarantees.
    fn full_view() -> impl Strategy<Value = Vec<(String, MemberView)>> {
        (1usize..=5)
            .prop_flat_map(|n| {
                (
                    proptest::collection::vec((0u8..4, 0i64..20), n),
                    proptest::option::of(0..n),
                    proptest::collection::vec(any::<bool>(), n),
                )
            })
            .prop_map(|(kinds, safe, _)| {
                let v = kinds
                    .iter()
                    .enumerate()
                    .map(|(i, (k, s))| match k {
                        0 => crashed(*s),
                        1 => stopped(at(*s), safe == Some(i)),
                        2 => running(Phase::Running, *s),
                        _ => stopped(History::Empty, false),
                    })
                    .collect();
                named(v)
            })
    }

    proptest! {
        /// Hiding members from a view can only turn a bootstrap into a wait, never into a
        /// bootstrap of another member: agents with different views never bootstrap two nodes.
        #[test]
        fn partial_view_never_disagrees(full in full_view(), hide in proptest::collection::vec(any::<bool>(), 5)) {
            let d_full = decide(&full);
            let mut partial = full.clone();
            for (i, m) in partial.iter_mut().enumerate() {
                if hide[i] { m.1 = MemberView::Unreachable { why: "hidden".into() }; }
            }
            let d_part = decide(&partial);
            let chosen = |d: &Decision| match d {
                Decision::Bootstrap { node, .. } | Decision::StopFirst { node, .. } => Some(node.clone()),
                _ => None,
            };
            if let Some(b) = chosen(&d_part) {
                prop_assert_eq!(Some(b), chosen(&d_full), "partial {:?} vs full {:?}", d_part, d_full);
            }
        }

        /// After a crash of all (no safe node), the chosen node has the highest seqno, and no
        /// earlier member in config order has the same seqno.
        #[test]
        fn crash_picks_highest_first(seqnos in proptest::collection::vec(0i64..10, 1..6)) {
            let m = named(seqnos.iter().map(|s| crashed(*s)).collect());
            let d = decide(&m);
            let max = *seqnos.iter().max().unwrap();
            let first = seqnos.iter().position(|s| *s == max).unwrap();
            prop_assert_eq!(d, Decision::Bootstrap { node: format!("node{}", first + 1), reason: BootstrapReason::MostAdvanced { seqno: max } });
        }

        /// With any member unreachable and no safe or forced member, nobody bootstraps.
        #[test]
        fn unreachable_means_no_guess(full in full_view(), who in 0usize..5) {
            let mut m = full;
            let who = who % m.len();
            m[who].1 = MemberView::Unreachable { why: "down".into() };
            let safe_present = m.iter().any(|(_, v)| matches!(v, MemberView::Reported(r) if r.grastate.as_ref().is_some_and(|g| g.safe_to_bootstrap && g.seqno >= 0)));
            let d = decide(&m);
            if !safe_present {
                let waits_for_who = matches!(&d, Decision::Wait { waiting_for } if waiting_for.iter().any(|w| w.node == m[who].0));
                prop_assert!(waits_for_who, "{:?}", d);
            }
        }
    }
}
