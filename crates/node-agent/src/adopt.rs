//! `keel node --adopt [MY_CNF]`: takes over a Galera node that was set up by hand from
//! Debian's packages, without copying data. The I/O around [`galera::adopt::plan`]:
//!
//! 1. reads the options the node ran with (`my_print_defaults --defaults-file=MY_CNF --mysqld`,
//!    default `/etc/mysql/my.cnf`, which includes `mariadb.conf.d/60-galera.cnf` and the rest),
//!    the datadir's `grastate.dat`, and the cluster state UUID of every peer whose agent runs;
//! 2. refuses, naming every setting, when they do not fit the description (the plan's rules), or
//!    when a mariadbd still runs on that datadir;
//! 3. moves the datadir into the node folder with one `rename(2)` (a symlink when it is another
//!    filesystem or a mount point: still no copy), writes the carried-over options to
//!    `NODE_DIR/adopted.cnf`, the report to `NODE_DIR/adopted.txt`, and last the folder's
//!    cluster marker, so an interrupted adoption is never mistaken for a new node;
//! 4. prints what it kept and what it changed.
//!
//! Then the agent runs as usual: the node's position comes from `grastate.dat` (or
//! `--wsrep-recover`), the agents decide who bootstraps (the last one out of the hand-built
//! cluster, else the most advanced), the others join by IST or with no transfer at all, and the
//! bootstrapping agent creates keel's users. A node that is already keel's is left alone, so
//! `--adopt` may stay in the unit's arguments. Nothing here deletes data.
//!
//! One node at a time, while the rest of the hand-built cluster runs: an agent started with
//! `--adopt` counts a peer without an agent whose Galera port accepts connections as a running
//! member of the primary component ([`foreign_peer`]), so it joins the hand-built nodes (by IST)
//! instead of waiting for their agents; and once its node is Synced it creates keel's users
//! itself ([`ensure_users_when_synced`]), since nobody bootstraps in that case.

use cluster_config::{ClusterConfig, Node};
use galera::adopt::{self, Facts, FoundConfig, Problem};
use galera::mycnf::NodePaths;
use galera::{GrState, History, MemberReport, MemberView, Phase};
use std::fs;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Debian's main option file (it includes `conf.d/` and `mariadb.conf.d/`).
pub const DEBIAN_MY_CNF: &str = "/etc/mysql/my.cnf";

/// `--adopt [MY_CNF]`.
#[derive(Debug, Clone)]
pub struct AdoptOptions {
    /// The option file the hand-built node was started with.
    pub my_cnf: PathBuf,
}

