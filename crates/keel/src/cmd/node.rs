//! `keel node --config FILE --name NODE`: the agent of one node (see the `node-agent` crate):
//! the node's Galera node, its `keel cache` (cluster mode unless `cache.mode = "standalone"`),
//! its db-proxy on `proxy_port`, and the control API (`/state`, `/status`, `/metrics`). Runs in
//! the foreground until SIGTERM/SIGINT or `POST /shutdown` on its control API. `--adopt [MY_CNF]`
//! first takes over a hand-built Galera node (`node_agent::adopt`).

use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The cluster description (TOML), the same file on every host.
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// This node's name in the description.
    #[arg(long, short = 'n')]
    pub name: String,
    /// Do not run this node's `keel cache`.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not run this node's db-proxy.
    #[arg(long)]
    pub no_proxy: bool,
    /// Take over a Galera node set up by hand (Debian's packages) first: read the option file it
    /// ran with (default /etc/mysql/my.cnf), check it against the description, move its datadir
    /// into the node folder (no copy), keep its own options, print what was kept and changed.
    /// A node that is keel's already is left alone.
    #[arg(long, value_name = "MY_CNF", num_args = 0..=1, default_missing_value = node_agent::adopt::DEBIAN_MY_CNF)]
    pub adopt: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = cluster_config::ClusterConfig::load(&args.config)?;
    cfg.node(&args.name)?;
    let cache_program = if args.no_cache {
        None
    } else {
        Some(std::env::current_exe().context("finding the keel binary to run `keel cache`")?)
    };
    node_agent::run(node_agent::AgentOptions {
        cfg,
        name: args.name.clone(),
        cache_program,
        proxy: !args.no_proxy,
        adopt: args
            .adopt
            .map(|my_cnf| node_agent::adopt::AdoptOptions { my_cnf }),
    })
    .with_context(|| format!("keel node {}", args.name))
}
