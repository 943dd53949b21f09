//! Tests of the replicated tier's interface: images (export/import exactness and import's
//! validation), read-only execution, and ready-key tracking, as property tests over random
//! command sequences covering every type, expiry, `WATCH`, eviction and active expiry.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::db::Value;
use crate::{errors, lookup, Client, Config, Exec, Keyspace, Policy, Reply};

const T0: u64 = 1_700_000_000_000;

const KEYS: [&str; 8] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
const MEMBERS: [&str; 6] = ["a", "b", "1", "2", "3", "-7"];
const LONG: &str = "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv";

/// Command templates: `{k}`/`{j}` keys, `{m}`/`{n}` members, `{t}` a small number.
const TEMPLATES: &[&str] = &[
    "SET {k} {m}",
    "SET {k} {m} PX {t}",
    "GET {k}",
    "APPEND {k} {m}",
    "INCR {k}",
    "MGET {k} {j}",
    "GETEX {k} PX {t}",
    "GETDEL {k}",
    "STRLEN {k}",
    "LPUSH {k} {m} {n}",
    "RPUSH {k} {m}",
    "LPUSHX {k} {m}",
    "RPUSHX {k} {n}",
    "LPOP {k}",
    "RPOP {k} 2",
    "RPOPLPUSH {k} {j}",
    "LMOVE {k} {j} LEFT RIGHT",
    "LINSERT {k} BEFORE {m} {n}",
    "LREM {k} 1 {m}",
    "LTRIM {k} 1 -1",
    "LSET {k} 0 {m}",
    "LRANGE {k} 0 -1",
    "LINDEX {k} 1",
    "LPOS {k} {m}",
    "LLEN {k}",
    "HSET {k} {m} {n}",
    "HSET {k} {m} LONG",
    "HDEL {k} {m}",
    "HINCRBY {k} {m} 3",
    "HGETALL {k}",
    "HGET {k} {m}",
    "HRANDFIELD {k} -3",
    "HRANDFIELD {k} 2 WITHVALUES",
    "HSCAN {k} 0",
    "HLEN {k}",
    "SADD {k} {m} {n}",
    "SREM {k} {m}",
    "SPOP {k}",
    "SMOVE {k} {j} {m}",
    "SRANDMEMBER {k} -3",
    "SRANDMEMBER {k} 2",
    "SMEMBERS {k}",
    "SISMEMBER {k} {m}",
    "SINTER {k} {j}",
    "SUNION {k} {j}",
    "SINTERSTORE {k} {j} {k}",
    "SUNIONSTORE {j} {k} {j}",
    "SDIFFSTORE {k} {j}",
    "SSCAN {k} 0",
    "EXPIRE {k} 1",
    "PEXPIRE {k} {t}",
    "PERSIST {k}",
    "TTL {k}",
    "PTTL {k}",
    "TYPE {k}",
    "EXISTS {k} {j}",
    "TOUCH {k}",
    "OBJECT ENCODING {k}",
    "OBJECT IDLETIME {k}",
    "DEL {k}",
    "RENAME {k} {j}",
    "COPY {k} {j}",
    "MOVE {k} 1",
    "SWAPDB 0 1",
    "RANDOMKEY",
    "SCAN 0 COUNT 3",
    "SCAN 3 COUNT 2 TYPE list",
    "KEYS *",
    "DBSIZE",
    "FLUSHDB",
    "HMGET {k} {m} {n}",
    "HKEYS {k}",
    "HVALS {k}",
    "HSTRLEN {k} {m}",
    "HEXISTS {k} {m}",
    "EXPIRETIME {k}",
    "PEXPIRETIME {k}",
    "SMISMEMBER {k} {m} {n}",
    "SCARD {k}",
    "SINTERCARD 2 {k} {j}",
    "SDIFF {k} {j}",
    "SDIFF {k} {k}",
    "GETRANGE {k} 0 -1",
    "LCS {k} {j}",
    "SELECT 1",
];

