//! The outcomes of recent list pops, by pop id: what makes a pop safe to send again.
//!
//! A pop whose outcome the sending node could not learn (the leader died, or the majority was
//! lost, after the entry left) may or may not be in the log. If it is, it took an element, and
//! answering the client with an error would lose that element. So the sending node sends the
//! same pop again, under the same id ([`super::RedisOp::Pop`]), until it learns the outcome. Every
//! replica applies a pop id at most once: the first entry with that id runs the pop and records
//! its reply here, and any later entry with the id answers the recorded reply and changes
//! nothing. Empty outcomes are recorded too, so an earlier copy applied after a retry that
//! found the list empty cannot take an element nobody waits for any more.
//!
//! The table is replicated state: it changes only when entries are applied, at the entry's
//! time, and travels in snapshots. Outcomes are kept for [`RETAIN_MS`] of replicated time (far
//! longer than a node resends: [`RESEND_FOR`]), and at most [`MAX_POPS`], oldest first out.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::RedisOutcome;

/// How long (replicated time) a pop's outcome is remembered.
pub const RETAIN_MS: u64 = 60_000;

/// At most this many outcomes are remembered (the oldest go first).
pub const MAX_POPS: usize = 100_000;

/// How long a node keeps resending a pop whose outcome it does not know, before it answers the
/// client with the error (the pop may then have taken an element that reaches nobody).
pub const RESEND_FOR: Duration = Duration::from_secs(5);

/// Recorded pop outcomes, in the order they were applied.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Pops {
    by_id: HashMap<u64, RedisOutcome>,
    /// (id, applied at ms), oldest first; replicated time never goes back, so neither does this.
    order: VecDeque<(u64, u64)>,
}

impl Pops {
    /// The outcome of pop `id`, if it was applied (and is still remembered).
    pub fn get(&self, id: u64) -> Option<&RedisOutcome> {
        self.by_id.get(&id)
    }

    /// How many outcomes are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Remember pop `id`'s outcome, applied at `now_ms` (a new id: callers check [`Pops::get`]
    /// first), then forget what is too old.
    pub fn record(&mut self, id: u64, now_ms: u64, outcome: RedisOutcome) {
        if self.by_id.insert(id, outcome).is_none() {
            self.order.push_back((id, now_ms));
        }
        self.prune(now_ms);
    }

    /// Forget outcomes older than [`RETAIN_MS`] at `now_ms`, and any beyond [`MAX_POPS`].
    pub fn prune(&mut self, now_ms: u64) {
        while let Some(&(id, at)) = self.order.front() {
            if self.order.len() <= MAX_POPS && at.saturating_add(RETAIN_MS) > now_ms {
                break;
            }
            self.order.pop_front();
            self.by_id.remove(&id);
        }
    }

