//! [`StrValue`]: a string value's bytes and its key's LRU clock in one allocation behind one
//! pointer. With it a [`Value`](crate::db::Value) is 16 bytes and a key's
//! [`Entry`](crate::db::Entry) 24 (Redis keeps the LRU clock in its object header for the same
//! reason): a million string keys cost 16 MB less than with a `Box<[u8]>` and a separate clock.
//!
//! Layout of the allocation (8-byte aligned): the LRU clock (`u32`), the length field (`u32`),
//! then the bytes. The length field's top bit is the raw flag (see [`StrValue::is_raw`]); its
//! other 31 bits are the length, or for a string of 2^31 - 1 bytes or more that value itself, with
//! the real length as a `u64` before the bytes.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;

/// Bytes before a short string's data: LRU clock and length.
const HEAD: usize = 8;
/// The length bits' value for a string whose `u64` length follows the header.
const LONG: u32 = 0x7fff_ffff;
/// The length field's bit for [`StrValue::is_raw`].
const RAW: u32 = 0x8000_0000;

/// An owned, immutable byte string with a mutable LRU clock, behind one thin pointer.
pub struct StrValue(NonNull<u8>);

// SAFETY: a `StrValue` owns its allocation alone, like a `Box<[u8]>`; `&StrValue` gives only
// shared reads, and the clock is changed only through `&mut StrValue`.
unsafe impl Send for StrValue {}
// SAFETY: as for `Send`: no interior mutability.
unsafe impl Sync for StrValue {}

fn head_len(len: usize) -> usize {
    if len >= LONG as usize {
        HEAD + 8
    } else {
        HEAD
    }
}

fn layout(len: usize) -> Layout {
    // A slice of `len` bytes exists, so `len <= isize::MAX`; the 16 header bytes more only fail
    // within 16 bytes of the address space's end, which no allocation reaches.
    Layout::from_size_align(head_len(len) + len, 8).expect("string length within isize::MAX")
}

impl StrValue {
    /// A copy of `bytes` with the LRU clock at 0.
    pub fn new(bytes: &[u8]) -> StrValue {
        let len = bytes.len();
        let layout = layout(len);
        // SAFETY: `layout` has a non-zero size (at least the 8 header bytes).
        let p = unsafe { alloc(layout) };
        let Some(p) = NonNull::new(p) else {
            handle_alloc_error(layout)
        };
        let head = head_len(len);
        // SAFETY: `p` is valid for writes of `layout.size()` = `head + len` bytes and aligned to
        // 8, so the `u32` writes at 0 and 4, the `u64` write at 8 (only when `head` is 16) and
        // the copy to `head..head + len` are in bounds and aligned; `bytes` cannot overlap a
        // fresh allocation.
        unsafe {
            let base = p.as_ptr();
            base.cast::<u32>().write(0);
            if head == HEAD {
                base.add(4).cast::<u32>().write(len as u32);
            } else {
                base.add(4).cast::<u32>().write(LONG);
                base.add(HEAD).cast::<u64>().write(len as u64);
            }
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(head), len);
        }
        StrValue(p)
    }

    /// The length field (length bits and raw flag).
    fn len_field(&self) -> u32 {
        // SAFETY: every `StrValue` was built by `new`, which wrote the `u32` at offset 4; the
        // allocation is live while `self` is.
        unsafe { self.0.as_ptr().add(4).cast::<u32>().read() }
    }

    /// Whether the string was changed in place by `APPEND` or `SETRANGE`, after which
    /// redis-server keeps it in its `raw` encoding whatever its length and content (`OBJECT
    /// ENCODING`). A clone keeps the flag, as Redis's copy of a raw string is raw.
    pub fn is_raw(&self) -> bool {
        self.len_field() & RAW != 0
    }

    pub fn set_raw(&mut self, raw: bool) {
        let f = (self.len_field() & !RAW) | if raw { RAW } else { 0 };
        // SAFETY: offset 4 holds the length field; `&mut self` means no one else reads it.
        unsafe { self.0.as_ptr().add(4).cast::<u32>().write(f) }
    }

    /// The string's length in bytes.
    pub fn len(&self) -> usize {
        // SAFETY: `new` wrote the `u64` at offset 8 whenever the length bits are `LONG`.
        unsafe {
            let base = self.0.as_ptr();
            let short = self.len_field() & !RAW;
            if short == LONG {
                base.add(HEAD).cast::<u64>().read() as usize
            } else {
                short as usize
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key's LRU clock (see [`Keyspace::lru_clock`](crate::keyspace::Keyspace::lru_clock)).
    pub fn lru(&self) -> u32 {
        // SAFETY: offset 0 holds the `u32` clock written by `new` or `set_lru`.
        unsafe { self.0.as_ptr().cast::<u32>().read() }
    }

    pub fn set_lru(&mut self, lru: u32) {
        // SAFETY: offset 0 holds the clock; `&mut self` means no one else reads it.
        unsafe { self.0.as_ptr().cast::<u32>().write(lru) }
    }

    /// Bytes the allocation takes (header included): what the memory count charges.
    pub fn alloc_len(&self) -> usize {
        let len = self.len();
        head_len(len) + len
    }
}

impl Deref for StrValue {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let len = self.len();
        // SAFETY: `new` copied `len` bytes to offset `head_len(len)`; they live as long as
        // `self`, and are never written through a shared reference.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(head_len(len)), len) }
    }
}

impl Drop for StrValue {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `alloc` with `layout(self.len())`, the same layout.
        unsafe { dealloc(self.0.as_ptr(), layout(self.len())) }
    }
}

