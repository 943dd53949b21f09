//! keel's one integration-test binary (one link step; run with
//! `cargo test -p keel --release --test it`).
//!
//! Every test starts its own servers on their own ports through `test-harness`, so the suite is
//! parallel-safe; servers are killed when their handle drops, even when a test fails.
//!
//! * [`differential`]: the same randomized command streams against keel and Debian's memcached,
//!   replies compared byte for byte (modulo documented differences).
//! * [`clients`]: real clients (libmemcached's `memccapable`, Seafile's python clients).
//! * [`robustness`]: bad input, idle and greedy clients, connection limits, SIGTERM.
//! * [`redis`]: keel's Redis protocol against redis-server 7.0.15 and real Redis clients.
//! * [`tier`]: the Galera tier (filled in by the tier work).

mod adopt;
mod clients;
mod cluster;
mod deploy;
mod differential;
mod proxy;
mod redis;
mod robustness;
mod seafile;
mod tier;

use std::path::{Path, PathBuf};

use test_harness::Server;

/// The `keel` binary Cargo built for this test run.
pub fn keel_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_keel"))
}

/// Start `keel cache` with memcached-style `extra` flags, or fail the test with the log tail.
pub fn start_keel(extra: &[&str]) -> Server {
    test_harness::keel(keel_bin(), extra).unwrap_or_else(|e| panic!("cannot start keel: {e}"))
}

/// Start Debian's memcached with `extra` flags, or fail the test with the log tail.
pub fn start_memcached(extra: &[&str]) -> Server {
    test_harness::memcached(extra).unwrap_or_else(|e| panic!("cannot start memcached: {e}"))
}

/// The repository root (for `tests/clients/*.py`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// One Galera test at a time across every module (each runs three mariadbd, sometimes more, on
/// two shared cores): take this guard first in every test that starts MariaDB.
pub fn galera_lock() -> std::sync::MutexGuard<'static, ()> {
    static GALERA: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GALERA.lock().unwrap_or_else(|e| e.into_inner())
}
