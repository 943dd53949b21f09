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
    let stats = &mut session.stats;
    stats.cmd_get += 1;
    let hit = try_op!(
        out,
        req,
        ctx.get(&mut session.fence, key, GetOpts::default(), |it| write_hit(
            out, req, &it, with_key, true
        ))
        .await
    );
    if hit.is_some() {
        stats.get_hits += 1;
    } else {
        stats.get_misses += 1;
        write_miss(out, req, key, quiet, with_key);
    }
}

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
) {
    let now = ctx.now();
    let stats = &mut session.stats;
    stats.cmd_touch += 1;
    let opts = GetOpts {
        touch: Some(exptime(e, now)),
        ..GetOpts::default()
    };
    let hit = try_op!(
        out,
        req,
        ctx.get(&mut session.fence, key, opts, |it| write_hit(
            out, req, &it, with_key, true
        ))
        .await
    );
    if hit.is_some() {
        stats.touch_hits += 1;
    } else {
        stats.touch_misses += 1;
        write_miss(out, req, key, quiet, with_key);
    }
}

pub(crate) async fn touch(
    req: &Request<'_>,
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    key: &[u8],
    e: u32,
) {
    let now = ctx.now();
    let stats = &mut session.stats;
    stats.cmd_touch += 1;
    let opts = GetOpts {
        touch: Some(exptime(e, now)),
        ..GetOpts::default()
    };
    let hit = try_op!(
        out,
        req,
        ctx.get(&mut session.fence, key, opts, |it| write_hit(
            out, req, &it, false, false
        ))
        .await
    );
    if hit.is_some() {
        stats.touch_hits += 1;
    } else {
        stats.touch_misses += 1;
        write_miss(out, req, key, false, false);
    }
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
