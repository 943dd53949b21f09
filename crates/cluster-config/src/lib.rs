//! The cluster description: one TOML file, the same on every host, that says which nodes form the
//! tier, where each node listens (SQL, Galera group communication, IST, SST, cache, cache cluster,
//! Redis, proxy, control API), where data lives, which database users exist and where their
//! passwords (and the Redis password) come from.
//!
//! [`ClusterConfig::load`] parses, fills in defaults, resolves relative paths against the file's
//! folder and validates. Validation collects *every* problem and names the field of each one
//! (`node[2].cache_port: 11211 on 127.0.0.1 is also node[0].cache_port`), so an operator fixes the
//! file in one pass. This crate only reads files: it never creates or deletes anything.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Everything that can be wrong with a cluster description.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// (The I/O error is in the message, not a `source`: printed as an error chain it would
    /// appear twice.)
    #[error("cannot read cluster description {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {} problem(s):\n{}", .problems.len(), FieldErrors(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<FieldError>,
    },
    #[error("unknown node {name:?}: the cluster description has {}", .known.join(", "))]
    UnknownNode { name: String, known: Vec<String> },
    #[error("{field}: cannot read password: {message}")]
    Password { field: String, message: String },
}

/// One validation problem: the field (a path like `node[1].sql_port`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

struct FieldErrors<'a>(&'a [FieldError]);
impl fmt::Display for FieldErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// The whole description, as in the file (after defaults).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub cluster: Cluster,
    #[serde(default)]
    pub database: Database,
    pub users: Users,
    #[serde(default)]
    pub cache: Cache,
    #[serde(default)]
    pub control: Control,
    /// The nodes, in order. The order matters: it breaks ties in the bootstrap decision.
    #[serde(rename = "node", default)]
    pub nodes: Vec<Node>,
    /// The folder of the file, against which relative paths are resolved. Not part of the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[cluster]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Galera's `wsrep_cluster_name`; also written into every node's folder so that a datadir of
    /// another cluster is recognised.
    pub name: String,
    /// Each node keeps its files in `data_dir/<node name>` unless the node sets its own `data_dir`.
    pub data_dir: PathBuf,
}

/// `[database]`: MariaDB/Galera settings shared by all nodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    pub mariadbd: PathBuf,
    pub install_db: PathBuf,
    pub client: PathBuf,
    pub provider: PathBuf,
    /// `rsync` (fast, the default) or `mariabackup` (needs `[users.sst]`).
    pub sst_method: String,
    /// The OS user mariadbd runs as when keel runs as root.
    pub os_user: String,
    pub innodb_buffer_pool_size: String,
    pub innodb_log_file_size: String,
    pub gcache_size: String,
    pub slave_threads: u32,
    /// Extra lines appended to the `[mariadbd]` section of every node's my.cnf.
    pub extra: Vec<String>,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            mariadbd: "/usr/sbin/mariadbd".into(),
            install_db: "/usr/bin/mariadb-install-db".into(),
            client: "/usr/bin/mariadb".into(),
            provider: "/usr/lib/galera/libgalera_smm.so".into(),
            sst_method: "rsync".into(),
            os_user: "mysql".into(),
            innodb_buffer_pool_size: "128M".into(),
            innodb_log_file_size: "48M".into(),
            gcache_size: "64M".into(),
            slave_threads: 2,
            extra: Vec::new(),
        }
    }
}

/// `[users]`: the database users keel creates when it bootstraps a new cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// The application's user (Seafile's), granted all on `databases`.
    pub app: User,
    /// The user the db-proxies' health checks log in as: `PROCESS`, plus `ALL ON keel_meta.*`
    /// where the proxies keep the writer row (no access to application data).
    pub monitor: User,
    /// Only for `sst_method = "mariabackup"`.
    #[serde(default)]
    pub sst: Option<User>,
}

/// One database user and where its password comes from: exactly one of `password_file`
/// (preferred; relative to the description's folder) or `password_env`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// The host part of the account (`'name'@'host'`).
    #[serde(default = "default_user_host")]
    pub host: String,
    /// Databases created and granted to this user (app user only; Seafile's three by default).
    #[serde(default)]
    pub databases: Vec<String>,
}

fn default_user_host() -> String {
    "%".into()
}

