//! keel's memcached-compatible cache server, as a library: the `keel cache` binary and the tests
//! run the same code. It owns the listener, the connection limit, each connection's buffers and
//! back-pressure, the execution of parsed requests against a [`cache_store::Store`], the `stats`
//! counters, background expiry and graceful shutdown.
//!
//! Protocol framing lives in [`memcache_proto`] (pure codecs); this crate turns requests into store
//! operations ([`text`] for text + meta, [`binary`] for binary) and replies into bytes.

#![forbid(unsafe_code)]

/// Unwrap an item operation's result; on [`Unavailable`] (cluster mode) write the protocol's
/// error reply, `$reply(args…, &err)`, and return from the executor. Each protocol wraps it as
/// its own `try_op!`.
macro_rules! or_reply {
    ($e:expr, $reply:ident($($arg:expr),*)) => {
        match $e {
            Ok(v) => v,
            Err(err) => {
                $reply($($arg,)* &err);
                return Default::default();
            }
        }
    };
}

pub mod binary;
pub mod config;
pub mod conn;
pub mod redis;
pub mod server;
pub mod stats;
pub mod text;

use std::sync::Arc;

pub use config::Settings;

pub use server::Server;
pub use stats::{LocalStats, ServerStats};

use cache_cluster::{Cluster, ClusterError, ReadFence};
use cache_store::{
    ArithOutcome, ArithReq, DeleteOpts, DeleteOutcome, Expiry, GetOpts, ItemRef, MetaInfo,
    MetaOrder, Store, StoreOutcome, StoreReq,
};

/// The `tracing` target of memcached's `-v`/`-vv` lines, whose messages keep memcached's form:
/// connection errors (`accept failed: …`) at DEBUG, what memcached's `-vv` adds (every
/// connection opened and closed: `<28 new client connection from …`, `<28 connection closed.`)
/// at TRACE. The binary maps `-v` to DEBUG and `-vv` to TRACE for this target.
pub const PROTOCOL_TARGET: &str = "cache_server::protocol";

/// Everything a connection needs to execute requests; cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    /// The local replica (standalone: the only copy; cluster mode: the replica Raft applies to,
    /// read after a read barrier).
    pub store: Arc<Store>,
    pub stats: Arc<ServerStats>,
    pub settings: Arc<Settings>,
    /// Cluster mode: every write goes through the replicated log, reads through a read barrier.
    pub cluster: Option<Cluster>,
}

/// An item operation that could not be carried out (cluster mode only: no quorum, timeout, node
/// still catching up, …). Protocols answer it with `SERVER_ERROR <message>` / binary EINTERNAL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

impl From<ClusterError> for Unavailable {
    fn from(e: ClusterError) -> Self {
        Unavailable(e.to_string())
    }
}

/// Result of an item operation.
pub type OpResult<T> = Result<T, Unavailable>;

impl Ctx {
    /// A fresh standalone store and counters for these settings.
    pub fn new(settings: Settings) -> Ctx {
        let store = Store::new(store_config(&settings));
        Ctx {
            store: Arc::new(store),
            stats: Arc::new(ServerStats::new()),
            settings: Arc::new(settings),
            cluster: None,
        }
    }

    /// Serve from a cluster member's replica instead of a private store.
    pub fn with_cluster(settings: Settings, cluster: Cluster) -> Ctx {
        Ctx {
            store: cluster.store().clone(),
            stats: Arc::new(ServerStats::new()),
            settings: Arc::new(settings),
            cluster: Some(cluster),
        }
    }

    /// Whether an item with this key and value size fits the item size limit (`-I`).
    pub fn item_fits(&self, key_len: usize, value_len: usize) -> bool {
        self.store.item_fits(key_len, value_len)
    }

    /// Current time in unix seconds (memcached's clock has one-second resolution).
    pub fn now(&self) -> u64 {
        self.stats.clock.now()
    }

    // The item operations below are what protocol executors call (never `self.store` directly):
    // standalone they run on the local store at once; in cluster mode writes go through the
    // replicated log and reads wait for a read barrier, so they may fail with `Unavailable`.

