//! Differential test of keel's Redis protocol: the scripts in `tests/redis/scripts/*.txt` run
//! against Debian's redis-server 7.0.15 (the reference) and against keel, step by step on fresh
//! connections, and every reply must be equal byte for byte (after the normalisation the step
//! asks for). The first difference fails the test with the script, the line and both replies.
//! Each script also runs redis-server against redis-server (`redis_vs_redis`): that proves the
//! script is deterministic, so a keel mismatch is keel's.
//!
//! # Script format
//!
//! One step per line; blank lines and lines starting with `#` are ignored.
//!
//! ```text
//! [@conn] [:flag ...] body
//! ```
//!
//! - `@conn` names the connection (default `a`); each is opened on first use, unauthenticated.
//! - body: a command with redis-cli quoting (`"..."` with `\n \r \t \xHH \" \\` escapes, `'...'`),
//!   sent as a RESP multibulk; one reply is read.
//! - `:raw` the body's (quoted) tokens are concatenated and sent as they are (protocol errors,
//!   hand-made pipelines); `:inline` the rest of the line is sent verbatim plus `\r\n`.
//! - `:n=K` read K replies (pipelines, SUBSCRIBE to K channels); `:send` read none;
//!   `:recv` send nothing and read one (the reply to an earlier `:send`, a pushed message);
//!   `:x=K` send the body K times in one write and read K replies.
//! - `:eof` after the replies the server must close the connection (both agree: closed / open).
//! - `:sort` sort the elements of every aggregate (unordered replies: KEYS, SMEMBERS, SUNION...);
//!   `:pairs` sort a flat key/value array (HGETALL in RESP2) by pairs;
//!   `:shape` compare only the shape (types, counts, map keys, error texts): random or
//!   time-dependent replies (RANDOMKEY, SPOP, TIME, INFO, CLIENT ID...);
//!   `:mask=I,J` only elements I, J of the top-level aggregate by shape (flat indices; HELLO's
//!   version and id are `:mask=3,7`);
//!   `:subs` `COMMAND INFO`/`COMMAND DOCS` with each container's subcommands sorted by name
//!   (redis-server lists them in the order of a hash table with a random seed);
//!   `:subs=a|b,a|c` the same, keeping only those subcommands (keel implements a subset).
//!
//! Directives:
//! - `!password PW` (before any command): both servers require this password.
//! - `!sleep MS`: wait (once, for both servers): for expiry, never to order clients.
//! - `!blocked N`: wait until the server reports `blocked_clients:N` in `INFO clients` (a
//!   client sent a blocking command and is now blocked), on each side, with a deadline.
//! - `!close CONN`: drop that connection; its next use opens a fresh one.
//! - `!fill CONN PREFIX SIZE MAX`: `SET PREFIX:i <SIZE bytes>` in pipelined batches until a reply
//!   is not `+OK` (at most MAX keys); only that first other reply is compared (OOM tests: the
//!   number of keys that fit differs).
//!
//! `KEEL_REDIS_DIFF_TRACE=1` prints every step with the reference's replies (to write scripts).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use test_harness::redis::{encode_command, CloseCheck, RespClient};
use test_harness::{show, RedisOpts, RedisServer, Resp};

use super::{start_keel_redis, start_redis_server};
use crate::repo_root;

