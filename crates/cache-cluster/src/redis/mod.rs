//! The Redis keyspace as part of the replicated state: every Redis write, transaction, `WATCH`,
//! `UNWATCH` and `PUBLISH` is a log entry ([`RedisOp`]) applied on every replica with the
//! entry's millisecond clock, so all replicas hold the same keyspace and decide the same
//! outcomes (an `INCR`'s value, which client's pop gets an element, whether an `EXEC` runs).
//!
//! What happens on the node that applies an entry, besides the keyspace change, is reported to
//! the server through [`RedisEvents`]: a `PUBLISH` is delivered to the node's own subscribers
//! (every node applies it, so every node's subscribers get it, in log order), and lists that
//! received elements wake the node's own clients blocked on them, which then pop through the
//! log: a pop is decided when its entry is applied, so an element goes to exactly one client.
//!
//! Replies are encoded here, in the protocol version of the client that sent the command, so a
//! follower that forwarded a write writes the leader's bytes to its client unchanged.
//!
//! List pops carry an id ([`RedisOp::Pop`]) and are applied at most once per id ([`pops`]), so a
//! node that lost track of a pop's outcome sends it again instead of losing its element.

pub mod pops;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use redis_proto::{Protocol, Reply};
use redis_store::{Client, Exec, Keyspace};
use serde::{Deserialize, Serialize};

use crate::command::Outcome;

/// What a Redis log entry does. `client` is a tier-wide client id (see
/// [`RedisReplica::global_client_id`]): `WATCH` state is kept per client in the replicated
/// keyspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedisOp {
    /// Run one data command (the entry's single argument vector) in database `db`. `noblock`:
    /// a blocking pop answers at once (null) instead of blocking; the node that sent it waits
    /// for the list to fill and sends the pop again.
    Run {
        client: u64,
        db: u32,
        resp3: bool,
        noblock: bool,
    },
    /// `EXEC` of a transaction (one argument vector per queued command), starting in database
    /// `db`: a null array if a key the client watched changed since its `WATCH`, else every
    /// command's reply, with nothing else in between.
    Exec { client: u64, db: u32, resp3: bool },
    /// `WATCH` the keys of the single argument vector in database `db`.
    Watch { client: u64, db: u32 },
    /// `UNWATCH` (also `DISCARD`, `RESET`, and a disconnect of a client that watched keys).
    Unwatch { client: u64 },
    /// `PUBLISH channel message` (the single argument vector): every node delivers it to its own
    /// subscribers when it applies the entry.
    Publish,
    /// A list pop (blocking or not), run like [`RedisOp::Run`] but at most once per `id` (see
    /// [`pops`]): a later entry with the same id answers the first one's reply and changes
    /// nothing. `block`: a blocking pop, answered at once (null, flagged `empty`) when the lists
    /// are empty.
    Pop {
        client: u64,
        db: u32,
        resp3: bool,
        block: bool,
        id: u64,
    },
}

/// The outcome of a Redis log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisOutcome {
    /// The reply, encoded in the client's protocol version (empty for `PUBLISH`).
    #[serde(with = "crate::command::raw")]
    pub reply: Vec<u8>,
    /// The client's database after the command (`SELECT` inside `EXEC`).
    pub db: u32,
    /// A non-blocking pop found nothing (the sender waits for the list and tries again).
    pub empty: bool,
}

impl RedisOutcome {
    /// An error reply (`text` starts with its code, as `ERR ...`).
    pub fn error(text: &str) -> RedisOutcome {
        RedisOutcome {
            reply: redis_proto::encode_to_vec(&Reply::error(text.to_string()), Protocol::Resp2),
            db: 0,
            empty: false,
        }
    }
}

/// A `PUBSUB` question asked of every node (each answers for its own subscribers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PubsubQuery {
    /// Channels with subscribers, matching the pattern if given.
    Channels(Option<Vec<u8>>),
    /// Subscribers of each channel.
    NumSub(Vec<Vec<u8>>),
    /// Patterns with subscribers.
    Patterns,
}

