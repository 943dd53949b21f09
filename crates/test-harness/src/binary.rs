//! Minimal binary-protocol framing for tests: build request packets and split a byte stream of
//! responses into packets. Deliberately independent of `memcache-proto`, so the tests check the
//! server against the protocol document, not against the codec under test.

/// Request magic.
pub const REQ: u8 = 0x80;
/// Response magic.
pub const RES: u8 = 0x81;

/// Opcodes of `doc/protocol-binary.txt`.
pub mod op {
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
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
}

/// A request packet with all header fields explicit (so tests can also build inconsistent ones).
#[derive(Clone, Debug, Default)]
pub struct Packet {
    pub magic: u8,
    pub opcode: u8,
    pub datatype: u8,
    /// vbucket in requests, status in responses.
    pub vbucket_or_status: u16,
    pub opaque: u32,
    pub cas: u64,
    pub extras: Vec<u8>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Packet {
    /// A well-formed request.
    pub fn request(opcode: u8, extras: &[u8], key: &[u8], value: &[u8]) -> Packet {
        Packet {
            magic: REQ,
            opcode,
            extras: extras.to_vec(),
            key: key.to_vec(),
            value: value.to_vec(),
            ..Default::default()
        }
    }

    pub fn with_cas(mut self, cas: u64) -> Packet {
        self.cas = cas;
        self
    }

    pub fn with_opaque(mut self, opaque: u32) -> Packet {
        self.opaque = opaque;
        self
    }

    /// Encode with consistent lengths.
    pub fn encode(&self) -> Vec<u8> {
        let body = (self.extras.len() + self.key.len() + self.value.len()) as u32;
        self.encode_with(self.key.len() as u16, self.extras.len() as u8, body)
    }

    /// Encode with the given (possibly lying) length fields.
    pub fn encode_with(&self, keylen: u16, extlen: u8, bodylen: u32) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(24 + self.extras.len() + self.key.len() + self.value.len());
        out.push(self.magic);
        out.push(self.opcode);
        out.extend_from_slice(&keylen.to_be_bytes());
        out.push(extlen);
        out.push(self.datatype);
        out.extend_from_slice(&self.vbucket_or_status.to_be_bytes());
        out.extend_from_slice(&bodylen.to_be_bytes());
        out.extend_from_slice(&self.opaque.to_be_bytes());
        out.extend_from_slice(&self.cas.to_be_bytes());
        out.extend_from_slice(&self.extras);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.value);
        out
    }
}

/// Extras of set/add/replace: flags, exptime.
pub fn store_extras(flags: u32, exptime: u32) -> Vec<u8> {
    let mut e = flags.to_be_bytes().to_vec();
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

/// Extras of incr/decr: delta, initial, exptime.
pub fn arith_extras(delta: u64, initial: u64, exptime: u32) -> Vec<u8> {
    let mut e = delta.to_be_bytes().to_vec();
    e.extend_from_slice(&initial.to_be_bytes());
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

/// A parsed response packet plus where it sits in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub magic: u8,
    pub opcode: u8,
    pub datatype: u8,
    pub status: u16,
    pub opaque: u32,
    pub cas: u64,
    pub extras: Vec<u8>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Offset of the CAS field (8 bytes) in the stream this was split from.
    pub cas_offset: usize,
}

/// Split `stream` into response packets. Returns the packets and the length of a trailing
/// incomplete or unparseable remainder (0 when the stream ends on a packet boundary).
pub fn split_responses(stream: &[u8]) -> (Vec<Response>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while stream.len() - at >= 24 {
        let h = &stream[at..at + 24];
        let keylen = u16::from_be_bytes([h[2], h[3]]) as usize;
        let extlen = h[4] as usize;
        let bodylen = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
        if h[0] != RES || keylen + extlen > bodylen || stream.len() - at - 24 < bodylen {
            break;
        }
        let body = &stream[at + 24..at + 24 + bodylen];
        out.push(Response {
            magic: h[0],
            opcode: h[1],
            datatype: h[5],
            status: u16::from_be_bytes([h[6], h[7]]),
            opaque: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
            cas: u64::from_be_bytes(h[16..24].try_into().expect("8 bytes")),
            extras: body[..extlen].to_vec(),
            key: body[extlen..extlen + keylen].to_vec(),
            value: body[extlen + keylen..].to_vec(),
            cas_offset: at + 16,
        });
        at += 24 + bodylen;
    }
    (out, stream.len() - at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_split_round_trips() {
        let mut p = Packet::request(op::SET, &store_extras(7, 0), b"key", b"value")
            .with_cas(9)
            .with_opaque(3);
        p.magic = RES;
        let mut bytes = p.encode();
        bytes.extend_from_slice(&[RES, 1]); // trailing partial header
        let (rs, rest) = split_responses(&bytes);
        assert_eq!(rest, 2);
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].key, b"key");
        assert_eq!(rs[0].value, b"value");
        assert_eq!(rs[0].cas, 9);
        assert_eq!(rs[0].opaque, 3);
        assert_eq!(rs[0].cas_offset, 16);
    }
}
