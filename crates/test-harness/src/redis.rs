//! Redis servers under test and a tiny RESP client, for keel's Redis differential and client
//! tests.
//!
//! - [`redis_server`]: Debian's `redis-server` 7.0.15 on a free loopback port (it cannot write a
//!   port file, so the port is chosen like [`crate::server::free_port`] does and the start is
//!   retried on another port when the bind fails), no persistence, optional `requirepass`.
//! - [`keel_redis`]: `keel cache -p 0 --port-file F1 --redis-port 0 --redis-port-file F2`, the
//!   Redis port read back from the port file.
//!
//! Each gets its own temp dir, its own process group and a log file; readiness is a real `PING`
//! answered `+PONG` (or `-NOAUTH` when a password is set) within a deadline; on drop the whole
//! group is SIGKILLed and reaped. Nothing here signals a process it did not start.
//!
//! [`RespClient`] sends raw bytes and reads exactly one reply at a time: [`frame`] parses RESP2 and
//! RESP3 framing (nested aggregates included; attributes and streamed strings are not supported)
//! to know where a reply ends. [`Resp`] is the parsed form, with the normalisations the
//! differential test needs (sorting unordered elements, reducing random replies to their shape).

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::server::{file_tail, free_port, Error};

/// Default read/write timeout of a [`RespClient`].
pub const RESP_TIMEOUT: Duration = Duration::from_secs(10);

/// Options shared by both kinds of Redis server.
#[derive(Clone, Debug, Default)]
pub struct RedisOpts {
    /// `requirepass` (redis-server) / `--redis-password-file` (keel).
    pub password: Option<String>,
    /// `maxmemory` in bytes (redis-server `--maxmemory`, keel `--redis-maxmemory`).
    pub maxmemory: Option<u64>,
    /// `maxmemory-policy` (redis-server `--maxmemory-policy`, keel `--redis-maxmemory-policy`).
    pub policy: Option<String>,
    /// Extra arguments appended to the command line as they are.
    pub extra: Vec<String>,
}

impl RedisOpts {
    /// Options with a password.
    pub fn with_password(pw: &str) -> RedisOpts {
        RedisOpts {
            password: Some(pw.to_string()),
            ..RedisOpts::default()
        }
    }
}

/// A running Redis-protocol server (redis-server or keel); killed with its group on drop.
pub struct RedisServer {
    name: String,
    command_line: String,
    child: Child,
    port: u16,
    memcached_port: Option<u16>,
    password: Option<String>,
    dir: PathBuf,
    log_path: PathBuf,
    reaped: Option<ExitStatus>,
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

fn make_temp_dir(name: &str) -> io::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "keel-test-{name}-{}-{}-{nanos}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn err(message: String) -> Error {
    Error { message }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    | {l}\n")).collect()
}

/// Spawn `program args` in `dir`, in its own process group, environment cleared, output to
/// `dir/server.log`.
fn spawn(
    name: &str,
    program: &Path,
    args: &[OsString],
    dir: &Path,
    port: u16,
    password: Option<String>,
) -> Result<RedisServer, Error> {
    let log_path = dir.join("server.log");
    let log = File::create(&log_path).map_err(|e| err(format!("{name}: log file: {e}")))?;
    let log2 = log
        .try_clone()
        .map_err(|e| err(format!("{name}: dup log fd: {e}")))?;
    let command_line = std::iter::once(program.as_os_str())
        .chain(args.iter().map(|a| a.as_os_str()))
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", dir)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .process_group(0)
        .spawn()
        .map_err(|e| err(format!("{name}: cannot spawn `{command_line}`: {e}")))?;
    Ok(RedisServer {
        name: name.to_string(),
        command_line,
        child,
        port,
        memcached_port: None,
        password,
        dir: dir.to_path_buf(),
        log_path,
        reaped: None,
    })
}

/// One `PING`: `Ok(true)` on `+PONG` (or `-NOAUTH` when `auth_expected`).
fn ping_check(addr: SocketAddr, auth_expected: bool) -> io::Result<bool> {
    let mut c = RespClient::connect_timeout(addr, Duration::from_millis(500))?;
    c.send(b"*1\r\n$4\r\nPING\r\n")?;
    let r = c.read_reply()?;
    Ok(r == b"+PONG\r\n" || (auth_expected && r.starts_with(b"-NOAUTH")))
}

