//! Random binary-protocol requests, valid and malformed, for the differential test. They go on
//! their own connection (memcached picks the protocol from a connection's first byte), each
//! step followed by a NOOP whose response ends the step's replies.
//!
//! Malformed packets always carry the body their header announces (or close the connection, as
//! a bad magic byte does), so the NOOP that follows is still read as a packet.

use test_harness::binary::{arith_extras, op, store_extras, Packet};
use test_harness::Rng;

use super::text_gen::{key250, key251};
use super::{BinOp, WRONG_CAS};

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

pub struct Gen {
    keys: Vec<Vec<u8>>,
    opaque: u32,
    big: usize,
}

impl Gen {
    pub fn new(_seed: u64) -> Gen {
        Gen {
            keys: vec![
                b"a".to_vec(),
                b"b".to_vec(),
                b"c".to_vec(),
                b"num".to_vec(),
                b"k:1".to_vec(),
            ],
            opaque: 0,
            big: 0,
        }
    }

    fn key(&self, rng: &mut Rng) -> Vec<u8> {
        match rng.below(16) {
            0 => key250(),
            1 => key251(),
            2 => Vec::new(),
            _ => rng.pick(&self.keys).clone(),
        }
    }

    fn exptime(rng: &mut Rng) -> u32 {
        *rng.pick(&[0, 0, 0, 100_000, 2_678_400, 0xffff_ffff])
    }

    fn value(&mut self, rng: &mut Rng) -> Vec<u8> {
        match rng.below(14) {
            0..=6 => {
                let mut v = b"x".to_vec();
                v.extend(rng.string_between(ALNUM, 0, 10));
                v
            }
            7..=10 => rng
                .pick(&["0", "9", "18446744073709551615", "12a"])
                .as_bytes()
                .to_vec(),
            11 => Vec::new(),
            12 => {
                let mut v = b"x".to_vec();
                v.resize(rng.range(1000, 100_000) as usize, b'q');
                v
            }
            _ => {
                let n = if self.big < 2 {
                    self.big += 1;
                    1_048_577
                } else {
                    4096
                };
                let mut v = b"x".to_vec();
                v.resize(n, b'q');
                v
            }
        }
    }

    fn packet(&mut self, rng: &mut Rng) -> BinOp {
        self.opaque = self.opaque.wrapping_add(1);
        let opaque = self.opaque;
        let key = self.key(rng);
        let mut cas_of = None;
        let pkt = match rng.below(22) {
            0..=4 => {
                let opc = *rng.pick(&[
                    op::SET,
                    op::SET,
                    op::ADD,
                    op::REPLACE,
                    op::SETQ,
                    op::ADDQ,
                    op::REPLACEQ,
                ]);
                let flags = *rng.pick(&[0u32, 1, 0xffff_ffff, 77]);
                let p = Packet::request(
                    opc,
                    &store_extras(flags, Self::exptime(rng)),
                    &key,
                    &self.value(rng),
                );
                match rng.below(6) {
                    0 => {
                        cas_of = Some(key.clone());
                        p
                    }
                    1 => p.with_cas(WRONG_CAS),
                    _ => p,
                }
            }
            5..=8 => {
                let opc = *rng.pick(&[op::GET, op::GETK, op::GETQ, op::GETKQ]);
                Packet::request(opc, &[], &key, &[])
            }
            9 => {
                let opc = *rng.pick(&[op::GAT, op::GATQ, op::GATK, op::GATKQ, op::TOUCH]);
                Packet::request(opc, &Self::exptime(rng).to_be_bytes(), &key, &[])
            }
            10..=11 => {
                let opc = *rng.pick(&[op::DELETE, op::DELETEQ]);
                let p = Packet::request(opc, &[], &key, &[]);
                match rng.below(5) {
                    0 => {
                        cas_of = Some(key.clone());
                        p
                    }
                    1 => p.with_cas(WRONG_CAS),
                    _ => p,
                }
            }
            12..=14 => {
                let opc =
                    *rng.pick(&[op::INCREMENT, op::DECREMENT, op::INCREMENTQ, op::DECREMENTQ]);
                let key = if rng.chance(2, 3) {
                    b"num".to_vec()
                } else {
                    key
                };
                let delta = *rng.pick(&[0u64, 1, 5, u64::MAX]);
                let initial = *rng.pick(&[0u64, 10, u64::MAX]);
                let exp = *rng.pick(&[0u32, 0xffff_ffff, 100_000]);
                let p = Packet::request(opc, &arith_extras(delta, initial, exp), &key, &[]);
                if rng.chance(1, 6) {
                    cas_of = Some(key.clone());
                }
                p
            }
            15 => {
                let opc = *rng.pick(&[op::APPEND, op::PREPEND, op::APPENDQ, op::PREPENDQ]);
                Packet::request(opc, &[], &key, &self.value(rng))
            }
            // No delayed flush: see text_gen (memcached is nondeterministic with one pending).
            16 => match rng.below(3) {
                0 => Packet::request(op::FLUSH, &[], &[], &[]),
                1 => Packet::request(op::FLUSHQ, &[], &[], &[]),
                _ => Packet::request(op::FLUSH, &0u32.to_be_bytes(), &[], &[]),
            },
            // (No VERBOSITY: memcached 1.6.18 answers it "Unknown command" after reading its
            // extras, then swallows the body again and loses sync.)
            17 => match rng.below(2) {
                0 => Packet::request(op::VERSION, &[], &[], &[]),
                _ => Packet::request(op::NOOP, &[], &[], &[]),
            },
            _ => return self.malformed(rng, opaque),
        };
        BinOp::Packet {
            pkt: pkt.with_opaque(opaque),
            cas_of,
            lengths: None,
        }
    }