/// How a reply is normalised before comparing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Norm {
    Exact,
    Sort,
    Pairs,
    Shape,
    /// Replace these elements of the top-level aggregate (flat index; a map's key k is 2k, its
    /// value 2k+1) by their shape, compare the rest exactly.
    Mask(&'static [usize]),
    /// `COMMAND INFO`/`COMMAND DOCS`: each container's subcommands sorted by name, only the
    /// listed ones if there is a list; the rest exact.
    Subs(Option<&'static [String]>),
}

#[derive(Clone, Debug)]
enum Step {
    Cmd {
        conn: String,
        send: Vec<u8>,
        replies: usize,
        norm: Norm,
        eof: bool,
    },
    Sleep(u64),
    Blocked(u64),
    Close(String),
    Fill {
        conn: String,
        prefix: String,
        size: usize,
        max: usize,
    },
}

#[derive(Debug)]
struct Line {
    no: usize,
    text: String,
    step: Step,
}

#[derive(Debug)]
struct Script {
    password: Option<String>,
    lines: Vec<Line>,
}

/// Split like redis-cli (`sdssplitargs`): whitespace-separated, `"..."` with escapes, `'...'`.
fn split_args(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Ok(out);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= b.len() {
                    return Err("unbalanced double quote".into());
                }
                if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).map_err(|e| e.to_string())?;
                    let v = u8::from_str_radix(hex, 16).map_err(|_| format!("bad \\x{hex}"))?;
                    cur.push(v);
                    i += 4;
                } else if b[i] == b'\\' && i + 1 < b.len() {
                    cur.push(match b[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                    i += 2;
                } else if b[i] == b'"' {
                    if i + 1 < b.len() && !b[i + 1].is_ascii_whitespace() {
                        return Err("closing quote must be followed by a space".into());
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(b[i]);
                    i += 1;
                }
            } else if in_sq {
                if i >= b.len() {
                    return Err("unbalanced single quote".into());
                }
                if b[i] == b'\\' && i + 1 < b.len() && b[i + 1] == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                } else if b[i] == b'\'' {
                    if i + 1 < b.len() && !b[i + 1].is_ascii_whitespace() {
                        return Err("closing quote must be followed by a space".into());
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(b[i]);
                    i += 1;
                }
            } else if i >= b.len() || b[i].is_ascii_whitespace() {
                break;
            } else if b[i] == b'"' {
                in_dq = true;
                i += 1;
            } else if b[i] == b'\'' {
                in_sq = true;
                i += 1;
            } else {
                cur.push(b[i]);
                i += 1;
            }
        }
        out.push(cur);
    }
}

/// Split off the first whitespace-separated word.
fn first_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn parse_line(text: &str) -> Result<Option<Step>, String> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    if let Some(d) = t.strip_prefix('!') {
        let words: Vec<&str> = d.split_whitespace().collect();
        return match words.as_slice() {
            ["sleep", ms] => Ok(Some(Step::Sleep(
                ms.parse().map_err(|_| format!("bad sleep {ms:?}"))?,
            ))),
            ["blocked", n] => Ok(Some(Step::Blocked(
                n.parse().map_err(|_| format!("bad blocked count {n:?}"))?,
            ))),
            ["close", c] => Ok(Some(Step::Close(c.to_string()))),
            ["fill", c, prefix, size, max] => Ok(Some(Step::Fill {
                conn: c.to_string(),
                prefix: prefix.to_string(),
                size: size.parse().map_err(|_| "bad fill size")?,
                max: max.parse().map_err(|_| "bad fill max")?,
            })),
            ["password", _] => Ok(None), // read by parse_script
            _ => Err(format!("unknown directive {t:?}")),
        };
    }
    let mut rest = t;
    let mut conn = "a".to_string();
    let (w, r) = first_word(rest);
    if let Some(c) = w.strip_prefix('@') {
        conn = c.to_string();
        rest = r;
    }
    let (mut norm, mut eof, mut raw, mut inline, mut recv) =
        (Norm::Exact, false, false, false, false);
    let mut replies: Option<usize> = None;
    let mut times = 1usize;
    loop {
        let (w, r) = first_word(rest);
        let Some(flag) = w.strip_prefix(':') else {
            break;
        };
        rest = r;
        match flag {
            "sort" => norm = Norm::Sort,
            "pairs" => norm = Norm::Pairs,
            "shape" => norm = Norm::Shape,
            "subs" => norm = Norm::Subs(None),
            f if f.starts_with("subs=") => {
                let names: Vec<String> = f[5..].split(',').map(str::to_owned).collect();
                // Scripts are parsed once per test: leaking the few names is harmless.
                norm = Norm::Subs(Some(Box::leak(names.into_boxed_slice())));
            }
            "eof" => eof = true,
            "raw" => raw = true,
            "inline" => inline = true,
            "send" => replies = Some(0),
            "recv" => recv = true,
            f if f.starts_with("n=") => {
                replies = Some(f[2..].parse().map_err(|_| format!("bad {f}"))?);
            }
            f if f.starts_with("mask=") => {
                let idx: Result<Vec<usize>, _> = f[5..].split(',').map(str::parse).collect();
                let idx = idx.map_err(|_| format!("bad {f}"))?;
                // Scripts are parsed once per test: leaking the few indices is harmless.
                norm = Norm::Mask(Box::leak(idx.into_boxed_slice()));
            }
            f if f.starts_with("x=") => {
                times = f[2..].parse().map_err(|_| format!("bad {f}"))?;
            }
            f => return Err(format!("unknown flag :{f}")),
        }
    }
    let body = rest.strip_prefix(' ').unwrap_or(rest);
    let one: Vec<u8> = if recv {
        Vec::new()
    } else if inline {
        let mut v = body.as_bytes().to_vec();
        v.extend_from_slice(b"\r\n");
        v
    } else if raw {
        split_args(body)?.concat()
    } else {
        let args = split_args(body)?;
        if args.is_empty() {
            return Err("no command".into());
        }
        encode_command(&args)
    };
    let send = one.repeat(times);
    Ok(Some(Step::Cmd {
        conn,
        send,
        replies: replies.unwrap_or(times),
        norm,
        eof,
    }))
}

