//! Normalisation of replies before comparison: only the documented differences are masked.
//!
//! * `VERSION <anything>` → `VERSION <v>` (text) / the binary VERSION body → `<v>`.
//! * CAS values (`VALUE k f n CAS`, meta `c<CAS>`, `me` `cas=`, the binary header's CAS field)
//!   → `#<alias>`, where aliases are handed out per distinct value in order of appearance: two
//!   servers agree iff they gave equal CAS to the same items in the same places.
//! * meta `t<secs>` (remaining TTL, unless `-1`) and `l<secs>` (seconds since last access) →
//!   `t#` / `l#`: they depend on which second each server read its clock.
//! * `me` fields `exp` (unless -1), `la`, `cls`, `size` → `#` (memory layout differs).
//!
//! * A `stats` reply (any run of `STAT name value` lines) → one `STAT <…>` line: keel reports a
//!   subset of memcached's statistics and their values differ (`stats_match_memcached` checks
//!   the names and counters separately).
//! * A numeric value padded with trailing spaces (`"9 "`) → the number without them, with the
//!   length adjusted: memcached rewrites a shrinking incr/decr result in place, space-padded, and
//!   protocol.txt calls that padding an implementation detail clients must not rely on.
//!
//! Everything else, including data blocks, is kept byte for byte. Data blocks are skipped by
//! their declared length, so a value can never be mistaken for a reply line.

use std::collections::HashMap;

use test_harness::binary::{op, split_responses};

use super::CasBook;

fn find_crlf(b: &[u8], from: usize) -> Option<usize> {
    b[from..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// `Some(len)` if `data` is decimal digits followed by at least one space: the digits' length.
fn padded_number(data: &[u8]) -> Option<usize> {
    let digits = data.iter().take_while(|c| c.is_ascii_digit()).count();
    (digits > 0 && digits < data.len() && data[digits..].iter().all(|&c| c == b' '))
        .then_some(digits)
}

/// Normalise the flags of a meta reply line (`HD`, `VA n`, `EN`, …): `toks` are the flags.
fn meta_flags(toks: &[&[u8]], cas: &mut CasBook, key: Option<&[u8]>) -> Vec<Vec<u8>> {
    toks.iter()
        .map(|t| match t.split_first() {
            Some((b'c', rest)) if parse_u64(rest).is_some() => {
                let v = parse_u64(rest).expect("checked");
                if let Some(k) = key {
                    cas.record(k, v);
                }
                format!("c#{}", cas.alias(v)).into_bytes()
            }
            Some((b't', rest)) if rest != b"-1" && parse_u64(rest).is_some() => b"t#".to_vec(),
            Some((b'l', rest)) if parse_u64(rest).is_some() => b"l#".to_vec(),
            _ => t.to_vec(),
        })
        .collect()
}

/// Normalise a text/meta reply stream. `op_key` is the key a meta `c` return belongs to.
pub fn text(bytes: &[u8], cas: &mut CasBook, op_key: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut in_stats = false;
    while i < bytes.len() {
        let Some(end) = find_crlf(bytes, i) else {
            out.extend_from_slice(&bytes[i..]);
            break;
        };
        let line = &bytes[i..end];
        i = end + 2;
        if line.starts_with(b"STAT ") {
            if !in_stats {
                out.extend_from_slice(b"STAT <...>\r\n");
            }
            in_stats = true;
            continue;
        }
        in_stats = false;
        let toks: Vec<&[u8]> = line.split(|&c| c == b' ').collect();
        let mut data_len = None;
        let mut new_line: Vec<Vec<u8>> = match toks[0] {
            b"VALUE" if toks.len() >= 4 => {
                data_len = parse_u64(toks[3]);
                let mut t: Vec<Vec<u8>> = toks.iter().map(|t| t.to_vec()).collect();
                if toks.len() == 5 {
                    if let Some(v) = parse_u64(toks[4]) {
                        cas.record(toks[1], v);
                        t[4] = format!("#{}", cas.alias(v)).into_bytes();
                    }
                }
                t
            }
            b"VA" if toks.len() >= 2 => {
                data_len = parse_u64(toks[1]);
                let mut t = vec![toks[0].to_vec(), toks[1].to_vec()];
                t.extend(meta_flags(&toks[2..], cas, op_key));
                t
            }
            b"HD" | b"EN" | b"NF" | b"NS" | b"EX" | b"MN" => {
                let mut t = vec![toks[0].to_vec()];
                t.extend(meta_flags(&toks[1..], cas, op_key));
                t
            }
            b"ME" => toks
                .iter()
                .map(|t| {
                    let s = String::from_utf8_lossy(t);
                    match s.split_once('=') {
                        Some(("exp", v)) if v != "-1" => b"exp=#".to_vec(),
                        Some(("la" | "cls" | "size", _)) => {
                            format!("{}=#", s.split_once('=').expect("has =").0).into_bytes()
                        }
                        Some(("cas", v)) => match v.parse::<u64>() {
                            Ok(v) => format!("cas=#{}", cas.alias(v)).into_bytes(),
                            Err(_) => t.to_vec(),
                        },
                        _ => t.to_vec(),
                    }
                })
                .collect(),
            b"VERSION" => vec![b"VERSION".to_vec(), b"<v>".to_vec()],
            _ => toks.iter().map(|t| t.to_vec()).collect(),
        };
        let mut data: &[u8] = &[];
        if let Some(n) = data_len {
            let take = (n as usize).saturating_add(2).min(bytes.len() - i);
            data = &bytes[i..i + take];
            i += take;
            let len_tok = if toks[0] == b"VALUE" { 3 } else { 1 };
            if let Some(d) = data.strip_suffix(b"\r\n").and_then(padded_number) {
                new_line[len_tok] = d.to_string().into_bytes();
                data = &data[..d];
                out.extend_from_slice(&new_line.join(&b' '));
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
                continue;
            }
        }
        out.extend_from_slice(&new_line.join(&b' '));
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
    }
    out
}

/// Normalise a binary response stream: CAS fields aliased (and recorded for the request's key
/// when the status is success), VERSION bodies masked. A trailing unparseable remainder is kept.
pub fn binary(bytes: &[u8], cas: &mut CasBook, keys: &HashMap<u32, Vec<u8>>) -> Vec<u8> {
    let (resps, _rest) = split_responses(bytes);
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for r in &resps {
        let start = r.cas_offset - 16;
        let end = start + 24 + r.extras.len() + r.key.len() + r.value.len();
        let mut pkt = bytes[start..end].to_vec();
        if r.cas != 0 {
            if r.status == 0 {
                if let Some(k) = keys.get(&r.opaque) {
                    cas.record(k, r.cas);
                }
            }
            let alias = cas.alias(r.cas) as u64 + 1;
            pkt[16..24].copy_from_slice(&alias.to_be_bytes());
        }
        if let Some(d) = padded_number(&r.value).filter(|_| r.status == 0) {
            pkt.truncate(24 + r.extras.len() + r.key.len() + d);
            let body = (r.extras.len() + r.key.len() + d) as u32;
            pkt[8..12].copy_from_slice(&body.to_be_bytes());
        }
        if r.opcode == op::VERSION && r.status == 0 {
            pkt.truncate(24 + r.extras.len() + r.key.len());
            pkt.extend_from_slice(b"<v>");
            let body = (r.extras.len() + r.key.len() + 3) as u32;
            pkt[8..12].copy_from_slice(&body.to_be_bytes());
        }
        out.extend_from_slice(&pkt);
        at = end;
    }
    out.extend_from_slice(&bytes[at..]);
    out
}
