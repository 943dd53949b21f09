//! Per-backend health, a pure state machine: a check result goes in, the backend's state (and
//! whether it changed) comes out. No I/O and no clock: the monitor feeds it.
//!
//! A check passes only when the node is fit by keel's one health rule ([`galera::status`]): all
//! six of `wsrep_ready=ON`, `wsrep_connected=ON`, `wsrep_cluster_status=Primary`,
//! `wsrep_local_state=4` (Synced), `wsrep_desync=OFF` and `wsrep_reject_queries=NONE`. A timeout
//! (a hung or SIGSTOPped node) and an error (refused connection, `ERROR 1047`) are failures.
//! Rise/fall counters keep one slow answer from flapping a node: an up node goes down after
//! `fall` consecutive failures, a down node comes up after `rise` consecutive passes. A node never
//! seen yet takes its first result at once, so a freshly started proxy serves within one check.

pub use galera::WsrepStatus;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Which of the up nodes answer from a stale view: a node resumed after SIGSTOP (or cut off
/// until now) still reports `Primary`/`Synced` from the view it had, for about a second, until it
/// notices it was evicted. Its `wsrep_cluster_conf_id` is then lower than that of the nodes in the
/// current primary component, so among up nodes only those with the highest conf_id are fresh.
///
/// For samples taken at the same moment (a one-off check of every node). The proxy's own checks
/// run per node at different moments, so it uses [`stale_timed`].
pub fn stale(samples: &[Option<&WsrepStatus>], up: &[bool]) -> Vec<bool> {
    let conf = |i: usize| samples.get(i).copied().flatten().map_or(-1, |s| s.conf_id);
    let newest = (0..up.len())
        .filter(|i| up[*i])
        .map(conf)
        .max()
        .unwrap_or(-1);
    (0..up.len()).map(|i| up[i] && conf(i) < newest).collect()
}

/// How long a view change may take to reach every member: within this time after the first
/// node reported a new `wsrep_cluster_conf_id`, another node's older one is not held against it.
pub const VIEW_CHANGE_GRACE: Duration = Duration::from_millis(300);

/// [`stale`] for samples taken at different moments (each node is checked on its own clock):
/// a node is stale only if its sample was taken at least `grace` after some up node first
/// reported the newer view. Without this, a membership change (a non-writer leaving cleanly) that
/// lands between two nodes' checks made the writer look stale for one check and moved the role.
pub fn stale_timed(nodes: &[Option<TimedSample<'_>>], up: &[bool], grace: Duration) -> Vec<bool> {
    let conf = |i: usize| {
        nodes
            .get(i)
            .copied()
            .flatten()
            .map_or(-1, |s| s.sample.conf_id)
    };
    let newest = (0..up.len())
        .filter(|i| up[*i])
        .map(conf)
        .max()
        .unwrap_or(-1);
    let first_seen = (0..up.len())
        .filter(|i| up[*i] && conf(*i) == newest)
        .filter_map(|i| nodes.get(i).copied().flatten().map(|s| s.conf_since))
        .min();
    (0..up.len())
        .map(|i| {
            let Some(n) = nodes.get(i).copied().flatten() else {
                return false;
            };
            up[i] && conf(i) < newest && first_seen.is_some_and(|f| n.taken >= f + grace)
        })
        .collect()
}

/// A node's last sample with when it was taken and since when the node has reported its conf_id.
#[derive(Debug, Clone, Copy)]
pub struct TimedSample<'a> {
    pub sample: &'a WsrepStatus,
    pub taken: Instant,
    pub conf_since: Instant,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The node answered; the sample decides.
    Sample(WsrepStatus),
    /// No answer within the check timeout.
    Timeout,
    /// Connection or query failed.
    Error(String),
}

impl CheckOutcome {
    /// `None` when the check passed, else why it failed.
    pub fn failure(&self) -> Option<String> {
        match self {
            CheckOutcome::Sample(s) => s.unfit_reason(),
            CheckOutcome::Timeout => Some("check timed out".into()),
            CheckOutcome::Error(e) => Some(e.clone()),
        }
    }
}

/// Rise/fall thresholds (both at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub rise: u32,
    pub fall: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { rise: 2, fall: 2 }
    }
}

/// Up, down or not yet known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Unknown,
    Up,
    Down,
}

