//! Adopting a Galera node that was set up by hand (Debian's `mariadb-server` + `galera-4`, as
//! Seafile's manual does it): the pure part. Given what the node ran with — its effective server
//! options (`my_print_defaults --mysqld`, one `--name=value` a line) and its datadir's
//! `grastate.dat` — and the cluster description, [`plan`] either refuses with every problem it
//! found, each naming the setting, or returns the [`Plan`]: what keel keeps, what it changes and
//! why, and which settings it carries over into the node's `adopted.cnf`.
//!
//! Rules:
//! - **Must match** (else refused): Galera is on; `wsrep_cluster_name` = `cluster.name`; an
//!   explicit `wsrep_node_name` is this node's name (another node's name means the wrong host, a
//!   name outside the description a wrong description); an explicit `wsrep_node_address` is
//!   the node's `address`; the datadir is initialised and has a `grastate.dat` with a cluster
//!   UUID; that UUID is the one every peer that already runs keel reports (different UUIDs are
//!   different clusters: joining would replace this node's data with a full state transfer);
//!   `wsrep_sst_method` = `database.sst_method`.
//! - **Kept**: the data and the datadir (moved into the node folder, never copied), the cluster
//!   name and state, and every option keel does not write itself (character set, page size,
//!   `lower_case_table_names`, `sql_mode`, plugins, `wsrep_sst_auth`, …): those go to
//!   `adopted.cnf`, which keel adds to the node's my.cnf at every start.
//! - **Changed**: the options keel writes (paths, addresses, ports, Galera endpoints, the
//!   settings keel requires for Galera such as `innodb_flush_log_at_trx_commit = 1`, sizes from
//!   `[database]`): reported with old and new value.
//!
//! Nothing here does I/O; `node-agent`'s `adopt` module reads the facts and applies the plan.

use crate::grastate::GrState;
use crate::mycnf::NodePaths;
use cluster_config::{ClusterConfig, Node};
use std::fmt;
use std::path::PathBuf;

/// Debian's datadir, when the options do not name one.
pub const DEFAULT_DATADIR: &str = "/var/lib/mysql";

/// The effective server options a node ran with, in the order they apply (the last occurrence
/// of an option wins), names normalised (`-` → `_`, lower case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoundConfig {
    /// Where they were read from (for messages).
    pub source: String,
    pub options: Vec<(String, String)>,
}

/// `character-set-server` → `character_set_server`.
pub fn normalize_key(k: &str) -> String {
    k.trim().to_ascii_lowercase().replace('-', "_")
}

impl FoundConfig {
    /// Parses `my_print_defaults --mysqld` output: one `--name=value` or `--name` a line.
    pub fn parse_print_defaults(source: &str, text: &str) -> FoundConfig {
        let mut options = Vec::new();
        for line in text.lines() {
            let Some(arg) = line.trim().strip_prefix("--") else {
                continue;
            };
            let (k, v) = arg.split_once('=').unwrap_or((arg, ""));
            let mut v = v.trim();
            if v.len() >= 2
                && ((v.starts_with('"') && v.ends_with('"'))
                    || (v.starts_with('\'') && v.ends_with('\'')))
            {
                v = &v[1..v.len() - 1];
            }
            options.push((normalize_key(k), v.to_owned()));
        }
        FoundConfig {
            source: source.into(),
            options,
        }
    }

    /// The value of `key` (the last occurrence), `None` when not set.
    pub fn get(&self, key: &str) -> Option<&str> {
        let key = normalize_key(key);
        self.options
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The datadir the node ran on.
    pub fn datadir(&self) -> PathBuf {
        PathBuf::from(
            self.get("datadir")
                .map(|d| d.trim_end_matches('/'))
                .filter(|d| !d.is_empty())
                .unwrap_or(DEFAULT_DATADIR),
        )
    }

    /// `wsrep_provider_options` as `key → value` pairs.
    pub fn provider_options(&self) -> Vec<(String, String)> {
        parse_provider_options(self.get("wsrep_provider_options").unwrap_or(""))
    }
}

/// `"a=b; c=d"` → `[(a, b), (c, d)]`.
pub fn parse_provider_options(s: &str) -> Vec<(String, String)> {
    s.split(';')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// Everything [`plan`] needs besides the description.
#[derive(Debug, Clone)]
pub struct Facts {
    pub found: FoundConfig,
    /// The found datadir's `grastate.dat` (`None`: there is none).
    pub grastate: Option<GrState>,
    /// The found datadir holds system tables (`mysql/`).
    pub datadir_initialized: bool,
    /// This host's name (Galera's default `wsrep_node_name`).
    pub hostname: String,
    /// Cluster state UUIDs reported by peers whose agents already run (name, uuid).
    pub peer_uuids: Vec<(String, String)>,
}

/// One refused setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub setting: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

/// A setting keel changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub setting: String,
    /// The old value (`None`: was not set).
    pub from: Option<String>,
    /// The new value (`None`: dropped).
    pub to: Option<String>,
    pub why: String,
}

/// A setting (or fact) keel keeps as it found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub setting: String,
    pub value: String,
    pub why: String,
}

