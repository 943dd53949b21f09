//! HTTP for keel's control endpoints, both ends, so every control and metrics request keel makes
//! or answers goes through one stack: axum serves, [`request`] (ureq, blocking) asks.
//!
//! The proxy's own `--metrics-listen` endpoint ([`router`]): `GET /metrics` (Prometheus text),
//! `GET /status` (JSON [`crate::ProxyStatus`]), `POST /drain/NODE` and `POST /undrain/NODE`
//! ([`crate::drain_backends`]). keel's node control API serves the same `/metrics` and `/status`
//! by merging [`proxy_routes`] into its own router.
//!
//! A request that changes something (`POST`) must carry the tier's control token
//! ([`ControlAuth`]); the `GET` routes answer anyone, `/metrics` too unless the tier asks
//! otherwise.
//!
//! The client lives here rather than in the node agent because [`crate::fetch_status`] needs it
//! and the node agent depends on this crate, not the other way round.

use crate::{drain_backends, metrics, Observer, ProxyStatus, Shared};
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Where [`proxy_routes`] find the proxy: the standalone proxy always has one; a node agent's
/// may not run (yet), and the `Err` says why (answered as 503).
pub type ProxySource = Arc<dyn Fn() -> Result<Observer, String> + Send + Sync>;

/// Who may change things through a control endpoint: requests carrying `Authorization: Bearer
/// TOKEN` with the tier's token (`[control]` of the cluster description).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ControlAuth {
    /// `None`: no token configured, so every request that changes something is refused.
    pub token: Option<Arc<str>>,
    /// `GET /metrics` needs the token too.
    pub metrics_need_token: bool,
}

impl ControlAuth {
    /// The settings of a cluster description's `[control]`.
    pub fn from_cluster(
        cluster: &cluster_config::ClusterConfig,
    ) -> Result<ControlAuth, cluster_config::ConfigError> {
        Ok(ControlAuth {
            token: cluster.control_token()?.map(Arc::from),
            metrics_need_token: cluster.control.metrics_need_token,
        })
    }

    /// `None` when `headers` carry the token; otherwise the answer to give instead, and nothing
    /// may change: 401 without `Authorization: Bearer`, 403 with another token or when no token
    /// is configured.
    pub fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let Some(token) = &self.token else {
            return Some(reply(
                StatusCode::FORBIDDEN,
                "text/plain",
                "refused: this node has no control token ([control] token_file), so nothing may \
                 be changed through its control API\n",
            ));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => Some((
                StatusCode::UNAUTHORIZED,
                [
                    (header::CONTENT_TYPE, "text/plain"),
                    (header::WWW_AUTHENTICATE, "Bearer"),
                ],
                "the control token is needed: Authorization: Bearer TOKEN ([control] token_file)\n",
            )
                .into_response()),
            Some(g) if same_secret(g.as_bytes(), token.as_bytes()) => None,
            Some(_) => Some(reply(
                StatusCode::FORBIDDEN,
                "text/plain",
                "refused: wrong control token\n",
            )),
        }
    }
}