    /// Append the table's image: a count, then per outcome (oldest first) its id, time,
    /// database, empty flag and reply (little-endian).
    pub fn export_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.order.len() as u64).to_le_bytes());
        for &(id, at) in &self.order {
            let o = &self.by_id[&id];
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(&o.db.to_le_bytes());
            out.push(u8::from(o.empty));
            out.extend_from_slice(&(o.reply.len() as u32).to_le_bytes());
            out.extend_from_slice(&o.reply);
        }
    }

    /// Read an image made by [`Pops::export_into`] (exactly: the whole of `b`). Refuses
    /// truncated or trailing bytes, repeated ids, times that go back and more than
    /// [`MAX_POPS`] outcomes, none of which an export has.
    pub fn import(mut b: &[u8]) -> Result<Pops, String> {
        fn take<'a>(b: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
            if b.len() < n {
                return Err(format!("pop table image truncated in {what}"));
            }
            let (h, t) = b.split_at(n);
            *b = t;
            Ok(h)
        }
        fn u64_of(b: &mut &[u8], what: &str) -> Result<u64, String> {
            let h = take(b, 8, what)?;
            Ok(u64::from_le_bytes(h.try_into().unwrap_or([0; 8])))
        }
        fn u32_of(b: &mut &[u8], what: &str) -> Result<u32, String> {
            let h = take(b, 4, what)?;
            Ok(u32::from_le_bytes(h.try_into().unwrap_or([0; 4])))
        }
        let n = u64_of(&mut b, "the count")?;
        if n > MAX_POPS as u64 {
            return Err(format!(
                "pop table image holds {n} outcomes, more than {MAX_POPS}"
            ));
        }
        let mut pops = Pops::default();
        let mut last_at = 0u64;
        for _ in 0..n {
            let id = u64_of(&mut b, "an id")?;
            let at = u64_of(&mut b, "a time")?;
            let db = u32_of(&mut b, "a database")?;
            let empty = match take(&mut b, 1, "a flag")?[0] {
                0 => false,
                1 => true,
                f => return Err(format!("pop table image: bad flag {f}")),
            };
            let len = u32_of(&mut b, "a reply length")? as usize;
            let reply = take(&mut b, len, "a reply")?.to_vec();
            if at < last_at {
                return Err("pop table image: times go back".into());
            }
            last_at = at;
            let o = RedisOutcome { reply, db, empty };
            if pops.by_id.insert(id, o).is_some() {
                return Err(format!("pop table image: id {id} twice"));
            }
            pops.order.push_back((id, at));
        }
        if !b.is_empty() {
            return Err("pop table image: trailing bytes".into());
        }
        Ok(pops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(reply: &str, empty: bool) -> RedisOutcome {
        RedisOutcome {
            reply: reply.as_bytes().to_vec(),
            db: 3,
            empty,
        }
    }

    #[test]
    fn outcomes_are_kept_for_the_retention_time_then_forgotten_oldest_first() {
        let mut p = Pops::default();
        p.record(1, 1_000, out("$1\r\na\r\n", false));
        p.record(2, 30_000, out("*-1\r\n", true));
        assert_eq!(p.get(1), Some(&out("$1\r\na\r\n", false)));
        assert_eq!(p.get(2), Some(&out("*-1\r\n", true)));
        // Just before the first one's end both stay; at its end only it goes.
        p.prune(1_000 + RETAIN_MS - 1);
        assert_eq!(p.len(), 2);
        p.prune(1_000 + RETAIN_MS);
        assert_eq!((p.get(1), p.len()), (None, 1));
        p.prune(30_000 + RETAIN_MS);
        assert!(p.is_empty());
    }

    #[test]
    fn the_table_never_holds_more_than_its_bound() {
        let mut p = Pops::default();
        for id in 0..(MAX_POPS as u64 + 10) {
            p.record(id, 5, out("*-1\r\n", true));
        }
        assert_eq!(p.len(), MAX_POPS);
        assert_eq!(p.get(9), None);
        assert!(p.get(10).is_some());
    }

    #[test]
    fn images_round_trip_exactly_and_garbage_is_refused() {
        let mut p = Pops::default();
        p.record(7, 10, out("$1\r\nx\r\n", false));
        p.record(u64::MAX, 10, out("", true));
        p.record(0, 11, out("*2\r\n$1\r\nq\r\n$1\r\ny\r\n", false));
        let mut image = Vec::new();
        p.export_into(&mut image);
        let back = Pops::import(&image).expect("an export imports");
        assert_eq!(back, p);
        let mut again = Vec::new();
        back.export_into(&mut again);
        assert_eq!(again, image);
        let mut empty = Vec::new();
        Pops::default().export_into(&mut empty);
        assert_eq!(Pops::import(&empty), Ok(Pops::default()));
        // Truncated anywhere, a trailing byte, a bad flag, a repeated id, time going back.
        for cut in 0..image.len() {
            assert!(Pops::import(&image[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = image.clone();
        longer.push(0);
        assert!(Pops::import(&longer).is_err());
        let mut flag = image.clone();
        flag[8 + 20] = 2;
        assert!(Pops::import(&flag).is_err());
        let mut twice = Pops::default();
        twice.record(1, 1, out("a", false));
        twice.record(2, 1, out("b", false));
        let mut img = Vec::new();
        twice.export_into(&mut img);
        let second_id = 8 + (8 + 8 + 4 + 1 + 4 + 1);
        img[second_id..second_id + 8].copy_from_slice(&1u64.to_le_bytes());
        assert!(Pops::import(&img).unwrap_err().contains("twice"));
        let mut back_in_time = Vec::new();
        let mut t = Pops::default();
        t.record(1, 9, out("a", false));
        t.record(2, 9, out("b", false));
        t.export_into(&mut back_in_time);
        back_in_time[second_id + 8..second_id + 16].copy_from_slice(&8u64.to_le_bytes());
        assert!(Pops::import(&back_in_time).unwrap_err().contains("back"));
        let mut huge = Vec::new();
        huge.extend_from_slice(&(MAX_POPS as u64 + 1).to_le_bytes());
        assert!(Pops::import(&huge).is_err());
    }
}
