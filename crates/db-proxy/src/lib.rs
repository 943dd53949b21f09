//! keel's Galera-aware MySQL proxy: one writer for the whole cluster, fast failover, drain.
//!
//! Every app node runs one proxy; applications connect to their local proxy as if it were
//! MariaDB. The proxy forwards each client connection at the TCP level to the cluster's one
//! writer (the client authenticates with the database itself), checks every node over SQL as the
//! monitor user every 500 ms, and moves all proxies to a new writer when the writer fails or is
//! drained.
//!
//! # The writer rule, and why every proxy names the same node
//!
//! The writer is not computed by each proxy from what it sees: it is **stored in the database
//! itself**, in `keel_meta.writer (id = 1, node, epoch)`, which Galera replicates to every node.
//!
//! 1. A proxy reads the row from a node that passes its health check (Primary, Synced, …) with
//!    `wsrep_sync_wait=7`, so the read (and the compare-and-set below) is causal: it sees every
//!    change certified anywhere in the cluster before it.
//! 2. It routes new connections **only to the node the row names** ([`writer::decide`]).
//! 3. It changes the row only when the named node is unhealthy in its view or drained: it picks
//!    the first healthy, undrained node in the cluster description's order and runs the
//!    compare-and-set `UPDATE keel_meta.writer SET node = ?, epoch = epoch + 1 WHERE id = 1 AND
//!    epoch = ?` on that node. Galera certifies write sets in one total order for the whole
//!    cluster, so of two proxies racing to change epoch N exactly one succeeds (the other matches
//!    no row or gets `ERROR 1213`), and everybody re-reads the row.
//! 4. When the row moves away from a node, each proxy closes its connections to that node (at
//!    once; after `drain_timeout` if the node was drained).
//!
//! Why they agree: there is one row, and a proxy only ever routes to what it just read from a
//! Primary node; a proxy started late reads the same row. A node outside the primary component
//! is unhealthy, so a partitioned minority can neither be read from nor written to: only the
//! primary component can move the row. Right after a membership change the row is unchanged
//! unless its node left, so nothing moves. No failback: a node that returns is just healthy, and
//! the row still names the current writer, which is healthy, so nobody proposes a change.
//! Two proxies can disagree only for one check interval (≤ 500 ms) after a change, while one has
//! not re-read the row yet; during a failover the old writer is dead or unhealthy anyway, and on
//! a drain the old writer still works.
//!
//! Why not "lowest `wsrep_local_index`" (MaxScale galeramon): the index is renumbered at every
//! membership change, so a returning node can get the lowest index and take the role back
//! (failback). MaxScale's `disable_master_failback` keeps the current master in the memory of one
//! MaxScale instance, so a proxy started later (or restarted) computes the lowest index and names
//! a different node than the proxies that remembered. Keeping the choice in the replicated
//! database gives both properties without any proxy-to-proxy protocol.
//!
//! # Which nodes take traffic
//!
//! Only the writer takes connections, and a node may be (or become) the writer only while its
//! checks pass ([`health`]): `wsrep_ready=ON`, `wsrep_connected=ON`, `wsrep_cluster_status=Primary`,
//! `wsrep_local_state=4` (Synced), `wsrep_desync=OFF`, `wsrep_reject_queries=NONE`, and it answers
//! from the current primary view ([`health::stale`]). In Galera's terms:
//!
//! | node | its checks | traffic |
//! | --- | --- | --- |
//! | Synced, in the primary component | pass | the writer, or ready to become it |
//! | **Donor** (state 2, `Donor/Desynced`: serving an SST or IST; with rsync it holds `FLUSH TABLES WITH READ LOCK`) | fail | none |
//! | **Joining** (state 1; during an rsync SST its port is not even open, then `wsrep_ready=OFF`), **Joined** (state 3, catching up) | fail | none |
//! | desynced (`wsrep_desync=ON`), `wsrep_reject_queries` set | fail | none |
//! | **non-Primary** (lost quorum, partitioned away: `ERROR 1047` for queries) | fail | none |
//! | hung (SIGSTOP) or dead | time out / refused | none |
//!
//! When the writer fails its checks `fall` times in a row (2 × 500 ms), every proxy closes its
//! connections to it and the row moves to another node (above). A node coming back (a joiner now
//! Synced, a donor done, a partition healed) is counted up only after `rise` passing checks in a
//! row, and then takes no traffic at all while the writer stays healthy: no failback.
//!
//! Because a donor is unavailable, the writer must not become a donor just because another node
//! restarts: `keel node` starts a joining mariadbd with `wsrep_sst_donor` naming every other node
//! but the writer, plus a trailing comma so Galera may fall back to any node (see
//! `galera::donor` and `node_agent`'s proxy module). Without it Galera takes the first Synced node
//! in its member order (`wsrep_local_index`), which may well be the writer, and every proxy would
//! move the writer role for the duration of the transfer.
//!
//! # Layout
//! Pure cores: [`health`] (rise/fall over `galera`'s health rule), [`writer`] (the rule above),
//! [`protocol`] (the few MySQL packets forwarding needs), [`metrics`] (Prometheus text). I/O:
//! [`meta`] (the `keel_meta` schema), [`monitor`] (check and writer tasks), [`forward`] (client
//! connections), [`control`] (HTTP `/metrics`, `/status`, drain). Every statement the proxy runs
//! goes through `galera::sql`, keel's one MySQL client.
//!
//! The monitor user needs `PROCESS` (status) and `ALL ON keel_meta.*`.

