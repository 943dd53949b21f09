//! Clients blocked in `BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH`, `BLMPOP`: who waits on which
//! keys, in arrival order, and which keys received elements since the last serve.
//!
//! Serving follows redis-server 7.0's `handleClientsBlockedOnKeys`: ready keys in the order
//! they were signalled; on each key, its waiters first-come first-served while the list has
//! elements; a waiter blocked on several keys is served once, by the first of its keys to be
//! served; a `BLMOVE` push may make its destination ready, which is served in the same call.
//! A key that holds something other than a list when served leaves its waiters blocked.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use redis_proto::{Protocol, Reply};

use crate::db::{Hasher, Value};
use crate::errors;
use crate::keyspace::Keyspace;
use crate::types::List;
use crate::{Client, Exec};

/// What a blocked client will do once one of its keys has elements.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockOp {
    /// `BLPOP` (`left`) / `BRPOP`: answer `[key, element]`.
    Pop { left: bool },
    /// `BLMPOP`: pop up to `count` and answer `[key, [elements]]`.
    MPop { left: bool, count: usize },
    /// `BLMOVE` / `BRPOPLPUSH`: pop from the key, push onto `dst`, answer the element.
    Move {
        dst: Box<[u8]>,
        from_left: bool,
        to_left: bool,
    },
}

impl BlockOp {
    /// The reply when the wait times out: a null array for every blocking list command,
    /// `BLMOVE` included (`replyToBlockedClientTimedOut`: `*-1` in RESP2).
    pub fn timeout_reply(&self) -> Reply {
        Reply::NilArray
    }

    /// The reply when the command may not block (inside `EXEC`): `BLMOVE`/`BRPOPLPUSH` answer
    /// a null bulk (`$-1`), the pops a null array, as `blmoveGenericCommand` and
    /// `blockingPopGenericCommand` do.
    pub fn no_block_reply(&self) -> Reply {
        match self {
            BlockOp::Move { .. } => Reply::Nil,
            _ => Reply::NilArray,
        }
    }
}

/// One blocked client.
#[derive(Clone, Debug)]
struct Waiter {
    /// Arrival order: the position in every key's queue.
    seq: u64,
    db: usize,
    keys: Vec<Box<[u8]>>,
    op: BlockOp,
    /// The protocol the client spoke when it blocked (the reply shapes here are the same in
    /// both; kept for the server's bookkeeping and future reply shapes).
    #[allow(dead_code)]
    proto: Protocol,
}

type KeyQueues = HashMap<Box<[u8]>, BTreeMap<u64, u64>, Hasher>;

/// Blocked clients and ready keys.
#[derive(Clone, Debug, Default)]
pub struct Blocked {
    /// Keys that received elements and may serve a waiter, in signal order.
    pub(crate) ready: Vec<(usize, Box<[u8]>)>,
    /// The same keys, to signal each once.
    ready_set: HashSet<(usize, Box<[u8]>), Hasher>,
    /// Per database: key -> (arrival seq -> client id), FIFO by seq.
    by_key: HashMap<usize, KeyQueues, Hasher>,
    clients: HashMap<u64, Waiter, Hasher>,
    next_seq: u64,
}

impl Blocked {
    /// A key received elements: note it if someone waits on it.
    pub fn signal_ready(&mut self, db: usize, key: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let waited = self
            .by_key
            .get(&db)
            .is_some_and(|keys| keys.contains_key(key));
        if waited {
            let k = (db, Box::<[u8]>::from(key));
            if self.ready_set.insert(k.clone()) {
                self.ready.push(k);
            }
        }
    }

    fn add(&mut self, client: &Client, keys: Vec<Box<[u8]>>, op: BlockOp) {
        // A client blocks at most once; a stale registration would be a server bug, but
        // replacing it keeps the registry consistent.
        self.remove(client.id);
        let seq = self.next_seq;
        self.next_seq += 1;
        let queues = self.by_key.entry(client.db).or_default();
        for k in &keys {
            queues.entry(k.clone()).or_default().insert(seq, client.id);
        }
        self.clients.insert(
            client.id,
            Waiter {
                seq,
                db: client.db,
                keys,
                op,
                proto: client.proto,
            },
        );
    }

