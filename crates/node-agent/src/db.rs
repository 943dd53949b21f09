//! The node's database: where it stands in the cluster's history, the decision (with the peers)
//! to bootstrap, join or wait, and supervision of its mariadbd (status polled, crashes recovered
//! with `--wsrep-recover` and restarted under [`BackOff`], users ensured after a bootstrap).

use crate::peers::{gather, peer_state, peer_view};
use crate::{proxy, Shared};
use cluster_config::{ClusterConfig, Node};
use galera::mycnf::NodePaths;
use galera::process::{self, Mariadbd, StartMode};
use galera::{decide, BootstrapReason, Decision, History, MemberView, Phase};
use std::time::{Duration, Instant};
use supervisor::BackOff;
use tracing::{info, warn};

/// After a crash the cluster still counts this node's previous incarnation until it is
/// evicted (`evs.suspect_timeout`); a new incarnation started before that sits in non-primary
/// views for many seconds. Waiting for the eviction makes the rejoin faster. Returns true on
/// shutdown.
pub(crate) fn wait_for_eviction(sh: &Shared, cfg: &ClusterConfig, node: &Node) -> bool {
    let me = node.sql_addr();
    let start = Instant::now();
    let mut said = false;
    while start.elapsed() < Duration::from_secs(30) {
        let still_counted = cfg.nodes.iter().filter(|n| n.name != node.name).any(|n| {
            peer_state(n).is_ok_and(|st| {
                st.report.primary
                    && st
                        .db
                        .wsrep
                        .is_some_and(|w| w.incoming_addresses.contains(&me))
            })
        });
        if !still_counted {
            if said {
                sh.log(&format!(
                    "previous incarnation evicted after {:.1} s",
                    start.elapsed().as_secs_f64()
                ));
            }
            return false;
        }
        if !said {
            sh.log("waiting until the cluster evicts this node's previous incarnation");
            said = true;
        }
        if sh.nap(Duration::from_millis(250)) {
            return true;
        }
    }
    sh.stopping()
}

fn set_phase(sh: &Shared, phase: Phase) {
    let mut st = sh.st();
    st.report.phase = phase;
    if phase != Phase::Running {
        st.db.state = format!("{phase:?}").to_lowercase();
    }
}

/// What the datadir says about the node's past, recovering the position when needed.
fn history(
    sh: &Shared,
    cfg: &ClusterConfig,
    paths: &NodePaths,
) -> Result<History, process::ProcessError> {
    let gs = process::read_grastate(paths)?;
    sh.st().db.grastate = gs.clone();
    sh.st().report.grastate = gs.clone();
    if let Some(p) = gs.as_ref().and_then(|g| g.position()) {
        return Ok(History::At(p));
    }
    if !process::datadir_initialized(paths) {
        return Ok(History::Empty);
    }
    set_phase(sh, Phase::Recovering);
    let t = Instant::now();
    let r = process::recover(cfg, paths)?;
    sh.log(&format!(
        "--wsrep-recover: {} ({:.1} s)",
        r.as_ref()
            .map(|p| format!("recovered position {p}"))
            .unwrap_or_else(|| "no position (never part of a cluster)".into()),
        t.elapsed().as_secs_f64()
    ));
    Ok(r.map(History::At).unwrap_or(History::Empty))
}

