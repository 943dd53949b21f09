//! The control API (the table in the crate docs) as an axum Router. The agent is thread-based;
//! the API gets one thread with its own single-threaded tokio runtime, so it answers whether or
//! not the node runs a db-proxy. `/status` and `/metrics` are the db-proxy's own routes
//! ([`db_proxy::control::proxy_routes`]).

use crate::Shared;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use db_proxy::control::{proxy_routes, reply};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const JSON: &str = "application/json";

/// Serves the control API on `listener` for the life of the process.
pub(crate) fn serve_control(sh: Arc<Shared>, listener: TcpListener) {
    let addr = listener.local_addr().ok();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(addr = ?addr, error = %e, "control API: cannot start a runtime");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = ?addr, error = %e, "control API: cannot listen");
                return;
            }
        };
        db_proxy::control::serve(listener, router(sh), std::future::pending()).await
    });
}

/// Every route of the control API. An unknown path, or a known one with another method, is 404
/// for GET and POST and 405 for any other method.
pub(crate) fn router(sh: Arc<Shared>) -> Router {
    let proxy = {
        let sh = sh.clone();
        Arc::new(move || sh.observer().ok_or_else(|| sh.st().proxy.state.clone()))
    };
    let with = |f: fn(&Shared) -> Response| {
        let sh = sh.clone();
        move || async move { f(&sh) }
    };
    // A request that changes something runs only with the tier's control token.
    let changing = |f: fn(&Shared) -> Response| {
        let sh = sh.clone();
        move |uri: Uri, headers: HeaderMap| async move {
            match sh.control.refusal(&headers) {
                None => f(&sh),
                Some(refused) => {
                    tracing::warn!(node = %sh.node, path = %uri.path(), status = refused.status().as_u16(), "control request refused");
                    refused
                }
            }
        }
    };
    proxy_routes(proxy, sh.control.clone())
        .route("/state", get(with(state)))
        .route("/health", get(with(health)))
        .route("/bootstrap/force", post(changing(force_bootstrap)))
        .route("/shutdown", post(changing(shutdown)))
        .fallback(unmatched)
        .method_not_allowed_fallback(unmatched)
}

async fn unmatched(method: Method) -> Response {
    if method == Method::GET || method == Method::POST {
        reply(StatusCode::NOT_FOUND, "text/plain", "not found\n")
    } else {
        reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        )
    }
}

fn state(sh: &Shared) -> Response {
    let status = sh.observer().map(|o| o.status());
    let mut st = sh.st().clone();
    st.proxy.status = status;
    let body = serde_json::to_string(&st).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    reply(StatusCode::OK, JSON, body)
}

fn health(sh: &Shared) -> Response {
    if sh.st().db.healthy {
        reply(StatusCode::OK, "text/plain", "ok\n")
    } else {
        reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n")
    }
}

fn force_bootstrap(sh: &Shared) -> Response {
    let mut st = sh.st();
    st.report.force_bootstrap = true;
    let body = serde_json::json!({
        "ok": true,
        "node": st.name,
        "message": "this node will bootstrap the cluster from its own data",
        "position": st.db.seqno,
    });
    let node = st.name.clone();
    drop(st);
    tracing::info!(node = %node, "operator forced this node to bootstrap");
    reply(StatusCode::OK, JSON, body.to_string())
}

fn shutdown(sh: &Shared) -> Response {
    sh.shutdown.store(true, Ordering::SeqCst);
    tracing::info!(node = %sh.st().name, "shutdown requested over the control API");
    reply(StatusCode::OK, JSON, "{\"ok\":true}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{request, request_with_token};
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;
    use std::time::Duration;

    fn agent() -> (Arc<Shared>, String) {
        let sh = Arc::new(Shared {
            node: "n1".into(),
            state: Mutex::new(crate::NodeState::new(
                "n1",
                "c",
                "127.0.0.1:1".into(),
                "127.0.0.1:2".into(),
            )),
            proxy: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            control: db_proxy::control::ControlAuth {
                token: Some("s3cret-token".into()),
                metrics_need_token: false,
            },
        });
        sh.st().proxy.state = "disabled".into();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let s = sh.clone();
        std::thread::spawn(move || serve_control(s, l));
        (sh, addr)
    }

    fn raw(addr: &str, bytes: &[u8]) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn every_route_and_the_bad_requests() {
        let (sh, addr) = agent();
        let t = Duration::from_secs(5);
        let (code, body) = request(&addr, "GET", "/state", t).unwrap();
        assert_eq!(code, 200);
        let st: crate::NodeState = serde_json::from_str(&body).unwrap();
        assert_eq!(st.name, "n1");
        let r = |m, p| request(&addr, m, p, t).unwrap();
        assert_eq!(r("GET", "/health"), (503, "not ready\n".into()));
        sh.st().db.healthy = true;
        assert_eq!(r("GET", "/health"), (200, "ok\n".into()));
        assert_eq!(r("GET", "/status"), (503, "db-proxy: disabled\n".into()));
        assert_eq!(r("GET", "/metrics"), (503, "db-proxy: disabled\n".into()));
        // Without the token, or with another, nothing changes.
        let (code, body) = r("POST", "/bootstrap/force");
        assert_eq!(code, 401, "{body}");
        let bad = |p| request_with_token(&addr, "POST", p, Some("s3cret-tokeN"), t).unwrap();
        assert_eq!(bad("/bootstrap/force").0, 403);
        assert_eq!(bad("/shutdown").0, 403);
        assert_eq!(r("POST", "/shutdown").0, 401);
        let out = raw(
            &addr,
            b"POST /shutdown HTTP/1.0\r\nAuthorization: Basic czNjcmV0LXRva2Vu\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.0 401"), "{out}");
        assert!(!sh.st().report.force_bootstrap);
        assert!(!sh.stopping());
        let ok = |p| request_with_token(&addr, "POST", p, Some("s3cret-token"), t).unwrap();
        let (code, body) = ok("/bootstrap/force");
        assert_eq!(code, 200);
        assert!(
            body.contains("\"ok\":true") && body.contains("\"node\":\"n1\""),
            "{body}"
        );
        assert!(sh.st().report.force_bootstrap);
        // Unknown paths, and known paths with another method: 404 for GET and POST, else 405.
        assert_eq!(r("GET", "/nowhere"), (404, "not found\n".into()));
        assert_eq!(r("POST", "/state"), (404, "not found\n".into()));
        assert_eq!(r("GET", "/shutdown"), (404, "not found\n".into()));
        assert_eq!(r("PUT", "/state"), (405, "method not allowed\n".into()));
        assert_eq!(
            r("DELETE", "/nowhere"),
            (405, "method not allowed\n".into())
        );
        // Garbage on the port: that connection ends, the server keeps answering.
        let out = raw(&addr, b"\x00\x01\x02garbage\r\n\r\n");
        assert!(out.is_empty() || out.starts_with("HTTP/1.1 400"), "{out:?}");
        let out = raw(&addr, b"GET /health HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.0 200"), "{out}");
        assert!(out.contains("content-type: text/plain\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nok\n"), "{out}");
        assert!(!sh.stopping());
        assert_eq!(ok("/shutdown"), (200, "{\"ok\":true}".into()));
        assert!(sh.shutdown.load(Ordering::SeqCst));
    }
}
