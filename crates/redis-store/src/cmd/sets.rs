//! The sets commands (`t_set.c`), with redis-server 7.0's replies and errors. Results that
//! Redis builds as a new set (`SUNION`, `SDIFF`, the `*STORE` forms, `SPOP` of the whole set)
//! are built the same way here, so an all-integer result replies in intset (ascending) order.

use bytes::Bytes;
use redis_proto::Reply;

use crate::cmd::hashes::{
    parse_cursor, parse_scan_opts, rand_below, sample_indices, scan_reply, scan_step,
    MAX_RANDOM_REPLY,
};
use crate::cmd::lists::{arg_positive, arg_range, err_msg, tri};
use crate::commands::{Command, Flags};
use crate::db::Value;
use crate::errors::{self, err};
use crate::keyspace::Keyspace;
use crate::types::Set;
use crate::{Cmd, Exec};

use crate::commands::cmd;

// `sintercard` is also `movablekeys` in COMMAND INFO (a flag `Flags` lacks).
pub const COMMANDS: &[Command] = &[
    cmd!(
        "sadd",
        -3,
        Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
        1,
        1,
        1,
        &["write", "set", "fast"],
        sadd
    ),
    cmd!(
        "srem",
        -3,
        Flags::WRITE.or(Flags::FAST),
        1,
        1,
        1,
        &["write", "set", "fast"],
        srem
    ),
    cmd!(
        "smembers",
        2,
        Flags::READONLY,
        1,
        1,
        1,
        &["read", "set", "slow"],
        smembers
    ),
    cmd!(
        "sismember",
        3,
        Flags::READONLY.or(Flags::FAST),
        1,
        1,
        1,
        &["read", "set", "fast"],
        sismember
    ),
    cmd!(
        "smismember",
        -3,
        Flags::READONLY.or(Flags::FAST),
        1,
        1,
        1,
        &["read", "set", "fast"],
        smismember
    ),
    cmd!(
        "scard",
        2,
        Flags::READONLY.or(Flags::FAST),
        1,
        1,
        1,
        &["read", "set", "fast"],
        scard
    ),
    cmd!(
        "spop",
        -2,
        Flags::WRITE.or(Flags::FAST),
        1,
        1,
        1,
        &["write", "set", "fast"],
        spop
    ),
    cmd!(
        "srandmember",
        -2,
        Flags::READONLY,
        1,
        1,
        1,
        &["read", "set", "slow"],
        srandmember
    ),
    cmd!(
        "smove",
        4,
        Flags::WRITE.or(Flags::FAST),
        1,
        2,
        1,
        &["write", "set", "fast"],
        smove
    ),
    cmd!(
        "sinter",
        -2,
        Flags::READONLY,
        1,
        -1,
        1,
        &["read", "set", "slow"],
        sinter
    ),
    cmd!(
        "sintercard",
        -3,
        Flags::READONLY,
        0,
        0,
        0,
        &["read", "set", "slow"],
        sintercard
    ),
    cmd!(
        "sunion",
        -2,
        Flags::READONLY,
        1,
        -1,
        1,
        &["read", "set", "slow"],
        sunion
    ),
    cmd!(
        "sdiff",
        -2,
        Flags::READONLY,
        1,
        -1,
        1,
        &["read", "set", "slow"],
        sdiff
    ),
    cmd!(
        "sinterstore",
        -3,
        Flags::WRITE.or(Flags::DENYOOM),
        1,
        -1,
        1,
        &["write", "set", "slow"],
        sinterstore
    ),
    cmd!(
        "sunionstore",
        -3,
        Flags::WRITE.or(Flags::DENYOOM),
        1,
        -1,
        1,
        &["write", "set", "slow"],
        sunionstore
    ),
    cmd!(
        "sdiffstore",
        -3,
        Flags::WRITE.or(Flags::DENYOOM),
        1,
        -1,
        1,
        &["write", "set", "slow"],
        sdiffstore
    ),
    cmd!(
        "sscan",
        -3,
        Flags::READONLY,
        1,
        1,
        1,
        &["read", "set", "slow"],
        sscan
    ),
];

enum Sk<'a> {
    Missing,
    Set(&'a Set),
}

fn read_set<'a>(
    ks: &'a mut Keyspace,
    db: usize,
    key: &[u8],
    now: u64,
    stats: bool,
) -> Result<Sk<'a>, Reply> {
    let e = if stats {
        ks.lookup_read(db, key, now)
    } else {
        ks.lookup(db, key, now)
    };
    match e.map(|e| &e.value) {
        None => Ok(Sk::Missing),
        Some(Value::Set(s)) => Ok(Sk::Set(s)),
        Some(_) => Err(Keyspace::wrongtype()),
    }
}

