//! Unit and property tests of the keys and strings commands, `WATCH`, eviction, active
//! expiry, `SCAN`'s guarantee and determinism. The same commands are compared byte for byte
//! with redis-server 7.0.15 by the differential test (`tests/redis/scripts/*.txt`, run by
//! `crates/keel/tests/it/redis/differential.rs`).

use bytes::Bytes;
use proptest::prelude::*;

use crate::db::entry_mem;
use crate::{errors, lookup, Client, Config, Exec, Keyspace, Policy, Reply};

const T0: u64 = 1_700_000_000_000;

fn args(line: &str) -> Vec<Bytes> {
    line.split(' ')
        .filter(|a| !a.is_empty())
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

/// Run one command line as the server would (arity checked first).
fn runv(ks: &mut Keyspace, cl: &mut Client, a: &[Bytes], now: u64) -> Reply {
    let Some(cmd) = lookup(&a[0]) else {
        return Reply::error("ERR unknown command");
    };
    if !cmd.spec.arity_ok(a.len()) {
        return errors::wrong_arity(cmd.spec.name);
    }
    match ks.execute(cl, cmd, a, now) {
        Exec::Reply(r) => r,
        Exec::Blocked { .. } => Reply::simple("BLOCKED"),
    }
}

fn run(ks: &mut Keyspace, cl: &mut Client, line: &str, now: u64) -> Reply {
    runv(ks, cl, &args(line), now)
}

fn b(s: &str) -> Reply {
    Reply::bulk(s.as_bytes())
}

fn e(s: &str) -> Reply {
    Reply::error(s)
}

fn ok() -> Reply {
    Reply::ok()
}

/// Run (line, expected reply) pairs in order on one keyspace at `T0`.
fn script(cases: &[(&str, Reply)]) {
    let mut ks = Keyspace::new(Config::default());
    let mut cl = Client::default();
    for (line, want) in cases {
        let got = run(&mut ks, &mut cl, line, T0);
        assert_eq!(&got, want, "{line}");
    }
    check_accounting(&ks);
}

/// The accounted memory equals the sum over all keys, and the expiry counts are right.
fn check_accounting(ks: &Keyspace) {
    let mut total = 0u64;
    for d in &ks.dbs {
        total += d
            .map
            .iter()
            .map(|(k, e)| entry_mem(k, e) as u64)
            .sum::<u64>();
        assert_eq!(
            d.expires,
            d.map.values().filter(|e| e.expire_at != 0).count()
        );
    }
    assert_eq!(ks.used, total);
}

const WT: &str = errors::WRONGTYPE;

#[test]
fn set_and_its_options() {
    script(&[
        ("set foo bar", ok()),
        ("get foo", b("bar")),
        ("get nokey", Reply::Nil),
        ("set foo bar nx", Reply::Nil),
        ("set foo baz xx", ok()),
        ("set foo x nx xx", e(errors::SYNTAX)),
        ("set foo x ex 10 px 100", e(errors::SYNTAX)),
        ("set foo x ex 10 keepttl", e(errors::SYNTAX)),
        (
            "set foo x ex 0",
            e("ERR invalid expire time in 'set' command"),
        ),
        (
            "set foo x ex -1",
            e("ERR invalid expire time in 'set' command"),
        ),
        ("set foo x ex abc", e(errors::NOT_INTEGER)),
        (
            "set foo x ex 9223372036854775807",
            e("ERR invalid expire time in 'set' command"),
        ),
        (
            "set foo x px 9223372036854775807",
            e("ERR invalid expire time in 'set' command"),
        ),
        ("set foo x ex", e(errors::SYNTAX)),
        ("set foo y get", b("baz")),
        ("set nk y get nx", Reply::Nil),
        ("set nk z get nx", b("y")),
        ("get nk", b("y")),
        ("set foo x ex 10 ex 20", ok()),
        ("ttl foo", Reply::Int(20)),
        ("set foo x keepttl", ok()),
        ("ttl foo", Reply::Int(20)),
        ("set foo x", ok()),
        ("ttl foo", Reply::Int(-1)),
        ("set foo x exat 1", ok()),
        ("get foo", Reply::Nil),
        ("setex s 100 v", ok()),
        ("pttl s", Reply::Int(100_000)),
        (
            "setex s 0 v",
            e("ERR invalid expire time in 'setex' command"),
        ),
        (
            "psetex s 0 v",
            e("ERR invalid expire time in 'psetex' command"),
        ),
        ("setnx s v", Reply::Int(0)),
        ("setnx s2 v", Reply::Int(1)),
        ("getset s2 w", b("v")),
        ("getset s3 w", Reply::Nil),
        ("getdel s3", b("w")),
        ("getdel s3", Reply::Nil),
        ("getex s2 ex 100", b("w")),
        ("ttl s2", Reply::Int(100)),
        ("getex s2 persist", b("w")),
        ("ttl s2", Reply::Int(-1)),
        ("getex s2 nx", e(errors::SYNTAX)),
        ("getex s2 persist ex 10", e(errors::SYNTAX)),
        (
            "getex s2 px 0",
            e("ERR invalid expire time in 'getex' command"),
        ),
        ("getex s2 exat 1", b("w")),
        ("exists s2", Reply::Int(0)),
        ("mset a 1 b 2", ok()),
        (
            "mset a 1 b",
            e("ERR wrong number of arguments for 'mset' command"),
        ),
        ("msetnx a 1 c 3", Reply::Int(0)),
        ("msetnx c 3 d 4", Reply::Int(1)),
        (
            "mget a b nokey c",
            Reply::Array(vec![b("1"), b("2"), Reply::Nil, b("3")]),
        ),
    ]);
}

#[test]
fn wrongtype_on_other_types() {
    let mut ks = Keyspace::new(Config::default());
    let mut cl = Client::default();
    ks.insert(0, b"l", crate::db::Value::Set(Box::default()), 0, T0);
    // An empty collection never stays in a real keyspace, but it types as a set here.
    for line in [
        "get l",
        "set l x get",
        "getset l x",
        "getdel l",
        "getex l",
        "incr l",
        "incrbyfloat l 1",
        "append l x",
        "strlen l",
        "getrange l 0 1",
        "setrange l 0 x",
    ] {
        assert_eq!(run(&mut ks, &mut cl, line, T0), e(WT), "{line}");
    }
    assert_eq!(
        run(&mut ks, &mut cl, "lcs l x", T0),
        e("ERR The specified keys must contain string values")
    );
    assert_eq!(
        run(&mut ks, &mut cl, "mget l", T0),
        Reply::Array(vec![Reply::Nil])
    );
    assert_eq!(run(&mut ks, &mut cl, "type l", T0), Reply::simple("set"));
    assert_eq!(run(&mut ks, &mut cl, "set l x", T0), ok());
    assert_eq!(run(&mut ks, &mut cl, "type l", T0), Reply::simple("string"));
}

#[test]
fn counters_and_ranges() {
    script(&[
        ("incr n", Reply::Int(1)),
        ("incrby n 10", Reply::Int(11)),
        ("decrby n 20", Reply::Int(-9)),
        ("decr n", Reply::Int(-10)),
        ("incrby n abc", e(errors::NOT_INTEGER)),
        (
            "decrby n -9223372036854775808",
            e("ERR decrement would overflow"),
        ),
        ("set big 9223372036854775807", ok()),
        ("incr big", e(errors::OVERFLOW)),
        ("set sp 01", ok()),
        ("incr sp", e(errors::NOT_INTEGER)),
        ("set f 10.5", ok()),
        ("incrbyfloat f 0.1", b("10.6")),
        ("set f 5.0e3", ok()),
        ("incrbyfloat f 2.0e2", b("5200")),
        ("set f 3", ok()),
        ("incrbyfloat f 1.1", b("4.1")),
        ("incrbyfloat f abc", e(errors::NOT_FLOAT)),
        (
            "incrbyfloat f inf",
            e("ERR increment would produce NaN or Infinity"),
        ),
        ("append ap hello", Reply::Int(5)),
        ("append ap world", Reply::Int(10)),
        ("strlen ap", Reply::Int(10)),
        ("getrange ap 0 3", b("hell")),
        ("getrange ap -3 -1", b("rld")),
        ("getrange ap 5 2", b("")),
        ("getrange ap -1 -5", b("")),
        ("getrange ap 0 100", b("helloworld")),
        ("getrange nokey 0 1", b("")),
        ("setrange sr 5 hi", Reply::Int(7)),
        ("get sr", Reply::bulk(b"\0\0\0\0\0hi")),
        ("setrange sr 0 HELLO", Reply::Int(7)),
        ("setrange sr -1 x", e("ERR offset is out of range")),
        ("setrange sr 536870912 x", e(errors::STRING_TOO_LONG)),
    ]);
}

#[test]
fn lcs_like_redis() {
    script(&[
        ("set k1 ohmytext", ok()),
        ("set k2 mynewtext", ok()),
        ("lcs k1 k2", b("mytext")),
        ("lcs k1 k2 len", Reply::Int(6)),
        (
            "lcs k1 k2 idx minmatchlen 4 withmatchlen",
            Reply::Map(vec![
                (
                    b("matches"),
                    Reply::Array(vec![Reply::Array(vec![
                        Reply::Array(vec![Reply::Int(4), Reply::Int(7)]),
                        Reply::Array(vec![Reply::Int(5), Reply::Int(8)]),
                        Reply::Int(4),
                    ])]),
                ),
                (b("len"), Reply::Int(6)),
            ]),
        ),
        (
            "lcs k1 k2 len idx",
            e("ERR If you want both the length and indexes, please just use IDX."),
        ),
        ("lcs k1 k2 foo", e(errors::SYNTAX)),
    ]);
}

#[test]
fn keys_commands() {
    script(&[
        ("mset a 1 b 2 c 3", ok()),
        ("del a b nokey", Reply::Int(2)),
        ("exists a c c", Reply::Int(2)),
        ("rename c d", ok()),
        ("rename nokey x", e(errors::NO_SUCH_KEY)),
        ("rename d d", ok()),
        ("renamenx d d", Reply::Int(0)),
        ("set e 5", ok()),
        ("renamenx d e", Reply::Int(0)),
        ("expire d 100", Reply::Int(1)),
        ("rename d f", ok()),
        ("ttl f", Reply::Int(100)),
        ("copy f g", Reply::Int(1)),
        ("ttl g", Reply::Int(100)),
        ("copy f g", Reply::Int(0)),
        ("copy f g replace", Reply::Int(1)),
        (
            "copy f f",
            e("ERR source and destination objects are the same"),
        ),
        ("copy f f db 1", Reply::Int(1)),
        ("copy f f db 16", e(errors::DB_OUT_OF_RANGE)),
        ("copy f f db", e(errors::SYNTAX)),
        ("move f 1", Reply::Int(0)),
        ("move g 2", Reply::Int(1)),
        ("exists g", Reply::Int(0)),
        ("expire e 100 nx", Reply::Int(1)),
        ("expire e 100 nx", Reply::Int(0)),
        ("expire e 200 gt", Reply::Int(1)),
        ("expire e 100 gt", Reply::Int(0)),
        ("expire e 50 lt", Reply::Int(1)),
        ("ttl e", Reply::Int(50)),
        (
            "expire e 50 nx xx",
            e("ERR NX and XX, GT or LT options at the same time are not compatible"),
        ),
        (
            "expire e 50 gt lt",
            e("ERR GT and LT options at the same time are not compatible"),
        ),
        ("expire e 50 foo", e("ERR Unsupported option foo")),
        (
            "expire e 9223372036854775807",
            e("ERR invalid expire time in 'expire' command"),
        ),
        (
            "pexpire e 9223372036854775807",
            e("ERR invalid expire time in 'pexpire' command"),
        ),
        ("pexpireat e 9223372036854775807", Reply::Int(1)),
        ("expiretime e", Reply::Int(9_223_372_036_854_776)),
        ("persist e", Reply::Int(1)),
        ("persist e", Reply::Int(0)),
        ("expiretime e", Reply::Int(-1)),
        ("ttl nokey", Reply::Int(-2)),
        ("expire e -1", Reply::Int(1)),
        ("exists e", Reply::Int(0)),
        ("set n 12345", ok()),
        ("object encoding n", b("int")),
        ("set n 123456789012345678901", ok()),
        ("object encoding n", b("embstr")),
        ("object encoding nokey", Reply::Nil),
        ("object refcount n", Reply::Int(1)),
        ("object idletime n", Reply::Int(0)),
        (
            "object foo n",
            e("ERR unknown subcommand 'foo'. Try OBJECT HELP."),
        ),
        (
            "object encoding",
            e("ERR wrong number of arguments for 'object|encoding' command"),
        ),
        ("select 16", e(errors::DB_OUT_OF_RANGE)),
        ("select x", e(errors::NOT_INTEGER)),
        (
            "select 99999999999",
            e("ERR value is out of range, value must between -2147483648 and 2147483647"),
        ),
        ("swapdb x 1", e("ERR invalid first DB index")),
        ("swapdb 1 x", e("ERR invalid second DB index")),
        ("flushdb foo", e(errors::SYNTAX)),
        ("flushall async sync", e(errors::SYNTAX)),
        ("scan abc", e("ERR invalid cursor")),
        ("scan 0 count 0", e(errors::SYNTAX)),
        ("scan 0 match", e(errors::SYNTAX)),
    ]);
}

#[test]
fn select_swapdb_flush() {
    let mut ks = Keyspace::new(Config::default());
    let mut cl = Client::default();
    run(&mut ks, &mut cl, "set a 1", T0);
    assert_eq!(run(&mut ks, &mut cl, "select 3", T0), ok());
    assert_eq!(cl.db, 3);
    assert_eq!(run(&mut ks, &mut cl, "dbsize", T0), Reply::Int(0));
    assert_eq!(run(&mut ks, &mut cl, "swapdb 0 3", T0), ok());
    assert_eq!(run(&mut ks, &mut cl, "get a", T0), b("1"));
    assert_eq!(run(&mut ks, &mut cl, "flushdb", T0), ok());
    assert_eq!(run(&mut ks, &mut cl, "dbsize", T0), Reply::Int(0));
    cl.db = 0;
    run(&mut ks, &mut cl, "set b 1", T0);
    assert_eq!(run(&mut ks, &mut cl, "flushall sync", T0), ok());
    assert_eq!(ks.used_memory(), 0);
    check_accounting(&ks);
}

#[test]
fn expired_keys_disappear() {
    let mut ks = Keyspace::new(Config::default());
    let mut cl = Client::default();
    run(&mut ks, &mut cl, "set a 1 px 100", T0);
    run(&mut ks, &mut cl, "set b 1", T0);
    assert_eq!(
        run(&mut ks, &mut cl, "keys *", T0 + 100),
        Reply::Array(vec![b("b")])
    );
    assert_eq!(run(&mut ks, &mut cl, "dbsize", T0 + 100), Reply::Int(2));
    assert_eq!(run(&mut ks, &mut cl, "get a", T0 + 100), Reply::Nil);
    assert_eq!(run(&mut ks, &mut cl, "dbsize", T0 + 100), Reply::Int(1));
    assert_eq!(ks.stats().expired_keys, 1);
    check_accounting(&ks);
}

#[test]
fn watch_rules() {
    let mut ks = Keyspace::new(Config::default());
    let mut cl = Client::default();
    // Untouched: allowed.
    ks.watch(1, 0, b"k", T0);
    assert!(ks.exec_allowed(1, T0));
    // Changed by anyone: refused, and the watches are gone afterwards.
    ks.watch(1, 0, b"k", T0);
    run(&mut ks, &mut cl, "set k v", T0);
    assert!(!ks.exec_allowed(1, T0));
    assert!(ks.exec_allowed(1, T0));
    // Live at WATCH, expired since: refused even though nothing deleted it.
    run(&mut ks, &mut cl, "set t v px 10", T0);
    ks.watch(2, 0, b"t", T0);
    assert!(!ks.exec_allowed(2, T0 + 10));
    // Already expired at WATCH and then deleted lazily: no change.
    run(&mut ks, &mut cl, "set x v px 10", T0);
    ks.watch(3, 0, b"x", T0 + 20);
    assert_eq!(run(&mut ks, &mut cl, "get x", T0 + 20), Reply::Nil);
    assert!(ks.exec_allowed(3, T0 + 20));
    // FLUSHDB touches watched keys that existed, not the others.
    ks.watch(4, 0, b"k", T0);
    ks.watch(5, 0, b"absent", T0);
    run(&mut ks, &mut cl, "flushdb", T0);
    assert!(!ks.exec_allowed(4, T0));
    assert!(ks.exec_allowed(5, T0));
    // SWAPDB brings a key in.
    cl.db = 1;
    run(&mut ks, &mut cl, "set s v", T0);
    ks.watch(6, 0, b"s", T0);
    run(&mut ks, &mut cl, "swapdb 0 1", T0);
    assert!(!ks.exec_allowed(6, T0));
    // UNWATCH forgets.
    ks.watch(7, 0, b"s", T0);
    ks.unwatch(7);
    cl.db = 0;
    run(&mut ks, &mut cl, "del s", T0);
    assert!(ks.exec_allowed(7, T0));
    assert!(ks.watches.by_key.is_empty());
}

fn fill(ks: &mut Keyspace, cl: &mut Client, n: usize, ttl: bool) -> Vec<Reply> {
    (0..n)
        .map(|i| {
            let line = if ttl {
                format!("set key:{i} {} ex {}", "v".repeat(100), 1000 + i)
            } else {
                format!("set key:{i} {}", "v".repeat(100))
            };
            run(ks, cl, &line, T0 + i as u64)
        })
        .collect()
}

#[test]
fn eviction_policies() {
    for policy in [
        Policy::AllKeysLru,
        Policy::AllKeysRandom,
        Policy::VolatileLru,
        Policy::VolatileRandom,
        Policy::VolatileTtl,
    ] {
        let mut ks = Keyspace::new(Config {
            maxmemory: 50_000,
            policy,
            ..Config::default()
        });
        let mut cl = Client::default();
        let replies = fill(&mut ks, &mut cl, 2000, true);
        assert!(replies.iter().all(|r| *r == ok()), "{policy:?}");
        assert!(ks.stats().evicted_keys > 1000, "{policy:?}");
        // One command may overshoot (Redis checks before running it), never by much.
        assert!(ks.used_memory() <= 50_000 + 400, "{policy:?}");
        check_accounting(&ks);
    }
    // volatile-ttl evicts the nearest expiries: the survivors are the latest ones.
    let mut ks = Keyspace::new(Config {
        maxmemory: 50_000,
        policy: Policy::VolatileTtl,
        samples: 10,
        ..Config::default()
    });
    let mut cl = Client::default();
    fill(&mut ks, &mut cl, 2000, true);
    assert_eq!(run(&mut ks, &mut cl, "exists key:0", T0), Reply::Int(0));
    assert_eq!(run(&mut ks, &mut cl, "exists key:1999", T0), Reply::Int(1));
}

#[test]
fn oom_when_nothing_evictable() {
    for policy in [Policy::NoEviction, Policy::VolatileLru] {
        let mut ks = Keyspace::new(Config {
            maxmemory: 10_000,
            policy,
            ..Config::default()
        });
        let mut cl = Client::default();
        let replies = fill(&mut ks, &mut cl, 200, false);
        assert!(replies.contains(&e(errors::OOM)), "{policy:?}");
        // Reads and deletes still work.
        assert_eq!(run(&mut ks, &mut cl, "get key:0", T0), b(&"v".repeat(100)));
        assert_eq!(run(&mut ks, &mut cl, "del key:0", T0), Reply::Int(1));
        assert_eq!(ks.stats().evicted_keys, 0);
    }
}

#[test]
fn active_expiry_returns_memory() {
    let mut ks = Keyspace::new(Config::default());
    let mut cl = Client::default();
    for i in 0..3000 {
        let line = if i % 3 == 0 {
            format!("set p:{i} v")
        } else {
            format!("set t:{i} v px 1000")
        };
        run(&mut ks, &mut cl, &line, T0);
    }
    // Nothing expired yet: examines keys but deletes none.
    assert_eq!(ks.active_expire(T0 + 10, 100_000), 0);
    // Bounded effort deletes a part.
    let part = ks.active_expire(T0 + 1000, 100);
    assert!(part > 0 && part <= 100, "{part}");
    // Enough effort deletes every expired key.
    let mut total = part;
    for _ in 0..100 {
        total += ks.active_expire(T0 + 1000, 1000);
    }
    assert_eq!(total, 2000);
    assert_eq!(ks.dbsize(0), 1000);
    assert_eq!(ks.db(0).expires, 0);
    check_accounting(&ks);
}

#[test]
fn scan_sees_every_key_in_small_steps() {
    let mut ks = Keyspace::new(Config::default());
    let mut cl = Client::default();
    for i in 0..95 {
        run(&mut ks, &mut cl, &format!("set k{i} v"), T0);
    }
    let mut cursor = "0".to_string();
    let mut seen = std::collections::HashSet::new();
    loop {
        let r = run(&mut ks, &mut cl, &format!("scan {cursor} count 7"), T0);
        let Reply::Array(v) = r else { panic!("{r:?}") };
        let (Reply::Bulk(c), Reply::Array(keys)) = (&v[0], &v[1]) else {
            panic!()
        };
        for k in keys {
            let Reply::Bulk(k) = k else { panic!() };
            seen.insert(k.clone());
        }
        cursor = String::from_utf8(c.to_vec()).expect("cursor");
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 95);
}

proptest! {
    /// Keys present from the first SCAN call to the last are all returned, whatever is deleted
    /// and inserted between calls.
    #[test]
    fn scan_never_misses_a_stable_key(
        n in 1usize..120,
        count in 1i64..15,
        ops in proptest::collection::vec((0u8..3, 0usize..200), 0..200),
    ) {
        let mut ks = Keyspace::new(Config::default());
        let mut cl = Client::default();
        for i in 0..n {
            run(&mut ks, &mut cl, &format!("set s{i} v"), T0);
            run(&mut ks, &mut cl, &format!("set x{i} v"), T0);
        }
        let mut ops = ops.into_iter();
        let mut cursor = "0".to_string();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let r = run(&mut ks, &mut cl, &format!("scan {cursor} count {count}"), T0);
            let Reply::Array(v) = r else { panic!() };
            let (Reply::Bulk(c), Reply::Array(keys)) = (&v[0], &v[1]) else { panic!() };
            for k in keys {
                if let Reply::Bulk(k) = k { seen.insert(k.clone()); }
            }
            cursor = String::from_utf8(c.to_vec()).expect("cursor");
            if cursor == "0" { break; }
            // Mutate between calls: delete or insert volatile keys (x*, y*), never s*.
            for _ in 0..3 {
                if let Some((op, i)) = ops.next() {
                    let line = match op {
                        0 => format!("del x{i}"),
                        1 => format!("set y{i} v"),
                        _ => format!("del y{i}"),
                    };
                    run(&mut ks, &mut cl, &line, T0);
                }
            }
        }
        prop_assert_eq!(cursor.as_str(), "0");
        for i in 0..n {
            let k = Bytes::from(format!("s{i}"));
            prop_assert!(seen.contains(&k), "missed s{}", i);
        }
    }

    /// Two keyspaces given the same commands at the same times answer the same and end up
    /// identical, random commands and eviction included.
    #[test]
    fn deterministic(cmds in proptest::collection::vec((0u8..10, 0u32..60, 0u32..5), 1..300)) {
        let cfg = Config { maxmemory: 8_000, policy: Policy::AllKeysRandom, ..Config::default() };
        let mut a = Keyspace::new(cfg.clone());
        let mut b2 = Keyspace::new(cfg);
        let (mut ca, mut cb) = (Client::default(), Client::default());
        for (step, (op, k, v)) in cmds.into_iter().enumerate() {
            let line = match op {
                0 => format!("set k{k} {}", "x".repeat(v as usize * 40)),
                1 => format!("set k{k} v px {}", v * 10 + 1),
                2 => "randomkey".to_string(),
                3 => format!("del k{k}"),
                4 => format!("incr n{k}"),
                5 => format!("append k{k} abc"),
                6 => "scan 0 count 5".to_string(),
                7 => format!("rename k{k} k{v}"),
                8 => format!("copy k{k} c{v} replace"),
                _ => format!("expire k{k} {v}"),
            };
            let now = T0 + step as u64 * 7;
            let ra = run(&mut a, &mut ca, &line, now);
            let rb = run(&mut b2, &mut cb, &line, now);
            prop_assert_eq!(ra, rb, "{}", line);
            if step % 17 == 0 {
                prop_assert_eq!(a.active_expire(now, 50), b2.active_expire(now, 50));
            }
        }
        prop_assert!(a.db(0).map.iter().eq(b2.db(0).map.iter()));
        prop_assert_eq!(a.used_memory(), b2.used_memory());
        prop_assert_eq!(a.stats(), b2.stats());
        check_accounting(&a);
    }
}

