//! memcached's meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`), parsed exactly as memcached
//! 1.6.18's `proto_text.c` does (same checks in the same order, same error strings), plus the
//! helpers that build their replies.
//!
//! Meta commands share the text protocol's line framing, tokenizer and numbers ([`crate::ascii`]);
//! [`crate::text::parse`] hands the `m?` lines of a text connection to this module.
//! Flags memcached 1.6.18 knows: `b c f h k l O P L q s t u v N R T F C M J D I` (`P`/`L` are
//! accepted and ignored). Later memcached versions added `E` (explicit CAS) and `x` (md: remove
//! value only); 1.6.18 answers `CLIENT_ERROR invalid flag` to them, and so does this parser.
//!
//! Reply flags are echoed in the order the request gave them, so a parsed [`Request`] keeps the raw
//! flag tokens ([`Request::tokens`]) next to their parsed values ([`Flags`]).

use crate::ascii::{self, Data, Line, Tokens, KEY_MAX_LENGTH};
use crate::{Limits, Parse};
use std::borrow::Cow;

/// memcached's `MFLAG_MAX_OPT_LENGTH`: `ntokens` above this is an error.
const MFLAG_MAX_OPT_LENGTH: usize = 20;
/// memcached's `MFLAG_MAX_OPAQUE_LENGTH` (the `O` token, including the `O`).
pub const MFLAG_MAX_OPAQUE_LENGTH: usize = 32;
/// Longest decoded base64 key (250 base64 characters).
const KEY_BIN_MAX: usize = 188;

/// Which meta command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    Get,
    Set,
    Delete,
    Arith,
    Noop,
    Debug,
}

/// A key: as sent, or decoded from base64 (`b` flag) into an inline buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key<'a> {
    Plain(&'a [u8]),
    Binary { buf: [u8; KEY_BIN_MAX], len: u8 },
}

impl<'a> Key<'a> {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Plain(k) => k,
            Key::Binary { buf, len } => &buf[..usize::from(*len)],
        }
    }
    pub fn is_binary(&self) -> bool {
        matches!(self, Key::Binary { .. })
    }
}

/// ms `M` modes / ma `M` modes, normalized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
}

/// Parsed flag values (memcached's `struct _meta_flags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `b`: key was base64.
    pub base64: bool,
    /// `q`: noreply semantics.
    pub quiet: bool,
    /// `v`: return the value.
    pub value: bool,
    /// `u`: no LRU bump.
    pub no_update: bool,
    /// `I`: invalidate / set-stale.
    pub invalidate: bool,
    /// `N(ttl)`: vivify on miss (raw exptime).
    pub vivify: Option<i32>,
    /// `T(ttl)` (raw exptime).
    pub ttl: Option<i32>,
    /// `R(ttl)` (raw exptime).
    pub recache: Option<i32>,
    /// `F(flags)`.
    pub client_flags: u32,
    /// `C(cas)`.
    pub compare_cas: Option<u64>,
    /// `M(mode)`: the raw mode character (0 = none given).
    pub mode: u8,
    /// `J(initial)`.
    pub initial: u64,
    /// `D(delta)`.
    pub delta: Option<u64>,
    /// An `O` token longer than 32 bytes: memcached reports `CLIENT_ERROR opaque token too long`
    /// for mg/ma only after executing the command, so the executor must do the same.
    pub opaque_too_long: bool,
}

/// A parsed meta command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub cmd: Cmd,
    pub key: Key<'a>,
    pub flags: Flags,
    /// The flag tokens as sent (space separated), for echoing `O`/`k` and ordering reply flags.
    pub tokens: &'a [u8],
    /// ms: value length; else 0.
    pub len: usize,
    /// ms: the data block; else `Data::Value(b"")`.
    pub data: Data<'a>,
}

impl<'a> Request<'a> {
    /// The flag tokens in order (each starts with its flag character).
    pub fn flag_tokens(&self) -> impl Iterator<Item = &'a [u8]> {
        self.tokens.split(|&b| b == b' ').filter(|t| !t.is_empty())
    }
    /// ms mode, mapped (`None`: invalid mode, rejected by the parser, never returned).
    pub fn set_mode(&self) -> SetMode {
        match self.flags.mode {
            b'E' => SetMode::Add,
            b'A' => SetMode::Append,
            b'P' => SetMode::Prepend,
            b'R' => SetMode::Replace,
            _ => SetMode::Set,
        }
    }
    /// ma: increment (default) or decrement.
    pub fn is_incr(&self) -> bool {
        !matches!(self.flags.mode, b'D' | b'-')
    }
}

