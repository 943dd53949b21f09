//! Executes memcached's binary protocol: parse one request from the buffered input with
//! [`memcache_proto::binary`], run it against the store, encode the reply the way memcached
//! 1.6.18's `proto_bin.c` does (status codes, messages, CAS in replies, quiet variants) and count
//! it into the connection's [`crate::LocalStats`].
//!
//! Quiet opcodes suppress success replies; errors are always sent; `GetQ`/`GetKQ`/`GATQ`/`GATKQ`
//! also suppress misses. `Verbosity` and the SASL opcodes answer `Unknown command`, as memcached
//! 1.6.18 (built without SASL) does.

use cache_store::{
    resolve_exptime, ArithOutcome, ArithReq, DeleteOpts, DeleteOutcome, GetOpts, StoreMode,
    StoreOutcome, StoreReq,
};
use memcache_proto::binary::{self, Command, Request, Status, StoreOp, NO_CREATE};
use memcache_proto::Parse;

use crate::{Ctx, Flow, Session, Step};

/// Handle the first request in `input`, appending replies to `out`.
pub async fn process(input: &[u8], ctx: &Ctx, session: &mut Session, out: &mut Vec<u8>) -> Step {
    let limits = ctx.settings.limits();
    match binary::parse(input, &limits) {
        Parse::Incomplete => Step::Incomplete,
        Parse::Error {
            reply,
            consumed,
            swallow,
            close,
        } => {
            out.extend_from_slice(&reply);
            Step::Done {
                consumed,
                flow: Flow { close, swallow },
            }
        }
        Parse::Request { req, consumed } => {
            let flow = execute(&req, ctx, session, out).await;
            Step::Done { consumed, flow }
        }
    }
}

/// Classify the first request in `input` for the connection's scheduler (cluster mode, see
/// [`crate::text_exec::Kind`]); `None` if it is incomplete.
pub fn classify(input: &[u8], ctx: &Ctx) -> Option<(crate::text_exec::Kind, usize)> {
    use crate::text_exec::Kind;
    let limits = ctx.settings.limits();
    Some(match binary::parse(input, &limits) {
        Parse::Incomplete => return None,
        Parse::Error { consumed, .. } => (Kind::Other, consumed),
        Parse::Request { req, consumed } => (
            match req.command {
                Command::Get { .. } => Kind::Read,
                Command::Store { key, value, .. } if ctx.item_fits(key.len(), value.len()) => {
                    Kind::Write
                }
                Command::Delete { .. } => Kind::Write,
                // A miss with an initial value is followed by a second write (an add): not pure.
                Command::Arith { exptime, .. } if exptime == NO_CREATE => Kind::Write,
                _ => Kind::Other,
            },
            consumed,
        ),
    })
}

/// A success reply without body (suppressed for quiet opcodes).
fn ok_empty(out: &mut Vec<u8>, req: &Request<'_>, quiet: bool, cas: u64) {
    if !quiet {
        binary::encode_response(
            out,
            req.opcode(),
            Status::Success,
            req.opaque,
            cas,
            &[],
            &[],
            &[],
        );
    }
}

/// Unwrap an item operation's result; on `Unavailable` (cluster mode) answer EINTERNAL with the
/// reason as the body (even for quiet opcodes: errors are never quiet) and return.
macro_rules! try_op {
    ($out:expr, $req:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(err) => {
                unavailable($out, $req, &err);
                return Default::default();
            }
        }
    };
}

fn unavailable(out: &mut Vec<u8>, req: &Request<'_>, err: &crate::Unavailable) {
    binary::encode_error_msg(out, req.opcode(), req.opaque, Status::Internal, &err.0);
}

fn error(out: &mut Vec<u8>, req: &Request<'_>, status: Status) {
    binary::encode_error(out, req.opcode(), req.opaque, status);
}

fn exptime(e: u32, now: u64) -> cache_store::Expiry {
    resolve_exptime(i64::from(e), now)
}

