//! Store snapshots: a byte image of the whole store ([`Store::export`]) and the exact rebuild of
//! a store from one ([`Store::import`], [`Store::from_export`]).
//!
//! The image is **exact**, not just "the same key/value pairs": every shard's table capacity and
//! the slot of every item, the CLOCK hand, the per-shard counters, every item's CAS, expiry, last
//! access time, flags and state bits (fetched, reference, stale, win token), the CAS counter and
//! the flush_all state (`oldest_live` / `oldest_cas`). Slot order is what the eviction hand walks,
//! so a store rebuilt from an image evicts, expires and assigns CAS values exactly like the
//! original under the same later calls — which is what lets the cache cluster install a snapshot
//! on a replica instead of replaying the log (issue 5, log compaction).
//!
//! # Format (version 1, little-endian)
//! ```text
//! "KEELSTOR" u32 version  u32 shards  u64 mem_limit  u64 cas_counter
//! u64 flush_prev_live  u64 flush_live  u64 flush_cas_floor          (raw, +1 encoded)
//! per shard:  u64 capacity  u64 hand  7 x u64 counters  u64 items
//!   per item: u64 slot  u64 cas  u32 expiry  u32 time  u32 flags  u8 bits  u8 key_len
//!             u32 value_len  key  value
//! "KEELEND!"
//! ```
//! Consistency: [`Store::export`] locks one shard at a time, so the image is a single point in
//! the call history only when no mutating call runs concurrently (the cluster's state machine
//! exports from its apply task, between two entries). The CAS counter is read after the last
//! shard, so it is never behind an exported item's CAS.
//!
//! Importing never panics and never aborts on a hostile image: lengths are bounds-checked, table
//! sizes are allocated fallibly, and the rebuilt tables are validated before anything is swapped
//! in; on any error the store is left untouched.

use std::sync::atomic::Ordering;

use crate::item::{self, Item};
use crate::table::Table;
use crate::{hash_key, Counters, Shard, Store, StoreConfig};

const MAGIC: &[u8; 8] = b"KEELSTOR";
const TRAILER: &[u8; 8] = b"KEELEND!";
const VERSION: u32 = 1;
/// Byte offset of the CAS counter in the header (patched after the shards are written).
const CAS_AT: usize = 8 + 4 + 4 + 8;
const HEADER: usize = CAS_AT + 8 + 3 * 8;
const SHARD_HEADER: usize = 8 + 8 + 7 * 8 + 8;
const ITEM_HEADER: usize = 8 + 8 + 4 + 4 + 4 + 1 + 1 + 4;

/// Why an image could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("store snapshot: not a keel store image")]
    BadMagic,
    #[error("store snapshot: unsupported version {0}")]
    Version(u32),
    #[error("store snapshot: truncated")]
    Truncated,
    #[error("store snapshot: trailing bytes after the image")]
    Trailing,
    #[error("store snapshot: invalid shard table ({0})")]
    BadTable(&'static str),
    #[error("store snapshot: invalid item ({0})")]
    BadItem(&'static str),
    #[error("store snapshot: out of memory rebuilding the store")]
    OutOfMemory,
}

/// What an import rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportInfo {
    pub items: u64,
    /// Accounted bytes of the rebuilt store.
    pub bytes: u64,
    /// Whether the image had this store's shard count. If not, the items were re-hashed into
    /// this store's shards in image order: contents, CAS values and flush state are kept, but
    /// slot order (hence future eviction choices) can differ from the exporting store's.
    pub exact: bool,
}

fn counters_to(c: &Counters) -> [u64; 7] {
    [
        c.total_items,
        c.evictions,
        c.expired_unfetched,
        c.evicted_unfetched,
        c.reclaimed,
        c.get_expired,
        c.get_flushed,
    ]
}

fn counters_from(v: [u64; 7]) -> Counters {
    Counters {
        total_items: v[0],
        evictions: v[1],
        expired_unfetched: v[2],
        evicted_unfetched: v[3],
        reclaimed: v[4],
        get_expired: v[5],
        get_flushed: v[6],
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self.at.checked_add(n).ok_or(SnapshotError::Truncated)?;
        let s = self.b.get(self.at..end).ok_or(SnapshotError::Truncated)?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let mut w = [0u8; 4];
        w.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(w))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(w))
    }
    fn left(&self) -> usize {
        self.b.len() - self.at
    }
}

/// A shard rebuilt from an image, not yet swapped in. Frees its items if dropped.
struct ShardImage {
    table: Table,
    hand: usize,
    c: Counters,
}

impl Drop for ShardImage {
    fn drop(&mut self) {
        for it in self.table.drain() {
            // SAFETY: items of an image are owned by it alone until swapped into a store.
            unsafe { it.free() };
        }
    }
}

