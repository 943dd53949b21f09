//! Every rendered string is read back by the parser Seafile reads it with: Python's
//! `configparser` configured like seafevents, Python itself for `seahub_settings.py` (and
//! pylibmc for the cache `LOCATION`), real libmemcached for the option string, `sh` for `.env`.

use super::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Debian's python (its modules: pylibmc), not another python3 earlier on PATH.
const PY: &str = "/usr/bin/python3";

fn python(script: &str, stdin: &str) -> Value {
    let mut child = Command::new(PY)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (Debian's python3)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed on\n{stdin}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// seafevents' reader: `configparser.ConfigParser(inline_comment_prefixes=('#', ';'))`, `get`
/// with its default `%` interpolation.
const INI: &str = r#"
import configparser, json, sys
c = configparser.ConfigParser(inline_comment_prefixes=('#', ';'))
c.read_string(sys.stdin.read())
print(json.dumps({s: {k: c.get(s, k) for k in c.options(s)} for s in c.sections()}))
"#;

/// Executes the snippet the way Django imports settings, then builds the pylibmc client the way
/// Django's PyLibMCCache does (`LOCATION` split on ';'), which validates the server string.
const SEAHUB: &str = r#"
import ast, json, sys
src = sys.stdin.read()
ast.parse(src)
ns = {}
exec(src, ns)
import pylibmc
loc = ns['CACHES']['default']['LOCATION']
pylibmc.Client(loc.split(';'))
print(json.dumps({'DATABASES': ns['DATABASES'], 'CACHES': ns['CACHES'],
                  'COMPRESS_CACHE_BACKEND': ns['COMPRESS_CACHE_BACKEND']}))
"#;

/// libmemcached 1.1.4 itself: the option-string parser and the server it yields.
const LIBMEMCACHED: &str = r#"
import ctypes, json, sys
lib = ctypes.CDLL('libmemcached.so.11')
s = sys.stdin.read().encode()
buf = ctypes.create_string_buffer(1024)
rc = lib.libmemcached_check_configuration(s, len(s), buf, 1024)
lib.memcached.restype = ctypes.c_void_p
m = lib.memcached(s, len(s))
out = {'rc': rc, 'error': buf.value.decode(errors='replace')}
if m:
    lib.memcached_server_count.argtypes = [ctypes.c_void_p]
    lib.memcached_server_instance_by_position.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.memcached_server_instance_by_position.restype = ctypes.c_void_p
    lib.memcached_server_name.argtypes = [ctypes.c_void_p]
    lib.memcached_server_name.restype = ctypes.c_char_p
    lib.memcached_server_port.argtypes = [ctypes.c_void_p]
    lib.memcached_server_port.restype = ctypes.c_uint16
    out['count'] = lib.memcached_server_count(m)
    i = lib.memcached_server_instance_by_position(m, 0)
    out['name'] = lib.memcached_server_name(i).decode()
    out['port'] = lib.memcached_server_port(i)
print(json.dumps(out))
"#;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("keel-seafile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster-config/examples")
}

/// A layout-(b)-like description with the app password `pw` in a file.
fn cfg_b(tag: &str, pw: &str, app_host: &str) -> ClusterConfig {
    let d = tmpdir(tag);
    std::fs::write(d.join("app"), format!("{pw}\n")).unwrap();
    std::fs::write(d.join("mon"), "monpw\n").unwrap();
    let text = format!(
        "[cluster]\nname='seafile-db'\ndata_dir='/var/lib/keel'\n\
         [users.app]\nname='seafile'\npassword_file='app'\nhost='{app_host}'\n\
         [users.monitor]\nname='keel_monitor'\npassword_file='mon'\n\
         [[node]]\nname='db1'\naddress='10.0.0.21'\n\
         [[node]]\nname='db2'\naddress='10.0.0.22'\n\
         [[node]]\nname='db3'\naddress='10.0.0.23'\n"
    );
    ClusterConfig::from_toml(&text, &d).unwrap()
}

fn node(n: &str) -> Choice {
    Choice {
        node: Some(n.into()),
        ..Choice::default()
    }
}

/// `--node n --cache memcached` (Seafile 11/12).
fn mc(n: &str) -> Choice {
    Choice {
        provider: Some(CacheProvider::Memcached),
        ..node(n)
    }
}

/// [`cfg_b`] with a Redis password in `[cache] redis_password_file`.
fn cfg_b_redis(tag: &str, pw: &str, redis_pw: &str) -> ClusterConfig {
    let base = cfg_b(tag, pw, "%");
    let d = base.base_dir.clone();
    std::fs::write(d.join("redis"), format!("{redis_pw}\n")).unwrap();
    let mut cfg = base;
    cfg.cache.redis_password_file = Some(PathBuf::from("redis"));
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

#[test]
fn layout_a_uses_the_nodes_own_proxy_and_cache() {
    let cfg = ClusterConfig::load(&examples().join("seafile-layout-a.toml")).unwrap();
    let want_pw = std::fs::read_to_string(examples().join("secrets/seafile.password")).unwrap();
    let want_redis_pw = std::fs::read_to_string(examples().join("secrets/redis.password")).unwrap();
    for (name, addr) in [
        ("app1", "10.0.0.11"),
        ("app2", "10.0.0.12"),
        ("app3", "10.0.0.13"),
    ] {
        let r = resolve(&cfg, &mc(name)).unwrap();
        let t = &r.target;
        assert_eq!(
            t.database,
            Endpoint::new(addr, 3306),
            "the proxy port of layout (a)"
        );
        assert_eq!(t.cache, Endpoint::new(addr, 11211));
        assert_eq!(t.redis, None);
        // Redis is the default: the node's Redis with the description's password.
        let r = resolve(&cfg, &node(name)).unwrap();
        let redis = r.target.redis.as_ref().unwrap();
        assert_eq!(redis.endpoint, Endpoint::new(addr, 6379));
        assert_eq!(r.target.cache, redis.endpoint);
        assert_eq!(
            redis.password.as_deref(),
            Some(want_redis_pw.trim_end()),
            "{redis:?}"
        );
        assert!(!format!("{redis:?}").contains(want_redis_pw.trim_end()));
        assert_eq!(t.user, "seafile");
        assert_eq!(t.password, want_pw.trim_end());
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }
}

#[test]
fn layout_b_node_and_overrides() {
    // App servers on 10.0.1.x: through db1's proxy MariaDB sees 10.0.0.21, which the account
    // does not cover.
    let cfg = cfg_b("b1", "s3cret", "10.0.1.%");
    let r = resolve(&cfg, &mc("db1")).unwrap();
    assert_eq!(r.target.database, Endpoint::new("10.0.0.21", 6033));
    assert_eq!(r.target.cache, Endpoint::new("10.0.0.21", 11211));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("users.app.host '10.0.1.%' does not match 10.0.0.21")),
        "{:?}",
        r.warnings
    );
    // A proxy on the app server itself: no such warning; the cache is still db1's.
    let c = Choice {
        proxy: Some(Endpoint::parse("--proxy", "127.0.0.1:6033").unwrap()),
        ..mc("db1")
    };
    let r = resolve(&cfg, &c).unwrap();
    assert_eq!(r.target.database, Endpoint::new("127.0.0.1", 6033));
    assert_eq!(r.target.cache, Endpoint::new("10.0.0.21", 11211));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // No node at all: both endpoints given.
    let c = Choice {
        proxy: Some(Endpoint::parse("--proxy", "127.0.0.1:6033").unwrap()),
        cache: Some(Endpoint::parse("--cache", "10.0.0.22:11211").unwrap()),
        ..Choice::default()
    };
    let r = resolve(&cfg, &c).unwrap();
    assert_eq!(r.target.node, None);
    assert_eq!(r.target.cache, Endpoint::new("10.0.0.22", 11211));
    // A covering account host: no warning.
    let cfg = cfg_b("b2", "s3cret", "10.0.0.%");
    assert!(resolve(&cfg, &node("db3")).unwrap().warnings.is_empty());
}

