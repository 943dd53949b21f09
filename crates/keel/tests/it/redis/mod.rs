//! keel's Redis protocol against Debian's `redis-server` 7.0.15 and real Redis clients.
//!
//! * [`differential`]: scripts of commands (`tests/redis/scripts/*.txt`) sent to redis-server and
//!   to keel, replies compared byte for byte; every script also runs redis-server against
//!   redis-server, which proves the script is deterministic.
//! * [`clients`]: redis-py 6.2 / 8.x / Debian's 4.3.4, Django 5's `RedisCache`, `redis-cli`, and a
//!   C program on Debian's libhiredis doing what seaf-server does.
//! * [`robustness`]: a subscriber that falls behind is disconnected, big values, deep pipelines.
//! * [`cluster`]: Redis on the replicated tier (three `keel cache --cluster-id N --redis-port 0`
//!   nodes): cross-node reads, transactions, expiry, blocking pops, pub/sub, failover and
//!   linearizability under faults.
//!
//! Run: `cargo test -p keel --release --test it redis::` (the `keel_*` tests need keel's Redis
//! server; the `redis_*` ones check the scripts and clients against redis-server alone).

mod clients;
mod cluster;
mod differential;
mod robustness;

use test_harness::{RedisOpts, RedisServer};

use crate::keel_bin;

/// Start `keel cache` with its Redis port and `opts`, or fail the test with the log tail.
pub fn start_keel_redis(opts: &RedisOpts) -> RedisServer {
    test_harness::keel_redis(keel_bin(), opts)
        .unwrap_or_else(|e| panic!("cannot start keel with Redis: {e}"))
}

/// Start Debian's redis-server with `opts`, or fail the test with the log tail.
pub fn start_redis_server(opts: &RedisOpts) -> RedisServer {
    test_harness::redis_server(opts).unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
}
