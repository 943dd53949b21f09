//! The I/O side of Galera control: checks before start (packages installed, ports free, no
//! other cluster's datadir, stale pid file), datadir initialisation, starting `mariadbd` as a
//! [`supervisor::Child`] (its own process group, its output in a log file), `--wsrep-recover`,
//! status queries with a deadline, and a clean stop. Only pids this module started (or adopted
//! after checking their command line) are ever signalled. Nothing here deletes a datadir or
//! data; the only file it removes is a pid file whose process is gone.

use crate::grastate::{GrState, GrStateError};
use crate::mycnf::NodePaths;
use crate::position::{recovered_position, Position};
use cluster_config::ClusterConfig;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// What can go wrong running a node.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("MariaDB/Galera is not installed: missing {}; install the packages: apt-get install {}", .missing.join(", "), .packages)]
    NotInstalled {
        missing: Vec<String>,
        packages: String,
    },
    #[error("port {port} ({field}) on {addr} is in use{}", .owner.as_ref().map(|o| format!(" by {o}")).unwrap_or_default())]
    PortInUse {
        field: String,
        addr: String,
        port: u16,
        owner: Option<String>,
    },
    #[error("{dir} belongs to cluster {found:?}, not {expected:?}: refusing to touch it (point data_dir elsewhere)")]
    OtherCluster {
        dir: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{datadir} is not empty but was not created by keel for cluster {expected:?}: refusing to touch it (move it away, or point data_dir elsewhere)")]
    ForeignDatadir { datadir: PathBuf, expected: String },
    #[error("a mariadbd (pid {pid}) already runs on {dir} (pid file {pid_file})")]
    AlreadyRunning {
        pid: i32,
        dir: PathBuf,
        pid_file: PathBuf,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} failed ({status}); see {log}")]
    Failed {
        what: String,
        status: String,
        log: PathBuf,
    },
    #[error("{what} did not finish within {secs} s")]
    Timeout { what: String, secs: u64 },
    #[error("{path}: {source}")]
    GrState { path: PathBuf, source: GrStateError },
    #[error("the OS user mariadbd runs as (uid {uid}) cannot reach {dir}: {blocker} has mode {mode:o}; allow it (chmod o+x {blocker}) or choose another data_dir")]
    Unreachable {
        dir: PathBuf,
        blocker: PathBuf,
        mode: u32,
        uid: u32,
    },
    #[error("OS user {0:?} does not exist (database.os_user)")]
    NoSuchUser(String),
}

type Result<T> = std::result::Result<T, ProcessError>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProcessError {
    let what = what.into();
    move |source| ProcessError::Io { what, source }
}