/// `[cache]`: settings of every node's `keel cache`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    pub enabled: bool,
    /// `cluster` (the default: the nodes' caches replicate every write through Raft, so every
    /// node serves every key with the same data) or `standalone` (independent caches).
    pub mode: String,
    /// Cluster mode reads: `linearizable` (the default) or `local` (served by the node's own
    /// replica without a quorum round; may lag by milliseconds).
    pub read: String,
    pub memory_mb: u64,
    pub max_connections: u32,
    /// Extra arguments passed to `keel cache` (memcached's flags).
    pub extra_args: Vec<String>,
    /// Serve the Redis protocol on every node's `redis_port` (the default; Seafile 13's
    /// `CACHE_PROVIDER=redis`). `redis = false` turns it off for the whole tier (Seafile 11/12
    /// with memcached only).
    pub redis: bool,
    /// The Redis password (`requirepass`), from a file (preferred; relative to the
    /// description's folder) or an environment variable; at most one of the two. Neither: Redis
    /// without a password, like Seafile's default `REDIS_PASSWORD=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_password_file: Option<PathBuf>,
    /// The environment variable holding the Redis password (instead of `redis_password_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_password_env: Option<String>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            enabled: true,
            mode: CACHE_CLUSTER.into(),
            read: "linearizable".into(),
            memory_mb: 64,
            max_connections: 1024,
            extra_args: Vec::new(),
            redis: true,
            redis_password_file: None,
            redis_password_env: None,
        }
    }
}

/// `[control]`: the nodes' control API (every node's `control_port`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Control {
    /// The token a request must carry (`Authorization: Bearer TOKEN`) to change anything through
    /// the control API (`POST /shutdown`, `POST /bootstrap/force`), from a file (preferred;
    /// relative to the description's folder) or an environment variable; at most one of the two.
    /// Neither: every such request is refused. `keel up` generates one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The environment variable holding the control token (instead of `token_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Whether `GET /metrics` needs the token too (default: no, so Prometheus scrapes it
    /// without one). The other `GET` routes never need it.
    pub metrics_need_token: bool,
}

/// `cache.mode` of replicated caches.
pub const CACHE_CLUSTER: &str = "cluster";
/// `cache.mode` of independent caches.
pub const CACHE_STANDALONE: &str = "standalone";

impl Cache {
    /// True when the nodes' caches form one Raft cluster.
    pub fn clustered(&self) -> bool {
        self.enabled && self.mode == CACHE_CLUSTER
    }
    /// True when every node's cache also serves Redis on its `redis_port`.
    pub fn redis_enabled(&self) -> bool {
        self.enabled && self.redis
    }
}

/// The default distance between a node's cache port and its cache-cluster (Raft) port.
pub const CACHE_CLUSTER_PORT_OFFSET: u16 = 1000;

/// `[[node]]`: one host's share of the tier. Ports default to the usual ones, which is right
/// when every node is on its own host; nodes sharing an address need distinct ports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    /// The address every endpoint of this node binds to and peers connect to.
    pub address: String,
    #[serde(default = "d_sql")]
    pub sql_port: u16,
    #[serde(default = "d_galera")]
    pub galera_port: u16,
    #[serde(default = "d_ist")]
    pub ist_port: u16,
    #[serde(default = "d_sst")]
    pub sst_port: u16,
    #[serde(default = "d_cache")]
    pub cache_port: u16,
    #[serde(default = "d_proxy")]
    pub proxy_port: u16,
    #[serde(default = "d_control")]
    pub control_port: u16,
    /// Where the node's cache serves Redis (6379 by default); used unless `cache.redis = false`.
    #[serde(default = "d_redis")]
    pub redis_port: u16,
    /// The cache cluster's inter-node (Raft) port; `cache_port + 1000` when not given. Used
    /// only with `cache.mode = "cluster"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_cluster_port: Option<u16>,
    /// Overrides `cluster.data_dir/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

fn d_sql() -> u16 {
    3306
}
fn d_galera() -> u16 {
    4567
}
fn d_ist() -> u16 {
    4568
}
fn d_sst() -> u16 {
    4444
}
fn d_cache() -> u16 {
    11211
}
fn d_proxy() -> u16 {
    6033
}
fn d_control() -> u16 {
    7480
}
fn d_redis() -> u16 {
    6379
}

