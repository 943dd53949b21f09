//! `keel cache`: a memcached-compatible cache server, with memcached's command line so existing
//! systemd units and test harnesses work unchanged; `--redis-port` adds the Redis protocol beside
//! it, from the same process, memory limit and threads.

use std::net::IpAddr;

use anyhow::{bail, Context, Result};
use cache_server::config::{parse_size, RedisSettings};
use cache_server::{Server, Settings};
use nix::unistd::{Gid, Uid};
use tracing::{info, warn};

/// memcached's flags (same letters, same defaults).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TCP port to listen on (0 = pick a free port and print it).
    #[arg(short = 'p', long = "port", default_value_t = 11211)]
    pub port: u16,
    /// Interfaces to listen on, comma separated (default: 127.0.0.1; memcached's default is all
    /// interfaces, keel's is loopback: pass -l 0.0.0.0 to listen everywhere).
    #[arg(short = 'l', long = "listen", default_value = "127.0.0.1")]
    pub listen: String,
    /// UDP port (0 = off). Accepted for compatibility; keel does not serve UDP.
    #[arg(short = 'U', long = "udp-port", default_value_t = 0)]
    pub udp_port: u16,
    /// Item memory in megabytes.
    #[arg(short = 'm', long = "memory-limit", default_value_t = 64)]
    pub memory_mb: usize,
    /// Maximum simultaneous connections.
    #[arg(short = 'c', long = "conn-limit", default_value_t = 1024)]
    pub conn_limit: usize,
    /// Number of worker threads.
    #[arg(short = 't', long = "threads", default_value_t = 4)]
    pub threads: usize,
    /// Maximum item size, e.g. 1m, 512k (1k..1024m).
    #[arg(short = 'I', long = "max-item-size", default_value = "1m")]
    pub max_item_size: String,
    /// memcached's verbosity, from keel's global `-v`/`-vv` (`-vv` logs every command).
    #[arg(skip)]
    pub verbose: u8,
    /// Drop privileges to this user after binding (when started as root).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Run as a daemon (detach from the terminal).
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Write the process id to this file.
    #[arg(short = 'P', long = "pidfile")]
    pub pidfile: Option<std::path::PathBuf>,
    /// memcached's extended options (-o key=value,...): accepted and ignored.
    #[arg(short = 'o', long = "extended")]
    pub extended: Vec<String>,
    /// Write the bound port to this file once listening (for tests and scripts using -p 0).
    #[arg(long = "port-file")]
    pub port_file: Option<std::path::PathBuf>,
    /// Serve the Redis protocol (RESP2/RESP3, like redis-server 7.0) on this port of every -l
    /// address, beside memcached (0 = pick a free port; see --redis-port-file). Redis has a
    /// keyspace of its own: a memcached `set` is not a Redis string.
    #[arg(long = "redis-port")]
    pub redis_port: Option<u16>,
    /// Write the bound Redis port to this file once listening (for --redis-port 0).
    #[arg(long = "redis-port-file", requires = "redis_port")]
    pub redis_port_file: Option<std::path::PathBuf>,
    /// Redis `requirepass`: read the password from this file (one trailing newline stripped;
    /// an empty file is an error). Every connection must then AUTH (or HELLO ... AUTH) first.
    #[arg(long = "redis-password-file", requires = "redis_port")]
    pub redis_password_file: Option<std::path::PathBuf>,
    /// Redis `maxmemory`: bytes, or Redis's units (100mb, 1gb; 0 = no limit). Default: the -m
    /// limit. The Redis keyspace's limit is separate from memcached's items.
    #[arg(long = "redis-maxmemory", requires = "redis_port")]
    pub redis_maxmemory: Option<String>,
    /// Redis `maxmemory-policy` once the Redis keyspace is full. Default noeviction: writes then
    /// answer Redis's OOM error instead of dropping keys, because Seafile keeps its task queues
    /// (lists without a TTL) in Redis and evicting one loses work; its cache entries carry TTLs
    /// and expire on their own.
    #[arg(long = "redis-maxmemory-policy", requires = "redis_port", default_value = "noeviction",
          value_parser = ["noeviction", "allkeys-lru", "volatile-lru", "allkeys-random", "volatile-random", "volatile-ttl"])]
    pub redis_maxmemory_policy: String,
    /// Cluster mode: this node's slot in --cluster-peers.
    #[arg(long = "cluster-id", requires = "cluster_peers")]
    pub cluster_id: Option<u16>,
    /// Cluster mode: every node's inter-node (Raft) address, this node's included:
    /// `1=10.0.0.1:7101,2=10.0.0.2:7101,3=10.0.0.3:7101`.
    #[arg(long = "cluster-peers", requires = "cluster_id")]
    pub cluster_peers: Option<String>,
    /// Cluster mode reads: `linearizable` (default: a read never misses an acknowledged write) or
    /// `local` (served from this replica without a round trip; may lag by a few milliseconds).
    #[arg(long = "cluster-read", value_parser = ["linearizable", "local"], default_value = "linearizable")]
    pub cluster_read: String,
    /// Cluster mode: threads of the runtime that runs Raft (replication, the proposer, peer
    /// connections); client connections keep their own `-t` threads. One is fastest on small
    /// machines (fewer cross-thread wake-ups; see docs/benchmarks.md).
    #[arg(long = "cluster-threads", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub cluster_threads: u16,
    /// Cluster mode: most group-commit rounds of writes the leader has in flight at once (1: one
    /// round at a time). More overlap replication with the next batch forming (docs/benchmarks.md).
    #[arg(long = "cluster-write-pipeline", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub cluster_write_pipeline: u16,
    /// Cluster mode: followers serve linearizable reads under a read lease from the leader (`on`,
    /// default: no round trip to the leader per read; the leader then acknowledges a write once
    /// every lease holder has it) or ask the leader for a read index per batch of reads (`off`).
    #[arg(long = "cluster-follower-leases", value_parser = ["on", "off"], default_value = "on")]
    pub cluster_follower_leases: String,
}