/// Parse a single meta command from the front of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parse<Request<'a>> {
    let line = match ascii::frame_line(buf, limits) {
        Ok(l) => l,
        Err(e) => return ascii::retype(e),
    };
    let t = Tokens::split(line.text);
    let cmd = t.get(0);
    if t.ntokens() < 2 || cmd.len() != 2 || cmd[0] != b'm' {
        return ascii::error(ascii::ERROR, line.consumed);
    }
    parse_tokens(buf, &line, &t, limits)
}

fn err<T>(s: &'static [u8], c: usize) -> Parse<T> {
    ascii::error(s, c)
}

fn err_swallow<T>(s: &'static [u8], c: usize, swallow: usize) -> Parse<T> {
    Parse::Error {
        reply: Cow::Borrowed(s),
        consumed: c,
        swallow,
        close: false,
    }
}

/// `Tokens` whose command is a two-character `m?` word.
pub(crate) fn parse_tokens<'a>(
    buf: &'a [u8],
    line: &Line<'a>,
    t: &Tokens<'a>,
    limits: &Limits,
) -> Parse<Request<'a>> {
    let c = line.consumed;
    let nt = t.ntokens();
    let cmd = match t.get(0).get(1) {
        Some(b'g') => Cmd::Get,
        Some(b's') => Cmd::Set,
        Some(b'd') => Cmd::Delete,
        Some(b'a') => Cmd::Arith,
        Some(b'n') => Cmd::Noop,
        Some(b'e') => Cmd::Debug,
        _ => return err(ascii::ERROR, c),
    };
    let empty = Request {
        cmd,
        key: Key::Plain(b""),
        flags: Flags::default(),
        tokens: b"",
        len: 0,
        data: Data::Value(b""),
    };
    match cmd {
        Cmd::Noop => {
            return Parse::Request {
                req: empty,
                consumed: c,
            }
        }
        Cmd::Debug => {
            if nt < 3 || t.get(1).len() > KEY_MAX_LENGTH {
                return err(ascii::BAD_FORMAT, c);
            }
            let mut req = Request {
                key: Key::Plain(t.get(1)),
                ..empty
            };
            if nt >= 4 && t.get(2) == b"b" {
                match base64_decode_key(t.get(1)) {
                    Some(k) => req.key = k,
                    None => return err(ascii::BAD_FORMAT, c),
                }
                req.flags.base64 = true;
            }
            return Parse::Request { req, consumed: c };
        }
        _ => {}
    }
    if nt < 3 {
        return err(ascii::ERROR, c);
    }
    let raw_key = t.get(1);
    if raw_key.len() > KEY_MAX_LENGTH {
        return err(ascii::BAD_FORMAT, c);
    }
    let too_long: &'static [u8] = if cmd == Cmd::Get {
        b"CLIENT_ERROR options flags are too long\r\n"
    } else {
        b"CLIENT_ERROR options flags too long\r\n"
    };
    if cmd == Cmd::Set && nt == 3 {
        return err(ascii::BAD_FORMAT, c);
    }
    if nt > MFLAG_MAX_OPT_LENGTH {
        return err(too_long, c);
    }
    let mut first_flag = 2;
    let mut swallow = 0;
    let mut len = 0;
    if cmd == Cmd::Set {
        match ascii::safe_strtol(t.get(2)) {
            Some(v) if (0..=i32::MAX - 2).contains(&v) => {
                len = v as usize;
                swallow = len + 2;
            }
            _ => return err(ascii::BAD_FORMAT, c),
        }
        first_flag = 3;
    }
    // Flag tokens as one slice of the line (no remainder: at most 19 tokens here).
    let tokens: &'a [u8] = if first_flag < t.n {
        let base = line.text.as_ptr() as usize;
        let off = (t.toks[first_flag].as_ptr() as usize)
            .saturating_sub(base)
            .min(line.text.len());
        &line.text[off..]
    } else {
        b""
    };
    let mut key = Key::Plain(raw_key);
    let mut flags = Flags::default();
    if let Err(e) = preparse(t, first_flag, &mut key, &mut flags) {
        let msg = match cmd {
            Cmd::Delete | Cmd::Arith => &b"CLIENT_ERROR invalid or duplicate flag\r\n"[..],
            _ => e,
        };
        return err_swallow(msg, c, swallow);
    }
    match cmd {
        Cmd::Set => {
            if !matches!(flags.mode, 0 | b'E' | b'A' | b'P' | b'R' | b'S') {
                return err_swallow(b"CLIENT_ERROR invalid mode for ms M token\r\n", c, swallow);
            }
            if flags.opaque_too_long {
                return err_swallow(b"CLIENT_ERROR opaque token too long\r\n", c, swallow);
            }
            let (data, consumed) = match ascii::read_data(buf, c, len, limits) {
                Some(d) => d,
                None => return Parse::Incomplete,
            };
            return Parse::Request {
                req: Request {
                    key,
                    flags,
                    tokens,
                    len,
                    data,
                    ..empty
                },
                consumed,
            };
        }
        Cmd::Delete if flags.opaque_too_long => {
            return err(b"CLIENT_ERROR opaque token too long\r\n", c);
        }
        Cmd::Arith if !matches!(flags.mode, 0 | b'I' | b'+' | b'D' | b'-') => {
            return err(b"CLIENT_ERROR invalid mode for ma M token\r\n", c);
        }
        _ => {}
    }
    Parse::Request {
        req: Request {
            key,
            flags,
            tokens,
            ..empty
        },
        consumed: c,
    }
}