/// Checks that every program and library a node needs exists, naming the packages otherwise.
pub fn check_installed(cfg: &ClusterConfig) -> Result<()> {
    let db = &cfg.database;
    let mut missing = Vec::new();
    let mut packages = Vec::new();
    for (path, pkg) in [
        (&db.mariadbd, "mariadb-server"),
        (&db.install_db, "mariadb-server"),
        (&db.client, "mariadb-client"),
        (&db.provider, "galera-4"),
    ] {
        if !path.exists() {
            missing.push(path.display().to_string());
            packages.push(pkg);
        }
    }
    let sst_tools: &[(&str, &str)] = match db.sst_method.as_str() {
        "mariabackup" => &[("mariabackup", "mariadb-backup"), ("socat", "socat")],
        _ => &[("rsync", "rsync")],
    };
    for (prog, pkg) in sst_tools {
        if find_in_path(prog).is_none() {
            missing.push(prog.to_string());
            packages.push(pkg);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    packages.dedup();
    let mut all = vec!["mariadb-server", "mariadb-client", "galera-4", "rsync"];
    all.retain(|p| packages.contains(p));
    for p in packages {
        if !all.contains(&p) {
            all.push(p);
        }
    }
    Err(ProcessError::NotInstalled {
        missing,
        packages: all.join(" "),
    })
}

fn find_in_path(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Fails with [`ProcessError::PortInUse`] if `addr:port` cannot be bound (naming the owner when
/// `/proc` tells it).
pub fn check_port_free(field: &str, addr: &str, port: u16) -> Result<()> {
    match std::net::TcpListener::bind((addr, port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(ProcessError::PortInUse {
            field: field.into(),
            addr: addr.into(),
            port,
            owner: port_owner(port),
        }),
        Err(e) => Err(ProcessError::Io {
            what: format!("binding {addr}:{port} ({field})"),
            source: e,
        }),
    }
}

/// The process listening on TCP `port`, as "name (pid N)", from /proc (best effort).
pub fn port_owner(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" {
                if let Some((_, p)) = f[1].rsplit_once(':') {
                    if u16::from_str_radix(p, 16).ok() == Some(port) {
                        inodes.push(format!("socket:[{}]", f[9]));
                    }
                }
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                if inodes.iter().any(|i| Path::new(i) == target) {
                    let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                    return Some(format!("{} (pid {pid})", comm.trim()));
                }
            }
        }
    }
    None
}

/// uid and gid of an OS user.
pub fn os_user_ids(name: &str) -> Result<(u32, u32)> {
    supervisor::os_user(name).map_err(|_| ProcessError::NoSuchUser(name.into()))
}

/// True when this process runs as root (mariadbd must then be told to drop to the OS user).
pub fn running_as_root() -> bool {
    supervisor::running_as_root()
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(io(format!("chown {}", path.display())))?;
    }
    Ok(())
}

/// Creates the node folder, datadir and tmpdir (owned by `owner`), and checks that the folder
/// belongs to `cluster` (writing the marker on first use). Refuses another cluster's folder and
/// a non-empty datadir keel did not create.
pub fn prepare_dirs(paths: &NodePaths, cluster: &str, owner: Option<(u32, u32)>) -> Result<()> {
    if let Ok(found) = fs::read_to_string(&paths.cluster_marker) {
        let found = found.trim().to_owned();
        if found != cluster {
            return Err(ProcessError::OtherCluster {
                dir: paths.dir.clone(),
                found,
                expected: cluster.into(),
            });
        }
    } else {
        let nonempty = fs::read_dir(&paths.datadir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if nonempty {
            return Err(ProcessError::ForeignDatadir {
                datadir: paths.datadir.clone(),
                expected: cluster.into(),
            });
        }
        fs::create_dir_all(&paths.dir).map_err(io(format!("creating {}", paths.dir.display())))?;
        fs::write(&paths.cluster_marker, format!("{cluster}\n"))
            .map_err(io(format!("writing {}", paths.cluster_marker.display())))?;
    }
    for d in [&paths.dir, &paths.datadir, &paths.tmpdir] {
        fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
        chown(d, owner)?;
    }
    if let Some((uid, gid)) = owner {
        check_reachable(&paths.dir, uid, gid)?;
    }
    Ok(())
}

/// mariadbd (as `uid`) must be able to traverse every folder above its node folder.
fn check_reachable(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for a in dir.ancestors().skip(1) {
        let Ok(m) = fs::metadata(a) else { continue };
        let mode = m.mode() & 0o7777;
        let ok = if m.uid() == uid {
            mode & 0o100 != 0
        } else if m.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(ProcessError::Unreachable {
                dir: dir.to_owned(),
                blocker: a.to_owned(),
                mode,
                uid,
            });
        }
    }
    Ok(())
}

/// Handles a pid file left behind: an error if its mariadbd still runs, removed if it is stale.
/// Returns the stale pid that was cleaned up, if any.
pub fn check_pid_file(paths: &NodePaths) -> Result<Option<i32>> {
    let Ok(text) = fs::read_to_string(&paths.pid_file) else {
        return Ok(None);
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        let _ = fs::remove_file(&paths.pid_file);
        return Ok(None);
    };
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    // A zombie (killed, not yet reaped by its new parent) holds nothing: the pid file is stale.
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    });
    if (comm.trim() == "mariadbd" || comm.trim() == "mysqld") && !zombie {
        return Err(ProcessError::AlreadyRunning {
            pid,
            dir: paths.dir.clone(),
            pid_file: paths.pid_file.clone(),
        });
    }
    fs::remove_file(&paths.pid_file).map_err(io(format!(
        "removing stale pid file {}",
        paths.pid_file.display()
    )))?;
    Ok(Some(pid))
}

/// True when the datadir holds an initialised MariaDB (system tables).
pub fn datadir_initialized(paths: &NodePaths) -> bool {
    paths.datadir.join("mysql").is_dir()
}

