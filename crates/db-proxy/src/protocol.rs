//! The few pieces of the MySQL/MariaDB client/server protocol the proxy needs, as pure functions
//! over byte slices: packet framing, the server greeting (handshake v10), the client's
//! `HandshakeResponse41` with `mysql_native_password`, `COM_QUERY` text result sets, OK/ERR
//! packets, and the ERR packet the proxy itself sends as a server's first packet.
//!
//! Nothing here does I/O or panics on input: every parser returns [`ProtoError`] on short or
//! malformed data, because the bytes come from the network.

use crate::sha1::sha1;

/// Malformed or unexpected protocol data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("unexpected {0}")]
    Unexpected(String),
}

type Result<T> = std::result::Result<T, ProtoError>;

/// Largest payload of one physical packet; a payload of exactly this size continues in the next.
pub const MAX_PAYLOAD: usize = 0xff_ffff;

pub const CLIENT_LONG_PASSWORD: u32 = 1;
pub const CLIENT_LONG_FLAG: u32 = 4;
pub const CLIENT_CONNECT_WITH_DB: u32 = 8;
pub const CLIENT_PROTOCOL_41: u32 = 0x200;
pub const CLIENT_TRANSACTIONS: u32 = 0x2000;
pub const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
pub const CLIENT_MULTI_RESULTS: u32 = 0x20000;
pub const CLIENT_PLUGIN_AUTH: u32 = 0x80000;

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

/// A server error: code, SQLSTATE (may be empty) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    pub state: String,
    pub message: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.state.is_empty() {
            write!(f, "ERROR {}: {}", self.code, self.message)
        } else {
            write!(f, "ERROR {} ({}): {}", self.code, self.state, self.message)
        }
    }
}

/// Parses an ERR payload (starting with 0xff).
pub fn parse_err(p: &[u8]) -> Result<ServerError> {
    if p.len() < 3 || p[0] != 0xff {
        return Err(ProtoError::Truncated("ERR packet"));
    }
    let code = u16::from_le_bytes([p[1], p[2]]);
    let rest = &p[3..];
    let (state, msg) = if rest.first() == Some(&b'#') && rest.len() >= 6 {
        (
            String::from_utf8_lossy(&rest[1..6]).into_owned(),
            &rest[6..],
        )
    } else {
        (String::new(), rest)
    };
    Ok(ServerError {
        code,
        state,
        message: String::from_utf8_lossy(msg).into_owned(),
    })
}

/// A little reader over a payload that never panics.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(ProtoError::Truncated(what))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(ProtoError::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.bytes(1, what)?[0])
    }
    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A NUL-terminated string (or the rest when there is no NUL).
    pub fn cstr(&mut self) -> &'a [u8] {
        let rest = self.remaining();
        match rest.iter().position(|&b| b == 0) {
            Some(i) => {
                self.pos += i + 1;
                &rest[..i]
            }
            None => {
                self.pos = self.buf.len();
                rest
            }
        }
    }
    /// A length-encoded integer; `None` for the NULL marker 0xfb.
    pub fn lenenc(&mut self, what: &'static str) -> Result<Option<u64>> {
        let first = self.u8(what)?;
        Ok(match first {
            0xfb => None,
            0xfc => Some(self.u16(what)? as u64),
            0xfd => {
                let b = self.bytes(3, what)?;
                Some(u32::from_le_bytes([b[0], b[1], b[2], 0]) as u64)
            }
            0xfe => {
                let b = self.bytes(8, what)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Some(u64::from_le_bytes(a))
            }
            0xff => return Err(ProtoError::Unexpected("0xff length".into())),
            n => Some(n as u64),
        })
    }
    /// A length-encoded string; `None` for SQL NULL.
    pub fn lenenc_str(&mut self, what: &'static str) -> Result<Option<&'a [u8]>> {
        match self.lenenc(what)? {
            None => Ok(None),
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| ProtoError::Truncated(what))?;
                Ok(Some(self.bytes(n, what)?))
            }
        }
    }
}

