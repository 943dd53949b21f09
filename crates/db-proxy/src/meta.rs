//! keel's own schema in the replicated database, `keel_meta`: the writer row and the drain
//! flags. Every statement here runs on a node the proxy saw healthy (Primary, Synced); reads use
//! `wsrep_sync_wait` so they see every write certified anywhere in the cluster before them.
//!
//! ```sql
//! CREATE TABLE keel_meta.writer (id TINYINT PRIMARY KEY, node VARCHAR(64) NOT NULL,
//!                                epoch BIGINT UNSIGNED NOT NULL);
//! CREATE TABLE keel_meta.drain (node VARCHAR(64) PRIMARY KEY);
//! ```
//! The monitor user needs `ALL ON keel_meta.*` (besides `PROCESS` for the status checks).

use crate::protocol::quote;
use crate::writer::WriterRow;
use galera::sql::{Conn, SqlError};
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// MariaDB error codes seen here.
const ER_BAD_DB: u16 = 1049;
const ER_NO_SUCH_TABLE: u16 = 1146;

/// Connects as the monitor user for `keel_meta` work. `wsrep_sync_wait=7` makes reads,
/// UPDATE/DELETE and INSERT causal: they first wait until this node has applied everything
/// certified before them, so a compare-and-set never runs against a stale epoch.
pub async fn connect(addr: SocketAddr, user: &str, password: &str) -> Result<Conn, SqlError> {
    let mut c = Conn::connect(addr, user, password, None).await?;
    c.query("SET SESSION wsrep_sync_wait=7").await?;
    Ok(c)
}

/// Creates the schema if it is missing (DDL replicates by TOI; `IF NOT EXISTS` makes concurrent
/// proxies harmless).
pub async fn ensure_schema(c: &mut Conn) -> Result<(), SqlError> {
    c.query("CREATE DATABASE IF NOT EXISTS keel_meta").await?;
    c.query(
        "CREATE TABLE IF NOT EXISTS keel_meta.writer (id TINYINT PRIMARY KEY, node VARCHAR(64) NOT NULL, \
         epoch BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB",
    )
    .await?;
    c.query(
        "CREATE TABLE IF NOT EXISTS keel_meta.drain (node VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB",
    )
    .await?;
    Ok(())
}

/// The writer row and the drained nodes (creating the schema on first use).
pub async fn read(c: &mut Conn) -> Result<(Option<WriterRow>, BTreeSet<String>), SqlError> {
    match read_inner(c).await {
        Err(e) if matches!(e.code(), Some(ER_BAD_DB | ER_NO_SUCH_TABLE)) => {
            ensure_schema(c).await?;
            read_inner(c).await
        }
        r => r,
    }
}

async fn read_inner(c: &mut Conn) -> Result<(Option<WriterRow>, BTreeSet<String>), SqlError> {
    let r = c
        .query("SELECT node, epoch FROM keel_meta.writer WHERE id = 1")
        .await?;
    let row = r.rows.into_iter().next().and_then(|row| {
        let node = row.first().cloned().flatten()?;
        let epoch = row.get(1).cloned().flatten()?.parse().ok()?;
        Some(WriterRow { node, epoch })
    });
    let d = c.query("SELECT node FROM keel_meta.drain").await?;
    let drained = d
        .rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    Ok((row, drained))
}

/// The compare-and-set: true when this statement made `node` the writer. Galera's
/// certification orders concurrent claims on different nodes; the loser gets `ERROR 1213`
/// (returned as an error) or matches no row.
pub async fn claim(
    c: &mut Conn,
    expected_epoch: Option<u64>,
    node: &str,
) -> Result<bool, SqlError> {
    let sql = match expected_epoch {
        None => format!(
            "INSERT IGNORE INTO keel_meta.writer (id, node, epoch) VALUES (1, {}, 1)",
            quote(node)
        ),
        Some(e) => format!(
            "UPDATE keel_meta.writer SET node = {}, epoch = epoch + 1 WHERE id = 1 AND epoch = {e}",
            quote(node)
        ),
    };
    let r = match c.query(&sql).await {
        Err(e) if matches!(e.code(), Some(ER_BAD_DB | ER_NO_SUCH_TABLE)) => {
            ensure_schema(c).await?;
            c.query(&sql).await?
        }
        r => r?,
    };
    Ok(r.affected_rows == 1)
}

/// Sets or clears the drain flag of `node`.
pub async fn set_drain(c: &mut Conn, node: &str, on: bool) -> Result<(), SqlError> {
    ensure_schema(c).await?;
    let sql = if on {
        format!(
            "INSERT IGNORE INTO keel_meta.drain (node) VALUES ({})",
            quote(node)
        )
    } else {
        format!("DELETE FROM keel_meta.drain WHERE node = {}", quote(node))
    };
    c.query(&sql).await?;
    Ok(())
}