fn scripts_dir() -> PathBuf {
    repo_root().join("tests/redis/scripts")
}

fn parse_script(name: &str) -> Script {
    let path = scripts_dir().join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut script = Script {
        password: None,
        lines: Vec::new(),
    };
    for (i, l) in text.lines().enumerate() {
        if let Some(pw) = l.trim().strip_prefix("!password ") {
            assert!(
                script.lines.is_empty(),
                "{name}.txt:{}: !password must come first",
                i + 1
            );
            script.password = Some(pw.trim().to_string());
        }
        match parse_line(l) {
            Ok(Some(step)) => script.lines.push(Line {
                no: i + 1,
                text: l.to_string(),
                step,
            }),
            Ok(None) => {}
            Err(e) => panic!("{name}.txt:{}: {e}: {l:?}", i + 1),
        }
    }
    script
}

/// One server and its named connections.
struct Side {
    server: RedisServer,
    conns: BTreeMap<String, RespClient>,
}

/// Read timeout per reply: generous for a loaded CI machine, short enough that a missing reply
/// fails the script quickly.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

impl Side {
    fn conn(&mut self, name: &str) -> Result<&mut RespClient, String> {
        if !self.conns.contains_key(name) {
            let c = RespClient::connect_timeout(self.server.addr(), REPLY_TIMEOUT)
                .map_err(|e| format!("<connect failed: {e}>"))?;
            self.conns.insert(name.to_string(), c);
        }
        Ok(self.conns.get_mut(name).expect("just inserted"))
    }

