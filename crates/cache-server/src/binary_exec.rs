//! Executes the binary protocol: parse one request from the buffered input with
//! [`memcache_proto::binary`], run it against the store, encode the reply.

use crate::{Ctx, Session, Step};

/// Handle the first request in `input`, appending replies to `out`.
pub fn process(input: &[u8], ctx: &Ctx, session: &mut Session, out: &mut Vec<u8>) -> Step {
    let _ = (input, ctx, session, out);
    todo!()
}