#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod forward;
pub mod health;
pub mod meta;
pub mod metrics;
pub mod monitor;
pub mod protocol;
pub mod writer;

pub use config::{parse_backend, Backend, ProxyConfig};
pub use health::{State, Thresholds};

use health::{CheckOutcome, Health};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// What can go wrong in the proxy library.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("unknown node {0:?}")]
    UnknownNode(String),
    #[error("no healthy node: {0}")]
    NoHealthyNode(String),
    #[error("{node}: {source}")]
    Sql {
        node: String,
        source: galera::sql::SqlError,
    },
    #[error("{0} timed out")]
    Timeout(String),
}

/// What connection tasks follow: published by the writer and health tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Index of the backend new connections go to.
    pub writer: Option<usize>,
    pub epoch: Option<u64>,
    /// The last writer ever published (counts writer changes).
    pub last_writer: Option<usize>,
    /// Backends whose health is Down.
    pub down: Vec<bool>,
    pub drained: Vec<bool>,
    /// Why there is no writer (sent to clients that give up waiting).
    pub reason: String,
}

pub(crate) struct Shared {
    pub cfg: ProxyConfig,
    pub health: Vec<Mutex<Health>>,
    pub metrics: metrics::Metrics,
    pub route: watch::Sender<Route>,
    pub wake: Notify,
}

/// One backend in [`ProxyStatus`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackendStatus {
    pub name: String,
    pub addr: String,
    /// This proxy's verdict (with rise/fall): `up`, `down` or `unknown`.
    pub health: State,
    /// Up and answering from the current primary view: may be the writer.
    pub eligible: bool,
    /// Galera's state name from the last answer (`Synced`, `Donor/Desynced`, …).
    pub galera_state: Option<String>,
    pub cluster_size: Option<i64>,
    /// Why the last check failed, if it did.
    pub last_failure: Option<String>,
    pub last_check_ms: f64,
    pub writer: bool,
    pub drained: bool,
    pub connections_active: i64,
    pub connections_total: u64,
}

/// A snapshot for `keel status` and `GET /status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProxyStatus {
    pub name: Option<String>,
    /// Where applications connect.
    pub addr: String,
    /// The writer node's name, if there is one.
    pub writer: Option<String>,
    pub writer_epoch: Option<u64>,
    pub no_writer_reason: Option<String>,
    pub writer_changes: u64,
    pub backends: Vec<BackendStatus>,
}

