//! Differential tests: the same seeded, randomized command streams go to keel and to Debian's
//! memcached 1.6.18, and the replies must be equal byte for byte after normalising only the
//! documented differences (version string, CAS numbers — aliased per distinct value so equality
//! relations are still compared —, remaining TTL / last-access seconds of meta replies, and the
//! `me` fields cls/size/la/exp/fetch).
//!
//! Replies are delimited without sleeping: every text/meta op is followed by `mn\r\n` and read
//! up to `MN\r\n`; every binary op is followed by a NOOP and read up to its response. Time-based
//! commands use TTLs that are either far away or already expired, so a 1-second tick between the
//! two servers cannot change an answer.
//!
//! On a mismatch the test prints the seed, the stream up to the failing op and both replies.
//! Environment knobs: `KEEL_DIFF_SEED=<n>` runs that one seed; `KEEL_DIFF_SEEDS=<n>` the number
//! of seeds per test (default below).
//!
//! `memcached_agrees_with_itself` runs the same machinery memcached-vs-memcached: it proves the
//! generators are deterministic and the normalisation sound, so a keel mismatch is keel's.

mod binary_gen;
mod meta_gen;
mod normalize;
mod text_gen;

use std::collections::HashMap;
use std::io;

use test_harness::binary::{op, split_responses, Packet};
use test_harness::{show, Reply, Rng, Server, TextClient};

use crate::{start_keel, start_memcached};

/// A CAS that no item will have on either server (counters start at 1 and grow by one).
pub const WRONG_CAS: u64 = 1 << 60;

/// One piece of a text/meta op: literal bytes, or "the last CAS this server gave for this key".
#[derive(Clone, Debug)]
pub enum Seg {
    Lit(Vec<u8>),
    CasOf(Vec<u8>),
}

/// One text/meta step: sent in one write, followed by `mn\r\n`.
#[derive(Clone, Debug)]
pub struct TextOp {
    pub segs: Vec<Seg>,
    /// Key whose CAS a meta `c` return in the reply belongs to.
    pub key: Option<Vec<u8>>,
}

impl TextOp {
    pub fn lit(bytes: impl Into<Vec<u8>>) -> TextOp {
        TextOp {
            segs: vec![Seg::Lit(bytes.into())],
            key: None,
        }
    }
    pub fn keyed(bytes: impl Into<Vec<u8>>, key: &[u8]) -> TextOp {
        TextOp {
            segs: vec![Seg::Lit(bytes.into())],
            key: Some(key.to_vec()),
        }
    }
    /// Concatenate ops into one pipelined write.
    pub fn pipeline(ops: Vec<TextOp>) -> TextOp {
        let key = ops.iter().find_map(|o| o.key.clone());
        TextOp {
            segs: ops.into_iter().flat_map(|o| o.segs).collect(),
            key,
        }
    }
    fn render(&self, cas: &CasBook) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &self.segs {
            match s {
                Seg::Lit(b) => out.extend_from_slice(b),
                Seg::CasOf(k) => out.extend_from_slice(cas.last_cas(k).to_string().as_bytes()),
            }
        }
        out
    }
}

/// One binary step: packets (or raw bytes) sent in one write, followed by a NOOP.
#[derive(Clone, Debug)]
pub enum BinOp {
    /// A packet; if `cas_of` is set, its CAS field becomes that key's last CAS on this server.
    Packet {
        pkt: Packet,
        cas_of: Option<Vec<u8>>,
        lengths: Option<(u16, u8, u32)>,
    },
    Raw(Vec<u8>),
}

impl BinOp {
    fn render(&self, cas: &CasBook) -> Vec<u8> {
        match self {
            BinOp::Raw(b) => b.clone(),
            BinOp::Packet {
                pkt,
                cas_of,
                lengths,
            } => {
                let mut p = pkt.clone();
                if let Some(k) = cas_of {
                    p.cas = cas.last_cas(k);
                }
                match lengths {
                    Some((k, e, b)) => p.encode_with(*k, *e, *b),
                    None => p.encode(),
                }
            }
        }
    }
    /// Key of the request whose response carries this opaque.
    fn key(&self) -> Option<&[u8]> {
        match self {
            BinOp::Packet { pkt, .. } if !pkt.key.is_empty() => Some(&pkt.key),
            _ => None,
        }
    }
}

