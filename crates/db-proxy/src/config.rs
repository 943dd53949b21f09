//! The proxy's settings: where it listens, the backends in the cluster description's order (the
//! order breaks ties when a new writer is chosen, so it must be the same on every proxy), the
//! monitor user, and the timings. Built from explicit values or from the cluster description.

use crate::health::Thresholds;
use crate::ProxyError;
use cluster_config::ClusterConfig;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// One Galera node the proxy can send connections to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
}

/// Everything the proxy needs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// This proxy's node name (for status and logs).
    pub name: Option<String>,
    pub listen: SocketAddr,
    /// In the cluster description's order.
    pub backends: Vec<Backend>,
    pub monitor_user: String,
    pub monitor_password: String,
    /// Time between two checks of a backend (at most 500 ms per issue 4).
    pub check_interval: Duration,
    /// A check without an answer in this time fails (a SIGSTOPped node).
    pub check_timeout: Duration,
    pub thresholds: Thresholds,
    /// How long a new connection waits for a writer before it gets an error packet.
    pub connect_wait: Duration,
    /// Connections beyond this get `ERROR 1040 Too many connections`.
    pub max_connections: usize,
    /// How long connections to a drained former writer may go on before they are closed.
    pub drain_timeout: Duration,
    /// TCP connect timeout to a backend.
    pub backend_connect_timeout: Duration,
    /// Timeout of a read or compare-and-set of `keel_meta` (a claim waits for Galera to evict a
    /// dead member, about 5 s).
    pub meta_timeout: Duration,
    /// Serve `/metrics`, `/status`, `/drain/NODE`, `/undrain/NODE` here, if set.
    pub metrics_listen: Option<SocketAddr>,
    /// Who may drain and undrain through `metrics_listen` (and read `/metrics`, if the tier
    /// says so).
    pub control: crate::control::ControlAuth,
}

impl ProxyConfig {
    /// Settings with the defaults: checks every 500 ms with a 1 s timeout, rise 2 / fall 2,
    /// connections wait up to 10 s for a writer, 2000 connections, 30 s drain.
    pub fn new(
        listen: SocketAddr,
        backends: Vec<Backend>,
        monitor_user: &str,
        monitor_password: &str,
    ) -> ProxyConfig {
        ProxyConfig {
            name: None,
            listen,
            backends,
            monitor_user: monitor_user.into(),
            monitor_password: monitor_password.into(),
            check_interval: Duration::from_millis(500),
            check_timeout: Duration::from_millis(1000),
            thresholds: Thresholds::default(),
            connect_wait: Duration::from_secs(10),
            max_connections: 2000,
            drain_timeout: Duration::from_secs(30),
            backend_connect_timeout: Duration::from_secs(2),
            meta_timeout: Duration::from_secs(3),
            metrics_listen: None,
            control: Default::default(),
        }
    }

    /// The proxy of node `name` of a cluster description: listens on that node's `proxy_port`,
    /// forwards to every node's `sql_port`, checks as `[users.monitor]`.
    pub fn from_cluster(cluster: &ClusterConfig, name: &str) -> Result<ProxyConfig, ProxyError> {
        let me = cluster
            .node(name)
            .map_err(|e| ProxyError::Config(e.to_string()))?;
        let mut cfg = ProxyConfig::from_cluster_at(cluster, resolve(&me.proxy_addr())?)?;
        cfg.name = Some(name.into());
        Ok(cfg)
    }

    /// A proxy of a host that is not a node of the description (an app server of Seafile's
    /// layout (b)): listens on `listen`, forwards to every node's `sql_port`, checks as
    /// `[users.monitor]`; it has no node name.
    pub fn from_cluster_at(
        cluster: &ClusterConfig,
        listen: SocketAddr,
    ) -> Result<ProxyConfig, ProxyError> {
        let mut backends = Vec::new();
        for n in &cluster.nodes {
            backends.push(Backend {
                name: n.name.clone(),
                addr: resolve(&n.sql_addr())?,
            });
        }
        let pw = cluster
            .monitor_password()
            .map_err(|e| ProxyError::Config(e.to_string()))?;
        let mut cfg = ProxyConfig::new(listen, backends, &cluster.users.monitor.name, &pw);
        cfg.control = crate::control::ControlAuth::from_cluster(cluster)
            .map_err(|e| ProxyError::Config(e.to_string()))?;
        Ok(cfg)
    }

