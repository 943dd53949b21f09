//! Random meta-protocol ops (`mg ms md ma me`) with random flag sets, valid and malformed, for
//! the differential test. `mn` is not generated on its own: it is the trailer that delimits
//! every op's replies.
//!
//! TTL tokens are 0, -1, or far away; `R` (recache) thresholds are far below the far TTLs, so no
//! answer depends on which second a server read its clock.

use test_harness::Rng;

use super::text_gen::{key250, key251};
use super::{Seg, TextOp, WRONG_CAS};

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A meta TTL token value.
fn ttl(rng: &mut Rng) -> &'static str {
    let t: &&str = rng.pick(&["0", "0", "100000", "-1", "2678400", "300000"]);
    t
}

/// Pick a random subset of `flags` in random order.
fn subset(rng: &mut Rng, flags: &[String], max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let n = rng.range(0, max as u64) as usize;
    for _ in 0..n {
        let f = rng.pick(flags).clone();
        // Duplicates are allowed but rare.
        if !out.contains(&f) || rng.chance(1, 20) {
            out.push(f);
        }
    }
    out
}

fn key(rng: &mut Rng, keys: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(14) {
        0 => key250(),
        1 => key251(),
        _ => rng.pick(&keys[..5]).clone(),
    }
}

/// Base64 forms of some pool keys (for the `b` flag), plus invalid base64.
fn b64_key(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let (enc, raw): (&str, &str) = *rng.pick(&[
        ("YQ==", "a"),
        ("Yg==", "b"),
        ("bnVt", "num"),
        ("!!!", "!!!"),
        ("YQ", "a"),
    ]);
    (enc.as_bytes().to_vec(), raw.as_bytes().to_vec())
}

/// Assemble `<cmd> <key>[ <extra>] <flags...>\r\n`, CAS flag tokens resolved per server.
fn line(
    cmd: &str,
    key: &[u8],
    extra: Option<String>,
    flags: &[String],
    cas_key: &[u8],
    cas_flag: Option<char>,
) -> Vec<Seg> {
    let mut head = format!("{cmd} ").into_bytes();
    head.extend_from_slice(key);
    if let Some(e) = extra {
        head.push(b' ');
        head.extend(e.into_bytes());
    }
    for f in flags {
        head.push(b' ');
        head.extend_from_slice(f.as_bytes());
    }
    let mut segs = vec![Seg::Lit(head)];
    if let Some(c) = cas_flag {
        segs.push(Seg::Lit(format!(" {c}").into_bytes()));
        segs.push(Seg::CasOf(cas_key.to_vec()));
    }
    segs.push(Seg::Lit(b"\r\n".to_vec()));
    segs
}

