//! Robustness: bad or hostile clients never hurt the server or its other clients.
//!
//! Malformed text lines, binary garbage, an endless line, a half-sent request that stalls, 10 000
//! idle connections, a client that pipelines big gets and never reads (RSS must stay bounded),
//! the `-c` connection limit (refused politely, like memcached), and SIGTERM (graceful, exit 0).
//! Tests that check behaviour memcached shares run against memcached too, to prove the test.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_harness::{show, Rng, Server, TextClient};

use crate::{start_keel, start_memcached};

/// The server still works: a fresh client can store and read back a value.
fn assert_healthy(server: &Server, context: &str) {
    assert!(
        server.is_running(),
        "{} died ({context})\nlog:\n{}",
        server.name(),
        server.log_tail(3000)
    );
    let mut c = server
        .connect()
        .unwrap_or_else(|e| panic!("{} refuses connections ({context}): {e}", server.name()));
    let v = format!("healthy-{}", context.len());
    assert_eq!(
        c.set("health", 1, 0, v.as_bytes()).expect("set"),
        "STORED",
        "{context}"
    );
    assert_eq!(
        c.get("health").expect("get"),
        Some((1, v.into_bytes())),
        "{context}"
    );
}

/// Send `bytes`, half-close, and read until the server closes. Returns what it answered.
fn send_and_drain(server: &Server, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut c = server.connect()?;
    match c.send(bytes) {
        Ok(()) => {}
        // The server may close on garbage before reading it all.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) => {}
        Err(e) => return Err(e),
    }
    let _ = c.stream().shutdown(Shutdown::Write);
    c.read_to_close()
}

fn garbage(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        // Random bytes.
        0 => rng.bytes_between(1, 4000),
        // Binary header with random fields and some body.
        1 => {
            let mut b = vec![0x80];
            b.extend(rng.bytes_between(1, 200));
            b
        }
        // Lines of random printable junk and real command names with junk arguments.
        2 | 3 => {
            let mut b = Vec::new();
            for _ in 0..rng.range(1, 30) {
                let cmd = *rng.pick(&["get", "set", "cas", "incr", "ms", "mg", "ma", "md", "me", "touch", "gat", "flush_all", "verbosity", "stats", "xyz", ""]);
                b.extend_from_slice(cmd.as_bytes());
                for _ in 0..rng.range(0, 8) {
                    b.push(b' ');
                    let tok = rng.string_between(b"0123456789abcdefghijklmnopqrstuvwxyz-+:\t\x00\x7f\xff", 0, 30);
                    b.extend(tok);
                }
                b.extend_from_slice(if rng.chance(1, 4) { b"\n" } else { b"\r\n" });
                if rng.chance(1, 5) {
                    b.extend(rng.bytes_between(0, 100));
                }
            }
            b
        }
        // Storage command announcing more data than is sent.
        4 => format!("set k 0 0 {}\r\nshort", rng.range(10, 1_000_000)).into_bytes(),
        // Numbers at and beyond every limit.
        _ => rng
            .pick(&[
                &b"set k 0 0 18446744073709551616\r\n"[..],
                b"set k 0 0 4294967295\r\n",
                b"set k 0 0 2147483648\r\n",
                b"incr k 99999999999999999999999999999\r\n",
                b"gat 99999999999999999999 k\r\n",
                b"ms k 99999999999999999999 T1\r\n",
                b"ma k D99999999999999999999999\r\n",
                b"mg k Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa v\r\n",
            ])
            .to_vec(),
    }
}

fn malformed_and_garbage_input(server: &Server) {
    let mut rng = Rng::new(0x6a72_6261_6765);
    for i in 0..300 {
        let g = garbage(&mut rng);
        if let Err(e) = send_and_drain(server, &g) {
            panic!(
                "{}: connection {i} fed {} did not end cleanly (the server should answer and close on EOF): {e}",
                server.name(),
                show(&g)
            );
        }
        if i % 50 == 49 {
            assert_healthy(server, &format!("after {} garbage connections", i + 1));
        }
    }
    assert_healthy(server, "after all garbage");
}

#[test]
fn malformed_and_garbage_input_keel() {
    malformed_and_garbage_input(&start_keel(&[]));
}

#[test]
fn malformed_and_garbage_input_memcached() {
    malformed_and_garbage_input(&start_memcached(&[]));
}

/// A 4 MiB line without a newline: the server must drop the connection (memcached closes after
/// 2048 bytes of a non-`get` line), not buffer it forever, and keep serving others.
fn endless_line(server: &Server) {
    let mut c = server.connect().expect("connect");
    let writer = {
        let mut s = c.stream().try_clone().expect("clone");
        std::thread::spawn(move || {
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..64 {
                if s.write_all(&chunk).is_err() {
                    return;
                }
            }
        })
    };
    let got = c.read_to_close();
    writer.join().expect("writer");
    match got {
        Ok(bytes) => assert!(
            bytes.is_empty()
                || bytes.starts_with(b"CLIENT_ERROR")
                || bytes.starts_with(b"SERVER_ERROR"),
            "{}: unexpected answer to an endless line: {}",
            server.name(),
            show(&bytes)
        ),
        Err(e) => panic!(
            "{}: did not close a connection sending a 4 MiB line: {e}",
            server.name()
        ),
    }
    assert_healthy(server, "after an endless line");
}

