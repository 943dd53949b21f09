//! What memcached's text and meta commands share: how a command line is framed and split into
//! tokens, how numbers in it are read, how a data block is taken, the common error replies, and
//! decimal encoding. The dependencies point one way: [`crate::meta`] builds on this module alone,
//! [`crate::text`] on this module and on [`crate::meta`] (it hands `m?` lines to the meta parser).
//!
//! # How memcached reads a line, and how this module copies it
//! * A line ends at the first `\n`; one `\r` before it is dropped unless the line is just `\r\n`.
//!   The line is cut at its first NUL byte (memcached works on C strings).
//! * If no `\n` is buffered and more than [`Limits::max_line`] bytes are, the connection is closed,
//!   unless the buffer starts (after at most 100 spaces) with `get ` or `gets `, which may be up to
//!   [`Limits::max_get_line`] long. A non-retrieval line longer than memcached's whole read buffer
//!   ([`READ_BUFFER_SIZE`]) can never be read by memcached and also closes the connection.
//! * Tokens are separated by single spaces only (tabs belong to tokens); at most 23 tokens are
//!   split off, the rest of the line stays one unprocessed remainder, exactly like
//!   `tokenize_command()`. Multi-key retrievals keep splitting the remainder.
//! * Numbers are read like `strtoul`/`strtol`/`strtoull` plus memcached's `safe_*` checks: leading
//!   whitespace and `+`/`-` are accepted, the number may be followed by whitespace-started junk
//!   inside the token, 32-bit flags are the low 32 bits of a 64-bit parse (`4294967297` is `1`),
//!   exptime and value length are the low 32 bits of a signed 64-bit parse.
//! * A data block is `<bytes>+2` bytes; if those do not end in `\r\n` the answer is
//!   `CLIENT_ERROR bad data chunk` and nothing more is skipped (the next byte starts the next
//!   command line), as in memcached.

use std::borrow::Cow;

use crate::{Limits, Parse};

/// memcached's read buffer: a non-retrieval command line must fit in it.
pub const READ_BUFFER_SIZE: usize = 16384;
/// memcached's `KEY_MAX_LENGTH`.
pub const KEY_MAX_LENGTH: usize = 250;
/// memcached's `MAX_TOKENS` (23 tokens plus the terminal one).
pub(crate) const MAX_TOKENS: usize = 24;

/// The data block of a storage command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data<'a> {
    /// `<bytes>` bytes followed by `\r\n` (the value, without the `\r\n`).
    Value(&'a [u8]),
    /// `<bytes>+2` bytes were read but did not end in `\r\n`: memcached answers
    /// `CLIENT_ERROR bad data chunk` (unless the item is too large, which is checked first).
    BadChunk,
    /// `<bytes>+2` exceeds [`Limits::item_size_max`], so the item can never fit: the data was not
    /// buffered. `consumed` covers the command line only; the executor answers
    /// `SERVER_ERROR object too large for cache` and swallows `len + 2` bytes.
    TooLarge,
}

pub(crate) const ERROR: &[u8] = b"ERROR\r\n";
pub(crate) const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";

/// A parse error carrying a fixed reply.
pub(crate) fn error<T>(reply: &'static [u8], consumed: usize) -> Parse<T> {
    Parse::Error {
        reply: Cow::Borrowed(reply),
        consumed,
        swallow: 0,
        close: false,
    }
}

/// An error whose reply `noreply` may silence.
pub(crate) fn error_nr<T>(reply: &'static [u8], consumed: usize, noreply: bool) -> Parse<T> {
    error(if noreply { b"" } else { reply }, consumed)
}

pub(crate) fn close<T>() -> Parse<T> {
    Parse::Error {
        reply: Cow::Borrowed(b""),
        consumed: 0,
        swallow: 0,
        close: true,
    }
}

/// One command line, as memcached sees it.
pub(crate) struct Line<'a> {
    /// The line without `\n`, without a trailing `\r` and cut at the first NUL.
    pub text: &'a [u8],
    /// Bytes up to and including the `\n`.
    pub consumed: usize,
}

fn starts_like_get(buf: &[u8]) -> bool {
    let spaces = buf.iter().take_while(|&&b| b == b' ').count();
    if spaces > 100 {
        return false;
    }
    let p = &buf[spaces..];
    p.starts_with(b"get ") || p.starts_with(b"gets ")
}