fn with_set<R>(c: &mut Cmd<'_>, key: &[u8], f: impl FnOnce(&mut Set) -> R) -> Option<R> {
    let db = c.client.db;
    c.ks.modify(db, key, c.now_ms, |e| match &mut e.value {
        Value::Set(s) => Some(f(s)),
        _ => None,
    })
    .flatten()
}

/// The stored set at `key` (after a successful `read_set`), without counting a lookup.
fn peek<'a>(ks: &'a Keyspace, db: usize, key: &[u8]) -> Option<&'a Set> {
    match ks.db(db).map.get(key).map(|e| &e.value) {
        Some(Value::Set(s)) => Some(s),
        _ => None,
    }
}

fn members_reply(s: &Set) -> Reply {
    Reply::Set(s.members().into_iter().map(Reply::bulk).collect())
}

fn sadd(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let db = c.client.db;
    let key = &args[1];
    let added = match tri!(read_set(c.ks, db, key, c.now_ms, false)) {
        Sk::Missing => {
            let mut s = Set::new_for(&args[2]);
            let n = args[2..].iter().filter(|m| s.insert(m)).count();
            c.ks.insert(db, key, Value::Set(Box::new(s)), 0, c.now_ms);
            n
        }
        Sk::Set(s) if args[2..].iter().all(|m| s.contains(m)) => 0,
        Sk::Set(_) => {
            with_set(c, key, |s| args[2..].iter().filter(|m| s.insert(m)).count()).unwrap_or(0)
        }
    };
    Reply::Int(added as i64).into()
}

fn srem(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let key = &args[1];
    match tri!(read_set(c.ks, c.client.db, key, c.now_ms, false)) {
        Sk::Missing => return Reply::Int(0).into(),
        Sk::Set(s) if !args[2..].iter().any(|m| s.contains(m)) => return Reply::Int(0).into(),
        Sk::Set(_) => {}
    }
    let n = with_set(c, key, |s| {
        let mut n = 0;
        for m in &args[2..] {
            if s.remove(m) {
                n += 1;
                if s.is_empty() {
                    break;
                }
            }
        }
        n
    })
    .unwrap_or(0);
    Reply::Int(n).into()
}

fn smove(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let db = c.client.db;
    let (src, dst, ele) = (&args[1], &args[2], &args[3]);
    // Redis: a missing source answers 0 before any type check; then both types.
    let src_is_set = match c.ks.lookup(db, src, c.now_ms).map(|e| &e.value) {
        None => return Reply::Int(0).into(),
        Some(v) => matches!(v, Value::Set(_)),
    };
    let dst_kind = match c.ks.lookup(db, dst, c.now_ms).map(|e| &e.value) {
        None => None,
        Some(Value::Set(_)) => Some(true),
        Some(_) => Some(false),
    };
    if !src_is_set || dst_kind == Some(false) {
        return Keyspace::wrongtype().into();
    }
    let is_member = peek(c.ks, db, src).is_some_and(|s| s.contains(ele));
    if src == dst {
        return Reply::Int(is_member as i64).into();
    }
    if !is_member {
        return Reply::Int(0).into();
    }
    with_set(c, src, |s| s.remove(ele));
    if dst_kind.is_none() {
        let mut s = Set::new_for(ele);
        s.insert(ele);
        c.ks.insert(db, dst, Value::Set(Box::new(s)), 0, c.now_ms);
    } else if !peek(c.ks, db, dst).is_some_and(|s| s.contains(ele)) {
        with_set(c, dst, |s| s.insert(ele));
    }
    Reply::Int(1).into()
}

