//! A `keel cache` cluster under test: N real `keel cache` processes on loopback, each in its own
//! process group with its own log, that can be killed (-9), paused (SIGSTOP), resumed (SIGCONT)
//! and restarted **on the same client-facing and peer ports** (so clients configured with the
//! node list keep working without a restart, as a real deployment's would).
//!
//! Ports are chosen once with [`crate::server::free_port`] (client port and Raft peer port per
//! node); readiness is a real check: `stats` must report `cluster_ready 1` (the node is a voter
//! and has caught up), polled with a deadline, never a fixed sleep. On drop every node's process
//! group is SIGKILLed and reaped (a paused node too); when the test panics the logs are printed
//! and the temp dir is kept.
//!
//! With [`RedisSide`] ([`CacheCluster::start_redis`]) every node also serves the Redis protocol
//! on a port it picks itself (`--redis-port 0 --redis-port-file <dir>/node<slot>.redis.port`, the
//! file removed before each incarnation starts), optionally with a password shared by all nodes
//! (`--redis-password-file`); readiness then also needs a `PING` answered on that port, and
//! [`CacheCluster::redis_addr`] names the current incarnation's address (it changes on restart).
//!
//! Never signals a pid it did not spawn, and only while that child is unreaped (so the pid and
//! its group id cannot have been reused).

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::redis::{ping_check, RespClient};
use crate::server::{file_tail, free_port, read_port_file, Error};

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// One incarnation of one node.
struct NodeProc {
    child: Child,
    log: PathBuf,
    command_line: String,
    reaped: bool,
}

impl NodeProc {
    fn signal(&self, sig: Signal, group: bool) -> io::Result<()> {
        if self.reaped {
            return Err(io::Error::other("process already reaped"));
        }
        // The pid is our unreaped child and the group is the one it leads (process_group(0)),
        // pinned by that unreaped child.
        let pid = Pid::from_raw(self.child.id() as i32);
        if group {
            signal::killpg(pid, sig)?;
        } else {
            signal::kill(pid, sig)?;
        }
        Ok(())
    }

    fn kill_and_reap(&mut self) {
        if !self.reaped {
            let _ = self.signal(Signal::SIGKILL, true);
            let _ = self.child.wait();
            self.reaped = true;
        }
    }
}

/// Whether every thread of `pid` is in the stopped state (`T` in `/proc/PID/task/TID/stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|st| {
                st.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('T'))
            })
            .unwrap_or(true) // a thread that just exited
    })
}

/// A running `keel cache` cluster; every node is killed and reaped on drop.
pub struct CacheCluster {
    bin: PathBuf,
    dir: PathBuf,
    client_ports: Vec<u16>,
    peer_ports: Vec<u16>,
    extra: Vec<OsString>,
    /// Index = slot - 1. `None` once killed (until restarted).
    nodes: Vec<Option<NodeProc>>,
    /// Incarnations started per slot (names the log files).
    generation: Vec<u32>,
    /// Logs of earlier incarnations, for failure reports.
    old_logs: Vec<PathBuf>,
    /// Every node also serves Redis.
    redis: Option<RedisSide>,
}

/// The Redis side of every node of a [`CacheCluster`].
#[derive(Clone, Debug, Default)]
pub struct RedisSide {
    /// Written to `<dir>/redis.password` and passed as `--redis-password-file` to every node.
    pub password: Option<String>,
}

/// `stats` of one node as name → value (`STAT name value` lines).
pub type Stats = BTreeMap<String, String>;

impl CacheCluster {
    /// Start `n` nodes of `keel cache` (binary `bin`) with `extra` flags added to each, and wait
    /// (at most `ready_timeout`) until every node reports `cluster_ready 1`.
    pub fn start(
        bin: &Path,
        n: u16,
        extra: &[&str],
        ready_timeout: Duration,
    ) -> Result<CacheCluster, Error> {
        Self::start_with(bin, n, extra, None, ready_timeout)
    }

    /// [`CacheCluster::start`] with the Redis side on every node (see the module doc); readiness
    /// also needs each node's Redis port to answer `PING`.
    pub fn start_redis(
        bin: &Path,
        n: u16,
        extra: &[&str],
        redis: RedisSide,
        ready_timeout: Duration,
    ) -> Result<CacheCluster, Error> {
        Self::start_with(bin, n, extra, Some(redis), ready_timeout)
    }

