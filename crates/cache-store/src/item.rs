//! One item = one heap allocation holding a 24-byte header, the key and the value.
//!
//! Layout (all little-endian native fields, allocation aligned to 8):
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 8 | CAS |
//! | 8 | 4 | expiry, absolute unix seconds (0 = never; clamped to `u32::MAX`) |
//! | 12 | 4 | time of last access/store, unix seconds (memcached's `it->time`) |
//! | 16 | 4 | client flags |
//! | 20 | 4 | `key_len:8 | bits:4 | value_len:20` |
//! | 24 | 8 | only if `value_len` field is all ones: the real value length (u32) + padding |
//! | 24 or 32 | key_len | key |
//! | … | value_len | value |
//!
//! Values shorter than 1 MiB - 1 byte (all items under memcached's default `-I 1m`) use the
//! 24-byte header; larger values use 32 bytes.
//!
//! [`Item`] is a raw handle; it is only dereferenced while the owning shard's lock is held and
//! freed exactly once (by the shard, when unlinked).

use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;

/// Item has been fetched at least once (meta `h`, `evicted_unfetched` stats).
pub const FETCHED: u8 = 1;
/// CLOCK reference bit: fetched since the eviction hand last looked at the item.
pub const REF: u8 = 2;
/// Invalidated via meta `I` (clients see `X`).
pub const STALE: u8 = 4;
/// A win token (`W`) has been handed out for this item.
pub const TOKEN: u8 = 8;

const HDR: usize = 24;
const BIG_HDR: usize = 32;
const VLEN_BITS: u32 = 20;
const VLEN_ESC: u32 = (1 << VLEN_BITS) - 1;
/// Largest value length an item can hold.
pub const MAX_VALUE: usize = u32::MAX as usize - 64;
/// Largest key length an item can hold.
pub const MAX_KEY: usize = 255;
/// Pointers must fit in 48 bits (the table packs a 16-bit tag above them).
pub const PTR_BITS: u32 = 48;

/// Bytes glibc's malloc really uses for a request of `n` bytes: 8 bytes of chunk header, rounded
/// up to 16, minimum 32. Jemalloc/mimalloc size classes are within a few bytes of this for
/// small sizes.
#[inline]
pub fn malloc_size(n: usize) -> usize {
    let c = n.saturating_add(8 + 15) & !15;
    c.max(32)
}

/// Per-item share of the shard hash table: one 8-byte slot at a load factor between 0.4 and 0.8.
pub const TABLE_SHARE: usize = 16;

/// Header length for a value of this length.
#[inline]
pub fn header_len(value_len: usize) -> usize {
    if value_len >= VLEN_ESC as usize {
        BIG_HDR
    } else {
        HDR
    }
}

/// Accounted bytes (heap cost) of an item with this key and value length.
#[inline]
pub fn charge(key_len: usize, value_len: usize) -> usize {
    malloc_size(header_len(value_len) + key_len + value_len) + TABLE_SHARE
}

/// Raw handle to an item allocation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Item(NonNull<u8>);

impl Item {
    /// Allocate an item whose value is the concatenation of `parts`. Returns `None` when the
    /// sizes are out of range or the allocator returns an address that does not fit 48 bits.
    pub fn alloc(
        key: &[u8],
        parts: &[&[u8]],
        flags: u32,
        exp: u32,
        time: u32,
        bits: u8,
    ) -> Option<Item> {
        let vlen: usize = parts.iter().map(|p| p.len()).sum();
        if key.len() > MAX_KEY || vlen > MAX_VALUE {
            return None;
        }
        let hl = header_len(vlen);
        let size = hl + key.len() + vlen;
        let layout = Layout::from_size_align(size, 8).ok()?;
        // SAFETY: `layout` is not zero-sized (it holds at least the 24-byte header).
        let p = unsafe { alloc(layout) };
        let p = NonNull::new(p)?;
        if (p.as_ptr() as u64) >> PTR_BITS != 0 {
            // SAFETY: `p` came from `alloc` with this same `layout` just above and is not used again.
            unsafe { dealloc(p.as_ptr(), layout) };
            return None;
        }
        let vfield = if hl == BIG_HDR { VLEN_ESC } else { vlen as u32 };
        let meta = key.len() as u32 | ((bits as u32 & 0xF) << 8) | (vfield << 12);
        // SAFETY: `b` points to `size` = hl + key + value freshly allocated bytes, aligned to 8: the
        // u64 at 0 and the u32s at 8..hl are in bounds and aligned; the key fills hl.. and the parts
        // follow it back to back, ending exactly at `size`. The sources are the caller's slices,
        // never this new allocation, so the copies do not overlap. Every byte is written.
        unsafe {
            let b = p.as_ptr();
            (b as *mut u64).write(0);
            (b.add(8) as *mut u32).write(exp);
            (b.add(12) as *mut u32).write(time);
            (b.add(16) as *mut u32).write(flags);
            (b.add(20) as *mut u32).write(meta);
            if hl == BIG_HDR {
                (b.add(24) as *mut u32).write(vlen as u32);
                (b.add(28) as *mut u32).write(0);
            }
            std::ptr::copy_nonoverlapping(key.as_ptr(), b.add(hl), key.len());
            let mut off = hl + key.len();
            for part in parts {
                std::ptr::copy_nonoverlapping(part.as_ptr(), b.add(off), part.len());
                off += part.len();
            }
        }
        Some(Item(p))
    }

