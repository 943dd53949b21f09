//! The node's database: where it stands in the cluster's history, the decision (with the peers)
//! to bootstrap, join or wait, and supervision of its mariadbd (status polled, crashes recovered
//! with `--wsrep-recover` and restarted under [`BackOff`], users ensured after a bootstrap), and
//! a running member that lost quorum: it reports its running position and acts on the same
//! decision ([`QuorumWatch`]).

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
    /// The agent stopped a join that had nobody left to join, or a member that the running
    /// cluster did not take back.
    Abandoned,
}

/// How long a member that was Synced must have been without quorum before its agent acts.
/// Galera itself restores a Primary component within seconds when its members see each other
/// again (evs.suspect_timeout is 5 s); the agent steps in only after that.
const NO_QUORUM_GRACE: Duration = Duration::from_secs(10);
/// How long another member may be Primary without this non-Primary one merging into it before
/// its mariadbd is restarted to join.
const REJOIN_AFTER: Duration = Duration::from_secs(20);
/// How often the watch asks the bootstrap decision, and the least time between two
/// `pc.bootstrap=YES`.
const QUORUM_CHECK_EVERY: Duration = Duration::from_secs(1);
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(5);

/// What a running member that lost quorum should do.
enum QuorumStep {
    Nothing,
    /// Every member reported, nobody is Primary, and the decision names this node.
    Bootstrap(BootstrapReason),
    /// Stop this node's mariadbd (and decide again), for the reason given: another node is to
    /// bootstrap, or others are Primary and this node has not merged into them.
    Stop(String),
}

/// A member that was Synced and lost quorum (a partition, or the other members stopped) runs
/// the same [`decide`] as a stopped one: when every member reports, nobody is Primary and this
/// node is the one the rule names (most advanced, ties by config order), it makes its
/// component primary; when others are Primary and it has not merged into them, it restarts to
/// join. A member that cannot see everyone waits (the rule needs every member's report).
#[derive(Default)]
struct QuorumWatch {
    lost_at: Option<Instant>,
    last_check: Option<Instant>,
    last_bootstrap: Option<Instant>,
    others_primary_since: Option<Instant>,
}

