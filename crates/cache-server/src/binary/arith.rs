//! `Increment`, `Decrement` and their quiet variants.

use cache_store::{ArithOutcome, ArithReq, StoreMode, StoreOutcome, StoreReq};
use memcache_proto::binary::{self, Request, Status, NO_CREATE};

use super::{error, exptime, ok_value, unavailable};
use crate::{Ctx, Session};

#[allow(clippy::too_many_arguments)]
pub(crate) async fn arith(
    req: &Request<'_>,
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    incr: bool,
    quiet: bool,
    key: &[u8],
    delta: u64,
    initial: u64,
    e: u32,
) {
    let now = ctx.now();
    let opcode = req.opcode();
    let opaque = req.opaque;
    let stats = &mut session.stats;
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
            ok_value(out, req, quiet, cas, &value.to_be_bytes());
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
                    ok_value(out, req, quiet, cas, &initial.to_be_bytes());
                }
                StoreOutcome::TooLarge | StoreOutcome::OutOfMemory => binary::encode_error_msg(
                    out,
                    opcode,
                    opaque,
                    Status::OutOfMemory,
                    "Out of memory allocating new item",
                ),
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
