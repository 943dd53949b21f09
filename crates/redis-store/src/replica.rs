//! What the replicated tier needs from the keyspace beyond the commands: an exact image of the
//! replicated state (snapshots for nodes that join), reads that change no replicated state
//! (served on any replica between log entries), and the keys that received list elements
//! (a node wakes its own clients blocked on them, which then pop through the log).
//!
//! Replicated state is everything a replica's future replies depend on: the databases (entries
//! in map order, expiry, LRU clocks), the accounted memory, the random generator, the active
//! expiry cursors, and the `WATCH` registry (`WATCH`/`UNWATCH`/`EXEC` go through the log). Not
//! replicated: statistics, the blocked-client registry, the ready-key list.
//!
//! # Image format (version 1)
//! All integers little-endian. `bytes` is a `u32` length and the bytes; a length of
//! `u32::MAX` is followed by the real length as a `u64` (values of 4 GiB or more).
//! ```text
//! "KEELRKS" 0x01
//! used u64, rng u64, databases u32
//! per database: keys u64, expires u64, expire_cursor u64, then per key in map order:
//!   flags u8 (bits 0-3: 0 string, 1 list, 2 hash, 3 set; 0x10: has an expiry;
//!             0x20: hash is a hash table / set is an intset)
//!   key bytes, [expire_at u64 if 0x10], lru u32, then the value:
//!   string: bytes | list: n u64, n x bytes | hash: n u64, n x (field bytes, value bytes)
//!   | set: n u64, n x bytes     (collections in storage order)
//! watching clients u64, per client (ascending id): id u64, n u64, n x (db u32, key bytes,
//!   expired u8)
//! dirty clients u64, ids u64 ascending
//! ```

use bytes::Bytes;
use indexmap::{IndexMap, IndexSet};

use crate::commands::{Command, Flags};
use crate::db::{entry_mem, Db, Entry, Hasher, Value};
use crate::keyspace::{Keyspace, RNG_SEED};
use crate::strvalue::StrValue;
use crate::types::{
    is_int_member, Hash, List, Set, ELEM_OVERHEAD, HASH_LISTPACK_ENTRIES, HASH_LISTPACK_VALUE,
    SET_INTSET_ENTRIES,
};
use crate::watch::{Watched, Watches};
use crate::{Client, Exec, Reply};

/// A snapshot image that [`Keyspace::import`] could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redis keyspace image: {0}")]
pub struct ImportError(pub String);

/// The image's first bytes: magic and format version.
pub const IMAGE_MAGIC: &[u8; 8] = b"KEELRKS\x01";

const T_STR: u8 = 0;
const T_LIST: u8 = 1;
const T_HASH: u8 = 2;
const T_SET: u8 = 3;
const F_EXPIRE: u8 = 0x10;
/// The value's encoding flag: a hash's `ht`, a set's `intset`, a string's raw flag.
const F_ENC: u8 = 0x20;

/// The error reply of a write command given to [`Keyspace::execute_readonly`].
pub const READONLY_WRITE_ERR: &str = "ERR write command not allowed in a read-only execution";

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    match u32::try_from(b.len()) {
        Ok(n) if n != u32::MAX => put_u32(out, n),
        _ => {
            put_u32(out, u32::MAX);
            put_u64(out, b.len() as u64);
        }
    }
    out.extend_from_slice(b);
}

fn err(msg: impl Into<String>) -> ImportError {
    ImportError(msg.into())
}

