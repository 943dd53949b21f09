//! The lists commands (`t_list.c`): pushes, pops (with count), ranges, `LPOS`, `LMOVE`,
//! `LMPOP` and their blocking forms, with redis-server 7.0's replies and errors. Also the
//! argument helpers the hashes and sets commands share (Redis's `get*FromObjectOrReply`).

use bytes::Bytes;
use redis_proto::Reply;

use crate::args::parse_i64;
use crate::block::{parse_timeout, BlockOp};
use crate::commands::{Command, Flags};
use crate::db::Value;
use crate::errors::{self, err, wrong_arity};
use crate::keyspace::Keyspace;
use crate::types::List;
use crate::{Cmd, Exec};

use crate::commands::cmd;

// `lmpop` and `blmpop` are also `movablekeys` in COMMAND INFO (a flag `Flags` lacks).
pub const COMMANDS: &[Command] = &[
    cmd!(
        "lpush",
        -3,
        Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
        1,
        1,
        1,
        &["write", "list", "fast"],
        lpush
    ),
    cmd!(
        "rpush",
        -3,
        Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
        1,
        1,
        1,
        &["write", "list", "fast"],
        rpush
    ),
    cmd!(
        "lpushx",
        -3,
        Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
        1,
        1,
        1,
        &["write", "list", "fast"],
        lpushx
    ),
    cmd!(
        "rpushx",
        -3,
        Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
        1,
        1,
        1,
        &["write", "list", "fast"],
        rpushx
    ),
    cmd!(
        "lpop",
        -2,
        Flags::WRITE.or(Flags::FAST),
        1,
        1,
        1,
        &["write", "list", "fast"],
        lpop
    ),
    cmd!(
        "rpop",
        -2,
        Flags::WRITE.or(Flags::FAST),
        1,
        1,
        1,
        &["write", "list", "fast"],
        rpop
    ),
    cmd!(
        "llen",
        2,
        Flags::READONLY.or(Flags::FAST),
        1,
        1,
        1,
        &["read", "list", "fast"],
        llen
    ),
    cmd!(
        "lrange",
        4,
        Flags::READONLY,
        1,
        1,
        1,
        &["read", "list", "slow"],
        lrange
    ),
    cmd!(
        "lindex",
        3,
        Flags::READONLY,
        1,
        1,
        1,
        &["read", "list", "slow"],
        lindex
    ),
    cmd!(
        "lset",
        4,
        Flags::WRITE.or(Flags::DENYOOM),
        1,
        1,
        1,
        &["write", "list", "slow"],
        lset
    ),
    cmd!(
        "linsert",
        5,
        Flags::WRITE.or(Flags::DENYOOM),
        1,
        1,
        1,
        &["write", "list", "slow"],
        linsert
    ),
    cmd!(
        "lrem",
        4,
        Flags::WRITE,
        1,
        1,
        1,
        &["write", "list", "slow"],
        lrem
    ),
    cmd!(
        "ltrim",
        4,
        Flags::WRITE,
        1,
        1,
        1,
        &["write", "list", "slow"],
        ltrim
    ),
    cmd!(
        "lpos",
        -3,
        Flags::READONLY,
        1,
        1,
        1,
        &["read", "list", "slow"],
        lpos
    ),
    cmd!(
        "lmove",
        5,
        Flags::WRITE.or(Flags::DENYOOM),
        1,
        2,
        1,
        &["write", "list", "slow"],
        lmove
    ),
    cmd!(
        "rpoplpush",
        3,
        Flags::WRITE.or(Flags::DENYOOM),
        1,
        2,
        1,
        &["write", "list", "slow"],
        rpoplpush
    ),
    cmd!(
        "lmpop",
        -4,
        Flags::WRITE,
        0,
        0,
        0,
        &["write", "list", "slow"],
        lmpop
    ),
    cmd!(
        "blpop",
        -3,
        Flags::WRITE.or(Flags::NOSCRIPT).or(Flags::BLOCKING),
        1,
        -2,
        1,
        &["write", "list", "slow", "blocking"],
        blpop
    ),
    cmd!(
        "brpop",
        -3,
        Flags::WRITE.or(Flags::NOSCRIPT).or(Flags::BLOCKING),
        1,
        -2,
        1,
        &["write", "list", "slow", "blocking"],
        brpop
    ),
    cmd!(
        "blmove",
        6,
        Flags::WRITE
            .or(Flags::DENYOOM)
            .or(Flags::NOSCRIPT)
            .or(Flags::BLOCKING),
        1,
        2,
        1,
        &["write", "list", "slow", "blocking"],
        blmove
    ),
    cmd!(
        "brpoplpush",
        4,
        Flags::WRITE
            .or(Flags::DENYOOM)
            .or(Flags::NOSCRIPT)
            .or(Flags::BLOCKING),
        1,
        2,
        1,
        &["write", "list", "slow", "blocking"],
        brpoplpush
    ),
    cmd!(
        "blmpop",
        -5,
        Flags::WRITE.or(Flags::BLOCKING),
        0,
        0,
        0,
        &["write", "list", "slow", "blocking"],
        blmpop
    ),
];

