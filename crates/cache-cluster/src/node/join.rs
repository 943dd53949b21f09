//! The leader's side of a join: a (re)started node is added as a learner, catches up, and then
//! replaces the older ids of its slot in the voter set.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, ChangeMembers};
use tracing::info;

use crate::{slot_of, ClusterError, NodeId};

use super::{raft_err, settled_in, Inner};

impl Inner {
    /// Leader side of a join: add the new id as a learner (it catches up), then make it a voter
    /// in place of every older id of the same slot.
    pub(super) async fn handle_join(
        self: &Arc<Self>,
        id: NodeId,
        addr: String,
    ) -> Result<(), ClusterError> {
        if !self.is_leader() {
            return Err(ClusterError::NotLeader(
                self.metrics.borrow().current_leader,
            ));
        }
        let slot = slot_of(id);
        self.joiners.lock().insert(slot, id);
        let superseded = || self.joiners.lock().get(&slot) != Some(&id);
        let gave_way =
            || ClusterError::Remote("join: a newer node of the same slot is joining".into());
        let _g = self.join_lock.lock().await;
        if superseded() {
            return Err(gave_way());
        }
        // The voters to keep: the configuration being moved to (the last one of a joint
        // configuration, so a voter that a stopped change was replacing is not kept).
        let (voters, settled) = {
            let m = self.metrics.borrow();
            let mem = m.membership_config.membership();
            (
                mem.get_joint_config().last().cloned().unwrap_or_default(),
                settled_in(mem, id),
            )
        };
        if settled {
            return Ok(());
        }
        // A node asks again while it is a learner or its promotion stopped half-way (a joint
        // configuration left when a leader lost office between the two steps): adding an
        // existing learner changes nothing, and the membership change below completes either.
        info!(
            node = self.id,
            joiner = id,
            slot,
            "adding a joining node as a learner"
        );
        let t = self.cfg.join_timeout;
        let deadline = Instant::now() + t;
        let term = self.metrics.borrow().current_term;
        // A membership entry proposed by a leader that lost office is answered only once a
        // later leader overwrites or commits it, which can take as long as the join timeout:
        // the joiner is told at once instead, and asks the new leader.
        let add = tokio::time::timeout(t, self.raft.add_learner(id, BasicNode { addr }, false));
        let added = tokio::select! {
            biased;
            r = add => match r {
                Err(_) => return Err(ClusterError::Timeout("join: adding the learner")),
                Ok(Err(e)) => return Err(raft_err(e)),
                Ok(Ok(r)) => r.log_id.index,
            },
            _ = self.office_lost(term) => return Err(self.not_leader()),
        };
        // Catch-up: the learner has everything up to the entry that added it. Given up at once
        // when a newer node of the same slot asks to join (this one died meanwhile).
        let stall = self.hooks.take_stall_catch_up();
        let mut m = self.metrics.clone();
        loop {
            let caught_up = {
                let mm = m.borrow_and_update();
                let matched = mm
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned())
                    .flatten();
                matched.is_some_and(|l| l.index >= added)
            };
            if caught_up && !stall {
                break;
            }
            if superseded() {
                return Err(gave_way());
            }
            if !self.is_leader() {
                return Err(ClusterError::NotLeader(
                    self.metrics.borrow().current_leader,
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClusterError::Timeout("join: learner catch-up"));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), m.changed()).await;
        }
        if self.hooks.take_fail_promotion() {
            return Err(ClusterError::Timeout("join: membership change (test hook)"));
        }
        let new: BTreeSet<NodeId> = voters
            .into_iter()
            .filter(|v| slot_of(*v) != slot)
            .chain([id])
            .collect();
        info!(node = self.id, joiner = id, slot, voters = ?new, "learner caught up; making it a voter");
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let change = tokio::time::timeout(
            left,
            self.raft
                .change_membership(ChangeMembers::ReplaceAllVoters(new), false),
        );
        // Test hook: drop the change once its joint configuration is in the log.
        let abandon = self.hooks.take_half_promotion();
        let mut m = self.metrics.clone();
        let joint_logged = async move {
            while m.changed().await.is_ok() {
                if m.borrow_and_update()
                    .membership_config
                    .membership()
                    .get_joint_config()
                    .len()
                    > 1
                {
                    return;
                }
            }
            std::future::pending().await
        };
        let r = tokio::select! {
            biased;
            _ = joint_logged, if abandon => return Err(ClusterError::Timeout("join: membership change (test hook: half-way)")),
            r = change => r,
            _ = self.office_lost(term) => return Err(self.not_leader()),
        };
        match r {
            Err(_) => return Err(ClusterError::Timeout("join: membership change")),
            Ok(Err(e)) => return Err(raft_err(e)),
            Ok(Ok(_)) => {}
        }
        // Learners of this slot left by joins that never finished (their processes are gone):
        // drop them, so the leader stops replicating to them and `keel status` lists members only.
        let stale: BTreeSet<NodeId> = {
            let m = self.metrics.borrow();
            let mem = m.membership_config.membership();
            let voters: BTreeSet<NodeId> = mem.voter_ids().collect();
            mem.nodes()
                .map(|(n, _)| *n)
                .filter(|n| slot_of(*n) == slot && *n != id && !voters.contains(n))
                .collect()
        };
        if !stale.is_empty() {
            info!(node = self.id, stale = ?stale, "removing learners of joins that never finished");
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                self.raft
                    .change_membership(ChangeMembers::RemoveNodes(stale), false),
            )
            .await;
        }
        Ok(())
    }

    /// Resolves once this node no longer leads in `term`.
    async fn office_lost(&self, term: u64) {
        let mut m = self.metrics.clone();
        loop {
            {
                let mm = m.borrow_and_update();
                if mm.current_term != term || mm.current_leader != Some(self.id) {
                    return;
                }
            }
            if m.changed().await.is_err() {
                return;
            }
        }
    }

    fn not_leader(&self) -> ClusterError {
        ClusterError::NotLeader(self.metrics.borrow().current_leader)
    }
}
