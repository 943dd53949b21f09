//! Follower read leases: the leader's table of lease holders, and the rules that keep reads
//! served from a holder's own replica linearizable. Pure (every clock reading is passed in), so
//! the rules are unit-tested here; [`LeaseGate`] wraps the table for the node, the network and
//! the state machine.
//!
//! # The rules
//! A follower that holds a lease serves a linearizable read from its own replica, with no round
//! trip to the leader, once it has applied `max(G, its last log index)`, where `G` is the index
//! the leader sent with the lease. That is safe because:
//! 1. **Nothing becomes visible anywhere before every holder has it in its log.** A holder's
//!    log index is the leader's `matched` for it (from append responses). The leader applies an
//!    entry (and so acknowledges it, or lets a leader read see it) only once every holder whose
//!    lease has not run out has matched it ([`Holders::release`]), and the commit index it
//!    sends followers is held back to the lowest holder's match ([`Holders::clamp`]), so no
//!    follower applies it earlier either. An expired holder stops counting: its own clock ran
//!    out first, since it counts its lease from before it asked and for less time
//!    ([`follower_lease`]).
//! 2. **A new holder first catches up with everything already visible**: `G` is at least every
//!    commit index sent so far, every entry the leader's state machine was cleared to apply (the
//!    clearance and a grant take the same lock, so an entry cleared just before a grant is not
//!    missed by it) and the leader's read index ([`Holders::grant`]).
//! 3. **No other leader exists while a lease holds.** The leader grants only inside its own read
//!    lease (100 ms from a quorum heartbeat whose voters refuse votes for `election_max_ms`,
//!    400 ms); a holder's lease ends at most `lease` after the grant, so it has run out before
//!    any later leader can be elected, and that leader need not know about it.
//!
//!
//! The same bound serves reads without a lease: the read index a leader gives from its own read
//! lease is at least `exposed` (every commit index sent so far), not only its applied index,
//! because a follower may apply, and show, an entry before the leader has applied it.
//!
//! Liveness: a holder that stops answering costs writes at most its remaining lease; the leader
//! renews a lease only for a holder whose last append was answered promptly and that is within
//! [`MAX_LAG`] entries of the leader.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use openraft::LogId;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::NodeId;

/// A holder further behind than this many entries gets no lease (it would hold writes back
/// while it catches up); it reads through the read index instead.
pub const MAX_LAG: u64 = 1024;

/// The part of a lease of length `lease` a follower may use, counted from before it asked: a
/// margin for clocks that run at slightly different rates on different hosts.
pub fn follower_lease(lease: Duration) -> Duration {
    lease - lease / 8
}

/// Why a lease was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The request named another term than the leader's.
    Term,
    /// The follower has not matched any entry of this term yet, or is too far behind.
    Behind,
    /// An append to the follower has been unanswered for too long.
    Slow,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Term => "lease refused: term changed",
            Refusal::Behind => "lease refused: follower behind",
            Refusal::Slow => "lease refused: follower slow to answer appends",
        })
    }
}

#[derive(Default, Debug)]
struct Follower {
    /// Lease end, by the leader's clock (None: no lease).
    until: Option<Instant>,
    /// Highest log id this follower has confirmed in this term.
    matched: Option<LogId<NodeId>>,
    /// When the oldest append still unanswered was sent.
    pending_since: Option<Instant>,
}

impl Follower {
    /// Whether its lease has not run out at `now`.
    fn holds(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| u > now)
    }
}

/// The leader's lease table for one term.
#[derive(Default, Debug)]
pub struct Holders {
    term: u64,
    followers: HashMap<NodeId, Follower>,
    /// Highest applied count (log index + 1) any node may have made visible: commit indexes
    /// sent (after clamping) and entries the leader was cleared to apply ([`Holders::release`]).
    exposed: u64,
    /// The held-back commit index last sent, while one was held back.
    held: Option<Option<LogId<NodeId>>>,
}

fn count(l: Option<LogId<NodeId>>) -> u64 {
    l.map(|l| l.index + 1).unwrap_or(0)
}

impl Holders {
    /// Forget everything of an older term. Returns whether `term` is the table's term now.
    fn at_term(&mut self, term: u64) -> bool {
        if term > self.term {
            *self = Holders {
                term,
                ..Holders::default()
            };
        }
        term == self.term
    }

    /// This node stopped leading: no lease it granted counts any more.
    pub fn step_down(&mut self) {
        *self = Holders {
            term: self.term,
            ..Holders::default()
        };
    }

