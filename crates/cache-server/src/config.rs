//! Server settings: what memcached's command line sets, in one plain struct.

use std::net::IpAddr;

/// Settings of one cache server (memcached's flags in parentheses).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Addresses to listen on (`-l`); port (`-p`), 0 = pick a free one.
    pub listen: Vec<IpAddr>,
    pub port: u16,
    /// UDP port (`-U`); accepted for compatibility, UDP is not served (0 = off).
    pub udp_port: u16,
    /// Memory limit in bytes (`-m`, MiB).
    pub mem_limit: usize,
    /// Maximum simultaneous connections (`-c`).
    pub max_conns: usize,
    /// Worker threads (`-t`).
    pub threads: usize,
    /// Largest item in bytes (`-I`).
    pub item_size_max: usize,
    /// Verbosity (`-v`, `-vv`, `-vvv`). The server logs through `tracing`; the binary turns this
    /// count into its log filter ([`crate::PROTOCOL_TARGET`]).
    pub verbose: u8,
    /// Longest non-retrieval command line.
    pub max_line: usize,
    /// Version string reported by `version` / `stats`.
    pub version: String,
    /// The Redis protocol beside memcached (`--redis-port`); `None`: off.
    pub redis: Option<RedisSettings>,
}

/// The Redis side of the server (`keel cache --redis-port ...`), redis.conf's names in
/// parentheses. [`crate::redis`] serves it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Port on every `-l` address; 0: a free port (the same one on every address).
    pub port: u16,
    /// `requirepass`: every connection must `AUTH` first. `None`: no password.
    pub password: Option<String>,
    /// `maxmemory` in bytes (default: the `-m` limit); 0: no limit.
    pub maxmemory: u64,
    /// `maxmemory-policy`.
    pub policy: redis_store::Policy,
    /// `proto-max-bulk-len`.
    pub max_bulk_len: u64,
    /// `client-output-buffer-limit normal <hard> <soft> <seconds>`.
    pub obuf_normal: crate::redis::limits::ObufLimit,
    /// `client-output-buffer-limit pubsub <hard> <soft> <seconds>`.
    pub obuf_pubsub: crate::redis::limits::ObufLimit,
    /// `timeout`: close a client idle this many seconds (0: never).
    pub timeout_secs: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            port: 6379,
            password: None,
            maxmemory: 64 << 20,
            policy: redis_store::Policy::NoEviction,
            max_bulk_len: 512 * 1024 * 1024,
            obuf_normal: crate::redis::limits::ObufLimit::NORMAL,
            obuf_pubsub: crate::redis::limits::ObufLimit::PUBSUB,
            timeout_secs: 0,
        }
    }
}

// By hand, so that the password never reaches a log line.
impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("port", &self.port)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("maxmemory", &self.maxmemory)
            .field("policy", &self.policy)
            .field("max_bulk_len", &self.max_bulk_len)
            .field("obuf_normal", &self.obuf_normal)
            .field("obuf_pubsub", &self.obuf_pubsub)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// The version keel reports: numeric major ≥ 1 so libmemcached accepts it.
pub const VERSION: &str = concat!("1.6.18-keel-", env!("CARGO_PKG_VERSION"));

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: vec![IpAddr::from([127, 0, 0, 1])],
            port: 11211,
            udp_port: 0,
            mem_limit: 64 << 20,
            max_conns: 1024,
            threads: 4,
            item_size_max: 1 << 20,
            verbose: 0,
            max_line: 2048,
            version: VERSION.to_string(),
            redis: None,
        }
    }
}

impl Settings {
    pub fn limits(&self) -> memcache_proto::Limits {
        memcache_proto::Limits {
            item_size_max: self.item_size_max,
            max_line: self.max_line,
            ..Default::default()
        }
    }
}

/// Parse memcached's `-I` size syntax: a number of bytes with an optional `k`/`m` suffix
/// (case-insensitive). memcached accepts 1 KiB ..= 1 GiB.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1usize << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: usize = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number with an optional k/m suffix")
    })?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))?;
    if bytes < 1024 {
        return Err(format!("item size {s:?} is too small: at least 1k"));
    }
    if bytes > 1 << 30 {
        return Err(format!("item size {s:?} is too large: at most 1024m"));
    }
    Ok(bytes)
}
