//! keel's Redis keyspace: what `keel cache --redis-port` serves. It holds Redis's data types
//! (strings, lists, hashes, sets) in 16 numbered databases with millisecond expiry, under a
//! memory limit with Redis's eviction policies, and runs the data commands (keys, strings,
//! lists, hashes, sets, `WATCH` bookkeeping, blocking pops) with redis-server 7.0's replies and
//! errors.
//!
//! # Contract
//! * I/O-free and single-threaded: the server runs commands under one lock, so a command (and a
//!   `MULTI`/`EXEC` block) is atomic, as in Redis. Connection state the store needs (selected
//!   database, protocol version, client id) comes in a [`Client`].
//! * Deterministic: the same sequence of calls with the same `now_ms` gives the same contents,
//!   replies, iteration orders and eviction choices (hashing uses fixed seeds; "random" commands
//!   draw from the keyspace's own seeded generator). The replicated tier relies on this.
//! * Values are copied out of request buffers when stored, never kept as slices of them.
//! * Never panics on any input.

use bytes::Bytes;
pub use redis_proto::{Protocol, Reply};

pub mod args;
pub mod block;
pub mod cmd;
pub mod commands;
pub mod db;
pub mod errors;
pub mod evict;
pub mod glob;
pub mod keyspace;
pub mod num;
pub mod replica;
pub mod strvalue;
pub mod types;
pub mod watch;

pub use commands::{lookup, Command, Flags, Handler, Spec};
pub use keyspace::{Config, Keyspace, Policy, Stats};
pub use replica::ImportError;

/// What the store needs to know about the connection running a command.
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// Unique per connection; names the client in blocking and `WATCH` bookkeeping.
    pub id: u64,
    /// The selected database (`SELECT`), `0..databases`.
    pub db: usize,
    pub proto: Protocol,
    /// Running inside `EXEC`: blocking commands answer at once instead of blocking.
    pub in_exec: bool,
}

/// A command's result.
#[derive(Debug, PartialEq)]
pub enum Exec {
    Reply(Reply),
    /// The command blocks (`BLPOP` on empty lists): the client was registered and will get its
    /// reply from `Keyspace::serve_blocked` (which the server calls after every command or
    /// `EXEC`), or `deadline_ms` (absolute unix ms; `None`: forever) passes, or the client
    /// disconnects, and the server calls `Keyspace::cancel_block`, which answers the timeout
    /// reply if the client was still blocked.
    Blocked {
        deadline_ms: Option<u64>,
    },
}

impl From<Reply> for Exec {
    fn from(r: Reply) -> Exec {
        Exec::Reply(r)
    }
}

/// One command being run: the handler's view of the world.
pub struct Cmd<'a> {
    pub ks: &'a mut Keyspace,
    pub client: &'a mut Client,
    /// The arguments, `args[0]` being the command name; arity was checked by the caller.
    pub args: &'a [Bytes],
    /// Unix time in milliseconds, chosen by the caller (the leader, in the replicated tier).
    pub now_ms: u64,
}

#[cfg(test)]
mod tests;