/// Per-server CAS bookkeeping: the last CAS seen per key (to build valid `cas` commands) and an
/// alias per distinct CAS value (to compare replies without comparing CAS numbers).
#[derive(Default)]
pub struct CasBook {
    by_key: HashMap<Vec<u8>, u64>,
    alias: HashMap<u64, usize>,
}

impl CasBook {
    pub fn last_cas(&self, key: &[u8]) -> u64 {
        self.by_key.get(key).copied().unwrap_or(WRONG_CAS)
    }
    pub fn record(&mut self, key: &[u8], cas: u64) {
        self.by_key.insert(key.to_vec(), cas);
    }
    pub fn alias(&mut self, cas: u64) -> usize {
        let n = self.alias.len();
        *self.alias.entry(cas).or_insert(n)
    }
}

/// One server in a differential run, with its text and binary connections.
struct Side<'a> {
    server: &'a Server,
    text: Option<TextClient>,
    bin: Option<TextClient>,
    cas: CasBook,
}

/// What one side answered to one op: raw and normalised.
struct Answer {
    raw: Reply,
    norm: Vec<u8>,
}

const NOOP_OPAQUE: u32 = 0xfeed_f00d;

impl<'a> Side<'a> {
    fn new(server: &'a Server) -> Side<'a> {
        Side {
            server,
            text: None,
            bin: None,
            cas: CasBook::default(),
        }
    }

    fn who(&self) -> String {
        format!(
            "{} (pid {}, port {})",
            self.server.name(),
            self.server.pid(),
            self.server.port()
        )
    }

    fn text_conn(&mut self) -> io::Result<&mut TextClient> {
        if self.text.is_none() {
            self.text = Some(self.server.connect()?);
        }
        Ok(self.text.as_mut().expect("just set"))
    }

    fn bin_conn(&mut self) -> io::Result<&mut TextClient> {
        if self.bin.is_none() {
            self.bin = Some(self.server.connect()?);
        }
        Ok(self.bin.as_mut().expect("just set"))
    }

    fn exec_text(&mut self, op: &TextOp) -> Result<Answer, String> {
        let bytes = op.render(&self.cas);
        let who = self.who();
        let conn = self
            .text_conn()
            .map_err(|e| format!("{who}: connect: {e}"))?;
        let raw = send_then_read(conn, &bytes, b"mn\r\n", |buf| buf.ends_with(b"MN\r\n"))
            .map_err(|e| format!("{who}: {e}"))?;
        if raw.closed {
            self.text = None;
        }
        let norm = normalize::text(&raw.bytes, &mut self.cas, op.key.as_deref());
        Ok(Answer { raw, norm })
    }

    fn exec_bin(&mut self, ops: &[BinOp]) -> Result<Answer, String> {
        let mut bytes = Vec::new();
        let mut keys: HashMap<u32, Vec<u8>> = HashMap::new();
        for o in ops {
            if let (BinOp::Packet { pkt, .. }, Some(k)) = (o, o.key()) {
                keys.insert(pkt.opaque, k.to_vec());
            }
            bytes.extend(o.render(&self.cas));
        }
        let noop = Packet::request(op::NOOP, &[], &[], &[])
            .with_opaque(NOOP_OPAQUE)
            .encode();
        let who = self.who();
        let conn = self
            .bin_conn()
            .map_err(|e| format!("{who}: connect: {e}"))?;
        let raw = send_then_read(conn, &bytes, &noop, |buf| {
            let (rs, rest) = split_responses(buf);
            rest == 0
                && rs
                    .last()
                    .is_some_and(|r| r.opcode == op::NOOP && r.opaque == NOOP_OPAQUE)
        })
        .map_err(|e| format!("{who}: {e}"))?;
        if raw.closed {
            self.bin = None;
        }
        let norm = normalize::binary(&raw.bytes, &mut self.cas, &keys);
        Ok(Answer { raw, norm })
    }
}

/// Write `bytes` + `trailer`, then read until `done` says the reply is complete or the server
/// closes. A write that fails because the server already closed is not an error.
fn send_then_read(
    conn: &mut TextClient,
    bytes: &[u8],
    trailer: &[u8],
    done: impl FnMut(&[u8]) -> bool,
) -> io::Result<Reply> {
    let mut msg = Vec::with_capacity(bytes.len() + trailer.len());
    msg.extend_from_slice(bytes);
    msg.extend_from_slice(trailer);
    match conn.send(&msg) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) => {}
        Err(e) => return Err(e),
    }
    conn.read_until(done)
}

