//! A Galera position `uuid:seqno`, and the position `mariadbd --wsrep-recover` writes to the
//! error log (`WSREP: Recovered position: <uuid>:<seqno>`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The cluster state UUID Galera uses before a node ever joined a cluster.
pub const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// A point in a cluster's history: the cluster state UUID and the last committed seqno
/// (`-1` = unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub uuid: String,
    pub seqno: i64,
}

impl Position {
    /// Parses `uuid:seqno` (as in `--wsrep-start-position` and the recovery log line).
    pub fn parse(s: &str) -> Option<Position> {
        let (uuid, seqno) = s.trim().rsplit_once(':')?;
        if !is_uuid(uuid) {
            return None;
        }
        let seqno: i64 = seqno.trim().parse().ok()?;
        if seqno < -1 {
            return None;
        }
        Some(Position {
            uuid: uuid.to_ascii_lowercase(),
            seqno,
        })
    }

    /// True when this names a real point of a real cluster (non-zero UUID, seqno ≥ 0).
    pub fn is_known(&self) -> bool {
        self.uuid != ZERO_UUID && self.seqno >= 0
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uuid, self.seqno)
    }
}

/// Is `s` a UUID in the 8-4-4-4-12 hex form Galera prints?
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The last `WSREP: Recovered position: …` in `log` (the part of the error log written by one
/// `--wsrep-recover` run). `None` when the run printed none (e.g. it failed).
pub fn recovered_position(log: &str) -> Option<Position> {
    const MARK: &str = "WSREP: Recovered position:";
    log.lines().rev().find_map(|l| {
        l.find(MARK)
            .and_then(|i| Position::parse(&l[i + MARK.len()..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_recovery_log() {
        let log = "2026-11-26  6:00:01 0 [Note] InnoDB: Buffer pool(s) load completed\n\
                   2026-11-26  6:00:01 0 [Note] WSREP: Recovered position: 5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f:1234\n\
                   2026-11-26  6:00:01 0 [Note] /usr/sbin/mariadbd: Shutdown complete\n";
        let p = recovered_position(log).unwrap();
        assert_eq!(p.uuid, "5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f");
        assert_eq!(p.seqno, 1234);
        assert!(p.is_known());
        assert_eq!(p.to_string(), "5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f:1234");
    }

    #[test]
    fn takes_the_last_and_ignores_garbage() {
        let log = "x WSREP: Recovered position: 5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f:7\n\
                   y WSREP: Recovered position: 5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f:9\n\
                   z WSREP: Recovered position: nonsense\n";
        assert_eq!(recovered_position(log).unwrap().seqno, 9);
        assert_eq!(recovered_position("nothing here\n"), None);
        let zero =
            recovered_position(&format!("WSREP: Recovered position: {ZERO_UUID}:-1")).unwrap();
        assert!(!zero.is_known());
        assert_eq!(Position::parse("abc:1"), None);
        assert_eq!(Position::parse(&format!("{ZERO_UUID}:-2")), None);
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(a in "[0-9a-f]{8}", b in "[0-9a-f]{4}", c in "[0-9a-f]{4}", d in "[0-9a-f]{4}", e in "[0-9a-f]{12}", seqno in -1i64..i64::MAX) {
            let p = Position { uuid: format!("{a}-{b}-{c}-{d}-{e}"), seqno };
            prop_assert_eq!(Position::parse(&p.to_string()), Some(p));
        }

        #[test]
        fn never_panics_on_any_log(s in ".*") {
            let _ = recovered_position(&s);
        }
    }
}