/// memcached's `_meta_flag_preparse`.
fn preparse<'a>(
    t: &Tokens<'a>,
    start: usize,
    key: &mut Key<'a>,
    of: &mut Flags,
) -> Result<(), &'static [u8]> {
    let mut seen = [false; 127];
    let mut errstr: &'static [u8] = ascii::BAD_FORMAT;
    let mut has_error = false;
    const BAD_TOKEN: &[u8] = b"CLIENT_ERROR bad token in command line format\r\n";
    for i in start..t.n {
        let tok = t.toks[i];
        let o = tok[0];
        if o >= 127 || seen[usize::from(o)] {
            return Err(b"CLIENT_ERROR duplicate flag\r\n");
        }
        seen[usize::from(o)] = true;
        let arg = &tok[1..];
        match o {
            b'b' => {
                match base64_decode_key(t.get(1)) {
                    Some(k) => *key = k,
                    None => {
                        errstr = b"CLIENT_ERROR error decoding key\r\n";
                        has_error = true;
                    }
                }
                of.base64 = true;
            }
            b'N' | b'T' | b'R' => match ascii::safe_strtol(arg) {
                Some(v) => match o {
                    b'N' => of.vivify = Some(v),
                    b'T' => of.ttl = Some(v),
                    _ => of.recache = Some(v),
                },
                None => {
                    errstr = BAD_TOKEN;
                    has_error = true;
                }
            },
            b'O' => {
                if tok.len() > MFLAG_MAX_OPAQUE_LENGTH {
                    of.opaque_too_long = true;
                }
            }
            b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'l' | b'h' => {}
            b'v' => of.value = true,
            b'u' => of.no_update = true,
            b'q' => of.quiet = true,
            b'F' => match ascii::safe_strtoul(arg) {
                Some(v) => of.client_flags = v,
                None => has_error = true,
            },
            b'C' => match ascii::safe_strtoull(arg) {
                Some(v) => of.compare_cas = Some(v),
                None => {
                    errstr = BAD_TOKEN;
                    has_error = true;
                }
            },
            b'M' => {
                if tok.len() != 2 {
                    errstr = b"CLIENT_ERROR incorrect length for M token\r\n";
                    has_error = true;
                } else {
                    of.mode = tok[1];
                }
            }
            b'J' => match ascii::safe_strtoull(arg) {
                Some(v) => of.initial = v,
                None => {
                    errstr = b"CLIENT_ERROR invalid numeric initial value\r\n";
                    has_error = true;
                }
            },
            b'D' => match ascii::safe_strtoull(arg) {
                Some(v) => of.delta = Some(v),
                None => {
                    errstr = b"CLIENT_ERROR invalid numeric delta value\r\n";
                    has_error = true;
                }
            },
            b'I' => of.invalidate = true,
            _ => return Err(b"CLIENT_ERROR invalid flag\r\n"),
        }
    }
    if has_error {
        Err(errstr)
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// base64, memcached's exact variant (invalid characters are skipped; `=` padding ends decoding).

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        b'=' => Some(0),
        _ => None,
    }
}

