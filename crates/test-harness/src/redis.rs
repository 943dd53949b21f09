//! Redis servers under test and a tiny RESP client, for keel's Redis differential and client
//! tests.
//!
//! - [`redis_server`]: Debian's `redis-server` 7.0.15 on a free loopback port (it cannot write a
//!   port file, so the harness chooses the port and retries on another one when the bind fails),
//!   no persistence, optional `requirepass`.
//! - [`keel_redis`]: `keel cache -p 0 --port-file F1 --redis-port 0 --redis-port-file F2`, the
//!   Redis port read back from the port file.
//!
//! Both run as a [`Server`] (own temp dir, own process group, a log file, the whole group
//! SIGKILLed and reaped on drop) whose readiness probe is a real `PING` answered `+PONG` (or
//! `-NOAUTH` when a password is set), polled within a deadline. Nothing here signals a process it
//! did not start.
//!
//! [`RespClient`] sends raw bytes and reads exactly one reply at a time: [`frame`] parses RESP2 and
//! RESP3 framing (nested aggregates included; attributes and streamed strings are not supported)
//! to know where a reply ends. [`Resp`] is the parsed form, with the normalisations the
//! differential test needs (sorting unordered elements, reducing random replies to their shape).

use std::ffi::OsString;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::client::Wire;
use crate::server::{read_port_file, Error, PortSource, Probe, Server, ServerSpec};

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
    server: Server,
    /// keel's memcached port file (None for redis-server).
    memcached_port_file: Option<std::path::PathBuf>,
    password: Option<String>,
}

/// One `PING`: `Ok(true)` on `+PONG` (or `-NOAUTH` when `auth_expected`).
pub fn ping_check(addr: SocketAddr, auth_expected: bool) -> io::Result<bool> {
    let mut c = RespClient::connect_timeout(addr, Duration::from_millis(500))?;
    c.send(b"*1\r\n$4\r\nPING\r\n")?;
    let r = c.read_reply()?;
    Ok(r == b"+PONG\r\n" || (auth_expected && r.starts_with(b"-NOAUTH")))
}

/// The readiness probe of a Redis server: [`ping_check`].
pub fn ping_probe(auth_expected: bool) -> Probe {
    Box::new(move |addr| ping_check(addr, auth_expected))
}

impl RedisServer {
    /// An error describing this server: what failed, its command, its dir and its log tail.
    pub fn failure(&self, what: &str) -> Error {
        self.server.failure(what)
    }

    /// `redis-server` or `keel`.
    pub fn name(&self) -> &str {
        self.server.name()
    }
    /// The Redis-protocol port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }
    /// The Redis-protocol address (loopback).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
    /// keel's memcached port (None for redis-server).
    pub fn memcached_port(&self) -> Option<u16> {
        self.memcached_port_file.as_deref().and_then(read_port_file)
    }
    /// The password the server requires, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }
    pub fn dir(&self) -> &Path {
        self.server.dir()
    }
    pub fn command_line(&self) -> &str {
        self.server.command_line()
    }
    /// The last `max` bytes of the server's stdout+stderr.
    pub fn log_tail(&self, max: usize) -> String {
        self.server.log_tail(max)
    }
    /// The process under test.
    pub fn server(&self) -> &Server {
        &self.server
    }
    /// A new connection (not authenticated).
    pub fn connect(&self) -> io::Result<RespClient> {
        RespClient::connect(self.addr())
    }
    /// A new connection, authenticated with `AUTH pw` when the server has a password.
    pub fn connect_auth(&self) -> io::Result<RespClient> {
        RespClient::connect_auth(self.addr(), self.password.as_deref())
    }
    /// True while the process has not exited.
    pub fn is_running(&self) -> bool {
        self.server.is_running()
    }
    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        self.server.rss_kib()
    }
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RedisServer({} pid {} on {})",
            self.name(),
            self.pid(),
            self.addr()
        )
    }
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

