//! `cache-bench`: a load generator for memcached-compatible servers, behind `keel bench cache`.
//! The benchmark scripts drive keel and its peer (memcached, or a standalone keel next to a
//! cluster) with this same client in the same run, so a difference between the two is the
//! servers', not the clients'.
//!
//! It speaks the text protocol (`get`/`set` of fixed-length numbered keys `key:0000000042`), keeps
//! a fixed number of requests in flight on each connection (the pipeline depth), and measures
//! every request's latency into a [`Histogram`]. Two entry points:
//! - [`run`]: pre-load the keyspace, warm up, then a timed get/set mix → [`Report`] (ops/s,
//!   p50/p99/p999, hit ratio, errors).
//! - [`fill`]: store N items as fast as possible (deep pipelines) → [`FillReport`], so that a
//!   script can read the server's memory use afterwards.
//!
//! Given the servers' pids, [`run`] also reads their CPU time and its own over the measured
//! window ([`cpu`]): CPU per operation compares servers even when the shared CPU, not the
//! server, limits throughput, and the client's share says whether the client is the bottleneck.
//!
//! The client is built to cost less than the server it measures (it usually shares the CPU with
//! it): non-blocking sockets under one epoll per thread, replies parsed in place, one `write` per
//! batch of replies, one clock read per `read`. See [`engine`].

#![forbid(unsafe_code)]

pub mod cpu;
pub mod engine;
pub mod hist;
pub mod proto;
pub mod workload;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use engine::{drive_threads, Conn, PhaseStats, Until};
pub use hist::Histogram;
use proto::SetTemplate;
use workload::{split_range, Workload};

/// Why a benchmark could not run to its end.
#[derive(Debug, Error)]
pub enum Error {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A socket or poll operation failed (`conn` is `usize::MAX` for the poll itself).
    #[error("I/O error on connection {conn}: {source}")]
    Io { conn: usize, source: std::io::Error },
    /// The server closed a connection.
    #[error("server closed connection {conn}")]
    Closed { conn: usize },
    /// The server sent something that is not a reply to `get`/`set`.
    #[error("protocol error on connection {conn}: {source}")]
    Protocol {
        conn: usize,
        source: proto::ProtoError,
    },
    /// A reply arrived with no request outstanding.
    #[error("reply without a request on connection {conn}")]
    Unsolicited { conn: usize },
    /// A reply of the wrong kind for its request (a lost or duplicated reply).
    #[error("connection {conn}: reply {reply} to a {}", if *get { "get" } else { "set" })]
    Mismatch {
        conn: usize,
        get: bool,
        reply: String,
    },
    /// The `version` probe failed.
    #[error("server at {addr} did not answer `version` with `VERSION …`: {detail}")]
    Version { addr: SocketAddr, detail: String },
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
}

/// Settings of a timed run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server address.
    pub server: SocketAddr,
    /// TCP connections (spread over `threads`).
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Client threads (each with its own epoll).
    pub threads: usize,
    /// Share of gets, 0..=1; the rest are sets.
    pub get_ratio: f64,
    /// Keyspace size: keys `0..keys`, chosen uniformly.
    pub keys: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Measured time.
    pub duration: Duration,
    /// Load applied and discarded before measuring.
    pub warmup: Duration,
    /// Store every key once before the run (so gets hit).
    pub preload: bool,
    /// The server's process ids, if it runs on this machine: their CPU time over the measured
    /// window is then reported (summed: e.g. every node of a cluster).
    pub server_pid: Vec<u32>,
}

