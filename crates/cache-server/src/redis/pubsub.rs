//! The pub/sub registry shared by every worker thread: channel and pattern subscriptions, and
//! `PUBLISH`'s delivery to each subscriber's mailbox, with the pubsub output-buffer limit.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use redis_proto::Reply;

use super::limits::ObufLimit;
use super::ClientHandle;

#[derive(Default)]
struct Inner {
    /// channel -> subscribers, in subscription order.
    channels: HashMap<Bytes, Vec<Arc<ClientHandle>>>,
    /// pattern -> subscribers.
    patterns: HashMap<Bytes, Vec<Arc<ClientHandle>>>,
}

/// Subscriptions of every client.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

fn add(map: &mut HashMap<Bytes, Vec<Arc<ClientHandle>>>, key: &Bytes, h: &Arc<ClientHandle>) {
    let subs = map.entry(key.clone()).or_default();
    if !subs.iter().any(|s| s.id == h.id) {
        subs.push(h.clone());
    }
}

fn del(map: &mut HashMap<Bytes, Vec<Arc<ClientHandle>>>, key: &[u8], id: u64) {
    if let Some(subs) = map.get_mut(key) {
        subs.retain(|s| s.id != id);
        if subs.is_empty() {
            map.remove(key);
        }
    }
}

/// The size a message is accounted at against the output-buffer limit (its RESP2 encoding,
/// near enough: the framing is a few bytes per element).
fn message_size(parts: &[&[u8]]) -> u64 {
    parts.iter().map(|p| p.len() as u64 + 16).sum::<u64>() + 8
}

impl Registry {
    /// Subscribe `h` to `channel` (the connection keeps its own list for replies' counts).
    pub fn subscribe(&self, channel: &Bytes, h: &Arc<ClientHandle>) {
        add(&mut self.inner.lock().channels, channel, h);
    }

    pub fn unsubscribe(&self, channel: &[u8], id: u64) {
        del(&mut self.inner.lock().channels, channel, id);
    }

    pub fn psubscribe(&self, pattern: &Bytes, h: &Arc<ClientHandle>) {
        add(&mut self.inner.lock().patterns, pattern, h);
    }

    pub fn punsubscribe(&self, pattern: &[u8], id: u64) {
        del(&mut self.inner.lock().patterns, pattern, id);
    }

    /// Deliver `message` to `channel`'s subscribers and the matching patterns' subscribers;
    /// returns how many received it (`PUBLISH`'s reply). A subscriber whose pending messages
    /// exceed `limit` is disconnected instead.
    pub fn publish(&self, channel: &[u8], message: &[u8], limit: ObufLimit, now_ms: u64) -> i64 {
        let mut inner = self.inner.lock();
        let Inner { channels, patterns } = &mut *inner;
        let mut receivers = 0;
        if let Some(subs) = channels.get_mut(channel) {
            let ch = Bytes::copy_from_slice(channel);
            let msg = Bytes::copy_from_slice(message);
            let size = message_size(&[b"message", channel, message]);
            for s in subs.iter().filter(|s| !s.is_killed()) {
                let reply = Reply::Push(vec![
                    Reply::Bulk(Bytes::from_static(b"message")),
                    Reply::Bulk(ch.clone()),
                    Reply::Bulk(msg.clone()),
                ]);
                s.push(reply, size, limit, now_ms);
                receivers += 1;
            }
            // A subscriber this message put over its limit is gone for every later command,
            // as Redis frees it before running the next one.
            subs.retain(|s| !s.is_killed());
            if subs.is_empty() {
                channels.remove(channel);
            }
        }
        for (pattern, subs) in patterns.iter_mut() {
            if !redis_store::glob::matches(pattern, channel) {
                continue;
            }
            let size = message_size(&[b"pmessage", pattern, channel, message]);
            for s in subs.iter().filter(|s| !s.is_killed()) {
                let reply = Reply::Push(vec![
                    Reply::Bulk(Bytes::from_static(b"pmessage")),
                    Reply::Bulk(pattern.clone()),
                    Reply::bulk(channel),
                    Reply::bulk(message),
                ]);
                s.push(reply, size, limit, now_ms);
                receivers += 1;
            }
            subs.retain(|s| !s.is_killed());
        }
        patterns.retain(|_, subs| !subs.is_empty());
        receivers
    }