// ---- argument helpers (Redis's get*FromObjectOrReply), shared with hashes and sets ----

/// `ERR <msg>`, as `addReplyError` words it.
pub(crate) fn err_msg(msg: &str) -> Reply {
    Reply::error(format!("ERR {msg}"))
}

/// `getLongFromObjectOrReply(c, o, &v, NULL)`.
pub(crate) fn arg_long(a: &[u8]) -> Result<i64, Reply> {
    parse_i64(a).ok_or_else(|| err(errors::NOT_INTEGER))
}

/// `getRangeLongFromObjectOrReply`: `msg` replaces both errors when given.
pub(crate) fn arg_range(a: &[u8], min: i64, max: i64, msg: Option<&str>) -> Result<i64, Reply> {
    let v = match parse_i64(a) {
        Some(v) => v,
        None => return Err(msg.map_or_else(|| err(errors::NOT_INTEGER), err_msg)),
    };
    if v < min || v > max {
        return Err(match msg {
            Some(m) => err_msg(m),
            None => err_msg(&format!(
                "value is out of range, value must between {min} and {max}"
            )),
        });
    }
    Ok(v)
}

/// `getPositiveLongFromObjectOrReply`.
pub(crate) fn arg_positive(a: &[u8], msg: Option<&str>) -> Result<i64, Reply> {
    arg_range(
        a,
        0,
        i64::MAX,
        Some(msg.unwrap_or("value is out of range, must be positive")),
    )
}

pub(crate) use crate::cmd::tri;

/// What a key holds, for a list command.
enum Lk<'a> {
    Missing,
    List(&'a List),
}

fn read_list<'a>(
    ks: &'a mut Keyspace,
    db: usize,
    key: &[u8],
    now: u64,
    stats: bool,
) -> Result<Lk<'a>, Reply> {
    let e = if stats {
        ks.lookup_read(db, key, now)
    } else {
        ks.lookup(db, key, now)
    };
    match e.map(|e| &e.value) {
        None => Ok(Lk::Missing),
        Some(Value::List(l)) => Ok(Lk::List(l)),
        Some(_) => Err(Keyspace::wrongtype()),
    }
}

/// Change the list at `key` (which exists and is a list).
fn with_list<R>(c: &mut Cmd<'_>, key: &[u8], f: impl FnOnce(&mut List) -> R) -> Option<R> {
    let db = c.client.db;
    c.ks.modify(db, key, c.now_ms, |e| match &mut e.value {
        Value::List(l) => Some(f(l)),
        _ => None,
    })
    .flatten()
}

fn bulks<'a>(it: impl Iterator<Item = &'a [u8]>) -> Reply {
    Reply::Array(it.map(Reply::bulk).collect())
}

fn parse_side(a: &[u8]) -> Result<bool, Reply> {
    if a.eq_ignore_ascii_case(b"left") {
        Ok(true)
    } else if a.eq_ignore_ascii_case(b"right") {
        Ok(false)
    } else {
        Err(err(errors::SYNTAX))
    }
}

/// Clamp Redis's `start`/`end` (negative from the end) to `0..len`; `None`: empty range.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let llen = len as i64;
    let mut start = if start < 0 { llen + start } else { start };
    let end = if end < 0 { llen + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen {
        return None;
    }
    let end = end.min(llen - 1);
    Some((start as usize, end as usize))
}

// ---- pushes ----

fn push(c: &mut Cmd<'_>, left: bool, xx: bool) -> Exec {
    let args = c.args;
    let key = &args[1];
    let db = c.client.db;
    let exists = match tri!(read_list(c.ks, db, key, c.now_ms, false)) {
        Lk::Missing => false,
        Lk::List(_) => true,
    };
    let len = if exists {
        with_list(c, key, |l| {
            for v in &args[2..] {
                l.push(v, left);
            }
            l.len()
        })
        .unwrap_or(0)
    } else {
        if xx {
            return Reply::Int(0).into();
        }
        let mut l = List::new();
        for v in &args[2..] {
            l.push(v, left);
        }
        let n = l.len();
        c.ks.insert(db, key, Value::List(Box::new(l)), 0, c.now_ms);
        n
    };
    c.ks.signal_ready(db, key);
    Reply::Int(len as i64).into()
}

