//! A node's MariaDB configuration file, rendered from the cluster description (pure).
//!
//! mariadbd is always started with `--defaults-file=<this file>` as its first argument, so nothing
//! under `/etc/mysql` leaks in. The settings are those measured in galera.md; in particular
//! `innodb_flush_log_at_trx_commit = 1`, without which nodes crashing together lose acknowledged
//! commits, and an explicit `wsrep_node_address`, without which several nodes on one host fail.

use cluster_config::{ClusterConfig, Node};
use std::path::{Path, PathBuf};

/// The files of one node, all under its node folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    pub dir: PathBuf,
    pub cnf: PathBuf,
    pub datadir: PathBuf,
    pub tmpdir: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
    pub error_log: PathBuf,
    pub grastate: PathBuf,
    /// Marks the folder as belonging to one cluster (its name), so another cluster's datadir is
    /// recognised before mariadbd touches it.
    pub cluster_marker: PathBuf,
}

impl NodePaths {
    pub fn new(dir: &Path) -> NodePaths {
        NodePaths {
            dir: dir.to_owned(),
            cnf: dir.join("my.cnf"),
            datadir: dir.join("data"),
            tmpdir: dir.join("tmp"),
            socket: dir.join("mysqld.sock"),
            pid_file: dir.join("mysqld.pid"),
            error_log: dir.join("error.log"),
            grastate: dir.join("data").join("grastate.dat"),
            cluster_marker: dir.join("keel-cluster"),
        }
    }
}

/// Renders the my.cnf of `node`. `os_user` is set when keel runs as root (mariadbd then drops to
/// that user; SST's rsync daemon needs a datadir it can write).
pub fn render(
    cfg: &ClusterConfig,
    node: &Node,
    paths: &NodePaths,
    os_user: Option<&str>,
) -> String {
    let db = &cfg.database;
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(
        "# Written by keel node; regenerated at every start: edit the cluster description instead."
            .into(),
    );
    line("[client]".into());
    line(format!("socket = {}", paths.socket.display()));
    line(String::new());
    line("[mariadbd]".into());
    if let Some(u) = os_user {
        line(format!("user = {u}"));
    }
    line(format!("datadir = {}", paths.datadir.display()));
    line(format!("tmpdir = {}", paths.tmpdir.display()));
    line(format!("socket = {}", paths.socket.display()));
    line(format!("pid-file = {}", paths.pid_file.display()));
    line(format!("log-error = {}", paths.error_log.display()));
    line(format!("bind-address = {}", node.address));
    line(format!("port = {}", node.sql_port));
    line("skip-name-resolve".into());
    line("performance_schema = OFF".into());
    line(format!(
        "innodb_buffer_pool_size = {}",
        db.innodb_buffer_pool_size
    ));
    line(format!(
        "innodb_log_file_size = {}",
        db.innodb_log_file_size
    ));
    line("innodb_flush_log_at_trx_commit = 1".into());
    line("binlog_format = ROW".into());
    line("default_storage_engine = InnoDB".into());
    line("innodb_autoinc_lock_mode = 2".into());
    line("wsrep_on = ON".into());
    line(format!("wsrep_provider = {}", db.provider.display()));
    line(format!("wsrep_cluster_name = {}", cfg.cluster.name));
    line(format!("wsrep_cluster_address = {}", cfg.gcomm_address()));
    line(format!("wsrep_node_name = {}", node.name));
    line(format!("wsrep_node_address = {}", node.address));
    line(format!("wsrep_node_incoming_address = {}", node.sql_addr()));
    line(format!(
        "wsrep_provider_options = \"gmcast.listen_addr=tcp://{};ist.recv_addr={};gcache.size={}\"",
        node.galera_addr(),
        node.ist_addr(),
        db.gcache_size
    ));
    line(format!("wsrep_sst_method = {}", db.sst_method));
    line(format!("wsrep_sst_receive_address = {}", node.sst_addr()));
    line(format!("wsrep_slave_threads = {}", db.slave_threads));
    for extra in &db.extra {
        line(extra.clone());
    }
    s
}

/// The comment that marks the `wsrep_sst_donor` line keel manages (the line after it).
pub const DONOR_MARK: &str =
    "# keel node: state-transfer donors, not the db-proxy writer (rewritten at every start)";

