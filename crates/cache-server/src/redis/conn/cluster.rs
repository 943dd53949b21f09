//! Cluster mode (`keel cache --cluster-id ... --redis-port ...`): how a connection runs
//! commands against the tier's replicated keyspace instead of a keyspace of its own.
//!
//! * Writes (`write` flag), `EXEC`, `WATCH`, `UNWATCH` and `PUBLISH` are log entries
//!   ([`cache_cluster::RedisOp`]); the reply is the one the leader made when it applied the
//!   entry, in this client's protocol. A connection's entries enter the log in its order.
//! * Reads run on this node's replica after a read barrier (linearizable: a read that starts
//!   after a write was answered, on any node, sees it), with the replicated clock. One
//!   barrier serves a run of reads that arrived together; a write in between starts a new one.
//! * Blocking pops are sent as non-blocking pops; when the lists are empty the connection
//!   waits for this node to apply a push onto one of them ([`super::super::replicated`]) and
//!   sends the pop again, until the timeout.
//! * Every list pop (blocking or not) carries an id, and one whose outcome is unknown is sent
//!   again under that id until the outcome is known ([`cache_cluster::Cluster::redis_pop`]):
//!   the log applies an id once, so an element taken by a pop is answered to its client.
//! * Errors of the cluster (no leader yet, no majority, a timeout) answer
//!   `-CLUSTERDOWN <reason>`: the command certainly did not run, or, for a write whose outcome
//!   is unknown (the connection to the leader broke after sending), may have.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use cache_cluster::{ClusterError, RedisOp, RedisOutcome, RedisReplica};
use redis_proto::{Args, Protocol, Reply};
use redis_store::Command;
use tokio::net::TcpStream;

use super::*;

/// What a connection asks the cluster to do for one command (see [`Conn::run_replicated`]).
pub(super) enum ClusterStep {
    /// A log entry; then answer per [`After`].
    Write {
        op: RedisOp,
        args: Vec<u8>,
        after: After,
    },
    /// A read on the local replica after the read barrier.
    Read { cmd: &'static Command, args: Args },
    /// A blocking pop: `argv` is sent as a non-blocking pop until it finds an element or the
    /// deadline (unix ms; `None`: forever) passes.
    Block {
        argv: Args,
        keys: Vec<Bytes>,
        deadline_ms: Option<u64>,
    },
    /// `PUBSUB CHANNELS|NUMSUB|NUMPAT`, asked of every node.
    Pubsub(cache_cluster::redis::PubsubQuery),
}

/// A pipelined write in flight (already queued for the log, in request order).
pub(super) type WriteFuture =
    Pin<Box<dyn Future<Output = Result<RedisOutcome, ClusterError>> + Send>>;

/// How to answer once a log entry was applied.
pub(super) enum After {
    /// The entry's reply.
    Reply,
    /// `PUBLISH`: the number of this node's subscribers the message goes to.
    Publish(Bytes),
    /// A fixed reply (`DISCARD`, `RESET`: the unwatch is bookkeeping).
    Fixed(Reply),
}

/// The reply to a cluster error.
pub(super) fn cluster_error(e: &ClusterError) -> Reply {
    Reply::error(format!("CLUSTERDOWN {e}"))
}

/// The keys a blocking list command waits on, and its timeout argument.
pub(super) fn blocking_keys(args: &[Bytes]) -> Option<(Vec<Bytes>, &Bytes)> {
    let name = args.first()?.to_ascii_lowercase();
    match name.as_slice() {
        b"blpop" | b"brpop" => {
            let (timeout, keys) = args[1..].split_last()?;
            Some((keys.to_vec(), timeout))
        }
        b"blmove" | b"brpoplpush" => Some((vec![args.get(1)?.clone()], args.last()?)),
        b"blmpop" => {
            let numkeys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            let keys = args.get(3..3usize.checked_add(numkeys)?)?;
            Some((keys.to_vec(), args.get(1)?))
        }
        _ => None,
    }
}

/// Whether `cmd` is a non-blocking list pop (sent as a [`RedisOp::Pop`]).
fn is_list_pop(cmd: &Command) -> bool {
    matches!(
        cmd.spec.name,
        "lpop" | "rpop" | "rpoplpush" | "lmove" | "lmpop"
    )
}

/// Whether a queued command may be part of a replicated transaction (data commands, and the
/// connection commands the log can run: see [`cache_cluster::redis`]).
pub(super) fn replicable_in_exec(found: &Found) -> bool {
    match found {
        Found::Store(..) => true,
        Found::Server(spec) => matches!(spec.name, "select" | "ping" | "echo" | "publish"),
    }
}

impl Conn {
    /// This node's tier-wide id for the connection's client (WATCH state is replicated).
    pub(super) fn global_id(&self) -> u64 {
        let node = self.shared.cluster.as_ref().map_or(0, |c| c.id());
        RedisReplica::global_client_id(node, self.client.id)
    }

