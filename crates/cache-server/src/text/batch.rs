//! Cluster mode's batched text writes: a run of pure writes is staged (its replicated commands
//! packed together) and answered from the outcomes, see [`crate::conn`].

use cache_cluster::{CommandView, Outcome};
use cache_store::{resolve_exptime, DeleteOpts};
use memcache_proto::text::{Data, Request, StoreCmd};

use super::arith::{arith_done, arith_req};
use super::delete_touch::{delete_done, touch_done};
use super::storage::{store_done, store_req};
use super::Unsent;
use crate::{Ctx, OpResult, Session};

/// Cluster mode's batched writes ([`crate::conn`]): the replicated command of a pure text write
/// ([`super::classify`] said [`crate::Kind::Write`]) whose reply needs nothing but its outcome (a storage
/// command, delete, touch, incr/decr), as a view of the request (to be packed:
/// [`cache_cluster::Packer`]); `None`, having done nothing, for any other. It does what the
/// request does before its store operation and [`finish_write`] what it does after: together
/// exactly what [`super::process_parsed`] does for it, minus the wait.
pub fn stage_write<'a>(
    req: &Request<'a>,
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
) -> Option<CommandView<'a>> {
    let now = ctx.now();
    Some(match req {
        Request::Store(r) => {
            let Data::Value(value) = r.data else {
                return None;
            };
            if r.cmd == StoreCmd::Set {
                unsent.unpin(r.key);
            }
            session.stats.cmd_set += 1;
            CommandView::from_store(&store_req(r, value, now))
        }
        Request::Delete { key, .. } => CommandView::from_delete(key, &DeleteOpts::default()),
        Request::Touch { key, exptime, .. } => {
            session.stats.cmd_touch += 1;
            CommandView::Touch {
                key,
                expires_at: resolve_exptime(i64::from(*exptime), now),
            }
        }
        Request::Arith {
            incr, key, delta, ..
        } => {
            let (r, referenced) = arith_req(unsent, key, *incr, *delta);
            CommandView::from_arith(&r, None, referenced)
        }
        _ => return None,
    })
}

/// Answer a [`stage_write`] request with its replicated outcome.
pub fn finish_write(
    req: &Request<'_>,
    outcome: OpResult<&Outcome>,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
) {
    match req {
        Request::Store(r) => store_done(session, unsent, out, r, outcome.map(Outcome::to_store)),
        Request::Delete { key, noreply } => delete_done(
            session,
            unsent,
            out,
            key,
            *noreply,
            outcome.map(Outcome::to_delete),
        ),
        Request::Touch { noreply, .. } => touch_done(
            session,
            out,
            *noreply,
            outcome.map(|o| matches!(o, Outcome::Touched(true))),
        ),
        Request::Arith { incr, noreply, .. } => arith_done(
            session,
            out,
            *incr,
            *noreply,
            outcome.map(|o| o.to_arith().0),
        ),
        _ => {}
    }
}
