//! A tiny blocking text-protocol client for tests: raw bytes in, raw bytes out, plus a few
//! conveniences (`set`, `get`, `cmd`). Every read has a timeout, so a server that hangs fails the
//! test with a message instead of hanging it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Default I/O timeout of a [`TextClient`].
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What a round trip read back: the bytes, and whether the server closed the connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub closed: bool,
}

/// The plumbing every test client shares: a loopback TCP stream with I/O timeouts and no Nagle
/// delay, and the bytes read but not yet returned.
#[derive(Debug)]
pub(crate) struct Wire {
    pub(crate) stream: TcpStream,
    /// Bytes read but not yet returned.
    pub(crate) buf: Vec<u8>,
}

impl Wire {
    /// Connect with `timeout` as connect, read and write timeout.
    pub(crate) fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Wire> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Wire {
            stream,
            buf: Vec::new(),
        })
    }

    /// Read more bytes into the buffer; `Ok(0)` at EOF.
    pub(crate) fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

/// A blocking connection to a server's text port (also usable for raw binary bytes).
#[derive(Debug)]
pub struct TextClient {
    wire: Wire,
}

impl TextClient {
    pub fn connect(addr: SocketAddr) -> io::Result<TextClient> {
        Ok(TextClient {
            wire: Wire::connect(addr, IO_TIMEOUT)?,
        })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.wire.stream
    }

    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.wire.stream.set_read_timeout(Some(t))
    }

    /// Write all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wire.stream.write_all(bytes)
    }

    fn fill(&mut self) -> io::Result<usize> {
        self.wire.fill()
    }

    /// One line including its `\r\n` (or `\n`). EOF before a full line is an error.
    pub fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.wire.buf.iter().position(|&b| b == b'\n') {
                return Ok(self.wire.buf.drain(..=i).collect());
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed; partial line {:?}",
                        String::from_utf8_lossy(&self.wire.buf)
                    ),
                ));
            }
        }
    }

    /// Exactly `n` bytes.
    pub fn read_exact_bytes(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.wire.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
        }
        Ok(self.wire.buf.drain(..n).collect())
    }

    /// Read until the bytes read end with `suffix` or the server closes the connection.
    pub fn read_until_suffix(&mut self, suffix: &[u8]) -> io::Result<Reply> {
        self.read_until(|buf| buf.ends_with(suffix))
    }

    /// Read until `done(all bytes read so far)` is true or the server closes the connection.
    /// A timeout is an error that shows what was read.
    pub fn read_until(&mut self, mut done: impl FnMut(&[u8]) -> bool) -> io::Result<Reply> {
        loop {
            if done(&self.wire.buf) {
                return Ok(Reply {
                    bytes: std::mem::take(&mut self.wire.buf),
                    closed: false,
                });
            }
            match self.fill() {
                Ok(0) => {
                    return Ok(Reply {
                        bytes: std::mem::take(&mut self.wire.buf),
                        closed: true,
                    })
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok(Reply {
                        bytes: std::mem::take(&mut self.wire.buf),
                        closed: true,
                    })
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "{e} while waiting for the end of a reply; got so far: {}",
                            crate::show(&self.wire.buf)
                        ),
                    ))
                }
            }
        }
    }

    /// Send `request` followed by `mn\r\n` and read everything up to and including `MN\r\n`
    /// (or EOF). The meta no-op marks the end of the replies, so no sleeping is needed.
    /// Values in the replies must not end in `MN`.
    pub fn round_trip_mn(&mut self, request: &[u8]) -> io::Result<Reply> {
        let mut msg = Vec::with_capacity(request.len() + 4);
        msg.extend_from_slice(request);
        msg.extend_from_slice(b"mn\r\n");
        self.send(&msg)?;
        self.read_until_suffix(b"MN\r\n")
    }

    /// Read until EOF (or timeout error); returns everything read.
    pub fn read_to_close(&mut self) -> io::Result<Vec<u8>> {
        loop {
            match self.fill() {
                Ok(0) => return Ok(std::mem::take(&mut self.wire.buf)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok(std::mem::take(&mut self.wire.buf))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Send one command line (without `\r\n`) and return the first reply line without `\r\n`.
    pub fn cmd(&mut self, line: &str) -> io::Result<String> {
        self.send(format!("{line}\r\n").as_bytes())?;
        let l = self.read_line()?;
        Ok(String::from_utf8_lossy(l.strip_suffix(b"\r\n").unwrap_or(&l)).into_owned())
    }

    /// `set` and return the reply line (e.g. `STORED`).
    pub fn set(&mut self, key: &str, flags: u32, exptime: i64, value: &[u8]) -> io::Result<String> {
        let mut msg = format!("set {key} {flags} {exptime} {}\r\n", value.len()).into_bytes();
        msg.extend_from_slice(value);
        msg.extend_from_slice(b"\r\n");
        self.send(&msg)?;
        let l = self.read_line()?;
        Ok(String::from_utf8_lossy(l.strip_suffix(b"\r\n").unwrap_or(&l)).into_owned())
    }

    /// `get` one key: `Some((flags, value))` or `None` on a miss.
    pub fn get(&mut self, key: &str) -> io::Result<Option<(u32, Vec<u8>)>> {
        self.send(format!("get {key}\r\n").as_bytes())?;
        let line = self.read_line()?;
        if line == b"END\r\n" {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let parts: Vec<&str> = text.split_whitespace().collect();
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected get reply {text:?}"),
            )
        };
        if parts.len() < 4 || parts[0] != "VALUE" || parts[1] != key {
            return Err(bad());
        }
        let flags: u32 = parts[2].parse().map_err(|_| bad())?;
        let len: usize = parts[3].parse().map_err(|_| bad())?;
        let mut data = self.read_exact_bytes(len + 2)?;
        if !data.ends_with(b"\r\n") {
            return Err(bad());
        }
        data.truncate(len);
        let end = self.read_line()?;
        if end != b"END\r\n" {
            return Err(bad());
        }
        Ok(Some((flags, data)))
    }
}
