//! `Delete`, `DeleteQ`.

use cache_store::{DeleteOpts, DeleteOutcome};
use memcache_proto::binary::{Request, Status};

use super::{error, ok_empty, unavailable};
use crate::{Ctx, Session};

pub(crate) async fn delete(
    req: &Request<'_>,
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    key: &[u8],
    quiet: bool,
) {
    let stats = &mut session.stats;
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
