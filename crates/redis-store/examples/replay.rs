//! Runs commands read from stdin (one per line, arguments separated by spaces, `\xHH`
//! escapes allowed) against a fresh keyspace and prints each RESP2 reply, so the replies can be
//! compared byte for byte with redis-server's (`scripts` feed both the same lines).

use std::io::{BufRead, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis_store::{errors, lookup, Client, Config, Exec, Keyspace, Reply};

fn enc(r: &Reply, out: &mut Vec<u8>) {
    match r {
        Reply::Simple(s) => {
            out.push(b'+');
            out.extend_from_slice(s);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Error(s) => {
            out.push(b'-');
            out.extend_from_slice(s);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Int(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
        Reply::Bulk(b) | Reply::Verbatim(b) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(v) | Reply::Set(v) | Reply::Push(v) => {
            out.extend_from_slice(format!("*{}\r\n", v.len()).as_bytes());
            for x in v {
                enc(x, out);
            }
        }
        Reply::Map(v) => {
            out.extend_from_slice(format!("*{}\r\n", v.len() * 2).as_bytes());
            for (k, x) in v {
                enc(k, out);
                enc(x, out);
            }
        }
        Reply::Double(d) => enc(&Reply::Bulk(Bytes::from(d.to_string())), out),
        Reply::Bool(b) => enc(&Reply::Int(*b as i64), out),
    }
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn main() {
    let mut ks = Keyspace::new(Config::default());
    let mut client = Client::default();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let args: Vec<Bytes> = line
            .split(' ')
            .filter(|a| !a.is_empty())
            .map(|a| Bytes::from(unescape(a)))
            .collect();
        if args.is_empty() {
            continue;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let reply = match lookup(&args[0]) {
            None => Reply::error(format!(
                "ERR unknown command '{}'",
                String::from_utf8_lossy(&args[0])
            )),
            Some(cmd) if !cmd.spec.arity_ok(args.len()) => errors::wrong_arity(cmd.spec.name),
            Some(cmd) => match ks.execute(&mut client, cmd, &args, now) {
                Exec::Reply(r) => r,
                Exec::Blocked { .. } => Reply::simple("BLOCKED"),
            },
        };
        let mut buf = Vec::new();
        enc(&reply, &mut buf);
        let _ = out.write_all(&buf);
    }
}