/// One backend's health as this proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub state: State,
    /// Consecutive passes (reset by a failure).
    pub passes: u32,
    /// Consecutive failures (reset by a pass).
    pub failures: u32,
    /// Why the last check failed, if it did.
    pub last_failure: Option<String>,
    /// The last sample a node answered with.
    pub last_sample: Option<WsrepStatus>,
    /// When `last_sample` was taken, and since when the node has reported its `conf_id`.
    pub sample_at: Option<Instant>,
    pub conf_since: Option<Instant>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: State::Unknown,
            passes: 0,
            failures: 0,
            last_failure: None,
            last_sample: None,
            sample_at: None,
            conf_since: None,
        }
    }
}

impl Health {
    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// Feeds one check result; returns the new state when it changed.
    pub fn observe(&mut self, outcome: &CheckOutcome, t: Thresholds) -> Option<State> {
        self.observe_at(outcome, t, Instant::now())
    }

    /// [`Health::observe`] of a check taken at `now`.
    pub fn observe_at(
        &mut self,
        outcome: &CheckOutcome,
        t: Thresholds,
        now: Instant,
    ) -> Option<State> {
        let rise = t.rise.max(1);
        let fall = t.fall.max(1);
        if let CheckOutcome::Sample(s) = outcome {
            let same_conf = self
                .last_sample
                .as_ref()
                .is_some_and(|l| l.conf_id == s.conf_id);
            if !same_conf || self.conf_since.is_none() {
                self.conf_since = Some(now);
            }
            self.sample_at = Some(now);
            self.last_sample = Some(s.clone());
        }
        let before = self.state;
        match outcome.failure() {
            None => {
                self.passes = self.passes.saturating_add(1);
                self.failures = 0;
                self.last_failure = None;
                if self.state == State::Unknown
                    || (self.state == State::Down && self.passes >= rise)
                {
                    self.state = State::Up;
                }
            }
            Some(why) => {
                self.failures = self.failures.saturating_add(1);
                self.passes = 0;
                self.last_failure = Some(why);
                if self.state == State::Unknown
                    || (self.state == State::Up && self.failures >= fall)
                {
                    self.state = State::Down;
                }
            }
        }
        (self.state != before).then_some(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn a_check_fails_with_the_reasons_of_the_health_rule() {
        assert_eq!(CheckOutcome::Sample(synced()).failure(), None);
        let mut donor = synced();
        donor.local_state = 2;
        donor.state = "Donor/Desynced".into();
        donor.desync = true;
        assert_eq!(
            CheckOutcome::Sample(donor).failure().as_deref(),
            Some("wsrep_local_state=2 (Donor/Desynced), wsrep_desync=ON")
        );
        let nothing = WsrepStatus::from_pairs(std::iter::empty::<(&str, &str)>());
        assert!(CheckOutcome::Sample(nothing).failure().is_some());
    }

    #[test]
    fn a_resumed_node_with_an_old_view_is_stale() {
        let mut old = synced();
        old.conf_id = 3;
        let mut cur = synced();
        cur.conf_id = 4;
        let samples = [Some(&old), Some(&cur), Some(&cur)];
        assert_eq!(stale(&samples, &[true, true, true]), [true, false, false]);
        // Only up nodes count, and a down node is never "stale".
        assert_eq!(
            stale(&samples, &[true, false, false]),
            [false, false, false]
        );
        assert_eq!(stale(&samples, &[false, true, true]), [false, false, false]);
        assert_eq!(stale(&[None, Some(&cur)], &[false, true]), [false, false]);
    }

    #[test]
    fn a_view_change_between_two_checks_is_not_staleness() {
        let mut old = synced();
        old.conf_id = 3;
        let mut cur = synced();
        cur.conf_id = 4;
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let g = VIEW_CHANGE_GRACE;
        // node0 was checked 10 ms after node1 first reported the new view: a race, not staleness.
        let nodes = [
            Some(TimedSample {
                sample: &old,
                taken: at(1010),
                conf_since: at(0),
            }),
            Some(TimedSample {
                sample: &cur,
                taken: at(1000),
                conf_since: at(1000),
            }),
            Some(TimedSample {
                sample: &cur,
                taken: at(1200),
                conf_since: at(1200),
            }),
        ];
        assert_eq!(
            stale_timed(&nodes, &[true, true, true], g),
            [false, false, false]
        );
        // Still the old view well after the others moved on (a resumed node): stale.
        let nodes = [
            Some(TimedSample {
                sample: &old,
                taken: at(2500),
                conf_since: at(0),
            }),
            Some(TimedSample {
                sample: &cur,
                taken: at(2400),
                conf_since: at(1000),
            }),
            Some(TimedSample {
                sample: &cur,
                taken: at(2450),
                conf_since: at(1200),
            }),
        ];
        assert_eq!(
            stale_timed(&nodes, &[true, true, true], g),
            [true, false, false]
        );
        // Down nodes neither count nor are stale; a missing sample is not stale.
        assert_eq!(
            stale_timed(&nodes, &[true, false, false], g),
            [false, false, false]
        );
        assert_eq!(
            stale_timed(&[None, nodes[1]], &[true, true], g),
            [false, false]
        );
    }

    #[test]
    fn conf_since_follows_conf_changes() {
        let t0 = Instant::now();
        let mut a = synced();
        a.conf_id = 3;
        let mut b = synced();
        b.conf_id = 4;
        let mut h = Health::default();
        let th = Thresholds::default();
        h.observe_at(&CheckOutcome::Sample(a.clone()), th, t0);
        h.observe_at(
            &CheckOutcome::Sample(a),
            th,
            t0 + Duration::from_millis(500),
        );
        assert_eq!(h.conf_since, Some(t0));
        h.observe_at(&CheckOutcome::Sample(b), th, t0 + Duration::from_secs(1));
        assert_eq!(h.conf_since, Some(t0 + Duration::from_secs(1)));
        assert_eq!(h.sample_at, Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn timeout_and_error_are_failures() {
        assert!(CheckOutcome::Timeout.failure().is_some());
        assert!(CheckOutcome::Error("refused".into()).failure().is_some());
        let mut h = Health::default();
        assert_eq!(
            h.observe(&CheckOutcome::Timeout, Thresholds::default()),
            Some(State::Down)
        );
    }

    #[test]
    fn one_slow_answer_does_not_flap() {
        let t = Thresholds { rise: 2, fall: 2 };
        let ok = CheckOutcome::Sample(synced());
        let mut h = Health::default();
        assert_eq!(h.observe(&ok, t), Some(State::Up));
        assert_eq!(h.observe(&CheckOutcome::Timeout, t), None);
        assert!(h.is_up());
        assert_eq!(h.observe(&ok, t), None);
        assert_eq!(h.observe(&CheckOutcome::Timeout, t), None);
        assert_eq!(h.observe(&CheckOutcome::Timeout, t), Some(State::Down));
        assert_eq!(h.observe(&ok, t), None);
        assert_eq!(h.observe(&ok, t), Some(State::Up));
    }

    fn outcome() -> impl Strategy<Value = bool> {
        any::<bool>()
    }

    proptest! {
        /// The state after any history equals what the rule says: Unknown only before the first
        /// check; otherwise it changed exactly when a run of `rise` passes / `fall` failures
        /// completed (or at the first result).
        #[test]
        fn matches_reference_model(history in proptest::collection::vec(outcome(), 0..60),
                                   rise in 1u32..4, fall in 1u32..4) {
            let t = Thresholds { rise, fall };
            let ok = CheckOutcome::Sample(synced());
            let bad = CheckOutcome::Error("x".into());
            let mut h = Health::default();
            let mut model: Option<bool> = None;
            let mut run: (bool, u32) = (true, 0);
            for (i, pass) in history.iter().enumerate() {
                let changed = h.observe(if *pass { &ok } else { &bad }, t);
                run = if run.0 == *pass && i > 0 { (*pass, run.1 + 1) } else { (*pass, 1) };
                let before = model;
                model = match model {
                    None => Some(*pass),
                    Some(up) if up && !*pass && run.1 >= fall => Some(false),
                    Some(up) if !up && *pass && run.1 >= rise => Some(true),
                    m => m,
                };
                prop_assert_eq!(h.is_up(), model == Some(true));
                prop_assert_eq!(changed.is_some(), before != model);
            }
            if history.is_empty() {
                prop_assert_eq!(h.state, State::Unknown);
            }
        }

        /// A single failure between passes never takes an up node down when fall >= 2.
        #[test]
        fn isolated_failures_never_flap(pattern in proptest::collection::vec(any::<bool>(), 1..60)) {
            let t = Thresholds { rise: 2, fall: 2 };
            let ok = CheckOutcome::Sample(synced());
            let mut h = Health::default();
            h.observe(&ok, t);
            for fail in pattern {
                if fail {
                    h.observe(&CheckOutcome::Timeout, t);
                }
                h.observe(&ok, t);
                prop_assert!(h.is_up());
            }
        }
    }
}
