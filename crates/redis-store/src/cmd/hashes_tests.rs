//! Tests of the hashes commands beyond the replies recorded from redis-server (those run in
//! `lists_tests.rs`): cursors over big hashes, random fields, accounting, the command table.

use std::collections::HashSet;

use redis_proto::{Protocol, Reply};

use super::{parse_cursor, scan_step};
use crate::cmd::lists::tests::{b, bs, e, T};
use crate::db::Value;
use crate::num::LongDouble;

fn scan_all(
    t: &mut T,
    cmd: &str,
    key: &str,
    count: usize,
    mut between: impl FnMut(&mut T, usize),
) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    let mut round = 0;
    loop {
        let r = t.r(&format!("{cmd} {key} {cursor} count {count}"));
        let Reply::Array(parts) = r else {
            panic!("{r:?}")
        };
        let (Reply::Bulk(c), Reply::Array(items)) = (&parts[0], &parts[1]) else {
            panic!("{parts:?}")
        };
        let step = if cmd == "hscan" { 2 } else { 1 };
        for it in items.iter().step_by(step) {
            let Reply::Bulk(x) = it else { panic!() };
            seen.push(String::from_utf8(x.to_vec()).unwrap());
        }
        cursor = String::from_utf8(c.to_vec()).unwrap();
        if cursor == "0" {
            return seen;
        }
        between(t, round);
        round += 1;
        assert!(round < 10_000, "scan does not terminate");
    }
}

#[test]
fn hscan_big_hash_sees_every_stable_field_despite_deletes() {
    let mut t = T::new();
    for i in 0..1000 {
        t.r(&format!("hset h f{i} v{i}"));
    }
    // Delete fields 0..300 while scanning; the others must all be returned.
    let seen = scan_all(&mut t, "hscan", "h", 17, |t, round| {
        for i in round * 10..round * 10 + 10 {
            if i < 300 {
                t.r(&format!("hdel h f{i}"));
            }
        }
    });
    let seen: HashSet<String> = seen.into_iter().collect();
    for i in 300..1000 {
        assert!(seen.contains(&format!("f{i}")), "f{i} missing");
    }
}

#[test]
fn hscan_small_hash_answers_at_once() {
    let mut t = T::new();
    for i in 0..128 {
        t.r(&format!("hset h f{i} v{i}"));
    }
    let r = t.r("hscan h 0 count 1");
    let Reply::Array(parts) = r else { panic!() };
    assert_eq!(parts[0], b("0"));
    assert_eq!(parts[1], {
        let mut v = Vec::new();
        for i in 0..128 {
            v.push(b(&format!("f{i}")));
            v.push(b(&format!("v{i}")));
        }
        Reply::Array(v)
    });
}

