//! The `keel` command: one binary for the whole tier. Each subcommand lives in `cmd/<name>.rs`
//! with its own `Args` (clap) and `run`; this file only dispatches.

mod alloc;
mod cmd;
mod logging;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: alloc::Mimalloc = alloc::Mimalloc;

#[derive(Parser)]
#[command(
    name = "keel",
    version,
    about = "A highly available cache and database tier for Seafile clusters"
)]
struct Cli {
    /// More log detail: -v debug, -vv trace, for keel's own crates (`RUST_LOG` overrides). For
    /// `keel cache`, memcached's -v (errors) and -vv (every command and response).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log line format on stderr.
    #[arg(
        long,
        value_enum,
        default_value_t,
        global = true,
        env = "KEEL_LOG_FORMAT"
    )]
    log_format: logging::LogFormat,
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
    /// The tier's certificate authority and its nodes' certificates (init, issue, rotate).
    #[command(subcommand)]
    Certs(cmd::certs::CertsCommand),
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
    logging::init(cli.verbose, cli.log_format);
    let result = match cli.command {
        Command::Cache(mut args) => {
            args.verbose = cli.verbose;
            cmd::cache::run(args)
        }
        Command::Bench(c) => cmd::bench::run(c),
        Command::Node(args) => cmd::node::run(args),
        Command::Up(args) => cmd::up::run(args),
        Command::Down(args) => cmd::up::down(args),
        Command::Status(args) => cmd::status::run(args),
        Command::DbProxy(args) => cmd::db_proxy::run(args),
        Command::Certs(c) => cmd::certs::run(c),
        Command::Db(c) => cmd::db::run(c),
        Command::SeafileConfig(args) => cmd::seafile::run(args),
        Command::Completions { shell } => {
            let mut cli = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cli, "keel", &mut std::io::stdout());
            Ok(())
        }
    };
    if let Err(e) = result {
        // The command's outcome for the person who ran it, not a log line: always shown.
        eprintln!("keel: error: {e:#}");
        std::process::exit(1);
    }
}
