//! MariaDB Galera control for keel.
//!
//! The pure core has no I/O and is where the subtle logic lives, so it is unit- and
//! property-tested: [`position`] (`uuid:seqno`, the recovered position in the error log),
//! [`grastate`] (`grastate.dat`), [`status`] (wsrep status and keel's one rule for when a node
//! may take traffic, used by the node agent and the db-proxy alike),
//! [`bootstrap`] (which node may bootstrap the cluster, or why nobody may yet), [`donor`] (which
//! nodes a joiner asks for its state transfer: not the db-proxy writer) and [`mycnf`] (a node's
//! MariaDB configuration).
//!
//! [`process`] is the I/O side: initialise a datadir, start `mariadbd` in its own process group
//! with its output in a log file, `--wsrep-recover`, clean stop. Nothing here ever deletes a
//! datadir. [`sql`] is keel's one MySQL client: the agent's statements over a node's socket (with
//! a deadline) and the db-proxy's checks, writer table and drain.

#![forbid(unsafe_code)]

pub mod adopt;
pub mod bootstrap;
pub mod donor;
pub mod grastate;
pub mod mycnf;
pub mod position;
pub mod process;
pub mod sql;
pub mod status;
pub mod users;

pub use bootstrap::{
    decide, BootstrapReason, Decision, History, MemberReport, MemberView, Phase, Waiting,
};
pub use grastate::GrState;
pub use position::Position;
pub use status::{Unfit, WsrepStatus};
