//! One Redis client connection: reading, pipelining (every complete command buffered is parsed
//! and run, the replies are collected in one output buffer and written with one call),
//! authentication, `HELLO`, `MULTI`/`EXEC`, pub/sub, blocking commands, the connection-level
//! commands, output-buffer limits and the idle timeout.
//!
//! Memory per connection is bounded: input is read only when no reply is pending (a client that
//! never reads its replies stalls only itself, and is closed if its output exceeds the normal
//! class's `client-output-buffer-limit`), replies are flushed once [`crate::conn::OUT_HIGH_WATER`]
//! bytes are pending, and pub/sub messages queued for a subscriber that falls behind count
//! against the pubsub class's limit (see [`super::ClientHandle::push`]).
//!
//! This module holds the connection itself (accepting, the I/O loop, blocking, the checks before
//! a command and the dispatch); the handler groups live in its children: [`admin`] (`CLIENT`,
//! `CONFIG`, `INFO`, `DEBUG`, `TIME`), [`auth`] (`AUTH`, `HELLO`, `RESET`), [`txn`]
//! (`MULTI`/`EXEC`/`WATCH`) and [`pubsub`] (`SUBSCRIBE`, `PUBLISH`, `PUBSUB`).

mod admin;
mod auth;
mod cluster;
mod pubsub;
mod txn;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use redis_proto::{encode, Args, Limits, Protocol, Reply, RequestParser};
use redis_store::{Exec, Flags, Keyspace};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, trace};

use super::commands::{self, Found};
use super::limits::ObufLimit;
use super::{now_ms, ClientHandle, Msg, RedisShared};
use crate::conn::OUT_HIGH_WATER;
use crate::PROTOCOL_TARGET;

/// Bytes reserved for each read.
const READ_CHUNK: usize = 16 * 1024;
/// While a client is blocked, its further input is read (to notice it closing) up to this much.
const BLOCKED_INPUT_MAX: usize = 1024 * 1024;
/// How long shutdown waits for open connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

const NOAUTH: &str = "NOAUTH Authentication required.";
const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

/// Accept Redis connections on `listener` until `stop`, then give open connections a few
/// seconds to finish.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<RedisShared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let mut stream = match accepted {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                debug!(target: PROTOCOL_TARGET, "redis accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let st = &shared.stats;
        st.total_connections.fetch_add(1, Relaxed);
        let curr = st.connected.fetch_add(1, Relaxed) + 1;
        if curr as usize > shared.max_clients {
            st.connected.fetch_sub(1, Relaxed);
            st.rejected_connections.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
                let _ = stream.shutdown().await;
            });
            continue;
        }
        let shared2 = shared.clone();
        let stop2 = stop.clone();
        conns.spawn(async move {
            serve(stream, shared2.clone(), stop2).await;
            shared2.stats.connected.fetch_sub(1, Relaxed);
        });
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

/// Serve one accepted Redis connection until the client leaves, `QUIT`s, is killed, or the
/// server shuts down.
pub async fn serve(
    mut stream: TcpStream,
    shared: Arc<RedisShared>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let zero: SocketAddr = ([0, 0, 0, 0], 0).into();
    let addr = stream.peer_addr().unwrap_or(zero);
    let laddr = stream.local_addr().unwrap_or(zero);
    let mut conn = Conn::new(shared, addr, laddr, shutdown);
    let id = conn.client.id;
    trace!(target: PROTOCOL_TARGET, "redis <{id} new client connection from {addr}");
    let result = conn.run(&mut stream).await;
    match &result {
        Ok(()) => trace!(target: PROTOCOL_TARGET, "redis <{id} connection closed."),
        Err(e) => trace!(target: PROTOCOL_TARGET, "redis <{id} connection closed: {e}"),
    }
    conn.cleanup();
}

