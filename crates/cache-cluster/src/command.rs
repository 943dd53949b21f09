//! The replicated log's payload: owned, serialisable write commands, their outcomes, and the one
//! deterministic function that applies a command to a [`Store`].
//!
//! Every mutation that `cache_server::Ctx`'s item methods perform has a [`Command`] variant,
//! including reads that mutate (`gat`/`touch`-style gets, meta `N`/`R` win tokens). Expiry times
//! in commands are already **absolute** (the node that accepted the request resolved the client's
//! `exptime` once), and the log entry carries the leader's `now`, so [`apply`] gives the same
//! result on every replica. This module must never look at a clock.

use std::sync::Arc;

use bincode::Options;
use cache_store::{
    ArithOutcome, ArithReq, DeleteOpts, DeleteOutcome, Expiry, GetOpts, ItemRef, MetaInfo,
    MetaOrder, Store, StoreMode, StoreOutcome, StoreReq,
};
use serde::{Deserialize, Serialize};

/// Keys and values as one byte string (serde's default for `Vec<u8>` is a sequence, which
/// bincode encodes in the same format but one element call at a time: slow for values), owned
/// (`Vec<u8>`) or borrowed from the buffer being decoded (`&[u8]`, see [`CommandView`]).
pub mod raw {
    use serde::{de, Deserializer, Serializer};

    /// A byte string type a command can hold.
    pub trait Wire<'de>: Sized {
        /// From bytes that live as long as the input.
        fn borrowed(v: &'de [u8]) -> Self;
        /// From bytes the decoder owns or is about to drop (`None`: this type can only borrow).
        fn copied(v: &[u8]) -> Option<Self>;
    }

    impl<'de> Wire<'de> for Vec<u8> {
        fn borrowed(v: &'de [u8]) -> Self {
            v.to_vec()
        }
        fn copied(v: &[u8]) -> Option<Self> {
            Some(v.to_vec())
        }
    }

    impl<'de: 'a, 'a> Wire<'de> for &'a [u8] {
        fn borrowed(v: &'de [u8]) -> Self {
            v
        }
        fn copied(_: &[u8]) -> Option<Self> {
            None
        }
    }

    pub fn serialize<S: Serializer, B: AsRef<[u8]>>(v: &B, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v.as_ref())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, B: Wire<'de>>(d: D) -> Result<B, D::Error> {
        struct V<B>(std::marker::PhantomData<B>);
        impl<'de, B: Wire<'de>> de::Visitor<'de> for V<B> {
            type Value = B;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<B, E> {
                Ok(B::borrowed(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<B, E> {
                B::copied(v).ok_or_else(|| E::custom("bytes not borrowed from the input"))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<B, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                B::copied(&out)
                    .ok_or_else(|| de::Error::custom("bytes not borrowed from the input"))
            }
        }
        d.deserialize_bytes(V(std::marker::PhantomData))
    }
}

/// One write, as replicated through the log.
pub type Command = Cmd<Vec<u8>>;

/// A command whose keys and values borrow from the buffer it was decoded from (the commands of a
/// [`Command::Packed`] entry are applied so, without copying them out).
pub type CommandView<'a> = Cmd<&'a [u8]>;

