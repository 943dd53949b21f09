//! Issue 6's end-to-end test: a real application stack shaped like Seafile's on a three-node
//! `keel up` tier (each node: a MariaDB Galera node, its db-proxy, its clustered keel cache, all on
//! this machine), through a sequence of faults, with every acknowledged write checked afterwards.
//!
//! The application (tests/seafile-app, Debian's python3-django, python3-mysqldb, python3-pylibmc
//! and python3-memcache) is configured only from what `keel seafile-config --node NODE` printed for
//! its node (`seafile.conf` and `seahub_settings.py`, after `keel db init-seafile`), so the test
//! proves those strings work. One worker per node loops: (a) a library head update the way
//! seaf-server does it (`BEGIN; SELECT … FROM Branch … FOR UPDATE; UPDATE Branch …; COMMIT`, plus a
//! commit-log row in the same transaction), retried on deadlocks and lost connections; (b)
//! login-failure counters incremented through four client kinds (Django's PyLibMCCache over all
//! three caches with ketama, the printed single-node seahub cache, python-memcached over all
//! three, pylibmc on seafile.conf's first `--SERVER=`); (c) decrypt-key-like entries set through
//! one kind and read back through every kind. Workers never exit on errors.
//!
//! Faults, one after another with recovery in between: kill -9 of the writer's mariadbd; kill -9
//! of the cache leader (its agent restarts it); for each node in turn `keel db drain`, a clean stop
//! of its agent, `keel up` (starts it again), `keel db undrain`; finally a power loss (kill -9 of
//! every agent, mariadbd and cache at once) and `keel up`.
//!
//! Asserted: every acknowledged head update is in the database, and each library's commit log is
//! one chain ending at its Branch head (no two updates read the same head: the `FOR UPDATE`
//! compare-and-swap held through every failover); the counters equal the acknowledged increments
//! (acknowledged ≤ value ≤ acknowledged + ambiguous, the ambiguous ones reported), and every
//! client kind of every worker plus a raw `get` on each node reads the same value; no successful
//! read of a decrypt key returned anything but the value just acknowledged; acknowledged `incr`
//! results are never repeated; the three workers are the processes started at the beginning.
//!
//! keel's cache keeps its data in memory only, like memcached: a power loss of all three nodes
//! empties it. So the counters are checked exactly just before the power loss; afterwards the
//! test asserts that every client on every node reads the old counters as absent (no node came
//! back with stale data), starts new counters, and checks those exactly at the end. A read of a
//! decrypt key that finds it missing is accepted only in the power-loss window.
//!
//! Alongside runs a Seafile-13-shaped app on the tier's replicated Redis, configured only from
//! `keel seafile-config` with Redis as the provider (`--format env` for the C worker,
//! `seahub_settings.py` and `seafevents.conf` for the Python side; tests/seafile-app/redis_app.py
//! and seaf_redis_worker.c). Per node: a libhiredis worker doing seaf-server's `LPUSH
//! repo_size_task <id>` and `PUBLISH metric_channel <node>:<seq>`; a seahub process (Django 5's
//! `RedisCache`: incr, set, get, add); a seafevents process (redis-py 6.2) with a `BRPOP
//! repo_size_task 1` consumer and a `metric_channel` subscriber. Through the same faults:
//! every acknowledged LPUSH is delivered to exactly one consumer or, at most, lost together with
//! a consumer's BRPOP whose connection broke near its push (the pop may have taken the item and
//! died before answering, as with any Redis; an error reply does not explain a loss: keel sends
//! a pop whose outcome is unknown again until it knows), never delivered twice; an ambiguous LPUSH (error reply or none) at most once; the shared counter equals the acknowledged increments (within the
//! ambiguous ones) and all three seahubs read the same value; each subscriber connection got
//! every publisher's messages in order, without duplicates, and none of those acknowledged after
//! its SUBSCRIBE up to the last one it got from that publisher (all of them for a connection
//! open at the end); the nine processes are the ones started. The Redis keyspace is memory-only:
//! after the power loss every node answers `DBSIZE` 0, the old counters are gone, and the app
//! recovers by itself (consumers and subscribers reconnect, new items flow).
//!
//! Printed: per fault, the longest time each worker could not commit a head update (db), could
//! not get a memcached increment acknowledged (cache), and a Redis write (LPUSH or incr) was
//! not acknowledged on its node (redis). 1.5-2 minutes on a 2-core machine (more when loaded);
//! skipped with the tier tests when `KEEL_SKIP_TIER_TESTS` is set.

use super::tier::{keel, mc, show, sigkill, skip, Tier};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NODES: [&str; 3] = ["node1", "node2", "node3"];
const KINDS: [&str; 4] = [
    "django-ketama",
    "django-local",
    "python-memcached",
    "pylibmc-conf",
];
const ROOT_COMMIT: &str = "0000000000000000000000000000000000000000";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn counter_keys(epoch: u32) -> Vec<String> {
    std::iter::once(format!("lf:{epoch}:shared"))
        .chain(NODES.iter().map(|n| format!("lf:{epoch}:{n}")))
        .collect()
}

/// One line of a worker's commits.log.
struct CommitLine {
    acked: bool,
    ts: f64,
    commit: String,
}

/// One line of a worker's incr.log.
struct IncrLine {
    status: String,
    ts: f64,
    key: String,
    value: Option<i64>,
}

/// A fault window: when it started, when the application was back to normal.
struct Window {
    name: String,
    start: f64,
    end: f64,
    /// The node whose agent was stopped on purpose (its worker loses its local proxy and cache).
    own_node: Option<usize>,
}

/// The application side: one worker process per node, the control file, their logs.
struct App {
    dir: PathBuf,
    seq: u64,
    epoch: u32,
    phase: String,
    workers: Vec<Child>,
    pids: Vec<u32>,
}

impl App {
    fn python(&self, node: &str) -> Command {
        let mut c = Command::new("/usr/bin/python3");
        c.arg(super::repo_root().join("tests/seafile-app/worker.py"))
            .env("SEAFILE_APP_DIR", &self.dir)
            .env("SEAFILE_APP_NODE", node)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        c
    }