/// One node's answer to a [`PubsubQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PubsubAnswer {
    Channels(Vec<Vec<u8>>),
    NumSub(Vec<u64>),
    Patterns(Vec<Vec<u8>>),
}

/// What applying Redis entries makes happen on this node (implemented by the server).
pub trait RedisEvents: Send + Sync {
    /// Answer a `PUBSUB` question for this node's own subscribers.
    fn pubsub(&self, q: &PubsubQuery) -> PubsubAnswer;
    /// `PUBLISH channel message` was applied on this node: deliver it to local subscribers.
    /// Called in log order, outside the keyspace lock; must not block.
    fn published(&self, channel: &[u8], message: &[u8]);
    /// Lists (database, key) received elements in an entry applied on this node: wake local
    /// clients blocked on them. Called outside the keyspace lock; must not block.
    fn lists_ready(&self, keys: &[(usize, Box<[u8]>)]);
    /// The keyspace was replaced by a snapshot (pushes it contains were never applied here one
    /// by one): wake every local client blocked on a list, to look again.
    fn replaced(&self);
}

/// A node's replica of the Redis keyspace, and where its events go.
pub struct RedisReplica {
    ks: Arc<Mutex<Keyspace>>,
    /// Outcomes of recent pops by id (replicated state; locked after `ks`, with it).
    pops: Mutex<pops::Pops>,
    events: RwLock<Option<Arc<dyn RedisEvents>>>,
    /// The replicated clock in unix ms: the latest applied entry's time (monotonic).
    now_ms: AtomicU64,
}

/// How many keys the periodic expiry entry examines at most (about 10 entries a second).
const ACTIVE_EXPIRE_EFFORT: usize = 2000;

impl RedisReplica {
    /// A replica of an empty keyspace with `config` (reads never change it: `reads_mutate` is
    /// turned off, and every push is reported for local wake-ups).
    pub fn new(mut config: redis_store::Config) -> RedisReplica {
        config.reads_mutate = false;
        config.track_ready = true;
        RedisReplica {
            ks: Arc::new(Mutex::new(Keyspace::new(config))),
            pops: Mutex::new(pops::Pops::default()),
            events: RwLock::new(None),
            now_ms: AtomicU64::new(0),
        }
    }

    /// The keyspace (the server reads it after a read barrier, and reports on it).
    pub fn keyspace(&self) -> &Arc<Mutex<Keyspace>> {
        &self.ks
    }

    /// Where events go from now on.
    pub fn set_events(&self, events: Arc<dyn RedisEvents>) {
        *self.events.write() = Some(events);
    }

    /// The replicated clock: the time of the latest applied entry (unix ms). Reads use it, so
    /// `TTL` answers the same on every node and a key is seen expired from the same point of
    /// the history everywhere. It changes under the keyspace lock: read it while holding the
    /// lock to get the time of the data the lock shows.
    pub fn now_ms(&self) -> u64 {
        self.now_ms.load(Relaxed)
    }

    pub(crate) fn advance_clock(&self, now_ms: u64) {
        self.now_ms.fetch_max(now_ms, Relaxed);
    }

    /// A tier-wide client id for a node's local client id: WATCH state lives in the replicated
    /// keyspace, so clients of different nodes (and of a node's earlier runs) must not share ids.
    pub fn global_client_id(node: crate::NodeId, local: u64) -> u64 {
        // splitmix64 of the node id, xor the local id: distinct per node run; collisions need
        // two 64-bit mixes to meet.
        mix64(node.wrapping_add(0x9e37_79b9_7f4a_7c15)) ^ local
    }