/// memcached's `base64_decode` into `out`; returns the decoded length, 0 on failure.
pub fn base64_decode(src: &[u8], out: &mut [u8]) -> usize {
    let count = src.iter().filter(|&&c| b64_val(c).is_some()).count();
    if count == 0 || count % 4 != 0 {
        return 0;
    }
    if count / 4 * 3 > out.len() {
        return 0;
    }
    let mut pos = 0usize;
    let mut block = [0u8; 4];
    let mut n = 0;
    let mut pad = 0;
    for &c in src {
        let Some(v) = b64_val(c) else { continue };
        if c == b'=' {
            pad += 1;
        }
        block[n] = v;
        n += 1;
        if n == 4 {
            out[pos] = (block[0] << 2) | (block[1] >> 4);
            out[pos + 1] = (block[1] << 4) | (block[2] >> 2);
            out[pos + 2] = (block[2] << 6) | block[3];
            pos += 3;
            n = 0;
            if pad > 0 {
                match pad {
                    1 => pos -= 1,
                    2 => pos -= 2,
                    _ => return 0,
                }
                break;
            }
        }
    }
    pos
}

/// Append the base64 encoding of `src`.
pub fn base64_encode(src: &[u8], out: &mut Vec<u8>) {
    let mut chunks = src.chunks_exact(3);
    for c in &mut chunks {
        out.push(B64[usize::from(c[0] >> 2)]);
        out.push(B64[usize::from(((c[0] & 3) << 4) | (c[1] >> 4))]);
        out.push(B64[usize::from(((c[1] & 0xf) << 2) | (c[2] >> 6))]);
        out.push(B64[usize::from(c[2] & 0x3f)]);
    }
    match *chunks.remainder() {
        [a] => {
            out.push(B64[usize::from(a >> 2)]);
            out.push(B64[usize::from((a & 3) << 4)]);
            out.extend_from_slice(b"==");
        }
        [a, b] => {
            out.push(B64[usize::from(a >> 2)]);
            out.push(B64[usize::from(((a & 3) << 4) | (b >> 4))]);
            out.push(B64[usize::from((b & 0xf) << 2)]);
            out.push(b'=');
        }
        _ => {}
    }
}

fn base64_decode_key(src: &[u8]) -> Option<Key<'static>> {
    let mut buf = [0u8; KEY_BIN_MAX];
    let n = base64_decode(src, &mut buf);
    if n == 0 {
        return None;
    }
    Some(Key::Binary { buf, len: n as u8 })
}

// ---------------------------------------------------------------------------------------------
// Reply building.

/// Append ` k<key>` (base64 plus ` b` for binary keys), memcached's `META_KEY`.
pub fn put_key_flag(out: &mut Vec<u8>, key: &[u8], binary: bool) {
    out.extend_from_slice(b" k");
    if binary {
        base64_encode(key, out);
        out.extend_from_slice(b" b");
    } else {
        out.extend_from_slice(key);
    }
}

/// Append ` <flag><number>`.
pub fn put_num_flag(out: &mut Vec<u8>, flag: u8, v: u64) {
    out.push(b' ');
    out.push(flag);
    ascii::put_u64(out, v);
}

/// Append ` t<remaining>` (`-1` when the item never expires), memcached's rendering.
pub fn put_ttl_flag(out: &mut Vec<u8>, expires_at: u64, now: u64) {
    out.extend_from_slice(b" t");
    if expires_at == 0 {
        out.extend_from_slice(b"-1");
    } else {
        // memcached prints an unsigned 32-bit difference.
        ascii::put_u64(out, u64::from(expires_at.wrapping_sub(now) as u32));
    }
}

/// Append the reply flags that only echo the request (`O` and `k`): what misses and the
/// non-item replies of md/ma/ms carry.
pub fn put_echo_flags(out: &mut Vec<u8>, req: &Request<'_>) {
    for tok in req.flag_tokens() {
        match tok[0] {
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(tok);
            }
            b'k' => put_key_flag(out, req.key.as_bytes(), req.key.is_binary()),
            _ => {}
        }
    }
}