/// What adoption does to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The datadir the node ran on.
    pub found_datadir: PathBuf,
    /// keel's datadir of the node (`NODE_DIR/data`); the found one is moved (renamed) there
    /// unless it already is that folder.
    pub keel_datadir: PathBuf,
    /// The saved Galera state (UUID, seqno) keel starts from.
    pub grastate: GrState,
    pub kept: Vec<Kept>,
    pub changed: Vec<Change>,
    /// Options written to `adopted.cnf` (`name`, `value`; empty value = a bare flag).
    pub carried: Vec<(String, String)>,
}

/// Options keel writes itself (or that name locations keel owns): never carried over; the
/// ones with a value in keel's my.cnf are compared and reported.
const MANAGED: &[&str] = &[
    "datadir",
    "tmpdir",
    "socket",
    "pid_file",
    "log_error",
    "bind_address",
    "port",
    "user",
    "skip_name_resolve",
    "performance_schema",
    "innodb_buffer_pool_size",
    "innodb_log_file_size",
    "innodb_flush_log_at_trx_commit",
    "binlog_format",
    "default_storage_engine",
    "innodb_autoinc_lock_mode",
    "wsrep_on",
    "wsrep_provider",
    "wsrep_cluster_name",
    "wsrep_cluster_address",
    "wsrep_node_name",
    "wsrep_node_address",
    "wsrep_node_incoming_address",
    "wsrep_provider_options",
    "wsrep_sst_method",
    "wsrep_sst_receive_address",
    "wsrep_sst_donor",
    "wsrep_slave_threads",
    "wsrep_applier_threads",
    // Options of the server's start, not of the node: meaningless in an option file keel runs.
    "wsrep_new_cluster",
    "wsrep_recover",
    "wsrep_start_position",
];

fn on(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "" | "1" | "on" | "true" | "yes"
    )
}

fn host_of(addr: &str) -> &str {
    let a = addr.trim();
    let a = a.strip_prefix("tcp://").unwrap_or(a);
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match a.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => a,
    }
}

fn port_of(addr: &str) -> Option<u16> {
    let a = addr.trim().trim_start_matches("tcp://");
    let (h, p) = a.rsplit_once(':')?;
    if h.is_empty() || (h.contains(':') && !h.ends_with(']')) {
        return None;
    }
    p.parse().ok()
}

/// Compares what the node ran with (`facts`) with `node` of `cfg` and plans the adoption: each
/// step below looks at one group of settings and refuses, keeps or changes them; the plan lists
/// what they kept and changed in that order, or the refusal lists every problem found.
pub fn plan(cfg: &ClusterConfig, node: &Node, facts: &Facts) -> Result<Plan, Vec<Problem>> {
    let mut r = Review {
        cfg,
        node,
        facts,
        found: &facts.found,
        paths: NodePaths::new(&cfg.node_dir(node)),
        problems: Vec::new(),
        kept: Vec::new(),
        changed: Vec::new(),
    };
    r.require_galera();
    r.check_cluster_name();
    r.check_node_name();
    r.check_node_address();
    r.check_sst_method();
    let grastate = r.check_data();
    r.take_endpoints_from_the_description();
    r.take_members_from_the_description();
    r.apply_keels_server_settings();
    r.move_files_into_the_node_folder();
    let carried = r.carry_over_the_operators_options();
    match grastate {
        Some(grastate) if r.problems.is_empty() => Ok(Plan {
            found_datadir: facts.found.datadir(),
            keel_datadir: r.paths.datadir,
            grastate,
            kept: r.kept,
            changed: r.changed,
            carried,
        }),
        // No grastate was always reported as a problem by check_data.
        _ => Err(r.problems),
    }
}

