//! Random classic text-protocol ops, valid and malformed, for the differential test.
//!
//! Every op must leave the connection where the trailing `mn\r\n` is read as a command (or
//! close it): every op ends in a line terminator (a rejected command line may be followed by its
//! data, which is then read as a line), a data block is `len + 2` bytes even when its terminator
//! is wrong, and nothing declares a huge length that would swallow the trailer. Values are `x` + lowercase
//! letters/digits or decimal numbers, so a rejected value line parses as an unknown command and
//! no value ends in `MN`.

use std::time::{SystemTime, UNIX_EPOCH};

use test_harness::Rng;

use super::{Seg, TextOp, WRONG_CAS};

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Keys and shared parameters of one stream.
pub struct Gen {
    pub keys: Vec<Vec<u8>>,
    /// An absolute expiry time far in the future (same for both servers).
    far_abs: i64,
    /// Ops emitted with a >1 MB body so far (bounded per stream to keep the test quick).
    big: usize,
}

pub fn key250() -> Vec<u8> {
    let mut k = b"k".to_vec();
    k.resize(250, b'q');
    k
}

pub fn key251() -> Vec<u8> {
    let mut k = key250();
    k.push(b'q');
    k
}

impl Gen {
    pub fn new(_seed: u64) -> Gen {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        Gen {
            keys: vec![
                b"a".to_vec(),
                b"b".to_vec(),
                b"c".to_vec(),
                b"num".to_vec(),
                b"k:1".to_vec(),
                key250(),
            ],
            far_abs: now + 500_000,
            big: 0,
        }
    }

    fn key(&self, rng: &mut Rng) -> Vec<u8> {
        // Favour the short keys so ops interact.
        if rng.chance(1, 12) {
            key250()
        } else {
            rng.pick(&self.keys[..5]).clone()
        }
    }

    /// An exptime that cannot straddle a second: never, far, already expired, or the 30-day
    /// relative/absolute boundary.
    pub fn exptime(&self, rng: &mut Rng) -> String {
        match rng.below(10) {
            0..=4 => "0".into(),
            5 => "100000".into(),
            6 => "-1".into(),
            7 => "2678400".into(), // absolute: 1970-02-01, long expired
            8 => self.far_abs.to_string(),
            _ => rng.pick(&["2592000", "2592001", "-100"]).to_string(),
        }
    }

    fn flags(rng: &mut Rng) -> String {
        match rng.below(6) {
            0..=2 => "0".into(),
            3 => "4294967295".into(),
            4 => rng.pick(&["1", "2", "16", "42"]).to_string(),
            _ => (rng.next_u64() as u32).to_string(),
        }
    }

    /// A value: mostly short strings, sometimes numbers (for incr/decr), rarely big.
    pub fn value(&mut self, rng: &mut Rng) -> Vec<u8> {
        match rng.below(20) {
            0..=8 => {
                let n = rng.range(0, 12) as usize;
                let mut v = b"x".to_vec();
                v.extend(rng.string_from(ALNUM, n));
                v
            }
            9..=13 => rng
                .pick(&[
                    "0",
                    "1",
                    "7",
                    "42",
                    "0099",
                    "18446744073709551615",
                    "18446744073709551614",
                    "4294967296",
                ])
                .as_bytes()
                .to_vec(),
            14 => rng
                .pick(&["-5", "12abc", "99999999999999999999999", " 5"])
                .as_bytes()
                .to_vec(),
            15 => Vec::new(),
            16..=18 => {
                let n = rng.range(100, 5000) as usize;
                let mut v = b"x".to_vec();
                v.extend(rng.string_from(ALNUM, n));
                v
            }
            _ => {
                let n = if self.big < 2 && rng.chance(1, 3) {
                    self.big += 1;
                    *rng.pick(&[1_000_000usize, 1_048_577, 2_000_000])
                } else {
                    rng.range(10_000, 200_000) as usize
                };
                let mut v = b"x".to_vec();
                v.resize(n, b'y');
                v
            }
        }
    }

