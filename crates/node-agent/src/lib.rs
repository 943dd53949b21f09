//! `keel node`: the agent of one node of the tier.
//!
//! It writes the node's my.cnf, decides with its peers (through their control APIs) whether this
//! node bootstraps, joins or waits ([`galera::decide`]), runs `mariadbd` in its own process group
//! and keeps it alive: after a crash it recovers the position (`--wsrep-recover`) and restarts
//! with `--wsrep-start-position`, so the node rejoins by IST. It also runs the node's
//! `keel cache` (by default in cluster mode: the nodes' caches replicate through Raft, see
//! [`cache::cache_args`]; restarted on the same client port after a crash), the node's db-proxy
//! (in-process, see [`proxy`] for why), and serves the control API on the control port:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /state` | [`NodeState`] as JSON (with the proxy's live status) |
//! | `GET /status` | the db-proxy's [`db_proxy::ProxyStatus`] as JSON (what [`db_proxy::fetch_status`] reads) |
//! | `GET /metrics` | the db-proxy's Prometheus text |
//! | `GET /health` | 200 when the node may take traffic, else 503 |
//! | `POST /bootstrap/force` | the operator's override: this node bootstraps (or, if its mariadbd runs without quorum, becomes primary with `pc.bootstrap=YES`) |
//! | `POST /shutdown` | clean stop of mariadbd and the cache, then the agent exits |
//!
//! Threads, not async: one supervises mariadbd, one the cache, one accepts control requests; the
//! proxy has its own small tokio runtime.
//! The agent signals only processes it started, and never deletes data.

pub mod adopt;
pub mod cache;
pub mod http;
mod proxy;
pub mod state;

