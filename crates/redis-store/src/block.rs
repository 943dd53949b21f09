//! Clients blocked in `BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH`, `BLMPOP`: who waits on which
//! keys, in arrival order, and which keys received elements since the last serve.

/// Blocked clients and ready keys.
#[derive(Clone, Debug, Default)]
pub struct Blocked {
    /// Keys that received elements and may serve a waiter.
    pub(crate) ready: Vec<(usize, Box<[u8]>)>,
}

impl Blocked {
    pub fn signal_ready(&mut self, db: usize, key: &[u8]) {
        let _ = (db, key);
    }
}