    /// Poll `INFO clients` on a connection of its own until `blocked_clients:n`; an observation
    /// only when the deadline passes first.
    fn wait_blocked(&mut self, n: u64) -> Vec<String> {
        let want = format!("blocked_clients:{n}\r\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        while Instant::now() < deadline {
            match self
                .server
                .connect_auth()
                .and_then(|mut c| c.cmd_str("INFO clients"))
            {
                Ok(r) if String::from_utf8_lossy(&r).contains(&want) => return Vec::new(),
                Ok(r) => last = show(&r),
                Err(e) => last = format!("<INFO failed: {e}>"),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        vec![format!("<never {want:?} within 10 s; last INFO: {last}>")]
    }

    /// Run one step; the observations to compare (one string per reply, plus the close check).
    fn run(&mut self, step: &Step) -> Vec<String> {
        match step {
            Step::Sleep(_) => Vec::new(),
            Step::Blocked(n) => self.wait_blocked(*n),
            Step::Close(c) => {
                self.conns.remove(c);
                Vec::new()
            }
            Step::Cmd {
                conn,
                send,
                replies,
                norm,
                eof,
            } => {
                let c = match self.conn(conn) {
                    Ok(c) => c,
                    Err(e) => return vec![e],
                };
                let mut out = Vec::new();
                if !send.is_empty() {
                    if let Err(e) = c.send(send) {
                        out.push(format!("<send failed: {e}>"));
                        return out;
                    }
                }
                for _ in 0..*replies {
                    match c.read_resp() {
                        Ok((r, raw)) => out.push(normalise(&r, &raw, *norm)),
                        Err(e) => {
                            out.push(format!("<no reply: {e}>"));
                            return out;
                        }
                    }
                }
                if *eof {
                    out.push(match c.check_closed(Duration::from_secs(2)) {
                        Ok(CloseCheck::Closed) => "<closed>".into(),
                        Ok(CloseCheck::Open) => "<still open after 2 s>".into(),
                        Ok(CloseCheck::Data { bytes, closed }) => {
                            format!("<extra bytes {} closed={closed}>", show(&bytes))
                        }
                        Err(e) => format!("<error while waiting for close: {e}>"),
                    });
                }
                out
            }
            Step::Fill {
                conn,
                prefix,
                size,
                max,
            } => {
                let c = match self.conn(conn) {
                    Ok(c) => c,
                    Err(e) => return vec![e],
                };
                let value = vec![b'v'; *size];
                let mut i = 0usize;
                while i < *max {
                    let batch = 100.min(max - i);
                    let mut msg = Vec::new();
                    for j in i..i + batch {
                        let key = format!("{prefix}:{j}");
                        msg.extend(encode_command(&[key.as_bytes(), &value]));
                    }
                    if let Err(e) = c.send(&msg) {
                        return vec![format!("<send failed: {e}>")];
                    }
                    let mut first_other = None;
                    for _ in 0..batch {
                        match c.read_reply() {
                            Ok(r) if r == b"+OK\r\n" => {}
                            Ok(r) => {
                                first_other.get_or_insert(r);
                            }
                            Err(e) => return vec![format!("<no reply: {e}>")],
                        }
                    }
                    if let Some(r) = first_other {
                        return vec![show(&r)];
                    }
                    i += batch;
                }
                vec![format!("<no other reply than +OK after {max} SETs>")]
            }
        }
    }
}

/// One `COMMAND INFO` entry or `COMMAND DOCS` map with its subcommands (element 9 of an
/// entry: a list of entries; a docs map's `subcommands`: name, docs pairs) sorted by name and
/// reduced to `keep` if given.
fn container_subs(e: &Resp, keep: Option<&[String]>) -> Resp {
    let wanted = |name: &Resp| match (name, keep) {
        (_, None) => true,
        (Resp::Blob(_, Some(n)), Some(k)) => k.iter().any(|k| k.as_bytes() == n.as_slice()),
        _ => false,
    };
    let Resp::Agg(t, Some(fields)) = e else {
        return e.clone();
    };
    let mut fields = fields.clone();
    let is_info = fields.len() == 10
        && matches!(fields[0], Resp::Blob(..))
        && matches!(fields[1], Resp::Line(b':', _));
    if is_info {
        if let Resp::Agg(st, Some(subs)) = &fields[9] {
            let mut subs: Vec<Resp> = subs
                .iter()
                .filter(|s| matches!(s, Resp::Agg(_, Some(f)) if f.first().is_some_and(wanted)))
                .cloned()
                .collect();
            subs.sort_by_key(|s| s.encode());
            fields[9] = Resp::Agg(*st, Some(subs));
        }
    } else if let Some(k) = (0..fields.len() / 2)
        .map(|k| 2 * k)
        .find(|&k| matches!(&fields[k], Resp::Blob(_, Some(n)) if n == b"subcommands"))
    {
        if let Resp::Agg(st, Some(subs)) = &fields[k + 1] {
            let mut pairs: Vec<(Resp, Resp)> = subs
                .chunks(2)
                .filter(|p| p.len() == 2 && wanted(&p[0]))
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            pairs.sort_by_key(|(n, _)| n.encode());
            let flat: Vec<Resp> = pairs.into_iter().flat_map(|(n, d)| [n, d]).collect();
            fields[k + 1] = Resp::Agg(*st, Some(flat));
        }
    }
    Resp::Agg(*t, Some(fields))
}

fn normalise(r: &Resp, raw: &[u8], norm: Norm) -> String {
    match norm {
        Norm::Exact => show(raw),
        Norm::Sort => show(&r.sorted().encode()),
        Norm::Pairs => show(&r.sorted_pairs().encode()),
        Norm::Shape => show(&r.shape().encode()),
        Norm::Subs(keep) => match r {
            Resp::Agg(t, Some(items)) => {
                let items = items.iter().map(|e| container_subs(e, keep)).collect();
                show(&Resp::Agg(*t, Some(items)).encode())
            }
            other => show(&other.encode()),
        },
        Norm::Mask(idx) => match r {
            Resp::Agg(t, Some(items)) => {
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        if idx.contains(&i) {
                            e.shape()
                        } else {
                            e.clone()
                        }
                    })
                    .collect();
                show(&Resp::Agg(*t, Some(items)).encode())
            }
            other => show(&other.encode()),
        },
    }
}