/// Frame the first line of `buf` (memcached's `try_read_command_ascii`).
pub(crate) fn frame_line<'a>(buf: &'a [u8], limits: &Limits) -> Result<Line<'a>, Parse<()>> {
    let nl = match memchr(b'\n', buf) {
        Some(i) => i,
        None => {
            if buf.len() > limits.max_line
                && (!starts_like_get(buf) || buf.len() > limits.max_get_line)
            {
                return Err(close());
            }
            return Err(Parse::Incomplete);
        }
    };
    if nl >= READ_BUFFER_SIZE.max(limits.max_line)
        && (!starts_like_get(buf) || nl >= limits.max_get_line)
    {
        return Err(close());
    }
    let mut end = nl;
    if nl > 1 && buf[nl - 1] == b'\r' {
        end -= 1;
    }
    let mut text = &buf[..end];
    if let Some(z) = memchr(0, text) {
        text = &text[..z];
    }
    Ok(Line {
        text,
        consumed: nl + 1,
    })
}

#[inline]
pub(crate) fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// The tokens of a command line (`tokenize_command` with `MAX_TOKENS`).
#[derive(Clone, Copy)]
pub(crate) struct Tokens<'a> {
    pub toks: [&'a [u8]; MAX_TOKENS - 1],
    /// Number of real tokens (memcached's `ntokens` is this plus one).
    pub n: usize,
    /// The unprocessed remainder after the 23rd token, if any.
    pub rest: Option<&'a [u8]>,
}

