//! `keel seafile-config`: Seafile's database and cache settings for one app server, and
//! `keel db init-seafile`: Seafile's three databases and its user with exactly the grants it needs.
//!
//! ```text
//! keel seafile-config --config /etc/keel/cluster.toml --node app1              # layout (a)
//! keel seafile-config --config /etc/keel/cluster.toml --node db1               # layout (b)
//! keel seafile-config --config … --node db1 --proxy 127.0.0.1:6033             # app server's own proxy
//! keel seafile-config --config … --node app1 --format env                      # Seafile 13 .env (Redis)
//! keel seafile-config --config … --node app1 --format env --cache memcached    # Seafile 11/12 .env
//! keel seafile-config --config … --node app1 --only seafile.conf --redact      # one file, on screen
//! keel db init-seafile --config /etc/keel/cluster.toml                          # as root on a DB host
//! ```
//!
//! The rendering and its checks live in the `seafile-config` crate; this module reads the
//! description, prints, and runs the SQL through a local node's socket.

use super::status::load_config;
use anyhow::{bail, Context};
use cluster_config::ClusterConfig;
use seafile_config::{CacheProvider, Choice, DbNames, Endpoint};
use std::path::PathBuf;
use std::time::Duration;

/// Output format of `keel seafile-config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// seafile.conf, seafevents.conf (Redis), ccnet.conf (Seafile ≤ 11) and seahub_settings.py
    /// snippets.
    Conf,
    /// Seafile 12/13 `.env` lines.
    Env,
}

/// One file of `--format conf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum File {
    #[value(name = "seafile.conf")]
    SeafileConf,
    /// Its `[REDIS]` section (empty with memcached).
    #[value(name = "seafevents.conf")]
    SeafeventsConf,
    #[value(name = "ccnet.conf")]
    CcnetConf,
    #[value(name = "seahub_settings.py")]
    SeahubSettings,
}

/// Seafile's database names (defaults: ccnet_db, seafile_db, seahub_db).
#[derive(clap::Args, Debug, Clone)]
pub struct DbNameArgs {
    #[arg(long, default_value = "ccnet_db")]
    pub ccnet_db: String,
    #[arg(long, default_value = "seafile_db")]
    pub seafile_db: String,
    #[arg(long, default_value = "seahub_db")]
    pub seahub_db: String,
}

impl DbNameArgs {
    fn names(&self) -> DbNames {
        DbNames {
            ccnet: self.ccnet_db.clone(),
            seafile: self.seafile_db.clone(),
            seahub: self.seahub_db.clone(),
        }
    }
}

/// Where the cluster description comes from: `--config FILE`, else `DIR/cluster.toml`.
#[derive(clap::Args, Debug, Clone)]
pub struct DescriptionArgs {
    /// The cluster description (TOML), the same file on every host.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// The folder of a tier started by `keel up` (reads DIR/cluster.toml).
    #[arg(long, conflicts_with = "config")]
    pub dir: Option<PathBuf>,
}

impl DescriptionArgs {
    fn load(&self) -> anyhow::Result<ClusterConfig> {
        load_config(self.dir.as_deref(), self.config.as_deref())
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub description: DescriptionArgs,
    /// The node whose proxy and cache Seafile uses: this host's own node (Galera on every app
    /// server), or a database node (dedicated database hosts).
    #[arg(long, short = 'n')]
    pub node: Option<String>,
    /// Use this HOST:PORT for SQL instead of the node's proxy (e.g. a `keel db-proxy` running on
    /// an app server that is not in the description).
    #[arg(long, value_name = "HOST:PORT")]
    pub proxy: Option<String>,
    /// The cache Seafile uses: `redis` (the default when the description serves Redis; Seafile
    /// 13), `memcached` (Seafile 11/12), or HOST:PORT: memcached at that address instead of the
    /// node's cache.
    #[arg(long, value_name = "redis|memcached|HOST:PORT")]
    pub cache: Option<String>,
    /// Use this HOST:PORT for Redis instead of the node's Redis (selects Redis).
    #[arg(long, value_name = "HOST:PORT")]
    pub redis: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Conf)]
    pub format: Format,
    /// Print only this file's part (no headers), to redirect or paste.
    #[arg(long, value_enum, conflicts_with = "format")]
    pub only: Option<File>,
    /// Replace the password with ******** (for showing on screen).
    #[arg(long)]
    pub redact: bool,
    #[command(flatten)]
    pub dbs: DbNameArgs,
}