    /// Grant (or renew) follower `id` a lease until `now + lease`, if it is close enough behind.
    /// `read_index` is the leader's read index now (applied count covering every acknowledged
    /// write). Returns `G`, the applied count the holder must reach before it serves a read.
    pub fn grant(
        &mut self,
        id: NodeId,
        term: u64,
        now: Instant,
        lease: Duration,
        read_index: u64,
    ) -> Result<u64, Refusal> {
        if !self.at_term(term) {
            return Err(Refusal::Term);
        }
        let f = self.followers.entry(id).or_default();
        if f.matched.is_none() || count(f.matched) + MAX_LAG < read_index {
            return Err(Refusal::Behind);
        }
        if f.pending_since
            .is_some_and(|t| now.saturating_duration_since(t) > lease / 2)
        {
            return Err(Refusal::Slow);
        }
        f.until = f.until.max(Some(now + lease));
        Ok(read_index.max(self.exposed))
    }

    /// An append (or heartbeat) of `term` is about to be sent to `id`.
    pub fn sending(&mut self, id: NodeId, term: u64, now: Instant) {
        if self.at_term(term) {
            let f = self.followers.entry(id).or_default();
            f.pending_since.get_or_insert(now);
        }
    }

    /// `id` answered an append of `term`: it holds everything up to `matched` (None: the append
    /// failed or conflicted, nothing new is known). Returns whether `id` holds a lease (waiters
    /// on the release must look again).
    pub fn answered(&mut self, id: NodeId, term: u64, matched: Option<LogId<NodeId>>) -> bool {
        if !self.at_term(term) {
            return false;
        }
        let f = self.followers.entry(id).or_default();
        f.pending_since = None;
        if matched > f.matched {
            f.matched = matched;
        }
        f.until.is_some()
    }

    /// Whether the commit index followers were last sent was held back and the holders now
    /// allow a higher one (a heartbeat should carry it). Asks once per hold.
    pub fn take_released(&mut self, now: Instant) -> bool {
        let Some(sent) = self.held else { return false };
        let bound = self
            .followers
            .values()
            .filter(|f| f.holds(now))
            .map(|f| f.matched)
            .min();
        if bound.is_none_or(|b| b > sent) {
            self.held = None;
            return true;
        }
        false
    }

    /// The commit index to send followers in `term`: `commit`, held back to the lowest match of
    /// the holders whose lease has not run out at `now`.
    pub fn clamp(
        &mut self,
        term: u64,
        commit: Option<LogId<NodeId>>,
        now: Instant,
    ) -> Option<LogId<NodeId>> {
        if !self.at_term(term) {
            return commit;
        }
        let mut c = commit;
        for f in self.followers.values_mut() {
            if !f.holds(now) {
                f.until = None;
            } else if f.matched < c {
                c = f.matched;
            }
        }
        self.held = (c != commit).then_some(c);
        self.exposed = self.exposed.max(count(c));
        c
    }

    /// Highest applied count any node may have made visible (see `exposed`).
    pub fn exposed(&self) -> u64 {
        self.exposed
    }

    /// Clear entries up to applied count `upto` to be applied (made visible) at `now`: None if
    /// every holder has them (they count as exposed from here on, so a later grant covers them),
    /// else the earliest time a holder that lacks them loses its lease.
    pub fn release(&mut self, upto: u64, now: Instant) -> Option<Instant> {
        let blocked = self
            .followers
            .values()
            .filter(|f| f.holds(now) && count(f.matched) < upto)
            .filter_map(|f| f.until)
            .min();
        if blocked.is_none() {
            self.exposed = self.exposed.max(upto);
        }
        blocked
    }
}

/// The lease table shared by the node (grants), the network (appends) and the state machine
/// (applies), with the wake-ups between them.
#[derive(Default)]
pub struct LeaseGate {
    pub table: Mutex<Holders>,
    /// A holder's match moved or a lease ended: blocked applies look again.
    changed: Notify,
    /// A held-back commit index was released: send a heartbeat so followers learn it.
    heartbeat: Notify,
}

impl LeaseGate {
    /// Note an append's answer; wakes what waits on it.
    pub fn answered(&self, id: NodeId, term: u64, matched: Option<LogId<NodeId>>) {
        let (holder, released) = {
            let mut t = self.table.lock();
            let holder = t.answered(id, term, matched);
            (holder, holder && t.take_released(Instant::now()))
        };
        if holder {
            self.changed.notify_waiters();
        }
        if released {
            self.heartbeat.notify_one();
        }
    }

    /// Highest applied count any node may have made visible so far ([`Holders::exposed`]).
    pub fn exposed(&self) -> u64 {
        self.table.lock().exposed()
    }

    pub fn step_down(&self) {
        self.table.lock().step_down();
        self.changed.notify_waiters();
    }

