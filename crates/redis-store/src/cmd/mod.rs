//! The data commands, one module per Redis command group. Each module exports `COMMANDS`, its
//! part of the command table.

use crate::commands::Command;

pub mod hashes;
pub mod keys;
pub mod lists;
pub mod sets;
pub mod strings;

/// Every group's table.
pub(crate) const ALL: &[&[Command]] = &[
    keys::COMMANDS,
    strings::COMMANDS,
    lists::COMMANDS,
    hashes::COMMANDS,
    sets::COMMANDS,
];