/// A command, generic over how it holds its byte strings ([`Command`], [`CommandView`]); both
/// have the same encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "B: AsRef<[u8]>", deserialize = "B: raw::Wire<'de>"))]
pub enum Cmd<B> {
    /// set/add/replace/append/prepend/cas and meta `ms`.
    Store {
        mode: StoreMode,
        #[serde(with = "raw")]
        key: B,
        #[serde(with = "raw")]
        value: B,
        flags: u32,
        expires_at: Expiry,
        compare_cas: Option<u64>,
        invalidate: bool,
        new_cas: Option<u64>,
        vivify: Option<Expiry>,
    },
    /// Remove a key outright (oversized set).
    Remove {
        #[serde(with = "raw")]
        key: B,
    },
    /// delete / meta `md`.
    Delete {
        #[serde(with = "raw")]
        key: B,
        compare_cas: Option<u64>,
        invalidate: bool,
        touch: Option<Expiry>,
        remove_value_only: bool,
        new_cas: Option<u64>,
    },
    /// incr/decr / meta `ma`.
    Arith {
        #[serde(with = "raw")]
        key: B,
        incr: bool,
        delta: u64,
        compare_cas: Option<u64>,
        vivify: Option<(u64, Expiry)>,
        touch: Option<Expiry>,
        new_cas: Option<u64>,
        /// Meta `ma`: the order of its `T`/`N` flags ([`MetaOrder::touch_after_vivify`]);
        /// `None` for text/binary incr/decr (the store's default order for them).
        touch_after_vivify: Option<bool>,
        /// The item is still referenced by a reply the connection has not written yet (see
        /// [`Store::arith_meta`]): decided by the accepting node, replicated with the command.
        referenced: bool,
    },
    /// touch.
    Touch {
        #[serde(with = "raw")]
        key: B,
        expires_at: Expiry,
    },
    /// flush_all `[delay]`.
    FlushAll { delay: u64 },
    /// A read that changes state (gat/gats/touch-by-get, meta `T`/`N`/`R`): applied through the log
    /// so every replica makes the same change; the item is copied out for the reply.
    GetMut {
        #[serde(with = "raw")]
        key: B,
        touch: Option<Expiry>,
        no_lru_bump: bool,
        vivify: Option<Expiry>,
        recache_below: Option<u64>,
        /// Meta `mg`: the order of its `T`/`N`/`R` flags (applied with [`Store::get_meta`]);
        /// `None` for text/binary reads ([`Store::get`]).
        order: Option<(bool, bool)>,
    },
    /// Background expiry, decided by the leader so that replicas reclaim the same items at the
    /// same point of the history (memory accounting, hence eviction, stays identical).
    Expire { first_shard: u32, count: u32 },
    /// Does nothing (used to probe the write path).
    Noop,
    /// A Redis command, transaction, `WATCH`/`UNWATCH` or `PUBLISH` ([`crate::redis`]); `args`
    /// holds its argument vectors ([`crate::redis::pack_argvs`]).
    Redis {
        op: crate::redis::RedisOp,
        #[serde(with = "raw")]
        args: B,
    },
    /// Several writes in one log entry (group commit: the writes a node queued while its
    /// previous round was in flight), applied in order; the outcome is [`Outcome::Batch`] with
    /// one outcome per command, in order.
    Batch(Vec<Cmd<B>>),
    /// A batch in its encoded form ([`Command::pack`]): the commands are applied as views into
    /// these bytes, so a replica that decodes the entry copies no key or value out of it, and
    /// the leader encodes the commands once, not once per follower. Outcome as for `Batch`.
    Packed(#[serde(with = "raw")] B),
}

impl<B: AsRef<[u8]>> Cmd<B> {
    /// The key a single-key command works on.
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Cmd::Store { key, .. }
            | Cmd::Remove { key }
            | Cmd::Delete { key, .. }
            | Cmd::Arith { key, .. }
            | Cmd::Touch { key, .. }
            | Cmd::GetMut { key, .. } => Some(key.as_ref()),
            Cmd::Batch(_)
            | Cmd::Packed(_)
            | Cmd::FlushAll { .. }
            | Cmd::Expire { .. }
            | Cmd::Redis { .. }
            | Cmd::Noop => None,
        }
    }

    /// Key and value bytes the command carries (a packed batch: its encoding).
    pub fn payload_bytes(&self) -> usize {
        match self {
            Cmd::Store { key, value, .. } => key.as_ref().len() + value.as_ref().len(),
            Cmd::Remove { key }
            | Cmd::Delete { key, .. }
            | Cmd::Arith { key, .. }
            | Cmd::Touch { key, .. }
            | Cmd::GetMut { key, .. } => key.as_ref().len(),
            Cmd::Batch(cmds) => cmds.iter().map(|c| c.payload_bytes() + 16).sum(),
            Cmd::Packed(bytes) | Cmd::Redis { args: bytes, .. } => bytes.as_ref().len(),
            Cmd::FlushAll { .. } | Cmd::Expire { .. } | Cmd::Noop => 0,
        }
    }

    /// The same command owning its byte strings (through their shared encoding; for tests and
    /// tools).
    pub fn to_owned_command(&self) -> Result<Command, bincode::Error> {
        packing().deserialize(&packing().serialize(self)?)
    }
}

