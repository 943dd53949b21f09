//! One database: keys to entries, in an insertion-indexed map so that random sampling
//! (`RANDOMKEY`, eviction, the active expiry cycle) and `SCAN` cursors are O(1) per step, with a
//! fixed hasher so iteration order is deterministic.

use foldhash::fast::FixedState;
use indexmap::IndexMap;

use crate::strvalue::StrValue;
use crate::types::{Hash, List, Set};

/// The hasher every map in the store uses: fixed seed, so replicas agree on iteration order.
pub type Hasher = FixedState;

/// Bytes the store counts per key on top of the key's and the value's heap allocations: the
/// map's entry (stored hash, key pointer, [`Entry`]) and its index slot (8 bytes and a control
/// byte at 7/8 load). Keeping `used` close to the real footprint makes `maxmemory` mean what it
/// says. Measured (`tests::rss_of_a_million_strings`): 1M keys of 16 bytes with 100-byte
/// values grow the RSS by ~269 MiB with glibc's malloc; redis-server 7.0.15 grows by ~196 MiB.
/// Most of the difference is [`Value`]'s size (80 bytes: the hash and set variants hold their
/// maps inline); boxing the collection types would bring an entry from 120 to 64 bytes.
pub const KEY_OVERHEAD: usize = 8 + 16 + std::mem::size_of::<Entry>() + 10;

/// What the allocator hands out for `len` bytes (16-byte size classes; nothing for 0).
pub const fn alloc_size(len: usize) -> usize {
    len.div_ceil(16) * 16
}

/// A stored value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(StrValue),
    List(Box<List>),
    Hash(Box<Hash>),
    Set(Box<Set>),
}

impl Value {
    /// `TYPE`'s answer.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
        }
    }

    /// Accounted bytes of the value (O(1): collections keep their own count).
    pub fn mem(&self) -> usize {
        match self {
            Value::Str(s) => alloc_size(s.alloc_len()),
            Value::List(l) => l.mem(),
            Value::Hash(h) => h.mem(),
            Value::Set(s) => s.mem(),
        }
    }

    /// The LRU clock the value carries for its key.
    pub fn lru(&self) -> u32 {
        match self {
            Value::Str(s) => s.lru(),
            Value::List(l) => l.lru,
            Value::Hash(h) => h.lru,
            Value::Set(s) => s.lru,
        }
    }

    pub fn set_lru(&mut self, lru: u32) {
        match self {
            Value::Str(s) => s.set_lru(lru),
            Value::List(l) => l.lru = lru,
            Value::Hash(h) => h.lru = lru,
            Value::Set(s) => s.lru = lru,
        }
    }

    /// An empty collection is deleted, as Redis deletes it.
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
        }
    }
}

/// A key's entry. Its LRU clock lives in the value (in a string's allocation, in a collection's
/// struct), which keeps an entry at 24 bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub value: Value,
    /// Absolute unix milliseconds; 0: no expiry.
    pub expire_at: u64,
}

impl Entry {
    /// An entry whose LRU clock is `lru`.
    pub fn new(mut value: Value, expire_at: u64, lru: u32) -> Entry {
        value.set_lru(lru);
        Entry { value, expire_at }
    }

    /// Last access, in the keyspace's LRU clock (seconds), for the LRU policies and
    /// `OBJECT IDLETIME`.
    pub fn lru(&self) -> u32 {
        self.value.lru()
    }

    pub fn set_lru(&mut self, lru: u32) {
        self.value.set_lru(lru);
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }
}

/// Accounted bytes of one key and its entry.
pub fn entry_mem(key: &[u8], entry: &Entry) -> usize {
    KEY_OVERHEAD + alloc_size(key.len()) + entry.value.mem()
}

/// One numbered database.
#[derive(Clone, Debug, Default)]
pub struct Db {
    pub map: IndexMap<Box<[u8]>, Entry, Hasher>,
    /// How many keys carry an expiry (`INFO keyspace`'s `expires=`).
    pub expires: usize,
    /// Where the active expiry cycle resumes (an index into `map`).
    pub(crate) expire_cursor: usize,
}

impl Db {
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
