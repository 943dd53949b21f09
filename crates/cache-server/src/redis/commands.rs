//! The connection-level command table (connection, server, transactions, pub/sub: the
//! commands the server runs itself) with the same [`Spec`] metadata as the store's data
//! commands, so `COMMAND INFO` covers both; the checks redis-server makes before running any
//! command (unknown command, unknown subcommand, arity) with its exact errors; `COMMAND`'s and
//! `CONFIG`'s replies (`COMMAND INFO` and `COMMAND DOCS` give Redis 7.0.15's own entries, from
//! [`docs`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use redis_proto::Reply;
use redis_store::{Command, Flags, Spec};

use super::limits::{parse_memory, parse_obuf_config, ObufClass};
use crate::config::RedisSettings;

mod docs;

const fn f(bits: &[Flags]) -> Flags {
    let mut out = 0;
    let mut i = 0;
    while i < bits.len() {
        out |= bits[i].0;
        i += 1;
    }
    Flags(out)
}

const fn spec(
    name: &'static str,
    arity: i32,
    flags: Flags,
    categories: &'static [&'static str],
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        first_key: 0,
        last_key: 0,
        step: 0,
        categories,
        subcommands: &[],
    }
}

const fn container(
    name: &'static str,
    categories: &'static [&'static str],
    subs: &'static [Spec],
) -> Spec {
    Spec {
        name,
        arity: -2,
        flags: Flags(0),
        first_key: 0,
        last_key: 0,
        step: 0,
        categories,
        subcommands: subs,
    }
}

use Flags as F;
const AUTHF: Flags = f(&[
    F::NOSCRIPT,
    F::LOADING,
    F::STALE,
    F::FAST,
    F::NO_AUTH,
    F::ALLOW_BUSY,
]);
const CONN: &[&str] = &["fast", "connection"];
const SLOW_CONN: &[&str] = &["slow", "connection"];
const ADMIN_CONN: &[&str] = &["admin", "slow", "dangerous", "connection"];
const CLIENTF: Flags = f(&[F::NOSCRIPT, F::LOADING, F::STALE]);
const CLIENT_ADMINF: Flags = f(&[F::ADMIN, F::NOSCRIPT, F::LOADING, F::STALE]);
const ADMIN: &[&str] = &["admin", "slow", "dangerous"];
const TXF: Flags = f(&[F::NOSCRIPT, F::LOADING, F::STALE, F::FAST, F::ALLOW_BUSY]);
const TX: &[&str] = &["fast", "transaction"];
const PSF: Flags = f(&[F::PUBSUB, F::NOSCRIPT, F::LOADING, F::STALE]);
const PS: &[&str] = &["pubsub", "slow"];
const PSINFO: Flags = f(&[F::PUBSUB, F::LOADING, F::STALE]);

static CLIENT_SUBS: [Spec; 10] = [
    spec("client|id", 2, CLIENTF, SLOW_CONN),
    spec("client|setname", 3, CLIENTF, SLOW_CONN),
    spec("client|getname", 2, CLIENTF, SLOW_CONN),
    spec("client|setinfo", 4, CLIENTF, SLOW_CONN),
    spec("client|list", -2, CLIENT_ADMINF, ADMIN_CONN),
    spec("client|kill", -3, CLIENT_ADMINF, ADMIN_CONN),
    spec("client|info", 2, CLIENTF, SLOW_CONN),
    spec("client|no-evict", 3, CLIENT_ADMINF, ADMIN_CONN),
    spec("client|reply", 3, CLIENTF, SLOW_CONN),
    spec("client|help", 2, f(&[F::LOADING, F::STALE]), SLOW_CONN),
];
static COMMAND_SUBS: [Spec; 5] = [
    spec("command|count", 2, f(&[F::LOADING, F::STALE]), SLOW_CONN),
    spec("command|info", -2, f(&[F::LOADING, F::STALE]), SLOW_CONN),
    spec("command|docs", -2, f(&[F::LOADING, F::STALE]), SLOW_CONN),
    spec("command|list", -2, f(&[F::LOADING, F::STALE]), SLOW_CONN),
    spec("command|help", 2, f(&[F::LOADING, F::STALE]), SLOW_CONN),
];
static CONFIG_SUBS: [Spec; 4] = [
    spec("config|get", -3, CLIENT_ADMINF, ADMIN),
    spec("config|set", -4, CLIENT_ADMINF, ADMIN),
    spec("config|resetstat", 2, CLIENT_ADMINF, ADMIN),
    spec("config|help", 2, f(&[F::LOADING, F::STALE]), &["slow"]),
];
static PUBSUB_SUBS: [Spec; 4] = [
    spec("pubsub|channels", -2, PSINFO, PS),
    spec("pubsub|numsub", -2, PSINFO, PS),
    spec("pubsub|numpat", 2, PSINFO, PS),
    spec("pubsub|help", 2, f(&[F::LOADING, F::STALE]), &["slow"]),
];

