//! `keel status [--dir DIR | --config FILE] [--json]`: each node's process state, Galera state,
//! cluster size, position and cache, read from every agent's control API.
//!
//! The JSON is an interface that scripts and monitoring read; keep its names stable:
//! `{"cluster": …, "nodes": [{"name", "agent": {"addr","pid","reachable"},
//! "db": {"state","cluster_size","seqno","pid","addr","healthy","restarts"},
//! "cache": {"addr","pid","state"}, "decision", "error"}]}`.

use cluster_config::ClusterConfig;
use node_agent::NodeState;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder `keel up` uses when none is given.
pub const DEFAULT_DIR: &str = "keel-tier";

#[derive(clap::Args)]
pub struct Args {
    /// The folder of a tier started by `keel up` (reads DIR/cluster.toml).
    #[arg(long, conflicts_with = "config")]
    pub dir: Option<PathBuf>,
    /// A cluster description.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Loads the description from `--config`, else `DIR/cluster.toml` (DIR defaults to ./keel-tier).
pub fn load_config(dir: Option<&Path>, config: Option<&Path>) -> anyhow::Result<ClusterConfig> {
    let path = match (config, dir) {
        (Some(c), _) => c.to_owned(),
        (None, d) => d.unwrap_or(Path::new(DEFAULT_DIR)).join("cluster.toml"),
    };
    if !path.exists() {
        anyhow::bail!(
            "{} does not exist: start a tier with `keel up{}` or give --config FILE",
            path.display(),
            dir.map(|d| format!(" --dir {}", d.display()))
                .unwrap_or_default()
        );
    }
    Ok(ClusterConfig::load(&path)?)
}

/// One agent's state, or why it could not be read.
pub fn fetch_state(node: &cluster_config::Node) -> Result<NodeState, String> {
    let addr = node.control_addr();
    match node_agent::http::request(&addr, "GET", "/state", Duration::from_secs(2)) {
        Ok((200, body)) => {
            serde_json::from_str(&body).map_err(|e| format!("bad answer from {addr}: {e}"))
        }
        Ok((code, _)) => Err(format!("agent at {addr} answered {code}")),
        Err(e) => Err(format!("agent not reachable: {e}")),
    }
}

/// The status document of the whole cluster.
pub fn collect(cfg: &ClusterConfig) -> Value {
    let nodes: Vec<Value> = cfg
        .nodes
        .iter()
        .map(|n| match fetch_state(n) {
            Ok(st) => json!({
                "name": n.name,
                "agent": {"addr": n.control_addr(), "pid": st.agent_pid, "reachable": true},
                "db": {
                    "state": st.db.state,
                    "cluster_size": st.db.cluster_size,
                    "seqno": st.db.seqno,
                    "pid": st.db.pid,
                    "addr": n.sql_addr(),
                    "healthy": st.db.healthy,
                    "restarts": st.db.restarts,
                    "started_as": st.db.started_as,
                },
                "cache": {"addr": n.cache_addr(), "pid": st.cache.pid, "state": st.cache.state},
                "decision": st.decision,
                "error": st.last_error,
            }),
            Err(why) => json!({
                "name": n.name,
                "agent": {"addr": n.control_addr(), "pid": null, "reachable": false},
                "db": {"state": "unreachable", "cluster_size": null, "seqno": null, "pid": null,
                       "addr": n.sql_addr(), "healthy": false, "restarts": null, "started_as": null},
                "cache": {"addr": n.cache_addr(), "pid": null, "state": "unknown"},
                "decision": null,
                "error": why,
            }),
        })
        .collect();
    json!({"cluster": cfg.cluster.name, "nodes": nodes})
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The status document as a table.
pub fn table(doc: &Value) -> String {
    let mut rows = vec![[
        "NODE",
        "DB STATE",
        "SIZE",
        "SEQNO",
        "DB PID",
        "SQL ADDR",
        "CACHE",
        "CACHE PID",
        "CACHE ADDR",
    ]
    .map(String::from)
    .to_vec()];
    let mut notes = Vec::new();
    for n in doc["nodes"].as_array().into_iter().flatten() {
        rows.push(vec![
            cell(&n["name"]),
            cell(&n["db"]["state"]),
            cell(&n["db"]["cluster_size"]),
            cell(&n["db"]["seqno"]),
            cell(&n["db"]["pid"]),
            cell(&n["db"]["addr"]),
            cell(&n["cache"]["state"]),
            cell(&n["cache"]["pid"]),
            cell(&n["cache"]["addr"]),
        ]);
        if let Some(e) = n["error"].as_str() {
            notes.push(format!("{}: {e}", cell(&n["name"])));
        }
        if let Some(d) = n["decision"].as_str() {
            if n["db"]["healthy"] != Value::Bool(true) {
                notes.push(format!("{}: {d}", cell(&n["name"])));
            }
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!("cluster {}\n", cell(&doc["cluster"]));
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
    }
    for n in notes {
        out += &format!("  {n}\n");
    }
    out
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = load_config(args.dir.as_deref(), args.config.as_deref())?;
    let doc = collect(&cfg);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", table(&doc));
    }
    Ok(())
}
