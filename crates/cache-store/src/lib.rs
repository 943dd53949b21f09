//! keel's item store: the memory of `keel cache`.
//!
//! (Memory design rationale: see the "Memory design" section below, written by the store's author.)
//!
//! # Contract
//! * Every mutating operation is **deterministic** given its arguments and `now` (unix seconds
//!   chosen by the caller): the same sequence of calls on two fresh stores gives identical contents,
//!   CAS values and eviction decisions. This is what lets the cache cluster drive replicas from a
//!   replicated log (the leader picks `now` and absolute expiry times once).
//!   Reads only change state (LRU position, "fetched" bit) when [`StoreConfig::reads_mutate`] is set
//!   (standalone mode); in cluster mode they must not.
//! * Expiry times passed in are already **absolute** unix seconds ([`Expiry`]); converting a
//!   memcached `exptime` (relative, absolute, negative) is done once by the caller with
//!   [`resolve_exptime`].
//! * The memory limit counts keys, values and per-item overhead; a store never holds more than
//!   `mem_limit` bytes of accounted memory: it evicts least-recently-used items first.
//! * Never panics on any input.

use serde::{Deserialize, Serialize};

/// Memcached's boundary between relative and absolute expiry times (30 days, in seconds).
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// When an item expires, in absolute unix seconds. `0` means never.
/// An item with `expires_at != 0 && expires_at <= now` is dead.
pub type Expiry = u64;

/// Convert a memcached `exptime` into an absolute [`Expiry`], the way memcached does:
/// `0` never; negative: already expired; `1..=2592000`: seconds from `now`; larger: absolute unix
/// time (a time in the past, e.g. libmemcached's `2678400` probe, means already expired).
/// "Already expired" is returned as `1` (a moment in 1970), never `0`.
pub fn resolve_exptime(exptime: i64, now: u64) -> Expiry {
    if exptime == 0 {
        0
    } else if exptime < 0 {
        1
    } else if exptime <= REALTIME_MAXDELTA {
        now.saturating_add(exptime as u64)
    } else if (exptime as u64) <= now {
        1
    } else {
        exptime as u64
    }
}

/// Store configuration.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Hard limit of accounted memory in bytes (memcached `-m`, converted from MiB).
    pub mem_limit: usize,
    /// Largest item (memcached `-I`, default 1 MiB), checked with [`Store::item_fits`].
    pub item_size_max: usize,
    /// Number of lock shards (a power of two); more shards = less contention.
    pub shards: usize,
    /// Whether reads bump LRU / set the fetched bit / update last access (standalone: true;
    /// replicated: false so that replicas stay identical).
    pub reads_mutate: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { mem_limit: 64 << 20, item_size_max: 1 << 20, shards: 64, reads_mutate: true }
    }
}

/// A read view of an item, valid while the shard lock is held (inside the callback).
#[derive(Debug)]
pub struct ItemRef<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u32,
    pub cas: u64,
    pub expires_at: Expiry,
    /// Unix seconds of the last access (meta `l` flag / `la` in `me`).
    pub last_access: u64,
    /// Whether the item had been fetched before this access (meta `h` flag).
    pub fetched_before: bool,
    /// Meta protocol: item is marked stale (invalidated with `I`); clients see `X`.
    pub stale: bool,
    /// Meta protocol: this access won the right to recache (`W`); another saw `Z`.
    pub win: bool,
    /// Meta protocol: a win token was already handed out before this access (`Z`).
    pub win_already_sent: bool,
}

/// Options for a read. The default is a plain `get`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GetOpts {
    /// `gat`/`gats`/meta `T`: set a new expiry on hit.
    pub touch: Option<Expiry>,
    /// Meta `u`: do not bump the item in the LRU.
    pub no_lru_bump: bool,
    /// Meta `N(ttl)`: on miss, create an empty item with this expiry and hand out a win token
    /// (the callback is then invoked for the new empty item with `win = true`).
    pub vivify: Option<Expiry>,
    /// Meta `R(ttl)`: if the item's remaining TTL is below this many seconds, hand out a win token
    /// (once per item).
    pub recache_below: Option<u64>,
}

/// How a store command treats an existing item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
}

/// A storage request. For `cas`, set `compare_cas` (memcached's `cas` command is `Set` with a
/// compare value).
#[derive(Clone, Copy, Debug)]
pub struct StoreReq<'a> {
    pub mode: StoreMode,
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// Ignored by Append/Prepend (they keep the old item's flags and expiry).
    pub flags: u32,
    pub expires_at: Expiry,
    /// `cas` command / meta `C`: store only if the item's CAS equals this.
    pub compare_cas: Option<u64>,
    /// Meta `I` with `C`: if the compare CAS is *older* than the item's, store anyway but mark the
    /// new item stale (memcached's invalidation semantics).
    pub invalidate: bool,
    /// Meta `E`: use this as the new item's CAS instead of drawing from the counter.
    pub new_cas: Option<u64>,
    /// Append/prepend with meta `N(ttl)`: create the item if missing, with this expiry.
    pub vivify: Option<Expiry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored, with the new item's CAS.
    Stored { cas: u64 },
    /// add on existing key / replace, append, prepend on missing key.
    NotStored,
    /// CAS mismatch.
    Exists,
    /// CAS given but the key is missing.
    NotFound,
    /// Larger than `item_size_max` (or larger than the whole memory limit); the old value under
    /// the key has been removed, as memcached does.
    TooLarge,
    /// Could not free enough memory (should not happen with LRU eviction, but never panic).
    OutOfMemory,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct DeleteOpts {
    /// Meta `C`: delete only if the CAS matches.
    pub compare_cas: Option<u64>,
    /// Meta `I`: instead of removing, mark the item stale (and apply `touch` if given).
    pub invalidate: bool,
    /// Meta `T` together with `I`: new expiry of the invalidated item.
    pub touch: Option<Expiry>,
    /// Meta `x`: remove the value but keep the item (value becomes empty, flags zeroed).
    pub remove_value_only: bool,
    /// Meta `E`: explicit new CAS for an invalidated item.
    pub new_cas: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// CAS mismatch.
    Exists,
}

