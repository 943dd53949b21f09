//! Cluster mode's local side of the replicated Redis keyspace: what this node does when it
//! applies an entry of the tier's log ([`Events`]), and which of its clients wait on which
//! lists ([`Waiters`]).
//!
//! * `PUBLISH` is a log entry; every node applies it and delivers it to its own subscribers,
//!   so a subscriber on any node gets every message published on any node after its
//!   `SUBSCRIBE` was answered, in log order (so in publish order per publisher).
//! * A blocking pop (`BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH`, `BLMPOP`) is sent through the
//!   log as a non-blocking pop. If the lists were empty the client waits here: when this node
//!   applies an entry that pushed onto one of its lists, every local client waiting on it is
//!   woken and sends its pop again. The pop is decided when its entry is applied, so each
//!   element goes to exactly one client, whichever node it waits on; clients waiting on the
//!   same list are served in the order their pops reach the log, not strictly in the order
//!   they started waiting.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;

use super::{now_ms, RedisShared};

/// A list: its database and key.
type ListKey = (usize, Box<[u8]>);

/// Local clients waiting on lists: list -> client ids.
#[derive(Default)]
pub struct Waiters {
    by_key: Mutex<HashMap<ListKey, Vec<u64>>>,
}

impl Waiters {
    /// `client` waits on `keys` of database `db` (call before sending the pop, so a push
    /// applied in between still wakes it).
    pub fn add(&self, client: u64, db: usize, keys: &[Bytes]) {
        let mut m = self.by_key.lock();
        for k in keys {
            let ids = m.entry((db, k[..].into())).or_default();
            if !ids.contains(&client) {
                ids.push(client);
            }
        }
    }

    /// `client` stopped waiting on `keys`.
    pub fn remove(&self, client: u64, db: usize, keys: &[Bytes]) {
        let mut m = self.by_key.lock();
        for k in keys {
            let key = (db, Box::<[u8]>::from(&k[..]));
            if let Some(ids) = m.get_mut(&key) {
                ids.retain(|c| *c != client);
                if ids.is_empty() {
                    m.remove(&key);
                }
            }
        }
    }

    /// Clients waiting on any of `keys`, each once.
    pub fn waiting_on(&self, keys: &[(usize, Box<[u8]>)]) -> Vec<u64> {
        let m = self.by_key.lock();
        if m.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<u64> = Vec::new();
        for k in keys {
            if let Some(ids) = m.get(k) {
                for id in ids {
                    if !out.contains(id) {
                        out.push(*id);
                    }
                }
            }
        }
        out
    }

    /// Lists with waiters (for `INFO`).
    pub fn len(&self) -> usize {
        self.by_key.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.lock().is_empty()
    }
}

/// Delivers this node's share of applied entries (see the module doc).
pub struct Events {
    shared: Weak<RedisShared>,
}

impl Events {
    pub fn new(shared: &Arc<RedisShared>) -> Events {
        Events {
            shared: Arc::downgrade(shared),
        }
    }
}

impl cache_cluster::RedisEvents for Events {
    fn published(&self, channel: &[u8], message: &[u8]) {
        if let Some(s) = self.shared.upgrade() {
            let limit = s.cfg.read().obuf_pubsub;
            s.pubsub.publish(channel, message, limit, now_ms());
        }
    }

    fn lists_ready(&self, keys: &[(usize, Box<[u8]>)]) {
        let Some(s) = self.shared.upgrade() else {
            return;
        };
        let ids = s.waiters.waiting_on(keys);
        if ids.is_empty() {
            return;
        }
        let clients = s.clients.lock();
        for id in ids {
            if let Some(h) = clients.get(&id) {
                h.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_are_found_by_key_once_and_leave_cleanly() {
        let w = Waiters::default();
        let k = |s: &str| Bytes::from(s.to_string());
        w.add(1, 0, &[k("a"), k("b")]);
        w.add(2, 0, &[k("b")]);
        w.add(3, 1, &[k("a")]);
        let ready = |db: usize, key: &str| (db, Box::<[u8]>::from(key.as_bytes()));
        assert_eq!(w.waiting_on(&[ready(0, "a"), ready(0, "b")]), [1, 2]);
        assert_eq!(w.waiting_on(&[ready(1, "a")]), [3]);
        assert!(w.waiting_on(&[ready(2, "a")]).is_empty());
        w.remove(1, 0, &[k("a"), k("b")]);
        w.remove(2, 0, &[k("b")]);
        w.remove(3, 1, &[k("a")]);
        assert!(w.is_empty());
    }
}