/// What the client needs from the server greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub server_version: String,
    pub connection_id: u32,
    pub capabilities: u32,
    /// The 20-byte scramble seed (`auth-plugin-data`, without its trailing NUL).
    pub seed: Vec<u8>,
    pub auth_plugin: String,
}

/// Parses the server's first packet. An ERR there (e.g. "Too many connections") is returned as
/// `Err(Ok(ServerError))`.
pub fn parse_greeting(
    p: &[u8],
) -> std::result::Result<Greeting, std::result::Result<ServerError, ProtoError>> {
    if p.first() == Some(&0xff) {
        return Err(parse_err(p));
    }
    let inner = || -> Result<Greeting> {
        let mut r = Reader::new(p);
        let version = r.u8("protocol version")?;
        if version != 10 {
            return Err(ProtoError::Unexpected(format!(
                "protocol version {version}"
            )));
        }
        let server_version = String::from_utf8_lossy(r.cstr()).into_owned();
        let connection_id = r.u32("connection id")?;
        let mut seed = r.bytes(8, "auth data")?.to_vec();
        r.u8("filler")?;
        let cap_lo = r.u16("capabilities")? as u32;
        let mut capabilities = cap_lo;
        let mut auth_plugin = String::from("mysql_native_password");
        if !r.remaining().is_empty() {
            r.u8("charset")?;
            r.u16("status")?;
            capabilities |= (r.u16("capabilities")? as u32) << 16;
            let auth_len = r.u8("auth data length")? as usize;
            r.bytes(10, "reserved")?;
            if capabilities & CLIENT_SECURE_CONNECTION != 0 {
                let n = auth_len.saturating_sub(8).max(13);
                let part2 = r.bytes(n.min(r.remaining().len()), "auth data 2")?;
                let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
                seed.extend_from_slice(part2);
            }
            if capabilities & CLIENT_PLUGIN_AUTH != 0 {
                let name = r.cstr();
                if !name.is_empty() {
                    auth_plugin = String::from_utf8_lossy(name).into_owned();
                }
            }
        }
        Ok(Greeting {
            server_version,
            connection_id,
            capabilities,
            seed,
            auth_plugin,
        })
    };
    inner().map_err(Err)
}

/// `mysql_native_password`: SHA1(pw) XOR SHA1(seed + SHA1(SHA1(pw))); empty for an empty password.
pub fn native_password(password: &[u8], seed: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = sha1(password);
    let h2 = sha1(&h1);
    let mut s = seed.to_vec();
    s.extend_from_slice(&h2);
    let h3 = sha1(&s);
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

/// The client's `HandshakeResponse41` payload.
pub fn handshake_response(user: &str, auth: &[u8], db: Option<&str>) -> Vec<u8> {
    let mut caps = CLIENT_LONG_PASSWORD
        | CLIENT_LONG_FLAG
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_MULTI_RESULTS
        | CLIENT_PLUGIN_AUTH;
    if db.is_some() {
        caps |= CLIENT_CONNECT_WITH_DB;
    }
    let mut p = Vec::with_capacity(64 + user.len());
    p.extend_from_slice(&caps.to_le_bytes());
    p.extend_from_slice(&(16u32 << 20).to_le_bytes());
    p.push(45); // utf8mb4_general_ci
    p.extend_from_slice(&[0u8; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    p.push(auth.len().min(255) as u8);
    p.extend_from_slice(&auth[..auth.len().min(255)]);
    if let Some(db) = db {
        p.extend_from_slice(db.as_bytes());
        p.push(0);
    }
    p.extend_from_slice(b"mysql_native_password\0");
    p
}

/// An OK packet's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ok {
    pub affected_rows: u64,
    pub last_insert_id: u64,
}

/// Parses an OK payload (0x00, or 0xfe as the final packet in some flows).
pub fn parse_ok(p: &[u8]) -> Result<Ok> {
    let mut r = Reader::new(p);
    let h = r.u8("OK packet")?;
    if h != 0x00 && h != 0xfe {
        return Err(ProtoError::Unexpected(format!("OK header {h:#x}")));
    }
    let affected_rows = r.lenenc("affected rows")?.unwrap_or(0);
    let last_insert_id = r.lenenc("last insert id")?.unwrap_or(0);
    Ok(Ok {
        affected_rows,
        last_insert_id,
    })
}

/// True for an EOF packet (0xfe with a short payload), as opposed to a row starting with 0xfe.
pub fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xfe) && p.len() < 9
}