/// Which server runs against the reference redis-server.
#[derive(Clone, Copy)]
enum Target {
    Keel,
    RedisServer,
}

/// Both sides get the same memory limit and policy explicitly (keel's default limit is `-m`).
fn opts(script: &Script) -> RedisOpts {
    RedisOpts {
        password: script.password.clone(),
        maxmemory: Some(64 << 20),
        policy: Some("noeviction".into()),
        extra: Vec::new(),
    }
}

fn run_script(name: &str, target: Target) {
    let script = parse_script(name);
    let o = opts(&script);
    let started = Instant::now();
    let trace = std::env::var_os("KEEL_REDIS_DIFF_TRACE").is_some();
    let mut reference = Side {
        server: start_redis_server(&o),
        conns: BTreeMap::new(),
    };
    let mut other = Side {
        server: match target {
            Target::Keel => start_keel_redis(&o),
            Target::RedisServer => start_redis_server(&o),
        },
        conns: BTreeMap::new(),
    };
    for line in &script.lines {
        if let Step::Sleep(ms) = line.step {
            std::thread::sleep(Duration::from_millis(ms));
            continue;
        }
        let want = reference.run(&line.step);
        if let Some(bad) = want.iter().find(|w| w.starts_with('<') && w != &"<closed>") {
            panic!(
                "script bug: tests/redis/scripts/{name}.txt:{}: the reference redis-server gave {bad}\n  line: {}",
                line.no, line.text
            );
        }
        let got = other.run(&line.step);
        if trace {
            eprintln!("{name}.txt:{}: {}\n{}", line.no, line.text, indent(&want));
        }
        if want != got {
            panic!(
                "tests/redis/scripts/{name}.txt:{}: replies differ\n  line: {}\n  redis-server (pid {}, port {}) answered:\n{}\n  {} (pid {}, port {}) answered:\n{}\n  {} log tail:\n{}",
                line.no,
                line.text,
                reference.server.pid(),
                reference.server.port(),
                indent(&want),
                other.server.name(),
                other.server.pid(),
                other.server.port(),
                indent(&got),
                other.server.name(),
                other.server.log_tail(1500)
            );
        }
    }
    eprintln!(
        "{name}: {} steps agree ({:?})",
        script.lines.len(),
        started.elapsed()
    );
}

