//! memcached's classic text protocol (`get`, `set`, `incr`, `delete`, `stats`, …), parsed exactly
//! the way memcached 1.6.18's `proto_text.c` does, plus the encoders for its replies.
//!
//! [`parse`] handles *every* line a text connection can carry, meta commands included (they come
//! back as [`Request::Meta`]); [`crate::meta::parse`] parses a single meta command. Line framing,
//! tokens and numbers are read as described in [`crate::ascii`]; besides that:
//! * A storage command consumes its line plus `<bytes>+2` bytes (see [`Data`]).
//! * `noreply` (the last token) silences every reply of that command, errors included.

use std::borrow::Cow;

use crate::ascii::{
    error, error_nr, frame_line, read_data, retype, Line, Tokens, BAD_FORMAT, ERROR,
};
pub use crate::ascii::{
    put_i64, put_u64, safe_strtol, safe_strtoul, safe_strtoull, Data, KEY_MAX_LENGTH,
    READ_BUFFER_SIZE,
};
use crate::{meta, Limits, Parse};

/// A retrieval command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetCmd {
    Get,
    Gets,
    Gat,
    Gats,
    /// The ancient `bget`, answered like `get`.
    Bget,
}

impl GetCmd {
    /// Whether the reply carries CAS values.
    pub fn returns_cas(self) -> bool {
        matches!(self, GetCmd::Gets | GetCmd::Gats)
    }
    /// Whether the command touches (`gat`/`gats`).
    pub fn touches(self) -> bool {
        matches!(self, GetCmd::Gat | GetCmd::Gats)
    }
}

/// The keys of a retrieval line: the unsplit remainder of the line, split lazily (no allocation).
/// Keys longer than [`KEY_MAX_LENGTH`] are kept: memcached answers the keys before one with their
/// values and only then fails, so the executor needs to see them in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys<'a> {
    rest: &'a [u8],
}

impl<'a> Keys<'a> {
    pub fn new(rest: &'a [u8]) -> Keys<'a> {
        Keys { rest }
    }
    /// The raw remainder (space-separated keys).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let mut i = 0;
        while i < self.rest.len() && self.rest[i] == b' ' {
            i += 1;
        }
        if i == self.rest.len() {
            self.rest = &[];
            return None;
        }
        let start = i;
        while i < self.rest.len() && self.rest[i] != b' ' {
            i += 1;
        }
        let key = &self.rest[start..i];
        self.rest = &self.rest[i..];
        Some(key)
    }
}

/// Storage command verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreCmd {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

impl StoreCmd {
    pub fn name(self) -> &'static str {
        match self {
            StoreCmd::Set => "set",
            StoreCmd::Add => "add",
            StoreCmd::Replace => "replace",
            StoreCmd::Append => "append",
            StoreCmd::Prepend => "prepend",
            StoreCmd::Cas => "cas",
        }
    }
}

/// `set`/`add`/`replace`/`append`/`prepend`/`cas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreRequest<'a> {
    pub cmd: StoreCmd,
    pub key: &'a [u8],
    /// Client flags (low 32 bits of what was sent, as in memcached).
    pub flags: u32,
    /// Raw exptime (memcached semantics: 0 never, negative expired, >30 days absolute).
    pub exptime: i32,
    /// `cas` only: the compare value.
    pub cas_unique: u64,
    pub noreply: bool,
    /// Value length from the command line.
    pub len: usize,
    pub data: Data<'a>,
}