impl<'a> Tokens<'a> {
    pub fn split(line: &'a [u8]) -> Tokens<'a> {
        let mut t = Tokens {
            toks: [&[]; MAX_TOKENS - 1],
            n: 0,
            rest: None,
        };
        let len = line.len();
        let mut s = 0;
        let mut i = 0;
        while i < len {
            if line[i] == b' ' {
                if s != i {
                    t.toks[t.n] = &line[s..i];
                    t.n += 1;
                    if t.n == MAX_TOKENS - 1 {
                        let e = i + 1;
                        if e < len {
                            t.rest = Some(&line[e..]);
                        }
                        return t;
                    }
                }
                s = i + 1;
            }
            i += 1;
        }
        if s != i {
            t.toks[t.n] = &line[s..i];
            t.n += 1;
        }
        t
    }
    /// memcached's `ntokens` (real tokens + the terminal one).
    pub fn ntokens(&self) -> usize {
        self.n + 1
    }
    /// Token `i`, or empty for the terminal token / beyond.
    pub fn get(&self, i: usize) -> &'a [u8] {
        if i < self.n {
            self.toks[i]
        } else {
            &[]
        }
    }
    /// memcached's `set_noreply_maybe`: is the last real token `noreply`?
    pub fn noreply(&self) -> bool {
        self.n >= 1 && self.toks[self.n - 1] == b"noreply"
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers, the C library way.

#[inline]
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// strtoull/strtoll core: (negative, magnitude or None on overflow of u64, end index), or None if
/// no digits were found.
fn c_scan(tok: &[u8]) -> Option<(bool, Option<u64>, usize)> {
    let mut i = 0;
    while i < tok.len() && c_isspace(tok[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < tok.len() && (tok[i] == b'+' || tok[i] == b'-') {
        neg = tok[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut v: Option<u64> = Some(0);
    while i < tok.len() && tok[i].is_ascii_digit() {
        v = v
            .and_then(|v| v.checked_mul(10))
            .and_then(|v| v.checked_add(u64::from(tok[i] - b'0')));
        i += 1;
    }
    if i == start {
        return None;
    }
    Some((neg, v, i))
}

#[inline]
fn c_end_ok(tok: &[u8], end: usize) -> bool {
    end == tok.len() || c_isspace(tok[end])
}

/// memcached's `safe_strtoull`.
pub fn safe_strtoull(tok: &[u8]) -> Option<u64> {
    let (neg, mag, end) = c_scan(tok)?;
    let mag = mag?; // ERANGE
    let v = if neg { mag.wrapping_neg() } else { mag };
    if !c_end_ok(tok, end) {
        return None;
    }
    if (v as i64) < 0 && tok.contains(&b'-') {
        return None;
    }
    Some(v)
}

/// memcached's `safe_strtoul` into a `uint32_t` (the 64-bit result is truncated).
pub fn safe_strtoul(tok: &[u8]) -> Option<u32> {
    safe_strtoull(tok).map(|v| v as u32)
}

/// memcached's `safe_strtol` into an `int32_t` (a 64-bit `long` parse, then truncated).
pub fn safe_strtol(tok: &[u8]) -> Option<i32> {
    let (neg, mag, end) = c_scan(tok)?;
    let mag = mag?;
    let v: i64 = if neg {
        if mag > 1u64 << 63 {
            return None;
        }
        (mag as i64).wrapping_neg()
    } else {
        if mag > i64::MAX as u64 {
            return None;
        }
        mag as i64
    };
    if !c_end_ok(tok, end) {
        return None;
    }
    Some(v as i32)
}

pub(crate) fn retype<T, U>(p: Parse<T>) -> Parse<U> {
    match p {
        Parse::Incomplete => Parse::Incomplete,
        Parse::Error {
            reply,
            consumed,
            swallow,
            close,
        } => Parse::Error {
            reply,
            consumed,
            swallow,
            close,
        },
        Parse::Request { .. } => Parse::Incomplete,
    }
}

/// Read the `len + 2` bytes of a data block that starts at `at`. `None` = not all buffered yet.
pub(crate) fn read_data<'a>(
    buf: &'a [u8],
    at: usize,
    len: usize,
    limits: &Limits,
) -> Option<(Data<'a>, usize)> {
    let total = len + 2;
    if total > limits.item_size_max {
        return Some((Data::TooLarge, at));
    }
    if buf.len() < at + total {
        return None;
    }
    let block = &buf[at..at + total];
    let data = if &block[len..] == b"\r\n" {
        Data::Value(&block[..len])
    } else {
        Data::BadChunk
    };
    Some((data, at + total))
}

// ---------------------------------------------------------------------------------------------
// Decimal encoding.

/// Append the decimal form of `v`.
#[inline]
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Append the decimal form of a signed `v`.
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    put_u64(out, v.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_like_libc() {
        assert_eq!(safe_strtoul(b"4294967297"), Some(1));
        assert_eq!(safe_strtoul(b"18446744073709551615"), Some(u32::MAX));
        assert_eq!(safe_strtoul(b"18446744073709551616"), None);
        assert_eq!(safe_strtoul(b"-1"), None);
        assert_eq!(safe_strtoul(b"-0"), Some(0));
        assert_eq!(safe_strtoul(b"+7"), Some(7));
        assert_eq!(safe_strtoul(b"7\tjunk"), Some(7));
        assert_eq!(safe_strtoul(b"7x"), None);
        assert_eq!(safe_strtoul(b""), None);
        assert_eq!(safe_strtoul(b"-"), None);
        assert_eq!(safe_strtoul(b"\t5"), Some(5));
        // A negative that wraps to a small positive 64-bit number is accepted by strtoul.
        assert_eq!(
            safe_strtoull(b"-9223372036854775809"),
            Some(9223372036854775807)
        );
        assert_eq!(safe_strtol(b"2147483648"), Some(i32::MIN));
        assert_eq!(safe_strtol(b"4294967297"), Some(1));
        assert_eq!(safe_strtol(b"-5"), Some(-5));
        assert_eq!(safe_strtol(b"9223372036854775808"), None);
        assert_eq!(safe_strtol(b"-9223372036854775808"), Some(0));
        assert_eq!(safe_strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(safe_strtoull(b"-1"), None);
    }

    #[test]
    fn tokenizer_matches_memcached() {
        let t = Tokens::split(b"  a  b c ");
        assert_eq!(t.n, 3);
        assert_eq!(&t.toks[..3], &[&b"a"[..], b"b", b"c"]);
        assert!(t.rest.is_none());
        let line: Vec<u8> = (0..30)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(" ")
            .into_bytes();
        let t = Tokens::split(&line);
        assert_eq!(t.n, 23);
        assert_eq!(
            t.rest.unwrap(),
            &line[line.len() - "t23 t24 t25 t26 t27 t28 t29".len()..]
        );
        let t = Tokens::split(b"a\tb c");
        assert_eq!(t.n, 2);
    }
}