/// One step of a test sequence.
#[derive(Clone, Debug)]
enum Step {
    /// (client, template, k, j, m, n, t)
    Cmd(u8, usize, usize, usize, usize, usize, u64),
    Watch(u8, usize),
    Unwatch(u8),
    Exec(u8),
    ActiveExpire(usize),
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (0u8..3, 0..TEMPLATES.len(), 0usize..8, 0usize..8, 0usize..6, 0usize..6, 1u64..3000)
            .prop_map(|(c, i, k, j, m, n, t)| Step::Cmd(c, i, k, j, m, n, t)),
        1 => (0u8..3, 0usize..8).prop_map(|(c, k)| Step::Watch(c, k)),
        1 => (0u8..3).prop_map(Step::Unwatch),
        1 => (0u8..3).prop_map(Step::Exec),
        1 => (1usize..12).prop_map(Step::ActiveExpire),
        2 => (1u64..2500).prop_map(Step::Advance),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        0usize..6,
        prop_oneof![Just(0u64), Just(900), Just(2500)],
        any::<bool>(),
    )
        .prop_map(|(p, maxmemory, reads_mutate)| Config {
            maxmemory,
            policy: [
                Policy::NoEviction,
                Policy::AllKeysLru,
                Policy::VolatileLru,
                Policy::AllKeysRandom,
                Policy::VolatileRandom,
                Policy::VolatileTtl,
            ][p],
            samples: 3,
            databases: 2,
            reads_mutate,
            ..Config::default()
        })
}

fn command_args(i: usize, k: usize, j: usize, m: usize, n: usize, t: u64) -> Vec<Bytes> {
    TEMPLATES[i]
        .split(' ')
        .map(|w| {
            let s = match w {
                "{k}" => KEYS[k].to_string(),
                "{j}" => KEYS[j].to_string(),
                "{m}" => MEMBERS[m].to_string(),
                "{n}" => MEMBERS[n].to_string(),
                "{t}" => t.to_string(),
                "LONG" => LONG.to_string(),
                w => w.to_string(),
            };
            Bytes::from(s)
        })
        .collect()
}

/// A test world: the keyspace, its clients (client `c` uses database `c % 2`) and the clock.
struct World {
    ks: Keyspace,
    clients: HashMap<u8, Client>,
    now: u64,
}

impl World {
    fn new(config: Config) -> World {
        World {
            ks: Keyspace::new(config),
            clients: HashMap::new(),
            now: T0,
        }
    }

    fn client(&mut self, c: u8) -> &mut Client {
        self.clients.entry(c).or_insert_with(|| Client {
            id: c as u64 + 1,
            db: c as usize % 2,
            ..Client::default()
        })
    }

    /// Run a step; its observable result as a reply.
    fn step(&mut self, s: &Step) -> Reply {
        match *s {
            Step::Cmd(c, i, k, j, m, n, t) => {
                let a = command_args(i, k, j, m, n, t);
                let mut cl = self.client(c).clone();
                let r = runv(&mut self.ks, &mut cl, &a, self.now, false);
                *self.client(c) = cl;
                r
            }
            Step::Watch(c, k) => {
                let db = self.client(c).db;
                self.ks
                    .watch(c as u64 + 1, db, KEYS[k].as_bytes(), self.now);
                Reply::ok()
            }
            Step::Unwatch(c) => {
                self.ks.unwatch(c as u64 + 1);
                Reply::ok()
            }
            Step::Exec(c) => Reply::Int(self.ks.exec_allowed(c as u64 + 1, self.now) as i64),
            Step::ActiveExpire(e) => Reply::Int(self.ks.active_expire(self.now, e) as i64),
            Step::Advance(ms) => {
                self.now += ms;
                Reply::ok()
            }
        }
    }

    fn export(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.ks.export_into(&mut out);
        out
    }

    /// A replica of this world made from its image.
    fn replica(&self) -> World {
        let mut ks = Keyspace::new(self.ks.config().clone());
        ks.import(&self.export()).expect("an export imports");
        World {
            ks,
            clients: self.clients.clone(),
            now: self.now,
        }
    }
}

/// Run a command as the server would (arity checked first), normally or read-only.
fn runv(ks: &mut Keyspace, cl: &mut Client, a: &[Bytes], now: u64, ro: bool) -> Reply {
    let Some(cmd) = lookup(&a[0]) else {
        return Reply::error("ERR unknown command");
    };
    if !cmd.spec.arity_ok(a.len()) {
        return errors::wrong_arity(cmd.spec.name);
    }
    let r = if ro {
        ks.execute_readonly(cl, cmd, a, now)
    } else {
        ks.execute(cl, cmd, a, now)
    };
    match r {
        Exec::Reply(r) => r,
        Exec::Blocked { .. } => Reply::simple("BLOCKED"),
    }
}

