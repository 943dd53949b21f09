//! `ms`.

use cache_store::{StoreMode, StoreOutcome, StoreReq};
use memcache_proto::meta::{self, put_key_flag, put_num_flag};
use memcache_proto::text::Data;

use super::meta_exptime;
use crate::text::storage::{count_cas, too_large};
use crate::text::{server_error, TOO_LARGE};
use crate::{Ctx, Flow, Session};

pub(crate) async fn meta_set(
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    m: &meta::Request<'_>,
) -> Flow {
    let now = ctx.now();
    let f = &m.flags;
    let key = m.key.as_bytes();
    let value = match m.data {
        Data::TooLarge => {
            too_large(ctx, out, key, true, false).await;
            return Flow {
                close: false,
                swallow: m.len + 2,
            };
        }
        _ if !ctx.item_fits(key.len(), m.len) => {
            too_large(ctx, out, key, true, false).await;
            return Flow::default();
        }
        Data::BadChunk => {
            session.stats.cmd_set += 1;
            out.extend_from_slice(b"CLIENT_ERROR bad data chunk\r\n");
            return Flow::default();
        }
        Data::Value(v) => v,
    };
    session.stats.cmd_set += 1;
    // memcached: a C token upgrades set/replace to the cas command; append/prepend compare only a
    // non-zero CAS; add ignores it.
    let (mode, compare_cas) = match (m.set_mode(), f.compare_cas) {
        (meta::SetMode::Set | meta::SetMode::Replace, Some(c)) => (StoreMode::Set, Some(c)),
        (meta::SetMode::Set, None) => (StoreMode::Set, None),
        (meta::SetMode::Replace, None) => (StoreMode::Replace, None),
        (meta::SetMode::Add, _) => (StoreMode::Add, None),
        (meta::SetMode::Append, c) => (StoreMode::Append, c.filter(|&c| c != 0)),
        (meta::SetMode::Prepend, c) => (StoreMode::Prepend, c.filter(|&c| c != 0)),
    };
    let cas_mode = compare_cas.is_some() && mode == StoreMode::Set;
    let req = StoreReq {
        mode,
        key,
        value,
        flags: f.client_flags,
        expires_at: f.ttl.map(|t| meta_exptime(t, now)).unwrap_or(0),
        compare_cas,
        invalidate: f.invalidate && cas_mode,
        new_cas: None,
        vivify: None,
    };
    let outcome = try_op!(out, false, ctx.store_item(&req).await);
    count_cas(session, cas_mode, outcome);
    let (code, cas): (&[u8], u64) = match outcome {
        StoreOutcome::Stored { cas } => {
            if f.quiet {
                return Flow::default();
            }
            (b"HD", cas)
        }
        StoreOutcome::NotStored => (b"NS", 0),
        StoreOutcome::Exists => (b"EX", 0),
        StoreOutcome::NotFound => (b"NF", 0),
        StoreOutcome::TooLarge => {
            out.extend_from_slice(TOO_LARGE);
            return Flow::default();
        }
        StoreOutcome::OutOfMemory => {
            out.extend_from_slice(b"SERVER_ERROR out of memory storing object\r\n");
            return Flow::default();
        }
    };
    out.extend_from_slice(code);
    for tok in m.flag_tokens() {
        match tok[0] {
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(tok);
            }
            b'k' => put_key_flag(out, key, m.key.is_binary()),
            b'c' => put_num_flag(out, b'c', cas),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
    Flow::default()
}