/// Equal secrets, compared in time that does not depend on where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// A complete answer: status, `Content-Type` and body.
pub fn reply(code: StatusCode, content_type: &'static str, body: impl Into<String>) -> Response {
    (code, [(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

/// `serde_json`'s pretty form plus a newline, as `curl` users expect.
pub fn json_pretty<T: serde::Serialize>(v: &T) -> Response {
    let body = serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    reply(StatusCode::OK, "application/json", body + "\n")
}

/// `GET /status` and `GET /metrics` of a proxy: the same code for the proxy's endpoint and the
/// node agent's control API. `/metrics` checks `auth` when it says so.
pub fn proxy_routes<S: Clone + Send + Sync + 'static>(
    source: ProxySource,
    auth: ControlAuth,
) -> Router<S> {
    let unavailable = |why: String| {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("db-proxy: {why}\n"),
        )
    };
    let status = source.clone();
    Router::new()
        .route(
            "/status",
            get(move || async move {
                match status() {
                    Ok(o) => json_pretty(&o.status()),
                    Err(why) => unavailable(why),
                }
            }),
        )
        .route(
            "/metrics",
            get(move |headers: HeaderMap| async move {
                if auth.metrics_need_token {
                    if let Some(refused) = auth.refusal(&headers) {
                        return refused;
                    }
                }
                match source() {
                    Ok(o) => reply(StatusCode::OK, metrics::CONTENT_TYPE, o.metrics_text()),
                    Err(why) => unavailable(why),
                }
            }),
        )
}

/// The proxy's `--metrics-listen` endpoint. Anything else (an unknown path or method) is 404
/// with the list of what there is.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let observer = Observer(shared.clone());
    let auth = shared.cfg.control.clone();
    let drain = |on: bool| {
        let shared = shared.clone();
        move |Path(node): Path<String>, headers: HeaderMap| async move {
            if let Some(refused) = shared.cfg.control.refusal(&headers) {
                tracing::warn!(node = %node, drain = on, "drain request refused: no valid control token");
                return refused;
            }
            match drain_backends(&shared.cfg, &node, on).await {
                Ok(r) => json_pretty(&r),
                Err(e) => {
                    tracing::warn!(node = %node, drain = on, error = %e, "drain request failed");
                    reply(StatusCode::CONFLICT, "text/plain", format!("{e}\n"))
                }
            }
        }
    };
    let not_found = || async {
        reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: GET /metrics, GET /status, POST /drain/NODE, POST /undrain/NODE\n",
        )
    };
    proxy_routes(Arc::new(move || Ok(observer.clone())), auth)
        .route("/drain/{node}", post(drain(true)))
        .route("/undrain/{node}", post(drain(false)))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
}

/// Serves `router` on `listener` until `shutdown` completes. Requests in flight when it does are
/// not waited for: a control request is never worth delaying a stop.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
    let addr = listener.local_addr().ok();
    tokio::select! {
        r = axum::serve(listener, router) => {
            if let Err(e) = r {
                tracing::error!(addr = ?addr, error = %e, "control endpoint stopped");
            }
        }
        () = shutdown => {}
    }
}

/// Why a [`request`] got no answer.
#[derive(Debug, thiserror::Error)]
#[error("{addr}: {source}")]
pub struct ClientError {
    pub addr: String,
    #[source]
    pub source: ureq::Error,
}

/// One blocking request to `http://{addr}{path}` with an empty body, all of it (connect, send,
/// answer) within `timeout`. Returns the status code and body of any answer, 4xx and 5xx
/// included: what a status means is the caller's business.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), ClientError> {
    request_with_token(addr, method, path, None, timeout)
}