    /// A storage command (`set add replace append prepend cas`), valid syntax.
    fn storage(&mut self, rng: &mut Rng) -> TextOp {
        let cmd = *rng.pick(&[
            "set", "set", "set", "add", "replace", "append", "prepend", "cas", "cas",
        ]);
        let key = self.key(rng);
        let value = if rng.chance(1, 24) {
            b"x y".to_vec()
        } else {
            self.value(rng)
        };
        let mut head = format!("{cmd} ").into_bytes();
        head.extend_from_slice(&key);
        head.extend(
            format!(
                " {} {} {}",
                Self::flags(rng),
                self.exptime(rng),
                value.len()
            )
            .into_bytes(),
        );
        let mut segs = vec![Seg::Lit(head)];
        if cmd == "cas" {
            match rng.below(4) {
                0..=1 => {
                    segs.push(Seg::Lit(b" ".to_vec()));
                    segs.push(Seg::CasOf(key.clone()));
                }
                2 => segs.push(Seg::Lit(format!(" {WRONG_CAS}").into_bytes())),
                _ => segs.push(Seg::Lit(b" 0".to_vec())),
            }
        }
        let mut tail = Vec::new();
        if rng.chance(1, 5) {
            tail.extend_from_slice(b" noreply");
        }
        tail.extend_from_slice(b"\r\n");
        tail.extend_from_slice(&value);
        tail.extend_from_slice(b"\r\n");
        segs.push(Seg::Lit(tail));
        TextOp {
            segs,
            key: Some(key),
        }
    }

    fn retrieval(&mut self, rng: &mut Rng) -> TextOp {
        let cmd = *rng.pick(&["get", "get", "gets", "gets", "gat", "gats"]);
        let n = if rng.chance(1, 20) {
            rng.range(20, 100)
        } else {
            rng.range(1, 4)
        };
        let mut line = cmd.as_bytes().to_vec();
        if cmd.starts_with("gat") {
            line.extend(
                format!(
                    " {}",
                    if rng.chance(1, 2) {
                        "0".to_string()
                    } else {
                        self.exptime(rng)
                    }
                )
                .into_bytes(),
            );
        }
        // Each key is preceded by a space (not a run of spaces: clippy's `same_item_push` does
        // not see the keys pushed by `extend`).
        #[allow(clippy::same_item_push)]
        for _ in 0..n {
            line.push(b' ');
            if rng.chance(1, 10) {
                line.extend_from_slice(b"missing");
            } else {
                line.extend(self.key(rng));
            }
        }
        line.extend_from_slice(b"\r\n");
        TextOp::lit(line)
    }

    fn arith(&mut self, rng: &mut Rng) -> TextOp {
        let cmd = *rng.pick(&["incr", "decr"]);
        let key = if rng.chance(2, 3) {
            b"num".to_vec()
        } else {
            self.key(rng)
        };
        let delta = *rng.pick(&[
            "1",
            "1",
            "5",
            "0",
            "100",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "abc",
            "4294967296",
            "007",
        ]);
        let mut line = format!("{cmd} ").into_bytes();
        line.extend(key);
        line.extend(format!(" {delta}").into_bytes());
        if rng.chance(1, 5) {
            line.extend_from_slice(b" noreply");
        }
        line.extend_from_slice(b"\r\n");
        TextOp::lit(line)
    }

    fn misc(&mut self, rng: &mut Rng) -> TextOp {
        let key = self.key(rng);
        let keyed = |pre: &str, post: String| {
            let mut l = pre.as_bytes().to_vec();
            l.extend_from_slice(&key);
            l.extend(post.into_bytes());
            l.extend_from_slice(b"\r\n");
            l
        };
        let noreply = if rng.chance(1, 5) { " noreply" } else { "" };
        let line = match rng.below(9) {
            0..=2 => keyed("delete ", noreply.to_string()),
            3 => keyed("delete ", " 0".into()),
            4..=5 => keyed("touch ", format!(" {}{noreply}", self.exptime(rng))),
            // No delayed flush (`flush_all <future>`): while one is pending, memcached 1.6.18
            // stops treating items of earlier flushes as flushed, and whether such an item was
            // already reclaimed depends on its background LRU threads, so two memcacheds
            // disagree.
            6 => match rng.below(5) {
                0 => b"flush_all\r\n".to_vec(),
                1 => b"flush_all 0\r\n".to_vec(),
                2 => b"flush_all noreply\r\n".to_vec(),
                3 => b"flush_all 0 noreply\r\n".to_vec(),
                _ => b"flush_all -1\r\n".to_vec(),
            },
            7 => rng
                .pick(&[
                    "verbosity 1\r\n",
                    "verbosity 0\r\n",
                    "verbosity 1 noreply\r\n",
                    "version\r\n",
                    "stats\r\n",
                    "stats reset\r\n",
                ])
                .as_bytes()
                .to_vec(),
            _ => {
                // A `gets` so the next `cas` has a real CAS to use.
                keyed("gets ", String::new())
            }
        };
        TextOp::lit(line)
    }