    /// Rebuild a handle from a table entry address.
    ///
    /// # Safety
    /// `addr` must come from [`Item::addr`] of a live item.
    #[inline]
    pub unsafe fn from_addr(addr: u64) -> Item {
        // SAFETY: a live item's address is that of an allocation, hence not null.
        Item(NonNull::new_unchecked(addr as *mut u8))
    }

    #[inline]
    pub fn addr(self) -> u64 {
        self.0.as_ptr() as u64
    }

    #[inline]
    fn u32_at(self, off: usize) -> u32 {
        // SAFETY: `self` is a live item: a handle is made only by `alloc` or, for an item in a table slot,
        // by `from_addr`, and is not used after `free` (callers hold the shard lock);
        // `off` is a u32 header field (8, 12, 16, 20 or 24), inside the header, 4-aligned.
        unsafe { (self.0.as_ptr().add(off) as *const u32).read() }
    }

    #[inline]
    fn set_u32_at(self, off: usize, v: u32) {
        // SAFETY: as in `u32_at`; the shard lock, held by every caller, makes this write the only
        // access to the item.
        unsafe { (self.0.as_ptr().add(off) as *mut u32).write(v) }
    }

    #[inline]
    fn meta(self) -> u32 {
        self.u32_at(20)
    }

    #[inline]
    pub fn cas(self) -> u64 {
        // SAFETY: `self` is a live item: a handle is made only by `alloc` or, for an item in a table slot,
        // by `from_addr`, and is not used after `free` (callers hold the shard lock);
        // the CAS is the u64 at offset 0 of the 8-aligned allocation.
        unsafe { (self.0.as_ptr() as *const u64).read() }
    }

    #[inline]
    pub fn set_cas(self, cas: u64) {
        // SAFETY: as in `cas`; the shard lock makes this write the only access to the item.
        unsafe { (self.0.as_ptr() as *mut u64).write(cas) }
    }

    #[inline]
    pub fn exp(self) -> u32 {
        self.u32_at(8)
    }

    #[inline]
    pub fn set_exp(self, e: u32) {
        self.set_u32_at(8, e)
    }

    #[inline]
    pub fn time(self) -> u32 {
        self.u32_at(12)
    }

    #[inline]
    pub fn set_time(self, t: u32) {
        self.set_u32_at(12, t)
    }

    /// Set expiry, time and flags at once (in-place overwrite).
    #[inline]
    pub fn set_u32_fields(self, exp: u32, time: u32, flags: u32) {
        self.set_u32_at(8, exp);
        self.set_u32_at(12, time);
        self.set_u32_at(16, flags);
    }

    #[inline]
    pub fn flags(self) -> u32 {
        self.u32_at(16)
    }

    #[inline]
    pub fn bits(self) -> u8 {
        ((self.meta() >> 8) & 0xF) as u8
    }

    #[inline]
    pub fn set_bits(self, bits: u8) {
        let m = self.meta();
        self.set_u32_at(20, (m & !0xF00) | ((bits as u32 & 0xF) << 8));
    }

    #[inline]
    pub fn key_len(self) -> usize {
        (self.meta() & 0xFF) as usize
    }

    #[inline]
    fn hdr_len(self) -> usize {
        if self.meta() >> 12 == VLEN_ESC {
            BIG_HDR
        } else {
            HDR
        }
    }

