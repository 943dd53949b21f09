//! The strings commands (`GET`, `SET` and its options, `INCR*`, `APPEND`, `GETRANGE`,
//! `SETRANGE`, `LCS`...), with redis-server 7.0's replies and errors.

use bytes::Bytes;
use redis_proto::Reply;

use crate::args::parse_i64;
use crate::cmd::{bulk, int_arg, invalid_expire, is_kw, tri};
use crate::commands::{Command, Flags, Spec};
use crate::db::{Entry, Value};
use crate::errors;
use crate::num;
use crate::strvalue::StrValue;
use crate::{Cmd, Exec};

fn reply(r: Reply) -> Exec {
    Exec::Reply(r)
}

fn int(v: i64) -> Exec {
    Exec::Reply(Reply::Int(v))
}

fn wrongtype() -> Exec {
    reply(errors::err(errors::WRONGTYPE))
}

fn str_value(b: &[u8]) -> Value {
    Value::Str(b.into())
}

/// What `GET` sees under a key: `Ok(None)` missing, `Err` another type.
fn get_str(c: &mut Cmd<'_>, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    let db = c.client.db;
    match c.ks.lookup_read(db, key, c.now_ms) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Str(s) => Ok(Some(Bytes::copy_from_slice(s))),
            _ => Err(errors::err(errors::WRONGTYPE)),
        },
    }
}

/// Where the string under `key` is, for a write (no hit/miss count): `Ok(None)` missing. Read
/// it with [`str_at`] and store the result with [`put_keep_ttl`], one hash lookup in all.
fn write_str(c: &mut Cmd<'_>, key: &[u8]) -> Result<Option<usize>, Reply> {
    let db = c.client.db;
    let Some(i) = c.ks.find(db, key, c.now_ms) else {
        return Ok(None);
    };
    match &c.ks.entry_at(db, i).value {
        Value::Str(_) => Ok(Some(i)),
        _ => Err(errors::err(errors::WRONGTYPE)),
    }
}

/// The bytes of the string [`write_str`] found at `i`.
fn str_at<'c>(c: &'c Cmd<'_>, i: usize) -> &'c [u8] {
    match &c.ks.entry_at(c.client.db, i).value {
        Value::Str(s) => s,
        _ => &[],
    }
}

/// Store a string (Redis's `setKey`): the expiry is dropped unless `keep_ttl`.
fn set_key(c: &mut Cmd<'_>, key: &[u8], val: &[u8], keep_ttl: bool) {
    set_key_expire(c, key, val, keep_ttl, 0);
}

/// [`set_key`], then the expiry `expire_at` if not 0, in one step.
fn set_key_expire(c: &mut Cmd<'_>, key: &[u8], val: &[u8], keep_ttl: bool, expire_at: u64) {
    let db = c.client.db;
    let now = c.now_ms;
    let updated = c.ks.modify(db, key, now, |e| {
        e.value = str_value(val);
        if expire_at != 0 {
            e.expire_at = expire_at;
        } else if !keep_ttl {
            e.expire_at = 0;
        }
    });
    if updated.is_none() {
        c.ks.insert(db, key, str_value(val), expire_at, now);
    }
}

/// Replace the string [`write_str`] found at `at` keeping its expiry (INCR, APPEND, SETRANGE),
/// or with `None` create it; `raw`: the string was changed in place ([`StrValue::is_raw`]).
fn put_keep_ttl(c: &mut Cmd<'_>, key: &[u8], val: &[u8], at: Option<usize>, raw: bool) {
    let db = c.client.db;
    let now = c.now_ms;
    let mut s = StrValue::new(val);
    s.set_raw(raw);
    match at {
        Some(i) => c.ks.modify_at(db, i, key, now, |e| e.value = Value::Str(s)),
        None => c.ks.insert(db, key, Value::Str(s), 0, now),
    }
}

fn cmd_get(c: &mut Cmd<'_>) -> Exec {
    match tri!(get_str(c, &c.args[1].clone())) {
        Some(v) => reply(Reply::Bulk(v)),
        None => reply(Reply::Nil),
    }
}

