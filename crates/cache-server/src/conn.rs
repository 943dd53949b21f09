//! One client connection: buffers, protocol detection, pipelining and back-pressure.
//!
//! The loop parses and executes every complete request already buffered, collects the replies in
//! one output buffer and writes them with one call, then reads again. It never reads more input
//! while replies are unwritten, so a client that does not read its replies stalls only itself and
//! the memory it can pin is bounded by one read and [`OUT_HIGH_WATER`] of replies (plus the one
//! request being answered). Idle connections hold no read buffer at all.
//!
//! Cluster mode, where a write waits for a Raft commit and a read for a read barrier: a run of
//! consecutive text writes whose reply needs only their outcome (storage commands, delete, touch,
//! incr/decr: [`text::stage_write`]) is encoded as it is parsed and queued for replication as
//! one unit, then answered in order from the outcomes (`run_staged`); any other run of pure
//! writes ([`Kind::Write`]: meta and binary ones) is executed concurrently (each is
//! queued when it starts, in request order, so they share the node's next log entry and apply in
//! order; replies are assembled in request order); every other request starts only after every
//! earlier one finished. Reads of one received batch share one read barrier (the
//! session's read fence, invalidated when input arrives and after every request that is not a
//! plain read).

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::trace;

use crate::stats::ConnInfo;
use crate::Kind;
use crate::{binary, text, Ctx, Session, Step, Unavailable, PROTOCOL_TARGET};

/// Replies are flushed to the socket once this many bytes are pending, even mid-batch.
pub const OUT_HIGH_WATER: usize = 256 * 1024;
/// Most requests one concurrent run of pure writes holds (cluster mode).
const MAX_WRITE_RUN: usize = 1024;
/// Bytes reserved for each read.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Text,
    Binary,
}

/// Serve one accepted connection until the client leaves, asks to quit, or the server shuts down.
pub async fn serve(mut stream: TcpStream, ctx: Ctx, id: u64, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let info = Arc::new(ConnInfo {
        peer: stream
            .peer_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
        local: stream
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
        last_cmd: ctx.now().into(),
    });
    ctx.stats.conns.lock().insert(id, info.clone());
    trace!(target: PROTOCOL_TARGET, "<{id} new client connection from {}", info.peer);
    let result = run(&mut stream, &ctx, id, &info, &mut shutdown).await;
    match result {
        Ok(()) => trace!(target: PROTOCOL_TARGET, "<{id} connection closed."),
        Err(e) => trace!(target: PROTOCOL_TARGET, "<{id} connection closed: {e}"),
    }
    ctx.stats.conns.lock().remove(&id);
}

