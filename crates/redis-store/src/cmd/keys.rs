//! The keys commands (`DEL`, `EXISTS`, `RENAME`, `COPY`, `SCAN`, the expiry commands,
//! `OBJECT`...) and the keyspace-level server commands (`SELECT`, `SWAPDB`, `DBSIZE`,
//! `FLUSHDB`, `FLUSHALL`), with redis-server 7.0's replies and errors.

use bytes::Bytes;
use redis_proto::Reply;

use crate::cmd::{bulk, int32_arg, int_arg, invalid_expire, is_kw, tri};
use crate::commands::{Command, Flags, Spec};
use crate::db::Value;
use crate::errors;
use crate::glob;
use crate::keyspace::Keyspace;
use crate::{Cmd, Exec};

fn reply(r: Reply) -> Exec {
    Exec::Reply(r)
}

fn int(v: i64) -> Exec {
    Exec::Reply(Reply::Int(v))
}

const SAME_OBJECT: &str = "ERR source and destination objects are the same";

fn cmd_del(c: &mut Cmd<'_>) -> Exec {
    let db = c.client.db;
    let mut n = 0;
    for k in &c.args[1..] {
        c.ks.expire_if_needed(db, k, c.now_ms);
        if c.ks.remove(db, k).is_some() {
            n += 1;
        }
    }
    int(n)
}

fn cmd_unlink(c: &mut Cmd<'_>) -> Exec {
    cmd_del(c)
}

fn cmd_exists(c: &mut Cmd<'_>) -> Exec {
    let db = c.client.db;
    let mut n = 0;
    for k in &c.args[1..] {
        if c.ks.lookup_read_notouch(db, k, c.now_ms).is_some() {
            n += 1;
        }
    }
    int(n)
}

fn cmd_type(c: &mut Cmd<'_>) -> Exec {
    let db = c.client.db;
    let t = match c.ks.lookup_read_notouch(db, &c.args[1], c.now_ms) {
        Some(e) => e.value.type_name(),
        None => "none",
    };
    reply(Reply::simple(t))
}

fn cmd_touch(c: &mut Cmd<'_>) -> Exec {
    let db = c.client.db;
    let mut n = 0;
    for k in &c.args[1..] {
        if c.ks.lookup_read(db, k, c.now_ms).is_some() {
            n += 1;
        }
    }
    int(n)
}

fn rename(c: &mut Cmd<'_>, nx: bool) -> Exec {
    let db = c.client.db;
    let (src, dst) = (&c.args[1], &c.args[2]);
    if c.ks.lookup(db, src, c.now_ms).is_none() {
        return reply(errors::err(errors::NO_SUCH_KEY));
    }
    if src == dst {
        return reply(if nx { Reply::Int(0) } else { Reply::ok() });
    }
    if c.ks.lookup(db, dst, c.now_ms).is_some() {
        if nx {
            return int(0);
        }
        c.ks.remove(db, dst);
    }
    let Some(entry) = c.ks.remove(db, src) else {
        return reply(errors::err(errors::NO_SUCH_KEY));
    };
    c.ks.insert_entry(db, dst, entry);
    reply(if nx { Reply::Int(1) } else { Reply::ok() })
}

fn cmd_rename(c: &mut Cmd<'_>) -> Exec {
    rename(c, false)
}

fn cmd_renamenx(c: &mut Cmd<'_>) -> Exec {
    rename(c, true)
}

