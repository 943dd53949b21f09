//! Test harness for keel's integration tests: runs the servers under test (Debian's `memcached`,
//! `keel cache`, and `keel cache` clusters) as real processes, talks to them with tiny blocking
//! clients, and checks the histories the tests record. keel is tested against real peers and real
//! client libraries, not mocks; this crate keeps such tests short to write and safe to run side by
//! side.
//!
//! Every [`Server`] gets a free loopback port, its own temp dir, its own process group and a log
//! file (stdout + stderr) in that dir. Readiness is polled against a real protocol check
//! (`version\r\n` → `VERSION `) with a deadline, never a fixed sleep. On drop the whole process
//! group is SIGKILLed and the child reaped, so a failing test leaves nothing running. Errors carry
//! the command line and the tail of the log so a CI log explains itself.
//!
//! - [`server`]: one server under test; [`cluster`]: N cluster nodes that can be killed, paused,
//!   resumed and restarted on the same ports.
//! - [`client`]: a text-protocol client; [`binary`]: binary-protocol framing written from the
//!   protocol document, independent of the codec under test.
//! - [`redis`]: Debian's redis-server and keel's Redis port under test, and a RESP client.
//! - [`lin`]: the linearizability checker shared by the in-process and the process-level cluster
//!   tests; [`rng`]: a seeded PRNG so a randomized test is reproducible from its seed.
//!
//! This crate must never: listen on or connect to anything but loopback, kill a process it did not
//! start, or kill by name.

#![forbid(unsafe_code)]

pub mod binary;
pub mod client;
pub mod cluster;
pub mod lin;
pub mod redis;
pub mod rng;
pub mod server;

pub use client::{Reply, TextClient};
pub use redis::{keel_redis, redis_server, RedisOpts, RedisServer, Resp, RespClient};
pub use rng::Rng;
pub use server::{keel, memcached, raise_nofile_limit, Error, Server, ServerSpec};

/// Render bytes for humans: printable ASCII as is, `\r\n` kept visible, the rest escaped; long
/// runs are cut in the middle so a 1 MiB value does not flood a CI log.
pub fn show(bytes: &[u8]) -> String {
    const KEEP: usize = 600;
    let render = |b: &[u8]| -> String {
        let mut s = String::new();
        for &c in b {
            match c {
                b'\r' => s.push_str("\\r"),
                b'\n' => s.push_str("\\n\n"),
                b'\\' => s.push_str("\\\\"),
                0x20..=0x7e => s.push(c as char),
                _ => s.push_str(&format!("\\x{c:02x}")),
            }
        }
        s
    };
    if bytes.len() <= 2 * KEEP {
        render(bytes)
    } else {
        format!(
            "{}…[{} bytes elided]…{}",
            render(&bytes[..KEEP]),
            bytes.len() - 2 * KEEP,
            render(&bytes[bytes.len() - KEEP..])
        )
    }
}