async fn execute(req: &Request<'_>, ctx: &Ctx, session: &mut Session, out: &mut Vec<u8>) -> Flow {
    let now = ctx.now();
    let opcode = req.opcode();
    let opaque = req.opaque;
    let stats = &mut session.stats;
    match req.command {
        Command::Get {
            key,
            quiet,
            with_key,
        } => {
            stats.cmd_get += 1;
            let hit = try_op!(
                out,
                req,
                ctx.get(&mut session.fence, key, GetOpts::default(), |it| write_hit(
                    out, req, &it, with_key, true
                ))
                .await
            );
            if hit.is_some() {
                stats.get_hits += 1;
            } else {
                stats.get_misses += 1;
                write_miss(out, req, key, quiet, with_key);
            }
        }
        Command::Gat {
            key,
            exptime: e,
            quiet,
            with_key,
        } => {
            stats.cmd_touch += 1;
            let opts = GetOpts {
                touch: Some(exptime(e, now)),
                ..GetOpts::default()
            };
            let hit = try_op!(
                out,
                req,
                ctx.get(&mut session.fence, key, opts, |it| write_hit(
                    out, req, &it, with_key, true
                ))
                .await
            );
            if hit.is_some() {
                stats.touch_hits += 1;
            } else {
                stats.touch_misses += 1;
                write_miss(out, req, key, quiet, with_key);
            }
        }
        Command::Touch { key, exptime: e } => {
            stats.cmd_touch += 1;
            let opts = GetOpts {
                touch: Some(exptime(e, now)),
                ..GetOpts::default()
            };
            let hit = try_op!(
                out,
                req,
                ctx.get(&mut session.fence, key, opts, |it| write_hit(
                    out, req, &it, false, false
                ))
                .await
            );
            if hit.is_some() {
                stats.touch_hits += 1;
            } else {
                stats.touch_misses += 1;
                write_miss(out, req, key, false, false);
            }
        }
        Command::Store {
            op,
            quiet,
            key,
            flags,
            exptime: e,
            value,
        } => {
            if !ctx.item_fits(key.len(), value.len()) {
                too_large(ctx, req, op, key, out).await;
                return Flow::default();
            }
            stats.cmd_set += 1;
            // Set/Add/Replace with a CAS are memcached's `cas` (NREAD_CAS), whatever the opcode.
            let cas_op =
                req.cas != 0 && matches!(op, StoreOp::Set | StoreOp::Add | StoreOp::Replace);
            let mode = match op {
                _ if cas_op => StoreMode::Set,
                StoreOp::Set => StoreMode::Set,
                StoreOp::Add => StoreMode::Add,
                StoreOp::Replace => StoreMode::Replace,
                StoreOp::Append => StoreMode::Append,
                StoreOp::Prepend => StoreMode::Prepend,
            };
            let sreq = StoreReq {
                mode,
                key,
                value,
                flags,
                expires_at: exptime(e, now),
                compare_cas: (req.cas != 0).then_some(req.cas),
                invalidate: false,
                new_cas: None,
                vivify: None,
            };
            let concat = matches!(op, StoreOp::Append | StoreOp::Prepend);
            match try_op!(out, req, ctx.store_item(&sreq).await) {
                StoreOutcome::Stored { cas } => {
                    if cas_op {
                        stats.cas_hits += 1;
                    }
                    ok_empty(out, req, quiet, cas);
                }
                StoreOutcome::Exists => {
                    if cas_op {
                        stats.cas_badval += 1;
                    }
                    error(out, req, Status::KeyExists);
                }
                StoreOutcome::NotFound if cas_op => {
                    stats.cas_misses += 1;
                    error(out, req, Status::KeyNotFound);
                }
                StoreOutcome::NotFound | StoreOutcome::NotStored => {
                    let status = match op {
                        _ if concat || cas_op => Status::NotStored,
                        StoreOp::Add => Status::KeyExists,
                        StoreOp::Replace => Status::KeyNotFound,
                        _ => Status::NotStored,
                    };
                    error(out, req, status);
                }
                // memcached: a concatenation that cannot be allocated is just "Not stored.".
                StoreOutcome::TooLarge | StoreOutcome::OutOfMemory if concat => {
                    error(out, req, Status::NotStored)
                }
                StoreOutcome::TooLarge => error(out, req, Status::TooLarge),
                StoreOutcome::OutOfMemory => binary::encode_error_msg(
                    out,
                    opcode,
                    opaque,
                    Status::OutOfMemory,
                    "Out of memory allocating item",
                ),
            }
        }
        Command::TooLarge {
            op, key, value_len, ..
        } => {
            too_large(ctx, req, op, key, out).await;
            return Flow {
                close: false,
                swallow: value_len as usize,
            };
        }
        Command::Delete { key, quiet } => {
            let opts = DeleteOpts {
                compare_cas: (req.cas != 0).then_some(req.cas),
                ..DeleteOpts::default()
            };
            match try_op!(out, req, ctx.delete(key, opts).await) {
                DeleteOutcome::Deleted => {
                    stats.delete_hits += 1;
                    ok_empty(out, req, quiet, 0);
                }
                DeleteOutcome::NotFound => {
                    stats.delete_misses += 1;
                    error(out, req, Status::KeyNotFound);
                }
                DeleteOutcome::Exists => error(out, req, Status::KeyExists),
            }
        }
        Command::Arith {
            incr,
            quiet,
            key,
            delta,
            initial,
            exptime: e,
        } => {
            let areq = ArithReq {
                key,
                incr,
                delta,
                compare_cas: (req.cas != 0).then_some(req.cas),
                vivify: None,
                touch: None,
                new_cas: None,
            };
            match try_op!(out, req, ctx.arith(&areq).await) {
                ArithOutcome::Ok { value, cas, .. } => {
                    if incr {
                        stats.incr_hits += 1;
                    } else {
                        stats.decr_hits += 1;
                    }
                    if !quiet {
                        binary::encode_response(
                            out,
                            opcode,
                            Status::Success,
                            opaque,
                            cas,
                            &[],
                            &[],
                            &value.to_be_bytes(),
                        );
                    }
                }
                ArithOutcome::NonNumeric => error(out, req, Status::NonNumeric),
                ArithOutcome::Exists => error(out, req, Status::KeyExists),
                ArithOutcome::OutOfMemory => binary::encode_error_msg(
                    out,
                    opcode,
                    opaque,
                    Status::OutOfMemory,
                    "Out of memory incrementing value",
                ),
                ArithOutcome::NotFound if e != NO_CREATE => {
                    // memcached creates the item with the initial value (flags 0) as an `add`;
                    // neither a miss nor a set is counted.
                    let text = initial.to_string();
                    let sreq = StoreReq {
                        mode: StoreMode::Add,
                        key,
                        value: text.as_bytes(),
                        flags: 0,
                        expires_at: exptime(e, now),
                        compare_cas: None,
                        invalidate: false,
                        new_cas: None,
                        vivify: None,
                    };
                    match try_op!(out, req, ctx.store_item(&sreq).await) {
                        StoreOutcome::Stored { cas } => {
                            if !quiet {
                                binary::encode_response(
                                    out,
                                    opcode,
                                    Status::Success,
                                    opaque,
                                    cas,
                                    &[],
                                    &[],
                                    &initial.to_be_bytes(),
                                );
                            }
                        }
                        StoreOutcome::TooLarge | StoreOutcome::OutOfMemory => {
                            binary::encode_error_msg(
                                out,
                                opcode,
                                opaque,
                                Status::OutOfMemory,
                                "Out of memory allocating new item",
                            )
                        }
                        _ => error(out, req, Status::NotStored),
                    }
                }
                ArithOutcome::NotFound => {
                    if incr {
                        stats.incr_misses += 1;
                    } else {
                        stats.decr_misses += 1;
                    }
                    error(out, req, Status::KeyNotFound);
                }
            }
        }
        Command::Quit { quiet } => {
            ok_empty(out, req, quiet, 0);
            return Flow {
                close: true,
                swallow: 0,
            };
        }
        Command::Flush { quiet, exptime: e } => {
            let delay = match e {
                Some(e) if e > 0 => exptime(e, now).saturating_sub(now),
                _ => 0,
            };
            try_op!(out, req, ctx.flush_all(delay).await);
            stats.cmd_flush += 1;
            ok_empty(out, req, quiet, 0);
        }
        Command::Noop => ok_empty(out, req, false, 0),
        Command::Version => {
            binary::encode_response(
                out,
                opcode,
                Status::Success,
                opaque,
                0,
                &[],
                &[],
                ctx.settings.version.as_bytes(),
            );
        }
        Command::Stat { group } => stat(ctx, session, req, group, out),
        // memcached 1.6.18's proto_bin.c has no verbosity handler: it falls to "Unknown command".
        Command::Verbosity { .. } => error(out, req, Status::UnknownCommand),
    }
    Flow::default()
}

