//! A fixed-size log-linear latency histogram (in the spirit of HdrHistogram): values are
//! nanoseconds, recorded exactly below 128 and with a relative error below 1/128 (< 0.8 %) above,
//! over the whole `u64` range, in 7,424 counters. Recording is a few instructions and never
//! allocates; histograms of several threads are merged by adding counters.

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Buckets 0..2*SUB are exact; then one group of SUB buckets per further power of two.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Latency histogram; see the module documentation.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("min", &self.min())
            .field("max", &self.max)
            .finish()
    }
}

#[inline]
fn index(v: u64) -> usize {
    if v < (2 * SUB) as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= SUB_BITS + 1
    let shift = e - SUB_BITS;
    let m = (v >> shift) as usize; // in [SUB, 2*SUB)
    (shift as usize + 1) * SUB + (m - SUB)
}

/// Smallest and largest value that fall in bucket `i`.
#[inline]
fn bounds(i: usize) -> (u64, u64) {
    if i < 2 * SUB {
        return (i as u64, i as u64);
    }
    let shift = (i / SUB - 1) as u32;
    let m = (SUB + i % SUB) as u64;
    let low = m << shift;
    (low, low + ((1u64 << shift) - 1))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.record_n(v, 1);
    }

    /// Records `n` occurrences of one value.
    #[inline]
    pub fn record_n(&mut self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.counts[index(v)] += n;
        self.total += n;
        self.sum += v as u128 * n as u128;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Forgets every recorded value.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.sum = 0;
        self.min = u64::MAX;
        self.max = 0;
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Smallest recorded value (0 if empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// Largest recorded value (0 if empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean of the recorded values (0 if empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the smallest `v` such that at least `q` of the
    /// recorded values are `<= v`, reported as the highest value of its bucket (so never below the
    /// true quantile, and at most 0.8 % above it), clamped to the recorded min and max.
    /// 0 if empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == 1 {
            return self.min;
        }
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bounds(i).1.clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        let mut prev_high = None::<u64>;
        for i in 0..BUCKETS {
            let (lo, hi) = bounds(i);
            assert!(lo <= hi);
            if let Some(p) = prev_high {
                assert_eq!(lo, p + 1, "gap before bucket {i}");
            }
            assert_eq!(index(lo), i);
            assert_eq!(index(hi), i);
            prev_high = Some(hi);
        }
        assert_eq!(prev_high, Some(u64::MAX));
    }

    #[test]
    fn relative_error_is_bounded() {
        for v in [
            1u64,
            127,
            255,
            256,
            1000,
            12_345,
            999_999,
            1 << 40,
            u64::MAX / 3,
        ] {
            let (lo, hi) = bounds(index(v));
            assert!(lo <= v && v <= hi);
            assert!(
                (hi - lo) as f64 <= v as f64 / SUB as f64,
                "bucket of {v} too wide: {lo}..{hi}"
            );
        }
    }

    #[test]
    fn quantiles_of_uniform_values() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000); // 1 µs .. 10 ms
        }
        assert_eq!(h.len(), 10_000);
        assert_eq!(h.min(), 1000);
        assert_eq!(h.max(), 10_000_000);
        for (q, exact) in [
            (0.5, 5_000_000u64),
            (0.99, 9_900_000),
            (0.999, 9_990_000),
            (1.0, 10_000_000),
        ] {
            let got = h.quantile(q);
            assert!(
                got >= exact && got as f64 <= exact as f64 * (1.0 + 1.0 / 128.0),
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.quantile(0.0), 1000);
        assert!((h.mean() - 5_000_500.0).abs() < 1e-6);
    }

    #[test]
    fn quantiles_of_small_exact_values() {
        let mut h = Histogram::new();
        h.record_n(10, 90);
        h.record_n(200, 9);
        h.record(100_000);
        assert_eq!(h.quantile(0.5), 10);
        assert_eq!(h.quantile(0.9), 10);
        assert_eq!(h.quantile(0.91), 200);
        assert_eq!(h.quantile(0.99), 200);
        assert_eq!(h.quantile(0.999), 100_000);
    }

    #[test]
    fn merge_and_clear() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(5);
        b.record(7);
        b.record(1_000_000);
        a.merge(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.min(), 5);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(a.quantile(0.5), 7);
        a.clear();
        assert!(a.is_empty());
        assert_eq!(a.quantile(0.99), 0);
        assert_eq!(a.min(), 0);
    }
}