    /// A tier-wide id for the `seq`-th pop of a client with tier-wide id `client` (see
    /// [`RedisOp::Pop`]).
    pub fn pop_id(client: u64, seq: u64) -> u64 {
        mix64(client ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// How many pop outcomes the replica remembers (see [`pops`]).
    pub fn remembered_pops(&self) -> usize {
        let _ks = self.ks.lock();
        self.pops.lock().len()
    }

    /// The periodic expiry entry: remove expired keys at `now_ms`. Returns how many.
    pub(crate) fn active_expire(&self, now_ms: u64) -> usize {
        let mut ks = self.ks.lock();
        self.advance_clock(now_ms);
        self.pops.lock().prune(now_ms);
        ks.active_expire(now_ms, ACTIVE_EXPIRE_EFFORT)
    }

    /// Apply one Redis entry at `now_ms` (deterministic), then report its events.
    pub(crate) fn apply(&self, op: &RedisOp, args: &[u8], now_ms: u64) -> Outcome {
        let Some(argvs) = unpack_argvs(args) else {
            self.advance_clock(now_ms);
            return Outcome::Redis(RedisOutcome::error("ERR malformed replicated command"));
        };
        let mut published: Vec<(Bytes, Bytes)> = Vec::new();
        let (out, ready) = {
            let mut ks = self.ks.lock();
            // Under the keyspace lock: a reader (which reads the clock under the same lock)
            // sees the clock and the data of the same applied entry, never one without the
            // other.
            self.advance_clock(now_ms);
            let mut pops = self.pops.lock();
            let out = apply_op(&mut ks, &mut pops, op, &argvs, now_ms, &mut published);
            (out, ks.take_ready_keys())
        };
        if !published.is_empty() || !ready.is_empty() {
            if let Some(ev) = self.events.read().clone() {
                for (c, m) in &published {
                    ev.published(c, m);
                }
                if !ready.is_empty() {
                    ev.lists_ready(&ready);
                }
            }
        }
        Outcome::Redis(out)
    }

    /// This node's own answer to a `PUBSUB` question (`None` before the server is attached).
    pub fn pubsub_local(&self, q: &PubsubQuery) -> Option<PubsubAnswer> {
        let ev = self.events.read().clone()?;
        Some(ev.pubsub(q))
    }

    /// Append the replicated Redis state's image to a snapshot: the keyspace's image (after its
    /// length, a little-endian u64), then the pop table's ([`pops::Pops::export_into`]).
    pub(crate) fn export_into(&self, out: &mut Vec<u8>) {
        let ks = self.ks.lock();
        let at = out.len();
        out.extend_from_slice(&0u64.to_le_bytes());
        ks.export_into(out);
        let len = (out.len() - at - 8) as u64;
        out[at..at + 8].copy_from_slice(&len.to_le_bytes());
        self.pops.lock().export_into(out);
    }

    /// Replace the replicated Redis state from a snapshot's image ([`RedisReplica::export_into`]).
    /// A bad image is an error (the snapshot is not installed).
    pub(crate) fn import(&self, image: &[u8], now_ms: u64) -> Result<(), String> {
        let (len, rest) = image
            .split_first_chunk::<8>()
            .ok_or("Redis image truncated")?;
        let ks_len = usize::try_from(u64::from_le_bytes(*len))
            .ok()
            .filter(|l| *l <= rest.len())
            .ok_or("Redis keyspace image truncated")?;
        let (ks_image, pops_image) = rest.split_at(ks_len);
        let pops = pops::Pops::import(pops_image)?;
        {
            let mut ks = self.ks.lock();
            ks.import(ks_image).map_err(|e| e.to_string())?;
            self.advance_clock(now_ms);
            *self.pops.lock() = pops;
        }
        if let Some(ev) = self.events.read().clone() {
            ev.replaced();
        }
        Ok(())
    }
}

/// splitmix64's finalizer: a 64-bit mix in which every input bit affects every output bit.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn proto(resp3: bool) -> Protocol {
    if resp3 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    }
}

fn outcome(reply: &Reply, resp3: bool, db: usize, empty: bool) -> RedisOutcome {
    RedisOutcome {
        reply: redis_proto::encode_to_vec(reply, proto(resp3)),
        db: db as u32,
        empty,
    }
}