#[test]
fn refusals() {
    let cfg = cfg_b("r1", "s3cret", "%");
    assert!(matches!(
        resolve(&cfg, &Choice::default()),
        Err(SeafileError::NoTarget)
    ));
    assert!(matches!(
        resolve(&cfg, &node("db9")),
        Err(SeafileError::Config(ConfigError::UnknownNode { .. }))
    ));
    let v6 = Choice {
        cache: Some(Endpoint::parse("--cache", "[::1]:11211").unwrap()),
        ..node("db1")
    };
    assert!(matches!(
        resolve(&cfg, &v6),
        Err(SeafileError::Ipv6Cache(_))
    ));
    let mut off = cfg.clone();
    off.cache.enabled = false;
    assert!(matches!(
        resolve(&off, &node("db1")),
        Err(SeafileError::NoCache)
    ));
    for bad in ["a%b", "#abc", ";abc", "a b", "a`b"] {
        let cfg = cfg_b("r2", bad, "%");
        assert!(
            matches!(resolve(&cfg, &node("db1")), Err(SeafileError::Password(_))),
            "{bad:?} must be refused"
        );
    }
    for bad in [
        "host", "host:0", "host:x", "::1:3306", "[::1]", "a b:1", "a'b:1",
    ] {
        assert!(Endpoint::parse("--proxy", bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        Endpoint::parse("--proxy", "[::1]:3306")
            .unwrap()
            .to_string(),
        "[::1]:3306"
    );
    let bad_db = Choice {
        databases: DbNames {
            seahub: "seahub db".into(),
            ..DbNames::default()
        },
        ..node("db1")
    };
    assert!(matches!(
        resolve(&cfg, &bad_db),
        Err(SeafileError::BadDatabase { .. })
    ));
}

#[test]
fn standalone_caches_are_warned_about() {
    let mut cfg = cfg_b("sa", "s3cret", "%");
    cfg.cache.mode = cluster_config::CACHE_STANDALONE.into();
    let r = resolve(&cfg, &node("db1")).unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("do not share data")),
        "{:?}",
        r.warnings
    );
    let c = Choice {
        cache: Some(Endpoint::parse("--cache", "10.0.0.21:11211").unwrap()),
        ..node("db2")
    };
    assert!(resolve(&cfg, &c).unwrap().warnings.is_empty());
}