fn mg(rng: &mut Rng, keys: &[Vec<u8>]) -> TextOp {
    let mut flags: Vec<String> = [
        "v", "v", "f", "t", "c", "s", "k", "h", "l", "q", "u", "O123", "Oabc", "T100000", "T0",
        "N100000", "R30",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    flags.push(format!("T{}", ttl(rng)));
    let (mut k, cas_key) = if rng.chance(1, 10) {
        let (enc, raw) = b64_key(rng);
        (enc, raw)
    } else {
        let k = key(rng, keys);
        (k.clone(), k)
    };
    let mut chosen = subset(rng, &flags, 6);
    if k != cas_key {
        chosen.push("b".into());
    }
    if rng.chance(1, 25) {
        chosen.push(rng.pick(&["z", "E", "!", "Tabc", "N", "O"]).to_string());
    }
    if rng.chance(1, 40) {
        k = Vec::new(); // `mg` with no key at all
        chosen.clear();
    }
    TextOp {
        segs: line("mg", &k, None, &chosen, &cas_key, None),
        key: Some(cas_key),
    }
}

fn ms(rng: &mut Rng, keys: &[Vec<u8>]) -> TextOp {
    let k = key(rng, keys);
    let flags: Vec<String> = [
        "c",
        "k",
        "q",
        "I",
        "O9",
        "F0",
        "F7",
        "F4294967295",
        "MS",
        "ME",
        "MA",
        "MP",
        "MR",
        "Ms",
        "Me",
        "Ma",
        "Mp",
        "Mr",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once(format!("T{}", ttl(rng))))
    .collect();
    let mut chosen = subset(rng, &flags, 4);
    if rng.chance(1, 25) {
        chosen.push(
            rng.pick(&["MX", "F-1", "F4294967296", "Fx", "Cabc", "z", "M"])
                .to_string(),
        );
    }
    let cas_flag = match rng.below(6) {
        0 => Some('C'),
        1 => {
            chosen.push(format!("C{WRONG_CAS}"));
            None
        }
        _ => None,
    };
    let value: Vec<u8> = match rng.below(12) {
        0..=5 => {
            let mut v = b"x".to_vec();
            v.extend(rng.string_between(ALNUM, 0, 10));
            v
        }
        6..=8 => rng
            .pick(&["0", "5", "18446744073709551615", "abc1"])
            .as_bytes()
            .to_vec(),
        9 => Vec::new(),
        10 => {
            let mut v = b"x".to_vec();
            v.resize(rng.range(1000, 50_000) as usize, b'z');
            v
        }
        _ => {
            let mut v = b"x".to_vec();
            v.resize(if rng.chance(1, 3) { 1_048_577 } else { 3000 }, b'w');
            v
        }
    };
    let (len_tok, body): (String, Vec<u8>) = match rng.below(30) {
        0 => ("abc".into(), Vec::new()),
        1 => ("-1".into(), Vec::new()),
        2 => {
            // Bad data chunk: wrong terminator where CRLF belongs, then a CRLF so the bytes
            // still end a line if the command line itself is rejected without a swallow.
            let mut b = value.clone();
            b.extend_from_slice(b"xx\r\n");
            (value.len().to_string(), b)
        }
        _ => {
            let mut b = value.clone();
            b.extend_from_slice(b"\r\n");
            (value.len().to_string(), b)
        }
    };
    let mut segs = line("ms", &k, Some(len_tok), &chosen, &k, cas_flag);
    segs.push(Seg::Lit(body));
    TextOp { segs, key: Some(k) }
}

fn md(rng: &mut Rng, keys: &[Vec<u8>]) -> TextOp {
    let k = key(rng, keys);
    let flags: Vec<String> = ["q", "k", "O5", "I", "T100000", "x"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut chosen = subset(rng, &flags, 3);
    let cas_flag = match rng.below(6) {
        0 => Some('C'),
        1 => {
            chosen.push(format!("C{WRONG_CAS}"));
            None
        }
        _ => None,
    };
    if rng.chance(1, 25) {
        chosen.push(rng.pick(&["z", "Cx", "!"]).to_string());
    }
    TextOp {
        segs: line("md", &k, None, &chosen, &k, cas_flag),
        key: Some(k),
    }
}

fn ma(rng: &mut Rng, keys: &[Vec<u8>]) -> TextOp {
    let k = if rng.chance(2, 3) {
        b"num".to_vec()
    } else {
        key(rng, keys)
    };
    let flags: Vec<String> = [
        "N0",
        "N100000",
        "J0",
        "J13",
        "J18446744073709551615",
        "D1",
        "D0",
        "D7",
        "D18446744073709551615",
        "MI",
        "M+",
        "MD",
        "M-",
        "Mi",
        "Md",
        "q",
        "t",
        "c",
        "v",
        "v",
        "k",
        "O77",
        "T100000",
        "T0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut chosen = subset(rng, &flags, 5);
    let cas_flag = match rng.below(8) {
        0 => Some('C'),
        1 => {
            chosen.push(format!("C{WRONG_CAS}"));
            None
        }
        _ => None,
    };
    if rng.chance(1, 20) {
        chosen.push(
            rng.pick(&["Dabc", "D18446744073709551616", "J-1", "MX", "Nx", "z"])
                .to_string(),
        );
    }
    TextOp {
        segs: line("ma", &k, None, &chosen, &k, cas_flag),
        key: Some(k),
    }
}

fn me(rng: &mut Rng, keys: &[Vec<u8>]) -> TextOp {
    let k = key(rng, keys);
    let mut l = b"me ".to_vec();
    l.extend_from_slice(&k);
    if rng.chance(1, 10) {
        l.extend_from_slice(b" b");
    }
    l.extend_from_slice(b"\r\n");
    TextOp::keyed(l, &k)
}

fn malformed(rng: &mut Rng) -> TextOp {
    TextOp::lit(*rng.pick(&[
        "mg\r\n",
        "ms\r\n",
        "ms a\r\n",
        "md\r\n",
        "ma\r\n",
        "me\r\n",
        "mz a\r\n",
        "m\r\n",
        "mg a v v v v v v v v v v v v v v v v v v v v v v v v\r\n",
        "ms a 1 T0 T0 T0\r\nx\r\n",
        "mg  a  v\r\n",
        "MG a v\r\n",
        "ms a 2 MS\r\nxyz\r\n",
    ]))
}

/// Plain text ops that set up state the meta ops then see (CAS via `gets`, numbers for `ma`).
fn setup(rng: &mut Rng, keys: &[Vec<u8>]) -> TextOp {
    let k = rng.pick(&keys[..5]).clone();
    let v = *rng.pick(&["1", "42", "x", "18446744073709551615"]);
    let mut l = b"set ".to_vec();
    l.extend_from_slice(&k);
    l.extend(format!(" 3 0 {}\r\n{v}\r\ngets ", v.len()).into_bytes());
    l.extend_from_slice(&k);
    l.extend_from_slice(b"\r\n");
    TextOp::keyed(l, &k)
}

/// One meta op (sometimes several pipelined, often with `q`).
pub fn op(rng: &mut Rng, keys: &[Vec<u8>]) -> TextOp {
    let single = |rng: &mut Rng| match rng.below(20) {
        0..=5 => mg(rng, keys),
        6..=10 => ms(rng, keys),
        11..=12 => md(rng, keys),
        13..=16 => ma(rng, keys),
        17 => me(rng, keys),
        18 => setup(rng, keys),
        _ => malformed(rng),
    };
    if rng.chance(1, 8) {
        let n = rng.range(2, 5);
        return TextOp::pipeline((0..n).map(|_| single(rng)).collect());
    }
    single(rng)
}
