//! `WATCH` bookkeeping: which clients watch which keys, and which of them saw a watched key
//! change (their `EXEC` must fail).
//!
//! Follows redis-server 7.0's `multi.c`: a key that was already expired when watched and is
//! then deleted (lazily or actively) is no change; a key that was live when watched and has
//! expired by `EXEC` time is one, even if nothing deleted it yet.

use std::collections::{HashMap, HashSet};

use crate::keyspace::Keyspace;

/// One watched key of one client.
#[derive(Clone, Debug)]
pub(crate) struct Watched {
    pub(crate) db: usize,
    pub(crate) key: Box<[u8]>,
    /// The key existed but had expired when `WATCH` ran.
    pub(crate) expired: bool,
}

/// Watched keys and dirty clients.
#[derive(Clone, Debug, Default)]
pub struct Watches {
    /// db -> key -> clients watching it (nested so a write looks its key up without
    /// allocating).
    pub(crate) by_key: HashMap<usize, HashMap<Box<[u8]>, HashSet<u64>>>,
    /// client -> its watched keys.
    pub(crate) by_client: HashMap<u64, Vec<Watched>>,
    pub(crate) dirty: HashSet<u64>,
}

impl Watches {
    /// A key changed and still exists: every client watching it is dirty.
    pub fn touch(&mut self, db: usize, key: &[u8]) {
        self.touch_key(db, key, true);
    }

    /// A key changed; `exists`: whether it exists after the change. A client that watched it
    /// while it was already expired is not dirtied by its deletion (Redis's rule).
    pub fn touch_key(&mut self, db: usize, key: &[u8], exists: bool) {
        if self.by_key.is_empty() {
            return;
        }
        let Some(clients) = self.by_key.get(&db).and_then(|m| m.get(key)) else {
            return;
        };
        for &id in clients {
            let Some(list) = self.by_client.get_mut(&id) else {
                continue;
            };
            let Some(w) = list.iter_mut().find(|w| w.db == db && *w.key == *key) else {
                continue;
            };
            if w.expired && !exists {
                w.expired = false;
                continue;
            }
            self.dirty.insert(id);
        }
    }

    /// Mark `client` dirty.
    pub(crate) fn mark_dirty(&mut self, client: u64) {
        self.dirty.insert(client);
    }

    /// Every (client, watched key) pair in database `db`.
    pub(crate) fn watchers_in_db(&self, db: usize) -> Vec<(u64, Box<[u8]>, bool)> {
        let mut out = Vec::new();
        for (&id, list) in &self.by_client {
            for w in list.iter().filter(|w| w.db == db) {
                out.push((id, w.key.clone(), w.expired));
            }
        }
        out
    }

    pub(crate) fn set_expired_flag(&mut self, client: u64, db: usize, key: &[u8], v: bool) {
        if let Some(list) = self.by_client.get_mut(&client) {
            if let Some(w) = list.iter_mut().find(|w| w.db == db && *w.key == *key) {
                w.expired = v;
            }
        }
    }
}

impl Keyspace {
    /// `WATCH key` for `client_id` in database `db` (a key already watched is left as is).
    pub fn watch(&mut self, client_id: u64, db: usize, key: &[u8], now_ms: u64) {
        if db >= self.dbs.len() {
            return;
        }
        let list = self.watches.by_client.entry(client_id).or_default();
        if list.iter().any(|w| w.db == db && *w.key == *key) {
            return;
        }
        let expired = self.dbs[db]
            .map
            .get(key)
            .is_some_and(|e| e.is_expired(now_ms));
        list.push(Watched {
            db,
            key: key.into(),
            expired,
        });
        self.watches
            .by_key
            .entry(db)
            .or_default()
            .entry(key.into())
            .or_default()
            .insert(client_id);
    }

    /// `UNWATCH` (also after `EXEC`, `DISCARD`, `RESET` and on disconnect): forget the client's
    /// watched keys and its dirty mark.
    pub fn unwatch(&mut self, client_id: u64) {
        self.watches.dirty.remove(&client_id);
        let Some(list) = self.watches.by_client.remove(&client_id) else {
            return;
        };
        for w in list {
            let Some(keys) = self.watches.by_key.get_mut(&w.db) else {
                continue;
            };
            if let Some(set) = keys.get_mut(&w.key) {
                set.remove(&client_id);
                if set.is_empty() {
                    keys.remove(&w.key);
                }
            }
            if keys.is_empty() {
                self.watches.by_key.remove(&w.db);
            }
        }
    }

    /// Whether `client_id`'s `EXEC` may run: no watched key changed, and none that was live at
    /// `WATCH` time has expired since. Clears the client's watches either way.
    pub fn exec_allowed(&mut self, client_id: u64, now_ms: u64) -> bool {
        let mut ok = !self.watches.dirty.contains(&client_id);
        if ok {
            if let Some(list) = self.watches.by_client.get(&client_id) {
                ok = !list.iter().any(|w| {
                    !w.expired
                        && self.dbs[w.db]
                            .map
                            .get(&w.key)
                            .is_some_and(|e| e.is_expired(now_ms))
                });
            }
        }
        self.unwatch(client_id);
        ok
    }

    /// Database `emptied` is being emptied (`FLUSHDB`/`FLUSHALL`) or replaced by
    /// `replaced_with` (`SWAPDB`): dirty the clients whose watched key this changes, as
    /// Redis's `touchAllWatchedKeysInDb`. Call before the change.
    pub(crate) fn touch_all_watched_in_db(
        &mut self,
        emptied: usize,
        replaced_with: Option<usize>,
        now_ms: u64,
    ) {
        if self.watches.by_client.is_empty() {
            return;
        }
        for (id, key, expired) in self.watches.watchers_in_db(emptied) {
            let in_emptied = self.dbs[emptied].map.contains_key(&key);
            let repl = replaced_with.and_then(|r| self.dbs[r].map.get(&key));
            if !(in_emptied || repl.is_some()) {
                continue;
            }
            let repl_expired = repl.is_some_and(|e| e.is_expired(now_ms));
            if expired {
                if repl.is_none() {
                    self.watches.set_expired_flag(id, emptied, &key, false);
                    continue;
                } else if repl_expired {
                    continue;
                }
            } else if !in_emptied && repl_expired {
                self.watches.set_expired_flag(id, emptied, &key, true);
                continue;
            }
            self.watches.mark_dirty(id);
        }
    }
}