/// One text-protocol request.
// `Meta` carries a decoded base64 key inline (no allocation on the hot path), hence its size.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `get`/`gets`/`gat`/`gats`/`bget`. `exptime` is only meaningful for `gat`/`gats`.
    Get {
        cmd: GetCmd,
        exptime: i32,
        keys: Keys<'a>,
    },
    Store(StoreRequest<'a>),
    Delete {
        key: &'a [u8],
        noreply: bool,
    },
    Arith {
        incr: bool,
        key: &'a [u8],
        delta: u64,
        noreply: bool,
    },
    Touch {
        key: &'a [u8],
        exptime: i32,
        noreply: bool,
    },
    /// `flush_all [exptime] [noreply]`; `exptime` is 0 when absent.
    FlushAll {
        exptime: i32,
        noreply: bool,
    },
    Version,
    Verbosity {
        level: u32,
        noreply: bool,
    },
    /// `stats` (group `""`) or `stats <group>`; `reset`, `detail`, `cachedump` are separate.
    Stats {
        group: &'a [u8],
    },
    StatsReset,
    Quit,
    /// `shutdown [graceful]`: memcached without `-A` answers `ERROR: shutdown not enabled`.
    Shutdown,
    /// A command whose whole effect is a fixed reply (e.g. `stats detail on` => `OK`).
    Static(&'static [u8]),
    Meta(meta::Request<'a>),
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// Parse the first request (or malformed line) of a text connection's input.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parse<Request<'a>> {
    let line = match frame_line(buf, limits) {
        Ok(l) => l,
        Err(e) => return retype(e),
    };
    let t = Tokens::split(line.text);
    parse_tokens(buf, &line, &t, limits)
}

fn parse_tokens<'a>(
    buf: &'a [u8],
    line: &Line<'a>,
    t: &Tokens<'a>,
    limits: &Limits,
) -> Parse<Request<'a>> {
    let c = line.consumed;
    let nt = t.ntokens();
    if nt < 2 || t.get(0).len() < 2 {
        return error(ERROR, c);
    }
    let cmd = t.get(0);
    let first = cmd[0];
    let req = |r: Request<'a>| Parse::Request {
        req: r,
        consumed: c,
    };
    if first == b'm' && cmd.len() == 2 {
        return match meta::parse_tokens(buf, line, t, limits) {
            Parse::Request { req: r, consumed } => Parse::Request {
                req: Request::Meta(r),
                consumed,
            },
            other => retype(other),
        };
    }
    match first {
        b'g' => {
            if nt < 3 {
                return error(ERROR, c);
            }
            let gc = match cmd {
                b"get" => GetCmd::Get,
                b"gets" => GetCmd::Gets,
                b"gat" => GetCmd::Gat,
                b"gats" => GetCmd::Gats,
                _ => return error(ERROR, c),
            };
            get_request(gc, line, t)
        }
        b's' => match cmd {
            b"set" => store_request(StoreCmd::Set, buf, line, t, limits),
            b"stats" => stats_request(line, t),
            b"shutdown" => req(Request::Shutdown),
            // Slab administration is not applicable to keel's allocator.
            _ => error(ERROR, c),
        },
        b'a' => match cmd {
            b"add" => store_request(StoreCmd::Add, buf, line, t, limits),
            b"append" => store_request(StoreCmd::Append, buf, line, t, limits),
            _ => error(ERROR, c),
        },
        b'c' => match cmd {
            b"cas" => store_request(StoreCmd::Cas, buf, line, t, limits),
            b"cache_memlimit" => {
                if nt != 3 && nt != 4 {
                    return error(ERROR, c);
                }
                let noreply = t.noreply();
                match safe_strtoul(t.get(1)) {
                    None => error_nr(ERROR, c, noreply),
                    Some(m) if m < 8 => error_nr(
                        b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
                        c,
                        noreply,
                    ),
                    Some(m) if m > 1_000_000_000 => error_nr(
                        b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n",
                        c,
                        noreply,
                    ),
                    // keel's memory limit is fixed at start; accepted for compatibility.
                    Some(_) => req(Request::Static(if noreply { b"" } else { b"OK\r\n" })),
                }
            }
            _ => error(ERROR, c),
        },
        b'i' => match cmd {
            b"incr" => arith_request(true, line, t),
            _ => error(ERROR, c),
        },
        b'd' => match cmd {
            b"delete" => delete_request(line, t),
            b"decr" => arith_request(false, line, t),
            _ => error(ERROR, c),
        },
        b't' => match cmd {
            b"touch" => {
                let (key, noreply) = match key_and_number(t) {
                    Ok(k) => k,
                    Err(reply) => return error(reply, c),
                };
                match safe_strtol(t.get(2)) {
                    None => error_nr(b"CLIENT_ERROR invalid exptime argument\r\n", c, noreply),
                    Some(exptime) => req(Request::Touch {
                        key,
                        exptime,
                        noreply,
                    }),
                }
            }
            _ => error(ERROR, c),
        },
        _ => match cmd {
            b"replace" => store_request(StoreCmd::Replace, buf, line, t, limits),
            b"prepend" => store_request(StoreCmd::Prepend, buf, line, t, limits),
            b"bget" => {
                if nt < 3 {
                    return error(ERROR, c);
                }
                get_request(GetCmd::Bget, line, t)
            }
            b"flush_all" => {
                if !(2..=4).contains(&nt) {
                    return error(ERROR, c);
                }
                let noreply = t.noreply();
                let mut exptime = 0;
                if nt != if noreply { 3 } else { 2 } {
                    match safe_strtol(t.get(1)) {
                        Some(e) => exptime = e,
                        None => {
                            return error_nr(
                                b"CLIENT_ERROR invalid exptime argument\r\n",
                                c,
                                noreply,
                            )
                        }
                    }
                }
                req(Request::FlushAll { exptime, noreply })
            }
            b"version" => req(Request::Version),
            b"quit" => req(Request::Quit),
            b"verbosity" => {
                if nt != 3 && nt != 4 {
                    return error(ERROR, c);
                }
                let noreply = t.noreply();
                match safe_strtoul(t.get(1)) {
                    Some(level) => req(Request::Verbosity { level, noreply }),
                    None => error_nr(BAD_FORMAT, c, noreply),
                }
            }
            // memcached administration commands that do not apply to keel (its allocator has no
            // slab classes, no LRU crawler, no log watchers): answered like an unknown command.
            b"lru_crawler" | b"watch" | b"lru" => error(ERROR, c),
            _ => {
                // memcached: an unknown command whose last token starts with "HTTP/" closes.
                if nt >= 2 && t.get(nt - 2).starts_with(b"HTTP/") {
                    Parse::Error {
                        reply: Cow::Borrowed(b""),
                        consumed: c,
                        swallow: 0,
                        close: true,
                    }
                } else {
                    error(ERROR, c)
                }
            }
        },
    }
}