#[test]
fn endless_line_is_cut_off_keel() {
    endless_line(&start_keel(&[]));
}

#[test]
fn endless_line_is_cut_off_memcached() {
    endless_line(&start_memcached(&[]));
}

/// Half a command line, and half a value, then a stall: other clients keep working, and the
/// stalled requests complete correctly once the rest arrives.
fn half_request_then_stall(server: &Server) {
    let mut stalled_get = server.connect().expect("connect");
    let mut stalled_set = server.connect().expect("connect");
    stalled_get.send(b"get stall").expect("send");
    stalled_set.send(b"set half 5 0 10\r\nabc").expect("send");
    let mut other = server.connect().expect("connect");
    let start = Instant::now();
    for i in 0..200 {
        let v = format!("value-{i}");
        assert_eq!(
            other
                .set(&format!("k{i}"), i, 0, v.as_bytes())
                .expect("set"),
            "STORED"
        );
        assert_eq!(
            other.get(&format!("k{i}")).expect("get"),
            Some((i, v.into_bytes()))
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "other client slowed down: {:?}",
        start.elapsed()
    );
    stalled_set.send(b"defghij\r\n").expect("send rest");
    assert_eq!(stalled_set.read_line().expect("reply"), b"STORED\r\n");
    stalled_get.send(b"\r\n").expect("send rest");
    assert_eq!(stalled_get.read_line().expect("reply"), b"END\r\n");
    assert_eq!(
        other.get("half").expect("get"),
        Some((5, b"abcdefghij".to_vec()))
    );
}

#[test]
fn half_request_then_stall_keel() {
    half_request_then_stall(&start_keel(&[]));
}

#[test]
fn half_request_then_stall_memcached() {
    half_request_then_stall(&start_memcached(&[]));
}

/// 10 000 idle connections: all accepted and served, and a new client is not slowed down.
#[test]
fn ten_thousand_idle_connections_keel() {
    const N: usize = 10_000;
    let limit = test_harness::raise_nofile_limit(N as u64 + 5_000).expect("raise RLIMIT_NOFILE");
    assert!(
        limit >= N as u64 + 1000,
        "RLIMIT_NOFILE hard limit too low for this test: {limit}"
    );
    let server = start_keel(&["-c", "20000"]);
    let mut conns = Vec::with_capacity(N);
    for i in 0..N {
        let s = TcpStream::connect(server.addr())
            .unwrap_or_else(|e| panic!("connection {i} refused: {e}"));
        conns.push(s);
    }
    // A new client gets answers promptly while all of them are open.
    let start = Instant::now();
    assert_healthy(&server, "with 10 000 idle connections");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "new client waited {:?}",
        start.elapsed()
    );
    // Every idle connection is really being served.
    for s in &mut conns {
        s.write_all(b"version\r\n").expect("write");
    }
    let mut served = 0;
    for (i, s) in conns.iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut c = TextClientLike(s);
        match c.line() {
            Ok(l) if l.starts_with(b"VERSION ") => served += 1,
            Ok(l) => panic!("connection {i} answered {}", show(&l)),
            Err(e) => panic!(
                "connection {i} got no answer: {e}\nlog:\n{}",
                server.log_tail(2000)
            ),
        }
    }
    assert_eq!(served, N);
    drop(conns);
    assert_healthy(&server, "after closing 10 000 connections");
}

/// Minimal line reader over a borrowed stream (the 10k test keeps raw `TcpStream`s).
struct TextClientLike<'a>(&'a TcpStream);

impl TextClientLike<'_> {
    fn line(&mut self) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while !out.ends_with(b"\n") {
            if self.0.read(&mut b)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
            }
            out.push(b[0]);
        }
        Ok(out)
    }
}

