//! The command table: each command's name, arity, flags and key positions (what `COMMAND INFO`
//! reports and what the server checks before running it), and its handler for the data
//! commands. Each `cmd` module lists its own commands; the server lists the connection, server,
//! transaction and pub/sub commands in a table of its own with the same [`Spec`].

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::{Cmd, Exec};

/// Command flags, as `COMMAND INFO` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flags(pub u32);

impl Flags {
    pub const WRITE: Flags = Flags(1);
    pub const READONLY: Flags = Flags(1 << 1);
    pub const DENYOOM: Flags = Flags(1 << 2);
    pub const ADMIN: Flags = Flags(1 << 3);
    pub const PUBSUB: Flags = Flags(1 << 4);
    pub const NOSCRIPT: Flags = Flags(1 << 5);
    pub const BLOCKING: Flags = Flags(1 << 6);
    pub const LOADING: Flags = Flags(1 << 7);
    pub const STALE: Flags = Flags(1 << 8);
    pub const SKIP_MONITOR: Flags = Flags(1 << 9);
    pub const SKIP_SLOWLOG: Flags = Flags(1 << 10);
    pub const FAST: Flags = Flags(1 << 11);
    pub const NO_AUTH: Flags = Flags(1 << 12);
    pub const MAY_REPLICATE: Flags = Flags(1 << 13);
    pub const NO_MULTI: Flags = Flags(1 << 14);
    pub const ALLOW_BUSY: Flags = Flags(1 << 15);
    pub const SENTINEL: Flags = Flags(1 << 16);

    const NAMES: [(Flags, &'static str); 17] = [
        (Flags::WRITE, "write"),
        (Flags::READONLY, "readonly"),
        (Flags::DENYOOM, "denyoom"),
        (Flags::ADMIN, "admin"),
        (Flags::PUBSUB, "pubsub"),
        (Flags::NOSCRIPT, "noscript"),
        (Flags::BLOCKING, "blocking"),
        (Flags::LOADING, "loading"),
        (Flags::STALE, "stale"),
        (Flags::SKIP_MONITOR, "skip_monitor"),
        (Flags::SKIP_SLOWLOG, "skip_slowlog"),
        (Flags::FAST, "fast"),
        (Flags::NO_AUTH, "no_auth"),
        (Flags::MAY_REPLICATE, "may_replicate"),
        (Flags::NO_MULTI, "no_multi"),
        (Flags::ALLOW_BUSY, "allow_busy"),
        (Flags::SENTINEL, "sentinel"),
    ];

    pub const fn or(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    pub const fn has(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    /// The flag names in `COMMAND INFO`'s order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::NAMES
            .into_iter()
            .filter(move |(f, _)| self.has(*f))
            .map(|(_, n)| n)
    }
}

/// What the command table says about one command (or one subcommand, named `container|sub`).
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Lower case, as `COMMAND INFO` reports it (`get`, `client|setname`).
    pub name: &'static str,
    /// Redis's arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    pub flags: Flags,
    /// Key positions: first, last (negative counts from the end), step; 0, 0, 0 for none.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// ACL categories without the `@` (`"string"`, `"fast"`...).
    pub categories: &'static [&'static str],
    /// Subcommands of a container command (`OBJECT`, `CLIENT`...), each named `container|sub`.
    pub subcommands: &'static [Spec],
}

impl Spec {
    /// Whether `argc` arguments (the name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let a = self.arity as i64;
        if a >= 0 {
            argc == a
        } else {
            argc >= -a
        }
    }

    /// The key arguments of `args` (indices), following first/last/step.
    pub fn key_indices(&self, argc: usize) -> Vec<usize> {
        if self.first_key <= 0 || self.step <= 0 {
            return Vec::new();
        }
        let last = if self.last_key < 0 {
            argc as i64 + self.last_key as i64
        } else {
            self.last_key as i64
        };
        let mut out = Vec::new();
        let mut i = self.first_key as i64;
        while i <= last && i < argc as i64 {
            out.push(i as usize);
            i += self.step as i64;
        }
        out
    }
}

/// A [`Command`] table entry without subcommands: `cmd!(name, arity, flags, first key, last
/// key, step, categories, handler)`.
macro_rules! cmd {
    ($name:expr, $arity:expr, $flags:expr, $fk:expr, $lk:expr, $st:expr, $cats:expr, $run:expr) => {
        $crate::commands::Command {
            spec: $crate::commands::Spec {
                name: $name,
                arity: $arity,
                flags: $flags,
                first_key: $fk,
                last_key: $lk,
                step: $st,
                categories: $cats,
                subcommands: &[],
            },
            run: $run,
        }
    };
}
pub(crate) use cmd;

/// A data command's handler.
pub type Handler = fn(&mut Cmd<'_>) -> Exec;

/// A data command: its spec and the function that runs it.
#[derive(Clone, Copy)]
pub struct Command {
    pub spec: Spec,
    pub run: Handler,
}

fn table() -> &'static HashMap<&'static str, &'static Command> {
    static TABLE: OnceLock<HashMap<&'static str, &'static Command>> = OnceLock::new();
    TABLE.get_or_init(|| {
        crate::cmd::ALL
            .iter()
            .flat_map(|group| group.iter())
            .map(|c| (c.spec.name, c))
            .collect()
    })
}

/// The data command named `name` (any case), if the store runs it.
pub fn lookup(name: &[u8]) -> Option<&'static Command> {
    // Lower-cased on the stack: this runs once per command.
    let mut buf = [0u8; 32];
    let lower = buf.get_mut(..name.len())?;
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let lower = std::str::from_utf8(lower).ok()?;
    table().get(lower).copied()
}

/// Every data command, for `COMMAND`, `COMMAND COUNT` and `COMMAND DOCS`.
pub fn all() -> impl Iterator<Item = &'static Command> {
    crate::cmd::ALL.iter().flat_map(|group| group.iter())
}
