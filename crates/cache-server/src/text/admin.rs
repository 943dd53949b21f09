//! `flush_all`, `version`, `verbosity`, `stats`, `stats reset`, `shutdown`.

use std::sync::atomic::Ordering::Relaxed;

use cache_store::REALTIME_MAXDELTA;
use memcache_proto::text;

use super::{reply, server_error, Unsent};
use crate::{Ctx, Session};

pub(crate) async fn flush_all(
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
    exptime: i32,
    noreply: bool,
) {
    let now = ctx.now();
    session.stats.cmd_flush += 1;
    // memcached: realtime(exptime); an absolute time at or before the server start
    // becomes "1", which disables the flush altogether.
    let e = i64::from(exptime);
    // Every item a pending reply holds is flushed (or will be): none can be incremented.
    unsent.written();
    if e <= 0 {
        try_op!(out, noreply, ctx.flush_all(0).await);
    } else if e <= REALTIME_MAXDELTA {
        try_op!(out, noreply, ctx.flush_all(e as u64).await);
    } else if (e as u64) > ctx.stats.started {
        try_op!(
            out,
            noreply,
            ctx.flush_all((e as u64).saturating_sub(now)).await
        );
    }
    reply(out, noreply, b"OK\r\n");
}

pub(crate) fn version(ctx: &Ctx, out: &mut Vec<u8>) {
    out.extend_from_slice(b"VERSION ");
    out.extend_from_slice(ctx.settings.version.as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn verbosity(ctx: &Ctx, out: &mut Vec<u8>, level: u32, noreply: bool) {
    ctx.stats.verbosity.store(u64::from(level.min(2)), Relaxed);
    reply(out, noreply, b"OK\r\n");
}

pub(crate) fn stats(ctx: &Ctx, out: &mut Vec<u8>, group: &[u8]) {
    let rep = std::str::from_utf8(group)
        .ok()
        .and_then(|g| crate::stats::report(ctx, g));
    match rep {
        Some(lines) => text::encode_stats(out, &lines),
        None => out.extend_from_slice(b"ERROR\r\n"),
    }
}

pub(crate) fn stats_reset(ctx: &Ctx, out: &mut Vec<u8>) {
    crate::stats::reset(ctx);
    out.extend_from_slice(b"RESET\r\n");
}

pub(crate) fn shutdown(out: &mut Vec<u8>) {
    out.extend_from_slice(b"ERROR: shutdown not enabled\r\n");
}
