use super::*;
use crate::Settings;
use memcache_proto::binary::{opcode, parse_response, Response, StoreOp};
use memcache_proto::Limits;

/// An owned copy of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    opcode: u8,
    status: u16,
    opaque: u32,
    cas: u64,
    extras: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl From<Response<'_>> for Reply {
    fn from(r: Response<'_>) -> Reply {
        Reply {
            opcode: r.opcode,
            status: r.status,
            opaque: r.opaque,
            cas: r.cas,
            extras: r.extras.to_vec(),
            key: r.key.to_vec(),
            value: r.value.to_vec(),
        }
    }
}

struct T {
    ctx: Ctx,
    session: Session,
}

impl T {
    fn new() -> T {
        T::with(Settings::default())
    }

    fn with(settings: Settings) -> T {
        T {
            ctx: Ctx::new(settings),
            session: Session::default(),
        }
    }

    /// Run every request in `input` (as the connection loop would) and decode all replies.
    fn run(&mut self, input: &[u8]) -> (Vec<Reply>, Flow) {
        let mut out = Vec::new();
        let mut pos = 0;
        let mut last = Flow::default();
        while pos < input.len() {
            match crate::ready(process(
                &input[pos..],
                &self.ctx,
                &mut self.session,
                &mut out,
            )) {
                Step::Incomplete => panic!("incomplete at {pos}"),
                Step::Done { consumed, flow } => {
                    pos += consumed + flow.swallow;
                    last = flow;
                    if flow.close {
                        break;
                    }
                }
            }
        }
        let mut replies = Vec::new();
        let mut at = 0;
        while at < out.len() {
            match parse_response(&out[at..], &Limits::default()) {
                Parse::Request { req, consumed } => {
                    replies.push(Reply::from(req));
                    at += consumed;
                }
                other => panic!("bad reply bytes: {other:?}"),
            }
        }
        (replies, last)
    }

    fn one(&mut self, req: Request<'_>) -> Option<Reply> {
        let (mut r, _) = self.run(&req.to_bytes());
        assert!(r.len() <= 1, "{r:?}");
        r.pop()
    }

    fn set(&mut self, key: &[u8], value: &[u8], flags: u32) -> Reply {
        self.one(Request::new(Command::Store {
            op: StoreOp::Set,
            quiet: false,
            key,
            flags,
            exptime: 0,
            value,
        }))
        .expect("set reply")
    }

    fn get(&mut self, key: &[u8]) -> Reply {
        self.one(Request::new(Command::Get {
            key,
            quiet: false,
            with_key: false,
        }))
        .expect("get reply")
    }
}

fn store<'a>(op: StoreOp, quiet: bool, key: &'a [u8], value: &'a [u8], cas: u64) -> Request<'a> {
    Request {
        opaque: 0,
        cas,
        command: Command::Store {
            op,
            quiet,
            key,
            flags: 0,
            exptime: 0,
            value,
        },
    }
}

fn arith(
    incr: bool,
    quiet: bool,
    key: &[u8],
    delta: u64,
    initial: u64,
    exptime: u32,
) -> Request<'_> {
    Request::new(Command::Arith {
        incr,
        quiet,
        key,
        delta,
        initial,
        exptime,
    })
}

const OK: u16 = 0;
const ENOENT: u16 = 1;
const EEXISTS: u16 = 2;

#[test]
fn set_get_round_trip_with_flags_cas_and_opaque() {
    let mut t = T::new();
    let set = t.set(b"k", b"hello", 0xdead_beef);
    assert_eq!((set.opcode, set.status), (opcode::SET, OK));
    assert!(set.cas != 0);
    assert!(set.value.is_empty() && set.extras.is_empty());
    let mut req = Request::new(Command::Get {
        key: b"k",
        quiet: false,
        with_key: true,
    });
    req.opaque = 0x1234_5678;
    let g = t.one(req).unwrap();
    assert_eq!(g.opcode, opcode::GETK);
    assert_eq!(g.opaque, 0x1234_5678);
    assert_eq!(g.status, OK);
    assert_eq!(g.extras, 0xdead_beefu32.to_be_bytes());
    assert_eq!(g.key, b"k");
    assert_eq!(g.value, b"hello");
    assert_eq!(g.cas, set.cas);
    assert_eq!(t.session.stats.cmd_set, 1);
    assert_eq!((t.session.stats.cmd_get, t.session.stats.get_hits), (1, 1));
}

