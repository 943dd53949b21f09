//! What the replicated tier needs from the keyspace beyond the commands: an exact image of the
//! replicated state (snapshots for nodes that join), reads that change no replicated state
//! (served on any replica between log entries), and the keys that received list elements
//! (a node wakes its own clients blocked on them, which then pop through the log).
//!
//! Replicated state is everything a replica's future replies depend on: the databases (entries
//! in map order, expiry, LRU clocks), the accounted memory, the random generator, the active
//! expiry cursors, and the `WATCH` registry (`WATCH`/`UNWATCH`/`EXEC` go through the log). Not
//! replicated: statistics, the blocked-client registry, the ready-key list.

use bytes::Bytes;

use crate::commands::Command;
use crate::keyspace::Keyspace;
use crate::{Client, Exec};

/// A snapshot image that [`Keyspace::import`] could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redis keyspace image: {0}")]
pub struct ImportError(pub String);

impl Keyspace {
    /// Append an exact image of the replicated state to `out` (see the module doc): importing
    /// it into a keyspace with the same [`crate::Config`] gives a keyspace that answers every
    /// later command exactly as this one does.
    pub fn export_into(&self, out: &mut Vec<u8>) {
        let _ = out;
    }

    /// Replace the replicated state with `image` (made by [`Keyspace::export_into`]); the
    /// configuration is kept. On error the keyspace is left empty.
    pub fn import(&mut self, image: &[u8]) -> Result<(), ImportError> {
        let _ = image;
        Ok(())
    }

    /// Run a command that does not write (no `write` flag) without changing replicated state:
    /// expired keys read as missing but stay until the log removes them, LRU clocks are not
    /// touched, random picks (`RANDOMKEY`, `SRANDMEMBER`, `HRANDFIELD`) use a generator of the
    /// replica's own. Statistics (hits, misses) still count.
    pub fn execute_readonly(
        &mut self,
        client: &mut Client,
        command: &Command,
        args: &[Bytes],
        now_ms: u64,
    ) -> Exec {
        self.execute(client, command, args, now_ms)
    }

    /// Keys (database, key) that received list elements since the last call, each once, in
    /// the order they were first signalled. Only recorded when [`crate::Config::track_ready`]
    /// is set (the replicated tier); blocked clients of this keyspace's own registry are not
    /// affected.
    pub fn take_ready_keys(&mut self) -> Vec<(usize, Box<[u8]>)> {
        Vec::new()
    }
}