/// One op of a stream, for printing.
enum Step<'a> {
    Text(&'a TextOp),
    Bin(&'a [BinOp]),
}

fn show_step(s: &Step<'_>, cas: &CasBook) -> String {
    match s {
        Step::Text(op) => show(&op.render(cas)),
        Step::Bin(ops) => {
            let b: Vec<u8> = ops.iter().flat_map(|o| o.render(cas)).collect();
            format!("[binary] {}", show(&b))
        }
    }
}

/// Run one seed's stream against both sides; `Err` carries the full report.
fn run_stream<'s>(
    seed: u64,
    text_ops: &[TextOp],
    bin_ops: &[Vec<BinOp>],
    a: &mut Side<'s>,
    b: &mut Side<'s>,
) -> Result<(), String> {
    // Start from an empty cache (and no pending delayed flush) on both sides.
    for side in [&mut *a, &mut *b] {
        side.cas = CasBook::default();
        let r = side.exec_text(&TextOp::lit("flush_all\r\n"))?;
        if r.raw.bytes != b"OK\r\nMN\r\n" {
            return Err(format!(
                "{}: flush_all before seed {seed} answered {}",
                side.who(),
                show(&r.raw.bytes)
            ));
        }
        side.cas = CasBook::default();
    }
    // Interleave: text op i, then binary op i (if any), so the two protocols see each other's
    // items.
    let n = text_ops.len().max(bin_ops.len());
    let mut history: Vec<Step<'_>> = Vec::new();
    for i in 0..n {
        let mut steps = Vec::new();
        if let Some(t) = text_ops.get(i) {
            steps.push(Step::Text(t));
        }
        if let Some(bops) = bin_ops.get(i) {
            steps.push(Step::Bin(bops));
        }
        for step in steps {
            let sent_a = show_step(&step, &a.cas);
            let sent_b = show_step(&step, &b.cas);
            let (ra, rb) = match &step {
                Step::Text(op) => (a.exec_text(op), b.exec_text(op)),
                Step::Bin(ops) => (a.exec_bin(ops), b.exec_bin(ops)),
            };
            history.push(step);
            let fail = |why: String, ra: Option<&Answer>, rb: Option<&Answer>| -> String {
                let mut s = format!(
                    "\n==== differential mismatch: seed {seed}, op #{} ({why})\n\
                     rerun with KEEL_DIFF_SEED={seed}\n---- stream so far (as sent to {}):\n",
                    history.len() - 1,
                    a.server.name()
                );
                for (j, st) in history.iter().enumerate() {
                    s += &format!("[{j}] {}\n", show_step(st, &a.cas));
                }
                s += &format!("---- last op as sent to {}:\n{sent_a}\n", a.server.name());
                s += &format!("---- last op as sent to {}:\n{sent_b}\n", b.server.name());
                for (side, r) in [(&*a, ra), (&*b, rb)] {
                    if let Some(r) = r {
                        s += &format!(
                            "---- {} replied{} (raw):\n{}\n---- {} (normalised):\n{}\n",
                            side.who(),
                            if r.raw.closed {
                                " and CLOSED the connection"
                            } else {
                                ""
                            },
                            show(&r.raw.bytes),
                            side.server.name(),
                            show(&r.norm)
                        );
                    }
                }
                s
            };
            match (ra, rb) {
                (Ok(ra), Ok(rb)) => {
                    if ra.norm != rb.norm || ra.raw.closed != rb.raw.closed {
                        return Err(fail("replies differ".into(), Some(&ra), Some(&rb)));
                    }
                }
                (Err(e), Ok(rb)) => {
                    return Err(fail(format!("first side failed: {e}"), None, Some(&rb)))
                }
                (Ok(ra), Err(e)) => {
                    return Err(fail(format!("second side failed: {e}"), Some(&ra), None))
                }
                (Err(e1), Err(e2)) => {
                    return Err(fail(format!("both failed: {e1} / {e2}"), None, None))
                }
            }
        }
    }
    Ok(())
}