fn cmd_copy(c: &mut Cmd<'_>) -> Exec {
    let src_db = c.client.db;
    let mut dst_db = src_db as i64;
    let mut replace = false;
    let mut j = 3;
    while j < c.args.len() {
        let a = &c.args[j];
        if is_kw(a, "replace") {
            replace = true;
        } else if is_kw(a, "db") && j + 1 < c.args.len() {
            dst_db = tri!(int32_arg(&c.args[j + 1], None));
            // Checked at once, as Redis does, before any later syntax error.
            if dst_db < 0 || dst_db as usize >= c.ks.databases() {
                return reply(errors::err(errors::DB_OUT_OF_RANGE));
            }
            j += 1;
        } else {
            return reply(errors::err(errors::SYNTAX));
        }
        j += 1;
    }
    if dst_db < 0 || dst_db as usize >= c.ks.databases() {
        return reply(errors::err(errors::DB_OUT_OF_RANGE));
    }
    let dst_db = dst_db as usize;
    let (key, newkey) = (&c.args[1], &c.args[2]);
    if src_db == dst_db && key == newkey {
        return reply(errors::err(SAME_OBJECT));
    }
    let Some(e) = c.ks.lookup_read(src_db, key, c.now_ms) else {
        return int(0);
    };
    let (value, expire_at) = (e.value.clone(), e.expire_at);
    if c.ks.lookup(dst_db, newkey, c.now_ms).is_some() {
        if !replace {
            return int(0);
        }
        c.ks.remove(dst_db, newkey);
    }
    c.ks.insert(dst_db, newkey, value, expire_at, c.now_ms);
    int(1)
}

fn cmd_move(c: &mut Cmd<'_>) -> Exec {
    let src_db = c.client.db;
    let dst = tri!(int32_arg(&c.args[2], None));
    if dst < 0 || dst as usize >= c.ks.databases() {
        return reply(errors::err(errors::DB_OUT_OF_RANGE));
    }
    let dst = dst as usize;
    if dst == src_db {
        return reply(errors::err(SAME_OBJECT));
    }
    let key = &c.args[1];
    if c.ks.lookup(src_db, key, c.now_ms).is_none() {
        return int(0);
    }
    if c.ks.lookup(dst, key, c.now_ms).is_some() {
        return int(0);
    }
    let Some(entry) = c.ks.remove(src_db, key) else {
        return int(0);
    };
    c.ks.insert_entry(dst, key, entry);
    int(1)
}

fn cmd_keys(c: &mut Cmd<'_>) -> Exec {
    let db = c.client.db;
    let pat = &c.args[1];
    let all = pat.as_ref() == b"*";
    let now = c.now_ms;
    let keys: Vec<Reply> =
        c.ks.db(db)
            .map
            .iter()
            .filter(|(k, e)| !e.is_expired(now) && (all || glob::matches(pat, k)))
            .map(|(k, _)| bulk(k))
            .collect();
    reply(Reply::Array(keys))
}