impl Command {
    /// Whether a `get` with these options must go through the log (it changes the item).
    pub fn get_mutates(opts: &GetOpts) -> bool {
        opts.touch.is_some() || opts.vivify.is_some() || opts.recache_below.is_some()
    }

    /// The command for a `get` with mutating options; `order` for a meta get.
    pub fn get_mut(key: &[u8], opts: &GetOpts, order: Option<MetaOrder>) -> Command {
        Command::GetMut {
            key: key.to_vec(),
            touch: opts.touch,
            no_lru_bump: opts.no_lru_bump,
            vivify: opts.vivify,
            recache_below: opts.recache_below,
            order: order.map(|o| (o.touch_after_vivify, o.recache_after_touch)),
        }
    }

    /// Approximate heap memory the command holds in the log: its keys and values plus, per
    /// command, the enum itself and the allocator's share of its key and value blocks.
    pub fn mem_bytes(&self) -> usize {
        const PER_COMMAND: usize = std::mem::size_of::<Command>() + 32;
        match self {
            Command::Batch(cmds) => cmds.iter().map(|c| c.mem_bytes()).sum::<usize>() + 32,
            c => c.payload_bytes() + PER_COMMAND,
        }
    }

    /// A batch as one [`Cmd::Packed`] entry (its commands encoded once; applied as views).
    pub fn pack(cmds: &[Command]) -> Command {
        let mut p = Packer::default();
        for c in cmds {
            p.push(c);
        }
        p.finish()
    }
}

/// Constructors, for owned commands ([`Command`]) and for views borrowing the request
/// ([`CommandView`], what a connection packs: [`Packer`]).
impl<B> Cmd<B> {
    pub fn from_store<'a>(req: &StoreReq<'a>) -> Self
    where
        B: From<&'a [u8]>,
    {
        Cmd::Store {
            mode: req.mode,
            key: B::from(req.key),
            value: B::from(req.value),
            flags: req.flags,
            expires_at: req.expires_at,
            compare_cas: req.compare_cas,
            invalidate: req.invalidate,
            new_cas: req.new_cas,
            vivify: req.vivify,
        }
    }

    pub fn from_delete<'a>(key: &'a [u8], o: &DeleteOpts) -> Self
    where
        B: From<&'a [u8]>,
    {
        Cmd::Delete {
            key: B::from(key),
            compare_cas: o.compare_cas,
            invalidate: o.invalidate,
            touch: o.touch,
            remove_value_only: o.remove_value_only,
            new_cas: o.new_cas,
        }
    }

    /// incr/decr/`ma`; `order` for a meta `ma` (else the store's default order for incr/decr).
    pub fn from_arith<'a>(req: &ArithReq<'a>, order: Option<MetaOrder>, referenced: bool) -> Self
    where
        B: From<&'a [u8]>,
    {
        Cmd::Arith {
            key: B::from(req.key),
            incr: req.incr,
            delta: req.delta,
            compare_cas: req.compare_cas,
            vivify: req.vivify,
            touch: req.touch,
            new_cas: req.new_cas,
            touch_after_vivify: order.map(|o| o.touch_after_vivify),
            referenced,
        }
    }
}

/// Builds a [`Cmd::Packed`] entry one command at a time: a connection encodes its run of
/// writes where it parses them (from views of its input, so no key or value is copied into a
/// command of its own), and the proposer concatenates the runs of a round.
#[derive(Debug, Default)]
pub struct Packer {
    body: Vec<u8>,
    count: u64,
}

impl Packer {
    pub fn push<B: AsRef<[u8]>>(&mut self, cmd: &Cmd<B>) {
        let at = self.body.len();
        if packing().serialize_into(&mut self.body, cmd).is_err() {
            // Unreachable (encoding plain data into memory cannot fail); keep one entry per
            // command all the same, so outcomes stay aligned with their requests.
            self.body.truncate(at);
            let _ = packing().serialize_into(&mut self.body, &Command::Noop);
        }
        self.count += 1;
    }

