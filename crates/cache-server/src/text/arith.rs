//! `incr` and `decr`.

use cache_store::{ArithOutcome, ArithReq};
use memcache_proto::text::put_u64;

use super::{reply, server_error, Unsent, NON_NUMERIC};
use crate::{Ctx, OpResult, Session};

#[allow(clippy::too_many_arguments)]
pub(crate) async fn incr_decr(
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
    incr: bool,
    key: &[u8],
    delta: u64,
    noreply: bool,
) {
    let (r, referenced) = arith_req(unsent, key, incr, delta);
    let outcome = ctx.arith_meta(&r, None, referenced).await.map(|(o, _)| o);
    arith_done(session, out, incr, noreply, outcome);
}
/// incr/decr's request, and whether an unwritten `mg` reply holds the item (then it is not
/// rewritten in place, see [`Unsent`]; the pin is dropped).
pub(crate) fn arith_req<'a>(
    unsent: &mut Unsent,
    key: &'a [u8],
    incr: bool,
    delta: u64,
) -> (ArithReq<'a>, bool) {
    let referenced = unsent.is_pinned(key);
    if referenced {
        unsent.unpin(key);
    }
    (
        ArithReq {
            key,
            incr,
            delta,
            compare_cas: None,
            vivify: None,
            touch: None,
            new_cas: None,
        },
        referenced,
    )
}

pub(crate) fn arith_done(
    session: &mut Session,
    out: &mut Vec<u8>,
    incr: bool,
    noreply: bool,
    outcome: OpResult<ArithOutcome>,
) {
    let st = &mut session.stats;
    match outcome {
        Err(e) => server_error(out, noreply, &e),
        Ok(ArithOutcome::Ok { value, .. }) => {
            if incr {
                st.incr_hits += 1;
            } else {
                st.decr_hits += 1;
            }
            if !noreply {
                put_u64(out, value);
                out.extend_from_slice(b"\r\n");
            }
        }
        Ok(ArithOutcome::NotFound | ArithOutcome::Exists) => {
            if incr {
                st.incr_misses += 1;
            } else {
                st.decr_misses += 1;
            }
            reply(out, noreply, b"NOT_FOUND\r\n");
        }
        Ok(ArithOutcome::NonNumeric) => reply(out, noreply, NON_NUMERIC),
        Ok(ArithOutcome::OutOfMemory) => reply(out, noreply, b"SERVER_ERROR out of memory\r\n"),
    }
}
