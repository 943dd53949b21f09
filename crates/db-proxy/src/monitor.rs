//! The I/O around the two pure cores: one task per backend runs health checks and feeds
//! [`crate::health::Health`]; one writer task reads `keel_meta`, applies [`crate::writer::decide`]
//! and publishes the route that connection tasks follow.

use crate::config::Backend;
use crate::health::{CheckOutcome, State};
use crate::writer::{decide, Action, NodeView};
use crate::{meta, ProxyConfig, Shared};
use galera::sql::{Conn, SqlError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio::time::{sleep, timeout};
use tracing::{debug, info, warn};

/// A connection for health checks: the monitor user, and `wsrep_sync_wait=0` so a check never
/// blocks on a node that lost quorum (it must answer, and fail, at once).
pub(crate) async fn check_conn(cfg: &ProxyConfig, b: &Backend) -> Result<Conn, SqlError> {
    let mut c = Conn::connect(b.addr, &cfg.monitor_user, &cfg.monitor_password, None).await?;
    c.query("SET SESSION wsrep_sync_wait=0").await?;
    Ok(c)
}

/// One health check on an existing or new monitor connection. `conn` is dropped (set to
/// `None`) on any failure, since its state is then unknown.
pub(crate) async fn check_once(shared: &Shared, i: usize, conn: &mut Option<Conn>) -> CheckOutcome {
    let cfg = &shared.cfg;
    let run = async {
        let c = match conn {
            Some(c) => c,
            None => conn.insert(check_conn(cfg, &cfg.backends[i]).await?),
        };
        c.wsrep_status().await
    };
    match timeout(cfg.check_timeout, run).await {
        Ok(Ok(s)) => CheckOutcome::Sample(s),
        Ok(Err(e)) => {
            *conn = None;
            CheckOutcome::Error(e.to_string())
        }
        Err(_) => {
            *conn = None;
            CheckOutcome::Timeout
        }
    }
}

/// The check loop of backend `i`.
pub(crate) async fn health_task(
    shared: Arc<Shared>,
    i: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn = None;
    let name = shared.cfg.backends[i].name.clone();
    loop {
        let started = Instant::now();
        let outcome = check_once(&shared, i, &mut conn).await;
        let failed = outcome.failure().is_some();
        shared.metrics.backends[i].record_check(started.elapsed().as_secs_f64(), failed);
        let changed = shared.health[i]
            .lock()
            .observe(&outcome, shared.cfg.thresholds);
        if let Some(state) = changed {
            let why = outcome.failure().unwrap_or_default();
            match state {
                State::Down => warn!(backend = %name, reason = %why, "backend down"),
                _ => info!(backend = %name, "backend up"),
            }
            shared.route.send_modify(|r| {
                r.down[i] = state == State::Down;
                if state == State::Down && r.writer == Some(i) {
                    r.writer = None;
                    r.reason = format!("writer {name} is unhealthy: {why}");
                }
            });
            shared.wake.notify_one();
        }
        // Keep checks spaced even after a slow one, so `rise` passes span real time (a node
        // resumed from SIGSTOP answers the queued checks at once).
        let next = (started + shared.cfg.check_interval)
            .max(Instant::now() + shared.cfg.check_interval / 2);
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The writer loop: every check interval (or at once when a backend changes state) read the
/// row, decide, claim if needed, publish.
pub(crate) async fn writer_task(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let cfg = &shared.cfg;
    let mut meta_conn: Option<(usize, Conn)> = None;
    let mut drained = std::collections::BTreeSet::new();
    let mut immediate = false;
    let started = Instant::now();
    loop {
        if !immediate {
            tokio::select! {
                _ = sleep(cfg.check_interval) => {}
                _ = shared.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
        immediate = false;
        let up = shared.eligible();
        // Right after start, give every backend its first check before acting, so the first
        // claim of an empty table sees the whole cluster (the row decides anyway).
        let unknown = shared
            .health
            .iter()
            .any(|h| h.lock().state == crate::health::State::Unknown);
        if unknown && started.elapsed() < cfg.check_timeout * 2 {
            continue;
        }
        let current = shared.route.borrow().writer;
        // Read from the current writer when it is up, else from the first healthy node.
        let Some(read_at) = current
            .filter(|w| up[*w])
            .or_else(|| up.iter().position(|u| *u))
        else {
            let why = shared.no_healthy_reason();
            publish(&shared, None, None, &drained, why);
            continue;
        };
        if meta_conn.as_ref().is_some_and(|(i, _)| *i != read_at) {
            meta_conn = None;
        }
        let addr = cfg.backends[read_at].addr;
        let read = timeout(cfg.meta_timeout, async {
            let (_, c) = match &mut meta_conn {
                Some(c) => c,
                None => meta_conn.insert((
                    read_at,
                    meta::connect(addr, &cfg.monitor_user, &cfg.monitor_password).await?,
                )),
            };
            meta::read(c).await
        })
        .await;
        let (row, d) = match read {
            Ok(Ok(x)) => x,
            other => {
                meta_conn = None;
                let err = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                // Fail static: keep a healthy current writer (the row cannot have moved away
                // from a healthy, undrained node); otherwise nobody.
                if current.is_some_and(|w| up[w]) {
                    debug!(backend = %cfg.backends[read_at].name, error = %err, "cannot read keel_meta; keeping the healthy writer");
                    continue;
                }
                let why = format!(
                    "cannot read keel_meta.writer from {}: {err}",
                    cfg.backends[read_at].name
                );
                publish(&shared, None, None, &drained, why);
                continue;
            }
        };
        drained = d;
        let views: Vec<NodeView> = cfg
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| NodeView {
                name: b.name.clone(),
                healthy: up[i],
                drained: drained.contains(&b.name),
            })
            .collect();
        match decide(&views, row.as_ref()) {
            Action::Route(n) => {
                let idx = cfg.index_of(&n);
                publish(
                    &shared,
                    idx,
                    row.as_ref().map(|r| r.epoch),
                    &drained,
                    String::new(),
                );
            }
            Action::NoWriter(why) => publish(&shared, None, None, &drained, why),
            Action::Claim {
                expected_epoch,
                node,
            } => {
                let Some(ci) = cfg.index_of(&node) else {
                    continue;
                };
                info!(
                    backend = %node,
                    row = %row
                        .as_ref()
                        .map(|r| format!("{} epoch {}", r.node, r.epoch))
                        .unwrap_or_else(|| "empty".into()),
                    "claiming the writer role"
                );
                let res = timeout(cfg.meta_timeout * 3, async {
                    let mut c = meta::connect(
                        cfg.backends[ci].addr,
                        &cfg.monitor_user,
                        &cfg.monitor_password,
                    )
                    .await?;
                    meta::claim(&mut c, expected_epoch, &node).await
                })
                .await;
                // Re-read at once when the row changed (the row decides, whoever won); after an
                // error wait for the next tick rather than hammer the cluster.
                match res {
                    Ok(Ok(true)) => {
                        info!(
                            backend = %node,
                            epoch = expected_epoch.unwrap_or(0) + 1,
                            "claimed the writer role"
                        );
                        immediate = true;
                    }
                    Ok(Ok(false)) => {
                        info!(
                            backend = %node,
                            "claim lost: another proxy changed the writer first"
                        );
                        immediate = true;
                    }
                    Ok(Err(e)) => warn!(backend = %node, error = %e, "writer claim failed"),
                    Err(_) => warn!(backend = %node, "writer claim timed out"),
                }
            }
        }
    }
}

fn publish(
    shared: &Shared,
    writer: Option<usize>,
    epoch: Option<u64>,
    drained: &std::collections::BTreeSet<String>,
    reason: String,
) {
    let cfg = &shared.cfg;
    let drained_v: Vec<bool> = cfg
        .backends
        .iter()
        .map(|b| drained.contains(&b.name))
        .collect();
    shared.route.send_if_modified(|r| {
        let before = r.clone();
        if let (Some(old), Some(new)) = (r.last_writer, writer) {
            if old != new {
                shared
                    .metrics
                    .writer_changes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                info!(
                    from = %cfg.backends[old].name,
                    backend = %cfg.backends[new].name,
                    epoch,
                    "writer changed"
                );
            }
        }
        if writer.is_some() {
            r.last_writer = writer;
        }
        r.writer = writer;
        r.epoch = epoch;
        r.drained = drained_v.clone();
        r.reason = reason.clone();
        *r != before
    });
}