#[test]
fn hostname_cache_is_warned_about() {
    let cfg = cfg_b("h1", "s3cret", "%");
    let c = Choice {
        cache: Some(Endpoint::parse("--cache", "cache.example:11211").unwrap()),
        ..node("db1")
    };
    let r = resolve(&cfg, &c).unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("not an IPv4 address")));
    // The newer rule reads it, the older IPv4-only rule does not.
    let opts = memcached_options(&r.target.cache);
    assert_eq!(first_server(&opts), Some("cache.example:11211"));
    assert_eq!(first_server_ipv4(&opts), None);
}

/// Passwords that survive every reader, including characters that are special somewhere
/// (`#`/`;` inline comments need whitespace before them, `$` in compose and sh, `!` in bash).
const TRICKY: [&str; 4] = ["s3cret", "a#b;c$d!e", "x=y&z*?[a]", "ünï©ode-ok"];

#[test]
fn seafile_conf_reads_back_with_seafiles_configparser() {
    for p in TRICKY {
        let cfg = cfg_b("ini", p, "%");
        let t = resolve(&cfg, &mc("db2")).unwrap().target;
        let text = seafile_conf(&t, false);
        let v = python(INI, &text);
        let db = &v["database"];
        assert_eq!(db["type"], "mysql");
        assert_eq!(db["host"], "10.0.0.22");
        assert_eq!(db["port"], "6033");
        assert_eq!(db["user"], "seafile");
        assert_eq!(db["password"], p, "{text}");
        assert_eq!(db["db_name"], "seafile_db");
        assert_eq!(db["connection_charset"], "utf8");
        let opts = v["memcached"]["memcached_options"].as_str().unwrap();
        assert_eq!(
            opts,
            "--SERVER=10.0.0.22:11211 --POOL-MIN=10 --POOL-MAX=100"
        );
        assert_eq!(first_server(opts), Some("10.0.0.22:11211"));
        assert_eq!(first_server_ipv4(opts), Some(("10.0.0.22".into(), 11211)));

        let v = python(INI, &ccnet_conf(&t, false));
        let db = &v["Database"];
        assert_eq!(db["engine"], "mysql");
        assert_eq!(db["host"], "10.0.0.22");
        assert_eq!(db["port"], "6033");
        assert_eq!(db["passwd"], p);
        assert_eq!(db["db"], "ccnet_db");
    }
}

#[test]
fn redact_hides_only_the_password() {
    let cfg = cfg_b("red", "s3cret", "%");
    let t = resolve(&cfg, &node("db1")).unwrap().target;
    for text in [
        seafile_conf(&t, true),
        ccnet_conf(&t, true),
        seahub_settings(&t, true),
        env_file(&t, true),
    ] {
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains(REDACTED), "{text}");
        assert!(text.contains("10.0.0.21"), "{text}");
    }
    let v = python(INI, &seafile_conf(&t, true));
    assert_eq!(v["database"]["password"], REDACTED);
    assert!(!format!("{t:?}").contains("s3cret"));
}

