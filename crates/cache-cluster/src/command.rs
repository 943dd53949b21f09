//! The replicated log's payload: owned, serialisable write commands, their outcomes, and the one
//! deterministic function that applies a command to a [`Store`].
//!
//! Every mutation that [`cache_server::Ctx`]'s item methods perform has a [`Command`] variant,
//! including reads that mutate (`gat`/`touch`-style gets, meta `N`/`R` win tokens). Expiry times
//! in commands are already **absolute** (the node that accepted the request resolved the client's
//! `exptime` once), and the log entry carries the leader's `now`, so [`apply`] gives the same
//! result on every replica. This module must never look at a clock.

use cache_store::{
    ArithOutcome, ArithReq, DeleteOpts, DeleteOutcome, Expiry, GetOpts, ItemRef, Store, StoreMode, StoreOutcome,
    StoreReq,
};
use serde::{Deserialize, Serialize};

/// One write, as replicated through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// set/add/replace/append/prepend/cas and meta `ms`.
    Store {
        mode: StoreMode,
        key: Vec<u8>,
        value: Vec<u8>,
        flags: u32,
        expires_at: Expiry,
        compare_cas: Option<u64>,
        invalidate: bool,
        new_cas: Option<u64>,
        vivify: Option<Expiry>,
    },
    /// Remove a key outright (oversized set).
    Remove { key: Vec<u8> },
    /// delete / meta `md`.
    Delete {
        key: Vec<u8>,
        compare_cas: Option<u64>,
        invalidate: bool,
        touch: Option<Expiry>,
        remove_value_only: bool,
        new_cas: Option<u64>,
    },
    /// incr/decr / meta `ma`.
    Arith {
        key: Vec<u8>,
        incr: bool,
        delta: u64,
        compare_cas: Option<u64>,
        vivify: Option<(u64, Expiry)>,
        touch: Option<Expiry>,
        new_cas: Option<u64>,
    },
    /// touch.
    Touch { key: Vec<u8>, expires_at: Expiry },
    /// flush_all [delay].
    FlushAll { delay: u64 },
    /// A read that changes state (gat/gats/touch-by-get, meta `T`/`N`/`R`): applied through the log
    /// so every replica makes the same change; the item is copied out for the reply.
    GetMut {
        key: Vec<u8>,
        touch: Option<Expiry>,
        no_lru_bump: bool,
        vivify: Option<Expiry>,
        recache_below: Option<u64>,
    },
    /// Background expiry, decided by the leader so that replicas reclaim the same items at the
    /// same point of the history (memory accounting, hence eviction, stays identical).
    Expire { first_shard: u32, count: u32 },
    /// Does nothing (used to probe the write path).
    Noop,
}

impl Command {
    /// Whether a `get` with these options must go through the log (it changes the item).
    pub fn get_mutates(opts: &GetOpts) -> bool {
        opts.touch.is_some() || opts.vivify.is_some() || opts.recache_below.is_some()
    }

    /// The command for a `get` with mutating options.
    pub fn get_mut(key: &[u8], opts: &GetOpts) -> Command {
        Command::GetMut {
            key: key.to_vec(),
            touch: opts.touch,
            no_lru_bump: opts.no_lru_bump,
            vivify: opts.vivify,
            recache_below: opts.recache_below,
        }
    }

    pub fn from_store(req: &StoreReq<'_>) -> Command {
        Command::Store {
            mode: req.mode,
            key: req.key.to_vec(),
            value: req.value.to_vec(),
            flags: req.flags,
            expires_at: req.expires_at,
            compare_cas: req.compare_cas,
            invalidate: req.invalidate,
            new_cas: req.new_cas,
            vivify: req.vivify,
        }
    }

    pub fn from_delete(key: &[u8], o: &DeleteOpts) -> Command {
        Command::Delete {
            key: key.to_vec(),
            compare_cas: o.compare_cas,
            invalidate: o.invalidate,
            touch: o.touch,
            remove_value_only: o.remove_value_only,
            new_cas: o.new_cas,
        }
    }

    pub fn from_arith(req: &ArithReq<'_>) -> Command {
        Command::Arith {
            key: req.key.to_vec(),
            incr: req.incr,
            delta: req.delta,
            compare_cas: req.compare_cas,
            vivify: req.vivify,
            touch: req.touch,
            new_cas: req.new_cas,
        }
    }
}

/// A log entry's application data: the command and the leader's clock when it was proposed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Unix seconds chosen by the leader. Apply uses `max(now, previous entry's now)`, so time
    /// never runs backwards on a replica, even across leader changes with skewed clocks.
    pub now: u64,
    pub cmd: Command,
}

/// An item copied out of the store (for replies to mutating reads).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCopy {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub flags: u32,
    pub cas: u64,
    pub expires_at: Expiry,
    pub last_access: u64,
    pub fetched_before: bool,
    pub stale: bool,
    pub win: bool,
    pub win_already_sent: bool,
}

impl ItemCopy {
    pub fn of(it: &ItemRef<'_>) -> ItemCopy {
        ItemCopy {
            key: it.key.to_vec(),
            value: it.value.to_vec(),
            flags: it.flags,
            cas: it.cas,
            expires_at: it.expires_at,
            last_access: it.last_access,
            fetched_before: it.fetched_before,
            stale: it.stale,
            win: it.win,
            win_already_sent: it.win_already_sent,
        }
    }

