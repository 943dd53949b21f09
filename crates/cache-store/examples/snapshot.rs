//! Snapshot cost: how long [`Store::export`] (the cluster's apply pause) and [`Store::import`]
//! take for N items (keys `key:0000001`.., 100-byte values, 64 shards).
//!
//! `cargo run --release -p cache-store --example snapshot -- 100000 1000000`

use std::time::Instant;

use cache_store::{Store, StoreConfig, StoreReq};

fn main() {
    let counts: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        counts
    };
    for n in counts {
        let cfg = StoreConfig {
            mem_limit: 4 << 30,
            item_size_max: 1 << 20,
            shards: 64,
            reads_mutate: false,
        };
        let s = Store::new(cfg.clone());
        let value = [b'v'; 100];
        for i in 0..n {
            let key = format!("key:{i:07}");
            let r = StoreReq::set(key.as_bytes(), &value);
            s.store(&r, 1_700_000_000);
        }
        let mut best = f64::MAX;
        let mut img = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            img = s.export();
            best = best.min(t.elapsed().as_secs_f64());
        }
        // The same into a buffer whose pages are already faulted in: how much of the pause is
        // page faults of a fresh buffer.
        let mut warm = Vec::with_capacity(img.len() + 4096);
        s.export_into(&mut warm);
        let mut best_warm = f64::MAX;
        for _ in 0..3 {
            warm.clear();
            let t = Instant::now();
            s.export_into(&mut warm);
            best_warm = best_warm.min(t.elapsed().as_secs_f64());
        }
        drop(warm);
        let t = Instant::now();
        let r = Store::from_export(cfg, &img).expect("import");
        let import = t.elapsed();
        assert_eq!(r.stats().curr_items, n);
        println!(
            "{n} items: image {:.1} MiB, export (apply pause) {:.1} ms (best of 3; {:.1} ms into a pre-faulted buffer), import {:.1} ms",
            img.len() as f64 / (1 << 20) as f64,
            best * 1e3,
            best_warm * 1e3,
            import.as_secs_f64() * 1e3
        );
    }
}