/// The commands the server runs itself.
pub static SERVER_COMMANDS: [Spec; 28] = [
    spec("auth", -2, AUTHF, CONN),
    spec("hello", -1, AUTHF, CONN),
    spec("ping", -1, f(&[F::FAST]), CONN),
    spec("echo", 2, f(&[F::LOADING, F::STALE, F::FAST]), CONN),
    spec(
        "quit",
        -1,
        f(&[
            F::ALLOW_BUSY,
            F::NOSCRIPT,
            F::LOADING,
            F::STALE,
            F::FAST,
            F::NO_AUTH,
        ]),
        CONN,
    ),
    spec(
        "reset",
        1,
        f(&[
            F::NOSCRIPT,
            F::LOADING,
            F::STALE,
            F::FAST,
            F::NO_AUTH,
            F::ALLOW_BUSY,
        ]),
        CONN,
    ),
    container("client", &["slow"], &CLIENT_SUBS),
    // Bare `COMMAND` is allowed: arity -1, unlike the other containers.
    Spec {
        arity: -1,
        flags: f(&[F::LOADING, F::STALE]),
        ..container("command", &["slow", "connection"], &COMMAND_SUBS)
    },
    container("config", &["slow"], &CONFIG_SUBS),
    spec(
        "info",
        -1,
        f(&[F::LOADING, F::STALE]),
        &["slow", "dangerous"],
    ),
    spec("time", 1, f(&[F::LOADING, F::STALE, F::FAST]), &["fast"]),
    spec(
        "lastsave",
        1,
        f(&[F::LOADING, F::STALE, F::FAST]),
        &["admin", "fast", "dangerous"],
    ),
    spec("save", 1, f(&[F::ADMIN, F::NOSCRIPT, F::NO_MULTI]), ADMIN),
    spec("bgsave", -1, f(&[F::ADMIN, F::NOSCRIPT]), ADMIN),
    spec(
        "debug",
        -2,
        f(&[F::ADMIN, F::NOSCRIPT, F::LOADING, F::STALE]),
        ADMIN,
    ),
    spec("multi", 1, TXF, TX),
    spec(
        "exec",
        1,
        f(&[F::NOSCRIPT, F::LOADING, F::STALE, F::SKIP_SLOWLOG]),
        &["slow", "transaction"],
    ),
    spec("discard", 1, TXF, TX),
    Spec {
        first_key: 1,
        last_key: -1,
        step: 1,
        ..spec("watch", -2, TXF, TX)
    },
    spec("unwatch", 1, TXF, TX),
    spec("subscribe", -2, PSF, PS),
    spec("unsubscribe", -1, PSF, PS),
    spec("psubscribe", -2, PSF, PS),
    spec("punsubscribe", -1, PSF, PS),
    spec(
        "publish",
        3,
        f(&[F::PUBSUB, F::LOADING, F::STALE, F::FAST, F::MAY_REPLICATE]),
        &["pubsub", "fast"],
    ),
    container("pubsub", &["slow"], &PUBSUB_SUBS),
    // Not commands of their own in Redis's table but named here for the checks below.
    spec(
        "monitor",
        1,
        f(&[F::ADMIN, F::NOSCRIPT, F::LOADING, F::STALE]),
        ADMIN,
    ),
    spec(
        "shutdown",
        -1,
        f(&[
            F::ADMIN,
            F::NOSCRIPT,
            F::LOADING,
            F::STALE,
            F::NO_MULTI,
            F::ALLOW_BUSY,
        ]),
        ADMIN,
    ),
];

fn server_table() -> &'static HashMap<&'static str, &'static Spec> {
    static T: OnceLock<HashMap<&'static str, &'static Spec>> = OnceLock::new();
    T.get_or_init(|| SERVER_COMMANDS.iter().map(|s| (s.name, s)).collect())
}

/// A command as the checks found it.
#[derive(Clone, Copy)]
pub enum Found {
    /// One of [`SERVER_COMMANDS`]; the spec is the subcommand's for a container.
    Server(&'static Spec),
    /// A data command, run by the store; the spec is the subcommand's for a container.
    Store(&'static Command, &'static Spec),
}

impl Found {
    pub fn spec(&self) -> &'static Spec {
        match self {
            Found::Server(s) | Found::Store(_, s) => s,
        }
    }
}