    /// A one-command entry for this client.
    pub(super) fn run_op(&self, noblock: bool) -> RedisOp {
        RedisOp::Run {
            client: self.global_id(),
            db: self.client.db as u32,
            resp3: self.client.proto == Protocol::Resp3,
            noblock,
        }
    }

    /// A list pop entry for this client, with a new id. `block`: a blocking pop (answered at
    /// once, flagged empty, when the lists are empty).
    pub(super) fn pop_op(&mut self, block: bool) -> RedisOp {
        self.pops_sent += 1;
        RedisOp::Pop {
            client: self.global_id(),
            db: self.client.db as u32,
            resp3: self.client.proto == Protocol::Resp3,
            block,
            id: RedisReplica::pop_id(self.global_id(), self.pops_sent),
        }
    }

    /// A data command in cluster mode: a write through the log, a read on the replica, or a
    /// blocking pop.
    pub(super) fn cluster_data(&mut self, cmd: &'static Command, args: &[Bytes]) -> Outcome {
        let owned: Args = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        let flags = cmd.spec.flags;
        if flags.has(Flags::BLOCKING) {
            if let Some((keys, timeout)) = blocking_keys(&owned) {
                match redis_store::block::parse_timeout(timeout) {
                    Ok(t) => {
                        let deadline_ms = t.map(|ms| now_ms().saturating_add(ms));
                        return Outcome::Cluster(ClusterStep::Block {
                            argv: owned,
                            keys,
                            deadline_ms,
                        });
                    }
                    Err(e) => return Outcome::Reply(e),
                }
            }
        }
        if flags.has(Flags::WRITE) || flags.has(Flags::BLOCKING) {
            let args = cache_cluster::redis::pack_argvs(&[&owned[..]]);
            let op = if is_list_pop(cmd) {
                self.pop_op(false)
            } else {
                self.run_op(true)
            };
            Outcome::Cluster(ClusterStep::Write {
                op,
                args,
                after: After::Reply,
            })
        } else {
            Outcome::Cluster(ClusterStep::Read { cmd, args: owned })
        }
    }

    /// A log entry for this client with a fixed reply (`After::Fixed`).
    pub(super) fn cluster_bookkeeping(&self, op: RedisOp, argv: &[Bytes], then: After) -> Outcome {
        Outcome::Cluster(ClusterStep::Write {
            op,
            args: cache_cluster::redis::pack_argvs(&[argv]),
            after: then,
        })
    }

    /// `UNWATCH` through the log if this client watches keys, else just `then`.
    pub(super) fn cluster_unwatch(&mut self, then: Reply) -> Outcome {
        if !std::mem::take(&mut self.watching) {
            return Outcome::Reply(then);
        }
        let op = RedisOp::Unwatch {
            client: self.global_id(),
        };
        self.cluster_bookkeeping(op, &[], After::Fixed(then))
    }

    /// `EXEC` of the queued commands as one log entry.
    pub(super) fn cluster_exec(&mut self, queue: Vec<(Found, Args)>) -> Outcome {
        self.watching = false;
        let argvs: Vec<&[Bytes]> = queue.iter().map(|(_, a)| &a[..]).collect();
        let args = cache_cluster::redis::pack_argvs(&argvs);
        Outcome::Cluster(ClusterStep::Write {
            op: RedisOp::Exec {
                client: self.global_id(),
                db: self.client.db as u32,
                resp3: self.client.proto == Protocol::Resp3,
            },
            args,
            after: After::Reply,
        })
    }

