//! Redis 7.0.15's own `COMMAND INFO` and `COMMAND DOCS` entries for the commands keel runs, so
//! that both answer what redis-server answers: command tips, key specifications, summaries,
//! argument trees, history (what redis-cli builds its hints from).
//!
//! The entries are not typed in: `docs.resp` beside this file holds redis-server's replies to
//! `COMMAND INFO <keel's commands>` and `COMMAND DOCS <keel's commands>` in RESP3, verbatim,
//! recorded by `scripts/redis-command-docs.py` from a running redis-server and a running keel
//! (rerun it when keel's command table gains a command). They are parsed once, on first use;
//! [`super::command`] serves them, keeping only the subcommands keel implements.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use redis_proto::Reply;

/// redis-server's RESP3 replies to `COMMAND INFO ...` then `COMMAND DOCS ...`.
static DATA: &[u8] = include_bytes!("docs.resp");

/// Deepest nesting the parser follows (the recorded docs nest about 8 deep).
const MAX_DEPTH: usize = 32;

/// The recorded entries by full name (`get`, `client|list`).
#[derive(Default)]
struct Recorded {
    info: HashMap<Bytes, Reply>,
    docs: HashMap<Bytes, Reply>,
}

fn recorded() -> &'static Recorded {
    static R: OnceLock<Recorded> = OnceLock::new();
    R.get_or_init(|| {
        let r = index(DATA);
        if r.is_none() {
            tracing::error!("the recorded COMMAND INFO/DOCS data does not parse");
        }
        r.unwrap_or_default()
    })
}

/// Redis's `COMMAND INFO` entry for a command or `container|sub` (lower case): the ten
/// fields, a container's element 9 listing all of Redis's subcommands.
pub(super) fn info(name: &str) -> Option<&'static Reply> {
    recorded().info.get(name.as_bytes())
}

/// Redis's `COMMAND DOCS` map for a command or `container|sub` (lower case); a container's
/// `subcommands` lists all of Redis's subcommands.
pub(super) fn docs(name: &str) -> Option<&'static Reply> {
    recorded().docs.get(name.as_bytes())
}

/// The entries of `data` by name, subcommands included; `None` if it is not two well-formed
/// replies of the expected shapes.
fn index(data: &[u8]) -> Option<Recorded> {
    let mut pos = 0;
    let infos = parse(data, &mut pos, 0)?;
    let docs = parse(data, &mut pos, 0)?;
    if pos != data.len() {
        return None;
    }
    let mut out = Recorded::default();
    let Reply::Array(infos) = infos else {
        return None;
    };
    for entry in infos {
        add_info(&mut out.info, entry)?;
    }
    let Reply::Map(docs) = docs else {
        return None;
    };
    for (name, doc) in docs {
        add_docs(&mut out.docs, name, doc)?;
    }
    Some(out)
}

fn add_info(into: &mut HashMap<Bytes, Reply>, entry: Reply) -> Option<()> {
    let Reply::Array(fields) = &entry else {
        return None;
    };
    let Some(Reply::Bulk(name)) = fields.first() else {
        return None;
    };
    if let Some(Reply::Array(subs)) = fields.get(9) {
        for sub in subs {
            add_info(into, sub.clone())?;
        }
    }
    into.insert(name.clone(), entry);
    Some(())
}

fn add_docs(into: &mut HashMap<Bytes, Reply>, name: Reply, doc: Reply) -> Option<()> {
    let (Reply::Bulk(name), Reply::Map(fields)) = (name, &doc) else {
        return None;
    };
    if let Some((_, Reply::Map(subs))) = fields.iter().find(|(k, _)| is_bulk(k, b"subcommands")) {
        for (n, d) in subs {
            add_docs(into, n.clone(), d.clone())?;
        }
    }
    into.insert(name, doc);
    Some(())
}

/// Whether `r` is the bulk string `s`.
pub(super) fn is_bulk(r: &Reply, s: &[u8]) -> bool {
    matches!(r, Reply::Bulk(b) if b.as_ref() == s)
}

/// One RESP3 reply from `data` at `pos` (the types redis-server uses in these replies).
fn parse(data: &[u8], pos: &mut usize, depth: usize) -> Option<Reply> {
    if depth > MAX_DEPTH {
        return None;
    }
    let rest = data.get(*pos..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let (kind, head) = rest[..end].split_first()?;
    *pos += end + 2;
    let number = || -> Option<i64> { std::str::from_utf8(head).ok()?.parse().ok() };
    let count = || -> Option<usize> { usize::try_from(number()?).ok() };
    let items = |n: usize, pos: &mut usize| -> Option<Vec<Reply>> {
        (0..n).map(|_| parse(data, pos, depth + 1)).collect()
    };
    Some(match kind {
        b'+' => Reply::Simple(Bytes::copy_from_slice(head)),
        b'-' => Reply::Error(Bytes::copy_from_slice(head)),
        b':' => Reply::Int(number()?),
        b'_' => Reply::Nil,
        b'#' => Reply::Bool(head == b"t"),
        b'$' => {
            let n = count()?;
            let body = data.get(*pos..pos.checked_add(n)?)?;
            if data.get(*pos + n..*pos + n + 2)? != b"\r\n" {
                return None;
            }
            *pos += n + 2;
            Reply::Bulk(Bytes::copy_from_slice(body))
        }
        b'*' => Reply::Array(items(count()?, pos)?),
        b'~' => Reply::Set(items(count()?, pos)?),
        b'%' => {
            let flat = items(count()?.checked_mul(2)?, pos)?;
            let mut it = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Reply::Map(pairs)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis_proto::{encode_to_vec, Protocol};

    #[test]
    fn recorded_data_parses_and_reencodes_verbatim() {
        // Re-encoding what was parsed gives back redis-server's bytes: nothing is lost
        // between the recording and what keel sends in RESP3.
        let mut pos = 0;
        let infos = parse(DATA, &mut pos, 0).expect("COMMAND INFO reply");
        let split = pos;
        let docs = parse(DATA, &mut pos, 0).expect("COMMAND DOCS reply");
        assert_eq!(pos, DATA.len());
        assert_eq!(encode_to_vec(&infos, Protocol::Resp3), &DATA[..split]);
        assert_eq!(encode_to_vec(&docs, Protocol::Resp3), &DATA[split..]);
        let r = index(DATA).expect("index");
        assert!(r.info.len() > 100 && r.docs.len() > 100);
    }

    #[test]
    fn subcommands_are_indexed() {
        let Some(Reply::Array(f)) = info("client|list") else {
            panic!("no client|list info");
        };
        assert!(is_bulk(&f[0], b"client|list"));
        assert_eq!(f[1], Reply::Int(-2));
        let Some(Reply::Map(d)) = docs("client|list") else {
            panic!("no client|list docs");
        };
        assert!(d.iter().any(|(k, _)| is_bulk(k, b"summary")));
        assert!(info("client|nosuch").is_none());
    }

    #[test]
    fn malformed_data_is_refused_not_panicking() {
        for bad in [
            &b""[..],
            b"*1\r\n",
            b"$5\r\nab\r\n",
            b"$-1\r\n",
            b"%1\r\n+a\r\n",
            b"*1\r\n*10\r\n:1\r\n",
            b"?\r\n",
            b"*0\r\n%0\r\nextra",
        ] {
            assert!(index(bad).is_none(), "{bad:?}");
        }
        assert!(index(b"*0\r\n%0\r\n").is_some());
        let deep = "*1\r\n".repeat(100);
        assert!(parse(deep.as_bytes(), &mut 0, 0).is_none());
    }
}
