//! Logging for every subcommand: one `tracing` subscriber on stderr.
//!
//! What is shown: `RUST_LOG` when it is set (tracing's directive syntax, e.g.
//! `RUST_LOG=cache_cluster=debug,info`); otherwise keel's own crates at `info`, `debug` with `-v`
//! and `trace` with `-vv`, and every dependency (openraft, mysql_async, hyper, ...) at `warn`.
//! For `keel cache`, `-v` and `-vv` keep memcached's meaning: the cache server emits memcached's
//! error lines at `debug` and its per-command lines at `trace`.
//!
//! Format: plain text for people (colours only on a terminal), or one JSON object per line with
//! `--log-format json` (or `KEEL_LOG_FORMAT=json`) for journald, Loki or any log shipper.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines: time, level, target, message and fields.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, `span`).
    Json,
}

/// The crates of this workspace, whose level `-v` raises (module paths use `_`).
const KEEL_CRATES: &[&str] = &[
    "keel",
    "cache_bench",
    "cache_cluster",
    "cache_server",
    "cache_store",
    "cluster_config",
    "db_proxy",
    "galera",
    "memcache_proto",
    "node_agent",
    "redis_proto",
    "redis_store",
    "seafile_config",
    "supervisor",
    "tier_certs",
];

/// The filter directives for a verbosity (0: info, 1: debug, 2 or more: trace) when `RUST_LOG` is
/// not set: keel's crates at that level, everything else at `warn`.
pub fn default_directives(verbosity: u8) -> String {
    let level = match verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let mut d = String::from("warn");
    for c in KEEL_CRATES {
        d.push(',');
        d.push_str(c);
        d.push('=');
        d.push_str(level);
    }
    d
}

/// Installs the process's subscriber. An unparsable `RUST_LOG` is an error (said once on stderr)
/// and the defaults apply, so a typo never silences a node.
pub fn init(verbosity: u8, format: LogFormat) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => EnvFilter::try_new(&s).unwrap_or_else(|e| {
            eprintln!("keel: ignoring RUST_LOG={s:?}: {e}");
            EnvFilter::new(default_directives(verbosity))
        }),
        _ => EnvFilter::new(default_directives(verbosity)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling into the binary's code) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_raises_keel_crates_only() {
        for (v, level) in [(0, "info"), (1, "debug"), (2, "trace"), (7, "trace")] {
            let d = default_directives(v);
            assert!(d.starts_with("warn,"), "{d}");
            for c in KEEL_CRATES {
                assert!(d.contains(&format!(",{c}={level}")), "{c} in {d}");
            }
            // Every directive parses as tracing's syntax.
            EnvFilter::try_new(&d).unwrap();
        }
    }

    #[test]
    fn every_workspace_crate_is_listed() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for e in std::fs::read_dir(crates).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name == "test-harness" {
                continue;
            }
            assert!(
                KEEL_CRATES.contains(&name.replace('-', "_").as_str()),
                "crates/{name} is missing from logging::KEEL_CRATES"
            );
        }
    }
}
