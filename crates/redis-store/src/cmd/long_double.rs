//! Just enough of the x86 80-bit `long double` that redis-server computes `HINCRBYFLOAT` in:
//! `strtold` (correctly rounded), one addition (correctly rounded to a 64-bit mantissa), and
//! `printf("%.17Lf")`, so results match Redis digit for digit (`0.1 + 0.2` is `0.3` there,
//! and `100000.1 + 1.1` is `100001.20000000000000284`, which an `f64` cannot reproduce).
//!
//! A value is `mant * 2^exp` with a normalised 64-bit mantissa, exactly as the x87 format
//! holds it; the arithmetic uses a small unsigned big integer.

use std::cmp::Ordering;

/// A little-endian base-2^32 unsigned integer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u128(mut v: u128) -> Big {
        let mut d = Vec::new();
        while v != 0 {
            d.push(v as u32);
            v >>= 32;
        }
        Big(d)
    }
    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }
    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }
    fn bits(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as u64 - 1) * 32 + (32 - top.leading_zeros() as u64),
        }
    }
    fn bit(&self, i: u64) -> bool {
        let w = (i / 32) as usize;
        w < self.0.len() && (self.0[w] >> (i % 32)) & 1 == 1
    }
    /// Whether any bit below `i` is set.
    fn any_below(&self, i: u64) -> bool {
        let w = (i / 32) as usize;
        for (k, &x) in self.0.iter().enumerate() {
            if k < w && x != 0 {
                return true;
            }
            if k == w {
                let mask = (1u32 << (i % 32)).wrapping_sub(1);
                return x & mask != 0;
            }
        }
        false
    }
    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for x in self.0.iter_mut() {
            let v = *x as u64 * m as u64 + carry;
            *x = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }
    fn add_small(&mut self, a: u32) {
        let mut carry = a as u64;
        for x in self.0.iter_mut() {
            if carry == 0 {
                return;
            }
            let v = *x as u64 + carry;
            *x = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }
    fn shl(&self, n: u64) -> Big {
        if self.is_zero() {
            return self.clone();
        }
        let words = (n / 32) as usize;
        let bits = (n % 32) as u32;
        let mut d = vec![0u32; words];
        let mut carry = 0u32;
        for &x in &self.0 {
            if bits == 0 {
                d.push(x);
            } else {
                d.push((x << bits) | carry);
                carry = x >> (32 - bits);
            }
        }
        if carry != 0 {
            d.push(carry);
        }
        Big(d)
    }
    fn shr(&self, n: u64) -> Big {
        let words = (n / 32) as usize;
        if words >= self.0.len() {
            return Big(Vec::new());
        }
        let bits = (n % 32) as u32;
        let src = &self.0[words..];
        let mut d = Vec::with_capacity(src.len());
        for i in 0..src.len() {
            let lo = src[i] >> bits;
            let hi = if bits == 0 {
                0
            } else {
                src.get(i + 1).map_or(0, |&h| h << (32 - bits))
            };
            d.push(lo | hi);
        }
        let mut b = Big(d);
        b.trim();
        b
    }
    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }
    /// `self - o`, with `self >= o`.
    fn sub(&self, o: &Big) -> Big {
        let mut d = self.0.clone();
        let mut borrow = 0i64;
        for (i, x) in d.iter_mut().enumerate() {
            let v = *x as i64 - o.0.get(i).copied().unwrap_or(0) as i64 - borrow;
            if v < 0 {
                *x = (v + (1i64 << 32)) as u32;
                borrow = 1;
            } else {
                *x = v as u32;
                borrow = 0;
            }
        }
        let mut b = Big(d);
        b.trim();
        b
    }
    fn add(&self, o: &Big) -> Big {
        let n = self.0.len().max(o.0.len());
        let mut d = Vec::with_capacity(n + 1);
        let mut carry = 0u64;
        for i in 0..n {
            let v = self.0.get(i).copied().unwrap_or(0) as u64
                + o.0.get(i).copied().unwrap_or(0) as u64
                + carry;
            d.push(v as u32);
            carry = v >> 32;
        }
        if carry != 0 {
            d.push(carry as u32);
        }
        Big(d)
    }
    /// Divide by a small number in place, returning the remainder.
    fn div_small(&mut self, m: u32) -> u32 {
        let mut rem = 0u64;
        for x in self.0.iter_mut().rev() {
            let v = (rem << 32) | *x as u64;
            *x = (v / m as u64) as u32;
            rem = v % m as u64;
        }
        self.trim();
        rem as u32
    }
    fn pow10(n: u32) -> Big {
        let mut b = Big::from_u128(1);
        let mut left = n;
        while left >= 9 {
            b.mul_small(1_000_000_000);
            left -= 9;
        }
        b.mul_small(10u32.pow(left));
        b
    }
    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.div_small(1_000_000_000));
        }
        let mut s = chunks.pop().map_or(String::new(), |c| c.to_string());
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