fn is_write(i: usize) -> bool {
    let name = TEMPLATES[i].split(' ').next().unwrap_or("");
    lookup(name.as_bytes()).is_some_and(|c| c.spec.flags.has(crate::Flags::WRITE))
}

/// Commands whose reply depends on the random generator.
fn is_random(i: usize) -> bool {
    ["RANDOMKEY", "SRANDMEMBER", "HRANDFIELD"]
        .iter()
        .any(|c| TEMPLATES[i].starts_with(c))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// (a) A replica made from an image at any point answers the rest of the sequence exactly
    /// as the original, and ends in the same state.
    #[test]
    fn image_replica_behaves_identically(
        config in config(),
        steps in proptest::collection::vec(step(), 1..120),
        split in any::<prop::sample::Index>(),
    ) {
        let p = split.index(steps.len() + 1);
        let mut a = World::new(config);
        for s in &steps[..p] {
            a.step(s);
        }
        let mut b = a.replica();
        prop_assert_eq!(a.export(), b.export(), "import then export is exact");
        for s in &steps[p..] {
            let ra = a.step(s);
            let rb = b.step(s);
            prop_assert_eq!(ra, rb, "{:?}", s);
        }
        prop_assert_eq!(a.export(), b.export());
        prop_assert_eq!(a.ks.used_memory(), b.ks.used_memory());
    }

    /// (b) A read-only command changes no replicated state, answers like the normal command
    /// (random picks aside), and a write command is refused.
    #[test]
    fn readonly_changes_nothing(
        config in config(),
        steps in proptest::collection::vec((step(), 0..TEMPLATES.len(), 0u8..3), 1..100),
    ) {
        let mut w = World::new(config);
        for (s, i, c) in &steps {
            w.step(s);
            let (k, j, m, n, t) = match s {
                Step::Cmd(_, _, k, j, m, n, t) => (*k, *j, *m, *n, *t),
                _ => (1, 2, 0, 3, 100),
            };
            let a = command_args(*i, k, j, m, n, t);
            let before = w.export();
            let mut twin = w.replica();
            let mut cl = w.client(*c).clone();
            let got = runv(&mut w.ks, &mut cl, &a, w.now, true);
            prop_assert_eq!(&before, &w.export(), "{}", TEMPLATES[*i]);
            if is_write(*i) {
                prop_assert_eq!(got, Reply::error(READONLY_WRITE_ERR));
            } else if !is_random(*i) {
                let mut cl = twin.client(*c).clone();
                let want = runv(&mut twin.ks, &mut cl, &a, twin.now, false);
                prop_assert_eq!(got, want, "{}", TEMPLATES[*i]);
            }
        }
    }

    /// (c) With `track_ready`, exactly the keys that received list elements are reported,
    /// each once, in signal order.
    #[test]
    fn ready_keys_are_the_pushed_keys(
        config in config(),
        steps in proptest::collection::vec(step(), 1..150),
    ) {
        let config = Config { track_ready: true, ..config };
        let mut w = World::new(config);
        for s in &steps {
            let Step::Cmd(c, i, k, j, _, _, _) = *s else {
                w.step(s);
                prop_assert!(w.ks.take_ready_keys().is_empty());
                continue;
            };
            let db = w.client(c).db;
            let now = w.now;
            let live_list = |ks: &Keyspace, db: usize, key: &str| {
                ks.db(db).map.get(key.as_bytes()).is_some_and(|e| {
                    !e.is_expired(now) && matches!(e.value, Value::List(_))
                })
            };
            let src_list = live_list(&w.ks, db, KEYS[k]);
            let r = w.step(s);
            let name = TEMPLATES[i].split(' ').next().unwrap_or("");
            let kk = (db, Box::<[u8]>::from(KEYS[k].as_bytes()));
            let jj = (db, Box::<[u8]>::from(KEYS[j].as_bytes()));
            let mut want: Vec<(usize, Box<[u8]>)> = Vec::new();
            match (name, &r) {
                ("LPUSH" | "RPUSH", Reply::Int(_)) => want.push(kk),
                ("LPUSHX" | "RPUSHX" | "LINSERT", Reply::Int(n)) if *n > 0 => want.push(kk),
                // Rotating a list in place adds no element.
                ("RPOPLPUSH" | "LMOVE", Reply::Bulk(_)) if k != j => want.push(jj),
                // RENAME of a key to itself changes nothing.
                ("RENAME", Reply::Simple(_)) | ("COPY", Reply::Int(1)) if src_list && k != j => {
                    want.push(jj)
                }
                ("MOVE", Reply::Int(1)) if src_list => {
                    want.push((1, Box::from(KEYS[k].as_bytes())))
                }
                ("SWAPDB", Reply::Simple(_)) => {
                    for d in [0, 1] {
                        for (key, e) in &w.ks.db(d).map {
                            if !e.is_expired(now) && matches!(e.value, Value::List(_)) {
                                want.push((d, key.clone()));
                            }
                        }
                    }
                }
                _ => {}
            }
            prop_assert_eq!(w.ks.take_ready_keys(), want, "{} -> {:?}", TEMPLATES[i], r);
        }
    }
}

