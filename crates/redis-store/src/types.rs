//! The collection types, each keeping its accounted size so that [`crate::db::Value::mem`] is
//! O(1). Every mutation goes through their methods so the count stays right.

use std::collections::VecDeque;

use indexmap::{IndexMap, IndexSet};

use crate::db::Hasher;

/// Bytes counted per collection element on top of its payload.
pub const ELEM_OVERHEAD: usize = 24;

/// A list.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct List {
    pub(crate) items: VecDeque<Box<[u8]>>,
    pub(crate) bytes: usize,
}

impl List {
    pub fn mem(&self) -> usize {
        self.bytes + 32
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A hash: insertion-ordered like redis-server's small (listpack) hashes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Hash {
    pub(crate) map: IndexMap<Box<[u8]>, Box<[u8]>, Hasher>,
    pub(crate) bytes: usize,
}

impl Hash {
    pub fn mem(&self) -> usize {
        self.bytes + 48
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A set.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Set {
    pub(crate) set: IndexSet<Box<[u8]>, Hasher>,
    pub(crate) bytes: usize,
}

impl Set {
    pub fn mem(&self) -> usize {
        self.bytes + 48
    }
    pub fn len(&self) -> usize {
        self.set.len()
    }
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}
