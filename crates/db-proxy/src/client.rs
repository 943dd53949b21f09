//! A minimal asynchronous MySQL client: connect, authenticate with `mysql_native_password`, run
//! `COM_QUERY` and read text result sets. It is what health checks, the writer table and
//! [`crate::drain`] use; tests use it too. Callers wrap every call in a timeout: a stopped
//! (SIGSTOP) server accepts TCP connections but never answers.

use crate::protocol::{self, ProtoError, ServerError};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Proto(#[from] ProtoError),
    #[error("{0}")]
    Server(ServerError),
    #[error("unsupported authentication plugin {0:?}")]
    AuthPlugin(String),
    #[error("packet too large ({0} bytes)")]
    TooLarge(usize),
}

impl ClientError {
    /// The server's error code, if the server answered with one.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Server(e) => Some(e.code),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, ClientError>;

/// Largest logical packet this client accepts (results of health checks are tiny).
const MAX_PACKET: usize = 64 << 20;

/// What a query returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub affected_rows: u64,
}

/// One authenticated connection.
pub struct Conn {
    stream: TcpStream,
    seq: u8,
    pub server_version: String,
    pub connection_id: u32,
}

impl Conn {
    /// Connects and authenticates; `db` is the default database, if any.
    pub async fn connect(
        addr: SocketAddr,
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            seq: 0,
            server_version: String::new(),
            connection_id: 0,
        };
        let greeting = c.read_packet().await?;
        let g = match protocol::parse_greeting(&greeting) {
            Ok(g) => g,
            Err(Ok(e)) => return Err(ClientError::Server(e)),
            Err(Err(e)) => return Err(e.into()),
        };
        c.server_version = g.server_version.clone();
        c.connection_id = g.connection_id;
        if g.auth_plugin != "mysql_native_password" {
            // Still answer with native_password; the server will ask to switch if it must.
        }
        let auth = protocol::native_password(password.as_bytes(), &g.seed);
        c.write_packet(&protocol::handshake_response(user, &auth, db))
            .await?;
        loop {
            let p = c.read_packet().await?;
            match p.first() {
                Some(0x00) => return Ok(c),
                Some(0xff) => return Err(ClientError::Server(protocol::parse_err(&p)?)),
                Some(0xfe) => {
                    // AuthSwitchRequest: plugin name, then new seed.
                    let mut r = protocol::Reader::new(&p[1..]);
                    let plugin = String::from_utf8_lossy(r.cstr()).into_owned();
                    if plugin != "mysql_native_password" {
                        return Err(ClientError::AuthPlugin(plugin));
                    }
                    let seed = r.remaining();
                    let seed = seed.strip_suffix(&[0]).unwrap_or(seed);
                    let auth = protocol::native_password(password.as_bytes(), seed);
                    c.write_packet(&auth).await?;
                }
                _ => return Err(ProtoError::Unexpected("authentication reply".into()).into()),
            }
        }
    }

    async fn read_packet(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut h = [0u8; 4];
            self.stream.read_exact(&mut h).await?;
            let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
            self.seq = h[3].wrapping_add(1);
            if out.len() + len > MAX_PACKET {
                return Err(ClientError::TooLarge(out.len() + len));
            }
            let start = out.len();
            out.resize(start + len, 0);
            self.stream.read_exact(&mut out[start..]).await?;
            if len < protocol::MAX_PAYLOAD {
                return Ok(out);
            }
        }
    }

    async fn write_packet(&mut self, payload: &[u8]) -> Result<()> {
        let f = protocol::frame(self.seq, payload);
        self.seq = self.seq.wrapping_add(1);
        self.stream.write_all(&f).await?;
        Ok(())
    }

    /// Runs one statement (`COM_QUERY`) and reads its whole result.
    pub async fn query(&mut self, sql: &str) -> Result<QueryResult> {
        self.send_query(sql).await?;
        self.read_result().await
    }

    /// Sends a `COM_QUERY` without reading its result (read it with [`Conn::read_result`]).
    pub async fn send_query(&mut self, sql: &str) -> Result<()> {
        self.seq = 0;
        let mut p = Vec::with_capacity(1 + sql.len());
        p.push(0x03);
        p.extend_from_slice(sql.as_bytes());
        self.write_packet(&p).await
    }

    /// Reads the result of the statement sent last.
    pub async fn read_result(&mut self) -> Result<QueryResult> {
        let first = self.read_packet().await?;
        match first.first() {
            Some(0x00) => {
                let ok = protocol::parse_ok(&first)?;
                return Ok(QueryResult {
                    affected_rows: ok.affected_rows,
                    ..Default::default()
                });
            }
            Some(0xff) => return Err(ClientError::Server(protocol::parse_err(&first)?)),
            Some(0xfb) => return Err(ProtoError::Unexpected("LOCAL INFILE request".into()).into()),
            _ => {}
        }
        let ncols = protocol::Reader::new(&first)
            .lenenc("column count")?
            .unwrap_or(0) as usize;
        let mut columns = Vec::with_capacity(ncols.min(1024));
        for _ in 0..ncols {
            let def = self.read_packet().await?;
            // catalog, schema, table, org_table, name
            let mut r = protocol::Reader::new(&def);
            for _ in 0..4 {
                r.lenenc_str("column definition")?;
            }
            let name = r.lenenc_str("column name")?.unwrap_or_default();
            columns.push(String::from_utf8_lossy(name).into_owned());
        }
        let eof = self.read_packet().await?;
        if !protocol::is_eof(&eof) {
            return Err(ProtoError::Unexpected("missing EOF after columns".into()).into());
        }
        let mut rows = Vec::new();
        loop {
            let p = self.read_packet().await?;
            if protocol::is_eof(&p) {
                break;
            }
            if p.first() == Some(&0xff) {
                return Err(ClientError::Server(protocol::parse_err(&p)?));
            }
            rows.push(protocol::parse_text_row(&p, ncols)?);
        }
        Ok(QueryResult {
            columns,
            rows,
            affected_rows: 0,
        })
    }

    /// Runs a statement and returns its first column of the first row.
    pub async fn query_one(&mut self, sql: &str) -> Result<Option<String>> {
        let r = self.query(sql).await?;
        Ok(r.rows
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next().flatten()))
    }
}