/// What [`plan`]'s steps found so far.
struct Review<'a> {
    cfg: &'a ClusterConfig,
    node: &'a Node,
    facts: &'a Facts,
    found: &'a FoundConfig,
    paths: NodePaths,
    problems: Vec<Problem>,
    kept: Vec<Kept>,
    changed: Vec<Change>,
}

impl<'a> Review<'a> {
    /// Where the found options come from (for messages).
    fn src(&self) -> &'a str {
        &self.found.source
    }

    fn bad(&mut self, setting: &str, message: String) {
        self.problems.push(Problem {
            setting: setting.into(),
            message,
        })
    }

    fn keep(&mut self, setting: &str, value: String, why: &str) {
        self.kept.push(Kept {
            setting: setting.into(),
            value,
            why: why.into(),
        })
    }

    /// Records a change unless the value stays the same (compared case-insensitively).
    fn change(&mut self, setting: &str, from: Option<&str>, to: Option<String>, why: &str) {
        let from = from.map(str::to_owned);
        if from.as_deref().map(str::to_ascii_lowercase)
            != to.as_deref().map(str::to_ascii_lowercase)
        {
            self.changed.push(Change {
                setting: setting.into(),
                from,
                to,
                why: why.into(),
            });
        }
    }

    /// Refuses a node that does not run Galera at all.
    fn require_galera(&mut self) {
        let f = self.found;
        if !f.get("wsrep_on").is_some_and(on) || f.get("wsrep_provider").is_none_or(|p| p == "none")
        {
            self.bad(
                "wsrep_on",
                format!(
                    "{} does not run Galera (wsrep_on = {}, wsrep_provider = {}): keel adopts Galera nodes only",
                    self.src(),
                    f.get("wsrep_on").unwrap_or("unset"),
                    f.get("wsrep_provider").unwrap_or("unset")
                ),
            );
        }
    }

    /// Keeps the cluster's name, or refuses one the description does not give.
    fn check_cluster_name(&mut self) {
        let src = self.src();
        let found_name = self
            .found
            .get("wsrep_cluster_name")
            .unwrap_or("my_wsrep_cluster");
        if found_name != self.cfg.cluster.name {
            self.bad(
                "wsrep_cluster_name",
                format!(
                    "the node ran in cluster {found_name:?} ({src}), the description says cluster.name = {:?}: \
                     set cluster.name = {found_name:?} (Galera refuses a member with another cluster name)",
                    self.cfg.cluster.name
                ),
            );
        } else {
            self.keep(
                "wsrep_cluster_name",
                found_name.into(),
                "the cluster's name (cluster.name)",
            );
        }
    }

    /// Keeps an explicit node name that is this node's, refuses another node's (wrong host) or
    /// one outside the description, and names an unnamed node explicitly.
    fn check_node_name(&mut self) {
        let (cfg, node, src) = (self.cfg, self.node, self.src());
        match self.found.get("wsrep_node_name") {
            Some(n) if n == node.name => self.keep("wsrep_node_name", n.into(), "this node's name"),
            Some(n) => match cfg.index_of(n) {
                Some(i) => self.bad(
                    "wsrep_node_name",
                    format!(
                        "this host ran node {n:?} ({src}), which is node[{i}] of the description, not {:?}: \
                         run `keel node --name {n} --adopt …` on this host",
                        node.name
                    ),
                ),
                None => self.bad(
                    "wsrep_node_name",
                    format!(
                        "this host ran node {n:?} ({src}), which is not in the description (nodes: {}): \
                         name the [[node]] of this host {n:?}, or set wsrep_node_name = {} in {src}",
                        cfg.nodes
                            .iter()
                            .map(|n| n.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        node.name
                    ),
                ),
            },
            None => self.change(
                "wsrep_node_name",
                Some(&format!("unset, i.e. the host name {}", self.facts.hostname)),
                Some(node.name.clone()),
                "keel names every node explicitly",
            ),
        }
    }

    /// Keeps an explicit node address that is the description's, refuses another one, and sets
    /// an unset one explicitly.
    fn check_node_address(&mut self) {
        let (node, src) = (self.node, self.src());
        match self.found.get("wsrep_node_address").map(host_of) {
            Some(a) if a != node.address => self.bad(
                "wsrep_node_address",
                format!(
                    "the node ran with address {a} ({src}), the description gives {:?} the address {}: \
                     adopt on the right host, or fix the [[node]] address",
                    node.name, node.address
                ),
            ),
            Some(a) => self.keep("wsrep_node_address", a.into(), "the node's address"),
            None => self.change(
                "wsrep_node_address",
                None,
                Some(node.address.clone()),
                "set explicitly (auto-detection picks the wrong address with several interfaces)",
            ),
        }
    }

    /// Keeps the state transfer method when it is the cluster's, else refuses.
    fn check_sst_method(&mut self) {
        let src = self.src();
        let sst = self.found.get("wsrep_sst_method").unwrap_or("rsync");
        if sst != self.cfg.database.sst_method {
            self.bad(
                "wsrep_sst_method",
                format!(
                    "the node used {sst:?} ({src}), the description database.sst_method = {:?}: set \
                     database.sst_method = {sst:?} (with [users.sst] for mariabackup) to keep it",
                    self.cfg.database.sst_method
                ),
            );
        } else {
            self.keep(
                "wsrep_sst_method",
                sst.into(),
                "state transfers as before (database.sst_method)",
            );
        }
    }

    /// Keeps the data when the datadir holds a Galera node's data of the same cluster state as
    /// every peer already running keel; returns its saved state (`None`: refused).
    fn check_data(&mut self) -> Option<GrState> {
        let facts = self.facts;
        let found_datadir = self.found.datadir();
        let grastate = match &facts.grastate {
            _ if !facts.datadir_initialized => {
                self.bad(
                    "datadir",
                    format!(
                        "{} holds no MariaDB data (no mysql/ folder): nothing to adopt (a new node needs no --adopt)",
                        found_datadir.display()
                    ),
                );
                return None;
            }
            None => {
                self.bad(
                    "datadir",
                    format!(
                        "{} has no grastate.dat: it never ran as a Galera node; keel adopts Galera nodes only",
                        found_datadir.display()
                    ),
                );
                return None;
            }
            Some(g) => g.clone(),
        };
        let node = self.node;
        for (peer, uuid) in facts
            .peer_uuids
            .iter()
            .filter(|(n, u)| *n != node.name && !u.is_empty() && *u != grastate.uuid)
        {
            self.bad(
                "grastate.dat uuid",
                format!(
                    "this node's data belongs to cluster state {} ({}), node {peer:?} reports {uuid}: \
                     they are not one cluster, and joining would replace this node's data by a full \
                     state transfer; refusing",
                    grastate.uuid,
                    found_datadir.join("grastate.dat").display()
                ),
            );
        }
        let value = format!(
            "{} (cluster state {}, seqno {}{})",
            found_datadir.display(),
            grastate.uuid,
            grastate.seqno,
            if grastate.seqno < 0 {
                ": not stopped cleanly, keel recovers the position with --wsrep-recover"
            } else {
                ""
            }
        );
        let why = if found_datadir == self.paths.datadir {
            "already in keel's node folder"
        } else {
            "moved (renamed, not copied) into keel's node folder"
        };
        self.keep("data", value, why);
        Some(grastate)
    }

    /// Ports, the SQL bind address and the gcache size come from the description; any other
    /// provider option is dropped (keel writes `wsrep_provider_options` itself).
    fn take_endpoints_from_the_description(&mut self) {
        let (f, node, cfg) = (self.found, self.node, self.cfg);
        let po = f.provider_options();
        let popt = |k: &str| {
            po.iter()
                .rev()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        let galera_port = popt("gmcast.listen_addr").and_then(port_of).unwrap_or(4567);
        self.change(
            "galera port (gmcast.listen_addr)",
            Some(&galera_port.to_string()),
            Some(node.galera_port.to_string()),
            "node.galera_port: open it between the nodes",
        );
        let ist_port = popt("ist.recv_addr")
            .and_then(port_of)
            .unwrap_or(galera_port.wrapping_add(1));
        self.change(
            "IST port (ist.recv_addr)",
            Some(&ist_port.to_string()),
            Some(node.ist_port.to_string()),
            "node.ist_port",
        );
        let sst_port = f
            .get("wsrep_sst_receive_address")
            .and_then(port_of)
            .unwrap_or(4444);
        self.change(
            "SST port (wsrep_sst_receive_address)",
            Some(&sst_port.to_string()),
            Some(node.sst_port.to_string()),
            "node.sst_port",
        );
        self.change(
            "port",
            Some(f.get("port").unwrap_or("3306")),
            Some(node.sql_port.to_string()),
            "node.sql_port (applications connect to the proxy on node.proxy_port)",
        );
        self.change(
            "bind_address",
            Some(f.get("bind_address").unwrap_or("unset (all addresses)")),
            Some(node.address.clone()),
            "node.address",
        );
        if let Some(gc) = popt("gcache.size") {
            self.change(
                "gcache.size",
                Some(gc),
                Some(cfg.database.gcache_size.clone()),
                "database.gcache_size",
            );
        }
        for (k, _) in po.iter().filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "gmcast.listen_addr" | "ist.recv_addr" | "gcache.size" | "base_host" | "base_port"
            )
        }) {
            self.change(
                &format!("wsrep_provider_options {k}"),
                popt(k),
                None,
                "keel writes wsrep_provider_options itself; add it back with database.extra if needed",
            );
        }
    }

    /// The cluster address lists every node of the description; refuses a member the
    /// description does not have.
    fn take_members_from_the_description(&mut self) {
        let (cfg, src) = (self.cfg, self.src());
        let found_gcomm = self.found.get("wsrep_cluster_address").unwrap_or("");
        self.change(
            "wsrep_cluster_address",
            Some(found_gcomm),
            Some(cfg.gcomm_address()),
            "every [[node]] of the description",
        );
        for member in found_gcomm
            .trim_start_matches("gcomm://")
            .split('?')
            .next()
            .unwrap_or("")
            .split(',')
            .map(host_of)
            .filter(|h| !h.is_empty())
        {
            if !cfg.nodes.iter().any(|n| n.address == member) {
                self.bad(
                    "wsrep_cluster_address",
                    format!(
                        "member {member} of {found_gcomm} ({src}) is no [[node]] address of the description: \
                         add that node (or remove it from the cluster first)"
                    ),
                );
            }
        }
    }

    /// The settings keel writes with its own (measured) values or from `[database]`.
    fn apply_keels_server_settings(&mut self) {
        let (f, db) = (self.found, &self.cfg.database);
        self.change(
            "innodb_flush_log_at_trx_commit",
            Some(f.get("innodb_flush_log_at_trx_commit").unwrap_or("1")),
            Some("1".into()),
            "anything else loses acknowledged commits when nodes crash together",
        );
        self.change(
            "innodb_buffer_pool_size",
            Some(f.get("innodb_buffer_pool_size").unwrap_or("128M")),
            Some(db.innodb_buffer_pool_size.clone()),
            "database.innodb_buffer_pool_size",
        );
        self.change(
            "innodb_log_file_size",
            Some(f.get("innodb_log_file_size").unwrap_or("96M")),
            Some(db.innodb_log_file_size.clone()),
            "database.innodb_log_file_size (MariaDB resizes the redo log at start)",
        );
        self.change(
            "wsrep_slave_threads",
            Some(
                f.get("wsrep_slave_threads")
                    .or(f.get("wsrep_applier_threads"))
                    .unwrap_or("1"),
            ),
            Some(db.slave_threads.to_string()),
            "database.slave_threads",
        );
        self.change(
            "binlog_format",
            Some(f.get("binlog_format").unwrap_or("MIXED")),
            Some("ROW".into()),
            "Galera replicates row events only",
        );
        self.change(
            "default_storage_engine",
            Some(f.get("default_storage_engine").unwrap_or("InnoDB")),
            Some("InnoDB".into()),
            "Galera replicates InnoDB only",
        );
        self.change(
            "innodb_autoinc_lock_mode",
            Some(f.get("innodb_autoinc_lock_mode").unwrap_or("1")),
            Some("2".into()),
            "required by Galera",
        );
        if let Some(v) = f.get("wsrep_sst_donor") {
            self.change(
                "wsrep_sst_donor",
                Some(v),
                None,
                "keel chooses donors itself",
            );
        }
    }

    /// Socket, pid file, error log, tmpdir and datadir move into keel's node folder.
    fn move_files_into_the_node_folder(&mut self) {
        let f = self.found;
        let p = &self.paths;
        let moves = [
            ("socket", p.socket.display().to_string()),
            ("pid_file", p.pid_file.display().to_string()),
            ("log_error", p.error_log.display().to_string()),
            ("tmpdir", p.tmpdir.display().to_string()),
            ("datadir", p.datadir.display().to_string()),
        ];
        for (k, keel_value) in moves {
            let old = match k {
                "datadir" => Some(f.datadir().display().to_string()),
                _ => f.get(k).map(str::to_owned),
            };
            self.change(k, old.as_deref(), Some(keel_value), "keel's node folder");
        }
    }

    /// Every option keel does not manage is the operator's: carried over to `adopted.cnf` in
    /// order (and reported as kept, secrets masked).
    fn carry_over_the_operators_options(&mut self) -> Vec<(String, String)> {
        let carried: Vec<(String, String)> = self
            .found
            .options
            .iter()
            .filter(|(k, _)| !MANAGED.contains(&k.as_str()))
            .cloned()
            .collect();
        for (k, v) in &carried {
            self.keep(
                k,
                if k.contains("password") || k == "wsrep_sst_auth" {
                    "********".into()
                } else {
                    v.clone()
                },
                "carried over to adopted.cnf",
            );
        }
        carried
    }
}

