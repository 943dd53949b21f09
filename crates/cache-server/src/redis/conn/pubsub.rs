//! Pub/sub on the connection: `SUBSCRIBE`/`PSUBSCRIBE` and their `UNSUBSCRIBE`s (the
//! connection's own subscription lists and their confirmations), `PUBLISH` and `PUBSUB`.

use bytes::Bytes;
use redis_proto::Reply;

use super::super::{commands, now_ms};
use super::{bulk_static, err, Conn, Outcome};

impl Conn {
    pub(super) fn sub_counts(&self) {
        let mut i = self.handle.info.lock();
        i.sub = self.subs.len();
        i.psub = self.psubs.len();
    }

    pub(super) fn subscribe(&mut self, pattern: bool, names: &[Bytes]) -> Outcome {
        let kind = if pattern { "psubscribe" } else { "subscribe" };
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let n = Bytes::copy_from_slice(n);
            let list = if pattern {
                &mut self.psubs
            } else {
                &mut self.subs
            };
            if !list.contains(&n) {
                list.push(n.clone());
                if pattern {
                    self.shared.pubsub.psubscribe(&n, &self.handle);
                } else {
                    self.shared.pubsub.subscribe(&n, &self.handle);
                }
            }
            let count = (self.subs.len() + self.psubs.len()) as i64;
            out.push(Reply::Push(vec![
                bulk_static(kind),
                Reply::Bulk(n),
                Reply::Int(count),
            ]));
        }
        self.sub_counts();
        Outcome::Many(out)
    }

    pub(super) fn unsubscribe(&mut self, pattern: bool, names: &[Bytes]) -> Outcome {
        let kind = if pattern {
            "punsubscribe"
        } else {
            "unsubscribe"
        };
        let id = self.client.id;
        let targets: Vec<Bytes> = if names.is_empty() {
            if pattern {
                self.psubs.clone()
            } else {
                self.subs.clone()
            }
        } else {
            names.iter().map(|n| Bytes::copy_from_slice(n)).collect()
        };
        let mut out = Vec::new();
        for n in &targets {
            let list = if pattern {
                &mut self.psubs
            } else {
                &mut self.subs
            };
            if let Some(pos) = list.iter().position(|x| x == n) {
                list.remove(pos);
                if pattern {
                    self.shared.pubsub.punsubscribe(n, id);
                } else {
                    self.shared.pubsub.unsubscribe(n, id);
                }
            }
            let count = (self.subs.len() + self.psubs.len()) as i64;
            out.push(Reply::Push(vec![
                bulk_static(kind),
                Reply::Bulk(n.clone()),
                Reply::Int(count),
            ]));
        }
        if targets.is_empty() {
            let count = (self.subs.len() + self.psubs.len()) as i64;
            out.push(Reply::Push(vec![
                bulk_static(kind),
                Reply::Nil,
                Reply::Int(count),
            ]));
        }
        self.sub_counts();
        Outcome::Many(out)
    }

    pub(super) fn publish(&mut self, args: &[Bytes]) -> Outcome {
        if self.shared.cluster.is_some() {
            // Every node delivers it when it applies the entry.
            return self.cluster_bookkeeping(
                cache_cluster::RedisOp::Publish,
                args,
                super::cluster::After::Publish(Bytes::copy_from_slice(&args[1])),
            );
        }
        let limit = self.shared.cfg.read().obuf_pubsub;
        Reply::Int(
            self.shared
                .pubsub
                .publish(&args[1], &args[2], limit, now_ms()),
        )
        .into()
    }

    /// `PUBSUB <subcommand>`.
    pub(super) fn pubsub_command(&mut self, name: &str, args: &[Bytes]) -> Outcome {
        let shared = &self.shared;
        match name {
            "pubsub|channels" => {
                if args.len() > 3 {
                    return err("ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP.");
                }
                let chans = shared.pubsub.channels(args.get(2).map(|p| &p[..]));
                Reply::Array(chans.into_iter().map(Reply::Bulk).collect()).into()
            }
            "pubsub|numsub" => {
                let mut out = Vec::new();
                for c in &args[2..] {
                    out.push(Reply::Bulk(c.clone()));
                    out.push(Reply::Int(shared.pubsub.numsub(c) as i64));
                }
                Reply::Array(out).into()
            }
            "pubsub|numpat" => Reply::Int(shared.pubsub.numpat() as i64).into(),
            "pubsub|help" => commands::help(
                "PUBSUB",
                &[
                    "CHANNELS [<pattern>]",
                    "    Return the currently active channels matching a <pattern> (default: '*').",
                    "NUMPAT",
                    "    Return number of subscriptions to patterns.",
                    "NUMSUB [<channel> ...]",
                    "    Return the number of subscribers for the specified channels, excluding",
                    "    pattern subscriptions(default: no channels).",
                ],
            )
            .into(),
            other => Reply::error(format!("ERR unknown command '{other}'")).into(),
        }
    }
}