/// Why a start attempt failed, and whether another port may help.
enum StartFail {
    Retry(Error),
    Fatal(Error),
}

impl RedisServer {
    /// Poll until the server answers PING, it exits or `timeout` passes. `port_file`: read the
    /// Redis port from this file first (keel).
    fn await_ready(
        &mut self,
        timeout: Duration,
        port_file: Option<&Path>,
        mc_port_file: Option<&Path>,
    ) -> Result<(), StartFail> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("not probed yet");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.reaped = Some(status);
                let log = file_tail(&self.log_path, 4000);
                let e = self.failure(&format!("exited before it was ready: {status}"));
                return Err(if log.contains("in use") || log.contains("AddrInUse") {
                    StartFail::Retry(e)
                } else {
                    StartFail::Fatal(e)
                });
            }
            let mut have_port = true;
            if let Some(f) = port_file {
                match read_port_file(f) {
                    Some(p) => self.port = p,
                    None => {
                        have_port = false;
                        last = format!("no port in {} yet", f.display());
                    }
                }
            }
            if let Some(f) = mc_port_file {
                self.memcached_port = read_port_file(f);
            }
            if have_port {
                match ping_check(self.addr(), self.password.is_some()) {
                    Ok(true) => return Ok(()),
                    Ok(false) => last = "PING was not answered +PONG / -NOAUTH".into(),
                    Err(e) => last = format!("PING: {e}"),
                }
            }
            if Instant::now() >= deadline {
                return Err(StartFail::Fatal(self.failure(&format!(
                    "not ready after {timeout:?} (last probe: {last})"
                ))));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An error describing this server: what failed, its command, its dir and its log tail.
    pub fn failure(&self, what: &str) -> Error {
        err(format!(
            "{} (pid {}): {what}\n  command: {}\n  dir: {}\n  log tail:\n{}",
            self.name,
            self.child.id(),
            self.command_line,
            self.dir.display(),
            indent(&file_tail(&self.log_path, 3000))
        ))
    }

    /// `redis-server` or `keel`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The Redis-protocol port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The Redis-protocol address (loopback).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
    /// keel's memcached port (None for redis-server).
    pub fn memcached_port(&self) -> Option<u16> {
        self.memcached_port
    }
    /// The password the server requires, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
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
    /// A new connection (not authenticated).
    pub fn connect(&self) -> io::Result<RespClient> {
        RespClient::connect(self.addr())
    }
    /// A new connection, authenticated with `AUTH pw` when the server has a password.
    pub fn connect_auth(&self) -> io::Result<RespClient> {
        let mut c = self.connect()?;
        if let Some(pw) = &self.password {
            let r = c.cmd(&[b"AUTH", pw.as_bytes()])?;
            if r != b"+OK\r\n" {
                return Err(io::Error::other(format!(
                    "AUTH answered {}",
                    crate::show(&r)
                )));
            }
        }
        Ok(c)
    }
    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.reaped.is_none() && matches!(self.child.try_wait(), Ok(None))
    }
    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            // Our unreaped child pins the group id, so the group is still ours.
            let _ =
                nix::sys::signal::killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
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

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RedisServer({} pid {} on {})",
            self.name,
            self.child.id(),
            self.addr()
        )
    }
}

