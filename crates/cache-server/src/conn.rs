//! One client connection: buffers, protocol detection, pipelining and back-pressure.
//!
//! The loop parses and executes every complete request already buffered, collects the replies in
//! one output buffer and writes them with one call, then reads again. It never reads more input
//! while replies are unwritten, so a client that does not read its replies stalls only itself and
//! the memory it can pin is bounded by one read and [`OUT_HIGH_WATER`] of replies (plus the one
//! request being answered). Idle connections hold no read buffer at all.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::stats::ConnInfo;
use crate::{binary_exec, text_exec, Ctx, Session, Step};

/// Replies are flushed to the socket once this many bytes are pending, even mid-batch.
pub const OUT_HIGH_WATER: usize = 256 * 1024;
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
        peer: stream.peer_addr().unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
        local: stream.local_addr().unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
        last_cmd: ctx.now().into(),
    });
    ctx.stats.conns.lock().insert(id, info.clone());
    if ctx.settings.verbose > 1 {
        eprintln!("<{id} new client connection from {}", info.peer);
    }
    let result = run(&mut stream, &ctx, id, &info, &mut shutdown).await;
    if ctx.settings.verbose > 1 {
        match result {
            Ok(()) => eprintln!("<{id} connection closed."),
            Err(e) => eprintln!("<{id} connection closed: {e}"),
        }
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
    let mut session = Session { id, ..Session::default() };
    let mut proto: Option<Proto> = None;
    let mut swallow = 0usize;
    let mut unsent = text_exec::Unsent::default();
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
            let p = *proto.get_or_insert(if buf[0] == 0x80 { Proto::Binary } else { Proto::Text });
            let step = match p {
                Proto::Text => text_exec::process(&buf, ctx, &mut session, &mut unsent, &mut out).await,
                Proto::Binary => binary_exec::process(&buf, ctx, &mut session, &mut out).await,
            };
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
                    // can no longer discard them (`text_exec::unsent_start`).
                    let flushed = p == Proto::Text && text_exec::replies_flushed_after(consumed, flow.swallow);
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
                session.stats.bytes_read += n as u64;
                info.last_cmd.store(ctx.now(), Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
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

async fn write_out(stream: &mut TcpStream, out: &mut Vec<u8>, session: &mut Session) -> io::Result<()> {
    stream.write_all(out).await?;
    session.stats.bytes_written += out.len() as u64;
    out.clear();
    Ok(())
}