    fn start_with(
        bin: &Path,
        n: u16,
        extra: &[&str],
        redis: Option<RedisSide>,
        ready_timeout: Duration,
    ) -> Result<CacheCluster, Error> {
        let mut last = None;
        // A port may be taken between choosing and binding; then retry with new ports.
        for _ in 0..3 {
            let mut c = Self::new(bin, n, extra, redis.clone())?;
            for slot in 1..=n {
                c.spawn(slot)?;
            }
            match c.wait_all_ready(ready_timeout) {
                Ok(()) => return Ok(c),
                Err(e) => {
                    let port_taken = c.all_logs(4000).contains("in use");
                    if !port_taken {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn new(
        bin: &Path,
        n: u16,
        extra: &[&str],
        redis: Option<RedisSide>,
    ) -> Result<CacheCluster, Error> {
        let err = |m: String| Error { message: m };
        let mut ports = Vec::new();
        for _ in 0..2 * n {
            ports.push(free_port().map_err(|e| err(format!("keel cluster: no free port: {e}")))?);
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "keel-test-cluster-{}-{}-{nanos}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir)
            .map_err(|e| err(format!("keel cluster: temp dir {}: {e}", dir.display())))?;
        if let Some(pw) = redis.as_ref().and_then(|r| r.password.as_ref()) {
            let f = dir.join("redis.password");
            fs::write(&f, format!("{pw}\n"))
                .map_err(|e| err(format!("keel cluster: {}: {e}", f.display())))?;
        }
        Ok(CacheCluster {
            bin: bin.to_path_buf(),
            dir,
            client_ports: ports[..n as usize].to_vec(),
            peer_ports: ports[n as usize..].to_vec(),
            extra: extra.iter().map(OsString::from).collect(),
            nodes: (0..n).map(|_| None).collect(),
            generation: vec![0; n as usize],
            old_logs: Vec::new(),
            redis,
        })
    }

    /// The file `slot` writes its Redis port to.
    fn redis_port_file(&self, slot: u16) -> PathBuf {
        self.dir.join(format!("node{slot}.redis.port"))
    }

    /// Whether the nodes serve Redis ([`CacheCluster::start_redis`]).
    pub fn has_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// The Redis password every node requires, if any.
    pub fn redis_password(&self) -> Option<&str> {
        self.redis.as_ref().and_then(|r| r.password.as_deref())
    }

    /// The Redis port of `slot`'s current incarnation (`None`: no Redis side, not running, or
    /// not listening yet). It changes when the node restarts.
    pub fn redis_port(&self, slot: u16) -> Option<u16> {
        self.redis.as_ref()?;
        self.node(slot)?;
        read_port_file(&self.redis_port_file(slot))
    }

    /// The Redis address of `slot`'s current incarnation (see [`CacheCluster::redis_port`]).
    pub fn redis_addr(&self, slot: u16) -> Option<SocketAddr> {
        self.redis_port(slot)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
    }

    /// A new Redis connection to `slot`, authenticated when the nodes have a password.
    pub fn redis_connect(&self, slot: u16) -> io::Result<RespClient> {
        let addr = self.redis_addr(slot).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                format!("node {slot} has no Redis address (not running or no Redis side)"),
            )
        })?;
        RespClient::connect_auth(addr, self.redis_password())
    }

    /// Number of configured nodes (slots `1..=len`).
    pub fn len(&self) -> u16 {
        self.nodes.len() as u16
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All slots, `1..=len`.
    pub fn slots(&self) -> Vec<u16> {
        (1..=self.len()).collect()
    }

    /// `--cluster-peers` value.
    pub fn peers_arg(&self) -> String {
        self.peer_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Client-facing port of `slot` (the same across restarts).
    pub fn port(&self, slot: u16) -> u16 {
        self.client_ports[slot as usize - 1]
    }

    pub fn addr(&self, slot: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(slot)))
    }

    /// Client-facing ports of every slot, in slot order.
    pub fn ports(&self) -> Vec<u16> {
        self.client_ports.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pid of the current incarnation of `slot`, if it runs.
    pub fn pid(&self, slot: u16) -> Option<u32> {
        self.node(slot).map(|n| n.child.id())
    }

    fn node(&self, slot: u16) -> Option<&NodeProc> {
        self.nodes[slot as usize - 1].as_ref().filter(|n| !n.reaped)
    }

    /// Whether the current incarnation of `slot` is alive (running or paused).
    pub fn is_up(&mut self, slot: u16) -> bool {
        match self.nodes[slot as usize - 1].as_mut() {
            Some(n) if !n.reaped => match n.child.try_wait() {
                Ok(None) => true,
                _ => {
                    n.reaped = true;
                    false
                }
            },
            _ => false,
        }
    }

    /// Spawn `slot` (not running) with its fixed ports; does not wait for readiness.
    pub fn spawn(&mut self, slot: u16) -> Result<(), Error> {
        let i = slot as usize - 1;
        if self.node(slot).is_some() {
            return Err(Error {
                message: format!("keel cluster: node {slot} is already running"),
            });
        }
        if let Some(old) = self.nodes[i].take() {
            self.old_logs.push(old.log);
        }
        self.generation[i] += 1;
        let log = self
            .dir
            .join(format!("node{slot}.{}.log", self.generation[i]));
        let err = |m: String| Error { message: m };
        let out =
            File::create(&log).map_err(|e| err(format!("keel cluster: {}: {e}", log.display())))?;
        let out2 = out
            .try_clone()
            .map_err(|e| err(format!("keel cluster: dup log fd: {e}")))?;
        let mut args: Vec<OsString> = [
            "cache",
            "-l",
            "127.0.0.1",
            "-p",
            &self.port(slot).to_string(),
            "-U",
            "0",
            "--cluster-id",
            &slot.to_string(),
            "--cluster-peers",
            &self.peers_arg(),
        ]
        .iter()
        .map(OsString::from)
        .collect();
        if let Some(r) = &self.redis {
            // A stale port file would name the previous incarnation's port.
            let pf = self.redis_port_file(slot);
            match fs::remove_file(&pf) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(format!("keel cluster: {}: {e}", pf.display()))),
            }
            args.extend(["--redis-port", "0", "--redis-port-file"].map(OsString::from));
            args.push(pf.into_os_string());
            if r.password.is_some() {
                args.push("--redis-password-file".into());
                args.push(self.dir.join("redis.password").into_os_string());
            }
        }
        args.extend(self.extra.iter().cloned());
        let command_line = std::iter::once(self.bin.as_os_str())
            .chain(args.iter().map(|a| a.as_os_str()))
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let child = Command::new(&self.bin)
            .args(&args)
            .current_dir(&self.dir)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", &self.dir)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(out2))
            .process_group(0)
            .spawn()
            .map_err(|e| err(format!("keel cluster: cannot spawn `{command_line}`: {e}")))?;
        self.nodes[i] = Some(NodeProc {
            child,
            log,
            command_line,
            reaped: false,
        });
        Ok(())
    }

    /// SIGKILL `slot`'s process group and reap it (no-op if it is not running).
    pub fn kill(&mut self, slot: u16) {
        if let Some(n) = self.nodes[slot as usize - 1].as_mut() {
            n.kill_and_reap();
        }
    }

    /// SIGSTOP `slot` (the whole process: every thread stops, sockets stay open).
    pub fn pause(&self, slot: u16) -> Result<(), Error> {
        let n = self.node(slot).ok_or_else(|| Error {
            message: format!("keel cluster: node {slot} is not running"),
        })?;
        n.signal(Signal::SIGSTOP, true)
            .map_err(|e| self.failure(&format!("SIGSTOP node {slot}: {e}")))?;
        // kill(2) returns before the threads stop: wait until every one of them is stopped, so
        // the node can no longer answer anything once this returns.
        let pid = n.child.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(pid) {
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "node {slot} (pid {pid}) not stopped 5 s after SIGSTOP"
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// SIGCONT `slot`.
    pub fn resume(&self, slot: u16) -> Result<(), Error> {
        let n = self.node(slot).ok_or_else(|| Error {
            message: format!("keel cluster: node {slot} is not running"),
        })?;
        n.signal(Signal::SIGCONT, true)
            .map_err(|e| self.failure(&format!("SIGCONT node {slot}: {e}")))
    }

    /// Kill (if running) and start `slot` again on the same ports, then wait until it reports
    /// `cluster_ready 1` (it rejoined and caught up). Returns how long readiness took after spawn.
    pub fn restart(&mut self, slot: u16, ready_timeout: Duration) -> Result<Duration, Error> {
        self.kill(slot);
        let t = Instant::now();
        self.spawn(slot)?;
        self.wait_ready(slot, ready_timeout)?;
        Ok(t.elapsed())
    }

    /// `stats` of `slot` (1 s I/O timeouts: a paused node yields an error, not a hang).
    pub fn stats(&self, slot: u16) -> io::Result<Stats> {
        stats_of(self.addr(slot), Duration::from_secs(1))
    }

    /// Whether `slot`'s Redis side answers `PING` (true without a Redis side); `why` says what
    /// is missing otherwise.
    fn redis_ready(&self, slot: u16, why: &mut String) -> bool {
        if self.redis.is_none() {
            return true;
        }
        let Some(addr) = self.redis_addr(slot) else {
            *why = format!(
                "no Redis port in {} yet",
                self.redis_port_file(slot).display()
            );
            return false;
        };
        match ping_check(addr, self.redis_password().is_some()) {
            Ok(true) => true,
            Ok(false) => {
                *why = format!("Redis on {addr}: PING not answered +PONG / -NOAUTH");
                false
            }
            Err(e) => {
                *why = format!("Redis on {addr}: {e}");
                false
            }
        }
    }

    /// Wait until `slot` reports `cluster_ready 1` (and, with a Redis side, answers `PING` on
    /// its Redis port); fails early if the process exits.
    pub fn wait_ready(&mut self, slot: u16, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if !self.is_up(slot) {
                return Err(self.failure(&format!("node {slot} exited before it was ready")));
            }
            match self.stats(slot) {
                Ok(s)
                    if s.get("cluster_ready").map(String::as_str) == Some("1")
                        && self.redis_ready(slot, &mut last) =>
                {
                    return Ok(())
                }
                Ok(s) if s.get("cluster_ready").map(String::as_str) == Some("1") => {}
                Ok(s) => {
                    last = format!(
                        "cluster_ready={:?} role={:?}",
                        s.get("cluster_ready"),
                        s.get("cluster_role")
                    )
                }
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "node {slot} not ready after {timeout:?} (last: {last})"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until every node is ready and they agree on one leader.
    pub fn wait_all_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        for slot in self.slots() {
            let left = deadline.saturating_duration_since(Instant::now());
            self.wait_ready(slot, left.max(Duration::from_millis(1)))?;
        }
        self.leader(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        )
        .map(|_| ())
    }

    /// The slot every reachable ready node names as leader (and that calls itself leader),
    /// polled until `timeout`.
    pub fn leader(&self, timeout: Duration) -> Result<u16, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut views = Vec::new();
            for slot in self.slots() {
                if self.node(slot).is_none() {
                    continue;
                }
                if let Ok(s) = self.stats(slot) {
                    if s.get("cluster_ready").map(String::as_str) == Some("1") {
                        views.push((
                            slot,
                            s.get("cluster_role").cloned(),
                            s.get("cluster_leader_slot").cloned(),
                        ));
                    }
                }
            }
            let named: Vec<Option<u16>> = views
                .iter()
                .map(|v| v.2.as_deref().and_then(|l| l.parse().ok()))
                .collect();
            if let Some(Some(l)) = named.first() {
                let agree = named.iter().all(|n| *n == Some(*l));
                let leader_says = views
                    .iter()
                    .any(|v| v.0 == *l && v.1.as_deref() == Some("leader"));
                if agree && leader_says && views.len() * 2 > self.nodes.len() {
                    return Ok(*l);
                }
            }
            let last = format!("{views:?}");
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "no agreed leader after {timeout:?}; views (slot, role, leader): {last}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `max` bytes of the current log of `slot`.
    pub fn log_tail(&self, slot: u16, max: usize) -> String {
        match &self.nodes[slot as usize - 1] {
            Some(n) => file_tail(&n.log, max),
            None => "<never started>".into(),
        }
    }

    /// Tails of every log (current and earlier incarnations), for failure messages.
    pub fn all_logs(&self, max_each: usize) -> String {
        let mut out = String::new();
        let mut paths: Vec<(&Path, &str)> =
            self.old_logs.iter().map(|p| (p.as_path(), "")).collect();
        for n in self.nodes.iter().flatten() {
            paths.push((n.log.as_path(), n.command_line.as_str()));
        }
        for (p, cmd) in paths {
            out.push_str(&format!("  --- {} {cmd}\n", p.display()));
            for l in file_tail(p, max_each).lines() {
                out.push_str(&format!("    | {l}\n"));
            }
        }
        out
    }

    /// An error with `what`, the cluster's dir and every node's log tail.
    pub fn failure(&self, what: &str) -> Error {
        Error {
            message: format!(
                "keel cluster ({}): {what}\n{}",
                self.dir.display(),
                self.all_logs(2500)
            ),
        }
    }
}

impl Drop for CacheCluster {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut().flatten() {
            n.kill_and_reap();
        }
        if std::thread::panicking() {
            eprintln!(
                "[test-harness] keel cluster kept its dir for inspection: {}\n{}",
                self.dir.display(),
                self.all_logs(3000)
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// One `stats` round trip: `STAT name value` lines up to `END`.
pub fn stats_of(addr: SocketAddr, timeout: Duration) -> io::Result<Stats> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(b"stats\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while !buf.ends_with(b"END\r\n") {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before END",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.starts_with(b"SERVER_ERROR") || buf.starts_with(b"ERROR") {
            return Err(io::Error::other(
                String::from_utf8_lossy(&buf).trim().to_string(),
            ));
        }
    }
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ' ');
            (p.next() == Some("STAT")).then(|| {
                (
                    p.next().unwrap_or("").to_string(),
                    p.next().unwrap_or("").to_string(),
                )
            })
        })
        .collect())
}
