//! The node's `keel cache`: its command line (standalone or cluster mode, from the description),
//! its supervision (restarted on the same client port after a crash) and a blocking `stats`
//! query for its cluster fields.

use crate::Shared;
use cluster_config::{ClusterConfig, Node};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};
use supervisor::{BackOff, Child, Signal, Spec};
use tracing::{debug, info, warn};

/// The arguments after `keel` that run `node`'s cache: memcached's flags, plus in cluster mode
/// `--cluster-id <slot> --cluster-peers <every node's Raft address>` (slot = 1-based position
/// in the description) and `--cluster-read`. The client port is always the node's
/// `cache_port`, so a restarted cache is found where applications already look.
pub fn cache_args(cfg: &ClusterConfig, node: &Node) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "cache".into(),
        "-p".into(),
        node.cache_port.to_string(),
        "-l".into(),
        node.address.clone(),
        "-m".into(),
        cfg.cache.memory_mb.to_string(),
        "-c".into(),
        cfg.cache.max_connections.to_string(),
    ];
    if cfg.cache.clustered() {
        let slot = cfg.index_of(&node.name).unwrap_or(0) + 1;
        a.extend([
            "--cluster-id".into(),
            slot.to_string(),
            "--cluster-peers".into(),
            cfg.cache_peers(),
            "--cluster-read".into(),
            cfg.cache.read.clone(),
        ]);
    }
    a.extend(cfg.cache.extra_args.iter().cloned());
    a
}

/// `stats` of the cache at `addr` as name → value (memcached's lines and keel's `cluster_*`).
pub fn cache_stats(addr: &str, timeout: Duration) -> std::io::Result<HashMap<String, String>> {
    let sa = addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr}: no address"),
        )
    })?;
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&sa, timeout)?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(b"stats\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.ends_with(b"END\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        s.set_read_timeout(Some(left))?;
        let n = s.read(&mut chunk)?;
        if n == 0 || buf.len() > 1 << 20 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ' ');
            match (p.next(), p.next(), p.next()) {
                (Some("STAT"), Some(k), Some(v)) => Some((k.to_owned(), v.to_owned())),
                _ => None,
            }
        })
        .collect())
}

/// Runs the node's `keel cache` until the agent stops: output in `cache.log`, its own process
/// group, SIGTERM when the agent dies (it would hold the port against the next agent);
/// restarted on the same client port after a crash, under [`BackOff`]; stopped with SIGTERM and
/// a 3 s grace period.
pub(crate) fn supervise(
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
    let log = dir.join("cache.log");
    let spec = Spec::new("keel cache", &program)
        .args(cache_args(cfg, node))
        .log(&log)
        .parent_death_signal(Signal::SIGTERM);
    let mut backoff = BackOff::DEFAULT;
    while !sh.stopping() {
        let was_healthy = match Child::spawn(&spec) {
            Ok(mut child) => {
                started(&sh, cfg, node, &child);
                wait_answering(&sh, node, &mut child);
                let Some(status) = watch(&sh, cfg, node, &mut child) else {
                    child.stop(Duration::from_secs(3));
                    let mut st = sh.st();
                    st.cache.pid = None;
                    st.cache.state = "stopped".into();
                    return;
                };
                exited(&sh, node, &child, status, &log);
                child.started().elapsed() >= BackOff::HEALTHY_RUN
            }
            Err(e) => {
                warn!(node = %sh.node, child = "keel cache", "{e}");
                sh.st().cache.state = format!("failed: {e}");
                false
            }
        };
        if sh.nap(backoff.after_exit(was_healthy)) {
            break;
        }
    }
    sh.st().cache.state = "stopped".into();
}

fn started(sh: &Shared, cfg: &ClusterConfig, node: &Node, child: &Child) {
    {
        let mut st = sh.st();
        st.cache.pid = Some(child.pid());
        st.cache.state = "starting".into();
        st.cache.role = None;
        st.cache.applied = None;
        st.cache.leader_slot = None;
    }
    info!(
        node = %sh.node,
        child = "keel cache",
        pid = child.pid(),
        "started keel cache on {}{}",
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
    );
}

/// How long a started cache may take to answer `stats` before the agent says so.
const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