use cluster_config::{ClusterConfig, Node};
use galera::mycnf::{self, NodePaths};
use galera::process::{self, Mariadbd, StartMode};
use galera::{decide, BootstrapReason, Decision, History, MemberView, Phase};
pub use state::{CacheState, DbState, NodeState, ProxyState};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Errors that stop the agent before it starts supervising.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] cluster_config::ConfigError),
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    #[error("control API port {addr} (node.control_port): {source}{}", .owner.as_ref().map(|o| format!(" (in use by {o})")).unwrap_or_default())]
    Control {
        addr: String,
        source: std::io::Error,
        owner: Option<String>,
    },
    #[error(transparent)]
    Adopt(#[from] adopt::AdoptError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How to run the agent.
pub struct AgentOptions {
    pub cfg: ClusterConfig,
    pub name: String,
    /// The `keel` binary, run as `keel cache -p PORT -l ADDR …` (None: no cache).
    pub cache_program: Option<PathBuf>,
    /// Run the node's db-proxy on its `proxy_port`.
    pub proxy: bool,
    /// `--adopt`: take over a hand-built Galera node first ([`adopt`]).
    pub adopt: Option<adopt::AdoptOptions>,
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

pub(crate) struct Shared {
    state: Mutex<NodeState>,
    /// The running proxy, for the control API.
    proxy: Mutex<Option<db_proxy::Observer>>,
    shutdown: AtomicBool,
    started: Instant,
}

impl Shared {
    fn observer(&self) -> Option<db_proxy::Observer> {
        self.proxy.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn st(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst) || SIGNALLED.load(Ordering::SeqCst)
    }
    fn log(&self, msg: &str) {
        let name = self.st().name.clone();
        eprintln!(
            "[keel node {name} +{:.1}s] {msg}",
            self.started.elapsed().as_secs_f64()
        );
    }
    fn error(&self, msg: String) {
        self.log(&format!("error: {msg}"));
        self.st().last_error = Some(msg);
    }
    /// Sleeps up to `d`, returning early (true) when shutdown was asked.
    fn nap(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.stopping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
        }
        self.stopping()
    }
}

/// Runs the agent until SIGTERM/SIGINT or `POST /shutdown`.
pub fn run(opts: AgentOptions) -> Result<(), AgentError> {
    let cfg = opts.cfg;
    let node = cfg.node(&opts.name)?.clone();
    let paths = NodePaths::new(&cfg.node_dir(&node));

    process::check_installed(&cfg)?;
    let owner = if process::running_as_root() {
        Some(process::os_user_ids(&cfg.database.os_user)?)
    } else {
        None
    };
    let os_user = owner.map(|_| cfg.database.os_user.clone());
    // Adoption of a hand-built node (`--adopt`), and the options it carried over.
    let cfg = adopt::startup(cfg, &node, &paths, opts.adopt.as_ref(), owner)?;

    // The control port doubles as "only one agent per node": bind it first.
    let control = TcpListener::bind(node.control_addr()).map_err(|source| AgentError::Control {
        addr: node.control_addr(),
        owner: process::port_owner(node.control_port),
        source,
    })?;
    process::prepare_dirs(&paths, &cfg.cluster.name, owner)?;
    // A mariadbd left running by an earlier agent of this node (that agent died) is adopted,
    // not killed and not started twice.
    let (stale, adopted) = match process::check_pid_file(&paths) {
        Ok(stale) => (stale, None),
        Err(process::ProcessError::AlreadyRunning { pid, dir, pid_file }) => {
            match Mariadbd::adopt(&paths, pid) {
                Some(m) => (None, Some(m)),
                None => {
                    return Err(process::ProcessError::AlreadyRunning { pid, dir, pid_file }.into())
                }
            }
        }
        Err(e) => return Err(e.into()),
    };
    if adopted.is_none() {
        for (field, port) in [
            ("sql_port", node.sql_port),
            ("galera_port", node.galera_port),
            ("ist_port", node.ist_port),
            ("sst_port", node.sst_port),
        ] {
            process::check_port_free(&format!("node {} {field}", node.name), &node.address, port)?;
        }
        // Rewritten only when no mariadbd runs on it (an adopted one keeps the file it read).
        let cnf = mycnf::render(&cfg, &node, &paths, os_user.as_deref());
        std::fs::write(&paths.cnf, cnf).map_err(|source| AgentError::Write {
            path: paths.cnf.clone(),
            source,
        })?;
    }

    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }

    let shared = Arc::new(Shared {
        state: Mutex::new(NodeState::new(
            &node.name,
            &cfg.cluster.name,
            node.sql_addr(),
            node.cache_addr(),
        )),
        proxy: Mutex::new(None),
        shutdown: AtomicBool::new(false),
        started: Instant::now(),
    });
    {
        let mut st = shared.st();
        st.proxy.addr = node.proxy_addr();
        if !opts.proxy {
            st.proxy.state = "disabled".into();
        }
        st.cache.mode = if cfg.cache.clustered() {
            cluster_config::CACHE_CLUSTER
        } else {
            cluster_config::CACHE_STANDALONE
        }
        .into();
    }
    shared.log(&format!(
        "agent for cluster {} started, files in {}, control API on {}",
        cfg.cluster.name,
        paths.dir.display(),
        node.control_addr()
    ));
    if let Some(pid) = stale {
        shared.log(&format!(
            "removed a stale pid file {} (pid {pid} is not running)",
            paths.pid_file.display()
        ));
    }

    {
        let sh = shared.clone();
        std::thread::spawn(move || serve_control(sh, control));
    }
    let cache_thread = {
        let sh = shared.clone();
        let (cfg, node, dir) = (cfg.clone(), node.clone(), paths.dir.clone());
        let prog = opts.cache_program.clone();
        std::thread::spawn(move || cache_loop(sh, &cfg, &node, dir, prog))
    };
    let proxy_thread = opts.proxy.then(|| {
        let sh = shared.clone();
        let (cfg, node) = (cfg.clone(), node.clone());
        std::thread::spawn(move || proxy::run(sh, &cfg, &node))
    });

    if let Some(m) = &adopted {
        shared.log(&format!(
            "adopted the running mariadbd (pid {}) of an earlier agent",
            m.pid
        ));
    }
    db_loop(&shared, &cfg, &node, &paths, os_user.as_deref(), adopted);
    shared.shutdown.store(true, Ordering::SeqCst);
    let _ = cache_thread.join();
    if let Some(t) = proxy_thread {
        let _ = t.join();
    }
    shared.log("stopped");
    Ok(())
}

fn serve_control(sh: Arc<Shared>, listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let sh = sh.clone();
        std::thread::spawn(move || {
            let _ = handle(&sh, &mut s);
        });
    }
}

