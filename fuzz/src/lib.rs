//! Shared checks for keel's protocol fuzz targets.
//!
//! Every target feeds libFuzzer's input to one of memcache-proto's parsers and checks, besides
//! "never panics, never hangs":
//! * consistency: a `Request` consumed `1..=len` bytes, an `Error` at most `len`;
//! * streaming: the input split in two must never give a different result than whole. If a
//!   prefix already yields a decision (`Request` or `Error`), the whole input yields the same
//!   decision; and a request found in the whole input is found, identical, in exactly its own
//!   bytes (a parser must not need bytes past the request to decide).
//!
//! The first input byte picks the limits (defaults or tiny ones, so limit paths are reached), the
//! second picks the split point; the rest is the protocol input.
//!
//! One exception, for the line-framed text and meta protocols only ([`check_lines`]): memcached
//! closes a connection whose buffer holds more than the line limit and no newline yet, so whether
//! a long line is served depends on how much of it one read brought. The parsers reproduce that,
//! so a prefix that has no `\n` and exceeds the limit may answer "close" where the whole input
//! parses. Nothing else may differ.

use std::fmt::Debug;

use memcache_proto::{Limits, Parse};

/// Limits chosen by a selector byte: memcached's defaults most of the time, tiny ones otherwise.
pub fn limits(sel: u8) -> Limits {
    match sel % 4 {
        0 | 1 => Limits::default(),
        2 => Limits {
            max_key_len: 250,
            item_size_max: 1024,
            max_line: 2048,
            max_get_line: 4096,
        },
        _ => Limits {
            max_key_len: 8,
            item_size_max: 16,
            max_line: 64,
            max_get_line: 128,
        },
    }
}

/// Run all checks of one fuzz input against `parse` (a binary-protocol parser: no exception).
pub fn check<'a, T, F>(data: &'a [u8], parse: F)
where
    T: PartialEq + Debug,
    F: Fn(&'a [u8], &Limits) -> Parse<T>,
{
    check_with(data, parse, |_, _, _| false)
}

/// [`check`] for the line-framed text and meta parsers: the split may also differ when the
/// prefix is a line memcached gives up on before its newline arrives ([`line_prefix_closes`]).
pub fn check_lines<'a, T, F>(data: &'a [u8], parse: F)
where
    T: PartialEq + Debug,
    F: Fn(&'a [u8], &Limits) -> Parse<T>,
{
    check_with(data, parse, |prefix, lim, decided| {
        line_prefix_closes(prefix, lim)
            && matches!(decided, Parse::Error { reply, consumed: 0, swallow: 0, close: true } if reply.is_empty())
    })
}

/// memcached's rule (`try_read_command_ascii`) for buffered input without a newline: more than
/// `max_line` bytes close the connection, unless the input starts (after at most 100 spaces)
/// with `get ` or `gets `, which may grow to `max_get_line`.
pub fn line_prefix_closes(prefix: &[u8], lim: &Limits) -> bool {
    if prefix.contains(&b'\n') || prefix.len() <= lim.max_line {
        return false;
    }
    let spaces = prefix.iter().take_while(|&&b| b == b' ').count();
    let rest = &prefix[spaces..];
    let get_like = spaces <= 100 && (rest.starts_with(b"get ") || rest.starts_with(b"gets "));
    !get_like || prefix.len() > lim.max_get_line
}

/// The checks, where `allowed(prefix, limits, prefix_result)` may excuse a prefix whose decision
/// differs from the whole input's.
fn check_with<'a, T, F>(
    data: &'a [u8],
    parse: F,
    allowed: impl Fn(&[u8], &Limits, &Parse<T>) -> bool,
) where
    T: PartialEq + Debug,
    F: Fn(&'a [u8], &Limits) -> Parse<T>,
{
    if data.len() < 2 {
        return;
    }
    let lim = limits(data[0]);
    let split_sel = data[1];
    let input = &data[2..];

    let whole = parse(input, &lim);
    match &whole {
        Parse::Request { consumed, .. } => {
            assert!(
                *consumed >= 1 && *consumed <= input.len(),
                "Request consumed {consumed} of {}",
                input.len()
            );
            let exact = parse(&input[..*consumed], &lim);
            assert_eq!(
                exact, whole,
                "a request is not recognised in exactly its own {consumed} bytes"
            );
        }
        Parse::Error { consumed, .. } => {
            assert!(
                *consumed <= input.len(),
                "Error consumed {consumed} of {}",
                input.len()
            );
        }
        Parse::Incomplete => {}
    }

    if input.is_empty() {
        return;
    }
    let k = (split_sel as usize * input.len()) / 255;
    let prefix = parse(&input[..k], &lim);
    match &prefix {
        Parse::Incomplete => {}
        Parse::Request { consumed, .. } | Parse::Error { consumed, .. } => {
            assert!(
                *consumed <= k,
                "prefix result consumed {consumed} > prefix length {k}"
            );
            if prefix != whole && allowed(&input[..k], &lim, &prefix) {
                return;
            }
            assert_eq!(
                prefix,
                whole,
                "split at {k} of {}: the prefix decided differently from the whole input",
                input.len()
            );
        }
    }
}
