//! `keel bench …`: load generators. `keel bench cache` drives a memcached-compatible server (keel's
//! or memcached itself) with a text-protocol get/set mix and prints throughput and latency
//! percentiles; with `--rss-items N` it only stores N items as fast as it can, so that a script can
//! read the server's memory use afterwards. The generator itself is the `cache-bench` crate.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Benchmark a memcached-compatible server: get/set mix over a pre-loaded keyspace.
    Cache(CacheArgs),
}

#[derive(clap::Args, Debug)]
pub struct CacheArgs {
    /// Server address (host:port).
    #[arg(long, default_value = "127.0.0.1:11211")]
    pub server: String,
    /// TCP connections.
    #[arg(long, short = 'c', default_value_t = 8)]
    pub connections: usize,
    /// Requests kept in flight on each connection.
    #[arg(long, short = 'd', default_value_t = 1)]
    pub pipeline: usize,
    /// Share of gets (0..=1); the rest are sets.
    #[arg(long, default_value_t = 0.9)]
    pub get_ratio: f64,
    /// Keyspace size (keys are pre-loaded, then chosen uniformly).
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Measured time (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = cache_bench::parse_duration)]
    pub duration: Duration,
    /// Load applied before measuring, not counted.
    #[arg(long, default_value = "2s", value_parser = cache_bench::parse_duration)]
    pub warmup: Duration,
    /// Client threads (each runs its own event loop over its share of the connections).
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
    /// Do not store the keyspace before the run (gets of absent keys then miss).
    #[arg(long)]
    pub no_preload: bool,
    /// Instead of a timed run, store this many items (keys 0..N, --value-size bytes) as fast as
    /// possible and exit; for measuring a server's memory use.
    #[arg(long, value_name = "N")]
    pub rss_items: Option<u64>,
    /// Process id of the server, when it runs on this machine: report its CPU time per operation
    /// over the measured window (read from /proc). Several (`--server-pid 1,2,3` or repeated):
    /// their CPU time summed, e.g. every node of a cache cluster.
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(c: BenchCommand) -> anyhow::Result<()> {
    match c {
        BenchCommand::Cache(args) => cache(args),
    }
}

fn resolve(server: &str) -> anyhow::Result<SocketAddr> {
    server
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve --server {server:?}"))?
        .next()
        .with_context(|| format!("--server {server:?} resolves to no address"))
}

fn cache(a: CacheArgs) -> anyhow::Result<()> {
    let server = resolve(&a.server)?;
    if let Some(items) = a.rss_items {
        let report = cache_bench::fill(&cache_bench::FillConfig {
            server,
            connections: a.connections,
            pipeline: a.pipeline,
            threads: a.threads,
            items,
            value_size: a.value_size,
        })
        .context("fill failed")?;
        if a.json {
            println!("{}", report.to_json());
        } else {
            print!("{report}");
        }
        if report.errors > 0 {
            anyhow::bail!("{} of {} sets failed", report.errors, items);
        }
        return Ok(());
    }
    let report = cache_bench::run(&cache_bench::Config {
        server,
        connections: a.connections,
        pipeline: a.pipeline,
        threads: a.threads,
        get_ratio: a.get_ratio,
        keys: a.keys,
        value_size: a.value_size,
        duration: a.duration,
        warmup: a.warmup,
        preload: !a.no_preload,
        server_pid: a.server_pid,
    })
    .context("benchmark failed")?;
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(())
}
