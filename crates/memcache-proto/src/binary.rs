//! memcached's binary protocol (deprecated upstream since 1.6, still spoken by libmemcached with
//! `--BINARY-PROTOCOL`, spymemcached, and others): 24-byte big-endian headers, request magic
//! `0x80`, response magic `0x81`, then extras, key and value.
//!
//! * [`parse`] frames one request from the front of a buffer and validates it exactly as
//!   memcached 1.6.18's `proto_bin.c` does, so that the server answers malformed packets with the
//!   same status and the same connection fate (close, or swallow the body).
//! * [`Request::encode`] is the inverse (clients, benchmarks, tests).
//! * [`encode_response`] / [`encode_error`] / [`encode_stat`] build replies; [`parse_response`]
//!   reads them back (clients and tests).
//!
//! Framing follows memcached: a request is consumed as header + extras + key, plus the value for
//! storage commands. For `Stat`, `Touch` and `GAT*`, memcached does not check the body length, so
//! any bytes past the key are left in the input and read as the next header, exactly as there.
//! A value too large for `item_size_max` is never buffered: the request comes back as
//! [`Command::TooLarge`] and the server swallows the value.

use std::borrow::Cow;

use crate::{Limits, Parse};

/// First byte of every request.
pub const MAGIC_REQUEST: u8 = 0x80;
/// First byte of every response.
pub const MAGIC_RESPONSE: u8 = 0x81;
/// Size of a request or response header.
pub const HEADER_LEN: usize = 24;
/// Incr/decr `expiration` meaning "fail with `Not found` instead of creating the item".
pub const NO_CREATE: u32 = 0xffff_ffff;

/// Opcodes (memcached's `protocol_binary.h`).
pub mod opcode {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCREMENT: u8 = 0x05;
    pub const DECREMENT: u8 = 0x06;
    pub const QUIT: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCREMENTQ: u8 = 0x15;
    pub const DECREMENTQ: u8 = 0x16;
    pub const QUITQ: u8 = 0x17;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    pub const VERBOSITY: u8 = 0x1b;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const SASL_LIST_MECHS: u8 = 0x20;
    pub const SASL_AUTH: u8 = 0x21;
    pub const SASL_STEP: u8 = 0x22;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
}

/// Response status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Status {
    Success = 0x00,
    KeyNotFound = 0x01,
    KeyExists = 0x02,
    TooLarge = 0x03,
    InvalidArguments = 0x04,
    NotStored = 0x05,
    NonNumeric = 0x06,
    AuthError = 0x20,
    AuthContinue = 0x21,
    UnknownCommand = 0x81,
    OutOfMemory = 0x82,
    /// keel's cluster mode: the operation could not be carried out (no quorum, timeout, …);
    /// the error body says why. memcached never sends it, clients know it as EINTERNAL.
    Internal = 0x84,
}

impl Status {
    /// The wire value.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The status for a wire value, if it is one memcached uses.
    pub fn from_code(code: u16) -> Option<Status> {
        Some(match code {
            0x00 => Status::Success,
            0x01 => Status::KeyNotFound,
            0x02 => Status::KeyExists,
            0x03 => Status::TooLarge,
            0x04 => Status::InvalidArguments,
            0x05 => Status::NotStored,
            0x06 => Status::NonNumeric,
            0x20 => Status::AuthError,
            0x21 => Status::AuthContinue,
            0x81 => Status::UnknownCommand,
            0x82 => Status::OutOfMemory,
            0x84 => Status::Internal,
            _ => return None,
        })
    }

    /// The body memcached sends with this status in an error response (`write_bin_error`).
    pub fn message(self) -> &'static str {
        match self {
            Status::Success => "",
            Status::KeyNotFound => "Not found",
            Status::KeyExists => "Data exists for key.",
            Status::TooLarge => "Too large.",
            Status::InvalidArguments => "Invalid arguments",
            Status::NotStored => "Not stored.",
            Status::NonNumeric => "Non-numeric server-side value for incr or decr",
            Status::AuthError => "Auth failure.",
            Status::AuthContinue => "",
            Status::UnknownCommand => "Unknown command",
            Status::OutOfMemory => "Out of memory",
            Status::Internal => "Internal error",
        }
    }
}

/// How a storage request treats an existing item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreOp {
    Set,
    Add,
    Replace,
    /// Append/Prepend carry no extras: their `flags` and `exptime` are always 0.
    Append,
    Prepend,
}

impl StoreOp {
    fn has_extras(self) -> bool {
        matches!(self, StoreOp::Set | StoreOp::Add | StoreOp::Replace)
    }

    fn opcode(self, quiet: bool) -> u8 {
        use opcode::*;
        match (self, quiet) {
            (StoreOp::Set, false) => SET,
            (StoreOp::Set, true) => SETQ,
            (StoreOp::Add, false) => ADD,
            (StoreOp::Add, true) => ADDQ,
            (StoreOp::Replace, false) => REPLACE,
            (StoreOp::Replace, true) => REPLACEQ,
            (StoreOp::Append, false) => APPEND,
            (StoreOp::Append, true) => APPENDQ,
            (StoreOp::Prepend, false) => PREPEND,
            (StoreOp::Prepend, true) => PREPENDQ,
        }
    }
}