#[test]
fn misses_plain_keyed_and_quiet() {
    let mut t = T::new();
    let g = t.get(b"nope");
    assert_eq!((g.status, &g.value[..]), (ENOENT, &b"Not found"[..]));
    let gk = t
        .one(Request::new(Command::Get {
            key: b"nope",
            quiet: false,
            with_key: true,
        }))
        .unwrap();
    assert_eq!(
        (gk.status, &gk.key[..], &gk.value[..]),
        (ENOENT, &b"nope"[..], &b""[..])
    );
    assert_eq!(
        t.one(Request::new(Command::Get {
            key: b"nope",
            quiet: true,
            with_key: false
        })),
        None
    );
    assert_eq!(
        t.one(Request::new(Command::Get {
            key: b"nope",
            quiet: true,
            with_key: true
        })),
        None
    );
    assert_eq!(t.session.stats.get_misses, 4);
}

#[test]
fn quiet_get_pipeline_ends_with_noop() {
    let mut t = T::new();
    t.set(b"a", b"1", 0);
    let mut b = Vec::new();
    Request::new(Command::Get {
        key: b"a",
        quiet: true,
        with_key: true,
    })
    .encode(&mut b);
    Request::new(Command::Get {
        key: b"b",
        quiet: true,
        with_key: true,
    })
    .encode(&mut b);
    Request::new(Command::Noop).encode(&mut b);
    let (r, _) = t.run(&b);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].opcode, &r[0].key[..], &r[0].value[..]),
        (opcode::GETKQ, &b"a"[..], &b"1"[..])
    );
    assert_eq!((r[1].opcode, r[1].status), (opcode::NOOP, OK));
}

#[test]
fn add_replace_and_quiet_success_suppression() {
    let mut t = T::new();
    assert_eq!(
        t.one(store(StoreOp::Replace, false, b"k", b"v", 0))
            .unwrap()
            .status,
        ENOENT
    );
    assert_eq!(t.one(store(StoreOp::Add, true, b"k", b"v", 0)), None);
    let a = t.one(store(StoreOp::Add, true, b"k", b"v", 0)).unwrap();
    assert_eq!(
        (a.opcode, a.status, &a.value[..]),
        (opcode::ADDQ, EEXISTS, &b"Data exists for key."[..])
    );
    assert_eq!(t.one(store(StoreOp::Replace, true, b"k", b"w", 0)), None);
    assert_eq!(t.get(b"k").value, b"w");
    assert_eq!(t.one(store(StoreOp::Set, true, b"k", b"x", 0)), None);
    assert_eq!(t.get(b"k").value, b"x");
}

#[test]
fn cas_on_set_add_replace_delete() {
    let mut t = T::new();
    let cas = t.set(b"k", b"1", 0).cas;
    let bad = t
        .one(store(StoreOp::Set, false, b"k", b"2", cas + 1))
        .unwrap();
    assert_eq!(
        (bad.status, &bad.value[..]),
        (EEXISTS, &b"Data exists for key."[..])
    );
    assert_eq!(t.session.stats.cas_badval, 1);
    // Add with a matching CAS behaves as cas (memcached's NREAD_CAS), and stores.
    let good = t.one(store(StoreOp::Add, false, b"k", b"3", cas)).unwrap();
    assert_eq!(good.status, OK);
    assert!(good.cas != cas);
    assert_eq!(t.session.stats.cas_hits, 1);
    assert_eq!(
        t.one(store(StoreOp::Replace, false, b"missing", b"3", 5))
            .unwrap()
            .status,
        ENOENT
    );
    assert_eq!(t.session.stats.cas_misses, 1);
    // Delete with a wrong CAS, then the right one.
    let mut d = Request::new(Command::Delete {
        key: b"k",
        quiet: false,
    });
    d.cas = good.cas + 7;
    assert_eq!(t.one(d.clone()).unwrap().status, EEXISTS);
    d.cas = good.cas;
    let ok = t.one(d).unwrap();
    assert_eq!((ok.status, ok.cas), (OK, 0));
    assert_eq!(t.get(b"k").status, ENOENT);
}