    /// Read a live item; `f` runs while the item is locked (copy what you need into your reply).
    /// `fence` is the connection's read fence (cluster mode: reads of one received batch share
    /// one read barrier).
    pub async fn get<R>(
        &self,
        fence: &mut ReadFence,
        key: &[u8],
        opts: GetOpts,
        f: impl FnOnce(ItemRef<'_>) -> R,
    ) -> OpResult<Option<R>> {
        match &self.cluster {
            None => Ok(self.store.get(key, self.now(), opts, f)),
            Some(c) => Ok(c.get_fenced(fence, key, opts, None, |it, _| f(it)).await?),
        }
    }

    /// A meta get (`mg`): `T`, `N` and `R` applied in the request's flag `order`
    /// ([`Store::get_meta`]); `f` also learns whether the item was created and its prior expiry.
    pub async fn get_meta<R>(
        &self,
        fence: &mut ReadFence,
        key: &[u8],
        opts: GetOpts,
        order: MetaOrder,
        f: impl FnOnce(ItemRef<'_>, MetaInfo) -> R,
    ) -> OpResult<Option<R>> {
        match &self.cluster {
            None => Ok(self.store.get_meta(key, self.now(), opts, order, f)),
            Some(c) => Ok(c.get_fenced(fence, key, opts, Some(order), f).await?),
        }
    }

    pub async fn store_item(&self, req: &StoreReq<'_>) -> OpResult<StoreOutcome> {
        match &self.cluster {
            None => Ok(self.store.store(req, self.now())),
            Some(c) => Ok(c.store_item(req).await?),
        }
    }

    /// Remove a key outright (an oversized set removes the old value).
    pub async fn remove(&self, key: &[u8]) -> OpResult<()> {
        match &self.cluster {
            None => {
                self.store.remove(key, self.now());
                Ok(())
            }
            Some(c) => Ok(c.remove(key).await?),
        }
    }

    pub async fn delete(&self, key: &[u8], opts: DeleteOpts) -> OpResult<DeleteOutcome> {
        match &self.cluster {
            None => Ok(self.store.delete(key, opts, self.now())),
            Some(c) => Ok(c.delete(key, opts).await?),
        }
    }

    pub async fn arith(&self, req: &ArithReq<'_>) -> OpResult<ArithOutcome> {
        Ok(self.arith_meta(req, None, false).await?.0)
    }

    /// incr/decr/`ma` with memcached's exact semantics ([`Store::arith_meta`]): `order` is a meta
    /// `ma`'s flag order (`None`: [`Store::arith`]'s), `referenced` whether an unwritten reply of
    /// this connection still holds the item.
    pub async fn arith_meta(
        &self,
        req: &ArithReq<'_>,
        order: Option<MetaOrder>,
        referenced: bool,
    ) -> OpResult<(ArithOutcome, MetaInfo)> {
        match &self.cluster {
            None => {
                let order = order.unwrap_or(MetaOrder {
                    touch_after_vivify: true,
                    recache_after_touch: false,
                });
                Ok(self.store.arith_meta(req, order, referenced, self.now()))
            }
            Some(c) => Ok(c.arith_meta(req, order, referenced).await?),
        }
    }

    pub async fn touch(&self, key: &[u8], expires_at: Expiry) -> OpResult<bool> {
        match &self.cluster {
            None => Ok(self.store.touch(key, expires_at, self.now())),
            Some(c) => Ok(c.touch(key, expires_at).await?),
        }
    }

    pub async fn flush_all(&self, delay: u64) -> OpResult<()> {
        match &self.cluster {
            None => {
                self.store.flush_all(delay, self.now());
                Ok(())
            }
            Some(c) => Ok(c.flush_all(delay).await?),
        }
    }
}

/// The store configuration that `-m`, `-I` and `-t` imply.
pub fn store_config(settings: &Settings) -> cache_store::StoreConfig {
    cache_store::StoreConfig {
        mem_limit: settings.mem_limit,
        item_size_max: settings.item_size_max,
        shards: (settings.threads * 16).next_power_of_two(),
        reads_mutate: true,
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

/// The result of one call to [`text::process`] / [`binary::process`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// One request (or one malformed line) was handled: drop `consumed` input bytes, then obey `flow`.
    Done { consumed: usize, flow: Flow },
    /// The input holds only part of a request.
    Incomplete,
}

/// How the connection may schedule a request (cluster mode, see [`conn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A plain read: no state change, no effect on the connection's state.
    Read,
    /// A pure write: one replicated command whose reply depends only on its outcome, no effect
    /// on the connection's state besides unpinning its key and counters, and no `swallow`/flush:
    /// consecutive ones may run concurrently (issued in order, replies in order).
    Write,
    /// Anything else: runs alone, after every earlier request finished.
    Other,
}

/// Per-connection state the executors may keep (e.g. binary quiet-mode bookkeeping).
#[derive(Debug, Default)]
pub struct Session {
    pub stats: LocalStats,
    /// Connection id (for `stats conns`).
    pub id: u64,
    /// Cluster mode: the connection's read fence (see [`ReadFence`]); the connection invalidates
    /// it when it receives input and after each write.
    pub fence: ReadFence,
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
