//! Integration tests of the MariaDB Galera tier against real mariadbd + Galera processes:
//! `keel up` from nothing, a row written on one node read on the others, kill -9 of one
//! mariadbd (the agent brings it back by IST), kill -9 of everything (the cluster comes back from
//! the most advanced node with every acknowledged commit), clean stop and restart (the last node
//! out bootstraps), a node's data missing after a total outage (keel waits and says why;
//! `keel db bootstrap --force` works), and the whole tier as one: every node's db-proxy names the
//! same writer, a write through one proxy is read through another, the three caches hold the same
//! data (and a killed cache comes back on its port), `keel db drain` moves the writer, kill -9 of
//! the writer's mariadbd is survived by new connections through the proxy.
//!
//! Needs `mariadb-server mariadb-client galera-4 rsync` and root (mariadbd runs as `mysql`).
//! Set `KEEL_SKIP_TIER_TESTS=1` to skip them on a machine without those. The tier tests run one
//! at a time (three Galera nodes each, on two cores) and every process they start is stopped by
//! pid when the test ends, pass or fail.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) fn skip() -> bool {
    if std::env::var_os("KEEL_SKIP_TIER_TESTS").is_some() {
        eprintln!("KEEL_SKIP_TIER_TESTS is set: skipping a Galera tier test");
        return true;
    }
    assert!(
        Path::new("/usr/sbin/mariadbd").exists() && Path::new("/usr/lib/galera/libgalera_smm.so").exists(),
        "the tier tests need MariaDB and Galera: apt-get install mariadb-server mariadb-client galera-4 rsync \
         (or set KEEL_SKIP_TIER_TESTS=1)"
    );
    false
}

fn port_free(p: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
}

/// A base port whose 30 ports are free (distinct per process and per call).
fn free_base() -> u16 {
    static NEXT: Mutex<u16> = Mutex::new(0);
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let base = 12000 + ((std::process::id() % 20) as u16) * 200 + *next * 40;
        *next = (*next + 1) % 5;
        if (base..base + 30).all(port_free) {
            return base;
        }
    }
}

/// A tier in a temp dir; dropping it stops it (`keel down`, then SIGKILL of whatever of ours
/// is left: agents from their pid files, mariadbd from the pid file of each node).
pub(crate) struct Tier {
    pub(crate) dir: PathBuf,
    pub(crate) base: u16,
}

pub(crate) fn keel(args: &[&str]) -> Output {
    Command::new(super::keel_bin())
        .args(args)
        .output()
        .expect("running keel")
}