/// What running one command asks the connection loop to do.
enum Outcome {
    /// Send this reply.
    Reply(Reply),
    /// Send these replies (`SUBSCRIBE a b` answers once per channel).
    Many(Vec<Reply>),
    /// Nothing to send (`CLIENT REPLY OFF`).
    Silent,
    /// The command blocked: wait for its reply (see [`Conn::wait_blocked`]).
    Blocked { deadline_ms: Option<u64> },
    /// `DEBUG SLEEP`: answer `+OK` after this long.
    Sleep(Duration),
    /// Cluster mode: run this through the tier's log or after a read barrier (see
    /// [`cluster`]), then answer.
    Cluster(cluster::ClusterStep),
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Outcome {
        Outcome::Reply(r)
    }
}

/// What woke the connection while it was waiting.
enum Event {
    Read(io::Result<usize>),
    /// The socket has input (read with `try_read_buf`).
    Readable(io::Result<()>),
    /// Output that did not fit the socket may be written now.
    Writable(io::Result<()>),
    Mail(Option<Msg>),
    Close,
    Idle,
    Deadline,
}

struct Conn {
    shared: Arc<RedisShared>,
    handle: Arc<ClientHandle>,
    rx: mpsc::UnboundedReceiver<Msg>,
    client: redis_store::Client,
    authenticated: bool,
    /// Resumes a multibulk split over several reads without rereading its headers.
    parser: RequestParser,
    /// Queued commands inside `MULTI`.
    multi: Option<Vec<(Found, Args)>>,
    /// A command was rejected while queueing: `EXEC` answers `EXECABORT`.
    multi_error: bool,
    subs: Vec<Bytes>,
    psubs: Vec<Bytes>,
    /// `CLIENT REPLY OFF`.
    reply_off: bool,
    /// `CLIENT REPLY SKIP`: 2 right after it (its own reply), 1 while the next command runs.
    skip_next: u8,
    out: BytesMut,
    close: bool,
    /// When the output first reached the soft limit (unix ms; 0: not reached).
    soft_since_ms: u64,
    shutdown: watch::Receiver<bool>,
    /// Cluster mode: the read barrier shared by reads that arrived together (a write, or new
    /// input, starts a new one).
    fence: cache_cluster::ReadFence,
    /// Cluster mode: the client has watched keys in the replicated keyspace.
    watching: bool,
    /// Pops this connection sent through the log (numbers their ids: [`RedisOp::Pop`]).
    pops_sent: u64,
}

/// A blocking command's deadline (unix ms) as an instant; one too far away to represent is no
/// deadline (it would never come anyway).
fn blocked_deadline(deadline_ms: Option<u64>) -> Option<Instant> {
    deadline_ms
        .and_then(|d| Instant::now().checked_add(Duration::from_millis(d.saturating_sub(now_ms()))))
}

fn ok() -> Outcome {
    Outcome::Reply(Reply::ok())
}

fn err(text: &'static str) -> Outcome {
    Outcome::Reply(Reply::Error(Bytes::from_static(text.as_bytes())))
}