pub(crate) fn db_loop(
    sh: &Shared,
    cfg: &ClusterConfig,
    node: &Node,
    paths: &NodePaths,
    os_user: Option<&str>,
    mut adopted: Option<Mariadbd>,
) {
    let mut backoff = BackOff::DEFAULT;
    'outer: while !sh.stopping() {
        if let Some(mut m) = adopted.take() {
            {
                let mut st = sh.st();
                st.db.pid = Some(m.pid);
                st.db.started_as = Some("adopted".into());
                st.report.phase = Phase::Joining;
            }
            match supervise(sh, cfg, node, paths, &mut m, StartMode::Join, None) {
                Exit::Shutdown => break,
                _ => {
                    sh.st().db.restarts += 1;
                    continue;
                }
            }
        }
        // 1. Where is this node in the cluster's history?
        let hist = match history(sh, cfg, paths) {
            Ok(h) => h,
            Err(e) => {
                sh.error(format!("reading the node's position: {e}"));
                if sh.nap(Duration::from_secs(2)) {
                    break;
                }
                continue;
            }
        };
        {
            let mut st = sh.st();
            st.report.history = hist.clone();
            st.report.primary = false;
            st.db.seqno = match &hist {
                History::At(p) => Some(p.seqno),
                _ => None,
            };
            st.db.cluster_uuid = match &hist {
                History::At(p) => Some(p.uuid.clone()),
                _ => None,
            };
        }
        set_phase(sh, Phase::Stopped);

        // 2. Decide with the peers.
        let mut last_said = String::new();
        let mode = loop {
            if sh.stopping() {
                break 'outer;
            }
            let d = decide(&gather(sh, cfg, &node.name));
            let said = d.to_string();
            if said != last_said {
                sh.log(&said);
                last_said = said.clone();
            }
            sh.st().decision = Some(said);
            match d {
                Decision::Join { .. } => break (StartMode::Join, None),
                Decision::Bootstrap { node: n, reason } if n == node.name => {
                    break (StartMode::Bootstrap, Some(reason))
                }
                _ => {}
            }
            if sh.nap(Duration::from_millis(300)) {
                break 'outer;
            }
        };
        let (mode, reason) = mode;
        if mode == StartMode::Join && wait_for_eviction(sh, cfg, node) {
            break;
        }

        // 3. Start.
        if mode == StartMode::Bootstrap {
            if !process::datadir_initialized(paths) {
                sh.log("initialising the datadir (mariadb-install-db)");
                if let Err(e) = process::install_db(cfg, paths, os_user) {
                    sh.error(format!("initialising the datadir: {e}"));
                    if sh.nap(Duration::from_secs(2)) {
                        break;
                    }
                    continue;
                }
            }
            if let Err(e) = process::mark_safe_to_bootstrap(paths) {
                sh.error(format!("marking safe_to_bootstrap: {e}"));
            }
        }
        let position = match &hist {
            History::At(p) => Some(p.clone()),
            _ => None,
        };
        set_phase(
            sh,
            if mode == StartMode::Bootstrap {
                Phase::Bootstrapping
            } else {
                Phase::Joining
            },
        );
        proxy::prefer_non_writer_donor(sh, cfg, node, &paths.cnf, mode == StartMode::Join);
        let mut m = match process::start(cfg, paths, mode.clone(), position.as_ref()) {
            Ok(m) => m,
            Err(e) => {
                sh.error(format!("starting mariadbd: {e}"));
                if sh.nap(Duration::from_secs(2)) {
                    break;
                }
                continue;
            }
        };
        let started_as = format!(
            "{}{}",
            if mode == StartMode::Bootstrap {
                "bootstrap"
            } else {
                "join"
            },
            position
                .as_ref()
                .map(|p| format!(" from {p}"))
                .unwrap_or_default()
        );
        info!(node = %sh.node, child = "mariadbd", pid = m.pid, "started mariadbd: {started_as}");
        {
            let mut st = sh.st();
            st.db.pid = Some(m.pid);
            st.db.started_as = Some(started_as);
        }

        // 4. Supervise.
        match supervise(sh, cfg, node, paths, &mut m, mode, reason) {
            Exit::Shutdown => break,
            exit @ (Exit::Crashed | Exit::Healthy) => {
                sh.st().db.restarts += 1;
                // Quick repeated deaths back off, so a broken node does not spin.
                if sh.nap(backoff.after_exit(matches!(exit, Exit::Healthy))) {
                    break;
                }
            }
            Exit::Abandoned => {}
        }
    }
    let mut st = sh.st();
    st.report.phase = Phase::Stopped;
    st.report.primary = false;
    st.db.state = "stopped".into();
    st.db.pid = None;
    st.db.healthy = false;
}

enum Exit {
    Shutdown,
    /// mariadbd died without being asked to.
    Crashed,
    /// mariadbd died after having been healthy (a crash too, but not a crash loop).
    Healthy,
    /// The agent stopped a join that had nobody left to join.
    Abandoned,
}

