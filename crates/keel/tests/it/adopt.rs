//! Adopting a Galera cluster built by hand from Debian's packages (`keel node --adopt`).
//!
//! The test builds the cluster the way Seafile's manual (and MariaDB's) has an admin do it: one
//! option file per host with a `[mysqld]` and a `[galera]` group, `mariadb-install-db` on every
//! host (Debian's package does that on install), `galera_new_cluster`'s equivalent
//! (`mariadbd --wsrep-new-cluster`) on the first, the others joining by SST. Three "hosts" are
//! three loopback addresses (127.0.0.21-23) with the same ports. It writes rows on two nodes,
//! checks that a running node and a wrong `--name` are refused without touching the data, and
//! adopts the three with `keel node --adopt`: after a clean stop (node1 last), after kill -9 of
//! all three, or one node at a time while the others run by hand (with writes in between).
//! Then: every row on every node, the same cluster state UUID and a seqno that continues the
//! old one, no SST in any adopted node's log (the same check finds the SSTs of the hand-built
//! joins), the carried-over option in effect, keel's `innodb_flush_log_at_trx_commit = 1`, the
//! proxy serving the app user, `keel status` healthy.
//!
//! Helpers shared with [`super::deploy`]: [`Agent`] (a `keel node` process), [`keel`], [`sql`].

use serde_json::Value;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) use super::tier::{comm, keel, show, skip};

/// Runs SQL with the `mariadb` client and option file `cnf` (`-N -B`), plus `extra` arguments.
pub(crate) fn sql(cnf: &Path, extra: &[&str], q: &str) -> Result<String, String> {
    let o = Command::new("mariadb")
        .arg(format!("--defaults-file={}", cnf.display()))
        .arg("--connect-timeout=3") // before `extra`, which may override it (the last one wins)
        .args(extra)
        .args(["-N", "-B", "-e", q])
        .output()
        .map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_owned())
    }
}

/// Polls `f` every 200 ms until it gives `Some`, or panics after `secs` with `what` and `ctx()`.
pub(crate) fn wait_until<T>(
    what: &str,
    secs: u64,
    ctx: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s\n{}",
            ctx()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pid this test started (or read from its own pid file and verified).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The tail of a text file, for failure messages.
pub(crate) fn tail(p: &Path, lines: usize) -> String {
    let t = fs::read_to_string(p).unwrap_or_default();
    let v: Vec<&str> = t.lines().collect();
    format!(
        "--- {} (tail)\n{}\n",
        p.display(),
        v[v.len().saturating_sub(lines)..].join("\n")
    )
}

/// A `keel node` process (its own process group, output in `log`). Dropping it stops it:
/// SIGTERM (the agent stops its mariadbd cleanly), then SIGKILL of the agent and of the
/// mariadbd named in `pid_file` (verified by name).
pub(crate) struct Agent {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub pid_file: PathBuf,
}

impl Agent {
    pub fn start(args: &[&str], log: &Path, mariadbd_pid_file: &Path) -> Agent {
        let out = fs::File::create(log).expect("agent log");
        let mut c = Command::new(super::keel_bin());
        c.arg("node")
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let child = c.spawn().expect("starting keel node");
        Agent {
            child: Some(child),
            log: log.to_owned(),
            pid_file: mariadbd_pid_file.to_owned(),
        }
    }
    /// Clean stop: SIGTERM, wait up to `secs` for the agent to exit.
    pub fn stop(&mut self, secs: u64) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        signal(c.id() as i32, libc::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal(-(c.id() as i32), libc::SIGKILL);
        let _ = c.wait();
        false
    }
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop(60);
        if let Some(pid) = fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            if comm(pid).as_deref() == Some("mariadbd") {
                signal(-pid, libc::SIGKILL);
            }
        }
    }
}

