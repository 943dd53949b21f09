//! One server under test as a supervised child process.
//!
//! Start: pick a free loopback port (or let the server pick one and write it to a port file in its
//! dir), make a temp dir, spawn the program in its own process group with a cleared environment
//! and stdout/stderr appended to `<dir>/server.log`, then poll the spec's readiness probe
//! (memcached's `version\r\n` → `VERSION ` unless the spec says otherwise, e.g. Redis's `PING`)
//! until it passes or the deadline passes. If the port was taken between choosing and binding
//! (another test's client took it), the start is retried on a new port.
//!
//! Stop: on drop the process group gets SIGKILL and the child is reaped; [`Server::terminate`]
//! sends SIGTERM first and reports the exit status. Nothing here ever signals a pid it did not
//! spawn, and a group is signalled only while its leader is still unreaped (so its id cannot have
//! been reused).

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::client::TextClient;

/// A failure to start or stop a server, with everything needed to understand it from a CI log.
#[derive(Debug)]
pub struct Error {
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Where a server's port comes from.
pub enum PortSource {
    /// The harness picks a free loopback port and passes it in [`Launch::port`]; when the bind
    /// fails (another test took the port first) the start is retried on another port.
    Free,
    /// The server picks its own port (e.g. `-p 0`) and writes it to this file, named relative to
    /// the server's dir; [`Launch::port`] is 0 and the harness polls the file.
    File(String),
}

/// What the server is started with: the port the harness chose (0 with
/// [`PortSource::File`]) and the server's own dir (for port files, passwords, data).
pub struct Launch<'a> {
    pub port: u16,
    pub dir: &'a Path,
}

/// A readiness check, given the server's address: `Ok(true)` once the server answers as it
/// should, `Ok(false)` with a wrong answer, `Err` when it cannot be reached (yet).
pub type Probe = Box<dyn Fn(SocketAddr) -> io::Result<bool> + Send + Sync>;