#[test]
fn libmemcached_parses_the_option_string() {
    let t = resolve(&cfg_b("mc", "pw", "%"), &mc("db3")).unwrap().target;
    let opts = memcached_options(&t.cache);
    let v = python(LIBMEMCACHED, &opts);
    assert_eq!(v["rc"], 0, "libmemcached rejected {opts:?}: {}", v["error"]);
    assert_eq!(v["count"], 1);
    assert_eq!(v["name"], "10.0.0.23");
    assert_eq!(v["port"], 11211);
    // The harness does see a broken string.
    let v = python(LIBMEMCACHED, "--SERVER=10.0.0.23:11211 --NO-SUCH-OPTION");
    assert_ne!(v["rc"], 0);
}

#[test]
fn first_server_rule_is_seafevents() {
    assert_eq!(
        first_server("--SERVER=1.2.3.4:11211 --POOL-MIN=10"),
        Some("1.2.3.4:11211")
    );
    assert_eq!(
        first_server("--SERVER = 1.2.3.4:11211"),
        Some("1.2.3.4:11211")
    );
    assert_eq!(first_server("--SERVER=a:1 --SERVER=b:2"), Some("a:1"));
    // Not at the start: re.match finds nothing and seafevents falls back to localhost.
    assert_eq!(first_server("--POOL-MIN=10 --SERVER=1.2.3.4:11211"), None);
    assert_eq!(first_server(" --SERVER=1.2.3.4:11211"), None);
    assert_eq!(first_server("--server=1.2.3.4:11211"), None);
    assert_eq!(first_server("--SERVER="), None);
    assert_eq!(first_server_ipv4("--SERVER=1.2.3.4"), None);
    assert_eq!(
        first_server_ipv4("--SERVER=10.0.0.1:11211 --POOL-MAX=100"),
        Some(("10.0.0.1".into(), 11211))
    );
}

#[test]
fn seahub_settings_exec_and_pylibmc_accepts_location() {
    for p in TRICKY {
        let cfg = cfg_b("py", p, "%");
        let t = resolve(&cfg, &mc("db1")).unwrap().target;
        let v = python(SEAHUB, &seahub_settings(&t, false));
        let d = &v["DATABASES"]["default"];
        assert_eq!(d["ENGINE"], "django.db.backends.mysql");
        assert_eq!(d["NAME"], "seahub_db");
        assert_eq!(d["USER"], "seafile");
        assert_eq!(d["PASSWORD"], p);
        assert_eq!(d["HOST"], "10.0.0.21");
        assert_eq!(d["PORT"], "6033");
        assert_eq!(d["OPTIONS"]["charset"], "utf8mb4");
        let c = &v["CACHES"];
        assert_eq!(
            c["default"]["BACKEND"],
            "django_pylibmc.memcached.PyLibMCCache"
        );
        assert_eq!(c["default"]["LOCATION"], "10.0.0.21:11211");
        assert_eq!(
            c["locmem"]["BACKEND"],
            "django.core.cache.backends.locmem.LocMemCache"
        );
        assert_eq!(v["COMPRESS_CACHE_BACKEND"], "locmem");
    }
    assert_eq!(py_str("a'b\\c\n"), r"'a\'b\\c\n'");
}

#[test]
fn env_file_reads_back_with_sh() {
    let keys = [
        "CACHE_PROVIDER",
        "MEMCACHED_HOST",
        "MEMCACHED_PORT",
        "SEAFILE_MYSQL_DB_HOST",
        "SEAFILE_MYSQL_DB_PORT",
        "SEAFILE_MYSQL_DB_USER",
        "SEAFILE_MYSQL_DB_PASSWORD",
        "SEAFILE_MYSQL_DB_CCNET_DB_NAME",
        "SEAFILE_MYSQL_DB_SEAFILE_DB_NAME",
        "SEAFILE_MYSQL_DB_SEAHUB_DB_NAME",
    ];
    for p in TRICKY {
        let cfg = cfg_b("env", p, "%");
        let t = resolve(&cfg, &mc("db2")).unwrap().target;
        let text = env_file(&t, false);
        let d = tmpdir("envfile");
        let f = d.join(".env");
        std::fs::write(&f, &text).unwrap();
        let script = format!(
            "set -a; . {}; printf '%s\\n' {}",
            f.display(),
            keys.map(|k| format!("\"${k}\"")).join(" ")
        );
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env_clear()
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let want = [
            "memcached",
            "10.0.0.22",
            "11211",
            "10.0.0.22",
            "6033",
            "seafile",
            p,
            "ccnet_db",
            "seafile_db",
            "seahub_db",
        ];
        assert_eq!(got, want, "{text}");
        // Every line is KEY=VALUE with one of the names Seafile reads.
        for (line, k) in text.lines().zip(keys) {
            assert!(line.starts_with(&format!("{k}=")), "{line}");
        }
    }
}