/// What a request asks for. `quiet` marks the `…Q` opcodes; `with_key` the `…K…` ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Get, GetQ, GetK, GetKQ.
    Get {
        key: &'a [u8],
        quiet: bool,
        with_key: bool,
    },
    /// GAT, GATQ, GATK, GATKQ: get and set a new expiration.
    Gat {
        key: &'a [u8],
        exptime: u32,
        quiet: bool,
        with_key: bool,
    },
    /// Touch: new expiration; the reply carries the flags but no value.
    Touch {
        key: &'a [u8],
        exptime: u32,
    },
    /// Set/Add/Replace/Append/Prepend and their quiet forms, with the whole value.
    Store {
        op: StoreOp,
        quiet: bool,
        key: &'a [u8],
        flags: u32,
        exptime: u32,
        value: &'a [u8],
    },
    /// A storage request whose value (`value_len` bytes, not part of `consumed`) exceeds
    /// [`Limits::item_size_max`]: the server answers `Too large.` and swallows the value.
    TooLarge {
        op: StoreOp,
        quiet: bool,
        key: &'a [u8],
        flags: u32,
        exptime: u32,
        value_len: u32,
    },
    /// Delete, DeleteQ.
    Delete {
        key: &'a [u8],
        quiet: bool,
    },
    /// Increment/Decrement (+Q). `exptime == NO_CREATE` means do not create a missing item.
    Arith {
        incr: bool,
        quiet: bool,
        key: &'a [u8],
        delta: u64,
        initial: u64,
        exptime: u32,
    },
    /// Quit, QuitQ.
    Quit {
        quiet: bool,
    },
    /// Flush, FlushQ with an optional expiration (`None`: no extras were sent).
    Flush {
        quiet: bool,
        exptime: Option<u32>,
    },
    Noop,
    Version,
    /// Stat with a group name (empty: general stats).
    Stat {
        group: &'a [u8],
    },
    /// Verbosity (4-byte extras, no key, no value).
    Verbosity {
        level: u32,
    },
}

impl Command<'_> {
    /// The wire opcode of this command.
    pub fn opcode(&self) -> u8 {
        use opcode::*;
        match *self {
            Command::Get {
                quiet, with_key, ..
            } => match (quiet, with_key) {
                (false, false) => GET,
                (true, false) => GETQ,
                (false, true) => GETK,
                (true, true) => GETKQ,
            },
            Command::Gat {
                quiet, with_key, ..
            } => match (quiet, with_key) {
                (false, false) => GAT,
                (true, false) => GATQ,
                (false, true) => GATK,
                (true, true) => GATKQ,
            },
            Command::Touch { .. } => TOUCH,
            Command::Store { op, quiet, .. } | Command::TooLarge { op, quiet, .. } => {
                op.opcode(quiet)
            }
            Command::Delete { quiet, .. } => {
                if quiet {
                    DELETEQ
                } else {
                    DELETE
                }
            }
            Command::Arith { incr, quiet, .. } => match (incr, quiet) {
                (true, false) => INCREMENT,
                (true, true) => INCREMENTQ,
                (false, false) => DECREMENT,
                (false, true) => DECREMENTQ,
            },
            Command::Quit { quiet } => {
                if quiet {
                    QUITQ
                } else {
                    QUIT
                }
            }
            Command::Flush { quiet, .. } => {
                if quiet {
                    FLUSHQ
                } else {
                    FLUSH
                }
            }
            Command::Noop => NOOP,
            Command::Version => VERSION,
            Command::Stat { .. } => STAT,
            Command::Verbosity { .. } => VERBOSITY,
        }
    }

    /// The key (stat group for `Stat`), empty for keyless commands.
    pub fn key(&self) -> &[u8] {
        match *self {
            Command::Get { key, .. }
            | Command::Gat { key, .. }
            | Command::Touch { key, .. }
            | Command::Store { key, .. }
            | Command::TooLarge { key, .. }
            | Command::Delete { key, .. }
            | Command::Arith { key, .. } => key,
            Command::Stat { group } => group,
            _ => &[],
        }
    }
}

/// Write a storage request's extras (flags and exptime; none for append/prepend) into `extras`;
/// returns their length.
fn store_extras(extras: &mut [u8; 20], op: StoreOp, flags: u32, exptime: u32) -> usize {
    if op.has_extras() {
        extras[..4].copy_from_slice(&flags.to_be_bytes());
        extras[4..8].copy_from_slice(&exptime.to_be_bytes());
        8
    } else {
        0
    }
}

/// One request: the command plus the header fields every reply echoes or uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Echoed in the reply.
    pub opaque: u32,
    /// Header CAS: compare-and-swap for Set/Add/Replace/Append/Prepend/Delete/Incr/Decr when non-zero.
    pub cas: u64,
    pub command: Command<'a>,
}

impl<'a> Request<'a> {
    /// A request with opaque 0 and no CAS.
    pub fn new(command: Command<'a>) -> Request<'a> {
        Request {
            opaque: 0,
            cas: 0,
            command,
        }
    }

    pub fn opcode(&self) -> u8 {
        self.command.opcode()
    }

    /// Append the wire form. For [`Command::TooLarge`] only header, extras and key are written
    /// (the header announces `value_len` more bytes, which the caller sends).
    /// Keys longer than 65535 bytes are truncated (the field is 16 bits).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut extras = [0u8; 20];
        let (ext_len, value, announced_value): (usize, &[u8], usize) = match self.command {
            Command::Store {
                op,
                flags,
                exptime,
                value,
                ..
            } => (
                store_extras(&mut extras, op, flags, exptime),
                value,
                value.len(),
            ),
            Command::TooLarge {
                op,
                flags,
                exptime,
                value_len,
                ..
            } => (
                store_extras(&mut extras, op, flags, exptime),
                &[][..],
                value_len as usize,
            ),
            Command::Gat { exptime, .. } | Command::Touch { exptime, .. } => {
                extras[..4].copy_from_slice(&exptime.to_be_bytes());
                (4, &[][..], 0)
            }
            Command::Arith {
                delta,
                initial,
                exptime,
                ..
            } => {
                extras[..8].copy_from_slice(&delta.to_be_bytes());
                extras[8..16].copy_from_slice(&initial.to_be_bytes());
                extras[16..20].copy_from_slice(&exptime.to_be_bytes());
                (20, &[][..], 0)
            }
            Command::Flush {
                exptime: Some(e), ..
            } => {
                extras[..4].copy_from_slice(&e.to_be_bytes());
                (4, &[][..], 0)
            }
            Command::Verbosity { level } => {
                extras[..4].copy_from_slice(&level.to_be_bytes());
                (4, &[][..], 0)
            }
            _ => (0, &[][..], 0),
        };
        let key = self.command.key();
        let key = &key[..key.len().min(u16::MAX as usize)];
        let body_len = (ext_len + key.len())
            .saturating_add(announced_value)
            .min(u32::MAX as usize) as u32;
        write_header(
            out,
            MAGIC_REQUEST,
            self.opcode(),
            key.len() as u16,
            ext_len as u8,
            0,
            body_len,
            self.opaque,
            self.cas,
        );
        out.extend_from_slice(&extras[..ext_len]);
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }

    /// The wire form as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

#[allow(clippy::too_many_arguments)]
fn write_header(
    out: &mut Vec<u8>,
    magic: u8,
    opcode: u8,
    key_len: u16,
    ext_len: u8,
    vbucket_or_status: u16,
    body_len: u32,
    opaque: u32,
    cas: u64,
) {
    out.reserve(HEADER_LEN + body_len as usize);
    out.push(magic);
    out.push(opcode);
    out.extend_from_slice(&key_len.to_be_bytes());
    out.push(ext_len);
    out.push(0); // data type: raw bytes
    out.extend_from_slice(&vbucket_or_status.to_be_bytes());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&opaque.to_be_bytes());
    out.extend_from_slice(&cas.to_be_bytes());
}

/// A decoded 24-byte header (request or response; `vbucket_or_status` is the status in replies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub magic: u8,
    pub opcode: u8,
    pub key_len: u16,
    pub extras_len: u8,
    pub data_type: u8,
    pub vbucket_or_status: u16,
    pub body_len: u32,
    pub opaque: u32,
    pub cas: u64,
}

impl Header {
    /// Decode the first 24 bytes, if there are that many.
    pub fn read(buf: &[u8]) -> Option<Header> {
        let h: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            magic: h[0],
            opcode: h[1],
            key_len: u16::from_be_bytes([h[2], h[3]]),
            extras_len: h[4],
            data_type: h[5],
            vbucket_or_status: u16::from_be_bytes([h[6], h[7]]),
            body_len: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            opaque: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
            cas: u64::from_be_bytes([h[16], h[17], h[18], h[19], h[20], h[21], h[22], h[23]]),
        })
    }
}

fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// An error reply for a request header, as memcached's `write_bin_error` sends it.
fn error_reply(h: &Header, status: Status) -> Cow<'static, [u8]> {
    let mut v = Vec::with_capacity(HEADER_LEN + 32);
    encode_error(&mut v, h.opcode, h.opaque, status);
    Cow::Owned(v)
}

/// Parse one request from the front of `buf`.
///
/// * Bad magic (first byte not `0x80`): `Error` with an empty reply and `close` (memcached
///   closes silently).
/// * key longer than the body: `Unknown command`, close. Key over `max_key_len` or a header that
///   does not fit the opcode (wrong extras/key/body lengths): `Invalid arguments`, close.
/// * Unknown opcodes, SASL (no SASL here) and Verbosity with a bad shape: `Unknown command`,
///   the rest of the body swallowed, connection kept.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parse<Request<'a>> {
    // memcached reads the whole header before looking at the magic; deciding on the first byte
    // gives the same reply (none) and the same fate (close) without waiting for 23 more bytes.
    if buf.first().is_some_and(|&m| m != MAGIC_REQUEST) {
        return Parse::Error {
            reply: Cow::Borrowed(&[]),
            consumed: 0,
            swallow: 0,
            close: true,
        };
    }
    let Some(h) = Header::read(buf) else {
        return Parse::Incomplete;
    };
    let ext = h.extras_len as usize;
    let klen = h.key_len as usize;
    let body = h.body_len as usize;
    let fatal = |status| Parse::Error {
        reply: error_reply(&h, status),
        consumed: HEADER_LEN,
        swallow: 0,
        close: true,
    };
    if klen > body || klen + ext > body {
        return fatal(Status::UnknownCommand);
    }
    if klen > limits.max_key_len {
        return fatal(Status::InvalidArguments);
    }
    let fixed = HEADER_LEN + ext + klen;
    if buf.len() < fixed {
        return Parse::Incomplete;
    }
    let extras = &buf[HEADER_LEN..HEADER_LEN + ext];
    let key = &buf[HEADER_LEN + ext..fixed];
    // Bytes of body after extras and key (the value, for storage commands).
    let rest = body - ext - klen;
    let ok = |command| Parse::Request {
        req: Request {
            opaque: h.opaque,
            cas: h.cas,
            command,
        },
        consumed: fixed,
    };
    let invalid = || Parse::Error {
        reply: error_reply(&h, Status::InvalidArguments),
        consumed: fixed,
        swallow: 0,
        close: true,
    };
    let unknown = |swallow| Parse::Error {
        reply: error_reply(&h, Status::UnknownCommand),
        consumed: fixed,
        swallow,
        close: false,
    };
    let empty = ext == 0 && klen == 0 && body == 0;

    use opcode::*;
    let op = h.opcode;
    match op {
        VERSION => {
            if empty {
                ok(Command::Version)
            } else {
                invalid()
            }
        }
        NOOP => {
            if empty {
                ok(Command::Noop)
            } else {
                invalid()
            }
        }
        QUIT | QUITQ => {
            if empty {
                ok(Command::Quit { quiet: op == QUITQ })
            } else {
                invalid()
            }
        }
        FLUSH | FLUSHQ => {
            if klen == 0 && body == ext && (ext == 0 || ext == 4) {
                let exptime = if ext == 4 { Some(be32(extras)) } else { None };
                ok(Command::Flush {
                    quiet: op == FLUSHQ,
                    exptime,
                })
            } else {
                invalid()
            }
        }
        GET | GETQ | GETK | GETKQ => {
            if ext == 0 && body == klen && klen > 0 {
                ok(Command::Get {
                    key,
                    quiet: op == GETQ || op == GETKQ,
                    with_key: op == GETK || op == GETKQ,
                })
            } else {
                invalid()
            }
        }
        DELETE | DELETEQ => {
            if klen > 0 && ext == 0 && body == klen {
                ok(Command::Delete {
                    key,
                    quiet: op == DELETEQ,
                })
            } else {
                invalid()
            }
        }
        INCREMENT | INCREMENTQ | DECREMENT | DECREMENTQ => {
            if klen > 0 && ext == 20 && body == klen + ext {
                ok(Command::Arith {
                    incr: op == INCREMENT || op == INCREMENTQ,
                    quiet: op == INCREMENTQ || op == DECREMENTQ,
                    key,
                    delta: be64(&extras[0..8]),
                    initial: be64(&extras[8..16]),
                    exptime: be32(&extras[16..20]),
                })
            } else {
                invalid()
            }
        }
        SET | SETQ | ADD | ADDQ | REPLACE | REPLACEQ | APPEND | APPENDQ | PREPEND | PREPENDQ => {
            let (sop, quiet) = match op {
                SET => (StoreOp::Set, false),
                SETQ => (StoreOp::Set, true),
                ADD => (StoreOp::Add, false),
                ADDQ => (StoreOp::Add, true),
                REPLACE => (StoreOp::Replace, false),
                REPLACEQ => (StoreOp::Replace, true),
                APPEND => (StoreOp::Append, false),
                APPENDQ => (StoreOp::Append, true),
                PREPEND => (StoreOp::Prepend, false),
                _ => (StoreOp::Prepend, true),
            };
            let shape_ok = if sop.has_extras() {
                ext == 8 && klen != 0
            } else {
                ext == 0 && klen > 0
            };
            if !shape_ok {
                return invalid();
            }
            let (flags, exptime) = if ext == 8 {
                (be32(&extras[0..4]), be32(&extras[4..8]))
            } else {
                (0, 0)
            };
            if rest > limits.item_size_max {
                return ok(Command::TooLarge {
                    op: sop,
                    quiet,
                    key,
                    flags,
                    exptime,
                    value_len: h.body_len - (ext + klen) as u32,
                });
            }
            let total = fixed + rest;
            if buf.len() < total {
                return Parse::Incomplete;
            }
            Parse::Request {
                req: Request {
                    opaque: h.opaque,
                    cas: h.cas,
                    command: Command::Store {
                        op: sop,
                        quiet,
                        key,
                        flags,
                        exptime,
                        value: &buf[fixed..total],
                    },
                },
                consumed: total,
            }
        }
        STAT => {
            if ext == 0 {
                ok(Command::Stat { group: key })
            } else {
                invalid()
            }
        }
        TOUCH | GAT | GATQ | GATK | GATKQ => {
            if ext == 4 && klen != 0 {
                let exptime = be32(extras);
                if op == TOUCH {
                    ok(Command::Touch { key, exptime })
                } else {
                    ok(Command::Gat {
                        key,
                        exptime,
                        quiet: op == GATQ || op == GATKQ,
                        with_key: op == GATK || op == GATKQ,
                    })
                }
            } else {
                invalid()
            }
        }
        VERBOSITY => {
            if ext == 4 && klen == 0 && body == 4 {
                ok(Command::Verbosity {
                    level: be32(extras),
                })
            } else {
                unknown(rest)
            }
        }
        SASL_LIST_MECHS => {
            if empty {
                unknown(0)
            } else {
                invalid()
            }
        }
        SASL_AUTH | SASL_STEP => {
            if ext == 0 && klen != 0 {
                unknown(rest)
            } else {
                invalid()
            }
        }
        _ => unknown(rest),
    }
}

