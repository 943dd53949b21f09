//! The keyspace's real footprint under keel's allocator (mimalloc): RSS growth for 1,000,000
//! string keys of 100 bytes, printed beside the accounted `used_memory`. Not a timed
//! assertion; run it by hand, with keel's setting of never purging freed pages:
//! `MIMALLOC_PURGE_DELAY=-1 cargo test -p redis-store --release --test rss -- --ignored --nocapture`
//! (redis-server 7.0.15 grows by ~196 MiB for the same keys).

#![forbid(unsafe_code)]

use redis_store::db::Value;
use redis_store::{Config, Keyspace};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
#[ignore]
fn rss_of_a_million_strings_under_mimalloc() {
    let before = rss_kb();
    let mut ks = Keyspace::new(Config::default());
    let val = vec![b'v'; 100];
    for i in 0..1_000_000u64 {
        let key = format!("key:{i:012}");
        ks.insert(0, key.as_bytes(), Value::Str(val.clone().into()), 0, 0);
    }
    let after = rss_kb();
    println!(
        "mimalloc: 1M x 100-byte strings: accounted {} MiB, RSS growth {} MiB",
        ks.used_memory() >> 20,
        after.saturating_sub(before) >> 10
    );
    assert_eq!(ks.dbsize(0), 1_000_000);
}
