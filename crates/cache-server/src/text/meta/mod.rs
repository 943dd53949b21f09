//! The meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`), one file per command.

mod arith;
mod debug;
mod delete;
mod get;
mod set;

use cache_store::{resolve_exptime, Expiry, MetaOrder};
use memcache_proto::meta;

use super::Unsent;
use crate::{Ctx, Flow, Session};

/// memcached's `realtime(EXPTIME_TO_POSITIVE_TIME(t))` as an absolute expiry.
pub(crate) fn meta_exptime(t: i32, now: u64) -> Expiry {
    resolve_exptime(i64::from(t), now)
}

pub(crate) async fn execute(
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
    m: &meta::Request<'_>,
) -> Flow {
    match m.cmd {
        meta::Cmd::Noop => {
            out.extend_from_slice(b"MN\r\n");
            // "mn command forces immediate writeback flush."
            unsent.written();
        }
        meta::Cmd::Debug => debug::meta_debug(ctx, session, out, m).await,
        meta::Cmd::Get => get::meta_get(ctx, session, unsent, out, m).await,
        meta::Cmd::Set => {
            // Stored, or removed as too large, or unchanged: unpinning is right or harmless
            // (an unchanged item stays referenced, but only until the next write).
            let flow = set::meta_set(ctx, session, out, m).await;
            unsent.unpin(m.key.as_bytes());
            return flow;
        }
        meta::Cmd::Delete => delete::meta_delete(ctx, session, unsent, out, m).await,
        meta::Cmd::Arith => arith::meta_arith(ctx, session, unsent, out, m).await,
    }
    Flow::default()
}

/// The order of a meta command's `T`, `N` and `R` flags (memcached applies them as it meets them).
pub(crate) fn meta_order(m: &meta::Request<'_>) -> MetaOrder {
    let pos = |c: u8| m.flag_tokens().position(|t| t[0] == c);
    let (t, n, r) = (pos(b'T'), pos(b'N'), pos(b'R'));
    MetaOrder {
        touch_after_vivify: t > n && n.is_some(),
        recache_after_touch: r > t && t.is_some(),
    }
}

/// Whether `k` shows an item's key in base64 (plus ` b`). memcached 1.6.18 decides by a per-item
/// bit set when `ms` stored the item with `b`; keel keeps no such bit, so it uses base64 only
/// when the request itself used `b` and the key is not printable ASCII (a binary key).
pub(crate) fn item_key_binary(key: &[u8], request_binary: bool) -> bool {
    request_binary && !key.iter().all(|b| b.is_ascii_graphic())
}