    /// Move `other`'s commands to the end of this one.
    pub fn append(&mut self, other: Packer) {
        if self.body.is_empty() {
            self.body = other.body;
        } else {
            self.body.extend_from_slice(&other.body);
        }
        self.count += other.count;
    }

    /// Commands so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded bytes so far.
    pub fn bytes(&self) -> usize {
        self.body.len()
    }

    /// The entry: the encoding of the sequence of commands (count, then each command).
    pub fn finish(self) -> Command {
        let mut out = packing().serialize(&self.count).unwrap_or_default();
        out.extend_from_slice(&self.body);
        Command::Packed(out)
    }
}

/// A log entry's application data: the command and the leader's clock when it was proposed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Unix seconds chosen by the leader. Apply uses `max(now, previous entry's now)`, so time
    /// never runs backwards on a replica, even across leader changes with skewed clocks.
    pub now: u64,
    /// Unix milliseconds chosen by the leader, for the Redis keyspace (its expiry has
    /// millisecond resolution); made monotonic the same way.
    pub now_ms: u64,
    /// Shared, not copied: openraft clones entries to replicate and to apply them (an `Arc`
    /// serializes as the command itself, so the wire format is unchanged).
    pub cmd: Arc<Command>,
}

/// An item copied out of the store (for replies to mutating reads).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCopy {
    #[serde(with = "raw")]
    pub key: Vec<u8>,
    #[serde(with = "raw")]
    pub value: Vec<u8>,
    pub flags: u32,
    pub cas: u64,
    pub expires_at: Expiry,
    pub last_access: u64,
    pub fetched_before: bool,
    pub stale: bool,
    pub win: bool,
    pub win_already_sent: bool,
    /// Meta gets: what the store reported besides the item ([`MetaInfo`]).
    pub created: bool,
    pub prior_expires_at: Expiry,
}

impl ItemCopy {
    /// The item and what a meta get reported about it.
    pub fn of_meta(it: &ItemRef<'_>, info: MetaInfo) -> ItemCopy {
        ItemCopy {
            created: info.created,
            prior_expires_at: info.prior_expires_at,
            ..ItemCopy::of(it)
        }
    }

    /// What a meta get reported besides the item.
    pub fn info(&self) -> MetaInfo {
        MetaInfo {
            created: self.created,
            prior_expires_at: self.prior_expires_at,
        }
    }

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
            created: false,
            prior_expires_at: it.expires_at,
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
    Stored {
        cas: u64,
    },
    NotStored,
    Exists,
    NotFound,
    TooLarge,
    OutOfMemory,
    Deleted,
    /// `created`/`prior_expires_at`: see [`MetaInfo`].
    Arith {
        value: u64,
        cas: u64,
        expires_at: Expiry,
        created: bool,
        prior_expires_at: Expiry,
    },
    NonNumeric,
    Touched(bool),
    Item(Option<ItemCopy>),
    Expired(u64),
    /// The outcomes of a [`Command::Batch`], in order.
    Batch(Vec<Outcome>),
    /// A Redis command's reply, encoded in the client's protocol version.
    Redis(crate::redis::RedisOutcome),
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

