//! The few pieces of the MySQL/MariaDB wire protocol the proxy's forwarding path needs, as pure
//! functions over byte slices: packet framing and the ERR packet the proxy itself sends in place
//! of a server's greeting (connection limit reached, no writer). Everything else the proxy says
//! to a database goes through `galera::sql`.
//!
//! Nothing here does I/O or panics on input.

/// Largest payload of one physical packet; a payload of exactly this size continues in the next.
pub const MAX_PAYLOAD: usize = 0xff_ffff;

/// `ER_CON_COUNT_ERROR`, what a client expects for a full server.
pub const ER_CON_COUNT_ERROR: u16 = 1040;
/// `ER_UNKNOWN_ERROR` with a message that says why no node can take the connection.
pub const ER_UNKNOWN_ERROR: u16 = 1105;

/// Frames one packet: 3-byte little-endian length, sequence id, payload (one physical packet;
/// callers never send payloads of 16 MiB).
pub fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(MAX_PAYLOAD);
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
    out.push(seq);
    out.extend_from_slice(&payload[..len]);
    out
}

/// If `buf` starts with a whole physical packet: `(payload length, sequence id)`.
pub fn packet_header(buf: &[u8]) -> Option<(usize, u8)> {
    if buf.len() < 4 {
        return None;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], 0]) as usize;
    (buf.len() >= 4 + len).then_some((len, buf[3]))
}

/// The ERR packet a server sends *instead of* its greeting (sequence id 0, no SQLSTATE marker
/// because no capabilities have been negotiated yet), as the mysql client expects for
/// "Too many connections".
pub fn greeting_error(code: u16, message: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.extend_from_slice(message.as_bytes());
    frame(0, &p)
}

/// Quotes a string as an SQL literal (for the node names keel writes into its own table).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn greeting_error_is_an_err_packet_in_place_of_the_greeting() {
        let pkt = greeting_error(ER_CON_COUNT_ERROR, "Too many connections");
        let (len, seq) = packet_header(&pkt).unwrap();
        assert_eq!((len, seq), (pkt.len() - 4, 0));
        let p = &pkt[4..];
        assert_eq!(p[0], 0xff);
        assert_eq!(u16::from_le_bytes([p[1], p[2]]), 1040);
        assert_eq!(&p[3..], b"Too many connections");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("n1"), "'n1'");
        assert_eq!(quote("a'b\\"), "'a''b\\\\'");
    }

    proptest! {
        /// Never panics on network input.
        #[test]
        fn header_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = packet_header(&data);
        }

        #[test]
        fn frame_roundtrip(payload in proptest::collection::vec(any::<u8>(), 0..300), seq in any::<u8>()) {
            let f = frame(seq, &payload);
            let (len, s) = packet_header(&f).unwrap();
            prop_assert_eq!(len, payload.len());
            prop_assert_eq!(s, seq);
            prop_assert_eq!(&f[4..], &payload[..]);
        }

        /// A quoted literal has no unescaped quote inside.
        #[test]
        fn quoted_literal_is_closed(s in ".*") {
            let q = quote(&s);
            let inner = &q[1..q.len() - 1];
            prop_assert!(!inner.replace("''", "").contains('\''));
        }
    }
}