/// Without `track_ready` nothing is recorded.
#[test]
fn ready_keys_untracked_by_default() {
    let mut w = World::new(Config::default());
    w.step(&Step::Cmd(0, 9, 0, 1, 0, 1, 5));
    assert!(w.ks.take_ready_keys().is_empty());
    let mut w = World::new(Config {
        track_ready: true,
        ..Config::default()
    });
    w.step(&Step::Cmd(0, 9, 0, 1, 0, 1, 5));
    w.step(&Step::Cmd(0, 10, 0, 1, 0, 1, 5));
    w.step(&Step::Cmd(0, 9, 1, 1, 0, 1, 5));
    let got = w.ks.take_ready_keys();
    assert_eq!(
        got,
        vec![(0, Box::from(&b"k0"[..])), (0, Box::from(&b"k1"[..]))]
    );
    assert!(w.ks.take_ready_keys().is_empty(), "taken");
}

/// Read-only reads hide expired keys without deleting them; random picks leave the
/// replicated generator alone.
#[test]
fn readonly_hides_expired_keys() {
    let mut w = World::new(Config::default());
    let mut cl = Client::default();
    for line in ["SET a 1 PX 10", "SET b 2", "SADD s x y z"] {
        let a: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::from(s.to_string()))
            .collect();
        runv(&mut w.ks, &mut cl, &a, T0, false);
    }
    let later = T0 + 100;
    let ro = |w: &mut World, line: &str| {
        let a: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::from(s.to_string()))
            .collect();
        let mut cl = Client::default();
        runv(&mut w.ks, &mut cl, &a, later, true)
    };
    let before = w.export();
    assert_eq!(ro(&mut w, "GET a"), Reply::Nil);
    assert_eq!(ro(&mut w, "EXISTS a b"), Reply::Int(1));
    assert_eq!(ro(&mut w, "TTL a"), Reply::Int(-2));
    assert_eq!(ro(&mut w, "DBSIZE"), Reply::Int(3), "not deleted");
    for _ in 0..20 {
        assert_ne!(ro(&mut w, "RANDOMKEY"), Reply::bulk(b"a"));
        ro(&mut w, "SRANDMEMBER s -2");
    }
    assert_eq!(
        ro(&mut w, "SET a 2"),
        Reply::error(READONLY_WRITE_ERR),
        "writes refused"
    );
    assert_eq!(before, w.export());
    // Only expired keys left: RANDOMKEY gives up on them instead of looping.
    let mut w = World::new(Config::default());
    let a: Vec<Bytes> = ["SET", "a", "1", "PX", "10"].map(Bytes::from).to_vec();
    runv(&mut w.ks, &mut cl, &a, T0, false);
    assert_eq!(ro(&mut w, "RANDOMKEY"), Reply::Nil);
}

// ---- images ----

/// A keyspace with every kind of state.
fn sample() -> Keyspace {
    let mut w = World::new(Config {
        databases: 2,
        ..Config::default()
    });
    let lines = [
        "SET s hello PX 5000",
        "RPUSH l a b c",
        "HSET h f v g w",
        "HSET big f LONG",
        "SADD is 1 2 3",
        "SADD hs a b",
        "SET n 12",
    ];
    for line in lines {
        let a: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::from(if s == "LONG" { LONG } else { s }.to_string()))
            .collect();
        let mut cl = Client::default();
        runv(&mut w.ks, &mut cl, &a, T0, false);
    }
    for i in 0..30 {
        let a: Vec<Bytes> = [
            "SET".to_string(),
            format!("t{i}"),
            "v".into(),
            "PX".into(),
            format!("{}", 10 + i),
        ]
        .map(Bytes::from)
        .to_vec();
        runv(&mut w.ks, &mut Client::default(), &a, T0, false);
    }
    // Part of a cycle: the cursor stops inside the database.
    w.ks.active_expire(T0 + 1_000, 7);
    assert!(w.ks.db(0).expire_cursor > 0);
    w.ks.watch(7, 0, b"s", T0);
    w.ks.watch(7, 1, b"x", T0);
    w.ks.watch(3, 0, b"l", T0);
    let a: Vec<Bytes> = ["RPUSH", "l", "d"].map(Bytes::from).to_vec();
    runv(&mut w.ks, &mut Client::default(), &a, T0, false);
    w.ks
}