/// Builds a server's argument list from its [`Launch`].
pub type ArgsFn = Box<dyn Fn(&Launch<'_>) -> Vec<OsString> + Send + Sync>;

/// How to run one server. `args` receives the chosen port and the server's dir and returns the
/// full argument list.
pub struct ServerSpec {
    /// Short name for logs and temp dir names (`memcached`, `keel`).
    pub name: String,
    pub program: PathBuf,
    pub args: ArgsFn,
    /// Extra environment variables (the environment is otherwise cleared).
    pub env: Vec<(OsString, OsString)>,
    /// How long the server may take to pass its readiness probe.
    pub ready_timeout: Duration,
    /// Where the port comes from.
    pub port: PortSource,
    /// Readiness: [`version_probe`] (memcached's `version`) unless set otherwise.
    pub probe: Probe,
    /// Files written into the server's dir before it starts (name, contents): passwords, configs.
    pub files: Vec<(String, Vec<u8>)>,
}

impl ServerSpec {
    /// A spec with a harness-chosen port, the memcached `version` probe and no files.
    pub fn new(
        name: &str,
        program: impl Into<PathBuf>,
        ready_timeout: Duration,
        args: impl Fn(&Launch<'_>) -> Vec<OsString> + Send + Sync + 'static,
    ) -> ServerSpec {
        ServerSpec {
            name: name.to_string(),
            program: program.into(),
            args: Box::new(args),
            env: Vec::new(),
            ready_timeout,
            port: PortSource::Free,
            probe: Box::new(version_probe),
            files: Vec::new(),
        }
    }
}

/// A running server; killed (whole process group) and reaped on drop.
pub struct Server {
    name: String,
    command_line: String,
    child: Child,
    port: u16,
    dir: PathBuf,
    log_path: PathBuf,
    reaped: Option<ExitStatus>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// Ports this process already handed out: never hand one out twice, even after its server died.
static USED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that is free right now, chosen below the kernel's ephemeral range so that the
/// many outgoing connections of other tests (which take ephemeral ports) cannot grab it first.
pub fn free_port() -> io::Result<u16> {
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let (lo, hi) = if ephemeral_low > 12000 {
        (10000u16, ephemeral_low - 1)
    } else {
        (0, 0)
    };
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 32)
        ^ NEXT_ID
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = crate::Rng::new(seed);
    let mut used = USED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let used = used.get_or_insert_with(HashSet::new);
    for _ in 0..200 {
        let port = if lo == 0 {
            // No usable range below the ephemeral one: let the kernel choose.
            TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
        } else {
            rng.range(u64::from(lo), u64::from(hi)) as u16
        };
        if used.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            used.insert(port);
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free loopback port found",
    ))
}

pub(crate) fn make_temp_dir(name: &str) -> io::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "keel-test-{name}-{}-{}-{nanos}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The port a server wrote to `f` (`None` while the file is missing, partial or 0).
pub fn read_port_file(f: &Path) -> Option<u16> {
    let s = fs::read_to_string(f).ok()?;
    s.trim().parse::<u16>().ok().filter(|p| *p != 0)
}

/// The last `max` bytes of a file, lossily decoded.
pub fn file_tail(path: &Path, max: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Ask for `version` once; `Ok(true)` iff the reply starts with `VERSION `.
pub fn version_probe(addr: SocketAddr) -> io::Result<bool> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    s.set_write_timeout(Some(Duration::from_millis(500)))?;
    s.write_all(b"version\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while !buf.ends_with(b"\r\n") && buf.len() < 1024 {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf.starts_with(b"VERSION "))
}

impl Server {
    /// Start a server and wait until it passes its readiness probe.
    pub fn start(spec: ServerSpec) -> Result<Server, Error> {
        let mut last_err = None;
        for _attempt in 0..4 {
            match Self::start_once(&spec) {
                Ok(s) => return Ok(s),
                Err((e, retry)) => {
                    if !retry {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    /// One attempt; the bool says whether a retry on another port may help (the port was taken).
    fn start_once(spec: &ServerSpec) -> Result<Server, (Error, bool)> {
        let fail = |m: String| (Error { message: m }, false);
        let port = match spec.port {
            PortSource::Free => {
                free_port().map_err(|e| fail(format!("{}: no free port: {e}", spec.name)))?
            }
            PortSource::File(_) => 0,
        };
        let dir =
            make_temp_dir(&spec.name).map_err(|e| fail(format!("{}: temp dir: {e}", spec.name)))?;
        for (name, contents) in &spec.files {
            let f = dir.join(name);
            fs::write(&f, contents)
                .map_err(|e| fail(format!("{}: {}: {e}", spec.name, f.display())))?;
        }
        let log_path = dir.join("server.log");
        let log = File::create(&log_path)
            .map_err(|e| fail(format!("{}: {}: {e}", spec.name, log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| fail(format!("{}: dup log fd: {e}", spec.name)))?;
        let args = (spec.args)(&Launch { port, dir: &dir });
        let command_line = std::iter::once(spec.program.as_os_str())
            .chain(args.iter().map(|a| a.as_os_str()))
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new(&spec.program);
        cmd.args(&args)
            .current_dir(&dir)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", &dir)
            .env("RUST_BACKTRACE", "1")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| fail(format!("{}: cannot spawn `{command_line}`: {e}", spec.name)))?;
        let mut server = Server {
            name: spec.name.clone(),
            command_line,
            child,
            port,
            dir,
            log_path,
            reaped: None,
        };
        let deadline = Instant::now() + spec.ready_timeout;
        let mut last_probe = String::from("not probed yet");
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                server.reaped = Some(status);
                let log = file_tail(&server.log_path, 4000);
                let port_taken = matches!(spec.port, PortSource::Free)
                    && (log.contains("in use")
                        || log.contains("AddrInUse")
                        || log.contains("bind"));
                return Err((
                    server.failure(&format!("exited before it was ready: {status}")),
                    port_taken,
                ));
            }
            let have_port = match &spec.port {
                PortSource::Free => true,
                PortSource::File(name) => match read_port_file(&server.dir.join(name)) {
                    Some(p) => {
                        server.port = p;
                        true
                    }
                    None => {
                        last_probe = format!("no port in {name} yet");
                        false
                    }
                },
            };
            if have_port {
                match (spec.probe)(server.addr()) {
                    Ok(true) => return Ok(server),
                    Ok(false) => last_probe = "wrong answer to the readiness probe".into(),
                    Err(e) => last_probe = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                let msg = format!(
                    "not ready after {:?} (last probe: {last_probe})",
                    spec.ready_timeout
                );
                return Err((server.failure(&msg), false));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// An error describing this server: what failed, its command, its dir and its log tail.
    pub fn failure(&self, what: &str) -> Error {
        Error {
            message: format!(
                "{} (pid {}): {what}\n  command: {}\n  dir: {}\n  log tail:\n{}",
                self.name,
                self.child.id(),
                self.command_line,
                self.dir.display(),
                indent(&file_tail(&self.log_path, 3000))
            ),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn command_line(&self) -> &str {
        &self.command_line
    }
    /// The last `max` bytes of the server's stdout+stderr.
    pub fn log_tail(&self, max: usize) -> String {
        file_tail(&self.log_path, max)
    }

    /// A new text-protocol connection (10 s I/O timeouts so a hung server fails the test).
    pub fn connect(&self) -> io::Result<TextClient> {
        TextClient::connect(self.addr())
    }

    /// Resident set size in KiB, from `/proc/<pid>/status` (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// True while the process has not exited (does not reap it).
    pub fn is_running(&self) -> bool {
        self.reaped.is_none() && !exited_nowait(self.child.id())
    }

    /// Send `signal` (a signal number) to the server process itself (not the group).
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        if self.reaped.is_some() {
            return Err(io::Error::other("process already reaped"));
        }
        let sig = Signal::try_from(signal)?;
        // The pid is our unreaped child, so it cannot have been reused.
        nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), sig)?;
        Ok(())
    }

    /// Wait up to `timeout` for the process to exit on its own; then reap it and return its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, Error> {
        if let Some(s) = self.reaped {
            return Ok(s);
        }
        let deadline = Instant::now() + timeout;
        while !exited_nowait(self.child.id()) {
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "still running {timeout:?} after it was asked to stop"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill_group(); // leftovers of the group, while the zombie leader pins the group id
        let status = self
            .child
            .wait()
            .map_err(|e| self.failure(&format!("wait: {e}")))?;
        self.reaped = Some(status);
        Ok(status)
    }

    /// SIGTERM, then wait up to `timeout` for a graceful exit.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, Error> {
        self.signal(Signal::SIGTERM as i32)
            .map_err(|e| self.failure(&format!("SIGTERM: {e}")))?;
        self.wait_exit(timeout)
    }

    fn kill_group(&self) {
        if self.reaped.is_none() {
            // The group we created with process_group(0), whose id is pinned by our unreaped
            // child.
            let _ =
                nix::sys::signal::killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            self.kill_group();
            if let Ok(s) = self.child.wait() {
                self.reaped = Some(s);
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "[test-harness] {} (pid {}) kept its dir for inspection: {}\n  command: {}\n  log tail:\n{}",
                self.name,
                self.child.id(),
                self.dir.display(),
                self.command_line,
                indent(&file_tail(&self.log_path, 2000))
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Server({} pid {} on {})",
            self.name,
            self.child.id(),
            self.addr()
        )
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    | {l}\n")).collect()
}

/// Has `pid` (our child) exited? Uses `waitid(WNOWAIT)`, so the zombie is left for `wait`.
fn exited_nowait(pid: u32) -> bool {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    matches!(
        waitid(Id::Pid(Pid::from_raw(pid as i32)), flags),
        Ok(s) if s != WaitStatus::StillAlive
    )
}

/// Raise this process's soft `RLIMIT_NOFILE` to at least `want`; when the hard limit is lower,
/// try to raise it too (works as root), else stop at the hard limit. Children inherit it.
/// Returns the new soft limit.
pub fn raise_nofile_limit(want: u64) -> io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (cur, max) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if max < want && setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        return Ok(want);
    }
    let target = want.min(max);
    if cur < target {
        setrlimit(Resource::RLIMIT_NOFILE, target, max)?;
        return Ok(target);
    }
    Ok(cur)
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

/// Debian's memcached on a free loopback port, UDP off, plus `extra` flags
/// (`-u memcache` is added when running as root, since memcached refuses root otherwise).
pub fn memcached(extra: &[&str]) -> Result<Server, Error> {
    let extra = os(extra);
    let root = nix::unistd::geteuid().is_root();
    Server::start(ServerSpec::new(
        "memcached",
        "/usr/bin/memcached",
        Duration::from_secs(10),
        move |l| {
            let port = l.port;
            let mut a = Vec::new();
            if root {
                a.extend(os(&["-u", "memcache"]));
            }
            a.extend(os(&["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"]));
            a.extend(extra.iter().cloned());
            a
        },
    ))
}

/// `keel cache` (binary at `bin`, from `env!("CARGO_BIN_EXE_keel")`) on a free loopback port,
/// UDP off, plus `extra` flags.
pub fn keel(bin: &Path, extra: &[&str]) -> Result<Server, Error> {
    let extra = os(extra);
    Server::start(ServerSpec::new(
        "keel",
        bin,
        Duration::from_secs(15),
        move |l| {
            let port = l.port;
            let mut a = os(&[
                "cache",
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "0",
            ]);
            a.extend(extra.iter().cloned());
            a
        },
    ))
}

/// Exit status helper: `Some(code)` or the signal rendered, for assertion messages.
pub fn describe_status(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcached_starts_answers_and_is_gone_after_drop() {
        let s = memcached(&[]).expect("start memcached");
        let pid = s.pid();
        let mut c = s.connect().expect("connect");
        c.send(b"set k 5 0 3\r\nabc\r\nget k\r\n").unwrap();
        assert_eq!(c.read_line().unwrap(), b"STORED\r\n");
        assert_eq!(c.read_line().unwrap(), b"VALUE k 5 3\r\n");
        drop(c);
        drop(s);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still exists after drop"
        );
    }

    #[test]
    fn a_server_that_never_gets_ready_fails_with_command_and_log() {
        let err = Server::start(ServerSpec::new(
            "sh",
            "/bin/sh",
            Duration::from_millis(400),
            |l| {
                os(&[
                    "-c",
                    &format!("echo listening-on-{}; exec sleep 30", l.port),
                ])
            },
        ))
        .expect_err("sh never answers `version`");
        assert!(err.message.contains("not ready"), "{err}");
        assert!(
            err.message
                .contains("command: /bin/sh -c echo listening-on-"),
            "{err}"
        );
        assert!(
            err.message.contains("| listening-on-"),
            "log tail missing: {err}"
        );
    }

    #[test]
    fn a_server_that_exits_early_is_reported() {
        let err = Server::start(ServerSpec::new(
            "false",
            "/bin/sh",
            Duration::from_secs(5),
            |_| os(&["-c", "echo boom >&2; exit 3"]),
        ))
        .expect_err("exits at once");
        assert!(err.message.contains("exited before it was ready"), "{err}");
        assert!(err.message.contains("boom"), "{err}");
    }

    #[test]
    fn terminate_reports_exit_status() {
        let mut s = memcached(&[]).expect("start memcached");
        let st = s
            .terminate(Duration::from_secs(10))
            .expect("memcached stops on SIGTERM");
        assert!(st.code().is_some() || st.signal().is_some());
        assert!(!s.is_running());
    }

    #[test]
    fn free_ports_are_distinct() {
        let a: HashSet<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        assert_eq!(a.len(), 50);
    }
}