    /// Checks the settings for mistakes that would make the proxy misbehave.
    pub fn validate(&self) -> Result<(), ProxyError> {
        let bad = |m: String| Err(ProxyError::Config(m));
        if self.backends.is_empty() {
            return bad("no backends".into());
        }
        for (i, b) in self.backends.iter().enumerate() {
            if b.name.is_empty() || b.name.len() > 64 {
                return bad(format!(
                    "backend[{i}]: name {:?} must be 1-64 characters",
                    b.name
                ));
            }
            if self.backends[..i].iter().any(|o| o.name == b.name) {
                return bad(format!("backend[{i}]: name {:?} appears twice", b.name));
            }
        }
        if self.check_interval > Duration::from_millis(500) || self.check_interval.is_zero() {
            return bad("check interval must be between 1 and 500 ms".into());
        }
        if self.check_timeout.is_zero() || self.max_connections == 0 {
            return bad("check timeout and connection limit must not be 0".into());
        }
        if self.monitor_user.is_empty() {
            return bad("monitor user is empty".into());
        }
        Ok(())
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.name == name)
    }
}

/// `host:port` to one socket address.
pub fn resolve(s: &str) -> Result<SocketAddr, ProxyError> {
    s.to_socket_addrs()
        .map_err(|e| ProxyError::Config(format!("cannot resolve {s}: {e}")))?
        .next()
        .ok_or_else(|| ProxyError::Config(format!("{s} resolves to no address")))
}

/// Parses `name=host:port`.
pub fn parse_backend(s: &str) -> Result<Backend, ProxyError> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| ProxyError::Config(format!("backend {s:?}: expected NAME=HOST:PORT")))?;
    Ok(Backend {
        name: name.trim().into(),
        addr: resolve(addr.trim())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_the_seafile_example_description() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../cluster-config/examples/seafile-layout-a.toml");
        let cluster = ClusterConfig::load(&path).expect("example description");
        let cfg = ProxyConfig::from_cluster(&cluster, "app2").expect("proxy config");
        assert_eq!(cfg.listen, "10.0.0.12:3306".parse().unwrap());
        let names: Vec<&str> = cfg.backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["app1", "app2", "app3"], "the description's order");
        assert_eq!(cfg.backends[0].addr, "10.0.0.11:3307".parse().unwrap());
        assert_eq!(cfg.monitor_user, "keel_monitor");
        assert!(!cfg.monitor_password.is_empty());
        assert!(cfg.validate().is_ok());
        assert!(ProxyConfig::from_cluster(&cluster, "nope").is_err());
        assert_eq!(cfg.name.as_deref(), Some("app2"));
        // An app server's own proxy: same backends and monitor user, its own address, no name.
        let app = ProxyConfig::from_cluster_at(&cluster, "127.0.0.1:3306".parse().unwrap())
            .expect("app server proxy");
        assert_eq!(app.listen, "127.0.0.1:3306".parse().unwrap());
        assert_eq!(app.backends, cfg.backends);
        assert_eq!(
            (app.monitor_user.as_str(), app.monitor_password.as_str()),
            (cfg.monitor_user.as_str(), cfg.monitor_password.as_str())
        );
        assert_eq!(app.name, None);
        assert!(app.validate().is_ok());
    }

    #[test]
    fn backend_flags_and_validation() {
        let b = parse_backend("n1=127.0.0.1:3307").unwrap();
        assert_eq!((b.name.as_str(), b.addr.port()), ("n1", 3307));
        assert!(parse_backend("127.0.0.1:3307").is_err());
        let mut cfg =
            ProxyConfig::new("127.0.0.1:0".parse().unwrap(), vec![b.clone(), b], "m", "p");
        assert!(cfg.validate().is_err(), "duplicate names");
        cfg.backends.pop();
        cfg.check_interval = Duration::from_secs(2);
        assert!(cfg.validate().is_err(), "checks at most every 500 ms");
    }
}
