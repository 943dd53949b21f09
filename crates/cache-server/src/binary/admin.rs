//! `Quit`, `Flush`, `Noop`, `Version`, `Stat`, `Verbosity`.

use memcache_proto::binary::{self, Request, Status};

use super::{error, exptime, ok_empty, unavailable};
use crate::{Ctx, Session};

pub(crate) async fn flush(
    req: &Request<'_>,
    ctx: &Ctx,
    session: &mut Session,
    out: &mut Vec<u8>,
    quiet: bool,
    e: Option<u32>,
) {
    let now = ctx.now();
    let stats = &mut session.stats;
    let delay = match e {
        Some(e) if e > 0 => exptime(e, now).saturating_sub(now),
        _ => 0,
    };
    try_op!(out, req, ctx.flush_all(delay).await);
    stats.cmd_flush += 1;
    ok_empty(out, req, quiet, 0);
}

pub(crate) fn version(req: &Request<'_>, ctx: &Ctx, out: &mut Vec<u8>) {
    let opcode = req.opcode();
    let opaque = req.opaque;
    binary::encode_response(
        out,
        opcode,
        Status::Success,
        opaque,
        0,
        &[],
        &[],
        ctx.settings.version.as_bytes(),
    );
}

pub(crate) fn stat(
    ctx: &Ctx,
    session: &mut Session,
    req: &Request<'_>,
    group: &[u8],
    out: &mut Vec<u8>,
) {
    // Make this connection's own commands visible in the report.
    ctx.stats.counters.absorb(&mut session.stats);
    let opaque = req.opaque;
    let pairs: Vec<(String, String)> = if group.is_empty() {
        crate::stats::report(ctx, "").unwrap_or_default()
    } else if group.starts_with(b"reset") {
        crate::stats::reset(ctx);
        Vec::new()
    } else if group.starts_with(b"settings") {
        crate::stats::report(ctx, "settings").unwrap_or_default()
    } else if let Some(sub) = group.strip_prefix(b"detail") {
        if sub.starts_with(b" dump") {
            vec![("detailed".to_string(), "END\r\n".to_string())]
        } else if sub.starts_with(b" on") || sub.starts_with(b" off") {
            Vec::new()
        } else {
            error(out, req, Status::KeyNotFound);
            return;
        }
    } else {
        match std::str::from_utf8(group)
            .ok()
            .and_then(|g| crate::stats::report(ctx, g))
        {
            Some(p) => p,
            None => {
                error(out, req, Status::KeyNotFound);
                return;
            }
        }
    };
    for (name, value) in &pairs {
        binary::encode_stat(out, opaque, name.as_bytes(), value.as_bytes());
    }
    binary::encode_stat(out, opaque, b"", b"");
}