/// A mariadbd started by hand (own process group); killed on drop if still running.
struct HandNode {
    name: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl HandNode {
    fn cnf(&self) -> PathBuf {
        self.dir.join("my.cnf")
    }
    fn start(&mut self, new_cluster: bool) {
        let out = fs::File::create(self.dir.join("mariadbd.out")).unwrap();
        let mut c = Command::new("/usr/sbin/mariadbd");
        c.arg(format!("--defaults-file={}", self.cnf().display()));
        if new_cluster {
            c.arg("--wsrep-new-cluster"); // what galera_new_cluster does
        }
        c.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        self.child = Some(c.spawn().expect("starting mariadbd"));
    }
    fn q(&self, q: &str) -> Result<String, String> {
        sql(&self.cnf(), &[], q)
    }
    fn status(&self, var: &str) -> Option<String> {
        let out = self.q(&format!("SHOW STATUS LIKE '{var}'")).ok()?;
        out.split_once('\t').map(|(_, v)| v.trim().to_owned())
    }
    /// Starts it and waits until it is Synced in a cluster of `size`. A start that dies (seen:
    /// Galera's "Failed to set thread schedparams" on a loaded machine) is retried, as an admin
    /// would run the command again.
    fn start_synced(&mut self, new_cluster: bool, size: usize) {
        for attempt in 1..=3 {
            self.start(new_cluster);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(90) {
                if self
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
                {
                    eprintln!(
                        "hand-built {} exited while starting (attempt {attempt}):\n{}",
                        self.name,
                        tail(&self.dir.join("error.log"), 8)
                    );
                    self.child = None;
                    break;
                }
                if self.status("wsrep_local_state").as_deref() == Some("4")
                    && self.status("wsrep_cluster_size") == Some(size.to_string())
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            if self.child.is_some() {
                break;
            }
        }
        panic!(
            "hand-built {} not Synced in a cluster of {size}\n{}",
            self.name,
            tail(&self.dir.join("error.log"), 30)
        );
    }
    fn wait_synced(&self, size: usize) {
        wait_until(
            &format!("hand-built {} Synced in a cluster of {size}", self.name),
            90,
            || tail(&self.dir.join("error.log"), 30),
            || {
                (self.status("wsrep_local_state").as_deref() == Some("4")
                    && self.status("wsrep_cluster_size") == Some(size.to_string()))
                .then_some(())
            },
        );
    }
    /// SIGTERM (a clean shutdown) or SIGKILL, and wait until it is gone.
    fn stop(&mut self, sig: i32) {
        if let Some(mut c) = self.child.take() {
            signal(c.id() as i32, sig);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(90) {
                if let Ok(Some(_)) = c.try_wait() {
                    // SST helpers left in the group.
                    signal(-(c.id() as i32), libc::SIGKILL);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            signal(-(c.id() as i32), libc::SIGKILL);
            let _ = c.wait();
            panic!("hand-built {} did not stop within 90 s", self.name);
        }
    }
}

impl Drop for HandNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(-(c.id() as i32), libc::SIGKILL);
            let _ = c.wait();
        }
    }
}

/// Ports of every "host" (the same on each address).
struct Ports {
    sql: u16,
    galera: u16,
    ist: u16,
    sst: u16,
    cache: u16,
    proxy: u16,
    control: u16,
    hand_sql: u16,
}

fn free_ports(addrs: &[&str]) -> Ports {
    for base in (23300..24300).step_by(20) {
        let ports: Vec<u16> = (base..base + 10).collect();
        if ports.iter().all(|p| {
            addrs
                .iter()
                .all(|a| std::net::TcpListener::bind((*a, *p)).is_ok())
        }) {
            return Ports {
                sql: base,
                galera: base + 1,
                ist: base + 2,
                sst: base + 3,
                cache: base + 4,
                proxy: base + 5,
                control: base + 6,
                hand_sql: base + 9,
            };
        }
    }
    panic!("no free ports on {addrs:?}");
}

/// The option file of one hand-built node: Debian's 50-server.cnf and a 60-galera.cnf as
/// Seafile's manual has them, in one file.
fn hand_cnf(dir: &Path, name: &str, addr: &str, addrs: &[&str], p: &Ports) -> String {
    let gcomm: Vec<String> = addrs.iter().map(|a| format!("{a}:{}", p.galera)).collect();
    format!(
        "[client-server]\nsocket = {d}/run/mysqld.sock\n\n\
         [mysqld]\nuser = mysql\npid-file = {d}/run/mysqld.pid\nbasedir = /usr\ndatadir = {d}/data\n\
         tmpdir = /tmp\nbind-address = {addr}\nport = {hs}\nlog-error = {d}/error.log\n\
         expire_logs_days = 10\ncharacter-set-server = utf8mb4\ncollation-server = utf8mb4_general_ci\n\
         innodb_buffer_pool_size = 64M\nperformance_schema = OFF\n\n\
         [galera]\nwsrep_on = ON\nwsrep_provider = /usr/lib/galera/libgalera_smm.so\n\
         wsrep_cluster_name = \"seafile_galera\"\nwsrep_cluster_address = gcomm://{gcomm}\n\
         binlog_format = row\ndefault_storage_engine = InnoDB\ninnodb_autoinc_lock_mode = 2\n\
         wsrep_node_name = {name}\nwsrep_node_address = {addr}\n\
         wsrep_provider_options = \"gmcast.listen_addr=tcp://{addr}:{g};ist.recv_addr={addr}:{i};gcache.size=32M\"\n\
         wsrep_sst_receive_address = {addr}:{s}\nwsrep_sst_method = rsync\nwsrep_slave_threads = 1\n\
         innodb_flush_log_at_trx_commit = 0\n",
        d = dir.display(),
        hs = p.hand_sql,
        g = p.galera,
        i = p.ist,
        s = p.sst,
        gcomm = gcomm.join(","),
    )
}

/// The cluster description an admin writes for the adopted cluster.
fn cluster_toml(addrs: &[&str], p: &Ports) -> String {
    let mut t = String::from(
        "[cluster]\nname = \"seafile_galera\"\ndata_dir = \"keel\"\n\n\
         [database]\ninnodb_buffer_pool_size = \"64M\"\ngcache_size = \"32M\"\n\n\
         [users.app]\nname = \"seafile\"\npassword_file = \"secrets/seafile.password\"\nhost = \"127.0.0.%\"\n\n\
         [users.monitor]\nname = \"keel_monitor\"\npassword_file = \"secrets/monitor.password\"\nhost = \"127.0.0.%\"\n\n\
         [cache]\nenabled = false\n",
    );
    for (i, a) in addrs.iter().enumerate() {
        t += &format!(
            "\n[[node]]\nname = \"db{}\"\naddress = \"{a}\"\nsql_port = {}\ngalera_port = {}\nist_port = {}\n\
             sst_port = {}\ncache_port = {}\nproxy_port = {}\ncontrol_port = {}\n",
            i + 1,
            p.sql,
            p.galera,
            p.ist,
            p.sst,
            p.cache,
            p.proxy,
            p.control
        );
    }
    t
}

/// What a full state transfer writes to the joiner's log. (The rsync script runs for an IST
/// too, but then ends with "rsync IST completed on joiner".)
const SST_MARKERS: [&str; 1] = ["rsync SST completed on joiner"];

/// How the hand-built cluster is left before keel takes it over.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Clean stop of all three, db1 last out.
    Clean,
    /// kill -9 of all three.
    Crash,
    /// One node at a time (db3, db2, db1), the others still running by hand.
    Rolling,
}