fn read_port_file(f: &Path) -> Option<u16> {
    let s = fs::read_to_string(f).ok()?;
    s.trim().parse::<u16>().ok().filter(|p| *p != 0)
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

/// Debian's `redis-server` on a free loopback port: no persistence, no daemon, plus `opts`.
pub fn redis_server(opts: &RedisOpts) -> Result<RedisServer, Error> {
    let mut last = None;
    for _attempt in 0..4 {
        let port = free_port().map_err(|e| err(format!("redis-server: no free port: {e}")))?;
        let dir = make_temp_dir("redis-server")
            .map_err(|e| err(format!("redis-server: temp dir: {e}")))?;
        let mut args = os(&[
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]);
        args.push("--dir".into());
        args.push(dir.clone().into_os_string());
        if let Some(pw) = &opts.password {
            args.extend(os(&["--requirepass", pw]));
        }
        if let Some(m) = opts.maxmemory {
            args.extend(os(&["--maxmemory", &m.to_string()]));
        }
        if let Some(p) = &opts.policy {
            args.extend(os(&["--maxmemory-policy", p]));
        }
        args.extend(opts.extra.iter().map(OsString::from));
        let mut s = spawn(
            "redis-server",
            Path::new("/usr/bin/redis-server"),
            &args,
            &dir,
            port,
            opts.password.clone(),
        )?;
        match s.await_ready(Duration::from_secs(10), None, None) {
            Ok(()) => return Ok(s),
            Err(StartFail::Retry(e)) => last = Some(e),
            Err(StartFail::Fatal(e)) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| err("redis-server: no attempt made".into())))
}

/// `keel cache` (binary `bin`) with the Redis protocol on a port it picks itself
/// (`--redis-port 0 --redis-port-file`), memcached on `-p 0 --port-file`, plus `opts`.
pub fn keel_redis(bin: &Path, opts: &RedisOpts) -> Result<RedisServer, Error> {
    let dir = make_temp_dir("keel-redis").map_err(|e| err(format!("keel: temp dir: {e}")))?;
    let mc_file = dir.join("memcached.port");
    let redis_file = dir.join("redis.port");
    let mut args = os(&["cache", "-l", "127.0.0.1", "-U", "0", "-p", "0"]);
    args.push("--port-file".into());
    args.push(mc_file.clone().into_os_string());
    args.extend(os(&["--redis-port", "0"]));
    args.push("--redis-port-file".into());
    args.push(redis_file.clone().into_os_string());
    if let Some(pw) = &opts.password {
        let f = dir.join("redis.password");
        fs::write(&f, format!("{pw}\n")).map_err(|e| err(format!("keel: password file: {e}")))?;
        args.push("--redis-password-file".into());
        args.push(f.into_os_string());
    }
    if let Some(m) = opts.maxmemory {
        args.extend(os(&["--redis-maxmemory", &m.to_string()]));
    }
    if let Some(p) = &opts.policy {
        args.extend(os(&["--redis-maxmemory-policy", p]));
    }
    args.extend(opts.extra.iter().map(OsString::from));
    let mut s = spawn("keel", bin, &args, &dir, 0, opts.password.clone())?;
    match s.await_ready(Duration::from_secs(15), Some(&redis_file), Some(&mc_file)) {
        Ok(()) => Ok(s),
        Err(StartFail::Retry(e)) | Err(StartFail::Fatal(e)) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// RESP framing and values
// ---------------------------------------------------------------------------------------------

/// Largest bulk this client accepts (Redis's default `proto-max-bulk-len`).
const MAX_BULK: usize = 512 << 20;
/// Deepest nesting this client accepts.
const MAX_DEPTH: usize = 64;

/// One parsed RESP2/RESP3 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    /// A line type (`+ - : _ # , (`) and its text.
    Line(u8, Vec<u8>),
    /// A length-prefixed type (`$ ! =`); `None` is the RESP2 null bulk (`$-1`).
    Blob(u8, Option<Vec<u8>>),
    /// An aggregate (`* ~ > %`); maps (`%`) hold keys and values alternately; `None` is `*-1`.
    Agg(u8, Option<Vec<Resp>>),
}

/// Where a reply cannot be framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad RESP: {}", self.0)
    }
}

impl std::error::Error for FrameError {}

/// Parse one reply at the start of `buf`: `Ok(Some((reply, bytes used)))`, `Ok(None)` if `buf`
/// holds only part of it, `Err` if the bytes are not RESP.
pub fn frame(buf: &[u8]) -> Result<Option<(Resp, usize)>, FrameError> {
    parse_at(buf, 0, 0)
}

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

