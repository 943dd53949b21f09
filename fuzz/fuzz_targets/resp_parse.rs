//! Fuzz `redis_proto::parse_request` and `RequestParser`, and the reply encoder.
//!
//! The first input byte picks the limits (Redis's defaults, tiny ones so the limit paths are
//! reached, each authenticated or not), the second the point where the input is split into two
//! reads; the rest is what a client sent. Besides "never panics, never hangs":
//! * the input is parsed repeatedly until `Ok(None)` or an error, with the default and the
//!   unauthenticated limits and the chosen ones: every command consumes bytes, a skipped request
//!   or a wait never returns a command;
//! * streaming: the input in two reads yields the same commands and the same end (with the
//!   stateless parser and with one `RequestParser`), except that a partial read may meet a
//!   "too big" error first (Redis decides those on what it has buffered, as keel does);
//! * each command's arguments as a RESP2 array of bulks are a multibulk request that parses back
//!   to the same arguments, and replies built from them encode in both protocols with error and
//!   status texts kept on one line.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use redis_proto::{
    encode_to_vec, parse_request, Args, Limits, ProtoError, Protocol, Reply, RequestParser,
};

fn limits(sel: u8) -> Limits {
    let tiny = Limits {
        max_bulk_len: 20,
        max_multibulk_len: 4,
        max_inline_len: 16,
        authenticated: true,
    };
    let base = if sel & 1 == 0 {
        Limits::default()
    } else {
        tiny
    };
    Limits {
        authenticated: sel & 2 == 0,
        ..base
    }
}

/// All commands in `input` parsed whole, and how parsing ended.
fn parse_all(input: &[u8], lim: &Limits) -> (Vec<Args>, Result<(), ProtoError>) {
    let mut buf = BytesMut::from(input);
    let mut cmds = Vec::new();
    loop {
        let before = buf.len();
        match parse_request(&mut buf, lim) {
            Ok(Some(args)) => {
                assert!(buf.len() < before, "a command consumed nothing");
                assert!(!args.is_empty(), "a command without arguments");
                cmds.push(args);
            }
            Ok(None) => return (cmds, Ok(())),
            Err(e) => return (cmds, Err(e)),
        }
    }
}

/// The input in two reads split at `k`, drained after each read.
fn parse_split(
    input: &[u8],
    k: usize,
    lim: &Limits,
    stateful: bool,
) -> (Vec<Args>, Result<(), ProtoError>) {
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut cmds = Vec::new();
    for part in [&input[..k], &input[k..]] {
        buf.extend_from_slice(part);
        loop {
            let r = if stateful {
                parser.parse(&mut buf, lim)
            } else {
                parse_request(&mut buf, lim)
            };
            match r {
                Ok(Some(args)) => cmds.push(args),
                Ok(None) => break,
                Err(e) => return (cmds, Err(e)),
            }
        }
    }
    (cmds, Ok(()))
}

fn check_replies(args: &Args) {
    // A RESP2 array of bulk strings is a multibulk request: it must parse back.
    let bulks = Reply::Array(args.iter().cloned().map(Reply::Bulk).collect());
    let wire = encode_to_vec(&bulks, Protocol::Resp2);
    let mut buf = BytesMut::from(&wire[..]);
    let back = parse_request(&mut buf, &Limits::default());
    assert_eq!(back, Ok(Some(args.clone())), "a multibulk of the arguments");
    assert!(buf.is_empty());

    let text = args.concat();
    let double = std::str::from_utf8(&text)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(text.len() as f64);
    let reply = Reply::Push(vec![
        bulks,
        Reply::Map(
            args.iter()
                .map(|a| (Reply::Bulk(a.clone()), Reply::Int(a.len() as i64)))
                .collect(),
        ),
        Reply::Set(vec![Reply::Double(double), Reply::Bool(text.is_empty())]),
        Reply::Verbatim(Bytes::from(text.clone())),
        Reply::Nil,
        Reply::NilArray,
    ]);
    for proto in [Protocol::Resp2, Protocol::Resp3] {
        assert!(!encode_to_vec(&reply, proto).is_empty());
        for line in [
            Reply::Error(Bytes::from(text.clone())),
            Reply::Simple(Bytes::from(text.clone())),
        ] {
            let out = encode_to_vec(&line, proto);
            assert_eq!(out.len(), text.len() + 3);
            assert!(out.ends_with(b"\r\n"));
            assert!(!out[..out.len() - 2]
                .iter()
                .any(|&b| b == b'\r' || b == b'\n'));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let lim = limits(data[0]);
    let input = &data[2..];

    let unauth = Limits {
        authenticated: false,
        ..Limits::default()
    };
    for l in [Limits::default(), unauth] {
        let (cmds, _) = parse_all(input, &l);
        for args in cmds.iter().take(4) {
            check_replies(args);
        }
    }

    let (whole, end) = parse_all(input, &lim);
    let k = (data[1] as usize * input.len()) / 255;
    for stateful in [false, true] {
        let (got, got_end) = parse_split(input, k, &lim, stateful);
        match &got_end {
            // The partial read may have met the limit where the whole input went on (a too-big
            // error of the whole input past more commands looks the same).
            Err(
                ProtoError::TooBigInline
                | ProtoError::TooBigMbulkCount
                | ProtoError::TooBigBulkCount,
            ) => {
                assert!(
                    whole.starts_with(&got),
                    "split at {k}: commands before a too-big error differ"
                );
            }
            _ => {
                assert_eq!(
                    got, whole,
                    "split at {k} (stateful {stateful}): other commands"
                );
                assert_eq!(
                    got_end, end,
                    "split at {k} (stateful {stateful}): other end"
                );
            }
        }
    }
});