fn image_of(ks: &Keyspace) -> Vec<u8> {
    let mut out = Vec::new();
    ks.export_into(&mut out);
    out
}

fn two_dbs() -> Keyspace {
    Keyspace::new(Config {
        databases: 2,
        ..Config::default()
    })
}

fn assert_empty(ks: &Keyspace) {
    assert_eq!(ks.used_memory(), 0);
    assert!((0..ks.databases()).all(|d| ks.dbsize(d) == 0));
    assert!(ks.watches.by_client.is_empty() && ks.watches.dirty.is_empty());
}

#[test]
fn image_round_trip() {
    let ks = sample();
    let img = image_of(&ks);
    let mut r = two_dbs();
    r.import(&img).unwrap();
    assert_eq!(image_of(&r), img);
    assert_eq!(r.used_memory(), ks.used_memory());
    assert_eq!(r.rng, ks.rng);
    assert_eq!(r.watches.dirty, ks.watches.dirty);
    assert!(r.watches.dirty.contains(&3));
    assert_eq!(r.watches.by_key, ks.watches.by_key);
    for d in 0..2 {
        assert_eq!(r.db(d).map, ks.db(d).map);
        let order: Vec<_> = r.db(d).map.keys().collect();
        let want: Vec<_> = ks.db(d).map.keys().collect();
        assert_eq!(order, want);
        assert_eq!(r.db(d).expires, ks.db(d).expires);
        assert_eq!(r.db(d).expire_cursor, ks.db(d).expire_cursor);
    }
    // An import replaces whatever was there.
    let mut full = sample();
    full.import(&image_of(&two_dbs())).unwrap();
    assert_empty(&full);
}

fn expect_err(img: &[u8], needle: &str) {
    let mut ks = sample();
    let e = ks.import(img).expect_err(needle);
    assert!(e.0.contains(needle), "{e} lacks {needle:?}");
    assert_empty(&ks);
}

/// An image with one database holding one entry written by `entry`.
fn one_entry(used: u64, expires: u64, entry: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut o = IMAGE_MAGIC.to_vec();
    put_u64(&mut o, used);
    put_u64(&mut o, RNG_SEED);
    put_u32(&mut o, 1);
    put_u64(&mut o, 1);
    put_u64(&mut o, expires);
    put_u64(&mut o, 0);
    entry(&mut o);
    put_u64(&mut o, 0);
    put_u64(&mut o, 0);
    o
}

fn one_db() -> Keyspace {
    Keyspace::new(Config {
        databases: 1,
        ..Config::default()
    })
}

fn expect_err1(img: &[u8], needle: &str) {
    let mut ks = one_db();
    let e = ks.import(img).expect_err(needle);
    assert!(e.0.contains(needle), "{e} lacks {needle:?}");
    assert_empty(&ks);
}