impl Plan {
    /// `adopted.cnf`: the carried-over options, in a `[mariadbd]` group.
    pub fn adopted_cnf(&self, source: &str) -> String {
        let mut s = format!(
            "# Options of the hand-built node (from {source}) that keel does not write itself,\n\
             # carried over by `keel node --adopt`; keel adds them to the node's my.cnf at every start\n\
             # (before [database] extra, which overrides them).\n[mariadbd]\n"
        );
        for (k, v) in &self.carried {
            if v.is_empty() {
                s += &format!("{k}\n");
            } else {
                s += &format!("{k} = {v}\n");
            }
        }
        s
    }

    /// The report printed to the operator.
    pub fn report(&self, node: &str, source: &str) -> String {
        let mut s = format!(
            "keel node {node}: adopting the Galera node configured by {source}\n\
             datadir {} -> {} (seqno {}; no data is copied)\nkept:\n",
            self.found_datadir.display(),
            self.keel_datadir.display(),
            self.grastate.seqno
        );
        for k in &self.kept {
            s += &format!("  = {} = {}  ({})\n", k.setting, k.value, k.why);
        }
        s += "changed:\n";
        for c in &self.changed {
            s += &format!(
                "  ~ {}: {} -> {}  ({})\n",
                c.setting,
                c.from.as_deref().unwrap_or("unset"),
                c.to.as_deref().unwrap_or("dropped"),
                c.why
            );
        }
        s
    }