    /// Malformed or borderline input whose handling must match memcached's.
    fn malformed(&mut self, rng: &mut Rng) -> TextOp {
        let k251 = String::from_utf8(key251()).expect("ascii");
        let k250 = String::from_utf8(key250()).expect("ascii");
        let cases: Vec<String> = vec![
            "set a 0 0\r\n".into(),
            "set a abc 0 1\r\nx\r\n".into(),
            "set a 0 abc 1\r\nx\r\n".into(),
            "set a 0 0 abc\r\nx\r\n".into(),
            "set a 0 0 -1\r\n".into(),
            "set a 4294967296 0 1\r\nx\r\n".into(),
            "set a -1 0 1\r\nx\r\n".into(),
            "set a 0 0 3\r\nxyzab\r\n".into(), // bad data chunk (5 bytes for 3 + CRLF)
            "set a 0 0 1\r\nxx\n".into(),      // bad data chunk: wrong terminator, right length
            "append a 0 0 2\r\nxyzz\r\n".into(), // bad data chunk
            format!("set {k251} 0 0 1\r\nx\r\n"),
            format!("get {k251}\r\n"),
            format!("get a {k251} b\r\n"),
            format!("delete {k251}\r\n"),
            format!("incr {k251} 1\r\n"),
            format!("touch {k251} 0\r\n"),
            format!("set {k250} 0 0 1\r\nx\r\n"),
            "cas a 0 0 1\r\nx\r\n".into(),
            "cas a 0 0 1 abc\r\nx\r\n".into(),
            "cas a 0 0 1 -1\r\nx\r\n".into(),
            "get\r\n".into(),
            "gets\r\n".into(),
            "gat\r\n".into(),
            "gat 0\r\n".into(),
            "gat abc a\r\n".into(),
            "incr\r\n".into(),
            "incr a\r\n".into(),
            "decr a 1 2 3\r\n".into(),
            "delete\r\n".into(),
            "delete a 5\r\n".into(),
            "delete a noreply extra\r\n".into(),
            "touch a\r\n".into(),
            "touch a abc\r\n".into(),
            "flush_all abc\r\n".into(),
            "verbosity\r\n".into(),
            "verbosity abc\r\n".into(),
            "\r\n".into(),
            "   \r\n".into(),
            "get a\n".into(),
            "set a 0 0 1\nx\r\n".into(),
            "GET a\r\n".into(),
            "Set a 0 0 1\r\nx\r\n".into(),
            "foo\r\n".into(),
            "foo bar baz\r\n".into(),
            "get  a   b \r\n".into(),
            "set  a  0  0  1 \r\nx\r\n".into(),
            "set a 0 0 1 noreply junk\r\nx\r\n".into(),
            "set a 0 0 01\r\nx\r\n".into(),
            "set a 00 00 1\r\nx\r\n".into(),
            "set a 0 0 1\r\nx\r\nget a\r\n".into(),
            "incr a 1\r\ndecr a 1\r\nget a b c\r\n".into(),
            "gets a b a b\r\n".into(),
            "set a\t0 0 1\r\nx\r\n".into(),
            "get a\x00b\r\n".into(),
            "stats nonexistent_group\r\n".into(),
            "cache_memlimit\r\n".into(),
            "shutdown\r\n".into(),
            "slabs\r\n".into(),
            "lru_crawler\r\n".into(),
        ];
        let mut bytes = rng.pick(&cases).as_bytes().to_vec();
        if rng.chance(1, 10) {
            // Random printable junk line (never a real command: starts with `~`).
            bytes = b"~".to_vec();
            bytes.extend(rng.string_between(b"abcdefghij0123456789 ~!@#$%^&*()_+-=", 0, 60));
            bytes.extend_from_slice(b"\r\n");
        }
        TextOp::lit(bytes)
    }

    /// One op (sometimes several pipelined in one write; sometimes one that closes the
    /// connection).
    pub fn op(&mut self, rng: &mut Rng) -> TextOp {
        if rng.chance(1, 10) {
            let n = rng.range(2, 4);
            let ops = (0..n).map(|_| self.single(rng)).collect();
            return TextOp::pipeline(ops);
        }
        if rng.chance(1, 150) {
            return TextOp::lit(*rng.pick(&[
                "quit\r\n",
                "GET / HTTP/1.1\r\n",
                "get a b HTTP/1.0\r\n",
            ]));
        }
        self.single(rng)
    }

    fn single(&mut self, rng: &mut Rng) -> TextOp {
        match rng.below(20) {
            0..=5 => self.storage(rng),
            6..=9 => self.retrieval(rng),
            10..=12 => self.arith(rng),
            13..=16 => self.misc(rng),
            _ => self.malformed(rng),
        }
    }
}