fn indent(v: &[String]) -> String {
    if v.is_empty() {
        return "    (nothing)\n".into();
    }
    v.iter()
        .map(|s| {
            s.lines()
                .map(|l| format!("    | {l}\n"))
                .collect::<String>()
                + "    +\n"
        })
        .collect()
}

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        /// Every script, by file stem.
        const SCRIPTS: &[&str] = &[$(stringify!($name)),*];
        mod keel_vs_redis {
            $(#[test] fn $name() { super::run_script(stringify!($name), super::Target::Keel); })*
        }
        mod redis_vs_redis {
            $(#[test] fn $name() { super::run_script(stringify!($name), super::Target::RedisServer); })*
        }
    };
}

scripts! {
    auth,
    blocking,
    connection,
    expiry,
    hashes,
    inline,
    keys,
    lists,
    memory,
    multi,
    pipeline,
    protocol_errors,
    pubsub,
    resp3,
    server,
    sets,
    strings,
}

#[test]
fn every_script_file_is_listed() {
    let mut files: Vec<String> = std::fs::read_dir(scripts_dir())
        .expect("tests/redis/scripts")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".txt"))
                .map(str::to_string)
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = SCRIPTS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "scripts! {{...}} must list every script file"
    );
}

#[test]
fn script_parser_understands_the_format() {
    let s = parse_line(r#"@b :sort :n=2 SET "a b" 'c d' "\x00\r\n""#)
        .unwrap()
        .unwrap();
    match s {
        Step::Cmd {
            conn,
            send,
            replies,
            norm,
            eof,
        } => {
            assert_eq!(conn, "b");
            assert_eq!(replies, 2);
            assert_eq!(norm, Norm::Sort);
            assert!(!eof);
            assert_eq!(
                send,
                b"*4\r\n$3\r\nSET\r\n$3\r\na b\r\n$3\r\nc d\r\n$3\r\n\x00\r\n\r\n"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(parse_line(r#"SET "abc"#).is_err());
    assert!(parse_line(":bogus PING").is_err());
    match parse_line(r#":inline SET "a"#).unwrap().unwrap() {
        Step::Cmd { send, .. } => assert_eq!(send, b"SET \"a\r\n"),
        other => panic!("{other:?}"),
    }
    match parse_line(":x=3 PING").unwrap().unwrap() {
        Step::Cmd { send, replies, .. } => {
            assert_eq!(replies, 3);
            assert_eq!(send, b"*1\r\n$4\r\nPING\r\n".repeat(3));
        }
        other => panic!("{other:?}"),
    }
}

/// Commands keel does not implement (sorted sets, streams, scripting, cluster) answer Redis's
/// unknown-command error, which redis-server 7.0 does not (it implements them): keel only.
#[test]
fn keel_answers_unknown_command_for_unsupported_families() {
    let keel = start_keel_redis(&RedisOpts::default());
    let mut c = keel.connect().expect("connect");
    for cmd in [
        &["ZADD", "z", "1", "a"][..],
        &["XADD", "s", "*", "f", "v"],
        &["EVAL", "return 1", "0"],
        &["CLUSTER", "INFO"],
    ] {
        let mut want = format!(
            "-ERR unknown command '{}', with args beginning with: ",
            cmd[0]
        );
        for a in &cmd[1..] {
            want.push_str(&format!("'{a}' "));
        }
        want.push_str("\r\n");
        let got = c.cmd(cmd).expect("reply");
        assert_eq!(show(&got), show(want.as_bytes()), "{cmd:?}");
    }
    assert_eq!(c.cmd(&["PING"]).expect("reply"), b"+PONG\r\n");
}
