//! Listeners (memcached's, and Redis's when `--redis-port` is given), connection limit,
//! background tasks (clock, expiry) and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::redis::RedisShared;
use crate::{conn, Ctx, Settings, PROTOCOL_TARGET};

/// How long shutdown waits for open connections to finish their current batch.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound (not yet running) cache server.
pub struct Server {
    ctx: Ctx,
    listeners: Vec<StdListener>,
    /// The Redis side: its listeners (one per `-l` address) and shared state.
    redis: Option<(Vec<StdListener>, Arc<RedisShared>)>,
}

impl Server {
    /// Bind every listen address (port 0 picks a free port, see [`Server::local_addrs`]).
    /// Binding happens before privileges are dropped, so low ports work.
    pub fn bind(settings: Settings) -> io::Result<Server> {
        let mut listeners = Vec::new();
        for ip in &settings.listen {
            let addr = SocketAddr::new(*ip, settings.port);
            let l = StdListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            l.set_nonblocking(true)?;
            listeners.push(l);
        }
        let redis = match &settings.redis {
            Some(rs) => {
                let mut rl: Vec<StdListener> = Vec::new();
                let mut port = rs.port;
                for ip in &settings.listen {
                    let addr = SocketAddr::new(*ip, port);
                    let l = StdListener::bind(addr).map_err(|e| {
                        io::Error::new(e.kind(), format!("cannot listen on {addr} (Redis): {e}"))
                    })?;
                    l.set_nonblocking(true)?;
                    // Port 0: the port chosen for the first address serves the others too.
                    port = l.local_addr()?.port();
                    rl.push(l);
                }
                let shared = Arc::new(RedisShared::new(rs, settings.max_conns));
                shared.port.store(u64::from(port), Relaxed);
                Some((rl, shared))
            }
            None => None,
        };
        Ok(Server {
            ctx: Ctx::new(settings),
            listeners,
            redis,
        })
    }

    /// The Redis listeners' addresses (empty when Redis is off).
    pub fn redis_addrs(&self) -> Vec<SocketAddr> {
        self.redis.as_ref().map_or_else(Vec::new, |(ls, _)| {
            ls.iter().filter_map(|l| l.local_addr().ok()).collect()
        })
    }

    /// The Redis side's shared state (keyspace, clients, pub/sub), when Redis is on.
    pub fn redis(&self) -> Option<&Arc<RedisShared>> {
        self.redis.as_ref().map(|(_, s)| s)
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// Cluster mode: serve the replica of this cluster member instead of a private store.
    pub fn attach_cluster(&mut self, cluster: cache_cluster::Cluster) {
        if let Some((_, shared)) = self.redis.as_mut() {
            // Serve the cluster's replica of the Redis keyspace (nothing was served yet).
            let settings = shared.cfg.read().clone();
            let port = shared.port.load(Relaxed);
            if let Some(s) = RedisShared::clustered(&settings, shared.max_clients, cluster.clone())
            {
                s.port.store(port, Relaxed);
                *shared = s;
            }
        }
        self.ctx = Ctx::with_cluster((*self.ctx.settings).clone(), cluster);
    }

    /// Serve until `shutdown` completes, then stop accepting, ask every connection to finish,
    /// and wait (up to a few seconds) for them. Must run inside a tokio runtime (which runs the
    /// maintenance task); connections are served by `-t` worker threads, each with its own
    /// single-threaded event loop that accepts from the shared listeners, as memcached's workers
    /// do: a connection stays on one thread, so a request and its reply never cross cores.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let next_id = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for i in 0..self.ctx.settings.threads.max(1) {
            let listeners = self
                .listeners
                .iter()
                .map(|l| l.try_clone())
                .collect::<io::Result<Vec<_>>>()?;
            let redis = match &self.redis {
                Some((ls, shared)) => Some((
                    ls.iter()
                        .map(|l| l.try_clone())
                        .collect::<io::Result<Vec<_>>>()?,
                    shared.clone(),
                )),
                None => None,
            };
            let (ctx, stop, next_id) = (self.ctx.clone(), stop_rx.clone(), next_id.clone());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = std::thread::Builder::new()
                .name(format!("keel-worker-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        let mut loops = JoinSet::new();
                        for l in listeners {
                            match TcpListener::from_std(l) {
                                Ok(l) => {
                                    loops.spawn(accept_loop(
                                        l,
                                        ctx.clone(),
                                        stop.clone(),
                                        next_id.clone(),
                                    ));
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "worker cannot use a listener")
                                }
                            }
                        }
                        if let Some((ls, shared)) = redis {
                            for l in ls {
                                match TcpListener::from_std(l) {
                                    Ok(l) => {
                                        loops.spawn(crate::redis::conn::accept_loop(
                                            l,
                                            shared.clone(),
                                            stop.clone(),
                                        ));
                                    }
                                    Err(e) => tracing::error!(
                                        error = %e,
                                        "worker cannot use a Redis listener"
                                    ),
                                }
                            }
                        }
                        while loops.join_next().await.is_some() {}
                    })
                })?;
            workers.push(handle);
        }
        drop(self.listeners);
        let maintenance = tokio::spawn(maintenance(self.ctx.clone(), stop_rx.clone()));
        let redis_maintenance = self
            .redis
            .map(|(_, shared)| tokio::spawn(crate::redis::maintenance(shared, stop_rx.clone())));
        shutdown.await;
        let _ = stop_tx.send(true);
        let _ = maintenance.await;
        if let Some(m) = redis_maintenance {
            let _ = m.await;
        }
        // Workers end once their connections have finished (bounded by DRAIN_TIMEOUT each).
        tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
        })
        .await
        .map_err(io::Error::other)?;
        Ok(())
    }
}

async fn accept_loop(
    listener: TcpListener,
    ctx: Ctx,
    mut stop: watch::Receiver<bool>,
    next_id: Arc<AtomicU64>,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::debug!(target: PROTOCOL_TARGET, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let stats = &ctx.stats;
        stats.total_connections.fetch_add(1, Relaxed);
        let curr = stats.curr_connections.fetch_add(1, Relaxed) + 1;
        if curr as usize > ctx.settings.max_conns {
            stats.curr_connections.fetch_sub(1, Relaxed);
            stats.rejected_connections.fetch_add(1, Relaxed);
            tokio::spawn(refuse(stream));
            continue;
        }
        stats.connection_structures.fetch_max(curr, Relaxed);
        let id = next_id.fetch_add(1, Relaxed) + 1;
        let ctx2 = ctx.clone();
        let stop2 = stop.clone();
        conns.spawn(async move {
            conn::serve(stream, ctx2.clone(), id, stop2).await;
            ctx2.stats.curr_connections.fetch_sub(1, Relaxed);
        });
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

/// memcached's answer when the connection limit is reached.
async fn refuse(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"ERROR Too many open connections\r\n")
        .await;
    let _ = stream.shutdown().await;
}

/// Once a second: refresh the clock and sweep expired items out of the store, a few shards at a
/// time so no lock is held for long.
async fn maintenance(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shards = ctx.store.config().shards.max(1);
    let mut next_shard = 0usize;
    // Every shard once every ~2 s.
    let per_tick = shards.div_ceil(20).max(1);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        ctx.stats.clock.tick();
        if ctx.cluster.is_some() {
            // The leader replicates expiry through the log, so replicas stay identical.
            continue;
        }
        let now = ctx.now();
        for _ in 0..per_tick {
            ctx.store.expire_shard(next_shard, now);
            next_shard = (next_shard + 1) % shards;
        }
    }
}