/// `parseScanCursorOrReply`: `strtoul` with Redis's checks (leading space, trailing bytes and
/// overflow are errors; a `-` negates modulo 2^64, an empty cursor is 0).
pub(crate) fn parse_cursor(a: &[u8]) -> Option<u64> {
    let (neg, digits) = match a.first() {
        Some(b'-') => (true, &a[1..]),
        Some(b'+') => (false, &a[1..]),
        _ => (false, a),
    };
    if a.is_empty() {
        return Some(0);
    }
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

fn cmd_scan(c: &mut Cmd<'_>) -> Exec {
    let db = c.client.db;
    let Some(cursor) = parse_cursor(&c.args[1]) else {
        return reply(Reply::error("ERR invalid cursor"));
    };
    let mut count: i64 = 10;
    let mut pattern: Option<&Bytes> = None;
    let mut typ: Option<&Bytes> = None;
    let mut i = 2;
    while i < c.args.len() {
        let more = i + 1 < c.args.len();
        let a = &c.args[i];
        if is_kw(a, "count") && more {
            count = tri!(int_arg(&c.args[i + 1]));
            if count < 1 {
                return reply(errors::err(errors::SYNTAX));
            }
        } else if is_kw(a, "match") && more {
            let p = &c.args[i + 1];
            pattern = if p.as_ref() == b"*" { None } else { Some(p) };
        } else if is_kw(a, "type") && more {
            typ = Some(&c.args[i + 1]);
        } else {
            return reply(errors::err(errors::SYNTAX));
        }
        i += 2;
    }
    // The cursor is one past the next index to visit, walking from the end toward 0: a
    // swap_remove only ever moves the last (already visited) key into a lower slot, so a key
    // present throughout is never skipped. 0 starts (at the end) and 0 ends.
    let len = c.ks.db(db).len() as u64;
    let mut pos = if cursor == 0 || cursor > len {
        len
    } else {
        cursor
    };
    let mut picked: Vec<Box<[u8]>> = Vec::new();
    {
        let map = &c.ks.db(db).map;
        let mut visited = 0i64;
        while pos > 0 && visited < count {
            pos -= 1;
            visited += 1;
            if let Some((k, _)) = map.get_index(pos as usize) {
                picked.push(k.clone());
            }
        }
    }
    let mut out = Vec::with_capacity(picked.len());
    for k in picked {
        if let Some(p) = pattern {
            if !glob::matches(p, &k) {
                continue;
            }
        }
        if let Some(t) = typ {
            let name =
                c.ks.db(db)
                    .map
                    .get(&k)
                    .map_or("none", |e| e.value.type_name());
            if !t.eq_ignore_ascii_case(name.as_bytes()) {
                continue;
            }
        }
        // Expired keys are deleted as Redis's SCAN does; the removal moves an already visited
        // key, so the cursor stays valid.
        if c.ks.expire_if_needed(db, &k, c.now_ms) {
            continue;
        }
        out.push(bulk(&k));
    }
    let next = if pos == 0 { 0 } else { pos };
    reply(Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(out),
    ]))
}

fn cmd_randomkey(c: &mut Cmd<'_>) -> Exec {
    let db = c.client.db;
    // Read-only runs cannot delete the expired keys they draw: after this many draws they
    // take the first live key from a random place instead of looping.
    let mut tries = 100;
    loop {
        let len = c.ks.db(db).len();
        if len == 0 {
            return reply(Reply::Nil);
        }
        let i = (c.ks.random_u64() % len as u64) as usize;
        let Some((k, e)) = c.ks.db(db).map.get_index(i) else {
            return reply(Reply::Nil);
        };
        let k = k.clone();
        if e.is_expired(c.now_ms) {
            c.ks.expire_if_needed(db, &k, c.now_ms);
            if c.ks.read_only {
                tries -= 1;
                if tries == 0 {
                    let map = &c.ks.db(db).map;
                    let live = (0..len)
                        .map(|j| (i + j) % len)
                        .filter_map(|j| map.get_index(j))
                        .find(|(_, e)| !e.is_expired(c.now_ms));
                    return reply(live.map_or(Reply::Nil, |(k, _)| bulk(k)));
                }
            }
            continue;
        }
        return reply(bulk(&k));
    }
}

