//! Pure, I/O-free codecs for memcached's three wire protocols, shared by keel's cache server, its
//! benchmark client, its tests and its fuzz targets.
//!
//! * [`text`]: the classic text protocol (`get`, `set`, `incr`, `stats`, …).
//! * [`meta`]: the meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`), which share the text
//!   protocol's connection and line framing.
//! * [`ascii`]: what text and meta share (line framing, tokens, numbers, data blocks).
//! * [`binary`]: the binary protocol (24-byte headers, magic `0x80`/`0x81`).
//!
//! Parsers never panic and never allocate without bound: a parser looks at a buffer and says
//! whether it holds a whole request ([`Parse::Request`]), needs more bytes ([`Parse::Incomplete`]),
//! or is malformed ([`Parse::Error`], carrying memcached's exact reply and how much input to drop).
//! Parsing knows nothing about items; executing a request against a store is the server's job.

#![forbid(unsafe_code)]

pub mod ascii;
pub mod binary;
pub mod meta;
pub mod text;

use std::borrow::Cow;

/// Limits a parser enforces (memcached's defaults).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest key in bytes (memcached: 250).
    pub max_key_len: usize,
    /// Largest item (`-I`, default 1 MiB). Values that cannot fit are still framed (so the
    /// connection stays in sync) and reported as too large.
    pub item_size_max: usize,
    /// Longest command line that is not a retrieval (`get`/`gets`/`gat`/`gats`) line.
    pub max_line: usize,
    /// Longest retrieval line (many keys): lines longer than this close the connection.
    pub max_get_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_len: 250,
            item_size_max: 1 << 20,
            max_line: 2048,
            max_get_line: 1 << 20,
        }
    }
}

/// The outcome of looking at a buffer of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// A complete request that used the first `consumed` bytes of the buffer.
    Request { req: T, consumed: usize },
    /// The buffer holds only part of a request: read more and call again with the longer buffer.
    Incomplete,
    /// Malformed input. Send `reply` (exact bytes, e.g. `CLIENT_ERROR bad command line format\r\n`;
    /// may be empty), drop the first `consumed` bytes, then discard the next `swallow` bytes as they
    /// arrive (a value that follows a rejected command line), or close the connection if `close`.
    Error {
        reply: Cow<'static, [u8]>,
        consumed: usize,
        swallow: usize,
        close: bool,
    },
}
