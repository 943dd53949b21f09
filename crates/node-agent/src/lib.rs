//! `keel node`: the agent of one node of the tier.
//!
//! It writes the node's my.cnf, decides with its peers (through their control APIs) whether this
//! node bootstraps, joins or waits ([`galera::decide`]), runs `mariadbd` in its own process group
//! and keeps it alive: after a crash it recovers the position (`--wsrep-recover`) and restarts
//! with `--wsrep-start-position`, so the node rejoins by IST. It also runs the node's
//! `keel cache` (by default in cluster mode: the nodes' caches replicate through Raft; memcached
//! on `cache_port` and Redis on `redis_port`, see [`cache::cache_args`]; restarted on the same
//! client ports after a crash), the node's db-proxy
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
//! Threads, not async: one supervises mariadbd ([`db`]), one the cache ([`cache`]), one accepts
//! control requests; the proxy has its own small tokio runtime. Children are
//! [`supervisor::Child`]ren. The agent signals only processes it started, and never deletes data.

#![forbid(unsafe_code)]

pub mod adopt;
pub mod cache;
mod control;
mod db;
pub mod http;
mod peers;
mod proxy;
pub mod state;

use cluster_config::ClusterConfig;
pub use db::ensure_users_sql;
use galera::mycnf::{self, NodePaths};
use galera::process::{self, Mariadbd};
pub(crate) use peers::peer_state;
pub use state::{CacheState, DbState, NodeState, ProxyState};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::{error, info};

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
    #[error("installing the SIGTERM/SIGINT handler: {0}")]
    Signals(std::io::Error),
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

pub(crate) struct Shared {
    /// This node's name (the `node` field of every log line).
    node: String,
    state: Mutex<NodeState>,
    /// The running proxy, for the control API.
    proxy: Mutex<Option<db_proxy::Observer>>,
    shutdown: AtomicBool,
    /// Who may change things through the control API.
    control: db_proxy::control::ControlAuth,
}

impl Shared {
    fn observer(&self) -> Option<db_proxy::Observer> {
        self.proxy.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn st(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst) || supervisor::termination_requested()
    }
    fn log(&self, msg: &str) {
        info!(node = %self.node, "{msg}");
    }
    /// Logs a failure and keeps it as the node's `last_error` (shown by `keel status`).
    fn error(&self, msg: String) {
        error!(node = %self.node, "{msg}");
        self.record_error(msg);
    }
    fn record_error(&self, msg: String) {
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

    supervisor::catch_termination().map_err(|e| AgentError::Signals(e.into()))?;

    let shared = Arc::new(Shared {
        node: node.name.clone(),
        state: Mutex::new(NodeState::new(
            &node.name,
            &cfg.cluster.name,
            node.sql_addr(),
            node.cache_addr(),
        )),
        proxy: Mutex::new(None),
        shutdown: AtomicBool::new(false),
        control: db_proxy::control::ControlAuth::from_cluster(&cfg)?,
    });
    {
        let mut st = shared.st();
        st.proxy.addr = node.proxy_addr();
        if !opts.proxy {
            st.proxy.state = "disabled".into();
        }
        st.cache.redis_addr = cfg.cache.redis_enabled().then(|| node.redis_addr());
        st.cache.mode = if cfg.cache.clustered() {
            cluster_config::CACHE_CLUSTER
        } else {
            cluster_config::CACHE_STANDALONE
        }
        .into();
    }
    info!(
        node = %node.name,
        cluster = %cfg.cluster.name,
        "agent started, files in {}, control API on {}",
        paths.dir.display(),
        node.control_addr()
    );
    if let Some(pid) = stale {
        info!(
            node = %node.name,
            pid,
            "removed a stale pid file {} (its process is not running)",
            paths.pid_file.display()
        );
    }

    {
        let sh = shared.clone();
        std::thread::spawn(move || control::serve_control(sh, control));
    }
    let cache_thread = {
        let sh = shared.clone();
        let (cfg, node, dir) = (cfg.clone(), node.clone(), paths.dir.clone());
        let prog = opts.cache_program.clone();
        std::thread::spawn(move || cache::supervise(sh, &cfg, &node, dir, prog))
    };
    let proxy_thread = opts.proxy.then(|| {
        let sh = shared.clone();
        let (cfg, node) = (cfg.clone(), node.clone());
        std::thread::spawn(move || proxy::run(sh, &cfg, &node))
    });

    if let Some(m) = &adopted {
        info!(
            node = %node.name,
            child = "mariadbd",
            pid = m.pid,
            "adopted the running mariadbd of an earlier agent"
        );
    }
    db::db_loop(&shared, &cfg, &node, &paths, os_user.as_deref(), adopted);
    shared.shutdown.store(true, Ordering::SeqCst);
    let _ = cache_thread.join();
    if let Some(t) = proxy_thread {
        let _ = t.join();
    }
    info!(node = %node.name, "agent stopped");
    Ok(())
}