fn line_rest_from<'a>(line: &Line<'a>, tok: &'a [u8]) -> &'a [u8] {
    // `tok` borrows from `line.text`: the keys are the text from `tok` to the end of the line.
    let base = line.text.as_ptr() as usize;
    let off = (tok.as_ptr() as usize)
        .saturating_sub(base)
        .min(line.text.len());
    &line.text[off..]
}

fn get_request<'a>(cmd: GetCmd, line: &Line<'a>, t: &Tokens<'a>) -> Parse<Request<'a>> {
    let c = line.consumed;
    let mut exptime = 0;
    let mut key_tok = 1;
    if cmd.touches() {
        match safe_strtol(t.get(1)) {
            Some(e) => exptime = e,
            None => return error(b"CLIENT_ERROR invalid exptime argument\r\n", c),
        }
        key_tok = 2;
    }
    let keys = if key_tok < t.n {
        line_rest_from(line, t.toks[key_tok])
    } else {
        match t.rest {
            Some(r) => r,
            None => &[],
        }
    };
    Parse::Request {
        req: Request::Get {
            cmd,
            exptime,
            keys: Keys::new(keys),
        },
        consumed: c,
    }
}

fn store_request<'a>(
    cmd: StoreCmd,
    buf: &'a [u8],
    line: &Line<'a>,
    t: &Tokens<'a>,
    limits: &Limits,
) -> Parse<Request<'a>> {
    let c = line.consumed;
    let nt = t.ntokens();
    let ok_tokens = if cmd == StoreCmd::Cas {
        nt == 7 || nt == 8
    } else {
        nt == 6 || nt == 7
    };
    if !ok_tokens {
        return error(ERROR, c);
    }
    let noreply = t.noreply();
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return error_nr(BAD_FORMAT, c, noreply);
    }
    let (flags, exptime, vlen) = match (
        safe_strtoul(t.get(2)),
        safe_strtol(t.get(3)),
        safe_strtol(t.get(4)),
    ) {
        (Some(f), Some(e), Some(v)) => (f, e, v),
        _ => return error_nr(BAD_FORMAT, c, noreply),
    };
    let mut cas_unique = 0;
    if cmd == StoreCmd::Cas {
        match safe_strtoull(t.get(5)) {
            Some(v) => cas_unique = v,
            None => return error_nr(BAD_FORMAT, c, noreply),
        }
    }
    if !(0..=i32::MAX - 2).contains(&vlen) {
        return error_nr(BAD_FORMAT, c, noreply);
    }
    let len = vlen as usize;
    let (data, consumed) = match read_data(buf, c, len, limits) {
        Some(d) => d,
        None => return Parse::Incomplete,
    };
    Parse::Request {
        req: Request::Store(StoreRequest {
            cmd,
            key,
            flags,
            exptime,
            cas_unique,
            noreply,
            len,
            data,
        }),
        consumed,
    }
}

