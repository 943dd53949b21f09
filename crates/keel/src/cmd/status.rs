//! `keel status [--dir DIR | --config FILE] [--json]`: each node's process state, Galera state,
//! cluster size, position, its db-proxy and its cache, read from every agent's control API (and
//! the caches' own `stats` for their Raft role and applied index).
//!
//! The JSON is an interface that scripts and monitoring read; keep its names stable:
//! ```text
//! {"cluster": …, "writer": "node1" | null, "writers_agree": bool,
//!  "nodes": [{"name",
//!    "agent": {"addr","pid","reachable"},
//!    "db": {"state","cluster_size","seqno","pid","addr","healthy","restarts","started_as"},
//!    "proxy": {"addr","state","writer","writer_epoch","connections_active"},
//!    "backend": {"health","writer","drained","connections_active","connections_total"},
//!    "cache": {"addr","redis_addr","pid","state","mode","role","applied","leader_slot","restarts"},
//!    "decision", "error"}]}
//! ```
//! `writer` is the node every proxy sends connections to (from any reachable proxy's status;
//! `writers_agree` says whether all reachable proxies name the same one). `proxy` is this node's
//! proxy (where applications connect; `connections_active` counts its clients); `backend` is
//! this node as a database backend of all proxies together (`health` is the proxies' verdict,
//! `up`/`down`/`unknown`, or `mixed` while they disagree; connection counts are summed over the
//! proxies: 0 means no client is connected to this node through keel). `cache.redis_addr` is
//! where the node's cache serves Redis (`null` with `cache.redis = false`), from the
//! description, like the other addresses.

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

/// One cache's Raft role and applied index from its `stats`, if it answers.
fn cache_cluster_fields(addr: &str) -> Option<CacheProbe> {
    let st = node_agent::cache::cache_stats(addr, Duration::from_millis(700)).ok()?;
    let role = st.get("cluster_role")?.clone();
    let num = |k: &str| st.get(k).and_then(|v| v.parse().ok());
    Some((
        role,
        num("cluster_applied_index"),
        num("cluster_leader_slot"),
    ))
}

/// A node's cache as `collect` probes it: Raft role, applied index, the leader's slot.
type CacheProbe = (String, Option<u64>, Option<u64>);