async fn run(
    stream: &mut TcpStream,
    ctx: &Ctx,
    id: u64,
    info: &ConnInfo,
    shutdown: &mut watch::Receiver<bool>,
) -> io::Result<()> {
    let mut buf = BytesMut::new();
    let mut out: Vec<u8> = Vec::new();
    let mut session = Session {
        id,
        ..Session::default()
    };
    let mut proto: Option<Proto> = None;
    let mut swallow = 0usize;
    let mut unsent = text::Unsent::default();
    loop {
        // Execute everything that is buffered.
        let mut close = false;
        loop {
            if swallow > 0 {
                let n = swallow.min(buf.len());
                buf.advance(n);
                swallow -= n;
            }
            if buf.is_empty() || swallow > 0 {
                break;
            }
            let p = *proto.get_or_insert(if buf[0] == 0x80 {
                Proto::Binary
            } else {
                Proto::Text
            });
            let mut invalidate = false;
            // Cluster mode classifies each request first; a text request is executed as parsed.
            let mut parsed = None;
            if ctx.cluster.is_some() {
                let Some((kind, consumed, req)) = classify(p, &buf, ctx, &unsent) else {
                    break;
                };
                match kind {
                    Kind::Write => {
                        let n =
                            run_writes(p, &buf, consumed, ctx, &mut session, &mut unsent, &mut out)
                                .await;
                        if n > 0 {
                            buf.advance(n);
                            session.fence.invalidate();
                            if out.len() >= OUT_HIGH_WATER {
                                write_out(stream, &mut out, &mut session).await?;
                            }
                            continue;
                        }
                        // A single write: executed below like any request.
                        invalidate = true;
                    }
                    Kind::Read => {}
                    Kind::Other => invalidate = true,
                }
                parsed = req.map(|req| (req, consumed));
            }
            let step = match (p, parsed) {
                (Proto::Text, Some((req, consumed))) => {
                    text::process_parsed(req, consumed, ctx, &mut session, &mut unsent, &mut out)
                        .await
                }
                (Proto::Text, None) => {
                    text::process(&buf, ctx, &mut session, &mut unsent, &mut out).await
                }
                (Proto::Binary, _) => binary::process(&buf, ctx, &mut session, &mut out).await,
            };
            if invalidate {
                session.fence.invalidate();
            }
            match step {
                Step::Done { consumed, flow } => {
                    buf.advance(consumed.min(buf.len()));
                    swallow = flow.swallow;
                    if flow.close {
                        close = true;
                        break;
                    }
                    // memcached writes its replies whenever its read buffer runs dry, which a
                    // request with a large data block always causes; after that, a later error
                    // can no longer discard them (`text::unsent_start`).
                    let flushed =
                        p == Proto::Text && text::replies_flushed_after(consumed, flow.swallow);
                    if flushed {
                        unsent.written();
                    }
                    if out.len() >= OUT_HIGH_WATER || (flushed && !out.is_empty()) {
                        write_out(stream, &mut out, &mut session).await?;
                    }
                }
                Step::Incomplete => break,
            }
        }
        if !out.is_empty() {
            write_out(stream, &mut out, &mut session).await?;
        }
        // Out of input: memcached writes its replies and releases the items they hold.
        unsent.written();
        ctx.stats.counters.absorb(&mut session.stats);
        if close {
            linger_close(stream).await;
            return Ok(());
        }
        if buf.is_empty() && buf.capacity() > 0 {
            // Idle connections (10 000 of them are fine) keep no read buffer.
            buf = BytesMut::new();
        }
        if out.capacity() > OUT_HIGH_WATER * 2 {
            out = Vec::new();
        }
        // Wait for input (no buffer is held while idle), or for shutdown.
        tokio::select! {
            r = stream.readable() => r?,
            _ = shutdown.changed() => return Ok(()),
        }
        buf.reserve(READ_CHUNK);
        match stream.try_read_buf(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                // Requests received from now on may follow writes the current fence missed.
                session.fence.invalidate();
                session.stats.bytes_read += n as u64;
                info.last_cmd.store(ctx.now(), Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// The first request's kind, the bytes it takes and, for text, the request as parsed (so it is
/// executed without parsing it again); `None` if it is incomplete.
fn classify<'a>(
    p: Proto,
    input: &'a [u8],
    ctx: &Ctx,
    unsent: &text::Unsent,
) -> Option<(Kind, usize, Option<memcache_proto::text::Request<'a>>)> {
    match p {
        Proto::Text => text::classify(input, ctx, unsent),
        Proto::Binary => {
            binary::classify(input, ctx).map(|(kind, consumed)| (kind, consumed, None))
        }
    }
}

/// Cluster mode: execute the run of consecutive pure writes at the start of `buf` (the first
/// takes `first` bytes) concurrently, append their replies in order, and return the bytes they
/// took; 0 (nothing done) when the run is a single write.
async fn run_writes(
    p: Proto,
    buf: &[u8],
    first: usize,
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut text::Unsent,
    out: &mut Vec<u8>,
) -> usize {
    if p == Proto::Text {
        let n = run_staged(buf, ctx, session, unsent, out).await;
        if n > 0 {
            return n;
        }
    }
    let mut starts = vec![0];
    let mut end = first;
    while starts.len() < MAX_WRITE_RUN && end < buf.len() {
        match classify(p, &buf[end..], ctx, unsent) {
            Some((Kind::Write, n, _)) => {
                starts.push(end);
                end += n;
            }
            _ => break,
        }
    }
    if starts.len() == 1 {
        return 0;
    }
    let id = session.id;
    // Each write runs on its own session counters, pin list and reply buffer. Every one is
    // polled once, in order, before any is polled again, so each queues its command in request
    // order (the executors do not wait before queueing a pure write).
    // Boxed where they are made: an executor's future is a few KiB, and moving each through a
    // vector first cost the leader ~5 % of its CPU in memcpy at depth 64.
    let futs: Vec<_> = starts
        .iter()
        .map(|&at| {
            let input = &buf[at..];
            let mut u = unsent.clone();
            Box::pin(async move {
                let mut s = Session {
                    id,
                    ..Session::default()
                };
                let mut o = Vec::new();
                let _ = match p {
                    Proto::Text => text::process(input, ctx, &mut s, &mut u, &mut o).await,
                    Proto::Binary => binary::process(input, ctx, &mut s, &mut o).await,
                };
                (s, u, o)
            })
        })
        .collect();
    for (mut s, u, o) in join_ordered(futs).await {
        ctx.stats.counters.absorb(&mut s.stats);
        unsent.keep_common(&u);
        out.extend_from_slice(&o);
    }
    end
}

/// Cluster mode, text protocol: execute the run of consecutive [`text::stage_write`] writes at
/// the start of `buf` as one unit: each request's command is encoded in order (from views of
/// the input: no command of its own, no copy of its key and value), the commands go to the
/// node's proposer together ([`cache_cluster::Cluster::write_many`]: one hand-off, one wake-up,
/// one entry), and the replies are made from the outcomes in order. Returns the bytes the run
/// took (0 if the first request is not such a write).
async fn run_staged(
    buf: &[u8],
    ctx: &Ctx,
    session: &mut Session,
    unsent: &mut text::Unsent,
    out: &mut Vec<u8>,
) -> usize {
    let Some(cluster) = &ctx.cluster else {
        return 0;
    };
    let mut reqs = Vec::new();
    let mut cmds = cache_cluster::Packer::default();
    let mut end = 0;
    while reqs.len() < MAX_WRITE_RUN && end < buf.len() {
        let Some((Kind::Write, n, Some(req))) = text::classify(&buf[end..], ctx, unsent) else {
            break;
        };
        let Some(cmd) = text::stage_write(&req, ctx, session, unsent) else {
            break;
        };
        cmds.push(&cmd);
        reqs.push(req);
        end += n;
    }
    if reqs.is_empty() {
        return 0;
    }
    match cluster.write_many(cmds).await {
        Ok(outs) if outs.len() == reqs.len() => {
            for (req, o) in reqs.iter().zip(&outs) {
                text::finish_write(req, Ok(o), session, unsent, out);
            }
        }
        r => {
            let e = r
                .err()
                .map(Unavailable::from)
                .unwrap_or_else(|| Unavailable("batch outcome mismatch".into()));
            for req in &reqs {
                text::finish_write(req, Err(e.clone()), session, unsent, out);
            }
        }
    }
    end
}

/// Await every future; on each wake-up poll the unfinished ones in order (so the first poll of
/// future `i` happens before the first poll of `i + 1`). Results in input order.
async fn join_ordered<F: Future + Unpin>(mut futs: Vec<F>) -> Vec<F::Output> {
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    let mut left = futs.len();
    std::future::poll_fn(|cx| {
        for (f, o) in futs.iter_mut().zip(outs.iter_mut()) {
            if o.is_none() {
                if let Poll::Ready(v) = Pin::new(&mut *f).poll(cx) {
                    *o = Some(v);
                    left -= 1;
                }
            }
        }
        if left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outs.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// Close after a final reply without losing it: closing a socket that still has unread input
/// makes the kernel send a reset, which can discard the reply in flight. So send FIN first, then
/// drain (briefly, boundedly) whatever the client still sends.
async fn linger_close(stream: &mut TcpStream) {
    use tokio::io::AsyncReadExt;
    let _ = stream.shutdown().await;
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), async {
        let mut total = 0usize;
        while total < (1 << 20) {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

async fn write_out(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    session: &mut Session,
) -> io::Result<()> {
    stream.write_all(out).await?;
    session.stats.bytes_written += out.len() as u64;
    out.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Every future is first polled in input order (which is what queues pipelined writes in
    /// request order), and the results come back in input order whatever order they finish in.
    #[tokio::test]
    async fn join_ordered_polls_in_order_and_keeps_order() {
        let log = Mutex::new(Vec::new());
        let futs: Vec<_> = (0..5u64)
            .map(|i| {
                let log = &log;
                Box::pin(async move {
                    log.lock().unwrap().push(i);
                    // Later ones finish first.
                    tokio::time::sleep(std::time::Duration::from_millis(10 * (5 - i))).await;
                    i * 10
                })
            })
            .collect();
        assert_eq!(join_ordered(futs).await, vec![0, 10, 20, 30, 40]);
        assert_eq!(*log.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn classify_sorts_requests() {
        let ctx = Ctx::new(crate::Settings::default());
        let unsent = text::Unsent::default();
        let k = |input: &[u8]| {
            classify(Proto::Text, input, &ctx, &unsent).map(|(kind, n, _)| (kind, n))
        };
        assert_eq!(k(b"set a 0 0 1\r\nx\r\nget a\r\n"), Some((Kind::Write, 16)));
        assert_eq!(k(b"set a 0 0 1\r\nx"), None);
        assert_eq!(k(b"get a b\r\n"), Some((Kind::Read, 9)));
        assert_eq!(k(b"gat 10 a\r\n").map(|x| x.0), Some(Kind::Other));
        assert_eq!(k(b"incr a 1\r\n").map(|x| x.0), Some(Kind::Write));
        assert_eq!(k(b"mg a v\r\n").map(|x| x.0), Some(Kind::Read));
        assert_eq!(k(b"mg a v T30\r\n").map(|x| x.0), Some(Kind::Other));
        assert_eq!(k(b"ms a 1 c\r\nx\r\n").map(|x| x.0), Some(Kind::Write));
        assert_eq!(k(b"flush_all\r\n").map(|x| x.0), Some(Kind::Other));
        assert_eq!(k(b"mn\r\n").map(|x| x.0), Some(Kind::Other));
        assert_eq!(k(b"bogus\r\n").map(|x| x.0), Some(Kind::Other));
        // A value larger than memcached's read buffer makes it flush its replies: not pure.
        let mut big = b"set a 0 0 20000\r\n".to_vec();
        big.extend(vec![b'x'; 20000]);
        big.extend_from_slice(b"\r\n");
        assert_eq!(k(&big).map(|x| x.0), Some(Kind::Other));
        // Binary: a get is a read, a quiet set a write, an incr that may create is not pure.
        let get = [
            0x80u8, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'k',
        ];
        assert_eq!(
            classify(Proto::Binary, &get, &ctx, &unsent).map(|(kind, n, _)| (kind, n)),
            Some((Kind::Read, 25))
        );
        let mut incr = vec![
            0x80u8, 0x05, 0, 1, 20, 0, 0, 0, 0, 0, 0, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        incr.extend_from_slice(&[
            0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'k',
        ]);
        assert_eq!(
            classify(Proto::Binary, &incr, &ctx, &unsent).map(|x| x.0),
            Some(Kind::Other)
        );
        incr[40..44].copy_from_slice(&[0xff; 4]);
        assert_eq!(
            classify(Proto::Binary, &incr, &ctx, &unsent).map(|x| x.0),
            Some(Kind::Write)
        );
    }
}