const NX: u32 = 1;
const XX: u32 = 1 << 1;
const GET: u32 = 1 << 2;
const KEEPTTL: u32 = 1 << 3;
const PERSIST: u32 = 1 << 4;
const EX: u32 = 1 << 5;
const PX: u32 = 1 << 6;
const EXAT: u32 = 1 << 7;
const PXAT: u32 = 1 << 8;
const ANY_EXPIRE: u32 = EX | PX | EXAT | PXAT;

/// `parseExtendedStringArgumentsOrReply` for `SET` (`for_set`) or `GETEX`: the flags and the
/// expiry argument.
fn parse_ext(args: &[Bytes], for_set: bool) -> Result<(u32, Option<&Bytes>), Reply> {
    let mut flags = 0u32;
    let mut expire = None;
    let start = if for_set { 3 } else { 2 };
    let mut j = start;
    while j < args.len() {
        let opt = &args[j];
        let next = args.get(j + 1);
        if is_kw(opt, "nx") && flags & XX == 0 && for_set {
            flags |= NX;
        } else if is_kw(opt, "xx") && flags & NX == 0 && for_set {
            flags |= XX;
        } else if is_kw(opt, "get") && for_set {
            flags |= GET;
        } else if is_kw(opt, "keepttl") && flags & (PERSIST | ANY_EXPIRE) == 0 && for_set {
            flags |= KEEPTTL;
        } else if is_kw(opt, "persist") && !for_set && flags & (ANY_EXPIRE | KEEPTTL) == 0 {
            flags |= PERSIST;
        } else if let Some((kw, bit)) = [("ex", EX), ("px", PX), ("exat", EXAT), ("pxat", PXAT)]
            .into_iter()
            .find(|(kw, _)| is_kw(opt, kw))
            .filter(|(_, bit)| flags & (KEEPTTL | PERSIST) == 0 && flags & (ANY_EXPIRE & !bit) == 0)
            .filter(|_| next.is_some())
        {
            let _ = kw;
            flags |= bit;
            expire = next;
            j += 1;
        } else {
            return Err(errors::err(errors::SYNTAX));
        }
        j += 1;
    }
    Ok((flags, expire))
}

/// `getExpireMillisecondsOrReply`: the absolute expiry in ms.
fn expire_ms(arg: &[u8], flags: u32, now_ms: u64, name: &str) -> Result<u64, Reply> {
    let mut ms = int_arg(arg)?;
    let seconds = flags & (EX | EXAT) != 0;
    if ms <= 0 || (seconds && ms > i64::MAX / 1000) {
        return Err(invalid_expire(name));
    }
    if seconds {
        ms *= 1000;
    }
    if flags & (EX | PX) != 0 {
        ms = ms
            .checked_add(now_ms as i64)
            .ok_or_else(|| invalid_expire(name))?;
    }
    if ms <= 0 {
        return Err(invalid_expire(name));
    }
    Ok(ms as u64)
}

/// `setGenericCommand`.
fn set_generic(
    c: &mut Cmd<'_>,
    name: &str,
    flags: u32,
    key: &Bytes,
    val: &Bytes,
    expire: Option<&Bytes>,
    (ok_reply, abort_reply): (Reply, Reply),
) -> Exec {
    let db = c.client.db;
    let mut when = 0;
    if let Some(e) = expire {
        when = tri!(expire_ms(e, flags, c.now_ms, name));
    }
    let mut get_reply = None;
    if flags & GET != 0 {
        get_reply = Some(match tri!(get_str(c, key)) {
            Some(v) => Reply::Bulk(v),
            None => Reply::Nil,
        });
    }
    if flags & (NX | XX) != 0 {
        let found = c.ks.lookup(db, key, c.now_ms).is_some();
        if (flags & NX != 0 && found) || (flags & XX != 0 && !found) {
            return reply(get_reply.unwrap_or(abort_reply));
        }
    }
    // `when` is 0 only without an expiry argument (a parsed expiry is > 0).
    set_key_expire(c, key, val, flags & KEEPTTL != 0, when);
    reply(get_reply.unwrap_or(ok_reply))
}