pub fn settings_from(args: &Args) -> Result<Settings> {
    let mut listen = Vec::new();
    for part in args
        .listen
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let ip: IpAddr = part
            .parse()
            .with_context(|| format!("-l: {part:?} is not an IP address"))?;
        listen.push(ip);
    }
    if listen.is_empty() {
        bail!("-l: no address given");
    }
    if args.threads == 0 || args.threads > 256 {
        bail!(
            "-t: number of threads must be between 1 and 256 (got {})",
            args.threads
        );
    }
    if args.memory_mb == 0 {
        bail!("-m: memory limit must be at least 1 (megabyte)");
    }
    if args.conn_limit == 0 {
        bail!("-c: connection limit must be at least 1");
    }
    let item_size_max = parse_size(&args.max_item_size).map_err(|e| anyhow::anyhow!("-I: {e}"))?;
    let mem_limit = args
        .memory_mb
        .checked_mul(1 << 20)
        .context("-m: memory limit too large")?;
    if item_size_max > mem_limit / 2 {
        bail!(
            "-I: item size {item_size_max} cannot be larger than half the memory limit (-m {})",
            args.memory_mb
        );
    }
    let redis = match args.redis_port {
        None => None,
        Some(port) => Some(redis_settings(args, port, mem_limit)?),
    };
    Ok(Settings {
        redis,
        listen,
        port: args.port,
        udp_port: args.udp_port,
        mem_limit,
        max_conns: args.conn_limit,
        threads: args.threads,
        item_size_max,
        verbose: args.verbose,
        ..Settings::default()
    })
}

