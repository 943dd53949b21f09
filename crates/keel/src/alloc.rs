//! The process's allocator: mimalloc, asked the way its own `malloc` is, and how long it keeps
//! freed pages ([`set_purge_delay`]).

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// mimalloc for every allocation. The `mimalloc` crate's allocator calls `mi_malloc_aligned` for
/// every request; for an alignment of 8 mimalloc takes that path only for power-of-two block
/// sizes and over-allocates every other size to the next size class (an 8-aligned 108-byte
/// request takes 128 bytes instead of 112). Every block `mi_malloc` returns is aligned to 8 (and
/// to 16 from 16 bytes, as C's `malloc` must be), so requests aligned to 8 or less that are at
/// least their alignment go to `mi_malloc`, and only larger alignments to the aligned calls.
pub struct Mimalloc;

/// Whether `mi_malloc` of `layout.size()` bytes is aligned enough for `layout`.
fn plain(align: usize, size: usize) -> bool {
    align <= 8 && size >= align
}

// SAFETY: every call forwards to mimalloc, which implements the `GlobalAlloc` contract (a block
// of at least the requested size, aligned as asked, or null; `mi_free` and `mi_realloc*` accept
// any block from any of its allocation calls); `plain` only routes a request to `mi_malloc`
// when mimalloc's minimum block alignment already satisfies it.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain allocation calls with the caller's sizes (see the impl's note).
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from mimalloc; the new size keeps the old alignment rule.
        unsafe {
            if plain(layout.align(), new_size) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

/// How long mimalloc keeps freed pages before returning them to the kernel.
pub enum Purge {
    /// Never (`purge_delay = -1`), for a cache cluster node: its in-memory Raft log grows until
    /// a snapshot purges it, then grows again, and with memory returned to the kernel in between
    /// every cycle faulted its pages back in, which cost replicated writes about a third of their
    /// rate (docs/benchmarks.md, "Allocator"). The footprint stays at its peak, as memcached's
    /// slabs do; the peak itself is unchanged (the log and the store reach it every cycle).
    Never,
    /// After 10 ms, for a standalone `keel cache`: a drained queue, a flushed keyspace or the old
    /// copy of a table that grew goes back to the kernel at once (mimalloc's own default is 1 s,
    /// and it purges only while the process allocates, so an idle server kept them).
    Soon,
}

/// Sets the purge delay unless `MIMALLOC_PURGE_DELAY` is in the environment (that still wins).
/// Commands that never call it keep mimalloc's default.
pub fn set_purge_delay(purge: Purge) {
    // `mi_option_purge_delay` in mimalloc's `mimalloc.h` (libmimalloc-sys exports no name).
    const MI_OPTION_PURGE_DELAY: mi::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        let ms = match purge {
            Purge::Never => -1,
            Purge::Soon => 10,
        };
        // SAFETY: sets a global option; mimalloc reads it on each purge decision.
        unsafe { mi::mi_option_set(MI_OPTION_PURGE_DELAY, ms) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_as_asked() {
        let a = Mimalloc;
        for size in [
            1usize,
            4,
            8,
            12,
            16,
            24,
            48,
            100,
            108,
            112,
            4000,
            70_000,
            3 << 20,
        ] {
            for align in [1usize, 2, 4, 8, 16, 64, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero-sized layout; the block is freed with the same layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xAB, size);
                    let q = a.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                    assert_eq!(*q.add(size - 1), 0xAB);
                    a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
