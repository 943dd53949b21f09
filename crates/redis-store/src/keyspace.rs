//! The keyspace: the databases, the memory limit, the statistics, and the primitives every
//! command uses to read and change keys (lazy expiry, memory accounting, `WATCH` and blocked
//! clients' notifications happen here, so no command can forget them).

use std::collections::HashSet;

use indexmap::map::raw_entry_v1::{RawEntryApiV1, RawEntryMut};
use redis_proto::Reply;

use crate::block::Blocked;
use crate::commands::{Command, Flags};
use crate::db::{entry_mem, Db, Entry, Hasher, Value};
use crate::errors;
use crate::watch::Watches;
use crate::{Client, Cmd, Exec};

/// What to do when a write would exceed `maxmemory` (redis.conf's `maxmemory-policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// Refuse writes with `OOM` (the default: Seafile's queues carry no TTL and must not be
    /// evicted).
    #[default]
    NoEviction,
    AllKeysLru,
    VolatileLru,
    AllKeysRandom,
    VolatileRandom,
    VolatileTtl,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllKeysLru => "allkeys-lru",
            Policy::VolatileLru => "volatile-lru",
            Policy::AllKeysRandom => "allkeys-random",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
        }
    }
    pub fn parse(s: &str) -> Option<Policy> {
        Some(match s.to_ascii_lowercase().as_str() {
            "noeviction" => Policy::NoEviction,
            "allkeys-lru" => Policy::AllKeysLru,
            "volatile-lru" => Policy::VolatileLru,
            "allkeys-random" => Policy::AllKeysRandom,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            _ => return None,
        })
    }
}

/// The keyspace's settings (`CONFIG SET` changes them at run time).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `maxmemory` in bytes; 0: no limit.
    pub maxmemory: u64,
    pub policy: Policy,
    /// `maxmemory-samples`.
    pub samples: usize,
    /// `databases`.
    pub databases: usize,
    /// `proto-max-bulk-len`: the longest string `APPEND`/`SETRANGE` may build.
    pub max_bulk_len: u64,
    /// Reads update a key's LRU clock (standalone); the replicated tier turns it off so reads
    /// leave replicas identical.
    pub reads_mutate: bool,
    /// Record every key that receives list elements for [`Keyspace::take_ready_keys`] (the
    /// replicated tier wakes its own blocked clients from them).
    pub track_ready: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            maxmemory: 0,
            policy: Policy::NoEviction,
            samples: 5,
            databases: 16,
            max_bulk_len: 512 * 1024 * 1024,
            reads_mutate: true,
            track_ready: false,
        }
    }
}

/// Counters for `INFO stats`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub expired_keys: u64,
    pub evicted_keys: u64,
}

/// The whole Redis keyspace of one server (or one replica).
pub struct Keyspace {
    pub(crate) dbs: Vec<Db>,
    pub(crate) config: Config,
    /// Accounted bytes of every key and value.
    pub(crate) used: u64,
    pub(crate) rng: u64,
    pub(crate) stats: Stats,
    pub(crate) watches: Watches,
    pub(crate) blocked: Blocked,
    /// Running a command through [`Keyspace::execute_readonly`]: expired keys are hidden
    /// instead of deleted, LRU clocks stay, random picks come from `ro_rng`.
    pub(crate) read_only: bool,
    /// The generator of read-only random picks (the replica's own, not replicated).
    pub(crate) ro_rng: u64,
    /// Keys that received list elements, for [`Keyspace::take_ready_keys`] (only with
    /// `Config::track_ready`), in signal order, each once.
    pub(crate) ready_keys: Vec<(usize, Box<[u8]>)>,
    pub(crate) ready_keys_set: HashSet<(usize, Box<[u8]>), Hasher>,
}

/// The random generator's state in a new keyspace (and after a failed import).
pub(crate) const RNG_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