/// Encode a meta request line (clients and tests). `flags` are the raw flag tokens.
pub fn encode_request(
    out: &mut Vec<u8>,
    cmd: Cmd,
    key: &[u8],
    flags: &[&[u8]],
    value: Option<&[u8]>,
) {
    out.extend_from_slice(match cmd {
        Cmd::Get => b"mg",
        Cmd::Set => b"ms",
        Cmd::Delete => b"md",
        Cmd::Arith => b"ma",
        Cmd::Noop => b"mn",
        Cmd::Debug => b"me",
    });
    if cmd != Cmd::Noop {
        out.push(b' ');
        out.extend_from_slice(key);
    }
    if let Some(v) = value {
        out.push(b' ');
        ascii::put_u64(out, v.len() as u64);
    }
    for f in flags {
        out.push(b' ');
        out.extend_from_slice(f);
    }
    out.extend_from_slice(b"\r\n");
    if let Some(v) = value {
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lim() -> Limits {
        Limits::default()
    }

    fn ok(buf: &[u8]) -> (Request<'_>, usize) {
        match parse(buf, &lim()) {
            Parse::Request { req, consumed } => (req, consumed),
            other => panic!("{:?} => {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn bad(buf: &[u8]) -> (String, usize) {
        match parse(buf, &lim()) {
            Parse::Error { reply, swallow, .. } => {
                (String::from_utf8_lossy(&reply).into_owned(), swallow)
            }
            other => panic!("{:?} => {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn mg_flags() {
        let (r, c) = ok(b"mg foo v c f O123 k T30 N-1 R5 q u\r\n");
        assert_eq!(c, 36);
        assert_eq!(r.cmd, Cmd::Get);
        assert_eq!(r.key.as_bytes(), b"foo");
        assert!(r.flags.value && r.flags.quiet && r.flags.no_update);
        assert_eq!(r.flags.ttl, Some(30));
        assert_eq!(r.flags.vivify, Some(-1));
        assert_eq!(r.flags.recache, Some(5));
        assert_eq!(r.flag_tokens().count(), 10);
        assert_eq!(bad(b"mg\r\n").0, "ERROR\r\n");
        assert_eq!(bad(b"mg a x\r\n").0, "CLIENT_ERROR invalid flag\r\n");
        assert_eq!(bad(b"mg a E5\r\n").0, "CLIENT_ERROR invalid flag\r\n");
        assert_eq!(bad(b"mg a v v\r\n").0, "CLIENT_ERROR duplicate flag\r\n");
        assert_eq!(
            bad(b"mg a Tx\r\n").0,
            "CLIENT_ERROR bad token in command line format\r\n"
        );
        assert_eq!(bad(b"mz a\r\n").0, "ERROR\r\n");
        let many = format!(
            "mg a {}\r\n",
            (0..19)
                .map(|i| format!("O{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert_eq!(
            bad(many.as_bytes()).0,
            "CLIENT_ERROR options flags are too long\r\n"
        );
        let (r, _) = ok(b"mg a O123456789012345678901234567890123\r\n");
        assert!(r.flags.opaque_too_long);
    }

    #[test]
    fn base64_keys() {
        let (r, _) = ok(b"mg Zm9v b v\r\n");
        assert_eq!(r.key.as_bytes(), b"foo");
        assert!(r.key.is_binary());
        assert_eq!(
            bad(b"mg Zm9 b\r\n").0,
            "CLIENT_ERROR error decoding key\r\n"
        );
        assert_eq!(
            bad(b"md Zm9 b\r\n").0,
            "CLIENT_ERROR invalid or duplicate flag\r\n"
        );
        let mut out = [0u8; 10];
        assert_eq!(base64_decode(b"YQ==", &mut out), 1);
        assert_eq!(base64_decode(b"Y===", &mut out), 0);
        assert_eq!(base64_decode(b"Y!Q==", &mut out), 1);
        let mut enc = Vec::new();
        base64_encode(b"ab", &mut enc);
        assert_eq!(enc, b"YWI=");
        assert_eq!(ok(b"me Zm9v b\r\n").0.key.as_bytes(), b"foo");
    }

    #[test]
    fn ms_parse() {
        let (r, c) = ok(b"ms k 2 T10 F7 MA C5 I\r\nhi\r\n");
        assert_eq!(c, 27);
        assert_eq!(r.data, Data::Value(b"hi"));
        assert_eq!(r.set_mode(), SetMode::Append);
        assert_eq!(r.flags.client_flags, 7);
        assert_eq!(r.flags.compare_cas, Some(5));
        assert!(r.flags.invalidate);
        assert_eq!(
            bad(b"ms k\r\n").0,
            "CLIENT_ERROR bad command line format\r\n"
        );
        assert_eq!(
            bad(b"ms k x\r\n"),
            ("CLIENT_ERROR bad command line format\r\n".into(), 0)
        );
        assert_eq!(
            bad(b"ms k 2 MZ\r\nhi\r\n"),
            ("CLIENT_ERROR invalid mode for ms M token\r\n".into(), 4)
        );
        assert_eq!(
            bad(b"ms k 2 MEE\r\nhi\r\n").0,
            "CLIENT_ERROR incorrect length for M token\r\n"
        );
        assert_eq!(
            bad(b"ms k 2 F-1\r\nhi\r\n"),
            ("CLIENT_ERROR bad command line format\r\n".into(), 4)
        );
        let (r, _) = ok(b"ms k 2\r\nhiX\r\n");
        assert_eq!(r.data, Data::BadChunk);
        assert_eq!(parse(b"ms k 2\r\nh", &lim()), Parse::Incomplete);
    }

    #[test]
    fn md_ma_parse() {
        assert_eq!(
            bad(b"md a x\r\n").0,
            "CLIENT_ERROR invalid or duplicate flag\r\n"
        );
        assert_eq!(
            bad(b"ma a Dx\r\n").0,
            "CLIENT_ERROR invalid or duplicate flag\r\n"
        );
        assert_eq!(
            bad(b"ma a Mx\r\n").0,
            "CLIENT_ERROR invalid mode for ma M token\r\n"
        );
        let (r, _) = ok(b"ma a MD D5 N0 J10 v\r\n");
        assert!(!r.is_incr());
        assert_eq!(r.flags.delta, Some(5));
        assert_eq!(r.flags.initial, 10);
        assert_eq!(ok(b"mn x y\r\n").0.cmd, Cmd::Noop);
        assert_eq!(bad(b"me\r\n").0, "CLIENT_ERROR bad command line format\r\n");
    }

    proptest! {
        #[test]
        fn request_round_trip(
            cmd in prop::sample::select(vec![Cmd::Get, Cmd::Set, Cmd::Delete, Cmd::Arith]),
            key in "[!-~]{1,250}",
            fl in proptest::collection::btree_set(prop::sample::select(vec!["v", "c", "f", "k", "q", "s", "t", "h", "l", "u", "O7", "T30", "N5", "C9"]), 0..10),
            value in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let fl: Vec<&[u8]> = fl.iter().map(|s| s.as_bytes()).collect();
            let mut buf = Vec::new();
            let v = if cmd == Cmd::Set { Some(&value[..]) } else { None };
            encode_request(&mut buf, cmd, key.as_bytes(), &fl, v);
            let p = parse(&buf, &Limits::default());
            match &p {
                Parse::Request { req, consumed } => {
                    prop_assert_eq!(*consumed, buf.len());
                    prop_assert_eq!(req.cmd, cmd);
                    prop_assert_eq!(req.key.as_bytes(), key.as_bytes());
                    prop_assert_eq!(req.flag_tokens().collect::<Vec<_>>(), fl);
                    if let Some(v) = v { prop_assert_eq!(req.data, Data::Value(v)); }
                }
                other => prop_assert!(false, "{:?}", other),
            }
            for cut in 0..buf.len() {
                prop_assert_eq!(parse(&buf[..cut], &Limits::default()), Parse::Incomplete);
            }
        }

        #[test]
        fn base64_round_trip(data in proptest::collection::vec(any::<u8>(), 1..187)) {
            let mut enc = Vec::new();
            base64_encode(&data, &mut enc);
            let mut out = [0u8; 200];
            let n = base64_decode(&enc, &mut out);
            prop_assert_eq!(&out[..n], &data[..]);
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = b"m".to_vec();
            b.extend_from_slice(&buf);
            let _ = parse(&b, &Limits::default());
        }
    }
}
