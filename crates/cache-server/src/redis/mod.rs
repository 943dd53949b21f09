//! The Redis server beside memcached (`keel cache --redis-port`): the shared state every worker
//! thread serves from ([`RedisShared`]: one keyspace under one lock, the pub/sub registry, the
//! client registry for `CLIENT LIST`/`KILL`, blocked clients' mailboxes, counters), each client's
//! mailbox ([`ClientHandle`]), the accept loop and the background expiry cycle. Connections are
//! served by [`conn`], the connection-level commands by [`commands`].
//!
//! In cluster mode ([`RedisShared::cluster`]) the keyspace is the node's replica of the tier's
//! Redis keyspace ([`cache_cluster::RedisReplica`]): writes go through the replicated log,
//! reads follow a read barrier, and [`replicated`] turns what applying an entry makes happen
//! on this node (a `PUBLISH`, a list that received elements) into deliveries and wake-ups of
//! this node's own clients.
//!
//! Lock order (never take an earlier lock while holding a later one): the keyspace, then the
//! live settings, then the pub/sub registry, then the list waiters, then the client registry.

pub mod commands;
pub mod conn;
pub mod info;
pub mod limits;
pub mod pubsub;
pub mod replicated;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use redis_proto::Reply;
use redis_store::Keyspace;
use tokio::sync::{mpsc, watch, Notify};

use crate::config::RedisSettings;
use crate::PROTOCOL_TARGET;

/// The version keel answers as (`HELLO`'s `version`, `INFO`'s `redis_version`): the
/// redis-server whose replies keel reproduces, so that clients enable what 7.0 supports.
pub const REDIS_VERSION: &str = "7.0.15";

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What other threads put in a client's mailbox.
#[derive(Debug)]
pub enum Msg {
    /// The reply to the client's blocking command (from `Keyspace::serve_blocked`).
    Served(Reply),
    /// A pub/sub message, with the bytes it is accounted at.
    Push(Reply, u64),
    /// Cluster mode: a list the client waits on received elements; pop again.
    Wake,
}

/// Per-connection details `CLIENT LIST` shows, updated by the connection.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub name: Vec<u8>,
    pub lib_name: Vec<u8>,
    pub lib_ver: Vec<u8>,
    pub db: usize,
    pub sub: usize,
    pub psub: usize,
    /// Queued commands, -1 outside `MULTI`.
    pub multi: i64,
    /// Last command's full name (`client|list`); empty before the first.
    pub cmd: &'static str,
    pub resp: u8,
    pub blocked: bool,
    pub no_evict: bool,
    pub last_active_ms: u64,
}

/// A connection as other threads see it: its mailbox, its kill switch and its details.
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    tx: mpsc::UnboundedSender<Msg>,
    /// Bytes of pub/sub messages queued and not yet taken by the connection.
    pending: AtomicU64,
    /// When the soft output limit was first seen reached (unix ms; 0: not reached).
    soft_since_ms: Mutex<u64>,
    killed: AtomicBool,
    kill_notify: Notify,
    pub info: Mutex<ClientInfo>,
}

impl ClientHandle {
    /// A new handle and the receiving end of its mailbox.
    pub fn new(
        id: u64,
        addr: SocketAddr,
        laddr: SocketAddr,
    ) -> (Arc<ClientHandle>, mpsc::UnboundedReceiver<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let h = ClientHandle {
            id,
            addr,
            laddr,
            created: Instant::now(),
            tx,
            pending: AtomicU64::new(0),
            soft_since_ms: Mutex::new(0),
            killed: AtomicBool::new(false),
            kill_notify: Notify::new(),
            info: Mutex::new(ClientInfo {
                multi: -1,
                resp: 2,
                last_active_ms: now_ms(),
                ..ClientInfo::default()
            }),
        };
        (Arc::new(h), rx)
    }

    /// Queue a pub/sub message; a client whose pending messages exceed `limit` is killed (as
    /// Redis closes a subscriber that falls behind) instead of growing without bound.
    pub fn push(&self, reply: Reply, size: u64, limit: ObufLimit, now_ms: u64) {
        if self.is_killed() {
            return;
        }
        let used = self.pending.fetch_add(size, Relaxed) + size;
        let over = limit.exceeded(used, &mut self.soft_since_ms.lock(), now_ms);
        if over {
            tracing::warn!(
                target: PROTOCOL_TARGET,
                "Client id={} addr={} scheduled to be closed ASAP for overcoming of output buffer limits.",
                self.id,
                self.addr
            );
            self.kill();
            return;
        }
        let _ = self.tx.send(Msg::Push(reply, size));
    }

    /// Deliver a blocked command's reply.
    pub fn serve(&self, reply: Reply) {
        let _ = self.tx.send(Msg::Served(reply));
    }

    /// Cluster mode: a list this client waits on received elements.
    pub fn wake(&self) {
        let _ = self.tx.send(Msg::Wake);
    }

    /// The connection took `m` out of its mailbox.
    pub fn taken(&self, m: &Msg) {
        if let Msg::Push(_, size) = m {
            let _ = self
                .pending
                .fetch_update(Relaxed, Relaxed, |p| Some(p.saturating_sub(*size)));
        }
    }

    pub fn pending(&self) -> u64 {
        self.pending.load(Relaxed)
    }

    /// Ask the connection to close (`CLIENT KILL`, output limits).
    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.kill_notify.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Relaxed)
    }

    /// Completes once [`ClientHandle::kill`] was called.
    pub async fn killed(&self) {
        loop {
            if self.is_killed() {
                return;
            }
            self.kill_notify.notified().await;
        }
    }
}

