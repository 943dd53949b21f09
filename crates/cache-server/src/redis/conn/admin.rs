//! The connection-level and server commands: `CLIENT *` (this connection's name, reply mode and
//! info, listing and killing clients), `CONFIG *`, `INFO`, `DEBUG SLEEP` and `TIME`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis_proto::Reply;
use redis_store::Keyspace;
use tracing::debug;

use super::super::{commands, info, now_ms, ClientHandle};
use super::{bulk_static, err, ok, valid_name, with_ks, Conn, Outcome, BAD_NAME};
use crate::PROTOCOL_TARGET;

/// `SAVE`/`BGSAVE`: keel keeps no dump (Seafile runs Redis with `--save "" --appendonly no`).
pub(super) const NO_DUMP: &str = "ERR keel keeps no dump: persistence is not supported";

/// `strtod`-like parse of `DEBUG SLEEP`'s seconds.
pub(super) fn parse_seconds(s: &[u8]) -> Option<f64> {
    let v: f64 = std::str::from_utf8(s).ok()?.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

/// `TIME`: the server's unix time as seconds and microseconds.
pub(super) fn time() -> Outcome {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    Reply::Array(vec![
        Reply::Bulk((us / 1_000_000).to_string().into()),
        Reply::Bulk((us % 1_000_000).to_string().into()),
    ])
    .into()
}

impl Conn {
    /// `CLIENT <subcommand>`.
    pub(super) fn client_command(&mut self, name: &str, args: &[Bytes]) -> Outcome {
        match name {
            "client|id" => Reply::Int(self.client.id as i64).into(),
            "client|setname" => {
                if !valid_name(&args[2]) {
                    return err(BAD_NAME);
                }
                self.handle.info.lock().name = args[2].to_vec();
                ok()
            }
            "client|getname" => {
                let name = self.handle.info.lock().name.clone();
                if name.is_empty() {
                    Reply::Nil.into()
                } else {
                    Reply::Bulk(name.into()).into()
                }
            }
            "client|setinfo" => {
                let attr = args[2].to_ascii_lowercase();
                if !valid_name(&args[3]) {
                    return Reply::error(format!(
                        "ERR {} cannot contain spaces, newlines or special characters.",
                        String::from_utf8_lossy(&attr)
                    ))
                    .into();
                }
                let mut i = self.handle.info.lock();
                match attr.as_slice() {
                    b"lib-name" => i.lib_name = args[3].to_vec(),
                    b"lib-ver" => i.lib_ver = args[3].to_vec(),
                    _ => {
                        return Reply::error(format!(
                            "ERR Unrecognized option '{}'",
                            String::from_utf8_lossy(&args[2])
                        ))
                        .into()
                    }
                }
                ok()
            }
            "client|list" => self.client_list(args),
            "client|info" => {
                Reply::Verbatim(info::client_line(&self.handle, now_ms()).into()).into()
            }
            "client|kill" => self.client_kill(args),
            "client|no-evict" => match args[2].to_ascii_lowercase().as_slice() {
                b"on" | b"off" => {
                    self.handle.info.lock().no_evict = args[2].eq_ignore_ascii_case(b"on");
                    ok()
                }
                _ => err("ERR syntax error"),
            },
            "client|reply" => match args[2].to_ascii_lowercase().as_slice() {
                b"on" => {
                    self.reply_off = false;
                    ok()
                }
                b"off" => {
                    self.reply_off = true;
                    Outcome::Silent
                }
                b"skip" => {
                    if !self.reply_off {
                        self.skip_next = 2;
                    }
                    Outcome::Silent
                }
                _ => err("ERR syntax error"),
            },
            "client|help" => commands::help(
                "CLIENT",
                &[
                    "GETNAME",
                    "    Return the name of the current connection.",
                    "ID",
                    "    Return the ID of the current connection.",
                    "INFO",
                    "    Return information about the current client connection.",
                    "KILL <ip:port>",
                    "    Kill connection made from <ip:port>.",
                    "KILL <option> <value> [<option> <value> [...]]",
                    "    Kill connections. Options are: ID, TYPE (NORMAL|PUBSUB), ADDR, LADDR, SKIPME.",
                    "LIST [options ...]",
                    "    Return information about client connections. Options: TYPE, ID.",
                    "NO-EVICT (ON|OFF)",
                    "    Accepted; keel never evicts clients.",
                    "REPLY (ON|OFF|SKIP)",
                    "    Control the replies sent to the current connection.",
                    "SETNAME <name>",
                    "    Assign the name <name> to the current connection.",
                    "SETINFO <LIB-NAME|LIB-VER> <value>",
                    "    Set client meta attributes.",
                ],
            )
            .into(),
            other => Reply::error(format!("ERR unknown command '{other}'")).into(),
        }
    }

    /// `INFO [section ...]`; `locked` is the keyspace when inside `EXEC`.
    pub(super) fn info_command(
        &mut self,
        args: &[Bytes],
        locked: Option<&mut Keyspace>,
    ) -> Outcome {
        let shared = self.shared.clone();
        let sections = info::sections(&args[1..]);
        let text = with_ks(&shared, locked, |ks| info::render(&shared, ks, &sections));
        Reply::Verbatim(text.into()).into()
    }

    /// `CONFIG <subcommand>`; `locked` is the keyspace when inside `EXEC`.
    pub(super) fn config_command(
        &mut self,
        name: &str,
        args: &[Bytes],
        locked: Option<&mut Keyspace>,
    ) -> Outcome {
        let shared = self.shared.clone();
        match name {
            "config|get" => {
                let patterns = &args[2..];
                let cfg = shared.cfg.read().clone();
                let ksc = with_ks(&shared, locked, |ks| ks.config().clone());
                let port = shared.port.load(Relaxed);
                let mut pairs = Vec::new();
                for p in commands::CONFIG_PARAMS {
                    if patterns.iter().any(|pat| {
                        pat.eq_ignore_ascii_case(p.as_bytes())
                            || (pat.iter().any(|c| matches!(c, b'*' | b'?' | b'['))
                                && redis_store::glob::matches(
                                    &pat.to_ascii_lowercase(),
                                    p.as_bytes(),
                                ))
                    }) {
                        let v = commands::config_value(p, &cfg, &ksc, shared.max_clients, port);
                        pairs.push((bulk_static(p), Reply::Bulk(v.into())));
                    }
                }
                Reply::Map(pairs).into()
            }
            "config|set" => {
                let r = with_ks(&shared, locked, |ks| {
                    let mut ksc = ks.config().clone();
                    let mut cfg = shared.cfg.read().clone();
                    let before = ksc.clone();
                    match commands::config_set(&args[2..], &mut cfg, &mut ksc) {
                        // Every replica must evict alike: the keyspace's settings come from
                        // each node's flags.
                        Ok(()) if shared.cluster.is_some() && ksc != before => Reply::error(
                            "ERR the keyspace's memory settings cannot change at run time in \
                             keel's cluster mode (set --redis-maxmemory and \
                             --redis-maxmemory-policy on every node)",
                        ),
                        Ok(()) => {
                            ks.set_config(ksc);
                            *shared.cfg.write() = cfg;
                            Reply::ok()
                        }
                        Err(e) => e,
                    }
                });
                r.into()
            }
            "config|resetstat" => {
                with_ks(&shared, locked, |ks| ks.reset_stats());
                let st = &shared.stats;
                for c in [
                    &st.total_connections,
                    &st.rejected_connections,
                    &st.total_commands,
                    &st.total_error_replies,
                    &st.net_input_bytes,
                    &st.net_output_bytes,
                ] {
                    c.store(0, Relaxed);
                }
                ok()
            }
            "config|help" => commands::help(
                "CONFIG",
                &[
                    "GET <pattern>",
                    "    Return parameters matching the glob-like <pattern> and their values.",
                    "SET <directive> <value>",
                    "    Set the configuration <directive> to <value>.",
                    "RESETSTAT",
                    "    Reset statistics reported by the INFO command.",
                ],
            )
            .into(),
            other => Reply::error(format!("ERR unknown command '{other}'")).into(),
        }
    }

    /// `DEBUG SLEEP <seconds>` (the only subcommand); `in_exec`: the keyspace lock is held.
    pub(super) fn debug(&mut self, args: &[Bytes], in_exec: bool) -> Outcome {
        if args[1].eq_ignore_ascii_case(b"sleep") && args.len() == 3 {
            match parse_seconds(&args[2]) {
                // Inside EXEC the keyspace lock is held: never sleep there.
                Some(s) if s > 0.0 && !in_exec => {
                    Outcome::Sleep(Duration::from_secs_f64(s.min(86_400.0)))
                }
                _ => ok(),
            }
        } else {
            Reply::error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
                String::from_utf8_lossy(&args[1].slice(..args[1].len().min(128)))
            ))
            .into()
        }
    }

    pub(super) fn client_list(&mut self, args: &[Bytes]) -> Outcome {
        let mut type_filter: Option<bool> = None; // Some(true): pubsub only
        let mut ids: Option<Vec<u64>> = None;
        let mut i = 2;
        while i < args.len() {
            if args[i].eq_ignore_ascii_case(b"type") && i + 1 < args.len() {
                type_filter = match args[i + 1].to_ascii_lowercase().as_slice() {
                    b"normal" => Some(false),
                    b"pubsub" => Some(true),
                    b"master" | b"replica" | b"slave" => {
                        return Reply::Verbatim(Bytes::new()).into()
                    }
                    _ => {
                        return Reply::error(format!(
                            "ERR Unknown client type '{}'",
                            String::from_utf8_lossy(&args[i + 1])
                        ))
                        .into()
                    }
                };
                i += 2;
            } else if args[i].eq_ignore_ascii_case(b"id") && i + 1 < args.len() {
                let mut v = Vec::new();
                for a in &args[i + 1..] {
                    match redis_store::args::parse_i64(a) {
                        Some(n) if n > 0 => v.push(n as u64),
                        _ => return err("ERR Invalid client ID"),
                    }
                }
                ids = Some(v);
                i = args.len();
            } else {
                return err("ERR syntax error");
            }
        }
        let now = now_ms();
        let handles: Vec<Arc<ClientHandle>> =
            self.shared.clients.lock().values().cloned().collect();
        let mut text = String::new();
        for h in handles {
            if let Some(ids) = &ids {
                if !ids.contains(&h.id) {
                    continue;
                }
            }
            if let Some(pubsub) = type_filter {
                let i = h.info.lock();
                if (i.sub + i.psub > 0) != pubsub {
                    continue;
                }
            }
            text.push_str(&info::client_line(&h, now));
        }
        Reply::Verbatim(text.into()).into()
    }

    pub(super) fn client_kill(&mut self, args: &[Bytes]) -> Outcome {
        let handles: Vec<Arc<ClientHandle>> =
            self.shared.clients.lock().values().cloned().collect();
        if args.len() == 3 {
            // Old form: CLIENT KILL addr:port.
            let addr = String::from_utf8_lossy(&args[2]);
            return match handles.iter().find(|h| h.addr.to_string() == addr) {
                Some(h) => {
                    self.kill(h);
                    ok()
                }
                None => err("ERR No such client"),
            };
        }
        if !args.len().is_multiple_of(2) {
            return err("ERR syntax error");
        }
        let mut id: Option<u64> = None;
        let mut addr: Option<String> = None;
        let mut laddr: Option<String> = None;
        let mut pubsub: Option<bool> = None;
        let mut skipme = true;
        for pair in args[2..].chunks(2) {
            let (k, v) = (pair[0].to_ascii_lowercase(), &pair[1]);
            match k.as_slice() {
                b"id" => match redis_store::args::parse_i64(v) {
                    Some(n) if n > 0 => id = Some(n as u64),
                    _ => return err("ERR client-id should be greater than 0"),
                },
                b"addr" => addr = Some(String::from_utf8_lossy(v).into_owned()),
                b"laddr" => laddr = Some(String::from_utf8_lossy(v).into_owned()),
                b"type" => {
                    pubsub = match v.to_ascii_lowercase().as_slice() {
                        b"normal" => Some(false),
                        b"pubsub" => Some(true),
                        b"master" | b"replica" | b"slave" => return Reply::Int(0).into(),
                        _ => {
                            return Reply::error(format!(
                                "ERR Unknown client type '{}'",
                                String::from_utf8_lossy(v)
                            ))
                            .into()
                        }
                    }
                }
                b"user" => {
                    if !v.eq_ignore_ascii_case(b"default") {
                        return Reply::error(format!(
                            "ERR No such user '{}'",
                            String::from_utf8_lossy(v)
                        ))
                        .into();
                    }
                }
                b"skipme" => match v.to_ascii_lowercase().as_slice() {
                    b"yes" => skipme = true,
                    b"no" => skipme = false,
                    _ => return err("ERR syntax error"),
                },
                _ => return err("ERR syntax error"),
            }
        }
        let mut killed = 0;
        for h in &handles {
            if id.is_some_and(|i| i != h.id)
                || addr.as_ref().is_some_and(|a| *a != h.addr.to_string())
                || laddr.as_ref().is_some_and(|a| *a != h.laddr.to_string())
                || (skipme && h.id == self.client.id)
            {
                continue;
            }
            if let Some(p) = pubsub {
                let i = h.info.lock();
                if (i.sub + i.psub > 0) != p {
                    continue;
                }
            }
            self.kill(h);
            killed += 1;
        }
        Reply::Int(killed).into()
    }

    pub(super) fn kill(&mut self, h: &ClientHandle) {
        debug!(target: PROTOCOL_TARGET, "redis <{} killed by client {}", h.id, self.client.id);
        if h.id == self.client.id {
            // Closed after this reply is written.
            self.close = true;
        } else {
            h.kill();
        }
    }
}
