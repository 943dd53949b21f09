//! `Get`, `GetQ`, `GetK`, `GetKQ`, `GAT`, `GATQ`, `GATK`, `GATKQ`, `Touch`.

use cache_store::GetOpts;
use memcache_proto::binary::{self, Request, Status};

use super::{error, exptime, unavailable};
use crate::{Ctx, Session};

#[allow(clippy::too_many_arguments)]
pub(crate) async fn get(
    req: &Request<'_>,
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    key: &[u8],
    quiet: bool,
    with_key: bool,
) {
    session.stats.cmd_get += 1;
    let opts = GetOpts::default();
    match lookup(req, ctx, session, out, key, opts, quiet, with_key, true).await {
        Some(true) => session.stats.get_hits += 1,
        Some(false) => session.stats.get_misses += 1,
        None => {}
    }
}

/// `GAT` and its variants; `Touch` is a `GAT` whose reply carries no value (`with_value` false)
/// and whose miss is never quiet.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn gat(
    req: &Request<'_>,
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    key: &[u8],
    e: u32,
    quiet: bool,
    with_key: bool,
    with_value: bool,
) {
    let now = ctx.now();
    session.stats.cmd_touch += 1;
    let opts = GetOpts {
        touch: Some(exptime(e, now)),
        ..GetOpts::default()
    };
    let hit = lookup(
        req, ctx, session, out, key, opts, quiet, with_key, with_value,
    )
    .await;
    match hit {
        Some(true) => session.stats.touch_hits += 1,
        Some(false) => session.stats.touch_misses += 1,
        None => {}
    }
}

/// Read `key` with `opts` and write the hit's or the miss's reply. Whether it hit; `None` when
/// the operation could not be carried out (the error reply is written).
#[allow(clippy::too_many_arguments)]
async fn lookup(
    req: &Request<'_>,
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    key: &[u8],
    opts: GetOpts,
    quiet: bool,
    with_key: bool,
    with_value: bool,
) -> Option<bool> {
    let hit = try_op!(
        out,
        req,
        ctx.get(&mut session.fence, key, opts, |it| write_hit(
            out, req, &it, with_key, with_value
        ))
        .await
    );
    if hit.is_none() {
        write_miss(out, req, key, quiet, with_key);
    }
    Some(hit.is_some())
}

/// Reply for a hit: flags in the extras, the key for `…K…` opcodes, the value unless `Touch`.
pub(crate) fn write_hit(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    it: &cache_store::ItemRef<'_>,
    with_key: bool,
    with_value: bool,
) {
    let key: &[u8] = if with_key { it.key } else { &[] };
    let value: &[u8] = if with_value { it.value } else { &[] };
    binary::encode_response(
        out,
        req.opcode(),
        Status::Success,
        req.opaque,
        it.cas,
        &it.flags.to_be_bytes(),
        key,
        value,
    );
}

/// Reply for a miss: nothing for quiet gets, the key with `Not found` status for `GetK`/`GATK`
/// (no message, as memcached does), else the `Not found` error.
pub(crate) fn write_miss(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    key: &[u8],
    quiet: bool,
    with_key: bool,
) {
    if quiet {
    } else if with_key {
        binary::encode_response(
            out,
            req.opcode(),
            Status::KeyNotFound,
            req.opaque,
            0,
            &[],
            key,
            &[],
        );
    } else {
        error(out, req, Status::KeyNotFound);
    }
}
