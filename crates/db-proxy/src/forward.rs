//! Client connections: accept, the connection limit, waiting for a writer, and a two-way copy
//! with half-close to the writer. The proxy never parses what clients send (the client
//! authenticates with the database itself), so garbage is forwarded and the server drops it.
//!
//! A forwarded connection is closed by the proxy when its node goes down, or when the writer
//! moves to another node (at once, so two writers never coexist; after `drain_timeout` when the
//! old node was drained, so its transactions can finish). Each connection is its own task with
//! its own buffers: a slow client never stalls another.

use crate::protocol::{greeting_error, ER_CON_COUNT_ERROR, ER_UNKNOWN_ERROR};
use crate::{Route, Shared};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{sleep, timeout, Instant};

/// Accepts until shutdown.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(shared.cfg.max_connections));
    loop {
        let (sock, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        shared.metrics.accepted.fetch_add(1, Relaxed);
        let _ = sock.set_nodelay(true);
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    handle(shared, sock, shutdown).await;
                    drop(permit);
                });
            }
            Err(_) => {
                shared.metrics.rejected_limit.fetch_add(1, Relaxed);
                let max = shared.cfg.max_connections;
                tokio::spawn(async move {
                    let msg = format!("Too many connections (keel db-proxy limit: {max})");
                    refuse(sock, ER_CON_COUNT_ERROR, &msg).await;
                });
            }
        }
    }
}

/// Sends an error packet as the server's first packet and closes.
async fn refuse(mut sock: TcpStream, code: u16, msg: &str) {
    let _ = timeout(Duration::from_secs(2), async {
        let _ = sock.write_all(&greeting_error(code, msg)).await;
        let _ = sock.shutdown().await;
    })
    .await;
}

async fn handle(shared: Arc<Shared>, client: TcpStream, mut shutdown: watch::Receiver<bool>) {
    let cfg = &shared.cfg;
    let deadline = Instant::now() + cfg.connect_wait;
    let mut rx = shared.route.subscribe();
    let mut last_error = String::new();
    // A MySQL client sends nothing before the server's greeting, so readable data while waiting
    // is either EOF (the client gave up: free its slot now) or garbage (stop watching).
    let mut watch_client = true;
    let (idx, server) = loop {
        let route = rx.borrow_and_update().clone();
        if let Some(w) = route.writer.filter(|w| !route.down[*w]) {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(
                cfg.backend_connect_timeout
                    .min(left.max(Duration::from_millis(1))),
                TcpStream::connect(cfg.backends[w].addr),
            )
            .await
            {
                Ok(Ok(s)) => break (w, s),
                Ok(Err(e)) => last_error = format!("{}: {e}", cfg.backends[w].name),
                Err(_) => last_error = format!("{}: connect timed out", cfg.backends[w].name),
            }
            // The writer refused: wait a moment or for a new route.
            tokio::select! {
                _ = rx.changed() => {}
                _ = sleep(Duration::from_millis(100)) => {}
                _ = shutdown.changed() => return,
            }
        } else {
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.changed() => return,
                gone = client_gone(&client), if watch_client => {
                    if gone { return; }
                    watch_client = false;
                }
            }
        }
        if Instant::now() >= deadline {
            shared.metrics.rejected_no_writer.fetch_add(1, Relaxed);
            let route = rx.borrow().clone();
            let mut why = if route.reason.is_empty() {
                "no writer".to_string()
            } else {
                route.reason.clone()
            };
            if !last_error.is_empty() {
                why = format!("{why}; last attempt: {last_error}");
            }
            let msg = format!("keel db-proxy: no Galera node can take this connection after waiting {:.1} s: {why}", cfg.connect_wait.as_secs_f64());
            refuse(client, ER_UNKNOWN_ERROR, &msg).await;
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let m = &shared.metrics.backends[idx];
    m.total.fetch_add(1, Relaxed);
    m.active.fetch_add(1, Relaxed);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let copy = async {
        tokio::try_join!(
            copy(cr, sw, &m.bytes_to_server),
            copy(sr, cw, &m.bytes_to_client)
        )
        .map(|_| ())
    };
    tokio::select! {
        _ = copy => {}
        why = must_close(rx, idx, cfg.drain_timeout) => {
            m.closed_by_proxy.fetch_add(1, Relaxed);
            let _ = why;
        }
        _ = shutdown.changed() => {}
    }
    m.active.fetch_sub(1, Relaxed);
}

/// Waits until the client socket is readable: true when it was closed (or failed).
async fn client_gone(client: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(client.peek(&mut b).await, Ok(0) | Err(_))
}

/// Copies until EOF, then half-closes the other side.
async fn copy(mut r: OwnedReadHalf, mut w: OwnedWriteHalf, counter: &AtomicU64) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            w.shutdown().await?;
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Relaxed);
    }
}

/// Resolves when the connection to backend `idx` must be closed: the node went down, or the
/// writer moved elsewhere (after `grace` when `idx` is drained).
async fn must_close(mut rx: watch::Receiver<Route>, idx: usize, grace: Duration) -> &'static str {
    loop {
        let (down, moved, drained) = {
            let r = rx.borrow_and_update();
            (
                r.down[idx],
                r.writer.is_some_and(|w| w != idx),
                r.drained[idx],
            )
        };
        if down {
            return "node down";
        }
        if moved {
            if !drained {
                return "writer moved";
            }
            // Drained: let transactions finish, but still close at once if the node goes down.
            let end = Instant::now() + grace;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(end) => return "drain timeout",
                    r = rx.changed() => {
                        if r.is_err() || rx.borrow().down[idx] { return "node down"; }
                    }
                }
            }
        }
        if rx.changed().await.is_err() {
            return "proxy stopped";
        }
    }
}
