//! `delete` and `touch`.

use cache_store::{resolve_exptime, DeleteOpts, DeleteOutcome};

use super::{reply, server_error, Unsent};
use crate::{Ctx, OpResult, Session};

pub(crate) async fn delete(
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
    key: &[u8],
    noreply: bool,
) {
    let outcome = ctx.delete(key, DeleteOpts::default()).await;
    delete_done(session, unsent, out, key, noreply, outcome);
}

pub(crate) async fn touch(
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    key: &[u8],
    exptime: i32,
    noreply: bool,
) {
    let now = ctx.now();
    session.stats.cmd_touch += 1;
    let outcome = ctx
        .touch(key, resolve_exptime(i64::from(exptime), now))
        .await;
    touch_done(session, out, noreply, outcome);
}
pub(crate) fn delete_done(
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
    key: &[u8],
    noreply: bool,
    outcome: OpResult<DeleteOutcome>,
) {
    match outcome {
        Err(e) => server_error(out, noreply, &e),
        Ok(DeleteOutcome::Deleted) => {
            unsent.unpin(key);
            session.stats.delete_hits += 1;
            reply(out, noreply, b"DELETED\r\n");
        }
        Ok(DeleteOutcome::NotFound | DeleteOutcome::Exists) => {
            session.stats.delete_misses += 1;
            reply(out, noreply, b"NOT_FOUND\r\n");
        }
    }
}

pub(crate) fn touch_done(
    session: &mut Session,
    out: &mut Vec<u8>,
    noreply: bool,
    outcome: OpResult<bool>,
) {
    match outcome {
        Err(e) => server_error(out, noreply, &e),
        Ok(true) => {
            session.stats.touch_hits += 1;
            reply(out, noreply, b"TOUCHED\r\n");
        }
        Ok(false) => {
            session.stats.touch_misses += 1;
            reply(out, noreply, b"NOT_FOUND\r\n");
        }
    }
}