/// The Redis side's settings from the `--redis-*` flags.
fn redis_settings(args: &Args, port: u16, mem_limit: usize) -> Result<RedisSettings> {
    let password = match &args.redis_password_file {
        None => None,
        Some(p) => {
            let raw = std::fs::read(p)
                .with_context(|| format!("--redis-password-file: reading {}", p.display()))?;
            let mut pw = String::from_utf8(raw)
                .with_context(|| format!("--redis-password-file: {} is not UTF-8", p.display()))?;
            if pw.ends_with('\n') {
                pw.pop();
                if pw.ends_with('\r') {
                    pw.pop();
                }
            }
            if pw.is_empty() {
                bail!("--redis-password-file: {} is empty", p.display());
            }
            Some(pw)
        }
    };
    let maxmemory = match &args.redis_maxmemory {
        None => mem_limit as u64,
        Some(s) => {
            cache_server::redis::limits::parse_memory(s.trim().as_bytes()).with_context(|| {
                format!("--redis-maxmemory: {s:?} is not a size (bytes, or 100mb, 1gb...)")
            })?
        }
    };
    let policy = cache_server::redis::Policy::parse(&args.redis_maxmemory_policy)
        .context("--redis-maxmemory-policy: unknown policy")?;
    Ok(RedisSettings {
        port,
        password,
        maxmemory,
        policy,
        ..RedisSettings::default()
    })
}

pub fn run(args: Args) -> Result<()> {
    let settings = settings_from(&args)?;
    let threads = settings.threads;
    let verbose = settings.verbose;
    if settings.udp_port != 0 {
        warn!(
            "keel cache: UDP is not supported; ignoring -U {}",
            settings.udp_port
        );
    }
    if verbose > 0 && !args.extended.is_empty() {
        info!(
            "keel cache: ignoring memcached extended options {:?}",
            args.extended
        );
    }
    let cluster_cfg = match (&args.cluster_id, &args.cluster_peers) {
        (Some(id), Some(peers)) => {
            crate::alloc::set_purge_delay(crate::alloc::Purge::Never);
            let peers = cache_cluster::parse_peers(peers)
                .map_err(|e| anyhow::anyhow!("--cluster-peers: {e}"))?;
            if !peers.contains_key(id) {
                bail!("--cluster-id {id} is not one of the slots in --cluster-peers");
            }
            let mut cfg = cache_cluster::ClusterConfig::new(
                *id,
                peers,
                cache_server::store_config(&settings),
            );
            cfg.write_pipeline = usize::from(args.cluster_write_pipeline);
            cfg.follower_leases = args.cluster_follower_leases == "on";
            if args.cluster_read == "local" {
                cfg.read_mode = cache_cluster::ReadMode::Local;
            }
            // The Redis keyspace is replicated with the memcached store, through the same log.
            cfg.redis = settings
                .redis
                .as_ref()
                .map(cache_server::redis::keyspace_config);
            Some(cfg)
        }
        _ => {
            crate::alloc::set_purge_delay(crate::alloc::Purge::Soon);
            None
        }
    };
    let mut server = Server::bind(settings).context("starting the cache server")?;
    let addrs = server.local_addrs();
    let redis_addrs = server.redis_addrs();
    if let Some(user) = &args.user {
        drop_privileges(user)?;
    } else if supervisor::running_as_root() && verbose > 0 {
        warn!("keel cache: running as root; pass -u USER to drop privileges");
    }
    if args.daemon {
        // Before the runtime is built below: daemon forks, and only the calling thread survives.
        nix::unistd::daemon(true, false).context("-d: cannot daemonize")?;
    }
    if let Some(p) = &args.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("-P: writing {}", p.display()))?;
    }
    if let Some(p) = &args.port_file {
        let port = addrs.first().map(|a| a.port()).unwrap_or(0);
        std::fs::write(p, format!("{port}\n"))
            .with_context(|| format!("--port-file: writing {}", p.display()))?;
    }
    if let Some(p) = &args.redis_port_file {
        let port = redis_addrs.first().map(|a| a.port()).unwrap_or(0);
        std::fs::write(p, format!("{port}\n"))
            .with_context(|| format!("--redis-port-file: writing {}", p.display()))?;
    }
    if verbose > 0 {
        for a in &addrs {
            info!("keel cache: listening on {a}");
        }
        for a in &redis_addrs {
            info!("keel cache: Redis listening on {a}");
        }
    }
    // Connections are served by `threads` dedicated worker threads (see cache_server::Server::run);
    // this runtime runs maintenance, signals and, in cluster mode, Raft.
    let _ = threads;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if cluster_cfg.is_some() {
            usize::from(args.cluster_threads)
        } else {
            1
        })
        .enable_all()
        .build()
        .context("building the runtime")?;
    rt.block_on(async move {
        let shutdown = super::shutdown_signals()?;
        let cluster = match cluster_cfg {
            Some(cfg) => {
                let slot = cfg.slot;
                let c = cache_cluster::Cluster::start(cfg)
                    .await
                    .with_context(|| format!("starting cluster member {slot}"))?;
                if verbose > 0 {
                    info!(
                        "keel cache: cluster member {slot} started (raft id {})",
                        c.id()
                    );
                }
                server.attach_cluster(c.clone());
                Some(c)
            }
            None => None,
        };
        let served = server.run(shutdown).await;
        if let Some(c) = cluster {
            c.shutdown().await;
        }
        served.context("serving")
    })?;
    if verbose > 0 {
        info!("keel cache: shut down");
    }
    Ok(())
}

