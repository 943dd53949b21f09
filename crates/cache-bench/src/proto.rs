//! The slice of memcached's text protocol that the load generator speaks: encoding `get` and `set`
//! requests for numbered keys, and an incremental parser for the replies to them.
//!
//! The parser never consumes a partial reply: [`parse_reply`] returns `Ok(None)` until the whole
//! reply (for a hit: header line, data block and `END`) is in the buffer, so a reader can feed it
//! whatever the socket returned and retry after the next read.

use thiserror::Error;

/// Prefix of every key; the key number follows as [`KEY_DIGITS`] zero-padded decimal digits.
pub const KEY_PREFIX: &[u8] = b"key:";
/// Number of decimal digits after [`KEY_PREFIX`] (keys are all the same length).
pub const KEY_DIGITS: usize = 10;
/// Longest reply line accepted before the reply is declared malformed.
pub const MAX_LINE: usize = 2048;

/// What a well-formed reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `VALUE <key> <flags> <bytes>` + data + `END`: a hit with `len` bytes of data.
    Hit { len: usize },
    /// `END` alone: a miss.
    Miss,
    /// `STORED`.
    Stored,
    /// `NOT_STORED`, `EXISTS` or `NOT_FOUND`: a storage command that did not store.
    NotStored,
    /// `ERROR`, `CLIENT_ERROR …` or `SERVER_ERROR …`.
    Error(ErrorKind),
}

/// Which of memcached's three error replies was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `ERROR`: unknown command.
    Error,
    /// `CLIENT_ERROR <msg>`.
    Client,
    /// `SERVER_ERROR <msg>` (e.g. out of memory).
    Server,
}

/// A reply that cannot be part of a `get`/`set` conversation.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// The reply line is not one that `get` or `set` can produce.
    #[error("unexpected reply line {0:?}")]
    Unexpected(String),
    /// A `VALUE` header line without a parsable byte count.
    #[error("malformed VALUE line {0:?}")]
    BadValueHeader(String),
    /// The data block of a hit is not followed by `\r\nEND\r\n`.
    #[error("data block of a VALUE reply is not terminated by \\r\\nEND\\r\\n")]
    BadTerminator,
    /// No `\r\n` in the first [`MAX_LINE`] bytes.
    #[error("reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

/// Appends key number `n` (`key:0000000042`) to `out`.
#[inline]
pub fn push_key(out: &mut Vec<u8>, mut n: u64) {
    out.extend_from_slice(KEY_PREFIX);
    let mut digits = [b'0'; KEY_DIGITS];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits);
}

