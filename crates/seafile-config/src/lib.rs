//! Seafile's database and cache settings, written from keel's cluster description.
//!
//! Seafile reads the same endpoints (a MySQL server, and a Redis server (Seafile 13's default)
//! or a memcached server (Seafile 11/12)) from several files, each parsed by a different component:
//!
//! | file | read by | parser |
//! | --- | --- | --- |
//! | `seafile.conf` `[database]`, `[redis]` or `[memcached]` | seaf-server (C), seafevents, seafobj, seahub (Python) | GLib's `GKeyFile`; Python's `configparser.ConfigParser(inline_comment_prefixes=('#', ';'))` with `%` interpolation |
//! | `seafevents.conf` `[REDIS]` | seafevents | `configparser` |
//! | `ccnet.conf` `[Database]` (Seafile 11 and earlier) | seaf-server, seahub | the same |
//! | `seahub_settings.py` `DATABASES`, `CACHES` | seahub (Django) | Python |
//! | `.env` (Seafile 12/13) | docker compose, seafile.sh, seafevents | compose's `.env` rules, `sh` |
//!
//! [`resolve`] picks the endpoints for one app server: the database is reached through a keel
//! proxy (which sends every connection to the cluster's one writer) and the cache is one keel
//! cache node, by Redis (the default when the description serves Redis) or by memcached
//! (every cache node serves every key, so one address is right, and no client-side
//! distribution is configured). The renderers ([`seafile_conf`], [`seafevents_conf`],
//! [`ccnet_conf`], [`seahub_settings`], [`env_file`]) only format; everything that could make a
//! file mean something else than intended (a password with `%`, a leading `#`, whitespace) is
//! refused in [`resolve`], so every printed string parses the way Seafile parses it.
//!
//! seahub's `CACHES` gets `LOCATION = 'redis://:PASSWORD@HOST:PORT/0'` (the password
//! percent-encoded, see [`redis_url`]): with the password in the user part
//! (`redis://PASSWORD@HOST:PORT`, the form seahub 13 builds) redis-py 6.2 sends
//! `AUTH PASSWORD ""` (and 8.x `HELLO 3 AUTH PASSWORD ""`), a user name with an empty password,
//! which a password-protected Redis refuses.
//!
//! The libmemcached option string must *start* with `--SERVER=`: one of Seafile's Python parts
//! takes its server from `re.match(r'--SERVER\s*=\s*(\S+)', options)` (older releases
//! `re.match(r'--SERVER\s*=\s*(\d+\.\d+\.\d+\.\d+):(\d+)', …)`, i.e. an IPv4 literal) and
//! silently falls back to `localhost:11211` when that does not match. [`first_server`] and
//! [`first_server_ipv4`] are those two rules.
//!
//! [`init_sql`] is the SQL of `keel db init-seafile`: Seafile's three databases (utf8mb4) and the
//! application user with `ALL PRIVILEGES` on exactly those three and nothing global;
//! [`check_grants`] reads `SHOW GRANTS` back and names anything beyond that.
#![forbid(unsafe_code)]

use cluster_config::{join_host_port, ClusterConfig, ConfigError};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// What can stop Seafile's configuration from being written.
#[derive(Debug, thiserror::Error)]
pub enum SeafileError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{what}: {value:?} is not HOST:PORT (an IPv6 address goes in brackets: [::1]:3306)")]
    BadEndpoint { what: &'static str, value: String },
    #[error("give --node NAME (a node of the cluster description), or both --proxy and --cache")]
    NoTarget,
    #[error(
        "the cluster description disables the cache ([cache] enabled = false): give --cache HOST:PORT"
    )]
    NoCache,
    #[error(
        "the cluster description does not serve Redis ([cache] redis = false or enabled = false): \
         give --cache memcached, or --redis HOST:PORT"
    )]
    NoRedis,
    #[error("--redis HOST:PORT and a memcached cache (--cache memcached or --cache HOST:PORT) exclude each other")]
    RedisAndMemcached,
    #[error("the Redis password cannot be written into Seafile's configuration: {0}")]
    RedisPassword(String),
    #[error("the cache address {0} is IPv6: Seafile's memcached option string is read by components that expect host:port without brackets; give --cache with an IPv4 address")]
    Ipv6Cache(String),
    #[error("users.app password cannot be written into Seafile's configuration: {0}")]
    Password(String),
    #[error(
        "{what}: {name:?} is not a usable database name (letters, digits, '_' and '-', at most 64)"
    )]
    BadDatabase { what: &'static str, name: String },
    #[error("internal check failed: {0}")]
    SelfCheck(String),
}

