//! Reply encoding for RESP2 and RESP3.

use bytes::BytesMut;

use crate::{Protocol, Reply};

/// Append `reply` to `out` as a connection speaking `proto` must receive it.
pub fn encode(reply: &Reply, proto: Protocol, out: &mut BytesMut) {
    let _ = (reply, proto, out);
    todo!()
}

/// A double as redis-server 7.0 writes it in replies (`%.17g`, `inf`, `-inf`, `nan`).
pub fn format_double(d: f64) -> String {
    let _ = d;
    todo!()
}