/// Debian's `redis-server` on a free loopback port: no persistence, no daemon, plus `opts`.
pub fn redis_server(opts: &RedisOpts) -> Result<RedisServer, Error> {
    let o = opts.clone();
    let mut spec = ServerSpec::new(
        "redis-server",
        "/usr/bin/redis-server",
        Duration::from_secs(10),
        move |l| {
            let mut args = os(&[
                "--port",
                &l.port.to_string(),
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
            args.push(l.dir.as_os_str().to_os_string());
            if let Some(pw) = &o.password {
                args.extend(os(&["--requirepass", pw]));
            }
            if let Some(m) = o.maxmemory {
                args.extend(os(&["--maxmemory", &m.to_string()]));
            }
            if let Some(p) = &o.policy {
                args.extend(os(&["--maxmemory-policy", p]));
            }
            args.extend(o.extra.iter().map(OsString::from));
            args
        },
    );
    spec.probe = ping_probe(opts.password.is_some());
    Ok(RedisServer {
        server: Server::start(spec)?,
        memcached_port_file: None,
        password: opts.password.clone(),
    })
}

/// `keel cache` (binary `bin`) with the Redis protocol on a port it picks itself
/// (`--redis-port 0 --redis-port-file`), memcached on `-p 0 --port-file`, plus `opts`.
pub fn keel_redis(bin: &Path, opts: &RedisOpts) -> Result<RedisServer, Error> {
    let o = opts.clone();
    let mut spec = ServerSpec::new("keel-redis", bin, Duration::from_secs(15), move |l| {
        let mut args = os(&["cache", "-l", "127.0.0.1", "-U", "0", "-p", "0"]);
        args.push("--port-file".into());
        args.push(l.dir.join("memcached.port").into_os_string());
        args.extend(os(&["--redis-port", "0"]));
        args.push("--redis-port-file".into());
        args.push(l.dir.join("redis.port").into_os_string());
        if o.password.is_some() {
            args.push("--redis-password-file".into());
            args.push(l.dir.join("redis.password").into_os_string());
        }
        if let Some(m) = o.maxmemory {
            args.extend(os(&["--redis-maxmemory", &m.to_string()]));
        }
        if let Some(p) = &o.policy {
            args.extend(os(&["--redis-maxmemory-policy", p]));
        }
        args.extend(o.extra.iter().map(OsString::from));
        args
    });
    spec.port = PortSource::File("redis.port".into());
    spec.probe = ping_probe(opts.password.is_some());
    if let Some(pw) = &opts.password {
        spec.files
            .push(("redis.password".into(), format!("{pw}\n").into_bytes()));
    }
    let server = Server::start(spec)?;
    Ok(RedisServer {
        memcached_port_file: Some(server.dir().join("memcached.port")),
        server,
        password: opts.password.clone(),
    })
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
    wire: Wire,
}

impl RespClient {
    /// Connect with [`RESP_TIMEOUT`] I/O timeouts.
    pub fn connect(addr: SocketAddr) -> io::Result<RespClient> {
        Self::connect_timeout(addr, RESP_TIMEOUT)
    }

    /// Connect with `timeout` as connect, read and write timeout.
    pub fn connect_timeout(addr: SocketAddr, timeout: Duration) -> io::Result<RespClient> {
        Ok(RespClient {
            wire: Wire::connect(addr, timeout)?,
        })
    }

    /// Connect and, when `password` is set, `AUTH` with it (an error unless it answers `+OK`).
    pub fn connect_auth(addr: SocketAddr, password: Option<&str>) -> io::Result<RespClient> {
        let mut c = Self::connect(addr)?;
        if let Some(pw) = password {
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

    /// Change the read timeout.
    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.wire.stream.set_read_timeout(Some(t))
    }

    /// Write all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wire.stream.write_all(bytes)
    }

    fn fill(&mut self) -> io::Result<usize> {
        self.wire.fill()
    }

    /// Read exactly one complete reply and return its bytes. EOF, a timeout or bytes that are
    /// not RESP are errors that show what was read.
    pub fn read_reply(&mut self) -> io::Result<Vec<u8>> {
        Ok(self.read_resp()?.1)
    }

    /// Read one reply: parsed and raw.
    pub fn read_resp(&mut self) -> io::Result<(Resp, Vec<u8>)> {
        loop {
            match frame(&self.wire.buf) {
                Ok(Some((r, n))) => {
                    let raw: Vec<u8> = self.wire.buf.drain(..n).collect();
                    return Ok((r, raw));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{e}; read: {}", crate::show(&self.wire.buf)),
                    ))
                }
            }
            match self.fill() {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed before a full reply; read: {}",
                            crate::show(&self.wire.buf)
                        ),
                    ))
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "{e} while waiting for a reply; read so far: {}",
                            crate::show(&self.wire.buf)
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
        let old = self.wire.stream.read_timeout()?;
        self.wire.stream.set_read_timeout(Some(wait))?;
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
        self.wire.stream.set_read_timeout(old)?;
        let bytes = std::mem::take(&mut self.wire.buf);
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
        &self.wire.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::make_temp_dir;
    use std::fs;

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