fn lpush(c: &mut Cmd<'_>) -> Exec {
    push(c, true, false)
}
fn rpush(c: &mut Cmd<'_>) -> Exec {
    push(c, false, false)
}
fn lpushx(c: &mut Cmd<'_>) -> Exec {
    push(c, true, true)
}
fn rpushx(c: &mut Cmd<'_>) -> Exec {
    push(c, false, true)
}

// ---- pops ----

fn pop(c: &mut Cmd<'_>, left: bool) -> Exec {
    let args = c.args;
    if args.len() > 3 {
        return wrong_arity(if left { "lpop" } else { "rpop" }).into();
    }
    let hascount = args.len() == 3;
    let count = if hascount {
        tri!(arg_positive(&args[2], None))
    } else {
        0
    };
    let key = &args[1];
    match tri!(read_list(c.ks, c.client.db, key, c.now_ms, false)) {
        Lk::Missing => {
            return if hascount {
                Reply::NilArray
            } else {
                Reply::Nil
            }
            .into()
        }
        Lk::List(_) => {}
    }
    if hascount && count == 0 {
        return Reply::Array(vec![]).into();
    }
    if !hascount {
        match with_list(c, key, |l| l.pop(left)).flatten() {
            Some(v) => Reply::bulk(&v).into(),
            None => Reply::Nil.into(),
        }
    } else {
        let v = with_list(c, key, |l| l.pop_many(count as usize, left)).unwrap_or_default();
        bulks(v.iter().map(|x| &**x)).into()
    }
}

fn lpop(c: &mut Cmd<'_>) -> Exec {
    pop(c, true)
}
fn rpop(c: &mut Cmd<'_>) -> Exec {
    pop(c, false)
}

// ---- reads ----