/// Appends `get <key>\r\n` for key number `n`.
#[inline]
pub fn encode_get(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"get ");
    push_key(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends `set <key> 0 0 <len>\r\n<value>\r\n` for key number `n`, with the value of `tpl`.
#[inline]
pub fn encode_set(out: &mut Vec<u8>, n: u64, tpl: &SetTemplate) {
    out.extend_from_slice(b"set ");
    push_key(out, n);
    out.extend_from_slice(&tpl.header_tail);
    out.extend_from_slice(&tpl.value);
    out.extend_from_slice(b"\r\n");
}

/// The parts of a `set` request that do not depend on the key, built once per run.
#[derive(Debug, Clone)]
pub struct SetTemplate {
    header_tail: Vec<u8>,
    value: Vec<u8>,
}

impl SetTemplate {
    /// A template storing `value_size` bytes (a repeating printable pattern), flags 0, no expiry.
    pub fn new(value_size: usize) -> Self {
        let header_tail = format!(" 0 0 {value_size}\r\n").into_bytes();
        let value = (0..value_size).map(|i| b'a' + (i % 26) as u8).collect();
        SetTemplate { header_tail, value }
    }
}

/// Finds the first `\r\n` in `buf`; returns the index of `\r`.
#[inline]
fn find_crlf(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf[from..].iter().position(|&b| b == b'\n') {
        let at = from + i;
        if at > 0 && buf[at - 1] == b'\r' {
            return Some(at - 1);
        }
        from = at + 1;
    }
    None
}

fn lossy(line: &[u8]) -> String {
    String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned()
}

/// Parses the reply at the start of `buf`. Returns the reply and the number of bytes it occupies,
/// `Ok(None)` if `buf` holds only part of a reply, or an error if it cannot be a reply to
/// `get`/`set`.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtoError> {
    let Some(eol) = find_crlf(buf) else {
        return if buf.len() > MAX_LINE {
            Err(ProtoError::LineTooLong)
        } else {
            Ok(None)
        };
    };
    if eol > MAX_LINE {
        return Err(ProtoError::LineTooLong);
    }
    let line = &buf[..eol];
    let after = eol + 2;
    let simple = |r| Ok(Some((r, after)));
    match line {
        b"END" => simple(Reply::Miss),
        b"STORED" => simple(Reply::Stored),
        b"NOT_STORED" | b"EXISTS" | b"NOT_FOUND" => simple(Reply::NotStored),
        b"ERROR" => simple(Reply::Error(ErrorKind::Error)),
        _ if line.starts_with(b"CLIENT_ERROR") => simple(Reply::Error(ErrorKind::Client)),
        _ if line.starts_with(b"SERVER_ERROR") => simple(Reply::Error(ErrorKind::Server)),
        _ if line.starts_with(b"VALUE ") => {
            // VALUE <key> <flags> <bytes> [<cas>]
            let mut fields = line[6..].split(|&b| b == b' ').filter(|f| !f.is_empty());
            let len = fields
                .nth(2)
                .and_then(|f| std::str::from_utf8(f).ok())
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| ProtoError::BadValueHeader(lossy(line)))?;
            let end = after + len + 2 + 5;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[after + len..end] != b"\r\nEND\r\n" {
                return Err(ProtoError::BadTerminator);
            }
            Ok(Some((Reply::Hit { len }, end)))
        }
        _ => Err(ProtoError::Unexpected(lossy(line))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_get_and_set() {
        let mut out = Vec::new();
        encode_get(&mut out, 42);
        assert_eq!(out, b"get key:0000000042\r\n");
        out.clear();
        encode_set(&mut out, 1_234_567_890, &SetTemplate::new(5));
        assert_eq!(out, b"set key:1234567890 0 0 5\r\nabcde\r\n");
        out.clear();
        encode_set(&mut out, 0, &SetTemplate::new(0));
        assert_eq!(out, b"set key:0000000000 0 0 0\r\n\r\n");
    }

    /// A stream of replies of every kind, with the replies it must parse into.
    fn stream() -> (Vec<u8>, Vec<Reply>) {
        let mut s = Vec::new();
        let mut r = Vec::new();
        s.extend_from_slice(b"VALUE key:0000000001 0 5\r\nab\r\nd\r\nEND\r\n");
        r.push(Reply::Hit { len: 5 });
        s.extend_from_slice(b"END\r\n");
        r.push(Reply::Miss);
        s.extend_from_slice(b"STORED\r\n");
        r.push(Reply::Stored);
        s.extend_from_slice(b"VALUE key:0000000002 4294967295 0 77\r\n\r\nEND\r\n");
        r.push(Reply::Hit { len: 0 });
        s.extend_from_slice(b"NOT_STORED\r\n");
        r.push(Reply::NotStored);
        s.extend_from_slice(b"SERVER_ERROR out of memory storing object\r\n");
        r.push(Reply::Error(ErrorKind::Server));
        s.extend_from_slice(b"CLIENT_ERROR bad data chunk\r\n");
        r.push(Reply::Error(ErrorKind::Client));
        s.extend_from_slice(b"ERROR\r\n");
        r.push(Reply::Error(ErrorKind::Error));
        let big = vec![b'\n'; 3000];
        s.extend_from_slice(b"VALUE k 0 3000\r\n");
        s.extend_from_slice(&big);
        s.extend_from_slice(b"\r\nEND\r\n");
        r.push(Reply::Hit { len: 3000 });
        (s, r)
    }

    /// Feeds `chunks` one after another into a buffer and parses as a reader would.
    fn parse_chunks(chunks: &[&[u8]]) -> Vec<Reply> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some((reply, used)) = parse_reply(&buf).unwrap() {
                out.push(reply);
                buf.drain(..used);
            }
        }
        assert!(
            buf.is_empty(),
            "left over: {:?}",
            String::from_utf8_lossy(&buf)
        );
        out
    }

    #[test]
    fn parses_every_reply_kind_in_one_buffer() {
        let (s, r) = stream();
        assert_eq!(parse_chunks(&[&s]), r);
    }

    #[test]
    fn parses_split_at_every_byte() {
        let (s, r) = stream();
        for i in 0..=s.len() {
            assert_eq!(parse_chunks(&[&s[..i], &s[i..]]), r, "split at {i}");
        }
    }

    #[test]
    fn parses_fed_one_byte_at_a_time() {
        let (s, r) = stream();
        let chunks: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(parse_chunks(&chunks), r);
    }

    #[test]
    fn partial_replies_are_not_consumed() {
        assert_eq!(parse_reply(b""), Ok(None));
        assert_eq!(parse_reply(b"STORED\r"), Ok(None));
        assert_eq!(parse_reply(b"VALUE k 0 5\r\nabcde\r\nEND\r"), Ok(None));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            parse_reply(b"HELLO\r\n"),
            Err(ProtoError::Unexpected(_))
        ));
        assert!(matches!(
            parse_reply(b"VALUE k 0\r\n"),
            Err(ProtoError::BadValueHeader(_))
        ));
        assert!(matches!(
            parse_reply(b"VALUE k 0 x\r\n"),
            Err(ProtoError::BadValueHeader(_))
        ));
        assert_eq!(
            parse_reply(b"VALUE k 0 2\r\nabcdEND\r\n"),
            Err(ProtoError::BadTerminator)
        );
        assert_eq!(
            parse_reply(&[b'x'; MAX_LINE + 1]),
            Err(ProtoError::LineTooLong)
        );
    }

    #[test]
    fn bare_newline_is_not_a_line_end() {
        assert_eq!(
            parse_reply(b"END\nSTORED\r\n").unwrap_err(),
            ProtoError::Unexpected("END\nSTORED".into())
        );
    }
}