fn cmd_set(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let (flags, expire) = tri!(parse_ext(args, true));
    set_generic(
        c,
        "set",
        flags,
        &args[1],
        &args[2],
        expire,
        (Reply::ok(), Reply::Nil),
    )
}

fn cmd_setex(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    set_generic(
        c,
        "setex",
        EX,
        &args[1],
        &args[3],
        Some(&args[2]),
        (Reply::ok(), Reply::Nil),
    )
}

fn cmd_psetex(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    set_generic(
        c,
        "psetex",
        PX,
        &args[1],
        &args[3],
        Some(&args[2]),
        (Reply::ok(), Reply::Nil),
    )
}

fn cmd_setnx(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    set_generic(
        c,
        "setnx",
        NX,
        &args[1],
        &args[2],
        None,
        (Reply::Int(1), Reply::Int(0)),
    )
}

fn cmd_getset(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let old = tri!(get_str(c, &args[1]));
    set_key(c, &args[1], &args[2], false);
    reply(old.map_or(Reply::Nil, Reply::Bulk))
}

fn cmd_getdel(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let old = tri!(get_str(c, &args[1]));
    if old.is_some() {
        c.ks.remove(c.client.db, &args[1]);
    }
    reply(old.map_or(Reply::Nil, Reply::Bulk))
}

fn cmd_getex(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let db = c.client.db;
    let (flags, expire) = tri!(parse_ext(args, false));
    let Some(v) = tri!(get_str(c, &args[1])) else {
        return reply(Reply::Nil);
    };
    let mut when = 0;
    if let Some(e) = expire {
        when = tri!(expire_ms(e, flags, c.now_ms, "getex"));
    }
    if flags & (PXAT | EXAT) != 0 && when <= c.now_ms {
        c.ks.remove(db, &args[1]);
    } else if expire.is_some() {
        c.ks.set_expire(db, &args[1], when, c.now_ms);
    } else if flags & PERSIST != 0 {
        c.ks.set_expire(db, &args[1], 0, c.now_ms);
    }
    reply(Reply::Bulk(v))
}

fn cmd_mget(c: &mut Cmd<'_>) -> Exec {
    let db = c.client.db;
    let mut out = Vec::with_capacity(c.args.len() - 1);
    for k in &c.args[1..] {
        out.push(match c.ks.lookup_read(db, k, c.now_ms) {
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => bulk(s),
            _ => Reply::Nil,
        });
    }
    reply(Reply::Array(out))
}

fn cmd_mset(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    if args.len().is_multiple_of(2) {
        return reply(errors::wrong_arity("mset"));
    }
    for kv in args[1..].chunks(2) {
        set_key(c, &kv[0], &kv[1], false);
    }
    reply(Reply::ok())
}

fn cmd_msetnx(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let db = c.client.db;
    if args.len().is_multiple_of(2) {
        return reply(errors::wrong_arity("msetnx"));
    }
    for kv in args[1..].chunks(2) {
        if c.ks.lookup(db, &kv[0], c.now_ms).is_some() {
            return int(0);
        }
    }
    for kv in args[1..].chunks(2) {
        set_key(c, &kv[0], &kv[1], false);
    }
    int(1)
}

/// `incrDecrCommand`.
fn incr_decr(c: &mut Cmd<'_>, incr: i64) -> Exec {
    let key = c.args[1].clone();
    let at = tri!(write_str(c, &key));
    let value = match at {
        None => 0,
        Some(i) => match parse_i64(str_at(c, i)) {
            Some(v) => v,
            None => return reply(errors::err(errors::NOT_INTEGER)),
        },
    };
    let Some(new) = value.checked_add(incr) else {
        return reply(errors::err(errors::OVERFLOW));
    };
    put_keep_ttl(c, &key, new.to_string().as_bytes(), at, false);
    int(new)
}

