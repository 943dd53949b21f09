//! Read batching: many concurrent linearizable reads share one read-index round.
//!
//! A waiter never joins a round that is already in flight: that round may have fixed its read
//! index before the waiter's request existed, and serving it from that index could miss a write
//! that completed just before the read began. Up to [`MAX_IN_FLIGHT`] rounds run at once, so a
//! waiter that arrives while one is in flight starts (or joins) the next one at once instead of
//! waiting for the first to finish: a read costs about one round trip, not two.

use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::ClusterError;

type Waiter = oneshot::Sender<Result<u64, ClusterError>>;

/// Most rounds of one coalescer in flight at once: enough that a read arriving while rounds are in
/// flight starts its own at once (with the leader's read lease a round is one small request).
pub const MAX_IN_FLIGHT: usize = 8;

#[derive(Default)]
struct State {
    /// Rounds in flight (each driven by its own task).
    running: usize,
    waiters: Vec<Waiter>,
}

/// Coalesces concurrent requests for "a read index fixed after I asked" into rounds.
#[derive(Default, Clone)]
pub struct Coalescer {
    state: Arc<Mutex<State>>,
}

impl Coalescer {
    /// Wait for a round that starts after this call and return its result. A new round starts
    /// at once when fewer than [`MAX_IN_FLIGHT`] are running (it takes every waiter so far);
    /// otherwise the waiter is taken by the next round to start, when one finishes.
    pub async fn wait<F, Fut>(&self, round: F) -> Result<u64, ClusterError>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, ClusterError>> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.state.lock();
            st.waiters.push(tx);
            if st.running < MAX_IN_FLIGHT {
                st.running += 1;
                true
            } else {
                false
            }
        };
        if start {
            let state = self.state.clone();
            // A task of its own: the round must go on even if the caller that started it is
            // cancelled (its client disconnected), or the others would wait forever. The task
            // keeps driving rounds while waiters are left.
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut st = state.lock();
                        if st.waiters.is_empty() {
                            st.running -= 1;
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
        assert!(
            (1..=2 * MAX_IN_FLIGHT as u64).contains(&n),
            "100 concurrent waiters took {n} rounds"
        );
    }

    /// A waiter is only ever answered by a round that started after it arrived.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn rounds_start_after_their_waiters() {
        let c = Coalescer::default();
        let clock = Arc::new(AtomicU64::new(0));
        let mut hs = Vec::new();
        for i in 0..200u64 {
            let (c, clock) = (c.clone(), clock.clone());
            hs.push(tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_micros(i * 37 % 900)).await;
                let arrived = clock.fetch_add(1, SeqCst);
                let started = c
                    .wait(move || {
                        let clock = clock.clone();
                        async move {
                            let t = clock.fetch_add(1, SeqCst);
                            tokio::time::sleep(std::time::Duration::from_micros(300)).await;
                            Ok(t)
                        }
                    })
                    .await
                    .unwrap();
                assert!(
                    started > arrived,
                    "waiter arrived at {arrived}, its round started at {started}"
                );
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        assert_eq!(c.state.lock().running, 0);
    }
}
