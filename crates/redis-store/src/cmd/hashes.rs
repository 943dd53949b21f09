//! The hashes commands (`t_hash.c`), with redis-server 7.0's replies and errors. Also the
//! number helpers they share with the blocking timeouts and `SSCAN` (`string2ld`,
//! `ld2string`'s human mode, the scan cursor).

use bytes::Bytes;
use redis_proto::{Protocol, Reply};

use crate::args::parse_i64;
use crate::cmd::lists::{arg_long, arg_range, err_msg, tri};
use crate::commands::{Command, Flags};
use crate::db::Value;
use crate::errors::{self, err, wrong_arity};
use crate::keyspace::Keyspace;
use crate::types::Hash;
use crate::{Cmd, Exec};

use crate::num::LongDouble;

use crate::commands::cmd;

pub const COMMANDS: &[Command] = &[
    cmd!(
        "hset",
        -4,
        Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
        1,
        1,
        1,
        &["write", "hash", "fast"],
        hset
    ),
    cmd!(
        "hsetnx",
        4,
        Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
        1,
        1,
        1,
        &["write", "hash", "fast"],
        hsetnx
    ),
    cmd!(
        "hget",
        3,
        Flags::READONLY.or(Flags::FAST),
        1,
        1,
        1,
        &["read", "hash", "fast"],
        hget
    ),
    cmd!(
        "hmget",
        -3,
        Flags::READONLY.or(Flags::FAST),
        1,
        1,
        1,
        &["read", "hash", "fast"],
        hmget
    ),
    cmd!(
        "hmset",
        -4,
        Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
        1,
        1,
        1,
        &["write", "hash", "fast"],
        hmset
    ),
    cmd!(
        "hdel",
        -3,
        Flags::WRITE.or(Flags::FAST),
        1,
        1,
        1,
        &["write", "hash", "fast"],
        hdel
    ),
    cmd!(
        "hexists",
        3,
        Flags::READONLY.or(Flags::FAST),
        1,
        1,
        1,
        &["read", "hash", "fast"],
        hexists
    ),
    cmd!(
        "hlen",
        2,
        Flags::READONLY.or(Flags::FAST),
        1,
        1,
        1,
        &["read", "hash", "fast"],
        hlen
    ),
    cmd!(
        "hkeys",
        2,
        Flags::READONLY,
        1,
        1,
        1,
        &["read", "hash", "slow"],
        hkeys
    ),
    cmd!(
        "hvals",
        2,
        Flags::READONLY,
        1,
        1,
        1,
        &["read", "hash", "slow"],
        hvals
    ),
    cmd!(
        "hgetall",
        2,
        Flags::READONLY,
        1,
        1,
        1,
        &["read", "hash", "slow"],
        hgetall
    ),
    cmd!(
        "hincrby",
        4,
        Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
        1,
        1,
        1,
        &["write", "hash", "fast"],
        hincrby
    ),
    cmd!(
        "hincrbyfloat",
        4,
        Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
        1,
        1,
        1,
        &["write", "hash", "fast"],
        hincrbyfloat
    ),
    cmd!(
        "hstrlen",
        3,
        Flags::READONLY.or(Flags::FAST),
        1,
        1,
        1,
        &["read", "hash", "fast"],
        hstrlen
    ),
    cmd!(
        "hrandfield",
        -2,
        Flags::READONLY,
        1,
        1,
        1,
        &["read", "hash", "slow"],
        hrandfield
    ),
    cmd!(
        "hscan",
        -3,
        Flags::READONLY,
        1,
        1,
        1,
        &["read", "hash", "slow"],
        hscan
    ),
];

/// The most elements a random-sampling reply (`HRANDFIELD`/`SRANDMEMBER` with a negative
/// count) may hold: Redis would build any size; keel refuses to build a reply that could
/// exhaust memory (`ERR value is out of range`).
pub(crate) const MAX_RANDOM_REPLY: u64 = 1 << 24;

