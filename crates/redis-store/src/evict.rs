//! `maxmemory` enforcement (evict by the policy until the accounted memory fits, or refuse)
//! and the active expiry cycle that returns the memory of expired keys nobody reads.
//!
//! Both are deterministic: candidates are drawn from the keyspace's seeded generator and the
//! active cycle walks each database with a cursor, so replicas running the same calls with the
//! same `now_ms` evict and expire the same keys.

use crate::keyspace::{Keyspace, Policy};

/// Keys with an expiry examined per batch of the active cycle (Redis's
/// `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`).
const KEYS_PER_LOOP: usize = 20;

impl Keyspace {
    /// Make the accounted memory fit `maxmemory` before a `denyoom` command; false: it cannot
    /// (policy `noeviction`, or nothing evictable), and the command answers `OOM`.
    pub fn make_room(&mut self, now_ms: u64) -> bool {
        let max = self.config.maxmemory;
        if max == 0 || self.used <= max {
            return true;
        }
        if self.config.policy == Policy::NoEviction {
            return false;
        }
        while self.used > max {
            let Some((db, idx)) = self.pick_victim(now_ms) else {
                return false;
            };
            let Some(key) = self.dbs[db].map.get_index(idx).map(|(k, _)| k.clone()) else {
                return false;
            };
            self.remove(db, &key);
            self.stats.evicted_keys += 1;
        }
        true
    }

    /// The best eviction candidate among `samples` keys drawn per database (only keys with an
    /// expiry for the `volatile-*` policies): `(db, index)`.
    fn pick_victim(&mut self, now_ms: u64) -> Option<(usize, usize)> {
        let policy = self.config.policy;
        let volatile = matches!(
            policy,
            Policy::VolatileLru | Policy::VolatileRandom | Policy::VolatileTtl
        );
        let samples = self.config.samples.max(1);
        // (score: higher evicts first, db, index)
        let mut best: Option<(u64, usize, usize)> = None;
        for db in 0..self.dbs.len() {
            let len = self.dbs[db].len();
            if len == 0 || (volatile && self.dbs[db].expires == 0) {
                continue;
            }
            let mut found = 0;
            // Bounded tries for the volatile policies: keys with a TTL may be rare.
            let mut tries = samples * 10;
            while found < samples && tries > 0 {
                tries -= 1;
                let idx = (self.random_u64() % len as u64) as usize;
                let Some((_, e)) = self.dbs[db].map.get_index(idx) else {
                    continue;
                };
                if volatile && e.expire_at == 0 {
                    continue;
                }
                found += 1;
                let score = match policy {
                    Policy::AllKeysLru | Policy::VolatileLru => {
                        Keyspace::lru_clock(now_ms).wrapping_sub(e.lru()) as u64
                    }
                    // Nearest expiry first (expired keys first of all).
                    Policy::VolatileTtl => u64::MAX - e.expire_at,
                    _ => 0,
                };
                if best.is_none_or(|(s, _, _)| score > s) {
                    best = Some((score, db, idx));
                }
            }
            if found == 0 && volatile {
                // Sampling missed the few volatile keys: take the next one after a random
                // start (expected cost: keys / volatile keys).
                let start = (self.random_u64() % len as u64) as usize;
                let map = &self.dbs[db].map;
                let found_at = (0..len)
                    .map(|i| (start + i) % len)
                    .find(|&i| map.get_index(i).is_some_and(|(_, e)| e.expire_at != 0));
                if let (Some(idx), None) = (found_at, best) {
                    best = Some((0, db, idx));
                }
            }
        }
        best.map(|(_, db, idx)| (db, idx))
    }

    /// One run of the active expiry cycle: walk the keys with an expiry, database by
    /// database, in batches of 20, deleting the expired ones, and keep going in a database
    /// while more than a quarter of a batch had expired, examining at most `max_effort` keys
    /// in all. Returns how many keys it deleted.
    pub fn active_expire(&mut self, now_ms: u64, max_effort: usize) -> usize {
        let mut effort = 0usize;
        let mut deleted = 0usize;
        for db in 0..self.dbs.len() {
            if self.dbs[db].expires == 0 {
                continue;
            }
            let mut walked = 0usize;
            loop {
                let len = self.dbs[db].len();
                if len == 0 || effort >= max_effort || walked >= len {
                    break;
                }
                let (mut sampled, mut expired) = (0usize, 0usize);
                while sampled < KEYS_PER_LOOP && effort < max_effort && walked < len {
                    let d = &self.dbs[db];
                    let cur = if d.expire_cursor >= d.len() {
                        0
                    } else {
                        d.expire_cursor
                    };
                    effort += 1;
                    walked += 1;
                    let Some((k, e)) = d.map.get_index(cur) else {
                        break;
                    };
                    if e.expire_at == 0 {
                        self.dbs[db].expire_cursor = cur + 1;
                        continue;
                    }
                    sampled += 1;
                    if e.is_expired(now_ms) {
                        let k = k.clone();
                        // swap_remove moves the last key into `cur`: look at `cur` again.
                        self.remove(db, &k);
                        self.stats.expired_keys += 1;
                        expired += 1;
                        self.dbs[db].expire_cursor = cur;
                    } else {
                        self.dbs[db].expire_cursor = cur + 1;
                    }
                }
                deleted += expired;
                if sampled == 0 || expired * 4 <= sampled {
                    break;
                }
            }
        }
        deleted
    }
}
