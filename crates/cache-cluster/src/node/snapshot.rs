//! Snapshot triggering by log size (openraft counts entries only).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::Inner;

/// openraft triggers snapshots by entry count only; with large values the log could hold far
/// more than the store. Trigger one early when the entries since the last snapshot hold more than
/// [`ClusterConfig::snapshot_log_bytes`]. Woken by the log store when an append leaves the log
/// above the threshold (checks at most every 20 ms), and every 100 ms anyway.
pub(super) async fn log_bytes_loop(inner: Arc<Inner>) {
    let alert = inner.log.alert().clone();
    let threshold =
        || crate::snapshot_trigger_bytes(inner.store.used_bytes(), inner.cfg.snapshot_log_bytes);
    alert.threshold.store(threshold(), Relaxed);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = inner.stop.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = alert.notify.notified() => {}
            _ = super::stopping(&mut stop) => return,
        }
        // Triggering while a build runs is harmless (openraft ignores it), and retrying covers
        // a trigger openraft dropped (e.g. while it was installing a snapshot).
        let snap = inner.metrics.borrow().snapshot;
        let limit = threshold();
        alert.threshold.store(limit, Relaxed);
        if inner.log.bytes_after(snap.map(|l| l.index)) > limit {
            let _ = inner.raft.trigger().snapshot().await;
        }
        // Rate limit: appends may keep signalling while the log stays above the threshold.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = super::stopping(&mut stop) => return,
        }
    }
}
