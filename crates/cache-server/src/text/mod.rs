//! Executes the text and meta protocols: parse one request from the buffered input with
//! [`memcache_proto::text`] (which also frames meta commands), run it against the store, append
//! memcached 1.6.18's exact reply bytes, and count memcached's `stats` counters.
//!
//! Known, deliberate differences from memcached 1.6.18 (everything else is meant to be
//! byte-identical; compare with `proto_text.c`):
//! * CAS values come from keel's store counter, so their numbers differ.
//! * `me`: `cls=` and `size=` are computed from memcached's default slab table (factor 1.25,
//!   48-byte item header, 8-byte CAS, 4 bytes of flags when non-zero), which matches memcached
//!   for items up to 512 KiB; chunked (larger) items differ.
//! * memcached remembers per item whether `ms` stored it with a base64 key (`b`), and `mg`/`me`
//!   show the item's key (`k`, `ME <key>`) in base64 plus ` b` only for such items. keel's items
//!   have no room for that bit: it shows a key in base64 when the request used `b` and the key
//!   is not printable ASCII, so an item stored with `ms <base64> b` whose key is printable comes
//!   back raw (memcached: base64), and one stored plain with a non-printable key and read with
//!   `b` comes back in base64 (memcached: raw). Other commands echo `k` in the request's form,
//!   as memcached does.
//! * mg and ma apply `T`, `N` and `R` in request order and show `t` as of its position, like
//!   memcached, through the store's order-aware `get_meta`/`arith_meta` (reached through `Ctx`,
//!   so a cluster node, whose replicated commands carry the order, answers exactly the same).
//! * `mg` flags after an over-long `O` token are not applied by memcached (it stops at the error);
//!   keel executes the whole command before answering `CLIENT_ERROR opaque token too long`.
//! * `lru_crawler`, `lru`, `watch`, `slabs` (no slab allocator) answer `ERROR`; `shutdown` answers
//!   memcached's `ERROR: shutdown not enabled`; `cache_memlimit` validates and answers `OK` without
//!   changing the limit; `stats detail` keeps no data; `stats cachedump` is empty.
//! * `get` with a key over 250 bytes drops every reply memcached would not have written yet
//!   (its `conn_release_items`): the replies in `out` after the last retrieval or `mn` (memcached
//!   flushes after those, and when its read buffer runs dry: at the end of the input, as keel's
//!   connection does, and after every request whose data block reached past its 16 KiB read
//!   buffer, which keel's connection also writes out: [`replies_flushed_after`]). memcached also
//!   flushes every 20 requests (`-R`); keel does not model that.

/// Unwrap an item operation's result; on `Unavailable` (cluster mode) answer
/// `SERVER_ERROR <why>` (unless `noreply`) and return from the executor.
macro_rules! try_op {
    ($out:expr, $noreply:expr, $e:expr) => {
        or_reply!($e, server_error($out, $noreply))
    };
}

mod admin;
mod arith;
mod batch;
mod delete_touch;
mod meta;
mod retrieval;
mod storage;
#[cfg(test)]
mod tests;

use memcache_proto::meta as meta_proto;
use memcache_proto::text::{self, Data, Request};
use memcache_proto::Parse;

use crate::{Ctx, Flow, Kind, Session, Step, Unavailable};

pub use batch::{finish_write, stage_write};

pub(crate) const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
pub(crate) const NON_NUMERIC: &[u8] =
    b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
pub(crate) const OPAQUE_TOO_LONG: &[u8] = b"CLIENT_ERROR opaque token too long\r\n";

/// What memcached's reply queue holds across the text requests of one connection, besides the
/// reply bytes: each `mg` hit's reply keeps a reference to its item until memcached writes it,
/// and an item referenced that way is never rewritten in place by incr/decr/`ma` (memcached's
/// `do_add_delta` links a new item instead: unpadded, fresh state bits, `T` not applied). Keys
/// are kept as hashes; the list is cleared whenever memcached would write its replies.
#[derive(Debug, Default, Clone)]
pub struct Unsent {
    pinned: Vec<u64>,
}