// ---- number helpers ----

/// `string2ld`: a `strtold` float (decimal, `inf`, hex `0x1p3`), no spaces, not NaN. Held in
/// an `f64` (Redis uses an 80-bit long double: the last digits of `HINCRBYFLOAT` results can
/// differ).
pub(crate) fn parse_long_double(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s.len() >= 5 * 1024 || s[0].is_ascii_whitespace() {
        return None;
    }
    let t = std::str::from_utf8(s).ok()?;
    let (neg, body) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let v = if body.len() > 2 && (body.starts_with("0x") || body.starts_with("0X")) {
        parse_hex_float(&body[2..])?
    } else {
        // Rust's grammar is strtold's decimal one (plus inf/infinity/nan), minus hex.
        if body.starts_with(['+', '-']) {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    if v.is_nan() {
        return None;
    }
    Some(if neg { -v } else { v })
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = match s.find(['p', 'P']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for ch in int.chars() {
        v = v * 16.0 + ch.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for ch in frac.chars() {
        v += ch.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    if let Some(e) = exp {
        let e: i32 = match e.strip_prefix('+') {
            Some(rest) if !rest.starts_with(['+', '-']) => rest.parse().ok()?,
            Some(_) => return None,
            None => e.parse().ok()?,
        };
        v *= 2f64.powi(e.clamp(-20000, 20000));
    }
    Some(v)
}

/// `parseScanCursorOrReply`: `strtoul` rules (a leading `-` wraps, as in C).
pub(crate) fn parse_cursor(s: &[u8]) -> Result<u64, Reply> {
    let bad = || err_msg("invalid cursor");
    if s.is_empty() {
        return Ok(0);
    }
    if s[0].is_ascii_whitespace() {
        return Err(bad());
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let mut v: u64 = 0;
    for &ch in digits {
        if !ch.is_ascii_digit() {
            return Err(bad());
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((ch - b'0') as u64))
            .ok_or_else(bad)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// `HSCAN`/`SSCAN` options after the cursor: `(count, pattern)`; a `*` pattern is none.
pub(crate) fn parse_scan_opts(args: &[Bytes]) -> Result<(usize, Option<Bytes>), Reply> {
    let mut count: i64 = 10;
    let mut pat = None;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - i >= 2;
        if args[i].eq_ignore_ascii_case(b"count") && more {
            count = arg_long(&args[i + 1])?;
            if count < 1 {
                return Err(err(errors::SYNTAX));
            }
            i += 2;
        } else if args[i].eq_ignore_ascii_case(b"match") && more {
            let p = args[i + 1].clone();
            pat = if &p[..] == b"*" { None } else { Some(p) };
            i += 2;
        } else {
            return Err(err(errors::SYNTAX));
        }
    }
    Ok((count as usize, pat))
}

/// One step of a cursor scan over `len` indexed elements, from the top index down (so that a
/// swap-remove never moves an unvisited element past the cursor). Returns the indices to
/// visit and the next cursor (0: done).
pub(crate) fn scan_step(cursor: u64, len: usize, count: usize) -> (Vec<usize>, u64) {
    let top = if cursor == 0 {
        len
    } else {
        (cursor.min(len as u64)) as usize
    };
    let n = count.min(top);
    let idx: Vec<usize> = (top - n..top).rev().collect();
    (idx, (top - n) as u64)
}

pub(crate) fn scan_reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(cursor.to_string())),
        Reply::Array(items),
    ])
}

/// A uniformly random index below `n` from the keyspace's generator (0 when `n` is 0).
pub(crate) fn rand_below(ks: &mut Keyspace, n: usize) -> usize {
    (ks.random_u64() % (n as u64).max(1)) as usize
}

/// `k` distinct indices of `0..n` (k < n), in ascending order (selection sampling).
pub(crate) fn sample_indices(ks: &mut Keyspace, n: usize, k: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(k);
    let mut needed = k;
    for i in 0..n {
        if needed == 0 {
            break;
        }
        let left = n - i;
        if rand_below(ks, left) < needed {
            out.push(i);
            needed -= 1;
        }
    }
    out
}

// ---- access ----

enum Hk<'a> {
    Missing,
    Hash(&'a Hash),
}

fn read_hash<'a>(
    ks: &'a mut Keyspace,
    db: usize,
    key: &[u8],
    now: u64,
    stats: bool,
) -> Result<Hk<'a>, Reply> {
    let e = if stats {
        ks.lookup_read(db, key, now)
    } else {
        ks.lookup(db, key, now)
    };
    match e.map(|e| &e.value) {
        None => Ok(Hk::Missing),
        Some(Value::Hash(h)) => Ok(Hk::Hash(h)),
        Some(_) => Err(Keyspace::wrongtype()),
    }
}

/// `hashTypeLookupWriteOrCreate` + a change: runs `f` on the hash at `key`, creating it if
/// missing (an empty result is not stored).
fn write_hash<R>(c: &mut Cmd<'_>, key: &[u8], f: impl FnOnce(&mut Hash) -> R) -> Result<R, Reply> {
    let db = c.client.db;
    match read_hash(c.ks, db, key, c.now_ms, false)? {
        Hk::Hash(_) => Ok(c
            .ks
            .modify(db, key, c.now_ms, |e| match &mut e.value {
                Value::Hash(h) => Some(f(h)),
                _ => None,
            })
            .flatten()
            .ok_or_else(Keyspace::wrongtype)?),
        Hk::Missing => {
            let mut h = Hash::new();
            let r = f(&mut h);
            if !h.is_empty() {
                c.ks.insert(db, key, Value::Hash(Box::new(h)), 0, c.now_ms);
            }
            Ok(r)
        }
    }
}

// ---- commands ----

fn hset_generic(c: &mut Cmd<'_>, name: &str, ok_reply: bool) -> Exec {
    let args = c.args;
    if args.len() % 2 == 1 {
        return wrong_arity(name).into();
    }
    let created = tri!(write_hash(c, &args[1], |h| {
        args[2..]
            .chunks_exact(2)
            .filter(|p| h.insert(&p[0], &p[1]))
            .count()
    }));
    if ok_reply {
        Reply::ok().into()
    } else {
        Reply::Int(created as i64).into()
    }
}

fn hset(c: &mut Cmd<'_>) -> Exec {
    hset_generic(c, "hset", false)
}
fn hmset(c: &mut Cmd<'_>) -> Exec {
    hset_generic(c, "hmset", true)
}

/// The current value of `field` (a copy), checking the key's type first; no change is made,
/// so a failing increment leaves `WATCH` untouched, as in Redis.
fn field_value(c: &mut Cmd<'_>, key: &[u8], field: &[u8]) -> Result<Option<Box<[u8]>>, Reply> {
    Ok(match read_hash(c.ks, c.client.db, key, c.now_ms, false)? {
        Hk::Missing => None,
        Hk::Hash(h) => h.get(field).map(Box::from),
    })
}

fn hsetnx(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    if tri!(field_value(c, &args[1], &args[2])).is_some() {
        return Reply::Int(0).into();
    }
    tri!(write_hash(c, &args[1], |h| h.insert(&args[2], &args[3])));
    Reply::Int(1).into()
}

fn hget(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    match tri!(read_hash(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Hk::Missing => Reply::Nil.into(),
        Hk::Hash(h) => h.get(&args[2]).map_or(Reply::Nil, Reply::bulk).into(),
    }
}

fn hmget(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let h = match tri!(read_hash(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Hk::Missing => None,
        Hk::Hash(h) => Some(h),
    };
    Reply::Array(
        args[2..]
            .iter()
            .map(|f| h.and_then(|h| h.get(f)).map_or(Reply::Nil, Reply::bulk))
            .collect(),
    )
    .into()
}

fn hdel(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let db = c.client.db;
    match tri!(read_hash(c.ks, db, &args[1], c.now_ms, false)) {
        Hk::Missing => return Reply::Int(0).into(),
        Hk::Hash(h) if !args[2..].iter().any(|f| h.contains(f)) => return Reply::Int(0).into(),
        Hk::Hash(_) => {}
    }
    let deleted =
        c.ks.modify(db, &args[1], c.now_ms, |e| match &mut e.value {
            Value::Hash(h) => {
                let mut n = 0;
                for f in &args[2..] {
                    if h.remove(f) {
                        n += 1;
                        if h.is_empty() {
                            break;
                        }
                    }
                }
                n
            }
            _ => 0,
        })
        .unwrap_or(0);
    Reply::Int(deleted).into()
}

fn hexists(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    match tri!(read_hash(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Hk::Missing => Reply::Int(0).into(),
        Hk::Hash(h) => Reply::Int(h.contains(&args[2]) as i64).into(),
    }
}

fn hlen(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    match tri!(read_hash(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Hk::Missing => Reply::Int(0).into(),
        Hk::Hash(h) => Reply::Int(h.len() as i64).into(),
    }
}

fn hstrlen(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    match tri!(read_hash(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Hk::Missing => Reply::Int(0).into(),
        Hk::Hash(h) => Reply::Int(h.get(&args[2]).map_or(0, |v| v.len()) as i64).into(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Part {
    Keys,
    Vals,
    All,
}

fn getall(c: &mut Cmd<'_>, part: Part) -> Exec {
    let args = c.args;
    let h = match tri!(read_hash(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Hk::Missing => {
            return if part == Part::All {
                Reply::Map(vec![])
            } else {
                Reply::Array(vec![])
            }
            .into()
        }
        Hk::Hash(h) => h,
    };
    match part {
        Part::Keys => Reply::Array(h.iter().map(|(k, _)| Reply::bulk(k)).collect()),
        Part::Vals => Reply::Array(h.iter().map(|(_, v)| Reply::bulk(v)).collect()),
        Part::All => Reply::Map(
            h.iter()
                .map(|(k, v)| (Reply::bulk(k), Reply::bulk(v)))
                .collect(),
        ),
    }
    .into()
}

fn hkeys(c: &mut Cmd<'_>) -> Exec {
    getall(c, Part::Keys)
}
fn hvals(c: &mut Cmd<'_>) -> Exec {
    getall(c, Part::Vals)
}
fn hgetall(c: &mut Cmd<'_>) -> Exec {
    getall(c, Part::All)
}

fn hincrby(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let incr = match parse_i64(&args[3]) {
        Some(v) => v,
        None => return err(errors::NOT_INTEGER).into(),
    };
    let old = match tri!(field_value(c, &args[1], &args[2])) {
        Some(v) => match parse_i64(&v) {
            Some(v) => v,
            None => return err_msg("hash value is not an integer").into(),
        },
        None => 0,
    };
    let Some(new) = old.checked_add(incr) else {
        return err(errors::OVERFLOW).into();
    };
    tri!(write_hash(c, &args[1], |h| h
        .insert(&args[2], new.to_string().as_bytes())));
    Reply::Int(new).into()
}

fn hincrbyfloat(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let incr = match LongDouble::parse(&args[3]) {
        None => return err(errors::NOT_FLOAT).into(),
        Some(v) if !v.is_finite() => return err_msg("value is NaN or Infinity").into(),
        Some(v) => v,
    };
    let old = match tri!(field_value(c, &args[1], &args[2])) {
        Some(v) => match LongDouble::parse(&v) {
            Some(v) => v,
            None => return err_msg("hash value is not a float").into(),
        },
        None => LongDouble::ZERO,
    };
    let new = old.plus(incr);
    if !new.is_finite() {
        return err_msg("increment would produce NaN or Infinity").into();
    }
    let s = new.to_human();
    tri!(write_hash(c, &args[1], |h| h.insert(&args[2], s.as_bytes())));
    Reply::Bulk(Bytes::from(s)).into()
}

fn field_reply(out: &mut Vec<Reply>, k: &[u8], v: &[u8], withvalues: bool, proto: Protocol) {
    if !withvalues {
        out.push(Reply::bulk(k));
    } else if proto == Protocol::Resp3 {
        out.push(Reply::Array(vec![Reply::bulk(k), Reply::bulk(v)]));
    } else {
        out.push(Reply::bulk(k));
        out.push(Reply::bulk(v));
    }
}

fn hrandfield(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let db = c.client.db;
    let proto = c.client.proto;
    if args.len() >= 3 {
        let l = tri!(arg_range(&args[2], -i64::MAX, i64::MAX, None));
        let withvalues = if args.len() > 4
            || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withvalues"))
        {
            return err(errors::SYNTAX).into();
        } else if args.len() == 4 {
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
                return err_msg("value is out of range").into();
            }
            true
        } else {
            false
        };
        let size = match tri!(read_hash(c.ks, db, &args[1], c.now_ms, true)) {
            Hk::Missing => return Reply::Array(vec![]).into(),
            Hk::Hash(h) => h.len(),
        };
        let count = l.unsigned_abs();
        if count == 0 {
            return Reply::Array(vec![]).into();
        }
        let uniq = l > 0;
        if (!uniq || count == 1) && count > MAX_RANDOM_REPLY {
            return err_msg("value is out of range").into();
        }
        let picks: Vec<usize> = if !uniq || count == 1 {
            (0..count).map(|_| rand_below(c.ks, size)).collect()
        } else if count as usize >= size {
            (0..size).collect()
        } else {
            sample_indices(c.ks, size, count as usize)
        };
        let Some(Value::Hash(h)) = c.ks.db(db).map.get(&args[1][..]).map(|e| &e.value) else {
            return Reply::Array(vec![]).into();
        };
        let mut out = Vec::with_capacity(picks.len() * (1 + withvalues as usize));
        for i in picks {
            if let Some((k, v)) = h.get_index(i) {
                field_reply(&mut out, k, v, withvalues, proto);
            }
        }
        return Reply::Array(out).into();
    }
    let size = match tri!(read_hash(c.ks, db, &args[1], c.now_ms, true)) {
        Hk::Missing => return Reply::Nil.into(),
        Hk::Hash(h) => h.len(),
    };
    let i = rand_below(c.ks, size);
    match c.ks.db(db).map.get(&args[1][..]).map(|e| &e.value) {
        Some(Value::Hash(h)) => h.get_index(i).map_or(Reply::Nil, |(k, _)| Reply::bulk(k)),
        _ => Reply::Nil,
    }
    .into()
}

fn hscan(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let cursor = tri!(parse_cursor(&args[2]));
    let h = match tri!(read_hash(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Hk::Missing => return scan_reply(0, vec![]).into(),
        Hk::Hash(h) => h,
    };
    let (count, pat) = tri!(parse_scan_opts(args));
    let keep = |k: &[u8]| pat.as_ref().is_none_or(|p| crate::glob::matches(p, k));
    let mut out = Vec::new();
    // A listpack hash answers everything at once (cursor 0), as Redis does.
    let next = if !h.is_hashtable() {
        for (k, v) in h.iter() {
            if keep(k) {
                out.push(Reply::bulk(k));
                out.push(Reply::bulk(v));
            }
        }
        0
    } else {
        let (idx, next) = scan_step(cursor, h.len(), count);
        for i in idx {
            if let Some((k, v)) = h.get_index(i) {
                if keep(k) {
                    out.push(Reply::bulk(k));
                    out.push(Reply::bulk(v));
                }
            }
        }
        next
    };
    scan_reply(next, out).into()
}

#[cfg(test)]
#[path = "hashes_tests.rs"]
mod tests;