#[derive(Clone, Copy, Debug)]
pub struct ArithReq<'a> {
    pub key: &'a [u8],
    pub incr: bool,
    pub delta: u64,
    /// Meta `C`.
    pub compare_cas: Option<u64>,
    /// Meta `N(ttl)` + `J(initial)`: create the item with `initial` if missing.
    pub vivify: Option<(u64, Expiry)>,
    /// Meta `T`: new expiry on success.
    pub touch: Option<Expiry>,
    /// Meta `E`.
    pub new_cas: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The new numeric value, the item's new CAS, and its expiry.
    Ok { value: u64, cas: u64, expires_at: Expiry },
    NotFound,
    /// Value is not a decimal u64 (`CLIENT_ERROR cannot increment or decrement non-numeric value`).
    NonNumeric,
    /// CAS mismatch.
    Exists,
    OutOfMemory,
}

/// Item-level counters (command-level hit/miss counters live in the server).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub curr_items: u64,
    pub total_items: u64,
    /// Accounted bytes (keys + values + per-item overhead).
    pub bytes: u64,
    pub evictions: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    /// Items found dead (expired) and reclaimed.
    pub reclaimed: u64,
    /// Reads that found an expired item.
    pub get_expired: u64,
    /// Reads that found an item invalidated by flush_all.
    pub get_flushed: u64,
}

/// The item store. All methods take `&self`; internally sharded locks.
pub struct Store {
    _config: StoreConfig,
}

impl Store {
    pub fn new(config: StoreConfig) -> Store {
        let _ = config;
        todo!()
    }

    pub fn config(&self) -> &StoreConfig {
        todo!()
    }

    /// Whether an item with this key and value length fits under `item_size_max` (memcached's
    /// rule: header + key + value + "\r\n" must not exceed it). Protocol layers call this before
    /// reading a value so they can answer `SERVER_ERROR object too large for cache` and swallow it.
    pub fn item_fits(&self, key_len: usize, value_len: usize) -> bool {
        let _ = (key_len, value_len);
        todo!()
    }

    /// Look up a live item and call `f` with it while its shard is locked. Returns `None` on miss
    /// (expired and flushed items count as misses and are reclaimed).
    pub fn get<R>(&self, key: &[u8], now: u64, opts: GetOpts, f: impl FnOnce(ItemRef<'_>) -> R) -> Option<R> {
        let _ = (key, now, opts, f);
        todo!()
    }

    /// set/add/replace/append/prepend/cas. On `TooLarge` the old item is removed.
    pub fn store(&self, req: &StoreReq<'_>, now: u64) -> StoreOutcome {
        let _ = (req, now);
        todo!()
    }

    /// Remove an item of this key (used for oversized sets whose value was never read).
    pub fn remove(&self, key: &[u8], now: u64) {
        let _ = (key, now);
        todo!()
    }

    pub fn delete(&self, key: &[u8], opts: DeleteOpts, now: u64) -> DeleteOutcome {
        let _ = (key, opts, now);
        todo!()
    }

    /// incr/decr. incr wraps at 2^64, decr floors at 0. Like memcached, when the new decimal text
    /// is shorter than the old one the value keeps its length, padded with trailing spaces.
    pub fn arith(&self, req: &ArithReq<'_>, now: u64) -> ArithOutcome {
        let _ = (req, now);
        todo!()
    }

    /// Set a new expiry on a live item. Returns whether it was found.
    pub fn touch(&self, key: &[u8], expires_at: Expiry, now: u64) -> bool {
        let _ = (key, expires_at, now);
        todo!()
    }

    /// memcached `flush_all [delay]`: every item stored at or before `now + delay` becomes
    /// invalid once that time is reached (`delay == 0`: immediately).
    pub fn flush_all(&self, delay: u64, now: u64) {
        let _ = (delay, now);
        todo!()
    }

    /// Remove expired items in one shard (background expiry calls this in a loop over shards);
    /// returns how many were reclaimed.
    pub fn expire_shard(&self, shard: usize, now: u64) -> usize {
        let _ = (shard, now);
        todo!()
    }

    pub fn stats(&self) -> StoreStats {
        todo!()
    }

    /// `stats reset`: zero the resettable counters (total_items, evictions, …), not curr_items/bytes.
    pub fn reset_stats(&self) {
        todo!()
    }
}
