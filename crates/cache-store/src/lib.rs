//! keel's item store: the memory of `keel cache`. It holds items with memcached's semantics (flags,
//! CAS, expiry, flush, the meta protocol's stale/win/recache state, incr/decr) under a memory limit,
//! in lock-sharded tables, and it is deterministic, so that the cache cluster can drive identical
//! replicas from one replicated log (see the contract below).
//!
//! # Memory design
//! **One heap allocation per item** (module `item`): a 24-byte header — CAS (8), expiry (4,
//! absolute unix seconds), last store/access time (4), client flags (4), and one packed word with
//! the key length (8 bits), four state bits (fetched, CLOCK reference, stale, win token sent) and
//! the value length (20 bits; values of 1 MiB and more use an 8-byte extension, so the header is
//! 32 bytes for them) — followed by the key and the value, without memcached's NUL, suffix or CRLF.
//! There are no LRU list pointers, no hash-chain pointer and no refcount: items are only touched
//! under their shard lock, and callers read them through a callback ([`Store::get`]).
//!
//! **Index**: each shard (a `parking_lot::Mutex`) owns an open-addressing table (module `table`)
//! of `u64` slots = 48-bit item address + 16 hash bits, linear probing, backward-shift deletion,
//! grown x2 above 80% load. Lookups compare the 16-bit tag before dereferencing an item, so a hit
//! costs about two cache misses (slot, item).
//!
//! **Eviction** is a sampled second-chance CLOCK over slot order: the hand looks at 5 occupied
//! slots; a dead (expired/flushed) one is reclaimed at once, otherwise the victim is the sampled
//! item with the lowest (referenced bit, CAS) — unreferenced first, then the oldest store. Reads
//! set the reference bit (when `reads_mutate`), the hand clears it. The memory limit is global (one
//! atomic counter): a store evicts from its own shard first, then from the others (`try_lock`,
//! never blocking while holding its own lock), so a 1 MiB item fits under `-m 64` with 64 shards.
//! Slot order, the hand and the CAS counter depend only on the call sequence and the fixed hash,
//! which makes eviction deterministic.
//!
//! **Per-item overhead** (accounted in `bytes`, checked against `mem_limit`):
//! `malloc_size(24 + key + value)` (glibc: +8 chunk header, rounded up to 16, min 32) + 16 bytes
//! for the table slot (8 bytes at 40–80% load). For a 11-byte key and 100-byte value:
//! 135 → 144 bytes allocated + 16 = 160 bytes per item, i.e. 49 bytes over key + value; memcached
//! 1.6.18 spends 48 (header) + 8 (CAS) + 1 (NUL) + 2 (CRLF) = 59 bytes and rounds 170 up to its
//! 192-byte slab class, plus 8 bytes of hash bucket: ~200 bytes. A same-length overwrite reuses
//! the allocation.
//!
//! **Snapshots** (module `snapshot`): [`Store::export`] writes the store's exact image (every
//! item with its slot, the CLOCK hands, counters, CAS counter and flush state) and
//! [`Store::import`] rebuilds it in place, so a replica installed from an image behaves exactly
//! like the original afterwards, evictions included.
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
        StoreConfig {
            mem_limit: 64 << 20,
            item_size_max: 1 << 20,
            shards: 64,
            reads_mutate: true,
        }
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

impl<'a> StoreReq<'a> {
    /// A plain `set` of `value` under `key`: flags 0, no expiry, no compare; other requests
    /// start from it (`StoreReq { mode: StoreMode::Add, ..StoreReq::set(k, v) }`).
    pub fn set(key: &'a [u8], value: &'a [u8]) -> StoreReq<'a> {
        StoreReq {
            mode: StoreMode::Set,
            key,
            value,
            flags: 0,
            expires_at: 0,
            compare_cas: None,
            invalidate: false,
            new_cas: None,
            vivify: None,
        }
    }
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
    Ok {
        value: u64,
        cas: u64,
        expires_at: Expiry,
    },
    NotFound,
    /// Value is not a decimal u64 (`CLIENT_ERROR cannot increment or decrement non-numeric value`).
    NonNumeric,
    /// CAS mismatch.
    Exists,
    OutOfMemory,
}

/// The order of a meta command's `T`, `N` and `R` flags. memcached (`process_mget_command`,
/// `process_marithmetic_command`) applies them one at a time while it walks the request's flags,
/// so their order changes the outcome. Used by [`Store::get_meta`] and [`Store::arith_meta`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaOrder {
    /// `T` is listed after `N`: an item the command creates ends up with the `T` expiry (else
    /// with the `N` one: each token overwrites the expiry in turn).
    pub touch_after_vivify: bool,
    /// `R` is listed after `T`: the recache threshold is judged against the `T` expiry (else
    /// against the item's expiry before the command).
    pub recache_after_touch: bool,
}

/// What a meta command found, besides the item itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaInfo {
    /// The command created the item (`N`).
    pub created: bool,
    /// The item's expiry before the command (`0` for a created item: memcached allocates it
    /// with no expiry and then applies `N`/`T` as it meets them), so that a `t` flag listed
    /// before `T`/`N` can show it.
    pub prior_expires_at: Expiry,
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

mod hash;
mod item;
mod numeric;
mod snapshot;
mod table;

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

pub use hash::hash_key;
use item::{Item, FETCHED, REF, STALE, TOKEN};
pub use snapshot::{ImportInfo, SnapshotError};
use table::Table;

