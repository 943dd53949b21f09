//! One module per subcommand.

pub mod bench;
pub mod cache;
pub mod db;
pub mod db_proxy;
pub mod node;
pub mod seafile;
pub mod status;
pub mod up;