    #[inline]
    pub fn value_len(self) -> usize {
        let v = self.meta() >> 12;
        if v == VLEN_ESC {
            self.u32_at(24) as usize
        } else {
            v as usize
        }
    }

    /// The key. The returned slice must not outlive the item (callers hold the shard lock).
    #[inline]
    pub fn key<'a>(self) -> &'a [u8] {
        // SAFETY: `self` is a live item: a handle is made only by `alloc` or, for an item in a table slot,
        // by `from_addr`, and is not used after `free` (callers hold the shard lock).
        // Bytes hdr_len..hdr_len + key_len lie inside the allocation and were written by `alloc`;
        // the slice is used only while the lock keeps the item from being freed or rewritten.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(self.hdr_len()), self.key_len()) }
    }

    /// The value. Same lifetime caveat as [`Item::key`].
    #[inline]
    pub fn value<'a>(self) -> &'a [u8] {
        // SAFETY: as in `key`: the value_len bytes after the key lie inside the allocation (they
        // end exactly at its size) and were written by `alloc` or in place under the lock.
        unsafe {
            std::slice::from_raw_parts(
                self.0.as_ptr().add(self.hdr_len() + self.key_len()),
                self.value_len(),
            )
        }
    }

    /// Mutable value bytes (in-place incr/decr). Caller holds the shard lock.
    #[inline]
    pub fn value_mut<'a>(self) -> &'a mut [u8] {
        // SAFETY: as in `value`; the shard lock gives the caller exclusive access, and it holds no
        // other slice of this item while it writes through this one.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.0.as_ptr().add(self.hdr_len() + self.key_len()),
                self.value_len(),
            )
        }
    }

    /// Accounted bytes of this item.
    #[inline]
    pub fn charge(self) -> usize {
        charge(self.key_len(), self.value_len())
    }

    /// Free the allocation.
    ///
    /// # Safety
    /// The item must be unlinked and never used again.
    pub unsafe fn free(self) {
        let size = self.hdr_len() + self.key_len() + self.value_len();
        // SAFETY: the caller guarantees a live, unlinked item; `size` and alignment 8 are exactly
        // the layout `alloc` used (the header records both lengths), which was valid then.
        let layout = Layout::from_size_align_unchecked(size, 8);
        dealloc(self.0.as_ptr(), layout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_small_and_big() {
        let it = Item::alloc(
            b"key",
            &[b"ab", b"cd"],
            0xDEAD_BEEF,
            77,
            66,
            STALE | FETCHED,
        )
        .unwrap();
        it.set_cas(u64::MAX);
        assert_eq!(it.key(), b"key");
        assert_eq!(it.value(), b"abcd");
        assert_eq!(it.flags(), 0xDEAD_BEEF);
        assert_eq!((it.exp(), it.time(), it.cas()), (77, 66, u64::MAX));
        assert_eq!(it.bits(), STALE | FETCHED);
        it.set_bits(TOKEN);
        assert_eq!(it.bits(), TOKEN);
        assert_eq!(it.value_len(), 4);
        assert_eq!(it.key_len(), 3);
        assert_eq!(it.charge(), malloc_size(24 + 3 + 4) + TABLE_SHARE);
        // SAFETY: allocated above, never linked, not used again.
        unsafe { it.free() };

        let big = vec![7u8; (1 << 20) + 5];
        let k = vec![b'k'; 250];
        let it = Item::alloc(&k, &[&big], 1, 2, 3, 0).unwrap();
        assert_eq!(it.value(), &big[..]);
        assert_eq!(it.key(), &k[..]);
        assert_eq!(it.bits(), 0);
        // SAFETY: allocated above, never linked, not used again.
        unsafe { it.free() };
        // exactly at the escape boundary
        let v = vec![1u8; VLEN_ESC as usize];
        let it = Item::alloc(b"", &[&v], 0, 0, 0, 0).unwrap();
        assert_eq!(it.value_len(), v.len());
        // SAFETY: allocated above, never linked, not used again.
        unsafe { it.free() };
        assert!(Item::alloc(&[0u8; 256], &[], 0, 0, 0, 0).is_none());
    }

    #[test]
    fn malloc_rounding() {
        assert_eq!(malloc_size(0), 32);
        assert_eq!(malloc_size(24), 32);
        assert_eq!(malloc_size(25), 48);
        assert_eq!(malloc_size(135), 144);
        assert_eq!(malloc_size(136), 144);
        assert_eq!(malloc_size(137), 160);
    }
}
