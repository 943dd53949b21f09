//! Server-wide counters (memcached's `stats`), kept cheap on the hot path: each connection counts
//! into a plain [`LocalStats`] and folds it into the shared atomics once per batch of requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeVal;
use parking_lot::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Command-level counters. Field names are memcached's `stats` names.
macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Counters a connection accumulates between two flushes.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct LocalStats { $(pub $name: u64,)* }

        /// The shared, resettable counters.
        #[derive(Debug, Default)]
        pub struct Counters { $(pub $name: AtomicU64,)* }

        impl Counters {
            /// Fold a connection's counts in and zero them.
            pub fn absorb(&self, local: &mut LocalStats) {
                $(if local.$name != 0 { self.$name.fetch_add(local.$name, Relaxed); })*
                *local = LocalStats::default();
            }
            pub fn snapshot(&self) -> LocalStats {
                LocalStats { $($name: self.$name.load(Relaxed),)* }
            }
            pub fn reset(&self) {
                $(self.$name.store(0, Relaxed);)*
            }
        }
    };
}

counters!(
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    cmd_meta,
    get_hits,
    get_misses,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    cas_misses,
    cas_hits,
    cas_badval,
    touch_hits,
    touch_misses,
    store_too_large,
    store_no_memory,
    bytes_read,
    bytes_written,
);

/// A one-second-resolution clock, like memcached's: `now()` is a relaxed load, refreshed by the
/// server's timer task (and on demand in tests).
#[derive(Debug)]
pub struct Clock {
    now: AtomicU64,
}

impl Clock {
    pub fn new() -> Clock {
        let c = Clock {
            now: AtomicU64::new(0),
        };
        c.tick();
        c
    }
    pub fn now(&self) -> u64 {
        self.now.load(Relaxed)
    }
    /// Re-read the system clock.
    pub fn tick(&self) {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.now.store(t, Relaxed);
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Server-wide statistics.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub clock: Clock,
    pub counters: Counters,
    /// Unix time the server started.
    pub started: u64,
    pub curr_connections: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub connection_structures: AtomicU64,
    /// Set by `verbosity`.
    pub verbosity: AtomicU64,
    /// Open connections, for `stats conns`.
    pub conns: Mutex<HashMap<u64, Arc<ConnInfo>>>,
}

/// What `stats conns` shows about one connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Unix seconds of the last command batch.
    pub last_cmd: AtomicU64,
}

impl ServerStats {
    pub fn new() -> ServerStats {
        let clock = Clock::new();
        let started = clock.now();
        ServerStats {
            clock,
            started,
            ..Default::default()
        }
    }
}