#[test]
fn init_sql_grants_exactly_the_three_databases() {
    let cfg = cfg_b("sql", "s3cret", "10.0.1.%");
    let sql = init_sql(&cfg, &DbNames::default()).unwrap();
    for db in ["ccnet_db", "seafile_db", "seahub_db"] {
        assert!(sql.contains(&format!(
            "CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4;"
        )));
        assert!(sql.contains(&format!(
            "GRANT ALL PRIVILEGES ON `{db}`.* TO 'seafile'@'10.0.1.%';"
        )));
    }
    assert!(sql.contains("CREATE USER IF NOT EXISTS 'seafile'@'10.0.1.%' IDENTIFIED BY 's3cret';"));
    assert_eq!(sql.matches("GRANT ").count(), 3, "{sql}");
    assert!(!sql.contains("*.*"), "nothing global: {sql}");
}

#[test]
fn grants_exact_missing_and_extra() {
    let dbs = DbNames::default();
    let exact = "GRANT USAGE ON *.* TO `seafile`@`10.0.0.%` IDENTIFIED BY PASSWORD '*ABC'\n\
                 GRANT ALL PRIVILEGES ON `ccnet_db`.* TO `seafile`@`10.0.0.%`\n\
                 GRANT ALL PRIVILEGES ON `seafile\\\\_db`.* TO `seafile`@`10.0.0.%`\n\
                 GRANT ALL PRIVILEGES ON `seahub_db`.* TO `seafile`@`10.0.0.%`\n";
    let r = check_grants(exact, &dbs);
    assert!(r.exact(), "{r:?}");
    assert_eq!(r.granted, ["ccnet_db", "seafile_db", "seahub_db"]);

    let extra = "GRANT SELECT, RELOAD ON *.* TO `seafile`@`%`\n\
                 GRANT ALL PRIVILEGES ON `ccnet_db`.* TO `seafile`@`%` WITH GRANT OPTION\n\
                 GRANT SELECT ON `seahub_db`.* TO `seafile`@`%`\n\
                 GRANT ALL PRIVILEGES ON `other`.* TO `seafile`@`%`\n\
                 GRANT `admin_role` TO `seafile`@`%`\n";
    let r = check_grants(extra, &dbs);
    assert_eq!(r.granted, ["ccnet_db"]);
    assert_eq!(r.missing, ["seafile_db", "seahub_db"]);
    let revokes: Vec<&str> = r.extra.iter().filter_map(|e| e.revoke.as_deref()).collect();
    assert_eq!(
        revokes,
        [
            "REVOKE SELECT, RELOAD ON *.* FROM `seafile`@`%`",
            "REVOKE GRANT OPTION ON `ccnet_db`.* FROM `seafile`@`%`",
            "REVOKE SELECT ON `seahub_db`.* FROM `seafile`@`%`",
            "REVOKE ALL PRIVILEGES ON `other`.* FROM `seafile`@`%`",
            "REVOKE `admin_role` FROM `seafile`@`%`",
        ]
    );
    assert_eq!(
        check_charsets("charset ccnet_db utf8mb4\ncharset seafile_db utf8mb3\n"),
        [("seafile_db".to_string(), "utf8mb3".to_string())]
    );
}

#[test]
fn mysql_host_patterns() {
    assert_eq!(host_pattern_matches("%", "10.0.0.1"), Some(true));
    assert_eq!(host_pattern_matches("10.0.0.%", "10.0.0.21"), Some(true));
    assert_eq!(host_pattern_matches("10.0.1.%", "10.0.0.21"), Some(false));
    assert_eq!(host_pattern_matches("10.0.0._", "10.0.0.21"), Some(false));
    assert_eq!(host_pattern_matches("127.0.0.1", "127.0.0.1"), Some(true));
    assert_eq!(host_pattern_matches("localhost", "127.0.0.1"), Some(false));
    assert_eq!(host_pattern_matches("db1.example", "10.0.0.21"), None);
    assert_eq!(
        host_pattern_matches("10.0.0.0/255.255.255.0", "10.0.0.21"),
        None
    );
}