/// The deterministic part of [`RedisReplica::apply`].
fn apply_op(
    ks: &mut Keyspace,
    pops: &mut pops::Pops,
    op: &RedisOp,
    argvs: &[Vec<Bytes>],
    now_ms: u64,
    published: &mut Vec<(Bytes, Bytes)>,
) -> RedisOutcome {
    let empty_args: Vec<Bytes> = Vec::new();
    let first = argvs.first().unwrap_or(&empty_args);
    match *op {
        RedisOp::Run {
            client,
            db,
            resp3,
            noblock,
        } => run_one(ks, client, db, resp3, noblock, first, now_ms),
        // A pop id already applied answers its first outcome and changes nothing.
        RedisOp::Pop {
            client,
            db,
            resp3,
            block,
            id,
        } => match pops.get(id) {
            Some(first) => first.clone(),
            None => {
                let o = run_one(ks, client, db, resp3, block, first, now_ms);
                pops.record(id, now_ms, o.clone());
                o
            }
        },
        RedisOp::Exec { client, db, resp3 } => {
            let mut c = Client {
                id: client,
                db: db as usize,
                proto: proto(resp3),
                in_exec: true,
            };
            if c.db >= ks.databases() || !ks.exec_allowed(client, now_ms) {
                ks.unwatch(client);
                return outcome(&Reply::NilArray, resp3, db as usize, false);
            }
            let mut replies = Vec::with_capacity(argvs.len());
            for argv in argvs {
                replies.push(run_in_exec(ks, &mut c, argv, now_ms, published));
            }
            outcome(&Reply::Array(replies), resp3, c.db, false)
        }
        RedisOp::Watch { client, db } => {
            for key in first {
                ks.watch(client, db as usize, key, now_ms);
            }
            outcome(&Reply::ok(), false, db as usize, false)
        }
        RedisOp::Unwatch { client } => {
            ks.unwatch(client);
            outcome(&Reply::ok(), false, 0, false)
        }
        RedisOp::Publish => {
            if let [_, channel, message] = first.as_slice() {
                published.push((channel.clone(), message.clone()));
            }
            RedisOutcome::default()
        }
    }
}

/// One data command for `client` in database `db`. `noblock`: a blocking command answers at
/// once (flagged `empty` when it found nothing).
fn run_one(
    ks: &mut Keyspace,
    client: u64,
    db: u32,
    resp3: bool,
    noblock: bool,
    argv: &[Bytes],
    now_ms: u64,
) -> RedisOutcome {
    let mut c = Client {
        id: client,
        db: db as usize,
        proto: proto(resp3),
        in_exec: noblock,
    };
    if c.db >= ks.databases() {
        return outcome(
            &Reply::error("ERR DB index is out of range"),
            resp3,
            0,
            false,
        );
    }
    let reply = run_data(ks, &mut c, argv, now_ms);
    let empty = noblock && matches!(reply, Reply::Nil | Reply::NilArray);
    outcome(&reply, resp3, c.db, empty)
}

/// One data command; a command the store does not know or with the wrong arity answers an
/// error (the sending node checked both, so this only guards against a mixed-version tier).
fn run_data(ks: &mut Keyspace, c: &mut Client, argv: &[Bytes], now_ms: u64) -> Reply {
    let Some(name) = argv.first() else {
        return Reply::error("ERR empty command");
    };
    let Some(cmd) = redis_store::lookup(name) else {
        return Reply::error(format!(
            "ERR unknown command '{}'",
            String::from_utf8_lossy(name)
        ));
    };
    if !cmd.spec.arity_ok(argv.len()) {
        return Reply::error(format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.spec.name
        ));
    }
    match ks.execute(c, cmd, argv, now_ms) {
        Exec::Reply(r) => r,
        Exec::Blocked { .. } => {
            // Only with `noblock` unset, which no sender does: never leave a waiter behind.
            let _ = ks.cancel_block(c.id);
            Reply::NilArray
        }
    }
}

