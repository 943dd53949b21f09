//! keel's one MySQL client, over the maintained `mysql_async` driver: the node agent's and
//! `keel`'s statements over a node's unix socket, and the db-proxy's health checks, writer table
//! and drain over TCP.
//!
//! - [`Conn`] is the async side (the proxy runs in tokio): text-protocol queries whose results
//!   come back as rows of strings (`None` for SQL NULL), and the server's error code.
//! - [`query`], [`query_rows`] and [`status`] are the blocking side for the thread-based node
//!   agent and commands: each call connects over the node's socket as the unix_socket account of
//!   the OS user keel runs as (root's on a fresh node, as `mariadb` without options would), runs
//!   `SET SESSION wsrep_sync_wait=0` (so it never waits on a node without quorum), then the
//!   statements, inside a current-thread runtime of its own.
//!
//! Every call is bounded: a stopped (SIGSTOPped) server accepts connections but never answers,
//! so async callers wrap calls in a timeout and the blocking calls take a deadline. A [`Conn`]
//! dropped in the middle of a statement closes its socket at once, rather than leaving the
//! driver a background task that first reads the rest of the answer from a server that may
//! never send it.

use crate::status::WsrepStatus;
use mysql_async::prelude::Queryable;
use mysql_async::{OptsBuilder, Row, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;
use tokio::time::timeout;

/// Why a statement did not run.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The server refused the statement (or the login).
    #[error("ERROR {code} ({state}): {message}")]
    Server {
        code: u16,
        state: String,
        message: String,
    },
    #[error("cannot connect to {to}: {source}")]
    Connect {
        to: String,
        source: mysql_async::Error,
    },
    /// The connection broke or the driver failed.
    #[error("{0}")]
    Driver(mysql_async::Error),
    #[error("{what} did not finish within {:.1} s", .after.as_secs_f64())]
    Timeout { what: &'static str, after: Duration },
    #[error("the OS user keel runs as (uid {0}) has no name: no unix_socket account to log in as")]
    NoOsUser(u32),
    #[error("cannot start a runtime for the query: {0}")]
    Runtime(std::io::Error),
}

impl SqlError {
    /// The server's error code, if the server answered with one.
    pub fn code(&self) -> Option<u16> {
        match self {
            SqlError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<mysql_async::Error> for SqlError {
    fn from(e: mysql_async::Error) -> Self {
        match e {
            mysql_async::Error::Server(s) => SqlError::Server {
                code: s.code,
                state: s.state,
                message: s.message,
            },
            e => SqlError::Driver(e),
        }
    }
}

pub type Result<T, E = SqlError> = std::result::Result<T, E>;

/// What a query returned. For several statements: the columns of the first result set that has
/// any, the rows of every result set in order, and the rows the statements changed, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub affected_rows: u64,
}

/// Largest packet accepted (status rows are tiny; the agent's statements are short).
const MAX_PACKET: usize = 64 << 20;
/// How long the blocking calls wait for the server's greeting (as `mariadb --connect-timeout=2`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The deadline of [`status`].
pub const STATUS_DEADLINE: Duration = Duration::from_secs(3);
/// The statements [`Conn::wsrep_status`] runs: the status and the two global variables.
const STATUS_SQL: &str = "SHOW GLOBAL STATUS LIKE 'wsrep%'; SHOW GLOBAL VARIABLES WHERE \
                          Variable_name IN ('wsrep_desync', 'wsrep_reject_queries')";

/// Options shared by every connection: no extra round trips at connect (the driver would
/// otherwise ask for `@@socket`, `@@max_allowed_packet` and `@@wait_timeout`, and reconnect over
/// the socket a TCP connection to this host), no statement cache (keel sends text queries only).
fn base_opts() -> OptsBuilder {
    OptsBuilder::default()
        .prefer_socket(false)
        .max_allowed_packet(Some(MAX_PACKET))
        .wait_timeout(Some(28_800))
        .stmt_cache_size(0)
}

/// One connection.
pub struct Conn {
    inner: Option<mysql_async::Conn>,
}

impl Conn {
    /// Connects over TCP with a password (`mysql_native_password`); `db` is the default
    /// database, if any.
    pub async fn connect(
        addr: SocketAddr,
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> Result<Conn> {
        let opts = base_opts()
            .ip_or_hostname(addr.ip().to_string())
            .tcp_port(addr.port())
            .user(Some(user))
            .pass(Some(password))
            .db_name(db);
        Conn::open(opts, addr.to_string()).await
    }

    /// Connects over a node's unix socket as `user`, authenticated by the server's unix_socket
    /// plugin (the peer's OS user), so no password is involved.
    pub async fn connect_socket(socket: &Path, user: &str) -> Result<Conn> {
        let opts = base_opts()
            .socket(Some(socket.to_string_lossy()))
            .user(Some(user));
        Conn::open(opts, socket.display().to_string()).await
    }

    async fn open(opts: OptsBuilder, to: String) -> Result<Conn> {
        match mysql_async::Conn::new(opts).await {
            Ok(c) => Ok(Conn { inner: Some(c) }),
            Err(mysql_async::Error::Server(s)) => Err(mysql_async::Error::Server(s).into()),
            Err(source) => Err(SqlError::Connect { to, source }),
        }
    }

    fn conn(&mut self) -> &mut mysql_async::Conn {
        self.inner
            .as_mut()
            .expect("the connection is only taken when the Conn is dropped")
    }

    /// The server's version string.
    pub fn server_version(&self) -> String {
        self.inner
            .as_ref()
            .map(|c| {
                let (a, b, c) = c.server_version();
                format!("{a}.{b}.{c}")
            })
            .unwrap_or_default()
    }

    /// The server's id of this connection.
    pub fn connection_id(&self) -> u32 {
        self.inner.as_ref().map_or(0, |c| c.id())
    }

    /// Runs one or more statements (`COM_QUERY`, text protocol) and reads every result.
    /// Statements after one that fails do not run.
    pub async fn query(&mut self, sql: &str) -> Result<QueryResult> {
        let mut out = QueryResult::default();
        let mut r = self.conn().query_iter(sql).await?;
        loop {
            let columns = r.columns_ref();
            if columns.is_empty() {
                out.affected_rows += r.affected_rows();
            } else if out.columns.is_empty() {
                out.columns = columns.iter().map(|c| c.name_str().into_owned()).collect();
            }
            let rows: Vec<Row> = r.collect().await?;
            out.rows.extend(
                rows.into_iter()
                    .map(|row| row.unwrap().into_iter().map(text).collect()),
            );
            if r.is_empty() {
                break;
            }
        }
        // The error of a statement after the first is kept by the driver as the next "result"
        // and would otherwise surface only at the connection's next use.
        r.drop_result().await?;
        Ok(out)
    }

    /// Runs a statement and returns the first column of its first row.
    pub async fn query_one(&mut self, sql: &str) -> Result<Option<String>> {
        let r = self.query(sql).await?;
        Ok(r.rows
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next().flatten()))
    }

    /// The node's wsrep status (see [`crate::status`] for the rule that reads it).
    pub async fn wsrep_status(&mut self) -> Result<WsrepStatus> {
        Ok(status_of(&self.query(STATUS_SQL).await?))
    }

    /// Says goodbye (`COM_QUIT`) and closes, waiting at most `within` for a server that may not
    /// answer.
    pub async fn close(mut self, within: Duration) {
        if let Some(c) = self.inner.take() {
            // A timed-out disconnect is dropped after it marked the connection closed, so the
            // driver spawns nothing and the socket closes here.
            let _ = timeout(within, c.disconnect()).await;
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(c) = self.inner.take() else {
            return;
        };
        // Dropped as is, the driver would spawn a task that reads the rest of any unfinished
        // answer before saying goodbye, which against a stopped server waits for as long as it
        // stays stopped, holding a socket. Instead: one poll of the disconnect, which marks the
        // connection closed and sends COM_QUIT when the socket takes it at once; whatever is
        // left is dropped with the socket.
        let waker = Waker::from(Arc::new(NoWake));
        let mut quit = pin!(c.disconnect());
        let _ = quit.as_mut().poll(&mut Context::from_waker(&waker));
    }
}

/// A waker for the single poll in [`Conn`]'s drop: nothing waits for that future again.
struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// A text-protocol value as a string; `None` for NULL.
fn text(v: Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(
            String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()),
        ),
        other => Some(other.as_sql(true)),
    }
}

/// The OS user this process runs as: the unix_socket account it logs in with.
fn os_user() -> Result<String> {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => Ok(u.name),
        _ if uid.is_root() => Ok("root".into()),
        _ => Err(SqlError::NoOsUser(uid.as_raw())),
    }
}

/// Runs `work` to completion on a current-thread runtime of its own, within `deadline`.
fn block_on<T>(
    what: &'static str,
    deadline: Duration,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SqlError::Runtime)?;
    rt.block_on(async {
        timeout(deadline, work)
            .await
            .unwrap_or(Err(SqlError::Timeout {
                what,
                after: deadline,
            }))
    })
}