proptest! {
    /// Any command of this crate with any arguments from a hostile pool never panics, and the
    /// memory and expiry accounting stays exact.
    #[test]
    fn never_panics_and_accounts(
        cmds in proptest::collection::vec(
            (0usize..64, proptest::collection::vec(0usize..40, 0..7), 0u64..5_000),
            1..120,
        )
    ) {
        const POOL: &[&str] = &[
            "a", "b", "c", "0", "1", "-1", "16", "abc", "", "9223372036854775807",
            "-9223372036854775808", "9223372036854775808", "1.5", "inf", "-inf", "nan", "1e400",
            "0x1p3", "nx", "xx", "gt", "lt", "ex", "px", "exat", "pxat", "keepttl", "get",
            "persist", "db", "replace", "match", "count", "type", "idx", "len", "minmatchlen",
            "withmatchlen", "*", "[a-",
        ];
        let names: Vec<&str> = crate::commands::all().map(|c| c.spec.name).collect();
        let mut ks = Keyspace::new(Config { maxmemory: 20_000, policy: Policy::AllKeysLru, ..Config::default() });
        let mut cl = Client::default();
        let mut now = T0;
        for (ci, argi, dt) in cmds {
            now += dt;
            let mut a = vec![Bytes::copy_from_slice(names[ci % names.len()].as_bytes())];
            a.extend(argi.iter().map(|&i| Bytes::copy_from_slice(POOL[i % POOL.len()].as_bytes())));
            let _ = runv(&mut ks, &mut cl, &a, now);
            prop_assert!(cl.db < ks.databases());
        }
        ks.active_expire(now, 1000);
        check_accounting(&ks);
    }
}

#[test]
fn volatile_policies_find_rare_volatile_keys() {
    let mut ks = Keyspace::new(Config::default());
    let mut cl = Client::default();
    fill(&mut ks, &mut cl, 500, false);
    for i in 0..3 {
        run(&mut ks, &mut cl, &format!("set vol:{i} v ex 100"), T0);
    }
    let used = ks.used_memory();
    ks.set_config(Config {
        maxmemory: used - 1,
        policy: Policy::VolatileLru,
        ..Config::default()
    });
    // The first write evicts a volatile key; once none is left, writes answer OOM.
    assert_eq!(run(&mut ks, &mut cl, "set x 1", T0), ok());
    assert!(ks.stats().evicted_keys >= 1);
    let mut saw_oom = false;
    for i in 0..10 {
        saw_oom |= run(&mut ks, &mut cl, &format!("set y{i} 1"), T0) == e(errors::OOM);
    }
    assert!(saw_oom);
    assert_eq!(ks.db(0).expires, 0);
    assert_eq!(ks.stats().evicted_keys, 3);
    check_accounting(&ks);
}