#[test]
fn delete_and_deleteq() {
    let mut t = T::new();
    t.set(b"k", b"v", 0);
    assert_eq!(
        t.one(Request::new(Command::Delete {
            key: b"k",
            quiet: true
        })),
        None
    );
    let r = t
        .one(Request::new(Command::Delete {
            key: b"k",
            quiet: true,
        }))
        .unwrap();
    assert_eq!(
        (r.opcode, r.status, &r.value[..]),
        (opcode::DELETEQ, ENOENT, &b"Not found"[..])
    );
    assert_eq!(
        (t.session.stats.delete_hits, t.session.stats.delete_misses),
        (1, 1)
    );
}

#[test]
fn incr_decr_create_wrap_floor_and_errors() {
    let mut t = T::new();
    // Missing with NO_CREATE: Not found.
    let r = t.one(arith(true, false, b"n", 1, 0, NO_CREATE)).unwrap();
    assert_eq!((r.status, &r.value[..]), (ENOENT, &b"Not found"[..]));
    assert_eq!(t.session.stats.incr_misses, 1);
    // Missing: created with the initial value, reply carries it and the new CAS.
    let r = t.one(arith(true, false, b"n", 5, 10, 0)).unwrap();
    assert_eq!((r.status, &r.value[..]), (OK, &10u64.to_be_bytes()[..]));
    assert!(r.cas != 0);
    assert_eq!(t.get(b"n").value, b"10");
    let r = t.one(arith(true, false, b"n", 5, 0, 0)).unwrap();
    assert_eq!(r.value, 15u64.to_be_bytes());
    let r = t.one(arith(false, false, b"n", 100, 0, 0)).unwrap();
    assert_eq!(r.value, 0u64.to_be_bytes());
    t.set(b"big", u64::MAX.to_string().as_bytes(), 0);
    let r = t.one(arith(true, false, b"big", 2, 0, 0)).unwrap();
    assert_eq!(r.value, 1u64.to_be_bytes());
    // Quiet success is silent.
    assert_eq!(t.one(arith(true, true, b"n", 1, 0, 0)), None);
    // Non-numeric.
    t.set(b"s", b"abc", 0);
    let r = t.one(arith(false, false, b"s", 1, 0, 0)).unwrap();
    assert_eq!(
        (r.status, &r.value[..]),
        (6, &b"Non-numeric server-side value for incr or decr"[..])
    );
    // CAS mismatch.
    let mut req = arith(true, false, b"n", 1, 0, 0);
    req.cas = 1;
    assert_eq!(t.one(req).unwrap().status, EEXISTS);
    assert_eq!(t.session.stats.incr_hits, 3);
    assert_eq!(t.session.stats.decr_hits, 1);
}

#[test]
fn append_prepend() {
    let mut t = T::new();
    let r = t.one(store(StoreOp::Append, false, b"k", b"x", 0)).unwrap();
    assert_eq!((r.status, &r.value[..]), (5, &b"Not stored."[..]));
    t.set(b"k", b"mid", 42);
    assert_eq!(t.one(store(StoreOp::Append, true, b"k", b"-end", 0)), None);
    let r = t
        .one(store(StoreOp::Prepend, false, b"k", b"start-", 0))
        .unwrap();
    assert_eq!(r.status, OK);
    let g = t.get(b"k");
    assert_eq!(g.value, b"start-mid-end");
    assert_eq!(g.extras, 42u32.to_be_bytes());
    // Append with a stale CAS.
    assert_eq!(
        t.one(store(StoreOp::Append, false, b"k", b"!", g.cas + 1))
            .unwrap()
            .status,
        EEXISTS
    );
}

