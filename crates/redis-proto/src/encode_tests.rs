//! Tests of reply encoding: every variant in RESP2 and RESP3 as redis-server 7.0 writes it, and
//! `%.17g` doubles.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::encode_to_vec;

fn both(reply: &Reply) -> (Vec<u8>, Vec<u8>) {
    (
        encode_to_vec(reply, Protocol::Resp2),
        encode_to_vec(reply, Protocol::Resp3),
    )
}

fn check(reply: Reply, resp2: &[u8], resp3: &[u8]) {
    let (two, three) = both(&reply);
    assert_eq!(
        two,
        resp2,
        "RESP2 of {reply:?}: {:?}",
        String::from_utf8_lossy(&two)
    );
    assert_eq!(
        three,
        resp3,
        "RESP3 of {reply:?}: {:?}",
        String::from_utf8_lossy(&three)
    );
}

fn b(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

#[test]
fn scalars() {
    check(Reply::ok(), b"+OK\r\n", b"+OK\r\n");
    check(Reply::simple("PONG"), b"+PONG\r\n", b"+PONG\r\n");
    check(
        Reply::error("ERR syntax error"),
        b"-ERR syntax error\r\n",
        b"-ERR syntax error\r\n",
    );
    check(Reply::Int(0), b":0\r\n", b":0\r\n");
    check(Reply::Int(-42), b":-42\r\n", b":-42\r\n");
    check(
        Reply::Int(i64::MAX),
        b":9223372036854775807\r\n",
        b":9223372036854775807\r\n",
    );
    check(
        Reply::Int(i64::MIN),
        b":-9223372036854775808\r\n",
        b":-9223372036854775808\r\n",
    );
    check(b("foo"), b"$3\r\nfoo\r\n", b"$3\r\nfoo\r\n");
    check(b(""), b"$0\r\n\r\n", b"$0\r\n\r\n");
    check(
        Reply::bulk(b"a\r\n\x00"),
        b"$4\r\na\r\n\x00\r\n",
        b"$4\r\na\r\n\x00\r\n",
    );
    check(Reply::Nil, b"$-1\r\n", b"_\r\n");
    check(Reply::NilArray, b"*-1\r\n", b"_\r\n");
    check(Reply::Bool(true), b":1\r\n", b"#t\r\n");
    check(Reply::Bool(false), b":0\r\n", b"#f\r\n");
    check(
        Reply::Verbatim(Bytes::from_static(b"# Server\r\nx:1\r\n")),
        b"$15\r\n# Server\r\nx:1\r\n\r\n",
        b"=19\r\ntxt:# Server\r\nx:1\r\n\r\n",
    );
}

#[test]
fn error_and_status_stay_on_one_line() {
    check(
        Reply::error("ERR unknown command 'a\r\nb'"),
        b"-ERR unknown command 'a  b'\r\n",
        b"-ERR unknown command 'a  b'\r\n",
    );
    check(
        Reply::Simple(Bytes::from_static(b"a\nb")),
        b"+a b\r\n",
        b"+a b\r\n",
    );
    check(Reply::error(""), b"-\r\n", b"-\r\n");
}

#[test]
fn doubles() {
    check(Reply::Double(3.0), b"$1\r\n3\r\n", b",3\r\n");
    check(
        Reply::Double(0.1),
        b"$19\r\n0.10000000000000001\r\n",
        b",0.10000000000000001\r\n",
    );
    check(Reply::Double(1e17), b"$5\r\n1e+17\r\n", b",1e+17\r\n");
    check(Reply::Double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n");
    check(
        Reply::Double(f64::NEG_INFINITY),
        b"$4\r\n-inf\r\n",
        b",-inf\r\n",
    );
    check(
        Reply::Double(f64::NAN.copysign(1.0)),
        b"$3\r\nnan\r\n",
        b",nan\r\n",
    );
}

#[test]
fn aggregates() {
    let arr = Reply::Array(vec![b("a"), Reply::Int(1), Reply::Nil]);
    check(
        arr,
        b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n",
        b"*3\r\n$1\r\na\r\n:1\r\n_\r\n",
    );
    check(Reply::Array(vec![]), b"*0\r\n", b"*0\r\n");
    let map = Reply::Map(vec![(b("k"), b("v")), (b("n"), Reply::Double(1.5))]);
    check(
        map,
        b"*4\r\n$1\r\nk\r\n$1\r\nv\r\n$1\r\nn\r\n$3\r\n1.5\r\n",
        b"%2\r\n$1\r\nk\r\n$1\r\nv\r\n$1\r\nn\r\n,1.5\r\n",
    );
    check(Reply::Map(vec![]), b"*0\r\n", b"%0\r\n");
    check(
        Reply::Set(vec![b("x"), b("y")]),
        b"*2\r\n$1\r\nx\r\n$1\r\ny\r\n",
        b"~2\r\n$1\r\nx\r\n$1\r\ny\r\n",
    );
    check(
        Reply::Push(vec![b("message"), b("ch"), b("hi")]),
        b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
    );
    // Nested: a map inside an array inside a push.
    check(
        Reply::Push(vec![Reply::Array(vec![Reply::Map(vec![(
            b("a"),
            Reply::Bool(true),
        )])])]),
        b"*1\r\n*1\r\n*2\r\n$1\r\na\r\n:1\r\n",
        b">1\r\n*1\r\n%1\r\n$1\r\na\r\n#t\r\n",
    );
}

#[test]
fn encode_appends() {
    let mut out = BytesMut::from(&b"+X\r\n"[..]);
    encode(&Reply::Int(7), Protocol::Resp2, &mut out);
    assert_eq!(&out[..], b"+X\r\n:7\r\n");
}

/// `%.17g` as glibc prints it (the right column was printed by C / Python's `'%.17g'`).
#[test]
fn format_double_is_printf_17g() {
    let cases: &[(f64, &str)] = &[
        (3.0, "3"),
        (-3.0, "-3"),
        (0.0, "0"),
        (-0.0, "-0"),
        (0.1, "0.10000000000000001"),
        (1e17, "1e+17"),
        (1e16, "10000000000000000"),
        (12345678901234567.0, "12345678901234568"),
        (1e-5, "1.0000000000000001e-05"),
        (1e-4, "0.0001"),
        (0.00012345, "0.00012344999999999999"),
        (123456789012345678.0, "1.2345678901234568e+17"),
        // An exact tie at the 18th digit: to even.
        (9007199254740991.0 / 4.0, "2251799813685247.8"),
        (-1.5, "-1.5"),
        (1.0 / 3.0, "0.33333333333333331"),
        (2.5e-310, "2.5000000000000171e-310"),
        (f64::MAX, "1.7976931348623157e+308"),
        (5e-324, "4.9406564584124654e-324"),
        (0.5, "0.5"),
        (100.0, "100"),
        (1e21, "1e+21"),
        (1e100, "1e+100"),
        (123.456, "123.456"),
        (-1e-300, "-1e-300"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (f64::NAN.copysign(1.0), "nan"),
        (f64::NAN.copysign(-1.0), "-nan"),
    ];
    for &(d, want) in cases {
        assert_eq!(format_double(d), want, "{d:e}");
    }
}

proptest! {
    /// `%.17g` keeps 17 significant digits: the text reads back as the same double.
    #[test]
    fn format_double_round_trips(bits in any::<u64>()) {
        let d = f64::from_bits(bits);
        prop_assume!(d.is_finite());
        let s = format_double(d);
        prop_assert_eq!(s.parse::<f64>().ok().map(f64::to_bits), Some(d.to_bits()), "{}", s);
    }

    /// Integers are written as Rust writes them.
    #[test]
    fn ints(n in any::<i64>()) {
        prop_assert_eq!(encode_to_vec(&Reply::Int(n), Protocol::Resp3), format!(":{n}\r\n").into_bytes());
    }
}
