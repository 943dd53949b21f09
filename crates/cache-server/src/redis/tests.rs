//! End-to-end tests of the Redis server: a real [`crate::Server`] on a free port with Redis
//! on, spoken to in raw RESP bytes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::config::RedisSettings;
use crate::{Server, Settings};

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(redis: RedisSettings) -> Running {
        let settings = Settings {
            port: 0,
            threads: 2,
            redis: Some(RedisSettings { port: 0, ..redis }),
            ..Settings::default()
        };
        let server = Server::bind(settings).expect("bind");
        let addr = server.redis_addrs()[0];
        assert_ne!(addr.port(), 0);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .run(async {
                    let _ = rx.await;
                })
                .await;
        });
        Running {
            addr,
            stop: Some(tx),
            task,
        }
    }

    async fn connect(&self) -> Client {
        Client(TcpStream::connect(self.addr).await.expect("connect"))
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

struct Client(TcpStream);

impl Client {
    async fn send(&mut self, req: &[u8]) {
        self.0.write_all(req).await.expect("write");
    }

    /// Read exactly `expect.len()` bytes (or until EOF / 5 s) and compare.
    async fn expect(&mut self, expect: &[u8]) {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = [0u8; 4096];
            while got.len() < expect.len() {
                match self.0.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expect)
        );
    }

    async fn call(&mut self, req: &[u8], expect: &[u8]) {
        self.send(req).await;
        self.expect(expect).await;
    }

    /// One reply line, without its `\r\n`.
    async fn read_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.0.read_exact(&mut b).await.is_ok() {
                line.push(b[0]);
                if line.ends_with(b"\r\n") {
                    line.truncate(line.len() - 2);
                    return;
                }
            }
        })
        .await;
        line
    }

    /// Whether the server closes the connection within `secs`.
    async fn closed_within(&mut self, secs: u64) -> bool {
        let mut buf = [0u8; 65536];
        let r = tokio::time::timeout(Duration::from_secs(secs), async {
            loop {
                match self.0.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        r.is_ok()
    }
}

#[tokio::test]
async fn pipelined_connection_commands_and_errors() {
    let srv = Running::start(RedisSettings::default()).await;
    let mut c = srv.connect().await;
    // Three commands in one write, multibulk and inline, answered in order.
    c.call(
        b"*1\r\n$4\r\nPING\r\nECHO hi\r\nfoo a b\r\n",
        b"+PONG\r\n$2\r\nhi\r\n-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n",
    )
    .await;
    c.call(
        b"CLIENT SETNAME\r\nCLIENT x\r\n",
        b"-ERR wrong number of arguments for 'client|setname' command\r\n-ERR unknown subcommand 'x'. Try CLIENT HELP.\r\n",
    )
    .await;
    c.call(b"HELLO 4\r\n", b"-NOPROTO unsupported protocol version\r\n")
        .await;
    c.call(
        b"AUTH x\r\n",
        b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n",
    )
    .await;
    c.call(b"MULTI\r\nPING\r\nECHO\r\nEXEC\r\nEXEC\r\n",
        b"+OK\r\n+QUEUED\r\n-ERR wrong number of arguments for 'echo' command\r\n-EXECABORT Transaction discarded because of previous errors.\r\n-ERR EXEC without MULTI\r\n").await;
    c.call(
        b"MULTI\r\nPING\r\nECHO x\r\nEXEC\r\n",
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+PONG\r\n$1\r\nx\r\n",
    )
    .await;
    c.call(b"CLIENT REPLY SKIP\r\nPING\r\nPING\r\n", b"+PONG\r\n")
        .await;
    c.call(b"QUIT\r\n", b"+OK\r\n").await;
    assert!(c.closed_within(5).await);
    // A protocol error is answered, then the connection closed.
    let mut c = srv.connect().await;
    c.call(
        b"*1\r\nx\r\n",
        b"-ERR Protocol error: expected '$', got 'x'\r\n",
    )
    .await;
    assert!(c.closed_within(5).await);
    srv.stop().await;
}

#[tokio::test]
async fn requirepass() {
    let srv = Running::start(RedisSettings {
        password: Some("s3cret".into()),
        ..RedisSettings::default()
    })
    .await;
    let mut c = srv.connect().await;
    c.call(b"PING\r\n", b"-NOAUTH Authentication required.\r\n")
        .await;
    c.call(
        b"AUTH nope\r\n",
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    )
    .await;
    c.call(b"AUTH default s3cret\r\nPING\r\n", b"+OK\r\n+PONG\r\n")
        .await;
    let mut c = srv.connect().await;
    c.call(b"HELLO 3\r\n", b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n").await;
    c.send(b"HELLO 3 AUTH default s3cret\r\n").await;
    c.expect(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:2\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n")
        .await;
    srv.stop().await;
}

#[tokio::test]
async fn pubsub_between_connections() {
    let srv = Running::start(RedisSettings::default()).await;
    let mut sub = srv.connect().await;
    sub.call(
        b"SUBSCRIBE news\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n",
    )
    .await;
    sub.call(b"ECHO x\r\n", b"-ERR Can't execute 'echo': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n").await;
    sub.call(b"PING hc\r\n", b"*2\r\n$4\r\npong\r\n$2\r\nhc\r\n")
        .await;
    let mut p = srv.connect().await;
    p.call(b"PUBSUB NUMSUB news\r\n", b"*2\r\n$4\r\nnews\r\n:1\r\n")
        .await;
    p.call(b"PUBLISH news hello\r\n", b":1\r\n").await;
    sub.expect(b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n")
        .await;
    sub.call(
        b"UNSUBSCRIBE\r\n",
        b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n",
    )
    .await;
    p.call(b"PUBLISH news again\r\n", b":0\r\n").await;
    srv.stop().await;
}

#[tokio::test]
async fn slow_subscriber_is_disconnected_and_kill_and_timeout_close() {
    let srv = Running::start(RedisSettings::default()).await;
    let mut admin = srv.connect().await;
    admin
        .call(
            b"*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$26\r\nclient-output-buffer-limit\r\n$16\r\npubsub 256kb 0 0\r\n",
            b"+OK\r\n",
        )
        .await;
    let mut sub = srv.connect().await;
    sub.call(
        b"SUBSCRIBE c\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n",
    )
    .await;
    // The subscriber never reads: publish far more than its limit plus socket buffers.
    let mut msg = b"PUBLISH c ".to_vec();
    msg.extend(std::iter::repeat_n(b'x', 64 * 1024));
    msg.extend_from_slice(b"\r\n");
    let mut gone = false;
    for _ in 0..2000 {
        admin.send(&msg).await;
        // PUBLISH answers how many received it: 0 once the subscriber is gone.
        let line = admin.read_line().await;
        if line == b":0" {
            gone = true;
            break;
        }
        assert_eq!(line, b":1");
    }
    assert!(gone, "the slow subscriber was not disconnected");
    admin
        .call(b"PUBSUB NUMSUB c\r\n", b"*2\r\n$1\r\nc\r\n:0\r\n")
        .await;
    // CLIENT KILL closes another client.
    let mut victim = srv.connect().await;
    victim.send(b"CLIENT ID\r\n").await;
    let id = victim.read_line().await;
    assert_eq!(id[0], b':');
    let mut kill = b"CLIENT KILL ID ".to_vec();
    kill.extend_from_slice(&id[1..]);
    kill.extend_from_slice(b"\r\n");
    admin.call(&kill, b":1\r\n").await;
    assert!(victim.closed_within(5).await);
    // The idle timeout.
    admin.call(b"CONFIG SET timeout 1\r\n", b"+OK\r\n").await;
    let mut idle = srv.connect().await;
    idle.call(b"PING\r\n", b"+PONG\r\n").await;
    assert!(idle.closed_within(5).await);
    srv.stop().await;
}

#[tokio::test]
async fn client_that_never_reads_is_closed_at_the_normal_limit() {
    let srv = Running::start(RedisSettings {
        obuf_normal: crate::redis::ObufLimit {
            hard: 256 * 1024,
            soft: 0,
            soft_secs: 0,
        },
        ..RedisSettings::default()
    })
    .await;
    let mut c = srv.connect().await;
    let mut req = b"ECHO ".to_vec();
    req.extend(std::iter::repeat_n(b'x', 64 * 1024));
    req.extend_from_slice(b"\r\n");
    // Never read: the server stops reading this client's input, then closes it once its
    // pending output passes the limit; our writes then fail (or the read sees EOF).
    let mut failed = false;
    for _ in 0..4000 {
        match tokio::time::timeout(Duration::from_secs(2), c.0.write_all(&req)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                failed = true;
                break;
            }
            // Blocked: the server no longer reads from us.
            Err(_) => break,
        }
    }
    assert!(failed || c.closed_within(5).await);
    // Other clients are unaffected.
    let mut d = srv.connect().await;
    d.call(b"PING\r\n", b"+PONG\r\n").await;
    srv.stop().await;
}

#[tokio::test]
async fn pattern_subscriptions_in_resp3() {
    let srv = Running::start(RedisSettings::default()).await;
    let mut sub = srv.connect().await;
    sub.send(b"HELLO 3\r\n").await;
    let mut hello = vec![0u8; 1];
    sub.0.read_exact(&mut hello).await.unwrap();
    assert_eq!(hello, b"%");
    // Skip the rest of HELLO's map: it ends with "modules" and an empty array.
    let mut tail = Vec::new();
    while !tail.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        let mut b = [0u8; 1];
        sub.0.read_exact(&mut b).await.unwrap();
        tail.push(b[0]);
    }
    sub.call(
        b"PSUBSCRIBE news.*\r\n",
        b">3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:1\r\n",
    )
    .await;
    // RESP3 subscribed clients may run any command.
    sub.call(b"PING\r\nECHO x\r\n", b"+PONG\r\n$1\r\nx\r\n")
        .await;
    let mut p = srv.connect().await;
    p.call(b"PUBSUB NUMPAT\r\n", b":1\r\n").await;
    p.call(
        b"PUBLISH news.eu hi\r\nPUBLISH sport hi\r\n",
        b":1\r\n:0\r\n",
    )
    .await;
    sub.expect(b">4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$7\r\nnews.eu\r\n$2\r\nhi\r\n")
        .await;
    sub.call(
        b"PUNSUBSCRIBE\r\n",
        b">3\r\n$12\r\npunsubscribe\r\n$6\r\nnews.*\r\n:0\r\n",
    )
    .await;
    p.call(b"PUBSUB NUMPAT\r\n", b":0\r\n").await;
    srv.stop().await;
}