    /// Wait until entries up to applied count `upto` may become visible (see
    /// [`Holders::release`]); returns at once when no lease holder lacks them.
    pub async fn wait_release(&self, upto: u64) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let Some(until) = self.table.lock().release(upto, Instant::now()) else {
                return;
            };
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    /// Resolves when a heartbeat should carry a released commit index.
    pub async fn heartbeat_wanted(&self) {
        self.heartbeat.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn lid(index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(1, 1), index))
    }

    const L: Duration = Duration::from_millis(100);

    #[test]
    fn no_holders_nothing_held_back() {
        let mut h = Holders::default();
        let now = Instant::now();
        h.answered(2, 1, lid(5));
        assert_eq!(h.clamp(1, lid(9), now), lid(9));
        assert_eq!(h.release(10, now), None);
        assert!(!h.take_released(now));
    }

    #[test]
    fn a_holder_holds_back_commit_and_apply_until_it_matches() {
        let mut h = Holders::default();
        let now = Instant::now();
        assert_eq!(
            h.grant(2, 1, now, L, 3),
            Err(Refusal::Behind),
            "no match known yet"
        );
        h.answered(2, 1, lid(4));
        h.answered(3, 1, lid(4));
        assert_eq!(h.grant(2, 1, now, L, 5), Ok(5));
        // Node 3 confirms entry 8 first: commit reaches 8, but node 2 has only 4.
        h.answered(3, 1, lid(8));
        assert_eq!(h.clamp(1, lid(8), now), lid(4));
        assert!(!h.take_released(now), "node 2 has not moved");
        assert_eq!(h.release(9, now), Some(now + L));
        assert_eq!(h.release(5, now), None);
        h.answered(2, 1, lid(6));
        assert!(h.take_released(now), "6 may go out now");
        assert!(!h.take_released(now), "asked once");
        assert_eq!(h.clamp(1, lid(8), now), lid(6));
        h.answered(2, 1, lid(8));
        assert_eq!(h.release(9, now), None);
        assert!(h.take_released(now));
        assert_eq!(h.clamp(1, lid(8), now), lid(8));
        assert!(!h.take_released(now));
    }

    #[test]
    fn an_expired_holder_stops_counting() {
        let mut h = Holders::default();
        let now = Instant::now();
        h.answered(2, 1, lid(4));
        h.grant(2, 1, now, L, 5).unwrap();
        assert!(h.release(7, now).is_some());
        let later = now + L;
        assert_eq!(h.release(7, later), None);
        assert_eq!(h.clamp(1, lid(6), later), lid(6));
    }

    #[test]
    fn a_new_holder_catches_up_with_what_was_exposed() {
        let mut h = Holders::default();
        let now = Instant::now();
        h.answered(2, 1, lid(3));
        h.answered(3, 1, lid(20));
        // Commit 20 went out (no holders): anything up to 20 may be visible on node 3.
        assert_eq!(h.clamp(1, lid(20), now), lid(20));
        assert_eq!(h.grant(2, 1, now, L, 12), Ok(21));
        assert_eq!(h.exposed(), 21, "a leader's read index covers it too");
    }

    #[test]
    fn a_grant_covers_entries_cleared_for_apply() {
        let mut h = Holders::default();
        let now = Instant::now();
        h.answered(2, 1, lid(3));
        // Entries up to 10 cleared (no holders yet) but not applied, nor sent as committed.
        assert_eq!(h.release(10, now), None);
        assert_eq!(
            h.grant(2, 1, now, L, 4),
            Ok(10),
            "the new holder must wait for them"
        );
    }

    #[test]
    fn slow_or_far_behind_followers_get_no_lease() {
        let mut h = Holders::default();
        let now = Instant::now();
        h.answered(2, 1, lid(1));
        assert_eq!(h.grant(2, 1, now, L, MAX_LAG + 10), Err(Refusal::Behind));
        h.answered(2, 1, lid(MAX_LAG));
        h.sending(2, 1, now);
        assert_eq!(h.grant(2, 1, now + L, L, MAX_LAG + 10), Err(Refusal::Slow));
        h.answered(2, 1, lid(MAX_LAG + 9));
        assert!(h.grant(2, 1, now + L, L, MAX_LAG + 10).is_ok());
    }

    #[test]
    fn a_new_term_or_stepping_down_forgets_every_lease() {
        let mut h = Holders::default();
        let now = Instant::now();
        h.answered(2, 1, lid(4));
        h.grant(2, 1, now, L, 5).unwrap();
        h.step_down();
        assert_eq!(h.release(9, now), None);
        h.answered(2, 1, lid(4));
        h.grant(2, 1, now, L, 5).unwrap();
        assert_eq!(h.grant(2, 0, now, L, 5), Err(Refusal::Term));
        h.answered(2, 2, lid(4));
        assert_eq!(h.release(9, now), None, "term 2 starts with no holders");
    }
}