/// Waits until the started cache answers `stats` on its client port (state `running`); a cache
/// that exits meanwhile is left to [`watch`], one that stays silent is logged and watched too.
fn wait_answering(sh: &Shared, node: &Node, child: &mut Child) {
    let addr = node.cache_addr();
    let answers = || sh.stopping() || cache_stats(&addr, Duration::from_millis(500)).is_ok();
    match child.wait_ready(ANSWER_DEADLINE, answers) {
        Ok(()) => {
            if !sh.stopping() {
                sh.st().cache.state = "running".into();
                debug!(node = %sh.node, child = "keel cache", pid = child.pid(), "answers on {addr}");
            }
        }
        Err(e @ supervisor::Error::NotReady { .. }) => {
            warn!(node = %sh.node, child = "keel cache", pid = child.pid(), "{e}");
            sh.st().cache.state = "running".into();
        }
        Err(_) => {}
    }
}

/// Watches the running cache until it exits (its status) or the agent stops (`None`), keeping
/// the node's state up to date with the cache's cluster fields.
fn watch(sh: &Shared, cfg: &ClusterConfig, node: &Node, child: &mut Child) -> Option<ExitStatus> {
    let mut last_stats = Instant::now();
    loop {
        if sh.stopping() {
            return None;
        }
        if let Some(status) = child.try_wait() {
            return Some(status);
        }
        if cfg.cache.clustered() && last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            if let Ok(stats) = cache_stats(&node.cache_addr(), Duration::from_millis(500)) {
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
    }
}

fn exited(sh: &Shared, node: &Node, child: &Child, status: ExitStatus, log: &Path) {
    sh.record_error(format!(
        "keel cache (pid {}) exited: {status}; restarting it on {}",
        child.pid(),
        node.cache_addr()
    ));
    warn!(
        node = %sh.node,
        child = "keel cache",
        pid = child.pid(),
        status = %status,
        "keel cache exited; restarting it on {}",
        node.cache_addr()
    );
    let mut st = sh.st();
    st.cache.pid = None;
    st.cache.role = None;
    st.cache.applied = None;
    st.cache.state = format!("failed: exited {status}, see {}", log.display());
    st.cache.restarts += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn cfg(mode: &str) -> ClusterConfig {
        let dir = std::env::temp_dir().join(format!("keel-agent-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "x\n").unwrap();
        let mut t = format!(
            "[cluster]\nname='c'\ndata_dir='d'\n[users.app]\nname='a'\npassword_file='pw'\n\
             [users.monitor]\nname='m'\npassword_file='pw'\n[cache]\nmode='{mode}'\n"
        );
        for i in 0..3 {
            t += &format!(
                "[[node]]\nname='n{i}'\naddress='127.0.0.1'\nsql_port={}\ngalera_port={}\nist_port={}\n\
                 sst_port={}\ncache_port={}\nproxy_port={}\ncontrol_port={}\n",
                20000 + i * 10,
                20001 + i * 10,
                20002 + i * 10,
                20003 + i * 10,
                20004 + i * 10,
                20005 + i * 10,
                20006 + i * 10
            );
        }
        ClusterConfig::from_toml(&t, &dir).unwrap()
    }

    #[test]
    fn cluster_mode_args_name_every_peer_and_the_slot() {
        let c = cfg("cluster");
        let a = cache_args(&c, &c.nodes[1]);
        let s = a.join(" ");
        assert!(s.starts_with("cache -p 20014 -l 127.0.0.1 -m 64"), "{s}");
        assert!(
            s.contains(
                "--cluster-id 2 --cluster-peers 1=127.0.0.1:21004,2=127.0.0.1:21014,3=127.0.0.1:21024 --cluster-read linearizable"
            ),
            "{s}"
        );
        let c = cfg("standalone");
        let s = cache_args(&c, &c.nodes[1]).join(" ");
        assert!(!s.contains("--cluster"), "{s}");
    }

    #[test]
    fn stats_are_parsed_until_end() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 16];
            let n = s.read(&mut b).unwrap();
            assert_eq!(&b[..n], b"stats\r\n");
            // In two pieces, as a real server may send it.
            s.write_all(b"STAT pid 7\r\nSTAT cluster_role lea").unwrap();
            s.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(b"der\r\nSTAT cluster_applied_index 42\r\nEND\r\n")
                .unwrap();
        });
        let st = cache_stats(&addr, Duration::from_secs(2)).unwrap();
        t.join().unwrap();
        assert_eq!(st["cluster_role"], "leader");
        assert_eq!(st["cluster_applied_index"], "42");
        assert_eq!(st["pid"], "7");
    }
}