/// memcached's item header (`sizeof(item)` on 64-bit) plus the 8-byte CAS, used by the
/// `item_size_max` rule (items.c `item_make_header`/`item_size_ok`, slabs.c `slabs_clsid`).
pub const MEMCACHED_ITEM_HEADER: usize = 48 + 8;

/// memcached's largest slab chunk (`slab_chunk_size_max`: half of the default 1 MiB page); a
/// larger item is stored chunked.
pub const MEMCACHED_SLAB_CHUNK_MAX: usize = 512 * 1024;

/// memcached's `ntotal` for an item: header, CAS, NUL-terminated key, 4 bytes of client flags
/// when they are non-zero, value and CRLF.
fn memcached_item_size(key_len: usize, value_len: usize, flags: u32) -> usize {
    MEMCACHED_ITEM_HEADER + key_len + 1 + if flags != 0 { 4 } else { 0 } + value_len + 2
}

/// How many occupied slots the eviction hand samples before choosing a victim.
const EVICT_SAMPLE: usize = 5;

/// Cache-line padding so that shard locks and global counters do not share lines.
#[repr(align(128))]
struct Padded<T>(T);

#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    total_items: u64,
    evictions: u64,
    expired_unfetched: u64,
    evicted_unfetched: u64,
    reclaimed: u64,
    get_expired: u64,
    get_flushed: u64,
}

struct Shard {
    table: Table,
    /// CLOCK hand: next slot index the eviction sampler looks at.
    hand: usize,
    c: Counters,
}

// SAFETY: `Shard` is not `Send` only because its table holds raw item addresses. Those items are
// owned by the shard alone (nothing else keeps a handle past the lock), and are reached only
// through it, under its lock, so moving a shard to another thread moves their ownership with it.
unsafe impl Send for Shard {}