/// Reads `grastate.dat`, `None` when there is none.
pub fn read_grastate(paths: &NodePaths) -> Result<Option<GrState>> {
    match fs::read_to_string(&paths.grastate) {
        Ok(t) => GrState::parse(&t)
            .map(Some)
            .map_err(|source| ProcessError::GrState {
                path: paths.grastate.clone(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ProcessError::Io {
            what: format!("reading {}", paths.grastate.display()),
            source: e,
        }),
    }
}

/// Sets `safe_to_bootstrap: 1` (done only on the node the bootstrap decision chose).
pub fn mark_safe_to_bootstrap(paths: &NodePaths) -> Result<()> {
    if let Some(mut g) = read_grastate(paths)? {
        if !g.safe_to_bootstrap {
            g.safe_to_bootstrap = true;
            fs::write(&paths.grastate, g.render())
                .map_err(io(format!("writing {}", paths.grastate.display())))?;
        }
    }
    Ok(())
}

/// How the programs of the MariaDB packages are started: a cleared environment, so nothing of
/// the caller's leaks in (SST scripts need PATH), output appended to `log`.
fn spec(name: &str, program: &Path, log: &Path) -> supervisor::Spec {
    supervisor::Spec::new(name, program)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C")
        .log(log)
}

fn child_error(what: &str, e: supervisor::Error) -> ProcessError {
    match e {
        supervisor::Error::Timeout { secs, .. } => ProcessError::Timeout {
            what: what.into(),
            secs,
        },
        supervisor::Error::Spawn { source, .. } | supervisor::Error::Log { source, .. } => {
            ProcessError::Io {
                what: format!("starting {what}"),
                source,
            }
        }
        other => ProcessError::Io {
            what: what.into(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// `mariadb-install-db` for a node that bootstraps a brand-new cluster.
pub fn install_db(cfg: &ClusterConfig, paths: &NodePaths, os_user: Option<&str>) -> Result<()> {
    let what = "mariadb-install-db";
    let log = paths.dir.join("install-db.log");
    let mut s = spec(what, &cfg.database.install_db, &log)
        .arg(format!("--defaults-file={}", paths.cnf.display()))
        .arg("--skip-test-db");
    if let Some(u) = os_user {
        s = s.arg(format!("--user={u}"));
    }
    let st = supervisor::Child::spawn(&s)
        .and_then(|mut c| c.wait_exit(Duration::from_secs(120)))
        .map_err(|e| child_error(what, e))?;
    if !st.success() {
        return Err(ProcessError::Failed {
            what: "mariadb-install-db".into(),
            status: st.to_string(),
            log,
        });
    }
    Ok(())
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn read_from(p: &Path, offset: u64) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(p) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
    }
    s
}

/// `mariadbd --wsrep-recover`: the last committed position from InnoDB (≈0.2 s). `None` when the
/// datadir has no Galera position (never part of a cluster).
pub fn recover(cfg: &ClusterConfig, paths: &NodePaths) -> Result<Option<Position>> {
    let what = "mariadbd --wsrep-recover";
    let offset = file_len(&paths.error_log);
    let s = spec(
        what,
        &cfg.database.mariadbd,
        &paths.dir.join("mariadbd.out"),
    )
    .arg(format!("--defaults-file={}", paths.cnf.display()))
    .arg("--wsrep-recover");
    let st = supervisor::Child::spawn(&s)
        .and_then(|mut c| c.wait_exit(Duration::from_secs(120)))
        .map_err(|e| child_error(what, e))?;
    let log = read_from(&paths.error_log, offset);
    match recovered_position(&log) {
        Some(p) => Ok(p.is_known().then_some(p)),
        None if st.success() => Ok(None),
        None => Err(ProcessError::Failed {
            what: "mariadbd --wsrep-recover".into(),
            status: st.to_string(),
            log: paths.error_log.clone(),
        }),
    }
}

/// How mariadbd starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartMode {
    /// `--wsrep-new-cluster`: this node forms the primary component.
    Bootstrap,
    /// Join the running cluster (IST from `start_position` when given, else SST).
    Join,
}

/// A running mariadbd started by keel (leader of its own process group), or adopted from an
/// earlier agent of this node.
#[derive(Debug)]
pub struct Mariadbd {
    child: supervisor::Child,
    pub pid: i32,
    pub started: Instant,
}

impl Mariadbd {
    /// Takes over a mariadbd that an earlier agent of this node started (the agent died, its
    /// mariadbd did not): only if the pid runs mariadbd with this node's `--defaults-file`.
    pub fn adopt(paths: &NodePaths, pid: i32) -> Option<Mariadbd> {
        let want = format!("--defaults-file={}", paths.cnf.display());
        if !supervisor::cmdline(pid).contains(&want) {
            return None;
        }
        let child = supervisor::Child::adopt("mariadbd", pid)?;
        Some(Mariadbd {
            pid,
            started: child.started(),
            child,
        })
    }

    /// True for an adopted process.
    pub fn adopted(&self) -> bool {
        self.child.adopted()
    }

    /// `Some(status)` once it has exited (for an adopted process the status is unknown: -1).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait()
    }

    /// Clean stop (SIGTERM = SHUTDOWN), then waits up to `deadline`; then SIGKILL to the group.
    /// SST helpers (grandchildren) that linger after a clean stop get SIGTERM. Returns true
    /// when it stopped cleanly.
    pub fn stop(&mut self, deadline: Duration) -> bool {
        self.child.stop(deadline) == supervisor::Stopped::Clean
    }
}

/// Starts mariadbd (output appended to `mariadbd.out`, its own log in `error.log`). It is
/// detached (no parent-death signal, not killed when the handle drops): a mariadbd whose agent
/// died keeps serving and the next agent adopts it; the agent stops it with [`Mariadbd::stop`].
pub fn start(
    cfg: &ClusterConfig,
    paths: &NodePaths,
    mode: StartMode,
    position: Option<&Position>,
) -> Result<Mariadbd> {
    let mut s = spec(
        "mariadbd",
        &cfg.database.mariadbd,
        &paths.dir.join("mariadbd.out"),
    )
    .arg(format!("--defaults-file={}", paths.cnf.display()))
    .detached();
    if mode == StartMode::Bootstrap {
        s = s.arg("--wsrep-new-cluster");
    }
    if let Some(p) = position {
        s = s.arg(format!("--wsrep-start-position={p}"));
    }
    let child = supervisor::Child::spawn(&s).map_err(|e| child_error("mariadbd", e))?;
    Ok(Mariadbd {
        pid: child.pid(),
        started: child.started(),
        child,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> NodePaths {
        let d = std::env::temp_dir().join(format!("keel-proc-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        NodePaths::new(&d.join("node1"))
    }

    #[test]
    fn another_clusters_folder_is_refused_and_data_kept() {
        let p = tmp("other");
        prepare_dirs(&p, "alpha", None).unwrap();
        assert_eq!(
            fs::read_to_string(&p.cluster_marker).unwrap().trim(),
            "alpha"
        );
        fs::write(p.datadir.join("ibdata1"), "x").unwrap();
        prepare_dirs(&p, "alpha", None).unwrap(); // same cluster: fine, idempotent
        let e = prepare_dirs(&p, "beta", None).unwrap_err();
        assert!(
            matches!(e, ProcessError::OtherCluster { ref found, .. } if found == "alpha"),
            "{e}"
        );
        assert!(e.to_string().contains("refusing"));
        assert!(p.datadir.join("ibdata1").exists(), "data must be kept");
    }

    #[test]
    fn foreign_nonempty_datadir_is_refused() {
        let p = tmp("foreign");
        fs::create_dir_all(&p.datadir).unwrap();
        fs::write(p.datadir.join("ibdata1"), "x").unwrap();
        let e = prepare_dirs(&p, "alpha", None).unwrap_err();
        assert!(matches!(e, ProcessError::ForeignDatadir { .. }), "{e}");
        assert!(!p.cluster_marker.exists());
    }

    #[test]
    fn stale_pid_file_is_removed_live_one_refused() {
        let p = tmp("pid");
        prepare_dirs(&p, "alpha", None).unwrap();
        assert_eq!(check_pid_file(&p).unwrap(), None);
        // A pid that is not a mariadbd (this test process) counts as stale.
        fs::write(&p.pid_file, format!("{}\n", std::process::id())).unwrap();
        assert_eq!(check_pid_file(&p).unwrap(), Some(std::process::id() as i32));
        assert!(!p.pid_file.exists());
    }

    #[test]
    fn port_in_use_names_port_and_owner() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let e = check_port_free("node1.sql_port", "127.0.0.1", port).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&port.to_string()) && msg.contains("node1.sql_port"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "owner not named: {msg}"
        );
        drop(l);
        check_port_free("node1.sql_port", "127.0.0.1", port).unwrap();
    }

    #[test]
    fn missing_packages_are_named() {
        let dir = std::env::temp_dir();
        let mut cfg = cluster_config::ClusterConfig::from_toml(
            "[cluster]\nname='c'\ndata_dir='d'\n[users.app]\nname='a'\npassword_env='PATH'\n\
             [users.monitor]\nname='m'\npassword_env='PATH'\n[[node]]\nname='n'\naddress='127.0.0.1'\n",
            &dir,
        )
        .unwrap();
        cfg.database.mariadbd = "/nonexistent/mariadbd".into();
        cfg.database.provider = "/nonexistent/libgalera_smm.so".into();
        let e = check_installed(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("mariadb-server")
                && e.contains("galera-4")
                && e.contains("/nonexistent/mariadbd"),
            "{e}"
        );
    }
}
