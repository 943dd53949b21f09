//! Read batching: many concurrent linearizable reads share one read-index round.
//!
//! A waiter that arrives while a round is in flight joins the *next* round, never the current
//! one: the current round may have fixed its read index before the waiter's request existed, and
//! serving it from that index could miss a write that completed just before the read began.

use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::ClusterError;

type Waiter = oneshot::Sender<Result<u64, ClusterError>>;

#[derive(Default)]
struct State {
    running: bool,
    waiters: Vec<Waiter>,
}

/// Coalesces concurrent requests for "a read index fixed after I asked" into rounds.
#[derive(Default, Clone)]
pub struct Coalescer {
    state: Arc<Mutex<State>>,
}

impl Coalescer {
    /// Wait for a round that starts after this call and return its result. `round` is only
    /// invoked by the caller that finds no round running; it then keeps driving rounds until no
    /// one is waiting.
    pub async fn wait<F, Fut>(&self, round: F) -> Result<u64, ClusterError>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, ClusterError>> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.state.lock();
            st.waiters.push(tx);
            !std::mem::replace(&mut st.running, true)
        };
        if start {
            let state = self.state.clone();
            // A task of its own: the round must go on even if the caller that started it is
            // cancelled (its client disconnected), or the others would wait forever.
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut st = state.lock();
                        if st.waiters.is_empty() {
                            st.running = false;
                            return;
                        }
                        std::mem::take(&mut st.waiters)
                    };
                    let r = round().await;
                    for w in batch {
                        let _ = w.send(r.clone());
                    }
                }
            });
        }
        rx.await.map_err(|_| ClusterError::Shutdown)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

    #[tokio::test]
    async fn concurrent_waiters_share_rounds() {
        let c = Coalescer::default();
        let rounds = Arc::new(AtomicU64::new(0));
        let mut hs = Vec::new();
        for _ in 0..100 {
            let c = c.clone();
            let rounds = rounds.clone();
            hs.push(tokio::spawn(async move {
                c.wait(move || {
                    let rounds = rounds.clone();
                    async move {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        Ok(rounds.fetch_add(1, SeqCst) + 1)
                    }
                })
                .await
            }));
        }
        for h in hs {
            assert!(h.await.unwrap().unwrap() >= 1);
        }
        let n = rounds.load(SeqCst);
        assert!((1..=3).contains(&n), "100 concurrent waiters took {n} rounds");
    }
}
