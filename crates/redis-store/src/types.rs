//! The collection types, each keeping its accounted size so that [`crate::db::Value::mem`] is
//! O(1). Every mutation goes through their methods so the count stays right.
//!
//! Iteration orders follow redis-server 7.0's encodings where a client can see them: a small
//! hash replies in insertion order (listpack), an all-integer set of at most 512 members in
//! ascending numeric order (intset).

use std::collections::VecDeque;

use indexmap::{IndexMap, IndexSet};

use crate::args::parse_i64;
use crate::db::Hasher;

/// Bytes counted per collection element on top of its payload.
pub const ELEM_OVERHEAD: usize = 24;

/// Redis's `hash-max-listpack-entries`: up to this many fields a hash keeps insertion order
/// through deletions (a listpack), and `HSCAN` answers everything in one call.
pub const HASH_LISTPACK_ENTRIES: usize = 128;

/// Redis's `hash-max-listpack-value`: a longer field or value makes a hash a hash table.
pub const HASH_LISTPACK_VALUE: usize = 64;

/// Redis's `set-max-intset-entries`: the most members an intset holds.
pub const SET_INTSET_ENTRIES: usize = 512;

fn cost(len: usize) -> usize {
    len + ELEM_OVERHEAD
}

/// A list.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct List {
    pub(crate) items: VecDeque<Box<[u8]>>,
    pub(crate) bytes: usize,
    /// The key's LRU clock ([`Entry::lru`](crate::db::Entry::lru)).
    pub(crate) lru: u32,
}

impl List {
    /// An empty list.
    pub fn new() -> List {
        List::default()
    }
    /// Accounted bytes (O(1)).
    pub fn mem(&self) -> usize {
        self.bytes + 32
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// No elements (Redis deletes such a key).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Push at the head (`left`) or the tail.
    pub fn push(&mut self, v: &[u8], left: bool) {
        self.bytes += cost(v.len());
        if left {
            self.items.push_front(v.into());
        } else {
            self.items.push_back(v.into());
        }
    }
    /// Pop from the head (`left`) or the tail.
    pub fn pop(&mut self, left: bool) -> Option<Box<[u8]>> {
        let v = if left {
            self.items.pop_front()
        } else {
            self.items.pop_back()
        }?;
        self.bytes -= cost(v.len());
        Some(v)
    }
    /// Pop up to `n` elements from one end, in popping order.
    pub fn pop_many(&mut self, n: usize, left: bool) -> Vec<Box<[u8]>> {
        let n = n.min(self.len());
        (0..n).filter_map(|_| self.pop(left)).collect()
    }
    /// Element `i` from the head.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.items.get(i).map(|v| &**v)
    }
    /// Replace element `i`; false if out of range.
    pub fn set(&mut self, i: usize, v: &[u8]) -> bool {
        match self.items.get_mut(i) {
            Some(slot) => {
                self.bytes = self.bytes - slot.len() + v.len();
                *slot = v.into();
                true
            }
            None => false,
        }
    }
    /// Insert before position `i` (`i == len` appends).
    pub fn insert(&mut self, i: usize, v: &[u8]) {
        let i = i.min(self.len());
        self.bytes += cost(v.len());
        self.items.insert(i, v.into());
    }
    /// `OBJECT ENCODING`'s answer in redis-server 7.0 (every list is a quicklist there).
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }
    /// Elements from head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.items.iter().map(|v| &**v)
    }
    /// Position of the first element equal to `v`.
    pub fn position(&self, v: &[u8]) -> Option<usize> {
        self.items.iter().position(|x| &**x == v)
    }
    /// Keep only `start..=end` (already clamped by the caller; `start > end` empties it).
    pub fn trim(&mut self, start: usize, end: usize) {
        if start > end || start >= self.len() {
            self.items.clear();
            self.bytes = 0;
            return;
        }
        let end = end.min(self.len() - 1);
        for v in self.items.drain(end + 1..) {
            self.bytes -= cost(v.len());
        }
        for v in self.items.drain(..start) {
            self.bytes -= cost(v.len());
        }
    }
    /// Remove up to `max` (0: all) elements equal to `v`, scanning from the head or, with
    /// `from_tail`, from the tail. Returns how many were removed.
    pub fn remove_matching(&mut self, v: &[u8], max: u64, from_tail: bool) -> u64 {
        let mut removed = 0u64;
        let mut kept = VecDeque::with_capacity(self.items.len());
        let items = std::mem::take(&mut self.items);
        let mut take = |x: Box<[u8]>, kept: &mut VecDeque<Box<[u8]>>, front: bool| {
            if &*x == v && (max == 0 || removed < max) {
                removed += 1;
                self.bytes -= cost(x.len());
            } else if front {
                kept.push_front(x);
            } else {
                kept.push_back(x);
            }
        };
        if from_tail {
            for x in items.into_iter().rev() {
                take(x, &mut kept, true);
            }
        } else {
            for x in items {
                take(x, &mut kept, false);
            }
        }
        self.items = kept;
        removed
    }
}