/// Settings of a fill.
#[derive(Debug, Clone)]
pub struct FillConfig {
    /// Server address.
    pub server: SocketAddr,
    /// TCP connections.
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Client threads.
    pub threads: usize,
    /// Items to store: keys `0..items`.
    pub items: u64,
    /// Bytes per value.
    pub value_size: usize,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencyUs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencyUs {
    fn of(h: &Histogram) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencyUs {
            p50: us(h.quantile(0.5)),
            p90: us(h.quantile(0.9)),
            p99: us(h.quantile(0.99)),
            p999: us(h.quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// Result of [`run`].
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server: String,
    pub server_version: String,
    pub connections: usize,
    pub pipeline: usize,
    pub threads: usize,
    pub get_ratio: f64,
    pub keys: u64,
    pub value_size: usize,
    /// Seconds measured.
    pub duration_s: f64,
    /// Replies received in the measured time.
    pub ops: u64,
    pub ops_per_sec: f64,
    pub gets: u64,
    pub sets: u64,
    pub hits: u64,
    pub misses: u64,
    /// hits / gets (0 if no gets).
    pub hit_ratio: f64,
    /// Error replies plus sets that did not store.
    pub errors: u64,
    pub latency_us: LatencyUs,
    /// Seconds the pre-load took (0 if none).
    pub preload_s: f64,
    /// CPU seconds the server (all its `server_pid` processes) used in the measured window.
    pub server_cpu_s: Option<f64>,
    /// Server CPU microseconds per operation.
    pub server_cpu_us_per_op: Option<f64>,
    /// CPU seconds this client used in the measured window (all its threads).
    pub client_cpu_s: Option<f64>,
}

impl Report {
    /// One-line JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report serializes")
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latency_us;
        writeln!(f, "server      {} ({})", self.server, self.server_version)?;
        writeln!(
            f,
            "load        {} conns x depth {} on {} threads, {:.0}% gets, {} keys, {}-byte values",
            self.connections,
            self.pipeline,
            self.threads,
            self.get_ratio * 100.0,
            self.keys,
            self.value_size
        )?;
        writeln!(
            f,
            "throughput  {:.0} ops/s ({} ops in {:.2} s)",
            self.ops_per_sec, self.ops, self.duration_s
        )?;
        writeln!(
            f,
            "latency     p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs  mean {:.1} µs",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        )?;
        writeln!(
            f,
            "gets/sets   {} / {}, hit ratio {:.4}, errors {}",
            self.gets, self.sets, self.hit_ratio, self.errors
        )?;
        let pct = |cpu: f64| 100.0 * cpu / self.duration_s.max(1e-9);
        if let (Some(cpu), Some(per_op)) = (self.server_cpu_s, self.server_cpu_us_per_op) {
            writeln!(
                f,
                "server cpu  {:.2} s ({:.0}% of a core), {:.2} µs/op",
                cpu,
                pct(cpu),
                per_op
            )?;
        }
        if let Some(cpu) = self.client_cpu_s {
            writeln!(f, "client cpu  {:.2} s ({:.0}% of a core)", cpu, pct(cpu))?;
        }
        Ok(())
    }
}

/// Result of [`fill`].
#[derive(Debug, Clone, Serialize)]
pub struct FillReport {
    pub server: String,
    pub server_version: String,
    pub items: u64,
    pub value_size: usize,
    pub stored: u64,
    pub errors: u64,
    pub seconds: f64,
    pub items_per_sec: f64,
}

impl FillReport {
    /// One-line JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report serializes")
    }
}

impl std::fmt::Display for FillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "server      {} ({})", self.server, self.server_version)?;
        writeln!(
            f,
            "fill        {} items of {} bytes: {} stored, {} errors, {:.2} s ({:.0} items/s)",
            self.items, self.value_size, self.stored, self.errors, self.seconds, self.items_per_sec
        )
    }
}

/// Asks the server for `version` on a fresh blocking connection; returns the text after `VERSION `.
pub fn server_version(addr: SocketAddr) -> Result<String, Error> {
    let fail = |detail: String| Error::Version { addr, detail };
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|source| Error::Connect { addr, source })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| fail(e.to_string()))?;
    s.write_all(b"version\r\n")
        .map_err(|e| fail(e.to_string()))?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| fail(e.to_string()))?;
    match line.strip_prefix("VERSION ") {
        Some(v) => Ok(v.trim_end().to_string()),
        None => Err(fail(format!("got {:?}", line))),
    }
}

fn connect_all(server: SocketAddr, n: usize) -> Result<Vec<Conn>, Error> {
    (0..n).map(|i| Conn::connect(i, server)).collect()
}

/// Sets keys `0..items` over `conns` (each connection a contiguous range) with `depth` in flight.
fn fill_conns(
    mut conns: Vec<Conn>,
    threads: usize,
    items: u64,
    depth: usize,
    tpl: &SetTemplate,
) -> Result<(Vec<Conn>, PhaseStats), Error> {
    let ranges = split_range(items, conns.len());
    for (c, (start, end)) in conns.iter_mut().zip(ranges) {
        c.work = Workload::Fill { next: start, end };
        c.depth = depth;
    }
    drive_threads(conns, threads, Until::Exhausted, tpl)
}

