use super::*;
use crate::Settings;

/// Feed `input` through `process` the way the connection loop does (every split point is
/// exercised by `run_split`). Returns the replies and whether the connection was closed.
fn run(ctx: &Ctx, input: &[u8]) -> (Vec<u8>, bool) {
    let mut session = Session::default();
    let mut unsent = Unsent::default();
    let mut out = Vec::new();
    let mut sent = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        match crate::ready(process(
            &input[pos..],
            ctx,
            &mut session,
            &mut unsent,
            &mut out,
        )) {
            Step::Incomplete => break,
            Step::Done { consumed, flow } => {
                assert!(consumed <= input.len() - pos);
                pos += consumed + flow.swallow;
                if flow.close {
                    sent.append(&mut out);
                    return (sent, true);
                }
                if replies_flushed_after(consumed, flow.swallow) {
                    sent.append(&mut out);
                    unsent.written();
                }
            }
        }
    }
    sent.append(&mut out);
    (sent, false)
}

/// Like `run`, but the input arrives in two pieces split at `cut`.
fn run_split(ctx: &Ctx, input: &[u8], cut: usize) -> (Vec<u8>, bool) {
    let mut session = Session::default();
    let mut unsent = Unsent::default();
    let mut out = Vec::new();
    let mut sent = Vec::new();
    let mut buf: Vec<u8> = input[..cut].to_vec();
    let mut fed = cut;
    let mut swallow = 0usize;
    loop {
        let n = swallow.min(buf.len());
        buf.drain(..n);
        swallow -= n;
        let step = if buf.is_empty() || swallow > 0 {
            Step::Incomplete
        } else {
            crate::ready(process(&buf, ctx, &mut session, &mut unsent, &mut out))
        };
        match step {
            Step::Done { consumed, flow } => {
                buf.drain(..consumed);
                swallow = flow.swallow;
                if flow.close {
                    sent.append(&mut out);
                    return (sent, true);
                }
                if replies_flushed_after(consumed, flow.swallow) {
                    sent.append(&mut out);
                    unsent.written();
                }
            }
            Step::Incomplete => {
                // The connection writes its replies whenever it runs out of input.
                sent.append(&mut out);
                unsent.written();
                if fed == input.len() {
                    return (sent, false);
                }
                buf.extend_from_slice(&input[fed..]);
                fed = input.len();
            }
        }
    }
}

fn ctx() -> Ctx {
    Ctx::new(Settings::default())
}

