//! `ma`.

use cache_store::{ArithOutcome, ArithReq};
use memcache_proto::meta::{self, put_echo_flags, put_key_flag, put_num_flag, put_ttl_flag};
use memcache_proto::text::put_u64;

use super::{meta_exptime, meta_order};
use crate::text::{server_error, Unsent, NON_NUMERIC, OPAQUE_TOO_LONG};
use crate::{Ctx, Session};

pub(crate) async fn meta_arith(
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
    m: &meta::Request<'_>,
) {
    let now = ctx.now();
    let f = &m.flags;
    let incr = m.is_incr();
    let key = m.key.as_bytes();
    let req = ArithReq {
        key,
        incr,
        delta: f.delta.unwrap_or(1),
        compare_cas: f.compare_cas,
        vivify: f.vivify.map(|t| (f.initial, meta_exptime(t, now))),
        touch: f.ttl.map(|t| meta_exptime(t, now)),
        new_cas: None,
    };
    let referenced = unsent.is_pinned(key);
    let (outcome, info) = try_op!(
        out,
        false,
        ctx.arith_meta(&req, Some(meta_order(m)), referenced).await
    );
    if referenced && matches!(outcome, ArithOutcome::Ok { .. }) {
        unsent.unpin(key);
    }
    let st = &mut session.stats;
    match outcome {
        ArithOutcome::NonNumeric => out.extend_from_slice(NON_NUMERIC),
        ArithOutcome::OutOfMemory => out.extend_from_slice(b"SERVER_ERROR out of memory\r\n"),
        _ if f.opaque_too_long => out.extend_from_slice(OPAQUE_TOO_LONG),
        ArithOutcome::Ok { value, cas, .. } => {
            // memcached counts a hit (and honours `q`) only for an existing item; an item `N`
            // created is answered even with `q`.
            if !info.created {
                if incr {
                    st.incr_hits += 1;
                } else {
                    st.decr_hits += 1;
                }
                if f.quiet {
                    return;
                }
            }
            let mut num = Vec::with_capacity(20);
            put_u64(&mut num, value);
            if f.value {
                out.extend_from_slice(b"VA ");
                put_u64(out, num.len() as u64);
            } else {
                out.extend_from_slice(b"HD");
            }
            // Flags in request order: `T`/`N` change the expiry that a later `t` shows.
            let mut exp = info.prior_expires_at;
            for tok in m.flag_tokens() {
                match tok[0] {
                    b'c' => put_num_flag(out, b'c', cas),
                    b't' => put_ttl_flag(out, exp, now),
                    b'T' => exp = req.touch.unwrap_or(exp),
                    b'N' if info.created => exp = req.vivify.map_or(exp, |v| v.1),
                    b'O' => {
                        out.push(b' ');
                        out.extend_from_slice(tok);
                    }
                    b'k' => put_key_flag(out, key, m.key.is_binary()),
                    _ => {}
                }
            }
            if f.value {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&num);
            }
            out.extend_from_slice(b"\r\n");
        }
        ArithOutcome::NotFound => {
            if incr {
                st.incr_misses += 1;
            } else {
                st.decr_misses += 1;
            }
            out.extend_from_slice(b"NF");
            put_echo_flags(out, m);
            out.extend_from_slice(b"\r\n");
        }
        ArithOutcome::Exists => {
            out.extend_from_slice(b"EX");
            put_echo_flags(out, m);
            out.extend_from_slice(b"\r\n");
        }
    }
}