/// A client pipelines thousands of gets of a 512 KiB value and never reads: the server must
/// apply back-pressure (stop reading that client) instead of buffering gigabytes, and other
/// clients must be unaffected.
fn greedy_reader(server: &Server) {
    let value = vec![b'v'; 512 * 1024];
    let mut setup = server.connect().expect("connect");
    assert_eq!(setup.set("big", 0, 0, &value).expect("set"), "STORED");
    let baseline = server.rss_kib().expect("rss");

    let greedy = server.connect().expect("connect");
    greedy
        .stream()
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut s = greedy.stream().try_clone().expect("clone");
        let stop = stop.clone();
        std::thread::spawn(move || {
            // 8000 gets = 4 GiB of replies if the server buffered them all.
            let batch = b"get big\r\n".repeat(100);
            let mut sent = 0;
            while sent < 8000 && !stop.load(Ordering::Relaxed) {
                if s.write_all(&batch).is_err() {
                    break; // blocked for 2 s: the server stopped reading us (good)
                }
                sent += 100;
            }
            sent
        })
    };
    let mut other = server.connect().expect("connect");
    let mut max_rss = baseline;
    let start = Instant::now();
    let mut ops = 0u32;
    while start.elapsed() < Duration::from_secs(4) {
        let v = format!("v{ops}");
        let t = Instant::now();
        assert_eq!(
            other
                .set("small", ops, 0, v.as_bytes())
                .expect("set while greedy"),
            "STORED"
        );
        assert_eq!(
            other.get("small").expect("get while greedy"),
            Some((ops, v.into_bytes()))
        );
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "an op of another client took {:?}",
            t.elapsed()
        );
        ops += 1;
        if ops.is_multiple_of(20) {
            if let Some(r) = server.rss_kib() {
                max_rss = max_rss.max(r);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = writer.join().expect("writer");
    max_rss = max_rss.max(server.rss_kib().unwrap_or(0));
    let growth_mib = max_rss.saturating_sub(baseline) / 1024;
    assert!(ops > 50, "other client managed only {ops} ops in 4 s");
    assert!(
        growth_mib < 128,
        "{}: RSS grew by {growth_mib} MiB (baseline {} MiB) while a client pipelined {sent} gets of 512 KiB without reading",
        server.name(),
        baseline / 1024
    );
    drop(greedy);
    assert_healthy(server, "after the greedy client left");
}

#[test]
fn greedy_reader_does_not_bloat_keel() {
    greedy_reader(&start_keel(&["-m", "64"]));
}

#[test]
fn greedy_reader_does_not_bloat_memcached() {
    greedy_reader(&start_memcached(&["-m", "64"]));
}

/// Over the `-c` limit a client is told `ERROR Too many open connections` and closed; the
/// server recovers once connections go away.
fn connection_limit(server: &Server, limit: usize) {
    let mut accepted: Vec<TextClient> = Vec::new();
    let mut refused_politely = 0;
    let mut refused_other = Vec::new();
    for _ in 0..limit + 20 {
        let mut c = match server.connect() {
            Ok(c) => c,
            Err(e) => {
                refused_other.push(format!("connect: {e}"));
                continue;
            }
        };
        let _ = c.send(b"version\r\n");
        match c.read_line() {
            Ok(l) if l.starts_with(b"VERSION ") => accepted.push(c),
            Ok(l) if l == b"ERROR Too many open connections\r\n" => {
                refused_politely += 1;
                let rest = c.read_to_close().unwrap_or_default();
                assert!(rest.is_empty(), "data after the refusal: {}", show(&rest));
            }
            Ok(l) => refused_other.push(show(&l)),
            Err(e) => refused_other.push(e.to_string()),
        }
    }
    assert!(
        !accepted.is_empty(),
        "{}: no connection accepted",
        server.name()
    );
    assert!(
        accepted.len() <= limit,
        "{}: {} connections accepted with -c {limit}",
        server.name(),
        accepted.len()
    );
    assert!(
        refused_politely > 0,
        "{}: no connection got `ERROR Too many open connections`; other outcomes: {refused_other:?}",
        server.name()
    );
    drop(accepted);
    // Recovery: poll (with a deadline) until a new connection is served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = server
            .connect()
            .and_then(|mut c| c.cmd("version"))
            .map(|l| l.starts_with("VERSION "))
            .unwrap_or(false);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: still refusing 10 s after connections closed",
            server.name()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connection_limit_refuses_politely_keel() {
    connection_limit(&start_keel(&["-c", "10"]), 10);
}

#[test]
fn connection_limit_refuses_politely_memcached() {
    // memcached caps its own RLIMIT_NOFILE near -c, so it needs a few more fds than keel for
    // its worker threads: one thread, 16 connections.
    connection_limit(&start_memcached(&["-c", "16", "-t", "1"]), 16);
}

/// SIGTERM: the server exits 0 promptly even with clients connected (one idle, one mid-request).
fn sigterm_graceful(mut server: Server) {
    let mut c = server.connect().expect("connect");
    assert_eq!(c.set("k", 0, 0, b"v").expect("set"), "STORED");
    let _idle = server.connect().expect("connect");
    let mut partial = server.connect().expect("connect");
    partial.send(b"get k").expect("send");
    let status = server
        .terminate(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        status.code(),
        Some(0),
        "{} did not exit 0 on SIGTERM: {}\nlog:\n{}",
        server.name(),
        test_harness::server::describe_status(status),
        server.log_tail(2000)
    );
    assert!(
        server.connect().is_err(),
        "{} still accepts connections after exiting",
        server.name()
    );
}

#[test]
fn sigterm_shuts_down_gracefully_keel() {
    sigterm_graceful(start_keel(&[]));
}

#[test]
fn sigterm_shuts_down_gracefully_memcached() {
    sigterm_graceful(start_memcached(&[]));
}
