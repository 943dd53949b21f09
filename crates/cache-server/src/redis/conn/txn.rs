//! Transactions: `MULTI` queues commands, `EXEC` runs them as one unit under the keyspace lock
//! (or answers a null array when a `WATCH`ed key changed), `DISCARD`, `WATCH` and `UNWATCH`.

use bytes::Bytes;
use redis_proto::Reply;
use redis_store::Keyspace;

use super::super::now_ms;
use super::{err, ok, with_ks, Conn, Outcome};

impl Conn {
    pub(super) fn multi(&mut self) -> Outcome {
        if self.multi.is_some() {
            return err("ERR MULTI calls can not be nested");
        }
        self.multi = Some(Vec::new());
        self.multi_error = false;
        self.handle.info.lock().multi = 0;
        ok()
    }

    pub(super) fn discard(&mut self) -> Outcome {
        if self.multi.is_none() {
            return err("ERR DISCARD without MULTI");
        }
        self.discard_multi();
        if self.shared.cluster.is_some() {
            return self.cluster_unwatch(Reply::ok());
        }
        ok()
    }

    pub(super) fn watch(&mut self, args: &[Bytes], locked: Option<&mut Keyspace>) -> Outcome {
        if self.multi.is_some() {
            return err("ERR WATCH inside MULTI is not allowed");
        }
        if self.shared.cluster.is_some() {
            self.watching = true;
            let op = cache_cluster::RedisOp::Watch {
                client: self.global_id(),
                db: self.client.db as u32,
            };
            return self.cluster_bookkeeping(op, &args[1..], super::cluster::After::Reply);
        }
        let (id, db, now) = (self.client.id, self.client.db, now_ms());
        with_ks(&self.shared, locked, |ks| {
            for key in &args[1..] {
                ks.watch(id, db, key, now);
            }
        });
        ok()
    }

    pub(super) fn unwatch(&mut self, locked: Option<&mut Keyspace>) -> Outcome {
        if self.shared.cluster.is_some() {
            return self.cluster_unwatch(Reply::ok());
        }
        let id = self.client.id;
        with_ks(&self.shared, locked, |ks| ks.unwatch(id));
        ok()
    }

    pub(super) fn discard_multi(&mut self) {
        self.multi = None;
        self.multi_error = false;
        self.handle.info.lock().multi = -1;
        if self.shared.cluster.is_none() {
            let id = self.client.id;
            self.shared.ks.lock().unwatch(id);
        }
    }

    pub(super) fn exec(&mut self) -> Outcome {
        let Some(queue) = self.multi.take() else {
            return err("ERR EXEC without MULTI");
        };
        self.handle.info.lock().multi = -1;
        let id = self.client.id;
        if self.multi_error {
            self.multi_error = false;
            let abort = Reply::Error(Bytes::from_static(
                b"EXECABORT Transaction discarded because of previous errors.",
            ));
            if self.shared.cluster.is_some() {
                return self.cluster_unwatch(abort);
            }
            self.shared.ks.lock().unwatch(id);
            return Outcome::Reply(abort);
        }
        if self.shared.cluster.is_some() {
            return self.cluster_exec(queue);
        }
        let shared = self.shared.clone();
        let mut ks = shared.ks.lock();
        let now = now_ms();
        if !ks.exec_allowed(id, now) {
            return Outcome::Reply(Reply::NilArray);
        }
        self.client.in_exec = true;
        let mut replies = Vec::with_capacity(queue.len());
        for (found, args) in queue {
            match self.run_command(found, &args, Some(&mut ks), now_ms()) {
                Outcome::Reply(r) => replies.push(r),
                Outcome::Many(rs) => replies.extend(rs),
                Outcome::Silent => {}
                Outcome::Blocked { .. } => replies.push(Reply::NilArray),
                Outcome::Sleep(_) => replies.push(Reply::ok()),
                // Standalone: never reached (cluster mode replicates the whole EXEC).
                Outcome::Cluster(_) => replies.push(Reply::NilArray),
            }
        }
        self.client.in_exec = false;
        shared.serve_blocked(&mut ks, now_ms());
        Outcome::Reply(Reply::Array(replies))
    }
}
