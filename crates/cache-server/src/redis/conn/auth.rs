//! Who the client is and how it talks: `AUTH` (the default user against `requirepass`),
//! `HELLO` (protocol version, authentication and name at once) and `RESET` (back to a fresh
//! connection's state).

use bytes::Bytes;
use redis_proto::{Protocol, Reply};
use tracing::debug;

use super::super::REDIS_VERSION;
use super::{bulk_static, err, ok, valid_name, Conn, Outcome, BAD_NAME};
use crate::PROTOCOL_TARGET;

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const AUTH_NOT_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

/// Compare without leaking where the first difference is.
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

impl Conn {
    pub(super) fn auth(&mut self, args: &[Bytes]) -> Outcome {
        let password = self.shared.cfg.read().password.clone();
        let (user, pass) = match args.len() {
            2 => (&b"default"[..], &args[1][..]),
            3 => (&args[1][..], &args[2][..]),
            _ => return err("ERR syntax error"),
        };
        match self.check_password(user, pass, password.as_deref(), args.len() == 2) {
            Ok(()) => ok(),
            Err(e) => e.into(),
        }
    }

    /// Authenticate `user`/`pass` against `requirepass` as Redis's default user.
    pub(super) fn check_password(
        &mut self,
        user: &[u8],
        pass: &[u8],
        password: Option<&str>,
        one_arg: bool,
    ) -> Result<(), Reply> {
        match password {
            None if one_arg => Err(Reply::error(AUTH_NOT_CONFIGURED)),
            // Without requirepass the default user takes any password.
            None if user == b"default" => {
                self.authenticated = true;
                Ok(())
            }
            Some(pw) if user == b"default" && same_secret(pass, pw.as_bytes()) => {
                self.authenticated = true;
                Ok(())
            }
            // Seahub 13 builds its URL as `redis://PASSWORD@host:port`, which redis-py sends as
            // user PASSWORD with an empty password (`AUTH PASSWORD ""`, `HELLO 3 AUTH PASSWORD
            // ""`); redis-server refuses it. keel accepts it: it proves the same secret.
            Some(pw) if pass.is_empty() && same_secret(user, pw.as_bytes()) => {
                self.authenticated = true;
                Ok(())
            }
            _ => {
                debug!(target: PROTOCOL_TARGET, "redis <{} authentication failed", self.client.id);
                Err(Reply::error(WRONGPASS))
            }
        }
    }

    pub(super) fn hello(&mut self, args: &[Bytes]) -> Outcome {
        let mut ver = None;
        let mut next = 1;
        if args.len() >= 2 {
            next = 2;
            match redis_store::args::parse_i64(&args[1]) {
                Some(v) if v == 2 || v == 3 => ver = Some(v),
                Some(_) => return err("NOPROTO unsupported protocol version"),
                None => return err("ERR Protocol version is not an integer or out of range"),
            }
        }
        let mut auth: Option<(Bytes, Bytes)> = None;
        let mut setname: Option<Bytes> = None;
        let mut j = next;
        while j < args.len() {
            let more = args.len() - 1 - j;
            let opt = &args[j];
            if opt.eq_ignore_ascii_case(b"auth") && more >= 2 {
                auth = Some((args[j + 1].clone(), args[j + 2].clone()));
                j += 3;
            } else if opt.eq_ignore_ascii_case(b"setname") && more >= 1 {
                setname = Some(args[j + 1].clone());
                j += 2;
            } else {
                return Reply::error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(opt)
                ))
                .into();
            }
        }
        if let Some((user, pass)) = auth {
            let password = self.shared.cfg.read().password.clone();
            if let Err(e) = self.check_password(&user, &pass, password.as_deref(), false) {
                return e.into();
            }
        }
        if !self.authenticated {
            return err(HELLO_NOAUTH);
        }
        if let Some(name) = setname {
            if !valid_name(&name) {
                return err(BAD_NAME);
            }
            self.handle.info.lock().name = name.to_vec();
        }
        if let Some(v) = ver {
            self.client.proto = if v == 3 {
                Protocol::Resp3
            } else {
                Protocol::Resp2
            };
            self.handle.info.lock().resp = v as u8;
        }
        let proto = if self.client.proto == Protocol::Resp3 {
            3
        } else {
            2
        };
        Reply::Map(vec![
            (bulk_static("server"), bulk_static("redis")),
            (bulk_static("version"), bulk_static(REDIS_VERSION)),
            (bulk_static("proto"), Reply::Int(proto)),
            (bulk_static("id"), Reply::Int(self.client.id as i64)),
            (bulk_static("mode"), bulk_static("standalone")),
            (bulk_static("role"), bulk_static("master")),
            (bulk_static("modules"), Reply::Array(Vec::new())),
        ])
        .into()
    }
    pub(super) fn reset(&mut self) {
        if self.multi.is_some() {
            self.discard_multi();
        } else if self.shared.cluster.is_none() {
            let id = self.client.id;
            self.shared.ks.lock().unwatch(id);
        }
        let id = self.client.id;
        for c in std::mem::take(&mut self.subs) {
            self.shared.pubsub.unsubscribe(&c, id);
        }
        for p in std::mem::take(&mut self.psubs) {
            self.shared.pubsub.punsubscribe(&p, id);
        }
        self.client.proto = Protocol::Resp2;
        self.client.db = 0;
        self.reply_off = false;
        self.skip_next = 0;
        self.authenticated = self.shared.cfg.read().password.is_none();
        let mut i = self.handle.info.lock();
        i.name.clear();
        i.db = 0;
        i.sub = 0;
        i.psub = 0;
        i.resp = 2;
        i.no_evict = false;
    }
}
