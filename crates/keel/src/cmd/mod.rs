//! One module per subcommand.

pub mod bench;
pub mod cache;
pub mod db;
pub mod node;
pub mod status;
pub mod up;