#[test]
fn oversized_set_is_too_large_removes_old_and_swallows() {
    let mut t = T::with(Settings {
        item_size_max: 1024,
        ..Settings::default()
    });
    t.set(b"k", b"old", 0);
    let big = vec![b'x'; 4000];
    let mut b = store(StoreOp::Set, true, b"k", &big, 0).to_bytes();
    Request::new(Command::Noop).encode(&mut b);
    let (r, _) = t.run(&b);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(
        (r[0].opcode, r[0].status, &r[0].value[..]),
        (opcode::SETQ, 3, &b"Too large."[..])
    );
    assert_eq!(r[1].opcode, opcode::NOOP);
    assert_eq!(t.get(b"k").status, ENOENT);
    // Slightly too large for the item (header overhead): still refused, value already read.
    t.set(b"k", b"old", 0);
    let r = t
        .one(store(StoreOp::Add, false, b"k", &vec![b'y'; 1024], 0))
        .unwrap();
    assert_eq!(r.status, 3);
    // Add does not remove the old value.
    assert_eq!(t.get(b"k").value, b"old");
}

#[test]
fn touch_and_gat() {
    let mut t = T::new();
    t.set(b"k", b"v", 3);
    let r = t
        .one(Request::new(Command::Touch {
            key: b"k",
            exptime: 100,
        }))
        .unwrap();
    assert_eq!(
        (r.status, &r.extras[..], &r.value[..]),
        (OK, &3u32.to_be_bytes()[..], &b""[..])
    );
    let r = t
        .one(Request::new(Command::Gat {
            key: b"k",
            exptime: 100,
            quiet: false,
            with_key: true,
        }))
        .unwrap();
    assert_eq!(
        (r.opcode, &r.key[..], &r.value[..]),
        (opcode::GATK, &b"k"[..], &b"v"[..])
    );
    assert_eq!(
        t.one(Request::new(Command::Gat {
            key: b"x",
            exptime: 1,
            quiet: true,
            with_key: false
        })),
        None
    );
    let r = t
        .one(Request::new(Command::Touch {
            key: b"x",
            exptime: 1,
        }))
        .unwrap();
    assert_eq!(r.status, ENOENT);
    // Expire it: an absolute time in the past.
    t.one(Request::new(Command::Touch {
        key: b"k",
        exptime: 2_678_400,
    }))
    .unwrap();
    assert_eq!(t.get(b"k").status, ENOENT);
    assert_eq!(
        (
            t.session.stats.cmd_touch,
            t.session.stats.touch_hits,
            t.session.stats.touch_misses
        ),
        (5, 3, 2)
    );
}

#[test]
fn flush_noop_version_quit() {
    let mut t = T::new();
    t.set(b"k", b"v", 0);
    assert_eq!(
        t.one(Request::new(Command::Flush {
            quiet: true,
            exptime: None
        })),
        None
    );
    assert_eq!(t.get(b"k").status, ENOENT);
    t.set(b"k", b"v", 0);
    let r = t
        .one(Request::new(Command::Flush {
            quiet: false,
            exptime: Some(0),
        }))
        .unwrap();
    assert_eq!((r.opcode, r.status), (opcode::FLUSH, OK));
    assert_eq!(t.get(b"k").status, ENOENT);
    let v = t.one(Request::new(Command::Version)).unwrap();
    assert_eq!(v.value, t.ctx.settings.version.as_bytes());
    let (r, flow) = t.run(&Request::new(Command::Quit { quiet: true }).to_bytes());
    assert!(r.is_empty());
    assert!(flow.close);
    let (r, flow) = t.run(&Request::new(Command::Quit { quiet: false }).to_bytes());
    assert_eq!((r.len(), flow.close), (1, true));
}

#[test]
fn protocol_errors_and_unknown_commands() {
    let mut t = T::new();
    // Bad magic: close, no reply.
    let (r, flow) = t.run(b"get foo\r\n");
    assert!(r.is_empty());
    assert!(flow.close);
    // Verbosity and SASL: unknown command, connection kept.
    let mut b = Request::new(Command::Verbosity { level: 1 }).to_bytes();
    Request::new(Command::Noop).encode(&mut b);
    let (r, flow) = t.run(&b);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].status, &r[0].value[..]),
        (0x81, &b"Unknown command"[..])
    );
    assert!(!flow.close);
    // Get without a key: invalid arguments, close.
    let mut b = Request::new(Command::Noop).to_bytes();
    b[1] = opcode::GET;
    let (r, flow) = t.run(&b);
    assert_eq!(
        (r[0].status, &r[0].value[..]),
        (4, &b"Invalid arguments"[..])
    );
    assert!(flow.close);
}