#[test]
fn import_errors() {
    let img = image_of(&sample());
    // Every truncation fails and leaves the keyspace empty.
    for n in 0..img.len() {
        let mut ks = sample();
        assert!(ks.import(&img[..n]).is_err(), "prefix {n}");
        assert_empty(&ks);
    }
    let mut long = img.clone();
    long.push(0);
    expect_err(&long, "trailing");
    let mut bad = img.clone();
    bad[0] = b'X';
    expect_err(&bad, "magic");
    let mut bad = img.clone();
    bad[7] = 2;
    expect_err(&bad, "version 2");
    let mut ks = one_db();
    assert!(ks.import(&img).unwrap_err().0.contains("2 databases"));
    let mut bad = img.clone();
    bad[8..16].copy_from_slice(&1u64.to_le_bytes());
    expect_err(&bad, "used memory 1");
    let mut bad = img.clone();
    bad[16..24].copy_from_slice(&0u64.to_le_bytes());
    expect_err(&bad, "random state 0");
    // A huge count is refused before anything is allocated.
    let mut bad = img[..28].to_vec();
    put_u64(&mut bad, u64::MAX);
    bad.extend_from_slice(&[0; 64]);
    expect_err(&bad, "exceeds");

    let str_entry = |flags: u8, key: &[u8]| {
        let key = key.to_vec();
        move |o: &mut Vec<u8>| {
            o.push(flags);
            put_bytes(o, &key);
            if flags & F_EXPIRE != 0 {
                put_u64(o, 9);
            }
            put_u32(o, 0);
            put_bytes(o, b"v");
        }
    };
    let mem = |key: &[u8], value: Value, expire_at: u64| {
        entry_mem(key, &Entry::new(value, expire_at, 0)) as u64
    };
    let m = mem(b"k", Value::Str(b"v"[..].into()), 0);
    // The well-formed one imports.
    let good = one_entry(m, 0, str_entry(T_STR, b"k"));
    one_db().import(&good).unwrap();
    expect_err1(&one_entry(m, 1, str_entry(T_STR, b"k")), "expires count 1");
    expect_err1(&one_entry(m + 1, 0, str_entry(T_STR, b"k")), "used memory");
    expect_err1(
        &one_entry(m, 0, str_entry(T_STR | F_EXPIRE, b"k")),
        "expires count 0",
    );
    expect_err1(&one_entry(m, 0, str_entry(0x40, b"k")), "bad entry flags");
    expect_err1(
        &one_entry(m, 0, str_entry(T_LIST | F_ENC, b"k")),
        "bad entry flags",
    );
    // A string's encoding flag is its raw flag.
    let mut ks = one_db();
    ks.import(&one_entry(m, 0, str_entry(T_STR | F_ENC, b"k")))
        .unwrap();
    match ks.lookup(0, b"k", 0).map(|e| &e.value) {
        Some(Value::Str(s)) => assert!(s.is_raw()),
        other => panic!("{other:?}"),
    }
    expect_err1(&one_entry(m, 0, str_entry(7, b"k")), "bad entry flags");
    // A long length for a short string is not canonical.
    expect_err1(
        &one_entry(m, 0, |o| {
            o.push(T_STR);
            put_u32(o, u32::MAX);
            put_u64(o, 1);
            o.push(b'k');
        }),
        "long length",
    );
    // Two keys with the same name.
    let mut dup = one_entry(2 * m, 0, |o| {
        str_entry(T_STR, b"k")(o);
        str_entry(T_STR, b"k")(o);
    });
    dup[28..36].copy_from_slice(&2u64.to_le_bytes());
    expect_err1(&dup, "duplicate key");
    let coll = |ty: u8, elems: Vec<Vec<u8>>| {
        move |o: &mut Vec<u8>| {
            o.push(ty);
            put_bytes(o, b"k");
            put_u32(o, 0);
            let per = if ty & 0x0f == T_HASH { 2 } else { 1 };
            put_u64(o, (elems.len() / per) as u64);
            for e in &elems {
                put_bytes(o, e);
            }
        }
    };
    expect_err1(&one_entry(0, 0, coll(T_LIST, vec![])), "empty list");
    expect_err1(&one_entry(0, 0, coll(T_SET, vec![])), "empty set");
    expect_err1(&one_entry(0, 0, coll(T_HASH, vec![])), "empty hash");
    expect_err1(
        &one_entry(
            0,
            0,
            coll(T_SET | F_ENC, vec![b"1".to_vec(), b"x".to_vec()]),
        ),
        "non-integer",
    );
    expect_err1(
        &one_entry(0, 0, coll(T_SET, vec![b"x".to_vec(), b"x".to_vec()])),
        "duplicate set member",
    );
    expect_err1(
        &one_entry(0, 0, coll(T_HASH, vec![b"f".to_vec(), LONG.into()])),
        "listpack hash with a long",
    );
    expect_err1(
        &one_entry(
            0,
            0,
            coll(
                T_HASH | F_ENC,
                vec![b"f".to_vec(), b"1".to_vec(), b"f".to_vec(), b"2".to_vec()],
            ),
        ),
        "duplicate hash field",
    );
    let many: Vec<Vec<u8>> = (0..=HASH_LISTPACK_ENTRIES)
        .flat_map(|i| [i.to_string().into_bytes(), b"v".to_vec()])
        .collect();
    expect_err1(
        &one_entry(0, 0, coll(T_HASH, many)),
        "listpack hash with 129",
    );
    let many: Vec<Vec<u8>> = (0..=SET_INTSET_ENTRIES)
        .map(|i| i.to_string().into_bytes())
        .collect();
    expect_err1(
        &one_entry(0, 0, coll(T_SET | F_ENC, many)),
        "intset with 513",
    );

    // The WATCH registry.
    let watch_img = |clients: &[(u64, &[WatchedKey])], dirty: &[u64]| {
        let mut o = image_of(&one_db());
        o.truncate(o.len() - 16);
        put_u64(&mut o, clients.len() as u64);
        for (id, keys) in clients {
            put_u64(&mut o, *id);
            put_u64(&mut o, keys.len() as u64);
            for (db, key, exp) in keys.iter() {
                put_u32(&mut o, *db);
                put_bytes(&mut o, key);
                o.push(*exp);
            }
        }
        put_u64(&mut o, dirty.len() as u64);
        for d in dirty {
            put_u64(&mut o, *d);
        }
        o
    };
    let ok = watch_img(
        &[(1, &[(0, b"a", 1)]), (5, &[(0, b"a", 0), (0, b"b", 0)])],
        &[5],
    );
    let mut ks = one_db();
    ks.import(&ok).unwrap();
    assert_eq!(image_of(&ks), ok);
    assert_eq!(ks.watches.by_key[&0][&b"a"[..]].len(), 2);
    expect_err1(&watch_img(&[(1, &[(1, b"a", 0)])], &[]), "database 1");
    expect_err1(&watch_img(&[(1, &[(0, b"a", 2)])], &[]), "expired flag 2");
    expect_err1(
        &watch_img(&[(1, &[(0, b"a", 0), (0, b"a", 1)])], &[]),
        "twice",
    );
    expect_err1(&watch_img(&[(2, &[]), (1, &[])], &[]), "ascending");
    expect_err1(&watch_img(&[], &[3, 3]), "ascending");
}