/// Replace the numbers after ` c`, and the 5th field of VALUE lines, with `#` (CAS values
/// differ from memcached's by design).
fn mask_cas(s: &str) -> String {
    s.split("\r\n")
        .map(|line| {
            let mut parts: Vec<String> = line.split(' ').map(str::to_string).collect();
            if parts[0] == "VALUE" && parts.len() == 5 {
                parts[4] = "#".into();
            }
            for p in parts.iter_mut().skip(1) {
                if p.len() > 1
                    && p != "c0"
                    && p.starts_with('c')
                    && p[1..].bytes().all(|b| b.is_ascii_digit())
                {
                    *p = "c#".into();
                }
                if p.starts_with("cas=") {
                    *p = "cas=#".into();
                }
            }
            parts.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// (request bytes, memcached 1.6.18's reply, recorded from the real server; CAS masked).
const CASES: &[(&[u8], &str)] = &[
    (b"get a b\r\n", "END\r\n"),
    (b"set a 0 0 1\r\nx\r\nget a\r\n", "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"),
    (b"set a 0 0 3\r\nabcde\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
    (b"set a 0 0 3 noreply\r\nabcde\r\n", "ERROR\r\n"),
    (b"set a 4294967297 0 1\r\nx\r\nget a\r\n", "STORED\r\nVALUE a 1 1\r\nx\r\nEND\r\n"),
    (b"set a -1 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    (b"set a 1 0 4294967297\r\nx\r\nget a\r\n", "STORED\r\nVALUE a 1 1\r\nx\r\nEND\r\n"),
    (b"set a 18446744073709551615 0 1\r\nx\r\nget a\r\n", "STORED\r\nVALUE a 4294967295 1\r\nx\r\nEND\r\n"),
    (b"set a 1\t2 0 1\r\nx\r\ngets a\r\n", "STORED\r\nVALUE a 1 1 #\r\nx\r\nEND\r\n"),
    (b"\r\n", "ERROR\r\n"),
    (b"delete a 0\r\n", "NOT_FOUND\r\n"),
    (b"delete a 1\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
    (b"delete a 1 noreply\r\ndelete a b c d\r\n", "ERROR\r\n"),
    (b"shutdown\r\n", "ERROR: shutdown not enabled\r\n"),
    (b"verbosity\r\nverbosity 5\r\nverbosity x\r\nverbosity noreply\r\n", "ERROR\r\nOK\r\nCLIENT_ERROR bad command line format\r\n"),
    (b"flush_all 1 2 3\r\nflush_all x\r\nflush_all noreply\r\nflush_all 0\r\n", "ERROR\r\nCLIENT_ERROR invalid exptime argument\r\nOK\r\n"),
    (b"stats foo\r\nstats reset\r\nstats detail\r\n", "ERROR\r\nRESET\r\nCLIENT_ERROR usage: stats detail on|off|dump\r\n"),
    (b"incr\r\nincr a x\r\nincr a -1\r\nincr a 1\r\n", "ERROR\r\nCLIENT_ERROR invalid numeric delta argument\r\nCLIENT_ERROR invalid numeric delta argument\r\nNOT_FOUND\r\n"),
    (
        b"set n 0 0 2\r\n10\r\ndecr n 11\r\nget n\r\nincr n 18446744073709551615\r\nincr n 2\r\nget n\r\n",
        "STORED\r\n0\r\nVALUE n 0 2\r\n0 \r\nEND\r\n18446744073709551615\r\n1\r\nVALUE n 0 20\r\n1                   \r\nEND\r\n",
    ),
    (b"set n 0 0 2\r\nab\r\nincr n 1\r\n", "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
    (b"touch a\r\ntouch a x\r\ntouch a 10\r\ntouch a 10 noreply\r\n", "ERROR\r\nCLIENT_ERROR invalid exptime argument\r\nNOT_FOUND\r\n"),
    (b"gat\r\ngat 10\r\ngat x a\r\n", "ERROR\r\nEND\r\nCLIENT_ERROR invalid exptime argument\r\n"),
    (b"cas a 0 0 1\r\nx\r\n", "ERROR\r\nERROR\r\n"),
    (b"cas a 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n"),
    (b"set a 0 0 1\r\nx\r\ncas a 0 0 1 1 noreply\r\nx\r\ncas a 0 0 1 0 y\r\nx\r\n", "STORED\r\nEXISTS\r\n"),
    (b"set a 0 0 1\r\nx\r\nbget a\r\n", "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"),
    (b"set a 0 0 1 2 3\r\nx\r\n", "ERROR\r\nERROR\r\n"),
    (b"mg\r\nmg a\r\nmg a q\r\nmn\r\n", "ERROR\r\nEN\r\nMN\r\n"),
    (
        b"ms a 2 T0 F5 c k O9\r\nhi\r\nmg a v f s t k c O1 h l\r\n",
        "HD c# ka O9\r\nVA 2 f5 s2 t-1 ka c# O1 h0 l0\r\nhi\r\n",
    ),
    (b"ms a 1\r\nx\r\nmg a q v\r\nmg a q\r\nmn\r\n", "HD\r\nVA 1\r\nx\r\nHD\r\nMN\r\n"),
    (b"mg a x\r\nmg a v v\r\nmg a E5\r\nmd a x\r\n", "CLIENT_ERROR invalid flag\r\nCLIENT_ERROR duplicate flag\r\nCLIENT_ERROR invalid flag\r\nCLIENT_ERROR invalid or duplicate flag\r\n"),
    (b"md a q\r\nmn\r\n", "NF\r\nMN\r\n"),
    (b"ms a\r\nms a x\r\nxx\r\nms a -1\r\n", "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\nERROR\r\nCLIENT_ERROR bad command line format\r\n"),
    (b"ms a 2 Z\r\nhi\r\nms a 2 MZ\r\nhi\r\nms a 2 MEE\r\nhi\r\n", "CLIENT_ERROR invalid flag\r\nCLIENT_ERROR invalid mode for ms M token\r\nCLIENT_ERROR incorrect length for M token\r\n"),
    (b"ms a 2 q\r\nhi\r\nms a 2 q ME\r\nhi\r\nmn\r\n", "NS\r\nMN\r\n"),
    (b"ms a 2 F-1\r\nhi\r\nms a 2\r\nhiX\r\nms a 2 q\r\nhiX\r\n", "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\n"),
    (b"ms a 2\r\nhi\r\nma a\r\nma a Mx\r\nma a Dx\r\n", "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nCLIENT_ERROR invalid mode for ma M token\r\nCLIENT_ERROR invalid or duplicate flag\r\n"),
    (b"ma n q\r\nma n N0 J5\r\nma n v\r\nma n v q\r\nmn\r\n", "NF\r\nHD\r\nVA 1\r\n6\r\nMN\r\n"),
    (b"ms e 1 c k O5 ME\r\nx\r\nms e 1 c k O5 ME\r\nx\r\n", "HD c# ke O5\r\nNS c0 ke O5\r\n"),
    (b"ms t 1 T30\r\nx\r\nme t\r\nmg t t v\r\n", "HD\r\nME t exp=-30 la=0 cas=# fetch=no cls=1 size=61\r\nVA 1 t30\r\nx\r\n"),
    (b"mg Zm9v b k O1\r\nmg Zm9v k b\r\n", "EN kZm9v b O1\r\nEN kZm9v b\r\n"),
    (b"ms f 1 F4294967297\r\nx\r\nmg f f\r\nme f\r\n", "HD\r\nHD f1\r\nME f exp=-1 la=0 cas=# fetch=yes cls=1 size=65\r\n"),
    (b"mg mis O123456789012345678901234567890123\r\n", "CLIENT_ERROR opaque token too long\r\n"),
    (b"md x q k Oab\r\nmd x Oab k\r\n", "NF kx Oab\r\nNF Oab kx\r\n"),
    (
        b"ms c 1\r\nx\r\nms c 1\r\nx\r\nmg c\r\nms c 1 C999999 q\r\ny\r\nms c 1 C0\r\ny\r\nms c 1 I C0 c\r\nz\r\nms c 1 I C1 c\r\nz\r\nmg c v\r\n",
        "HD\r\nHD\r\nHD\r\nEX\r\nEX\r\nEX c0\r\nHD c#\r\nVA 1 X W\r\nz\r\n",
    ),
    (b"set a\x01b 0 0 1\r\nx\r\nget a\x01b\r\n", "STORED\r\nVALUE a\x01b 0 1\r\nx\r\nEND\r\n"),
    (b"mz\r\nmgg a\r\nmn x y\r\nme\r\nme a\r\n", "ERROR\r\nERROR\r\nMN\r\nCLIENT_ERROR bad command line format\r\nEN\r\n"),
    // mg/ma apply T, N and R in request order; `t` shows the expiry as of its position.
    (b"ms k 1\r\nx\r\nmg k t T30 v\r\nmg k t\r\n", "HD\r\nVA 1 t-1\r\nx\r\nHD t30\r\n"),
    (b"ms r 1 T0\r\nx\r\nmg r R30 T10\r\nmg r T10 R30\r\nmg r T10 R30\r\n", "HD\r\nHD\r\nHD W\r\nHD Z\r\n"),
    (
        b"mg n t N30 T0 c\r\nmg n t\r\nmg n2 T0 t N30 v\r\nmg n2 t\r\n",
        "HD t-1 c# W\r\nHD t-1 Z\r\nVA 0 t-1 W\r\n\r\nHD t30 Z\r\n",
    ),
    // ma: `q` does not silence the reply for an item it created.
    (b"ma m N0 J5 q\r\nma m q\r\nma m t T30 v\r\nma m2 t N30 T0 c\r\nmn\r\n", "HD\r\nVA 1 t-1\r\n7\r\nHD t-1 c#\r\nMN\r\n"),
    // A printable key stored plain is shown raw even to a base64 request.
    (
        b"set foo 0 0 1\r\nx\r\nmg Zm9v b k v\r\nme Zm9v b\r\nmg Zm9v k b\r\n",
        "STORED\r\nVA 1 kfoo\r\nx\r\nME foo exp=-1 la=0 cas=# fetch=yes cls=1 size=63\r\nHD kfoo\r\n",
    ),
    // Only mg hands out a stale item's win token.
    (
        b"ms s 1 T0\r\nx\r\nmd s I\r\nget s\r\ngat 0 s\r\nmg s\r\nmg s\r\n",
        "HD\r\nHD\r\nVALUE s 0 1\r\nx\r\nEND\r\nVALUE s 0 1\r\nx\r\nEND\r\nHD X W\r\nHD Z X\r\n",
    ),
];

/// Like [`CASES`], but the replies depend on what memcached has written when it reads each
/// request (an `mg` reply not yet written keeps its item from being rewritten in place), so
/// they hold for the input arriving in one piece only.
const PIPELINED_CASES: &[(&[u8], &str)] = &[
    // ma into a new item (the number grows, or a pending mg reply holds the item) keeps the
    // old expiry; after `mn` wrote the replies, the item is rewritten in place.
    (
        b"set n 0 0 1\r\n9\r\nma n T30 t\r\nmg n t\r\nma n T40 t\r\nmg n t\r\nmn\r\nma n T50\r\nmg n t\r\n",
        "STORED\r\nHD t30\r\nHD t-1\r\nHD t40\r\nHD t-1\r\nMN\r\nHD\r\nHD t50\r\n",
    ),
    (
        b"set n 0 0 2\r\n10\r\nmg n\r\ndecr n 5\r\nget n\r\nset n 0 0 2\r\n10\r\ndecr n 5\r\nget n\r\n",
        "STORED\r\nHD\r\n5\r\nVALUE n 0 1\r\n5\r\nEND\r\nSTORED\r\n5\r\nVALUE n 0 2\r\n5 \r\nEND\r\n",
    ),
    (b"set n 0 0 2\r\n10\r\nmg n\r\nset n 0 0 2\r\n10\r\ndecr n 5\r\nget n\r\n", "STORED\r\nHD\r\nSTORED\r\n5\r\nVALUE n 0 2\r\n5 \r\nEND\r\n"),
];

#[test]
fn pipelined_replies_match_memcached() {
    for (input, want) in PIPELINED_CASES {
        let (out, closed) = run(&ctx(), input);
        assert!(!closed);
        assert_eq!(
            mask_cas(&String::from_utf8_lossy(&out)),
            *want,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn replies_match_memcached() {
    for (input, want) in CASES {
        let c = ctx();
        let (out, closed) = run(&c, input);
        assert!(!closed);
        let got = mask_cas(&String::from_utf8_lossy(&out));
        assert_eq!(got, *want, "input {:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn replies_do_not_depend_on_packet_boundaries() {
    for (input, want) in CASES {
        for cut in 0..=input.len() {
            let c = ctx();
            let (out, _) = run_split(&c, input, cut);
            let got = mask_cas(&String::from_utf8_lossy(&out));
            assert_eq!(
                got,
                *want,
                "input {:?} cut {cut}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn closing_and_culling() {
    let c = ctx();
    assert_eq!(run(&c, b"quit\r\nversion\r\n"), (vec![], true));
    assert_eq!(run(&c, b"GET / HTTP/1.1\r\n"), (vec![], true));
    assert_eq!(run(&c, b"get / HTTP/1.1\r\n"), (b"END\r\n".to_vec(), false));
    let k = "k".repeat(251);
    let long = format!("set a 0 0 1\r\nx\r\nget a {k}\r\n");
    assert_eq!(
        run(&c, long.as_bytes()).0,
        b"CLIENT_ERROR bad command line format\r\n"
    );
    // Replies up to the last retrieval or mn were already written by memcached.
    let long = format!("get a\r\ntouch a 10\r\nget a {k}\r\n");
    assert_eq!(
        run(&c, long.as_bytes()).0,
        b"VALUE a 0 1\r\nx\r\nEND\r\nCLIENT_ERROR bad command line format\r\n"
    );
    let long = format!("stats detail on\r\nmn\r\nms b 1\r\nx\r\nmg b v\r\nget {k}\r\n");
    assert_eq!(
        run(&c, long.as_bytes()).0,
        b"OK\r\nMN\r\nCLIENT_ERROR bad command line format\r\n"
    );
    // A data block past memcached's 16 KiB read buffer is read straight from the socket,
    // after which memcached writes its replies: a later error cannot take them back.
    for (n, flushed) in [(100, false), (20_000, true)] {
        let mut long = format!("touch zz 0\r\nset b 0 0 {n}\r\n").into_bytes();
        long.extend_from_slice(&vec![b'v'; n]);
        long.extend_from_slice(format!("\r\nget b {k}\r\n").as_bytes());
        let mut expect = if flushed {
            b"NOT_FOUND\r\nSTORED\r\n".to_vec()
        } else {
            Vec::new()
        };
        expect.extend_from_slice(b"CLIENT_ERROR bad command line format\r\n");
        assert_eq!(
            String::from_utf8_lossy(&run(&c, &long).0),
            String::from_utf8_lossy(&expect),
            "{n}"
        );
    }
    let mut long = b"set b 0 0 2000000\r\n".to_vec();
    long.extend_from_slice(&vec![b'v'; 2_000_002]);
    long.extend_from_slice(format!("get {k}\r\n").as_bytes());
    assert_eq!(
        run(&c, &long).0,
        b"SERVER_ERROR object too large for cache\r\nCLIENT_ERROR bad command line format\r\n"
    );
    let big = vec![b'x'; 20000];
    assert!(run(&c, &big).1);
    let v = c.settings.version.clone();
    assert_eq!(
        run(&c, b"version\r\n").0,
        format!("VERSION {v}\r\n").into_bytes()
    );
}

#[test]
fn oversized_values_are_swallowed_and_old_value_removed() {
    let c = ctx();
    let mut input = b"set big 0 0 1\r\nx\r\nset big 0 0 2000000\r\n".to_vec();
    input.extend_from_slice(&vec![b'x'; 2_000_002]);
    input.extend_from_slice(b"get big\r\n");
    let (out, _) = run(&c, &input);
    assert_eq!(
        out,
        b"STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n"
    );
    let mut input = b"ms big 2000000 q\r\n".to_vec();
    input.extend_from_slice(&vec![b'x'; 2_000_002]);
    input.extend_from_slice(b"mn\r\n");
    assert_eq!(
        run(&c, &input).0,
        b"SERVER_ERROR object too large for cache\r\nMN\r\n"
    );
    // Just over the store's own limit: buffered, then refused.
    let n = c.settings.item_size_max - 10;
    let mut input = format!("set b2 0 0 {n}\r\n").into_bytes();
    input.extend_from_slice(&vec![b'y'; n]);
    input.extend_from_slice(b"\r\nget b2\r\n");
    assert_eq!(
        run(&c, &input).0,
        b"SERVER_ERROR object too large for cache\r\nEND\r\n"
    );
}

#[test]
fn counters() {
    let c = ctx();
    let mut s = Session::default();
    let mut out = Vec::new();
    let input: &[u8] = b"set a 0 0 1\r\nx\r\nget a b c\r\ngat 10 a z\r\ndelete a\r\ndelete a\r\nincr q 1\r\ntouch q 1\r\nflush_all\r\ncas q 0 0 1 5\r\nx\r\n";
    let mut pos = 0;
    while pos < input.len() {
        match crate::ready(process(
            &input[pos..],
            &c,
            &mut s,
            &mut Unsent::default(),
            &mut out,
        )) {
            Step::Done { consumed, .. } => pos += consumed,
            Step::Incomplete => panic!("incomplete"),
        }
    }
    let st = &s.stats;
    assert_eq!((st.cmd_get, st.get_hits, st.get_misses), (3, 1, 2));
    assert_eq!((st.cmd_touch, st.touch_hits, st.touch_misses), (3, 1, 2));
    assert_eq!((st.delete_hits, st.delete_misses), (1, 1));
    assert_eq!(
        (st.incr_misses, st.cmd_flush, st.cmd_set, st.cas_misses),
        (1, 1, 2, 1)
    );
}