/// A hash: insertion-ordered like redis-server's small (listpack) hashes. `ht` says whether
/// redis-server would have converted it to a hash table (more than 128 fields, or a field or
/// value longer than 64 bytes; it never converts back).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Hash {
    pub(crate) map: IndexMap<Box<[u8]>, Box<[u8]>, Hasher>,
    pub(crate) bytes: usize,
    pub(crate) ht: bool,
    /// The key's LRU clock ([`Entry::lru`](crate::db::Entry::lru)).
    pub(crate) lru: u32,
}

impl Hash {
    /// An empty hash.
    pub fn new() -> Hash {
        Hash::default()
    }
    /// Accounted bytes (O(1)).
    pub fn mem(&self) -> usize {
        self.bytes + 48
    }
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// No fields (Redis deletes such a key).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// A field's value.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.map.get(field).map(|v| &**v)
    }
    /// Whether the field exists.
    pub fn contains(&self, field: &[u8]) -> bool {
        self.map.contains_key(field)
    }
    /// `OBJECT ENCODING`'s answer in redis-server 7.0.
    pub fn encoding(&self) -> &'static str {
        if self.ht {
            "hashtable"
        } else {
            "listpack"
        }
    }
    /// Whether redis-server would hold it as a hash table (cursor-based `HSCAN`).
    pub fn is_hashtable(&self) -> bool {
        self.ht
    }
    /// Set a field; true if it was created (not updated). An update keeps the field's place.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if field.len() > HASH_LISTPACK_VALUE || value.len() > HASH_LISTPACK_VALUE {
            self.ht = true;
        }
        if let Some(old) = self.map.get_mut(field) {
            self.bytes = self.bytes - old.len() + value.len();
            *old = value.into();
            return false;
        }
        self.bytes += cost(field.len() + value.len());
        self.map.insert(field.into(), value.into());
        if self.map.len() > HASH_LISTPACK_ENTRIES {
            self.ht = true;
        }
        true
    }
    /// Delete a field; true if it existed. Small hashes keep their order (as a listpack does);
    /// big ones fill the hole with the last field, which `HSCAN`'s cursor tolerates.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let removed = if self.map.len() <= HASH_LISTPACK_ENTRIES {
            self.map.shift_remove_entry(field)
        } else {
            self.map.swap_remove_entry(field)
        };
        match removed {
            Some((k, v)) => {
                self.bytes -= cost(k.len() + v.len());
                true
            }
            None => false,
        }
    }
    /// Fields and values in reply order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map.iter().map(|(k, v)| (&**k, &**v))
    }
    /// The field at storage index `i` (cursors, random picks).
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.map.get_index(i).map(|(k, v)| (&**k, &**v))
    }
}

/// A set. Members are kept in insertion order; `intset` says whether redis-server would hold
/// it as an intset (every member an integer, never more than 512), in which case it replies
/// in ascending numeric order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Set {
    pub(crate) set: IndexSet<Box<[u8]>, Hasher>,
    pub(crate) bytes: usize,
    pub(crate) intset: bool,
    /// The key's LRU clock ([`Entry::lru`](crate::db::Entry::lru)).
    pub(crate) lru: u32,
}

/// Whether redis-server stores `m` in an intset (`string2ll` accepts it).
pub fn is_int_member(m: &[u8]) -> bool {
    parse_i64(m).is_some()
}