/// Why a node cannot be adopted.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("refusing to adopt the node of {file} as {node:?}; {} problem(s):\n{}", .problems.len(), .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Refused {
        node: String,
        file: String,
        problems: Vec<Problem>,
    },
    #[error("a mariadbd (pid {pid}) still runs on {datadir}: stop the hand-built node first (systemctl stop mariadb; systemctl disable mariadb)")]
    StillRunning { pid: i32, datadir: PathBuf },
    #[error("keel's datadir {0} already holds data: refusing to adopt over it")]
    KeelDataExists(PathBuf),
    #[error("reading the options of the hand-built node: {0}")]
    Options(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AdoptError {
    let what = what.into();
    move |source| AdoptError::Io { what, source }
}

/// The agent's start-up hook: adopts the node when asked (see the module doc), then adds the
/// options an adoption carried over (`NODE_DIR/adopted.cnf`) in front of `database.extra`.
pub fn startup(
    mut cfg: ClusterConfig,
    node: &Node,
    paths: &NodePaths,
    opts: Option<&AdoptOptions>,
    owner: Option<(u32, u32)>,
) -> Result<ClusterConfig, AdoptError> {
    if let Some(o) = opts {
        match prepare(&cfg, node, paths, o, owner)? {
            Some(report) => println!("{report}"),
            None => tracing::info!(
                node = %node.name,
                "--adopt: {} already belongs to cluster {:?}: nothing to adopt",
                paths.dir.display(),
                cfg.cluster.name
            ),
        }
    }
    if let Ok(text) = fs::read_to_string(adopted_cnf(paths)) {
        let mut extra = adopt::Plan::parse_adopted_cnf(&text);
        extra.append(&mut cfg.database.extra);
        cfg.database.extra = extra;
    }
    if opts.is_some() {
        ADOPTING.store(true, Ordering::SeqCst);
        let (c, p, name) = (cfg.clone(), paths.clone(), node.name.clone());
        std::thread::spawn(move || ensure_users_when_synced(&c, &p, &name));
    }
    Ok(cfg)
}

/// Set by `--adopt`: peers may be hand-built nodes without an agent.
static ADOPTING: AtomicBool = AtomicBool::new(false);

/// While adopting: a peer whose agent does not answer but whose Galera port accepts a
/// connection is a hand-built node that still runs, i.e. a member of the running cluster (a
/// Galera node listens there only while it runs). `None` otherwise (the peer stays unreachable).
pub fn foreign_peer(n: &Node) -> Option<MemberView> {
    if !ADOPTING.load(Ordering::SeqCst) {
        return None;
    }
    let addr = n.galera_addr().to_socket_addrs().ok()?.next()?;
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    Some(MemberView::Reported(MemberReport {
        phase: Phase::Running,
        primary: true,
        history: History::Unknown,
        grastate: None,
        force_bootstrap: false,
    }))
}

/// Once this node is Synced and Primary, creates or updates keel's users (idempotent; the
/// bootstrapping agent does the same). Gives up after 15 minutes.
pub fn ensure_users_when_synced(cfg: &ClusterConfig, paths: &NodePaths, name: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(900) {
        if galera::sql::status(&paths.socket).is_ok_and(|w| w.is_healthy()) {
            let said = crate::ensure_users_sql(cfg)
                .map_err(|e| e.to_string())
                .and_then(|sql| {
                    galera::sql::query(&paths.socket, &sql, Duration::from_secs(10))
                        .map_err(|e| e.to_string())
                });
            match said {
                Ok(_) => {
                    tracing::info!(
                        node = %name,
                        "--adopt: ensured users {} and {}",
                        cfg.users.app.name,
                        cfg.users.monitor.name
                    );
                    return;
                }
                Err(e) => tracing::warn!(node = %name, error = %e, "--adopt: creating users"),
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Where the carried-over options live.
pub fn adopted_cnf(paths: &NodePaths) -> PathBuf {
    paths.dir.join("adopted.cnf")
}

/// Reads the facts, plans and applies the adoption. `Ok(None)`: the node folder is keel's
/// already (adopted earlier, or created by keel).
pub fn prepare(
    cfg: &ClusterConfig,
    node: &Node,
    paths: &NodePaths,
    opts: &AdoptOptions,
    owner: Option<(u32, u32)>,
) -> Result<Option<String>, AdoptError> {
    if paths.cluster_marker.exists() {
        // keel's folder (of this cluster or, refused later by prepare_dirs, of another).
        return Ok(None);
    }
    let source = opts.my_cnf.display().to_string();
    let found = print_defaults(cfg, &opts.my_cnf)?;
    let datadir = found.datadir();
    if let Some(pid) = mariadbd_on(&datadir) {
        return Err(AdoptError::StillRunning { pid, datadir });
    }
    let same = fs::canonicalize(&datadir).ok() == fs::canonicalize(&paths.datadir).ok()
        && datadir.exists();
    if !same
        && fs::read_dir(&paths.datadir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        return Err(AdoptError::KeelDataExists(paths.datadir.clone()));
    }
    let grastate = match fs::read_to_string(datadir.join("grastate.dat")) {
        Ok(t) => Some(GrState::parse(&t).map_err(|e| {
            AdoptError::Options(format!("{}: {e}", datadir.join("grastate.dat").display()))
        })?),
        Err(_) => None,
    };
    let facts = Facts {
        datadir_initialized: datadir.join("mysql").is_dir(),
        grastate,
        hostname: fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        peer_uuids: peer_uuids(cfg, node),
        found,
    };
    let plan = adopt::plan(cfg, node, &facts).map_err(|problems| AdoptError::Refused {
        node: node.name.clone(),
        file: source.clone(),
        problems,
    })?;

    // Apply: data first, marker last (see the module doc).
    fs::create_dir_all(&paths.dir).map_err(io(format!("creating {}", paths.dir.display())))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&paths.dir, Some(uid), Some(gid))
            .map_err(io(format!("chown {}", paths.dir.display())))?;
    }
    let moved = if same {
        "already in place".to_string()
    } else {
        move_datadir(&datadir, &paths.datadir)?
    };
    let cnf = plan.adopted_cnf(&source);
    write_private(&adopted_cnf(paths), &cnf)?;
    let mut report = plan.report(&node.name, &source);
    report += &format!(
        "datadir: {moved}\n\
         carried-over options: {} (added to keel's my.cnf at every start)\n\
         users: the bootstrapping agent creates or updates {}@{} and {}@{} with the passwords of the description\n",
        adopted_cnf(paths).display(),
        cfg.users.app.name,
        cfg.users.app.host,
        cfg.users.monitor.name,
        cfg.users.monitor.host,
    );
    write_private(&paths.dir.join("adopted.txt"), &report)?;
    fs::write(&paths.cluster_marker, format!("{}\n", cfg.cluster.name))
        .map_err(io(format!("writing {}", paths.cluster_marker.display())))?;
    Ok(Some(report))
}

fn write_private(path: &Path, text: &str) -> Result<(), AdoptError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("writing {}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(io(format!("writing {}", path.display())))
}

/// `rename(2)`; when that cannot work (another filesystem, or the datadir is a mount point),
/// a symlink to the datadir where it is. Never a copy.
fn move_datadir(from: &Path, to: &Path) -> Result<String, AdoptError> {
    // An empty folder keel made earlier is in the way of the rename.
    if to.is_dir() {
        fs::remove_dir(to).map_err(io(format!("removing the empty {}", to.display())))?;
    }
    match fs::rename(from, to) {
        Ok(()) => Ok(format!(
            "renamed {} to {} (same filesystem: nothing copied)",
            from.display(),
            to.display()
        )),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV) | Some(libc::EBUSY)) => {
            std::os::unix::fs::symlink(from, to).map_err(io(format!(
                "linking {} to {}",
                to.display(),
                from.display()
            )))?;
            Ok(format!(
                "left in place ({e}); {} is a symlink to it",
                to.display()
            ))
        }
        Err(e) => Err(AdoptError::Io {
            what: format!("moving {} to {}", from.display(), to.display()),
            source: e,
        }),
    }
}

/// The effective server options of `my_cnf`, as `my_print_defaults --mysqld` (mariadbd's own
/// option groups, `[galera]` included) resolves them.
fn print_defaults(cfg: &ClusterConfig, my_cnf: &Path) -> Result<FoundConfig, AdoptError> {
    if !my_cnf.is_file() {
        return Err(AdoptError::Options(format!(
            "{} does not exist: give the option file the node ran with (--adopt FILE)",
            my_cnf.display()
        )));
    }
    let beside_client = cfg.database.client.with_file_name("my_print_defaults");
    let prog = if beside_client.is_file() {
        beside_client
    } else {
        PathBuf::from("my_print_defaults")
    };
    let out = Command::new(&prog)
        .arg(format!("--defaults-file={}", my_cnf.display()))
        .arg("--mysqld")
        .output()
        .map_err(|e| AdoptError::Options(format!("running {}: {e}", prog.display())))?;
    if !out.status.success() {
        return Err(AdoptError::Options(format!(
            "{} --defaults-file={} --mysqld: {}",
            prog.display(),
            my_cnf.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(FoundConfig::parse_print_defaults(
        &my_cnf.display().to_string(),
        &String::from_utf8_lossy(&out.stdout),
    ))
}

/// A live mariadbd/mysqld whose working directory (mariadbd chdirs to its datadir) is `datadir`.
fn mariadbd_on(datadir: &Path) -> Option<i32> {
    let want = fs::canonicalize(datadir).ok()?;
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if !matches!(comm.trim(), "mariadbd" | "mysqld") {
            continue;
        }
        let zombie = fs::read_to_string(e.path().join("stat")).is_ok_and(|st| {
            st.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        });
        if !zombie && fs::read_link(e.path().join("cwd")).ok().as_deref() == Some(&want) {
            return Some(pid);
        }
    }
    None
}

/// The cluster state UUID of every peer whose agent answers (its grastate, its known position
/// or its running cluster's UUID).
fn peer_uuids(cfg: &ClusterConfig, me: &Node) -> Vec<(String, String)> {
    cfg.nodes
        .iter()
        .filter(|n| n.name != me.name)
        .filter_map(|n| {
            let st = crate::peer_state(n).ok()?;
            let uuid = match &st.report.history {
                galera::History::At(p) => Some(p.uuid.clone()),
                _ => None,
            }
            .or(st.db.cluster_uuid.clone())
            .or(st.report.grastate.as_ref().map(|g| g.uuid.clone()))?;
            Some((n.name.clone(), uuid))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_datadir_renames_without_copying() {
        let d = std::env::temp_dir().join(format!("keel-adopt-mv-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let (from, to) = (d.join("mysql"), d.join("keel/n1/data"));
        fs::create_dir_all(from.join("mysql")).unwrap();
        fs::write(from.join("ibdata1"), "x").unwrap();
        fs::create_dir_all(&to).unwrap(); // an empty folder keel made is in the way
        use std::os::unix::fs::MetadataExt;
        let ino = fs::metadata(from.join("ibdata1")).unwrap().ino();
        let said = move_datadir(&from, &to).unwrap();
        assert!(said.contains("renamed"), "{said}");
        assert_eq!(
            fs::metadata(to.join("ibdata1")).unwrap().ino(),
            ino,
            "same inode: not copied"
        );
        assert!(!from.exists());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn no_mariadbd_on_a_fresh_folder() {
        assert_eq!(mariadbd_on(&std::env::temp_dir()), None);
    }
}