/// `--cache`: a provider name, or a memcached HOST:PORT.
fn parse_cache(v: Option<&str>) -> anyhow::Result<(Option<CacheProvider>, Option<Endpoint>)> {
    Ok(match v {
        None => (None, None),
        Some("redis") => (Some(CacheProvider::Redis), None),
        Some("memcached") => (Some(CacheProvider::Memcached), None),
        Some(ep) => (
            Some(CacheProvider::Memcached),
            Some(Endpoint::parse("--cache", ep)?),
        ),
    })
}

/// Renders what `keel seafile-config` prints; the warnings go to stderr.
pub fn render(cfg: &ClusterConfig, args: &Args) -> anyhow::Result<(String, Vec<String>)> {
    let (provider, cache) = parse_cache(args.cache.as_deref())?;
    let choice = Choice {
        node: args.node.clone(),
        proxy: args
            .proxy
            .as_deref()
            .map(|p| Endpoint::parse("--proxy", p))
            .transpose()?,
        cache,
        provider,
        redis: args
            .redis
            .as_deref()
            .map(|r| Endpoint::parse("--redis", r))
            .transpose()?,
        databases: args.dbs.names(),
    };
    let r = seafile_config::resolve(cfg, &choice)?;
    let t = &r.target;
    let red = args.redact;
    let mut out = String::new();
    if let Some(only) = args.only {
        out += &match only {
            File::SeafileConf => seafile_config::seafile_conf(t, red),
            File::SeafeventsConf => seafile_config::seafevents_conf(t, red),
            File::CcnetConf => seafile_config::ccnet_conf(t, red),
            File::SeahubSettings => seafile_config::seahub_settings(t, red),
        };
        return Ok((out, r.warnings));
    }
    let who = match &t.node {
        Some(n) => format!("node {n}"),
        None => "the given endpoints".into(),
    };
    let cache = match &t.redis {
        Some(r) => format!("Redis {}", r.endpoint),
        None => format!("cache {}", t.cache),
    };
    out += &format!(
        "# Written by `keel seafile-config` for cluster {:?}, {who}: SQL through {}, {cache}.\n",
        cfg.cluster.name, t.database
    );
    for w in &r.warnings {
        out += &format!("# WARNING: {w}\n");
    }
    match args.format {
        Format::Env => {
            out += "# Seafile 12/13 .env (conf/.env of a binary install, or next to the compose files)\n";
            out += &seafile_config::env_file(t, red);
        }
        Format::Conf if t.redis.is_some() => {
            out += "\n# ===== seafile.conf: replace its [database] and [redis] sections (and drop [memcached]) =====\n";
            out += &seafile_config::seafile_conf(t, red);
            out += "\n# ===== seafevents.conf: replace its [REDIS] section =====\n";
            out += &seafile_config::seafevents_conf(t, red);
            out += "\n# ===== ccnet.conf (Seafile 11 and earlier only): replace its [Database] section =====\n";
            out += &seafile_config::ccnet_conf(t, red);
            out += "\n# ===== seahub_settings.py: replace DATABASES, CACHES and COMPRESS_CACHE_BACKEND =====\n";
            out += &seafile_config::seahub_settings(t, red);
        }
        Format::Conf => {
            out +=
                "\n# ===== seafile.conf: replace its [database] and [memcached] sections =====\n";
            out += &seafile_config::seafile_conf(t, red);
            out += "\n# ===== ccnet.conf (Seafile 11 and earlier only): replace its [Database] section =====\n";
            out += &seafile_config::ccnet_conf(t, red);
            out += "\n# ===== seahub_settings.py: replace DATABASES, CACHES and COMPRESS_CACHE_BACKEND =====\n";
            out += &seafile_config::seahub_settings(t, red);
        }
    }
    Ok((out, r.warnings))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.description.load()?;
    let (out, warnings) = render(&cfg, &args).context("keel seafile-config")?;
    for w in &warnings {
        eprintln!("keel: warning: {w}");
    }
    print!("{out}");
    Ok(())
}