fn handle(sh: &Shared, s: &mut TcpStream) -> std::io::Result<()> {
    let req = http::read_request(s)?;
    let json = "application/json";
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/state") => {
            let status = sh.observer().map(|o| o.status());
            let mut st = sh.st().clone();
            st.proxy.status = status;
            let body =
                serde_json::to_string(&st).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            http::write_response(s, 200, json, &body)
        }
        ("GET", "/status") => match sh.observer() {
            Some(o) => {
                let body = serde_json::to_string_pretty(&o.status())
                    .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
                http::write_response(s, 200, json, &(body + "\n"))
            }
            None => {
                let why = sh.st().proxy.state.clone();
                http::write_response(s, 503, "text/plain", &format!("db-proxy: {why}\n"))
            }
        },
        ("GET", "/metrics") => match sh.observer() {
            Some(o) => http::write_response(s, 200, "text/plain; version=0.0.4", &o.metrics_text()),
            None => {
                let why = sh.st().proxy.state.clone();
                http::write_response(s, 503, "text/plain", &format!("db-proxy: {why}\n"))
            }
        },
        ("GET", "/health") => {
            let healthy = sh.st().db.healthy;
            http::write_response(
                s,
                if healthy { 200 } else { 503 },
                "text/plain",
                if healthy { "ok\n" } else { "not ready\n" },
            )
        }
        ("POST", "/bootstrap/force") => {
            let mut st = sh.st();
            st.report.force_bootstrap = true;
            let body = serde_json::json!({
                "ok": true,
                "node": st.name,
                "message": "this node will bootstrap the cluster from its own data",
                "position": st.db.seqno,
            });
            drop(st);
            sh.log("operator forced this node to bootstrap");
            http::write_response(s, 200, json, &body.to_string())
        }
        ("POST", "/shutdown") => {
            sh.shutdown.store(true, Ordering::SeqCst);
            sh.log("shutdown requested over the control API");
            http::write_response(s, 200, json, "{\"ok\":true}")
        }
        ("GET" | "POST", _) => http::write_response(s, 404, "text/plain", "not found\n"),
        _ => http::write_response(s, 405, "text/plain", "method not allowed\n"),
    }
}

/// The views of all members in config order: this node's own report, the peers' over HTTP.
fn gather(sh: &Shared, cfg: &ClusterConfig, me: &str) -> Vec<(String, MemberView)> {
    cfg.nodes
        .iter()
        .map(|n| {
            let view = if n.name == me {
                MemberView::Reported(sh.st().report.clone())
            } else {
                peer_view(n)
            };
            (n.name.clone(), view)
        })
        .collect()
}

/// Why a peer agent's state could not be had ([`peer_state`]).
pub(crate) enum PeerStateError {
    /// No answer (connection refused, timeout).
    Down(String),
    /// An answer other than 200.
    Status(u16),
    /// A 200 whose body is not a [`NodeState`].
    Bad(String),
}

/// A peer agent's `GET /state` (800 ms budget): what every cluster-wide decision of this
/// agent reads about the other nodes.
pub(crate) fn peer_state(n: &Node) -> Result<NodeState, PeerStateError> {
    match http::request(
        &n.control_addr(),
        "GET",
        "/state",
        Duration::from_millis(800),
    ) {
        Ok((200, body)) => {
            serde_json::from_str(&body).map_err(|e| PeerStateError::Bad(e.to_string()))
        }
        Ok((code, _)) => Err(PeerStateError::Status(code)),
        Err(e) => Err(PeerStateError::Down(e.to_string())),
    }
}

fn peer_view(n: &Node) -> MemberView {
    match peer_state(n) {
        Ok(st) => MemberView::Reported(st.report),
        Err(PeerStateError::Bad(e)) => MemberView::Unreachable {
            why: format!("bad state from {}: {e}", n.control_addr()),
        },
        Err(PeerStateError::Status(code)) => MemberView::Unreachable {
            why: format!("agent at {} answered {code}", n.control_addr()),
        },
        // While adopting, a hand-built node may still run there ([`adopt::foreign_peer`]).
        Err(PeerStateError::Down(e)) => adopt::foreign_peer(n).unwrap_or(MemberView::Unreachable {
            why: format!("its agent does not answer: {e}"),
        }),
    }
}

