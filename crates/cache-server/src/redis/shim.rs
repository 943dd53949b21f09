//! TEMPORARY stand-in for the parts of `redis_store::Keyspace`'s API that the store's own
//! branch adds (blocking: `serve_blocked`/`cancel_block`; `WATCH`: `watch`/`unwatch`/
//! `exec_allowed`; `active_expire`). The server calls them with method syntax, so once the
//! store's inherent methods exist they take precedence over this trait and these stubs are
//! never called: delete this file (and its `use` in `mod.rs` and `conn.rs`) after the merge.
//!
//! The stubs behave as a store without those features: nothing is ever blocked or served,
//! `EXEC` is always allowed, nothing expires actively.

use redis_proto::Reply;
use redis_store::Keyspace;

/// The store API the server needs and the store branch provides.
#[allow(dead_code)]
pub trait StoreApi {
    fn serve_blocked(&mut self, now_ms: u64) -> Vec<(u64, Reply)>;
    fn cancel_block(&mut self, client_id: u64) -> Option<Reply>;
    fn watch(&mut self, client_id: u64, db: usize, key: &[u8], now_ms: u64);
    fn unwatch(&mut self, client_id: u64);
    fn exec_allowed(&mut self, client_id: u64, now_ms: u64) -> bool;
    fn active_expire(&mut self, now_ms: u64, max_effort: usize) -> usize;
}

impl StoreApi for Keyspace {
    fn serve_blocked(&mut self, _now_ms: u64) -> Vec<(u64, Reply)> {
        Vec::new()
    }
    fn cancel_block(&mut self, _client_id: u64) -> Option<Reply> {
        Some(Reply::NilArray)
    }
    fn watch(&mut self, _client_id: u64, _db: usize, _key: &[u8], _now_ms: u64) {}
    fn unwatch(&mut self, _client_id: u64) {}
    fn exec_allowed(&mut self, _client_id: u64, _now_ms: u64) -> bool {
        true
    }
    fn active_expire(&mut self, _now_ms: u64, _max_effort: usize) -> usize {
        0
    }
}