#[test]
fn scan_steps_cover_everything_once_without_changes() {
    for len in [0usize, 1, 5, 129, 1000] {
        let mut seen = vec![0u8; len];
        let mut cursor = 0;
        loop {
            let (idx, next) = scan_step(cursor, len, 7);
            for i in idx {
                seen[i] += 1;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert!(seen.iter().all(|&n| n == 1), "len {len}");
    }
}

#[test]
fn cursors_parse_like_strtoul() {
    assert_eq!(parse_cursor(b"0"), Ok(0));
    assert_eq!(parse_cursor(b""), Ok(0));
    assert_eq!(parse_cursor(b"+7"), Ok(7));
    assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
    assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
    for bad in [&b"18446744073709551616"[..], b" 1", b"1 ", b"x", b"-", b"+"] {
        assert_eq!(parse_cursor(bad), Err(e("ERR invalid cursor")), "{bad:?}");
    }
}

#[test]
fn hrandfield_shapes_and_uniqueness() {
    let mut t = T::new();
    for i in 0..50 {
        t.r(&format!("hset h f{i} {i}"));
    }
    let Reply::Bulk(f) = t.r("hrandfield h") else {
        panic!()
    };
    assert!(f.starts_with(b"f"));
    let Reply::Array(v) = t.r("hrandfield h 10") else {
        panic!()
    };
    let uniq: HashSet<_> = v.iter().map(|r| format!("{r:?}")).collect();
    assert_eq!((v.len(), uniq.len()), (10, 10));
    let Reply::Array(v) = t.r("hrandfield h -200") else {
        panic!()
    };
    assert_eq!(v.len(), 200);
    let Reply::Array(v) = t.r("hrandfield h -3 withvalues") else {
        panic!()
    };
    assert_eq!(v.len(), 6, "RESP2: flat field, value pairs");
    t.client.proto = Protocol::Resp3;
    let Reply::Array(v) = t.r("hrandfield h 3 withvalues") else {
        panic!()
    };
    assert_eq!(v.len(), 3);
    for pair in v {
        let Reply::Array(p) = pair else { panic!() };
        let (Reply::Bulk(k), Reply::Bulk(val)) = (&p[0], &p[1]) else {
            panic!()
        };
        assert_eq!(&k[1..], &val[..], "value belongs to its field");
    }
    // Deterministic: the same commands on a fresh keyspace give the same answers.
    let run = || {
        let mut t = T::new();
        t.r("hset h a 1 b 2 c 3 d 4 e 5");
        (t.r("hrandfield h -5"), t.r("hrandfield h 2"))
    };
    assert_eq!(run(), run());
}

#[test]
fn hash_accounting_returns_to_zero() {
    let mut t = T::new();
    for i in 0..300 {
        t.r(&format!("hset h f{i} {}", "x".repeat(i % 7)));
    }
    t.r("hincrbyfloat h fl 1.5");
    t.r("hincrby h n 3");
    let Some(Value::Hash(h)) = t.ks.db(0).map.get(&b"h"[..]).map(|e| &e.value) else {
        panic!()
    };
    let recount: usize = h
        .iter()
        .map(|(k, v)| k.len() + v.len() + crate::types::ELEM_OVERHEAD)
        .sum();
    assert_eq!(h.bytes, recount);
    for i in 0..300 {
        t.r(&format!("hdel h f{i}"));
    }
    t.r("hdel h fl n");
    assert_eq!(t.ks.dbsize(0), 0);
    assert_eq!(t.ks.used_memory(), 0);
}

#[test]
fn hincrbyfloat_numbers() {
    let human = |s: &[u8]| LongDouble::parse(s).unwrap().to_human();
    assert_eq!(human(b"-0.0"), "0");
    assert_eq!(human(b"0x1p-2"), "0.25");
    assert!(!LongDouble::parse(b"inf").unwrap().is_finite());
    assert!(!LongDouble::parse(b"-Infinity").unwrap().is_finite());
    assert_eq!(LongDouble::parse(b"nan"), None);
    assert_eq!(LongDouble::parse(b" 1"), None);
    let mut t = T::new();
    assert_eq!(t.r("hincrbyfloat h f 0.1"), b("0.1"));
    assert_eq!(t.r("hincrbyfloat h f 0.2"), b("0.3"));
    assert_eq!(t.r("hset h s x"), Reply::Int(1));
    assert_eq!(
        t.r("hincrbyfloat h s 1"),
        e("ERR hash value is not a float")
    );
    assert_eq!(
        t.r("hincrbyfloat h f inf"),
        e("ERR value is NaN or Infinity")
    );
    assert_eq!(t.r("hmget h f s"), bs(&["0.3", "x"]));
}

#[test]
fn specs_match_command_info() {
    let s = crate::lookup(b"HSET").unwrap().spec;
    assert_eq!(
        (s.name, s.arity, s.first_key, s.last_key, s.step),
        ("hset", -4, 1, 1, 1)
    );
    assert_eq!(
        s.flags.names().collect::<Vec<_>>(),
        ["write", "denyoom", "fast"]
    );
    assert_eq!(s.categories, ["write", "hash", "fast"]);
    let s = crate::lookup(b"blmove").unwrap().spec;
    assert_eq!(
        s.flags.names().collect::<Vec<_>>(),
        ["write", "denyoom", "noscript", "blocking"]
    );
    assert_eq!((s.arity, s.first_key, s.last_key), (6, 1, 2));
    let s = crate::lookup(b"blpop").unwrap().spec;
    assert_eq!((s.first_key, s.last_key, s.step), (1, -2, 1));
    assert_eq!(s.key_indices(4), vec![1, 2]);
    let s = crate::lookup(b"sintercard").unwrap().spec;
    assert_eq!((s.arity, s.first_key), (-3, 0));
    for name in [
        "lpush",
        "rpush",
        "lpushx",
        "rpushx",
        "lpop",
        "rpop",
        "llen",
        "lrange",
        "lindex",
        "lset",
        "linsert",
        "lrem",
        "ltrim",
        "lpos",
        "lmove",
        "rpoplpush",
        "lmpop",
        "blpop",
        "brpop",
        "blmove",
        "brpoplpush",
        "blmpop",
        "hset",
        "hsetnx",
        "hget",
        "hmget",
        "hmset",
        "hdel",
        "hexists",
        "hlen",
        "hkeys",
        "hvals",
        "hgetall",
        "hincrby",
        "hincrbyfloat",
        "hstrlen",
        "hrandfield",
        "hscan",
        "sadd",
        "srem",
        "smembers",
        "sismember",
        "smismember",
        "scard",
        "spop",
        "srandmember",
        "smove",
        "sinter",
        "sintercard",
        "sunion",
        "sdiff",
        "sinterstore",
        "sunionstore",
        "sdiffstore",
        "sscan",
    ] {
        assert!(crate::lookup(name.as_bytes()).is_some(), "{name}");
    }
}
