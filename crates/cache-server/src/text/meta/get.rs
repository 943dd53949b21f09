//! `mg`.

use cache_store::{GetOpts, ItemRef, MetaInfo, REALTIME_MAXDELTA};
use memcache_proto::meta::{self, put_echo_flags, put_key_flag, put_num_flag, put_ttl_flag};
use memcache_proto::text::put_u64;

use super::{item_key_binary, meta_exptime, meta_order};
use crate::text::{server_error, Unsent, OPAQUE_TOO_LONG};
use crate::{Ctx, Session};

fn recache_below(r: i32, now: u64) -> Option<u64> {
    // memcached wins when the item's exptime < realtime(R), i.e. remaining TTL < R seconds.
    let e = i64::from(r);
    if e <= 0 {
        None
    } else if e <= REALTIME_MAXDELTA {
        Some(e as u64)
    } else {
        (e as u64).checked_sub(now).filter(|&d| d > 0)
    }
}

pub(crate) async fn meta_get(
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
    m: &meta::Request<'_>,
) {
    let now = ctx.now();
    let f = &m.flags;
    let key = m.key.as_bytes();
    let binary = m.key.is_binary();
    let opts = GetOpts {
        touch: f.ttl.map(|t| meta_exptime(t, now)),
        no_lru_bump: f.no_update,
        vivify: f.vivify.map(|t| meta_exptime(t, now)),
        recache_below: f.recache.and_then(|r| recache_below(r, now)),
    };
    let start = out.len();
    // memcached walks the flags in request order: `T` sets the expiry, `N` sets it on an item
    // this command created, `t` shows the expiry as of that point.
    let render = |it: ItemRef<'_>, info: MetaInfo| {
        let mut exp = info.prior_expires_at;
        if f.value {
            out.extend_from_slice(b"VA ");
            put_u64(out, it.value.len() as u64);
        } else {
            out.extend_from_slice(b"HD");
        }
        for tok in m.flag_tokens() {
            match tok[0] {
                b'T' => exp = opts.touch.unwrap_or(exp),
                b'N' if info.created => exp = opts.vivify.unwrap_or(exp),
                b's' => put_num_flag(out, b's', it.value.len() as u64),
                b't' => put_ttl_flag(out, exp, now),
                b'c' => put_num_flag(out, b'c', it.cas),
                b'f' => put_num_flag(out, b'f', u64::from(it.flags)),
                b'l' => put_num_flag(out, b'l', now.saturating_sub(it.last_access)),
                b'h' => put_num_flag(out, b'h', u64::from(it.fetched_before)),
                b'O' => {
                    out.push(b' ');
                    out.extend_from_slice(tok);
                }
                b'k' => put_key_flag(out, it.key, item_key_binary(it.key, binary)),
                _ => {}
            }
        }
        if it.win_already_sent {
            out.extend_from_slice(b" Z");
        }
        if it.stale {
            out.extend_from_slice(b" X");
        }
        if it.win {
            out.extend_from_slice(b" W");
        }
        out.extend_from_slice(b"\r\n");
        if f.value {
            out.extend_from_slice(it.value);
            out.extend_from_slice(b"\r\n");
        }
    };
    let hit = match ctx
        .get_meta(&mut session.fence, key, opts, meta_order(m), render)
        .await
    {
        Ok(h) => h.is_some(),
        Err(e) => {
            server_error(out, false, &e);
            return;
        }
    };
    if f.opaque_too_long {
        out.truncate(start);
        out.extend_from_slice(OPAQUE_TOO_LONG);
        return;
    }
    if hit {
        // The reply keeps a reference to the item until it is written.
        unsent.pin(key);
    }
    let st = &mut session.stats;
    if hit {
        if f.ttl.is_some() {
            st.cmd_touch += 1;
            st.touch_hits += 1;
        } else {
            st.cmd_get += 1;
            st.get_hits += 1;
        }
    } else {
        st.cmd_get += 1;
        st.get_misses += 1;
        if !f.quiet {
            out.extend_from_slice(b"EN");
            put_echo_flags(out, m);
            out.extend_from_slice(b"\r\n");
        }
    }
}