fn find_sub(container: &'static Spec, sub: &[u8]) -> Option<&'static Spec> {
    let base = container.name.len() + 1;
    container
        .subcommands
        .iter()
        .find(|s| s.name.len() > base && s.name.as_bytes()[base..].eq_ignore_ascii_case(sub))
}

/// Find the command `args` names and check its arity, as redis-server's `processCommand` does
/// before anything else: its error reply if it is unknown or has the wrong arity.
pub fn resolve(args: &[Bytes]) -> Result<Found, Reply> {
    let Some(name) = args.first() else {
        return Err(unknown_command(args));
    };
    let lower = name.to_ascii_lowercase();
    let top: Found = match std::str::from_utf8(&lower)
        .ok()
        .and_then(|n| server_table().get(n).copied())
    {
        Some(s) if s.name != "monitor" && s.name != "shutdown" => Found::Server(s),
        _ => match redis_store::lookup(name) {
            Some(c) => Found::Store(c, &c.spec),
            None => return Err(unknown_command(args)),
        },
    };
    let spec = top.spec();
    let found = if !spec.subcommands.is_empty() && args.len() >= 2 {
        match find_sub(spec, &args[1]) {
            Some(sub) => match top {
                Found::Server(_) => Found::Server(sub),
                Found::Store(c, _) => Found::Store(c, sub),
            },
            None => {
                return Err(error_bytes(
                    b"ERR unknown subcommand '",
                    &[
                        &trunc(&args[1], 128),
                        b"'. Try ",
                        &name.to_ascii_uppercase(),
                        b" HELP.",
                    ],
                ))
            }
        }
    } else {
        top
    };
    if !found.spec().arity_ok(args.len()) {
        return Err(wrong_arity(found.spec().name));
    }
    Ok(found)
}

/// `%.Ns` of C: at most `n` bytes, stopping at a NUL.
fn trunc(s: &[u8], n: usize) -> Vec<u8> {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len()).min(n);
    s[..end].to_vec()
}

/// An error reply from raw parts; like redis-server, newlines in it become spaces.
fn error_bytes(head: &[u8], parts: &[&[u8]]) -> Reply {
    let mut v = head.to_vec();
    for p in parts {
        v.extend_from_slice(p);
    }
    for b in v.iter_mut() {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    Reply::Error(Bytes::from(v))
}

/// redis-server 7.0's unknown-command error: the name (128 bytes at most) and the first
/// arguments, quoted, until 128 bytes of them are written.
pub fn unknown_command(args: &[Bytes]) -> Reply {
    let name = args.first().map(|n| trunc(n, 128)).unwrap_or_default();
    let mut listed: Vec<u8> = Vec::new();
    for a in args.iter().skip(1) {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        listed.push(b'\'');
        listed.extend_from_slice(&trunc(a, room));
        listed.extend_from_slice(b"' ");
    }
    error_bytes(
        b"ERR unknown command '",
        &[&name, b"', with args beginning with: ", &listed],
    )
}

/// `ERR wrong number of arguments for 'name' command` (`client|setname` for subcommands).
pub fn wrong_arity(full_name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{full_name}' command"
    ))
}