    /// Well-framed but invalid requests (wrong extras for the opcode, unknown opcodes, bad
    /// lengths that still frame correctly), and rarely a connection-closing one.
    fn malformed(&mut self, rng: &mut Rng, opaque: u32) -> BinOp {
        let key = rng.pick(&self.keys).clone();
        let pkt = match rng.below(12) {
            0 => Packet::request(op::GET, &[1, 2, 3, 4], &key, &[]), // get with extras
            1 => Packet::request(op::SET, &[], &key, b"x"),          // set without extras
            2 => Packet::request(op::SET, &[0; 4], &key, b"x"),      // short extras
            3 => Packet::request(op::GET, &[], &[], &[]),            // no key
            // Unknown opcode. Without a body: memcached 1.6.18 reads an unknown command's key
            // and then swallows the whole body again, losing sync; that quirk is not compared.
            4 => Packet::request(*rng.pick(&[0x50u8, 0x3f, 0xfe]), &[], &[], &[]),
            5 => Packet::request(op::INCREMENT, &[0; 8], &key, &[]), // short arith extras
            6 => Packet::request(op::DELETE, &[], &key, b"value"),   // delete with a value
            7 => Packet::request(op::NOOP, &[], &key, &[]),          // noop with a key
            8 => Packet::request(op::VERSION, &[1], &[], &[]),       // version with extras
            9 => Packet::request(op::TOUCH, &[], &key, &[]),         // touch without exptime
            // A value where none belongs (memcached reads key lengths beyond the body, so
            // lying length fields cannot be compared without losing sync).
            10 => Packet::request(op::GETK, &[], &key, b"junk"),
            _ => {
                if rng.chance(1, 4) {
                    // Bad magic: memcached closes the connection. A valid NOOP goes first so
                    // that the connection is in binary mode even when this is its first
                    // packet (memcached picks the protocol from the first byte).
                    let mut raw = Packet::request(op::NOOP, &[], &[], &[])
                        .with_opaque(opaque)
                        .encode();
                    let mut bad = Packet::request(op::GET, &[], &key, &[]).encode();
                    bad[0] = 0x42;
                    raw.extend(bad);
                    return BinOp::Raw(raw);
                }
                let mut p = Packet::request(op::GET, &[], &key, &[]);
                p.datatype = 1; // non-raw datatype
                p
            }
        };
        BinOp::Packet {
            pkt: pkt.with_opaque(opaque),
            cas_of: None,
            lengths: None,
        }
    }

    /// One step: one packet, or a few pipelined (quiet ones included); rarely a QUIT.
    pub fn ops(&mut self, rng: &mut Rng) -> Vec<BinOp> {
        if rng.chance(1, 200) {
            let opc = *rng.pick(&[op::QUIT, op::QUITQ]);
            return vec![BinOp::Packet {
                pkt: Packet::request(opc, &[], &[], &[]),
                cas_of: None,
                lengths: None,
            }];
        }
        let n = if rng.chance(1, 6) { rng.range(2, 6) } else { 1 };
        (0..n).map(|_| self.packet(rng)).collect()
    }
}