/// A finite extended-precision value `(-1)^neg * mant * 2^exp`; `mant == 0` is zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Ld {
    neg: bool,
    mant: u64,
    exp: i64,
}

/// The exponent range of a normal x87 long double, for `mant * 2^exp` with a 64-bit `mant`.
const MAX_EXP: i64 = 16383 - 63;
const MIN_EXP: i64 = -16382 - 63;

/// Round the integer `n` times `2^shift` to a 64-bit mantissa (half to even; `sticky`: bits
/// already dropped below `n` were non-zero).
fn round(neg: bool, n: &Big, shift: i64, sticky: bool) -> Option<Ld> {
    let bits = n.bits();
    if bits == 0 {
        return Some(Ld {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let (mut mant, mut exp) = if bits <= 64 {
        let mut m = 0u64;
        for (i, &w) in n.0.iter().enumerate() {
            m |= (w as u64) << (32 * i);
        }
        (m << (64 - bits), shift - (64 - bits as i64))
    } else {
        let drop = bits - 64;
        let top = n.shr(drop);
        let mut m = 0u64;
        for (i, &w) in top.0.iter().enumerate() {
            m |= (w as u64) << (32 * i);
        }
        let half = n.bit(drop - 1);
        let rest = sticky || n.any_below(drop - 1);
        let mut e = shift + drop as i64;
        if half && (rest || m & 1 == 1) {
            match m.checked_add(1) {
                Some(v) => m = v,
                None => {
                    m = 1 << 63;
                    e += 1;
                }
            }
        }
        (m, e)
    };
    // With `bits <= 64`, `sticky` bits lie far below half an ulp: callers keep at least 66
    // significant bits whenever they drop any.
    let _ = sticky;
    if exp > MAX_EXP {
        return None;
    }
    if exp < MIN_EXP {
        // Below the normal range: Redis's strtold reports underflow (or a subnormal); keel
        // answers zero, which callers treat as an underflow.
        mant = 0;
        exp = 0;
    }
    Some(Ld { neg, mant, exp })
}

impl Ld {
    pub(crate) const ZERO: Ld = Ld {
        neg: false,
        mant: 0,
        exp: 0,
    };

    /// An `f64`, exactly (every double is a long double).
    pub(crate) fn from_f64(f: f64) -> Option<Ld> {
        if !f.is_finite() {
            return None;
        }
        let bits = f.to_bits();
        let neg = bits >> 63 == 1;
        let e = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1u64 << 52) - 1);
        let (m, e) = if e == 0 {
            (frac, -1074)
        } else {
            (frac | 1 << 52, e - 1075)
        };
        round(neg, &Big::from_u128(m as u128), e, false)
    }

    #[cfg(test)]
    pub(crate) fn from_i64(v: i64) -> Ld {
        round(v < 0, &Big::from_u128(v.unsigned_abs() as u128), 0, false).unwrap_or(Ld::ZERO)
    }

    /// `strtold` on a decimal number (`[+-]digits[.digits][e[+-]digits]`), correctly
    /// rounded. `None`: not such a number, or out of the long double range (Redis's
    /// `string2ld` refuses overflow and underflow to zero). Callers handle `inf`, hex and the
    /// syntax checks `strtold` shares with Rust's float grammar.
    pub(crate) fn parse_decimal(s: &str) -> Option<Ld> {
        let b = s.as_bytes();
        let mut i = 0;
        let neg = match b.first() {
            Some(b'-') => {
                i = 1;
                true
            }
            Some(b'+') => {
                i = 1;
                false
            }
            _ => false,
        };
        let mut digits = Big(Vec::new());
        let mut ndigits = 0i64; // significant digits kept
        let mut dexp: i64 = 0;
        let mut seen_digit = false;
        let mut point = false;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_digit() {
                seen_digit = true;
                if ndigits > 0 || c != b'0' {
                    digits.mul_small(10);
                    digits.add_small((c - b'0') as u32);
                    ndigits += 1;
                }
                if point {
                    dexp -= 1;
                }
            } else if c == b'.' && !point {
                point = true;
            } else {
                break;
            }
            i += 1;
        }
        if !seen_digit {
            return None;
        }
        if i < b.len() {
            if b[i] != b'e' && b[i] != b'E' {
                return None;
            }
            i += 1;
            let eneg = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            if i >= b.len() {
                return None;
            }
            let mut e: i64 = 0;
            while i < b.len() {
                if !b[i].is_ascii_digit() {
                    return None;
                }
                e = (e * 10 + (b[i] - b'0') as i64).min(1 << 40);
                i += 1;
            }
            dexp += if eneg { -e } else { e };
        }
        if digits.is_zero() {
            return Some(Ld {
                neg,
                mant: 0,
                exp: 0,
            });
        }
        // Magnitude in decimal: roughly 10^(ndigits + dexp).
        let mag = ndigits + dexp;
        if mag > 4940 {
            return None;
        }
        if mag < -4960 {
            return None;
        }
        if dexp >= 0 {
            let mut n = digits;
            let p = Big::pow10(dexp as u32);
            n = mul(&n, &p);
            return round(neg, &n, 0, false);
        }
        let p = Big::pow10((-dexp) as u32);
        // Scale so the quotient keeps at least 66 significant bits.
        let s = (66 + p.bits() as i64 - digits.bits() as i64).max(0) as u64 + 2;
        let num = digits.shl(s);
        let (q, r) = divmod(&num, &p);
        let ld = round(neg, &q, -(s as i64), !r.is_zero())?;
        if ld.mant == 0 {
            return None;
        }
        Some(ld)
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.mant == 0
    }

    /// `self + o`, correctly rounded; `None` on overflow (Redis: "would produce NaN or
    /// Infinity").
    pub(crate) fn add(self, o: Ld) -> Option<Ld> {
        if self.is_zero() {
            return Some(if o.is_zero() {
                Ld {
                    neg: self.neg && o.neg,
                    ..Ld::ZERO
                }
            } else {
                o
            });
        }
        if o.is_zero() {
            return Some(self);
        }
        let (hi, lo) = if self.exp >= o.exp {
            (self, o)
        } else {
            (o, self)
        };
        let diff = (hi.exp - lo.exp) as u64;
        if diff > 140 {
            // The smaller is far below half an ulp of the larger.
            return Some(hi);
        }
        let a = Big::from_u128(hi.mant as u128).shl(diff);
        let b = Big::from_u128(lo.mant as u128);
        let base = lo.exp;
        if hi.neg == lo.neg {
            return round(hi.neg, &a.add(&b), base, false);
        }
        match a.cmp(&b) {
            Ordering::Equal => Some(Ld::ZERO),
            Ordering::Greater => round(hi.neg, &a.sub(&b), base, false),
            Ordering::Less => round(lo.neg, &b.sub(&a), base, false),
        }
    }

    /// `printf("%.17Lf")`.
    pub(crate) fn format_fixed17(self) -> String {
        let digits = if self.mant == 0 {
            Big(Vec::new())
        } else {
            let mut x = Big::from_u128(self.mant as u128);
            x = mul(&x, &Big::pow10(17));
            if self.exp >= 0 {
                x.shl(self.exp as u64)
            } else {
                let sh = (-self.exp) as u64;
                let mut q = x.shr(sh);
                let half = x.bit(sh - 1);
                let rest = x.any_below(sh - 1);
                if half && (rest || q.bit(0)) {
                    q.add_small(1);
                }
                q
            }
        };
        let mut s = digits.to_decimal();
        while s.len() < 18 {
            s.insert(0, '0');
        }
        let (int, frac) = s.split_at(s.len() - 17);
        format!("{}{int}.{frac}", if self.neg { "-" } else { "" })
    }
}

