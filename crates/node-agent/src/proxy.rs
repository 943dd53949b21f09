//! The node's db-proxy, run inside the agent on its own small tokio runtime.
//!
//! Why in the agent rather than as a supervised `keel db-proxy` child: the control API serves the
//! proxy's `/metrics` and status straight from [`db_proxy::Observer`] (no second HTTP port per
//! node, no scraping of a child), the proxy's lifetime is exactly the agent's (a killed agent
//! cannot leave a proxy holding the port against its successor), and the proxy needs nothing the
//! agent does not already have (the description, the monitor password). The proxy's tasks run on
//! their own runtime threads, so a stuck mariadbd or a slow peer never delays client traffic,
//! and a panicking proxy task is caught by tokio without taking the agent down. The trade-off: a
//! crash of the agent process takes the proxy with it; `keel up` (or systemd) restarts the agent,
//! which adopts the running mariadbd, so clients only reconnect.
//!
//! The agent also uses what the proxies know when it starts a mariadbd that joins:
//! [`prefer_non_writer_donor`] writes `wsrep_sst_donor = <every other node but the writer>,` into
//! the node's my.cnf (see [`galera::donor`] for why: a donor is `Donor/Desynced` and gets no
//! traffic, so the writer as donor would move the role). The writer comes from this agent's own
//! proxy, else from the peers' `GET /state` (their proxies' status).

use crate::Shared;
use cluster_config::{ClusterConfig, Node};
use std::sync::Arc;
use std::time::Duration;

/// Runs the proxy of `node` until the agent stops. Binding is retried (the port may still be
/// held by a process that is going away); every failure is visible in the node's state.
pub(crate) fn run(sh: Arc<Shared>, cfg: &ClusterConfig, node: &Node) {
    let pcfg = match db_proxy::ProxyConfig::from_cluster(cfg, &node.name) {
        Ok(c) => c,
        Err(e) => {
            sh.error(format!("db-proxy settings: {e}"));
            sh.st().proxy.state = format!("failed: {e}");
            return;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("keel-proxy")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            sh.st().proxy.state = format!("failed: cannot start a runtime: {e}");
            return;
        }
    };
    let mut said = String::new();
    while !sh.stopping() {
        sh.st().proxy.state = "starting".into();
        match rt.block_on(db_proxy::Proxy::start(pcfg.clone())) {
            Ok(proxy) => {
                *sh.proxy.lock().unwrap_or_else(|e| e.into_inner()) = Some(proxy.observer());
                sh.st().proxy.state = "running".into();
                sh.log(&format!(
                    "db-proxy listening on {} (backends {})",
                    proxy.local_addr(),
                    pcfg.backends
                        .iter()
                        .map(|b| format!("{}={}", b.name, b.addr))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                while !sh.nap(Duration::from_millis(200)) {}
                *sh.proxy.lock().unwrap_or_else(|e| e.into_inner()) = None;
                rt.block_on(proxy.shutdown());
                sh.log("db-proxy stopped");
                break;
            }
            Err(e) => {
                let msg = match &e {
                    db_proxy::ProxyError::Bind { addr, .. } => format!(
                        "{e}{}",
                        galera::process::port_owner(addr.port())
                            .map(|o| format!(" (in use by {o})"))
                            .unwrap_or_default()
                    ),
                    _ => e.to_string(),
                };
                if msg != said {
                    sh.error(format!("db-proxy (node.proxy_port): {msg}; retrying"));
                    said = msg.clone();
                }
                sh.st().proxy.state = format!("failed: {msg}");
                if sh.nap(Duration::from_secs(1)) {
                    break;
                }
            }
        }
    }
    sh.st().proxy.state = "stopped".into();
    rt.shutdown_timeout(Duration::from_secs(2));
}

/// The writer the db-proxies route to, as this agent can learn it right now: its own proxy's
/// view first, else what the peers' proxies report in their `GET /state` (description order).
/// `None` when nobody knows (no proxy runs, or none has read `keel_meta.writer` yet).
pub(crate) fn known_writer(sh: &Shared, cfg: &ClusterConfig, me: &str) -> Option<String> {
    if let Some(w) = sh.observer().and_then(|o| o.status().writer) {
        return Some(w);
    }
    cfg.nodes
        .iter()
        .filter(|n| n.name != me)
        .find_map(|n| crate::peer_state(n).ok()?.proxy.status?.writer)
}

/// Just before a mariadbd starts: a joiner asks for its state transfer (SST or IST) from a node
/// that is not the writer ([`galera::donor::preferred_donors`] written into its my.cnf by
/// [`galera::mycnf::with_sst_donor`]), so restarting or re-seeding a node does not turn the
/// writer into a donor and move the role; a bootstrap drops the line. Failures are logged and
/// the start goes on (Galera then picks any donor).
pub(crate) fn prefer_non_writer_donor(
    sh: &Shared,
    cfg: &ClusterConfig,
    node: &Node,
    cnf: &std::path::Path,
    joining: bool,
) {
    let donors = if joining {
        let writer = known_writer(sh, cfg, &node.name);
        let members: Vec<&str> = cfg.nodes.iter().map(|n| n.name.as_str()).collect();
        let donors = galera::donor::preferred_donors(&members, &node.name, writer.as_deref());
        sh.log(&match (&donors, &writer) {
            (Some(d), Some(w)) => format!("state transfer donors {d} (not the writer {w})"),
            (None, Some(w)) => format!("no donor preference (writer {w})"),
            _ => "no donor preference: the writer is not known".into(),
        });
        donors
    } else {
        None
    };
    let text = match std::fs::read_to_string(cnf) {
        Ok(t) => t,
        Err(e) => {
            sh.error(format!("reading {}: {e}", cnf.display()));
            return;
        }
    };
    let new = galera::mycnf::with_sst_donor(&text, donors.as_deref());
    if new != text {
        if let Err(e) = std::fs::write(cnf, new) {
            sh.error(format!("writing {}: {e}", cnf.display()));
        }
    }
}