/// A `host:port` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.to_owned(),
            port,
        }
    }

    /// Parses `host:port` or `[v6]:port`. `what` names the option in the error.
    pub fn parse(what: &'static str, s: &str) -> Result<Endpoint, SeafileError> {
        let bad = || SeafileError::BadEndpoint {
            what,
            value: s.to_owned(),
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            (h, p)
        } else {
            let (h, p) = s.rsplit_once(':').ok_or_else(bad)?;
            if h.contains(':') {
                return Err(bad());
            }
            (h, p)
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if port == 0 || !host_ok {
            return Err(bad());
        }
        Ok(Endpoint::new(host, port))
    }

    fn is_ipv6(&self) -> bool {
        self.host.contains(':')
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join_host_port(&self.host, self.port))
    }
}

/// The names of Seafile's three databases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbNames {
    pub ccnet: String,
    pub seafile: String,
    pub seahub: String,
}

impl Default for DbNames {
    fn default() -> Self {
        let [c, s, h] = cluster_config::SEAFILE_DATABASES;
        DbNames {
            ccnet: c.into(),
            seafile: s.into(),
            seahub: h.into(),
        }
    }
}

impl DbNames {
    /// The three names, in the order ccnet, seafile, seahub.
    pub fn all(&self) -> [&str; 3] {
        [&self.ccnet, &self.seafile, &self.seahub]
    }

