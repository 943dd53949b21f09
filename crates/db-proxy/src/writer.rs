//! The writer rule, a pure function (see the crate docs for why every proxy agrees).
//!
//! Input: the row of `keel_meta.writer` as read from a healthy Primary node (`None` when the
//! table is still empty), and this proxy's view of every node in the order of the cluster
//! description (healthy? drained?). Output: route to the named node, or claim the role for a
//! candidate with a compare-and-set on the epoch, or no writer (and why).
//!
//! The rule never looks at anything but the row to pick *whom to route to*: a proxy routes only
//! to the node the row names. It proposes a change only when that node is unhealthy (in its view)
//! or drained, so a node that comes back never takes the role back (no failback), and a proxy
//! started late computes the same answer as one that has run for days.

use serde::Serialize;

/// `keel_meta.writer` (id = 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriterRow {
    pub node: String,
    pub epoch: u64,
}

/// One node as this proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub healthy: bool,
    pub drained: bool,
}

/// What the proxy should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send new connections to this node (the one the row names).
    Route(String),
    /// Try to make `node` the writer: `INSERT` when `expected_epoch` is `None`, else
    /// `UPDATE … SET node = node, epoch = epoch + 1 WHERE id = 1 AND epoch = expected_epoch`.
    Claim {
        expected_epoch: Option<u64>,
        node: String,
    },
    /// Nobody can take writes; the reason goes into the error clients receive.
    NoWriter(String),
}

/// The rule. `nodes` is in the order of the cluster description, which breaks ties when a new
/// writer must be chosen (the first healthy, undrained node).
pub fn decide(nodes: &[NodeView], row: Option<&WriterRow>) -> Action {
    let named = row.and_then(|r| nodes.iter().find(|n| n.name == r.node));
    if let Some(n) = named {
        if n.healthy && !n.drained {
            return Action::Route(n.name.clone());
        }
    }
    let not_named = |n: &&NodeView| Some(&n.name) != row.map(|r| &r.node);
    let candidate = nodes
        .iter()
        .filter(not_named)
        .find(|n| n.healthy && !n.drained);
    // Drained nodes still work: when no other node is healthy, writing to one beats refusing
    // every write. The named node keeps the role in that case; otherwise the first drained one.
    let fallback = nodes.iter().filter(not_named).find(|n| n.healthy);
    match (candidate, named) {
        (Some(c), _) => Action::Claim {
            expected_epoch: row.map(|r| r.epoch),
            node: c.name.clone(),
        },
        (None, Some(n)) if n.healthy => Action::Route(n.name.clone()),
        (None, _) if fallback.is_some() => Action::Claim {
            expected_epoch: row.map(|r| r.epoch),
            node: fallback.map(|n| n.name.clone()).unwrap_or_default(),
        },
        (None, _) => {
            let why: Vec<String> = nodes
                .iter()
                .map(|n| {
                    format!(
                        "{}: {}",
                        n.name,
                        if !n.healthy { "unhealthy" } else { "drained" }
                    )
                })
                .collect();
            Action::NoWriter(format!(
                "no healthy Galera node can take writes ({})",
                why.join(", ")
            ))
        }
    }
}