impl Shared {
    fn status(&self) -> ProxyStatus {
        let r = self.route.borrow().clone();
        let eligible = self.eligible();
        let backends = self
            .cfg
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let h = self.health[i].lock().clone();
                let m = &self.metrics.backends[i];
                BackendStatus {
                    name: b.name.clone(),
                    addr: b.addr.to_string(),
                    health: h.state,
                    eligible: eligible[i],
                    galera_state: h.last_sample.as_ref().map(|s| s.state.clone()),
                    cluster_size: h.last_sample.as_ref().map(|s| s.cluster_size),
                    last_failure: h.last_failure.clone(),
                    last_check_ms: m.last_check_micros.load(Relaxed) as f64 / 1000.0,
                    writer: r.writer == Some(i),
                    drained: r.drained.get(i).copied().unwrap_or(false),
                    connections_active: m.active.load(Relaxed),
                    connections_total: m.total.load(Relaxed),
                }
            })
            .collect();
        ProxyStatus {
            name: self.cfg.name.clone(),
            addr: self.cfg.listen.to_string(),
            writer: r.writer.map(|i| self.cfg.backends[i].name.clone()),
            writer_epoch: r.epoch,
            no_writer_reason: (r.writer.is_none()).then(|| {
                if r.reason.is_empty() {
                    "starting".into()
                } else {
                    r.reason.clone()
                }
            }),
            writer_changes: self.metrics.writer_changes.load(Relaxed),
            backends,
        }
    }

    fn metrics_text(&self) -> String {
        let r = self.route.borrow().clone();
        let facts: Vec<metrics::BackendFacts<'_>> = self
            .cfg
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| metrics::BackendFacts {
                name: &b.name,
                healthy: self.health[i].lock().is_up(),
                writer: r.writer == Some(i),
                drained: r.drained.get(i).copied().unwrap_or(false),
            })
            .collect();
        metrics::render(&self.metrics, &facts)
    }

    /// Up (by rise/fall) and answering from the current primary view ([`health::stale`]).
    fn eligible(&self) -> Vec<bool> {
        let hs: Vec<Health> = self.health.iter().map(|h| h.lock().clone()).collect();
        let up: Vec<bool> = hs.iter().map(Health::is_up).collect();
        let nodes: Vec<Option<health::TimedSample<'_>>> = hs
            .iter()
            .map(|h| match (&h.last_sample, h.sample_at, h.conf_since) {
                (Some(sample), Some(taken), Some(conf_since)) => Some(health::TimedSample {
                    sample,
                    taken,
                    conf_since,
                }),
                _ => None,
            })
            .collect();
        let stale = health::stale_timed(&nodes, &up, health::VIEW_CHANGE_GRACE);
        up.iter().zip(stale).map(|(u, s)| *u && !s).collect()
    }

    fn no_healthy_reason(&self) -> String {
        let parts: Vec<String> = self
            .cfg
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let h = self.health[i].lock();
                format!(
                    "{}: {}",
                    b.name,
                    h.last_failure
                        .clone()
                        .unwrap_or_else(|| format!("{:?}", h.state).to_lowercase())
                )
            })
            .collect();
        format!("no healthy Galera node ({})", parts.join("; "))
    }
}

/// A cheap, cloneable read-only view of a running proxy, for a control API.
#[derive(Clone)]
pub struct Observer(Arc<Shared>);

impl Observer {
    pub fn status(&self) -> ProxyStatus {
        self.0.status()
    }
    pub fn metrics_text(&self) -> String {
        self.0.metrics_text()
    }
}