/// `cnf` with keel's `wsrep_sst_donor` line replaced: removed, then, when `donors` is given
/// ([`crate::donor::preferred_donors`]), inserted again right after the `[mariadbd]` header, so a
/// `wsrep_sst_donor` of the operator's (`database.extra`, rendered later in the section) still
/// wins. Only the line keel marked is touched. The agent applies it just before it starts a
/// mariadbd that joins (and with `None` before a bootstrap), while no mariadbd runs on the file.
pub fn with_sst_donor(cnf: &str, donors: Option<&str>) -> String {
    let mut out = String::with_capacity(cnf.len() + 128);
    let mut after_mark = false;
    let mut inserted = false;
    for l in cnf.lines() {
        if after_mark {
            after_mark = false;
            if l.trim_start().starts_with("wsrep_sst_donor") {
                continue;
            }
        }
        if l == DONOR_MARK {
            after_mark = true;
            continue;
        }
        out.push_str(l);
        out.push('\n');
        if !inserted && l.trim() == "[mariadbd]" {
            inserted = true;
            if let Some(d) = donors {
                out.push_str(DONOR_MARK);
                out.push('\n');
                out.push_str(&format!("wsrep_sst_donor = {d}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_measured_settings() {
        let dir = std::env::temp_dir().join(format!("keel-mycnf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "x").unwrap();
        let text = r#"
[cluster]
name = "demo"
data_dir = "d"
[users.app]
name = "a"
password_file = "pw"
[users.monitor]
name = "m"
password_file = "pw"
[[node]]
name = "node1"
address = "127.0.0.1"
[[node]]
name = "node2"
address = "127.0.0.1"
sql_port = 3308
galera_port = 4577
ist_port = 4578
sst_port = 4454
cache_port = 11212
redis_port = 6380
proxy_port = 6034
control_port = 7481
[[node]]
name = "node3"
address = "127.0.0.3"
"#;
        let cfg = ClusterConfig::from_toml(text, &dir).unwrap();
        let n2 = cfg.node("node2").unwrap();
        let paths = NodePaths::new(&cfg.node_dir(n2));
        let cnf = render(&cfg, n2, &paths, Some("mysql"));
        for want in [
            "user = mysql",
            "port = 3308",
            "innodb_flush_log_at_trx_commit = 1",
            "wsrep_cluster_address = gcomm://127.0.0.1:4567,127.0.0.1:4577,127.0.0.3:4567",
            "wsrep_node_address = 127.0.0.1\n",
            "wsrep_node_incoming_address = 127.0.0.1:3308",
            "gmcast.listen_addr=tcp://127.0.0.1:4577;ist.recv_addr=127.0.0.1:4578;gcache.size=64M",
            "wsrep_sst_receive_address = 127.0.0.1:4454",
        ] {
            assert!(cnf.contains(want), "missing {want:?} in\n{cnf}");
        }
        assert!(cnf.contains(&format!("datadir = {}", dir.join("d/node2/data").display())));
        assert!(!render(&cfg, n2, &paths, None).contains("user ="));
    }

    #[test]
    fn sst_donor_line_is_replaced_and_only_keels() {
        let base = "[client]\nsocket = /s\n\n[mariadbd]\nport = 3306\nwsrep_sst_donor = ops,\n";
        let with = with_sst_donor(base, Some("node2,node3,"));
        assert_eq!(
            with,
            format!(
                "[client]\nsocket = /s\n\n[mariadbd]\n{DONOR_MARK}\nwsrep_sst_donor = node2,node3,\nport = 3306\nwsrep_sst_donor = ops,\n"
            )
        );
        // Applied again: one line, the new value; the operator's line (later: wins) is kept.
        let again = with_sst_donor(&with, Some("node3,"));
        assert_eq!(again.matches(DONOR_MARK).count(), 1);
        assert!(again.contains(&format!("{DONOR_MARK}\nwsrep_sst_donor = node3,\n")));
        assert!(!again.contains("node2"));
        assert!(again.ends_with("wsrep_sst_donor = ops,\n"));
        // None removes keel's line only and gives back the original file.
        assert_eq!(with_sst_donor(&again, None), base);
        assert_eq!(with_sst_donor(base, None), base);
    }
}