/// Reply for a hit: flags in the extras, the key for `…K…` opcodes, the value unless `Touch`.
fn write_hit(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    it: &cache_store::ItemRef<'_>,
    with_key: bool,
    with_value: bool,
) {
    let key: &[u8] = if with_key { it.key } else { &[] };
    let value: &[u8] = if with_value { it.value } else { &[] };
    binary::encode_response(
        out,
        req.opcode(),
        Status::Success,
        req.opaque,
        it.cas,
        &it.flags.to_be_bytes(),
        key,
        value,
    );
}

/// Reply for a miss: nothing for quiet gets, the key with `Not found` status for `GetK`/`GATK`
/// (no message, as memcached does), else the `Not found` error.
fn write_miss(out: &mut Vec<u8>, req: &Request<'_>, key: &[u8], quiet: bool, with_key: bool) {
    if quiet {
    } else if with_key {
        binary::encode_response(
            out,
            req.opcode(),
            Status::KeyNotFound,
            req.opaque,
            0,
            &[],
            key,
            &[],
        );
    } else {
        error(out, req, Status::KeyNotFound);
    }
}

/// Oversized value: `Too large.` (even for quiet opcodes); a `Set` also drops the old value so
/// that stale data does not persist (memcached's rule).
async fn too_large(ctx: &Ctx, req: &Request<'_>, op: StoreOp, key: &[u8], out: &mut Vec<u8>) {
    if op == StoreOp::Set {
        if let Err(e) = ctx.remove(key).await {
            unavailable(out, req, &e);
            return;
        }
    }
    error(out, req, Status::TooLarge);
}