    fn validate(&self) -> Result<(), SeafileError> {
        for (what, name) in [
            ("ccnet database", &self.ccnet),
            ("seafile database", &self.seafile),
            ("seahub database", &self.seahub),
        ] {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(SeafileError::BadDatabase {
                    what,
                    name: name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// What the admin asked for: a node of the description (its proxy and cache), optionally with
/// the proxy or the cache replaced by another endpoint.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    /// The node whose proxy and cache Seafile uses: this app server's own node in layout (a), a
    /// database node in layout (b).
    pub node: Option<String>,
    /// Replaces the node's proxy (e.g. a `keel db-proxy` running on an app server that is not in
    /// the description).
    pub proxy: Option<Endpoint>,
    /// Replaces the node's memcached endpoint (and selects memcached).
    pub cache: Option<Endpoint>,
    /// Redis or memcached; `None`: memcached when `cache` is given, else Redis when the
    /// description serves it (or `redis` is given), else memcached.
    pub provider: Option<CacheProvider>,
    /// Replaces the node's Redis endpoint (and selects Redis).
    pub redis: Option<Endpoint>,
    pub databases: DbNames,
}

/// Which cache Seafile is configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheProvider {
    /// Seafile 13's default (`CACHE_PROVIDER=redis`); needed by its metadata server, AI and
    /// distributed indexing.
    Redis,
    /// Seafile 11/12 (`CACHE_PROVIDER=memcached`, `[memcached]`, `PyLibMCCache`).
    Memcached,
}

/// Where Seafile connects for Redis, and with which password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub endpoint: Endpoint,
    /// `None`: the Redis runs without a password.
    pub password: Option<String>,
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTarget")
            .field("endpoint", &self.endpoint)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Everything Seafile needs to reach the tier.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// The node chosen with `--node`, if any.
    pub node: Option<String>,
    /// Where Seafile connects for SQL (a keel proxy).
    pub database: Endpoint,
    /// Where Seafile connects for its cache (a keel cache): the memcached endpoint, or with
    /// `redis` the Redis endpoint (the same as `redis.endpoint`).
    pub cache: Endpoint,
    /// Where Seafile connects for Redis: `Some` exactly when Seafile is configured for Redis.
    pub redis: Option<RedisTarget>,
    pub user: String,
    pub password: String,
    pub databases: DbNames,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("node", &self.node)
            .field("database", &self.database)
            .field("cache", &self.cache)
            .field("redis", &self.redis)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("databases", &self.databases)
            .finish()
    }
}

/// A resolved target and the warnings an admin should read (printed as comments and on stderr).
#[derive(Debug)]
pub struct Resolved {
    pub target: Target,
    pub warnings: Vec<String>,
}

/// What replaces the password with `--redact`.
pub const REDACTED: &str = "********";

/// Picks the endpoints for one app server and reads the app user's password from the
/// description's password source.
pub fn resolve(cfg: &ClusterConfig, choice: &Choice) -> Result<Resolved, SeafileError> {
    choice.databases.validate()?;
    let node = match &choice.node {
        Some(name) => Some(cfg.node(name)?),
        None => None,
    };
    let mut warnings = Vec::new();
    let database = match (&choice.proxy, node) {
        (Some(p), _) => p.clone(),
        (None, Some(n)) => Endpoint::new(&n.address, n.proxy_port),
        (None, None) => return Err(SeafileError::NoTarget),
    };
    let provider = match (choice.provider, &choice.cache, &choice.redis) {
        (Some(CacheProvider::Memcached), _, Some(_)) | (None, Some(_), Some(_)) => {
            return Err(SeafileError::RedisAndMemcached)
        }
        (Some(p), _, _) => p,
        (None, Some(_), None) => CacheProvider::Memcached,
        (None, None, Some(_)) => CacheProvider::Redis,
        (None, None, None) if cfg.cache.redis_enabled() => CacheProvider::Redis,
        (None, None, None) => CacheProvider::Memcached,
    };
    let redis = match provider {
        CacheProvider::Memcached => None,
        CacheProvider::Redis => {
            let endpoint = match (&choice.redis, node) {
                (Some(r), _) => r.clone(),
                (None, Some(n)) => {
                    if !cfg.cache.redis_enabled() {
                        return Err(SeafileError::NoRedis);
                    }
                    Endpoint::new(&n.address, n.redis_port)
                }
                (None, None) => return Err(SeafileError::NoTarget),
            };
            let password = cfg.redis_password()?;
            if let Some(p) = &password {
                check_password(p).map_err(SeafileError::RedisPassword)?;
            }
            Some(RedisTarget { endpoint, password })
        }
    };
    let cache = match (&redis, &choice.cache, node) {
        (Some(r), _, _) => r.endpoint.clone(),
        (None, Some(c), _) => c.clone(),
        (None, None, Some(n)) => {
            if !cfg.cache.enabled {
                return Err(SeafileError::NoCache);
            }
            Endpoint::new(&n.address, n.cache_port)
        }
        (None, None, None) => return Err(SeafileError::NoTarget),
    };
    let overridden = match provider {
        CacheProvider::Memcached => choice.cache.is_some(),
        CacheProvider::Redis => choice.redis.is_some(),
    };
    if !overridden && !cfg.cache.clustered() {
        let flag = match provider {
            CacheProvider::Memcached => "--cache",
            CacheProvider::Redis => "--redis",
        };
        warnings.push(format!(
            "cache.mode = {:?}: the nodes' caches do not share data, so every app server must use \
             the same cache (give them all the same {flag} HOST:PORT)",
            cfg.cache.mode
        ));
    }
    if provider == CacheProvider::Memcached && cache.is_ipv6() {
        return Err(SeafileError::Ipv6Cache(cache.to_string()));
    }
    if provider == CacheProvider::Memcached && cache.host.parse::<Ipv4Addr>().is_err() {
        warnings.push(format!(
            "the cache host {:?} is not an IPv4 address: Seafile releases whose seafevents reads \
             `--SERVER=` with an IPv4-only pattern fall back to localhost:11211; prefer --cache IP:PORT",
            cache.host
        ));
    }
    let password = cfg.app_password()?;
    check_password(&password).map_err(SeafileError::Password)?;

    let app = &cfg.users.app;
    if let (Some(n), None) = (node, &choice.proxy) {
        // The proxy forwards at the TCP level: MariaDB sees the proxy's host, not Seafile's.
        if let Some(false) = host_pattern_matches(&app.host, &n.address) {
            warnings.push(format!(
                "users.app.host '{}' does not match {}, the address {}'s proxy connects to MariaDB \
                 from: MariaDB will refuse Seafile's logins; widen users.app.host or run a proxy on \
                 the app server (--proxy)",
                app.host, n.address, n.name
            ));
        }
    }
    for db in choice.databases.all() {
        if !app.databases.iter().any(|d| d == db) {
            warnings.push(format!(
                "users.app.databases does not list {db}: the agents will not create or grant it; \
                 run `keel db init-seafile`"
            ));
        }
    }
    let target = Target {
        node: node.map(|n| n.name.clone()),
        database,
        cache,
        redis,
        user: app.name.clone(),
        password,
        databases: choice.databases.clone(),
    };
    self_check(&target)?;
    Ok(Resolved { target, warnings })
}

/// Refuses passwords that some Seafile parser would read differently than written: whitespace
/// (trimmed by GKeyFile and configparser), `%` (configparser's interpolation raises), a leading
/// `#`/`;` (configparser's inline comments after `= `), quotes, backslashes, control characters.
pub fn check_password(pw: &str) -> Result<(), String> {
    if pw.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = pw
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '%' | '\'' | '"' | '\\' | '`'))
    {
        return Err(format!(
            "it contains {c:?}; Seafile's configparser/GKeyFile/.env readers would change it \
             (avoid whitespace, % ' \" ` \\)"
        ));
    }
    if pw.starts_with(['#', ';']) {
        return Err(
            "it starts with '#' or ';', which Seafile's configparser reads as a comment".into(),
        );
    }
    Ok(())
}

