//! Tests of the sets commands beyond the replies recorded from redis-server (those run in
//! `lists_tests.rs`): random members, `SPOP`'s strategies, cursors, encodings, accounting.

use std::collections::HashSet;

use redis_proto::Reply;

use crate::cmd::lists::tests::{b, T};
use crate::db::Value;

fn strings(r: Reply) -> Vec<String> {
    let (Reply::Array(v) | Reply::Set(v)) = r else {
        panic!("{r:?}")
    };
    v.into_iter()
        .map(|x| match x {
            Reply::Bulk(s) => String::from_utf8(s.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn set_of(t: &T, key: &str) -> Option<(bool, usize)> {
    match t.ks.db(0).map.get(key.as_bytes()).map(|e| &e.value) {
        Some(Value::Set(s)) => Some((s.is_intset(), s.len())),
        _ => None,
    }
}

#[test]
fn spop_counts_remove_what_they_return() {
    for (size, count) in [(100usize, 10usize), (100, 90), (10, 9), (5, 5), (5, 50)] {
        let mut t = T::new();
        for i in 0..size {
            t.r(&format!("sadd s m{i}"));
        }
        let got = strings(t.r(&format!("spop s {count}")));
        let uniq: HashSet<_> = got.iter().cloned().collect();
        assert_eq!(got.len(), count.min(size));
        assert_eq!(uniq.len(), got.len());
        let left: HashSet<_> = if count >= size {
            HashSet::new()
        } else {
            strings(t.r("smembers s")).into_iter().collect()
        };
        assert_eq!(left.len(), size - got.len());
        assert!(left.is_disjoint(&uniq));
        assert_eq!(t.r("scard s"), Reply::Int((size - got.len()) as i64));
    }
}

#[test]
fn spop_few_left_rebuilds_the_encoding() {
    // Redis's SPOP keeps the survivors in a new set created for its first member: integers
    // left over from a hash-table set become an intset again.
    let mut t = T::new();
    t.r("sadd s x");
    for i in 0..9 {
        t.r(&format!("sadd s {i}"));
    }
    t.r("srem s x");
    assert_eq!(set_of(&t, "s"), Some((false, 9)));
    let popped = strings(t.r("spop s 8"));
    assert_eq!(popped.len(), 8);
    assert_eq!(set_of(&t, "s"), Some((true, 1)));
}

#[test]
fn intset_replies_sorted_hash_table_not_converted_back() {
    let mut t = T::new();
    t.r("sadd s 5 -1 3");
    assert_eq!(strings(t.r("smembers s")), ["-1", "3", "5"]);
    assert_eq!(strings(t.r("sunion s")), ["-1", "3", "5"]);
    assert_eq!(strings(t.r("srandmember s 10")), ["-1", "3", "5"]);
    t.r("sadd s a");
    t.r("srem s a");
    assert_eq!(set_of(&t, "s"), Some((false, 3)));
    // SUNIONSTORE builds a fresh intset.
    t.r("sunionstore d s");
    assert_eq!(set_of(&t, "d"), Some((true, 3)));
    assert_eq!(strings(t.r("smembers d")), ["-1", "3", "5"]);
}

#[test]
fn srandmember_counts() {
    let mut t = T::new();
    for i in 0..40 {
        t.r(&format!("sadd s m{i}"));
    }
    let v = strings(t.r("srandmember s 30"));
    assert_eq!(v.iter().collect::<HashSet<_>>().len(), 30);
    let v = strings(t.r("srandmember s -100"));
    assert_eq!(v.len(), 100);
    assert_eq!(
        t.r("scard s"),
        Reply::Int(40),
        "SRANDMEMBER does not remove"
    );
    assert!(matches!(t.r("srandmember s"), Reply::Bulk(_)));
}

#[test]
fn sscan_big_set_sees_every_stable_member() {
    let mut t = T::new();
    for i in 0..600 {
        t.r(&format!("sadd s m{i}"));
    }
    let mut cursor = "0".to_string();
    let mut seen = HashSet::new();
    let mut round = 0;
    loop {
        let Reply::Array(parts) = t.r(&format!("sscan s {cursor} count 13")) else {
            panic!()
        };
        let Reply::Bulk(c) = &parts[0] else { panic!() };
        seen.extend(strings(parts[1].clone()));
        cursor = String::from_utf8(c.to_vec()).unwrap();
        if cursor == "0" {
            break;
        }
        for i in round * 5..round * 5 + 5 {
            if i < 200 {
                t.r(&format!("srem s m{i}"));
            }
        }
        t.r(&format!("sadd s new{round}"));
        round += 1;
    }
    for i in 200..600 {
        assert!(seen.contains(&format!("m{i}")), "m{i} missing");
    }
}

#[test]
fn smove_and_store_accounting() {
    let mut t = T::new();
    t.r("sadd a 1 2 3 x");
    t.r("sadd b 3 4");
    assert_eq!(t.r("smove a b x"), Reply::Int(1));
    assert_eq!(t.r("sismember b x"), Reply::Int(1));
    assert_eq!(t.r("sinterstore c a b"), Reply::Int(1));
    assert_eq!(strings(t.r("smembers c")), ["3"]);
    assert_eq!(t.r("sdiffstore c a a"), Reply::Int(0));
    assert_eq!(t.r("exists c"), Reply::Int(0));
    for k in ["a", "b"] {
        let Some(Value::Set(s)) = t.ks.db(0).map.get(k.as_bytes()).map(|e| &e.value) else {
            panic!()
        };
        let recount: usize = s
            .iter()
            .map(|m| m.len() + crate::types::ELEM_OVERHEAD)
            .sum();
        assert_eq!(s.bytes, recount);
    }
    t.r("srem a 1 2 3");
    t.r("srem b 3 4 x");
    assert_eq!(t.ks.used_memory(), 0);
    assert_eq!(t.r("spop a"), Reply::Nil);
    assert_eq!(t.r("sadd a only"), Reply::Int(1));
    assert_eq!(t.r("spop a"), b("only"));
    assert_eq!(t.ks.dbsize(0), 0);
}