fn stat(ctx: &Ctx, session: &mut Session, req: &Request<'_>, group: &[u8], out: &mut Vec<u8>) {
    // Make this connection's own commands visible in the report.
    ctx.stats.counters.absorb(&mut session.stats);
    let opaque = req.opaque;
    let pairs: Vec<(String, String)> = if group.is_empty() {
        crate::stats::report(ctx, "").unwrap_or_default()
    } else if group.starts_with(b"reset") {
        crate::stats::reset(ctx);
        Vec::new()
    } else if group.starts_with(b"settings") {
        crate::stats::report(ctx, "settings").unwrap_or_default()
    } else if let Some(sub) = group.strip_prefix(b"detail") {
        if sub.starts_with(b" dump") {
            vec![("detailed".to_string(), "END\r\n".to_string())]
        } else if sub.starts_with(b" on") || sub.starts_with(b" off") {
            Vec::new()
        } else {
            error(out, req, Status::KeyNotFound);
            return;
        }
    } else {
        match std::str::from_utf8(group)
            .ok()
            .and_then(|g| crate::stats::report(ctx, g))
        {
            Some(p) => p,
            None => {
                error(out, req, Status::KeyNotFound);
                return;
            }
        }
    };
    for (name, value) in &pairs {
        binary::encode_stat(out, opaque, name.as_bytes(), value.as_bytes());
    }
    binary::encode_stat(out, opaque, b"", b"");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;
    use memcache_proto::binary::{opcode, parse_response, Response};
    use memcache_proto::Limits;

    /// An owned copy of a reply.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Reply {
        opcode: u8,
        status: u16,
        opaque: u32,
        cas: u64,
        extras: Vec<u8>,
        key: Vec<u8>,
        value: Vec<u8>,
    }

    impl From<Response<'_>> for Reply {
        fn from(r: Response<'_>) -> Reply {
            Reply {
                opcode: r.opcode,
                status: r.status,
                opaque: r.opaque,
                cas: r.cas,
                extras: r.extras.to_vec(),
                key: r.key.to_vec(),
                value: r.value.to_vec(),
            }
        }
    }

    struct T {
        ctx: Ctx,
        session: Session,
    }

    impl T {
        fn new() -> T {
            T::with(Settings::default())
        }

        fn with(settings: Settings) -> T {
            T {
                ctx: Ctx::new(settings),
                session: Session::default(),
            }
        }

        /// Run every request in `input` (as the connection loop would) and decode all replies.
        fn run(&mut self, input: &[u8]) -> (Vec<Reply>, Flow) {
            let mut out = Vec::new();
            let mut pos = 0;
            let mut last = Flow::default();
            while pos < input.len() {
                match crate::ready(process(
                    &input[pos..],
                    &self.ctx,
                    &mut self.session,
                    &mut out,
                )) {
                    Step::Incomplete => panic!("incomplete at {pos}"),
                    Step::Done { consumed, flow } => {
                        pos += consumed + flow.swallow;
                        last = flow;
                        if flow.close {
                            break;
                        }
                    }
                }
            }
            let mut replies = Vec::new();
            let mut at = 0;
            while at < out.len() {
                match parse_response(&out[at..], &Limits::default()) {
                    Parse::Request { req, consumed } => {
                        replies.push(Reply::from(req));
                        at += consumed;
                    }
                    other => panic!("bad reply bytes: {other:?}"),
                }
            }
            (replies, last)
        }

        fn one(&mut self, req: Request<'_>) -> Option<Reply> {
            let (mut r, _) = self.run(&req.to_bytes());
            assert!(r.len() <= 1, "{r:?}");
            r.pop()
        }

        fn set(&mut self, key: &[u8], value: &[u8], flags: u32) -> Reply {
            self.one(Request::new(Command::Store {
                op: StoreOp::Set,
                quiet: false,
                key,
                flags,
                exptime: 0,
                value,
            }))
            .expect("set reply")
        }

        fn get(&mut self, key: &[u8]) -> Reply {
            self.one(Request::new(Command::Get {
                key,
                quiet: false,
                with_key: false,
            }))
            .expect("get reply")
        }
    }

    fn store<'a>(
        op: StoreOp,
        quiet: bool,
        key: &'a [u8],
        value: &'a [u8],
        cas: u64,
    ) -> Request<'a> {
        Request {
            opaque: 0,
            cas,
            command: Command::Store {
                op,
                quiet,
                key,
                flags: 0,
                exptime: 0,
                value,
            },
        }
    }

    fn arith(
        incr: bool,
        quiet: bool,
        key: &[u8],
        delta: u64,
        initial: u64,
        exptime: u32,
    ) -> Request<'_> {
        Request::new(Command::Arith {
            incr,
            quiet,
            key,
            delta,
            initial,
            exptime,
        })
    }

    const OK: u16 = 0;
    const ENOENT: u16 = 1;
    const EEXISTS: u16 = 2;

    #[test]
    fn set_get_round_trip_with_flags_cas_and_opaque() {
        let mut t = T::new();
        let set = t.set(b"k", b"hello", 0xdead_beef);
        assert_eq!((set.opcode, set.status), (opcode::SET, OK));
        assert!(set.cas != 0);
        assert!(set.value.is_empty() && set.extras.is_empty());
        let mut req = Request::new(Command::Get {
            key: b"k",
            quiet: false,
            with_key: true,
        });
        req.opaque = 0x1234_5678;
        let g = t.one(req).unwrap();
        assert_eq!(g.opcode, opcode::GETK);
        assert_eq!(g.opaque, 0x1234_5678);
        assert_eq!(g.status, OK);
        assert_eq!(g.extras, 0xdead_beefu32.to_be_bytes());
        assert_eq!(g.key, b"k");
        assert_eq!(g.value, b"hello");
        assert_eq!(g.cas, set.cas);
        assert_eq!(t.session.stats.cmd_set, 1);
        assert_eq!((t.session.stats.cmd_get, t.session.stats.get_hits), (1, 1));
    }

    #[test]
    fn misses_plain_keyed_and_quiet() {
        let mut t = T::new();
        let g = t.get(b"nope");
        assert_eq!((g.status, &g.value[..]), (ENOENT, &b"Not found"[..]));
        let gk = t
            .one(Request::new(Command::Get {
                key: b"nope",
                quiet: false,
                with_key: true,
            }))
            .unwrap();
        assert_eq!(
            (gk.status, &gk.key[..], &gk.value[..]),
            (ENOENT, &b"nope"[..], &b""[..])
        );
        assert_eq!(
            t.one(Request::new(Command::Get {
                key: b"nope",
                quiet: true,
                with_key: false
            })),
            None
        );
        assert_eq!(
            t.one(Request::new(Command::Get {
                key: b"nope",
                quiet: true,
                with_key: true
            })),
            None
        );
        assert_eq!(t.session.stats.get_misses, 4);
    }

    #[test]
    fn quiet_get_pipeline_ends_with_noop() {
        let mut t = T::new();
        t.set(b"a", b"1", 0);
        let mut b = Vec::new();
        Request::new(Command::Get {
            key: b"a",
            quiet: true,
            with_key: true,
        })
        .encode(&mut b);
        Request::new(Command::Get {
            key: b"b",
            quiet: true,
            with_key: true,
        })
        .encode(&mut b);
        Request::new(Command::Noop).encode(&mut b);
        let (r, _) = t.run(&b);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].opcode, &r[0].key[..], &r[0].value[..]),
            (opcode::GETKQ, &b"a"[..], &b"1"[..])
        );
        assert_eq!((r[1].opcode, r[1].status), (opcode::NOOP, OK));
    }

    #[test]
    fn add_replace_and_quiet_success_suppression() {
        let mut t = T::new();
        assert_eq!(
            t.one(store(StoreOp::Replace, false, b"k", b"v", 0))
                .unwrap()
                .status,
            ENOENT
        );
        assert_eq!(t.one(store(StoreOp::Add, true, b"k", b"v", 0)), None);
        let a = t.one(store(StoreOp::Add, true, b"k", b"v", 0)).unwrap();
        assert_eq!(
            (a.opcode, a.status, &a.value[..]),
            (opcode::ADDQ, EEXISTS, &b"Data exists for key."[..])
        );
        assert_eq!(t.one(store(StoreOp::Replace, true, b"k", b"w", 0)), None);
        assert_eq!(t.get(b"k").value, b"w");
        assert_eq!(t.one(store(StoreOp::Set, true, b"k", b"x", 0)), None);
        assert_eq!(t.get(b"k").value, b"x");
    }

    #[test]
    fn cas_on_set_add_replace_delete() {
        let mut t = T::new();
        let cas = t.set(b"k", b"1", 0).cas;
        let bad = t
            .one(store(StoreOp::Set, false, b"k", b"2", cas + 1))
            .unwrap();
        assert_eq!(
            (bad.status, &bad.value[..]),
            (EEXISTS, &b"Data exists for key."[..])
        );
        assert_eq!(t.session.stats.cas_badval, 1);
        // Add with a matching CAS behaves as cas (memcached's NREAD_CAS), and stores.
        let good = t.one(store(StoreOp::Add, false, b"k", b"3", cas)).unwrap();
        assert_eq!(good.status, OK);
        assert!(good.cas != cas);
        assert_eq!(t.session.stats.cas_hits, 1);
        assert_eq!(
            t.one(store(StoreOp::Replace, false, b"missing", b"3", 5))
                .unwrap()
                .status,
            ENOENT
        );
        assert_eq!(t.session.stats.cas_misses, 1);
        // Delete with a wrong CAS, then the right one.
        let mut d = Request::new(Command::Delete {
            key: b"k",
            quiet: false,
        });
        d.cas = good.cas + 7;
        assert_eq!(t.one(d.clone()).unwrap().status, EEXISTS);
        d.cas = good.cas;
        let ok = t.one(d).unwrap();
        assert_eq!((ok.status, ok.cas), (OK, 0));
        assert_eq!(t.get(b"k").status, ENOENT);
    }

    #[test]
    fn delete_and_deleteq() {
        let mut t = T::new();
        t.set(b"k", b"v", 0);
        assert_eq!(
            t.one(Request::new(Command::Delete {
                key: b"k",
                quiet: true
            })),
            None
        );
        let r = t
            .one(Request::new(Command::Delete {
                key: b"k",
                quiet: true,
            }))
            .unwrap();
        assert_eq!(
            (r.opcode, r.status, &r.value[..]),
            (opcode::DELETEQ, ENOENT, &b"Not found"[..])
        );
        assert_eq!(
            (t.session.stats.delete_hits, t.session.stats.delete_misses),
            (1, 1)
        );
    }

    #[test]
    fn incr_decr_create_wrap_floor_and_errors() {
        let mut t = T::new();
        // Missing with NO_CREATE: Not found.
        let r = t.one(arith(true, false, b"n", 1, 0, NO_CREATE)).unwrap();
        assert_eq!((r.status, &r.value[..]), (ENOENT, &b"Not found"[..]));
        assert_eq!(t.session.stats.incr_misses, 1);
        // Missing: created with the initial value, reply carries it and the new CAS.
        let r = t.one(arith(true, false, b"n", 5, 10, 0)).unwrap();
        assert_eq!((r.status, &r.value[..]), (OK, &10u64.to_be_bytes()[..]));
        assert!(r.cas != 0);
        assert_eq!(t.get(b"n").value, b"10");
        let r = t.one(arith(true, false, b"n", 5, 0, 0)).unwrap();
        assert_eq!(r.value, 15u64.to_be_bytes());
        let r = t.one(arith(false, false, b"n", 100, 0, 0)).unwrap();
        assert_eq!(r.value, 0u64.to_be_bytes());
        t.set(b"big", u64::MAX.to_string().as_bytes(), 0);
        let r = t.one(arith(true, false, b"big", 2, 0, 0)).unwrap();
        assert_eq!(r.value, 1u64.to_be_bytes());
        // Quiet success is silent.
        assert_eq!(t.one(arith(true, true, b"n", 1, 0, 0)), None);
        // Non-numeric.
        t.set(b"s", b"abc", 0);
        let r = t.one(arith(false, false, b"s", 1, 0, 0)).unwrap();
        assert_eq!(
            (r.status, &r.value[..]),
            (6, &b"Non-numeric server-side value for incr or decr"[..])
        );
        // CAS mismatch.
        let mut req = arith(true, false, b"n", 1, 0, 0);
        req.cas = 1;
        assert_eq!(t.one(req).unwrap().status, EEXISTS);
        assert_eq!(t.session.stats.incr_hits, 3);
        assert_eq!(t.session.stats.decr_hits, 1);
    }

    #[test]
    fn append_prepend() {
        let mut t = T::new();
        let r = t.one(store(StoreOp::Append, false, b"k", b"x", 0)).unwrap();
        assert_eq!((r.status, &r.value[..]), (5, &b"Not stored."[..]));
        t.set(b"k", b"mid", 42);
        assert_eq!(t.one(store(StoreOp::Append, true, b"k", b"-end", 0)), None);
        let r = t
            .one(store(StoreOp::Prepend, false, b"k", b"start-", 0))
            .unwrap();
        assert_eq!(r.status, OK);
        let g = t.get(b"k");
        assert_eq!(g.value, b"start-mid-end");
        assert_eq!(g.extras, 42u32.to_be_bytes());
        // Append with a stale CAS.
        assert_eq!(
            t.one(store(StoreOp::Append, false, b"k", b"!", g.cas + 1))
                .unwrap()
                .status,
            EEXISTS
        );
    }

    #[test]
    fn oversized_set_is_too_large_removes_old_and_swallows() {
        let mut t = T::with(Settings {
            item_size_max: 1024,
            ..Settings::default()
        });
        t.set(b"k", b"old", 0);
        let big = vec![b'x'; 4000];
        let mut b = store(StoreOp::Set, true, b"k", &big, 0).to_bytes();
        Request::new(Command::Noop).encode(&mut b);
        let (r, _) = t.run(&b);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(
            (r[0].opcode, r[0].status, &r[0].value[..]),
            (opcode::SETQ, 3, &b"Too large."[..])
        );
        assert_eq!(r[1].opcode, opcode::NOOP);
        assert_eq!(t.get(b"k").status, ENOENT);
        // Slightly too large for the item (header overhead): still refused, value already read.
        t.set(b"k", b"old", 0);
        let r = t
            .one(store(StoreOp::Add, false, b"k", &vec![b'y'; 1024], 0))
            .unwrap();
        assert_eq!(r.status, 3);
        // Add does not remove the old value.
        assert_eq!(t.get(b"k").value, b"old");
    }

    #[test]
    fn touch_and_gat() {
        let mut t = T::new();
        t.set(b"k", b"v", 3);
        let r = t
            .one(Request::new(Command::Touch {
                key: b"k",
                exptime: 100,
            }))
            .unwrap();
        assert_eq!(
            (r.status, &r.extras[..], &r.value[..]),
            (OK, &3u32.to_be_bytes()[..], &b""[..])
        );
        let r = t
            .one(Request::new(Command::Gat {
                key: b"k",
                exptime: 100,
                quiet: false,
                with_key: true,
            }))
            .unwrap();
        assert_eq!(
            (r.opcode, &r.key[..], &r.value[..]),
            (opcode::GATK, &b"k"[..], &b"v"[..])
        );
        assert_eq!(
            t.one(Request::new(Command::Gat {
                key: b"x",
                exptime: 1,
                quiet: true,
                with_key: false
            })),
            None
        );
        let r = t
            .one(Request::new(Command::Touch {
                key: b"x",
                exptime: 1,
            }))
            .unwrap();
        assert_eq!(r.status, ENOENT);
        // Expire it: an absolute time in the past.
        t.one(Request::new(Command::Touch {
            key: b"k",
            exptime: 2_678_400,
        }))
        .unwrap();
        assert_eq!(t.get(b"k").status, ENOENT);
        assert_eq!(
            (
                t.session.stats.cmd_touch,
                t.session.stats.touch_hits,
                t.session.stats.touch_misses
            ),
            (5, 3, 2)
        );
    }

    #[test]
    fn flush_noop_version_quit() {
        let mut t = T::new();
        t.set(b"k", b"v", 0);
        assert_eq!(
            t.one(Request::new(Command::Flush {
                quiet: true,
                exptime: None
            })),
            None
        );
        assert_eq!(t.get(b"k").status, ENOENT);
        t.set(b"k", b"v", 0);
        let r = t
            .one(Request::new(Command::Flush {
                quiet: false,
                exptime: Some(0),
            }))
            .unwrap();
        assert_eq!((r.opcode, r.status), (opcode::FLUSH, OK));
        assert_eq!(t.get(b"k").status, ENOENT);
        let v = t.one(Request::new(Command::Version)).unwrap();
        assert_eq!(v.value, t.ctx.settings.version.as_bytes());
        let (r, flow) = t.run(&Request::new(Command::Quit { quiet: true }).to_bytes());
        assert!(r.is_empty());
        assert!(flow.close);
        let (r, flow) = t.run(&Request::new(Command::Quit { quiet: false }).to_bytes());
        assert_eq!((r.len(), flow.close), (1, true));
    }

    #[test]
    fn protocol_errors_and_unknown_commands() {
        let mut t = T::new();
        // Bad magic: close, no reply.
        let (r, flow) = t.run(b"get foo\r\n");
        assert!(r.is_empty());
        assert!(flow.close);
        // Verbosity and SASL: unknown command, connection kept.
        let mut b = Request::new(Command::Verbosity { level: 1 }).to_bytes();
        Request::new(Command::Noop).encode(&mut b);
        let (r, flow) = t.run(&b);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].status, &r[0].value[..]),
            (0x81, &b"Unknown command"[..])
        );
        assert!(!flow.close);
        // Get without a key: invalid arguments, close.
        let mut b = Request::new(Command::Noop).to_bytes();
        b[1] = opcode::GET;
        let (r, flow) = t.run(&b);
        assert_eq!(
            (r[0].status, &r[0].value[..]),
            (4, &b"Invalid arguments"[..])
        );
        assert!(flow.close);
    }

    #[test]
    fn stat_packets_terminator_and_groups() {
        let mut t = T::new();
        t.set(b"k", b"v", 0);
        let mut req = Request::new(Command::Stat { group: b"" });
        req.opaque = 99;
        let (r, flow) = t.run(&req.to_bytes());
        assert!(!flow.close);
        assert!(r.len() >= 2, "{r:?}");
        assert!(r
            .iter()
            .all(|p| p.opcode == opcode::STAT && p.status == OK && p.opaque == 99 && p.cas == 0));
        let last = r.last().unwrap();
        assert!(last.key.is_empty() && last.value.is_empty());
        assert!(r[..r.len() - 1].iter().all(|p| !p.key.is_empty()));
        // This connection's set is visible (its counters were folded in first).
        let cmd_set = r
            .iter()
            .find(|p| p.key == b"cmd_set")
            .map(|p| p.value.clone());
        assert_eq!(cmd_set.as_deref(), Some(&b"1"[..]));
        // Unknown group: Not found.
        let (r, _) = t.run(&Request::new(Command::Stat { group: b"bogus" }).to_bytes());
        assert_eq!(
            (r.len(), r[0].status, &r[0].value[..]),
            (1, ENOENT, &b"Not found"[..])
        );
        // reset: just the terminator, and counters are zeroed.
        let (r, _) = t.run(&Request::new(Command::Stat { group: b"reset" }).to_bytes());
        assert_eq!(r.len(), 1);
        assert!(r[0].key.is_empty() && r[0].status == OK);
        assert_eq!(t.ctx.stats.counters.snapshot().cmd_set, 0);
        let (r, _) = t.run(&Request::new(Command::Stat { group: b"settings" }).to_bytes());
        assert!(r.len() >= 2 && r.last().unwrap().key.is_empty());
    }

    /// Random packets (valid opcodes, random lengths, extras and bodies) never panic the
    /// executor, never consume more than the input, and every reply is a well-formed packet.
    #[test]
    fn random_packets_never_panic() {
        let mut t = T::with(Settings {
            item_size_max: 2048,
            ..Settings::default()
        });
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        for _ in 0..20_000 {
            let opcode = rnd(0x30) as u8;
            let ext = [0u64, 4, 8, 20, rnd(30)][rnd(5) as usize] as usize;
            let klen = [0u64, 1, 3, 250, 251, rnd(300)][rnd(6) as usize] as usize;
            let vlen = [0u64, 1, 8, 20, rnd(3000)][rnd(5) as usize] as usize;
            let mut b = vec![0x80, opcode];
            b.extend_from_slice(&(klen as u16).to_be_bytes());
            b.push(ext as u8);
            b.extend_from_slice(&[0, 0, 0]);
            let body = if rnd(10) == 0 {
                rnd(5000) as usize
            } else {
                ext + klen + vlen
            };
            b.extend_from_slice(&(body as u32).to_be_bytes());
            b.extend_from_slice(&(rnd(u64::MAX) as u32).to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, rnd(3) as u8]);
            let keys: [&[u8]; 3] = [b"a", b"num", b"k"];
            let key = keys[rnd(3) as usize];
            for i in 0..ext + klen + vlen {
                b.push(if i >= ext && i < ext + klen {
                    key[i % key.len()]
                } else {
                    rnd(256) as u8
                });
            }
            let mut out = Vec::new();
            let mut pos = 0;
            while pos < b.len() {
                match crate::ready(process(&b[pos..], &t.ctx, &mut t.session, &mut out)) {
                    Step::Incomplete => break,
                    Step::Done { consumed, flow } => {
                        assert!(consumed <= b.len() - pos);
                        pos += consumed + flow.swallow;
                        if flow.close {
                            break;
                        }
                    }
                }
            }
            let mut at = 0;
            while at < out.len() {
                match parse_response(&out[at..], &Limits::default()) {
                    Parse::Request { consumed, .. } => at += consumed,
                    other => panic!("bad reply for {b:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn incomplete_until_whole_request() {
        let t = T::new();
        let mut s = Session::default();
        let b = store(StoreOp::Set, false, b"key", b"value", 0).to_bytes();
        let mut out = Vec::new();
        for cut in 0..b.len() {
            assert_eq!(
                crate::ready(process(&b[..cut], &t.ctx, &mut s, &mut out)),
                Step::Incomplete
            );
        }
        assert!(out.is_empty());
    }
}