fn check(cond: bool, msg: &str) -> Result<(), Error> {
    if cond {
        Ok(())
    } else {
        Err(Error::Config(msg.to_string()))
    }
}

/// Depth used for pre-loading and filling when the configured pipeline is shallower.
const FILL_DEPTH: usize = 64;

/// Runs a timed benchmark: connect, pre-load, warm up, measure.
pub fn run(cfg: &Config) -> Result<Report, Error> {
    check(cfg.connections > 0, "connections must be > 0")?;
    check(cfg.pipeline > 0, "pipeline must be > 0")?;
    check(cfg.threads > 0, "threads must be > 0")?;
    check(cfg.keys > 0, "keys must be > 0")?;
    check(
        (0.0..=1.0).contains(&cfg.get_ratio),
        "get ratio must be within 0..=1",
    )?;
    check(!cfg.duration.is_zero(), "duration must be > 0")?;
    let version = server_version(cfg.server)?;
    let tpl = SetTemplate::new(cfg.value_size);
    let mut conns = connect_all(cfg.server, cfg.connections)?;
    let mut preload_s = 0.0;
    if cfg.preload {
        let (c, st) = fill_conns(
            conns,
            cfg.threads,
            cfg.keys,
            cfg.pipeline.max(FILL_DEPTH),
            &tpl,
        )?;
        conns = c;
        preload_s = st.elapsed.as_secs_f64();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        c.work = Workload::mix(i as u64 + 1, cfg.keys, cfg.get_ratio);
        c.depth = cfg.pipeline;
    }
    let start = Instant::now();
    let (measure_from, end) = (start + cfg.warmup, start + cfg.warmup + cfg.duration);
    let sampler = cpu::sample_window(cfg.server_pid.clone(), measure_from, end);
    let (_conns, st) = drive_threads(conns, cfg.threads, Until::Time { measure_from, end }, &tpl)?;
    let cpu = sampler.join().unwrap_or_default();
    let c = st.counters;
    let secs = st.elapsed.as_secs_f64();
    Ok(Report {
        server: cfg.server.to_string(),
        server_version: version,
        connections: cfg.connections,
        pipeline: cfg.pipeline,
        threads: cfg.threads.min(cfg.connections),
        get_ratio: cfg.get_ratio,
        keys: cfg.keys,
        value_size: cfg.value_size,
        duration_s: secs,
        ops: c.replies(),
        ops_per_sec: if secs > 0.0 {
            c.replies() as f64 / secs
        } else {
            0.0
        },
        gets: c.gets,
        sets: c.sets,
        hits: c.hits,
        misses: c.misses,
        hit_ratio: if c.gets > 0 {
            c.hits as f64 / c.gets as f64
        } else {
            0.0
        },
        errors: c.failures(),
        latency_us: LatencyUs::of(&st.latency),
        preload_s,
        server_cpu_s: cpu.server,
        server_cpu_us_per_op: cpu
            .server
            .filter(|_| c.replies() > 0)
            .map(|s| s * 1e6 / c.replies() as f64),
        client_cpu_s: cpu.client,
    })
}

/// Stores keys `0..items` as fast as possible and reports how many were stored.
pub fn fill(cfg: &FillConfig) -> Result<FillReport, Error> {
    check(cfg.connections > 0, "connections must be > 0")?;
    check(cfg.threads > 0, "threads must be > 0")?;
    let version = server_version(cfg.server)?;
    let tpl = SetTemplate::new(cfg.value_size);
    let conns = connect_all(cfg.server, cfg.connections)?;
    let (_conns, st) = fill_conns(
        conns,
        cfg.threads,
        cfg.items,
        cfg.pipeline.max(FILL_DEPTH),
        &tpl,
    )?;
    let c = st.counters;
    let secs = st.elapsed.as_secs_f64();
    Ok(FillReport {
        server: cfg.server.to_string(),
        server_version: version,
        items: cfg.items,
        value_size: cfg.value_size,
        stored: c.sets - c.failures(),
        errors: c.failures(),
        seconds: secs,
        items_per_sec: if secs > 0.0 {
            c.sets as f64 / secs
        } else {
            0.0
        },
    })
}

/// Parses a duration such as `10s`, `500ms`, `2m`, `1.5s`, `250us` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => {
            return Err(format!(
                "unknown duration unit {u:?} in {s:?} (use ns, us, ms, s, m, h)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }
}