/// One queued command of a transaction: data commands, and the few connection commands the
/// sending node lets into a replicated transaction (`SELECT`, `PING`, `ECHO`, `PUBLISH`).
fn run_in_exec(
    ks: &mut Keyspace,
    c: &mut Client,
    argv: &[Bytes],
    now_ms: u64,
    published: &mut Vec<(Bytes, Bytes)>,
) -> Reply {
    let name = argv
        .first()
        .map(|n| n.to_ascii_lowercase())
        .unwrap_or_default();
    match name.as_slice() {
        b"select" if argv.len() == 2 => {
            match std::str::from_utf8(&argv[1])
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                None => Reply::error("ERR value is not an integer or out of range"),
                Some(n) if n < 0 || n as usize >= ks.databases() => {
                    Reply::error("ERR DB index is out of range")
                }
                Some(n) => {
                    c.db = n as usize;
                    Reply::ok()
                }
            }
        }
        b"ping" if argv.len() <= 2 => match argv.get(1) {
            Some(a) => Reply::Bulk(a.clone()),
            None => Reply::simple("PONG"),
        },
        b"echo" if argv.len() == 2 => Reply::Bulk(argv[1].clone()),
        b"publish" if argv.len() == 3 => {
            published.push((argv[1].clone(), argv[2].clone()));
            // Receivers are counted by each node for its own subscribers; inside a
            // transaction the count is not known where the reply is made.
            Reply::Int(0)
        }
        _ => run_data(ks, c, argv, now_ms),
    }
}

/// Encode argument vectors for a [`crate::Command::Redis`] entry: a count of vectors, then per
/// vector a count of arguments, then per argument its length and bytes (little-endian u32s).
pub fn pack_argvs<A: AsRef<[u8]>>(argvs: &[&[A]]) -> Vec<u8> {
    let size: usize = argvs
        .iter()
        .map(|v| 4 + v.iter().map(|a| 4 + a.as_ref().len()).sum::<usize>())
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(argvs.len() as u32).to_le_bytes());
    for v in argvs {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        for a in v.iter() {
            let a = a.as_ref();
            out.extend_from_slice(&(a.len() as u32).to_le_bytes());
            out.extend_from_slice(a);
        }
    }
    out
}

