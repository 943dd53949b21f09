//! `keel node --config FILE --name NODE`: the agent of one node (see the `node-agent` crate):
//! the node's Galera node, its `keel cache` (cluster mode unless `cache.mode = "standalone"`),
//! its db-proxy on `proxy_port`, and the control API (`/state`, `/status`, `/metrics`). Runs in
//! the foreground until SIGTERM/SIGINT or `POST /shutdown` on its control API.

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
    })
    .with_context(|| format!("keel node {}", args.name))
}