/// After a crash the cluster still counts this node's previous incarnation until it is
/// evicted (`evs.suspect_timeout`); a new incarnation started before that sits in non-primary
/// views for many seconds. Waiting for the eviction makes the rejoin faster. Returns true on
/// shutdown.
fn wait_for_eviction(sh: &Shared, cfg: &ClusterConfig, node: &Node) -> bool {
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

fn db_loop(
    sh: &Shared,
    cfg: &ClusterConfig,
    node: &Node,
    paths: &NodePaths,
    os_user: Option<&str>,
    mut adopted: Option<Mariadbd>,
) {
    let mut crashes_in_a_row = 0u32;
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
        sh.log(&format!("started mariadbd (pid {}): {started_as}", m.pid));
        {
            let mut st = sh.st();
            st.db.pid = Some(m.pid);
            st.db.started_as = Some(started_as);
        }

        // 4. Supervise.
        match supervise(sh, cfg, node, paths, &mut m, mode, reason) {
            Exit::Shutdown => break,
            Exit::Crashed => {
                crashes_in_a_row += 1;
                sh.st().db.restarts += 1;
                // Quick repeated deaths: back off, so a broken node does not spin.
                if crashes_in_a_row > 2
                    && sh.nap(Duration::from_secs(u64::from(crashes_in_a_row.min(10))))
                {
                    break;
                }
            }
            Exit::Healthy => {
                crashes_in_a_row = 0;
                sh.st().db.restarts += 1;
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
            sh.log(&format!("stopping mariadbd (pid {})", m.pid));
            let t = Instant::now();
            // A mariadbd that never got Synced (a joiner waiting for a state transfer from
            // peers that are stopping too) may ignore SIGTERM for minutes; killing it is a crash
            // it recovers from (--wsrep-recover), so it gets less time than a Synced one.
            let clean = m.stop(Duration::from_secs(if was_healthy { 120 } else { 30 }));
            sh.log(&format!(
                "mariadbd stopped {}in {:.1} s",
                if clean { "cleanly " } else { "by SIGKILL " },
                t.elapsed().as_secs_f64()
            ));
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
            sh.error(format!(
                "mariadbd (pid {}) exited: {st}; recovering and restarting",
                m.pid
            ));
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
                        sh.log(&format!("status query: {e}"));
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

fn cache_loop(
    sh: Arc<Shared>,
    cfg: &ClusterConfig,
    node: &Node,
    dir: PathBuf,
    program: Option<PathBuf>,
) {
    let Some(program) = program.filter(|_| cfg.cache.enabled) else {
        sh.st().cache.state = "disabled".into();
        return;
    };
    let mut backoff = Duration::from_millis(500);
    while !sh.stopping() {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("cache.log"));
        let Ok(log) = log else {
            sh.st().cache.state = "failed: cannot open cache.log".into();
            return;
        };
        let mut c = Command::new(&program);
        c.args(cache::cache_args(cfg, node))
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        // The cache must not outlive a killed agent (it would hold the port against the next).
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let started = Instant::now();
        match c.spawn() {
            Ok(mut child) => {
                let pid = child.id() as i32;
                {
                    let mut st = sh.st();
                    st.cache.pid = Some(pid);
                    st.cache.state = "running".into();
                    st.cache.role = None;
                    st.cache.applied = None;
                    st.cache.leader_slot = None;
                }
                sh.log(&format!(
                    "started keel cache (pid {pid}) on {}{}",
                    node.cache_addr(),
                    if cfg.cache.clustered() {
                        format!(
                            ", cluster member {} of {}",
                            node.raft_addr(),
                            cfg.cache_peers()
                        )
                    } else {
                        " (standalone)".into()
                    }
                ));
                let mut last_stats = Instant::now();
                let status = loop {
                    if sh.stopping() {
                        process::kill_group(pid, libc::SIGTERM);
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_secs(3) {
                            if let Ok(Some(_)) = child.try_wait() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        process::kill_group(pid, libc::SIGKILL);
                        let _ = child.wait();
                        let mut st = sh.st();
                        st.cache.pid = None;
                        st.cache.state = "stopped".into();
                        return;
                    }
                    if let Ok(Some(st)) = child.try_wait() {
                        break st;
                    }
                    if cfg.cache.clustered() && last_stats.elapsed() >= Duration::from_secs(1) {
                        last_stats = Instant::now();
                        if let Ok(stats) =
                            cache::cache_stats(&node.cache_addr(), Duration::from_millis(500))
                        {
                            let mut st = sh.st();
                            st.cache.role = stats.get("cluster_role").cloned();
                            st.cache.applied = stats
                                .get("cluster_applied_index")
                                .and_then(|v| v.parse().ok());
                            st.cache.leader_slot = stats
                                .get("cluster_leader_slot")
                                .and_then(|v| v.parse().ok());
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                };
                sh.error(format!(
                    "keel cache (pid {pid}) exited: {status}; restarting it on {}",
                    node.cache_addr()
                ));
                let mut st = sh.st();
                st.cache.pid = None;
                st.cache.role = None;
                st.cache.applied = None;
                st.cache.state = format!(
                    "failed: exited {status}, see {}",
                    dir.join("cache.log").display()
                );
                st.cache.restarts += 1;
            }
            Err(e) => sh.st().cache.state = format!("failed: {e}"),
        }
        backoff = if started.elapsed() > Duration::from_secs(10) {
            Duration::from_millis(500)
        } else {
            (backoff * 2).min(Duration::from_secs(10))
        };
        if sh.nap(backoff) {
            break;
        }
    }
    sh.st().cache.state = "stopped".into();
}
