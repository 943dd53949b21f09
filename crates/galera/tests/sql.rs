//! `galera::sql` against a real single-node MariaDB Galera cluster: the blocking API answers what
//! `mariadb -N -B` prints for the same statements (over the node's socket, as the OS user's
//! unix_socket account), an error in any statement fails the call, the wsrep status reads as
//! fit, the async client logs in over TCP with a password, and a SIGSTOPped server neither hangs a
//! call past its deadline nor leaves sockets behind.
//!
//! Needs `mariadb-server mariadb-client galera-4`; set `KEEL_SKIP_TIER_TESTS=1` to skip on a
//! machine without them.

use galera::sql::{self, Conn, SqlError};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MARIADBD: &str = "/usr/sbin/mariadbd";
const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

fn skip() -> bool {
    if std::env::var_os("KEEL_SKIP_TIER_TESTS").is_some() {
        return true;
    }
    assert!(
        Path::new(MARIADBD).exists() && Path::new(PROVIDER).exists(),
        "these tests need MariaDB and Galera: scripts/install-deps.sh (or set KEEL_SKIP_TIER_TESTS=1)"
    );
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A bootstrapped one-node Galera cluster in a temp dir, in its own process group; killed and
/// reaped on drop.
struct Node {
    dir: PathBuf,
    socket: PathBuf,
    sql: SocketAddr,
    child: Child,
}

impl Node {
    fn start(tag: &str) -> Node {
        let dir = std::env::temp_dir().join(format!("keel-sql-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (sql_port, gport, ist) = (free_port(), free_port(), free_port());
        let d = dir.display();
        let cnf = dir.join("my.cnf");
        std::fs::write(
            &cnf,
            format!(
                "[client]\nsocket = {d}/mysqld.sock\n[mariadbd]\ndatadir = {d}/data\nsocket = {d}/mysqld.sock\n\
                 pid-file = {d}/mysqld.pid\nlog-error = {d}/error.log\nbind-address = 127.0.0.1\nport = {sql_port}\n\
                 skip-name-resolve\nperformance_schema = OFF\ninnodb_buffer_pool_size = 32M\n\
                 innodb_log_file_size = 16M\nbinlog_format = ROW\ninnodb_autoinc_lock_mode = 2\n\
                 wsrep_on = ON\nwsrep_provider = {PROVIDER}\nwsrep_cluster_name = sqltest\n\
                 wsrep_cluster_address = gcomm://127.0.0.1:{gport}\nwsrep_node_name = n1\n\
                 wsrep_node_address = 127.0.0.1\nwsrep_provider_options = \"gmcast.listen_addr=tcp://127.0.0.1:{gport};ist.recv_addr=127.0.0.1:{ist};gcache.size=16M\"\n"
            ),
        )
        .unwrap();
        let root = nix::unistd::geteuid().is_root();
        let mut install = Command::new("mariadb-install-db");
        install
            .arg(format!("--defaults-file={}", cnf.display()))
            .arg("--skip-test-db");
        if root {
            install.arg("--user=root");
        }
        let out = install.output().expect("run mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db: {out:?}");
        let log = std::fs::File::create(dir.join("mariadbd.out")).unwrap();
        let mut c = Command::new(MARIADBD);
        c.arg(format!("--defaults-file={}", cnf.display()));
        if root {
            c.arg("--user=root");
        }
        let child = c
            .arg("--wsrep-new-cluster")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start mariadbd");
        let node = Node {
            socket: dir.join("mysqld.sock"),
            sql: SocketAddr::from(([127, 0, 0, 1], sql_port)),
            dir,
            child,
        };
        let start = Instant::now();
        while !sql::status(&node.socket).is_ok_and(|s| s.is_healthy()) {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "mariadbd did not become Synced; see {}",
                node.dir.join("error.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        node
    }

    fn signal(&self, sig: Signal) {
        killpg(Pid::from_raw(self.child.id() as i32), sig).expect("signal mariadbd");
    }

    /// What the `mariadb` client prints for `sql` in batch mode, as the agent ran it before.
    fn mariadb_cli(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .arg(format!(
                "--defaults-file={}",
                self.dir.join("my.cnf").display()
            ))
            .args(["-N", "-B", "-e"])
            .arg(format!("SET SESSION wsrep_sync_wait=0; {sql}"))
            .output()
            .expect("run mariadb");
        assert!(out.status.success(), "mariadb: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGCONT);
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn one_client_for_every_query() {
    if skip() {
        return;
    }
    let node = Node::start("client");
    let d = Duration::from_secs(10);

    // Same answers as the mariadb client, for the shapes keel's callers parse.
    for q in [
        "SELECT 1",
        "SELECT CURRENT_USER(), NULL, 'tab\there', 'new\nline', 'back\\\\slash', ''",
        "CREATE DATABASE IF NOT EXISTS t; CREATE TABLE IF NOT EXISTS t.a (id INT PRIMARY KEY, v TEXT); \
         REPLACE INTO t.a VALUES (1, 'x'), (2, NULL); SELECT * FROM t.a ORDER BY id; SELECT COUNT(*) FROM t.a",
        "SHOW GRANTS",
        "SHOW GLOBAL STATUS LIKE 'wsrep_local_state%'",
        "SELECT @@wsrep_sync_wait",
        "DO 1",
    ] {
        assert_eq!(sql::query(&node.socket, q, d).unwrap(), node.mariadb_cli(q), "{q}");
    }
    assert_eq!(
        sql::query_rows(&node.socket, "SELECT NULL, 'a'", d).unwrap(),
        [[None, Some("a".to_string())]]
    );

    // An error in any statement fails the call, and later statements do not run.
    for q in [
        "SELEKT 1",
        "SELECT 1; SELEKT 2",
        "DO 1; SELEKT 2; CREATE DATABASE never",
    ] {
        let e = sql::query(&node.socket, q, d).unwrap_err();
        assert_eq!(e.code(), Some(1064), "{q}: {e}");
    }
    assert_eq!(
        sql::query(&node.socket, "SHOW DATABASES LIKE 'never'", d).unwrap(),
        ""
    );

    // The wsrep status reads as fit.
    let st = sql::status(&node.socket).unwrap();
    assert!(st.is_healthy(), "{st:?}");
    assert_eq!((st.state.as_str(), st.cluster_size), ("Synced", 1));
    assert!(st.conf_id >= 1, "{st:?}");

    // The async client: TCP with a password, error codes, affected rows.
    sql::query(
        &node.socket,
        "CREATE USER IF NOT EXISTS mon@'127.0.0.1' IDENTIFIED BY 'pw'; \
         GRANT PROCESS ON *.* TO mon@'127.0.0.1'; GRANT ALL ON t.* TO mon@'127.0.0.1'",
        d,
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = Conn::connect(node.sql, "mon", "pw", Some("t"))
            .await
            .unwrap();
        assert!(
            c.server_version().starts_with("10."),
            "{}",
            c.server_version()
        );
        assert!(c.wsrep_status().await.unwrap().is_healthy());
        let r = c
            .query("UPDATE a SET v = 'y' WHERE id IN (1, 2)")
            .await
            .unwrap();
        assert_eq!(r.affected_rows, 2);
        let r = c.query("SELECT id, v FROM a ORDER BY id").await.unwrap();
        assert_eq!(r.columns, ["id", "v"]);
        assert_eq!(r.rows.len(), 2);
        assert_eq!(
            c.query_one("SELECT v FROM a WHERE id = 2")
                .await
                .unwrap()
                .as_deref(),
            Some("y")
        );
        let e = c.query("SELECT * FROM nope.x").await.unwrap_err();
        assert!(matches!(e.code(), Some(1044 | 1049 | 1142 | 1146)), "{e}");
        // Still usable after an error.
        assert_eq!(c.query_one("SELECT 2").await.unwrap().as_deref(), Some("2"));
        c.close(Duration::from_secs(1)).await;
        let e = Conn::connect(node.sql, "mon", "wrong", None)
            .await
            .err()
            .expect("bad password");
        assert_eq!(e.code(), Some(1045), "{e}");
    });

    // A server stopped in the middle of a result: the abandoned connection closes at once
    // (rather than waiting to read the rest from a server that does not send it).
    let mut held = rt
        .block_on(Conn::connect(node.sql, "mon", "pw", Some("t")))
        .unwrap();
    let before = open_fds();
    rt.block_on(async {
        let stop = async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            node.signal(Signal::SIGSTOP);
            std::future::pending::<()>().await
        };
        let big = held.query("SELECT seq, REPEAT('x', 100) FROM seq_1_to_100000000");
        let r = tokio::time::timeout(Duration::from_millis(800), async {
            tokio::select! {
                r = big => r.map(|r| r.rows.len()),
                _ = stop => unreachable!(),
            }
        })
        .await;
        assert!(
            r.is_err(),
            "the query ended before the server was stopped: {r:?}"
        );
        drop(held);
        // Connections that never get a greeting.
        for _ in 0..20 {
            let r = tokio::time::timeout(
                Duration::from_millis(200),
                Conn::connect(node.sql, "mon", "pw", None),
            )
            .await;
            assert!(r.is_err(), "a stopped server answered");
        }
        // Give anything the driver might have spawned a chance to run.
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let after = open_fds();
    assert!(
        after < before,
        "sockets of abandoned calls stay open: {before} fds before, {after} after"
    );

    // The blocking calls end at their deadline.
    let t = Instant::now();
    let e = sql::status(&node.socket).unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, SqlError::Timeout { .. }), "{e}");
    assert!(
        took < sql::STATUS_DEADLINE + Duration::from_secs(1),
        "{took:?}"
    );
    let e = sql::query(&node.socket, "SELECT 1", Duration::from_millis(300)).unwrap_err();
    assert!(matches!(e, SqlError::Timeout { .. }), "{e}");
    node.signal(Signal::SIGCONT);
    let start = Instant::now();
    while !sql::status(&node.socket).is_ok_and(|s| s.is_healthy()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no answer after SIGCONT"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
