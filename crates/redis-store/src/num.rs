//! Redis's number formatting for `INCRBYFLOAT`: x86-64 `long double` arithmetic
//! (`strtold`, `+`, `snprintf("%.17Lf")` with trailing zeros stripped).

/// A `long double` value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LongDouble(f64);

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble(0.0);

    /// `string2ld`: the whole argument must be a number (no spaces; NaN refused).
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        let t = std::str::from_utf8(s).ok()?;
        if t.is_empty() || t.as_bytes()[0].is_ascii_whitespace() {
            return None;
        }
        let v: f64 = t.parse().ok()?;
        if v.is_nan() {
            return None;
        }
        Some(LongDouble(v))
    }

    pub fn plus(self, o: LongDouble) -> LongDouble {
        LongDouble(self.0 + o.0)
    }

    pub fn is_finite(self) -> bool {
        self.0.is_finite()
    }

    /// `ld2string(..., LD_STR_HUMAN)`.
    pub fn to_human(self) -> String {
        let mut s = format!("{:.17}", self.0);
        if s.contains('.') {
            while s.ends_with('0') {
                s.pop();
            }
            if s.ends_with('.') {
                s.pop();
            }
        }
        if s == "-0" {
            s = "0".into();
        }
        s
    }
}
