//! The `keel` command: one binary for the whole tier. Each subcommand lives in `cmd/<name>.rs`
//! with its own `Args` (clap) and `run`; this file only dispatches.

mod cmd;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the cache cluster's write path allocates and frees
/// batch buffers per round, and glibc kept returning those pages to the kernel and faulting
/// them back (10 % of the leader's samples in `clear_page`; see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "keel", version, about = "A highly available cache and database tier for Seafile clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a memcached-compatible cache server (accepts memcached's flags).
    Cache(cmd::cache::Args),
    /// Load generators: `keel bench cache`.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Run the agent of one node of the tier (Galera node, cache, proxy, control API).
    Node(cmd::node::Args),
    /// Start a complete three-node tier on this machine, with no configuration.
    Up(cmd::up::Args),
    /// Stop a tier started by `keel up`.
    Down(cmd::up::DownArgs),
    /// Show the state of every node of the tier.
    Status(cmd::status::Args),
    /// Galera-aware MySQL proxy: one writer for the whole cluster, fast failover, drain.
    DbProxy(cmd::db_proxy::Args),
    /// Database operations (bootstrap --force, …).
    #[command(subcommand)]
    Db(cmd::db::DbCommand),
    /// Print Seafile's database and cache settings (seafile.conf, seahub_settings.py, .env) for one node.
    SeafileConfig(cmd::seafile::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cache(args) => cmd::cache::run(args),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Node(args) => cmd::node::run(args),
        Command::Up(args) => cmd::up::run(args),
        Command::Down(args) => cmd::up::down(args),
        Command::Status(args) => cmd::status::run(args),
        Command::DbProxy(args) => cmd::db_proxy::run(args),
        Command::Db(c) => cmd::db::run(c),
        Command::SeafileConfig(args) => cmd::seafile::run(args),
        Command::Completions { shell } => {
            let mut cli = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cli, "keel", &mut std::io::stdout());
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("keel: error: {e:#}");
        std::process::exit(1);
    }
}