fn sismember(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    match tri!(read_set(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Sk::Missing => Reply::Int(0).into(),
        Sk::Set(s) => Reply::Int(s.contains(&args[2]) as i64).into(),
    }
}

fn smismember(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let s = match tri!(read_set(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Sk::Missing => None,
        Sk::Set(s) => Some(s),
    };
    Reply::Array(
        args[2..]
            .iter()
            .map(|m| Reply::Int(s.is_some_and(|s| s.contains(m)) as i64))
            .collect(),
    )
    .into()
}

fn scard(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    match tri!(read_set(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Sk::Missing => Reply::Int(0).into(),
        Sk::Set(s) => Reply::Int(s.len() as i64).into(),
    }
}

fn spop(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let db = c.client.db;
    let key = &args[1];
    if args.len() > 3 {
        return err(errors::SYNTAX).into();
    }
    if args.len() == 3 {
        let count = tri!(arg_positive(&args[2], None)) as u64;
        let size = match tri!(read_set(c.ks, db, key, c.now_ms, false)) {
            Sk::Missing => return Reply::Set(vec![]).into(),
            Sk::Set(s) => s.len() as u64,
        };
        if count == 0 {
            return Reply::Set(vec![]).into();
        }
        if count >= size {
            let r = peek(c.ks, db, key).map_or(Reply::Set(vec![]), |s| {
                let mut u = Set::new_intset();
                for m in s.iter() {
                    u.insert(m);
                }
                members_reply(&u)
            });
            c.ks.remove(db, key);
            return r.into();
        }
        let remaining = size - count;
        if remaining * 5 > count {
            let mut picks = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let len = peek(c.ks, db, key).map_or(0, Set::len);
                if len == 0 {
                    break;
                }
                let i = rand_below(c.ks, len);
                if let Some(m) = with_set(c, key, |s| s.remove_index(i)).flatten() {
                    picks.push(Reply::bulk(&m));
                }
            }
            return Reply::Set(picks).into();
        }
        // Few remain: Redis moves the survivors to a new set and replies the old one.
        let keep = sample_indices(c.ks, size as usize, remaining as usize);
        let reply = with_set(c, key, |s| {
            let mut kept: Vec<Box<[u8]>> = Vec::with_capacity(keep.len());
            for &i in &keep {
                if let Some(m) = s.get_index(i) {
                    kept.push(m.into());
                }
            }
            let mut newset = kept
                .first()
                .map_or_else(Set::new_intset, |f| Set::new_for(f));
            for m in &kept {
                newset.insert(m);
                s.remove(m);
            }
            let r = members_reply(s);
            *s = newset;
            r
        });
        return reply.unwrap_or(Reply::Set(vec![])).into();
    }
    let size = match tri!(read_set(c.ks, db, key, c.now_ms, false)) {
        Sk::Missing => return Reply::Nil.into(),
        Sk::Set(s) => s.len(),
    };
    let i = rand_below(c.ks, size);
    match with_set(c, key, |s| s.remove_index(i)).flatten() {
        Some(m) => Reply::bulk(&m).into(),
        None => Reply::Nil.into(),
    }
}

fn srandmember(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let db = c.client.db;
    let key = &args[1];
    if args.len() > 3 {
        return err(errors::SYNTAX).into();
    }
    if args.len() == 3 {
        let l = tri!(arg_range(&args[2], -i64::MAX, i64::MAX, None));
        let size = match tri!(read_set(c.ks, db, key, c.now_ms, true)) {
            Sk::Missing => return Reply::Array(vec![]).into(),
            Sk::Set(s) => s.len(),
        };
        let count = l.unsigned_abs();
        if count == 0 {
            return Reply::Array(vec![]).into();
        }
        let uniq = l > 0;
        let picks: Vec<usize> = if !uniq || count == 1 {
            if count > MAX_RANDOM_REPLY {
                return err_msg("value is out of range").into();
            }
            (0..count).map(|_| rand_below(c.ks, size)).collect()
        } else if count as usize >= size {
            let s = peek(c.ks, db, key);
            return Reply::Array(
                s.map(|s| s.members().into_iter().map(Reply::bulk).collect())
                    .unwrap_or_default(),
            )
            .into();
        } else {
            sample_indices(c.ks, size, count as usize)
        };
        let s = peek(c.ks, db, key);
        return Reply::Array(
            picks
                .into_iter()
                .filter_map(|i| s.and_then(|s| s.get_index(i)).map(Reply::bulk))
                .collect(),
        )
        .into();
    }
    let size = match tri!(read_set(c.ks, db, key, c.now_ms, true)) {
        Sk::Missing => return Reply::Nil.into(),
        Sk::Set(s) => s.len(),
    };
    let i = rand_below(c.ks, size);
    peek(c.ks, db, key)
        .and_then(|s| s.get_index(i))
        .map_or(Reply::Nil, Reply::bulk)
        .into()
}

/// Look up every key of a multi-set command (`lookupKeyRead`, in order: expiry, statistics)
/// and answer WRONGTYPE at the first non-set; then borrow them all (`None`: missing), without
/// copying.
fn load_sets<'a>(c: &'a mut Cmd<'_>, keys: &[Bytes]) -> Result<Vec<Option<&'a Set>>, Reply> {
    let db = c.client.db;
    // What the lookups found, not the map: a read-only run leaves expired keys in place.
    let mut found = Vec::with_capacity(keys.len());
    for k in keys {
        found.push(matches!(read_set(c.ks, db, k, c.now_ms, true)?, Sk::Set(_)));
    }
    let ks: &'a Keyspace = c.ks;
    Ok(keys
        .iter()
        .zip(found)
        .map(|(k, f)| if f { peek(ks, db, k) } else { None })
        .collect())
}

/// The intersection, iterating the smallest set in its reply order; stops at `limit` (0: no
/// limit). `None` if a key is missing.
fn intersect(sets: &[Option<&Set>], limit: usize) -> Option<Vec<Box<[u8]>>> {
    let mut present: Vec<&Set> = Vec::with_capacity(sets.len());
    for s in sets {
        present.push((*s)?);
    }
    // A stable sort by size, like Redis's qsort over cardinalities (ties may differ).
    present.sort_by_key(|s| s.len());
    let (first, rest) = present.split_first()?;
    let mut out = Vec::new();
    for m in first.members() {
        if rest.iter().all(|s| s.contains(m)) {
            out.push(Box::<[u8]>::from(m));
            if limit != 0 && out.len() >= limit {
                break;
            }
        }
    }
    Some(out)
}

fn store(c: &mut Cmd<'_>, dst: &[u8], set: Set) -> Exec {
    let db = c.client.db;
    let n = set.len();
    if n > 0 {
        c.ks.insert(db, dst, Value::Set(Box::new(set)), 0, c.now_ms);
    } else {
        c.ks.lookup(db, dst, c.now_ms);
        c.ks.remove(db, dst);
    }
    Reply::Int(n as i64).into()
}

fn inter_generic(c: &mut Cmd<'_>, keys: &[Bytes], dst: Option<&[u8]>) -> Exec {
    let res = intersect(&tri!(load_sets(c, keys)), 0);
    match dst {
        Some(dst) => {
            let mut s = Set::new_intset();
            for m in res.unwrap_or_default() {
                s.insert(&m);
            }
            store(c, dst, s)
        }
        None => Reply::Set(
            res.unwrap_or_default()
                .iter()
                .map(|m| Reply::bulk(m))
                .collect(),
        )
        .into(),
    }
}

fn smembers(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    match tri!(read_set(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Sk::Missing => Reply::Set(vec![]).into(),
        Sk::Set(s) => members_reply(s).into(),
    }
}

fn sinter(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    inter_generic(c, &args[1..], None)
}

fn sinterstore(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    inter_generic(c, &args[2..], Some(&args[1]))
}

fn sintercard(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let numkeys = tri!(arg_range(
        &args[1],
        1,
        i64::MAX,
        Some("numkeys should be greater than 0")
    )) as u64;
    if numkeys > (args.len() - 2) as u64 {
        return err_msg("Number of keys can't be greater than number of args").into();
    }
    let numkeys = numkeys as usize;
    let mut limit = 0i64;
    let mut j = 2 + numkeys;
    while j < args.len() {
        if args[j].eq_ignore_ascii_case(b"LIMIT") && j + 1 < args.len() {
            j += 1;
            limit = tri!(arg_positive(&args[j], Some("LIMIT can't be negative")));
        } else {
            return err(errors::SYNTAX).into();
        }
        j += 1;
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let sets = tri!(load_sets(c, &args[2..2 + numkeys]));
    Reply::Int(intersect(&sets, limit).map_or(0, |v| v.len()) as i64).into()
}

fn union_diff(c: &mut Cmd<'_>, keys: &[Bytes], dst: Option<&[u8]>, diff: bool) -> Exec {
    let sets = tri!(load_sets(c, keys));
    let mut out = Set::new_intset();
    if !diff {
        for s in sets.iter().flatten() {
            for m in s.iter() {
                out.insert(m);
            }
        }
    } else if let Some(Some(first)) = sets.first() {
        // The same key twice (Redis compares the objects) empties the result.
        let same = keys[1..].iter().any(|k| *k == keys[0]);
        if !same {
            for m in first.iter() {
                if !sets[1..].iter().flatten().any(|s| s.contains(m)) {
                    out.insert(m);
                }
            }
        }
    }
    match dst {
        Some(dst) => store(c, dst, out),
        None => members_reply(&out).into(),
    }
}

fn sunion(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    union_diff(c, &args[1..], None, false)
}
fn sunionstore(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    union_diff(c, &args[2..], Some(&args[1]), false)
}
fn sdiff(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    union_diff(c, &args[1..], None, true)
}
fn sdiffstore(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    union_diff(c, &args[2..], Some(&args[1]), true)
}

fn sscan(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let cursor = tri!(parse_cursor(&args[2]));
    let s = match tri!(read_set(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Sk::Missing => return scan_reply(0, vec![]).into(),
        Sk::Set(s) => s,
    };
    let (count, pat) = tri!(parse_scan_opts(args));
    let keep = |m: &[u8]| pat.as_ref().is_none_or(|p| crate::glob::matches(p, m));
    let mut out = Vec::new();
    // An intset (and a set no bigger than COUNT) answers everything at once, as Redis does.
    let next = if s.is_intset() || s.len() <= count {
        out.extend(s.members().into_iter().filter(|m| keep(m)).map(Reply::bulk));
        0
    } else {
        let (idx, next) = scan_step(cursor, s.len(), count);
        out.extend(
            idx.into_iter()
                .filter_map(|i| s.get_index(i))
                .filter(|m| keep(m))
                .map(Reply::bulk),
        );
        next
    };
    scan_reply(next, out).into()
}

#[cfg(test)]
#[path = "sets_tests.rs"]
mod tests;