/// MySQL's host pattern (`%` any run, `_` one character, case-insensitive) against an address.
/// `None` when the pattern is of a form this does not evaluate (netmask, a name to resolve).
pub fn host_pattern_matches(pattern: &str, addr: &str) -> Option<bool> {
    if pattern.contains('/') {
        return None;
    }
    let addr_is_ip = addr.parse::<IpAddr>().is_ok();
    let pattern_is_literal_name = !pattern.contains(['%', '_'])
        && pattern.parse::<IpAddr>().is_err()
        && pattern != "localhost";
    if addr_is_ip && pattern_is_literal_name {
        return None; // a host name: MariaDB resolves it
    }
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'%'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some(b'_'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    Some(m(pattern.as_bytes(), addr.as_bytes()))
}

/// The libmemcached option string for one server. Starts with `--SERVER=` (see the crate doc).
pub fn memcached_options(cache: &Endpoint) -> String {
    format!("--SERVER={cache} --POOL-MIN=10 --POOL-MAX=100")
}

/// seafevents' reading of a memcached option string: `re.match(r'--SERVER\s*=\s*(\S+)', s)`,
/// i.e. only at the very start. Returns the `host:port` it would connect to.
pub fn first_server(options: &str) -> Option<&str> {
    let rest = options.strip_prefix("--SERVER")?;
    let rest = rest.trim_start_matches(is_py_space).strip_prefix('=')?;
    let rest = rest.trim_start_matches(is_py_space);
    let end = rest.find(is_py_space).unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The older rule: `re.match(r'--SERVER\s*=\s*(\d+\.\d+\.\d+\.\d+):(\d+)', s)`.
pub fn first_server_ipv4(options: &str) -> Option<(String, u16)> {
    let server = first_server(options)?;
    let (host, port) = server.split_once(':')?;
    let dotted = host.split('.').count() == 4
        && host
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let digits: String = port.chars().take_while(|c| c.is_ascii_digit()).collect();
    if !dotted || digits.is_empty() {
        return None;
    }
    Some((host.to_owned(), digits.parse().ok()?))
}

fn is_py_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Confirms that what will be printed reads back as the target (the first-`--SERVER=` rule).
pub fn self_check(t: &Target) -> Result<(), SeafileError> {
    if t.redis.is_some() {
        return Ok(());
    }
    let opts = memcached_options(&t.cache);
    let want = t.cache.to_string();
    if first_server(&opts) != Some(want.as_str()) {
        return Err(SeafileError::SelfCheck(format!(
            "{opts:?} does not read back as {want}"
        )));
    }
    Ok(())
}

fn pw(t: &Target, redact: bool) -> &str {
    if redact {
        REDACTED
    } else {
        &t.password
    }
}

/// The `[database]` section of `seafile.conf`, then `[redis]` (Redis) or `[memcached]`.
pub fn seafile_conf(t: &Target, redact: bool) -> String {
    let mut out = format!(
        "[database]\n\
         type = mysql\n\
         host = {host}\n\
         port = {port}\n\
         user = {user}\n\
         password = {pw}\n\
         db_name = {db}\n\
         connection_charset = utf8\n\
         \n",
        host = t.database.host,
        port = t.database.port,
        user = t.user,
        pw = pw(t, redact),
        db = t.databases.seafile,
    );
    match &t.redis {
        // seafobj and seaf-server read these names (seafobj: `redis_password`, default
        // `max_connections` 20 there, 100 in seaf-server; 100 like Seafile 13's .env default).
        Some(r) => {
            out += &format!(
                "[redis]\nredis_host = {}\nredis_port = {}\nmax_connections = 100\n",
                r.endpoint.host, r.endpoint.port
            );
            if let Some(p) = redis_pw(r, redact) {
                out += &format!("redis_password = {p}\n");
            }
        }
        None => {
            out += &format!(
                "[memcached]\nmemcached_options = {}\n",
                memcached_options(&t.cache)
            );
        }
    }
    out
}

/// The `[REDIS]` section of `seafevents.conf` (seafevents connects to Redis for its queues,
/// pub/sub and locks). Empty when Seafile is configured for memcached.
pub fn seafevents_conf(t: &Target, redact: bool) -> String {
    let Some(r) = &t.redis else {
        return String::new();
    };
    let mut out = format!(
        "[REDIS]\nserver = {}\nport = {}\n",
        r.endpoint.host, r.endpoint.port
    );
    if let Some(p) = redis_pw(r, redact) {
        out += &format!("password = {p}\n");
    }
    out
}

fn redis_pw(r: &RedisTarget, redact: bool) -> Option<&str> {
    r.password
        .as_deref()
        .map(|p| if redact { REDACTED } else { p })
}

/// `%XX` for every byte outside RFC 3986's unreserved set, so a password reads back through
/// `urllib.parse.unquote` (what redis-py applies) unchanged, and `,`/`;` (Django splits
/// `LOCATION` on them) never appear.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The URL of Django's `RedisCache` `LOCATION`: `redis://:PASSWORD@HOST:PORT/0` (the password
/// in the URL's password part, empty user name = Redis's `default` user), or
/// `redis://HOST:PORT/0` without a password. Never the user-part form (see the crate doc).
pub fn redis_url(r: &RedisTarget, redact: bool) -> String {
    match redis_pw(r, redact) {
        // Redacted: the placeholder as it is, so the screen shows what was hidden.
        Some(p) if redact => format!("redis://:{p}@{}/0", r.endpoint),
        Some(p) => format!("redis://:{}@{}/0", percent_encode(p), r.endpoint),
        None => format!("redis://{}/0", r.endpoint),
    }
}

/// The `[Database]` section of `ccnet.conf` (Seafile 11 and earlier; 12+ takes the ccnet
/// database from `.env`).
pub fn ccnet_conf(t: &Target, redact: bool) -> String {
    format!(
        "[Database]\n\
         ENGINE = mysql\n\
         HOST = {host}\n\
         PORT = {port}\n\
         USER = {user}\n\
         PASSWD = {pw}\n\
         DB = {db}\n\
         CONNECTION_CHARSET = utf8\n",
        host = t.database.host,
        port = t.database.port,
        user = t.user,
        pw = pw(t, redact),
        db = t.databases.ccnet,
    )
}

/// A Python string literal (single quotes, escapes for `\`, `'` and control characters).
pub fn py_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `DATABASES`, `CACHES` (Django's `RedisCache`, or `PyLibMCCache` for memcached) and
/// `COMPRESS_CACHE_BACKEND` of `seahub_settings.py`.
pub fn seahub_settings(t: &Target, redact: bool) -> String {
    let (backend, loc) = match &t.redis {
        Some(r) => (
            "django.core.cache.backends.redis.RedisCache",
            redis_url(r, redact),
        ),
        None => ("django_pylibmc.memcached.PyLibMCCache", t.cache.to_string()),
    };
    format!(
        "DATABASES = {{\n\
        \x20   'default': {{\n\
        \x20       'ENGINE': 'django.db.backends.mysql',\n\
        \x20       'NAME': {name},\n\
        \x20       'USER': {user},\n\
        \x20       'PASSWORD': {pw},\n\
        \x20       'HOST': {host},\n\
        \x20       'PORT': {port},\n\
        \x20       'OPTIONS': {{'charset': 'utf8mb4'}},\n\
        \x20   }},\n\
        }}\n\
        \n\
        CACHES = {{\n\
        \x20   'default': {{\n\
        \x20       'BACKEND': {backend},\n\
        \x20       'LOCATION': {loc},\n\
        \x20   }},\n\
        \x20   'locmem': {{\n\
        \x20       'BACKEND': 'django.core.cache.backends.locmem.LocMemCache',\n\
        \x20   }},\n\
        }}\n\
        COMPRESS_CACHE_BACKEND = 'locmem'\n",
        name = py_str(&t.databases.seahub),
        user = py_str(&t.user),
        pw = py_str(pw(t, redact)),
        host = py_str(&t.database.host),
        port = py_str(&t.database.port.to_string()),
        backend = py_str(backend),
        loc = py_str(&loc),
    )
}

/// A `.env` value: bare when it holds only characters no reader treats specially, else in
/// single quotes (literal for docker compose, `sh` and systemd alike). Values never contain `'`
/// ([`check_password`] and [`Endpoint::parse`] refuse it).
pub fn env_value(s: &str) -> String {
    let bare = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '.' | ',' | ':' | '/' | '@' | '+' | '=' | '-')
        });
    if bare {
        s.to_owned()
    } else {
        format!("'{s}'")
    }
}

