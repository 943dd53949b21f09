//! `md`.

use cache_store::{DeleteOpts, DeleteOutcome};
use memcache_proto::meta::{self, put_echo_flags};

use super::meta_exptime;
use crate::text::{server_error, Unsent};
use crate::{Ctx, Session};

pub(crate) async fn meta_delete(
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
    m: &meta::Request<'_>,
) {
    let now = ctx.now();
    let f = &m.flags;
    let opts = DeleteOpts {
        compare_cas: f.compare_cas,
        invalidate: f.invalidate,
        touch: if f.invalidate {
            f.ttl.map(|t| meta_exptime(t, now))
        } else {
            None
        },
        remove_value_only: false,
        new_cas: None,
    };
    let code: &[u8] = match try_op!(out, false, ctx.delete(m.key.as_bytes(), opts).await) {
        DeleteOutcome::Deleted => {
            if !f.invalidate {
                session.stats.delete_hits += 1;
                unsent.unpin(m.key.as_bytes());
            }
            if f.quiet {
                return;
            }
            b"HD"
        }
        DeleteOutcome::NotFound => {
            session.stats.delete_misses += 1;
            b"NF"
        }
        DeleteOutcome::Exists => {
            session.stats.delete_misses += 1;
            b"EX"
        }
    };
    out.extend_from_slice(code);
    put_echo_flags(out, m);
    out.extend_from_slice(b"\r\n");
}
