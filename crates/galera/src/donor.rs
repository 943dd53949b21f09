//! Which nodes a joining node asks for its state transfer (`wsrep_sst_donor`), pure.
//!
//! A donor cannot serve clients while it donates: with rsync SST it holds `FLUSH TABLES WITH READ
//! LOCK` and sits in state 2 (`Donor/Desynced`) for the whole copy, and even an IST donor passes
//! through that state. keel's db-proxy sends traffic only to a Synced node, so if Galera picked the
//! **writer** as donor, every proxy would move the writer away (closing the connections open to
//! it, aborting their transactions) just because some other node restarted. Galera's own choice
//! ignores the proxies: without `wsrep_sst_donor` it takes whichever Synced node it finds first.
//!
//! So a node that joins names every other node **except the writer**, in the order of the cluster
//! description, and ends the list with a comma. Galera tries the named nodes in order, skips those
//! that are not Synced (down, donating already, desynced), and the trailing comma lets it fall back
//! to any node, the writer included, when none of them can donate: a restart is never blocked
//! waiting for a preferred donor, it only avoids the writer when it can.
//!
//! The names are the `wsrep_node_name` values keel writes into each my.cnf ([`crate::mycnf`]),
//! which are the node names of the description and the names the writer row holds.

/// The `wsrep_sst_donor` value for node `me` joining a cluster of `members` (description order)
/// while the db-proxies route to `writer`: the other members without the writer, each followed
/// by a comma (`"node2,node3,"`).
///
/// `None` (no preference: Galera chooses) when the writer is unknown, is `me` itself or not a
/// member (a stale view: nobody to avoid), or when the writer is the only other member (it is the
/// only possible donor anyway).
pub fn preferred_donors(members: &[&str], me: &str, writer: Option<&str>) -> Option<String> {
    let writer = writer?;
    if writer == me || !members.contains(&writer) {
        return None;
    }
    let mut list = String::new();
    for m in members.iter().filter(|m| **m != me && **m != writer) {
        list.push_str(m);
        list.push(',');
    }
    (!list.is_empty()).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_the_non_writers_in_order_with_a_fallback_comma() {
        let m = ["node1", "node2", "node3"];
        assert_eq!(
            preferred_donors(&m, "node3", Some("node1")).as_deref(),
            Some("node2,")
        );
        assert_eq!(
            preferred_donors(&m, "node1", Some("node2")).as_deref(),
            Some("node3,")
        );
        let five = ["a", "b", "c", "d", "e"];
        assert_eq!(
            preferred_donors(&five, "c", Some("b")).as_deref(),
            Some("a,d,e,")
        );
    }

    #[test]
    fn no_preference_when_there_is_nothing_to_avoid() {
        let m = ["node1", "node2", "node3"];
        assert_eq!(preferred_donors(&m, "node2", None), None);
        // The joiner itself was the writer (it crashed; the proxies move the role).
        assert_eq!(preferred_donors(&m, "node1", Some("node1")), None);
        // A writer name that is not a member (another cluster's row, a renamed node).
        assert_eq!(preferred_donors(&m, "node1", Some("old")), None);
        // Two nodes: the writer is the only possible donor.
        assert_eq!(preferred_donors(&["a", "b"], "b", Some("a")), None);
        assert_eq!(preferred_donors(&["a"], "a", Some("a")), None);
    }

    proptest! {
        /// Whatever the membership: the list never names the writer or the joiner, names every
        /// other member once, keeps the description order and ends with the fallback comma.
        #[test]
        fn never_the_writer_never_self(n in 1usize..7, me in 0usize..7, w in 0usize..8) {
            let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
            let members: Vec<&str> = names.iter().map(String::as_str).collect();
            let me = &format!("n{}", me % n);
            let writer = format!("n{w}");
            match preferred_donors(&members, me, Some(&writer)) {
                Some(list) => {
                    prop_assert!(list.ends_with(','));
                    let named: Vec<&str> = list.trim_end_matches(',').split(',').collect();
                    let want: Vec<&str> = members.iter().copied()
                        .filter(|m| *m != me.as_str() && *m != writer.as_str()).collect();
                    prop_assert_eq!(named, want);
                }
                None => {
                    let others = members.iter().filter(|m| **m != me.as_str() && **m != writer.as_str()).count();
                    prop_assert!(others == 0 || writer == *me || !members.contains(&writer.as_str()));
                }
            }
        }
    }
}
