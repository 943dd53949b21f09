//! `client-output-buffer-limit` accounting (pure): when a client's pending output means it must
//! be disconnected, exactly as redis-server's `checkClientOutputBufferLimits` decides it, and the
//! parsing of redis.conf's memory values (`1gb`, `64mb`, `100k`).

/// One class's limits (`<hard> <soft> <soft-seconds>`; 0 turns a limit off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObufLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_secs: u64,
}

impl ObufLimit {
    /// Redis's default for normal clients: no limit.
    pub const NORMAL: ObufLimit = ObufLimit {
        hard: 0,
        soft: 0,
        soft_secs: 0,
    };
    /// Redis's default for pub/sub clients: 32mb hard, 8mb for 60 s.
    pub const PUBSUB: ObufLimit = ObufLimit {
        hard: 32 << 20,
        soft: 8 << 20,
        soft_secs: 60,
    };

    /// Whether a client with `used` bytes of pending output must be closed at `now_ms`.
    /// `soft_since_ms` is the client's "soft limit reached at" time (0: not reached), updated
    /// here: the soft limit must hold for longer than `soft_secs` before it counts.
    pub fn exceeded(&self, used: u64, soft_since_ms: &mut u64, now_ms: u64) -> bool {
        let hard = self.hard != 0 && used >= self.hard;
        let mut soft = self.soft != 0 && used >= self.soft;
        if soft {
            if *soft_since_ms == 0 {
                // The first time the soft limit is seen reached: start the clock.
                *soft_since_ms = now_ms.max(1);
                soft = false;
            } else if now_ms.saturating_sub(*soft_since_ms) <= self.soft_secs * 1000 {
                soft = false;
            }
        } else {
            *soft_since_ms = 0;
        }
        hard || soft
    }
}

/// Parse a memory value as redis.conf's `memtoull` does: digits with an optional unit (`k` =
/// 1000, `kb` = 1024, `m`, `mb`, `g`, `gb`; case-insensitive).
pub fn parse_memory(s: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(s).ok()?.to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// The client classes `client-output-buffer-limit` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObufClass {
    Normal,
    Replica,
    Pubsub,
}

/// Parse `client-output-buffer-limit`'s value: groups of `<class> <hard> <soft> <seconds>`.
pub fn parse_obuf_config(s: &[u8]) -> Option<Vec<(ObufClass, ObufLimit)>> {
    let s = std::str::from_utf8(s).ok()?;
    let words: Vec<&str> = s.split_ascii_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::new();
    for g in words.chunks(4) {
        let class = match g[0].to_ascii_lowercase().as_str() {
            "normal" => ObufClass::Normal,
            "slave" | "replica" => ObufClass::Replica,
            "pubsub" => ObufClass::Pubsub,
            _ => return None,
        };
        let hard = parse_memory(g[1].as_bytes())?;
        let soft = parse_memory(g[2].as_bytes())?;
        let soft_secs = g[3].parse::<u64>().ok()?;
        out.push((
            class,
            ObufLimit {
                hard,
                soft,
                soft_secs,
            },
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_limit_closes_at_once() {
        let l = ObufLimit::PUBSUB;
        let mut since = 0;
        assert!(!l.exceeded(1 << 20, &mut since, 1000));
        let mut since = 0;
        assert!(l.exceeded(32 << 20, &mut since, 1000));
    }

    #[test]
    fn soft_limit_needs_its_seconds() {
        let l = ObufLimit {
            hard: 0,
            soft: 100,
            soft_secs: 2,
        };
        let mut since = 0;
        assert!(!l.exceeded(100, &mut since, 10_000));
        assert_eq!(since, 10_000);
        assert!(!l.exceeded(150, &mut since, 12_000));
        assert!(l.exceeded(150, &mut since, 12_001));
        // Falling below resets the clock.
        assert!(!l.exceeded(99, &mut since, 12_002));
        assert_eq!(since, 0);
        assert!(!l.exceeded(100, &mut since, 20_000));
    }

    #[test]
    fn zero_means_unlimited() {
        let mut since = 0;
        assert!(!ObufLimit::NORMAL.exceeded(u64::MAX, &mut since, 1));
        assert_eq!(since, 0);
    }

    #[test]
    fn memory_values() {
        assert_eq!(parse_memory(b"0"), Some(0));
        assert_eq!(parse_memory(b"100"), Some(100));
        assert_eq!(parse_memory(b"1k"), Some(1000));
        assert_eq!(parse_memory(b"1KB"), Some(1024));
        assert_eq!(parse_memory(b"32mb"), Some(32 << 20));
        assert_eq!(parse_memory(b"2gb"), Some(2 << 30));
        assert_eq!(parse_memory(b"1x"), None);
        assert_eq!(parse_memory(b"mb"), None);
        assert_eq!(parse_memory(b"-1"), None);
        assert_eq!(parse_memory(b"99999999999999999999gb"), None);
    }

    #[test]
    fn obuf_config() {
        let v = parse_obuf_config(b"normal 0 0 0 slave 268435456 67108864 60 pubsub 32mb 8mb 60")
            .unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[2], (ObufClass::Pubsub, ObufLimit::PUBSUB));
        assert!(parse_obuf_config(b"normal 0 0").is_none());
        assert!(parse_obuf_config(b"other 0 0 0").is_none());
        assert!(parse_obuf_config(b"").is_none());
    }
}
