//! docs/deploy.md, followed as a test.
//!
//! The guide's command blocks marked ```` ```sh test:STEP ```` are the single source: this test
//! extracts them from docs/deploy.md, in order, and runs each with bash on the "hosts" the step
//! says (three loopback addresses, 127.0.0.11-13, stand for the guide's 10.0.0.11-13; each host
//! has its own folder tree for `/etc/keel`, `/root` and `/tmp`; the nodes' data is under one
//! `/var/lib/keel` as on separate disks, since node folders are per node anyway). What a test
//! cannot do for real is simulated by shell functions (see [`PRELUDE`]): `systemctl` starts and
//! stops `keel node` with keel-node.service's command line (`restart` returns once the node is
//! Synced again), `apt-get`, `scp` between host folders, `nft` (the rule is recorded and checked
//! against the ports the nodes listen on), `journalctl`. After each step the test checks what the
//! guide promises: the tier healthy in `keel status`, Seafile's configuration usable (it connects
//! with the printed credentials through the printed proxy and cache), a rolling restart with
//! drain that keeps the data and the single writer, a replaced node that comes back by SST with
//! the data. A block that fails, or a step the test knows that the guide lacks, fails the test.

use super::adopt::{comm, show, signal, tail, wait_until};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const HOSTS: [(&str, &str); 3] = [
    ("app1", "127.0.0.11"),
    ("app2", "127.0.0.12"),
    ("app3", "127.0.0.13"),
];

/// The marked blocks of the guide: (step, text), in order.
fn blocks(doc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in doc.lines() {
        let t = line.trim_start();
        if let Some((step, text)) = &mut cur {
            if t.starts_with("```") {
                out.push((step.clone(), text.clone()));
                cur = None;
            } else {
                // Blocks may be indented inside a list.
                text.push_str(line.strip_prefix("   ").unwrap_or(line));
                text.push('\n');
            }
        } else if let Some(info) = t.strip_prefix("```") {
            let mut words = info.split_whitespace();
            if words.next() == Some("sh") {
                if let Some(step) = words.find_map(|w| w.strip_prefix("test:")) {
                    cur = Some((step.to_owned(), String::new()));
                }
            }
        }
    }
    out
}

