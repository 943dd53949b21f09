//! keel's memcached-compatible cache server, as a library: the `keel cache` binary and the tests
//! run the same code. It owns the listener, the connection limit, each connection's buffers and
//! back-pressure, the execution of parsed requests against a [`cache_store::Store`], the `stats`
//! counters, background expiry and graceful shutdown.
//!
//! Protocol framing lives in [`memcache_proto`] (pure codecs); this crate turns requests into store
//! operations (`text_exec` for text + meta, `binary_exec` for binary) and replies into bytes.

pub mod binary_exec;
pub mod config;
pub mod conn;
pub mod server;
pub mod stats;
pub mod text_exec;

use std::sync::Arc;

pub use config::Settings;

pub use server::Server;
pub use stats::{LocalStats, ServerStats};

use cache_store::Store;

/// Everything a connection needs to execute requests; cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    pub store: Arc<Store>,
    pub stats: Arc<ServerStats>,
    pub settings: Arc<Settings>,
}

impl Ctx {
    /// A fresh store and counters for these settings.
    pub fn new(settings: Settings) -> Ctx {
        let store = Store::new(cache_store::StoreConfig {
            mem_limit: settings.mem_limit,
            item_size_max: settings.item_size_max,
            shards: (settings.threads * 16).next_power_of_two(),
            reads_mutate: true,
        });
        Ctx { store: Arc::new(store), stats: Arc::new(ServerStats::new()), settings: Arc::new(settings) }
    }

    /// Current time in unix seconds (memcached's clock has one-second resolution).
    pub fn now(&self) -> u64 {
        self.stats.clock.now()
    }
}

/// What the connection must do after a request was executed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// Close the connection once pending replies are written (`quit`, fatal protocol errors).
    pub close: bool,
    /// Discard this many further input bytes (the value of a rejected storage command).
    pub swallow: usize,
}

/// The result of one call to `text_exec::process` / `binary_exec::process`.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// One request (or one malformed line) was handled: drop `consumed` input bytes, then obey `flow`.
    Done { consumed: usize, flow: Flow },
    /// The input holds only part of a request.
    Incomplete,
}

/// Per-connection state the executors may keep (e.g. binary quiet-mode bookkeeping).
#[derive(Debug, Default)]
pub struct Session {
    pub stats: LocalStats,
    /// Connection id (for `stats conns`).
    pub id: u64,
}
