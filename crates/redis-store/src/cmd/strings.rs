//! The strings commands.

use crate::commands::Command;

pub const COMMANDS: &[Command] = &[];
