//! `set`, `add`, `replace`, `append`, `prepend`, `cas`.

use cache_store::{resolve_exptime, StoreMode, StoreOutcome, StoreReq};
use memcache_proto::text::{Data, StoreCmd, StoreRequest};

use super::{reply, server_error, Unsent, TOO_LARGE};
use crate::{Ctx, Flow, OpResult, Session};

/// The store's `TooLarge`/oversize path shared by text and meta: answer, and drop the old value
/// (memcached does so for `set` only in text, for every mode in `ms`).
pub(crate) async fn too_large(
    ctx: &Ctx,
    out: &mut Vec<u8>,
    key: &[u8],
    remove: bool,
    noreply: bool,
) {
    if remove {
        if let Err(e) = ctx.remove(key).await {
            // The value is still swallowed by the caller; only the answer changes.
            server_error(out, noreply, &e);
            return;
        }
    }
    reply(out, noreply, TOO_LARGE);
}

pub(crate) async fn store(
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
    r: &StoreRequest<'_>,
) -> Flow {
    let now = ctx.now();
    let is_set = r.cmd == StoreCmd::Set;
    if is_set {
        // Stored, or removed as too large: any reply holding the old item does not hold this key's.
        unsent.unpin(r.key);
    }
    let value = match r.data {
        Data::TooLarge => {
            too_large(ctx, out, r.key, is_set, r.noreply).await;
            return Flow {
                close: false,
                swallow: r.len + 2,
            };
        }
        _ if !ctx.item_fits(r.key.len(), r.len) => {
            too_large(ctx, out, r.key, is_set, r.noreply).await;
            return Flow::default();
        }
        Data::BadChunk => {
            session.stats.cmd_set += 1;
            reply(out, r.noreply, b"CLIENT_ERROR bad data chunk\r\n");
            return Flow::default();
        }
        Data::Value(v) => v,
    };
    session.stats.cmd_set += 1;
    let req = store_req(r, value, now);
    let outcome = ctx.store_item(&req).await;
    store_done(session, unsent, out, r, outcome);
    Flow::default()
}

/// The store request of a text storage command whose value fits.
pub(crate) fn store_req<'a>(r: &StoreRequest<'a>, value: &'a [u8], now: u64) -> StoreReq<'a> {
    let (mode, compare_cas) = match r.cmd {
        StoreCmd::Set => (StoreMode::Set, None),
        StoreCmd::Add => (StoreMode::Add, None),
        StoreCmd::Replace => (StoreMode::Replace, None),
        StoreCmd::Append => (StoreMode::Append, None),
        StoreCmd::Prepend => (StoreMode::Prepend, None),
        StoreCmd::Cas => (StoreMode::Set, Some(r.cas_unique)),
    };
    StoreReq {
        mode,
        key: r.key,
        value,
        flags: r.flags,
        expires_at: resolve_exptime(i64::from(r.exptime), now),
        compare_cas,
        invalidate: false,
        new_cas: None,
        vivify: None,
    }
}

/// Count and answer a text storage command's outcome.
pub(crate) fn store_done(
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
    r: &StoreRequest<'_>,
    outcome: OpResult<StoreOutcome>,
) {
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return server_error(out, r.noreply, &e),
    };
    count_cas(session, r.cmd == StoreCmd::Cas, outcome);
    if matches!(outcome, StoreOutcome::Stored { .. }) {
        unsent.unpin(r.key);
    }
    let s: &[u8] = match outcome {
        StoreOutcome::Stored { .. } => b"STORED\r\n",
        StoreOutcome::NotStored => b"NOT_STORED\r\n",
        StoreOutcome::Exists => b"EXISTS\r\n",
        StoreOutcome::NotFound => b"NOT_FOUND\r\n",
        StoreOutcome::TooLarge => TOO_LARGE,
        StoreOutcome::OutOfMemory => b"SERVER_ERROR out of memory storing object\r\n",
    };
    reply(out, r.noreply, s);
}

pub(crate) fn count_cas(session: &mut Session, cas_mode: bool, outcome: StoreOutcome) {
    if !cas_mode {
        return;
    }
    let st = &mut session.stats;
    match outcome {
        StoreOutcome::Stored { .. } => st.cas_hits += 1,
        StoreOutcome::Exists => st.cas_badval += 1,
        StoreOutcome::NotFound => st.cas_misses += 1,
        _ => {}
    }
}