fn parse_len(text: &[u8]) -> Result<i64, FrameError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| FrameError(format!("bad length {:?}", String::from_utf8_lossy(text))))
}

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Resp, usize)>, FrameError> {
    if depth > MAX_DEPTH {
        return Err(FrameError("nested too deep".into()));
    }
    let Some(&t) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(end) = line_end(buf, pos + 1) else {
        if buf.len() - pos > 64 * 1024 && !matches!(t, b'+' | b'-') {
            return Err(FrameError("header line too long".into()));
        }
        return Ok(None);
    };
    let head = &buf[pos + 1..end];
    let next = end + 2;
    match t {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => {
            Ok(Some((Resp::Line(t, head.to_vec()), next - pos)))
        }
        b'$' | b'!' | b'=' => {
            let n = parse_len(head)?;
            if n == -1 && t == b'$' {
                return Ok(Some((Resp::Blob(t, None), next - pos)));
            }
            let n = usize::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_BULK)
                .ok_or_else(|| FrameError(format!("bad bulk length {n}")))?;
            if buf.len() < next + n + 2 {
                return Ok(None);
            }
            if &buf[next + n..next + n + 2] != b"\r\n" {
                return Err(FrameError("bulk not followed by CRLF".into()));
            }
            Ok(Some((
                Resp::Blob(t, Some(buf[next..next + n].to_vec())),
                next + n + 2 - pos,
            )))
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = parse_len(head)?;
            if n == -1 && t == b'*' {
                return Ok(Some((Resp::Agg(t, None), next - pos)));
            }
            let n = usize::try_from(n)
                .ok()
                .filter(|n| *n <= 1 << 24)
                .ok_or_else(|| FrameError(format!("bad aggregate length {n}")))?;
            let count = if t == b'%' { n * 2 } else { n };
            let mut items = Vec::with_capacity(count.min(1024));
            let mut at = next;
            for _ in 0..count {
                match parse_at(buf, at, depth + 1)? {
                    None => return Ok(None),
                    Some((r, used)) => {
                        items.push(r);
                        at += used;
                    }
                }
            }
            Ok(Some((Resp::Agg(t, Some(items)), at - pos)))
        }
        b'|' => Err(FrameError("attributes are not supported".into())),
        other => Err(FrameError(format!("unknown type byte {:?}", other as char))),
    }
}

impl Resp {
    /// The wire bytes of this reply.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Resp::Line(t, s) => {
                out.push(*t);
                out.extend_from_slice(s);
                out.extend_from_slice(b"\r\n");
            }
            Resp::Blob(t, None) => {
                out.push(*t);
                out.extend_from_slice(b"-1\r\n");
            }
            Resp::Blob(t, Some(b)) => {
                out.push(*t);
                out.extend_from_slice(format!("{}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Resp::Agg(t, None) => {
                out.push(*t);
                out.extend_from_slice(b"-1\r\n");
            }
            Resp::Agg(t, Some(items)) => {
                let n = if *t == b'%' {
                    items.len() / 2
                } else {
                    items.len()
                };
                out.push(*t);
                out.extend_from_slice(format!("{n}\r\n").as_bytes());
                for i in items {
                    i.encode_into(out);
                }
            }
        }
    }

    /// The same reply with the elements of every aggregate sorted (by their encoding), map
    /// entries sorted as pairs: for replies whose order Redis does not define.
    pub fn sorted(&self) -> Resp {
        match self {
            Resp::Agg(t, Some(items)) => {
                let items: Vec<Resp> = items.iter().map(Resp::sorted).collect();
                if *t == b'%' {
                    Resp::Agg(*t, Some(sort_pairs(items)))
                } else {
                    let mut v: Vec<(Vec<u8>, Resp)> =
                        items.into_iter().map(|r| (r.encode(), r)).collect();
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                    Resp::Agg(*t, Some(v.into_iter().map(|(_, r)| r).collect()))
                }
            }
            other => other.clone(),
        }
    }

    /// A flat array of key/value pairs (`HGETALL` in RESP2) with its pairs sorted; maps too.
    pub fn sorted_pairs(&self) -> Resp {
        match self {
            Resp::Agg(t, Some(items)) if items.len() % 2 == 0 => {
                Resp::Agg(*t, Some(sort_pairs(items.clone())))
            }
            other => other.clone(),
        }
    }

    /// The reply reduced to its shape: types and element counts, map keys and errors kept
    /// verbatim, every other value replaced by its type: for random or time-dependent replies.
    pub fn shape(&self) -> Resp {
        match self {
            Resp::Line(b'-', _) => self.clone(),
            Resp::Line(t, _) => Resp::Line(*t, b"?".to_vec()),
            Resp::Blob(t, None) => Resp::Blob(*t, None),
            Resp::Blob(t, Some(_)) => Resp::Blob(*t, Some(b"?".to_vec())),
            Resp::Agg(t, None) => Resp::Agg(*t, None),
            Resp::Agg(t, Some(items)) => {
                let items = if *t == b'%' {
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, r)| if i % 2 == 0 { r.clone() } else { r.shape() })
                        .collect()
                } else {
                    items.iter().map(Resp::shape).collect()
                };
                Resp::Agg(*t, Some(items))
            }
        }
    }
}