/// The subscribed-mode (RESP2) refusal.
pub fn not_in_subscribed_mode(full_name: &str) -> Reply {
    Reply::error(format!(
        "ERR Can't execute '{full_name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

/// Whether a command may run in RESP2 subscribed mode.
pub fn allowed_in_subscribed_mode(name: &str) -> bool {
    matches!(
        name,
        "ping" | "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "quit" | "reset"
    )
}

// ---- COMMAND ----

fn flag_set(flags: Flags) -> Reply {
    Reply::Set(
        flags
            .names()
            .map(|n| Reply::Simple(Bytes::from_static(n.as_bytes())))
            .collect(),
    )
}

/// One command's `COMMAND INFO` entry: Redis 7.0.15's (ten fields, tips and key
/// specifications included); a container lists only the subcommands keel implements.
pub fn command_info(s: &Spec) -> Reply {
    let Some(Reply::Array(fields)) = docs::info(s.name) else {
        return generated_info(s);
    };
    let mut fields = fields.clone();
    if !s.subcommands.is_empty() {
        if let Some(subs) = fields.get_mut(9) {
            let redis_order: Vec<&[u8]> = match subs {
                Reply::Array(v) => v
                    .iter()
                    .filter_map(|e| match e {
                        Reply::Array(f) => match f.first() {
                            Some(Reply::Bulk(n)) => Some(n.as_ref()),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            *subs = Reply::Array(
                subs_in_order(s, redis_order)
                    .into_iter()
                    .map(command_info)
                    .collect(),
            );
        }
    }
    Reply::Array(fields)
}

/// A `COMMAND INFO` entry made from keel's own table, for a command redis-server 7.0.15 does
/// not have (`CLIENT SETINFO`, from 7.2): no tips, no key specifications.
fn generated_info(s: &Spec) -> Reply {
    let subs = if s.subcommands.is_empty() {
        Reply::Set(Vec::new())
    } else {
        Reply::Array(s.subcommands.iter().map(command_info).collect())
    };
    Reply::Array(vec![
        Reply::Bulk(Bytes::from_static(s.name.as_bytes())),
        Reply::Int(s.arity.into()),
        flag_set(s.flags),
        Reply::Int(s.first_key.into()),
        Reply::Int(s.last_key.into()),
        Reply::Int(s.step.into()),
        Reply::Set(
            s.categories
                .iter()
                .map(|c| Reply::Simple(Bytes::from(format!("@{c}"))))
                .collect(),
        ),
        Reply::Set(Vec::new()),
        Reply::Set(Vec::new()),
        subs,
    ])
}

/// A container's subcommands in the order redis-server lists them (`redis_order`: its names),
/// then keel's others.
fn subs_in_order<'s>(s: &'s Spec, redis_order: Vec<&[u8]>) -> Vec<&'s Spec> {
    let mut out: Vec<&'s Spec> = redis_order
        .into_iter()
        .filter_map(|n| s.subcommands.iter().find(|c| c.name.as_bytes() == n))
        .collect();
    for c in s.subcommands {
        if !out.iter().any(|o| o.name == c.name) {
            out.push(c);
        }
    }
    out
}

/// One command's `COMMAND DOCS` map: Redis 7.0.15's; a container's `subcommands` lists only
/// the subcommands keel implements.
pub fn command_docs(s: &Spec) -> Reply {
    let Some(Reply::Map(fields)) = docs::docs(s.name) else {
        return generated_docs(s);
    };
    let mut fields = fields.clone();
    if !s.subcommands.is_empty() {
        if let Some((_, subs)) = fields
            .iter_mut()
            .find(|(k, _)| docs::is_bulk(k, b"subcommands"))
        {
            let redis_order: Vec<&[u8]> = match subs {
                Reply::Map(v) => v
                    .iter()
                    .filter_map(|(k, _)| match k {
                        Reply::Bulk(n) => Some(n.as_ref()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            *subs = Reply::Map(
                subs_in_order(s, redis_order)
                    .into_iter()
                    .map(|c| {
                        (
                            Reply::Bulk(Bytes::from_static(c.name.as_bytes())),
                            command_docs(c),
                        )
                    })
                    .collect(),
            );
        }
    }
    Reply::Map(fields)
}

/// `COMMAND DOCS` for a command redis-server 7.0.15 does not have: `CLIENT SETINFO` as Redis
/// 7.2 documents it, an empty map for anything else.
fn generated_docs(s: &Spec) -> Reply {
    let b = |t: &'static str| Reply::Bulk(Bytes::from_static(t.as_bytes()));
    if s.name != "client|setinfo" {
        return Reply::Map(Vec::new());
    }
    let arg = |name: &'static str, token: &'static str| {
        Reply::Map(vec![
            (b("name"), b(name)),
            (b("type"), b("string")),
            (b("token"), b(token)),
        ])
    };
    Reply::Map(vec![
        (
            b("summary"),
            b("Sets information specific to the client or connection."),
        ),
        (b("since"), b("7.2.0")),
        (b("group"), b("connection")),
        (b("complexity"), b("O(1)")),
        (
            b("arguments"),
            Reply::Array(vec![Reply::Map(vec![
                (b("name"), b("attr")),
                (b("type"), b("oneof")),
                (
                    b("arguments"),
                    Reply::Array(vec![arg("libname", "LIB-NAME"), arg("libver", "LIB-VER")]),
                ),
            ])]),
        ),
    ])
}

/// Every command keel runs: the server's and the store's.
pub fn all_specs() -> impl Iterator<Item = &'static Spec> {
    SERVER_COMMANDS
        .iter()
        .filter(|s| s.name != "monitor" && s.name != "shutdown")
        .chain(redis_store::commands::all().map(|c| &c.spec))
}

/// A top-level command's spec by name (any case).
pub fn find_spec(name: &[u8]) -> Option<&'static Spec> {
    let lower = name.to_ascii_lowercase();
    let n = std::str::from_utf8(&lower).ok()?;
    match server_table().get(n) {
        Some(s) if s.name != "monitor" && s.name != "shutdown" => Some(s),
        _ => redis_store::lookup(name).map(|c| &c.spec),
    }
}

/// A command or a subcommand (`client|list`, any case) by name, as `COMMAND INFO` and
/// `COMMAND DOCS` look names up.
fn find_command(name: &[u8]) -> Option<&'static Spec> {
    let Some(bar) = name.iter().position(|&c| c == b'|') else {
        return find_spec(name);
    };
    let (top, sub) = (&name[..bar], &name[bar + 1..]);
    if sub.contains(&b'|') {
        return None;
    }
    find_spec(top).and_then(|s| find_sub(s, sub))
}

/// `COMMAND ...` (the subcommand was checked by [`resolve`]).
pub fn command(args: &[Bytes]) -> Reply {
    if args.len() == 1 {
        return Reply::Array(all_specs().map(command_info).collect());
    }
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"count" => Reply::Int(all_specs().count() as i64),
        b"info" => {
            if args.len() == 2 {
                return Reply::Array(all_specs().map(command_info).collect());
            }
            Reply::Array(
                args[2..]
                    .iter()
                    .map(|n| find_command(n).map_or(Reply::Nil, command_info))
                    .collect(),
            )
        }
        b"docs" => {
            // Unknown names are skipped, as redis-server does.
            let names: Vec<&'static Spec> = if args.len() == 2 {
                all_specs().collect()
            } else {
                args[2..].iter().filter_map(|n| find_command(n)).collect()
            };
            Reply::Map(
                names
                    .into_iter()
                    .map(|s| {
                        (
                            Reply::Bulk(Bytes::from_static(s.name.as_bytes())),
                            command_docs(s),
                        )
                    })
                    .collect(),
            )
        }
        b"list" => {
            let mut filter: Option<(Vec<u8>, Vec<u8>)> = None;
            if args.len() != 2 {
                if args.len() != 5 || !args[2].eq_ignore_ascii_case(b"filterby") {
                    return Reply::error("ERR syntax error");
                }
                let kind = args[3].to_ascii_lowercase();
                if !matches!(kind.as_slice(), b"module" | b"aclcat" | b"pattern") {
                    return Reply::error("ERR syntax error");
                }
                filter = Some((kind, args[4].to_vec()));
            }
            let mut names = Vec::new();
            for s in all_specs() {
                let mut push =
                    |n: &'static str| names.push(Reply::Bulk(Bytes::from_static(n.as_bytes())));
                match &filter {
                    None => {
                        push(s.name);
                        s.subcommands.iter().for_each(|c| push(c.name));
                    }
                    Some((k, v)) if k == b"aclcat" => {
                        let v = v.to_ascii_lowercase();
                        if s.categories.iter().any(|c| c.as_bytes() == v.as_slice()) {
                            push(s.name);
                        }
                        for c in s.subcommands {
                            if c.categories.iter().any(|c| c.as_bytes() == v.as_slice()) {
                                push(c.name);
                            }
                        }
                    }
                    Some((k, v)) if k == b"pattern" => {
                        if redis_store::glob::matches(v, s.name.as_bytes()) {
                            push(s.name);
                        }
                        for c in s.subcommands {
                            if redis_store::glob::matches(v, c.name.as_bytes()) {
                                push(c.name);
                            }
                        }
                    }
                    // No modules.
                    Some(_) => {}
                }
            }
            Reply::Array(names)
        }
        _ => help(
            "COMMAND",
            &[
                "(no subcommand)",
                "    Return details about all Redis commands.",
                "COUNT",
                "    Return the total number of commands in this Redis server.",
                "LIST",
                "    Return a list of all commands in this Redis server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
            ],
        ),
    }
}

/// A `HELP` subcommand's reply, in Redis's form (`addReplyHelp`).
pub fn help(cmd: &str, lines: &[&str]) -> Reply {
    let mut out = vec![Reply::Simple(Bytes::from(format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )))];
    out.extend(
        lines
            .iter()
            .map(|l| Reply::Simple(Bytes::from(l.to_string()))),
    );
    out.push(Reply::simple("HELP"));
    out.push(Reply::simple("    Print this help."));
    Reply::Array(out)
}

// ---- CONFIG ----

/// The parameters `CONFIG GET` knows, in the order it lists them.
pub const CONFIG_PARAMS: &[&str] = &[
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "requirepass",
    "timeout",
    "proto-max-bulk-len",
    "client-output-buffer-limit",
    "databases",
    "maxclients",
    "port",
    "save",
    "appendonly",
];

/// The value `CONFIG GET` answers for `param`.
pub fn config_value(
    param: &str,
    cfg: &RedisSettings,
    ks: &redis_store::Config,
    maxclients: usize,
    port: u64,
) -> String {
    match param {
        "maxmemory" => ks.maxmemory.to_string(),
        "maxmemory-policy" => ks.policy.name().to_string(),
        "maxmemory-samples" => ks.samples.to_string(),
        "requirepass" => cfg.password.clone().unwrap_or_default(),
        "timeout" => cfg.timeout_secs.to_string(),
        "proto-max-bulk-len" => cfg.max_bulk_len.to_string(),
        "client-output-buffer-limit" => format!(
            "normal {} {} {} slave 268435456 67108864 60 pubsub {} {} {}",
            cfg.obuf_normal.hard,
            cfg.obuf_normal.soft,
            cfg.obuf_normal.soft_secs,
            cfg.obuf_pubsub.hard,
            cfg.obuf_pubsub.soft,
            cfg.obuf_pubsub.soft_secs
        ),
        "databases" => ks.databases.to_string(),
        "maxclients" => maxclients.to_string(),
        "port" => port.to_string(),
        "appendonly" => "no".to_string(),
        _ => String::new(), // save
    }
}

fn set_failed(param: &str, why: &str) -> Reply {
    Reply::error(format!(
        "ERR CONFIG SET failed (possibly related to argument '{param}') - {why}"
    ))
}

fn parse_int(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.parse::<i64>().ok()
}

/// Apply `CONFIG SET`'s name/value pairs to copies of the settings, all or nothing, as Redis
/// 7.0 does: the error reply if one of them is unknown, immutable or invalid.
pub fn config_set(
    pairs: &[Bytes],
    cfg: &mut RedisSettings,
    ks: &mut redis_store::Config,
) -> Result<(), Reply> {
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(Reply::error(
            "ERR wrong number of arguments for 'config|set' command",
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for pair in pairs.chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        let v = &pair[1];
        let Some(param) = CONFIG_PARAMS.iter().find(|p| **p == name) else {
            return Err(Reply::error(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(&pair[0])
            )));
        };
        if seen.contains(&name) {
            return Err(set_failed(param, "duplicate parameter"));
        }
        seen.push(name.clone());
        match *param {
            "maxmemory" => {
                ks.maxmemory = parse_memory(v)
                    .ok_or_else(|| set_failed(param, "argument must be a memory value"))?;
                cfg.maxmemory = ks.maxmemory;
            }
            "maxmemory-policy" => {
                let s = String::from_utf8_lossy(v);
                ks.policy = redis_store::Policy::parse(&s).ok_or_else(|| {
                    set_failed(param, "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction")
                })?;
                cfg.policy = ks.policy;
            }
            "maxmemory-samples" => {
                let n = parse_int(v).ok_or_else(|| {
                    set_failed(param, "argument couldn't be parsed into an integer")
                })?;
                if !(1..=i64::from(i32::MAX)).contains(&n) {
                    return Err(set_failed(
                        param,
                        "argument must be between 1 and 2147483647 inclusive",
                    ));
                }
                ks.samples = n as usize;
            }
            "requirepass" => {
                cfg.password = if v.is_empty() {
                    None
                } else {
                    Some(String::from_utf8_lossy(v).into_owned())
                };
            }
            "timeout" => {
                let n = parse_int(v).ok_or_else(|| {
                    set_failed(param, "argument couldn't be parsed into an integer")
                })?;
                if !(0..=i64::from(i32::MAX)).contains(&n) {
                    return Err(set_failed(
                        param,
                        "argument must be between 0 and 2147483647 inclusive",
                    ));
                }
                cfg.timeout_secs = n as u64;
            }
            "proto-max-bulk-len" => {
                let n = parse_memory(v)
                    .ok_or_else(|| set_failed(param, "argument must be a memory value"))?;
                if n < 1 << 20 || n > i64::MAX as u64 {
                    return Err(set_failed(
                        param,
                        "argument must be between 1048576 and 9223372036854775807 inclusive",
                    ));
                }
                cfg.max_bulk_len = n;
                ks.max_bulk_len = n;
            }
            "client-output-buffer-limit" => {
                let words = v
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|w| !w.is_empty())
                    .count();
                if words == 0 || !words.is_multiple_of(4) {
                    return Err(set_failed(
                        param,
                        "Wrong number of arguments in buffer limit configuration.",
                    ));
                }
                let groups = parse_obuf_config(v).ok_or_else(|| {
                    set_failed(
                        param,
                        "Invalid client class specified in buffer limit configuration.",
                    )
                })?;
                for (class, limit) in groups {
                    match class {
                        ObufClass::Normal => cfg.obuf_normal = limit,
                        ObufClass::Pubsub => cfg.obuf_pubsub = limit,
                        ObufClass::Replica => {} // keel has no replicas (of this kind)
                    }
                }
            }
            "appendonly" => match v.to_ascii_lowercase().as_slice() {
                b"no" => {}
                b"yes" => return Err(set_failed(param, "keel keeps no append only file")),
                _ => return Err(set_failed(param, "argument must be 'yes' or 'no'")),
            },
            "save" => {} // keel keeps no dump: accepted, nothing to schedule
            _ => return Err(set_failed(param, "can't set immutable config")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn err_text(r: Reply) -> String {
        match r {
            Reply::Error(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn unknown_command_text_matches_redis() {
        let e = resolve(&args(&["foo", "a", "b"])).err().unwrap();
        assert_eq!(
            err_text(e),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        let e = resolve(&args(&["foo"])).err().unwrap();
        assert_eq!(
            err_text(e),
            "ERR unknown command 'foo', with args beginning with: "
        );
        // Arguments are listed until 128 bytes of them are written.
        let long = "x".repeat(200);
        let e = unknown_command(&args(&["foo", &long, "b"]));
        let t = err_text(e);
        assert!(t.ends_with(&format!("'{}' ", "x".repeat(128))), "{t}");
        // Newlines become spaces.
        let e = unknown_command(&args(&["a\r\nb"]));
        assert_eq!(
            err_text(e),
            "ERR unknown command 'a  b', with args beginning with: "
        );
    }

    #[test]
    fn arity_and_subcommands() {
        assert_eq!(
            err_text(resolve(&args(&["CLIENT"])).err().unwrap()),
            "ERR wrong number of arguments for 'client' command"
        );
        assert_eq!(
            err_text(resolve(&args(&["client", "setname"])).err().unwrap()),
            "ERR wrong number of arguments for 'client|setname' command"
        );
        assert_eq!(
            err_text(resolve(&args(&["client", "foo"])).err().unwrap()),
            "ERR unknown subcommand 'foo'. Try CLIENT HELP."
        );
        assert_eq!(
            err_text(resolve(&args(&["pubsub", "x"])).err().unwrap()),
            "ERR unknown subcommand 'x'. Try PUBSUB HELP."
        );
        assert_eq!(
            err_text(resolve(&args(&["echo"])).err().unwrap()),
            "ERR wrong number of arguments for 'echo' command"
        );
        let ok = resolve(&args(&["Client", "SetName", "x"])).ok().unwrap();
        assert_eq!(ok.spec().name, "client|setname");
        assert!(resolve(&args(&["ping", "a"])).is_ok());
        assert!(resolve(&args(&["ping", "a", "b"])).is_ok()); // arity -1: checked by PING itself
        assert!(resolve(&args(&["monitor"])).is_err());
        // Bare COMMAND is a command of its own; bare CONFIG is not.
        assert_eq!(
            resolve(&args(&["COMMAND"])).ok().unwrap().spec().name,
            "command"
        );
        assert!(resolve(&args(&["config"])).is_err());
    }

    #[test]
    fn config_set_is_all_or_nothing_with_redis_errors() {
        let mut cfg = RedisSettings::default();
        let mut ks = redis_store::Config::default();
        let e = config_set(&args(&["foo", "1"]), &mut cfg, &mut ks)
            .err()
            .unwrap();
        assert_eq!(
            err_text(e),
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
        );
        let e = config_set(&args(&["maxmemory", "abc"]), &mut cfg, &mut ks)
            .err()
            .unwrap();
        assert_eq!(
            err_text(e),
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"
        );
        let e = config_set(&args(&["databases", "3"]), &mut cfg, &mut ks)
            .err()
            .unwrap();
        assert!(err_text(e).ends_with("can't set immutable config"));
        let e = config_set(&args(&["timeout", "-1"]), &mut cfg, &mut ks)
            .err()
            .unwrap();
        assert!(err_text(e).ends_with("argument must be between 0 and 2147483647 inclusive"));
        config_set(
            &args(&[
                "maxmemory",
                "10mb",
                "maxmemory-policy",
                "allkeys-lru",
                "timeout",
                "5",
            ]),
            &mut cfg,
            &mut ks,
        )
        .unwrap();
        assert_eq!(ks.maxmemory, 10 << 20);
        assert_eq!(ks.policy, redis_store::Policy::AllKeysLru);
        assert_eq!(cfg.timeout_secs, 5);
        config_set(
            &args(&["client-output-buffer-limit", "pubsub 1mb 0 0"]),
            &mut cfg,
            &mut ks,
        )
        .unwrap();
        assert_eq!(cfg.obuf_pubsub.hard, 1 << 20);
        assert_eq!(
            config_value("client-output-buffer-limit", &cfg, &ks, 10, 1),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 0 0"
        );
        config_set(&args(&["requirepass", "pw"]), &mut cfg, &mut ks).unwrap();
        assert_eq!(cfg.password.as_deref(), Some("pw"));
        config_set(&args(&["requirepass", ""]), &mut cfg, &mut ks).unwrap();
        assert_eq!(cfg.password, None);
    }

    #[test]
    fn command_info_has_ten_fields() {
        let spec = find_spec(b"CLIENT").unwrap();
        match command_info(spec) {
            Reply::Array(v) => {
                assert_eq!(v.len(), 10);
                assert_eq!(v[1], Reply::Int(-2));
                match &v[9] {
                    Reply::Array(subs) => assert_eq!(subs.len(), CLIENT_SUBS.len()),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            command(&args(&["command", "count"])),
            Reply::Int(all_specs().count() as i64)
        );
    }

    fn names_of_subs(r: &Reply) -> Vec<String> {
        let text = |r: &Reply| match r {
            Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{other:?}"),
        };
        match r {
            Reply::Array(v) => v
                .iter()
                .map(|e| match e {
                    Reply::Array(f) => text(&f[0]),
                    other => panic!("{other:?}"),
                })
                .collect(),
            Reply::Map(m) => m.iter().map(|(k, _)| text(k)).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_docs_encodes_as_redis_in_both_protocols() {
        use redis_proto::{encode_to_vec, Protocol};
        let r = command(&args(&["command", "docs", "GET", "nosuch", "client|list"]));
        let v3 = encode_to_vec(&r, Protocol::Resp3);
        assert!(v3.starts_with(b"%2\r\n$3\r\nget\r\n%5\r\n$7\r\nsummary\r\n"));
        // RESP3 sets (history, flags) become arrays, maps flat arrays, in RESP2.
        let v2 = encode_to_vec(&r, Protocol::Resp2);
        assert!(v2.starts_with(b"*4\r\n$3\r\nget\r\n*10\r\n$7\r\nsummary\r\n"));
        assert!(v3.windows(5).any(|w| w == b"~1\r\n+"));
        assert!(!v2.windows(3).any(|w| w == b"\n~1" || w == b"\n%5"));
        assert!(v2.windows(18).any(|w| w == b"$11\r\nclient|list\r\n"));
        assert_eq!(
            command(&args(&["command", "docs", "nosuch"])),
            Reply::Map(vec![])
        );
    }

    #[test]
    fn command_info_has_tips_and_key_specs() {
        let Reply::Array(v) = command(&args(&["command", "info", "get", "x|y", "CLIENT|LIST"]))
        else {
            panic!()
        };
        assert_eq!(v.len(), 3);
        let Reply::Array(get) = &v[0] else { panic!() };
        let Reply::Set(specs) = &get[8] else {
            panic!("{:?}", get[8])
        };
        assert_eq!(specs.len(), 1);
        assert_eq!(v[1], Reply::Nil);
        let Reply::Array(list) = &v[2] else { panic!() };
        assert_eq!(list[0], Reply::bulk(b"client|list"));
        assert_eq!(
            list[7],
            Reply::Set(vec![Reply::bulk(b"nondeterministic_output")])
        );
    }

    #[test]
    fn containers_list_exactly_keels_subcommands() {
        for spec in all_specs().filter(|s| !s.subcommands.is_empty()) {
            let mut want: Vec<String> = spec.subcommands.iter().map(|c| c.name.into()).collect();
            want.sort();
            let Reply::Array(info) = command_info(spec) else {
                panic!()
            };
            let mut got = names_of_subs(&info[9]);
            got.sort();
            assert_eq!(got, want, "COMMAND INFO {}", spec.name);
            let Reply::Map(docs) = command_docs(spec) else {
                panic!()
            };
            let subs = docs
                .iter()
                .find(|(k, _)| docs::is_bulk(k, b"subcommands"))
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("{} has no subcommands docs", spec.name));
            let mut got = names_of_subs(subs);
            got.sort();
            assert_eq!(got, want, "COMMAND DOCS {}", spec.name);
        }
    }

    #[test]
    fn recorded_entries_agree_with_keels_table() {
        // Every command keel runs has Redis's entries (but 7.2's CLIENT SETINFO), and what
        // keel checks arity and keys by is what Redis reports.
        let mut specs: Vec<&Spec> = all_specs().collect();
        specs.extend(all_specs().flat_map(|s| s.subcommands.iter()));
        let mut bad = Vec::new();
        for s in specs {
            if s.name == "client|setinfo" {
                assert!(docs::info(s.name).is_none());
                continue;
            }
            assert!(docs::docs(s.name).is_some(), "no docs for {}", s.name);
            let Some(Reply::Array(recorded)) = docs::info(s.name) else {
                panic!("no info for {}", s.name)
            };
            let Reply::Array(ours) = generated_info(s) else {
                panic!()
            };
            // Arity, key positions, ACL categories (keel's flags need not name every flag
            // Redis has: `no_async_loading` means nothing to keel).
            for i in [0, 1, 3, 4, 5, 6] {
                if recorded[i] != ours[i] {
                    bad.push(format!(
                        "{} field {i}: {:?} vs {:?}",
                        s.name, recorded[i], ours[i]
                    ));
                }
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    }
}
