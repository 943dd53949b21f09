//! `Set`, `Add`, `Replace`, `Append`, `Prepend` and their quiet variants.

use cache_store::{StoreMode, StoreOutcome, StoreReq};
use memcache_proto::binary::{self, Request, Status, StoreOp};

use super::{error, exptime, ok_empty, unavailable};
use crate::{Ctx, Flow, Session};

#[allow(clippy::too_many_arguments)]
pub(crate) async fn store(
    req: &Request<'_>,
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    op: StoreOp,
    quiet: bool,
    key: &[u8],
    flags: u32,
    e: u32,
    value: &[u8],
) -> Flow {
    let now = ctx.now();
    let opcode = req.opcode();
    let opaque = req.opaque;
    let stats = &mut session.stats;
    if !ctx.item_fits(key.len(), value.len()) {
        too_large(ctx, req, op, key, out).await;
        return Flow::default();
    }
    stats.cmd_set += 1;
    // Set/Add/Replace with a CAS are memcached's `cas` (NREAD_CAS), whatever the opcode.
    let cas_op = req.cas != 0 && matches!(op, StoreOp::Set | StoreOp::Add | StoreOp::Replace);
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
    Flow::default()
}

/// A value too large to buffer: answered, then swallowed by the connection.
pub(crate) async fn value_too_large(
    req: &Request<'_>,
    ctx: &Ctx,
    out: &mut Vec<u8>,
    op: StoreOp,
    key: &[u8],
    value_len: u32,
) -> Flow {
    too_large(ctx, req, op, key, out).await;
    Flow {
        close: false,
        swallow: value_len as usize,
    }
}

/// Oversized value: `Too large.` (even for quiet opcodes); a `Set` also drops the old value so
/// that stale data does not persist (memcached's rule).
pub(crate) async fn too_large(
    ctx: &Ctx,
    req: &Request<'_>,
    op: StoreOp,
    key: &[u8],
    out: &mut Vec<u8>,
) {
    if op == StoreOp::Set {
        if let Err(e) = ctx.remove(key).await {
            unavailable(out, req, &e);
            return;
        }
    }
    error(out, req, Status::TooLarge);
}