fn bulk_static(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

/// Redis accepts client names of printable ASCII without spaces.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

/// Run `f` on the keyspace: `locked` (inside `EXEC`, which holds the lock for the whole
/// transaction), or under the lock for this call alone.
fn with_ks<R>(
    shared: &RedisShared,
    locked: Option<&mut Keyspace>,
    f: impl FnOnce(&mut Keyspace) -> R,
) -> R {
    match locked {
        Some(ks) => f(ks),
        None => f(&mut shared.ks.lock()),
    }
}

impl Conn {
    /// A new client, registered with the server's client registry.
    fn new(
        shared: Arc<RedisShared>,
        addr: SocketAddr,
        laddr: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Conn {
        let id = shared.next_client_id();
        let (handle, rx) = ClientHandle::new(id, addr, laddr);
        shared.clients.lock().insert(id, handle.clone());
        let authenticated = shared.cfg.read().password.is_none();
        Conn {
            shared,
            handle,
            rx,
            client: redis_store::Client {
                id,
                ..redis_store::Client::default()
            },
            authenticated,
            parser: RequestParser::new(),
            multi: None,
            multi_error: false,
            subs: Vec::new(),
            psubs: Vec::new(),
            reply_off: false,
            skip_next: 0,
            out: BytesMut::new(),
            close: false,
            soft_since_ms: 0,
            shutdown,
            fence: cache_cluster::ReadFence::default(),
            watching: false,
            pops_sent: 0,
        }
    }

    fn subscribed(&self) -> bool {
        !self.subs.is_empty() || !self.psubs.is_empty()
    }

    fn limits(&self, max_bulk_len: u64) -> Limits {
        Limits {
            max_bulk_len,
            authenticated: self.authenticated,
            ..Limits::default()
        }
    }

    /// Append a reply to the output, unless `CLIENT REPLY` silences it.
    fn emit(&mut self, r: Reply) {
        if r.is_error() {
            self.shared.stats.total_error_replies.fetch_add(1, Relaxed);
        }
        if self.reply_off || self.skip_next == 1 {
            return;
        }
        encode(&r, self.client.proto, &mut self.out);
    }

    /// Pub/sub messages are written even when replies are off (as Redis's pushes).
    fn emit_push(&mut self, m: Msg) {
        self.handle.taken(&m);
        let r = match m {
            Msg::Push(r, _) | Msg::Served(r) => r,
            // A wake-up for a blocking pop that already ended.
            Msg::Wake => return,
        };
        encode(&r, self.client.proto, &mut self.out);
    }

    fn deliver(&mut self, o: Outcome) {
        match o {
            Outcome::Reply(r) => self.emit(r),
            Outcome::Many(rs) => rs.into_iter().for_each(|r| self.emit(r)),
            Outcome::Silent | Outcome::Blocked { .. } | Outcome::Sleep(_) | Outcome::Cluster(_) => {
            }
        }
        if self.skip_next > 0 {
            self.skip_next -= 1;
        }
    }

    async fn run(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        let mut buf = BytesMut::new();
        let mut last_active = Instant::now();
        let mut pending: std::collections::VecDeque<cluster::WriteFuture> = Default::default();
        loop {
            let (max_bulk_len, timeout_secs) = {
                let cfg = self.shared.cfg.read();
                (cfg.max_bulk_len, cfg.timeout_secs)
            };
            // Run every complete command buffered. In cluster mode, a run of pipelined data writes
            // is queued for the log together and answered once the run ends.
            while !self.close {
                let limits = self.limits(max_bulk_len);
                let args = match self.parser.parse(&mut buf, &limits) {
                    Ok(Some(args)) => args,
                    Ok(None) => break,
                    Err(e) => {
                        debug!(target: PROTOCOL_TARGET, "redis <{} {e}", self.client.id);
                        self.flush_pipelined(&mut pending).await;
                        encode(&e.reply(), self.client.proto, &mut self.out);
                        self.close = true;
                        break;
                    }
                };
                if !pending.is_empty() && !self.pipelinable(&args) {
                    self.flush_pipelined(&mut pending).await;
                }
                let outcome = match self.execute(args) {
                    Outcome::Cluster(step) => match self.try_pipeline(step, &mut pending) {
                        None => continue,
                        Some(step) => Outcome::Cluster(step),
                    },
                    o => o,
                };
                self.flush_pipelined(&mut pending).await;
                match outcome {
                    Outcome::Blocked { deadline_ms } => {
                        self.write_out(stream, true).await?;
                        match self.wait_blocked(stream, &mut buf, deadline_ms).await? {
                            Some(r) => self.deliver(Outcome::Reply(r)),
                            None => return Ok(()),
                        }
                    }
                    Outcome::Sleep(d) => {
                        self.write_out(stream, true).await?;
                        tokio::time::sleep(d).await;
                        self.deliver(ok());
                    }
                    Outcome::Cluster(step) => {
                        if self.run_replicated(step, stream, &mut buf).await?.is_none() {
                            return Ok(());
                        }
                    }
                    o => self.deliver(o),
                }
                if self.out.len() >= OUT_HIGH_WATER {
                    self.write_out(stream, false).await?;
                }
            }
            self.flush_pipelined(&mut pending).await;
            while let Ok(m) = self.rx.try_recv() {
                self.emit_push(m);
            }
            self.write_out(stream, self.close).await?;
            if self.close || self.handle.is_killed() {
                return Ok(());
            }
            // Wait for input, a message, a kill, the shutdown, or the idle timeout.
            let idle = (timeout_secs > 0 && !self.subscribed())
                .then(|| last_active + Duration::from_secs(timeout_secs));
            buf.reserve(READ_CHUNK);
            let ev = tokio::select! {
                r = stream.readable() => Event::Readable(r),
                r = stream.writable(), if !self.out.is_empty() => Event::Writable(r),
                m = self.rx.recv() => Event::Mail(m),
                _ = self.handle.killed() => Event::Close,
                _ = self.shutdown.changed() => Event::Close,
                _ = tokio::time::sleep_until(idle.unwrap_or_else(Instant::now)), if idle.is_some() => Event::Idle,
            };
            let ev = match ev {
                Event::Readable(Ok(())) => match stream.try_read_buf(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => Event::Read(r),
                },
                Event::Readable(Err(e)) => Event::Read(Err(e)),
                ev => ev,
            };
            match ev {
                Event::Read(Ok(0))
                | Event::Close
                | Event::Mail(None)
                | Event::Deadline
                | Event::Readable(_) => return Ok(()),
                Event::Read(Ok(n)) => {
                    last_active = Instant::now();
                    // Requests sent after this point may follow writes acknowledged elsewhere.
                    self.fence.invalidate();
                    self.shared
                        .stats
                        .net_input_bytes
                        .fetch_add(n as u64, Relaxed);
                }
                Event::Read(Err(e)) | Event::Writable(Err(e)) => return Err(e),
                Event::Writable(Ok(())) => {}
                Event::Mail(Some(m)) => self.emit_push(m),
                Event::Idle => {
                    debug!(target: PROTOCOL_TARGET, "redis <{} closing idle client", self.client.id);
                    return Ok(());
                }
            }
        }
    }

    /// Write the pending output. Without an output-buffer limit for the client's class (the
    /// normal class's default), the write waits until the client takes it, and input is not
    /// read meanwhile: a client that does not read stalls only itself. With a limit, what the
    /// socket does not take stays in the output buffer (unless `must_flush`) and the connection
    /// goes on reading and answering, as Redis does, until the pending output passes the limit
    /// and the client is closed, as Redis closes it.
    async fn write_out(&mut self, stream: &mut TcpStream, must_flush: bool) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let limit: ObufLimit = {
            let cfg = self.shared.cfg.read();
            if self.subscribed() {
                cfg.obuf_pubsub
            } else {
                cfg.obuf_normal
            }
        };
        if limit.hard == 0 && limit.soft == 0 {
            // A client that never reads stalls here; `CLIENT KILL` and shutdown still end it.
            let handle = &self.handle;
            let shutdown = &mut self.shutdown;
            tokio::select! {
                r = stream.write_all(&self.out) => r?,
                _ = handle.killed() => return Err(io::Error::other("killed while writing")),
                _ = shutdown.changed() => return Err(io::Error::other("shut down while writing")),
            }
            self.shared
                .stats
                .net_output_bytes
                .fetch_add(self.out.len() as u64, Relaxed);
            self.out.clear();
            return Ok(());
        }
        loop {
            match stream.try_write(&self.out) {
                Ok(n) => {
                    self.shared
                        .stats
                        .net_output_bytes
                        .fetch_add(n as u64, Relaxed);
                    self.out.advance(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.out.is_empty() {
                self.soft_since_ms = 0;
                return Ok(());
            }
            if self.handle.is_killed() || *self.shutdown.borrow() {
                return Err(io::Error::other("closed while writing"));
            }
            let pending = self.out.len() as u64 + self.handle.pending();
            if limit.exceeded(pending, &mut self.soft_since_ms, now_ms()) {
                tracing::warn!(
                    target: PROTOCOL_TARGET,
                    "Client id={} addr={} closed for overcoming of output buffer limits.",
                    self.client.id,
                    self.handle.addr
                );
                return Err(io::Error::other("output buffer limit reached"));
            }
            if !must_flush {
                return Ok(());
            }
            // Wake at least once a second to check the soft limit's clock.
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.writable()).await;
        }
    }

    /// What wakes a blocked connection: its mailbox, input (read while it has room, so a client
    /// that pipelines behind a blocking command is not lost), a kill or the shutdown, the
    /// deadline.
    async fn blocked_event(
        &mut self,
        stream: &mut TcpStream,
        buf: &mut BytesMut,
        deadline: Option<Instant>,
    ) -> Event {
        let can_read = buf.len() < BLOCKED_INPUT_MAX;
        if can_read {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            m = self.rx.recv() => Event::Mail(m),
            r = stream.read_buf(buf), if can_read => Event::Read(r),
            _ = self.handle.killed() => Event::Close,
            _ = self.shutdown.changed() => Event::Close,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Event::Deadline,
        }
    }

    /// Wait for a blocked command's reply: served by another client's write, or the deadline
    /// (the store's timeout reply), while noticing the client closing. `None`: the connection
    /// must close.
    async fn wait_blocked(
        &mut self,
        stream: &mut TcpStream,
        buf: &mut BytesMut,
        deadline_ms: Option<u64>,
    ) -> io::Result<Option<Reply>> {
        self.handle.info.lock().blocked = true;
        self.shared.stats.blocked.fetch_add(1, Relaxed);
        let deadline = blocked_deadline(deadline_ms);
        let result = loop {
            let ev = self.blocked_event(stream, buf, deadline).await;
            match ev {
                Event::Mail(Some(Msg::Served(r))) => break Some(r),
                Event::Mail(Some(Msg::Wake)) => {}
                Event::Mail(Some(m)) => {
                    self.emit_push(m);
                    self.write_out(stream, false).await?;
                }
                Event::Read(Ok(n)) if n > 0 => {
                    self.shared
                        .stats
                        .net_input_bytes
                        .fetch_add(n as u64, Relaxed);
                }
                Event::Deadline => break Some(self.cancel_block()),
                Event::Read(_)
                | Event::Readable(_)
                | Event::Close
                | Event::Mail(None)
                | Event::Idle
                | Event::Writable(_) => {
                    let _ = self.cancel_block();
                    break None;
                }
            }
        };
        self.handle.info.lock().blocked = false;
        self.shared.stats.blocked.fetch_sub(1, Relaxed);
        Ok(result)
    }

    /// Stop waiting: the store's timeout reply if the client was still blocked, else the reply
    /// it was served with (already in the mailbox: it is delivered under the keyspace lock).
    fn cancel_block(&mut self) -> Reply {
        let cancelled = self.shared.ks.lock().cancel_block(self.client.id);
        if let Some(r) = cancelled {
            return r;
        }
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Served(r)) => return r,
                Ok(m) => self.emit_push(m),
                Err(_) => return Reply::NilArray,
            }
        }
    }

    /// Leave every registry.
    fn cleanup(&mut self) {
        let id = self.client.id;
        if self.shared.cluster.is_some() {
            // The replicated keyspace changes only through the log.
            self.cluster_cleanup();
        } else {
            let mut ks = self.shared.ks.lock();
            // A connection that failed while blocked must leave the wait list too (a reply
            // already served to it is dropped with the connection, as Redis drops it).
            let _ = ks.cancel_block(id);
            ks.unwatch(id);
        }
        for c in std::mem::take(&mut self.subs) {
            self.shared.pubsub.unsubscribe(&c, id);
        }
        for p in std::mem::take(&mut self.psubs) {
            self.shared.pubsub.punsubscribe(&p, id);
        }
        self.shared.clients.lock().remove(&id);
    }

    /// The checks redis-server makes before running a command, then `MULTI` queueing or the
    /// command itself.
    fn execute(&mut self, args: Args) -> Outcome {
        self.shared.stats.total_commands.fetch_add(1, Relaxed);
        let found = match commands::resolve(&args) {
            Ok(f) => f,
            Err(e) => return self.reject(e),
        };
        let spec = found.spec();
        // One clock read and one lock of the connection's details per command.
        let now = now_ms();
        {
            let mut i = self.handle.info.lock();
            i.cmd = spec.name;
            i.last_active_ms = now;
        }
        let top = spec.name.split('|').next().unwrap_or(spec.name);
        if !self.authenticated
            && !spec.flags.has(Flags::NO_AUTH)
            && !matches!(top, "auth" | "hello")
        {
            return self.reject(Reply::error(NOAUTH));
        }
        if self.client.proto == Protocol::Resp2
            && self.subscribed()
            && !commands::allowed_in_subscribed_mode(top)
        {
            return self.reject(commands::not_in_subscribed_mode(spec.name));
        }
        if self.multi.is_some() {
            if spec.flags.has(Flags::NO_MULTI) {
                return self.reject(Reply::error("ERR Command not allowed inside a transaction"));
            }
            if self.shared.cluster.is_some()
                && !matches!(
                    top,
                    "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
                )
                && !cluster::replicable_in_exec(&found)
            {
                return self.reject(Reply::error(format!(
                    "ERR '{}' is not allowed inside a transaction in keel's cluster mode",
                    spec.name
                )));
            }
            if !matches!(
                top,
                "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
            ) {
                // Arguments are slices of the read buffer: copy what outlives this request.
                let owned: Args = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
                if let Some(q) = self.multi.as_mut() {
                    q.push((found, owned));
                    self.handle.info.lock().multi = q.len() as i64;
                }
                return Outcome::Reply(Reply::simple("QUEUED"));
            }
        }
        self.run_command(found, &args, None, now)
    }

    /// A command refused before running: inside `MULTI` it dooms the transaction.
    fn reject(&mut self, e: Reply) -> Outcome {
        if self.multi.is_some() {
            self.multi_error = true;
        }
        Outcome::Reply(e)
    }

    /// Run one command at `now` (ms since the epoch); `locked` is the keyspace when inside
    /// `EXEC` (which holds the lock for the whole transaction).
    fn run_command(
        &mut self,
        found: Found,
        args: &[Bytes],
        locked: Option<&mut Keyspace>,
        now: u64,
    ) -> Outcome {
        let shared = self.shared.clone();
        let spec = found.spec();
        if let Found::Store(cmd, _) = found {
            if self.shared.cluster.is_some() && locked.is_none() {
                return self.cluster_data(cmd, args);
            }
            let db_before = self.client.db;
            let client = &mut self.client;
            let exec = with_ks(&shared, locked, |ks| {
                let r = ks.execute(client, cmd, args, now);
                // Inside EXEC, blocked clients are served once the whole transaction ran
                // (they see its final state), as Redis does.
                if cmd.spec.flags.has(Flags::WRITE) && !client.in_exec {
                    shared.serve_blocked(ks, now);
                }
                r
            });
            if self.client.db != db_before {
                self.handle.info.lock().db = self.client.db;
            }
            return match exec {
                Exec::Reply(r) => Outcome::Reply(r),
                Exec::Blocked { deadline_ms } => {
                    if self.client.in_exec {
                        // The store answers at once inside EXEC; never wait holding the lock.
                        Outcome::Reply(Reply::NilArray)
                    } else {
                        Outcome::Blocked { deadline_ms }
                    }
                }
            };
        }
        match spec.name {
            "auth" => self.auth(args),
            "hello" => self.hello(args),
            "ping" => {
                if args.len() > 2 {
                    return commands::wrong_arity("ping").into();
                }
                if self.client.proto == Protocol::Resp2 && self.subscribed() {
                    let arg = args.get(1).cloned().unwrap_or_default();
                    return Reply::Array(vec![bulk_static("pong"), Reply::Bulk(arg)]).into();
                }
                match args.get(1) {
                    Some(a) => Reply::Bulk(a.clone()).into(),
                    None => Reply::simple("PONG").into(),
                }
            }
            "echo" => Reply::Bulk(args[1].clone()).into(),
            "quit" => {
                self.close = true;
                ok()
            }
            "reset" => {
                self.reset();
                if self.shared.cluster.is_some() {
                    return self.cluster_unwatch(Reply::simple("RESET"));
                }
                Reply::simple("RESET").into()
            }
            name if name.starts_with("client|") => self.client_command(name, args),
            "command" | "command|count" | "command|info" | "command|docs" | "command|list"
            | "command|help" => commands::command(args).into(),
            "info" => self.info_command(args, locked),
            name if name.starts_with("config|") => self.config_command(name, args, locked),
            "time" => admin::time(),
            "lastsave" => Reply::Int(shared.start_unix as i64).into(),
            "save" | "bgsave" => err(admin::NO_DUMP),
            "debug" => self.debug(args, locked.is_some()),
            "multi" => self.multi(),
            "exec" => self.exec(),
            "discard" => self.discard(),
            "watch" => self.watch(args, locked),
            "unwatch" => self.unwatch(locked),
            "subscribe" | "psubscribe" => self.subscribe(spec.name == "psubscribe", &args[1..]),
            "unsubscribe" | "punsubscribe" => {
                self.unsubscribe(spec.name == "punsubscribe", &args[1..])
            }
            "publish" => self.publish(args),
            name if name.starts_with("pubsub|") => self.pubsub_command(name, args),
            // A container without a subcommand never gets here (arity), nor do unknown names.
            other => Reply::error(format!("ERR unknown command '{other}'")).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::admin::parse_seconds;
    use super::auth::same_secret;
    use super::*;
    use redis_store::{Cmd, Command, Spec};

    /// A data command that always blocks for 200 ms (what `BLPOP k 0.2` on an empty list does).
    fn blocks(cmd: &mut Cmd<'_>) -> Exec {
        Exec::Blocked {
            deadline_ms: Some(cmd.now_ms + 200),
        }
    }

    static BLOCKING: Command = Command {
        spec: Spec {
            name: "blocktest",
            arity: 1,
            flags: Flags::BLOCKING.or(Flags::WRITE),
            first_key: 0,
            last_key: 0,
            step: 0,
            categories: &[],
            subcommands: &[],
        },
        run: blocks,
    };

    /// A connection over a real socket pair, and the client's end.
    async fn pair(shared: &Arc<RedisShared>) -> (Conn, TcpStream, TcpStream, watch::Sender<bool>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, addr) = l.accept().await.unwrap();
        let (tx, rx) = watch::channel(false);
        let conn = Conn::new(shared.clone(), addr, addr, rx);
        (conn, server, client, tx)
    }

    #[tokio::test]
    async fn seahubs_password_as_user_name_is_accepted() {
        let settings = crate::config::RedisSettings {
            password: Some("s3cret".into()),
            ..Default::default()
        };
        let shared = Arc::new(RedisShared::new(&settings, 10));
        let (mut conn, _server, _client, _stop) = pair(&shared).await;
        let pw = Some("s3cret");
        // redis-py's reading of `redis://s3cret@host`: user s3cret, empty password.
        assert!(conn.check_password(b"s3cret", b"", pw, false).is_ok());
        assert!(conn.authenticated);
        conn.authenticated = false;
        // Anything else stays refused as in Redis.
        for (user, pass) in [
            (&b"s3cret"[..], &b"x"[..]),
            (b"wrong", b""),
            (b"", b""),
            (b"default", b""),
        ] {
            assert!(
                conn.check_password(user, pass, pw, false).is_err(),
                "{user:?}"
            );
            assert!(!conn.authenticated);
        }
        assert!(conn
            .check_password(b"default", b"s3cret", pw, false)
            .is_ok());
    }

    #[tokio::test]
    async fn blocked_client_gets_the_served_reply_or_leaves_on_close() {
        let shared = Arc::new(RedisShared::new(
            &crate::config::RedisSettings::default(),
            10,
        ));
        let found = Found::Store(&BLOCKING, &BLOCKING.spec);
        let args = vec![Bytes::from_static(b"blocktest")];

        // Served by another client's write: the reply arrives through the mailbox.
        let (mut conn, mut server, _client, _stop) = pair(&shared).await;
        let Outcome::Blocked { deadline_ms } = conn.run_command(found, &args, None, now_ms())
        else {
            panic!("did not block");
        };
        let handle = shared.clients.lock().get(&conn.client.id).cloned().unwrap();
        handle.serve(Reply::Int(7));
        let mut buf = BytesMut::new();
        let r = conn
            .wait_blocked(&mut server, &mut buf, deadline_ms)
            .await
            .unwrap();
        assert_eq!(r, Some(Reply::Int(7)));
        assert_eq!(shared.stats.blocked.load(Relaxed), 0);

        // Inside EXEC a blocking command never waits.
        conn.client.in_exec = true;
        assert!(matches!(
            conn.run_command(found, &args, None, now_ms()),
            Outcome::Reply(Reply::NilArray)
        ));
        conn.client.in_exec = false;

        // The deadline passes: the store's timeout reply (the stand-in store's: a null array).
        let started = std::time::Instant::now();
        let r = conn
            .wait_blocked(&mut server, &mut buf, Some(now_ms() + 100))
            .await
            .unwrap();
        assert_eq!(r, Some(Reply::NilArray));
        assert!(started.elapsed() >= Duration::from_millis(90));

        // Input pipelined behind a blocked command is kept for later, not lost.
        let (mut conn, mut server, mut client, _stop) = pair(&shared).await;
        client.write_all(b"PING\r\n").await.unwrap();
        let mut buf = BytesMut::new();
        let r = conn
            .wait_blocked(&mut server, &mut buf, Some(now_ms() + 300))
            .await
            .unwrap();
        assert_eq!(r, Some(Reply::NilArray));
        assert_eq!(&buf[..], b"PING\r\n");

        // The client closes its socket while blocked: the wait ends at once.
        let (mut conn, mut server, client, _stop) = pair(&shared).await;
        drop(client);
        let started = std::time::Instant::now();
        let r = conn
            .wait_blocked(&mut server, &mut buf, None)
            .await
            .unwrap();
        assert_eq!(r, None);
        assert!(started.elapsed() < Duration::from_secs(5));
        conn.cleanup();
        assert!(!shared.clients.lock().contains_key(&conn.client.id));

        // A deadline beyond what the clock can represent waits like no deadline.
        let (mut conn, mut server, client, _stop) = pair(&shared).await;
        drop(client);
        let r = conn
            .wait_blocked(&mut server, &mut buf, Some(u64::MAX))
            .await
            .unwrap();
        assert_eq!(r, None);

        // CLIENT KILL while blocked ends the wait too.
        let (mut conn, mut server, _client, _stop) = pair(&shared).await;
        let handle = shared.clients.lock().get(&conn.client.id).cloned().unwrap();
        handle.kill();
        let r = conn
            .wait_blocked(&mut server, &mut buf, None)
            .await
            .unwrap();
        assert_eq!(r, None);
    }

    #[test]
    fn names_and_secrets() {
        assert!(valid_name(b"worker-1"));
        assert!(valid_name(b""));
        assert!(!valid_name(b"a b"));
        assert!(!valid_name(b"a\nb"));
        assert!(same_secret(b"pw", b"pw"));
        assert!(!same_secret(b"pw", b"pX"));
        assert!(!same_secret(b"pw", b"pw2"));
        assert_eq!(parse_seconds(b"0.5"), Some(0.5));
        assert_eq!(parse_seconds(b"x"), None);
        assert_eq!(parse_seconds(b"inf"), None);
    }
}