impl Clone for StrValue {
    fn clone(&self) -> StrValue {
        let mut s = StrValue::new(self);
        s.set_lru(self.lru());
        s.set_raw(self.is_raw());
        s
    }
}

impl PartialEq for StrValue {
    /// Equal bytes, LRU clocks and raw flags.
    fn eq(&self, other: &StrValue) -> bool {
        self.lru() == other.lru() && self.is_raw() == other.is_raw() && **self == **other
    }
}

impl fmt::Debug for StrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", bytes::Bytes::copy_from_slice(self))
    }
}

impl From<&[u8]> for StrValue {
    fn from(b: &[u8]) -> StrValue {
        StrValue::new(b)
    }
}

impl From<Vec<u8>> for StrValue {
    fn from(b: Vec<u8>) -> StrValue {
        StrValue::new(&b)
    }
}

impl From<Box<[u8]>> for StrValue {
    fn from(b: Box<[u8]>) -> StrValue {
        StrValue::new(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_entry_is_24_bytes() {
        assert_eq!(std::mem::size_of::<crate::db::Value>(), 16);
        assert_eq!(std::mem::size_of::<crate::db::Entry>(), 24);
    }

    #[test]
    fn empty_and_clock() {
        let mut s = StrValue::new(b"");
        assert!(s.is_empty());
        assert_eq!(&*s, b"");
        s.set_lru(7);
        assert!(!s.is_raw());
        s.set_raw(true);
        let c = s.clone();
        assert_eq!(c.lru(), 7);
        assert!(c.is_raw());
        assert_eq!(c, s);
        assert_eq!(c.len(), 0);
        assert_eq!(s.alloc_len(), 8);
    }

    proptest! {
        #[test]
        fn holds_its_bytes(b in proptest::collection::vec(any::<u8>(), 0..600), lru in any::<u32>(), raw in any::<bool>()) {
            let mut s = StrValue::from(b.clone());
            s.set_lru(lru);
            s.set_raw(raw);
            prop_assert_eq!(&*s, &b[..]);
            prop_assert_eq!(s.len(), b.len());
            prop_assert_eq!(s.lru(), lru);
            prop_assert_eq!(s.is_raw(), raw);
            prop_assert_eq!(s.alloc_len(), 8 + b.len());
            let c = s.clone();
            drop(s);
            prop_assert_eq!(&*c, &b[..]);
        }
    }
}