/// The lines of a `stats [group]` reply as (name, value) pairs, in memcached's order.
/// `group` is `""` for plain `stats`, else `settings`, `items`, `slabs`, `conns`, `sizes`.
/// Returns `None` for an unknown group (memcached then answers `ERROR` in text).
///
/// keel has no slab classes: `stats items` and `stats slabs` report the whole store as class 1
/// (an honest equivalent: item counts, bytes and eviction counters are real, per-class chunk
/// geometry is not invented).
pub fn report(ctx: &crate::Ctx, group: &str) -> Option<Vec<(String, String)>> {
    let mut v: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, val: String| v.push((k.to_string(), val));
    let st = &ctx.stats;
    let set = &ctx.settings;
    let now = ctx.now();
    let store = ctx.store.stats();
    match group {
        "" => {
            let c = st.counters.snapshot();
            let (user, sys) = rusage();
            add("pid", std::process::id().to_string());
            add("uptime", now.saturating_sub(st.started).to_string());
            add("time", now.to_string());
            add("version", set.version.clone());
            add("libevent", "tokio".into());
            add(
                "pointer_size",
                (8 * std::mem::size_of::<usize>()).to_string(),
            );
            add("rusage_user", user);
            add("rusage_system", sys);
            add("max_connections", set.max_conns.to_string());
            add(
                "curr_connections",
                st.curr_connections.load(Relaxed).to_string(),
            );
            add(
                "total_connections",
                st.total_connections.load(Relaxed).to_string(),
            );
            add(
                "rejected_connections",
                st.rejected_connections.load(Relaxed).to_string(),
            );
            add(
                "connection_structures",
                st.connection_structures.load(Relaxed).to_string(),
            );
            add("cmd_get", c.cmd_get.to_string());
            add("cmd_set", c.cmd_set.to_string());
            add("cmd_flush", c.cmd_flush.to_string());
            add("cmd_touch", c.cmd_touch.to_string());
            add("cmd_meta", c.cmd_meta.to_string());
            add("get_hits", c.get_hits.to_string());
            add("get_misses", c.get_misses.to_string());
            add("get_expired", store.get_expired.to_string());
            add("get_flushed", store.get_flushed.to_string());
            add("delete_misses", c.delete_misses.to_string());
            add("delete_hits", c.delete_hits.to_string());
            add("incr_misses", c.incr_misses.to_string());
            add("incr_hits", c.incr_hits.to_string());
            add("decr_misses", c.decr_misses.to_string());
            add("decr_hits", c.decr_hits.to_string());
            add("cas_misses", c.cas_misses.to_string());
            add("cas_hits", c.cas_hits.to_string());
            add("cas_badval", c.cas_badval.to_string());
            add("touch_hits", c.touch_hits.to_string());
            add("touch_misses", c.touch_misses.to_string());
            add("store_too_large", c.store_too_large.to_string());
            add("store_no_memory", c.store_no_memory.to_string());
            add("auth_cmds", "0".into());
            add("auth_errors", "0".into());
            add("bytes_read", c.bytes_read.to_string());
            add("bytes_written", c.bytes_written.to_string());
            add("limit_maxbytes", set.mem_limit.to_string());
            add("accepting_conns", "1".into());
            add("threads", set.threads.to_string());
            add("bytes", store.bytes.to_string());
            add("curr_items", store.curr_items.to_string());
            add("total_items", store.total_items.to_string());
            add("expired_unfetched", store.expired_unfetched.to_string());
            add("evicted_unfetched", store.evicted_unfetched.to_string());
            add("evictions", store.evictions.to_string());
            add("reclaimed", store.reclaimed.to_string());
            if let Some(c) = &ctx.cluster {
                for (k, val) in c.status().stats_lines() {
                    add(k, val);
                }
            }
        }
        "settings" => {
            add("maxbytes", set.mem_limit.to_string());
            add("maxconns", set.max_conns.to_string());
            add("tcpport", set.port.to_string());
            add("udpport", set.udp_port.to_string());
            let inter = set
                .listen
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(",");
            add(
                "inter",
                if inter.is_empty() {
                    "NULL".into()
                } else {
                    inter
                },
            );
            add("verbosity", st.verbosity.load(Relaxed).to_string());
            add("evictions", "on".into());
            add("domain_socket", "NULL".into());
            add("num_threads", set.threads.to_string());
            add("cas_enabled", "yes".into());
            add("binding_protocol", "auto-negotiate".into());
            add("auth_enabled_sasl", "no".into());
            add("item_size_max", set.item_size_max.to_string());
            add("flush_enabled", "yes".into());
            add("hash_algorithm", "fxhash".into());
            add("idle_timeout", "0".into());
        }
        "items" => {
            if store.curr_items > 0 {
                add("items:1:number", store.curr_items.to_string());
                add("items:1:evicted", store.evictions.to_string());
                add(
                    "items:1:evicted_unfetched",
                    store.evicted_unfetched.to_string(),
                );
                add(
                    "items:1:expired_unfetched",
                    store.expired_unfetched.to_string(),
                );
                add("items:1:reclaimed", store.reclaimed.to_string());
                add("items:1:outofmemory", "0".into());
            }
        }
        "slabs" => {
            if store.curr_items > 0 {
                add("1:used_chunks", store.curr_items.to_string());
                add("1:mem_requested", store.bytes.to_string());
            }
            add("active_slabs", u64::from(store.curr_items > 0).to_string());
            add("total_malloced", store.bytes.to_string());
        }
        "sizes" => {
            add("sizes_status", "disabled".into());
        }
        "conns" => {
            let conns = st.conns.lock();
            let mut ids: Vec<_> = conns.keys().copied().collect();
            ids.sort_unstable();
            for id in ids {
                let c = &conns[&id];
                add(&format!("{id}:addr"), format!("tcp:{}", c.peer));
                add(&format!("{id}:listen_addr"), format!("tcp:{}", c.local));
                add(&format!("{id}:state"), "conn_parse_cmd".into());
                add(
                    &format!("{id}:secs_since_last_cmd"),
                    now.saturating_sub(c.last_cmd.load(Relaxed)).to_string(),
                );
            }
        }
        _ => return None,
    }
    Some(v)
}

fn rusage() -> (String, String) {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(ru) => {
            let f = |t: TimeVal| format!("{}.{:06}", t.tv_sec(), t.tv_usec());
            (f(ru.user_time()), f(ru.system_time()))
        }
        Err(_) => ("0.000000".into(), "0.000000".into()),
    }
}

/// `stats reset`.
pub fn reset(ctx: &crate::Ctx) {
    ctx.stats.counters.reset();
    ctx.stats.total_connections.store(0, Relaxed);
    ctx.stats.rejected_connections.store(0, Relaxed);
    ctx.store.reset_stats();
}