/// flush_all state (memcached's `settings.oldest_live` / `settings.oldest_cas`). Times are
/// stored `+1` so that `0` means "unset".
#[derive(Default)]
struct Flush {
    /// An earlier `oldest_live` that has already taken effect: items with `time <= it` stay dead.
    prev_live: AtomicU64,
    /// The current `oldest_live` (takes effect once `now >= oldest_live`).
    live: AtomicU64,
    /// `oldest_cas`: items with a non-zero CAS below this are dead.
    cas_floor: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dead {
    No,
    Expired,
    Flushed,
}

#[inline]
fn t32(x: u64) -> u32 {
    if x > u32::MAX as u64 {
        u32::MAX
    } else {
        x as u32
    }
}

#[inline]
fn itoa(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// How a stored item (with its state `bits`) is shown to a reader; `win` is the caller's: only a
/// meta get can win the recache race.
#[inline]
fn item_ref<'a>(it: Item, bits: u8, win: bool) -> ItemRef<'a> {
    ItemRef {
        key: it.key(),
        value: it.value(),
        flags: it.flags(),
        cas: it.cas(),
        expires_at: it.exp() as u64,
        last_access: it.time() as u64,
        fetched_before: bits & FETCHED != 0,
        stale: bits & STALE != 0,
        win,
        win_already_sent: bits & TOKEN != 0,
    }
}

/// The item store. All methods take `&self`; internally sharded locks.
pub struct Store {
    config: StoreConfig,
    shards: Box<[Padded<Mutex<Shard>>]>,
    shard_mask: usize,
    limit: u64,
    used: Padded<AtomicU64>,
    cas: Padded<AtomicU64>,
    flush: Flush,
    flush_lock: Mutex<()>,
}

impl Store {
    /// Create a store. `shards` is rounded up to a power of two (1..=4096).
    pub fn new(config: StoreConfig) -> Store {
        let mut config = config;
        config.shards = config.shards.clamp(1, 4096).next_power_of_two();
        let shards: Vec<Padded<Mutex<Shard>>> = (0..config.shards)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    table: Table::new(),
                    hand: 0,
                    c: Counters::default(),
                }))
            })
            .collect();
        Store {
            shard_mask: config.shards - 1,
            limit: config.mem_limit as u64,
            config,
            shards: shards.into_boxed_slice(),
            used: Padded(AtomicU64::new(0)),
            cas: Padded(AtomicU64::new(0)),
            flush: Flush::default(),
            flush_lock: Mutex::new(()),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Whether an item with this key and value length fits under `item_size_max` (memcached's
    /// rule: header + key + value + "\r\n" must not exceed it). Protocol layers call this before
    /// reading a value so they can answer `SERVER_ERROR object too large for cache` and swallow it.
    ///
    /// The rule is memcached's for flags == 0: `56 + key_len + 1 + value_len + 2 <= item_size_max`
    /// (48-byte `item` + 8-byte CAS + NUL-terminated key + value + CRLF). The item must also fit
    /// in the whole memory limit. See [`Store::item_fits_with_flags`] for the exact rule.
    pub fn item_fits(&self, key_len: usize, value_len: usize) -> bool {
        self.item_fits_with_flags(key_len, value_len, 0)
    }

    /// [`Store::item_fits`] with memcached's exact rule: non-zero client flags take 4 more bytes.
    pub fn item_fits_with_flags(&self, key_len: usize, value_len: usize, flags: u32) -> bool {
        if key_len > item::MAX_KEY || value_len > item::MAX_VALUE {
            return false;
        }
        let total = memcached_item_size(key_len, value_len, flags);
        total <= self.config.item_size_max && item::charge(key_len, value_len) as u64 <= self.limit
    }

    /// Accounted bytes an item with this key and value length costs (see "Memory design").
    pub fn item_charge(key_len: usize, value_len: usize) -> usize {
        item::charge(key_len, value_len)
    }

    /// Cache hints for a batch of writes applied in order (a cluster replica's apply): the
    /// memory misses of a lookup (table slot, then item) are what a write mostly waits for, and
    /// issuing them ahead lets several overlap. `stage` 0 touches `key`'s table slot, stage 1
    /// its item (issue it once the slot's line had time to land, e.g. after stage 0 for a few
    /// other keys). Changes nothing but the cache.
    pub fn prefetch(&self, key: &[u8], stage: u8) {
        let h = hash_key(key);
        let sh = self.shards[self.shard_of(h)].0.lock();
        if stage == 0 {
            sh.table.prefetch_slot(h);
        } else {
            sh.table.prefetch_item(h);
        }
    }

    #[inline]
    fn shard_of(&self, h: u64) -> usize {
        (h >> 40) as usize & self.shard_mask
    }

    #[inline]
    fn next_cas(&self) -> u64 {
        self.cas.0.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }

    #[inline]
    fn new_cas(&self, explicit: Option<u64>) -> u64 {
        match explicit {
            Some(c) => c,
            None => self.next_cas(),
        }
    }

    /// memcached's `item_is_flushed` (items.c), without its resurrection quirk: a later delayed
    /// flush_all does not revive items an earlier flush already killed.
    #[inline]
    fn is_flushed(&self, it: Item, now: u64) -> bool {
        let t = it.time() as u64;
        let prev = self.flush.prev_live.load(Ordering::Acquire);
        if prev != 0 && t < prev {
            return true;
        }
        let live = self.flush.live.load(Ordering::Acquire);
        if live != 0 && live - 1 <= now && t < live {
            return true;
        }
        let floor = self.flush.cas_floor.load(Ordering::Acquire);
        if floor != 0 {
            let c = it.cas();
            if c != 0 && c < floor {
                return true;
            }
        }
        false
    }

    #[inline]
    fn dead(&self, it: Item, now: u64) -> Dead {
        if self.is_flushed(it, now) {
            Dead::Flushed
        } else {
            let e = it.exp();
            if e != 0 && e as u64 <= now {
                Dead::Expired
            } else {
                Dead::No
            }
        }
    }

    /// Unlink and free the item in slot `i`.
    fn unlink(&self, sh: &mut Shard, i: usize) {
        if let Some(it) = sh.table.remove_at(i) {
            self.used.0.fetch_sub(it.charge() as u64, Ordering::AcqRel);
            // SAFETY: just unlinked; nothing else refers to it.
            unsafe { it.free() };
        }
    }

    /// Put `new` into slot `i` in place of the current item, which is freed. `used` must already
    /// include `new`'s charge minus the old one's when positive; this settles a shrink.
    fn replace_at(&self, sh: &mut Shard, i: usize, h: u64, new: Item) {
        if let Some(old) = sh.table.get(i) {
            let (oc, nc) = (old.charge() as u64, new.charge() as u64);
            if oc > nc {
                self.used.0.fetch_sub(oc - nc, Ordering::AcqRel);
            }
            sh.table.replace(i, h, new);
            // SAFETY: no longer reachable from the table.
            unsafe { old.free() };
        }
    }

    /// memcached's `do_item_get`: slot of the live item under `key`. A dead item is a miss,
    /// counted in `get_expired`/`get_flushed`, and unlinked when `reclaim`.
    fn lookup(&self, sh: &mut Shard, h: u64, key: &[u8], now: u64, reclaim: bool) -> Option<usize> {
        let i = sh.table.find(h, key)?;
        let it = sh.table.get(i)?;
        match self.dead(it, now) {
            Dead::No => Some(i),
            d => {
                if d == Dead::Flushed {
                    sh.c.get_flushed += 1;
                } else {
                    sh.c.get_expired += 1;
                }
                if reclaim {
                    self.unlink(sh, i);
                }
                None
            }
        }
    }

    /// Free one item of this shard: a dead one among the sampled slots if any (reclaimed first),
    /// else the sampled item with the lowest (referenced, CAS) — second-chance CLOCK ordered by
    /// store age. `exclude` (an item address) is never chosen. Returns false if nothing could go.
    fn evict_one(&self, sh: &mut Shard, now: u64, exclude: u64) -> bool {
        if sh.table.len() == 0 {
            return false;
        }
        let cap = sh.table.capacity();
        let mask = cap - 1;
        let mut i = sh.hand & mask;
        let mut best: Option<(usize, (u8, u64))> = None;
        let mut seen = 0;
        for _ in 0..cap {
            if let Some(it) = sh.table.get(i) {
                if it.addr() != exclude {
                    if self.dead(it, now) != Dead::No {
                        sh.c.reclaimed += 1;
                        if it.bits() & FETCHED == 0 {
                            sh.c.expired_unfetched += 1;
                        }
                        self.unlink(sh, i);
                        sh.hand = i;
                        return true;
                    }
                    let b = it.bits();
                    let referenced = (b & REF != 0) as u8;
                    if referenced != 0 {
                        it.set_bits(b & !REF);
                    }
                    let score = (referenced, it.cas());
                    if !matches!(best, Some((_, s)) if s <= score) {
                        best = Some((i, score));
                    }
                    seen += 1;
                }
            }
            i = (i + 1) & mask;
            if seen >= EVICT_SAMPLE {
                break;
            }
        }
        sh.hand = i;
        match best {
            Some((v, _)) => {
                if let Some(it) = sh.table.get(v) {
                    sh.c.evictions += 1;
                    if it.bits() & FETCHED == 0 {
                        sh.c.evicted_unfetched += 1;
                    }
                }
                self.unlink(sh, v);
                true
            }
            None => false,
        }
    }

    /// Account `need` more bytes, evicting (own shard first, then the others) until they fit.
    fn reserve(&self, sh: &mut Shard, si: usize, need: u64, now: u64, exclude: u64) -> bool {
        if need == 0 {
            return true;
        }
        if need > self.limit {
            return false;
        }
        let mut own_exhausted = false;
        let mut other = 1usize;
        loop {
            let cur = self.used.0.load(Ordering::Acquire);
            if cur + need <= self.limit {
                if self
                    .used
                    .0
                    .compare_exchange_weak(cur, cur + need, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if !own_exhausted {
                if self.evict_one(sh, now, exclude) {
                    continue;
                }
                own_exhausted = true;
            }
            let n = self.shards.len();
            let mut freed = false;
            while other < n {
                let j = (si + other) & self.shard_mask;
                // Never block on another shard while holding ours (no lock-order deadlocks).
                if let Some(mut g) = self.shards[j].0.try_lock() {
                    if self.evict_one(&mut g, now, 0) {
                        freed = true;
                        break;
                    }
                }
                other += 1;
            }
            if !freed {
                return false;
            }
        }
    }

    /// Link a new item (key absent), reserving memory. On failure the item is freed.
    fn link_new(
        &self,
        sh: &mut Shard,
        si: usize,
        h: u64,
        it: Item,
        cas: Option<u64>,
        now: u64,
    ) -> Option<(usize, u64)> {
        if !self.reserve(sh, si, it.charge() as u64, now, 0) {
            // SAFETY: never linked.
            unsafe { it.free() };
            return None;
        }
        let cas = self.new_cas(cas);
        it.set_cas(cas);
        sh.c.total_items += 1;
        Some((sh.table.insert(h, it), cas))
    }

    /// Replace the live item under `key` (at slot `i`) with `new`, reserving the size difference.
    /// Returns the new CAS, or None (new freed, old kept) when memory could not be found.
    #[allow(clippy::too_many_arguments)]
    fn link_replace(
        &self,
        sh: &mut Shard,
        si: usize,
        h: u64,
        key: &[u8],
        i: usize,
        new: Item,
        cas: Option<u64>,
        now: u64,
    ) -> Option<u64> {
        let old = sh.table.get(i)?;
        let need = (new.charge() as u64).saturating_sub(old.charge() as u64);
        if !self.reserve(sh, si, need, now, old.addr()) {
            // SAFETY: never linked.
            unsafe { new.free() };
            return None;
        }
        // Evictions may have shifted slots; the old item itself was excluded.
        let i = match sh.table.find(h, key) {
            Some(i) => i,
            None => {
                self.used.0.fetch_sub(need, Ordering::AcqRel);
                // SAFETY: never linked.
                unsafe { new.free() };
                return None;
            }
        };
        let cas = self.new_cas(cas);
        new.set_cas(cas);
        sh.c.total_items += 1;
        self.replace_at(sh, i, h, new);
        Some(cas)
    }

    /// Look up a live item and call `f` with it while its shard is locked. Returns `None` on miss
    /// (expired and flushed items count as misses and are reclaimed).
    ///
    /// State changes: with `reads_mutate` (and no `no_lru_bump`) a hit sets the fetched and LRU
    /// reference bits and the last-access time (after `f` saw the previous values, as memcached's
    /// delayed bump). `touch`, `vivify` and `recache_below` are writes and always apply; a win
    /// token (`W`) is recorded on the item only when `reads_mutate` or one of those is given.
    /// With `reads_mutate == false` a plain read changes nothing (dead items are not even
    /// reclaimed).
    ///
    /// A stale item with no token sent yet hands out its win token only to a meta get (memcached
    /// does this in `mg` alone; `get`, `gat` and binary reads leave the token alone). This method
    /// cannot tell an `mg` without `N`/`R` from a plain read, so it treats a read as a meta get
    /// when it carries `vivify` or `recache_below`, and on a replica (`reads_mutate == false`,
    /// where plain reads record nothing) every read reports the win. Servers that know they run
    /// an `mg` use [`Store::get_meta`].
    ///
    /// Order of meta flags: `recache_below` is judged against the expiry before `touch` is applied;
    /// `touch` applies to hits only (a vivified item gets the `vivify` expiry).
    pub fn get<R>(
        &self,
        key: &[u8],
        now: u64,
        opts: GetOpts,
        f: impl FnOnce(ItemRef<'_>) -> R,
    ) -> Option<R> {
        let meta =
            opts.vivify.is_some() || opts.recache_below.is_some() || !self.config.reads_mutate;
        self.get_inner(key, now, opts, MetaOrder::default(), meta, |it, _| f(it))
    }

    /// A meta get (memcached's `process_mget_command`): like [`Store::get`], but `T`, `N` and `R`
    /// are applied in the request's `order`, and a stale item with no token sent yet always
    /// hands out its win token. An item created by `vivify` starts with no expiry and gets the
    /// `vivify` or `touch` expiry, whichever is listed last; it never wins by `recache_below`.
    /// `f` also learns whether the item was created and its expiry before the command.
    pub fn get_meta<R>(
        &self,
        key: &[u8],
        now: u64,
        opts: GetOpts,
        order: MetaOrder,
        f: impl FnOnce(ItemRef<'_>, MetaInfo) -> R,
    ) -> Option<R> {
        self.get_inner(key, now, opts, order, true, f)
    }

    fn get_inner<R>(
        &self,
        key: &[u8],
        now: u64,
        opts: GetOpts,
        order: MetaOrder,
        meta: bool,
        f: impl FnOnce(ItemRef<'_>, MetaInfo) -> R,
    ) -> Option<R> {
        let h = hash_key(key);
        let si = self.shard_of(h);
        let mut g = self.shards[si].0.lock();
        let sh = &mut *g;
        let writes = opts.touch.is_some() || opts.vivify.is_some() || opts.recache_below.is_some();
        let may_write = self.config.reads_mutate || writes;
        let mut created = false;
        let idx = match self.lookup(sh, h, key, now, may_write) {
            Some(i) => i,
            None => {
                let vexp = opts.vivify?;
                let exp = match opts.touch {
                    Some(t) if order.touch_after_vivify => t,
                    _ => vexp,
                };
                let it = Item::alloc(key, &[], 0, t32(exp), t32(now), 0)?;
                created = true;
                self.link_new(sh, si, h, it, None, now)?.0
            }
        };
        let it = sh.table.get(idx)?;
        let bits = it.bits();
        let mut win = created;
        let prior = if created { 0 } else { it.exp() as u64 };
        if !created {
            if let Some(r) = opts.recache_below {
                let e = match opts.touch {
                    Some(t) if order.recache_after_touch => u64::from(t32(t)),
                    _ => prior,
                };
                if bits & TOKEN == 0 && e != 0 && e < now.saturating_add(r) {
                    win = true;
                }
            }
            if let Some(t) = opts.touch {
                it.set_exp(t32(t));
            }
        }
        if meta && bits & STALE != 0 && bits & TOKEN == 0 {
            win = true;
        }
        let r = f(
            item_ref(it, bits, win),
            MetaInfo {
                created,
                prior_expires_at: prior,
            },
        );
        let mut nb = bits;
        if win && may_write {
            nb |= TOKEN;
        }
        if self.config.reads_mutate && !opts.no_lru_bump {
            nb |= FETCHED | REF;
            it.set_time(t32(now));
        }
        if nb != bits {
            it.set_bits(nb);
        }
        Some(r)
    }

    /// set/add/replace/append/prepend/cas. On `TooLarge` the old item is removed.
    ///
    /// Follows memcached's `do_store_item` (memcached.c): `Set`/`Replace` with `compare_cas` is
    /// the `cas` command (`NotFound` when missing; `Exists` on mismatch or a compare value of 0;
    /// with `invalidate`, an older compare CAS stores a stale item keeping the old expiry and
    /// token bit). `Add` ignores `compare_cas` and on an existing item refreshes its access time.
    /// `Append`/`Prepend` check a non-zero `compare_cas` and keep the old flags and expiry; if the
    /// combined item would exceed the limits they answer `NotStored` and keep the old item (as
    /// memcached's failed allocation in `do_store_item`). A request value that alone is too
    /// large answers `TooLarge` and removes the old item for every mode (meta `ms` semantics).
    /// `OutOfMemory` on a `Set` also removes the old item (memcached: "avoid stale data").
    pub fn store(&self, req: &StoreReq<'_>, now: u64) -> StoreOutcome {
        let key = req.key;
        let h = hash_key(key);
        let si = self.shard_of(h);
        let mut g = self.shards[si].0.lock();
        let sh = &mut *g;
        if !self.item_fits_with_flags(key.len(), req.value.len(), req.flags) {
            if let Some(i) = sh.table.find(h, key) {
                self.unlink(sh, i);
            }
            return StoreOutcome::TooLarge;
        }
        let old = self.lookup(sh, h, key, now, true);
        let cmp = req.compare_cas.unwrap_or(0);
        let cas_cmd =
            req.compare_cas.is_some() && matches!(req.mode, StoreMode::Set | StoreMode::Replace);
        let now32 = t32(now);
        let Some(i) = old else {
            let exp = match req.mode {
                _ if cas_cmd => return StoreOutcome::NotFound,
                StoreMode::Set | StoreMode::Add => req.expires_at,
                StoreMode::Replace => return StoreOutcome::NotStored,
                StoreMode::Append | StoreMode::Prepend => match req.vivify {
                    Some(e) => e,
                    None => return StoreOutcome::NotStored,
                },
            };
            let Some(it) = Item::alloc(key, &[req.value], req.flags, t32(exp), now32, 0) else {
                return StoreOutcome::OutOfMemory;
            };
            return match self.link_new(sh, si, h, it, req.new_cas, now) {
                Some((_, cas)) => StoreOutcome::Stored { cas },
                None => StoreOutcome::OutOfMemory,
            };
        };
        let Some(old_it) = sh.table.get(i) else {
            return StoreOutcome::OutOfMemory;
        };
        let old_cas = old_it.cas();
        #[derive(PartialEq)]
        enum Cas {
            None,
            Match,
            Stale,
            Bad,
        }
        let cas_res = if cmp == 0 {
            Cas::None
        } else if cmp == old_cas {
            Cas::Match
        } else if req.invalidate && cas_cmd && cmp < old_cas {
            Cas::Stale
        } else {
            Cas::Bad
        };
        let mut exp = t32(req.expires_at);
        let mut flags = req.flags;
        let mut bits = 0u8;
        // A whole-value replacement of the same length reuses the allocation: the result is
        // identical to linking a fresh item (new CAS, time, flags, bits; same slot).
        let overwrite = |flags: u32, exp: u32, bits: u8| {
            if old_it.value_len() == req.value.len() {
                old_it.value_mut().copy_from_slice(req.value);
                let cas = self.new_cas(req.new_cas);
                old_it.set_cas(cas);
                old_it.set_u32_fields(exp, now32, flags);
                old_it.set_bits(bits);
                Ok(cas)
            } else {
                Err(Item::alloc(key, &[req.value], flags, exp, now32, bits))
            }
        };
        let new = if cas_cmd {
            match cas_res {
                Cas::Match => overwrite(flags, exp, 0),
                Cas::Stale => {
                    exp = old_it.exp();
                    bits = STALE | (old_it.bits() & TOKEN);
                    overwrite(flags, exp, bits)
                }
                _ => return StoreOutcome::Exists,
            }
        } else {
            match req.mode {
                StoreMode::Add => {
                    // memcached: "add only adds a nonexistent item, but promote to head of LRU".
                    old_it.set_time(now32);
                    return StoreOutcome::NotStored;
                }
                StoreMode::Set | StoreMode::Replace => overwrite(flags, exp, 0),
                StoreMode::Append | StoreMode::Prepend => {
                    if cas_res != Cas::None && cas_res != Cas::Match {
                        return StoreOutcome::Exists;
                    }
                    flags = old_it.flags();
                    exp = old_it.exp();
                    let total = old_it.value_len() + req.value.len();
                    if !self.item_fits_with_flags(key.len(), total, flags) {
                        return StoreOutcome::NotStored;
                    }
                    let parts: [&[u8]; 2] = if req.mode == StoreMode::Append {
                        [old_it.value(), req.value]
                    } else {
                        [req.value, old_it.value()]
                    };
                    Err(Item::alloc(key, &parts, flags, exp, now32, bits))
                }
            }
        };
        let new = match new {
            Ok(cas) => {
                sh.c.total_items += 1;
                return StoreOutcome::Stored { cas };
            }
            Err(new) => new,
        };
        let Some(new) = new else {
            return StoreOutcome::OutOfMemory;
        };
        match self.link_replace(sh, si, h, key, i, new, req.new_cas, now) {
            Some(cas) => StoreOutcome::Stored { cas },
            None => {
                if req.mode == StoreMode::Set && !cas_cmd {
                    if let Some(i) = sh.table.find(h, key) {
                        self.unlink(sh, i);
                    }
                }
                StoreOutcome::OutOfMemory
            }
        }
    }

    /// Remove an item of this key (used for oversized sets whose value was never read).
    pub fn remove(&self, key: &[u8], now: u64) {
        let _ = now;
        let h = hash_key(key);
        let mut g = self.shards[self.shard_of(h)].0.lock();
        if let Some(i) = g.table.find(h, key) {
            self.unlink(&mut g, i);
        }
    }

    /// delete / meta `md` (memcached `process_mdelete_command`).
    ///
    /// * `compare_cas`: mismatch => `Exists` (a compare value of 0 only matches CAS 0).
    /// * `invalidate`: the item stays, marked stale, its win token cleared, a new CAS
    ///   (`new_cas` or the counter) and the `touch` expiry if given.
    /// * `remove_value_only`: the item is replaced by an empty value with flags 0, a new CAS and
    ///   its expiry kept (or `touch`); combined with `invalidate` the emptied item is also stale.
    pub fn delete(&self, key: &[u8], opts: DeleteOpts, now: u64) -> DeleteOutcome {
        let h = hash_key(key);
        let si = self.shard_of(h);
        let mut g = self.shards[si].0.lock();
        let sh = &mut *g;
        let Some(i) = self.lookup(sh, h, key, now, true) else {
            return DeleteOutcome::NotFound;
        };
        let Some(it) = sh.table.get(i) else {
            return DeleteOutcome::NotFound;
        };
        if let Some(c) = opts.compare_cas {
            if c != it.cas() {
                return DeleteOutcome::Exists;
            }
        }
        if opts.remove_value_only {
            let exp = opts.touch.map(t32).unwrap_or(it.exp());
            let bits = if opts.invalidate { STALE } else { 0 };
            match Item::alloc(key, &[], 0, exp, t32(now), bits) {
                Some(new) => {
                    // An empty item never costs more than the old one: no reservation needed.
                    let cas = self.new_cas(opts.new_cas);
                    new.set_cas(cas);
                    sh.c.total_items += 1;
                    let need = (new.charge() as u64).saturating_sub(it.charge() as u64);
                    self.used.0.fetch_add(need, Ordering::AcqRel);
                    self.replace_at(sh, i, h, new);
                }
                None => self.unlink(sh, i),
            }
            return DeleteOutcome::Deleted;
        }
        if opts.invalidate {
            if let Some(t) = opts.touch {
                it.set_exp(t32(t));
            }
            it.set_bits((it.bits() | STALE) & !TOKEN);
            it.set_cas(self.new_cas(opts.new_cas));
            return DeleteOutcome::Deleted;
        }
        self.unlink(sh, i);
        DeleteOutcome::Deleted
    }

    /// incr/decr. incr wraps at 2^64, decr floors at 0. Like memcached, when the new decimal text
    /// is shorter than the old one the value keeps its length, padded with trailing spaces.
    ///
    /// memcached's `do_add_delta`: an empty value is `NonNumeric` (checked before the CAS); a
    /// non-zero `compare_cas` must match; the value is parsed like `safe_strtoull` (see the
    /// `numeric` module: leading blanks and `+` accepted, no length limit). When the new text is
    /// longer than the old value a new item is linked (same flags and expiry, fresh CAS and
    /// `total_items`); otherwise the value is rewritten in place with a new CAS. `vivify` on a
    /// miss adds `initial` (flags 0) and returns it without applying the delta; its expiry is the
    /// vivify one, overridden by `touch` if both are given.
    ///
    /// `touch` (meta `ma ... T`) applies to an item rewritten in place only: when the new text is
    /// longer, memcached links a new item with the old expiry and applies `T` to the old item it
    /// still holds, so the stored item keeps its expiry (the returned `expires_at` is the stored
    /// item's).
    pub fn arith(&self, req: &ArithReq<'_>, now: u64) -> ArithOutcome {
        let order = MetaOrder {
            touch_after_vivify: true,
            recache_after_touch: false,
        };
        self.arith_meta(req, order, false, now).0
    }

    /// [`Store::arith`] for meta `ma` (memcached's `process_marithmetic_command`): an item created
    /// by `vivify` gets the `vivify` or `touch` expiry, whichever `order` lists last; also reports
    /// whether the item was created and its expiry before the command.
    ///
    /// `referenced`: the caller still holds the item elsewhere (memcached: an `mg`/`get` reply not
    /// yet written keeps a reference), so memcached cannot rewrite it in place (`do_add_delta`
    /// needs `refcount == 2`): the result is a new item, as when the number grows (unpadded,
    /// fresh state bits, old expiry, `touch` not applied).
    pub fn arith_meta(
        &self,
        req: &ArithReq<'_>,
        order: MetaOrder,
        referenced: bool,
        now: u64,
    ) -> (ArithOutcome, MetaInfo) {
        let key = req.key;
        let h = hash_key(key);
        let si = self.shard_of(h);
        let mut g = self.shards[si].0.lock();
        let sh = &mut *g;
        let mut buf = [0u8; 20];
        let now32 = t32(now);
        let none = MetaInfo::default();
        let Some(i) = self.lookup(sh, h, key, now, true) else {
            let Some((initial, vexp)) = req.vivify else {
                return (ArithOutcome::NotFound, none);
            };
            let exp = match req.touch {
                Some(t) if order.touch_after_vivify => t32(t),
                _ => t32(vexp),
            };
            let text = itoa(initial, &mut buf);
            let Some(it) = Item::alloc(key, &[text], 0, exp, now32, 0) else {
                return (ArithOutcome::OutOfMemory, none);
            };
            let created = MetaInfo {
                created: true,
                prior_expires_at: 0,
            };
            return match self.link_new(sh, si, h, it, req.new_cas, now) {
                Some((_, cas)) => (
                    ArithOutcome::Ok {
                        value: initial,
                        cas,
                        expires_at: exp as u64,
                    },
                    created,
                ),
                None => (ArithOutcome::OutOfMemory, none),
            };
        };
        let Some(it) = sh.table.get(i) else {
            return (ArithOutcome::NotFound, none);
        };
        let info = MetaInfo {
            created: false,
            prior_expires_at: it.exp() as u64,
        };
        // memcached: an empty value, or one stored as a chunked item (larger than the largest
        // slab chunk), is non-numeric before the CAS is even compared.
        if it.value_len() == 0
            || memcached_item_size(key.len(), it.value_len(), it.flags()) > MEMCACHED_SLAB_CHUNK_MAX
        {
            return (ArithOutcome::NonNumeric, info);
        }
        if let Some(c) = req.compare_cas {
            if c != 0 && c != it.cas() {
                return (ArithOutcome::Exists, info);
            }
        }
        let Some(v) = numeric::parse_stored_u64(it.value()) else {
            return (ArithOutcome::NonNumeric, info);
        };
        let nv = if req.incr {
            v.wrapping_add(req.delta)
        } else {
            v.saturating_sub(req.delta)
        };
        let text = itoa(nv, &mut buf);
        if text.len() <= it.value_len() && !referenced {
            let exp = req.touch.map(t32).unwrap_or(it.exp());
            let val = it.value_mut();
            val[..text.len()].copy_from_slice(text);
            val[text.len()..].fill(b' ');
            let cas = self.new_cas(req.new_cas);
            it.set_cas(cas);
            it.set_time(now32);
            it.set_exp(exp);
            return (
                ArithOutcome::Ok {
                    value: nv,
                    cas,
                    expires_at: exp as u64,
                },
                info,
            );
        }
        let exp = it.exp();
        let Some(new) = Item::alloc(key, &[text], it.flags(), exp, now32, 0) else {
            return (ArithOutcome::OutOfMemory, info);
        };
        match self.link_replace(sh, si, h, key, i, new, req.new_cas, now) {
            Some(cas) => (
                ArithOutcome::Ok {
                    value: nv,
                    cas,
                    expires_at: exp as u64,
                },
                info,
            ),
            None => (ArithOutcome::OutOfMemory, info),
        }
    }

    /// Set a new expiry on a live item. Returns whether it was found. Like memcached's
    /// `do_item_touch`, a touch also counts as an access (LRU bump when `reads_mutate`).
    pub fn touch(&self, key: &[u8], expires_at: Expiry, now: u64) -> bool {
        let h = hash_key(key);
        let mut g = self.shards[self.shard_of(h)].0.lock();
        let sh = &mut *g;
        let Some(i) = self.lookup(sh, h, key, now, true) else {
            return false;
        };
        let Some(it) = sh.table.get(i) else {
            return false;
        };
        it.set_exp(t32(expires_at));
        if self.config.reads_mutate {
            it.set_bits(it.bits() | FETCHED | REF);
            it.set_time(t32(now));
        }
        true
    }

    /// memcached `flush_all [delay]`: every item stored at or before `now + delay` becomes
    /// invalid once that time is reached (`delay == 0`: immediately).
    ///
    /// Exactly memcached's `process_flush_all_command`: `oldest_live = realtime(delay) - 1`
    /// (`now - 1` for delay 0), so items whose last store/access time is `<= now + delay - 1`
    /// die once `now + delay - 1` is reached; if that moment is not in the future, `oldest_cas`
    /// is also set from the CAS counter, which kills every item stored before this call even
    /// within the same second. As with memcached's `realtime`, a delay above 30 days is an
    /// absolute unix time (one in the past = immediately). Unlike memcached, replacing an
    /// already effective flush with a delayed one does not bring flushed items back.
    pub fn flush_all(&self, delay: u64, now: u64) {
        let _g = self.flush_lock.lock();
        let target = if delay == 0 {
            now
        } else if delay > REALTIME_MAXDELTA as u64 {
            delay.max(now)
        } else {
            now.saturating_add(delay)
        };
        let oldest_live = target.saturating_sub(1);
        let cur = self.flush.live.load(Ordering::Acquire);
        if cur != 0 && cur - 1 <= now {
            let prev = self.flush.prev_live.load(Ordering::Acquire);
            self.flush.prev_live.store(prev.max(cur), Ordering::Release);
        }
        self.flush
            .live
            .store(oldest_live.saturating_add(1), Ordering::Release);
        if oldest_live <= now {
            let floor = self.next_cas();
            self.flush.cas_floor.store(floor, Ordering::Release);
        }
    }

    /// Remove expired items in one shard (background expiry calls this in a loop over shards);
    /// returns how many were reclaimed. Flushed items are reclaimed too. Counted in `reclaimed`
    /// and, if never fetched, `expired_unfetched` (memcached's LRU crawler).
    pub fn expire_shard(&self, shard: usize, now: u64) -> usize {
        let Some(s) = self.shards.get(shard) else {
            return 0;
        };
        let mut g = s.0.lock();
        let sh = &mut *g;
        let mut n = 0;
        let mut i = 0;
        while i < sh.table.capacity() {
            match sh.table.get(i) {
                Some(it) if self.dead(it, now) != Dead::No => {
                    sh.c.reclaimed += 1;
                    if it.bits() & FETCHED == 0 {
                        sh.c.expired_unfetched += 1;
                    }
                    self.unlink(sh, i);
                    n += 1;
                    // Backward shift may have moved another entry into slot i: look again.
                }
                _ => i += 1,
            }
        }
        n
    }

    /// Accounted bytes of the items stored (`stats`' `bytes`), without locking a shard.
    pub fn used_bytes(&self) -> u64 {
        self.used.0.load(Ordering::Acquire)
    }

    /// Number of shards (valid `expire_shard` indexes are `0..shard_count()`).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn stats(&self) -> StoreStats {
        let mut s = StoreStats::default();
        for shard in self.shards.iter() {
            let g = shard.0.lock();
            s.curr_items += g.table.len() as u64;
            s.total_items += g.c.total_items;
            s.evictions += g.c.evictions;
            s.expired_unfetched += g.c.expired_unfetched;
            s.evicted_unfetched += g.c.evicted_unfetched;
            s.reclaimed += g.c.reclaimed;
            s.get_expired += g.c.get_expired;
            s.get_flushed += g.c.get_flushed;
        }
        s.bytes = self.used_bytes();
        s
    }

    /// `stats reset`: zero the resettable counters (total_items, evictions, …), not curr_items/bytes.
    pub fn reset_stats(&self) {
        for shard in self.shards.iter() {
            shard.0.lock().c = Counters::default();
        }
    }

    /// Visit every stored item (including dead ones not yet reclaimed), shard by shard in slot
    /// order — a deterministic order for two stores built by the same call sequence. Changes
    /// nothing. `win`/`win_already_sent` report the token bit; `fetched_before` the fetched bit.
    pub fn for_each_item(&self, mut f: impl FnMut(ItemRef<'_>)) {
        for shard in self.shards.iter() {
            let g = shard.0.lock();
            for i in 0..g.table.capacity() {
                if let Some(it) = g.table.get(i) {
                    let bits = it.bits();
                    f(item_ref(it, bits, false));
                }
            }
        }
    }

    /// The last CAS value drawn from the counter.
    pub fn current_cas(&self) -> u64 {
        self.cas.0.load(Ordering::Acquire)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        for shard in self.shards.iter() {
            for it in shard.0.lock().table.drain() {
                // SAFETY: drained from the table; the store is going away.
                unsafe { it.free() };
            }
        }
    }
}

#[cfg(test)]
mod tests;
