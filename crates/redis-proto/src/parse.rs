//! Request parsing: multibulk (`*N\r\n$len\r\n...`) and inline commands, with redis-server's
//! errors and limits.
//!
//! This is a port of redis-server 7.0.15's `processMultibulkBuffer`, `processInlineBuffer` and
//! `sdssplitargs` (src/networking.c, src/sds.c), quirks included, because a client must see the
//! same reply (or the same silence) from keel as from Redis for the same bytes:
//!
//! * Redis searches a line's end with `strchr`, which stops at a NUL byte: a header line or an
//!   inline request with a NUL before its `\r` (`\n` for inline) is never complete, and only the
//!   64 KiB limit ends the wait.
//! * After a header's `\r` (and after a bulk's payload) Redis skips two bytes without checking
//!   that they are `\r\n`.
//! * Numbers are read with `string2ll`: no sign but `-`, no leading zeros, no `-0`, at most 20
//!   characters.
//!
//! A multibulk whose arguments arrive over several reads is parsed again from its start by
//! [`parse_request`] (headers only: a payload that has not fully arrived is not scanned), or
//! resumed where it stopped by a [`RequestParser`] kept per connection.

use bytes::{Buf, BytesMut};

use crate::{Args, Limits, ProtoError};

/// The largest multibulk count Redis 7.0 accepts (`INT_MAX`), whatever the limits say.
const MAX_MULTIBULK: i64 = i32::MAX as i64;
/// An unauthenticated client may send at most this many arguments (`authRequired` in Redis 7.0).
const UNAUTH_MAX_MULTIBULK: i64 = 10;
/// An unauthenticated client may send bulks of at most this many bytes.
const UNAUTH_MAX_BULK: i64 = 16384;
/// Redis preallocates room for at most this many arguments before they arrive.
const ARGV_PREALLOC: usize = 1024;

/// Parse one request from the front of `buf`, removing its bytes. `Ok(None)`: more bytes are
/// needed (nothing is consumed, except skipped requests: empty inline lines and multibulks of
/// count `<= 0`, which redis-server consumes without running anything).
/// A multibulk's arguments are zero-copy slices of the buffer (an inline request's are new
/// `Bytes`, unescaped); a caller that keeps one beyond the request should copy it (a slice
/// keeps the whole read buffer alive).
///
/// A multibulk still incomplete is parsed again from its first byte at the next call (its
/// headers, not its payloads); [`RequestParser`] avoids even that.
pub fn parse_request(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Args>, ProtoError> {
    RequestParser::new().parse(buf, limits)
}

/// A resumable [`parse_request`]: it remembers how far an incomplete multibulk was parsed, so
/// a request with many arguments arriving over many reads is parsed in linear time.
///
/// Between calls the caller may only append to the buffer (as a connection's read buffer
/// grows); bytes are removed only by [`RequestParser::parse`] itself. After an error the parser
/// is reset (the connection is to be closed anyway).
#[derive(Debug, Default, Clone)]
pub struct RequestParser {
    /// The multibulk being read, once its `*N` header was read and `N > 0`.
    pending: Option<Multibulk>,
    /// The pending multibulk's arguments read so far, as (offset, length) in the buffer; kept
    /// between requests so that a connection's parser does not allocate it for each one.
    offsets: Vec<(usize, usize)>,
}

/// How far an incomplete multibulk was read (offsets into the caller's buffer).
#[derive(Debug, Clone)]
struct Multibulk {
    /// Bulks still to read.
    left: u64,
    /// The next byte to read: a `$len` header, or the payload when `bulk` is set.
    pos: usize,
    /// The current bulk's length, once its header was read.
    bulk: Option<u64>,
}

/// What one step of parsing found.
enum Step {
    /// More bytes are needed.
    Incomplete,
    /// A request that runs nothing was consumed; look at the next one.
    Skipped,
    /// A command.
    Command(Args),
}

impl RequestParser {
    /// A parser with no request in progress.
    pub fn new() -> Self {
        RequestParser::default()
    }

    /// Like [`parse_request`], resuming an incomplete multibulk where the previous call
    /// stopped (see the type's doc for the buffer rule).
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Args>, ProtoError> {
        loop {
            let step = if self.pending.is_some() {
                self.multibulk_args(buf, limits)
            } else if buf.is_empty() {
                return Ok(None);
            } else if buf[0] == b'*' {
                self.multibulk_header(buf, limits)
            } else {
                inline(buf, limits)
            };
            match step {
                Ok(Step::Incomplete) => return Ok(None),
                Ok(Step::Skipped) => continue,
                Ok(Step::Command(args)) => return Ok(Some(args)),
                Err(e) => {
                    self.pending = None;
                    return Err(e);
                }
            }
        }
    }

    /// Read the `*N\r\n` header at the front of `buf` (which starts with `*`).
    fn multibulk_header(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Step, ProtoError> {
        let Some(cr) = line_end(buf, b'\r') else {
            if buf.len() > limits.max_inline_len {
                return Err(ProtoError::TooBigMbulkCount);
            }
            return Ok(Step::Incomplete);
        };
        // Redis wants one more byte after the `\r`, whatever it is.
        if cr + 2 > buf.len() {
            return Ok(Step::Incomplete);
        }
        let max = i64::try_from(limits.max_multibulk_len)
            .unwrap_or(i64::MAX)
            .min(MAX_MULTIBULK);
        let count = match string2ll(&buf[1..cr]) {
            Some(n) if n <= max => n,
            _ => return Err(ProtoError::InvalidMultibulkLength),
        };
        if count > UNAUTH_MAX_MULTIBULK && !limits.authenticated {
            return Err(ProtoError::UnauthenticatedMultibulkLength);
        }
        if count <= 0 {
            buf.advance(cr + 2);
            return Ok(Step::Skipped);
        }
        // 0 < count <= i32::MAX, so both conversions hold.
        let count = count as u64;
        self.pending = Some(Multibulk {
            left: count,
            pos: cr + 2,
            bulk: None,
        });
        self.offsets.clear();
        self.offsets.reserve((count as usize).min(ARGV_PREALLOC));
        self.multibulk_args(buf, limits)
    }

    /// Read the bulks of the pending multibulk, as far as `buf` goes.
    fn multibulk_args(&mut self, buf: &mut BytesMut, limits: &Limits) -> Result<Step, ProtoError> {
        let Some(mb) = self.pending.as_mut() else {
            return Ok(Step::Incomplete);
        };
        if mb.pos > buf.len() {
            // The caller broke the append-only rule: start over from the buffer's front.
            self.pending = None;
            return Ok(Step::Skipped);
        }
        while mb.left > 0 {
            let len = match mb.bulk {
                Some(len) => len,
                None => {
                    let rest = &buf[mb.pos..];
                    let Some(cr) = line_end(rest, b'\r') else {
                        if rest.len() > limits.max_inline_len {
                            return Err(ProtoError::TooBigBulkCount);
                        }
                        return Ok(Step::Incomplete);
                    };
                    if cr + 2 > rest.len() {
                        return Ok(Step::Incomplete);
                    }
                    if rest[0] != b'$' {
                        return Err(ProtoError::ExpectedDollar(printed_char(rest[0])));
                    }
                    let len = match string2ll(&rest[1..cr]) {
                        Some(n) if n >= 0 && n as u64 <= limits.max_bulk_len => n,
                        _ => return Err(ProtoError::InvalidBulkLength),
                    };
                    if len > UNAUTH_MAX_BULK && !limits.authenticated {
                        return Err(ProtoError::UnauthenticatedBulkLength);
                    }
                    mb.pos += cr + 2;
                    mb.bulk = Some(len as u64);
                    len as u64
                }
            };
            // The payload and the two bytes after it (meant to be `\r\n`, not checked).
            let have = (buf.len() - mb.pos) as u64;
            if have < len + 2 {
                return Ok(Step::Incomplete);
            }
            // len + 2 <= have, a buffer length: it fits in usize.
            let len = len as usize;
            self.offsets.push((mb.pos, len));
            mb.pos += len + 2;
            mb.bulk = None;
            mb.left -= 1;
        }
        let Some(mb) = self.pending.take() else {
            return Ok(Step::Incomplete);
        };
        let frame = buf.split_to(mb.pos).freeze();
        let args = self
            .offsets
            .iter()
            .map(|&(start, len)| frame.slice(start..start + len))
            .collect();
        if self.offsets.capacity() > ARGV_PREALLOC {
            // Do not keep a huge request's worth of room for the connection's lifetime.
            self.offsets = Vec::new();
        }
        Ok(Step::Command(args))
    }
}

/// Read an inline request (a line up to `\n`) at the front of `buf`.
fn inline(buf: &mut BytesMut, limits: &Limits) -> Result<Step, ProtoError> {
    let Some(nl) = line_end(buf, b'\n') else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtoError::TooBigInline);
        }
        return Ok(Step::Incomplete);
    };
    let mut line = &buf[..nl];
    if let [head @ .., b'\r'] = line {
        line = head;
    }
    let args = split_args(line).ok_or(ProtoError::UnbalancedQuotes)?;
    buf.advance(nl + 1);
    if args.is_empty() {
        Ok(Step::Skipped)
    } else {
        Ok(Step::Command(args))
    }
}

