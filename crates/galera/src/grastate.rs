//! `grastate.dat`: the saved Galera state of a datadir (cluster UUID, seqno, safe_to_bootstrap).
//!
//! ```text
//! # GALERA saved state
//! version: 2.1
//! uuid:    5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f
//! seqno:   -1
//! safe_to_bootstrap: 0
//! ```
//! `seqno: -1` means the node did not stop cleanly (or is running): recover the position.

use crate::position::{is_uuid, Position};
use serde::{Deserialize, Serialize};

/// The parsed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrState {
    pub uuid: String,
    pub seqno: i64,
    pub safe_to_bootstrap: bool,
}

/// Why a `grastate.dat` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrStateError {
    #[error("grastate.dat has no {0} line")]
    Missing(&'static str),
    #[error("grastate.dat: bad {field} value {value:?}")]
    Bad { field: &'static str, value: String },
}

impl GrState {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<GrState, GrStateError> {
        let (mut uuid, mut seqno, mut safe) = (None, None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "uuid" => {
                    if !is_uuid(v) {
                        return Err(GrStateError::Bad {
                            field: "uuid",
                            value: v.into(),
                        });
                    }
                    uuid = Some(v.to_ascii_lowercase());
                }
                "seqno" => {
                    seqno = Some(v.parse::<i64>().map_err(|_| GrStateError::Bad {
                        field: "seqno",
                        value: v.into(),
                    })?)
                }
                "safe_to_bootstrap" => {
                    safe = Some(match v {
                        "1" => true,
                        "0" => false,
                        _ => {
                            return Err(GrStateError::Bad {
                                field: "safe_to_bootstrap",
                                value: v.into(),
                            })
                        }
                    })
                }
                _ => {}
            }
        }
        Ok(GrState {
            uuid: uuid.ok_or(GrStateError::Missing("uuid"))?,
            seqno: seqno.ok_or(GrStateError::Missing("seqno"))?,
            // Files written by Galera < 3.19 have no such line; they never refused a bootstrap.
            safe_to_bootstrap: safe.unwrap_or(false),
        })
    }

    /// The file's text, in the format Galera writes.
    pub fn render(&self) -> String {
        format!(
            "# GALERA saved state\nversion: 2.1\nuuid:    {}\nseqno:   {}\nsafe_to_bootstrap: {}\n",
            self.uuid,
            self.seqno,
            u8::from(self.safe_to_bootstrap)
        )
    }

    /// The saved position when it is trustworthy (the node stopped cleanly), else `None`.
    pub fn position(&self) -> Option<Position> {
        let p = Position {
            uuid: self.uuid.clone(),
            seqno: self.seqno,
        };
        p.is_known().then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLEAN: &str = "# GALERA saved state\nversion: 2.1\nuuid:    5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f\nseqno:   42\nsafe_to_bootstrap: 1\n";

    #[test]
    fn parses_clean_and_crashed() {
        let g = GrState::parse(CLEAN).unwrap();
        assert_eq!(
            g,
            GrState {
                uuid: "5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f".into(),
                seqno: 42,
                safe_to_bootstrap: true
            }
        );
        assert_eq!(g.position().unwrap().seqno, 42);
        let crashed = GrState::parse(
            &CLEAN
                .replace("42", "-1")
                .replace("bootstrap: 1", "bootstrap: 0"),
        )
        .unwrap();
        assert_eq!(crashed.position(), None);
        assert!(!crashed.safe_to_bootstrap);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            GrState::parse("seqno: 1\n"),
            Err(GrStateError::Missing("uuid"))
        );
        let e = GrState::parse(&CLEAN.replace("42", "x")).unwrap_err();
        assert_eq!(
            e,
            GrStateError::Bad {
                field: "seqno",
                value: "x".into()
            }
        );
        assert!(GrState::parse(&CLEAN.replace("bootstrap: 1", "bootstrap: 2")).is_err());
    }

    proptest! {
        #[test]
        fn render_parse_round_trip(seqno in -1i64..1_000_000_000, safe: bool) {
            let g = GrState { uuid: "5e1c6a0e-0b3f-11ef-9c6a-2a3b1c0d9e8f".into(), seqno, safe_to_bootstrap: safe };
            prop_assert_eq!(GrState::parse(&g.render()), Ok(g));
        }
    }
}
