//! Real Redis clients against keel's Redis port, doing what Seafile's components do; every test
//! also runs against Debian's redis-server 7.0.15 (`against_redis_server`), which proves the
//! client scripts and their assertions.
//!
//! - redis-py 6.2.x (Seafile 13's pin, RESP2), redis-py 8.x (RESP3 by default, `HELLO 3 AUTH`),
//!   Debian's python3-redis 4.3.4: `tests/clients/redis_seafevents.py` (GET/SET/SETEX/DEL, the
//!   `SET NX EX` lock, LPUSH + BRPOP with timeouts, pub/sub with health-check PINGs, pipelines and
//!   WATCH transactions);
//! - Django 5's `RedisCache` (seahub): `tests/clients/redis_django.py`;
//! - `redis-cli`: commands, stdin mode, `--pipe`, `-3`;
//! - `tests/redis/hiredis_seafile.c` on Debian's libhiredis, compiled here with `cc`: what
//!   seaf-server sends (AUTH, LPUSH repo_size_task, PUBLISH metric_channel, SET EX/GET/EXISTS/DEL).
//!
//! The virtualenvs `/opt/keel-py/redis6` and `/opt/keel-py/redis8` come from
//! `scripts/install-deps.sh`; a missing one fails the test with that hint.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use test_harness::{RedisOpts, RedisServer};

use super::{start_keel_redis, start_redis_server};
use crate::repo_root;

const PASSWORD: &str = "seafile-redis-pw";

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run `cmd` (stdin from `input`), killing it if it outlives `limit`.
fn run(cmd: &mut Command, input: Option<&[u8]>, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(bytes) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
    }
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                // Our own child, not yet reaped: its pid is still ours.
                let _ = child.kill();
                break;
            }
        }
    }
    child.wait_with_output().expect("collect output")
}

fn opts(password: bool) -> RedisOpts {
    if password {
        RedisOpts::with_password(PASSWORD)
    } else {
        RedisOpts::default()
    }
}

/// Run a python client script with `python`; it must exit 0 with "N passed, 0 failed".
fn python_client(server: &RedisServer, python: &str, script: &str, extra: &[&str]) {
    assert!(
        Path::new(python).exists(),
        "{python} is missing: run scripts/install-deps.sh (it makes /opt/keel-py/redis6 and redis8)"
    );
    let path = repo_root().join("tests/clients").join(script);
    let mut cmd = Command::new(python);
    cmd.arg(&path)
        .args(["127.0.0.1", &server.port().to_string()])
        .args(extra)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    if let Some(pw) = server.password() {
        cmd.args(["--password", pw]);
    }
    if server.name().starts_with("keel") {
        // Where keel knowingly differs from redis-server (seahub 13's Redis URL form).
        cmd.arg("--keel");
    }
    let out = run(&mut cmd, None, Duration::from_secs(90));
    let stdout = lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "{script} with {python} {extra:?} against {} ({}) failed: {:?}\nstdout:\n{stdout}\nstderr:\n{}\nserver log tail:\n{}",
        server.name(),
        server.command_line(),
        out.status,
        lossy(&out.stderr),
        server.log_tail(2000)
    );
}

fn redis_py_6(server: &RedisServer) {
    python_client(
        server,
        "/opt/keel-py/redis6/bin/python",
        "redis_seafevents.py",
        &["--expect-resp", "2"],
    );
}

fn redis_py_8(server: &RedisServer) {
    python_client(
        server,
        "/opt/keel-py/redis8/bin/python",
        "redis_seafevents.py",
        &["--expect-resp", "3"],
    );
}

fn redis_py_debian(server: &RedisServer) {
    python_client(
        server,
        "/usr/bin/python3",
        "redis_seafevents.py",
        &["--expect-resp", "2"],
    );
}

fn django_redis_cache(server: &RedisServer) {
    python_client(
        server,
        "/opt/keel-py/redis8/bin/python",
        "redis_django.py",
        &[],
    );
}