impl Unsent {
    /// memcached has written its pending replies and released their items.
    pub fn written(&mut self) {
        self.pinned.clear();
    }
    pub(crate) fn pin(&mut self, key: &[u8]) {
        let h = cache_store::hash_key(key);
        if !self.pinned.contains(&h) {
            self.pinned.push(h);
        }
    }
    /// The item under `key` was replaced or removed: a reply holding the old one does not hold it.
    pub(crate) fn unpin(&mut self, key: &[u8]) {
        if !self.pinned.is_empty() {
            let h = cache_store::hash_key(key);
            self.pinned.retain(|&p| p != h);
        }
    }
    pub(crate) fn is_pinned(&self, key: &[u8]) -> bool {
        !self.pinned.is_empty() && self.pinned.contains(&cache_store::hash_key(key))
    }
    /// Keep only the pins `other` also has: merges the copies that concurrently executed writes
    /// worked on (writes only ever unpin).
    pub fn keep_common(&mut self, other: &Unsent) {
        self.pinned.retain(|p| other.pinned.contains(p));
    }
}

/// Classify the first request in `input` without executing it: its kind, the input bytes it
/// takes (exact for [`Kind::Write`]) and the parsed request (`None` for a protocol error), so the
/// connection can execute it with [`process_parsed`] without parsing it twice; `None` if it is
/// incomplete.
pub fn classify<'a>(
    input: &'a [u8],
    ctx: &Ctx,
    unsent: &Unsent,
) -> Option<(Kind, usize, Option<Request<'a>>)> {
    let limits = memcache_proto::Limits {
        item_size_max: ctx.settings.item_size_max,
        max_line: ctx.settings.max_line,
        ..Default::default()
    };
    let (req, consumed) = match text::parse(input, &limits) {
        Parse::Incomplete => return None,
        Parse::Error { consumed, .. } => return Some((Kind::Other, consumed, None)),
        Parse::Request { req, consumed } => (req, consumed),
    };
    let small = !replies_flushed_after(consumed, 0);
    let fits = |key: &[u8], data: &Data<'_>, len: usize| {
        small && matches!(data, Data::Value(_)) && ctx.item_fits(key.len(), len)
    };
    let kind = match &req {
        Request::Get { cmd, .. } if !cmd.touches() => Kind::Read,
        Request::Store(r) if fits(r.key, &r.data, r.len) => Kind::Write,
        Request::Delete { .. } | Request::Touch { .. } => Kind::Write,
        Request::Arith { key, .. } if !unsent.is_pinned(key) => Kind::Write,
        Request::Meta(m) => match m.cmd {
            meta_proto::Cmd::Get
                if m.flags.ttl.is_none()
                    && m.flags.vivify.is_none()
                    && m.flags.recache.is_none() =>
            {
                Kind::Read
            }
            meta_proto::Cmd::Debug => Kind::Read,
            meta_proto::Cmd::Set if fits(m.key.as_bytes(), &m.data, m.len) => Kind::Write,
            meta_proto::Cmd::Delete => Kind::Write,
            meta_proto::Cmd::Arith if !unsent.is_pinned(m.key.as_bytes()) => Kind::Write,
            _ => Kind::Other,
        },
        _ => Kind::Other,
    };
    Some((kind, consumed, Some(req)))
}

/// Execute a request [`classify`] returned (it took `consumed` bytes of input).
pub async fn process_parsed(
    req: Request<'_>,
    consumed: usize,
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
) -> Step {
    let flow = execute(req, ctx, session, unsent, out).await;
    Step::Done { consumed, flow }
}

/// Handle the first request in `input`, appending replies to `out`.
pub async fn process(
    input: &[u8],
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
) -> Step {
    let limits = memcache_proto::Limits {
        item_size_max: ctx.settings.item_size_max,
        max_line: ctx.settings.max_line,
        ..Default::default()
    };
    match text::parse(input, &limits) {
        Parse::Incomplete => Step::Incomplete,
        Parse::Error {
            reply,
            consumed,
            swallow,
            close,
        } => {
            if close {
                // memcached's conn_closing discards every reply it has not written yet.
                out.truncate(unsent_start(out));
            }
            out.extend_from_slice(&reply);
            Step::Done {
                consumed,
                flow: Flow { close, swallow },
            }
        }
        Parse::Request { req, consumed } => {
            process_parsed(req, consumed, ctx, session, unsent, out).await
        }
    }
}