fn mul(a: &Big, b: &Big) -> Big {
    let mut d = vec![0u32; a.0.len() + b.0.len() + 1];
    for (i, &x) in a.0.iter().enumerate() {
        let mut carry = 0u64;
        for (j, &y) in b.0.iter().enumerate() {
            let v = d[i + j] as u64 + x as u64 * y as u64 + carry;
            d[i + j] = v as u32;
            carry = v >> 32;
        }
        let mut k = i + b.0.len();
        while carry != 0 {
            let v = d[k] as u64 + carry;
            d[k] = v as u32;
            carry = v >> 32;
            k += 1;
        }
    }
    let mut r = Big(d);
    r.trim();
    r
}

/// Long division by shifting and subtracting (the quotients here have ~70 bits).
fn divmod(n: &Big, d: &Big) -> (Big, Big) {
    if n.cmp(d) == Ordering::Less {
        return (Big(Vec::new()), n.clone());
    }
    let shift = n.bits() - d.bits();
    let mut rem = n.clone();
    let mut q = Big(vec![0u32; (shift / 32 + 1) as usize]);
    for i in (0..=shift).rev() {
        let t = d.shl(i);
        if rem.cmp(&t) != Ordering::Less {
            rem = rem.sub(&t);
            q.0[(i / 32) as usize] |= 1 << (i % 32);
        }
    }
    q.trim();
    (q, rem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(v: Ld) -> String {
        let mut s = v.format_fixed17();
        let t = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(t);
        s
    }

    fn p(s: &str) -> Ld {
        Ld::parse_decimal(s).unwrap()
    }

    #[test]
    fn matches_redis_long_double_results() {
        // Expected strings recorded from redis-server 7.0.15's HINCRBYFLOAT.
        assert_eq!(human(p("0.1").add(p("0.2")).unwrap()), "0.3");
        assert_eq!(human(p("10.5").add(p("0.1")).unwrap()), "10.6");
        let k = p("100000.1");
        assert_eq!(human(k), "100000.10000000000000142");
        assert_eq!(
            human(p("100000.10000000000000142").add(p("1.1")).unwrap()),
            "100001.20000000000000284"
        );
        assert_eq!(human(p("1.23456789012345678")), "1.23456789012345678");
        assert_eq!(
            human(p("123456789.123456789")),
            "123456789.12345678899873747"
        );
        assert!(human(p("1e308")).starts_with("99999999999999999996685879655845645660560099847415567207797047994921734868838061872100126921888539320446747225054013223152134749593960583597420814430196418767959100019603190778663109604507106667939153395788938914560543563061268364901618630217086589253444881623791300855757318142424510452728255046343928578048"));
        assert_eq!(human(p("3000").add(p("-3000")).unwrap()), "0");
        assert_eq!(human(Ld::from_i64(-5)), "-5");
        assert_eq!(Ld::parse_decimal("1e5000"), None);
        assert_eq!(Ld::parse_decimal("1e-5000"), None);
        assert_eq!(Ld::parse_decimal("1e"), None);
        assert_eq!(Ld::parse_decimal("."), None);
    }
}
