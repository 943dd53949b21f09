//! The I/O around the two pure cores: one task per backend runs health checks and feeds
//! [`crate::health::Health`]; one writer task reads `keel_meta`, applies [`crate::writer::decide`]
//! and publishes the route that connection tasks follow.

use crate::client::{ClientError, Conn};
use crate::health::{CheckOutcome, State, WsrepSample};
use crate::writer::{decide, Action, NodeView};
use crate::{log, meta, Shared};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio::time::{sleep, timeout};

/// One health check on an existing or new monitor connection. `conn` is dropped (set to
/// `None`) on any failure, since its state is then unknown.
pub(crate) async fn check_once(shared: &Shared, i: usize, conn: &mut Option<Conn>) -> CheckOutcome {
    let cfg = &shared.cfg;
    let b = &cfg.backends[i];
    let run = async {
        if conn.is_none() {
            let mut c =
                Conn::connect(b.addr, &cfg.monitor_user, &cfg.monitor_password, None).await?;
            // Never block on a node that lost quorum (galera.md pitfall 7).
            c.query("SET SESSION wsrep_sync_wait=0").await?;
            *conn = Some(c);
        }
        let c = conn
            .as_mut()
            .ok_or_else(|| ClientError::Io(std::io::ErrorKind::NotConnected.into()))?;
        sample(c).await
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

/// Reads the wsrep status and the two global variables of one node.
pub async fn sample(c: &mut Conn) -> Result<WsrepSample, ClientError> {
    let st = c.query("SHOW GLOBAL STATUS LIKE 'wsrep%'").await?;
    let vars = c
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('wsrep_desync', 'wsrep_reject_queries')",
        )
        .await?;
    let pairs: Vec<(String, String)> = st
        .rows
        .into_iter()
        .chain(vars.rows)
        .filter_map(|r| {
            let mut it = r.into_iter();
            Some((
                it.next().flatten()?,
                it.next().flatten().unwrap_or_default(),
            ))
        })
        .collect();
    Ok(WsrepSample::from_pairs(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
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
            log(&format!(
                "backend {name}: {state:?}{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({why})")
                }
            ));
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
            if meta_conn.is_none() {
                meta_conn = Some((
                    read_at,
                    meta::connect(addr, &cfg.monitor_user, &cfg.monitor_password).await?,
                ));
            }
            match meta_conn.as_mut() {
                Some((_, c)) => meta::read(c).await,
                None => Err(ClientError::Io(std::io::ErrorKind::NotConnected.into())),
            }
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
                log(&format!(
                    "claiming the writer role for {node} (row: {})",
                    row.as_ref()
                        .map(|r| format!("{} epoch {}", r.node, r.epoch))
                        .unwrap_or_else(|| "empty".into())
                ));
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
                        log(&format!(
                            "{node} is the writer now (epoch {})",
                            expected_epoch.unwrap_or(0) + 1
                        ));
                        immediate = true;
                    }
                    Ok(Ok(false)) => {
                        log("claim lost: another proxy changed the writer first");
                        immediate = true;
                    }
                    Ok(Err(e)) => log(&format!("claim for {node} failed: {e}")),
                    Err(_) => log(&format!("claim for {node} timed out")),
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
                log(&format!(
                    "writer changed: {} -> {}",
                    cfg.backends[old].name, cfg.backends[new].name
                ));
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
