//! The data commands, one module per Redis command group. Each module exports `COMMANDS`, its
//! part of the command table. Shared argument and reply helpers live here.

use bytes::Bytes;
use redis_proto::Reply;

use crate::args::parse_i64;
use crate::commands::Command;
use crate::errors;

pub mod hashes;
pub mod keys;
pub mod lists;
pub mod sets;
pub mod strings;

/// Every group's table.
pub(crate) const ALL: &[&[Command]] = &[
    keys::COMMANDS,
    strings::COMMANDS,
    lists::COMMANDS,
    hashes::COMMANDS,
    sets::COMMANDS,
];

/// Whether argument `a` is the keyword `kw` (ASCII case-insensitive, as `strcasecmp`).
pub(crate) fn is_kw(a: &[u8], kw: &str) -> bool {
    a.eq_ignore_ascii_case(kw.as_bytes())
}

/// `getLongLongFromObjectOrReply`: an integer argument or Redis's error.
pub(crate) fn int_arg(a: &[u8]) -> Result<i64, Reply> {
    parse_i64(a).ok_or_else(|| errors::err(errors::NOT_INTEGER))
}

/// `getIntFromObjectOrReply`: a 32-bit integer argument, or `msg` (Redis's default error when
/// `None`).
pub(crate) fn int32_arg(a: &[u8], msg: Option<&'static str>) -> Result<i64, Reply> {
    match parse_i64(a) {
        Some(v) if v >= i32::MIN as i64 && v <= i32::MAX as i64 => Ok(v),
        None => Err(errors::err(msg.unwrap_or(errors::NOT_INTEGER))),
        Some(_) => Err(match msg {
            Some(m) => errors::err(m),
            None => Reply::error(
                "ERR value is out of range, value must between -2147483648 and 2147483647",
            ),
        }),
    }
}

/// A bulk reply copied from stored bytes.
pub(crate) fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(b))
}

/// `ERR invalid expire time in '<cmd>' command`.
pub(crate) fn invalid_expire(cmd: &str) -> Reply {
    Reply::error(format!("ERR invalid expire time in '{cmd}' command"))
}

/// The `Ok` value of a `Result<T, Reply>` or return the error reply from the handler.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return crate::Exec::Reply(r),
        }
    };
}
pub(crate) use tri;