pub(crate) fn show(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Tier {
    pub(crate) fn new(tag: &str) -> Tier {
        let dir = std::env::temp_dir().join(format!("keel-tier-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir); // our own temp dir from an earlier run
        Tier {
            dir,
            base: free_base(),
        }
    }
    pub(crate) fn d(&self) -> &str {
        self.dir.to_str().unwrap()
    }
    pub(crate) fn up(&self, timeout: u64) -> Output {
        self.up_with(timeout, false)
    }
    /// `keel up`, with the caches (a Raft cluster) or without (`--no-cache`, lighter).
    pub(crate) fn up_with(&self, timeout: u64, caches: bool) -> Output {
        let base = self.base.to_string();
        let timeout = timeout.to_string();
        let mut args = vec![
            "up",
            "--dir",
            self.d(),
            "--base-port",
            &base,
            "--timeout",
            &timeout,
        ];
        if !caches {
            args.push("--no-cache");
        }
        keel(&args)
    }
    pub(crate) fn up_ok(&self) -> f64 {
        let t = Instant::now();
        let o = self.up(120);
        assert!(
            o.status.success(),
            "keel up failed\n{}\n{}",
            show(&o),
            self.logs()
        );
        t.elapsed().as_secs_f64()
    }
    fn down(&self) -> Output {
        keel(&["down", "--dir", self.d(), "--timeout", "120"])
    }
    pub(crate) fn status(&self) -> Value {
        let o = keel(&["status", "--dir", self.d(), "--json"]);
        assert!(o.status.success(), "keel status failed\n{}", show(&o));
        serde_json::from_slice(&o.stdout).expect("status JSON")
    }
    pub(crate) fn node(&self, i: usize) -> Value {
        self.status()["nodes"][i].clone()
    }
    fn sql_port(&self, i: usize) -> u16 {
        self.base + 10 * i as u16
    }
    pub(crate) fn cache_port(&self, i: usize) -> u16 {
        self.base + 10 * i as u16 + 4
    }
    pub(crate) fn proxy_port(&self, i: usize) -> u16 {
        self.base + 10 * i as u16 + 5
    }
    pub(crate) fn control_port(&self, i: usize) -> u16 {
        self.base + 10 * i as u16 + 6
    }
    /// Runs SQL as the app user (from app.cnf) on node `i`.
    fn sql(&self, i: usize, sql: &str) -> Result<String, String> {
        self.sql_at(self.sql_port(i), 3, sql)
    }
    /// Runs SQL as the app user (from app.cnf) on `port` (a mariadbd or a db-proxy).
    pub(crate) fn sql_at(
        &self,
        port: u16,
        connect_timeout: u64,
        sql: &str,
    ) -> Result<String, String> {
        let (port, timeout) = (
            format!("--port={port}"),
            format!("--connect-timeout={connect_timeout}"),
        );
        super::adopt::sql(&self.dir.join("app.cnf"), &[&port, &timeout], sql)
    }
    /// Polls `keel status` until `ok` holds for the document, or fails with the last one.
    pub(crate) fn wait_for(&self, what: &str, secs: u64, ok: impl Fn(&Value) -> bool) -> f64 {
        let t = Instant::now();
        loop {
            let s = self.status();
            if ok(&s) {
                return t.elapsed().as_secs_f64();
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "{what}: not within {secs} s; last status {s:#}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    pub(crate) fn all_synced(s: &Value, size: i64) -> bool {
        s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["db"]["state"] == "Synced" && n["db"]["cluster_size"] == size)
    }
    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=3 {
            let p = self.dir.join(format!("node{n}.agent.log"));
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out += &format!(
                "--- {} (tail)\n{}\n",
                p.display(),
                lines[lines.len().saturating_sub(12)..].join("\n")
            );
        }
        out
    }
    pub(crate) fn agent_pids(&self) -> Vec<i32> {
        (1..=3)
            .filter_map(|n| {
                std::fs::read_to_string(self.dir.join(format!("node{n}.agent.pid"))).ok()
            })
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    }
    pub(crate) fn mariadbd_pids(&self) -> Vec<i32> {
        (1..=3)
            .filter_map(|n| {
                std::fs::read_to_string(self.dir.join(format!("node{n}/mysqld.pid"))).ok()
            })
            .filter_map(|s| s.trim().parse().ok())
            .filter(|pid| comm(*pid).as_deref() == Some("mariadbd"))
            .collect()
    }
    /// SIGKILL to every agent and mariadbd of this tier (pids it recorded; verified by name
    /// so a recycled pid is left alone).
    pub(crate) fn kill_all(&self) {
        let agents: Vec<i32> = self
            .agent_pids()
            .into_iter()
            .filter(|p| comm(*p).as_deref() == Some("keel"))
            .collect();
        for pid in &agents {
            sigkill(*pid);
        }
        let dbs = self.mariadbd_pids();
        for pid in &dbs {
            sigkill(*pid);
        }
        // SIGKILL is asynchronous: wait until they are gone (or zombies), so their ports are free.
        let t = Instant::now();
        while dbs.iter().chain(&agents).any(|p| comm(*p).is_some())
            && t.elapsed() < Duration::from_secs(20)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        // ... and until the ports of the tier can be bound again.
        let busy = || {
            (self.base..self.base + 30)
                .filter(|p| p % 10 != 5 && !port_free(*p))
                .collect::<Vec<_>>()
        };
        while !busy().is_empty() && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let b = busy();
        if !b.is_empty() {
            let ss = Command::new("ss")
                .arg("-tanp")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            eprintln!(
                "ports {b:?} still busy 30 s after the kill:\n{}",
                ss.unwrap_or_default()
            );
        }
    }

    /// Stops node `i`'s agent cleanly (`POST /shutdown` on its control API, as `keel down` does
    /// node by node: mariadbd shut down, cache and proxy stopped) and waits until the agent is
    /// gone; `keel up` starts it again. Returns the seconds it took.
    /// `POST path` on node i's control API, with `Authorization: Bearer token` if given; the
    /// whole answer.
    pub(crate) fn post_control(&self, i: usize, path: &str, token: Option<&str>) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.control_port(i)))
            .unwrap_or_else(|e| panic!("node{}'s control API: {e}", i + 1));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
    }

    /// The control token `keel up` generated.
    pub(crate) fn control_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("secrets/control.token"))
            .expect("keel up writes secrets/control.token")
            .trim()
            .to_owned()
    }

    pub(crate) fn stop_node(&self, i: usize, secs: u64) -> f64 {
        let t = Instant::now();
        let pid_file = self.dir.join(format!("node{}.agent.pid", i + 1));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no agent pid in {}", pid_file.display()));
        // Without the tier's token, or with another, the agent refuses and keeps running.
        let refused = self.post_control(i, "/shutdown", None);
        assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
        let refused = self.post_control(i, "/shutdown", Some("not-the-token"));
        assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
        assert_eq!(
            comm(pid).as_deref(),
            Some("keel"),
            "a refused shutdown stops nothing"
        );
        let reply = self.post_control(i, "/shutdown", Some(&self.control_token()));
        while comm(pid).as_deref() == Some("keel") {
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "node{}'s agent (pid {pid}) did not stop within {secs} s after POST /shutdown \
                 ({reply:?})\n{}",
                i + 1,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(&pid_file);
        t.elapsed().as_secs_f64()
    }

    /// Node `i`'s folder (`my.cnf`, `data/`, `error.log`).
    pub(crate) fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{}", i + 1))
    }
    /// Node `i`'s running mariadbd (from its pid file, verified by name).
    pub(crate) fn mariadbd_pid(&self, i: usize) -> Option<i32> {
        let pid = std::fs::read_to_string(self.node_dir(i).join("mysqld.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (comm(pid).as_deref() == Some("mariadbd")).then_some(pid)
    }
    /// SQL as root over node `i`'s socket (`-N -B`, `wsrep_sync_wait=0`); panics on failure.
    pub(crate) fn root_sql(&self, i: usize, q: &str) -> String {
        let o = Command::new("mariadb")
            .arg(format!(
                "--defaults-file={}",
                self.node_dir(i).join("my.cnf").display()
            ))
            .args(["--connect-timeout=5", "-N", "-B", "-e"])
            .arg(format!("SET SESSION wsrep_sync_wait=0; {q}"))
            .output()
            .expect("mariadb client");
        assert!(
            o.status.success(),
            "{q}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }
    /// `keel db drain NODE` (waits until safe) or `keel db undrain NODE`; panics on failure.
    pub(crate) fn drain(&self, node: &str, on: bool) {
        let o = if on {
            keel(&["db", "drain", node, "--dir", self.d(), "--timeout", "30"])
        } else {
            keel(&["db", "undrain", node, "--dir", self.d()])
        };
        assert!(
            o.status.success(),
            "keel db {}drain {node}\n{}",
            if on { "" } else { "un" },
            show(&o)
        );
    }

    /// The pids of the tier's running caches (from the agents, verified by name).
    pub(crate) fn cache_pids(&self) -> Vec<i32> {
        self.status()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["cache"]["pid"].as_i64())
            .map(|p| p as i32)
            .filter(|p| comm(*p).as_deref() == Some("keel"))
            .collect()
    }

    /// A power loss of the whole tier: every cache, mariadbd and agent SIGKILLed at once (pids
    /// read first and verified by name; caches and databases before their agents, so no agent
    /// sees a child die and reacts), then waits like [`Tier::kill_all`] until the ports are free.
    /// Returns the pids and the moment of the kill (seconds since the Unix epoch).
    pub(crate) fn power_loss(&self) -> (Vec<i32>, f64) {
        let caches = self.cache_pids();
        let dbs = self.mariadbd_pids();
        let agents: Vec<i32> = self
            .agent_pids()
            .into_iter()
            .filter(|p| comm(*p).as_deref() == Some("keel"))
            .collect();
        let all: Vec<i32> = caches.iter().chain(&dbs).chain(&agents).copied().collect();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        for pid in &all {
            sigkill(*pid);
        }
        self.kill_all();
        (all, at)
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        let o = self.down();
        if !o.status.success() {
            eprintln!("keel down failed while cleaning up:\n{}", show(&o));
        }
        self.kill_all();
        // The test's own temp data: kept when the test failed, for the post-mortem.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub(crate) fn comm(pid: i32) -> Option<String> {
    let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    if stat
        .rsplit_once(')')
        .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    {
        return None;
    }
    Some(c.trim().to_owned())
}

pub(crate) fn sigkill(pid: i32) {
    // SAFETY: plain kill(2) on a pid this test's tier started and that was just verified by name.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// From nothing to three Synced nodes; replication; kill -9 of one mariadbd (back by IST);
/// clean stop of all and restart (the last node out, node1, bootstraps).
#[test]
fn up_replicate_kill_one_clean_restart() {
    if skip() {
        return;
    }
    let _one = super::galera_lock();
    let tier = Tier::new("basic");
    let secs = tier.up_ok();
    eprintln!("keel up from nothing: {secs:.1} s");
    let s = tier.status();
    assert!(Tier::all_synced(&s, 3), "{s:#}");
    for (i, n) in s["nodes"].as_array().unwrap().iter().enumerate() {
        assert_eq!(n["name"], format!("node{}", i + 1));
        assert_eq!(n["db"]["addr"], format!("127.0.0.1:{}", tier.sql_port(i)));
        assert!(
            n["db"]["pid"].as_i64().unwrap() > 0 && n["db"]["seqno"].as_i64().unwrap() >= 0,
            "{n:#}"
        );
        assert!(n["cache"]["addr"].is_string());
    }
    // app.cnf connects at once; a row written on node1 is read on the others.
    tier.sql(0, "CREATE TABLE seafile_db.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO seafile_db.t VALUES (1, 'hello')")
        .unwrap();
    for i in 1..3 {
        assert_eq!(
            tier.sql(i, "SELECT v FROM seafile_db.t WHERE id = 1")
                .unwrap(),
            "hello"
        );
    }

    // kill -9 node2's mariadbd: the agent recovers the position and rejoins by IST.
    let old = tier.node(1);
    let old_pid = old["db"]["pid"].as_i64().unwrap() as i32;
    let log = tier.dir.join("node2/error.log");
    let log_before = std::fs::metadata(&log).unwrap().len() as usize;
    sigkill(old_pid);
    tier.sql(0, "INSERT INTO seafile_db.t VALUES (2, 'while down')")
        .unwrap();
    let secs = tier.wait_for("node2 back after kill -9", 90, |s| {
        let n = &s["nodes"][1];
        Tier::all_synced(s, 3)
            && n["db"]["pid"].as_i64() != Some(old_pid as i64)
            && n["db"]["restarts"] == 1
    });
    eprintln!("kill -9 of one mariadbd to Synced again: {secs:.1} s");
    let text = std::fs::read_to_string(&log).unwrap();
    let after = &text[log_before..];
    assert!(
        after.contains("Recovered position"),
        "no --wsrep-recover in the log"
    );
    assert!(
        after.contains("IST received"),
        "node2 did not rejoin by IST:\n{}",
        &after[after.len().saturating_sub(3000)..]
    );
    let started_as = tier.node(1)["db"]["started_as"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(started_as.starts_with("join from "), "{started_as}");
    assert_eq!(
        tier.sql(1, "SELECT v FROM seafile_db.t WHERE id = 2")
            .unwrap(),
        "while down"
    );

    // The agent of node3 dies, its mariadbd does not: `keel up` starts a new agent, which adopts
    // the running mariadbd instead of starting a second one.
    let n3 = tier.node(2);
    let agent3 = n3["agent"]["pid"].as_i64().unwrap() as i32;
    let db3 = n3["db"]["pid"].as_i64().unwrap();
    sigkill(agent3);
    while comm(agent3).is_some() {
        std::thread::sleep(Duration::from_millis(50));
    }
    tier.up_ok();
    let n3 = tier.node(2);
    assert_eq!(
        (n3["db"]["pid"].as_i64(), n3["db"]["started_as"].as_str()),
        (Some(db3), Some("adopted")),
        "{n3:#}"
    );

    // Clean stop of all, one at a time: node1 is the last one out and bootstraps next time.
    let o = tier.down();
    assert!(o.status.success(), "{}", show(&o));
    let safe = |n: usize| {
        std::fs::read_to_string(tier.dir.join(format!("node{n}/data/grastate.dat"))).unwrap()
    };
    assert!(safe(1).contains("safe_to_bootstrap: 1"), "{}", safe(1));
    assert!(safe(2).contains("safe_to_bootstrap: 0") && safe(3).contains("safe_to_bootstrap: 0"));
    assert!(
        tier.agent_pids().is_empty() && tier.mariadbd_pids().is_empty(),
        "something still runs after keel down"
    );
    let o = tier.down();
    assert!(
        o.status.success(),
        "keel down must be repeatable: {}",
        show(&o)
    );

    tier.up_ok();
    let n1 = tier.node(0);
    assert!(
        n1["decision"]
            .as_str()
            .unwrap()
            .contains("node1 bootstraps: it has safe_to_bootstrap: 1"),
        "{n1:#}"
    );
    assert_eq!(
        tier.sql(2, "SELECT COUNT(*) FROM seafile_db.t").unwrap(),
        "2"
    );
}

/// kill -9 of every agent and every mariadbd while a client commits: `keel up` brings the
/// cluster back from the most advanced node, and every acknowledged commit is there.
#[test]
fn total_outage_keeps_every_acknowledged_commit() {
    if skip() {
        return;
    }
    let _one = super::galera_lock();
    let tier = Tier::new("outage");
    tier.up_ok();
    tier.sql(0, "CREATE TABLE seafile_db.acked (id INT PRIMARY KEY)")
        .unwrap();

    // A writer commits one row per statement (autocommit) on every node in turn and records
    // the ids whose commit was acknowledged.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, dir, base) = (stop.clone(), tier.dir.clone(), tier.base);
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut id = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                id += 1;
                let port = base + 10 * (id % 3) as u16;
                let ok = Command::new("mariadb")
                    .arg(format!("--defaults-file={}", dir.join("app.cnf").display()))
                    .arg(format!("--port={port}"))
                    .args([
                        "--connect-timeout=2",
                        "-e",
                        &format!("INSERT INTO seafile_db.acked VALUES ({id})"),
                    ])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if ok {
                    acked.push(id);
                }
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_secs(2)); // let it commit for a while
    tier.kill_all();
    let killed = Instant::now();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked = writer.join().unwrap();
    assert!(
        acked.len() > 5,
        "the writer committed only {} rows before the kill",
        acked.len()
    );

    tier.up_ok();
    let secs = killed.elapsed().as_secs_f64();
    eprintln!("total outage (kill -9 of everything) to 3 x Synced via keel up: {secs:.1} s, {} acked rows", acked.len());
    let s = tier.status();
    let bootstrapper: Vec<&Value> = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["db"]["started_as"]
                .as_str()
                .is_some_and(|a| a.starts_with("bootstrap"))
        })
        .collect();
    assert_eq!(bootstrapper.len(), 1, "exactly one node bootstraps: {s:#}");
    assert!(
        bootstrapper[0]["decision"]
            .as_str()
            .unwrap()
            .contains("most advanced"),
        "{s:#}"
    );
    let present: std::collections::HashSet<i64> = tier
        .sql(1, "SELECT id FROM seafile_db.acked")
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|id| !present.contains(&(**id as i64)))
        .collect();
    assert!(lost.is_empty(), "acknowledged commits lost: {lost:?}");
    assert!(secs < 60.0, "total outage took {secs:.1} s");
}

/// After a total outage with one node's data gone, keel refuses to guess and says why;
/// `keel db bootstrap --force` is the way out, and the empty node rejoins by SST.
#[test]
fn missing_data_after_outage_waits_then_force() {
    if skip() {
        return;
    }
    let _one = super::galera_lock();
    let tier = Tier::new("missing");
    tier.up_ok();
    tier.sql(
        0,
        "CREATE TABLE seafile_db.m (id INT PRIMARY KEY); INSERT INTO seafile_db.m VALUES (7)",
    )
    .unwrap();
    tier.kill_all();
    // The operator's disk is gone: move node3's datadir away (the test's own temp data).
    std::fs::rename(
        tier.dir.join("node3/data"),
        tier.dir.join("node3/data.lost"),
    )
    .unwrap();

    let o = tier.up(12);
    assert!(!o.status.success(), "keel up must not guess:\n{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("node3: its data is missing"),
        "the wait must name node3 and why:\n{}",
        show(&o)
    );
    let s = tier.status();
    for n in s["nodes"].as_array().unwrap() {
        assert!(
            n["db"]["pid"].is_null() || n["db"]["state"] != "Synced",
            "nobody may run as primary: {s:#}"
        );
    }

    let o = keel(&["db", "bootstrap", "node1", "--dir", tier.d()]);
    assert!(
        !o.status.success(),
        "without --force it must refuse: {}",
        show(&o)
    );
    let o = keel(&["db", "bootstrap", "--force", "node1", "--dir", tier.d()]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("WARNING"),
        "{}",
        show(&o)
    );
    tier.wait_for(
        "cluster forced from node1, node3 re-synced by SST",
        120,
        |s| Tier::all_synced(s, 3),
    );
    assert_eq!(tier.sql(2, "SELECT id FROM seafile_db.m").unwrap(), "7");
}

/// Two of three hosts crash (kill -9 of their agent and mariadbd): the survivor runs on
/// without quorum. When `keel up` brings the two agents back, every agent decides as after a
/// total outage, with the survivor's running position as its history: the survivor holds the
/// latest commits (a tie goes to the running member), so it is made primary in place
/// (`pc.bootstrap=YES`, same pid) and the others join it. Then node3 is cut off (gmcast.isolate),
/// a row is committed without it, and node1 and node2 crash: node1 is the most advanced, so
/// node3's agent stops its non-Primary mariadbd before node1 bootstraps (a running node would
/// merge with its older primary component and make the new cluster inconsistent), and node3
/// joins afterwards. Nothing committed is lost.
#[test]
fn survivor_without_quorum_is_made_primary_or_rejoins() {
    if skip() {
        return;
    }
    let _one = super::galera_lock();
    let tier = Tier::new("quorum");
    tier.up_ok();
    tier.sql(
        0,
        "CREATE TABLE seafile_db.q (id INT PRIMARY KEY); INSERT INTO seafile_db.q VALUES (1)",
    )
    .unwrap();
    let crash = |nodes: &[usize]| {
        let mut pids = Vec::new();
        for &i in nodes {
            let agent = std::fs::read_to_string(tier.dir.join(format!("node{}.agent.pid", i + 1)))
                .unwrap()
                .trim()
                .parse::<i32>()
                .unwrap();
            assert_eq!(comm(agent).as_deref(), Some("keel"));
            pids.push(agent);
            pids.push(tier.mariadbd_pid(i).unwrap());
        }
        for pid in &pids {
            sigkill(*pid);
        }
        while pids.iter().any(|p| comm(*p).is_some()) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // A state transfer's helpers (rsync) may hold the crashed node's ports a little longer;
        // a host that crashed frees them all, so wait for that before `keel up`.
        let t = Instant::now();
        let ports = |i: usize| tier.base + 10 * i as u16..tier.base + 10 * i as u16 + 4;
        while nodes.iter().any(|&i| ports(i).any(|p| !port_free(p))) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "ports of the crashed nodes still busy after 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let survivor_alone = |i: usize| {
        move |s: &Value| {
            let n = &s["nodes"][i];
            n["db"]["pid"].is_i64() && n["db"]["state"] == "Initialized"
        }
    };

    let survivor = tier.mariadbd_pid(0).expect("node1's mariadbd");
    crash(&[1, 2]);
    tier.wait_for("node1 without quorum", 60, survivor_alone(0));
    let secs = tier.up_ok();
    eprintln!("two of three hosts crashed, keel up to 3 x Synced: {secs:.1} s");
    assert_eq!(
        tier.mariadbd_pid(0),
        Some(survivor),
        "node1 was made primary in place, not restarted"
    );
    let log1 = std::fs::read_to_string(tier.dir.join("node1.agent.log")).unwrap();
    assert!(
        log1.contains("pc.bootstrap=YES"),
        "node1's agent made its component primary:\n{}",
        tier.logs()
    );
    let s = tier.status();
    for i in 1..3 {
        let started = s["nodes"][i]["db"]["started_as"].as_str().unwrap();
        assert!(
            started.starts_with("join from "),
            "node{}: {started}",
            i + 1
        );
    }
    tier.sql(1, "INSERT INTO seafile_db.q VALUES (2)").unwrap();

    tier.root_sql(2, "SET GLOBAL wsrep_provider_options='gmcast.isolate=1'");
    tier.wait_for("node3 cut off", 60, survivor_alone(2));
    tier.sql(0, "INSERT INTO seafile_db.q VALUES (3)").unwrap();
    crash(&[0, 1]);
    let secs = tier.up_ok();
    eprintln!("node3 cut off, node1 and node2 crashed, keel up to 3 x Synced: {secs:.1} s");
    let s = tier.status();
    let started = |i: usize| {
        s["nodes"][i]["db"]["started_as"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        started(0).starts_with("bootstrap from "),
        "node1: {}",
        started(0)
    );
    assert!(
        started(2).starts_with("join from "),
        "node3: {}",
        started(2)
    );
    let log3 = std::fs::read_to_string(tier.dir.join("node3.agent.log")).unwrap();
    assert!(
        log3.contains("node1 is to bootstrap: stopping this node's mariadbd first"),
        "node3's agent stopped its mariadbd before node1 bootstrapped:\n{}",
        tier.logs()
    );
    for i in 0..3 {
        let rows = tier
            .sql(
                i,
                "SET SESSION wsrep_sync_wait=1; SELECT COUNT(*) FROM seafile_db.q",
            )
            .unwrap();
        assert_eq!(rows, "3", "node{} has every row", i + 1);
    }
}

/// After a total outage with one member unreachable (its host down: here, its agent not
/// started), the others wait and say whom they wait for; `--force` lets one of them bootstrap,
/// and the missing member rejoins later from its own position.
#[test]
fn unreachable_member_after_outage_waits_then_force() {
    if skip() {
        return;
    }
    let _one = super::galera_lock();
    let tier = Tier::new("unreach");
    tier.up_ok();
    tier.sql(
        0,
        "CREATE TABLE seafile_db.u (id INT PRIMARY KEY); INSERT INTO seafile_db.u VALUES (1)",
    )
    .unwrap();
    // Galera applies asynchronously on the other nodes: make sure node2 (forced below) has the
    // row, or forcing it would lose it, as its warning says.
    let t = Instant::now();
    while tier.sql(1, "SELECT id FROM seafile_db.u").ok().as_deref() != Some("1") {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the row never reached node2"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    tier.kill_all();

    // Start the agents of node1 and node2 only, as `keel up` would (own process group, log file,
    // pid file), so keel status/down/up see them.
    let cfg = tier.dir.join("cluster.toml");
    let mut agents = Vec::new();
    for name in ["node1", "node2"] {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(tier.dir.join(format!("{name}.agent.log")))
            .unwrap();
        let mut c = Command::new(super::keel_bin());
        c.args([
            "node",
            "--no-cache",
            "--config",
            cfg.to_str().unwrap(),
            "--name",
            name,
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let child = c.spawn().unwrap();
        std::fs::write(
            tier.dir.join(format!("{name}.agent.pid")),
            child.id().to_string(),
        )
        .unwrap();
        agents.push(child);
    }
    tier.wait_for("node1 and node2 waiting for node3", 60, |s| {
        (0..2).all(|i| {
            s["nodes"][i]["decision"]
                .as_str()
                .is_some_and(|d| d.starts_with("waiting for node3: unreachable"))
        })
    });
    // Waiting, not guessing: some seconds later still nobody runs.
    std::thread::sleep(Duration::from_secs(3));
    let s = tier.status();
    assert!(
        (0..3).all(|i| s["nodes"][i]["db"]["pid"].is_null()),
        "nobody may start: {s:#}"
    );
    let o = keel(&["db", "decision", "--dir", tier.d()]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("waiting for node3"),
        "{}",
        show(&o)
    );

    let o = keel(&["db", "bootstrap", "--force", "node2", "--dir", tier.d()]);
    assert!(o.status.success(), "{}", show(&o));
    let warn = String::from_utf8_lossy(&o.stderr);
    assert!(
        warn.contains("node3") && warn.contains("lost"),
        "the warning must say what may be lost: {warn}"
    );
    tier.wait_for("node2 forced, node1 joined", 90, |s| {
        (0..2).all(|i| {
            s["nodes"][i]["db"]["state"] == "Synced" && s["nodes"][i]["db"]["cluster_size"] == 2
        })
    });
    let s = tier.status();
    assert!(
        s["nodes"][1]["decision"]
            .as_str()
            .unwrap()
            .contains("node2 bootstraps: forced"),
        "{s:#}"
    );

    // node3's host is back: `keel up` starts its agent, which joins from its recovered position.
    tier.up_ok();
    assert_eq!(tier.sql(2, "SELECT id FROM seafile_db.u").unwrap(), "1");
    let o = tier.down();
    assert!(o.status.success(), "{}", show(&o));
    for mut a in agents {
        let _ = a.wait();
    }
}

/// One memcached text command on `127.0.0.1:port`; reads until the reply's last line.
pub(crate) fn mc(port: u16, cmd: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(cmd.as_bytes())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let done = |o: &[u8]| {
        let t = String::from_utf8_lossy(o);
        t.ends_with("END\r\n")
            || t.ends_with("STORED\r\n")
            || t.ends_with("ERROR\r\n")
            || (t.starts_with("SERVER_ERROR") || t.starts_with("CLIENT_ERROR"))
                && t.ends_with("\r\n")
    };
    while !done(&out) {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn http_get(port: u16, path: &str) -> String {
    match node_agent_get(port, path) {
        Ok(b) => b,
        Err(e) => panic!("GET {path} on {port}: {e}"),
    }
}

fn node_agent_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The whole tier as one: `keel up` with proxies and clustered caches; one writer named by every
/// proxy; SQL through one proxy read through another, landing on the writer; a cache write on
/// node1 read on node3; a kill -9'd cache back on its port with the data; `keel db drain` of the
/// writer moves it (and `keel status` shows it); kill -9 of the writer's mariadbd: new
/// connections through the proxy commit again (the time is printed).
#[test]
fn proxies_and_clustered_caches_one_tier() {
    if skip() {
        return;
    }
    let _one = super::galera_lock();
    let tier = Tier::new("full");
    let t = Instant::now();
    let o = tier.up_with(120, true);
    assert!(
        o.status.success(),
        "keel up failed\n{}\n{}",
        show(&o),
        tier.logs()
    );
    eprintln!(
        "keel up (Galera + proxies + clustered caches) from nothing: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let out = String::from_utf8_lossy(&o.stdout);
    for i in 0..3 {
        assert!(
            out.contains(&format!("db-proxy 127.0.0.1:{}", tier.proxy_port(i))),
            "keel up must print every proxy address:\n{out}"
        );
        assert!(
            out.contains(&format!("127.0.0.1:{}", tier.cache_port(i))),
            "{out}"
        );
    }
    assert!(out.contains("keel down --dir"), "{out}");
    let cnf = std::fs::read_to_string(tier.dir.join("app.cnf")).unwrap();
    assert!(
        cnf.contains(&format!("port = {}", tier.proxy_port(0))),
        "app.cnf must point at node1's proxy:\n{cnf}"
    );

    // One writer, named alike by every proxy; the caches have one leader.
    let s = tier.status();
    let writer = s["writer"].as_str().expect("a writer").to_owned();
    assert_eq!(s["writers_agree"], true, "{s:#}");
    let mut leaders = 0;
    for (i, n) in s["nodes"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            n["proxy"]["addr"],
            format!("127.0.0.1:{}", tier.proxy_port(i))
        );
        assert_eq!(n["proxy"]["writer"], writer.as_str(), "{n:#}");
        assert_eq!(n["proxy"]["state"], "running", "{n:#}");
        assert_eq!(n["backend"]["health"], "up", "{n:#}");
        let role = n["cache"]["role"].as_str().unwrap_or_default();
        assert!(matches!(role, "leader" | "follower"), "{n:#}");
        leaders += usize::from(role == "leader");
        assert!(n["cache"]["applied"].as_u64().is_some(), "{n:#}");
        // The old fields are still there.
        for f in ["state", "cluster_size", "seqno", "pid", "addr"] {
            assert!(!n["db"][f].is_null(), "db.{f}: {n:#}");
        }
        assert!(
            n["cache"]["pid"].is_i64() && n["cache"]["addr"].is_string(),
            "{n:#}"
        );
    }
    assert_eq!(leaders, 1, "{s:#}");
    let table = keel(&["status", "--dir", tier.d()]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains(&format!("writer {writer}")),
        "{}",
        show(&table)
    );

    // SQL through node1's proxy (app.cnf's default), read back through node3's, on the writer.
    tier.sql_at(
        tier.proxy_port(0),
        5,
        "CREATE TABLE seafile_db.p (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO seafile_db.p VALUES (1, 'via proxy')",
    )
    .unwrap();
    assert_eq!(
        tier.sql_at(
            tier.proxy_port(2),
            5,
            "SELECT v FROM seafile_db.p WHERE id = 1"
        )
        .unwrap(),
        "via proxy"
    );
    for i in 0..3 {
        assert_eq!(
            tier.sql_at(tier.proxy_port(i), 5, "SELECT @@wsrep_node_name")
                .unwrap(),
            writer,
            "proxy of node{} must send to the writer",
            i + 1
        );
    }
    let metrics = http_get(tier.control_port(1), "/metrics");
    assert!(
        metrics.contains(&format!(
            "keel_proxy_backend_writer{{backend=\"{writer}\"}} 1"
        )),
        "{metrics}"
    );
    let status = http_get(tier.control_port(2), "/status");
    assert!(
        status.contains(&format!("\"writer\": \"{writer}\"")),
        "{status}"
    );

    // The caches are one: written on node1, read on node3 (and node2).
    assert_eq!(
        mc(tier.cache_port(0), "set tier:k 0 0 5\r\nhello\r\n").unwrap(),
        "STORED\r\n"
    );
    for i in [2, 1] {
        assert_eq!(
            mc(tier.cache_port(i), "get tier:k\r\n").unwrap(),
            "VALUE tier:k 0 5\r\nhello\r\nEND\r\n",
            "cache of node{}",
            i + 1
        );
    }
    // kill -9 node2's cache: the agent restarts it on the same port, it catches up and serves.
    let old = tier.node(1)["cache"]["pid"].as_i64().unwrap() as i32;
    sigkill(old);
    let killed = Instant::now();
    loop {
        let got = mc(tier.cache_port(1), "get tier:k\r\n").unwrap_or_default();
        if got == "VALUE tier:k 0 5\r\nhello\r\nEND\r\n" {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "node2's cache not back with the data: {got:?}\n{}",
            tier.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "kill -9 of a cache to serving the replicated key again on its port: {:.2} s",
        killed.elapsed().as_secs_f64()
    );
    let n2 = tier.node(1);
    assert!(
        n2["cache"]["pid"].as_i64() != Some(old as i64) && n2["cache"]["restarts"] == 1,
        "{n2:#}"
    );

    // Drain the writer: the role moves, every proxy follows, it is safe to stop.
    let t = Instant::now();
    let o = keel(&["db", "drain", &writer, "--dir", tier.d()]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("safe to stop"),
        "{}",
        show(&o)
    );
    eprintln!(
        "keel db drain of the writer: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let s = tier.status();
    let moved = s["writer"]
        .as_str()
        .expect("a writer after the drain")
        .to_owned();
    assert_ne!(moved, writer, "{s:#}");
    assert_eq!(s["writers_agree"], true, "{s:#}");
    let drained = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == writer.as_str())
        .unwrap();
    assert_eq!(drained["backend"]["drained"], true, "{drained:#}");
    assert_eq!(drained["backend"]["connections_active"], 0, "{drained:#}");
    assert_eq!(
        tier.sql_at(tier.proxy_port(0), 5, "SELECT @@wsrep_node_name")
            .unwrap(),
        moved
    );
    let o = keel(&["db", "undrain", &writer, "--dir", tier.d()]);
    assert!(o.status.success(), "{}", show(&o));
    let s = tier.status();
    assert_ne!(
        s["writer"],
        writer.as_str(),
        "undrain must not move the writer back: {s:#}"
    );

    // kill -9 the writer's mariadbd: new connections through a proxy commit again.
    tier.wait_for("every proxy names the same writer", 30, |s| {
        s["writers_agree"] == true
    });
    let s = tier.status();
    let moved = s["writer"].as_str().unwrap().to_owned();
    let wi = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n["name"] == moved.as_str())
        .unwrap();
    let via = (wi + 1) % 3; // a proxy on another node
    let pid = tier.node(wi)["db"]["pid"].as_i64().unwrap() as i32;
    sigkill(pid);
    let killed = Instant::now();
    let mut id = 100;
    loop {
        id += 1;
        // A long connect timeout: the proxy holds a new connection until it has a writer.
        let r = tier.sql_at(
            tier.proxy_port(via),
            20,
            &format!("INSERT INTO seafile_db.p VALUES ({id}, 'after kill')"),
        );
        if r.is_ok() {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(40),
            "no commit through the proxy 40 s after the writer's kill: {r:?}\n{}",
            tier.logs()
        );
    }
    eprintln!(
        "kill -9 of the writer's mariadbd to the first commit through the proxy of node{}: {:.2} s",
        via + 1,
        killed.elapsed().as_secs_f64()
    );
    let s = tier.status();
    let now = s["writer"].as_str().unwrap_or_default().to_owned();
    assert!(!now.is_empty() && now != moved, "{s:#}");
    assert_eq!(
        tier.sql_at(
            tier.proxy_port(2),
            5,
            &format!("SELECT v FROM seafile_db.p WHERE id = {id}")
        )
        .unwrap(),
        "after kill"
    );
    // The agent brings the killed node back (and keel down is then quick and clean).
    let secs = tier.wait_for("the killed writer's node Synced again", 90, |s| {
        Tier::all_synced(s, 3)
    });
    eprintln!("the killed writer's node back to Synced after another {secs:.1} s");
}