#[test]
fn redis_is_the_default_and_memcached_stays_selectable() {
    let cfg = cfg_b("sel", "s3cret", "%");
    let t = resolve(&cfg, &node("db2")).unwrap().target;
    let r = t.redis.clone().expect("Redis by default");
    assert_eq!(r.endpoint, Endpoint::new("10.0.0.22", 6379));
    assert_eq!(r.password, None, "no redis_password_* in the description");
    // --cache memcached, or --cache HOST:PORT: memcached as before.
    assert_eq!(resolve(&cfg, &mc("db2")).unwrap().target.redis, None);
    let c = Choice {
        cache: Some(Endpoint::parse("--cache", "10.0.0.23:11211").unwrap()),
        ..node("db2")
    };
    let t = resolve(&cfg, &c).unwrap().target;
    assert_eq!(
        (t.redis, t.cache),
        (None, Endpoint::new("10.0.0.23", 11211))
    );
    // --redis HOST:PORT replaces the node's Redis; without --node too (with --proxy).
    let other = Endpoint::parse("--redis", "10.0.0.99:6380").unwrap();
    let c = Choice {
        redis: Some(other.clone()),
        ..node("db2")
    };
    assert_eq!(
        resolve(&cfg, &c).unwrap().target.redis.unwrap().endpoint,
        other
    );
    let c = Choice {
        redis: Some(other.clone()),
        proxy: Some(Endpoint::parse("--proxy", "127.0.0.1:3306").unwrap()),
        ..Choice::default()
    };
    let t = resolve(&cfg, &c).unwrap().target;
    assert_eq!(
        (t.redis.unwrap().endpoint, t.cache),
        (other.clone(), other.clone())
    );
    // Contradictions and a missing Redis are refused.
    let c = Choice {
        redis: Some(other.clone()),
        ..mc("db2")
    };
    assert!(matches!(
        resolve(&cfg, &c),
        Err(SeafileError::RedisAndMemcached)
    ));
    let c = Choice {
        provider: Some(CacheProvider::Redis),
        proxy: Some(Endpoint::parse("--proxy", "127.0.0.1:3306").unwrap()),
        ..Choice::default()
    };
    assert!(matches!(resolve(&cfg, &c), Err(SeafileError::NoTarget)));
    let mut off = cfg.clone();
    off.cache.redis = false;
    assert_eq!(
        resolve(&off, &node("db1")).unwrap().target.redis,
        None,
        "redis = false: memcached by default"
    );
    let c = Choice {
        provider: Some(CacheProvider::Redis),
        ..node("db1")
    };
    assert!(matches!(resolve(&off, &c), Err(SeafileError::NoRedis)));
    // A Redis password Seafile's readers would change is refused like the database's.
    let mut bad = cfg_b_redis("selbad", "s3cret", "ok");
    std::fs::write(bad.base_dir.join("redis"), "a%b\n").unwrap();
    bad.cache.redis_password_file = Some(PathBuf::from("redis"));
    assert!(matches!(
        resolve(&bad, &node("db1")),
        Err(SeafileError::RedisPassword(_))
    ));
}

#[test]
fn redis_sections_read_back_with_seafiles_configparser() {
    // seafobj reads seafile.conf with a plain ConfigParser (no inline comments).
    const PLAIN: &str = r#"
import configparser, json, sys
c = configparser.ConfigParser()
c.read_string(sys.stdin.read())
print(json.dumps({s: {k: c.get(s, k) for k in c.options(s)} for s in c.sections()}))
"#;
    for p in TRICKY {
        let cfg = cfg_b_redis("rini", "dbpw", p);
        let t = resolve(&cfg, &node("db3")).unwrap().target;
        let text = seafile_conf(&t, false);
        for reader in [INI, PLAIN] {
            let v = python(reader, &text);
            let r = &v["redis"];
            assert_eq!(r["redis_host"], "10.0.0.23", "{text}");
            assert_eq!(r["redis_port"], "6379");
            assert_eq!(r["max_connections"], "100");
            assert_eq!(r["redis_password"], p, "{text}");
            assert!(v.get("memcached").is_none(), "{text}");
            assert_eq!(v["database"]["password"], "dbpw");
        }
        let ev = seafevents_conf(&t, false);
        let v = python(INI, &ev);
        let r = &v["REDIS"];
        assert_eq!(
            (&r["server"], &r["port"]),
            (&"10.0.0.23".into(), &"6379".into())
        );
        assert_eq!(r["password"], p, "{ev}");
    }
    // No password: no password line at all (Seafile's readers then send no AUTH).
    let t = resolve(&cfg_b("rnopw", "dbpw", "%"), &node("db1"))
        .unwrap()
        .target;
    assert!(!seafile_conf(&t, false).contains("redis_password"));
    assert!(!seafevents_conf(&t, false).contains("password"));
    assert_eq!(
        seafevents_conf(&t, false),
        "[REDIS]\nserver = 10.0.0.21\nport = 6379\n"
    );
    // For memcached there is no [REDIS] section to write.
    let t = resolve(&cfg_b("rmc", "dbpw", "%"), &mc("db1"))
        .unwrap()
        .target;
    assert_eq!(seafevents_conf(&t, false), "");
}