/// A bounds-checked reader over an image.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ImportError> {
        if n > self.remaining() {
            return Err(err(format!(
                "truncated: {what} needs {n} bytes at offset {}, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ImportError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, ImportError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ImportError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], ImportError> {
        let n = match self.u32(what)? {
            u32::MAX => {
                let n = self.u64(what)?;
                if n < u32::MAX as u64 {
                    return Err(err(format!(
                        "{what}: long length {n} used for a short string"
                    )));
                }
                usize::try_from(n).map_err(|_| err(format!("{what}: length {n} too big")))?
            }
            n => n as usize,
        };
        self.take(n, what)
    }

    /// A count of items that take at least `min` bytes each: refused if the rest of the
    /// image cannot hold them, so it is also a safe capacity to allocate.
    fn count(&mut self, min: usize, what: &str) -> Result<usize, ImportError> {
        let n = self.u64(what)?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() / min => Ok(n),
            _ => Err(err(format!(
                "{what}: count {n} exceeds the {} bytes left",
                self.remaining()
            ))),
        }
    }
}

/// The replicated state read from an image, installed only once all of it is valid.
struct Image {
    used: u64,
    rng: u64,
    dbs: Vec<Db>,
    watches: Watches,
}

fn read_value(r: &mut Reader<'_>, ty: u8, enc: bool) -> Result<Value, ImportError> {
    Ok(match ty {
        T_STR => {
            let mut s = StrValue::from(r.bytes("string value")?);
            s.set_raw(enc);
            Value::Str(s)
        }
        T_LIST => {
            let n = r.count(4, "list length")?;
            if n == 0 {
                return Err(err("empty list"));
            }
            let mut l = List::new();
            l.items.reserve_exact(n);
            for _ in 0..n {
                let v = r.bytes("list element")?;
                l.bytes += v.len() + ELEM_OVERHEAD;
                l.items.push_back(v.into());
            }
            Value::List(Box::new(l))
        }
        T_HASH => {
            let n = r.count(8, "hash length")?;
            if n == 0 {
                return Err(err("empty hash"));
            }
            if !enc && n > HASH_LISTPACK_ENTRIES {
                return Err(err(format!("listpack hash with {n} fields")));
            }
            let mut h = Hash {
                map: IndexMap::with_capacity_and_hasher(n, Hasher::default()),
                bytes: 0,
                ht: enc,
                lru: 0,
            };
            for _ in 0..n {
                let f = r.bytes("hash field")?;
                let v = r.bytes("hash value")?;
                if !enc && (f.len() > HASH_LISTPACK_VALUE || v.len() > HASH_LISTPACK_VALUE) {
                    return Err(err("listpack hash with a long field or value"));
                }
                h.bytes += f.len() + v.len() + ELEM_OVERHEAD;
                if h.map.insert(f.into(), v.into()).is_some() {
                    return Err(err("duplicate hash field"));
                }
            }
            Value::Hash(Box::new(h))
        }
        T_SET => {
            let n = r.count(4, "set size")?;
            if n == 0 {
                return Err(err("empty set"));
            }
            if enc && n > SET_INTSET_ENTRIES {
                return Err(err(format!("intset with {n} members")));
            }
            let mut s = Set {
                set: IndexSet::with_capacity_and_hasher(n, Hasher::default()),
                bytes: 0,
                intset: enc,
                lru: 0,
            };
            for _ in 0..n {
                let m = r.bytes("set member")?;
                if enc && !is_int_member(m) {
                    return Err(err("intset with a non-integer member"));
                }
                s.bytes += m.len() + ELEM_OVERHEAD;
                if !s.set.insert(m.into()) {
                    return Err(err("duplicate set member"));
                }
            }
            Value::Set(Box::new(s))
        }
        _ => return Err(err(format!("unknown value type {ty}"))),
    })
}

fn read_image(image: &[u8], databases: usize) -> Result<Image, ImportError> {
    let mut r = Reader { buf: image, pos: 0 };
    let magic = r.take(IMAGE_MAGIC.len(), "header")?;
    if magic[..7] != IMAGE_MAGIC[..7] {
        return Err(err("not a keel redis keyspace image (bad magic)"));
    }
    if magic[7] != IMAGE_MAGIC[7] {
        return Err(err(format!("unsupported image version {}", magic[7])));
    }
    let used = r.u64("used memory")?;
    let rng = r.u64("random state")?;
    if rng == 0 {
        return Err(err("random state 0 (the generator never reaches it)"));
    }
    let ndbs = r.u32("database count")? as usize;
    if ndbs != databases {
        return Err(err(format!(
            "image has {ndbs} databases, this keyspace {databases}"
        )));
    }
    let mut dbs = Vec::with_capacity(ndbs);
    let mut total: u64 = 0;
    for i in 0..ndbs {
        // flags, key length, lru, and at least a 4-byte value.
        let n = r.count(13, "key count")?;
        let expires = r.u64("expires count")?;
        let cursor = r.u64("expire cursor")?;
        let expire_cursor = usize::try_from(cursor)
            .map_err(|_| err(format!("db {i}: expire cursor {cursor} too big")))?;
        let mut map = IndexMap::with_capacity_and_hasher(n, Hasher::default());
        let mut with_ttl: u64 = 0;
        for _ in 0..n {
            let flags = r.u8("entry flags")?;
            let ty = flags & 0x0f;
            let enc = flags & F_ENC != 0;
            if flags & !(0x0f | F_EXPIRE | F_ENC) != 0 || ty > T_SET || (enc && ty == T_LIST) {
                return Err(err(format!("db {i}: bad entry flags {flags:#04x}")));
            }
            let key = r.bytes("key")?;
            let expire_at = if flags & F_EXPIRE != 0 {
                let at = r.u64("expiry")?;
                if at == 0 {
                    return Err(err(format!("db {i}: expiry flag with expiry 0")));
                }
                with_ttl += 1;
                at
            } else {
                0
            };
            let lru = r.u32("lru clock")?;
            let value = read_value(&mut r, ty, enc)?;
            let entry = Entry::new(value, expire_at, lru);
            total = total.saturating_add(entry_mem(key, &entry) as u64);
            if map.insert(Box::<[u8]>::from(key), entry).is_some() {
                return Err(err(format!("db {i}: duplicate key")));
            }
        }
        if expires != with_ttl {
            return Err(err(format!(
                "db {i}: expires count {expires}, but {with_ttl} keys have an expiry"
            )));
        }
        dbs.push(Db {
            map,
            expires: with_ttl as usize,
            expire_cursor,
        });
    }
    if used != total {
        return Err(err(format!(
            "used memory {used}, but the entries account for {total}"
        )));
    }
    let mut watches = Watches::default();
    let nclients = r.count(16, "watching client count")?;
    let mut last: Option<u64> = None;
    for _ in 0..nclients {
        let id = r.u64("client id")?;
        if last.is_some_and(|l| l >= id) {
            return Err(err("watching clients not in ascending order"));
        }
        last = Some(id);
        let n = r.count(9, "watched key count")?;
        let mut list: Vec<Watched> = Vec::with_capacity(n);
        for _ in 0..n {
            let db = r.u32("watched db")? as usize;
            if db >= ndbs {
                return Err(err(format!("watched key in database {db}")));
            }
            let key = r.bytes("watched key")?;
            let expired = match r.u8("watched expired flag")? {
                0 => false,
                1 => true,
                v => return Err(err(format!("watched expired flag {v}"))),
            };
            if list.iter().any(|w| w.db == db && *w.key == *key) {
                return Err(err("key watched twice by one client"));
            }
            watches
                .by_key
                .entry(db)
                .or_default()
                .entry(key.into())
                .or_default()
                .insert(id);
            list.push(Watched {
                db,
                key: key.into(),
                expired,
            });
        }
        watches.by_client.insert(id, list);
    }
    let ndirty = r.count(8, "dirty client count")?;
    let mut last: Option<u64> = None;
    for _ in 0..ndirty {
        let id = r.u64("dirty client id")?;
        if last.is_some_and(|l| l >= id) {
            return Err(err("dirty clients not in ascending order"));
        }
        last = Some(id);
        watches.dirty.insert(id);
    }
    if r.remaining() != 0 {
        return Err(err(format!("{} trailing bytes", r.remaining())));
    }
    Ok(Image {
        used,
        rng,
        dbs,
        watches,
    })
}

impl Keyspace {
    /// Append an exact image of the replicated state to `out` (see the module doc): importing
    /// it into a keyspace with the same [`crate::Config`] gives a keyspace that answers every
    /// later command exactly as this one does.
    pub fn export_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(IMAGE_MAGIC);
        put_u64(out, self.used);
        put_u64(out, self.rng);
        put_u32(out, self.dbs.len() as u32);
        for d in &self.dbs {
            put_u64(out, d.map.len() as u64);
            put_u64(out, d.expires as u64);
            put_u64(out, d.expire_cursor as u64);
            for (k, e) in &d.map {
                let (ty, enc) = match &e.value {
                    Value::Str(s) => (T_STR, s.is_raw()),
                    Value::List(_) => (T_LIST, false),
                    Value::Hash(h) => (T_HASH, h.ht),
                    Value::Set(s) => (T_SET, s.intset),
                };
                let mut flags = ty;
                if e.expire_at != 0 {
                    flags |= F_EXPIRE;
                }
                if enc {
                    flags |= F_ENC;
                }
                out.push(flags);
                put_bytes(out, k);
                if e.expire_at != 0 {
                    put_u64(out, e.expire_at);
                }
                put_u32(out, e.lru());
                match &e.value {
                    Value::Str(s) => put_bytes(out, s),
                    Value::List(l) => {
                        put_u64(out, l.len() as u64);
                        for v in l.iter() {
                            put_bytes(out, v);
                        }
                    }
                    Value::Hash(h) => {
                        put_u64(out, h.len() as u64);
                        for (f, v) in h.iter() {
                            put_bytes(out, f);
                            put_bytes(out, v);
                        }
                    }
                    Value::Set(s) => {
                        put_u64(out, s.len() as u64);
                        for m in s.iter() {
                            put_bytes(out, m);
                        }
                    }
                }
            }
        }
        // The registry's maps are hash maps with random iteration order: sort so that equal
        // states give equal images.
        let mut clients: Vec<(&u64, &Vec<Watched>)> = self.watches.by_client.iter().collect();
        clients.sort_unstable_by_key(|(id, _)| **id);
        put_u64(out, clients.len() as u64);
        for (id, list) in clients {
            put_u64(out, *id);
            put_u64(out, list.len() as u64);
            for w in list {
                put_u32(out, w.db as u32);
                put_bytes(out, &w.key);
                out.push(w.expired as u8);
            }
        }
        let mut dirty: Vec<u64> = self.watches.dirty.iter().copied().collect();
        dirty.sort_unstable();
        put_u64(out, dirty.len() as u64);
        for id in dirty {
            put_u64(out, id);
        }
    }

    /// Replace the replicated state with `image` (made by [`Keyspace::export_into`]); the
    /// configuration is kept. On error the keyspace is left empty.
    pub fn import(&mut self, image: &[u8]) -> Result<(), ImportError> {
        // Free the old state first: the image's can be as big.
        self.clear_replicated();
        let img = read_image(image, self.dbs.len())?;
        self.dbs = img.dbs;
        self.used = img.used;
        self.rng = img.rng;
        self.watches = img.watches;
        Ok(())
    }

    /// Empty every database and the `WATCH` registry, and reset the generator.
    fn clear_replicated(&mut self) {
        let n = self.dbs.len();
        self.dbs = (0..n).map(|_| Db::default()).collect();
        self.used = 0;
        self.rng = RNG_SEED;
        self.watches = Watches::default();
    }

    /// Run a command that does not write (no `write` flag) without changing replicated state:
    /// expired keys read as missing but stay until the log removes them, LRU clocks are not
    /// touched, random picks (`RANDOMKEY`, `SRANDMEMBER`, `HRANDFIELD`) use a generator of the
    /// replica's own. Statistics (hits, misses) still count. A write command gets the error
    /// reply [`READONLY_WRITE_ERR`] and changes nothing.
    pub fn execute_readonly(
        &mut self,
        client: &mut Client,
        command: &Command,
        args: &[Bytes],
        now_ms: u64,
    ) -> Exec {
        let flags = command.spec.flags;
        if flags.has(Flags::WRITE) || flags.has(Flags::DENYOOM) || flags.has(Flags::BLOCKING) {
            return Exec::Reply(Reply::error(READONLY_WRITE_ERR));
        }
        self.read_only = true;
        let r = self.run(client, command, args, now_ms);
        self.read_only = false;
        r
    }

    /// Keys (database, key) that received list elements since the last call, each once, in
    /// the order they were first signalled. Only recorded when [`crate::Config::track_ready`]
    /// is set (the replicated tier); blocked clients of this keyspace's own registry are not
    /// affected.
    pub fn take_ready_keys(&mut self) -> Vec<(usize, Box<[u8]>)> {
        self.ready_keys_set.clear();
        std::mem::take(&mut self.ready_keys)
    }
}

#[cfg(test)]
#[path = "replica_tests.rs"]
mod replica_tests;
