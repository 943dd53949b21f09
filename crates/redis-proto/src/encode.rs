//! Reply encoding for RESP2 and RESP3, byte for byte as redis-server 7.0 writes each reply
//! (src/networking.c: `addReply*`).

use bytes::{BufMut, BytesMut};

use crate::{Protocol, Reply};

/// Append `reply` to `out` as a connection speaking `proto` must receive it.
///
/// * `Simple` and `Error` texts are kept on one line: each `\r` or `\n` is written as a space,
///   as Redis's `addReplyErrorFormat` / `addReplyStatusFormat` do (a raw one would break the
///   protocol).
/// * RESP2 has no maps, sets, doubles, booleans, verbatim strings, nulls or pushes: they are
///   written as Redis writes them to a RESP2 client (a flat array, an array, a bulk string of
///   [`format_double`], `:1`/`:0`, a bulk string, `$-1`/`*-1`, an array).
pub fn encode(reply: &Reply, proto: Protocol, out: &mut BytesMut) {
    let resp3 = proto == Protocol::Resp3;
    match reply {
        Reply::Simple(text) => line(out, b'+', text),
        Reply::Error(text) => line(out, b'-', text),
        Reply::Int(n) => header(out, b':', *n),
        Reply::Bulk(b) => bulk(out, b),
        Reply::Nil => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
        Reply::NilArray => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
        Reply::Array(items) => aggregate(out, b'*', items, proto),
        Reply::Set(items) => aggregate(out, if resp3 { b'~' } else { b'*' }, items, proto),
        Reply::Push(items) => aggregate(out, if resp3 { b'>' } else { b'*' }, items, proto),
        Reply::Map(pairs) => {
            if resp3 {
                header(out, b'%', len_i64(pairs.len()));
            } else {
                header(out, b'*', len_i64(pairs.len()).saturating_mul(2));
            }
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Reply::Double(d) => {
            let text = format_double(*d);
            if resp3 {
                out.reserve(text.len() + 3);
                out.put_u8(b',');
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\r\n");
            } else {
                bulk(out, text.as_bytes());
            }
        }
        Reply::Bool(b) => out.extend_from_slice(match (resp3, b) {
            (true, true) => b"#t\r\n",
            (true, false) => b"#f\r\n",
            (false, true) => b":1\r\n",
            (false, false) => b":0\r\n",
        }),
        Reply::Verbatim(text) => {
            if resp3 {
                header(out, b'=', len_i64(text.len()).saturating_add(4));
                out.reserve(text.len() + 6);
                out.extend_from_slice(b"txt:");
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            } else {
                bulk(out, text);
            }
        }
    }
}

/// A length as the protocol's signed integer (a `Vec` or buffer length always fits).
fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `<prefix><n>\r\n`.
fn header(out: &mut BytesMut, prefix: u8, n: i64) {
    let mut digits = [0u8; 20];
    let text = itoa(n, &mut digits);
    out.reserve(text.len() + 3);
    out.put_u8(prefix);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// `$<len>\r\n<bytes>\r\n`.
fn bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 25);
    header(out, b'$', len_i64(b.len()));
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// An aggregate's header and its elements.
fn aggregate(out: &mut BytesMut, prefix: u8, items: &[Reply], proto: Protocol) {
    header(out, prefix, len_i64(items.len()));
    for item in items {
        encode(item, proto, out);
    }
}

/// `<prefix><text>\r\n` with `\r` and `\n` in the text written as spaces.
fn line(out: &mut BytesMut, prefix: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(prefix);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(text.iter().map(|&b| match b {
            b'\r' | b'\n' => b' ',
            _ => b,
        }));
    } else {
        out.extend_from_slice(text);
    }
    out.extend_from_slice(b"\r\n");
}

/// `n` in decimal, written into the end of `buf`: the returned slice.
fn itoa(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut v = n.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        // i64::MIN has 19 digits: there is room for the sign.
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// A double as redis-server 7.0 writes it in replies (`%.17g`, `inf`, `-inf`, `nan`).
///
/// C's `%.17g` with glibc: 17 significant digits, trailing zeros dropped (`3.0` is `3`,
/// `0.1` is `0.10000000000000001`), exponent form when the exponent is below -4 or at least 17
/// (`1e+17`, `1.0000000000000001e-05`); `-0` keeps its sign, and a NaN with its sign bit set
/// is `-nan` as glibc prints it.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    if d.fract() == 0.0 && d.abs() < 1e17 {
        // An integer of at most 17 digits is printed exactly, in full (and this skips the
        // slow exact formatting below for the common `3` or `100`).
        return (d as i64).to_string();
    }
    // Rust's exact formatting rounds like glibc (to nearest, ties to even, on the exact
    // binary value): 17 significant digits and the exponent of the rounded value.
    let sci = format!("{:.16e}", d.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let mut s = String::with_capacity(32);
    if d < 0.0 {
        s.push('-');
    }
    if !(-4..17).contains(&exp) {
        let significant = trim_zeros(&digits[1..]);
        s.push(char::from(digits[0]));
        if !significant.is_empty() {
            s.push('.');
            s.extend(significant.iter().map(|&b| char::from(b)));
        }
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            s.push('0');
        }
        s.push_str(&e.to_string());
    } else if exp >= 0 {
        let point = exp as usize + 1;
        s.extend(digits[..point].iter().map(|&b| char::from(b)));
        let frac = trim_zeros(&digits[point..]);
        if !frac.is_empty() {
            s.push('.');
            s.extend(frac.iter().map(|&b| char::from(b)));
        }
    } else {
        s.push_str("0.");
        for _ in 0..(-exp - 1) {
            s.push('0');
        }
        s.extend(trim_zeros(&digits).iter().map(|&b| char::from(b)));
    }
    s
}

/// `digits` without its trailing `0`s.
fn trim_zeros(digits: &[u8]) -> &[u8] {
    let end = digits.iter().rposition(|&b| b != b'0').map_or(0, |i| i + 1);
    &digits[..end]
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