/// Seafile 12/13's `.env` lines for the cache (`CACHE_PROVIDER=redis` and `REDIS_*`, or
/// `CACHE_PROVIDER=memcached` and `MEMCACHED_*`) and the database. An empty `REDIS_PASSWORD=`
/// (Seafile's default) when the Redis has no password.
pub fn env_file(t: &Target, redact: bool) -> String {
    let mut lines = match &t.redis {
        Some(r) => vec![
            ("CACHE_PROVIDER", "redis".to_owned()),
            ("REDIS_HOST", r.endpoint.host.clone()),
            ("REDIS_PORT", r.endpoint.port.to_string()),
            (
                "REDIS_PASSWORD",
                redis_pw(r, redact).unwrap_or_default().to_owned(),
            ),
        ],
        None => vec![
            ("CACHE_PROVIDER", "memcached".to_owned()),
            ("MEMCACHED_HOST", t.cache.host.clone()),
            ("MEMCACHED_PORT", t.cache.port.to_string()),
        ],
    };
    lines.extend([
        ("SEAFILE_MYSQL_DB_HOST", t.database.host.clone()),
        ("SEAFILE_MYSQL_DB_PORT", t.database.port.to_string()),
        ("SEAFILE_MYSQL_DB_USER", t.user.clone()),
        ("SEAFILE_MYSQL_DB_PASSWORD", pw(t, redact).to_owned()),
        ("SEAFILE_MYSQL_DB_CCNET_DB_NAME", t.databases.ccnet.clone()),
        (
            "SEAFILE_MYSQL_DB_SEAFILE_DB_NAME",
            t.databases.seafile.clone(),
        ),
        (
            "SEAFILE_MYSQL_DB_SEAHUB_DB_NAME",
            t.databases.seahub.clone(),
        ),
    ]);
    lines
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                format!("{k}=\n")
            } else {
                format!("{k}={}\n", env_value(v))
            }
        })
        .collect()
}

