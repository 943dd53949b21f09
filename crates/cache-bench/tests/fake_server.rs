//! End-to-end tests of the generator against a tiny in-process memcached stand-in (blocking,
//! thread per connection, `get`/`set`/`version` only): timed runs and fills account every reply,
//! pre-loading makes every get hit, and error replies are counted rather than fatal.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_bench::{fill, run, Config, FillConfig};

type Store = Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>;

/// Starts the stand-in; with `reject_sets` every set answers `SERVER_ERROR out of memory`.
fn start(reject_sets: bool) -> (SocketAddr, Store) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let store: Store = Arc::default();
    let st = store.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let st = st.clone();
            std::thread::spawn(move || serve(conn, st, reject_sets));
        }
    });
    (addr, store)
}

fn serve(conn: TcpStream, store: Store, reject_sets: bool) {
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let parts: Vec<&str> = line.trim_end().split(' ').collect();
        let mut reply = Vec::new();
        match parts[0] {
            "version" => reply.extend_from_slice(b"VERSION 1.6.0-fake\r\n"),
            "get" => {
                if let Some(v) = store.lock().unwrap().get(parts[1].as_bytes()) {
                    reply.extend_from_slice(
                        format!("VALUE {} 0 {}\r\n", parts[1], v.len()).as_bytes(),
                    );
                    reply.extend_from_slice(v);
                    reply.extend_from_slice(b"\r\n");
                }
                reply.extend_from_slice(b"END\r\n");
            }
            "set" => {
                let n: usize = parts[4].parse().unwrap();
                let mut data = vec![0; n + 2];
                r.read_exact(&mut data).unwrap();
                assert_eq!(&data[n..], b"\r\n");
                data.truncate(n);
                if reject_sets {
                    reply.extend_from_slice(b"SERVER_ERROR out of memory storing object\r\n");
                } else {
                    store
                        .lock()
                        .unwrap()
                        .insert(parts[1].as_bytes().to_vec(), data);
                    reply.extend_from_slice(b"STORED\r\n");
                }
            }
            _ => reply.extend_from_slice(b"ERROR\r\n"),
        }
        if out.write_all(&reply).is_err() {
            return;
        }
    }
}

fn config(server: SocketAddr) -> Config {
    Config {
        server,
        connections: 4,
        pipeline: 8,
        threads: 2,
        get_ratio: 0.9,
        keys: 500,
        value_size: 100,
        duration: Duration::from_millis(400),
        warmup: Duration::from_millis(100),
        preload: true,
        server_pid: vec![std::process::id()],
    }
}

#[test]
fn timed_run_accounts_every_reply() {
    let (addr, store) = start(false);
    let r = run(&config(addr)).unwrap();
    assert_eq!(r.server_version, "1.6.0-fake");
    assert_eq!(
        store.lock().unwrap().len(),
        500,
        "preload stored the whole keyspace"
    );
    assert!(r.ops > 100, "{r:?}");
    assert_eq!(r.gets + r.sets, r.ops);
    assert_eq!(r.hits, r.gets, "every key was pre-loaded");
    assert_eq!(r.hit_ratio, 1.0);
    assert_eq!(r.errors, 0);
    let share = r.gets as f64 / r.ops as f64;
    assert!((0.8..0.97).contains(&share), "get share {share}");
    assert!(
        r.duration_s >= 0.35 && r.duration_s < 1.0,
        "{}",
        r.duration_s
    );
    let l = r.latency_us;
    assert!(
        0.0 < l.p50 && l.p50 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max,
        "{l:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["ops"].as_u64(), Some(r.ops));
    assert!(json["latency_us"]["p999"].is_number());
    // The stand-in runs in this process: server and client CPU are both this process's.
    assert!(
        r.server_cpu_s.is_some() && r.client_cpu_s.is_some() && r.server_cpu_us_per_op.is_some()
    );
}

#[test]
fn without_preload_gets_miss() {
    let (addr, _store) = start(false);
    let r = run(&Config {
        get_ratio: 1.0,
        preload: false,
        ..config(addr)
    })
    .unwrap();
    assert!(r.gets > 0);
    assert_eq!(r.sets, 0);
    assert_eq!(r.hits, 0);
    assert_eq!(r.misses, r.gets);
}

#[test]
fn fill_stores_every_item() {
    let (addr, store) = start(false);
    let cfg = FillConfig {
        server: addr,
        connections: 3,
        pipeline: 1,
        threads: 2,
        items: 10_007,
        value_size: 10,
    };
    let r = fill(&cfg).unwrap();
    assert_eq!(r.stored, 10_007);
    assert_eq!(r.errors, 0);
    let s = store.lock().unwrap();
    assert_eq!(s.len(), 10_007);
    assert_eq!(
        s.get(&b"key:0000010006"[..]).map(|v| v.as_slice()),
        Some(&b"abcdefghij"[..])
    );
}

#[test]
fn error_replies_are_counted() {
    let (addr, _store) = start(true);
    let cfg = FillConfig {
        server: addr,
        connections: 2,
        pipeline: 4,
        threads: 1,
        items: 100,
        value_size: 5,
    };
    let r = fill(&cfg).unwrap();
    assert_eq!((r.stored, r.errors), (0, 100));
}

#[test]
fn unreachable_server_is_an_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    assert!(run(&config(addr)).is_err());
}