pub use limits::ObufLimit;
/// `maxmemory-policy` (re-exported for the `keel` binary's flags).
pub use redis_store::Policy;

/// Counters for `INFO`.
#[derive(Default)]
pub struct RedisStats {
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub total_commands: AtomicU64,
    pub total_error_replies: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub connected: AtomicU64,
    pub blocked: AtomicU64,
}

/// Everything the Redis connections of every worker share.
pub struct RedisShared {
    /// The keyspace: the server's own, or in cluster mode the node's replica (shared with the
    /// cluster's state machine, which applies the log to it).
    pub ks: Arc<Mutex<Keyspace>>,
    /// Cluster mode: the cluster this node's keyspace replicates through.
    pub cluster: Option<cache_cluster::Cluster>,
    /// Cluster mode: which local clients wait on which lists (see [`replicated`]).
    pub waiters: replicated::Waiters,
    /// Live settings (`CONFIG SET` changes them; the keyspace's own copy is kept in step).
    pub cfg: RwLock<RedisSettings>,
    pub pubsub: pubsub::Registry,
    pub clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    pub stats: RedisStats,
    pub started: Instant,
    /// `LASTSAVE`: keel keeps no dump, so the start time.
    pub start_unix: u64,
    pub run_id: String,
    pub max_clients: usize,
    /// The bound Redis port (`INFO`'s `tcp_port`).
    pub port: AtomicU64,
    next_id: AtomicU64,
}

/// The keyspace settings `settings` ask for.
pub fn keyspace_config(settings: &RedisSettings) -> redis_store::Config {
    redis_store::Config {
        maxmemory: settings.maxmemory,
        policy: settings.policy,
        max_bulk_len: settings.max_bulk_len,
        ..redis_store::Config::default()
    }
}

impl RedisShared {
    /// A standalone server's shared state, with a keyspace of its own.
    pub fn new(settings: &RedisSettings, max_clients: usize) -> RedisShared {
        let ks = Arc::new(Mutex::new(Keyspace::new(keyspace_config(settings))));
        RedisShared::with_keyspace(settings, max_clients, ks, None)
    }

    /// Cluster mode: serve `cluster`'s Redis replica (the cluster must have been started with
    /// a Redis keyspace, [`cache_cluster::ClusterConfig::redis`]), and receive its events.
    pub fn clustered(
        settings: &RedisSettings,
        max_clients: usize,
        cluster: cache_cluster::Cluster,
    ) -> Option<Arc<RedisShared>> {
        let replica = cluster.redis()?.clone();
        let shared = Arc::new(RedisShared::with_keyspace(
            settings,
            max_clients,
            replica.keyspace().clone(),
            Some(cluster),
        ));
        replica.set_events(Arc::new(replicated::Events::new(&shared)));
        Some(shared)
    }

    fn with_keyspace(
        settings: &RedisSettings,
        max_clients: usize,
        ks: Arc<Mutex<Keyspace>>,
        cluster: Option<cache_cluster::Cluster>,
    ) -> RedisShared {
        let now = now_ms();
        // A run id that differs between runs (Redis: 40 random hex digits).
        let seed = now ^ (u64::from(std::process::id()) << 32);
        let run_id = format!(
            "{:016x}{:016x}{:08x}",
            seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            seed.rotate_left(17).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            (seed >> 7) as u32
        );
        RedisShared {
            ks,
            cluster,
            waiters: replicated::Waiters::default(),
            cfg: RwLock::new(settings.clone()),
            pubsub: pubsub::Registry::default(),
            clients: Mutex::new(BTreeMap::new()),
            stats: RedisStats::default(),
            started: Instant::now(),
            start_unix: now / 1000,
            run_id,
            max_clients,
            port: AtomicU64::new(u64::from(settings.port)),
            next_id: AtomicU64::new(0),
        }
    }

    /// A new client id (Redis's ids start at 1 and only grow).
    pub fn next_client_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed) + 1
    }

    /// Deliver the replies of clients a write just unblocked. Call it while holding the
    /// keyspace lock, so that a client whose `cancel_block` finds it already served can rely on
    /// the reply being in its mailbox.
    pub fn serve_blocked(&self, ks: &mut Keyspace, now_ms: u64) {
        let served = ks.serve_blocked(now_ms);
        if served.is_empty() {
            return;
        }
        let clients = self.clients.lock();
        for (id, reply) in served {
            match clients.get(&id) {
                Some(h) => h.serve(reply),
                None => tracing::debug!(target: PROTOCOL_TARGET, "served client {id} is gone"),
            }
        }
    }
}

/// Keys with an expiry looked at per lock hold of the active expiry cycle.
const EXPIRE_CHUNK: usize = 1000;
/// Time the active expiry cycle may take per 100 ms period.
const EXPIRE_CYCLE_BUDGET: Duration = Duration::from_millis(25);

/// The background cycle: every 100 ms, expire keys (so memory held by expired keys nobody reads
/// is returned), until `stop`. Standalone only: in cluster mode the keyspace is a replica, which
/// only the log may change (the leader's periodic expiry entry expires keys there, at the
/// replicated clock); a cycle at this node's own clock would delete keys on this replica alone.
pub async fn maintenance(shared: Arc<RedisShared>, mut stop: watch::Receiver<bool>) {
    if shared.cluster.is_some() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        // As Redis's slow cycle: spend up to a quarter of the period, in chunks that release the
        // keyspace lock between them, while a chunk still finds a quarter of its keys expired.
        let started = Instant::now();
        while started.elapsed() < EXPIRE_CYCLE_BUDGET {
            let deleted = shared.ks.lock().active_expire(now_ms(), EXPIRE_CHUNK);
            if deleted * 4 < EXPIRE_CHUNK {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}