impl Keyspace {
    pub fn new(config: Config) -> Keyspace {
        let dbs = (0..config.databases.max(1))
            .map(|_| Db::default())
            .collect();
        Keyspace {
            dbs,
            config,
            used: 0,
            rng: RNG_SEED,
            stats: Stats::default(),
            watches: Watches::default(),
            blocked: Blocked::default(),
            read_only: false,
            ro_rng: 0x2545_f491_4f6c_dd1d,
            ready_keys: Vec::new(),
            ready_keys_set: HashSet::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Change settings at run time (`databases` is fixed at start and ignored here).
    pub fn set_config(&mut self, mut config: Config) {
        config.databases = self.config.databases;
        self.config = config;
    }

    pub fn used_memory(&self) -> u64 {
        self.used
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }

    pub fn databases(&self) -> usize {
        self.dbs.len()
    }

    /// Keys in database `db` (expired keys not yet removed included, as Redis's `DBSIZE`).
    pub fn dbsize(&self, db: usize) -> usize {
        self.dbs.get(db).map_or(0, Db::len)
    }

    /// `(db, keys, keys with an expiry)` for every non-empty database (`INFO keyspace`).
    pub fn keyspace_info(&self) -> Vec<(usize, usize, usize)> {
        self.dbs
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.is_empty())
            .map(|(i, d)| (i, d.len(), d.expires))
            .collect()
    }

    /// Run a data command. The caller checked arity and authentication and owns everything
    /// connection-level (`MULTI` queueing, pub/sub). Enforces `maxmemory` for `denyoom`
    /// commands first, evicting by the policy or answering `OOM`.
    pub fn execute(
        &mut self,
        client: &mut Client,
        command: &Command,
        args: &[bytes::Bytes],
        now_ms: u64,
    ) -> Exec {
        if command.spec.flags.has(Flags::DENYOOM) && !self.make_room(now_ms) {
            return Exec::Reply(errors::err(errors::OOM));
        }
        self.run(client, command, args, now_ms)
    }

    /// Run a command's handler (no memory check).
    pub(crate) fn run(
        &mut self,
        client: &mut Client,
        command: &Command,
        args: &[bytes::Bytes],
        now_ms: u64,
    ) -> Exec {
        let mut cmd = Cmd {
            ks: self,
            client,
            args,
            now_ms,
        };
        (command.run)(&mut cmd)
    }

    // ---- primitives for the commands ----

    /// The LRU clock: seconds, wrapping in 32 bits.
    pub(crate) fn lru_clock(now_ms: u64) -> u32 {
        (now_ms / 1000) as u32
    }

    /// Remove `key` if it has expired; true if it had. In read-only mode the key is only
    /// reported expired (callers treat it as missing) and stays for the log to remove.
    pub(crate) fn expire_if_needed(&mut self, db: usize, key: &[u8], now_ms: u64) -> bool {
        let expired = self.dbs[db]
            .map
            .get(key)
            .is_some_and(|e| e.is_expired(now_ms));
        if expired && !self.read_only {
            self.remove(db, key);
            self.stats.expired_keys += 1;
        }
        expired
    }

    /// Where `key`'s live entry is in its database's map, in one hash lookup, counting no hit or
    /// miss: an expired entry is reported missing and removed ([`Keyspace::expire_if_needed`]
    /// then a lookup took two). The position serves [`Keyspace::entry_at`] and
    /// [`Keyspace::modify_at`], so a read-then-write command looks its key up once.
    pub(crate) fn find(&mut self, db: usize, key: &[u8], now_ms: u64) -> Option<usize> {
        let i = self.dbs[db].map.get_index_of(key)?;
        if !self.dbs[db].map[i].is_expired(now_ms) {
            return Some(i);
        }
        if !self.read_only {
            self.remove(db, key);
            self.stats.expired_keys += 1;
        }
        None
    }

    /// Look a key up for reading (counts a hit or a miss; updates the LRU clock when reads
    /// mutate). Expired keys are removed and reported missing.
    pub fn lookup_read(&mut self, db: usize, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let reads_mutate = self.config.reads_mutate && !self.read_only;
        let found = self
            .find(db, key, now_ms)
            .and_then(|i| self.dbs[db].map.get_index_mut(i).map(|(_, e)| e));
        match found {
            Some(e) => {
                self.stats.keyspace_hits += 1;
                if reads_mutate {
                    e.set_lru(Self::lru_clock(now_ms));
                }
                Some(&*e)
            }
            None => {
                self.stats.keyspace_misses += 1;
                None
            }
        }
    }

    /// Look a key up without counting it or touching its LRU clock (`TYPE`-like checks, writes).
    pub fn lookup(&mut self, db: usize, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let i = self.find(db, key, now_ms)?;
        self.dbs[db].map.get_index(i).map(|(_, e)| e)
    }

    /// Change an existing key's entry in place. Keeps the memory count right, deletes a
    /// collection `f` left empty, and tells `WATCH` and blocked clients the key changed (call
    /// [`Keyspace::signal_ready`] as well after a push). `None` if the key does not exist.
    pub fn modify<R>(
        &mut self,
        db: usize,
        key: &[u8],
        now_ms: u64,
        f: impl FnOnce(&mut Entry) -> R,
    ) -> Option<R> {
        let i = self.find(db, key, now_ms)?;
        Some(self.modify_at(db, i, key, now_ms, f))
    }

    /// The entry at `i`, a position [`Keyspace::find`] gave with no change since.
    pub(crate) fn entry_at(&self, db: usize, i: usize) -> &Entry {
        &self.dbs[db].map[i]
    }

    /// [`Keyspace::modify`] of the entry at `i`, a position [`Keyspace::find`] gave for `key`
    /// with no change since.
    pub(crate) fn modify_at<R>(
        &mut self,
        db: usize,
        i: usize,
        key: &[u8],
        now_ms: u64,
        f: impl FnOnce(&mut Entry) -> R,
    ) -> R {
        let d = &mut self.dbs[db];
        let e = &mut d.map[i];
        let before = entry_mem(key, e) as u64;
        let had_ttl = e.expire_at != 0;
        let r = f(e);
        let after = entry_mem(key, e) as u64;
        let has_ttl = e.expire_at != 0;
        let empty = e.value.is_empty_collection();
        e.set_lru(Self::lru_clock(now_ms));
        match (had_ttl, has_ttl) {
            (false, true) => d.expires += 1,
            (true, false) => d.expires -= 1,
            _ => {}
        }
        self.used = self.used - before + after;
        self.watches.touch(db, key);
        if empty {
            self.remove(db, key);
        }
        r
    }

    /// Store `value` under `key`, replacing whatever was there, with `expire_at` (0: none).
    /// A list stored this way wakes clients blocked on the key (Redis's `signalKeyAsReady`).
    pub fn insert(&mut self, db: usize, key: &[u8], value: Value, expire_at: u64, now_ms: u64) {
        let entry = Entry::new(value, expire_at, Self::lru_clock(now_ms));
        self.insert_entry(db, key, entry);
    }

    /// [`Keyspace::insert`] of a whole entry (its LRU clock kept: `RENAME`, `MOVE`).
    pub(crate) fn insert_entry(&mut self, db: usize, key: &[u8], entry: Entry) {
        let add = entry_mem(key, &entry) as u64;
        let is_list = matches!(entry.value, Value::List(_));
        let expire_at = entry.expire_at;
        let d = &mut self.dbs[db];
        if expire_at != 0 {
            d.expires += 1;
        }
        match d.map.raw_entry_mut_v1().from_key(key) {
            RawEntryMut::Occupied(mut slot) => {
                // Replace in place: the key keeps its slot (and so its SCAN position).
                let old = slot.insert(entry);
                if old.expire_at != 0 {
                    d.expires -= 1;
                }
                self.used -= entry_mem(key, &old) as u64;
            }
            RawEntryMut::Vacant(slot) => {
                slot.insert(key.into(), entry);
            }
        }
        self.used += add;
        self.watches.touch(db, key);
        if is_list {
            self.signal_ready(db, key);
        }
    }

    /// Set (or with 0 remove) a live key's expiry; false if the key does not exist.
    pub(crate) fn set_expire(
        &mut self,
        db: usize,
        key: &[u8],
        expire_at: u64,
        now_ms: u64,
    ) -> bool {
        self.modify(db, key, now_ms, |e| e.expire_at = expire_at)
            .is_some()
    }

    /// [`Keyspace::lookup_read`] without touching the LRU clock (`EXISTS`, `TYPE`, `TTL`,
    /// `OBJECT`: Redis's `LOOKUP_NOTOUCH`), still counting a hit or a miss.
    pub(crate) fn lookup_read_notouch(
        &mut self,
        db: usize,
        key: &[u8],
        now_ms: u64,
    ) -> Option<&Entry> {
        let found = self
            .find(db, key, now_ms)
            .and_then(|i| self.dbs[db].map.get_index(i).map(|(_, e)| e));
        match found {
            Some(e) => {
                self.stats.keyspace_hits += 1;
                Some(e)
            }
            None => {
                self.stats.keyspace_misses += 1;
                None
            }
        }
    }

    /// Empty database `db` (`FLUSHDB`, `FLUSHALL`), dirtying the clients watching keys in it.
    pub(crate) fn flush_db(&mut self, db: usize, now_ms: u64) {
        self.touch_all_watched_in_db(db, None, now_ms);
        let old = std::mem::take(&mut self.dbs[db]);
        let freed: u64 = old.map.iter().map(|(k, e)| entry_mem(k, e) as u64).sum();
        self.used = self.used.saturating_sub(freed);
        // Dropping a huge map is the cost Redis avoids with ASYNC; here it is bounded by the
        // keyspace's size and happens once.
        drop(old);
        self.db_mut(db).expire_cursor = 0;
    }

    /// Exchange databases `a` and `b` (`SWAPDB`): watched keys in both are touched, and
    /// clients blocked on lists now present are woken.
    pub(crate) fn swap_dbs(&mut self, a: usize, b: usize, now_ms: u64) {
        self.touch_all_watched_in_db(a, Some(b), now_ms);
        self.touch_all_watched_in_db(b, Some(a), now_ms);
        self.dbs.swap(a, b);
        self.signal_waited_keys(a, now_ms);
        self.signal_waited_keys(b, now_ms);
        if self.config.track_ready {
            // Every list now in either database is new there for clients of the replicated
            // tier, whose waits this keyspace does not know.
            for db in [a, b] {
                let lists: Vec<Box<[u8]>> = self.dbs[db]
                    .map
                    .iter()
                    .filter(|(_, e)| matches!(e.value, Value::List(_)) && !e.is_expired(now_ms))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in lists {
                    self.track_ready(db, &k);
                }
            }
        }
    }

    /// Delete `key` (no expiry check: an expired key is removed too). Returns its entry.
    pub fn remove(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        let d = &mut self.dbs[db];
        let old = d.map.swap_remove(key)?;
        if old.expire_at != 0 {
            d.expires -= 1;
        }
        self.used -= entry_mem(key, &old) as u64;
        self.watches.touch_key(db, key, false);
        Some(old)
    }

    /// A list key received elements: blocked clients waiting on it may now be served (by
    /// [`Keyspace::serve_blocked`]).
    pub fn signal_ready(&mut self, db: usize, key: &[u8]) {
        if self.config.track_ready {
            self.track_ready(db, key);
        }
        self.blocked.signal_ready(db, key);
    }

    /// Record a ready key for [`Keyspace::take_ready_keys`], once until taken.
    pub(crate) fn track_ready(&mut self, db: usize, key: &[u8]) {
        let k = (db, Box::<[u8]>::from(key));
        if !self.ready_keys_set.contains(&k) {
            self.ready_keys_set.insert(k.clone());
            self.ready_keys.push(k);
        }
    }

    /// Whether lists received elements since the last `serve_blocked` (the server may skip
    /// calling it otherwise).
    pub fn has_ready_keys(&self) -> bool {
        !self.blocked.ready.is_empty()
    }

    /// The keyspace's deterministic random generator (xorshift64*); in read-only mode the
    /// replica's own generator, so reads leave the replicated one alone.
    pub fn random_u64(&mut self) -> u64 {
        let state = if self.read_only {
            &mut self.ro_rng
        } else {
            &mut self.rng
        };
        let mut x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A database by index (the caller validated it).
    pub fn db(&self, db: usize) -> &Db {
        &self.dbs[db]
    }

    pub(crate) fn db_mut(&mut self, db: usize) -> &mut Db {
        &mut self.dbs[db]
    }

    /// An error reply for `WRONGTYPE`.
    pub fn wrongtype() -> Reply {
        errors::err(errors::WRONGTYPE)
    }
}