fn llen(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    match tri!(read_list(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Lk::Missing => Reply::Int(0).into(),
        Lk::List(l) => Reply::Int(l.len() as i64).into(),
    }
}

fn lrange(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let start = tri!(arg_long(&args[2]));
    let end = tri!(arg_long(&args[3]));
    match tri!(read_list(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Lk::Missing => Reply::Array(vec![]).into(),
        Lk::List(l) => match clamp_range(start, end, l.len()) {
            None => Reply::Array(vec![]).into(),
            Some((s, e)) => bulks(l.iter().skip(s).take(e - s + 1)).into(),
        },
    }
}

/// A Redis index (negative from the end) into a list of `len`.
fn list_index(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 {
        (len as i64).checked_add(index)?
    } else {
        index
    };
    (i >= 0 && (i as u64) < len as u64).then_some(i as usize)
}

fn lindex(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let l = match tri!(read_list(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Lk::Missing => return Reply::Nil.into(),
        Lk::List(l) => l,
    };
    let index = tri!(arg_long(&args[2]));
    match list_index(index, l.len()).and_then(|i| l.get(i)) {
        Some(v) => Reply::bulk(v).into(),
        None => Reply::Nil.into(),
    }
}

fn lset(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let key = &args[1];
    let len = match tri!(read_list(c.ks, c.client.db, key, c.now_ms, false)) {
        Lk::Missing => return err(errors::NO_SUCH_KEY).into(),
        Lk::List(l) => l.len(),
    };
    let index = tri!(arg_long(&args[2]));
    let Some(i) = list_index(index, len) else {
        return err(errors::INDEX_OUT_OF_RANGE).into();
    };
    let v = &args[3];
    with_list(c, key, |l| l.set(i, v));
    Reply::ok().into()
}

fn linsert(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let after = if args[2].eq_ignore_ascii_case(b"after") {
        true
    } else if args[2].eq_ignore_ascii_case(b"before") {
        false
    } else {
        return err(errors::SYNTAX).into();
    };
    let key = &args[1];
    let pos = match tri!(read_list(c.ks, c.client.db, key, c.now_ms, false)) {
        Lk::Missing => return Reply::Int(0).into(),
        Lk::List(l) => l.position(&args[3]),
    };
    let Some(pos) = pos else {
        return Reply::Int(-1).into();
    };
    let v = &args[4];
    let len = with_list(c, key, |l| {
        l.insert(if after { pos + 1 } else { pos }, v);
        l.len()
    })
    .unwrap_or(0);
    // The list grew: the replicated tier's waiters may pop now. (Redis does not signal here,
    // a list with elements has no waiters of this keyspace, so standalone stays as it is.)
    if c.ks.config.track_ready {
        c.ks.track_ready(c.client.db, key);
    }
    Reply::Int(len as i64).into()
}

fn lrem(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let toremove = tri!(arg_long(&args[2]));
    let key = &args[1];
    match tri!(read_list(c.ks, c.client.db, key, c.now_ms, false)) {
        Lk::Missing => return Reply::Int(0).into(),
        Lk::List(l) if l.position(&args[3]).is_none() => return Reply::Int(0).into(),
        Lk::List(_) => {}
    }
    let v = &args[3];
    let removed = with_list(c, key, |l| {
        l.remove_matching(v, toremove.unsigned_abs(), toremove < 0)
    })
    .unwrap_or(0);
    Reply::Int(removed as i64).into()
}

fn ltrim(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let start = tri!(arg_long(&args[2]));
    let end = tri!(arg_long(&args[3]));
    let key = &args[1];
    let len = match tri!(read_list(c.ks, c.client.db, key, c.now_ms, false)) {
        Lk::Missing => return Reply::ok().into(),
        Lk::List(l) => l.len(),
    };
    // Redis signals the key as modified even when nothing is trimmed.
    let range = clamp_range(start, end, len);
    with_list(c, key, |l| match range {
        Some((s, e)) => l.trim(s, e),
        None => l.trim(1, 0),
    });
    Reply::ok().into()
}

fn lpos(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let mut rank: i64 = 1;
    let mut count: i64 = -1;
    let mut maxlen: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j];
        let more = j + 1 < args.len();
        if opt.eq_ignore_ascii_case(b"RANK") && more {
            j += 1;
            rank = tri!(arg_long(&args[j]));
            if rank == 0 {
                return err_msg(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                )
                .into();
            }
        } else if opt.eq_ignore_ascii_case(b"COUNT") && more {
            j += 1;
            count = tri!(arg_positive(&args[j], Some("COUNT can't be negative")));
        } else if opt.eq_ignore_ascii_case(b"MAXLEN") && more {
            j += 1;
            maxlen = tri!(arg_positive(&args[j], Some("MAXLEN can't be negative")));
        } else {
            return err(errors::SYNTAX).into();
        }
        j += 1;
    }
    // A negative rank searches from the tail (LONG_MIN stays negative, as in C).
    let from_tail = rank < 0;
    if rank < 0 {
        rank = rank.wrapping_neg();
    }
    let ele = &args[2];
    let l = match tri!(read_list(c.ks, c.client.db, &args[1], c.now_ms, true)) {
        Lk::Missing => {
            return if count != -1 {
                Reply::Array(vec![])
            } else {
                Reply::Nil
            }
            .into()
        }
        Lk::List(l) => l,
    };
    let llen = l.len() as i64;
    let mut out = Vec::new();
    let mut matches: i64 = 0;
    let mut found = None;
    let iter: Box<dyn Iterator<Item = &[u8]>> = if from_tail {
        Box::new(l.iter().rev())
    } else {
        Box::new(l.iter())
    };
    for (index, v) in iter.enumerate() {
        let index = index as i64;
        if maxlen != 0 && index >= maxlen {
            break;
        }
        if v == &ele[..] {
            matches += 1;
            let at = if from_tail { llen - index - 1 } else { index };
            if matches >= rank {
                if count != -1 {
                    out.push(Reply::Int(at));
                    if count != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= count {
                        break;
                    }
                } else {
                    found = Some(at);
                    break;
                }
            }
        }
    }
    if count != -1 {
        Reply::Array(out).into()
    } else {
        found.map_or(Reply::Nil, Reply::Int).into()
    }
}

// ---- moves ----

fn lmove_reply(c: &mut Cmd<'_>, from_left: bool, to_left: bool) -> Exec {
    let args = c.args;
    let db = c.client.db;
    match c
        .ks
        .lmove(db, &args[1], &args[2], from_left, to_left, c.now_ms)
    {
        Ok(Some(v)) => Reply::Bulk(v).into(),
        Ok(None) => Reply::Nil.into(),
        Err(e) => e.into(),
    }
}

fn lmove(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let from = tri!(parse_side(&args[3]));
    let to = tri!(parse_side(&args[4]));
    lmove_reply(c, from, to)
}

fn rpoplpush(c: &mut Cmd<'_>) -> Exec {
    lmove_reply(c, false, true)
}

// ---- multi-key pops and blocking ----

/// Pop from the first non-empty list of `keys`: `Ok(Some(reply))`, or `Ok(None)` if all are
/// empty or missing.
fn pop_first(
    c: &mut Cmd<'_>,
    keys: &[Bytes],
    left: bool,
    count: Option<usize>,
) -> Result<Option<Reply>, Reply> {
    for key in keys {
        match read_list(c.ks, c.client.db, key, c.now_ms, false)? {
            Lk::Missing => continue,
            Lk::List(l) if l.is_empty() => continue,
            Lk::List(_) => {}
        }
        let kb = Reply::Bulk(key.clone());
        return Ok(Some(match count {
            None => {
                let v = with_list(c, key, |l| l.pop(left)).flatten();
                match v {
                    Some(v) => Reply::Array(vec![kb, Reply::bulk(&v)]),
                    None => Reply::NilArray,
                }
            }
            Some(n) => {
                let v = with_list(c, key, |l| l.pop_many(n, left)).unwrap_or_default();
                Reply::Array(vec![kb, bulks(v.iter().map(|x| &**x))])
            }
        }));
    }
    Ok(None)
}

fn bpop(c: &mut Cmd<'_>, left: bool) -> Exec {
    let args = c.args;
    let n = args.len();
    let timeout = tri!(parse_timeout(&args[n - 1]));
    let keys = &args[1..n - 1];
    if let Some(r) = tri!(pop_first(c, keys, left, None)) {
        return r.into();
    }
    let client = c.client.clone();
    c.ks.block_client(&client, keys, BlockOp::Pop { left }, timeout, c.now_ms)
}

fn blpop(c: &mut Cmd<'_>) -> Exec {
    bpop(c, true)
}
fn brpop(c: &mut Cmd<'_>) -> Exec {
    bpop(c, false)
}

fn blmove_generic(c: &mut Cmd<'_>, from_left: bool, to_left: bool, timeout: Option<u64>) -> Exec {
    let args = c.args;
    match tri!(read_list(c.ks, c.client.db, &args[1], c.now_ms, false)) {
        Lk::List(l) if !l.is_empty() => lmove_reply(c, from_left, to_left),
        _ => {
            let client = c.client.clone();
            let op = BlockOp::Move {
                dst: args[2][..].into(),
                from_left,
                to_left,
            };
            c.ks.block_client(&client, &args[1..2], op, timeout, c.now_ms)
        }
    }
}

fn blmove(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let from = tri!(parse_side(&args[3]));
    let to = tri!(parse_side(&args[4]));
    let timeout = tri!(parse_timeout(&args[5]));
    blmove_generic(c, from, to, timeout)
}

fn brpoplpush(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let timeout = tri!(parse_timeout(&args[3]));
    blmove_generic(c, false, true, timeout)
}

/// `LMPOP`/`BLMPOP`: `numkeys_idx` is where `numkeys` is.
fn mpop_generic(c: &mut Cmd<'_>, numkeys_idx: usize, block: bool) -> Exec {
    let args = c.args;
    let argc = args.len();
    let numkeys = tri!(arg_range(
        &args[numkeys_idx],
        1,
        i64::MAX,
        Some("numkeys should be greater than 0")
    )) as u64;
    let where_idx = (numkeys_idx as u64)
        .saturating_add(numkeys)
        .saturating_add(1);
    if where_idx >= argc as u64 {
        return err(errors::SYNTAX).into();
    }
    let where_idx = where_idx as usize;
    let left = tri!(parse_side(&args[where_idx]));
    let mut count: i64 = -1;
    let mut j = where_idx + 1;
    while j < argc {
        let more = j + 1 < argc;
        if count == -1 && args[j].eq_ignore_ascii_case(b"COUNT") && more {
            j += 1;
            count = tri!(arg_range(
                &args[j],
                1,
                i64::MAX,
                Some("count should be greater than 0")
            ));
        } else {
            return err(errors::SYNTAX).into();
        }
        j += 1;
    }
    let count = if count == -1 { 1 } else { count as usize };
    let keys = &args[numkeys_idx + 1..where_idx];
    if block {
        let timeout = tri!(parse_timeout(&args[1]));
        if let Some(r) = tri!(pop_first(c, keys, left, Some(count))) {
            return r.into();
        }
        let client = c.client.clone();
        c.ks.block_client(
            &client,
            keys,
            BlockOp::MPop { left, count },
            timeout,
            c.now_ms,
        )
    } else {
        tri!(pop_first(c, keys, left, Some(count)))
            .unwrap_or(Reply::NilArray)
            .into()
    }
}

fn lmpop(c: &mut Cmd<'_>) -> Exec {
    mpop_generic(c, 1, false)
}
fn blmpop(c: &mut Cmd<'_>) -> Exec {
    mpop_generic(c, 2, true)
}

#[cfg(test)]
#[path = "lists_tests.rs"]
pub(crate) mod tests;