/// Executes seahub's settings and parses LOCATION with redis-py's own URL parser (Debian's
/// python3-redis).
const SEAHUB_REDIS: &str = r#"
import json, sys
from redis.connection import parse_url
ns = {}
exec(sys.stdin.read(), ns)
c = ns['CACHES']
print(json.dumps({'backend': c['default']['BACKEND'], 'location': c['default']['LOCATION'],
                  'parsed': parse_url(c['default']['LOCATION']),
                  'locmem': c['locmem']['BACKEND'], 'compress': ns['COMPRESS_CACHE_BACKEND']}))
"#;

#[test]
fn seahub_redis_location_carries_the_password_in_the_password_part() {
    for p in TRICKY.iter().copied().chain(["a,b;c/d@e:f"]) {
        let cfg = cfg_b_redis("rpy", "dbpw", p);
        let t = resolve(&cfg, &node("db2")).unwrap().target;
        let text = seahub_settings(&t, false);
        let v = python(SEAHUB_REDIS, &text);
        assert_eq!(v["backend"], "django.core.cache.backends.redis.RedisCache");
        let loc = v["location"].as_str().unwrap();
        assert!(loc.starts_with("redis://:"), "{loc}");
        // Django splits LOCATION on ',' and ';'.
        assert!(!loc.contains([',', ';']), "{loc}");
        let parsed = &v["parsed"];
        assert_eq!(parsed["password"], p, "{loc}");
        assert!(parsed.get("username").is_none(), "no user name: {parsed}");
        assert_eq!(parsed["host"], "10.0.0.22");
        assert_eq!(parsed["port"], 6379);
        assert_eq!(parsed["db"], 0);
        assert_eq!(v["locmem"], "django.core.cache.backends.locmem.LocMemCache");
        assert_eq!(v["compress"], "locmem");
    }
    let t = resolve(&cfg_b("rpy0", "dbpw", "%"), &node("db2"))
        .unwrap()
        .target;
    assert!(
        seahub_settings(&t, false).contains("'LOCATION': 'redis://10.0.0.22:6379/0',"),
        "{}",
        seahub_settings(&t, false)
    );
    let r = RedisTarget {
        endpoint: Endpoint::parse("--redis", "[::1]:6379").unwrap(),
        password: Some("pw".into()),
    };
    assert_eq!(redis_url(&r, false), "redis://:pw@[::1]:6379/0");
    assert_eq!(redis_url(&r, true), "redis://:********@[::1]:6379/0");
    assert_eq!(percent_encode("aZ0-._~ %:@/"), "aZ0-._~%20%25%3A%40%2F");
}

#[test]
fn redis_env_reads_back_with_sh() {
    let keys = [
        "CACHE_PROVIDER",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "SEAFILE_MYSQL_DB_HOST",
        "SEAFILE_MYSQL_DB_PORT",
        "SEAFILE_MYSQL_DB_USER",
        "SEAFILE_MYSQL_DB_PASSWORD",
        "SEAFILE_MYSQL_DB_CCNET_DB_NAME",
        "SEAFILE_MYSQL_DB_SEAFILE_DB_NAME",
        "SEAFILE_MYSQL_DB_SEAHUB_DB_NAME",
    ];
    let read = |text: &str| -> Vec<String> {
        let d = tmpdir("renvfile");
        let f = d.join(".env");
        std::fs::write(&f, text).unwrap();
        let script = format!(
            "set -a; . {}; printf '%s\\n' {}",
            f.display(),
            keys.map(|k| format!("\"${k}\"")).join(" ")
        );
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env_clear()
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };
    for p in TRICKY {
        let cfg = cfg_b_redis("renv", "dbpw", p);
        let t = resolve(&cfg, &node("db2")).unwrap().target;
        let text = env_file(&t, false);
        let want = [
            "redis",
            "10.0.0.22",
            "6379",
            p,
            "10.0.0.22",
            "6033",
            "seafile",
            "dbpw",
            "ccnet_db",
            "seafile_db",
            "seahub_db",
        ];
        assert_eq!(read(&text), want, "{text}");
        for (line, k) in text.lines().zip(keys) {
            assert!(line.starts_with(&format!("{k}=")), "{line}");
        }
        assert!(!text.contains("MEMCACHED"), "{text}");
        let red = env_file(&t, true);
        assert!(!red.contains(p) || p == "dbpw", "{red}");
        assert!(red.contains("REDIS_PASSWORD='********'\n"), "{red}");
    }
    // Without a password: Seafile's default, an empty REDIS_PASSWORD.
    let t = resolve(&cfg_b("renv0", "dbpw", "%"), &node("db1"))
        .unwrap()
        .target;
    let text = env_file(&t, false);
    assert!(
        text.starts_with(
            "CACHE_PROVIDER=redis\nREDIS_HOST=10.0.0.21\nREDIS_PORT=6379\nREDIS_PASSWORD=\n"
        ),
        "{text}"
    );
    assert_eq!(read(&text)[3], "");
}

