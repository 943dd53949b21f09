//! memcached's notion of a numeric value for incr/decr.
//!
//! memcached 1.6.18 (`do_add_delta` in memcached.c) refuses items with an empty value, then runs
//! `safe_strtoull` (util.c) over the stored bytes, which are followed by `"\r\n"`. That is C
//! `strtoull(str, &end, 10)` plus: no digits or `ERANGE` => not numeric; the character after the
//! number must be whitespace or NUL; a result that is negative as `i64` is refused if the string
//! contains a `'-'`. Consequences reproduced here: leading whitespace and a `+` sign are accepted,
//! `"12 abc"` is 12, `"-0"` is 0, `"-5"` is not numeric, and there is **no length limit**: memcached
//! 1.6.18 accepts `"000000000000000000000000042"` (length is only bounded by overflow).

#[inline]
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parse a stored value the way memcached's incr/decr does. `None` = non-numeric.
pub fn parse_stored_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut i = 0;
    while i < v.len() && c_isspace(v[i]) {
        i += 1;
    }
    if i == v.len() {
        // Only whitespace (the trailing "\r\n" is whitespace too): strtoull finds no digits.
        return None;
    }
    let mut neg = false;
    if v[i] == b'+' || v[i] == b'-' {
        neg = v[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut acc: u64 = 0;
    let mut overflow = false;
    while i < v.len() && v[i].is_ascii_digit() {
        match acc
            .checked_mul(10)
            .and_then(|a| a.checked_add((v[i] - b'0') as u64))
        {
            Some(a) => acc = a,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start || overflow {
        return None;
    }
    // After the digits: end of value (followed by '\r' in memcached), whitespace or NUL.
    if i < v.len() && !(c_isspace(v[i]) || v[i] == 0) {
        return None;
    }
    let val = if neg { acc.wrapping_neg() } else { acc };
    if (val as i64) < 0 && v.contains(&b'-') {
        return None;
    }
    Some(val)
}

#[cfg(test)]
mod tests {
    use super::parse_stored_u64 as p;

    #[test]
    fn memcached_strtoull_rules() {
        assert_eq!(p(b"0"), Some(0));
        assert_eq!(p(b"42"), Some(42));
        assert_eq!(p(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(p(b"18446744073709551616"), None);
        assert_eq!(p(b""), None);
        assert_eq!(p(b"   "), None);
        assert_eq!(p(b"hi"), None);
        assert_eq!(p(b"12abc"), None);
        assert_eq!(p(b"12 abc"), Some(12));
        assert_eq!(p(b"7   "), Some(7));
        assert_eq!(p(b"  7"), Some(7));
        assert_eq!(p(b"+7"), Some(7));
        assert_eq!(p(b"-0"), Some(0));
        assert_eq!(p(b"-5"), None);
        assert_eq!(p(b"-"), None);
        assert_eq!(p(b"5\0x"), Some(5));
        assert_eq!(p(b"000000000000000000000000042"), Some(42));
    }
}