/// Connects to the node behind `socket` as the OS user's unix_socket account, sets
/// `wsrep_sync_wait=0` and runs `sql`, all within `deadline`.
fn on_node(socket: &Path, sql: &str, deadline: Duration) -> Result<QueryResult> {
    let user = os_user()?;
    let greet = CONNECT_TIMEOUT.min(deadline);
    block_on("SQL query", deadline, async {
        let mut c = timeout(greet, Conn::connect_socket(socket, &user))
            .await
            .map_err(|_| SqlError::Timeout {
                what: "connecting",
                after: greet,
            })??;
        c.query("SET SESSION wsrep_sync_wait=0").await?;
        let out = c.query(sql).await;
        c.close(Duration::from_millis(100)).await;
        out
    })
}

/// Runs SQL (one or more statements) on the node behind `socket` (see the module doc for the
/// account and session) within `deadline`, and returns its rows as `mariadb -N -B` prints them:
/// one line per row, columns separated by tabs, NULL as `NULL`, and tab, newline, backslash and
/// NUL inside values escaped as `\t`, `\n`, `\\` and `\0`.
pub fn query(socket: &Path, sql: &str, deadline: Duration) -> Result<String> {
    let mut out = String::new();
    for row in query_rows(socket, sql, deadline)? {
        let cells: Vec<String> = row
            .iter()
            .map(|v| v.as_deref().map_or_else(|| "NULL".into(), batch_escape))
            .collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    Ok(out)
}

/// [`query`] returning the rows themselves (`None` for NULL).
pub fn query_rows(
    socket: &Path,
    sql: &str,
    deadline: Duration,
) -> Result<Vec<Vec<Option<String>>>> {
    Ok(on_node(socket, sql, deadline)?.rows)
}

/// The wsrep status of the node behind `socket`, within [`STATUS_DEADLINE`].
pub fn status(socket: &Path) -> Result<WsrepStatus> {
    Ok(status_of(&on_node(socket, STATUS_SQL, STATUS_DEADLINE)?))
}

/// The status from the `(name, value)` rows of [`STATUS_SQL`].
fn status_of(r: &QueryResult) -> WsrepStatus {
    WsrepStatus::from_pairs(r.rows.iter().filter_map(|row| {
        let name = row.first()?.as_deref()?;
        Some((name, row.get(1).and_then(|v| v.as_deref()).unwrap_or("")))
    }))
}

fn batch_escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\t' => s.push_str("\\t"),
            '\n' => s.push_str("\\n"),
            '\\' => s.push_str("\\\\"),
            '\0' => s.push_str("\\0"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_output_escapes_like_the_mariadb_client() {
        assert_eq!(batch_escape("a\tb\nc\\d\0"), "a\\tb\\nc\\\\d\\0");
        assert_eq!(batch_escape("GRANT USAGE ON *.*"), "GRANT USAGE ON *.*");
    }

    #[test]
    fn values_become_strings() {
        assert_eq!(text(Value::NULL), None);
        assert_eq!(
            text(Value::Bytes(b"Synced".to_vec())).as_deref(),
            Some("Synced")
        );
        assert_eq!(text(Value::Int(4)).as_deref(), Some("4"));
    }

    #[test]
    fn server_errors_keep_their_code() {
        let e: SqlError = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1047,
            message: "WSREP has not yet prepared node for application use".into(),
            state: "08S01".into(),
        })
        .into();
        assert_eq!(e.code(), Some(1047));
        assert_eq!(
            e.to_string(),
            "ERROR 1047 (08S01): WSREP has not yet prepared node for application use"
        );
    }

    #[test]
    fn a_missing_socket_fails_fast_and_names_it() {
        let sock = std::env::temp_dir().join(format!("keel-sql-none-{}.sock", std::process::id()));
        let t = std::time::Instant::now();
        let e = query(&sock, "SELECT 1", Duration::from_secs(5)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(e.to_string().contains(&sock.display().to_string()), "{e}");
    }

    #[test]
    fn a_server_that_never_greets_times_out() {
        // A listening socket nobody accepts from: what a SIGSTOPped mariadbd looks like.
        let dir = std::env::temp_dir().join(format!("keel-sql-stopped-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("mysqld.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let t = std::time::Instant::now();
        let e = query(&sock, "SELECT 1", Duration::from_millis(500)).unwrap_err();
        assert!(matches!(e, SqlError::Timeout { .. }), "{e}");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