/// Which generators a test uses.
#[derive(Clone, Copy)]
enum Mix {
    Text,
    Meta,
    Binary,
    /// Text, meta and binary interleaved.
    All,
}

fn seeds(default_count: u64, base: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("KEEL_DIFF_SEED") {
        return vec![s.parse().expect("KEEL_DIFF_SEED must be a number")];
    }
    let n = std::env::var("KEEL_DIFF_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_count);
    (0..n).map(|i| base + i).collect()
}

fn gen_streams(seed: u64, mix: Mix, len: usize) -> (Vec<TextOp>, Vec<Vec<BinOp>>) {
    let mut rng = Rng::new(seed);
    let mut g = text_gen::Gen::new(seed);
    let mut text = Vec::new();
    let mut bin = Vec::new();
    let mut bg = binary_gen::Gen::new(seed);
    for _ in 0..len {
        match mix {
            Mix::Text => text.push(g.op(&mut rng)),
            Mix::Meta => text.push(meta_gen::op(&mut rng, &g.keys)),
            Mix::Binary => bin.push(bg.ops(&mut rng)),
            Mix::All => {
                match rng.below(3) {
                    0 => text.push(g.op(&mut rng)),
                    1 => text.push(meta_gen::op(&mut rng, &g.keys)),
                    _ => text.push(TextOp::lit("")),
                }
                if rng.chance(1, 2) {
                    bin.push(bg.ops(&mut rng));
                }
            }
        }
    }
    (text, bin)
}

/// Run `seeds` of `mix` against two servers; panic with every report on mismatch.
fn differential(x: &Server, y: &Server, mix: Mix, seeds: &[u64], len: usize) {
    let mut a = Side::new(x);
    let mut b = Side::new(y);
    let mut failures = Vec::new();
    for &seed in seeds {
        let (text, bin) = gen_streams(seed, mix, len);
        if let Err(report) = run_stream(seed, &text, &bin, &mut a, &mut b) {
            failures.push((seed, report));
            // Fresh connections for the next seed: a failing side may be out of sync.
            a.text = None;
            a.bin = None;
            b.text = None;
            b.bin = None;
            if failures.len() >= 3 {
                break;
            }
        }
    }
    if !failures.is_empty() {
        for (_, r) in &failures {
            eprintln!("{r}");
        }
        panic!(
            "{} vs {}: {} seed(s) mismatched (first: {}); reports above",
            x.name(),
            y.name(),
            failures.len(),
            failures[0].0
        );
    }
}

/// The differential needs real ops; make sure a generator change cannot silently produce
/// empty streams (a test that sends nothing cannot fail).
fn assert_streams_nonempty(mix: Mix) {
    let (t, b) = gen_streams(1, mix, 50);
    let bytes: usize = t
        .iter()
        .map(|o| o.render(&CasBook::default()).len())
        .sum::<usize>()
        + b.iter()
            .flatten()
            .map(|o| o.render(&CasBook::default()).len())
            .sum::<usize>();
    assert!(
        bytes > 500,
        "generator for this mix produced only {bytes} bytes"
    );
    // Every text op must end a line, or the `mn` trailer could be swallowed into it.
    for seed in 0..200 {
        let (t, _) = gen_streams(seed, mix, 50);
        for op in &t {
            let r = op.render(&CasBook::default());
            assert!(
                r.is_empty() || r.ends_with(b"\n"),
                "seed {seed}: op does not end a line: {}",
                show(&r)
            );
        }
    }
}

/// The reference memcached runs without its LRU crawler and maintainer threads: with them, an
/// item's in-place update (incr/decr), its "fetched" bit (`h`, `me fetch=`) and stale/win flags
/// depend on whether a background thread held the item at that moment, and two memcacheds fed
/// the same stream disagree. Without them memcached is deterministic.
const REFERENCE_FLAGS: &[&str] = &[
    "-m",
    "64",
    "-t",
    "2",
    "-o",
    "no_lru_crawler,no_lru_maintainer",
];

fn keel_vs_memcached(mix: Mix, base: u64, count: u64, len: usize) {
    assert_streams_nonempty(mix);
    let mc = start_memcached(REFERENCE_FLAGS);
    let keel = start_keel(&["-m", "64", "-t", "2"]);
    differential(&mc, &keel, mix, &seeds(count, base), len);
}

#[test]
fn text_commands_match_memcached() {
    keel_vs_memcached(Mix::Text, 1_000, 60, 120);
}

#[test]
fn meta_commands_match_memcached() {
    keel_vs_memcached(Mix::Meta, 2_000, 60, 120);
}

#[test]
fn binary_protocol_matches_memcached() {
    keel_vs_memcached(Mix::Binary, 3_000, 60, 120);
}

#[test]
fn mixed_protocols_match_memcached() {
    keel_vs_memcached(Mix::All, 4_000, 40, 150);
}

/// Self-check of the generators and the normalisation: two memcacheds must agree.
#[test]
fn memcached_agrees_with_itself() {
    for mix in [Mix::Text, Mix::Meta, Mix::Binary, Mix::All] {
        assert_streams_nonempty(mix);
    }
    let x = start_memcached(REFERENCE_FLAGS);
    let y = start_memcached(REFERENCE_FLAGS);
    for (mix, base) in [
        (Mix::Text, 1_000),
        (Mix::Meta, 2_000),
        (Mix::Binary, 3_000),
        (Mix::All, 4_000),
    ] {
        differential(&x, &y, mix, &seeds(15, base), 120);
    }
}

/// The normaliser must not hide real differences: a different value, flag or status, or a
/// broken CAS equality, must survive normalisation.
#[test]
fn normalisation_keeps_real_differences() {
    let norm = |s: &[u8]| normalize::text(s, &mut CasBook::default(), None);
    assert_eq!(
        norm(b"VALUE k 0 1 5\r\nx\r\nEND\r\n"),
        norm(b"VALUE k 0 1 99\r\nx\r\nEND\r\n")
    );
    assert_ne!(
        norm(b"VALUE k 0 1 5\r\nx\r\nEND\r\n"),
        norm(b"VALUE k 0 1 5\r\ny\r\nEND\r\n")
    );
    assert_ne!(
        norm(b"VALUE k 0 1\r\nx\r\nEND\r\n"),
        norm(b"VALUE k 1 1\r\nx\r\nEND\r\n")
    );
    // Two items with equal CAS vs two with distinct CAS.
    assert_ne!(
        norm(b"VALUE a 0 1 5\r\nx\r\nVALUE b 0 1 5\r\nx\r\nEND\r\n"),
        norm(b"VALUE a 0 1 5\r\nx\r\nVALUE b 0 1 6\r\nx\r\nEND\r\n")
    );
    assert_eq!(norm(b"HD c17 t99 f3\r\n"), norm(b"HD c4 t98 f3\r\n"));
    assert_ne!(norm(b"HD c17 t-1 f3\r\n"), norm(b"HD c4 t98 f3\r\n"));
    assert_ne!(norm(b"HD f3\r\n"), norm(b"HD f4\r\n"));
    assert_eq!(
        norm(b"VERSION 1.6.18\r\n"),
        norm(b"VERSION 1.6.18-keel-0.1.0\r\n")
    );
    assert_eq!(
        norm(b"VALUE n 0 2\r\n9 \r\nEND\r\n"),
        norm(b"VALUE n 0 1\r\n9\r\nEND\r\n")
    );
    assert_ne!(
        norm(b"VALUE n 0 2\r\n9 \r\nEND\r\n"),
        norm(b"VALUE n 0 1\r\n8\r\nEND\r\n")
    );
    assert_ne!(
        norm(b"VALUE n 0 2\r\nx \r\nEND\r\n"),
        norm(b"VALUE n 0 1\r\nx\r\nEND\r\n")
    );
    assert_eq!(
        norm(b"ME k exp=-1 la=3 cas=7 fetch=no cls=1 size=63\r\n"),
        norm(b"ME k exp=-1 la=0 cas=9 fetch=no cls=4 size=70\r\n")
    );
    assert_ne!(
        norm(b"ME k exp=-1 la=3 cas=7 fetch=no cls=1 size=63\r\n"),
        norm(b"ME k exp=-1 la=3 cas=7 fetch=yes cls=1 size=63\r\n")
    );
    let bin = |cas: u64, status: u16| {
        let mut p = Packet::request(op::SET, &[], &[], &[]).with_cas(cas);
        p.magic = test_harness::binary::RES;
        p.vbucket_or_status = status;
        normalize::binary(&p.encode(), &mut CasBook::default(), &HashMap::new())
    };
    assert_eq!(bin(5, 0), bin(77, 0));
    assert_ne!(bin(5, 0), bin(5, 1));
}

/// `stats` after the same commands on both servers: every stat keel reports exists in
/// memcached's `stats`, and the command counters agree.
#[test]
fn stats_match_memcached() {
    let mc = start_memcached(REFERENCE_FLAGS);
    let keel = start_keel(&["-m", "64", "-t", "2"]);
    // (flush_all first: after a flush, curr_items depends on when flushed items are reclaimed.)
    let script: &[u8] = b"flush_all\r\nset a 0 0 1\r\n1\r\nset b 0 0 1\r\nx\r\nget a b c\r\ngets a\r\nadd a 0 0 1\r\nx\r\n\
        incr a 5\r\nincr zz 1\r\ndecr a 1\r\ndecr zz 1\r\ndelete b\r\ndelete b\r\ntouch a 0\r\ntouch zz 0\r\n\
        cas a 0 0 1 1152921504606846976\r\nx\r\ncas zz 0 0 1 1\r\nx\r\ngat 0 a zz\r\nset c 0 0 1\r\nx\r\n";
    let stats = |s: &Server| -> Vec<(String, String)> {
        let mut c = s.connect().expect("connect");
        c.round_trip_mn(script).expect("script");
        let r = c.round_trip_mn(b"stats\r\n").expect("stats");
        String::from_utf8_lossy(&r.bytes)
            .lines()
            .filter_map(|l| l.strip_prefix("STAT "))
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let m: HashMap<String, String> = stats(&mc).into_iter().collect();
    let k = stats(&keel);
    assert!(!k.is_empty(), "keel's `stats` reported nothing");
    let unknown: Vec<&str> = k
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !m.contains_key(*n))
        .collect();
    assert!(
        unknown.is_empty(),
        "keel reports stats memcached does not have: {unknown:?}"
    );
    let counters = [
        "cmd_get",
        "cmd_set",
        "cmd_flush",
        "cmd_touch",
        "get_hits",
        "get_misses",
        "delete_misses",
        "delete_hits",
        "incr_misses",
        "incr_hits",
        "decr_misses",
        "decr_hits",
        "cas_misses",
        "cas_hits",
        "cas_badval",
        "touch_hits",
        "touch_misses",
        "curr_items",
    ];
    let kk: HashMap<&str, &str> = k.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut diffs = Vec::new();
    for name in counters {
        match (m.get(name), kk.get(name)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => diffs.push(format!("{name}: memcached {a:?}, keel {b:?}")),
        }
    }
    assert!(
        diffs.is_empty(),
        "stats differ after the same commands:\n{}",
        diffs.join("\n")
    );
}