/// [`request`] carrying `Authorization: Bearer TOKEN` when `token` is given (what a request that
/// changes something needs, see [`ControlAuth`]).
pub fn request_with_token(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String), ClientError> {
    let err = |source| ClientError {
        addr: addr.to_owned(),
        source,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // Control traffic stays between the nodes: never through an HTTP_PROXY of the
        // environment.
        .proxy(None)
        .max_redirects(0)
        .build()
        .into();
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let req = req.body(()).map_err(|e| err(e.into()))?;
    let mut resp = agent.run(req).map_err(err)?;
    let code = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().map_err(err)?;
    Ok((code, body))
}

/// `GET /status` of a proxy's endpoint (or a node agent's control API), parsed.
pub(crate) fn get_status(addr: &str, deadline: Duration) -> Result<ProxyStatus, String> {
    match request(addr, "GET", "/status", deadline) {
        Ok((200, body)) => serde_json::from_str(&body).map_err(|e| format!("bad JSON: {e}")),
        Ok((code, body)) => Err(format!("answered {code}: {}", body.trim_end())),
        Err(e) => Err(e.source.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A server on its own runtime thread, for blocking clients.
    fn spawn(router: Router) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = TcpListener::from_std(l).unwrap();
                serve(l, router, std::future::pending()).await
            });
        });
        addr
    }

    fn raw(addr: &str, bytes: &[u8]) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = Vec::new();
        // A reset after the server's answer (it closes without reading our trailing bytes) is
        // an acceptable end of the exchange.
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn routes_answers_and_bad_requests() {
        let router = proxy_routes(
            Arc::new(|| Err("starting".to_owned())),
            ControlAuth::default(),
        )
        .route(
            "/echo",
            post(|| async { reply(StatusCode::OK, "application/json", "{}") }),
        )
        .fallback(|| async { reply(StatusCode::NOT_FOUND, "text/plain", "not found\n") });
        let addr = spawn(router);
        let t = Duration::from_secs(5);
        assert_eq!(
            request(&addr, "POST", "/echo", t).unwrap(),
            (200, "{}".into())
        );
        assert_eq!(
            request(&addr, "GET", "/status", t).unwrap(),
            (503, "db-proxy: starting\n".into())
        );
        assert_eq!(
            request(&addr, "GET", "/nowhere", t).unwrap(),
            (404, "not found\n".into())
        );
        // Garbage instead of a request line: the server answers 400 or just closes, and keeps
        // serving others.
        let out = raw(&addr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
        assert!(out.is_empty() || out.starts_with("HTTP/1.1 400"), "{out:?}");
        // An HTTP/1.0 client reading to EOF gets a 1.0 answer and a closed connection.
        let out = raw(&addr, b"GET /status HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.0 503"), "{out}");
        assert!(out.ends_with("\r\n\r\ndb-proxy: starting\n"), "{out}");
        assert_eq!(
            get_status(&addr, t).unwrap_err(),
            "answered 503: db-proxy: starting"
        );
    }

    #[test]
    fn metrics_behind_the_token_when_the_tier_says_so() {
        let auth = |token: Option<&str>, metrics_need_token| ControlAuth {
            token: token.map(Arc::from),
            metrics_need_token,
        };
        let t = Duration::from_secs(5);
        // Open /metrics (the default): anyone reads it, token or not.
        let addr = spawn(proxy_routes(
            Arc::new(|| Err("starting".to_owned())),
            auth(Some("tok"), false),
        ));
        assert_eq!(request(&addr, "GET", "/metrics", t).unwrap().0, 503);
        // Behind the token: 401 without, 403 with another, through with it.
        let addr = spawn(proxy_routes(
            Arc::new(|| Err("starting".to_owned())),
            auth(Some("tok"), true),
        ));
        assert_eq!(request(&addr, "GET", "/metrics", t).unwrap().0, 401);
        let with = |tok| request_with_token(&addr, "GET", "/metrics", Some(tok), t).unwrap();
        assert_eq!(with("tok2").0, 403);
        assert_eq!(with("tok").0, 503);
        assert_eq!(request(&addr, "GET", "/status", t).unwrap().0, 503);
        // No token configured: nothing gets through a route that needs it.
        let addr = spawn(proxy_routes(
            Arc::new(|| Err("starting".to_owned())),
            auth(None, true),
        ));
        let (code, body) = request_with_token(&addr, "GET", "/metrics", Some("x"), t).unwrap();
        assert_eq!(code, 403);
        assert!(body.contains("no control token"), "{body}");
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd") && !same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn refused_connection_is_an_error_naming_the_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let e = request(&addr, "GET", "/state", Duration::from_millis(500))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&addr), "{e}");
    }

    #[test]
    fn a_silent_server_times_out_within_the_budget() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t0 = std::time::Instant::now();
        let e = request(&addr, "GET", "/state", Duration::from_millis(300));
        assert!(e.is_err());
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        drop(l);
    }
}
