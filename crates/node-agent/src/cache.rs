//! The node's `keel cache`: its command line (standalone or cluster mode, memcached and Redis,
//! from the description), its supervision (restarted on the same client ports after a crash)
//! and a blocking `stats` query for its cluster fields.

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

/// Where `keel cache` reads the Redis password from: `cache.redis_password_file` (resolved),
/// or with `cache.redis_password_env` a file the agent writes into the node's folder
/// ([`write_redis_password`]); `None` without a password source.
pub fn redis_password_file(cfg: &ClusterConfig, node: &Node) -> Option<PathBuf> {
    if let Some(p) = cfg.redis_password_path() {
        return Some(p);
    }
    cfg.cache
        .redis_password_env
        .as_ref()
        .map(|_| cfg.node_dir(node).join(REDIS_PASSWORD_FILE))
}

/// The file in the node's folder that carries a password given by `redis_password_env`.
pub const REDIS_PASSWORD_FILE: &str = "redis.password";

/// With `cache.redis_password_env`, writes the password (mode 0600) where
/// [`redis_password_file`] points, so it never appears on a command line.
pub fn write_redis_password(cfg: &ClusterConfig, node: &Node) -> Result<(), String> {
    if cfg.cache.redis_password_env.is_none() || !cfg.cache.redis_enabled() {
        return Ok(());
    }
    let Some(path) = redis_password_file(cfg, node) else {
        return Ok(());
    };
    let pw = cfg
        .redis_password()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    use std::os::unix::fs::OpenOptionsExt;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(format!("{pw}\n").as_bytes())
    };
    write().map_err(|e| format!("writing the Redis password to {}: {e}", path.display()))
}

/// The arguments after `keel cache` that run `node`'s cache: memcached's flags; unless
/// `cache.redis = false`, `--redis-port <redis_port>` (and `--redis-password-file` when the
/// description has a Redis password); in cluster mode
/// `--cluster-id <slot> --cluster-peers <every node's Raft address>` (slot = 1-based position
/// in the description) and `--cluster-read`. The client ports are always the node's
/// `cache_port` and `redis_port`, so a restarted cache is found where applications already look.
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
    if cfg.cache.redis_enabled() {
        a.extend(["--redis-port".into(), node.redis_port.to_string()]);
        if let Some(f) = redis_password_file(cfg, node) {
            a.extend([
                "--redis-password-file".into(),
                f.to_string_lossy().into_owned(),
            ]);
        }
    }
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
    if let Err(e) = write_redis_password(cfg, node) {
        sh.error(e.clone());
        sh.st().cache.state = format!("failed: {e}");
        return;
    }
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
        "started keel cache on {}{}{}",
        node.cache_addr(),
        if cfg.cache.redis_enabled() {
            format!(", Redis on {}", node.redis_addr())
        } else {
            String::new()
        },
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
        cfg_with(mode, &format!("mode='{mode}'"))
    }

    /// Three nodes on 127.0.0.1 (node i at 20000 + 10·i + k, Redis at + 8), `cache` lines
    /// added to `[cache]`.
    fn cfg_with(tag: &str, cache: &str) -> ClusterConfig {
        // A folder per test: tests run in parallel and rewrite their password file.
        let dir =
            std::env::temp_dir().join(format!("keel-agent-cache-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "x\n").unwrap();
        let mut t = format!(
            "[cluster]\nname='c'\ndata_dir='d'\n[users.app]\nname='a'\npassword_file='pw'\n\
             [users.monitor]\nname='m'\npassword_file='pw'\n[cache]\n{cache}\n"
        );
        for i in 0..3 {
            t += &format!(
                "[[node]]\nname='n{i}'\naddress='127.0.0.1'\nsql_port={}\ngalera_port={}\nist_port={}\n\
                 sst_port={}\ncache_port={}\nproxy_port={}\ncontrol_port={}\nredis_port={}\n",
                20000 + i * 10,
                20001 + i * 10,
                20002 + i * 10,
                20003 + i * 10,
                20004 + i * 10,
                20005 + i * 10,
                20006 + i * 10,
                20008 + i * 10
            );
        }
        ClusterConfig::from_toml(&t, &dir).unwrap()
    }

    fn after<'a>(a: &'a [String], flag: &str) -> Option<&'a str> {
        a.iter()
            .position(|x| x == flag)
            .and_then(|i| a.get(i + 1))
            .map(String::as_str)
    }

    #[test]
    fn redis_port_and_password_file_are_passed() {
        // No password source: Redis on its port, no password file.
        let c = cfg("cluster");
        let a = cache_args(&c, &c.nodes[2]);
        assert_eq!(after(&a, "--redis-port"), Some("20028"), "{a:?}");
        assert_eq!(after(&a, "--redis-password-file"), None, "{a:?}");
        // The Redis flags come before the cluster flags and extra args, so extra_args can
        // still override them.
        let s = a.join(" ");
        assert!(
            s.starts_with(
                "cache -p 20024 -l 127.0.0.1 -m 64 -c 1024 --redis-port 20028 --cluster-id 3"
            ),
            "{s}"
        );
        // A password file: passed resolved against the description's folder.
        let c = cfg_with("pwfile", "redis_password_file='pw'");
        let a = cache_args(&c, &c.nodes[0]);
        assert_eq!(after(&a, "--redis-port"), Some("20008"));
        let f = after(&a, "--redis-password-file").unwrap();
        assert_eq!(Path::new(f), c.base_dir.join("pw"));
        assert!(Path::new(f).is_absolute());
        write_redis_password(&c, &c.nodes[0]).unwrap(); // nothing to write
        assert_eq!(std::fs::read_to_string(f).unwrap(), "x\n");
        // redis = false: no Redis flags at all.
        let c = cfg_with("off", "redis = false\nredis_password_file='pw'");
        let s = cache_args(&c, &c.nodes[0]).join(" ");
        assert!(!s.contains("--redis"), "{s}");
    }

    #[test]
    fn redis_password_from_the_environment_goes_into_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        std::env::set_var("KEEL_AGENT_TEST_REDIS_PW", "fr0m-env");
        let c = cfg_with("env", "redis_password_env='KEEL_AGENT_TEST_REDIS_PW'");
        let n = &c.nodes[1];
        let want = c.node_dir(n).join(REDIS_PASSWORD_FILE);
        let a = cache_args(&c, n);
        assert_eq!(after(&a, "--redis-password-file"), want.to_str());
        std::fs::create_dir_all(c.node_dir(n)).unwrap();
        write_redis_password(&c, n).unwrap();
        assert_eq!(std::fs::read_to_string(&want).unwrap(), "fr0m-env\n");
        let mode = std::fs::metadata(&want).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        // A folder that cannot be written: an error that names the file.
        let mut bad = c.clone();
        bad.nodes[1].data_dir = Some(PathBuf::from("/proc/keel-no-such-dir"));
        let e = write_redis_password(&bad, &bad.nodes[1]).unwrap_err();
        assert!(e.contains("/proc/keel-no-such-dir/redis.password"), "{e}");
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
