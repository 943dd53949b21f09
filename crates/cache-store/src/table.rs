//! A shard's open-addressing hash table of item handles.
//!
//! Each slot is one `u64`: the item's address in the low 48 bits and the low 16 bits of the key
//! hash above it (`0` = empty). Lookups compare the 16-bit tag before touching the item, so a
//! probe sequence rarely dereferences a non-matching item. Linear probing with backward-shift
//! deletion keeps the table free of tombstones; the tag doubles as the home slot for tables up to
//! 2^16 slots, larger tables re-hash the key when they need a home slot. The table grows (x2)
//! when more than 80% full, so a slot costs 8 / load ≈ 10–20 bytes per item.
//!
//! Slot order is a pure function of the insert/remove sequence, which keeps eviction (a CLOCK hand
//! over slot indices) deterministic.

use crate::hash::hash_key;
use crate::item::Item;

const TAG_SHIFT: u32 = 48;
const ADDR_MASK: u64 = (1 << TAG_SHIFT) - 1;
const MIN_CAP: usize = 8;
/// Largest table an import may ask for (2^36 slots = 512 GiB of slots: far beyond any real
/// table, small enough that the size arithmetic cannot overflow).
const MAX_IMPORT_CAP: usize = 1 << 36;

pub struct Table {
    slots: Box<[u64]>,
    mask: usize,
    len: usize,
}

#[inline]
fn tag(h: u64) -> u64 {
    h & 0xFFFF
}