/// Append a response header.
#[allow(clippy::too_many_arguments)]
pub fn encode_response_header(
    out: &mut Vec<u8>,
    opcode: u8,
    status: Status,
    extras_len: u8,
    key_len: u16,
    body_len: u32,
    opaque: u32,
    cas: u64,
) {
    write_header(
        out,
        MAGIC_RESPONSE,
        opcode,
        key_len,
        extras_len,
        status.code(),
        body_len,
        opaque,
        cas,
    );
}

/// Append a whole response: header, extras, key, value.
#[allow(clippy::too_many_arguments)]
pub fn encode_response(
    out: &mut Vec<u8>,
    opcode: u8,
    status: Status,
    opaque: u32,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
) {
    let extras = &extras[..extras.len().min(u8::MAX as usize)];
    let key = &key[..key.len().min(u16::MAX as usize)];
    let body = (extras.len() + key.len())
        .saturating_add(value.len())
        .min(u32::MAX as usize) as u32;
    encode_response_header(
        out,
        opcode,
        status,
        extras.len() as u8,
        key.len() as u16,
        body,
        opaque,
        cas,
    );
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Append an error response with memcached's message for `status`.
pub fn encode_error(out: &mut Vec<u8>, opcode: u8, opaque: u32, status: Status) {
    encode_error_msg(out, opcode, opaque, status, status.message());
}

/// Append an error response with a custom message (memcached's out-of-memory replies).
pub fn encode_error_msg(out: &mut Vec<u8>, opcode: u8, opaque: u32, status: Status, msg: &str) {
    encode_response(out, opcode, status, opaque, 0, &[], &[], msg.as_bytes());
}

/// Append one `Stat` reply packet; `encode_stat(out, opaque, b"", b"")` is the terminator.
pub fn encode_stat(out: &mut Vec<u8>, opaque: u32, name: &[u8], value: &[u8]) {
    encode_response(
        out,
        opcode::STAT,
        Status::Success,
        opaque,
        0,
        &[],
        name,
        value,
    );
}

/// A decoded response, borrowing from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub opcode: u8,
    /// Raw status (see [`Status::from_code`]).
    pub status: u16,
    pub opaque: u32,
    pub cas: u64,
    pub extras: &'a [u8],
    pub key: &'a [u8],
    /// The value, or the error message for a failed request.
    pub value: &'a [u8],
}

