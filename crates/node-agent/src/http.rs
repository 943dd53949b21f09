//! A minimal HTTP/1.1 for the control API: one request per connection (`Connection: close`),
//! bodies only as `Content-Length`. Enough for JSON state between agents and the CLI; not a
//! general web server. The client side is blocking with a deadline on every step.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A parsed request line (the body, if any, is ignored by the control API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
}

/// Reads one request head from `stream` (at most 16 KiB of headers).
pub fn read_request(stream: &mut TcpStream) -> std::io::Result<Request> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(stream.take(16 * 1024));
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    let req = Request {
        method: method.to_owned(),
        path: path.to_owned(),
    };
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    Ok(req)
}

/// Writes a complete response and closes.
pub fn write_response(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: malformed HTTP response")]
    Malformed { addr: String },
}

/// One request to `addr` (`host:port`); returns the status code and body.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), ClientError> {
    let e = |source| ClientError::Io {
        addr: addr.to_owned(),
        source,
    };
    let sa = addr
        .to_socket_addrs()
        .map_err(e)?
        .next()
        .ok_or_else(|| ClientError::Malformed {
            addr: addr.to_owned(),
        })?;
    let mut s = TcpStream::connect_timeout(&sa, timeout).map_err(e)?;
    s.set_read_timeout(Some(timeout)).map_err(e)?;
    s.set_write_timeout(Some(timeout)).map_err(e)?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").map_err(e)?;
    let mut buf = Vec::new();
    s.take(4 << 20).read_to_end(&mut buf).map_err(e)?;
    parse_response(&buf).ok_or_else(|| ClientError::Malformed {
        addr: addr.to_owned(),
    })
}

/// Splits a complete `Connection: close` response into status and body.
pub fn parse_response(buf: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn round_trip_over_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let req = read_request(&mut s).unwrap();
            write_response(
                &mut s,
                200,
                "application/json",
                &format!("{{\"path\":\"{}\"}}", req.path),
            )
            .unwrap();
            req
        });
        let (status, body) =
            request(&addr, "POST", "/bootstrap/force", Duration::from_secs(2)).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, "{\"path\":\"/bootstrap/force\"}");
        assert_eq!(
            t.join().unwrap(),
            Request {
                method: "POST".into(),
                path: "/bootstrap/force".into()
            }
        );
    }

    #[test]
    fn refused_connection_is_an_error_naming_the_address() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let e = request(&addr, "GET", "/state", Duration::from_millis(500))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&addr), "{e}");
        assert_eq!(parse_response(b"garbage"), None);
    }
}