    /// A borrowed view, to hand to the executor's callback.
    pub fn as_ref(&self) -> ItemRef<'_> {
        ItemRef {
            key: &self.key,
            value: &self.value,
            flags: self.flags,
            cas: self.cas,
            expires_at: self.expires_at,
            last_access: self.last_access,
            fetched_before: self.fetched_before,
            stale: self.stale,
            win: self.win,
            win_already_sent: self.win_already_sent,
        }
    }
}

/// What applying a command produced (serialisable, so a forwarded write can carry it back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Outcome {
    Stored { cas: u64 },
    NotStored,
    Exists,
    NotFound,
    TooLarge,
    OutOfMemory,
    Deleted,
    Arith { value: u64, cas: u64, expires_at: Expiry },
    NonNumeric,
    Touched(bool),
    Item(Option<ItemCopy>),
    Expired(u64),
    /// Membership entries, blank entries, flush_all, remove, noop.
    #[default]
    Done,
}

impl Outcome {
    pub fn to_store(&self) -> StoreOutcome {
        match *self {
            Outcome::Stored { cas } => StoreOutcome::Stored { cas },
            Outcome::NotStored => StoreOutcome::NotStored,
            Outcome::Exists => StoreOutcome::Exists,
            Outcome::NotFound => StoreOutcome::NotFound,
            Outcome::TooLarge => StoreOutcome::TooLarge,
            _ => StoreOutcome::OutOfMemory,
        }
    }

    pub fn to_delete(&self) -> DeleteOutcome {
        match *self {
            Outcome::Deleted => DeleteOutcome::Deleted,
            Outcome::Exists => DeleteOutcome::Exists,
            _ => DeleteOutcome::NotFound,
        }
    }

    pub fn to_arith(&self) -> ArithOutcome {
        match *self {
            Outcome::Arith { value, cas, expires_at } => ArithOutcome::Ok { value, cas, expires_at },
            Outcome::NotFound => ArithOutcome::NotFound,
            Outcome::NonNumeric => ArithOutcome::NonNumeric,
            Outcome::Exists => ArithOutcome::Exists,
            _ => ArithOutcome::OutOfMemory,
        }
    }
}

fn from_store(o: StoreOutcome) -> Outcome {
    match o {
        StoreOutcome::Stored { cas } => Outcome::Stored { cas },
        StoreOutcome::NotStored => Outcome::NotStored,
        StoreOutcome::Exists => Outcome::Exists,
        StoreOutcome::NotFound => Outcome::NotFound,
        StoreOutcome::TooLarge => Outcome::TooLarge,
        StoreOutcome::OutOfMemory => Outcome::OutOfMemory,
    }
}

/// Apply one command at time `now`. Deterministic: the same (store state, command, now) always
/// gives the same new state and outcome.
pub fn apply(store: &Store, cmd: &Command, now: u64) -> Outcome {
    match cmd {
        Command::Store { mode, key, value, flags, expires_at, compare_cas, invalidate, new_cas, vivify } => {
            let req = StoreReq {
                mode: *mode,
                key,
                value,
                flags: *flags,
                expires_at: *expires_at,
                compare_cas: *compare_cas,
                invalidate: *invalidate,
                new_cas: *new_cas,
                vivify: *vivify,
            };
            from_store(store.store(&req, now))
        }
        Command::Remove { key } => {
            store.remove(key, now);
            Outcome::Done
        }
        Command::Delete { key, compare_cas, invalidate, touch, remove_value_only, new_cas } => {
            let opts = DeleteOpts {
                compare_cas: *compare_cas,
                invalidate: *invalidate,
                touch: *touch,
                remove_value_only: *remove_value_only,
                new_cas: *new_cas,
            };
            match store.delete(key, opts, now) {
                DeleteOutcome::Deleted => Outcome::Deleted,
                DeleteOutcome::NotFound => Outcome::NotFound,
                DeleteOutcome::Exists => Outcome::Exists,
            }
        }
        Command::Arith { key, incr, delta, compare_cas, vivify, touch, new_cas } => {
            let req = ArithReq {
                key,
                incr: *incr,
                delta: *delta,
                compare_cas: *compare_cas,
                vivify: *vivify,
                touch: *touch,
                new_cas: *new_cas,
            };
            match store.arith(&req, now) {
                ArithOutcome::Ok { value, cas, expires_at } => Outcome::Arith { value, cas, expires_at },
                ArithOutcome::NotFound => Outcome::NotFound,
                ArithOutcome::NonNumeric => Outcome::NonNumeric,
                ArithOutcome::Exists => Outcome::Exists,
                ArithOutcome::OutOfMemory => Outcome::OutOfMemory,
            }
        }
        Command::Touch { key, expires_at } => Outcome::Touched(store.touch(key, *expires_at, now)),
        Command::FlushAll { delay } => {
            store.flush_all(*delay, now);
            Outcome::Done
        }
        Command::GetMut { key, touch, no_lru_bump, vivify, recache_below } => {
            let opts = GetOpts { touch: *touch, no_lru_bump: *no_lru_bump, vivify: *vivify, recache_below: *recache_below };
            Outcome::Item(store.get(key, now, opts, |it| ItemCopy::of(&it)))
        }
        Command::Expire { first_shard, count } => {
            let shards = store.config().shards.max(1);
            let mut n = 0u64;
            for i in 0..(*count as usize).min(shards) {
                n += store.expire_shard((*first_shard as usize + i) % shards, now) as u64;
            }
            Outcome::Expired(n)
        }
        Command::Noop => Outcome::Done,
    }
}
