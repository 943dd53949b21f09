//! Request parsing: multibulk (`*N\r\n$len\r\n...`) and inline commands, with redis-server's
//! errors and limits.

use bytes::BytesMut;

use crate::{Args, Limits, ProtoError};

/// Parse one request from the front of `buf`, removing its bytes. `Ok(None)`: more bytes are
/// needed (nothing is consumed, except empty inline lines, which redis-server skips).
/// Arguments are zero-copy slices of the buffer; a caller that keeps one beyond the request
/// must copy it (a slice keeps the whole read buffer alive).
pub fn parse_request(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Args>, ProtoError> {
    let _ = (buf, limits);
    todo!("multibulk and inline parsing")
}