    /// Lines of `adopted.cnf` as they go into `database.extra` (the `[mariadbd]` part only).
    pub fn parse_adopted_cnf(text: &str) -> Vec<String> {
        let mut in_group = false;
        let mut out = Vec::new();
        for l in text.lines() {
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                continue;
            }
            if t.starts_with('[') {
                in_group = t == "[mariadbd]";
                continue;
            }
            if in_group {
                out.push(t.to_owned());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ClusterConfig {
        // Written once: the tests run in parallel and must not read a half-written file.
        static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let dir = DIR.get_or_init(|| {
            let dir =
                std::env::temp_dir().join(format!("keel-galera-adopt-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("pw"), "x").unwrap();
            dir
        });
        ClusterConfig::from_toml(
            r#"
[cluster]
name = "seafile"
data_dir = "/var/lib/keel"
[users.app]
name = "seafile"
password_file = "pw"
[users.monitor]
name = "keel_monitor"
password_file = "pw"
[[node]]
name = "db1"
address = "10.0.0.21"
[[node]]
name = "db2"
address = "10.0.0.22"
[[node]]
name = "db3"
address = "10.0.0.23"
"#,
            dir,
        )
        .unwrap()
    }

    /// What `my_print_defaults --mysqld` gives for Debian's 50-server.cnf plus a 60-galera.cnf
    /// written the way Seafile's manual (and MariaDB's) says.
    const DEBIAN: &str = "--socket=/run/mysqld/mysqld.sock\n--pid-file=/run/mysqld/mysqld.pid\n\
--basedir=/usr\n--bind-address=0.0.0.0\n--expire_logs_days=10\n--character-set-server=utf8mb4\n\
--collation-server=utf8mb4_general_ci\n--plugin_load_add=provider_lz4\n--provider_lz4=force_plus_permanent\n\
--wsrep_on=ON\n--wsrep_provider=/usr/lib/galera/libgalera_smm.so\n--wsrep_cluster_name=seafile\n\
--wsrep_cluster_address=gcomm://10.0.0.21,10.0.0.22,10.0.0.23\n--binlog_format=row\n\
--default_storage_engine=InnoDB\n--innodb_autoinc_lock_mode=2\n--wsrep_node_name=db2\n\
--wsrep_node_address=10.0.0.22\n--innodb_flush_log_at_trx_commit=0\n--wsrep_sst_method=rsync\n\
--wsrep_provider_options=gcache.size=1G; gcache.recover=yes\n--skip-name-resolve\n";

    fn facts(text: &str) -> Facts {
        Facts {
            found: FoundConfig::parse_print_defaults("/etc/mysql/my.cnf", text),
            grastate: Some(GrState {
                uuid: "5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f".into(),
                seqno: 42,
                safe_to_bootstrap: false,
            }),
            datadir_initialized: true,
            hostname: "db2".into(),
            peer_uuids: vec![],
        }
    }

    #[test]
    fn parses_print_defaults() {
        let f = FoundConfig::parse_print_defaults("x", DEBIAN);
        assert_eq!(f.get("character_set_server"), Some("utf8mb4"));
        assert_eq!(f.get("pid-file"), Some("/run/mysqld/mysqld.pid"));
        assert_eq!(f.get("skip_name_resolve"), Some(""));
        assert_eq!(f.datadir(), PathBuf::from("/var/lib/mysql"));
        assert_eq!(
            f.provider_options(),
            vec![
                ("gcache.size".into(), "1G".into()),
                ("gcache.recover".into(), "yes".into())
            ]
        );
        let quoted = FoundConfig::parse_print_defaults("x", "--wsrep_cluster_name=\"my c\"\n");
        assert_eq!(quoted.get("wsrep_cluster_name"), Some("my c"));
    }

    #[test]
    fn debian_node_is_adopted_keeping_data_and_own_settings() {
        let cfg = cfg();
        let node = cfg.node("db2").unwrap();
        let p = plan(&cfg, node, &facts(DEBIAN)).unwrap();
        assert_eq!(p.found_datadir, PathBuf::from("/var/lib/mysql"));
        assert_eq!(p.keel_datadir, PathBuf::from("/var/lib/keel/db2/data"));
        assert_eq!(p.grastate.seqno, 42);
        // The operator's options are carried over, keel's own are not.
        let carried: Vec<&str> = p.carried.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            carried,
            [
                "basedir",
                "expire_logs_days",
                "character_set_server",
                "collation_server",
                "plugin_load_add",
                "provider_lz4"
            ]
        );
        let cnf = p.adopted_cnf("/etc/mysql/my.cnf");
        assert!(cnf.contains("[mariadbd]\nbasedir = /usr\n"), "{cnf}");
        assert_eq!(
            Plan::parse_adopted_cnf(&cnf),
            [
                "basedir = /usr",
                "expire_logs_days = 10",
                "character_set_server = utf8mb4",
                "collation_server = utf8mb4_general_ci",
                "plugin_load_add = provider_lz4",
                "provider_lz4 = force_plus_permanent"
            ]
        );
        let ch = |s: &str| p.changed.iter().find(|c| c.setting == s).cloned();
        let flush = ch("innodb_flush_log_at_trx_commit").unwrap();
        assert_eq!(
            (flush.from.as_deref(), flush.to.as_deref()),
            (Some("0"), Some("1"))
        );
        assert_eq!(ch("gcache.size").unwrap().to.as_deref(), Some("64M"));
        assert_eq!(
            ch("wsrep_provider_options gcache.recover").unwrap().to,
            None
        );
        assert_eq!(ch("binlog_format"), None, "row = ROW: not a change");
        assert_eq!(ch("galera port (gmcast.listen_addr)"), None, "4567 both");
        assert_eq!(
            ch("socket").unwrap().to.as_deref(),
            Some("/var/lib/keel/db2/mysqld.sock")
        );
        assert!(p.kept.iter().any(|k| k.setting == "wsrep_cluster_name"));
        let report = p.report("db2", "/etc/mysql/my.cnf");
        assert!(
            report.contains("/var/lib/mysql -> /var/lib/keel/db2/data"),
            "{report}"
        );
        assert!(
            report.contains("~ innodb_flush_log_at_trx_commit: 0 -> 1"),
            "{report}"
        );
        assert!(
            report.contains("= character_set_server = utf8mb4"),
            "{report}"
        );
    }

    fn problems(text: &str, node: &str, f: impl FnOnce(&mut Facts)) -> Vec<Problem> {
        let cfg = cfg();
        let mut facts = facts(text);
        f(&mut facts);
        plan(&cfg, cfg.node(node).unwrap(), &facts).unwrap_err()
    }

    #[test]
    fn mismatches_are_refused_naming_the_setting() {
        let p = problems(DEBIAN, "db1", |_| {});
        let settings: Vec<&str> = p.iter().map(|p| p.setting.as_str()).collect();
        assert_eq!(settings, ["wsrep_node_name", "wsrep_node_address"], "{p:?}");
        assert!(
            p[0].message.contains("node[1]") && p[0].message.contains("--name db2"),
            "{}",
            p[0]
        );

        let p = problems(
            &DEBIAN.replace("node_name=db2", "node_name=galera2"),
            "db2",
            |_| {},
        );
        assert!(
            p[0].message.contains("\"galera2\"") && p[0].message.contains("not in the description"),
            "{}",
            p[0]
        );

        let p = problems(
            &DEBIAN.replace("cluster_name=seafile", "cluster_name=galera_cluster"),
            "db2",
            |_| {},
        );
        assert_eq!(p[0].setting, "wsrep_cluster_name");
        assert!(
            p[0].message
                .contains("set cluster.name = \"galera_cluster\""),
            "{}",
            p[0]
        );

        let p = problems(DEBIAN, "db2", |f| {
            f.peer_uuids = vec![("db1".into(), "11111111-0b3f-11ef-9c6a-2a3b1c0d9e8f".into())]
        });
        assert_eq!(p[0].setting, "grastate.dat uuid");
        assert!(
            p[0].message.contains("db1") && p[0].message.contains("refusing"),
            "{}",
            p[0]
        );

        let p = problems(DEBIAN, "db2", |f| f.grastate = None);
        assert!(p[0].message.contains("no grastate.dat"), "{}", p[0]);
        let p = problems(DEBIAN, "db2", |f| f.datadir_initialized = false);
        assert!(p[0].message.contains("no MariaDB data"), "{}", p[0]);

        let p = problems(&DEBIAN.replace("--wsrep_on=ON\n", ""), "db2", |_| {});
        assert_eq!(p[0].setting, "wsrep_on");

        let p = problems(
            &DEBIAN.replace("sst_method=rsync", "sst_method=mariabackup"),
            "db2",
            |_| {},
        );
        assert!(
            p[0].message
                .contains("database.sst_method = \"mariabackup\""),
            "{}",
            p[0]
        );

        let p = problems(&DEBIAN.replace("10.0.0.23", "10.0.0.24"), "db2", |_| {});
        assert!(p[0].message.contains("member 10.0.0.24"), "{p:?}");
    }

    #[test]
    fn same_uuid_peers_and_unset_name_are_fine() {
        let cfg = cfg();
        let mut f = facts(&DEBIAN.replace("--wsrep_node_name=db2\n", ""));
        f.peer_uuids = vec![("db1".into(), "5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f".into())];
        let p = plan(&cfg, cfg.node("db2").unwrap(), &f).unwrap();
        let c = p
            .changed
            .iter()
            .find(|c| c.setting == "wsrep_node_name")
            .unwrap();
        assert!(c.from.as_deref().unwrap().contains("host name db2"));
    }

    #[test]
    fn helpers() {
        assert_eq!(host_of("tcp://10.0.0.1:4567"), "10.0.0.1");
        assert_eq!(host_of("10.0.0.1"), "10.0.0.1");
        assert_eq!(host_of("[::1]:4567"), "::1");
        assert_eq!(port_of("tcp://10.0.0.1:4577"), Some(4577));
        assert_eq!(port_of("10.0.0.1"), None);
        assert_eq!(port_of("[::1]:4567"), Some(4567));
    }
}