    /// Append an encoded reply (a log entry's), as [`Conn::emit`] does for a [`Reply`].
    pub(super) fn emit_raw(&mut self, bytes: &[u8]) {
        if bytes.first() == Some(&b'-') {
            self.shared.stats.total_error_replies.fetch_add(1, Relaxed);
        }
        if self.reply_off || self.skip_next == 1 {
            return;
        }
        self.out.extend_from_slice(bytes);
    }

    /// Whether the request is a data write that may be queued behind the connection's other
    /// pipelined writes without waiting for them (it changes no connection state).
    pub(super) fn pipelinable(&self, args: &[Bytes]) -> bool {
        self.shared.cluster.is_some()
            && matches!(commands::resolve(args), Ok(Found::Store(cmd, _))
                if cmd.spec.flags.has(Flags::WRITE) && !cmd.spec.flags.has(Flags::BLOCKING))
    }

    /// Queue a one-command write behind the connection's earlier pipelined writes (they share
    /// group-commit rounds); other steps are handed back to run at once.
    pub(super) fn try_pipeline(
        &mut self,
        step: ClusterStep,
        pending: &mut VecDeque<WriteFuture>,
    ) -> Option<ClusterStep> {
        match (step, self.shared.cluster.as_ref()) {
            (
                ClusterStep::Write {
                    op: op @ RedisOp::Run { .. },
                    args,
                    after: After::Reply,
                },
                Some(c),
            ) => {
                self.fence.invalidate();
                pending.push_back(Box::pin(c.redis_write(op, args)));
                None
            }
            (step, _) => Some(step),
        }
    }

    /// Answer the pipelined writes, in order.
    pub(super) async fn flush_pipelined(&mut self, pending: &mut VecDeque<WriteFuture>) {
        while let Some(f) = pending.pop_front() {
            match f.await {
                Ok(o) => self.emit_raw(&o.reply),
                Err(e) => self.emit(cluster_error(&e)),
            }
            self.deliver(Outcome::Silent);
        }
    }

    /// Run a cluster step and put its reply in the output. `None`: the connection must close.
    pub(super) async fn run_replicated(
        &mut self,
        step: ClusterStep,
        stream: &mut TcpStream,
        buf: &mut BytesMut,
    ) -> io::Result<Option<()>> {
        let Some(cluster) = self.shared.cluster.clone() else {
            self.deliver(err("ERR cluster mode is off"));
            return Ok(Some(()));
        };
        match step {
            ClusterStep::Write { op, args, after } => {
                self.fence.invalidate();
                let written = match op {
                    RedisOp::Pop { .. } => cluster.redis_pop(op, args).await,
                    op => cluster.redis_write(op, args).await,
                };
                match written {
                    Ok(o) => {
                        self.client.db = o.db as usize;
                        self.handle.info.lock().db = self.client.db;
                        match after {
                            After::Reply => self.emit_raw(&o.reply),
                            After::Publish(channel) => {
                                let n = self.shared.pubsub.receivers(&channel);
                                self.emit(Reply::Int(n as i64));
                            }
                            After::Fixed(r) => self.emit(r),
                        }
                    }
                    Err(e) => self.emit(cluster_error(&e)),
                }
                self.deliver(Outcome::Silent);
            }
            ClusterStep::Read { cmd, args } => {
                let client = &mut self.client;
                let r = cluster
                    .redis_read(&mut self.fence, |ks, now| {
                        match ks.execute_readonly(client, cmd, &args, now) {
                            Exec::Reply(r) => r,
                            Exec::Blocked { .. } => Reply::NilArray,
                        }
                    })
                    .await;
                match r {
                    Ok(r) => self.deliver(Outcome::Reply(r)),
                    Err(e) => self.deliver(Outcome::Reply(cluster_error(&e))),
                }
            }
            ClusterStep::Pubsub(q) => {
                let answers = cluster.pubsub_everywhere(q.clone()).await;
                let r = super::super::replicated::merge_pubsub(&q, answers);
                self.deliver(Outcome::Reply(r));
            }
            ClusterStep::Block {
                argv,
                keys,
                deadline_ms,
            } => {
                self.write_out(stream, true).await?;
                let r = self
                    .cluster_block(&cluster, stream, buf, argv, keys, deadline_ms)
                    .await?;
                // Input read while waiting may follow writes acknowledged elsewhere.
                self.fence.invalidate();
                match r {
                    Some(BlockEnd::Raw(o)) => {
                        self.emit_raw(&o.reply);
                        self.deliver(Outcome::Silent);
                    }
                    Some(BlockEnd::Reply(r)) => self.deliver(Outcome::Reply(r)),
                    None => return Ok(None),
                }
            }
        }
        Ok(Some(()))
    }