fn supervise(
    sh: &Shared,
    cfg: &ClusterConfig,
    node: &Node,
    paths: &NodePaths,
    m: &mut Mariadbd,
    mode: StartMode,
    reason: Option<BootstrapReason>,
) -> Exit {
    let mut last_poll = Instant::now() - Duration::from_secs(1);
    let mut last_peer_check = Instant::now();
    let mut peer_primary_seen = Instant::now();
    let mut was_healthy = false;
    let mut users_done = false;
    let mut last_status_error = String::new();
    loop {
        if sh.stopping() {
            set_phase(sh, Phase::Stopping);
            sh.st().report.primary = false;
            info!(node = %sh.node, child = "mariadbd", pid = m.pid, "stopping mariadbd");
            let t = Instant::now();
            // A mariadbd that never got Synced (a joiner waiting for a state transfer from
            // peers that are stopping too) may ignore SIGTERM for minutes; killing it is a crash
            // it recovers from (--wsrep-recover), so it gets less time than a Synced one.
            let clean = m.stop(Duration::from_secs(if was_healthy { 120 } else { 30 }));
            info!(
                node = %sh.node,
                child = "mariadbd",
                pid = m.pid,
                "mariadbd stopped {}in {:.1} s",
                if clean { "cleanly " } else { "by SIGKILL " },
                t.elapsed().as_secs_f64()
            );
            return Exit::Shutdown;
        }
        if let Some(st) = m.try_wait() {
            {
                let mut s = sh.st();
                s.db.pid = None;
                s.db.healthy = false;
                s.db.primary = false;
                s.report.primary = false;
            }
            sh.record_error(format!(
                "mariadbd (pid {}) exited: {st}; recovering and restarting",
                m.pid
            ));
            warn!(node = %sh.node, child = "mariadbd", pid = m.pid, status = %st, "mariadbd exited; recovering and restarting");
            return if was_healthy {
                Exit::Healthy
            } else {
                Exit::Crashed
            };
        }
        if last_poll.elapsed() >= Duration::from_millis(500) {
            last_poll = Instant::now();
            match galera::sql::status(&paths.socket) {
                Ok(w) => {
                    last_status_error.clear();
                    let primary = w.is_primary();
                    let healthy = w.is_healthy();
                    {
                        let mut s = sh.st();
                        s.db.state = if w.state.is_empty() {
                            "unknown".into()
                        } else {
                            w.state.clone()
                        };
                        s.db.cluster_size = Some(w.cluster_size);
                        s.db.seqno = Some(w.last_committed);
                        s.db.cluster_uuid = Some(w.cluster_state_uuid.clone());
                        s.db.primary = primary;
                        s.db.healthy = healthy;
                        s.db.wsrep = Some(w);
                        s.report.primary = primary;
                        if primary {
                            s.report.phase = Phase::Running;
                            s.report.force_bootstrap = false;
                        }
                    }
                    if healthy && !was_healthy {
                        was_healthy = true;
                        sh.st().last_error = None;
                        sh.log(&format!(
                            "Synced, Primary, cluster size {}",
                            sh.st().db.cluster_size.unwrap_or(0)
                        ));
                    }
                    if primary && mode == StartMode::Bootstrap && !users_done && healthy {
                        users_done = ensure_users(sh, cfg, paths, reason.as_ref());
                    }
                    // The operator's override for a node that runs without quorum.
                    if !primary && sh.st().report.force_bootstrap {
                        sh.log("no quorum: forcing this node primary (pc.bootstrap=YES)");
                        if let Err(e) = galera::sql::query(
                            &paths.socket,
                            "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'",
                            Duration::from_secs(5),
                        ) {
                            sh.error(format!("pc.bootstrap: {e}"));
                        }
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    if e != last_status_error {
                        warn!(node = %sh.node, child = "mariadbd", pid = m.pid, "status query: {e}");
                        last_status_error = e;
                    }
                    let mut s = sh.st();
                    s.db.healthy = false;
                    s.db.primary = false;
                    s.report.primary = false;
                }
            }
        }
        // A joiner whose cluster vanished would wait ~34 s (pc.wait_prim_timeout) and then
        // forget its position; stop it early and decide again instead.
        if mode == StartMode::Join
            && !sh.st().report.primary
            && last_peer_check.elapsed() >= Duration::from_secs(1)
        {
            last_peer_check = Instant::now();
            let any_primary = cfg
                .nodes
                .iter()
                .filter(|n| n.name != node.name)
                .any(|n| matches!(peer_view(n), MemberView::Reported(r) if r.primary));
            if any_primary {
                peer_primary_seen = Instant::now();
            } else if peer_primary_seen.elapsed() > Duration::from_secs(5) {
                sh.log("nobody is Primary any more: stopping this join and deciding again");
                m.stop(Duration::from_secs(30));
                sh.st().db.pid = None;
                return Exit::Abandoned;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ensure_users(
    sh: &Shared,
    cfg: &ClusterConfig,
    paths: &NodePaths,
    reason: Option<&BootstrapReason>,
) -> bool {
    let sql = match ensure_users_sql(cfg) {
        Ok(s) => s,
        Err(e) => {
            sh.error(format!("users: {e}"));
            return true; // a config problem: retrying will not help
        }
    };
    match galera::sql::query(&paths.socket, &sql, Duration::from_secs(10)) {
        Ok(_) => {
            sh.log(&format!(
                "ensured users {} and {} ({})",
                cfg.users.app.name,
                cfg.users.monitor.name,
                reason.map(|r| format!("{r:?}")).unwrap_or_default()
            ));
            true
        }
        Err(e) => {
            sh.error(format!("creating users: {e}"));
            false
        }
    }
}

/// The users of the description ([`galera::users::ensure_users_sql`]) plus what the db-proxy
/// needs: its monitor user keeps the writer row and the drain flags in `keel_meta`, so it gets
/// `ALL ON keel_meta.*` (besides `PROCESS` for the status checks). Idempotent; `keel up` runs it
/// too, so a cluster bootstrapped by an older agent gets the grant.
pub fn ensure_users_sql(cfg: &ClusterConfig) -> Result<String, cluster_config::ConfigError> {
    let mon = &cfg.users.monitor;
    Ok(format!(
        "{} GRANT PROCESS ON *.* TO '{}'@'{}'; GRANT ALL PRIVILEGES ON `keel_meta`.* TO '{}'@'{}';",
        galera::users::ensure_users_sql(cfg)?,
        mon.name,
        mon.host,
        mon.name,
        mon.host
    ))
}