/// `EXPIRE`'s NX/XX/GT/LT flags.
#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_flags(args: &[Bytes]) -> Result<ExpireFlags, Reply> {
    let mut f = ExpireFlags::default();
    for a in args {
        if is_kw(a, "nx") {
            f.nx = true;
        } else if is_kw(a, "xx") {
            f.xx = true;
        } else if is_kw(a, "gt") {
            f.gt = true;
        } else if is_kw(a, "lt") {
            f.lt = true;
        } else {
            return Err(Reply::error(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(Reply::error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(Reply::error(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// `expireGenericCommand`: `base` is 0 for the *AT forms, now otherwise.
fn expire_generic(c: &mut Cmd<'_>, name: &str, relative: bool, seconds: bool) -> Exec {
    let db = c.client.db;
    let flags = tri!(parse_expire_flags(&c.args[3..]));
    let mut when = tri!(int_arg(&c.args[2]));
    if seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return reply(invalid_expire(name));
        }
        when *= 1000;
    }
    let base = if relative { c.now_ms as i64 } else { 0 };
    if when > i64::MAX - base {
        return reply(invalid_expire(name));
    }
    when += base;
    let Some(e) = c.ks.lookup(db, &c.args[1], c.now_ms) else {
        return int(0);
    };
    let current: i64 = if e.expire_at == 0 {
        -1
    } else {
        e.expire_at as i64
    };
    if (flags.nx && current != -1)
        || (flags.xx && current == -1)
        || (flags.gt && (when <= current || current == -1))
        || (flags.lt && current != -1 && when >= current)
    {
        return int(0);
    }
    if when <= c.now_ms as i64 {
        c.ks.remove(db, &c.args[1]);
        return int(1);
    }
    c.ks.set_expire(db, &c.args[1], when as u64, c.now_ms);
    int(1)
}

fn cmd_expire(c: &mut Cmd<'_>) -> Exec {
    expire_generic(c, "expire", true, true)
}

fn cmd_pexpire(c: &mut Cmd<'_>) -> Exec {
    expire_generic(c, "pexpire", true, false)
}

fn cmd_expireat(c: &mut Cmd<'_>) -> Exec {
    expire_generic(c, "expireat", false, true)
}

fn cmd_pexpireat(c: &mut Cmd<'_>) -> Exec {
    expire_generic(c, "pexpireat", false, false)
}

/// `ttlGenericCommand`.
fn ttl_generic(c: &mut Cmd<'_>, ms: bool, absolute: bool) -> Exec {
    let db = c.client.db;
    let now = c.now_ms as i64;
    let Some(e) = c.ks.lookup_read_notouch(db, &c.args[1], c.now_ms) else {
        return int(-2);
    };
    if e.expire_at == 0 {
        return int(-1);
    }
    let at = e.expire_at as i64;
    let ttl = if absolute { at } else { (at - now).max(0) };
    int(if ms {
        ttl
    } else {
        ((ttl as i128 + 500) / 1000) as i64
    })
}

fn cmd_ttl(c: &mut Cmd<'_>) -> Exec {
    ttl_generic(c, false, false)
}

fn cmd_pttl(c: &mut Cmd<'_>) -> Exec {
    ttl_generic(c, true, false)
}

fn cmd_expiretime(c: &mut Cmd<'_>) -> Exec {
    ttl_generic(c, false, true)
}

fn cmd_pexpiretime(c: &mut Cmd<'_>) -> Exec {
    ttl_generic(c, true, true)
}

fn cmd_persist(c: &mut Cmd<'_>) -> Exec {
    let db = c.client.db;
    match c.ks.lookup(db, &c.args[1], c.now_ms) {
        Some(e) if e.expire_at != 0 => {
            c.ks.set_expire(db, &c.args[1], 0, c.now_ms);
            int(1)
        }
        _ => int(0),
    }
}

/// `OBJECT ENCODING`'s answer, by redis-server 7.0's rules for the value's size and content
/// (its default `*-max-*` settings).
pub fn encoding(v: &Value) -> &'static str {
    match v {
        Value::Str(s) => {
            if s.is_raw() {
                "raw"
            } else if s.len() <= 20 && crate::args::parse_i64(s).is_some() {
                "int"
            } else if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        // 7.0 keeps every list in a quicklist (listpack lists came with 7.2).
        Value::List(_) => "quicklist",
        Value::Hash(h) => {
            if h.map.len() <= 128 && h.map.iter().all(|(f, v)| f.len() <= 64 && v.len() <= 64) {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Value::Set(s) => {
            if s.set.len() <= 512 && s.set.iter().all(|m| crate::args::parse_i64(m).is_some()) {
                "intset"
            } else {
                "hashtable"
            }
        }
    }
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

fn cmd_object(c: &mut Cmd<'_>) -> Exec {
    let db = c.client.db;
    let sub = &c.args[1];
    let argc = c.args.len();
    let known = ["encoding", "freq", "idletime", "refcount", "help"];
    let Some(name) = known.iter().find(|n| is_kw(sub, n)) else {
        return reply(Reply::error(format!(
            "ERR unknown subcommand '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(sub)
        )));
    };
    let want = if *name == "help" { 2 } else { 3 };
    if argc != want {
        return reply(errors::wrong_arity(&format!("object|{name}")));
    }
    if *name == "help" {
        return reply(Reply::Array(
            OBJECT_HELP.iter().map(|l| Reply::simple(l)).collect(),
        ));
    }
    let now = c.now_ms;
    let Some(e) = c.ks.lookup_read_notouch(db, &c.args[2], now) else {
        return reply(Reply::Nil);
    };
    match *name {
        "encoding" => reply(Reply::bulk(encoding(&e.value).as_bytes())),
        "freq" => reply(Reply::error(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        )),
        "idletime" => {
            let idle = Keyspace::lru_clock(now).wrapping_sub(e.lru());
            int(idle as i64)
        }
        _ => int(1),
    }
}

fn cmd_select(c: &mut Cmd<'_>) -> Exec {
    let id = tri!(int32_arg(&c.args[1], None));
    if id < 0 || id as usize >= c.ks.databases() {
        return reply(errors::err(errors::DB_OUT_OF_RANGE));
    }
    c.client.db = id as usize;
    reply(Reply::ok())
}

fn cmd_swapdb(c: &mut Cmd<'_>) -> Exec {
    let a = tri!(int32_arg(&c.args[1], Some("ERR invalid first DB index")));
    let b = tri!(int32_arg(&c.args[2], Some("ERR invalid second DB index")));
    let n = c.ks.databases() as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return reply(errors::err(errors::DB_OUT_OF_RANGE));
    }
    c.ks.swap_dbs(a as usize, b as usize, c.now_ms);
    reply(Reply::ok())
}

fn cmd_dbsize(c: &mut Cmd<'_>) -> Exec {
    int(c.ks.dbsize(c.client.db) as i64)
}

/// `getFlushCommandFlags`: nothing, `ASYNC` or `SYNC`.
fn flush_args_ok(args: &[Bytes]) -> bool {
    match args.len() {
        1 => true,
        2 => is_kw(&args[1], "async") || is_kw(&args[1], "sync"),
        _ => false,
    }
}

fn cmd_flushdb(c: &mut Cmd<'_>) -> Exec {
    if !flush_args_ok(c.args) {
        return reply(errors::err(errors::SYNTAX));
    }
    c.ks.flush_db(c.client.db, c.now_ms);
    reply(Reply::ok())
}

fn cmd_flushall(c: &mut Cmd<'_>) -> Exec {
    if !flush_args_ok(c.args) {
        return reply(errors::err(errors::SYNTAX));
    }
    for db in 0..c.ks.databases() {
        c.ks.flush_db(db, c.now_ms);
    }
    reply(Reply::ok())
}

/// The table, as redis-server 7.0's `COMMAND INFO` describes these commands.
pub const COMMANDS: &[Command] = &[
    Command {
        spec: Spec {
            name: "del",
            arity: -2,
            flags: Flags::WRITE,
            first_key: 1,
            last_key: -1,
            step: 1,
            categories: &["keyspace", "write", "slow"],
            subcommands: &[],
        },
        run: cmd_del,
    },
    Command {
        spec: Spec {
            name: "unlink",
            arity: -2,
            flags: Flags::WRITE.or(Flags::FAST),
            first_key: 1,
            last_key: -1,
            step: 1,
            categories: &["keyspace", "write", "fast"],
            subcommands: &[],
        },
        run: cmd_unlink,
    },
    Command {
        spec: Spec {
            name: "exists",
            arity: -2,
            flags: Flags::READONLY.or(Flags::FAST),
            first_key: 1,
            last_key: -1,
            step: 1,
            categories: &["keyspace", "read", "fast"],
            subcommands: &[],
        },
        run: cmd_exists,
    },
    Command {
        spec: Spec {
            name: "type",
            arity: 2,
            flags: Flags::READONLY.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["keyspace", "read", "fast"],
            subcommands: &[],
        },
        run: cmd_type,
    },
    Command {
        spec: Spec {
            name: "touch",
            arity: -2,
            flags: Flags::READONLY.or(Flags::FAST),
            first_key: 1,
            last_key: -1,
            step: 1,
            categories: &["keyspace", "read", "fast"],
            subcommands: &[],
        },
        run: cmd_touch,
    },
    Command {
        spec: Spec {
            name: "rename",
            arity: 3,
            flags: Flags::WRITE,
            first_key: 1,
            last_key: 2,
            step: 1,
            categories: &["keyspace", "write", "slow"],
            subcommands: &[],
        },
        run: cmd_rename,
    },
    Command {
        spec: Spec {
            name: "renamenx",
            arity: 3,
            flags: Flags::WRITE.or(Flags::FAST),
            first_key: 1,
            last_key: 2,
            step: 1,
            categories: &["keyspace", "write", "fast"],
            subcommands: &[],
        },
        run: cmd_renamenx,
    },
    Command {
        spec: Spec {
            name: "copy",
            arity: -3,
            flags: Flags::WRITE.or(Flags::DENYOOM),
            first_key: 1,
            last_key: 2,
            step: 1,
            categories: &["keyspace", "write", "slow"],
            subcommands: &[],
        },
        run: cmd_copy,
    },
    Command {
        spec: Spec {
            name: "keys",
            arity: 2,
            flags: Flags::READONLY,
            first_key: 0,
            last_key: 0,
            step: 0,
            categories: &["keyspace", "read", "slow", "dangerous"],
            subcommands: &[],
        },
        run: cmd_keys,
    },
    Command {
        spec: Spec {
            name: "scan",
            arity: -2,
            flags: Flags::READONLY,
            first_key: 0,
            last_key: 0,
            step: 0,
            categories: &["keyspace", "read", "slow"],
            subcommands: &[],
        },
        run: cmd_scan,
    },
    Command {
        spec: Spec {
            name: "randomkey",
            arity: 1,
            flags: Flags::READONLY,
            first_key: 0,
            last_key: 0,
            step: 0,
            categories: &["keyspace", "read", "slow"],
            subcommands: &[],
        },
        run: cmd_randomkey,
    },
    Command {
        spec: Spec {
            name: "expire",
            arity: -3,
            flags: Flags::WRITE.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["keyspace", "write", "fast"],
            subcommands: &[],
        },
        run: cmd_expire,
    },
    Command {
        spec: Spec {
            name: "pexpire",
            arity: -3,
            flags: Flags::WRITE.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["keyspace", "write", "fast"],
            subcommands: &[],
        },
        run: cmd_pexpire,
    },
    Command {
        spec: Spec {
            name: "expireat",
            arity: -3,
            flags: Flags::WRITE.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["keyspace", "write", "fast"],
            subcommands: &[],
        },
        run: cmd_expireat,
    },
    Command {
        spec: Spec {
            name: "pexpireat",
            arity: -3,
            flags: Flags::WRITE.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["keyspace", "write", "fast"],
            subcommands: &[],
        },
        run: cmd_pexpireat,
    },
    Command {
        spec: Spec {
            name: "expiretime",
            arity: 2,
            flags: Flags::READONLY.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["keyspace", "read", "fast"],
            subcommands: &[],
        },
        run: cmd_expiretime,
    },
    Command {
        spec: Spec {
            name: "pexpiretime",
            arity: 2,
            flags: Flags::READONLY.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["keyspace", "read", "fast"],
            subcommands: &[],
        },
        run: cmd_pexpiretime,
    },
    Command {
        spec: Spec {
            name: "ttl",
            arity: 2,
            flags: Flags::READONLY.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["keyspace", "read", "fast"],
            subcommands: &[],
        },
        run: cmd_ttl,
    },
    Command {
        spec: Spec {
            name: "pttl",
            arity: 2,
            flags: Flags::READONLY.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["keyspace", "read", "fast"],
            subcommands: &[],
        },
        run: cmd_pttl,
    },
    Command {
        spec: Spec {
            name: "persist",
            arity: 2,
            flags: Flags::WRITE.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["keyspace", "write", "fast"],
            subcommands: &[],
        },
        run: cmd_persist,
    },
    Command {
        spec: Spec {
            name: "object",
            arity: -2,
            flags: Flags(0),
            first_key: 0,
            last_key: 0,
            step: 0,
            categories: &["slow"],
            subcommands: &[
                Spec {
                    name: "object|encoding",
                    arity: 3,
                    flags: Flags::READONLY,
                    first_key: 2,
                    last_key: 2,
                    step: 1,
                    categories: &["keyspace", "read", "slow"],
                    subcommands: &[],
                },
                Spec {
                    name: "object|help",
                    arity: 2,
                    flags: Flags::LOADING.or(Flags::STALE),
                    first_key: 0,
                    last_key: 0,
                    step: 0,
                    categories: &["keyspace", "slow"],
                    subcommands: &[],
                },
                Spec {
                    name: "object|idletime",
                    arity: 3,
                    flags: Flags::READONLY,
                    first_key: 2,
                    last_key: 2,
                    step: 1,
                    categories: &["keyspace", "read", "slow"],
                    subcommands: &[],
                },
                Spec {
                    name: "object|refcount",
                    arity: 3,
                    flags: Flags::READONLY,
                    first_key: 2,
                    last_key: 2,
                    step: 1,
                    categories: &["keyspace", "read", "slow"],
                    subcommands: &[],
                },
                Spec {
                    name: "object|freq",
                    arity: 3,
                    flags: Flags::READONLY,
                    first_key: 2,
                    last_key: 2,
                    step: 1,
                    categories: &["keyspace", "read", "slow"],
                    subcommands: &[],
                },
            ],
        },
        run: cmd_object,
    },
    Command {
        spec: Spec {
            name: "move",
            arity: 3,
            flags: Flags::WRITE.or(Flags::FAST),
            first_key: 1,
            last_key: 1,
            step: 1,
            categories: &["keyspace", "write", "fast"],
            subcommands: &[],
        },
        run: cmd_move,
    },
    Command {
        spec: Spec {
            name: "select",
            arity: 2,
            flags: Flags::LOADING.or(Flags::STALE).or(Flags::FAST),
            first_key: 0,
            last_key: 0,
            step: 0,
            categories: &["fast", "connection"],
            subcommands: &[],
        },
        run: cmd_select,
    },
    Command {
        spec: Spec {
            name: "swapdb",
            arity: 3,
            flags: Flags::WRITE.or(Flags::FAST),
            first_key: 0,
            last_key: 0,
            step: 0,
            categories: &["keyspace", "write", "fast", "dangerous"],
            subcommands: &[],
        },
        run: cmd_swapdb,
    },
    Command {
        spec: Spec {
            name: "dbsize",
            arity: 1,
            flags: Flags::READONLY.or(Flags::FAST),
            first_key: 0,
            last_key: 0,
            step: 0,
            categories: &["keyspace", "read", "fast"],
            subcommands: &[],
        },
        run: cmd_dbsize,
    },
    Command {
        spec: Spec {
            name: "flushdb",
            arity: -1,
            flags: Flags::WRITE,
            first_key: 0,
            last_key: 0,
            step: 0,
            categories: &["keyspace", "write", "slow", "dangerous"],
            subcommands: &[],
        },
        run: cmd_flushdb,
    },
    Command {
        spec: Spec {
            name: "flushall",
            arity: -1,
            flags: Flags::WRITE,
            first_key: 0,
            last_key: 0,
            step: 0,
            categories: &["keyspace", "write", "slow", "dangerous"],
            subcommands: &[],
        },
        run: cmd_flushall,
    },
];
