//! Real clients against keel: libmemcached's `memccapable` (27 text + 27 binary checks) and the
//! python client scripts in `tests/clients/` that do what Seafile's components do (pylibmc text
//! and binary, pymemcache as Django configures it, python-memcached).
//!
//! Every check runs against Debian's memcached too: that proves the tool's output parsing and the
//! scripts themselves, so a failure against keel is keel's.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use test_harness::Server;

use crate::{repo_root, start_keel, start_memcached};

/// Run a command with a deadline (polling `try_wait`, no fixed sleep); kill it if it overruns.
fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Output {
    use std::io::Read;
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    // Drain both pipes on threads so the child never blocks on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out_t = drain(Box::new(child.stdout.take().expect("piped")));
    let err_t = drain(Box::new(child.stderr.take().expect("piped")));
    let start = Instant::now();
    let mut killed = false;
    let status = loop {
        if let Some(st) = child
            .try_wait()
            .unwrap_or_else(|e| panic!("waiting for {desc}: {e}"))
        {
            break st;
        }
        if start.elapsed() > limit && !killed {
            // Still unreaped, so this pid is certainly our child.
            let _ = child.kill();
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    };
    assert!(
        !killed,
        "{desc} ran longer than {limit:?} and was killed\nstdout:\n{}\nstderr:\n{}",
        lossy(&out.stdout),
        lossy(&out.stderr)
    );
    out
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `memccapable -a|-b` against `server`: all 27 checks must pass.
fn memccapable(server: &Server, mode: &str) {
    let out = run_with_deadline(
        Command::new("/usr/bin/memccapable").args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port().to_string(),
            mode,
        ]),
        Duration::from_secs(120),
    );
    let stdout = lossy(&out.stdout);
    let stderr = lossy(&out.stderr);
    let passed = stdout
        .lines()
        .filter(|l| l.trim_end().ends_with("[pass]"))
        .count();
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("[FAIL]") || l.contains("[fail]"))
        .collect();
    let report = format!(
        "memccapable {mode} against {} ({}):\nexit: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log tail:\n{}",
        server.name(),
        server.command_line(),
        out.status,
        server.log_tail(2000)
    );
    assert!(failed.is_empty(), "failed checks {failed:?}\n{report}");
    assert_eq!(passed, 27, "expected 27 passing checks\n{report}");
    assert!(out.status.success(), "non-zero exit\n{report}");
}

#[test]
fn memccapable_ascii_passes_against_memcached() {
    memccapable(&start_memcached(&[]), "-a");
}

#[test]
fn memccapable_binary_passes_against_memcached() {
    memccapable(&start_memcached(&[]), "-b");
}

#[test]
fn memccapable_ascii_passes_against_keel() {
    memccapable(&start_keel(&[]), "-a");
}

#[test]
fn memccapable_binary_passes_against_keel() {
    memccapable(&start_keel(&[]), "-b");
}

/// Run `tests/clients/<script>` with Debian's python against `server`; it must exit 0.
fn python_script(server: &Server, script: &str, extra: &[&str]) {
    let path = repo_root().join("tests/clients").join(script);
    assert!(path.exists(), "missing client script {}", path.display());
    let python = Path::new("/usr/bin/python3");
    let out = run_with_deadline(
        Command::new(python)
            .arg(&path)
            .args(["127.0.0.1", &server.port().to_string()])
            .args(extra)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        Duration::from_secs(120),
    );
    let stdout = lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "{script} {extra:?} against {} ({}) failed: {:?}\nstdout:\n{stdout}\nstderr:\n{}\nserver log tail:\n{}",
        server.name(),
        server.command_line(),
        out.status,
        lossy(&out.stderr),
        server.log_tail(2000)
    );
}

macro_rules! script_tests {
    ($($name:ident: $script:expr, $extra:expr;)*) => {
        mod python_against_memcached {
            use super::*;
            $(#[test] fn $name() { python_script(&start_memcached(&[]), $script, $extra); })*
        }
        mod python_against_keel {
            use super::*;
            $(#[test] fn $name() { python_script(&start_keel(&[]), $script, $extra); })*
        }
    };
}

script_tests! {
    pylibmc_text: "pylibmc_seafile.py", &[];
    pylibmc_binary: "pylibmc_seafile.py", &["--binary"];
    pymemcache_django: "pymemcache_seafile.py", &[];
    python_memcache: "python_memcache_seafile.py", &[];
}