/// A running proxy. Dropping it stops every task (their shutdown channel closes).
pub struct Proxy {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Binds the listener (and the metrics endpoint, if configured) and starts the check,
    /// writer and accept tasks. Must be called inside a tokio runtime.
    pub async fn start(cfg: ProxyConfig) -> Result<Proxy, ProxyError> {
        cfg.validate()?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let metrics_listener = match cfg.metrics_listen {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .map_err(|source| ProxyError::Bind { addr: a, source })?,
            ),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let n = cfg.backends.len();
        let mut cfg = cfg;
        cfg.listen = local_addr;
        let (route, _) = watch::channel(Route {
            writer: None,
            epoch: None,
            last_writer: None,
            down: vec![false; n],
            drained: vec![false; n],
            reason: "starting: no check has completed yet".into(),
        });
        let shared = Arc::new(Shared {
            health: (0..n).map(|_| Mutex::new(Health::default())).collect(),
            metrics: metrics::Metrics::new(n),
            route,
            wake: Notify::new(),
            cfg,
        });
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for i in 0..n {
            tasks.push(tokio::spawn(monitor::health_task(
                shared.clone(),
                i,
                rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(monitor::writer_task(
            shared.clone(),
            rx.clone(),
        )));
        tasks.push(tokio::spawn(forward::accept_loop(
            shared.clone(),
            listener,
            rx.clone(),
        )));
        if let Some(l) = metrics_listener {
            let mut stop = rx.clone();
            tasks.push(tokio::spawn(control::serve(
                l,
                control::router(shared.clone()),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )));
        }
        tracing::info!(addr = %local_addr, "listening");
        Ok(Proxy {
            shared,
            local_addr,
            metrics_addr,
            shutdown,
            tasks,
        })
    }

    /// Where clients connect (the bound address, useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    /// Where `/metrics` is served, if configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }
    pub fn observer(&self) -> Observer {
        Observer(self.shared.clone())
    }
    pub fn status(&self) -> ProxyStatus {
        self.shared.status()
    }
    pub fn metrics_text(&self) -> String {
        self.shared.metrics_text()
    }
    /// The writer this proxy routes to now.
    pub fn writer(&self) -> Option<String> {
        self.shared
            .route
            .borrow()
            .writer
            .map(|i| self.shared.cfg.backends[i].name.clone())
    }
    /// Waits until the proxy routes to a writer, up to `deadline`.
    pub async fn wait_for_writer(&self, deadline: Duration) -> Option<String> {
        let mut rx = self.shared.route.subscribe();
        let _ = tokio::time::timeout(deadline, rx.wait_for(|r| r.writer.is_some())).await;
        self.writer()
    }
    /// Stops accepting, closes every connection and waits for the tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The result of a drain or undrain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrainReport {
    pub node: String,
    pub drained: bool,
    pub writer_before: Option<String>,
    pub writer_after: Option<String>,
}

/// Drains (`on = true`) or undrains a node, for `keel db drain NODE` / `keel db undrain NODE`:
/// sets its flag in `keel_meta.drain` and, if it is the writer, hands the role to the first
/// healthy undrained node with the same compare-and-set the proxies use. Every proxy then sees
/// the new writer within one check interval and closes its connections to the drained node
/// after its `drain_timeout`. Undrain never moves the writer back (no failback).
pub async fn drain_backends(
    cfg: &ProxyConfig,
    node: &str,
    on: bool,
) -> Result<DrainReport, ProxyError> {
    if cfg.index_of(node).is_none() {
        return Err(ProxyError::UnknownNode(node.into()));
    }
    // One check of every node, concurrently.
    let checks = cfg.backends.iter().map(|b| async move {
        let r = tokio::time::timeout(cfg.check_timeout.max(Duration::from_secs(2)), async {
            monitor::check_conn(cfg, b).await?.wsrep_status().await
        })
        .await;
        match r {
            Ok(Ok(s)) => CheckOutcome::Sample(s),
            Ok(Err(e)) => CheckOutcome::Error(e.to_string()),
            Err(_) => CheckOutcome::Timeout,
        }
    });
    let outcomes = futures_join_all(checks.collect()).await;
    let passed: Vec<bool> = outcomes.iter().map(|o| o.failure().is_none()).collect();
    let samples: Vec<Option<&health::WsrepStatus>> = outcomes
        .iter()
        .map(|o| match o {
            CheckOutcome::Sample(s) => Some(s),
            _ => None,
        })
        .collect();
    let stale = health::stale(&samples, &passed);
    let healthy: Vec<bool> = passed.iter().zip(&stale).map(|(p, s)| *p && !s).collect();
    // Work on a healthy node other than the one being drained when possible; on an error try
    // the next one.
    let mut order: Vec<usize> = (0..cfg.backends.len()).filter(|i| healthy[*i]).collect();
    order.sort_by_key(|i| cfg.backends[*i].name == node);
    if order.is_empty() {
        let why: Vec<String> = cfg
            .backends
            .iter()
            .zip(&outcomes)
            .map(|(b, o)| {
                format!(
                    "{}: {}",
                    b.name,
                    o.failure().unwrap_or_else(|| "stale view".into())
                )
            })
            .collect();
        return Err(ProxyError::NoHealthyNode(why.join("; ")));
    }
    let mut last = None;
    for at in order {
        match drain_at(cfg, at, &healthy, node, on).await {
            Ok(r) => return Ok(r),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ProxyError::NoHealthyNode("no node answered".into())))
}

async fn drain_at(
    cfg: &ProxyConfig,
    at: usize,
    healthy: &[bool],
    node: &str,
    on: bool,
) -> Result<DrainReport, ProxyError> {
    let b = &cfg.backends[at];
    let sql = |source| ProxyError::Sql {
        node: b.name.clone(),
        source,
    };
    let work = async {
        let mut c = meta::connect(b.addr, &cfg.monitor_user, &cfg.monitor_password)
            .await
            .map_err(sql)?;
        meta::set_drain(&mut c, node, on).await.map_err(sql)?;
        let (row, drained) = meta::read(&mut c).await.map_err(sql)?;
        let writer_before = row.as_ref().map(|r| r.node.clone());
        let views: Vec<writer::NodeView> = cfg
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| writer::NodeView {
                name: b.name.clone(),
                healthy: healthy[i],
                drained: drained.contains(&b.name),
            })
            .collect();
        // Only a drain moves the writer here; an undrain leaves it alone.
        if on && writer_before.as_deref() == Some(node) {
            if let writer::Action::Claim {
                expected_epoch,
                node: to,
            } = writer::decide(&views, row.as_ref())
            {
                let ci = cfg.index_of(&to).unwrap_or(at);
                let mut w = meta::connect(
                    cfg.backends[ci].addr,
                    &cfg.monitor_user,
                    &cfg.monitor_password,
                )
                .await
                .map_err(|source| ProxyError::Sql {
                    node: to.clone(),
                    source,
                })?;
                meta::claim(&mut w, expected_epoch, &to)
                    .await
                    .map_err(|source| ProxyError::Sql {
                        node: to.clone(),
                        source,
                    })?;
            }
        }
        let (after, _) = meta::read(&mut c).await.map_err(sql)?;
        Ok::<_, ProxyError>(DrainReport {
            node: node.into(),
            drained: on,
            writer_before,
            writer_after: after.map(|r| r.node),
        })
    };
    tokio::time::timeout(cfg.meta_timeout * 4, work)
        .await
        .map_err(|_| ProxyError::Timeout(format!("drain of {node}")))?
}

/// Blocking form of [`drain_backends`] from a cluster description (for `keel db drain`).
pub fn drain(
    cluster: &cluster_config::ClusterConfig,
    node: &str,
    on: bool,
) -> Result<DrainReport, ProxyError> {
    let first = cluster
        .nodes
        .first()
        .map(|n| n.name.clone())
        .ok_or_else(|| ProxyError::Config("no nodes".into()))?;
    let cfg = ProxyConfig::from_cluster(cluster, &first)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ProxyError::Config(format!("cannot start a runtime: {e}")))?;
    rt.block_on(drain_backends(&cfg, node, on))
}

/// Runs futures concurrently and collects their outputs in order (no `futures` dependency).
async fn futures_join_all<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = fs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Reads a running proxy's [`ProxyStatus`] from its `--metrics-listen` endpoint (`GET /status`),
/// blocking, for `keel status` and scripts.
pub fn fetch_status(addr: SocketAddr, deadline: Duration) -> Result<ProxyStatus, ProxyError> {
    control::get_status(&addr.to_string(), deadline)
        .map_err(|e| ProxyError::Config(format!("GET http://{addr}/status: {e}")))
}