impl QuorumWatch {
    fn check(
        &mut self,
        sh: &Shared,
        cfg: &ClusterConfig,
        node: &Node,
        primary: bool,
    ) -> QuorumStep {
        let now = Instant::now();
        if primary {
            *self = QuorumWatch::default();
            return QuorumStep::Nothing;
        }
        let lost_at = *self.lost_at.get_or_insert(now);
        if now - lost_at < NO_QUORUM_GRACE
            || self
                .last_check
                .is_some_and(|t| now - t < QUORUM_CHECK_EVERY)
        {
            return QuorumStep::Nothing;
        }
        self.last_check = Some(now);
        let d = decide(&gather(sh, cfg, &node.name));
        sh.st().decision = Some(d.to_string());
        if !matches!(d, Decision::Join { .. }) {
            self.others_primary_since = None;
        }
        match d {
            Decision::Bootstrap { node: n, reason }
                if n == node.name
                    && !matches!(
                        reason,
                        BootstrapReason::Forced | BootstrapReason::InProgress
                    ) =>
            {
                if self
                    .last_bootstrap
                    .is_some_and(|t| now - t < BOOTSTRAP_RETRY)
                {
                    return QuorumStep::Nothing;
                }
                // A peer's mariadbd that runs but does not answer may be Primary without its
                // agent knowing: wait for it.
                let silent = silent_peers(cfg, node);
                if !silent.is_empty() {
                    let said = format!(
                        "no quorum; waiting for {}: mariadbd runs but does not answer",
                        silent.join(", ")
                    );
                    sh.st().decision = Some(said);
                    return QuorumStep::Nothing;
                }
                self.last_bootstrap = Some(now);
                QuorumStep::Bootstrap(reason)
            }
            // Another member is to bootstrap: a running non-Primary mariadbd must not be there
            // when it does (it would merge with its older primary component).
            Decision::StopFirst { node: n, running, .. } if running.contains(&node.name) => {
                QuorumStep::Stop(format!(
                    "no quorum; {n} is to bootstrap: stopping this node's mariadbd first, to join it afterwards"
                ))
            }
            Decision::Bootstrap { node: n, .. } if n != node.name => QuorumStep::Stop(format!(
                "no quorum; {n} bootstraps: stopping this node's mariadbd, to join it afterwards"
            )),
            Decision::Join { .. } => {
                let since = *self.others_primary_since.get_or_insert(now);
                if now - since >= REJOIN_AFTER {
                    QuorumStep::Stop(format!(
                        "the cluster has been Primary without this node for {} s: restarting mariadbd to join it",
                        REJOIN_AFTER.as_secs()
                    ))
                } else {
                    QuorumStep::Nothing
                }
            }
            _ => QuorumStep::Nothing,
        }
    }
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
    let mut quorum = QuorumWatch::default();
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
                    sh.st().db.status_error = None;
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
                        // Once Synced, the running mariadbd's position is this node's
                        // history: what the bootstrap decision must compare if the cluster
                        // loses quorum (the datadir's was read before mariadbd started).
                        if was_healthy || healthy {
                            if let Some(p) = w.position() {
                                s.report.history = History::At(p);
                            }
                        }
                        s.db.wsrep = Some(w);
                        s.report.primary = primary;
                        if primary {
                            s.report.phase = Phase::Running;
                            s.report.force_bootstrap = false;
                        }
                    }
                    if healthy && !was_healthy {
                        was_healthy = true;
                        // mariadbd rewrote grastate.dat when it started (seqno -1, not safe to
                        // bootstrap): the flags read before the start no longer hold.
                        if let Ok(gs) = process::read_grastate(paths) {
                            let mut s = sh.st();
                            s.db.grastate = gs.clone();
                            s.report.grastate = gs;
                        }
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
                    s.db.status_error = Some(last_status_error.clone());
                }
            }
        }
        let primary = sh.st().report.primary;
        if primary {
            peer_primary_seen = Instant::now();
        }
        // A joiner whose cluster vanished would wait ~34 s (pc.wait_prim_timeout) and then
        // forget its position; stop it early and decide again instead. Only a joiner that never
        // got Synced: a member that did keeps its place in the cluster (stopping it would make
        // a passing loss of quorum permanent) and is handled by the quorum watch below.
        if mode == StartMode::Join
            && !was_healthy
            && !primary
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
        if was_healthy {
            match quorum.check(sh, cfg, node, primary) {
                QuorumStep::Nothing => {}
                QuorumStep::Bootstrap(reason) => {
                    sh.log(&format!(
                        "no quorum and nobody is Primary; the decision names this node ({reason:?}): forcing it primary (pc.bootstrap=YES)"
                    ));
                    if let Err(e) = galera::sql::query(
                        &paths.socket,
                        "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'",
                        Duration::from_secs(5),
                    ) {
                        sh.error(format!("pc.bootstrap: {e}"));
                    }
                }
                QuorumStep::Stop(why) => {
                    sh.log(&why);
                    set_phase(sh, Phase::Stopping);
                    let clean = m.stop(Duration::from_secs(120));
                    sh.st().db.pid = None;
                    if !clean {
                        sh.record_error("mariadbd did not stop cleanly; recovering".into());
                    }
                    return Exit::Abandoned;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The peers whose mariadbd runs but did not answer their agent's last status query.
fn silent_peers(cfg: &ClusterConfig, node: &Node) -> Vec<String> {
    cfg.nodes
        .iter()
        .filter(|n| n.name != node.name)
        .filter(|n| {
            peer_state(n).map_or(true, |st| {
                st.db.pid.is_some() && st.db.status_error.is_some()
            })
        })
        .map(|n| n.name.clone())
        .collect()
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