/// The arguments of `touch` and `incr`/`decr` (`<cmd> <key> <number> [noreply]`): memcached
/// answers `ERROR` to any other token count and `CLIENT_ERROR bad command line format` (unless
/// `noreply`) to an over-long key, before it reads the number. `Err` is that reply.
fn key_and_number<'a>(t: &Tokens<'a>) -> Result<(&'a [u8], bool), &'static [u8]> {
    let nt = t.ntokens();
    if nt != 4 && nt != 5 {
        return Err(ERROR);
    }
    let noreply = t.noreply();
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return Err(if noreply { b"" } else { BAD_FORMAT });
    }
    Ok((key, noreply))
}

fn arith_request<'a>(incr: bool, line: &Line<'a>, t: &Tokens<'a>) -> Parse<Request<'a>> {
    let c = line.consumed;
    let (key, noreply) = match key_and_number(t) {
        Ok(k) => k,
        Err(reply) => return error(reply, c),
    };
    match safe_strtoull(t.get(2)) {
        Some(delta) => Parse::Request {
            req: Request::Arith {
                incr,
                key,
                delta,
                noreply,
            },
            consumed: c,
        },
        None => error_nr(
            b"CLIENT_ERROR invalid numeric delta argument\r\n",
            c,
            noreply,
        ),
    }
}

fn delete_request<'a>(line: &Line<'a>, t: &Tokens<'a>) -> Parse<Request<'a>> {
    let c = line.consumed;
    let nt = t.ntokens();
    if !(3..=5).contains(&nt) {
        return error(ERROR, c);
    }
    let mut noreply = false;
    if nt > 3 {
        let hold_is_zero = t.get(2) == b"0";
        noreply = t.noreply();
        let valid = (nt == 4 && (hold_is_zero || noreply)) || (nt == 5 && hold_is_zero && noreply);
        if !valid {
            return error_nr(
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
                c,
                noreply,
            );
        }
    }
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return error_nr(BAD_FORMAT, c, noreply);
    }
    Parse::Request {
        req: Request::Delete { key, noreply },
        consumed: c,
    }
}