/// Applies a claim to a row as the database's compare-and-set does: succeeds only if the row is
/// still at `expected_epoch` (or absent for an insert). Used by the model tests and documents
/// the SQL's semantics.
pub fn apply_claim(row: &mut Option<WriterRow>, expected_epoch: Option<u64>, node: &str) -> bool {
    match (row.as_mut(), expected_epoch) {
        (None, None) => {
            *row = Some(WriterRow {
                node: node.into(),
                epoch: 1,
            });
            true
        }
        (Some(r), Some(e)) if r.epoch == e => {
            r.node = node.into();
            r.epoch += 1;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn view(spec: &[(&str, bool, bool)]) -> Vec<NodeView> {
        spec.iter()
            .map(|(n, h, d)| NodeView {
                name: n.to_string(),
                healthy: *h,
                drained: *d,
            })
            .collect()
    }
    fn row(node: &str, epoch: u64) -> WriterRow {
        WriterRow {
            node: node.into(),
            epoch,
        }
    }

    #[test]
    fn routes_to_the_named_node_even_if_not_first() {
        let v = view(&[("a", true, false), ("b", true, false), ("c", true, false)]);
        assert_eq!(decide(&v, Some(&row("b", 4))), Action::Route("b".into()));
    }

    #[test]
    fn empty_table_claims_first_healthy() {
        let v = view(&[("a", false, false), ("b", true, false), ("c", true, false)]);
        assert_eq!(
            decide(&v, None),
            Action::Claim {
                expected_epoch: None,
                node: "b".into()
            }
        );
    }

    #[test]
    fn unhealthy_or_drained_writer_is_replaced() {
        let v = view(&[("a", false, false), ("b", true, false), ("c", true, false)]);
        assert_eq!(
            decide(&v, Some(&row("a", 7))),
            Action::Claim {
                expected_epoch: Some(7),
                node: "b".into()
            }
        );
        let v = view(&[("a", true, true), ("b", true, true), ("c", true, false)]);
        assert_eq!(
            decide(&v, Some(&row("a", 7))),
            Action::Claim {
                expected_epoch: Some(7),
                node: "c".into()
            }
        );
        // A row naming a node not in the description is replaced too.
        let v = view(&[("a", true, false)]);
        assert_eq!(
            decide(&v, Some(&row("zz", 2))),
            Action::Claim {
                expected_epoch: Some(2),
                node: "a".into()
            }
        );
    }

    #[test]
    fn drained_sole_survivor_keeps_the_role_and_nothing_healthy_says_why() {
        let v = view(&[("a", true, true), ("b", false, false)]);
        assert_eq!(decide(&v, Some(&row("a", 1))), Action::Route("a".into()));
        let v = view(&[("a", false, false), ("b", true, true)]);
        assert_eq!(
            decide(&v, Some(&row("a", 1))),
            Action::Claim {
                expected_epoch: Some(1),
                node: "b".into()
            }
        );
        let v = view(&[("a", false, false), ("b", false, true)]);
        match decide(&v, Some(&row("a", 1))) {
            Action::Claim { .. } | Action::Route(_) => panic!("nothing is healthy"),
            Action::NoWriter(why) => assert!(
                why.contains("a: unhealthy") && why.contains("b: unhealthy"),
                "{why}"
            ),
        }
    }

    #[test]
    fn cas_semantics() {
        let mut r = None;
        assert!(apply_claim(&mut r, None, "a"));
        assert!(!apply_claim(&mut r, None, "b"));
        assert!(!apply_claim(&mut r, Some(5), "b"));
        assert!(apply_claim(&mut r, Some(1), "b"));
        assert_eq!(r, Some(row("b", 2)));
    }

    /// Events of the model: flip a node's health or drain flag, start a proxy late, or let one
    /// proxy run one tick (read the row, decide, maybe claim).
    #[derive(Debug, Clone)]
    enum Ev {
        Health(usize, bool),
        Drain(usize, bool),
        Tick(usize),
        /// A proxy whose view of node n lags: it sees the opposite of the truth this tick.
        StaleTick(usize, usize),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            (0usize..3, any::<bool>()).prop_map(|(n, h)| Ev::Health(n, h)),
            (0usize..3, any::<bool>()).prop_map(|(n, d)| Ev::Drain(n, d)),
            (0usize..4).prop_map(Ev::Tick),
            (0usize..4, 0usize..3).prop_map(|(p, n)| Ev::StaleTick(p, n)),
        ]
    }

    proptest! {
        /// Several proxies (some started late, some with a stale view) sharing one row:
        /// * a proxy routes only to the node the row names at the time it read it, so two
        ///   proxies that read the same epoch route to the same node;
        /// * the row changes only when the proxy that changed it saw the named node unhealthy
        ///   or drained (no failback: a healthy, undrained writer is never replaced);
        /// * epochs only grow;
        /// * once views are accurate and stable, one tick of every proxy makes all agree.
        #[test]
        fn proxies_agree_without_failback(events in proptest::collection::vec(ev(), 1..80)) {
            let names = ["n1", "n2", "n3"];
            let mut healthy = [true; 3];
            let mut drained = [false; 3];
            let mut row: Option<WriterRow> = None;
            let mut routes: Vec<Option<(String, u64)>> = vec![None; 4];
            for e in events {
                let (proxy, stale) = match e {
                    Ev::Health(n, h) => { healthy[n] = h; continue }
                    Ev::Drain(n, d) => { drained[n] = d; continue }
                    Ev::Tick(p) => (p, None),
                    Ev::StaleTick(p, n) => (p, Some(n)),
                };
                let v: Vec<NodeView> = (0..3).map(|i| NodeView {
                    name: names[i].into(),
                    healthy: if stale == Some(i) { !healthy[i] } else { healthy[i] },
                    drained: drained[i],
                }).collect();
                let before = row.clone();
                match decide(&v, row.as_ref()) {
                    Action::Route(n) => {
                        let r = row.as_ref().expect("routes only to a named node");
                        prop_assert_eq!(&n, &r.node);
                        routes[proxy] = Some((n, r.epoch));
                    }
                    Action::Claim { expected_epoch, node } => {
                        if let Some(r) = &before {
                            let named = v.iter().find(|x| x.name == r.node);
                            prop_assert!(!named.is_some_and(|x| x.healthy && !x.drained), "failback");
                        }
                        prop_assert!(apply_claim(&mut row, expected_epoch, &node));
                        routes[proxy] = None;
                    }
                    Action::NoWriter(_) => routes[proxy] = None,
                }
                if let (Some(b), Some(a)) = (&before, &row) {
                    prop_assert!(a.epoch >= b.epoch);
                }
                // Any two proxies that read the same epoch route to the same node.
                for x in routes.iter().flatten() {
                    for y in routes.iter().flatten() {
                        if x.1 == y.1 { prop_assert_eq!(&x.0, &y.0); }
                    }
                }
            }
            // Stable, accurate views: two rounds of ticks and everybody routes to the row's node.
            let v: Vec<NodeView> = (0..3).map(|i| NodeView { name: names[i].into(), healthy: healthy[i], drained: drained[i] }).collect();
            let mut finals = Vec::new();
            for _round in 0..2 {
                finals.clear();
                for _p in 0..4 {
                    match decide(&v, row.as_ref()) {
                        Action::Claim { expected_epoch, node } => { apply_claim(&mut row, expected_epoch, &node); finals.push(None) }
                        Action::Route(n) => finals.push(Some(n)),
                        Action::NoWriter(_) => finals.push(None),
                    }
                }
            }
            let first = finals[0].clone();
            prop_assert!(finals.iter().all(|f| *f == first));
            if healthy.iter().any(|h| *h) {
                prop_assert!(first.is_some());
            }
        }
    }
}
