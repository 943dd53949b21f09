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
