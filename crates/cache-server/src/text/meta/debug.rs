//! `me`: what memcached shows about an item.

use cache_store::GetOpts;
use memcache_proto::meta;
use memcache_proto::text::{self, put_u64};

use super::item_key_binary;
use crate::text::server_error;
use crate::{Ctx, Session};

/// memcached's slab class for an item of `ntotal` bytes with default settings (`-n 48 -f 1.25`,
/// 1 MiB pages, 512 KiB largest chunk).
fn slab_class(ntotal: usize) -> u32 {
    let mut size: u32 = 96;
    let mut cls = 1u32;
    while cls < 63 {
        if f64::from(size) >= 524288.0 / 1.25 {
            break;
        }
        if size & 7 != 0 {
            size += 8 - (size & 7);
        }
        if ntotal <= size as usize {
            return cls;
        }
        size = (f64::from(size) * 1.25) as u32;
        cls += 1;
    }
    cls
}

pub(crate) async fn meta_debug(
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    m: &meta::Request<'_>,
) {
    let now = ctx.now();
    let key = m.key.as_bytes();
    let binary = m.key.is_binary();
    let opts = GetOpts {
        no_lru_bump: true,
        ..GetOpts::default()
    };
    let hit = ctx
        .get(&mut session.fence, key, opts, |it| {
            out.extend_from_slice(b"ME ");
            if item_key_binary(it.key, binary) {
                meta::base64_encode(it.key, out);
            } else {
                out.extend_from_slice(it.key);
            }
            out.extend_from_slice(b" exp=");
            if it.expires_at == 0 {
                out.extend_from_slice(b"-1");
            } else {
                // memcached prints (current_time - exptime) as a signed int.
                text::put_i64(
                    out,
                    i64::from(now.wrapping_sub(it.expires_at) as u32 as i32),
                );
            }
            out.extend_from_slice(b" la=");
            put_u64(out, now.saturating_sub(it.last_access));
            out.extend_from_slice(b" cas=");
            put_u64(out, it.cas);
            out.extend_from_slice(if it.fetched_before {
                b" fetch=yes"
            } else {
                b" fetch=no"
            });
            let ntotal =
                48 + 8 + it.key.len() + 1 + if it.flags != 0 { 4 } else { 0 } + it.value.len() + 2;
            out.extend_from_slice(b" cls=");
            put_u64(out, u64::from(slab_class(ntotal)));
            out.extend_from_slice(b" size=");
            put_u64(out, ntotal as u64);
            out.extend_from_slice(b"\r\n");
        })
        .await;
    let hit = try_op!(out, false, hit).is_some();
    if !hit {
        out.extend_from_slice(b"EN\r\n");
    }
    session.stats.cmd_meta += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_classes_match_memcached_defaults() {
        // memcached -vv with defaults: class 1 = 96, 2 = 120, 3 = 152, 4 = 192, 5 = 240.
        assert_eq!(slab_class(62), 1);
        assert_eq!(slab_class(96), 1);
        assert_eq!(slab_class(97), 2);
        assert_eq!(slab_class(120), 2);
        assert_eq!(slab_class(121), 3);
        assert_eq!(slab_class(193), 5);
    }
}