    fn remove(&mut self, client_id: u64) -> Option<Waiter> {
        let w = self.clients.remove(&client_id)?;
        if let Some(queues) = self.by_key.get_mut(&w.db) {
            for k in &w.keys {
                if let Some(q) = queues.get_mut(k) {
                    q.remove(&w.seq);
                    if q.is_empty() {
                        queues.remove(k);
                    }
                }
            }
            if queues.is_empty() {
                self.by_key.remove(&w.db);
            }
        }
        Some(w)
    }

    /// The first client waiting on `key`.
    fn first_waiter(&self, db: usize, key: &[u8]) -> Option<u64> {
        let q = self.by_key.get(&db)?.get(key)?;
        q.values().next().copied()
    }
}

/// Parse a blocking timeout (seconds, a float) as `getTimeoutFromObjectOrReply` does:
/// `Ok(None)` blocks forever (0), `Ok(Some(ms))` a relative timeout.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<u64>, Reply> {
    let secs = crate::cmd::hashes::parse_long_double(arg)
        .ok_or_else(|| errors::err(errors::TIMEOUT_NOT_FLOAT))?;
    let ms = (secs * 1000.0).ceil();
    // C's conversion of an out-of-range long double to long long gives LLONG_MIN, which
    // Redis then reports as negative.
    if !(0.0..9_223_372_036_854_775_808.0).contains(&ms) {
        return Err(errors::err(errors::TIMEOUT_NEGATIVE));
    }
    let ms = ms as u64;
    Ok(if ms == 0 { None } else { Some(ms) })
}

impl Keyspace {
    /// Block `client` on `keys` (all empty or missing), or answer the timeout reply at once
    /// inside `EXEC`, as Redis does for clients that may not block.
    pub(crate) fn block_client(
        &mut self,
        client: &Client,
        keys: &[bytes::Bytes],
        op: BlockOp,
        timeout_ms: Option<u64>,
        now_ms: u64,
    ) -> Exec {
        if client.in_exec {
            return Exec::Reply(op.no_block_reply());
        }
        let mut uniq: Vec<Box<[u8]>> = Vec::with_capacity(keys.len());
        for k in keys {
            if !uniq.iter().any(|u| **u == **k) {
                uniq.push(k[..].into());
            }
        }
        self.blocked.add(client, uniq, op);
        Exec::Blocked {
            deadline_ms: timeout_ms.map(|t| now_ms.saturating_add(t)),
        }
    }

    /// Signal every key of database `db` that clients wait on and that now holds a non-empty
    /// list, for commands that change a whole database under the waiters (`SWAPDB`; Redis's
    /// `scanDatabaseForReadyKeys`). A key given a list by [`Keyspace::insert`] (`RENAME`,
    /// `COPY`, `MOVE`) is signalled by `insert` itself, as Redis's `dbAdd` does.
    pub fn signal_waited_keys(&mut self, db: usize, now_ms: u64) {
        let keys: Vec<Box<[u8]>> = match self.blocked.by_key.get(&db) {
            Some(q) => q.keys().cloned().collect(),
            None => return,
        };
        for k in keys {
            let ready = matches!(
                self.lookup(db, &k, now_ms).map(|e| &e.value),
                Some(Value::List(l)) if !l.is_empty()
            );
            if ready {
                self.signal_ready(db, &k);
            }
        }
    }