pub(crate) fn server_error(out: &mut Vec<u8>, noreply: bool, err: &Unavailable) {
    if !noreply {
        out.extend_from_slice(b"SERVER_ERROR ");
        out.extend_from_slice(err.0.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

pub(crate) fn reply(out: &mut Vec<u8>, noreply: bool, s: &[u8]) {
    if !noreply {
        out.extend_from_slice(s);
    }
}

async fn execute(
    req: Request<'_>,
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut Unsent,
    out: &mut Vec<u8>,
) -> Flow {
    match req {
        Request::Get { cmd, exptime, keys } => {
            retrieval::get(ctx, session, out, cmd, exptime, keys).await;
            // memcached writes its replies after every retrieval (and releases their items).
            unsent.written();
        }
        Request::Store(r) => return storage::store(ctx, session, unsent, out, &r).await,
        Request::Delete { key, noreply } => {
            delete_touch::delete(ctx, session, unsent, out, key, noreply).await
        }
        Request::Arith {
            incr,
            key,
            delta,
            noreply,
        } => arith::incr_decr(ctx, session, unsent, out, incr, key, delta, noreply).await,
        Request::Touch {
            key,
            exptime,
            noreply,
        } => delete_touch::touch(ctx, session, out, key, exptime, noreply).await,
        Request::FlushAll { exptime, noreply } => {
            admin::flush_all(ctx, session, unsent, out, exptime, noreply).await
        }
        Request::Version => admin::version(ctx, out),
        Request::Verbosity { level, noreply } => admin::verbosity(ctx, out, level, noreply),
        Request::Stats { group } => admin::stats(ctx, out, group),
        Request::StatsReset => admin::stats_reset(ctx, out),
        Request::Quit => {
            return Flow {
                close: true,
                swallow: 0,
            }
        }
        Request::Shutdown => admin::shutdown(out),
        Request::Static(s) => out.extend_from_slice(s),
        Request::Meta(m) => return meta::execute(ctx, session, unsent, out, &m).await,
    }
    Flow::default()
}
/// Whether memcached has written every pending reply once a request that used `consumed` input
/// bytes plus `swallow` discarded ones is done. memcached parses requests out of its 16 KiB read
/// buffer; a data block that reaches past it is read (`conn_nread`) or discarded
/// (`conn_swallow`) straight from the socket, exactly to its end, so the buffer is empty when
/// the request completes and `reset_cmd_handler` writes the replies (`conn_mwrite`) before
/// reading on. Those replies can no longer be dropped by a later error (see `unsent_start`),
/// so the connection writes them out at that point too. (A shorter request may or may not
/// end memcached's buffer, depending on how its reads fell; that is not modelled.)
pub fn replies_flushed_after(consumed: usize, swallow: usize) -> bool {
    consumed.saturating_add(swallow) > text::READ_BUFFER_SIZE
}

/// Where the replies memcached would still hold unsent begin in `out` (a batch of this
/// connection's replies, starting at a reply boundary). memcached writes its pending replies out
/// right after every retrieval (`get`/`gets`/`gat`/`gats`/`bget`, whose reply ends in `END`) and
/// after `mn`; everything after the last such reply is what `conn_release_items` discards.
pub(crate) fn unsent_start(out: &[u8]) -> usize {
    fn field(line: &[u8], idx: usize) -> Option<usize> {
        let f = line.split(|&b| b == b' ').nth(idx)?;
        std::str::from_utf8(f).ok()?.parse().ok()
    }
    let mut i = 0;
    let mut keep = 0;
    let mut after_stat = false;
    while i < out.len() {
        let Some(nl) = out[i..].windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let line = &out[i..i + nl];
        let mut next = i + nl + 2;
        if line.starts_with(b"VALUE ") {
            next += field(line, 3).unwrap_or(0) + 2;
        } else if line.starts_with(b"VA ") {
            next += field(line, 1).unwrap_or(0) + 2;
        }
        if (line == b"END" && !after_stat) || line == b"MN" {
            keep = next.min(out.len());
        }
        after_stat = line.starts_with(b"STAT ");
        i = next;
    }
    keep
}
