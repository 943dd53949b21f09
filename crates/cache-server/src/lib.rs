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

use cache_store::{
    ArithOutcome, ArithReq, DeleteOpts, DeleteOutcome, Expiry, GetOpts, ItemRef, Store, StoreOutcome, StoreReq,
};

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

    // The item operations below are what protocol executors should call (rather than
    // `self.store` directly): they are the seam where cluster mode replaces local execution with
    // replication (writes) and a read barrier (reads). Locally they complete without waiting.

    /// Read a live item; `f` runs while the item is locked (copy what you need into your reply).
    pub async fn get<R>(&self, key: &[u8], opts: GetOpts, f: impl FnOnce(ItemRef<'_>) -> R) -> Option<R> {
        self.store.get(key, self.now(), opts, f)
    }

    pub async fn store_item(&self, req: &StoreReq<'_>) -> StoreOutcome {
        self.store.store(req, self.now())
    }

    /// Remove a key outright (an oversized set removes the old value).
    pub async fn remove(&self, key: &[u8]) {
        self.store.remove(key, self.now())
    }

    pub async fn delete(&self, key: &[u8], opts: DeleteOpts) -> DeleteOutcome {
        self.store.delete(key, opts, self.now())
    }

    pub async fn arith(&self, req: &ArithReq<'_>) -> ArithOutcome {
        self.store.arith(req, self.now())
    }

    pub async fn touch(&self, key: &[u8], expires_at: Expiry) -> bool {
        self.store.touch(key, expires_at, self.now())
    }

    pub async fn flush_all(&self, delay: u64) {
        self.store.flush_all(delay, self.now())
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

/// Run a future that is known to complete without waiting (local store operations never wait),
/// for tests that drive the executors directly.
#[cfg(test)]
pub(crate) fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("a local operation unexpectedly waited"),
    }
}