impl Response<'_> {
    pub fn status(&self) -> Option<Status> {
        Status::from_code(self.status)
    }

    pub fn is_success(&self) -> bool {
        self.status == Status::Success.code()
    }

    /// Item flags of a Get/GAT/Touch hit (4 bytes of extras).
    pub fn flags(&self) -> Option<u32> {
        (self.extras.len() == 4).then(|| be32(self.extras))
    }

    /// New value of a successful Increment/Decrement (8-byte body).
    pub fn counter(&self) -> Option<u64> {
        (self.is_success()
            && self.extras.is_empty()
            && self.key.is_empty()
            && self.value.len() == 8)
            .then(|| be64(self.value))
    }

    /// Append the wire form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let key = &self.key[..self.key.len().min(u16::MAX as usize)];
        let extras = &self.extras[..self.extras.len().min(u8::MAX as usize)];
        let body = (extras.len() + key.len())
            .saturating_add(self.value.len())
            .min(u32::MAX as usize) as u32;
        write_header(
            out,
            MAGIC_RESPONSE,
            self.opcode,
            key.len() as u16,
            extras.len() as u8,
            self.status,
            body,
            self.opaque,
            self.cas,
        );
        out.extend_from_slice(extras);
        out.extend_from_slice(key);
        out.extend_from_slice(self.value);
    }
}