    /// Pop through the log until an element comes, the deadline passes, or the client leaves.
    async fn cluster_block(
        &mut self,
        cluster: &cache_cluster::Cluster,
        stream: &mut TcpStream,
        buf: &mut BytesMut,
        argv: Args,
        keys: Vec<Bytes>,
        deadline_ms: Option<u64>,
    ) -> io::Result<Option<BlockEnd>> {
        let db = self.client.db;
        let id = self.client.id;
        // Wait on the lists before the first pop: a push applied meanwhile still wakes us.
        self.shared.waiters.add(id, db, &keys);
        self.handle.info.lock().blocked = true;
        self.shared.stats.blocked.fetch_add(1, Relaxed);
        let packed = cache_cluster::redis::pack_argvs(&[&argv[..]]);
        let deadline = blocked_deadline(deadline_ms);
        let result = 'outer: loop {
            let op = self.pop_op(true);
            match cluster.redis_pop(op, packed.clone()).await {
                Ok(o) if !o.empty => break Some(BlockEnd::Raw(o)),
                Ok(_) => {}
                Err(e) => break Some(BlockEnd::Reply(cluster_error(&e))),
            }
            // Nothing yet: wait for a push on this node's replica.
            loop {
                let ev = self.blocked_event(stream, buf, deadline).await;
                match ev {
                    Event::Mail(Some(Msg::Wake)) => continue 'outer,
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
                    Event::Deadline => break 'outer Some(BlockEnd::Reply(Reply::NilArray)),
                    _ => break 'outer None,
                }
            }
        };
        self.shared.waiters.remove(id, db, &keys);
        self.handle.info.lock().blocked = false;
        self.shared.stats.blocked.fetch_sub(1, Relaxed);
        Ok(result)
    }

    /// On disconnect: forget the client's watched keys through the log (in the background).
    pub(super) fn cluster_cleanup(&mut self) {
        if !std::mem::take(&mut self.watching) {
            return;
        }
        if let Some(c) = self.shared.cluster.clone() {
            let op = RedisOp::Unwatch {
                client: self.global_id(),
            };
            let args = cache_cluster::redis::pack_argvs::<Bytes>(&[&[]]);
            tokio::spawn(async move {
                let _ = c.redis_write(op, args).await;
            });
        }
    }
}

/// How a blocking pop ended.
pub(super) enum BlockEnd {
    /// The log's reply (an element, or an error of the command).
    Raw(RedisOutcome),
    /// A reply made here (timeout, cluster error).
    Reply(Reply),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::from(p.to_string())).collect()
    }

    #[test]
    fn blocking_keys_follow_each_commands_layout() {
        let keys = |parts: &[&str]| {
            let args = b(parts);
            blocking_keys(&args).map(|(k, t)| (k, t.clone()))
        };
        let t = |s: &str| Bytes::from(s.to_string());
        assert_eq!(
            keys(&["BRPOP", "a", "b", "5"]),
            Some((b(&["a", "b"]), t("5")))
        );
        assert_eq!(
            keys(&["blmove", "src", "dst", "LEFT", "RIGHT", "0.5"]),
            Some((b(&["src"]), t("0.5")))
        );
        assert_eq!(
            keys(&["BRPOPLPUSH", "src", "dst", "1"]),
            Some((b(&["src"]), t("1")))
        );
        assert_eq!(
            keys(&["BLMPOP", "2", "2", "x", "y", "LEFT"]),
            Some((b(&["x", "y"]), t("2")))
        );
        // Malformed: numkeys past the end, not a number; not a blocking command.
        assert_eq!(keys(&["BLMPOP", "2", "5", "x", "LEFT"]), None);
        assert_eq!(keys(&["BLMPOP", "2", "x", "y"]), None);
        assert_eq!(keys(&["GET", "x"]), None);
    }
}