impl Set {
    /// An empty set encoded as Redis's `setTypeCreate(first)` would encode it.
    pub fn new_for(first: &[u8]) -> Set {
        Set {
            intset: is_int_member(first),
            ..Set::default()
        }
    }
    /// An empty set that starts as an intset (`createIntsetObject`, the `*STORE` results).
    pub fn new_intset() -> Set {
        Set {
            intset: true,
            ..Set::default()
        }
    }
    /// Accounted bytes (O(1)).
    pub fn mem(&self) -> usize {
        self.bytes + 48
    }
    /// Number of members.
    pub fn len(&self) -> usize {
        self.set.len()
    }
    /// No members (Redis deletes such a key).
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
    /// Whether redis-server would hold this set as an intset.
    pub fn is_intset(&self) -> bool {
        self.intset
    }
    /// `OBJECT ENCODING`'s answer in redis-server 7.0.
    pub fn encoding(&self) -> &'static str {
        if self.intset {
            "intset"
        } else {
            "hashtable"
        }
    }
    /// Whether `m` is a member.
    pub fn contains(&self, m: &[u8]) -> bool {
        self.set.contains(m)
    }
    /// Add a member; true if it was new.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        if self.set.contains(m) {
            return false;
        }
        if self.intset && (!is_int_member(m) || self.set.len() + 1 > SET_INTSET_ENTRIES) {
            // Redis converts to a hash table and never back.
            self.intset = false;
        }
        self.bytes += cost(m.len());
        self.set.insert(m.into());
        true
    }
    /// Remove a member; true if it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self.set.swap_remove_full(m) {
            Some((_, k)) => {
                self.bytes -= cost(k.len());
                true
            }
            None => false,
        }
    }
    /// Remove and return the member at index `i`.
    pub fn remove_index(&mut self, i: usize) -> Option<Box<[u8]>> {
        let k = self.set.swap_remove_index(i)?;
        self.bytes -= cost(k.len());
        Some(k)
    }
    /// The member at storage index `i` (cursors, random picks).
    pub fn get_index(&self, i: usize) -> Option<&[u8]> {
        self.set.get_index(i).map(|k| &**k)
    }
    /// Members in storage (insertion) order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.set.iter().map(|k| &**k)
    }
    /// Members in the order redis-server replies them: ascending numbers for an intset,
    /// storage order otherwise.
    pub fn members(&self) -> Vec<&[u8]> {
        let mut v: Vec<&[u8]> = self.iter().collect();
        if self.intset {
            v.sort_by_key(|m| parse_i64(m).unwrap_or(0));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_bytes(l: &List) -> usize {
        l.iter().map(|v| cost(v.len())).sum()
    }

    #[test]
    fn list_accounting() {
        let mut l = List::new();
        for i in 0..10u8 {
            l.push(&vec![i; i as usize], i % 2 == 0);
        }
        assert_eq!(l.bytes, list_bytes(&l));
        l.set(3, b"xxxxxxxxxxxxxxxx");
        l.insert(2, b"yy");
        assert_eq!(l.bytes, list_bytes(&l));
        l.remove_matching(b"yy", 0, true);
        l.trim(1, 5);
        assert_eq!(l.len(), 5);
        assert_eq!(l.bytes, list_bytes(&l));
        l.pop_many(3, false);
        assert_eq!(l.bytes, list_bytes(&l));
        l.trim(3, 1);
        assert_eq!((l.len(), l.bytes), (0, 0));
    }

    #[test]
    fn hash_order_and_accounting() {
        let mut h = Hash::new();
        for f in [&b"c"[..], b"a", b"b"] {
            assert!(h.insert(f, b"v"));
        }
        assert!(!h.insert(b"a", b"longer"));
        assert!(h.remove(b"c"));
        assert!(!h.remove(b"c"));
        let keys: Vec<&[u8]> = h.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"a"[..], b"b"]);
        assert_eq!(h.bytes, cost(1 + 6) + cost(1 + 1));
    }

    #[test]
    fn encodings_follow_redis_conversions() {
        let mut h = Hash::new();
        h.insert(b"a", b"b");
        assert_eq!(h.encoding(), "listpack");
        h.insert(b"big", &[b'x'; 65]);
        assert_eq!(h.encoding(), "hashtable");
        h.remove(b"big");
        assert_eq!(h.encoding(), "hashtable", "never converted back");
        let mut h = Hash::new();
        for i in 0..=HASH_LISTPACK_ENTRIES {
            h.insert(i.to_string().as_bytes(), b"v");
        }
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(List::new().encoding(), "quicklist");
        assert_eq!(Set::new_for(b"1").encoding(), "intset");
        assert_eq!(Set::new_for(b"a").encoding(), "hashtable");
    }

    #[test]
    fn intset_rules() {
        let mut s = Set::new_for(b"10");
        assert!(s.is_intset());
        s.insert(b"10");
        s.insert(b"-3");
        s.insert(b"7");
        assert_eq!(s.members(), vec![&b"-3"[..], b"7", b"10"]);
        s.insert(b"x");
        assert!(!s.is_intset());
        s.remove(b"x");
        assert!(!s.is_intset(), "Redis never converts back");
        let mut big = Set::new_intset();
        for i in 0..SET_INTSET_ENTRIES {
            big.insert(i.to_string().as_bytes());
        }
        assert!(big.is_intset());
        big.insert(b"100000");
        assert!(!big.is_intset());
        assert!(!Set::new_for(b"01").is_intset());
    }
}
