//! Redis's glob matching (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a-z]`, `\` escapes; used by
//! `KEYS`, `SCAN MATCH`, `HSCAN`/`SSCAN MATCH` and `PSUBSCRIBE`.
//!
//! A line-for-line port of redis-server 7.0's `stringmatchlen_impl` (with the nesting limit
//! Debian's 7.0.15 carries against abusive patterns), including its quirks: an unterminated
//! `[` class matches as if closed at the end, a `[a-` at the pattern's end is a literal, a
//! trailing `\` matches itself, and bytes past the end of the pattern read as NUL (Redis's
//! strings are NUL-terminated).

/// Whether `s` matches `pattern`, exactly as redis-server 7.0 decides it.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, s, &mut skip_longer, 0)
}

/// The pattern byte at `i`, NUL past the end (as C reads its terminator).
fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

fn match_impl(pat: &[u8], s: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    // Redis gives up (no match) past 1000 nested `*`s rather than recurse without bound.
    if nesting > 1000 {
        return false;
    }
    let mut p = 0usize; // index into pat; pat.len() - p is C's patternLen
    let mut si = 0usize; // index into s
    while p < pat.len() && si < s.len() {
        match pat[p] {
            b'*' => {
                while p < pat.len() && at(pat, p + 1) == b'*' {
                    p += 1;
                }
                if pat.len() - p == 1 {
                    return true;
                }
                while si < s.len() {
                    if match_impl(&pat[p + 1..], &s[si..], skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    si += 1;
                }
                // Nothing after this `*` matches anywhere in the rest: a longer match for an
                // earlier `*` cannot help either.
                *skip_longer = true;
                return false;
            }
            b'?' => {
                si += 1;
            }
            b'[' => {
                p += 1;
                let not = at(pat, p) == b'^';
                if not {
                    p += 1;
                }
                let c = s[si];
                let mut matched = false;
                loop {
                    let len = pat.len().saturating_sub(p);
                    if at(pat, p) == b'\\' && len >= 2 {
                        p += 1;
                        if at(pat, p) == c {
                            matched = true;
                        }
                    } else if at(pat, p) == b']' {
                        break;
                    } else if len == 0 {
                        // Unterminated class: step back so the loop's advance ends the pattern.
                        p -= 1;
                        break;
                    } else if len >= 3 && at(pat, p + 1) == b'-' {
                        let (mut start, mut end) = (at(pat, p), at(pat, p + 2));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        p += 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if at(pat, p) == c {
                        matched = true;
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
            }
            b'\\' => {
                if pat.len() - p >= 2 {
                    p += 1;
                }
                if pat[p] != s[si] {
                    return false;
                }
                si += 1;
            }
            other => {
                if other != s[si] {
                    return false;
                }
                si += 1;
            }
        }
        p += 1;
        if si == s.len() {
            while at(pat, p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= pat.len() && si == s.len()
}

#[cfg(test)]
mod tests {
    use super::matches;
    use proptest::prelude::*;

    #[test]
    fn basics() {
        // As in Redis: only KEYS/SCAN short-cut a lone `*`; the matcher itself says no.
        assert!(!matches(b"*", b""));
        assert!(!matches(b"**", b""));
        assert!(matches(b"*", b"anything"));
        assert!(matches(b"", b""));
        assert!(!matches(b"", b"a"));
        assert!(matches(b"h?llo", b"hello"));
        assert!(!matches(b"h?llo", b"hllo"));
        assert!(matches(b"h*llo", b"heeeello"));
        assert!(matches(b"h[ae]llo", b"hallo"));
        assert!(!matches(b"h[ae]llo", b"hillo"));
        assert!(matches(b"h[^e]llo", b"hallo"));
        assert!(!matches(b"h[^e]llo", b"hello"));
        assert!(matches(b"h[a-b]llo", b"hbllo"));
        assert!(matches(b"h[b-a]llo", b"hallo"), "reversed range");
        assert!(!matches(b"h[a-b]llo", b"hcllo"));
        assert!(matches(b"h\\*llo", b"h*llo"));
        assert!(!matches(b"h\\*llo", b"hello"));
        assert!(matches(b"a\\", b"a\\"), "trailing backslash is literal");
        assert!(matches(b"[\\]]", b"]"));
        assert!(matches(b"[a-", b"a"), "unterminated class");
        assert!(matches(b"[abc", b"c"));
        assert!(!matches(b"[abc", b"cd"));
        assert!(matches(b"a*b*c", b"aXXbYYc"));
        assert!(!matches(b"a*b*c", b"aXXbYY"));
        assert!(matches(b"a**", b"a"));
        assert!(matches(b"a*", b"a"));
        assert!(matches(b"user:*:name", b"user:42:name"));
        assert!(!matches(b"*a", b"b"));
    }

    #[test]
    fn nesting_limit_like_debian_7_0_15() {
        let s = vec![b'a'; 1200];
        assert!(!matches(&b"a*".repeat(1100), &s));
        assert!(matches(&b"a*".repeat(900), &s));
    }

    /// A plain backtracking matcher for patterns without classes or escapes.
    fn naive(p: &[u8], s: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'*') => (0..=s.len()).any(|i| naive(&p[1..], &s[i..])),
            Some(b'?') => !s.is_empty() && naive(&p[1..], &s[1..]),
            Some(c) => s.first() == Some(c) && naive(&p[1..], &s[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_naive(p in "[ab*?]{0,8}", s in "[ab]{0,10}") {
            // Redis's matcher never matches an empty string against a non-empty pattern
            // (its loop never starts); otherwise it is plain glob matching.
            let want = if s.is_empty() { p.is_empty() } else { naive(p.as_bytes(), s.as_bytes()) };
            prop_assert_eq!(matches(p.as_bytes(), s.as_bytes()), want);
        }

        #[test]
        fn never_panics(p in proptest::collection::vec(any::<u8>(), 0..12),
                        s in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = matches(&p, &s);
        }
    }
}