/// The status document of the whole cluster.
pub fn collect(cfg: &ClusterConfig) -> Value {
    // Ask every agent (and cache) at once: a hung one must not delay the others' answers.
    let states: Vec<(Result<NodeState, String>, Option<CacheProbe>)> = std::thread::scope(|sc| {
        let hs: Vec<_> = cfg
            .nodes
            .iter()
            .map(|n| {
                sc.spawn(move || {
                    let st = fetch_state(n);
                    let cache = (cfg.cache.clustered()
                        && st.as_ref().is_ok_and(|s| s.cache.pid.is_some()))
                    .then(|| cache_cluster_fields(&n.cache_addr()))
                    .flatten();
                    (st, cache)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| (Err("panicked".into()), None)))
            .collect()
    });
    let proxies: Vec<Option<&db_proxy::ProxyStatus>> = states
        .iter()
        .map(|(st, _)| st.as_ref().ok().and_then(|s| s.proxy.status.as_ref()))
        .collect();
    let named: Vec<&str> = proxies
        .iter()
        .flatten()
        .filter_map(|p| p.writer.as_deref())
        .collect();
    let writer = named.first().copied();
    let writers_agree = !named.is_empty()
        && named.iter().all(|w| Some(*w) == writer)
        && named.len() == proxies.iter().flatten().count();
    let nodes: Vec<Value> = cfg
        .nodes
        .iter()
        .zip(&states)
        .map(|(n, (st, cache))| {
            // This node as a backend of every reachable proxy.
            let views: Vec<&db_proxy::BackendStatus> = proxies
                .iter()
                .flatten()
                .filter_map(|p| p.backends.iter().find(|b| b.name == n.name))
                .collect();
            let health = match views.first() {
                None => "unknown".to_string(),
                Some(f) if views.iter().all(|b| b.health == f.health) => {
                    serde_json::to_value(f.health)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| format!("{:?}", f.health).to_lowercase())
                }
                Some(_) => "mixed".into(),
            };
            let backend = json!({
                "health": health,
                "writer": writer == Some(n.name.as_str()),
                "drained": views.iter().any(|b| b.drained),
                "connections_active": views.iter().map(|b| b.connections_active).sum::<i64>(),
                "connections_total": views.iter().map(|b| b.connections_total).sum::<u64>(),
            });
            match st {
                Ok(st) => {
                    let p = st.proxy.status.as_ref();
                    let (role, applied, leader_slot) = match cache {
                        Some((r, a, l)) => (Some(r.clone()), *a, *l),
                        None => (st.cache.role.clone(), st.cache.applied, st.cache.leader_slot),
                    };
                    json!({
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
                        "proxy": {
                            "addr": n.proxy_addr(),
                            "state": st.proxy.state,
                            "writer": p.and_then(|p| p.writer.clone()),
                            "writer_epoch": p.and_then(|p| p.writer_epoch),
                            "no_writer_reason": p.and_then(|p| p.no_writer_reason.clone()),
                            "connections_active": p.map(|p| p.backends.iter().map(|b| b.connections_active).sum::<i64>()),
                        },
                        "backend": backend,
                        "cache": {
                            "addr": n.cache_addr(),
                            "redis_addr": redis_addr(cfg, n),
                            "pid": st.cache.pid,
                            "state": st.cache.state,
                            "mode": st.cache.mode,
                            "role": role,
                            "applied": applied,
                            "leader_slot": leader_slot,
                            "restarts": st.cache.restarts,
                        },
                        "decision": st.decision,
                        "error": st.last_error,
                    })
                }
                Err(why) => json!({
                    "name": n.name,
                    "agent": {"addr": n.control_addr(), "pid": null, "reachable": false},
                    "db": {"state": "unreachable", "cluster_size": null, "seqno": null, "pid": null,
                           "addr": n.sql_addr(), "healthy": false, "restarts": null, "started_as": null},
                    "proxy": {"addr": n.proxy_addr(), "state": "unreachable", "writer": null,
                              "writer_epoch": null, "no_writer_reason": null, "connections_active": null},
                    "backend": backend,
                    "cache": {"addr": n.cache_addr(), "redis_addr": redis_addr(cfg, n), "pid": null,
                              "state": "unknown", "mode": null,
                              "role": null, "applied": null, "leader_slot": null, "restarts": null},
                    "decision": null,
                    "error": why,
                }),
            }
        })
        .collect();
    json!({"cluster": cfg.cluster.name, "writer": writer, "writers_agree": writers_agree, "nodes": nodes})
}

/// `cache.redis_addr` of `n`: its Redis address, or null when the tier serves no Redis.
fn redis_addr(cfg: &ClusterConfig, n: &cluster_config::Node) -> Value {
    if cfg.cache.redis_enabled() {
        Value::String(n.redis_addr())
    } else {
        Value::Null
    }
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
        "HEALTH",
        "CONNS",
        "PROXY ADDR",
        "PROXY",
        "CACHE",
        "ROLE",
        "APPLIED",
        "CACHE PID",
        "CACHE ADDR",
        "REDIS ADDR",
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
            format!(
                "{}{}{}",
                cell(&n["backend"]["health"]),
                if n["backend"]["writer"] == Value::Bool(true) {
                    ",writer"
                } else {
                    ""
                },
                if n["backend"]["drained"] == Value::Bool(true) {
                    ",drained"
                } else {
                    ""
                }
            ),
            cell(&n["backend"]["connections_active"]),
            cell(&n["proxy"]["addr"]),
            cell(&n["proxy"]["state"]),
            cell(&n["cache"]["state"]),
            cell(&n["cache"]["role"]),
            cell(&n["cache"]["applied"]),
            cell(&n["cache"]["pid"]),
            cell(&n["cache"]["addr"]),
            cell(&n["cache"]["redis_addr"]),
        ]);
        if let Some(e) = n["error"].as_str() {
            notes.push(format!("{}: {e}", cell(&n["name"])));
        }
        if let Some(r) = n["proxy"]["no_writer_reason"].as_str() {
            notes.push(format!("{}: db-proxy has no writer: {r}", cell(&n["name"])));
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
    let mut out = format!(
        "cluster {}, writer {}{}\n",
        cell(&doc["cluster"]),
        cell(&doc["writer"]),
        if doc["writer"].is_string() && doc["writers_agree"] != Value::Bool(true) {
            " (the proxies do not all agree yet)"
        } else {
            ""
        }
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cache: &str) -> ClusterConfig {
        let d = std::env::temp_dir().join(format!(
            "keel-status-{}-{}",
            cache.len(),
            std::process::id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("pw"), "x\n").unwrap();
        // Nobody listens on these control ports (port 1 of 127.0.0.x): every agent is
        // unreachable, which is what the addresses must not depend on.
        let mut t = format!(
            "[cluster]\nname='st'\ndata_dir='d'\n[users.app]\nname='a'\npassword_file='pw'\n\
             [users.monitor]\nname='m'\npassword_file='pw'\n[cache]\n{cache}\n"
        );
        for i in 1..=3 {
            t += &format!(
                "[[node]]\nname='n{i}'\naddress='127.0.0.{i}'\ncontrol_port=1\nredis_port=638{i}\n"
            );
        }
        ClusterConfig::from_toml(&t, &d).unwrap()
    }

    #[test]
    fn redis_addr_in_json_and_table() {
        let doc = collect(&cfg(""));
        let nodes = doc["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3);
        for (i, n) in nodes.iter().enumerate() {
            assert_eq!(n["agent"]["reachable"], false, "{n:#}");
            assert_eq!(
                n["cache"]["redis_addr"],
                format!("127.0.0.{}:638{}", i + 1, i + 1),
                "{n:#}"
            );
            assert_eq!(n["cache"]["addr"], format!("127.0.0.{}:11211", i + 1));
        }
        let t = table(&doc);
        let mut lines = t.lines().skip(1);
        let head = lines.next().unwrap();
        assert!(head.ends_with("CACHE ADDR       REDIS ADDR"), "{t}");
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("n1 ") && row.contains("127.0.0.1:11211  127.0.0.1:6381"),
            "{t}"
        );

        // cache.redis = false: null in JSON, '-' in the table.
        let doc = collect(&cfg("redis = false"));
        assert!(doc["nodes"][0]["cache"]["redis_addr"].is_null(), "{doc:#}");
        let t = table(&doc);
        let row = t.lines().nth(2).unwrap();
        assert!(row.ends_with("127.0.0.1:11211  -"), "{t}");
    }
}
