//! Server-wide counters (memcached's `stats`), kept cheap on the hot path: each connection counts
//! into a plain [`LocalStats`] and folds it into the shared atomics once per batch of requests.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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
    cmd_get, cmd_set, cmd_flush, cmd_touch, cmd_meta,
    get_hits, get_misses,
    delete_misses, delete_hits,
    incr_misses, incr_hits, decr_misses, decr_hits,
    cas_misses, cas_hits, cas_badval,
    touch_hits, touch_misses,
    bytes_read, bytes_written,
);

/// A one-second-resolution clock, like memcached's: `now()` is a relaxed load, refreshed by the
/// server's timer task (and on demand in tests).
#[derive(Debug)]
pub struct Clock {
    now: AtomicU64,
}

impl Clock {
    pub fn new() -> Clock {
        let c = Clock { now: AtomicU64::new(0) };
        c.tick();
        c
    }
    pub fn now(&self) -> u64 {
        self.now.load(Relaxed)
    }
    /// Re-read the system clock.
    pub fn tick(&self) {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
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
}

impl ServerStats {
    pub fn new() -> ServerStats {
        let clock = Clock::new();
        let started = clock.now();
        ServerStats { clock, started, ..Default::default() }
    }
}

/// The lines of a `stats [group]` reply as (name, value) pairs, in memcached's order.
/// `group` is `""` for plain `stats`, else `settings`, `items`, `slabs`, `conns`, `sizes`.
/// Returns `None` for an unknown group (memcached then answers `ERROR` in text).
pub fn report(ctx: &crate::Ctx, group: &str) -> Option<Vec<(String, String)>> {
    let _ = (ctx, group);
    todo!()
}

/// `stats reset`.
pub fn reset(ctx: &crate::Ctx) {
    ctx.stats.counters.reset();
    ctx.stats.total_connections.store(0, Relaxed);
    ctx.stats.rejected_connections.store(0, Relaxed);
    ctx.store.reset_stats();
}