impl Node {
    /// Every port of the node with its field name, for validation and for "port in use" checks.
    pub fn ports(&self) -> [(&'static str, u16); 7] {
        [
            ("sql_port", self.sql_port),
            ("galera_port", self.galera_port),
            ("ist_port", self.ist_port),
            ("sst_port", self.sst_port),
            ("cache_port", self.cache_port),
            ("proxy_port", self.proxy_port),
            ("control_port", self.control_port),
        ]
    }
    /// The cache cluster (Raft) port: `cache_cluster_port`, else `cache_port + 1000` (None
    /// when that overflows; validation reports it).
    pub fn raft_port(&self) -> Option<u16> {
        self.cache_cluster_port
            .or_else(|| self.cache_port.checked_add(CACHE_CLUSTER_PORT_OFFSET))
    }
    /// `address:port` of the cache cluster's inter-node transport.
    pub fn raft_addr(&self) -> String {
        join_host_port(&self.address, self.raft_port().unwrap_or(0))
    }
    /// `address:port` for SQL clients.
    pub fn sql_addr(&self) -> String {
        join_host_port(&self.address, self.sql_port)
    }
    pub fn galera_addr(&self) -> String {
        join_host_port(&self.address, self.galera_port)
    }
    pub fn ist_addr(&self) -> String {
        join_host_port(&self.address, self.ist_port)
    }
    pub fn sst_addr(&self) -> String {
        join_host_port(&self.address, self.sst_port)
    }
    pub fn cache_addr(&self) -> String {
        join_host_port(&self.address, self.cache_port)
    }
    /// `address:port` of the node's Redis (its cache's Redis protocol).
    pub fn redis_addr(&self) -> String {
        join_host_port(&self.address, self.redis_port)
    }
    pub fn proxy_addr(&self) -> String {
        join_host_port(&self.address, self.proxy_port)
    }
    pub fn control_addr(&self) -> String {
        join_host_port(&self.address, self.control_port)
    }
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Seafile's three databases, the default grant of the app user.
pub const SEAFILE_DATABASES: [&str; 3] = ["ccnet_db", "seafile_db", "seahub_db"];

impl ClusterConfig {
    /// Reads, parses and validates the description at `path`.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.to_owned(),
            err,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let base = std::fs::canonicalize(&base).unwrap_or(base);
        Self::from_toml(&text, &base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            ConfigError::Invalid { problems, .. } => ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            },
            other => other,
        })
    }

    /// Parses and validates `text`; relative paths are resolved against `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<ClusterConfig, ConfigError> {
        let mut cfg: ClusterConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        cfg.base_dir = base_dir.to_owned();
        if cfg.users.app.databases.is_empty() {
            cfg.users.app.databases = SEAFILE_DATABASES.iter().map(|s| s.to_string()).collect();
        }
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: PathBuf::from("<text>"),
                problems,
            })
        }
    }

    /// The description as TOML (what `keel up` writes to `DIR/cluster.toml`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a cluster description always serialises")
    }

    /// Every problem of the description; empty when it is valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        let mut bad = |field: String, problem: String| out.push(FieldError { field, problem });

        if !valid_name(&self.cluster.name) {
            bad(
                "cluster.name".into(),
                format!(
                    "{:?} must be 1-32 letters, digits, '-' or '_'",
                    self.cluster.name
                ),
            );
        }
        if self.cluster.data_dir.as_os_str().is_empty() {
            bad("cluster.data_dir".into(), "must not be empty".into());
        }
        match self.nodes.len() {
            0 => bad("node".into(), "at least one [[node]] is needed".into()),
            2 => bad(
                "node".into(),
                "two nodes cannot keep quorum when one of them fails; use three (or one)".into(),
            ),
            _ => {}
        }
        if !matches!(self.database.sst_method.as_str(), "rsync" | "mariabackup") {
            bad(
                "database.sst_method".into(),
                format!(
                    "{:?} is not one of rsync, mariabackup",
                    self.database.sst_method
                ),
            );
        }
        if self.database.sst_method == "mariabackup" && self.users.sst.is_none() {
            bad(
                "users.sst".into(),
                "sst_method = \"mariabackup\" needs an SST user".into(),
            );
        }
        if self.database.slave_threads == 0 {
            bad("database.slave_threads".into(), "must be at least 1".into());
        }
        let mut users = vec![
            ("users.app", &self.users.app),
            ("users.monitor", &self.users.monitor),
        ];
        if let Some(sst) = &self.users.sst {
            users.push(("users.sst", sst));
        }
        for (field, user) in &users {
            if user.name.is_empty()
                || user.name.len() > 80
                || user.name.contains(['\'', '"', '`', '\\'])
            {
                bad(
                    format!("{field}.name"),
                    format!("{:?} is not a usable user name", user.name),
                );
            }
            if user.host.is_empty() || user.host.contains(['\'', '"', '`', '\\']) {
                bad(
                    format!("{field}.host"),
                    format!("{:?} is not a usable host pattern", user.host),
                );
            }
            for (i, db) in user.databases.iter().enumerate() {
                if !valid_name(db) {
                    bad(
                        format!("{field}.databases[{i}]"),
                        format!("{db:?} is not a usable database name"),
                    );
                }
            }
            if let Err(e) = self.password_of(field, user) {
                match e {
                    ConfigError::Password { field, message } => bad(field, message),
                    other => bad(field.to_string(), other.to_string()),
                }
            }
        }
        if self.users.app.name == self.users.monitor.name {
            bad(
                "users.monitor.name".into(),
                format!("{:?} is also users.app.name", self.users.monitor.name),
            );
        }

        let mut names: HashMap<&str, usize> = HashMap::new();
        // (address, port) -> first field that uses it
        let mut endpoints: HashMap<(String, u16), String> = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let at = format!("node[{i}]");
            if !valid_name(&node.name) {
                bad(
                    format!("{at}.name"),
                    format!("{:?} must be 1-32 letters, digits, '-' or '_'", node.name),
                );
            }
            if let Some(first) = names.insert(&node.name, i) {
                bad(
                    format!("{at}.name"),
                    format!("{:?} is also the name of node[{first}]", node.name),
                );
            }
            if !valid_address(&node.address) {
                bad(
                    format!("{at}.address"),
                    format!("{:?} is not an IP address or host name", node.address),
                );
            }
            if node.address == "0.0.0.0" || node.address == "::" {
                bad(
                    format!("{at}.address"),
                    "peers must be able to connect to it: give the node's own address".into(),
                );
            }
            let mut ports = node.ports().to_vec();
            if self.cache.redis_enabled() {
                ports.push(("redis_port", node.redis_port));
            }
            if self.cache.clustered() {
                match node.raft_port() {
                    Some(p) => ports.push(("cache_cluster_port", p)),
                    None => bad(
                        format!("{at}.cache_cluster_port"),
                        format!(
                            "cache_port {} + {CACHE_CLUSTER_PORT_OFFSET} is above 65535: give cache_cluster_port",
                            node.cache_port
                        ),
                    ),
                }
            }
            for (field, port) in ports {
                if port == 0 {
                    bad(format!("{at}.{field}"), "must not be 0".into());
                    continue;
                }
                let key = (canonical_host(&node.address), port);
                if let Some(first) = endpoints.get(&key) {
                    bad(
                        format!("{at}.{field}"),
                        format!("{port} on {} is also {first}", node.address),
                    );
                } else {
                    endpoints.insert(key, format!("{at}.{field}"));
                }
            }
        }
        if !matches!(self.cache.mode.as_str(), CACHE_CLUSTER | CACHE_STANDALONE) {
            bad(
                "cache.mode".into(),
                format!(
                    "{:?} is not one of {CACHE_CLUSTER}, {CACHE_STANDALONE}",
                    self.cache.mode
                ),
            );
        }
        if !matches!(self.cache.read.as_str(), "linearizable" | "local") {
            bad(
                "cache.read".into(),
                format!("{:?} is not one of linearizable, local", self.cache.read),
            );
        }
        if self.cache.enabled && self.cache.memory_mb == 0 {
            bad("cache.memory_mb".into(), "must be at least 1".into());
        }
        if self.cache.redis_enabled() {
            if let Err(ConfigError::Password { field, message }) = self.redis_password() {
                bad(field, message);
            }
        }
        out
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<&Node, ConfigError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| ConfigError::UnknownNode {
                name: name.to_owned(),
                known: self.nodes.iter().map(|n| n.name.clone()).collect(),
            })
    }

    /// `--cluster-peers` of `keel cache` in cluster mode: `1=addr:raft_port,2=…`, slot *i+1*
    /// for the *i*-th node of the description.
    pub fn cache_peers(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{}={}", i + 1, n.raft_addr()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Position of the node in the description (its tie-break rank).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The folder where node `node` keeps its files.
    pub fn node_dir(&self, node: &Node) -> PathBuf {
        match &node.data_dir {
            Some(d) => self.resolve(d),
            None => self.resolve(&self.cluster.data_dir).join(&node.name),
        }
    }

    /// `gcomm://a:4567,b:4577,…`
    pub fn gcomm_address(&self) -> String {
        let peers: Vec<String> = self.nodes.iter().map(Node::galera_addr).collect();
        format!("gcomm://{}", peers.join(","))
    }

    /// Resolves a path of the description against its folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        let joined = if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        };
        // Drop `.` components so `data_dir = "."` gives tidy paths in logs and my.cnf.
        joined
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    }

    /// The password of the app user.
    pub fn app_password(&self) -> Result<String, ConfigError> {
        self.password_of("users.app", &self.users.app)
    }
    /// The password of the monitor user.
    pub fn monitor_password(&self) -> Result<String, ConfigError> {
        self.password_of("users.monitor", &self.users.monitor)
    }

    fn password_of(&self, field: &str, user: &User) -> Result<String, ConfigError> {
        self.secret(
            field,
            "password",
            user.password_file.as_deref(),
            user.password_env.as_deref(),
        )?
        .ok_or_else(|| ConfigError::Password {
            field: format!("{field}.password_file"),
            message: "missing: give password_file or password_env".into(),
        })
    }

    /// The Redis password (`cache.redis_password_file` or `cache.redis_password_env`); `None`
    /// when the description gives neither (Redis without a password).
    pub fn redis_password(&self) -> Result<Option<String>, ConfigError> {
        self.secret(
            "cache",
            "redis_password",
            self.cache.redis_password_file.as_deref(),
            self.cache.redis_password_env.as_deref(),
        )
    }

    /// The control API's token (`control.token_file` or `control.token_env`); `None` when the
    /// description gives neither (every request that changes something is then refused).
    pub fn control_token(&self) -> Result<Option<String>, ConfigError> {
        self.secret(
            "control",
            "token",
            self.control.token_file.as_deref(),
            self.control.token_env.as_deref(),
        )
    }

    /// `cache.redis_password_file`, resolved against the description's folder.
    pub fn redis_password_path(&self) -> Option<PathBuf> {
        self.cache
            .redis_password_file
            .as_deref()
            .map(|p| self.resolve(p))
    }

    /// Reads a secret from `<prefix>_file` or `<prefix>_env` (fields under `field`); `None`
    /// when neither is given.
    fn secret(
        &self,
        field: &str,
        prefix: &str,
        file: Option<&Path>,
        env: Option<&str>,
    ) -> Result<Option<String>, ConfigError> {
        let err = |f: &str, message: String| ConfigError::Password {
            field: format!("{field}.{prefix}_{f}"),
            message,
        };
        match (file, env) {
            (Some(_), Some(_)) => Err(err(
                "file",
                format!("give {prefix}_file or {prefix}_env, not both"),
            )),
            (None, None) => Ok(None),
            (Some(file), None) => {
                let path = self.resolve(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    err(
                        "file",
                        format!("unreadable password file {}: {e}", path.display()),
                    )
                })?;
                let pw = text.trim_end_matches(['\n', '\r']).to_owned();
                check_password(&pw).map_err(|m| err("file", format!("{}: {m}", path.display())))?;
                Ok(Some(pw))
            }
            (None, Some(var)) => {
                let pw = std::env::var(var)
                    .map_err(|_| err("env", format!("environment variable {var} is not set")))?;
                check_password(&pw).map_err(|m| err("env", format!("{var}: {m}")))?;
                Ok(Some(pw))
            }
        }
    }
}

fn check_password(pw: &str) -> Result<(), String> {
    if pw.is_empty() {
        return Err("the password is empty".into());
    }
    if pw.contains(['\'', '\\', '\n', '"']) {
        return Err("the password must not contain quotes, backslashes or newlines".into());
    }
    Ok(())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_address(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
        })
}

fn canonical_host(s: &str) -> String {
    match s {
        "localhost" => "127.0.0.1".into(),
        _ => s
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .unwrap_or_else(|_| s.to_ascii_lowercase()),
    }
}

/// Parses `host:port` (used by tools that read addresses back from status output).
pub fn parse_socket_addr(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

#[cfg(test)]
mod tests;