/// A watched key in an image: database, key, expired flag.
type WatchedKey<'a> = (u32, &'a [u8], u8);

/// Writes seed images for the `redis_image` fuzz target into `$KEEL_SEED_DIR`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let Ok(dir) = std::env::var("KEEL_SEED_DIR") else {
        return;
    };
    let mut big = Keyspace::new(Config::default());
    let mut w = World::new(Config::default());
    for (i, s) in [
        Step::Cmd(0, 9, 0, 1, 0, 1, 5),
        Step::Cmd(1, 26, 1, 1, 1, 0, 5),
        Step::Cmd(0, 35, 2, 1, 2, 3, 5),
        Step::Cmd(0, 1, 3, 1, 2, 3, 500),
        Step::Watch(2, 3),
        Step::Cmd(0, 25, 4, 0, 0, 0, 5),
    ]
    .iter()
    .enumerate()
    {
        w.step(s);
        if i == 2 {
            big = w.replica().ks;
        }
    }
    let seeds = [
        ("empty", image_of(&Keyspace::new(Config::default()))),
        ("small", image_of(&big)),
        ("mixed", w.export()),
    ];
    for (name, img) in seeds {
        std::fs::write(format!("{dir}/{name}"), img).unwrap();
    }
}

/// Export and import a million small strings; prints the time (run with `--ignored
/// --nocapture` in release).
#[test]
#[ignore]
fn million_strings_timing() {
    let mut ks = Keyspace::new(Config::default());
    let t = Instant::now();
    for i in 0..1_000_000u32 {
        let k = format!("key:{i:08}");
        ks.insert(
            0,
            k.as_bytes(),
            Value::Str(b"value-0123456789"[..].into()),
            0,
            T0,
        );
    }
    let build = t.elapsed();
    let t = Instant::now();
    let mut img = Vec::new();
    ks.export_into(&mut img);
    let export = t.elapsed();
    let t = Instant::now();
    let mut r = Keyspace::new(Config::default());
    r.import(&img).unwrap();
    let import = t.elapsed();
    assert_eq!(r.dbsize(0), 1_000_000);
    println!(
        "1M strings: built by SET-like inserts in {:?}; image {} bytes, export {:?}, import {:?}",
        build,
        img.len(),
        export,
        import
    );
}