/// Parse one response from the front of `buf` (client side). A body longer than
/// `limits.item_size_max` plus room for key and extras, a bad magic, or extras + key longer than
/// the body is an `Error` with `close` (and an empty reply: a client has nothing to answer).
pub fn parse_response<'a>(buf: &'a [u8], limits: &Limits) -> Parse<Response<'a>> {
    let Some(h) = Header::read(buf) else {
        return Parse::Incomplete;
    };
    let body = h.body_len as usize;
    let ext = h.extras_len as usize;
    let klen = h.key_len as usize;
    let max_body = limits
        .item_size_max
        .saturating_add(u16::MAX as usize + u8::MAX as usize);
    if h.magic != MAGIC_RESPONSE || ext + klen > body || body > max_body {
        return Parse::Error {
            reply: Cow::Borrowed(&[]),
            consumed: 0,
            swallow: 0,
            close: true,
        };
    }
    let total = HEADER_LEN + body;
    if buf.len() < total {
        return Parse::Incomplete;
    }
    let b = &buf[HEADER_LEN..total];
    Parse::Request {
        req: Response {
            opcode: h.opcode,
            status: h.vbucket_or_status,
            opaque: h.opaque,
            cas: h.cas,
            extras: &b[..ext],
            key: &b[ext..ext + klen],
            value: &b[ext + klen..],
        },
        consumed: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lim() -> Limits {
        Limits::default()
    }

    fn parsed(buf: &[u8]) -> (Request<'_>, usize) {
        match parse(buf, &lim()) {
            Parse::Request { req, consumed } => (req, consumed),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn raw(opcode: u8, extras: &[u8], key: &[u8], value: &[u8], opaque: u32, cas: u64) -> Vec<u8> {
        let mut v = Vec::new();
        let body = (extras.len() + key.len() + value.len()) as u32;
        write_header(
            &mut v,
            MAGIC_REQUEST,
            opcode,
            key.len() as u16,
            extras.len() as u8,
            0,
            body,
            opaque,
            cas,
        );
        v.extend_from_slice(extras);
        v.extend_from_slice(key);
        v.extend_from_slice(value);
        v
    }

    fn error_of(buf: &[u8]) -> (Response<'static>, usize, usize, bool) {
        match parse(buf, &lim()) {
            Parse::Error {
                reply,
                consumed,
                swallow,
                close,
            } => {
                let reply: &'static [u8] = Box::leak(reply.into_owned().into_boxed_slice());
                let resp = match parse_response(reply, &lim()) {
                    Parse::Request { req, consumed } => {
                        assert_eq!(consumed, reply.len());
                        req
                    }
                    other => panic!("reply does not parse: {other:?}"),
                };
                (resp, consumed, swallow, close)
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn get_wire_format_matches_spec_example() {
        // doc/protocol-binary.txt, "Example: Get request for key Hello".
        let expect: [u8; 29] = [
            0x80, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, b'H', b'e', b'l', b'l',
            b'o',
        ];
        let req = Request::new(Command::Get {
            key: b"Hello",
            quiet: false,
            with_key: false,
        });
        assert_eq!(req.to_bytes(), expect);
        assert_eq!(parsed(&expect), (req, 29));
    }

    #[test]
    fn set_wire_format_matches_spec_example() {
        // "Add" example from the spec, as a set: flags 0xdeadbeef, expiry 0x0e10, key Hello, value World.
        let req = Request {
            opaque: 0,
            cas: 0,
            command: Command::Store {
                op: StoreOp::Add,
                quiet: false,
                key: b"Hello",
                flags: 0xdead_beef,
                exptime: 0xe10,
                value: b"World",
            },
        };
        let b = req.to_bytes();
        assert_eq!(
            &b[..12],
            &[0x80, 0x02, 0x00, 0x05, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12]
        );
        assert_eq!(
            &b[24..32],
            &[0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x0e, 0x10]
        );
        assert_eq!(&b[32..], b"HelloWorld");
        assert_eq!(parsed(&b), (req, b.len()));
    }

    #[test]
    fn incr_extras_and_header_fields() {
        let b = raw(
            opcode::INCREMENTQ,
            &[
                0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff,
            ],
            b"n",
            b"",
            77,
            9,
        );
        let (req, n) = parsed(&b);
        assert_eq!(n, b.len());
        assert_eq!(req.opaque, 77);
        assert_eq!(req.cas, 9);
        assert_eq!(
            req.command,
            Command::Arith {
                incr: true,
                quiet: true,
                key: b"n",
                delta: 2,
                initial: 7,
                exptime: NO_CREATE
            }
        );
    }

    #[test]
    fn flush_with_and_without_expiry() {
        assert_eq!(
            parsed(&raw(opcode::FLUSH, &[], b"", b"", 0, 0)).0.command,
            Command::Flush {
                quiet: false,
                exptime: None
            }
        );
        assert_eq!(
            parsed(&raw(opcode::FLUSHQ, &[0, 0, 0, 5], b"", b"", 0, 0))
                .0
                .command,
            Command::Flush {
                quiet: true,
                exptime: Some(5)
            }
        );
        // Extras of any other size are invalid.
        let (r, _, _, close) = error_of(&raw(opcode::FLUSH, &[0, 0], b"", b"", 0, 0));
        assert_eq!(r.status(), Some(Status::InvalidArguments));
        assert!(close);
    }

    #[test]
    fn bad_magic_closes_silently() {
        let mut b = raw(opcode::NOOP, &[], b"", b"", 0, 0);
        b[0] = b'g';
        match parse(&b, &lim()) {
            Parse::Error { reply, close, .. } => {
                assert!(reply.is_empty());
                assert!(close);
            }
            other => panic!("{other:?}"),
        }
        // A response magic is not a request either.
        b[0] = MAGIC_RESPONSE;
        assert!(matches!(
            parse(&b, &lim()),
            Parse::Error { close: true, .. }
        ));
    }

    #[test]
    fn key_longer_than_body_is_unknown_command_and_closes() {
        let mut b = raw(opcode::GET, &[], b"abc", b"", 5, 0);
        b[8..12].copy_from_slice(&2u32.to_be_bytes());
        let (r, consumed, _, close) = error_of(&b);
        assert_eq!(r.status(), Some(Status::UnknownCommand));
        assert_eq!(r.value, b"Unknown command");
        assert_eq!(r.opcode, opcode::GET);
        assert_eq!(r.opaque, 5);
        assert!(close);
        assert!(consumed <= b.len());
    }

    #[test]
    fn long_key_is_invalid_and_closes() {
        let key = vec![b'k'; 251];
        let (r, _, _, close) = error_of(&raw(opcode::GET, &[], &key, b"", 0, 0));
        assert_eq!(r.status(), Some(Status::InvalidArguments));
        assert_eq!(r.value, b"Invalid arguments");
        assert!(close);
        let key = vec![b'k'; 250];
        assert!(matches!(
            parse(&raw(opcode::GET, &[], &key, b"", 0, 0), &lim()),
            Parse::Request { .. }
        ));
    }

    #[test]
    fn malformed_shapes_are_invalid_arguments() {
        let cases: Vec<Vec<u8>> = vec![
            raw(opcode::GET, &[], b"", b"", 0, 0), // get without key
            raw(opcode::GET, &[0, 0, 0, 0], b"k", b"", 0, 0), // get with extras
            raw(opcode::GET, &[], b"k", b"v", 0, 0), // get with value
            raw(opcode::SET, &[0; 4], b"k", b"v", 0, 0), // set with short extras
            raw(opcode::SET, &[0; 8], b"", b"v", 0, 0), // set without key
            raw(opcode::APPEND, &[0; 8], b"k", b"v", 0, 0), // append with extras
            raw(opcode::DELETE, &[0; 4], b"k", b"", 0, 0), // delete with extras
            raw(opcode::INCREMENT, &[0; 8], b"k", b"", 0, 0), // incr with short extras
            raw(opcode::INCREMENT, &[0; 20], b"k", b"v", 0, 0), // incr with value
            raw(opcode::NOOP, &[], b"k", b"", 0, 0), // noop with key
            raw(opcode::VERSION, &[], b"", b"v", 0, 0), // version with value
            raw(opcode::QUIT, &[0; 4], b"", b"", 0, 0), // quit with extras
            raw(opcode::STAT, &[0; 4], b"", b"", 0, 0), // stat with extras
            raw(opcode::TOUCH, &[], b"k", b"", 0, 0), // touch without extras
            raw(opcode::GAT, &[0; 4], b"", b"", 0, 0), // gat without key
            raw(opcode::SASL_LIST_MECHS, &[], b"k", b"", 0, 0), // list mechs with key
            raw(opcode::SASL_AUTH, &[], b"", b"x", 0, 0), // auth without mechanism
        ];
        for b in cases {
            let (r, _, _, close) = error_of(&b);
            assert_eq!(r.status(), Some(Status::InvalidArguments), "{b:?}");
            assert_eq!(r.opcode, b[1]);
            assert!(close);
        }
    }

    #[test]
    fn unknown_opcodes_and_sasl_swallow_the_body() {
        let (r, consumed, swallow, close) = error_of(&raw(0x55, &[1, 2], b"key", b"value", 3, 0));
        assert_eq!(r.status(), Some(Status::UnknownCommand));
        assert_eq!(r.value, b"Unknown command");
        assert_eq!((r.opcode, r.opaque), (0x55, 3));
        assert_eq!((consumed, swallow, close), (HEADER_LEN + 5, 5, false));

        let (r, consumed, swallow, close) =
            error_of(&raw(opcode::SASL_AUTH, &[], b"PLAIN", b"\0u\0p", 0, 0));
        assert_eq!(r.status(), Some(Status::UnknownCommand));
        assert_eq!((consumed, swallow, close), (HEADER_LEN + 5, 4, false));

        let (r, _, swallow, close) = error_of(&raw(opcode::SASL_LIST_MECHS, &[], b"", b"", 0, 0));
        assert_eq!(r.status(), Some(Status::UnknownCommand));
        assert_eq!((swallow, close), (0, false));
    }

    #[test]
    fn oversized_value_is_framed_without_buffering() {
        let l = Limits {
            item_size_max: 10,
            ..Limits::default()
        };
        let mut b = raw(
            opcode::SETQ,
            &[0, 0, 0, 1, 0, 0, 0, 2],
            b"k",
            &[b'x'; 11],
            4,
            0,
        );
        b.truncate(HEADER_LEN + 9); // the value has not arrived yet
        match parse(&b, &l) {
            Parse::Request { req, consumed } => {
                assert_eq!(consumed, HEADER_LEN + 9);
                assert_eq!(
                    req.command,
                    Command::TooLarge {
                        op: StoreOp::Set,
                        quiet: true,
                        key: b"k",
                        flags: 1,
                        exptime: 2,
                        value_len: 11
                    }
                );
                // Encoding a TooLarge request writes exactly the consumed prefix.
                assert_eq!(req.to_bytes(), b);
            }
            other => panic!("{other:?}"),
        }
        // At the limit the value is buffered and returned.
        let b = raw(opcode::SET, &[0; 8], b"k", &[b'x'; 10], 0, 0);
        assert!(matches!(parse(&b[..b.len() - 1], &l), Parse::Incomplete));
        assert!(matches!(
            parse(&b, &l),
            Parse::Request {
                req: Request {
                    command: Command::Store { .. },
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn stat_and_touch_leave_trailing_body_bytes_like_memcached() {
        let b = raw(opcode::STAT, &[], b"items", b"zz", 0, 0);
        let (req, consumed) = parsed(&b);
        assert_eq!(req.command, Command::Stat { group: b"items" });
        assert_eq!(consumed, HEADER_LEN + 5);
        let b = raw(opcode::TOUCH, &[0, 0, 0, 9], b"k", b"zz", 0, 0);
        let (req, consumed) = parsed(&b);
        assert_eq!(
            req.command,
            Command::Touch {
                key: b"k",
                exptime: 9
            }
        );
        assert_eq!(consumed, HEADER_LEN + 5);
    }

    #[test]
    fn verbosity_shapes() {
        assert_eq!(
            parsed(&raw(opcode::VERBOSITY, &[0, 0, 0, 1], b"", b"", 0, 0))
                .0
                .command,
            Command::Verbosity { level: 1 }
        );
        let (r, _, swallow, close) = error_of(&raw(opcode::VERBOSITY, &[], b"", b"xy", 0, 0));
        assert_eq!(r.status(), Some(Status::UnknownCommand));
        assert_eq!((swallow, close), (2, false));
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let mut b = Request::new(Command::Get {
            key: b"a",
            quiet: true,
            with_key: false,
        })
        .to_bytes();
        Request::new(Command::Noop).encode(&mut b);
        let (r1, n1) = parsed(&b);
        assert_eq!(
            r1.command,
            Command::Get {
                key: b"a",
                quiet: true,
                with_key: false
            }
        );
        let (r2, n2) = parsed(&b[n1..]);
        assert_eq!(r2.command, Command::Noop);
        assert_eq!(n1 + n2, b.len());
    }

    #[test]
    fn error_and_stat_encodings() {
        let mut out = Vec::new();
        encode_error(&mut out, opcode::INCREMENT, 0xabcd, Status::NonNumeric);
        let msg = b"Non-numeric server-side value for incr or decr";
        assert_eq!(out.len(), HEADER_LEN + msg.len());
        assert_eq!(&out[..8], &[0x81, 0x05, 0, 0, 0, 0, 0, 0x06]);
        assert_eq!(&out[8..12], &(msg.len() as u32).to_be_bytes());
        assert_eq!(&out[12..16], &0xabcdu32.to_be_bytes());
        assert_eq!(&out[HEADER_LEN..], msg);

        out.clear();
        encode_stat(&mut out, 1, b"pid", b"42");
        encode_stat(&mut out, 1, b"", b"");
        let Parse::Request { req: r, consumed } = parse_response(&out, &lim()) else {
            panic!()
        };
        assert_eq!(
            (r.opcode, r.key, r.value, r.opaque),
            (opcode::STAT, &b"pid"[..], &b"42"[..], 1)
        );
        let Parse::Request {
            req: t,
            consumed: n2,
        } = parse_response(&out[consumed..], &lim())
        else {
            panic!()
        };
        assert_eq!((t.key, t.value), (&b""[..], &b""[..]));
        assert_eq!(consumed + n2, out.len());
    }

    #[test]
    fn response_accessors() {
        let mut out = Vec::new();
        encode_response(
            &mut out,
            opcode::GETK,
            Status::Success,
            1,
            99,
            &7u32.to_be_bytes(),
            b"key",
            b"val",
        );
        let Parse::Request { req: r, .. } = parse_response(&out, &lim()) else {
            panic!()
        };
        assert_eq!(r.flags(), Some(7));
        assert_eq!(r.cas, 99);
        assert_eq!((r.key, r.value), (&b"key"[..], &b"val"[..]));
        out.clear();
        encode_response(
            &mut out,
            opcode::INCREMENT,
            Status::Success,
            0,
            3,
            &[],
            &[],
            &12u64.to_be_bytes(),
        );
        let Parse::Request { req: r, .. } = parse_response(&out, &lim()) else {
            panic!()
        };
        assert_eq!(r.counter(), Some(12));
    }

    // ---- property tests ----

    fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 1..=250)
    }

    fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..300)
    }

    /// An owned description of a command, turned into a borrowed [`Command`] for the test.
    #[derive(Clone, Debug)]
    enum Owned {
        Get(Vec<u8>, bool, bool),
        Gat(Vec<u8>, u32, bool, bool),
        Touch(Vec<u8>, u32),
        Store(u8, bool, Vec<u8>, u32, u32, Vec<u8>),
        Delete(Vec<u8>, bool),
        Arith(bool, bool, Vec<u8>, u64, u64, u32),
        Quit(bool),
        Flush(bool, Option<u32>),
        Noop,
        Version,
        Stat(Vec<u8>),
        Verbosity(u32),
    }

    impl Owned {
        fn command(&self) -> Command<'_> {
            match self {
                Owned::Get(k, q, wk) => Command::Get {
                    key: k,
                    quiet: *q,
                    with_key: *wk,
                },
                Owned::Gat(k, e, q, wk) => Command::Gat {
                    key: k,
                    exptime: *e,
                    quiet: *q,
                    with_key: *wk,
                },
                Owned::Touch(k, e) => Command::Touch {
                    key: k,
                    exptime: *e,
                },
                Owned::Store(o, q, k, f, e, v) => {
                    let op = [
                        StoreOp::Set,
                        StoreOp::Add,
                        StoreOp::Replace,
                        StoreOp::Append,
                        StoreOp::Prepend,
                    ][*o as usize % 5];
                    let (flags, exptime) = if op.has_extras() { (*f, *e) } else { (0, 0) };
                    Command::Store {
                        op,
                        quiet: *q,
                        key: k,
                        flags,
                        exptime,
                        value: v,
                    }
                }
                Owned::Delete(k, q) => Command::Delete { key: k, quiet: *q },
                Owned::Arith(i, q, k, d, init, e) => Command::Arith {
                    incr: *i,
                    quiet: *q,
                    key: k,
                    delta: *d,
                    initial: *init,
                    exptime: *e,
                },
                Owned::Quit(q) => Command::Quit { quiet: *q },
                Owned::Flush(q, e) => Command::Flush {
                    quiet: *q,
                    exptime: *e,
                },
                Owned::Noop => Command::Noop,
                Owned::Version => Command::Version,
                Owned::Stat(g) => Command::Stat { group: g },
                Owned::Verbosity(l) => Command::Verbosity { level: *l },
            }
        }
    }

    fn owned_strategy() -> impl Strategy<Value = Owned> {
        prop_oneof![
            (key_strategy(), any::<bool>(), any::<bool>())
                .prop_map(|(k, q, w)| Owned::Get(k, q, w)),
            (key_strategy(), any::<u32>(), any::<bool>(), any::<bool>())
                .prop_map(|(k, e, q, w)| Owned::Gat(k, e, q, w)),
            (key_strategy(), any::<u32>()).prop_map(|(k, e)| Owned::Touch(k, e)),
            (
                0u8..5,
                any::<bool>(),
                key_strategy(),
                any::<u32>(),
                any::<u32>(),
                value_strategy()
            )
                .prop_map(|(o, q, k, f, e, v)| Owned::Store(o, q, k, f, e, v)),
            (key_strategy(), any::<bool>()).prop_map(|(k, q)| Owned::Delete(k, q)),
            (
                any::<bool>(),
                any::<bool>(),
                key_strategy(),
                any::<u64>(),
                any::<u64>(),
                any::<u32>()
            )
                .prop_map(|(i, q, k, d, init, e)| Owned::Arith(i, q, k, d, init, e)),
            any::<bool>().prop_map(Owned::Quit),
            (any::<bool>(), any::<Option<u32>>()).prop_map(|(q, e)| Owned::Flush(q, e)),
            Just(Owned::Noop),
            Just(Owned::Version),
            prop::collection::vec(any::<u8>(), 0..20).prop_map(Owned::Stat),
            any::<u32>().prop_map(Owned::Verbosity),
        ]
    }

    proptest! {
        #[test]
        fn request_round_trip_and_split_at_every_byte(o in owned_strategy(), opaque in any::<u32>(), cas in any::<u64>()) {
            let req = Request { opaque, cas, command: o.command() };
            let bytes = req.to_bytes();
            match parse(&bytes, &lim()) {
                Parse::Request { req: got, consumed } => {
                    prop_assert_eq!(consumed, bytes.len());
                    prop_assert_eq!(&got, &req);
                }
                other => prop_assert!(false, "{:?}", other),
            }
            for cut in 0..bytes.len() {
                prop_assert_eq!(parse(&bytes[..cut], &lim()), Parse::Incomplete, "cut at {}", cut);
            }
            // Trailing bytes (the next pipelined request) do not change the result.
            let mut more = bytes.clone();
            more.extend_from_slice(&[0x80, 0x0a, 0, 0]);
            match parse(&more, &lim()) {
                Parse::Request { req: got, consumed } => {
                    prop_assert_eq!(consumed, bytes.len());
                    prop_assert_eq!(&got, &req);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn response_round_trip_and_split(opcode in any::<u8>(), status in any::<u16>(), opaque in any::<u32>(), cas in any::<u64>(),
                                         extras in prop::collection::vec(any::<u8>(), 0..20),
                                         key in prop::collection::vec(any::<u8>(), 0..300),
                                         value in value_strategy()) {
            let r = Response { opcode, status, opaque, cas, extras: &extras, key: &key, value: &value };
            let mut bytes = Vec::new();
            r.encode(&mut bytes);
            match parse_response(&bytes, &lim()) {
                Parse::Request { req, consumed } => {
                    prop_assert_eq!(consumed, bytes.len());
                    prop_assert_eq!(req, r);
                }
                other => prop_assert!(false, "{:?}", other),
            }
            for cut in 0..bytes.len() {
                prop_assert_eq!(parse_response(&bytes[..cut], &lim()), Parse::Incomplete);
            }
        }

        #[test]
        fn garbage_never_panics(buf in prop::collection::vec(any::<u8>(), 0..600)) {
            let l = Limits { item_size_max: 64, ..Limits::default() };
            check_parse_invariants(&buf, &l)?;
            let _ = parse_response(&buf, &l);
        }

        #[test]
        fn garbage_after_request_magic_never_panics(opcode in any::<u8>(), klen in 0u16..300, ext in any::<u8>(),
                                                    body in 0u32..700, tail in prop::collection::vec(any::<u8>(), 0..700)) {
            let mut buf = Vec::new();
            write_header(&mut buf, MAGIC_REQUEST, opcode, klen, ext, 0, body, 1, 2);
            buf.extend_from_slice(&tail);
            let l = Limits { item_size_max: 100, ..Limits::default() };
            check_parse_invariants(&buf, &l)?;
        }
    }

    fn check_parse_invariants(buf: &[u8], l: &Limits) -> Result<(), TestCaseError> {
        match parse(buf, l) {
            Parse::Request { req, consumed } => {
                prop_assert!(consumed >= HEADER_LEN && consumed <= buf.len());
                // Whatever was accepted re-encodes to exactly the consumed bytes, apart from the
                // header fields memcached ignores (data type, vbucket) and the body length of
                // commands that leave trailing bytes in the stream.
                let enc = req.to_bytes();
                prop_assert_eq!(enc.len(), consumed);
                prop_assert_eq!(&enc[..5], &buf[..5]);
                prop_assert_eq!(&enc[12..], &buf[12..consumed]);
            }
            Parse::Error {
                reply,
                consumed,
                swallow,
                close,
            } => {
                prop_assert!(consumed <= buf.len());
                prop_assert!(close || swallow <= u32::MAX as usize);
                if !reply.is_empty() {
                    let ok = matches!(
                        parse_response(&reply, &Limits::default()),
                        Parse::Request { .. }
                    );
                    prop_assert!(ok, "reply does not parse");
                }
            }
            Parse::Incomplete => {}
        }
        Ok(())
    }
}