/// A parsed image: shards (already in this store's shard count) and global state.
struct Image {
    shards: Vec<ShardImage>,
    cas: u64,
    flush: [u64; 3],
    used: u64,
    items: u64,
    exact: bool,
}

/// How many table slots ahead an export prefetches items.
const EXPORT_PREFETCH: usize = 16;

impl Store {
    /// The whole store as a byte image (see the module docs for what it holds). Takes each shard
    /// lock in turn, briefly; changes nothing.
    pub fn export(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.export_into(&mut out);
        out
    }

    /// [`Store::export`], appending to `out` (whose capacity is reserved up front: the image is
    /// never larger than the accounted bytes plus headers).
    pub fn export_into(&self, out: &mut Vec<u8>) {
        let base = out.len();
        let used = self.used.0.load(Ordering::Acquire) as usize;
        out.reserve(HEADER + self.shards.len() * SHARD_HEADER + used + 8 + 4096);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.shards.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.limit.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // CAS counter, patched below
        out.extend_from_slice(&[0u8; 24]); // flush state, patched below
        for shard in self.shards.iter() {
            let g = shard.0.lock();
            out.extend_from_slice(&(g.table.capacity() as u64).to_le_bytes());
            out.extend_from_slice(&(g.hand as u64).to_le_bytes());
            for c in counters_to(&g.c) {
                out.extend_from_slice(&c.to_le_bytes());
            }
            out.extend_from_slice(&(g.table.len() as u64).to_le_bytes());
            for i in 0..g.table.capacity() {
                // Items sit at random addresses: fetch a few slots ahead so the misses overlap
                // (the pause of an export is mostly these misses).
                g.table.prefetch_at(i + EXPORT_PREFETCH);
                let Some(it) = g.table.get(i) else { continue };
                let (key, value) = (it.key(), it.value());
                let mut h = [0u8; ITEM_HEADER];
                h[0..8].copy_from_slice(&(i as u64).to_le_bytes());
                h[8..16].copy_from_slice(&it.cas().to_le_bytes());
                h[16..20].copy_from_slice(&it.exp().to_le_bytes());
                h[20..24].copy_from_slice(&it.time().to_le_bytes());
                h[24..28].copy_from_slice(&it.flags().to_le_bytes());
                h[28] = it.bits();
                h[29] = key.len() as u8;
                h[30..34].copy_from_slice(&(value.len() as u32).to_le_bytes());
                out.extend_from_slice(&h);
                out.extend_from_slice(key);
                out.extend_from_slice(value);
            }
        }
        out.extend_from_slice(TRAILER);
        let _g = self.flush_lock.lock();
        let cas = self.cas.0.load(Ordering::Acquire);
        out[base + CAS_AT..base + CAS_AT + 8].copy_from_slice(&cas.to_le_bytes());
        let f = [
            self.flush.prev_live.load(Ordering::Acquire),
            self.flush.live.load(Ordering::Acquire),
            self.flush.cas_floor.load(Ordering::Acquire),
        ];
        for (j, v) in f.iter().enumerate() {
            let at = base + CAS_AT + 8 + 8 * j;
            out[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
    }

    /// A new store with `config`, holding exactly what `image` (from [`Store::export`]) holds.
    pub fn from_export(config: StoreConfig, image: &[u8]) -> Result<Store, SnapshotError> {
        let s = Store::new(config);
        s.import(image)?;
        Ok(s)
    }

    /// Replace this store's whole contents and state with `image` (from [`Store::export`]), in
    /// place: other holders of the store see the old state, then the new one, never a mix (every
    /// shard lock is held while swapping). The image is parsed and validated first, without any
    /// lock; on error nothing changes. With the same shard count the rebuild is exact (same
    /// slots, hand, counters); otherwise see [`ImportInfo::exact`].
    pub fn import(&self, image: &[u8]) -> Result<ImportInfo, SnapshotError> {
        let img = self.parse(image)?;
        let info = ImportInfo {
            items: img.items,
            bytes: img.used,
            exact: img.exact,
        };
        let Image {
            shards: mut new,
            cas,
            flush,
            used,
            ..
        } = img;
        let mut old_tables = Vec::with_capacity(new.len());
        {
            let _f = self.flush_lock.lock();
            let mut guards: Vec<_> = self.shards.iter().map(|s| s.0.lock()).collect();
            for (g, n) in guards.iter_mut().zip(new.iter_mut()) {
                let sh: &mut Shard = g;
                old_tables.push(std::mem::replace(
                    &mut sh.table,
                    std::mem::replace(&mut n.table, Table::new()),
                ));
                sh.hand = n.hand;
                sh.c = n.c;
            }
            self.used.0.store(used, Ordering::Release);
            self.cas.0.store(cas, Ordering::Release);
            self.flush.prev_live.store(flush[0], Ordering::Release);
            self.flush.live.store(flush[1], Ordering::Release);
            self.flush.cas_floor.store(flush[2], Ordering::Release);
        }
        // Free the old items outside the locks.
        for mut t in old_tables {
            for it in t.drain() {
                // SAFETY: swapped out of the store under every shard lock; unreachable now.
                unsafe { it.free() };
            }
        }
        Ok(info)
    }

    fn parse(&self, image: &[u8]) -> Result<Image, SnapshotError> {
        let mut r = Reader { b: image, at: 0 };
        if r.take(8).map_err(|_| SnapshotError::BadMagic)? != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let v = r.u32()?;
        if v != VERSION {
            return Err(SnapshotError::Version(v));
        }
        let n_shards = r.u32()? as usize;
        let _limit = r.u64()?;
        let cas = r.u64()?;
        let flush = [r.u64()?, r.u64()?, r.u64()?];
        let exact = n_shards == self.shards.len();
        let mut out: Vec<ShardImage> = Vec::with_capacity(self.shards.len());
        if !exact {
            for _ in 0..self.shards.len() {
                out.push(ShardImage {
                    table: Table::new(),
                    hand: 0,
                    c: Counters::default(),
                });
            }
        }
        let mut used = 0u64;
        let mut items = 0u64;
        for _ in 0..n_shards {
            let cap = r.u64()?;
            let hand = r.u64()?;
            let mut c = [0u64; 7];
            for x in c.iter_mut() {
                *x = r.u64()?;
            }
            let n = r.u64()?;
            // Every item takes at least its header: reject counts the image cannot hold before
            // allocating anything for them.
            if n > (r.left() / ITEM_HEADER) as u64 {
                return Err(SnapshotError::Truncated);
            }
            let mut img = if exact {
                let table = usize::try_from(cap)
                    .ok()
                    .and_then(Table::with_capacity)
                    .ok_or(SnapshotError::BadTable("capacity"))?;
                // The hand is only ever used masked by the capacity.
                let hand = (hand & (cap - 1)) as usize;
                Some(ShardImage {
                    table,
                    hand,
                    c: counters_from(c),
                })
            } else {
                if let Some(first) = out.first_mut() {
                    let mut sum = counters_to(&first.c);
                    for (a, b) in sum.iter_mut().zip(c) {
                        *a = a.wrapping_add(b);
                    }
                    first.c = counters_from(sum);
                }
                None
            };
            for _ in 0..n {
                let slot = r.u64()?;
                let icas = r.u64()?;
                let exp = r.u32()?;
                let time = r.u32()?;
                let flags = r.u32()?;
                let bits = r.u8()?;
                let klen = r.u8()? as usize;
                let vlen = r.u32()? as usize;
                if bits > 0xF {
                    return Err(SnapshotError::BadItem("state bits"));
                }
                if vlen > item::MAX_VALUE {
                    return Err(SnapshotError::BadItem("value length"));
                }
                let key = r.take(klen)?;
                let value = r.take(vlen)?;
                let it = Item::alloc(key, &[value], flags, exp, time, bits)
                    .ok_or(SnapshotError::OutOfMemory)?;
                it.set_cas(icas);
                let h = hash_key(key);
                let placed = match img.as_mut() {
                    Some(si) => usize::try_from(slot).is_ok_and(|s| si.table.put_at(s, h, it)),
                    None => {
                        let si = (h >> 40) as usize & self.shard_mask;
                        match out.get_mut(si) {
                            Some(t) if t.table.find(h, key).is_none() => {
                                t.table.insert(h, it);
                                true
                            }
                            _ => false,
                        }
                    }
                };
                if !placed {
                    // SAFETY: never linked anywhere.
                    unsafe { it.free() };
                    return Err(SnapshotError::BadItem("slot"));
                }
                used += it.charge() as u64;
                items += 1;
            }
            if let Some(si) = img {
                // Items must be in the shard their hash selects, findable at their slot.
                let shard = out.len();
                let ok = si.table.is_valid()
                    && (0..si.table.capacity())
                        .filter_map(|i| si.table.get(i))
                        .all(|it| (hash_key(it.key()) >> 40) as usize & self.shard_mask == shard);
                out.push(si);
                if !ok {
                    return Err(SnapshotError::BadTable("item placement"));
                }
            }
        }
        if r.take(8)? != TRAILER {
            return Err(SnapshotError::Truncated);
        }
        if r.left() != 0 {
            return Err(SnapshotError::Trailing);
        }
        if out.len() != self.shards.len() {
            return Err(SnapshotError::BadTable("shard count"));
        }
        Ok(Image {
            shards: out,
            cas,
            flush,
            used,
            items,
            exact,
        })
    }
}