    pub fn to_arith(&self) -> (ArithOutcome, MetaInfo) {
        match *self {
            Outcome::Arith {
                value,
                cas,
                expires_at,
                created,
                prior_expires_at,
            } => (
                ArithOutcome::Ok {
                    value,
                    cas,
                    expires_at,
                },
                MetaInfo {
                    created,
                    prior_expires_at,
                },
            ),
            Outcome::NotFound => (ArithOutcome::NotFound, MetaInfo::default()),
            Outcome::NonNumeric => (ArithOutcome::NonNumeric, MetaInfo::default()),
            Outcome::Exists => (ArithOutcome::Exists, MetaInfo::default()),
            _ => (ArithOutcome::OutOfMemory, MetaInfo::default()),
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

/// How many commands of a batch the apply hints at once ([`Store::prefetch`]).
const PREFETCH_CHUNK: usize = 16;

/// Apply one command at time `now`. Deterministic: the same (store state, command, now) always
/// gives the same new state and outcome. (Without a Redis keyspace: Redis commands are
/// refused; see [`apply_with`].)
pub fn apply<B: AsRef<[u8]>>(store: &Store, cmd: &Cmd<B>, now: u64) -> Outcome {
    apply_with(store, None, cmd, now, now.saturating_mul(1000))
}

/// [`apply`] with the replica's Redis keyspace (if the node serves Redis) and the entry's
/// millisecond clock. Deterministic in the same way, for both stores.
pub fn apply_with<B: AsRef<[u8]>>(
    store: &Store,
    redis: Option<&crate::redis::RedisReplica>,
    cmd: &Cmd<B>,
    now: u64,
    now_ms: u64,
) -> Outcome {
    match cmd {
        Cmd::Store {
            mode,
            key,
            value,
            flags,
            expires_at,
            compare_cas,
            invalidate,
            new_cas,
            vivify,
        } => {
            let req = StoreReq {
                mode: *mode,
                key: key.as_ref(),
                value: value.as_ref(),
                flags: *flags,
                expires_at: *expires_at,
                compare_cas: *compare_cas,
                invalidate: *invalidate,
                new_cas: *new_cas,
                vivify: *vivify,
            };
            from_store(store.store(&req, now))
        }
        Cmd::Remove { key } => {
            store.remove(key.as_ref(), now);
            Outcome::Done
        }
        Cmd::Delete {
            key,
            compare_cas,
            invalidate,
            touch,
            remove_value_only,
            new_cas,
        } => {
            let opts = DeleteOpts {
                compare_cas: *compare_cas,
                invalidate: *invalidate,
                touch: *touch,
                remove_value_only: *remove_value_only,
                new_cas: *new_cas,
            };
            match store.delete(key.as_ref(), opts, now) {
                DeleteOutcome::Deleted => Outcome::Deleted,
                DeleteOutcome::NotFound => Outcome::NotFound,
                DeleteOutcome::Exists => Outcome::Exists,
            }
        }
        Cmd::Arith {
            key,
            incr,
            delta,
            compare_cas,
            vivify,
            touch,
            new_cas,
            touch_after_vivify,
            referenced,
        } => {
            let req = ArithReq {
                key: key.as_ref(),
                incr: *incr,
                delta: *delta,
                compare_cas: *compare_cas,
                vivify: *vivify,
                touch: *touch,
                new_cas: *new_cas,
            };
            // `Store::arith`'s order for incr/decr, the request's for `ma`.
            let order = MetaOrder {
                touch_after_vivify: touch_after_vivify.unwrap_or(true),
                recache_after_touch: false,
            };
            match store.arith_meta(&req, order, *referenced, now) {
                (
                    ArithOutcome::Ok {
                        value,
                        cas,
                        expires_at,
                    },
                    info,
                ) => Outcome::Arith {
                    value,
                    cas,
                    expires_at,
                    created: info.created,
                    prior_expires_at: info.prior_expires_at,
                },
                (o, _) => match o {
                    ArithOutcome::NotFound => Outcome::NotFound,
                    ArithOutcome::NonNumeric => Outcome::NonNumeric,
                    ArithOutcome::Exists => Outcome::Exists,
                    ArithOutcome::OutOfMemory | ArithOutcome::Ok { .. } => Outcome::OutOfMemory,
                },
            }
        }
        Cmd::Touch { key, expires_at } => {
            Outcome::Touched(store.touch(key.as_ref(), *expires_at, now))
        }
        Cmd::FlushAll { delay } => {
            store.flush_all(*delay, now);
            Outcome::Done
        }
        Cmd::GetMut {
            key,
            touch,
            no_lru_bump,
            vivify,
            recache_below,
            order,
        } => {
            let opts = GetOpts {
                touch: *touch,
                no_lru_bump: *no_lru_bump,
                vivify: *vivify,
                recache_below: *recache_below,
            };
            Outcome::Item(match order {
                None => store.get(key.as_ref(), now, opts, |it| ItemCopy::of(&it)),
                Some((touch_after_vivify, recache_after_touch)) => {
                    let order = MetaOrder {
                        touch_after_vivify: *touch_after_vivify,
                        recache_after_touch: *recache_after_touch,
                    };
                    store.get_meta(key.as_ref(), now, opts, order, |it, info| {
                        ItemCopy::of_meta(&it, info)
                    })
                }
            })
        }
        Cmd::Expire { first_shard, count } => {
            let shards = store.config().shards.max(1);
            let mut n = 0u64;
            for i in 0..(*count as usize).min(shards) {
                n += store.expire_shard((*first_shard as usize + i) % shards, now) as u64;
            }
            // The same periodic entry runs the Redis keyspace's active expiry, at the entry's
            // time on every replica.
            if let Some(r) = redis {
                n += r.active_expire(now_ms) as u64;
            }
            Outcome::Expired(n)
        }
        Cmd::Noop => Outcome::Done,
        Cmd::Redis { op, args } => match redis {
            Some(r) => r.apply(op, args.as_ref(), now_ms),
            None => Outcome::Redis(crate::redis::RedisOutcome::error(
                "ERR this node does not serve Redis",
            )),
        },
        Cmd::Batch(cmds) => apply_batch(store, redis, cmds, now, now_ms),
        // Views into the entry's bytes: nothing is copied out. Not decodable (never for an
        // entry a leader packed): no command applied, the same on every replica.
        Cmd::Packed(bytes) => match unpack(bytes.as_ref()) {
            Ok(views) => apply_batch(store, redis, &views, now, now_ms),
            Err(_) => Outcome::Done,
        },
    }
}

/// Apply a batch's commands in order, one outcome each.
fn apply_batch<B: AsRef<[u8]>>(
    store: &Store,
    redis: Option<&crate::redis::RedisReplica>,
    cmds: &[Cmd<B>],
    now: u64,
    now_ms: u64,
) -> Outcome {
    // Overlap the store's memory misses: per chunk, hint every command's table slot, then
    // (landed by then) every item, then apply them. Hinting before any store work keeps the
    // hints' lock operations off the stores still in flight.
    let mut outs = Vec::with_capacity(cmds.len());
    for chunk in cmds.chunks(PREFETCH_CHUNK) {
        for stage in 0..2 {
            for k in chunk.iter().filter_map(Cmd::key) {
                store.prefetch(k, stage);
            }
        }
        outs.extend(
            chunk
                .iter()
                .map(|c| apply_with(store, redis, c, now, now_ms)),
        );
    }
    Outcome::Batch(outs)
}

/// How packed batches are encoded (bincode's defaults, as the transport's frames).
fn packing() -> impl bincode::Options {
    bincode::DefaultOptions::new()
}

/// The commands of a [`Cmd::Packed`] entry, borrowing their keys and values from `bytes`.
pub fn unpack(bytes: &[u8]) -> Result<Vec<CommandView<'_>>, bincode::Error> {
    packing().with_limit(bytes.len() as u64).deserialize(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys and values travel as byte strings: same bytes as serde's default sequence encoding
    /// (so mixed versions still understand each other), and a batch round-trips.
    #[test]
    fn commands_round_trip_and_keep_the_wire_format() {
        #[derive(Serialize)]
        struct Plain {
            key: Vec<u8>,
        }
        let key = b"some key".to_vec();
        let raw = bincode::serialize(&Command::Remove { key: key.clone() }).unwrap();
        let plain = bincode::serialize(&Plain { key }).unwrap();
        assert_eq!(
            &raw[4..],
            &plain[..],
            "variant tag, then the key as a length-prefixed byte string"
        );
        let batch = Command::Batch(vec![
            Command::from_store(&StoreReq {
                mode: StoreMode::Set,
                key: b"k",
                value: &[0, 1, 2, 255],
                flags: 7,
                expires_at: 9,
                compare_cas: Some(3),
                invalidate: false,
                new_cas: None,
                vivify: None,
            }),
            Command::Touch {
                key: b"t".to_vec(),
                expires_at: 5,
            },
            Command::Noop,
        ]);
        let bytes = bincode::serialize(&batch).unwrap();
        assert_eq!(bincode::deserialize::<Command>(&bytes).unwrap(), batch);
    }

    #[test]
    fn batch_applies_in_order_with_one_outcome_each() {
        let store = Store::new(cache_store::StoreConfig {
            mem_limit: 1 << 20,
            item_size_max: 1 << 16,
            shards: 4,
            reads_mutate: false,
        });
        let set = |v: &'static [u8]| Command::from_store(&StoreReq::set(b"k", v));
        let incr = Command::from_arith(
            &ArithReq {
                key: b"k",
                incr: true,
                delta: 2,
                compare_cas: None,
                vivify: None,
                touch: None,
                new_cas: None,
            },
            None,
            false,
        );
        let out = apply(
            &store,
            &Command::Batch(vec![set(b"1"), incr.clone(), set(b"x"), incr]),
            100,
        );
        let Outcome::Batch(outs) = out else {
            panic!("{out:?}")
        };
        assert_eq!(outs.len(), 4);
        assert!(
            matches!(outs[1], Outcome::Arith { value: 3, .. }),
            "{outs:?}"
        );
        assert_eq!(outs[3], Outcome::NonNumeric);
    }

    /// A packed batch unpacks to views of the same commands (every variant), applies exactly
    /// like the plain batch (outcomes and the store's whole image), and bytes that are not a
    /// packing apply nothing.
    #[test]
    fn packed_batch_is_the_batch() {
        let new_store = || {
            Store::new(cache_store::StoreConfig {
                mem_limit: 1 << 20,
                item_size_max: 1 << 16,
                shards: 4,
                reads_mutate: false,
            })
        };
        let mut cmds = vec![
            Command::from_store(&StoreReq::set(b"k", b"1")),
            Command::from_arith(
                &ArithReq {
                    key: b"k",
                    incr: true,
                    delta: 2,
                    compare_cas: None,
                    vivify: None,
                    touch: None,
                    new_cas: None,
                },
                Some(MetaOrder {
                    touch_after_vivify: false,
                    recache_after_touch: false,
                }),
                true,
            ),
            Command::from_store(&StoreReq {
                mode: StoreMode::Append,
                ..StoreReq::set(b"k", b"zz")
            }),
            Command::from_delete(b"gone", &DeleteOpts::default()),
            Command::Touch {
                key: b"k".to_vec(),
                expires_at: 500,
            },
            Command::get_mut(
                b"k",
                &GetOpts {
                    touch: Some(600),
                    ..GetOpts::default()
                },
                None,
            ),
            Command::Remove {
                key: b"other".to_vec(),
            },
            Command::Expire {
                first_shard: 0,
                count: 4,
            },
            Command::FlushAll { delay: 0 },
            Command::from_store(&StoreReq::set(b"after", b"v")),
            Command::Noop,
        ];
        cmds.push(Command::Batch(cmds[..2].to_vec()));
        let Command::Packed(bytes) = Command::pack(&cmds) else {
            panic!("not packed")
        };
        // The same bytes as encoding the sequence in one go.
        assert_eq!(bytes, packing().serialize(&cmds).unwrap());
        let views = unpack(&bytes).unwrap();
        assert_eq!(
            views
                .iter()
                .map(|v| v.to_owned_command().unwrap())
                .collect::<Vec<_>>(),
            cmds
        );
        let (plain, packed) = (new_store(), new_store());
        let a = apply(&plain, &Command::Batch(cmds.clone()), 100);
        let b = apply(&packed, &Command::Packed(bytes.clone()), 100);
        assert_eq!(a, b);
        let Outcome::Batch(outs) = &b else {
            panic!("{b:?}")
        };
        assert_eq!(outs.len(), cmds.len());
        assert_eq!(plain.export(), packed.export());
        assert_eq!(
            apply(
                &new_store(),
                &Command::Packed(bytes[..bytes.len() - 1].to_vec()),
                100
            ),
            Outcome::Done
        );
    }
}