fn cmd_incr(c: &mut Cmd<'_>) -> Exec {
    incr_decr(c, 1)
}

fn cmd_decr(c: &mut Cmd<'_>) -> Exec {
    incr_decr(c, -1)
}

fn cmd_incrby(c: &mut Cmd<'_>) -> Exec {
    let by = tri!(int_arg(&c.args[2]));
    incr_decr(c, by)
}

fn cmd_decrby(c: &mut Cmd<'_>) -> Exec {
    let by = tri!(int_arg(&c.args[2]));
    if by == i64::MIN {
        return reply(Reply::error("ERR decrement would overflow"));
    }
    incr_decr(c, -by)
}

fn cmd_incrbyfloat(c: &mut Cmd<'_>) -> Exec {
    let key = c.args[1].clone();
    let at = tri!(write_str(c, &key));
    let value = match at {
        None => num::LongDouble::ZERO,
        Some(i) => match num::LongDouble::parse(str_at(c, i)) {
            Some(v) => v,
            None => return reply(errors::err(errors::NOT_FLOAT)),
        },
    };
    let Some(incr) = num::LongDouble::parse(&c.args[2]) else {
        return reply(errors::err(errors::NOT_FLOAT));
    };
    let sum = value.plus(incr);
    if !sum.is_finite() {
        return reply(Reply::error("ERR increment would produce NaN or Infinity"));
    }
    let text = sum.to_human();
    put_keep_ttl(c, &key, text.as_bytes(), at, false);
    reply(Reply::Bulk(Bytes::from(text)))
}

/// `checkStringLength`: `ERR string exceeds maximum allowed size (proto-max-bulk-len)`.
fn check_len(c: &Cmd<'_>, size: u64, append: u64) -> Result<(), Reply> {
    match size.checked_add(append) {
        Some(t) if t <= c.ks.config().max_bulk_len => Ok(()),
        _ => Err(errors::err(errors::STRING_TOO_LONG)),
    }
}

fn cmd_append(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let at = tri!(write_str(c, &args[1]));
    let new: Box<[u8]> = match at {
        None => args[2].as_ref().into(),
        Some(i) => {
            let s = str_at(c, i);
            tri!(check_len(c, s.len() as u64, args[2].len() as u64));
            let mut v = Vec::with_capacity(s.len() + args[2].len());
            v.extend_from_slice(s);
            v.extend_from_slice(&args[2]);
            v.into_boxed_slice()
        }
    };
    let len = new.len() as i64;
    // Appending to a missing key stores the argument as SET would; to a string, in place.
    put_keep_ttl(c, &args[1], &new, at, at.is_some());
    int(len)
}

fn cmd_strlen(c: &mut Cmd<'_>) -> Exec {
    let db = c.client.db;
    match c.ks.lookup_read(db, &c.args[1], c.now_ms) {
        None => int(0),
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => int(s.len() as i64),
        Some(_) => wrongtype(),
    }
}

fn cmd_getrange(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let mut start = tri!(int_arg(&args[2]));
    let mut end = tri!(int_arg(&args[3]));
    let Some(s) = tri!(get_str(c, &args[1])) else {
        return reply(Reply::Bulk(Bytes::new()));
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return reply(Reply::Bulk(Bytes::new()));
    }
    if start < 0 {
        start = len.wrapping_add(start);
    }
    if end < 0 {
        end = len.wrapping_add(end);
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return reply(Reply::Bulk(Bytes::new()));
    }
    reply(Reply::Bulk(s.slice(start as usize..=end as usize)))
}