/// setgid/setuid to `user` (only meaningful when running as root).
fn drop_privileges(user: &str) -> Result<()> {
    if !supervisor::running_as_root() {
        return Ok(()); // memcached ignores -u when not root
    }
    let (uid, gid) = match supervisor::os_user(user) {
        Ok(ids) => ids,
        Err(supervisor::UserError::NoSuchUser(_)) => {
            bail!("-u: can't find the user {user:?} to switch to")
        }
        Err(e) => bail!("-u: {e}"),
    };
    let gid = Gid::from_raw(gid);
    if nix::unistd::setgroups(&[]).is_err() {
        nix::unistd::setgroups(&[gid]).context("-u: setgroups failed")?;
    }
    nix::unistd::setgid(gid).context("-u: setgid failed")?;
    nix::unistd::setuid(Uid::from_raw(uid)).context("-u: setuid failed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Settings> {
        let cli = Cli::try_parse_from(std::iter::once("cache").chain(argv.iter().copied()))?;
        settings_from(&cli.args)
    }

    #[test]
    fn redis_is_off_unless_asked() {
        assert!(parse(&[]).unwrap().redis.is_none());
        // The other --redis-* flags need --redis-port.
        assert!(parse(&["--redis-maxmemory", "1mb"]).is_err());
    }

    #[test]
    fn redis_flags() {
        let dir = std::env::temp_dir().join(format!("keel-redis-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let s = parse(&[
            "-m",
            "128",
            "--redis-port",
            "0",
            "--redis-password-file",
            pw.to_str().unwrap(),
        ])
        .unwrap();
        let r = s.redis.unwrap();
        assert_eq!(r.port, 0);
        assert_eq!(r.password.as_deref(), Some("s3cret"));
        // maxmemory defaults to -m; the policy to noeviction.
        assert_eq!(r.maxmemory, 128 << 20);
        assert_eq!(r.policy, cache_server::redis::Policy::NoEviction);
        let s = parse(&[
            "--redis-port",
            "6390",
            "--redis-maxmemory",
            "1gb",
            "--redis-maxmemory-policy",
            "allkeys-lru",
        ])
        .unwrap();
        let r = s.redis.unwrap();
        assert_eq!(r.maxmemory, 1 << 30);
        assert_eq!(r.policy, cache_server::redis::Policy::AllKeysLru);
        assert!(parse(&["--redis-port", "1", "--redis-maxmemory", "lots"]).is_err());
        assert!(parse(&[
            "--redis-port",
            "1",
            "--redis-maxmemory-policy",
            "allkeys-lfu"
        ])
        .is_err());
        std::fs::write(&pw, "\n").unwrap();
        let e = parse(&[
            "--redis-port",
            "1",
            "--redis-password-file",
            pw.to_str().unwrap(),
        ]);
        assert!(e.unwrap_err().to_string().contains("is empty"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn redis_serves_in_cluster_mode() {
        let c = parse(&[
            "--redis-port",
            "6379",
            "--cluster-id",
            "1",
            "--cluster-peers",
            "1=127.0.0.1:7101",
        ])
        .unwrap();
        assert_eq!(c.redis.map(|r| r.port), Some(6379));
    }
}
