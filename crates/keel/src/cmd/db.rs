//! `keel db …`: database operations that need an operator's decision.
//!
//! `keel db bootstrap --force NODE` overrides the agents' bootstrap decision: NODE forms the
//! cluster from its own data. Before doing it, this prints what may be lost (members that did not
//! answer, members known to be further ahead). `keel db decision` shows what the agents would do.
//!
//! `keel db drain NODE` takes NODE out of service for a planned stop: it sets NODE's drain flag
//! in `keel_meta` and, if NODE is the writer, hands the role to another node
//! ([`db_proxy::drain`]); then it watches every proxy's status until none of them sends anything
//! to NODE any more (no proxy names it writer, no connection to it is open) or `--timeout`
//! passes, and says whether NODE is safe to stop. `keel db undrain NODE` clears the flag (the
//! writer does not move back: no failback).

use super::status::{fetch_state, load_config};
use anyhow::{bail, Context};
use cluster_config::ClusterConfig;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum DbCommand {
    /// Make NODE bootstrap the cluster from its own data (requires --force).
    Bootstrap(BootstrapArgs),
    /// Show every agent's current bootstrap decision or what it waits for.
    Decision(Where),
    /// Take NODE out of service: move the writer away, wait for its connections to finish.
    Drain(DrainArgs),
    /// Put a drained NODE back in service (the writer stays where it is).
    Undrain(UndrainArgs),
    /// Create Seafile's three databases and its user with exactly the grants Seafile needs.
    InitSeafile(super::seafile::InitSeafileArgs),
}

#[derive(clap::Args)]
pub struct DrainArgs {
    /// The node to drain.
    pub node: String,
    /// Seconds to wait for the node's connections to end (the proxies close those still open
    /// after their drain timeout, 30 s by default).
    #[arg(long, default_value_t = 40)]
    pub timeout: u64,
    #[command(flatten)]
    pub place: Where,
}

#[derive(clap::Args)]
pub struct UndrainArgs {
    /// The node to put back in service.
    pub node: String,
    #[command(flatten)]
    pub place: Where,
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
        DbCommand::Drain(a) => drain(a),
        DbCommand::Undrain(a) => undrain(a),
        DbCommand::InitSeafile(a) => super::seafile::init_seafile(a),
    }
}

/// What every reachable proxy says about `node`: (proxies asked, proxies that answered, of those
/// the ones still naming it writer, connections still open to it in total), plus the writers named.
struct Traffic {
    answered: Vec<String>,
    unreachable: Vec<String>,
    naming_it_writer: Vec<String>,
    writers: Vec<Option<String>>,
    connections: i64,
}

fn traffic(cfg: &ClusterConfig, node: &str) -> Traffic {
    let mut t = Traffic {
        answered: vec![],
        unreachable: vec![],
        naming_it_writer: vec![],
        writers: vec![],
        connections: 0,
    };
    for n in &cfg.nodes {
        let addr = n
            .control_addr()
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next());
        let st = addr.and_then(|a| db_proxy::fetch_status(a, Duration::from_secs(2)).ok());
        match st {
            Some(st) => {
                if st.writer.as_deref() == Some(node) {
                    t.naming_it_writer.push(n.name.clone());
                }
                t.connections += st
                    .backends
                    .iter()
                    .filter(|b| b.name == node)
                    .map(|b| b.connections_active)
                    .sum::<i64>();
                t.writers.push(st.writer);
                t.answered.push(n.name.clone());
            }
            None => t.unreachable.push(n.name.clone()),
        }
    }
    t
}

fn drain(a: DrainArgs) -> anyhow::Result<()> {
    let cfg = load_config(a.place.dir.as_deref(), a.place.config.as_deref())?;
    cfg.node(&a.node)?;
    let t0 = Instant::now();
    let r = db_proxy::drain(&cfg, &a.node, true).with_context(|| format!("draining {}", a.node))?;
    match (&r.writer_before, &r.writer_after) {
        (Some(b), Some(w)) if b != w => {
            println!("{}: drained; the writer moved from {b} to {w}", a.node)
        }
        (_, w) => println!(
            "{}: drained; the writer is {}",
            a.node,
            w.as_deref().unwrap_or("not chosen yet")
        ),
    }
    let deadline = Duration::from_secs(a.timeout);
    let mut last = String::new();
    loop {
        let t = traffic(&cfg, &a.node);
        let line = format!(
            "{} connection(s) to {} through {} proxy(ies){}{}",
            t.connections,
            a.node,
            t.answered.len(),
            if t.naming_it_writer.is_empty() {
                String::new()
            } else {
                format!("; still the writer for {}", t.naming_it_writer.join(", "))
            },
            if t.unreachable.is_empty() {
                String::new()
            } else {
                format!(
                    "; no answer from the proxies of {}",
                    t.unreachable.join(", ")
                )
            }
        );
        if line != last {
            println!("[{:5.1}s] {line}", t0.elapsed().as_secs_f64());
            last = line.clone();
        }
        let done = t.connections == 0 && t.naming_it_writer.is_empty() && !t.answered.is_empty();
        if done {
            let writers: Vec<String> = t.writers.iter().flatten().cloned().collect();
            println!(
                "{} is safe to stop: no proxy sends it traffic (writer {}){}. `keel db undrain {}` puts it back.",
                a.node,
                writers.first().map(String::as_str).unwrap_or("none"),
                if t.unreachable.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; the proxies of {} did not answer, check them",
                        t.unreachable.join(", ")
                    )
                },
                a.node
            );
            return Ok(());
        }
        if t0.elapsed() > deadline {
            bail!(
                "{} is NOT safe to stop yet after {} s: {line}",
                a.node,
                a.timeout
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn undrain(a: UndrainArgs) -> anyhow::Result<()> {
    let cfg = load_config(a.place.dir.as_deref(), a.place.config.as_deref())?;
    cfg.node(&a.node)?;
    let r =
        db_proxy::drain(&cfg, &a.node, false).with_context(|| format!("undraining {}", a.node))?;
    println!(
        "{}: back in service; the writer stays {} (no failback)",
        a.node,
        r.writer_after.as_deref().unwrap_or("unchosen")
    );
    Ok(())
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
    let token = cfg
        .control_token()
        .context("reading the control token ([control] in the cluster description)")?;
    let (code, body) = node_agent::http::request_with_token(
        &target.control_addr(),
        "POST",
        "/bootstrap/force",
        token.as_deref(),
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
