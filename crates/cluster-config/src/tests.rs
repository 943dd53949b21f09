//! Tests of parsing, defaults and validation, including the shipped examples.

use super::*;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("keel-cfg-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("app.pw"), "s3cret\n").unwrap();
    std::fs::write(d.join("mon.pw"), "m0n\n").unwrap();
    d
}

fn three_local(extra_node2: &str) -> String {
    format!(
        r#"
[cluster]
name = "t"
data_dir = "data"
[users.app]
name = "seafile"
password_file = "app.pw"
[users.monitor]
name = "mon"
password_file = "mon.pw"
[[node]]
name = "n1"
address = "127.0.0.1"
sql_port = 3400
galera_port = 3401
ist_port = 3402
sst_port = 3403
cache_port = 3404
proxy_port = 3405
control_port = 3406
redis_port = 3408
[[node]]
name = "n2"
address = "127.0.0.1"
sql_port = 3410
galera_port = 3411
ist_port = 3412
sst_port = 3413
cache_port = 3414
proxy_port = 3415
redis_port = 3418
{extra_node2}
[[node]]
name = "n3"
address = "127.0.0.4"
"#
    )
}

fn problems(text: &str, dir: &Path) -> Vec<FieldError> {
    match ClusterConfig::from_toml(text, dir) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Ok(_) => vec![],
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn valid_three_nodes_with_defaults_and_resolved_paths() {
    let d = tmpdir("ok");
    let cfg = ClusterConfig::from_toml(&three_local("control_port = 3416"), &d).unwrap();
    assert_eq!(cfg.nodes.len(), 3);
    let n3 = cfg.node("n3").unwrap();
    assert_eq!(
        (n3.sql_port, n3.galera_port, n3.cache_port, n3.control_port),
        (3306, 4567, 11211, 7480)
    );
    assert_eq!(cfg.node_dir(n3), d.join("data").join("n3"));
    assert_eq!(
        cfg.gcomm_address(),
        "gcomm://127.0.0.1:3401,127.0.0.1:3411,127.0.0.4:4567"
    );
    assert_eq!(cfg.app_password().unwrap(), "s3cret");
    assert_eq!(
        cfg.users.app.databases,
        SEAFILE_DATABASES.map(String::from).to_vec()
    );
    assert_eq!(cfg.index_of("n2"), Some(1));
    assert_eq!(cfg.database.sst_method, "rsync");
}

#[test]
fn duplicate_port_names_both_fields() {
    let d = tmpdir("dup");
    // n2's control port defaults to 7480, fine; make it collide with n1's sql port instead.
    let p = problems(&three_local("control_port = 3400"), &d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "node[1].control_port");
    assert!(
        p[0].problem.contains("node[0].sql_port"),
        "{}",
        p[0].problem
    );
    // "localhost" is the same host as 127.0.0.1
    let text = three_local("control_port = 3416").replacen(
        "address = \"127.0.0.1\"",
        "address = \"localhost\"",
        1,
    );
    let text = text.replace("sql_port = 3410", "sql_port = 3400");
    let p = problems(&text, &d);
    assert_eq!(
        p.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(),
        ["node[1].sql_port"]
    );
}

#[test]
fn same_ports_on_different_hosts_are_fine() {
    let d = tmpdir("hosts");
    let text = three_local("control_port = 3416").replace(
        "name = \"n3\"\naddress = \"127.0.0.4\"",
        "name = \"n3\"\naddress = \"127.0.0.4\"\nsql_port = 3400",
    );
    assert!(problems(&text, &d).is_empty());
}

#[test]
fn unreadable_password_file_and_unknown_field() {
    let d = tmpdir("pw");
    let text = three_local("control_port = 3416").replace("app.pw", "missing.pw");
    let p = problems(&text, &d);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].field, "users.app.password_file");
    assert!(
        p[0].problem.contains("unreadable password file"),
        "{}",
        p[0].problem
    );
    assert!(p[0].problem.contains("missing.pw"));

    let text = three_local("control_port = 3416\ncahce_port = 1");
    match ClusterConfig::from_toml(&text, &d) {
        Err(ConfigError::Parse { message, .. }) => {
            assert!(message.contains("cahce_port"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn many_problems_reported_at_once() {
    let d = tmpdir("many");
    let text = three_local("control_port = 3416")
        .replace("name = \"n2\"", "name = \"n1\"")
        .replace("name = \"t\"", "name = \"bad name\"")
        .replace("sst_port = 3403", "sst_port = 0")
        .replace("[[node]]\nname = \"n3\"\naddress = \"127.0.0.4\"", "");
    let p = problems(&text, &d);
    let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
    assert!(fields.contains(&"cluster.name"), "{fields:?}");
    assert!(fields.contains(&"node[1].name"), "{fields:?}");
    assert!(fields.contains(&"node[0].sst_port"), "{fields:?}");
    assert!(
        fields.contains(&"node"),
        "two nodes must be refused: {fields:?}"
    );
}

#[test]
fn unknown_node_names_the_known_ones() {
    let d = tmpdir("unk");
    let cfg = ClusterConfig::from_toml(&three_local("control_port = 3416"), &d).unwrap();
    let e = cfg.node("n9").unwrap_err().to_string();
    assert!(e.contains("n9") && e.contains("n1, n2, n3"), "{e}");
}

#[test]
fn round_trip_through_toml() {
    let d = tmpdir("rt");
    let cfg = ClusterConfig::from_toml(&three_local("control_port = 3416"), &d).unwrap();
    let back = ClusterConfig::from_toml(&cfg.to_toml(), &d).unwrap();
    assert_eq!(cfg, back);
}

#[test]
fn shipped_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let a = ClusterConfig::load(&dir.join("seafile-layout-a.toml")).unwrap();
    assert_eq!(a.nodes.len(), 3);
    assert_eq!(a.node("app2").unwrap().proxy_port, 3306);
    assert_eq!(a.node("app2").unwrap().redis_addr(), "10.0.0.12:6379");
    assert_eq!(a.redis_password().unwrap().map(|p| p.len()), Some(48));
    assert_eq!(a.control_token().unwrap().map(|p| p.len()), Some(48));
    assert!(!a.control.metrics_need_token);
    std::env::set_var("KEEL_SEAFILE_PASSWORD", "x1");
    std::env::set_var("KEEL_MONITOR_PASSWORD", "x2");
    std::env::set_var("KEEL_REDIS_PASSWORD", "x3");
    std::env::set_var("KEEL_CONTROL_TOKEN", "x4");
    let b = ClusterConfig::load(&dir.join("seafile-layout-b.toml")).unwrap();
    assert_eq!(b.node("db3").unwrap().sql_port, 3306);
    assert_eq!(b.app_password().unwrap(), "x1");
    assert_eq!(b.redis_password().unwrap().as_deref(), Some("x3"));
    assert_eq!(b.control_token().unwrap().as_deref(), Some("x4"));
}

#[test]
fn cache_cluster_port_defaults_and_peers() {
    let d = tmpdir("raft");
    let cfg = ClusterConfig::from_toml(&three_local("control_port = 3416"), &d).unwrap();
    assert!(cfg.cache.clustered(), "cluster mode is the default");
    assert_eq!(cfg.cache.read, "linearizable");
    assert_eq!(cfg.node("n1").unwrap().raft_port(), Some(4404));
    assert_eq!(cfg.node("n3").unwrap().raft_addr(), "127.0.0.4:12211");
    assert_eq!(
        cfg.cache_peers(),
        "1=127.0.0.1:4404,2=127.0.0.1:4414,3=127.0.0.4:12211"
    );
    // An explicit field wins.
    let cfg = ClusterConfig::from_toml(
        &three_local("control_port = 3416\ncache_cluster_port = 3417"),
        &d,
    )
    .unwrap();
    assert_eq!(cfg.node("n2").unwrap().raft_port(), Some(3417));
    // The explicit port survives the TOML round trip; a defaulted one is not written.
    let back = ClusterConfig::from_toml(&cfg.to_toml(), &d).unwrap();
    assert_eq!(back.node("n2").unwrap().cache_cluster_port, Some(3417));
    assert_eq!(back.node("n1").unwrap().cache_cluster_port, None);
}

#[test]
fn cache_cluster_port_validation() {
    let d = tmpdir("raftbad");
    // Collides with n1's SQL port.
    let p = problems(
        &three_local("control_port = 3416\ncache_cluster_port = 3400"),
        &d,
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "node[1].cache_cluster_port");
    assert!(
        p[0].problem.contains("node[0].sql_port"),
        "{}",
        p[0].problem
    );
    // The default would overflow.
    let text =
        three_local("control_port = 3416").replace("cache_port = 3414", "cache_port = 65000");
    let p = problems(&text, &d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "node[1].cache_cluster_port");
    assert!(p[0].problem.contains("above 65535"), "{}", p[0].problem);
    // Standalone caches need no Raft port, so the same file is fine.
    let standalone = text.replace(
        "[[node]]\nname = \"n1\"",
        "[cache]\nmode = \"standalone\"\n[[node]]\nname = \"n1\"",
    );
    assert!(problems(&standalone, &d).is_empty());
    // Unknown mode / read mode name the field.
    let bad = three_local("control_port = 3416").replace(
        "[[node]]\nname = \"n1\"",
        "[cache]\nmode = \"sharded\"\nread = \"stale\"\n[[node]]\nname = \"n1\"",
    );
    let fields: Vec<String> = problems(&bad, &d).into_iter().map(|p| p.field).collect();
    assert_eq!(fields, ["cache.mode", "cache.read"]);
}

#[test]
fn redis_is_on_by_default_at_6379_and_can_be_turned_off() {
    let d = tmpdir("redis");
    let cfg = ClusterConfig::from_toml(&three_local("control_port = 3416"), &d).unwrap();
    assert!(cfg.cache.redis_enabled(), "Redis is on by default");
    assert_eq!(cfg.node("n3").unwrap().redis_port, 6379);
    assert_eq!(cfg.node("n3").unwrap().redis_addr(), "127.0.0.4:6379");
    assert_eq!(cfg.node("n2").unwrap().redis_addr(), "127.0.0.1:3418");
    assert_eq!(
        cfg.redis_password().unwrap(),
        None,
        "no password source: none"
    );
    assert_eq!(cfg.redis_password_path(), None);
    // Two nodes on one address at the default port collide ...
    let text = three_local("control_port = 3416").replace("redis_port = 3418\n", "");
    let text = text.replace("redis_port = 3408\n", "");
    let p = problems(&text, &d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "node[1].redis_port");
    assert!(
        p[0].problem
            .contains("6379 on 127.0.0.1 is also node[0].redis_port"),
        "{}",
        p[0].problem
    );
    // ... and with a port it collides with another field.
    let p = problems(
        &three_local("control_port = 3416").replace("redis_port = 3418", "redis_port = 3404"),
        &d,
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "node[1].redis_port");
    assert!(
        p[0].problem.contains("node[0].cache_port"),
        "{}",
        p[0].problem
    );
    let p = problems(
        &three_local("control_port = 3416").replace("redis_port = 3418", "redis_port = 0"),
        &d,
    );
    assert_eq!(
        p.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(),
        ["node[1].redis_port"]
    );
    // redis = false: the ports are not used, so not checked.
    let off = text.replace(
        "[[node]]\nname = \"n1\"",
        "[cache]\nredis = false\n[[node]]\nname = \"n1\"",
    );
    let cfg = ClusterConfig::from_toml(&off, &d).unwrap();
    assert!(!cfg.cache.redis_enabled());
    // A disabled cache has no Redis either.
    let mut c2 = cfg.clone();
    c2.cache.redis = true;
    c2.cache.enabled = false;
    assert!(!c2.cache.redis_enabled());
    assert!(c2.validate().is_empty(), "{:?}", c2.validate());
}

#[test]
fn redis_password_sources() {
    let d = tmpdir("redispw");
    std::fs::write(d.join("redis.pw"), "r3dis\n").unwrap();
    let with = |cache: &str| {
        three_local("control_port = 3416").replace(
            "[[node]]\nname = \"n1\"",
            &format!("[cache]\n{cache}\n[[node]]\nname = \"n1\""),
        )
    };
    let cfg = ClusterConfig::from_toml(&with("redis_password_file = \"redis.pw\""), &d).unwrap();
    assert_eq!(cfg.redis_password().unwrap().as_deref(), Some("r3dis"));
    assert_eq!(cfg.redis_password_path(), Some(d.join("redis.pw")));
    // It survives the TOML round trip.
    let back = ClusterConfig::from_toml(&cfg.to_toml(), &d).unwrap();
    assert_eq!(
        back.cache.redis_password_file,
        Some(PathBuf::from("redis.pw"))
    );
    assert!(back.cache.redis);

    std::env::set_var("KEEL_TEST_REDIS_PW", "fr0m-env");
    let cfg =
        ClusterConfig::from_toml(&with("redis_password_env = \"KEEL_TEST_REDIS_PW\""), &d).unwrap();
    assert_eq!(cfg.redis_password().unwrap().as_deref(), Some("fr0m-env"));
    assert_eq!(cfg.redis_password_path(), None);

    let fields =
        |t: &str| -> Vec<String> { problems(t, &d).into_iter().map(|p| p.field).collect() };
    assert_eq!(
        fields(&with("redis_password_file = \"nope.pw\"")),
        ["cache.redis_password_file"]
    );
    assert_eq!(
        fields(&with(
            "redis_password_file = \"redis.pw\"\nredis_password_env = \"X\""
        )),
        ["cache.redis_password_file"]
    );
    assert_eq!(
        fields(&with("redis_password_env = \"KEEL_TEST_NO_SUCH_VAR_XYZ\"")),
        ["cache.redis_password_env"]
    );
    std::fs::write(d.join("bad.pw"), "a'b\n").unwrap();
    assert_eq!(
        fields(&with("redis_password_file = \"bad.pw\"")),
        ["cache.redis_password_file"]
    );
    // With Redis off the password source is not read.
    assert!(fields(&with("redis = false\nredis_password_file = \"nope.pw\"")).is_empty());
}