fn sort_pairs(items: Vec<Resp>) -> Vec<Resp> {
    let mut pairs: Vec<(Vec<u8>, Resp, Resp)> = Vec::new();
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let mut key = k.encode();
        key.extend(v.encode());
        pairs.push((key, k, v));
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.into_iter().flat_map(|(_, k, v)| [k, v]).collect()
}

/// A command as a RESP multibulk.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// What waiting for the server to close a connection observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseCheck {
    /// EOF (or a reset) and nothing else.
    Closed,
    /// Still open when the wait ended.
    Open,
    /// Bytes arrived (then EOF if `closed`).
    Data { bytes: Vec<u8>, closed: bool },
}

/// A blocking RESP connection for tests: raw bytes in, one framed reply out, every read with a
/// timeout.
#[derive(Debug)]
pub struct RespClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RespClient {
    /// Connect with [`RESP_TIMEOUT`] I/O timeouts.
    pub fn connect(addr: SocketAddr) -> io::Result<RespClient> {
        Self::connect_timeout(addr, RESP_TIMEOUT)
    }

    /// Connect with `timeout` as connect, read and write timeout.
    pub fn connect_timeout(addr: SocketAddr, timeout: Duration) -> io::Result<RespClient> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RespClient {
            stream,
            buf: Vec::new(),
        })
    }

    /// Change the read timeout.
    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }

    /// Write all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Read exactly one complete reply and return its bytes. EOF, a timeout or bytes that are
    /// not RESP are errors that show what was read.
    pub fn read_reply(&mut self) -> io::Result<Vec<u8>> {
        Ok(self.read_resp()?.1)
    }

    /// Read one reply: parsed and raw.
    pub fn read_resp(&mut self) -> io::Result<(Resp, Vec<u8>)> {
        loop {
            match frame(&self.buf) {
                Ok(Some((r, n))) => {
                    let raw: Vec<u8> = self.buf.drain(..n).collect();
                    return Ok((r, raw));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{e}; read: {}", crate::show(&self.buf)),
                    ))
                }
            }
            match self.fill() {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed before a full reply; read: {}",
                            crate::show(&self.buf)
                        ),
                    ))
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "{e} while waiting for a reply; read so far: {}",
                            crate::show(&self.buf)
                        ),
                    ))
                }
            }
        }
    }

    /// Send a command (as a multibulk) and read its reply.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Vec<u8>> {
        self.send(&encode_command(args))?;
        self.read_reply()
    }

    /// `cmd` from a space-separated string (no quoting): for short test commands.
    pub fn cmd_str(&mut self, line: &str) -> io::Result<Vec<u8>> {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.cmd(&args)
    }

    /// Wait up to `wait` for the server to close the connection.
    pub fn check_closed(&mut self, wait: Duration) -> io::Result<CloseCheck> {
        let old = self.stream.read_timeout()?;
        self.stream.set_read_timeout(Some(wait))?;
        let deadline = Instant::now() + wait;
        let result = loop {
            match self.fill() {
                Ok(0) => break Ok(()),
                Ok(_) => {
                    if Instant::now() >= deadline {
                        break Err(None);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    ) =>
                {
                    break Ok(())
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break Err(None)
                }
                Err(e) => break Err(Some(e)),
            }
        };
        self.stream.set_read_timeout(old)?;
        let bytes = std::mem::take(&mut self.buf);
        match result {
            Ok(()) if bytes.is_empty() => Ok(CloseCheck::Closed),
            Ok(()) => Ok(CloseCheck::Data {
                bytes,
                closed: true,
            }),
            Err(None) if bytes.is_empty() => Ok(CloseCheck::Open),
            Err(None) => Ok(CloseCheck::Data {
                bytes,
                closed: false,
            }),
            Err(Some(e)) => Err(e),
        }
    }

    /// Bytes received but not yet returned as a reply.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_nested_resp3_and_partial_input() {
        let msg = b"%2\r\n+a\r\n*2\r\n:1\r\n$3\r\nx\r\n\r\n~1\r\n_\r\n,1.5\r\n+tail";
        let (r, n) = frame(msg).unwrap().unwrap();
        assert_eq!(&msg[n..], b"+tail");
        assert_eq!(r.encode(), &msg[..n]);
        for cut in 0..n {
            assert_eq!(frame(&msg[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(frame(b"*-1\r\n").unwrap(), Some((Resp::Agg(b'*', None), 5)));
        assert!(frame(b"?x\r\n").is_err());
        assert!(frame(b"$99999999999\r\n").is_err());
    }

    #[test]
    fn sort_and_shape() {
        let (r, _) = frame(b"*3\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nb\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            r.sorted().encode(),
            b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        assert_eq!(
            r.shape().encode(),
            b"*3\r\n$1\r\n?\r\n$1\r\n?\r\n$1\r\n?\r\n"
        );
        let (m, _) = frame(b"%2\r\n$1\r\nz\r\n:1\r\n$1\r\ny\r\n:2\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            m.sorted().encode(),
            b"%2\r\n$1\r\ny\r\n:2\r\n$1\r\nz\r\n:1\r\n"
        );
        assert_eq!(
            m.shape().encode(),
            b"%2\r\n$1\r\nz\r\n:?\r\n$1\r\ny\r\n:?\r\n"
        );
        let e = Resp::Line(b'-', b"ERR x".to_vec());
        assert_eq!(e.shape(), e);
    }

    #[test]
    fn redis_server_starts_answers_and_is_gone_after_drop() {
        let s = redis_server(&RedisOpts::default()).expect("start redis-server");
        let pid = s.pid();
        let mut c = s.connect().unwrap();
        assert_eq!(c.cmd(&["SET", "k", "v"]).unwrap(), b"+OK\r\n");
        assert_eq!(c.cmd(&["GET", "k"]).unwrap(), b"$1\r\nv\r\n");
        c.send(b"*1\r\n$4\r\nQUIT\r\n").unwrap();
        assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
        assert_eq!(
            c.check_closed(Duration::from_secs(2)).unwrap(),
            CloseCheck::Closed
        );
        drop(s);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    /// `keel_redis`'s start path (port files, password file, PING readiness, kill on drop),
    /// exercised with a stand-in for keel: a shell script that takes keel's flags and runs
    /// redis-server on a free port, writing the port file before it listens.
    #[test]
    fn keel_redis_start_path_works_with_a_stand_in() {
        let dir = make_temp_dir("fake-keel").unwrap();
        let script = dir.join("fake-keel");
        fs::write(
            &script,
            r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    --redis-port-file) RF=$2; shift ;;
    --port-file) MF=$2; shift ;;
    --redis-password-file) PW=$(cat "$2"); shift ;;
  esac
  shift
done
P=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo 11211 > "$MF"
echo "$P" > "$RF"
if [ -n "$PW" ]; then set -- --requirepass "$PW"; fi
exec /usr/bin/redis-server --port "$P" --bind 127.0.0.1 --save "" --appendonly no "$@"
"#,
        )
        .unwrap();
        let mut perm = fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        fs::set_permissions(&script, perm).unwrap();
        let s = keel_redis(&script, &RedisOpts::with_password("pw")).expect("stand-in starts");
        assert_eq!(s.memcached_port(), Some(11211));
        assert!(s.command_line().contains("--redis-password-file"));
        let pid = s.pid();
        let mut c = s.connect_auth().unwrap();
        assert_eq!(c.cmd(&["ECHO", "x"]).unwrap(), b"$1\r\nx\r\n");
        drop(c);
        drop(s);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn redis_server_with_password_is_ready_and_wants_auth() {
        let s = redis_server(&RedisOpts::with_password("s3cret")).expect("start");
        let mut c = s.connect().unwrap();
        assert!(c.cmd(&["GET", "k"]).unwrap().starts_with(b"-NOAUTH"));
        let mut c = s.connect_auth().unwrap();
        assert_eq!(c.cmd(&["PING"]).unwrap(), b"+PONG\r\n");
    }
}