fn stats_request<'a>(line: &Line<'a>, t: &Tokens<'a>) -> Parse<Request<'a>> {
    let c = line.consumed;
    let nt = t.ntokens();
    let req = |r: Request<'a>| Parse::Request {
        req: r,
        consumed: c,
    };
    if nt == 2 {
        return req(Request::Stats { group: b"" });
    }
    let sub = t.get(1);
    match sub {
        b"reset" => req(Request::StatsReset),
        b"detail" => {
            // keel keeps no per-prefix statistics: `on`/`off` are accepted, `dump` is empty.
            let arg = if nt < 4 { &b""[..] } else { t.get(2) };
            match arg {
                b"on" | b"off" => req(Request::Static(b"OK\r\n")),
                b"dump" => req(Request::Static(b"END\r\n")),
                _ => req(Request::Static(
                    b"CLIENT_ERROR usage: stats detail on|off|dump\r\n",
                )),
            }
        }
        b"cachedump" => {
            if nt < 5 {
                return req(Request::Static(b"CLIENT_ERROR bad command line\r\n"));
            }
            match (safe_strtoul(t.get(2)), safe_strtoul(t.get(3))) {
                (Some(id), Some(_)) if id >= 64 => {
                    req(Request::Static(b"CLIENT_ERROR Illegal slab id\r\n"))
                }
                // keel has no slab classes to dump.
                (Some(_), Some(_)) => req(Request::Static(b"END\r\n")),
                _ => req(Request::Static(BAD_FORMAT)),
            }
        }
        _ => req(Request::Stats { group: sub }),
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding (replies, and requests for clients/tests).

/// `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`
pub fn encode_value(out: &mut Vec<u8>, key: &[u8], flags: u32, value: &[u8], cas: Option<u64>) {
    out.reserve(key.len() + value.len() + 48);
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    out.push(b' ');
    put_u64(out, u64::from(flags));
    out.push(b' ');
    put_u64(out, value.len() as u64);
    if let Some(cas) = cas {
        out.push(b' ');
        put_u64(out, cas);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `END\r\n`
pub fn encode_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"END\r\n");
}

/// A `stats` reply: `STAT <name> <value>\r\n`… `END\r\n`.
pub fn encode_stats<N: AsRef<[u8]>, V: AsRef<[u8]>>(out: &mut Vec<u8>, stats: &[(N, V)]) {
    for (n, v) in stats {
        out.extend_from_slice(b"STAT ");
        out.extend_from_slice(n.as_ref());
        out.push(b' ');
        out.extend_from_slice(v.as_ref());
        out.extend_from_slice(b"\r\n");
    }
    encode_end(out);
}

/// Encode a storage request (`set key flags exptime bytes [cas] [noreply]\r\n<data>\r\n`).
#[allow(clippy::too_many_arguments)]
pub fn encode_store(
    out: &mut Vec<u8>,
    cmd: StoreCmd,
    key: &[u8],
    flags: u32,
    exptime: i32,
    value: &[u8],
    cas_unique: Option<u64>,
    noreply: bool,
) {
    out.extend_from_slice(cmd.name().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b' ');
    put_u64(out, u64::from(flags));
    out.push(b' ');
    put_i64(out, i64::from(exptime));
    out.push(b' ');
    put_u64(out, value.len() as u64);
    if let Some(c) = cas_unique {
        out.push(b' ');
        put_u64(out, c);
    }
    if noreply {
        out.extend_from_slice(b" noreply");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lim() -> Limits {
        Limits::default()
    }

    fn req(buf: &[u8]) -> (Request<'_>, usize) {
        match parse(buf, &lim()) {
            Parse::Request { req, consumed } => (req, consumed),
            other => panic!("{:?} => {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn err(buf: &[u8]) -> (Vec<u8>, usize, usize, bool) {
        match parse(buf, &lim()) {
            Parse::Error {
                reply,
                consumed,
                swallow,
                close,
            } => (reply.to_vec(), consumed, swallow, close),
            other => panic!("{:?} => {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn get_and_keys() {
        let (r, c) = req(b"get a bb  ccc\r\nxx");
        assert_eq!(c, 15);
        match r {
            Request::Get {
                cmd: GetCmd::Get,
                keys,
                ..
            } => {
                assert_eq!(keys.collect::<Vec<_>>(), vec![&b"a"[..], b"bb", b"ccc"])
            }
            _ => panic!(),
        }
        let (r, _) = req(b"gats 100 k\r\n");
        assert!(matches!(
            r,
            Request::Get {
                cmd: GetCmd::Gats,
                exptime: 100,
                ..
            }
        ));
        assert_eq!(
            err(b"gat x k\r\n").0,
            b"CLIENT_ERROR invalid exptime argument\r\n"
        );
        assert_eq!(err(b"get\r\n").0, b"ERROR\r\n");
        assert_eq!(err(b"gett a\r\n").0, b"ERROR\r\n");
        // Many keys: past the 23-token tokenizer window.
        let mut line = b"get".to_vec();
        for i in 0..100 {
            line.extend_from_slice(format!(" k{i}").as_bytes());
        }
        line.extend_from_slice(b"\r\n");
        let (r, _) = req(&line);
        match r {
            Request::Get { keys, .. } => {
                let ks: Vec<_> = keys.collect();
                assert_eq!(ks.len(), 100);
                assert_eq!(ks[99], b"k99");
            }
            _ => panic!(),
        }
    }

    #[test]
    fn store_commands() {
        let (r, c) = req(b"set k 5 100 3\r\nabc\r\nget");
        assert_eq!(c, 20);
        assert_eq!(
            r,
            Request::Store(StoreRequest {
                cmd: StoreCmd::Set,
                key: b"k",
                flags: 5,
                exptime: 100,
                cas_unique: 0,
                noreply: false,
                len: 3,
                data: Data::Value(b"abc")
            })
        );
        assert_eq!(parse(b"set k 5 100 3\r\nabc\r", &lim()), Parse::Incomplete);
        let (r, c) = req(b"set k 0 0 3\r\nabcde\r\n");
        assert_eq!(c, 18);
        assert!(matches!(
            r,
            Request::Store(StoreRequest {
                data: Data::BadChunk,
                ..
            })
        ));
        let (r, _) = req(b"cas k 0 0 1 77 noreply\r\nx\r\n");
        assert!(matches!(
            r,
            Request::Store(StoreRequest {
                cmd: StoreCmd::Cas,
                cas_unique: 77,
                noreply: true,
                ..
            })
        ));
        assert_eq!(
            err(b"cas k 0 0 1\r\nx\r\n"),
            (b"ERROR\r\n".to_vec(), 13, 0, false)
        );
        assert_eq!(err(b"set k -1 0 1\r\n").0, BAD_FORMAT);
        assert_eq!(err(b"set k 0 0 -1\r\n").0, BAD_FORMAT);
        assert_eq!(err(b"set k 0 0 x noreply\r\n").0, b"");
        let long = format!("set {} 0 0 1\r\nx\r\n", "k".repeat(251));
        assert_eq!(err(long.as_bytes()).0, BAD_FORMAT);
        let (r, c) = req(b"set k 0 0 2000000\r\n");
        assert_eq!(c, 19);
        assert!(matches!(
            r,
            Request::Store(StoreRequest {
                data: Data::TooLarge,
                len: 2000000,
                ..
            })
        ));
        // Low 32 bits of the length, like memcached.
        let (r, _) = req(b"set k 4294967297 0 4294967297\r\nx\r\n");
        assert!(matches!(
            r,
            Request::Store(StoreRequest {
                flags: 1,
                len: 1,
                ..
            })
        ));
    }

    #[test]
    fn misc_commands() {
        assert!(matches!(
            req(b"delete a 0\r\n").0,
            Request::Delete { noreply: false, .. }
        ));
        assert!(matches!(
            req(b"delete a 0 noreply\r\n").0,
            Request::Delete { noreply: true, .. }
        ));
        assert_eq!(
            err(b"delete a 1\r\n").0,
            b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
        );
        assert_eq!(err(b"delete a 1 noreply\r\n").0, b"");
        assert_eq!(err(b"delete a b c d\r\n").0, b"ERROR\r\n");
        assert!(matches!(
            req(b"incr a 5\r\n").0,
            Request::Arith {
                incr: true,
                delta: 5,
                ..
            }
        ));
        assert_eq!(
            err(b"decr a -1\r\n").0,
            b"CLIENT_ERROR invalid numeric delta argument\r\n"
        );
        assert!(matches!(
            req(b"flush_all 10 20\r\n").0,
            Request::FlushAll {
                exptime: 10,
                noreply: false
            }
        ));
        assert!(matches!(
            req(b"flush_all noreply\r\n").0,
            Request::FlushAll {
                exptime: 0,
                noreply: true
            }
        ));
        assert_eq!(err(b"flush_all 1 2 3\r\n").0, b"ERROR\r\n");
        assert_eq!(
            err(b"flush_all x\r\n").0,
            b"CLIENT_ERROR invalid exptime argument\r\n"
        );
        assert!(matches!(
            req(b"verbosity 1 2\r\n").0,
            Request::Verbosity {
                level: 1,
                noreply: false
            }
        ));
        assert_eq!(err(b"verbosity noreply\r\n").0, b"");
        assert!(matches!(req(b"quit x\r\n").0, Request::Quit));
        assert!(matches!(req(b"version\r\n").0, Request::Version));
        assert!(matches!(req(b"stats\r\n").0, Request::Stats { group: b"" }));
        assert!(matches!(
            req(b"stats items\r\n").0,
            Request::Stats { group: b"items" }
        ));
        assert!(matches!(req(b"stats reset\r\n").0, Request::StatsReset));
        assert_eq!(err(b"\r\n"), (b"ERROR\r\n".to_vec(), 2, 0, false));
        assert_eq!(err(b"\n"), (b"ERROR\r\n".to_vec(), 1, 0, false));
        assert!(err(b"foo HTTP/1.0\r\n").3);
        assert!(err(b"GET / HTTP/1.1\r\n").3);
        assert!(matches!(req(b"get / HTTP/1.1\r\n").0, Request::Get { .. }));
        assert_eq!(err(b"touch a\r\n").0, b"ERROR\r\n");
        assert!(matches!(
            req(b"touch a 10 x\r\n").0,
            Request::Touch {
                exptime: 10,
                noreply: false,
                ..
            }
        ));
        // NUL cuts the line.
        assert!(matches!(req(b"version\0junk\r\n").0, Request::Version));
    }

    #[test]
    fn long_lines() {
        let l = lim();
        let junk = vec![b'x'; 3000];
        assert!(matches!(parse(&junk, &l), Parse::Error { close: true, .. }));
        let mut get = b"get ".to_vec();
        get.extend_from_slice(&b"k ".repeat(2000));
        assert_eq!(parse(&get, &l), Parse::Incomplete);
        get.extend_from_slice(b"\r\n");
        assert!(matches!(parse(&get, &l), Parse::Request { .. }));
        let mut set = b"set ".to_vec();
        set.extend_from_slice(&[b'k'; 20000]);
        set.extend_from_slice(b" 0 0 1\r\nx\r\n");
        assert!(matches!(parse(&set, &l), Parse::Error { close: true, .. }));
        // A 3000-byte set line that arrived whole is processed (key too long) like memcached.
        let set = format!("set {} 0 0 1\r\nx\r\n", "k".repeat(3000));
        assert_eq!(err(set.as_bytes()).0, BAD_FORMAT);
    }

    fn sample_requests() -> Vec<Vec<u8>> {
        vec![
            b"get a b c\r\n".to_vec(),
            b"gats 10 a\r\n".to_vec(),
            b"set k 1 2 3\r\nabc\r\n".to_vec(),
            b"set k 1 2 3 noreply\r\nab\n\r\n".to_vec(),
            b"cas k 1 2 3 99\r\nabc\r\n".to_vec(),
            b"delete k\r\n".to_vec(),
            b"incr k 1\r\n".to_vec(),
            b"touch k 1\r\n".to_vec(),
            b"stats\r\n".to_vec(),
            b"mg k v c O123\r\n".to_vec(),
            b"ms k 2 T10 F3\r\nhi\r\n".to_vec(),
            b"bogus\r\n".to_vec(),
            b"set k 0 0 2\r\nabcd\r\n".to_vec(),
        ]
    }

    #[test]
    fn every_split_is_incomplete_then_same() {
        let l = lim();
        for r in sample_requests() {
            let whole = parse(&r, &l);
            assert!(!matches!(whole, Parse::Incomplete), "{r:?}");
            let consumed = match &whole {
                Parse::Request { consumed, .. } | Parse::Error { consumed, .. } => *consumed,
                Parse::Incomplete => unreachable!(),
            };
            for cut in 0..consumed {
                assert_eq!(
                    parse(&r[..cut], &l),
                    Parse::Incomplete,
                    "{r:?} cut at {cut}"
                );
            }
            let mut longer = r.clone();
            longer.extend_from_slice(b"get more\r\n");
            assert_eq!(parse(&longer, &l), whole);
        }
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
            let l = Limits { max_line: 64, max_get_line: 128, item_size_max: 64, ..Limits::default() };
            match parse(&buf, &l) {
                Parse::Request { consumed, .. } => prop_assert!(consumed > 0 && consumed <= buf.len()),
                Parse::Error { consumed, .. } => prop_assert!(consumed <= buf.len()),
                Parse::Incomplete => {}
            }
        }

        #[test]
        fn never_panics_on_commandish(
            cmd in prop::sample::select(vec!["get", "gets", "gat", "set", "cas", "add", "incr", "delete",
                "touch", "flush_all", "verbosity", "stats", "mg", "ms", "md", "ma", "me", "mn"]),
            args in proptest::collection::vec("[ -~\t]{0,12}", 0..30),
            tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut buf = cmd.as_bytes().to_vec();
            for a in &args { buf.push(b' '); buf.extend_from_slice(a.as_bytes()); }
            buf.extend_from_slice(b"\r\n");
            buf.extend_from_slice(&tail);
            let _ = parse(&buf, &Limits::default());
        }

        #[test]
        fn store_round_trip(
            cmd in prop::sample::select(vec![StoreCmd::Set, StoreCmd::Add, StoreCmd::Replace,
                StoreCmd::Append, StoreCmd::Prepend, StoreCmd::Cas]),
            key in "[!-~]{1,250}",
            flags in any::<u32>(),
            exptime in any::<i32>(),
            value in proptest::collection::vec(any::<u8>(), 0..200),
            cas in any::<u64>(),
            noreply in any::<bool>(),
        ) {
            let mut buf = Vec::new();
            let cas_opt = if cmd == StoreCmd::Cas { Some(cas) } else { None };
            encode_store(&mut buf, cmd, key.as_bytes(), flags, exptime, &value, cas_opt, noreply);
            let l = Limits::default();
            let expect = Request::Store(StoreRequest {
                cmd, key: key.as_bytes(), flags, exptime, cas_unique: cas_opt.unwrap_or(0), noreply,
                len: value.len(), data: Data::Value(&value),
            });
            prop_assert_eq!(parse(&buf, &l), Parse::Request { req: expect, consumed: buf.len() });
            for cut in 0..buf.len() {
                prop_assert_eq!(parse(&buf[..cut], &l), Parse::Incomplete);
            }
        }

        #[test]
        fn get_round_trip(keys in proptest::collection::vec("[!-~]{1,40}", 1..60)) {
            let line = format!("get {}\r\n", keys.join(" "));
            match parse(line.as_bytes(), &Limits::default()) {
                Parse::Request { req: Request::Get { keys: ks, .. }, consumed } => {
                    prop_assert_eq!(consumed, line.len());
                    let got: Vec<&[u8]> = ks.collect();
                    let want: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
                    prop_assert_eq!(got, want);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn value_encoding_is_parseable(key in "[!-~]{1,50}", flags in any::<u32>(),
                value in proptest::collection::vec(any::<u8>(), 0..100), cas in any::<Option<u64>>()) {
            let mut out = Vec::new();
            encode_value(&mut out, key.as_bytes(), flags, &value, cas);
            let hdr_end = out.windows(2).position(|w| w == b"\r\n").unwrap();
            let hdr = std::str::from_utf8(&out[..hdr_end]).unwrap();
            let parts: Vec<&str> = hdr.split(' ').collect();
            prop_assert_eq!(parts[0], "VALUE");
            prop_assert_eq!(parts[1], key.as_str());
            prop_assert_eq!(parts[2].parse::<u32>().unwrap(), flags);
            prop_assert_eq!(parts[3].parse::<usize>().unwrap(), value.len());
            prop_assert_eq!(parts.get(4).map(|c| c.parse::<u64>().unwrap()), cas);
            prop_assert_eq!(&out[hdr_end + 2..hdr_end + 2 + value.len()], &value[..]);
        }
    }
}
