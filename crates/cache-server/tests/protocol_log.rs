//! memcached's `-vv` lines (every connection opened and closed) are TRACE events under
//! `cache_server::PROTOCOL_TARGET`, in memcached's words, so the binary's `-vv` shows them.
//! (Its own process: the subscriber is global because connections run on worker threads.)

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_server::{Server, Settings, PROTOCOL_TARGET};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn connections_are_traced_in_memcached_words() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .without_time()
                .with_writer(move || writer.clone())
                .with_filter(Targets::new().with_target(PROTOCOL_TARGET, tracing::Level::TRACE)),
        )
        .init();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = Server::bind(Settings {
        port: 0,
        threads: 1,
        ..Settings::default()
    })
    .unwrap();
    let addr = server.local_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(server.run(async {
        let _ = stopped.await;
    }));

    let mut c = std::net::TcpStream::connect(addr).unwrap();
    let client = c.local_addr().unwrap();
    c.write_all(b"version\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"VERSION "));
    drop(c);

    let opened = format!("TRACE {PROTOCOL_TARGET}: <1 new client connection from {client}\n");
    let closed = format!("TRACE {PROTOCOL_TARGET}: <1 connection closed.\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.text().contains(&closed) {
        assert!(
            Instant::now() < deadline,
            "no close line in:\n{}",
            log.text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = stop.send(());
    rt.block_on(running).unwrap().unwrap();
    assert_eq!(log.text(), format!("{opened}{closed}"));
}
