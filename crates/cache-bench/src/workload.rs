//! What each connection asks for next: a random get/set mix over a keyspace for timed runs, or
//! a plain sequence of sets for filling a server. Randomness comes from a small xorshift generator
//! seeded per connection, so runs are reproducible and cost nothing measurable.

/// One request to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `get` of key number `n`.
    Get(u64),
    /// `set` of key number `n`.
    Set(u64),
}

/// xorshift64* (Vigna): fast, good enough for picking keys.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that nearby seeds give unrelated streams; never 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform number in `0..n` (`n > 0`).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// The request stream of one connection.
#[derive(Debug, Clone)]
pub enum Workload {
    /// Endless random mix: a get with probability `get_threshold / 2^64`, else a set; keys uniform
    /// in `0..keys`.
    Mix {
        rng: Rng,
        keys: u64,
        get_threshold: u64,
    },
    /// Sets of keys `next..end`, in order, then nothing.
    Fill { next: u64, end: u64 },
}

impl Workload {
    /// A random mix with the given share of gets (clamped to 0..=1).
    pub fn mix(seed: u64, keys: u64, get_ratio: f64) -> Self {
        let r = get_ratio.clamp(0.0, 1.0);
        let get_threshold = if r >= 1.0 {
            u64::MAX
        } else {
            (r * 2f64.powi(64)) as u64
        };
        Workload::Mix {
            rng: Rng::new(seed),
            keys: keys.max(1),
            get_threshold,
        }
    }

    /// The next request, or `None` once a fill is complete.
    #[inline]
    pub fn next_op(&mut self) -> Option<Op> {
        match self {
            Workload::Mix {
                rng,
                keys,
                get_threshold,
            } => {
                let is_get = *get_threshold == u64::MAX || rng.next_u64() < *get_threshold;
                let key = rng.below(*keys);
                Some(if is_get { Op::Get(key) } else { Op::Set(key) })
            }
            Workload::Fill { next, end } => {
                if *next >= *end {
                    return None;
                }
                *next += 1;
                Some(Op::Set(*next - 1))
            }
        }
    }
}

/// Splits `0..n` into `parts` contiguous ranges whose sizes differ by at most one.
pub fn split_range(n: u64, parts: usize) -> Vec<(u64, u64)> {
    let parts = parts.max(1) as u64;
    (0..parts)
        .map(|i| (n * i / parts, n * (i + 1) / parts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_respects_ratio_and_keyspace() {
        let mut w = Workload::mix(7, 1000, 0.9);
        let (mut gets, mut seen) = (0u32, vec![false; 1000]);
        for _ in 0..100_000 {
            match w.next_op().unwrap() {
                Op::Get(k) => {
                    gets += 1;
                    seen[k as usize] = true;
                }
                Op::Set(k) => seen[k as usize] = true,
            }
        }
        assert!((89_000..91_000).contains(&gets), "gets = {gets}");
        assert!(seen.iter().all(|&s| s), "every key is drawn");
        let mut all_gets = Workload::mix(1, 10, 1.0);
        assert!((0..1000).all(|_| matches!(all_gets.next_op(), Some(Op::Get(_)))));
        let mut all_sets = Workload::mix(1, 10, 0.0);
        assert!((0..1000).all(|_| matches!(all_sets.next_op(), Some(Op::Set(_)))));
    }

    #[test]
    fn fill_is_sequential_and_ends() {
        let mut w = Workload::Fill { next: 3, end: 6 };
        assert_eq!(w.next_op(), Some(Op::Set(3)));
        assert_eq!(w.next_op(), Some(Op::Set(4)));
        assert_eq!(w.next_op(), Some(Op::Set(5)));
        assert_eq!(w.next_op(), None);
    }

    #[test]
    fn split_covers_everything_once() {
        assert_eq!(split_range(10, 3), vec![(0, 3), (3, 6), (6, 10)]);
        assert_eq!(split_range(2, 4), vec![(0, 0), (0, 1), (1, 1), (1, 2)]);
        assert_eq!(split_range(5, 0), vec![(0, 5)]);
    }
}
