//! `get`, `gets`, `gat`, `gats`, `bget`.

use cache_store::{resolve_exptime, GetOpts};
use memcache_proto::text::{self, GetCmd, Keys};

use super::{server_error, unsent_start};
use crate::{Ctx, Session};

pub(crate) async fn get(
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    cmd: GetCmd,
    exptime: i32,
    keys: Keys<'_>,
) {
    let now = ctx.now();
    let touch = cmd.touches();
    let opts = GetOpts {
        touch: if touch {
            Some(resolve_exptime(i64::from(exptime), now))
        } else {
            None
        },
        ..GetOpts::default()
    };
    let with_cas = cmd.returns_cas();
    let st = &mut session.stats;
    for key in keys {
        if key.len() > text::KEY_MAX_LENGTH {
            // memcached drops every response not yet sent (conn_release_items).
            out.truncate(unsent_start(out));
            out.extend_from_slice(b"CLIENT_ERROR bad command line format\r\n");
            return;
        }
        let hit = ctx
            .get(&mut session.fence, key, opts, |it| {
                text::encode_value(
                    out,
                    it.key,
                    it.flags,
                    it.value,
                    if with_cas { Some(it.cas) } else { None },
                )
            })
            .await;
        let hit = try_op!(out, false, hit).is_some();
        if touch {
            st.cmd_touch += 1;
            if hit {
                st.touch_hits += 1;
            } else {
                st.touch_misses += 1;
            }
        } else {
            st.cmd_get += 1;
            if hit {
                st.get_hits += 1;
            } else {
                st.get_misses += 1;
            }
        }
    }
    text::encode_end(out);
}
