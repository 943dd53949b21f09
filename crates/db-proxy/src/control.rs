//! A tiny HTTP/1.0 endpoint for the proxy's own `--metrics-listen`: `GET /metrics` (Prometheus
//! text), `GET /status` (JSON [`crate::ProxyStatus`]), `POST /drain/NODE` and
//! `POST /undrain/NODE` ([`crate::drain_backends`]). keel's node control API can serve the same
//! through [`crate::Observer`]. Requests are bounded (8 KiB, 5 s); one connection per request.

use crate::{drain_backends, Shared};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;

pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let sock = tokio::select! {
            r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue } },
            _ = shutdown.changed() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = timeout(Duration::from_secs(30), one(shared, sock)).await;
        });
    }
}

async fn one(shared: Arc<Shared>, mut sock: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        let n = match timeout(Duration::from_secs(5), sock.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 8192 {
            return respond(&mut sock, 431, "text/plain", "request too large\n").await;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match (method, path) {
        ("GET", "/metrics") => {
            respond(
                &mut sock,
                200,
                "text/plain; version=0.0.4",
                &shared.metrics_text(),
            )
            .await
        }
        ("GET", "/status") => {
            let body =
                serde_json::to_string_pretty(&shared.status()).unwrap_or_else(|_| "{}".into());
            respond(&mut sock, 200, "application/json", &(body + "\n")).await
        }
        ("POST", p) if p.starts_with("/drain/") || p.starts_with("/undrain/") => {
            let on = p.starts_with("/drain/");
            let node = p.rsplit('/').next().unwrap_or("");
            match drain_backends(&shared.cfg, node, on).await {
                Ok(r) => {
                    let body = serde_json::to_string_pretty(&r).unwrap_or_default();
                    respond(&mut sock, 200, "application/json", &(body + "\n")).await
                }
                Err(e) => respond(&mut sock, 409, "text/plain", &format!("{e}\n")).await,
            }
        }
        _ => {
            respond(
                &mut sock,
                404,
                "text/plain",
                "not found: GET /metrics, GET /status, POST /drain/NODE, POST /undrain/NODE\n",
            )
            .await
        }
    }
}

async fn respond(sock: &mut TcpStream, code: u16, ctype: &str, body: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.0 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body.as_bytes()).await?;
    sock.shutdown().await
}
