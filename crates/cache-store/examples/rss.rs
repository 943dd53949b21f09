//! Memory and speed check: store N items (keys `key:0000001`…, 100-byte values by default), then
//! print VmRSS from /proc/self/status, the store's accounted bytes, and single-thread set/get
//! latency.
//!
//! `cargo run --release -p cache-store --example rss -- [N] [VALUE_LEN] [SHARDS]`

use std::time::Instant;

use cache_store::{GetOpts, Store, StoreConfig, StoreOutcome, StoreReq};

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let vlen: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let shards: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    let now = 1_700_000_000;
    let value = vec![b'v'; vlen];
    let before = vm_rss_kib();
    let store = Store::new(StoreConfig {
        mem_limit: 8 << 30,
        item_size_max: 1 << 20,
        shards,
        reads_mutate: true,
    });
    let mut key = String::with_capacity(16);
    let t = Instant::now();
    for i in 1..=n {
        use std::fmt::Write;
        key.clear();
        let _ = write!(key, "key:{i:07}");
        let r = StoreReq::set(key.as_bytes(), &value);
        if !matches!(store.store(&r, now), StoreOutcome::Stored { .. }) {
            eprintln!("store failed at {i}");
            std::process::exit(1);
        }
    }
    let set_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let after = vm_rss_kib();
    let st = store.stats();
    println!("items            {}", st.curr_items);
    println!("value bytes      {vlen}, shards {shards}");
    println!("VmRSS before     {:.1} MiB", before as f64 / 1024.0);
    println!("VmRSS after      {:.1} MiB", after as f64 / 1024.0);
    println!(
        "RSS growth/item  {:.1} B",
        (after - before) as f64 * 1024.0 / n as f64
    );
    println!(
        "accounted bytes  {} ({:.1} MiB, {:.1} B/item)",
        st.bytes,
        st.bytes as f64 / 1048576.0,
        st.bytes as f64 / n as f64
    );
    println!("set (fill)       {set_ns:.0} ns/op");

    // Random-order gets and overwrites (xorshift; single thread).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut keys: Vec<[u8; 11]> = Vec::with_capacity(1 << 16);
    for _ in 0..(1 << 16) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = x % n + 1;
        let mut k = [0u8; 11];
        k.copy_from_slice(format!("key:{i:07}").as_bytes());
        keys.push(k);
    }
    let rounds = (2_000_000 / keys.len()).max(1);
    let t = Instant::now();
    let mut hits = 0u64;
    for _ in 0..rounds {
        for k in &keys {
            if store
                .get(k, now, GetOpts::default(), |it| it.value.len())
                .is_some()
            {
                hits += 1;
            }
        }
    }
    let ops = (rounds * keys.len()) as f64;
    println!(
        "get (random)     {:.0} ns/op ({} hits)",
        t.elapsed().as_nanos() as f64 / ops,
        hits
    );
    let t = Instant::now();
    for _ in 0..rounds {
        for k in &keys {
            store.store(&StoreReq::set(k, &value), now);
        }
    }
    println!(
        "set (overwrite)  {:.0} ns/op",
        t.elapsed().as_nanos() as f64 / ops
    );
    println!("VmRSS end        {:.1} MiB", vm_rss_kib() as f64 / 1024.0);

    // CPU cost without cache misses: the same 1,000 keys over and over.
    let hot = &keys[..1000];
    let t = Instant::now();
    for _ in 0..1000 {
        for k in hot {
            std::hint::black_box(store.get(k, now, GetOpts::default(), |it| it.value.len()));
        }
    }
    println!(
        "get (hot 1k)     {:.0} ns/op",
        t.elapsed().as_nanos() as f64 / 1e6
    );
    drop(store);

    // Sets that each evict: a 16 MiB store receiving N new keys.
    let small = Store::new(StoreConfig {
        mem_limit: 16 << 20,
        item_size_max: 1 << 20,
        shards,
        reads_mutate: true,
    });
    let t = Instant::now();
    for i in 1..=n {
        use std::fmt::Write;
        key.clear();
        let _ = write!(key, "key:{i:07}");
        let r = StoreReq::set(key.as_bytes(), &value);
        small.store(&r, now);
    }
    let st = small.stats();
    println!(
        "set (evicting)   {:.0} ns/op ({} evictions, {} bytes <= {})",
        t.elapsed().as_nanos() as f64 / n as f64,
        st.evictions,
        st.bytes,
        16 << 20
    );
}