#[test]
fn stat_packets_terminator_and_groups() {
    let mut t = T::new();
    t.set(b"k", b"v", 0);
    let mut req = Request::new(Command::Stat { group: b"" });
    req.opaque = 99;
    let (r, flow) = t.run(&req.to_bytes());
    assert!(!flow.close);
    assert!(r.len() >= 2, "{r:?}");
    assert!(r
        .iter()
        .all(|p| p.opcode == opcode::STAT && p.status == OK && p.opaque == 99 && p.cas == 0));
    let last = r.last().unwrap();
    assert!(last.key.is_empty() && last.value.is_empty());
    assert!(r[..r.len() - 1].iter().all(|p| !p.key.is_empty()));
    // This connection's set is visible (its counters were folded in first).
    let cmd_set = r
        .iter()
        .find(|p| p.key == b"cmd_set")
        .map(|p| p.value.clone());
    assert_eq!(cmd_set.as_deref(), Some(&b"1"[..]));
    // Unknown group: Not found.
    let (r, _) = t.run(&Request::new(Command::Stat { group: b"bogus" }).to_bytes());
    assert_eq!(
        (r.len(), r[0].status, &r[0].value[..]),
        (1, ENOENT, &b"Not found"[..])
    );
    // reset: just the terminator, and counters are zeroed.
    let (r, _) = t.run(&Request::new(Command::Stat { group: b"reset" }).to_bytes());
    assert_eq!(r.len(), 1);
    assert!(r[0].key.is_empty() && r[0].status == OK);
    assert_eq!(t.ctx.stats.counters.snapshot().cmd_set, 0);
    let (r, _) = t.run(&Request::new(Command::Stat { group: b"settings" }).to_bytes());
    assert!(r.len() >= 2 && r.last().unwrap().key.is_empty());
}

/// Random packets (valid opcodes, random lengths, extras and bodies) never panic the
/// executor, never consume more than the input, and every reply is a well-formed packet.
#[test]
fn random_packets_never_panic() {
    let mut t = T::with(Settings {
        item_size_max: 2048,
        ..Settings::default()
    });
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n.max(1)
    };
    for _ in 0..20_000 {
        let opcode = rnd(0x30) as u8;
        let ext = [0u64, 4, 8, 20, rnd(30)][rnd(5) as usize] as usize;
        let klen = [0u64, 1, 3, 250, 251, rnd(300)][rnd(6) as usize] as usize;
        let vlen = [0u64, 1, 8, 20, rnd(3000)][rnd(5) as usize] as usize;
        let mut b = vec![0x80, opcode];
        b.extend_from_slice(&(klen as u16).to_be_bytes());
        b.push(ext as u8);
        b.extend_from_slice(&[0, 0, 0]);
        let body = if rnd(10) == 0 {
            rnd(5000) as usize
        } else {
            ext + klen + vlen
        };
        b.extend_from_slice(&(body as u32).to_be_bytes());
        b.extend_from_slice(&(rnd(u64::MAX) as u32).to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, rnd(3) as u8]);
        let keys: [&[u8]; 3] = [b"a", b"num", b"k"];
        let key = keys[rnd(3) as usize];
        for i in 0..ext + klen + vlen {
            b.push(if i >= ext && i < ext + klen {
                key[i % key.len()]
            } else {
                rnd(256) as u8
            });
        }
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < b.len() {
            match crate::ready(process(&b[pos..], &t.ctx, &mut t.session, &mut out)) {
                Step::Incomplete => break,
                Step::Done { consumed, flow } => {
                    assert!(consumed <= b.len() - pos);
                    pos += consumed + flow.swallow;
                    if flow.close {
                        break;
                    }
                }
            }
        }
        let mut at = 0;
        while at < out.len() {
            match parse_response(&out[at..], &Limits::default()) {
                Parse::Request { consumed, .. } => at += consumed,
                other => panic!("bad reply for {b:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn incomplete_until_whole_request() {
    let t = T::new();
    let mut s = Session::default();
    let b = store(StoreOp::Set, false, b"key", b"value", 0).to_bytes();
    let mut out = Vec::new();
    for cut in 0..b.len() {
        assert_eq!(
            crate::ready(process(&b[..cut], &t.ctx, &mut s, &mut out)),
            Step::Incomplete
        );
    }
    assert!(out.is_empty());
}