    fn run_once(&self, node: &str, args: &[&str]) -> String {
        let o: Output = self.python(node).args(args).output().expect("python3");
        assert!(
            o.status.success(),
            "worker.py {args:?} on {node}:\n{}",
            show(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn out(&self, node: &str) -> PathBuf {
        self.dir.join("out").join(node)
    }

    fn control(&mut self, cmd: &str, read_keys: &[String]) {
        self.seq += 1;
        let doc = json!({"seq": self.seq, "cmd": cmd, "epoch": self.epoch, "phase": self.phase,
                         "read_keys": read_keys});
        let tmp = self.dir.join("out/control.tmp");
        std::fs::write(&tmp, doc.to_string()).unwrap();
        std::fs::rename(&tmp, self.dir.join("out/control")).unwrap();
    }

    fn set_phase(&mut self, phase: &str) {
        self.phase = phase.to_owned();
        self.control("run", &[]);
    }

    fn start(&mut self) {
        for node in NODES {
            let out = self.out(node);
            std::fs::create_dir_all(&out).unwrap();
            let log =
                std::fs::File::create(self.dir.join("out").join(format!("{node}.stderr"))).unwrap();
            let mut c = self.python(node);
            c.arg("run")
                .arg(&out)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            std::os::unix::process::CommandExt::process_group(&mut c, 0);
            let child = c.spawn().expect("starting a worker");
            self.pids.push(child.id());
            self.workers.push(child);
        }
    }

    fn stderr_tail(&self, node: &str) -> String {
        let t = std::fs::read_to_string(self.dir.join("out").join(format!("{node}.stderr")))
            .unwrap_or_default();
        t[t.len().saturating_sub(3000)..].to_owned()
    }

    /// Every worker is still the process started at the beginning.
    fn assert_alive(&mut self) {
        for (i, w) in self.workers.iter_mut().enumerate() {
            if let Ok(Some(st)) = w.try_wait() {
                let node = NODES[i];
                panic!(
                    "the worker of {node} exited ({st}):\n{}",
                    self.stderr_tail(node)
                );
            }
        }
    }

    /// Pauses every worker; each reads `read_keys` through every client kind and reports.
    fn pause(&mut self, read_keys: &[String]) -> Vec<Value> {
        self.control("pause", read_keys);
        let t = Instant::now();
        let mut reports = Vec::new();
        for (i, node) in NODES.iter().enumerate() {
            loop {
                self.assert_alive();
                let r: Option<Value> = std::fs::read_to_string(self.out(node).join("pause.json"))
                    .ok()
                    .and_then(|s| serde_json::from_str(&s).ok());
                if let Some(r) = r.filter(|r| r["seq"] == self.seq) {
                    assert_eq!(
                        r["pid"], self.pids[i],
                        "the worker of {node} is not the one started"
                    );
                    reports.push(r);
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "the worker of {node} did not pause"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        reports
    }

    fn commits(&self, node: &str) -> Vec<CommitLine> {
        let text = std::fs::read_to_string(self.out(node).join("commits.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() >= 5).then(|| CommitLine {
                    acked: f[0] == "OK",
                    ts: f[1].parse().unwrap_or(0.0),
                    commit: f[3].to_owned(),
                })
            })
            .collect()
    }

    fn incrs(&self, node: &str) -> Vec<IncrLine> {
        let text = std::fs::read_to_string(self.out(node).join("incr.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() >= 4).then(|| IncrLine {
                    status: f[0].to_owned(),
                    ts: f[1].parse().unwrap_or(0.0),
                    key: f[2].to_owned(),
                    value: f[3].parse().ok(),
                })
            })
            .collect()
    }

    fn events_tail(&self) -> String {
        NODES
            .iter()
            .map(|n| {
                let t = std::fs::read_to_string(self.out(n).join("events.log")).unwrap_or_default();
                let lines: Vec<&str> = t.lines().collect();
                format!(
                    "--- {n} events (tail)\n{}\n",
                    lines[lines.len().saturating_sub(8)..].join("\n")
                )
            })
            .collect()
    }

    /// Waits until every worker has `n` acknowledged head updates after `since` (and, with
    /// `cache`, `n` acknowledged increments); returns the time it was reached.
    fn wait_progress(
        &mut self,
        tier: &Tier,
        what: &str,
        since: f64,
        n: usize,
        cache: bool,
        secs: u64,
    ) -> f64 {
        let t = Instant::now();
        loop {
            self.assert_alive();
            let done = NODES.iter().all(|node| {
                self.commits(node)
                    .iter()
                    .filter(|c| c.acked && c.ts > since)
                    .count()
                    >= n
                    && (!cache
                        || self
                            .incrs(node)
                            .iter()
                            .filter(|c| c.status == "OK" && c.ts > since)
                            .count()
                            >= n)
            });
            if done {
                return now();
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "{what}: the workers did not make progress within {secs} s\n{}\n{}",
                self.events_tail(),
                tier.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if let Ok(None) = w.try_wait() {
                // SAFETY: our own child, leader of its own process group.
                unsafe {
                    libc::kill(-(w.id() as i32), libc::SIGKILL);
                }
            }
            let _ = w.wait();
        }
    }
}

/// The longest interval without an event in `[start, end]`, the window's edges included.
fn max_gap(times: &[f64], start: f64, end: f64) -> f64 {
    let mut prev = start;
    let mut gap: f64 = 0.0;
    for &t in times.iter().filter(|t| **t > start && **t <= end) {
        gap = gap.max(t - prev);
        prev = t;
    }
    gap.max(end - prev)
}

/// The value of `key` (Django's full key) on one cache node, read with a raw `get`.
fn raw_get(tier: &Tier, i: usize, key: &str) -> Option<i64> {
    let r = mc(tier.cache_port(i), &format!("get :1:{key}\r\n"))
        .unwrap_or_else(|e| panic!("get on node{}: {e}", i + 1));
    if r == "END\r\n" {
        return None;
    }
    let mut lines = r.split("\r\n");
    let head = lines.next().unwrap_or_default();
    assert!(
        head.starts_with("VALUE "),
        "node{}: get {key}: {r:?}",
        i + 1
    );
    Some(
        lines
            .next()
            .unwrap_or_default()
            .parse()
            .unwrap_or_else(|_| panic!("node{}: {key} = {r:?}", i + 1)),
    )
}

/// Every client kind of every worker and a raw get on every node read the same value of each key;
/// returns it (None: absent everywhere).
fn agreed_values(tier: &Tier, reports: &[Value], keys: &[String]) -> BTreeMap<String, Option<i64>> {
    let mut out = BTreeMap::new();
    for key in keys {
        let mut seen: BTreeMap<String, Option<i64>> = BTreeMap::new();
        for (w, r) in reports.iter().enumerate() {
            for kind in KINDS {
                let v = &r["reads"][kind][key];
                assert!(
                    v.is_null() || v.is_i64(),
                    "{} via {kind}: {key} read failed: {v}",
                    NODES[w]
                );
                seen.insert(format!("{} {kind}", NODES[w]), v.as_i64());
            }
        }
        for i in 0..3 {
            seen.insert(format!("raw get on node{}", i + 1), raw_get(tier, i, key));
        }
        let first = *seen.values().next().unwrap();
        assert!(
            seen.values().all(|v| *v == first),
            "clients disagree on {key}: {seen:#?}"
        );
        out.insert(key.clone(), first);
    }
    out
}

/// The counters of `epoch` against the workers' logs: acknowledged ≤ value ≤ acknowledged +
/// ambiguous, no NOT_FOUND, no acknowledged result repeated. Returns a report line per key.
fn check_counters(app: &App, values: &BTreeMap<String, Option<i64>>, epoch: u32) -> Vec<String> {
    let lines: Vec<IncrLine> = NODES.iter().flat_map(|n| app.incrs(n)).collect();
    let mut report = Vec::new();
    for key in counter_keys(epoch) {
        let of_key: Vec<&IncrLine> = lines.iter().filter(|l| l.key == key).collect();
        let v = values[&key].unwrap_or_else(|| panic!("{key} is missing"));
        report.push(check_increments(&key, &of_key, v));
    }
    report
}

/// A counter's value `v` against the increments logged for it (`lines`): none found the counter
/// missing, no acknowledged result repeated or above `v`, and acknowledged ≤ `v` ≤ acknowledged
/// + ambiguous. Returns the report line.
fn check_increments(key: &str, lines: &[&IncrLine], v: i64) -> String {
    let acked = lines.iter().filter(|l| l.status == "OK").count() as i64;
    let ambiguous = lines.iter().filter(|l| l.status == "AMBIG").count() as i64;
    let missing = lines.iter().filter(|l| l.status == "MISSING").count();
    assert_eq!(
        missing, 0,
        "{key}: {missing} increments found the counter missing"
    );
    let mut results = HashSet::new();
    for l in lines.iter().filter(|l| l.status == "OK") {
        let r = l.value.expect("an acknowledged incr has a value");
        assert!(
            results.insert(r),
            "{key}: two acknowledged increments returned {r}"
        );
        assert!(
            r <= v,
            "{key}: an acknowledged result {r} above the value {v}"
        );
    }
    assert!(
        acked <= v && v <= acked + ambiguous,
        "{key} = {v}, but {acked} increments were acknowledged and {ambiguous} ambiguous"
    );
    format!(
        "{key} = {v} = {acked} acknowledged + {} of {ambiguous} ambiguous",
        v - acked
    )
}

fn keel_ok(args: &[&str]) -> String {
    let o = keel(args);
    assert!(o.status.success(), "keel {args:?}\n{}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn up_with_caches(tier: &Tier) -> f64 {
    let t = Instant::now();
    let o = tier.up_with(150, true);
    assert!(
        o.status.success(),
        "keel up failed\n{}\n{}",
        show(&o),
        tier.logs()
    );
    t.elapsed().as_secs_f64()
}

#[test]
fn seafile_stack_through_faults() {
    if skip() {
        return;
    }
    let _one = super::galera_lock();
    let t0 = Instant::now();
    let tier = Tier::new("seafile");
    let secs = up_with_caches(&tier);
    eprintln!("keel up (3 nodes: Galera + proxy + clustered cache): {secs:.1} s");

    // Seafile's databases and user, then each node's settings exactly as printed.
    let out = keel_ok(&["db", "init-seafile", "--dir", tier.d()]);
    assert!(out.contains("exactly the grants Seafile needs"), "{out}");
    let mut app = App {
        dir: tier.dir.join("app"),
        seq: 0,
        epoch: 0,
        phase: "start".into(),
        workers: Vec::new(),
        pids: Vec::new(),
    };
    for (i, node) in NODES.iter().enumerate() {
        let d = app.dir.join(node);
        std::fs::create_dir_all(&d).unwrap();
        for file in ["seafile.conf", "seahub_settings.py"] {
            let text = keel_ok(&[
                "seafile-config",
                "--dir",
                tier.d(),
                "--node",
                node,
                "--only",
                file,
                // This app is Seafile 11/12-shaped: its cache is memcached.
                "--cache",
                "memcached",
            ]);
            std::fs::write(d.join(file), &text).unwrap();
        }
        let conf = std::fs::read_to_string(d.join("seafile.conf")).unwrap();
        assert!(
            conf.contains(&format!("port = {}\n", tier.proxy_port(i)))
                && conf.contains(&format!("--SERVER=127.0.0.1:{}", tier.cache_port(i))),
            "{node}'s seafile.conf must point at its own proxy and cache:\n{conf}"
        );
    }
    std::fs::create_dir_all(app.dir.join("out")).unwrap();
    app.control("run", &[]);
    eprint!("{}", app.run_once("node1", &["setup"]));
    eprint!("{}", app.run_once("node1", &["counters", "0"]));
    app.start();
    let start = now();
    let mut redis = RedisApp::start(&tier);
    app.wait_progress(&tier, "start", start, 20, true, 60);
    redis.wait_progress(&tier, "start", start, 20, 60);

    let mut windows: Vec<Window> = Vec::new();
    let node_of = |name: &str| {
        NODES
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("node {name}"))
    };

    // 1. kill -9 of the writer's mariadbd: the proxies move the writer, the agent brings the
    //    node back by IST.
    let s = tier.status();
    let writer = s["writer"].as_str().expect("a writer").to_owned();
    let wi = node_of(&writer);
    let pid = tier.node(wi)["db"]["pid"].as_i64().unwrap();
    app.set_phase("kill-writer-db");
    let start = now();
    sigkill(pid as i32);
    tier.wait_for(
        "the killed writer's mariadbd back, 3 nodes Synced",
        120,
        |s| {
            Tier::all_synced(s, 3)
                && s["nodes"][wi]["db"]["pid"]
                    .as_i64()
                    .is_some_and(|p| p != pid)
        },
    );
    let since = now();
    let end = app
        .wait_progress(&tier, "after the writer's kill", since, 5, true, 60)
        .max(redis.wait_progress(&tier, "after the writer's kill", since, 5, 60));
    windows.push(Window {
        name: format!("kill -9 writer's mariadbd ({writer})"),
        start,
        end,
        own_node: None,
    });

    // 2. kill -9 of the cache leader: its agent restarts it, it catches up before it answers.
    let s = tier.status();
    let ci = (0..3)
        .find(|i| s["nodes"][*i]["cache"]["role"] == "leader")
        .expect("a cache leader");
    let cpid = s["nodes"][ci]["cache"]["pid"].as_i64().unwrap();
    app.set_phase("kill-cache");
    let start = now();
    sigkill(cpid as i32);
    tier.wait_for("the killed cache back", 60, |s| {
        s["nodes"][ci]["cache"]["pid"]
            .as_i64()
            .is_some_and(|p| p != cpid)
            && (0..3).all(|i| {
                matches!(
                    s["nodes"][i]["cache"]["role"].as_str(),
                    Some("leader" | "follower")
                )
            })
    });
    let since = now();
    let end = app
        .wait_progress(&tier, "after the cache kill", since, 5, true, 60)
        .max(redis.wait_progress(&tier, "after the cache kill", since, 5, 60));
    windows.push(Window {
        name: format!("kill -9 cache leader (node{})", ci + 1),
        start,
        end,
        own_node: None,
    });
    let reports = app.pause(&counter_keys(0));
    let values = agreed_values(&tier, &reports, &counter_keys(0));
    let check1 = check_counters(&app, &values, 0);
    // Redis: every seahub stops incrementing epoch 0's counter, then they read it.
    redis.control(true, false);
    redis.epoch = 1;
    let reads = redis.control(false, false);
    let rcheck1 = redis.check_counter(&reads, 0);

    // 3-5. Rolling restart: drain, clean stop, start, undrain, one node after the other.
    for (i, node) in NODES.iter().enumerate() {
        app.set_phase(&format!("restart-{node}"));
        let start = now();
        let out = keel_ok(&["db", "drain", node, "--dir", tier.d(), "--timeout", "60"]);
        assert!(out.contains("safe to stop"), "{out}");
        tier.stop_node(i, 60);
        up_with_caches(&tier);
        keel_ok(&["db", "undrain", node, "--dir", tier.d()]);
        let since = now();
        let what = format!("after restarting {node}");
        let end = app
            .wait_progress(&tier, &what, since, 5, true, 60)
            .max(redis.wait_progress(&tier, &what, since, 5, 60));
        windows.push(Window {
            name: format!("drain + restart {node}"),
            start,
            end,
            own_node: Some(i),
        });
    }

    // Just before the power loss: the counters are exact and every client agrees.
    let reports = app.pause(&counter_keys(0));
    let values = agreed_values(&tier, &reports, &counter_keys(0));
    let check2 = check_counters(&app, &values, 0);
    // Redis: producers and seahubs stop; epoch 1's counter read; every acknowledged item and
    // message delivered before the power loss takes the (memory-only) rest.
    redis.control(true, false);
    redis.epoch = 2;
    let reads = redis.control(true, false);
    let rcheck2 = redis.check_counter(&reads, 1);
    redis.wait_drained("before the power loss", 60);

    // 6. Power loss: every agent, mariadbd and cache killed at once, then the agents started.
    app.set_phase("power-loss");
    std::thread::sleep(Duration::from_secs(1));
    let (killed, start) = tier.power_loss();
    eprintln!(
        "power loss: SIGKILL to {} processes (caches, mariadbd, agents)",
        killed.len()
    );
    let secs = up_with_caches(&tier);
    eprintln!("keel up after the power loss: {secs:.1} s");
    let db_back = app.wait_progress(&tier, "after the power loss", now(), 5, false, 90);
    // Redis is memory-only (as Seafile runs it): the tier comes back with an empty keyspace
    // (the Redis app is still paused; its consumers and subscribers only read).
    let sizes = redis.dbsizes(60);
    assert_eq!(sizes, vec![0, 0, 0], "DBSIZE per node after the power loss");
    redis.epoch = 3;
    let reads = redis.control(false, false);
    for r in &reads {
        for e in 0..3 {
            assert!(
                r[format!("rc:{e}:shared")].is_null(),
                "rc:{e}:shared survived the power loss: {r}"
            );
        }
    }
    // The cache is memory-only: the old counters are gone on every node alike (nobody
    // recreates them: an incr of a missing key is a NOT_FOUND). New ones start at 0.
    for key in counter_keys(0) {
        for i in 0..3 {
            assert_eq!(
                raw_get(&tier, i, &key),
                None,
                "{key} survived a power loss on node{}?",
                i + 1
            );
        }
    }
    eprint!("{}", app.run_once("node1", &["counters", "1"]));
    app.epoch = 1;
    app.set_phase("after-power-loss");
    let end = app.wait_progress(
        &tier,
        "counting again after the power loss",
        db_back,
        5,
        true,
        60,
    );
    let redis_back = redis.wait_progress(&tier, "Redis after the power loss", db_back, 5, 60);
    let end = end.max(redis_back);
    // The app recovered by itself: every consumer and every subscriber gets new items again.
    let t = Instant::now();
    loop {
        redis.assert_alive();
        let consumers =
            (0..3).all(|i| redis.got(i).iter().filter(|g| g.0 > redis_back).count() >= 3);
        let subscribers = (0..3).all(|i| {
            redis
                .intervals(i)
                .last()
                .is_some_and(|iv| iv.0 > start && iv.2.len() >= 3)
        });
        if consumers && subscribers {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the Redis app's consumers/subscribers did not recover after the power loss\n{}",
            redis.tails()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    windows.push(Window {
        name: "power loss (kill -9 of everything)".into(),
        start,
        end,
        own_node: None,
    });
    app.wait_progress(&tier, "steady after the power loss", end, 40, true, 60);

    // Final check: the new counters exact, the old ones absent everywhere, then stop the workers.
    let mut keys = counter_keys(1);
    keys.extend(counter_keys(0));
    let reports = app.pause(&keys);
    let values = agreed_values(&tier, &reports, &keys);
    for key in counter_keys(0) {
        assert_eq!(values[&key], None, "{key} reappeared after the power loss");
    }
    let check3 = check_counters(&app, &values, 1);
    redis.control(true, false);
    redis.epoch = 4;
    let reads = redis.control(true, false);
    let rcheck3 = redis.check_counter(&reads, 3);
    redis.wait_drained("at the end", 60);
    redis.control(true, true);
    let t = Instant::now();
    for (i, role, c) in &mut redis.procs {
        let st = loop {
            if let Some(st) = c.try_wait().unwrap() {
                break st;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the Redis app's {role} of {} did not exit",
                NODES[*i]
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            st.success(),
            "the Redis app's {role} of {} exited with {st}",
            NODES[*i]
        );
    }
    // Each process started once (its START line, our pid) and never restarted.
    for (i, role, c) in &redis.procs {
        let files: &[&str] = match *role {
            "worker" => &["push.log"],
            "seahub" => &["seahub.log"],
            _ => &["consumer.log", "subscriber.log"],
        };
        for f in files {
            let starts: Vec<String> = redis
                .read(*i, f)
                .lines()
                .filter(|l| l.starts_with("START "))
                .map(|l| l.split(' ').nth(2).unwrap_or_default().to_owned())
                .collect();
            assert_eq!(
                starts,
                vec![c.id().to_string()],
                "{} {f}: started more than once or by someone else",
                NODES[*i]
            );
        }
    }
    let mismatches: Vec<String> = (0..3)
        .flat_map(|i| {
            redis
                .read(i, "seahub.log")
                .lines()
                .filter(|l| l.starts_with("MISMATCH"))
                .map(|l| format!("{}: {l}", NODES[i]))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(mismatches.is_empty(), "seahub cache reads: {mismatches:?}");
    let queue = redis.check_queue();
    let pubsub = redis.check_pubsub();
    app.control("exit", &[]);
    let t = Instant::now();
    for (i, w) in app.workers.iter_mut().enumerate() {
        let st = loop {
            if let Some(st) = w.try_wait().unwrap() {
                break st;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the worker of {} did not exit",
                NODES[i]
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(st.success(), "the worker of {} exited with {st}", NODES[i]);
    }
    for (i, node) in NODES.iter().enumerate() {
        let events = std::fs::read_to_string(app.out(node).join("events.log")).unwrap();
        let starts: Vec<&str> = events
            .lines()
            .filter(|l| l.contains(" start pid "))
            .collect();
        assert_eq!(
            starts,
            vec![format!(
                "{} start pid {} node {node}",
                starts[0].split(' ').next().unwrap(),
                app.pids[i]
            )],
            "the worker of {node} was started more than once or by someone else"
        );
    }

    // Decrypt keys: a successful read is the value just acknowledged; only the power loss may
    // have lost one (memory-only cache).
    let mut mismatches = Vec::new();
    let mut lost_in_power_loss = 0;
    for node in NODES {
        let text = std::fs::read_to_string(app.out(node).join("mismatch.log")).unwrap_or_default();
        for l in text.lines() {
            if l.split(' ').nth(1) == Some("power-loss") && l.ends_with("read <missing>") {
                lost_in_power_loss += 1;
            } else {
                mismatches.push(format!("{node}: {l}"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "decrypt-key reads that were not the acknowledged value:\n{}",
        mismatches.join("\n")
    );

    // Every acknowledged head update is in the database, and each library's history is one
    // chain from the root to its Branch head.
    let rows = tier
        .sql_at(
            tier.proxy_port(1),
            20,
            "SELECT repo_id, commit_id, parent_id FROM seafile_db.CommitLog",
        )
        .unwrap();
    let heads = tier
        .sql_at(
            tier.proxy_port(2),
            20,
            "SELECT repo_id, commit_id FROM seafile_db.Branch",
        )
        .unwrap();
    let mut present = HashSet::new();
    let mut children: HashMap<(String, String), String> = HashMap::new();
    let mut per_repo: HashMap<String, usize> = HashMap::new();
    for l in rows.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 3, "{l:?}");
        present.insert(f[1].to_owned());
        *per_repo.entry(f[0].to_owned()).or_default() += 1;
        if let Some(other) = children.insert((f[0].to_owned(), f[2].to_owned()), f[1].to_owned()) {
            panic!("two head updates of library {} read the same head {}: {other} and {} (a lost update)", f[0], f[2], f[1]);
        }
    }
    for l in heads.lines() {
        let (repo, head) = l.split_once('\t').unwrap();
        let (mut at, mut len) = (ROOT_COMMIT.to_owned(), 0);
        while let Some(next) = children.get(&(repo.to_owned(), at.clone())) {
            at = next.clone();
            len += 1;
        }
        assert_eq!(
            at, head,
            "library {repo}: the commit chain does not end at the Branch head"
        );
        assert_eq!(
            len,
            per_repo.get(repo).copied().unwrap_or(0),
            "library {repo}: commits outside the chain"
        );
    }
    let (mut acked, mut ambiguous, mut ambiguous_present) = (0, 0, 0);
    for node in NODES {
        for c in app.commits(node) {
            if c.acked {
                acked += 1;
                assert!(
                    present.contains(&c.commit),
                    "{node}: acknowledged head update {} is missing",
                    c.commit
                );
            } else {
                ambiguous += 1;
                ambiguous_present += usize::from(present.contains(&c.commit));
            }
        }
    }

    // The figures.
    let mut table = String::from(
        "\nSeafile-shaped application on keel: longest time each worker could not commit a library head \
         update (db) / get a memcached write (incr or set) acknowledged (cache) / get a Redis write (the C \
         worker's LPUSH or seahub's incr, the longer) acknowledged (redis), per fault\n",
    );
    table += &format!(
        "{:<38} {:>7} |{:>9}{:>9}{:>9} |{:>9}{:>9}{:>9} |{:>9}{:>9}{:>9}\n",
        "fault",
        "window",
        "db n1",
        "db n2",
        "db n3",
        "cache n1",
        "cache n2",
        "cache n3",
        "redis n1",
        "redis n2",
        "redis n3"
    );
    let redis_times: Vec<(Vec<f64>, Vec<f64>)> = (0..3).map(|i| redis.write_times(i)).collect();
    let db_times: Vec<Vec<f64>> = NODES
        .iter()
        .map(|n| {
            app.commits(n)
                .iter()
                .filter(|c| c.acked)
                .map(|c| c.ts)
                .collect()
        })
        .collect();
    let cache_times: Vec<Vec<f64>> = NODES
        .iter()
        .map(|n| {
            app.incrs(n)
                .iter()
                .filter(|c| c.status == "OK" || c.status == "SET")
                .map(|c| c.ts)
                .collect()
        })
        .collect();
    for w in &windows {
        let cell = |times: &Vec<f64>, i: usize| {
            let mark = if w.own_node == Some(i) { "*" } else { " " };
            format!("{:>8.2}{mark}", max_gap(times, w.start, w.end))
        };
        let rcell = |i: usize| {
            let mark = if w.own_node == Some(i) { "*" } else { " " };
            let (push, incr) = &redis_times[i];
            let gap = max_gap(push, w.start, w.end).max(max_gap(incr, w.start, w.end));
            format!("{gap:>8.2}{mark}")
        };
        table += &format!(
            "{:<38} {:>6.1}s |{}{}{} |{}{}{} |{}{}{}\n",
            w.name,
            w.end - w.start,
            cell(&db_times[0], 0),
            cell(&db_times[1], 1),
            cell(&db_times[2], 2),
            cell(&cache_times[0], 0),
            cell(&cache_times[1], 1),
            cell(&cache_times[2], 2),
            rcell(0),
            rcell(1),
            rcell(2),
        );
    }
    table += "(seconds; * = the worker on the node being restarted: its own proxy and cache were stopped)\n";
    table += &format!(
        "head updates: {acked} acknowledged, all present; {ambiguous} ambiguous (error during COMMIT), \
         {ambiguous_present} of them committed; {} libraries, each one chain\n",
        heads.lines().count()
    );
    for (label, lines) in [
        ("after the cache kill", &check1),
        ("before the power loss", &check2),
        ("at the end", &check3),
    ] {
        table += &format!("counters {label}: {}\n", lines.join("; "));
    }
    table += &format!(
        "Redis (Django RedisCache, redis-py 6.2 consumers/subscribers, libhiredis producers): \
         {rcheck1}; {rcheck2}; {rcheck3}; DBSIZE after the power loss {sizes:?}\n{queue}\n{pubsub}\n"
    );
    table += &format!(
        "decrypt-key reads: no mismatch ({lost_in_power_loss} entries lost in the power loss, memory-only cache); \
         workers: the same 3 processes throughout; whole test {:.0} s\n",
        t0.elapsed().as_secs_f64()
    );
    eprintln!("{table}");
}

/// Django 5 (`RedisCache`) with redis-py 8, from `scripts/install-deps.sh`.
const PY_SEAHUB: &str = "/opt/keel-py/redis8/bin/python";
/// redis-py 6.2, the version Seafile 13's seafevents pins.
const PY_SEAFEVENTS: &str = "/opt/keel-py/redis6/bin/python";
const ROLES: [&str; 3] = ["worker", "seahub", "seafevents"];

/// One `PUSH` line of a C worker's log.
struct PushLine {
    ok: bool,
    ts: f64,
    id: String,
}

/// One acknowledged or failed `PUBLISH`: its seq, when it was sent.
struct PubLine {
    ok: bool,
    sent: f64,
    seq: u64,
}

/// The Seafile-13-shaped side: per node a libhiredis worker (seaf-server: LPUSH, PUBLISH), a
/// Django seahub cache user and a seafevents-like consumer + subscriber (redis-py 6.2).
struct RedisApp {
    dir: PathBuf,
    seq: u64,
    epoch: u32,
    /// (node index, role, process), started once.
    procs: Vec<(usize, &'static str, Child)>,
}

impl RedisApp {
    fn out(&self, i: usize) -> PathBuf {
        self.dir.join("out").join(NODES[i])
    }

    fn read(&self, i: usize, file: &str) -> String {
        std::fs::read_to_string(self.out(i).join(file)).unwrap_or_default()
    }

    /// Writes each node's settings exactly as `keel seafile-config` printed them (Redis is the
    /// default provider), builds the C worker and starts every process.
    fn start(tier: &Tier) -> RedisApp {
        for py in [PY_SEAHUB, PY_SEAFEVENTS] {
            assert!(
                std::path::Path::new(py).exists(),
                "{py} is missing: run scripts/install-deps.sh"
            );
        }
        let mut app = RedisApp {
            dir: tier.dir.join("redis-app"),
            seq: 0,
            epoch: 0,
            procs: Vec::new(),
        };
        for node in NODES {
            let d = app.dir.join(node);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::create_dir_all(app.dir.join("out").join(node)).unwrap();
            let env = keel_ok(&[
                "seafile-config",
                "--dir",
                tier.d(),
                "--node",
                node,
                "--format",
                "env",
            ]);
            assert!(
                env.contains("\nCACHE_PROVIDER=redis\n") && env.contains("\nREDIS_PASSWORD="),
                "{node}'s .env must select Redis with a password:\n{env}"
            );
            std::fs::write(d.join("seafile.env"), &env).unwrap();
            for file in ["seahub_settings.py", "seafevents.conf"] {
                let text = keel_ok(&[
                    "seafile-config",
                    "--dir",
                    tier.d(),
                    "--node",
                    node,
                    "--only",
                    file,
                ]);
                std::fs::write(d.join(file), &text).unwrap();
            }
            let seahub = std::fs::read_to_string(d.join("seahub_settings.py")).unwrap();
            assert!(
                seahub.contains("django.core.cache.backends.redis.RedisCache"),
                "{seahub}"
            );
        }
        let src = super::repo_root().join("tests/seafile-app/seaf_redis_worker.c");
        let bin = app.dir.join("seaf_redis_worker");
        let o = Command::new("cc")
            .arg("-O2")
            .arg("-o")
            .arg(&bin)
            .arg(&src)
            .arg("-lhiredis")
            .output()
            .expect("cc");
        assert!(
            o.status.success(),
            "cc {} failed (is libhiredis-dev installed?):\n{}",
            src.display(),
            show(&o)
        );
        app.write_control(false, false);
        let script = super::repo_root().join("tests/seafile-app/redis_app.py");
        let control = app.dir.join("out/control");
        for (i, node) in NODES.iter().enumerate() {
            let d = app.dir.join(node);
            let out = app.out(i);
            for role in ROLES {
                let mut c = match role {
                    "worker" => {
                        let mut c = Command::new(&bin);
                        c.arg(d.join("seafile.env"))
                            .arg(node)
                            .arg(out.join("push.log"))
                            .arg(&control)
                            .arg(out.join("worker.ack"));
                        c
                    }
                    _ => {
                        let py = if role == "seahub" {
                            PY_SEAHUB
                        } else {
                            PY_SEAFEVENTS
                        };
                        let mut c = Command::new(py);
                        c.arg(&script)
                            .arg(role)
                            .arg(&d)
                            .arg(&out)
                            .arg(&control)
                            .env("PYTHONDONTWRITEBYTECODE", "1");
                        c
                    }
                };
                let log = std::fs::File::create(out.join(format!("{role}.stderr"))).unwrap();
                c.stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log);
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                let child = c.spawn().expect("starting a Redis app process");
                app.procs.push((i, role, child));
            }
        }
        app
    }

    fn write_control(&mut self, pause: bool, exit: bool) {
        self.seq += 1;
        let tmp = self.dir.join("out/control.tmp");
        std::fs::write(
            &tmp,
            format!(
                "{} {} {} {}\n",
                self.seq,
                u8::from(pause),
                self.epoch,
                u8::from(exit)
            ),
        )
        .unwrap();
        std::fs::rename(&tmp, self.dir.join("out/control")).unwrap();
    }

    /// Every process is still the one started at the beginning.
    fn assert_alive(&mut self) {
        for (i, role, c) in &mut self.procs {
            if let Ok(Some(st)) = c.try_wait() {
                let log = std::fs::read_to_string(
                    self.dir
                        .join("out")
                        .join(NODES[*i])
                        .join(format!("{role}.stderr")),
                )
                .unwrap_or_default();
                panic!(
                    "the Redis app's {role} of {} exited ({st}):\n{}",
                    NODES[*i],
                    &log[log.len().saturating_sub(3000)..]
                );
            }
        }
    }

    /// Sends a control command and waits until every process took it (nothing in flight then:
    /// each process is sequential). Returns each seahub's reads of the epochs' counters.
    fn control(&mut self, pause: bool, exit: bool) -> Vec<Value> {
        self.write_control(pause, exit);
        let t = Instant::now();
        let mut reads = Vec::new();
        for (i, node) in NODES.iter().enumerate() {
            loop {
                if !exit {
                    self.assert_alive();
                }
                let w: Option<u64> = self.read(i, "worker.ack").trim().parse().ok();
                let s: Option<Value> = serde_json::from_str(&self.read(i, "seahub.ack")).ok();
                let e: Option<Value> = serde_json::from_str(&self.read(i, "seafevents.ack")).ok();
                if let (Some(w), Some(s), Some(e)) = (w, s, e) {
                    if w == self.seq && s["seq"] == self.seq && e["seq"] == self.seq {
                        reads.push(s["reads"].clone());
                        break;
                    }
                }
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "the Redis app of {node} did not take control {}",
                    self.seq
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        reads
    }

    fn pushes(&self, i: usize) -> Vec<PushLine> {
        self.read(i, "push.log")
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() >= 4 && f[0] == "PUSH").then(|| PushLine {
                    ok: f[1] == "OK",
                    ts: f[2].parse().unwrap_or(0.0),
                    id: f[3].to_owned(),
                })
            })
            .collect()
    }

    fn pubs(&self, i: usize) -> Vec<PubLine> {
        self.read(i, "push.log")
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() >= 5 && f[0] == "PUB").then(|| PubLine {
                    ok: f[1] == "OK",
                    sent: f[2].parse().unwrap_or(0.0),
                    seq: f[4].parse().unwrap_or(0),
                })
            })
            .collect()
    }

    /// seahub's increments: (status, ts, key, value).
    fn incrs(&self, i: usize) -> Vec<IncrLine> {
        self.read(i, "seahub.log")
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() >= 4 && f[0] != "START" && f[0] != "MISMATCH").then(|| IncrLine {
                    status: f[0].to_owned(),
                    ts: f[1].parse().unwrap_or(0.0),
                    key: f[2].to_owned(),
                    value: f[3].parse().ok(),
                })
            })
            .collect()
    }

    /// Items each consumer got: (ts, id).
    fn got(&self, i: usize) -> Vec<(f64, String)> {
        self.read(i, "consumer.log")
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() >= 3 && f[0] == "GOT")
                    .then(|| (f[1].parse().unwrap_or(0.0), f[2].to_owned()))
            })
            .collect()
    }

    /// A subscriber's connection intervals: (SUB time, whether an error followed, messages
    /// (ts, publisher node, seq)).
    #[allow(clippy::type_complexity)]
    fn intervals(&self, i: usize) -> Vec<(f64, bool, Vec<(f64, String, u64)>)> {
        let mut out: Vec<(f64, bool, Vec<(f64, String, u64)>)> = Vec::new();
        for l in self.read(i, "subscriber.log").lines() {
            let f: Vec<&str> = l.split(' ').collect();
            let ts: f64 = f.get(1).and_then(|t| t.parse().ok()).unwrap_or(0.0);
            match f[0] {
                "SUB" => out.push((ts, false, Vec::new())),
                "ERR" => {
                    if let Some(last) = out.last_mut() {
                        last.1 = true;
                    }
                }
                "MSG" => {
                    let (node, seq) = f
                        .get(2)
                        .and_then(|p| p.split_once(':'))
                        .unwrap_or_else(|| panic!("{}: bad message line {l:?}", NODES[i]));
                    let last = out
                        .last_mut()
                        .unwrap_or_else(|| panic!("{}: a message before SUB", NODES[i]));
                    last.2.push((ts, node.to_owned(), seq.parse().unwrap_or(0)));
                }
                _ => {}
            }
        }
        out
    }

    /// Waits until every C worker and every seahub has `n` acknowledged writes after `since`;
    /// returns the time it was reached.
    fn wait_progress(&mut self, tier: &Tier, what: &str, since: f64, n: usize, secs: u64) -> f64 {
        let t = Instant::now();
        loop {
            self.assert_alive();
            let done = (0..3).all(|i| {
                self.pushes(i)
                    .iter()
                    .filter(|p| p.ok && p.ts > since)
                    .count()
                    >= n
                    && self
                        .incrs(i)
                        .iter()
                        .filter(|l| l.status == "OK" && l.ts > since)
                        .count()
                        >= n
            });
            if done {
                return now();
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "{what}: the Redis app made no progress within {secs} s\n{}\n{}",
                self.tails(),
                tier.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn tails(&self) -> String {
        let mut s = String::new();
        for (i, node) in NODES.iter().enumerate() {
            for f in ["push.log", "seahub.log", "consumer.log", "subscriber.log"] {
                let t = self.read(i, f);
                let lines: Vec<&str> = t.lines().collect();
                s += &format!(
                    "--- {} {f} (tail)\n{}\n",
                    node,
                    lines[lines.len().saturating_sub(5)..].join("\n")
                );
            }
        }
        s
    }

    /// With the producers paused: waits until the consumers got every acknowledged item and
    /// each subscriber still connected since its last SUB got every acknowledged message
    /// published after it.
    fn wait_drained(&mut self, what: &str, secs: u64) {
        let t = Instant::now();
        let mut settled: Option<usize> = None;
        loop {
            self.assert_alive();
            let (_, unexplained) = self.losses();
            let behind = self.subscribers_behind();
            let delivered: usize = (0..3).map(|i| self.got(i).len()).sum();
            if unexplained.is_empty() && behind.is_empty() {
                // Twice in a row, a second apart, with nothing delivered in between: an item
                // still in flight is not taken for one lost with a failed pop.
                if settled == Some(delivered) {
                    return;
                }
                settled = Some(delivered);
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            settled = None;
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "{what}: acknowledged queue items never delivered (and not explained by a failed \
                 BRPOP): {} ({:?}…); subscribers behind: {behind:?}\n{}",
                unexplained.len(),
                &unexplained[..unexplained.len().min(10)],
                self.tails()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every `ERR` of the consumers (a BRPOP that got an error reply or none: its outcome
    /// unknown to the consumer), in time order: (ts, "nodeN: error").
    fn consumer_errors(&self) -> Vec<(f64, String)> {
        let mut out: Vec<(f64, String)> = NODES
            .iter()
            .enumerate()
            .flat_map(|(i, node)| {
                self.read(i, "consumer.log")
                    .lines()
                    .filter_map(|l| {
                        let rest = l.strip_prefix("ERR ")?;
                        let (ts, err) = rest.split_once(' ')?;
                        Some((ts.parse().ok()?, format!("{node}: {err}")))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }

    /// Acknowledged items no consumer got, split into those matched one to one with a
    /// consumer's BRPOP whose connection broke, from 2 s before to 10 s after the push (the pop
    /// may have taken the item and died before answering: "id <- error") and the rest (lost by
    /// the tier). An error reply (`ResponseError`, as `-CLUSTERDOWN`) explains nothing: keel
    /// answers one only when the pop did not run.
    fn losses(&self) -> (Vec<String>, Vec<String>) {
        let got: HashSet<String> = (0..3).flat_map(|i| self.got(i)).map(|g| g.1).collect();
        let mut lost: Vec<PushLine> = (0..3)
            .flat_map(|i| self.pushes(i))
            .filter(|p| p.ok && !got.contains(&p.id))
            .collect();
        lost.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        let errors: Vec<(f64, String)> = self
            .consumer_errors()
            .into_iter()
            .filter(|(_, e)| !e.contains("ResponseError"))
            .collect();
        let mut used = vec![false; errors.len()];
        let (mut explained, mut unexplained) = (Vec::new(), Vec::new());
        // Earliest-deadline-first: a maximum matching of items to errors in their windows.
        for p in lost {
            let k = (0..errors.len())
                .find(|&k| !used[k] && errors[k].0 >= p.ts - 2.0 && errors[k].0 <= p.ts + 10.0);
            match k {
                Some(k) => {
                    used[k] = true;
                    explained.push(format!("{} <- {}", p.id, errors[k].1));
                }
                None => unexplained.push(p.id),
            }
        }
        (explained, unexplained)
    }

    /// Subscribers whose last connection (no error since its SUB) lacks an acknowledged message
    /// published after that SUB.
    fn subscribers_behind(&self) -> Vec<String> {
        let pubs: Vec<Vec<PubLine>> = (0..3).map(|p| self.pubs(p)).collect();
        let mut out = Vec::new();
        for (s, sname) in NODES.iter().enumerate() {
            let Some((sub, false, msgs)) = self.intervals(s).pop() else {
                continue;
            };
            for (pname, pl) in NODES.iter().zip(&pubs) {
                let got: HashSet<u64> =
                    msgs.iter().filter(|m| m.1 == *pname).map(|m| m.2).collect();
                let want: Vec<u64> = pl
                    .iter()
                    .filter(|m| m.ok && m.sent > sub)
                    .map(|m| m.seq)
                    .collect();
                let missing = want.iter().filter(|q| !got.contains(q)).count();
                if missing > 0 {
                    out.push(format!(
                        "{sname}'s subscriber lacks {missing} of {} from {pname}",
                        want.len()
                    ));
                }
            }
        }
        out
    }

    /// The counter of `epoch` read by every seahub agrees and matches the increments.
    fn check_counter(&self, reads: &[Value], epoch: u32) -> String {
        let key = format!("rc:{epoch}:shared");
        let vals: Vec<&Value> = reads.iter().map(|r| &r[&key]).collect();
        assert!(
            vals.iter().all(|v| *v == vals[0]),
            "the seahubs disagree on {key}: {vals:?}"
        );
        let v = vals[0]
            .as_i64()
            .unwrap_or_else(|| panic!("{key} read {}", vals[0]));
        let lines: Vec<IncrLine> = (0..3)
            .flat_map(|i| self.incrs(i))
            .filter(|l| l.key == key)
            .collect();
        check_increments(&key, &lines.iter().collect::<Vec<_>>(), v)
    }

    /// DBSIZE on every node (with the printed address and password) until each answers a number.
    fn dbsizes(&self, secs: u64) -> Vec<i64> {
        (0..3)
            .map(|i| {
                let env =
                    std::fs::read_to_string(self.dir.join(NODES[i]).join("seafile.env")).unwrap();
                let get = |k: &str| {
                    env.lines()
                        .find_map(|l| l.strip_prefix(&format!("{k}=")))
                        .unwrap_or_else(|| panic!("{k} in {env}"))
                        .to_owned()
                };
                let t = Instant::now();
                loop {
                    let o = Command::new("redis-cli")
                        .args(["-h", &get("REDIS_HOST"), "-p", &get("REDIS_PORT")])
                        .args(["--no-auth-warning", "-a", &get("REDIS_PASSWORD"), "DBSIZE"])
                        .output()
                        .expect("redis-cli");
                    let text = String::from_utf8_lossy(&o.stdout).trim().to_owned();
                    if let Ok(n) = text.parse() {
                        break n;
                    }
                    assert!(
                        t.elapsed() < Duration::from_secs(secs),
                        "DBSIZE on {}: {text:?}",
                        NODES[i]
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
            .collect()
    }

    /// Every acknowledged LPUSH delivered to exactly one consumer, an ambiguous one at most once,
    /// nothing delivered that was not pushed.
    fn check_queue(&self) -> String {
        let mut count: HashMap<String, usize> = HashMap::new();
        let mut per_consumer = [0usize; 3];
        for (i, n) in per_consumer.iter_mut().enumerate() {
            for (_, id) in self.got(i) {
                *count.entry(id).or_default() += 1;
                *n += 1;
            }
        }
        let (mut acked, mut ambiguous, mut ambiguous_got) = (0, 0, 0);
        let mut pushed = HashSet::new();
        for i in 0..3 {
            for p in self.pushes(i) {
                let c = count.get(&p.id).copied().unwrap_or(0);
                if p.ok {
                    acked += 1;
                    assert!(
                        c <= 1,
                        "acknowledged queue item {} delivered {c} times",
                        p.id
                    );
                } else {
                    ambiguous += 1;
                    ambiguous_got += c;
                    assert!(c <= 1, "ambiguous queue item {} delivered {c} times", p.id);
                }
                pushed.insert(p.id);
            }
        }
        for id in count.keys() {
            assert!(pushed.contains(id), "a consumer got {id}, never pushed");
        }
        let (explained, unexplained) = self.losses();
        assert!(
            unexplained.is_empty(),
            "acknowledged queue items lost: {unexplained:?} (consumer errors: {:?})",
            self.consumer_errors()
        );
        let errors = self.consumer_errors().len();
        format!(
            "queue: {} of {acked} acknowledged LPUSH delivered exactly once, {} lost each with a \
             BRPOP whose connection broke {explained:?} ({errors} BRPOP errors in all), none lost otherwise, none \
             twice; {ambiguous} ambiguous of which {ambiguous_got} delivered (once); consumers got \
             {per_consumer:?}",
            acked - explained.len(),
            explained.len()
        )
    }

    /// Per subscriber connection: messages of each publisher in publish order without
    /// duplicates, and none missing among the acknowledged ones published after its SUB, up to
    /// the last one it got from that publisher (all of them for a connection open at the end).
    fn check_pubsub(&self) -> String {
        let pubs: Vec<Vec<PubLine>> = (0..3).map(|p| self.pubs(p)).collect();
        let (mut intervals, mut delivered, mut reconnects) = (0, 0, [0usize; 3]);
        for s in 0..3 {
            let iv = self.intervals(s);
            reconnects[s] = iv.len().saturating_sub(1);
            let n = iv.len();
            for (k, (sub, broken, msgs)) in iv.into_iter().enumerate() {
                intervals += 1;
                let open_at_end = k + 1 == n && !broken;
                for (p, pl) in pubs.iter().enumerate() {
                    let got: Vec<u64> = msgs
                        .iter()
                        .filter(|m| m.1 == NODES[p])
                        .map(|m| m.2)
                        .collect();
                    assert!(
                        got.windows(2).all(|w| w[0] < w[1]),
                        "{}'s subscriber (SUB at {sub:.3}) got {}'s messages out of order or twice: {got:?}",
                        NODES[s],
                        NODES[p]
                    );
                    let last = got.last().copied().unwrap_or(0);
                    let have: HashSet<u64> = got.iter().copied().collect();
                    let missing: Vec<u64> = pl
                        .iter()
                        .filter(|m| m.ok && m.sent > sub && (open_at_end || m.seq <= last))
                        .filter(|m| !have.contains(&m.seq))
                        .map(|m| m.seq)
                        .collect();
                    assert!(
                        missing.is_empty(),
                        "{}'s subscriber (SUB at {sub:.3}, connection {k}) missed {} acknowledged \
                         messages of {}: {:?}…",
                        NODES[s],
                        missing.len(),
                        NODES[p],
                        &missing[..missing.len().min(10)]
                    );
                    delivered += got.len();
                }
            }
        }
        format!(
            "pub/sub: {intervals} subscriber connections, {delivered} messages delivered in order, none \
             missing; reconnects per subscriber {reconnects:?}"
        )
    }

    /// The acknowledged Redis writes of node `i` (LPUSH and seahub's incr), sorted.
    fn write_times(&self, i: usize) -> (Vec<f64>, Vec<f64>) {
        (
            self.pushes(i)
                .iter()
                .filter(|p| p.ok)
                .map(|p| p.ts)
                .collect(),
            self.incrs(i)
                .iter()
                .filter(|l| l.status == "OK")
                .map(|l| l.ts)
                .collect(),
        )
    }
}

impl Drop for RedisApp {
    fn drop(&mut self) {
        for (_, _, c) in &mut self.procs {
            if let Ok(None) = c.try_wait() {
                // SAFETY: our own child, leader of its own process group.
                unsafe {
                    libc::kill(-(c.id() as i32), libc::SIGKILL);
                }
            }
            let _ = c.wait();
        }
    }
}
