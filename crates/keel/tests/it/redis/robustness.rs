//! Bad input and slow clients as Redis handles them, against keel and (to prove each test)
//! against redis-server: a subscriber that never reads is disconnected at the pubsub class's
//! output-buffer limit (32 MiB hard by default) while every other client is served; big values
//! and deep pipelines round-trip intact; expired keys nobody touches are removed by the active
//! expiry cycle.

use std::time::{Duration, Instant};

use test_harness::redis::{encode_command, CloseCheck};
use test_harness::{show, RedisOpts, RedisServer};

use super::{start_keel_redis, start_redis_server};

/// A subscriber that never reads while 64 MiB of messages are published to it is disconnected
/// (it is no longer counted by PUBSUB NUMSUB and its socket reaches EOF); other clients are not
/// affected and the publisher never blocks.
fn slow_subscriber_is_disconnected(server: &RedisServer) {
    let mut slow = server.connect().expect("connect");
    slow.send(&encode_command(&["SUBSCRIBE", "feed"]))
        .expect("subscribe");
    let mut publisher = server.connect().expect("connect");
    let mut watcher = server.connect().expect("connect");
    let deadline = Instant::now() + Duration::from_secs(5);
    while watcher.cmd(&["PUBSUB", "NUMSUB", "feed"]).expect("numsub")
        != b"*2\r\n$4\r\nfeed\r\n:1\r\n"
    {
        assert!(Instant::now() < deadline, "subscriber never counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Publish 100 KiB messages until one reaches nobody. What the kernel buffers for the
    // socket (up to tcp_rmem's maximum, 32 MiB on Debian, plus the send buffer) comes on top of
    // the server's 32 MiB limit, so the count needed varies; 256 MiB is far beyond both.
    let payload = vec![b'm'; 100 * 1024];
    let started = Instant::now();
    let mut published = 0;
    loop {
        let r = publisher
            .cmd(&[&b"PUBLISH"[..], b"feed", &payload])
            .expect("publish");
        published += 1;
        if r == b":0\r\n" {
            break;
        }
        assert_eq!(show(&r), show(b":1\r\n"), "{}", server.name());
        assert!(
            published < 2560,
            "{}: 256 MiB published and the slow subscriber still receives",
            server.name()
        );
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "publishing {published} messages took {took:?}: the publisher was held up by the slow subscriber"
    );
    assert_eq!(
        watcher.cmd(&["PUBSUB", "NUMSUB", "feed"]).expect("numsub"),
        b"*2\r\n$4\r\nfeed\r\n:0\r\n"
    );
    assert_eq!(watcher.cmd(&["PING"]).expect("ping"), b"+PONG\r\n");
    // the slow subscriber gets what was already in its socket, then EOF
    slow.set_read_timeout(Duration::from_secs(5))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match slow.check_closed(Duration::from_secs(2)).expect("read") {
            CloseCheck::Closed | CloseCheck::Data { closed: true, .. } => break,
            CloseCheck::Open => panic!("the slow subscriber's connection is still open"),
            CloseCheck::Data { closed: false, .. } => {
                assert!(Instant::now() < deadline, "never reached EOF");
            }
        }
    }
}

/// A 16 MiB value and a 10,000-command pipeline round-trip intact.
fn big_values_and_deep_pipelines(server: &RedisServer) {
    let mut c = server.connect().expect("connect");
    let value: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        c.cmd(&[&b"SET"[..], b"big", &value]).expect("set"),
        b"+OK\r\n"
    );
    let got = c.cmd(&["GET", "big"]).expect("get");
    let mut want = format!("${}\r\n", value.len()).into_bytes();
    want.extend_from_slice(&value);
    want.extend_from_slice(b"\r\n");
    assert!(got == want, "16 MiB value came back different");
    let mut msg = Vec::new();
    for i in 0..10_000 {
        msg.extend(encode_command(&["RPUSH", "deep", &i.to_string()]));
    }
    c.send(&msg).expect("send pipeline");
    for i in 0..10_000 {
        let r = c.read_reply().expect("reply");
        assert_eq!(r, format!(":{}\r\n", i + 1).into_bytes(), "reply {i}");
    }
    assert_eq!(
        c.cmd(&["LINDEX", "deep", "-1"]).expect("lindex"),
        b"$4\r\n9999\r\n"
    );
}

/// Keys that expire and are never touched again are removed by the active expiry cycle: DBSIZE
/// (which does not expire keys lazily) drops to 0 within a few seconds.
fn expired_keys_are_removed_by_the_active_cycle(server: &RedisServer) {
    let mut c = server.connect().expect("connect");
    let mut msg = Vec::new();
    for i in 0..20_000 {
        msg.extend(encode_command(&[
            "SET",
            &format!("exp:{i}"),
            "0123456789012345678901234567890123456789",
            "PX",
            "200",
        ]));
    }
    c.send(&msg).expect("send");
    for _ in 0..20_000 {
        assert_eq!(c.read_reply().expect("reply"), b"+OK\r\n");
    }
    assert_eq!(c.cmd(&["SET", "keep", "v"]).expect("set"), b"+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = c.cmd(&["DBSIZE"]).expect("dbsize");
        if n == b":1\r\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: DBSIZE still {} 15 s after 20,000 keys expired",
            server.name(),
            show(&n)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.cmd(&["GET", "keep"]).expect("get"), b"$1\r\nv\r\n");
}

macro_rules! robustness_tests {
    ($($name:ident;)*) => {
        mod against_redis_server {
            use super::*;
            $(#[test] fn $name() { super::$name(&start_redis_server(&RedisOpts::default())); })*
        }
        mod against_keel {
            use super::*;
            $(#[test] fn $name() { super::$name(&start_keel_redis(&RedisOpts::default())); })*
        }
    };
}

robustness_tests! {
    slow_subscriber_is_disconnected;
    big_values_and_deep_pipelines;
    expired_keys_are_removed_by_the_active_cycle;
}