impl Table {
    pub fn new() -> Table {
        Table {
            slots: vec![0u64; MIN_CAP].into_boxed_slice(),
            mask: MIN_CAP - 1,
            len: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Item in slot `i`, if occupied.
    #[inline]
    pub fn get(&self, i: usize) -> Option<Item> {
        let e = *self.slots.get(i)?;
        if e == 0 {
            None
        } else {
            // SAFETY: a non-empty slot holds the address of a live item: an item is freed only
            // after it was removed from its slot (or the whole table drained).
            Some(unsafe { Item::from_addr(e & ADDR_MASK) })
        }
    }

    #[inline]
    fn home(&self, e: u64) -> usize {
        if self.mask <= 0xFFFF {
            (e >> TAG_SHIFT) as usize & self.mask
        } else {
            // SAFETY: `e` is an occupied slot, which holds a live item's address (see `get`).
            let it = unsafe { Item::from_addr(e & ADDR_MASK) };
            hash_key(it.key()) as usize & self.mask
        }
    }

    /// Cache hint for a coming lookup of hash `h`: the home slot's line.
    #[inline]
    pub fn prefetch_slot(&self, h: u64) {
        prefetch(
            self.slots
                .as_ptr()
                .wrapping_add(h as usize & self.mask)
                .cast(),
        );
    }

    /// Cache hint for a coming lookup of hash `h`, best issued after [`Table::prefetch_slot`]
    /// had time to land: the first lines of the first item on `h`'s probe sequence whose tag
    /// matches (looking a few slots far at most).
    #[inline]
    pub fn prefetch_item(&self, h: u64) {
        let t = tag(h) << TAG_SHIFT;
        let mut i = h as usize & self.mask;
        for _ in 0..8 {
            let e = self.slots[i];
            if e == 0 {
                return;
            }
            if e & !ADDR_MASK == t {
                prefetch_item_lines(e);
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Cache hint: the first lines of the item in slot `i`, if any (a walk over the slots).
    #[inline]
    pub fn prefetch_at(&self, i: usize) {
        if let Some(&e) = self.slots.get(i) {
            if e != 0 {
                prefetch_item_lines(e);
            }
        }
    }

    /// Slot index of `key`.
    #[inline]
    pub fn find(&self, h: u64, key: &[u8]) -> Option<usize> {
        let t = tag(h) << TAG_SHIFT;
        let mut i = h as usize & self.mask;
        loop {
            let e = self.slots[i];
            if e == 0 {
                return None;
            }
            if e & !ADDR_MASK == t {
                // SAFETY: an occupied slot holds a live item's address (see `get`).
                let it = unsafe { Item::from_addr(e & ADDR_MASK) };
                if it.key() == key {
                    return Some(i);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Replace the item in an occupied slot (same key).
    #[inline]
    pub fn replace(&mut self, i: usize, h: u64, it: Item) {
        self.slots[i] = it.addr() | (tag(h) << TAG_SHIFT);
    }

    /// Insert an item whose key is not in the table. Returns its slot.
    pub fn insert(&mut self, h: u64, it: Item) -> usize {
        if (self.len + 1) * 5 > self.capacity() * 4 {
            self.grow();
        }
        self.len += 1;
        self.place(it.addr() | (tag(h) << TAG_SHIFT), h as usize)
    }

    fn place(&mut self, e: u64, home: usize) -> usize {
        let mut i = home & self.mask;
        while self.slots[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = e;
        i
    }

    fn grow(&mut self) {
        let new_cap = self.capacity() * 2;
        let old = std::mem::replace(&mut self.slots, vec![0u64; new_cap].into_boxed_slice());
        self.mask = new_cap - 1;
        for &e in old.iter() {
            if e != 0 {
                let home = self.home(e);
                self.place(e, home);
            }
        }
    }

    /// Remove the entry in slot `i` (backward-shift deletion) and return its item.
    pub fn remove_at(&mut self, i: usize) -> Option<Item> {
        let it = self.get(i)?;
        let mask = self.mask;
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let e = self.slots[j];
            if e == 0 {
                break;
            }
            let home = self.home(e);
            // The entry may move into the hole if its home is not in the cyclic range (hole, j].
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = e;
                hole = j;
            }
        }
        self.slots[hole] = 0;
        self.len -= 1;
        Some(it)
    }

    /// An empty table of exactly `capacity` slots (a power of two, at least the minimum), for
    /// rebuilding an exported table slot for slot. `None` if the capacity is invalid or the
    /// allocation fails (never aborts on a hostile size).
    pub fn with_capacity(capacity: usize) -> Option<Table> {
        if capacity < MIN_CAP || !capacity.is_power_of_two() || capacity > MAX_IMPORT_CAP {
            return None;
        }
        let mut v: Vec<u64> = Vec::new();
        v.try_reserve_exact(capacity).ok()?;
        v.resize(capacity, 0);
        Some(Table {
            slots: v.into_boxed_slice(),
            mask: capacity - 1,
            len: 0,
        })
    }

    /// Put an item into the empty slot `i` (table rebuild). Returns false, changing nothing, if
    /// `i` is out of range or occupied. The caller checks the result with [`Table::is_valid`].
    pub fn put_at(&mut self, i: usize, h: u64, it: Item) -> bool {
        match self.slots.get_mut(i) {
            Some(e) if *e == 0 => {
                *e = it.addr() | (tag(h) << TAG_SHIFT);
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether a rebuilt table satisfies the invariants lookups rely on: the load stays at or
    /// below 80% (so probe sequences end at an empty slot), and every item is found at its own
    /// slot by a lookup of its key (no key twice, nothing placed outside its probe sequence).
    pub fn is_valid(&self) -> bool {
        if self.len * 5 > self.capacity() * 4 {
            return false;
        }
        (0..self.capacity()).all(|i| match self.get(i) {
            None => true,
            Some(it) => {
                let h = hash_key(it.key());
                self.slots[i] >> TAG_SHIFT == tag(h) && self.find(h, it.key()) == Some(i)
            }
        })
    }

    /// Remove every entry, returning the items (in slot order).
    pub fn drain(&mut self) -> Vec<Item> {
        let out: Vec<Item> = (0..self.capacity()).filter_map(|i| self.get(i)).collect();
        self.slots = vec![0u64; MIN_CAP].into_boxed_slice();
        self.mask = MIN_CAP - 1;
        self.len = 0;
        out
    }
}

/// Cache hint for the item of occupied slot value `e`: header, key and a small value, what a
/// write or an export of a typical cache item touches.
#[inline]
fn prefetch_item_lines(e: u64) {
    let p = (e & ADDR_MASK) as usize as *const u8;
    for line in 0..3 {
        prefetch(p.wrapping_add(line * 64));
    }
}

/// A read prefetch hint; never faults, whatever the address.
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint: it does not access memory architecturally and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn insert_find_remove_against_map() {
        let mut t = Table::new();
        let mut model: HashMap<Vec<u8>, Item> = HashMap::new();
        let mut x: u64 = 12345;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = format!("k{}", x % 3000).into_bytes();
            let h = hash_key(&k);
            match (t.find(h, &k), model.get(&k)) {
                (Some(i), Some(&it)) => {
                    assert_eq!(t.get(i), Some(it));
                    if step % 3 == 0 {
                        let got = t.remove_at(i).unwrap();
                        assert_eq!(got, it);
                        model.remove(&k);
                        // SAFETY: removed from the table above, not used again.
                        unsafe { got.free() };
                    }
                }
                (None, None) => {
                    let it = Item::alloc(&k, &[b"v"], 0, 0, 0, 0).unwrap();
                    t.insert(h, it);
                    model.insert(k, it);
                }
                other => panic!("mismatch {other:?}"),
            }
            assert_eq!(t.len(), model.len());
        }
        for (k, it) in &model {
            let i = t.find(hash_key(k), k).unwrap();
            assert_eq!(t.get(i), Some(*it));
        }
        for it in t.drain() {
            // SAFETY: drained from the table, not used again.
            unsafe { it.free() };
        }
    }
}