/// The printed `LOCATION` against a real password-protected Redis (Debian's redis-server
/// 7.0, `requirepass`), through Django 5's `RedisCache` with redis-py 8 and through redis-py
/// 6.2 (Seafile 13's pin), from the virtualenvs of `scripts/install-deps.sh`. Also pins down
/// why seahub 13's own form is not printed: `redis://PASSWORD@HOST:PORT` makes redis-py send
/// the password as a user name, which redis-server refuses.
#[test]
fn printed_location_authenticates_where_seahubs_form_does_not() {
    const DJANGO: &str = r#"
import json, sys, django
from django.conf import settings
ns = {}
exec(sys.stdin.read(), ns)
settings.configure(CACHES=ns['CACHES'])
django.setup()
from django.core.cache import caches
c = caches['default']
try:
    c.set('keel:k', 41, 30)
    c.incr('keel:k')
    print(json.dumps({'ok': c.get('keel:k')}))
except Exception as e:
    print(json.dumps({'error': type(e).__name__ + ': ' + str(e)}))
"#;
    const REDIS_PY: &str = r#"
import json, sys, redis
r = redis.Redis.from_url(sys.stdin.read().strip())
try:
    r.set('keel:k2', 'v')
    print(json.dumps({'ok': r.get('keel:k2').decode()}))
except Exception as e:
    print(json.dumps({'error': type(e).__name__ + ': ' + str(e)}))
"#;
    let venv8 = "/opt/keel-py/redis8/bin/python";
    let venv6 = "/opt/keel-py/redis6/bin/python";
    for v in [venv8, venv6] {
        assert!(
            Path::new(v).exists(),
            "{v} missing: run scripts/install-deps.sh (it installs redis-py 6.2 and 8 + Django 5)"
        );
    }
    let run_py = |py: &str, script: &str, stdin: &str| -> Value {
        let mut child = Command::new(py)
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let pw = "r3d1s-pw";
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let d = tmpdir("redis-server");
    let mut server = Command::new("/usr/bin/redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            pw,
        ])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(&d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("/usr/bin/redis-server (Debian's redis-server)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let result = std::panic::catch_unwind(|| {
        let cfg = cfg_b_redis("rlive", "dbpw", pw);
        let c = Choice {
            redis: Some(Endpoint::new("127.0.0.1", port)),
            ..node("db1")
        };
        let t = resolve(&cfg, &c).unwrap().target;
        let settings = seahub_settings(&t, false);
        let v = run_py(venv8, DJANGO, &settings);
        assert_eq!(
            v["ok"], 42,
            "Django RedisCache with the printed LOCATION: {v}\n{settings}"
        );
        let url = redis_url(t.redis.as_ref().unwrap(), false);
        for py in [venv6, venv8] {
            let v = run_py(py, REDIS_PY, &url);
            assert_eq!(v["ok"], "v", "{py} {url}: {v}");
            // seahub 13's form: AUTH <password as user name> "" (6.2) / HELLO 3 AUTH <pw> ""
            // (8.x): refused by a password-protected redis-server.
            let seahub13 = format!("redis://{pw}@127.0.0.1:{port}");
            let v = run_py(py, REDIS_PY, &seahub13);
            let e = v["error"].as_str().unwrap_or_default();
            assert!(e.contains("AuthenticationError"), "{py} {seahub13}: {v}");
        }
    });
    let _ = server.kill();
    let _ = server.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn redact_hides_the_redis_password_too() {
    let cfg = cfg_b_redis("rred", "s3cret", "r3dispw");
    let t = resolve(&cfg, &node("db1")).unwrap().target;
    for text in [
        seafile_conf(&t, true),
        seafevents_conf(&t, true),
        seahub_settings(&t, true),
        env_file(&t, true),
    ] {
        assert!(
            !text.contains("r3dispw") && !text.contains("s3cret"),
            "{text}"
        );
        assert!(text.contains("10.0.0.21"), "{text}");
    }
    assert!(seafevents_conf(&t, true).contains("password = ********\n"));
    assert!(seafile_conf(&t, false).contains("redis_password = r3dispw\n"));
    assert!(!format!("{t:?}").contains("r3dispw"));
}