fn cmd_setrange(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let offset = tri!(int_arg(&args[2]));
    if offset < 0 {
        return reply(Reply::error("ERR offset is out of range"));
    }
    let value = &args[3];
    let at = tri!(write_str(c, &args[1]));
    let mut buf: Vec<u8> = match at {
        None => {
            if value.is_empty() {
                return int(0);
            }
            tri!(check_len(c, offset as u64, value.len() as u64));
            Vec::new()
        }
        Some(i) => {
            let s = str_at(c, i);
            if value.is_empty() {
                return int(s.len() as i64);
            }
            tri!(check_len(c, offset as u64, value.len() as u64));
            s.to_vec()
        }
    };
    let off = offset as usize;
    let need = off + value.len();
    if buf.len() < need {
        buf.resize(need, 0);
    }
    buf[off..need].copy_from_slice(value);
    let len = buf.len() as i64;
    put_keep_ttl(c, &args[1], &buf, at, true);
    int(len)
}

fn cmd_lcs(c: &mut Cmd<'_>) -> Exec {
    let args = c.args;
    let db = c.client.db;
    let mut get = |k: &[u8]| -> Result<Box<[u8]>, ()> {
        match c.ks.lookup_read(db, k, c.now_ms) {
            None => Ok(Box::default()),
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => Ok(Box::from(&s[..])),
            Some(_) => Err(()),
        }
    };
    let (a, b) = match (get(&args[1]), get(&args[2])) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            return reply(Reply::error(
                "ERR The specified keys must contain string values",
            ))
        }
    };
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j];
        let more = j + 1 < args.len();
        if is_kw(opt, "idx") {
            getidx = true;
        } else if is_kw(opt, "len") {
            getlen = true;
        } else if is_kw(opt, "withmatchlen") {
            withmatchlen = true;
        } else if is_kw(opt, "minmatchlen") && more {
            minmatchlen = tri!(int_arg(&args[j + 1])).max(0);
            j += 1;
        } else {
            return reply(errors::err(errors::SYNTAX));
        }
        j += 1;
    }
    if getidx && getlen {
        return reply(Reply::error(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
        return reply(Reply::error("ERR String too long for LCS"));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells.saturating_mul(4) > c.ks.config().max_bulk_len {
        return reply(Reply::error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let w = blen + 1;
    let mut t = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[alen * w + blen];
    let mut idx = total as usize;
    let computelcs = getidx || !getlen;
    let mut result = vec![0u8; if computelcs { idx } else { 0 }];
    let mut matches = Vec::new();
    let (mut ar_start, mut ar_end, mut br_start, mut br_end) = (alen, 0usize, 0usize, 0usize);
    let (mut i, mut j) = (alen, blen);
    while computelcs && i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if ar_start == alen {
                ar_start = i - 1;
                ar_end = i - 1;
                br_start = j - 1;
                br_end = j - 1;
            } else if ar_start == i && br_start == j {
                ar_start -= 1;
                br_start -= 1;
            } else {
                emit = true;
            }
            if ar_start == 0 || br_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if ar_start != alen {
                emit = true;
            }
        }
        let match_len = ar_end.wrapping_sub(ar_start).wrapping_add(1) as u32 as i64;
        if emit {
            if (minmatchlen == 0 || match_len >= minmatchlen) && getidx {
                let mut m = vec![
                    Reply::Array(vec![Reply::Int(ar_start as i64), Reply::Int(ar_end as i64)]),
                    Reply::Array(vec![Reply::Int(br_start as i64), Reply::Int(br_end as i64)]),
                ];
                if withmatchlen {
                    m.push(Reply::Int(match_len));
                }
                matches.push(Reply::Array(m));
            }
            ar_start = alen;
        }
    }
    if getidx {
        reply(Reply::Map(vec![
            (Reply::bulk(b"matches"), Reply::Array(matches)),
            (Reply::bulk(b"len"), Reply::Int(total as i64)),
        ]))
    } else if getlen {
        int(total as i64)
    } else {
        reply(Reply::Bulk(Bytes::from(result)))
    }
}

/// The table, as redis-server 7.0's `COMMAND INFO` describes these commands.
pub const COMMANDS: &[Command] = &[
    Command {
        spec: Spec {
            name: "get",
            arity: 2,
            flags: Flags::READONLY.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["read", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_get,
    },
    Command {
        spec: Spec {
            name: "set",
            arity: -3,
            flags: Flags::WRITE.or(Flags::DENYOOM),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "slow"],
            subcommands: &[],
        },
        run: cmd_set,
    },
    Command {
        spec: Spec {
            name: "setex",
            arity: 4,
            flags: Flags::WRITE.or(Flags::DENYOOM),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "slow"],
            subcommands: &[],
        },
        run: cmd_setex,
    },
    Command {
        spec: Spec {
            name: "psetex",
            arity: 4,
            flags: Flags::WRITE.or(Flags::DENYOOM),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "slow"],
            subcommands: &[],
        },
        run: cmd_psetex,
    },
    Command {
        spec: Spec {
            name: "setnx",
            arity: 3,
            flags: Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_setnx,
    },
    Command {
        spec: Spec {
            name: "getset",
            arity: 3,
            flags: Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_getset,
    },
    Command {
        spec: Spec {
            name: "getdel",
            arity: 2,
            flags: Flags::WRITE.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_getdel,
    },
    Command {
        spec: Spec {
            name: "getex",
            arity: -2,
            flags: Flags::WRITE.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_getex,
    },
    Command {
        spec: Spec {
            name: "mget",
            arity: -2,
            flags: Flags::READONLY.or(Flags::FAST),
            first_key: 1,
            last_key: -1,
            step: 1,
            categories: &["read", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_mget,
    },
    Command {
        spec: Spec {
            name: "mset",
            arity: -3,
            flags: Flags::WRITE.or(Flags::DENYOOM),
            first_key: 1,
            last_key: -1,
            step: 2,
            categories: &["write", "string", "slow"],
            subcommands: &[],
        },
        run: cmd_mset,
    },
    Command {
        spec: Spec {
            name: "msetnx",
            arity: -3,
            flags: Flags::WRITE.or(Flags::DENYOOM),
            first_key: 1,
            last_key: -1,
            step: 2,
            categories: &["write", "string", "slow"],
            subcommands: &[],
        },
        run: cmd_msetnx,
    },
    Command {
        spec: Spec {
            name: "incr",
            arity: 2,
            flags: Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_incr,
    },
    Command {
        spec: Spec {
            name: "incrby",
            arity: 3,
            flags: Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_incrby,
    },
    Command {
        spec: Spec {
            name: "incrbyfloat",
            arity: 3,
            flags: Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_incrbyfloat,
    },
    Command {
        spec: Spec {
            name: "decr",
            arity: 2,
            flags: Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_decr,
    },
    Command {
        spec: Spec {
            name: "decrby",
            arity: 3,
            flags: Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_decrby,
    },
    Command {
        spec: Spec {
            name: "append",
            arity: 3,
            flags: Flags::WRITE.or(Flags::DENYOOM).or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_append,
    },
    Command {
        spec: Spec {
            name: "strlen",
            arity: 2,
            flags: Flags::READONLY.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["read", "string", "fast"],
            subcommands: &[],
        },
        run: cmd_strlen,
    },
    Command {
        spec: Spec {
            name: "getrange",
            arity: 4,
            flags: Flags::READONLY,
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["read", "string", "slow"],
            subcommands: &[],
        },
        run: cmd_getrange,
    },
    // `SUBSTR`: GETRANGE's old name, still in Redis 7.0's table.
    Command {
        spec: Spec {
            name: "substr",
            arity: 4,
            flags: Flags::READONLY,
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["read", "string", "slow"],
            subcommands: &[],
        },
        run: cmd_getrange,
    },
    Command {
        spec: Spec {
            name: "setrange",
            arity: 4,
            flags: Flags::WRITE.or(Flags::DENYOOM),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["write", "string", "slow"],
            subcommands: &[],
        },
        run: cmd_setrange,
    },
    Command {
        spec: Spec {
            name: "lcs",
            arity: -3,
            flags: Flags::READONLY,
            first_key: 1,
            last_key: 2,
            step: 1,
            categories: &["read", "string", "slow"],
            subcommands: &[],
        },
        run: cmd_lcs,
    },
];