fn adopt_case(mode: Mode) {
    let clean = mode == Mode::Clean;
    if skip() {
        return;
    }
    let _g = super::galera_lock();
    let t0 = Instant::now();
    let root = std::env::temp_dir().join(format!(
        "keel-adopt-{}-{}",
        format!("{mode:?}").to_lowercase(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&root);
    let addrs = ["127.0.0.21", "127.0.0.22", "127.0.0.23"];
    let p = free_ports(&addrs);

    // 1. The hand-built cluster.
    let mut hand: Vec<HandNode> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let name = format!("db{}", i + 1);
            let dir = root.join("hand").join(&name);
            fs::create_dir_all(dir.join("data")).unwrap();
            fs::create_dir_all(dir.join("run")).unwrap();
            fs::write(dir.join("my.cnf"), hand_cnf(&dir, &name, a, &addrs, &p)).unwrap();
            HandNode {
                name,
                dir,
                child: None,
            }
        })
        .collect();
    let st = Command::new("chown")
        .args(["-R", "mysql:mysql"])
        .arg(root.join("hand"))
        .status()
        .unwrap();
    assert!(st.success());
    for h in &hand {
        let o = Command::new("mariadb-install-db")
            .arg(format!("--defaults-file={}", h.cnf().display()))
            .args(["--user=mysql", "--skip-test-db"])
            .output()
            .unwrap();
        assert!(o.status.success(), "mariadb-install-db\n{}", show(&o));
    }
    hand[0].start_synced(true, 1);
    for (i, h) in hand.iter_mut().enumerate().skip(1) {
        h.start_synced(false, i + 1);
    }
    for h in &hand {
        h.wait_synced(3);
    }
    let hand_built = t0.elapsed().as_secs_f64();
    // The detector of SSTs finds the hand-built joins' SSTs.
    for h in &hand[1..] {
        let log = fs::read_to_string(h.dir.join("error.log")).unwrap();
        assert!(
            SST_MARKERS.iter().all(|m| log.contains(m)),
            "the SST markers are not in a hand-built joiner's log: {}",
            tail(&h.dir.join("error.log"), 40)
        );
    }
    hand[0]
        .q("CREATE DATABASE seafile_db; CREATE TABLE seafile_db.t (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB")
        .unwrap();
    let mut values = Vec::new();
    for i in 0..200 {
        values.push(format!("({i}, 'row {i} ü')"));
    }
    hand[0]
        .q(&format!(
            "INSERT INTO seafile_db.t VALUES {}",
            values[..100].join(",")
        ))
        .unwrap();
    hand[1]
        .q(&format!(
            "INSERT INTO seafile_db.t VALUES {}",
            values[100..].join(",")
        ))
        .unwrap();
    // The hand-built nodes run with innodb_flush_log_at_trx_commit = 0 (Debian's example), so a
    // kill -9 loses the last second of commits on every node at once. Make what was written so far
    // durable: one commit with flush = 1 writes the whole log up to it, on every node.
    for h in &hand {
        h.q("SET GLOBAL innodb_flush_log_at_trx_commit = 1")
            .unwrap();
    }
    hand[2]
        .q("INSERT INTO seafile_db.t VALUES (200, 'durable')")
        .unwrap();
    let want = "201\t20100";
    let count = "SELECT COUNT(*), SUM(id) FROM seafile_db.t";
    for h in &hand {
        wait_until("rows replicated by hand", 20, String::new, || {
            (h.q(count).ok().as_deref() == Some(want)).then_some(())
        });
    }
    let uuid = hand[0].status("wsrep_cluster_state_uuid").unwrap();
    let seqno: i64 = hand[0]
        .status("wsrep_last_committed")
        .unwrap()
        .parse()
        .unwrap();

    // 2. Adopting a running node is refused, and nothing moves.
    let cfg_path = root.join("cluster.toml");
    fs::create_dir_all(root.join("secrets")).unwrap();
    fs::write(root.join("secrets/seafile.password"), "seafilepw1\n").unwrap();
    fs::write(root.join("secrets/monitor.password"), "monitorpw1\n").unwrap();
    fs::write(&cfg_path, cluster_toml(&addrs, &p)).unwrap();
    let cfg = cfg_path.to_str().unwrap();
    let cnfs: Vec<String> = hand.iter().map(|h| h.cnf().display().to_string()).collect();
    let cnf = |i: usize| cnfs[i].clone();
    let o = keel(&["node", "--config", cfg, "--name", "db1", "--adopt", &cnf(0)]);
    assert!(
        !o.status.success() && show(&o).contains("still runs on"),
        "adopting a running node must be refused\n{}",
        show(&o)
    );

    // 3. Stop the hand-built cluster: cleanly (db1 last out) or all at once with kill -9; or,
    // one at a time, only db3 for now.
    let sig = if mode == Mode::Crash {
        libc::SIGKILL
    } else {
        libc::SIGTERM
    };
    let stop_now: &[usize] = if mode == Mode::Rolling {
        &[2]
    } else {
        &[2, 1, 0]
    };
    for i in stop_now {
        hand[*i].stop(sig);
    }
    let gs = fs::read_to_string(hand[0].dir.join("data/grastate.dat")).unwrap();
    if clean {
        let saved: i64 = gs
            .lines()
            .find_map(|l| l.strip_prefix("seqno:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        assert!(
            saved >= seqno && gs.contains("safe_to_bootstrap: 1"),
            "{gs}"
        );
    }

    // 4. A wrong --name is refused before anything moves (a stopped node's files).
    let (stopped, wrong) = if mode == Mode::Rolling {
        (2, "db1")
    } else {
        (0, "db2")
    };
    let o = keel(&[
        "node",
        "--config",
        cfg,
        "--name",
        wrong,
        "--adopt",
        &cnf(stopped),
    ]);
    let said = show(&o);
    assert!(
        !o.status.success()
            && said.contains("wsrep_node_name")
            && said.contains(&format!("--name db{}", stopped + 1))
            && said.contains("wsrep_node_address"),
        "adopting db{}'s files as {wrong} must be refused naming the settings\n{said}",
        stopped + 1
    );
    assert!(
        hand[stopped].dir.join("data/grastate.dat").exists(),
        "the refused adoption moved data"
    );

    // 5. Adopt every node. After a stop of all: db2, db3, then db1 (the agents wait for each
    // other and decide). One at a time: stop db3 by hand, adopt it, wait until it is Synced in
    // the running cluster, then db2, then db1.
    let keel_dir = root.join("keel");
    let t_adopt = Instant::now();
    let mut agents = Vec::new();
    let order = if mode == Mode::Rolling {
        [2, 1, 0]
    } else {
        [1, 2, 0]
    };
    for i in order {
        let name = format!("db{}", i + 1);
        if mode == Mode::Rolling {
            hand[i].stop(libc::SIGTERM);
        }
        agents.push(Agent::start(
            &["--config", cfg, "--name", &name, "--adopt", &cnf(i)],
            &root.join(format!("{name}.agent.log")),
            &keel_dir.join(&name).join("mysqld.pid"),
        ));
        if mode == Mode::Rolling {
            let kcnf = keel_dir.join(&name).join("my.cnf");
            wait_until(
                &format!("adopted {name} Synced among the hand-built nodes"),
                90,
                || tail(&root.join(format!("{name}.agent.log")), 40),
                || {
                    let st = sql(&kcnf, &[], "SHOW STATUS WHERE Variable_name IN ('wsrep_local_state','wsrep_cluster_size')").ok()?;
                    (st.contains("wsrep_local_state\t4") && st.contains("wsrep_cluster_size\t3"))
                        .then_some(())
                },
            );
            // Writes go on on the hand-built side while the cluster is half adopted.
            if i > 0 {
                hand[0]
                    .q(&format!(
                        "CREATE TABLE IF NOT EXISTS seafile_db.during (id INT PRIMARY KEY) ENGINE=InnoDB; \
                         INSERT INTO seafile_db.during VALUES ({i})"
                    ))
                    .unwrap();
            }
        }
    }
    let logs = || {
        let mut s = String::new();
        for n in 1..=3 {
            s += &tail(&root.join(format!("db{n}.agent.log")), 25);
            s += &tail(&keel_dir.join(format!("db{n}/error.log")), 15);
        }
        s
    };
    let status = || -> Value {
        let o = keel(&["status", "--config", cfg, "--json"]);
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    };
    let healthy = |s: &Value| {
        s["nodes"].as_array().is_some_and(|n| {
            n.len() == 3
                && n.iter().all(|n| {
                    n["db"]["state"] == "Synced"
                        && n["db"]["cluster_size"] == 3
                        && n["backend"]["health"] == "up"
                })
        }) && s["writer"].is_string()
            && s["writers_agree"] == true
    };
    let s = wait_until(
        "the adopted cluster healthy in keel status",
        120,
        logs,
        || {
            let s = status();
            healthy(&s).then_some(s)
        },
    );
    let adopted_in = t_adopt.elapsed().as_secs_f64();

    // 6. What it said it kept and changed.
    for a in &agents {
        let text = a.log_text();
        for want in [
            "adopting the Galera node configured by",
            "kept:",
            "= character_set_server = utf8mb4  (carried over to adopted.cnf)",
            "= wsrep_cluster_name = seafile_galera",
            "changed:",
            "~ innodb_flush_log_at_trx_commit: 0 -> 1",
            &format!("~ port: {} -> {}", p.hand_sql, p.sql),
            "(same filesystem: nothing copied)",
        ] {
            assert!(
                text.contains(want),
                "{want:?} missing from {}:\n{text}",
                a.log.display()
            );
        }
    }

    // 7. The data: every row on every node, same cluster state, seqno continued, no SST.
    let mut ists = 0;
    for (i, h) in hand.iter().enumerate() {
        assert!(
            !h.dir.join("data").exists(),
            "{}'s datadir was not moved",
            h.name
        );
        let kcnf = keel_dir.join(format!("db{}/my.cnf", i + 1));
        assert_eq!(sql(&kcnf, &[], count).unwrap(), want, "rows on db{}", i + 1);
        if mode == Mode::Rolling {
            let during = sql(
                &kcnf,
                &[],
                "SELECT GROUP_CONCAT(id ORDER BY id) FROM seafile_db.during",
            );
            assert_eq!(
                during.unwrap(),
                "1,2",
                "rows written during the adoption, on db{}",
                i + 1
            );
        }
        let vars = sql(
            &kcnf,
            &[],
            "SELECT @@character_set_server, @@innodb_flush_log_at_trx_commit, @@wsrep_cluster_name",
        )
        .unwrap();
        assert_eq!(vars, "utf8mb4\t1\tseafile_galera");
        let st = sql(
            &kcnf,
            &[],
            "SHOW STATUS WHERE Variable_name IN ('wsrep_cluster_state_uuid','wsrep_last_committed')",
        )
        .unwrap();
        assert!(
            st.contains(&uuid),
            "db{} is in another cluster state: {st}",
            i + 1
        );
        let last: i64 = st
            .lines()
            .find(|l| l.starts_with("wsrep_last_committed"))
            .and_then(|l| l.split('\t').nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(
            last >= seqno,
            "db{}: seqno {last} < {seqno} before adoption",
            i + 1
        );
        let log = fs::read_to_string(keel_dir.join(format!("db{}/error.log", i + 1))).unwrap();
        for m in SST_MARKERS {
            assert!(
                !log.contains(m),
                "db{} received an SST ({m:?}):\n{}",
                i + 1,
                logs()
            );
        }
        ists += usize::from(log.contains("IST received"));
    }
    assert!(ists >= 1, "no adopted node caught up by IST:\n{}", logs());
    let writer = s["writer"].as_str().unwrap().to_owned();

    // 8. The proxy serves the app user (created by the bootstrapping agent), writes replicate.
    let app = root.join("app.cnf");
    fs::write(
        &app,
        format!(
            "[client]\nuser = seafile\npassword = seafilepw1\nhost = {}\nport = {}\n",
            addrs[1], p.proxy
        ),
    )
    .unwrap();
    assert_eq!(sql(&app, &[], count).unwrap(), want);
    sql(
        &app,
        &[],
        "INSERT INTO seafile_db.t VALUES (1000, 'through the proxy')",
    )
    .unwrap();
    let k3 = keel_dir.join("db3/my.cnf");
    wait_until("the proxy's write on db3", 10, String::new, || {
        (sql(&k3, &[], "SELECT v FROM seafile_db.t WHERE id = 1000")
            .ok()
            .as_deref()
            == Some("through the proxy"))
        .then_some(())
    });
    eprintln!(
        "adopt ({mode:?}): hand-built cluster in {hand_built:.1} s; adopted, 3 x Synced and proxies agreeing on {writer} in {adopted_in:.1} s; total {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    drop(agents);
    if !std::thread::panicking() {
        let _ = fs::remove_dir_all(&root);
    }
}

/// Clean stop of the hand-built cluster (db1 last out, `safe_to_bootstrap: 1`), then adoption.
#[test]
fn adopt_hand_built_cluster_after_clean_stop() {
    adopt_case(Mode::Clean);
}

/// kill -9 of the whole hand-built cluster (every `grastate.dat` at seqno -1), then adoption:
/// keel recovers each position and bootstraps from the most advanced.
#[test]
fn adopt_hand_built_cluster_after_crash() {
    adopt_case(Mode::Crash);
}

/// One node at a time while the others still run by hand: each adopted node joins the running
/// hand-built nodes by IST and creates keel's users itself.
#[test]
fn adopt_hand_built_cluster_one_node_at_a_time() {
    adopt_case(Mode::Rolling);
}
