//! One database: keys to entries, in an insertion-indexed map so that random sampling
//! (`RANDOMKEY`, eviction, the active expiry cycle) and `SCAN` cursors are O(1) per step, with a
//! fixed hasher so iteration order is deterministic.

use foldhash::fast::FixedState;
use indexmap::IndexMap;

use crate::types::{Hash, List, Set};

/// The hasher every map in the store uses: fixed seed, so replicas agree on iteration order.
pub type Hasher = FixedState;

/// Bytes the store counts per key on top of the key and the value (map slot, entry, allocator).
pub const KEY_OVERHEAD: usize = 64;

/// A stored value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Box<[u8]>),
    List(List),
    Hash(Hash),
    Set(Set),
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
            Value::Str(s) => s.len() + 16,
            Value::List(l) => l.mem(),
            Value::Hash(h) => h.mem(),
            Value::Set(s) => s.mem(),
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

/// A key's entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub value: Value,
    /// Absolute unix milliseconds; 0: no expiry.
    pub expire_at: u64,
    /// Last access, in the keyspace's LRU clock (seconds), for the LRU policies and
    /// `OBJECT IDLETIME`.
    pub lru: u32,
}

impl Entry {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }
}

/// Accounted bytes of one key and its entry.
pub fn entry_mem(key: &[u8], entry: &Entry) -> usize {
    KEY_OVERHEAD + key.len() + entry.value.mem()
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