    /// How many clients are blocked (`INFO clients`' `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.blocked.clients.len()
    }

    /// The client's wait ended (timeout or disconnect): its timeout reply if it was still
    /// blocked, `None` if it was already served (or never blocked).
    pub fn cancel_block(&mut self, client_id: u64) -> Option<Reply> {
        self.blocked.remove(client_id).map(|w| w.op.timeout_reply())
    }

    /// Serve the clients blocked on keys that received elements since the last call. Returns
    /// each served client's reply, in serving order.
    pub fn serve_blocked(&mut self, now_ms: u64) -> Vec<(u64, Reply)> {
        let mut out = Vec::new();
        while !self.blocked.ready.is_empty() {
            let ready = std::mem::take(&mut self.blocked.ready);
            for (db, key) in ready {
                self.blocked.ready_set.remove(&(db, key.clone()));
                self.serve_key(db, &key, now_ms, &mut out);
            }
        }
        out
    }

    fn serve_key(&mut self, db: usize, key: &[u8], now_ms: u64, out: &mut Vec<(u64, Reply)>) {
        if db >= self.dbs.len() {
            return;
        }
        loop {
            let Some(client_id) = self.blocked.first_waiter(db, key) else {
                return;
            };
            let has_elements = matches!(
                self.lookup(db, key, now_ms).map(|e| &e.value),
                Some(Value::List(l)) if !l.is_empty()
            );
            if !has_elements {
                return;
            }
            let Some(w) = self.blocked.remove(client_id) else {
                return;
            };
            let reply = self.serve_one(db, key, &w.op, now_ms);
            out.push((client_id, reply));
        }
    }

    /// Run a waiter's operation on `key`, which holds a non-empty list.
    fn serve_one(&mut self, db: usize, key: &[u8], op: &BlockOp, now_ms: u64) -> Reply {
        let kb = Bytes::copy_from_slice(key);
        match op {
            BlockOp::Pop { left } => {
                let v = self.modify(db, key, now_ms, |e| match &mut e.value {
                    Value::List(l) => l.pop(*left),
                    _ => None,
                });
                match v.flatten() {
                    Some(v) => Reply::Array(vec![Reply::Bulk(kb), Reply::bulk(&v)]),
                    None => Reply::NilArray,
                }
            }
            BlockOp::MPop { left, count } => {
                let v = self
                    .modify(db, key, now_ms, |e| match &mut e.value {
                        Value::List(l) => l.pop_many(*count, *left),
                        _ => Vec::new(),
                    })
                    .unwrap_or_default();
                Reply::Array(vec![
                    Reply::Bulk(kb),
                    Reply::Array(v.iter().map(|x| Reply::bulk(x)).collect()),
                ])
            }
            BlockOp::Move {
                dst,
                from_left,
                to_left,
            } => match self.lmove(db, key, dst, *from_left, *to_left, now_ms) {
                Ok(Some(v)) => Reply::Bulk(v),
                Ok(None) => Reply::Nil,
                Err(e) => e,
            },
        }
    }

    /// `LMOVE`'s core, shared with `BLMOVE`'s serving: pop from `src`, push onto `dst`
    /// (created if missing; the same key rotates in place, keeping its expiry). `Ok(None)`:
    /// `src` is missing or empty. `Err`: a key holds another type.
    pub(crate) fn lmove(
        &mut self,
        db: usize,
        src: &[u8],
        dst: &[u8],
        from_left: bool,
        to_left: bool,
        now_ms: u64,
    ) -> Result<Option<Bytes>, Reply> {
        match self.lookup(db, src, now_ms).map(|e| &e.value) {
            None => return Ok(None),
            Some(Value::List(l)) if l.is_empty() => return Ok(None),
            Some(Value::List(_)) => {}
            Some(_) => return Err(Keyspace::wrongtype()),
        }
        if src == dst {
            let v = self.modify(db, src, now_ms, |e| match &mut e.value {
                Value::List(l) => {
                    let v = l.pop(from_left)?;
                    l.push(&v, to_left);
                    Some(v)
                }
                _ => None,
            });
            return Ok(v.flatten().map(|v| Bytes::from(v.into_vec())));
        }
        let dst_exists = match self.lookup(db, dst, now_ms).map(|e| &e.value) {
            None => false,
            Some(Value::List(_)) => true,
            Some(_) => return Err(Keyspace::wrongtype()),
        };
        let v = self
            .modify(db, src, now_ms, |e| match &mut e.value {
                Value::List(l) => l.pop(from_left),
                _ => None,
            })
            .flatten();
        let Some(v) = v else { return Ok(None) };
        if dst_exists {
            self.modify(db, dst, now_ms, |e| {
                if let Value::List(l) = &mut e.value {
                    l.push(&v, to_left);
                }
            });
        } else {
            let mut l = List::new();
            l.push(&v, to_left);
            self.insert(db, dst, Value::List(Box::new(l)), 0, now_ms);
        }
        self.signal_ready(db, dst);
        Ok(Some(Bytes::from(v.into_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"0"), Ok(None));
        assert_eq!(parse_timeout(b"-0.0001"), Ok(None));
        assert_eq!(parse_timeout(b"1.5"), Ok(Some(1500)));
        assert_eq!(parse_timeout(b"1e-9"), Ok(Some(1)));
        for bad in [&b"abc"[..], b"", b" 1", b"1 ", b"nan"] {
            assert_eq!(
                parse_timeout(bad),
                Err(errors::err(errors::TIMEOUT_NOT_FLOAT))
            );
        }
        for neg in [&b"-1"[..], b"inf", b"-inf", b"1e300", b"9.3e15"] {
            assert_eq!(
                parse_timeout(neg),
                Err(errors::err(errors::TIMEOUT_NEGATIVE))
            );
        }
    }
}
