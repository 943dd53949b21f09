//! The `keel` command: one binary for the whole tier. Each subcommand lives in `cmd/<name>.rs`
//! with its own `Args` (clap) and `run`; this file only dispatches.

mod cmd;
mod logging;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc, and freed memory kept for reuse instead of handed back to
/// the kernel (see [`keep_freed_memory`]). The cache cluster's in-memory Raft log grows until a
/// snapshot purges it, then grows again; with memory returned to the kernel in between, every
/// cycle faulted its pages back in, which cost replicated writes about a third of their rate
/// (docs/benchmarks.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Never purge freed pages (mimalloc's `purge_delay = -1`). The process's footprint stays at its
/// peak, as memcached's slabs do; the peak itself is unchanged (the log and the store reach it
/// every cycle anyway). `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn keep_freed_memory() {
    // `mi_option_purge_delay` in mimalloc v2's `mimalloc.h` (libmimalloc-sys exports no name for it).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a global option; mimalloc reads it on each purge decision.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

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
    keep_freed_memory();
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
