//! `keel db …`: database operations that need an operator's decision.
//!
//! `keel db bootstrap --force NODE` overrides the agents' bootstrap decision: NODE forms the
//! cluster from its own data. Before doing it, this prints what may be lost (members that did not
//! answer, members known to be further ahead). `keel db decision` shows what the agents would do.

use super::status::{fetch_state, load_config};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum DbCommand {
    /// Make NODE bootstrap the cluster from its own data (requires --force).
    Bootstrap(BootstrapArgs),
    /// Show every agent's current bootstrap decision or what it waits for.
    Decision(Where),
}

#[derive(clap::Args)]
pub struct Where {
    /// The folder of a tier started by `keel up`.
    #[arg(long, conflicts_with = "config")]
    pub dir: Option<PathBuf>,
    /// A cluster description.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct BootstrapArgs {
    /// The node that bootstraps.
    pub node: String,
    /// Required: this overrides keel's safety rules and may lose committed transactions.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub place: Where,
}

pub fn run(c: DbCommand) -> anyhow::Result<()> {
    match c {
        DbCommand::Decision(w) => {
            let cfg = load_config(w.dir.as_deref(), w.config.as_deref())?;
            for n in &cfg.nodes {
                match fetch_state(n) {
                    Ok(st) => println!(
                        "{}: {} — {}",
                        n.name,
                        st.db.state,
                        st.decision.unwrap_or_else(|| "-".into())
                    ),
                    Err(e) => println!("{}: {e}", n.name),
                }
            }
            Ok(())
        }
        DbCommand::Bootstrap(a) => bootstrap(a),
    }
}

fn bootstrap(a: BootstrapArgs) -> anyhow::Result<()> {
    let cfg = load_config(a.place.dir.as_deref(), a.place.config.as_deref())?;
    let target = cfg.node(&a.node)?.clone();
    if !a.force {
        bail!(
            "keel decides who bootstraps by itself (see `keel db decision`); to override it, \
             run `keel db bootstrap --force {}` — it may lose transactions",
            a.node
        );
    }
    let me = fetch_state(&target).map_err(|e| anyhow::anyhow!("{}: {e}", target.name))?;
    let my_seqno = me.db.seqno;
    eprintln!(
        "WARNING: forcing {} to bootstrap the cluster from its own data (seqno {}).",
        a.node,
        fmt_seqno(my_seqno)
    );
    for n in cfg.nodes.iter().filter(|n| n.name != a.node) {
        match fetch_state(n) {
            Ok(st) => match (st.db.seqno, my_seqno) {
                (Some(s), Some(m)) if s > m => eprintln!(
                    "  {} is further ahead (seqno {s}): its transactions {}..{s} will be lost, and it will \
                     be re-synced from {} by SST",
                    n.name,
                    m + 1,
                    a.node
                ),
                _ => eprintln!("  {}: seqno {} ({})", n.name, fmt_seqno(st.db.seqno), st.db.state),
            },
            Err(e) => eprintln!(
                "  {}: {e}; if it has data newer than {}'s, that data will be lost when it rejoins",
                n.name, a.node
            ),
        }
    }
    let (code, body) = node_agent::http::request(
        &target.control_addr(),
        "POST",
        "/bootstrap/force",
        Duration::from_secs(3),
    )
    .with_context(|| format!("asking the agent of {} to bootstrap", a.node))?;
    if code != 200 {
        bail!("the agent of {} refused ({code}): {body}", a.node);
    }
    println!("{} will bootstrap; follow it with `keel status`", a.node);
    Ok(())
}

fn fmt_seqno(s: Option<i64>) -> String {
    s.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into())
}
