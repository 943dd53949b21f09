//! Pure (I/O-free) codec for the Redis protocol as redis-server 7.0 speaks it: requests in
//! RESP multibulk form (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or inline form (`GET k\r\n`, a person
//! typing into `nc`), and replies encoded for RESP2 or RESP3.
//!
//! * [`parse_request`] takes what a connection has buffered and returns one command's arguments,
//!   or `Ok(None)` when more bytes are needed, or a [`ProtoError`] whose text is redis-server's
//!   (`Protocol error: invalid multibulk length`, ...; [`ProtoError::reply`] is Redis's reply to
//!   the byte), after which the connection is closed as Redis closes it. It parses exactly as
//!   redis-server 7.0.15 does, quirks included (see the `parse` module). A connection keeps a
//!   [`RequestParser`] instead to resume a multibulk that arrives over many reads where it
//!   stopped, rather than from its first header.
//! * [`Reply`] is a reply as a command produces it, independent of the protocol version: the
//!   RESP3-only shapes (maps, sets, doubles, booleans, nulls, pushes) are written as their RESP2
//!   equivalents by [`encode`] when the connection speaks RESP2, exactly as redis-server does.
//!
//! Never panics on any input; memory use is bounded by [`Limits`] (the parser never holds more
//! than the caller's buffer, and reserves room for at most 1024 arguments ahead of their bytes).

use bytes::{Bytes, BytesMut};

mod encode;
mod parse;

pub use encode::{encode, format_double};
pub use parse::{parse_request, RequestParser};

/// The protocol version a connection speaks (`HELLO 2` / `HELLO 3`; RESP2 until `HELLO 3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// Bounds on what a request may hold, as redis-server's settings of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `proto-max-bulk-len`: the largest bulk string argument (512 MiB by default).
    pub max_bulk_len: u64,
    /// The most arguments one multibulk may announce: a count above it is `invalid multibulk
    /// length`. Redis 7.0's bound is `INT_MAX` (`i32::MAX`, the default), which also caps any
    /// larger setting.
    pub max_multibulk_len: u64,
    /// The longest inline request, or multibulk header line before its `\r`, that may be
    /// buffered without its line end (`PROTO_INLINE_MAX_SIZE`, 64 KiB).
    pub max_inline_len: usize,
    /// Whether the client may run commands (`false` while a password is required and the
    /// client has not `AUTH`ed). Redis 7.0 then refuses multibulks of more than 10 arguments
    /// and bulks of more than 16384 bytes, so that an anonymous client cannot make it buffer
    /// much.
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: i32::MAX as u64,
            max_inline_len: 64 * 1024,
            authenticated: true,
        }
    }
}

/// A request the server cannot parse. The `Display` text is the error redis-server writes
/// (after `-ERR `) before it closes the connection; [`ProtoError::reply`] is that reply, byte
/// for byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: too big mbulk count string")]
    TooBigMbulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// The byte found where a bulk's `$` was expected, as Redis prints it (`\r` and `\n` as a
    /// space; a byte from 0x80 as the `char` of the same value, written back as that one byte
    /// by [`ProtoError::reply`]).
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// An unauthenticated client announced more than 10 arguments.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// An unauthenticated client announced a bulk of more than 16384 bytes.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
}

impl ProtoError {
    /// The error reply redis-server sends before closing the connection (`ERR Protocol
    /// error: ...`), exact to the byte (the `Display` text cannot hold a raw byte from 0x80).
    pub fn reply(&self) -> Reply {
        let mut text = b"ERR ".to_vec();
        match self {
            ProtoError::ExpectedDollar(c) => {
                text.extend_from_slice(b"Protocol error: expected '$', got '");
                match u8::try_from(u32::from(*c)) {
                    Ok(b) => text.push(b),
                    Err(_) => text.extend_from_slice(c.to_string().as_bytes()),
                }
                text.push(b'\'');
            }
            other => text.extend_from_slice(other.to_string().as_bytes()),
        }
        Reply::Error(Bytes::from(text))
    }
}

/// One parsed request: the command name and its arguments, as given (the name is not
/// case-folded). Empty inline lines are skipped by the parser and never returned.
pub type Args = Vec<Bytes>;

/// A reply, independent of the protocol version (see [`encode`] for how each variant is written).
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`
    Simple(Bytes),
    /// `-ERR ...`: the whole text after `-`, including its code (`ERR`, `WRONGTYPE`, `NOAUTH`...).
    Error(Bytes),
    /// `:1`
    Int(i64),
    /// `$3\r\nfoo`
    Bulk(Bytes),
    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// A missing array (`BLPOP` timing out, `EXEC` aborted): `*-1` in RESP2, `_` in RESP3.
    NilArray,
    Array(Vec<Reply>),
    /// RESP3 `%`; RESP2: a flat array key, value, key, value...
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `~`; RESP2: an array.
    Set(Vec<Reply>),
    /// RESP3 `,`; RESP2: a bulk string of [`format_double`].
    Double(f64),
    /// RESP3 `#t`/`#f`; RESP2: `:1`/`:0`.
    Bool(bool),
    /// RESP3 `=` with a three-letter format (`txt`); RESP2: a bulk string of the text.
    Verbatim(Bytes),
    /// RESP3 `>` (pub/sub messages, invalidations); RESP2: an array.
    Push(Vec<Reply>),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple(Bytes::from_static(b"OK"))
    }
    pub fn simple(s: &'static str) -> Reply {
        Reply::Simple(Bytes::from_static(s.as_bytes()))
    }
    /// An error reply from its full text (`"ERR syntax error"`, `"WRONGTYPE ..."`).
    pub fn error(text: impl Into<String>) -> Reply {
        Reply::Error(Bytes::from(text.into()))
    }
    pub fn bulk(b: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b))
    }
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// Convenience for building a [`BytesMut`] out of a reply.
pub fn encode_to_vec(reply: &Reply, proto: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(reply, proto, &mut out);
    out.to_vec()
}