/// `'name'@'host'` of the app user.
pub fn app_account(cfg: &ClusterConfig) -> String {
    format!("'{}'@'{}'", cfg.users.app.name, cfg.users.app.host)
}

/// The SQL of `keel db init-seafile`: the three databases (utf8mb4, kept as they are when they
/// exist), the app user (created, or its password reset to the description's), `ALL PRIVILEGES`
/// on each of the three databases and nothing else. Idempotent; ends with `SHOW GRANTS` for
/// [`check_grants`] and the databases' character sets for [`check_charsets`].
pub fn init_sql(cfg: &ClusterConfig, dbs: &DbNames) -> Result<String, SeafileError> {
    dbs.validate()?;
    let pw = cfg.app_password()?;
    let a = app_account(cfg);
    let mut sql = String::new();
    for db in dbs.all() {
        sql += &format!("CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4;\n");
    }
    sql += &format!("CREATE USER IF NOT EXISTS {a} IDENTIFIED BY '{pw}';\n");
    sql += &format!("ALTER USER {a} IDENTIFIED BY '{pw}';\n");
    for db in dbs.all() {
        sql += &format!("GRANT ALL PRIVILEGES ON `{db}`.* TO {a};\n");
    }
    sql += &format!("SHOW GRANTS FOR {a};\n");
    sql += &format!(
        "SELECT CONCAT('charset ', SCHEMA_NAME, ' ', DEFAULT_CHARACTER_SET_NAME) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ({});\n",
        dbs.all().map(|d| format!("'{d}'")).join(", ")
    );
    Ok(sql)
}