/// `redis-cli` against `server`: argument mode, stdin mode, `--pipe`, RESP3 (`-3`).
fn redis_cli(server: &RedisServer) {
    let port = server.port().to_string();
    let base = |extra: &[&str]| {
        let mut c = Command::new("/usr/bin/redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &port]);
        if let Some(pw) = server.password() {
            c.args(["-a", pw, "--no-auth-warning"]);
        }
        c.args(extra);
        c
    };
    let cli = |args: &[&str]| -> String {
        let out = run(&mut base(args), None, Duration::from_secs(30));
        assert!(
            out.status.success(),
            "redis-cli {args:?} against {}: {:?}\n{}{}",
            server.name(),
            out.status,
            lossy(&out.stdout),
            lossy(&out.stderr)
        );
        lossy(&out.stdout)
    };
    assert_eq!(cli(&["FLUSHALL"]), "OK\n");
    assert_eq!(cli(&["SET", "k", "hello world"]), "OK\n");
    assert_eq!(cli(&["GET", "k"]), "hello world\n");
    assert_eq!(cli(&["GET", "nokey"]), "\n");
    assert_eq!(cli(&["--no-raw", "GET", "nokey"]), "(nil)\n");
    assert_eq!(cli(&["-r", "3", "INCR", "c"]), "1\n2\n3\n");
    assert_eq!(cli(&["HSET", "h", "f", "v"]), "1\n");
    assert_eq!(
        cli(&["-3", "--no-raw", "HGETALL", "h"]),
        "1# \"f\" => \"v\"\n"
    );
    assert_eq!(
        cli(&["-3", "--no-raw", "SMEMBERS", "nokey"]),
        "(empty set)\n"
    );
    assert_eq!(cli(&["-3", "--no-raw", "GET", "nokey"]), "(nil)\n");
    assert!(
        cli(&["-3", "--no-raw", "HELLO", "3"]).contains("\"proto\" => (integer) 3"),
        "HELLO 3 through redis-cli -3"
    );
    assert_eq!(cli(&["LPUSH", "q", "a", "b"]), "2\n");
    assert_eq!(cli(&["BRPOP", "q", "1"]), "q\na\n");
    assert_eq!(cli(&["--no-raw", "BRPOP", "nokey", "0.1"]), "(nil)\n");
    assert!(cli(&["SET"]).contains("wrong number of arguments"));
    // stdin mode: one command per line
    let out = run(
        &mut base(&[]),
        Some(b"SET a 1\nINCR a\nGET a\n"),
        Duration::from_secs(30),
    );
    assert_eq!(lossy(&out.stdout), "OK\n2\n2\n", "{}", lossy(&out.stderr));
    // --pipe: 2000 commands of raw RESP
    let mut input = Vec::new();
    for i in 0..2000 {
        input.extend(test_harness::redis::encode_command(&[
            "SET".to_string(),
            format!("pipe:{i}"),
            "x".repeat(100),
        ]));
    }
    let out = run(
        &mut base(&["--pipe"]),
        Some(&input),
        Duration::from_secs(60),
    );
    let text = lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("errors: 0, replies: 2000"),
        "redis-cli --pipe: {:?}\n{text}{}",
        out.status,
        lossy(&out.stderr)
    );
    assert_eq!(cli(&["EXISTS", "pipe:0", "pipe:1999"]), "2\n");
    if server.password().is_some() {
        let mut c = Command::new("/usr/bin/redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &port, "GET", "k"]);
        let out = run(&mut c, None, Duration::from_secs(30));
        assert!(
            lossy(&out.stdout).contains("NOAUTH"),
            "no password: {}",
            lossy(&out.stdout)
        );
    }
}

/// Compile `tests/redis/hiredis_seafile.c` into `dir` and run it against `server`.
fn hiredis(server: &RedisServer) {
    let src = repo_root().join("tests/redis/hiredis_seafile.c");
    let bin = server.dir().join("hiredis_seafile");
    let out = run(
        Command::new("cc")
            .args(["-Wall", "-O1", "-o"])
            .arg(&bin)
            .arg(&src)
            .arg("-lhiredis"),
        None,
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "cc {} failed (is libhiredis-dev installed?):\n{}",
        src.display(),
        lossy(&out.stderr)
    );
    let mut cmd = Command::new(&bin);
    cmd.args(["127.0.0.1", &server.port().to_string()]);
    if let Some(pw) = server.password() {
        cmd.arg(pw);
    }
    let out = run(&mut cmd, None, Duration::from_secs(30));
    let stdout = lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "hiredis_seafile against {} failed: {:?}\n{stdout}{}\nserver log tail:\n{}",
        server.name(),
        out.status,
        lossy(&out.stderr),
        server.log_tail(2000)
    );
}

macro_rules! client_tests {
    ($($name:ident: $client:ident, $password:expr;)*) => {
        mod against_redis_server {
            use super::*;
            $(#[test] fn $name() { $client(&start_redis_server(&opts($password))); })*
        }
        mod against_keel {
            use super::*;
            $(#[test] fn $name() { $client(&start_keel_redis(&opts($password))); })*
        }
    };
}

client_tests! {
    redis_py_6_seafevents: redis_py_6, false;
    redis_py_6_seafevents_password: redis_py_6, true;
    redis_py_8_resp3: redis_py_8, false;
    redis_py_8_resp3_hello_auth: redis_py_8, true;
    redis_py_debian_4_3: redis_py_debian, false;
    django_5_redis_cache: django_redis_cache, true;
    redis_cli_commands_pipe_resp3: redis_cli, false;
    redis_cli_with_password: redis_cli, true;
    hiredis_seaf_server: hiredis, true;
    hiredis_seaf_server_no_password: hiredis, false;
}