/// Replaces, in one pass, every occurrence of each pattern (longest first at a position);
/// `NODE` only as a whole word.
fn substitute(text: &str, pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut i = 0;
    let b = text.as_bytes();
    'outer: while i < text.len() {
        for (from, to) in pairs {
            if text[i..].starts_with(from.as_str()) {
                let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
                if from == "NODE"
                    && ((i > 0 && word(b[i - 1]))
                        || b.get(i + from.len()).is_some_and(|c| word(*c)))
                {
                    continue;
                }
                out.push_str(to);
                i += from.len();
                continue 'outer;
            }
        }
        let ch = text[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Shell functions standing in for what a test cannot do for real. `$ROOT`, `$H` (this host),
/// `$KEEL_NODE` are set by the runner; `keel` is the binary under test (first on `PATH`).
const PRELUDE: &str = r#"
set -euo pipefail
HR="$ROOT/hosts/$H"
CFG="$HR/etc/keel/cluster.toml"
keel_running() { [ -f "$HR/keel-node.pid" ] && kill -0 "$(cat "$HR/keel-node.pid")" 2>/dev/null; }
keel_start() {
  keel_running && return 0
  touch "$HR/keel-node.log"
  # keel-node.service's ExecStart, in its own session like a unit.
  setsid keel node --config "$CFG" --name "$KEEL_NODE" >> "$HR/keel-node.log" 2>&1 < /dev/null &
  echo $! > "$HR/keel-node.pid"
  echo "shim: started keel node $KEEL_NODE (pid $!)"
}
keel_stop() {
  keel_running || return 0
  local pid; pid=$(cat "$HR/keel-node.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 1200); do kill -0 "$pid" 2>/dev/null || { echo "shim: stopped $KEEL_NODE"; return 0; }; sleep 0.1; done
  echo "shim: keel node $KEEL_NODE did not stop within 120 s" >&2; return 1
}
keel_wait_synced() {
  for _ in $(seq 1 600); do
    if keel status --config "$CFG" --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
n = [x for x in s["nodes"] if x["name"] == sys.argv[1]][0]
ok = n["db"]["state"] == "Synced" and n["db"]["cluster_size"] == len(s["nodes"]) and s["writers_agree"]
sys.exit(0 if ok else 1)' "$KEEL_NODE"; then echo "shim: $KEEL_NODE is Synced"; return 0; fi
    sleep 0.2
  done
  echo "shim: $KEEL_NODE not Synced within 120 s" >&2; return 1
}
systemctl() {
  local args="$*"
  case "$args" in
    "enable --now keel-node"|"start keel-node") keel_start ;;
    "restart keel-node") keel_stop && keel_start && keel_wait_synced ;;
    "stop keel-node"|"disable --now keel-node") keel_stop ;;
    "disable --now mariadb"|"disable --now memcached") echo "shim: systemctl $args (nothing to stop here)" ;;
    *) echo "shim: systemctl $args is not simulated" >&2; return 1 ;;
  esac
}
journalctl() { tail -n 20 "$HR/keel-node.log"; }
apt-get() {
  [ "$1" = install ] || { echo "shim: apt-get $* is not simulated" >&2; return 1; }
  ls "$2" > /dev/null   # the package copied to this host
  echo "shim: apt-get install $2 (keel under test is on PATH)"
}
scripts/build-deb.sh() {
  mkdir -p target/debian && : > target/debian/keel_0.0.0_amd64.deb
  echo target/debian/keel_0.0.0_amd64.deb
}
scp() {
  local files=()
  for a in "$@"; do case "$a" in -*) ;; *) files+=("$a") ;; esac; done
  local dst="${files[-1]}"; unset 'files[-1]'
  local host="${dst%%:*}" path="${dst#*:}"
  path="${path//\/hosts\/$H\///hosts/$host/}"
  mkdir -p "$path"
  cp -p "${files[@]}" "$path"
}
nft() { echo "$*" >> "$HR/nft.rules"; }
mkdir -p "$HR/cwd" "$HR/root" "$HR/tmp"
cd "$HR/cwd"
"#;

struct Run {
    root: PathBuf,
    blocks: Vec<(String, String)>,
    done: Vec<String>,
}