/// One grant beyond what Seafile needs, and the statement that takes it away (none for a role
/// or proxy grant that this does not undo by itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraGrant {
    pub grant: String,
    pub revoke: Option<String>,
}

/// The app user's grants compared with what Seafile needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantReport {
    /// Databases with `ALL PRIVILEGES`.
    pub granted: Vec<String>,
    /// Seafile databases without `ALL PRIVILEGES`.
    pub missing: Vec<String>,
    pub extra: Vec<ExtraGrant>,
}

impl GrantReport {
    pub fn exact(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

fn unquote_ident(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix('`')
        .and_then(|x| x.strip_suffix('`'))
        .unwrap_or(s);
    // `ccnet\_db` (an escaped wildcard) names the same database.
    s.replace("\\_", "_").replace("\\%", "%")
}

/// Reads `SHOW GRANTS` lines (as printed by `mariadb -N -B`, backslashes doubled) and compares
/// them with `ALL PRIVILEGES` on each of `dbs` plus the baseline `USAGE ON *.*`.
pub fn check_grants(show_grants: &str, dbs: &DbNames) -> GrantReport {
    let mut r = GrantReport::default();
    for line in show_grants.lines() {
        let line = line.trim().replace("\\\\", "\\");
        let Some(body) = line.strip_prefix("GRANT ") else {
            continue;
        };
        let with_grant = body.ends_with(" WITH GRANT OPTION");
        let Some((privs, rest)) = body.split_once(" ON ") else {
            // A role: GRANT `role` TO `user`@`host`
            let revoke = body
                .split_once(" TO ")
                .map(|(role, acct)| format!("REVOKE {role} FROM {}", acct.trim()));
            r.extra.push(ExtraGrant {
                grant: line.clone(),
                revoke,
            });
            continue;
        };
        let Some((obj, acct_rest)) = rest.split_once(" TO ") else {
            continue;
        };
        let acct = account_of(acct_rest);
        let privs = privs.trim();
        let obj = obj.trim();
        if privs == "USAGE" && obj == "*.*" {
            continue;
        }
        if privs == "PROXY" {
            r.extra.push(ExtraGrant {
                grant: line.clone(),
                revoke: Some(format!("REVOKE PROXY ON {obj} FROM {acct}")),
            });
            continue;
        }
        let db = obj
            .strip_suffix(".*")
            .map(unquote_ident)
            .filter(|d| dbs.all().contains(&d.as_str()));
        match db {
            Some(d) if privs == "ALL PRIVILEGES" => {
                if !r.granted.contains(&d) {
                    r.granted.push(d);
                }
                if with_grant {
                    r.extra.push(ExtraGrant {
                        grant: line.clone(),
                        revoke: Some(format!("REVOKE GRANT OPTION ON {obj} FROM {acct}")),
                    });
                }
            }
            _ => {
                let mut revoke = format!("REVOKE {privs} ON {obj} FROM {acct}");
                if with_grant {
                    revoke += &format!("; REVOKE GRANT OPTION ON {obj} FROM {acct}");
                }
                r.extra.push(ExtraGrant {
                    grant: line.clone(),
                    revoke: Some(revoke),
                });
            }
        }
    }
    for db in dbs.all() {
        if !r.granted.iter().any(|g| g == db) {
            r.missing.push(db.to_owned());
        }
    }
    r
}

/// `` `user`@`host` `` at the start of what follows ` TO `.
fn account_of(s: &str) -> String {
    let s = s.trim();
    // user and host are each quoted (` or '); the account ends after the second quoted part.
    let mut quotes = 0;
    let mut q: Option<char> = None;
    for (i, c) in s.char_indices() {
        match q {
            None if c == '`' || c == '\'' => q = Some(c),
            Some(open) if c == open => {
                q = None;
                quotes += 1;
                if quotes == 2 {
                    return s[..=i].to_owned();
                }
            }
            _ => {}
        }
    }
    s.split_whitespace().next().unwrap_or(s).to_owned()
}

/// Databases whose default character set is not utf8mb4, from the `charset NAME CHARSET` rows of
/// [`init_sql`]'s last statement.
pub fn check_charsets(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("charset "))
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, cs)| *cs != "utf8mb4")
        .map(|(d, cs)| (d.to_owned(), cs.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests;