/// Where `strchr(buf, end)` finds `end`: its offset, or `None` when the buffer ends or a NUL
/// byte comes first (C strings end there).
fn line_end(buf: &[u8], end: u8) -> Option<usize> {
    let i = buf.iter().position(|&b| b == end || b == 0)?;
    (buf[i] == end).then_some(i)
}

/// The character Redis prints for byte `b` in `expected '$', got '%c'`: the byte itself, except
/// that `\r` and `\n` become spaces (addReplyErrorFormat keeps the reply on one line). Bytes
/// from 0x80 are kept as the `char` of the same value (see [`ProtoError::reply`]).
fn printed_char(b: u8) -> char {
    match b {
        b'\r' | b'\n' => ' ',
        _ => char::from(b),
    }
}

/// Redis's `string2ll`: an optional `-`, then `0` alone or digits not starting with `0`, the
/// whole fitting in an `i64` and shorter than 21 characters.
fn string2ll(s: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE: 21.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// C's `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Redis's `sdssplitargs`: split an inline request into arguments. `None`: unbalanced quotes.
///
/// Blanks (`isspace`) separate arguments; inside an argument only space, tab, `\r` and `\n`
/// end it. `"double quotes"` take `\n \r \t \b \a`, `\xHH` and `\<any>` escapes; `'single
/// quotes'` only `\'`. A quote may open in the middle of an argument (`a"b c"` is `ab c`) but
/// a closing quote must be followed by a blank or the end of the line.
fn split_args(line: &[u8]) -> Option<Args> {
    // The line holds no NUL (line_end stops there): reading 0 past the end is C's terminator.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut args = Args::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            let c = at(p);
            if in_dq {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && at(p + 2).is_ascii_hexdigit()
                    && at(p + 3).is_ascii_hexdigit()
                {
                    current.push(hex(at(p + 2)) * 16 + hex(at(p + 3)));
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else if in_sq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        if c != 0 {
                            p += 1;
                        }
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    _ => current.push(c),
                }
            }
            p += 1;
        }
        args.push(current.into());
    }
}

/// The value of an ASCII hex digit (checked by the caller).
fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