/// Decode [`pack_argvs`]'s encoding (`None` if malformed). Arguments are copied out: the store
/// takes `Bytes`, and copies what it keeps anyway.
pub fn unpack_argvs(mut b: &[u8]) -> Option<Vec<Vec<Bytes>>> {
    fn u32_of(b: &mut &[u8]) -> Option<usize> {
        let (h, t) = b.split_first_chunk::<4>()?;
        *b = t;
        Some(u32::from_le_bytes(*h) as usize)
    }
    let n = u32_of(&mut b)?;
    let mut out = Vec::with_capacity(n.min(b.len() / 4));
    for _ in 0..n {
        let argc = u32_of(&mut b)?;
        let mut argv = Vec::with_capacity(argc.min(b.len() / 4));
        for _ in 0..argc {
            let len = u32_of(&mut b)?;
            if len > b.len() {
                return None;
            }
            let (a, t) = b.split_at(len);
            argv.push(Bytes::copy_from_slice(a));
            b = t;
        }
        out.push(argv);
    }
    b.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::from(p.to_string())).collect()
    }

    fn run(r: &RedisReplica, client: u64, parts: &[&str], now_ms: u64) -> RedisOutcome {
        let a = argv(parts);
        let op = RedisOp::Run {
            client,
            db: 0,
            resp3: false,
            noblock: true,
        };
        match r.apply(&op, &pack_argvs(&[&a[..]]), now_ms) {
            Outcome::Redis(o) => o,
            o => panic!("not a redis outcome: {o:?}"),
        }
    }

    #[test]
    fn argvs_round_trip_and_reject_garbage() {
        let a = argv(&["SET", "k", ""]);
        let b = argv(&["PING"]);
        let packed = pack_argvs(&[&a[..], &b[..]]);
        assert_eq!(unpack_argvs(&packed), Some(vec![a, b]));
        assert_eq!(unpack_argvs(&packed[..packed.len() - 1]), None);
        let mut longer = packed.clone();
        longer.push(0);
        assert_eq!(unpack_argvs(&longer), None);
        assert_eq!(unpack_argvs(&[]), None);
        assert_eq!(unpack_argvs(&[255, 255, 255, 255]), None);
    }

    #[test]
    fn two_replicas_given_the_same_entries_agree() {
        let a = RedisReplica::new(redis_store::Config::default());
        let b = RedisReplica::new(redis_store::Config::default());
        for (i, cmd) in [
            &["SET", "k", "1"][..],
            &["INCR", "k"],
            &["LPUSH", "q", "x", "y"],
            &["BRPOP", "q", "0"],
            &["BRPOP", "q", "0"],
            &["BRPOP", "q", "0"],
            &["SET", "t", "v", "PX", "50"],
        ]
        .iter()
        .enumerate()
        {
            let ra = run(&a, 1, cmd, 1000 + i as u64);
            let rb = run(&b, 1, cmd, 1000 + i as u64);
            assert_eq!(ra, rb, "{cmd:?}");
        }
        assert_eq!(run(&a, 1, &["GET", "k"], 2000).reply, b"$1\r\n2\r\n");
        // The third pop found the list empty: answered at once, flagged for a retry.
        let empty = run(&a, 1, &["BRPOP", "q", "0"], 2000);
        assert!(empty.empty);
        assert_eq!(empty.reply, b"*-1\r\n");
        assert_eq!(run(&a, 1, &["GET", "t"], 2000).reply, b"$-1\r\n");
    }

    fn pop(r: &RedisReplica, id: u64, block: bool, parts: &[&str], now_ms: u64) -> RedisOutcome {
        let a = argv(parts);
        let op = RedisOp::Pop {
            client: 9,
            db: 0,
            resp3: false,
            block,
            id,
        };
        match r.apply(&op, &pack_argvs(&[&a[..]]), now_ms) {
            Outcome::Redis(o) => o,
            o => panic!("not a redis outcome: {o:?}"),
        }
    }

    #[test]
    fn a_pop_sent_again_is_applied_once_and_answers_its_first_outcome() {
        let r = RedisReplica::new(redis_store::Config::default());
        run(&r, 1, &["RPUSH", "q", "a", "b", "c"], 1);
        let first = pop(&r, 100, true, &["BRPOP", "q", "0"], 2);
        assert_eq!(first.reply, b"*2\r\n$1\r\nq\r\n$1\r\nc\r\n");
        // The same id again (the sender did not learn the outcome): same answer, no element.
        assert_eq!(pop(&r, 100, true, &["BRPOP", "q", "0"], 3), first);
        assert_eq!(run(&r, 1, &["LLEN", "q"], 4).reply, b":2\r\n");
        // A non-blocking pop the same way.
        let l = pop(&r, 101, false, &["LPOP", "q"], 5);
        assert_eq!(l.reply, b"$1\r\na\r\n");
        assert_eq!(pop(&r, 101, false, &["LPOP", "q"], 6), l);
        // An empty outcome is remembered too: an earlier copy applied after a retry that found
        // nothing must not take an element pushed in between.
        run(&r, 1, &["DEL", "q"], 7);
        let none = pop(&r, 102, true, &["BRPOP", "q", "0"], 8);
        assert!(none.empty);
        run(&r, 1, &["RPUSH", "q", "late"], 9);
        assert_eq!(pop(&r, 102, true, &["BRPOP", "q", "0"], 10), none);
        assert_eq!(run(&r, 1, &["LLEN", "q"], 11).reply, b":1\r\n");
        // After the retention time (advanced by the periodic expiry entry) the id is forgotten.
        assert_eq!(r.remembered_pops(), 3);
        r.active_expire(9 + pops::RETAIN_MS);
        assert_eq!(r.remembered_pops(), 0);
    }

    #[test]
    fn a_snapshot_carries_the_pop_table() {
        let a = RedisReplica::new(redis_store::Config::default());
        run(&a, 1, &["RPUSH", "q", "x", "y"], 1);
        let got = pop(&a, 5, true, &["BLPOP", "q", "0"], 2);
        let mut image = Vec::new();
        a.export_into(&mut image);
        let b = RedisReplica::new(redis_store::Config::default());
        b.import(&image, 2).expect("import");
        // The pop sent again to a replica that caught up by snapshot: the same answer.
        assert_eq!(pop(&b, 5, true, &["BLPOP", "q", "0"], 3), got);
        assert_eq!(
            run(&b, 1, &["LRANGE", "q", "0", "-1"], 4).reply,
            b"*1\r\n$1\r\ny\r\n"
        );
        let mut again = Vec::new();
        b.export_into(&mut again);
        let c = RedisReplica::new(redis_store::Config::default());
        c.import(&again, 4).expect("import");
        assert_eq!(c.remembered_pops(), 1);
        // A bad image is refused.
        assert!(c.import(&again[..again.len() - 1], 5).is_err());
        assert!(c.import(&[1, 2, 3], 5).is_err());
    }

    #[test]
    fn pop_ids_differ_per_client_and_sequence() {
        let mut seen = std::collections::HashSet::new();
        for node in [1u64 << 48 | 7, 2 << 48 | 7, 3 << 48 | 99] {
            for local in 1..50 {
                let client = RedisReplica::global_client_id(node, local);
                for seq in 0..50 {
                    assert!(seen.insert(RedisReplica::pop_id(client, seq)));
                }
            }
        }
    }

    #[test]
    fn exec_is_refused_after_a_watched_key_changed() {
        let r = RedisReplica::new(redis_store::Config::default());
        let k = argv(&["k"]);
        let watch = RedisOp::Watch { client: 7, db: 0 };
        r.apply(&watch, &pack_argvs(&[&k[..]]), 1);
        // Another client (another node) writes the key.
        run(&r, 8, &["SET", "k", "other"], 2);
        let set = argv(&["SET", "k", "mine"]);
        let exec = RedisOp::Exec {
            client: 7,
            db: 0,
            resp3: false,
        };
        let Outcome::Redis(o) = r.apply(&exec, &pack_argvs(&[&set[..]]), 3) else {
            panic!("not a redis outcome");
        };
        assert_eq!(o.reply, b"*-1\r\n");
        // Without the conflicting write the transaction runs.
        r.apply(&watch, &pack_argvs(&[&k[..]]), 4);
        let Outcome::Redis(o) = r.apply(&exec, &pack_argvs(&[&set[..]]), 5) else {
            panic!("not a redis outcome");
        };
        assert_eq!(o.reply, b"*1\r\n+OK\r\n");
        assert_eq!(run(&r, 1, &["GET", "k"], 6).reply, b"$4\r\nmine\r\n");
    }

    #[test]
    fn events_report_publishes_and_pushes() {
        #[derive(Default)]
        struct Seen(Mutex<Vec<String>>);
        impl RedisEvents for Seen {
            fn pubsub(&self, _: &PubsubQuery) -> PubsubAnswer {
                PubsubAnswer::Patterns(Vec::new())
            }
            fn published(&self, c: &[u8], m: &[u8]) {
                self.0.lock().push(format!(
                    "pub {} {}",
                    String::from_utf8_lossy(c),
                    String::from_utf8_lossy(m)
                ));
            }
            fn replaced(&self) {}
            fn lists_ready(&self, keys: &[(usize, Box<[u8]>)]) {
                for (db, k) in keys {
                    self.0
                        .lock()
                        .push(format!("ready {db} {}", String::from_utf8_lossy(k)));
                }
            }
        }
        let r = RedisReplica::new(redis_store::Config::default());
        let seen = Arc::new(Seen::default());
        r.set_events(seen.clone());
        let p = argv(&["PUBLISH", "ch", "hello"]);
        r.apply(&RedisOp::Publish, &pack_argvs(&[&p[..]]), 1);
        run(&r, 1, &["RPUSH", "q", "a"], 2);
        let seen = seen.0.lock().clone();
        assert_eq!(seen, ["pub ch hello", "ready 0 q"]);
    }
}