/// `keel db init-seafile`.
#[derive(clap::Args, Debug)]
pub struct InitSeafileArgs {
    #[command(flatten)]
    pub description: DescriptionArgs,
    /// The node to run the SQL on (through its local socket, so run this on that node's host as
    /// root or as the user that runs keel); default: the first node of the description whose
    /// socket is on this host. Galera replicates the result to every node.
    #[arg(long, short = 'n')]
    pub node: Option<String>,
    /// Also revoke grants the app user has beyond what Seafile needs (otherwise they are only
    /// reported, and the command fails).
    #[arg(long)]
    pub revoke_extra: bool,
    #[command(flatten)]
    pub dbs: DbNameArgs,
}

/// Creates Seafile's three databases (utf8mb4) and the app user of the description with `ALL
/// PRIVILEGES` on those three and nothing else, then reads the grants back.
pub fn init_seafile(args: InitSeafileArgs) -> anyhow::Result<()> {
    let cfg = args.description.load()?;
    let dbs = args.dbs.names();
    let node = match &args.node {
        Some(n) => cfg.node(n)?.clone(),
        None => cfg
            .nodes
            .iter()
            .find(|n| {
                galera::mycnf::NodePaths::new(&cfg.node_dir(n))
                    .socket
                    .exists()
            })
            .cloned()
            .with_context(|| {
                format!(
                    "no node of cluster {:?} has its MariaDB socket on this host (looked in {}): \
                     run this on a database host, or give --node",
                    cfg.cluster.name,
                    cfg.nodes
                        .iter()
                        .map(|n| cfg.node_dir(n).join("mysqld.sock").display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
    };
    let paths = galera::mycnf::NodePaths::new(&cfg.node_dir(&node));
    let sql = seafile_config::init_sql(&cfg, &dbs)?;
    let out =
        galera::sql::query(&paths.socket, &sql, Duration::from_secs(30)).with_context(|| {
            format!(
                "running the SQL on {} through {} (is it running and Primary? `keel status`)",
                node.name,
                paths.socket.display()
            )
        })?;
    let account = seafile_config::app_account(&cfg);
    let mut report = seafile_config::check_grants(&out, &dbs);
    if args.revoke_extra && !report.extra.is_empty() {
        let revokes: Vec<String> = report
            .extra
            .iter()
            .filter_map(|e| e.revoke.clone())
            .collect();
        let sql = format!("{}; SHOW GRANTS FOR {account};", revokes.join("; "));
        let out = galera::sql::query(&paths.socket, &sql, Duration::from_secs(30))
            .context("revoking the extra grants")?;
        for r in &revokes {
            println!("revoked: {r}");
        }
        report = seafile_config::check_grants(&out, &dbs);
    }
    for (db, cs) in seafile_config::check_charsets(&out) {
        eprintln!(
            "keel: warning: {db} already existed with character set {cs}; Seafile works with it, \
             but new installs use utf8mb4 (ALTER DATABASE `{db}` CHARACTER SET utf8mb4 changes only \
             the default for new tables)"
        );
    }
    println!(
        "on {}: databases {} exist; {account} has ALL PRIVILEGES on {}",
        node.name,
        dbs.all().join(", "),
        report.granted.join(", ")
    );
    if !report.missing.is_empty() {
        bail!(
            "{account} still lacks ALL PRIVILEGES on {}",
            report.missing.join(", ")
        );
    }
    if !report.extra.is_empty() {
        let lines: Vec<String> = report
            .extra
            .iter()
            .map(|e| match &e.revoke {
                Some(r) => format!("  {}\n    undo: {r};", e.grant),
                None => format!("  {}", e.grant),
            })
            .collect();
        bail!(
            "{account} has grants Seafile does not need:\n{}\nrerun with --revoke-extra to revoke them",
            lines.join("\n")
        );
    }
    println!("{account}: exactly the grants Seafile needs");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    fn cfg() -> ClusterConfig {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../cluster-config/examples/seafile-layout-a.toml");
        ClusterConfig::load(&p).unwrap()
    }

    fn args(argv: &[&str]) -> Args {
        T::try_parse_from(std::iter::once("x").chain(argv.iter().copied()))
            .unwrap()
            .a
    }

    #[test]
    fn conf_output_has_all_three_files_and_env_has_the_seafile13_names() {
        let (out, w) = render(&cfg(), &args(&["--node", "app3", "--cache", "memcached"])).unwrap();
        assert!(w.is_empty(), "{w:?}");
        for s in [
            "[database]\ntype = mysql\nhost = 10.0.0.13\nport = 3306\n",
            "memcached_options = --SERVER=10.0.0.13:11211 --POOL-MIN=10 --POOL-MAX=100\n",
            "[Database]\nENGINE = mysql\n",
            "'LOCATION': '10.0.0.13:11211'",
            "COMPRESS_CACHE_BACKEND = 'locmem'",
        ] {
            assert!(out.contains(s), "{s:?} not in\n{out}");
        }
        let (env, _) = render(
            &cfg(),
            &args(&[
                "--node",
                "app3",
                "--format",
                "env",
                "--redact",
                "--cache",
                "memcached",
            ]),
        )
        .unwrap();
        assert!(env.contains(
            "CACHE_PROVIDER=memcached\nMEMCACHED_HOST=10.0.0.13\nMEMCACHED_PORT=11211\n"
        ));
        assert!(
            env.contains("SEAFILE_MYSQL_DB_PASSWORD='********'\n"),
            "{env}"
        );
        let (only, _) = render(
            &cfg(),
            &args(&[
                "--node",
                "app1",
                "--only",
                "seafile.conf",
                "--cache",
                "memcached",
            ]),
        )
        .unwrap();
        assert!(only.starts_with("[database]\n"), "{only}");
        assert!(only.contains("[memcached]\n"), "{only}");
        assert!(!only.contains("DATABASES"));
        assert!(T::try_parse_from(["x", "--node", "a", "--only", "x.conf"]).is_err());
        // --cache HOST:PORT: memcached at that address, as before.
        let (only, _) = render(
            &cfg(),
            &args(&[
                "--node",
                "app1",
                "--only",
                "seafile.conf",
                "--cache",
                "10.0.0.13:11211",
            ]),
        )
        .unwrap();
        assert!(only.contains("--SERVER=10.0.0.13:11211 "), "{only}");
        assert!(render(&cfg(), &args(&["--node", "app1", "--cache", "10.0.0.13"])).is_err());
    }

    #[test]
    fn redis_is_the_default_for_env_and_conf() {
        let pw = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../cluster-config/examples/secrets/redis.password"),
        )
        .unwrap();
        let pw = pw.trim_end();
        let (env, w) = render(&cfg(), &args(&["--node", "app2", "--format", "env"])).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert!(
            env.contains(&format!(
                "CACHE_PROVIDER=redis\nREDIS_HOST=10.0.0.12\nREDIS_PORT=6379\nREDIS_PASSWORD={pw}\nSEAFILE_MYSQL_DB_HOST=10.0.0.12\n"
            )),
            "{env}"
        );
        assert!(!env.contains("MEMCACHED"), "{env}");
        assert!(env.starts_with("# Written by `keel seafile-config` for cluster \"seafile\", node app2: SQL through 10.0.0.12:3306, Redis 10.0.0.12:6379.\n"), "{env}");
        let (conf, _) = render(&cfg(), &args(&["--node", "app2"])).unwrap();
        for s in [
            "[redis]\nredis_host = 10.0.0.12\nredis_port = 6379\nmax_connections = 100\n",
            &format!("redis_password = {pw}\n"),
            "# ===== seafevents.conf: replace its [REDIS] section =====\n[REDIS]\nserver = 10.0.0.12\nport = 6379\n",
            "'BACKEND': 'django.core.cache.backends.redis.RedisCache',",
            &format!("'LOCATION': 'redis://:{pw}@10.0.0.12:6379/0',"),
            "[Database]\nENGINE = mysql\n",
        ] {
            assert!(conf.contains(s), "{s:?} not in\n{conf}");
        }
        assert!(!conf.contains("memcached_options"), "{conf}");
        let (only, _) = render(
            &cfg(),
            &args(&["--node", "app2", "--only", "seafevents.conf", "--redact"]),
        )
        .unwrap();
        assert_eq!(
            only,
            "[REDIS]\nserver = 10.0.0.12\nport = 6379\npassword = ********\n"
        );
        // --redis HOST:PORT replaces the node's Redis; it contradicts memcached.
        let (env, _) = render(
            &cfg(),
            &args(&[
                "--node",
                "app2",
                "--format",
                "env",
                "--redis",
                "10.0.0.11:6380",
            ]),
        )
        .unwrap();
        assert!(
            env.contains("REDIS_HOST=10.0.0.11\nREDIS_PORT=6380\n"),
            "{env}"
        );
        let e = render(
            &cfg(),
            &args(&[
                "--node",
                "app2",
                "--redis",
                "10.0.0.11:6380",
                "--cache",
                "memcached",
            ]),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("exclude each other"), "{e:#}");
    }

    /// Against a running tier: `keel up --dir DIR`, then
    /// `KEEL_TIER_DIR=DIR cargo test -p keel --bin keel init_seafile_on_a_tier -- --ignored`.
    /// Runs init-seafile twice (idempotent), adds a global grant by hand, checks that it is
    /// refused, then revoked with --revoke-extra.
    #[test]
    #[ignore]
    fn init_seafile_on_a_tier() {
        let dir = PathBuf::from(std::env::var("KEEL_TIER_DIR").expect("KEEL_TIER_DIR"));
        let a = || InitSeafileArgs {
            description: DescriptionArgs {
                config: None,
                dir: Some(dir.clone()),
            },
            node: None,
            revoke_extra: false,
            dbs: DbNameArgs {
                ccnet_db: "ccnet_db".into(),
                seafile_db: "seafile_db".into(),
                seahub_db: "seahub_db".into(),
            },
        };
        init_seafile(a()).unwrap();
        init_seafile(a()).unwrap();
        let cfg = load_config(Some(&dir), None).unwrap();
        let paths = galera::mycnf::NodePaths::new(&cfg.node_dir(&cfg.nodes[0]));
        let acct = seafile_config::app_account(&cfg);
        galera::sql::query(
            &paths.socket,
            &format!("GRANT RELOAD ON *.* TO {acct}; GRANT SELECT ON mysql.* TO {acct}"),
            Duration::from_secs(10),
        )
        .unwrap();
        let e = init_seafile(a()).unwrap_err().to_string();
        assert!(
            e.contains("REVOKE RELOAD ON *.*") && e.contains("REVOKE SELECT ON `mysql`.*"),
            "{e}"
        );
        init_seafile(InitSeafileArgs {
            revoke_extra: true,
            ..a()
        })
        .unwrap();
        init_seafile(a()).unwrap();
        let grants = galera::sql::query(
            &paths.socket,
            &format!("SHOW GRANTS FOR {acct}"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(
            seafile_config::check_grants(&grants, &DbNames::default()).exact(),
            "{grants}"
        );
    }
}