/// One text-protocol row: each column a string or NULL.
pub fn parse_text_row(p: &[u8], columns: usize) -> Result<Vec<Option<String>>> {
    let mut r = Reader::new(p);
    let mut row = Vec::with_capacity(columns);
    for _ in 0..columns {
        row.push(
            r.lenenc_str("row value")?
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        );
    }
    Ok(row)
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

    /// A greeting as MariaDB 10.11 sends it.
    fn mariadb_greeting(seed: &[u8; 20]) -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0");
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(&seed[..8]);
        p.push(0);
        let caps: u32 = 0xf7fe | (0x81bf << 16);
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(&seed[8..]);
        p.push(0);
        p.extend_from_slice(b"mysql_native_password\0");
        p
    }

    #[test]
    fn parses_mariadb_greeting() {
        let seed: [u8; 20] = *b"abcdefghijklmnopqrst";
        let g = parse_greeting(&mariadb_greeting(&seed)).unwrap();
        assert_eq!(g.seed, seed.to_vec());
        assert_eq!(g.connection_id, 7);
        assert_eq!(g.auth_plugin, "mysql_native_password");
        assert!(g.server_version.contains("MariaDB"));
    }

    #[test]
    fn greeting_error_is_understood_as_error() {
        let pkt = greeting_error(ER_CON_COUNT_ERROR, "Too many connections");
        let (len, seq) = packet_header(&pkt).unwrap();
        assert_eq!((len, seq), (pkt.len() - 4, 0));
        let e = parse_greeting(&pkt[4..]).unwrap_err().unwrap();
        assert_eq!(e.code, 1040);
        assert_eq!(e.message, "Too many connections");
    }

    #[test]
    fn native_password_matches_mysql() {
        // The stored hash is '*' + hex(SHA1(SHA1(pw))); the server checks
        // SHA1(seed + stored) XOR scramble == SHA1(pw), whose SHA1 is the stored hash.
        let seed = b"01234567890123456789";
        let s = native_password(b"secret", seed);
        let stored = sha1(&sha1(b"secret"));
        let mut m = seed.to_vec();
        m.extend_from_slice(&stored);
        let h = sha1(&m);
        let candidate: Vec<u8> = s.iter().zip(h.iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(sha1(&candidate), stored);
        assert!(native_password(b"", seed).is_empty());
    }

    #[test]
    fn err_with_sqlstate() {
        let mut p = vec![0xff, 0x17, 0x04];
        p.extend_from_slice(b"#08S01WSREP has not yet prepared node for application use");
        let e = parse_err(&p).unwrap();
        assert_eq!((e.code, e.state.as_str()), (1047, "08S01"));
    }

    #[test]
    fn rows_and_nulls() {
        let p = [3, b'a', b'b', b'c', 0xfb, 0];
        assert_eq!(
            parse_text_row(&p, 3).unwrap(),
            vec![Some("abc".into()), None, Some(String::new())]
        );
        assert!(parse_text_row(&p[..2], 1).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("n1"), "'n1'");
        assert_eq!(quote("a'b\\"), "'a''b\\\\'");
    }

    proptest! {
        /// Never panics on network input.
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200), n in 0usize..8) {
            let _ = parse_greeting(&data);
            let _ = parse_err(&data);
            let _ = parse_ok(&data);
            let _ = parse_text_row(&data, n);
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
    }
}