impl Run {
    fn host_root(&self, h: &str) -> PathBuf {
        self.root.join("hosts").join(h)
    }
    fn cfg(&self) -> String {
        self.host_root("app1")
            .join("etc/keel/cluster.toml")
            .display()
            .to_string()
    }
    /// Runs the guide's block `step` on host `h` (node `node`); returns its output.
    fn run(&mut self, step: &str, h: &str, node: &str) -> String {
        let text = self
            .blocks
            .iter()
            .find(|(s, _)| s == step)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("docs/deploy.md has no block marked test:{step}"));
        let hr = self.host_root(h).display().to_string();
        let mut pairs: Vec<(String, String)> = vec![
            ("/etc/keel".into(), format!("{hr}/etc/keel")),
            (
                "/usr/share/doc/keel/examples".into(),
                self.root.join("examples").display().to_string(),
            ),
            ("/root/".into(), format!("{hr}/root/")),
            ("/tmp/".into(), format!("{hr}/tmp/")),
            ("NODE".into(), node.into()),
        ];
        for (i, (_, a)) in HOSTS.iter().enumerate() {
            pairs.push((format!("10.0.0.1{}", i + 1), a.to_string()));
        }
        let script = format!("{PRELUDE}\n{}", substitute(&text, &pairs));
        let bin = super::keel_bin().parent().unwrap().display().to_string();
        let o = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env(
                "PATH",
                format!("{bin}:{}", std::env::var("PATH").unwrap_or_default()),
            )
            .env("ROOT", &self.root)
            .env("H", h)
            .env("KEEL_NODE", node)
            .output()
            .expect("bash");
        assert!(
            o.status.success(),
            "docs/deploy.md test:{step} on {h} failed\n--- script\n{}\n{}\n{}",
            substitute(&text, &pairs),
            show(&o),
            self.logs()
        );
        self.done.push(step.to_owned());
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn each(&mut self, step: &str) {
        for (h, _) in HOSTS {
            self.run(step, h, h);
        }
    }
    fn status(&self) -> Value {
        let o = Command::new(super::keel_bin())
            .args(["status", "--config", &self.cfg(), "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    }
    fn healthy(s: &Value) -> bool {
        s["nodes"].as_array().is_some_and(|n| {
            n.len() == 3
                && n.iter().all(|n| {
                    n["db"]["state"] == "Synced"
                        && n["db"]["cluster_size"] == 3
                        && n["backend"]["health"] == "up"
                        && n["cache"]["state"] == "running"
                        && n["backend"]["drained"] == false
                })
        }) && s["writer"].is_string()
            && s["writers_agree"] == true
    }
    fn wait_healthy(&self, what: &str) -> Value {
        wait_until(
            what,
            150,
            || format!("{:#}\n{}", self.status(), self.logs()),
            || {
                let s = self.status();
                Self::healthy(&s).then_some(s)
            },
        )
    }
    fn logs(&self) -> String {
        let mut s = String::new();
        for (h, _) in HOSTS {
            s += &tail(&self.host_root(h).join("keel-node.log"), 20);
            s += &tail(&self.root.join(format!("var/lib/keel/{h}/error.log")), 10);
        }
        s
    }
    fn node_cnf(&self, h: &str) -> PathBuf {
        self.root.join(format!("var/lib/keel/{h}/my.cnf"))
    }
    /// SIGKILL of host `h`'s agent and mariadbd (pids from its files, verified by name).
    fn kill_host(&self, h: &str) {
        let read = |p: PathBuf| {
            fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
        };
        let mut pids = Vec::new();
        if let Some(p) = read(self.host_root(h).join("keel-node.pid")) {
            if comm(p).as_deref() == Some("keel") {
                signal(-p, libc::SIGKILL); // its session: the agent and its cache
                pids.push(p);
            }
        }
        if let Some(p) = read(self.root.join(format!("var/lib/keel/{h}/mysqld.pid"))) {
            if comm(p).as_deref() == Some("mariadbd") {
                signal(-p, libc::SIGKILL);
                pids.push(p);
            }
        }
        wait_until("killed processes gone", 30, String::new, || {
            pids.iter().all(|p| comm(*p).is_none()).then_some(())
        });
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Clean stop of every agent (each stops its mariadbd), then SIGKILL of what is left.
        for (h, _) in HOSTS {
            let pid = fs::read_to_string(self.host_root(h).join("keel-node.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            if let Some(p) = pid.filter(|p| comm(*p).as_deref() == Some("keel")) {
                signal(p, libc::SIGTERM);
            }
        }
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_secs(60)
            && HOSTS.iter().any(|(h, _)| {
                fs::read_to_string(self.host_root(h).join("keel-node.pid"))
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
                    .is_some_and(|p| comm(p).as_deref() == Some("keel"))
            })
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for (h, _) in HOSTS {
            self.kill_host(h);
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// The listening TCP ports on `addr` (from /proc/net/tcp).
fn listening(addr: &str) -> Vec<u16> {
    let ip: std::net::Ipv4Addr = addr.parse().unwrap();
    let want = format!("{:08X}", u32::from_le_bytes(ip.octets()));
    let mut out: Vec<u16> = fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (a, p) = f.get(1)?.split_once(':')?;
            (f.get(3) == Some(&"0A") && a == want)
                .then(|| u16::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `key = value` of `section` in an INI-like text.
fn ini(text: &str, section: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') {
            inside = t == format!("[{section}]");
        } else if inside {
            if let Some((k, v)) = t.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().to_owned());
                }
            }
        }
    }
    None
}

fn mc(addr: &str, cmd: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(cmd.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !(buf.ends_with(b"END\r\n")
        || buf.ends_with(b"STORED\r\n")
        || buf.ends_with(b"ERROR\r\n"))
    {
        let n = s.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn deploy_md_followed_on_three_loopback_hosts() {
    if super::adopt::skip() {
        return;
    }
    let _g = super::galera_lock();
    let t0 = std::time::Instant::now();
    let repo = super::repo_root();
    let doc = fs::read_to_string(repo.join("docs/deploy.md")).unwrap();
    let root = std::env::temp_dir().join(format!("keel-deploy-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("examples")).unwrap();
    // The addresses and sizes, changed in the example as section 3 says.
    for f in ["seafile-layout-a.toml", "seafile-layout-b.toml"] {
        let mut t =
            fs::read_to_string(repo.join("crates/cluster-config/examples").join(f)).unwrap();
        if f.ends_with("-a.toml") {
            for (from, to) in [
                ("10.0.0.11", "127.0.0.11"),
                ("10.0.0.12", "127.0.0.12"),
                ("10.0.0.13", "127.0.0.13"),
                ("\"10.0.0.%\"", "\"127.0.0.%\""),
                (
                    "\"/var/lib/keel\"",
                    &format!("\"{}/var/lib/keel\"", root.display()),
                ),
                (
                    "innodb_buffer_pool_size = \"2G\"",
                    "innodb_buffer_pool_size = \"128M\"",
                ),
                (
                    "innodb_log_file_size = \"512M\"",
                    "innodb_log_file_size = \"48M\"",
                ),
                ("gcache_size = \"1G\"", "gcache_size = \"64M\""),
                ("memory_mb = 512", "memory_mb = 64"),
            ] {
                assert!(
                    t.contains(from),
                    "the layout (a) example no longer has {from}"
                );
                t = t.replace(from, to);
            }
        }
        fs::write(root.join("examples").join(f), t).unwrap();
    }
    let mut run = Run {
        root: root.clone(),
        blocks: blocks(&doc),
        done: Vec::new(),
    };

    // Sections 2-4, in the guide's order.
    run.run("build", "build", "-");
    run.each("install");
    run.each("stop-stock");
    run.each("config");
    run.run("secrets", "app1", "app1");
    run.run("certs", "app1", "app1");
    run.each("firewall");
    for (h, _) in HOSTS {
        let tls = run.host_root(h).join("etc/keel/secrets/tls");
        for f in ["ca.crt".to_string(), format!("{h}.crt"), format!("{h}.key")] {
            assert!(tls.join(&f).exists(), "{h} lacks secrets/tls/{f}");
        }
        assert_eq!(
            tls.join("ca.key").exists(),
            h == "app1",
            "{h}: ca.key only where it was made"
        );
        for f in ["seafile.password", "control.token"] {
            let a = fs::read(run.host_root("app1").join("etc/keel/secrets").join(f)).unwrap();
            let b = fs::read(run.host_root(h).join("etc/keel/secrets").join(f))
                .unwrap_or_else(|e| panic!("{h}: {f}: {e}"));
            assert_eq!(a, b, "{h} has another {f}");
        }
    }

    // Section 5: start, in host order; the tier comes up by itself.
    let t_start = std::time::Instant::now();
    run.each("start");
    let s = run.wait_healthy("the tier of section 5");
    let up_in = t_start.elapsed().as_secs_f64();
    let out = run.run("status", "app2", "app2");
    assert_eq!(out.matches("Synced").count(), 3, "keel status:\n{out}");
    // Section 4's rule covers every port the nodes listen on.
    for (h, addr) in HOSTS {
        let rule = fs::read_to_string(run.host_root(h).join("nft.rules")).unwrap();
        let dports = rule.split("dport").nth(1).unwrap_or("");
        let open: Vec<u16> = dports
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse().ok())
            .collect();
        let others: Vec<&str> = HOSTS.iter().map(|(_, a)| *a).collect();
        assert!(others.iter().all(|a| rule.contains(a)), "{rule}");
        let listen = listening(addr);
        assert!(listen.len() >= 6, "{h} listens on {listen:?} only");
        for p in &listen {
            assert!(
                open.contains(p),
                "{h} listens on {addr}:{p}, which section 4's rule does not open ({open:?})"
            );
        }
    }

    // Section 6 and 7: Seafile's databases, and its configuration used as printed.
    run.run("init-seafile", "app1", "app1");
    let mut confs = Vec::new();
    for (h, addr) in HOSTS {
        run.run("seafile-config", h, h);
        let text = fs::read_to_string(run.host_root(h).join("root/keel-seafile.txt")).unwrap();
        let host = ini(&text, "database", "host").unwrap();
        let port = ini(&text, "database", "port").unwrap();
        assert_eq!(
            host, addr,
            "{h}'s seafile.conf must use its own proxy:\n{text}"
        );
        let cnf = run.host_root(h).join("root/seafile.cnf");
        fs::write(
            &cnf,
            format!(
                "[client]\nhost = {host}\nport = {port}\nuser = {}\npassword = {}\n",
                ini(&text, "database", "user").unwrap(),
                ini(&text, "database", "password").unwrap()
            ),
        )
        .unwrap();
        let opts = ini(&text, "memcached", "memcached_options").unwrap();
        let server = opts
            .strip_prefix("--SERVER=")
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .to_owned();
        confs.push((cnf, server));
    }
    let sql = |cnf: &Path, q: &str| super::adopt::sql(cnf, &[], q);
    sql(&confs[0].0, "CREATE TABLE seafile_db.Branch (name VARCHAR(10), repo_id CHAR(36), commit_id CHAR(40), PRIMARY KEY (repo_id, name)) ENGINE=InnoDB")
        .unwrap();
    sql(
        &confs[0].0,
        "INSERT INTO seafile_db.Branch VALUES ('master', 'r1', 'c1')",
    )
    .unwrap();
    for (cnf, _) in &confs {
        assert_eq!(
            sql(cnf, "SELECT commit_id FROM seafile_db.Branch").unwrap(),
            "c1"
        );
    }
    assert!(mc(&confs[0].1, "set k 0 0 2\r\nv1\r\n").contains("STORED"));
    for (_, server) in &confs {
        assert!(mc(server, "get k\r\n").contains("v1"), "cache {server}");
    }

    // Section 7, layout (b): an app server's own proxy, run with keel-db-proxy.service's
    // command line, reaches the same writer with the app user.
    let writer = run.status()["writer"].as_str().unwrap().to_owned();
    {
        let unit = fs::read_to_string(repo.join("packaging/keel-db-proxy.service")).unwrap();
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("ExecStart in keel-db-proxy.service");
        let listen = "127.0.0.14:3306";
        let exec = exec
            .replace("${KEEL_CONFIG}", &run.cfg())
            .replace("${KEEL_PROXY_LISTEN}", listen)
            .replace("$KEEL_PROXY_ARGS", "");
        // No node name: the app server is not in the description.
        assert!(!exec.contains('$') && !exec.contains("--name"), "{exec}");
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/bin/keel"));
        let log = root.join("app-server-proxy.log");
        let mut proxy = super::adopt::Agent {
            child: Some(
                std::os::unix::process::CommandExt::process_group(
                    Command::new(super::keel_bin())
                        .args(words)
                        .stdout(fs::File::create(&log).unwrap())
                        .stderr(fs::File::create(root.join("app-server-proxy.err")).unwrap()),
                    0,
                )
                .spawn()
                .unwrap(),
            ),
            log: log.clone(),
            pid_file: root.join("none"),
        };
        let cnf = root.join("app-server.cnf");
        let text = fs::read_to_string(confs[0].0.clone()).unwrap();
        fs::write(
            &cnf,
            text.replace(
                "host = 127.0.0.11\nport = 3306",
                "host = 127.0.0.14\nport = 3306",
            ),
        )
        .unwrap();
        let via = wait_until(
            "the app server's keel-db-proxy serving",
            30,
            || tail(&root.join("app-server-proxy.err"), 20),
            || sql(&cnf, "SELECT @@wsrep_node_name").ok(),
        );
        assert_eq!(via, writer, "the app server's proxy chose another writer");
        assert!(proxy.stop(10), "keel db-proxy did not stop on SIGTERM");
    }

    // Section 8: rolling restart with drain, each node in turn; the writer moves, data stays.
    let t_roll = std::time::Instant::now();
    let mut commits = 1;
    for (h, _) in HOSTS {
        let before = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == h)
            .unwrap()["agent"]["pid"]
            .clone();
        let out = run.run("upgrade", h, h);
        assert!(out.contains(&format!("shim: {h} is Synced")), "{out}");
        let st = run.wait_healthy(&format!("the tier after restarting {h}"));
        let node = st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == h)
            .unwrap()
            .clone();
        assert_ne!(
            node["agent"]["pid"], before,
            "{h}'s agent was not restarted"
        );
        assert_eq!(node["backend"]["drained"], false, "{h} still drained");
        commits += 1;
        sql(
            &confs[1].0,
            &format!("UPDATE seafile_db.Branch SET commit_id = 'c{commits}' WHERE repo_id = 'r1'"),
        )
        .unwrap();
    }
    let roll = t_roll.elapsed().as_secs_f64();
    for (cnf, _) in &confs {
        assert_eq!(
            sql(cnf, "SELECT commit_id FROM seafile_db.Branch").unwrap(),
            format!("c{commits}")
        );
    }

    // Section 9: app3's host is lost (processes killed, disk gone) and replaced.
    let t_replace = std::time::Instant::now();
    run.kill_host("app3");
    fs::remove_dir_all(run.host_root("app3")).unwrap();
    fs::remove_dir_all(root.join("var/lib/keel/app3")).unwrap();
    run.run("build", "build", "-"); // the package copied to the new host
    run.run("install", "app3", "app3");
    run.run("stop-stock", "app3", "app3");
    run.run("replace-copy", "app1", "app1");
    run.run("replace-start", "app3", "app3");
    run.wait_healthy("the tier with app3 replaced");
    let replaced = t_replace.elapsed().as_secs_f64();
    assert_eq!(
        super::adopt::sql(
            &run.node_cnf("app3"),
            &[],
            "SELECT commit_id FROM seafile_db.Branch"
        )
        .unwrap(),
        format!("c{commits}")
    );
    let log3 = fs::read_to_string(root.join("var/lib/keel/app3/error.log")).unwrap();
    assert!(
        log3.contains("rsync SST completed on joiner"),
        "app3 did not get an SST"
    );
    assert!(
        mc(&confs[2].1, "get k\r\n").contains("v1"),
        "replaced app3's cache lacks the data"
    );

    // Every marked block of the guide ran.
    for (step, _) in &run.blocks {
        assert!(
            run.done.contains(step),
            "docs/deploy.md test:{step} is not run by this test"
        );
    }
    eprintln!(
        "deploy.md: tier up {up_in:.1} s, rolling restart of 3 nodes {roll:.1} s, replacement {replaced:.1} s, total {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn blocks_and_substitution() {
    let doc = "x\n```sh test:a\necho NODE KEEL_NODE /etc/keel/x\n```\n```sh\nnot me\n```\n   ```sh test:b\n   two\n   ```\n";
    let b = blocks(doc);
    assert_eq!(
        b,
        vec![
            ("a".into(), "echo NODE KEEL_NODE /etc/keel/x\n".into()),
            ("b".into(), "two\n".into())
        ]
    );
    let s = substitute(
        &b[0].1,
        &[
            ("NODE".into(), "app1".into()),
            ("/etc/keel".into(), "/r/etc/keel".into()),
        ],
    );
    assert_eq!(s, "echo app1 KEEL_NODE /r/etc/keel/x\n");
}