    /// How many subscriptions a message on `channel` would reach now (its subscribers and the
    /// matching patterns' subscribers): `PUBLISH`'s reply in cluster mode, where the message
    /// is delivered when this node applies it.
    pub fn receivers(&self, channel: &[u8]) -> usize {
        let inner = self.inner.lock();
        let live = |subs: &Vec<Arc<ClientHandle>>| subs.iter().filter(|s| !s.is_killed()).count();
        inner.channels.get(channel).map_or(0, live)
            + inner
                .patterns
                .iter()
                .filter(|(p, _)| redis_store::glob::matches(p, channel))
                .map(|(_, subs)| live(subs))
                .sum::<usize>()
    }

    /// `PUBSUB CHANNELS [pattern]`: active channels (with at least one subscriber).
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let inner = self.inner.lock();
        let mut out: Vec<Bytes> = inner
            .channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| redis_store::glob::matches(p, c)))
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// `PUBSUB NUMSUB`: subscribers of one channel.
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.inner
            .lock()
            .channels
            .get(channel)
            .map_or(0, |subs| subs.iter().filter(|s| !s.is_killed()).count())
    }

    /// `PUBSUB NUMPAT`: patterns with at least one subscriber.
    pub fn numpat(&self) -> usize {
        self.inner.lock().patterns.len()
    }

    /// `INFO stats`' `pubsub_channels`.
    pub fn numchannels(&self) -> usize {
        self.inner.lock().channels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::Msg;

    fn client(id: u64) -> (Arc<ClientHandle>, tokio::sync::mpsc::UnboundedReceiver<Msg>) {
        ClientHandle::new(id, ([127, 0, 0, 1], 1).into(), ([127, 0, 0, 1], 2).into())
    }

    #[test]
    fn receivers_counts_what_publish_reaches() {
        let r = Registry::default();
        let (a, _ra) = client(1);
        let (b, _rb) = client(2);
        r.subscribe(&Bytes::from_static(b"news"), &a);
        r.psubscribe(&Bytes::from_static(b"n*"), &b);
        r.psubscribe(&Bytes::from_static(b"x*"), &b);
        assert_eq!(r.receivers(b"news"), 2);
        assert_eq!(r.receivers(b"nope"), 1);
        assert_eq!(r.receivers(b"other"), 0);
        assert_eq!(
            r.publish(b"news", b"m", ObufLimit::PUBSUB, 0),
            r.receivers(b"news") as i64
        );
    }

    #[test]
    fn publish_reaches_channel_subscribers_once() {
        let r = Registry::default();
        let (a, mut arx) = client(1);
        let (b, mut brx) = client(2);
        let ch = Bytes::from_static(b"news");
        r.subscribe(&ch, &a);
        r.subscribe(&ch, &a); // twice: still one subscription
        r.subscribe(&ch, &b);
        assert_eq!(r.numsub(b"news"), 2);
        assert_eq!(r.publish(b"news", b"hi", ObufLimit::PUBSUB, 1), 2);
        assert_eq!(r.publish(b"other", b"hi", ObufLimit::PUBSUB, 1), 0);
        match arx.try_recv() {
            Ok(Msg::Push(Reply::Push(parts), _)) => {
                assert_eq!(parts[0], Reply::Bulk(Bytes::from_static(b"message")));
                assert_eq!(parts[2], Reply::Bulk(Bytes::from_static(b"hi")));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(arx.try_recv().is_err());
        assert!(brx.try_recv().is_ok());
        assert!(a.pending() > 0);
        r.unsubscribe(b"news", 1);
        assert_eq!(r.numsub(b"news"), 1);
        r.unsubscribe(b"news", 2);
        assert_eq!(r.numsub(b"news"), 0);
        assert!(r.channels(None).is_empty());
    }

    #[test]
    fn subscriber_over_hard_limit_is_killed() {
        let r = Registry::default();
        let (a, _arx) = client(1);
        let ch = Bytes::from_static(b"c");
        r.subscribe(&ch, &a);
        let limit = ObufLimit {
            hard: 1000,
            soft: 0,
            soft_secs: 0,
        };
        let big = vec![b'x'; 600];
        r.publish(b"c", &big, limit, 1);
        assert!(!a.is_killed());
        r.publish(b"c", &big, limit, 2);
        assert!(a.is_killed());
    }

    #[test]
    fn taking_a_message_frees_its_bytes() {
        let (a, mut arx) = client(1);
        a.push(Reply::Int(1), 100, ObufLimit::PUBSUB, 1);
        assert_eq!(a.pending(), 100);
        let m = arx.try_recv().unwrap();
        a.taken(&m);
        assert_eq!(a.pending(), 0);
    }
}
