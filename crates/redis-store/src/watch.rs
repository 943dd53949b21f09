//! `WATCH` bookkeeping: which clients watch which keys, and which of them saw a watched key
//! change (their `EXEC` must fail).

use std::collections::{HashMap, HashSet};

/// Watched keys and dirty clients.
#[derive(Clone, Debug, Default)]
pub struct Watches {
    /// (db, key) -> clients watching it.
    pub(crate) by_key: HashMap<(usize, Box<[u8]>), HashSet<u64>>,
    /// client -> (db, key, expired when watched).
    pub(crate) by_client: HashMap<u64, Vec<(usize, Box<[u8]>, bool)>>,
    pub(crate) dirty: HashSet<u64>,
}

impl Watches {
    /// A key changed: every client watching it is dirty.
    pub fn touch(&mut self, db: usize, key: &[u8]) {
        if self.by_key.is_empty() {
            return;
        }
        if let Some(clients) = self.by_key.get(&(db, Box::<[u8]>::from(key))) {
            self.dirty.extend(clients.iter().copied());
        }
    }
}
