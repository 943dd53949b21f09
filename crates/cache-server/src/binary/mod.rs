//! Executes memcached's binary protocol: parse one request from the buffered input with
//! [`memcache_proto::binary`], run it against the store, encode the reply the way memcached
//! 1.6.18's `proto_bin.c` does (status codes, messages, CAS in replies, quiet variants) and count
//! it into the connection's [`crate::LocalStats`].
//!
//! Quiet opcodes suppress success replies; errors are always sent; `GetQ`/`GetKQ`/`GATQ`/`GATKQ`
//! also suppress misses. `Verbosity` and the SASL opcodes answer `Unknown command`, as memcached
//! 1.6.18 (built without SASL) does.

/// Unwrap an item operation's result; on `Unavailable` (cluster mode) answer EINTERNAL with the
/// reason as the body (even for quiet opcodes: errors are never quiet) and return.
macro_rules! try_op {
    ($out:expr, $req:expr, $e:expr) => {
        or_reply!($e, unavailable($out, $req))
    };
}

mod admin;
mod arith;
mod delete;
mod retrieval;
mod storage;
#[cfg(test)]
mod tests;

use cache_store::resolve_exptime;
use memcache_proto::binary::{self, Command, Request, Status, NO_CREATE};
use memcache_proto::Parse;

use crate::{Ctx, Flow, Kind, Session, Step};

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
/// [`crate::Kind`]); `None` if it is incomplete.
pub fn classify(input: &[u8], ctx: &Ctx) -> Option<(Kind, usize)> {
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
pub(crate) fn ok_empty(out: &mut Vec<u8>, req: &Request<'_>, quiet: bool, cas: u64) {
    ok_value(out, req, quiet, cas, &[]);
}

/// A success reply whose body is `value` alone (suppressed for quiet opcodes).
pub(crate) fn ok_value(out: &mut Vec<u8>, req: &Request<'_>, quiet: bool, cas: u64, value: &[u8]) {
    if !quiet {
        binary::encode_response(
            out,
            req.opcode(),
            Status::Success,
            req.opaque,
            cas,
            &[],
            &[],
            value,
        );
    }
}

pub(crate) fn unavailable(out: &mut Vec<u8>, req: &Request<'_>, err: &crate::Unavailable) {
    binary::encode_error_msg(out, req.opcode(), req.opaque, Status::Internal, &err.0);
}

pub(crate) fn error(out: &mut Vec<u8>, req: &Request<'_>, status: Status) {
    binary::encode_error(out, req.opcode(), req.opaque, status);
}

pub(crate) fn exptime(e: u32, now: u64) -> cache_store::Expiry {
    resolve_exptime(i64::from(e), now)
}

async fn execute(req: &Request<'_>, ctx: &Ctx, session: &mut Session, out: &mut Vec<u8>) -> Flow {
    match req.command {
        Command::Get {
            key,
            quiet,
            with_key,
        } => retrieval::get(req, ctx, session, out, key, quiet, with_key).await,
        Command::Gat {
            key,
            exptime: e,
            quiet,
            with_key,
        } => retrieval::gat(req, ctx, session, out, key, e, quiet, with_key, true).await,
        Command::Touch { key, exptime: e } => {
            retrieval::gat(req, ctx, session, out, key, e, false, false, false).await
        }
        Command::Store {
            op,
            quiet,
            key,
            flags,
            exptime: e,
            value,
        } => return storage::store(req, ctx, session, out, op, quiet, key, flags, e, value).await,
        Command::TooLarge {
            op, key, value_len, ..
        } => return storage::value_too_large(req, ctx, out, op, key, value_len).await,
        Command::Delete { key, quiet } => delete::delete(req, ctx, session, out, key, quiet).await,
        Command::Arith {
            incr,
            quiet,
            key,
            delta,
            initial,
            exptime: e,
        } => arith::arith(req, ctx, session, out, incr, quiet, key, delta, initial, e).await,
        Command::Quit { quiet } => {
            ok_empty(out, req, quiet, 0);
            return Flow {
                close: true,
                swallow: 0,
            };
        }
        Command::Flush { quiet, exptime: e } => {
            admin::flush(req, ctx, session, out, quiet, e).await
        }
        Command::Noop => ok_empty(out, req, false, 0),
        Command::Version => admin::version(req, ctx, out),
        Command::Stat { group } => admin::stat(ctx, session, req, group, out),
        // memcached 1.6.18's proto_bin.c has no verbosity handler: it falls to "Unknown command".
        Command::Verbosity { .. } => error(out, req, Status::UnknownCommand),
    }
    Flow::default()
}
