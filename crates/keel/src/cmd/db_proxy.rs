//! `keel db-proxy`: the Galera-aware MySQL proxy of one node (issue 4). Reads the cluster
//! description (`--config FILE --name NODE`) or explicit flags (`--listen`, `--backend
//! NAME=HOST:PORT` …, `--monitor-user`, `--monitor-password-file`), runs
//! [`db_proxy::Proxy`] until SIGINT/SIGTERM, and optionally serves `/metrics`, `/status` and
//! drain on `--metrics-listen`.

use anyhow::{bail, Context};
use db_proxy::{parse_backend, Proxy, ProxyConfig, Thresholds};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The cluster description (TOML): gives the backends and the monitor user, and with --name
    /// the listen address. Without --name (a host that is not a node of the description, such as
    /// an app server of Seafile's layout (b)) --listen is needed.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This node's name in the cluster description (its proxy_port is the listen address).
    #[arg(long)]
    pub name: Option<String>,
    /// Listen address for clients (overrides the description's proxy_port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// A backend as NAME=HOST:PORT, in the cluster's order (repeat; used without --config).
    #[arg(long = "backend")]
    pub backends: Vec<String>,
    /// Monitor user for health checks (without --config).
    #[arg(long)]
    pub monitor_user: Option<String>,
    /// File holding the monitor user's password (without --config).
    #[arg(long)]
    pub monitor_password_file: Option<PathBuf>,
    /// Serve GET /metrics, GET /status, POST /drain/NODE and POST /undrain/NODE here.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// File holding the token POST /drain and /undrain must carry (`Authorization: Bearer`);
    /// with --config the description's `[control]` gives it. Without any, they are refused.
    #[arg(long)]
    pub control_token_file: Option<PathBuf>,
    /// Milliseconds between two checks of a node (at most 500).
    #[arg(long, default_value_t = 500)]
    pub check_interval_ms: u64,
    /// A check without an answer in this many milliseconds fails.
    #[arg(long, default_value_t = 1000)]
    pub check_timeout_ms: u64,
    /// Consecutive passes before a down node is up again.
    #[arg(long, default_value_t = 2)]
    pub rise: u32,
    /// Consecutive failures before an up node is down.
    #[arg(long, default_value_t = 2)]
    pub fall: u32,
    /// How long a new connection waits for a writer before it gets an error (ms).
    #[arg(long, default_value_t = 10_000)]
    pub connect_wait_ms: u64,
    /// Connection limit; beyond it clients get ERROR 1040.
    #[arg(long, default_value_t = 2000)]
    pub max_connections: usize,
    /// How long connections to a drained former writer may continue (ms).
    #[arg(long, default_value_t = 30_000)]
    pub drain_timeout_ms: u64,
}

fn build_config(args: &Args) -> anyhow::Result<ProxyConfig> {
    let mut cfg = if let Some(path) = &args.config {
        if args.name.is_none() && args.listen.is_none() {
            bail!("--config needs --name NODE (a node of the description) or --listen ADDR (a host outside it, e.g. an app server)");
        }
        let cluster = cluster_config::ClusterConfig::load(path)?;
        let mut cfg = match (&args.name, args.listen) {
            (Some(name), _) => ProxyConfig::from_cluster(&cluster, name),
            (None, listen) => ProxyConfig::from_cluster_at(
                &cluster,
                listen.context("--listen ADDR is needed without --name")?,
            ),
        }
        .context("building the proxy settings")?;
        if let Some(l) = args.listen {
            cfg.listen = l;
        }
        cfg
    } else {
        let listen = args
            .listen
            .context("--listen ADDR is needed without --config")?;
        if args.backends.is_empty() {
            bail!("give --backend NAME=HOST:PORT (one per node), or --config FILE --name NODE");
        }
        let backends = args
            .backends
            .iter()
            .map(|b| parse_backend(b).with_context(|| format!("--backend {b}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let user = args
            .monitor_user
            .as_deref()
            .context("--monitor-user is needed without --config")?;
        let pw_file = args
            .monitor_password_file
            .as_ref()
            .context("--monitor-password-file is needed without --config")?;
        let pw = std::fs::read_to_string(pw_file)
            .with_context(|| format!("reading the monitor password from {}", pw_file.display()))?;
        let mut cfg = ProxyConfig::new(listen, backends, user, pw.trim_end_matches(['\n', '\r']));
        cfg.name = args.name.clone();
        cfg
    };
    cfg.metrics_listen = args.metrics_listen;
    if let Some(f) = &args.control_token_file {
        let t = std::fs::read_to_string(f)
            .with_context(|| format!("reading the control token from {}", f.display()))?;
        let t = t.trim_end_matches(['\n', '\r']);
        if t.is_empty() {
            bail!("--control-token-file {}: the token is empty", f.display());
        }
        cfg.control.token = Some(t.into());
    }
    cfg.check_interval = Duration::from_millis(args.check_interval_ms);
    cfg.check_timeout = Duration::from_millis(args.check_timeout_ms);
    cfg.thresholds = Thresholds {
        rise: args.rise,
        fall: args.fall,
    };
    cfg.connect_wait = Duration::from_millis(args.connect_wait_ms);
    cfg.max_connections = args.max_connections;
    cfg.drain_timeout = Duration::from_millis(args.drain_timeout_ms);
    cfg.validate().context("invalid proxy settings")?;
    Ok(cfg)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = build_config(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        let shutdown = super::shutdown_signals()?;
        let proxy = Proxy::start(cfg).await.context("starting the proxy")?;
        if let Some(m) = proxy.metrics_addr() {
            tracing::info!("metrics and status on http://{m}/metrics, /status");
        }
        shutdown.await;
        tracing::info!("stopping");
        proxy.shutdown().await;
        Ok(())
    })
}
